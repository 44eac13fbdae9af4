/* bench-f16-ceiling.c — how fast one core can run the F16 prefill tile at
 * all, so that bench-kernels' F16 GFLOP/s can be read against the machine
 * rather than against a peer.  Weights and activations are F16 and every
 * 16-lane load is converted to F32 (vcvtph2ps) before its FMAs, as ggml's
 * rounding semantics ask (F16 activations, F32 products and sums) and as
 * both moescope's and ik_llama.cpp's AVX-512 tiles do; the convert shares
 * the FP pipes with the FMAs, so the mix of the two sets the ceiling, not
 * the FMA rate alone.
 *
 * Single thread, operands in L1, CPU time, best of 5; instruction streams
 * written in assembly so the compiler cannot reorder or drop them:
 *   fma   12 independent zmm FMA chains: the FMA peak
 *   cvt   vcvtph2ps zmm <- m256 alone
 *   tile  the 5 x 5 tile of engine/quant-simd.c, one 16-lane step: 5
 *         weight converts, then per token 1 activation convert and 5 FMAs
 *         (10 converts per 25 FMAs; 25 accumulators, 5 weights, 1 activation)
 *   tile-f32act  the same with F32 activations (a load instead of a
 *         convert: 5 converts per 25 FMAs), the ceiling an F32 copy of the
 *         activations could reach
 * GFLOP/s = 2 x 16 x FMAs/s.  AVX-512 only: elsewhere it says so and exits 0.
 *
 * usage: bench-f16-ceiling [--json] */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

#if defined(__x86_64__)
static uint16_t buf[2048] __attribute__((aligned(64)));   /* all 0x3c00 (1.0): no denormals */
static float fbuf[256] __attribute__((aligned(64)));

#define FMA(w, a, acc) "vfmadd231ps %%zmm" #w ",%%zmm" #a ",%%zmm" #acc "\n"
#define CVT(off, r) "vcvtph2ps " #off "(%0),%%zmm" #r "\n"
#define WEIGHTS CVT(0, 25) CVT(32, 26) CVT(64, 27) CVT(96, 28) CVT(128, 29)
#define CLOB "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", \
    "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21", \
    "xmm22", "xmm23", "xmm24", "xmm25", "xmm26", "xmm27", "xmm28", "xmm29", "xmm30", "xmm31"

typedef double (*Kernel)(long n);   /* returns FMAs (or converts) done */

/* every zmm register to 0.0 before a stream, so no FMA meets a denormal
 * left in a register by earlier code */
#define Z4(a, b, c, d) "vpxord %%zmm" #a ",%%zmm" #a ",%%zmm" #a "\n vpxord %%zmm" #b ",%%zmm" #b ",%%zmm" #b "\n" \
    "vpxord %%zmm" #c ",%%zmm" #c ",%%zmm" #c "\n vpxord %%zmm" #d ",%%zmm" #d ",%%zmm" #d "\n"
#define ZERO_ALL() __asm__ volatile(Z4(0, 1, 2, 3) Z4(4, 5, 6, 7) Z4(8, 9, 10, 11) Z4(12, 13, 14, 15) \
    Z4(16, 17, 18, 19) Z4(20, 21, 22, 23) Z4(24, 25, 26, 27) Z4(28, 29, 30, 31) ::: CLOB)

__attribute__((target("avx512f,fma,f16c"))) static double k_fma(long n)
{
    ZERO_ALL();
    for (long i = 0; i < n; i++)
        __asm__ volatile(FMA(30, 31, 0) FMA(30, 31, 1) FMA(30, 31, 2) FMA(30, 31, 3) FMA(30, 31, 4)
                         FMA(30, 31, 5) FMA(30, 31, 6) FMA(30, 31, 7) FMA(30, 31, 8) FMA(30, 31, 9)
                         FMA(30, 31, 10) FMA(30, 31, 11) ::: CLOB);
    return 12.0 * n;
}

__attribute__((target("avx512f,fma,f16c"))) static double k_cvt(long n)
{
    ZERO_ALL();
    for (long i = 0; i < n; i++)
        __asm__ volatile(CVT(0, 0) CVT(32, 1) CVT(64, 2) CVT(96, 3) CVT(128, 4) CVT(160, 5) CVT(192, 6)
                         CVT(224, 7) :: "r"(buf) : CLOB);
    return 8.0 * n;
}

/* One 16-lane step of the tile: the 5 weights into zmm25-29, then per token
 * its activation into zmm30 (ACT: converted from F16, or loaded as F32) and
 * an FMA with each weight into that token's accumulators (zmm0-24). */
#define ACT16(t) "vcvtph2ps " #t "*32+160(%0),%%zmm30\n"
#define ACT32(t) "vmovaps " #t "*64(%1),%%zmm30\n"
#define F5(a0, a1, a2, a3, a4) FMA(25, 30, a0) FMA(26, 30, a1) FMA(27, 30, a2) FMA(28, 30, a3) FMA(29, 30, a4)
#define TILE_STEP(ACT) WEIGHTS ACT(0) F5(0, 5, 10, 15, 20) ACT(1) F5(1, 6, 11, 16, 21) \
    ACT(2) F5(2, 7, 12, 17, 22) ACT(3) F5(3, 8, 13, 18, 23) ACT(4) F5(4, 9, 14, 19, 24)

__attribute__((target("avx512f,fma,f16c"))) static double k_tile(long n)
{
    ZERO_ALL();
    for (long i = 0; i < n; i++) __asm__ volatile(TILE_STEP(ACT16) :: "r"(buf), "r"(fbuf) : CLOB);
    return 25.0 * n;
}

__attribute__((target("avx512f,fma,f16c"))) static double k_tile_f32act(long n)
{
    ZERO_ALL();
    for (long i = 0; i < n; i++) __asm__ volatile(TILE_STEP(ACT32) :: "r"(buf), "r"(fbuf) : CLOB);
    return 25.0 * n;
}

/* operations per ns, best of 5 runs of n iterations */
static double rate(Kernel k, long n)
{
    double best = 0;
    for (int r = 0; r < 5; r++) {
        double t = now(), ops = k(n), dt = now() - t;
        if (dt > 0 && ops / dt / 1e9 > best) best = ops / dt / 1e9;
    }
    return best;
}
#endif

int main(int argc, char **argv)
{
    int json = argc > 1 && strcmp(argv[1], "--json") == 0;
    if (argc > 1 && !json) {
        fprintf(stderr, "usage: bench-f16-ceiling [--json]\n");
        return 2;
    }
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) {
        for (size_t i = 0; i < sizeof buf / sizeof buf[0]; i++) buf[i] = 0x3c00;
        for (size_t i = 0; i < sizeof fbuf / sizeof fbuf[0]; i++) fbuf[i] = 1.0f;
        const long n = 50000000;
        double fma = rate(k_fma, n), cvt = rate(k_cvt, n), tile = rate(k_tile, n / 2),
               tf = rate(k_tile_f32act, n / 2);
        if (json) {
            printf("{\"fma_per_ns\": %.3f, \"cvt_per_ns\": %.3f, \"tile_fma_per_ns\": %.3f, "
                   "\"tile_gflops\": %.1f, \"tile_f32act_fma_per_ns\": %.3f, \"tile_f32act_gflops\": %.1f}\n",
                   fma, cvt, tile, 32 * tile, tf, 32 * tf);
        } else {
            printf("one core, operands in L1 (best of 5):\n");
            printf("  zmm FMA alone              %5.2f /ns  = %6.1f GFLOP/s\n", fma, 32 * fma);
            printf("  vcvtph2ps zmm alone        %5.2f /ns\n", cvt);
            printf("  5 x 5 F16 tile (10 cvt / 25 FMA)   %5.2f FMA/ns = %6.1f GFLOP/s  (%.0f %% of the FMA peak)\n",
                   tile, 32 * tile, 100 * tile / fma);
            printf("  same, F32 activations (5 cvt / 25) %5.2f FMA/ns = %6.1f GFLOP/s  (%.0f %% of the FMA peak)\n",
                   tf, 32 * tf, 100 * tf / fma);
            printf("compare: MS_BENCH_HOT=1 build/bench/bench-kernels F16 (one thread)\n");
        }
        return 0;
    }
#endif
    printf(json ? "{\"skipped\": \"no AVX-512\"}\n" : "bench-f16-ceiling: this CPU has no AVX-512; nothing to measure\n");
    return 0;
}
