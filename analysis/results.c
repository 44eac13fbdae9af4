/* results.c — options, names, the *_free of every typed result and their
 * result tables as typed rows (results.h).  Pure: no database, no JSON. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "results.h"

void ms_an_options_default(MsAnOptions *o)
{
    memset(o, 0, sizeof *o);
    o->layer = -1;
    o->write = true;
    o->distance = 1;
    o->top = 0;   /* the module's own default: 10 transitions (affinity), 2 plan experts (npmi) */
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

static const char *const module_names[MS_AN_N_MODULES] = {
    "load", "coactivation", "affinity", "consistency", "superexperts", "npmi", "riskdiff", "crosslingual",
    "pathways",
};

const char *ms_an_module_name(MsAnModule m)
{
    return (int)m >= 0 && m < MS_AN_N_MODULES ? module_names[m] : NULL;
}

int ms_an_module_from_name(const char *name)
{
    for (int i = 0; name && i < MS_AN_N_MODULES; i++)
        if (!strcmp(module_names[i], name)) return i;
    return MS_ENOTFOUND;
}

const char *ms_an_role_name(MsAnRole r)
{
    return r == MS_AN_ROLE_PROMPT ? "prompt" : r == MS_AN_ROLE_GENERATED ? "generated" : "all";
}

int ms_an_role_parse(const char *s, MsAnRole dflt, MsAnRole *out, MsError *err)
{
    if (!s) { *out = dflt; return 0; }
    if (!strcmp(s, "all")) *out = MS_AN_ROLE_ALL;
    else if (!strcmp(s, "prompt")) *out = MS_AN_ROLE_PROMPT;
    else if (!strcmp(s, "generated")) *out = MS_AN_ROLE_GENERATED;
    else return ms_error_set(err, MS_EINVAL, "--role must be all, prompt or generated (got '%s')", s);
    return 0;
}

const char *ms_aff_variant_name(MsAffVariant v)
{
    return v == MS_AFF_TOP1 ? "top1" : v == MS_AFF_WEIGHTED ? "weighted" : "topk";
}

const char *ms_se_rule_name(MsSeRule r)
{
    static const char *const rules[] = {"paper", "p99.5", "mean+3sd", "50xmean"};
    return (int)r >= 0 && (int)r < 4 ? rules[r] : NULL;
}

/* ------------------------------------------------------------------ free */

void ms_load_result_free(MsLoadResult *r)
{
    if (!r) return;
    for (int i = 0; r->layers && i < r->n_layers; i++) {
        MsLoadLayer *l = &r->layers[i];
        free(l->counts); free(l->share); free(l->coverage); free(l->dead); free(l->cold);
        free(l->pbar); free(l->importance);
    }
    free(r->layers);
    free(r);
}

void ms_coactivation_result_free(MsCoactivationResult *r)
{
    if (!r) return;
    for (int i = 0; r->layers && i < r->n_layers; i++) {
        MsCoactLayer *l = &r->layers[i];
        free(l->N); free(l->coact); free(l->jaccard); free(l->lift);
    }
    free(r->layers);
    free(r);
}

void ms_affinity_result_free(MsAffinityResult *r)
{
    if (!r) return;
    for (int i = 0; r->pairs && i < r->n_pairs; i++) {
        MsAffPair *p = &r->pairs[i];
        free(p->C); free(p->P); free(p->Q); free(p->lift); free(p->n);
        free(p->var_C); free(p->var_Q); free(p->top);
    }
    free(r->pairs);
    free(r);
}

void ms_consistency_result_free(MsConsistencyResult *r)
{
    if (!r) return;
    for (int i = 0; r->layers && i < r->n_layers; i++) {
        MsConsLayer *l = &r->layers[i];
        free(l->srp); free(l->rho_hat); free(l->act_r); free(l->sch);
        free(l->expert_srp); free(l->expert_rho); free(l->expert_act_r);
    }
    free(r->layers);
    free(r->m); free(r->C);
    free(r->model_srp); free(r->model_rho_hat); free(r->model_sch);
    free(r);
}

void ms_superexperts_result_free(MsSuperExpertsResult *r)
{
    if (!r) return;
    free(r->se); free(r->slot_layer); free(r->a); free(r->is_se); free(r->massive);
    free(r);
}

static void free_strings(char **s, int n)
{
    for (int i = 0; s && i < n; i++) free(s[i]);
    free(s);
}

void ms_npmi_result_free(MsNpmiResult *r)
{
    if (!r) return;
    free(r->by);
    free_strings(r->classes, r->n_classes);
    free(r->rows);
    free(r->plan_class);
    free(r->plan_experts);
    free(r->plan);
    free(r);
}

void ms_riskdiff_result_free(MsRiskDiffResult *r)
{
    if (!r) return;
    free(r->label); free(r->set1); free(r->set2);
    free(r->rows); free(r->activate); free(r->deactivate); free(r->plan);
    free(r);
}

void ms_crosslingual_result_free(MsCrosslingualResult *r)
{
    if (!r) return;
    free(r->lang_key); free(r->pair_key); free(r->ref_lang);
    free_strings(r->languages, r->n_languages);
    for (int i = 0; r->layers && i < r->n_layers; i++) {
        free(r->layers[i].div); free(r->layers[i].entropy); free(r->layers[i].n_pairs);
    }
    free(r->layers); free(r->rows); free(r->steer); free(r->plan);
    free(r);
}

void ms_pathways_result_free(MsPathwaysResult *r)
{
    if (!r) return;
    for (int i = 0; r->samples && i < r->n_samples; i++) {
        free(r->samples[i].pathway); free(r->samples[i].lens); free(r->samples[i].experts);
    }
    free(r->samples); free(r->layers); free(r->layer_mean_distance);
    free(r);
}

void ms_an_result_clear(MsAnResult *r)
{
    if (!r) return;
    switch (r->module) {
    case MS_AN_LOAD: ms_load_result_free(r->load); break;
    case MS_AN_COACTIVATION: ms_coactivation_result_free(r->coactivation); break;
    case MS_AN_AFFINITY: ms_affinity_result_free(r->affinity); break;
    case MS_AN_CONSISTENCY: ms_consistency_result_free(r->consistency); break;
    case MS_AN_SUPEREXPERTS: ms_superexperts_result_free(r->superexperts); break;
    case MS_AN_NPMI: ms_npmi_result_free(r->npmi); break;
    case MS_AN_RISKDIFF: ms_riskdiff_result_free(r->riskdiff); break;
    case MS_AN_CROSSLINGUAL: ms_crosslingual_result_free(r->crosslingual); break;
    case MS_AN_PATHWAYS: ms_pathways_result_free(r->pathways); break;
    default: break;
    }
    memset(r, 0, sizeof *r);
}

const MsAnHead *ms_an_result_head(const MsAnResult *r)
{
    if (!r || !r->any) return NULL;
    /* every result struct starts with its MsAnHead */
    return (const MsAnHead *)r->any;
}

const char *ms_an_result_plan(const MsAnResult *r)
{
    if (!r || !r->any) return NULL;
    switch (r->module) {
    case MS_AN_NPMI: return r->npmi->plan;
    case MS_AN_RISKDIFF: return r->riskdiff->plan;
    case MS_AN_CROSSLINGUAL: return r->crosslingual->plan;
    default: return NULL;
    }
}

/* ---------------------------------------------------------------- tables */

static inline MsAnCell c_int(int64_t v) { return (MsAnCell){.type = MS_AN_INT, .i = v}; }
static inline MsAnCell c_real(double v) { return (MsAnCell){.type = MS_AN_REAL, .r = v}; }
static inline MsAnCell c_text(const char *s) { return (MsAnCell){.type = s ? MS_AN_TEXT : MS_AN_NULL, .s = s}; }
static inline MsAnCell c_null(void) { return (MsAnCell){.type = MS_AN_NULL}; }

static void table(MsAnTable *t, const char *name, const char *const *cols, int n_cols, int64_t n_rows,
                  const void *src, void (*row)(const void *, int64_t, MsAnCell *))
{
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->cols = cols;
    t->n_cols = n_cols;
    t->n_rows = n_rows;
    t->src = src;
    t->row = row;
}

/* load */
static const char *const load_cols[] = {"layer", "n_tokens", "entropy", "entropy_norm", "gini", "cv",
                                        "max_over_mean", "n_dead", "n_cold", "jaccard_adjacent",
                                        "token_entropy_mean"};
static void load_row(const void *src, int64_t i, MsAnCell *c)
{
    const MsLoadLayer *l = &((const MsLoadResult *)src)->layers[i];
    c[0] = c_int(l->layer);
    c[1] = c_int(l->n_tokens);
    c[2] = c_real(l->entropy);
    c[3] = c_real(l->entropy_norm);
    c[4] = c_real(l->gini);
    c[5] = c_real(l->cv);
    c[6] = c_real(l->max_over_mean);
    c[7] = c_int(l->n_dead);
    c[8] = c_int(l->n_cold);
    c[9] = c_real(l->jaccard_adjacent);
    c[10] = l->n_prob_tokens > 0 ? c_real(l->token_entropy_mean) : c_null();
}
static const char *const load_e_cols[] = {"layer", "expert", "count", "share", "pbar"};
static void load_e_row(const void *src, int64_t i, MsAnCell *c)
{
    const MsLoadResult *r = src;
    int E = r->head.n_expert, e = (int)(i % E);
    const MsLoadLayer *l = &r->layers[i / E];
    c[0] = c_int(l->layer);
    c[1] = c_int(e);
    c[2] = c_int(l->counts[e]);
    c[3] = c_real(l->share[e]);
    c[4] = l->pbar ? c_real(l->pbar[e]) : c_null();
}

/* coactivation: ordered pairs i != j */
static const char *const coact_cols[] = {"layer", "i", "j", "n_ij", "coact", "jaccard", "lift"};
static void coact_row(const void *src, int64_t i, MsAnCell *c)
{
    const MsCoactivationResult *r = src;
    int64_t E = r->head.n_expert, per = E * (E - 1);
    const MsCoactLayer *l = &r->layers[i / per];
    int64_t q = i % per, a = q / (E - 1), b = q % (E - 1), j = b < a ? b : b + 1;
    size_t ix = (size_t)(a * E + j);
    c[0] = c_int(l->layer);
    c[1] = c_int(a);
    c[2] = c_int(j);
    c[3] = c_int(l->N[ix]);
    c[4] = c_real(l->coact[ix]);
    c[5] = c_real(l->jaccard[ix]);
    c[6] = c_real(l->lift[ix]);
}

/* affinity */
static const char *const aff_cols[] = {"from_layer", "to_layer", "concentration", "concentration_top1",
                                       "nmi_top1", "n_tokens"};
static void aff_row(const void *src, int64_t i, MsAnCell *c)
{
    const MsAffPair *p = &((const MsAffinityResult *)src)->pairs[i];
    c[0] = c_int(p->from);
    c[1] = c_int(p->to);
    c[2] = c_real(p->concentration);
    c[3] = c_real(p->concentration_top1);
    c[4] = c_real(p->nmi_top1);
    c[5] = c_int(p->n_tokens);
}
static const char *const aff_cell_cols[] = {"from_layer", "to_layer", "i", "j", "C", "P", "Q", "lift"};
static void aff_cell_row(const void *src, int64_t i, MsAnCell *c)
{
    const MsAffinityResult *r = src;
    int64_t E = r->head.n_expert, EE = E * E, q = i % EE;
    const MsAffPair *p = &r->pairs[i / EE];
    c[0] = c_int(p->from);
    c[1] = c_int(p->to);
    c[2] = c_int(q / E);
    c[3] = c_int(q % E);
    c[4] = c_real(p->C[q]);
    c[5] = c_real(p->P[q]);
    c[6] = c_real(p->Q[q]);
    c[7] = c_real(p->lift[q]);
}

/* consistency: (layer, m, C) rows, then the model's (m, C) */
static const char *const cons_cols[] = {"layer", "m", "C", "srp", "rho_hat", "sch"};
static void cons_row(const void *src, int64_t i, MsAnCell *c)
{
    const MsConsistencyResult *r = src;
    int64_t per = (int64_t)r->n_m * r->n_c, li = i / per, q = i % per;
    int mi = (int)(q / r->n_c), ci = (int)(q % r->n_c);
    if (li < r->n_layers) {
        const MsConsLayer *l = &r->layers[li];
        c[0] = c_int(l->layer);
        c[3] = c_real(l->srp[mi]);
        c[4] = c_real(l->rho_hat[mi]);
        c[5] = c_real(l->sch[q]);
    } else {
        c[0] = c_null();
        c[3] = c_real(r->model_srp[mi]);
        c[4] = c_real(r->model_rho_hat[mi]);
        c[5] = c_real(r->model_sch[q]);
    }
    c[1] = c_int(r->m[mi]);
    c[2] = c_int(r->C[ci]);
}
static const char *const cons_e_cols[] = {"layer", "expert", "m", "srp", "rho", "act_r"};
static void cons_e_row(const void *src, int64_t i, MsAnCell *c)
{
    const MsConsistencyResult *r = src;
    int64_t E = r->head.n_expert, per = (int64_t)r->n_m * E, q = i % per;
    const MsConsLayer *l = &r->layers[i / per];
    c[0] = c_int(l->layer);
    c[1] = c_int(q % E);
    c[2] = c_int(r->m[q / E]);
    c[3] = c_real(l->expert_srp[q]);
    c[4] = c_real(l->expert_rho[q]);
    c[5] = c_real(l->expert_act_r[q]);
}

/* super experts */
static const char *const se_cols[] = {"rank", "layer", "expert", "value", "n_routed", "prompt", "pos",
                                      "channel"};
static void se_row(const void *src, int64_t i, MsAnCell *c)
{
    const MsSuperExpert *s = &((const MsSuperExpertsResult *)src)->se[i];
    c[0] = c_int(s->rank);
    c[1] = c_int(s->layer);
    c[2] = c_int(s->expert);
    c[3] = c_real(s->value);
    c[4] = c_int(s->n_routed);
    c[5] = c_int(s->prompt);
    c[6] = c_int(s->pos);
    c[7] = s->channel >= 0 ? c_int(s->channel) : c_null();
}
static const char *const se_all_cols[] = {"layer", "expert", "a", "is_se"};
static void se_all_row(const void *src, int64_t i, MsAnCell *c)
{
    const MsSuperExpertsResult *r = src;
    c[0] = c_int(r->slot_layer[i / r->head.n_expert]);
    c[1] = c_int(i % r->head.n_expert);
    c[2] = c_real(r->a[i]);
    c[3] = c_int(r->is_se[i]);
}
static const char *const se_mass_cols[] = {"layer", "max", "mean_token_max", "ratio", "prompt", "pos",
                                           "channel"};
static void se_mass_row(const void *src, int64_t i, MsAnCell *c)
{
    const MsMassiveAct *m = &((const MsSuperExpertsResult *)src)->massive[i];
    c[0] = c_int(m->layer);
    c[1] = c_real(m->max);
    c[2] = c_real(m->mean_token_max);
    c[3] = c_real(m->ratio);
    c[4] = c_int(m->prompt);
    c[5] = c_int(m->pos);
    c[6] = m->channel >= 0 ? c_int(m->channel) : c_null();
}

/* npmi */
static const char *const npmi_cols[] = {"layer", "expert", "class", "npmi", "count", "n_x", "n_y", "N"};
static void npmi_row(const void *src, int64_t i, MsAnCell *c)
{
    const MsNpmiResult *r = src;
    const MsNpmiRow *x = &r->rows[i];
    c[0] = c_int(x->layer);
    c[1] = c_int(x->expert);
    c[2] = c_text(r->classes[x->cls]);
    c[3] = c_real(x->npmi);
    c[4] = c_int(x->count);
    c[5] = c_int(x->n_x);
    c[6] = c_int(x->n_y);
    c[7] = c_int(x->N);
}

/* plan tables: (analysis, interventions) */
static const char *const plan_cols[] = {"analysis", "interventions"};
static void npmi_plan_row(const void *src, int64_t i, MsAnCell *c)
{
    (void)i;
    c[0] = c_text("npmi");
    c[1] = c_text(((const MsNpmiResult *)src)->plan);
}
static void rd_plan_row(const void *src, int64_t i, MsAnCell *c)
{
    (void)i;
    c[0] = c_text("riskdiff");
    c[1] = c_text(((const MsRiskDiffResult *)src)->plan);
}
static void cl_plan_row(const void *src, int64_t i, MsAnCell *c)
{
    (void)i;
    c[0] = c_text("crosslingual");
    c[1] = c_text(((const MsCrosslingualResult *)src)->plan);
}

/* riskdiff */
static const char *const rd_cols[] = {"layer", "expert", "rd", "a1", "n1", "a2", "n2"};
static void rd_row(const void *src, int64_t i, MsAnCell *c)
{
    const MsRiskDiffResult *r = src;
    const MsRdRow *x = &r->rows[i];
    c[0] = c_int(x->layer);
    c[1] = c_int(x->expert);
    c[2] = c_real(x->rd);
    c[3] = c_int(x->a1);
    c[4] = c_int(r->n1);
    c[5] = c_int(x->a2);
    c[6] = c_int(r->n2);
}

/* crosslingual */
static const char *const cl_cols[] = {"layer", "lang", "div", "n_pairs"};
static void cl_row(const void *src, int64_t i, MsAnCell *c)
{
    const MsCrosslingualResult *r = src;
    const MsClRow *x = &r->rows[i];
    c[0] = c_int(x->layer);
    c[1] = c_text(r->languages[x->lang]);
    c[2] = c_real(x->div);
    c[3] = c_int(x->n_pairs);
}

/* pathways */
static const char *const path_cols[] = {"prompt", "pathway", "length"};
static void path_row(const void *src, int64_t i, MsAnCell *c)
{
    const MsPathSample *s = &((const MsPathwaysResult *)src)->samples[i];
    c[0] = c_int(s->prompt);
    c[1] = c_text(s->pathway);
    c[2] = c_int(s->length);
}

#define COLS(a) a, (int)MS_ARRAY_LEN(a)

int ms_an_result_tables(const MsAnResult *r, MsAnTable t[MS_AN_MAX_TABLES])
{
    if (!r || !r->any) return 0;
    int n = 0;
    switch (r->module) {
    case MS_AN_LOAD: {
        const MsLoadResult *x = r->load;
        table(&t[n++], "an_load_experts", COLS(load_e_cols), (int64_t)x->n_layers * x->head.n_expert, x,
              load_e_row);
        table(&t[n++], "an_load", COLS(load_cols), x->n_layers, x, load_row);
        break;
    }
    case MS_AN_COACTIVATION: {
        const MsCoactivationResult *x = r->coactivation;
        int64_t E = x->head.n_expert;
        table(&t[n++], "an_coactivation", COLS(coact_cols), x->n_layers * E * (E - 1), x, coact_row);
        break;
    }
    case MS_AN_AFFINITY: {
        const MsAffinityResult *x = r->affinity;
        int64_t E = x->head.n_expert;
        table(&t[n++], "an_affinity_cells", COLS(aff_cell_cols), x->n_pairs * E * E, x, aff_cell_row);
        table(&t[n++], "an_affinity", COLS(aff_cols), x->n_pairs, x, aff_row);
        break;
    }
    case MS_AN_CONSISTENCY: {
        const MsConsistencyResult *x = r->consistency;
        table(&t[n++], "an_consistency_experts", COLS(cons_e_cols),
              (int64_t)x->n_layers * x->n_m * x->head.n_expert, x, cons_e_row);
        table(&t[n++], "an_consistency", COLS(cons_cols),
              (int64_t)(x->n_layers + (x->has_model ? 1 : 0)) * x->n_m * x->n_c, x, cons_row);
        break;
    }
    case MS_AN_SUPEREXPERTS: {
        const MsSuperExpertsResult *x = r->superexperts;
        table(&t[n++], "an_superexperts_massive", COLS(se_mass_cols), x->n_massive, x, se_mass_row);
        table(&t[n++], "an_superexperts_all", COLS(se_all_cols), (int64_t)x->n_slots * x->head.n_expert, x,
              se_all_row);
        table(&t[n++], "an_superexperts", COLS(se_cols), x->n_se, x, se_row);
        break;
    }
    case MS_AN_NPMI: {
        const MsNpmiResult *x = r->npmi;
        if (x->plan) table(&t[n++], "an_npmi_plan", COLS(plan_cols), 1, x, npmi_plan_row);
        table(&t[n++], "an_npmi", COLS(npmi_cols), x->n_rows, x, npmi_row);
        break;
    }
    case MS_AN_RISKDIFF: {
        const MsRiskDiffResult *x = r->riskdiff;
        if (x->plan) table(&t[n++], "an_riskdiff_plan", COLS(plan_cols), 1, x, rd_plan_row);
        table(&t[n++], "an_riskdiff", COLS(rd_cols), x->n_rows, x, rd_row);
        break;
    }
    case MS_AN_CROSSLINGUAL: {
        const MsCrosslingualResult *x = r->crosslingual;
        if (x->plan) table(&t[n++], "an_crosslingual_plan", COLS(plan_cols), 1, x, cl_plan_row);
        table(&t[n++], "an_crosslingual", COLS(cl_cols), x->n_rows, x, cl_row);
        break;
    }
    case MS_AN_PATHWAYS: {
        const MsPathwaysResult *x = r->pathways;
        table(&t[n++], "an_pathways", COLS(path_cols), x->n_samples, x, path_row);
        break;
    }
    default: break;
    }
    return n;
}

MsAnCellType ms_an_table_col_type(const MsAnTable *t, int c)
{
    MsAnCell cells[16];
    if (c < 0 || c >= t->n_cols || t->n_cols > (int)MS_ARRAY_LEN(cells)) return MS_AN_REAL;
    for (int64_t i = 0; i < t->n_rows; i++) {
        ms_an_table_row(t, i, cells);
        MsAnCell *x = &cells[c];
        if (x->type == MS_AN_NULL || (x->type == MS_AN_REAL && !isfinite(x->r))) continue;
        return x->type;
    }
    return MS_AN_REAL;
}
