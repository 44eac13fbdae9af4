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

/* Call once, before anything else uses SQLite. */
static inline void fz_sqlite_init(void)
{
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
