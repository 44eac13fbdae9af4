#include "ms-common.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Messages are one line by contract, whatever text they quote (a spec, a
 * file name, a line of a file): control characters are written as escapes
 * (\n \r \t \xNN).  The text is formatted into a scratch buffer first,
 * so a message may quote the old err->msg. */
static void set_line(MsError *err, const char *src)
{
    size_t o = 0, cap = sizeof err->msg;
    for (const unsigned char *p = (const unsigned char *)src; *p && o + 1 < cap; p++) {
        char esc[8];
        size_t n;
        if (*p >= 0x20 && *p != 0x7f) {
            err->msg[o++] = (char)*p;
            continue;
        }
        if (*p == '\n') n = (size_t)snprintf(esc, sizeof esc, "\\n");
        else if (*p == '\r') n = (size_t)snprintf(esc, sizeof esc, "\\r");
        else if (*p == '\t') n = (size_t)snprintf(esc, sizeof esc, "\\t");
        else n = (size_t)snprintf(esc, sizeof esc, "\\x%02x", *p);
        if (o + n + 1 > cap) break;
        memcpy(err->msg + o, esc, n);
        o += n;
    }
    err->msg[o] = '\0';
}

int ms_error_set(MsError *err, int code, const char *fmt, ...)
{
    if (err) {
        char buf[MS_ERRMSG_MAX];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(buf, sizeof buf, fmt, ap);
        va_end(ap);
        err->code = code;
        set_line(err, buf);
    }
    return code;
}

int ms_error_prefix(MsError *err, const char *fmt, ...)
{
    if (!err) return MS_OK;
    char pre[MS_ERRMSG_MAX], buf[MS_ERRMSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    /* both halves are bounded; truncation of an over-long message is fine */
    size_t pl = strnlen(pre, sizeof buf - 1), ol = strnlen(err->msg, sizeof err->msg - 1);
    if (ol > sizeof buf - 1 - pl) ol = sizeof buf - 1 - pl;
    memcpy(buf, pre, pl);
    memcpy(buf + pl, err->msg, ol);
    buf[pl + ol] = '\0';
    set_line(err, buf);
    return err->code;
}

void ms_error_clear(MsError *err)
{
    if (err) { err->code = 0; err->msg[0] = '\0'; }
}

const char *ms_strerror(int code)
{
    switch (code) {
    case MS_OK: return "ok";
    case MS_EIO: return "I/O error";
    case MS_EFORMAT: return "malformed input";
    case MS_EUNSUPPORTED: return "not supported";
    case MS_EINVAL: return "invalid argument";
    case MS_ENOMEM: return "out of memory";
    case MS_ERANGE: return "out of range";
    case MS_ENOTFOUND: return "not found";
    case MS_EDB: return "database error";
    case MS_ECANCELLED: return "cancelled";
    default: return "internal error";
    }
}

float ms_fp16_to_fp32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    if (exp == 0) {
        if (man == 0) return ms_fp32_from_bits(sign);
        /* subnormal: value = man * 2^-24 */
        float v = (float)man * 0x1p-24f;
        return sign ? -v : v;
    }
    if (exp == 31) return ms_fp32_from_bits(sign | 0x7f800000 | (man << 13));
    return ms_fp32_from_bits(sign | ((exp + 112) << 23) | (man << 13));
}

uint16_t ms_fp32_to_fp16(float f)
{
    uint32_t x = ms_fp32_to_bits(f);
    uint32_t sign = (x >> 16) & 0x8000;
    uint32_t ax = x & 0x7fffffff;
    if (ax > 0x7f800000) return (uint16_t)(sign | 0x7e00); /* NaN */
    if (ax >= 0x477ff000) return (uint16_t)(sign | 0x7c00); /* overflow -> inf (RNE boundary 65520) */
    if (ax < 0x38800000) {                                /* result is subnormal or zero */
        /* add 0.5 (as float) to shift mantissa into place with RNE */
        float v = ms_fp32_from_bits(ax) + 0.5f;
        return (uint16_t)(sign | (ms_fp32_to_bits(v) - 0x3f000000));
    }
    uint32_t mant_odd = (ax >> 13) & 1;
    ax += 0xc8000fffu + mant_odd; /* rebias exponent (-112<<23) and round */
    return (uint16_t)(sign | (ax >> 13));
}

/* ---- output files ---- */

int ms_outfile_open(MsOutFile *o, const char *path, MsError *err)
{
    memset(o, 0, sizeof *o);
    if (!path || !*path) return ms_error_set(err, MS_EINVAL, "no output file name");
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) return ms_error_set(err, MS_EIO, "%s: is a directory", path);
    o->path = strdup(path);
    if (!o->path) return ms_error_set(err, MS_ENOMEM, "%s: out of memory", path);
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {   /* /dev/stdout, a FIFO: no rename */
        if (!(o->f = fopen(path, "wb"))) {
            int e = errno;
            ms_outfile_abort(o);
            return ms_error_set(err, MS_EIO, "%s: cannot create: %s", path, strerror(e));
        }
        return 0;
    }
    const char *slash = strrchr(path, '/');
    size_t dl = slash ? (size_t)(slash - path) + 1 : 0;
    size_t cap = strlen(path) + 48;
    o->tmp = malloc(cap);
    if (!o->tmp) {
        ms_outfile_abort(o);
        return ms_error_set(err, MS_ENOMEM, "%s: out of memory", path);
    }
    /* a name no other writer uses: the pid, and the clock (O_EXCL retries
     * the rare collision) */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int fd = -1, e = 0;
    for (int tries = 0; tries < 100 && fd < 0; tries++) {
        snprintf(o->tmp, cap, "%.*s.%s.tmp-%ld-%lx", (int)dl, path, path + dl, (long)getpid(),
                 (unsigned long)ts.tv_nsec + (unsigned long)tries);
        /* mode 0666 less the umask, as fopen would give the final file */
        fd = open(o->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        e = errno;
        if (fd < 0 && e != EEXIST) break;
    }
    if (fd < 0 || !(o->f = fdopen(fd, "wb"))) {
        if (fd >= 0) { e = errno; close(fd); unlink(o->tmp); }
        free(o->tmp);
        o->tmp = NULL;
        ms_outfile_abort(o);
        return ms_error_set(err, MS_EIO, "%s: cannot create: %s", path, strerror(e));
    }
    return 0;
}

int ms_outfile_commit(MsOutFile *o, MsError *err)
{
    if (!o->f) {
        ms_outfile_abort(o);
        return ms_error_set(err, MS_EINVAL, "output file not open");
    }
    int e = 0;
    if (fflush(o->f) != 0 || ferror(o->f)) e = errno ? errno : EIO;
    if (!e && o->tmp && fsync(fileno(o->f)) != 0 && errno != EINVAL) e = errno;
    if (fclose(o->f) != 0 && !e) e = errno ? errno : EIO;
    o->f = NULL;
    if (!e && o->tmp && rename(o->tmp, o->path) != 0) e = errno;
    int rc = 0;
    if (e) rc = ms_error_set(err, MS_EIO, "%s: write failed: %s", o->path, strerror(e));
    if (o->tmp && e) unlink(o->tmp);
    free(o->tmp);
    free(o->path);
    memset(o, 0, sizeof *o);
    return rc;
}

void ms_outfile_abort(MsOutFile *o)
{
    if (!o) return;
    if (o->f) fclose(o->f);
    if (o->tmp) unlink(o->tmp);
    free(o->tmp);
    free(o->path);
    memset(o, 0, sizeof *o);
}

size_t ms_utf8_valid_prefix(const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        if (c < 0x80) { i++; continue; }
        int need;
        uint32_t cp, min;
        if ((c & 0xe0) == 0xc0) { need = 1; cp = c & 0x1f; min = 0x80; }
        else if ((c & 0xf0) == 0xe0) { need = 2; cp = c & 0x0f; min = 0x800; }
        else if ((c & 0xf8) == 0xf0) { need = 3; cp = c & 0x07; min = 0x10000; }
        else return i;
        if (len - i <= (size_t)need) return i;
        for (int k = 1; k <= need; k++) {
            if ((s[i + k] & 0xc0) != 0x80) return i;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
        i += (size_t)need + 1;
    }
    return len;
}
