/* affinity.c — METHODS.md §2: inter-layer expert affinity (ExFlow). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "analysis.h"

enum { AFF_CHUNK = 2048 };  /* float counts stay exact per chunk */
enum { AFF_DIRECT = 24 };   /* sets up to this size are counted pair by pair */

struct MsAffAcc {
    int E, rows;
    int64_t M;
    float *Xf, *Xt, *tmp;        /* chunk multi-hots and the E×E product */
    double *Ck, *C1, *Cw;        /* top-k membership, top-1, weighted */
    double *nk;                  /* c_{l,i} */
    double *qk, *q1, *qw;        /* column marginals at `to` */
    /* result buffers */
    double *n, *P, *Q, *lift;
};

MsAffAcc *ms_aff_acc_new(int n_expert)
{
    if (n_expert < 1) return NULL;
    MsAffAcc *a = calloc(1, sizeof *a);
    if (!a) return NULL;
    size_t E = (size_t)n_expert;
    a->E = n_expert;
    a->Xf = calloc((size_t)AFF_CHUNK * E, sizeof(float));
    a->Xt = calloc((size_t)AFF_CHUNK * E, sizeof(float));
    a->tmp = calloc(E * E, sizeof(float));
    a->Ck = calloc(E * E, sizeof(double));
    a->C1 = calloc(E * E, sizeof(double));
    a->Cw = calloc(E * E, sizeof(double));
    a->nk = calloc(E, sizeof(double));
    a->qk = calloc(E, sizeof(double));
    a->q1 = calloc(E, sizeof(double));
    a->qw = calloc(E, sizeof(double));
    a->n = calloc(E, sizeof(double));
    a->P = calloc(E * E, sizeof(double));
    a->Q = calloc(E * E, sizeof(double));
    a->lift = calloc(E * E, sizeof(double));
    if (!a->Xf || !a->Xt || !a->tmp || !a->Ck || !a->C1 || !a->Cw || !a->nk || !a->qk ||
        !a->q1 || !a->qw || !a->n || !a->P || !a->Q || !a->lift) {
        ms_aff_acc_free(a);
        return NULL;
    }
    return a;
}

void ms_aff_acc_free(MsAffAcc *a)
{
    if (!a) return;
    free(a->Xf); free(a->Xt); free(a->tmp);
    free(a->Ck); free(a->C1); free(a->Cw);
    free(a->nk); free(a->qk); free(a->q1); free(a->qw);
    free(a->n); free(a->P); free(a->Q); free(a->lift);
    free(a);
}

static void aff_flush(MsAffAcc *a)
{
    if (a->rows == 0) return;
    int E = a->E;
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, E, E, a->rows, 1.0f, a->Xf, E,
                a->Xt, E, 0.0f, a->tmp, E);
    for (size_t i = 0; i < (size_t)E * E; i++) a->Ck[i] += (double)lrintf(a->tmp[i]);
    memset(a->Xf, 0, (size_t)a->rows * E * sizeof(float));
    memset(a->Xt, 0, (size_t)a->rows * E * sizeof(float));
    a->rows = 0;
}

int ms_aff_acc_add(MsAffAcc *a, const int32_t *ids_from, const float *w_from, int n_from,
                   const int32_t *ids_to, const float *w_to, int n_to)
{
    if (!a || (n_from > 0 && !ids_from) || (n_to > 0 && !ids_to)) return MS_EINVAL;
    int E = a->E;
    for (int i = 0; i < n_from; i++)
        if (ids_from[i] >= E) return MS_ERANGE;
    for (int i = 0; i < n_to; i++)
        if (ids_to[i] >= E) return MS_ERANGE;
    /* sparse sets: count the (from, to) pairs directly; dense ones through
     * the GEMM chunk.  Both are exact integer counts, so C is the same. */
    bool direct = n_from <= AFF_DIRECT && n_to <= AFF_DIRECT;
    float *rf = a->Xf + (size_t)a->rows * E, *rt = a->Xt + (size_t)a->rows * E;
    int f1 = -1, t1 = -1, df[AFF_DIRECT], dt[AFF_DIRECT], nf = 0, nt = 0;
    /* a multi-hot row holds an id once: up to 64 experts a bit mask
     * deduplicates, beyond that a scan of the ids kept so far */
    bool small = E <= 64;
    uint64_t mf = 0, mt = 0;
    for (int i = 0; i < n_from; i++) {
        int e = ids_from[i];
        if (e < 0) continue;
        if (f1 < 0) f1 = e;
        a->nk[e] += 1;
        if (!direct) { rf[e] = 1.0f; continue; }
        if (small) { mf |= (uint64_t)1 << e; continue; }
        bool dup = false;
        for (int j = 0; j < nf; j++) dup |= df[j] == e;
        if (!dup) df[nf++] = e;
    }
    for (int j = 0; j < n_to; j++) {
        int e = ids_to[j];
        if (e < 0) continue;
        if (t1 < 0) t1 = e;
        a->qk[e] += 1;
        if (!direct) { rt[e] = 1.0f; continue; }
        if (small) { mt |= (uint64_t)1 << e; continue; }
        bool dup = false;
        for (int i = 0; i < nt; i++) dup |= dt[i] == e;
        if (!dup) dt[nt++] = e;
    }
    if (small && direct) {
        for (; mf; mf &= mf - 1) df[nf++] = __builtin_ctzll(mf);
        for (; mt; mt &= mt - 1) dt[nt++] = __builtin_ctzll(mt);
    }
    for (int i = 0; i < nf; i++) {
        double *row = a->Ck + (size_t)df[i] * E;
        for (int j = 0; j < nt; j++) row[dt[j]] += 1;
    }
    if (f1 >= 0 && t1 >= 0) {
        a->C1[(size_t)f1 * E + t1] += 1;
        a->q1[t1] += 1;
    }
    if (w_from && w_to) {
        for (int i = 0; i < n_from; i++) {
            if (ids_from[i] < 0) continue;
            for (int j = 0; j < n_to; j++) {
                if (ids_to[j] < 0) continue;
                double w = (double)w_from[i] * (double)w_to[j];
                a->Cw[(size_t)ids_from[i] * E + ids_to[j]] += w;
                a->qw[ids_to[j]] += w;
            }
        }
    }
    a->M++;
    if (!direct && ++a->rows == AFF_CHUNK) aff_flush(a);
    return 0;
}

void ms_aff_acc_result(MsAffAcc *a, MsAffVariant v, MsAffResult *o)
{
    aff_flush(a);
    int E = a->E;
    const double *C = v == MS_AFF_TOP1 ? a->C1 : v == MS_AFF_WEIGHTED ? a->Cw : a->Ck;
    const double *q = v == MS_AFF_TOP1 ? a->q1 : v == MS_AFF_WEIGHTED ? a->qw : a->qk;
    double qtot = 0, ntot = 0;
    for (int j = 0; j < E; j++) qtot += q[j];
    for (int i = 0; i < E; i++) {
        double rs = 0;
        for (int j = 0; j < E; j++) rs += C[(size_t)i * E + j];
        a->n[i] = v == MS_AFF_TOPK ? a->nk[i] : rs;
        for (int j = 0; j < E; j++) {
            size_t ix = (size_t)i * E + j;
            a->Q[ix] = rs > 0 ? C[ix] / rs : NAN;
            a->P[ix] = a->n[i] > 0 ? C[ix] / a->n[i] : NAN;
            double qj = qtot > 0 ? q[j] / qtot : NAN;
            a->lift[ix] = qj > 0 ? a->Q[ix] / qj : NAN;
        }
    }
    /* concentration weights rows by n_i (π_i = n_i / Σn); NaN rows carry no weight */
    double conc = 0;
    for (int i = 0; i < E; i++) {
        double rs = 0, mx = 0;
        for (int j = 0; j < E; j++) {
            rs += C[(size_t)i * E + j];
            if (C[(size_t)i * E + j] > mx) mx = C[(size_t)i * E + j];
        }
        if (rs > 0) {
            conc += a->n[i] * (mx / rs);
            ntot += a->n[i];
        }
    }
    o->n_expert = E;
    o->n_tokens = a->M;
    o->C = C;
    o->n = a->n;
    o->P = a->P;
    o->Q = a->Q;
    o->lift = a->lift;
    o->concentration = ntot > 0 ? conc / ntot : NAN;
    o->nmi = NAN;
    if (v == MS_AFF_TOP1) {
        double tot = 0;
        for (size_t i = 0; i < (size_t)E * E; i++) tot += C[i];
        if (tot > 0) {
            double mi = 0, Hto = 0;
            for (int j = 0; j < E; j++) {
                double pj = q[j] / tot;
                if (pj > 0) Hto -= pj * log(pj);
            }
            for (int i = 0; i < E; i++) {
                double pi = a->n[i] / tot;
                for (int j = 0; j < E; j++) {
                    double pij = C[(size_t)i * E + j] / tot, pj = q[j] / tot;
                    if (pij > 0) mi += pij * log(pij / (pi * pj));
                }
            }
            o->nmi = Hto > 0 ? mi / Hto : NAN;
        }
    }
}

int ms_placement_cost(const int32_t *path, int L, int E, const int32_t *place,
                      int gpus_per_node, int *cross_gpu, int *cross_node)
{
    if (!path || !place || L < 1 || E < 1 || gpus_per_node < 1) return MS_EINVAL;
    int cost = 0;
    for (int l = 0; l + 1 < L; l++) {
        if (path[l] < 0 || path[l] >= E || path[l + 1] < 0 || path[l + 1] >= E) return MS_ERANGE;
        int g0 = place[(size_t)l * E + path[l]], g1 = place[(size_t)(l + 1) * E + path[l + 1]];
        if (g0 == g1) continue;
        if (cross_gpu) (*cross_gpu)++;
        if (g0 / gpus_per_node == g1 / gpus_per_node) {
            cost += 1;
        } else {
            cost += 2;
            if (cross_node) (*cross_node)++;
        }
    }
    return cost;
}
