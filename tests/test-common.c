/* test-common.c — error contract and half-precision conversions. */
#include <math.h>

#include "ms-common.h"
#include "mtest.h"

/* Independent reference: decode binary16 by its definition. */
static double half_value(uint16_t h)
{
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v;
    if (e == 0) v = ldexp(m, -24);
    else if (e == 31) v = m ? NAN : INFINITY;
    else v = ldexp(1024 + m, e - 25);
    return s ? -v : v;
}

int main(void)
{
    MsError err = {0};
    int rc = ms_error_set(&err, MS_EFORMAT, "%s: bad %d", "f.gguf", 3);
    MT_CHECK(rc == MS_EFORMAT && !strcmp(err.msg, "f.gguf: bad 3"), "ms_error_set formats and returns the code");
    ms_error_prefix(&err, "%s: ", "load");
    MT_CHECK(!strcmp(err.msg, "load: f.gguf: bad 3"), "ms_error_prefix prepends");
    MT_CHECK(ms_error_set(NULL, MS_EIO, "x") == MS_EIO, "NULL error sink is allowed");

    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        double ref = half_value((uint16_t)h);
        float got = ms_fp16_to_fp32((uint16_t)h);
        if (isnan(ref) ? !isnan(got) : (double)got != ref) bad++;
    }
    MT_CHECK(bad == 0, "fp16 -> fp32 exact for all 65536 codes (%d bad)", bad);

    /* fp32 -> fp16 must pick the nearest half, ties to even: check every half
     * value, the midpoints between neighbours, and points just off them. */
    bad = 0;
    for (uint32_t h = 0; h < 0x7c00; h++) {
        float v = (float)half_value((uint16_t)h);
        if (ms_fp32_to_fp16(v) != h || ms_fp32_to_fp16(-v) != (h | 0x8000)) bad++;
        double next = half_value((uint16_t)(h + 1));
        float mid = (float)((half_value((uint16_t)h) + next) / 2);
        uint16_t even = (h & 1) ? (uint16_t)(h + 1) : (uint16_t)h;
        if ((double)mid == (half_value((uint16_t)h) + next) / 2 && ms_fp32_to_fp16(mid) != even) bad++;
        if (ms_fp32_to_fp16(nextafterf(mid, 0)) != h && h + 1 < 0x7c00) bad++;
    }
    MT_CHECK(bad == 0, "fp32 -> fp16 rounds to nearest even (%d bad)", bad);
    MT_CHECK(ms_fp32_to_fp16(1e6f) == 0x7c00 && ms_fp32_to_fp16(-1e6f) == 0xfc00, "overflow gives infinity");
    MT_CHECK((ms_fp32_to_fp16(NAN) & 0x7c00) == 0x7c00 && (ms_fp32_to_fp16(NAN) & 0x3ff), "NaN stays NaN");
    MT_CHECK(ms_fp32_to_bf16(1.0f) == 0x3f80 && ms_bf16_to_fp32(0x3f80) == 1.0f, "bf16 round trip of 1");
    MT_CHECK(ms_fp32_to_bf16(ms_fp32_from_bits(0x3f808000)) == 0x3f80 &&
             ms_fp32_to_bf16(ms_fp32_from_bits(0x3f818000)) == 0x3f82, "bf16 ties to even");
    return mt_done();
}
