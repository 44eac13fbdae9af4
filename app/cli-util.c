/* cli-util.c — helpers shared by the moescope subcommands (see cli-util.h). */
#include "cli-util.h"
#include "trace.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

static void vfail(const char *cmd, const char *fmt, va_list ap)
{
    fprintf(stderr, "moescope %s: ", cmd);
    vfprintf(stderr, fmt, ap);
}

int ms_cli_fail(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(cmd, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return MS_CLI_EXIT_FAIL;
}

int ms_cli_usage(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(cmd, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (try moescope %s --help)\n", cmd);
    return MS_CLI_EXIT_USAGE;
}

int ms_cli_fail_err(const char *cmd, const MsError *err)
{
    const char *m = err && err->msg[0] ? err->msg : ms_strerror(err ? err->code : MS_EINTERNAL);
    /* Messages are one line by contract; keep it so even if one is not. */
    fprintf(stderr, "moescope %s: ", cmd);
    for (const char *p = m; *p; p++) fputc(*p == '\n' ? ' ' : *p, stderr);
    fputc('\n', stderr);
    return MS_CLI_EXIT_FAIL;
}

bool ms_cli_is_help(const char *arg)
{
    return !strcmp(arg, "-h") || !strcmp(arg, "--help");
}

int ms_cli_opt(const char *cmd, int argc, char **argv, int *i,
               const char *name, const char *alt, const char **val)
{
    const char *a = argv[*i];
    size_t nl = strlen(name);
    if (!strncmp(a, name, nl) && a[nl] == '=' && name[0] == '-' && name[1] == '-') {
        *val = a + nl + 1;
        return 1;
    }
    if (strcmp(a, name) != 0 && !(alt && !strcmp(a, alt))) return 0;
    if (*i + 1 >= argc) {
        ms_cli_usage(cmd, "%s needs a value", a);
        return -1;
    }
    *val = argv[++*i];
    return 1;
}

int ms_cli_parse_int(const char *cmd, const char *opt, const char *s, long lo, long hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno) {
        ms_cli_usage(cmd, "%s: '%s' is not an integer", opt, s);
        return -1;
    }
    if (v < lo || v > hi) {
        ms_cli_usage(cmd, "%s: %ld is out of range [%ld, %ld]", opt, v, lo, hi);
        return -1;
    }
    *out = (int)v;
    return 0;
}

int ms_cli_parse_u64(const char *cmd, const char *opt, const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    if (!*s || *s == '-') {
        ms_cli_usage(cmd, "%s: '%s' is not a non-negative integer", opt, s);
        return -1;
    }
    unsigned long long v = strtoull(s, &end, 0);
    if (*end || errno) {
        ms_cli_usage(cmd, "%s: '%s' is not a non-negative integer", opt, s);
        return -1;
    }
    *out = (uint64_t)v;
    return 0;
}

int ms_cli_parse_float(const char *cmd, const char *opt, const char *s, double lo, double hi, float *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (!*s || *end || errno || !isfinite(v)) {
        ms_cli_usage(cmd, "%s: '%s' is not a number", opt, s);
        return -1;
    }
    if (v < lo || v > hi) {
        ms_cli_usage(cmd, "%s: %g is out of range [%g, %g]", opt, v, lo, hi);
        return -1;
    }
    *out = (float)v;
    return 0;
}

int ms_cli_read_file(const char *path, char **buf, size_t *len, MsError *err)
{
    /* bounded: /dev/zero or a huge file is an error, not memory without end */
    return ms_text_read_file(path, 0, buf, len, err);
}

bool ms_cli_db_exists(const char *path)
{
    return ms_trace_path_is_postgresql(path) || access(path, F_OK) == 0;
}

int ms_cli_run_layers(MsTraceDb *db, int64_t run, int64_t *run_out, int *n_layer, int *n_moe, MsError *err)
{
    if (run <= 0) {
        int64_t *ids = NULL;
        int n = 0;
        if (ms_trace_runs(db, &ids, &n, err) < 0) return err->code;
        run = n > 0 ? ids[n - 1] : 0;
        free(ids);
        if (run <= 0) return 1;
    }
    MsTraceRunInfo ri = { 0 };
    int rc = ms_trace_run_info(db, run, &ri, err);
    if (rc == 0) {
        *run_out = run;
        *n_layer = ri.model.n_layer;
        *n_moe = ri.model.n_moe_layers > 0 ? ri.model.n_moe_layers : ri.model.n_layer;
    }
    ms_trace_run_info_clear(&ri);
    return rc == MS_ENOTFOUND ? 1 : rc;
}

void ms_cli_drop_new_db(MsTraceDb **db, const char *path)
{
    ms_trace_close(*db);
    *db = NULL;
    ms_cli_remove_db(path);
}

size_t ms_cli_text_width(const char *s)
{
    size_t w = 0;
    for (; *s; s++) w += ((unsigned char)*s & 0xC0) != 0x80;
    return w;
}

void ms_cli_remove_db(const char *path)
{
    char side[4096];
    unlink(path);
    snprintf(side, sizeof side, "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", path);
    unlink(side);
}

/* ---- intervention flags ---- */

static const struct { const char *flag, *kind; } iv_flags[] = {
    { "--silence", "silence" }, { "--drop", "drop" }, { "--force", "force" },
    { "--steer", "steer" }, { "--scale", "scale" }, { "--steer-std", "steer-std" },
    { "--raise", "raise" }, { "--lower", "lower" }, { "--top-k", "top-k" }, { "--ser", "ser" },
    { "--interventions", "file" },   /* a whole set in text form, e.g. a plan written by analyze --out */
};

int ms_cli_iv_opt(const char *cmd, MsCliIvSpecs *s, int argc, char **argv, int *i)
{
    for (size_t f = 0; f < MS_ARRAY_LEN(iv_flags); f++) {
        const char *val;
        int r = ms_cli_opt(cmd, argc, argv, i, iv_flags[f].flag, NULL, &val);
        if (r < 0) return -1;
        if (r == 0) continue;
        if (s->n == s->cap) {
            int nc = s->cap ? s->cap * 2 : 8;
            const char **k = realloc(s->kind, (size_t)nc * sizeof *k);
            if (!k) return ms_cli_fail(cmd, "out of memory"), -1;
            s->kind = k;
            const char **v = realloc(s->spec, (size_t)nc * sizeof *v);
            if (!v) return ms_cli_fail(cmd, "out of memory"), -1;
            s->spec = v;
            s->cap = nc;
        }
        s->kind[s->n] = iv_flags[f].kind;
        s->spec[s->n] = val;
        s->n++;
        return 1;
    }
    return 0;
}

int ms_cli_iv_build(const char *cmd, const MsCliIvSpecs *s, int n_layer, int n_expert,
                    MsIntervention **out)
{
    *out = NULL;
    if (s->n == 0) return 0;
    MsIntervention *iv = ms_intervention_new(n_layer, n_expert);
    if (!iv) return ms_cli_fail(cmd, "out of memory");
    for (int k = 0; k < s->n; k++) {
        MsError err = { 0 };
        if (!strcmp(s->kind[k], "file")) {
            if (ms_intervention_load(iv, s->spec[k], &err) < 0) {   /* "FILE:LINE: problem": a failure */
                ms_intervention_free(iv);
                return ms_cli_fail(cmd, "%s", err.msg);
            }
            continue;
        }
        if (ms_intervention_parse(iv, s->kind[k], s->spec[k], &err) < 0) {
            ms_intervention_free(iv);
            /* an option's value: a usage error; the parser's message already starts with "--KIND SPEC: " */
            if (err.msg[0]) return ms_cli_usage(cmd, "%s", err.msg);
            return ms_cli_usage(cmd, "--%s %s: invalid", s->kind[k], s->spec[k]);
        }
    }
    *out = iv;
    return 0;
}

void ms_cli_iv_free(MsCliIvSpecs *s)
{
    free(s->kind);
    free(s->spec);
    memset(s, 0, sizeof *s);
}

const char *ms_cli_iv_help(void)
{
    return "interventions (repeatable; L and E take comma lists, ranges a-b and '*'):\n"
           "  --silence L:E        exclude expert E at layer L before top-k (next expert fills in)\n"
           "  --drop L:E           select as usual but remove the expert's contribution\n"
           "  --force L:E          always select expert E at layer L\n"
           "  --steer L:E:DELTA    add DELTA to the router logit of E before selection\n"
           "  --scale L:E:F        multiply the applied gate weight of E by F\n"
           "  --steer-std L:E:LAMBDA  add LAMBDA x (std of the token's router logits) to E's logit\n"
           "  --raise L:E[:D]      set E's logit to the token's max logit + D (default 0.01:\n"
           "                       SteerMoE activation; D 0 = the hard operator)\n"
           "  --lower L:E[:D]      set E's logit to the token's min logit - D (default 0.01)\n"
           "  --top-k K|L:K        use K experts per token (all layers, or layer L)\n"
           "  --ser KMIN:T|L:KMIN:T  threshold routing: of the top k keep the best KMIN and each\n"
           "                       other one whose score is >= T x the best's (T in 0..1); the\n"
           "                       rest are not computed\n"
           "  --interventions FILE a whole set in text form ('raise 3:5; lower 2:1; ...', '#'\n"
           "                       comments; docs/interventions.md), e.g. a plan written by\n"
           "                       `analyze npmi|riskdiff|crosslingual --out FILE`\n";
}

void ms_cli_fmt_float(char *buf, size_t cap, float v)
{
    if (!isfinite(v)) {
        snprintf(buf, cap, "%s", isnan(v) ? "nan" : (v > 0 ? "inf" : "-inf"));
        return;
    }
    for (int p = 1; p <= 9; p++) {
        snprintf(buf, cap, "%.*g", p, (double)v);
        if (strtof(buf, NULL) == v) return;
    }
    snprintf(buf, cap, "%.9g", (double)v);
}

double ms_cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int ms_cli_fail_path(const char *cmd, const char *path, const MsError *err)
{
    const char *m = err && err->msg[0] ? err->msg : ms_strerror(err ? err->code : MS_EINTERNAL);
    size_t pl = strlen(path);
    /* already named: the path itself, or a file inside it (a checkpoint directory) */
    if (!strncmp(m, path, pl) && (m[pl] == ':' || (m[pl] == '/' && pl > 0) || (pl > 0 && path[pl - 1] == '/')))
        return ms_cli_fail_err(cmd, err);
    MsError e2 = { .code = err ? err->code : MS_EINTERNAL };
    snprintf(e2.msg, sizeof e2.msg, "%.200s: %.300s", path, m);
    return ms_cli_fail_err(cmd, &e2);
}

MsModel *ms_cli_load_model(const char *cmd, const char *path, MsWeights weights)
{
    struct stat st;
    MsError err = { 0 };
    /* Cheap checks first so the message is plain even if a lower layer
     * words it differently. */
    if (stat(path, &st) != 0) {
        ms_cli_fail(cmd, "%s: %s", path, strerror(errno));
        return NULL;
    }
    /* a directory is a Hugging Face checkpoint (engine/hf.h) */
    (void)st;
    MsModel *m = ms_model_load_ex(path, weights, &err);
    if (!m) ms_cli_fail_path(cmd, path, &err);
    return m;
}

int ms_cli_model_arg(const char *cmd, const char *a, const char **path)
{
    if (a[0] == '-' && a[1]) return ms_cli_usage(cmd, "unknown option '%s'", a), -1;
    if (*path) return ms_cli_usage(cmd, "more than one MODEL ('%s', '%s')", *path, a), -1;
    *path = a;
    return 0;
}

/* ---- declarative options and the shared option groups ---- */

static int parse_value(const char *cmd, const MsCliOpt *o, const char *v)
{
    switch (o->kind) {
    case MS_OPT_STR: *(const char **)o->dst = v; return 0;
    case MS_OPT_INT: return ms_cli_parse_int(cmd, o->name, v, (long)o->lo, (long)o->hi, o->dst);
    case MS_OPT_U64: return ms_cli_parse_u64(cmd, o->name, v, o->dst);
    case MS_OPT_FLOAT: return ms_cli_parse_float(cmd, o->name, v, o->lo, o->hi, o->dst);
    case MS_OPT_DOUBLE: {
        float f;
        if (ms_cli_parse_float(cmd, o->name, v, o->lo, o->hi, &f) < 0) return -1;
        *(double *)o->dst = strtod(v, NULL);   /* checked above; keep every digit */
        return 0;
    }
    case MS_OPT_I64: {
        int x;
        if (ms_cli_parse_int(cmd, o->name, v, (long)o->lo, (long)o->hi, &x) < 0) return -1;
        *(int64_t *)o->dst = x;
        return 0;
    }
    default: return -1;
    }
}

/* 1 consumed, 0 not one of opts, -1 usage error printed */
static int try_opts(const char *cmd, const MsCliOpt *opts, int argc, char **argv, int *i)
{
    const char *a = argv[*i], *v;
    for (const MsCliOpt *o = opts; o && o->name; o++) {
        if (o->kind == MS_OPT_FLAG) {
            if (strcmp(a, o->name) && !(o->alt && !strcmp(a, o->alt))) continue;
            *(bool *)o->dst = true;
            return 1;
        }
        int r = ms_cli_opt(cmd, argc, argv, i, o->name, o->alt, &v);
        if (r == 0) continue;
        /* a bad value is reported under the name the user typed (-n, not --n-predict) */
        MsCliOpt as_typed = *o;
        if (o->alt && strncmp(a, o->name, strlen(o->name))) as_typed.name = o->alt;
        if (r < 0 || parse_value(cmd, &as_typed, v) < 0) return -1;
        return 1;
    }
    return 0;
}

static const MsCliOpt group_threads[] = { { "--threads", "-t", MS_OPT_INT, NULL, 0, 1024 }, { 0 } };

int ms_cli_parse(const char *cmd, int argc, char **argv, const MsCliOpt *opts, MsCliCommon *c, const char *help)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r;
        if (ms_cli_is_help(a)) {
            fputs(help, stdout);
            if (c->groups & MS_CLI_G_IV) fputs(ms_cli_iv_help(), stdout);
            return MS_CLI_HELP;
        }
        if ((r = try_opts(cmd, opts, argc, argv, &i)) != 0) {
            if (r < 0) return 2;
            continue;
        }
        if (c->groups & MS_CLI_G_THREADS) {
            MsCliOpt t[2] = { group_threads[0], { 0 } };
            t[0].dst = &c->n_threads;
            if ((r = try_opts(cmd, t, argc, argv, &i)) != 0) {
                if (r < 0) return 2;
                continue;
            }
            if (!strcmp(a, "--mmap") || !strcmp(a, "--no-mmap")) {
                MsWeights w = a[2] == 'm' ? MS_WEIGHTS_MAPPED : MS_WEIGHTS_COPIED;
                if (c->weights != MS_WEIGHTS_AUTO && c->weights != w)
                    return ms_cli_usage(cmd, "--mmap and --no-mmap contradict each other");
                c->weights = w;
                continue;
            }
        }
        if ((c->groups & MS_CLI_G_PROMPTS) && (r = ms_cli_opt(cmd, argc, argv, &i, "--prompts", NULL, &c->prompts)) != 0) {
            if (r < 0) return 2;
            continue;
        }
        if ((c->groups & MS_CLI_G_IV) && (r = ms_cli_iv_opt(cmd, &c->ivs, argc, argv, &i)) != 0) {
            if (r < 0) return 2;
            continue;
        }
        if (!(c->groups & MS_CLI_G_MODEL) && a[0] == '-' && a[1]) return ms_cli_usage(cmd, "unknown option '%s'", a);
        if (!(c->groups & MS_CLI_G_MODEL)) return ms_cli_usage(cmd, "unexpected argument '%s'", a);
        if (ms_cli_model_arg(cmd, a, &c->model) < 0) return 2;
    }
    if ((c->groups & MS_CLI_G_MODEL) && !c->model) return ms_cli_usage(cmd, "missing MODEL");
    if ((c->groups & MS_CLI_G_PROMPTS) && !c->prompts) return ms_cli_usage(cmd, "--prompts FILE is required");
    return 0;
}

void ms_cli_common_free(MsCliCommon *c)
{
    if (c) ms_cli_iv_free(&c->ivs);
}

int ms_cli_common_load(const char *cmd, const MsCliCommon *c, MsModel **m, MsIntervention **iv)
{
    *m = NULL;
    *iv = NULL;
    if (!(*m = ms_cli_load_model(cmd, c->model, c->weights))) return MS_CLI_EXIT_FAIL;
    const MsModelInfo *in = ms_model_info(*m);
    int rc = ms_cli_iv_build(cmd, &c->ivs, in->n_layer, in->n_expert, iv);
    MsError err = { 0 };
    if (rc == 0 && *iv && ms_intervention_validate(*iv, in->n_layer, in->n_expert, in->n_expert_used, &err) < 0) {
        /* against this model (its top-k): named by what was typed, a usage
         * error for flags as for a malformed value, a failure for files */
        char given[512] = "";
        size_t len = 0;
        bool file = false;
        for (int k = 0; k < c->ivs.n && len < sizeof given; k++) {
            bool f = !strcmp(c->ivs.kind[k], "file");
            file |= f;
            int w = snprintf(given + len, sizeof given - len, "%s--%s %s", k ? " " : "",
                             f ? "interventions" : c->ivs.kind[k], c->ivs.spec[k]);
            len += w > 0 ? (size_t)w : 0;
        }
        const char *msg = strncmp(err.msg, "intervention: ", 14) ? err.msg : err.msg + 14;
        rc = file ? ms_cli_fail(cmd, "%s: %s", given, msg) : ms_cli_usage(cmd, "%s: %s", given, msg);
        ms_intervention_free(*iv);
        *iv = NULL;
    }
    if (rc != 0) {
        ms_model_free(*m);
        *m = NULL;
    }
    return rc;
}

int ms_cli_read_prompts(const char *cmd, const char *path, MsPrompt **p, size_t *n)
{
    MsError err = { 0 };
    if (ms_prompts_read(path, p, n, &err) < 0) return ms_cli_fail_err(cmd, &err);
    return 0;
}

/* The one piece of process state a command line has: where SIGINT goes.
 * A lock-free atomic store is async-signal-safe. */
static MsCancel *volatile sigint_flag;
static volatile sig_atomic_t sigint_seen;

static void on_sigint(int sig)
{
    (void)sig;
    sigint_seen = 1;
    if (sigint_flag) ms_cancel_request(sigint_flag);
    signal(SIGINT, SIG_DFL);   /* a second Ctrl+C stops at once */
}

void ms_cli_sigint_cancel(MsCancel *flag)
{
    sigint_flag = flag;
    sigint_seen = 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
}

void ms_cli_sigint_restore(void)
{
    signal(SIGINT, SIG_DFL);
    sigint_flag = NULL;
}

bool ms_cli_sigint_seen(void) { return sigint_seen != 0; }

void ms_cli_bar_init(MsCliBar *b, const char *unit)
{
    b->tty = isatty(STDERR_FILENO);
    b->last = 0;
    b->unit = unit;
}

void ms_cli_bar_progress(void *user, const MsProgress *p)
{
    MsCliBar *b = user;
    bool final = p->total > 0 && p->done >= p->total;
    if (!b->tty) return;
    double now = ms_cli_now();
    if (!final && now - b->last < 0.2) return;
    b->last = now;
    double eta = p->eta_s > 0 ? p->eta_s : 0;
    int width = 30, fill = p->total ? (int)((double)width * (double)p->done / (double)p->total) : width;
    char bar[64];
    for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
    bar[width] = '\0';
    fprintf(stderr, "\r[%s] %lld/%lld %s  %.0f tok/s  ETA %02d:%02d  ", bar, (long long)p->done, (long long)p->total,
            b->unit, p->tokens_per_s, (int)(eta / 60), (int)fmod(eta, 60));
    if (final) fputc('\n', stderr);
    fflush(stderr);
}

int ms_cli_shard(const char *cmd, const char *text, int *i, int *n)
{
    *i = *n = 1;
    if (!text) return 0;
    char tail;
    if (sscanf(text, "%d/%d%c", i, n, &tail) != 2 || *n < 1 || *n > 1000000 || *i < 1 || *i > *n)
        return ms_cli_usage(cmd, "--shard must be I/N with 1 <= I <= N (got '%s')", text);
    return 0;
}

void ms_cli_worker_name(char *buf, size_t size, int i, int n)
{
    char host[256] = "";
    if (gethostname(host, sizeof host - 1) != 0) snprintf(host, sizeof host, "localhost");
    if (n > 1) snprintf(buf, size, "%s:%ld shard %d/%d", host, (long)getpid(), i, n);
    else snprintf(buf, size, "%s:%ld", host, (long)getpid());
}
