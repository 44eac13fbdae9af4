/* load.c — METHODS.md §1: expert load, imbalance, entropy, co-activation. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "analysis.h"

struct MsLoadAcc {
    int E, k;
    int64_t M, nsel;
    int64_t *c;
    /* adjacent Jaccard: previous token's membership, stamped to avoid clears */
    int64_t *prev_stamp, stamp;
    int prev_n;
    bool have_prev;
    double jac_sum;
    int64_t jac_n;
    /* probabilities */
    int64_t np;
    double *psum, hsum, hmean, hm2, margin_sum;  /* hmean, hm2: Welford's running mean and Σ(h−mean)² */
    /* outputs */
    double *share, *cover, *pbar, *sorted_tmp;
    int64_t *gini_tmp;   /* ms_gini's sort buffer, made here: the stats step cannot fail */
};

MsLoadAcc *ms_load_acc_new(int n_expert, int k)
{
    if (n_expert < 1 || k < 1) return NULL;
    MsLoadAcc *a = calloc(1, sizeof *a);
    if (!a) return NULL;
    a->E = n_expert;
    a->k = k;
    size_t E = (size_t)n_expert;
    a->c = calloc(E, sizeof *a->c);
    a->prev_stamp = calloc(E, sizeof *a->prev_stamp);
    a->psum = calloc(E, sizeof *a->psum);
    a->share = calloc(E, sizeof *a->share);
    a->cover = calloc(E, sizeof *a->cover);
    a->pbar = calloc(E, sizeof *a->pbar);
    a->sorted_tmp = calloc(E, sizeof *a->sorted_tmp);
    a->gini_tmp = calloc(E, sizeof *a->gini_tmp);
    if (!a->c || !a->prev_stamp || !a->psum || !a->share || !a->cover || !a->pbar ||
        !a->sorted_tmp || !a->gini_tmp) {
        ms_load_acc_free(a);
        return NULL;
    }
    return a;
}

void ms_load_acc_free(MsLoadAcc *a)
{
    if (!a) return;
    free(a->c);
    free(a->prev_stamp);
    free(a->psum);
    free(a->share);
    free(a->cover);
    free(a->pbar);
    free(a->sorted_tmp);
    free(a->gini_tmp);
    free(a);
}

void ms_load_acc_begin_seq(MsLoadAcc *a)
{
    if (a) a->have_prev = false;
}

int ms_load_acc_add(MsLoadAcc *a, const int32_t *ids, int n)
{
    if (!a || (n > 0 && !ids)) return MS_EINVAL;
    for (int i = 0; i < n; i++)
        if (ids[i] >= a->E) return MS_ERANGE;
    int64_t st = a->stamp + 1;
    int inter = 0, cur_n = 0;
    for (int i = 0; i < n; i++) {
        int e = ids[i];
        if (e < 0) continue;
        a->c[e]++;
        a->nsel++;
        cur_n++;
        if (a->have_prev && a->prev_stamp[e] == a->stamp) inter++;
    }
    if (a->have_prev) {
        int uni = a->prev_n + cur_n - inter;
        if (uni > 0) {
            a->jac_sum += (double)inter / uni;
            a->jac_n++;
        }
    }
    /* a fresh stamp marks this token's set for the next comparison */
    a->stamp = st + 1;
    for (int i = 0; i < n; i++)
        if (ids[i] >= 0) a->prev_stamp[ids[i]] = a->stamp;
    a->prev_n = cur_n;
    a->have_prev = true;
    a->M++;
    return 0;
}

double ms_entropy_d(const double *p, int n)
{
    double h = 0;
    for (int i = 0; i < n; i++)
        if (p[i] > 0) h -= p[i] * log(p[i]);
    return h;
}

int ms_load_acc_add_probs(MsLoadAcc *a, const float *p)
{
    if (!a || !p) return MS_EINVAL;
    double h = 0, b1 = -INFINITY, b2 = -INFINITY;
    for (int e = 0; e < a->E; e++) {
        double v = p[e];
        a->psum[e] += v;
        if (v > 0) h -= v * log(v);
        if (v > b1) { b2 = b1; b1 = v; }
        else if (v > b2) b2 = v;
    }
    a->hsum += h;
    /* Welford: E[h²]−E[h]² cancels catastrophically when the spread is small */
    double d = h - a->hmean;
    a->hmean += d / (double)(a->np + 1);
    a->hm2 += d * (h - a->hmean);
    a->margin_sum += a->E > 1 ? b1 - b2 : NAN;
    a->np++;
    return 0;
}

const float *ms_router_distribution(const char *score_func, const float *p, int E, float *out)
{
    if (!score_func || E < 1) return p;
    if (!strcmp(score_func, "softmax_topk")) {
        float mx = -INFINITY;
        for (int e = 0; e < E; e++) mx = fmaxf(mx, p[e]);
        double sum = 0;
        for (int e = 0; e < E; e++) sum += (out[e] = expf(p[e] - mx));
        for (int e = 0; e < E; e++) out[e] = sum > 0 ? (float)(out[e] / sum) : 1.0f / (float)E;
        return out;
    }
    if (!strcmp(score_func, "sigmoid")) {
        double sum = 0;
        for (int e = 0; e < E; e++) sum += p[e];
        for (int e = 0; e < E; e++) out[e] = sum > 0 ? (float)(p[e] / sum) : 1.0f / (float)E;
        return out;
    }
    return p;
}

static int cmp_desc_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a < b) - (a > b);
}

static int cmp_asc_i64(const void *x, const void *y)
{
    int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
    return (a > b) - (a < b);
}

/* x: n entries of scratch */
static double gini_into(const int64_t *c, int n, int64_t *x)
{
    memcpy(x, c, (size_t)n * sizeof *x);
    qsort(x, (size_t)n, sizeof *x, cmp_asc_i64);
    double s = 0, w = 0;
    for (int i = 0; i < n; i++) {
        s += (double)x[i];
        w += (double)(i + 1) * (double)x[i];
    }
    if (s <= 0) return NAN;
    return 2.0 * w / ((double)n * s) - (double)(n + 1) / n;
}

double ms_gini(const int64_t *c, int n)
{
    if (n < 1) return NAN;
    int64_t *x = malloc((size_t)n * sizeof *x);
    if (!x) return NAN;
    double g = gini_into(c, n, x);
    free(x);
    return g;
}

double ms_zloss_term(const float *z, int n)
{
    if (n < 1) return NAN;
    double mx = z[0];
    for (int i = 1; i < n; i++) mx = z[i] > mx ? z[i] : mx;
    double s = 0;
    for (int i = 0; i < n; i++) s += exp(z[i] - mx);
    double lse = mx + log(s);
    return lse * lse;
}

void ms_load_acc_stats(MsLoadAcc *a, MsLoadStats *o)
{
    memset(o, 0, sizeof *o);
    int E = a->E;
    o->n_expert = E;
    o->k = a->k;
    o->n_tokens = a->M;
    o->n_selections = a->nsel;
    o->counts = a->c;
    o->share = a->share;
    o->coverage = a->cover;
    double tot = (double)a->nsel;
    double mu = tot / E, var = 0, mx = 0, H = 0;
    for (int e = 0; e < E; e++) {
        double c = (double)a->c[e];
        var += (c - mu) * (c - mu);
        if (c > mx) mx = c;
        a->share[e] = tot > 0 ? c / tot : NAN;
        if (a->share[e] > 0) H -= a->share[e] * log(a->share[e]);
        a->sorted_tmp[e] = a->share[e];
    }
    o->mean = mu;
    o->std = sqrt(var / E);
    if (tot > 0) {
        o->cv = o->std / mu;
        o->max_over_mean = mx / mu;
        o->maxvio = (mx - mu) / mu;
        o->entropy = H;
        o->entropy_norm = E > 1 ? H / log((double)E) : NAN;
        o->exp_entropy = exp(H);
        o->kl_uniform = log((double)E) - H;
        o->gini = gini_into(a->c, E, a->gini_tmp);
        qsort(a->sorted_tmp, (size_t)E, sizeof(double), cmp_desc_double);
        double cum = 0;
        for (int i = 0; i < E; i++) a->cover[i] = (cum += a->sorted_tmp[i]);
    } else {
        o->cv = o->max_over_mean = o->maxvio = NAN;
        o->entropy = o->entropy_norm = o->exp_entropy = o->kl_uniform = o->gini = NAN;
        for (int i = 0; i < E; i++) a->cover[i] = NAN;
    }
    /* mean selections per token = k for full top-k, and right under top-k overrides */
    double kk = a->M > 0 ? (double)a->nsel / (double)a->M : a->k;
    double rare = 0.1 * kk / E;
    for (int e = 0; e < E; e++) {
        if (a->c[e] == 0) o->n_dead++;
        if (a->M > 0 && (double)a->c[e] / (double)a->M < rare) o->n_cold++;
    }
    o->n_jaccard_pairs = a->jac_n;
    o->jaccard_mean = a->jac_n ? a->jac_sum / (double)a->jac_n : NAN;
    o->n_prob_tokens = a->np;
    if (a->np > 0) {
        double np = (double)a->np, laux = 0, imu = 0, ivar = 0;
        for (int e = 0; e < E; e++) {
            a->pbar[e] = a->psum[e] / np;
            imu += a->psum[e];
        }
        imu /= E;
        for (int e = 0; e < E; e++) {
            ivar += (a->psum[e] - imu) * (a->psum[e] - imu);
            laux += (a->M > 0 ? (double)a->c[e] / (double)a->M : NAN) * a->pbar[e];
        }
        o->pbar = a->pbar;
        o->importance = a->psum;
        o->laux = E * laux;
        o->importance_cv2 = imu > 0 ? (ivar / E) / (imu * imu) : NAN;
        o->token_entropy_mean = a->hsum / np;
        o->token_entropy_std = sqrt(a->hm2 / np);
        o->top1_margin_mean = a->margin_sum / np;
    } else {
        o->laux = o->importance_cv2 = NAN;
        o->token_entropy_mean = o->token_entropy_std = o->top1_margin_mean = NAN;
    }
}

/* ---------------------------------------------------------- co-activation */

enum { COACT_CHUNK = 2048 };  /* float counts stay exact per chunk (< 2^24) */
enum { COACT_DIRECT = 24 };   /* sets up to this size are counted pair by pair */

struct MsCoactAcc {
    int E;
    int rows;
    int64_t M;
    float *X;    /* COACT_CHUNK × E multi-hot */
    float *tmp;  /* E × E */
    int64_t *N;  /* E × E, upper triangle accumulated */
};

MsCoactAcc *ms_coact_acc_new(int n_expert)
{
    if (n_expert < 1) return NULL;
    MsCoactAcc *a = calloc(1, sizeof *a);
    if (!a) return NULL;
    size_t E = (size_t)n_expert;
    a->E = n_expert;
    a->X = calloc((size_t)COACT_CHUNK * E, sizeof(float));
    a->tmp = calloc(E * E, sizeof(float));
    a->N = calloc(E * E, sizeof(int64_t));
    if (!a->X || !a->tmp || !a->N) {
        ms_coact_acc_free(a);
        return NULL;
    }
    return a;
}

void ms_coact_acc_free(MsCoactAcc *a)
{
    if (!a) return;
    free(a->X);
    free(a->tmp);
    free(a->N);
    free(a);
}

static void coact_flush(MsCoactAcc *a)
{
    if (a->rows == 0) return;
    int E = a->E;
    cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, E, a->rows, 1.0f, a->X, E, 0.0f,
                a->tmp, E);
    for (int i = 0; i < E; i++)
        for (int j = i; j < E; j++) a->N[(size_t)i * E + j] += (int64_t)lrintf(a->tmp[(size_t)i * E + j]);
    memset(a->X, 0, (size_t)a->rows * E * sizeof(float));
    a->rows = 0;
}

int ms_coact_acc_add(MsCoactAcc *a, const int32_t *ids, int n)
{
    if (!a || (n > 0 && !ids)) return MS_EINVAL;
    for (int i = 0; i < n; i++)
        if (ids[i] >= a->E) return MS_ERANGE;
    a->M++;
    /* sparse sets: count the pairs directly (a GEMM row would cost E²/2
     * multiply-adds for k²/2 pairs); dense sets go through the SYRK chunk.
     * Both give exact integer counts, so the split does not change N. */
    if (n <= COACT_DIRECT) {
        /* ascending distinct ids (a multi-hot row counts an id once) */
        int d[COACT_DIRECT], nd = 0;
        if (a->E <= 64) {
            /* a bit mask sorts and deduplicates at once */
            uint64_t mask = 0;
            for (int i = 0; i < n; i++)
                if (ids[i] >= 0) mask |= (uint64_t)1 << ids[i];
            for (; mask; mask &= mask - 1) d[nd++] = __builtin_ctzll(mask);
        } else {
            for (int i = 0; i < n; i++) {
                int e = ids[i], j = nd;
                if (e < 0) continue;
                while (j > 0 && d[j - 1] > e) j--;
                if (j > 0 && d[j - 1] == e) continue;
                memmove(d + j + 1, d + j, sizeof *d * (size_t)(nd - j));
                d[j] = e;
                nd++;
            }
        }
        int64_t *N = a->N;
        size_t E = (size_t)a->E;
        for (int i = 0; i < nd; i++) {
            int64_t *row = N + (size_t)d[i] * E;
            for (int j = i; j < nd; j++) row[d[j]]++;
        }
        return 0;
    }
    float *row = a->X + (size_t)a->rows * a->E;
    for (int i = 0; i < n; i++)
        if (ids[i] >= 0) row[ids[i]] = 1.0f;
    if (++a->rows == COACT_CHUNK) coact_flush(a);
    return 0;
}

void ms_coact_acc_result(MsCoactAcc *a, int64_t *N, double *coact, double *jaccard,
                         double *lift, int64_t *n_tokens)
{
    coact_flush(a);
    int E = a->E;
    const int64_t *U = a->N;
#define NIJ(i, j) ((i) <= (j) ? U[(size_t)(i) * E + (j)] : U[(size_t)(j) * E + (i)])
    for (int i = 0; i < E; i++) {
        double ni = (double)NIJ(i, i);
        for (int j = 0; j < E; j++) {
            size_t ix = (size_t)i * E + j;
            double nij = (double)NIJ(i, j), nj = (double)NIJ(j, j);
            if (N) N[ix] = NIJ(i, j);
            if (coact) coact[ix] = ni > 0 ? (i == j ? 0.0 : nij / ni) : NAN;
            if (jaccard) {
                double u = ni + nj - nij;
                jaccard[ix] = u > 0 ? nij / u : NAN;
            }
            if (lift) lift[ix] = ni > 0 && nj > 0 ? nij * (double)a->M / (ni * nj) : NAN;
        }
    }
#undef NIJ
    if (n_tokens) *n_tokens = a->M;
}
