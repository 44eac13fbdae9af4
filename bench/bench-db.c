/* bench-db.c — trace store benchmarks (not a test):
 *   1. writer ingest rate: routing rows per second through the observer
 *      adapter and per-prompt commits (target >= 2 M rows/s);
 *   2. bytes per routing row on disk for a 100k-token, 16-layer, top-8 trace
 *      (E = 64), without and with router_probs (target <= 20 without).
 * usage: bench-db [DIR] [TOKENS]   (default: $TMPDIR or /tmp, 100000 tokens) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "trace.h"

#define NL 16
#define E 64
#define K 8
#define PROMPT 512

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* CPU time of this process: rates stay meaningful on a shared, busy machine */
static double cpu(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t rng(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static long long fsize(const char *p)
{
    struct stat st;
    return stat(p, &st) ? 0 : (long long)st.st_size;
}

static int run(const char *dir, int tokens, bool probs, double *secs, double *gen_secs, double *cpu_secs,
               double *cpu_gen, long long *rows, long long *bytes)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/bench-db-%s.db", dir, probs ? "probs" : "plain");
    unlink(path);
    char side[1100];
    snprintf(side, sizeof side, "%s-wal", path); unlink(side);
    snprintf(side, sizeof side, "%s-shm", path); unlink(side);
    MsError err = { 0 };
    MsTraceDb *db = ms_trace_open(path, MS_TRACE_CREATE, &err);
    if (!db) { fprintf(stderr, "bench-db: %s\n", err.msg); return 1; }
    MsTraceModel m = { 0 };
    snprintf(m.file_name, sizeof m.file_name, "bench.gguf");
    snprintf(m.arch, sizeof m.arch, "olmoe");
    m.n_layer = NL; m.n_expert = E; m.n_expert_used = K; m.w_scale = 1; m.n_moe_layers = NL;
    for (int l = 0; l < NL; l++) m.is_moe[l] = 1;
    int64_t mid = ms_trace_model_add(db, &m, &err);
    MsTraceRunDesc d = { .model_id = mid, .has_probs = probs };
    int64_t run_id = ms_trace_run_new(db, &d, &err);
    MsTraceWriter *w = ms_trace_writer_new(db, run_id, &err);
    if (!w) { fprintf(stderr, "bench-db: %s\n", err.msg); return 1; }
    MsObserver o = ms_trace_writer_observer(w);
    int32_t *pos = malloc(PROMPT * sizeof *pos), *ex = malloc((size_t)PROMPT * K * sizeof *ex);
    float *wt = malloc((size_t)PROMPT * K * sizeof *wt);
    float *pr = malloc((size_t)PROMPT * E * sizeof *pr), *lg = malloc((size_t)PROMPT * E * sizeof *lg);
    uint64_t seed = 1;
    double t0 = now(), tg = 0, c0 = cpu(), cg = 0;
    for (int p = 0, done = 0; done < tokens; p++) {
        int n = tokens - done < PROMPT ? tokens - done : PROMPT;
        ms_trace_writer_begin(w, p, "bench", 5, NULL, &err);
        for (int t = 0; t < n; t++) {
            ms_trace_writer_token(w, t, (int32_t)(rng(&seed) % 50000), "tok", 3, false, -1.5f, 2.5f, &err);
            pos[t] = t;
        }
        for (int l = 0; l < NL; l++) {
            /* synthetic routing (generation time is measured and subtracted) */
            double g0 = now(), gc = cpu();
            for (int t = 0; t < n; t++) {
                uint64_t r = rng(&seed);
                for (int j = 0; j < K; j++) {
                    ex[t * K + j] = (int32_t)((r >> (6 * j)) % 8 + 8 * j);   /* distinct: one per block of 8 */
                    wt[t * K + j] = (float)(rng(&seed) >> 40) / 16777216.0f;
                }
                if (probs)
                    for (int e = 0; e < E; e++) {
                        pr[t * E + e] = (float)(rng(&seed) >> 40) / 16777216.0f / E;
                        lg[t * E + e] = (float)((int)(rng(&seed) >> 40) - (1 << 23)) / 1048576.0f;
                    }
            }
            tg += now() - g0;
            cg += cpu() - gc;
            MsRoutingEvent ev = { l, n, pos, E, K, ex, wt, probs ? pr : NULL, probs ? lg : NULL, NULL, NULL, NULL, NULL };
            o.on_routing(o.user, &ev);
        }
        if (ms_trace_writer_commit(w, NULL, &err)) { fprintf(stderr, "bench-db: %s\n", err.msg); return 1; }
        done += n;
    }
    *rows = ms_trace_writer_rows(w);
    ms_trace_writer_free(w);
    ms_trace_close(db);   /* checkpoints the WAL into the main file */
    *secs = now() - t0;
    *gen_secs = tg;
    *cpu_secs = cpu() - c0;
    *cpu_gen = cg;
    *bytes = fsize(path);
    free(pos); free(ex); free(wt); free(pr); free(lg);
    return 0;
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    int tokens = argc > 2 ? atoi(argv[2]) : 100000;
    if (tokens < 1) tokens = 100000;
    printf("trace store benchmark: %d tokens x %d layers x top-%d (E = %d), prompts of %d tokens\n",
           tokens, NL, K, E, PROMPT);
    for (int probs = 0; probs < 2; probs++) {
        double s, g, cs, cg;
        long long rows, bytes;
        if (run(dir, tokens, probs, &s, &g, &cs, &cg, &rows, &bytes)) return 1;
        double store = s - g, cstore = cs - cg;
        printf("%-14s %lld rows  %.1f MiB  %.2f bytes/row  ingest %.2f M rows/s wall (%.2f s), "
               "%.2f M rows/s CPU (%.2f s)\n",
               probs ? "with probs:" : "routing only:", rows, (double)bytes / 1048576.0, (double)bytes / (double)rows,
               (double)rows / store / 1e6, store, (double)rows / cstore / 1e6, cstore);
    }
    return 0;
}
