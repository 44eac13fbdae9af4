/* threadpool.c — a small fixed pthread pool for the forward pass.
 * One job at a time: the caller publishes (fn, ctx, n_tasks), bumps a
 * generation counter, and works on tasks itself; workers claim task indices
 * from an atomic counter.  The caller returns when every task is finished.
 *
 * A decode step runs ~20 short jobs per layer, so a futex wake-up per job
 * would dominate: workers spin briefly on the generation counter before
 * sleeping on the condition variable, and the caller spins for completion. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "model-internal.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

#define SPIN_ITERS 2000        /* tens of microseconds before sleeping */

typedef struct {
    MsThreadPool *tp;
    int index;
} Worker;

struct MsThreadPool {
    int n;                      /* threads including the caller */
    pthread_t *threads;
    Worker *workers;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    atomic_uint_fast64_t generation;
    atomic_int n_busy;          /* workers still inside the current job */
    atomic_bool quit;
    /* the current job, published before generation is bumped */
    MsTaskFn fn;
    void *ctx;
    int n_tasks;
    atomic_int next;
};

static void run_tasks(MsThreadPool *tp, int thread)
{
    for (;;) {
        int t = atomic_fetch_add_explicit(&tp->next, 1, memory_order_relaxed);
        if (t >= tp->n_tasks) break;
        tp->fn(tp->ctx, t, thread);
    }
}

static void *worker_main(void *arg)
{
    Worker *w = arg;
    MsThreadPool *tp = w->tp;
    uint_fast64_t seen = 0;
    for (;;) {
        int spins = 0;
        while (atomic_load_explicit(&tp->generation, memory_order_acquire) == seen
               && !atomic_load(&tp->quit) && spins < SPIN_ITERS) {
            CPU_RELAX();
            spins++;
        }
        if (atomic_load_explicit(&tp->generation, memory_order_acquire) == seen && !atomic_load(&tp->quit)) {
            pthread_mutex_lock(&tp->mu);
            while (atomic_load_explicit(&tp->generation, memory_order_acquire) == seen && !atomic_load(&tp->quit))
                pthread_cond_wait(&tp->cv, &tp->mu);
            pthread_mutex_unlock(&tp->mu);
        }
        if (atomic_load(&tp->quit)) break;
        seen = atomic_load_explicit(&tp->generation, memory_order_acquire);
        run_tasks(tp, w->index);
        atomic_fetch_sub_explicit(&tp->n_busy, 1, memory_order_release);
    }
    return NULL;
}

MsThreadPool *ms_tp_new(int n_threads, MsError *err)
{
    if (n_threads < 1) n_threads = 1;
    MsThreadPool *tp = calloc(1, sizeof *tp);
    if (!tp) { ms_error_set(err, MS_ENOMEM, "thread pool: out of memory"); return NULL; }
    tp->n = n_threads;
    pthread_mutex_init(&tp->mu, NULL);
    pthread_cond_init(&tp->cv, NULL);
    atomic_init(&tp->generation, 0);
    atomic_init(&tp->n_busy, 0);
    atomic_init(&tp->quit, false);
    atomic_init(&tp->next, 0);
    if (n_threads > 1) {
        tp->threads = calloc((size_t)n_threads - 1, sizeof *tp->threads);
        tp->workers = calloc((size_t)n_threads - 1, sizeof *tp->workers);
        if (!tp->threads || !tp->workers) {
            free(tp->threads); free(tp->workers); free(tp);
            ms_error_set(err, MS_ENOMEM, "thread pool: out of memory");
            return NULL;
        }
        for (int i = 0; i < n_threads - 1; i++) {
            tp->workers[i].tp = tp;
            tp->workers[i].index = i + 1;
            int rc = pthread_create(&tp->threads[i], NULL, worker_main, &tp->workers[i]);
            if (rc != 0) {
                tp->n = i + 1;      /* only i workers exist; free joins them */
                ms_tp_free(tp);
                ms_error_set(err, MS_EINTERNAL, "thread pool: cannot start thread %d: %s",
                             i + 1, strerror(rc));
                return NULL;
            }
        }
    }
    return tp;
}

void ms_tp_free(MsThreadPool *tp)
{
    if (!tp) return;
    pthread_mutex_lock(&tp->mu);
    atomic_store(&tp->quit, true);
    pthread_cond_broadcast(&tp->cv);
    pthread_mutex_unlock(&tp->mu);
    for (int i = 0; i < tp->n - 1; i++) pthread_join(tp->threads[i], NULL);
    pthread_mutex_destroy(&tp->mu);
    pthread_cond_destroy(&tp->cv);
    free(tp->threads);
    free(tp->workers);
    free(tp);
}

int ms_tp_n_threads(const MsThreadPool *tp) { return tp ? tp->n : 1; }

void ms_tp_run(MsThreadPool *tp, int n_tasks, MsTaskFn fn, void *ctx)
{
    if (n_tasks <= 0) return;
    /* Nothing to share: skip the hand-off. */
    if (tp->n == 1 || n_tasks == 1) {
        for (int t = 0; t < n_tasks; t++) fn(ctx, t, 0);
        return;
    }
    tp->fn = fn;
    tp->ctx = ctx;
    tp->n_tasks = n_tasks;
    atomic_store_explicit(&tp->next, 0, memory_order_relaxed);
    atomic_store_explicit(&tp->n_busy, tp->n - 1, memory_order_relaxed);
    /* Bump under the mutex so a worker about to sleep cannot miss it. */
    pthread_mutex_lock(&tp->mu);
    atomic_fetch_add_explicit(&tp->generation, 1, memory_order_release);
    pthread_cond_broadcast(&tp->cv);
    pthread_mutex_unlock(&tp->mu);
    run_tasks(tp, 0);
    int spins = 0;
    while (atomic_load_explicit(&tp->n_busy, memory_order_acquire) > 0) {
        if (++spins < SPIN_ITERS) CPU_RELAX();
        else sched_yield();
    }
}
