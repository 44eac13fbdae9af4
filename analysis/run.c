/* run.c — plumbing shared by the db-facing modules: run layout, the
 * token-grouping routing stream, JSON helpers, result-table writing. */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sys/mman.h>

#include "run-internal.h"

void ms_an_options_default(MsAnOptions *o)
{
    memset(o, 0, sizeof *o);
    o->layer = -1;
    o->write = true;
    o->distance = 1;
    o->top = 10;
    const int segs[4] = {4, 16, 64, 256};
    memcpy(o->segments, segs, sizeof segs);
    o->n_segments = 4;
    o->include_frac = 0.75;
    o->se_rule = MS_SE_PAPER;
    o->min_support = 5;
    o->max_classes = 512;
    o->lang_key = "language";
    o->pair_key = "pair_id";
    o->ref_lang = "en";
    o->tau = 0.3;
    o->mid_lo = o->mid_hi = -1;
    o->cl_lambda = 0.5;
    o->path_tau = 0.7;
    o->n_pairs = 2000;
    o->seed = 20240601;
}

void ms_an_result_clear(MsAnResult *r)
{
    if (!r) return;
    json_decref(r->doc);
    json_decref(r->rows);
    free(r->plan);
    memset(r, 0, sizeof *r);
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

enum { AN_CHUNK = 1 << 16 };

struct AnStream {
    const AnRun *r;
    MsTraceCursor *rc, *tc;
    MsTraceRoute *buf;
    int nbuf, ibuf;
    bool eof;
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
};

AnStream *an_stream_new(MsTraceDb *db, const AnRun *r, bool with_tokens, unsigned need, MsError *err)
{
    AnStream *s = calloc(1, sizeof *s);
    if (!s) { ms_error_set(err, MS_ENOMEM, "out of memory"); return NULL; }
    s->r = r;
    size_t cells = (size_t)r->n_slot * r->k;
    s->buf = r->cache ? NULL : malloc(sizeof *s->buf * AN_CHUNK);
    s->ids = malloc(sizeof *s->ids * cells);
    s->w = malloc(sizeof *s->w * cells);
    s->mx = malloc(sizeof *s->mx * cells);
    s->n = calloc((size_t)r->n_slot, sizeof *s->n);
    if ((!r->cache && !s->buf) || !s->ids || !s->w || !s->mx || !s->n) {
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
    free(s->buf);
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

int an_stream_next(AnStream *s, AnTok *t, MsError *err)
{
    const AnRun *r = s->r;
    if (s->from_cache) return stream_next_cached(s, t, err);
    for (;;) {
        if (s->ibuf == s->nbuf && !s->eof) {
            int n = ms_trace_routing_next(s->rc, s->buf, AN_CHUNK, err);
            if (n < 0) return n;
            if (n == 0) s->eof = true;
            s->nbuf = n;
            s->ibuf = 0;
        }
        bool end = s->ibuf == s->nbuf;
        const MsTraceRoute *row = end ? NULL : &s->buf[s->ibuf];
        if (s->have_cur && (end || row->prompt_id != s->cur_pid || row->pos != s->cur_pos))
            break;   /* the current token is complete */
        if (end) return 0;
        if (!s->have_cur) {
            stream_reset_token(s);
            s->cur_pid = row->prompt_id;
            s->cur_pos = row->pos;
            s->have_cur = true;
        }
        s->ibuf++;
        if (row->layer < 0 || row->layer >= r->n_layer || r->layer_slot[row->layer] < 0)
            return ms_error_set(err, MS_EFORMAT, "run %lld: routing row at layer %d, not a MoE layer",
                                (long long)r->run_id, row->layer);
        if (row->expert < 0 || row->expert >= r->E || row->rank < 0 || row->rank >= r->k)
            return ms_error_set(err, MS_EFORMAT, "run %lld: routing row (layer %d, rank %d, expert %d) "
                                "outside E=%d k=%d", (long long)r->run_id, row->layer, row->rank,
                                row->expert, r->E, r->k);
        int sl = r->layer_slot[row->layer];
        size_t ix = (size_t)sl * r->k + row->rank;
        if (s->ids[ix] < 0) s->n[sl]++;
        s->ids[ix] = row->expert;
        s->w[ix] = row->weight;
        s->mx[ix] = row->maxabs;
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


static inline float le_f32(const unsigned char *p)
{
    uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
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
                        int64_t *n_out, MsError *err)
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
            rc = ms_error_set(err, MS_EFORMAT, "run %lld: routing row at layer %d, not a MoE layer",
                              (long long)r->run_id, row.layer);
            break;
        }
        int sl = r->layer_slot[row.layer];
        for (int j = 0; j < row.k; j++) {
            int e = (int)an_le_u16(row.experts + 2 * j);
            if (e >= r->E || j >= r->k) {
                rc = ms_error_set(err, MS_EFORMAT, "run %lld: routing row (layer %d, rank %d, expert %d) "
                                  "outside E=%d k=%d", (long long)r->run_id, row.layer, j, e, r->E, r->k);
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
    MsError err;
    int rc;
} DecodeJob;

static void *decode_thread(void *p)
{
    DecodeJob *j = p;
    j->rc = decode_range(j->db, j->r, j->lo, j->hi, j->f, j->fv, &j->n, &j->err);
    return NULL;
}

/* Decode the run once into the cache.  The prompts are split in two
 * halves by token count, decoded on two threads (the second through its
 * own read connection) into two segments read in prompt order. */
int an_run_cache_build(MsTraceDb *db, AnRun *r, MsError *err)
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
            job.lo = r->prompt_id[mid];
            job.hi = last;
            hi = r->prompt_id[mid] - 1;
            split = pthread_create(&th, NULL, decode_thread, &job) == 0;
            if (!split) hi = last;
        }
    }
    if (rc >= 0) {
        setvbuf(f[0], NULL, _IOFBF, 1 << 20);
        setvbuf(fv[0], NULL, _IOFBF, 1 << 20);
        rc = decode_range(db, r, lo, hi, f[0], fv[0], &n0, err);
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

bool an_role_ok(const char *role, const AnTok *t)
{
    if (!role || !strcmp(role, "all")) return true;
    if (!t->has_token) return false;
    if (!strcmp(role, "generated")) return t->is_generated;
    return !t->is_generated;
}

int an_run_has_generated(MsTraceDb *db, const AnRun *r, MsError *err)
{
    MsTraceCursor *c = ms_trace_tokens(db, r->run_id, 0, err);
    if (!c) return err ? err->code : MS_EDB;
    MsTraceToken tk;
    int rc, found = 0;
    while ((rc = ms_trace_tokens_next(c, &tk, err)) == 1)
        if (tk.is_generated) { found = 1; break; }
    ms_trace_cursor_free(c);
    return rc < 0 ? rc : found;
}

/* ----------------------------------------------------------------- json */

json_t *an_real(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

json_t *an_real_array(const double *v, int n)
{
    json_t *a = json_array();
    for (int i = 0; i < n; i++) json_array_append_new(a, an_real(v[i]));
    return a;
}

json_t *an_int_array(const int64_t *v, int n)
{
    json_t *a = json_array();
    for (int i = 0; i < n; i++) json_array_append_new(a, json_integer(v[i]));
    return a;
}

json_t *an_real_matrix(const double *m, int rows, int cols)
{
    json_t *a = json_array();
    for (int i = 0; i < rows; i++) json_array_append_new(a, an_real_array(m + (size_t)i * cols, cols));
    return a;
}

/* Queue a deferred write (analyze all): the rows and a snapshot of the
 * params, replayed later by an_flush_deferred. */
static int defer_push(json_t *q, json_t *item, MsError *err)
{
    if (!item || json_array_append_new(q, item) != 0)
        return ms_error_set(err, MS_ENOMEM, "out of memory");
    return 0;
}

static int write_rows_now(MsTraceDb *db, int64_t run_id, const char *analysis, const json_t *params,
                          const char *table, const json_t *rows, MsError *err);

int an_write_rows(MsTraceDb *db, const AnRun *r, const char *analysis, const json_t *params,
                  const char *table, const json_t *rows, MsError *err)
{
    if (json_array_size(rows) == 0) return 0;
    if (r->defer)
        return defer_push(r->defer, json_pack("{s:s,s:s,s:o,s:O}", "analysis", analysis, "table", table,
                                              "params", params ? json_deep_copy(params) : json_null(),
                                              "rows", rows), err);
    return write_rows_now(db, r->run_id, analysis, params, table, rows, err);
}

static int write_rows_now(MsTraceDb *db, int64_t run_id, const char *analysis, const json_t *params,
                          const char *table, const json_t *rows, MsError *err)
{
    size_t nrows = json_array_size(rows);
    json_t *first = json_array_get(rows, 0);
    int nc = (int)json_object_size(first) + 1;
    MsColumn *cols = calloc((size_t)nc, sizeof *cols);
    const char **keys = calloc((size_t)nc, sizeof *keys);
    if (!cols || !keys) { free(cols); free(keys); return ms_error_set(err, MS_ENOMEM, "out of memory"); }
    cols[0].name = "run_id";
    cols[0].type = MS_COL_INT;
    int c = 1;
    const char *key;
    json_t *val;
    json_object_foreach(first, key, val) {
        keys[c] = key;
        cols[c].name = key;
        /* type from the first non-null value of the column */
        MsColType ty = MS_COL_REAL;
        for (size_t i = 0; i < nrows; i++) {
            json_t *v = json_object_get(json_array_get(rows, i), key);
            if (!v || json_is_null(v)) continue;
            ty = json_is_integer(v) || json_is_boolean(v) ? MS_COL_INT : json_is_string(v) ? MS_COL_TEXT
                                                                                        : MS_COL_REAL;
            break;
        }
        cols[c].type = ty;
        c++;
    }
    char *ptext = params ? json_dumps(params, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    MsTraceResult *res = ms_trace_result_new(db, run_id, analysis, ptext, table, cols, nc, err);
    free(ptext);
    int rc = 0;
    if (!res) { rc = err ? err->code : MS_EDB; goto out; }
    for (size_t i = 0; i < nrows && rc >= 0; i++) {
        json_t *row = json_array_get(rows, i);
        rc = ms_trace_result_int(res, 0, run_id);
        for (int j = 1; j < nc && rc >= 0; j++) {
            json_t *v = json_object_get(row, keys[j]);
            if (!v || json_is_null(v)) rc = ms_trace_result_null(res, j);
            else if (json_is_integer(v)) rc = ms_trace_result_int(res, j, json_integer_value(v));
            else if (json_is_boolean(v)) rc = ms_trace_result_int(res, j, json_is_true(v));
            else if (json_is_real(v)) rc = ms_trace_result_real(res, j, json_real_value(v));
            else if (json_is_string(v)) rc = ms_trace_result_text(res, j, json_string_value(v));
            else {
                char *s = json_dumps(v, JSON_COMPACT);
                rc = ms_trace_result_text(res, j, s);
                free(s);
            }
        }
        if (rc >= 0) rc = ms_trace_result_row(res, err);
    }
    if (rc >= 0) rc = ms_trace_result_commit(res, err);
    else if (err && err->code == 0) ms_error_set(err, rc, "%s: writing table %s failed", ms_trace_path(db), table);
out:
    ms_trace_result_free(res);
    free(cols);
    free(keys);
    return rc < 0 ? rc : 0;
}

static int write_plan_file(const char *path, const char *plan, MsError *err)
{
    FILE *f = fopen(path, "w");
    if (!f) return ms_error_set(err, MS_EIO, "%s: cannot write the plan file", path);
    fprintf(f, "%s\n", plan);
    if (fclose(f) != 0) return ms_error_set(err, MS_EIO, "%s: write failed", path);
    return 0;
}

int an_store_plan(MsTraceDb *db, const AnRun *r, const char *analysis, const json_t *params,
                  const char *plan, const char *path, bool write, MsError *err)
{
    if (path && r->defer) {
        int rc = defer_push(r->defer, json_pack("{s:s,s:s}", "plan_file", path, "plan", plan), err);
        if (rc < 0) return rc;
    } else if (path) {
        FILE *f = fopen(path, "w");
        if (!f) return ms_error_set(err, MS_EIO, "%s: cannot write the plan file", path);
        fprintf(f, "%s\n", plan);
        if (fclose(f) != 0) return ms_error_set(err, MS_EIO, "%s: write failed", path);
    }
    if (!write) return 0;
    json_t *rows = json_array(), *row = json_object();
    json_object_set_new(row, "analysis", json_string(analysis));
    json_object_set_new(row, "interventions", json_string(plan));
    json_array_append_new(rows, row);
    char table[64];
    snprintf(table, sizeof table, "an_%s_plan", analysis);
    int rc = an_write_rows(db, r, analysis, params, table, rows, err);
    json_decref(rows);
    return rc;
}

/* ------------------------------------------------------------- dispatch */

static const struct { const char *name; AnModuleFn fn; } modules[] = {
    {"load", an_load},
    {"coactivation", an_coactivation},
    {"affinity", an_affinity},
    {"consistency", an_consistency},
    {"superexperts", an_superexperts},
    {"npmi", an_npmi},
    {"riskdiff", an_riskdiff},
    {"crosslingual", an_crosslingual},
    {"pathways", an_pathways},
};

const char *const *ms_analyze_modules(void)
{
    static const char *const names[] = {"load", "coactivation", "affinity", "consistency",
                                        "superexperts", "npmi", "riskdiff", "crosslingual",
                                        "pathways", NULL};
    return names;
}

static int analyze_on(MsTraceDb *db, AnRun *r, const char *name, AnModuleFn fn, const MsAnOptions *o,
                      MsAnResult *out, MsError *err)
{
    json_t *params = json_object();
    json_object_set_new(params, "method_version", json_string(MS_ANALYSIS_VERSION));
    json_object_set_new(params, "layer", o->layer >= 0 ? json_integer(o->layer) : json_null());
    int rc = fn(db, r, o, out, params, err);
    if (rc >= 0) {
        out->run_id = r->run_id;
        if (out->doc) {
            json_object_set_new(out->doc, "run", json_integer(r->run_id));
            json_object_set(out->doc, "params", params);
        }
        if (o->write && out->rows) {
            char table[64];
            snprintf(table, sizeof table, "an_%s", name);
            rc = an_write_rows(db, r, name, params, table, out->rows, err);
        }
    }
    if (rc < 0) ms_an_result_clear(out);
    json_decref(params);
    return rc < 0 ? rc : 0;
}

int ms_analyze(MsTraceDb *db, const char *name, const MsAnOptions *o, MsAnResult *out,
               MsError *err)
{
    memset(out, 0, sizeof *out);
    AnModuleFn fn = NULL;
    for (size_t i = 0; i < MS_ARRAY_LEN(modules); i++)
        if (!strcmp(modules[i].name, name)) fn = modules[i].fn;
    if (!fn) return ms_error_set(err, MS_ENOTFOUND, "unknown analysis '%s'", name);
    AnRun r;
    int rc = an_run_open(db, o->run_id, &r, err);
    if (rc < 0) return rc;
    rc = analyze_on(db, &r, name, fn, o, out, err);
    an_run_close(&r);
    return rc;
}

static double now_s(clockid_t c)
{
    struct timespec ts;
    clock_gettime(c, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Replay a module's deferred writes, in the order the module made them. */
static int flush_deferred(MsTraceDb *db, int64_t run_id, json_t *q, MsError *err)
{
    size_t i;
    json_t *it;
    json_array_foreach(q, i, it) {
        int rc;
        if (json_object_get(it, "plan_file"))
            rc = write_plan_file(json_string_value(json_object_get(it, "plan_file")),
                                 json_string_value(json_object_get(it, "plan")), err);
        else {
            json_t *p = json_object_get(it, "params");
            rc = write_rows_now(db, run_id, json_string_value(json_object_get(it, "analysis")),
                                json_is_null(p) ? NULL : p, json_string_value(json_object_get(it, "table")),
                                json_object_get(it, "rows"), err);
        }
        if (rc < 0) return rc;
    }
    return 0;
}

enum { AN_ALL_THREADS = 2 };

/* analyze all: modules run on AN_ALL_THREADS workers (each with its own
 * read connection and AnRun copy); their table writes and plan files are
 * deferred and replayed afterwards in module order, so the database and
 * the documents do not depend on the scheduling. */
typedef struct {
    const MsAnOptions *o;
    const AnRun *base;
    int n;                       /* runnable modules */
    int idx[MS_ARRAY_LEN(modules)];
    atomic_int next;
    MsAnResult res[MS_ARRAY_LEN(modules)];
    int rc[MS_ARRAY_LEN(modules)];
    MsError err[MS_ARRAY_LEN(modules)];
    json_t *defer[MS_ARRAY_LEN(modules)];
    double wall[MS_ARRAY_LEN(modules)], cpu[MS_ARRAY_LEN(modules)];
} AllJob;

typedef struct { AllJob *j; MsTraceDb *db; } AllWorker;

static void *all_worker(void *p)
{
    AllWorker *w = p;
    AllJob *j = w->j;
    for (;;) {
        int i = atomic_fetch_add(&j->next, 1);
        if (i >= j->n) break;
        int m = j->idx[i];
        AnRun rr = *j->base;     /* shares the read-only run data and cache */
        rr.defer = j->defer[i];
        double w0 = now_s(CLOCK_MONOTONIC), c0 = now_s(CLOCK_THREAD_CPUTIME_ID);
        j->rc[i] = analyze_on(w->db, &rr, modules[m].name, modules[m].fn, j->o, &j->res[i], &j->err[i]);
        j->wall[i] = now_s(CLOCK_MONOTONIC) - w0;
        j->cpu[i] = now_s(CLOCK_THREAD_CPUTIME_ID) - c0;
    }
    return NULL;
}

/* Largest first, so the two workers end close together (order of
 * execution only; results are placed by module index). */
static int module_cost_rank(const char *name)
{
    static const char *const by_cost[] = {"consistency", "coactivation", "affinity", "pathways", "load",
                                          "npmi", "crosslingual", "superexperts", "riskdiff"};
    for (size_t i = 0; i < MS_ARRAY_LEN(by_cost); i++)
        if (!strcmp(by_cost[i], name)) return (int)i;
    return (int)MS_ARRAY_LEN(by_cost);
}

int ms_analyze_all(MsTraceDb *db, const MsAnOptions *o, json_t **out, MsError *err)
{
    *out = NULL;
    AnRun r;
    int rc = an_run_open(db, o->run_id, &r, err);
    if (rc < 0) return rc;
    json_t *mods = json_object(), *skipped = json_object(), *times = json_object();
    double wt = now_s(CLOCK_MONOTONIC), ct = now_s(CLOCK_PROCESS_CPUTIME_ID);
    double w0 = now_s(CLOCK_MONOTONIC), c0 = now_s(CLOCK_THREAD_CPUTIME_ID);
    rc = an_run_cache_build(db, &r, err);
    json_object_set_new(times, "decode", json_pack("{s:f,s:f}", "wall", now_s(CLOCK_MONOTONIC) - w0,
                                                   "cpu", now_s(CLOCK_THREAD_CPUTIME_ID) - c0));
    AllJob *j = calloc(1, sizeof *j);
    if (!j && rc >= 0) rc = ms_error_set(err, MS_ENOMEM, "out of memory");
    for (size_t i = 0; i < MS_ARRAY_LEN(modules) && rc >= 0; i++) {
        const char *name = modules[i].name, *why = NULL;
        if (!strcmp(name, "superexperts") && !r.info.has_stats) why = "run has no expert stats";
        if ((!strcmp(name, "crosslingual") || !strcmp(name, "pathways")) && !r.info.has_probs && !o->sparse_weights)
            why = "run has no router probabilities (use --sparse-weights)";
        if (!strcmp(name, "riskdiff") && (!o->label || !o->set1 || !o->set2)) why = "needs --label, --set1, --set2";
        if (!strcmp(name, "crosslingual")) {
            int has_ref = 0;
            char buf[64];
            for (int p = 0; p < r.n_prompt && !has_ref; p++)
                has_ref = !strcmp(an_label(&r, p, o->lang_key, buf, sizeof buf), o->ref_lang);
            if (!has_ref && !why) why = "no prompt labelled with the reference language";
        }
        if (why) {
            json_object_set_new(skipped, name, json_string(why));
            continue;
        }
        j->idx[j->n] = (int)i;
        if (!(j->defer[j->n] = json_array())) rc = ms_error_set(err, MS_ENOMEM, "out of memory");
        j->n++;
    }
    if (rc >= 0) {
        /* dispatch order: insertion sort of the runnable modules by cost */
        int order[MS_ARRAY_LEN(modules)], slot_of[MS_ARRAY_LEN(modules)];
        for (int i = 0; i < j->n; i++) order[i] = i;
        for (int i = 1; i < j->n; i++)
            for (int q = i; q > 0 && module_cost_rank(modules[j->idx[order[q]]].name) <
                                     module_cost_rank(modules[j->idx[order[q - 1]]].name); q--) {
                int t = order[q]; order[q] = order[q - 1]; order[q - 1] = t;
            }
        /* permute the job arrays into dispatch order; slot_of maps back */
        int idx2[MS_ARRAY_LEN(modules)];
        json_t *def2[MS_ARRAY_LEN(modules)];
        for (int i = 0; i < j->n; i++) {
            idx2[i] = j->idx[order[i]];
            def2[i] = j->defer[order[i]];
            slot_of[order[i]] = i;
        }
        memcpy(j->idx, idx2, sizeof(int) * (size_t)j->n);
        memcpy(j->defer, def2, sizeof(json_t *) * (size_t)j->n);
        j->o = o;
        j->base = &r;
        atomic_store(&j->next, 0);
        /* the second worker reads through its own connection (SQLite
         * handles here are single-threaded); without one, run alone */
        MsError e2;
        memset(&e2, 0, sizeof e2);
        MsTraceDb *db2 = j->n > 1 ? ms_trace_open(ms_trace_path(db), MS_TRACE_READ, &e2) : NULL;
        AllWorker w1 = {j, db}, w2 = {j, db2};
        pthread_t th;
        bool spawned = db2 && pthread_create(&th, NULL, all_worker, &w2) == 0;
        all_worker(&w1);
        if (spawned) pthread_join(th, NULL);
        ms_trace_close(db2);
        /* results, times and deferred writes in module order */
        for (int q = 0; q < j->n; q++) {
            int i = slot_of[q];
            const char *name = modules[j->idx[i]].name;
            json_object_set_new(times, name, json_pack("{s:f,s:f}", "wall", j->wall[i], "cpu", j->cpu[i]));
            if (rc < 0) continue;
            if (j->rc[i] < 0) {
                rc = j->rc[i];
                if (err) *err = j->err[i];
                ms_error_prefix(err, "%s: ", name);
                continue;
            }
            json_object_set(mods, name, j->res[i].doc);
            /* rows are queued only when writing; plan files (--out) always */
            if (json_array_size(j->defer[i]) > 0) {
                double fw = now_s(CLOCK_MONOTONIC), fc = now_s(CLOCK_THREAD_CPUTIME_ID);
                rc = flush_deferred(db, r.run_id, j->defer[i], err);
                if (rc < 0) ms_error_prefix(err, "%s: ", name);
                /* the write is part of the module's cost */
                json_t *tm = json_object_get(times, name);
                json_object_set_new(tm, "wall", json_real(j->wall[i] + now_s(CLOCK_MONOTONIC) - fw));
                json_object_set_new(tm, "cpu", json_real(j->cpu[i] + now_s(CLOCK_THREAD_CPUTIME_ID) - fc));
            }
        }
    }
    if (j)
        for (int i = 0; i < j->n; i++) {
            ms_an_result_clear(&j->res[i]);
            json_decref(j->defer[i]);
        }
    free(j);
    json_object_set_new(times, "total", json_pack("{s:f,s:f}", "wall", now_s(CLOCK_MONOTONIC) - wt,
                                                  "cpu", now_s(CLOCK_PROCESS_CPUTIME_ID) - ct));
    int64_t run_id = r.run_id;
    an_run_close(&r);
    if (rc < 0) {
        json_decref(mods);
        json_decref(skipped);
        json_decref(times);
        return rc;
    }
    *out = json_pack("{s:I,s:o,s:o,s:o}", "run", (json_int_t)run_id, "modules", mods, "skipped", skipped,
                     "timing", times);
    return 0;
}
