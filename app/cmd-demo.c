/* cmd-demo.c — `moescope demo`, the README's main job: make sure a default
 * model exists, trace the bundled labelled prompts into a SQLite database and
 * print a short report of the analyses.  Each step is the real subcommand run
 * in-process, so every step has its command-line twin (printed as it runs). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli-util.h"
#include "commands.h"

#define CMD "demo"

static const char *demo_help =
    "usage: moescope demo [--model M] [--prompts FILE] [--db OUT.db] [--dir DIR] [-t THREADS] [--gui]\n"
    "\n"
    "The main job: trace the bundled labelled prompts with the default model and\n"
    "print a report (expert load, cross-lingual routing, expert-label association).\n"
    "Every step is printed as the moescope command that does it.\n"
    "\n"
    "  --model M      model to trace (default: data/models/default.gguf when it\n"
    "                 exists, else a small random-weight OLMoE-style model made\n"
    "                 once with `moescope synth` in DIR)\n"
    "  --prompts FILE prompt set (default: data/prompts/all.jsonl, 286 labelled\n"
    "                 prompts: code, digits, en/de/fr/es parallel text, ...)\n"
    "  --db OUT.db    trace database (default: DIR/demo.db, replaced on each run)\n"
    "  --dir DIR      working directory for the synthesised model and database\n"
    "                 (default: the build tree's demo/ directory)\n"
    "  -t THREADS     worker threads (default: all CPUs)\n"
    "  --gui          then open the workbench (moescope-gtk) on the model, the\n"
    "                 prompts and the trace when a display is there (DISPLAY or\n"
    "                 WAYLAND_DISPLAY) and moescope-gtk was built; otherwise say\n"
    "                 why and end with the text report\n";

static bool file_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static int mkdir_p(const char *dir)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", dir);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(tmp, 0777) != 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    return mkdir(tmp, 0777) != 0 && errno != EEXIST ? -1 : 0;
}

/* Print the step as a shell command, then run it in-process. */
static int step(const char *title, int (*fn)(int, char **), int argc, char **argv)
{
    printf("\n== %s\n$ moescope", title);
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        bool quote = strpbrk(a, " \t'\"*;&|<>()$") != NULL;
        printf(quote ? " '%s'" : " %s", a);
    }
    printf("\n");
    fflush(stdout);
    int rc = fn(argc, argv);
    fflush(stdout);
    if (rc != 0) fprintf(stderr, "moescope demo: step '%s' failed (exit %d)\n", title, rc);
    return rc;
}

/* nPMI prints one row per (layer, expert, class): store it quietly, then
 * show the three strongest experts of each class through SQL on its result
 * table.  label: a prompt-label key, or NULL for token-text classes. */
static int npmi_top(const char *db, const char *label, const char *title, const char *title2)
{
    char by[256];
    snprintf(by, sizeof by, label ? "label:%s" : "text", label);
    char *nv[] = { "analyze", "npmi", "--db", (char *)db, "--by", by, "--format", "csv" };
    printf("\n== %s\n$ moescope analyze npmi --db %s --by %s --format csv > /dev/null\n", title, db, by);
    fflush(stdout);
    int saved = dup(STDOUT_FILENO), devnull = open("/dev/null", O_WRONLY);
    if (saved < 0 || devnull < 0) {
        if (saved >= 0) close(saved);
        if (devnull >= 0) close(devnull);
        return ms_cli_fail(CMD, "cannot redirect output: %s", strerror(errno));
    }
    dup2(devnull, STDOUT_FILENO);
    close(devnull);
    int rc = ms_cmd_analyze((int)MS_ARRAY_LEN(nv), nv);
    fflush(stdout);
    dup2(saved, STDOUT_FILENO);
    close(saved);
    if (rc != 0) return 1;
    char *tq[] = { "sql", "--db", (char *)db,
                   "SELECT class, layer, expert, round(npmi, 3) AS npmi, count FROM "
                   "(SELECT *, row_number() OVER (PARTITION BY class ORDER BY npmi DESC) AS r "
                   "FROM an_npmi WHERE count >= 20) WHERE r <= 3 ORDER BY class, r" };
    return step(title2, ms_cmd_sql, (int)MS_ARRAY_LEN(tq), tq) ? 1 : 0;
}

/* --gui: replace this process by the workbench on the demo's files, the
 * build's own moescope-gtk first, else the installed one; without a display
 * or a built workbench the text report above is the result. */
static int open_workbench(const char *model, const char *prompts, const char *db)
{
    const char *d = getenv("DISPLAY"), *w = getenv("WAYLAND_DISPLAY");
    if (!(d && *d) && !(w && *w)) {
        printf("\nNo display (DISPLAY / WAYLAND_DISPLAY unset): the report above is the result; "
               "`moescope-gtk %s --db %s --prompts %s` opens the workbench on it.\n", model, db, prompts);
        return 0;
    }
    char exe[4200];
    snprintf(exe, sizeof exe, "%s/ui/gtk/moescope-gtk", MS_BUILD_DIR);
    const char *prog = access(exe, X_OK) == 0 ? exe : "moescope-gtk";
    printf("\n== the workbench on this trace\n$ moescope-gtk %s --db %s --prompts %s\n", model, db, prompts);
    fflush(stdout);
    execlp(prog, "moescope-gtk", model, "--db", db, "--prompts", prompts, (char *)NULL);
    printf("The workbench is not available (%s: %s; it is built when GTK 4 and libadwaita are installed): "
           "the report above is the result.\n", prog, strerror(errno));
    return 0;
}

int ms_cmd_demo(int argc, char **argv)
{
    const char *model = NULL, *prompts = NULL, *db = NULL, *dir = NULL, *threads = NULL;
    bool gui = false;
    for (int i = 1; i < argc; i++) {
        int r;
        if (ms_cli_is_help(argv[i])) { fputs(demo_help, stdout); return 0; }
        if (!strcmp(argv[i], "--gui")) { gui = true; continue; }
        if ((r = ms_cli_opt(CMD, argc, argv, &i, "--model", NULL, &model))) { if (r < 0) return 2; continue; }
        if ((r = ms_cli_opt(CMD, argc, argv, &i, "--prompts", NULL, &prompts))) { if (r < 0) return 2; continue; }
        if ((r = ms_cli_opt(CMD, argc, argv, &i, "--db", NULL, &db))) { if (r < 0) return 2; continue; }
        if ((r = ms_cli_opt(CMD, argc, argv, &i, "--dir", NULL, &dir))) { if (r < 0) return 2; continue; }
        if ((r = ms_cli_opt(CMD, argc, argv, &i, "-t", "--threads", &threads))) { if (r < 0) return 2; continue; }
        return ms_cli_usage(CMD, "unknown argument '%s'", argv[i]);
    }
    if (threads) {
        int t;
        if (ms_cli_parse_int(CMD, "-t", threads, 1, 1024, &t) < 0) return 2;
    }

    char dir_buf[4096], model_buf[4096], db_buf[4096], prompts_buf[4096];
    if (!dir) {
        snprintf(dir_buf, sizeof dir_buf, "%s/demo", MS_BUILD_DIR);
        dir = dir_buf;
    }
    if (mkdir_p(dir) != 0) return ms_cli_fail(CMD, "%s: cannot create directory: %s", dir, strerror(errno));
    if (!prompts) {
        snprintf(prompts_buf, sizeof prompts_buf, "%s/prompts/all.jsonl", MS_DATA_DIR);
        prompts = prompts_buf;
    }
    if (!file_exists(prompts)) return ms_cli_fail(CMD, "%s: prompt set not found", prompts);
    if (!db) {
        snprintf(db_buf, sizeof db_buf, "%s/demo.db", dir);
        db = db_buf;
        /* the default database is the demo's own artefact: start afresh */
        const char *sfx[] = { "", "-wal", "-shm" };
        for (size_t i = 0; i < 3; i++) {
            char p[4200];
            snprintf(p, sizeof p, "%s%s", db, sfx[i]);
            unlink(p);
        }
    }

    if (!model) {
        snprintf(model_buf, sizeof model_buf, "%s/models/default.gguf", MS_DATA_DIR);
        if (!file_exists(model_buf)) {
            snprintf(model_buf, sizeof model_buf, "%s/synth-olmoe-demo.gguf", dir);
            if (!file_exists(model_buf)) {
                char *sv[] = { "synth", "--arch", "olmoe", "--layers", "4", "--embd", "256",
                               "--heads", "8", "--experts", "16", "--used", "4", "--ff", "256",
                               "--vocab", "2048", "--type", "Q8_0", "--seed", "7", model_buf };
                if (step("no default model yet: synthesising a small random-weight one", ms_cmd_synth,
                         (int)MS_ARRAY_LEN(sv), sv)) return 1;
            }
        }
        model = model_buf;
    } else if (!file_exists(model)) {
        return ms_cli_fail(CMD, "%s: model not found", model);
    }

    char *iv[] = { "info", (char *)model };
    if (step("the model", ms_cmd_info, 2, iv)) return 1;

    char *tv[16];
    int tn = 0;
    tv[tn++] = "trace"; tv[tn++] = (char *)model; tv[tn++] = "--prompts"; tv[tn++] = (char *)prompts;
    tv[tn++] = "--db"; tv[tn++] = (char *)db; tv[tn++] = "--probs"; tv[tn++] = "--stats";
    tv[tn++] = "--gen"; tv[tn++] = "8";
    if (threads) { tv[tn++] = "-t"; tv[tn++] = (char *)threads; }
    if (step("tracing every prompt (prefill + 8 generated tokens)", ms_cmd_trace, tn, tv)) return 1;

    char *sq[] = { "sql", "--db", (char *)db,
                   "SELECT count(DISTINCT prompt_id) AS prompts, count(*) AS tokens, "
                   "sum(is_generated) AS generated FROM token" };
    if (step("what was traced (plain SQL)", ms_cmd_sql, (int)MS_ARRAY_LEN(sq), sq)) return 1;

    char *lv[] = { "analyze", "load", "--db", (char *)db };
    if (step("expert load per layer", ms_cmd_analyze, (int)MS_ARRAY_LEN(lv), lv)) return 1;
    char *cv[] = { "analyze", "crosslingual", "--db", (char *)db };
    if (step("cross-lingual routing divergence (parallel prompts, labels language/pair_id)",
             ms_cmd_analyze, (int)MS_ARRAY_LEN(cv), cv)) return 1;

    if (npmi_top(db, "language", "expert association with the prompts' language (nPMI, table an_npmi)",
                 "top experts per language label (code = source code)")) return 1;
    if (npmi_top(db, NULL, "expert association with token-text classes (nPMI, table an_npmi)",
                 "top experts per token class (digit, punct, whitespace, word)")) return 1;

    printf("\nThe trace is in %s: query it with `moescope sql --db %s '...'` or sqlite3;\n"
           "results of the analyses are in its an_* tables (docs/schema.md, docs/analysis.md).\n", db, db);
    if (gui) return open_workbench(model, prompts, db);
    return 0;
}
