/* view-b-data.c — the run, stored results and the packed routing scan of
 * the views coactivation, affinity, flow and consistency (view-b.h). */
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "view-b.h"

/* ------------------------------------------------------------- the run */

int vb_run(MsTraceDb *db, int64_t p_run, MsTraceRunInfo *ri, MsError *err)
{
    memset(ri, 0, sizeof *ri);
    if (p_run > 0) {
        int rc = ms_trace_run_info(db, p_run, ri, err);
        if (rc == MS_ENOTFOUND)
            return ms_error_set(err, MS_ENOTFOUND, "%s: no run %lld", ms_trace_path(db), (long long)p_run);
        if (rc < 0) return rc;
        if (ri->n_prompts <= 0) {
            ms_trace_run_info_clear(ri);
            return ms_error_set(err, MS_ENOTFOUND, "%s: run %lld has no prompts", ms_trace_path(db),
                                (long long)p_run);
        }
        return 0;
    }
    int64_t *ids = NULL;
    int n = 0, rc = ms_trace_runs(db, &ids, &n, err);
    if (rc < 0) return rc;
    for (int i = n - 1; i >= 0; i--) {
        if ((rc = ms_trace_run_info(db, ids[i], ri, err)) < 0) break;
        if (ri->n_prompts > 0) {
            free(ids);
            return 0;
        }
        ms_trace_run_info_clear(ri);
    }
    free(ids);
    if (rc < 0) return rc;
    return ms_error_set(err, MS_ENOTFOUND, "%s: no run with prompts (trace one with `moescope trace`)",
                        ms_trace_path(db));
}

int vb_moe_layers(const MsTraceRunInfo *ri, int layers[MS_TRACE_MAX_LAYER])
{
    /* as the analyses read a run: a model that marks no block as MoE
     * (some imports) has routing at every block */
    bool any = false;
    for (int l = 0; l < ri->model.n_layer && l < MS_TRACE_MAX_LAYER; l++) any |= ri->model.is_moe[l] != 0;
    int n = 0;
    for (int l = 0; l < ri->model.n_layer && l < MS_TRACE_MAX_LAYER; l++)
        if (!any || ri->model.is_moe[l]) layers[n++] = l;
    return n;
}

/* The layer a one-layer view shows: p->layer (a MoE block) or the first MoE block. */
int vb_pick_layer(MsTraceDb *db, const MsTraceRunInfo *ri, int want, int *slot, MsError *err)
{
    int layers[MS_TRACE_MAX_LAYER], n = vb_moe_layers(ri, layers);
    if (n == 0) return ms_error_set(err, MS_EFORMAT, "%s: run %lld: the model has no MoE layer", ms_trace_path(db),
                                    (long long)ri->run_id);
    if (want < 0) {
        *slot = 0;
        return layers[0];
    }
    for (int s = 0; s < n; s++)
        if (layers[s] == want) {
            *slot = s;
            return want;
        }
    return ms_error_set(err, MS_EINVAL, "%s: run %lld: layer %d is not a MoE layer (MoE layers %d..%d)",
                        ms_trace_path(db), (long long)ri->run_id, want, layers[0], layers[n - 1]);
}

/* ---------------------------------------------------- stored results */

int vb_stored(MsTraceDb *db, int64_t run, const char *table, char **params, MsError *err)
{
    *params = NULL;
    MsTraceCursor *c = ms_trace_analyses(db, run, err);
    if (!c) return err && err->code ? err->code : MS_EDB;
    MsTraceAnalysis a;
    int rc, found = 0;
    while ((rc = ms_trace_analyses_next(c, &a, err)) == 1) {
        if (a.run_id != run || strcmp(a.table, table)) continue;
        free(*params);
        *params = NULL;
        if (a.params && !(*params = strdup(a.params))) {
            rc = ms_error_set(err, MS_ENOMEM, "out of memory");
            break;
        }
        found = 1;   /* the latest registration wins */
    }
    ms_trace_cursor_free(c);
    if (rc < 0) {
        free(*params);
        *params = NULL;
        return rc;
    }
    return found;
}

MsTraceCursor *vb_table_open(MsTraceDb *db, int64_t run, const char *table, const char *module,
                             const char *const *names, int n, int *idx, MsError *err)
{
    MsTraceCursor *c = ms_trace_table(db, table, run, err);
    if (!c) return NULL;
    const MsColumn *cols;
    int nc = ms_trace_table_columns(c, &cols);
    for (int i = 0; i < n; i++) {
        idx[i] = -1;
        for (int j = 0; j < nc; j++)
            if (!strcmp(cols[j].name, names[i])) idx[i] = j;
        if (idx[i] < 0) {
            ms_error_set(err, MS_EFORMAT,
                         "%s: table %s has no column '%s' (written by another version of moescope); "
                         "run `moescope analyze %s --db %s` again",
                         ms_trace_path(db), table, names[i], module, ms_trace_path(db));
            ms_trace_cursor_free(c);
            return NULL;
        }
    }
    return c;
}

double vb_num(const MsTraceValue *v)
{
    if (v->type == MS_COL_INT) return (double)v->i;
    if (v->type == MS_COL_REAL) return v->r;
    return NAN;
}

static json_t *param(const char *params, const char *key, json_t **root)
{
    *root = params ? json_loads(params, 0, NULL) : NULL;
    return *root && json_is_object(*root) ? json_object_get(*root, key) : NULL;
}

bool vb_param_int(const char *params, const char *key, int64_t *out)
{
    json_t *root, *v = param(params, key, &root);
    bool ok = v && json_is_integer(v);
    if (ok) *out = json_integer_value(v);
    json_decref(root);
    return ok;
}

bool vb_param_str(const char *params, const char *key, char *out, size_t size)
{
    json_t *root, *v = param(params, key, &root);
    bool ok = v && json_is_string(v);
    if (ok) snprintf(out, size, "%s", json_string_value(v));
    json_decref(root);
    return ok;
}

int vb_param_ints(const char *params, const char *key, int *out, int cap)
{
    json_t *root, *v = param(params, key, &root);
    int n = -1;
    if (v && json_is_array(v)) {
        n = 0;
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x) {
            if (!json_is_integer(x)) {
                n = -1;
                break;
            }
            if (n < cap) out[n++] = (int)json_integer_value(x);
        }
    }
    json_decref(root);
    return n;
}

int vb_not_stored(MsTraceDb *db, int64_t run, const char *what, const char *command, MsError *err)
{
    return ms_error_set(err, MS_ENOTFOUND, "%s: run %lld has no stored %s; run `%s --db %s --run %lld` "
                        "(or plot without --no-run)", ms_trace_path(db), (long long)run, what, command,
                        ms_trace_path(db), (long long)run);
}

/* ------------------------------------------------- packed routing scan */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void report(MsProgressFn fn, void *user, const char *stage, int64_t done, int64_t total, double t0)
{
    if (!fn) return;
    double el = now_s() - t0;
    MsProgress p = {
        .stage = stage, .done = done, .total = total, .tokens = done, .tokens_total = total,
        .elapsed_s = el, .tokens_per_s = el > 0 ? (double)done / el : 0,
        .eta_s = done > 0 && total > 0 ? el * (double)(total - done) / (double)done : -1,
    };
    fn(user, &p);
}

/* What one scan reads: the whole run, a list of prompts, or a prompt id range. */
typedef struct {
    const int64_t *prompts;
    int n_prompts;
    int64_t lo, hi;          /* prompt id range when lo > 0 */
    int64_t total;           /* tokens expected (progress) */
    atomic_llong *shared;    /* tokens done by all workers (NULL: this one only) */
    MsCancel *stop;          /* set when any worker fails */
    bool reporter;           /* this worker reports progress */
} ScanSrc;

static MsTraceCursor *scan_cursor(MsTraceDb *db, int64_t run, const ScanSrc *src, int *pi, MsError *err)
{
    if (src->prompts) return ms_trace_routing(db, run, src->n_prompts > 0 ? src->prompts[(*pi)++] : -1, err);
    if (src->lo > 0) return ms_trace_routing_range(db, run, src->lo, src->hi, err);
    return ms_trace_routing(db, run, 0, err);
}

static int scan_core(MsTraceDb *db, const MsTraceRunInfo *ri, const bool *want, const ScanSrc *src, VbTokenFn fn,
                     void *user, MsProgressFn progress, void *progress_user, const MsCancel *cancel, const char *stage,
                     MsError *err)
{
    int layers[MS_TRACE_MAX_LAYER], slot_of[MS_TRACE_MAX_LAYER];
    int ns = vb_moe_layers(ri, layers), E = ri->model.n_expert;
    for (int l = 0; l < MS_TRACE_MAX_LAYER; l++) slot_of[l] = -1;
    for (int s = 0; s < ns; s++) slot_of[layers[s]] = s;
    if (ns == 0 || E <= 0)
        return ms_error_set(err, MS_EFORMAT, "%s: run %lld: the model has no MoE layer", ms_trace_path(db),
                            (long long)ri->run_id);
    int stride = E, pi = 0;
    int32_t *ids = malloc(sizeof *ids * (size_t)ns * (size_t)stride);
    int *n = calloc((size_t)ns, sizeof *n);
    MsTraceCursor *c = ids && n ? scan_cursor(db, ri->run_id, src, &pi, err) : NULL;
    int rc = 0;
    if (!ids || !n) rc = ms_error_set(err, MS_ENOMEM, "out of memory");
    else if (!c) rc = err && err->code ? err->code : MS_EDB;
    double t0 = now_s();
    int64_t tokens = 0, flushed = 0;
    bool have = false;
    VbToken t = { .ids = ids, .n = n, .stride = stride };
    MsTraceRoutePacked row;
    if (src->reporter) report(progress, progress_user, stage, 0, src->total, t0);
    while (rc >= 0) {
        int got = ms_trace_routing_next_packed(c, &row, err);
        if (got < 0) {
            rc = got;
            break;
        }
        if (got == 0 && src->prompts && pi < src->n_prompts) {   /* the list's next prompt */
            ms_trace_cursor_free(c);
            if (!(c = scan_cursor(db, ri->run_id, src, &pi, err))) {
                rc = err && err->code ? err->code : MS_EDB;
                break;
            }
            continue;
        }
        if (have && (got == 0 || row.prompt_id != t.prompt_id || row.pos != t.pos)) {
            if ((rc = fn(user, &t, err)) < 0) break;
            have = false;
            if ((++tokens & 1023) == 0) {
                if (ms_cancel_requested(cancel) || ms_cancel_requested(src->stop)) {
                    rc = ms_error_set(err, MS_ECANCELLED, "cancelled");
                    break;
                }
                if (src->shared) {
                    atomic_fetch_add(src->shared, tokens - flushed);
                    flushed = tokens;
                }
                if ((tokens & 65535) == 0 && src->reporter)
                    report(progress, progress_user, stage, src->shared ? atomic_load(src->shared) : tokens, src->total, t0);
            }
        }
        if (got == 0) break;
        if (!have) {
            memset(n, 0, sizeof *n * (size_t)ns);
            t.prompt_id = row.prompt_id;
            t.pos = row.pos;
            have = true;
        }
        int s = row.layer >= 0 && row.layer < MS_TRACE_MAX_LAYER ? slot_of[row.layer] : -1;
        if (s < 0) {
            rc = ms_error_set(err, MS_EFORMAT, "%s: run %lld: routing at layer %d, which is not a MoE layer",
                              ms_trace_path(db), (long long)ri->run_id, row.layer);
            break;
        }
        if (want && !want[s]) continue;
        int k = row.k < 0 ? 0 : row.k > stride ? stride : row.k;
        for (int i = 0; i < k; i++) {
            int e = row.experts[2 * i] | row.experts[2 * i + 1] << 8;
            if (e >= E) {
                rc = ms_error_set(err, MS_EFORMAT, "%s: run %lld: routing names expert %d at layer %d (E = %d)",
                                  ms_trace_path(db), (long long)ri->run_id, e, row.layer, E);
                break;
            }
            ids[(size_t)s * stride + i] = e;
        }
        n[s] = k;
    }
    if (src->shared) atomic_fetch_add(src->shared, tokens - flushed);
    if (rc < 0) ms_cancel_request(src->stop);
    else if (src->reporter) {
        int64_t done = src->shared ? atomic_load(src->shared) : tokens;
        report(progress, progress_user, stage, done, done > src->total ? done : src->total, t0);
    }
    ms_trace_cursor_free(c);
    free(ids);
    free(n);
    return rc < 0 ? rc : 0;
}

int vb_scan(MsTraceDb *db, const MsTraceRunInfo *ri, const bool *want, const int64_t *prompts, int n_prompts,
            int64_t n_tokens, VbTokenFn fn, void *user, MsProgressFn progress, void *progress_user,
            const MsCancel *cancel, const char *stage, MsError *err)
{
    ScanSrc src = { .prompts = prompts, .n_prompts = n_prompts, .total = prompts ? n_tokens : ri->n_tokens,
                    .reporter = true };
    return scan_core(db, ri, want, &src, fn, user, progress, progress_user, cancel, stage, err);
}

typedef struct {
    const char *path;
    const MsTraceRunInfo *ri;
    const bool *want;
    ScanSrc src;
    VbTokenFn fn;
    void *user;
    const MsCancel *cancel;
    const char *stage;
    MsError err;
    int rc;
} ScanJob;

static void *scan_thread(void *p)
{
    ScanJob *j = p;
    MsTraceDb *db = ms_trace_open(j->path, MS_TRACE_READ, &j->err);
    if (!db) {
        j->rc = j->err.code ? j->err.code : MS_EDB;
        ms_cancel_request(j->src.stop);
        return NULL;
    }
    j->rc = scan_core(db, j->ri, j->want, &j->src, j->fn, j->user, NULL, NULL, j->cancel, j->stage, &j->err);
    ms_trace_close(db);
    return NULL;
}

int vb_scan_split(MsTraceDb *db, const MsTraceRunInfo *ri, const bool *want, VbTokenFn fn, void *user0, void *user1,
                  bool *split, int64_t min_tokens, MsProgressFn progress, void *progress_user, const MsCancel *cancel, const char *stage,
                  MsError *err)
{
    *split = false;
    /* the prompt at which half of the tokens are read */
    MsTraceCursor *pc = ms_trace_prompts(db, ri->run_id, err);
    if (!pc) return err && err->code ? err->code : MS_EDB;
    int64_t first = -1, last = -1, mid = -1, seen = 0, half = ri->n_tokens / 2;
    MsTracePrompt pr;
    int rc;
    while ((rc = ms_trace_prompts_next(pc, &pr, err)) == 1) {
        if (first < 0) first = pr.prompt_id;
        if (pr.prompt_id <= last) mid = -2;   /* ids not ascending: no split */
        last = pr.prompt_id;
        if (mid == -1 && seen >= half && seen > 0) mid = pr.prompt_id;
        seen += pr.n_tokens;
    }
    ms_trace_cursor_free(pc);
    if (rc < 0) return rc;
    if (mid < 0 || ri->n_tokens < min_tokens || !ms_trace_path(db) || !*ms_trace_path(db))
        return vb_scan(db, ri, want, NULL, 0, 0, fn, user0, progress, progress_user, cancel, stage, err);
    MsCancel stop;
    ms_cancel_init(&stop);
    atomic_llong shared;
    atomic_init(&shared, 0);
    ScanJob job = { .path = ms_trace_path(db), .ri = ri, .want = want, .fn = fn, .user = user1, .cancel = cancel,
                    .stage = stage,
                    .src = { .lo = mid, .hi = last, .total = ri->n_tokens, .shared = &shared, .stop = &stop } };
    pthread_t th;
    if (pthread_create(&th, NULL, scan_thread, &job) != 0)
        return vb_scan(db, ri, want, NULL, 0, 0, fn, user0, progress, progress_user, cancel, stage, err);
    *split = true;
    ScanSrc src = { .lo = first, .hi = mid - 1, .total = ri->n_tokens, .shared = &shared, .stop = &stop,
                    .reporter = true };
    rc = scan_core(db, ri, want, &src, fn, user0, progress, progress_user, cancel, stage, err);
    pthread_join(th, NULL);
    if (rc >= 0 && job.rc < 0) {
        rc = job.rc;
        if (err) *err = job.err;
    }
    if (rc == MS_ECANCELLED && !ms_cancel_requested(cancel) && job.rc < 0 && job.rc != MS_ECANCELLED) {
        rc = job.rc;   /* stopped because the other half failed: its error */
        if (err) *err = job.err;
    }
    return rc < 0 ? rc : 0;
}

/* ---------------------------------------------------------- drawing */

void vb_fmt_count(double v, char *buf, size_t size)
{
    if (!isfinite(v)) {
        snprintf(buf, size, "n/a");
        return;
    }
    char raw[32];
    snprintf(raw, sizeof raw, "%.0f", fabs(v));
    size_t len = strlen(raw), o = 0;
    if (v < 0 && o + 1 < size) buf[o++] = '-';
    for (size_t i = 0; i < len && o + 4 < size; i++) {
        if (i > 0 && (len - i) % 3 == 0) {
            /* U+2009 THIN SPACE */
            buf[o++] = '\xE2';
            buf[o++] = '\x80';
            buf[o++] = '\x89';
        }
        buf[o++] = raw[i];
    }
    buf[o] = 0;
}

void vb_draw_title(cairo_t *cr, const MsPlotStyle *style, const char *title, double width)
{
    if (!title || !*title) return;
    MsPlotText *t = ms_plot_text_new(style);
    if (!t) return;
    double pad = ms_plot_text_pad(t);
    cairo_save(cr);
    cairo_set_source_rgb(cr, 0.13, 0.13, 0.13);
    ms_plot_text_title(t, cr, title, width, pad);
    cairo_restore(cr);
    ms_plot_text_free(t);
}
