/* run-basic.c — load, coactivation, affinity and super experts over a
 * stored run (METHODS.md §1, §2, §4). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "run-internal.h"

static const char *role_or(const MsAnOptions *o, const char *dflt)
{
    return o->role ? o->role : dflt;
}

static int check_role(const char *role, MsError *err)
{
    if (strcmp(role, "all") && strcmp(role, "prompt") && strcmp(role, "generated"))
        return ms_error_set(err, MS_EINVAL, "--role must be all, prompt or generated (got '%s')", role);
    return 0;
}

/* ------------------------------------------------------------------ load */

int an_load(MsTraceDb *db, AnRun *r, const MsAnOptions *o, MsAnResult *out, json_t *params,
            MsError *err)
{
    int lo, hi, rc = an_slot_range(r, o->layer, &lo, &hi, err);
    if (rc < 0) return rc;
    const char *role = role_or(o, "all");
    if ((rc = check_role(role, err)) < 0) return rc;
    json_object_set_new(params, "role", json_string(role));
    json_object_set_new(params, "normalisation", json_string("sum of counts (k*M for full top-k)"));
    json_object_set_new(params, "laux_convention", json_string("r_e = c_e/M (balanced = k)"));
    int ns = hi - lo;
    MsLoadAcc **acc = calloc((size_t)ns, sizeof *acc);
    if (!acc) return ms_error_set(err, MS_ENOMEM, "out of memory");
    for (int s = 0; s < ns; s++)
        if (!(acc[s] = ms_load_acc_new(r->E, r->k))) rc = ms_error_set(err, MS_ENOMEM, "out of memory");
    AnStream *st = rc < 0 ? NULL : an_stream_new(db, r, strcmp(role, "all") != 0, 0, err);
    if (!st && rc >= 0) rc = err ? err->code : MS_EDB;
    AnTok t;
    while (rc >= 0 && (rc = an_stream_next(st, &t, err)) == 1) {
        if (!an_role_ok(role, &t)) continue;
        for (int s = lo; s < hi; s++) {
            if (t.first_of_prompt) ms_load_acc_begin_seq(acc[s - lo]);
            rc = ms_load_acc_add(acc[s - lo], t.ids + (size_t)s * r->k, t.n[s]);
            if (rc < 0) break;
        }
    }
    an_stream_free(st);
    /* per-token routing entropy from the stored router distributions */
    if (rc >= 0 && r->info.has_probs && !strcmp(role, "all")) {
        MsTraceCursor *pc = ms_trace_probs(db, r->run_id, 0, err);
        if (!pc) rc = err ? err->code : MS_EDB;
        MsTraceProbs p;
        while (rc >= 0 && (rc = ms_trace_probs_next(pc, &p, err)) == 1) {
            if (p.layer < 0 || p.layer >= r->n_layer || !p.probs || p.n_expert != r->E) continue;
            int s = r->layer_slot[p.layer];
            if (s >= lo && s < hi) ms_load_acc_add_probs(acc[s - lo], p.probs);
        }
        ms_trace_cursor_free(pc);
    }
    if (rc < 0) goto done;
    json_t *layers = json_array(), *rows = json_array(), *erows = json_array();
    for (int s = lo; s < hi; s++) {
        MsLoadStats S;
        ms_load_acc_stats(acc[s - lo], &S);
        int L = r->slot_layer[s];
        json_t *jl = json_object();
        json_object_set_new(jl, "layer", json_integer(L));
        json_object_set_new(jl, "counts", an_int_array(S.counts, r->E));
        json_object_set_new(jl, "share", an_real_array(S.share, r->E));
        json_object_set_new(jl, "entropy_norm", an_real(S.entropy_norm));
        json_object_set_new(jl, "gini", an_real(S.gini));
        json_object_set_new(jl, "cv", an_real(S.cv));
        json_object_set_new(jl, "max_over_mean", an_real(S.max_over_mean));
        json_object_set_new(jl, "maxvio", an_real(S.maxvio));
        json_object_set_new(jl, "entropy", an_real(S.entropy));
        json_object_set_new(jl, "exp_entropy", an_real(S.exp_entropy));
        json_object_set_new(jl, "kl_uniform", an_real(S.kl_uniform));
        json_object_set_new(jl, "n_tokens", json_integer(S.n_tokens));
        json_object_set_new(jl, "n_selections", json_integer(S.n_selections));
        json_object_set_new(jl, "coverage", an_real_array(S.coverage, r->E));
        json_t *dead = json_array(), *cold = json_array();
        for (int e = 0; e < r->E; e++) {
            if (S.counts[e] == 0) json_array_append_new(dead, json_integer(e));
            if (S.n_tokens > 0 && (double)S.counts[e] / (double)S.n_tokens <
                                      0.1 * ((double)S.n_selections / (double)S.n_tokens) / r->E)
                json_array_append_new(cold, json_integer(e));
        }
        json_object_set_new(jl, "dead", dead);
        json_object_set_new(jl, "cold", cold);
        json_object_set_new(jl, "jaccard_adjacent", an_real(S.jaccard_mean));
        if (S.n_prob_tokens > 0) {
            json_object_set_new(jl, "token_entropy_mean", an_real(S.token_entropy_mean));
            json_object_set_new(jl, "token_entropy_std", an_real(S.token_entropy_std));
            json_object_set_new(jl, "top1_margin_mean", an_real(S.top1_margin_mean));
            json_object_set_new(jl, "pbar", an_real_array(S.pbar, r->E));
            json_object_set_new(jl, "importance", an_real_array(S.importance, r->E));
            json_object_set_new(jl, "importance_cv2", an_real(S.importance_cv2));
            json_object_set_new(jl, "laux", an_real(S.laux));
        }
        json_array_append_new(layers, jl);

        json_t *row = json_object();
        json_object_set_new(row, "layer", json_integer(L));
        json_object_set_new(row, "n_tokens", json_integer(S.n_tokens));
        json_object_set_new(row, "entropy", an_real(S.entropy));
        json_object_set_new(row, "entropy_norm", an_real(S.entropy_norm));
        json_object_set_new(row, "gini", an_real(S.gini));
        json_object_set_new(row, "cv", an_real(S.cv));
        json_object_set_new(row, "max_over_mean", an_real(S.max_over_mean));
        json_object_set_new(row, "n_dead", json_integer(S.n_dead));
        json_object_set_new(row, "n_cold", json_integer(S.n_cold));
        json_object_set_new(row, "jaccard_adjacent", an_real(S.jaccard_mean));
        json_object_set_new(row, "token_entropy_mean",
                            S.n_prob_tokens > 0 ? an_real(S.token_entropy_mean) : json_null());
        json_array_append_new(rows, row);
        for (int e = 0; e < r->E; e++) {
            json_t *er = json_object();
            json_object_set_new(er, "layer", json_integer(L));
            json_object_set_new(er, "expert", json_integer(e));
            json_object_set_new(er, "count", json_integer(S.counts[e]));
            json_object_set_new(er, "share", an_real(S.share[e]));
            json_object_set_new(er, "pbar", S.pbar ? an_real(S.pbar[e]) : json_null());
            json_array_append_new(erows, er);
        }
    }
    out->doc = json_object();
    json_object_set_new(out->doc, "layers", layers);
    out->rows = rows;
    if (o->write) rc = an_write_rows(db, r, "load", params, "an_load_experts", erows, err);
    json_decref(erows);
done:
    for (int s = 0; s < ns; s++) ms_load_acc_free(acc[s]);
    free(acc);
    return rc < 0 ? rc : 0;
}

/* ---------------------------------------------------------- coactivation */

int an_coactivation(MsTraceDb *db, AnRun *r, const MsAnOptions *o, MsAnResult *out, json_t *params,
                    MsError *err)
{
    int lo, hi, rc = an_slot_range(r, o->layer, &lo, &hi, err);
    if (rc < 0) return rc;
    const char *role = role_or(o, "all");
    if ((rc = check_role(role, err)) < 0) return rc;
    json_object_set_new(params, "role", json_string(role));
    int ns = hi - lo, E = r->E;
    MsCoactAcc **acc = calloc((size_t)ns, sizeof *acc);
    if (!acc) return ms_error_set(err, MS_ENOMEM, "out of memory");
    for (int s = 0; s < ns; s++)
        if (!(acc[s] = ms_coact_acc_new(E))) rc = ms_error_set(err, MS_ENOMEM, "out of memory");
    AnStream *st = rc < 0 ? NULL : an_stream_new(db, r, strcmp(role, "all") != 0, 0, err);
    if (!st && rc >= 0) rc = err ? err->code : MS_EDB;
    AnTok t;
    while (rc >= 0 && (rc = an_stream_next(st, &t, err)) == 1) {
        if (!an_role_ok(role, &t)) continue;
        for (int s = lo; s < hi && rc >= 0; s++)
            rc = ms_coact_acc_add(acc[s - lo], t.ids + (size_t)s * r->k, t.n[s]);
    }
    an_stream_free(st);
    if (rc >= 0) {
        size_t EE = (size_t)E * E;
        int64_t *N = malloc(EE * sizeof *N), M = 0;
        double *co = malloc(EE * sizeof *co), *jac = malloc(EE * sizeof *jac), *lift = malloc(EE * sizeof *lift),
               *Nd = malloc(EE * sizeof *Nd);
        json_t *layers = json_array(), *rows = json_array();
        for (int s = lo; s < hi && N && co && jac && lift && Nd; s++) {
            ms_coact_acc_result(acc[s - lo], N, co, jac, lift, &M);
            for (size_t i = 0; i < EE; i++) Nd[i] = (double)N[i];
            int L = r->slot_layer[s];
            json_t *jl = json_object();
            json_object_set_new(jl, "layer", json_integer(L));
            json_object_set_new(jl, "n_tokens", json_integer(M));
            json_object_set_new(jl, "N", an_real_matrix(Nd, E, E));
            json_object_set_new(jl, "coact", an_real_matrix(co, E, E));
            json_object_set_new(jl, "jaccard", an_real_matrix(jac, E, E));
            json_object_set_new(jl, "lift", an_real_matrix(lift, E, E));
            json_array_append_new(layers, jl);
            for (int i = 0; i < E; i++)
                for (int j = 0; j < E; j++) {
                    if (i == j) continue;
                    size_t ix = (size_t)i * E + j;
                    json_t *row = json_object();
                    json_object_set_new(row, "layer", json_integer(L));
                    json_object_set_new(row, "i", json_integer(i));
                    json_object_set_new(row, "j", json_integer(j));
                    json_object_set_new(row, "n_ij", json_integer(N[ix]));
                    json_object_set_new(row, "coact", an_real(co[ix]));
                    json_object_set_new(row, "jaccard", an_real(jac[ix]));
                    json_object_set_new(row, "lift", an_real(lift[ix]));
                    json_array_append_new(rows, row);
                }
        }
        if (!N || !co || !jac || !lift || !Nd) rc = ms_error_set(err, MS_ENOMEM, "out of memory");
        free(N); free(co); free(jac); free(lift); free(Nd);
        out->doc = json_object();
        json_object_set_new(out->doc, "layers", layers);
        out->rows = rows;
    }
    for (int s = 0; s < ns; s++) ms_coact_acc_free(acc[s]);
    free(acc);
    return rc < 0 ? rc : 0;
}

/* -------------------------------------------------------------- affinity */

typedef struct { double c; int i, j; } Trans;

static int cmp_trans(const void *x, const void *y)
{
    const Trans *a = x, *b = y;
    if (a->c != b->c) return a->c > b->c ? -1 : 1;
    if (a->i != b->i) return a->i - b->i;
    return a->j - b->j;
}

int an_affinity(MsTraceDb *db, AnRun *r, const MsAnOptions *o, MsAnResult *out, json_t *params,
                MsError *err)
{
    int lo, hi, rc = an_slot_range(r, o->layer, &lo, &hi, err);
    if (rc < 0) return rc;
    int d = o->distance;
    if (d < 1) return ms_error_set(err, MS_EINVAL, "--distance must be >= 1 (got %d)", d);
    const char *variant = o->variant ? o->variant : "topk";
    MsAffVariant var = MS_AFF_TOPK;
    if (!strcmp(variant, "top1")) var = MS_AFF_TOP1;
    else if (!strcmp(variant, "weighted")) var = MS_AFF_WEIGHTED;
    else if (strcmp(variant, "topk")) return ms_error_set(err, MS_EINVAL, "--variant must be topk, top1 or weighted");
    const char *role = role_or(o, "all");
    if ((rc = check_role(role, err)) < 0) return rc;
    json_object_set_new(params, "distance", json_integer(d));
    json_object_set_new(params, "variant", json_string(variant));
    json_object_set_new(params, "role", json_string(role));
    json_object_set_new(params, "heatmap", json_string("Q: top-k, row-normalised"));
    /* pairs (s, s+d) with s in [lo, hi) */
    int from_hi = MS_MIN(hi, r->n_slot - d);
    int np = from_hi > lo ? from_hi - lo : 0;
    MsAffAcc **acc = calloc((size_t)np + 1, sizeof *acc);
    if (!acc) return ms_error_set(err, MS_ENOMEM, "out of memory");
    for (int p = 0; p < np; p++)
        if (!(acc[p] = ms_aff_acc_new(r->E))) rc = ms_error_set(err, MS_ENOMEM, "out of memory");
    AnStream *st = rc < 0 || np == 0 ? NULL : an_stream_new(db, r, strcmp(role, "all") != 0,
                                                           var == MS_AFF_WEIGHTED ? AN_NEED_W : 0, err);
    if (!st && rc >= 0 && np > 0) rc = err ? err->code : MS_EDB;
    AnTok t;
    while (st && rc >= 0 && (rc = an_stream_next(st, &t, err)) == 1) {
        if (!an_role_ok(role, &t)) continue;
        for (int p = 0; p < np && rc >= 0; p++) {
            int s = lo + p;
            size_t a = (size_t)s * r->k, b = (size_t)(s + d) * r->k;
            rc = ms_aff_acc_add(acc[p], t.ids + a, var == MS_AFF_WEIGHTED ? t.w + a : NULL, t.n[s],
                                t.ids + b, var == MS_AFF_WEIGHTED ? t.w + b : NULL, t.n[s + d]);
        }
    }
    an_stream_free(st);
    if (rc < 0) goto done;
    int E = r->E, top = o->top > 0 ? o->top : 10;
    json_t *pairs = json_array(), *rows = json_array(), *cells = json_array();
    Trans *tr = malloc(sizeof *tr * (size_t)E * E);
    if (!tr) { rc = ms_error_set(err, MS_ENOMEM, "out of memory"); json_decref(pairs); json_decref(rows); json_decref(cells); goto done; }
    for (int p = 0; p < np; p++) {
        int Lf = r->slot_layer[lo + p], Lt = r->slot_layer[lo + p + d];
        MsAffResult R1, Rk;
        ms_aff_acc_result(acc[p], MS_AFF_TOP1, &R1);
        double conc1 = R1.concentration, nmi1 = R1.nmi;
        json_t *jp = json_object();
        json_object_set_new(jp, "from", json_integer(Lf));
        json_object_set_new(jp, "to", json_integer(Lt));
        if (var != MS_AFF_TOPK) {
            MsAffResult Rv;
            ms_aff_acc_result(acc[p], var, &Rv);
            json_t *jv = json_object();
            json_object_set_new(jv, "C", an_real_matrix(Rv.C, E, E));
            json_object_set_new(jv, "Q", an_real_matrix(Rv.Q, E, E));
            json_object_set_new(jv, "concentration", an_real(Rv.concentration));
            json_object_set_new(jp, variant, jv);
        }
        ms_aff_acc_result(acc[p], MS_AFF_TOPK, &Rk);
        json_object_set_new(jp, "C", an_real_matrix(Rk.C, E, E));
        json_object_set_new(jp, "Q", an_real_matrix(Rk.Q, E, E));
        json_object_set_new(jp, "P", an_real_matrix(Rk.P, E, E));
        json_object_set_new(jp, "n", an_real_array(Rk.n, E));
        json_object_set_new(jp, "lift", an_real_matrix(Rk.lift, E, E));
        json_object_set_new(jp, "concentration", an_real(Rk.concentration));
        json_object_set_new(jp, "concentration_top1", an_real(conc1));
        json_object_set_new(jp, "nmi_top1", an_real(nmi1));
        json_object_set_new(jp, "n_tokens", json_integer(Rk.n_tokens));
        for (int i = 0; i < E * E; i++) tr[i] = (Trans){Rk.C[i], i / E, i % E};
        qsort(tr, (size_t)E * E, sizeof *tr, cmp_trans);
        json_t *jt = json_array();
        for (int i = 0; i < top && i < E * E && tr[i].c > 0; i++) {
            size_t ix = (size_t)tr[i].i * E + tr[i].j;
            json_t *x = json_object();
            json_object_set_new(x, "i", json_integer(tr[i].i));
            json_object_set_new(x, "j", json_integer(tr[i].j));
            json_object_set_new(x, "C", json_real(tr[i].c));
            json_object_set_new(x, "P", an_real(Rk.P[ix]));
            json_object_set_new(x, "Q", an_real(Rk.Q[ix]));
            json_object_set_new(x, "lift", an_real(Rk.lift[ix]));
            json_array_append_new(jt, x);
        }
        json_object_set_new(jp, "top_paths", jt);
        json_array_append_new(pairs, jp);
        json_t *row = json_object();
        json_object_set_new(row, "from_layer", json_integer(Lf));
        json_object_set_new(row, "to_layer", json_integer(Lt));
        json_object_set_new(row, "concentration", an_real(Rk.concentration));
        json_object_set_new(row, "concentration_top1", an_real(conc1));
        json_object_set_new(row, "nmi_top1", an_real(nmi1));
        json_object_set_new(row, "n_tokens", json_integer(Rk.n_tokens));
        json_array_append_new(rows, row);
        for (int i = 0; i < E; i++)
            for (int j = 0; j < E; j++) {
                size_t ix = (size_t)i * E + j;
                json_t *c = json_object();
                json_object_set_new(c, "from_layer", json_integer(Lf));
                json_object_set_new(c, "to_layer", json_integer(Lt));
                json_object_set_new(c, "i", json_integer(i));
                json_object_set_new(c, "j", json_integer(j));
                json_object_set_new(c, "C", json_real(Rk.C[ix]));
                json_object_set_new(c, "P", an_real(Rk.P[ix]));
                json_object_set_new(c, "Q", an_real(Rk.Q[ix]));
                json_object_set_new(c, "lift", an_real(Rk.lift[ix]));
                json_array_append_new(cells, c);
            }
    }
    free(tr);
    out->doc = json_object();
    json_object_set_new(out->doc, "pairs", pairs);
    out->rows = rows;
    if (o->write) rc = an_write_rows(db, r, "affinity", params, "an_affinity_cells", cells, err);
    json_decref(cells);
done:
    for (int p = 0; p < np; p++) ms_aff_acc_free(acc[p]);
    free(acc);
    return rc < 0 ? rc : 0;
}

/* ---------------------------------------------------------- super experts */

/* Channel of the max |output| of expert e at (prompt, pos, layer), from the
 * stored row: >= 0, −1 when the row has no channels (traced before schema
 * version 3), or MS_E*. */
static int expert_channel(MsTraceDb *db, const AnRun *r, int64_t pid, int32_t pos, int layer, int e, MsError *err)
{
    MsTraceCursor *c = ms_trace_routing_range(db, r->run_id, pid, pid, err);
    if (!c) return err ? err->code : MS_EDB;
    MsTraceRoutePacked row;
    int rc, ch = -1;
    while ((rc = ms_trace_routing_next_packed(c, &row, err)) == 1) {
        if (row.pos != pos || row.layer != layer) continue;
        for (int j = 0; j < row.k; j++)
            if ((int)an_le_u16(row.experts + 2 * j) == e && row.argmax) ch = (int)an_le_u16(row.argmax + 2 * j);
        break;
    }
    ms_trace_cursor_free(c);
    return rc < 0 ? rc : ch;
}

int an_superexperts(MsTraceDb *db, AnRun *r, const MsAnOptions *o, MsAnResult *out, json_t *params,
                    MsError *err)
{
    if (!r->info.has_stats)
        return ms_error_set(err, MS_ENOTFOUND, "%s: run %lld has no expert output stats (trace with stats on)",
                            ms_trace_path(db), (long long)r->run_id);
    const char *rules[] = {"paper", "p99.5", "mean+3sd", "50xmean"};
    if ((int)o->se_rule < 0 || (int)o->se_rule > 3) return ms_error_set(err, MS_EINVAL, "bad super-expert rule");
    json_object_set_new(params, "rule", json_string(rules[o->se_rule]));
    json_object_set_new(params, "include_layers", json_real(o->include_frac));
    json_object_set_new(params, "value", json_string("max |down_proj output| over all routed tokens"));
    int E = r->E, ns = r->n_slot;
    size_t n = (size_t)ns * E;
    double *a = malloc(n * sizeof *a);
    int64_t *apid = malloc(n * sizeof *apid), *ntok = calloc(n, sizeof *ntok);
    int32_t *apos = malloc(n * sizeof *apos);
    int *layer = malloc(n * sizeof *layer);
    bool *se = malloc(n * sizeof *se);
    /* massive activations: per block, max and mean of the token residual max */
    double *hmax = malloc(sizeof(double) * (size_t)r->n_layer), *hsum = calloc((size_t)r->n_layer, sizeof(double));
    int64_t *hn = calloc((size_t)r->n_layer, sizeof(int64_t)), *hpid = calloc((size_t)r->n_layer, sizeof(int64_t));
    int32_t *hpos = calloc((size_t)r->n_layer, sizeof(int32_t)), *hch = calloc((size_t)r->n_layer, sizeof(int32_t));
    int rc = 0;
    if (!a || !apid || !ntok || !apos || !layer || !se || !hmax || !hsum || !hn || !hpid || !hpos || !hch) {
        rc = ms_error_set(err, MS_ENOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        a[i] = 0;   /* never routed → contributes 0 (§4.6) */
        apid[i] = 0;
        apos[i] = -1;
        layer[i] = r->slot_layer[i / E];
    }
    AnStream *st = an_stream_new(db, r, false, AN_NEED_MX, err);
    if (!st) { rc = err ? err->code : MS_EDB; goto done; }
    AnTok t;
    while ((rc = an_stream_next(st, &t, err)) == 1)
        for (int s = 0; s < ns; s++)
            for (int j = 0; j < t.n[s]; j++) {
                size_t ix = (size_t)s * E + t.ids[(size_t)s * r->k + j];
                float v = t.maxabs[(size_t)s * r->k + j];
                ntok[ix]++;
                if (isfinite(v) && v > a[ix]) {
                    a[ix] = v;
                    apid[ix] = t.prompt_id;
                    apos[ix] = t.pos;
                }
            }
    an_stream_free(st);
    if (rc < 0) goto done;
    MsSeInfo info;
    int nse = ms_superexperts(a, layer, (int)n, r->n_layer, o->include_frac, o->se_rule, se, &info);
    if (nse < 0) { rc = ms_error_set(err, nse, "super experts: bad options"); goto done; }
    /* rank SEs by value, descending (ties → lower layer, expert) */
    json_t *list = json_array(), *rows = json_array();
    bool *used = calloc(n, 1);
    if (!used) { rc = ms_error_set(err, MS_ENOMEM, "out of memory"); json_decref(list); json_decref(rows); goto done; }
    for (int c = 0; c < nse; c++) {
        size_t b = n;
        for (size_t i = 0; i < n; i++)
            if (se[i] && !used[i] && (b == n || a[i] > a[b])) b = i;
        used[b] = 1;
        json_t *x = json_object();
        json_object_set_new(x, "rank", json_integer(c + 1));
        json_object_set_new(x, "layer", json_integer(layer[b]));
        json_object_set_new(x, "expert", json_integer((int)(b % E)));
        json_object_set_new(x, "value", json_real(a[b]));
        json_object_set_new(x, "n_routed", json_integer(ntok[b]));
        int pi = an_run_prompt_index(r, apid[b]);
        json_object_set_new(x, "prompt", json_integer(pi));
        json_object_set_new(x, "pos", json_integer(apos[b]));
        /* evidence: where the maximum is, in the token and in the output */
        int ch = apos[b] >= 0 ? expert_channel(db, r, apid[b], apos[b], layer[b], (int)(b % E), err) : -1;
        if (ch < -1) { rc = ch; json_decref(x); break; }
        json_object_set_new(x, "channel", ch >= 0 ? json_integer(ch) : json_null());
        json_array_append(list, x);
        json_array_append_new(rows, x);
    }
    free(used);
    /* residual massive-activation profile */
    for (int l = 0; l < r->n_layer; l++) hmax[l] = NAN;
    json_t *profile = json_array();
    MsTraceCursor *hc = ms_trace_hidden(db, r->run_id, 0, err);
    if (!hc) { rc = err ? err->code : MS_EDB; }
    MsTraceHidden hb[4096];
    int got;
    while (rc >= 0 && (got = ms_trace_hidden_next(hc, hb, 4096, err)) != 0) {
        if (got < 0) { rc = got; break; }
        for (int i = 0; i < got; i++) {
            int l = hb[i].layer;
            if (l < 0 || l >= r->n_layer || !isfinite(hb[i].maxabs)) continue;
            hsum[l] += hb[i].maxabs;
            hn[l]++;
            if (isnan(hmax[l]) || hb[i].maxabs > hmax[l]) {
                hmax[l] = hb[i].maxabs;
                hpid[l] = hb[i].prompt_id;
                hpos[l] = hb[i].pos;
                hch[l] = hb[i].channel;
            }
        }
    }
    ms_trace_cursor_free(hc);
    for (int l = 0; l < r->n_layer && rc >= 0; l++) {
        if (!hn[l]) continue;
        json_t *x = json_object();
        json_object_set_new(x, "layer", json_integer(l));
        json_object_set_new(x, "max", an_real(hmax[l]));
        json_object_set_new(x, "mean_token_max", an_real(hsum[l] / (double)hn[l]));
        json_object_set_new(x, "ratio", an_real(hmax[l] / (hsum[l] / (double)hn[l])));
        json_object_set_new(x, "prompt", json_integer(an_run_prompt_index(r, hpid[l])));
        json_object_set_new(x, "pos", json_integer(hpos[l]));
        json_object_set_new(x, "channel", hch[l] >= 0 ? json_integer(hch[l]) : json_null());
        json_array_append_new(profile, x);
    }
    json_t *heat = json_array();
    for (int s = 0; s < ns; s++) {
        json_t *x = json_object();
        json_object_set_new(x, "layer", json_integer(r->slot_layer[s]));
        json_object_set_new(x, "a", an_real_array(a + (size_t)s * E, E));
        json_array_append_new(heat, x);
    }
    out->doc = json_object();
    json_object_set_new(out->doc, "super_experts", list);
    json_object_set_new(out->doc, "p995", an_real(info.p995));
    json_object_set_new(out->doc, "max_div10", an_real(info.max_div10));
    json_object_set_new(out->doc, "threshold", an_real(info.threshold));
    json_object_set_new(out->doc, "max", an_real(info.max));
    json_object_set_new(out->doc, "layer_cut", json_integer(info.layer_cut));
    json_object_set_new(out->doc, "n_candidates", json_integer(info.n_candidates));
    json_object_set_new(out->doc, "experts", heat);
    json_object_set_new(out->doc, "massive_activations", profile);
    out->rows = rows;
    if (rc >= 0 && o->write) {
        json_t *prow = json_object_get(out->doc, "massive_activations");
        rc = an_write_rows(db, r, "superexperts", params, "an_superexperts_massive", prow, err);
        json_t *all = json_array();
        for (size_t i = 0; i < n; i++) {
            json_t *x = json_object();
            json_object_set_new(x, "layer", json_integer(layer[i]));
            json_object_set_new(x, "expert", json_integer((int)(i % E)));
            json_object_set_new(x, "a", json_real(a[i]));
            json_object_set_new(x, "is_se", json_boolean(se[i]));
            json_array_append_new(all, x);
        }
        if (rc >= 0) rc = an_write_rows(db, r, "superexperts", params, "an_superexperts_all", all, err);
        json_decref(all);
    }
done:
    free(a); free(apid); free(ntok); free(apos); free(layer); free(se);
    free(hmax); free(hsum); free(hn); free(hpid); free(hpos); free(hch);
    return rc < 0 ? rc : 0;
}
