/* cli-util.h — small helpers shared by the `moescope` subcommands: option
 * matching, checked number parsing, one-line error printing in the form
 * "moescope CMD: FILE: problem", whole-file reading, and the intervention
 * flags (--silence --drop --force --steer --scale --steer-std --raise --lower
 * --top-k), which are
 * collected while parsing and applied once the model (and so the layer and
 * expert counts) is known.
 *
 * Exit-status convention (app/commands.h): 0 success, 1 failure, 2 usage. */
#ifndef MS_CLI_UTIL_H
#define MS_CLI_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "engine.h"
#include "prompts.h"

#define MS_CLI_EXIT_OK 0
#define MS_CLI_EXIT_FAIL 1
#define MS_CLI_EXIT_USAGE 2

/* "moescope CMD: <message>\n" on stderr.  Returns 1 (the failure status). */
int ms_cli_fail(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Same text plus " (try moescope CMD --help)"; returns 2 (usage status). */
int ms_cli_usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Print err->msg (which already names the file) for cmd; returns 1. */
int ms_cli_fail_err(const char *cmd, const MsError *err);

/* True for "-h" / "--help". */
bool ms_cli_is_help(const char *arg);

/* Option matching.  If argv[*i] is `name` (or `alt`, may be NULL) followed by
 * a value, or `name=value`, stores the value in *val, advances *i past it and
 * returns 1.  Returns 0 when the argument is a different option, and -1 (after
 * printing a usage error) when the value is missing. */
int ms_cli_opt(const char *cmd, int argc, char **argv, int *i,
               const char *name, const char *alt, const char **val);

/* The MODEL positional argument a: an unknown option ('-x') or a second
 * path is a usage error (printed; returns -1); else *path = a, returns 0. */
int ms_cli_model_arg(const char *cmd, const char *a, const char **path);
/* Checked number parsing: the whole string must be a number in [lo, hi].
 * On error prints "moescope CMD: OPT: 'S' is not ..." and returns -1. */
int ms_cli_parse_int(const char *cmd, const char *opt, const char *s, long lo, long hi, int *out);
int ms_cli_parse_u64(const char *cmd, const char *opt, const char *s, uint64_t *out);
int ms_cli_parse_float(const char *cmd, const char *opt, const char *s, double lo, double hi, float *out);

/* Read a whole file of at most MS_PROMPT_MAX_FILE bytes into a malloc'd
 * NUL-terminated buffer (length in *len), byte for byte.  Errors as "PATH:
 * problem" in err (a larger or endless file: MS_ERANGE). */
int ms_cli_read_file(const char *path, char **buf, size_t *len, MsError *err);
/* Remove a database file this command created and its -wal / -shm files
 * (after a failure that left nothing worth keeping in it). */
void ms_cli_remove_db(const char *path);
struct MsTraceDb;
/* Close *db (set to NULL) and remove the file it created: a refused command
 * leaves no new database behind. */
void ms_cli_drop_new_db(struct MsTraceDb **db, const char *path);
/* Display width of UTF-8 text in code points (printf pads by bytes). */
size_t ms_cli_text_width(const char *s);
/* True when path names an existing database file or a PostgreSQL URI (a
 * server's database is never removed): a command that fails before writing
 * anything removes the database only when this was false before it began. */
bool ms_cli_db_exists(const char *path);
/* The blocks and MoE layers of run's model (run 0: the newest run, whose id
 * goes to *run_out).  1 when there is no such run (the command's own reading
 * says so), 0 when found, else MS_E* with err set. */
int ms_cli_run_layers(struct MsTraceDb *db, int64_t run, int64_t *run_out, int *n_layer, int *n_moe, MsError *err);

/* --shard I/N (the one parser of it): *i and *n set; a malformed value is a
 * usage error (printed; returns 2).  NULL text: *i = *n = 1, returns 0. */
int ms_cli_shard(const char *cmd, const char *text, int *i, int *n);
/* The name a worker writes into prompt.worker: "host:pid", plus " shard I/N"
 * when n > 1. */
void ms_cli_worker_name(char *buf, size_t size, int i, int n);

/* ---- intervention flags ---- */
typedef struct {
    int n, cap;
    const char **kind;   /* "silence" ... "top-k", the parser's kinds (static strings) */
    const char **spec;   /* borrowed from argv */
} MsCliIvSpecs;

/* If argv[*i] is one of the intervention flags, record it (advancing *i) and
 * return 1; 0 if not such a flag; -1 after a usage error (missing value). */
int ms_cli_iv_opt(const char *cmd, MsCliIvSpecs *s, int argc, char **argv, int *i);
/* Build the intervention set for a model: 0, or the exit status after a
 * printed error naming the spec (2: a flag's value, 1: an --interventions
 * file, "FILE:LINE: problem").  *out is NULL when no flag was given. */
int ms_cli_iv_build(const char *cmd, const MsCliIvSpecs *s, int n_layer, int n_expert,
                    MsIntervention **out);
void ms_cli_iv_free(MsCliIvSpecs *s);
/* Help text for the intervention flags (static). */
const char *ms_cli_iv_help(void);

/* Shortest decimal ("%.6g".."%.9g") that reads back (strtof) as the same
 * float32.  Non-finite values print as JSON-incompatible "nan"/"inf", so the
 * caller decides what to do with them.  buf must hold 32 bytes. */
void ms_cli_fmt_float(char *buf, size_t cap, float v);

/* Load (and so validate) a model; on failure prints one line
 * "moescope CMD: PATH: problem" and returns NULL. */
MsModel *ms_cli_load_model(const char *cmd, const char *path, MsWeights weights);
/* Print err for a failure about path, adding "PATH: " when the message does
 * not already name it.  Returns 1. */
int ms_cli_fail_path(const char *cmd, const char *path, const MsError *err);

/* Monotonic clock in seconds. */
double ms_cli_now(void);

/* ---- declarative options and the shared option groups ----
 * A command lists its own options in a table and names the shared groups it
 * takes; ms_cli_parse handles --help, NAME VALUE and NAME=VALUE, checked
 * numbers, unknown options and the MODEL positional, so each command's
 * parsing is a table, not a loop. */
typedef enum { MS_OPT_FLAG = 1, MS_OPT_STR, MS_OPT_INT, MS_OPT_U64, MS_OPT_I64, MS_OPT_FLOAT, MS_OPT_DOUBLE } MsCliOptKind;
typedef struct {
    const char *name, *alt;   /* "--gen", "-n" (alt may be NULL) */
    MsCliOptKind kind;
    void *dst;                /* bool*, const char **, int *, uint64_t *, int64_t *, float *, double * */
    double lo, hi;            /* allowed range of INT, I64 and FLOAT values */
} MsCliOpt;

enum {
    MS_CLI_G_MODEL = 1,       /* the MODEL positional (required) */
    MS_CLI_G_THREADS = 2,     /* -t, --threads N; --mmap, --no-mmap */
    MS_CLI_G_PROMPTS = 4,     /* --prompts FILE (required) */
    MS_CLI_G_IV = 8,          /* the intervention flags */
};

typedef struct {
    unsigned groups;          /* MS_CLI_G_* this command takes (set before parsing) */
    const char *model;
    int n_threads;            /* 0 = all CPUs */
    MsWeights weights;        /* --mmap: MAPPED, --no-mmap: COPIED, neither: AUTO */
    const char *prompts;
    MsCliIvSpecs ivs;
} MsCliCommon;

/* Help lines of --mmap / --no-mmap, for the commands with MS_CLI_G_THREADS. */
#define MS_CLI_WEIGHTS_HELP \
    "  --mmap / --no-mmap  keep the weights in the file mapping / always copy\n" \
    "                  them into memory of their own (default: copy when the file\n" \
    "                  is at most half the available memory; faster, 2 MB pages)\n"

#define MS_CLI_HELP (-1)
/* Parse argv[1..argc) against opts (terminated by a zeroed entry) and the
 * groups of c.  Returns 0 when the command should run (required groups
 * present); MS_CLI_HELP after printing help (then the intervention help for
 * commands with MS_CLI_G_IV); 2 after a usage error.  Return
 * ms_cli_exit(rc) for the last two.  Strings stored are borrowed from argv. */
int ms_cli_parse(const char *cmd, int argc, char **argv, const MsCliOpt *opts, MsCliCommon *c, const char *help);
void ms_cli_common_free(MsCliCommon *c);
/* Exit status for a non-zero ms_cli_parse result (MS_CLI_HELP -> 0). */
static inline int ms_cli_exit(int rc) { return rc == MS_CLI_HELP ? 0 : rc; }
/* Load c->model and build the intervention set (NULL when none was given).
 * Returns 0, or the exit status after printing the error. */
int ms_cli_common_load(const char *cmd, const MsCliCommon *c, MsModel **m, MsIntervention **iv);
/* Read c->prompts; returns 0 or 1 after printing the error. */
int ms_cli_read_prompts(const char *cmd, const char *path, MsPrompt **p, size_t *n);

/* Ctrl+C during a long job: the first SIGINT sets *flag (the job stops at
 * the next layer and returns MS_ECANCELLED); a second one kills the process
 * as usual.  Returns the previous handler state for ms_cli_sigint_restore. */
void ms_cli_sigint_cancel(MsCancel *flag);
void ms_cli_sigint_restore(void);
bool ms_cli_sigint_seen(void);

/* Progress bar on stderr for MsProgressFn (user = MsCliBar); draws only on a
 * terminal, at most every 0.2 s, and a final line when done == total. */
typedef struct {
    bool tty;
    double last;
    const char *unit;         /* "prompts" */
} MsCliBar;
void ms_cli_bar_init(MsCliBar *b, const char *unit);
void ms_cli_bar_progress(void *user, const MsProgress *p);

#endif
