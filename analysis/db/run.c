/* run.c — plumbing shared by the db-facing modules: run layout, the
 * token-grouping routing stream, the decoded routing cache, progress and
 * cancel, result-table writing, and the dispatch of ms_analyze and
 * ms_analyze_all. */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sys/mman.h>

#include "result-json.h"
#include "run-internal.h"

static double now_s(clockid_t c)
{
    struct timespec ts;
    clock_gettime(c, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ------------------------------------------------------------- progress */

void an_progress_init(AnProgress *p, const MsAnOptions *o, int64_t tokens_total, int modules)
{
    memset(p, 0, sizeof *p);
    p->fn = o->progress;
    p->user = o->progress_user;
    p->owner = pthread_self();
    p->t0 = now_s(CLOCK_MONOTONIC);
    p->stage = "";
    atomic_init(&p->tokens, 0);
    atomic_init(&p->done, 0);
    p->tokens_total = tokens_total > 0 ? tokens_total : 0;
    p->total = modules;
    /* about 200 reports over the whole call */
    p->step = MS_MAX(1, p->tokens_total / 200);
    p->last_tokens = -1;
    p->last_done = -1;
}

void an_progress_report(AnProgress *p, bool force)
{
    if (!p || !p->fn || !pthread_equal(pthread_self(), p->owner)) return;
    int64_t tok = MS_MIN((int64_t)atomic_load(&p->tokens), p->tokens_total);
    int done = atomic_load(&p->done);
    if (!force && p->last_tokens >= 0 && tok - p->last_tokens < p->step && done == p->last_done &&
        p->stage == p->last_stage)
        return;
    if (p->last_tokens >= 0 && tok == p->last_tokens && done == p->last_done && p->stage == p->last_stage)
        return;   /* nothing new: never the same report twice */
    double el = now_s(CLOCK_MONOTONIC) - p->t0;
    MsProgress pr = {
        .stage = p->stage,
        .done = done,
        .total = p->total,
        .tokens = tok,
        .tokens_total = p->tokens_total,
        .elapsed_s = el,
        .tokens_per_s = el > 0 ? (double)tok / el : 0,
        .eta_s = tok > 0 && p->tokens_total > 0 ? el * (double)(p->tokens_total - tok) / (double)tok : -1,
    };
    p->last_tokens = tok;
    p->last_done = done;
    p->last_stage = p->stage;
    p->fn(p->user, &pr);
}

void an_meter_add(AnMeter *m, int64_t n)
{
    if (!m || n <= 0) return;
    n = MS_MIN(n, m->total - m->done);
    if (n <= 0) return;
    m->done += n;
    if (m->p) {
        atomic_fetch_add(&m->p->tokens, n);
        an_progress_report(m->p, false);
    }
}

void an_meter_fill(AnMeter *m)
{
    if (m) an_meter_add(m, m->total - m->done);
}

int an_poll(const AnRun *r, MsError *err)
{
    if (ms_cancel_requested(r->cancel)) return ms_error_set(err, MS_ECANCELLED, "analysis cancelled");
    return 0;
}

enum { AN_POLL_TOKENS = 1024 };

int an_pass_tick(const AnRun *r, AnPass *p, MsError *err)
{
    p->n++;
    if (p->n % AN_POLL_TOKENS) return 0;
    int64_t cap = MS_MIN(p->n, r->info.n_tokens);
    if (cap > p->counted) {
        an_meter_add(r->meter, cap - p->counted);
        p->counted = cap;
    }
    return an_poll(r, err);
}

void an_pass_end(const AnRun *r, AnPass *p)
{
    /* a pass counts as the run's tokens, whatever it streamed */
    if (r->info.n_tokens > p->counted) an_meter_add(r->meter, r->info.n_tokens - p->counted);
    p->counted = MS_MAX(p->counted, r->info.n_tokens);
}

MsAnHead an_head(const AnRun *r, const MsAnOptions *o)
{
    return (MsAnHead){.run_id = r->run_id, .layer = o->layer >= 0 ? o->layer : -1, .n_layer = r->n_layer,
                      .n_expert = r->E};
}

/* ------------------------------------------------------------------ run */

int an_run_open(MsTraceDb *db, int64_t run_id, AnRun *r, MsError *err)
{
    memset(r, 0, sizeof *r);
    if (run_id <= 0) {
        int64_t *ids = NULL;
        int n = 0;
        int rc = ms_trace_runs(db, &ids, &n, err);
        if (rc < 0) return rc;
        if (n == 0) {
            free(ids);
            return ms_error_set(err, MS_ENOTFOUND, "%s: no runs in this database", ms_trace_path(db));
        }
        run_id = ids[n - 1];
        free(ids);
    }
    int rc = ms_trace_run_info(db, run_id, &r->info, err);
    if (rc < 0) return rc;
    r->run_id = run_id;
    const MsTraceModel *m = &r->info.model;
    r->E = m->n_expert;
    r->k = m->n_expert_used;
    r->n_layer = m->n_layer;
    if (r->E < 1 || r->k < 1 || r->k > r->E || r->n_layer < 1 || r->n_layer > MS_TRACE_MAX_LAYER) {
        ms_trace_run_info_clear(&r->info);
        return ms_error_set(err, MS_EFORMAT, "%s: run %lld: model shape E=%d k=%d layers=%d unusable",
                            ms_trace_path(db), (long long)run_id, r->E, r->k, r->n_layer);
    }
    /* a top-k override can select more than the model's k experts: size
     * the per-token slots for the largest possible selection then */
    if (r->info.interventions && strstr(r->info.interventions, "top-k")) r->k = r->E;
    bool any = false;
    for (int l = 0; l < r->n_layer; l++) any |= m->is_moe[l] != 0;
    for (int l = 0; l < MS_TRACE_MAX_LAYER; l++) r->layer_slot[l] = -1;
    for (int l = 0; l < r->n_layer; l++)
        if (!any || m->is_moe[l]) {
            r->layer_slot[l] = r->n_slot;
            r->slot_layer[r->n_slot++] = l;
        }
    /* prompts */
    MsTraceCursor *c = ms_trace_prompts(db, run_id, err);
    if (!c) { an_run_close(r); return err ? err->code : MS_EDB; }
    int cap = 0;
    MsTracePrompt p;
    while ((rc = ms_trace_prompts_next(c, &p, err)) == 1) {
        if (r->n_prompt == cap) {
            cap = cap ? cap * 2 : 64;
            int64_t *a = realloc(r->prompt_id, (size_t)cap * sizeof *a);
            if (a) r->prompt_id = a;
            json_t **b = realloc(r->labels, (size_t)cap * sizeof *b);
            if (b) r->labels = b;
            int *t = realloc(r->prompt_tokens, (size_t)cap * sizeof *t);
            if (t) r->prompt_tokens = t;
            if (!a || !b || !t) { rc = ms_error_set(err, MS_ENOMEM, "out of memory"); break; }
        }
        r->prompt_id[r->n_prompt] = p.prompt_id;
        r->prompt_tokens[r->n_prompt] = p.n_tokens;
        json_t *lab = NULL;
        if (p.labels_json && *p.labels_json) {
            lab = json_loads(p.labels_json, 0, NULL);
            if (lab && !json_is_object(lab)) { json_decref(lab); lab = NULL; }
        }
        r->labels[r->n_prompt++] = lab;
    }
    ms_trace_cursor_free(c);
    if (rc < 0) { an_run_close(r); return rc; }
    /* prompt ids come in index order; keep a sorted copy test for lookups */
    for (int i = 1; i < r->n_prompt; i++)
        if (r->prompt_id[i] <= r->prompt_id[i - 1]) {
            an_run_close(r);
            return ms_error_set(err, MS_EFORMAT, "%s: run %lld: prompt ids not ascending in index order",
                                ms_trace_path(db), (long long)run_id);
        }
    return 0;
}

void an_run_close(AnRun *r)
{
    if (!r) return;
    if (r->cache) munmap((void *)r->cache, r->cache_len);
    if (r->cache_vals) munmap((void *)r->cache_vals, r->cache_vals_len);
    if (r->cache2) munmap((void *)r->cache2, r->cache2_len);
    if (r->cache_vals2) munmap((void *)r->cache_vals2, r->cache_vals2_len);
    for (int i = 0; i < r->n_prompt; i++) json_decref(r->labels[i]);
    free(r->labels);
    free(r->prompt_id);
    free(r->prompt_tokens);
    ms_trace_run_info_clear(&r->info);
    memset(r, 0, sizeof *r);
}

int an_run_prompt_index(const AnRun *r, int64_t pid)
{
    int lo = 0, hi = r->n_prompt - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (r->prompt_id[mid] == pid) return mid;
        if (r->prompt_id[mid] < pid) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}

const char *an_label(const AnRun *r, int pi, const char *key, char *buf, size_t n)
{
    buf[0] = 0;
    if (pi < 0 || pi >= r->n_prompt || !r->labels[pi]) return buf;
    json_t *v = json_object_get(r->labels[pi], key);
    if (json_is_string(v)) snprintf(buf, n, "%s", json_string_value(v));
    else if (json_is_integer(v)) snprintf(buf, n, "%lld", (long long)json_integer_value(v));
    else if (json_is_real(v)) snprintf(buf, n, "%g", json_real_value(v));
    else if (json_is_boolean(v)) snprintf(buf, n, "%s", json_is_true(v) ? "true" : "false");
    return buf;
}

int an_slot_range(const AnRun *r, int layer, int *lo, int *hi, MsError *err)
{
    if (layer < 0) {
        *lo = 0;
        *hi = r->n_slot;
        return 0;
    }
    if (layer >= r->n_layer || r->layer_slot[layer] < 0)
        return ms_error_set(err, MS_EINVAL, "run %lld: layer %d is not a MoE layer (layers 0..%d)",
                            (long long)r->run_id, layer, r->n_layer - 1);
    *lo = r->layer_slot[layer];
    *hi = *lo + 1;
    return 0;
}

/* --------------------------------------------------------------- stream */

static inline float le_f32(const unsigned char *p)
{
    uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

struct AnStream {
    MsTraceDb *db;       /* for messages naming the file */
    const AnRun *r;
    MsTraceCursor *rc, *tc;
    /* streamed from SQLite: one packed row per (token, MoE layer); a row
     * of the next token is held (its blobs stay valid until the next read) */
    MsTraceRoutePacked row;
    bool held, eof;
    int32_t *ids;
    float *w, *mx;
    int *n;
    int64_t cur_pid, last_pid;
    int32_t cur_pos;
    bool have_cur;
    bool with_tokens, tok_eof, tok_valid;
    MsTraceToken tok;
    /* decoded-cache replay: next token index, values wanted */
    bool from_cache, want_w, want_mx;
    int64_t ci;
    AnPass pass;
    bool ended;
};

AnStream *an_stream_new(MsTraceDb *db, const AnRun *r, bool with_tokens, unsigned need, MsError *err)
{
    AnStream *s = calloc(1, sizeof *s);
    if (!s) { ms_error_set(err, MS_ENOMEM, "out of memory"); return NULL; }
    s->r = r;
    s->db = db;
    size_t cells = (size_t)r->n_slot * r->k;
    s->ids = malloc(sizeof *s->ids * cells);
    s->w = malloc(sizeof *s->w * cells);
    s->mx = malloc(sizeof *s->mx * cells);
    s->n = calloc((size_t)r->n_slot, sizeof *s->n);
    if (!s->ids || !s->w || !s->mx || !s->n) {
        an_stream_free(s);
        ms_error_set(err, MS_ENOMEM, "out of memory");
        return NULL;
    }
    if (r->cache) {
        s->from_cache = true;
        s->want_w = (need & AN_NEED_W) && r->cache_w;
        s->want_mx = (need & AN_NEED_MX) && r->cache_mx;
        /* values not replayed stay NaN for the whole stream */
        for (size_t i = 0; i < cells; i++) s->w[i] = s->mx[i] = NAN;
    } else {
        s->rc = ms_trace_routing(db, r->run_id, 0, err);
        if (!s->rc) { an_stream_free(s); return NULL; }
    }
    s->with_tokens = with_tokens;
    if (with_tokens) {
        s->tc = ms_trace_tokens(db, r->run_id, 0, err);
        if (!s->tc) { an_stream_free(s); return NULL; }
    }
    s->last_pid = -1;
    return s;
}

void an_stream_free(AnStream *s)
{
    if (!s) return;
    ms_trace_cursor_free(s->rc);
    ms_trace_cursor_free(s->tc);
    free(s->ids);
    free(s->w);
    free(s->mx);
    free(s->n);
    free(s);
}

static void stream_reset_token(AnStream *s)
{
    size_t cells = (size_t)s->r->n_slot * s->r->k;
    for (size_t i = 0; i < cells; i++) {
        s->ids[i] = -1;
        s->w[i] = NAN;
        s->mx[i] = NAN;
    }
    memset(s->n, 0, sizeof *s->n * s->r->n_slot);
}

static int key_cmp(int64_t p1, int32_t q1, int64_t p2, int32_t q2)
{
    if (p1 != p2) return p1 < p2 ? -1 : 1;
    return (q1 > q2) - (q1 < q2);
}

static int stream_next_cached(AnStream *s, AnTok *t, MsError *err);
static int stream_emit(AnStream *s, AnTok *t, MsError *err);
static int stream_next_raw(AnStream *s, AnTok *t, MsError *err);

int an_stream_next(AnStream *s, AnTok *t, MsError *err)
{
    int rc = stream_next_raw(s, t, err);
    if (rc == 1) {
        int pc = an_pass_tick(s->r, &s->pass, err);
        if (pc < 0) return pc;
    } else if (rc == 0 && !s->ended) {
        s->ended = true;
        an_pass_end(s->r, &s->pass);
    }
    return rc;
}

static int stream_next_raw(AnStream *s, AnTok *t, MsError *err)
{
    const AnRun *r = s->r;
    if (s->from_cache) return stream_next_cached(s, t, err);
    /* packed rows read as they are stored (no per-rank unpacking): the
     * same decode and checks as decode_range */
    for (;;) {
        if (!s->held && !s->eof) {
            int got = ms_trace_routing_next_packed(s->rc, &s->row, err);
            if (got < 0) return got;
            s->eof = got == 0;
            s->held = got == 1;
        }
        const MsTraceRoutePacked *row = s->held ? &s->row : NULL;
        if (s->have_cur && (!row || row->prompt_id != s->cur_pid || row->pos != s->cur_pos))
            break;   /* the current token is complete */
        if (!row) return 0;
        if (!s->have_cur) {
            stream_reset_token(s);
            s->cur_pid = row->prompt_id;
            s->cur_pos = row->pos;
            s->have_cur = true;
        }
        s->held = false;
        if (row->layer < 0 || row->layer >= r->n_layer || r->layer_slot[row->layer] < 0)
            return ms_error_set(err, MS_EFORMAT, "%s: run %lld: routing row at layer %d, not a MoE layer",
                                ms_trace_path(s->db), (long long)r->run_id, row->layer);
        int sl = r->layer_slot[row->layer];
        for (int j = 0; j < row->k; j++) {
            int e = (int)an_le_u16(row->experts + 2 * j);
            if (e >= r->E || j >= r->k)
                return ms_error_set(err, MS_EFORMAT, "%s: run %lld: routing row (layer %d, rank %d, expert %d) "
                                    "outside E=%d k=%d", ms_trace_path(s->db), (long long)r->run_id, row->layer, j,
                                    e, r->E, r->k);
            size_t ix = (size_t)sl * r->k + j;
            if (s->ids[ix] < 0) s->n[sl]++;
            s->ids[ix] = e;
            s->w[ix] = row->weights ? le_f32(row->weights + 4 * j) : NAN;
            s->mx[ix] = row->maxabs ? le_f32(row->maxabs + 4 * j) : NAN;
        }
    }
    return stream_emit(s, t, err);
}

static int stream_emit(AnStream *s, AnTok *t, MsError *err)
{
    const AnRun *r = s->r;
    /* emit; compact each slot so the n[sl] ids come first in rank order
     * (cache records were stored compacted) */
    for (int sl = 0; sl < r->n_slot && !s->from_cache; sl++) {
        int32_t *ids = s->ids + (size_t)sl * r->k;
        float *w = s->w + (size_t)sl * r->k, *mx = s->mx + (size_t)sl * r->k;
        int j = 0;
        for (int i = 0; i < r->k; i++)
            if (ids[i] >= 0) {
                ids[j] = ids[i];
                w[j] = w[i];
                mx[j] = mx[i];
                j++;
            }
        for (int i = j; i < r->k; i++) ids[i] = -1;
    }
    memset(t, 0, sizeof *t);
    t->prompt_id = s->cur_pid;
    t->pos = s->cur_pos;
    t->prompt_index = an_run_prompt_index(r, s->cur_pid);
    t->first_of_prompt = s->cur_pid != s->last_pid;
    s->last_pid = s->cur_pid;
    t->ids = s->ids;
    t->w = s->w;
    t->maxabs = s->mx;
    t->n = s->n;
    s->have_cur = false;
    if (s->with_tokens) {
        /* tokens come in the same (prompt, pos) order; skip tokens without routing */
        while (!s->tok_eof && (!s->tok_valid ||
                               key_cmp(s->tok.prompt_id, s->tok.pos, t->prompt_id, t->pos) < 0)) {
            int rc = ms_trace_tokens_next(s->tc, &s->tok, err);
            if (rc < 0) return rc;
            if (rc == 0) s->tok_eof = true;
            s->tok_valid = rc == 1;
        }
        if (s->tok_valid && s->tok.prompt_id == t->prompt_id && s->tok.pos == t->pos) {
            t->has_token = true;
            t->token_id = s->tok.token_id;
            t->piece = s->tok.piece;
            t->piece_len = s->tok.piece_len;
            t->is_generated = s->tok.is_generated;
        }
    }
    return 1;
}

static size_t cache_rec_size(const AnRun *r)
{
    return 12 + (size_t)r->n_slot + 2 * (size_t)r->n_slot * r->k;
}

static size_t cache_vals_size(const AnRun *r)
{
    return ((r->cache_w ? 1 : 0) + (r->cache_mx ? 1 : 0)) * sizeof(float) * (size_t)r->n_slot * r->k;
}

static int stream_next_cached(AnStream *s, AnTok *t, MsError *err)
{
    const AnRun *r = s->r;
    if (s->ci >= r->cache_tokens) return 0;
    size_t cells = (size_t)r->n_slot * r->k;
    bool second = s->ci >= r->cache_split;
    size_t ci = (size_t)(second ? s->ci - r->cache_split : s->ci);
    const unsigned char *p = (second ? r->cache2 : r->cache) + ci * cache_rec_size(r);
    int64_t pid;
    int32_t pos;
    memcpy(&pid, p, 8);
    memcpy(&pos, p + 8, 4);
    p += 12;
    for (int sl = 0; sl < r->n_slot; sl++) s->n[sl] = p[sl];
    p += r->n_slot;
    for (size_t i = 0; i < cells; i++) {
        int16_t v;
        memcpy(&v, p + 2 * i, 2);
        s->ids[i] = v;
    }
    if (s->want_w || s->want_mx) {
        const unsigned char *v = (second ? r->cache_vals2 : r->cache_vals) + ci * cache_vals_size(r);
        if (r->cache_w) {
            if (s->want_w) memcpy(s->w, v, sizeof(float) * cells);
            v += sizeof(float) * cells;
        }
        if (s->want_mx) memcpy(s->mx, v, sizeof(float) * cells);
    }
    s->ci++;
    s->cur_pid = pid;
    s->cur_pos = pos;
    return stream_emit(s, t, err);
}


/* Write a FILE (already flushed) as a read-only mapping; the FILE is closed. */
static int cache_map(FILE *f, size_t len, const unsigned char **out, MsError *err)
{
    *out = NULL;
    if (len == 0) { fclose(f); return 0; }
    void *m = mmap(NULL, len, PROT_READ, MAP_SHARED, fileno(f), 0);
    fclose(f);   /* the mapping keeps the (unlinked) file alive */
    if (m == MAP_FAILED) return ms_error_set(err, MS_EIO, "routing cache: mmap failed");
    *out = m;
    return 0;
}

/* Decode packed rows (one per token and MoE layer) of prompts
 * [pid_lo, pid_hi] into cache records (f) and values (fv, layout from
 * r->cache_w / r->cache_mx); checks as an_stream_next does. */
static int decode_range(MsTraceDb *db, const AnRun *r, int64_t pid_lo, int64_t pid_hi, FILE *f, FILE *fv,
                        AnMeter *meter, int64_t *n_out, MsError *err)
{
    size_t cells = (size_t)r->n_slot * r->k, rec = cache_rec_size(r);
    unsigned char *buf = malloc(rec);
    float *w = malloc(sizeof *w * cells), *mx = malloc(sizeof *mx * cells);
    int rc = 0;
    MsTraceCursor *c = NULL;
    if (!buf || !w || !mx) rc = ms_error_set(err, MS_ENOMEM, "out of memory");
    else if (!(c = ms_trace_routing_range(db, r->run_id, pid_lo, pid_hi, err))) rc = err ? err->code : MS_EDB;
    bool have = false;
    int64_t n = 0, cpid = 0;
    int32_t cpos = 0;
    MsTraceRoutePacked row;
    while (rc >= 0) {
        int got = ms_trace_routing_next_packed(c, &row, err);
        if (got < 0) { rc = got; break; }
        if (have && (got == 0 || row.prompt_id != cpid || row.pos != cpos)) {
            /* the current token is complete: write it */
            memcpy(buf, &cpid, 8);
            memcpy(buf + 8, &cpos, 4);
            if (fwrite(buf, 1, rec, f) != rec || (r->cache_w && fwrite(w, sizeof *w, cells, fv) != cells) ||
                (r->cache_mx && fwrite(mx, sizeof *mx, cells, fv) != cells)) {
                rc = ms_error_set(err, MS_EIO, "routing cache: write failed (disk full?)");
                break;
            }
            n++;
            have = false;
            if (n % AN_POLL_TOKENS == 0) {
                an_meter_add(meter, AN_POLL_TOKENS);
                if ((rc = an_poll(r, err)) < 0) break;
            }
        }
        if (got == 0) break;
        if (!have) {
            memset(buf + 12, 0, (size_t)r->n_slot);
            memset(buf + 12 + r->n_slot, 0xff, 2 * cells);   /* int16 −1 */
            for (size_t i = 0; i < cells; i++) w[i] = mx[i] = NAN;
            cpid = row.prompt_id;
            cpos = row.pos;
            have = true;
        }
        if (row.layer < 0 || row.layer >= r->n_layer || r->layer_slot[row.layer] < 0) {
            rc = ms_error_set(err, MS_EFORMAT, "%s: run %lld: routing row at layer %d, not a MoE layer",
                              ms_trace_path(db), (long long)r->run_id, row.layer);
            break;
        }
        int sl = r->layer_slot[row.layer];
        for (int j = 0; j < row.k; j++) {
            int e = (int)an_le_u16(row.experts + 2 * j);
            if (e >= r->E || j >= r->k) {
                rc = ms_error_set(err, MS_EFORMAT, "%s: run %lld: routing row (layer %d, rank %d, expert %d) "
                                  "outside E=%d k=%d", ms_trace_path(db), (long long)r->run_id, row.layer, j, e,
                                  r->E, r->k);
                break;
            }
            size_t ix = (size_t)sl * r->k + j;
            int16_t e16 = (int16_t)e;
            memcpy(buf + 12 + r->n_slot + 2 * ix, &e16, 2);
            w[ix] = row.weights ? le_f32(row.weights + 4 * j) : NAN;
            mx[ix] = row.maxabs ? le_f32(row.maxabs + 4 * j) : NAN;
        }
        /* a layer stored twice for one token cannot happen (primary key) */
        buf[12 + sl] = (unsigned char)row.k;
    }
    ms_trace_cursor_free(c);
    free(buf);
    free(w);
    free(mx);
    if (rc >= 0 && (fflush(f) != 0 || fflush(fv) != 0)) rc = ms_error_set(err, MS_EIO, "routing cache: write failed");
    *n_out = n;
    return rc < 0 ? rc : 0;
}

/* Weights are all-or-nothing per run (trace: always; import: per file):
 * the first token decides, as the streamed reader's consumers assume. */
static int first_token_has_w(MsTraceDb *db, const AnRun *r, MsError *err)
{
    MsTraceCursor *c = ms_trace_routing(db, r->run_id, 0, err);
    if (!c) return err ? err->code : MS_EDB;
    MsTraceRoutePacked row;
    int64_t pid = 0;
    int32_t pos = 0;
    int rc, found = 0;
    bool first = true;
    while ((rc = ms_trace_routing_next_packed(c, &row, err)) == 1) {
        if (!first && (row.prompt_id != pid || row.pos != pos)) break;
        first = false;
        pid = row.prompt_id;
        pos = row.pos;
        for (int j = 0; j < row.k && row.weights && !found; j++) found = isfinite(le_f32(row.weights + 4 * j));
    }
    ms_trace_cursor_free(c);
    return rc < 0 ? rc : found;
}

typedef struct {
    MsTraceDb *db;
    const AnRun *r;
    int64_t lo, hi, n;
    FILE *f, *fv;
    AnMeter *meter;
    MsError err;
    int rc;
} DecodeJob;

static void *decode_thread(void *p)
{
    DecodeJob *j = p;
    j->rc = decode_range(j->db, j->r, j->lo, j->hi, j->f, j->fv, j->meter, &j->n, &j->err);
    return NULL;
}

/* Decode the run once into the cache.  The prompts are split in two
 * halves by token count, decoded on two threads (the second through its
 * own read connection) into two segments read in prompt order. */
int an_run_cache_build(MsTraceDb *db, AnRun *r, AnMeter *m1, AnMeter *m2, MsError *err)
{
    if (r->cache) return 0;
    if (r->k > 255 || r->E > 32767) return 0;   /* record layout limits: stream from SQLite */
    if (r->n_prompt == 0) return 0;              /* nothing to decode */
    int hw = first_token_has_w(db, r, err);
    if (hw < 0) return hw;
    r->cache_w = hw;
    r->cache_mx = r->info.has_stats;
    FILE *f[2] = {tmpfile(), NULL}, *fv[2] = {tmpfile(), NULL};
    int rc = f[0] && fv[0] ? 0 : ms_error_set(err, MS_EIO, "routing cache: cannot create a temporary file");
    /* the prompt-id range of the run, as the streamed reader reads it */
    int64_t lo = r->prompt_id[0], last = r->prompt_id[r->n_prompt - 1], hi = last, n0 = 0;
    /* split point: the prompt where half the tokens are reached */
    int64_t tot = 0, acc = 0;
    int mid = 0;
    for (int p = 0; p < r->n_prompt; p++) tot += r->prompt_tokens[p] > 0 ? r->prompt_tokens[p] : 0;
    for (; mid < r->n_prompt && 2 * acc < tot; mid++) acc += MS_MAX(r->prompt_tokens[mid], 0);
    /* the two threads' shares of the progress count */
    if (m1) m1->total = tot;
    if (m2) m2->total = 0;
    DecodeJob job;
    memset(&job, 0, sizeof job);
    pthread_t th;
    bool split = false;
    if (rc >= 0 && r->n_prompt >= 2 && mid > 0 && mid < r->n_prompt) {
        MsError e2;
        memset(&e2, 0, sizeof e2);
        job.db = ms_trace_open(ms_trace_path(db), MS_TRACE_READ, &e2);
        job.f = tmpfile();
        job.fv = tmpfile();
        if (job.db && job.f && job.fv) {
            setvbuf(job.f, NULL, _IOFBF, 1 << 20);
            setvbuf(job.fv, NULL, _IOFBF, 1 << 20);
            job.r = r;
            job.meter = m2;
            job.lo = r->prompt_id[mid];
            job.hi = last;
            hi = r->prompt_id[mid] - 1;
            if (m1) m1->total = acc;
            if (m2) m2->total = tot - acc;
            split = pthread_create(&th, NULL, decode_thread, &job) == 0;
            if (!split) {
                hi = last;
                if (m1) m1->total = tot;
                if (m2) m2->total = 0;
            }
        }
    }
    if (rc >= 0) {
        setvbuf(f[0], NULL, _IOFBF, 1 << 20);
        setvbuf(fv[0], NULL, _IOFBF, 1 << 20);
        rc = decode_range(db, r, lo, hi, f[0], fv[0], m1, &n0, err);
    }
    if (split) {
        pthread_join(th, NULL);
        if (rc >= 0 && job.rc < 0) {
            rc = job.rc;
            if (err) *err = job.err;
        }
        if (rc >= 0 && (fflush(job.f) != 0 || fflush(job.fv) != 0))
            rc = ms_error_set(err, MS_EIO, "routing cache: write failed");
    }
    ms_trace_close(job.db);
    int64_t n1 = split ? job.n : 0;
    if (rc >= 0) {
        r->cache_tokens = n0 + n1;
        r->cache_split = n0;
        r->cache_len = (size_t)n0 * cache_rec_size(r);
        r->cache_vals_len = (size_t)n0 * cache_vals_size(r);
        r->cache2_len = (size_t)n1 * cache_rec_size(r);
        r->cache_vals2_len = (size_t)n1 * cache_vals_size(r);
        /* cache_map closes the FILE whatever happens */
        int rcs[4] = {cache_map(f[0], r->cache_len, &r->cache, err),
                      cache_map(fv[0], r->cache_vals_len, &r->cache_vals, err), 0, 0};
        f[0] = fv[0] = NULL;
        if (split) {
            rcs[2] = cache_map(job.f, r->cache2_len, &r->cache2, err);
            rcs[3] = cache_map(job.fv, r->cache_vals2_len, &r->cache_vals2, err);
            job.f = job.fv = NULL;
        }
        for (int i = 0; i < 4 && rc >= 0; i++) rc = rcs[i];
        if (rc >= 0 && ((n0 > 0 && !r->cache) || (n1 > 0 && !r->cache2)))
            rc = ms_error_set(err, MS_EIO, "routing cache: mmap failed");
    }
    if (job.f) fclose(job.f);
    if (job.fv) fclose(job.fv);
    if (f[0]) fclose(f[0]);
    if (fv[0]) fclose(fv[0]);
    if (rc < 0) {
        if (r->cache) munmap((void *)r->cache, r->cache_len);
        if (r->cache_vals) munmap((void *)r->cache_vals, r->cache_vals_len);
        if (r->cache2) munmap((void *)r->cache2, r->cache2_len);
        if (r->cache_vals2) munmap((void *)r->cache_vals2, r->cache_vals2_len);
        r->cache = r->cache_vals = r->cache2 = r->cache_vals2 = NULL;
        r->cache_w = r->cache_mx = false;
        r->cache_tokens = 0;
        return rc;
    }
    return 0;
}

bool an_role_ok(MsAnRole role, const AnTok *t)
{
    if (role == MS_AN_ROLE_ALL) return true;
    if (!t->has_token) return false;
    if (role == MS_AN_ROLE_GENERATED) return t->is_generated;
    return !t->is_generated;
}

int an_run_has_generated(MsTraceDb *db, const AnRun *r, MsError *err)
{
    MsTraceCursor *c = ms_trace_tokens(db, r->run_id, 0, err);
    if (!c) return err ? err->code : MS_EDB;
    MsTraceToken tk;
    int rc, found = 0;
    int64_t n = 0;
    while ((rc = ms_trace_tokens_next(c, &tk, err)) == 1) {
        if (tk.is_generated) { found = 1; break; }
        if (++n % AN_POLL_TOKENS == 0 && (rc = an_poll(r, err)) < 0) break;
    }
    ms_trace_cursor_free(c);
    return rc < 0 ? rc : found;
}

/* --------------------------------------------------------------- writing */

static int write_table(MsTraceDb *db, int64_t run_id, const char *analysis, const char *params,
                       const MsAnTable *t, MsError *err)
{
    if (t->n_rows == 0) return 0;
    int nc = t->n_cols + 1;
    MsColumn *cols = calloc((size_t)nc, sizeof *cols);
    MsAnCell *cells = calloc((size_t)nc, sizeof *cells);
    if (!cols || !cells) { free(cols); free(cells); return ms_error_set(err, MS_ENOMEM, "out of memory"); }
    cols[0].name = "run_id";
    cols[0].type = MS_COL_INT;
    for (int c = 0; c < t->n_cols; c++) {
        MsAnCellType ty = ms_an_table_col_type(t, c);
        cols[c + 1].name = t->cols[c];
        cols[c + 1].type = ty == MS_AN_INT ? MS_COL_INT : ty == MS_AN_TEXT ? MS_COL_TEXT : MS_COL_REAL;
    }
    MsTraceResult *res = ms_trace_result_new(db, run_id, analysis, params, t->name, cols, nc, err);
    int rc = 0;
    if (!res) { rc = err ? err->code : MS_EDB; goto out; }
    for (int64_t i = 0; i < t->n_rows && rc >= 0; i++) {
        ms_an_table_row(t, i, cells);
        rc = ms_trace_result_int(res, 0, run_id);
        for (int c = 0; c < t->n_cols && rc >= 0; c++) {
            const MsAnCell *x = &cells[c];
            if (x->type == MS_AN_INT) rc = ms_trace_result_int(res, c + 1, x->i);
            else if (x->type == MS_AN_REAL && isfinite(x->r)) rc = ms_trace_result_real(res, c + 1, x->r);
            else if (x->type == MS_AN_TEXT) rc = ms_trace_result_text(res, c + 1, x->s);
            else rc = ms_trace_result_null(res, c + 1);
        }
        if (rc >= 0) rc = ms_trace_result_row(res, err);
    }
    if (rc >= 0) rc = ms_trace_result_commit(res, err);
    else if (err && err->code == 0) ms_error_set(err, rc, "%s: writing table %s failed", ms_trace_path(db), t->name);
out:
    ms_trace_result_free(res);
    free(cols);
    free(cells);
    return rc < 0 ? rc : 0;
}

static int write_plan_file(const char *path, const char *plan, MsError *err)
{
    MsOutFile f;
    int rc = ms_outfile_open(&f, path, err);
    if (rc < 0) return rc;
    fprintf(f.f, "%s\n", plan);
    return ms_outfile_commit(&f, err);
}

int ms_an_result_write(MsTraceDb *db, const MsAnResult *r, const MsAnOptions *o, MsError *err)
{
    const MsAnHead *h = ms_an_result_head(r);
    if (!h) return ms_error_set(err, MS_EINVAL, "no analysis result to write");
    const char *plan = ms_an_result_plan(r);
    /* an empty plan is no file: the caller says so (a file of nothing
     * would run as an experiment that changes nothing) */
    if (plan && *plan && o->plan_out) {
        int rc = write_plan_file(o->plan_out, plan, err);
        if (rc < 0) return rc;
    }
    if (!o->write) return 0;
    json_t *params = ms_an_params_json(r);
    char *ptext = params ? json_dumps(params, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(params);
    if (!ptext) return ms_error_set(err, MS_ENOMEM, "out of memory");
    MsAnTable t[MS_AN_MAX_TABLES];
    int n = ms_an_result_tables(r, t), rc = 0;
    for (int i = 0; i < n && rc >= 0; i++)
        rc = write_table(db, h->run_id, ms_an_module_name(r->module), ptext, &t[i], err);
    free(ptext);
    return rc;
}

/* ------------------------------------------------------------- dispatch */

static const AnModuleFn module_fns[MS_AN_N_MODULES] = {
    an_load, an_coactivation, an_affinity, an_consistency, an_superexperts,
    an_npmi, an_riskdiff, an_crosslingual, an_pathways,
};

const char *const *ms_analyze_modules(void)
{
    static const char *const names[] = {"load", "coactivation", "affinity", "consistency",
                                        "superexperts", "npmi", "riskdiff", "crosslingual",
                                        "pathways", NULL};
    return names;
}

int an_module_passes(MsAnModule m, const AnRun *r, const MsAnOptions *o)
{
    switch (m) {
    case MS_AN_LOAD: return 1 + (r->info.has_probs && (!o->role || !strcmp(o->role, "all")));
    case MS_AN_SUPEREXPERTS: return 2;   /* routing, residual stats */
    case MS_AN_NPMI: return 1 + (o->by && !strcmp(o->by, "token"));
    case MS_AN_CROSSLINGUAL:
    case MS_AN_PATHWAYS: return 1 + !o->sparse_weights;
    default: return 1;
    }
}

/* Compute one module on an open run (no writes). */
static int analyze_on(MsTraceDb *db, AnRun *r, MsAnModule m, const MsAnOptions *o, MsAnResult *out,
                      MsError *err)
{
    memset(out, 0, sizeof *out);
    out->module = m;
    int rc = module_fns[m](db, r, o, out, err);
    if (rc >= 0 && !out->any) rc = ms_error_set(err, MS_EINTERNAL, "%s: no result", ms_an_module_name(m));
    if (rc < 0) ms_an_result_clear(out);
    return rc < 0 ? rc : 0;
}

/* "out of memory" from deep in a module names the database, like every other error of the call */
static int name_db(MsTraceDb *db, int rc, MsError *err)
{
    const char *path = ms_trace_path(db);
    if (rc == MS_ENOMEM && err && path && strncmp(err->msg, path, strlen(path)) != 0)
        ms_error_prefix(err, "%s: ", path);
    return rc;
}

int ms_analyze(MsTraceDb *db, const char *name, const MsAnOptions *o, MsAnResult *out, MsError *err)
{
    memset(out, 0, sizeof *out);
    int m = ms_an_module_from_name(name);
    if (m < 0) return ms_error_set(err, MS_ENOTFOUND, "unknown analysis '%s'", name ? name : "");
    AnRun r;
    int rc = an_run_open(db, o->run_id, &r, err);
    if (rc < 0) return rc;
    AnProgress prog;
    int passes = an_module_passes((MsAnModule)m, &r, o);
    an_progress_init(&prog, o, r.info.n_tokens * passes, 1);
    prog.stage = ms_an_module_name((MsAnModule)m);
    AnMeter meter = {&prog, 0, r.info.n_tokens * passes};
    r.cancel = o->cancel;
    r.meter = &meter;
    an_progress_report(&prog, true);
    rc = analyze_on(db, &r, (MsAnModule)m, o, out, err);
    /* a cancel that came while the module finished still writes nothing */
    if (rc >= 0 && (rc = an_poll(&r, err)) >= 0) rc = ms_an_result_write(db, out, o, err);
    if (rc >= 0) {
        an_meter_fill(&meter);
        atomic_store(&prog.done, 1);
        an_progress_report(&prog, true);
    } else {
        ms_an_result_clear(out);
    }
    an_run_close(&r);
    return rc < 0 ? name_db(db, rc, err) : 0;
}

#define TYPED_ENTRY(fn, mod, type, field)                                                          \
    int fn(MsTraceDb *db, const MsAnOptions *o, type **out, MsError *err)                         \
    {                                                                                              \
        MsAnResult res;                                                                            \
        *out = NULL;                                                                               \
        int rc = ms_analyze(db, mod, o, &res, err);                                                \
        if (rc < 0) return rc;                                                                     \
        *out = res.field;                                                                          \
        return 0;                                                                                  \
    }
TYPED_ENTRY(ms_analyze_load, "load", MsLoadResult, load)
TYPED_ENTRY(ms_analyze_coactivation, "coactivation", MsCoactivationResult, coactivation)
TYPED_ENTRY(ms_analyze_affinity, "affinity", MsAffinityResult, affinity)
TYPED_ENTRY(ms_analyze_consistency, "consistency", MsConsistencyResult, consistency)
TYPED_ENTRY(ms_analyze_superexperts, "superexperts", MsSuperExpertsResult, superexperts)
TYPED_ENTRY(ms_analyze_npmi, "npmi", MsNpmiResult, npmi)
TYPED_ENTRY(ms_analyze_riskdiff, "riskdiff", MsRiskDiffResult, riskdiff)
TYPED_ENTRY(ms_analyze_crosslingual, "crosslingual", MsCrosslingualResult, crosslingual)
TYPED_ENTRY(ms_analyze_pathways, "pathways", MsPathwaysResult, pathways)

void ms_an_all_clear(MsAnAll *a)
{
    if (!a) return;
    for (int i = 0; i < MS_AN_N_MODULES; i++) ms_an_result_clear(&a->res[i]);
    memset(a, 0, sizeof *a);
}

enum { AN_ALL_THREADS = 2 };

/* analyze all: modules run on AN_ALL_THREADS workers (each with its own
 * read connection and AnRun copy); nothing is written until every module
 * has completed, then the tables are written in module order, so the
 * database and the documents do not depend on the scheduling. */
typedef struct {
    const MsAnOptions *o;
    const AnRun *base;
    AnProgress *prog;
    int n;                       /* runnable modules, in dispatch order */
    int idx[MS_AN_N_MODULES];
    atomic_int next;
    MsAnResult res[MS_AN_N_MODULES];
    int rc[MS_AN_N_MODULES];
    MsError err[MS_AN_N_MODULES];
    double wall[MS_AN_N_MODULES], cpu[MS_AN_N_MODULES];
    /* the second worker's end, for the owner's progress reports */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool second_done;
} AllJob;

typedef struct { AllJob *j; MsTraceDb *db; bool second; } AllWorker;

static void *all_worker(void *p)
{
    AllWorker *w = p;
    AllJob *j = w->j;
    for (;;) {
        int i = atomic_fetch_add(&j->next, 1);
        if (i >= j->n) break;
        int m = j->idx[i];
        AnRun rr = *j->base;     /* shares the read-only run data and cache */
        AnMeter meter = {j->prog, 0, rr.info.n_tokens * an_module_passes((MsAnModule)m, &rr, j->o)};
        rr.meter = &meter;
        double w0 = now_s(CLOCK_MONOTONIC), c0 = now_s(CLOCK_THREAD_CPUTIME_ID);
        j->rc[i] = ms_cancel_requested(rr.cancel) ? ms_error_set(&j->err[i], MS_ECANCELLED, "analysis cancelled")
                                                  : analyze_on(w->db, &rr, (MsAnModule)m, j->o, &j->res[i], &j->err[i]);
        j->wall[i] = now_s(CLOCK_MONOTONIC) - w0;
        j->cpu[i] = now_s(CLOCK_THREAD_CPUTIME_ID) - c0;
        if (j->rc[i] >= 0) an_meter_fill(&meter);
        atomic_fetch_add(&j->prog->done, 1);
        an_progress_report(j->prog, false);
    }
    if (w->second) {
        pthread_mutex_lock(&j->mu);
        j->second_done = true;
        pthread_cond_signal(&j->cv);
        pthread_mutex_unlock(&j->mu);
    }
    return NULL;
}

/* Largest first, so the two workers end close together (order of
 * execution only; results are placed by module index). */
static int module_cost_rank(MsAnModule m)
{
    static const MsAnModule by_cost[] = {MS_AN_CONSISTENCY, MS_AN_COACTIVATION, MS_AN_AFFINITY, MS_AN_PATHWAYS,
                                         MS_AN_LOAD, MS_AN_NPMI, MS_AN_CROSSLINGUAL, MS_AN_SUPEREXPERTS,
                                         MS_AN_RISKDIFF};
    for (size_t i = 0; i < MS_ARRAY_LEN(by_cost); i++)
        if (by_cost[i] == m) return (int)i;
    return (int)MS_ARRAY_LEN(by_cost);
}

/* Why a module cannot run on this run, or NULL. */
static const char *skip_reason(MsAnModule m, const AnRun *r, const MsAnOptions *o)
{
    const char *why = NULL;
    if (m == MS_AN_SUPEREXPERTS && !r->info.has_stats) why = "run has no expert stats";
    if ((m == MS_AN_CROSSLINGUAL || m == MS_AN_PATHWAYS) && !r->info.has_probs && !o->sparse_weights)
        why = "run has no router probabilities (use --sparse-weights)";
    if (m == MS_AN_RISKDIFF && (!o->label || !o->set1 || !o->set2)) why = "needs --label, --set1, --set2";
    if (m == MS_AN_CROSSLINGUAL && !why) {
        int has_ref = 0;
        char buf[64];
        for (int p = 0; p < r->n_prompt && !has_ref; p++)
            has_ref = !strcmp(an_label(r, p, o->lang_key, buf, sizeof buf), o->ref_lang);
        if (!has_ref) why = "no prompt labelled with the reference language";
    }
    return why;
}

int ms_analyze_all(MsTraceDb *db, const MsAnOptions *o, MsAnAll *out, MsError *err)
{
    memset(out, 0, sizeof *out);
    AnRun r;
    int rc = an_run_open(db, o->run_id, &r, err);
    if (rc < 0) return rc;
    out->run_id = r.run_id;
    r.cancel = o->cancel;
    double wt = now_s(CLOCK_MONOTONIC), ct = now_s(CLOCK_PROCESS_CPUTIME_ID);
    AllJob *j = calloc(1, sizeof *j);
    if (!j) {
        an_run_close(&r);
        return name_db(db, ms_error_set(err, MS_ENOMEM, "out of memory"), err);
    }
    /* the runnable modules and the progress total: the decode and each
     * module's passes over the run */
    int64_t passes = 1;
    for (int i = 0; i < MS_AN_N_MODULES; i++) {
        out->skipped[i] = skip_reason((MsAnModule)i, &r, o);
        if (out->skipped[i]) continue;
        j->idx[j->n++] = i;
        passes += an_module_passes((MsAnModule)i, &r, o);
    }
    AnProgress prog;
    an_progress_init(&prog, o, r.info.n_tokens * passes, j->n);
    prog.stage = "decode";
    an_progress_report(&prog, true);
    AnMeter d1 = {&prog, 0, 0}, d2 = {&prog, 0, 0};
    double w0 = now_s(CLOCK_MONOTONIC), c0 = now_s(CLOCK_THREAD_CPUTIME_ID);
    rc = an_run_cache_build(db, &r, &d1, &d2, err);
    out->decode = (MsAnTime){now_s(CLOCK_MONOTONIC) - w0, now_s(CLOCK_THREAD_CPUTIME_ID) - c0};
    if (rc >= 0) {
        /* the decode counts as one pass, also when it was not needed */
        d1.total = r.info.n_tokens - d2.total;
        an_meter_fill(&d1);
        an_meter_fill(&d2);
        prog.stage = "modules";
        an_progress_report(&prog, true);
    }
    if (rc >= 0) {
        /* dispatch order: insertion sort of the runnable modules by cost */
        for (int i = 1; i < j->n; i++)
            for (int q = i; q > 0 && module_cost_rank((MsAnModule)j->idx[q]) <
                                     module_cost_rank((MsAnModule)j->idx[q - 1]); q--) {
                int t = j->idx[q]; j->idx[q] = j->idx[q - 1]; j->idx[q - 1] = t;
            }
        j->o = o;
        j->base = &r;
        j->prog = &prog;
        atomic_store(&j->next, 0);
        pthread_mutex_init(&j->mu, NULL);
        pthread_cond_init(&j->cv, NULL);
        /* the second worker reads through its own connection (SQLite
         * handles here are single-threaded); without one, run alone */
        MsError e2;
        memset(&e2, 0, sizeof e2);
        MsTraceDb *db2 = j->n > 1 ? ms_trace_open(ms_trace_path(db), MS_TRACE_READ, &e2) : NULL;
        AllWorker w1 = {j, db, false}, w2 = {j, db2, true};
        pthread_t th;
        bool spawned = db2 && pthread_create(&th, NULL, all_worker, &w2) == 0;
        all_worker(&w1);
        if (spawned) {
            /* keep reporting while the second worker finishes */
            pthread_mutex_lock(&j->mu);
            while (!j->second_done) {
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_nsec += 50 * 1000 * 1000;
                if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
                pthread_cond_timedwait(&j->cv, &j->mu, &ts);
                pthread_mutex_unlock(&j->mu);
                an_progress_report(&prog, false);
                pthread_mutex_lock(&j->mu);
            }
            pthread_mutex_unlock(&j->mu);
            pthread_join(th, NULL);
        }
        pthread_cond_destroy(&j->cv);
        pthread_mutex_destroy(&j->mu);
        ms_trace_close(db2);
        /* results in module order: the first failure fails the call (a
         * cancel wins: it explains the others) */
        for (int q = 0; q < j->n; q++) {
            int m = j->idx[q];
            out->time[m] = (MsAnTime){j->wall[q], j->cpu[q]};
            out->res[m] = j->res[q];
            memset(&j->res[q], 0, sizeof j->res[q]);
            out->ran[m] = true;
        }
        if (ms_cancel_requested(o->cancel)) rc = an_poll(&r, err);
        for (int m = 0; m < MS_AN_N_MODULES && rc >= 0; m++) {
            if (!out->ran[m]) continue;
            int q = 0;
            while (j->idx[q] != m) q++;
            if (j->rc[q] < 0) {
                rc = j->rc[q];
                if (err) *err = j->err[q];
                ms_error_prefix(err, "%s: ", ms_an_module_name((MsAnModule)m));
            }
        }
        /* every module completed: write, in module order */
        for (int m = 0; m < MS_AN_N_MODULES && rc >= 0; m++) {
            if (!out->ran[m]) continue;
            double fw = now_s(CLOCK_MONOTONIC), fc = now_s(CLOCK_THREAD_CPUTIME_ID);
            rc = ms_an_result_write(db, &out->res[m], o, err);
            if (rc < 0) ms_error_prefix(err, "%s: ", ms_an_module_name((MsAnModule)m));
            /* the write is part of the module's cost */
            out->time[m].wall += now_s(CLOCK_MONOTONIC) - fw;
            out->time[m].cpu += now_s(CLOCK_THREAD_CPUTIME_ID) - fc;
        }
    }
    for (int i = 0; i < j->n; i++) ms_an_result_clear(&j->res[i]);
    free(j);
    out->total = (MsAnTime){now_s(CLOCK_MONOTONIC) - wt, now_s(CLOCK_PROCESS_CPUTIME_ID) - ct};
    if (rc >= 0) an_progress_report(&prog, true);   /* every share is filled: the total */
    an_run_close(&r);
    if (rc < 0) {
        ms_an_all_clear(out);
        return name_db(db, rc, err);
    }
    return 0;
}
