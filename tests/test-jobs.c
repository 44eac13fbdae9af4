/* test-jobs.c — the middle layer (jobs/) on the bundled default model:
 * progress reports arrive in order and end at the total, a cancel from
 * another thread stops a trace within a second and leaves a consistent
 * database that a resume completes exactly as an uninterrupted run, the
 * engine stops between layers, the routing capture equals what the trace
 * stores, perplexity / generation / dump jobs, and the reader's prompt and
 * change checks. */
#include <math.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jobs.h"
#include "mtest.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ------------------------------------------------------------ progress */

typedef struct {
    int n;
    int64_t last_done, last_tokens, total;
    bool ordered, tokens_ordered;
    const char *stage;
} ProgLog;

static void prog_log(void *user, const MsProgress *p)
{
    ProgLog *l = user;
    if (l->n && (p->done < l->last_done)) l->ordered = false;
    if (l->n && p->tokens < l->last_tokens) l->tokens_ordered = false;
    l->n++;
    l->last_done = p->done;
    l->last_tokens = p->tokens;
    l->total = p->total;
    l->stage = p->stage;
}

static int64_t sql_int(const char *db, const char *sql)
{
    sqlite3 *h;
    int64_t v = -1;
    if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2(h, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
            v = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    sqlite3_close(h);
    return v;
}

static char *sql_text(const char *db, const char *sql)
{
    sqlite3 *h;
    char *v = NULL;
    if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
        sqlite3_stmt *st;
        if (sqlite3_prepare_v2(h, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW &&
            sqlite3_column_text(st, 0))
            v = strdup((const char *)sqlite3_column_text(st, 0));
        sqlite3_finalize(st);
    }
    sqlite3_close(h);
    return v;
}

static int run_trace(const MsModel *m, const char *model_path, const MsPrompt *p, size_t n, const char *dbpath,
                     MsTraceJob *j, MsTraceJobResult *res, MsError *err)
{
    MsTraceDb *db = ms_trace_open(dbpath, MS_TRACE_CREATE, err);
    if (!db) return err->code;
    int rc = ms_trace_job_run(j, m, model_path, p, n, db, res, err);
    ms_trace_close(db);
    return rc;
}

static void test_progress(const MsModel *m, const char *mp, const MsPrompt *p, size_t n)
{
    char dbp[512];
    snprintf(dbp, sizeof dbp, "%s/progress.db", mt_tmpdir());
    ProgLog lg = { .ordered = true, .tokens_ordered = true };
    MsTraceJob j;
    ms_trace_job_init(&j);
    j.prompts_name = "all.jsonl";
    j.n_gen = 2;
    j.n_threads = 2;
    j.progress = prog_log;
    j.progress_user = &lg;
    MsTraceJobResult res;
    MsError err = { 0 };
    size_t np = MS_MIN(n, (size_t)40);
    int rc = run_trace(m, mp, p, np, dbp, &j, &res, &err);
    MT_CHECK(rc == 0, "trace job of %zu prompts: %s", np, rc ? err.msg : "ok");
    MT_CHECK(lg.n == (int)np, "one progress report per prompt (%d)", lg.n);
    MT_CHECK(lg.ordered && lg.tokens_ordered, "done and tokens never go back");
    MT_CHECK(lg.last_done == (int64_t)np && lg.total == (int64_t)np, "the last report is done == total (%lld/%lld)",
             (long long)lg.last_done, (long long)lg.total);
    MT_CHECK(lg.stage && !strcmp(lg.stage, "trace"), "stage 'trace'");
    MT_CHECK(res.n_written == np && res.n_skipped == 0 && res.run_id > 0, "result: %zu written, run %lld",
             res.n_written, (long long)res.run_id);
    int64_t toks = sql_int(dbp, "SELECT count(*) FROM token");
    MT_CHECK(toks == res.tokens && lg.last_tokens == res.tokens, "tokens reported %lld = stored %lld",
             (long long)lg.last_tokens, (long long)toks);
}

/* -------------------------------------------------------------- cancel */

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int64_t done;
    int64_t at;          /* cancel once done >= at */
    MsCancel flag;
    double t_cancel;
} CancelCtl;

static void prog_signal(void *user, const MsProgress *p)
{
    CancelCtl *c = user;
    pthread_mutex_lock(&c->mu);
    c->done = p->done;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static void *canceller(void *arg)
{
    CancelCtl *c = arg;
    pthread_mutex_lock(&c->mu);
    while (c->done < c->at) pthread_cond_wait(&c->cv, &c->mu);
    pthread_mutex_unlock(&c->mu);
    c->t_cancel = now_s();
    ms_cancel_request(&c->flag);
    return NULL;
}

static void test_cancel_resume(const MsModel *m, const char *mp, const MsPrompt *p, size_t n)
{
    char dbc[512], dbf[512];
    snprintf(dbc, sizeof dbc, "%s/cancel.db", mt_tmpdir());
    snprintf(dbf, sizeof dbf, "%s/full.db", mt_tmpdir());
    CancelCtl c = { .at = 5 };
    pthread_mutex_init(&c.mu, NULL);
    pthread_cond_init(&c.cv, NULL);
    ms_cancel_init(&c.flag);
    MsTraceJob j;
    ms_trace_job_init(&j);
    j.prompts_name = "all.jsonl";
    j.n_gen = 4;
    j.probs = true;
    j.n_threads = 2;
    j.progress = prog_signal;
    j.progress_user = &c;
    j.cancel = &c.flag;
    pthread_t th;
    pthread_create(&th, NULL, canceller, &c);
    MsTraceJobResult res;
    MsError err = { 0 };
    int rc = run_trace(m, mp, p, n, dbc, &j, &res, &err);
    double t_ret = now_s();
    pthread_join(th, NULL);
    MT_CHECK(rc == MS_ECANCELLED, "cancel from another thread: MS_ECANCELLED (%d: %s)", rc, err.msg);
    MT_CHECK(t_ret - c.t_cancel < 1.0, "stopped %.3f s after the request (< 1 s)", t_ret - c.t_cancel);
    MT_CHECK(res.n_written >= 5 && res.n_written < n, "%zu of %zu prompts committed before the stop", res.n_written, n);
    char *ic = sql_text(dbc, "PRAGMA integrity_check");
    MT_CHECK(ic && !strcmp(ic, "ok"), "integrity_check after cancel: %s", ic ? ic : "(none)");
    free(ic);
    int64_t np = sql_int(dbc, "SELECT count(*) FROM prompt");
    MT_CHECK(np == (int64_t)res.n_written, "the database holds exactly the committed prompts (%lld)", (long long)np);
    int64_t partial = sql_int(dbc, "SELECT count(*) FROM prompt p WHERE n_tokens != "
                                   "(SELECT count(*) FROM token t WHERE t.prompt_id = p.prompt_id)");
    MT_CHECK(partial == 0, "no prompt with missing tokens");
    int64_t orphans = sql_int(dbc, "SELECT count(*) FROM routing_packed r WHERE r.prompt_id NOT IN "
                                   "(SELECT prompt_id FROM prompt)");
    MT_CHECK(orphans == 0, "no routing rows of a dropped prompt");
    char *status = sql_text(dbc, "SELECT status FROM run");
    MT_CHECK(status && !strcmp(status, "incomplete"), "the interrupted run says incomplete (%s)", status ? status : "-");
    free(status);

    /* resume completes, with the prompt file named differently (the set is
     * known by its content); the result equals an uninterrupted run */
    j.cancel = NULL;
    j.progress = NULL;
    j.resume = true;
    j.prompts_name = "./elsewhere/../all.jsonl";
    rc = run_trace(m, mp, p, n, dbc, &j, &res, &err);
    MT_CHECK(rc == 0 && res.n_skipped + res.n_written == n && res.n_written == n - (size_t)np,
             "resume: %zu skipped, %zu written (%s)", res.n_skipped, res.n_written, rc ? err.msg : "ok");
    status = sql_text(dbc, "SELECT status FROM run");
    MT_CHECK(status && !strcmp(status, "complete"), "the resumed run says complete (%s)", status ? status : "-");
    free(status);
    j.prompts_name = "all.jsonl";
    j.resume = false;
    rc = run_trace(m, mp, p, n, dbf, &j, &res, &err);
    MT_CHECK(rc == 0, "uninterrupted run");
    int64_t runs = sql_int(dbc, "SELECT count(*) FROM run");
    MT_CHECK(runs == 1, "resume continued the same run (%lld runs)", (long long)runs);
    const char *digest = "SELECT group_concat(x, ';') FROM (SELECT p.idx || ':' || r.pos || ':' || r.layer || ':' || "
                         "hex(r.experts) || ':' || hex(r.weights) AS x FROM routing_packed r JOIN prompt p "
                         "USING(prompt_id) ORDER BY p.idx, r.pos, r.layer)";
    char *d1 = sql_text(dbc, digest), *d2 = sql_text(dbf, digest);
    MT_CHECK(d1 && d2 && !strcmp(d1, d2), "resumed trace has the same routing as an uninterrupted one (%zu bytes)",
             d1 ? strlen(d1) : 0);
    free(d1);
    free(d2);
    const char *tdig = "SELECT group_concat(x, ';') FROM (SELECT p.idx || ':' || t.pos || ':' || t.token_id || ':' || "
                       "t.is_generated || ':' || printf('%.6f', coalesce(t.logprob, 0)) AS x FROM token t JOIN prompt p "
                       "USING(prompt_id) ORDER BY p.idx, t.pos)";
    d1 = sql_text(dbc, tdig);
    d2 = sql_text(dbf, tdig);
    MT_CHECK(d1 && d2 && !strcmp(d1, d2), "... and the same tokens, generated tokens and log-probs");
    free(d1);
    free(d2);
    pthread_mutex_destroy(&c.mu);
    pthread_cond_destroy(&c.cv);
}

/* A cancel already set: nothing is written, the run exists with 0 prompts. */
static void test_cancel_before(const MsModel *m, const char *mp, const MsPrompt *p, size_t n)
{
    char dbp[512];
    snprintf(dbp, sizeof dbp, "%s/pre.db", mt_tmpdir());
    MsCancel flag;
    ms_cancel_init(&flag);
    ms_cancel_request(&flag);
    MsTraceJob j;
    ms_trace_job_init(&j);
    j.cancel = &flag;
    MsTraceJobResult res;
    MsError err = { 0 };
    int rc = run_trace(m, mp, p, n, dbp, &j, &res, &err);
    MT_CHECK(rc == MS_ECANCELLED && res.n_written == 0, "a job cancelled before it starts writes no prompt");
    MT_CHECK(sql_int(dbp, "SELECT count(*) FROM prompt") == 0, "... and the database has none");
}

/* ---------------------------------------------- engine: between layers */

typedef struct {
    int events;
    MsCancel *flag;
} LayerStop;

static void stop_after_first(void *user, const MsRoutingEvent *ev)
{
    (void)ev;
    LayerStop *s = user;
    if (++s->events == 1) ms_cancel_request(s->flag);
}

static void test_engine_cancel(const MsModel *m)
{
    const int n = 600;
    MsContextParams cp = ms_context_default_params();
    cp.n_ctx = n;
    cp.n_batch = n;   /* one micro-batch: only the between-layers check can stop it */
    cp.n_threads = 2;
    MsError err = { 0 };
    MsContext *ctx = ms_context_new(m, &cp, &err);
    int32_t *ids = malloc(n * sizeof *ids);
    for (int i = 0; i < n; i++) ids[i] = (int32_t)((i * 37 + 11) % 4000);
    MsCancel flag;
    ms_cancel_init(&flag);
    LayerStop s = { 0, &flag };
    MsObserver obs = { .on_routing = stop_after_first, .user = &s };
    ms_context_set_observer(ctx, &obs);
    ms_context_set_cancel(ctx, &flag);
    int rc = ms_context_eval(ctx, ids, n, NULL, false, &err);
    MT_CHECK(rc == MS_ECANCELLED, "eval returns MS_ECANCELLED (%d: %s)", rc, err.msg);
    MT_CHECK(s.events == 1, "stopped at the next layer: %d of 4 layers routed", s.events);
    MT_CHECK(ms_context_n_past(ctx) == 0, "n_past stays at the last whole micro-batch (%d)", ms_context_n_past(ctx));
    /* reusable after a reset, and the same as a fresh context */
    ms_context_set_cancel(ctx, NULL);
    ms_context_set_observer(ctx, NULL);
    ms_context_reset(ctx);
    float *l1 = malloc(4096 * sizeof *l1), *l2 = malloc(4096 * sizeof *l2);
    rc = ms_context_eval(ctx, ids, 64, l1, false, &err);
    MsContext *c2 = ms_context_new(m, &cp, &err);
    int rc2 = ms_context_eval(c2, ids, 64, l2, false, &err);
    MT_CHECK(rc == 0 && rc2 == 0 && !memcmp(l1, l2, 4096 * sizeof *l1), "after reset it computes as a fresh context");
    free(l1);
    free(l2);
    ms_context_free(c2);
    ms_context_free(ctx);
    free(ids);
}

/* ------------------------------------------------------------- capture */

static void test_capture_vs_trace(const MsModel *m, const char *mp, const MsPrompt *p)
{
    char dbp[512];
    snprintf(dbp, sizeof dbp, "%s/one.db", mt_tmpdir());
    MsTraceJob j;
    ms_trace_job_init(&j);
    j.n_gen = 5;
    MsTraceJobResult res;
    MsError err = { 0 };
    int rc = run_trace(m, mp, p, 1, dbp, &j, &res, &err);
    MsGenJob g;
    ms_gen_job_init(&g);
    g.n_gen = 5;
    g.capture = true;
    MsGeneration gen = { 0 };
    int rc2 = ms_gen_job_run(&g, m, p[0].text, p[0].len, &gen, &err);
    MT_CHECK(rc == 0 && rc2 == 0, "trace and generate of one prompt (%s)", err.msg);
    MsTraceDb *db = ms_trace_open(dbp, MS_TRACE_READ, &err);
    MsTraceCursor *cur = db ? ms_trace_routing(db, res.run_id, 0, &err) : NULL;
    MsTraceRoute buf[512];
    int got, same = 1, rows = 0;
    while (cur && (got = ms_trace_routing_next(cur, buf, 512, &err)) > 0) {
        for (int i = 0; i < got; i++) {
            MsRouteLayer rl;
            if (!ms_route_capture_layer(gen.routing, buf[i].layer, &rl) || buf[i].pos >= rl.n_pos) {
                same = 0;
                continue;
            }
            size_t ix = (size_t)buf[i].pos * rl.k + buf[i].rank;
            same &= rl.experts[ix] == buf[i].expert && rl.weights[ix] == buf[i].weight;
            rows++;
        }
    }
    MT_CHECK(same && rows == gen.n_tokens * 4 * 2, "capture equals the stored routing (%d rows, %d tokens)", rows,
             gen.n_tokens);
    int64_t ntok = sql_int(dbp, "SELECT count(*) FROM token");
    MT_CHECK(ntok == gen.n_tokens, "greedy trace and generation agree on length (%lld vs %d)", (long long)ntok,
             gen.n_tokens);
    ms_trace_cursor_free(cur);
    ms_trace_close(db);
    ms_generation_clear(&gen);
}

/* ----------------------------------------------------- ppl, dump, reader */

static void test_ppl(const MsModel *m)
{
    const char *src = getenv("MS_SOURCE_DIR");
    char path[1024];
    snprintf(path, sizeof path, "%s/data/heldout/de.txt", src);
    FILE *f = fopen(path, "rb");
    char *text = malloc(1 << 16);
    size_t len = f ? fread(text, 1, (1 << 16) - 1, f) : 0;
    if (f) fclose(f);
    text[len] = 0;
    MsPplJob j;
    ms_ppl_job_init(&j);
    j.n_ctx = 128;
    ProgLog lg = { .ordered = true, .tokens_ordered = true };
    j.progress = prog_log;
    j.progress_user = &lg;
    MsPplResult r;
    MsError err = { 0 };
    int rc = ms_ppl_job_run(&j, m, "de.txt", text, len, &r, &err);
    MT_CHECK(rc == 0 && r.ppl > 1 && r.ppl < 50, "perplexity of held-out German: %.2f over %ld tokens", r.ppl,
             r.n_scored);
    MT_CHECK(lg.n == r.n_chunks && lg.last_done == r.n_chunks, "one progress report per chunk (%d)", lg.n);
    rc = ms_ppl_job_run(&j, m, "short", "ab", 2, &r, &err);
    MT_CHECK(rc < 0 && strstr(err.msg, "short: too short"), "too short a text: %s", err.msg);
    free(text);
}

static void test_dump(const MsModel *m, const char *mp, const MsPrompt *p)
{
    char prefix[512], path[600];
    snprintf(prefix, sizeof prefix, "%s/nodir/out", mt_tmpdir());
    MsDumpJob j;
    ms_dump_job_init(&j);
    j.prompts_name = "p.jsonl";
    MsError err = { 0 };
    int rc = ms_dump_job_run(&j, m, mp, p, 2, prefix, &err);
    MT_CHECK(rc < 0 && strstr(err.msg, "nodir/out.json"), "dump into a missing directory fails naming the file: %s",
             err.msg);
    snprintf(prefix, sizeof prefix, "%s/dump", mt_tmpdir());
    rc = ms_dump_job_run(&j, m, mp, p, 2, prefix, &err);
    snprintf(path, sizeof path, "%s.json", prefix);
    FILE *f = fopen(path, "r");
    MT_CHECK(rc == 0 && f, "dump writes PREFIX.json (%s)", rc ? err.msg : "ok");
    if (f) fclose(f);
    snprintf(path, sizeof path, "%s.p1.f32", prefix);
    f = fopen(path, "rb");
    MT_CHECK(f != NULL, "... and PREFIX.p1.f32");
    if (f) fclose(f);
    /* a cancelled dump leaves nothing */
    snprintf(prefix, sizeof prefix, "%s/dumpc", mt_tmpdir());
    MsCancel flag;
    ms_cancel_init(&flag);
    ms_cancel_request(&flag);
    j.cancel = &flag;
    rc = ms_dump_job_run(&j, m, mp, p, 2, prefix, &err);
    snprintf(path, sizeof path, "%s.json", prefix);
    f = fopen(path, "r");
    MT_CHECK(rc == MS_ECANCELLED && !f, "a cancelled dump leaves no partial file");
    if (f) fclose(f);
}

static void test_reader(const MsModel *m, const char *mp, const MsPrompt *p)
{
    char dbp[512];
    snprintf(dbp, sizeof dbp, "%s/reader.db", mt_tmpdir());
    MsError err = { 0 };
    MsTraceDb *w = ms_trace_open(dbp, MS_TRACE_CREATE, &err);
    MsTraceDb *r = ms_trace_open(dbp, MS_TRACE_READ, &err);
    uint64_t stamp = 0;
    int c0 = ms_trace_changed(r, &stamp, &err);
    int c1 = ms_trace_changed(r, &stamp, &err);
    MT_CHECK(c0 == 1 && c1 == 0, "changed: first call 1, then 0 while nothing happens");
    MsTraceJob j;
    ms_trace_job_init(&j);
    MsTraceJobResult res;
    int rc = ms_trace_job_run(&j, m, mp, p, 3, w, &res, &err);
    int c2 = ms_trace_changed(r, &stamp, &err);
    int c3 = ms_trace_changed(r, &stamp, &err);
    MT_CHECK(rc == 0 && c2 == 1 && c3 == 0, "another connection's commits are seen as a change, once");
    MsTracePromptInfo pi;
    rc = ms_trace_prompt_get(r, res.run_id, 2, &pi, &err);
    MT_CHECK(rc == 0 && pi.text_len == p[2].len && !memcmp(pi.text, p[2].text, pi.text_len) && pi.n_tokens > 0 &&
             ((pi.labels_json == NULL) == (p[2].labels_json == NULL)),
             "prompt 2 by index: text, labels and %d tokens", pi.n_tokens);
    ms_trace_prompt_info_clear(&pi);
    rc = ms_trace_prompt_get(r, res.run_id, 9, &pi, &err);
    MT_CHECK(rc == MS_ENOTFOUND && strstr(err.msg, "no prompt 9"), "missing prompt: %s", err.msg);
    ms_trace_close(r);
    ms_trace_close(w);
}

static void test_prompts_parse(void)
{
    const char *buf = "# not a comment in text files\nfirst\\tline\n\nsecond\n";
    MsPrompt *p = NULL;
    size_t n = 0;
    MsError err = { 0 };
    int rc = ms_prompts_parse("(typed)", buf, strlen(buf), &p, &n, &err);
    MT_CHECK(rc == 0 && n == 3 && !strcmp(p[1].text, "first\tline") && p[2].line == 4,
             "prompts typed into the app parse like a file");
    ms_prompts_free(p, n);
    const char *bad = "{\"text\": \"ok\"}\n{\"text\": 3}\n";
    rc = ms_prompts_parse("(typed)", bad, strlen(bad), &p, &n, &err);
    MT_CHECK(rc == MS_EFORMAT && !strncmp(err.msg, "(typed):2: ", 11), "bad typed line named: %s", err.msg);
}

static void test_compare_prompt(const MsModel *m, const MsPrompt *p)
{
    MsCompareOptions o;
    ms_compare_options_init(&o);
    o.n_gen = 12;
    o.n_threads = 2;
    MsIntervention *empty = ms_intervention_new(4, 16), *sil = ms_intervention_new(4, 16);
    ms_intervention_silence(sil, 1, 5);
    ms_intervention_silence(sil, 2, 11);
    MsPromptCompare a, b;
    MsError err = { 0 };
    ProgLog lg = { .ordered = true, .tokens_ordered = true };
    o.progress = prog_log;
    o.progress_user = &lg;
    int rc = ms_compare_prompt(&o, m, empty, p->text, p->len, &a, &err);
    MT_CHECK(rc == 0 && lg.n == 2 && lg.last_done == 2 && lg.total == 2 && lg.ordered && lg.last_tokens > 0,
             "one prompt compare reports both passes in order (%d reports, %lld tokens)", lg.n, (long long)lg.last_tokens);
    o.progress = NULL;
    double kl = 0;
    for (int i = 0; rc == 0 && i < a.n_tokens; i++) kl += a.pos[i].kl;
    MT_CHECK(rc == 0 && kl == 0 && a.summary.top1_agree == a.n_tokens && a.summary.first_divergence == -1,
             "one prompt, empty set: KL exactly 0 over %d positions", a.n_tokens);
    MT_CHECK(rc == 0 && a.n_run == a.n_tokens - a.n_prompt &&
             !memcmp(a.tokens_run, a.tokens + a.n_prompt, (size_t)a.n_run * sizeof(int32_t)) &&
             !strcmp(a.text_baseline, a.text_run), "... the free continuation equals the baseline's (%zu bytes)",
             rc ? (size_t)0 : strlen(a.text_run));
    int changed = 0;
    for (int l = 0; rc == 0 && l < a.n_layers; l++) changed += a.layers[l].n_changed;
    MT_CHECK(rc == 0 && a.n_layers == 4 && changed == 0, "... no routing changed at 4 layers");
    rc = ms_compare_prompt(&o, m, sil, p->text, p->len, &b, &err);
    MT_CHECK(rc == 0 && b.summary.kl_mean > 0 && b.n_tokens == a.n_tokens &&
             !memcmp(a.tokens, b.tokens, (size_t)a.n_tokens * sizeof(int32_t)),
             "silence 1:5, 2:11: KL mean %.4f > 0 on the same teacher-forced tokens", rc ? 0 : b.summary.kl_mean);
    MsRouteLayer rl;
    bool never = rc == 0 && ms_route_capture_layer(b.routing_run, 1, &rl);
    for (int t = 0; never && t < rl.n_pos; t++)
        for (int k = 0; k < rl.k; k++) never &= rl.experts[(size_t)t * rl.k + k] != 5;
    MT_CHECK(never, "... and the silenced expert is never routed in the captured routing");
    /* cancelled from the start: MS_ECANCELLED and nothing returned */
    MsCancel flag;
    ms_cancel_init(&flag);
    ms_cancel_request(&flag);
    o.cancel = &flag;
    MsPromptCompare cc;
    rc = ms_compare_prompt(&o, m, sil, p->text, p->len, &cc, &err);
    MT_CHECK(rc == MS_ECANCELLED && cc.tokens == NULL, "a cancelled compare returns MS_ECANCELLED and no result");
    ms_prompt_compare_clear(&a);
    ms_prompt_compare_clear(&b);
    ms_intervention_free(empty);
    ms_intervention_free(sil);
}

int main(void)
{
    const char *src = getenv("MS_SOURCE_DIR");
    char mp[1024], pp[1024];
    snprintf(mp, sizeof mp, "%s/data/models/default.gguf", src ? src : ".");
    snprintf(pp, sizeof pp, "%s/data/prompts/all.jsonl", src ? src : ".");
    MsError err = { 0 };
    MsModel *m = ms_model_load(mp, &err);
    MsPrompt *p = NULL;
    size_t n = 0;
    if (!m || ms_prompts_read(pp, &p, &n, &err) < 0) {
        MT_CHECK(0, "load the default model and prompts: %s", err.msg);
        return mt_done();
    }
    test_prompts_parse();
    test_progress(m, mp, p, n);
    test_cancel_resume(m, mp, p, MS_MIN(n, (size_t)120));
    test_cancel_before(m, mp, p, 10);
    test_engine_cancel(m);
    test_capture_vs_trace(m, mp, p);
    test_ppl(m);
    test_dump(m, mp, p);
    test_reader(m, mp, p);
    test_compare_prompt(m, &p[1]);
    ms_prompts_free(p, n);
    ms_model_free(m);
    return mt_done();
}
