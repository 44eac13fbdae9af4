/* cmd-trace.c — `moescope trace`: options in, ms_trace_job_run (jobs/), a
 * summary out.  Ctrl+C cancels through the job's cancel flag: the prompt in
 * flight is dropped, every committed prompt stays, --resume completes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli-util.h"
#include "commands.h"
#include "jobs.h"

static const char trace_help[] =
    "usage: moescope trace MODEL --prompts FILE --db OUT.db [options] [interventions]\n"
    "\n"
    "Runs every prompt (prefill, then optionally N generated tokens, traced too)\n"
    "and stores tokens, log-probabilities and every routing decision in the\n"
    "SQLite database OUT.db (created if missing) or the PostgreSQL database of a\n"
    "postgresql://user@host:port/dbname URI (docs/schema.md, docs/scale.md).  Each prompt\n"
    "is one transaction.  On a terminal a progress bar shows prompts done,\n"
    "tokens/s and the time left.  Ctrl+C stops after the current layer: the prompt\n"
    "in flight is dropped, every committed prompt stays, and the same command\n"
    "with --resume completes the run (exit status 130 after Ctrl+C).\n"
    "\n"
    "  --prompts FILE  plain text (one prompt per line, escapes \\n \\t \\\\) or JSONL\n"
    "                  ({\"text\": ..., \"labels\": {...}} per line)\n"
    "  --db OUT.db     the trace database (a file or a postgresql:// URI)\n"
    "  --gen N         generate N tokens after each prompt (default 0)\n"
    "  --temp T        sampling temperature for --gen (default 0 = greedy)\n"
    "  --seed S        sampler seed (default 0)\n"
    "  --probs         also store the full router probabilities and logits (binary16)\n"
    "  --stats         also store expert output max|x| / L2 and residual max|h|\n"
    "  --no-logprobs   skip per-token log-probabilities and entropies (faster prefill)\n"
    "  --parent RUN    record RUN as the run this one is compared with\n"
    "  --resume        continue the latest run with the same model, prompt set\n"
    "                  (known by its content, whatever the file is called),\n"
    "                  settings and interventions, skipping prompts already\n"
    "                  committed; otherwise start a new run.  A run is marked\n"
    "                  incomplete until every prompt is in (run.status)\n"
    "  --shard I/N     trace only shard I of N (1 <= I <= N): the prompts whose\n"
    "                  0-based index modulo N is I - 1.  N workers with the same\n"
    "                  settings and --db fill one run together: they join the\n"
    "                  latest matching incomplete run (any matching run with\n"
    "                  --resume) or register a new one, skip prompts already\n"
    "                  committed, and record themselves in prompt.worker\n"
    "  -t THREADS      worker threads (default: all CPUs)\n"
    MS_CLI_WEIGHTS_HELP
    "  --batch N       tokens per prefill chunk (default 256)\n"
    "  --timing        print the time of the prompt loop (inference + storing)\n"
    "  --no-store      run the same inference without observer or database (a\n"
    "                  benchmark baseline; --db is not needed)\n";

static void print_summary(const MsTraceJob *j, const MsTraceJobResult *r, bool no_store)
{
    if (j->timing) {
        double el = r->wall_s;
        fprintf(stderr, "moescope trace: %lld tokens in %.3f s (%.1f tokens/s), CPU %.3f s, storing %.3f s "
                "(%.2f %%)%s\n", (long long)r->tokens, el, el > 0 ? (double)r->tokens / el : 0.0, r->cpu_s,
                r->store_s, el > 0 ? 100.0 * r->store_s / el : 0.0, no_store ? " without storing" : "");
    }
    /* always, terminal or not: scripts need the run id */
    if (!no_store)
        fprintf(stderr, "moescope trace: run %lld: %zu prompt%s written, %zu already present\n",
                (long long)r->run_id, r->n_written, r->n_written == 1 ? "" : "s", r->n_skipped);
}

/* After Ctrl+C: what is kept and how to finish. */
static void print_cancelled(const MsTraceJobResult *r, int argc, char **argv)
{
    fprintf(stderr, "moescope trace: interrupted: run %lld has %zu of %zu prompts committed (%zu by this call); "
            "the prompt in flight was dropped.  To complete the run: moescope",
            (long long)r->run_id, r->n_written + r->n_skipped, r->n_prompts, r->n_written);
    bool has_resume = false;
    for (int i = 0; i < argc; i++) {
        has_resume |= !strcmp(argv[i], "--resume");
        fprintf(stderr, strpbrk(argv[i], " \t'\"*;&|<>()$") ? " '%s'" : " %s", argv[i]);
    }
    fprintf(stderr, "%s\n", has_resume ? "" : " --resume");
}

int ms_cmd_trace(int argc, char **argv)
{
    const char *cmd = "trace", *dbpath = NULL, *shard = NULL;
    bool no_store = false, no_logprobs = false;
    MsTraceJob j;
    ms_trace_job_init(&j);
    MsCliCommon c = { .groups = MS_CLI_G_MODEL | MS_CLI_G_THREADS | MS_CLI_G_PROMPTS | MS_CLI_G_IV };
    const MsCliOpt opts[] = {
        { "--db", NULL, MS_OPT_STR, &dbpath, 0, 0 },
        { "--gen", "-n", MS_OPT_INT, &j.n_gen, 0, 1 << 20 },
        { "--batch", NULL, MS_OPT_INT, &j.n_batch, 1, 1 << 16 },
        { "--temp", NULL, MS_OPT_FLOAT, &j.temp, 0.0, 100.0 },
        { "--seed", "-s", MS_OPT_U64, &j.seed, 0, 0 },
        { "--parent", NULL, MS_OPT_I64, &j.parent_run, 0, 2147483647.0 },
        { "--probs", NULL, MS_OPT_FLAG, &j.probs, 0, 0 },
        { "--stats", NULL, MS_OPT_FLAG, &j.stats, 0, 0 },
        { "--resume", NULL, MS_OPT_FLAG, &j.resume, 0, 0 },
        { "--timing", NULL, MS_OPT_FLAG, &j.timing, 0, 0 },
        { "--no-logprobs", NULL, MS_OPT_FLAG, &no_logprobs, 0, 0 },
        { "--no-store", NULL, MS_OPT_FLAG, &no_store, 0, 0 },
        { "--shard", NULL, MS_OPT_STR, &shard, 0, 0 },
        { 0 },
    };
    int rc = ms_cli_parse(cmd, argc, argv, opts, &c, trace_help);
    if (!rc && !dbpath && !no_store) rc = ms_cli_usage(cmd, "--db OUT.db is required");
    if (!rc && shard) rc = ms_cli_shard(cmd, shard, &j.shard_i, &j.shard_n);
    /* who wrote each prompt: this host and process (and shard) */
    char worker[320];
    ms_cli_worker_name(worker, sizeof worker, j.shard_i, j.shard_n);
    j.worker = worker;
    if (rc) {
        ms_cli_common_free(&c);
        return ms_cli_exit(rc);
    }
    j.logprobs = !no_logprobs;
    j.prompts_name = c.prompts;
    j.n_threads = c.n_threads;

    MsError err = { 0 };
    MsPrompt *pr = NULL;
    size_t npr = 0;
    MsModel *m = NULL;
    MsIntervention *iv = NULL;
    MsTraceDb *db = NULL;
    /* every line is parsed before anything is written */
    if ((rc = ms_cli_read_prompts(cmd, c.prompts, &pr, &npr)) != 0 || (rc = ms_cli_common_load(cmd, &c, &m, &iv)) != 0)
        goto done;
    j.iv = iv;
    bool existed = no_store || ms_cli_db_exists(dbpath);
    if (!no_store && !(db = ms_trace_open(dbpath, MS_TRACE_CREATE, &err))) {
        rc = ms_cli_fail_err(cmd, &err);
        goto done;
    }
    MsCliBar bar;
    ms_cli_bar_init(&bar, "prompts");
    j.progress = ms_cli_bar_progress;
    j.progress_user = &bar;
    MsCancel cancel;
    ms_cancel_init(&cancel);
    j.cancel = &cancel;
    ms_cli_sigint_cancel(&cancel);
    MsTraceJobResult res = { 0 };
    int jr = ms_trace_job_run(&j, m, c.model, pr, npr, db, &res, &err);
    ms_cli_sigint_restore();
    if (jr == MS_ECANCELLED) {
        if (bar.tty) fputc('\n', stderr);
        print_cancelled(&res, argc, argv);
        rc = 130;   /* 128 + SIGINT, as shells report it */
    } else if (jr < 0) {
        rc = ms_cli_fail_err(cmd, &err);
        if (!existed && res.n_written == 0) ms_cli_drop_new_db(&db, dbpath);   /* refused input */
    } else {
        print_summary(&j, &res, no_store);
    }
done:
    ms_trace_close(db);
    ms_intervention_free(iv);
    ms_model_free(m);
    ms_prompts_free(pr, npr);
    ms_cli_common_free(&c);
    return rc;
}
