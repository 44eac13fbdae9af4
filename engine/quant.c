/* quant.c — ggml weight type table, dequantisation, reference quantisers
 * and activation conversion (ms_quantize_act).  Layouts and formulas:
 * GGUF-MOE.md §1.3, §2.1, §2.2.  The dot products live in quant-dot.c. */
#include "quant.h"
#include "quant-impl.h"
#include "ms-common.h"

#include <math.h>
#include <strings.h>

#if defined(__AVX2__) && defined(__F16C__)
#include <immintrin.h>
#define MSQ_ACT_SIMD 1
#else
#define MSQ_ACT_SIMD 0
#endif

typedef struct {
    const char *name;
    int64_t blck;   /* elements per block, 0 = no layout known */
    size_t bytes;   /* bytes per block */
} TypeInfo;

/* Indexed by ggml type id; removed ids have name NULL. */
static const TypeInfo type_table[MS_TYPE_COUNT] = {
    [0] = {"F32", 1, 4},         [1] = {"F16", 1, 2},
    [2] = {"Q4_0", 32, 18},      [3] = {"Q4_1", 32, 20},
    [6] = {"Q5_0", 32, 22},      [7] = {"Q5_1", 32, 24},
    [8] = {"Q8_0", 32, 34},      [9] = {"Q8_1", 32, 36},
    [10] = {"Q2_K", 256, 84},    [11] = {"Q3_K", 256, 110},
    [12] = {"Q4_K", 256, 144},   [13] = {"Q5_K", 256, 176},
    [14] = {"Q6_K", 256, 210},   [15] = {"Q8_K", 256, 292},
    [16] = {"IQ2_XXS", 256, 66}, [17] = {"IQ2_XS", 256, 74},
    [18] = {"IQ3_XXS", 256, 98}, [19] = {"IQ1_S", 256, 50},
    [20] = {"IQ4_NL", 32, 18},   [21] = {"IQ3_S", 256, 110},
    [22] = {"IQ2_S", 256, 82},   [23] = {"IQ4_XS", 256, 136},
    [24] = {"I8", 1, 1},         [25] = {"I16", 1, 2},
    [26] = {"I32", 1, 4},        [27] = {"I64", 1, 8},
    [28] = {"F64", 1, 8},        [29] = {"IQ1_M", 256, 56},
    [30] = {"BF16", 1, 2},
    [34] = {"TQ1_0", 256, 54},   [35] = {"TQ2_0", 256, 66},
    [39] = {"MXFP4", 32, 17},
    /* layouts not verified from the docs we have: known names, no size */
    [40] = {"NVFP4", 0, 0},      [41] = {"Q1_0", 0, 0},
    [42] = {"Q2_0", 0, 0},
};

const char *ms_type_name(int type)
{
    /* static strings for the removed / unknown cases (no mutable state) */
    static const char *const removed[MS_TYPE_COUNT] = {
        [4] = "removed(4)", [5] = "removed(5)", [31] = "removed(31)",
        [32] = "removed(32)", [33] = "removed(33)", [36] = "removed(36)",
        [37] = "removed(37)", [38] = "removed(38)",
    };
    if (type >= 0 && type < MS_TYPE_COUNT) {
        if (type_table[type].name) return type_table[type].name;
        if (removed[type]) return removed[type];
    }
    return "unknown";
}

int ms_type_from_name(const char *name)
{
    if (!name) return -1;
    for (int i = 0; i < MS_TYPE_COUNT; i++)
        if (type_table[i].name && strcasecmp(type_table[i].name, name) == 0) return i;
    return -1;
}

int64_t ms_type_block_elems(int type)
{
    return type >= 0 && type < MS_TYPE_COUNT ? type_table[type].blck : 0;
}

size_t ms_type_block_bytes(int type)
{
    return type >= 0 && type < MS_TYPE_COUNT ? type_table[type].bytes : 0;
}

bool ms_type_is_supported(int type)
{
    switch (type) {
    case MS_TYPE_F32: case MS_TYPE_F16: case MS_TYPE_BF16:
    case MS_TYPE_Q8_0: case MS_TYPE_Q4_0: case MS_TYPE_Q4_1:
    case MS_TYPE_Q5_0: case MS_TYPE_Q5_1:
    case MS_TYPE_Q2_K: case MS_TYPE_Q3_K: case MS_TYPE_Q4_K:
    case MS_TYPE_Q5_K: case MS_TYPE_Q6_K:
    case MS_TYPE_IQ4_NL: case MS_TYPE_MXFP4:
        return true;
    default:
        return false;
    }
}

size_t ms_row_bytes(int type, int64_t n)
{
    int64_t b = ms_type_block_elems(type);
    if (b <= 0 || n < 0) return 0;
    return (size_t)(n / b) * ms_type_block_bytes(type);
}

/* ---------------------------------------------------------------- helpers */

static inline float h2f(const uint8_t *p) { return ms_fp16_to_fp32(msq_rd16(p)); }
static inline void f2h(uint8_t *p, float f) { msq_wr16(p, ms_fp32_to_fp16(f)); }

/* Round half to even for |v| < 2^22, the way ggml's nearest_int does
 * (adding 1.5*2^23 forces the rounding in the float adder). */
static inline int nearest_int(float v)
{
    float f = v + 12582912.f;
    return (int)(ms_fp32_to_bits(f) & 0x007fffff) - 0x00400000;
}

/* ------------------------------------------------------------ dequantise */

/* IQ4_NL's non-linear 4-bit levels (GGUF-MOE.md §2.1). */
const int8_t msq_iq4nl_values[16] = {
    -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,
};
/* MXFP4: the E2M1 values times two (so the E8M0 scale is halved). */
const int8_t msq_mxfp4_values[16] = {
    0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12,
};

static void deq_lut4(const uint8_t *qs, float d, const int8_t *lut, float *y)
{
    for (int j = 0; j < 16; j++) {
        y[j] = lut[qs[j] & 15] * d;
        y[j + 16] = lut[qs[j] >> 4] * d;
    }
}

static void deq_q8_0(const uint8_t *b, float *y)
{
    float d = h2f(b);
    for (int j = 0; j < 32; j++) y[j] = (int8_t)b[2 + j] * d;
}

static void deq_q4_0(const uint8_t *b, float *y)
{
    float d = h2f(b);
    const uint8_t *qs = b + 2;
    for (int j = 0; j < 16; j++) {
        y[j] = ((qs[j] & 15) - 8) * d;
        y[j + 16] = ((qs[j] >> 4) - 8) * d;
    }
}

static void deq_q4_1(const uint8_t *b, float *y)
{
    float d = h2f(b), m = h2f(b + 2);
    const uint8_t *qs = b + 4;
    for (int j = 0; j < 16; j++) {
        y[j] = (qs[j] & 15) * d + m;
        y[j + 16] = (qs[j] >> 4) * d + m;
    }
}

static void deq_q5_0(const uint8_t *b, float *y)
{
    float d = h2f(b);
    uint32_t qh = msq_rd32(b + 2);
    const uint8_t *qs = b + 6;
    for (int j = 0; j < 16; j++) {
        int lo = (qs[j] & 15) | (int)((qh >> j) & 1) << 4;
        int hi = (qs[j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
        y[j] = (lo - 16) * d;
        y[j + 16] = (hi - 16) * d;
    }
}

static void deq_q5_1(const uint8_t *b, float *y)
{
    float d = h2f(b), m = h2f(b + 2);
    uint32_t qh = msq_rd32(b + 4);
    const uint8_t *qs = b + 8;
    for (int j = 0; j < 16; j++) {
        int lo = (qs[j] & 15) | (int)((qh >> j) & 1) << 4;
        int hi = (qs[j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
        y[j] = lo * d + m;
        y[j + 16] = hi * d + m;
    }
}

static void deq_q2_k(const uint8_t *b, float *y)
{
    const uint8_t *sc = b, *qs = b + 16;
    float d = h2f(b + 80), dmin = h2f(b + 82);
    for (int h = 0; h < 2; h++)
        for (int k = 0; k < 4; k++)
            for (int l = 0; l < 32; l++) {
                int sb = 8 * h + 2 * k + (l >= 16);
                int q = (qs[32 * h + l] >> (2 * k)) & 3;
                y[128 * h + 32 * k + l] = d * (sc[sb] & 15) * q - dmin * (sc[sb] >> 4);
            }
}

void msq_q3k_scales(const uint8_t *b12, int8_t *sc)
{
    for (int i = 0; i < 16; i++) {
        int lo = i < 8 ? b12[i] & 15 : b12[i - 8] >> 4;
        int hi = (b12[8 + i % 4] >> (2 * (i / 4))) & 3;
        sc[i] = (int8_t)((lo | hi << 4) - 32);
    }
}

static void deq_q3_k(const uint8_t *b, float *y)
{
    const uint8_t *hm = b, *qs = b + 32;
    int8_t sc[16];
    msq_q3k_scales(b + 96, sc);
    float d = h2f(b + 108);
    for (int h = 0; h < 2; h++)
        for (int k = 0; k < 4; k++)
            for (int l = 0; l < 32; l++) {
                int q = (qs[32 * h + l] >> (2 * k)) & 3;
                if (!(hm[l] & (1 << (4 * h + k)))) q -= 4;
                y[128 * h + 32 * k + l] = d * sc[8 * h + 2 * k + (l >= 16)] * q;
            }
}

static void deq_q45_k(const uint8_t *b, float *y, bool five)
{
    float d = h2f(b), dmin = h2f(b + 2);
    uint8_t sc[8], m[8];
    msq_q4k_scales(b + 4, sc, m);
    const uint8_t *qh = b + 16, *qs = five ? b + 48 : b + 16;
    for (int p = 0; p < 4; p++)
        for (int l = 0; l < 32; l++) {
            int lo = qs[32 * p + l] & 15, hi = qs[32 * p + l] >> 4;
            if (five) {
                lo |= ((qh[l] >> (2 * p)) & 1) << 4;
                hi |= ((qh[l] >> (2 * p + 1)) & 1) << 4;
            }
            y[64 * p + l] = d * sc[2 * p] * lo - dmin * m[2 * p];
            y[64 * p + 32 + l] = d * sc[2 * p + 1] * hi - dmin * m[2 * p + 1];
        }
}

/* Q6_K: 6-bit value (0..63) of element e, the layout of GGUF-MOE §2.1. */
static inline int q6k_val(const uint8_t *b, int e)
{
    int h = e / 128, g = (e % 128) / 32, l = e % 32;
    const uint8_t *ql = b + 64 * h, *qh = b + 128 + 32 * h;
    int low = g & 1 ? ql[l + 32] : ql[l];
    low = g >= 2 ? low >> 4 : low & 15;
    return low | ((qh[l] >> (2 * g)) & 3) << 4;
}

static void deq_q6_k(const uint8_t *b, float *y)
{
    float d = h2f(b + 208);
    const int8_t *sc = (const int8_t *)(b + 192);
    for (int e = 0; e < 256; e++) y[e] = d * sc[e / 16] * (q6k_val(b, e) - 32);
}

void ms_dequantize_row(int type, const void *src, float *dst, int64_t n)
{
    const uint8_t *s = src;
    int64_t bl = ms_type_block_elems(type);
    size_t bb = ms_type_block_bytes(type);
    if (bl <= 0) return;
    switch (type) {
    case MS_TYPE_F32: memcpy(dst, src, (size_t)n * 4); return;
    case MS_TYPE_F16:
        for (int64_t i = 0; i < n; i++) dst[i] = h2f(s + 2 * i);
        return;
    case MS_TYPE_BF16:
        for (int64_t i = 0; i < n; i++) dst[i] = ms_bf16_to_fp32(msq_rd16(s + 2 * i));
        return;
    default: break;
    }
    for (int64_t i = 0; i < n / bl; i++, s += bb, dst += bl) {
        switch (type) {
        case MS_TYPE_Q8_0: deq_q8_0(s, dst); break;
        case MS_TYPE_Q4_0: deq_q4_0(s, dst); break;
        case MS_TYPE_Q4_1: deq_q4_1(s, dst); break;
        case MS_TYPE_Q5_0: deq_q5_0(s, dst); break;
        case MS_TYPE_Q5_1: deq_q5_1(s, dst); break;
        case MS_TYPE_Q2_K: deq_q2_k(s, dst); break;
        case MS_TYPE_Q3_K: deq_q3_k(s, dst); break;
        case MS_TYPE_Q4_K: deq_q45_k(s, dst, false); break;
        case MS_TYPE_Q5_K: deq_q45_k(s, dst, true); break;
        case MS_TYPE_Q6_K: deq_q6_k(s, dst); break;
        case MS_TYPE_IQ4_NL: deq_lut4(s + 2, h2f(s), msq_iq4nl_values, dst); break;
        case MS_TYPE_MXFP4: deq_lut4(s + 1, msq_e8m0_half(s[0]), msq_mxfp4_values, dst); break;
        case MS_TYPE_Q8_1: {   /* activation type; d @0, s @2, qs @4 */
            float d = h2f(s);
            for (int j = 0; j < 32; j++) dst[j] = (int8_t)s[4 + j] * d;
            break;
        }
        case MS_TYPE_Q8_K: {
            float d;
            memcpy(&d, s, 4);
            for (int j = 0; j < 256; j++) dst[j] = (int8_t)s[4 + j] * d;
            break;
        }
        default:
            memset(dst, 0, (size_t)bl * sizeof *dst);   /* no formula: zeros, never garbage */
            break;
        }
    }
}

/* ------------------------------------------------------------- quantise */

/* Simple 32-block quantisers in the ggml reference style. */
static void qnt_q8_0(const float *x, uint8_t *b)
{
    float amax = 0;
    for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
    float d = amax / 127.f, id = d ? 1.f / d : 0.f;
    f2h(b, d);
    for (int j = 0; j < 32; j++) b[2 + j] = (uint8_t)(int8_t)roundf(x[j] * id);
}

/* Signed max-magnitude element: mapping it to the extreme level -nhalf
 * uses the full asymmetric range [-nhalf, nhalf-1]. */
static float signed_absmax(const float *x, int n)
{
    float amax = 0, max = 0;
    for (int j = 0; j < n; j++)
        if (fabsf(x[j]) > amax) { amax = fabsf(x[j]); max = x[j]; }
    return max;
}

static void qnt_q4_0_5_0(const float *x, uint8_t *b, bool five)
{
    int nh = five ? 16 : 8, top = 2 * nh - 1;
    float d = signed_absmax(x, 32) / -(float)nh, id = d ? 1.f / d : 0.f;
    uint8_t q[32];
    for (int j = 0; j < 32; j++) {
        int v = (int)floorf(x[j] * id + nh + 0.5f);
        q[j] = (uint8_t)MS_MAX(0, MS_MIN(top, v));
    }
    f2h(b, d);
    uint8_t *qs = b + (five ? 6 : 2);
    uint32_t qh = 0;
    for (int j = 0; j < 16; j++) {
        qs[j] = (uint8_t)((q[j] & 15) | (q[j + 16] & 15) << 4);
        qh |= (uint32_t)(q[j] >> 4) << j | (uint32_t)(q[j + 16] >> 4) << (j + 16);
    }
    if (five) msq_wr32(b + 2, qh);
}

static void qnt_q4_1_5_1(const float *x, uint8_t *b, bool five)
{
    int top = five ? 31 : 15;
    float mn = x[0], mx = x[0];
    for (int j = 1; j < 32; j++) { mn = fminf(mn, x[j]); mx = fmaxf(mx, x[j]); }
    float d = (mx - mn) / top, id = d ? 1.f / d : 0.f;
    f2h(b, d);
    f2h(b + 2, mn);
    /* quantise against the stored (f16-rounded) min so the offset is honest */
    float m = h2f(b + 2);
    uint8_t q[32];
    for (int j = 0; j < 32; j++) {
        int v = (int)floorf((x[j] - m) * id + 0.5f);
        q[j] = (uint8_t)MS_MAX(0, MS_MIN(top, v));
    }
    uint8_t *qs = b + (five ? 8 : 4);
    uint32_t qh = 0;
    for (int j = 0; j < 16; j++) {
        qs[j] = (uint8_t)((q[j] & 15) | (q[j + 16] & 15) << 4);
        qh |= (uint32_t)(q[j] >> 4) << j | (uint32_t)(q[j + 16] >> 4) << (j + 16);
    }
    if (five) msq_wr32(b + 4, qh);
}

/* Affine fit x ≈ s*L - m with L in [0, nmax], s >= 0, m >= 0 (the K-quant
 * "scale and min" form).  Tries a small grid of candidate scales, refits
 * (s, m) by least squares for each rounding, keeps the lowest error. */
static void fit_affine(const float *x, int n, int nmax, float *s_out, float *m_out)
{
    float lo = x[0], hi = x[0];
    for (int j = 1; j < n; j++) { lo = fminf(lo, x[j]); hi = fmaxf(hi, x[j]); }
    if (lo > 0) lo = 0;   /* min is stored as a non-negative offset */
    if (hi <= lo) { *s_out = 0; *m_out = -lo; return; }
    float best_s = (hi - lo) / nmax, best_m = -lo, best_err = INFINITY;
    for (int k = -6; k <= 12; k++) {
        float iscale = (nmax + 0.1f * k) / (hi - lo);
        if (iscale <= 0) continue;
        double sl = 0, sll = 0, sx = 0, sxl = 0;
        int L[256];
        for (int j = 0; j < n; j++) {
            int l = nearest_int(iscale * (x[j] - lo));
            L[j] = MS_MAX(0, MS_MIN(nmax, l));
            sl += L[j]; sll += (double)L[j] * L[j]; sx += x[j]; sxl += (double)x[j] * L[j];
        }
        double det = n * sll - sl * sl;
        if (det <= 0) continue;
        double s = (n * sxl - sl * sx) / det, off = (sll * sx - sl * sxl) / det;
        if (off > 0) { off = 0; s = sll > 0 ? sxl / sll : 0; }
        if (s < 0) continue;
        double err = 0;
        for (int j = 0; j < n; j++) {
            double e = s * L[j] + off - x[j];
            err += e * e;
        }
        if (err < best_err) { best_err = err; best_s = (float)s; best_m = (float)-off; }
    }
    *s_out = best_s;
    *m_out = best_m;
}

/* Symmetric fit x ≈ s*L with L in [-nh, nh-1]; returns s (may be negative
 * so the largest-magnitude element can use the extra negative level). */
static float fit_symmetric(const float *x, int n, int nh)
{
    float max = signed_absmax(x, n);
    if (max == 0) return 0;
    float best_s = max / -nh, best_err = INFINITY;
    for (int k = -8; k <= 8; k++) {
        float iscale = -(nh + 0.1f * k) / max;
        double sxl = 0, sll = 0;
        int L[256];
        for (int j = 0; j < n; j++) {
            L[j] = MS_MAX(-nh, MS_MIN(nh - 1, nearest_int(iscale * x[j])));
            sxl += (double)x[j] * L[j];
            sll += (double)L[j] * L[j];
        }
        if (sll <= 0) continue;
        double s = sxl / sll, err = 0;
        for (int j = 0; j < n; j++) {
            double e = s * L[j] - x[j];
            err += e * e;
        }
        if (err < best_err) { best_err = err; best_s = (float)s; }
    }
    return best_s;
}

static inline int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* Per-element level for x ≈ s*L - m, L clamped to [0, nmax]. */
static inline int level_affine(float x, float s, float m, int nmax)
{
    if (s == 0) return 0;
    return clampi(nearest_int((x + m) / s), 0, nmax);
}

static void qnt_q2_k(const float *x, uint8_t *b)
{
    float s[16], m[16], smax = 0, mmax = 0;
    for (int i = 0; i < 16; i++) {
        fit_affine(x + 16 * i, 16, 3, &s[i], &m[i]);
        smax = fmaxf(smax, s[i]);
        mmax = fmaxf(mmax, m[i]);
    }
    float d = smax / 15, dm = mmax / 15;
    f2h(b + 80, d);
    f2h(b + 82, dm);
    d = h2f(b + 80);
    dm = h2f(b + 82);
    uint8_t sc[16];
    for (int i = 0; i < 16; i++) {
        int qs = d ? clampi(nearest_int(s[i] / d), 0, 15) : 0;
        int qm = dm ? clampi(nearest_int(m[i] / dm), 0, 15) : 0;
        sc[i] = (uint8_t)(qs | qm << 4);
        b[i] = sc[i];
    }
    uint8_t *q = b + 16;
    memset(q, 0, 64);
    for (int e = 0; e < 256; e++) {
        int i = e / 16, h = e / 128, k = (e % 128) / 32, l = e % 32;
        int L = level_affine(x[e], d * (sc[i] & 15), dm * (sc[i] >> 4), 3);
        q[32 * h + l] |= (uint8_t)(L << (2 * k));
    }
}

static void qnt_q3_k(const float *x, uint8_t *b)
{
    float s[16], amax = 0, smax = 0;
    for (int i = 0; i < 16; i++) {
        s[i] = fit_symmetric(x + 16 * i, 16, 4);
        if (fabsf(s[i]) > amax) { amax = fabsf(s[i]); smax = s[i]; }
    }
    float d = smax / -32;   /* scales in [-32, 31] */
    f2h(b + 108, d);
    d = h2f(b + 108);
    int sc[16];
    uint8_t *sb = b + 96;
    memset(sb, 0, 12);
    for (int i = 0; i < 16; i++) {
        sc[i] = d ? clampi(nearest_int(s[i] / d), -32, 31) : 0;
        int u = sc[i] + 32;
        if (i < 8) sb[i] |= (uint8_t)(u & 15);
        else sb[i - 8] |= (uint8_t)((u & 15) << 4);
        sb[8 + i % 4] |= (uint8_t)((u >> 4) << (2 * (i / 4)));
    }
    uint8_t *hm = b, *q = b + 32;
    memset(hm, 0, 32);
    memset(q, 0, 64);
    for (int e = 0; e < 256; e++) {
        float es = d * sc[e / 16];
        int L = es ? clampi(nearest_int(x[e] / es), -4, 3) : 0;
        int u = L + 4, h = e / 128, k = (e % 128) / 32, l = e % 32;
        q[32 * h + l] |= (uint8_t)((u & 3) << (2 * k));
        if (u & 4) hm[l] |= (uint8_t)(1 << (4 * h + k));
    }
}

static void pack_k_scales(const uint8_t *sc, const uint8_t *m, uint8_t *q)
{
    for (int j = 0; j < 4; j++) {
        q[j] = (uint8_t)(sc[j] | (sc[j + 4] >> 4) << 6);
        q[j + 4] = (uint8_t)(m[j] | (m[j + 4] >> 4) << 6);
        q[j + 8] = (uint8_t)((sc[j + 4] & 15) | (m[j + 4] & 15) << 4);
    }
}

static void qnt_q45_k(const float *x, uint8_t *b, bool five)
{
    int nmax = five ? 31 : 15;
    float s[8], m[8], smax = 0, mmax = 0;
    for (int j = 0; j < 8; j++) {
        fit_affine(x + 32 * j, 32, nmax, &s[j], &m[j]);
        smax = fmaxf(smax, s[j]);
        mmax = fmaxf(mmax, m[j]);
    }
    f2h(b, smax / 63);
    f2h(b + 2, mmax / 63);
    float d = h2f(b), dm = h2f(b + 2);
    uint8_t sc[8], mn[8];
    for (int j = 0; j < 8; j++) {
        sc[j] = (uint8_t)(d ? clampi(nearest_int(s[j] / d), 0, 63) : 0);
        mn[j] = (uint8_t)(dm ? clampi(nearest_int(m[j] / dm), 0, 63) : 0);
    }
    pack_k_scales(sc, mn, b + 4);
    uint8_t *qh = b + 16, *qs = five ? b + 48 : b + 16;
    if (five) memset(qh, 0, 32);
    memset(qs, 0, 128);
    for (int e = 0; e < 256; e++) {
        int j = e / 32, p = e / 64, l = e % 32, hi = (e % 64) >= 32;
        int L = level_affine(x[e], d * sc[j], dm * mn[j], nmax);
        qs[32 * p + l] |= (uint8_t)((L & 15) << (4 * hi));
        if (five && (L & 16)) qh[l] |= (uint8_t)(1 << (2 * p + hi));
    }
}

static void qnt_q6_k(const float *x, uint8_t *b)
{
    float s[16], amax = 0, smax = 0;
    for (int i = 0; i < 16; i++) {
        s[i] = fit_symmetric(x + 16 * i, 16, 32);
        if (fabsf(s[i]) > amax) { amax = fabsf(s[i]); smax = s[i]; }
    }
    float d = smax / -128;   /* int8 scales */
    f2h(b + 208, d);
    d = h2f(b + 208);
    int8_t *sc = (int8_t *)(b + 192);
    for (int i = 0; i < 16; i++) sc[i] = (int8_t)(d ? clampi(nearest_int(s[i] / d), -128, 127) : 0);
    memset(b, 0, 192);
    for (int e = 0; e < 256; e++) {
        float es = d * sc[e / 16];
        int u = (es ? clampi(nearest_int(x[e] / es), -32, 31) : 0) + 32;
        int h = e / 128, g = (e % 128) / 32, l = e % 32;
        uint8_t *ql = b + 64 * h, *qh = b + 128 + 32 * h;
        ql[(g & 1) ? l + 32 : l] |= (uint8_t)((u & 15) << (g >= 2 ? 4 : 0));
        qh[l] |= (uint8_t)((u >> 4) << (2 * g));
    }
}

/* Index of the level of lut (16 entries, any order) nearest to v; the
 * lower index on ties, so the result is deterministic. */
static int nearest_level(const int8_t *lut, float v)
{
    int best = 0;
    float be = INFINITY;
    for (int k = 0; k < 16; k++) {
        float e = fabsf(v - (float)lut[k]);
        if (e < be) { be = e; best = k; }
    }
    return best;
}

/* IQ4_NL: scale candidates around "largest magnitude onto an end level",
 * each refitted by least squares for its rounding; the lowest error wins. */
static void qnt_iq4_nl(const float *x, uint8_t *b)
{
    float amax = 0, max = 0;
    for (int j = 0; j < 32; j++)
        if (fabsf(x[j]) > amax) { amax = fabsf(x[j]); max = x[j]; }
    memset(b, 0, 18);
    if (amax == 0) return;
    float best_d = max / -127.f, best_err = INFINITY;
    for (int k = -9; k <= 9; k++) {
        float d0 = max / (-127.f + 2.0f * (float)k);
        if (!(d0 != 0)) continue;
        int L[32];
        double sxl = 0, sll = 0;
        for (int j = 0; j < 32; j++) {
            L[j] = nearest_level(msq_iq4nl_values, x[j] / d0);
            sxl += (double)x[j] * msq_iq4nl_values[L[j]];
            sll += (double)msq_iq4nl_values[L[j]] * msq_iq4nl_values[L[j]];
        }
        float d = sll > 0 ? (float)(sxl / sll) : d0;
        float dh = ms_fp16_to_fp32(ms_fp32_to_fp16(d));
        double err = 0;
        for (int j = 0; j < 32; j++) {
            double e = (double)dh * msq_iq4nl_values[nearest_level(msq_iq4nl_values, x[j] / dh)] - x[j];
            err += e * e;
        }
        if (err < best_err) { best_err = (float)err; best_d = dh; }
    }
    f2h(b, best_d);
    float d = h2f(b);
    for (int j = 0; j < 16; j++) {
        int lo = d ? nearest_level(msq_iq4nl_values, x[j] / d) : 8;
        int hi = d ? nearest_level(msq_iq4nl_values, x[j + 16] / d) : 8;
        b[2 + j] = (uint8_t)(lo | hi << 4);
    }
}

/* MXFP4: the smallest power-of-two scale that keeps the largest magnitude
 * within the top level (12 * 2^(e-128)), then nearest level per element. */
static void qnt_mxfp4(const float *x, uint8_t *b)
{
    float amax = 0;
    for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
    int e = 0;
    while (e < 255 && 12.0f * msq_e8m0_half((uint8_t)e) < amax) e++;
    b[0] = (uint8_t)e;
    float d = msq_e8m0_half((uint8_t)e);
    for (int j = 0; j < 16; j++) {
        int lo = nearest_level(msq_mxfp4_values, x[j] / d), hi = nearest_level(msq_mxfp4_values, x[j + 16] / d);
        b[1 + j] = (uint8_t)(lo | hi << 4);
    }
}

int ms_quantize_row(int type, const float *src, void *dst, int64_t n)
{
    if (!ms_type_is_supported(type)) return MS_EUNSUPPORTED;
    int64_t bl = ms_type_block_elems(type);
    if (n < 0 || n % bl) return MS_EINVAL;
    uint8_t *d = dst;
    size_t bb = ms_type_block_bytes(type);
    switch (type) {
    case MS_TYPE_F32: memcpy(dst, src, (size_t)n * 4); return MS_OK;
    case MS_TYPE_F16:
        for (int64_t i = 0; i < n; i++) f2h(d + 2 * i, src[i]);
        return MS_OK;
    case MS_TYPE_BF16:
        for (int64_t i = 0; i < n; i++) msq_wr16(d + 2 * i, ms_fp32_to_bf16(src[i]));
        return MS_OK;
    default: break;
    }
    for (int64_t i = 0; i < n / bl; i++, src += bl, d += bb) {
        switch (type) {
        case MS_TYPE_Q8_0: qnt_q8_0(src, d); break;
        case MS_TYPE_Q4_0: qnt_q4_0_5_0(src, d, false); break;
        case MS_TYPE_Q5_0: qnt_q4_0_5_0(src, d, true); break;
        case MS_TYPE_Q4_1: qnt_q4_1_5_1(src, d, false); break;
        case MS_TYPE_Q5_1: qnt_q4_1_5_1(src, d, true); break;
        case MS_TYPE_Q2_K: qnt_q2_k(src, d); break;
        case MS_TYPE_Q3_K: qnt_q3_k(src, d); break;
        case MS_TYPE_Q4_K: qnt_q45_k(src, d, false); break;
        case MS_TYPE_Q5_K: qnt_q45_k(src, d, true); break;
        case MS_TYPE_Q6_K: qnt_q6_k(src, d); break;
        case MS_TYPE_IQ4_NL: qnt_iq4_nl(src, d); break;
        case MS_TYPE_MXFP4: qnt_mxfp4(src, d); break;
        default: return MS_EUNSUPPORTED;
        }
    }
    return MS_OK;
}

/* ------------------------------------------------ activation conversion */

int ms_vec_dot_type(int wtype)
{
    switch (wtype) {
    case MS_TYPE_F32: case MS_TYPE_F16: case MS_TYPE_BF16: return wtype;
    case MS_TYPE_Q4_0: case MS_TYPE_Q5_0: case MS_TYPE_Q8_0:
    case MS_TYPE_IQ4_NL: case MS_TYPE_MXFP4: return MS_TYPE_Q8_0;
    case MS_TYPE_Q4_1: case MS_TYPE_Q5_1: return MS_TYPE_Q8_1;
    case MS_TYPE_Q2_K: case MS_TYPE_Q3_K: case MS_TYPE_Q4_K:
    case MS_TYPE_Q5_K: case MS_TYPE_Q6_K: return MS_TYPE_Q8_K;
    default: return -1;
    }
}

/* Q8_0 / Q8_1 as ggml's x86 SIMD path: d = amax/127, q = rne(x * (127/amax)). */
static void act_q8_0_1(const float *x, uint8_t *b, bool with_sum)
{
#if MSQ_ACT_SIMD
    /* same arithmetic, 8 lanes at a time (max, one multiply, RNE round) */
    __m256 v[4], mx = _mm256_setzero_ps();
    const __m256 sign = _mm256_set1_ps(-0.f);
    for (int k = 0; k < 4; k++) {
        v[k] = _mm256_loadu_ps(x + 8 * k);
        mx = _mm256_max_ps(mx, _mm256_andnot_ps(sign, v[k]));
    }
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    float amax = _mm_cvtss_f32(m4);
    float d = amax / 127.f, id = amax != 0.f ? 127.f / amax : 0.f;
    __m256 idv = _mm256_set1_ps(id);
    __m256i q[4];
    for (int k = 0; k < 4; k++)
        q[k] = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v[k], idv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    __m256i s16a = _mm256_packs_epi32(q[0], q[1]), s16b = _mm256_packs_epi32(q[2], q[3]);
    __m256i s8 = _mm256_packs_epi16(s16a, s16b);
    /* undo the in-lane interleave of the packs */
    s8 = _mm256_permutevar8x32_epi32(s8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256((__m256i *)(b + (with_sum ? 4 : 2)), s8);
    f2h(b, d);
    if (with_sum) {
        __m256i s = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
        __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4e));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xb1));
        f2h(b + 2, d * (float)_mm_cvtsi128_si32(s4));
    }
#else
    float amax = 0;
    for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
    float d = amax / 127.f, id = amax != 0.f ? 127.f / amax : 0.f;
    int8_t *qs = (int8_t *)(b + (with_sum ? 4 : 2));
    int sum = 0;
    for (int j = 0; j < 32; j++) {
        int q = (int)rintf(x[j] * id);   /* default FP env: round half even */
        qs[j] = (int8_t)q;
        sum += q;
    }
    f2h(b, d);
    if (with_sum) f2h(b + 2, d * (float)sum);
#endif
}

/* Q8_K as quantize_row_q8_K_ref: the first element of largest magnitude
 * fixes iscale = -127/max; q = min(127, nearest(iscale*x)); 16 sums of 16. */
static void act_q8_k(const float *x, uint8_t *b)
{
    float amax = 0, max = 0;
    for (int j = 0; j < 256; j++) {
        float ax = fabsf(x[j]);
        if (ax > amax) { amax = ax; max = x[j]; }
    }
    int8_t *qs = (int8_t *)(b + 4);
    if (amax == 0) {
        memset(b, 0, 292);
        return;
    }
    float iscale = -127.f / max;
#if MSQ_ACT_SIMD
    {
        /* RNE like nearest_int; packs saturation is the min(127, .) */
        __m256 is = _mm256_set1_ps(iscale);
        for (int j = 0; j < 256; j += 32) {
            __m256i q[4];
            for (int k = 0; k < 4; k++)
                q[k] = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + j + 8 * k), is),
                                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
            __m256i s8 = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
            s8 = _mm256_permutevar8x32_epi32(s8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
            _mm256_storeu_si256((__m256i *)(qs + j), s8);
        }
    }
#else
    for (int j = 0; j < 256; j++) qs[j] = (int8_t)MS_MIN(127, nearest_int(iscale * x[j]));
#endif
    for (int g = 0; g < 16; g++) {
        int s = 0;
        for (int j = 0; j < 16; j++) s += qs[16 * g + j];
        msq_wr16(b + 260 + 2 * g, (uint16_t)(int16_t)s);
    }
    float d = 1.f / iscale;
    memcpy(b, &d, 4);
}

void ms_quantize_act(int wtype, const float *x, void *dst, int64_t n)
{
    uint8_t *d = dst;
    switch (ms_vec_dot_type(wtype)) {
    case MS_TYPE_F32: memcpy(dst, x, (size_t)n * 4); break;
    case MS_TYPE_F16: {
        int64_t i = 0;
#if MSQ_ACT_SIMD
        /* F16C rounds to nearest even, like ms_fp32_to_fp16 */
        for (; i + 8 <= n; i += 8)
            _mm_storeu_si128((__m128i *)(d + 2 * i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
#endif
        for (; i < n; i++) f2h(d + 2 * i, x[i]);
        break;
    }
    case MS_TYPE_BF16:
        for (int64_t i = 0; i < n; i++) msq_wr16(d + 2 * i, ms_fp32_to_bf16(x[i]));
        break;
    case MS_TYPE_Q8_0:
        for (int64_t i = 0; i < n / 32; i++) act_q8_0_1(x + 32 * i, d + 34 * i, false);
        break;
    case MS_TYPE_Q8_1:
        for (int64_t i = 0; i < n / 32; i++) act_q8_0_1(x + 32 * i, d + 36 * i, true);
        break;
    case MS_TYPE_Q8_K:
        for (int64_t i = 0; i < n / 256; i++) act_q8_k(x + 256 * i, d + 292 * i);
        break;
    default: break;
    }
}
