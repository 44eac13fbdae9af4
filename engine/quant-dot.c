/* quant-dot.c — the products llama.cpp's CPU backend computes: integer
 * block dot products between a weight row and an activation row already
 * converted to the weight's vec_dot type (GGUF-MOE.md §2.2), scaled per
 * block and summed in float.
 *
 * This file holds the portable scalar code (msq_vec_dot_scalar: the
 * fallback, and the only path for Q2_K / Q3_K) and the public entry points,
 * which hand each call to the SIMD kernels of the level chosen at run time
 * (ms-cpu.h; the kernels and their guarantees: quant-simd.c).  The scalar
 * path forms the same exact integer block sums but adds the scaled blocks
 * in another order, so it agrees with the SIMD levels to ~1e-7 relative. */
#include "quant.h"
#include "quant-impl.h"
#include "ms-common.h"

#include "ms-cpu.h"

static inline float h2f(const uint8_t *p) { return ms_fp16_to_fp32(msq_rd16(p)); }
static inline float rdf32(const uint8_t *p) { float f; memcpy(&f, p, 4); return f; }

/* ================================================== scalar reference path */

static float dot_f32(int64_t n, const float *x, const float *y)
{
    float s[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) s[k] += x[i + k] * y[i + k];
    for (; i < n; i++) s[0] += x[i] * y[i];
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

static float dot_half(int64_t n, const uint8_t *x, const uint8_t *y, bool bf)
{
    float s[8] = {0};
    for (int64_t i = 0; i < n; i++) {
        uint16_t a = msq_rd16(x + 2 * i), b = msq_rd16(y + 2 * i);
        float fa = bf ? ms_bf16_to_fp32(a) : ms_fp16_to_fp32(a);
        float fb = bf ? ms_bf16_to_fp32(b) : ms_fp16_to_fp32(b);
        s[i & 7] += fa * fb;   /* exact product; only the sum rounds */
    }
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

/* Unpack the 32 integer weights of a Q4_0/Q5_0/Q8_0/Q4_1/Q5_1 block. */
static void unpack32(int type, const uint8_t *b, int *q)
{
    switch (type) {
    case MS_TYPE_Q8_0:
        for (int j = 0; j < 32; j++) q[j] = (int8_t)b[2 + j];
        break;
    case MS_TYPE_Q4_0: case MS_TYPE_Q4_1: {
        const uint8_t *qs = b + (type == MS_TYPE_Q4_0 ? 2 : 4);
        int off = type == MS_TYPE_Q4_0 ? 8 : 0;
        for (int j = 0; j < 16; j++) {
            q[j] = (qs[j] & 15) - off;
            q[j + 16] = (qs[j] >> 4) - off;
        }
        break;
    }
    case MS_TYPE_Q5_0: case MS_TYPE_Q5_1: {
        bool z = type == MS_TYPE_Q5_0;
        uint32_t qh = msq_rd32(b + (z ? 2 : 4));
        const uint8_t *qs = b + (z ? 6 : 8);
        int off = z ? 16 : 0;
        for (int j = 0; j < 16; j++) {
            q[j] = ((qs[j] & 15) | (int)((qh >> j) & 1) << 4) - off;
            q[j + 16] = ((qs[j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4) - off;
        }
        break;
    }
    case MS_TYPE_IQ4_NL: case MS_TYPE_MXFP4: {
        const int8_t *lut = type == MS_TYPE_IQ4_NL ? msq_iq4nl_values : msq_mxfp4_values;
        const uint8_t *qs = b + (type == MS_TYPE_IQ4_NL ? 2 : 1);
        for (int j = 0; j < 16; j++) {
            q[j] = lut[qs[j] & 15];
            q[j + 16] = lut[qs[j] >> 4];
        }
        break;
    }
    default: break;
    }
}

/* Scale of a 32-element weight block: f16 d first, except MXFP4's E8M0. */
static inline float w32_scale(int type, const uint8_t *b)
{
    return type == MS_TYPE_MXFP4 ? msq_e8m0_half(b[0]) : h2f(b);
}

static float dot_q32_scalar(int type, int64_t n, const uint8_t *w, const uint8_t *a)
{
    size_t wb = ms_type_block_bytes(type);
    bool q81 = type == MS_TYPE_Q4_1 || type == MS_TYPE_Q5_1;
    size_t ab = q81 ? 36 : 34;
    float sum = 0;
    int q[32];
    for (int64_t i = 0; i < n / 32; i++, w += wb, a += ab) {
        unpack32(type, w, q);
        const int8_t *y = (const int8_t *)(a + (q81 ? 4 : 2));
        int isum = 0;
        for (int j = 0; j < 32; j++) isum += q[j] * y[j];
        if (q81) sum += h2f(w) * h2f(a) * (float)isum + h2f(w + 2) * h2f(a + 2);
        else sum += (float)isum * (w32_scale(type, w) * h2f(a));
    }
    return sum;
}

/* K-quant weights of one super-block as integers with per-16 scales:
 * value = d*scale16[e/16]*q[e] - dmin*min16[e/16] (min16 0 when none). */
static void unpack_k(int type, const uint8_t *b, int *q, int *scale16, int *min16,
                     float *d, float *dmin)
{
    switch (type) {
    case MS_TYPE_Q2_K:
        for (int e = 0; e < 256; e++) {
            int h = e / 128, k = (e % 128) / 32, l = e % 32;
            q[e] = (b[16 + 32 * h + l] >> (2 * k)) & 3;
        }
        for (int i = 0; i < 16; i++) { scale16[i] = b[i] & 15; min16[i] = b[i] >> 4; }
        *d = h2f(b + 80);
        *dmin = h2f(b + 82);
        break;
    case MS_TYPE_Q3_K: {
        int8_t sc[16];
        msq_q3k_scales(b + 96, sc);
        for (int e = 0; e < 256; e++) {
            int h = e / 128, k = (e % 128) / 32, l = e % 32;
            int v = (b[32 + 32 * h + l] >> (2 * k)) & 3;
            q[e] = (b[l] & (1 << (4 * h + k))) ? v : v - 4;
        }
        for (int i = 0; i < 16; i++) { scale16[i] = sc[i]; min16[i] = 0; }
        *d = h2f(b + 108);
        *dmin = 0;
        break;
    }
    case MS_TYPE_Q4_K: case MS_TYPE_Q5_K: {
        bool five = type == MS_TYPE_Q5_K;
        uint8_t sc[8], m[8];
        msq_q4k_scales(b + 4, sc, m);
        const uint8_t *qh = b + 16, *qs = five ? b + 48 : b + 16;
        for (int e = 0; e < 256; e++) {
            int p = e / 64, l = e % 32, hi = (e % 64) >= 32;
            int v = hi ? qs[32 * p + l] >> 4 : qs[32 * p + l] & 15;
            if (five) v |= ((qh[l] >> (2 * p + hi)) & 1) << 4;
            q[e] = v;
        }
        for (int i = 0; i < 16; i++) { scale16[i] = sc[i / 2]; min16[i] = m[i / 2]; }
        *d = h2f(b);
        *dmin = h2f(b + 2);
        break;
    }
    case MS_TYPE_Q6_K:
        for (int e = 0; e < 256; e++) {
            int h = e / 128, g = (e % 128) / 32, l = e % 32;
            const uint8_t *ql = b + 64 * h, *qh = b + 128 + 32 * h;
            int low = g & 1 ? ql[l + 32] : ql[l];
            low = g >= 2 ? low >> 4 : low & 15;
            q[e] = (low | ((qh[l] >> (2 * g)) & 3) << 4) - 32;
        }
        for (int i = 0; i < 16; i++) { scale16[i] = (int8_t)b[192 + i]; min16[i] = 0; }
        *d = h2f(b + 208);
        *dmin = 0;
        break;
    default: break;
    }
}

static float dot_k_scalar(int type, int64_t n, const uint8_t *w, const uint8_t *a)
{
    size_t wb = ms_type_block_bytes(type);
    float sum = 0;
    int q[256], sc[16], mn[16];
    for (int64_t i = 0; i < n / 256; i++, w += wb, a += 292) {
        float d = 0, dmin = 0;
        unpack_k(type, w, q, sc, mn, &d, &dmin);
        const int8_t *y = (const int8_t *)(a + 4);
        int isum = 0, msum = 0;
        for (int g = 0; g < 16; g++) {
            int s = 0;
            for (int j = 0; j < 16; j++) s += q[16 * g + j] * y[16 * g + j];
            isum += sc[g] * s;
            msum += mn[g] * (int16_t)msq_rd16(a + 260 + 2 * g);   /* min via bsums */
        }
        float da = rdf32(a);
        sum += da * d * (float)isum - da * dmin * (float)msum;
    }
    return sum;
}

float msq_vec_dot_scalar(int wtype, int64_t n, const void *wrow, const void *act)
{
    switch (wtype) {
    case MS_TYPE_F32: return dot_f32(n, wrow, act);
    case MS_TYPE_F16: return dot_half(n, wrow, act, false);
    case MS_TYPE_BF16: return dot_half(n, wrow, act, true);
    case MS_TYPE_Q8_0: case MS_TYPE_Q4_0: case MS_TYPE_Q4_1:
    case MS_TYPE_Q5_0: case MS_TYPE_Q5_1: case MS_TYPE_IQ4_NL: case MS_TYPE_MXFP4:
        return dot_q32_scalar(wtype, n, wrow, act);
    case MS_TYPE_Q2_K: case MS_TYPE_Q3_K: case MS_TYPE_Q4_K:
    case MS_TYPE_Q5_K: case MS_TYPE_Q6_K:
        return dot_k_scalar(wtype, n, wrow, act);
    default: return 0.f;
    }
}

/* ====================================================== public entry points */

typedef bool (*GemmFn)(int, int64_t, int64_t, const void *, int64_t, const void *, float *, int64_t);
typedef bool (*DotFn)(int, int64_t, const void *, const void *, float *);

static GemmFn gemm_fn(int isa)
{
#ifdef MSQ_HAVE_X86_KERNELS
    switch (isa) {
    case MS_ISA_AVX2: return msq_gemm_avx2;
    case MS_ISA_AVXVNNI: return msq_gemm_avxvnni;
    case MS_ISA_AVX512: return msq_gemm_avx512;
    case MS_ISA_AVX512BF16: return msq_gemm_avx512bf16;
    default: break;
    }
#endif
    (void)isa;
    return NULL;
}

static DotFn dot_fn(int isa)
{
#ifdef MSQ_HAVE_X86_KERNELS
    switch (isa) {
    case MS_ISA_AVX2: return msq_vec_dot_avx2;
    case MS_ISA_AVXVNNI: return msq_vec_dot_avxvnni;
    case MS_ISA_AVX512: return msq_vec_dot_avx512;
    case MS_ISA_AVX512BF16: return msq_vec_dot_avx512bf16;
    default: break;
    }
#endif
    (void)isa;
    return NULL;
}

static float vec_dot_on(int isa, int wtype, int64_t n, const void *wrow, const void *act)
{
    DotFn f = dot_fn(isa);
    float out;
    if (f && f(wtype, n, wrow, act, &out)) return out;
    return msq_vec_dot_scalar(wtype, n, wrow, act);
}

static void gemm_on(int isa, int wtype, int64_t n, int64_t nrows, const void *w,
                    int64_t nt, const void *act, float *Y, int64_t ldy)
{
    if (nrows <= 0 || nt <= 0) return;
    GemmFn f = gemm_fn(isa);
    if (f && f(wtype, n, nrows, w, nt, act, Y, ldy)) return;
    const size_t rb = ms_row_bytes(wtype, n);
    const size_t ab = ms_row_bytes(ms_vec_dot_type(wtype), n);
    const uint8_t *W = w, *A = act;
    for (int64_t t = 0; t < nt; t++)
        for (int64_t r = 0; r < nrows; r++)
            Y[t * ldy + r] = msq_vec_dot_scalar(wtype, n, W + rb * (size_t)r, A + ab * (size_t)t);
}

float ms_vec_dot(int wtype, int64_t n, const void *wrow, const void *act)
{
    return vec_dot_on(ms_isa_active(), wtype, n, wrow, act);
}

void ms_gemv(int wtype, int64_t n, int64_t nrows, const void *w, const void *act, float *y)
{
    gemm_on(ms_isa_active(), wtype, n, nrows, w, 1, act, y, nrows);
}

void ms_gemm(int wtype, int64_t n, int64_t nrows, const void *w,
             int64_t nt, const void *act, float *Y, int64_t ldy)
{
    gemm_on(ms_isa_active(), wtype, n, nrows, w, nt, act, Y, ldy);
}

int ms_vec_dot_isa(int isa, int wtype, int64_t n, const void *wrow, const void *act, float *out)
{
    if (!ms_isa_available(isa)) return MS_EUNSUPPORTED;
    *out = vec_dot_on(isa, wtype, n, wrow, act);
    return 0;
}

int ms_gemm_isa(int isa, int wtype, int64_t n, int64_t nrows, const void *w,
                int64_t nt, const void *act, float *Y, int64_t ldy)
{
    if (!ms_isa_available(isa)) return MS_EUNSUPPORTED;
    gemm_on(isa, wtype, n, nrows, w, nt, act, Y, ldy);
    return 0;
}
