/* pg-none.c — built when libpq is missing: PostgreSQL URIs are refused
 * with a clear message (the rest of db/ never needs libpq). */
#include "db-internal.h"

int ms_pg_open(MsTraceDb *db, const char *uri, int mode, MsError *err)
{
    (void)db;
    (void)mode;
    return ms_error_set(err, MS_EUNSUPPORTED,
                        "%.40s...: this moescope was built without PostgreSQL support (libpq-dev missing at build time)",
                        uri);
}
