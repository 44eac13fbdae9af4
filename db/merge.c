/* merge.c — several trace databases (shards of one prompt set traced
 * apart) merged into one run of another database, of either backend.
 * Uses only the public reader and writer API: every stored value goes
 * through the writer as it was read (binary32 and binary16 values decode
 * and re-encode exactly), one transaction per prompt. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "db-internal.h"

/* settings JSON without the prompt file's name (the same set may be named
 * differently on each machine); NULL stays NULL */
static json_t *settings_key(const char *s)
{
    if (!s) return NULL;
    json_t *j = json_loads(s, 0, NULL);
    if (!j) return json_string(s);   /* not JSON: compared as text */
    if (json_is_object(j)) json_object_del(j, "prompts");
    return j;
}

bool ms_db_settings_same(const char *a, const char *b)
{
    json_t *s = settings_key(a), *t = settings_key(b);
    bool same = (!s && !t) || (s && t && json_equal(s, t));
    json_decref(s);
    json_decref(t);
    return same;
}

static bool str_eq(const char *a, const char *b) { return (!a && !b) || (a && b && !strcmp(a, b)); }

/* What differs between two runs' identities, or NULL when they match. */
static const char *run_differs(const MsTraceRunInfo *a, const MsTraceRunInfo *b)
{
    const MsTraceModel *x = &a->model, *y = &b->model;
    if (strcmp(x->sha256, y->sha256) || (!x->sha256[0] && strcmp(x->file_name, y->file_name)))
        return "model (sha256)";
    if (x->n_layer != y->n_layer || x->n_expert != y->n_expert || x->n_expert_used != y->n_expert_used ||
        x->n_moe_layers != y->n_moe_layers || memcmp(x->is_moe, y->is_moe, sizeof x->is_moe))
        return "model shape";
    if (!str_eq(a->kind, b->kind)) return "kind";
    if (!str_eq(a->interventions, b->interventions)) return "interventions";
    if (a->has_probs != b->has_probs || a->has_stats != b->has_stats) return "stored data (--probs / --stats)";
    if (!str_eq(a->prompts_sha256, b->prompts_sha256) && a->prompts_sha256 && b->prompts_sha256)
        return "prompt set (content)";
    return ms_db_settings_same(a->settings_json, b->settings_json) ? NULL : "settings";
}

typedef struct {
    MsTraceDb *db;
    int64_t run_id;
} Src;

/* Copy the rows of one source prompt into the writer (begun). */
static int copy_rows(MsTraceDb *s, int64_t run_id, int64_t pid, MsTraceWriter *w, MsObserver *obs, int n_expert,
                     MsError *err)
{
    int rc = 0;
    MsTraceCursor *tc = ms_trace_tokens(s, run_id, pid, err);
    if (!tc) return err ? err->code : MS_EDB;
    MsTraceToken tk;
    while ((rc = ms_trace_tokens_next(tc, &tk, err)) == 1)
        if ((rc = ms_trace_writer_token(w, tk.pos, tk.token_id, tk.piece, tk.piece_len, tk.is_generated, tk.logprob,
                                        tk.entropy, err)) < 0) break;
    ms_trace_cursor_free(tc);
    if (rc < 0) return rc;

    /* routing rows, with the probabilities of the same (pos, layer) */
    MsTraceCursor *rc_ = ms_trace_routing_range(s, run_id, pid, pid, err);
    MsTraceCursor *pc = rc_ ? ms_trace_probs(s, run_id, pid, err) : NULL;
    if (!rc_ || !pc) {
        ms_trace_cursor_free(rc_);
        return err ? err->code : MS_EDB;
    }
    int32_t *ex = NULL, *am = NULL;
    float *wt = NULL, *mx = NULL, *l2 = NULL;
    size_t cap = 0;
    MsTraceProbs pr;
    int have_p = ms_trace_probs_next(pc, &pr, err);
    if (have_p < 0) rc = have_p;
    MsTraceRoutePacked row;
    while (rc >= 0 && (rc = ms_trace_routing_next_packed(rc_, &row, err)) == 1) {
        size_t k = (size_t)row.k;
        if (k > cap) {
            cap = k;
            int32_t *a = realloc(ex, k * sizeof *a), *b = realloc(am, k * sizeof *b);
            if (a) ex = a;
            if (b) am = b;
            float *c = realloc(wt, k * sizeof *c), *d = realloc(mx, k * sizeof *d), *e = realloc(l2, k * sizeof *e);
            if (c) wt = c;
            if (d) mx = d;
            if (e) l2 = e;
            if (!a || !b || !c || !d || !e) { rc = ms_error_set(err, MS_ENOMEM, "out of memory"); break; }
        }
        for (size_t j = 0; j < k; j++) {
            ex[j] = (int32_t)ms_get_u16(row.experts + 2 * j);
            wt[j] = row.weights ? ms_get_f32(row.weights + 4 * j) : NAN;
            if (row.maxabs) mx[j] = ms_get_f32(row.maxabs + 4 * j);
            if (row.l2) l2[j] = ms_get_f32(row.l2 + 4 * j);
            am[j] = row.argmax ? (int32_t)ms_get_u16(row.argmax + 2 * j) : -1;
        }
        /* probs rows come in the same (pos, layer) order; one that has no
         * routing row would be lost: refuse rather than drop it */
        while (have_p == 1 && (pr.pos < row.pos || (pr.pos == row.pos && pr.layer < row.layer))) {
            rc = ms_error_set(err, MS_EFORMAT, "%s: router_probs of pos %d layer %d without a routing row",
                              ms_trace_path(s), pr.pos, pr.layer);
            break;
        }
        if (rc < 0) break;
        bool with_p = have_p == 1 && pr.pos == row.pos && pr.layer == row.layer;
        int32_t pos = row.pos, nu = row.k;
        MsRoutingEvent ev = { .layer = row.layer, .n_tokens = 1, .pos = &pos, .k = row.k, .experts = ex,
                              .weights = wt, .n_expert = with_p ? pr.n_expert : n_expert,
                              .probs = with_p ? pr.probs : NULL, .logits = with_p ? pr.logits : NULL,
                              .out_maxabs = row.maxabs ? mx : NULL, .out_l2 = row.maxabs && row.l2 ? l2 : NULL,
                              .out_argmax = row.argmax ? am : NULL, .n_used = &nu };
        obs->on_routing(obs->user, &ev);
        if (with_p && (have_p = ms_trace_probs_next(pc, &pr, err)) < 0) rc = have_p;
    }
    if (rc >= 0 && have_p == 1)
        rc = ms_error_set(err, MS_EFORMAT, "%s: router_probs of pos %d layer %d without a routing row",
                          ms_trace_path(s), pr.pos, pr.layer);
    free(ex); free(am); free(wt); free(mx); free(l2);
    ms_trace_cursor_free(rc_);
    ms_trace_cursor_free(pc);
    if (rc < 0) return rc;

    MsTraceCursor *hc = ms_trace_hidden(s, run_id, pid, err);
    if (!hc) return err ? err->code : MS_EDB;
    MsTraceHidden hb[256];
    int got;
    while ((got = ms_trace_hidden_next(hc, hb, 256, err)) > 0)
        for (int i = 0; i < got; i++) {
            int32_t pos = hb[i].pos, ch = hb[i].channel;
            float m = hb[i].maxabs;
            MsHiddenEvent ev = { .layer = hb[i].layer, .n_tokens = 1, .pos = &pos, .maxabs = &m,
                                 .argmax = &ch };
            obs->on_hidden(obs->user, &ev);
        }
    ms_trace_cursor_free(hc);
    return got < 0 ? got : 0;
}

typedef struct {
    int src;                   /* index into the source runs */
    size_t seq;                /* read order: the first source of an index wins */
    int index;
    int64_t prompt_id;
    char *text; size_t text_len;
    char *labels, *worker;
} Item;

static int cmp_item(const void *a, const void *b)
{
    const Item *x = a, *y = b;
    if (x->index != y->index) return x->index < y->index ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

int ms_trace_merge(MsTraceDb *dst, MsTraceDb *const *srcs, int n_src, MsTraceMergeResult *res, MsProgressFn progress,
                   void *progress_user, const MsCancel *cancel, MsError *err)
{
    memset(res, 0, sizeof *res);
    if (n_src < 1) return ms_error_set(err, MS_EINVAL, "merge: no source databases");
    /* every run of every source, checked against the first before anything is written */
    Src *runs = NULL;
    int n_runs = 0, cap = 0, rc = 0;
    MsTraceRunInfo first, ri;
    memset(&first, 0, sizeof first);
    for (int i = 0; i < n_src && !rc; i++) {
        int64_t *ids = NULL;
        int n = 0;
        if ((rc = ms_trace_runs(srcs[i], &ids, &n, err)) < 0) break;
        if (n == 0) rc = ms_error_set(err, MS_EINVAL, "%s: no runs to merge", ms_trace_path(srcs[i]));
        for (int r = 0; r < n && !rc; r++) {
            if ((rc = ms_trace_run_info(srcs[i], ids[r], &ri, err)) < 0) break;
            const char *d = n_runs ? run_differs(&first, &ri) : NULL;
            if (d)
                rc = ms_error_set(err, MS_EINVAL, "%s: run %lld differs from %s run %lld in its %s: not shards of "
                                  "one run", ms_trace_path(srcs[i]), (long long)ids[r], ms_trace_path(runs[0].db),
                                  (long long)runs[0].run_id, d);
            if (!rc && n_runs == cap) {
                cap = cap ? 2 * cap : 8;
                Src *nr = realloc(runs, (size_t)cap * sizeof *nr);
                if (!nr) rc = ms_error_set(err, MS_ENOMEM, "out of memory");
                else runs = nr;
            }
            if (!rc) {
                runs[n_runs].db = srcs[i];
                runs[n_runs].run_id = ids[r];
                if (n_runs++ == 0) { first = ri; memset(&ri, 0, sizeof ri); }
            }
            ms_trace_run_info_clear(&ri);
        }
        free(ids);
    }
    int64_t run_id = 0;
    MsTraceWriter *w = NULL;
    if (!rc) {
        int64_t model_id = ms_trace_model_add(dst, &first.model, err);
        MsTraceRunDesc d = { .model_id = model_id, .kind = first.kind, .settings_json = first.settings_json,
                             .interventions = first.interventions, .prompts_sha256 = first.prompts_sha256,
                             .has_probs = first.has_probs, .has_stats = first.has_stats };
        if (model_id < 0) rc = (int)model_id;
        else run_id = ms_trace_run_join(dst, &d, true, err);
        if (!rc && run_id < 0) rc = (int)run_id;
        if (!rc && !(w = ms_trace_writer_new(dst, run_id, err))) rc = err ? err->code : MS_EDB;
    }
    res->run_id = run_id > 0 ? run_id : 0;
    res->n_sources = n_src;
    MsObserver obs = w ? ms_trace_writer_observer(w) : (MsObserver){ 0 };
    /* the prompts of every source, written in index order (SQLite gives
     * ids in commit order; the analyses want them in prompt order) */
    Item *items = NULL;
    size_t n_items = 0, cap_items = 0;
    for (int r = 0; r < n_runs && !rc; r++) {
        MsTraceCursor *pc = ms_trace_prompts(runs[r].db, runs[r].run_id, err);
        if (!pc) { rc = err ? err->code : MS_EDB; break; }
        MsTracePrompt p;
        int got = 0;
        while ((got = ms_trace_prompts_next(pc, &p, err)) == 1) {
            if (n_items == cap_items) {
                cap_items = cap_items ? 2 * cap_items : 256;
                Item *ni = realloc(items, cap_items * sizeof *ni);
                if (!ni) { got = ms_error_set(err, MS_ENOMEM, "out of memory"); break; }
                items = ni;
            }
            Item *it = &items[n_items];
            memset(it, 0, sizeof *it);
            it->src = r;
            it->seq = n_items;
            it->index = p.index;
            it->prompt_id = p.prompt_id;
            it->text = malloc(p.text_len + 1);
            it->text_len = p.text_len;
            it->labels = p.labels_json ? strdup(p.labels_json) : NULL;
            it->worker = strdup(p.worker ? p.worker : ms_trace_path(runs[r].db));
            n_items++;
            if (!it->text || (p.labels_json && !it->labels) || !it->worker) {
                got = ms_error_set(err, MS_ENOMEM, "out of memory");
                break;
            }
            memcpy(it->text, p.text, p.text_len);
            it->text[p.text_len] = 0;
        }
        if (got < 0) rc = got;
        ms_trace_cursor_free(pc);
    }
    if (n_items) qsort(items, n_items, sizeof *items, cmp_item);
    MsProgress pg = { .stage = "merge", .total = (int64_t)n_items, .eta_s = -1 };
    for (size_t i = 0; i < n_items && !rc; i++) {
        const Item *it = &items[i];
        if (ms_cancel_requested(cancel)) { rc = ms_error_set(err, MS_ECANCELLED, "cancelled"); break; }
        pg.done++;
        int64_t have = ms_trace_prompt_lookup(dst, run_id, it->index, err);
        if (have < 0) { rc = (int)have; break; }
        if (have > 0) {
            res->n_skipped++;
        } else {
            MsTraceDb *s = runs[it->src].db;
            if ((rc = ms_trace_writer_set_worker(w, it->worker, err)) < 0 ||
                (rc = ms_trace_writer_begin(w, it->index, it->text, it->text_len, it->labels, err)) < 0) break;
            if ((rc = copy_rows(s, runs[it->src].run_id, it->prompt_id, w, &obs, first.model.n_expert, err)) < 0)
                break;
            if ((rc = ms_trace_writer_commit(w, NULL, err)) < 0) break;
            res->n_written++;
        }
        if (progress) progress(progress_user, &pg);
    }
    for (size_t i = 0; i < n_items; i++) {
        free(items[i].text);
        free(items[i].labels);
        free(items[i].worker);
    }
    free(items);
    if (w) ms_trace_writer_abort(w);
    if (!rc && run_id > 0) {   /* complete when the set's every prompt is in (settings say how many) */
        MsTraceRunInfo di;
        json_t *js = first.settings_json ? json_loads(first.settings_json, 0, NULL) : NULL;
        json_t *np = json_is_object(js) ? json_object_get(js, "n_prompts") : NULL;
        if ((rc = ms_trace_run_info(dst, run_id, &di, err)) >= 0) {
            if (!np || (json_is_integer(np) && di.n_prompts >= json_integer_value(np)))
                rc = ms_trace_run_set_status(dst, run_id, "complete", err);
            ms_trace_run_info_clear(&di);
        }
        json_decref(js);
    }
    ms_trace_writer_free(w);
    ms_trace_run_info_clear(&first);
    free(runs);
    return rc < 0 ? rc : 0;
}
