/* cmd-db.c — `moescope export`, `import` and `sql` on trace databases. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli-util.h"
#include "commands.h"
#include "trace.h"

/* ----------------------------------------------------------------- export */

static const char export_help[] =
    "usage: moescope export --db DB --format sql|pgsql|csv [--tables LIST] [-o OUT]\n"
    "\n"
    "  sql    SQL text for sqlite3 (sqlite3 NEW.db < OUT): the same schema, every\n"
    "         value exact\n"
    "  pgsql  SQL text for PostgreSQL (psql -f OUT): the logical tables, routing\n"
    "         and expert_stats one row per selected expert; token text exact in\n"
    "         piece_bytes / text_bytes (bytea)\n"
    "  csv    one TABLE.csv file per table in the directory OUT (created);\n"
    "         with a single table and no -o, to standard output\n"
    "  --tables LIST  comma list: model,intervention_set,run,prompt,token,routing,\n"
    "                 expert_stats,router_probs,hidden_stats,analysis or analysis\n"
    "                 result tables (default: all)\n"
    "  -o OUT         output file (sql, pgsql; default standard output) or directory (csv)\n"
    "DB is a trace file or a PostgreSQL URI (postgresql://...): a PostgreSQL\n"
    "database is copied as one snapshot into a temporary SQLite file in TMPDIR\n"
    "(about its size on disk, removed afterwards) and exported from there, so\n"
    "each format holds the same bytes as for a SQLite trace with the same rows.\n";

int ms_cmd_export(int argc, char **argv)
{
    const char *cmd = "export", *dbp = NULL, *fmt = NULL, *tables = NULL, *out = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        int r;
        if (ms_cli_is_help(a)) { fputs(export_help, stdout); return 0; }
        if ((r = ms_cli_opt(cmd, argc, argv, &i, "--db", NULL, &v)) != 0) { if (r < 0) return 2; dbp = v; continue; }
        if ((r = ms_cli_opt(cmd, argc, argv, &i, "--format", "-f", &v)) != 0) { if (r < 0) return 2; fmt = v; continue; }
        if ((r = ms_cli_opt(cmd, argc, argv, &i, "--tables", NULL, &v)) != 0) { if (r < 0) return 2; tables = v; continue; }
        if ((r = ms_cli_opt(cmd, argc, argv, &i, "--out", "-o", &v)) != 0) { if (r < 0) return 2; out = v; continue; }
        return ms_cli_usage(cmd, "unexpected argument '%s'", a);
    }
    if (!dbp || !fmt) return ms_cli_usage(cmd, "%s", !dbp ? "--db DB is required" : "--format is required");
    MsExportFormat f = !strcmp(fmt, "sql") ? MS_EXPORT_SQL : !strcmp(fmt, "pgsql") ? MS_EXPORT_PGSQL
                     : !strcmp(fmt, "csv") ? MS_EXPORT_CSV : 0;
    if (!f) return ms_cli_usage(cmd, "unknown format '%s' (sql, pgsql or csv)", fmt);
    if (f == MS_EXPORT_CSV && !out && (!tables || strchr(tables, ',')))
        return ms_cli_usage(cmd, "csv needs -o DIR (or --tables with one table for standard output)");
    MsError err = { 0 };
    MsTraceDb *db = ms_trace_open(dbp, MS_TRACE_READ, &err);
    if (!db) return ms_cli_fail_err(cmd, &err);
    /* a file is written whole or not at all (temporary name, renamed when complete) */
    int rc = out ? ms_trace_export_path(db, f, tables, out, &err) : ms_trace_export(db, f, tables, stdout, NULL, &err);
    ms_trace_close(db);
    return rc ? ms_cli_fail_err(cmd, &err) : 0;
}

/* ----------------------------------------------------------------- import */

static const char import_help[] =
    "usage: moescope import --db DB --format ids|csv|jsonl FILE [--experts E] [--top-k K]\n"
    "                       [--labels LABELS.jsonl]\n"
    "\n"
    "Stores routing produced elsewhere as a new run (kind \"import\"); prints its id.\n"
    "  ids    per request a JSON header line {\"tokens\":T,\"layers\":L,\"top_k\":K}\n"
    "         (optional \"layer_ids\":[...], \"weights\":true, \"text\":\"...\") followed\n"
    "         by T*L*K little-endian int32 expert ids [token][layer][rank]\n"
    "         (then T*L*K float32 weights with \"weights\":true); -1 = padding\n"
    "  csv    header prompt,position,layer,rank,expert,weight (0-based; weight may be empty)\n"
    "  jsonl  per token {\"prompt\":i,\"position\":t,\"experts\":[[...],...],\n"
    "         \"weights\":[[...],...],\"layers\":[...],\"token_id\":id,\"piece\":\"..\"}\n"
    "  --experts E / --top-k K   checked against the data (inferred when absent)\n"
    "  --labels F  JSONL lines {\"prompt\": i, \"labels\": {...}}\n";

int ms_cmd_import(int argc, char **argv)
{
    const char *cmd = "import", *dbp = NULL, *fmt = NULL, *file = NULL, *labels = NULL;
    int E = 0, K = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        int r;
        if (ms_cli_is_help(a)) { fputs(import_help, stdout); return 0; }
        if ((r = ms_cli_opt(cmd, argc, argv, &i, "--db", NULL, &v)) != 0) { if (r < 0) return 2; dbp = v; continue; }
        if ((r = ms_cli_opt(cmd, argc, argv, &i, "--format", "-f", &v)) != 0) { if (r < 0) return 2; fmt = v; continue; }
        if ((r = ms_cli_opt(cmd, argc, argv, &i, "--labels", NULL, &v)) != 0) { if (r < 0) return 2; labels = v; continue; }
        if ((r = ms_cli_opt(cmd, argc, argv, &i, "--experts", NULL, &v)) != 0) {
            if (r < 0 || ms_cli_parse_int(cmd, "--experts", v, 1, MS_TRACE_MAX_EXPERT, &E) < 0) return 2;
            continue;
        }
        if ((r = ms_cli_opt(cmd, argc, argv, &i, "--top-k", NULL, &v)) != 0) {
            if (r < 0 || ms_cli_parse_int(cmd, "--top-k", v, 1, 4096, &K) < 0) return 2;
            continue;
        }
        if (a[0] == '-' && a[1]) return ms_cli_usage(cmd, "unknown option '%s'", a);
        if (file) return ms_cli_usage(cmd, "more than one FILE");
        file = a;
    }
    if (!dbp || !fmt || !file)
        return ms_cli_usage(cmd, "%s", !dbp ? "--db DB is required" : !fmt ? "--format is required" : "missing FILE");
    MsImportFormat f = !strcmp(fmt, "ids") ? MS_IMPORT_IDS : !strcmp(fmt, "csv") ? MS_IMPORT_CSV
                     : !strcmp(fmt, "jsonl") ? MS_IMPORT_JSONL : 0;
    if (!f) return ms_cli_usage(cmd, "unknown format '%s' (ids, csv or jsonl)", fmt);
    if (E && K > E) return ms_cli_usage(cmd, "--top-k %d is larger than --experts %d", K, E);
    /* the inputs first: a missing file must not leave a new empty database */
    const char *in[2] = { file, labels };
    for (int i = 0; i < 2; i++) {
        FILE *fi = in[i] ? fopen(in[i], "rb") : NULL;
        if (in[i] && !fi) return ms_cli_fail(cmd, "%s: %s", in[i], strerror(errno));
        if (fi) fclose(fi);
    }
    bool existed = ms_cli_db_exists(dbp);
    MsError err = { 0 };
    MsTraceDb *db = ms_trace_open(dbp, MS_TRACE_CREATE, &err);
    if (!db) return ms_cli_fail_err(cmd, &err);
    MsImportOptions o = { .n_expert = E, .top_k = K, .labels_path = labels, .source_name = file };
    int64_t run = 0;
    int rc = ms_trace_import(db, f, file, &o, &run, &err);
    ms_trace_close(db);
    if (rc && !existed) ms_cli_remove_db(dbp);   /* the import is all or nothing: so is the database it created */
    if (rc) return ms_cli_fail_err(cmd, &err);
    printf("run %lld\n", (long long)run);
    return 0;
}

/* -------------------------------------------------------------------- sql */

static const char sql_help[] =
    "usage: moescope sql --db DB 'SELECT ...' [--csv]\n"
    "\n"
    "Runs one read-only statement and prints the result as an aligned table\n"
    "(or CSV with --csv).  Blobs print as x'HEX', NULL as NULL (empty in CSV).\n";

typedef struct {
    bool csv;
    int n_cols;
    char **names;
    char **cells;        /* table mode: buffered rows, n_cols per row */
    size_t n_rows, cap;
    bool fail;
} SqlOut;

static void csv_field(const char *s)
{
    if (!s) return;
    bool q = !*s || strpbrk(s, ",\"\n\r") != NULL;
    if (!q) { fputs(s, stdout); return; }
    putchar('"');
    for (; *s; s++) {
        if (*s == '"') putchar('"');
        putchar(*s);
    }
    putchar('"');
}

static int sql_row(void *user, int n, const char *const *names, const char *const *vals)
{
    SqlOut *o = user;
    if (!o->names) {
        o->n_cols = n;
        o->names = calloc((size_t)n, sizeof *o->names);
        if (!o->names) { o->fail = true; return 1; }
        for (int i = 0; i < n; i++) o->names[i] = strdup(names[i] ? names[i] : "");
        if (o->csv) {
            for (int i = 0; i < n; i++) { if (i) putchar(','); csv_field(names[i]); }
            putchar('\n');
        }
    }
    if (o->csv) {
        for (int i = 0; i < n; i++) { if (i) putchar(','); csv_field(vals[i]); }
        putchar('\n');
        return 0;
    }
    if ((o->n_rows + 1) * (size_t)n > o->cap) {
        size_t nc = o->cap ? o->cap * 2 : 1024;
        while (nc < (o->n_rows + 1) * (size_t)n) nc *= 2;
        char **c = realloc(o->cells, nc * sizeof *c);
        if (!c) { o->fail = true; return 1; }
        o->cells = c;
        o->cap = nc;
    }
    for (int i = 0; i < n; i++) {
        const char *v = vals[i] ? vals[i] : "NULL";
        /* one line per row: control characters shown as escapes */
        size_t l = strlen(v);
        char *d = malloc(l * 4 + 1), *p = d;
        if (!d) { o->fail = true; return 1; }
        for (const unsigned char *s = (const unsigned char *)v; *s; s++) {
            if (*s == '\n') { *p++ = '\\'; *p++ = 'n'; }
            else if (*s == '\t') { *p++ = '\\'; *p++ = 't'; }
            else if (*s < 0x20) p += sprintf(p, "\\x%02x", *s);
            else *p++ = (char)*s;
        }
        *p = '\0';
        o->cells[o->n_rows * (size_t)n + (size_t)i] = d;
    }
    o->n_rows++;
    return 0;
}


static bool numeric(const char *s)
{
    char *e;
    if (!*s) return false;
    strtod(s, &e);
    return *e == '\0';
}

int ms_cmd_sql(int argc, char **argv)
{
    const char *cmd = "sql", *dbp = NULL, *q = NULL;
    SqlOut o = { 0 };
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        int r;
        if (ms_cli_is_help(a)) { fputs(sql_help, stdout); return 0; }
        if (!strcmp(a, "--csv")) { o.csv = true; continue; }
        if ((r = ms_cli_opt(cmd, argc, argv, &i, "--db", NULL, &v)) != 0) { if (r < 0) return 2; dbp = v; continue; }
        if (a[0] == '-' && a[1] == '-') return ms_cli_usage(cmd, "unknown option '%s'", a);
        if (q) return ms_cli_usage(cmd, "more than one query (quote the SQL)");
        q = a;
    }
    if (!dbp || !q) return ms_cli_usage(cmd, "%s", !dbp ? "--db DB is required" : "missing the SQL query");
    MsError err = { 0 };
    MsTraceDb *db = ms_trace_open(dbp, MS_TRACE_READ, &err);
    if (!db) return ms_cli_fail_err(cmd, &err);
    int rc = ms_trace_query(db, q, sql_row, &o, &err);
    ms_trace_close(db);
    if (!rc && o.fail) rc = ms_error_set(&err, MS_ENOMEM, "out of memory");
    /* column names come with the rows: an empty result has only its count */
    if (!rc && !o.csv && !o.names) puts("(0 rows)");
    if (!rc && !o.csv && o.names) {
        int n = o.n_cols;
        size_t *wd = calloc((size_t)n, sizeof *wd);
        bool *num = calloc((size_t)n, sizeof *num);
        if (wd && num) {
            for (int c = 0; c < n; c++) {
                wd[c] = ms_cli_text_width(o.names[c]);
                num[c] = o.n_rows > 0;
            }
            for (size_t r = 0; r < o.n_rows; r++)
                for (int c = 0; c < n; c++) {
                    const char *v = o.cells[r * (size_t)n + (size_t)c];
                    wd[c] = MS_MAX(wd[c], ms_cli_text_width(v));
                    if (strcmp(v, "NULL") && !numeric(v)) num[c] = false;
                }
            for (int c = 0; c < n; c++)
                printf("%s%-*s", c ? "  " : "", c + 1 < n ? (int)(wd[c] + strlen(o.names[c]) - ms_cli_text_width(o.names[c])) : 0,
                       o.names[c]);
            putchar('\n');
            for (int c = 0; c < n; c++) {
                printf("%s", c ? "  " : "");
                for (size_t k = 0; k < wd[c]; k++) putchar('-');
            }
            putchar('\n');
            for (size_t r = 0; r < o.n_rows; r++) {
                for (int c = 0; c < n; c++) {
                    const char *v = o.cells[r * (size_t)n + (size_t)c];
                    int pad = (int)(wd[c] - ms_cli_text_width(v));
                    if (c) fputs("  ", stdout);
                    if (num[c]) printf("%*s%s", pad, "", v);
                    else if (c + 1 < n) printf("%s%*s", v, pad, "");
                    else fputs(v, stdout);
                }
                putchar('\n');
            }
            printf("(%zu row%s)\n", o.n_rows, o.n_rows == 1 ? "" : "s");
        } else rc = ms_error_set(&err, MS_ENOMEM, "out of memory");
        free(wd);
        free(num);
    }
    for (size_t i = 0; i < o.n_rows * (size_t)o.n_cols; i++) free(o.cells[i]);
    free(o.cells);
    for (int i = 0; i < o.n_cols && o.names; i++) free(o.names[i]);
    free(o.names);
    return rc ? ms_cli_fail_err(cmd, &err) : 0;
}

/* ------------------------------------------------------------------ merge */

static const char merge_help[] =
    "usage: moescope merge SRC... --db DST\n"
    "\n"
    "Merges the runs of the trace databases SRC (shards of one prompt set traced\n"
    "apart, e.g. trace --shard I/N on several machines) into one run of DST, a\n"
    "file (created if missing) or a postgresql:// URI.  The sources must hold\n"
    "runs of the same model, settings, interventions and --probs/--stats;\n"
    "otherwise nothing is written.  Prompts DST already holds are skipped (a\n"
    "merge can be repeated); every prompt is one transaction.  Prints the run.\n";

int ms_cmd_merge(int argc, char **argv)
{
    const char *cmd = "merge", *dbp = NULL;
    const char **src = calloc((size_t)argc, sizeof *src);
    int n_src = 0;
    if (!src) return ms_cli_fail(cmd, "out of memory");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        int r;
        if (ms_cli_is_help(a)) { fputs(merge_help, stdout); free(src); return 0; }
        if ((r = ms_cli_opt(cmd, argc, argv, &i, "--db", NULL, &v)) != 0) {
            if (r < 0) { free(src); return 2; }
            dbp = v;
            continue;
        }
        if (a[0] == '-' && a[1]) { free(src); return ms_cli_usage(cmd, "unknown option '%s'", a); }
        src[n_src++] = a;
    }
    if (!dbp || !n_src) {
        free(src);
        return ms_cli_usage(cmd, "%s", !dbp ? "--db DST is required" : "no source databases");
    }
    MsError err = { 0 };
    MsTraceDb **dbs = calloc((size_t)n_src, sizeof *dbs);
    MsTraceDb *dst = NULL;
    int rc = dbs ? 0 : ms_error_set(&err, MS_ENOMEM, "out of memory");
    for (int i = 0; i < n_src && !rc; i++) {
        if (!strcmp(src[i], dbp)) rc = ms_error_set(&err, MS_EINVAL, "%s: source and destination are the same", dbp);
        else if (!(dbs[i] = ms_trace_open(src[i], MS_TRACE_READ, &err))) rc = err.code;
    }
    const bool existed = ms_cli_db_exists(dbp);
    if (!rc && !(dst = ms_trace_open(dbp, MS_TRACE_CREATE, &err))) rc = err.code;
    MsTraceMergeResult res = { 0 };
    if (!rc) {
        MsCliBar bar;
        ms_cli_bar_init(&bar, "prompts");
        MsCancel cancel;
        ms_cancel_init(&cancel);
        ms_cli_sigint_cancel(&cancel);
        rc = ms_trace_merge(dst, dbs, n_src, &res, ms_cli_bar_progress, &bar, &cancel, &err);
        ms_cli_sigint_restore();
        if (bar.tty) fputc('\n', stderr);
    }
    for (int i = 0; dbs && i < n_src; i++) ms_trace_close(dbs[i]);
    ms_trace_close(dst);
    /* refused sources: no database left behind */
    if (rc && rc != MS_ECANCELLED && dst && !existed && res.n_written == 0) ms_cli_remove_db(dbp);
    free(dbs);
    free(src);
    if (rc == MS_ECANCELLED) {
        fprintf(stderr, "moescope merge: interrupted: %lld prompts merged; run the same command to complete it\n",
                (long long)res.n_written);
        return 130;
    }
    if (rc) return ms_cli_fail_err(cmd, &err);
    printf("run %lld\n", (long long)res.run_id);
    fprintf(stderr, "moescope merge: %d source%s: %lld prompt%s written, %lld already present\n", res.n_sources,
            res.n_sources == 1 ? "" : "s", (long long)res.n_written, res.n_written == 1 ? "" : "s",
            (long long)res.n_skipped);
    return 0;
}
