/* schema.c — opening trace databases: schema creation, versioning
 * (PRAGMA user_version, forward migrations) and the shared helpers. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "db-internal.h"

#define MS_APPLICATION_ID 0x4D53434F /* "MSCO": marks moescope traces */

/* Byte decoding in plain SQL (the sqlite3 CLI has no user functions): a
 * hex() string is read one digit at a time with instr().  H is an SQL
 * expression holding hex text, J a 1-based digit index. */
#define HD(H, J) "(instr('0123456789ABCDEF',substr(" H "," J ",1))-1)"
#define HB(H, J, J1) "(" HD(H, J) "*16+" HD(H, J1) ")"
#define HU16(H) "(" HB(H, "1", "2") "+" HB(H, "3", "4") "*256)"
#define HU32(H) "(" HB(H, "1", "2") "+" HB(H, "3", "4") "*256+" HB(H, "5", "6") "*65536+" \
    HB(H, "7", "8") "*16777216)"
/* IEEE binary32 / binary16 bits -> value (NaN/Inf are never stored). */
#define F32(U) "((1-2*((" U ")>>31))*(((" U ")&8388607)+((((" U ")>>23)&255)>0)*8388608)" \
    "*pow(2,max(((" U ")>>23)&255,1)-150))"
#define F16(U) "((1-2*((" U ")>>15))*(((" U ")&1023)+((((" U ")>>10)&31)>0)*1024)" \
    "*pow(2,max(((" U ")>>10)&31,1)-25))"
#define F32H(H) "CASE WHEN " H "='' THEN NULL ELSE " F32(HU32(H)) " END"

/* Version 2 decodes bytes with one instr() each: the position of a byte in
 * a blob holding 0..255 is its value plus one (7x faster than hex digits). */
#define LUT "X'" \
    "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F" \
    "202122232425262728292A2B2C2D2E2F303132333435363738393A3B3C3D3E3F" \
    "404142434445464748494A4B4C4D4E4F505152535455565758595A5B5C5D5E5F" \
    "606162636465666768696A6B6C6D6E6F707172737475767778797A7B7C7D7E7F" \
    "808182838485868788898A8B8C8D8E8F909192939495969798999A9B9C9D9E9F" \
    "A0A1A2A3A4A5A6A7A8A9AAABACADAEAFB0B1B2B3B4B5B6B7B8B9BABBBCBDBEBF" \
    "C0C1C2C3C4C5C6C7C8C9CACBCCCDCECFD0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF" \
    "E0E1E2E3E4E5E6E7E8E9EAEBECEDEEEFF0F1F2F3F4F5F6F7F8F9FAFBFCFDFEFF" \
    "'"
#define BY(B, O) "(instr(" LUT ",substr(" B "," O ",1))-1)"
/* binary32 from 4 little-endian bytes at offset O (an SQL expression) */
#define E32(B, O) "(((" BY(B, O "+4") "&127)<<1)|(" BY(B, O "+3") ">>7))"
#define V32(B, O) "((1-2*(" BY(B, O "+4") ">>7))*((((" BY(B, O "+3") "&127)<<16)|(" BY(B, O "+2") "<<8)|" \
    BY(B, O "+1") ")+(" E32(B, O) ">0)*8388608)*pow(2,max(" E32(B, O) ",1)-150))"
#define N32(B, O) "CASE WHEN " B " IS NULL THEN NULL ELSE " V32(B, O) " END"
/* binary16 from 2 little-endian bytes at offset O */
#define E16(B, O) "((" BY(B, O "+2") ">>2)&31)"
#define V16(B, O) "((1-2*(" BY(B, O "+2") ">>7))*((((" BY(B, O "+2") "&3)<<8)|" BY(B, O "+1") ")+(" \
    E16(B, O) ">0)*1024)*pow(2,max(" E16(B, O) ",1)-25))"
#define U16B(B, O) "(" BY(B, O "+1") "+256*" BY(B, O "+2") ")"

/* 1 -> 2: faster decoding views (same names, columns and values). */
static const char migrate_1_2[] =
    "DROP VIEW routing; DROP VIEW expert_stats; DROP VIEW router_prob;\n"
    "CREATE VIEW routing AS SELECT r.run_id, r.prompt_id, r.pos, r.layer, s.i AS rank,\n"
    "  " U16B("r.experts", "2*s.i") " AS expert,\n"
    "  " N32("r.weights", "4*s.i") " AS weight\n"
    "  FROM routing_packed r JOIN ms_seq s ON s.i < length(r.experts)/2;\n"
    "CREATE VIEW expert_stats AS SELECT r.run_id, r.prompt_id, r.pos, r.layer, s.i AS rank,\n"
    "  " U16B("r.experts", "2*s.i") " AS expert,\n"
    "  " V32("r.out_maxabs", "4*s.i") " AS maxabs,\n"
    "  " N32("r.out_l2", "4*s.i") " AS l2\n"
    "  FROM routing_packed r JOIN ms_seq s ON s.i < length(r.experts)/2\n"
    "  WHERE r.out_maxabs IS NOT NULL;\n"
    "CREATE VIEW router_prob AS SELECT r.run_id, r.prompt_id, r.pos, r.layer, s.i AS expert,\n"
    "  " V16("r.probs", "2*s.i") " AS prob,\n"
    "  " V16("r.logits", "2*s.i") " AS logit\n"
    "  FROM router_probs r JOIN ms_seq s ON s.i < length(r.probs)/2;\n";

/* 2 -> 3: where the maxima are.  routing_packed.out_argmax holds, per
 * selected expert, the uint16 LE channel of its max |down-projection
 * output|; hidden_stats.channel the channel of the residual's max |h|.
 * NULL in rows written before version 3 (or without stats). */
static const char migrate_2_3[] =
    "ALTER TABLE routing_packed ADD COLUMN out_argmax BLOB;\n"
    "ALTER TABLE hidden_stats ADD COLUMN channel INTEGER;\n"
    "DROP VIEW expert_stats;\n"
    "CREATE VIEW expert_stats AS SELECT r.run_id, r.prompt_id, r.pos, r.layer, s.i AS rank,\n"
    "  " U16B("r.experts", "2*s.i") " AS expert,\n"
    "  " V32("r.out_maxabs", "4*s.i") " AS maxabs,\n"
    "  " N32("r.out_l2", "4*s.i") " AS l2,\n"
    "  CASE WHEN r.out_argmax IS NULL THEN NULL ELSE " U16B("r.out_argmax", "2*s.i") " END AS channel\n"
    "  FROM routing_packed r JOIN ms_seq s ON s.i < length(r.experts)/2\n"
    "  WHERE r.out_maxabs IS NOT NULL;\n";

/* 3 -> 4: experiments and sweeps (jobs/experiment.c).  The intervened run
 * of an experiment is an ordinary trace whose parent is the baseline; these
 * tables hold what needs both runs' full next-token distributions, computed
 * while the intervened run is evaluated.  Positions: the row at `pos`
 * predicts the token at pos + 1 of the teacher-forced sequence. */
static const char migrate_3_4[] =
    "CREATE TABLE an_compare_prompt(\n"
    "  run_id INTEGER NOT NULL REFERENCES run, baseline_run_id INTEGER NOT NULL REFERENCES run,\n"
    "  idx INTEGER NOT NULL, n_tokens INTEGER NOT NULL, n_prompt_tokens INTEGER NOT NULL,\n"
    "  kl_mean REAL, kl_max REAL, n_scored INTEGER NOT NULL, nll_baseline REAL, nll_run REAL,\n"
    "  top1_agree INTEGER NOT NULL, first_divergence INTEGER,\n"
    "  text_baseline TEXT, text_run TEXT, tokens_baseline BLOB, tokens_run BLOB,\n"
    "  PRIMARY KEY(run_id, idx)) WITHOUT ROWID;\n"
    "CREATE TABLE an_compare_pos(\n"
    "  run_id INTEGER NOT NULL, baseline_run_id INTEGER NOT NULL, idx INTEGER NOT NULL, pos INTEGER NOT NULL,\n"
    "  kl REAL NOT NULL, lp_baseline REAL, lp_run REAL, top1_baseline INTEGER NOT NULL, top1_run INTEGER NOT NULL,\n"
    "  PRIMARY KEY(run_id, idx, pos)) WITHOUT ROWID;\n"
    "CREATE TABLE an_compare_layer(\n"
    "  run_id INTEGER NOT NULL, baseline_run_id INTEGER NOT NULL, idx INTEGER NOT NULL, layer INTEGER NOT NULL,\n"
    "  n_pos INTEGER NOT NULL, n_changed INTEGER NOT NULL, jaccard_sum REAL NOT NULL,\n"
    "  PRIMARY KEY(run_id, idx, layer)) WITHOUT ROWID;\n"
    "CREATE VIEW an_compare AS SELECT run_id, baseline_run_id, count(*) AS n_prompts,\n"
    "  sum(n_tokens) AS n_positions, sum(kl_mean*n_tokens)/sum(n_tokens) AS kl_mean, max(kl_max) AS kl_max,\n"
    "  sum(top1_agree)*1.0/sum(n_tokens) AS top1_agreement,\n"
    "  exp(sum(nll_baseline)/sum(n_scored)) AS ppl_baseline, exp(sum(nll_run)/sum(n_scored)) AS ppl_run,\n"
    "  (sum(nll_baseline)-sum(nll_run))/sum(n_scored) AS dlogprob_mean,\n"
    "  avg(first_divergence) AS first_divergence_mean, count(first_divergence) AS n_diverged\n"
    "  FROM an_compare_prompt GROUP BY run_id, baseline_run_id;\n"
    "CREATE VIEW an_compare_shift AS SELECT run_id, baseline_run_id, layer,\n"
    "  sum(n_changed)*1.0/sum(n_pos) AS changed_share, sum(jaccard_sum)/sum(n_pos) AS jaccard_mean,\n"
    "  sum(n_pos) AS n_positions FROM an_compare_layer GROUP BY run_id, baseline_run_id, layer;\n"
    "CREATE TABLE sweep(\n"
    "  sweep_id INTEGER PRIMARY KEY, baseline_run_id INTEGER REFERENCES run,\n"
    "  model_id INTEGER NOT NULL REFERENCES model, created TEXT NOT NULL, settings TEXT,\n"
    "  program_version TEXT NOT NULL);\n"
    "CREATE TABLE sweep_candidate(\n"
    "  sweep_id INTEGER NOT NULL REFERENCES sweep, cand INTEGER NOT NULL, kind TEXT NOT NULL,\n"
    "  label TEXT NOT NULL, interventions TEXT NOT NULL, n_experts INTEGER NOT NULL,\n"
    "  n_positions INTEGER NOT NULL, kl_mean REAL, kl_max REAL, top1_agreement REAL,\n"
    "  ppl_baseline REAL, ppl_run REAL, dppl REAL, changed_share REAL, jaccard_mean REAL,\n"
    "  z_kl REAL, z_dppl REAL, rank INTEGER,\n"
    "  PRIMARY KEY(sweep_id, cand)) WITHOUT ROWID;\n";

/* 4 -> 5: runs say whether they are complete and which prompt set they
 * ran on.  status: 'complete' when every prompt of the set is committed,
 * 'incomplete' while a trace, an experiment or an import is being written
 * or after it was interrupted (Ctrl+C, an error, a kill); --resume
 * completes it.  prompts_sha256: the content of the prompt set (texts and
 * labels, jobs/prompts.h ms_prompts_sha256), so --resume finds the run
 * whatever the file is called.  Older runs: complete when their settings
 * say how many prompts the set had and that many are committed (or when
 * they say nothing: imports, hand-made runs); no hash. */
static const char migrate_4_5[] =
    "ALTER TABLE run ADD COLUMN status TEXT;\n"
    "ALTER TABLE run ADD COLUMN prompts_sha256 TEXT;\n"
    "UPDATE run SET status = CASE\n"
    "  WHEN NOT json_valid(settings) OR json_extract(settings, '$.n_prompts') IS NULL THEN 'complete'\n"
    "  WHEN (SELECT count(*) FROM prompt p WHERE p.run_id = run.run_id) >= json_extract(settings, '$.n_prompts')\n"
    "    THEN 'complete' ELSE 'incomplete' END;\n";

/* 5 -> 6: several workers fill one run (trace --shard I/N, moescope merge).
 * prompt.worker names the process that wrote the prompt ("host:pid", with
 * " shard I/N" for a shard; NULL when not recorded); view run_progress:
 * per run its status, the size of its prompt set (from the settings), the
 * prompts committed and the workers that wrote them. */
static const char migrate_5_6[] =
    "ALTER TABLE prompt ADD COLUMN worker TEXT;\n"
    "CREATE VIEW run_progress AS SELECT r.run_id, r.status,\n"
    "  CASE WHEN json_valid(r.settings) THEN json_extract(r.settings, '$.n_prompts') END AS n_prompts,\n"
    "  (SELECT count(*) FROM prompt p WHERE p.run_id = r.run_id) AS n_committed,\n"
    "  (SELECT count(DISTINCT p.worker) FROM prompt p WHERE p.run_id = r.run_id) AS n_workers\n"
    "  FROM run r;\n";

const char *const ms_db_schema_v1 =
    "CREATE TABLE model(\n"
    "  model_id INTEGER PRIMARY KEY,\n"
    "  file_name TEXT NOT NULL, file_size INTEGER NOT NULL, sha256 TEXT NOT NULL,\n"
    "  arch TEXT NOT NULL, name TEXT NOT NULL,\n"
    "  n_layer INTEGER NOT NULL, n_expert INTEGER NOT NULL, n_expert_used INTEGER NOT NULL,\n"
    "  n_expert_shared INTEGER NOT NULL, score_func TEXT NOT NULL, norm_topk INTEGER NOT NULL,\n"
    "  w_scale REAL NOT NULL, n_embd INTEGER NOT NULL, n_vocab INTEGER NOT NULL,\n"
    "  n_ff_exp INTEGER NOT NULL, moe_layers TEXT NOT NULL);\n"
    "CREATE TABLE intervention_set(\n"
    "  set_id INTEGER PRIMARY KEY, spec TEXT NOT NULL UNIQUE);\n"
    "CREATE TABLE run(\n"
    "  run_id INTEGER PRIMARY KEY, model_id INTEGER NOT NULL REFERENCES model,\n"
    "  created TEXT NOT NULL, kind TEXT NOT NULL, settings TEXT,\n"
    "  interventions TEXT, set_id INTEGER REFERENCES intervention_set,\n"
    "  program_version TEXT NOT NULL, parent_run_id INTEGER REFERENCES run,\n"
    "  has_probs INTEGER NOT NULL, has_stats INTEGER NOT NULL);\n"
    "CREATE TABLE prompt(\n"
    "  prompt_id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL REFERENCES run,\n"
    "  idx INTEGER NOT NULL, text TEXT NOT NULL, text_bytes BLOB NOT NULL, labels TEXT,\n"
    "  n_tokens INTEGER NOT NULL, UNIQUE(run_id, idx));\n"
    "CREATE TABLE token(\n"
    "  run_id INTEGER NOT NULL, prompt_id INTEGER NOT NULL, pos INTEGER NOT NULL,\n"
    "  token_id INTEGER NOT NULL, piece TEXT NOT NULL, piece_bytes BLOB NOT NULL,\n"
    "  is_generated INTEGER NOT NULL, logprob REAL, entropy REAL,\n"
    "  PRIMARY KEY(prompt_id, pos)) WITHOUT ROWID;\n"
    "CREATE TABLE routing_packed(\n"
    "  run_id INTEGER NOT NULL, prompt_id INTEGER NOT NULL, pos INTEGER NOT NULL,\n"
    "  layer INTEGER NOT NULL, experts BLOB NOT NULL, weights BLOB,\n"
    "  out_maxabs BLOB, out_l2 BLOB,\n"
    "  PRIMARY KEY(prompt_id, pos, layer)) WITHOUT ROWID;\n"
    "CREATE TABLE router_probs(\n"
    "  run_id INTEGER NOT NULL, prompt_id INTEGER NOT NULL, pos INTEGER NOT NULL,\n"
    "  layer INTEGER NOT NULL, probs BLOB NOT NULL, logits BLOB NOT NULL,\n"
    "  PRIMARY KEY(prompt_id, pos, layer)) WITHOUT ROWID;\n"
    "CREATE TABLE hidden_stats(\n"
    "  run_id INTEGER NOT NULL, prompt_id INTEGER NOT NULL, pos INTEGER NOT NULL,\n"
    "  layer INTEGER NOT NULL, maxabs REAL NOT NULL,\n"
    "  PRIMARY KEY(prompt_id, pos, layer)) WITHOUT ROWID;\n"
    "CREATE TABLE analysis(\n"
    "  analysis_id INTEGER PRIMARY KEY, run_id INTEGER REFERENCES run, name TEXT NOT NULL,\n"
    "  table_name TEXT NOT NULL UNIQUE, params TEXT, created TEXT NOT NULL,\n"
    "  program_version TEXT NOT NULL);\n"
    "CREATE TABLE ms_seq(i INTEGER PRIMARY KEY);\n"
    "WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i+1 FROM s WHERE i < 65535)\n"
    "  INSERT INTO ms_seq SELECT i FROM s;\n"
    "CREATE VIEW routing AS SELECT run_id, prompt_id, pos, layer, rank,\n"
    "  " HU16("he") " AS expert,\n"
    "  " F32H("hw") " AS weight\n"
    "  FROM (SELECT r.run_id, r.prompt_id, r.pos, r.layer, s.i AS rank,\n"
    "    hex(substr(r.experts, 2*s.i+1, 2)) AS he, hex(substr(r.weights, 4*s.i+1, 4)) AS hw\n"
    "    FROM routing_packed r JOIN ms_seq s ON s.i < length(r.experts)/2);\n"
    "CREATE VIEW expert_stats AS SELECT run_id, prompt_id, pos, layer, rank,\n"
    "  " HU16("he") " AS expert,\n"
    "  " F32H("hm") " AS maxabs,\n"
    "  " F32H("hl") " AS l2\n"
    "  FROM (SELECT r.run_id, r.prompt_id, r.pos, r.layer, s.i AS rank,\n"
    "    hex(substr(r.experts, 2*s.i+1, 2)) AS he, hex(substr(r.out_maxabs, 4*s.i+1, 4)) AS hm,\n"
    "    hex(substr(r.out_l2, 4*s.i+1, 4)) AS hl\n"
    "    FROM routing_packed r JOIN ms_seq s ON s.i < length(r.experts)/2\n"
    "    WHERE r.out_maxabs IS NOT NULL);\n"
    "CREATE VIEW router_prob AS SELECT run_id, prompt_id, pos, layer, expert,\n"
    "  " F16(HU16("hp")) " AS prob,\n"
    "  " F16(HU16("hz")) " AS logit\n"
    "  FROM (SELECT r.run_id, r.prompt_id, r.pos, r.layer, s.i AS expert,\n"
    "    hex(substr(r.probs, 2*s.i+1, 2)) AS hp, hex(substr(r.logits, 2*s.i+1, 2)) AS hz\n"
    "    FROM router_probs r JOIN ms_seq s ON s.i < length(r.probs)/2);\n"
    "CREATE VIEW expert_load AS SELECT run_id, layer, expert, count(*) AS n,\n"
    "  count(*)*1.0/sum(count(*)) OVER (PARTITION BY run_id, layer) AS frac,\n"
    "  sum(weight) AS weight_sum\n"
    "  FROM routing GROUP BY run_id, layer, expert;\n"
    "CREATE VIEW load_entropy AS SELECT run_id, layer, count(*) AS n_used,\n"
    "  -sum(frac*ln(frac)) AS entropy FROM expert_load GROUP BY run_id, layer;\n"
    "CREATE VIEW routing_entropy AS SELECT run_id, layer, count(*) AS n_tokens,\n"
    "  avg(h) AS mean_entropy FROM (SELECT run_id, prompt_id, pos, layer,\n"
    "    -sum(CASE WHEN prob > 0 THEN prob*ln(prob) ELSE 0 END) AS h\n"
    "    FROM router_prob GROUP BY run_id, prompt_id, pos, layer)\n"
    "  GROUP BY run_id, layer;\n"
    "CREATE VIEW prompt_label AS SELECT p.run_id, p.prompt_id, p.idx, j.key, j.value\n"
    "  FROM prompt p, json_each(p.labels) j WHERE p.labels IS NOT NULL;\n";

int ms_db_fail(MsTraceDb *db, MsError *err, int code, const char *what)
{
    return ms_error_set(err, code, "%s: %s: %s", db->path, what,
                        db->h ? sqlite3_errmsg(db->h) : "cannot open");
}

int ms_db_exec(MsTraceDb *db, const char *sql, MsError *err)
{
    char *msg = NULL;
    if (sqlite3_exec(db->h, sql, NULL, NULL, &msg) != SQLITE_OK) {
        ms_error_set(err, MS_EDB, "%s: %s", db->path, msg ? msg : "SQL error");
        sqlite3_free(msg);
        return MS_EDB;
    }
    return 0;
}

int ms_db_prepare(MsTraceDb *db, const char *sql, sqlite3_stmt **st, MsError *err)
{
    if (sqlite3_prepare_v2(db->h, sql, -1, st, NULL) != SQLITE_OK) {
        *st = NULL;
        return ms_db_fail(db, err, MS_EDB, "prepare");
    }
    return 0;
}

static int pragma_int(MsTraceDb *db, const char *sql, int *out, MsError *err)
{
    sqlite3_stmt *st;
    int rc = ms_db_prepare(db, sql, &st, err);
    if (rc) return rc;
    rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        sqlite3_finalize(st);
        return ms_db_fail(db, err, rc == SQLITE_NOTADB ? MS_EFORMAT : MS_EDB, "read header");
    }
    *out = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return 0;
}

/* Forward migrations: migrations[v] brings version v to v+1.  Version 0 is
 * an empty file. */
static const char *const migrations[] = {
    NULL, /* 0 -> 1: the full v1 schema (ms_db_schema_v1) */
    migrate_1_2,
    migrate_2_3,
    migrate_3_4,
    migrate_4_5,
    migrate_5_6,
};
_Static_assert(MS_ARRAY_LEN(migrations) == MS_TRACE_SCHEMA_VERSION, "one migration per schema version");

static int migrate(MsTraceDb *db, MsError *err)
{
    int v = db->user_version;
    if (v >= MS_TRACE_SCHEMA_VERSION) return 0;
    int rc = ms_db_exec(db, "BEGIN IMMEDIATE", err);
    if (rc) return rc;
    /* re-read inside the write lock: another process may have migrated */
    if ((rc = pragma_int(db, "PRAGMA user_version", &v, err))) goto fail;
    if (v < 0) {
        rc = ms_error_set(err, MS_EFORMAT, "%s: not a moescope trace database (schema version %d)", db->path, v);
        goto fail;
    }
    if (v == 0) {
        int n_obj = 0;
        if ((rc = pragma_int(db, "SELECT count(*) FROM sqlite_schema", &n_obj, err))) goto fail;
        if (n_obj > 0) {
            rc = ms_error_set(err, MS_EFORMAT, "%s: not a moescope trace database (has tables but no schema version)",
                              db->path);
            goto fail;
        }
    }
    for (; v < MS_TRACE_SCHEMA_VERSION; v++) {
        const char *sql = v == 0 ? ms_db_schema_v1 : migrations[v];
        if ((rc = ms_db_exec(db, sql, err))) goto fail;
        char buf[64];
        snprintf(buf, sizeof buf, "PRAGMA user_version = %d", v + 1);
        if ((rc = ms_db_exec(db, buf, err))) goto fail;
    }
    {
        char buf[64];
        snprintf(buf, sizeof buf, "PRAGMA application_id = %d", MS_APPLICATION_ID);
        if ((rc = ms_db_exec(db, buf, err))) goto fail;
    }
    if ((rc = ms_db_exec(db, "COMMIT", err))) goto fail;
    db->user_version = v;
    return 0;
fail:
    sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

MsTraceDb *ms_trace_open(const char *path, int mode, MsError *err)
{
    MsTraceDb *db = calloc(1, sizeof *db);
    if (!db || !(db->path = strdup(path))) {
        free(db);
        ms_error_set(err, MS_ENOMEM, "%s: out of memory", path);
        return NULL;
    }
    db->writable = mode != MS_TRACE_READ;
    if (ms_db_is_pg_uri(path)) {   /* another backend: no file */
        if (ms_pg_open(db, path, mode, err)) goto fail;
        return db;
    }
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        ms_error_set(err, MS_EIO, "%s: is a directory, not a trace database", path);
        goto fail;
    }
    if (mode != MS_TRACE_CREATE && strncmp(path, "file:", 5) != 0 && strcmp(path, ":memory:") != 0 &&
        stat(path, &st) != 0) {
        ms_error_set(err, MS_EIO, "%s: %s", path, strerror(errno));
        goto fail;
    }
    int flags = SQLITE_OPEN_NOMUTEX;
    /* A reader opens read-write when the file lets it, and query_only below
     * keeps it from changing anything: a read-only connection that closes
     * last cannot checkpoint, and leaves the -wal and -shm it made. */
    if (mode == MS_TRACE_READ)
        flags |= strncmp(path, "file:", 5) && access(path, W_OK) == 0 ? SQLITE_OPEN_READWRITE : SQLITE_OPEN_READONLY;
    else flags |= SQLITE_OPEN_READWRITE;
    if (mode == MS_TRACE_CREATE) flags |= SQLITE_OPEN_CREATE;
    int rc;
    if (sqlite3_open_v2(path, &db->h, flags, NULL) != SQLITE_OK) {
        ms_error_set(err, MS_EIO, "%s: cannot open: %s", path, db->h ? sqlite3_errmsg(db->h) : "out of memory");
        goto fail;
    }
    sqlite3_extended_result_codes(db->h, 0);
    sqlite3_busy_timeout(db->h, 10000);
    if ((rc = pragma_int(db, "PRAGMA user_version", &db->user_version, err))) goto fail;
    /* one rule for every command: a file with a schema version must carry
     * moescope's application id (a versioned foreign database is refused,
     * read-only or not, before anything is changed) */
    int app = 0;
    if ((rc = pragma_int(db, "PRAGMA application_id", &app, err))) goto fail;
    if (db->user_version > 0 && app != MS_APPLICATION_ID) {
        ms_error_set(err, MS_EFORMAT, "%s: not a moescope trace database (application id 0x%08x, schema version %d)",
                     path, (unsigned)app, db->user_version);
        goto fail;
    }
    if (db->user_version < 0) {   /* never written by moescope; would index the migrations backwards */
        ms_error_set(err, MS_EFORMAT, "%s: not a moescope trace database (schema version %d)", path,
                     db->user_version);
        goto fail;
    }
    if (db->user_version > MS_TRACE_SCHEMA_VERSION) {
        ms_error_set(err, MS_EUNSUPPORTED, "%s: schema version %d is newer than this program's (%d)",
                     path, db->user_version, MS_TRACE_SCHEMA_VERSION);
        goto fail;
    }
    if (db->writable && db->user_version == 0) {
        /* a foreign SQLite file (tables, no schema version) is refused
         * before the pragmas below change it (WAL rewrites its header);
         * migrate() checks again under the write lock */
        int n_obj = 0;
        if ((rc = pragma_int(db, "SELECT count(*) FROM sqlite_schema", &n_obj, err))) goto fail;
        if (n_obj > 0) {
            ms_error_set(err, MS_EFORMAT, "%s: not a moescope trace database (has tables but no schema version)", path);
            goto fail;
        }
    }
    if (db->writable) {
        /* 16 KiB pages (only settable before the first table): fewer
         * b-tree pages and page writes per routing row */
        if (db->user_version == 0 && ms_db_exec(db, "PRAGMA page_size=16384", err)) goto fail;
        /* WAL: readers proceed while a trace writes; NORMAL sync still
         * keeps every committed transaction across a process kill. */
        if (ms_db_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                           "PRAGMA foreign_keys=ON; PRAGMA cache_size=-32768; PRAGMA mmap_size=1073741824", err)) goto fail;
        if (migrate(db, err)) goto fail;
    } else {
        if (db->user_version == 0) {
            ms_error_set(err, MS_EFORMAT, "%s: not a moescope trace database (no schema)", path);
            goto fail;
        }
        if (db->user_version < MS_TRACE_SCHEMA_VERSION) {
            ms_error_set(err, MS_EUNSUPPORTED, "%s: schema version %d is old; open it once read-write to migrate",
                         path, db->user_version);
            goto fail;
        }
        if (ms_db_exec(db, "PRAGMA query_only=ON", err)) goto fail;
    }
    return db;
fail:
    ms_trace_close(db);
    return NULL;
}

void ms_trace_close(MsTraceDb *db)
{
    if (!db) return;
    if (db->be) db->be->close(db);
    if (db->h) sqlite3_close_v2(db->h);
    free(db->path);
    free(db);
}

bool ms_db_is_pg_uri(const char *path)
{
    return path && (!strncmp(path, "postgresql://", 13) || !strncmp(path, "postgres://", 11));
}

bool ms_trace_path_is_postgresql(const char *path) { return ms_db_is_pg_uri(path); }

int ms_db_unsupported(MsTraceDb *db, MsError *err, const char *what)
{
    return ms_error_set(err, MS_EUNSUPPORTED, "%s: %s is not supported on %s databases yet", db->path, what,
                        db->be ? db->be->name : "SQLite");
}

char *ms_db_schema_tables_sqlite(MsError *err)
{
    MsTraceDb tmp = { .path = (char *)"(schema)", .writable = true };
    char *out = NULL;
    size_t n = 0;
    if (sqlite3_open(":memory:", &tmp.h) != SQLITE_OK) {
        ms_error_set(err, MS_ENOMEM, "schema: out of memory");
        goto done;
    }
    if (migrate(&tmp, err)) goto done;
    sqlite3_stmt *st;
    if (ms_db_prepare(&tmp, "SELECT sql FROM sqlite_schema WHERE type = 'table' ORDER BY rowid", &st, err))
        goto done;
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(st, 0);
        size_t l = strlen(t);
        char *o = realloc(out, n + l + 3);
        if (!o) { free(out); out = NULL; break; }
        out = o;
        memcpy(out + n, t, l);
        memcpy(out + n + l, ";\n", 3);
        n += l + 2;
    }
    sqlite3_finalize(st);
    if (!out) ms_error_set(err, MS_ENOMEM, "schema: out of memory");
done:
    if (tmp.h) sqlite3_close(tmp.h);
    return out;
}

const char *ms_trace_path(const MsTraceDb *db) { return db->path; }
int ms_trace_user_version(const MsTraceDb *db) { return db->user_version; }

/* Decode one UTF-8 sequence at s (n bytes left); returns its length or 0. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    uint32_t cp;
    if (c < 0x80) return c ? 1 : 0;
    if (c >= 0xC2 && c <= 0xDF) { len = 2; cp = c & 0x1F; }
    else if (c >= 0xE0 && c <= 0xEF) { len = 3; cp = c & 0x0F; }
    else if (c >= 0xF0 && c <= 0xF4) { len = 4; cp = c & 0x07; }
    else return 0;
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = cp << 6 | (s[i] & 0x3F);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
        return 0;
    return len;
}

char *ms_db_text_render(const char *s, size_t len, size_t *out_len)
{
    char *o = malloc(len * 3 + 1);
    if (!o) return NULL;
    size_t j = 0;
    for (size_t i = 0; i < len;) {
        size_t l = utf8_len((const unsigned char *)s + i, len - i);
        if (l) {
            memcpy(o + j, s + i, l);
            j += l;
            i += l;
        } else { /* U+FFFD */
            o[j++] = (char)0xEF; o[j++] = (char)0xBF; o[j++] = (char)0xBD;
            i++;
        }
    }
    o[j] = '\0';
    *out_len = j;
    return o;
}
