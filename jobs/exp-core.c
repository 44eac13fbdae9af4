/* exp-core.c — baseline vs intervened, one prompt at a time, in one context
 * (job-internal.h: MsExpCore).  The intervened pass replays the baseline's
 * evaluation pattern exactly (same prefill chunks, then one token at a
 * time), so an empty intervention set reproduces the baseline bit for bit. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistr.h>

#include "job-internal.h"

/* Observer that feeds two (a trace writer and a routing capture). */
typedef struct {
    MsObserver a, b;
} Tee;

static void tee_routing(void *user, const MsRoutingEvent *ev)
{
    Tee *t = user;
    if (t->a.on_routing) t->a.on_routing(t->a.user, ev);
    if (t->b.on_routing) t->b.on_routing(t->b.user, ev);
}

static void tee_hidden(void *user, const MsHiddenEvent *ev)
{
    Tee *t = user;
    if (t->a.on_hidden) t->a.on_hidden(t->a.user, ev);
    if (t->b.on_hidden) t->b.on_hidden(t->b.user, ev);
}

static void attach(MsExpCore *x, Tee *tee, MsTraceWriter *w, MsRouteCapture *cap)
{
    memset(tee, 0, sizeof *tee);
    if (w) tee->a = ms_trace_writer_observer(w);
    tee->b = ms_route_capture_observer(cap);
    MsObserver o = { tee_routing, tee_hidden, tee };
    ms_context_set_observer(x->ctx, &o);
    x->r.w = w;
}

int ms_exp_core_init(MsExpCore *x, const MsModel *m, int max_prompt, int chunk, int n_threads, int n_gen,
                     bool free_gen, float temp, uint64_t seed, const MsCancel *cancel, MsError *err)
{
    memset(x, 0, sizeof *x);
    const MsModelInfo *in = ms_model_info(m);
    x->m = m;
    x->V = in->n_vocab;
    x->n_layer = in->n_layer;
    x->n_gen = MS_MAX(n_gen, 0);
    x->free_gen = free_gen;
    x->temp = temp;
    x->seed = seed;
    x->cap = max_prompt + x->n_gen;
    MsContextParams cp = ms_context_default_params();
    cp.n_ctx = x->cap;
    cp.n_threads = n_threads;
    cp.n_batch = MS_MIN(chunk, max_prompt);
    if (!(x->ctx = ms_context_new(m, &cp, err))) return err ? err->code : MS_ENOMEM;
    ms_context_set_cancel(x->ctx, cancel);
    int rc = ms_seq_runner_init(&x->r, x->ctx, m, cp.n_batch, err);
    if (rc < 0) {
        ms_exp_core_clear(x);
        return rc;
    }
    x->seq = malloc((size_t)x->cap * sizeof *x->seq);
    x->rows_b = malloc((size_t)x->cap * (size_t)x->V * sizeof *x->rows_b);
    x->row_last = malloc((size_t)x->V * sizeof *x->row_last);
    x->pos = malloc((size_t)x->cap * sizeof *x->pos);
    x->lay = calloc((size_t)MS_MAX(x->n_layer, 1), sizeof *x->lay);
    x->free_toks = malloc((size_t)MS_MAX(x->n_gen, 1) * sizeof *x->free_toks);
    x->cap_b = ms_route_capture_new(x->n_layer, false);
    x->cap_i = ms_route_capture_new(x->n_layer, false);
    if (!x->seq || !x->rows_b || !x->row_last || !x->pos || !x->lay || !x->free_toks || !x->cap_b || !x->cap_i) {
        ms_exp_core_clear(x);
        return ms_error_set(err, MS_ENOMEM, "out of memory (next-token rows of %d tokens × %d)", x->cap, x->V);
    }
    return 0;
}

void ms_exp_core_clear(MsExpCore *x)
{
    ms_sampler_free(x->r.smp);
    ms_seq_runner_clear(&x->r);
    ms_context_free(x->ctx);
    free(x->seq);
    free(x->rows_b);
    free(x->row_last);
    free(x->pos);
    free(x->lay);
    free(x->free_toks);
    ms_route_capture_free(x->cap_b);
    ms_route_capture_free(x->cap_i);
    memset(x, 0, sizeof *x);
}

/* A fresh sampler per prompt and pass: both continuations draw the same
 * stream, so an empty set continues exactly as the baseline did. */
static int reseed(MsExpCore *x, uint64_t stream, MsError *err)
{
    ms_sampler_free(x->r.smp);
    x->r.smp = ms_sampler_new(x->temp, 1.0f, x->seed ^ (0x9E3779B97F4A7C15ULL * (stream + 1)));
    return x->r.smp ? 0 : ms_error_set(err, MS_ENOMEM, "out of memory");
}

static int keep_row(void *user, int pos, const float *row, MsError *err)
{
    MsExpCore *x = user;
    if (pos >= x->cap) return ms_error_set(err, MS_EINTERNAL, "row %d beyond %d", pos, x->cap);
    memcpy(x->rows_b + (size_t)pos * x->V, row, (size_t)x->V * sizeof *row);
    return 0;
}

int ms_exp_core_baseline(MsExpCore *x, const int32_t *ids, int n_prompt, uint64_t stream, MsTraceWriter *w,
                         MsError *err)
{
    if (n_prompt + x->n_gen > x->cap)
        return ms_error_set(err, MS_ERANGE, "prompt of %d tokens longer than the %d planned", n_prompt, x->cap - x->n_gen);
    int rc = reseed(x, stream, err);
    if (rc < 0) return rc;
    Tee tee;
    ms_context_set_intervention(x->ctx, NULL, NULL);
    ms_route_capture_reset(x->cap_b);
    attach(x, &tee, w, x->cap_b);
    x->r.on_row = keep_row;
    x->r.row_user = x;
    int g = 0;
    rc = ms_seq_run(&x->r, ids, n_prompt, x->n_gen, x->seq + n_prompt, &g, err);
    ms_context_set_observer(x->ctx, NULL);
    x->r.on_row = NULL;
    if (rc < 0) return rc;
    memcpy(x->seq, ids, (size_t)n_prompt * sizeof *ids);
    x->n_prompt = n_prompt;
    x->n = n_prompt + g;
    if ((rc = ms_route_capture_status(x->cap_b)) < 0) return ms_error_set(err, rc, "recording routing failed");
    return 0;
}

/* log Σ exp(row) and the argmax (lowest id on ties) */
static double row_lse(const float *row, int V, int32_t *argmax)
{
    float mx = row[0];
    int32_t am = 0;
    for (int v = 1; v < V; v++)
        if (row[v] > mx) { mx = row[v]; am = v; }
    double s = 0;
    for (int v = 0; v < V; v++) s += exp((double)row[v] - mx);
    *argmax = am;
    return mx + log(s);
}

/* KL(baseline || intervened) and the per-position record. */
static int compare_row(void *user, int pos, const float *row, MsError *err)
{
    MsExpCore *x = user;
    if (pos >= x->n) return ms_error_set(err, MS_EINTERNAL, "row %d beyond the sequence (%d)", pos, x->n);
    const float *rb = x->rows_b + (size_t)pos * x->V;
    int32_t ab, ai;
    double lb = row_lse(rb, x->V, &ab), li = row_lse(row, x->V, &ai), kl = 0;
    for (int v = 0; v < x->V; v++) {
        double a = rb[v] - lb, b = row[v] - li;
        kl += exp(a) * (a - b);
    }
    MsComparePos *p = &x->pos[pos];
    p->pos = pos;
    p->kl = (float)MS_MAX(kl, 0.0);   /* rounding can leave −1e−17 for equal rows: KL is never negative */
    p->top1_baseline = ab;
    p->top1_run = ai;
    p->lp_baseline = p->lp_run = NAN;
    if (pos + 1 < x->n) {
        int32_t t = x->seq[pos + 1];
        p->lp_baseline = (float)(rb[t] - lb);
        p->lp_run = (float)(row[t] - li);
    }
    if (pos == x->n_prompt - 1) memcpy(x->row_last, row, (size_t)x->V * sizeof *row);
    return 0;
}

/* Set sizes differ under a top-k override or ser: Jaccard of the id sets. */
static void routing_shift(MsExpCore *x)
{
    x->n_lay = 0;
    for (int l = 0; l < x->n_layer; l++) {
        MsRouteLayer a, b;
        if (!ms_route_capture_layer(x->cap_b, l, &a) || !ms_route_capture_layer(x->cap_i, l, &b)) continue;
        MsCompareLayer *c = &x->lay[x->n_lay++];
        memset(c, 0, sizeof *c);
        c->layer = l;
        int n = MS_MIN(x->n, MS_MIN(a.n_pos, b.n_pos));
        for (int p = 0; p < n; p++) {
            const int32_t *ea = a.experts + (size_t)p * a.k, *eb = b.experts + (size_t)p * b.k;
            /* the experts each position used (ser can leave some of the k out) */
            const int ka = a.n_used[p], kb = b.n_used[p];
            int na = 0, nb = 0, inter = 0;
            for (int i = 0; i < ka; i++) na += ea[i] >= 0;
            for (int j = 0; j < kb; j++) nb += eb[j] >= 0;
            for (int i = 0; i < ka; i++)
                for (int j = 0; j < kb && ea[i] >= 0; j++)
                    if (ea[i] == eb[j]) { inter++; break; }
            int uni = na + nb - inter;
            c->n_pos++;
            c->n_changed += inter != na || inter != nb;
            c->jaccard_sum += uni > 0 ? (double)inter / uni : 1.0;
        }
    }
}

static void summarise(MsExpCore *x)
{
    MsComparePrompt *s = &x->sum;
    memset(s, 0, sizeof *s);
    s->n_tokens = x->n;
    s->n_prompt_tokens = x->n_prompt;
    s->first_divergence = -1;
    double kl = 0;
    for (int p = 0; p < x->n; p++) {
        const MsComparePos *c = &x->pos[p];
        kl += c->kl;
        s->kl_max = MS_MAX(s->kl_max, (double)c->kl);
        s->top1_agree += c->top1_baseline == c->top1_run;
        if (s->first_divergence < 0 && c->top1_baseline != c->top1_run) s->first_divergence = p + 1;
        if (p + 1 < x->n) {
            s->nll_baseline -= c->lp_baseline;
            s->nll_run -= c->lp_run;
            s->n_scored++;
        }
    }
    s->kl_mean = x->n ? kl / x->n : NAN;
    s->tokens_baseline = x->seq + x->n_prompt;
    s->n_tokens_baseline = x->n - x->n_prompt;
    s->tokens_run = x->free_toks;
    s->n_tokens_run = x->n_free;
}

/* The intervened model continues the prompt on its own (nothing stored). */
static int free_continuation(MsExpCore *x, uint64_t stream, MsError *err)
{
    x->n_free = 0;
    if (!x->free_gen || x->n_gen == 0) return 0;
    int rc = reseed(x, stream, err);
    if (rc < 0 || (rc = ms_context_truncate(x->ctx, x->n_prompt)) < 0) return rc;
    ms_context_set_observer(x->ctx, NULL);
    x->r.w = NULL;
    x->r.pos = x->n_prompt;
    memcpy(x->r.prev, x->row_last, (size_t)x->V * sizeof *x->r.prev);
    for (int g = 0; g < x->n_gen; g++) {
        int32_t id = ms_seq_next(&x->r, err);
        if (id < -1) return id;
        if (id < 0) break;
        x->free_toks[x->n_free++] = id;
        if (g + 1 < x->n_gen && (rc = ms_seq_feed(&x->r, &id, 1, x->n_prompt, err)) < 0) return rc;
    }
    return 0;
}

int ms_exp_core_intervened(MsExpCore *x, const MsIntervention *iv, uint64_t stream, MsTraceWriter *w,
                           MsError *err)
{
    int rc = ms_context_set_intervention(x->ctx, iv, err);
    if (rc < 0) return rc;
    Tee tee;
    ms_route_capture_reset(x->cap_i);
    attach(x, &tee, w, x->cap_i);
    x->r.on_row = compare_row;
    x->r.row_user = x;
    ms_seq_begin(&x->r);
    rc = ms_seq_feed(&x->r, x->seq, x->n_prompt, x->n_prompt, err);
    /* the continuation one token at a time, as the baseline generated it */
    for (int t = x->n_prompt; rc == 0 && t < x->n; t++) rc = ms_seq_feed(&x->r, x->seq + t, 1, x->n_prompt, err);
    ms_context_set_observer(x->ctx, NULL);
    x->r.on_row = NULL;
    if (rc < 0) return rc;
    if ((rc = ms_route_capture_status(x->cap_i)) < 0) return ms_error_set(err, rc, "recording routing failed");
    routing_shift(x);
    if ((rc = free_continuation(x, stream, err)) < 0) return rc;
    summarise(x);
    return 0;
}

char *ms_job_utf8(const char *raw, size_t len)
{
    /* each invalid byte becomes U+FFFD: text columns stay valid UTF-8 */
    char *out = malloc(3 * len + 1);
    size_t o = 0;
    for (size_t i = 0; out && i < len;) {
        ucs4_t uc;
        int k = u8_mbtouc(&uc, (const uint8_t *)raw + i, len - i);
        if (uc == 0xFFFD && !(k == 3 && !memcmp(raw + i, "\xEF\xBF\xBD", 3))) {
            memcpy(out + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i += 1;
        } else {
            memcpy(out + o, raw + i, (size_t)k);
            o += (size_t)k;
            i += (size_t)k;
        }
    }
    if (out) out[o] = 0;
    return out;
}

char *ms_job_text(const MsTokenizer *tok, const int32_t *ids, int n)
{
    size_t len = 0;
    char *raw = ms_tokenizer_decode(tok, ids, (size_t)MS_MAX(n, 0), &len);
    if (!raw) return NULL;
    char *out = ms_job_utf8(raw, len);
    free(raw);
    return out;
}
