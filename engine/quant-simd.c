/* quant-simd.c — the x86 SIMD kernels behind ms_vec_dot / ms_gemv / ms_gemm
 * (quant-dot.c holds the portable scalar code and the run-time choice).
 * This file is compiled once per instruction-set level, each time with
 * that level's -m flags and MSQ_ISA set to its name (engine/meson.build):
 *   avx2        AVX2 + FMA + F16C (dpbusd emulated with maddubs)
 *   avxvnni     + AVX-VNNI (256-bit dpbusd / dpwssd)
 *   avx512      + AVX-512 F/BW/DQ/VL + VNNI (16-lane packed prefill)
 *   avx512bf16  + AVX512-BF16 (dpbf16ps for BF16 weights)
 * and quant-dot.c calls the best one the CPU offers (ms-cpu.h).
 *
 * Every level computes the integer types (Q8_0-activation family, K-quants
 * with Q8_K) with the same float operations in the same order: the integer
 * sums are exact however they are formed (dpbusd, or maddubs within its i16
 * range), and the packed prefill path uses one 16-lane layout whichever
 * vector width computes it.  So their results are bit-identical across
 * levels (tests/test-quant.c checks it on every level the CPU has).  Only
 * BF16 differs (dpbf16ps sums pairs in another order; float path).
 *
 *  - ms_vec_dot, ms_gemv and ms_gemm with nt < 4 run one weight row at a
 *    time (sequential streaming for decode), bit-identical to each other;
 *  - ms_gemm with nt >= 4: register tiles of 4 rows x 4 tokens, and for
 *    the int8 types a repacked path (see "packed prefill path") and for F16
 *    a path of its own, each with tiles sized to the level's registers.  A
 *    token's result there does not depend on nt or its position.
 * Nothing here allocates (the packed path uses ~190 KB of stack) or keeps
 * state, so every function is thread-safe. */
#include "quant.h"
#include "quant-impl.h"
#include "ms-common.h"

#include <immintrin.h>
#include <stdbool.h>

#ifndef MSQ_ISA
#error "quant-simd.c is compiled with -DMSQ_ISA=<level> (engine/meson.build)"
#endif
#if !defined(__AVX2__) || !defined(__FMA__) || !defined(__F16C__)
#error "quant-simd.c needs at least AVX2 + FMA + F16C flags"
#endif

#define MSQ_CAT2(a, b) a##_##b
#define MSQ_CAT(a, b) MSQ_CAT2(a, b)
#define MSQ_FN(name) MSQ_CAT(name, MSQ_ISA)

#define ALWAYS_INLINE static inline __attribute__((always_inline))

static inline float rdf32(const uint8_t *p) { float f; memcpy(&f, p, 4); return f; }


#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
#define MSQ_VNNI 1
#define DPBUSD(acc, u, s) _mm256_dpbusd_epi32((acc), (u), (s))
#define DPWSSD(acc, a, b) _mm256_dpwssd_epi32((acc), (a), (b))
#elif defined(__AVXVNNI__)
#define MSQ_VNNI 1
#define DPBUSD(acc, u, s) _mm256_dpbusd_avx_epi32((acc), (u), (s))
#define DPWSSD(acc, a, b) _mm256_dpwssd_avx_epi32((acc), (a), (b))
#else
/* AVX2 emulation; exact as long as the u8*s8 pair sums fit in i16, which
 * the callers guarantee (unsigned operand <= 128 or <= 63). */
#define MSQ_VNNI 0
#define DPBUSD(acc, u, s) _mm256_add_epi32((acc), \
    _mm256_madd_epi16(_mm256_maddubs_epi16((u), (s)), _mm256_set1_epi16(1)))
#define DPWSSD(acc, a, b) _mm256_add_epi32((acc), _mm256_madd_epi16((a), (b)))
#endif

#define UNROLL _Pragma("GCC unroll 4")
#define UNROLL8 _Pragma("GCC unroll 8")

static inline float hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline __m256 bcast_h(const uint8_t *p)
{
    return _mm256_set1_ps(_cvtsh_ss(msq_rd16(p)));
}

/* ---- Q8_0-activation family: Q8_0, Q4_0, Q5_0 weights ----
 * The weight block is brought to 32 unsigned bytes u = q + off; then
 * sum(q*y) = sum(u*y) - off*sum(y), and off*sum(y) per lane comes from one
 * more dpbusd per activation block (shared by all rows of the tile). */
/* Block bytes of the Q8_0-activation family, as a constant the compiler
 * can fold (an out-of-line table lookup in the hot loop costs a call). */
ALWAYS_INLINE size_t q8fam_bytes(int type)
{
    return type == MS_TYPE_Q8_0 ? 34 : type == MS_TYPE_Q4_0 ? 18 : type == MS_TYPE_Q5_0 ? 22
         : type == MS_TYPE_Q4_1 ? 20 : type == MS_TYPE_IQ4_NL ? 18 : type == MS_TYPE_MXFP4 ? 17 : 24;
}

/* The offset that makes a block's integer weights non-negative (u = q + off). */
ALWAYS_INLINE int q8fam_off(int type)
{
    return type == MS_TYPE_Q8_0 || type == MS_TYPE_IQ4_NL ? 128 : type == MS_TYPE_Q4_0 ? 8
         : type == MS_TYPE_MXFP4 ? 12 : 16;
}

ALWAYS_INLINE bool lut_type(int type) { return type == MS_TYPE_IQ4_NL || type == MS_TYPE_MXFP4; }

/* The 16 levels of a look-up type plus add, in both 128-bit lanes (pshufb table). */
ALWAYS_INLINE __m256i lut_table(int type, int add)
{
    const int8_t *v = type == MS_TYPE_IQ4_NL ? msq_iq4nl_values : msq_mxfp4_values;
    __m128i t = _mm_loadu_si128((const __m128i *)v);
    return _mm256_broadcastsi128_si256(_mm_add_epi8(t, _mm_set1_epi8((char)add)));
}

/* Block scale of the weight as a float vector (f16 d, or MXFP4's E8M0). */
ALWAYS_INLINE __m256 w32_scale_v(int type, const uint8_t *b)
{
    if (type == MS_TYPE_MXFP4) return _mm256_set1_ps(msq_e8m0_half(b[0]));
    return _mm256_set1_ps(_cvtsh_ss(msq_rd16(b)));
}

/* Q4_1 / Q5_1 take Q8_1 activations (36-byte blocks, qs at 4, s at 2) and
 * have no offset: unsigned levels, plus the m * s term per block. */
ALWAYS_INLINE bool q81_act(int type) { return type == MS_TYPE_Q4_1 || type == MS_TYPE_Q5_1; }

ALWAYS_INLINE __m256i q32_unsigned(int type, const uint8_t *b)
{
    const __m256i m4 = _mm256_set1_epi8(15);
    if (type == MS_TYPE_Q8_0)
        return _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(b + 2)), _mm256_set1_epi8((char)0x80));
    const uint8_t *qs = b + (type == MS_TYPE_Q4_0 || type == MS_TYPE_IQ4_NL ? 2 : type == MS_TYPE_MXFP4 ? 1
                             : type == MS_TYPE_Q5_0 ? 6 : type == MS_TYPE_Q4_1 ? 4 : 8);
    __m128i q = _mm_loadu_si128((const __m128i *)qs);
    __m256i u = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), m4);
    if (lut_type(type)) return _mm256_shuffle_epi8(lut_table(type, q8fam_off(type)), u);
    if (type == MS_TYPE_Q5_0 || type == MS_TYPE_Q5_1) {
        /* bit j of qh -> 0x10 in byte j */
        uint32_t qh = msq_rd32(b + (type == MS_TYPE_Q5_0 ? 2 : 4));
        __m256i v = _mm256_set1_epi32((int)qh);
        const __m256i sh = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202,
                                             0x0101010101010101, 0x0000000000000000);
        v = _mm256_shuffle_epi8(v, sh);
        const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
        v = _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit);
        u = _mm256_or_si256(u, _mm256_and_si256(v, _mm256_set1_epi8(16)));
    }
    return u;
}

ALWAYS_INLINE void q8fam_block(const int type, const int R, const int T, int64_t i,
                               const uint8_t *const *w, const uint8_t *const *a, __m256 acc[4][4])
{
    const size_t wb = q8fam_bytes(type);
    const int off = q8fam_off(type);
    const __m256i offv = _mm256_set1_epi8((char)off);
    const bool m1 = q81_act(type);
    __m256i y[4], corr[4];
    __m256 dy[4], sy[4];
    UNROLL for (int t = 0; t < T; t++) {
        const uint8_t *ab = a[t] + (m1 ? 36 : 34) * i;
        y[t] = _mm256_loadu_si256((const __m256i *)(ab + (m1 ? 4 : 2)));
        if (m1) {
            corr[t] = _mm256_setzero_si256();
            /* s in lane 0 only: the m*s term enters the sum once */
            sy[t] = _mm256_set_m128(_mm_setzero_ps(), _mm_set_ss(_cvtsh_ss(msq_rd16(ab + 2))));
        } else {
            corr[t] = _mm256_sub_epi32(_mm256_setzero_si256(),
                                       DPBUSD(_mm256_setzero_si256(), offv, y[t]));
        }
        dy[t] = bcast_h(ab);
    }
    UNROLL for (int r = 0; r < R; r++) {
        const uint8_t *wbk = w[r] + wb * i;
        __m256 dw = w32_scale_v(type, wbk);
        if (m1) {
            __m256 mw = bcast_h(wbk + 2);
            UNROLL for (int t = 0; t < T; t++) acc[r][t] = _mm256_fmadd_ps(mw, sy[t], acc[r][t]);
        }
#if !MSQ_VNNI
        if (type == MS_TYPE_Q8_0 || type == MS_TYPE_IQ4_NL) {
            /* u = q + 128 would overflow maddubs: sign trick instead */
            __m256i q;
            if (type == MS_TYPE_Q8_0) {
                q = _mm256_loadu_si256((const __m256i *)(wbk + 2));
            } else {
                __m128i h = _mm_loadu_si128((const __m128i *)(wbk + 2));
                __m256i nib = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(h, 4), h), _mm256_set1_epi8(15));
                q = _mm256_shuffle_epi8(lut_table(type, 0), nib);
            }
            __m256i ax = _mm256_sign_epi8(q, q);
            UNROLL for (int t = 0; t < T; t++) {
                __m256i s = DPBUSD(_mm256_setzero_si256(), ax, _mm256_sign_epi8(y[t], q));
                acc[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(dw, dy[t]), acc[r][t]);
            }
            continue;
        }
#endif
        __m256i u = q32_unsigned(type, wbk);
        UNROLL for (int t = 0; t < T; t++) {
            __m256i s = DPBUSD(corr[t], u, y[t]);
            acc[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(dw, dy[t]), acc[r][t]);
        }
    }
}

#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
/* 256 -> 512: a in the low half, b in the high half. */
ALWAYS_INLINE __m512i cat_i(__m256i a, __m256i b) { return _mm512_inserti64x4(_mm512_castsi256_si512(a), b, 1); }
ALWAYS_INLINE __m512 cat_f(__m256 a, __m256 b)
{
    return _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castpd256_pd512(_mm256_castps_pd(a)), _mm256_castps_pd(b), 1));
}

/* The end of a single-row 512-bit sum: an odd last block (block i, when
 * i < nb) goes to the even half, then both halves are added. */
ALWAYS_INLINE void r1_512_finish(const int type, const int T, int64_t i, int64_t nb, const uint8_t *const *w,
                                 const uint8_t *const *a, const __m512 *acc, float out[4][4])
{
    __m256 lo[4][4], hi[4];
    UNROLL for (int t = 0; t < T; t++) {
        lo[0][t] = _mm512_castps512_ps256(acc[t]);
        hi[t] = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc[t]), 1));
    }
    if (i < nb) q8fam_block(type, 1, T, i, w, a, lo);
    UNROLL for (int t = 0; t < T; t++) out[0][t] = hsum8(_mm256_add_ps(lo[0][t], hi[t]));
}

/* The single-row tile below with two blocks per 512-bit vector: block i
 * (even) in lanes 0..7, block i+1 in lanes 8..15, so the low half is the
 * even-block accumulator and the high half the odd one, each lane seeing
 * the same operations in the same order as there; an odd last block goes
 * to the low half.  Hence bit-identical to the AVX2 form (fewer
 * instructions per block in decode). */
ALWAYS_INLINE void tile_q8fam_r1_512(const int type, const int T, int64_t nb,
                                     const uint8_t *const *w, const uint8_t *const *a, float out[4][4])
{
    const size_t wb = q8fam_bytes(type);
    const bool m1 = q81_act(type);
    const size_t abk = m1 ? 36 : 34, aq = m1 ? 4 : 2;
    const __m512i offv = _mm512_set1_epi8((char)q8fam_off(type));
    __m512 acc[4];
    UNROLL for (int t = 0; t < T; t++) acc[t] = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 2 <= nb; i += 2) {
        const uint8_t *w0 = w[0] + wb * i, *w1 = w0 + wb;
        __m512i u = cat_i(q32_unsigned(type, w0), q32_unsigned(type, w1));
        __m512 dw = cat_f(w32_scale_v(type, w0), w32_scale_v(type, w1));
        __m512 mw = m1 ? cat_f(bcast_h(w0 + 2), bcast_h(w1 + 2)) : _mm512_setzero_ps();
        UNROLL for (int t = 0; t < T; t++) {
            const uint8_t *a0 = a[t] + abk * i, *a1 = a0 + abk;
            __m512i y = cat_i(_mm256_loadu_si256((const __m256i *)(a0 + aq)), _mm256_loadu_si256((const __m256i *)(a1 + aq)));
            __m512 dy = cat_f(bcast_h(a0), bcast_h(a1));
            __m512i corr;
            if (m1) {
                /* s in lane 0 of each block: the m*s term enters once per block */
                __m512 sy = cat_f(_mm256_set_m128(_mm_setzero_ps(), _mm_set_ss(_cvtsh_ss(msq_rd16(a0 + 2)))),
                                  _mm256_set_m128(_mm_setzero_ps(), _mm_set_ss(_cvtsh_ss(msq_rd16(a1 + 2)))));
                acc[t] = _mm512_fmadd_ps(mw, sy, acc[t]);
                corr = _mm512_setzero_si512();
            } else {
                corr = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_dpbusd_epi32(_mm512_setzero_si512(), offv, y));
            }
            __m512i s = _mm512_dpbusd_epi32(corr, u, y);
            acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(dw, dy), acc[t]);
        }
    }
    r1_512_finish(type, T, i, nb, w, a, acc, out);
}
#endif

#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
/* Decode (one activation row) for the types with Q8_0 activations (Q8_0,
 * Q4_0, Q5_0, IQ4_NL, MXFP4).  The activation side of tile_q8fam_r1_512
 * (its quants as one 64-byte vector per block pair, the offset correction
 * and the scales) is the same for every weight row, so it is laid out once
 * per call and the row loop only loads it: about half the instructions per
 * weight byte.  Same integer and float operations in the same order per
 * lane: bit-identical to the tile. */
typedef struct { __m512i y, corr; __m512 dy; } ActPair;
#define GEMV_MAX_PAIRS 256            /* n <= 16384: 48 KB on the stack */

ALWAYS_INLINE bool gemv_q8fam_512(const int type, int64_t n, int64_t nrows, const uint8_t *W, size_t rb,
                                  const uint8_t *A, float *Y)
{
    const int64_t nb = n / 32, np = nb / 2;
    if (np > GEMV_MAX_PAIRS || np == 0) return false;
    const size_t wb = q8fam_bytes(type);
    const __m512i offv = _mm512_set1_epi8((char)q8fam_off(type));
    ActPair ap[GEMV_MAX_PAIRS];
    for (int64_t p = 0; p < np; p++) {
        const uint8_t *a0 = A + 34 * (2 * p), *a1 = a0 + 34;
        ap[p].y = cat_i(_mm256_loadu_si256((const __m256i *)(a0 + 2)), _mm256_loadu_si256((const __m256i *)(a1 + 2)));
        ap[p].corr = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_dpbusd_epi32(_mm512_setzero_si512(), offv, ap[p].y));
        ap[p].dy = cat_f(bcast_h(a0), bcast_h(a1));
    }
    const uint8_t *at[1] = {A};
    for (int64_t r = 0; r < nrows; r++) {
        const uint8_t *wr = W + rb * (size_t)r;
        __m512 acc = _mm512_setzero_ps();
        for (int64_t p = 0; p < np; p++) {
            const uint8_t *w0 = wr + wb * (size_t)(2 * p), *w1 = w0 + wb;
            __m512i u = cat_i(q32_unsigned(type, w0), q32_unsigned(type, w1));
            __m512 dw;
            if (type == MS_TYPE_MXFP4)
                dw = cat_f(w32_scale_v(type, w0), w32_scale_v(type, w1));
            else   /* both f16 scales widened in one conversion (exact) */
                dw = _mm512_cvtph_ps(_mm256_inserti128_si256(_mm256_castsi128_si256(_mm_set1_epi16((short)msq_rd16(w0))),
                                                             _mm_set1_epi16((short)msq_rd16(w1)), 1));
            __m512i s = _mm512_dpbusd_epi32(ap[p].corr, u, ap[p].y);
            acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(dw, ap[p].dy), acc);
        }
        const uint8_t *wr1[1] = {wr};
        float o[4][4];
        r1_512_finish(type, 1, 2 * np, nb, wr1, at, &acc, o);
        Y[r] = o[0][0];
    }
    return true;
}

/* One instance per type, so the type's branches fold away. */
static bool gemv_q8fam(int type, int64_t n, int64_t nrows, const uint8_t *W, size_t rb, const uint8_t *A, float *Y)
{
    switch (type) {
    case MS_TYPE_Q8_0: return gemv_q8fam_512(MS_TYPE_Q8_0, n, nrows, W, rb, A, Y);
    case MS_TYPE_Q4_0: return gemv_q8fam_512(MS_TYPE_Q4_0, n, nrows, W, rb, A, Y);
    case MS_TYPE_Q5_0: return gemv_q8fam_512(MS_TYPE_Q5_0, n, nrows, W, rb, A, Y);
    case MS_TYPE_IQ4_NL: return gemv_q8fam_512(MS_TYPE_IQ4_NL, n, nrows, W, rb, A, Y);
    case MS_TYPE_MXFP4: return gemv_q8fam_512(MS_TYPE_MXFP4, n, nrows, W, rb, A, Y);
    default: return false;
    }
}
#endif

/* Single-row tiles (gemv, vec_dot) alternate two float accumulators over
 * blocks to hide the FMA latency; multi-row tiles have enough chains. */
ALWAYS_INLINE void tile_q8fam(const int type, const int R, const int T, int64_t nb,
                              const uint8_t *const *w, const uint8_t *const *a,
                              float out[4][4])
{
#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
    if (R == 1) {
        tile_q8fam_r1_512(type, T, nb, w, a, out);
        return;
    }
#endif
    const int ACC = R == 1 ? 2 : 1;
    __m256 acc[2][4][4];
    for (int u = 0; u < ACC; u++)
        UNROLL for (int r = 0; r < R; r++) UNROLL for (int t = 0; t < T; t++) acc[u][r][t] = _mm256_setzero_ps();
    int64_t i = 0;
    if (ACC == 2)
        for (; i + 2 <= nb; i += 2) {
            q8fam_block(type, R, T, i, w, a, acc[0]);
            q8fam_block(type, R, T, i + 1, w, a, acc[1]);
        }
    for (; i < nb; i++) q8fam_block(type, R, T, i, w, a, acc[0]);
    UNROLL for (int r = 0; r < R; r++) UNROLL for (int t = 0; t < T; t++)
        out[r][t] = hsum8(ACC == 2 ? _mm256_add_ps(acc[0][r][t], acc[1][r][t]) : acc[0][r][t]);
}

/* ---- K-quants with Q8_K activations ----
 * Sub-block products: maddubs(u8 weights, s8 activations) -> i16 pairs,
 * then dpwssd with the sub-block scale -> i32 lanes; one float scaling per
 * super-block. */
ALWAYS_INLINE __m256i scale_pair(int sa, int sb)
{
    return _mm256_set_m128i(_mm_set1_epi16((short)sb), _mm_set1_epi16((short)sa));
}

#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
/* Q4_K, one row (decode): the 32 quant bytes of step p as 64 nibbles in a
 * 512-bit vector, sub-block 2p (low nibbles) in the low half and 2p+1 (high
 * nibbles) in the high half, against the 64 activation bytes of both; one
 * maddubs and one dpwssd per step instead of two of each.  Lane j of the
 * low half sums the same 4 products as lane j of the AVX2 form's low-nibble
 * chunk, lane j of the high half those of its high-nibble chunk, so adding
 * the halves (exact, in integers) gives that form's per-lane sums, and the
 * float operations after it are the same: bit-identical. */
ALWAYS_INLINE void tile_q4k_r1_512(const int T, int64_t nb, const uint8_t *const *w, const uint8_t *const *a,
                                   float out[4][4])
{
    const __m512i m4 = _mm512_set1_epi8(15);
    /* i16 lane -> its sub-block within the step: 0 in the low half, 1 in the high */
    const __m512i half = _mm512_set_epi64(0x0001000100010001LL, 0x0001000100010001LL, 0x0001000100010001LL,
                                          0x0001000100010001LL, 0, 0, 0, 0);
    __m256 acc[4];
    UNROLL for (int t = 0; t < T; t++) acc[t] = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *b = w[0] + 144 * i;
        uint64_t s8, m8;
        msq_q4k_scales8(b + 4, &s8, &m8);
        const __m512i sc = _mm512_castsi128_si512(_mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)s8)));
        __m128i mm = _mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)m8));
        const __m256i mins = _mm256_set_m128i(_mm_unpackhi_epi16(mm, mm), _mm_unpacklo_epi16(mm, mm));
        const __m256 dw = bcast_h(b), dmw = bcast_h(b + 2);
        __m512i c[4];
        UNROLL for (int t = 0; t < T; t++) c[t] = _mm512_setzero_si512();
        UNROLL for (int p = 0; p < 4; p++) {
            __m512i q = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(b + 16 + 32 * p)));
            __m512i u = _mm512_and_si512(_mm512_mask_srli_epi16(q, 0xFFFF0000u, q, 4), m4);
            __m512i scl = _mm512_permutexvar_epi16(_mm512_add_epi16(half, _mm512_set1_epi16((short)(2 * p))), sc);
            UNROLL for (int t = 0; t < T; t++) {
                __m512i y = _mm512_loadu_si512((const void *)(a[t] + 292 * i + 4 + 64 * p));
                c[t] = _mm512_dpwssd_epi32(c[t], _mm512_maddubs_epi16(u, y), scl);
            }
        }
        UNROLL for (int t = 0; t < T; t++) {
            __m256i isum = _mm256_add_epi32(_mm512_castsi512_si256(c[t]), _mm512_extracti64x4_epi64(c[t], 1));
            const __m256 dy = _mm256_set1_ps(rdf32(a[t] + 292 * i));
            __m256i bs = _mm256_loadu_si256((const __m256i *)(a[t] + 292 * i + 260));
            __m256 m = _mm256_cvtepi32_ps(_mm256_madd_epi16(mins, bs));
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_mul_ps(dw, dy), acc[t]);
            acc[t] = _mm256_fnmadd_ps(m, _mm256_mul_ps(dmw, dy), acc[t]);
        }
    }
    UNROLL for (int t = 0; t < T; t++) out[0][t] = hsum8(acc[t]);
}
#endif

ALWAYS_INLINE void tile_q45k(const int five, const int R, const int T, int64_t nb,
                             const uint8_t *const *w, const uint8_t *const *a,
                             float out[4][4])
{
#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
    if (R == 1 && !five) {
        tile_q4k_r1_512(T, nb, w, a, out);
        return;
    }
#endif
    const size_t wb = five ? 176 : 144;
    const __m256i m4 = _mm256_set1_epi8(15);
    __m256 acc[4][4];
    UNROLL for (int r = 0; r < R; r++) UNROLL for (int t = 0; t < T; t++) acc[r][t] = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        /* R == 1: one integer chain per 64 elements (cp), summed exactly at the end */
        __m256i isum[4][4], cp[4][4], sc16[4], mins[4];
        __m256 dw[4], dmw[4], dy[4];
        UNROLL for (int r = 0; r < R; r++) {
            const uint8_t *b = w[r] + wb * i;
            uint64_t s8, m8;
            msq_q4k_scales8(b + 4, &s8, &m8);
            /* the 8 scales as i16 in both 128-bit lanes; broadcast per sub-block below */
            sc16[r] = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)s8)));
            /* mins paired with bsums: lane j of madd = m_j*(bs[2j]+bs[2j+1]) */
            __m128i mm = _mm_cvtepu8_epi16(_mm_cvtsi64_si128((long long)m8));
            mins[r] = _mm256_set_m128i(_mm_unpackhi_epi16(mm, mm), _mm_unpacklo_epi16(mm, mm));
            dw[r] = bcast_h(b);
            dmw[r] = bcast_h(b + 2);
            UNROLL for (int t = 0; t < T; t++) isum[r][t] = _mm256_setzero_si256();
        }
        if (R == 1) UNROLL for (int p = 0; p < 4; p++) UNROLL for (int t = 0; t < T; t++) cp[p][t] = _mm256_setzero_si256();
        UNROLL for (int t = 0; t < T; t++) dy[t] = _mm256_set1_ps(rdf32(a[t] + 292 * i));
        UNROLL for (int p = 0; p < 4; p++) {
            __m256i ylo[4], yhi[4];
            UNROLL for (int t = 0; t < T; t++) {
                const uint8_t *ys = a[t] + 292 * i + 4 + 64 * p;
                ylo[t] = _mm256_loadu_si256((const __m256i *)ys);
                yhi[t] = _mm256_loadu_si256((const __m256i *)(ys + 32));
            }
            UNROLL for (int r = 0; r < R; r++) {
                const uint8_t *b = w[r] + wb * i;
                __m256i q = _mm256_loadu_si256((const __m256i *)(b + (five ? 48 : 16) + 32 * p));
                __m256i lo = _mm256_and_si256(q, m4);
                __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
                if (five) {
                    __m256i qh = _mm256_loadu_si256((const __m256i *)(b + 16));
                    __m256i bl = _mm256_set1_epi8((char)(1 << (2 * p)));
                    __m256i bh = _mm256_set1_epi8((char)(2 << (2 * p)));
                    __m256i x10 = _mm256_set1_epi8(16);
                    lo = _mm256_or_si256(lo, _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(qh, bl), bl), x10));
                    hi = _mm256_or_si256(hi, _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(qh, bh), bh), x10));
                }
                __m256i slo = _mm256_shuffle_epi8(sc16[r], _mm256_set1_epi16((short)(0x0100 + 0x0202 * 2 * p)));
                __m256i shi = _mm256_shuffle_epi8(sc16[r], _mm256_set1_epi16((short)(0x0100 + 0x0202 * (2 * p + 1))));
                UNROLL for (int t = 0; t < T; t++) {
                    __m256i *c = R == 1 ? &cp[p][t] : &isum[r][t];
                    *c = DPWSSD(*c, _mm256_maddubs_epi16(lo, ylo[t]), slo);
                    *c = DPWSSD(*c, _mm256_maddubs_epi16(hi, yhi[t]), shi);
                }
            }
        }
        UNROLL for (int t = 0; t < T; t++) {
            __m256i bs = _mm256_loadu_si256((const __m256i *)(a[t] + 292 * i + 260));
            UNROLL for (int r = 0; r < R; r++) {
                if (R == 1) isum[r][t] = _mm256_add_epi32(_mm256_add_epi32(cp[0][t], cp[1][t]),
                                                          _mm256_add_epi32(cp[2][t], cp[3][t]));
                __m256 m = _mm256_cvtepi32_ps(_mm256_madd_epi16(mins[r], bs));
                acc[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[r][t]), _mm256_mul_ps(dw[r], dy[t]), acc[r][t]);
                acc[r][t] = _mm256_fnmadd_ps(m, _mm256_mul_ps(dmw[r], dy[t]), acc[r][t]);
            }
        }
    }
    UNROLL for (int r = 0; r < R; r++) UNROLL for (int t = 0; t < T; t++) out[r][t] = hsum8(acc[r][t]);
}

#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
/* Q6_K, one row (decode): the chunks g and g+1 of the AVX2 form below (g =
 * 0, 2 of each half) in the low and high halves of one 512-bit vector: their
 * low bits are the 64 bytes of ql, their high bits qh shifted by 4 and 2 (g
 * = 0) or 0 and -2 (g = 2), their scales one per 128-bit lane.  Lane j of
 * each half sums what lane j of that chunk's chain sums there, so the
 * integer sum of all four chains, and the floats after it, are the same:
 * bit-identical. */
ALWAYS_INLINE void tile_q6k_r1_512(const int T, int64_t nb, const uint8_t *const *w, const uint8_t *const *a,
                                   float out[4][4])
{
    const __m512i m4 = _mm512_set1_epi8(15), m30 = _mm512_set1_epi8(0x30);
    const __m512i shl01 = _mm512_set_epi64(0x0002000200020002LL, 0x0002000200020002LL, 0x0002000200020002LL,
                                           0x0002000200020002LL, 0x0004000400040004LL, 0x0004000400040004LL,
                                           0x0004000400040004LL, 0x0004000400040004LL);
    const __m512i shr23 = _mm512_set_epi64(0x0002000200020002LL, 0x0002000200020002LL, 0x0002000200020002LL,
                                           0x0002000200020002LL, 0, 0, 0, 0);
    /* i16 lane -> its 128-bit lane's index (0..3): the scale it takes */
    const __m512i quarter = _mm512_set_epi64(0x0003000300030003LL, 0x0003000300030003LL, 0x0002000200020002LL,
                                             0x0002000200020002LL, 0x0001000100010001LL, 0x0001000100010001LL, 0, 0);
    __m256 acc[4];
    UNROLL for (int t = 0; t < T; t++) acc[t] = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *b = w[0] + 210 * i;
        __m256i s16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(b + 192)));
        const __m256i sc32 = _mm256_sub_epi16(_mm256_setzero_si256(), _mm256_slli_epi16(s16, 5));
        const __m512i sc = _mm512_castsi256_si512(s16);
        const __m256 dw = bcast_h(b + 208);
        __m512i c[4];
        UNROLL for (int t = 0; t < T; t++) c[t] = _mm512_setzero_si512();
        UNROLL for (int h = 0; h < 2; h++) {
            __m512i ql = _mm512_loadu_si512((const void *)(b + 64 * h));
            __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(b + 128 + 32 * h)));
            UNROLL for (int s2 = 0; s2 < 2; s2++) {
                __m512i lo = s2 ? _mm512_and_si512(_mm512_srli_epi16(ql, 4), m4) : _mm512_and_si512(ql, m4);
                __m512i hb = s2 ? _mm512_srlv_epi16(qh, shr23) : _mm512_sllv_epi16(qh, shl01);
                __m512i u = _mm512_or_si512(lo, _mm512_and_si512(hb, m30));
                __m512i scl = _mm512_permutexvar_epi16(
                    _mm512_add_epi16(quarter, _mm512_set1_epi16((short)(8 * h + 4 * s2))), sc);
                UNROLL for (int t = 0; t < T; t++) {
                    __m512i y = _mm512_loadu_si512((const void *)(a[t] + 292 * i + 4 + 128 * h + 64 * s2));
                    c[t] = _mm512_dpwssd_epi32(c[t], _mm512_maddubs_epi16(u, y), scl);
                }
            }
        }
        UNROLL for (int t = 0; t < T; t++) {
            const __m256 dy = _mm256_set1_ps(rdf32(a[t] + 292 * i));
            __m256i bs = _mm256_loadu_si256((const __m256i *)(a[t] + 292 * i + 260));
            __m256i isum = DPWSSD(_mm256_setzero_si256(), sc32, bs);
            isum = _mm256_add_epi32(isum, _mm256_add_epi32(_mm512_castsi512_si256(c[t]), _mm512_extracti64x4_epi64(c[t], 1)));
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_mul_ps(dw, dy), acc[t]);
        }
    }
    UNROLL for (int t = 0; t < T; t++) out[0][t] = hsum8(acc[t]);
}
#endif

/* Q6_K: u = q + 32 in 0..63; the -32 offset is folded in exactly as
 * -32*sum_j sc_j*bsum_j (one more dpwssd per super-block). */
ALWAYS_INLINE void tile_q6k(const int R, const int T, int64_t nb,
                            const uint8_t *const *w, const uint8_t *const *a,
                            float out[4][4])
{
#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
    if (R == 1) {
        tile_q6k_r1_512(T, nb, w, a, out);
        return;
    }
#endif
    const __m256i m4 = _mm256_set1_epi8(15), m30 = _mm256_set1_epi8(0x30);
    __m256 acc[4][4];
    UNROLL for (int r = 0; r < R; r++) UNROLL for (int t = 0; t < T; t++) acc[r][t] = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        /* R == 1: one integer chain per g (cg), summed exactly at the end */
        __m256i isum[4][4], cg[4][4], sc32[4];
        __m256 dw[4], dy[4];
        UNROLL for (int r = 0; r < R; r++) {
            const uint8_t *b = w[r] + 210 * i;
            __m256i s16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(b + 192)));
            sc32[r] = _mm256_sub_epi16(_mm256_setzero_si256(), _mm256_slli_epi16(s16, 5));
            dw[r] = bcast_h(b + 208);
            UNROLL for (int t = 0; t < T; t++) isum[r][t] = _mm256_setzero_si256();
        }
        UNROLL for (int t = 0; t < T; t++) {
            dy[t] = _mm256_set1_ps(rdf32(a[t] + 292 * i));
            __m256i bs = _mm256_loadu_si256((const __m256i *)(a[t] + 292 * i + 260));
            UNROLL for (int r = 0; r < R; r++) isum[r][t] = DPWSSD(isum[r][t], sc32[r], bs);
        }
        if (R == 1) UNROLL for (int g = 0; g < 4; g++) UNROLL for (int t = 0; t < T; t++) cg[g][t] = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            UNROLL for (int g = 0; g < 4; g++) {
                __m256i y[4];
                UNROLL for (int t = 0; t < T; t++)
                    y[t] = _mm256_loadu_si256((const __m256i *)(a[t] + 292 * i + 4 + 128 * h + 32 * g));
                UNROLL for (int r = 0; r < R; r++) {
                    const uint8_t *b = w[r] + 210 * i;
                    __m256i ql = _mm256_loadu_si256((const __m256i *)(b + 64 * h + 32 * (g & 1)));
                    __m256i qh = _mm256_loadu_si256((const __m256i *)(b + 128 + 32 * h));
                    __m256i lo = g >= 2 ? _mm256_and_si256(_mm256_srli_epi16(ql, 4), m4)
                                        : _mm256_and_si256(ql, m4);
                    __m256i hb;
                    switch (g) {
                    case 0: hb = _mm256_slli_epi16(qh, 4); break;
                    case 1: hb = _mm256_slli_epi16(qh, 2); break;
                    case 2: hb = qh; break;
                    default: hb = _mm256_srli_epi16(qh, 2); break;
                    }
                    __m256i u = _mm256_or_si256(lo, _mm256_and_si256(hb, m30));
                    const int8_t *sc = (const int8_t *)(b + 192 + 8 * h + 2 * g);
                    __m256i s = scale_pair(sc[0], sc[1]);
                    UNROLL for (int t = 0; t < T; t++) {
                        __m256i *c = R == 1 ? &cg[g][t] : &isum[r][t];
                        *c = DPWSSD(*c, _mm256_maddubs_epi16(u, y[t]), s);
                    }
                }
            }
        }
        UNROLL for (int r = 0; r < R; r++) UNROLL for (int t = 0; t < T; t++) {
            if (R == 1) isum[r][t] = _mm256_add_epi32(isum[r][t], _mm256_add_epi32(_mm256_add_epi32(cg[0][t], cg[1][t]),
                                                                             _mm256_add_epi32(cg[2][t], cg[3][t])));
            acc[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[r][t]), _mm256_mul_ps(dw[r], dy[t]), acc[r][t]);
        }
    }
    UNROLL for (int r = 0; r < R; r++) UNROLL for (int t = 0; t < T; t++) out[r][t] = hsum8(acc[r][t]);
}

/* ---- F32 / F16 / BF16: convert to f32 and FMA (products of two halves
 * are exact in f32, so only the summation order differs from ggml). */
ALWAYS_INLINE __m256 load8(int type, const uint8_t *p)
{
    if (type == MS_TYPE_F32) return _mm256_loadu_ps((const float *)p);
    __m128i h = _mm_loadu_si128((const __m128i *)p);
    if (type == MS_TYPE_F16) return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

static inline float scalar_elem(int type, const uint8_t *p, int64_t k)
{
    if (type == MS_TYPE_F32) return rdf32(p + 4 * k);
    uint16_t h = msq_rd16(p + 2 * k);
    return type == MS_TYPE_F16 ? ms_fp16_to_fp32(h) : ms_bf16_to_fp32(h);
}

ALWAYS_INLINE void tile_float(const int type, const int R, const int T, int64_t n,
                              const uint8_t *const *w, const uint8_t *const *a,
                              float out[4][4])
{
    const int es = type == MS_TYPE_F32 ? 4 : 2;
    __m256 acc[4][4];
    UNROLL for (int r = 0; r < R; r++) UNROLL for (int t = 0; t < T; t++) acc[r][t] = _mm256_setzero_ps();
    int64_t k = 0;
#if defined(__AVX512BF16__) && defined(__AVX512F__)
    if (type == MS_TYPE_BF16) {
        /* dpbf16ps: 32 bf16 pairs per instruction, f32 accumulation */
        __m512 acc5[4][4];
        UNROLL for (int r = 0; r < R; r++) UNROLL for (int t = 0; t < T; t++) acc5[r][t] = _mm512_setzero_ps();
        if (R == 1) {
            __m512 acc6[4];
            UNROLL for (int t = 0; t < T; t++) acc6[t] = _mm512_setzero_ps();
            for (; k + 64 <= n; k += 64) {
                __m512i x0 = _mm512_loadu_si512(w[0] + 2 * k), x1 = _mm512_loadu_si512(w[0] + 2 * k + 64);
                UNROLL for (int t = 0; t < T; t++) {
                    acc5[0][t] = _mm512_dpbf16_ps(acc5[0][t], (__m512bh)x0, (__m512bh)_mm512_loadu_si512(a[t] + 2 * k));
                    acc6[t] = _mm512_dpbf16_ps(acc6[t], (__m512bh)x1, (__m512bh)_mm512_loadu_si512(a[t] + 2 * k + 64));
                }
            }
            UNROLL for (int t = 0; t < T; t++) acc5[0][t] = _mm512_add_ps(acc5[0][t], acc6[t]);
        }
        for (; k + 32 <= n; k += 32) {
            __m512i x[4];
            UNROLL for (int r = 0; r < R; r++) x[r] = _mm512_loadu_si512(w[r] + 2 * k);
            UNROLL for (int t = 0; t < T; t++) {
                __m512i y = _mm512_loadu_si512(a[t] + 2 * k);
                UNROLL for (int r = 0; r < R; r++)
                    acc5[r][t] = _mm512_dpbf16_ps(acc5[r][t], (__m512bh)x[r], (__m512bh)y);
            }
        }
        UNROLL for (int r = 0; r < R; r++) UNROLL for (int t = 0; t < T; t++)
            acc[r][t] = _mm256_add_ps(_mm512_castps512_ps256(acc5[r][t]),
                                      _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc5[r][t]), 1)));
    }
#endif
    if (R == 1) {
        /* one row: 4 independent chains (FMA latency) */
        __m256 acc2[3][4];
        UNROLL for (int u = 0; u < 3; u++) UNROLL for (int t = 0; t < T; t++) acc2[u][t] = _mm256_setzero_ps();
        for (; k + 32 <= n; k += 32) {
            UNROLL for (int u = 0; u < 4; u++) {
                __m256 x = load8(type, w[0] + es * (k + 8 * u));
                UNROLL for (int t = 0; t < T; t++) {
                    __m256 y = load8(type, a[t] + es * (k + 8 * u));
                    if (u == 0) acc[0][t] = _mm256_fmadd_ps(x, y, acc[0][t]);
                    else acc2[u - 1][t] = _mm256_fmadd_ps(x, y, acc2[u - 1][t]);
                }
            }
        }
        UNROLL for (int t = 0; t < T; t++)
            acc[0][t] = _mm256_add_ps(_mm256_add_ps(acc[0][t], acc2[0][t]), _mm256_add_ps(acc2[1][t], acc2[2][t]));
    }
    for (; k + 8 <= n; k += 8) {
        __m256 x[4];
        UNROLL for (int r = 0; r < R; r++) x[r] = load8(type, w[r] + es * k);
        UNROLL for (int t = 0; t < T; t++) {
            __m256 y = load8(type, a[t] + es * k);
            UNROLL for (int r = 0; r < R; r++) acc[r][t] = _mm256_fmadd_ps(x[r], y, acc[r][t]);
        }
    }
    UNROLL for (int r = 0; r < R; r++) UNROLL for (int t = 0; t < T; t++) {
        float s = hsum8(acc[r][t]);
        for (int64_t j = k; j < n; j++) s += scalar_elem(type, w[r], j) * scalar_elem(type, a[t], j);
        out[r][t] = s;
    }
}

/* One R x T tile for any SIMD type (R, T compile-time constants after
 * inlining).  Returns false for types without a SIMD kernel. */
ALWAYS_INLINE bool tile_any(int type, const int R, const int T, int64_t n,
                            const uint8_t *const *w, const uint8_t *const *a, float out[4][4])
{
    switch (type) {
    case MS_TYPE_F32: tile_float(MS_TYPE_F32, R, T, n, w, a, out); return true;
    case MS_TYPE_F16: tile_float(MS_TYPE_F16, R, T, n, w, a, out); return true;
    case MS_TYPE_BF16: tile_float(MS_TYPE_BF16, R, T, n, w, a, out); return true;
    case MS_TYPE_Q8_0: tile_q8fam(MS_TYPE_Q8_0, R, T, n / 32, w, a, out); return true;
    case MS_TYPE_Q4_0: tile_q8fam(MS_TYPE_Q4_0, R, T, n / 32, w, a, out); return true;
    case MS_TYPE_Q5_0: tile_q8fam(MS_TYPE_Q5_0, R, T, n / 32, w, a, out); return true;
    case MS_TYPE_Q4_1: tile_q8fam(MS_TYPE_Q4_1, R, T, n / 32, w, a, out); return true;
    case MS_TYPE_Q5_1: tile_q8fam(MS_TYPE_Q5_1, R, T, n / 32, w, a, out); return true;
    case MS_TYPE_IQ4_NL: tile_q8fam(MS_TYPE_IQ4_NL, R, T, n / 32, w, a, out); return true;
    case MS_TYPE_MXFP4: tile_q8fam(MS_TYPE_MXFP4, R, T, n / 32, w, a, out); return true;
    case MS_TYPE_Q4_K: tile_q45k(0, R, T, n / 256, w, a, out); return true;
    case MS_TYPE_Q5_K: tile_q45k(1, R, T, n / 256, w, a, out); return true;
    case MS_TYPE_Q6_K: tile_q6k(R, T, n / 256, w, a, out); return true;
    default: return false;
    }
}

/* Out-of-line instances: 4 rows x T tokens, and 1 x 1 for vec_dot. */
static bool tile_4x4(int type, int64_t n, const uint8_t *const *w, const uint8_t *const *a, float o[4][4])
{ return tile_any(type, 4, 4, n, w, a, o); }
static bool tile_4x3(int type, int64_t n, const uint8_t *const *w, const uint8_t *const *a, float o[4][4])
{ return tile_any(type, 4, 3, n, w, a, o); }
static bool tile_4x2(int type, int64_t n, const uint8_t *const *w, const uint8_t *const *a, float o[4][4])
{ return tile_any(type, 4, 2, n, w, a, o); }
static bool tile_4x1(int type, int64_t n, const uint8_t *const *w, const uint8_t *const *a, float o[4][4])
{ return tile_any(type, 4, 1, n, w, a, o); }
static bool tile_1x1(int type, int64_t n, const uint8_t *const *w, const uint8_t *const *a, float o[4][4])
{ return tile_any(type, 1, 1, n, w, a, o); }
static bool tile_1x2(int type, int64_t n, const uint8_t *const *w, const uint8_t *const *a, float o[4][4])
{ return tile_any(type, 1, 2, n, w, a, o); }
static bool tile_1x3(int type, int64_t n, const uint8_t *const *w, const uint8_t *const *a, float o[4][4])
{ return tile_any(type, 1, 3, n, w, a, o); }

/* Decode rows: the single-row tile inlined into one row loop per type, so
 * its constants are set up once per call rather than once per row (a row
 * of 768 or 2048 is only 3 or 8 super-blocks).  The same tile as vec_dot,
 * so the same bits. */
ALWAYS_INLINE void rows_1x1(const int type, int64_t n, int64_t nrows, const uint8_t *W, size_t rb,
                            const uint8_t *A, float *Y)
{
    const uint8_t *at[1] = {A};
    for (int64_t r = 0; r < nrows; r++) {
        const uint8_t *wr[1] = {W + rb * (size_t)r};
        float o[4][4];
        tile_any(type, 1, 1, n, wr, at, o);
        Y[r] = o[0][0];
    }
}
#define ROWS_CASE(ty) case ty: rows_1x1(ty, n, nrows, W, rb, A, Y); break
static void gemv_rows(int type, int64_t n, int64_t nrows, const uint8_t *W, size_t rb, const uint8_t *A, float *Y)
{
    switch (type) {
    ROWS_CASE(MS_TYPE_F32); ROWS_CASE(MS_TYPE_F16); ROWS_CASE(MS_TYPE_BF16);
    ROWS_CASE(MS_TYPE_Q8_0); ROWS_CASE(MS_TYPE_Q4_0); ROWS_CASE(MS_TYPE_Q5_0); ROWS_CASE(MS_TYPE_Q4_1);
    ROWS_CASE(MS_TYPE_Q5_1); ROWS_CASE(MS_TYPE_IQ4_NL); ROWS_CASE(MS_TYPE_MXFP4);
    ROWS_CASE(MS_TYPE_Q4_K); ROWS_CASE(MS_TYPE_Q5_K); ROWS_CASE(MS_TYPE_Q6_K);
    default: break;    /* simd_type() is checked first */
    }
}
#undef ROWS_CASE

static bool simd_type(int type)
{
    switch (type) {
    case MS_TYPE_F32: case MS_TYPE_F16: case MS_TYPE_BF16:
    case MS_TYPE_Q8_0: case MS_TYPE_Q4_0: case MS_TYPE_Q5_0:
    case MS_TYPE_Q4_1: case MS_TYPE_Q5_1:
    case MS_TYPE_Q4_K: case MS_TYPE_Q5_K: case MS_TYPE_Q6_K:
    case MS_TYPE_IQ4_NL: case MS_TYPE_MXFP4:
        return true;
    default:
        return false;
    }
}


/* ---- packed prefill path (nt >= MSQ_PACK_MIN_NT, n a multiple of 256) ----
 * Per group of 256 elements, weights and activations are rearranged so
 * that lane j of an 8 x i32 accumulator sees only unit j (block j of a
 * Q8_0-family row, sub-block j of a Q4_K/Q5_K super-block): an 8x8 dword
 * transpose.  Then one dpbusd per 32 byte pairs does all the integer work
 * and the per-unit scaling happens once per 8 units in float lanes, instead
 * of a float conversion + scaling per 32-element block.  Two groups share
 * one packed block of 16 lanes (Q6_K: one super-block, its 16 sub-blocks).
 * AVX-512 computes the 16 lanes in one vector, AVX2 as two halves of 8 with
 * their own accumulators; every lane sees the same operations in the same
 * order and the halves are added as one tree (hsum8(lo + hi)), so the
 * result is bit-identical whichever width computes it.  Repacking is
 * amortised: weights over PK_TG tokens, activations over all rows. */
#define MSQ_PACK_MIN_NT 4
#define PK_KC 2048         /* elements per chunk of the inner dimension */
#define PK_TG 64           /* activation rows packed at a time: an expert's tokens in a
                              512-token prefill mostly fit, so its weights are packed once */
#define PK_W 2             /* groups per packed block (16 lanes) */

#if defined(__AVX512VNNI__) && defined(__AVX512F__) && defined(__AVX512BW__)
#define PK_512 1
#else
#define PK_512 0
#endif
/* Tokens per tile.  A 4 x T tile holds 4T integer and 4T float sums besides
 * 4 weight vectors and an activation: T = 3 is 29 of AVX-512's 32
 * registers.  At T = 4 (37) GCC spilled, and the tile ran 25-45 % slower;
 * AVX2 (16 registers, two halves) measured best at 2. */
#define PK_TT (PK_512 ? 3 : 2)

/* Without VNNI, dpbusd is emulated with maddubs, whose i16 pair sums would
 * saturate on Q8_0's / IQ4_NL's u = q + 128: those weights stay signed
 * (correction 0) and the sign trick feeds maddubs |w| and sign(w)*y. */
#define PK_SIGNED(type) (!MSQ_VNNI && ((type) == MS_TYPE_Q8_0 || (type) == MS_TYPE_IQ4_NL))

typedef struct {
    _Alignas(64) uint8_t q[8][32 * PK_W];  /* transposed bytes, unsigned (weights) / signed (acts) */
    _Alignas(64) float s[8 * PK_W];        /* see pack_w / pack_a */
    _Alignas(64) float b[8 * PK_W];
    _Alignas(64) int32_t c[8 * PK_W];      /* acts of the Q8_0 family: -off * sum(y) per block */
} PackBlk;

static inline void transpose8(__m256i *r)
{
    __m256i t0 = _mm256_unpacklo_epi32(r[0], r[1]), t1 = _mm256_unpackhi_epi32(r[0], r[1]);
    __m256i t2 = _mm256_unpacklo_epi32(r[2], r[3]), t3 = _mm256_unpackhi_epi32(r[2], r[3]);
    __m256i t4 = _mm256_unpacklo_epi32(r[4], r[5]), t5 = _mm256_unpackhi_epi32(r[4], r[5]);
    __m256i t6 = _mm256_unpacklo_epi32(r[6], r[7]), t7 = _mm256_unpackhi_epi32(r[6], r[7]);
    __m256i u0 = _mm256_unpacklo_epi64(t0, t2), u1 = _mm256_unpackhi_epi64(t0, t2);
    __m256i u2 = _mm256_unpacklo_epi64(t1, t3), u3 = _mm256_unpackhi_epi64(t1, t3);
    __m256i u4 = _mm256_unpacklo_epi64(t4, t6), u5 = _mm256_unpackhi_epi64(t4, t6);
    __m256i u6 = _mm256_unpacklo_epi64(t5, t7), u7 = _mm256_unpackhi_epi64(t5, t7);
    r[0] = _mm256_permute2x128_si256(u0, u4, 0x20);
    r[1] = _mm256_permute2x128_si256(u1, u5, 0x20);
    r[2] = _mm256_permute2x128_si256(u2, u6, 0x20);
    r[3] = _mm256_permute2x128_si256(u3, u7, 0x20);
    r[4] = _mm256_permute2x128_si256(u0, u4, 0x31);
    r[5] = _mm256_permute2x128_si256(u1, u5, 0x31);
    r[6] = _mm256_permute2x128_si256(u2, u6, 0x31);
    r[7] = _mm256_permute2x128_si256(u3, u7, 0x31);
}

static bool packed_type(int type)
{
    return type == MS_TYPE_Q8_0 || type == MS_TYPE_Q4_0 || type == MS_TYPE_Q5_0 ||
           type == MS_TYPE_IQ4_NL || type == MS_TYPE_MXFP4 || type == MS_TYPE_Q4_K ||
           type == MS_TYPE_Q5_K || type == MS_TYPE_Q6_K;
}

/* Q6_K: one super-block per packed block, 16 lanes = its 16 sub-blocks of
 * 16, so q[0..3] carry the data.  A 4x4 dword transpose inside each
 * 128-bit lane leaves sub-block 4m+l in lane 4l+m; the scale and
 * correction lanes are permuted the same way.  Weights u = q + 32, acts
 * c = -32*bsum_j, s = d*sc_j (weights; exact) and d (acts).  Each 256-bit
 * half is transposed on its own (the unpacks work within 128-bit lanes),
 * so both widths build the same bytes. */
static inline void transpose4x4_lanes(__m256i *z)
{
    __m256i t0 = _mm256_unpacklo_epi32(z[0], z[1]), t1 = _mm256_unpackhi_epi32(z[0], z[1]);
    __m256i t2 = _mm256_unpacklo_epi32(z[2], z[3]), t3 = _mm256_unpackhi_epi32(z[2], z[3]);
    z[0] = _mm256_unpacklo_epi64(t0, t2);
    z[1] = _mm256_unpackhi_epi64(t0, t2);
    z[2] = _mm256_unpacklo_epi64(t1, t3);
    z[3] = _mm256_unpackhi_epi64(t1, t3);
}

/* lane p holds sub-block 4*(p%4) + p/4 */
static const uint8_t q6_lane_sub[16] = {0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15};

static void pack_w_q6k(const uint8_t *row, int64_t g, PackBlk *o)
{
    const uint8_t *b = row + 210 * (size_t)g;
    const __m256i m4 = _mm256_set1_epi8(15), m30 = _mm256_set1_epi8(0x30);
    __m256i u[8];
    for (int h = 0; h < 2; h++) {
        __m256i qh = _mm256_loadu_si256((const __m256i *)(b + 128 + 32 * h));
        for (int gg = 0; gg < 4; gg++) {
            __m256i ql = _mm256_loadu_si256((const __m256i *)(b + 64 * h + 32 * (gg & 1)));
            __m256i lo = gg >= 2 ? _mm256_and_si256(_mm256_srli_epi16(ql, 4), m4) : _mm256_and_si256(ql, m4);
            __m256i hb = gg == 0 ? _mm256_slli_epi16(qh, 4) : gg == 1 ? _mm256_slli_epi16(qh, 2)
                       : gg == 2 ? qh : _mm256_srli_epi16(qh, 2);
            u[4 * h + gg] = _mm256_or_si256(lo, _mm256_and_si256(hb, m30));
        }
    }
    for (int half = 0; half < 2; half++) {
        __m256i z[4] = {u[half], u[2 + half], u[4 + half], u[6 + half]};
        transpose4x4_lanes(z);
        for (int k = 0; k < 4; k++) _mm256_store_si256((__m256i *)(o->q[k] + 32 * half), z[k]);
    }
    const float d = _cvtsh_ss(msq_rd16(b + 208));
    for (int p = 0; p < 16; p++) o->s[p] = (float)(int8_t)b[192 + q6_lane_sub[p]] * d;   /* exact */
}

static void pack_a_q6k(const uint8_t *row, int64_t g, PackBlk *o)
{
    const uint8_t *b = row + 292 * (size_t)g;
    for (int half = 0; half < 2; half++) {
        __m256i z[4];
        for (int m = 0; m < 4; m++) z[m] = _mm256_loadu_si256((const __m256i *)(b + 4 + 64 * m + 32 * half));
        transpose4x4_lanes(z);
        for (int k = 0; k < 4; k++) _mm256_store_si256((__m256i *)(o->q[k] + 32 * half), z[k]);
    }
    const float d = rdf32(b);
    for (int p = 0; p < 16; p++) {
        o->c[p] = -32 * (int32_t)(int16_t)msq_rd16(b + 260 + 2 * q6_lane_sub[p]);
        o->s[p] = d;
    }
}

static inline bool is_k(int type) { return type == MS_TYPE_Q4_K || type == MS_TYPE_Q5_K; }

/* Store the 8 transposed vectors and scale lanes of one group into slot h. */
static inline void pk_store(PackBlk *o, int h, const __m256i *r, __m256 s, __m256 b, __m256i c)
{
    for (int k = 0; k < 8; k++) _mm256_store_si256((__m256i *)(o->q[k] + 32 * h), r[k]);
    _mm256_store_ps(o->s + 8 * h, s);
    _mm256_store_ps(o->b + 8 * h, b);
    _mm256_store_si256((__m256i *)(o->c + 8 * h), c);
}

/* Zero a slot (odd group count): contributes exactly 0. */
static inline void pk_zero(PackBlk *o, int h)
{
    __m256i z[8];
    for (int k = 0; k < 8; k++) z[k] = _mm256_setzero_si256();
    pk_store(o, h, z, _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_si256());
}

/* Eight f16 values to f32 in one conversion (exact, as _cvtsh_ss each). */
ALWAYS_INLINE __m256 f16x8_ps(const uint16_t *h)
{
    return _mm256_cvtph_ps(_mm_set_epi16((short)h[7], (short)h[6], (short)h[5], (short)h[4],
                                         (short)h[3], (short)h[2], (short)h[1], (short)h[0]));
}

/* The signed integer weights of a Q8_0 / IQ4_NL block (PK_SIGNED). */
ALWAYS_INLINE __m256i q32_signed(int type, const uint8_t *b)
{
    if (type == MS_TYPE_Q8_0) return _mm256_loadu_si256((const __m256i *)(b + 2));
    __m128i h = _mm_loadu_si128((const __m128i *)(b + 2));
    __m256i nib = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(h, 4), h), _mm256_set1_epi8(15));
    return _mm256_shuffle_epi8(lut_table(type, 0), nib);
}

/* Weights of group g.  Q8_0 family: q = block values + off (signed values
 * under PK_SIGNED), s = block d.  Q4_K/Q5_K: q = sub-block levels,
 * s = d*sc_j, b = dmin*m_j (both exact in f32: an f16 times a 6-bit integer). */
ALWAYS_INLINE void pack_w(const int type, const uint8_t *row, int64_t g, PackBlk *o, int h, int nb)
{
    __m256i r[8];
    __m256 sv, bv = _mm256_setzero_ps();
    if (!is_k(type) && nb == 8 && type != MS_TYPE_MXFP4) {
        /* a whole group: its eight f16 scales gathered in a register, not
         * through a stack array that one vector load re-reads (a stalled
         * store forward, 7 % of a Q8_0 prefill call) */
        const size_t wb = q8fam_bytes(type);
        const uint8_t *b = row + wb * (size_t)(8 * g);
        UNROLL8 for (int j = 0; j < 8; j++)
            r[j] = PK_SIGNED(type) ? q32_signed(type, b + wb * j) : q32_unsigned(type, b + wb * j);
        __m128i hv = _mm_cvtsi32_si128(msq_rd16(b));
        hv = _mm_insert_epi16(hv, (short)msq_rd16(b + wb), 1);
        hv = _mm_insert_epi16(hv, (short)msq_rd16(b + wb * 2), 2);
        hv = _mm_insert_epi16(hv, (short)msq_rd16(b + wb * 3), 3);
        hv = _mm_insert_epi16(hv, (short)msq_rd16(b + wb * 4), 4);
        hv = _mm_insert_epi16(hv, (short)msq_rd16(b + wb * 5), 5);
        hv = _mm_insert_epi16(hv, (short)msq_rd16(b + wb * 6), 6);
        hv = _mm_insert_epi16(hv, (short)msq_rd16(b + wb * 7), 7);
        sv = _mm256_cvtph_ps(hv);
    } else if (!is_k(type)) {
        size_t wb = q8fam_bytes(type);
        float d[8];
        uint16_t h16[8] = { 0 };   /* f16 0 past the row's end */
        for (int j = 0; j < 8; j++) {
            if (j >= nb) {   /* past the row's end (a partial last group): contributes 0 */
                r[j] = _mm256_setzero_si256();
                d[j] = 0.0f;
                continue;
            }
            const uint8_t *b = row + wb * (size_t)(8 * g + j);
            r[j] = PK_SIGNED(type) ? q32_signed(type, b) : q32_unsigned(type, b);
            if (type == MS_TYPE_MXFP4) d[j] = msq_e8m0_half(b[0]);
            else h16[j] = msq_rd16(b);
        }
        /* f16 scales: one vector conversion (same values as 8 scalar ones,
         * without 8 stores feeding one vector load) */
        sv = type == MS_TYPE_MXFP4 ? _mm256_loadu_ps(d) : f16x8_ps(h16);
    } else {
        bool five = type == MS_TYPE_Q5_K;
        const uint8_t *b = row + (five ? 176 : 144) * (size_t)g;
        const __m256i m4 = _mm256_set1_epi8(15);
        __m256i qh = _mm256_loadu_si256((const __m256i *)(b + 16)), x10 = _mm256_set1_epi8(16);
        for (int p = 0; p < 4; p++) {
            __m256i q = _mm256_loadu_si256((const __m256i *)(b + (five ? 48 : 16) + 32 * p));
            __m256i lo = _mm256_and_si256(q, m4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
            if (five) {
                __m256i bl = _mm256_set1_epi8((char)(1 << (2 * p))), bh = _mm256_set1_epi8((char)(2 << (2 * p)));
                lo = _mm256_or_si256(lo, _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(qh, bl), bl), x10));
                hi = _mm256_or_si256(hi, _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(qh, bh), bh), x10));
            }
            r[2 * p] = lo;
            r[2 * p + 1] = hi;
        }
        uint64_t s8, m8;
        msq_q4k_scales8(b + 4, &s8, &m8);
        __m256 sc = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)s8)));
        __m256 mn = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)m8)));
        sv = _mm256_mul_ps(sc, bcast_h(b));
        bv = _mm256_mul_ps(mn, bcast_h(b + 2));
    }
    transpose8(r);
    pk_store(o, h, r, sv, bv, _mm256_setzero_si256());
}

/* Activations of group g.  Q8_0: s = block d, c = -off*sum(block) (so
 * dpbusd from c gives sum(q*y) exactly; 0 under PK_SIGNED).  Q8_K: s = d
 * (broadcast), b = sum of each 32-element sub-block (from the bsums). */
ALWAYS_INLINE void pack_a(const int type, const uint8_t *row, int64_t g, PackBlk *o, int h, int nb)
{
    __m256i r[8];
    if (!is_k(type)) {
        uint16_t h16[8] = { 0 };
        for (int j = 0; j < 8; j++) {
            if (j >= nb) {
                r[j] = _mm256_setzero_si256();
                continue;
            }
            const uint8_t *b = row + 34 * (size_t)(8 * g + j);
            r[j] = _mm256_loadu_si256((const __m256i *)(b + 2));
            h16[j] = msq_rd16(b);
        }
        transpose8(r);
        __m256i c = _mm256_setzero_si256();
        if (!PK_SIGNED(type)) {
            const __m256i offv = _mm256_set1_epi8((char)q8fam_off(type));
            for (int k = 0; k < 8; k++) c = DPBUSD(c, offv, r[k]);
        }
        pk_store(o, h, r, f16x8_ps(h16), _mm256_setzero_ps(),
                 _mm256_sub_epi32(_mm256_setzero_si256(), c));
    } else {
        const uint8_t *b = row + 292 * (size_t)g;
        for (int j = 0; j < 8; j++) r[j] = _mm256_loadu_si256((const __m256i *)(b + 4 + 32 * j));
        transpose8(r);
        __m256i bs = _mm256_loadu_si256((const __m256i *)(b + 260));
        pk_store(o, h, r, _mm256_set1_ps(rdf32(b)),
                 _mm256_cvtepi32_ps(_mm256_madd_epi16(bs, _mm256_set1_epi16(1))), _mm256_setzero_si256());
    }
}

#if PK_512
typedef __m512i PVi;
typedef __m512 PVf;
#define PV_LANES 16
#define PV_HALVES 1
#define PV_LOADI(p) _mm512_load_si512((const void *)(p))
#define PV_LOADF(p) _mm512_load_ps((const void *)(p))
#define PV_ZEROI() _mm512_setzero_si512()
#define PV_ZEROF() _mm512_setzero_ps()
#define PV_DP(sg, acc, u, s) _mm512_dpbusd_epi32((acc), (u), (s))
#define PV_CVT(x) _mm512_cvtepi32_ps(x)
#define PV_MUL(a, b) _mm512_mul_ps((a), (b))
#define PV_FMA(a, b, c) _mm512_fmadd_ps((a), (b), (c))
#define PV_FNMA(a, b, c) _mm512_fnmadd_ps((a), (b), (c))
#define PV_ADD(a, b) _mm512_add_ps((a), (b))
/* lanes 0..7 + lanes 8..15, then the 8-lane tree: the AVX2 halves' order */
#define PV_HSUM(x) hsum8(_mm256_add_ps(_mm512_castps512_ps256(x), \
    _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(x), 1))))
#else
typedef __m256i PVi;
typedef __m256 PVf;
#define PV_LANES 8
#define PV_HALVES 2
#define PV_LOADI(p) _mm256_load_si256((const __m256i *)(p))
#define PV_LOADF(p) _mm256_load_ps((const float *)(p))
#define PV_ZEROI() _mm256_setzero_si256()
#define PV_ZEROF() _mm256_setzero_ps()
#define PV_DP(sg, acc, u, s) ((sg) ? DPBUSD((acc), _mm256_sign_epi8((u), (u)), _mm256_sign_epi8((s), (u))) \
                                   : DPBUSD((acc), (u), (s)))
#define PV_CVT(x) _mm256_cvtepi32_ps(x)
#define PV_MUL(a, b) _mm256_mul_ps((a), (b))
#define PV_FMA(a, b, c) _mm256_fmadd_ps((a), (b), (c))
#define PV_FNMA(a, b, c) _mm256_fnmadd_ps((a), (b), (c))
#define PV_ADD(a, b) _mm256_add_ps((a), (b))
#define PV_HSUM(x) hsum8(x)
#endif

/* One 4 x T tile over np packed blocks.  With 8-lane vectors the two
 * halves of each block are separate passes with separate accumulators,
 * added at the end like the two halves of a 16-lane vector. */
ALWAYS_INLINE void tile_packed(const int kq, const int sg, const int NK, const int T, int np,
                               const PackBlk *const *w, const PackBlk *const *a, float out[4][4])
{
    (void)sg;   /* AVX-512's PV_DP needs no sign fix-up */
    PVf part[4][4];
    /* set below for h == 0; zeroed so GCC sees it set when inlined per type */
    UNROLL for (int r = 0; r < 4; r++) UNROLL for (int t = 0; t < T; t++) part[r][t] = PV_ZEROF();
    for (int h = 0; h < PV_HALVES; h++) {
        const int lo = PV_LANES * h;   /* lane offset of this half */
        PVf acc[4][4];
        UNROLL for (int r = 0; r < 4; r++) UNROLL for (int t = 0; t < T; t++) acc[r][t] = PV_ZEROF();
        for (int g = 0; g < np; g++) {
            PVi is[4][4];
            UNROLL for (int r = 0; r < 4; r++) UNROLL for (int t = 0; t < T; t++)
                is[r][t] = kq ? PV_ZEROI() : PV_LOADI(a[t][g].c + lo);
            /* two k steps per iteration, not all eight: fully unrolled, GCC
             * hoisted the loads and spilled the 16 accumulators (the tile
             * ran 25-75 % slower, depending on the level) */
            _Pragma("GCC unroll 2") for (int k = 0; k < NK; k++) {
                PVi wq[4];
                UNROLL for (int r = 0; r < 4; r++) wq[r] = PV_LOADI(w[r][g].q[k] + 4 * lo);
                UNROLL for (int t = 0; t < T; t++) {
                    PVi aq = PV_LOADI(a[t][g].q[k] + 4 * lo);
                    UNROLL for (int r = 0; r < 4; r++) is[r][t] = PV_DP(sg, is[r][t], wq[r], aq);
                }
            }
            UNROLL for (int r = 0; r < 4; r++) UNROLL for (int t = 0; t < T; t++) {
                PVf f = PV_CVT(is[r][t]);
                if (kq) {
                    f = PV_MUL(f, PV_LOADF(w[r][g].s + lo));
                    f = PV_FNMA(PV_LOADF(a[t][g].b + lo), PV_LOADF(w[r][g].b + lo), f);
                    acc[r][t] = PV_FMA(f, PV_LOADF(a[t][g].s + lo), acc[r][t]);
                } else {
                    acc[r][t] = PV_FMA(f, PV_MUL(PV_LOADF(w[r][g].s + lo), PV_LOADF(a[t][g].s + lo)), acc[r][t]);
                }
            }
        }
        UNROLL for (int r = 0; r < 4; r++) UNROLL for (int t = 0; t < T; t++)
            part[r][t] = h == 0 ? acc[r][t] : PV_ADD(part[r][t], acc[r][t]);
    }
    UNROLL for (int r = 0; r < 4; r++) UNROLL for (int t = 0; t < T; t++) out[r][t] = PV_HSUM(part[r][t]);
}

#define TP_T(kq, sg, nk) do { \
        switch (T) { \
        case 3: tile_packed(kq, sg, nk, 3, np, w, a, out); break; \
        case 2: tile_packed(kq, sg, nk, 2, np, w, a, out); break; \
        default: tile_packed(kq, sg, nk, 1, np, w, a, out); break; \
        } \
    } while (0)

/* A 4 x T tile, T = 1..PK_TT tokens. */
static void tile_packed_any(int type, int T, int np, const PackBlk *const *w,
                            const PackBlk *const *a, float out[4][4])
{
    if (is_k(type)) TP_T(1, 0, 8);
    else if (type == MS_TYPE_Q6_K) TP_T(0, 0, 4);
    else if (PK_SIGNED(type)) TP_T(0, 1, 8);
    else TP_T(0, 0, 8);
}
#undef TP_T

#define PK_NB (PK_KC / (256 * PK_W))   /* packed blocks per chunk */

ALWAYS_INLINE void gemm_packed_t(const int type, int64_t n, int64_t nrows, const uint8_t *W, size_t rb,
                                  int64_t nt, const uint8_t *A, size_t ab, float *Y, int64_t ldy)
{
    PackBlk apk[PK_TG][PK_NB], wpk[4][PK_NB];
    for (int64_t t0 = 0; t0 < nt; t0 += PK_TG) {
        int tn = (int)MS_MIN(PK_TG, nt - t0);
        /* Q6_K: one super-block per packed block, so a shorter chunk */
        const bool q6 = type == MS_TYPE_Q6_K;
        const int per = q6 ? 1 : PK_W;
        const int64_t kc = (int64_t)PK_NB * per * 256;
        for (int64_t k0 = 0; k0 < n; k0 += kc) {
            /* groups of 256 in this chunk; the Q8_0 family may end with a
             * partial group of nb_last 32-blocks (zero-padded) */
            const int64_t kn = MS_MIN(kc, n - k0);
            int ng = (int)((kn + 255) / 256), np = (ng + per - 1) / per;
            const int nb_last = (int)((kn - 256 * (int64_t)(ng - 1)) / 32);
            for (int t = 0; t < tn; t++) {
                if (q6) {
                    for (int g = 0; g < ng; g++) pack_a_q6k(A + ab * (size_t)(t0 + t), k0 / 256 + g, &apk[t][g]);
                    continue;
                }
                for (int g = 0; g < ng; g++)
                    pack_a(type, A + ab * (size_t)(t0 + t), k0 / 256 + g, &apk[t][g / PK_W], g % PK_W,
                           g == ng - 1 ? nb_last : 8);
                if (ng % PK_W) pk_zero(&apk[t][np - 1], ng % PK_W);
            }
            const size_t coff = ms_row_bytes(type, k0), cb = ms_row_bytes(type, kn);
            for (int64_t r0 = 0; r0 < nrows; r0 += 4) {
                int nr = (int)MS_MIN(4, nrows - r0);
                /* the next quad's bytes of this chunk arrive while this one computes */
                for (int64_t r = r0 + 4; r < MS_MIN(r0 + 8, nrows); r++)
                    for (size_t o = 0; o < cb; o += 64)
                        _mm_prefetch((const char *)(W + rb * (size_t)r + coff + o), _MM_HINT_T0);
                for (int r = 0; r < 4; r++) {
                    if (r >= nr) { memcpy(wpk[r], wpk[nr - 1], sizeof wpk[r]); continue; }
                    const uint8_t *row = W + rb * (size_t)(r0 + r);
                    if (q6) {
                        for (int g = 0; g < ng; g++) pack_w_q6k(row, k0 / 256 + g, &wpk[r][g]);
                        continue;
                    }
                    for (int g = 0; g < ng; g++)
                        pack_w(type, row, k0 / 256 + g, &wpk[r][g / PK_W], g % PK_W, g == ng - 1 ? nb_last : 8);
                    if (ng % PK_W) pk_zero(&wpk[r][np - 1], ng % PK_W);
                }
                const PackBlk *wp[4] = {wpk[0], wpk[1], wpk[2], wpk[3]};
                for (int tt = 0; tt < tn; tt += PK_TT) {
                    const int tcount = MS_MIN(PK_TT, tn - tt);
                    const PackBlk *ap[PK_TT];
                    for (int t = 0; t < tcount; t++) ap[t] = apk[tt + t];
                    float o[4][4];
                    tile_packed_any(type, tcount, np, wp, ap, o);
                    for (int t = 0; t < tcount; t++) {
                        float *y = Y + (t0 + tt + t) * ldy + r0;
                        if (k0 == 0) for (int r = 0; r < nr; r++) y[r] = o[r][t];
                        else for (int r = 0; r < nr; r++) y[r] += o[r][t];
                    }
                }
            }
        }
    }
}

/* One instance per type, so the packers' type branches fold away (Q8_0
 * prefill calls ran 20-37 % faster).  Q6_K keeps the generic instance: its
 * own measured 5 % slower. */
static void gemm_packed(int type, int64_t n, int64_t nrows, const uint8_t *W, size_t rb,
                        int64_t nt, const uint8_t *A, size_t ab, float *Y, int64_t ldy)
{
#define GP_CASE(ty) case ty: gemm_packed_t(ty, n, nrows, W, rb, nt, A, ab, Y, ldy); break
    switch (type) {
    GP_CASE(MS_TYPE_Q8_0); GP_CASE(MS_TYPE_Q4_0); GP_CASE(MS_TYPE_Q5_0); GP_CASE(MS_TYPE_IQ4_NL);
    GP_CASE(MS_TYPE_MXFP4); GP_CASE(MS_TYPE_Q4_K); GP_CASE(MS_TYPE_Q5_K);
    default: gemm_packed_t(type, n, nrows, W, rb, nt, A, ab, Y, ldy); break;
    }
#undef GP_CASE
}

/* ---- F16 weights in prefill.  Weights and activations (F16, the vec_dot
 * type) are both widened to f32 as they load: a buffer of widened
 * activations, filled on every call, cost 6-12 % with the forward pass's
 * 80-row blocks.  Each output is 16 lane sums (lane j takes the elements
 * k = j mod 16 of a chunk in order, by FMA), added as one tree, then the
 * chunks in order: AVX-512 holds the 16 lanes in one vector, AVX2 in two
 * halves computed one after the other, so every level gives the same bits.
 * AVX2's 16 registers hold a 4 x 2 tile, AVX-512's 32 a 5 x 5 (25 sums, 5
 * weights, 1 activation); the tile shape does not change any output's
 * arithmetic.  Chunks of 2048 cover a whole row of the usual shapes, so
 * the tree is paid once per output (at 512 it cost about as much as a
 * 5 x 5 tile gains).  Tokens go in groups of F16_TG, whose activations
 * (128 KB at 2048 columns) stay in L2 while the rows pass.  Expert weights
 * come from memory once per layer, and a new row of 4 KB is a new page for
 * the hardware prefetcher, so each row tile's first token tile waited on
 * DRAM: while the first group's first token tile runs, the next row tile is
 * prefetched into L2 (bench-kernels at expert shapes: 10-20 % faster;
 * prefetches change no arithmetic). */
#define F16_KC 2048
#define UNROLL5 _Pragma("GCC unroll 5")   /* tile loops of up to 5 */
#define F16_TG 32
#define F16_PF _MM_HINT_T1   /* into L2: L1 holds the current tile's rows */
#if PK_512
#define F16_TR 5
#define F16_TT 5
#define PV_LOADH(p) _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(p)))
#else
#define F16_TR 4
#define F16_TT 2
#define PV_LOADH(p) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p)))
#endif

#if PK_512
/* PV_HSUM of 8 vectors at once: the same tree (lane i + lane i+8, then
 * i + i+4, i + i+2, i + i+1, the lower operand first), so the same bits, in
 * 4 levels of shuffles shared by the 8 sums: 23 instructions for 8 outputs
 * instead of 8 each.  The 768-wide rows of an expert's down projection
 * give each output 48 FMA steps, so its sum was a tenth of the tile
 * (bench-kernels F16, cache-hot expert shapes, 8 interleaved runs: down
 * 153.0 -> 158.8 GFLOP/s median, gate 166.6 -> 170.4). */
static inline void hsum16x8(const __m512 *x, float *o)
{
    __m512 y[4], z[2];
    for (int i = 0; i < 4; i++)
        y[i] = _mm512_add_ps(_mm512_shuffle_f32x4(x[2 * i], x[2 * i + 1], 0x44),
                             _mm512_shuffle_f32x4(x[2 * i], x[2 * i + 1], 0xEE));
    for (int i = 0; i < 2; i++)
        z[i] = _mm512_add_ps(_mm512_shuffle_f32x4(y[2 * i], y[2 * i + 1], 0x88),
                             _mm512_shuffle_f32x4(y[2 * i], y[2 * i + 1], 0xDD));
    __m512 wv = _mm512_add_ps(_mm512_shuffle_ps(z[0], z[1], 0x44), _mm512_shuffle_ps(z[0], z[1], 0xEE));
    __m512 v = _mm512_add_ps(wv, _mm512_shuffle_ps(wv, wv, 0xB1));
    float t[16];
    _mm512_storeu_ps(t, v);
    for (int k = 0; k < 4; k++) { o[k] = t[4 * k]; o[k + 4] = t[4 * k + 2]; }
}
#endif

ALWAYS_INLINE void tile_f16(const int T, int kn, const uint16_t *const *w, const uint16_t *const *a,
                            const uint16_t *const *pf, float out[F16_TR][F16_TT])
{
    PVf part[F16_TR][F16_TT];
    for (int h = 0; h < PV_HALVES; h++) {
        const int lo = PV_LANES * h;
        PVf acc[F16_TR][F16_TT];
        UNROLL5 for (int r = 0; r < F16_TR; r++) UNROLL5 for (int t = 0; t < T; t++) acc[r][t] = PV_ZEROF();
        _Pragma("GCC unroll 2") for (int k = 0; k < kn; k += 16) {
            PVf wv[F16_TR];
            UNROLL5 for (int r = 0; r < F16_TR; r++) wv[r] = PV_LOADH(w[r] + k + lo);
            if (pf && h == 0 && k % 32 == 0)
                UNROLL5 for (int r = 0; r < F16_TR; r++) _mm_prefetch((const char *)(pf[r] + k), F16_PF);
            UNROLL5 for (int t = 0; t < T; t++) {
                PVf av = PV_LOADH(a[t] + k + lo);
                UNROLL5 for (int r = 0; r < F16_TR; r++) acc[r][t] = PV_FMA(wv[r], av, acc[r][t]);
            }
        }
        UNROLL5 for (int r = 0; r < F16_TR; r++) UNROLL5 for (int t = 0; t < T; t++)
            part[r][t] = h == 0 ? acc[r][t] : PV_ADD(part[r][t], acc[r][t]);
    }
#if PK_512
    PVf v[F16_TR * F16_TT];
    float o[F16_TR * F16_TT];
    int nv = 0;
    UNROLL5 for (int r = 0; r < F16_TR; r++) UNROLL5 for (int t = 0; t < T; t++) v[nv++] = part[r][t];
    int i = 0;
    for (; i + 8 <= nv; i += 8) hsum16x8(v + i, o + i);
    for (; i < nv; i++) o[i] = PV_HSUM(v[i]);
    UNROLL5 for (int r = 0; r < F16_TR; r++) UNROLL5 for (int t = 0; t < T; t++) out[r][t] = o[r * T + t];
#else
    UNROLL5 for (int r = 0; r < F16_TR; r++) UNROLL5 for (int t = 0; t < T; t++)
        out[r][t] = PV_HSUM(part[r][t]);
#endif
}

static void tile_f16_any(int T, int kn, const uint16_t *const *w, const uint16_t *const *a,
                         const uint16_t *const *pf, float out[F16_TR][F16_TT])
{
    switch (T) {
#if F16_TT == 5
    case 5: tile_f16(5, kn, w, a, pf, out); break;
    case 4: tile_f16(4, kn, w, a, pf, out); break;
    case 3: tile_f16(3, kn, w, a, pf, out); break;
#endif
    case 2: tile_f16(2, kn, w, a, pf, out); break;
    default: tile_f16(1, kn, w, a, pf, out); break;
    }
}

/* n a multiple of 16 */
static void gemm_f16(int64_t n, int64_t nrows, const uint8_t *W, size_t rb, int64_t nt, const uint8_t *A,
                     size_t ab, float *Y, int64_t ldy)
{
    for (int64_t t0 = 0; t0 < nt; t0 += F16_TG) {
        const int tn = (int)MS_MIN(F16_TG, nt - t0);
        for (int64_t k0 = 0; k0 < n; k0 += F16_KC) {
            const int kn = (int)MS_MIN(F16_KC, n - k0);
            for (int64_t r0 = 0; r0 < nrows; r0 += F16_TR) {
                const int nr = (int)MS_MIN(F16_TR, nrows - r0);
                const uint16_t *wr[F16_TR];
                for (int r = 0; r < F16_TR; r++)
                    wr[r] = (const uint16_t *)(W + rb * (size_t)MS_MIN(r0 + r, nrows - 1) + 2 * (size_t)k0);
                const uint16_t *pn[F16_TR];   /* the next row tile, fetched during the first token tile */
                for (int r = 0; r < F16_TR; r++)
                    pn[r] = (const uint16_t *)(W + rb * (size_t)MS_MIN(r0 + F16_TR + r, nrows - 1) + 2 * (size_t)k0);
                for (int tt = 0; tt < tn; tt += F16_TT) {
                    const int tc = MS_MIN(F16_TT, tn - tt);
                    float o[F16_TR][F16_TT];
                    const uint16_t *ap[F16_TT];
                    for (int t = 0; t < tc; t++)
                        ap[t] = (const uint16_t *)(A + ab * (size_t)(t0 + tt + t) + 2 * (size_t)k0);
                    tile_f16_any(tc, kn, wr, ap, t0 == 0 && tt == 0 && r0 + F16_TR < nrows ? pn : NULL, o);
                    for (int t = 0; t < tc; t++) {
                        float *y = Y + (t0 + tt + t) * ldy + r0;
                        if (k0 == 0) for (int r = 0; r < nr; r++) y[r] = o[r][t];
                        else for (int r = 0; r < nr; r++) y[r] += o[r][t];
                    }
                }
            }
        }
    }
}

/* ====================================================== entry points */

bool MSQ_FN(msq_vec_dot)(int wtype, int64_t n, const void *wrow, const void *act, float *out)
{
    if (!simd_type(wtype)) return false;
    const uint8_t *w[1] = {wrow}, *a[1] = {act};
    float o[4][4];
    tile_1x1(wtype, n, w, a, o);
    *out = o[0][0];
    return true;
}

bool MSQ_FN(msq_gemm)(int wtype, int64_t n, int64_t nrows, const void *w,
                      int64_t nt, const void *act, float *Y, int64_t ldy)
{
    if (!simd_type(wtype)) return false;
    const size_t rb = ms_row_bytes(wtype, n);
    const size_t ab = ms_row_bytes(ms_vec_dot_type(wtype), n);
    const uint8_t *W = w, *A = act;
    if (wtype == MS_TYPE_F16 && nt >= MSQ_PACK_MIN_NT && n % 16 == 0) {
        gemm_f16(n, nrows, W, rb, nt, A, ab, Y, ldy);
        return true;
    }
    /* Packed: whole groups of 256, or for the Q8_0 family any whole number of
     * blocks past one group (the last group zero-padded; rows of 256 or
     * fewer keep the tile path, whose order is ggml's vec_dot order) */
    if (packed_type(wtype) && nt >= MSQ_PACK_MIN_NT &&
        (n % 256 == 0 || (!is_k(wtype) && wtype != MS_TYPE_Q6_K && n % 32 == 0 && n > 256))) {
        gemm_packed(wtype, n, nrows, W, rb, nt, A, ab, Y, ldy);
        return true;
    }
    if (nt < MSQ_PACK_MIN_NT) {
        /* Decode and tiny batches: one weight row at a time, so the weights
         * stream sequentially (measured ~2x faster from DRAM than 4
         * interleaved rows); same kernel as ms_vec_dot, so bit-identical. */
        if (nt == 1) {
#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
            if (gemv_q8fam(wtype, n, nrows, W, rb, A, Y)) return true;
#endif
            gemv_rows(wtype, n, nrows, W, rb, A, Y);
            return true;
        }
        const uint8_t *at[3] = {A, A + ab, A + 2 * ab};
        for (int64_t r = 0; r < nrows; r++) {
            const uint8_t *wr[1] = {W + rb * (size_t)r};
            float o[4][4];
            if (nt == 2) tile_1x2(wtype, n, wr, at, o);
            else tile_1x3(wtype, n, wr, at, o);
            for (int t = 0; t < nt; t++) Y[t * ldy + r] = o[0][t];
        }
        return true;
    }
    /* Row tiles outer, token tiles inner: 4 weight rows stay in L1 while
     * every activation row passes over them.  Short tiles at the end of
     * the range reuse the last valid row (results discarded). */
    for (int64_t r0 = 0; r0 < nrows; r0 += 4) {
        const uint8_t *wr[4];
        for (int r = 0; r < 4; r++) wr[r] = W + rb * (size_t)MS_MIN(r0 + r, nrows - 1);
        int nr = (int)MS_MIN(4, nrows - r0);
        for (int64_t t0 = 0; t0 < nt; t0 += 4) {
            const uint8_t *at[4];
            int ntt = (int)MS_MIN(4, nt - t0);
            for (int t = 0; t < 4; t++) at[t] = A + ab * (size_t)MS_MIN(t0 + t, nt - 1);
            float o[4][4];
            switch (ntt) {
            case 4: tile_4x4(wtype, n, wr, at, o); break;
            case 3: tile_4x3(wtype, n, wr, at, o); break;
            case 2: tile_4x2(wtype, n, wr, at, o); break;
            default: tile_4x1(wtype, n, wr, at, o); break;
            }
            for (int t = 0; t < ntt; t++)
                for (int r = 0; r < nr; r++) Y[(t0 + t) * ldy + r0 + r] = o[r][t];
        }
    }
    return true;
}
