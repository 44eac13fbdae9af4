/* bench-analysis-gen.c — writes a synthetic routing trace in moescope's
 * "ids" import format (one JSON header line per request, then
 * tokens×layers×k little-endian int32 ids) for the analysis benchmark.
 *
 *   bench-analysis-gen PROMPTS TOKENS LAYERS EXPERTS K SEED [weights] > trace.ids
 *
 * With "weights", combine weights follow the ids (rank r gets a share
 * proportional to 1/(r+1), summing to 1) so weight-based modules can run.
 *
 * Routing is skewed (a few hot experts), sticky along the sequence (the
 * previous token's set is reused half the time) and tied across layers (a
 * token's layer-l set is shifted from layer l−1 a third of the time), so
 * every module has structure to find.  One explicit seed, no global state. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ULL;
}

static void put32(uint8_t *p, int32_t v)
{
    uint32_t u = (uint32_t)v;
    p[0] = (uint8_t)u;
    p[1] = (uint8_t)(u >> 8);
    p[2] = (uint8_t)(u >> 16);
    p[3] = (uint8_t)(u >> 24);
}

int main(int argc, char **argv)
{
    if (argc != 7 && !(argc == 8 && !strcmp(argv[7], "weights"))) {
        fprintf(stderr, "usage: bench-analysis-gen PROMPTS TOKENS LAYERS EXPERTS K SEED [weights]\n");
        return 2;
    }
    long P = atol(argv[1]), T = atol(argv[2]), L = atol(argv[3]), E = atol(argv[4]), K = atol(argv[5]);
    uint64_t s = strtoull(argv[6], NULL, 10) | 1;
    if (P < 1 || T < 1 || L < 1 || E < 2 || K < 1 || K > E || K > 64) {
        fprintf(stderr, "bench-analysis-gen: bad sizes\n");
        return 2;
    }
    size_t n = (size_t)T * L * K;
    int32_t *ids = malloc(n * sizeof *ids);
    uint8_t *buf = malloc(n * 4);
    if (!ids || !buf) return 1;
    for (long p = 0; p < P; p++) {
        for (long t = 0; t < T; t++)
            for (long l = 0; l < L; l++) {
                int32_t *cur = ids + ((size_t)t * L + l) * K;
                uint64_t r = next(&s);
                if (t > 0 && (r & 1)) {
                    memcpy(cur, ids + ((size_t)(t - 1) * L + l) * K, sizeof(int32_t) * K);
                    continue;
                }
                if (l > 0 && (r >> 1) % 3 == 0) {
                    const int32_t *prev = cur - K;
                    for (long j = 0; j < K; j++) cur[j] = (int32_t)((prev[j] + 1) % E);
                    continue;
                }
                for (long j = 0; j < K; j++)
                    for (;;) {
                        uint64_t v = next(&s);
                        int32_t e = (int32_t)((v >> 11) % (uint64_t)E);
                        if ((v & 7) == 0) e = (int32_t)(e % 4);   /* hot experts */
                        int dup = 0;
                        for (long i = 0; i < j; i++) dup |= cur[i] == e;
                        if (!dup) { cur[j] = e; break; }
                    }
            }
        printf("{\"tokens\":%ld,\"layers\":%ld,\"top_k\":%ld%s}\n", T, L, K, argc == 8 ? ",\"weights\":true" : "");
        for (size_t i = 0; i < n; i++) put32(buf + 4 * i, ids[i]);
        if (fwrite(buf, 4, n, stdout) != n) return 1;
        if (argc == 8) {
            double h = 0;
            for (long j = 0; j < K; j++) h += 1.0 / (double)(j + 1);
            for (size_t i = 0; i < n; i++) {
                float w = (float)(1.0 / (double)(i % (size_t)K + 1) / h);
                uint32_t u;
                memcpy(&u, &w, 4);
                put32(buf + 4 * i, (int32_t)u);
            }
            if (fwrite(buf, 4, n, stdout) != n) return 1;
        }
    }
    free(ids);
    free(buf);
    return fflush(stdout) == 0 ? 0 : 1;
}
