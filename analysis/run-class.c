/* run-class.c — token-class modules: nPMI (METHODS §5) with RICE-style
 * steering plans, and SteerMoE risk difference (§6). */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "run-internal.h"

/* Token-text class of a piece (workbench-defined, documented in
 * docs/analysis.md): whitespace, digit, punct, word, other, empty. */
static const char *const text_classes[] = {"empty", "whitespace", "digit", "punct", "word", "other"};

static int text_class(const char *s, size_t n)
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

/* Effective role: METHODS default for the module, but a run without any
 * generated token falls back to all tokens (said in the params). */
static int resolve_role(MsTraceDb *db, const AnRun *r, const MsAnOptions *o, json_t *params,
                        const char **role, MsError *err)
{
    if (o->role) {
        *role = o->role;
        if (strcmp(*role, "all") && strcmp(*role, "prompt") && strcmp(*role, "generated"))
            return ms_error_set(err, MS_EINVAL, "--role must be all, prompt or generated (got '%s')", *role);
        json_object_set_new(params, "role", json_string(*role));
        return 0;
    }
    int g = an_run_has_generated(db, r, err);
    if (g < 0) return g;
    *role = g ? "generated" : "all";
    json_object_set_new(params, "role", json_string(g ? "generated" : "all (run has no generated tokens)"));
    return 0;
}

typedef struct { double v; int64_t nxy; int l, e; } NpKey;

static int cmp_np(const void *x, const void *y)
{
    const NpKey *a = x, *b = y;
    if (a->v != b->v) return a->v > b->v ? -1 : 1;
    if (a->nxy != b->nxy) return a->nxy > b->nxy ? -1 : 1;
    if (a->l != b->l) return a->l - b->l;
    return a->e - b->e;
}

typedef struct { int32_t id; int64_t n; } TokCount;

static int cmp_tc(const void *x, const void *y)
{
    const TokCount *a = x, *b = y;
    if (a->n != b->n) return a->n > b->n ? -1 : 1;
    return (a->id > b->id) - (a->id < b->id);
}

int an_npmi(MsTraceDb *db, AnRun *r, const MsAnOptions *o, MsAnResult *out, json_t *params,
            MsError *err)
{
    int lo, hi, rc = an_slot_range(r, o->layer, &lo, &hi, err);
    if (rc < 0) return rc;
    const char *role;
    if ((rc = resolve_role(db, r, o, params, &role, err)) < 0) return rc;
    const char *by = o->by ? o->by : "text";
    json_object_set_new(params, "by", json_string(by));
    json_object_set_new(params, "min_support", json_integer(o->min_support));
    json_object_set_new(params, "events", json_string("token positions of each layer"));
    int kind;   /* 0 text, 1 token, 2 label, 3 pos */
    const char *label = NULL;
    int bucket = 64;
    if (!strcmp(by, "text")) kind = 0;
    else if (!strcmp(by, "token")) kind = 1;
    else if (!strncmp(by, "label:", 6) && by[6]) { kind = 2; label = by + 6; }
    else if (!strncmp(by, "pos", 3) && (by[3] == 0 || by[3] == ':')) {
        kind = 3;
        if (by[3] == ':') bucket = atoi(by + 4);
        if (bucket < 1) return ms_error_set(err, MS_EINVAL, "--by pos:B needs B >= 1");
    } else {
        return ms_error_set(err, MS_EINVAL, "--by must be text, token, label:NAME or pos[:B] (got '%s')", by);
    }
    /* class names */
    int K = 0, cap = 0;
    char **names = NULL;
    int32_t *tok_class = NULL;     /* token id → class, for --by token */
    int32_t max_tok = -1;
    int *prompt_class = NULL;      /* prompt → class, for --by label */
    enum { POS_BUCKETS = 64 };
    if (kind == 0) {
        K = (int)MS_ARRAY_LEN(text_classes);
        names = calloc((size_t)K, sizeof *names);
        for (int i = 0; names && i < K; i++) names[i] = strdup(text_classes[i]);
    } else if (kind == 3) {
        K = POS_BUCKETS;
        names = calloc((size_t)K, sizeof *names);
        for (int i = 0; names && i < K; i++) {
            char b[64];
            if (i + 1 < K) snprintf(b, sizeof b, "pos:%d-%d", i * bucket, (i + 1) * bucket - 1);
            else snprintf(b, sizeof b, "pos:%d+", i * bucket);
            names[i] = strdup(b);
        }
    } else if (kind == 2) {
        prompt_class = malloc(sizeof(int) * ((size_t)r->n_prompt + 1));
        if (!prompt_class) return ms_error_set(err, MS_ENOMEM, "out of memory");
        for (int p = 0; p < r->n_prompt; p++) {
            char v[256];
            an_label(r, p, label, v, sizeof v);
            prompt_class[p] = -1;
            if (!v[0]) continue;
            for (int c = 0; c < K; c++)
                if (!strcmp(names[c], v)) prompt_class[p] = c;
            if (prompt_class[p] >= 0) continue;
            if (K == cap) {
                cap = cap ? cap * 2 : 16;
                char **nn = realloc(names, sizeof *nn * (size_t)cap);
                if (!nn) { rc = ms_error_set(err, MS_ENOMEM, "out of memory"); goto done; }
                names = nn;
            }
            names[K] = strdup(v);
            prompt_class[p] = K++;
        }
        if (K == 0) {
            rc = ms_error_set(err, MS_ENOTFOUND, "run %lld: no prompt has label '%s'", (long long)r->run_id, label);
            goto done;
        }
    } else {
        /* token ids: the max_classes most frequent ids in scope (first pass) */
        MsTraceCursor *tc = ms_trace_tokens(db, r->run_id, 0, err);
        if (!tc) return err ? err->code : MS_EDB;
        MsTraceToken tk;
        int64_t *cnt = NULL;
        int32_t ccap = 0;
        while ((rc = ms_trace_tokens_next(tc, &tk, err)) == 1) {
            if (tk.token_id < 0) continue;
            AnTok probe = {.has_token = true, .is_generated = tk.is_generated};
            if (!an_role_ok(role, &probe)) continue;
            if (tk.token_id >= ccap) {
                int32_t nc = MS_MAX(tk.token_id + 1, ccap * 2);
                int64_t *c2 = realloc(cnt, sizeof *c2 * (size_t)nc);
                if (!c2) { rc = ms_error_set(err, MS_ENOMEM, "out of memory"); break; }
                memset(c2 + ccap, 0, sizeof *c2 * (size_t)(nc - ccap));
                cnt = c2;
                ccap = nc;
            }
            cnt[tk.token_id]++;
            if (tk.token_id > max_tok) max_tok = tk.token_id;
        }
        ms_trace_cursor_free(tc);
        if (rc < 0) { free(cnt); goto done; }
        TokCount *tcs = malloc(sizeof *tcs * ((size_t)ccap + 1));
        tok_class = malloc(sizeof *tok_class * ((size_t)ccap + 1));
        if (!tcs || !tok_class) { free(cnt); free(tcs); rc = ms_error_set(err, MS_ENOMEM, "out of memory"); goto done; }
        int nt = 0;
        for (int32_t i = 0; i < ccap; i++) {
            tok_class[i] = -1;
            if (cnt[i] > 0) tcs[nt++] = (TokCount){i, cnt[i]};
        }
        qsort(tcs, (size_t)nt, sizeof *tcs, cmp_tc);
        K = MS_MIN(nt, o->max_classes > 0 ? o->max_classes : 512);
        names = calloc((size_t)K + 1, sizeof *names);
        for (int c = 0; names && c < K; c++) {
            char b[32];
            snprintf(b, sizeof b, "%d", tcs[c].id);
            names[c] = strdup(b);
            tok_class[tcs[c].id] = c;
        }
        free(cnt);
        free(tcs);
        json_object_set_new(params, "max_classes", json_integer(o->max_classes));
    }
    if (!names) { rc = ms_error_set(err, MS_ENOMEM, "out of memory"); goto done; }
    int ns = hi - lo;
    MsNpmiAcc *acc = ms_npmi_acc_new(ns, r->E, K);
    if (!acc) { rc = ms_error_set(err, MS_ENOMEM, "out of memory"); goto done; }
    bool need_tok = kind == 0 || kind == 1 || strcmp(role, "all") != 0;
    AnStream *st = an_stream_new(db, r, need_tok, 0, err);
    if (!st) { rc = err ? err->code : MS_EDB; ms_npmi_acc_free(acc); goto done; }
    AnTok t;
    while ((rc = an_stream_next(st, &t, err)) == 1) {
        if (!an_role_ok(role, &t)) continue;
        int cls = -1;
        if (kind == 0) cls = t.has_token ? text_class(t.piece, t.piece_len) : -1;
        else if (kind == 1) cls = t.has_token && t.token_id >= 0 && t.token_id <= max_tok ? tok_class[t.token_id] : -1;
        else if (kind == 2) cls = t.prompt_index >= 0 ? prompt_class[t.prompt_index] : -1;
        else cls = MS_MIN(t.pos / bucket, POS_BUCKETS - 1);
        /* positions without a class still count in N (they are events) */
        for (int s = lo; s < hi && rc >= 0; s++)
            rc = ms_npmi_acc_add(acc, s - lo, &cls, cls >= 0 ? 1 : 0, t.ids + (size_t)s * r->k, t.n[s]);
        if (rc < 0) break;
    }
    an_stream_free(st);
    if (rc < 0) { ms_npmi_acc_free(acc); goto done; }

    json_t *rows = json_array();
    int plan_cls = -1;
    if (o->plan_class) {
        for (int c = 0; c < K; c++)
            if (!strcmp(names[c], o->plan_class)) plan_cls = c;
        if (plan_cls < 0) {
            rc = ms_error_set(err, MS_ENOTFOUND, "--plan: class '%s' not found (by %s)", o->plan_class, by);
            json_decref(rows);
            ms_npmi_acc_free(acc);
            goto done;
        }
    }
    NpKey *keys = malloc(sizeof *keys * (size_t)ns * r->E + 1);
    int nkeys = 0;
    for (int c = 0; c < K && keys; c++) {
        nkeys = 0;
        for (int s = 0; s < ns; s++) {
            int64_t N = ms_npmi_acc_N(acc, s), nx = ms_npmi_acc_nx(acc, s, c);
            for (int e = 0; e < r->E; e++) {
                int64_t nxy = ms_npmi_acc_nxy(acc, s, c, e), ny = ms_npmi_acc_ny(acc, s, e);
                double v = ms_npmi(nxy, nx, ny, N);
                if (isnan(v) || nxy < o->min_support) continue;
                keys[nkeys++] = (NpKey){v, nxy, r->slot_layer[lo + s], e};
            }
        }
        qsort(keys, (size_t)nkeys, sizeof *keys, cmp_np);
        for (int i = 0; i < nkeys; i++) {
            int s = r->layer_slot[keys[i].l] - lo;
            json_t *row = json_object();
            json_object_set_new(row, "layer", json_integer(keys[i].l));
            json_object_set_new(row, "expert", json_integer(keys[i].e));
            json_object_set_new(row, "class", json_string(names[c]));
            json_object_set_new(row, "npmi", json_real(keys[i].v));
            json_object_set_new(row, "count", json_integer(keys[i].nxy));
            json_object_set_new(row, "n_x", json_integer(ms_npmi_acc_nx(acc, s, c)));
            json_object_set_new(row, "n_y", json_integer(ms_npmi_acc_ny(acc, s, keys[i].e)));
            json_object_set_new(row, "N", json_integer(ms_npmi_acc_N(acc, s)));
            json_array_append_new(rows, row);
        }
        if (c == plan_cls) {
            int top = o->top > 0 ? o->top : 2;
            MsIntervention *iv = ms_intervention_new(r->n_layer, r->E);
            json_t *jp = json_array();
            bool boost = o->beta > 0;
            for (int i = 0; i < nkeys && i < top && iv; i++) {
                if (boost) ms_intervention_bias(iv, keys[i].l, keys[i].e, (float)log(o->beta));
                else ms_intervention_silence(iv, keys[i].l, keys[i].e);
                json_array_append_new(jp, json_pack("{s:i,s:i,s:f}", "layer", keys[i].l, "expert", keys[i].e,
                                                    "npmi", keys[i].v));
            }
            out->plan = iv ? ms_intervention_to_string(iv) : NULL;
            ms_intervention_free(iv);
            json_object_set_new(params, "plan_class", json_string(o->plan_class));
            json_object_set_new(params, "plan_operator",
                                json_string(boost ? "SCALE pre_topk (softmax: logit + ln beta)" : "MASK (silence)"));
            if (boost) json_object_set_new(params, "beta", json_real(o->beta));
            json_t *doc_plan = json_object();
            json_object_set_new(doc_plan, "class", json_string(o->plan_class));
            json_object_set_new(doc_plan, "experts", jp);
            json_object_set_new(doc_plan, "interventions", out->plan ? json_string(out->plan) : json_null());
            if (!out->doc) out->doc = json_object();
            json_object_set_new(out->doc, "plan", doc_plan);
        }
    }
    if (!keys) rc = ms_error_set(err, MS_ENOMEM, "out of memory");
    free(keys);
    ms_npmi_acc_free(acc);
    if (!out->doc) out->doc = json_object();
    json_object_set(out->doc, "rows", rows);
    out->rows = rows;
    if (rc >= 0 && out->plan)
        rc = an_store_plan(db, r, "npmi", params, out->plan, o->plan_out, o->write, err);
done:
    for (int c = 0; names && c < K; c++) free(names[c]);
    free(names);
    free(tok_class);
    free(prompt_class);
    return rc < 0 ? rc : 0;
}

/* -------------------------------------------------------------- riskdiff */

int an_riskdiff(MsTraceDb *db, AnRun *r, const MsAnOptions *o, MsAnResult *out, json_t *params,
                MsError *err)
{
    if (!o->label || !o->set1 || !o->set2)
        return ms_error_set(err, MS_EINVAL, "riskdiff needs --label NAME --set1 VALUE --set2 VALUE");
    int lo, hi, rc = an_slot_range(r, o->layer, &lo, &hi, err);
    if (rc < 0) return rc;
    const char *role;
    if ((rc = resolve_role(db, r, o, params, &role, err)) < 0) return rc;
    json_object_set_new(params, "label", json_string(o->label));
    json_object_set_new(params, "set1", json_string(o->set1));
    json_object_set_new(params, "set2", json_string(o->set2));
    json_object_set_new(params, "selection", json_string("logged ids"));
    int P = r->n_prompt, E = r->E, L = r->n_slot;
    int *set = malloc(sizeof(int) * ((size_t)P + 1));
    int64_t *a1 = calloc((size_t)L * E, sizeof(int64_t)), *a2 = calloc((size_t)L * E, sizeof(int64_t));
    int64_t n1 = 0, n2 = 0;
    double *rd = malloc(sizeof(double) * (size_t)L * E);
    if (!set || !a1 || !a2 || !rd) { rc = ms_error_set(err, MS_ENOMEM, "out of memory"); goto done; }
    for (int p = 0; p < P; p++) {
        char v[256];
        an_label(r, p, o->label, v, sizeof v);
        set[p] = !strcmp(v, o->set1) ? 1 : !strcmp(v, o->set2) ? 2 : 0;
    }
    AnStream *st = an_stream_new(db, r, strcmp(role, "all") != 0, 0, err);
    if (!st) { rc = err ? err->code : MS_EDB; goto done; }
    AnTok t;
    while ((rc = an_stream_next(st, &t, err)) == 1) {
        if (t.prompt_index < 0 || !set[t.prompt_index] || !an_role_ok(role, &t)) continue;
        int64_t *a = set[t.prompt_index] == 1 ? a1 : a2;
        if (set[t.prompt_index] == 1) n1++;
        else n2++;
        for (int s = 0; s < L; s++)
            for (int j = 0; j < t.n[s]; j++) a[(size_t)s * E + t.ids[(size_t)s * r->k + j]]++;
    }
    an_stream_free(st);
    if (rc < 0) goto done;
    if (n1 == 0 || n2 == 0) {
        rc = ms_error_set(err, MS_ENOTFOUND, "riskdiff: set %s has no tokens in scope (%s=%s: %lld, %s=%s: %lld)",
                          n1 == 0 ? "1" : "2", o->label, o->set1, (long long)n1, o->label, o->set2, (long long)n2);
        goto done;
    }
    for (size_t i = 0; i < (size_t)L * E; i++) {
        rd[i] = ms_risk_diff(a1[i], n1, a2[i], n2);
        if (r->layer_slot[r->slot_layer[i / E]] < lo || r->layer_slot[r->slot_layer[i / E]] >= hi) rd[i] = NAN;
    }
    /* rows in |RD| order (stable) */
    MsRdPick *order = malloc(sizeof *order * (size_t)L * E), *neg = NULL;
    int got = 0, gn = 0;
    if (!order) { rc = ms_error_set(err, MS_ENOMEM, "out of memory"); goto done; }
    /* full ranking: every positive and negative expert */
    MsRdPick *pos_all = malloc(sizeof *pos_all * (size_t)L * E);
    neg = malloc(sizeof *neg * (size_t)L * E);
    if (!pos_all || !neg) { free(order); free(pos_all); free(neg); rc = ms_error_set(err, MS_ENOMEM, "out of memory"); goto done; }
    /* the per-layer cap must not hide rows, so rank with k = E */
    ms_rd_select(rd, L, E, E, L * E, L * E, false, pos_all, &got, neg, &gn);
    int ip = 0, in = 0;
    json_t *rows = json_array();
    while (ip < got || in < gn) {
        MsRdPick x;
        if (in >= gn || (ip < got && fabs(pos_all[ip].rd) >= fabs(neg[in].rd))) x = pos_all[ip++];
        else x = neg[in++];
        size_t ix = (size_t)x.layer * E + x.expert;
        json_t *row = json_object();
        json_object_set_new(row, "layer", json_integer(r->slot_layer[x.layer]));
        json_object_set_new(row, "expert", json_integer(x.expert));
        json_object_set_new(row, "rd", json_real(x.rd));
        json_object_set_new(row, "a1", json_integer(a1[ix]));
        json_object_set_new(row, "n1", json_integer(n1));
        json_object_set_new(row, "a2", json_integer(a2[ix]));
        json_object_set_new(row, "n2", json_integer(n2));
        json_array_append_new(rows, row);
    }
    /* steering selection (k per layer cap for activation) */
    MsRdPick *sp = malloc(sizeof *sp * ((size_t)o->n_pos + 1)), *sn = malloc(sizeof *sn * ((size_t)o->n_neg + 1));
    int gp2 = 0, gn2 = 0;
    json_t *jsel = json_object(), *ja = json_array(), *jd = json_array();
    if (sp && sn) ms_rd_select(rd, L, E, r->k, o->n_pos, o->n_neg, o->reverse, sp, &gp2, sn, &gn2);
    MsIntervention *iv = ms_intervention_new(r->n_layer, E);
    for (int i = 0; i < gp2; i++) {
        json_array_append_new(ja, json_pack("{s:i,s:i,s:f}", "layer", r->slot_layer[sp[i].layer], "expert", sp[i].expert, "rd", sp[i].rd));
        /* METHODS §6.3: logit := max + 0.01 (so the weight is just above the old top-1) */
        if (iv) ms_intervention_raise(iv, r->slot_layer[sp[i].layer], sp[i].expert, 0.01f);
    }
    for (int i = 0; i < gn2; i++) {
        json_array_append_new(jd, json_pack("{s:i,s:i,s:f}", "layer", r->slot_layer[sn[i].layer], "expert", sn[i].expert, "rd", sn[i].rd));
        if (iv) ms_intervention_lower(iv, r->slot_layer[sn[i].layer], sn[i].expert, 0.01f);
    }
    json_object_set_new(jsel, "activate", ja);
    json_object_set_new(jsel, "deactivate", jd);
    json_object_set_new(jsel, "reverse", json_boolean(o->reverse));
    if (iv && (gp2 || gn2)) {
        out->plan = ms_intervention_to_string(iv);
        json_object_set_new(jsel, "interventions", out->plan ? json_string(out->plan) : json_null());
    }
    ms_intervention_free(iv);
    out->doc = json_object();
    json_object_set_new(out->doc, "n1", json_integer(n1));
    json_object_set_new(out->doc, "n2", json_integer(n2));
    json_object_set(out->doc, "rows", rows);
    json_object_set_new(out->doc, "selection", jsel);
    out->rows = rows;
    json_object_set_new(params, "n_activate", json_integer(o->n_pos));
    json_object_set_new(params, "n_deactivate", json_integer(o->n_neg));
    json_object_set_new(params, "operators", json_string("activate = raise (max logit + 0.01), "
                                                         "deactivate = lower (min logit - 0.01), METHODS 6.3"));
    if (out->plan) rc = an_store_plan(db, r, "riskdiff", params, out->plan, o->plan_out, o->write, err);
    free(order); free(pos_all); free(neg); free(sp); free(sn);
done:
    free(set); free(a1); free(a2); free(rd);
    return rc < 0 ? rc : 0;
}
