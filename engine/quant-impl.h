/* quant-impl.h — private helpers shared by quant.c, quant-dot.c and the
 * quant test (not part of the engine interface). */
#ifndef MS_QUANT_IMPL_H
#define MS_QUANT_IMPL_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* Unaligned little-endian field access (blocks are packed, 2-byte aligned at best). */
static inline uint16_t msq_rd16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static inline uint32_t msq_rd32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static inline void msq_wr16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }
static inline void msq_wr32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }

/* Level tables of the 4-bit look-up types (quant.c). */
extern const int8_t msq_iq4nl_values[16];
extern const int8_t msq_mxfp4_values[16];

/* MXFP4's E8M0 byte as the scale of the doubled levels: 2^(e - 128),
 * built from its bits (e = 0 and 1 are the subnormals 2^-128, 2^-127). */
static inline float msq_e8m0_half(uint8_t e)
{
    uint32_t bits = e < 2 ? 0x00200000u << e : (uint32_t)(e - 1) << 23;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/* Q3_K: the 16 signed sub-block scales (-32..31) from the 12 scale bytes. */
void msq_q3k_scales(const uint8_t *b12, int8_t *sc);
/* Q4_K / Q5_K: the 8 six-bit scales and mins from the 12 scale bytes,
 * bytes j of *sc / *m (little-endian u64) = scale / min of sub-block j.
 * Bytes 0..3 hold j < 4 (low 6 bits of bytes 0..3 / 4..7); j >= 4 take the
 * nibbles of bytes 8..11 plus the top 2 bits of bytes 0..3 / 4..7. */
static inline void msq_q4k_scales8(const uint8_t *b12, uint64_t *sc, uint64_t *m)
{
    uint32_t a0 = msq_rd32(b12), a1 = msq_rd32(b12 + 4), a2 = msq_rd32(b12 + 8);
    uint32_t slo = a0 & 0x3f3f3f3fu, mlo = a1 & 0x3f3f3f3fu;
    uint32_t shi = (a2 & 0x0f0f0f0fu) | ((a0 >> 6) & 0x03030303u) << 4;
    uint32_t mhi = ((a2 >> 4) & 0x0f0f0f0fu) | ((a1 >> 6) & 0x03030303u) << 4;
    *sc = (uint64_t)shi << 32 | slo;
    *m = (uint64_t)mhi << 32 | mlo;
}
static inline void msq_q4k_scales(const uint8_t *b12, uint8_t *sc, uint8_t *m)
{
    uint64_t s, mm;
    msq_q4k_scales8(b12, &s, &mm);
    for (int j = 0; j < 8; j++) {
        sc[j] = (uint8_t)(s >> (8 * j));
        m[j] = (uint8_t)(mm >> (8 * j));
    }
}

/* Portable scalar vec_dot (the fallback of ms_vec_dot; exposed so tests can
 * compare it with the SIMD kernels). */
float msq_vec_dot_scalar(int wtype, int64_t n, const void *wrow, const void *act);

/* The SIMD kernels of one level (quant-simd.c, compiled per level): false
 * when the type has no SIMD kernel (the caller falls back to scalar). */
#define MSQ_DECLARE_LEVEL(s) \
    bool msq_vec_dot_##s(int wtype, int64_t n, const void *wrow, const void *act, float *out); \
    bool msq_gemm_##s(int wtype, int64_t n, int64_t nrows, const void *w, \
                      int64_t nt, const void *act, float *Y, int64_t ldy);
MSQ_DECLARE_LEVEL(avx2)
MSQ_DECLARE_LEVEL(avxvnni)
MSQ_DECLARE_LEVEL(avx512)
MSQ_DECLARE_LEVEL(avx512bf16)

#endif
