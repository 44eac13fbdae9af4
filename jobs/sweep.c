/* sweep.c — candidate intervention sets and random controls compared with
 * one baseline per prompt (jobs.h: MsSweepSet, ms_sweep_job_run). */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "job-internal.h"
#include "ms-rng.h"

void ms_sweep_set_init(MsSweepSet *s, const MsModel *m)
{
    memset(s, 0, sizeof *s);
    s->n_layer = ms_model_info(m)->n_layer;
    s->n_expert = ms_model_info(m)->n_expert;
}

void ms_sweep_set_clear(MsSweepSet *s)
{
    for (int i = 0; i < s->n; i++) {
        free(s->c[i].label);
        ms_intervention_free(s->c[i].iv);
    }
    free(s->c);
    memset(s, 0, sizeof *s);
}

/* Shape: how many experts the set silences in each layer. */
static void shape_of(const MsSweepSet *s, const MsIntervention *iv, int *hist)
{
    memset(hist, 0, sizeof(int) * (size_t)s->n_layer);
    for (int l = 0; l < s->n_layer; l++)
        for (int e = 0; e < s->n_expert; e++) {
            MsExpertOps ops;
            if (ms_intervention_get(iv, l, e, &ops) == 0 && ops.silence) hist[l]++;
        }
}

static int same_shape(const MsSweepSet *s, const MsIntervention *a, const MsIntervention *b)
{
    int ha[MS_TRACE_MAX_LAYER], hb[MS_TRACE_MAX_LAYER];
    shape_of(s, a, ha);
    shape_of(s, b, hb);
    return !memcmp(ha, hb, sizeof(int) * (size_t)s->n_layer);
}

/* Adds a silencing set of n (layer, expert) pairs; takes label. */
static int add_set(MsSweepSet *s, char *label, const int *layer, const int *expert, int n, bool control, MsError *err)
{
    MsIntervention *iv = label ? ms_intervention_new(s->n_layer, s->n_expert) : NULL;
    int rc = iv ? 0 : ms_error_set(err, MS_ENOMEM, "out of memory");
    for (int i = 0; !rc && i < n; i++)
        if ((rc = ms_intervention_silence(iv, layer[i], expert[i])) < 0)
            ms_error_set(err, rc, "%s: layer %d expert %d cannot be silenced", label, layer[i], expert[i]);
    if (!rc && s->n == s->cap) {
        int nc = s->cap ? 2 * s->cap : 32;
        MsSweepCand *nv = realloc(s->c, (size_t)nc * sizeof *nv);
        if (!nv) rc = ms_error_set(err, MS_ENOMEM, "out of memory");
        else s->c = nv, s->cap = nc;
    }
    if (rc) {
        free(label);
        ms_intervention_free(iv);
        return rc;
    }
    MsSweepCand *c = &s->c[s->n];
    *c = (MsSweepCand){ .label = label, .iv = iv, .n_experts = n, .control = control, .shape = -1 };
    for (int i = 0; i < s->n && c->shape < 0; i++)
        if (same_shape(s, s->c[i].iv, iv)) c->shape = s->c[i].shape;
    if (c->shape < 0) {
        int mx = -1;
        for (int i = 0; i < s->n; i++) mx = MS_MAX(mx, s->c[i].shape);
        c->shape = mx + 1;
    }
    s->n++;
    return 0;
}

static char *label_of(const int *layer, const int *expert, int n)
{
    size_t cap = 32 + (size_t)n * 16;
    char *b = malloc(cap);
    if (!b) return NULL;
    size_t o = (size_t)snprintf(b, cap, "silence");
    for (int i = 0; i < n && o < cap; i++) o += (size_t)snprintf(b + o, cap - o, " %d:%d", layer[i], expert[i]);
    return b;
}

int ms_sweep_add_silence_each(MsSweepSet *s, const MsModel *m, const int *layers, int n_layers, MsError *err)
{
    for (int i = 0; i < n_layers; i++) {
        int l = layers[i];
        if (l < 0 || l >= s->n_layer) return ms_error_set(err, MS_ERANGE, "layer %d: the model has %d", l, s->n_layer);
        if (!ms_model_layer_is_moe(m, l)) return ms_error_set(err, MS_EINVAL, "layer %d has no experts (dense block)", l);
        for (int e = 0; e < s->n_expert; e++) {
            int rc = add_set(s, label_of(&l, &e, 1), &l, &e, 1, false, err);
            if (rc) return rc;
        }
    }
    return 0;
}

int ms_sweep_parse_layers(const MsModel *m, const char *spec, int *out, int *n, MsError *err)
{
    const int n_layer = ms_model_info(m)->n_layer;
    *n = 0;
    if (!strcmp(spec, "*")) {
        for (int l = 0; l < n_layer && l < MS_TRACE_MAX_LAYER; l++)
            if (ms_model_layer_is_moe(m, l)) out[(*n)++] = l;
        return 0;
    }
    if (!*spec) return ms_error_set(err, MS_EINVAL, "the layer list is empty (give e.g. 1, 0,2, 1-3 or *)");
    for (const char *p = spec; *p;) {
        char *e;
        long a = strtol(p, &e, 10), b = a;
        if (e == p) return ms_error_set(err, MS_EINVAL, "'%s' is not a layer list (e.g. 1, 0,2, 1-3 or *)", spec);
        if (*e == '-') {
            const char *q = e + 1;
            b = strtol(q, &e, 10);
            if (e == q || b < a) return ms_error_set(err, MS_EINVAL, "bad range in '%s'", spec);
        }
        if (a < 0 || b >= n_layer)
            return ms_error_set(err, MS_ERANGE, "layer out of range 0..%d in '%s'", n_layer - 1, spec);
        for (long l = a; l <= b && *n < MS_TRACE_MAX_LAYER; l++) out[(*n)++] = (int)l;
        if (*e == ',') e++;
        else if (*e) return ms_error_set(err, MS_EINVAL, "'%s' is not a layer list (e.g. 1, 0,2, 1-3 or *)", spec);
        p = e;
    }
    return 0;
}

int ms_sweep_set_build(MsSweepSet *set, const MsModel *m, MsTraceDb *db, const MsSweepSpec *spec, MsError *err)
{
    ms_sweep_set_init(set, m);
    if (!spec->layers && !spec->from)
        return ms_error_set(err, MS_EINVAL, "a sweep needs candidates: a layer list or a stored analysis");
    int rc = spec->layers ? ms_sweep_add_silence_each(set, m, spec->layers, spec->n_layers, err) : 0;
    if (!rc && spec->from) {
        if (!db) return ms_error_set(err, MS_EINVAL, "candidates from '%s' are read from a database: none is open", spec->from);
        rc = ms_sweep_add_from_analysis(set, db, spec->run, spec->from, spec->top, err);
    }
    return rc ? rc : ms_sweep_add_controls(set, spec->controls, spec->seed, err);
}

/* ---- from an analysis table ---- */

typedef struct {
    int n, cap;
    int *layer, *expert;
    double *score;
    const char *cls;          /* npmi: only rows of this class */
    int64_t run;              /* registry run of the table */
} Picks;

static int pick_row(void *user, int nc, const char *const *names, const char *const *v)
{
    Picks *p = user;
    if (nc < 3 || !v[0] || !v[1] || !v[2]) return 0;
    if (p->cls && (nc < 4 || !v[3] || strcmp(v[3], p->cls))) return 0;
    if (p->n == p->cap) {
        int c = p->cap ? 2 * p->cap : 64;
        int *l = realloc(p->layer, (size_t)c * sizeof *l);
        if (l) p->layer = l;
        int *e = realloc(p->expert, (size_t)c * sizeof *e);
        if (e) p->expert = e;
        double *sc = realloc(p->score, (size_t)c * sizeof *sc);
        if (sc) p->score = sc;
        if (!l || !e || !sc) return 1;
        p->cap = c;
    }
    p->layer[p->n] = atoi(v[0]);
    p->expert[p->n] = atoi(v[1]);
    p->score[p->n++] = atof(v[2]);
    return 0;
}

static int registry_run(void *user, int nc, const char *const *names, const char *const *v)
{
    ((Picks *)user)->run = nc > 0 && v[0] ? atoll(v[0]) : 0;
    return 1;
}

bool ms_sweep_from_analysis_valid(const char *spec)
{
    return !strcmp(spec, "superexperts") || !strcmp(spec, "riskdiff") || (!strncmp(spec, "npmi:", 5) && spec[5]);
}

int ms_sweep_add_from_analysis(MsSweepSet *s, MsTraceDb *db, int64_t run, const char *spec, int top, MsError *err)
{
    const char *table, *sql;
    Picks p = { 0 };
    if (!strcmp(spec, "superexperts")) {
        table = "an_superexperts";
        sql = "SELECT layer, expert, value FROM an_superexperts ORDER BY rank";
    } else if (!strncmp(spec, "npmi:", 5) && spec[5]) {
        table = "an_npmi";
        p.cls = spec + 5;
        sql = "SELECT layer, expert, npmi, class FROM an_npmi ORDER BY npmi DESC, count DESC, layer, expert";
        top = top > 0 ? top : 8;
    } else if (!strcmp(spec, "riskdiff")) {
        table = "an_riskdiff";
        sql = "SELECT layer, expert, rd FROM an_riskdiff ORDER BY abs(rd) DESC, layer, expert";
        top = top > 0 ? top : 8;
    } else {
        return ms_error_set(err, MS_EINVAL, "--from-analysis: '%s' is not superexperts, npmi:CLASS or riskdiff", spec);
    }
    char q[256];
    snprintf(q, sizeof q, "SELECT run_id FROM analysis WHERE table_name = '%s'", table);
    p.run = -1;
    int rc = ms_trace_query(db, q, registry_run, &p, err);
    if (rc < 0) return rc;
    if (p.run < 0)
        return ms_error_set(err, MS_ENOTFOUND, "%s: no %s results: run `moescope analyze %.*s --db %s` first",
                            ms_trace_path(db), table, (int)strcspn(spec, ":"), spec, ms_trace_path(db));
    if (run > 0 && p.run != run)
        return ms_error_set(err, MS_EINVAL, "%s: %s holds run %lld, not run %lld: analyze that run first",
                            ms_trace_path(db), table, (long long)p.run, (long long)run);
    rc = ms_trace_query(db, sql, pick_row, &p, err);
    int n = top > 0 ? MS_MIN(top, p.n) : p.n;
    if (rc == 0 && n == 0)
        rc = ms_error_set(err, MS_ENOTFOUND, "%s: %s has no %s%s", ms_trace_path(db), table,
                          p.cls ? "rows of class " : "super experts", p.cls ? p.cls : "");
    for (int i = 0; rc == 0 && i < n; i++) rc = add_set(s, label_of(&p.layer[i], &p.expert[i], 1), &p.layer[i],
                                                          &p.expert[i], 1, false, err);
    if (rc == 0 && n > 1) rc = add_set(s, label_of(p.layer, p.expert, n), p.layer, p.expert, n, false, err);
    free(p.layer);
    free(p.expert);
    free(p.score);
    return rc;
}

typedef struct { char **v; int n, cap; bool oom; } Classes;

static int class_row(void *user, int nc, const char *const *names, const char *const *v)
{
    Classes *c = user;
    if (nc < 1 || !v[0]) return 0;
    if (c->n == c->cap) {
        int cap = c->cap ? 2 * c->cap : 16;
        char **p = realloc(c->v, (size_t)cap * sizeof *p);
        if (!p) return c->oom = true, 1;
        c->v = p;
        c->cap = cap;
    }
    if (!(c->v[c->n] = strdup(v[0]))) return c->oom = true, 1;
    c->n++;
    return 0;
}

int ms_sweep_npmi_classes(MsTraceDb *db, char ***out, int *n, MsError *err)
{
    *out = NULL;
    *n = 0;
    Picks p = { .run = -1 };
    int rc = ms_trace_query(db, "SELECT run_id FROM analysis WHERE table_name = 'an_npmi'", registry_run, &p, err);
    if (rc < 0 || p.run < 0) return rc < 0 ? rc : 0;
    Classes c = { 0 };
    rc = ms_trace_query(db, "SELECT class FROM an_npmi GROUP BY class ORDER BY class", class_row, &c, err);
    if (rc == 0 && c.oom) rc = ms_error_set(err, MS_ENOMEM, "out of memory");
    if (rc < 0) {
        for (int i = 0; i < c.n; i++) free(c.v[i]);
        free(c.v);
        return rc;
    }
    *out = c.v;
    *n = c.n;
    return 0;
}

/* ---- random controls ---- */

int ms_sweep_add_controls(MsSweepSet *s, int n, uint64_t seed, MsError *err)
{
    if (n <= 0) return 0;
    MsRng rng;
    ms_rng_seed(&rng, seed);
    int n_cand = s->n, rc = 0;
    bool *used = calloc((size_t)s->n_layer * (size_t)s->n_expert, 1);
    int *layer = malloc(sizeof(int) * (size_t)s->n_expert * (size_t)s->n_layer);
    int *expert = malloc(sizeof(int) * (size_t)s->n_expert * (size_t)s->n_layer);
    int *pool = malloc(sizeof(int) * (size_t)s->n_expert);
    int hist[MS_TRACE_MAX_LAYER];
    if (!used || !layer || !expert || !pool) rc = ms_error_set(err, MS_ENOMEM, "out of memory");
    for (int i = 0; !rc && i < n_cand; i++) {
        shape_of(s, s->c[i].iv, hist);
        for (int l = 0; l < s->n_layer; l++)
            for (int e = 0; e < s->n_expert && hist[l]; e++) {
                MsExpertOps ops;
                if (ms_intervention_get(s->c[i].iv, l, e, &ops) == 0 && ops.silence) used[l * s->n_expert + e] = true;
            }
    }
    for (int i = 0; !rc && i < n_cand; i++) {
        bool first = true;   /* one template per shape */
        for (int j = 0; j < i && first; j++) first = s->c[j].shape != s->c[i].shape;
        if (!first) continue;
        shape_of(s, s->c[i].iv, hist);
        for (int k = 0; !rc && k < n; k++) {
            int m = 0;
            for (int l = 0; l < s->n_layer; l++) {
                if (!hist[l]) continue;
                /* experts that are not candidates, unless too few remain */
                int np = 0;
                for (int e = 0; e < s->n_expert; e++)
                    if (!used[l * s->n_expert + e]) pool[np++] = e;
                if (np < hist[l])
                    for (np = 0; np < s->n_expert; np++) pool[np] = np;
                for (int d = 0; d < hist[l]; d++) {   /* partial Fisher–Yates: distinct draws */
                    int r = d + (int)(ms_rng_uniform01(&rng) * (np - d));
                    int t = pool[d];
                    pool[d] = pool[r];
                    pool[r] = t;
                    layer[m] = l;
                    expert[m++] = pool[d];
                }
            }
            char *label = label_of(layer, expert, m);
            char *full = label ? malloc(strlen(label) + 32) : NULL;
            if (full) sprintf(full, "control %d: %s", k + 1, label);
            free(label);
            rc = add_set(s, full, layer, expert, m, true, err);
        }
    }
    free(used);
    free(layer);
    free(expert);
    free(pool);
    return rc;
}

/* ---- running ---- */

void ms_sweep_job_init(MsSweepJob *j)
{
    memset(j, 0, sizeof *j);
    j->prompts_name = "";
    j->n_batch = 256;
}

void ms_sweep_result_clear(MsSweepResult *r)
{
    if (!r) return;
    for (int i = 0; i < r->n_rows; i++) free((char *)r->rows[i].interventions);
    free(r->rows);
    memset(r, 0, sizeof *r);
}

typedef struct {
    double kl, nll_b, nll_r, changed, jac;
    double kl_max;
    int64_t pos, agree, scored, lay_pos;
} Acc;

static void accumulate(Acc *a, const MsExpCore *x)
{
    const MsComparePrompt *s = &x->sum;
    a->kl += s->kl_mean * s->n_tokens;
    a->kl_max = MS_MAX(a->kl_max, s->kl_max);
    a->pos += s->n_tokens;
    a->agree += s->top1_agree;
    a->nll_b += s->nll_baseline;
    a->nll_r += s->nll_run;
    a->scored += s->n_scored;
    for (int l = 0; l < x->n_lay; l++) {
        a->changed += x->lay[l].n_changed;
        a->jac += x->lay[l].jaccard_sum;
        a->lay_pos += x->lay[l].n_pos;
    }
}

static void finish_z_rank(const MsSweepSet *set, MsSweepRow *rows);

/* The measures of set i from its sums (z-scores and rank: finish_z_rank) */
static void finish_row(const MsSweepSet *set, const Acc *acc, MsSweepRow *rows, int i)
{
    {
        const Acc *a = &acc[i];
        MsSweepRow *r = &rows[i];
        r->cand = i;
        r->kind = set->c[i].control ? "control" : "candidate";
        r->label = set->c[i].label;
        r->n_experts = set->c[i].n_experts;
        r->n_positions = a->pos;
        r->kl_mean = a->pos ? a->kl / (double)a->pos : NAN;
        r->kl_max = a->kl_max;
        r->top1_agreement = a->pos ? (double)a->agree / (double)a->pos : NAN;
        r->ppl_baseline = a->scored ? exp(a->nll_b / (double)a->scored) : NAN;
        r->ppl_run = a->scored ? exp(a->nll_r / (double)a->scored) : NAN;
        r->dppl = r->ppl_run - r->ppl_baseline;
        r->changed_share = a->lay_pos ? a->changed / (double)a->lay_pos : NAN;
        r->jaccard_mean = a->lay_pos ? a->jac / (double)a->lay_pos : NAN;
        r->z_kl = r->z_dppl = NAN;
        r->rank = 0;
    }
}

static void finish_rows(const MsSweepSet *set, const Acc *acc, MsSweepRow *rows)
{
    for (int i = 0; i < set->n; i++) finish_row(set, acc, rows, i);
    finish_z_rank(set, rows);
}

static void finish_z_rank(const MsSweepSet *set, MsSweepRow *rows)
{
    /* z against the controls of the same shape (sample standard deviation) */
    for (int i = 0; i < set->n; i++) {
        if (set->c[i].control) continue;
        double s1 = 0, s2 = 0, d1 = 0, d2 = 0;
        int nc = 0;
        for (int k = 0; k < set->n; k++) {
            if (!set->c[k].control || set->c[k].shape != set->c[i].shape) continue;
            s1 += rows[k].kl_mean, s2 += rows[k].kl_mean * rows[k].kl_mean;
            d1 += rows[k].dppl, d2 += rows[k].dppl * rows[k].dppl;
            nc++;
        }
        if (nc < 2) continue;
        double mk = s1 / nc, sk = sqrt(MS_MAX(0.0, (s2 - nc * mk * mk) / (nc - 1)));
        double md = d1 / nc, sd = sqrt(MS_MAX(0.0, (d2 - nc * md * md) / (nc - 1)));
        rows[i].z_kl = sk > 0 ? (rows[i].kl_mean - mk) / sk : NAN;
        rows[i].z_dppl = sd > 0 ? (rows[i].dppl - md) / sd : NAN;
    }
    /* ranks by mean KL among candidates */
    for (int i = 0; i < set->n; i++) {
        if (set->c[i].control) continue;
        int rank = 1;
        for (int k = 0; k < set->n; k++)
            if (!set->c[k].control && (rows[k].kl_mean > rows[i].kl_mean || (rows[k].kl_mean == rows[i].kl_mean && k < i)))
                rank++;
        rows[i].rank = rank;
    }
}

/* The sweep's settings; a sharded sweep also names its sets (their count
 * and a hash of their labels and intervention texts) and the shard count,
 * so that only workers of the same sweep join it. */
static char *sweep_settings(const MsSweepJob *j, size_t n_prompts, const MsSweepSet *set)
{
    json_t *js = json_pack("{s:s, s:i, s:i, s:f, s:I}", "prompts", j->prompts_name ? j->prompts_name : "",
                           "n_prompts", (int)n_prompts, "gen", j->n_gen, "temp", (double)j->temp, "seed",
                           (json_int_t)j->seed);
    if (js && j->shard_n > 1) {
        MsSha256 h;
        ms_sha256_init(&h);
        for (int i = 0; i < set->n; i++) {
            char *iv = ms_intervention_to_string(set->c[i].iv);
            ms_sha256_update(&h, set->c[i].label, strlen(set->c[i].label) + 1);
            if (iv) ms_sha256_update(&h, iv, strlen(iv) + 1);
            free(iv);
        }
        char hex[65];
        ms_sha256_final(&h, hex);
        json_object_set_new(js, "n_sets", json_integer(set->n));
        json_object_set_new(js, "sets_sha256", json_string(hex));
        json_object_set_new(js, "shards", json_integer(j->shard_n));
    }
    char *settings = js ? json_dumps(js, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(js);
    return settings;
}

static int64_t sweep_model(const MsModel *m, const char *model_path, MsTraceDb *db, MsError *err)
{
    MsTraceModel tm;
    int rc = ms_trace_model_from_engine(&tm, m, model_path, err);
    if (rc < 0) return rc;
    return ms_trace_model_add(db, &tm, err);
}

static int store(const MsSweepJob *j, const MsModel *m, const char *model_path, size_t n_prompts,
                 const MsSweepSet *set, MsTraceDb *db, MsSweepResult *res, MsError *err)
{
    int64_t model_id = sweep_model(m, model_path, db, err);
    if (model_id < 0) return (int)model_id;
    char *settings = sweep_settings(j, n_prompts, set);
    if (!settings) return ms_error_set(err, MS_ENOMEM, "out of memory");
    res->sweep_id = ms_trace_sweep_new(db, model_id, 0, settings, err);
    free(settings);
    if (res->sweep_id < 0) return (int)res->sweep_id;
    return ms_trace_sweep_put(db, res->sweep_id, res->rows, res->n_rows, err);
}

typedef struct {
    const MsSweepSet *set;
    MsSweepResult *res;
} Finish;

/* the last shard: z-scores and ranks over every set's stored row; the
 * result then shows every set */
static void finish_shard(void *user, MsSweepRow *rows, int n)
{
    Finish *f = user;
    finish_z_rank(f->set, rows);
    for (int i = 0; i < n; i++) {
        MsSweepRow *r = &f->res->rows[i];
        char *iv = (char *)r->interventions;
        const char *kind = r->kind, *label = r->label;
        *r = rows[i];
        r->kind = kind;
        r->label = label;
        r->interventions = iv;
    }
}

int ms_sweep_job_run(const MsSweepJob *j, const MsModel *m, const char *model_path, const MsPrompt *prompts,
                     size_t n_prompts, const MsSweepSet *set, MsTraceDb *db, MsSweepResult *res, MsError *err)
{
    memset(res, 0, sizeof *res);
    if (set->n == 0) return ms_error_set(err, MS_EINVAL, "sweep: no intervention sets");
    const char *pname = j->prompts_name ? j->prompts_name : "";
    const MsModelInfo *in = ms_model_info(m);
    for (int i = 0; i < set->n; i++) {
        int rc = ms_intervention_validate(set->c[i].iv, in->n_layer, in->n_expert, in->n_expert_used, err);
        if (rc < 0) return ms_error_prefix(err, "%s: ", set->c[i].label);
    }
    int32_t **toks = NULL;
    int *ntok = NULL, max_tok = 1;
    int rc = ms_job_tokenize(ms_model_tokenizer(m), prompts, n_prompts, pname, &toks, &ntok, &max_tok, err);
    if (rc < 0) return rc;
    if ((rc = ms_job_check_context(m, prompts, ntok, n_prompts, j->n_gen, pname, err)) < 0) {
        ms_job_tokens_free(toks, ntok, n_prompts);
        return rc;
    }
    Acc *acc = calloc((size_t)set->n, sizeof *acc);
    bool *mine = calloc((size_t)set->n, sizeof *mine);
    res->rows = calloc((size_t)set->n, sizeof *res->rows);
    res->n_rows = set->n;
    MsExpCore x;
    memset(&x, 0, sizeof x);
    if (!acc || !mine || !res->rows) rc = ms_error_set(err, MS_ENOMEM, "out of memory");
    /* a shard: join the stored sweep first, and leave out the sets it holds */
    bool sharded = j->shard_n > 1;
    int64_t model_id = 0;
    int n_mine = 0;
    if (!rc && sharded && !db) rc = ms_error_set(err, MS_EINVAL, "sweep: --shard needs a database");
    if (!rc && sharded && (model_id = sweep_model(m, model_path, db, err)) < 0) rc = (int)model_id;
    if (!rc && sharded) {
        char *settings = sweep_settings(j, n_prompts, set);
        res->sweep_id = settings ? ms_trace_sweep_join(db, model_id, settings, set->n, err)
                                 : ms_error_set(err, MS_ENOMEM, "out of memory");
        free(settings);
        if (res->sweep_id < 0) rc = (int)res->sweep_id;
    }
    for (int c = 0; !rc && c < set->n; c++) mine[c] = !sharded || c % j->shard_n == j->shard_i - 1;
    if (!rc && sharded) {
        int *have = NULL, n_have = 0;
        rc = ms_trace_sweep_cands(db, res->sweep_id, &have, &n_have, err);
        for (int k = 0; !rc && k < n_have; k++)
            if (have[k] >= 0 && have[k] < set->n && mine[have[k]]) {
                mine[have[k]] = false;
                res->n_skipped++;
            }
        free(have);
    }
    for (int c = 0; c < set->n; c++) n_mine += mine ? mine[c] : 0;
    if (!rc) rc = ms_exp_core_init(&x, m, max_tok, j->n_batch > 0 ? j->n_batch : 256, j->n_threads, j->n_gen, false,
                                   j->temp, j->seed, j->cancel, err);
    MsJobClock clock;
    ms_job_clock_start(&clock, j->progress, j->progress_user, "sweep", (int64_t)n_prompts * n_mine, 0);
    x.r.clock = &clock;
    int64_t done = 0;
    for (size_t i = 0; !rc && n_mine > 0 && i < n_prompts; i++) {
        rc = ms_exp_core_baseline(&x, toks[i], ntok[i], i, NULL, err);
        for (int c = 0; !rc && c < set->n; c++) {
            if (!mine[c]) continue;
            if ((rc = ms_exp_core_intervened(&x, set->c[c].iv, i, NULL, err)) == 0) accumulate(&acc[c], &x);
            ms_job_clock_report(&clock, ++done);
        }
        if (rc < 0 && rc != MS_ECANCELLED) ms_error_prefix(err, "%s:%d: ", pname, prompts[i].line);
    }
    if (!rc) {
        if (sharded) for (int c = 0; c < set->n; c++) finish_row(set, acc, res->rows, c);
        else finish_rows(set, acc, res->rows);
        for (int i = 0; i < set->n && !rc; i++)
            if (!(res->rows[i].interventions = ms_intervention_to_string(set->c[i].iv)))
                rc = ms_error_set(err, MS_ENOMEM, "out of memory");
    }
    if (!rc && db && !sharded) {
        rc = store(j, m, model_path, n_prompts, set, db, res, err);
        res->complete = rc == 0;
        res->n_written = set->n;
    }
    if (!rc && sharded) {
        /* this worker's rows (in set order), then every row if it was the last */
        MsSweepRow *own = malloc((size_t)MS_MAX(n_mine, 1) * sizeof *own);
        int k = 0;
        for (int c = 0; own && c < set->n; c++)
            if (mine[c]) own[k++] = res->rows[c];
        Finish f = { set, res };
        rc = own ? ms_trace_sweep_put_shard(db, res->sweep_id, own, k, set->n, finish_shard, &f, &res->complete, err)
                 : ms_error_set(err, MS_ENOMEM, "out of memory");
        free(own);
        res->n_written = k;
        if (!rc && !res->complete) {   /* show this worker's sets only */
            int w = 0;
            for (int c = 0; c < set->n; c++) {
                if (mine[c]) {
                    MsSweepRow t = res->rows[w];
                    res->rows[w] = res->rows[c];
                    res->rows[c] = t;
                    w++;
                }
            }
            for (int c = w; c < set->n; c++) {
                free((char *)res->rows[c].interventions);
                res->rows[c].interventions = NULL;
            }
            res->n_rows = w;
        }
    }
    res->wall_s = ms_job_now() - clock.t0;
    free(acc);
    free(mine);
    ms_exp_core_clear(&x);
    ms_job_tokens_free(toks, ntok, n_prompts);
    if (rc < 0) ms_sweep_result_clear(res);
    return rc < 0 ? rc : 0;
}
