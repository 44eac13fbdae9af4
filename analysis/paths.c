/* paths.c — METHODS.md §9 (cross-lingual divergence) and §10 (pathways). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis.h"

static double kl_to_mix(const double *a, const double *m, int n)
{
    double s = 0;
    for (int i = 0; i < n; i++)
        if (a[i] > 0) s += a[i] * log(a[i] / m[i]);
    return s;
}

double ms_jsd(const double *p, const double *q, int E)
{
    if (!p || !q || E < 1) return NAN;
    double *m = malloc((size_t)E * sizeof *m);
    if (!m) return NAN;
    for (int i = 0; i < E; i++) m[i] = 0.5 * (p[i] + q[i]);
    double j = 0.5 * kl_to_mix(p, m, E) + 0.5 * kl_to_mix(q, m, E);
    free(m);
    return j;
}

double ms_dhjs(const double *p, const double *q, int E)
{
    if (!p || !q || E < 2) return NAN;
    double den = log((double)E) - 0.5 * (ms_entropy_d(p, E) + ms_entropy_d(q, E));
    if (den <= 1e-8) return NAN;
    return ms_jsd(p, q, E) / den;
}

int ms_pathway_layer(const double *g, int E, double tau, int *out)
{
    if (!g || !out || E < 1) return MS_EINVAL;
    char *used = calloc((size_t)E, 1);
    if (!used) return MS_ENOMEM;
    double cs = 0;
    int n = 0;
    /* selection by repeated argmax keeps ties on the lower id (E is small) */
    while (n < E) {
        int b = -1;
        for (int e = 0; e < E; e++)
            if (!used[e] && (b < 0 || g[e] > g[b])) b = e;
        used[b] = 1;
        out[n++] = b;
        cs += g[b];
        if (cs >= tau) break;
    }
    free(used);
    return n;
}

char *ms_pathway_string(const int *const *lists, const int *lens, int L)
{
    size_t cap = 16, len = 0;
    for (int l = 0; l < L; l++) cap += (size_t)lens[l] * 12 + 2;
    char *s = malloc(cap);
    if (!s) return NULL;
    s[0] = 0;
    for (int l = 0; l < L; l++) {
        if (l) s[len++] = '-';
        for (int i = 0; i < lens[l]; i++)
            len += (size_t)snprintf(s + len, cap - len, i ? ",%d" : "%d", lists[l][i]);
        s[len] = 0;
    }
    return s;
}

static int cmp_int(const void *x, const void *y)
{
    int a = *(const int *)x, b = *(const int *)y;
    return (a > b) - (a < b);
}

enum { LEV_TAB = 2048 };

/* Myers' bit-vector edit distance (block-based, 64 rows of `a` per word):
 * O(|a|·|b|/64) instead of the O(|a|·|b|) table, same result. */
int ms_levenshtein(const int *a, int na, const int *b, int nb)
{
    if (na == 0) return nb;
    if (nb == 0) return na;
    int W = (na + 63) / 64;
    int *sym = malloc(sizeof *sym * (size_t)na), *bi = malloc(sizeof *bi * (size_t)nb);
    uint64_t *P = malloc(sizeof *P * (size_t)W), *M = malloc(sizeof *M * (size_t)W), *peq = NULL;
    if (!sym || !bi || !P || !M) goto oom;
    int lo = a[0], hi = a[0], ns = 0;
    for (int i = 1; i < na; i++) lo = MS_MIN(lo, a[i]), hi = MS_MAX(hi, a[i]);
    /* symbols of a → dense row indices: a direct table over a small value
     * range (chars, expert ids), else sort + binary search */
    int16_t tab[LEV_TAB];
    bool direct = (int64_t)hi - lo < LEV_TAB && na < INT16_MAX;
    int *ai = direct ? sym : NULL;
    if (direct) {
        memset(tab, 0xff, sizeof(int16_t) * (size_t)(hi - lo + 1));
        for (int i = 0; i < na; i++) {
            int16_t *t = &tab[a[i] - lo];
            if (*t < 0) *t = (int16_t)ns++;
            ai[i] = *t;
        }
        for (int j = 0; j < nb; j++)
            bi[j] = b[j] >= lo && b[j] <= hi ? tab[b[j] - lo] : -1;
    } else {
        memcpy(sym, a, sizeof *sym * (size_t)na);
        qsort(sym, (size_t)na, sizeof *sym, cmp_int);
        for (int i = 0; i < na; i++)
            if (i == 0 || sym[i] != sym[ns - 1]) sym[ns++] = sym[i];
        for (int j = 0; j < nb; j++) {
            int *f = bsearch(&b[j], sym, (size_t)ns, sizeof *sym, cmp_int);
            bi[j] = f ? (int)(f - sym) : -1;
        }
    }
    peq = calloc((size_t)ns * W, sizeof *peq);
    if (!peq) goto oom;
    for (int i = 0; i < na; i++) {
        int r = direct ? ai[i] : (int)((int *)bsearch(&a[i], sym, (size_t)ns, sizeof *sym, cmp_int) - sym);
        peq[(size_t)r * W + i / 64] |= 1ULL << (i % 64);
    }
    for (int w = 0; w < W; w++) P[w] = ~0ULL, M[w] = 0;
    int score = na;
    uint64_t last = 1ULL << ((na - 1) % 64);
    for (int j = 0; j < nb; j++) {
        int hin = 1;   /* the top row D[0][j] = j grows by one per column */
        for (int w = 0; w < W; w++) {
            uint64_t Pv = P[w], Mv = M[w], Eq = bi[j] >= 0 ? peq[(size_t)bi[j] * W + w] : 0;
            uint64_t Xv = Eq | Mv;
            if (hin < 0) Eq |= 1;
            uint64_t Xh = (((Eq & Pv) + Pv) ^ Pv) | Eq;
            uint64_t Ph = Mv | ~(Xh | Pv), Mh = Pv & Xh;
            uint64_t hi = w == W - 1 ? last : 1ULL << 63;
            int hout = (Ph & hi) ? 1 : (Mh & hi) ? -1 : 0;
            Ph <<= 1;
            Mh <<= 1;
            if (hin < 0) Mh |= 1;
            else if (hin > 0) Ph |= 1;
            P[w] = Mh | ~(Xv | Ph);
            M[w] = Ph & Xv;
            hin = hout;
        }
        score += hin;
    }
    free(sym); free(bi); free(P); free(M); free(peq);
    return score;
oom:
    free(sym); free(bi); free(P); free(M); free(peq);
    return MS_ENOMEM;
}

int ms_pathway_tokens(const int *const *lists, const int *lens, int L, int *out)
{
    int n = 0;
    for (int l = 0; l < L; l++) {
        if (l) out[n++] = -1;
        for (int i = 0; i < lens[l]; i++) out[n++] = lists[l][i];
    }
    return n;
}

int ms_pathway_consistency(const double *gbar, const float *const *W, int L, int E, int d,
                           double *C_i, double *S_i)
{
    if (!gbar || !W || L < 2 || E < 1 || d < 1) return MS_EINVAL;
    double *emb = calloc((size_t)L * d, sizeof *emb), *cs = malloc((size_t)(L - 1) * sizeof *cs);
    if (!emb || !cs) { free(emb); free(cs); return MS_ENOMEM; }
    for (int l = 0; l < L; l++)
        for (int e = 0; e < E; e++)
            for (int j = 0; j < d; j++)
                emb[(size_t)l * d + j] += gbar[(size_t)l * E + e] * W[l][(size_t)e * d + j];
    double mx = -INFINITY, sum = 0;
    for (int l = 0; l + 1 < L; l++) {
        double dot = 0, na = 0, nb = 0;
        for (int j = 0; j < d; j++) {
            double x = emb[(size_t)l * d + j], y = emb[(size_t)(l + 1) * d + j];
            dot += x * y;
            na += x * x;
            nb += y * y;
        }
        cs[l] = na > 0 && nb > 0 ? dot / sqrt(na) / sqrt(nb) : NAN;
        if (cs[l] > mx) mx = cs[l];
        sum += cs[l];
    }
    double s = sum / (L - 1);
    if (S_i) *S_i = s;
    if (C_i) {
        if (!(mx > 0) || isnan(s)) {
            *C_i = NAN;
        } else {
            double acc = 0;
            for (int l = 0; l + 1 < L; l++) acc += cs[l] / (mx + 1e-8);
            *C_i = 1.0 - acc / (L - 1);
        }
    }
    free(emb);
    free(cs);
    return 0;
}
