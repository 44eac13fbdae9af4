/* result-json.c — typed results → the JSON the command prints (key order
 * as docs/analysis.md shows it; jansson keeps insertion order). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "result-json.h"

/* NaN and infinities as null */
static json_t *jreal(double v) { return isfinite(v) ? json_real(v) : json_null(); }

static json_t *jreal_array(const double *v, int n)
{
    json_t *a = json_array();
    for (int i = 0; i < n; i++) json_array_append_new(a, jreal(v[i]));
    return a;
}

static json_t *jint_array(const int64_t *v, int n)
{
    json_t *a = json_array();
    for (int i = 0; i < n; i++) json_array_append_new(a, json_integer(v[i]));
    return a;
}

static json_t *jints(const int *v, int n)
{
    json_t *a = json_array();
    for (int i = 0; i < n; i++) json_array_append_new(a, json_integer(v[i]));
    return a;
}

static json_t *jreal_matrix(const double *m, int rows, int cols)
{
    json_t *a = json_array();
    for (int i = 0; i < rows; i++) json_array_append_new(a, jreal_array(m + (size_t)i * cols, cols));
    return a;
}

static void set(json_t *o, const char *k, json_t *v) { json_object_set_new(o, k, v); }

json_t *ms_an_table_json(const MsAnTable *t)
{
    json_t *rows = json_array();
    MsAnCell cells[16];
    if (t->n_cols > (int)MS_ARRAY_LEN(cells)) return rows;
    for (int64_t i = 0; i < t->n_rows; i++) {
        ms_an_table_row(t, i, cells);
        json_t *row = json_object();
        for (int c = 0; c < t->n_cols; c++) {
            const MsAnCell *x = &cells[c];
            set(row, t->cols[c], x->type == MS_AN_INT ? json_integer(x->i) : x->type == MS_AN_REAL ? jreal(x->r)
                                 : x->type == MS_AN_TEXT ? json_string(x->s) : json_null());
        }
        json_array_append_new(rows, row);
    }
    return rows;
}

json_t *ms_an_rows_json(const MsAnResult *r)
{
    MsAnTable t[MS_AN_MAX_TABLES];
    int n = ms_an_result_tables(r, t);
    return n > 0 ? ms_an_table_json(&t[n - 1]) : json_array();
}

/* The table of a result by name (for documents that embed a table). */
static json_t *table_json(const MsAnResult *r, const char *name)
{
    MsAnTable t[MS_AN_MAX_TABLES];
    int n = ms_an_result_tables(r, t);
    for (int i = 0; i < n; i++)
        if (!strcmp(t[i].name, name)) return ms_an_table_json(&t[i]);
    return json_array();
}

/* ---------------------------------------------------------------- params */

static json_t *params_head(const MsAnHead *h)
{
    json_t *p = json_object();
    set(p, "method_version", json_string(MS_ANALYSIS_VERSION));
    set(p, "layer", h->layer >= 0 ? json_integer(h->layer) : json_null());
    return p;
}

static json_t *role_text(MsAnRole role, bool fallback)
{
    return json_string(fallback ? "all (run has no generated tokens)" : ms_an_role_name(role));
}

json_t *ms_an_params_json(const MsAnResult *res)
{
    const MsAnHead *h = ms_an_result_head(res);
    if (!h) return NULL;
    json_t *p = params_head(h);
    switch (res->module) {
    case MS_AN_LOAD:
        set(p, "role", json_string(ms_an_role_name(res->load->role)));
        set(p, "normalisation", json_string("sum of counts (k*M for full top-k)"));
        set(p, "laux_convention", json_string("r_e = c_e/M (balanced = k)"));
        break;
    case MS_AN_COACTIVATION:
        set(p, "role", json_string(ms_an_role_name(res->coactivation->role)));
        break;
    case MS_AN_AFFINITY: {
        const MsAffinityResult *r = res->affinity;
        set(p, "distance", json_integer(r->distance));
        set(p, "variant", json_string(ms_aff_variant_name(r->variant)));
        set(p, "role", json_string(ms_an_role_name(r->role)));
        set(p, "heatmap", json_string("Q: top-k, row-normalised"));
        break;
    }
    case MS_AN_CONSISTENCY: {
        const MsConsistencyResult *r = res->consistency;
        set(p, "role", json_string(ms_an_role_name(r->role)));
        set(p, "sch_start", json_string(r->cold ? "cold" : "warm"));
        set(p, "segments", jints(r->m, r->n_m));
        set(p, "cache", jints(r->C, r->n_c));
        set(p, "model_cache", json_string("C * number of MoE layers (same ratio rho = C/k)"));
        set(p, "sch_average", json_string("mean over sequences of per-sequence hit rates"));
        break;
    }
    case MS_AN_SUPEREXPERTS: {
        const MsSuperExpertsResult *r = res->superexperts;
        set(p, "rule", json_string(ms_se_rule_name(r->rule)));
        set(p, "include_layers", json_real(r->include_frac));
        set(p, "value", json_string("max |down_proj output| over all routed tokens"));
        break;
    }
    case MS_AN_NPMI: {
        const MsNpmiResult *r = res->npmi;
        set(p, "role", role_text(r->role, r->role_fallback));
        set(p, "by", json_string(r->by));
        set(p, "min_support", json_integer(r->min_support));
        set(p, "events", json_string("token positions of each layer"));
        if (r->kind == MS_NPMI_BY_TOKEN) set(p, "max_classes", json_integer(r->max_classes));
        if (r->plan_class) {
            bool boost = r->beta > 0;
            set(p, "plan_class", json_string(r->plan_class));
            set(p, "plan_operator", json_string(boost ? "SCALE pre_topk (softmax: logit + ln beta)" : "MASK (silence)"));
            if (boost) set(p, "beta", json_real(r->beta));
        }
        break;
    }
    case MS_AN_RISKDIFF: {
        const MsRiskDiffResult *r = res->riskdiff;
        set(p, "role", role_text(r->role, r->role_fallback));
        set(p, "label", json_string(r->label));
        set(p, "set1", json_string(r->set1));
        set(p, "set2", json_string(r->set2));
        set(p, "selection", json_string("logged ids"));
        set(p, "n_activate", json_integer(r->n_activate));
        set(p, "n_deactivate", json_integer(r->n_deactivate));
        set(p, "operators", json_string("activate = raise (max logit + 0.01), "
                                        "deactivate = lower (min logit - 0.01), METHODS 6.3"));
        break;
    }
    case MS_AN_CROSSLINGUAL: {
        const MsCrosslingualResult *r = res->crosslingual;
        set(p, "lang_key", json_string(r->lang_key));
        set(p, "pair_key", json_string(r->pair_key));
        set(p, "ref_lang", json_string(r->ref_lang));
        set(p, "tau", json_real(r->tau));
        set(p, "operator", json_string(r->hard ? "hard: logit := max (raise, margin 0)"
                                               : "soft: logit += lambda * std (steer-std)"));
        if (!r->hard) set(p, "lambda", json_real(r->lambda));
        set(p, "distribution", json_string(r->sparse_weights ? "top-k weights" : "router probabilities"));
        break;
    }
    case MS_AN_PATHWAYS: {
        const MsPathwaysResult *r = res->pathways;
        set(p, "tau_path", json_real(r->tau));
        set(p, "granularity", json_string(r->token_level ? "token" : "char"));
        set(p, "weights", json_string(r->sparse_weights ? "top-k weights" : "router probabilities"));
        set(p, "pairs", json_integer(r->max_pairs));
        set(p, "seed", json_integer((json_int_t)r->seed));
        break;
    }
    default: break;
    }
    return p;
}

/* doc + "run" + "params" */
static json_t *finish(json_t *doc, MsAnModule m, const void *result)
{
    MsAnResult res = {.module = m, .any = (void *)result};
    set(doc, "run", json_integer(((const MsAnHead *)result)->run_id));
    set(doc, "params", ms_an_params_json(&res));
    return doc;
}

/* -------------------------------------------------------------- documents */

json_t *ms_load_result_json(const MsLoadResult *r)
{
    int E = r->head.n_expert;
    json_t *layers = json_array();
    for (int i = 0; i < r->n_layers; i++) {
        const MsLoadLayer *l = &r->layers[i];
        json_t *jl = json_object();
        set(jl, "layer", json_integer(l->layer));
        set(jl, "counts", jint_array(l->counts, E));
        set(jl, "share", jreal_array(l->share, E));
        set(jl, "entropy_norm", jreal(l->entropy_norm));
        set(jl, "gini", jreal(l->gini));
        set(jl, "cv", jreal(l->cv));
        set(jl, "max_over_mean", jreal(l->max_over_mean));
        set(jl, "maxvio", jreal(l->maxvio));
        set(jl, "entropy", jreal(l->entropy));
        set(jl, "exp_entropy", jreal(l->exp_entropy));
        set(jl, "kl_uniform", jreal(l->kl_uniform));
        set(jl, "n_tokens", json_integer(l->n_tokens));
        set(jl, "n_selections", json_integer(l->n_selections));
        set(jl, "coverage", jreal_array(l->coverage, E));
        set(jl, "dead", jints(l->dead, l->n_dead));
        set(jl, "cold", jints(l->cold, l->n_cold));
        set(jl, "jaccard_adjacent", jreal(l->jaccard_adjacent));
        if (l->n_prob_tokens > 0) {
            set(jl, "token_entropy_mean", jreal(l->token_entropy_mean));
            set(jl, "token_entropy_std", jreal(l->token_entropy_std));
            set(jl, "top1_margin_mean", jreal(l->top1_margin_mean));
            set(jl, "pbar", jreal_array(l->pbar, E));
            set(jl, "importance", jreal_array(l->importance, E));
            set(jl, "importance_cv2", jreal(l->importance_cv2));
            set(jl, "laux", jreal(l->laux));
        }
        json_array_append_new(layers, jl);
    }
    json_t *doc = json_object();
    set(doc, "layers", layers);
    return finish(doc, MS_AN_LOAD, r);
}

json_t *ms_coactivation_result_json(const MsCoactivationResult *r)
{
    int E = r->head.n_expert;
    size_t EE = (size_t)E * E;
    double *Nd = malloc(EE * sizeof *Nd + 1);
    json_t *layers = json_array();
    for (int i = 0; i < r->n_layers && Nd; i++) {
        const MsCoactLayer *l = &r->layers[i];
        for (size_t x = 0; x < EE; x++) Nd[x] = (double)l->N[x];
        json_t *jl = json_object();
        set(jl, "layer", json_integer(l->layer));
        set(jl, "n_tokens", json_integer(l->n_tokens));
        set(jl, "N", jreal_matrix(Nd, E, E));
        set(jl, "coact", jreal_matrix(l->coact, E, E));
        set(jl, "jaccard", jreal_matrix(l->jaccard, E, E));
        set(jl, "lift", jreal_matrix(l->lift, E, E));
        json_array_append_new(layers, jl);
    }
    free(Nd);
    json_t *doc = json_object();
    set(doc, "layers", layers);
    return finish(doc, MS_AN_COACTIVATION, r);
}

json_t *ms_affinity_result_json(const MsAffinityResult *r)
{
    int E = r->head.n_expert;
    json_t *pairs = json_array();
    for (int i = 0; i < r->n_pairs; i++) {
        const MsAffPair *p = &r->pairs[i];
        json_t *jp = json_object();
        set(jp, "from", json_integer(p->from));
        set(jp, "to", json_integer(p->to));
        if (r->variant != MS_AFF_TOPK) {
            json_t *jv = json_object();
            set(jv, "C", jreal_matrix(p->var_C, E, E));
            set(jv, "Q", jreal_matrix(p->var_Q, E, E));
            set(jv, "concentration", jreal(p->var_concentration));
            set(jp, ms_aff_variant_name(r->variant), jv);
        }
        set(jp, "C", jreal_matrix(p->C, E, E));
        set(jp, "Q", jreal_matrix(p->Q, E, E));
        set(jp, "P", jreal_matrix(p->P, E, E));
        set(jp, "n", jreal_array(p->n, E));
        set(jp, "lift", jreal_matrix(p->lift, E, E));
        set(jp, "concentration", jreal(p->concentration));
        set(jp, "concentration_top1", jreal(p->concentration_top1));
        set(jp, "nmi_top1", jreal(p->nmi_top1));
        set(jp, "n_tokens", json_integer(p->n_tokens));
        json_t *jt = json_array();
        for (int t = 0; t < p->n_top; t++) {
            const MsAffPath *x = &p->top[t];
            json_t *o = json_object();
            set(o, "i", json_integer(x->i));
            set(o, "j", json_integer(x->j));
            set(o, "C", jreal(x->C));
            set(o, "P", jreal(x->P));
            set(o, "Q", jreal(x->Q));
            set(o, "lift", jreal(x->lift));
            json_array_append_new(jt, o);
        }
        set(jp, "top_paths", jt);
        json_array_append_new(pairs, jp);
    }
    json_t *doc = json_object();
    set(doc, "pairs", pairs);
    return finish(doc, MS_AN_AFFINITY, r);
}

/* {"m": v, ...} and {"m": {"C": v, ...}, ...} keyed by the lists */
static json_t *by_m(const MsConsistencyResult *r, const double *v)
{
    json_t *o = json_object();
    char key[32];
    for (int mi = 0; mi < r->n_m; mi++) {
        snprintf(key, sizeof key, "%d", r->m[mi]);
        set(o, key, jreal(v[mi]));
    }
    return o;
}

static json_t *by_m_c(const MsConsistencyResult *r, const double *v)
{
    json_t *o = json_object();
    char key[32], key2[32];
    for (int mi = 0; mi < r->n_m; mi++) {
        json_t *jm = json_object();
        for (int ci = 0; ci < r->n_c; ci++) {
            snprintf(key2, sizeof key2, "%d", r->C[ci]);
            set(jm, key2, jreal(v[(size_t)mi * r->n_c + ci]));
        }
        snprintf(key, sizeof key, "%d", r->m[mi]);
        set(o, key, jm);
    }
    return o;
}

json_t *ms_consistency_result_json(const MsConsistencyResult *r)
{
    json_t *layers = json_array();
    for (int i = 0; i < r->n_layers; i++) {
        const MsConsLayer *l = &r->layers[i];
        json_t *jl = json_object();
        set(jl, "layer", json_integer(l->layer));
        set(jl, "srp", by_m(r, l->srp));
        set(jl, "sch", by_m_c(r, l->sch));
        set(jl, "rho_hat", by_m(r, l->rho_hat));
        set(jl, "act_r", by_m(r, l->act_r));
        json_array_append_new(layers, jl);
    }
    json_t *doc = json_object();
    set(doc, "layers", layers);
    if (r->has_model) {
        json_t *jm = json_object();
        set(jm, "srp", by_m(r, r->model_srp));
        set(jm, "sch", by_m_c(r, r->model_sch));
        set(jm, "rho_hat", by_m(r, r->model_rho_hat));
        set(doc, "model", jm);
    }
    return finish(doc, MS_AN_CONSISTENCY, r);
}

json_t *ms_superexperts_result_json(const MsSuperExpertsResult *r)
{
    MsAnResult res = {.module = MS_AN_SUPEREXPERTS, .superexperts = (MsSuperExpertsResult *)r};
    int E = r->head.n_expert;
    json_t *heat = json_array();
    for (int s = 0; s < r->n_slots; s++) {
        json_t *x = json_object();
        set(x, "layer", json_integer(r->slot_layer[s]));
        set(x, "a", jreal_array(r->a + (size_t)s * E, E));
        json_array_append_new(heat, x);
    }
    json_t *doc = json_object();
    set(doc, "super_experts", table_json(&res, "an_superexperts"));
    set(doc, "p995", jreal(r->info.p995));
    set(doc, "max_div10", jreal(r->info.max_div10));
    set(doc, "threshold", jreal(r->info.threshold));
    set(doc, "max", jreal(r->info.max));
    set(doc, "layer_cut", json_integer(r->info.layer_cut));
    set(doc, "n_candidates", json_integer(r->info.n_candidates));
    set(doc, "experts", heat);
    set(doc, "massive_activations", table_json(&res, "an_superexperts_massive"));
    return finish(doc, MS_AN_SUPEREXPERTS, r);
}

json_t *ms_npmi_result_json(const MsNpmiResult *r)
{
    MsAnResult res = {.module = MS_AN_NPMI, .npmi = (MsNpmiResult *)r};
    json_t *doc = json_object();
    if (r->plan_class) {
        json_t *jp = json_array();
        for (int i = 0; i < r->n_plan; i++)
            json_array_append_new(jp, json_pack("{s:i,s:i,s:f}", "layer", r->plan_experts[i].layer, "expert",
                                                r->plan_experts[i].expert, "npmi", r->plan_experts[i].npmi));
        json_t *plan = json_object();
        set(plan, "class", json_string(r->plan_class));
        set(plan, "experts", jp);
        set(plan, "interventions", r->plan ? json_string(r->plan) : json_null());
        set(doc, "plan", plan);
    }
    set(doc, "rows", table_json(&res, "an_npmi"));
    return finish(doc, MS_AN_NPMI, r);
}

static json_t *picks(const MsRdPick *p, int n)
{
    json_t *a = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(a, json_pack("{s:i,s:i,s:f}", "layer", p[i].layer, "expert", p[i].expert, "rd", p[i].rd));
    return a;
}

json_t *ms_riskdiff_result_json(const MsRiskDiffResult *r)
{
    MsAnResult res = {.module = MS_AN_RISKDIFF, .riskdiff = (MsRiskDiffResult *)r};
    json_t *sel = json_object();
    set(sel, "activate", picks(r->activate, r->n_act));
    set(sel, "deactivate", picks(r->deactivate, r->n_deact));
    set(sel, "reverse", json_boolean(r->reverse));
    if (r->n_act || r->n_deact) set(sel, "interventions", r->plan ? json_string(r->plan) : json_null());
    json_t *doc = json_object();
    set(doc, "n1", json_integer(r->n1));
    set(doc, "n2", json_integer(r->n2));
    set(doc, "rows", table_json(&res, "an_riskdiff"));
    set(doc, "selection", sel);
    return finish(doc, MS_AN_RISKDIFF, r);
}

json_t *ms_crosslingual_result_json(const MsCrosslingualResult *r)
{
    json_t *layers = json_array();
    for (int i = 0; i < r->n_layers; i++) {
        const MsClLayer *l = &r->layers[i];
        json_t *jl = json_object(), *jd = json_object(), *je = json_object();
        for (int j = 0; j < r->n_languages; j++) {
            if (j != r->ref) set(jd, r->languages[j], jreal(l->div[j]));
            set(je, r->languages[j], jreal(l->entropy[j]));
        }
        set(jl, "layer", json_integer(l->layer));
        set(jl, "div", jd);
        set(jl, "entropy", je);
        json_array_append_new(layers, jl);
    }
    json_t *steer = json_array();
    for (int i = 0; i < r->n_steer; i++) {
        json_t *x = json_object();
        set(x, "layer", json_integer(r->steer[i].layer));
        set(x, "expert", json_integer(r->steer[i].expert));
        set(x, "delta", jreal(r->steer[i].delta));
        json_array_append_new(steer, x);
    }
    json_t *langs = json_array();
    for (int j = 0; j < r->n_languages; j++) json_array_append_new(langs, json_string(r->languages[j]));
    json_t *doc = json_object();
    set(doc, "languages", langs);
    set(doc, "ref", json_string(r->ref_lang));
    set(doc, "layers", layers);
    json_t *js = json_object();
    set(js, "layers", json_pack("[ii]", r->mid_lo, r->mid_hi));
    set(js, "tau", json_real(r->tau));
    set(js, "experts", steer);
    set(js, "operator", json_string(r->hard ? "hard" : "soft"));
    if (!r->hard) set(js, "lambda", json_real(r->lambda));
    set(doc, "steer", js);
    return finish(doc, MS_AN_CROSSLINGUAL, r);
}

json_t *ms_pathways_result_json(const MsPathwaysResult *r)
{
    MsAnResult res = {.module = MS_AN_PATHWAYS, .pathways = (MsPathwaysResult *)r};
    json_t *jl = json_array();
    for (int s = 0; s < r->n_layers; s++) {
        json_t *x = json_object();
        set(x, "layer", json_integer(r->layers[s]));
        set(x, "mean_distance", jreal(r->layer_mean_distance[s]));
        json_array_append_new(jl, x);
    }
    json_t *doc = json_object();
    set(doc, "samples", table_json(&res, "an_pathways"));
    set(doc, "mean_distance", jreal(r->mean_distance));
    set(doc, "n_pairs", json_integer(r->n_pairs));
    set(doc, "granularity", json_string(r->token_level ? "token" : "char"));
    set(doc, "layers", jl);
    set(doc, "consistency", json_string("needs router weight matrices: not computed from a trace (library: "
                                        "ms_pathway_consistency)"));
    return finish(doc, MS_AN_PATHWAYS, r);
}

json_t *ms_an_result_json(const MsAnResult *r)
{
    if (!r || !r->any) return NULL;
    switch (r->module) {
    case MS_AN_LOAD: return ms_load_result_json(r->load);
    case MS_AN_COACTIVATION: return ms_coactivation_result_json(r->coactivation);
    case MS_AN_AFFINITY: return ms_affinity_result_json(r->affinity);
    case MS_AN_CONSISTENCY: return ms_consistency_result_json(r->consistency);
    case MS_AN_SUPEREXPERTS: return ms_superexperts_result_json(r->superexperts);
    case MS_AN_NPMI: return ms_npmi_result_json(r->npmi);
    case MS_AN_RISKDIFF: return ms_riskdiff_result_json(r->riskdiff);
    case MS_AN_CROSSLINGUAL: return ms_crosslingual_result_json(r->crosslingual);
    case MS_AN_PATHWAYS: return ms_pathways_result_json(r->pathways);
    default: return NULL;
    }
}

static json_t *jtime(MsAnTime t) { return json_pack("{s:f,s:f}", "wall", t.wall, "cpu", t.cpu); }

json_t *ms_an_all_json(const MsAnAll *a)
{
    json_t *mods = json_object(), *skipped = json_object(), *times = json_object();
    set(times, "decode", jtime(a->decode));
    for (int m = 0; m < MS_AN_N_MODULES; m++) {
        const char *name = ms_an_module_name((MsAnModule)m);
        if (a->skipped[m]) set(skipped, name, json_string(a->skipped[m]));
        if (!a->ran[m]) continue;
        set(times, name, jtime(a->time[m]));
        set(mods, name, ms_an_result_json(&a->res[m]));
    }
    set(times, "total", jtime(a->total));
    return json_pack("{s:I,s:o,s:o,s:o}", "run", (json_int_t)a->run_id, "modules", mods, "skipped", skipped,
                     "timing", times);
}
