/* test-faults.c — the trace store under injected faults (TAP).
 *
 * Everything injected here lives in this test program only; nothing of it
 * is compiled into the library or the moescope binary:
 *  - a SQLite VFS wrapping the default one, registered as the default VFS
 *    of this process, that fails the n-th xWrite / xSync / xTruncate (either
 *    that one alone, an I/O error, or it and every later one, a full disk);
 *  - RLIMIT_FSIZE for the files export writes with stdio (a write past the
 *    limit fails with EFBIG as on a full disk);
 *  - allocation failure: SQLite's allocator (SQLITE_CONFIG_MALLOC), jansson's
 *    (json_set_alloc_funcs) and the project's own malloc / calloc / realloc /
 *    strdup / strndup calls, redirected by the linker (-Wl,--wrap, see
 *    tests/meson.build) to the wrappers below, which call the real ones (the
 *    sanitizer's, under ASan).  Allocations inside other shared libraries
 *    (libc's own, zlib, OpenBLAS) are not failed.
 *
 * Each fault is stepped over every n of the operation: a trace (open,
 * schema, model, run, prompts, status), analysis result tables, export, the
 * trace writer (allocations) and the analysis readers (allocations).  After
 * each: the call fails with a one-line message naming the file, or (a fault
 * SQLite absorbs) succeeds with the right content; PRAGMA integrity_check is
 * ok; every prompt committed before the fault is whole; and a resume (or a
 * re-run) completes to exactly the content of an unfaulted run. */
#include <errno.h>
#include <execinfo.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "jobs.h"
#include "mtest.h"
#include "quant.h"
#include "run.h"
#include "synth.h"

/* Under AddressSanitizer (3-5 times slower) every 3rd injection point is
 * stepped; the release build steps every one. */
#if defined(__SANITIZE_ADDRESS__)
#define SAN_STRIDE 3
#else
#define SAN_STRIDE 1
#endif

/* --------------------------------------------------------- fault state */

/* The test's one injection point (a test program may keep global state). */
static struct {
    bool armed;
    long count;        /* operations seen while armed */
    long fail_at;      /* 1-based; 0 = never */
    bool persistent;   /* fail fail_at and every later one (a full disk) */
    long fired;        /* operations failed */
} io, mem;

static void fault_arm(typeof(io) *f, long at, bool persistent)
{
    f->count = 0;
    f->fired = 0;
    f->fail_at = at;
    f->persistent = persistent;
    f->armed = true;
}
static void fault_disarm(typeof(io) *f) { f->armed = false; }
static bool fault_hit(typeof(io) *f)
{
    if (!f->armed) return false;
    f->count++;
    if (f->fail_at > 0 && (f->count == f->fail_at || (f->persistent && f->count > f->fail_at))) {
        f->fired++;
        if (getenv("MS_FAULTS_TRAP")) {   /* debugging: where the fault hit */
            void *bt[24];
            backtrace_symbols_fd(bt, backtrace(bt, 24), 2);
        }
        return true;
    }
    return false;
}

/* ------------------------------------------------------------ the VFS */

typedef struct {
    sqlite3_file base;
    sqlite3_file *real;   /* follows this struct in the same allocation */
} FFile;

static sqlite3_vfs *real_vfs;
static sqlite3_vfs fault_vfs;
static sqlite3_io_methods fault_io;

#define REAL(f) (((FFile *)(f))->real)
static int f_close(sqlite3_file *f)
{
    int rc = REAL(f)->pMethods ? REAL(f)->pMethods->xClose(REAL(f)) : SQLITE_OK;
    f->pMethods = NULL;
    return rc;
}
static int f_read(sqlite3_file *f, void *p, int n, sqlite3_int64 off) { return REAL(f)->pMethods->xRead(REAL(f), p, n, off); }
static int f_write(sqlite3_file *f, const void *p, int n, sqlite3_int64 off)
{
    if (fault_hit(&io)) return io.persistent ? SQLITE_FULL : SQLITE_IOERR_WRITE;
    return REAL(f)->pMethods->xWrite(REAL(f), p, n, off);
}
static int f_truncate(sqlite3_file *f, sqlite3_int64 size)
{
    if (fault_hit(&io)) return SQLITE_IOERR_TRUNCATE;
    return REAL(f)->pMethods->xTruncate(REAL(f), size);
}
/* Counted, and failed when its turn comes; otherwise not performed: power
 * loss is not simulated here, and thousands of fsyncs on a shared disk
 * would make the test slow. */
static int f_sync(sqlite3_file *f, int flags)
{
    (void)f;
    (void)flags;
    return fault_hit(&io) ? SQLITE_IOERR_FSYNC : SQLITE_OK;
}
static int f_size(sqlite3_file *f, sqlite3_int64 *s) { return REAL(f)->pMethods->xFileSize(REAL(f), s); }
static int f_lock(sqlite3_file *f, int l) { return REAL(f)->pMethods->xLock(REAL(f), l); }
static int f_unlock(sqlite3_file *f, int l) { return REAL(f)->pMethods->xUnlock(REAL(f), l); }
static int f_reserved(sqlite3_file *f, int *r) { return REAL(f)->pMethods->xCheckReservedLock(REAL(f), r); }
static int f_fcntl(sqlite3_file *f, int op, void *a) { return REAL(f)->pMethods->xFileControl(REAL(f), op, a); }
static int f_sector(sqlite3_file *f) { return REAL(f)->pMethods->xSectorSize(REAL(f)); }
static int f_devchar(sqlite3_file *f) { return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f)); }
static int f_shmmap(sqlite3_file *f, int pg, int sz, int ext, void volatile **p)
{
    return REAL(f)->pMethods->xShmMap(REAL(f), pg, sz, ext, p);
}
static int f_shmlock(sqlite3_file *f, int off, int n, int flags) { return REAL(f)->pMethods->xShmLock(REAL(f), off, n, flags); }
static void f_shmbarrier(sqlite3_file *f) { REAL(f)->pMethods->xShmBarrier(REAL(f)); }
static int f_shmunmap(sqlite3_file *f, int del) { return REAL(f)->pMethods->xShmUnmap(REAL(f), del); }
static int f_fetch(sqlite3_file *f, sqlite3_int64 off, int n, void **pp) { return REAL(f)->pMethods->xFetch(REAL(f), off, n, pp); }
static int f_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p) { return REAL(f)->pMethods->xUnfetch(REAL(f), off, p); }

static int v_open(sqlite3_vfs *v, const char *name, sqlite3_file *f, int flags, int *out)
{
    (void)v;
    FFile *ff = (FFile *)f;
    ff->real = (sqlite3_file *)(ff + 1);
    memset(ff->real, 0, (size_t)real_vfs->szOsFile);
    int rc = real_vfs->xOpen(real_vfs, name, ff->real, flags, out);
    f->pMethods = ff->real->pMethods ? &fault_io : NULL;
    return rc;
}
static int v_delete(sqlite3_vfs *v, const char *n, int s) { (void)v; return real_vfs->xDelete(real_vfs, n, s); }
static int v_access(sqlite3_vfs *v, const char *n, int fl, int *r) { (void)v; return real_vfs->xAccess(real_vfs, n, fl, r); }
static int v_full(sqlite3_vfs *v, const char *n, int c, char *o) { (void)v; return real_vfs->xFullPathname(real_vfs, n, c, o); }
static void *v_dlopen(sqlite3_vfs *v, const char *n) { (void)v; return real_vfs->xDlOpen(real_vfs, n); }
static void v_dlerror(sqlite3_vfs *v, int n, char *m) { (void)v; real_vfs->xDlError(real_vfs, n, m); }
static void (*v_dlsym(sqlite3_vfs *v, void *h, const char *s))(void) { (void)v; return real_vfs->xDlSym(real_vfs, h, s); }
static void v_dlclose(sqlite3_vfs *v, void *h) { (void)v; real_vfs->xDlClose(real_vfs, h); }
static int v_random(sqlite3_vfs *v, int n, char *o) { (void)v; return real_vfs->xRandomness(real_vfs, n, o); }
static int v_sleep(sqlite3_vfs *v, int us) { (void)v; return real_vfs->xSleep(real_vfs, us); }
static int v_time(sqlite3_vfs *v, double *t) { (void)v; return real_vfs->xCurrentTime(real_vfs, t); }
static int v_lasterr(sqlite3_vfs *v, int n, char *m) { (void)v; return real_vfs->xGetLastError(real_vfs, n, m); }
static int v_time64(sqlite3_vfs *v, sqlite3_int64 *t) { (void)v; return real_vfs->xCurrentTimeInt64(real_vfs, t); }

static void fault_vfs_register(void)
{
    real_vfs = sqlite3_vfs_find(NULL);
    fault_io = (sqlite3_io_methods){ 3, f_close, f_read, f_write, f_truncate, f_sync, f_size, f_lock, f_unlock,
        f_reserved, f_fcntl, f_sector, f_devchar, f_shmmap, f_shmlock, f_shmbarrier, f_shmunmap, f_fetch, f_unfetch };
    fault_vfs = (sqlite3_vfs){ 2, (int)sizeof(FFile) + real_vfs->szOsFile, real_vfs->mxPathname, NULL, "msfault", NULL,
        v_open, v_delete, v_access, v_full, v_dlopen, v_dlerror, v_dlsym, v_dlclose, v_random, v_sleep, v_time,
        v_lasterr, v_time64, NULL, NULL, NULL };
    sqlite3_vfs_register(&fault_vfs, 1);
}

/* --------------------------------------------------------- allocations */

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t s);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
char *__real_strndup(const char *s, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t s);
void *__wrap_realloc(void *p, size_t n);
char *__wrap_strdup(const char *s);
char *__wrap_strndup(const char *s, size_t n);

void *__wrap_malloc(size_t n) { return fault_hit(&mem) ? NULL : __real_malloc(n); }
void *__wrap_calloc(size_t n, size_t s) { return fault_hit(&mem) ? NULL : __real_calloc(n, s); }
void *__wrap_realloc(void *p, size_t n) { return fault_hit(&mem) ? NULL : __real_realloc(p, n); }
char *__wrap_strdup(const char *s) { return fault_hit(&mem) ? NULL : __real_strdup(s); }
char *__wrap_strndup(const char *s, size_t n) { return fault_hit(&mem) ? NULL : __real_strndup(s, n); }

static sqlite3_mem_methods real_mem;
static void *sq_malloc(int n) { return fault_hit(&mem) ? NULL : real_mem.xMalloc(n); }
static void *sq_realloc(void *p, int n) { return fault_hit(&mem) ? NULL : real_mem.xRealloc(p, n); }
static void *js_malloc(size_t n) { return fault_hit(&mem) ? NULL : __real_malloc(n); }
static void js_free(void *p) { free(p); }

static void fault_alloc_install(void)
{
    sqlite3_config(SQLITE_CONFIG_GETMALLOC, &real_mem);
    sqlite3_mem_methods m = real_mem;
    m.xMalloc = sq_malloc;
    m.xRealloc = sq_realloc;
    sqlite3_config(SQLITE_CONFIG_MALLOC, &m);
    json_set_alloc_funcs(js_malloc, js_free);
}

/* ------------------------------------------------------------- helpers */

static char dir[256];

static void rm_db(const char *path)
{
    char b[1024];
    unlink(path);
    snprintf(b, sizeof b, "%s-wal", path);
    unlink(b);
    snprintf(b, sizeof b, "%s-shm", path);
    unlink(b);
    snprintf(b, sizeof b, "%s-journal", path);
    unlink(b);
}

/* 64-bit FNV-1a over every value of every row of the queries (NULL-terminated
 * list); -1 when a query fails. */
static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

static uint64_t digest_h(sqlite3 *h, const char *const *sqls)
{
    uint64_t d = 14695981039346656037ull;
    for (int q = 0; sqls[q]; q++) {
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2(h, sqls[q], -1, &st, NULL) != SQLITE_OK) return (uint64_t)-1;
        int rc;
        int64_t rows = 0;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            rows++;
            for (int c = 0; c < sqlite3_column_count(st); c++) {
                int t = sqlite3_column_type(st, c);
                d = fnv(d, &t, sizeof t);
                const void *b = sqlite3_column_blob(st, c);
                d = fnv(d, b, (size_t)sqlite3_column_bytes(st, c));
            }
        }
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE) return (uint64_t)-1;
        d = fnv(d, &rows, sizeof rows);
    }
    return d;
}

static const char *const trace_content[] = {
    "SELECT r.kind, r.status, r.settings, r.has_probs, r.has_stats, m.sha256 FROM run r JOIN model m USING(model_id)",
    "SELECT idx, text, text_bytes, labels, n_tokens FROM prompt ORDER BY idx",
    "SELECT p.idx, t.pos, t.token_id, t.piece_bytes, t.is_generated, t.logprob, t.entropy FROM token t "
    "JOIN prompt p USING(prompt_id) ORDER BY p.idx, t.pos",
    "SELECT p.idx, r.pos, r.layer, r.experts, r.weights, r.out_maxabs, r.out_l2, r.out_argmax FROM routing_packed r "
    "JOIN prompt p USING(prompt_id) ORDER BY p.idx, r.pos, r.layer",
    "SELECT p.idx, r.pos, r.layer, r.probs, r.logits FROM router_probs r JOIN prompt p USING(prompt_id) "
    "ORDER BY p.idx, r.pos, r.layer",
    "SELECT p.idx, h.pos, h.layer, h.maxabs, h.channel FROM hidden_stats h JOIN prompt p USING(prompt_id) "
    "ORDER BY p.idx, h.pos, h.layer",
    NULL
};

/* Checks on a database after a fault, opened without the fault (plain
 * sqlite3, read-only).  Returns a static description of the first problem,
 * NULL when fine. *n_prompts: committed prompts. */
static int n_moe = 4;
static const char *check_db(const char *path, int64_t *n_prompts)
{
    static char why[512];
    sqlite3 *h;
    *n_prompts = 0;
    if (sqlite3_open_v2(path, &h, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
        snprintf(why, sizeof why, "cannot open: %s", sqlite3_errmsg(h));
        sqlite3_close(h);
        return why;
    }
    sqlite3_stmt *st;
    const char *res = NULL;
    if (sqlite3_prepare_v2(h, "PRAGMA integrity_check", -1, &st, NULL) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW || strcmp((const char *)sqlite3_column_text(st, 0), "ok")) {
        snprintf(why, sizeof why, "integrity_check: %s", sqlite3_errmsg(h));
        res = why;
    }
    sqlite3_finalize(st);
    if (res) goto out;
    /* a database the fault hit before its schema: nothing to check */
    if (sqlite3_prepare_v2(h, "SELECT count(*) FROM sqlite_schema WHERE name = 'prompt'", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0) == 0) {
        sqlite3_finalize(st);
        goto out;
    }
    sqlite3_finalize(st);
    char q[1024];
    snprintf(q, sizeof q, "SELECT count(*), (SELECT count(*) FROM prompt p WHERE "
             "(SELECT count(*) FROM token t WHERE t.prompt_id = p.prompt_id) <> p.n_tokens OR "
             "(SELECT count(*) FROM routing_packed r WHERE r.prompt_id = p.prompt_id) <> p.n_tokens * %d OR "
             "(SELECT count(*) FROM hidden_stats r WHERE r.prompt_id = p.prompt_id) <> p.n_tokens * %d OR "
             "(SELECT count(*) FROM router_probs r WHERE r.prompt_id = p.prompt_id) <> p.n_tokens * %d) FROM prompt",
             n_moe, n_moe, n_moe);
    if (sqlite3_prepare_v2(h, q, -1, &st, NULL) != SQLITE_OK || sqlite3_step(st) != SQLITE_ROW) {
        snprintf(why, sizeof why, "count prompts: %s", sqlite3_errmsg(h));
        res = why;
    } else {
        *n_prompts = sqlite3_column_int64(st, 0);
        if (sqlite3_column_int64(st, 1)) {
            snprintf(why, sizeof why, "%lld incomplete prompts", (long long)sqlite3_column_int64(st, 1));
            res = why;
        }
    }
    sqlite3_finalize(st);
out:
    sqlite3_close(h);
    return res;
}

/* A message a user reads: one line, naming the file. */
static bool one_line(const MsError *e, const char *name)
{
    return e->msg[0] && !strchr(e->msg, '\n') && strstr(e->msg, name) != NULL;
}

/* -------------------------------------------------------- the trace */

static MsModel *model;
static char model_path[600], prompts_path[600];
static MsPrompt *prompts;
static size_t n_prompts;

static long fired_before_close;   /* faults injected before the trace's close */

static int trace(const char *dbpath, MsTraceJobResult *res, MsError *err)
{
    MsTraceJob j;
    ms_trace_job_init(&j);
    j.prompts_name = prompts_path;
    j.n_gen = 2;
    j.probs = true;
    j.stats = true;
    j.resume = true;
    j.n_threads = 1;
    MsTraceDb *db = ms_trace_open(dbpath, MS_TRACE_CREATE, err);
    if (!db) {
        memset(res, 0, sizeof *res);
        return err->code ? err->code : MS_EDB;
    }
    int rc = ms_trace_job_run(&j, model, model_path, prompts, n_prompts, db, res, err);
    fired_before_close = io.fired;
    ms_trace_close(db);
    return rc;
}

static uint64_t digest_file(const char *path, const char *const *sqls)
{
    sqlite3 *h;
    uint64_t d = (uint64_t)-1;
    if (sqlite3_open_v2(path, &h, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK) d = digest_h(h, sqls);
    sqlite3_close(h);
    return d;
}

/* Disk full (persistent) or one I/O error at every write of a trace. */
static void test_trace_io(const char *ref, uint64_t ref_digest, bool persistent)
{
    char path[700];
    snprintf(path, sizeof path, "%s/f.db", dir);
    long steps = 0, errors = 0, absorbed = 0, absorbed_early = 0;
    int bad_msg = 0, bad_db = 0, bad_lost = 0, bad_resume = 0, bad_silent = 0;
    char first[4096] = "";
    for (long n = 1; n < 5000; n += SAN_STRIDE) {
        rm_db(path);
        MsError err = { 0 };
        MsTraceJobResult res;
        fault_arm(&io, n, persistent);
        fired_before_close = 0;
        int rc = trace(path, &res, &err);
        long before_close = fired_before_close;
        long fired = io.fired;
        fault_disarm(&io);
        if (!fired) {   /* n is past the last write: the trace is whole */
            if (rc < 0 || digest_file(path, trace_content) != ref_digest) bad_resume++;
            break;
        }
        steps++;
        if (rc < 0) {
            errors++;
            if (getenv("MS_FAULTS_VERBOSE")) mt_diag("n=%ld: %s", n, err.msg);
            if (!one_line(&err, "f.db")) {
                if (!bad_msg++) snprintf(first, sizeof first, "n=%ld: %s", n, err.msg);
            }
        } else {
            absorbed++;
            absorbed_early += before_close > 0;
        }
        int64_t np = 0;
        const char *why = check_db(path, &np);
        if (why) {
            if (!bad_db++) mt_diag("%s n=%ld: %s (error was: %s)", persistent ? "full" : "ioerr", n, why, err.msg);
            continue;
        }
        if (rc < 0 && np != (int64_t)res.n_written) {
            if (!bad_lost++) mt_diag("n=%ld: %lld prompts in the database, %zu committed", n, (long long)np,
                                     res.n_written);
        }
        if (rc == 0 && np != (int64_t)n_prompts) {
            if (!bad_silent++) mt_diag("n=%ld: success with %lld of %zu prompts", n, (long long)np, n_prompts);
        }
        MsError e2 = { 0 };
        MsTraceJobResult r2;
        int rc2 = trace(path, &r2, &e2);
        if (rc2 < 0 || r2.n_skipped != (size_t)np || digest_file(path, trace_content) != ref_digest) {
            if (!bad_resume++)
                mt_diag("n=%ld: resume rc %d (%s), skipped %zu of %lld, digest %s", n, rc2, e2.msg, r2.n_skipped,
                        (long long)np, digest_file(path, trace_content) == ref_digest ? "same" : "differs");
        }
    }
    (void)ref;
    const char *kind = persistent ? "disk full (SQLITE_FULL from the n-th write on)"
                                  : "one I/O error (the n-th write, sync or truncate)";
    mt_diag("trace, %s: %ld injection points, %ld failed with an error, %ld succeeded (%ld of them with the fault "
            "before the close, the rest in the checkpoint of the close)", kind, steps, errors, absorbed, absorbed_early);
    MT_CHECK(steps > 20 / SAN_STRIDE, "trace, %s: stepped over %ld writes", kind, steps);
    MT_CHECK(!bad_msg, "trace, %s: every error is one line naming the database (%d not%s%s)", kind, bad_msg,
             bad_msg ? ": " : "", first);
    MT_CHECK(!bad_db, "trace, %s: integrity_check ok and every committed prompt whole after each fault (%d not)",
             kind, bad_db);
    MT_CHECK(!bad_lost, "trace, %s: every prompt committed before the fault is still there (%d steps lost some)",
             kind, bad_lost);
    MT_CHECK(!bad_silent, "trace, %s: a fault SQLite absorbs still leaves the whole run (%d not)", kind, bad_silent);
    MT_CHECK(!bad_resume, "trace, %s: the resume completes to the content of an unfaulted trace (%d not)", kind,
             bad_resume);
}

/* ------------------------------------------------------ analysis tables */

static const char *const an_modules[] = { "load", "coactivation", "superexperts", NULL };

static int analyze_modules(const char *path, const char *const *mods, MsError *err)
{
    MsTraceDb *db = ms_trace_open(path, MS_TRACE_WRITE, err);
    if (!db) return err->code ? err->code : MS_EDB;
    int rc = 0;
    for (int i = 0; mods[i] && rc >= 0; i++) {
        MsAnOptions o;
        ms_an_options_default(&o);
        MsAnResult r;
        rc = ms_analyze(db, mods[i], &o, &r, err);
        if (rc >= 0) ms_an_result_clear(&r);
    }
    ms_trace_close(db);
    return rc < 0 ? rc : 0;
}

static int analyze(const char *path, MsError *err) { return analyze_modules(path, an_modules, err); }

/* The result tables (as the registry of path names them) and the registry
 * without its time stamps; tables listed and absent count as a problem. */
static char an_tables[16][128];
static int n_an_tables;

static uint64_t digest_analysis(const char *path, bool require_all)
{
    sqlite3 *h;
    if (sqlite3_open_v2(path, &h, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
        sqlite3_close(h);
        return (uint64_t)-1;
    }
    char sql[16][512];
    const char *q[18];
    int nq = 0;
    for (int i = 0; i < n_an_tables; i++) {
        sqlite3_stmt *st;
        char probe[512];
        snprintf(probe, sizeof probe, "SELECT 1 FROM sqlite_schema WHERE name = '%.128s'", an_tables[i]);
        bool have = sqlite3_prepare_v2(h, probe, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW;
        sqlite3_finalize(st);
        if (!have && require_all) {
            sqlite3_close(h);
            return (uint64_t)-1;
        }
        snprintf(sql[i], sizeof sql[i], have ? "SELECT * FROM \"%.128s\"" : "SELECT '%.128s absent'", an_tables[i]);
        q[nq++] = sql[i];
    }
    q[nq] = NULL;
    uint64_t d = digest_h(h, q);
    sqlite3_close(h);
    return d;
}

/* Every result table the registry names exists and equals the reference's
 * (a table written in part, or registered and missing, is caught). */
static bool analysis_whole(const char *path, const char *ref)
{
    sqlite3 *h, *r;
    bool ok = true;
    if (sqlite3_open_v2(path, &h, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK ||
        sqlite3_open_v2(ref, &r, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        sqlite3_close(h);
        return false;
    }
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(h, "SELECT table_name FROM analysis", -1, &st, NULL) == SQLITE_OK) {
        while (ok && sqlite3_step(st) == SQLITE_ROW) {
            char q[512];
            snprintf(q, sizeof q, "SELECT * FROM \"%s\"", (const char *)sqlite3_column_text(st, 0));
            const char *qs[] = { q, NULL };
            uint64_t a = digest_h(h, qs), b = digest_h(r, qs);
            ok = a != (uint64_t)-1 && a == b;
        }
    }
    sqlite3_finalize(st);
    /* and no table of the reference exists in part without its registry row */
    for (int i = 0; ok && i < n_an_tables; i++) {
        char q[512];
        snprintf(q, sizeof q, "SELECT * FROM \"%.128s\"", an_tables[i]);
        const char *qs[] = { q, NULL };
        uint64_t a = digest_h(h, qs);
        ok = a == (uint64_t)-1 || a == digest_h(r, qs);
    }
    sqlite3_close(h);
    sqlite3_close(r);
    return ok;
}

static void test_analysis_io(const char *trace_db, bool persistent)
{
    char ref[700], path[700];
    snprintf(ref, sizeof ref, "%s/an-ref.db", dir);
    snprintf(path, sizeof path, "%s/an.db", dir);
    const char *kind = persistent ? "disk full" : "one I/O error";
    long steps = 0, errors = 0;
    int bad_msg = 0, bad_db = 0, bad_part = 0, bad_rerun = 0, bad_trace = 0;
    char first[4096] = "";
    uint64_t tref = digest_file(trace_db, trace_content);
    uint64_t aref = digest_analysis(ref, true);
    for (long n = 1; n < 5000; n += SAN_STRIDE) {
        rm_db(path);
        if (mt_copy_file(trace_db, path)) {
            MT_CHECK(0, "copy the trace");
            return;
        }
        MsError err = { 0 };
        fault_arm(&io, n, persistent);
        int rc = analyze(path, &err);
        long fired = io.fired;
        fault_disarm(&io);
        if (!fired) {
            if (rc < 0 || digest_analysis(path, true) != aref) bad_rerun++;
            break;
        }
        steps++;
        if (rc < 0) {
            errors++;
            if (!one_line(&err, "an.db") && !bad_msg++) snprintf(first, sizeof first, "n=%ld: %s", n, err.msg);
        }
        int64_t np;
        const char *why = check_db(path, &np);
        if (why) {
            if (!bad_db++) mt_diag("analysis %s n=%ld: %s", kind, n, why);
            continue;
        }
        if (digest_file(path, trace_content) != tref && !bad_trace++) mt_diag("analysis n=%ld: the trace changed", n);
        if (!analysis_whole(path, ref) && !bad_part++) mt_diag("analysis n=%ld: a result table in part", n);
        MsError e2 = { 0 };
        if ((analyze(path, &e2) < 0 || digest_analysis(path, true) != aref) && !bad_rerun++)
            mt_diag("analysis n=%ld: re-run: %s", n, e2.msg);
    }
    mt_diag("analysis tables (%s), %s: %ld injection points, %ld failed with an error", "load, coactivation, "
            "superexperts", kind, steps, errors);
    MT_CHECK(steps > 10 / SAN_STRIDE, "analysis tables, %s: stepped over %ld writes", kind, steps);
    MT_CHECK(!bad_msg, "analysis tables, %s: every error is one line naming the database (%d not%s%s)", kind, bad_msg,
             bad_msg ? ": " : "", first);
    MT_CHECK(!bad_db && !bad_trace, "analysis tables, %s: integrity ok and the trace untouched after each fault "
             "(%d, %d not)", kind, bad_db, bad_trace);
    MT_CHECK(!bad_part, "analysis tables, %s: every result table is whole or absent after a fault (%d not)", kind,
             bad_part);
    MT_CHECK(!bad_rerun, "analysis tables, %s: re-running gives the tables of an unfaulted run (%d not)", kind,
             bad_rerun);
}

/* --------------------------------------------------------------- export */

static bool file_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

/* Entries of directory d other than the expected names (temporaries). */
static int stray_files(const char *d, const char *const *keep)
{
    char cmd[800];
    int n = 0;
    snprintf(cmd, sizeof cmd, "ls -A '%s'", d);
    FILE *p = popen(cmd, "r");
    char line[512];
    while (p && fgets(line, sizeof line, p)) {
        line[strcspn(line, "\n")] = '\0';
        bool k = false;
        for (int i = 0; keep[i]; i++) k |= !strcmp(line, keep[i]);
        n += !k;
    }
    if (p) pclose(p);
    return n;
}

static int export_limited(MsTraceDb *db, MsExportFormat fmt, const char *out, rlim_t limit, MsError *err)
{
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = limit;
    setrlimit(RLIMIT_FSIZE, &lim);
    int rc = ms_trace_export_path(db, fmt, NULL, out, err);
    setrlimit(RLIMIT_FSIZE, &old);
    return rc;
}

static void test_export(const char *trace_db)
{
    signal(SIGXFSZ, SIG_IGN);   /* a write past the limit fails with EFBIG instead */
    char edir[700], out[800], prev[800];
    snprintf(edir, sizeof edir, "%s/exp", dir);
    mkdir(edir, 0755);
    snprintf(out, sizeof out, "%s/t.sql", edir);
    MsError err = { 0 };
    MsTraceDb *db = ms_trace_open(trace_db, MS_TRACE_READ, &err);
    if (!db) {
        MT_CHECK(0, "open the trace for export: %s", err.msg);
        return;
    }
    for (int f = 0; f < 2; f++) {
        MsExportFormat fmt = f ? MS_EXPORT_CSV : MS_EXPORT_SQL;
        const char *fname = f ? "csv" : "sql";
        snprintf(out, sizeof out, "%s/t.%s", edir, fname);
        snprintf(prev, sizeof prev, "%s/ref.%s", edir, fname);
        /* the whole export, for its size and content */
        int rc = ms_trace_export_path(db, fmt, NULL, prev, &err);
        MT_CHECK(rc == 0, "export %s unlimited: %s", fname, rc ? err.msg : "ok");
        char cmd[2000];
        snprintf(cmd, sizeof cmd, "du -sb --apparent-size '%s' | cut -f1", prev);
        FILE *p = popen(cmd, "r");
        long size = 0;
        if (!p || fscanf(p, "%ld", &size) != 1) size = 0;
        if (p) pclose(p);
        /* stdio writes 4 KiB at a time: a limit in each block fails one write
         * (CSV: one limit for every file, so each file's blocks are hit) */
        long steps = 0, errors = 0;
        int bad_msg = 0, bad_partial = 0, bad_prev = 0;
        char first[4096] = "";
        const char *keep_none[] = { NULL };
        const char *keep_prev[] = { f ? "t.csv" : "t.sql", NULL };
        for (long lim = 0; lim <= size + 4096; lim += lim < 8192 ? 1021 : 4096) {
            for (int have_prev = 0; have_prev < 2; have_prev++) {
                snprintf(cmd, sizeof cmd, "rm -rf '%s'/* '%s'/.[!.]*", edir, edir);
                if (system(cmd)) {}
                if (have_prev) {   /* an older export at the name stays as it was */
                    if (f) {
                        mkdir(out, 0755);
                        char b[900];
                        snprintf(b, sizeof b, "%s/old.csv", out);
                        FILE *o = fopen(b, "w");
                        if (o) { fputs("old\n", o); fclose(o); }
                    } else {
                        FILE *o = fopen(out, "w");
                        if (o) { fputs("old\n", o); fclose(o); }
                    }
                }
                MsError e = { 0 };
                rc = export_limited(db, fmt, out, (rlim_t)lim, &e);
                if (rc == 0) {   /* fits (CSV files are each below the limit) */
                    continue;
                }
                steps++;
                errors++;
                if (!one_line(&e, out) && !bad_msg++) snprintf(first, sizeof first, "limit %ld: %s", lim, e.msg);
                if (stray_files(edir, have_prev ? keep_prev : keep_none) && !bad_partial++) {
                    snprintf(cmd, sizeof cmd, "ls -A '%s' | tr '\\n' ' '", edir);
                    FILE *l = popen(cmd, "r");
                    char line[512] = "";
                    if (l && !fgets(line, sizeof line, l)) line[0] = '\0';
                    if (l) pclose(l);
                    mt_diag("export %s limit %ld: left %s", fname, lim, line);
                }
                if (!have_prev && file_exists(out) && !bad_partial++)
                    mt_diag("export %s limit %ld: a partial output exists", fname, lim);
                if (have_prev) {
                    char b[900], got[16] = "";
                    snprintf(b, sizeof b, f ? "%s/old.csv" : "%s", out);
                    FILE *o = fopen(b, "r");
                    if (!o || !fgets(got, sizeof got, o) || strcmp(got, "old\n")) bad_prev++;
                    if (o) fclose(o);
                    if (f) {
                        const char *keep_old[] = { "old.csv", NULL };
                        if (stray_files(out, keep_old)) bad_prev++;
                    }
                }
            }
        }
        mt_diag("export %s (%ld bytes): %ld failing limits stepped", fname, size, steps);
        MT_CHECK(steps >= 4, "export %s: stepped over %ld failing file-size limits", fname, steps);
        MT_CHECK(!bad_msg, "export %s on a full disk: one-line error naming the output (%d not%s%s)", fname,
                 bad_msg, bad_msg ? ": " : "", first);
        MT_CHECK(!bad_partial, "export %s on a full disk: no partial output or temporary left (%d not)", fname,
                 bad_partial);
        MT_CHECK(!bad_prev, "export %s on a full disk: an existing output stays as it was (%d not)", fname, bad_prev);
    }
    ms_trace_close(db);
}

/* ---------------------------------------------------------- allocations */

/* The writer alone, fed one prompt by hand as the engine would (observer
 * events with probs and stats, hidden events, tokens), then commit. */
static int writer_prompts(const char *path, int from, int n_layer, int k, int E, int *n_committed, MsError *err)
{
    *n_committed = 0;
    MsTraceDb *db = ms_trace_open(path, MS_TRACE_WRITE, err);
    if (!db) return err->code ? err->code : MS_EDB;
    int64_t run = 0;
    int rc = 0;
    {
        MsTraceRunInfo ri;
        int64_t *ids = NULL;
        int n = 0;
        if ((rc = ms_trace_runs(db, &ids, &n, err)) < 0) goto out;
        run = n ? ids[n - 1] : 0;
        free(ids);
        if ((rc = ms_trace_run_info(db, run, &ri, err)) < 0) goto out;
        ms_trace_run_info_clear(&ri);
    }
    MsTraceWriter *w = ms_trace_writer_new(db, run, err);
    if (!w) {
        rc = err->code ? err->code : MS_EDB;
        goto out;
    }
    if ((rc = ms_trace_writer_set_worker(w, "test worker", err)) < 0) goto wout;
    enum { T = 6 };
    int32_t pos[T], ex[T * 8], am[T * 8], amh[T];
    float wt[T * 8], mx[T * 8], l2[T * 8], pr[T * 16], lg[T * 16], hm[T];
    for (int pi = from; pi < 2 && rc >= 0; pi++) {
        char text[64];
        int len = snprintf(text, sizeof text, "prompt %d with bytes \xff and more", pi);
        if ((rc = ms_trace_writer_begin(w, pi, text, (size_t)len, pi == 1 ? "{\"lang\":\"en\"}" : NULL, err)) < 0)
            break;
        for (int t = 0; t < T && rc >= 0; t++) {
            char piece[16];
            int pl = snprintf(piece, sizeof piece, "tok%d", t);
            rc = ms_trace_writer_token(w, t, 10 + t, piece, (size_t)pl, t >= 4, -0.5f * (float)t, 1.0f, err);
        }
        MsObserver o = ms_trace_writer_observer(w);
        for (int l = 0; l < n_layer && rc >= 0; l++) {
            for (int t = 0; t < T; t++) {
                pos[t] = t;
                for (int j = 0; j < k; j++) {
                    ex[t * k + j] = (t + l + 3 * j + pi) % E;
                    wt[t * k + j] = 1.0f / (float)(j + 1);
                    mx[t * k + j] = (float)(t + j);
                    l2[t * k + j] = (float)(t * j) * 0.25f;
                    am[t * k + j] = j;
                }
                for (int e = 0; e < E; e++) {
                    pr[t * E + e] = 1.0f / (float)E;
                    lg[t * E + e] = (float)(e - t);
                }
                hm[t] = (float)(l + t);
                amh[t] = t % 4;
            }
            MsRoutingEvent ev = { .layer = l, .n_tokens = T, .pos = pos, .n_expert = E, .k = k, .experts = ex,
                                  .weights = wt, .probs = pr, .logits = lg, .out_maxabs = mx, .out_l2 = l2,
                                  .out_argmax = am };
            o.on_routing(o.user, &ev);
            MsHiddenEvent hv = { .layer = l, .n_tokens = T, .pos = pos, .maxabs = hm, .argmax = amh };
            o.on_hidden(o.user, &hv);
        }
        if (rc >= 0 && (rc = ms_trace_writer_commit(w, NULL, err)) >= 0) ++*n_committed;
    }
wout:
    ms_trace_writer_free(w);
out:
    ms_trace_close(db);
    return rc < 0 ? rc : 0;
}

static const char *const writer_content[] = {
    "SELECT idx, text, text_bytes, labels, n_tokens, worker FROM prompt ORDER BY idx",
    "SELECT p.idx, t.pos, t.token_id, t.piece_bytes, t.is_generated, t.logprob, t.entropy FROM token t "
    "JOIN prompt p USING(prompt_id) ORDER BY p.idx, t.pos",
    "SELECT p.idx, r.pos, r.layer, r.experts, r.weights, r.out_maxabs, r.out_l2, r.out_argmax FROM routing_packed r "
    "JOIN prompt p USING(prompt_id) ORDER BY p.idx, r.pos, r.layer",
    "SELECT p.idx, r.pos, r.layer, r.probs, r.logits FROM router_probs r JOIN prompt p USING(prompt_id) "
    "ORDER BY p.idx, r.pos, r.layer",
    "SELECT p.idx, h.pos, h.layer, h.maxabs, h.channel FROM hidden_stats h JOIN prompt p USING(prompt_id) "
    "ORDER BY p.idx, h.pos, h.layer",
    NULL
};

/* A database with the schema and one empty run with probs and stats. */
static int writer_base(const char *path, MsError *err)
{
    rm_db(path);
    MsTraceDb *db = ms_trace_open(path, MS_TRACE_CREATE, err);
    if (!db) return err->code;
    MsTraceModel m;
    memset(&m, 0, sizeof m);
    snprintf(m.file_name, sizeof m.file_name, "hand.gguf");
    snprintf(m.arch, sizeof m.arch, "olmoe");
    m.n_layer = 4;
    m.n_expert = 16;
    m.n_expert_used = 4;
    m.n_moe_layers = 4;
    for (int l = 0; l < 4; l++) m.is_moe[l] = 1;
    int64_t mid = ms_trace_model_add(db, &m, err);
    MsTraceRunDesc d = { .model_id = mid, .kind = "trace", .settings_json = "{}", .has_probs = true,
                         .has_stats = true };
    int64_t rid = mid > 0 ? ms_trace_run_new(db, &d, err) : mid;
    ms_trace_close(db);
    return rid < 0 ? (int)rid : 0;
}

static void test_writer_alloc(void)
{
    char base[700], path[700], ref[700];
    snprintf(base, sizeof base, "%s/w-base.db", dir);
    snprintf(path, sizeof path, "%s/w.db", dir);
    snprintf(ref, sizeof ref, "%s/w-ref.db", dir);
    MsError err = { 0 };
    int nc = 0;
    if (writer_base(base, &err) || mt_copy_file(base, ref) || writer_prompts(ref, 0, 4, 4, 16, &nc, &err) || nc != 2) {
        MT_CHECK(0, "writer reference: %s", err.msg);
        return;
    }
    uint64_t wref = digest_file(ref, writer_content);
    long steps = 0, errors = 0, absorbed = 0;
    int bad_msg = 0, bad_db = 0, bad_lost = 0, bad_resume = 0;
    char first[4096] = "";
    /* every allocation of the first 1,500 (open, statements, the first
     * prompt), then every 3rd (the second prompt repeats the first's) */
    for (long n = 1; n < 100000; n += SAN_STRIDE * (n < 1500 ? 1 : 3)) {
        rm_db(path);
        mt_copy_file(base, path);
        MsError e = { 0 };
        fault_arm(&mem, n, false);
        int rc = writer_prompts(path, 0, 4, 4, 16, &nc, &e);
        long fired = mem.fired;
        fault_disarm(&mem);
        if (!fired) {
            if (rc < 0 || digest_file(path, writer_content) != wref) bad_resume++;
            break;
        }
        steps++;
        if (rc < 0) {
            errors++;
            if ((!one_line(&e, "w.db") || (rc != MS_ENOMEM && rc != MS_EDB && rc != MS_EIO)) && !bad_msg++)
                snprintf(first, sizeof first, "n=%ld: %d %s", n, rc, e.msg);
        } else absorbed++;
        int64_t np = 0;
        const char *why = check_db(path, &np);
        if (why) {
            if (!bad_db++) mt_diag("writer alloc n=%ld: %s", n, why);
            continue;
        }
        if (np != nc && !bad_lost++) mt_diag("writer alloc n=%ld: %lld prompts stored, %d committed", n, (long long)np, nc);
        /* resume: the prompts not there yet, as the trace job would */
        MsError e2 = { 0 };
        int nc2 = 0;
        bool ok = writer_prompts(path, (int)np, 4, 4, 16, &nc2, &e2) == 0 &&
                  digest_file(path, writer_content) == wref;
        if (!ok && !bad_resume++) mt_diag("writer alloc n=%ld: resume: %s", n, e2.msg[0] ? e2.msg : "content differs");
    }
    mt_diag("trace writer: %ld allocations stepped, %ld failed with an error, %ld absorbed", steps, errors, absorbed);
    MT_CHECK(steps > 50, "trace writer, allocation failure: stepped over %ld allocations", steps);
    MT_CHECK(!bad_msg, "trace writer, allocation failure: a clean MS_ENOMEM/MS_EDB error in one line naming the "
             "database (%d not%s%s)", bad_msg, bad_msg ? ": " : "", first);
    MT_CHECK(!bad_db, "trace writer, allocation failure: integrity ok, committed prompts whole (%d not)", bad_db);
    MT_CHECK(!bad_lost, "trace writer, allocation failure: exactly the prompts reported committed are stored (%d not)",
             bad_lost);
    MT_CHECK(!bad_resume, "trace writer, allocation failure: writing the rest completes to the unfaulted content (%d not)",
             bad_resume);
}

static void test_analysis_alloc(const char *trace_db)
{
    char ref[700], path[700];
    snprintf(ref, sizeof ref, "%s/an-ref.db", dir);
    snprintf(path, sizeof path, "%s/ana.db", dir);
    uint64_t aref = digest_analysis(ref, true), tref = digest_file(trace_db, trace_content);
    long steps = 0, errors = 0, absorbed = 0;
    int bad_msg = 0, bad_db = 0, bad_part = 0, bad_rerun = 0;
    char first[4096] = "";
    /* load rewrites its tables in a copy of the analysed reference: after
     * a failure every table is the old one or the new one, both equal to
     * the reference, and a dropped one is missed */
    static const char *const mods[] = { "load", NULL };
    (void)trace_db;
    /* every allocation of the first 1,500 (opening, the statements, the
     * first chunks), then every 5th (each analysis is a whole run of the
     * module: stepping all would take minutes under ASan) */
    long n0 = getenv("MS_FAULTS_N") ? atol(getenv("MS_FAULTS_N")) : 1;   /* debugging: one step */
    for (long n = n0; n < 200000; n += SAN_STRIDE * (n < 1500 ? 1 : 5)) {
        rm_db(path);
        mt_copy_file(ref, path);
        MsError e = { 0 };
        fault_arm(&mem, n, false);
        int rc = analyze_modules(path, mods, &e);
        long fired = mem.fired;
        fault_disarm(&mem);
        if (!fired) {
            if (rc < 0 || digest_analysis(path, true) != aref) bad_rerun++;
            break;
        }
        steps++;
        if (rc < 0) {
            errors++;
            if ((!one_line(&e, "ana.db") || (rc != MS_ENOMEM && rc != MS_EDB && rc != MS_EIO)) && !bad_msg++)
                snprintf(first, sizeof first, "n=%ld: %d %s", n, rc, e.msg);
            if (getenv("MS_FAULTS_VERBOSE")) mt_diag("n=%ld: %s", n, e.msg);
        } else {
            absorbed++;
            if (digest_analysis(path, true) != aref && bad_part++ < 5)
                mt_diag("analysis alloc n=%ld: success with different tables", n);
        }
        int64_t np;
        const char *why = check_db(path, &np);
        if (why || digest_file(path, trace_content) != tref || digest_analysis(path, true) != aref) {
            if (bad_db++ < 5) mt_diag("analysis alloc n=%ld: %s", n, why ? why : "the trace or the old tables changed");
            continue;
        }
        if (!analysis_whole(path, ref) && bad_part++ < 5) mt_diag("analysis alloc n=%ld: a result table in part", n);
        MsError e2 = { 0 };
        if (steps % 8 == 1 && (analyze_modules(path, mods, &e2) < 0 || digest_analysis(path, true) != aref) &&
            !bad_rerun++)
            mt_diag("analysis alloc n=%ld: re-run: %s", n, e2.msg);
    }
    mt_diag("analysis readers and tables (load): %ld allocations stepped, %ld failed with an error, "
            "%ld absorbed", steps, errors, absorbed);
    MT_CHECK(steps > 50, "analysis, allocation failure: stepped over %ld allocations", steps);
    MT_CHECK(!bad_msg, "analysis, allocation failure: a clean error in one line naming the database (%d not%s%s)",
             bad_msg, bad_msg ? ": " : "", first);
    MT_CHECK(!bad_db, "analysis, allocation failure: integrity ok, the trace untouched, every result table there "
             "(%d not)", bad_db);
    MT_CHECK(!bad_part, "analysis, allocation failure: result tables whole or absent (%d not)", bad_part);
    MT_CHECK(!bad_rerun, "analysis, allocation failure: a re-run (after every 8th step) gives the unfaulted tables "
             "(%d not)", bad_rerun);
}

/* ------------------------------------------------------------------ main */

static double part_clock(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(void)
{
    fault_alloc_install();   /* before SQLite initialises */
    fault_vfs_register();
    const char *t = mt_tmpdir();
    snprintf(dir, sizeof dir, "%s", t);
    MsError err = { 0 };
    snprintf(model_path, sizeof model_path, "%s/m.gguf", dir);
    MsSynthParams sp = ms_synth_default_params();
    sp.arch = "olmoe";
    sp.n_layer = 4;
    sp.n_embd = 64;
    sp.n_head = 4;
    sp.n_expert = 16;
    sp.n_expert_used = 4;
    sp.n_ff = 64;
    sp.n_vocab = 400;
    sp.type = MS_TYPE_Q8_0;
    sp.seed = 7;
    sp.n_threads = 1;
    snprintf(prompts_path, sizeof prompts_path, "%s/p.txt", dir);
    FILE *pf = fopen(prompts_path, "w");
    if (pf) {
        for (int i = 0; i < 3; i++)
            fprintf(pf, "prompt %d: the router sends token %d to a few experts\n", i, i * 7 % 31);
        fclose(pf);
    }
    if (ms_synth_write(model_path, &sp, &err) || !(model = ms_model_load(model_path, &err)) ||
        ms_prompts_read(prompts_path, &prompts, &n_prompts, &err) < 0) {
        MT_CHECK(0, "synth model and prompts: %s", err.msg);
        return mt_done();
    }
    /* the unfaulted trace and analysis */
    char ref[700], anref[700];
    snprintf(ref, sizeof ref, "%s/ref.db", dir);
    snprintf(anref, sizeof anref, "%s/an-ref.db", dir);
    MsTraceJobResult res;
    int rc = trace(ref, &res, &err);
    MT_CHECK(rc == 0 && res.n_written == n_prompts, "unfaulted trace: %s", rc ? err.msg : "ok");
    uint64_t tref = digest_file(ref, trace_content);
    mt_copy_file(ref, anref);
    rc = analyze(anref, &err);
    MT_CHECK(rc == 0, "unfaulted analysis: %s", rc ? err.msg : "ok");
    {
        sqlite3 *h;
        sqlite3_stmt *st;
        if (sqlite3_open_v2(anref, &h, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
            sqlite3_prepare_v2(h, "SELECT table_name FROM analysis ORDER BY table_name", -1, &st, NULL) == SQLITE_OK) {
            while (sqlite3_step(st) == SQLITE_ROW && n_an_tables < 16)
                snprintf(an_tables[n_an_tables++], sizeof an_tables[0], "%s", sqlite3_column_text(st, 0));
            sqlite3_finalize(st);
        }
        sqlite3_close(h);
    }
    MT_CHECK(n_an_tables >= 3, "the reference analysis wrote %d result tables", n_an_tables);

    const char *only = getenv("MS_FAULTS_ONLY");   /* a debugging aid: run one part */
#define PART(name) ((!only || !strcmp(only, name)) && (part_t0 = part_clock(), 1))
#define PART_DONE(name) mt_diag("%s: %.1f s", name, part_clock() - part_t0)
    double part_t0 = 0;
    if (PART("trace")) {
        test_trace_io(ref, tref, true);
        test_trace_io(ref, tref, false);
        PART_DONE("trace");
    }
    if (PART("analysis")) {
        test_analysis_io(ref, true);
        test_analysis_io(ref, false);
        PART_DONE("analysis");
    }
    if (PART("export")) {
        test_export(ref);
        PART_DONE("export");
    }
    if (PART("writer-alloc")) {
        test_writer_alloc();
        PART_DONE("writer-alloc");
    }
    if (PART("analysis-alloc")) {
        test_analysis_alloc(ref);
        PART_DONE("analysis-alloc");
    }

    ms_prompts_free(prompts, n_prompts);
    ms_model_free(model);
    return mt_done();
}
