/* result.c — analysis result tables written into the trace database. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db-internal.h"

struct MsTraceResult {
    MsTraceDb *db;
    sqlite3_stmt *ins;
    int n_cols;
    bool in_tx;
};

bool ms_db_ident_ok(const char *s)
{
    if (!s || !*s || strlen(s) > 64 || isdigit((unsigned char)s[0])) return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_') return false;
    return true;
}

/* Core tables and views an analysis must never replace. */
bool ms_db_reserved_name(const char *t)
{
    static const char *const names[] = { "model", "run", "prompt", "token", "routing", "routing_packed",
        "router_probs", "router_prob", "hidden_stats", "expert_stats", "analysis", "intervention_set",
        "ms_seq", "expert_load", "load_entropy", "routing_entropy", "prompt_label", "an_compare",
        "an_compare_prompt", "an_compare_pos", "an_compare_layer", "an_compare_shift", "sweep", "sweep_candidate", "run_progress" };
    for (size_t i = 0; i < MS_ARRAY_LEN(names); i++)
        if (!strcasecmp(t, names[i])) return true;
    return !strncasecmp(t, "sqlite_", 7);
}

char *ms_db_result_ddl(const char *table, const MsColumn *cols, int n_cols)
{
    size_t cap = 256 + (size_t)n_cols * 80, a;
    char *ddl = malloc(cap);
    if (!ddl) return NULL;
    a = (size_t)snprintf(ddl, cap, "CREATE TABLE \"%s\"(", table);
    for (int i = 0; i < n_cols; i++) {
        static const char *const ty[] = { "", "INTEGER", "REAL", "TEXT", "BLOB" };
        int t = cols[i].type >= MS_COL_INT && cols[i].type <= MS_COL_BLOB ? (int)cols[i].type : MS_COL_BLOB;
        a += (size_t)snprintf(ddl + a, cap - a, "%s\"%s\" %s", i ? ", " : "", cols[i].name, ty[t]);
    }
    snprintf(ddl + a, cap - a, ")");
    return ddl;
}

MsTraceResult *ms_trace_result_new(MsTraceDb *db, int64_t run_id, const char *analysis, const char *params_json,
                                   const char *table, const MsColumn *cols, int n_cols, MsError *err)
{
    if (db->be) return db->be->result_new(db, run_id, analysis, params_json, table, cols, n_cols, err);
    if (!ms_db_ident_ok(table) || ms_db_reserved_name(table)) {
        ms_error_set(err, MS_EINVAL, "%s: bad result table name '%s'", db->path, table ? table : "");
        return NULL;
    }
    if (n_cols < 1 || n_cols > 200) {
        ms_error_set(err, MS_EINVAL, "%s: result table %s: bad column count %d", db->path, table, n_cols);
        return NULL;
    }
    size_t cap = 256 + (size_t)n_cols * 80;
    char *ddl = malloc(cap), *ins = malloc(cap);
    MsTraceResult *r = calloc(1, sizeof *r);
    if (!ddl || !ins || !r) {
        free(ddl); free(ins); free(r);
        ms_error_set(err, MS_ENOMEM, "%s: out of memory", db->path);
        return NULL;
    }
    r->db = db;
    r->n_cols = n_cols;
    size_t b = (size_t)snprintf(ins, cap, "INSERT INTO \"%s\" VALUES(", table);
    for (int i = 0; i < n_cols; i++) {
        if (!ms_db_ident_ok(cols[i].name) || cols[i].type < MS_COL_INT || cols[i].type > MS_COL_BLOB) {
            ms_error_set(err, MS_EINVAL, "%s: result table %s: bad column %d", db->path, table, i);
            goto fail;
        }
        b += (size_t)snprintf(ins + b, cap - b, "%s?", i ? "," : "");
    }
    snprintf(ins + b, cap - b, ")");
    free(ddl);
    if (!(ddl = ms_db_result_ddl(table, cols, n_cols))) {
        ms_error_set(err, MS_ENOMEM, "%s: out of memory", db->path);
        goto fail;
    }
    if (ms_db_exec(db, "BEGIN IMMEDIATE", err)) goto fail;
    r->in_tx = true;
    char drop[128];
    snprintf(drop, sizeof drop, "DROP TABLE IF EXISTS \"%s\"", table);
    if (ms_db_exec(db, drop, err) || ms_db_exec(db, ddl, err)) goto fail;
    sqlite3_stmt *st;
    if (ms_db_prepare(db, "INSERT OR REPLACE INTO analysis(run_id,name,table_name,params,created,program_version) "
                          "VALUES(?1,?2,?3,?4,strftime('%Y-%m-%dT%H:%M:%SZ','now'),?5)", &st, err)) goto fail;
    if (run_id > 0) sqlite3_bind_int64(st, 1, run_id);
    sqlite3_bind_text(st, 2, analysis ? analysis : table, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, table, -1, SQLITE_STATIC);
    if (params_json) sqlite3_bind_text(st, 4, params_json, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, MS_VERSION, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) { ms_db_fail(db, err, MS_EDB, "register analysis"); goto fail; }
    if (ms_db_prepare(db, ins, &r->ins, err)) goto fail;
    free(ddl);
    free(ins);
    return r;
fail:
    free(ddl);
    free(ins);
    ms_trace_result_free(r);
    return NULL;
}

static bool col_ok(MsTraceResult *r, int col) { return r && r->ins && col >= 0 && col < r->n_cols; }

int ms_trace_result_int(MsTraceResult *r, int col, int64_t v)
{
    if (r && ms_db_of(r)->be) return ms_db_of(r)->be->result_value(r, col, MS_COL_INT, v, 0, NULL);
    if (!col_ok(r, col)) return MS_EINVAL;
    return sqlite3_bind_int64(r->ins, col + 1, v) == SQLITE_OK ? 0 : MS_EDB;
}
int ms_trace_result_real(MsTraceResult *r, int col, double v)
{
    if (r && ms_db_of(r)->be) return ms_db_of(r)->be->result_value(r, col, MS_COL_REAL, 0, v, NULL);
    if (!col_ok(r, col)) return MS_EINVAL;
    return (isnan(v) ? sqlite3_bind_null(r->ins, col + 1) : sqlite3_bind_double(r->ins, col + 1, v)) == SQLITE_OK
               ? 0 : MS_EDB;
}
int ms_trace_result_text(MsTraceResult *r, int col, const char *s)
{
    if (r && ms_db_of(r)->be) return ms_db_of(r)->be->result_value(r, col, MS_COL_TEXT, 0, 0, s);
    if (!col_ok(r, col)) return MS_EINVAL;
    return (s ? sqlite3_bind_text(r->ins, col + 1, s, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(r->ins, col + 1))
               == SQLITE_OK ? 0 : MS_EDB;
}
int ms_trace_result_null(MsTraceResult *r, int col)
{
    if (r && ms_db_of(r)->be) return ms_db_of(r)->be->result_value(r, col, MS_COL_NULL, 0, 0, NULL);
    if (!col_ok(r, col)) return MS_EINVAL;
    return sqlite3_bind_null(r->ins, col + 1) == SQLITE_OK ? 0 : MS_EDB;
}

int ms_trace_result_row(MsTraceResult *r, MsError *err)
{
    if (r && ms_db_of(r)->be) return ms_db_of(r)->be->result_row(r, err);
    if (!r || !r->ins) return ms_error_set(err, MS_EINVAL, "result table is closed");
    int rc = sqlite3_step(r->ins);
    sqlite3_reset(r->ins);
    sqlite3_clear_bindings(r->ins);
    if (rc != SQLITE_DONE) return ms_db_fail(r->db, err, MS_EDB, "add result row");
    return 0;
}

int ms_trace_result_commit(MsTraceResult *r, MsError *err)
{
    if (r && ms_db_of(r)->be) return ms_db_of(r)->be->result_commit(r, err);
    if (!r || !r->in_tx) return ms_error_set(err, MS_EINVAL, "result table is closed");
    sqlite3_finalize(r->ins);
    r->ins = NULL;
    int rc = ms_db_exec(r->db, "COMMIT", err);
    if (rc) sqlite3_exec(r->db->h, "ROLLBACK", NULL, NULL, NULL);
    r->in_tx = false;
    return rc;
}

void ms_trace_result_free(MsTraceResult *r)
{
    if (!r) return;
    if (ms_db_of(r)->be) { ms_db_of(r)->be->result_free(r); return; }
    sqlite3_finalize(r->ins);
    if (r->in_tx) sqlite3_exec(r->db->h, "ROLLBACK", NULL, NULL, NULL);
    free(r);
}
