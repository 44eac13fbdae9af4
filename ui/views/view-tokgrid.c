/* view-tokgrid.c — one prompt's tokens and routing for the `tokens` and
 * `heatmap` views (view-tokgrid.h).  The routing is read once, one packed
 * row per (token, MoE layer), so a 100k-token prompt at 16 layers is 1.6 M
 * rows decoded in C; router probabilities (E values per row) are read only
 * when the entropy colouring asks for them. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "view-tokgrid.h"

#define CANCEL_EVERY 4096

int64_t ms_view_resolve_run(MsTraceDb *db, int64_t p_run, MsTraceRunInfo *info, MsError *err)
{
    memset(info, 0, sizeof *info);
    if (p_run > 0) {
        int rc = ms_trace_run_info(db, p_run, info, err);
        if (rc == MS_ENOTFOUND)
            return ms_error_set(err, MS_ENOTFOUND, "%s: no run %lld", ms_trace_path(db), (long long)p_run);
        return rc < 0 ? rc : p_run;
    }
    int64_t *ids = NULL;
    int n = 0, rc = ms_trace_runs(db, &ids, &n, err);
    if (rc < 0) return rc;
    for (int i = n - 1; i >= 0; i--) {
        rc = ms_trace_run_info(db, ids[i], info, err);
        if (rc < 0) {
            free(ids);
            return rc;
        }
        if (info->n_prompts > 0) {
            int64_t id = ids[i];
            free(ids);
            return id;
        }
        ms_trace_run_info_clear(info);
    }
    free(ids);
    return ms_error_set(err, MS_ENOTFOUND, "%s: no run with committed prompts (trace one with `moescope trace`)",
                        ms_trace_path(db));
}

void ms_tokgrid_free(MsTokGrid *g)
{
    if (!g) return;
    free(g->pieces);
    free(g->piece_off);
    free(g->token_id);
    free(g->generated);
    free(g->piece_w);
    free(g->row_layer);
    free(g->arena);
    free(g);
}

static bool cancelled(const MsViewParams *p, MsError *err)
{
    if (!ms_cancel_requested(p->cancel)) return false;
    ms_error_set(err, MS_ECANCELLED, "cancelled");
    return true;
}

static uint16_t get_u16(const unsigned char *p) { return (uint16_t)(p[0] | p[1] << 8); }

static float get_f32(const unsigned char *p)
{
    uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    return ms_fp32_from_bits(u);
}

/* Tokens of the prompt: positions must be 0..n-1 (the writer guarantees
 * it; a hole is reported rather than drawn wrong). */
static int read_tokens(MsTraceDb *db, MsTokGrid *g, int n_expected, const MsViewParams *p, MsError *err)
{
    size_t cap = 4096, used = 0;
    int n = 0, ncap = n_expected > 0 ? n_expected : 64;
    g->pieces = malloc(cap);
    g->piece_off = malloc(((size_t)ncap + 1) * sizeof *g->piece_off);
    g->token_id = malloc((size_t)ncap * sizeof *g->token_id);
    g->generated = malloc((size_t)ncap);
    if (!g->pieces || !g->piece_off || !g->token_id || !g->generated)
        return ms_error_set(err, MS_ENOMEM, "out of memory");
    MsTraceCursor *c = ms_trace_tokens(db, g->run_id, g->prompt_id, err);
    if (!c) return err && err->code ? err->code : MS_EDB;
    MsTraceToken t;
    int rc;
    g->n_prompt_tok = -1;
    while ((rc = ms_trace_tokens_next(c, &t, err)) == 1) {
        if (t.pos != n) {
            rc = ms_error_set(err, MS_EFORMAT, "%s: prompt %d of run %lld has token position %d where %d was expected",
                              ms_trace_path(db), g->prompt_index, (long long)g->run_id, t.pos, n);
            break;
        }
        if ((n & (CANCEL_EVERY - 1)) == 0 && cancelled(p, err)) {
            rc = MS_ECANCELLED;
            break;
        }
        if (n == ncap) {
            ncap *= 2;
            int64_t *po = realloc(g->piece_off, ((size_t)ncap + 1) * sizeof *po);
            if (po) g->piece_off = po;
            int32_t *ti = realloc(g->token_id, (size_t)ncap * sizeof *ti);
            if (ti) g->token_id = ti;
            uint8_t *ge = realloc(g->generated, (size_t)ncap);
            if (ge) g->generated = ge;
            if (!po || !ti || !ge) {
                rc = ms_error_set(err, MS_ENOMEM, "out of memory");
                break;
            }
        }
        if (used + t.piece_len > cap) {
            while (used + t.piece_len > cap) cap *= 2;
            char *pc = realloc(g->pieces, cap);
            if (!pc) {
                rc = ms_error_set(err, MS_ENOMEM, "out of memory");
                break;
            }
            g->pieces = pc;
        }
        if (t.piece_len) memcpy(g->pieces + used, t.piece, t.piece_len);
        g->piece_off[n] = (int64_t)used;
        used += t.piece_len;
        g->token_id[n] = t.token_id;
        g->generated[n] = t.is_generated;
        if (t.is_generated && g->n_prompt_tok < 0) g->n_prompt_tok = n;
        n++;
    }
    ms_trace_cursor_free(c);
    if (rc < 0) return rc;
    g->piece_off[n] = (int64_t)used;
    g->n_tok = n;
    if (g->n_prompt_tok < 0) g->n_prompt_tok = n;
    if (n == 0)
        return ms_error_set(err, MS_ENOTFOUND, "%s: prompt %d of run %lld has no tokens", ms_trace_path(db),
                            g->prompt_index, (long long)g->run_id);
    return 0;
}

/* The cell arrays in one block: huge pages for a large one (Linux THP in
 * "madvise" mode), so a 100k-token prompt faults in a few dozen pages
 * instead of thousands. */
static void *arena_alloc(size_t n)
{
    void *p = NULL;
#ifdef MADV_HUGEPAGE
    if (n >= ((size_t)4 << 20)) {
        if (posix_memalign(&p, (size_t)2 << 20, n)) return NULL;
        madvise(p, n, MADV_HUGEPAGE);
        return p;
    }
#endif
    return malloc(n);
}

static size_t up64(size_t n) { return (n + 63) & ~(size_t)63; }

static int alloc_cells(MsTokGrid *g, unsigned flags, MsError *err)
{
    size_t cells = (size_t)g->n_rows * (size_t)g->n_tok, kc = cells * (size_t)g->kmax;
    size_t sz[8] = { up64(cells * 4), up64(cells * 4), (flags & MS_TOKGRID_WENTROPY) ? up64(cells * 4) : 0,
                     g->has_probs && (flags & MS_TOKGRID_PROBS) ? up64(cells * 4) : 0,
                     g->has_stats ? up64(cells * 4) : 0, up64(cells), up64(kc * 2), up64(kc * 2) };
    size_t total = 0;
    for (int i = 0; i < 8; i++) total += sz[i];
    unsigned char *a = arena_alloc(total);
    if (!a)
        return ms_error_set(err, MS_ENOMEM, "out of memory for the routing of %d tokens x %d layers", g->n_tok,
                            g->n_rows);
    g->arena = a;
    g->top1 = (int32_t *)a;
    a += sz[0];
    g->top1_w = (float *)a;
    a += sz[1];
    g->w_entropy = sz[2] ? (float *)a : NULL;
    a += sz[2];
    g->p_entropy = sz[3] ? (float *)a : NULL;
    a += sz[3];
    g->hidden = sz[4] ? (float *)a : NULL;
    a += sz[4];
    g->n_sel = a;
    a += sz[5];
    g->sel_e = (uint16_t *)a;
    a += sz[6];
    g->sel_w = (uint16_t *)a;
    memset(g->n_sel, 0, cells);
    memset(g->sel_e, 0xFF, kc * 2);
    for (size_t i = 0; i < cells; i++) {
        g->top1[i] = -1;
        g->top1_w[i] = NAN;
        if (g->w_entropy) g->w_entropy[i] = NAN;
        if (g->p_entropy) g->p_entropy[i] = NAN;
        if (g->hidden) g->hidden[i] = NAN;
    }
    return 0;
}

static int read_routing(MsTraceDb *db, MsTokGrid *g, const MsViewParams *p, MsError *err)
{
    MsTraceCursor *c = ms_trace_routing(db, g->run_id, g->prompt_id, err);
    if (!c) return err && err->code ? err->code : MS_EDB;
    MsTraceRoutePacked r;
    int rc;
    int64_t seen = 0;
    float ws[256];
    while ((rc = ms_trace_routing_next_packed(c, &r, err)) == 1) {
        if ((++seen & (CANCEL_EVERY - 1)) == 0 && cancelled(p, err)) {
            rc = MS_ECANCELLED;
            break;
        }
        if (r.layer < 0 || r.layer >= MS_TRACE_MAX_LAYER || r.pos < 0 || r.pos >= g->n_tok) continue;
        int row = g->layer_row[r.layer];
        if (row < 0 || r.k <= 0) continue;
        int k = r.k < g->kmax ? r.k : g->kmax;
        size_t cell = (size_t)row * (size_t)g->n_tok + (size_t)r.pos;
        size_t sel = cell * (size_t)g->kmax;
        double sum = 0;
        for (int j = 0; j < k; j++) g->sel_e[sel + j] = get_u16(r.experts + 2 * j);
        if (r.weights) {
            for (int j = 0; j < k; j++) {
                ws[j] = get_f32(r.weights + 4 * j);
                g->sel_w[sel + j] = ms_fp32_to_fp16(ws[j]);
                if (ws[j] > 0) sum += ws[j];
            }
        } else {
            for (int j = 0; j < k; j++) g->sel_w[sel + j] = 0x7e00; /* NaN */
        }
        g->n_sel[cell] = (uint8_t)k;
        g->top1[cell] = g->sel_e[sel];
        if (r.weights) {
            g->has_weights = true;
            g->top1_w[cell] = ws[0];
            if (g->w_entropy && sum > 0) {
                double h = 0;
                for (int j = 0; j < k; j++)
                    if (ws[j] > 0) h -= ws[j] / sum * log(ws[j] / sum);
                g->w_entropy[cell] = (float)(h > 0 ? h : 0);
            }
        }
    }
    ms_trace_cursor_free(c);
    return rc < 0 ? rc : 0;
}

static int read_probs(MsTraceDb *db, MsTokGrid *g, const MsViewParams *p, MsError *err)
{
    MsTraceCursor *c = ms_trace_probs(db, g->run_id, g->prompt_id, err);
    if (!c) return err && err->code ? err->code : MS_EDB;
    MsTraceProbs pr;
    int rc;
    int64_t seen = 0;
    while ((rc = ms_trace_probs_next(c, &pr, err)) == 1) {
        if ((++seen & (CANCEL_EVERY - 1)) == 0 && cancelled(p, err)) {
            rc = MS_ECANCELLED;
            break;
        }
        if (!pr.probs || pr.layer < 0 || pr.layer >= MS_TRACE_MAX_LAYER || pr.pos < 0 || pr.pos >= g->n_tok)
            continue;
        int row = g->layer_row[pr.layer];
        if (row < 0) continue;
        /* sigmoid routers' scores do not sum to 1: normalise (softmax: no-op) */
        double s = 0, h = 0;
        for (int e = 0; e < pr.n_expert; e++)
            if (pr.probs[e] > 0) s += pr.probs[e];
        if (!(s > 0)) continue;
        for (int e = 0; e < pr.n_expert; e++)
            if (pr.probs[e] > 0) h -= pr.probs[e] / s * log(pr.probs[e] / s);
        g->p_entropy[(size_t)row * (size_t)g->n_tok + (size_t)pr.pos] = (float)(h > 0 ? h : 0);
    }
    ms_trace_cursor_free(c);
    return rc < 0 ? rc : 0;
}

static int read_hidden(MsTraceDb *db, MsTokGrid *g, const MsViewParams *p, MsError *err)
{
    MsTraceCursor *c = ms_trace_hidden(db, g->run_id, g->prompt_id, err);
    if (!c) return err && err->code ? err->code : MS_EDB;
    MsTraceHidden buf[1024];
    int n;
    while ((n = ms_trace_hidden_next(c, buf, 1024, err)) > 0) {
        if (cancelled(p, err)) {
            n = MS_ECANCELLED;
            break;
        }
        for (int i = 0; i < n; i++) {
            const MsTraceHidden *h = &buf[i];
            if (h->layer < 0 || h->layer >= MS_TRACE_MAX_LAYER || h->pos < 0 || h->pos >= g->n_tok) continue;
            int row = g->layer_row[h->layer];
            if (row >= 0) g->hidden[(size_t)row * (size_t)g->n_tok + (size_t)h->pos] = h->maxabs;
        }
    }
    ms_trace_cursor_free(c);
    return n < 0 ? n : 0;
}

static float max_of(const float *v, size_t n)
{
    float m = 0;
    if (!v) return 0;
    for (size_t i = 0; i < n; i++)
        if (v[i] > m && isfinite(v[i])) m = v[i];
    return m;
}

/* Piece widths at the 12-unit token font; equal pieces are measured once
 * (a long prompt repeats a few thousand distinct pieces). */
static int measure_pieces(MsTokGrid *g, const MsViewParams *p, MsError *err)
{
    g->piece_w = malloc((size_t)g->n_tok * sizeof *g->piece_w);
    size_t cap = 16;
    while (cap < 2 * (size_t)g->n_tok) cap *= 2;
    int32_t *slot = malloc(cap * sizeof *slot);   /* token position whose piece is cached, −1 = empty */
    MsPlotStyle st = { .font_size = 12, .text_scale = 1 };
    MsPlotText *t = ms_plot_text_new(&st);
    int rc = 0;
    if (!g->piece_w || !slot || !t) {
        rc = ms_error_set(err, MS_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < cap; i++) slot[i] = -1;
    for (int pos = 0; pos < g->n_tok; pos++) {
        if ((pos & (CANCEL_EVERY - 1)) == 0 && cancelled(p, err)) {
            rc = MS_ECANCELLED;
            goto out;
        }
        const char *b = g->pieces + g->piece_off[pos];
        size_t len = (size_t)(g->piece_off[pos + 1] - g->piece_off[pos]);
        uint64_t h = 1469598103934665603ull;
        for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)b[i]) * 1099511628211ull;
        size_t s = (size_t)(h & (cap - 1));
        for (;;) {
            int32_t q = slot[s];
            if (q < 0) {
                MsPlotTextSize sz;
                ms_plot_token_measure(t, b, len, 0, 0, &sz);
                g->piece_w[pos] = (float)sz.width;
                slot[s] = pos;
                break;
            }
            size_t ql = (size_t)(g->piece_off[q + 1] - g->piece_off[q]);
            if (ql == len && !memcmp(g->pieces + g->piece_off[q], b, len)) {
                g->piece_w[pos] = g->piece_w[q];
                break;
            }
            s = (s + 1) & (cap - 1);
        }
    }
out:
    ms_plot_text_free(t);
    free(slot);
    return rc;
}

int ms_tokgrid_prepare(MsTraceDb *db, const MsViewParams *p, unsigned flags, MsTokGrid **out, MsError *err)
{
    *out = NULL;
    MsTraceRunInfo info;
    MsTracePromptInfo pi = { 0 };
    int64_t run = ms_view_resolve_run(db, p->run, &info, err);
    if (run < 0) return (int)run;
    MsTokGrid *g = calloc(1, sizeof *g);
    int rc = 0;
    if (!g) {
        rc = ms_error_set(err, MS_ENOMEM, "out of memory");
        goto fail;
    }
    g->run_id = run;
    g->prompt_index = p->prompt;
    const MsTraceModel *m = &info.model;
    snprintf(g->model, sizeof g->model, "%s", m->name[0] ? m->name : m->file_name[0] ? m->file_name : m->arch);
    g->n_layer = m->n_layer;
    g->n_expert = m->n_expert;
    g->k = m->n_expert_used;
    g->has_probs = info.has_probs;
    g->has_stats = info.has_stats;
    rc = ms_trace_prompt_get(db, run, p->prompt, &pi, err);
    if (rc == MS_ENOTFOUND) {
        rc = ms_error_set(err, MS_ENOTFOUND, "%s: run %lld has no prompt %d (it has %lld, numbered from 0)",
                          ms_trace_path(db), (long long)run, p->prompt, (long long)info.n_prompts);
        goto fail;
    }
    if (rc < 0) goto fail;
    g->prompt_id = pi.prompt_id;

    /* rows: MoE blocks in the range */
    int lo = p->layer_lo >= 0 ? p->layer_lo : 0, hi = p->layer_hi >= 0 ? p->layer_hi : MS_TRACE_MAX_LAYER - 1;
    g->row_layer = malloc(MS_TRACE_MAX_LAYER * sizeof *g->row_layer);
    if (!g->row_layer) {
        rc = ms_error_set(err, MS_ENOMEM, "out of memory");
        goto fail;
    }
    for (int l = 0; l < MS_TRACE_MAX_LAYER; l++) {
        g->layer_row[l] = -1;
        if (l < m->n_layer && m->is_moe[l] && l >= lo && l <= hi) {
            g->layer_row[l] = g->n_rows;
            g->row_layer[g->n_rows++] = l;
        }
    }
    if (g->n_rows == 0) {
        if (p->layer_lo >= 0)
            rc = ms_error_set(err, MS_EINVAL, "%s: run %lld has no MoE block in %d-%d (the model has %d blocks)",
                              ms_trace_path(db), (long long)run, lo, hi, m->n_layer);
        else
            rc = ms_error_set(err, MS_EINVAL, "%s: run %lld's model has no MoE block", ms_trace_path(db),
                              (long long)run);
        goto fail;
    }
    g->kmax = m->n_expert_used > 0 ? m->n_expert_used : 1;
    if (g->kmax > 255) g->kmax = 255;

    if ((rc = read_tokens(db, g, pi.n_tokens, p, err)) < 0) goto fail;
    if ((rc = alloc_cells(g, flags, err)) < 0) goto fail;
    if ((rc = read_routing(db, g, p, err)) < 0) goto fail;
    if (g->p_entropy && (rc = read_probs(db, g, p, err)) < 0) goto fail;
    if (g->hidden && (rc = read_hidden(db, g, p, err)) < 0) goto fail;
    if ((flags & MS_TOKGRID_WIDTHS) && (rc = measure_pieces(g, p, err)) < 0) goto fail;
    size_t cells = (size_t)g->n_rows * (size_t)g->n_tok;
    g->max_top1_w = max_of(g->top1_w, cells);
    g->max_w_entropy = max_of(g->w_entropy, cells);
    g->max_p_entropy = max_of(g->p_entropy, cells);
    g->max_hidden = max_of(g->hidden, cells);
    ms_trace_prompt_info_clear(&pi);
    ms_trace_run_info_clear(&info);
    *out = g;
    return 0;
fail:
    ms_trace_prompt_info_clear(&pi);
    ms_trace_run_info_clear(&info);
    ms_tokgrid_free(g);
    return rc < 0 ? rc : MS_EINTERNAL;
}

bool ms_tokgrid_selects(const MsTokGrid *g, int row, int pos, int e)
{
    if (e < 0 || e > 0xFFFE) return false;
    const uint16_t *s = g->sel_e + ((size_t)row * (size_t)g->n_tok + (size_t)pos) * (size_t)g->kmax;
    for (int j = 0; j < g->kmax; j++)
        if (s[j] == e) return true;
    return false;
}

/* Whether the kmax ids at s hold e: four at a time, a 16-bit lane of
 * (ids ^ e) is zero where the id is e (unused entries are 0xFFFF, never e). */
static inline bool sel_has(const uint16_t *s, int K, uint16_t e)
{
    const uint64_t lanes = 0x0001000100010001ull, bcast = lanes * e, high = lanes << 15;
    uint64_t hit = 0;
    int j = 0;
    for (; j + 4 <= K; j += 4) {
        uint64_t v;
        memcpy(&v, s + j, 8);
        v ^= bcast;
        hit |= (v - lanes) & ~v & high;
    }
    for (; j < K; j++) hit |= s[j] == e;
    return hit != 0;
}

void ms_tokgrid_mark_selects(const MsTokGrid *g, int row, int e, int64_t t0, int64_t t1, double c0,
                             double px_per_tok, uint8_t *mark, int npx)
{
    if (e < 0 || e > 0xFFFE || row < 0 || row >= g->n_rows || !(px_per_tok > 0)) return;
    if (t0 < 0) t0 = 0;
    if (t1 > g->n_tok) t1 = g->n_tok;
    const int K = g->kmax;
    const uint16_t ee = (uint16_t)e;
    const uint16_t *base = g->sel_e + (size_t)row * (size_t)g->n_tok * (size_t)K;
    if (px_per_tok < 1) {
        /* zoomed out: per pixel column i, the tokens overlapping it, t with
         * x(t) < i + 1 and x(t) + px_per_tok > i; the first that selects
         * e marks it and ends the scan (the same marks as token by token) */
        double tpp = 1 / px_per_tok;
        for (int i = 0; i < npx; i++) {
            int64_t ta = (int64_t)floor(c0 + i * tpp), tb = (int64_t)ceil(c0 + (i + 1) * tpp);
            if (ta < t0) ta = t0;
            if (tb > t1) tb = t1;
            for (int64_t t = ta; t < tb; t++)
                if (sel_has(base + (size_t)t * (size_t)K, K, ee)) {
                    mark[i] = 1;
                    break;
                }
        }
        return;
    }
    for (int64_t t = t0; t < t1; t++) {
        if (!sel_has(base + (size_t)t * (size_t)K, K, ee)) continue;
        double xa = ((double)t - c0) * px_per_tok;
        int64_t a = (int64_t)floor(xa), b = (int64_t)ceil(xa + px_per_tok);
        if (a < 0) a = 0;
        if (b > npx) b = npx;
        for (int64_t i = a; i < b; i++) mark[i] = 1;
    }
}

const float *ms_tokgrid_entropy(const MsTokGrid *g, bool *from_probs)
{
    *from_probs = g->p_entropy != NULL;
    if (g->p_entropy) return g->p_entropy;
    return g->has_weights ? g->w_entropy : NULL;
}

double ms_tokgrid_value(const MsTokGrid *g, MsViewColorBy c, int row, int pos)
{
    if (row < 0 || row >= g->n_rows || pos < 0 || pos >= g->n_tok) return NAN;
    size_t i = (size_t)row * (size_t)g->n_tok + (size_t)pos;
    bool fp;
    const float *ent;
    switch (c) {
    case MS_VIEW_COLOR_ENTROPY: ent = ms_tokgrid_entropy(g, &fp); return ent ? ent[i] : NAN;
    case MS_VIEW_COLOR_WEIGHT: return g->top1_w[i];
    case MS_VIEW_COLOR_HIDDEN: return g->hidden ? g->hidden[i] : NAN;
    default: return g->top1[i];
    }
}

void ms_view_append(char *buf, size_t size, const char *s)
{
    size_t o = strnlen(buf, size), n = strlen(s);
    if (o + 1 >= size) return;
    if (n > size - 1 - o) {
        n = size - 1 - o;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) n--;
    }
    memcpy(buf + o, s, n);
    buf[o + n] = 0;
}

/* Append printf output to buf at *o, marking overflow. */
static bool app(char *buf, size_t size, size_t *o, bool *full, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static bool app(char *buf, size_t size, size_t *o, bool *full, const char *fmt, ...)
{
    if (*full) return false;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + *o, size - *o, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= size - *o) {
        buf[*o] = 0;
        *full = true;
        return false;
    }
    *o += (size_t)n;
    return true;
}

void ms_tokgrid_token_text(const MsTokGrid *g, int pos, char *buf, size_t size)
{
    if (!size) return;
    buf[0] = 0;
    if (pos < 0 || pos >= g->n_tok || size < 16) return;
    const size_t reserve = 8;   /* room for the "…" */
    size_t lim = size - reserve, o = 0;
    bool full = false;
    char *esc = ms_plot_token_escape(g->pieces + g->piece_off[pos],
                                     (size_t)(g->piece_off[pos + 1] - g->piece_off[pos]), MS_PLOT_ESC_SPACE);
    app(buf, lim, &o, &full, "token %d \xE2\x80\x9C%s\xE2\x80\x9D", pos, esc ? esc : "?");
    free(esc);
    if (g->token_id[pos] >= 0) app(buf, lim, &o, &full, " (id %d)", g->token_id[pos]);
    if (g->generated[pos]) app(buf, lim, &o, &full, ", generated");
    for (int r = 0; r < g->n_rows && !full; r++) {
        size_t c = (size_t)r * (size_t)g->n_tok + (size_t)pos;
        const uint16_t *e = g->sel_e + c * (size_t)g->kmax;
        const uint16_t *w = g->sel_w + c * (size_t)g->kmax;
        app(buf, lim, &o, &full, "\nlayer %d:", g->row_layer[r]);
        if (g->n_sel[c] == 0) app(buf, lim, &o, &full, " no routing");
        for (int j = 0; j < g->n_sel[c] && !full; j++) {
            float wj = ms_fp16_to_fp32(w[j]);
            if (isfinite(wj)) app(buf, lim, &o, &full, "%s E%d %.3g", j ? "," : "", e[j], wj);
            else app(buf, lim, &o, &full, "%s E%d", j ? "," : "", e[j]);
        }
    }
    if (full) {
        /* cut after the last whole line and say so */
        char *nl = strrchr(buf, '\n');
        if (nl && nl != buf) *nl = 0;
        size_t n = strlen(buf);
        snprintf(buf + n, size - n, "\n\xE2\x80\xA6");
    }
}
