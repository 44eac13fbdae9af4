/* build-class.c — token classes and the typed results of nPMI (METHODS §5,
 * with RICE-style steering plans) and SteerMoE risk difference (§6): class
 * lists, row ranking, plan selection.  Pure (results.h). */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "results.h"

/* ------------------------------------------------------------- classes */

static const char *const text_classes[MS_TEXT_CLASSES] = {"empty", "whitespace", "digit", "punct", "word",
                                                          "other"};

const char *ms_text_class_name(int c) { return c >= 0 && c < MS_TEXT_CLASSES ? text_classes[c] : NULL; }

int ms_text_class(const char *s, size_t n)
{
    if (!s || n == 0) return 0;
    bool all_space = true, all_digit = true, all_punct = true, letter = false;
    size_t non_space = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        bool sp = c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
        if (sp) continue;
        non_space++;
        all_space = false;
        if (!(c >= '0' && c <= '9')) all_digit = false;
        if (!(c < 128 && ispunct(c))) all_punct = false;
        if (c >= 128 || isalpha(c)) letter = true;
    }
    if (all_space) return 1;
    if (non_space && all_digit) return 2;
    if (non_space && all_punct) return 3;
    if (letter) return 4;
    return 5;
}

int ms_npmi_parse_by(const char *by, MsNpmiBy *kind, const char **label, int *bucket, MsError *err)
{
    *label = NULL;
    *bucket = 64;
    if (!strcmp(by, "text")) *kind = MS_NPMI_BY_TEXT;
    else if (!strcmp(by, "token")) *kind = MS_NPMI_BY_TOKEN;
    else if (!strncmp(by, "label:", 6) && by[6]) { *kind = MS_NPMI_BY_LABEL; *label = by + 6; }
    else if (!strncmp(by, "pos", 3) && (by[3] == 0 || by[3] == ':')) {
        *kind = MS_NPMI_BY_POS;
        if (by[3] == ':') *bucket = atoi(by + 4);
        if (*bucket < 1) return ms_error_set(err, MS_EINVAL, "--by pos:B needs B >= 1");
    } else {
        return ms_error_set(err, MS_EINVAL, "--by must be text, token, label:NAME or pos[:B] (got '%s')", by);
    }
    return 0;
}

void ms_npmi_classes_clear(MsNpmiClasses *c)
{
    if (!c) return;
    for (int i = 0; c->names && i < c->n; i++) free(c->names[i]);
    free(c->names);
    free(c->of_token);
    free(c->of_prompt);
    memset(c, 0, sizeof *c);
}

int ms_npmi_classes_text(MsNpmiClasses *c)
{
    memset(c, 0, sizeof *c);
    c->names = calloc(MS_TEXT_CLASSES, sizeof *c->names);
    if (!c->names) return MS_ENOMEM;
    c->n = MS_TEXT_CLASSES;
    for (int i = 0; i < c->n; i++)
        if (!(c->names[i] = strdup(text_classes[i]))) return MS_ENOMEM;
    return 0;
}

int ms_npmi_classes_pos(MsNpmiClasses *c, int bucket)
{
    memset(c, 0, sizeof *c);
    c->names = calloc(MS_NPMI_POS_BUCKETS, sizeof *c->names);
    if (!c->names) return MS_ENOMEM;
    c->n = MS_NPMI_POS_BUCKETS;
    for (int i = 0; i < c->n; i++) {
        char b[64];
        if (i + 1 < c->n) snprintf(b, sizeof b, "pos:%d-%d", i * bucket, (i + 1) * bucket - 1);
        else snprintf(b, sizeof b, "pos:%d+", i * bucket);
        if (!(c->names[i] = strdup(b))) return MS_ENOMEM;
    }
    return 0;
}

typedef struct { int32_t id; int64_t n; } TokCount;

static int cmp_tc(const void *x, const void *y)
{
    const TokCount *a = x, *b = y;
    if (a->n != b->n) return a->n > b->n ? -1 : 1;
    return (a->id > b->id) - (a->id < b->id);
}

int ms_npmi_classes_token(MsNpmiClasses *c, const int64_t *count, int32_t n, int max_classes)
{
    memset(c, 0, sizeof *c);
    TokCount *tcs = malloc(sizeof *tcs * ((size_t)n + 1));
    c->of_token = malloc(sizeof *c->of_token * ((size_t)n + 1));
    if (!tcs || !c->of_token) { free(tcs); return MS_ENOMEM; }
    c->n_tokens = n;
    int nt = 0;
    for (int32_t i = 0; i < n; i++) {
        c->of_token[i] = -1;
        if (count[i] > 0) tcs[nt++] = (TokCount){i, count[i]};
    }
    qsort(tcs, (size_t)nt, sizeof *tcs, cmp_tc);
    int K = MS_MIN(nt, max_classes > 0 ? max_classes : 512);
    c->names = calloc((size_t)K + 1, sizeof *c->names);
    if (!c->names) { free(tcs); return MS_ENOMEM; }
    c->n = K;
    for (int k = 0; k < K; k++) {
        char b[32];
        snprintf(b, sizeof b, "%d", tcs[k].id);
        if (!(c->names[k] = strdup(b))) { free(tcs); return MS_ENOMEM; }
        c->of_token[tcs[k].id] = k;
    }
    free(tcs);
    return 0;
}

int ms_npmi_classes_label(MsNpmiClasses *c, const char *const *value, int n_prompt)
{
    memset(c, 0, sizeof *c);
    c->of_prompt = malloc(sizeof(int) * ((size_t)n_prompt + 1));
    if (!c->of_prompt) return MS_ENOMEM;
    int cap = 0;
    for (int p = 0; p < n_prompt; p++) {
        const char *v = value[p];
        c->of_prompt[p] = -1;
        if (!v[0]) continue;
        for (int k = 0; k < c->n; k++)
            if (!strcmp(c->names[k], v)) c->of_prompt[p] = k;
        if (c->of_prompt[p] >= 0) continue;
        if (c->n == cap) {
            cap = cap ? cap * 2 : 16;
            char **nn = realloc(c->names, sizeof *nn * (size_t)cap);
            if (!nn) return MS_ENOMEM;
            c->names = nn;
        }
        if (!(c->names[c->n] = strdup(v))) return MS_ENOMEM;
        c->of_prompt[p] = c->n++;
    }
    return 0;
}

/* ------------------------------------------------------------------ nPMI */

typedef struct { double v; int64_t nxy; int l, e, s; } NpKey;

static int cmp_np(const void *x, const void *y)
{
    const NpKey *a = x, *b = y;
    if (a->v != b->v) return a->v > b->v ? -1 : 1;
    if (a->nxy != b->nxy) return a->nxy > b->nxy ? -1 : 1;
    if (a->l != b->l) return a->l - b->l;
    return a->e - b->e;
}

int ms_npmi_result_build(const MsAnHead *h, const MsAnOptions *o, MsAnRole role, bool role_fallback,
                         const MsNpmiAcc *acc, const int *layers, int n_layers, MsNpmiClasses *cls,
                         MsNpmiResult **out, MsError *err)
{
    *out = NULL;
    int E = h->n_expert, K = cls->n;
    MsNpmiResult *r = calloc(1, sizeof *r);
    if (!r) return ms_error_set(err, MS_ENOMEM, "out of memory");
    r->head = *h;
    r->role = role;
    r->role_fallback = role_fallback;
    r->by = strdup(o->by ? o->by : "text");
    const char *lab;
    int bucket;
    if (!r->by || ms_npmi_parse_by(r->by, &r->kind, &lab, &bucket, err) < 0) {
        ms_npmi_result_free(r);
        return err && err->code ? err->code : ms_error_set(err, MS_ENOMEM, "out of memory");
    }
    r->min_support = o->min_support;
    r->max_classes = o->max_classes;
    /* the result takes the class names */
    r->classes = cls->names;
    r->n_classes = K;
    cls->names = NULL;
    cls->n = 0;
    int plan_cls = -1;
    if (o->plan_class) {
        for (int c = 0; c < K; c++)
            if (!strcmp(r->classes[c], o->plan_class)) plan_cls = c;
        if (plan_cls < 0) {
            ms_npmi_result_free(r);
            return ms_error_set(err, MS_ENOTFOUND, "--plan: class '%s' not found (by %s)", o->plan_class,
                                o->by ? o->by : "text");
        }
    }
    NpKey *keys = malloc(sizeof *keys * (size_t)n_layers * E + 1);
    size_t cap = 0;
    int rc = keys ? 0 : MS_ENOMEM;
    for (int c = 0; c < K && rc >= 0; c++) {
        int nkeys = 0;
        for (int s = 0; s < n_layers; s++) {
            int64_t N = ms_npmi_acc_N(acc, s), nx = ms_npmi_acc_nx(acc, s, c);
            for (int e = 0; e < E; e++) {
                int64_t nxy = ms_npmi_acc_nxy(acc, s, c, e), ny = ms_npmi_acc_ny(acc, s, e);
                double v = ms_npmi(nxy, nx, ny, N);
                if (isnan(v) || nxy < o->min_support) continue;
                keys[nkeys++] = (NpKey){v, nxy, layers[s], e, s};
            }
        }
        qsort(keys, (size_t)nkeys, sizeof *keys, cmp_np);
        if ((size_t)r->n_rows + (size_t)nkeys > cap) {
            size_t nc = MS_MAX(cap * 2, (size_t)r->n_rows + (size_t)nkeys);
            MsNpmiRow *nr = realloc(r->rows, sizeof *nr * (nc + 1));
            if (!nr) { rc = MS_ENOMEM; break; }
            r->rows = nr;
            cap = nc;
        }
        for (int i = 0; i < nkeys; i++) {
            int s = keys[i].s;
            r->rows[r->n_rows++] = (MsNpmiRow){keys[i].l, keys[i].e, c, keys[i].v, keys[i].nxy,
                                               ms_npmi_acc_nx(acc, s, c), ms_npmi_acc_ny(acc, s, keys[i].e),
                                               ms_npmi_acc_N(acc, s)};
        }
        if (c != plan_cls) continue;
        /* the plan: the top best experts of the class */
        int top = o->top > 0 ? o->top : 2;
        MsIntervention *iv = ms_intervention_new(h->n_layer, E);
        bool boost = o->beta > 0;
        r->plan_class = strdup(o->plan_class);
        r->beta = o->beta;
        r->plan_experts = malloc(sizeof *r->plan_experts * ((size_t)MS_MIN(nkeys, top) + 1));
        if (!r->plan_class || !r->plan_experts) { ms_intervention_free(iv); rc = MS_ENOMEM; break; }
        for (int i = 0; i < nkeys && i < top && iv; i++) {
            if (boost) ms_intervention_bias(iv, keys[i].l, keys[i].e, (float)log(o->beta));
            else ms_intervention_silence(iv, keys[i].l, keys[i].e);
            r->plan_experts[r->n_plan++] = (MsNpmiPick){keys[i].l, keys[i].e, keys[i].v};
        }
        r->plan = iv ? ms_intervention_to_string(iv) : NULL;
        ms_intervention_free(iv);
    }
    free(keys);
    if (rc < 0) {
        ms_npmi_result_free(r);
        return ms_error_set(err, rc, "out of memory");
    }
    *out = r;
    return 0;
}

/* ------------------------------------------------------- risk difference */

MsRdCounts *ms_rd_counts_new(int n_slot, int n_expert)
{
    MsRdCounts *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->n_slot = n_slot;
    c->n_expert = n_expert;
    c->a1 = calloc((size_t)n_slot * n_expert + 1, sizeof *c->a1);
    c->a2 = calloc((size_t)n_slot * n_expert + 1, sizeof *c->a2);
    if (!c->a1 || !c->a2) { ms_rd_counts_free(c); return NULL; }
    return c;
}

void ms_rd_counts_free(MsRdCounts *c)
{
    if (!c) return;
    free(c->a1);
    free(c->a2);
    free(c);
}

void ms_rd_counts_add(MsRdCounts *c, int set, const int32_t *ids, const int *n, int k)
{
    int64_t *a = set == 1 ? c->a1 : c->a2;
    if (set == 1) c->n1++;
    else c->n2++;
    for (int s = 0; s < c->n_slot; s++)
        for (int j = 0; j < n[s]; j++) a[(size_t)s * c->n_expert + ids[(size_t)s * k + j]]++;
}

int ms_riskdiff_result_build(const MsAnHead *h, const MsAnOptions *o, MsAnRole role, bool role_fallback,
                             const MsRdCounts *cn, const int *slot_layer, int lo, int hi, int k,
                             MsRiskDiffResult **out, MsError *err)
{
    *out = NULL;
    int64_t n1 = cn->n1, n2 = cn->n2;
    if (n1 == 0 || n2 == 0)
        return ms_error_set(err, MS_ENOTFOUND, "riskdiff: set %s has no tokens in scope (%s=%s: %lld, %s=%s: %lld)",
                            n1 == 0 ? "1" : "2", o->label, o->set1, (long long)n1, o->label, o->set2,
                            (long long)n2);
    int L = cn->n_slot, E = cn->n_expert;
    size_t LE = (size_t)L * E;
    MsRiskDiffResult *r = calloc(1, sizeof *r);
    double *rd = malloc(sizeof(double) * LE + 1);
    MsRdPick *pos_all = malloc(sizeof *pos_all * LE + 1), *neg = malloc(sizeof *neg * LE + 1);
    if (!r || !rd || !pos_all || !neg) goto oom;
    r->head = *h;
    r->role = role;
    r->role_fallback = role_fallback;
    r->label = strdup(o->label);
    r->set1 = strdup(o->set1);
    r->set2 = strdup(o->set2);
    r->n_activate = o->n_pos;
    r->n_deactivate = o->n_neg;
    r->reverse = o->reverse;
    r->n1 = n1;
    r->n2 = n2;
    r->rows = malloc(sizeof *r->rows * LE + 1);
    r->activate = malloc(sizeof *r->activate * ((size_t)o->n_pos + 1));
    r->deactivate = malloc(sizeof *r->deactivate * ((size_t)o->n_neg + 1));
    if (!r->label || !r->set1 || !r->set2 || !r->rows || !r->activate || !r->deactivate) goto oom;
    for (size_t i = 0; i < LE; i++) {
        rd[i] = ms_risk_diff(cn->a1[i], n1, cn->a2[i], n2);
        if ((int)(i / E) < lo || (int)(i / E) >= hi) rd[i] = NAN;
    }
    /* rows in |RD| order (stable): every positive and negative expert; the
     * per-layer cap must not hide rows, so rank with k = E */
    int got = 0, gn = 0;
    ms_rd_select(rd, L, E, E, L * E, L * E, false, pos_all, &got, neg, &gn);
    int ip = 0, in = 0;
    while (ip < got || in < gn) {
        MsRdPick x;
        if (in >= gn || (ip < got && fabs(pos_all[ip].rd) >= fabs(neg[in].rd))) x = pos_all[ip++];
        else x = neg[in++];
        size_t ix = (size_t)x.layer * E + x.expert;
        r->rows[r->n_rows++] = (MsRdRow){slot_layer[x.layer], x.expert, x.rd, cn->a1[ix], cn->a2[ix]};
    }
    /* steering selection (k per layer cap for activation) */
    ms_rd_select(rd, L, E, k, o->n_pos, o->n_neg, o->reverse, r->activate, &r->n_act, r->deactivate,
                 &r->n_deact);
    MsIntervention *iv = ms_intervention_new(h->n_layer, E);
    for (int i = 0; i < r->n_act; i++) {
        r->activate[i].layer = slot_layer[r->activate[i].layer];
        /* METHODS §6.3: logit := max + 0.01 (so the weight is just above the old top-1) */
        if (iv) ms_intervention_raise(iv, r->activate[i].layer, r->activate[i].expert, 0.01f);
    }
    for (int i = 0; i < r->n_deact; i++) {
        r->deactivate[i].layer = slot_layer[r->deactivate[i].layer];
        if (iv) ms_intervention_lower(iv, r->deactivate[i].layer, r->deactivate[i].expert, 0.01f);
    }
    if (iv && (r->n_act || r->n_deact)) r->plan = ms_intervention_to_string(iv);
    ms_intervention_free(iv);
    free(rd); free(pos_all); free(neg);
    *out = r;
    return 0;
oom:
    free(rd); free(pos_all); free(neg);
    ms_riskdiff_result_free(r);
    return ms_error_set(err, MS_ENOMEM, "out of memory");
}
