/* ms-vexp.h — an exp the compiler can vectorise, for the forward pass's
 * softmax and SiLU loops.  Header-only. */
#ifndef MS_VEXP_H
#define MS_VEXP_H

#include <stdint.h>
#include <string.h>

/* exp(x) in a form the compiler vectorises (expf is a call per element, and
 * the softmax and SiLU loops were 2-4 % of prefill): x = n ln2 + r with n
 * rounded by the 1.5 * 2^23 trick (so 2^n comes from the bits, no
 * float-to-int conversion), ln2 split so n ln2 is exact, and e^r by its
 * Taylor series to r^8 (|r| <= ln2 / 2: truncation below 3e-10 relative).
 * Within 1 ulp of e^x rounded, for every float in [-87, 88] (test-quant
 * checks a sample); llama.cpp's vector exp is an approximation too.
 * Clamped to [-87, 88] (e^-87 is still a normal float); NaN stays NaN. */
static inline float ms_exp_v(float x)
{
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    const float t = x * 1.44269504088896341f + 12582912.0f;   /* 1.5 * 2^23 + n */
    const float n = t - 12582912.0f;
    const float r = (x - n * 0.693359375f) + n * 2.12194440e-4f;
    float p = 1.0f / 5040.0f + r * (1.0f / 40320.0f);
    p = 1.0f / 720.0f + r * p;
    p = 1.0f / 120.0f + r * p;
    p = 1.0f / 24.0f + r * p;
    p = 1.0f / 6.0f + r * p;
    p = 0.5f + r * p;
    p = 1.0f + r * p;
    p = 1.0f + r * p;
    uint32_t tb, sb;
    memcpy(&tb, &t, sizeof tb);
    sb = (tb - 0x4B400000u + 127u) << 23;   /* the bits of 2^n */
    float sc;
    memcpy(&sc, &sb, sizeof sc);
    return p * sc;
}

#endif
