/* cmd-analyze.c — `moescope analyze NAME --db DB ...`: runs one analysis
 * module (analysis/db/run.h) on a stored run, writes its result tables into
 * the database and prints the result as a table or CSV (from the typed
 * result's main table) or JSON (analysis/db/result-json.h), docs/analysis.md. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>
#include <jansson.h>

#include "cli-util.h"
#include "commands.h"
#include "result-json.h"
#include "run.h"

#define CMD "analyze"

static const char usage_text[] =
    "usage: moescope analyze NAME --db DB [--run R] [--layer L] [--format table|csv|json]\n"
    "                        [--role all|prompt|generated] [--no-write] [module options]\n"
    "modules: load coactivation affinity consistency superexperts npmi riskdiff crosslingual pathways\n"
    "         all (every module that applies, decoding the trace once; prints per-module times)\n"
    "  affinity:     --distance D (1)  --variant topk|top1|weighted  --top N (10)\n"
    "  consistency:  --segments 4,16,64,256  --cache C,C,... (default 1..E)  --cold\n"
    "  superexperts: --include-layers F (0.75)  --rule paper|p99.5|mean+3sd|50xmean\n"
    "  npmi:         --by text|token|label:NAME|pos[:B]  --min-support N (5)  --max-classes N (512)\n"
    "                --plan CLASS --top N (2) [--beta B: boost by ln B; without: silence]  --out FILE\n"
    "  riskdiff:     --label NAME --set1 V --set2 V  --activate N  --deactivate N  --reverse  --out FILE\n"
    "  crosslingual: --lang-key K (language) --pair-key K (pair_id) --ref LANG (en) --tau T (0.3)\n"
    "                --middle A-B (block indices; default the middle half)  --out FILE\n"
    "                --operator soft|hard (soft: steer-std LAMBDA; hard: raise to the max)  --lambda L (0.5)\n"
    "  pathways:     --tau T (0.7)  --granularity char|token  --pairs N (2000)  --seed S\n"
    "  crosslingual, pathways: --sparse-weights (the applied top-k weights instead of router\n"
    "                probabilities, for runs traced without --probs)\n"
    "Results are written to tables an_<module>* of DB (see docs/analysis.md) once the\n"
    "computation has completed; Ctrl+C stops it and writes nothing (exit status 130).\n";

static int parse_list(const char *opt, const char *s, int *out, int cap, int *n)
{
    *n = 0;
    const char *p = s;
    while (*p) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 1 || v > 1 << 20 || (*end && *end != ',') || *n >= cap)
            return ms_cli_usage(CMD, "%s: '%s' is not a comma list of positive integers", opt, s);
        out[(*n)++] = (int)v;
        p = *end ? end + 1 : end;
    }
    if (*n == 0) return ms_cli_usage(CMD, "%s: empty list", opt);
    return 0;
}

static void fmt_cell(const MsAnCell *v, char *buf, size_t n, bool csv)
{
    if (v->type == MS_AN_INT) snprintf(buf, n, "%lld", (long long)v->i);
    else if (v->type == MS_AN_REAL && isfinite(v->r)) snprintf(buf, n, csv ? "%.17g" : "%.6g", v->r);
    else if (v->type == MS_AN_TEXT) snprintf(buf, n, "%s", v->s);
    else snprintf(buf, n, "%s", csv ? "" : "-");   /* NULL, NaN */
}

static void print_csv_cell(const char *s)
{
    if (!strpbrk(s, ",\"\n\r")) {
        fputs(s, stdout);
        return;
    }
    putchar('"');
    for (; *s; s++) {
        if (*s == '"') putchar('"');
        putchar(*s);
    }
    putchar('"');
}

/* A table's rows as an aligned table (text left, numbers right) or CSV. */
static void print_rows(const MsAnTable *t, bool csv)
{
    int64_t n = t->n_rows;
    if (n == 0) {
        if (!csv) printf("(no rows)\n");
        return;
    }
    int nc = t->n_cols;
    int *w = calloc((size_t)nc, sizeof *w);
    MsAnCell *cells = calloc((size_t)nc, sizeof *cells);
    if (!w || !cells) { free(w); free(cells); return; }
    for (int c = 0; c < nc; c++) w[c] = (int)strlen(t->cols[c]);
    char buf[256];
    if (!csv)
        for (int64_t i = 0; i < n; i++) {
            ms_an_table_row(t, i, cells);
            for (int c = 0; c < nc; c++) {
                fmt_cell(&cells[c], buf, sizeof buf, false);
                if ((int)strlen(buf) > w[c]) w[c] = (int)strlen(buf);
            }
        }
    ms_an_table_row(t, 0, cells);   /* a header sits as its column's cells do: text left, numbers right */
    for (int c = 0; c < nc; c++) {
        if (csv) {
            if (c) putchar(',');
            print_csv_cell(t->cols[c]);
        } else {
            printf("%s%*s", c ? "  " : "", cells[c].type == MS_AN_TEXT ? -w[c] : w[c], t->cols[c]);
        }
    }
    putchar('\n');
    for (int64_t i = 0; i < n; i++) {
        ms_an_table_row(t, i, cells);
        for (int c = 0; c < nc; c++) {
            fmt_cell(&cells[c], buf, sizeof buf, csv);
            if (csv) {
                if (c) putchar(',');
                print_csv_cell(buf);
            } else {
                printf("%s%*s", c ? "  " : "", cells[c].type == MS_AN_TEXT ? -w[c] : w[c], buf);
            }
        }
        putchar('\n');
    }
    free(w);
    free(cells);
}

/* analyze all as a table: one line per step (decode, modules in module
 * order, total) with its times, then the skipped modules with the reason. */
typedef struct {
    const MsAnAll *a;
    int n;
    const char *name[MS_AN_N_MODULES + 2];
    const MsAnTime *time[MS_AN_N_MODULES + 2];   /* NULL: skipped */
    const char *note[MS_AN_N_MODULES + 2];
} AllRows;

static const char *const all_cols[] = {"module", "wall_s", "cpu_s", "note"};

static void all_row(const void *src, int64_t i, MsAnCell *c)
{
    const AllRows *r = src;
    c[0] = (MsAnCell){.type = MS_AN_TEXT, .s = r->name[i]};
    if (r->time[i]) {
        c[1] = (MsAnCell){.type = MS_AN_REAL, .r = r->time[i]->wall};
        c[2] = (MsAnCell){.type = MS_AN_REAL, .r = r->time[i]->cpu};
    } else {
        c[1] = c[2] = (MsAnCell){.type = MS_AN_NULL};
    }
    c[3] = (MsAnCell){.type = MS_AN_TEXT, .s = r->note[i]};
}

static void print_all(const MsAnAll *a, bool csv)
{
    AllRows r = {.a = a};
    r.name[r.n] = "decode", r.time[r.n] = &a->decode, r.note[r.n++] = "";
    for (int m = 0; m < MS_AN_N_MODULES; m++)
        if (a->ran[m]) r.name[r.n] = ms_an_module_name((MsAnModule)m), r.time[r.n] = &a->time[m], r.note[r.n++] = "";
    r.name[r.n] = "total", r.time[r.n] = &a->total, r.note[r.n++] = "";
    for (int m = 0; m < MS_AN_N_MODULES; m++)
        if (a->skipped[m]) r.name[r.n] = ms_an_module_name((MsAnModule)m), r.time[r.n] = NULL, r.note[r.n++] = a->skipped[m];
    MsAnTable t = {.name = "all", .n_cols = 4, .cols = all_cols, .n_rows = r.n, .src = &r, .row = all_row};
    print_rows(&t, csv);
}

static int interrupted(const char *db_path)
{
    fprintf(stderr, "moescope analyze: %s: interrupted: nothing was written\n", db_path);
    return 130;   /* 128 + SIGINT, as shells report it */
}

/* Options given as text, checked and turned into MsAnOptions fields. */
typedef struct {
    const char *db, *format, *segments, *cache, *rule, *op, *middle, *granularity;
    bool no_write;
    double tau;
} AnArgs;

static int finish_options(const char *name, const AnArgs *a, MsAnOptions *o)
{
    if (!a->db) return ms_cli_usage(CMD, "--db DB is required");
    if (!strcmp(name, "riskdiff") && (!o->label || !o->set1 || !o->set2))
        return ms_cli_usage(CMD, "riskdiff needs --label NAME --set1 VALUE --set2 VALUE");
    /* only these make a plan: elsewhere --out would silently write nothing */
    if (o->plan_out && strcmp(name, "riskdiff") && strcmp(name, "crosslingual") &&
        (strcmp(name, "npmi") || !o->plan_class))
        return ms_cli_usage(CMD, "--out FILE writes a steering plan: give it with npmi --plan CLASS, riskdiff or "
                            "crosslingual");
    if (strcmp(a->format, "table") && strcmp(a->format, "csv") && strcmp(a->format, "json"))
        return ms_cli_usage(CMD, "--format must be table, csv or json");
    if (a->segments && parse_list("--segments", a->segments, o->segments, MS_AN_MAX_LIST, &o->n_segments)) return 2;
    if (a->cache && parse_list("--cache", a->cache, o->cache, MS_AN_MAX_LIST * 4, &o->n_cache)) return 2;
    o->write = !a->no_write;
    if (!isnan(a->tau)) o->tau = o->path_tau = a->tau;
    if (a->rule) {
        static const char *const rules[] = { "paper", "p99.5", "mean+3sd", "50xmean" };
        static const MsSeRule ids[] = { MS_SE_PAPER, MS_SE_P995, MS_SE_MEAN3SD, MS_SE_MEAN50 };
        int k = 0;
        while (k < 4 && strcmp(a->rule, rules[k])) k++;
        if (k == 4) return ms_cli_usage(CMD, "--rule must be paper, p99.5, mean+3sd or 50xmean");
        o->se_rule = ids[k];
    }
    if (a->op && strcmp(a->op, "hard") && strcmp(a->op, "soft"))
        return ms_cli_usage(CMD, "--operator must be soft or hard (got '%s')", a->op);
    if (a->op) o->cl_hard = !strcmp(a->op, "hard");
    if (a->middle) {
        char tail;
        if (sscanf(a->middle, "%d-%d%c", &o->mid_lo, &o->mid_hi, &tail) != 2 || o->mid_lo < 0 || o->mid_hi < 0)
            return ms_cli_usage(CMD, "--middle: '%s' is not a range A-B", a->middle);
        if (o->mid_hi < o->mid_lo) return ms_cli_usage(CMD, "--middle: reversed range %s", a->middle);
    }
    /* values whose form alone is wrong are usage errors, before the database is read */
    MsError e = { 0 };
    MsAnRole role;
    if (ms_an_role_parse(o->role, MS_AN_ROLE_ALL, &role, &e) < 0) return ms_cli_usage(CMD, "%s", e.msg);
    if (o->variant && strcmp(o->variant, "topk") && strcmp(o->variant, "top1") && strcmp(o->variant, "weighted"))
        return ms_cli_usage(CMD, "--variant must be topk, top1 or weighted (got '%s')", o->variant);
    MsNpmiBy by;
    const char *label;
    int bucket;
    if (o->by && ms_npmi_parse_by(o->by, &by, &label, &bucket, &e) < 0) return ms_cli_usage(CMD, "%s", e.msg);
    if (o->set1 && o->set2 && !strcmp(o->set1, o->set2))
        return ms_cli_usage(CMD, "--set1 and --set2 are both '%s': risk difference compares two sets", o->set1);
    if (a->granularity && strcmp(a->granularity, "token") && strcmp(a->granularity, "char"))
        return ms_cli_usage(CMD, "--granularity must be char or token");
    if (a->granularity) o->token_level = !strcmp(a->granularity, "token");
    return 0;
}

/* Options that name layers, against the run's model: a distance or block
 * range past the last layer would give no rows, not an answer. */
static int check_layers(MsTraceDb *db, const char *path, const MsAnOptions *o)
{
    if (o->distance <= 1 && o->mid_lo < 0) return 0;
    MsError err = { 0 };
    int64_t run = 0;
    int nl = 0, nmoe = 0;
    int rc = ms_cli_run_layers(db, o->run_id, &run, &nl, &nmoe, &err);
    if (rc < 0) return ms_cli_fail_err(CMD, &err);
    if (rc > 0) return 0;   /* no such run: the analysis says so */
    if (o->distance > 1 && nmoe > 0 && o->distance >= nmoe)
        return ms_cli_fail(CMD, "%s: run %lld: --distance %d is not below its %d MoE layers", path, (long long)run,
                           o->distance, nmoe);
    if (o->mid_lo >= 0 && nl > 0 && o->mid_hi >= nl)
        return ms_cli_fail(CMD, "%s: run %lld: --middle %d-%d reaches past its last block (blocks 0..%d)", path,
                           (long long)run, o->mid_lo, o->mid_hi, nl - 1);
    return 0;
}

static int print_module(MsAnResult *res, const char *format)
{
    if (!strcmp(format, "json")) {
        json_t *doc = ms_an_result_json(res);
        char *s = doc ? json_dumps(doc, JSON_COMPACT | JSON_REAL_PRECISION(17)) : NULL;
        if (s) puts(s);
        free(s);
        json_decref(doc);
    } else {
        MsAnTable t[MS_AN_MAX_TABLES];
        int n = ms_an_result_tables(res, t);
        if (n > 0) print_rows(&t[n - 1], !strcmp(format, "csv"));
        const char *plan = ms_an_result_plan(res);
        if (plan && strcmp(format, "csv")) printf("plan: %s\n", *plan ? plan : "(none: no expert qualified)");
    }
    return fflush(stdout) == 0 ? MS_CLI_EXIT_OK : MS_CLI_EXIT_FAIL;
}

static int print_all_modules(MsAnAll *all, const char *format)
{
    if (!strcmp(format, "json")) {
        json_t *doc = ms_an_all_json(all);
        char *s = doc ? json_dumps(doc, JSON_COMPACT | JSON_REAL_PRECISION(17)) : NULL;
        if (s) puts(s);
        free(s);
        json_decref(doc);
    } else {
        print_all(all, !strcmp(format, "csv"));
    }
    return fflush(stdout) == 0 ? MS_CLI_EXIT_OK : MS_CLI_EXIT_FAIL;
}

int ms_cmd_analyze(int argc, char **argv)
{
    if (argc < 2 || ms_cli_is_help(argv[1])) {
        fputs(usage_text, argc < 2 ? stderr : stdout);
        return argc < 2 ? MS_CLI_EXIT_USAGE : MS_CLI_EXIT_OK;
    }
    const char *name = argv[1];
    bool known = !strcmp(name, "all");
    for (const char *const *m = ms_analyze_modules(); *m; m++) known |= !strcmp(*m, name);
    if (!known) return ms_cli_usage(CMD, "unknown analysis '%s'", name);
    MsAnOptions o;
    ms_an_options_default(&o);
    AnArgs a = { .format = "table", .tau = NAN };
    MsCliCommon c = { .groups = 0 };
    const MsCliOpt opts[] = {
        { "--db", NULL, MS_OPT_STR, &a.db, 0, 0 },
        { "--run", NULL, MS_OPT_I64, &o.run_id, 1, 2147483647.0 },
        { "--layer", NULL, MS_OPT_INT, &o.layer, 0, 255 },
        { "--format", NULL, MS_OPT_STR, &a.format, 0, 0 },
        { "--role", NULL, MS_OPT_STR, &o.role, 0, 0 },
        { "--no-write", NULL, MS_OPT_FLAG, &a.no_write, 0, 0 },
        { "--distance", NULL, MS_OPT_INT, &o.distance, 1, 255 },
        { "--variant", NULL, MS_OPT_STR, &o.variant, 0, 0 },
        { "--top", NULL, MS_OPT_INT, &o.top, 1, 1 << 20 },
        { "--segments", NULL, MS_OPT_STR, &a.segments, 0, 0 },
        { "--cache", NULL, MS_OPT_STR, &a.cache, 0, 0 },
        { "--cold", NULL, MS_OPT_FLAG, &o.cold, 0, 0 },
        { "--include-layers", NULL, MS_OPT_DOUBLE, &o.include_frac, 1e-6, 1 },
        { "--rule", NULL, MS_OPT_STR, &a.rule, 0, 0 },
        { "--by", NULL, MS_OPT_STR, &o.by, 0, 0 },
        { "--min-support", NULL, MS_OPT_INT, &o.min_support, 0, 1 << 30 },
        { "--max-classes", NULL, MS_OPT_INT, &o.max_classes, 1, 1 << 20 },
        { "--plan", NULL, MS_OPT_STR, &o.plan_class, 0, 0 },
        { "--beta", NULL, MS_OPT_DOUBLE, &o.beta, 1e-6, 1e9 },
        { "--out", NULL, MS_OPT_STR, &o.plan_out, 0, 0 },
        { "--label", NULL, MS_OPT_STR, &o.label, 0, 0 },
        { "--set1", NULL, MS_OPT_STR, &o.set1, 0, 0 },
        { "--set2", NULL, MS_OPT_STR, &o.set2, 0, 0 },
        { "--activate", NULL, MS_OPT_INT, &o.n_pos, 0, 1 << 20 },
        { "--deactivate", NULL, MS_OPT_INT, &o.n_neg, 0, 1 << 20 },
        { "--reverse", NULL, MS_OPT_FLAG, &o.reverse, 0, 0 },
        { "--lang-key", NULL, MS_OPT_STR, &o.lang_key, 0, 0 },
        { "--pair-key", NULL, MS_OPT_STR, &o.pair_key, 0, 0 },
        { "--ref", NULL, MS_OPT_STR, &o.ref_lang, 0, 0 },
        { "--tau", NULL, MS_OPT_DOUBLE, &a.tau, 0, 1 },
        { "--operator", NULL, MS_OPT_STR, &a.op, 0, 0 },
        { "--lambda", NULL, MS_OPT_DOUBLE, &o.cl_lambda, -100, 100 },
        { "--middle", NULL, MS_OPT_STR, &a.middle, 0, 0 },
        { "--granularity", NULL, MS_OPT_STR, &a.granularity, 0, 0 },
        { "--pairs", NULL, MS_OPT_INT, &o.n_pairs, 1, 1 << 30 },
        { "--seed", NULL, MS_OPT_U64, &o.seed, 0, 0 },
        { "--sparse-weights", NULL, MS_OPT_FLAG, &o.sparse_weights, 0, 0 },
        { 0 },
    };
    int rc = ms_cli_parse(CMD, argc - 1, argv + 1, opts, &c, usage_text);
    if (!rc) rc = finish_options(name, &a, &o);
    if (rc) return ms_cli_exit(rc);
    /* the co-occurrence GEMMs are small (E×E per chunk): extra BLAS threads
     * only spin, so the analyses run them on the calling thread */
    openblas_set_num_threads(1);
    MsError err = {0};
    MsTraceDb *db = ms_trace_open(a.db, o.write ? MS_TRACE_WRITE : MS_TRACE_READ, &err);
    if (!db) return ms_cli_fail_err(CMD, &err);
    if ((rc = check_layers(db, a.db, &o)) != 0) {
        ms_trace_close(db);
        return rc;
    }
    /* Ctrl+C: the analysis stops at its next poll and writes nothing */
    MsCancel cancel;
    ms_cancel_init(&cancel);
    o.cancel = &cancel;
    ms_cli_sigint_cancel(&cancel);
    bool all = !strcmp(name, "all");
    MsAnAll everything;
    MsAnResult res;
    rc = all ? ms_analyze_all(db, &o, &everything, &err) : ms_analyze(db, name, &o, &res, &err);
    ms_cli_sigint_restore();
    ms_trace_close(db);
    if (rc == MS_ECANCELLED) return interrupted(a.db);
    if (rc < 0) {
        /* every failure names the database, as opening one does */
        if (strncmp(err.msg, a.db, strlen(a.db)) && (!o.plan_out || strncmp(err.msg, o.plan_out, strlen(o.plan_out))))
            ms_error_prefix(&err, "%s: ", a.db);
        return ms_cli_fail_err(CMD, &err);
    }
    if (all) {
        rc = print_all_modules(&everything, a.format);
        ms_an_all_clear(&everything);
    } else {
        rc = print_module(&res, a.format);
        /* a plan asked for and not made: no file, and said (the analysis
         * itself is stored) */
        const char *plan = ms_an_result_plan(&res);
        if (rc == MS_CLI_EXIT_OK && o.plan_out && (!plan || !*plan)) {
            if (!strcmp(name, "npmi"))
                rc = ms_cli_fail(CMD, "%s: not written: no expert of class '%s' has %d or more co-occurrences "
                                 "(--min-support) in this scope, so the plan would be empty", o.plan_out,
                                 o.plan_class, o.min_support);
            else
                rc = ms_cli_fail(CMD, "%s: not written: the analysis chose no expert, so there is no plan",
                                 o.plan_out);
        }
        ms_an_result_clear(&res);
    }
    return rc;
}
