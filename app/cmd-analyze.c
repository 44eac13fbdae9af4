/* cmd-analyze.c — `moescope analyze NAME --db DB ...`: runs one analysis
 * module (analysis/run.h) on a stored run, writes its result tables into the
 * database and prints the result as a table, CSV or JSON (docs/analysis.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>
#include <jansson.h>

#include "cli-util.h"
#include "commands.h"
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
    "Results are written to tables an_<module>* of DB (see docs/analysis.md).\n";

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

static void fmt_cell(const json_t *v, char *buf, size_t n, bool csv)
{
    if (!v || json_is_null(v)) snprintf(buf, n, "%s", csv ? "" : "-");
    else if (json_is_integer(v)) snprintf(buf, n, "%lld", (long long)json_integer_value(v));
    else if (json_is_real(v)) snprintf(buf, n, csv ? "%.17g" : "%.6g", json_real_value(v));
    else if (json_is_string(v)) snprintf(buf, n, "%s", json_string_value(v));
    else if (json_is_boolean(v)) snprintf(buf, n, "%s", json_is_true(v) ? "1" : "0");
    else {
        char *s = json_dumps(v, JSON_COMPACT);
        snprintf(buf, n, "%s", s ? s : "");
        free(s);
    }
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

static void print_rows(const json_t *rows, bool csv)
{
    size_t n = json_array_size(rows);
    if (n == 0) {
        if (!csv) printf("(no rows)\n");
        return;
    }
    json_t *first = json_array_get(rows, 0);
    size_t nc = json_object_size(first);
    const char **keys = calloc(nc, sizeof *keys);
    int *w = calloc(nc, sizeof *w);
    if (!keys || !w) { free(keys); free(w); return; }
    size_t c = 0;
    const char *key;
    json_t *val;
    json_object_foreach(first, key, val) {
        keys[c] = key;
        w[c] = (int)strlen(key);
        c++;
    }
    char buf[256];
    if (!csv)
        for (size_t i = 0; i < n; i++)
            for (c = 0; c < nc; c++) {
                fmt_cell(json_object_get(json_array_get(rows, i), keys[c]), buf, sizeof buf, false);
                if ((int)strlen(buf) > w[c]) w[c] = (int)strlen(buf);
            }
    for (c = 0; c < nc; c++) {
        if (csv) {
            if (c) putchar(',');
            print_csv_cell(keys[c]);
        } else {
            printf("%s%-*s", c ? "  " : "", w[c], keys[c]);
        }
    }
    putchar('\n');
    for (size_t i = 0; i < n; i++) {
        json_t *row = json_array_get(rows, i);
        for (c = 0; c < nc; c++) {
            fmt_cell(json_object_get(row, keys[c]), buf, sizeof buf, csv);
            if (csv) {
                if (c) putchar(',');
                print_csv_cell(buf);
            } else {
                printf("%s%*s", c ? "  " : "", json_is_string(json_object_get(row, keys[c])) ? -w[c] : w[c], buf);
            }
        }
        putchar('\n');
    }
    free(keys);
    free(w);
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
    if (!strcmp(name, "all")) {
        json_t *all = NULL;
        int rc = ms_analyze_all(db, &o, &all, &err);
        ms_trace_close(db);
        if (rc < 0) return ms_cli_fail_err(CMD, &err);
        if (!strcmp(format, "json")) {
            char *s = json_dumps(all, JSON_COMPACT | JSON_REAL_PRECISION(17));
            if (s) puts(s);
            free(s);
        } else {
            /* one line per module: its times, or why it was skipped */
            json_t *rows = json_array(), *t = json_object_get(all, "timing"), *v;
            const char *k;
            json_object_foreach(t, k, v) {
                json_array_append_new(rows, json_pack("{s:s,s:O,s:O,s:s}", "module", k, "wall_s",
                                                      json_object_get(v, "wall"), "cpu_s", json_object_get(v, "cpu"),
                                                      "note", ""));
            }
            json_object_foreach(json_object_get(all, "skipped"), k, v)
                json_array_append_new(rows, json_pack("{s:s,s:n,s:n,s:O}", "module", k, "wall_s", "cpu_s", "note", v));
            print_rows(rows, !strcmp(format, "csv"));
            json_decref(rows);
        }
        json_decref(all);
        return fflush(stdout) == 0 ? MS_CLI_EXIT_OK : MS_CLI_EXIT_FAIL;
    }
    MsAnResult res;
    int rc = ms_analyze(db, name, &o, &res, &err);
    ms_trace_close(db);
    if (rc < 0) return ms_cli_fail_err(CMD, &err);
    if (!strcmp(format, "json")) {
        char *s = json_dumps(res.doc, JSON_COMPACT | JSON_REAL_PRECISION(17));
        if (s) puts(s);
        free(s);
    } else {
        print_rows(res.rows, !strcmp(format, "csv"));
        if (res.plan && strcmp(format, "csv")) printf("plan: %s\n", res.plan);
    }
    ms_an_result_clear(&res);
    return fflush(stdout) == 0 ? MS_CLI_EXIT_OK : MS_CLI_EXIT_FAIL;
}
