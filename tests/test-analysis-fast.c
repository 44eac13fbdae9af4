/* test-analysis-fast.c — the fast path of `analyze all` (routing decoded
 * once into a mapped cache by two threads, modules on two workers with
 * their table writes replayed in module order, consistency's model level
 * on its own thread, sparse pair counting) against the reference path
 * (each module alone, streaming SQLite on one thread), on random traces of
 * random shapes: the documents and every result table must be identical. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mtest.h"
#include "result-json.h"
#include "run.h"

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ULL;
}

static int rng_int(uint64_t *s, int n) { return (int)((rng_next(s) >> 11) % (uint64_t)n); }

typedef struct { int n_layer, E, K, n_prompt, max_T; bool weights, dense0, short_sets; } Shape;

/* A random run: skewed, sticky routing (so caches and pairs see reuse),
 * random prompt lengths, some (token, layer) sets shorter than k. */
static int make_db(const char *path, const Shape *sh, uint64_t seed, MsError *err)
{
    MsTraceDb *db = ms_trace_open(path, MS_TRACE_CREATE, err);
    if (!db) return -1;
    MsTraceModel m;
    memset(&m, 0, sizeof m);
    snprintf(m.file_name, sizeof m.file_name, "random.gguf");
    snprintf(m.arch, sizeof m.arch, "test");
    snprintf(m.score_func, sizeof m.score_func, "softmax");
    m.n_layer = sh->n_layer;
    m.n_expert = sh->E;
    m.n_expert_used = sh->K;
    m.w_scale = 1;
    m.n_vocab = 64;
    for (int l = 0; l < sh->n_layer; l++) m.is_moe[l] = !(sh->dense0 && l == 0);
    m.n_moe_layers = sh->n_layer - (sh->dense0 ? 1 : 0);
    int64_t mid = ms_trace_model_add(db, &m, err);
    MsTraceRunDesc d = {.model_id = mid, .kind = "import"};
    int64_t rid = mid > 0 ? ms_trace_run_new(db, &d, err) : -1;
    MsTraceWriter *w = rid > 0 ? ms_trace_writer_new(db, rid, err) : NULL;
    if (!w) { ms_trace_close(db); return -1; }
    uint64_t rs = seed;
    int32_t prev[64][64];
    int rc = 0;
    for (int p = 0; p < sh->n_prompt && rc >= 0; p++) {
        char labels[160];
        int en = p % 2 == 0;
        snprintf(labels, sizeof labels, "{\"language\":\"%s\",\"pair_id\":\"%d\",\"set\":\"%s\"}",
                 en ? "en" : "de", p / 2, rng_int(&rs, 2) ? "a" : "b");
        rc = ms_trace_writer_begin(w, p, "random", 6, labels, err);
        int T = 1 + rng_int(&rs, sh->max_T);
        for (int t = 0; t < T && rc >= 0; t++) {
            char piece[8];
            int tid = rng_int(&rs, 12);
            snprintf(piece, sizeof piece, "t%d", tid);
            rc = ms_trace_writer_token(w, t, tid, piece, strlen(piece), t > T / 2, NAN, NAN, err);
            for (int l = sh->dense0 ? 1 : 0; l < sh->n_layer && rc >= 0; l++) {
                int k = sh->short_sets && rng_int(&rs, 5) == 0 ? 1 + rng_int(&rs, sh->K) : sh->K;
                int32_t ex[64];
                float wt[64];
                int n = 0;
                while (n < k) {
                    /* sticky: often the previous token's expert, else skewed */
                    int e = t > 0 && rng_int(&rs, 3) ? prev[l][rng_int(&rs, sh->K)]
                                                     : (int)(sh->E * pow((rng_next(&rs) >> 11) * 0x1p-53, 2.0));
                    e = e < 0 ? 0 : e >= sh->E ? sh->E - 1 : e;
                    bool dup = false;
                    for (int j = 0; j < n; j++) dup |= ex[j] == e;
                    if (dup) e = rng_int(&rs, sh->E);
                    dup = false;
                    for (int j = 0; j < n; j++) dup |= ex[j] == e;
                    if (dup) continue;
                    wt[n] = (float)((rng_next(&rs) >> 40) * 0x1p-24);
                    ex[n++] = e;
                }
                for (int j = 0; j < sh->K; j++) prev[l][j] = ex[j < k ? j : 0];
                rc = ms_trace_writer_route(w, t, l, k, ex, sh->weights ? wt : NULL, err);
            }
        }
        if (rc >= 0) rc = ms_trace_writer_commit(w, NULL, err);
    }
    ms_trace_writer_free(w);
    ms_trace_close(db);
    return rc;
}

typedef struct { char *s; size_t n, cap; } Buf;

static int dump_row(void *user, int n, const char *const *names, const char *const *values)
{
    Buf *b = user;
    (void)names;
    for (int i = 0; i < n; i++) {
        const char *v = values[i] ? values[i] : "NULL";
        size_t len = strlen(v) + 1;
        if (b->n + len + 1 > b->cap) {
            size_t cap = (b->n + len + 1) * 2;
            char *s = realloc(b->s, cap);
            if (!s) return 1;
            b->s = s;
            b->cap = cap;
        }
        memcpy(b->s + b->n, v, len - 1);
        b->n += len - 1;
        b->s[b->n++] = i + 1 < n ? '|' : '\n';
        b->s[b->n] = 0;
    }
    return 0;
}

static int table_name(void *user, int n, const char *const *names, const char *const *values)
{
    (void)n; (void)names;
    Buf *b = user;
    return dump_row(b, 1, names, values);
}

/* Every result table (in insertion order) and the analysis index without
 * timestamps, as text. */
static char *dump_results(MsTraceDb *db)
{
    Buf names = {0}, out = {0};
    MsError err = {0};
    /* the analyses' tables (schema tables such as an_compare_pos are not theirs) */
    if (ms_trace_query(db, "SELECT table_name FROM analysis ORDER BY table_name", table_name, &names, &err) < 0)
        return NULL;
    for (char *p = names.s, *e; p && *p; p = e + 1) {
        e = strchr(p, '\n');
        *e = 0;
        char sql[256];
        snprintf(sql, sizeof sql, "SELECT '%s', * FROM %s ORDER BY rowid", p, p);
        if (ms_trace_query(db, sql, dump_row, &out, &err) < 0) { free(names.s); free(out.s); return NULL; }
    }
    ms_trace_query(db, "SELECT analysis_id, name, table_name, params FROM analysis ORDER BY analysis_id",
                   dump_row, &out, &err);
    free(names.s);
    return out.s ? out.s : strdup("");
}

/* Plain O(|a|·|b|) table: the reference for the bit-vector distance. */
static int lev_naive(const int *a, int na, const int *b, int nb)
{
    int *row = malloc(sizeof *row * (size_t)(nb + 1));
    for (int j = 0; j <= nb; j++) row[j] = j;
    for (int i = 1; i <= na; i++) {
        int diag = row[0];
        row[0] = i;
        for (int j = 1; j <= nb; j++) {
            int up = row[j], v = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < v) v = up + 1;
            if (row[j - 1] + 1 < v) v = row[j - 1] + 1;
            diag = up;
            row[j] = v;
        }
    }
    int d = row[nb];
    free(row);
    return d;
}

/* Pair counts (sparse sets counted directly, dense ones by GEMM/SYRK) and
 * the edit distance (table symbol map or sorted fallback) against naive
 * references; sets include duplicates and −1 padding. */
static void check_kernels(void)
{
    uint64_t rs = 12345;
    int bad_co = 0, bad_aff = 0;
    for (int c = 0; c < 16; c++) {
        /* E up to 64 takes the bit-mask paths, above it the id scans */
        int E = c % 4 == 3 ? 65 + rng_int(&rs, 120) : 3 + rng_int(&rs, 62), kmax = 1 + rng_int(&rs, c % 3 == 2 ? 60 : 10), M = 1 + rng_int(&rs, 300);
        int64_t *N = calloc((size_t)E * E, sizeof *N), *Nr = calloc((size_t)E * E, sizeof *Nr);
        double *Cr = calloc((size_t)E * E, sizeof *Cr);
        MsCoactAcc *co = ms_coact_acc_new(E);
        MsAffAcc *af = ms_aff_acc_new(E);
        for (int t = 0; t < M; t++) {
            int32_t a[64], b[64];
            int na = rng_int(&rs, kmax + 1), nb = rng_int(&rs, kmax + 1);
            for (int i = 0; i < na; i++) a[i] = rng_int(&rs, 8) ? rng_int(&rs, E) : -1;
            for (int i = 0; i < nb; i++) b[i] = rng_int(&rs, 8) ? rng_int(&rs, E) : -1;
            ms_coact_acc_add(co, a, na);
            ms_aff_acc_add(af, a, NULL, na, b, NULL, nb);
            bool ina[192] = {0}, inb[192] = {0};
            for (int i = 0; i < na; i++) if (a[i] >= 0) ina[a[i]] = true;
            for (int i = 0; i < nb; i++) if (b[i] >= 0) inb[b[i]] = true;
            for (int i = 0; i < E; i++)
                for (int j = 0; j < E; j++) {
                    Nr[(size_t)i * E + j] += ina[i] && ina[j];
                    Cr[(size_t)i * E + j] += ina[i] && inb[j];
                }
        }
        ms_coact_acc_result(co, N, NULL, NULL, NULL, NULL);
        MsAffResult r;
        ms_aff_acc_result(af, MS_AFF_TOPK, &r);
        bad_co += memcmp(N, Nr, sizeof *N * (size_t)E * E) != 0;
        bad_aff += memcmp(r.C, Cr, sizeof *Cr * (size_t)E * E) != 0;
        ms_coact_acc_free(co);
        ms_aff_acc_free(af);
        free(N); free(Nr); free(Cr);
    }
    MT_CHECK(bad_co == 0, "coactivation counts equal the naive pair count (16 random cases, E 3..184, %d differ)", bad_co);
    MT_CHECK(bad_aff == 0, "affinity top-k counts equal the naive pair count (16 random cases, E 3..184, %d differ)", bad_aff);
    int bad_lev = 0;
    for (int c = 0; c < 200; c++) {
        int a[300], b[300], na = rng_int(&rs, 300), nb = rng_int(&rs, 300);
        int range = c % 4 == 0 ? 1 << 30 : c % 4 == 1 ? 4 : 300;   /* wide range: sorted fallback */
        int off = c % 2 ? -(range / 2) : 0;
        for (int i = 0; i < na; i++) a[i] = off + rng_int(&rs, range);
        for (int i = 0; i < nb; i++) b[i] = rng_int(&rs, 3) ? (na ? a[rng_int(&rs, na)] : 0) : off + rng_int(&rs, range);
        bad_lev += ms_levenshtein(a, na, b, nb) != lev_naive(a, na, b, nb);
    }
    MT_CHECK(bad_lev == 0, "edit distance equals the naive table (200 random pairs, %d differ)", bad_lev);
}

int main(void)
{
    check_kernels();
    const Shape shapes[] = {
        {4, 8, 2, 9, 30, true, false, false},
        {5, 16, 4, 14, 60, true, true, true},
        {3, 5, 1, 7, 25, false, false, false},
        {6, 64, 8, 6, 80, true, false, true},
        {3, 12, 12, 5, 20, true, false, false},   /* k = E: dense multi-hot path */
        {2, 40, 30, 4, 15, true, false, true},    /* sets above the direct-count limit */
    };
    const char *dir = mt_tmpdir();
    for (size_t c = 0; c < MS_ARRAY_LEN(shapes); c++) {
        const Shape *sh = &shapes[c];
        char pa[512], pb[512];
        snprintf(pa, sizeof pa, "%s/fast%zu.db", dir, c);
        snprintf(pb, sizeof pb, "%s/ref%zu.db", dir, c);
        MsError err = {0};
        uint64_t seed = 0x9e3779b97f4a7c15ULL * (c + 1);
        int rc = make_db(pa, sh, seed, &err);
        if (rc >= 0) rc = make_db(pb, sh, seed, &err);
        MT_CHECK(rc >= 0, "shape %zu: random trace written (%s)", c, rc < 0 ? err.msg : "ok");
        if (rc < 0) continue;

        MsAnOptions o;
        ms_an_options_default(&o);
        o.label = "set";
        o.set1 = "a";
        o.set2 = "b";
        o.sparse_weights = true;
        o.by = c % 2 ? "pos:4" : "token";
        o.n_pairs = 20;
        o.segments[0] = 2; o.segments[1] = 5; o.n_segments = 2;
        o.cache[0] = 1; o.cache[1] = 3; o.cache[2] = sh->E; o.n_cache = 3;
        o.variant = c % 3 == 1 ? "weighted" : NULL;
        if (c == 2) o.cold = true;

        MsTraceDb *da = ms_trace_open(pa, MS_TRACE_WRITE, &err), *db = ms_trace_open(pb, MS_TRACE_WRITE, &err);
        MsAnAll an;
        json_t *all = NULL;
        rc = da && db ? ms_analyze_all(da, &o, &an, &err) : -1;
        if (rc == 0) {
            all = ms_an_all_json(&an);
            ms_an_all_clear(&an);
        }
        MT_CHECK(rc == 0 && all, "shape %zu: analyze all runs (%s)", c, rc ? err.msg : "ok");
        const char *const *names = ms_analyze_modules();
        int same = 1, nmod = 0;
        for (int i = 0; all && names[i]; i++) {
            json_t *d = json_object_get(json_object_get(all, "modules"), names[i]);
            if (!d) continue;
            nmod++;
            MsAnResult res;
            if (ms_analyze(db, names[i], &o, &res, &err) != 0) {
                same = 0;
                mt_diag("shape %zu: %s alone failed: %s", c, names[i], err.msg);
                continue;
            }
            json_t *one = ms_an_result_json(&res);
            if (!json_equal(d, one)) {
                same = 0;
                mt_diag("shape %zu: %s differs between analyze all and the module alone", c, names[i]);
            }
            json_decref(one);
            ms_an_result_clear(&res);
        }
        MT_CHECK(same && nmod >= 7, "shape %zu: %d module documents identical on both paths", c, nmod);
        char *ta = da ? dump_results(da) : NULL, *tb = db ? dump_results(db) : NULL;
        MT_CHECK(ta && tb && strlen(ta) > 0 && !strcmp(ta, tb),
                 "shape %zu: result tables identical (%zu bytes)", c, ta ? strlen(ta) : 0);
        free(ta);
        free(tb);
        json_decref(all);
        if (c == 0 && da) {
            /* --no-write still writes the plan file (--out), as a module alone does */
            char fa[600], fb[600];
            snprintf(fa, sizeof fa, "%s/plan-all.txt", dir);
            snprintf(fb, sizeof fb, "%s/plan-one.txt", dir);
            MsAnOptions q = o;
            q.write = false;
            q.n_pos = q.n_neg = 2;
            q.plan_out = fa;
            rc = ms_analyze_all(da, &q, &an, &err);
            if (rc == 0) ms_an_all_clear(&an);
            q.plan_out = fb;
            MsAnResult res;
            /* the modules that write plans, in module order: the last one wins */
            const char *planners[] = {"npmi", "riskdiff", "crosslingual"};
            for (int i = 0; i < 3 && rc == 0; i++)
                if ((rc = ms_analyze(db, planners[i], &q, &res, &err)) == 0) ms_an_result_clear(&res);
            char ba[512] = "", bb[512] = "";
            FILE *f1 = fopen(fa, "r"), *f2 = fopen(fb, "r");
            size_t n1 = f1 ? fread(ba, 1, sizeof ba - 1, f1) : 0, n2 = f2 ? fread(bb, 1, sizeof bb - 1, f2) : 0;
            if (f1) fclose(f1);
            if (f2) fclose(f2);
            MT_CHECK(rc == 0 && n1 > 0 && n1 == n2 && !memcmp(ba, bb, n1),
                     "no-write analyze all leaves the plan file of the modules run one by one (%zu bytes; %s)", n1,
                     rc ? err.msg : "ok");
        }
        ms_trace_close(da);
        ms_trace_close(db);
    }
    return mt_done();
}
