/* test-analysis-golden.c — what every analysis module prints and stores,
 * byte for byte, against golden files recorded from the code before the
 * typed-results refactor (tests/golden/).  Two deterministic traces made
 * here through db/'s writer (a planted one and a seeded random one with
 * probabilities, stats, generated tokens, dense block 0 and short sets);
 * per case: the JSON document, the display rows and the plan, then every
 * result table the module wrote (declared column types, values with
 * typeof() and quote(), row order) and its `analysis` registry rows; and
 * `moescope analyze` itself (json, table and csv output, captured).  Each
 * typed result is also compared field by field with the document the old
 * code recorded for its case (not with the new JSON conversion).
 *
 * MS_GOLDEN_RECORD=DIR writes the files into DIR instead of comparing (run
 * once on the old code to make them).
 *
 * The files were recorded by a release build with -march=native; there
 * (MS_GOLDEN_EXACT=1, set by tests/meson.build) the output must be the
 * same bytes.  Other builds (sanitizers, -O2, another -march) may contract
 * floating-point expressions differently (FMA), which moves the last bits
 * of a few reals (the old code does the same there): then every byte but
 * the reals must be the same, integers included, and every real within
 * 1e-12 relative — except token_entropy_std, whose formula sqrt(E[h²] −
 * E[h]²) turns last-bit differences into about 1e-8 when the spread is 0
 * (within 1e-6 there). */
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "mtest.h"
#include "result-json.h"
#include "run.h"

/* ------------------------------------------------------------- text buffer */

typedef struct { char *s; size_t n, cap; } Buf;

static void buf_put(Buf *b, const char *s, size_t len)
{
    if (b->n + len + 1 > b->cap) {
        size_t cap = (b->n + len + 1) * 2;
        char *p = realloc(b->s, cap);
        if (!p) { perror("realloc"); exit(99); }
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->n, s, len);
    b->n += len;
    b->s[b->n] = 0;
}

static void buf_str(Buf *b, const char *s) { buf_put(b, s, strlen(s)); }

static void buf_printf(Buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void buf_printf(Buf *b, const char *fmt, ...)
{
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < (int)sizeof tmp) { buf_put(b, tmp, (size_t)n); return; }
    char *big = malloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    buf_put(b, big, (size_t)n);
    free(big);
}

static void buf_json(Buf *b, const json_t *j)
{
    char *s = j ? json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(17) | JSON_ENCODE_ANY) : NULL;
    buf_str(b, s ? s : "(null)");
    buf_str(b, "\n");
    free(s);
}

/* ----------------------------------------------------------------- traces */

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ULL;
}
static int rng_int(uint64_t *s, int n) { return (int)((rng_next(s) >> 11) % (uint64_t)n); }
static double rng_unit(uint64_t *s) { return (double)(rng_next(s) >> 11) * 0x1p-53; }

static MsTraceWriter *new_run(MsTraceDb *db, int n_layer, int E, int K, int dense0, MsError *err)
{
    MsTraceModel m;
    memset(&m, 0, sizeof m);
    snprintf(m.file_name, sizeof m.file_name, "golden.gguf");
    snprintf(m.arch, sizeof m.arch, "test");
    snprintf(m.score_func, sizeof m.score_func, "softmax");
    m.n_layer = n_layer;
    m.n_expert = E;
    m.n_expert_used = K;
    m.w_scale = 1;
    m.n_vocab = 64;
    for (int l = 0; l < n_layer; l++) m.is_moe[l] = !(dense0 && l == 0);
    m.n_moe_layers = n_layer - (dense0 ? 1 : 0);
    int64_t mid = ms_trace_model_add(db, &m, err);
    MsTraceRunDesc d = {.model_id = mid, .kind = "trace", .has_probs = true, .has_stats = true};
    int64_t rid = mid > 0 ? ms_trace_run_new(db, &d, err) : -1;
    return rid > 0 ? ms_trace_writer_new(db, rid, err) : NULL;
}

/* The planted trace of test-analysis-db.c: 4 blocks (0 dense), E = 8, k = 2. */
enum { PNL = 4, PE = 8, PK = 2, PT = 20, PNP = 6 };
static const float P_EN[PE] = {0.5f, 0.25f, 0.125f, 0.125f, 0, 0, 0, 0};
static const float P_DE[PE] = {0.125f, 0.125f, 0.25f, 0.5f, 0, 0, 0, 0};

static void plant(int prompt, int pos, int l, int32_t out[PK])
{
    int en = prompt % 2 == 0;
    int32_t b1[PK];
    if (pos % 3 == 0) {
        b1[0] = 2;
        b1[1] = 3 + pos % 5;
    } else {
        b1[0] = en ? 0 : 1;
        b1[1] = 4 + pos % 4;
    }
    if (l == 1) {
        memcpy(out, b1, sizeof b1);
    } else if (l == 2) {
        for (int j = 0; j < PK; j++) out[j] = (b1[j] + 1) % PE;
    } else {
        out[0] = en ? 5 : 6;
        out[1] = en ? 6 : 7;
    }
}

static int make_planted(const char *path, MsError *err)
{
    MsTraceDb *db = ms_trace_open(path, MS_TRACE_CREATE, err);
    if (!db) return -1;
    MsTraceWriter *w = new_run(db, PNL, PE, PK, 1, err);
    if (!w) { ms_trace_close(db); return -1; }
    MsObserver ob = ms_trace_writer_observer(w);
    int rc = 0;
    for (int p = 0; p < PNP && rc >= 0; p++) {
        char labels[128];
        int en = p % 2 == 0;
        snprintf(labels, sizeof labels, "{\"language\":\"%s\",\"pair_id\":\"%d\",\"set\":\"%s\"}", en ? "en" : "de",
                 p / 2, en ? "a" : "b");
        rc = ms_trace_writer_begin(w, p, "planted", 7, labels, err);
        for (int pos = 0; pos < PT && rc >= 0; pos++) {
            const char *piece = pos % 3 == 0 ? "5" : pos % 3 == 1 ? " the" : ",";
            int32_t tid = pos % 3 == 0 ? 7 : pos % 3 == 1 ? 9 : 11;
            rc = ms_trace_writer_token(w, pos, tid, piece, strlen(piece), false, NAN, NAN, err);
        }
        for (int l = 1; l < PNL && rc >= 0; l++) {
            int32_t pos[PT], ex[PT * PK], am[PT * PK];
            float wt[PT * PK], pr[PT * PE], lg[PT * PE], mx[PT * PK], l2[PT * PK];
            for (int t = 0; t < PT; t++) {
                pos[t] = t;
                plant(p, t, l, ex + t * PK);
                for (int j = 0; j < PK; j++) {
                    wt[t * PK + j] = j == 0 ? 0.75f : 0.25f;
                    mx[t * PK + j] = 1.0f;
                    l2[t * PK + j] = 1.0f;
                    am[t * PK + j] = (t + j) % 16;
                    if (l == 1 && p == 2 && t == 15 && ex[t * PK + j] == 3) mx[t * PK + j] = 1000.0f;
                    if (l == 3 && p == 1 && t == 4 && j == 0) mx[t * PK + j] = 5000.0f;
                }
                for (int e = 0; e < PE; e++) {
                    pr[t * PE + e] = en ? P_EN[e] : P_DE[e];
                    lg[t * PE + e] = (float)e * 0.5f;
                }
            }
            MsRoutingEvent ev = {l, PT, pos, PE, PK, ex, wt, pr, lg, mx, l2, am, NULL};
            ob.on_routing(ob.user, &ev);
        }
        for (int l = 0; l < PNL && rc >= 0; l++) {
            int32_t pos[PT], am[PT];
            float hm[PT];
            for (int t = 0; t < PT; t++) {
                pos[t] = t;
                hm[t] = (l == 2 && p == 1 && t == 0) ? 500.0f : 1.0f + 0.01f * (float)t;
                am[t] = (l * 7 + t) % 32;
            }
            MsHiddenEvent hv = {l, PT, pos, hm, am};
            ob.on_hidden(ob.user, &hv);
        }
        if (rc >= 0) rc = ms_trace_writer_commit(w, NULL, err);
    }
    ms_trace_writer_free(w);
    ms_trace_close(db);
    return rc;
}

/* A seeded random trace: 5 blocks (0 dense), E = 12, k = 3, sets of 1..3
 * ids now and then, generated tail tokens on most prompts, languages en /
 * de / fr with pair ids (one prompt unlabelled, one without a pair), varied
 * token pieces, skewed and sticky routing, a few large expert outputs. */
enum { RNL = 5, RE = 12, RK = 3, RNP = 11 };

static int make_random(const char *path, uint64_t seed, MsError *err)
{
    MsTraceDb *db = ms_trace_open(path, MS_TRACE_CREATE, err);
    if (!db) return -1;
    MsTraceWriter *w = new_run(db, RNL, RE, RK, 1, err);
    if (!w) { ms_trace_close(db); return -1; }
    MsObserver ob = ms_trace_writer_observer(w);
    static const char *const langs[] = {"en", "de", "fr"};
    static const char *const pieces[] = {"12", " word", ",", " ", "", "\xc3\xa9t\xc3\xa9", "\n", "x7", "!!", "7"};
    uint64_t rs = seed;
    int32_t prev[RNL][RK] = {{0}};
    int rc = 0;
    for (int p = 0; p < RNP && rc >= 0; p++) {
        char labels[200];
        if (p == 7) labels[0] = 0;
        else if (p == 9)
            snprintf(labels, sizeof labels, "{\"language\":\"de\",\"set\":\"b\",\"n\":%d}", p);
        else
            snprintf(labels, sizeof labels, "{\"language\":\"%s\",\"pair_id\":\"%d\",\"set\":\"%s\",\"n\":%d}",
                     langs[p % 3], p / 3, rng_int(&rs, 2) ? "a" : "b", p);
        rc = ms_trace_writer_begin(w, p, "random", 6, labels[0] ? labels : NULL, err);
        int T = 5 + rng_int(&rs, 20);
        int gen = p % 4 == 3 ? 0 : 1 + rng_int(&rs, 4);
        for (int t = 0; t < T && rc >= 0; t++) {
            int pi = rng_int(&rs, (int)MS_ARRAY_LEN(pieces));
            rc = ms_trace_writer_token(w, t, pi * 3 + rng_int(&rs, 3), pieces[pi], strlen(pieces[pi]), t >= T - gen,
                                       NAN, NAN, err);
            for (int l = 1; l < RNL && rc >= 0; l++) {
                int k = rng_int(&rs, 6) == 0 ? 1 + rng_int(&rs, RK) : RK;
                int32_t ex[RK], am[RK];
                float wt[RK], mx[RK], l2[RK], pr[RE], lg[RE];
                int n = 0;
                while (n < k) {
                    int e = t > 0 && rng_int(&rs, 3) ? prev[l][rng_int(&rs, RK)]
                                                     : (int)(RE * pow(rng_unit(&rs), 2.0));
                    e = e < 0 ? 0 : e >= RE ? RE - 1 : e;
                    bool dup = false;
                    for (int j = 0; j < n; j++) dup |= ex[j] == e;
                    if (dup) e = rng_int(&rs, RE);
                    dup = false;
                    for (int j = 0; j < n; j++) dup |= ex[j] == e;
                    if (dup) continue;
                    ex[n++] = e;
                }
                for (int j = 0; j < RK; j++) prev[l][j] = ex[j < k ? j : 0];
                double z = 0;
                for (int e = 0; e < RE; e++) {
                    lg[e] = (float)(3.0 * rng_unit(&rs) - 1.5 + (e < 3 ? 1.0 : 0.0));
                    z += exp(lg[e]);
                }
                for (int e = 0; e < RE; e++) pr[e] = (float)(exp(lg[e]) / z);
                for (int j = 0; j < k; j++) {
                    wt[j] = (float)rng_unit(&rs);
                    mx[j] = (float)(0.5 + 1.5 * rng_unit(&rs));
                    if (l == 1 && ex[j] == 5 && rng_int(&rs, 9) == 0) mx[j] = 300.0f + (float)p;
                    if (l == 4 && rng_int(&rs, 50) == 0) mx[j] = 900.0f;
                    l2[j] = 2 * mx[j];
                    am[j] = rng_int(&rs, 64);
                }
                int32_t pos = t;
                MsRoutingEvent ev = {l, 1, &pos, RE, k, ex, wt, pr, lg, mx, l2, am, NULL};
                ob.on_routing(ob.user, &ev);
            }
            for (int l = 0; l < RNL && rc >= 0; l++) {
                int32_t pos = t, am = rng_int(&rs, 64);
                float hm = (float)(1.0 + rng_unit(&rs)) * (l == 2 && rng_int(&rs, 30) == 0 ? 100.0f : 1.0f);
                MsHiddenEvent hv = {l, 1, &pos, &hm, &am};
                ob.on_hidden(ob.user, &hv);
            }
        }
        if (rc >= 0) rc = ms_trace_writer_commit(w, NULL, err);
    }
    ms_trace_writer_free(w);
    ms_trace_close(db);
    return rc;
}

/* ---------------------------------------------------------- table dumps */

typedef struct { char **v; int n, cap; } StrList;

static int collect(void *user, int n, const char *const *names, const char *const *values)
{
    (void)names;
    StrList *l = user;
    for (int i = 0; i < n; i++) {
        if (l->n == l->cap) {
            l->cap = l->cap ? l->cap * 2 : 16;
            l->v = realloc(l->v, sizeof *l->v * (size_t)l->cap);
        }
        l->v[l->n++] = strdup(values[i] ? values[i] : "NULL");
    }
    return 0;
}

static void strlist_free(StrList *l)
{
    for (int i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

static int append_row(void *user, int n, const char *const *names, const char *const *values)
{
    (void)names;
    Buf *b = user;
    for (int i = 0; i < n; i++) {
        buf_str(b, i ? "|" : "  ");
        buf_str(b, values[i] ? values[i] : "NULL");
    }
    buf_str(b, "\n");
    return 0;
}

/* One result table: declared columns, then every row (typeof:quote). */
static void dump_table(MsTraceDb *db, const char *table, Buf *out)
{
    MsError err = {0};
    char sql[512];
    StrList cols = {0};
    snprintf(sql, sizeof sql, "SELECT name, type FROM pragma_table_info('%s') ORDER BY cid", table);
    if (ms_trace_query(db, sql, collect, &cols, &err) < 0) {
        buf_printf(out, "table %s: %s\n", table, err.msg);
        return;
    }
    buf_printf(out, "table %s (", table);
    for (int i = 0; i + 1 < cols.n; i += 2) buf_printf(out, "%s%s %s", i ? ", " : "", cols.v[i], cols.v[i + 1]);
    buf_str(out, ")\n");
    Buf q = {0};
    buf_str(&q, "SELECT ");
    for (int i = 0; i + 1 < cols.n; i += 2)
        buf_printf(&q, "%stypeof(\"%s\")||':'||quote(\"%s\")", i ? ", " : "", cols.v[i], cols.v[i]);
    buf_printf(&q, " FROM \"%s\" ORDER BY rowid", table);
    if (ms_trace_query(db, q.s, append_row, out, &err) < 0) buf_printf(out, "  error: %s\n", err.msg);
    free(q.s);
    strlist_free(&cols);
}

/* The registry rows of one analysis (every one when name is NULL) and the
 * tables they name, in registration order. */
static void dump_registered(MsTraceDb *db, const char *name, Buf *out)
{
    MsError err = {0};
    char sql[512];
    StrList reg = {0};
    snprintf(sql, sizeof sql,
             "SELECT run_id, name, table_name, coalesce(params, 'NULL'), program_version FROM analysis%s%s%s "
             "ORDER BY analysis_id", name ? " WHERE name = '" : "", name ? name : "", name ? "'" : "");
    if (ms_trace_query(db, sql, collect, &reg, &err) < 0) {
        buf_printf(out, "registry: %s\n", err.msg);
        return;
    }
    for (int i = 0; i + 4 < reg.n; i += 5) {
        buf_printf(out, "registered run %s analysis %s table %s params %s version %s\n", reg.v[i], reg.v[i + 1],
                   reg.v[i + 2], reg.v[i + 3], reg.v[i + 4]);
        dump_table(db, reg.v[i + 2], out);
    }
    strlist_free(&reg);
}

/* Copy the pristine trace (no result tables yet) over the work copy, so
 * every case starts clean. */
static int copy_file(const char *from, const char *to)
{
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    char chunk[65536];
    size_t n;
    int ok = a && b;
    while (ok && (n = fread(chunk, 1, sizeof chunk, a)) > 0) ok = fwrite(chunk, 1, n, b) == n;
    if (a) fclose(a);
    if (b) ok &= fclose(b) == 0;
    return ok ? 0 : -1;
}


/* ------------------------------------------------ floating-point tolerance */

static bool exact_mode(void)
{
    const char *e = getenv("MS_GOLDEN_EXACT");
    return e && !strcmp(e, "1");
}

/* Two reals printed by builds that may contract differently. */
static bool reals_close(double a, double b, bool ill_conditioned)
{
    if (a == b) return true;
    double d = fabs(a - b), m = fmax(fabs(a), fabs(b));
    return d <= 1e-12 * m || (ill_conditioned && d <= 1e-6);
}

/* Length of a number at p ([-]digits[.digits][e[+-]digits]), 0 if none. */
static size_t num_len(const char *p, const char *end, bool *real)
{
    const char *q = p;
    *real = false;
    if (q < end && *q == '-') q++;
    if (q >= end || *q < '0' || *q > '9') return 0;
    while (q < end && *q >= '0' && *q <= '9') q++;
    if (q + 1 < end && *q == '.' && q[1] >= '0' && q[1] <= '9') {
        *real = true;
        for (q++; q < end && *q >= '0' && *q <= '9'; q++) {}
    }
    if (q + 1 < end && (*q == 'e' || *q == 'E')) {
        const char *r = q + 1;
        if (r < end && (*r == '+' || *r == '-')) r++;
        if (r < end && *r >= '0' && *r <= '9') {
            *real = true;
            for (q = r; q < end && *q >= '0' && *q <= '9'; q++) {}
        }
    }
    return (size_t)(q - p);
}

/* Same text but for reals within the tolerance; counts those in *moved. */
static bool same_but_reals(const char *a, size_t na, const char *b, size_t nb, int *moved)
{
    const char *ea = a + na, *eb = b + nb, *a0 = a;
    *moved = 0;
    while (a < ea && b < eb) {
        bool ra, rb;
        /* a number starts where the previous char is not part of a word */
        bool start = a == a0 || !((a[-1] >= 'a' && a[-1] <= 'z') || (a[-1] >= 'A' && a[-1] <= 'Z') ||
                                  (a[-1] >= '0' && a[-1] <= '9') || a[-1] == '_' || a[-1] == '.');
        size_t la = start ? num_len(a, ea, &ra) : 0, lb = start ? num_len(b, eb, &rb) : 0;
        if (la && lb && (ra || rb)) {
            if (la != lb || memcmp(a, b, la)) {
                bool ill = a - a0 >= 20 && !memcmp(a - 20, "\"token_entropy_std\":", 20);
                if (!reals_close(strtod(a, NULL), strtod(b, NULL), ill)) return false;
                ++*moved;
            }
            a += la;
            b += lb;
            continue;
        }
        if (*a != *b) return false;
        a++;
        b++;
    }
    return a == ea && b == eb;
}

/* ------------------------------------- typed results vs recorded documents */

/* Every field of a typed result against the document the old code printed
 * for the same case (read from the golden file, not made by the new JSON
 * code): counts mismatches, names the first few. */
static int t_bad;
static const char *t_case;

static void t_fail(const char *what)
{
    if (t_bad++ < 5) mt_diag("case %s: typed %s differs from the recorded document", t_case, what);
}
static void eq_i(const json_t *j, int64_t v, const char *what)
{
    if (!json_is_integer(j) || json_integer_value(j) != v) t_fail(what);
}
static void eq_r(const json_t *j, double v, const char *what)
{
    bool ok = isfinite(v) ? json_is_number(j) && (exact_mode() ? json_number_value(j) == v
                                                               : reals_close(json_number_value(j), v,
                                                                             !strcmp(what, "token_entropy_std")))
                          : json_is_null(j);
    if (!ok) t_fail(what);
}
static void eq_s(const json_t *j, const char *v, const char *what)
{
    if (!json_is_string(j) || !v || strcmp(json_string_value(j), v)) t_fail(what);
}
static void eq_ra(const json_t *a, const double *v, int n, const char *what)
{
    if (json_array_size(a) != (size_t)n) { t_fail(what); return; }
    for (int i = 0; i < n; i++) eq_r(json_array_get(a, i), v[i], what);
}
static void eq_ia(const json_t *a, const int64_t *v, int n, const char *what)
{
    if (json_array_size(a) != (size_t)n) { t_fail(what); return; }
    for (int i = 0; i < n; i++) eq_i(json_array_get(a, i), v[i], what);
}
static void eq_ints(const json_t *a, const int *v, int n, const char *what)
{
    if (json_array_size(a) != (size_t)n) { t_fail(what); return; }
    for (int i = 0; i < n; i++) eq_i(json_array_get(a, i), v[i], what);
}
static void eq_mat(const json_t *m, const double *v, int E, const char *what)
{
    if (json_array_size(m) != (size_t)E) { t_fail(what); return; }
    for (int i = 0; i < E; i++) eq_ra(json_array_get(m, i), v + (size_t)i * E, E, what);
}
#define G(o, k) json_object_get(o, k)

static void typed_load(const MsLoadResult *r, const json_t *d)
{
    const json_t *ls = G(d, "layers");
    int E = r->head.n_expert;
    if (json_array_size(ls) != (size_t)r->n_layers) { t_fail("load layers"); return; }
    for (int i = 0; i < r->n_layers; i++) {
        const MsLoadLayer *l = &r->layers[i];
        const json_t *j = json_array_get(ls, i);
        eq_i(G(j, "layer"), l->layer, "layer");
        eq_ia(G(j, "counts"), l->counts, E, "counts");
        eq_ra(G(j, "share"), l->share, E, "share");
        eq_ra(G(j, "coverage"), l->coverage, E, "coverage");
        eq_r(G(j, "entropy"), l->entropy, "entropy");
        eq_r(G(j, "entropy_norm"), l->entropy_norm, "entropy_norm");
        eq_r(G(j, "exp_entropy"), l->exp_entropy, "exp_entropy");
        eq_r(G(j, "kl_uniform"), l->kl_uniform, "kl_uniform");
        eq_r(G(j, "gini"), l->gini, "gini");
        eq_r(G(j, "cv"), l->cv, "cv");
        eq_r(G(j, "max_over_mean"), l->max_over_mean, "max_over_mean");
        eq_r(G(j, "maxvio"), l->maxvio, "maxvio");
        eq_i(G(j, "n_tokens"), l->n_tokens, "n_tokens");
        eq_i(G(j, "n_selections"), l->n_selections, "n_selections");
        eq_ints(G(j, "dead"), l->dead, l->n_dead, "dead");
        eq_ints(G(j, "cold"), l->cold, l->n_cold, "cold");
        eq_r(G(j, "jaccard_adjacent"), l->jaccard_adjacent, "jaccard_adjacent");
        if ((l->n_prob_tokens > 0) != (G(j, "pbar") != NULL)) t_fail("probability fields");
        if (l->n_prob_tokens > 0) {
            eq_r(G(j, "token_entropy_mean"), l->token_entropy_mean, "token_entropy_mean");
            eq_r(G(j, "token_entropy_std"), l->token_entropy_std, "token_entropy_std");
            eq_r(G(j, "top1_margin_mean"), l->top1_margin_mean, "top1_margin_mean");
            eq_ra(G(j, "pbar"), l->pbar, E, "pbar");
            eq_ra(G(j, "importance"), l->importance, E, "importance");
            eq_r(G(j, "importance_cv2"), l->importance_cv2, "importance_cv2");
            eq_r(G(j, "laux"), l->laux, "laux");
        }
    }
}

static void typed_coact(const MsCoactivationResult *r, const json_t *d)
{
    const json_t *ls = G(d, "layers");
    int E = r->head.n_expert;
    if (json_array_size(ls) != (size_t)r->n_layers) { t_fail("coactivation layers"); return; }
    double *Nd = malloc(sizeof *Nd * (size_t)E * E);
    for (int i = 0; i < r->n_layers; i++) {
        const MsCoactLayer *l = &r->layers[i];
        const json_t *j = json_array_get(ls, i);
        for (int x = 0; x < E * E; x++) Nd[x] = (double)l->N[x];
        eq_i(G(j, "layer"), l->layer, "layer");
        eq_i(G(j, "n_tokens"), l->n_tokens, "n_tokens");
        eq_mat(G(j, "N"), Nd, E, "N");
        eq_mat(G(j, "coact"), l->coact, E, "coact");
        eq_mat(G(j, "jaccard"), l->jaccard, E, "jaccard");
        eq_mat(G(j, "lift"), l->lift, E, "lift");
    }
    free(Nd);
}

static void typed_affinity(const MsAffinityResult *r, const json_t *d)
{
    const json_t *ps = G(d, "pairs");
    int E = r->head.n_expert;
    if (json_array_size(ps) != (size_t)r->n_pairs) { t_fail("affinity pairs"); return; }
    for (int i = 0; i < r->n_pairs; i++) {
        const MsAffPair *p = &r->pairs[i];
        const json_t *j = json_array_get(ps, i);
        eq_i(G(j, "from"), p->from, "from");
        eq_i(G(j, "to"), p->to, "to");
        eq_mat(G(j, "C"), p->C, E, "C");
        eq_mat(G(j, "P"), p->P, E, "P");
        eq_mat(G(j, "Q"), p->Q, E, "Q");
        eq_mat(G(j, "lift"), p->lift, E, "lift");
        eq_ra(G(j, "n"), p->n, E, "n");
        eq_r(G(j, "concentration"), p->concentration, "concentration");
        eq_r(G(j, "concentration_top1"), p->concentration_top1, "concentration_top1");
        eq_r(G(j, "nmi_top1"), p->nmi_top1, "nmi_top1");
        eq_i(G(j, "n_tokens"), p->n_tokens, "n_tokens");
        if (r->variant != MS_AFF_TOPK) {
            const json_t *v = G(j, ms_aff_variant_name(r->variant));
            eq_mat(G(v, "C"), p->var_C, E, "variant C");
            eq_mat(G(v, "Q"), p->var_Q, E, "variant Q");
            eq_r(G(v, "concentration"), p->var_concentration, "variant concentration");
        }
        const json_t *tp = G(j, "top_paths");
        if (json_array_size(tp) != (size_t)p->n_top) { t_fail("top_paths"); continue; }
        for (int t = 0; t < p->n_top; t++) {
            const json_t *x = json_array_get(tp, t);
            eq_i(G(x, "i"), p->top[t].i, "top i");
            eq_i(G(x, "j"), p->top[t].j, "top j");
            eq_r(G(x, "C"), p->top[t].C, "top C");
            eq_r(G(x, "P"), p->top[t].P, "top P");
            eq_r(G(x, "Q"), p->top[t].Q, "top Q");
            eq_r(G(x, "lift"), p->top[t].lift, "top lift");
        }
    }
}

static const json_t *by_key(const json_t *o, int k)
{
    char key[32];
    snprintf(key, sizeof key, "%d", k);
    return json_object_get(o, key);
}

static void typed_consistency(const MsConsistencyResult *r, const json_t *d)
{
    const json_t *ls = G(d, "layers");
    int E = r->head.n_expert;
    if (json_array_size(ls) != (size_t)r->n_layers) { t_fail("consistency layers"); return; }
    for (int i = 0; i < r->n_layers; i++) {
        const MsConsLayer *l = &r->layers[i];
        const json_t *j = json_array_get(ls, i);
        eq_i(G(j, "layer"), l->layer, "layer");
        for (int mi = 0; mi < r->n_m; mi++) {
            eq_r(by_key(G(j, "srp"), r->m[mi]), l->srp[mi], "srp");
            eq_r(by_key(G(j, "rho_hat"), r->m[mi]), l->rho_hat[mi], "rho_hat");
            eq_r(by_key(G(j, "act_r"), r->m[mi]), l->act_r[mi], "act_r");
            for (int ci = 0; ci < r->n_c; ci++)
                eq_r(by_key(by_key(G(j, "sch"), r->m[mi]), r->C[ci]), l->sch[mi * r->n_c + ci], "sch");
            (void)E;
        }
    }
    const json_t *m = G(d, "model");
    if ((m != NULL) != r->has_model) t_fail("model level");
    for (int mi = 0; m && mi < r->n_m; mi++) {
        eq_r(by_key(G(m, "srp"), r->m[mi]), r->model_srp[mi], "model srp");
        eq_r(by_key(G(m, "rho_hat"), r->m[mi]), r->model_rho_hat[mi], "model rho_hat");
        for (int ci = 0; ci < r->n_c; ci++)
            eq_r(by_key(by_key(G(m, "sch"), r->m[mi]), r->C[ci]), r->model_sch[mi * r->n_c + ci], "model sch");
    }
    const json_t *p = G(d, "params");
    eq_ints(G(p, "segments"), r->m, r->n_m, "segments");
    eq_ints(G(p, "cache"), r->C, r->n_c, "cache");
}

static void typed_superexperts(const MsSuperExpertsResult *r, const json_t *d)
{
    const json_t *se = G(d, "super_experts");
    int E = r->head.n_expert;
    if (json_array_size(se) != (size_t)r->n_se) t_fail("super experts");
    for (int i = 0; i < r->n_se && i < (int)json_array_size(se); i++) {
        const json_t *x = json_array_get(se, i);
        const MsSuperExpert *s = &r->se[i];
        eq_i(G(x, "rank"), s->rank, "rank");
        eq_i(G(x, "layer"), s->layer, "se layer");
        eq_i(G(x, "expert"), s->expert, "se expert");
        eq_r(G(x, "value"), s->value, "se value");
        eq_i(G(x, "n_routed"), s->n_routed, "n_routed");
        eq_i(G(x, "prompt"), s->prompt, "se prompt");
        eq_i(G(x, "pos"), s->pos, "se pos");
        if (s->channel >= 0) eq_i(G(x, "channel"), s->channel, "se channel");
        else if (!json_is_null(G(x, "channel"))) t_fail("se channel null");
    }
    eq_r(G(d, "p995"), r->info.p995, "p995");
    eq_r(G(d, "max_div10"), r->info.max_div10, "max_div10");
    eq_r(G(d, "threshold"), r->info.threshold, "threshold");
    eq_r(G(d, "max"), r->info.max, "max");
    eq_i(G(d, "layer_cut"), r->info.layer_cut, "layer_cut");
    eq_i(G(d, "n_candidates"), r->info.n_candidates, "n_candidates");
    const json_t *h = G(d, "experts");
    if (json_array_size(h) != (size_t)r->n_slots) t_fail("heat map rows");
    for (int s = 0; s < r->n_slots && s < (int)json_array_size(h); s++) {
        eq_i(G(json_array_get(h, s), "layer"), r->slot_layer[s], "heat layer");
        eq_ra(G(json_array_get(h, s), "a"), r->a + (size_t)s * E, E, "heat a");
    }
    const json_t *ma = G(d, "massive_activations");
    if (json_array_size(ma) != (size_t)r->n_massive) t_fail("massive activations");
    for (int i = 0; i < r->n_massive && i < (int)json_array_size(ma); i++) {
        const json_t *x = json_array_get(ma, i);
        const MsMassiveAct *m = &r->massive[i];
        eq_i(G(x, "layer"), m->layer, "massive layer");
        eq_r(G(x, "max"), m->max, "massive max");
        eq_r(G(x, "mean_token_max"), m->mean_token_max, "mean_token_max");
        eq_r(G(x, "ratio"), m->ratio, "ratio");
        eq_i(G(x, "prompt"), m->prompt, "massive prompt");
        eq_i(G(x, "pos"), m->pos, "massive pos");
        if (m->channel >= 0) eq_i(G(x, "channel"), m->channel, "massive channel");
    }
}

static void typed_npmi(const MsNpmiResult *r, const json_t *d)
{
    const json_t *rows = G(d, "rows");
    if (json_array_size(rows) != (size_t)r->n_rows) { t_fail("npmi rows"); return; }
    for (int64_t i = 0; i < r->n_rows; i++) {
        const json_t *x = json_array_get(rows, (size_t)i);
        const MsNpmiRow *w = &r->rows[i];
        eq_i(G(x, "layer"), w->layer, "layer");
        eq_i(G(x, "expert"), w->expert, "expert");
        eq_s(G(x, "class"), r->classes[w->cls], "class");
        eq_r(G(x, "npmi"), w->npmi, "npmi");
        eq_i(G(x, "count"), w->count, "count");
        eq_i(G(x, "n_x"), w->n_x, "n_x");
        eq_i(G(x, "n_y"), w->n_y, "n_y");
        eq_i(G(x, "N"), w->N, "N");
    }
    const json_t *plan = G(d, "plan");
    if ((plan != NULL) != (r->plan_class != NULL)) { t_fail("plan"); return; }
    if (!plan) return;
    eq_s(G(plan, "class"), r->plan_class, "plan class");
    const json_t *ex = G(plan, "experts");
    if (json_array_size(ex) != (size_t)r->n_plan) t_fail("plan experts");
    for (int i = 0; i < r->n_plan && i < (int)json_array_size(ex); i++) {
        eq_i(G(json_array_get(ex, i), "layer"), r->plan_experts[i].layer, "plan layer");
        eq_i(G(json_array_get(ex, i), "expert"), r->plan_experts[i].expert, "plan expert");
        eq_r(G(json_array_get(ex, i), "npmi"), r->plan_experts[i].npmi, "plan npmi");
    }
    if (r->plan) eq_s(G(plan, "interventions"), r->plan, "plan text");
}

static void typed_picks(const json_t *a, const MsRdPick *p, int n, const char *what)
{
    if (json_array_size(a) != (size_t)n) { t_fail(what); return; }
    for (int i = 0; i < n; i++) {
        eq_i(G(json_array_get(a, i), "layer"), p[i].layer, what);
        eq_i(G(json_array_get(a, i), "expert"), p[i].expert, what);
        eq_r(G(json_array_get(a, i), "rd"), p[i].rd, what);
    }
}

static void typed_riskdiff(const MsRiskDiffResult *r, const json_t *d)
{
    eq_i(G(d, "n1"), r->n1, "n1");
    eq_i(G(d, "n2"), r->n2, "n2");
    const json_t *rows = G(d, "rows");
    if (json_array_size(rows) != (size_t)r->n_rows) { t_fail("riskdiff rows"); return; }
    for (int i = 0; i < r->n_rows; i++) {
        const json_t *x = json_array_get(rows, i);
        eq_i(G(x, "layer"), r->rows[i].layer, "layer");
        eq_i(G(x, "expert"), r->rows[i].expert, "expert");
        eq_r(G(x, "rd"), r->rows[i].rd, "rd");
        eq_i(G(x, "a1"), r->rows[i].a1, "a1");
        eq_i(G(x, "a2"), r->rows[i].a2, "a2");
    }
    const json_t *sel = G(d, "selection");
    typed_picks(G(sel, "activate"), r->activate, r->n_act, "activate");
    typed_picks(G(sel, "deactivate"), r->deactivate, r->n_deact, "deactivate");
    if (json_is_true(G(sel, "reverse")) != r->reverse) t_fail("reverse");
    if (r->plan) eq_s(G(sel, "interventions"), r->plan, "interventions");
    else if (G(sel, "interventions")) t_fail("interventions absent");
}

static void typed_crosslingual(const MsCrosslingualResult *r, const json_t *d)
{
    const json_t *langs = G(d, "languages");
    if (json_array_size(langs) != (size_t)r->n_languages) { t_fail("languages"); return; }
    for (int j = 0; j < r->n_languages; j++) eq_s(json_array_get(langs, j), r->languages[j], "language");
    eq_s(G(d, "ref"), r->languages[r->ref], "ref");
    const json_t *ls = G(d, "layers");
    if (json_array_size(ls) != (size_t)r->n_layers) { t_fail("crosslingual layers"); return; }
    for (int i = 0; i < r->n_layers; i++) {
        const json_t *x = json_array_get(ls, i);
        eq_i(G(x, "layer"), r->layers[i].layer, "layer");
        for (int j = 0; j < r->n_languages; j++) {
            if (j != r->ref) eq_r(G(G(x, "div"), r->languages[j]), r->layers[i].div[j], "div");
            eq_r(G(G(x, "entropy"), r->languages[j]), r->layers[i].entropy[j], "entropy");
        }
    }
    const json_t *st = G(d, "steer");
    eq_i(json_array_get(G(st, "layers"), 0), r->mid_lo, "middle from");
    eq_i(json_array_get(G(st, "layers"), 1), r->mid_hi, "middle to");
    const json_t *ex = G(st, "experts");
    if (json_array_size(ex) != (size_t)r->n_steer) { t_fail("steer experts"); return; }
    for (int i = 0; i < r->n_steer; i++) {
        eq_i(G(json_array_get(ex, i), "layer"), r->steer[i].layer, "steer layer");
        eq_i(G(json_array_get(ex, i), "expert"), r->steer[i].expert, "steer expert");
        eq_r(G(json_array_get(ex, i), "delta"), r->steer[i].delta, "steer delta");
    }
}

static void typed_pathways(const MsPathwaysResult *r, const json_t *d)
{
    const json_t *sm = G(d, "samples");
    if (json_array_size(sm) != (size_t)r->n_samples) { t_fail("samples"); return; }
    for (int i = 0; i < r->n_samples; i++) {
        const json_t *x = json_array_get(sm, i);
        const MsPathSample *s = &r->samples[i];
        eq_i(G(x, "prompt"), s->prompt, "prompt");
        eq_s(G(x, "pathway"), s->pathway, "pathway");
        eq_i(G(x, "length"), s->length, "length");
        /* the per-layer lists spell the string */
        char buf[4096];
        size_t n = 0;
        for (int l = 0, at = 0; l < r->n_layers; l++) {
            if (l) n += (size_t)snprintf(buf + n, sizeof buf - n, "-");
            for (int e = 0; e < s->lens[l]; e++)
                n += (size_t)snprintf(buf + n, sizeof buf - n, e ? ",%d" : "%d", s->experts[at++]);
        }
        if (strcmp(buf, s->pathway)) t_fail("pathway lists");
    }
    eq_r(G(d, "mean_distance"), r->mean_distance, "mean_distance");
    eq_i(G(d, "n_pairs"), r->n_pairs, "n_pairs");
    const json_t *ls = G(d, "layers");
    if (json_array_size(ls) != (size_t)r->n_layers) { t_fail("pathway layers"); return; }
    for (int i = 0; i < r->n_layers; i++) {
        eq_i(G(json_array_get(ls, i), "layer"), r->layers[i], "layer");
        eq_r(G(json_array_get(ls, i), "mean_distance"), r->layer_mean_distance[i], "layer mean_distance");
    }
}

/* The recorded document of a case: the "doc: " line after its header. */
static json_t *recorded_doc(const char *golden, const char *label)
{
    if (!golden) return NULL;
    char head[128];
    snprintf(head, sizeof head, "=== case %s (", label);
    const char *p = strstr(golden, head);
    if (!p) return NULL;
    p = strchr(p, '\n');
    if (!p || strncmp(p + 1, "doc: ", 5)) return NULL;
    p += 6;
    const char *e = strchr(p, '\n');
    return e ? json_loadb(p, (size_t)(e - p), 0, NULL) : NULL;
}

/* 1 = equal, 0 = differs, −1 = nothing recorded to compare with. */
static int typed_check(const MsAnResult *res, const json_t *doc, const char *label)
{
    if (!doc) return -1;
    t_bad = 0;
    t_case = label;
    const MsAnHead *h = ms_an_result_head(res);
    eq_i(G(doc, "run"), h->run_id, "run");
    switch (res->module) {
    case MS_AN_LOAD: typed_load(res->load, doc); break;
    case MS_AN_COACTIVATION: typed_coact(res->coactivation, doc); break;
    case MS_AN_AFFINITY: typed_affinity(res->affinity, doc); break;
    case MS_AN_CONSISTENCY: typed_consistency(res->consistency, doc); break;
    case MS_AN_SUPEREXPERTS: typed_superexperts(res->superexperts, doc); break;
    case MS_AN_NPMI: typed_npmi(res->npmi, doc); break;
    case MS_AN_RISKDIFF: typed_riskdiff(res->riskdiff, doc); break;
    case MS_AN_CROSSLINGUAL: typed_crosslingual(res->crosslingual, doc); break;
    case MS_AN_PATHWAYS: typed_pathways(res->pathways, doc); break;
    default: t_fail("module"); break;
    }
    return t_bad == 0;
}

static char *slurp(const char *path, size_t *len);

/* -------------------------------------------------------- API adapters */

/* The module's document, display rows and plan, as the command prints them. */
static int api_module(MsTraceDb *db, const char *name, const MsAnOptions *o, Buf *out, const char *golden,
                      const char *label, int *typed_ok, int *typed_n)
{
    MsError err = {0};
    MsAnResult res;
    int rc = ms_analyze(db, name, o, &res, &err);
    if (rc < 0) {
        buf_printf(out, "error %d: %s\n", rc, err.msg);
        return rc;
    }
    json_t *rec = recorded_doc(golden, label);
    int t = typed_check(&res, rec, label);
    json_decref(rec);
    if (t >= 0) {
        (*typed_n)++;
        *typed_ok += t;
    }
    json_t *doc = ms_an_result_json(&res), *rows = ms_an_rows_json(&res);
    const char *plan = ms_an_result_plan(&res);
    buf_str(out, "doc: ");
    buf_json(out, doc);
    buf_str(out, "rows: ");
    buf_json(out, rows);
    buf_printf(out, "plan: %s\n", plan ? plan : "(none)");
    json_decref(doc);
    json_decref(rows);
    ms_an_result_clear(&res);
    return 0;
}

/* analyze all without its timings (wall/cpu differ run to run). */
static int api_all(MsTraceDb *db, const MsAnOptions *o, Buf *out)
{
    MsError err = {0};
    MsAnAll an;
    int rc = ms_analyze_all(db, o, &an, &err);
    if (rc < 0) {
        buf_printf(out, "error %d: %s\n", rc, err.msg);
        return rc;
    }
    json_t *all = ms_an_all_json(&an);
    ms_an_all_clear(&an);
    json_t *tm = json_object_get(all, "timing");
    const char *k;
    json_t *v;
    buf_str(out, "timing keys:");
    json_object_foreach(tm, k, v) buf_printf(out, " %s", k);
    buf_str(out, "\n");
    json_object_del(all, "timing");
    buf_str(out, "all: ");
    buf_json(out, all);
    json_decref(all);
    return 0;
}

/* --------------------------------------------------------------- cases */

typedef struct {
    const char *label;
    const char *module;   /* "all" = analyze all */
    void (*setup)(MsAnOptions *o);
} Case;

static void o_default(MsAnOptions *o) { (void)o; }
static void o_layer2(MsAnOptions *o) { o->layer = 2; }
static void o_role_prompt(MsAnOptions *o) { o->role = "prompt"; }
static void o_role_gen(MsAnOptions *o) { o->role = "generated"; }
static void o_aff_top1(MsAnOptions *o) { o->variant = "top1"; o->distance = 2; }
static void o_aff_weighted(MsAnOptions *o) { o->variant = "weighted"; o->top = 3; o->role = "prompt"; }
static void o_cons_small(MsAnOptions *o)
{
    o->cold = true;
    o->segments[0] = 2; o->segments[1] = 5; o->segments[2] = 3; o->n_segments = 3;
    o->cache[0] = 1; o->cache[1] = 3; o->cache[2] = 8; o->n_cache = 3;
}
static void o_cons_layer(MsAnOptions *o) { o_cons_small(o); o->layer = 3; o->cold = false; }
static void o_se_rule(MsAnOptions *o) { o->se_rule = MS_SE_MEAN3SD; o->include_frac = 1.0; }
static void o_se_p995(MsAnOptions *o) { o->se_rule = MS_SE_P995; o->include_frac = 0.5; }
static void o_npmi_plan(MsAnOptions *o) { o->plan_class = "digit"; o->top = 1; o->beta = 4; }
static void o_npmi_label(MsAnOptions *o) { o->by = "label:language"; o->plan_class = "de"; o->top = 3; }
static void o_npmi_token(MsAnOptions *o) { o->by = "token"; o->max_classes = 2; o->min_support = 2; }
static void o_npmi_pos(MsAnOptions *o) { o->by = "pos:4"; o->min_support = 1; o->role = "all"; }
static void o_npmi_word(MsAnOptions *o) { o->plan_class = "word"; o->top = 4; o->min_support = 1; }
static void o_rd(MsAnOptions *o) { o->label = "set"; o->set1 = "a"; o->set2 = "b"; o->n_pos = 2; o->n_neg = 1; }
static void o_rd_rev(MsAnOptions *o) { o_rd(o); o->reverse = true; o->n_pos = 3; o->n_neg = 4; o->role = "all"; }
static void o_rd_noplan(MsAnOptions *o) { o_rd(o); o->n_pos = 0; o->n_neg = 0; o->layer = 3; }
static void o_cl_hard(MsAnOptions *o) { o->cl_hard = true; o->mid_lo = 1; o->mid_hi = 3; o->tau = 0.1; }
static void o_cl_soft(MsAnOptions *o) { o->tau = 0.05; o->cl_lambda = -1.25; o->ref_lang = "de"; }
static void o_cl_sparse(MsAnOptions *o) { o->sparse_weights = true; o->tau = 0.02; o->layer = 2; }
static void o_path_tok(MsAnOptions *o) { o->token_level = true; o->n_pairs = 5; o->seed = 3; }
static void o_path_sparse(MsAnOptions *o) { o->sparse_weights = true; o->path_tau = 0.5; o->layer = 4; }
static void o_all(MsAnOptions *o) { o_rd(o); }
static void o_all_nowrite(MsAnOptions *o) { o_all(o); o->write = false; o->sparse_weights = true; }

static const Case cases[] = {
    {"load", "load", o_default},
    {"load-layer2", "load", o_layer2},
    {"load-prompt", "load", o_role_prompt},
    {"coactivation", "coactivation", o_default},
    {"coactivation-gen", "coactivation", o_role_gen},
    {"affinity", "affinity", o_default},
    {"affinity-top1-d2", "affinity", o_aff_top1},
    {"affinity-weighted", "affinity", o_aff_weighted},
    {"consistency", "consistency", o_default},
    {"consistency-cold", "consistency", o_cons_small},
    {"consistency-layer3", "consistency", o_cons_layer},
    {"superexperts", "superexperts", o_default},
    {"superexperts-mean3sd", "superexperts", o_se_rule},
    {"superexperts-p995", "superexperts", o_se_p995},
    {"npmi", "npmi", o_default},
    {"npmi-plan-beta", "npmi", o_npmi_plan},
    {"npmi-label", "npmi", o_npmi_label},
    {"npmi-token", "npmi", o_npmi_token},
    {"npmi-pos", "npmi", o_npmi_pos},
    {"npmi-word", "npmi", o_npmi_word},
    {"riskdiff", "riskdiff", o_rd},
    {"riskdiff-reverse", "riskdiff", o_rd_rev},
    {"riskdiff-noplan", "riskdiff", o_rd_noplan},
    {"crosslingual", "crosslingual", o_default},
    {"crosslingual-hard", "crosslingual", o_cl_hard},
    {"crosslingual-soft", "crosslingual", o_cl_soft},
    {"crosslingual-sparse", "crosslingual", o_cl_sparse},
    {"pathways", "pathways", o_default},
    {"pathways-token", "pathways", o_path_tok},
    {"pathways-sparse", "pathways", o_path_sparse},
    {"all", "all", o_all},
    {"all-nowrite", "all", o_all_nowrite},
};

static void run_cases(const char *pristine, const char *work, const char *golden_name, Buf *out)
{
    char *golden = NULL;
    if (!getenv("MS_GOLDEN_RECORD")) {
        const char *src = getenv("MS_SOURCE_DIR");
        char path[1024];
        size_t n;
        snprintf(path, sizeof path, "%s/tests/golden/%s", src ? src : ".", golden_name);
        golden = slurp(path, &n);
    }
    int typed_ok = 0, typed_n = 0, n_api = 0;
    for (size_t c = 0; c < MS_ARRAY_LEN(cases); c++) {
        MsError err = {0};
        if (copy_file(pristine, work) < 0) { buf_printf(out, "copy %s failed\n", pristine); return; }
        MsTraceDb *db = ms_trace_open(work, MS_TRACE_WRITE, &err);
        if (!db) { buf_printf(out, "open: %s\n", err.msg); return; }
        MsAnOptions o;
        ms_an_options_default(&o);
        cases[c].setup(&o);
        buf_printf(out, "=== case %s (%s)\n", cases[c].label, cases[c].module);
        bool all = !strcmp(cases[c].module, "all");
        int rc = all ? api_all(db, &o, out)
                     : api_module(db, cases[c].module, &o, out, golden, cases[c].label, &typed_ok, &typed_n);
        n_api += !all && rc >= 0;
        if (rc >= 0) dump_registered(db, NULL, out);
        ms_trace_close(db);
    }
    if (golden)
        MT_CHECK(typed_n == n_api && typed_ok == typed_n && typed_n > 20,
                 "%s: every typed result equals the recorded document field by field (%d of %d cases)",
                 golden_name, typed_ok, typed_n);
    free(golden);
}

/* `moescope analyze ...` in-process with stdout captured into out. */
static void run_cli(char **argv, int argc, const char *tmp, Buf *out)
{
    char path[600];
    snprintf(path, sizeof path, "%s/cli.out", tmp);
    fflush(stdout);
    int saved = dup(STDOUT_FILENO), fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (saved < 0 || fd < 0) { perror("capture"); exit(99); }
    dup2(fd, STDOUT_FILENO);
    close(fd);
    int rc = ms_cmd_analyze(argc, argv);
    fflush(stdout);
    dup2(saved, STDOUT_FILENO);
    close(saved);
    buf_str(out, "$ moescope");
    for (int i = 0; i < argc; i++) buf_printf(out, " %s", strstr(argv[i], ".db") ? "DB" : argv[i]);
    buf_printf(out, "\nexit %d\n", rc);
    FILE *f = fopen(path, "r");
    char chunk[4096];
    size_t n;
    Buf text = {0};
    while (f && (n = fread(chunk, 1, sizeof chunk, f)) > 0) buf_put(&text, chunk, n);
    if (f) fclose(f);
    if (!text.s) buf_str(&text, "");
    if (!strcmp(argv[1], "all")) {
        /* times differ run to run: keep the JSON without "timing", and of
         * the table the module names and notes */
        if (!strcmp(argv[argc - 1], "json")) {
            json_t *j = json_loads(text.s, 0, NULL);
            json_object_del(j, "timing");
            buf_json(out, j);
            json_decref(j);
        } else {
            /* every number becomes T, runs of blanks one blank */
            bool blank = false;
            for (const char *p = text.s; *p; p++) {
                if (*p >= '0' && *p <= '9') {
                    while (p[1] && strchr("0123456789.eE+-", p[1])) p++;
                    buf_str(out, "T");
                    blank = false;
                } else if (*p == ' ') {
                    if (!blank) buf_str(out, " ");
                    blank = true;
                } else {
                    buf_put(out, p, 1);
                    blank = false;
                }
            }
        }
    } else {
        buf_str(out, text.s);
    }
    free(text.s);
}

static void run_cli_cases(const char *path, const char *tmp, Buf *out)
{
    const char *const *mods = ms_analyze_modules();
    const char *fmts[] = {"json", "table", "csv"};
    for (int m = 0; mods[m]; m++)
        for (int f = 0; f < 3; f++) {
            char *argv[16];
            int argc = 0;
            argv[argc++] = "analyze";
            argv[argc++] = (char *)mods[m];
            argv[argc++] = "--db";
            argv[argc++] = (char *)path;
            argv[argc++] = "--no-write";
            if (!strcmp(mods[m], "riskdiff")) {
                argv[argc++] = "--label"; argv[argc++] = "set";
                argv[argc++] = "--set1"; argv[argc++] = "a";
                argv[argc++] = "--set2"; argv[argc++] = "b";
            }
            if (!strcmp(mods[m], "npmi")) { argv[argc++] = "--plan"; argv[argc++] = "word"; }
            argv[argc++] = "--format";
            argv[argc++] = (char *)fmts[f];
            run_cli(argv, argc, tmp, out);
        }
    for (int f = 0; f < 3; f++) {
        char *argv[] = {"analyze", "all", "--db", (char *)path, "--no-write", "--label", "set", "--set1", "a",
                        "--set2", "b", "--format", (char *)fmts[f]};
        run_cli(argv, (int)MS_ARRAY_LEN(argv), tmp, out);
        /* without --label: riskdiff is skipped with its reason */
        char *argv2[] = {"analyze", "all", "--db", (char *)path, "--no-write", "--ref", "fr", "--format",
                         (char *)fmts[f]};
        run_cli(argv2, (int)MS_ARRAY_LEN(argv2), tmp, out);
    }
}

/* ---------------------------------------------------------- comparison */

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    Buf b = {0};
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) buf_put(&b, chunk, n);
    fclose(f);
    *len = b.n;
    return b.s ? b.s : strdup("");
}

static void check_golden(const char *name, const Buf *got)
{
    const char *rec = getenv("MS_GOLDEN_RECORD");
    char path[1024];
    if (rec && *rec) {
        snprintf(path, sizeof path, "%s/%s", rec, name);
        FILE *f = fopen(path, "wb");
        int ok = f && fwrite(got->s, 1, got->n, f) == got->n;
        if (f) ok &= fclose(f) == 0;
        MT_CHECK(ok, "%s recorded (%zu bytes)", path, got->n);
        return;
    }
    const char *src = getenv("MS_SOURCE_DIR");
    snprintf(path, sizeof path, "%s/tests/golden/%s", src ? src : ".", name);
    size_t n = 0;
    char *want = slurp(path, &n);
    if (!MT_CHECK(want != NULL, "%s: golden file readable", name)) return;
    bool same = n == got->n && !memcmp(want, got->s, n);
    int moved = 0;
    if (!same && !exact_mode() && same_but_reals(want, n, got->s, got->n, &moved)) {
        mt_diag("%s: not the same bytes: %d reals moved in their last bits (this build contracts "
                "floating point differently from the recording's)", name, moved);
        MT_CHECK(true, "%s: equal to the golden output but for %d reals within tolerance", name, moved);
        free(want);
        return;
    }
    if (!same) {
        /* name the first case and line that differ */
        size_t i = 0, line = 1, case_at = 0;
        while (i < n && i < got->n && want[i] == got->s[i]) {
            if (want[i] == '\n') {
                line++;
                if (!strncmp(want + i + 1, "===", 3) || !strncmp(want + i + 1, "$ ", 2)) case_at = i + 1;
            }
            i++;
        }
        const char *e = strchr(want + case_at, '\n');
        mt_diag("%s: first difference at line %zu (byte %zu), in: %.*s", name, line, i,
                (int)(e ? e - (want + case_at) : 60), want + case_at);
        size_t ls = i;
        while (ls > 0 && want[ls - 1] != '\n') ls--;
        mt_diag("want: %.200s", want + ls);
        mt_diag("got:  %.200s", got->s + ls);
    }
    MT_CHECK(same, "%s: identical to the golden output (%zu bytes)", name, got->n);
    free(want);
}

int main(void)
{
    const char *dir = mt_tmpdir();
    char pp[600], pr[600];
    snprintf(pp, sizeof pp, "%s/planted.db", dir);
    snprintf(pr, sizeof pr, "%s/random.db", dir);
    MsError err = {0};
    if (!MT_CHECK(make_planted(pp, &err) >= 0, "planted trace written (%s)", err.msg)) return mt_done();
    if (!MT_CHECK(make_random(pr, 0x5eed2024u, &err) >= 0, "random trace written (%s)", err.msg)) return mt_done();

    char work[600];
    snprintf(work, sizeof work, "%s/work.db", dir);
    Buf a = {0}, b = {0}, c = {0}, d = {0};
    run_cases(pp, work, "analysis-planted.txt", &a);
    check_golden("analysis-planted.txt", &a);
    run_cases(pr, work, "analysis-random.txt", &b);
    check_golden("analysis-random.txt", &b);
    run_cli_cases(pp, dir, &c);
    check_golden("analysis-cli-planted.txt", &c);
    run_cli_cases(pr, dir, &d);
    check_golden("analysis-cli-random.txt", &d);
    free(a.s); free(b.s); free(c.s); free(d.s);
    return mt_done();
}
