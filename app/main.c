/* moescope — command-line entry point: dispatches to the subcommands. */
#include <stdio.h>
#include <string.h>

#include "commands.h"

typedef struct {
    const char *name;
    int (*fn)(int, char **);
    const char *summary;
} Command;

static const Command commands[] = {
    { "info", ms_cmd_info, "describe and validate a model (GGUF file or Hugging Face checkpoint)" },
    { "tokenize", ms_cmd_tokenize, "print the token ids (or pieces) of a text" },
    { "generate", ms_cmd_generate, "continue a prompt, optionally with interventions and a routing table" },
    { "perplexity", ms_cmd_perplexity, "perplexity of a text file" },
    { "dump", ms_cmd_dump, "write tokens, routing and logits in the reference-fixture schema" },
    { "synth", ms_cmd_synth, "write a random-weight MoE model of a given shape" },
    { "convert", ms_cmd_convert, "write a Hugging Face checkpoint (or a GGUF) as GGUF, optionally quantised" },
    { "bench", ms_cmd_bench, "prefill and decode speed (tokens/s)" },
    { "trace", ms_cmd_trace, "run prompts and store every routing decision in SQLite" },
    { "export", ms_cmd_export, "export a trace database as SQL, PostgreSQL SQL or CSV" },
    { "import", ms_cmd_import, "import routing traces produced elsewhere" },
    { "merge", ms_cmd_merge, "merge trace databases (shards of one run) into one" },
    { "sql", ms_cmd_sql, "run a read-only SQL query on a trace database" },
    { "analyze", ms_cmd_analyze, "routing analyses on a trace database" },
    { "experiment", ms_cmd_experiment, "baseline vs intervened model on the same prompts, compared as they run" },
    { "sweep", ms_cmd_sweep, "silence candidate experts one set at a time, ranked against random controls" },
    { "compare", ms_cmd_compare, "what changed between two runs: KL, perplexity, greedy choices, routing" },
    { "plot", ms_cmd_plot, "draw a view of a trace as a PNG, SVG or PDF figure" },
    { "demo", ms_cmd_demo, "the main job: trace the bundled prompts with the default model and report" },
};

static void usage(FILE *f)
{
    fprintf(f, "usage: moescope COMMAND [ARGS]   (moescope COMMAND --help for details)\n\n"
               "MoE routing analysis and intervention workbench, version %s.\n\ncommands:\n", MS_VERSION);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-11s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("moescope %s\n", MS_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "moescope: unknown command '%s' (try moescope --help)\n", argv[1]);
    return 2;
}
