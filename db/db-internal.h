/* db-internal.h — shared between the db/ sources only (not installed). */
#ifndef MS_DB_INTERNAL_H
#define MS_DB_INTERNAL_H

#include <sqlite3.h>

#include "trace.h"

struct MsTraceDb {
    sqlite3 *h;
    char *path;
    int user_version;
    bool writable;
};

/* err <- "PATH: what: sqlite message", returns code. */
int ms_db_fail(MsTraceDb *db, MsError *err, int code, const char *what);
/* Run SQL without results; errors reported like ms_db_fail. */
int ms_db_exec(MsTraceDb *db, const char *sql, MsError *err);
int ms_db_prepare(MsTraceDb *db, const char *sql, sqlite3_stmt **st, MsError *err);
/* A result table or column name: letters, digits, '_', not starting with a
 * digit, at most 64 bytes (safe to quote into SQL). */
bool ms_db_ident_ok(const char *s);

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
