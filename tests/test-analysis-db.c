/* test-analysis-db.c — the analysis modules over a trace database with
 * planted structure, written through db/'s writer and observer exactly as a
 * traced run is.  Each module must recover what was planted, exactly:
 *   - expert 2 of block 1 is selected iff the token is a digit (nPMI = 1);
 *   - block 2 selects (e+1) mod E for every expert e of block 1 (affinity);
 *   - block 3 routes every token of a language to one fixed pair (SRP = 1);
 *   - expert 3 of block 1 has a huge down-projection output on one token,
 *     block 3 (outside the first 75 % of layers) an even larger one;
 *   - the two languages have known router distributions (D_HJS, pathways).
 * Also checks the fixed JSON shapes of docs/analysis.md and the tables. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mtest.h"
#include "result-json.h"
#include "run.h"

enum { NL = 4, E = 8, K = 2, T = 20, NP = 6 };

static const float P_EN[E] = {0.5f, 0.25f, 0.125f, 0.125f, 0, 0, 0, 0};
static const float P_DE[E] = {0.125f, 0.125f, 0.25f, 0.5f, 0, 0, 0, 0};

static int is_digit_pos(int pos) { return pos % 3 == 0; }

/* planted selection of a token at MoE block l (1..3) */
static void plant(int prompt, int pos, int l, int32_t out[K])
{
    int en = prompt % 2 == 0;
    int32_t b1[K];
    if (is_digit_pos(pos)) {
        b1[0] = 2;
        b1[1] = 3 + pos % 5;
    } else {
        b1[0] = en ? 0 : 1;
        b1[1] = 4 + pos % 4;
    }
    if (l == 1) {
        memcpy(out, b1, sizeof b1);
    } else if (l == 2) {
        for (int j = 0; j < K; j++) out[j] = (b1[j] + 1) % E;
    } else {
        out[0] = en ? 5 : 6;
        out[1] = en ? 6 : 7;
    }
}

static int make_db(const char *path, MsError *err)
{
    MsTraceDb *db = ms_trace_open(path, MS_TRACE_CREATE, err);
    if (!db) return -1;
    MsTraceModel m;
    memset(&m, 0, sizeof m);
    snprintf(m.file_name, sizeof m.file_name, "planted.gguf");
    snprintf(m.arch, sizeof m.arch, "test");
    snprintf(m.score_func, sizeof m.score_func, "softmax");
    m.n_layer = NL;
    m.n_expert = E;
    m.n_expert_used = K;
    m.w_scale = 1;
    m.n_vocab = 32;
    for (int l = 1; l < NL; l++) m.is_moe[l] = 1;
    m.n_moe_layers = NL - 1;
    int64_t mid = ms_trace_model_add(db, &m, err);
    MsTraceRunDesc d = {.model_id = mid, .kind = "trace", .has_probs = true, .has_stats = true};
    int64_t rid = mid > 0 ? ms_trace_run_new(db, &d, err) : -1;
    MsTraceWriter *w = rid > 0 ? ms_trace_writer_new(db, rid, err) : NULL;
    if (!w) { ms_trace_close(db); return -1; }
    MsObserver ob = ms_trace_writer_observer(w);
    int rc = 0;
    for (int p = 0; p < NP && rc >= 0; p++) {
        char labels[128];
        int en = p % 2 == 0;
        snprintf(labels, sizeof labels, "{\"language\":\"%s\",\"pair_id\":\"%d\",\"set\":\"%s\"}", en ? "en" : "de", p / 2,
                 en ? "a" : "b");
        rc = ms_trace_writer_begin(w, p, "planted", 7, labels, err);
        for (int pos = 0; pos < T && rc >= 0; pos++) {
            const char *piece = is_digit_pos(pos) ? "5" : pos % 3 == 1 ? " the" : ",";
            int32_t tid = is_digit_pos(pos) ? 7 : pos % 3 == 1 ? 9 : 11;
            rc = ms_trace_writer_token(w, pos, tid, piece, strlen(piece), false, NAN, NAN, err);
        }
        for (int l = 1; l < NL && rc >= 0; l++) {
            int32_t pos[T], ex[T * K];
            float wt[T * K], pr[T * E], lg[T * E], mx[T * K], l2[T * K];
            for (int t = 0; t < T; t++) {
                pos[t] = t;
                plant(p, t, l, ex + t * K);
                for (int j = 0; j < K; j++) {
                    wt[t * K + j] = j == 0 ? 0.75f : 0.25f;
                    mx[t * K + j] = 1.0f;
                    l2[t * K + j] = 1.0f;
                    if (l == 1 && p == 2 && t == 15 && ex[t * K + j] == 3) mx[t * K + j] = 1000.0f;
                    if (l == 3 && p == 1 && t == 4 && j == 0) mx[t * K + j] = 5000.0f;
                }
                for (int e = 0; e < E; e++) {
                    pr[t * E + e] = en ? P_EN[e] : P_DE[e];
                    lg[t * E + e] = 0;
                }
            }
            MsRoutingEvent ev = {l, T, pos, E, K, ex, wt, pr, lg, mx, l2, NULL, NULL};
            ob.on_routing(ob.user, &ev);
        }
        for (int l = 0; l < NL && rc >= 0; l++) {
            int32_t pos[T];
            float hm[T];
            for (int t = 0; t < T; t++) {
                pos[t] = t;
                hm[t] = (l == 2 && p == 1 && t == 0) ? 500.0f : 1.0f;
            }
            MsHiddenEvent hv = {l, T, pos, hm, NULL};
            ob.on_hidden(ob.user, &hv);
        }
        if (rc >= 0) rc = ms_trace_writer_commit(w, NULL, err);
    }
    ms_trace_writer_free(w);
    ms_trace_close(db);
    return rc;
}

/* The module's JSON document (what --format json prints); valid until the
 * next call. */
static json_t *cur_doc;

static json_t *run_module(MsTraceDb *db, const char *name, MsAnOptions *o, MsAnResult *res)
{
    MsError err = {0};
    int rc = ms_analyze(db, name, o, res, &err);
    json_decref(cur_doc);
    cur_doc = rc == 0 ? ms_an_result_json(res) : NULL;
    MT_CHECK(rc == 0 && cur_doc, "analyze %s runs (%s)", name, rc ? err.msg : "ok");
    return cur_doc;
}

static double num(json_t *v) { return json_is_number(v) ? json_number_value(v) : NAN; }

static int count_rows(void *user, int n, const char *const *names, const char *const *values)
{
    (void)n; (void)names;
    *(long *)user = values[0] ? atol(values[0]) : -1;
    return 0;
}

static long table_rows(MsTraceDb *db, const char *table)
{
    char sql[128];
    long n = -1;
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", table);
    MsError err = {0};
    if (ms_trace_query(db, sql, count_rows, &n, &err) < 0) return -1;
    return n;
}

int main(void)
{
    char path[512];
    snprintf(path, sizeof path, "%s/planted.db", mt_tmpdir());
    MsError err = {0};
    if (!MT_CHECK(make_db(path, &err) >= 0, "planted trace written (%s)", err.msg)) return mt_done();
    MsTraceDb *db = ms_trace_open(path, MS_TRACE_WRITE, &err);
    if (!MT_CHECK(db != NULL, "open %s", err.msg)) return mt_done();
    MsAnOptions o;
    MsAnResult res;

    /* load: fixed shape, loads sum to tokens × k */
    ms_an_options_default(&o);
    json_t *doc = run_module(db, "load", &o, &res);
    json_t *layers = json_object_get(doc, "layers");
    int ok = json_array_size(layers) == 3;
    for (size_t i = 0; ok && i < json_array_size(layers); i++) {
        json_t *L = json_array_get(layers, i), *c = json_object_get(L, "counts");
        ok &= json_integer_value(json_object_get(L, "layer")) == (json_int_t)i + 1;
        ok &= json_array_size(c) == E && json_array_size(json_object_get(L, "share")) == E;
        ok &= json_is_number(json_object_get(L, "entropy_norm")) && json_is_number(json_object_get(L, "gini")) &&
              json_is_number(json_object_get(L, "cv")) && json_is_number(json_object_get(L, "max_over_mean"));
        long sum = 0;
        for (int e = 0; e < E; e++) sum += (long)json_integer_value(json_array_get(c, e));
        ok &= sum == NP * T * K;
    }
    MT_CHECK(ok, "load: 3 MoE layers (blocks 1..3), fixed fields, counts sum to tokens × k");
    json_t *l3 = json_array_get(layers, 2);
    MT_CHECK(json_integer_value(json_array_get(json_object_get(l3, "counts"), 6)) == NP * T &&
             fabs(num(json_object_get(l3, "token_entropy_mean")) - 1.2130075659799042) < 1e-12,
             "load: block 3 expert 6 on every token; token entropy of [.5,.25,.125,.125] = 1.75 ln 2");
    ms_an_result_clear(&res);
    MT_CHECK(table_rows(db, "an_load") == 3 && table_rows(db, "an_load_experts") == 3 * E,
             "load: tables an_load (3 rows) and an_load_experts (3·E rows)");

    /* affinity: block 1 → 2 is a fixed permutation */
    ms_an_options_default(&o);
    doc = run_module(db, "affinity", &o, &res);
    json_t *pairs = json_object_get(doc, "pairs"), *p0 = json_array_get(pairs, 0);
    ok = json_array_size(pairs) == 2 && json_integer_value(json_object_get(p0, "from")) == 1 &&
         json_integer_value(json_object_get(p0, "to")) == 2;
    json_t *P = json_object_get(p0, "P"), *Q = json_object_get(p0, "Q"), *C = json_object_get(p0, "C");
    int perm = json_array_size(P) == E && json_array_size(Q) == E && json_array_size(C) == E;
    for (int i = 0; perm && i < E; i++) {
        json_t *row = json_array_get(P, i);
        if (json_is_null(json_array_get(row, 0))) continue;   /* expert never selected: NaN row */
        perm &= fabs(num(json_array_get(row, (i + 1) % E)) - 1.0) < 1e-12;
        double rs = 0;
        for (int j = 0; j < E; j++) rs += num(json_array_get(json_array_get(Q, i), j));
        perm &= fabs(rs - 1.0) < 1e-12;
    }
    MT_CHECK(ok, "affinity: pairs (1→2), (2→3) with from/to block indices");
    MT_CHECK(perm, "affinity: P(e+1 | e) = 1 for every selected expert, Q rows sum to 1, NaN rows null");
    MT_CHECK(fabs(num(json_object_get(p0, "concentration_top1")) - 1.0) < 1e-12 &&
             fabs(num(json_object_get(p0, "nmi_top1")) - 1.0) < 1e-12,
             "affinity: top-1 concentration and NMI exactly 1 for the planted successor");
    ms_an_result_clear(&res);
    o.distance = 2;
    doc = run_module(db, "affinity", &o, &res);
    pairs = json_object_get(doc, "pairs");
    MT_CHECK(json_array_size(pairs) == 1 && json_integer_value(json_object_get(json_array_get(pairs, 0), "to")) == 3,
             "affinity --distance 2: one pair 1→3");
    ms_an_result_clear(&res);

    /* consistency */
    ms_an_options_default(&o);
    doc = run_module(db, "consistency", &o, &res);
    layers = json_object_get(doc, "layers");
    l3 = json_array_get(layers, 2);
    json_t *srp = json_object_get(l3, "srp"), *sch = json_object_get(l3, "sch");
    MT_CHECK(fabs(num(json_object_get(srp, "4")) - 1.0) < 1e-12 && fabs(num(json_object_get(srp, "16")) - 1.0) < 1e-12 &&
             json_is_null(json_object_get(srp, "64")) && json_is_null(json_object_get(srp, "256")),
             "consistency: block 3 constant routing → SRP 1 (m = 4, 16); m > T has no windows (null)");
    MT_CHECK(fabs(num(json_object_get(json_object_get(sch, "4"), "1")) - 0.5) < 1e-12 &&
             fabs(num(json_object_get(json_object_get(sch, "4"), "2")) - 1.0) < 1e-12,
             "consistency: block 3 warm SCH = 0.5 at C = 1, 1 at C = 2");
    int mono = json_array_size(layers) == 3;
    for (size_t i = 0; i < json_array_size(layers); i++) {
        json_t *s = json_object_get(json_array_get(layers, i), "sch");
        const char *m;
        json_t *byc;
        json_object_foreach(s, m, byc) {
            double prev = -1;
            for (int c = 1; c <= E; c++) {
                char key[8];
                snprintf(key, sizeof key, "%d", c);
                double v = num(json_object_get(byc, key));
                mono &= v >= prev - 1e-15 && v >= 0 && v <= 1;
                prev = v;
            }
        }
    }
    MT_CHECK(mono, "consistency: SCH in [0,1] and non-decreasing in C at every layer and m");
    json_t *model = json_object_get(doc, "model");
    MT_CHECK(json_is_object(json_object_get(model, "srp")) && json_is_object(json_object_get(model, "sch")),
             "consistency: model-level srp and sch present");
    ms_an_result_clear(&res);

    /* super experts */
    ms_an_options_default(&o);
    doc = run_module(db, "superexperts", &o, &res);
    json_t *ses = json_object_get(doc, "super_experts"), *se0 = json_array_get(ses, 0);
    MT_CHECK(json_array_size(ses) == 1 && json_integer_value(json_object_get(se0, "layer")) == 1 &&
             json_integer_value(json_object_get(se0, "expert")) == 3 && num(json_object_get(se0, "value")) == 1000 &&
             json_integer_value(json_object_get(se0, "prompt")) == 2 && json_integer_value(json_object_get(se0, "pos")) == 15,
             "superexperts: exactly (block 1, expert 3) with its token (prompt 2, pos 15); block 3 excluded");
    MT_CHECK(json_integer_value(json_object_get(doc, "layer_cut")) == 3, "superexperts: layer cut round(0.75·4) = 3");
    json_t *ma = json_object_get(doc, "massive_activations");
    int found = 0;
    for (size_t i = 0; i < json_array_size(ma); i++) {
        json_t *x = json_array_get(ma, i);
        if (json_integer_value(json_object_get(x, "layer")) == 2)
            found = num(json_object_get(x, "max")) == 500 && json_integer_value(json_object_get(x, "prompt")) == 1 &&
                    json_integer_value(json_object_get(x, "pos")) == 0;
    }
    MT_CHECK(found && json_array_size(ma) == NL, "superexperts: massive activation of block 2 at prompt 1 pos 0");
    ms_an_result_clear(&res);

    /* npmi: digits ↔ (1, 2) */
    ms_an_options_default(&o);
    o.plan_class = "digit";
    o.top = 1;
    o.beta = 4;
    doc = run_module(db, "npmi", &o, &res);
    json_t *rows = json_object_get(doc, "rows");
    json_t *best = NULL;
    int inr = 1;
    for (size_t i = 0; i < json_array_size(rows); i++) {
        json_t *x = json_array_get(rows, i);
        double v = num(json_object_get(x, "npmi"));
        inr &= v >= -1 && v <= 1 && json_is_integer(json_object_get(x, "count"));
        if (!best && !strcmp(json_string_value(json_object_get(x, "class")), "digit")) best = x;
    }
    MT_CHECK(inr && json_array_size(rows) > 0, "npmi: rows with npmi in [−1,1] and counts");
    MT_CHECK(best && json_integer_value(json_object_get(best, "layer")) == 1 &&
             json_integer_value(json_object_get(best, "expert")) == 2 && num(json_object_get(best, "npmi")) == 1.0 &&
             json_integer_value(json_object_get(best, "count")) == NP * 7,
             "npmi: top digit expert is (1, 2) with nPMI exactly 1 and count 42");
    const char *plan = ms_an_result_plan(&res);
    MT_CHECK(plan && strstr(plan, "1:2"), "npmi --plan digit: intervention set targets 1:2 (%s)",
             plan ? plan : "none");
    if (plan) {
        MsIntervention *iv = ms_intervention_new(NL, E);
        MT_CHECK(ms_intervention_parse_text(iv, plan, &err) == 0, "npmi plan parses back as an intervention set");
        ms_intervention_free(iv);
    }
    ms_an_result_clear(&res);
    MT_CHECK(table_rows(db, "an_npmi_plan") == 1, "npmi: plan stored in an_npmi_plan");
    o.plan_class = NULL;
    o.by = "label:language";
    doc = run_module(db, "npmi", &o, &res);
    rows = json_object_get(doc, "rows");
    best = json_array_get(rows, 0);
    MT_CHECK(best && num(json_object_get(best, "npmi")) == 1.0 &&
             ((json_integer_value(json_object_get(best, "layer")) == 3) ||
              json_integer_value(json_object_get(best, "layer")) == 1),
             "npmi --by label:lang: a language-exclusive expert scores 1");
    ms_an_result_clear(&res);

    /* riskdiff en (a) vs de (b) */
    ms_an_options_default(&o);
    o.label = "set";
    o.set1 = "a";
    o.set2 = "b";
    o.n_pos = 2;
    o.n_neg = 1;
    doc = run_module(db, "riskdiff", &o, &res);
    rows = json_object_get(doc, "rows");
    double rd10 = NAN, rd35 = NAN, rd37 = NAN;
    for (size_t i = 0; i < json_array_size(rows); i++) {
        json_t *x = json_array_get(rows, i);
        int l = (int)json_integer_value(json_object_get(x, "layer")), e = (int)json_integer_value(json_object_get(x, "expert"));
        if (l == 1 && e == 0) rd10 = num(json_object_get(x, "rd"));
        if (l == 3 && e == 5) rd35 = num(json_object_get(x, "rd"));
        if (l == 3 && e == 7) rd37 = num(json_object_get(x, "rd"));
    }
    MT_CHECK(fabs(rd10 - 13.0 / 20) < 1e-12 && rd35 == 1.0 && rd37 == -1.0,
             "riskdiff: RD(1,0) = 13/20, RD(3,5) = 1, RD(3,7) = −1");
    json_t *sel = json_object_get(doc, "selection");
    json_t *act = json_object_get(sel, "activate"), *dea = json_object_get(sel, "deactivate");
    MT_CHECK(json_array_size(act) == 2 && json_integer_value(json_object_get(json_array_get(act, 0), "layer")) == 3 &&
             json_integer_value(json_object_get(json_array_get(act, 0), "expert")) == 5 && json_array_size(dea) == 1 &&
             ms_an_result_plan(&res) != NULL, "riskdiff: activate (3,5) first, deactivate one, plan written");
    ms_an_result_clear(&res);

    /* crosslingual */
    ms_an_options_default(&o);
    doc = run_module(db, "crosslingual", &o, &res);
    double pe[E], pd[E];
    for (int e = 0; e < E; e++) pe[e] = P_EN[e], pd[e] = P_DE[e];
    double want = ms_dhjs(pe, pd, E);
    layers = json_object_get(doc, "layers");
    ok = json_array_size(layers) == 3;
    for (size_t i = 0; ok && i < 3; i++)
        ok &= fabs(num(json_object_get(json_object_get(json_array_get(layers, i), "div"), "de")) - want) < 1e-12;
    MT_CHECK(ok, "crosslingual: Div(de) = D_HJS(q_en, q_de) = %.12f at every layer", want);
    json_t *steer = json_object_get(json_object_get(doc, "steer"), "experts");
    int s10 = 0, s21 = 0;
    for (size_t i = 0; i < json_array_size(steer); i++) {
        json_t *x = json_array_get(steer, i);
        int l = (int)json_integer_value(json_object_get(x, "layer")), e = (int)json_integer_value(json_object_get(x, "expert"));
        s10 |= l == 1 && e == 0;
        s21 |= l == 2 && e == 1;
    }
    MT_CHECK(json_array_size(steer) == 2 && s10 && s21,
             "crosslingual: middle-layer steer set = {(1,0), (2,1)} (Δ = 0.65 > τ); block 3 outside");
    ms_an_result_clear(&res);

    /* pathways */
    ms_an_options_default(&o);
    doc = run_module(db, "pathways", &o, &res);
    json_t *smp = json_object_get(doc, "samples");
    MT_CHECK(json_array_size(smp) == NP &&
             !strcmp(json_string_value(json_object_get(json_array_get(smp, 0), "pathway")), "0,1-0,1-0,1") &&
             !strcmp(json_string_value(json_object_get(json_array_get(smp, 1), "pathway")), "3,2-3,2-3,2"),
             "pathways: en \"0,1-0,1-0,1\", de \"3,2-3,2-3,2\"");
    MT_CHECK(fabs(num(json_object_get(doc, "mean_distance")) - 3.6) < 1e-12 &&
             json_integer_value(json_object_get(doc, "n_pairs")) == 15,
             "pathways: mean char distance over 15 pairs = 9·6/15 = 3.6");
    ms_an_result_clear(&res);

    /* analyze all: the decoded-once replay must give the same documents */
    ms_an_options_default(&o);
    o.label = "set";
    o.set1 = "a";
    o.set2 = "b";
    MsAnAll an;
    int arc = ms_analyze_all(db, &o, &an, &err);
    json_t *all = arc == 0 ? ms_an_all_json(&an) : NULL;
    ms_an_all_clear(&an);
    MT_CHECK(arc == 0 && all, "analyze all runs (%s)", err.msg);
    const char *const *names = ms_analyze_modules();
    int same = 1, nmod = 0;
    for (int i = 0; names[i]; i++) {
        json_t *d = json_object_get(json_object_get(all, "modules"), names[i]);
        if (!d) { same = 0; continue; }
        nmod++;
        if (ms_analyze(db, names[i], &o, &res, &err) != 0) { same = 0; continue; }
        json_t *one = ms_an_result_json(&res);
        if (!json_equal(d, one)) {
            same = 0;
            mt_diag("analyze all: %s differs from the single-module run", names[i]);
        }
        json_decref(one);
        ms_an_result_clear(&res);
    }
    MT_CHECK(same && nmod == 9, "analyze all: all 9 modules ran and equal the single-module documents");
    MT_CHECK(json_is_object(json_object_get(json_object_get(all, "timing"), "decode")), "analyze all: timings reported");
    json_decref(all);

    /* bad input: no crash, clean errors */
    ms_an_options_default(&o);
    o.layer = 0;
    MT_CHECK(ms_analyze(db, "load", &o, &res, &err) == MS_EINVAL && strstr(err.msg, "not a MoE layer"),
             "--layer of a dense block is rejected (%s)", err.msg);
    ms_an_options_default(&o);
    o.run_id = 99;
    MT_CHECK(ms_analyze(db, "load", &o, &res, &err) < 0, "unknown run is an error");
    ms_an_options_default(&o);
    MT_CHECK(ms_analyze(db, "nosuch", &o, &res, &err) == MS_ENOTFOUND, "unknown module is MS_ENOTFOUND");
    ms_trace_close(db);
    json_decref(cur_doc);
    return mt_done();
}
