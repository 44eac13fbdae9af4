/* test-quant.c — weight types, dequantisation, quantisers, activation
 * conversion and the llama.cpp-style dot products (engine/quant.h).
 *
 * Blocks are built here bit by bit from chosen integer fields (levels,
 * sub-block scales, f16 super-scales picked so every product is exact), and
 * expected values come from the formulas of GGUF-MOE.md §2 written out in
 * this file, independently of engine/quant.c. */
#include "mtest.h"
#include "ms-common.h"
#include "quant.h"
#include "quant-impl.h"
#include "ms-vexp.h"
#include "gguf.h"
#include "ms-cpu.h"

#include <math.h>
#include <stdint.h>

/* ---- deterministic random numbers ---- */
typedef struct { uint64_t s; } Rng;
static uint64_t rng_next(Rng *r)
{
    r->s ^= r->s << 13; r->s ^= r->s >> 7; r->s ^= r->s << 17;
    return r->s;
}
static int rng_int(Rng *r, int lo, int hi) { return lo + (int)(rng_next(r) % (uint64_t)(hi - lo + 1)); }
static float rng_unif(Rng *r) { return (float)((rng_next(r) >> 40) * 0x1p-24); }
static float rng_gauss(Rng *r)
{
    float u = rng_unif(r), v = rng_unif(r);
    if (u < 1e-7f) u = 1e-7f;
    return sqrtf(-2.f * logf(u)) * cosf(6.2831853f * v);
}

/* ---- bit packing helpers (little-endian bit order within the byte array) ---- */
static void put_bits(uint8_t *buf, int bitpos, int nbits, unsigned v)
{
    for (int i = 0; i < nbits; i++) {
        int b = bitpos + i;
        if ((v >> i) & 1) buf[b / 8] |= (uint8_t)(1u << (b % 8));
        else buf[b / 8] &= (uint8_t)~(1u << (b % 8));
    }
}
static void put_f16(uint8_t *p, float f)
{
    uint16_t h = ms_fp32_to_fp16(f);
    p[0] = (uint8_t)(h & 0xff);
    p[1] = (uint8_t)(h >> 8);
}
static float get_f16(const uint8_t *p) { return ms_fp16_to_fp32((uint16_t)(p[0] | p[1] << 8)); }

/* f16 scales with few mantissa bits, so d*scale*q is exact in float. */
static float pick_scale(Rng *r)
{
    static const float v[] = {0.5f, 0.25f, 1.5f, 0.046875f, 0.0078125f, 0.75f, 0.375f, 0.1875f};
    float s = v[rng_int(r, 0, 7)];
    return rng_int(r, 0, 3) == 0 ? -s : s;
}

/* Chosen fields of one block.  Value of element e:
 *   d * sc[e/16] * q[e] - dmin * mn[e/16] + m       (unused fields are 0/1) */
typedef struct {
    int n;            /* elements in the block */
    int q[256];
    int sc[16], mn[16];
    float d, dmin, m;
} Fields;

/* Build one block of `type` from random fields. */
static void make_block(int type, Rng *r, Fields *f, uint8_t *b)
{
    memset(f, 0, sizeof *f);
    for (int i = 0; i < 16; i++) f->sc[i] = 1;
    memset(b, 0, ms_type_block_bytes(type));
    f->d = pick_scale(r);
    switch (type) {
    case MS_TYPE_Q8_0:
        f->n = 32;
        put_f16(b, f->d);
        for (int j = 0; j < 32; j++) { f->q[j] = rng_int(r, -128, 127); b[2 + j] = (uint8_t)f->q[j]; }
        break;
    case MS_TYPE_Q4_0: case MS_TYPE_Q4_1: case MS_TYPE_Q5_0: case MS_TYPE_Q5_1: {
        bool five = type == MS_TYPE_Q5_0 || type == MS_TYPE_Q5_1;
        bool one = type == MS_TYPE_Q4_1 || type == MS_TYPE_Q5_1;
        int qsoff = 2 + (one ? 2 : 0) + (five ? 4 : 0), qhoff = one ? 4 : 2;
        f->n = 32;
        put_f16(b, f->d);
        if (one) { f->m = pick_scale(r) * 4; put_f16(b + 2, f->m); }
        for (int j = 0; j < 32; j++) {
            int u = rng_int(r, 0, five ? 31 : 15);
            f->q[j] = one ? u : u - (five ? 16 : 8);
            /* element j < 16: low nibble of byte j; j >= 16: high nibble of byte j-16 */
            put_bits(b + qsoff, j < 16 ? 8 * j : 8 * (j - 16) + 4, 4, (unsigned)u & 15);
            if (five) put_bits(b + qhoff, j, 1, (unsigned)u >> 4);
        }
        break;
    }
    case MS_TYPE_Q2_K:
        f->n = 256;
        f->dmin = pick_scale(r);
        put_f16(b + 80, f->d);
        put_f16(b + 82, f->dmin);
        for (int i = 0; i < 16; i++) {
            f->sc[i] = rng_int(r, 0, 15);
            f->mn[i] = rng_int(r, 0, 15);
            b[i] = (uint8_t)(f->sc[i] | f->mn[i] << 4);
        }
        for (int e = 0; e < 256; e++) {
            int h = e / 128, k = (e % 128) / 32, l = e % 32;
            f->q[e] = rng_int(r, 0, 3);
            put_bits(b + 16, 8 * (32 * h + l) + 2 * k, 2, (unsigned)f->q[e]);
        }
        break;
    case MS_TYPE_Q3_K:
        f->n = 256;
        put_f16(b + 108, f->d);
        for (int i = 0; i < 16; i++) {
            f->sc[i] = rng_int(r, -32, 31);
            unsigned u = (unsigned)(f->sc[i] + 32);
            put_bits(b + 96, i < 8 ? 8 * i : 8 * (i - 8) + 4, 4, u & 15);
            put_bits(b + 96, 8 * (8 + i % 4) + 2 * (i / 4), 2, u >> 4);
        }
        for (int e = 0; e < 256; e++) {
            int h = e / 128, k = (e % 128) / 32, l = e % 32;
            f->q[e] = rng_int(r, -4, 3);
            unsigned u = (unsigned)(f->q[e] + 4);
            put_bits(b + 32, 8 * (32 * h + l) + 2 * k, 2, u & 3);
            put_bits(b, 8 * l + 4 * h + k, 1, u >> 2);   /* hmask: set = no -4 */
        }
        break;
    case MS_TYPE_Q4_K: case MS_TYPE_Q5_K: {
        bool five = type == MS_TYPE_Q5_K;
        f->n = 256;
        f->dmin = pick_scale(r);
        put_f16(b, f->d);
        put_f16(b + 2, f->dmin);
        uint8_t *s = b + 4;
        for (int j = 0; j < 8; j++) {
            unsigned sc = (unsigned)rng_int(r, 0, 63), mn = (unsigned)rng_int(r, 0, 63);
            f->sc[2 * j] = f->sc[2 * j + 1] = (int)sc;
            f->mn[2 * j] = f->mn[2 * j + 1] = (int)mn;
            if (j < 4) {
                put_bits(s, 8 * j, 6, sc);
                put_bits(s, 8 * (j + 4), 6, mn);
            } else {
                put_bits(s, 8 * (j + 4), 4, sc & 15);
                put_bits(s, 8 * (j + 4) + 4, 4, mn & 15);
                put_bits(s, 8 * (j - 4) + 6, 2, sc >> 4);
                put_bits(s, 8 * j + 6, 2, mn >> 4);
            }
        }
        uint8_t *qs = b + (five ? 48 : 16), *qh = b + 16;
        for (int e = 0; e < 256; e++) {
            int p = e / 64, hi = (e % 64) / 32, l = e % 32;
            f->q[e] = rng_int(r, 0, five ? 31 : 15);
            put_bits(qs, 8 * (32 * p + l) + 4 * hi, 4, (unsigned)f->q[e] & 15);
            if (five) put_bits(qh, 8 * l + 2 * p + hi, 1, (unsigned)f->q[e] >> 4);
        }
        break;
    }
    case MS_TYPE_IQ4_NL: case MS_TYPE_MXFP4: {
        /* 4-bit codes indexing the level table; the block scale is an f16
         * (IQ4_NL) or an E8M0 byte e meaning 2^(e-128) (MXFP4) */
        static const int iq4nl[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};
        static const int mxfp4[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};
        bool nl = type == MS_TYPE_IQ4_NL;
        f->n = 32;
        if (nl) {
            put_f16(b, f->d);
        } else {
            int e = rng_int(r, 0, 6) == 0 ? rng_int(r, 0, 3) : rng_int(r, 110, 140);  /* subnormal scales too */
            b[0] = (uint8_t)e;
            f->d = ldexpf(1.0f, e - 128);
        }
        for (int j = 0; j < 32; j++) {
            int code = rng_int(r, 0, 15);
            f->q[j] = nl ? iq4nl[code] : mxfp4[code];
            /* element j < 16: low nibble of byte j; j >= 16: high nibble of byte j-16 */
            put_bits(b + (nl ? 2 : 1), j < 16 ? 8 * j : 8 * (j - 16) + 4, 4, (unsigned)code);
        }
        break;
    }
    case MS_TYPE_Q6_K:
        f->n = 256;
        put_f16(b + 208, f->d);
        for (int i = 0; i < 16; i++) { f->sc[i] = rng_int(r, -128, 127); b[192 + i] = (uint8_t)(int8_t)f->sc[i]; }
        for (int e = 0; e < 256; e++) {
            int h = e / 128, g = (e % 128) / 32, l = e % 32;
            f->q[e] = rng_int(r, -32, 31);
            unsigned u = (unsigned)(f->q[e] + 32);
            /* low 4 bits: ql[64h + l (+32 if g odd)], nibble high if g >= 2 */
            put_bits(b + 64 * h, 8 * (l + 32 * (g & 1)) + 4 * (g >= 2), 4, u & 15);
            put_bits(b + 128 + 32 * h, 8 * l + 2 * g, 2, u >> 4);
        }
        break;
    default:
        break;
    }
}

static float field_value(const Fields *f, int e)
{
    return f->d * (float)f->sc[e / 16] * (float)f->q[e] - f->dmin * (float)f->mn[e / 16] + f->m;
}

static const int qtypes[] = {
    MS_TYPE_Q8_0, MS_TYPE_Q4_0, MS_TYPE_Q4_1, MS_TYPE_Q5_0, MS_TYPE_Q5_1,
    MS_TYPE_Q2_K, MS_TYPE_Q3_K, MS_TYPE_Q4_K, MS_TYPE_Q5_K, MS_TYPE_Q6_K,
    MS_TYPE_IQ4_NL, MS_TYPE_MXFP4,
};
static const int alltypes[] = {
    MS_TYPE_F32, MS_TYPE_F16, MS_TYPE_BF16,
    MS_TYPE_Q8_0, MS_TYPE_Q4_0, MS_TYPE_Q4_1, MS_TYPE_Q5_0, MS_TYPE_Q5_1,
    MS_TYPE_Q2_K, MS_TYPE_Q3_K, MS_TYPE_Q4_K, MS_TYPE_Q5_K, MS_TYPE_Q6_K,
    MS_TYPE_IQ4_NL, MS_TYPE_MXFP4,
};

/* ------------------------------------------------------------ type table */
static void test_table(void)
{
    struct { int id; const char *name; int64_t be; size_t bb; } t[] = {
        {0, "F32", 1, 4}, {1, "F16", 1, 2}, {2, "Q4_0", 32, 18}, {3, "Q4_1", 32, 20},
        {6, "Q5_0", 32, 22}, {7, "Q5_1", 32, 24}, {8, "Q8_0", 32, 34}, {9, "Q8_1", 32, 36},
        {10, "Q2_K", 256, 84}, {11, "Q3_K", 256, 110}, {12, "Q4_K", 256, 144},
        {13, "Q5_K", 256, 176}, {14, "Q6_K", 256, 210}, {15, "Q8_K", 256, 292},
        {16, "IQ2_XXS", 256, 66}, {17, "IQ2_XS", 256, 74}, {18, "IQ3_XXS", 256, 98},
        {19, "IQ1_S", 256, 50}, {20, "IQ4_NL", 32, 18}, {21, "IQ3_S", 256, 110},
        {22, "IQ2_S", 256, 82}, {23, "IQ4_XS", 256, 136}, {24, "I8", 1, 1},
        {25, "I16", 1, 2}, {26, "I32", 1, 4}, {27, "I64", 1, 8}, {28, "F64", 1, 8},
        {29, "IQ1_M", 256, 56}, {30, "BF16", 1, 2}, {34, "TQ1_0", 256, 54},
        {35, "TQ2_0", 256, 66}, {39, "MXFP4", 32, 17},
    };
    int bad = 0;
    for (size_t i = 0; i < MS_ARRAY_LEN(t); i++) {
        if (strcmp(ms_type_name(t[i].id), t[i].name) != 0 || ms_type_block_elems(t[i].id) != t[i].be ||
            ms_type_block_bytes(t[i].id) != t[i].bb || ms_type_from_name(t[i].name) != t[i].id) {
            mt_diag("type %d: %s %lld %zu", t[i].id, ms_type_name(t[i].id),
                    (long long)ms_type_block_elems(t[i].id), ms_type_block_bytes(t[i].id));
            bad++;
        }
    }
    MT_CHECK(bad == 0, "type table: names, block sizes, from_name for %zu types", MS_ARRAY_LEN(t));
    const int removed[] = {4, 5, 31, 32, 33, 36, 37, 38, -1, 43, 99};
    bad = 0;
    for (size_t i = 0; i < MS_ARRAY_LEN(removed); i++)
        if (ms_type_block_elems(removed[i]) != 0 || ms_type_block_bytes(removed[i]) != 0 ||
            ms_type_is_supported(removed[i]) || ms_row_bytes(removed[i], 256) != 0) bad++;
    MT_CHECK(bad == 0, "removed / unknown ids have no layout");
    MT_CHECK(strcmp(ms_type_name(4), "removed(4)") == 0 && ms_type_name(99) != NULL,
             "names of removed/unknown ids");
    MT_CHECK(ms_type_from_name("q4_k") == 12 && ms_type_from_name("bf16") == 30 &&
             ms_type_from_name("nope") == -1 && ms_type_from_name(NULL) == -1,
             "ms_type_from_name is case-insensitive");
    int nsup = 0;
    for (int i = 0; i < 50; i++) nsup += ms_type_is_supported(i);
    MT_CHECK(nsup == 15 && ms_type_is_supported(MS_TYPE_Q6_K) && ms_type_is_supported(MS_TYPE_MXFP4) &&
             ms_type_is_supported(MS_TYPE_IQ4_NL) && !ms_type_is_supported(MS_TYPE_Q8_K),
             "15 supported compute types (got %d)", nsup);
    MT_CHECK(ms_row_bytes(MS_TYPE_Q4_K, 2048) == 8 * 144 && ms_row_bytes(MS_TYPE_F16, 7) == 14 &&
             ms_row_bytes(MS_TYPE_Q8_0, 96) == 3 * 34, "ms_row_bytes");
    MT_CHECK(ms_vec_dot_type(MS_TYPE_Q4_0) == MS_TYPE_Q8_0 && ms_vec_dot_type(MS_TYPE_Q5_1) == MS_TYPE_Q8_1 &&
             ms_vec_dot_type(MS_TYPE_Q3_K) == MS_TYPE_Q8_K && ms_vec_dot_type(MS_TYPE_BF16) == MS_TYPE_BF16 &&
             ms_vec_dot_type(MS_TYPE_F16) == MS_TYPE_F16 && ms_vec_dot_type(MS_TYPE_F32) == MS_TYPE_F32 &&
             ms_vec_dot_type(MS_TYPE_MXFP4) == MS_TYPE_Q8_0 && ms_vec_dot_type(MS_TYPE_IQ4_NL) == MS_TYPE_Q8_0,
             "ms_vec_dot_type");
}

/* ------------------------------------------------------------ dequantise */
static void test_dequant(void)
{
    Rng r = {0x1234567ULL};
    for (size_t ti = 0; ti < MS_ARRAY_LEN(qtypes); ti++) {
        int type = qtypes[ti];
        int be = (int)ms_type_block_elems(type);
        size_t bb = ms_type_block_bytes(type);
        enum { NB = 6 };
        uint8_t buf[NB * 292];
        Fields f[NB];
        for (int i = 0; i < NB; i++) make_block(type, &r, &f[i], buf + bb * i);
        float y[NB * 256];
        ms_dequantize_row(type, buf, y, (int64_t)NB * be);
        int bad = 0;
        for (int i = 0; i < NB; i++)
            for (int e = 0; e < be; e++)
                if (y[i * be + e] != field_value(&f[i], e)) {
                    if (bad++ < 3) mt_diag("%s block %d elem %d: got %g want %g", ms_type_name(type),
                                           i, e, y[i * be + e], field_value(&f[i], e));
                }
        MT_CHECK(bad == 0, "dequantise %s: %d blocks built from fields, exact", ms_type_name(type), NB);
    }
    /* the float types */
    uint8_t h[8];
    const float fv[4] = {1.5f, -0.0f, 65504.f, 0x1p-24f};
    for (int i = 0; i < 4; i++) put_f16(h + 2 * i, fv[i]);
    float y[4];
    ms_dequantize_row(MS_TYPE_F16, h, y, 4);
    MT_CHECK(memcmp(y, fv, sizeof y) == 0, "dequantise F16");
    uint16_t bf[3] = {0x3fc0, 0xc000, 0x0001};
    ms_dequantize_row(MS_TYPE_BF16, bf, y, 3);
    MT_CHECK(y[0] == 1.5f && y[1] == -2.f && y[2] == ms_fp32_from_bits(0x10000), "dequantise BF16");
}

/* ------------------------------------------------------------- round trip */
static void test_roundtrip(void)
{
    struct { int type; double bound; } t[] = {
        {MS_TYPE_F32, 0}, {MS_TYPE_F16, 1e-3}, {MS_TYPE_BF16, 5e-3},
        {MS_TYPE_Q8_0, 0.01}, {MS_TYPE_Q4_0, 0.12}, {MS_TYPE_Q4_1, 0.10},
        {MS_TYPE_Q5_0, 0.06}, {MS_TYPE_Q5_1, 0.05}, {MS_TYPE_Q2_K, 0.45},
        {MS_TYPE_Q3_K, 0.25}, {MS_TYPE_Q4_K, 0.10}, {MS_TYPE_Q5_K, 0.05},
        {MS_TYPE_Q6_K, 0.025}, {MS_TYPE_IQ4_NL, 0.10}, {MS_TYPE_MXFP4, 0.20},
    };
    enum { N = 8192 };
    static float x[N], y[N];
    static uint8_t q[N * 4];
    Rng r = {99};
    for (int i = 0; i < N; i++) x[i] = rng_gauss(&r) * (1.f + (i / 512) * 0.3f);
    for (int i = 0; i < N; i += 997) x[i] *= 6;   /* a few outliers */
    for (size_t k = 0; k < MS_ARRAY_LEN(t); k++) {
        memset(q, 0xAB, sizeof q);
        int rc = ms_quantize_row(t[k].type, x, q, N);
        ms_dequantize_row(t[k].type, q, y, N);
        double se = 0, sx = 0;
        for (int i = 0; i < N; i++) { se += (double)(y[i] - x[i]) * (y[i] - x[i]); sx += (double)x[i] * x[i]; }
        double rel = sqrt(se / sx);
        MT_CHECK(rc == 0 && rel <= t[k].bound, "round trip %s: RMS relative error %.5f <= %g",
                 ms_type_name(t[k].type), rel, t[k].bound);
    }
    /* degenerate rows: zeros and a constant */
    int bad = 0;
    for (size_t k = 0; k < MS_ARRAY_LEN(alltypes); k++) {
        int type = alltypes[k];
        float z[512] = {0}, c[512];
        for (int i = 0; i < 512; i++) c[i] = 0.75f;
        ms_quantize_row(type, z, q, 512);
        ms_dequantize_row(type, q, y, 512);
        for (int i = 0; i < 512; i++) if (y[i] != 0) { bad++; break; }
        ms_quantize_row(type, c, q, 512);
        ms_dequantize_row(type, q, y, 512);
        for (int i = 0; i < 512; i++)
            if (fabsf(y[i] - 0.75f) > 0.75f * 0.01f) {
                mt_diag("%s constant row: %g", ms_type_name(type), y[i]);
                bad++;
                break;
            }
    }
    MT_CHECK(bad == 0, "zero and constant rows survive every quantiser");
    MT_CHECK(ms_quantize_row(MS_TYPE_Q8_K, x, q, 256) == MS_EUNSUPPORTED &&
             ms_quantize_row(16, x, q, 256) == MS_EUNSUPPORTED &&
             ms_quantize_row(99, x, q, 32) == MS_EUNSUPPORTED, "quantise unsupported type -> MS_EUNSUPPORTED");
    /* deterministic */
    static uint8_t q2[N * 4];
    ms_quantize_row(MS_TYPE_Q4_K, x, q, N);
    ms_quantize_row(MS_TYPE_Q4_K, x, q2, N);
    MT_CHECK(memcmp(q, q2, ms_row_bytes(MS_TYPE_Q4_K, N)) == 0, "quantiser is deterministic");
}

/* ------------------------------------------------ activation conversion */
static void test_act(void)
{
    /* Q8_0 with amax 127: id = 1, so the ties below must round half to even */
    float x[64];
    const float head[] = {127.f, 2.5f, 3.5f, -2.5f, -0.5f, 0.5f, 1.5f, -1.5f, 0.49f, -126.5f};
    const int want[] = {127, 2, 4, -2, 0, 0, 2, -2, 0, -126};
    for (int j = 0; j < 32; j++) x[j] = j < 10 ? head[j] : (float)(j - 20);
    uint8_t b[300];
    ms_quantize_act(MS_TYPE_Q8_0, x, b, 32);
    int bad = 0;
    for (int j = 0; j < 32; j++) {
        int w = j < 10 ? want[j] : j - 20;
        if ((int8_t)b[2 + j] != w) bad++;
    }
    MT_CHECK(get_f16(b) == 1.f && bad == 0, "Q8_0 act: d = amax/127, q = round-half-even(x*127/amax)");
    /* d is amax/127 rounded to f16, q from 127/amax (not from the rounded d) */
    for (int j = 0; j < 32; j++) x[j] = (j - 13) * 0.3f;
    ms_quantize_act(MS_TYPE_Q4_0, x, b, 32);
    float amax = 18 * 0.3f, id = 127.f / amax;
    bad = 0;
    for (int j = 0; j < 32; j++) if ((int8_t)b[2 + j] != (int)rintf(x[j] * id)) bad++;
    MT_CHECK(get_f16(b) == ms_fp16_to_fp32(ms_fp32_to_fp16(amax / 127.f)) && bad == 0,
             "Q8_0 act for a non-trivial scale");
    /* all zeros */
    memset(x, 0, sizeof x);
    ms_quantize_act(MS_TYPE_Q8_0, x, b, 32);
    bad = 0;
    for (int j = 0; j < 34; j++) bad += b[j] != 0;
    MT_CHECK(bad == 0, "Q8_0 act of zeros is all zero");
    /* Q8_1: s = d * sum(q) */
    for (int j = 0; j < 32; j++) x[j] = head[j % 10];
    ms_quantize_act(MS_TYPE_Q4_1, x, b, 32);
    int sum = 0;
    for (int j = 0; j < 32; j++) sum += (int8_t)b[4 + j];
    MT_CHECK(get_f16(b) == 1.f && (int8_t)b[4 + 1] == 2 && get_f16(b + 2) == (float)sum,
             "Q8_1 act: d, qs and s = d*sum(q) (sum %d)", sum);
    /* Q8_K: sign of the largest-magnitude element fixes the sign of d */
    static float xk[256];
    for (int j = 0; j < 256; j++) xk[j] = (float)(j % 7) - 3.f;   /* -3..3 */
    xk[5] = -254.f;
    xk[9] = 254.f;          /* same magnitude later: the first one wins */
    xk[10] = 1.f; xk[11] = 3.f; xk[12] = 5.f; xk[13] = -5.f;
    ms_quantize_act(MS_TYPE_Q4_K, xk, b, 256);
    float d;
    memcpy(&d, b, 4);
    const int8_t *qk = (const int8_t *)(b + 4);
    /* iscale = -127/-254 = 0.5: 1 -> 0.5 -> 0, 3 -> 2, 5 -> 2, -5 -> -2 (ties to even) */
    bool ok = d == 2.f && qk[5] == -127 && qk[9] == 127 && qk[10] == 0 && qk[11] == 2 && qk[12] == 2 && qk[13] == -2;
    int bs_bad = 0;
    for (int g = 0; g < 16; g++) {
        int s = 0;
        for (int j = 0; j < 16; j++) s += qk[16 * g + j];
        if ((int16_t)(b[260 + 2 * g] | b[261 + 2 * g] << 8) != s) bs_bad++;
    }
    MT_CHECK(ok && bs_bad == 0, "Q8_K act: d = -max/127 (d=%g), ties to even, 16 bsums", d);
    xk[5] = 254.f;
    xk[9] = 0.f;
    ms_quantize_act(MS_TYPE_Q6_K, xk, b, 256);
    memcpy(&d, b, 4);
    MT_CHECK(d == -2.f && qk[5] == -127 && qk[11] == -2 && qk[13] == 2, "Q8_K act with a positive max (d=%g)", d);
    /* F16 / BF16 act: element-wise RNE */
    float xf[5] = {1.f / 3, 70000.f, -2.0009765625f, 1e-8f, 3.14159f};
    uint16_t hb[5];
    ms_quantize_act(MS_TYPE_F16, xf, hb, 5);
    bad = 0;
    for (int j = 0; j < 5; j++) bad += hb[j] != ms_fp32_to_fp16(xf[j]);
    ms_quantize_act(MS_TYPE_BF16, xf, hb, 5);
    for (int j = 0; j < 5; j++) bad += hb[j] != ms_fp32_to_bf16(xf[j]);
    float xo[5];
    ms_quantize_act(MS_TYPE_F32, xf, xo, 5);
    MT_CHECK(bad == 0 && memcmp(xo, xf, sizeof xf) == 0, "F16/BF16/F32 act conversion");
}

/* Random rows: every converted block equals the §2.2 formulas evaluated
 * here (catches SIMD conversion paths that differ from the definition). */
static void test_act_random(void)
{
    Rng r = {2718};
    enum { N = 1024 + 256 };
    static float x[N];
    static uint8_t b[N * 2 + 64];
    int bad0 = 0, bad1 = 0, badk = 0, badh = 0;
    for (int rep = 0; rep < 40; rep++) {
        float sc = rep % 4 == 0 ? 1e-4f : rep % 4 == 1 ? 1.f : rep % 4 == 2 ? 300.f : 7.f;
        for (int i = 0; i < N; i++) x[i] = rng_gauss(&r) * sc;
        if (rep % 5 == 0) for (int i = 0; i < N; i += 3) x[i] = (float)rng_int(&r, -40, 40) * 0.5f;  /* ties */
        if (rep % 7 == 0) for (int i = 0; i < 32; i++) x[i] = 0;                                        /* zero block */
        /* Q8_0 / Q8_1 */
        for (int pass = 0; pass < 2; pass++) {
            int bs = pass ? 36 : 34, qo = pass ? 4 : 2;
            ms_quantize_act(pass ? MS_TYPE_Q4_1 : MS_TYPE_Q4_0, x, b, N);
            for (int blk = 0; blk < N / 32; blk++) {
                const float *xb = x + 32 * blk;
                const uint8_t *bb = b + bs * blk;
                float amax = 0;
                for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(xb[j]));
                float id = amax != 0 ? 127.f / amax : 0.f;
                int sum = 0, ok = get_f16(bb) == ms_fp16_to_fp32(ms_fp32_to_fp16(amax / 127.f));
                for (int j = 0; j < 32; j++) {
                    int q = (int)rintf(xb[j] * id);
                    sum += q;
                    ok &= (int8_t)bb[qo + j] == q;
                }
                if (pass) ok &= get_f16(bb + 2) == ms_fp16_to_fp32(ms_fp32_to_fp16(amax / 127.f * (float)sum));
                if (!ok) *(pass ? &bad1 : &bad0) += 1;
            }
        }
        /* Q8_K */
        ms_quantize_act(MS_TYPE_Q4_K, x, b, N);
        for (int blk = 0; blk < N / 256; blk++) {
            const float *xb = x + 256 * blk;
            const uint8_t *bb = b + 292 * blk;
            float amax = 0, max = 0, d;
            for (int j = 0; j < 256; j++) if (fabsf(xb[j]) > amax) { amax = fabsf(xb[j]); max = xb[j]; }
            memcpy(&d, bb, 4);
            float is = amax ? -127.f / max : 0.f;
            int ok = amax ? d == 1.f / is : d == 0.f;
            for (int j = 0; j < 256 && amax; j++) {
                int q = (int)rintf(is * xb[j]);
                ok &= (int8_t)bb[4 + j] == (q > 127 ? 127 : q);
            }
            if (!ok) badk++;
        }
        /* F16, n not a multiple of 8 */
        uint16_t h[N];
        ms_quantize_act(MS_TYPE_F16, x, h, N - 3);
        for (int i = 0; i < N - 3; i++) badh += h[i] != ms_fp32_to_fp16(x[i]);
    }
    MT_CHECK(bad0 == 0 && bad1 == 0 && badk == 0 && badh == 0,
             "random rows: Q8_0/Q8_1/Q8_K/F16 activation blocks match the formulas (%d/%d/%d/%d bad)",
             bad0, bad1, badk, badh);
}

/* ------------------------------------------------- dot-product reference */

/* Reference dot for quantised weights from the chosen fields: integer sums
 * per block, then the per-block float scaling ggml uses; blocks summed in
 * double.  *mag receives the sum of |block terms| for the tolerance. */
static double ref_dot_q(int type, const Fields *f, int nb, const uint8_t *act, double *mag)
{
    double s = 0, m = 0;
    int vt = ms_vec_dot_type(type);
    for (int i = 0; i < nb; i++) {
        double term;
        if (vt == MS_TYPE_Q8_K) {
            const uint8_t *a = act + 292 * i;
            float da;
            memcpy(&da, a, 4);
            const int8_t *y = (const int8_t *)(a + 4);
            long isum = 0, msum = 0;
            for (int g = 0; g < 16; g++) {
                long sub = 0, ysum = 0;
                for (int j = 0; j < 16; j++) { sub += (long)f[i].q[16 * g + j] * y[16 * g + j]; ysum += y[16 * g + j]; }
                isum += f[i].sc[g] * sub;
                msum += f[i].mn[g] * ysum;
            }
            float dd = da * f[i].d, dm = da * f[i].dmin;
            term = (double)(dd * (float)isum) - (double)(dm * (float)msum);
        } else {
            bool q81 = vt == MS_TYPE_Q8_1;
            const uint8_t *a = act + (q81 ? 36 : 34) * i;
            const int8_t *y = (const int8_t *)(a + (q81 ? 4 : 2));
            long isum = 0;
            for (int j = 0; j < 32; j++) isum += (long)f[i].q[j] * y[j];
            float dd = f[i].d * get_f16(a);
            term = (double)((float)isum * dd);
            if (q81) term += (double)(f[i].m * get_f16(a + 2));
        }
        s += term;
        m += fabs(term);
    }
    *mag = m;
    return s;
}

/* ms_exp_v (the forward pass's softmax and SiLU): against e^x computed in
 * double and rounded, on every 61st float of [-87, 88] in order. */
static int64_t float_order(float f)   /* floats in order as integers */
{
    int32_t i;
    memcpy(&i, &f, sizeof i);
    return i < 0 ? -(int64_t)(i & 0x7fffffff) : i;
}

static float order_float(int64_t o)
{
    uint32_t b = o < 0 ? 0x80000000u | (uint32_t)-o : (uint32_t)o;
    float f;
    memcpy(&f, &b, sizeof f);
    return f;
}

static void test_exp_v(void)
{
    int64_t worst = 0;
    float at = 0;
    long n = 0;
    for (int64_t o = float_order(-87.0f); o <= float_order(88.0f); o += 61, n++) {
        const float x = order_float(o);
        const int64_t d = llabs(float_order(ms_exp_v(x)) - float_order((float)exp((double)x)));
        if (d > worst) { worst = d; at = x; }
    }
    MT_CHECK(n > 30000000 && worst <= 1, "ms_exp_v within 1 ulp of e^x on %ld floats of [-87, 88] (worst %lld at %g)",
             n, (long long)worst, (double)at);
    MT_CHECK(ms_exp_v(0.0f) == 1.0f && ms_exp_v(1.0f) == (float)exp(1.0) && isnan(ms_exp_v(NAN)) &&
                 ms_exp_v(-INFINITY) > 0 && ms_exp_v(-INFINITY) < 1e-37f && isfinite(ms_exp_v(INFINITY)),
             "ms_exp_v: e^0 = 1, e^1 rounded, NaN stays NaN, clamped at both ends");
}

static void test_vec_dot(void)
{
    Rng r = {777};
    enum { NBMAX = 24 };
    static uint8_t w[NBMAX * 292], act[NBMAX * 292];
    static float x[NBMAX * 256];
    static Fields f[NBMAX];
    for (size_t ti = 0; ti < MS_ARRAY_LEN(qtypes); ti++) {
        int type = qtypes[ti];
        int be = (int)ms_type_block_elems(type);
        int bad_simd = 0, bad_scalar = 0;
        double worst = 0;
        for (int rep = 0; rep < 20; rep++) {
            int nb = rng_int(&r, 1, be == 32 ? NBMAX : 8);
            for (int i = 0; i < nb; i++) make_block(type, &r, &f[i], w + ms_type_block_bytes(type) * i);
            float sc = rep % 3 == 0 ? 1e-3f : rep % 3 == 1 ? 1.f : 40.f;
            for (int i = 0; i < nb * be; i++) x[i] = rng_gauss(&r) * sc;
            ms_quantize_act(type, x, act, (int64_t)nb * be);
            double mag, ref = ref_dot_q(type, f, nb, act, &mag);
            double tol = 1e-6 * mag + 1e-30;
            float got = ms_vec_dot(type, (int64_t)nb * be, w, act);
            float gs = msq_vec_dot_scalar(type, (int64_t)nb * be, w, act);
            worst = fmax(worst, fabs(got - ref) / (mag + 1e-30));
            if (fabs(got - ref) > tol) { if (bad_simd++ < 2) mt_diag("%s: got %.9g ref %.9g", ms_type_name(type), got, ref); }
            if (fabs(gs - ref) > tol) bad_scalar++;
        }
        MT_CHECK(bad_simd == 0 && bad_scalar == 0,
                 "vec_dot %s (fast and scalar) vs integer reference (worst rel %.2e)", ms_type_name(type), worst);
    }
    /* float types: n not a multiple of the vector width */
    static const int ftypes[] = {MS_TYPE_F32, MS_TYPE_F16, MS_TYPE_BF16};
    static uint8_t wf[5000 * 4], af[5000 * 4];
    static float xw[5000];
    for (size_t k = 0; k < 3; k++) {
        int type = ftypes[k], bad = 0;
        for (int rep = 0; rep < 12; rep++) {
            int n = rep < 6 ? rep * 7 + 1 : rng_int(&r, 30, 5000);
            for (int i = 0; i < n; i++) { xw[i] = rng_gauss(&r); x[i] = rng_gauss(&r); }
            ms_quantize_row(type, xw, wf, n);
            ms_quantize_act(type, x, af, n);
            float wd[5000], ad[5000];
            ms_dequantize_row(type, wf, wd, n);
            ms_dequantize_row(type, af, ad, n);
            double ref = 0, mag = 0;
            for (int i = 0; i < n; i++) { ref += (double)wd[i] * ad[i]; mag += fabs((double)wd[i] * ad[i]); }
            float got = ms_vec_dot(type, n, wf, af), gs = msq_vec_dot_scalar(type, n, wf, af);
            if (fabs(got - ref) > 1e-6 * mag || fabs(gs - ref) > 1e-6 * mag) {
                if (bad++ < 2) mt_diag("%s n=%d got %.9g scalar %.9g ref %.9g", ms_type_name(type), n, got, gs, ref);
            }
        }
        MT_CHECK(bad == 0, "vec_dot %s (fast and scalar) vs double reference, odd n", ms_type_name(type));
    }
}

/* Sum of |w_i * a_i| over the dequantised pair: the scale of rounding errors. */
static double pair_mag(int type, int64_t n, const uint8_t *w, const uint8_t *a)
{
    float *wd = malloc(sizeof(float) * n), *ad = malloc(sizeof(float) * n);
    ms_dequantize_row(type, w, wd, n);
    ms_dequantize_row(ms_vec_dot_type(type), a, ad, n);
    double m = 0;
    for (int64_t i = 0; i < n; i++) m += fabs((double)wd[i] * ad[i]);
    free(wd); free(ad);
    return m;
}

/* ms_gemv / ms_gemm against ms_vec_dot for row counts that are not
 * multiples of the tile and nt = 1..9; rows/columns outside untouched.
 * gemv and gemm with nt < 4 use vec_dot's kernel: bit-identical.  From
 * nt = 4 on, the int8 types with n % 256 == 0 take the repacked prefill
 * path, whose float scaling order differs: 1e-6 of sum|w*a|, and the value
 * for a token must not depend on nt or on its position in the batch. */
static void test_gemm_case(int type, int64_t n, Rng *r)
{
    int vt = ms_vec_dot_type(type);
    const int nrows = 13;
    size_t rb = ms_row_bytes(type, n), ab = ms_row_bytes(vt, n);
    uint8_t *W = malloc(rb * nrows), *A = malloc(ab * 9);
    float *x = malloc(sizeof(float) * n), Y[9 * 20], y1[20], ref[9][13];
    double mag[9][13];
    for (int rr = 0; rr < nrows; rr++) {
        for (int i = 0; i < n; i++) x[i] = rng_gauss(r);
        ms_quantize_row(type, x, W + rb * rr, n);
    }
    for (int t = 0; t < 9; t++) {
        for (int i = 0; i < n; i++) x[i] = rng_gauss(r) * (t == 3 ? 100.f : 1.f);
        ms_quantize_act(type, x, A + ab * t, n);
    }
    for (int t = 0; t < 9; t++)
        for (int rr = 0; rr < nrows; rr++) {
            ref[t][rr] = ms_vec_dot(type, n, W + rb * rr, A + ab * t);
            mag[t][rr] = pair_mag(type, n, W + rb * rr, A + ab * t);
        }
    int bad = 0, bad_exact = 0, bad_stable = 0;
    double worst = 0;
    float first[9][13];
    bool have_first = false;
    for (int nr = 1; nr <= nrows; nr += (nr < 9 ? 1 : 4)) {
        for (int nt = 1; nt <= 9; nt++) {
            for (int i = 0; i < 9 * 20; i++) Y[i] = -999.f;
            ms_gemm(type, n, nr, W, nt, A, Y, 20);
            for (int t = 0; t < 9; t++)
                for (int rr = 0; rr < 20; rr++) {
                    float got = Y[t * 20 + rr];
                    if (!(t < nt && rr < nr)) { bad += got != -999.f; continue; }
                    double e = fabs(got - ref[t][rr]) / (mag[t][rr] + 1e-30);
                    worst = fmax(worst, e);
                    if (e > 1e-6) bad++;
                    if (nt < 4 && got != ref[t][rr]) bad_exact++;
                    if (nt >= 4 && nr == nrows) {
                        if (!have_first) first[t][rr] = got;
                        else if (t < 4 && got != first[t][rr]) bad_stable++;
                    }
                }
            if (nt >= 4 && nr == nrows) have_first = true;
        }
        ms_gemv(type, n, nr, W, A + ab * 2, y1);
        for (int rr = 0; rr < nr; rr++) bad_exact += y1[rr] != ref[2][rr];
    }
    /* the same tokens at another position in a batch */
    float Y2[9 * 20];
    ms_gemm(type, n, nrows, W, 5, A + ab * 4, Y, 20);
    ms_gemm(type, n, nrows, W, 9, A, Y2, 20);   /* the same tokens at positions 4..8 */
    for (int t = 0; t < 5; t++)
        for (int rr = 0; rr < nrows; rr++) bad_stable += Y[t * 20 + rr] != Y2[(4 + t) * 20 + rr];
    MT_CHECK(bad == 0 && bad_exact == 0 && bad_stable == 0,
             "gemm/gemv %s n=%lld vs vec_dot: nrows 1..13, nt 1..9 (worst %.1e; %d bad, %d not exact, %d unstable)",
             ms_type_name(type), (long long)n, worst, bad, bad_exact, bad_stable);
    free(W); free(A); free(x);
}

static void test_gemm(void)
{
    Rng r = {4242};
    for (size_t k = 0; k < MS_ARRAY_LEN(alltypes); k++) {
        int type = alltypes[k];
        int64_t be = ms_type_block_elems(type);
        if (be == 1) {
            test_gemm_case(type, 203, &r);
            continue;
        }
        if (be == 32) {
            test_gemm_case(type, 96, &r);
            /* past one group, not whole groups: the packed path's zero-padded tail */
            test_gemm_case(type, 352, &r);
        }
        /* 5 groups of 256: two chunks of the prefill path, the last one odd */
        test_gemm_case(type, 1280, &r);
    }
}

/* ---- run-time kernel levels (ms-cpu.h) ----
 * Raw random blocks (every bit pattern of the levels, Q8_0's -128
 * included; scale fields set to finite values) against activations
 * converted from gaussians, on every level this CPU offers.  The integer
 * types must give bit-identical results on every SIMD level, in decode
 * (nt < 4, one row at a time) and in the packed prefill path (nt >= 4,
 * over two token groups of 32); scalar forms the same integer sums but adds
 * blocks in another order, so it is held to 1e-6 of sum|w*a|. */
static void random_blocks(int type, uint8_t *w, int64_t n, Rng *r)
{
    size_t bb = ms_type_block_bytes(type);
    int64_t nb = n / ms_type_block_elems(type);
    for (size_t i = 0; i < bb * (size_t)nb; i++) w[i] = (uint8_t)rng_next(r);
    for (int64_t k = 0; k < nb; k++) {
        uint8_t *b = w + bb * (size_t)k;
        switch (type) {
        case MS_TYPE_Q8_0: case MS_TYPE_Q4_0: case MS_TYPE_Q5_0: case MS_TYPE_IQ4_NL:
            put_f16(b, pick_scale(r) * 0.01f);
            break;
        case MS_TYPE_Q4_1: case MS_TYPE_Q5_1: case MS_TYPE_Q4_K: case MS_TYPE_Q5_K:
            put_f16(b, pick_scale(r) * 0.01f);
            put_f16(b + 2, pick_scale(r) * 0.01f);
            break;
        case MS_TYPE_MXFP4: b[0] = (uint8_t)rng_int(r, 118, 130); break;
        case MS_TYPE_Q6_K: put_f16(b + 208, pick_scale(r) * 0.01f); break;
        case MS_TYPE_Q2_K: put_f16(b + 80, pick_scale(r) * 0.01f); put_f16(b + 82, pick_scale(r) * 0.01f); break;
        case MS_TYPE_Q3_K: put_f16(b + 108, pick_scale(r) * 0.01f); break;
        case MS_TYPE_F16:
            put_f16(b, rng_gauss(r));
            break;
        case MS_TYPE_BF16: { uint32_t u; float f = rng_gauss(r); memcpy(&u, &f, 4); b[0] = (uint8_t)(u >> 16); b[1] = (uint8_t)(u >> 24); break; }
        case MS_TYPE_F32: { float f = rng_gauss(r); memcpy(b, &f, 4); break; }
        default: break;
        }
    }
}

static void test_isa_levels(void)
{
    char flags[512];
    int simd[MS_ISA_COUNT], ns = 0;
    for (int i = MS_ISA_AVX2; i < MS_ISA_COUNT; i++)
        if (ms_isa_available(i)) simd[ns++] = i;
    printf("# cpu: %s; levels:", ms_cpu_flags(flags, sizeof flags));
    for (int i = 0; i < MS_ISA_COUNT; i++) if (ms_isa_available(i)) printf(" %s", ms_isa_name(i));
    printf("; active %s\n", ms_isa_name(ms_isa_active()));
    MT_CHECK(ms_isa_available(MS_ISA_SCALAR) && ms_isa_best() >= ms_isa_active() &&
             ms_isa_available(ms_isa_active()) && ms_isa_from_name("AVX512") == MS_ISA_AVX512 &&
             ms_isa_from_name("sse9") == -1 && ms_isa_name(MS_ISA_COUNT) == NULL,
             "kernel levels: scalar always, active <= best, names round-trip");
    float y0;
    MT_CHECK(ms_vec_dot_isa(MS_ISA_COUNT, MS_TYPE_Q8_0, 32, flags, flags, &y0) == MS_EUNSUPPORTED &&
             ms_gemm_isa(-1, MS_TYPE_Q8_0, 32, 1, flags, 1, flags, &y0, 1) == MS_EUNSUPPORTED,
             "a level out of range is refused (MS_EUNSUPPORTED)");
    if (ns < 2) mt_skip("only %d SIMD level on this CPU: no cross-level comparison", ns);

    static const int exact_types[] = {
        MS_TYPE_Q8_0, MS_TYPE_Q4_0, MS_TYPE_Q4_1, MS_TYPE_Q5_0, MS_TYPE_Q5_1, MS_TYPE_IQ4_NL,
        MS_TYPE_MXFP4, MS_TYPE_Q2_K, MS_TYPE_Q3_K, MS_TYPE_Q4_K, MS_TYPE_Q5_K, MS_TYPE_Q6_K,
        MS_TYPE_F32, MS_TYPE_F16,
    };
    static const int nts[] = {1, 2, 3, 4, 5, 8, 37, 70};   /* 70: past one packed token chunk (PK_TG) */
    Rng r = {777};
    enum { NR = 7, NTMAX = 70 };
    for (size_t k = 0; k < MS_ARRAY_LEN(exact_types); k++) {
        int type = exact_types[k], vt = ms_vec_dot_type(type);
        int64_t be = ms_type_block_elems(type);
        /* 4608: past two chunks of the packed (PK_KC) and F16 (F16_KC) paths */
        const int64_t ns_[] = {be == 32 ? 352 : 256, 768, 2048, 2880, 4608};
        for (size_t q = 0; q < MS_ARRAY_LEN(ns_); q++) {
            int64_t n = ns_[q];
            if (be == 256 && n % 256) continue;
            size_t rb = ms_row_bytes(type, n), ab = ms_row_bytes(vt, n);
            uint8_t *W = malloc(rb * NR), *A = malloc(ab * NTMAX);
            float *x = malloc(sizeof(float) * n);
            float *Yl = malloc(sizeof(float) * NR * NTMAX * MS_ISA_COUNT);
            random_blocks(type, W, n * NR, &r);
            for (int t = 0; t < NTMAX; t++) {
                for (int64_t i = 0; i < n; i++) x[i] = rng_gauss(&r) * (t == 2 ? 50.f : 1.f);
                ms_quantize_act(type, x, A + ab * t, n);
            }
            int differ = 0, far = 0;
            double worst = 0;
            for (size_t z = 0; z < MS_ARRAY_LEN(nts); z++) {
                int nt = nts[z];
                for (int l = 0; l < MS_ISA_COUNT; l++) {
                    float *Y = Yl + (size_t)l * NR * NTMAX;
                    if (!ms_isa_available(l)) continue;
                    ms_gemm_isa(l, type, n, NR, W, nt, A, Y, NR);
                }
                for (int s = 1; s < ns; s++)
                    differ += memcmp(Yl + (size_t)simd[0] * NR * NTMAX, Yl + (size_t)simd[s] * NR * NTMAX,
                                     sizeof(float) * NR * (size_t)nt) != 0;
                for (int t = 0; t < nt; t++)
                    for (int rr = 0; rr < NR; rr++) {
                        float a = Yl[(size_t)simd[0] * NR * NTMAX + t * NR + rr], b = Yl[t * NR + rr];
                        double e = fabs((double)a - b) / (pair_mag(type, n, W + rb * rr, A + ab * t) + 1e-30);
                        worst = fmax(worst, e);
                        far += !(e <= 1e-6);
                    }
            }
            /* vec_dot on each level equals that level's gemv */
            for (int l = 0; l < MS_ISA_COUNT; l++) {
                if (!ms_isa_available(l)) continue;
                float v, g;
                ms_vec_dot_isa(l, type, n, W + rb * 3, A + ab * 2, &v);
                ms_gemm_isa(l, type, n, 1, W + rb * 3, 1, A + ab * 2, &g, 1);
                differ += memcmp(&v, &g, sizeof v) != 0;
            }
            MT_CHECK(differ == 0 && far == 0,
                     "%s n=%lld: %d SIMD levels bit-identical for nt 1..70, scalar within 1e-6 "
                     "(worst %.1e; %d differ, %d far)", ms_type_name(type), (long long)n, ns, worst,
                     differ, far);
            free(W); free(A); free(x); free(Yl);
        }
    }
}

/* End to end: dot of quantised weights with converted activations is close
 * to the float dot product (sanity of the whole chain per type). */
static void test_chain(void)
{
    Rng r = {31337};
    enum { N = 1024 };
    static float w[N], x[N], wd[N];
    static uint8_t qw[N * 4], qa[N * 4 + 64];
    int bad = 0;
    for (size_t k = 0; k < MS_ARRAY_LEN(alltypes); k++) {
        int type = alltypes[k];
        for (int i = 0; i < N; i++) { w[i] = rng_gauss(&r); x[i] = rng_gauss(&r); }
        ms_quantize_row(type, w, qw, N);
        ms_dequantize_row(type, qw, wd, N);
        ms_quantize_act(type, x, qa, N);
        double ref = 0, mag = 0;
        for (int i = 0; i < N; i++) { ref += (double)wd[i] * x[i]; mag += fabs((double)wd[i] * x[i]); }
        float got = ms_vec_dot(type, N, qw, qa);
        /* activation quantisation error: 8-bit ~ 1%, halves far less */
        if (fabs(got - ref) > 0.02 * mag / sqrt(N) * 8) {
            mt_diag("%s: dot %g vs float %g", ms_type_name(type), got, ref);
            bad++;
        }
    }
    MT_CHECK(bad == 0, "quantised dot products track the float dot product");
}

/* Real files written by llama.cpp: every quantised tensor, decoded by our
 * dequantiser, must be close to the same tensor in the file's F32/F16
 * source (a wrong bit layout gives errors of order 1).  Bounds are loose
 * multiples of the round-trip errors above. */
static double type_bound(int type)
{
    switch (type) {
    case MS_TYPE_BF16: return 0.006;
    case MS_TYPE_F16: return 0.002;
    case MS_TYPE_Q8_0: return 0.012;
    case MS_TYPE_Q6_K: return 0.03;
    case MS_TYPE_Q5_0: case MS_TYPE_Q5_1: case MS_TYPE_Q5_K: return 0.07;
    case MS_TYPE_Q4_0: case MS_TYPE_Q4_1: case MS_TYPE_Q4_K: return 0.15;
    case MS_TYPE_Q3_K: return 0.3;
    case MS_TYPE_Q2_K: return 0.5;
    case MS_TYPE_MXFP4: return 0.2;
    default: return 0;
    }
}

static void test_fixture_pair(const char *dir, const char *set, const char *ref_name, const char *q_name)
{
    char rp[1024], qp[1024];
    snprintf(rp, sizeof rp, "%s/%s/models/%s", dir, set, ref_name);
    snprintf(qp, sizeof qp, "%s/%s/models/%s", dir, set, q_name);
    MsError err = {0};
    MsGguf *rg = ms_gguf_open(rp, &err), *qg = rg ? ms_gguf_open(qp, &err) : NULL;
    if (!rg || !qg) {
        MT_CHECK(0, "fixture %s: open: %s", q_name, err.msg);
        ms_gguf_free(rg);
        return;
    }
    int ntested = 0, bad = 0, types_seen[MS_TYPE_COUNT] = {0};
    double worst[MS_TYPE_COUNT] = {0};
    for (int64_t i = 0; i < ms_gguf_n_tensors(qg); i++) {
        const MsGgufTensor *qt = ms_gguf_tensor(qg, i);
        const MsGgufTensor *rt = ms_gguf_find_tensor(rg, qt->name);
        if (!rt || qt->type == rt->type || !ms_type_is_supported(qt->type)) continue;
        int64_t n = qt->ne[0] * qt->ne[1] * qt->ne[2] * qt->ne[3];
        float *a = malloc(sizeof(float) * n), *b = malloc(sizeof(float) * n);
        ms_dequantize_row(rt->type, rt->data, a, n);
        ms_dequantize_row(qt->type, qt->data, b, n);
        double se = 0, sx = 0;
        for (int64_t k = 0; k < n; k++) { se += (double)(a[k] - b[k]) * (a[k] - b[k]); sx += (double)a[k] * a[k]; }
        double rel = sx > 0 ? sqrt(se / sx) : sqrt(se);
        if (rel > worst[qt->type]) worst[qt->type] = rel;
        types_seen[qt->type] = 1;
        if (!(rel <= type_bound(qt->type))) {
            if (bad++ < 3) mt_diag("%s %s (%s): relative RMS %.4f", q_name, qt->name, ms_type_name(qt->type), rel);
        }
        ntested++;
        free(a); free(b);
    }
    char summary[256] = "";
    for (int t = 0; t < MS_TYPE_COUNT; t++)
        if (types_seen[t]) {
            size_t l = strlen(summary);
            snprintf(summary + l, sizeof summary - l, " %s<=%.4f", ms_type_name(t), worst[t]);
        }
    MT_CHECK(ntested > 0 && bad == 0, "fixture %s: %d tensors decode close to %s (worst%s)",
             q_name, ntested, ref_name, summary);
    ms_gguf_free(rg);
    ms_gguf_free(qg);
}

static void test_fixtures(void)
{
    const char *dir = mt_shared_dir();
    if (!dir) {
        mt_skip("llama-quantize fixture files decode close to their F32/F16 source: %s", mt_shared_absent());
        return;
    }
    test_fixture_pair(dir, "fixtures", "qwen2moe-tiny.F32.gguf", "qwen2moe-tiny.Q8_0.gguf");
    test_fixture_pair(dir, "fixtures", "qwen2moe-tiny.F32.gguf", "qwen2moe-tiny.Q4_0.gguf");
    test_fixture_pair(dir, "fixtures", "qwen2moe-tiny.F32.gguf", "qwen2moe-tiny.BF16.gguf");
    test_fixture_pair(dir, "fixtures", "mixtral-256.F16.gguf", "mixtral-256.Q6_K.gguf");
    test_fixture_pair(dir, "fixtures", "mixtral-256.F16.gguf", "mixtral-256.Q5_K_M.gguf");
    test_fixture_pair(dir, "fixtures", "mixtral-256.F16.gguf", "mixtral-256.Q4_K_M.gguf");
    /* llama-quantize's MXFP4_MOE: experts in MXFP4, the other matrices Q8_0 */
    test_fixture_pair(dir, "fixtures2", "gpt-oss-tiny.F32.gguf", "gpt-oss-tiny.MXFP4_MOE.gguf");
    test_fixture_pair(dir, "fixtures2", "gpt-oss-tiny.F32.gguf", "gpt-oss-tiny.BF16.gguf");
    test_fixture_pair(dir, "fixtures2", "qwen3moe-tiny.F32.gguf", "qwen3moe-tiny.Q8_0.gguf");
    test_fixture_pair(dir, "fixtures-dsv3", "dsv3-tiny.F32.gguf", "dsv3-tiny.Q8_0.gguf");
}

int main(void)
{
    test_table();
    test_dequant();
    test_roundtrip();
    test_act();
    test_act_random();
    test_vec_dot();
    test_gemm();
    test_isa_levels();
    test_chain();
    test_exp_v();
    test_fixtures();
    return mt_done();
}
