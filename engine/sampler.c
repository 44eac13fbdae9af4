/* sampler.c — token sampling and log-softmax helpers (engine.h).
 *
 * Random numbers: xoshiro256** (Blackman & Vigna), state seeded from the user
 * seed through splitmix64 as its authors recommend, so seed 0 is fine and
 * nearby seeds give unrelated streams.  All probability arithmetic is in
 * double so results do not depend on vocabulary order or size rounding. */
#include <math.h>
#include <stdlib.h>

#include "engine.h"
#include "ms-rng.h"

struct MsSampler {
    float temp, top_p;
    MsRng rng;          /* xoshiro256** state */
    double *p;          /* [cap] scratch: probabilities */
    int32_t *idx;       /* [cap] scratch: ids sorted for top_p */
    int cap;
};


MsSampler *ms_sampler_new(float temp, float top_p, uint64_t seed)
{
    MsSampler *sm = calloc(1, sizeof *sm);
    if (!sm) return NULL;
    sm->temp = isnan(temp) ? 0.0f : temp;
    sm->top_p = isnan(top_p) ? 1.0f : top_p;
    ms_rng_seed(&sm->rng, seed);
    return sm;
}

void ms_sampler_free(MsSampler *s)
{
    if (!s) return;
    free(s->p);
    free(s->idx);
    free(s);
}

/* argmax, lowest id on ties; NaN never wins. */
static int32_t argmax(const float *l, int n)
{
    int32_t best = 0;
    for (int i = 1; i < n; i++)
        if (l[i] > l[best] || (isnan(l[best]) && !isnan(l[i]))) best = i;
    return best;
}

/* Descending probability, lower id first on ties. */
static int cmp_desc(const void *a, const void *b, void *ctx)
{
    const double *p = ctx;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    if (p[x] != p[y]) return p[x] > p[y] ? -1 : 1;
    return (x > y) - (x < y);
}

int32_t ms_sampler_sample(MsSampler *s, const float *logits, int n_vocab)
{
    if (!s || !logits || n_vocab <= 0) return -1;
    if (s->temp <= 0.0f) return argmax(logits, n_vocab);
    if (n_vocab > s->cap) {
        double *p = realloc(s->p, (size_t)n_vocab * sizeof *p);
        if (p) s->p = p;
        int32_t *idx = realloc(s->idx, (size_t)n_vocab * sizeof *idx);
        if (idx) s->idx = idx;
        if (!p || !idx) return argmax(logits, n_vocab); /* no memory: stay deterministic */
        s->cap = n_vocab;
    }
    int32_t best = argmax(logits, n_vocab);
    double max = logits[best], inv_t = 1.0 / (double)s->temp, total = 0.0;
    if (isnan(max) || isinf(max)) return best; /* degenerate row: +inf wins outright */
    for (int i = 0; i < n_vocab; i++) {
        double v = isnan(logits[i]) ? 0.0 : exp(((double)logits[i] - max) * inv_t);
        s->p[i] = v;
        total += v;
    }
    double u = ms_rng_uniform01(&s->rng);
    if (s->top_p < 1.0f) {
        for (int i = 0; i < n_vocab; i++) s->idx[i] = i;
        qsort_r(s->idx, (size_t)n_vocab, sizeof *s->idx, cmp_desc, s->p);
        /* smallest prefix whose mass reaches top_p (at least one token) */
        double want = (double)s->top_p * total, cum = 0.0;
        int kept = 0;
        while (kept < n_vocab) {
            cum += s->p[s->idx[kept++]];
            if (cum >= want) break;
        }
        double target = u * cum, acc = 0.0;
        for (int i = 0; i < kept; i++) {
            acc += s->p[s->idx[i]];
            if (target < acc) return s->idx[i];
        }
        return s->idx[kept - 1];
    }
    double target = u * total, acc = 0.0;
    int32_t last = best;
    for (int i = 0; i < n_vocab; i++) {
        if (s->p[i] <= 0.0) continue;
        acc += s->p[i];
        last = i;
        if (target < acc) return i;
    }
    return last; /* rounding left target at the very top */
}

/* log-sum-exp of a row in double; -inf rows give -inf. */
static double row_lse(const float *l, int n, double *max_out)
{
    double max = -INFINITY;
    for (int i = 0; i < n; i++)
        if (l[i] > max) max = l[i];
    *max_out = max;
    if (!isfinite(max)) return max;
    double sum = 0.0;
    for (int i = 0; i < n; i++) sum += exp((double)l[i] - max);
    return max + log(sum);
}

float ms_logprob(const float *logits, int n_vocab, int32_t id)
{
    if (!logits || n_vocab <= 0 || id < 0 || id >= n_vocab) return NAN;
    double max;
    double lse = row_lse(logits, n_vocab, &max);
    return (float)((double)logits[id] - lse);
}

float ms_entropy(const float *logits, int n_vocab)
{
    if (!logits || n_vocab <= 0) return NAN;
    double max;
    double lse = row_lse(logits, n_vocab, &max);
    if (!isfinite(lse)) return NAN;
    /* H = -sum p log p with log p = l - lse; zero-probability terms skipped */
    double h = 0.0;
    for (int i = 0; i < n_vocab; i++) {
        double lp = (double)logits[i] - lse;
        if (lp == -INFINITY) continue;
        h -= exp(lp) * lp;
    }
    return (float)(h < 0.0 ? 0.0 : h);
}
