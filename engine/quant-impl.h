/* quant-impl.h — private helpers shared by quant.c, quant-dot.c and the
 * quant test (not part of the engine interface). */
#ifndef MS_QUANT_IMPL_H
#define MS_QUANT_IMPL_H

#include <stdint.h>
#include <string.h>

/* Unaligned little-endian field access (blocks are packed, 2-byte aligned at best). */
static inline uint16_t msq_rd16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static inline uint32_t msq_rd32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static inline void msq_wr16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }
static inline void msq_wr32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }

/* Q3_K: the 16 signed sub-block scales (-32..31) from the 12 scale bytes. */
void msq_q3k_scales(const uint8_t *b12, int8_t *sc);
/* Q4_K / Q5_K: the 8 six-bit scales and mins from the 12 scale bytes. */
void msq_q4k_scales(const uint8_t *b12, uint8_t *sc, uint8_t *m);

/* Portable scalar vec_dot (the fallback of ms_vec_dot; exposed so tests can
 * compare it with the SIMD kernels). */
float msq_vec_dot_scalar(int wtype, int64_t n, const void *wrow, const void *act);

#endif
