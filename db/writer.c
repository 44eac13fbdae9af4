/* writer.c — model and run rows, and the per-prompt trace writer (an
 * MsObserver adapter that buffers one prompt and commits it atomically). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db-internal.h"

/* ------------------------------------------------------------ model, run */

int ms_trace_model_from_engine(MsTraceModel *m, const MsModel *model, const char *path, MsError *err)
{
    const MsModelInfo *in = ms_model_info(model);
    memset(m, 0, sizeof *m);
    const char *base = strrchr(path, '/');
    snprintf(m->file_name, sizeof m->file_name, "%s", base ? base + 1 : path);
    m->file_size = in->file_size;
    int rc = ms_sha256_file(path, m->sha256, err);
    if (rc) return rc;
    snprintf(m->arch, sizeof m->arch, "%s", in->arch_name ? in->arch_name : "");
    snprintf(m->name, sizeof m->name, "%s", in->name ? in->name : "");
    if (in->n_layer > MS_TRACE_MAX_LAYER)
        return ms_error_set(err, MS_EUNSUPPORTED, "%s: %d layers (the trace store holds at most %d)",
                            path, in->n_layer, MS_TRACE_MAX_LAYER);
    m->n_layer = in->n_layer;
    m->n_expert = in->n_expert;
    m->n_expert_used = in->n_expert_used;
    m->n_expert_shared = in->n_expert_shared;
    snprintf(m->score_func, sizeof m->score_func, "%s", ms_gating_name(in->gating));
    m->norm_topk = in->norm_w;
    m->w_scale = in->w_scale;
    m->n_embd = in->n_embd;
    m->n_vocab = in->n_vocab;
    m->n_ff_exp = in->n_ff_exp;
    for (int l = 0; l < in->n_layer; l++) {
        m->is_moe[l] = ms_model_layer_is_moe(model, l);
        m->n_moe_layers += m->is_moe[l];
    }
    return 0;
}

static char *moe_layers_json(const MsTraceModel *m)
{
    size_t cap = 8 + (size_t)MS_TRACE_MAX_LAYER * 5;
    char *s = malloc(cap);
    if (!s) return NULL;
    size_t n = 0;
    s[n++] = '[';
    for (int l = 0; l < m->n_layer && l < MS_TRACE_MAX_LAYER; l++)
        if (m->is_moe[l]) n += (size_t)snprintf(s + n, cap - n, "%s%d", n > 1 ? "," : "", l);
    s[n++] = ']';
    s[n] = '\0';
    return s;
}

int64_t ms_trace_model_add(MsTraceDb *db, const MsTraceModel *m, MsError *err)
{
    if (db->be) return db->be->model_add(db, m, err);
    static const char *find =
        "SELECT model_id FROM model WHERE file_name=?1 AND file_size=?2 AND sha256=?3 AND arch=?4 "
        "AND n_layer=?5 AND n_expert=?6 AND n_expert_used=?7 AND moe_layers=?8";
    static const char *ins =
        "INSERT INTO model(file_name,file_size,sha256,arch,n_layer,n_expert,n_expert_used,moe_layers,"
        "name,n_expert_shared,score_func,norm_topk,w_scale,n_embd,n_vocab,n_ff_exp) "
        "VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16)";
    char *ml = moe_layers_json(m);
    if (!ml) return ms_error_set(err, MS_ENOMEM, "%s: out of memory", db->path);
    int64_t id = 0;
    for (int pass = 0; pass < 2 && !id; pass++) {
        sqlite3_stmt *st;
        int rc = ms_db_prepare(db, pass ? ins : find, &st, err);
        if (rc) { free(ml); return rc; }
        sqlite3_bind_text(st, 1, m->file_name, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, (int64_t)m->file_size);
        sqlite3_bind_text(st, 3, m->sha256, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, m->arch, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 5, m->n_layer);
        sqlite3_bind_int(st, 6, m->n_expert);
        sqlite3_bind_int(st, 7, m->n_expert_used);
        sqlite3_bind_text(st, 8, ml, -1, SQLITE_STATIC);
        if (pass) {
            sqlite3_bind_text(st, 9, m->name, -1, SQLITE_STATIC);
            sqlite3_bind_int(st, 10, m->n_expert_shared);
            sqlite3_bind_text(st, 11, m->score_func[0] ? m->score_func : "unknown", -1, SQLITE_STATIC);
            sqlite3_bind_int(st, 12, m->norm_topk);
            sqlite3_bind_double(st, 13, m->w_scale);
            sqlite3_bind_int(st, 14, m->n_embd);
            sqlite3_bind_int(st, 15, m->n_vocab);
            sqlite3_bind_int(st, 16, m->n_ff_exp);
        }
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) id = sqlite3_column_int64(st, 0);
        else if (rc == SQLITE_DONE && pass) id = sqlite3_last_insert_rowid(db->h);
        else if (rc != SQLITE_DONE) {
            ms_db_fail(db, err, MS_EDB, "add model");
            sqlite3_finalize(st);
            free(ml);
            return MS_EDB;
        }
        sqlite3_finalize(st);
    }
    free(ml);
    return id;
}

static void utc_now(char *buf, size_t cap)
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int64_t ms_trace_run_new(MsTraceDb *db, const MsTraceRunDesc *d, MsError *err)
{
    if (db->be) return db->be->run_new(db, d, err);
    int64_t set_id = 0;
    int rc;
    sqlite3_stmt *st;
    if (d->parent_run_id > 0) {   /* a clear message, not the foreign key's */
        if ((rc = ms_db_prepare(db, "SELECT 1 FROM run WHERE run_id = ?1", &st, err))) return rc;
        sqlite3_bind_int64(st, 1, d->parent_run_id);
        rc = sqlite3_step(st);
        sqlite3_finalize(st);
        if (rc == SQLITE_DONE)
            return ms_error_set(err, MS_EINVAL, "%s: no run %lld (the parent run)", db->path, (long long)d->parent_run_id);
        if (rc != SQLITE_ROW) return ms_db_fail(db, err, MS_EDB, "find the parent run");
    }
    if (d->interventions && d->interventions[0]) {
        if ((rc = ms_db_prepare(db, "INSERT INTO intervention_set(spec) VALUES(?1) "
                                    "ON CONFLICT(spec) DO UPDATE SET spec=excluded.spec RETURNING set_id", &st, err)))
            return rc;
        sqlite3_bind_text(st, 1, d->interventions, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW) set_id = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        if (!set_id) return ms_db_fail(db, err, MS_EDB, "add intervention set");
    }
    if ((rc = ms_db_prepare(db, "INSERT INTO run(model_id,created,kind,settings,interventions,set_id,"
                                "program_version,parent_run_id,has_probs,has_stats,status,prompts_sha256) "
                                "VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,'incomplete',?11)", &st, err)))
        return rc;
    if (d->prompts_sha256) sqlite3_bind_text(st, 11, d->prompts_sha256, -1, SQLITE_STATIC);
    char now[32];
    utc_now(now, sizeof now);
    sqlite3_bind_int64(st, 1, d->model_id);
    sqlite3_bind_text(st, 2, now, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, d->kind ? d->kind : "trace", -1, SQLITE_STATIC);
    if (d->settings_json) sqlite3_bind_text(st, 4, d->settings_json, -1, SQLITE_STATIC);
    if (set_id) {
        sqlite3_bind_text(st, 5, d->interventions, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 6, set_id);
    }
    sqlite3_bind_text(st, 7, MS_VERSION, -1, SQLITE_STATIC);
    if (d->parent_run_id > 0) sqlite3_bind_int64(st, 8, d->parent_run_id);
    sqlite3_bind_int(st, 9, d->has_probs);
    sqlite3_bind_int(st, 10, d->has_stats);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return ms_db_fail(db, err, MS_EDB, "add run");
    return sqlite3_last_insert_rowid(db->h);
}

int64_t ms_trace_run_find(MsTraceDb *db, const MsTraceRunDesc *d, MsError *err)
{
    if (db->be) return db->be->run_find(db, d, err);
    sqlite3_stmt *st;
    /* settings compared without the prompt file's name: the set is known
     * by its content (prompts_sha256).  A run from before schema 5 has no
     * hash: it matches as it did then, settings (with the name) exactly. */
    int rc = ms_db_prepare(db, "SELECT max(run_id) FROM run WHERE model_id=?1 AND kind=?2 "
                               "AND CASE WHEN prompts_sha256 IS NULL OR ?7 IS NULL THEN settings IS ?3 "
                               "WHEN json_valid(settings) AND json_valid(?3) "
                               "THEN json_remove(settings, '$.prompts') = json_remove(?3, '$.prompts') "
                               "ELSE settings IS ?3 END "
                               "AND coalesce(interventions,'') = coalesce(?4,'') AND has_probs=?5 AND has_stats=?6 "
                               "AND (prompts_sha256 IS ?7 OR prompts_sha256 IS NULL) "
                               "AND (?8 = 0 OR parent_run_id = ?8)",
                           &st, err);
    if (rc) return rc;
    sqlite3_bind_int64(st, 1, d->model_id);
    sqlite3_bind_text(st, 2, d->kind ? d->kind : "trace", -1, SQLITE_STATIC);
    if (d->settings_json) sqlite3_bind_text(st, 3, d->settings_json, -1, SQLITE_STATIC);
    if (d->interventions) sqlite3_bind_text(st, 4, d->interventions, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 5, d->has_probs);
    sqlite3_bind_int(st, 6, d->has_stats);
    if (d->prompts_sha256) sqlite3_bind_text(st, 7, d->prompts_sha256, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 8, d->parent_run_id > 0 ? d->parent_run_id : 0);
    rc = sqlite3_step(st);
    int64_t id = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW) return ms_db_fail(db, err, MS_EDB, "find run");
    return id;
}

int ms_trace_run_set_status(MsTraceDb *db, int64_t run_id, const char *status, MsError *err)
{
    if (!status || (strcmp(status, "complete") && strcmp(status, "incomplete")))
        return ms_error_set(err, MS_EINVAL, "%s: run status must be complete or incomplete", db->path);
    if (db->be) return db->be->run_set_status(db, run_id, status, err);
    sqlite3_stmt *st;
    int rc = ms_db_prepare(db, "UPDATE run SET status = ?2 WHERE run_id = ?1", &st, err);
    if (rc) return rc;
    sqlite3_bind_int64(st, 1, run_id);
    sqlite3_bind_text(st, 2, status, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return ms_db_fail(db, err, MS_EDB, "set the run status");
    if (sqlite3_changes(db->h) != 1) return ms_error_set(err, MS_ENOTFOUND, "%s: no run %lld", db->path, (long long)run_id);
    return 0;
}

int64_t ms_trace_run_join(MsTraceDb *db, const MsTraceRunDesc *d, bool any_status, MsError *err)
{
    if (db->be) return db->be->run_join(db, d, any_status, err);
    /* the write lock first: a second worker waits, then finds this run */
    int rc = ms_db_exec(db, "BEGIN IMMEDIATE", err);
    if (rc) return rc;
    int64_t id = ms_trace_run_find(db, d, err);
    if (id > 0 && !any_status) {
        MsTraceRunInfo ri;
        if ((rc = ms_trace_run_info(db, id, &ri, err)) < 0) id = rc;
        else {
            if (strcmp(ri.status, "incomplete")) id = 0;
            ms_trace_run_info_clear(&ri);
        }
    }
    if (id == 0) id = ms_trace_run_new(db, d, err);
    if (id > 0 && (rc = ms_db_exec(db, "COMMIT", err))) id = rc;
    if (id <= 0) sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
    return id;
}

/* ----------------------------------------------------------------- writer */

/* A growable array; on failure the writer's sticky error is set. */
typedef struct { void *p; size_t n, cap, elem; } Vec;

static void *vec_push(Vec *v, size_t count)
{
    if (v->n + count > v->cap || !v->p) {   /* also for count 0: NULL + 0 is undefined */
        size_t nc = v->cap ? v->cap * 2 : 1024;
        while (nc < v->n + count) nc *= 2;
        void *np = realloc(v->p, nc * v->elem);
        if (!np) return NULL;
        v->p = np;
        v->cap = nc;
    }
    void *r = (char *)v->p + v->n * v->elem;
    v->n += count;
    return r;
}

typedef struct { int32_t pos, layer, k, has_stats, has_argmax; size_t off; size_t seq; } Group;
typedef struct { int32_t pos, layer, n; size_t off; size_t seq; } PGroup;   /* n experts */
typedef struct { int32_t pos, layer; float maxabs; int32_t channel; size_t seq; } HRow;   /* channel −1: unknown */
typedef struct { int32_t pos, id; size_t off, len; bool gen; float lp, ent; } TRow;

struct MsTraceWriter {
    MsTraceDb *db;
    int64_t run_id;
    bool has_probs, has_stats;
    bool active;
    int sticky;                 /* MS_E* from a callback, reported at commit */
    int index;
    char *text; size_t text_len;
    char *labels;
    Vec groups, experts, weights, maxabs, l2, argmax;
    Vec pgroups, halves;        /* binary16 probs then logits per group */
    Vec hidden, tokens, bytes;
    size_t seq;
    int64_t rows;
    sqlite3_stmt *st_prompt, *st_token, *st_route, *st_probs, *st_hidden;
    void *be_w;                 /* another backend's storage state (db->be) */
    char *worker;               /* prompt.worker, NULL = not recorded */
    unsigned char *scratch; size_t scratch_cap;
};

static void vec_free(Vec *v) { free(v->p); v->p = NULL; v->n = v->cap = 0; }

static void writer_reset(MsTraceWriter *w)
{
    w->active = false;
    w->sticky = 0;
    free(w->text); w->text = NULL;
    free(w->labels); w->labels = NULL;
    w->groups.n = w->experts.n = w->weights.n = w->maxabs.n = w->l2.n = w->argmax.n = 0;
    w->pgroups.n = w->halves.n = w->hidden.n = w->tokens.n = w->bytes.n = 0;
    w->seq = 0;
}

MsTraceWriter *ms_trace_writer_new(MsTraceDb *db, int64_t run_id, MsError *err)
{
    MsTraceRunInfo ri;
    if (ms_trace_run_info(db, run_id, &ri, err)) return NULL;
    MsTraceWriter *w = calloc(1, sizeof *w);
    if (!w) {
        ms_trace_run_info_clear(&ri);
        ms_error_set(err, MS_ENOMEM, "%s: out of memory", db->path);
        return NULL;
    }
    w->db = db;
    w->run_id = run_id;
    w->has_probs = ri.has_probs;
    w->has_stats = ri.has_stats;
    ms_trace_run_info_clear(&ri);
    w->groups.elem = sizeof(Group);
    w->experts.elem = w->argmax.elem = sizeof(int32_t);
    w->weights.elem = w->maxabs.elem = w->l2.elem = sizeof(float);
    w->pgroups.elem = sizeof(PGroup);
    w->halves.elem = sizeof(uint16_t);
    w->hidden.elem = sizeof(HRow);
    w->tokens.elem = sizeof(TRow);
    w->bytes.elem = 1;
    if (db->be) {
        if (!(w->be_w = db->be->writer_new(db, run_id, err))) {
            ms_trace_writer_free(w);
            return NULL;
        }
        return w;
    }
    if (ms_db_prepare(db, "INSERT INTO prompt(run_id,idx,text,text_bytes,labels,n_tokens,worker) "
                          "VALUES(?1,?2,?3,?4,?5,?6,?7)", &w->st_prompt, err) ||
        ms_db_prepare(db, "INSERT INTO token(run_id,prompt_id,pos,token_id,piece,piece_bytes,is_generated,"
                          "logprob,entropy) VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9)", &w->st_token, err) ||
        ms_db_prepare(db, "INSERT INTO routing_packed(run_id,prompt_id,pos,layer,experts,weights,out_maxabs,"
                          "out_l2,out_argmax) VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9)", &w->st_route, err) ||
        ms_db_prepare(db, "INSERT INTO router_probs(run_id,prompt_id,pos,layer,probs,logits) "
                          "VALUES(?1,?2,?3,?4,?5,?6)", &w->st_probs, err) ||
        ms_db_prepare(db, "INSERT INTO hidden_stats(run_id,prompt_id,pos,layer,maxabs,channel) "
                          "VALUES(?1,?2,?3,?4,?5,?6)", &w->st_hidden, err)) {
        ms_trace_writer_free(w);
        return NULL;
    }
    return w;
}

void ms_trace_writer_free(MsTraceWriter *w)
{
    if (!w) return;
    writer_reset(w);
    Vec *vs[] = { &w->groups, &w->experts, &w->weights, &w->maxabs, &w->l2, &w->argmax, &w->pgroups,
                  &w->halves, &w->hidden, &w->tokens, &w->bytes };
    for (size_t i = 0; i < MS_ARRAY_LEN(vs); i++) vec_free(vs[i]);
    sqlite3_finalize(w->st_prompt);
    sqlite3_finalize(w->st_token);
    sqlite3_finalize(w->st_route);
    sqlite3_finalize(w->st_probs);
    sqlite3_finalize(w->st_hidden);
    if (w->be_w) w->db->be->writer_free(w->be_w);
    free(w->worker);
    free(w->scratch);
    free(w);
}

int64_t ms_trace_writer_rows(const MsTraceWriter *w) { return w->rows; }

int ms_trace_writer_set_worker(MsTraceWriter *w, const char *worker, MsError *err)
{
    char *c = worker ? strdup(worker) : NULL;
    if (worker && !c) return ms_error_set(err, MS_ENOMEM, "%s: out of memory", w->db->path);
    free(w->worker);
    w->worker = c;
    return 0;
}

/* Buffer one (pos, layer) group. */
static int add_group(MsTraceWriter *w, int pos, int layer, int k, const int32_t *ex, const float *wt,
                     const float *mx, const float *l2, const int32_t *am)
{
    Group *g = vec_push(&w->groups, 1);
    int32_t *e = g ? vec_push(&w->experts, (size_t)k) : NULL;
    float *f = e ? vec_push(&w->weights, (size_t)k) : NULL;
    if (!f) return MS_ENOMEM;
    g->pos = pos;
    g->layer = layer;
    g->k = k;
    g->off = w->experts.n - (size_t)k;
    g->seq = w->seq++;
    memcpy(e, ex, (size_t)k * sizeof *e);
    if (wt) memcpy(f, wt, (size_t)k * sizeof *f);
    else for (int j = 0; j < k; j++) f[j] = NAN;
    g->has_stats = mx && l2;
    /* stats arrays stay parallel to experts so offsets are shared */
    float *a = vec_push(&w->maxabs, (size_t)k), *b = a ? vec_push(&w->l2, (size_t)k) : NULL;
    int32_t *c = b ? vec_push(&w->argmax, (size_t)k) : NULL;
    if (!c) return MS_ENOMEM;
    if (g->has_stats) {
        memcpy(a, mx, (size_t)k * sizeof *a);
        memcpy(b, l2, (size_t)k * sizeof *b);
    }
    /* channels are stored as uint16: a (hypothetical) wider model keeps NULL */
    g->has_argmax = g->has_stats && am;
    for (int j = 0; j < k && g->has_argmax; j++) g->has_argmax = am[j] >= 0 && am[j] <= 65535;
    if (g->has_argmax) memcpy(c, am, (size_t)k * sizeof *c);
    return 0;
}

static void on_routing(void *user, const MsRoutingEvent *ev)
{
    MsTraceWriter *w = user;
    if (!w->active || w->sticky) return;
    if (ev->k < 1 || ev->k > MS_TRACE_MAX_EXPERT || ev->layer < 0 || ev->layer >= MS_TRACE_MAX_LAYER) {
        w->sticky = MS_EINVAL;
        return;
    }
    bool stats = w->has_stats && ev->out_maxabs && ev->out_l2;
    for (int t = 0; t < ev->n_tokens; t++) {
        size_t o = (size_t)t * (size_t)ev->k;
        /* only the experts the token used (ser leaves some out): the packed
         * row's length carries its own count */
        int nu = ev->n_used ? ev->n_used[t] : ev->k;
        if (nu < 1 || nu > ev->k) {
            w->sticky = MS_EINVAL;
            return;
        }
        if (add_group(w, ev->pos[t], ev->layer, nu, ev->experts + o, ev->weights ? ev->weights + o : NULL,
                      stats ? ev->out_maxabs + o : NULL, stats ? ev->out_l2 + o : NULL,
                      stats && ev->out_argmax ? ev->out_argmax + o : NULL)) {
            w->sticky = MS_ENOMEM;
            return;
        }
        if (w->has_probs && ev->probs && ev->logits) {
            size_t E = (size_t)ev->n_expert;
            PGroup *pg = vec_push(&w->pgroups, 1);
            uint16_t *h = pg ? vec_push(&w->halves, 2 * E) : NULL;
            if (!h) { w->sticky = MS_ENOMEM; return; }
            pg->pos = ev->pos[t];
            pg->layer = ev->layer;
            pg->n = ev->n_expert;
            pg->off = w->halves.n - 2 * E;
            pg->seq = w->seq++;
            const float *p = ev->probs + (size_t)t * E, *z = ev->logits + (size_t)t * E;
            for (size_t e = 0; e < E; e++) {
                h[e] = ms_fp32_to_fp16(p[e]);
                h[E + e] = ms_fp32_to_fp16(z[e]);
            }
        }
    }
}

static void on_hidden(void *user, const MsHiddenEvent *ev)
{
    MsTraceWriter *w = user;
    if (!w->active || w->sticky || !w->has_stats) return;
    HRow *r = vec_push(&w->hidden, (size_t)ev->n_tokens);
    if (!r) { w->sticky = MS_ENOMEM; return; }
    for (int t = 0; t < ev->n_tokens; t++) {
        r[t].pos = ev->pos[t];
        r[t].layer = ev->layer;
        r[t].maxabs = ev->maxabs[t];
        r[t].channel = ev->argmax ? ev->argmax[t] : -1;
        r[t].seq = w->seq++;
    }
}

MsObserver ms_trace_writer_observer(MsTraceWriter *w)
{
    MsObserver o = { on_routing, on_hidden, w };
    return o;
}

int ms_trace_writer_begin(MsTraceWriter *w, int index, const char *text, size_t len,
                          const char *labels_json, MsError *err)
{
    writer_reset(w);
    if (index < 0) return ms_error_set(err, MS_EINVAL, "%s: negative prompt index", w->db->path);
    w->text = malloc(len + 1);
    w->labels = labels_json ? strdup(labels_json) : NULL;
    if (!w->text || (labels_json && !w->labels)) {
        writer_reset(w);
        return ms_error_set(err, MS_ENOMEM, "%s: out of memory", w->db->path);
    }
    memcpy(w->text, text, len);
    w->text[len] = '\0';
    w->text_len = len;
    w->index = index;
    w->active = true;
    return 0;
}

int ms_trace_writer_token(MsTraceWriter *w, int pos, int32_t token_id, const char *piece, size_t piece_len,
                          bool is_generated, float logprob, float entropy, MsError *err)
{
    if (!w->active) return ms_error_set(err, MS_EINVAL, "%s: token outside a prompt", w->db->path);
    TRow *t = vec_push(&w->tokens, 1);
    char *b = t ? vec_push(&w->bytes, piece_len) : NULL;
    if (!t || (!b && piece_len)) return ms_error_set(err, MS_ENOMEM, "%s: out of memory", w->db->path);
    t->pos = pos;
    t->id = token_id;
    t->off = w->bytes.n - piece_len;
    t->len = piece_len;
    t->gen = is_generated;
    t->lp = logprob;
    t->ent = entropy;
    if (piece_len) memcpy(b, piece, piece_len);
    return 0;
}

int ms_trace_writer_route(MsTraceWriter *w, int pos, int layer, int k, const int32_t *experts,
                          const float *weights, MsError *err)
{
    if (!w->active) return ms_error_set(err, MS_EINVAL, "%s: routing outside a prompt", w->db->path);
    if (k < 1 || k > MS_TRACE_MAX_EXPERT || layer < 0 || layer >= MS_TRACE_MAX_LAYER || pos < 0)
        return ms_error_set(err, MS_EINVAL, "%s: bad routing group (pos %d, layer %d, k %d)",
                            w->db->path, pos, layer, k);
    if (add_group(w, pos, layer, k, experts, weights, NULL, NULL, NULL))
        return ms_error_set(err, MS_ENOMEM, "%s: out of memory", w->db->path);
    return 0;
}

void ms_trace_writer_abort(MsTraceWriter *w) { writer_reset(w); }

static int cmp_group(const void *a, const void *b)
{
    const Group *x = a, *y = b;
    if (x->pos != y->pos) return x->pos < y->pos ? -1 : 1;
    if (x->layer != y->layer) return x->layer < y->layer ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}
static int cmp_pgroup(const void *a, const void *b)
{
    const PGroup *x = a, *y = b;
    if (x->pos != y->pos) return x->pos < y->pos ? -1 : 1;
    if (x->layer != y->layer) return x->layer < y->layer ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}
static int cmp_hidden(const void *a, const void *b)
{
    const HRow *x = a, *y = b;
    if (x->pos != y->pos) return x->pos < y->pos ? -1 : 1;
    if (x->layer != y->layer) return x->layer < y->layer ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}
static int cmp_token(const void *a, const void *b)
{
    const TRow *x = a, *y = b;
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

static unsigned char *scratch(MsTraceWriter *w, size_t n)
{
    if (n > w->scratch_cap) {
        size_t nc = MS_MAX(n, 2 * w->scratch_cap);
        unsigned char *p = realloc(w->scratch, nc);
        if (!p) return NULL;
        w->scratch = p;
        w->scratch_cap = nc;
    }
    return w->scratch;
}

static int step_reset(MsTraceDb *db, sqlite3_stmt *st, const char *what, MsError *err)
{
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE) {
        ms_db_fail(db, err, rc == SQLITE_CONSTRAINT ? MS_EINVAL : MS_EDB, what);
        sqlite3_reset(st);
        return rc == SQLITE_CONSTRAINT ? MS_EINVAL : MS_EDB;
    }
    sqlite3_reset(st);
    return 0;
}

/* ------------------------------------------------- the SQLite row sink */

static int sq_prompt(void *u, int64_t run_id, int index, const char *text, size_t text_len, const char *bytes,
                     size_t n_bytes, const char *labels, int64_t n_tokens, const char *worker, int64_t *prompt_id,
                     MsError *err)
{
    MsTraceWriter *w = u;
    sqlite3_stmt *st = w->st_prompt;
    sqlite3_bind_int64(st, 1, run_id);
    sqlite3_bind_int(st, 2, index);
    sqlite3_bind_text(st, 3, text, (int)text_len, SQLITE_STATIC);
    sqlite3_bind_blob(st, 4, bytes, (int)n_bytes, SQLITE_STATIC);
    if (labels) sqlite3_bind_text(st, 5, labels, -1, SQLITE_STATIC);
    else sqlite3_bind_null(st, 5);
    sqlite3_bind_int64(st, 6, n_tokens);
    if (worker) sqlite3_bind_text(st, 7, worker, -1, SQLITE_STATIC);
    else sqlite3_bind_null(st, 7);
    int rc = step_reset(w->db, st, "add prompt", err);
    sqlite3_clear_bindings(st);
    if (!rc) *prompt_id = sqlite3_last_insert_rowid(w->db->h);
    return rc;
}

static int sq_token(void *u, int64_t run_id, int64_t prompt_id, int pos, int32_t token_id, const char *piece,
                    size_t piece_len, const char *bytes, size_t n_bytes, bool is_generated, float logprob,
                    float entropy, MsError *err)
{
    MsTraceWriter *w = u;
    sqlite3_stmt *st = w->st_token;
    sqlite3_bind_int64(st, 1, run_id);
    sqlite3_bind_int64(st, 2, prompt_id);
    sqlite3_bind_int(st, 3, pos);
    sqlite3_bind_int(st, 4, token_id);
    sqlite3_bind_text(st, 5, piece, (int)piece_len, SQLITE_STATIC);
    sqlite3_bind_blob(st, 6, n_bytes ? bytes : "", (int)n_bytes, SQLITE_STATIC);
    sqlite3_bind_int(st, 7, is_generated);
    if (isnan(logprob)) sqlite3_bind_null(st, 8); else sqlite3_bind_double(st, 8, logprob);
    if (isnan(entropy)) sqlite3_bind_null(st, 9); else sqlite3_bind_double(st, 9, entropy);
    return step_reset(w->db, st, "add token", err);
}

static void bind_blob_or_null(sqlite3_stmt *st, int i, const unsigned char *p, int n)
{
    if (p) sqlite3_bind_blob(st, i, p, n, SQLITE_STATIC);
    else sqlite3_bind_null(st, i);
}

static int sq_route(void *u, int64_t run_id, int64_t prompt_id, int pos, int layer, int k,
                    const unsigned char *experts, const unsigned char *weights, const unsigned char *maxabs,
                    const unsigned char *l2, const unsigned char *argmax, MsError *err)
{
    MsTraceWriter *w = u;
    sqlite3_stmt *st = w->st_route;
    sqlite3_bind_int64(st, 1, run_id);
    sqlite3_bind_int64(st, 2, prompt_id);
    sqlite3_bind_int(st, 3, pos);
    sqlite3_bind_int(st, 4, layer);
    sqlite3_bind_blob(st, 5, experts, 2 * k, SQLITE_STATIC);
    bind_blob_or_null(st, 6, weights, 4 * k);
    bind_blob_or_null(st, 7, maxabs, 4 * k);
    bind_blob_or_null(st, 8, l2, 4 * k);
    bind_blob_or_null(st, 9, argmax, 2 * k);
    return step_reset(w->db, st, "add routing", err);
}

static int sq_probs(void *u, int64_t run_id, int64_t prompt_id, int pos, int layer, int n_expert,
                    const unsigned char *probs, const unsigned char *logits, MsError *err)
{
    MsTraceWriter *w = u;
    sqlite3_stmt *st = w->st_probs;
    sqlite3_bind_int64(st, 1, run_id);
    sqlite3_bind_int64(st, 2, prompt_id);
    sqlite3_bind_int(st, 3, pos);
    sqlite3_bind_int(st, 4, layer);
    sqlite3_bind_blob(st, 5, probs, 2 * n_expert, SQLITE_STATIC);
    sqlite3_bind_blob(st, 6, logits, 2 * n_expert, SQLITE_STATIC);
    return step_reset(w->db, st, "add router_probs", err);
}

static int sq_hidden(void *u, int64_t run_id, int64_t prompt_id, int pos, int layer, double maxabs, int channel,
                     MsError *err)
{
    MsTraceWriter *w = u;
    sqlite3_stmt *st = w->st_hidden;
    sqlite3_bind_int64(st, 1, run_id);
    sqlite3_bind_int64(st, 2, prompt_id);
    sqlite3_bind_int(st, 3, pos);
    sqlite3_bind_int(st, 4, layer);
    sqlite3_bind_double(st, 5, maxabs);
    if (channel >= 0) sqlite3_bind_int(st, 6, channel);
    else sqlite3_bind_null(st, 6);
    return step_reset(w->db, st, "add hidden_stats", err);
}

static const MsDbSink sqlite_sink = { sq_prompt, sq_token, sq_route, sq_probs, sq_hidden };

/* The buffered prompt as rows, in write order, into a backend's sink. */
static int write_prompt(MsTraceWriter *w, const MsDbSink *sk, void *u, int64_t *prompt_id, MsError *err)
{
    MsTraceDb *db = w->db;
    int rc;
    size_t tl;
    char *txt = ms_db_text_render(w->text, w->text_len, &tl);
    if (!txt) return ms_error_set(err, MS_ENOMEM, "%s: out of memory", db->path);
    int64_t pid = 0;
    rc = sk->prompt(u, w->run_id, w->index, txt, tl, w->text, w->text_len, w->labels, (int64_t)w->tokens.n, w->worker,
                    &pid, err);
    free(txt);
    if (rc) return rc;
    *prompt_id = pid;

    TRow *tk = w->tokens.p;
    if (w->tokens.n) qsort(tk, w->tokens.n, sizeof *tk, cmp_token);
    for (size_t i = 0; i < w->tokens.n; i++) {
        const char *pb = (const char *)w->bytes.p + tk[i].off;
        char *pt = ms_db_text_render(pb, tk[i].len, &tl);
        if (!pt) return ms_error_set(err, MS_ENOMEM, "%s: out of memory", db->path);
        rc = sk->token(u, w->run_id, pid, tk[i].pos, tk[i].id, pt, tl, pb, tk[i].len, tk[i].gen, tk[i].lp, tk[i].ent,
                       err);
        free(pt);
        if (rc) return rc;
    }

    Group *g = w->groups.p;
    if (w->groups.n) qsort(g, w->groups.n, sizeof *g, cmp_group);
    const int32_t *ex = w->experts.p;
    const float *wt = w->weights.p, *mx = w->maxabs.p, *l2 = w->l2.p;
    const int32_t *am = w->argmax.p;
    for (size_t i = 0; i < w->groups.n; i++) {
        size_t k = (size_t)g[i].k;
        unsigned char *s = scratch(w, k * 16);
        if (!s) return ms_error_set(err, MS_ENOMEM, "%s: out of memory", db->path);
        bool have_w = false;
        for (size_t j = 0; j < k; j++) {
            int32_t e = ex[g[i].off + j];
            if (e < 0 || e > MS_TRACE_MAX_EXPERT)
                return ms_error_set(err, MS_EINVAL, "%s: expert id %d out of range (pos %d, layer %d)",
                                    db->path, e, g[i].pos, g[i].layer);
            ms_put_u16(s + 2 * j, (uint32_t)e);
            float f = wt[g[i].off + j];
            if (!isnan(f)) have_w = true;
            ms_put_f32(s + 2 * k + 4 * j, f);
            if (g[i].has_stats) {
                ms_put_f32(s + 6 * k + 4 * j, mx[g[i].off + j]);
                ms_put_f32(s + 10 * k + 4 * j, l2[g[i].off + j]);
            }
            if (g[i].has_argmax) ms_put_u16(s + 14 * k + 2 * j, (uint32_t)am[g[i].off + j]);
        }
        if ((rc = sk->route(u, w->run_id, pid, g[i].pos, g[i].layer, (int)k, s, have_w ? s + 2 * k : NULL,
                            g[i].has_stats ? s + 6 * k : NULL, g[i].has_stats ? s + 10 * k : NULL,
                            g[i].has_argmax ? s + 14 * k : NULL, err))) {
            if (rc == MS_EINVAL)
                ms_error_set(err, MS_EINVAL, "%s: routing of pos %d layer %d recorded twice in one prompt",
                             db->path, g[i].pos, g[i].layer);
            return rc;
        }
        w->rows += (int64_t)k;
    }

    PGroup *pg = w->pgroups.p;
    if (w->pgroups.n) qsort(pg, w->pgroups.n, sizeof *pg, cmp_pgroup);
    const uint16_t *hv = w->halves.p;
    for (size_t i = 0; i < w->pgroups.n; i++) {
        size_t E = (size_t)pg[i].n;
        unsigned char *s = scratch(w, 4 * E);
        if (!s) return ms_error_set(err, MS_ENOMEM, "%s: out of memory", db->path);
        for (size_t e = 0; e < 2 * E; e++) ms_put_u16(s + 2 * e, hv[pg[i].off + e]);
        if ((rc = sk->probs(u, w->run_id, pid, pg[i].pos, pg[i].layer, (int)E, s, s + 2 * E, err))) return rc;
    }

    HRow *hr = w->hidden.p;
    if (w->hidden.n) qsort(hr, w->hidden.n, sizeof *hr, cmp_hidden);
    for (size_t i = 0; i < w->hidden.n; i++)
        if ((rc = sk->hidden(u, w->run_id, pid, hr[i].pos, hr[i].layer, hr[i].maxabs, hr[i].channel, err)))
            return rc;
    return 0;
}

int ms_trace_writer_commit(MsTraceWriter *w, int64_t *prompt_id, MsError *err)
{
    MsTraceDb *db = w->db;
    if (!w->active) return ms_error_set(err, MS_EINVAL, "%s: commit without a prompt", db->path);
    if (w->sticky) {
        int code = w->sticky;
        writer_reset(w);
        return ms_error_set(err, code, "%s: recording routing failed: %s", db->path, ms_strerror(code));
    }
    int64_t pid = 0;
    if (db->be) {   /* the backend's transaction and row sink */
        const MsDbBackend *be = db->be;
        int rc = be->writer_begin(w->be_w, err);
        if (!rc) rc = write_prompt(w, be->sink, w->be_w, &pid, err);
        int rc2 = be->writer_end(w->be_w, rc == 0, rc ? NULL : err);
        if (!rc) rc = rc2;
        writer_reset(w);
        if (!rc && prompt_id) *prompt_id = pid;
        return rc;
    }
    /* own transaction normally; a savepoint inside a caller's (imports) */
    bool outer = sqlite3_get_autocommit(db->h);
    int rc = ms_db_exec(db, outer ? "BEGIN IMMEDIATE" : "SAVEPOINT ms_prompt", err);
    if (!rc) rc = write_prompt(w, &sqlite_sink, w, &pid, err);
    if (!rc) rc = ms_db_exec(db, outer ? "COMMIT" : "RELEASE ms_prompt", err);
    if (rc) sqlite3_exec(db->h, outer ? "ROLLBACK" : "ROLLBACK TO ms_prompt; RELEASE ms_prompt", NULL, NULL, NULL);
    writer_reset(w);
    if (!rc && prompt_id) *prompt_id = pid;
    return rc;
}
