/* export.c — trace databases as SQL for sqlite3, SQL for psql, or CSV.
 *
 * sql   : the physical schema and rows (a valid trace database when loaded);
 *         values are written with SQLite's own quote(), which round-trips.
 * pgsql : the logical tables (routing and expert_stats expanded to one row
 *         per selected expert) as CREATE TABLE + COPY ... FROM stdin blocks.
 * csv   : the logical tables, one file each, RFC 4180, blobs as hex.
 * Text columns of the core tables hold valid UTF-8 without NUL; the exact
 * bytes of prompts and pieces travel in text_bytes / piece_bytes. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "db-internal.h"

#define MAX_COLS 200

typedef struct {
    bool null;
    int64_t i;
    double d;
    const unsigned char *p;
    size_t n;
} Val;

/* Column types of logical tables: i integer, r double, f float32 (PG real),
 * t text, b blob. */
typedef struct {
    const char *name;
    const char *cols;      /* comma-separated column names */
    const char *types;
    const char *pkey;      /* PG primary key column list or NULL */
    const char *select;    /* NULL: generated in C (routing, expert_stats) */
} Logical;

static const Logical logical[] = {
    { "model", "model_id,file_name,file_size,sha256,arch,name,n_layer,n_expert,n_expert_used,n_expert_shared,"
      "score_func,norm_topk,w_scale,n_embd,n_vocab,n_ff_exp,moe_layers", "ititttiiiitiriiit", "model_id",
      "SELECT model_id,file_name,file_size,sha256,arch,name,n_layer,n_expert,n_expert_used,n_expert_shared,"
      "score_func,norm_topk,w_scale,n_embd,n_vocab,n_ff_exp,moe_layers FROM model ORDER BY model_id" },
    { "intervention_set", "set_id,spec", "it", "set_id", "SELECT set_id,spec FROM intervention_set ORDER BY set_id" },
    { "run", "run_id,model_id,created,kind,settings,interventions,set_id,program_version,parent_run_id,has_probs,"
      "has_stats,status,prompts_sha256", "iittttitiiitt", "run_id",
      "SELECT run_id,model_id,created,kind,settings,interventions,set_id,program_version,parent_run_id,has_probs,"
      "has_stats,status,prompts_sha256 FROM run ORDER BY run_id" },
    { "prompt", "prompt_id,run_id,idx,text,text_bytes,labels,n_tokens,worker", "iiitbtit", "prompt_id",
      "SELECT prompt_id,run_id,idx,text,text_bytes,labels,n_tokens,worker FROM prompt ORDER BY prompt_id" },
    { "token", "run_id,prompt_id,pos,token_id,piece,piece_bytes,is_generated,logprob,entropy", "iiiitbirr",
      "prompt_id,pos",
      "SELECT run_id,prompt_id,pos,token_id,piece,piece_bytes,is_generated,logprob,entropy FROM token "
      "ORDER BY prompt_id,pos" },
    { "routing", "run_id,prompt_id,pos,layer,rank,expert,weight", "iiiiiif", "prompt_id,pos,layer,rank", NULL },
    { "expert_stats", "run_id,prompt_id,pos,layer,rank,expert,maxabs,l2,channel", "iiiiiiffi",
      "prompt_id,pos,layer,rank", NULL },
    { "router_probs", "run_id,prompt_id,pos,layer,probs,logits", "iiiibb", "prompt_id,pos,layer",
      "SELECT run_id,prompt_id,pos,layer,probs,logits FROM router_probs ORDER BY prompt_id,pos,layer" },
    { "hidden_stats", "run_id,prompt_id,pos,layer,maxabs,channel", "iiiiri", "prompt_id,pos,layer",
      "SELECT run_id,prompt_id,pos,layer,maxabs,channel FROM hidden_stats ORDER BY prompt_id,pos,layer" },
    { "analysis", "analysis_id,run_id,name,table_name,params,created,program_version", "iittttt", "analysis_id",
      "SELECT analysis_id,run_id,name,table_name,params,created,program_version FROM analysis "
      "ORDER BY analysis_id" },
    /* experiments and sweeps (schema version 4) */
    { "an_compare_prompt", "run_id,baseline_run_id,idx,n_tokens,n_prompt_tokens,kl_mean,kl_max,n_scored,nll_baseline,"
      "nll_run,top1_agree,first_divergence,text_baseline,text_run,tokens_baseline,tokens_run", "iiiiirrirriittbb",
      "run_id,idx",
      "SELECT run_id,baseline_run_id,idx,n_tokens,n_prompt_tokens,kl_mean,kl_max,n_scored,nll_baseline,nll_run,"
      "top1_agree,first_divergence,text_baseline,text_run,tokens_baseline,tokens_run FROM an_compare_prompt "
      "ORDER BY run_id,idx" },
    { "an_compare_pos", "run_id,baseline_run_id,idx,pos,kl,lp_baseline,lp_run,top1_baseline,top1_run", "iiiirrrii",
      "run_id,idx,pos",
      "SELECT run_id,baseline_run_id,idx,pos,kl,lp_baseline,lp_run,top1_baseline,top1_run FROM an_compare_pos "
      "ORDER BY run_id,idx,pos" },
    { "an_compare_layer", "run_id,baseline_run_id,idx,layer,n_pos,n_changed,jaccard_sum", "iiiiiir", "run_id,idx,layer",
      "SELECT run_id,baseline_run_id,idx,layer,n_pos,n_changed,jaccard_sum FROM an_compare_layer "
      "ORDER BY run_id,idx,layer" },
    { "sweep", "sweep_id,baseline_run_id,model_id,created,settings,program_version", "iiittt", "sweep_id",
      "SELECT sweep_id,baseline_run_id,model_id,created,settings,program_version FROM sweep ORDER BY sweep_id" },
    { "sweep_candidate", "sweep_id,cand,kind,label,interventions,n_experts,n_positions,kl_mean,kl_max,top1_agreement,"
      "ppl_baseline,ppl_run,dppl,changed_share,jaccard_mean,z_kl,z_dppl,rank", "iitttiirrrrrrrrrri", "sweep_id,cand",
      "SELECT sweep_id,cand,kind,label,interventions,n_experts,n_positions,kl_mean,kl_max,top1_agreement,"
      "ppl_baseline,ppl_run,dppl,changed_share,jaccard_mean,z_kl,z_dppl,rank FROM sweep_candidate "
      "ORDER BY sweep_id,cand" },
};

typedef struct {
    MsTraceDb *db;
    MsExportFormat fmt;
    FILE *out;
    MsError *err;
    int n;
    char types[MAX_COLS + 1];
    int wr_err;
    int wr_errno;              /* errno of the failed write */
    MsOutFile *csv;            /* CSV files of this export, renamed into place together at the end */
    int n_csv, cap_csv;
    const char *out_name;      /* the file being written, for messages (NULL: an unnamed stream) */
    char csv_path[4096];
} Ex;

/* -------------------------------------------------------------- value out */

static void put_hex(FILE *f, const unsigned char *p, size_t n)
{
    static const char hx[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        putc(hx[p[i] >> 4], f);
        putc(hx[p[i] & 15], f);
    }
}

static void put_float(FILE *f, char type, double d)
{
    if (type == 'f') fprintf(f, "%.9g", (double)(float)d);
    else fprintf(f, "%.17g", d);
}

/* COPY text format: backslash escapes for \ and control characters. */
static void copy_text(FILE *f, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned c = p[i];
        switch (c) {
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        default:
            if (c < 0x20 || c == 0x7f) fprintf(f, "\\%03o", c);
            else putc((int)c, f);
        }
    }
}

static void csv_text(FILE *f, const unsigned char *p, size_t n)
{
    bool q = n == 0;
    for (size_t i = 0; i < n && !q; i++)
        if (p[i] == ',' || p[i] == '"' || p[i] == '\n' || p[i] == '\r') q = true;
    if (!q) { fwrite(p, 1, n, f); return; }
    putc('"', f);
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '"') putc('"', f);
        putc(p[i], f);
    }
    putc('"', f);
}

static void emit_row(Ex *x, const Val *v)
{
    FILE *f = x->out;
    for (int c = 0; c < x->n; c++) {
        if (c) putc(x->fmt == MS_EXPORT_CSV ? ',' : '\t', f);
        char t = x->types[c];
        if (v[c].null) {
            if (x->fmt == MS_EXPORT_PGSQL) fputs("\\N", f);
            continue;
        }
        switch (t) {
        case 'i': fprintf(f, "%lld", (long long)v[c].i); break;
        case 'r': case 'f':
            if (!isfinite(v[c].d)) { /* never stored; keep the file loadable */
                fputs(x->fmt == MS_EXPORT_PGSQL ? (isnan(v[c].d) ? "NaN" : v[c].d > 0 ? "Infinity" : "-Infinity")
                                                : (isnan(v[c].d) ? "nan" : v[c].d > 0 ? "inf" : "-inf"), f);
            } else put_float(f, t, v[c].d);
            break;
        case 't':
            if (x->fmt == MS_EXPORT_PGSQL) {
                /* PostgreSQL text cannot hold NUL or invalid UTF-8: render
                 * (core tables never need it; exact bytes are in *_bytes) */
                size_t rl;
                char *r = ms_db_text_render((const char *)v[c].p, v[c].n, &rl);
                if (!r) { x->wr_err = MS_ENOMEM; return; }
                for (size_t i = 0; i < rl; i++)
                    if (!r[i]) r[i] = '?';
                copy_text(f, (const unsigned char *)r, rl);
                free(r);
            } else csv_text(f, v[c].p, v[c].n);
            break;
        case 'b':
            if (x->fmt == MS_EXPORT_PGSQL) fputs("\\\\x", f);
            /* CSV: an empty blob is "" (an empty unquoted field is NULL) */
            else if (v[c].n == 0) fputs("\"\"", f);
            put_hex(f, v[c].p, v[c].n);
            break;
        }
    }
    putc('\n', f);
    if (ferror(f) && !x->wr_err) {   /* a full disk: stop at once, not at the end */
        x->wr_err = MS_EIO;
        x->wr_errno = errno;
    }
}

/* A write error names the file written (the database when the stream has
 * no name); errno as the failed write left it. */
static int wr_fail_errno(Ex *x, int e)
{
    if (x->out_name) return ms_error_set(x->err, MS_EIO, "%s: write failed: %s", x->out_name, strerror(e ? e : EIO));
    return ms_error_set(x->err, MS_EIO, "%s: export: write failed: %s", x->db->path, strerror(e ? e : EIO));
}

static int wr_fail(Ex *x)
{
    if (x->wr_err == MS_ENOMEM) return ms_error_set(x->err, MS_ENOMEM, "%s: export: out of memory", x->db->path);
    return wr_fail_errno(x, x->wr_errno ? x->wr_errno : errno);
}

static void read_val(sqlite3_stmt *st, int c, char t, Val *v)
{
    memset(v, 0, sizeof *v);
    if (sqlite3_column_type(st, c) == SQLITE_NULL) { v->null = true; return; }
    switch (t) {
    case 'i': v->i = sqlite3_column_int64(st, c); break;
    case 'r': case 'f': v->d = sqlite3_column_double(st, c); break;
    case 't':
        v->p = sqlite3_column_text(st, c);
        v->n = (size_t)sqlite3_column_bytes(st, c);
        break;
    default:
        v->p = sqlite3_column_blob(st, c);
        v->n = (size_t)sqlite3_column_bytes(st, c);
        if (!v->p) v->p = (const unsigned char *)"";
    }
}

/* ------------------------------------------------------------ table bodies */

static int rows_from_select(Ex *x, const char *sql)
{
    sqlite3_stmt *st;
    int rc = ms_db_prepare(x->db, sql, &st, x->err);
    if (rc) return rc;
    Val v[MAX_COLS];
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        for (int c = 0; c < x->n; c++) read_val(st, c, x->types[c], &v[c]);
        emit_row(x, v);
        if (x->wr_err) break;
    }
    sqlite3_finalize(st);
    if (x->wr_err) return wr_fail(x);
    if (rc != SQLITE_DONE) return ms_db_fail(x->db, x->err, MS_EDB, "export");
    return 0;
}

/* routing / expert_stats, expanded from routing_packed. */
static int rows_routing(Ex *x, bool stats)
{
    sqlite3_stmt *st;
    int rc = ms_db_prepare(x->db, stats ?
        "SELECT run_id,prompt_id,pos,layer,experts,out_maxabs,out_l2,out_argmax FROM routing_packed "
        "WHERE out_maxabs IS NOT NULL ORDER BY prompt_id,pos,layer" :
        "SELECT run_id,prompt_id,pos,layer,experts,weights FROM routing_packed ORDER BY prompt_id,pos,layer",
        &st, x->err);
    if (rc) return rc;
    Val v[9];
    memset(v, 0, sizeof v);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int k = sqlite3_column_bytes(st, 4) / 2;
        const unsigned char *ex = sqlite3_column_blob(st, 4);
        const unsigned char *a = sqlite3_column_blob(st, 5);
        const unsigned char *b = stats ? sqlite3_column_blob(st, 6) : NULL;
        const unsigned char *am = stats ? sqlite3_column_blob(st, 7) : NULL;
        if (!ex || (a && sqlite3_column_bytes(st, 5) != 4 * k) || (b && sqlite3_column_bytes(st, 6) != 4 * k) ||
            (am && sqlite3_column_bytes(st, 7) != 2 * k)) {
            sqlite3_finalize(st);
            return ms_error_set(x->err, MS_EFORMAT, "%s: corrupt routing_packed row", x->db->path);
        }
        for (int c = 0; c < 4; c++) v[c].i = sqlite3_column_int64(st, c);
        for (int j = 0; j < k; j++) {
            v[4].i = j;
            v[5].i = ms_get_u16(ex + 2 * j);
            v[6].null = !a;
            if (a) v[6].d = ms_get_f32(a + 4 * j);
            if (stats) {
                v[7].null = !b;
                if (b) v[7].d = ms_get_f32(b + 4 * j);
                v[8].null = !am;
                if (am) v[8].i = ms_get_u16(am + 2 * j);
            }
            emit_row(x, v);
        }
        if (x->wr_err) break;
    }
    sqlite3_finalize(st);
    if (x->wr_err) return wr_fail(x);
    if (rc != SQLITE_DONE) return ms_db_fail(x->db, x->err, MS_EDB, "export routing");
    return 0;
}

static const char *pg_type(char t)
{
    switch (t) {
    case 'i': return "bigint";
    case 'r': return "double precision";
    case 'f': return "real";
    case 't': return "text";
    default: return "bytea";
    }
}

static bool listed(const char *tables, const char *name)
{
    if (!tables) return true;
    size_t n = strlen(name);
    for (const char *p = tables; *p;) {
        const char *e = strchr(p, ',');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == n && !strncmp(p, name, n)) return true;
        if (!e) break;
        p = e + 1;
    }
    return false;
}

/* One logical table (or analysis result table) in pgsql or csv form. */
static int export_logical(Ex *x, const char *name, const char *cols, const char *types, const char *pkey,
                          const char *select, int special, const char *out_dir)
{
    x->n = (int)strlen(types);
    snprintf(x->types, sizeof x->types, "%s", types);
    FILE *file = NULL;
    if (x->fmt == MS_EXPORT_CSV && out_dir) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s.csv", out_dir, name);
        if (x->n_csv == x->cap_csv) {
            int nc = x->cap_csv ? 2 * x->cap_csv : 16;
            MsOutFile *nv = realloc(x->csv, (size_t)nc * sizeof *nv);
            if (!nv) return ms_error_set(x->err, MS_ENOMEM, "%s: out of memory", path);
            x->csv = nv;
            x->cap_csv = nc;
        }
        int rc = ms_outfile_open(&x->csv[x->n_csv], path, x->err);
        if (rc) return rc;
        file = x->csv[x->n_csv++].f;
        x->out = file;
        snprintf(x->csv_path, sizeof x->csv_path, "%s", path);
        x->out_name = x->csv_path;
    }
    FILE *f = x->out;
    if (x->fmt == MS_EXPORT_PGSQL) {
        fprintf(f, "\nDROP TABLE IF EXISTS \"%s\" CASCADE;\nCREATE TABLE \"%s\" (", name, name);
        const char *p = cols;
        for (int c = 0; c < x->n; c++) {
            const char *e = strchr(p, ',');
            size_t l = e ? (size_t)(e - p) : strlen(p);
            fprintf(f, "%s\"%.*s\" %s", c ? ", " : "", (int)l, p, pg_type(types[c]));
            p = e ? e + 1 : p + l;
        }
        if (pkey) fprintf(f, ", PRIMARY KEY (%s)", pkey);
        fprintf(f, ");\nCOPY \"%s\" FROM stdin;\n", name);
    } else {
        fprintf(f, "%s\n", cols);
    }
    int rc = special ? rows_routing(x, special == 2) : rows_from_select(x, select);
    if (!rc && x->fmt == MS_EXPORT_PGSQL) fputs("\\.\n", f);
    if (file) {
        if (!rc && (fflush(file) || ferror(file))) rc = wr_fail_errno(x, errno);
        x->out = NULL;
        x->out_name = NULL;
    }
    if (!rc && x->fmt != MS_EXPORT_CSV && ferror(x->out)) rc = wr_fail_errno(x, x->wr_errno ? x->wr_errno : errno);
    return rc;
}

/* Analysis result tables registered in `analysis`. */
static int export_results(Ex *x, const char *tables, const char *out_dir)
{
    sqlite3_stmt *st;
    int rc = ms_db_prepare(x->db, "SELECT table_name FROM analysis WHERE table_name IN "
                                  "(SELECT name FROM sqlite_schema WHERE type='table') ORDER BY analysis_id",
                           &st, x->err);
    if (rc) return rc;
    while (!rc && sqlite3_step(st) == SQLITE_ROW) {
        char *t = strdup((const char *)sqlite3_column_text(st, 0));
        if (!t) { rc = ms_error_set(x->err, MS_ENOMEM, "%s: out of memory", x->db->path); break; }
        if (!listed(tables, t)) { free(t); continue; }
        char sql[512];
        snprintf(sql, sizeof sql, "SELECT name, upper(type) FROM pragma_table_info('%s') ORDER BY cid", t);
        sqlite3_stmt *ci;
        if ((rc = ms_db_prepare(x->db, sql, &ci, x->err))) { free(t); break; }
        char cols[8192] = "", types[MAX_COLS + 1] = "";
        size_t cl = 0;
        int n = 0;
        while (sqlite3_step(ci) == SQLITE_ROW && n < MAX_COLS) {
            const char *cn = (const char *)sqlite3_column_text(ci, 0), *ty = (const char *)sqlite3_column_text(ci, 1);
            cl += (size_t)snprintf(cols + cl, sizeof cols - MS_MIN(cl, sizeof cols), "%s%s", n ? "," : "", cn);
            types[n++] = strstr(ty, "INT") ? 'i' : strstr(ty, "REAL") ? 'r' : strstr(ty, "BLOB") ? 'b' : 't';
        }
        types[n] = '\0';
        sqlite3_finalize(ci);
        snprintf(sql, sizeof sql, "SELECT * FROM \"%s\" ORDER BY rowid", t);
        if (n > 0 && cl < sizeof cols) rc = export_logical(x, t, cols, types, NULL, sql, 0, out_dir);
        free(t);
    }
    sqlite3_finalize(st);
    return rc;
}

/* ------------------------------------------------------------- sql (dump) */

static int dump_sqlite(Ex *x, const char *tables)
{
    FILE *f = x->out;
    fprintf(f, "-- moescope trace database (schema version %d)\n"
               "PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\n", x->db->user_version);
    sqlite3_stmt *st;
    int rc = ms_db_prepare(x->db, "SELECT type, name, sql FROM sqlite_schema WHERE sql IS NOT NULL AND "
                                  "name NOT LIKE 'sqlite_%' ORDER BY type = 'view', rowid", &st, x->err);
    if (rc) return rc;
    while (!rc && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        rc = 0;
        const char *type = (const char *)sqlite3_column_text(st, 0);
        char *name = strdup((const char *)sqlite3_column_text(st, 1));
        if (!name) { rc = ms_error_set(x->err, MS_ENOMEM, "%s: out of memory", x->db->path); break; }
        fprintf(f, "%s;\n", (const char *)sqlite3_column_text(st, 2));
        if (strcmp(type, "table")) { free(name); continue; }
        if (!strcmp(name, "ms_seq")) {
            fputs("WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i+1 FROM s WHERE i < 65535)\n"
                  "  INSERT INTO ms_seq SELECT i FROM s;\n", f);
            free(name);
            continue;
        }
        const char *logical_name = !strcmp(name, "routing_packed") ? "routing" : name;
        if (!listed(tables, logical_name) && !(!strcmp(name, "routing_packed") && listed(tables, "expert_stats"))) {
            free(name);
            continue;
        }
        /* one text column per row: INSERT with SQLite's own quote() (exact
         * for REAL); text with NUL goes as a cast blob; CR and LF inside
         * text as ||char(13)|| and ||char(10)||, as sqlite3's .dump does:
         * the sqlite3 shell drops the CR of a CR LF inside a literal, and
         * one INSERT stays one line */
        char sql[8192];
        size_t l = (size_t)snprintf(sql, sizeof sql, "SELECT 'INSERT INTO \"%s\" VALUES('", name);
        char q[512];
        snprintf(q, sizeof q, "SELECT name FROM pragma_table_info('%s') ORDER BY cid", name);
        sqlite3_stmt *ci;
        if ((rc = ms_db_prepare(x->db, q, &ci, x->err))) { free(name); break; }
        int n = 0;
        while (sqlite3_step(ci) == SQLITE_ROW && l < sizeof sql) {
            const char *cn = (const char *)sqlite3_column_text(ci, 0);
            l += (size_t)snprintf(sql + l, sizeof sql - l,
                                  "||%sCASE WHEN typeof(\"%s\")='text' AND instr(CAST(\"%s\" AS BLOB),x'00') "
                                  "THEN 'CAST(X'''||hex(\"%s\")||''' AS TEXT)' WHEN typeof(\"%s\")='text' THEN "
                                  "replace(replace(quote(\"%s\"),char(13),'''||char(13)||'''),char(10),"
                                  "'''||char(10)||''') ELSE quote(\"%s\") END",
                                  n ? "','||" : "", cn, cn, cn, cn, cn, cn);
            n++;
        }
        sqlite3_finalize(ci);
        if (l < sizeof sql) l += (size_t)snprintf(sql + l, sizeof sql - l, "||');' FROM \"%s\"", name);
        if (l >= sizeof sql) { free(name); rc = ms_error_set(x->err, MS_EINTERNAL, "%s: table too wide", x->db->path); break; }
        sqlite3_stmt *rs;
        if ((rc = ms_db_prepare(x->db, sql, &rs, x->err))) { free(name); break; }
        int s;
        while ((s = sqlite3_step(rs)) == SQLITE_ROW) {
            fwrite(sqlite3_column_text(rs, 0), 1, (size_t)sqlite3_column_bytes(rs, 0), f);
            putc('\n', f);
            if (ferror(f)) break;
        }
        sqlite3_finalize(rs);
        free(name);
        if (ferror(f)) {
            x->wr_err = MS_EIO;
            rc = wr_fail_errno(x, errno);
        } else if (s != SQLITE_DONE) rc = ms_db_fail(x->db, x->err, MS_EDB, "export");
    }
    sqlite3_finalize(st);
    if (rc && rc != SQLITE_DONE) return rc < 0 ? rc : ms_db_fail(x->db, x->err, MS_EDB, "export");
    fprintf(f, "PRAGMA user_version=%d;\nPRAGMA application_id=%d;\nCOMMIT;\n", x->db->user_version,
            0x4D53434F);
    return 0;
}

/* out_name: the file out writes (for messages), NULL when unnamed. */
static int export_to(MsTraceDb *db, MsExportFormat fmt, const char *tables, FILE *out, const char *out_name,
                     const char *out_dir, MsError *err);

/* Another backend: its tables copied into a temporary SQLite database
 * (one consistent snapshot), exported from there by the code above, so
 * every format holds the same bytes as the export of a SQLite trace with
 * the same rows.  The copy needs about the database's size in TMPDIR and
 * is removed whatever happens. */
static int export_other(MsTraceDb *db, MsExportFormat fmt, const char *tables, FILE *out, const char *out_name,
                        const char *out_dir, MsError *err)
{
    if (!db->be->snapshot) return ms_db_unsupported(db, err, "export");
    const char *tmp = getenv("TMPDIR");
    char dir[4096], path[4200];
    snprintf(dir, sizeof dir, "%s/moescope-export.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) return ms_error_set(err, MS_EIO, "%s: export: temporary directory in %s: %s", db->path,
                                           tmp && *tmp ? tmp : "/tmp", strerror(errno));
    snprintf(path, sizeof path, "%s/snapshot.db", dir);
    MsTraceDb *t = ms_trace_open(path, MS_TRACE_CREATE, err);
    int rc = t ? 0 : (err && err->code ? err->code : MS_EDB);
    if (!rc) rc = ms_db_exec(t, "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF", err);
    if (!rc) rc = db->be->snapshot(db, t, err);
    if (!rc) {
        /* messages name the database exported, not the copy */
        char *own = t->path;
        t->path = db->path;
        rc = export_to(t, fmt, tables, out, out_name, out_dir, err);
        t->path = own;
    }
    ms_trace_close(t);
    static const char *const sfx[] = { "", "-wal", "-shm", "-journal" };
    for (size_t i = 0; i < MS_ARRAY_LEN(sfx); i++) {
        char f[4300];
        snprintf(f, sizeof f, "%s%s", path, sfx[i]);
        unlink(f);
    }
    rmdir(dir);
    return rc;
}

static int export_to(MsTraceDb *db, MsExportFormat fmt, const char *tables, FILE *out, const char *out_name,
                     const char *out_dir, MsError *err)
{
    if (db->be) return export_other(db, fmt, tables, out, out_name, out_dir, err);
    Ex x = { .db = db, .fmt = fmt, .out = out, .err = err, .out_name = out_name };
    if (fmt != MS_EXPORT_CSV && !out) return ms_error_set(err, MS_EINVAL, "%s: export: no output", db->path);
    if (fmt == MS_EXPORT_CSV && !out_dir && !out) return ms_error_set(err, MS_EINVAL, "%s: export: no output", db->path);
    if (tables) {
        /* every listed name must exist */
        for (const char *p = tables; *p;) {
            const char *e = strchr(p, ',');
            size_t l = e ? (size_t)(e - p) : strlen(p);
            bool ok = false;
            for (size_t i = 0; i < MS_ARRAY_LEN(logical) && !ok; i++)
                ok = strlen(logical[i].name) == l && !strncmp(logical[i].name, p, l);
            if (!ok) {
                char q[256];
                snprintf(q, sizeof q, "SELECT 1 FROM analysis WHERE table_name = '%.*s'", (int)MS_MIN(l, 100), p);
                sqlite3_stmt *st;
                if (!ms_db_prepare(db, q, &st, NULL)) {
                    ok = sqlite3_step(st) == SQLITE_ROW && !memchr(p, '\'', l);
                    sqlite3_finalize(st);
                }
            }
            if (!ok) return ms_error_set(err, MS_EINVAL, "%s: export: unknown table '%.*s'", db->path, (int)l, p);
            if (!e) break;
            p = e + 1;
        }
    }
    bool made_dir = false;   /* removed again when the export fails */
    if (fmt == MS_EXPORT_CSV && out_dir) {
        if (mkdir(out_dir, 0777) == 0) made_dir = true;
        else if (errno != EEXIST) return ms_error_set(err, MS_EIO, "%s: %s", out_dir, strerror(errno));
    }
    /* a consistent snapshot even while a trace is being written */
    int rc = ms_db_exec(db, "BEGIN", err);
    if (rc) {
        if (made_dir) rmdir(out_dir);
        return rc;
    }
    if (fmt == MS_EXPORT_SQL) {
        rc = dump_sqlite(&x, tables);
    } else {
        if (fmt == MS_EXPORT_PGSQL)
            fputs("-- moescope trace database for PostgreSQL (load with psql -f)\n"
                  "\\set ON_ERROR_STOP on\nSET client_encoding = 'UTF8';\nSET standard_conforming_strings = on;\n"
                  "SET client_min_messages = warning;\n"
                  "BEGIN;\n", out);
        for (size_t i = 0; i < MS_ARRAY_LEN(logical) && !rc; i++) {
            const Logical *L = &logical[i];
            if (!listed(tables, L->name)) continue;
            int special = !strcmp(L->name, "routing") ? 1 : !strcmp(L->name, "expert_stats") ? 2 : 0;
            rc = export_logical(&x, L->name, L->cols, L->types, L->pkey, L->select, special, out_dir);
        }
        if (!rc) rc = export_results(&x, tables, out_dir);
        if (!rc && fmt == MS_EXPORT_PGSQL) {
            if (!tables || (listed(tables, "routing")))
                fputs("\nCREATE VIEW expert_load AS SELECT run_id, layer, expert, count(*) AS n,\n"
                      "  count(*)*1.0/sum(count(*)) OVER (PARTITION BY run_id, layer) AS frac,\n"
                      "  sum(weight) AS weight_sum FROM routing GROUP BY run_id, layer, expert;\n"
                      "CREATE VIEW load_entropy AS SELECT run_id, layer, count(*) AS n_used,\n"
                      "  -sum(frac*ln(frac)) AS entropy FROM expert_load GROUP BY run_id, layer;\n", out);
            if (!tables || listed(tables, "an_compare_prompt"))
                fputs("CREATE VIEW an_compare AS SELECT run_id, baseline_run_id, count(*) AS n_prompts,\n"
                      "  sum(n_tokens) AS n_positions, sum(kl_mean*n_tokens)/sum(n_tokens) AS kl_mean,\n"
                      "  max(kl_max) AS kl_max, sum(top1_agree)*1.0/sum(n_tokens) AS top1_agreement,\n"
                      "  exp(sum(nll_baseline)/sum(n_scored)) AS ppl_baseline, exp(sum(nll_run)/sum(n_scored)) AS ppl_run,\n"
                      "  (sum(nll_baseline)-sum(nll_run))/sum(n_scored) AS dlogprob_mean,\n"
                      "  avg(first_divergence) AS first_divergence_mean, count(first_divergence) AS n_diverged\n"
                      "  FROM an_compare_prompt GROUP BY run_id, baseline_run_id;\n", out);
            if (!tables || listed(tables, "an_compare_layer"))
                fputs("CREATE VIEW an_compare_shift AS SELECT run_id, baseline_run_id, layer,\n"
                      "  sum(n_changed)*1.0/sum(n_pos) AS changed_share, sum(jaccard_sum)/sum(n_pos) AS jaccard_mean,\n"
                      "  sum(n_pos) AS n_positions FROM an_compare_layer GROUP BY run_id, baseline_run_id, layer;\n", out);
            fputs("COMMIT;\n", out);
        }
    }
    sqlite3_exec(db->h, "COMMIT", NULL, NULL, NULL);
    if (!rc && out && (fflush(out) || ferror(out))) rc = wr_fail_errno(&x, x.wr_errno ? x.wr_errno : errno);
    /* CSV files: all renamed into place, or none.  Every file is flushed
     * and synced before the first rename, so a full disk fails them all. */
    for (int i = 0; i < x.n_csv && !rc; i++) {
        FILE *f = x.csv[i].f;
        if (fflush(f) || ferror(f) || (fsync(fileno(f)) && errno != EINVAL)) {
            x.out_name = x.csv[i].path;
            rc = wr_fail_errno(&x, errno);
        }
    }
    for (int i = 0; i < x.n_csv; i++) {
        if (rc) ms_outfile_abort(&x.csv[i]);
        else rc = ms_outfile_commit(&x.csv[i], err);
    }
    free(x.csv);
    if (rc && made_dir) rmdir(out_dir);   /* empty again: its files were never renamed in */
    return rc;
}

int ms_trace_export(MsTraceDb *db, MsExportFormat fmt, const char *tables, FILE *out, const char *out_dir,
                    MsError *err)
{
    return export_to(db, fmt, tables, out, NULL, out_dir, err);
}

int ms_trace_export_path(MsTraceDb *db, MsExportFormat fmt, const char *tables, const char *path, MsError *err)
{
    if (fmt == MS_EXPORT_CSV) return ms_trace_export(db, fmt, tables, NULL, path, err);
    MsOutFile o;
    int rc = ms_outfile_open(&o, path, err);
    if (rc) return rc;
    rc = export_to(db, fmt, tables, o.f, path, NULL, err);
    if (rc) {
        ms_outfile_abort(&o);
        return rc;
    }
    return ms_outfile_commit(&o, err);
}
