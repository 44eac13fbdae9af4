/* pg.c — the PostgreSQL backend: the trace store of trace.h in a
 * PostgreSQL database named by a connection URI (libpq's syntax and
 * environment variables).
 *
 * Schema: the tables are generated from the SQLite description (the
 * CREATE TABLE statements SQLite holds after every migration, translated:
 * INTEGER -> bigint, REAL -> double precision, TEXT -> text, BLOB -> bytea,
 * an INTEGER PRIMARY KEY -> an identity column, WITHOUT ROWID dropped), so
 * both dialects have the same tables, columns and keys; the views that
 * decode the packed columns are written per dialect (below).  The schema
 * version lives in table ms_meta.
 *
 * Writing: one prompt is one transaction: its prompt row (INSERT ..
 * RETURNING the id), then tokens, routing, probabilities and hidden stats
 * each in one binary COPY.  A killed writer leaves nothing of the prompt in
 * flight.  Reading: server-side cursors fetched in binary batches, inside
 * one read transaction while any cursor is open. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "db-internal.h"

#define PG_FETCH 8192          /* rows per FETCH of a cursor */
#define PG_LOCK_KEY "1297302351" /* advisory lock key: schema creation (0x4D53434F, "MSCO") */
#define PG_MAX_DEPTH 32

/* PostgreSQL type oids used here (pg_type.dat) */
enum { OID_BOOL = 16, OID_BYTEA = 17, OID_INT8 = 20, OID_INT2 = 21, OID_INT4 = 23, OID_TEXT = 25,
       OID_FLOAT4 = 700, OID_FLOAT8 = 701, OID_NUMERIC = 1700 };

typedef struct {
    PGconn *c;
    char *conninfo;           /* the URI as given (may hold a password) */
    int depth;                /* nested transaction levels (BEGIN, then savepoints) */
    bool began[PG_MAX_DEPTH]; /* level i+1 opened the transaction */
    int n_cursors;
    bool cursor_tx;           /* a read transaction opened for cursors, ends with the last */
    uint64_t cursor_seq;
} Pg;

static Pg *pg_of(MsTraceDb *db) { return db->be_db; }

/* ---------------------------------------------------------------- errors */

/* First line of libpq's message (they end in newlines, some span lines). */
static const char *pq_msg(const char *m, char *buf, size_t cap)
{
    if (!m || !*m) return "unknown error";
    snprintf(buf, cap, "%s", m);
    char *nl = strchr(buf, '\n');
    if (nl) *nl = '\0';
    char *p = buf;
    if (!strncmp(p, "ERROR:  ", 8)) p += 8;
    return p;
}

static int pg_fail(MsTraceDb *db, MsError *err, int code, const char *what, const PGresult *res)
{
    char buf[512];
    const char *m = res ? PQresultErrorMessage(res) : NULL;
    if (!m || !*m) m = PQerrorMessage(pg_of(db)->c);
    return ms_error_set(err, code, "%s: %s: %s", db->path, what, pq_msg(m, buf, sizeof buf));
}

/* ---------------------------------------------------------------- queries */

/* Run sql with text parameters (NULL = SQL NULL); binary results.  Returns
 * the result (caller clears) when its status is ok, else NULL with err. */
static PGresult *pg_exec(MsTraceDb *db, const char *sql, int n, const char *const *vals, const int *lens,
                         const int *fmts, const char *what, MsError *err)
{
    PGresult *r = PQexecParams(pg_of(db)->c, sql, n, NULL, vals, lens, fmts, 1);
    ExecStatusType s = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK) return r;
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    int code = state && !strncmp(state, "23", 2) ? MS_EINVAL : MS_EDB;
    pg_fail(db, err, code, what, r);
    PQclear(r);
    return NULL;
}

/* A command without results or parameters. */
static int pg_cmd(MsTraceDb *db, const char *sql, MsError *err)
{
    PGresult *r = pg_exec(db, sql, 0, NULL, NULL, NULL, sql, err);
    if (!r) return err ? err->code : MS_EDB;
    PQclear(r);
    return 0;
}

static uint64_t be_u(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v = v << 8 | p[i];
    return v;
}

static bool g_null(const PGresult *r, int row, int col) { return PQgetisnull(r, row, col); }

/* An integer column in binary form (int2/int4/int8, bool); 0 when NULL. */
static int64_t g_i64(const PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col)) return 0;
    const unsigned char *p = (const unsigned char *)PQgetvalue(r, row, col);
    int n = PQgetlength(r, row, col);
    switch (n) {
    case 1: return p[0];
    case 2: return (int16_t)be_u(p, 2);
    case 4: return (int32_t)be_u(p, 4);
    case 8: return (int64_t)be_u(p, 8);
    default: return 0;
    }
}

/* A float4/float8 column; NAN when NULL. */
static double g_f64(const PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col)) return NAN;
    const unsigned char *p = (const unsigned char *)PQgetvalue(r, row, col);
    if (PQgetlength(r, row, col) == 4) return ms_fp32_from_bits((uint32_t)be_u(p, 4));
    uint64_t u = be_u(p, 8);
    double d;
    memcpy(&d, &u, 8);
    return d;
}

/* Text or bytea: the bytes (NUL-terminated by libpq), NULL when NULL. */
static const char *g_str(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? NULL : PQgetvalue(r, row, col);
}

static char *g_dup(const PGresult *r, int row, int col)
{
    const char *s = g_str(r, row, col);
    return s ? strdup(s) : NULL;
}

/* ------------------------------------------------------------ transactions */

static bool pg_in_tx(const Pg *p) { return p->depth > 0 || p->cursor_tx; }

/* Enter a transaction level: BEGIN at the bottom, else a savepoint. */
static int tx_enter(MsTraceDb *db, MsError *err)
{
    Pg *p = pg_of(db);
    if (p->depth >= PG_MAX_DEPTH) return ms_error_set(err, MS_EINVAL, "%s: transactions nested too deep", db->path);
    char sql[64];
    bool begin = !pg_in_tx(p);
    if (begin) snprintf(sql, sizeof sql, "BEGIN");
    else snprintf(sql, sizeof sql, "SAVEPOINT ms_%d", p->depth + 1);
    int rc = pg_cmd(db, sql, err);
    if (rc) return rc;
    p->began[p->depth++] = begin;
    return 0;
}

static void cursor_tx_end(MsTraceDb *db);

/* Leave the innermost level: commit (ok) or roll back its work. */
static int tx_leave(MsTraceDb *db, bool ok, MsError *err)
{
    Pg *p = pg_of(db);
    if (p->depth == 0) return ms_error_set(err, MS_EINVAL, "%s: no transaction", db->path);
    int lvl = p->depth--;
    bool began = p->began[lvl - 1];
    char sql[96];
    int rc = 0;
    if (began && p->n_cursors > 0) {
        /* cursors opened inside live until the transaction ends: it stays
         * open as theirs; a failed level is undone by ending it now */
        if (!ok) {
            PQclear(PQexec(p->c, "ROLLBACK"));
            p->cursor_tx = false;
            return 0;
        }
        p->cursor_tx = true;
        return 0;
    }
    if (began) {
        if (ok) rc = pg_cmd(db, "COMMIT", err);
        if (!ok || rc) PQclear(PQexec(p->c, "ROLLBACK"));
    } else {
        if (ok) {
            snprintf(sql, sizeof sql, "RELEASE SAVEPOINT ms_%d", lvl);
            rc = pg_cmd(db, sql, err);
        }
        if (!ok || rc) {
            snprintf(sql, sizeof sql, "ROLLBACK TO SAVEPOINT ms_%d; RELEASE SAVEPOINT ms_%d", lvl, lvl);
            PQclear(PQexec(p->c, sql));
        }
    }
    if (p->depth == 0 && p->cursor_tx && p->n_cursors == 0) cursor_tx_end(db);
    return rc;
}

static int pg_tx_begin(MsTraceDb *db, MsError *err) { return tx_enter(db, err); }
static int pg_tx_commit(MsTraceDb *db, MsError *err) { return tx_leave(db, true, err); }
static void pg_tx_rollback(MsTraceDb *db)
{
    if (pg_of(db)->depth > 0) tx_leave(db, false, NULL);
}

/* ------------------------------------------------------------------ schema */

/* SQLite table DDL -> PostgreSQL (see the file comment).  The SQLite text
 * writes types in upper case and names in lower case. */
static char *ddl_to_pg(const char *in)
{
    size_t cap = strlen(in) * 3 + 64, n = 0;
    char *o = malloc(cap);
    if (!o) return NULL;
    for (const char *p = in; *p;) {
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || *p == '_') {
            const char *e = p;
            while ((*e >= 'A' && *e <= 'Z') || (*e >= 'a' && *e <= 'z') || (*e >= '0' && *e <= '9') || *e == '_') e++;
            size_t l = (size_t)(e - p);
            const char *rep = NULL;
            size_t skip = l;
#define IS(w) (l == sizeof(w) - 1 && !memcmp(p, w, l))
            if (IS("INTEGER") && !strncmp(e, " PRIMARY KEY", 12) && (e[12] == ',' || e[12] == ')')) {
                rep = "bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY";
                skip = l + 12;
            } else if (IS("INTEGER")) rep = "bigint";
            else if (IS("REAL")) rep = "double precision";
            else if (IS("TEXT")) rep = "text";
            else if (IS("BLOB")) rep = "bytea";
            else if (IS("WITHOUT") && !strncmp(e, " ROWID", 6)) { rep = ""; skip = l + 6; }
#undef IS
            if (rep) {
                size_t rl = strlen(rep);
                memcpy(o + n, rep, rl);
                n += rl;
                p += skip;
            } else {
                memcpy(o + n, p, l);
                n += l;
                p = e;
            }
        } else o[n++] = *p++;
    }
    o[n] = '\0';
    return o;
}

/* Decoding functions and views (the SQLite ones use its own byte tricks). */
static const char pg_views[] =
    "CREATE FUNCTION ms_u16(b bytea, o integer) RETURNS integer LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE\n"
    "  AS 'SELECT get_byte(b, o) + 256 * get_byte(b, o + 1)';\n"
    "CREATE FUNCTION ms_f32(b bytea, o integer) RETURNS double precision LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE\n"
    "  AS 'SELECT (1 - 2 * (get_byte(b, o + 3) >> 7)) * ((((get_byte(b, o + 2) & 127) << 16) | (get_byte(b, o + 1) << 8)\n"
    "      | get_byte(b, o)) + CASE WHEN e > 0 THEN 8388608 ELSE 0 END)::double precision\n"
    "      * power(2::double precision, greatest(e, 1) - 150)\n"
    "      FROM (SELECT ((get_byte(b, o + 3) & 127) << 1) | (get_byte(b, o + 2) >> 7) AS e) x';\n"
    "CREATE FUNCTION ms_f16(b bytea, o integer) RETURNS double precision LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE\n"
    "  AS 'SELECT (1 - 2 * (get_byte(b, o + 1) >> 7)) * ((((get_byte(b, o + 1) & 3) << 8) | get_byte(b, o))\n"
    "      + CASE WHEN e > 0 THEN 1024 ELSE 0 END)::double precision * power(2::double precision, greatest(e, 1) - 25)\n"
    "      FROM (SELECT (get_byte(b, o + 1) >> 2) & 31 AS e) x';\n"
    "CREATE VIEW routing AS SELECT r.run_id, r.prompt_id, r.pos, r.layer, s.i AS rank,\n"
    "  ms_u16(r.experts, 2 * s.i::integer) AS expert, ms_f32(r.weights, 4 * s.i::integer) AS weight\n"
    "  FROM routing_packed r JOIN ms_seq s ON s.i < length(r.experts) / 2;\n"
    "CREATE VIEW expert_stats AS SELECT r.run_id, r.prompt_id, r.pos, r.layer, s.i AS rank,\n"
    "  ms_u16(r.experts, 2 * s.i::integer) AS expert, ms_f32(r.out_maxabs, 4 * s.i::integer) AS maxabs,\n"
    "  ms_f32(r.out_l2, 4 * s.i::integer) AS l2, ms_u16(r.out_argmax, 2 * s.i::integer) AS channel\n"
    "  FROM routing_packed r JOIN ms_seq s ON s.i < length(r.experts) / 2 WHERE r.out_maxabs IS NOT NULL;\n"
    "CREATE VIEW router_prob AS SELECT r.run_id, r.prompt_id, r.pos, r.layer, s.i AS expert,\n"
    "  ms_f16(r.probs, 2 * s.i::integer) AS prob, ms_f16(r.logits, 2 * s.i::integer) AS logit\n"
    "  FROM router_probs r JOIN ms_seq s ON s.i < length(r.probs) / 2;\n"
    "CREATE VIEW expert_load AS SELECT run_id, layer, expert, count(*) AS n,\n"
    "  count(*)::double precision / sum(count(*)) OVER (PARTITION BY run_id, layer)::double precision AS frac,\n"
    "  sum(weight) AS weight_sum FROM routing GROUP BY run_id, layer, expert;\n"
    "CREATE VIEW load_entropy AS SELECT run_id, layer, count(*) AS n_used,\n"
    "  -sum(frac * ln(frac)) AS entropy FROM expert_load GROUP BY run_id, layer;\n"
    "CREATE VIEW routing_entropy AS SELECT run_id, layer, count(*) AS n_tokens,\n"
    "  avg(h) AS mean_entropy FROM (SELECT run_id, prompt_id, pos, layer,\n"
    "    -sum(CASE WHEN prob > 0 THEN prob * ln(prob) ELSE 0 END) AS h\n"
    "    FROM router_prob GROUP BY run_id, prompt_id, pos, layer) t\n"
    "  GROUP BY run_id, layer;\n"
    "CREATE VIEW prompt_label AS SELECT p.run_id, p.prompt_id, p.idx, j.key, j.value\n"
    "  FROM prompt p, json_each_text(p.labels::json) j WHERE p.labels IS NOT NULL;\n"
    "CREATE VIEW an_compare AS SELECT run_id, baseline_run_id, count(*) AS n_prompts,\n"
    "  sum(n_tokens) AS n_positions, sum(kl_mean * n_tokens) / sum(n_tokens)::double precision AS kl_mean,\n"
    "  max(kl_max) AS kl_max, sum(top1_agree)::double precision / sum(n_tokens)::double precision AS top1_agreement,\n"
    "  exp(sum(nll_baseline) / sum(n_scored)::double precision) AS ppl_baseline,\n"
    "  exp(sum(nll_run) / sum(n_scored)::double precision) AS ppl_run,\n"
    "  (sum(nll_baseline) - sum(nll_run)) / sum(n_scored)::double precision AS dlogprob_mean,\n"
    "  avg(first_divergence)::double precision AS first_divergence_mean, count(first_divergence) AS n_diverged\n"
    "  FROM an_compare_prompt GROUP BY run_id, baseline_run_id;\n"
    "CREATE VIEW an_compare_shift AS SELECT run_id, baseline_run_id, layer,\n"
    "  sum(n_changed)::double precision / sum(n_pos)::double precision AS changed_share,\n"
    "  sum(jaccard_sum) / sum(n_pos)::double precision AS jaccard_mean,\n"
    "  sum(n_pos) AS n_positions FROM an_compare_layer GROUP BY run_id, baseline_run_id, layer;\n"
    "CREATE VIEW run_progress AS SELECT r.run_id, r.status,\n"
    "  CASE WHEN r.settings LIKE '{%' THEN (r.settings::json->>'n_prompts')::bigint END AS n_prompts,\n"
    "  (SELECT count(*) FROM prompt p WHERE p.run_id = r.run_id) AS n_committed,\n"
    "  (SELECT count(DISTINCT p.worker) FROM prompt p WHERE p.run_id = r.run_id) AS n_workers\n"
    "  FROM run r;\n";

/* version of the moescope schema in this database: > 0, 0 = none (empty
 * database), MS_EFORMAT = foreign tables, or MS_E*. */
static int schema_version(MsTraceDb *db, MsError *err)
{
    PGresult *r = pg_exec(db, "SELECT to_regclass('ms_meta') IS NOT NULL, "
                              "(SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                              " WHERE n.nspname = current_schema() AND c.relkind IN ('r','v','p'))",
                          0, NULL, NULL, NULL, "read the schema", err);
    if (!r) return MS_EDB;
    bool meta = g_i64(r, 0, 0) != 0;
    int64_t n_rel = g_i64(r, 0, 1);
    PQclear(r);
    if (!meta)
        return n_rel > 0 ? ms_error_set(err, MS_EFORMAT, "%s: not a moescope trace database (has tables but no "
                                                         "moescope schema)", db->path) : 0;
    r = pg_exec(db, "SELECT (SELECT value FROM ms_meta WHERE key = 'application'), "
                    "(SELECT value FROM ms_meta WHERE key = 'schema_version')", 0, NULL, NULL, NULL,
                "read the schema version", err);
    if (!r) return MS_EDB;
    const char *app = g_str(r, 0, 0), *ver = g_str(r, 0, 1);
    int v = ver ? atoi(ver) : 0;
    bool ok = app && !strcmp(app, "moescope") && v > 0;
    PQclear(r);
    if (!ok) return ms_error_set(err, MS_EFORMAT, "%s: not a moescope trace database (ms_meta without a version)", db->path);
    return v;
}

static int schema_create(MsTraceDb *db, MsError *err)
{
    char *tables = ms_db_schema_tables_sqlite(err);
    if (!tables) return err ? err->code : MS_ENOMEM;
    char *pgt = ddl_to_pg(tables);
    free(tables);
    if (!pgt) return ms_error_set(err, MS_ENOMEM, "%s: out of memory", db->path);
    char meta[256];
    snprintf(meta, sizeof meta,
             "CREATE TABLE ms_meta(key text PRIMARY KEY, value text NOT NULL);\n"
             "INSERT INTO ms_meta VALUES ('application', 'moescope'), ('schema_version', '%d');\n",
             MS_TRACE_SCHEMA_VERSION);
    /* simple-query protocol: several statements in one call */
    size_t len = strlen(pgt) + sizeof pg_views + strlen(meta) + 256;
    char *all = malloc(len);
    if (!all) { free(pgt); return ms_error_set(err, MS_ENOMEM, "%s: out of memory", db->path); }
    snprintf(all, len, "%s"
             "INSERT INTO ms_seq SELECT generate_series(0, 65535);\n"
             "%s%s", pgt, pg_views, meta);
    free(pgt);
    PGresult *r = PQexec(pg_of(db)->c, all);
    free(all);
    int rc = 0;
    if (PQresultStatus(r) != PGRES_COMMAND_OK) rc = pg_fail(db, err, MS_EDB, "create the schema", r);
    PQclear(r);
    return rc;
}

/* The CREATE TABLE statements of the named tables in the current SQLite
 * description, translated (malloc'd). */
static char *tables_pg(const char *const *names, int n, MsError *err)
{
    char *all = ms_db_schema_tables_sqlite(err);
    if (!all) return NULL;
    size_t cap = strlen(all) + 1, len = 0;
    char *pick = malloc(cap);
    if (!pick) { free(all); ms_error_set(err, MS_ENOMEM, "out of memory"); return NULL; }
    pick[0] = '\0';
    for (char *st = all; *st;) {
        char *e = strstr(st, ";\n");
        size_t l = e ? (size_t)(e - st) + 2 : strlen(st);
        for (int i = 0; i < n; i++) {
            char head[96];
            snprintf(head, sizeof head, "CREATE TABLE %s(", names[i]);
            if (!strncmp(st, head, strlen(head))) {
                memcpy(pick + len, st, l);
                len += l;
                pick[len] = '\0';
            }
        }
        st += l;
    }
    free(all);
    char *out = ddl_to_pg(pick);
    free(pick);
    if (!out) ms_error_set(err, MS_ENOMEM, "out of memory");
    return out;
}

/* Forward migrations, as SQLite's (db/schema.c) in this dialect: what each
 * version added to the tables, then every view and decoding function made
 * anew (their text is per dialect, and older ones may name fewer columns;
 * views of one's own that depend on them go too, CASCADE).  Version 1->2
 * changed SQLite's views only. */
static int schema_migrate(MsTraceDb *db, int v, MsError *err)
{
    int rc = 0;
    if (v < 3)
        rc = pg_cmd(db, "ALTER TABLE routing_packed ADD COLUMN out_argmax bytea", err);
    if (!rc && v < 3) rc = pg_cmd(db, "ALTER TABLE hidden_stats ADD COLUMN channel bigint", err);
    if (!rc && v < 4) {
        static const char *const t4[] = { "an_compare_prompt", "an_compare_pos", "an_compare_layer", "sweep",
                                          "sweep_candidate" };
        char *ddl = tables_pg(t4, (int)MS_ARRAY_LEN(t4), err);
        if (!ddl) return err ? err->code : MS_ENOMEM;
        PGresult *r = PQexec(pg_of(db)->c, ddl);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) rc = pg_fail(db, err, MS_EDB, "migrate to version 4", r);
        PQclear(r);
        free(ddl);
    }
    if (!rc && v < 5) rc = pg_cmd(db, "ALTER TABLE run ADD COLUMN status text, ADD COLUMN prompts_sha256 text", err);
    if (!rc && v < 5)
        rc = pg_cmd(db, "UPDATE run SET status = CASE\n"
                        "  WHEN n.n IS NULL THEN 'complete'\n"
                        "  WHEN (SELECT count(*) FROM prompt p WHERE p.run_id = run.run_id) >= n.n THEN 'complete'\n"
                        "  ELSE 'incomplete' END\n"
                        "  FROM (SELECT run_id, CASE WHEN settings LIKE '{%' THEN (settings::json->>'n_prompts')::bigint END\n"
                        "        AS n FROM run) n WHERE n.run_id = run.run_id", err);
    if (!rc && v < 6) rc = pg_cmd(db, "ALTER TABLE prompt ADD COLUMN worker text", err);
    if (!rc)
        rc = pg_cmd(db, "DROP VIEW IF EXISTS run_progress, an_compare_shift, an_compare, prompt_label, routing_entropy,\n"
                        "  load_entropy, expert_load, router_prob, expert_stats, routing CASCADE", err);
    if (!rc)
        rc = pg_cmd(db, "DROP FUNCTION IF EXISTS ms_u16(bytea, integer), ms_f32(bytea, integer), "
                        "ms_f16(bytea, integer) CASCADE", err);
    if (!rc) {
        PGresult *r = PQexec(pg_of(db)->c, pg_views);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) rc = pg_fail(db, err, MS_EDB, "migrate the views", r);
        PQclear(r);
    }
    if (!rc) {
        char sql[128];
        snprintf(sql, sizeof sql, "UPDATE ms_meta SET value = '%d' WHERE key = 'schema_version'", MS_TRACE_SCHEMA_VERSION);
        rc = pg_cmd(db, sql, err);
    }
    return rc;
}

/* Create the schema when the database has none, migrate an older one
 * (both under an advisory lock: workers starting together do it once),
 * check the version. */
static int schema_open(MsTraceDb *db, bool create, bool writable, MsError *err)
{
    int v = schema_version(db, err);
    if (v < 0) return v;
    if (v == 0 && create) {
        int rc = pg_cmd(db, "SELECT pg_advisory_lock(" PG_LOCK_KEY ")", err);
        if (rc) return rc;
        v = schema_version(db, err);   /* another worker may have made it meanwhile */
        if (v == 0) {
            rc = tx_enter(db, err);
            if (!rc) {
                rc = schema_create(db, err);
                int rc2 = tx_leave(db, rc == 0, rc ? NULL : err);
                if (!rc) rc = rc2;
            }
            if (!rc) v = MS_TRACE_SCHEMA_VERSION;
            else v = rc;
        }
        PQclear(PQexec(pg_of(db)->c, "SELECT pg_advisory_unlock(" PG_LOCK_KEY ")"));
        if (v < 0) return v;
    }
    if (v == 0) return ms_error_set(err, MS_EFORMAT, "%s: not a moescope trace database (no schema)", db->path);
    if (v > MS_TRACE_SCHEMA_VERSION)
        return ms_error_set(err, MS_EUNSUPPORTED, "%s: schema version %d is newer than this program's (%d)",
                            db->path, v, MS_TRACE_SCHEMA_VERSION);
    if (v < MS_TRACE_SCHEMA_VERSION && !writable)
        return ms_error_set(err, MS_EUNSUPPORTED, "%s: schema version %d is old; open it once read-write to migrate",
                            db->path, v);
    if (v < MS_TRACE_SCHEMA_VERSION) {
        int rc = pg_cmd(db, "SELECT pg_advisory_lock(" PG_LOCK_KEY ")", err);
        if (rc) return rc;
        v = schema_version(db, err);   /* another worker may have migrated meanwhile */
        if (v > 0 && v < MS_TRACE_SCHEMA_VERSION) {
            rc = tx_enter(db, err);
            if (!rc) {
                rc = schema_migrate(db, v, err);
                int rc2 = tx_leave(db, rc == 0, rc ? NULL : err);
                if (!rc) rc = rc2;
            }
            v = rc ? rc : MS_TRACE_SCHEMA_VERSION;
        }
        PQclear(PQexec(pg_of(db)->c, "SELECT pg_advisory_unlock(" PG_LOCK_KEY ")"));
        if (v < 0) return v;
    }
    db->user_version = v;
    return 0;
}

/* --------------------------------------------------------- open and close */

static void quiet_notice(void *arg, const char *message) { (void)arg; (void)message; }

/* The URI without a password (for messages). */
static char *uri_display(const char *uri)
{
    char *s = strdup(uri);
    if (!s) return NULL;
    char *p = strstr(s, "://");
    if (p) {
        p += 3;
        char *at = strchr(p, '@'), *slash = strchr(p, '/');
        char *colon = strchr(p, ':');
        if (at && (!slash || at < slash) && colon && colon < at) memmove(colon, at, strlen(at) + 1);
    }
    char *q = strchr(s, '?');
    if (q && strstr(q, "password=")) *q = '\0';
    return s;
}

static const MsDbBackend pg_backend;

int ms_pg_open(MsTraceDb *db, const char *uri, int mode, MsError *err)
{
    char *disp = uri_display(uri);
    Pg *p = calloc(1, sizeof *p);
    if (!disp || !p || !(p->conninfo = strdup(uri))) {
        free(disp);
        if (p) free(p->conninfo);
        free(p);
        return ms_error_set(err, MS_ENOMEM, "out of memory");
    }
    free(db->path);
    db->path = disp;
    db->be = &pg_backend;
    db->be_db = p;
    p->c = PQconnectdb(uri);
    if (!p->c) return ms_error_set(err, MS_ENOMEM, "%s: out of memory", db->path);
    if (PQstatus(p->c) != CONNECTION_OK) {
        char buf[512];
        return ms_error_set(err, MS_EIO, "%s: cannot connect: %s", db->path,
                            pq_msg(PQerrorMessage(p->c), buf, sizeof buf));
    }
    PQsetNoticeProcessor(p->c, quiet_notice, NULL);
    int rc = pg_cmd(db, "SET client_encoding = 'UTF8'", err);
    if (!rc) rc = schema_open(db, mode == MS_TRACE_CREATE, mode != MS_TRACE_READ, err);   /* as a file: only CREATE makes one */
    if (!rc && mode == MS_TRACE_READ) rc = pg_cmd(db, "SET default_transaction_read_only = on", err);
    return rc;
}

static void pg_close(MsTraceDb *db)
{
    Pg *p = pg_of(db);
    if (!p) return;
    if (p->c) PQfinish(p->c);
    free(p->conninfo);
    free(p);
    db->be_db = NULL;
}

/* ------------------------------------------------------------ model, run */

/* Parameters as text: a small formatter for integers. */
typedef struct { char b[24][24]; const char *v[24]; } Args;
static const char *a_i(Args *a, int i, int64_t x)
{
    snprintf(a->b[i], sizeof a->b[i], "%lld", (long long)x);
    return a->v[i] = a->b[i];
}
static const char *a_d(Args *a, int i, double x)
{
    snprintf(a->b[i], sizeof a->b[i], "%.17g", x);
    return a->v[i] = a->b[i];
}

static char *moe_layers_json(const MsTraceModel *m)
{
    size_t cap = 8 + (size_t)MS_TRACE_MAX_LAYER * 5, n = 0;
    char *s = malloc(cap);
    if (!s) return NULL;
    s[n++] = '[';
    for (int l = 0; l < m->n_layer && l < MS_TRACE_MAX_LAYER; l++)
        if (m->is_moe[l]) n += (size_t)snprintf(s + n, cap - n, "%s%d", n > 1 ? "," : "", l);
    s[n++] = ']';
    s[n] = '\0';
    return s;
}

static int64_t pg_model_add(MsTraceDb *db, const MsTraceModel *m, MsError *err)
{
    char *ml = moe_layers_json(m);
    if (!ml) return ms_error_set(err, MS_ENOMEM, "%s: out of memory", db->path);
    Args a;
    a.v[0] = m->file_name; a_i(&a, 1, (int64_t)m->file_size); a.v[2] = m->sha256; a.v[3] = m->arch;
    a_i(&a, 4, m->n_layer); a_i(&a, 5, m->n_expert); a_i(&a, 6, m->n_expert_used); a.v[7] = ml;
    a.v[8] = m->name; a_i(&a, 9, m->n_expert_shared); a.v[10] = m->score_func[0] ? m->score_func : "unknown";
    a_i(&a, 11, m->norm_topk); a_d(&a, 12, m->w_scale); a_i(&a, 13, m->n_embd); a_i(&a, 14, m->n_vocab);
    a_i(&a, 15, m->n_ff_exp);
    /* find or insert under a lock on the table: concurrent workers agree on one row */
    int64_t id = 0;
    int rc = tx_enter(db, err);
    if (rc) { free(ml); return rc; }
    rc = pg_cmd(db, "LOCK TABLE model IN SHARE ROW EXCLUSIVE MODE", err);
    PGresult *r = NULL;
    if (!rc && (r = pg_exec(db, "SELECT model_id FROM model WHERE file_name=$1 AND file_size=$2 AND sha256=$3 "
                                "AND arch=$4 AND n_layer=$5 AND n_expert=$6 AND n_expert_used=$7 AND moe_layers=$8 "
                                "ORDER BY model_id LIMIT 1", 8, a.v, NULL, NULL, "add model", err))) {
        if (PQntuples(r) > 0) id = g_i64(r, 0, 0);
        PQclear(r);
        if (!id && (r = pg_exec(db, "INSERT INTO model(file_name,file_size,sha256,arch,n_layer,n_expert,"
                                    "n_expert_used,moe_layers,name,n_expert_shared,score_func,norm_topk,w_scale,"
                                    "n_embd,n_vocab,n_ff_exp) VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,"
                                    "$14,$15,$16) RETURNING model_id", 16, a.v, NULL, NULL, "add model", err))) {
            id = g_i64(r, 0, 0);
            PQclear(r);
        }
    }
    if (!id && !rc) rc = err ? err->code : MS_EDB;
    int rc2 = tx_leave(db, rc == 0, rc ? NULL : err);
    free(ml);
    if (!rc) rc = rc2;
    return rc ? rc : id;
}

/* import (db/import.c): a model row of its own, shaped once the file is read */
static int64_t pg_import_model(MsTraceDb *db, const char *file_name, MsError *err)
{
    const char *v[1] = { file_name };
    PGresult *r = pg_exec(db, "INSERT INTO model(file_name,file_size,sha256,arch,name,n_layer,n_expert,n_expert_used,"
                              "n_expert_shared,score_func,norm_topk,w_scale,n_embd,n_vocab,n_ff_exp,moe_layers) "
                              "VALUES($1,0,'','imported','',0,0,0,0,'unknown',0,1,0,0,0,'[]') RETURNING model_id",
                          1, v, NULL, NULL, "import", err);
    if (!r) return MS_EDB;
    int64_t id = g_i64(r, 0, 0);
    PQclear(r);
    return id;
}

static int pg_import_model_shape(MsTraceDb *db, int64_t model_id, int n_layer, int n_expert, int k,
                                 const char *moe_layers, MsError *err)
{
    Args a;
    a_i(&a, 0, n_layer); a_i(&a, 1, n_expert); a_i(&a, 2, k); a.v[3] = moe_layers; a_i(&a, 4, model_id);
    PGresult *r = pg_exec(db, "UPDATE model SET n_layer=$1, n_expert=$2, n_expert_used=$3, moe_layers=$4 "
                              "WHERE model_id=$5", 5, a.v, NULL, NULL, "import", err);
    if (!r) return MS_EDB;
    PQclear(r);
    return 0;
}

static void utc_now(char *buf, size_t cap)
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int64_t pg_run_new(MsTraceDb *db, const MsTraceRunDesc *d, MsError *err)
{
    int rc = tx_enter(db, err);
    if (rc) return rc;
    int64_t set_id = 0, run_id = 0;
    Args a;
    PGresult *r;
    if (d->interventions && d->interventions[0]) {
        a.v[0] = d->interventions;
        if ((r = pg_exec(db, "INSERT INTO intervention_set(spec) VALUES($1) ON CONFLICT(spec) DO UPDATE "
                             "SET spec = excluded.spec RETURNING set_id", 1, a.v, NULL, NULL,
                             "add intervention set", err))) {
            set_id = g_i64(r, 0, 0);
            PQclear(r);
        } else rc = err ? err->code : MS_EDB;
    }
    char now[32];
    utc_now(now, sizeof now);
    a_i(&a, 0, d->model_id);
    a.v[1] = now;
    a.v[2] = d->kind ? d->kind : "trace";
    a.v[3] = d->settings_json;
    a.v[4] = set_id ? d->interventions : NULL;
    if (set_id) a_i(&a, 5, set_id); else a.v[5] = NULL;
    a.v[6] = MS_VERSION;
    if (d->parent_run_id > 0) a_i(&a, 7, d->parent_run_id); else a.v[7] = NULL;
    a_i(&a, 8, d->has_probs);
    a_i(&a, 9, d->has_stats);
    a.v[10] = d->prompts_sha256;
    if (!rc && d->parent_run_id > 0) {   /* a clear message, not the foreign key's */
        const char *pv[1] = { a.v[7] };
        if ((r = pg_exec(db, "SELECT 1 FROM run WHERE run_id = $1", 1, pv, NULL, NULL, "find the parent run", err))) {
            if (PQntuples(r) == 0)
                rc = ms_error_set(err, MS_EINVAL, "%s: no run %lld (the parent run)", db->path,
                                  (long long)d->parent_run_id);
            PQclear(r);
        } else rc = MS_EDB;
    }
    if (!rc && (r = pg_exec(db, "INSERT INTO run(model_id,created,kind,settings,interventions,set_id,"
                                "program_version,parent_run_id,has_probs,has_stats,status,prompts_sha256) "
                                "VALUES($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,'incomplete',$11) RETURNING run_id", 11, a.v,
                                NULL, NULL, "add run", err))) {
        run_id = g_i64(r, 0, 0);
        PQclear(r);
    } else if (!rc) rc = err ? err->code : MS_EDB;
    int rc2 = tx_leave(db, rc == 0, rc ? NULL : err);
    if (!rc) rc = rc2;
    return rc ? rc : run_id;
}

/* As the SQLite query (writer.c): settings compared without the prompt
 * file's name when both runs know their prompt set's content. */
static int64_t pg_run_find(MsTraceDb *db, const MsTraceRunDesc *d, MsError *err)
{
    Args a;
    a_i(&a, 0, d->model_id);
    a.v[1] = d->kind ? d->kind : "trace";
    a.v[2] = d->interventions;
    a_i(&a, 3, d->has_probs);
    a_i(&a, 4, d->has_stats);
    a.v[5] = d->prompts_sha256;
    a_i(&a, 6, d->parent_run_id > 0 ? d->parent_run_id : 0);
    PGresult *r = pg_exec(db, "SELECT run_id, settings, prompts_sha256 IS NULL FROM run WHERE model_id=$1 AND kind=$2 "
                              "AND coalesce(interventions,'') = coalesce($3,'') AND has_probs=$4 AND has_stats=$5 "
                              "AND (prompts_sha256 IS NOT DISTINCT FROM $6 OR prompts_sha256 IS NULL) "
                              "AND ($7::bigint = 0 OR parent_run_id = $7::bigint) ORDER BY run_id DESC",
                          7, a.v, NULL, NULL, "find run", err);
    if (!r) return MS_EDB;
    int64_t id = 0;
    for (int i = 0; i < PQntuples(r) && !id; i++) {
        const char *s = g_str(r, i, 1);
        bool exact = g_i64(r, i, 2) || !d->prompts_sha256;
        bool same = exact ? (!s && !d->settings_json) || (s && d->settings_json && !strcmp(s, d->settings_json))
                          : ms_db_settings_same(s, d->settings_json);
        if (same) id = g_i64(r, i, 0);
    }
    PQclear(r);
    return id;
}

static int pg_run_set_status(MsTraceDb *db, int64_t run_id, const char *status, MsError *err)
{
    Args a;
    a_i(&a, 0, run_id);
    a.v[1] = status;
    PGresult *r = pg_exec(db, "UPDATE run SET status = $2 WHERE run_id = $1", 2, a.v, NULL, NULL,
                          "set the run status", err);
    if (!r) return MS_EDB;
    bool one = !strcmp(PQcmdTuples(r), "1");
    PQclear(r);
    return one ? 0 : ms_error_set(err, MS_ENOTFOUND, "%s: no run %lld", db->path, (long long)run_id);
}

/* Find or make the run under a lock held to the end of the transaction:
 * workers registering together agree on one run. */
static int64_t pg_run_join(MsTraceDb *db, const MsTraceRunDesc *d, bool any_status, MsError *err)
{
    int rc = tx_enter(db, err);
    if (rc) return rc;
    int64_t id = 0;
    PGresult *r = pg_exec(db, "SELECT pg_advisory_xact_lock(" PG_LOCK_KEY ", 2)", 0, NULL, NULL, NULL, "lock", err);
    if (!r) id = MS_EDB;
    PQclear(r);
    if (!id) id = pg_run_find(db, d, err);
    if (id > 0 && !any_status) {
        Args a;
        a_i(&a, 0, id);
        if (!(r = pg_exec(db, "SELECT coalesce(status, 'complete') = 'incomplete' FROM run WHERE run_id = $1", 1, a.v,
                          NULL, NULL, "read run", err))) id = MS_EDB;
        else {
            if (!PQntuples(r) || !g_i64(r, 0, 0)) id = 0;
            PQclear(r);
        }
    }
    if (id == 0) id = pg_run_new(db, d, err);
    rc = tx_leave(db, id > 0, id > 0 ? err : NULL);
    return id > 0 && rc ? rc : id;
}

static int pg_runs(MsTraceDb *db, int64_t **ids, int *n, MsError *err)
{
    PGresult *r = pg_exec(db, "SELECT run_id FROM run ORDER BY run_id", 0, NULL, NULL, NULL, "list runs", err);
    if (!r) return MS_EDB;
    int cnt = PQntuples(r);
    int64_t *v = malloc(sizeof *v * (size_t)(cnt ? cnt : 1));
    if (!v) { PQclear(r); return ms_error_set(err, MS_ENOMEM, "%s: out of memory", db->path); }
    for (int i = 0; i < cnt; i++) v[i] = g_i64(r, i, 0);
    PQclear(r);
    *ids = v;
    *n = cnt;
    return 0;
}

static void parse_layers(MsTraceModel *m, const char *json)
{
    m->n_moe_layers = 0;
    for (const char *p = json; p && *p;) {
        if (*p >= '0' && *p <= '9') {
            long l = strtol(p, (char **)&p, 10);
            if (l >= 0 && l < MS_TRACE_MAX_LAYER && !m->is_moe[l]) { m->is_moe[l] = 1; m->n_moe_layers++; }
        } else p++;
    }
}

static int pg_run_info(MsTraceDb *db, int64_t run_id, MsTraceRunInfo *out, MsError *err)
{
    memset(out, 0, sizeof *out);
    Args a;
    a_i(&a, 0, run_id);
    PGresult *r = pg_exec(db,
        "SELECT r.run_id, r.model_id, coalesce(r.parent_run_id,0), r.kind, r.created, r.settings, "
        "r.interventions, r.program_version, r.has_probs, r.has_stats, "
        "(SELECT count(*) FROM prompt p WHERE p.run_id=r.run_id), "
        "(SELECT coalesce(sum(n_tokens),0)::bigint FROM prompt p WHERE p.run_id=r.run_id), "
        "m.file_name, m.file_size, m.sha256, m.arch, m.name, m.n_layer, m.n_expert, m.n_expert_used, "
        "m.n_expert_shared, m.score_func, m.norm_topk, m.w_scale, m.n_embd, m.n_vocab, m.n_ff_exp, m.moe_layers, "
        "coalesce(r.status, 'complete'), r.prompts_sha256 "
        "FROM run r JOIN model m USING(model_id) WHERE r.run_id=$1", 1, a.v, NULL, NULL, "read run", err);
    if (!r) return MS_EDB;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return ms_error_set(err, MS_ENOTFOUND, "%s: no run %lld", db->path, (long long)run_id);
    }
    out->run_id = g_i64(r, 0, 0);
    out->model_id = g_i64(r, 0, 1);
    out->parent_run_id = g_i64(r, 0, 2);
    out->kind = g_dup(r, 0, 3);
    out->created = g_dup(r, 0, 4);
    out->settings_json = g_dup(r, 0, 5);
    out->interventions = g_dup(r, 0, 6);
    out->program_version = g_dup(r, 0, 7);
    out->has_probs = g_i64(r, 0, 8);
    out->has_stats = g_i64(r, 0, 9);
    out->n_prompts = g_i64(r, 0, 10);
    out->n_tokens = g_i64(r, 0, 11);
    MsTraceModel *m = &out->model;
    m->model_id = out->model_id;
#define TXT(dst, i) snprintf(dst, sizeof dst, "%s", g_str(r, 0, i) ? g_str(r, 0, i) : "")
    TXT(m->file_name, 12);
    m->file_size = (uint64_t)g_i64(r, 0, 13);
    TXT(m->sha256, 14);
    TXT(m->arch, 15);
    TXT(m->name, 16);
    m->n_layer = (int)g_i64(r, 0, 17);
    m->n_expert = (int)g_i64(r, 0, 18);
    m->n_expert_used = (int)g_i64(r, 0, 19);
    m->n_expert_shared = (int)g_i64(r, 0, 20);
    TXT(m->score_func, 21);
    m->norm_topk = g_i64(r, 0, 22);
    m->w_scale = (float)g_f64(r, 0, 23);
    m->n_embd = (int)g_i64(r, 0, 24);
    m->n_vocab = (int)g_i64(r, 0, 25);
    m->n_ff_exp = (int)g_i64(r, 0, 26);
#undef TXT
    parse_layers(m, g_str(r, 0, 27));
    out->status = g_dup(r, 0, 28);
    out->prompts_sha256 = g_dup(r, 0, 29);
    PQclear(r);
    if (!out->kind || !out->created || !out->program_version || !out->status) {
        ms_trace_run_info_clear(out);
        return ms_error_set(err, MS_ENOMEM, "%s: out of memory", db->path);
    }
    return 0;
}

static int64_t pg_prompt_lookup(MsTraceDb *db, int64_t run_id, int index, MsError *err)
{
    Args a;
    a_i(&a, 0, run_id);
    a_i(&a, 1, index);
    PGresult *r = pg_exec(db, "SELECT prompt_id FROM prompt WHERE run_id=$1 AND idx=$2", 2, a.v, NULL, NULL,
                          "find prompt", err);
    if (!r) return MS_EDB;
    int64_t id = PQntuples(r) ? g_i64(r, 0, 0) : 0;
    PQclear(r);
    return id;
}

static int pg_prompt_get(MsTraceDb *db, int64_t run_id, int index, MsTracePromptInfo *out, MsError *err)
{
    memset(out, 0, sizeof *out);
    Args a;
    a_i(&a, 0, run_id);
    a_i(&a, 1, index);
    PGresult *r = pg_exec(db, "SELECT prompt_id, text_bytes, labels, n_tokens FROM prompt WHERE run_id=$1 AND idx=$2",
                          2, a.v, NULL, NULL, "read prompt", err);
    if (!r) return MS_EDB;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return ms_error_set(err, MS_ENOTFOUND, "%s: run %lld has no prompt %d", db->path, (long long)run_id, index);
    }
    out->prompt_id = g_i64(r, 0, 0);
    out->run_id = run_id;
    out->index = index;
    out->text_len = (size_t)PQgetlength(r, 0, 1);
    out->text = malloc(out->text_len + 1);
    if (out->text) {
        memcpy(out->text, PQgetvalue(r, 0, 1), out->text_len);
        out->text[out->text_len] = 0;
    }
    out->labels_json = g_dup(r, 0, 2);
    out->n_tokens = (int)g_i64(r, 0, 3);
    bool oom = !out->text || (!g_null(r, 0, 2) && !out->labels_json);
    PQclear(r);
    if (oom) {
        ms_trace_prompt_info_clear(out);
        return ms_error_set(err, MS_ENOMEM, "%s: out of memory", db->path);
    }
    return 0;
}

static int pg_changed(MsTraceDb *db, uint64_t *stamp, MsError *err)
{
    PGresult *r = pg_exec(db, "SELECT (SELECT coalesce(max(prompt_id), 0) FROM prompt), (SELECT count(*) FROM prompt), "
                              "(SELECT coalesce(max(analysis_id), 0) FROM analysis), (SELECT count(*) FROM analysis), "
                              "(SELECT coalesce(max(run_id), 0) FROM run)", 0, NULL, NULL, NULL, "changes", err);
    if (!r) return MS_EDB;
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < 5; i++) h = (h ^ (uint64_t)g_i64(r, 0, i)) * 1099511628211ull;
    PQclear(r);
    int changed = h != *stamp;
    *stamp = h;
    return changed;
}

/* ----------------------------------------------------------------- writer */

typedef struct { unsigned char *p; size_t n, cap; int rows; bool oom; } Buf;

static void b_need(Buf *b, size_t k)
{
    if (b->oom || b->n + k <= b->cap) return;
    size_t nc = b->cap ? b->cap * 2 : 65536;
    while (nc < b->n + k) nc *= 2;
    unsigned char *np = realloc(b->p, nc);
    if (!np) { b->oom = true; return; }
    b->p = np;
    b->cap = nc;
}
static void b_be(Buf *b, uint64_t v, int n)
{
    b_need(b, (size_t)n);
    if (b->oom) return;
    for (int i = 0; i < n; i++) b->p[b->n++] = (unsigned char)(v >> (8 * (n - 1 - i)));
}
/* binary COPY fields */
static void f_begin(Buf *b, int n_fields)
{
    if (b->n == 0) {   /* the file header: signature, flags, extension length */
        static const unsigned char sig[11] = { 'P', 'G', 'C', 'O', 'P', 'Y', '\n', 0xff, '\r', '\n', 0 };
        b_need(b, 19);
        if (b->oom) return;
        memcpy(b->p, sig, 11);
        memset(b->p + 11, 0, 8);
        b->n = 19;
    }
    b_be(b, (uint64_t)n_fields, 2);
    b->rows++;
}
static void f_null(Buf *b) { b_be(b, 0xffffffffu, 4); }
static void f_i64(Buf *b, int64_t v) { b_be(b, 8, 4); b_be(b, (uint64_t)v, 8); }
static void f_f64(Buf *b, double d)
{
    if (isnan(d)) { f_null(b); return; }
    uint64_t u;
    memcpy(&u, &d, 8);
    b_be(b, 8, 4);
    b_be(b, u, 8);
}
static void f_bytes(Buf *b, const void *p, size_t n)
{
    if (!p) { f_null(b); return; }
    b_be(b, (uint64_t)n, 4);
    b_need(b, n);
    if (b->oom) return;
    if (n) memcpy(b->p + b->n, p, n);
    b->n += n;
}

typedef struct {
    MsTraceDb *db;
    int64_t run_id;
    int64_t base;              /* prompt i of the run has id base + i; 0 = not known yet */
    int64_t n_prompts;         /* size of the run's prompt set (settings), 0 = unknown */
    Buf tok, route, probs, hid;
} PgWriter;

/* Prompt ids: a run's prompts get one block of ids, prompt i the id
 * base + i, whichever worker writes it and when.  Ids then follow the
 * prompt order (the analyses rely on it) and equal SQLite's for a run
 * traced by one process, even after a kill and --resume (a sequence value
 * taken by a prompt in flight is not lost).  The block is taken from the
 * prompt_id sequence with the first prompt of the run, under a lock held
 * to the end of that prompt's transaction: a later writer finds the base
 * in the committed prompt.  Runs whose settings do not say how many
 * prompts they have take ids one at a time. */
static int prompt_base(PgWriter *w, int index, MsError *err)
{
    if (w->base || !w->n_prompts || index >= w->n_prompts) return 0;
    Args a;
    a_i(&a, 0, w->run_id);
    for (int pass = 0; pass < 2 && !w->base; pass++) {
        PGresult *r = pg_exec(w->db, "SELECT prompt_id - idx FROM prompt WHERE run_id = $1 LIMIT 1", 1, a.v, NULL,
                              NULL, "find the run's prompt ids", err);
        if (!r) return MS_EDB;
        if (PQntuples(r)) w->base = g_i64(r, 0, 0);
        PQclear(r);
        if (w->base || pass) break;
        /* none yet: lock and look again, then take the block */
        r = pg_exec(w->db, "SELECT pg_advisory_xact_lock(" PG_LOCK_KEY ", 1)", 0, NULL, NULL, NULL, "lock", err);
        if (!r) return MS_EDB;
        PQclear(r);
    }
    if (w->base) return 0;
    a_i(&a, 0, w->n_prompts);
    PGresult *r = pg_exec(w->db, "SELECT setval(pg_get_serial_sequence('prompt', 'prompt_id'), "
                                 "nextval(pg_get_serial_sequence('prompt', 'prompt_id')) + $1::bigint - 1) - $1::bigint + 1",
                          1, a.v, NULL, NULL, "reserve prompt ids", err);
    if (!r) return MS_EDB;
    w->base = g_i64(r, 0, 0);
    PQclear(r);
    return 0;
}

static void *pg_writer_new(MsTraceDb *db, int64_t run_id, MsError *err)
{
    PgWriter *w = calloc(1, sizeof *w);
    if (!w) {
        ms_error_set(err, MS_ENOMEM, "%s: out of memory", db->path);
        return NULL;
    }
    w->db = db;
    w->run_id = run_id;
    Args a;
    a_i(&a, 0, run_id);
    PGresult *r = pg_exec(db, "SELECT settings FROM run WHERE run_id = $1", 1, a.v, NULL, NULL, "read run", err);
    if (!r) { free(w); return NULL; }
    json_t *js = PQntuples(r) && g_str(r, 0, 0) ? json_loads(g_str(r, 0, 0), 0, NULL) : NULL;
    json_t *np = json_is_object(js) ? json_object_get(js, "n_prompts") : NULL;
    if (json_is_integer(np) && json_integer_value(np) > 0) w->n_prompts = json_integer_value(np);
    json_decref(js);
    PQclear(r);
    return w;
}

static void pg_writer_free(void *u)
{
    PgWriter *w = u;
    if (!w) return;
    free(w->tok.p);
    free(w->route.p);
    free(w->probs.p);
    free(w->hid.p);
    free(w);
}

static int pg_writer_begin(void *u, MsError *err)
{
    PgWriter *w = u;
    w->tok.n = w->route.n = w->probs.n = w->hid.n = 0;
    w->tok.rows = w->route.rows = w->probs.rows = w->hid.rows = 0;
    w->tok.oom = w->route.oom = w->probs.oom = w->hid.oom = false;
    return tx_enter(w->db, err);
}

static int sk_prompt(void *u, int64_t run_id, int index, const char *text, size_t text_len, const char *bytes,
                     size_t n_bytes, const char *labels, int64_t n_tokens, const char *worker, int64_t *prompt_id,
                     MsError *err)
{
    PgWriter *w = u;
    int rc = prompt_base(w, index, err);
    if (rc) return rc;
    Args a;
    const char *v[8];
    int lens[8] = { 0, 0, (int)text_len, (int)n_bytes, 0, 0, 0, 0 }, fmts[8] = { 0, 0, 0, 1, 0, 0, 0, 0 };
    v[0] = a_i(&a, 0, run_id);
    v[1] = a_i(&a, 1, index);
    v[2] = text;
    v[3] = n_bytes ? bytes : "";
    v[4] = labels;
    v[5] = a_i(&a, 5, n_tokens);
    v[6] = w->base ? a_i(&a, 6, w->base + index) : NULL;
    v[7] = worker;
    PGresult *r = pg_exec(w->db, "INSERT INTO prompt(prompt_id,run_id,idx,text,text_bytes,labels,n_tokens,worker) "
                                 "VALUES(coalesce($7::bigint, nextval(pg_get_serial_sequence('prompt', 'prompt_id'))),"
                                 "$1,$2,$3,$4,$5,$6,$8) RETURNING prompt_id", 8, v, lens, fmts, "add prompt", err);
    if (!r) return err ? err->code : MS_EDB;
    *prompt_id = g_i64(r, 0, 0);
    PQclear(r);
    return 0;
}

static int sk_token(void *u, int64_t run_id, int64_t prompt_id, int pos, int32_t token_id, const char *piece,
                    size_t piece_len, const char *bytes, size_t n_bytes, bool is_generated, float logprob,
                    float entropy, MsError *err)
{
    Buf *b = &((PgWriter *)u)->tok;
    f_begin(b, 9);
    f_i64(b, run_id);
    f_i64(b, prompt_id);
    f_i64(b, pos);
    f_i64(b, token_id);
    f_bytes(b, piece, piece_len);
    f_bytes(b, n_bytes ? bytes : "", n_bytes);
    f_i64(b, is_generated);
    f_f64(b, logprob);
    f_f64(b, entropy);
    return b->oom ? ms_error_set(err, MS_ENOMEM, "out of memory") : 0;
}

static int sk_route(void *u, int64_t run_id, int64_t prompt_id, int pos, int layer, int k,
                    const unsigned char *experts, const unsigned char *weights, const unsigned char *maxabs,
                    const unsigned char *l2, const unsigned char *argmax, MsError *err)
{
    Buf *b = &((PgWriter *)u)->route;
    f_begin(b, 9);
    f_i64(b, run_id);
    f_i64(b, prompt_id);
    f_i64(b, pos);
    f_i64(b, layer);
    f_bytes(b, experts, 2 * (size_t)k);
    f_bytes(b, weights, 4 * (size_t)k);
    f_bytes(b, maxabs, 4 * (size_t)k);
    f_bytes(b, l2, 4 * (size_t)k);
    f_bytes(b, argmax, 2 * (size_t)k);
    return b->oom ? ms_error_set(err, MS_ENOMEM, "out of memory") : 0;
}

static int sk_probs(void *u, int64_t run_id, int64_t prompt_id, int pos, int layer, int n_expert,
                    const unsigned char *probs, const unsigned char *logits, MsError *err)
{
    Buf *b = &((PgWriter *)u)->probs;
    f_begin(b, 6);
    f_i64(b, run_id);
    f_i64(b, prompt_id);
    f_i64(b, pos);
    f_i64(b, layer);
    f_bytes(b, probs, 2 * (size_t)n_expert);
    f_bytes(b, logits, 2 * (size_t)n_expert);
    return b->oom ? ms_error_set(err, MS_ENOMEM, "out of memory") : 0;
}

static int sk_hidden(void *u, int64_t run_id, int64_t prompt_id, int pos, int layer, double maxabs, int channel,
                     MsError *err)
{
    Buf *b = &((PgWriter *)u)->hid;
    f_begin(b, 6);
    f_i64(b, run_id);
    f_i64(b, prompt_id);
    f_i64(b, pos);
    f_i64(b, layer);
    if (isnan(maxabs)) f_null(b); else f_f64(b, maxabs);
    if (channel >= 0) f_i64(b, channel); else f_null(b);
    return b->oom ? ms_error_set(err, MS_ENOMEM, "out of memory") : 0;
}

static const MsDbSink pg_sink = { sk_prompt, sk_token, sk_route, sk_probs, sk_hidden };

/* One binary COPY of a buffer's rows. */
static int copy_in(MsTraceDb *db, const char *sql, Buf *b, MsError *err)
{
    if (b->rows == 0) return 0;
    if (b->oom) return ms_error_set(err, MS_ENOMEM, "%s: out of memory", db->path);
    b_be(b, 0xffff, 2);   /* trailer */
    if (b->oom) return ms_error_set(err, MS_ENOMEM, "%s: out of memory", db->path);
    PGconn *c = pg_of(db)->c;
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COPY_IN) {
        int rc = pg_fail(db, err, MS_EDB, "copy", r);
        PQclear(r);
        return rc;
    }
    PQclear(r);
    int ok = 1;
    for (size_t off = 0; off < b->n && ok == 1;) {
        size_t n = MS_MIN(b->n - off, (size_t)1 << 20);
        ok = PQputCopyData(c, (const char *)b->p + off, (int)n);
        off += n;
    }
    if (ok == 1) ok = PQputCopyEnd(c, NULL);
    int rc = 0;
    while ((r = PQgetResult(c))) {
        if (!rc && PQresultStatus(r) != PGRES_COMMAND_OK) {
            const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
            rc = pg_fail(db, err, state && !strncmp(state, "23", 2) ? MS_EINVAL : MS_EDB, "copy", r);
        }
        PQclear(r);
    }
    if (!rc && ok != 1) rc = pg_fail(db, err, MS_EDB, "copy", NULL);
    return rc;
}

static int pg_writer_end(void *u, bool ok, MsError *err)
{
    PgWriter *w = u;
    MsTraceDb *db = w->db;
    int rc = 0;
    if (ok) {
        rc = copy_in(db, "COPY token(run_id,prompt_id,pos,token_id,piece,piece_bytes,is_generated,logprob,entropy) "
                         "FROM STDIN (FORMAT binary)", &w->tok, err);
        if (!rc) rc = copy_in(db, "COPY routing_packed(run_id,prompt_id,pos,layer,experts,weights,out_maxabs,out_l2,"
                                  "out_argmax) FROM STDIN (FORMAT binary)", &w->route, err);
        if (!rc) rc = copy_in(db, "COPY router_probs(run_id,prompt_id,pos,layer,probs,logits) FROM STDIN (FORMAT binary)",
                              &w->probs, err);
        if (!rc) rc = copy_in(db, "COPY hidden_stats(run_id,prompt_id,pos,layer,maxabs,channel) FROM STDIN "
                                  "(FORMAT binary)", &w->hid, err);
    }
    int rc2 = tx_leave(db, ok && !rc, ok && !rc ? err : NULL);
    return rc ? rc : rc2;
}

/* ---------------------------------------------------------------- cursors */

typedef enum { CUR_PROMPTS, CUR_TOKENS, CUR_ROUTING, CUR_PROBS, CUR_HIDDEN, CUR_ANALYSES, CUR_TABLE } CurKind;

typedef struct {
    MsTraceDb *db;             /* first: ms_db_of */
    CurKind kind;
    char name[32];             /* server-side cursor */
    bool open, done;
    PGresult *res;             /* the current batch */
    int row, n_rows;
    bool pending;              /* routing: the current row's group not fully emitted */
    int pending_from;
    float *fbuf;
    size_t fcap;
    int n_cols;
    MsColumn *cols;
    MsTraceValue *vals;
} PgCur;

static void cursor_tx_end(MsTraceDb *db)
{
    Pg *p = pg_of(db);
    PQclear(PQexec(p->c, "COMMIT"));
    p->cursor_tx = false;
}

static void pg_cursor_free(MsTraceCursor *cc)
{
    PgCur *c = (PgCur *)cc;
    if (!c) return;
    MsTraceDb *db = c->db;
    Pg *p = pg_of(db);
    PQclear(c->res);
    if (c->open) {
        char sql[64];
        snprintf(sql, sizeof sql, "CLOSE %s", c->name);
        PQclear(PQexec(p->c, sql));
        if (--p->n_cursors == 0 && p->cursor_tx && p->depth == 0) cursor_tx_end(db);
    }
    free(c->fbuf);
    for (int i = 0; c->cols && i < c->n_cols; i++) free((char *)c->cols[i].name);
    free(c->cols);
    free(c->vals);
    free(c);
}

/* Declare a cursor for sql (no parameters: ids are formatted in). */
static PgCur *cur_new(MsTraceDb *db, CurKind kind, const char *sql, MsError *err)
{
    Pg *p = pg_of(db);
    PgCur *c = calloc(1, sizeof *c);
    if (!c) { ms_error_set(err, MS_ENOMEM, "%s: out of memory", db->path); return NULL; }
    c->db = db;
    c->kind = kind;
    snprintf(c->name, sizeof c->name, "ms_cur_%llu", (unsigned long long)++p->cursor_seq);
    if (!pg_in_tx(p)) {
        if (pg_cmd(db, "BEGIN", err)) { free(c); return NULL; }
        p->cursor_tx = true;
    }
    size_t len = strlen(sql) + 160;
    char *q = malloc(len);
    if (!q) { ms_error_set(err, MS_ENOMEM, "%s: out of memory", db->path); free(c); return NULL; }
    /* every reader orders by a prefix of the table's primary key: read in
     * the key's order instead of sorting (a fresh bulk load has no
     * statistics yet, and the planner then sorts a whole run on disk) */
    snprintf(q, len, "SET LOCAL enable_sort = off; DECLARE %s NO SCROLL CURSOR FOR %s; RESET enable_sort", c->name, sql);
    PGresult *dr = PQexec(p->c, q);
    int rc = PQresultStatus(dr) == PGRES_COMMAND_OK ? 0 : pg_fail(db, err, MS_EDB, "read", dr);
    PQclear(dr);
    free(q);
    if (rc) {
        if (p->n_cursors == 0 && p->cursor_tx && p->depth == 0) cursor_tx_end(db);
        free(c);
        return NULL;
    }
    c->open = true;
    p->n_cursors++;
    return c;
}

/* 1 = a row at c->row of c->res, 0 = end, < 0 = MS_E*. */
static int cur_step(PgCur *c, MsError *err)
{
    if (c->done) return 0;
    if (c->res && ++c->row < c->n_rows) return 1;
    PQclear(c->res);
    c->res = NULL;
    char sql[64];
    snprintf(sql, sizeof sql, "FETCH %d FROM %s", PG_FETCH, c->name);
    if (!(c->res = pg_exec(c->db, sql, 0, NULL, NULL, NULL, "read", err))) {
        c->done = true;
        return MS_EDB;
    }
    c->n_rows = PQntuples(c->res);
    c->row = 0;
    if (c->n_rows == 0) {
        c->done = true;
        PQclear(c->res);
        c->res = NULL;
        return 0;
    }
    return 1;
}

#define WRONG(c, k) ((c)->kind != (k) ? ms_error_set(err, MS_EINVAL, "%s: wrong cursor", (c)->db->path) : 0)

/* " WHERE run_id = R" plus the prompt filter */
static void where_rp(char *buf, size_t cap, int64_t run_id, int64_t lo, int64_t hi)
{
    if (lo || hi)
        snprintf(buf, cap, " WHERE run_id = %lld AND prompt_id BETWEEN %lld AND %lld", (long long)run_id,
                 (long long)lo, (long long)hi);
    else
        snprintf(buf, cap, " WHERE run_id = %lld", (long long)run_id);
}

static MsTraceCursor *pg_prompts(MsTraceDb *db, int64_t run_id, MsError *err)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT prompt_id, run_id, idx, text_bytes, labels, n_tokens, worker FROM prompt "
                              "WHERE run_id = %lld ORDER BY idx", (long long)run_id);
    return (MsTraceCursor *)cur_new(db, CUR_PROMPTS, sql, err);
}

static int pg_prompts_next(MsTraceCursor *cc, MsTracePrompt *out, MsError *err)
{
    PgCur *c = (PgCur *)cc;
    int rc = WRONG(c, CUR_PROMPTS);
    if (rc || (rc = cur_step(c, err)) <= 0) return rc;
    PGresult *r = c->res;
    int i = c->row;
    out->prompt_id = g_i64(r, i, 0);
    out->run_id = g_i64(r, i, 1);
    out->index = (int)g_i64(r, i, 2);
    out->text = PQgetvalue(r, i, 3);
    out->text_len = (size_t)PQgetlength(r, i, 3);
    out->labels_json = g_str(r, i, 4);
    out->n_tokens = (int)g_i64(r, i, 5);
    out->worker = g_str(r, i, 6);
    return 1;
}

static MsTraceCursor *pg_tokens(MsTraceDb *db, int64_t run_id, int64_t prompt_id, MsError *err)
{
    char w[160], sql[512];
    where_rp(w, sizeof w, run_id, prompt_id, prompt_id);
    snprintf(sql, sizeof sql, "SELECT prompt_id, pos, token_id, piece_bytes, is_generated, logprob, entropy "
                              "FROM token%s ORDER BY prompt_id, pos", w);
    return (MsTraceCursor *)cur_new(db, CUR_TOKENS, sql, err);
}

static int pg_tokens_next(MsTraceCursor *cc, MsTraceToken *out, MsError *err)
{
    PgCur *c = (PgCur *)cc;
    int rc = WRONG(c, CUR_TOKENS);
    if (rc || (rc = cur_step(c, err)) <= 0) return rc;
    PGresult *r = c->res;
    int i = c->row;
    out->prompt_id = g_i64(r, i, 0);
    out->pos = (int32_t)g_i64(r, i, 1);
    out->token_id = (int32_t)g_i64(r, i, 2);
    out->piece = PQgetvalue(r, i, 3);
    out->piece_len = (size_t)PQgetlength(r, i, 3);
    out->is_generated = g_i64(r, i, 4) != 0;
    out->logprob = (float)g_f64(r, i, 5);
    out->entropy = (float)g_f64(r, i, 6);
    return 1;
}

static MsTraceCursor *pg_routing(MsTraceDb *db, int64_t run_id, int64_t lo, int64_t hi, MsError *err)
{
    char w[160], sql[512];
    where_rp(w, sizeof w, run_id, lo, hi);
    snprintf(sql, sizeof sql, "SELECT prompt_id, pos, layer, experts, weights, out_maxabs, out_l2, out_argmax "
                              "FROM routing_packed%s ORDER BY prompt_id, pos, layer", w);
    return (MsTraceCursor *)cur_new(db, CUR_ROUTING, sql, err);
}

static const unsigned char *blob(const PGresult *r, int i, int col, int *n)
{
    if (PQgetisnull(r, i, col)) { *n = 0; return NULL; }
    *n = PQgetlength(r, i, col);
    return (const unsigned char *)PQgetvalue(r, i, col);
}

static int packed_row(PgCur *c, MsTraceRoutePacked *out, MsError *err)
{
    PGresult *r = c->res;
    int i = c->row, nb, nw, nm, nl, na;
    const unsigned char *ex = blob(r, i, 3, &nb);
    int k = nb / 2;
    if (!ex || k == 0 || (nb & 1))
        return ms_error_set(err, MS_EFORMAT, "%s: corrupt routing row (experts blob of %d bytes)", c->db->path, nb);
    out->weights = blob(r, i, 4, &nw);
    out->maxabs = blob(r, i, 5, &nm);
    out->l2 = blob(r, i, 6, &nl);
    out->argmax = blob(r, i, 7, &na);
    if ((out->weights && nw != 4 * k) || (out->maxabs && nm != 4 * k) || (out->l2 && nl != 4 * k) ||
        (out->argmax && na != 2 * k))
        return ms_error_set(err, MS_EFORMAT, "%s: corrupt routing row (blob sizes)", c->db->path);
    out->experts = ex;
    out->k = k;
    out->prompt_id = g_i64(r, i, 0);
    out->pos = (int32_t)g_i64(r, i, 1);
    out->layer = (int32_t)g_i64(r, i, 2);
    return 0;
}

static int pg_routing_next_packed(MsTraceCursor *cc, MsTraceRoutePacked *out, MsError *err)
{
    PgCur *c = (PgCur *)cc;
    if (c->kind != CUR_ROUTING || c->pending) return ms_error_set(err, MS_EINVAL, "%s: wrong cursor", c->db->path);
    int rc = cur_step(c, err);
    if (rc <= 0) return rc;
    rc = packed_row(c, out, err);
    return rc < 0 ? rc : 1;
}

static int pg_routing_next(MsTraceCursor *cc, MsTraceRoute *buf, int cap, MsError *err)
{
    PgCur *c = (PgCur *)cc;
    int rc = WRONG(c, CUR_ROUTING);
    if (rc) return rc;
    if (cap <= 0) return ms_error_set(err, MS_EINVAL, "%s: chunk capacity must be positive", c->db->path);
    int n = 0;
    for (;;) {
        if (!c->pending) {
            rc = cur_step(c, err);
            if (rc < 0) return rc;
            if (rc == 0) return n;
            c->pending = true;
            c->pending_from = 0;
        }
        MsTraceRoutePacked row;
        if ((rc = packed_row(c, &row, err)) < 0) return rc;
        int k = row.k;
        int left = k - c->pending_from;
        if (n > 0 && left > cap - n && k <= cap) return n;   /* keep a group whole when it fits */
        int j = c->pending_from;
        for (; j < k && n < cap; j++, n++) {
            MsTraceRoute *o = &buf[n];
            o->prompt_id = row.prompt_id;
            o->pos = row.pos;
            o->layer = (int16_t)row.layer;
            o->rank = (int16_t)j;
            o->expert = (int32_t)ms_get_u16(row.experts + 2 * j);
            o->weight = row.weights ? ms_get_f32(row.weights + 4 * j) : NAN;
            o->maxabs = row.maxabs ? ms_get_f32(row.maxabs + 4 * j) : NAN;
            o->l2 = row.l2 ? ms_get_f32(row.l2 + 4 * j) : NAN;
            o->channel = row.argmax ? (int32_t)ms_get_u16(row.argmax + 2 * j) : -1;
        }
        if (j < k) { c->pending_from = j; return n; }
        c->pending = false;
        if (n == cap) return n;
    }
}

static MsTraceCursor *pg_probs(MsTraceDb *db, int64_t run_id, int64_t prompt_id, MsError *err)
{
    char w[160], sql[512];
    where_rp(w, sizeof w, run_id, prompt_id, prompt_id);
    snprintf(sql, sizeof sql, "SELECT prompt_id, pos, layer, probs, logits FROM router_probs%s "
                              "ORDER BY prompt_id, pos, layer", w);
    return (MsTraceCursor *)cur_new(db, CUR_PROBS, sql, err);
}

static int pg_probs_next(MsTraceCursor *cc, MsTraceProbs *out, MsError *err)
{
    PgCur *c = (PgCur *)cc;
    int rc = WRONG(c, CUR_PROBS);
    if (rc || (rc = cur_step(c, err)) <= 0) return rc;
    int nb, nz;
    const unsigned char *p = blob(c->res, c->row, 3, &nb), *z = blob(c->res, c->row, 4, &nz);
    if (!p || !z || nb % 2 || nz != nb) return ms_error_set(err, MS_EFORMAT, "%s: corrupt router_probs row", c->db->path);
    size_t n = (size_t)nb / 2;
    if (2 * n > c->fcap) {
        float *nf = realloc(c->fbuf, 2 * n * sizeof *nf);
        if (!nf) return ms_error_set(err, MS_ENOMEM, "%s: out of memory", c->db->path);
        c->fbuf = nf;
        c->fcap = 2 * n;
    }
    for (size_t e = 0; e < n; e++) {
        c->fbuf[e] = ms_fp16_to_fp32((uint16_t)ms_get_u16(p + 2 * e));
        c->fbuf[n + e] = ms_fp16_to_fp32((uint16_t)ms_get_u16(z + 2 * e));
    }
    out->prompt_id = g_i64(c->res, c->row, 0);
    out->pos = (int32_t)g_i64(c->res, c->row, 1);
    out->layer = (int32_t)g_i64(c->res, c->row, 2);
    out->n_expert = (int32_t)n;
    out->probs = c->fbuf;
    out->logits = c->fbuf + n;
    return 1;
}

static MsTraceCursor *pg_hidden(MsTraceDb *db, int64_t run_id, int64_t prompt_id, MsError *err)
{
    char w[160], sql[512];
    where_rp(w, sizeof w, run_id, prompt_id, prompt_id);
    snprintf(sql, sizeof sql, "SELECT prompt_id, pos, layer, maxabs, channel FROM hidden_stats%s "
                              "ORDER BY prompt_id, pos, layer", w);
    return (MsTraceCursor *)cur_new(db, CUR_HIDDEN, sql, err);
}

static int pg_hidden_next(MsTraceCursor *cc, MsTraceHidden *buf, int cap, MsError *err)
{
    PgCur *c = (PgCur *)cc;
    int rc = WRONG(c, CUR_HIDDEN);
    if (rc) return rc;
    int n = 0;
    while (n < cap) {
        if ((rc = cur_step(c, err)) < 0) return rc;
        if (rc == 0) break;
        buf[n].prompt_id = g_i64(c->res, c->row, 0);
        buf[n].pos = (int32_t)g_i64(c->res, c->row, 1);
        buf[n].layer = (int32_t)g_i64(c->res, c->row, 2);
        buf[n].maxabs = (float)g_f64(c->res, c->row, 3);
        buf[n].channel = g_null(c->res, c->row, 4) ? -1 : (int32_t)g_i64(c->res, c->row, 4);
        n++;
    }
    return n;
}

static MsTraceCursor *pg_analyses(MsTraceDb *db, int64_t run_id, MsError *err)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT analysis_id, run_id, name, table_name, params, created, program_version "
                              "FROM analysis%s ORDER BY analysis_id", run_id ? " WHERE run_id = %lld" : "");
    char q[320];
    snprintf(q, sizeof q, sql, (long long)run_id);
    return (MsTraceCursor *)cur_new(db, CUR_ANALYSES, q, err);
}

static int pg_analyses_next(MsTraceCursor *cc, MsTraceAnalysis *out, MsError *err)
{
    PgCur *c = (PgCur *)cc;
    int rc = WRONG(c, CUR_ANALYSES);
    if (rc || (rc = cur_step(c, err)) <= 0) return rc;
    PGresult *r = c->res;
    int i = c->row;
    out->analysis_id = g_i64(r, i, 0);
    out->run_id = g_i64(r, i, 1);
    out->name = g_str(r, i, 2) ? g_str(r, i, 2) : "";
    out->table = g_str(r, i, 3) ? g_str(r, i, 3) : "";
    out->params = g_str(r, i, 4);
    out->created = g_str(r, i, 5) ? g_str(r, i, 5) : "";
    out->program_version = g_str(r, i, 6) ? g_str(r, i, 6) : "";
    return 1;
}

static MsColType pg_col_type(const char *t)
{
    if (!t) return MS_COL_BLOB;
    if (strstr(t, "int")) return MS_COL_INT;
    if (!strcmp(t, "text") || strstr(t, "char")) return MS_COL_TEXT;
    if (!strcmp(t, "bytea")) return MS_COL_BLOB;
    return MS_COL_REAL;
}

static MsTraceCursor *pg_table(MsTraceDb *db, const char *table, int64_t run_id, MsError *err)
{
    if (!ms_db_ident_ok(table)) {
        ms_error_set(err, MS_EINVAL, "%s: bad result table name '%s'", db->path, table ? table : "");
        return NULL;
    }
    const char *v[1] = { table };
    PGresult *r = pg_exec(db, "SELECT count(*) FROM analysis WHERE table_name = $1", 1, v, NULL, NULL,
                          "read the analysis registry", err);
    if (!r) return NULL;
    int64_t reg = g_i64(r, 0, 0);
    PQclear(r);
    if (reg == 0) {
        ms_error_set(err, MS_ENOTFOUND, "%s: no result table '%s' (not in the analysis registry)", db->path, table);
        return NULL;
    }
    /* unquoted names fold to lower case in PostgreSQL; result tables are
     * created quoted, as given */
    r = pg_exec(db, "SELECT column_name::text, data_type::text FROM information_schema.columns "
                    "WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
                1, v, NULL, NULL, "read result table columns", err);
    if (!r) return NULL;
    int n = PQntuples(r);
    if (n == 0) {
        PQclear(r);
        ms_error_set(err, MS_ENOTFOUND, "%s: result table '%s' is registered but missing", db->path, table);
        return NULL;
    }
    MsColumn *cols = calloc((size_t)n, sizeof *cols);
    MsTraceValue *vals = calloc((size_t)n, sizeof *vals);
    bool has_run = false, oom = !cols || !vals;
    for (int i = 0; i < n && !oom; i++) {
        char *nm = g_dup(r, i, 0);
        if (!nm) { oom = true; break; }
        has_run |= !strcmp(nm, "run_id");
        cols[i].name = nm;
        cols[i].type = pg_col_type(g_str(r, i, 1));
    }
    PQclear(r);
    if (oom || (run_id > 0 && !has_run)) {
        for (int i = 0; cols && i < n; i++) free((char *)cols[i].name);
        free(cols);
        free(vals);
        if (oom) ms_error_set(err, MS_ENOMEM, "%s: out of memory", db->path);
        else ms_error_set(err, MS_EINVAL, "%s: result table '%s' has no run_id column", db->path, table);
        return NULL;
    }
    /* write order: a table written once by COPY/INSERT is read in its
     * physical order */
    char sql[256];
    if (run_id > 0) snprintf(sql, sizeof sql, "SELECT * FROM \"%s\" WHERE run_id = %lld ORDER BY ctid", table,
                             (long long)run_id);
    else snprintf(sql, sizeof sql, "SELECT * FROM \"%s\" ORDER BY ctid", table);
    PgCur *c = cur_new(db, CUR_TABLE, sql, err);
    if (!c) {
        for (int i = 0; i < n; i++) free((char *)cols[i].name);
        free(cols);
        free(vals);
        return NULL;
    }
    c->n_cols = n;
    c->cols = cols;
    c->vals = vals;
    return (MsTraceCursor *)c;
}

static int pg_table_columns(const MsTraceCursor *cc, const MsColumn **cols)
{
    const PgCur *c = (const PgCur *)cc;
    if (c->kind != CUR_TABLE) {
        if (cols) *cols = NULL;
        return MS_EINVAL;
    }
    if (cols) *cols = c->cols;
    return c->n_cols;
}

static int pg_table_next(MsTraceCursor *cc, const MsTraceValue **vals, MsError *err)
{
    PgCur *c = (PgCur *)cc;
    int rc = WRONG(c, CUR_TABLE);
    if (rc || (rc = cur_step(c, err)) <= 0) return rc;
    for (int i = 0; i < c->n_cols; i++) {
        MsTraceValue *v = &c->vals[i];
        memset(v, 0, sizeof *v);
        if (g_null(c->res, c->row, i)) { v->type = MS_COL_NULL; continue; }
        Oid t = PQftype(c->res, i);
        if (t == OID_INT8 || t == OID_INT4 || t == OID_INT2 || t == OID_BOOL) {
            v->type = MS_COL_INT;
            v->i = g_i64(c->res, c->row, i);
        } else if (t == OID_FLOAT8 || t == OID_FLOAT4) {
            v->type = MS_COL_REAL;
            v->r = g_f64(c->res, c->row, i);
        } else {
            v->type = t == OID_BYTEA ? MS_COL_BLOB : MS_COL_TEXT;
            v->s = PQgetvalue(c->res, c->row, i);
            v->len = (size_t)PQgetlength(c->res, c->row, i);
        }
    }
    *vals = c->vals;
    return 1;
}

/* ------------------------------------------------------------------ query */

/* text of a float as the SQLite reader prints it: the shortest of
 * %.15g..%.17g that reads back as the same double */
static void fmt_real(char *buf, size_t cap, double d)
{
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, cap, "%.*g", prec, d);
        if (strtod(buf, NULL) == d) break;
    }
}

static int pg_query(MsTraceDb *db, const char *sql, MsTraceRowFn row, void *user, MsError *err)
{
    Pg *p = pg_of(db);
    /* read-only: in a read-only transaction (a savepoint cannot change that:
     * then only outside one) */
    if (pg_in_tx(p)) return ms_error_set(err, MS_EINVAL, "%s: query inside an open transaction", db->path);
    int rc = pg_cmd(db, "BEGIN READ ONLY", err);
    if (rc) return rc;
    PGresult *r = PQexecParams(p->c, sql, 0, NULL, NULL, NULL, NULL, 0);
    ExecStatusType s = PQresultStatus(r);
    if (s != PGRES_TUPLES_OK && s != PGRES_COMMAND_OK) {
        const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        if (state && !strcmp(state, "25006")) rc = ms_error_set(err, MS_EINVAL, "%s: query is not read-only", db->path);
        else if (state && !strcmp(state, "42601") && strstr(PQresultErrorMessage(r), "multiple commands"))
            rc = ms_error_set(err, MS_EINVAL, "%s: only one statement per query", db->path);
        else rc = pg_fail(db, err, MS_EINVAL, "query", r);
        PQclear(r);
        PQclear(PQexec(p->c, "ROLLBACK"));
        return rc;
    }
    int n = PQnfields(r), nt = PQntuples(r);
    const char **names = calloc((size_t)n + 1, sizeof *names);
    const char **vals = calloc((size_t)n + 1, sizeof *vals);
    char **owned = calloc((size_t)n + 1, sizeof *owned);
    if (!names || !vals || !owned) rc = ms_error_set(err, MS_ENOMEM, "%s: out of memory", db->path);
    for (int i = 0; !rc && i < n; i++) names[i] = PQfname(r, i);
    for (int t = 0; !rc && t < nt; t++) {
        for (int i = 0; i < n; i++) {
            free(owned[i]);
            owned[i] = NULL;
            if (PQgetisnull(r, t, i)) { vals[i] = NULL; continue; }
            const char *v = PQgetvalue(r, t, i);
            Oid ty = PQftype(r, i);
            if (ty == OID_BYTEA && v[0] == '\\' && v[1] == 'x') {
                /* x'..' as SQLite's reader writes blobs */
                size_t l = strlen(v + 2);
                if (!(owned[i] = malloc(l + 4))) break;
                char *o = owned[i];
                *o++ = 'x'; *o++ = '\'';
                for (size_t j = 0; j < l; j++) *o++ = (char)(v[2 + j] >= 'a' ? v[2 + j] - 32 : v[2 + j]);
                *o++ = '\''; *o = '\0';
                vals[i] = owned[i];
            } else if ((ty == OID_FLOAT8 || ty == OID_FLOAT4 || (ty == OID_NUMERIC && strchr(v, '.'))) &&
                       strcmp(v, "NaN") && !strstr(v, "Infinity")) {
                char buf[40];
                fmt_real(buf, sizeof buf, strtod(v, NULL));
                if (!(owned[i] = strdup(buf))) break;
                vals[i] = owned[i];
            } else if (ty == OID_BOOL) vals[i] = v[0] == 't' ? "1" : "0";
            else vals[i] = v;
        }
        bool oom = false;
        for (int i = 0; i < n; i++) oom |= !PQgetisnull(r, t, i) && !vals[i];
        if (oom) { rc = ms_error_set(err, MS_ENOMEM, "%s: out of memory", db->path); break; }
        if (row(user, n, names, vals)) break;
    }
    if (owned) for (int i = 0; i < n; i++) free(owned[i]);
    free(owned);
    free(names);
    free(vals);
    PQclear(r);
    PQclear(PQexec(p->c, "ROLLBACK"));
    return rc;
}

/* ------------------------------------------------------------- results */

typedef struct {
    MsTraceDb *db;             /* first: ms_db_of */
    char *copy_sql;
    int n_cols;
    const MsColumn *cols;
    MsColType *types;
    Buf rows;
    /* the pending row */
    MsColType *vt;
    int64_t *vi;
    double *vd;
    char **vs;
    bool in_tx;
} PgResult;

static void res_clear_row(PgResult *r)
{
    for (int i = 0; i < r->n_cols; i++) {
        free(r->vs[i]);
        r->vs[i] = NULL;
        r->vt[i] = MS_COL_NULL;
    }
}

static void pg_result_free(MsTraceResult *rr)
{
    PgResult *r = (PgResult *)rr;
    if (!r) return;
    if (r->in_tx) tx_leave(r->db, false, NULL);
    if (r->vs) res_clear_row(r);
    free(r->copy_sql);
    free(r->types);
    free(r->vt);
    free(r->vi);
    free(r->vd);
    free(r->vs);
    free(r->rows.p);
    free(r);
}

static MsTraceResult *pg_result_new(MsTraceDb *db, int64_t run_id, const char *analysis, const char *params_json,
                                    const char *table, const MsColumn *cols, int n_cols, MsError *err)
{
    if (!ms_db_ident_ok(table) || ms_db_reserved_name(table) || !strcmp(table, "ms_meta")) {
        ms_error_set(err, MS_EINVAL, "%s: bad result table name '%s'", db->path, table ? table : "");
        return NULL;
    }
    if (n_cols < 1 || n_cols > 200) {
        ms_error_set(err, MS_EINVAL, "%s: result table %s: bad column count %d", db->path, table, n_cols);
        return NULL;
    }
    size_t cap = 256 + (size_t)n_cols * 96;
    char *ddl = malloc(cap);
    PgResult *r = calloc(1, sizeof *r);
    if (r) {
        r->db = db;
        r->n_cols = n_cols;
        r->copy_sql = malloc(cap);
        r->types = calloc((size_t)n_cols, sizeof *r->types);
        r->vt = calloc((size_t)n_cols, sizeof *r->vt);
        r->vi = calloc((size_t)n_cols, sizeof *r->vi);
        r->vd = calloc((size_t)n_cols, sizeof *r->vd);
        r->vs = calloc((size_t)n_cols, sizeof *r->vs);
    }
    if (!ddl || !r || !r->copy_sql || !r->types || !r->vt || !r->vi || !r->vd || !r->vs) {
        free(ddl);
        pg_result_free((MsTraceResult *)r);
        ms_error_set(err, MS_ENOMEM, "%s: out of memory", db->path);
        return NULL;
    }
    size_t a = (size_t)snprintf(ddl, cap, "CREATE TABLE \"%s\"(", table);
    size_t b = (size_t)snprintf(r->copy_sql, cap, "COPY \"%s\"(", table);
    for (int i = 0; i < n_cols; i++) {
        static const char *const ty[] = { "", "bigint", "double precision", "text", "bytea" };
        if (!ms_db_ident_ok(cols[i].name) || cols[i].type < MS_COL_INT || cols[i].type > MS_COL_BLOB) {
            ms_error_set(err, MS_EINVAL, "%s: result table %s: bad column %d", db->path, table, i);
            free(ddl);
            pg_result_free((MsTraceResult *)r);
            return NULL;
        }
        r->types[i] = cols[i].type;
        a += (size_t)snprintf(ddl + a, cap - a, "%s\"%s\" %s", i ? ", " : "", cols[i].name, ty[cols[i].type]);
        b += (size_t)snprintf(r->copy_sql + b, cap - b, "%s\"%s\"", i ? ", " : "", cols[i].name);
    }
    snprintf(ddl + a, cap - a, ")");
    snprintf(r->copy_sql + b, cap - b, ") FROM STDIN (FORMAT binary)");
    int rc = tx_enter(db, err);
    if (!rc) r->in_tx = true;
    char drop[128];
    snprintf(drop, sizeof drop, "DROP TABLE IF EXISTS \"%s\"", table);
    if (!rc) rc = pg_cmd(db, drop, err);
    if (!rc) rc = pg_cmd(db, ddl, err);
    free(ddl);
    Args ar;
    const char *v[5] = { run_id > 0 ? a_i(&ar, 0, run_id) : NULL, analysis ? analysis : table, table, params_json,
                         MS_VERSION };
    char now[32];
    utc_now(now, sizeof now);
    const char *v2[6] = { v[0], v[1], v[2], v[3], now, v[4] };
    PGresult *res = NULL;
    if (!rc) {
        const char *t1[1] = { table };
        res = pg_exec(db, "DELETE FROM analysis WHERE table_name = $1", 1, t1, NULL, NULL, "register analysis", err);
        if (!res) rc = MS_EDB;
        PQclear(res);
    }
    if (!rc) {
        res = pg_exec(db, "INSERT INTO analysis(run_id,name,table_name,params,created,program_version) "
                          "VALUES($1,$2,$3,$4,$5,$6)", 6, v2, NULL, NULL, "register analysis", err);
        if (!res) rc = MS_EDB;
        PQclear(res);
    }
    if (rc) {
        pg_result_free((MsTraceResult *)r);
        return NULL;
    }
    return (MsTraceResult *)r;
}

static int pg_result_value(MsTraceResult *rr, int col, MsColType type, int64_t i, double d, const char *s)
{
    PgResult *r = (PgResult *)rr;
    if (!r || !r->in_tx || col < 0 || col >= r->n_cols) return MS_EINVAL;
    free(r->vs[col]);
    r->vs[col] = NULL;
    if (type == MS_COL_REAL && isnan(d)) type = MS_COL_NULL;
    if (type == MS_COL_TEXT && !s) type = MS_COL_NULL;
    r->vt[col] = type;
    r->vi[col] = i;
    r->vd[col] = d;
    if (type == MS_COL_TEXT && !(r->vs[col] = strdup(s))) return MS_ENOMEM;
    return 0;
}

static int res_flush(PgResult *r, MsError *err)
{
    if (r->rows.rows == 0) return 0;
    int rc = copy_in(r->db, r->copy_sql, &r->rows, err);
    r->rows.n = 0;
    r->rows.rows = 0;
    return rc;
}

static int pg_result_row(MsTraceResult *rr, MsError *err)
{
    PgResult *r = (PgResult *)rr;
    if (!r || !r->in_tx) return ms_error_set(err, MS_EINVAL, "result table is closed");
    Buf *b = &r->rows;
    f_begin(b, r->n_cols);
    for (int i = 0; i < r->n_cols; i++) {
        MsColType want = r->types[i], t = r->vt[i];
        if (t == MS_COL_NULL) { f_null(b); continue; }
        /* the value converted to the declared column type, as SQLite's
         * affinity would store it */
        switch (want) {
        case MS_COL_INT:
            if (t == MS_COL_INT) f_i64(b, r->vi[i]);
            else if (t == MS_COL_REAL && r->vd[i] == (double)(int64_t)r->vd[i]) f_i64(b, (int64_t)r->vd[i]);
            else { res_clear_row(r); return ms_error_set(err, MS_EINVAL, "%s: result column %d: not an integer",
                                                         r->db->path, i); }
            break;
        case MS_COL_REAL:
            f_f64(b, t == MS_COL_INT ? (double)r->vi[i] : t == MS_COL_REAL ? r->vd[i] : strtod(r->vs[i], NULL));
            break;
        default: {
            char buf[40];
            const char *s = r->vs[i];
            if (t == MS_COL_INT) { snprintf(buf, sizeof buf, "%lld", (long long)r->vi[i]); s = buf; }
            else if (t == MS_COL_REAL) { fmt_real(buf, sizeof buf, r->vd[i]); s = buf; }
            f_bytes(b, s, strlen(s));
        }
        }
    }
    res_clear_row(r);
    if (b->oom) return ms_error_set(err, MS_ENOMEM, "%s: out of memory", r->db->path);
    if (b->n >= ((size_t)8 << 20)) return res_flush(r, err);
    return 0;
}

static int pg_result_commit(MsTraceResult *rr, MsError *err)
{
    PgResult *r = (PgResult *)rr;
    if (!r || !r->in_tx) return ms_error_set(err, MS_EINVAL, "result table is closed");
    int rc = res_flush(r, err);
    r->in_tx = false;
    int rc2 = tx_leave(r->db, rc == 0, rc ? NULL : err);
    return rc ? rc : rc2;
}

/* ---------------------------------------------------------------- exec */

static int pg_exec_rows(MsTraceDb *db, const char *sql, int n, const MsTraceValue *params, MsDbRows *out,
                        MsError *err)
{
    if (out) memset(out, 0, sizeof *out);
    /* ?N -> $N (outside string literals) */
    size_t len = strlen(sql);
    char *q = malloc(len + 1);
    const char **vals = calloc((size_t)(n > 0 ? n : 1), sizeof *vals);
    int *lens = calloc((size_t)(n > 0 ? n : 1), sizeof *lens), *fmts = calloc((size_t)(n > 0 ? n : 1), sizeof *fmts);
    char (*buf)[32] = calloc((size_t)(n > 0 ? n : 1), sizeof *buf);
    if (!q || !vals || !lens || !fmts || !buf) {
        free(q); free(vals); free(lens); free(fmts); free(buf);
        return ms_error_set(err, MS_ENOMEM, "%s: out of memory", db->path);
    }
    bool lit = false;
    for (size_t i = 0; i <= len; i++) {
        if (sql[i] == '\'') lit = !lit;
        q[i] = !lit && sql[i] == '?' ? '$' : sql[i];
    }
    for (int i = 0; i < n; i++) {
        const MsTraceValue *v = &params[i];
        switch (v->type) {
        case MS_COL_INT: snprintf(buf[i], sizeof buf[i], "%lld", (long long)v->i); vals[i] = buf[i]; break;
        case MS_COL_REAL:
            if (isfinite(v->r)) { snprintf(buf[i], sizeof buf[i], "%.17g", v->r); vals[i] = buf[i]; }
            break;
        case MS_COL_TEXT: vals[i] = v->s; break;
        case MS_COL_BLOB: vals[i] = v->s ? v->s : ""; lens[i] = (int)v->len; fmts[i] = 1; break;
        default: break;
        }
    }
    PGresult *r = pg_exec(db, q, n, vals, lens, fmts, "query", err);
    free(q); free(vals); free(lens); free(fmts); free(buf);
    if (!r) return MS_EDB;
    if (!out) { PQclear(r); return 0; }
    int nr = PQntuples(r), nc = PQnfields(r);
    MsTraceValue *v = calloc((size_t)MS_MAX(nr * nc, 1), sizeof *v);
    if (!v) { PQclear(r); return ms_error_set(err, MS_ENOMEM, "%s: out of memory", db->path); }
    for (int t = 0; t < nr; t++)
        for (int c = 0; c < nc; c++) {
            MsTraceValue *x = &v[(size_t)t * nc + c];
            if (PQgetisnull(r, t, c)) continue;
            switch (PQftype(r, c)) {
            case OID_INT2: case OID_INT4: case OID_INT8: case OID_BOOL:
                x->type = MS_COL_INT; x->i = g_i64(r, t, c); x->r = (double)x->i; break;
            case OID_FLOAT4: case OID_FLOAT8: x->type = MS_COL_REAL; x->r = g_f64(r, t, c); break;
            case OID_BYTEA:
                x->type = MS_COL_BLOB; x->s = PQgetvalue(r, t, c); x->len = (size_t)PQgetlength(r, t, c); break;
            default:
                x->type = MS_COL_TEXT; x->s = PQgetvalue(r, t, c); x->len = (size_t)PQgetlength(r, t, c); break;
            }
        }
    out->n_rows = nr;
    out->n_cols = nc;
    out->v = v;
    out->priv = r;
    return 0;
}

static void pg_rows_free(MsDbRows *rows)
{
    if (!rows) return;
    PQclear(rows->priv);
    free(rows->v);
    memset(rows, 0, sizeof *rows);
}

/* ------------------------------------------------------------ snapshot */

/* One PostgreSQL value (binary result format) bound as SQLite stores it. */
static int snap_bind(sqlite3_stmt *st, int i, const PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col)) return sqlite3_bind_null(st, i);
    switch (PQftype(r, col)) {
    case OID_INT2: case OID_INT4: case OID_INT8: case OID_BOOL:
        return sqlite3_bind_int64(st, i, g_i64(r, row, col));
    case OID_FLOAT4: case OID_FLOAT8:
        return sqlite3_bind_double(st, i, g_f64(r, row, col));
    case OID_BYTEA:
        return sqlite3_bind_blob(st, i, PQgetvalue(r, row, col), PQgetlength(r, row, col), SQLITE_TRANSIENT);
    case OID_TEXT:
        return sqlite3_bind_text(st, i, PQgetvalue(r, row, col), PQgetlength(r, row, col), SQLITE_TRANSIENT);
    default:
        return SQLITE_MISMATCH;
    }
}

/* Rows of table `name` (columns cols, a quoted comma list) from PostgreSQL
 * into the same table of dst, in `order`; through a binary cursor. */
static int snap_table(MsTraceDb *db, MsTraceDb *dst, const char *name, const char *cols, int n_cols,
                      const char *order, MsError *err)
{
    size_t len = strlen(cols) * 2 + strlen(order) + 256;
    char *sql = malloc(len);
    if (!sql) return ms_error_set(err, MS_ENOMEM, "%s: out of memory", db->path);
    snprintf(sql, len, "DECLARE ms_snap NO SCROLL CURSOR FOR SELECT %s FROM \"%s\" ORDER BY %s", cols, name, order);
    int rc = pg_cmd(db, sql, err);
    if (rc) { free(sql); return rc; }
    size_t l = (size_t)snprintf(sql, len, "INSERT INTO \"%s\"(%s) VALUES(", name, cols);
    for (int i = 0; i < n_cols; i++) l += (size_t)snprintf(sql + l, len - l, "%s?", i ? "," : "");
    snprintf(sql + l, len - l, ")");
    sqlite3_stmt *st;
    rc = ms_db_prepare(dst, sql, &st, err);
    free(sql);
    while (!rc) {
        PGresult *r = pg_exec(db, "FETCH 8192 FROM ms_snap", 0, NULL, NULL, NULL, "export", err);
        if (!r) { rc = MS_EDB; break; }
        int nt = PQntuples(r);
        if (PQnfields(r) != n_cols) rc = ms_error_set(err, MS_EFORMAT, "%s: table %s: unexpected columns", db->path, name);
        for (int t = 0; !rc && t < nt; t++) {
            for (int c = 0; !rc && c < n_cols; c++)
                if (snap_bind(st, c + 1, r, t, c) != SQLITE_OK)
                    rc = ms_error_set(err, MS_EFORMAT, "%s: table %s: column %s has a type export cannot carry",
                                      db->path, name, PQfname(r, c));
            if (!rc && sqlite3_step(st) != SQLITE_DONE) rc = ms_db_fail(dst, err, MS_EDB, "export copy");
            sqlite3_reset(st);
        }
        PQclear(r);
        if (nt == 0) break;
    }
    sqlite3_finalize(st);
    if (!rc) rc = pg_cmd(db, "CLOSE ms_snap", err);
    return rc;
}

/* Every table of db (one REPEATABLE READ snapshot) into dst, an empty
 * SQLite trace database at the same schema version: the core tables with
 * their ids, then the registered analysis result tables (created as the
 * SQLite backend creates them).  The SQLite exporter then writes the same
 * bytes for both backends. */
static int pg_snapshot(MsTraceDb *db, MsTraceDb *dst, MsError *err)
{
    Pg *p = pg_of(db);
    if (db->user_version != MS_TRACE_SCHEMA_VERSION)
        return ms_error_set(err, MS_EUNSUPPORTED, "%s: schema version %d is old; open it once read-write to migrate",
                            db->path, db->user_version);
    if (pg_in_tx(p)) return ms_error_set(err, MS_EINVAL, "%s: export inside an open transaction", db->path);
    int rc = pg_cmd(db, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", err);
    if (rc) return rc;
    rc = ms_db_exec(dst, "BEGIN", err);
    sqlite3_stmt *tl = NULL;
    if (!rc) rc = ms_db_prepare(dst, "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
                                     "AND name <> 'ms_seq' ORDER BY rowid", &tl, err);
    while (!rc && sqlite3_step(tl) == SQLITE_ROW) {
        char name[80];
        snprintf(name, sizeof name, "%s", (const char *)sqlite3_column_text(tl, 0));
        char q[256];
        snprintf(q, sizeof q, "SELECT name, pk FROM pragma_table_info('%s') ORDER BY cid", name);
        sqlite3_stmt *ci;
        if ((rc = ms_db_prepare(dst, q, &ci, err))) break;
        char cols[4096] = "", pk[8][80];
        size_t cl = 0;
        int n = 0, n_pk = 0;
        while (sqlite3_step(ci) == SQLITE_ROW && cl < sizeof cols - 100) {
            const char *cn = (const char *)sqlite3_column_text(ci, 0);
            int k = sqlite3_column_int(ci, 1);
            cl += (size_t)snprintf(cols + cl, sizeof cols - cl, "%s\"%s\"", n++ ? "," : "", cn);
            if (k >= 1 && k <= 8) { snprintf(pk[k - 1], sizeof pk[0], "\"%s\"", cn); n_pk = MS_MAX(n_pk, k); }
        }
        sqlite3_finalize(ci);
        char order[800] = "ctid";
        for (int i = 0, o = 0; i < n_pk; i++) o += snprintf(order + o, sizeof order - (size_t)o, "%s%s", i ? "," : "", pk[i]);
        rc = snap_table(db, dst, name, cols, n, order, err);
    }
    sqlite3_finalize(tl);
    /* result tables: in write order (physical order, as pg_table reads them) */
    PGresult *r = NULL;
    if (!rc && !(r = pg_exec(db, "SELECT a.table_name FROM analysis a WHERE to_regclass(quote_ident(a.table_name)) "
                                 "IS NOT NULL ORDER BY a.analysis_id", 0, NULL, NULL, NULL, "export", err)))
        rc = MS_EDB;
    for (int t = 0; !rc && r && t < PQntuples(r); t++) {
        const char *name = g_str(r, t, 0);
        if (!ms_db_ident_ok(name) || ms_db_reserved_name(name)) continue;
        const char *v[1] = { name };
        PGresult *c = pg_exec(db, "SELECT column_name::text, data_type::text FROM information_schema.columns "
                                  "WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
                              1, v, NULL, NULL, "export", err);
        if (!c) { rc = MS_EDB; break; }
        int n = PQntuples(c);
        MsColumn *mc = calloc((size_t)MS_MAX(n, 1), sizeof *mc);
        char cols[8192] = "";
        size_t cl = 0;
        if (!mc) rc = ms_error_set(err, MS_ENOMEM, "%s: out of memory", db->path);
        for (int i = 0; !rc && i < n; i++) {
            mc[i].name = g_str(c, i, 0);
            mc[i].type = pg_col_type(g_str(c, i, 1));
            if (!ms_db_ident_ok(mc[i].name) || cl > sizeof cols - 100)
                rc = ms_error_set(err, MS_EFORMAT, "%s: result table %s: bad column", db->path, name);
            else cl += (size_t)snprintf(cols + cl, sizeof cols - cl, "%s\"%s\"", i ? "," : "", mc[i].name);
        }
        char *ddl = !rc ? ms_db_result_ddl(name, mc, n) : NULL;
        if (!rc && !ddl) rc = ms_error_set(err, MS_ENOMEM, "%s: out of memory", db->path);
        if (!rc) rc = ms_db_exec(dst, ddl, err);
        if (!rc) rc = snap_table(db, dst, name, cols, n, "ctid", err);
        free(ddl);
        free(mc);
        PQclear(c);
    }
    PQclear(r);
    PQclear(PQexec(p->c, rc ? "ROLLBACK" : "COMMIT"));
    if (!rc) rc = ms_db_exec(dst, "COMMIT", err);
    else sqlite3_exec(dst->h, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

/* ---------------------------------------------------------------- backend */

static const MsDbBackend pg_backend = {
    .name = "PostgreSQL",
    .close = pg_close,
    .model_add = pg_model_add,
    .run_new = pg_run_new,
    .run_find = pg_run_find,
    .run_join = pg_run_join,
    .run_set_status = pg_run_set_status,
    .runs = pg_runs,
    .run_info = pg_run_info,
    .prompt_lookup = pg_prompt_lookup,
    .prompt_get = pg_prompt_get,
    .changed = pg_changed,
    .writer_new = pg_writer_new,
    .writer_free = pg_writer_free,
    .sink = &pg_sink,
    .writer_begin = pg_writer_begin,
    .writer_end = pg_writer_end,
    .prompts = pg_prompts,
    .prompts_next = pg_prompts_next,
    .tokens = pg_tokens,
    .tokens_next = pg_tokens_next,
    .routing = pg_routing,
    .routing_next = pg_routing_next,
    .routing_next_packed = pg_routing_next_packed,
    .probs = pg_probs,
    .probs_next = pg_probs_next,
    .hidden = pg_hidden,
    .hidden_next = pg_hidden_next,
    .analyses = pg_analyses,
    .analyses_next = pg_analyses_next,
    .table = pg_table,
    .table_columns = pg_table_columns,
    .table_next = pg_table_next,
    .cursor_free = pg_cursor_free,
    .query = pg_query,
    .result_new = pg_result_new,
    .result_value = pg_result_value,
    .result_row = pg_result_row,
    .result_commit = pg_result_commit,
    .result_free = pg_result_free,
    .tx_begin = pg_tx_begin,
    .tx_commit = pg_tx_commit,
    .tx_rollback = pg_tx_rollback,
    .snapshot = pg_snapshot,
    .exec = pg_exec_rows,
    .rows_free = pg_rows_free,
    .import_model = pg_import_model,
    .import_model_shape = pg_import_model_shape,
};
