/* bench-kernels.c — micro-benchmark of the weight kernels at OLMoE shapes
 * (embd 2048, expert ff 1024): ms_gemv weight streaming speed (GB/s, over
 * more weights than fit in cache, as in decode) and ms_gemm throughput
 * (GFLOP/s-equivalent, 2*n*rows*nt / time, as in prefill), single thread.
 *
 * usage: bench-kernels [TYPE ...]   (default: Q8_0 Q4_K F16)
 * MS_BENCH_NT=tokens per gemm (64), MS_BENCH_FF=expert width (1024),
 * MS_BENCH_HOT=1 one cache-hot matrix, MS_BENCH_BLK=rows per gemm call,
 * MS_BENCH_REPS=N exactly N gemm calls per shape and no gemv. */
#include "ms-common.h"
#include "quant.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);   /* CPU time: robust on a shared machine */
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint64_t rng_state = 88172645463325252ULL;   /* fixed seed: repeatable inputs */
static float frand(void)
{
    rng_state ^= rng_state << 13; rng_state ^= rng_state >> 7; rng_state ^= rng_state << 17;
    return (float)((rng_state >> 40) * 0x1p-24) * 2.f - 1.f;
}

/* A positive integer from the environment, else dflt. */
static int64_t env_pos(const char *name, int64_t dflt)
{
    const char *v = getenv(name);
    long long x = v ? atoll(v) : 0;
    return x > 0 ? x : dflt;
}

static void bench_shape(int type, int64_t n, int64_t rows)
{
    /* ~48 experts' worth, far more than L3; MS_BENCH_HOT=1: one matrix (cache-hot) */
    const int nmat = getenv("MS_BENCH_HOT") ? 1 : 48;
    /* tokens per expert in a 512-token prefill, top-8 of 64 (MS_BENCH_NT to change) */
    const int64_t nt = env_pos("MS_BENCH_NT", 64);
    size_t rb = ms_row_bytes(type, n), mb = rb * (size_t)rows;
    size_t ab = ms_row_bytes(ms_vec_dot_type(type), n);
    uint8_t *W = malloc(mb * nmat), *A = malloc(ab * (size_t)nt);
    float *x = malloc(sizeof(float) * (size_t)n), *Y = malloc(sizeof(float) * (size_t)(rows * nt));
    if (!W || !A || !x || !Y) { fprintf(stderr, "out of memory\n"); exit(1); }
    for (int64_t i = 0; i < n; i++) x[i] = frand();
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t i = 0; i < n; i++) x[i] = frand();
        ms_quantize_row(type, x, W + rb * (size_t)r, n);
    }
    for (int m = 1; m < nmat; m++) memcpy(W + mb * m, W, mb);
    for (int64_t t = 0; t < nt; t++) {
        for (int64_t i = 0; i < n; i++) x[i] = frand();
        ms_quantize_act(type, x, A + ab * (size_t)t, n);
    }
    /* MS_BENCH_REPS=N: exactly N gemm calls and no gemv, for timing a
     * fixed amount of work */
    const int64_t fixed = env_pos("MS_BENCH_REPS", 0);
    /* gemv: stream every matrix once per pass */
    int passes = 0;
    double t0 = now(), el = 0;
    if (!fixed) do {
        for (int m = 0; m < nmat; m++) ms_gemv(type, n, rows, W + mb * m, A, Y);
        passes++;
    } while ((el = now() - t0) < 0.6);
    double gbs = passes ? (double)mb * nmat * passes / el / 1e9 : 0;
    /* gemm: one matrix times nt tokens */
    const int64_t blk = env_pos("MS_BENCH_BLK", rows);
    int reps = 0;
    t0 = now();
    do {
        /* row blocks as the forward pass splits work (MS_BENCH_BLK rows per call) */
        const uint8_t *Wm = W + mb * (reps % nmat);
        for (int64_t r0 = 0; r0 < rows; r0 += blk)
            ms_gemm(type, n, MS_MIN(blk, rows - r0), Wm + rb * (size_t)r0, nt, A, Y + r0, rows);
        reps++;
    } while (fixed ? reps < fixed : (el = now() - t0) < 0.6);
    if (fixed) el = now() - t0;
    double gflops = 2.0 * n * rows * nt * reps / el / 1e9;
    printf("%-5s %5lld x %-5lld  gemv %6.1f GB/s (%5.2f ms/matrix)   gemm nt=%lld %6.1f GFLOP/s\n",
           ms_type_name(type), (long long)rows, (long long)n, gbs,
           gbs > 0 ? 1e3 * (double)mb / (gbs * 1e9) : 0, (long long)nt, gflops);
    free(W); free(A); free(x); free(Y);
}

int main(int argc, char **argv)
{
    const char *def[] = {"Q8_0", "Q4_K", "F16"};
    int nt = argc > 1 ? argc - 1 : 3;
    for (int i = 0; i < nt; i++) {
        const char *name = argc > 1 ? argv[i + 1] : def[i];
        int type = ms_type_from_name(name);
        if (type < 0 || !ms_type_is_supported(type)) {
            fprintf(stderr, "bench-kernels: unsupported type '%s'\n", name);
            return 2;
        }
        /* MS_BENCH_FF: the expert width (1024 OLMoE, 768 Qwen3-30B-A3B) */
        const int64_t ff = env_pos("MS_BENCH_FF", 1024);
        bench_shape(type, 2048, ff);   /* gate / up */
        bench_shape(type, ff, 2048);   /* down */
    }
    return 0;
}
