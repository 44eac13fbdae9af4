/* fuzz-import.c — each foreign trace format (db/import.c).
 *
 * Input: byte 0 picks the format (ids, csv, jsonl) and whether a labels file
 * comes first (bit 2; then bytes 3-4 give its length); byte 1 is --experts
 * (0 = infer), byte 2 --top-k (0 = infer); the rest is the file.  Each
 * input is imported into an empty trace database (in memory, made once
 * and emptied again after each input).  Checks: no crash; a failure is one line naming the
 * file and leaves no run behind (all or nothing); a success leaves one run
 * whose routing reads back without error. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The database stays open across inputs, so all of SQLite's memory comes
 * from glibc: LeakSanitizer does not scan glibc's heap, and an ASan block
 * that only a glibc block points to would look leaked.  The foreign trace
 * is parsed in moescope's own memory, which stays ASan's. */
#define FZ_SMALL ((size_t)-1)
#include "fuzz-memdb.h"
#include "trace.h"

static unsigned char *tmpl;
static sqlite3_int64 tmpl_n;

/* One database for the whole session.  Opening a trace database made
 * SQLite parse its schema (tables, indexes, the views) for every input,
 * two thirds of the time; instead the tables an import fills are emptied
 * after each input (rowids then start at 1 again, as in a fresh file), so
 * every input still meets the same empty trace database. */
static sqlite3 *keep;
static MsTraceDb *tdb;
static char uri[96];
static char *empty_sql;   /* "DELETE FROM t; ..." for every table but ms_seq */

static void close_db(void);

static void open_db(void)
{
    keep = fz_memdb("fuzz-import", tmpl, (size_t)tmpl_n, uri, sizeof uri);
    MsError e = { 0 };
    tdb = keep ? ms_trace_open(uri, MS_TRACE_WRITE, &e) : NULL;
    if (!tdb) { fprintf(stderr, "fuzz-import: template: %s\n", e.msg); abort(); }
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(keep, "SELECT group_concat('DELETE FROM \"' || name || '\";', ' ') FROM sqlite_master "
                                 "WHERE type = 'table' AND name <> 'ms_seq' AND name NOT LIKE 'sqlite%'",
                           -1, &st, NULL) != SQLITE_OK || sqlite3_step(st) != SQLITE_ROW ||
        !(empty_sql = strdup((const char *)sqlite3_column_text(st, 0)))) abort();
    sqlite3_finalize(st);
    atexit(close_db);
}

static void close_db(void)
{
    ms_trace_close(tdb);
    sqlite3_close(keep);
    free(empty_sql);
}

static void empty_db(void)
{
    char *msg = NULL;
    if (sqlite3_exec(keep, empty_sql, NULL, NULL, &msg) != SQLITE_OK) {
        fprintf(stderr, "fuzz-import: emptying the database: %s\n", msg);
        abort();
    }
}

static void init(void)
{
    fz_sqlite_init();
    /* made on disk (a fresh database sets its page size before the first
     * table, which the memdb VFS does not take), then held as an image */
    char dir[] = "/tmp/fuzz-import.XXXXXX", path[64];
    if (!mkdtemp(dir)) abort();
    snprintf(path, sizeof path, "%s/t.db", dir);
    MsError e = { 0 };
    MsTraceDb *db = ms_trace_open(path, MS_TRACE_CREATE, &e);
    if (!db) {
        fprintf(stderr, "fuzz-import: template: %s\n", e.msg);
        abort();
    }
    ms_trace_close(db);   /* checkpoints the WAL into the file */
    /* Copying the 850 KB image into every input's database (page faults,
     * ASan's large-block mmaps) was most of the time.  So the template keeps
     * only the rows 0-255 of ms_seq, the number table the SQL views join
     * (256 covers any expert count an input can give: byte 1), and 1 KiB
     * pages instead of the trace writer's 16 KiB (each table and index takes
     * at least a page): 50 KB.  Neither is on the import's path. */
    sqlite3 *raw = NULL;
    if (sqlite3_open(path, &raw) != SQLITE_OK ||
        sqlite3_exec(raw, "DELETE FROM ms_seq WHERE i > 255; PRAGMA journal_mode=DELETE; "
                          "PRAGMA page_size=1024; VACUUM;", NULL, NULL, NULL) != SQLITE_OK) {
        fprintf(stderr, "fuzz-import: template: %s\n", sqlite3_errmsg(raw));
        abort();
    }
    sqlite3_close(raw);
    FILE *f = fopen(path, "rb");
    if (!f || fseek(f, 0, SEEK_END) || (tmpl_n = ftell(f)) <= 0 || fseek(f, 0, SEEK_SET)) abort();
    tmpl = malloc((size_t)tmpl_n);
    if (!tmpl || fread(tmpl, 1, (size_t)tmpl_n, f) != (size_t)tmpl_n) abort();
    fclose(f);
    remove(path);
    rmdir(dir);
    open_db();
}
#define FUZZ_INIT init
#include "fuzz.h"

static void check_err(const MsError *e, const char *file, const char *labels, const char *uri)
{
    const char *m = e->msg;
    bool named = (file && !strncmp(m, file, strlen(file))) || (labels && !strncmp(m, labels, strlen(labels))) ||
                 !strncmp(m, uri, strlen(uri));
    if (!m[0] || strchr(m, '\n') || !named) {
        fprintf(stderr, "fuzz-import: bad error message '%s'\n", m);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3) return 0;
    static const MsImportFormat fmts[3] = { MS_IMPORT_IDS, MS_IMPORT_CSV, MS_IMPORT_JSONL };
    MsImportFormat fmt = fmts[(data[0] & 3) % 3];
    MsImportOptions o = { .n_expert = data[1], .top_k = data[2] % 9, .source_name = "fuzz" };
    if (o.n_expert && o.top_k > o.n_expert) o.top_k = 0;
    size_t at = 3;
    char lpath[64] = "";
    int lfd = -1;
    if (data[0] & 4) {
        if (size < 5) return 0;
        size_t ll = (size_t)data[3] | (size_t)data[4] << 8;
        at = 5;
        if (ll > size - at) ll = size - at;
        lfd = fz_memfd(data + at, ll, lpath, sizeof lpath);
        if (lfd < 0) return 0;
        o.labels_path = lpath;
        at += ll;
    }
    char fpath[64];
    int fd = fz_memfd(data + at, size - at, fpath, sizeof fpath);
    if (fd < 0) {
        if (lfd >= 0) close(lfd);
        return 0;
    }
    MsError e = { 0 };
    MsTraceDb *db = tdb;
    int64_t run = 0;
    int rc = ms_trace_import(db, fmt, fpath, &o, &run, &e);
    if (getenv("MS_FUZZ_VERBOSE")) fprintf(stderr, "import: %s\n", rc < 0 ? e.msg : "ok");
    int64_t *runs = NULL;
    int nr = -1;
    MsError e2 = { 0 };
    if (ms_trace_runs(db, &runs, &nr, &e2) != 0) { fprintf(stderr, "fuzz-import: %s\n", e2.msg); abort(); }
    if (rc < 0) {
        check_err(&e, fpath, o.labels_path, uri);
        if (nr != 0) {
            fprintf(stderr, "fuzz-import: failed import ('%s') left %d runs\n", e.msg, nr);
            abort();
        }
    } else {
        if (nr != 1 || runs[0] != run) { fprintf(stderr, "fuzz-import: %d runs after an import\n", nr); abort(); }
        MsTraceRunInfo ri;
        if (ms_trace_run_info(db, run, &ri, &e2) != 0) { fprintf(stderr, "fuzz-import: %s\n", e2.msg); abort(); }
        if (ri.n_prompts < 1 || ri.model.n_expert < 1 || ri.model.n_expert_used < 1) {
            fprintf(stderr, "fuzz-import: imported run with %lld prompts, E %d, k %d\n", (long long)ri.n_prompts,
                    ri.model.n_expert, ri.model.n_expert_used);
            abort();
        }
        ms_trace_run_info_clear(&ri);
        MsTraceCursor *c = ms_trace_routing(db, run, 0, &e2);
        MsTraceRoute r[64];
        int n;
        while (c && (n = ms_trace_routing_next(c, r, 64, &e2)) > 0) {}
        if (!c || n < 0) { fprintf(stderr, "fuzz-import: reading back: %s\n", e2.msg); abort(); }
        ms_trace_cursor_free(c);
    }
    free(runs);
    empty_db();
    close(fd);
    if (lfd >= 0) close(lfd);
    return 0;
}
