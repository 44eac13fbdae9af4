#include "ms-common.h"

#include <stdio.h>

int ms_error_set(MsError *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err->code = code;
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

int ms_error_prefix(MsError *err, const char *fmt, ...)
{
    if (!err) return MS_OK;
    char pre[MS_ERRMSG_MAX], old[MS_ERRMSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    /* both halves are bounded; truncation of an over-long message is fine */
    size_t pl = strnlen(pre, sizeof pre - 1), ol = strnlen(old, sizeof old - 1);
    if (pl > sizeof err->msg - 1) pl = sizeof err->msg - 1;
    if (ol > sizeof err->msg - 1 - pl) ol = sizeof err->msg - 1 - pl;
    memcpy(err->msg, pre, pl);
    memcpy(err->msg + pl, old, ol);
    err->msg[pl + ol] = '\0';
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
