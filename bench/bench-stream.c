/* bench-stream.c — the machine's read bandwidth, the ceiling of decode:
 * T threads each sum their own slice of one buffer much larger than the
 * caches (the way decode streams weight rows), best and median GB/s over
 * repetitions.  Compare `moescope bench --json`'s decode_gbps with the
 * figure for the same thread count.
 *
 * usage: bench-stream [-t THREADS] [-m MIB] [-r REPS] [--json]
 *   defaults: 2 threads, 1024 MiB, 9 repetitions */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    const uint64_t *p;
    size_t n;                  /* words */
    pthread_barrier_t *bar;
    int reps;
    double *t_start, *t_end;   /* [reps] per thread */
    uint64_t sink;
} Worker;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static void *run(void *arg)
{
    Worker *w = arg;
    for (int r = 0; r < w->reps; r++) {
        pthread_barrier_wait(w->bar);
        w->t_start[r] = now();
        /* 8 independent sums: the loop vectorises and is bound by the loads */
        uint64_t s[8] = {0};
        for (size_t i = 0; i + 8 <= w->n; i += 8)
            for (int k = 0; k < 8; k++) s[k] += w->p[i + k];
        for (int k = 0; k < 8; k++) w->sink += s[k];
        w->t_end[r] = now();
    }
    return NULL;
}

static int dcmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    int threads = 2, reps = 9, json = 0;
    long mib = 1024;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-t") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-m") && i + 1 < argc) mib = atol(argv[++i]);
        else if (!strcmp(argv[i], "-r") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--json")) json = 1;
        else {
            fprintf(stderr, "usage: bench-stream [-t THREADS] [-m MIB] [-r REPS] [--json]\n");
            return 2;
        }
    }
    if (threads < 1 || threads > 256 || mib < 16 || reps < 1 || reps > 1000) {
        fprintf(stderr, "bench-stream: need 1..256 threads, >= 16 MiB, 1..1000 repetitions\n");
        return 2;
    }
    size_t bytes = (size_t)mib << 20, words = bytes / 8;
    uint64_t *buf = aligned_alloc(64, bytes);
    if (!buf) {
        fprintf(stderr, "bench-stream: cannot allocate %ld MiB\n", mib);
        return 1;
    }
    for (size_t i = 0; i < words; i++) buf[i] = i * 0x9e3779b97f4a7c15ULL;   /* fault every page in */
    Worker *w = calloc((size_t)threads, sizeof *w);
    pthread_t *tid = calloc((size_t)threads, sizeof *tid);
    double *ts = calloc((size_t)threads * reps * 2, sizeof *ts);
    double *gbps = calloc((size_t)reps, sizeof *gbps);
    pthread_barrier_t bar;
    if (!w || !tid || !ts || !gbps || pthread_barrier_init(&bar, NULL, (unsigned)threads)) {
        fprintf(stderr, "bench-stream: out of memory\n");
        return 1;
    }
    size_t per = words / (size_t)threads / 8 * 8;
    for (int t = 0; t < threads; t++) {
        w[t] = (Worker){ .p = buf + per * (size_t)t, .n = per, .bar = &bar, .reps = reps,
                         .t_start = ts + (size_t)t * reps * 2, .t_end = ts + (size_t)t * reps * 2 + reps };
        if (pthread_create(&tid[t], NULL, run, &w[t])) {
            fprintf(stderr, "bench-stream: cannot start thread %d\n", t);
            return 1;
        }
    }
    uint64_t sink = 0;
    for (int t = 0; t < threads; t++) {
        pthread_join(tid[t], NULL);
        sink += w[t].sink;
    }
    for (int r = 0; r < reps; r++) {   /* wall of a repetition: first start to last end */
        double t0 = 1e300, t1 = 0;
        for (int t = 0; t < threads; t++) {
            if (w[t].t_start[r] < t0) t0 = w[t].t_start[r];
            if (w[t].t_end[r] > t1) t1 = w[t].t_end[r];
        }
        gbps[r] = 1e-9 * (double)(per * 8 * (size_t)threads) / (t1 - t0);
    }
    qsort(gbps, (size_t)reps, sizeof *gbps, dcmp);
    double med = reps % 2 ? gbps[reps / 2] : 0.5 * (gbps[reps / 2 - 1] + gbps[reps / 2]);
    if (json)
        printf("{\"threads\": %d, \"mib\": %ld, \"reps\": %d, \"read_gbps_median\": %.3f, \"read_gbps_max\": %.3f, "
               "\"read_gbps_min\": %.3f}\n", threads, mib, reps, med, gbps[reps - 1], gbps[0]);
    else
        printf("read bandwidth, %d threads, %ld MiB: median %.2f GB/s, best %.2f, worst %.2f (%d reps)%s\n",
               threads, mib, med, gbps[reps - 1], gbps[0], reps, sink == 42 ? " " : "");
    pthread_barrier_destroy(&bar);
    free(buf); free(w); free(tid); free(ts); free(gbps);
    return 0;
}
