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
    "  pathways:     --tau T (0.7)  --granularity char|token  --pairs N (2000)  --seed S  --sparse-weights\n"
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
    for (int c = 0; c < nc; c++) {
        if (csv) {
            if (c) putchar(',');
            print_csv_cell(t->cols[c]);
        } else {
            printf("%s%-*s", c ? "  " : "", w[c], t->cols[c]);
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

int ms_cmd_analyze(int argc, char **argv)
{
    if (argc < 2 || ms_cli_is_help(argv[1])) {
        fputs(usage_text, argc < 2 ? stderr : stdout);
        return argc < 2 ? MS_CLI_EXIT_USAGE : MS_CLI_EXIT_OK;
    }
    const char *name = argv[1], *db_path = NULL, *format = "table", *v;
    bool known = false;
    for (const char *const *m = ms_analyze_modules(); *m; m++) known |= !strcmp(*m, name);
    known |= !strcmp(name, "all");
    if (!known) return ms_cli_usage(CMD, "unknown analysis '%s'", name);
    MsAnOptions o;
    ms_an_options_default(&o);
    for (int i = 2; i < argc; i++) {
        int r;
        const char *a = argv[i];
        if (ms_cli_is_help(a)) {
            fputs(usage_text, stdout);
            return MS_CLI_EXIT_OK;
        }
#define OPT(n) ((r = ms_cli_opt(CMD, argc, argv, &i, n, NULL, &v)) != 0)
        if (OPT("--db")) { if (r < 0) return 2; db_path = v; }
        else if (OPT("--run")) {
            uint64_t x;
            if (r < 0 || ms_cli_parse_u64(CMD, "--run", v, &x) < 0) return 2;
            o.run_id = (int64_t)x;
        } else if (OPT("--layer")) { if (r < 0 || ms_cli_parse_int(CMD, "--layer", v, 0, 255, &o.layer) < 0) return 2; }
        else if (OPT("--format")) {
            if (r < 0) return 2;
            if (strcmp(v, "table") && strcmp(v, "csv") && strcmp(v, "json"))
                return ms_cli_usage(CMD, "--format must be table, csv or json");
            format = v;
        } else if (OPT("--role")) { if (r < 0) return 2; o.role = v; }
        else if (!strcmp(a, "--no-write")) o.write = false;
        else if (OPT("--distance")) { if (r < 0 || ms_cli_parse_int(CMD, "--distance", v, 1, 255, &o.distance) < 0) return 2; }
        else if (OPT("--variant")) { if (r < 0) return 2; o.variant = v; }
        else if (OPT("--top")) { if (r < 0 || ms_cli_parse_int(CMD, "--top", v, 1, 1 << 20, &o.top) < 0) return 2; }
        else if (OPT("--segments")) {
            if (r < 0 || parse_list("--segments", v, o.segments, MS_AN_MAX_LIST, &o.n_segments)) return 2;
        } else if (OPT("--cache")) {
            if (r < 0 || parse_list("--cache", v, o.cache, MS_AN_MAX_LIST * 4, &o.n_cache)) return 2;
        } else if (!strcmp(a, "--cold")) o.cold = true;
        else if (OPT("--include-layers")) {
            float f;
            if (r < 0 || ms_cli_parse_float(CMD, "--include-layers", v, 1e-6, 1, &f) < 0) return 2;
            o.include_frac = f;
        } else if (OPT("--rule")) {
            if (r < 0) return 2;
            if (!strcmp(v, "paper")) o.se_rule = MS_SE_PAPER;
            else if (!strcmp(v, "p99.5")) o.se_rule = MS_SE_P995;
            else if (!strcmp(v, "mean+3sd")) o.se_rule = MS_SE_MEAN3SD;
            else if (!strcmp(v, "50xmean")) o.se_rule = MS_SE_MEAN50;
            else return ms_cli_usage(CMD, "--rule must be paper, p99.5, mean+3sd or 50xmean");
        } else if (OPT("--by")) { if (r < 0) return 2; o.by = v; }
        else if (OPT("--min-support")) { if (r < 0 || ms_cli_parse_int(CMD, "--min-support", v, 0, 1 << 30, &o.min_support) < 0) return 2; }
        else if (OPT("--max-classes")) { if (r < 0 || ms_cli_parse_int(CMD, "--max-classes", v, 1, 1 << 20, &o.max_classes) < 0) return 2; }
        else if (OPT("--plan")) { if (r < 0) return 2; o.plan_class = v; }
        else if (OPT("--beta")) {
            float f;
            if (r < 0 || ms_cli_parse_float(CMD, "--beta", v, 1e-6, 1e9, &f) < 0) return 2;
            o.beta = f;
        } else if (OPT("--out")) { if (r < 0) return 2; o.plan_out = v; }
        else if (OPT("--label")) { if (r < 0) return 2; o.label = v; }
        else if (OPT("--set1")) { if (r < 0) return 2; o.set1 = v; }
        else if (OPT("--set2")) { if (r < 0) return 2; o.set2 = v; }
        else if (OPT("--activate")) { if (r < 0 || ms_cli_parse_int(CMD, "--activate", v, 0, 1 << 20, &o.n_pos) < 0) return 2; }
        else if (OPT("--deactivate")) { if (r < 0 || ms_cli_parse_int(CMD, "--deactivate", v, 0, 1 << 20, &o.n_neg) < 0) return 2; }
        else if (!strcmp(a, "--reverse")) o.reverse = true;
        else if (OPT("--lang-key")) { if (r < 0) return 2; o.lang_key = v; }
        else if (OPT("--pair-key")) { if (r < 0) return 2; o.pair_key = v; }
        else if (OPT("--ref")) { if (r < 0) return 2; o.ref_lang = v; }
        else if (OPT("--tau")) {
            float f;
            if (r < 0 || ms_cli_parse_float(CMD, "--tau", v, 0, 1, &f) < 0) return 2;
            o.tau = f;
            o.path_tau = f;
        } else if (OPT("--operator")) {
            if (r < 0) return 2;
            if (!strcmp(v, "hard")) o.cl_hard = true;
            else if (!strcmp(v, "soft")) o.cl_hard = false;
            else return ms_cli_usage(CMD, "--operator must be soft or hard (got '%s')", v);
        } else if (OPT("--lambda")) {
            float f;
            if (r < 0 || ms_cli_parse_float(CMD, "--lambda", v, -100, 100, &f) < 0) return 2;
            o.cl_lambda = f;
        } else if (OPT("--middle")) {
            if (r < 0) return 2;
            if (sscanf(v, "%d-%d", &o.mid_lo, &o.mid_hi) != 2 || o.mid_lo < 0 || o.mid_hi < o.mid_lo)
                return ms_cli_usage(CMD, "--middle: '%s' is not a range A-B", v);
        } else if (OPT("--granularity")) {
            if (r < 0) return 2;
            if (!strcmp(v, "token")) o.token_level = true;
            else if (strcmp(v, "char")) return ms_cli_usage(CMD, "--granularity must be char or token");
        } else if (OPT("--pairs")) { if (r < 0 || ms_cli_parse_int(CMD, "--pairs", v, 1, 1 << 30, &o.n_pairs) < 0) return 2; }
        else if (OPT("--seed")) { if (r < 0 || ms_cli_parse_u64(CMD, "--seed", v, &o.seed) < 0) return 2; }
        else if (!strcmp(a, "--sparse-weights")) o.sparse_weights = true;
        else return ms_cli_usage(CMD, "unknown option '%s'", a);
#undef OPT
    }
    if (!db_path) return ms_cli_usage(CMD, "--db DB is required");
    /* the co-occurrence GEMMs are small (E×E per chunk): extra BLAS threads
     * only spin, so the analyses run them on the calling thread */
    openblas_set_num_threads(1);
    MsError err = {0};
    MsTraceDb *db = ms_trace_open(db_path, o.write ? MS_TRACE_WRITE : MS_TRACE_READ, &err);
    if (!db) return ms_cli_fail_err(CMD, &err);
    /* Ctrl+C: the analysis stops at its next poll and writes nothing */
    MsCancel cancel;
    ms_cancel_init(&cancel);
    o.cancel = &cancel;
    if (!strcmp(name, "all")) {
        MsAnAll all;
        ms_cli_sigint_cancel(&cancel);
        int rc = ms_analyze_all(db, &o, &all, &err);
        ms_cli_sigint_restore();
        ms_trace_close(db);
        if (rc == MS_ECANCELLED) return interrupted(db_path);
        if (rc < 0) return ms_cli_fail_err(CMD, &err);
        if (!strcmp(format, "json")) {
            json_t *doc = ms_an_all_json(&all);
            char *s = doc ? json_dumps(doc, JSON_COMPACT | JSON_REAL_PRECISION(17)) : NULL;
            if (s) puts(s);
            free(s);
            json_decref(doc);
        } else {
            print_all(&all, !strcmp(format, "csv"));
        }
        ms_an_all_clear(&all);
        return fflush(stdout) == 0 ? MS_CLI_EXIT_OK : MS_CLI_EXIT_FAIL;
    }
    MsAnResult res;
    ms_cli_sigint_cancel(&cancel);
    int rc = ms_analyze(db, name, &o, &res, &err);
    ms_cli_sigint_restore();
    ms_trace_close(db);
    if (rc == MS_ECANCELLED) return interrupted(db_path);
    if (rc < 0) return ms_cli_fail_err(CMD, &err);
    if (!strcmp(format, "json")) {
        json_t *doc = ms_an_result_json(&res);
        char *s = doc ? json_dumps(doc, JSON_COMPACT | JSON_REAL_PRECISION(17)) : NULL;
        if (s) puts(s);
        free(s);
        json_decref(doc);
    } else {
        MsAnTable t[MS_AN_MAX_TABLES];
        int n = ms_an_result_tables(&res, t);
        if (n > 0) print_rows(&t[n - 1], !strcmp(format, "csv"));
        const char *plan = ms_an_result_plan(&res);
        if (plan && strcmp(format, "csv")) printf("plan: %s\n", plan);
    }
    ms_an_result_clear(&res);
    return fflush(stdout) == 0 ? MS_CLI_EXIT_OK : MS_CLI_EXIT_FAIL;
}
