/* fuzz-memdb.h — SQLite databases for the fuzz targets, in memory.
 *
 * A file on disk per input would make each execution cost a millisecond or
 * more; instead each input lives in a shared in-memory database ("memdb"
 * VFS, a URI name starting with '/'), which ms_trace_open opens by that
 * URI like any path (URIs are switched on once, before SQLite starts).
 * The bytes are copied in with the backup API, page by page as they are,
 * so a crafted file reaches ms_trace_open exactly as written. */
#ifndef MS_FUZZ_MEMDB_H
#define MS_FUZZ_MEMDB_H

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* SQLite's own small allocations (parser nodes, the schema it rebuilds
 * for every input database, statement structures: tens of thousands per
 * input) went through ASan's allocator and were most of the time.  They
 * are SQLite's business, not moescope's, so blocks under FZ_SMALL bytes
 * come from glibc's allocator directly; larger ones (page buffers, the
 * copies of big text and blob values that moescope reads, the database
 * image) still come from ASan's malloc, with redzones and quarantine.
 * moescope's own allocations are all ASan's.  A 16-byte header records
 * which allocator a block came from, and its size (xSize). */
#ifndef FZ_SMALL
#define FZ_SMALL 256
#endif
extern void *__libc_malloc(size_t);
extern void __libc_free(void *);

static void *fz_sq_malloc(int n)
{
    size_t sz = (size_t)(n > 0 ? n : 1);
    unsigned char *p = sz < FZ_SMALL ? __libc_malloc(sz + 16) : malloc(sz + 16);
    if (!p) return NULL;
    memcpy(p, &sz, sizeof sz);
    return p + 16;
}

static int fz_sq_size(void *q)
{
    size_t sz;
    memcpy(&sz, (unsigned char *)q - 16, sizeof sz);
    return (int)sz;
}

static void fz_sq_free(void *q)
{
    if (!q) return;
    unsigned char *p = (unsigned char *)q - 16;
    if ((size_t)fz_sq_size(q) < FZ_SMALL) __libc_free(p);
    else free(p);
}

static void *fz_sq_realloc(void *q, int n)
{
    void *r = fz_sq_malloc(n);
    if (!r) return NULL;
    int old = fz_sq_size(q);
    memcpy(r, q, (size_t)(old < n ? old : n));
    fz_sq_free(q);
    return r;
}

static int fz_sq_roundup(int n) { return (n + 7) & ~7; }
static int fz_sq_init(void *arg) { (void)arg; return SQLITE_OK; }
static void fz_sq_shutdown(void *arg) { (void)arg; }

/* Call once, before anything else uses SQLite. */
static inline void fz_sqlite_init(void)
{
    static const sqlite3_mem_methods mem = { fz_sq_malloc, fz_sq_free, fz_sq_realloc, fz_sq_size,
                                             fz_sq_roundup, fz_sq_init, fz_sq_shutdown, NULL };
    sqlite3_config(SQLITE_CONFIG_MALLOC, &mem);
    /* page buffers too: slots for pages up to 64 KiB plus SQLite's
     * per-page header, beyond which pages come from the allocator above */
    enum { SLOT = 65536 + 1024, NSLOT = 256 };
    static void *slots;
    if (!slots) slots = __libc_malloc((size_t)SLOT * NSLOT);
    if (slots) sqlite3_config(SQLITE_CONFIG_PAGECACHE, slots, SLOT, NSLOT);
    sqlite3_config(SQLITE_CONFIG_URI, 1);
    sqlite3_initialize();
}

/* A fresh shared memdb holding bytes[0..n) as its file image; returns the
 * connection that keeps it alive (close it to drop the database) and its
 * URI in uri, or NULL when SQLite rejects the image outright. */
static inline sqlite3 *fz_memdb(const char *name, const void *bytes, size_t n, char *uri, size_t cap)
{
    static unsigned long serial;
    snprintf(uri, cap, "file:/%s-%lu?vfs=memdb", name, ++serial);
    sqlite3 *keep = NULL, *tmp = NULL;
    if (sqlite3_open_v2(uri, &keep, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_URI, NULL) != SQLITE_OK) {
        sqlite3_close(keep);
        return NULL;
    }
    if (n == 0) return keep;
    if (sqlite3_open(":memory:", &tmp) != SQLITE_OK) goto fail;
    unsigned char *img = sqlite3_malloc64(n);
    if (!img) goto fail;
    memcpy(img, bytes, n);
    if (sqlite3_deserialize(tmp, "main", img, (sqlite3_int64)n, (sqlite3_int64)n,
                            SQLITE_DESERIALIZE_FREEONCLOSE | SQLITE_DESERIALIZE_RESIZEABLE) != SQLITE_OK)
        goto fail;
    sqlite3_backup *b = sqlite3_backup_init(keep, "main", tmp, "main");
    if (!b) goto fail;
    int rc = sqlite3_backup_step(b, -1);
    sqlite3_backup_finish(b);
    if (rc != SQLITE_DONE) goto fail;
    sqlite3_close(tmp);
    return keep;
fail:
    sqlite3_close(tmp);
    sqlite3_close(keep);
    return NULL;
}

#endif
