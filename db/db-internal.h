/* db-internal.h — shared between the db/ sources only (not installed). */
#ifndef MS_DB_INTERNAL_H
#define MS_DB_INTERNAL_H

#include <sqlite3.h>

#include "trace.h"

typedef struct MsDbBackend MsDbBackend;

/* Rows of a backend's exec: [n_rows][n_cols] values (integers, reals,
 * text, blobs; NULL as MS_COL_NULL), bytes owned by priv. */
typedef struct {
    int n_rows, n_cols;
    MsTraceValue *v;
    void *priv;
} MsDbRows;

struct MsTraceDb {
    sqlite3 *h;                /* NULL when be is set */
    char *path;
    int user_version;
    bool writable;
    const MsDbBackend *be;     /* NULL: SQLite (the code in these files); else another backend */
    void *be_db;               /* that backend's connection state */
};

/* Every db/ object (cursor, writer, result) starts with its MsTraceDb *:
 * the public functions find a backend object's database through it. */
static inline MsTraceDb *ms_db_of(const void *obj) { return *(MsTraceDb *const *)obj; }

/* Rows of one prompt as the writer hands them to storage, in the order
 * they are written (tokens by pos, then routing, probs and hidden stats by
 * (pos, layer)).  Blobs are the packed little-endian columns of
 * docs/schema.md; a NULL blob is SQL NULL.  Each returns 0 or MS_E*. */
typedef struct {
    int (*prompt)(void *u, int64_t run_id, int index, const char *text, size_t text_len, const char *bytes,
                  size_t n_bytes, const char *labels, int64_t n_tokens, const char *worker, int64_t *prompt_id,
                  MsError *err);
    int (*token)(void *u, int64_t run_id, int64_t prompt_id, int pos, int32_t token_id, const char *piece,
                 size_t piece_len, const char *bytes, size_t n_bytes, bool is_generated, float logprob,
                 float entropy, MsError *err);
    int (*route)(void *u, int64_t run_id, int64_t prompt_id, int pos, int layer, int k,
                 const unsigned char *experts, const unsigned char *weights, const unsigned char *maxabs,
                 const unsigned char *l2, const unsigned char *argmax, MsError *err);
    int (*probs)(void *u, int64_t run_id, int64_t prompt_id, int pos, int layer, int n_expert,
                 const unsigned char *probs, const unsigned char *logits, MsError *err);
    int (*hidden)(void *u, int64_t run_id, int64_t prompt_id, int pos, int layer, double maxabs, int channel,
                  MsError *err);
} MsDbSink;

/* A storage backend other than SQLite (PostgreSQL: db/pg.c).  The public
 * functions of trace.h check db->be first and hand the call over; what a
 * backend does not support is NULL (MS_EUNSUPPORTED with a message). */
struct MsDbBackend {
    const char *name;
    void (*close)(MsTraceDb *db);
    int64_t (*model_add)(MsTraceDb *db, const MsTraceModel *m, MsError *err);
    int64_t (*run_new)(MsTraceDb *db, const MsTraceRunDesc *d, MsError *err);
    int64_t (*run_find)(MsTraceDb *db, const MsTraceRunDesc *d, MsError *err);
    int64_t (*run_join)(MsTraceDb *db, const MsTraceRunDesc *d, bool any_status, MsError *err);
    int (*run_set_status)(MsTraceDb *db, int64_t run_id, const char *status, MsError *err);
    int (*runs)(MsTraceDb *db, int64_t **ids, int *n, MsError *err);
    int (*run_info)(MsTraceDb *db, int64_t run_id, MsTraceRunInfo *out, MsError *err);
    int64_t (*prompt_lookup)(MsTraceDb *db, int64_t run_id, int index, MsError *err);
    int (*prompt_get)(MsTraceDb *db, int64_t run_id, int index, MsTracePromptInfo *out, MsError *err);
    int (*changed)(MsTraceDb *db, uint64_t *stamp, MsError *err);
    /* writer: storage state per writer, and one prompt in one transaction */
    void *(*writer_new)(MsTraceDb *db, int64_t run_id, MsError *err);
    void (*writer_free)(void *u);
    const MsDbSink *sink;
    int (*writer_begin)(void *u, MsError *err);
    int (*writer_end)(void *u, bool ok, MsError *err);   /* commit (ok) or roll back */
    /* cursors: the backend's own objects, freed by cursor_free */
    MsTraceCursor *(*prompts)(MsTraceDb *db, int64_t run_id, MsError *err);
    int (*prompts_next)(MsTraceCursor *c, MsTracePrompt *out, MsError *err);
    MsTraceCursor *(*tokens)(MsTraceDb *db, int64_t run_id, int64_t prompt_id, MsError *err);
    int (*tokens_next)(MsTraceCursor *c, MsTraceToken *out, MsError *err);
    MsTraceCursor *(*routing)(MsTraceDb *db, int64_t run_id, int64_t prompt_lo, int64_t prompt_hi, MsError *err);
    int (*routing_next)(MsTraceCursor *c, MsTraceRoute *buf, int cap, MsError *err);
    int (*routing_next_packed)(MsTraceCursor *c, MsTraceRoutePacked *out, MsError *err);
    MsTraceCursor *(*probs)(MsTraceDb *db, int64_t run_id, int64_t prompt_id, MsError *err);
    int (*probs_next)(MsTraceCursor *c, MsTraceProbs *out, MsError *err);
    MsTraceCursor *(*hidden)(MsTraceDb *db, int64_t run_id, int64_t prompt_id, MsError *err);
    int (*hidden_next)(MsTraceCursor *c, MsTraceHidden *buf, int cap, MsError *err);
    MsTraceCursor *(*analyses)(MsTraceDb *db, int64_t run_id, MsError *err);
    int (*analyses_next)(MsTraceCursor *c, MsTraceAnalysis *out, MsError *err);
    MsTraceCursor *(*table)(MsTraceDb *db, const char *table, int64_t run_id, MsError *err);
    int (*table_columns)(const MsTraceCursor *c, const MsColumn **cols);
    int (*table_next)(MsTraceCursor *c, const MsTraceValue **vals, MsError *err);
    void (*cursor_free)(MsTraceCursor *c);
    int (*query)(MsTraceDb *db, const char *sql, MsTraceRowFn row, void *user, MsError *err);
    /* result tables: the backend's MsTraceResult */
    MsTraceResult *(*result_new)(MsTraceDb *db, int64_t run_id, const char *analysis, const char *params_json,
                                 const char *table, const MsColumn *cols, int n_cols, MsError *err);
    int (*result_value)(MsTraceResult *r, int col, MsColType type, int64_t i, double d, const char *s);
    int (*result_row)(MsTraceResult *r, MsError *err);
    int (*result_commit)(MsTraceResult *r, MsError *err);
    void (*result_free)(MsTraceResult *r);
    int (*tx_begin)(MsTraceDb *db, MsError *err);
    int (*tx_commit)(MsTraceDb *db, MsError *err);
    void (*tx_rollback)(MsTraceDb *db);
    /* every table into dst, an empty SQLite database of the same schema
     * version, as one consistent snapshot (export goes through it) */
    int (*snapshot)(MsTraceDb *db, MsTraceDb *dst, MsError *err);
    /* one statement with parameters (SQLite's ?N numbering; values of
     * type MS_COL_NULL are NULL, a NaN real too); rows (when out is not
     * NULL) as values borrowed from out until rows_free */
    int (*exec)(MsTraceDb *db, const char *sql, int n, const MsTraceValue *params, MsDbRows *out, MsError *err);
    void (*rows_free)(MsDbRows *rows);
    /* import: a new "imported" model row (never shared), and its shape once known */
    int64_t (*import_model)(MsTraceDb *db, const char *file_name, MsError *err);
    int (*import_model_shape)(MsTraceDb *db, int64_t model_id, int n_layer, int n_expert, int k,
                              const char *moe_layers, MsError *err);
};

/* True when path names a PostgreSQL database (a postgresql:// or
 * postgres:// URI) rather than a file. */
bool ms_db_is_pg_uri(const char *path);
/* Open a PostgreSQL database (db/pg.c; without libpq, pg-none.c refuses).
 * Fills db->be, db->be_db, user_version; creates the schema when writable. */
int ms_pg_open(MsTraceDb *db, const char *uri, int mode, MsError *err);
/* err <- "PATH: WHAT is not supported on BACKEND databases yet". */
int ms_db_unsupported(MsTraceDb *db, MsError *err, const char *what);
/* Two run settings JSON texts equal but for their "prompts" member (the
 * prompt file as named); NULL equals NULL; text that is not JSON compares
 * as text. */
bool ms_db_settings_same(const char *a, const char *b);
/* The reserved (core) table and view names an analysis result cannot use. */
bool ms_db_reserved_name(const char *t);
/* The SQLite DDL of the current schema's tables (CREATE TABLE statements
 * as SQLite stores them after every migration), one malloc'd string
 * joined by ";\n" — the one description another dialect is generated from. */
char *ms_db_schema_tables_sqlite(MsError *err);

/* err <- "PATH: what: sqlite message", returns code. */
int ms_db_fail(MsTraceDb *db, MsError *err, int code, const char *what);
/* Run SQL without results; errors reported like ms_db_fail. */
int ms_db_exec(MsTraceDb *db, const char *sql, MsError *err);
int ms_db_prepare(MsTraceDb *db, const char *sql, sqlite3_stmt **st, MsError *err);
/* A result table or column name: letters, digits, '_', not starting with a
 * digit, at most 64 bytes (safe to quote into SQL). */
bool ms_db_ident_ok(const char *s);

/* CREATE TABLE text of an analysis result table in SQLite (malloc'd; the
 * caller checked the names), shared by result tables and export. */
char *ms_db_result_ddl(const char *table, const MsColumn *cols, int n_cols);

/* Little-endian packing of the compact columns (see docs/schema.md). */
static inline void ms_put_u16(unsigned char *p, uint32_t v) { p[0] = (unsigned char)v; p[1] = (unsigned char)(v >> 8); }
static inline uint32_t ms_get_u16(const unsigned char *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
static inline void ms_put_f32(unsigned char *p, float f)
{
    uint32_t u = ms_fp32_to_bits(f);
    p[0] = (unsigned char)u; p[1] = (unsigned char)(u >> 8);
    p[2] = (unsigned char)(u >> 16); p[3] = (unsigned char)(u >> 24);
}
static inline float ms_get_f32(const unsigned char *p)
{
    return ms_fp32_from_bits((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
}

/* Piece/text columns: valid UTF-8 without NUL is stored as is; otherwise a
 * lossy rendering (U+FFFD per bad byte or NUL).  Returns malloc'd text. */
char *ms_db_text_render(const char *s, size_t len, size_t *out_len);

/* Logical tables, in dependency order, for export. */
typedef struct {
    const char *name;
    const char *select_sql;   /* logical rows, deterministic order */
} MsDbLogicalTable;
extern const MsDbLogicalTable ms_db_logical_tables[];
extern const int ms_db_n_logical_tables;

/* The schema DDL for version 1 (used by create and the sql export). */
extern const char *const ms_db_schema_v1;

#endif
