/* job.c — worker threads for the window: one GThread per job, progress
 * marshalled to the main loop (coalesced: at most one pending report), the
 * end reported there too, where the thread is joined.  A job holds the
 * application (so it does not exit under a running thread) and keeps its
 * window's state alive until it has ended; Cancel sets the MsCancel flag
 * the libraries poll. */
#include <time.h>

#include "wb-gtk.h"

double wb_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void wb_free_state(Wb *wb);

static WbJob *job_ref(WbJob *j)
{
    g_atomic_int_inc(&j->refs);
    return j;
}

static void job_unref(WbJob *j)
{
    if (!g_atomic_int_dec_and_test(&j->refs)) return;
    if (j->free_data) j->free_data(j->data);
    g_mutex_clear(&j->lock);
    g_free(j->what);
    g_free(j);
}

static gboolean progress_idle(gpointer user)
{
    WbJob *j = user;
    g_mutex_lock(&j->lock);
    MsProgress p = j->last;
    j->pending = FALSE;
    gboolean fin = j->finished;
    g_mutex_unlock(&j->lock);
    if (!fin && !j->wb->dead && j->progress) j->progress(j->wb, j, &p, j->data);
    job_unref(j);
    return G_SOURCE_REMOVE;
}

void wb_job_report(void *user, const MsProgress *p)
{
    WbJob *j = user;
    g_mutex_lock(&j->lock);
    j->last = *p;
    gboolean schedule = !j->pending;
    j->pending = TRUE;
    g_mutex_unlock(&j->lock);
    if (schedule) g_idle_add_full(G_PRIORITY_DEFAULT, progress_idle, job_ref(j), NULL);
}

static gboolean done_idle(gpointer user)
{
    WbJob *j = user;
    Wb *wb = j->wb;
    /* the thread has only to return: wait for it, so that no job thread is
     * still ending (running thread-local destructors, e.g. libpq's OpenSSL
     * state) when the last job lets the process exit */
    if (j->thread) g_thread_join(j->thread);
    j->thread = NULL;
    g_mutex_lock(&j->lock);
    j->finished = TRUE;
    g_mutex_unlock(&j->lock);
    if (!wb->dead && j->done) j->done(wb, j, j->rc, &j->err, j->data);
    if (wb->long_job == j) wb_long_job_end(wb, j);
    if (wb->prompts_job == j) wb->prompts_job = NULL;
    g_ptr_array_remove(wb->jobs, j);
    wb->n_jobs--;
    GApplication *app = G_APPLICATION(wb->app);
    if (wb->dead && wb->n_jobs == 0) wb_free_state(wb);
    job_unref(j);
    g_application_release(app);
    return G_SOURCE_REMOVE;
}

static gpointer job_thread(gpointer user)
{
    WbJob *j = user;
    ms_error_clear(&j->err);
    j->rc = j->run(j, j->data, &j->err);
    if (j->rc < 0 && !j->err.msg[0]) ms_error_set(&j->err, j->rc, "%s failed: %s", j->what, ms_strerror(j->rc));
    j->t_end = wb_now();
    g_idle_add_full(G_PRIORITY_DEFAULT, done_idle, j, NULL);
    return NULL;
}

WbJob *wb_job_start(Wb *wb, const char *what, WbJobRunFn run, WbJobDoneFn done, WbJobProgressFn progress,
                    gpointer data, GDestroyNotify free_data)
{
    WbJob *j = g_new0(WbJob, 1);
    j->wb = wb;
    j->what = g_strdup(what);
    ms_cancel_init(&j->cancel);
    j->run = run;
    j->done = done;
    j->progress = progress;
    j->data = data;
    j->free_data = free_data;
    j->refs = 1;
    j->t_start = wb_now();
    g_mutex_init(&j->lock);
    wb->n_jobs++;
    g_ptr_array_add(wb->jobs, j);
    g_application_hold(G_APPLICATION(wb->app));
    GError *e = NULL;
    /* read by done_idle, which runs on this (the main) thread after this returns */
    GThread *t = j->thread = g_thread_try_new(what, job_thread, j, &e);
    if (!t) {
        /* no thread: report the failure through the normal end path */
        j->rc = ms_error_set(&j->err, MS_EINTERNAL, "%s: cannot start a thread: %s", what, e ? e->message : "?");
        g_clear_error(&e);
        g_idle_add_full(G_PRIORITY_DEFAULT, done_idle, j, NULL);
        return j;
    }
    return j;
}

void wb_job_cancel(WbJob *j)
{
    if (!j || j->finished) return;
    if (j->t_cancel == 0) j->t_cancel = wb_now();
    ms_cancel_request(&j->cancel);
}

/* The window's state once the window is gone and no job refers to it. */
static void wb_free_state(Wb *wb)
{
    if (wb->pages) {
        for (guint i = 0; i < wb->pages->len; i++) wb_view_page_free(g_ptr_array_index(wb->pages, i));
        g_ptr_array_free(wb->pages, TRUE);
    }
    wb_iv_page_free(wb->iv);
    wb_an_page_free(wb->an);
    wb_grid_free(wb->grid);
    wb_model_unref(wb->model);
    if (wb->prompts) wb_prompt_set_unref(wb->prompts);
    ms_trace_close(wb->db_poll);
    g_free(wb->db_path);
    g_free(wb->runs);
    wb_fire_index_free(wb->fire);
    g_clear_object(&wb->prompt_store);
    g_ptr_array_free(wb->jobs, TRUE);
    g_free(wb);
}

void wb_window_state_release(Wb *wb);
void wb_window_state_release(Wb *wb)
{
    if (wb->n_jobs == 0) wb_free_state(wb);
}
