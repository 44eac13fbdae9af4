/* bench-pg.c — ingest rate of the trace writer into a database of either
 * backend from several worker processes at once (not a test):
 *   bench-pg DB TOKENS WORKERS
 * DB is a file or a postgresql:// URI (an empty database or one made by an
 * earlier call).  The synthetic routing of bench-db (16 layers, E = 64,
 * top-8, prompts of 512 tokens) is split over WORKERS processes the way
 * trace --shard I/N splits prompts; they join one run (ms_trace_run_join)
 * and commit one prompt per transaction.  Prints routing rows per second of
 * wall time from the first worker's start to the last one's end. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
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

static uint64_t rng(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static int worker(const char *path, int n_prompts, int tokens, int shard, int n_shards)
{
    MsError err = { 0 };
    MsTraceDb *db = ms_trace_open(path, MS_TRACE_CREATE, &err);
    if (!db) { fprintf(stderr, "bench-pg: %s\n", err.msg); return 1; }
    MsTraceModel m = { 0 };
    snprintf(m.file_name, sizeof m.file_name, "bench.gguf");
    snprintf(m.arch, sizeof m.arch, "olmoe");
    m.n_layer = NL; m.n_expert = E; m.n_expert_used = K; m.w_scale = 1; m.n_moe_layers = NL;
    for (int l = 0; l < NL; l++) m.is_moe[l] = 1;
    char settings[64];
    snprintf(settings, sizeof settings, "{\"n_prompts\":%d,\"bench\":%d}", n_prompts, tokens);
    int64_t mid = ms_trace_model_add(db, &m, &err);
    MsTraceRunDesc d = { .model_id = mid, .kind = "trace", .settings_json = settings };
    int64_t run_id = mid > 0 ? ms_trace_run_join(db, &d, false, &err) : -1;
    MsTraceWriter *w = run_id > 0 ? ms_trace_writer_new(db, run_id, &err) : NULL;
    if (!w) { fprintf(stderr, "bench-pg: %s\n", err.msg); return 1; }
    MsObserver o = ms_trace_writer_observer(w);
    int32_t pos[PROMPT], ex[PROMPT * K];
    float wt[PROMPT * K];
    for (int p = shard; p < n_prompts; p += n_shards) {
        uint64_t seed = 1 + (uint64_t)p;   /* the same rows whoever writes prompt p */
        int n = p == n_prompts - 1 && tokens % PROMPT ? tokens % PROMPT : PROMPT;
        ms_trace_writer_begin(w, p, "bench", 5, NULL, &err);
        for (int t = 0; t < n; t++) {
            ms_trace_writer_token(w, t, (int32_t)(rng(&seed) % 50000), "tok", 3, false, -1.5f, 2.5f, &err);
            pos[t] = t;
        }
        for (int l = 0; l < NL; l++) {
            for (int t = 0; t < n; t++) {
                uint64_t r = rng(&seed);
                for (int j = 0; j < K; j++) {
                    ex[t * K + j] = (int32_t)((r >> (6 * j)) % 8 + 8 * j);
                    wt[t * K + j] = (float)(rng(&seed) >> 40) / 16777216.0f;
                }
            }
            MsRoutingEvent ev = { l, n, pos, E, K, ex, wt, NULL, NULL, NULL, NULL, NULL, NULL };
            o.on_routing(o.user, &ev);
        }
        if (ms_trace_writer_commit(w, NULL, &err)) { fprintf(stderr, "bench-pg: %s\n", err.msg); return 1; }
    }
    ms_trace_writer_free(w);
    ms_trace_close(db);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: bench-pg DB TOKENS WORKERS\n");
        return 2;
    }
    const char *path = argv[1];
    int tokens = atoi(argv[2]), n_w = atoi(argv[3]);
    if (tokens < 1 || n_w < 1 || n_w > 64) { fprintf(stderr, "bench-pg: bad TOKENS or WORKERS\n"); return 2; }
    int n_prompts = (tokens + PROMPT - 1) / PROMPT;
    {   /* schema and run first, so that the timed part is ingest */
        MsError err = { 0 };
        MsTraceDb *db = ms_trace_open(path, MS_TRACE_CREATE, &err);
        if (!db) { fprintf(stderr, "bench-pg: %s\n", err.msg); return 1; }
        ms_trace_close(db);
    }
    fflush(stdout);
    double t0 = now();
    for (int i = 0; i < n_w; i++) {
        pid_t p = fork();
        if (p == 0) _exit(worker(path, n_prompts, tokens, i, n_w));
        if (p < 0) { perror("fork"); return 1; }
    }
    int bad = 0, st;
    while (wait(&st) > 0) bad |= !WIFEXITED(st) || WEXITSTATUS(st) != 0;
    double s = now() - t0;
    long long rows = (long long)tokens * NL * K;
    printf("%-12s %d worker%s: %lld routing rows (%d tokens x %d layers x top-%d) in %.2f s: %.2f M rows/s\n",
           strncmp(path, "postgres", 8) ? "SQLite" : "PostgreSQL", n_w, n_w > 1 ? "s" : "", rows, tokens, NL, K, s,
           (double)rows / s / 1e6);
    return bad;
}
