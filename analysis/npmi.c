/* npmi.c — METHODS.md §5 (nPMI) and §6 (SteerMoE risk difference). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "analysis.h"

double ms_npmi(int64_t n_xy, int64_t n_x, int64_t n_y, int64_t N)
{
    if (N <= 0 || n_x <= 0 || n_y <= 0) return NAN;
    if (n_xy <= 0) return -1.0;
    if (n_xy >= N) return 1.0;
    double pxy = (double)n_xy / N, px = (double)n_x / N, py = (double)n_y / N;
    double pmi = log2(pxy / (px * py));
    return pmi / -log2(pxy);
}

struct MsNpmiAcc {
    int L, E, K;
    int64_t *N, *nx, *ny, *nxy;   /* [L], [L][K], [L][E], [L][K][E] */
};

MsNpmiAcc *ms_npmi_acc_new(int n_layer, int n_expert, int n_class)
{
    if (n_layer < 1 || n_expert < 1 || n_class < 0) return NULL;
    MsNpmiAcc *a = calloc(1, sizeof *a);
    if (!a) return NULL;
    a->L = n_layer;
    a->E = n_expert;
    a->K = n_class;
    size_t L = (size_t)n_layer, E = (size_t)n_expert, K = (size_t)n_class;
    a->N = calloc(L, sizeof(int64_t));
    a->nx = calloc(L * K + 1, sizeof(int64_t));
    a->ny = calloc(L * E, sizeof(int64_t));
    a->nxy = calloc(L * K * E + 1, sizeof(int64_t));
    if (!a->N || !a->nx || !a->ny || !a->nxy) {
        ms_npmi_acc_free(a);
        return NULL;
    }
    return a;
}

void ms_npmi_acc_free(MsNpmiAcc *a)
{
    if (!a) return;
    free(a->N); free(a->nx); free(a->ny); free(a->nxy);
    free(a);
}

int ms_npmi_acc_add(MsNpmiAcc *a, int layer, const int *classes, int n_classes,
                    const int32_t *ids, int n)
{
    if (!a || layer < 0 || layer >= a->L || (n_classes > 0 && !classes) || (n > 0 && !ids))
        return MS_EINVAL;
    for (int c = 0; c < n_classes; c++)
        if (classes[c] < 0 || classes[c] >= a->K) return MS_ERANGE;
    for (int i = 0; i < n; i++)
        if (ids[i] >= a->E) return MS_ERANGE;
    size_t E = (size_t)a->E, K = (size_t)a->K;
    a->N[layer]++;
    for (int i = 0; i < n; i++)
        if (ids[i] >= 0) a->ny[layer * E + ids[i]]++;
    for (int c = 0; c < n_classes; c++) {
        a->nx[layer * K + classes[c]]++;
        int64_t *row = a->nxy + ((size_t)layer * K + classes[c]) * E;
        for (int i = 0; i < n; i++)
            if (ids[i] >= 0) row[ids[i]]++;
    }
    return 0;
}

int64_t ms_npmi_acc_N(const MsNpmiAcc *a, int l) { return a->N[l]; }
int64_t ms_npmi_acc_nx(const MsNpmiAcc *a, int l, int c) { return a->nx[(size_t)l * a->K + c]; }
int64_t ms_npmi_acc_ny(const MsNpmiAcc *a, int l, int e) { return a->ny[(size_t)l * a->E + e]; }
int64_t ms_npmi_acc_nxy(const MsNpmiAcc *a, int l, int c, int e)
{
    return a->nxy[((size_t)l * a->K + c) * a->E + e];
}

double ms_risk_diff(int64_t a1, int64_t n1, int64_t a2, int64_t n2)
{
    if (n1 <= 0 || n2 <= 0) return NAN;
    return (double)a1 / (double)n1 - (double)a2 / (double)n2;
}

typedef struct { double key; int idx; } RdKey;

static int cmp_rd(const void *x, const void *y)
{
    const RdKey *a = x, *b = y;
    if (a->key != b->key) return a->key > b->key ? -1 : 1;
    return (a->idx > b->idx) - (a->idx < b->idx);   /* stable */
}

int ms_rd_select(const double *rd, int L, int E, int k, int n_pos, int n_neg, bool reverse,
                 MsRdPick *pos, int *got_pos, MsRdPick *neg, int *got_neg)
{
    if (!rd || L < 1 || E < 1 || k < 1 || n_pos < 0 || n_neg < 0 ||
        (n_pos > 0 && !pos) || (n_neg > 0 && !neg))
        return MS_EINVAL;
    size_t n = (size_t)L * E;
    RdKey *keys = malloc(n * sizeof *keys);
    int *per_layer = calloc((size_t)L, sizeof *per_layer);
    if (!keys || !per_layer) { free(keys); free(per_layer); return MS_ENOMEM; }
    size_t nk = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(rd[i])) continue;
        keys[nk].key = fabs(rd[i]);
        keys[nk].idx = (int)i;
        nk++;
    }
    qsort(keys, nk, sizeof *keys, cmp_rd);
    int gp = 0, gn = 0;
    for (size_t i = 0; i < nk; i++) {
        int ix = keys[i].idx, l = ix / E, e = ix % E;
        double v = reverse ? -rd[ix] : rd[ix];
        if (v > 0 && gp < n_pos && per_layer[l] < k) {
            per_layer[l]++;
            pos[gp++] = (MsRdPick){l, e, v};
        } else if (v < 0 && gn < n_neg) {
            neg[gn++] = (MsRdPick){l, e, v};
        }
    }
    free(keys);
    free(per_layer);
    if (got_pos) *got_pos = gp;
    if (got_neg) *got_neg = gn;
    return 0;
}
