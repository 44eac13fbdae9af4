/* test-analysis-typed.c — the analyses as library calls for a viewer:
 *  - the typed entry points (ms_analyze_load …) give what ms_analyze gives;
 *  - progress reports arrive on the calling thread, in order, and end at
 *    the total (each module, and analyze all);
 *  - a cancel from another thread mid-way returns MS_ECANCELLED within a
 *    second and leaves every result table, the `analysis` registry and the
 *    plan file exactly as they were (each module, analyze all during the
 *    decode and during the modules);
 *  - stored results read back through db/trace.h without SQL (registry and
 *    typed rows, NULL distinct, blobs, run filter, errors) equal the typed
 *    results' tables cell for cell. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

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
static double rng_unit(uint64_t *s) { return (double)(rng_next(s) >> 11) * 0x1p-53; }

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* A busy trace: 7 blocks (0 dense), E = 16, k = 4, NP prompts of T tokens
 * (the last 4 generated), probabilities and stats, en/de pairs, sets a/b. */
enum { NL = 7, E = 16, K = 4, NP = 160, T = 96 };

static int make_db(const char *path, MsError *err)
{
    MsTraceDb *db = ms_trace_open(path, MS_TRACE_CREATE, err);
    if (!db) return -1;
    MsTraceModel m;
    memset(&m, 0, sizeof m);
    snprintf(m.file_name, sizeof m.file_name, "busy.gguf");
    snprintf(m.arch, sizeof m.arch, "test");
    snprintf(m.score_func, sizeof m.score_func, "softmax");
    m.n_layer = NL;
    m.n_expert = E;
    m.n_expert_used = K;
    m.w_scale = 1;
    m.n_vocab = 64;
    for (int l = 1; l < NL; l++) m.is_moe[l] = 1;
    m.n_moe_layers = NL - 1;
    int64_t mid = ms_trace_model_add(db, &m, err);
    MsTraceRunDesc d = {.model_id = mid, .kind = "trace", .has_probs = true, .has_stats = true};
    int64_t rid = mid > 0 ? ms_trace_run_new(db, &d, err) : -1;
    MsTraceWriter *w = rid > 0 ? ms_trace_writer_new(db, rid, err) : NULL;
    if (!w) { ms_trace_close(db); return -1; }
    MsObserver ob = ms_trace_writer_observer(w);
    uint64_t rs = 77;
    static const char *const pieces[] = {" the", "4", ",", " ", "x", "\xc3\xa9"};
    int rc = 0;
    static int32_t pos[T], ex[T * K], am[T * K], hch[T];
    static float wt[T * K], pr[T * E], lg[T * E], mx[T * K], l2[T * K], hm[T];
    for (int p = 0; p < NP && rc >= 0; p++) {
        char labels[128];
        snprintf(labels, sizeof labels, "{\"language\":\"%s\",\"pair_id\":\"%d\",\"set\":\"%s\"}", p % 2 ? "de" : "en",
                 p / 2, p % 3 ? "a" : "b");
        rc = ms_trace_writer_begin(w, p, "busy", 4, labels, err);
        for (int t = 0; t < T && rc >= 0; t++) {
            int pi = rng_int(&rs, 6);
            rc = ms_trace_writer_token(w, t, pi, pieces[pi], strlen(pieces[pi]), t >= T - 4, NAN, NAN, err);
        }
        for (int l = 1; l < NL && rc >= 0; l++) {
            for (int t = 0; t < T; t++) {
                pos[t] = t;
                int n = 0;
                while (n < K) {
                    int e = (int)(E * pow(rng_unit(&rs), 1.5 + (p % 2)));
                    bool dup = false;
                    for (int j = 0; j < n; j++) dup |= ex[t * K + j] == e;
                    if (!dup) ex[t * K + n++] = e;
                }
                double z = 0;
                for (int e = 0; e < E; e++) z += exp(lg[t * E + e] = (float)(2 * rng_unit(&rs)));
                for (int e = 0; e < E; e++) pr[t * E + e] = (float)(exp(lg[t * E + e]) / z);
                for (int j = 0; j < K; j++) {
                    wt[t * K + j] = (float)rng_unit(&rs);
                    mx[t * K + j] = l == 2 && ex[t * K + j] == 3 && t == 7 ? 500.0f : (float)(1 + rng_unit(&rs));
                    l2[t * K + j] = 1;
                    am[t * K + j] = rng_int(&rs, 32);
                }
            }
            MsRoutingEvent ev = {l, T, pos, E, K, ex, wt, pr, lg, mx, l2, am, NULL};
            ob.on_routing(ob.user, &ev);
        }
        for (int l = 0; l < NL && rc >= 0; l++) {
            for (int t = 0; t < T; t++) {
                hm[t] = (float)(1 + rng_unit(&rs));
                hch[t] = rng_int(&rs, 32);
            }
            MsHiddenEvent hv = {l, T, pos, hm, hch};
            ob.on_hidden(ob.user, &hv);
        }
        if (rc >= 0) rc = ms_trace_writer_commit(w, NULL, err);
    }
    ms_trace_writer_free(w);
    ms_trace_close(db);
    return rc;
}

/* Options that let every module run (plans included). */
static void options(MsAnOptions *o)
{
    ms_an_options_default(o);
    o->label = "set";
    o->set1 = "a";
    o->set2 = "b";
    o->n_pos = 2;
    o->n_neg = 2;
    o->plan_class = NULL;
    o->tau = 0.01;
    o->n_pairs = 3000;
}

/* ------------------------------------------------------- database dump */

typedef struct { char *s; size_t n, cap; } Buf;

static int dump_row(void *user, int n, const char *const *names, const char *const *values)
{
    Buf *b = user;
    (void)names;
    for (int i = 0; i < n; i++) {
        const char *v = values[i] ? values[i] : "NULL";
        size_t len = strlen(v);
        if (b->n + len + 2 > b->cap) {
            size_t cap = (b->n + len + 2) * 2;
            char *s = realloc(b->s, cap);
            if (!s) return 1;
            b->s = s;
            b->cap = cap;
        }
        memcpy(b->s + b->n, v, len);
        b->n += len;
        b->s[b->n++] = i + 1 < n ? '|' : '\n';
        b->s[b->n] = 0;
    }
    return 0;
}

/* Every table's definition and rows, and the registry with timestamps. */
static char *dump_db(const char *path)
{
    MsError err = {0};
    MsTraceDb *db = ms_trace_open(path, MS_TRACE_READ, &err);
    if (!db) return NULL;
    Buf names = {0}, out = {0};
    ms_trace_query(db, "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name", dump_row, &names, &err);
    ms_trace_query(db, "SELECT type, name, sql FROM sqlite_master ORDER BY type, name", dump_row, &out, &err);
    for (char *p = names.s, *e; p && *p; p = e + 1) {
        e = strchr(p, '\n');
        *e = 0;
        /* the analyses' tables (the experiment tables of the schema are
         * WITHOUT ROWID and not written here) */
        if (strncmp(p, "an_", 3) && strcmp(p, "analysis")) continue;
        if (!strncmp(p, "an_compare", 10)) continue;
        char sql[256];
        snprintf(sql, sizeof sql, "SELECT '%s', * FROM \"%s\" ORDER BY rowid", p, p);
        ms_trace_query(db, sql, dump_row, &out, &err);
    }
    free(names.s);
    ms_trace_close(db);
    return out.s ? out.s : strdup("");
}

/* ------------------------------------------------------------- progress */

typedef struct {
    pthread_t owner;
    int n, cap;
    MsProgress *r;
    bool other_thread;
    /* cancel: at frac of the total, wake the canceller and wait for it */
    double frac;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool triggered, set;
    MsCancel flag;
    double t_cancel;
    int after;          /* reports after the cancel */
} Rec;

static void on_progress(void *user, const MsProgress *p)
{
    Rec *r = user;
    if (!pthread_equal(pthread_self(), r->owner)) r->other_thread = true;
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 256;
        r->r = realloc(r->r, sizeof *r->r * (size_t)r->cap);
    }
    r->r[r->n++] = *p;
    if (r->set) r->after++;
    if (r->frac > 0 && !r->triggered && p->tokens_total > 0 && p->tokens >= r->frac * (double)p->tokens_total &&
        p->tokens < p->tokens_total) {
        pthread_mutex_lock(&r->mu);
        r->triggered = true;
        pthread_cond_broadcast(&r->cv);
        while (!r->set) pthread_cond_wait(&r->cv, &r->mu);
        pthread_mutex_unlock(&r->mu);
    }
}

static void *canceller(void *p)
{
    Rec *r = p;
    pthread_mutex_lock(&r->mu);
    while (!r->triggered && r->frac > 0) pthread_cond_wait(&r->cv, &r->mu);
    if (r->frac > 0) {
        ms_cancel_request(&r->flag);
        r->t_cancel = now();
        r->set = true;
        pthread_cond_broadcast(&r->cv);
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

static void rec_init(Rec *r, double frac)
{
    memset(r, 0, sizeof *r);
    r->owner = pthread_self();
    r->frac = frac;
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    ms_cancel_init(&r->flag);
}

static void rec_free(Rec *r)
{
    free(r->r);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
}

/* Reports in order (tokens and done never fall, totals fixed), ending at
 * the totals; why: what is wrong, for the message. */
static bool in_order(const Rec *r, int64_t run_tokens, const char **why)
{
    *why = "ok";
    if (r->n < 2) { *why = "fewer than two reports"; return false; }
    if (r->other_thread) { *why = "a report on another thread"; return false; }
    const MsProgress *f = &r->r[0], *l = &r->r[r->n - 1];
    if (f->tokens != 0 || f->done != 0) { *why = "does not start at 0"; return false; }
    if (f->tokens_total <= 0 || f->tokens_total % run_tokens) { *why = "total not a whole number of passes"; return false; }
    for (int i = 1; i < r->n; i++) {
        const MsProgress *a = &r->r[i - 1], *b = &r->r[i];
        if (b->tokens < a->tokens || b->done < a->done) { *why = "goes back"; return false; }
        if (b->tokens_total != f->tokens_total || b->total != f->total) { *why = "total changes"; return false; }
        if (b->tokens > b->tokens_total || b->done > b->total) { *why = "passes the total"; return false; }
        if (!b->stage || !b->stage[0]) { *why = "no stage"; return false; }
    }
    if (l->tokens != l->tokens_total || l->done != l->total) { *why = "does not end at the total"; return false; }
    return true;
}

/* ---------------------------------------------------------- read back */

static MsColType col_type(MsAnCellType t)
{
    return t == MS_AN_INT ? MS_COL_INT : t == MS_AN_TEXT ? MS_COL_TEXT : MS_COL_REAL;
}

/* Tables of one result against what the registry and the reader return. */
static int check_read_back(MsTraceDb *db, const MsAnResult *res, int *nulls)
{
    MsError err = {0};
    int bad = 0;
    MsAnTable t[MS_AN_MAX_TABLES];
    int n = ms_an_result_tables(res, t);
    const MsAnHead *h = ms_an_result_head(res);
    for (int i = 0; i < n; i++) {
        if (t[i].n_rows == 0) continue;
        MsTraceCursor *c = ms_trace_table(db, t[i].name, h->run_id, &err);
        if (!c) { bad++; mt_diag("%s: %s", t[i].name, err.msg); continue; }
        const MsColumn *cols;
        int nc = ms_trace_table_columns(c, &cols);
        if (nc != t[i].n_cols + 1 || strcmp(cols[0].name, "run_id") || cols[0].type != MS_COL_INT) bad++;
        for (int k = 0; k + 1 < nc && k < t[i].n_cols; k++)
            if (strcmp(cols[k + 1].name, t[i].cols[k]) || cols[k + 1].type != col_type(ms_an_table_col_type(&t[i], k)))
                bad++;
        MsAnCell cells[16];
        const MsTraceValue *v;
        int64_t row = 0;
        int rc;
        while ((rc = ms_trace_table_next(c, &v, &err)) == 1) {
            if (row >= t[i].n_rows) { bad++; break; }
            ms_an_table_row(&t[i], row++, cells);
            if (v[0].type != MS_COL_INT || v[0].i != h->run_id) bad++;
            for (int k = 0; k < t[i].n_cols && k + 1 < nc; k++) {
                const MsAnCell *x = &cells[k];
                const MsTraceValue *y = &v[k + 1];
                bool null = x->type == MS_AN_NULL || (x->type == MS_AN_REAL && !isfinite(x->r));
                if (null) { *nulls += y->type == MS_COL_NULL; bad += y->type != MS_COL_NULL; }
                else if (x->type == MS_AN_INT) bad += y->type != MS_COL_INT || y->i != x->i;
                else if (x->type == MS_AN_REAL) bad += y->type != MS_COL_REAL || y->r != x->r;
                else bad += y->type != MS_COL_TEXT || y->len != strlen(x->s) || memcmp(y->s, x->s, y->len);
            }
        }
        if (rc < 0 || row != t[i].n_rows) bad++;
        ms_trace_cursor_free(c);
    }
    return bad;
}

static bool iso_time(const char *s)
{
    int Y, M, D, h, m, sec;
    char z;
    return strlen(s) == 20 && sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%c", &Y, &M, &D, &h, &m, &sec, &z) == 7 && z == 'Z';
}

static void test_read_back(const char *path)
{
    MsError err = {0};
    MsTraceDb *db = ms_trace_open(path, MS_TRACE_WRITE, &err);
    MsAnOptions o;
    options(&o);
    o.plan_class = "digit";
    o.beta = 2;
    MsAnAll all;
    int rc = ms_analyze_all(db, &o, &all, &err);
    MT_CHECK(rc == 0, "analyze all on the busy trace (%s)", rc ? err.msg : "ok");
    if (rc) { ms_trace_close(db); return; }
    /* registry: exactly the tables written, in write order */
    struct { const char *name; char table[48]; char *params; } want[64];
    int nw = 0;
    for (int m = 0; m < MS_AN_N_MODULES; m++) {
        if (!all.ran[m]) continue;
        MsAnTable t[MS_AN_MAX_TABLES];
        int nt = ms_an_result_tables(&all.res[m], t);
        json_t *p = ms_an_params_json(&all.res[m]);
        char *ptext = json_dumps(p, JSON_COMPACT | JSON_SORT_KEYS);
        json_decref(p);
        for (int k = 0; k < nt && nw < 64; k++) {
            if (t[k].n_rows == 0) continue;
            want[nw].name = ms_an_module_name((MsAnModule)m);
            memcpy(want[nw].table, t[k].name, sizeof want[nw].table);
            want[nw++].params = strdup(ptext);
        }
        free(ptext);
    }
    MsTraceCursor *c = ms_trace_analyses(db, all.run_id, &err);
    MsTraceAnalysis a;
    int bad = 0, n = 0;
    while (c && ms_trace_analyses_next(c, &a, &err) == 1) {
        if (n >= nw) { bad++; break; }
        bad += strcmp(a.table, want[n].table) != 0 || strcmp(a.name, want[n].name) != 0 || a.run_id != all.run_id ||
               !a.params || strcmp(a.params, want[n].params) != 0 || !iso_time(a.created) ||
               strcmp(a.program_version, MS_VERSION) != 0;
        n++;
    }
    ms_trace_cursor_free(c);
    for (int i = 0; i < nw; i++) free(want[i].params);
    MT_CHECK(bad == 0 && n == nw && n >= 14,
             "registry of the run: %d tables in write order with analysis, params, created, version (%d written)", n,
             nw);
    c = ms_trace_analyses(db, 999, &err);
    MT_CHECK(c && ms_trace_analyses_next(c, &a, &err) == 0, "registry of an unknown run: empty");
    ms_trace_cursor_free(c);

    /* every table, typed, cell for cell */
    int nulls = 0;
    bad = 0;
    for (int i = 0; i < MS_AN_N_MODULES; i++)
        if (all.ran[i]) bad += check_read_back(db, &all.res[i], &nulls);
    MT_CHECK(bad == 0, "every result table read back equals the typed result's table (columns, types, cells; %d differ)",
             bad);
    MT_CHECK(nulls > 0, "NULL comes back as NULL (%d NULL cells, e.g. the model rows' layer)", nulls);

    /* run filter, errors */
    c = ms_trace_table(db, "an_load", 999, &err);
    const MsTraceValue *v;
    MT_CHECK(c && ms_trace_table_next(c, &v, &err) == 0, "table rows of an unknown run: none");
    ms_trace_cursor_free(c);
    c = ms_trace_table(db, "an_load", 0, &err);
    int rows = 0;
    while (c && ms_trace_table_next(c, &v, &err) == 1) rows++;
    MT_CHECK(rows == NL - 1, "an_load, every run: %d rows (one per MoE layer)", rows);
    ms_trace_cursor_free(c);
    c = ms_trace_table(db, "prompt", 0, &err);
    MT_CHECK(!c && err.code == MS_ENOTFOUND, "a core table is not a result table (%s)", err.msg);
    c = ms_trace_table(db, "an_compare_pos", 0, &err);
    MT_CHECK(!c && err.code == MS_ENOTFOUND, "a schema table named an_* is not a registered result (%s)", err.msg);
    c = ms_trace_table(db, "an_nosuch", 0, &err);
    MT_CHECK(!c && err.code == MS_ENOTFOUND, "an unregistered table is not found (%s)", err.msg);
    c = ms_trace_table(db, "an_load; DROP TABLE prompt", 0, &err);
    MT_CHECK(!c && err.code == MS_EINVAL, "a bad table name is refused (%s)", err.msg);
    MsTraceCursor *pc = ms_trace_prompts(db, all.run_id, &err);
    MT_CHECK(ms_trace_table_next(pc, &v, &err) == MS_EINVAL, "a table read on another cursor kind is refused");
    ms_trace_cursor_free(pc);
    ms_an_all_clear(&all);
    ms_trace_close(db);

    /* blobs and text with any bytes, from a table registered by hand */
    sqlite3 *h;
    int ok = sqlite3_open(path, &h) == SQLITE_OK &&
             sqlite3_exec(h, "CREATE TABLE an_blobs(run_id INTEGER, b BLOB, t TEXT, x REAL, k);"
                             "INSERT INTO an_blobs VALUES(1, x'00ff10', 'caf\xc3\xa9', NULL, 7);"
                             "INSERT INTO an_blobs VALUES(1, NULL, '', 2.5, 'w');"
                             "INSERT INTO analysis(run_id, name, table_name, params, created, program_version) "
                             "VALUES(1, 'custom', 'an_blobs', NULL, '2026-01-01T00:00:00Z', 'x');"
                             "CREATE TABLE an_keyed(run_id INTEGER, k INTEGER, v TEXT, PRIMARY KEY(run_id, k)) "
                             "WITHOUT ROWID;"
                             "INSERT INTO an_keyed VALUES(1, 2, 'b'), (1, 1, 'a');"
                             "INSERT INTO analysis(run_id, name, table_name, params, created, program_version) "
                             "VALUES(1, 'custom', 'an_keyed', NULL, '2026-01-01T00:00:00Z', 'x')",
                          NULL, NULL, NULL) == SQLITE_OK;
    sqlite3_close(h);
    db = ms_trace_open(path, MS_TRACE_READ, &err);
    c = ok && db ? ms_trace_table(db, "an_blobs", 1, &err) : NULL;
    const MsColumn *cols;
    int nc = c ? ms_trace_table_columns(c, &cols) : 0;
    bool types = nc == 5 && cols[1].type == MS_COL_BLOB && cols[2].type == MS_COL_TEXT && cols[3].type == MS_COL_REAL &&
                 cols[4].type == MS_COL_BLOB;
    bool r1 = c && ms_trace_table_next(c, &v, &err) == 1 && v[1].type == MS_COL_BLOB && v[1].len == 3 &&
              !memcmp(v[1].s, "\x00\xff\x10", 3) && v[2].type == MS_COL_TEXT && !strcmp(v[2].s, "caf\xc3\xa9") &&
              v[3].type == MS_COL_NULL && v[4].type == MS_COL_INT && v[4].i == 7;
    bool r2 = c && ms_trace_table_next(c, &v, &err) == 1 && v[1].type == MS_COL_NULL && v[2].type == MS_COL_TEXT &&
              v[2].len == 0 && v[3].type == MS_COL_REAL && v[3].r == 2.5 && v[4].type == MS_COL_TEXT;
    MT_CHECK(ok && types && r1 && r2 && ms_trace_table_next(c, &v, &err) == 0,
             "a registered table with blobs, UTF-8 text, NULLs and an untyped column reads back exactly");
    ms_trace_cursor_free(c);
    c = ok && db ? ms_trace_table(db, "an_keyed", 0, &err) : NULL;
    bool k1 = c && ms_trace_table_next(c, &v, &err) == 1 && v[1].i == 1 && !strcmp(v[2].s, "a");
    bool k2 = c && ms_trace_table_next(c, &v, &err) == 1 && v[1].i == 2 && !strcmp(v[2].s, "b");
    MT_CHECK(k1 && k2 && ms_trace_table_next(c, &v, &err) == 0,
             "a registered WITHOUT ROWID table reads back in key order (%s)", c ? "ok" : err.msg);
    ms_trace_cursor_free(c);
    ms_trace_close(db);
}

/* ------------------------------------------------------------------ main */

static int run_one(const char *path, const char *module, MsAnOptions *o, Rec *rec, MsError *err)
{
    MsTraceDb *db = ms_trace_open(path, MS_TRACE_WRITE, err);
    if (!db) return err->code;
    o->progress = on_progress;
    o->progress_user = rec;
    o->cancel = &rec->flag;
    int rc;
    if (module) {
        MsAnResult res;
        rc = ms_analyze(db, module, o, &res, err);
        ms_an_result_clear(&res);
    } else {
        MsAnAll all;
        rc = ms_analyze_all(db, o, &all, err);
        ms_an_all_clear(&all);
    }
    ms_trace_close(db);
    return rc;
}

int main(void)
{
    const char *dir = mt_tmpdir();
    char path[600], plan[700];
    snprintf(path, sizeof path, "%s/busy.db", dir);
    snprintf(plan, sizeof plan, "%s/plan.txt", dir);
    MsError err = {0};
    if (!MT_CHECK(make_db(path, &err) >= 0, "busy trace written (%s)", err.msg)) return mt_done();
    int64_t run_tokens = (int64_t)NP * T;
    const char *const *mods = ms_analyze_modules();

    /* typed entry points = ms_analyze */
    {
        MsTraceDb *db = ms_trace_open(path, MS_TRACE_READ, &err);
        MsAnOptions o;
        options(&o);
        o.write = false;
        int same = 0;
        for (int m = 0; m < MS_AN_N_MODULES; m++) {
            MsAnResult a, b = {.module = (MsAnModule)m};
            int r1 = ms_analyze(db, mods[m], &o, &a, &err), r2 = -1;
            switch (m) {
            case MS_AN_LOAD: r2 = ms_analyze_load(db, &o, &b.load, &err); break;
            case MS_AN_COACTIVATION: r2 = ms_analyze_coactivation(db, &o, &b.coactivation, &err); break;
            case MS_AN_AFFINITY: r2 = ms_analyze_affinity(db, &o, &b.affinity, &err); break;
            case MS_AN_CONSISTENCY: r2 = ms_analyze_consistency(db, &o, &b.consistency, &err); break;
            case MS_AN_SUPEREXPERTS: r2 = ms_analyze_superexperts(db, &o, &b.superexperts, &err); break;
            case MS_AN_NPMI: r2 = ms_analyze_npmi(db, &o, &b.npmi, &err); break;
            case MS_AN_RISKDIFF: r2 = ms_analyze_riskdiff(db, &o, &b.riskdiff, &err); break;
            case MS_AN_CROSSLINGUAL: r2 = ms_analyze_crosslingual(db, &o, &b.crosslingual, &err); break;
            case MS_AN_PATHWAYS: r2 = ms_analyze_pathways(db, &o, &b.pathways, &err); break;
            }
            json_t *ja = r1 == 0 ? ms_an_result_json(&a) : NULL, *jb = r2 == 0 ? ms_an_result_json(&b) : NULL;
            same += ja && jb && json_equal(ja, jb) && a.module == (MsAnModule)m;
            json_decref(ja);
            json_decref(jb);
            ms_an_result_clear(&a);
            ms_an_result_clear(&b);
        }
        MT_CHECK(same == MS_AN_N_MODULES, "the nine typed entry points give ms_analyze's results (%d of 9)", same);
        ms_trace_close(db);
        ms_load_result_free(NULL); ms_coactivation_result_free(NULL); ms_affinity_result_free(NULL);
        ms_consistency_result_free(NULL); ms_superexperts_result_free(NULL); ms_npmi_result_free(NULL);
        ms_riskdiff_result_free(NULL); ms_crosslingual_result_free(NULL); ms_pathways_result_free(NULL);
        MsAnResult z = {0};
        ms_an_result_clear(&z);
        ms_an_result_clear(NULL);
        ms_an_all_clear(NULL);
        MT_CHECK(1, "every _free and clear accepts NULL");
    }

    /* progress: each module, then analyze all */
    for (int m = 0; m < MS_AN_N_MODULES; m++) {
        MsAnOptions o;
        options(&o);
        o.write = false;
        Rec rec;
        rec_init(&rec, 0);
        int rc = run_one(path, mods[m], &o, &rec, &err);
        const char *why = "";
        bool ok = rc == 0 && in_order(&rec, run_tokens, &why) && !strcmp(rec.r[0].stage, mods[m]) &&
                  rec.r[rec.n - 1].total == 1;
        MT_CHECK(ok, "%s: %d progress reports on the calling thread, in order, ending at %lld tokens (%s)", mods[m],
                 rec.n, rec.n ? (long long)rec.r[rec.n - 1].tokens_total : 0LL, rc ? err.msg : why);
        rec_free(&rec);
    }
    {
        MsAnOptions o;
        options(&o);
        Rec rec;
        rec_init(&rec, 0);
        int rc = run_one(path, NULL, &o, &rec, &err);
        const char *why = "";
        bool ok = rc == 0 && in_order(&rec, run_tokens, &why);
        int mid = 0, decode = 0;
        for (int i = 0; i < rec.n; i++) {
            mid += rec.r[i].done > 0 && rec.r[i].done < rec.r[i].total;
            decode += !strcmp(rec.r[i].stage, "decode");
        }
        MT_CHECK(ok && rec.r[rec.n - 1].total == MS_AN_N_MODULES && mid > 0 && decode > 0 && rec.n >= 10,
                 "analyze all: %d reports in order (decode, then modules done 0..%d), ending at the total (%s)", rec.n,
                 rec.n ? (int)rec.r[rec.n - 1].total : 0, rc ? err.msg : why);
        rec_free(&rec);
    }

    /* cancel from another thread: nothing written, quickly */
    char *before = dump_db(path);
    MT_CHECK(before && strstr(before, "an_load"), "result tables present before the cancels");
    struct { const char *module; double frac; } cancels[] = {
        {"load", 0.3}, {"coactivation", 0.3}, {"affinity", 0.3}, {"consistency", 0.3}, {"superexperts", 0.6},
        {"npmi", 0.3}, {"riskdiff", 0.3}, {"crosslingual", 0.6}, {"pathways", 0.6}, {NULL, 0.03}, {NULL, 0.5},
    };
    for (size_t i = 0; i < MS_ARRAY_LEN(cancels); i++) {
        MsAnOptions o;
        options(&o);
        /* other settings than the stored tables: any write would show */
        o.role = "all";
        o.layer = 3;
        o.plan_class = "word";
        o.plan_out = plan;
        o.n_pairs = 200000;
        unlink(plan);
        Rec rec;
        rec_init(&rec, cancels[i].frac);
        pthread_t th;
        pthread_create(&th, NULL, canceller, &rec);
        ms_error_clear(&err);
        int rc = run_one(path, cancels[i].module, &o, &rec, &err);
        double t_ret = now();
        pthread_mutex_lock(&rec.mu);
        if (!rec.triggered) {   /* never reached: release the canceller */
            rec.frac = 0;
            pthread_cond_broadcast(&rec.cv);
        }
        pthread_mutex_unlock(&rec.mu);
        pthread_join(th, NULL);
        char *after = dump_db(path);
        bool same = after && before && !strcmp(after, before);
        bool no_plan = access(plan, F_OK) != 0;
        const char *name = cancels[i].module ? cancels[i].module : "all";
        MT_CHECK(rec.triggered && rc == MS_ECANCELLED && err.code == MS_ECANCELLED && t_ret - rec.t_cancel < 1.0,
                 "%s: cancelled at %.0f%% from another thread: MS_ECANCELLED after %.3f s (%s)", name,
                 100 * cancels[i].frac, rec.triggered ? t_ret - rec.t_cancel : -1.0, err.msg);
        MT_CHECK(same && no_plan && (rec.n == 0 || rec.r[rec.n - 1].tokens < rec.r[rec.n - 1].tokens_total),
                 "%s: tables, registry and plan file unchanged after the cancel (%d reports after it)", name, rec.after);
        free(after);
        rec_free(&rec);
    }
    free(before);

    test_read_back(path);
    return mt_done();
}
