/* quant.h — ggml weight types: block layouts, dequantisation, reference
 * quantisers (for synth/ and tools/gguf-pack), and the dot products llama.cpp's CPU
 * backend computes (activations converted to the weight's vec_dot type
 * first), so that logits and routing match llama.cpp.  Facts: GGUF-MOE.md §2. */
#ifndef MS_QUANT_H
#define MS_QUANT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
    MS_TYPE_F32 = 0, MS_TYPE_F16 = 1, MS_TYPE_Q4_0 = 2, MS_TYPE_Q4_1 = 3,
    MS_TYPE_Q5_0 = 6, MS_TYPE_Q5_1 = 7, MS_TYPE_Q8_0 = 8, MS_TYPE_Q8_1 = 9,
    MS_TYPE_Q2_K = 10, MS_TYPE_Q3_K = 11, MS_TYPE_Q4_K = 12, MS_TYPE_Q5_K = 13,
    MS_TYPE_Q6_K = 14, MS_TYPE_Q8_K = 15, MS_TYPE_IQ4_NL = 20, MS_TYPE_BF16 = 30,
    MS_TYPE_MXFP4 = 39,
    MS_TYPE_COUNT = 43     /* ids >= this are unknown */
};

/* Name of any ggml type id, including ones we cannot compute with
 * ("IQ2_XXS", "MXFP4", ...); "removed(4)" / "unknown(99)" otherwise.
 * Returns a static string. */
const char *ms_type_name(int type);
int ms_type_from_name(const char *name);      /* case-insensitive; -1 if unknown */
/* Elements per block and bytes per block for every ggml type that has a
 * layout (so the GGUF reader can size tensors of types we do not compute
 * with); 0 for removed or unknown ids. */
int64_t ms_type_block_elems(int type);
size_t ms_type_block_bytes(int type);
/* True for the weight types the engine computes with: F32 F16 BF16 Q8_0 Q4_0
 * Q4_1 Q5_0 Q5_1 Q2_K Q3_K Q4_K Q5_K Q6_K IQ4_NL MXFP4. */
bool ms_type_is_supported(int type);
size_t ms_row_bytes(int type, int64_t n);     /* n must be a multiple of the block */

/* Dequantise n elements (n a multiple of the block size). */
void ms_dequantize_row(int type, const void *src, float *dst, int64_t n);
/* Reference quantiser (deterministic).  Returns 0 or MS_EUNSUPPORTED. */
int ms_quantize_row(int type, const float *src, void *dst, int64_t n);

/* ---- llama.cpp-faithful products ----
 * vec_dot_type(W): F32->F32, F16->F16, BF16->BF16, Q4_0/Q5_0/Q8_0/IQ4_NL/MXFP4->Q8_0,
 * Q4_1/Q5_1->Q8_1, K-quants->Q8_K. */
int ms_vec_dot_type(int wtype);
/* Convert an activation row x[n] into the vec_dot type of wtype; dst must
 * hold ms_row_bytes(ms_vec_dot_type(wtype), n) bytes. */
void ms_quantize_act(int wtype, const float *x, void *dst, int64_t n);
/* dot(W row, converted activation) as llama.cpp computes it. */
float ms_vec_dot(int wtype, int64_t n, const void *wrow, const void *act);
/* y[r] = dot(row r of W, act) for r in [0, nrows); rows are ms_row_bytes(wtype, n)
 * apart.  The hot loop of decode; SIMD inside. */
void ms_gemv(int wtype, int64_t n, int64_t nrows, const void *w, const void *act, float *y);
/* Y[t][r] = dot(row r of W, act_t) for nt activation rows (converted, each
 * ms_row_bytes(vdtype, n) apart), r in [0, nrows).  Tiled for cache reuse:
 * the prefill / batched-expert kernel.  ldy = stride of Y rows in floats. */
void ms_gemm(int wtype, int64_t n, int64_t nrows, const void *w,
             int64_t nt, const void *act, float *Y, int64_t ldy);
/* The same on one kernel level (ms-cpu.h: MS_ISA_*) rather than the level
 * chosen at run time, for tests and benchmarks.  Return 0, or
 * MS_EUNSUPPORTED (nothing computed) when that level is not available on
 * this CPU / in this build.  The integer types give bit-identical results
 * on every SIMD level (see engine/quant-simd.c). */
int ms_vec_dot_isa(int isa, int wtype, int64_t n, const void *wrow, const void *act, float *out);
int ms_gemm_isa(int isa, int wtype, int64_t n, int64_t nrows, const void *w,
                int64_t nt, const void *act, float *Y, int64_t ldy);

#endif
