/* wb-files.c — file kinds and export parameters (wb-files.h). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "ms-plot.h"
#include "wb-files.h"

const char *wb_file_kind_name(WbFileKind k)
{
    switch (k) {
    case WB_FILE_MODEL: return "model";
    case WB_FILE_DB: return "trace database";
    case WB_FILE_TEXT: return "text";
    default: return "unknown";
    }
}

/* Valid UTF-8 without NUL (a sequence cut at the end of the buffer is fine). */
static bool looks_text(const unsigned char *b, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned char c = b[i];
        if (c == 0) return false;
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t k = c >= 0xf0 && c < 0xf5 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 && c < 0xe0 ? 2 : 0;
        if (!k) return false;
        for (size_t j = 1; j < k; j++) {
            if (i + j >= n) return true;
            if ((b[i + j] & 0xc0) != 0x80) return false;
        }
        i += k;
    }
    return true;
}

bool wb_db_is_uri(const char *s) { return ms_trace_path_is_postgresql(s); }

int wb_db_uri_check(const char *s, MsError *err)
{
    if (!s || !*s) return ms_error_set(err, MS_EINVAL, "no database URI given");
    if (!wb_db_is_uri(s))
        return ms_error_set(err, MS_EINVAL, "'%.80s' is not a PostgreSQL URI (postgresql://user@host:port/dbname)", s);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p <= ' ' || *p == 0x7f)
            return ms_error_set(err, MS_EINVAL, "the database URI holds white space or a control character");
    return 0;
}

bool wb_db_uri_has_password(const char *s)
{
    if (!wb_db_is_uri(s)) return false;
    const char *h = strstr(s, "://") + 3;
    size_t auth = strcspn(h, "/?");
    const char *at = memchr(h, '@', auth);
    return (at && memchr(h, ':', (size_t)(at - h))) || strstr(s, "password=");
}

int wb_file_kind(const char *path, MsError *err)
{
    if (wb_db_is_uri(path)) return WB_FILE_DB;
    struct stat st;
    if (stat(path, &st) != 0) return ms_error_set(err, MS_EIO, "%s: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode)) return ms_error_set(err, MS_EIO, "%s: is a directory, not a file", path);
    /* the name says model: the loader then names what is wrong with it,
     * instead of a text file so named opening as a prompt set */
    size_t pl = strlen(path);
    if (pl >= 5 && !strcasecmp(path + pl - 5, ".gguf")) return WB_FILE_MODEL;
    FILE *f = fopen(path, "rb");
    if (!f) return ms_error_set(err, MS_EIO, "%s: cannot read: %s", path, strerror(errno));
    unsigned char b[4096];
    size_t n = fread(b, 1, sizeof b, f);
    bool rerr = ferror(f);
    fclose(f);
    if (rerr) return ms_error_set(err, MS_EIO, "%s: read error", path);
    if (n >= 4 && !memcmp(b, "GGUF", 4)) return WB_FILE_MODEL;
    if (n >= 16 && !memcmp(b, "SQLite format 3", 16)) return WB_FILE_DB;
    if (n == 0) {
        ms_error_set(err, MS_EFORMAT, "%s: empty file", path);
        return WB_FILE_UNKNOWN;
    }
    if (looks_text(b, n)) return WB_FILE_TEXT;
    ms_error_set(err, MS_EFORMAT, "%s: not a GGUF model, a trace database or a text file", path);
    return WB_FILE_UNKNOWN;
}

bool wb_text_is_intervention_set(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) return false;
    char line[512];
    bool yes = false;
    while (fgets(line, sizeof line, f)) {
        char *p = line;
        while (*p == ' ' || *p == '\t') p++;
        if (!*p || *p == '\n' || *p == '\r' || *p == '#') continue;
        static const char *const ops[] = { "silence", "drop", "force", "steer-std", "steer", "scale",
                                            "raise", "lower", "top-k", "ser" };
        for (size_t i = 0; i < sizeof ops / sizeof ops[0] && !yes; i++) {
            size_t n = strlen(ops[i]);
            if (strncmp(p, ops[i], n) || (p[n] != ' ' && p[n] != '\t')) continue;
            const char *q = p + n;
            while (*q == ' ' || *q == '\t') q++;
            yes = (*q >= '0' && *q <= '9') || *q == '*';   /* a spec: L:E, K, ranges, '*' */
        }
        break;
    }
    fclose(f);
    return yes;
}

int wb_view_export_parse(const char *spec, WbViewExport *out, MsError *err)
{
    memset(out, 0, sizeof *out);
    out->scale = 1;
    if (!spec || !*spec) return ms_error_set(err, MS_EINVAL, "export view: no file name");
    const char *path = spec;
    /* "WxH[@S]:" prefix: digits, 'x', digits, optional @number, ':' */
    char *e1;
    double w = strtod(spec, &e1);
    if (e1 != spec && *e1 == 'x' && spec[0] >= '0' && spec[0] <= '9') {
        char *e2;
        double h = strtod(e1 + 1, &e2);
        double s = 1;
        if (e2 != e1 + 1 && *e2 == '@') {
            char *e3;
            s = strtod(e2 + 1, &e3);
            if (e3 == e2 + 1) s = NAN;
            e2 = e3;
        }
        if (e2 != e1 + 1 && *e2 == ':') {
            if (!(w >= 16 && w <= MS_PLOT_MAX_SIDE && h >= 16 && h <= MS_PLOT_MAX_SIDE))
                return ms_error_set(err, MS_EINVAL, "export view: size %gx%g outside 16..%g", w, h, MS_PLOT_MAX_SIDE);
            if (!(s >= 0.1 && s <= 16)) return ms_error_set(err, MS_EINVAL, "export view: scale outside 0.1..16");
            out->width = w;
            out->height = h;
            out->scale = s;
            path = e2 + 1;
        }
    }
    if (!*path) return ms_error_set(err, MS_EINVAL, "export view: no file name after the size");
    if (strlen(path) >= sizeof out->path) return ms_error_set(err, MS_EINVAL, "export view: file name too long");
    int rc = ms_plot_format_from_path(path, err);
    if (rc < 0) return rc;
    snprintf(out->path, sizeof out->path, "%s", path);
    return 0;
}

const char *wb_export_format_name(MsExportFormat f)
{
    return f == MS_EXPORT_SQL ? "SQL (SQLite)" : f == MS_EXPORT_PGSQL ? "SQL (PostgreSQL)" : "CSV";
}

int wb_trace_export_parse(const char *spec, WbTraceExport *out, MsError *err)
{
    memset(out, 0, sizeof *out);
    if (!spec || !*spec) return ms_error_set(err, MS_EINVAL, "export trace: no file name");
    static const struct {
        const char *name;
        MsExportFormat f;
    } pre[] = { { "sqlite:", MS_EXPORT_SQL }, { "sql:", MS_EXPORT_SQL }, { "postgresql:", MS_EXPORT_PGSQL },
                { "pgsql:", MS_EXPORT_PGSQL }, { "csv:", MS_EXPORT_CSV } };
    const char *path = spec;
    for (size_t i = 0; i < sizeof pre / sizeof pre[0]; i++) {
        size_t n = strlen(pre[i].name);
        if (!strncmp(spec, pre[i].name, n)) {
            out->format = pre[i].f;
            path = spec + n;
            break;
        }
    }
    if (!*path) return ms_error_set(err, MS_EINVAL, "export trace: no file name in '%s'", spec);
    if (strlen(path) >= sizeof out->path) return ms_error_set(err, MS_EINVAL, "export trace: file name too long");
    if (!out->format) {
        const char *slash = strrchr(path, '/'), *dot = strrchr(path, '.');
        if (dot && (!slash || dot > slash)) {
            if (!strcasecmp(dot, ".sql")) out->format = MS_EXPORT_SQL;
            else if (!strcasecmp(dot, ".pgsql") || !strcasecmp(dot, ".psql")) out->format = MS_EXPORT_PGSQL;
            else
                return ms_error_set(err, MS_EINVAL,
                                    "export trace: '%s': say sqlite:, postgresql: or csv: (or end in .sql / .pgsql)",
                                    path);
        } else {
            out->format = MS_EXPORT_CSV;
        }
    }
    snprintf(out->path, sizeof out->path, "%s", path);
    return 0;
}
