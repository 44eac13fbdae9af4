/* test-db.c — the trace store with synthetic observer streams: schema and
 * versioning, writer/reader round trip, views, atomic prompts, results,
 * queries, imports. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "mtest.h"
#include "trace.h"

/* splitmix64: a seeded stream for synthetic routing */
static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static float rng_unit(uint64_t *s) { return (float)(rng_next(s) >> 40) / (float)(1 << 24); }

#define NL 5      /* blocks; block 1 is dense */
#define E 40
#define K 6
#define NPOS 23

typedef struct { int32_t ex[NPOS][NL][K], ch[NPOS][NL][K], hch[NPOS][NL];
                 float w[NPOS][NL][K], mx[NPOS][NL][K], l2[NPOS][NL][K];
                 float probs[NPOS][NL][E], logits[NPOS][NL][E], hid[NPOS][NL]; } Synth;

static void synth_fill(Synth *s, uint64_t seed)
{
    for (int t = 0; t < NPOS; t++)
        for (int l = 0; l < NL; l++) {
            for (int e = 0; e < E; e++) {
                s->logits[t][l][e] = (rng_unit(&seed) - 0.5f) * 8;
                s->probs[t][l][e] = rng_unit(&seed) / E;
            }
            int used[E] = { 0 };
            for (int j = 0; j < K; j++) {
                int e;
                do e = (int)(rng_next(&seed) % E); while (used[e]);
                used[e] = 1;
                s->ex[t][l][j] = e;
                s->w[t][l][j] = rng_unit(&seed);
                s->mx[t][l][j] = rng_unit(&seed) * 100;
                s->l2[t][l][j] = rng_unit(&seed) * 1000;
                s->ch[t][l][j] = (int32_t)(rng_next(&seed) % 65536);   /* the whole uint16 range */
            }
            s->hid[t][l] = rng_unit(&seed) * 50;
            s->hch[t][l] = (int32_t)(rng_next(&seed) % 5000);
        }
}

/* Feed the writer like the engine: micro-batches, layer-major inside each. */
static void synth_feed(const Synth *s, MsObserver *o, int batch)
{
    for (int t0 = 0; t0 < NPOS; t0 += batch) {
        int n = MS_MIN(batch, NPOS - t0);
        int32_t pos[NPOS], ex[NPOS * K], ch[NPOS * K], hch[NPOS];
        float w[NPOS * K], mx[NPOS * K], l2[NPOS * K], pr[NPOS * E], lg[NPOS * E], hid[NPOS];
        for (int l = 0; l < NL; l++) {
            for (int i = 0; i < n; i++) {
                pos[i] = t0 + i;
                memcpy(ex + i * K, s->ex[t0 + i][l], sizeof s->ex[0][0]);
                memcpy(w + i * K, s->w[t0 + i][l], sizeof s->w[0][0]);
                memcpy(mx + i * K, s->mx[t0 + i][l], sizeof s->mx[0][0]);
                memcpy(l2 + i * K, s->l2[t0 + i][l], sizeof s->l2[0][0]);
                memcpy(ch + i * K, s->ch[t0 + i][l], sizeof s->ch[0][0]);
                hch[i] = s->hch[t0 + i][l];
                memcpy(pr + i * E, s->probs[t0 + i][l], sizeof s->probs[0][0]);
                memcpy(lg + i * E, s->logits[t0 + i][l], sizeof s->logits[0][0]);
                hid[i] = s->hid[t0 + i][l];
            }
            if (l != 1) {
                MsRoutingEvent ev = { l, n, pos, E, K, ex, w, pr, lg, mx, l2, ch, NULL };
                o->on_routing(o->user, &ev);
            }
            MsHiddenEvent hv = { l, n, pos, hid, hch };
            o->on_hidden(o->user, &hv);
        }
    }
}

static const char *piece_of(int t, size_t *len)
{
    static const char *const pcs[] = { "a'b", "x\"y", "back\\slash", "new\nline", "tab\there", "\xff\xfe", "nul\0z",
                                       "\xc3\xa9t\xc3\xa9", "", "\xe2\x82", ",;" };
    static const size_t lens[] = { 3, 3, 10, 8, 8, 2, 5, 6, 0, 2, 2 };
    *len = lens[t % 11];
    return pcs[t % 11];
}

typedef struct { int n; long long sum; char last[256]; } QAcc;
static int q_row(void *user, int n, const char *const *names, const char *const *vals)
{
    QAcc *a = user;
    a->n++;
    if (vals[n - 1]) {
        a->sum += atoll(vals[n - 1]);
        snprintf(a->last, sizeof a->last, "%s", vals[n - 1]);
    } else snprintf(a->last, sizeof a->last, "NULL");
    (void)names;
    return 0;
}

static int64_t make_run(MsTraceDb *db, bool probs, bool stats, MsError *err)
{
    MsTraceModel m = { 0 };
    snprintf(m.file_name, sizeof m.file_name, "synthetic.gguf");
    snprintf(m.arch, sizeof m.arch, "olmoe");
    snprintf(m.score_func, sizeof m.score_func, "softmax");
    m.n_layer = NL; m.n_expert = E; m.n_expert_used = K; m.w_scale = 1;
    for (int l = 0; l < NL; l++) m.is_moe[l] = l != 1;
    int64_t mid = ms_trace_model_add(db, &m, err);
    if (mid <= 0) return mid;
    MsTraceRunDesc d = { .model_id = mid, .kind = "trace", .settings_json = "{\"gen\":0}",
                         .interventions = "silence 3:5", .has_probs = probs, .has_stats = stats };
    return ms_trace_run_new(db, &d, err);
}

static void write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (f) { fwrite(data, 1, n, f); fclose(f); }
}

int main(void)
{
    const char *dir = mt_tmpdir();
    char path[512], p2[512];
    MsError err = { 0 };

    /* --- SHA-256 against the FIPS 180-2 test vectors */
    snprintf(p2, sizeof p2, "%s/abc.txt", dir);
    write_file(p2, "abc", 3);
    char hex[65];
    MT_CHECK(ms_sha256_file(p2, hex, &err) == 0 &&
             !strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"), "sha256(abc) %s", hex);
    const char *msg2 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    write_file(p2, msg2, strlen(msg2));
    MT_CHECK(ms_sha256_file(p2, hex, &err) == 0 &&
             !strcmp(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"), "sha256 two-block vector");

    /* --- open errors */
    snprintf(path, sizeof path, "%s/none.db", dir);
    MT_CHECK(ms_trace_open(path, MS_TRACE_READ, &err) == NULL && err.code < 0, "missing file read-only: %s", err.msg);
    snprintf(p2, sizeof p2, "%s/garbage.db", dir);
    write_file(p2, "this is not a database, just some text that is long enough to be a header......"
                   "................................................................................", 160);
    MT_CHECK(ms_trace_open(p2, MS_TRACE_WRITE, &err) == NULL && strstr(err.msg, "garbage.db"),
             "garbage file refused: %s", err.msg);

    /* --- create, version */
    snprintf(path, sizeof path, "%s/t.db", dir);
    MsTraceDb *db = ms_trace_open(path, MS_TRACE_CREATE, &err);
    MT_CHECK(db != NULL, "create: %s", db ? "" : err.msg);
    if (!db) return mt_done();
    MT_CHECK(ms_trace_user_version(db) == MS_TRACE_SCHEMA_VERSION, "user_version %d", ms_trace_user_version(db));

    Synth *s = calloc(1, sizeof *s);
    synth_fill(s, 42);
    int64_t run = make_run(db, true, true, &err);
    MT_CHECK(run > 0, "run created: %s", run > 0 ? "" : err.msg);
    MsTraceWriter *w = ms_trace_writer_new(db, run, &err);
    MT_CHECK(w != NULL, "writer: %s", w ? "" : err.msg);
    MsObserver obs = ms_trace_writer_observer(w);

    /* events before begin are ignored */
    synth_feed(s, &obs, 7);
    /* prompt 0: text with NUL and invalid UTF-8, batches of 7 */
    static const char text0[] = "hi\0there \xff 'q' \"d\" \\ \n\t end";
    int rc = ms_trace_writer_begin(w, 0, text0, sizeof text0 - 1, "{\"domain\":\"code\",\"pair\":3}", &err);
    for (int t = 0; t < NPOS && !rc; t++) {
        size_t pl;
        const char *pc = piece_of(t, &pl);
        rc = ms_trace_writer_token(w, t, 1000 + t, pc, pl, t >= 20, t == 0 ? NAN : -0.125f * (float)t,
                                   1.0f / (float)(t + 3), &err);
    }
    synth_feed(s, &obs, 7);
    int64_t pid0 = 0;
    if (!rc) rc = ms_trace_writer_commit(w, &pid0, &err);
    MT_CHECK(rc == 0 && pid0 > 0, "prompt 0 committed (id %lld): %s", (long long)pid0, rc ? err.msg : "");
    MT_CHECK(ms_trace_writer_rows(w) == (int64_t)NPOS * (NL - 1) * K, "row count %lld", (long long)ms_trace_writer_rows(w));

    /* prompt 1: aborted, then prompt 2 with a duplicate group (must fail whole) */
    ms_trace_writer_begin(w, 1, "gone", 4, NULL, &err);
    synth_feed(s, &obs, 5);
    ms_trace_writer_abort(w);
    ms_trace_writer_begin(w, 2, "dup", 3, NULL, &err);
    synth_feed(s, &obs, 23);
    synth_feed(s, &obs, 4);
    rc = ms_trace_writer_commit(w, NULL, &err);
    MT_CHECK(rc < 0 && strstr(err.msg, "t.db"), "duplicate routing refused: %s", err.msg);
    MT_CHECK(ms_trace_prompt_lookup(db, run, 1, &err) == 0 && ms_trace_prompt_lookup(db, run, 2, &err) == 0,
             "aborted / failed prompts left nothing");
    MT_CHECK(ms_trace_prompt_lookup(db, run, 0, &err) == pid0, "prompt lookup");
    /* prompt 3: one token per batch (decode-like) */
    rc = ms_trace_writer_begin(w, 3, "p3", 2, NULL, &err);
    synth_feed(s, &obs, 1);
    int64_t pid3 = 0;
    if (!rc) rc = ms_trace_writer_commit(w, &pid3, &err);
    MT_CHECK(rc == 0 && pid3 > pid0, "prompt 3 committed");

    /* --- run info */
    MsTraceRunInfo ri;
    rc = ms_trace_run_info(db, run, &ri, &err);
    MT_CHECK(rc == 0 && ri.n_prompts == 2 && ri.n_tokens == NPOS && ri.model.n_expert == E &&
             ri.model.n_moe_layers == NL - 1 && !ri.model.is_moe[1] && ri.model.is_moe[4] && ri.has_probs &&
             !strcmp(ri.interventions, "silence 3:5"), "run info");
    ms_trace_run_info_clear(&ri);
    MT_CHECK(ms_trace_run_info(db, 999, &ri, &err) == MS_ENOTFOUND, "missing run: %s", err.msg);

    /* --- read back routing with several chunk sizes */
    int caps[] = { 1, 5, 6, 7, 1000 };
    for (size_t ci = 0; ci < MS_ARRAY_LEN(caps); ci++) {
        MsTraceCursor *c = ms_trace_routing(db, run, 0, &err);
        MsTraceRoute buf[1000];
        int n, bad = 0, split = 0;
        long total = 0;
        int64_t expect_pid = pid0;
        int et = 0, el = 0, ej = 0;
        while ((n = ms_trace_routing_next(c, buf, caps[ci], &err)) > 0) {
            if (caps[ci] >= K && buf[n - 1].rank != K - 1) split++;
            for (int i = 0; i < n; i++, total++) {
                const MsTraceRoute *r = &buf[i];
                if (r->prompt_id != expect_pid || r->pos != et || r->layer != el || r->rank != ej ||
                    r->expert != s->ex[et][el][ej] || r->weight != s->w[et][el][ej] ||
                    r->maxabs != s->mx[et][el][ej] || r->l2 != s->l2[et][el][ej] || r->channel != s->ch[et][el][ej])
                    bad++;
                if (++ej == K) { ej = 0; if (++el == 1) el = 2; if (el == NL) { el = 0; if (++et == NPOS) { et = 0; expect_pid = pid3; } } }
            }
        }
        MT_CHECK(n == 0 && bad == 0 && split == 0 && total == 2L * NPOS * (NL - 1) * K,
                 "routing cursor cap %d: %ld rows, %d mismatches, %d split groups", caps[ci], total, bad, split);
        ms_trace_cursor_free(c);
    }
    /* one prompt only */
    {
        MsTraceCursor *c = ms_trace_routing(db, run, pid3, &err);
        MsTraceRoute buf[64];
        long total = 0;
        int n, other = 0;
        while ((n = ms_trace_routing_next(c, buf, 64, &err)) > 0)
            for (int i = 0; i < n; i++, total++) other += buf[i].prompt_id != pid3;
        MT_CHECK(total == (long)NPOS * (NL - 1) * K && !other, "routing of one prompt");
        ms_trace_cursor_free(c);
    }

    /* --- tokens, exact bytes */
    {
        MsTraceCursor *c = ms_trace_tokens(db, run, pid0, &err);
        MsTraceToken tk;
        int n = 0, bad = 0;
        while (ms_trace_tokens_next(c, &tk, &err) == 1) {
            size_t pl;
            const char *pc = piece_of(tk.pos, &pl);
            if (tk.pos != n || tk.token_id != 1000 + n || tk.piece_len != pl || memcmp(tk.piece, pc, pl) ||
                tk.is_generated != (n >= 20) || (n == 0 ? !isnan(tk.logprob) : tk.logprob != -0.125f * (float)n) ||
                tk.entropy != 1.0f / (float)(n + 3))
                bad++;
            n++;
        }
        MT_CHECK(n == NPOS && bad == 0, "tokens: %d read, %d mismatches", n, bad);
        ms_trace_cursor_free(c);
        c = ms_trace_prompts(db, run, &err);
        MsTracePrompt pr;
        rc = ms_trace_prompts_next(c, &pr, &err);
        MT_CHECK(rc == 1 && pr.index == 0 && pr.text_len == sizeof text0 - 1 && !memcmp(pr.text, text0, pr.text_len) &&
                 pr.labels_json && strstr(pr.labels_json, "code") && pr.n_tokens == NPOS, "prompt 0 exact text");
        rc = ms_trace_prompts_next(c, &pr, &err);
        MT_CHECK(rc == 1 && pr.index == 3 && pr.n_tokens == 0, "prompt 3");
        MT_CHECK(ms_trace_prompts_next(c, &pr, &err) == 0, "prompts end");
        ms_trace_cursor_free(c);
    }

    /* --- probs (binary16) and hidden stats */
    {
        MsTraceCursor *c = ms_trace_probs(db, run, pid0, &err);
        MsTraceProbs pb;
        int n = 0, bad = 0;
        while (ms_trace_probs_next(c, &pb, &err) == 1) {
            int t = n / (NL - 1), l = n % (NL - 1);
            l = l >= 1 ? l + 1 : l;
            if (pb.pos != t || pb.layer != l || pb.n_expert != E) bad++;
            else
                for (int e = 0; e < E; e++)
                    if (pb.probs[e] != ms_fp16_to_fp32(ms_fp32_to_fp16(s->probs[t][l][e])) ||
                        pb.logits[e] != ms_fp16_to_fp32(ms_fp32_to_fp16(s->logits[t][l][e])))
                        bad++;
            n++;
        }
        MT_CHECK(n == NPOS * (NL - 1) && !bad, "router probs: %d rows, %d mismatches", n, bad);
        ms_trace_cursor_free(c);
        c = ms_trace_hidden(db, run, 0, &err);
        MsTraceHidden hb[10];
        int m, total = 0;
        bad = 0;
        while ((m = ms_trace_hidden_next(c, hb, 10, &err)) > 0)
            for (int i = 0; i < m; i++, total++) {
                int t = (total % (NPOS * NL)) / NL, l = total % NL;
                if (hb[i].pos != t || hb[i].layer != l || hb[i].maxabs != s->hid[t][l] || hb[i].channel != s->hch[t][l])
                    bad++;
            }
        MT_CHECK(total == 2 * NPOS * NL && !bad, "hidden stats: %d rows, %d mismatches", total, bad);
        ms_trace_cursor_free(c);
    }

    /* --- plain SQL through the views */
    {
        long long cnt[NL][E] = { 0 };
        for (int t = 0; t < NPOS; t++)
            for (int l = 0; l < NL; l++)
                for (int j = 0; j < K; j++) cnt[l][s->ex[t][l][j]] += 2;
        int bad = 0;
        for (int e = 0; e < E; e += 7) {
            char q[256];
            QAcc a = { 0 };
            snprintf(q, sizeof q, "SELECT count(*) FROM routing WHERE layer = 3 AND expert = %d", e);
            if (ms_trace_query(db, q, q_row, &a, &err) || a.sum != cnt[3][e]) bad++;
        }
        MT_CHECK(!bad, "count per expert at layer 3 via the routing view");
        QAcc a = { 0 };
        rc = ms_trace_query(db, "SELECT expert, count(*) FROM routing WHERE layer = 3 GROUP BY expert", q_row, &a, &err);
        int distinct = 0;
        for (int e = 0; e < E; e++) distinct += cnt[3][e] > 0;
        MT_CHECK(rc == 0 && a.n == distinct && a.sum == 2LL * NPOS * K, "GROUP BY expert: %d groups", a.n);
        /* weights through the view are the stored float32 values */
        bad = 0;
        for (int t = 0; t < NPOS; t += 5)
            for (int j = 0; j < K; j++) {
                char q[256];
                snprintf(q, sizeof q, "SELECT weight, maxabs, l2 FROM expert_stats JOIN routing USING(prompt_id,pos,layer,rank) "
                                      "WHERE prompt_id=%lld AND pos=%d AND layer=4 AND rank=%d", (long long)pid0, t, j);
                QAcc b = { 0 };
                if (ms_trace_query(db, q, q_row, &b, &err) || b.n != 1 || strtof(b.last, NULL) != s->l2[t][4][j]) bad++;
                snprintf(q, sizeof q, "SELECT channel FROM expert_stats WHERE prompt_id=%lld AND pos=%d AND layer=4 AND rank=%d",
                         (long long)pid0, t, j);
                b.n = 0;
                if (ms_trace_query(db, q, q_row, &b, &err) || b.n != 1 || atoi(b.last) != s->ch[t][4][j]) bad++;
                snprintf(q, sizeof q, "SELECT weight FROM routing WHERE prompt_id=%lld AND pos=%d AND layer=4 AND rank=%d",
                         (long long)pid0, t, j);
                b.n = 0;
                if (ms_trace_query(db, q, q_row, &b, &err) || b.n != 1 || strtod(b.last, NULL) != (double)s->w[t][4][j]) bad++;
                snprintf(q, sizeof q, "SELECT prob FROM router_prob WHERE prompt_id=%lld AND pos=%d AND layer=4 AND expert=%d",
                         (long long)pid0, t, j);
                b.n = 0;
                if (ms_trace_query(db, q, q_row, &b, &err) || b.n != 1 ||
                    strtod(b.last, NULL) != (double)ms_fp16_to_fp32(ms_fp32_to_fp16(s->probs[t][4][j]))) bad++;
            }
        MT_CHECK(!bad, "weight / l2 / prob values exact through the views (%d bad)", bad);
        QAcc c = { 0 };
        rc = ms_trace_query(db, "SELECT sum(n) FROM expert_load WHERE layer = 2", q_row, &c, &err);
        MT_CHECK(rc == 0 && c.sum == 2LL * NPOS * K, "expert_load view");
        QAcc d = { 0 };
        rc = ms_trace_query(db, "SELECT count(*) FROM routing_entropy", q_row, &d, &err);
        MT_CHECK(rc == 0 && d.sum == NL - 1, "routing_entropy view: %lld layers", d.sum);
        QAcc e = { 0 };
        rc = ms_trace_query(db, "SELECT value FROM prompt_label WHERE key = 'pair'", q_row, &e, &err);
        MT_CHECK(rc == 0 && e.n == 1 && e.sum == 3, "prompt_label view");
        MT_CHECK(ms_trace_query(db, "DELETE FROM model", q_row, &e, &err) == MS_EINVAL, "write refused: %s", err.msg);
        MT_CHECK(ms_trace_query(db, "SELECT 1; DELETE FROM model", q_row, &e, &err) == MS_EINVAL, "two statements refused");
        MT_CHECK(ms_trace_query(db, "SELEC nonsense", q_row, &e, &err) < 0 && strstr(err.msg, "t.db"), "syntax error: %s", err.msg);
    }

    /* --- result tables */
    {
        MsColumn cols[] = { { "layer", MS_COL_INT }, { "expert", MS_COL_INT }, { "score", MS_COL_REAL }, { "note", MS_COL_TEXT } };
        MsTraceResult *r = ms_trace_result_new(db, run, "test", "{\"x\":1}", "an_test", cols, 4, &err);
        MT_CHECK(r != NULL, "result table: %s", r ? "" : err.msg);
        for (int i = 0; r && i < 10; i++) {
            ms_trace_result_int(r, 0, i % 3);
            ms_trace_result_int(r, 1, i);
            ms_trace_result_real(r, 2, i == 4 ? NAN : i * 0.5);
            ms_trace_result_text(r, 3, i == 2 ? NULL : "n");
            ms_trace_result_row(r, &err);
        }
        MT_CHECK(r && ms_trace_result_commit(r, &err) == 0, "result commit");
        ms_trace_result_free(r);
        QAcc a = { 0 };
        rc = ms_trace_query(db, "SELECT count(*) FROM an_test WHERE score IS NULL", q_row, &a, &err);
        MT_CHECK(rc == 0 && a.sum == 1, "result rows with NULL");
        r = ms_trace_result_new(db, run, "bad", NULL, "routing", cols, 4, &err);
        MT_CHECK(!r, "reserved name refused: %s", err.msg);
        r = ms_trace_result_new(db, run, "bad", NULL, "x; drop", cols, 4, &err);
        MT_CHECK(!r, "bad identifier refused");
        /* uncommitted result is rolled back */
        r = ms_trace_result_new(db, run, "temp", NULL, "an_temp", cols, 4, &err);
        ms_trace_result_free(r);
        a.n = 0;
        rc = ms_trace_query(db, "SELECT count(*) FROM analysis WHERE table_name = 'an_temp'", q_row, &a, &err);
        MT_CHECK(rc == 0 && !strcmp(a.last, "0"), "uncommitted result rolled back");
    }
    ms_trace_writer_free(w);

    /* --- read-only handle; second writer process not needed for WAL check */
    MsTraceDb *ro = ms_trace_open(path, MS_TRACE_READ, &err);
    MT_CHECK(ro != NULL, "read-only open while writer open");
    if (ro) {
        int64_t *ids; int n;
        MT_CHECK(ms_trace_runs(ro, &ids, &n, &err) == 0 && n == 1 && ids[0] == run, "runs list");
        free(ids);
        MsTraceRunInfo r2;
        MT_CHECK(ms_trace_run_new(ro, &(MsTraceRunDesc){ .model_id = 1 }, &err) < 0, "read-only refuses writes");
        MT_CHECK(ms_trace_run_info(ro, run, &r2, &err) == 0, "read-only run info");
        ms_trace_run_info_clear(&r2);
        ms_trace_close(ro);
    }

    /* --- imports */
    {
        snprintf(p2, sizeof p2, "%s/imp.csv", dir);
        const char *csv = "prompt,position,layer,rank,expert,weight\n"
                          "0,0,0,1,5,0.25\n0,0,0,0,9,0.75\n0,0,2,0,3,1\n0,1,0,0,2,0.5\n0,1,0,1,7,0.5\n"
                          "1,0,0,0,11,\n1,0,0,1,4,\n";
        write_file(p2, csv, strlen(csv));
        char lab[512];
        snprintf(lab, sizeof lab, "%s/labels.jsonl", dir);
        const char *lj = "{\"prompt\": 1, \"labels\": {\"lang\": \"de\"}}\n";
        write_file(lab, lj, strlen(lj));
        MsImportOptions io = { .labels_path = lab };
        int64_t irun = 0;
        rc = ms_trace_import(db, MS_IMPORT_CSV, p2, &io, &irun, &err);
        MT_CHECK(rc == 0 && irun > run, "csv import: %s", rc ? err.msg : "");
        MsTraceRunInfo ii;
        rc = ms_trace_run_info(db, irun, &ii, &err);
        MT_CHECK(rc == 0 && ii.model.n_expert == 12 && ii.model.n_expert_used == 2 && ii.n_prompts == 2 &&
                 ii.n_tokens == 3 && ii.model.n_moe_layers == 2 && ii.model.is_moe[2] && !ii.model.is_moe[1],
                 "inferred E=%d K=%d, %lld prompts", ii.model.n_expert, ii.model.n_expert_used, (long long)ii.n_prompts);
        ms_trace_run_info_clear(&ii);
        MsTraceCursor *c = ms_trace_routing(db, irun, 0, &err);
        MsTraceRoute buf[16];
        int n = ms_trace_routing_next(c, buf, 16, &err);
        MT_CHECK(n == 7 && buf[0].expert == 9 && buf[0].weight == 0.75f && buf[1].expert == 5 && buf[2].layer == 2 &&
                 buf[5].expert == 11 && isnan(buf[5].weight), "csv routing read back (%d rows)", n);
        ms_trace_cursor_free(c);
        QAcc a = { 0 };
        char q[256];
        snprintf(q, sizeof q, "SELECT value FROM prompt_label WHERE run_id = %lld AND idx = 1 AND key = 'lang'", (long long)irun);
        rc = ms_trace_query(db, q, q_row, &a, &err);
        MT_CHECK(rc == 0 && a.n == 1 && !strcmp(a.last, "de"), "labels attached");

        const char *bad = "prompt,position,layer,rank,expert,weight\n0,0,0,0,1,0.5\n0,0,0,x,1,0.5\n";
        write_file(p2, bad, strlen(bad));
        int64_t nruns_before;
        { int64_t *ids; int nr; ms_trace_runs(db, &ids, &nr, &err); nruns_before = nr; free(ids); }
        rc = ms_trace_import(db, MS_IMPORT_CSV, p2, NULL, &irun, &err);
        MT_CHECK(rc == MS_EFORMAT && strstr(err.msg, "imp.csv:3:"), "malformed csv line reported: %s", err.msg);
        { int64_t *ids; int nr; ms_trace_runs(db, &ids, &nr, &err); MT_CHECK(nr == nruns_before, "failed import left no run"); free(ids); }
        const char *bad2 = "prompt,position,layer,rank,expert,weight\n0,0,0,0,1,0.5\n0,0,0,1,1,0.5\n";
        write_file(p2, bad2, strlen(bad2));
        MT_CHECK(ms_trace_import(db, MS_IMPORT_CSV, p2, NULL, &irun, &err) == MS_EFORMAT, "duplicate expert refused: %s", err.msg);
        /* a row has as many fields as the header names: a sixth under a five-column header is not a weight */
        const char *extra = "prompt,position,layer,rank,expert\n0,0,0,0,1\n0,0,0,1,2,0.5\n";
        write_file(p2, extra, strlen(extra));
        rc = ms_trace_import(db, MS_IMPORT_CSV, p2, NULL, &irun, &err);
        MT_CHECK(rc == MS_EFORMAT && strstr(err.msg, "imp.csv:3: expected 5 fields as in the header, got 6"),
                 "csv: a sixth field under a five-column header is refused: %s", err.msg);
        const char *short6 = "prompt,position,layer,rank,expert,weight\n0,0,0,0,1,0.5\n0,0,0,1,2\n";
        write_file(p2, short6, strlen(short6));
        rc = ms_trace_import(db, MS_IMPORT_CSV, p2, NULL, &irun, &err);
        MT_CHECK(rc == MS_EFORMAT && strstr(err.msg, "imp.csv:3: expected 6 fields as in the header, got 5"),
                 "csv: a missing weight field is refused (an empty one is how a weight is left out): %s", err.msg);
        MsImportOptions io2 = { .n_expert = 4 };
        write_file(p2, csv, strlen(csv));
        MT_CHECK(ms_trace_import(db, MS_IMPORT_CSV, p2, &io2, &irun, &err) == MS_EFORMAT, "--experts enforced: %s", err.msg);
        /* positions without rows: up to as many as those with rows plus 1024 become empty token rows; a file
         * cannot describe a prompt far longer than its data (found by fuzz-import) */
        const char *gap_ok = "prompt,position,layer,rank,expert\n0,0,0,0,1\n0,1,0,0,2\n0,1028,0,0,3\n";
        write_file(p2, gap_ok, strlen(gap_ok));
        rc = ms_trace_import(db, MS_IMPORT_CSV, p2, NULL, &irun, &err);
        MsTraceRunInfo gri;
        MT_CHECK(rc == 0 && ms_trace_run_info(db, irun, &gri, &err) == 0 && gri.n_tokens == 1029,
                 "csv: 1026 positions without rows among 3 with rows are kept as empty tokens (%s)", rc ? err.msg : "ok");
        if (rc == 0) ms_trace_run_info_clear(&gri);
        const char *gap_bad = "prompt,position,layer,rank,expert\n0,0,0,0,1\n0,1,0,0,2\n0,1029,0,0,3\n";
        write_file(p2, gap_bad, strlen(gap_bad));
        { int64_t *ids; int nr; ms_trace_runs(db, &ids, &nr, &err); nruns_before = nr; free(ids); }
        rc = ms_trace_import(db, MS_IMPORT_CSV, p2, NULL, &irun, &err);
        MT_CHECK(rc == MS_EFORMAT && strstr(err.msg, "imp.csv:4: position 1029: 1027 earlier positions of prompt 0 have no rows"),
                 "csv: one more is refused, naming the line: %s", err.msg);
        { int64_t *ids; int nr; ms_trace_runs(db, &ids, &nr, &err); MT_CHECK(nr == nruns_before, "and leaves no run"); free(ids); }

        /* a label for prompt 100,000,000 costs one entry, not an array up to it (fuzz-import found 12 s and
         * 1.6 GB for a 45-byte input); it is still refused, naming the labels file's line.  Labels for
         * one prompt on several lines: the last line wins. */
        {
            struct rusage ru0, ru1;
            getrusage(RUSAGE_SELF, &ru0);
            write_file(p2, csv, strlen(csv));
            const char *far = "{\"prompt\": 1, \"labels\": {\"lang\": \"fr\"}}\n"
                              "{\"prompt\": 100000000, \"labels\": {\"\": \"\"}}\n";
            write_file(lab, far, strlen(far));
            { int64_t *ids; int nr; ms_trace_runs(db, &ids, &nr, &err); nruns_before = nr; free(ids); }
            rc = ms_trace_import(db, MS_IMPORT_CSV, p2, &io, &irun, &err);
            getrusage(RUSAGE_SELF, &ru1);
            MT_CHECK(rc == MS_EFORMAT && strstr(err.msg, "labels.jsonl:2: labels for prompt 100000000, which"),
                     "label for a far prompt refused with its line: %s", err.msg);
            MT_CHECK(ru1.ru_maxrss - ru0.ru_maxrss < 100 * 1024, "without memory for the prompts before it (+%ld KB)",
                     ru1.ru_maxrss - ru0.ru_maxrss);
            { int64_t *ids; int nr; ms_trace_runs(db, &ids, &nr, &err); MT_CHECK(nr == nruns_before, "and leaves no run"); free(ids); }
            const char *twice = "{\"prompt\": 1, \"labels\": {\"lang\": \"fr\"}}\n"
                                "{\"prompt\": 0, \"labels\": {\"lang\": \"en\"}}\n"
                                "{\"prompt\": 1, \"labels\": {\"lang\": \"it\"}}\n";
            write_file(lab, "", 0);   /* no labels at all (fuzz-import: qsort of no array) */
            rc = ms_trace_import(db, MS_IMPORT_CSV, p2, &io, &irun, &err);
            MT_CHECK(rc == 0, "an empty labels file labels nothing (%s)", rc ? err.msg : "ok");
            write_file(lab, twice, strlen(twice));
            rc = ms_trace_import(db, MS_IMPORT_CSV, p2, &io, &irun, &err);
            QAcc a2 = { 0 };
            snprintf(q, sizeof q, "SELECT value FROM prompt_label WHERE run_id = %lld AND key = 'lang' ORDER BY idx",
                     (long long)irun);
            MT_CHECK(rc == 0 && ms_trace_query(db, q, q_row, &a2, &err) == 0 && a2.n == 2 && !strcmp(a2.last, "it"),
                     "labels repeated for a prompt: the last line wins (%s)", rc ? err.msg : a2.last);
        }

        /* jsonl */
        snprintf(p2, sizeof p2, "%s/imp.jsonl", dir);
        const char *jl = "{\"prompt\":0,\"position\":0,\"token_id\":17,\"piece\":\"he\\u0000y\",\"experts\":[[1,2],[3,4]],"
                         "\"weights\":[[0.5,0.5],[0.9,0.1]],\"layers\":[1,3]}\n"
                         "{\"prompt\":0,\"position\":1,\"experts\":[[5,6],[7,0]]}\n";
        write_file(p2, jl, strlen(jl));
        rc = ms_trace_import(db, MS_IMPORT_JSONL, p2, NULL, &irun, &err);
        MT_CHECK(rc == 0, "jsonl import: %s", rc ? err.msg : "");
        c = ms_trace_routing(db, irun, 0, &err);
        n = ms_trace_routing_next(c, buf, 16, &err);
        MT_CHECK(n == 8 && buf[0].layer == 1 && buf[2].layer == 3 && buf[3].weight == 0.1f && buf[6].expert == 7 &&
                 isnan(buf[7].weight), "jsonl routing read back");
        ms_trace_cursor_free(c);
        c = ms_trace_tokens(db, irun, 0, &err);
        MsTraceToken tk;
        MT_CHECK(ms_trace_tokens_next(c, &tk, &err) == 1 && tk.token_id == 17 && tk.piece_len == 4 &&
                 !memcmp(tk.piece, "he\0y", 4), "jsonl token piece with NUL");
        MT_CHECK(ms_trace_tokens_next(c, &tk, &err) == 1 && tk.token_id == -1, "unknown token id is -1");
        ms_trace_cursor_free(c);

        /* ids: two requests, int32 LE with JSON headers; -1 padding */
        snprintf(p2, sizeof p2, "%s/imp.ids", dir);
        FILE *f = fopen(p2, "wb");
        fputs("{\"tokens\":2,\"layers\":2,\"top_k\":2,\"layer_ids\":[0,2]}\n", f);
        int32_t ids1[] = { 1, 2, 3, 4, 5, -1, 7, 8 };
        for (size_t i = 0; i < 8; i++) {
            unsigned char b[4] = { (unsigned char)ids1[i], (unsigned char)(ids1[i] >> 8), (unsigned char)(ids1[i] >> 16),
                                   (unsigned char)(ids1[i] >> 24) };
            fwrite(b, 1, 4, f);
        }
        fputs("{\"tokens\":1,\"layers\":2,\"top_k\":2,\"layer_ids\":[0,2],\"weights\":true}\n", f);
        int32_t ids2[] = { 300, 1, 2, 3 };
        float w2[] = { 0.5f, 0.25f, 1, 0 };
        for (size_t i = 0; i < 4; i++) fwrite(&ids2[i], 4, 1, f); /* test host is little-endian (x86/arm) */
        fwrite(w2, 4, 4, f);
        fclose(f);
        rc = ms_trace_import(db, MS_IMPORT_IDS, p2, NULL, &irun, &err);
        MT_CHECK(rc == 0, "ids import: %s", rc ? err.msg : "");
        rc = ms_trace_run_info(db, irun, &ii, &err);
        MT_CHECK(rc == 0 && ii.n_prompts == 2 && ii.model.n_expert == 301 && ii.model.n_expert_used == 2 &&
                 ii.model.is_moe[2] && !ii.model.is_moe[1], "ids: 2 requests, E inferred 301");
        ms_trace_run_info_clear(&ii);
        c = ms_trace_routing(db, irun, 0, &err);
        n = ms_trace_routing_next(c, buf, 16, &err);
        MT_CHECK(n == 11 && buf[4].expert == 5 && buf[5].pos == 1 && buf[5].layer == 2 && buf[7].expert == 300 &&
                 buf[8].weight == 0.25f, "ids routing (padding dropped): %d rows", n);
        ms_trace_cursor_free(c);
        f = fopen(p2, "wb");
        fputs("{\"tokens\":5,\"layers\":2,\"top_k\":2}\n", f);
        fwrite(ids1, 4, 3, f);
        fclose(f);
        MT_CHECK(ms_trace_import(db, MS_IMPORT_IDS, p2, NULL, &irun, &err) == MS_EFORMAT, "truncated ids: %s", err.msg);
    }
    ms_trace_close(db);

    /* --- forward migration: a version-1 database (old routing view) opened
     * read-only is refused, read-write is migrated and answers again */
    {
        char cmd[2048];
        /* a version-1 file: old views, no channel columns (version 3), no
         * experiment tables (version 4), no run status (version 5), no
         * prompt.worker nor run_progress (version 6) */
        snprintf(cmd, sizeof cmd, "sqlite3 '%s' 'DROP VIEW run_progress; ALTER TABLE prompt DROP COLUMN worker; "
                 "ALTER TABLE run DROP COLUMN status; "
                 "ALTER TABLE run DROP COLUMN prompts_sha256; DROP VIEW expert_stats; "
                 "ALTER TABLE routing_packed DROP COLUMN out_argmax; ALTER TABLE hidden_stats DROP COLUMN channel; "
                 "CREATE VIEW expert_stats AS SELECT 1 AS stale; PRAGMA user_version=1; DROP VIEW routing; "
                 "CREATE VIEW routing AS SELECT 1 AS stale; DROP VIEW an_compare; DROP VIEW an_compare_shift; "
                 "DROP TABLE an_compare_prompt; DROP TABLE an_compare_pos; DROP TABLE an_compare_layer; "
                 "DROP TABLE sweep_candidate; DROP TABLE sweep; "
                 "INSERT INTO run(model_id,created,kind,settings,program_version,has_probs,has_stats) "
                 "SELECT model_id,created,kind,json_object(\"n_prompts\",9),program_version,0,0 FROM run LIMIT 1'",
                 path);
        int sys = system(cmd);
        MT_CHECK(sys == 0, "sqlite3 CLI made a version-1 file (exit %d)", sys);
        if (sys == 0) {
            MT_CHECK(ms_trace_open(path, MS_TRACE_READ, &err) == NULL && err.code == MS_EUNSUPPORTED,
                     "old schema read-only: %s", err.msg);
            db = ms_trace_open(path, MS_TRACE_WRITE, &err);
            MT_CHECK(db && ms_trace_user_version(db) == MS_TRACE_SCHEMA_VERSION, "old schema migrated");
            QAcc a = { 0 };
            char q[128];
            snprintf(q, sizeof q, "SELECT count(*) FROM routing WHERE run_id = %lld AND layer = 3", (long long)run);
            rc = db ? ms_trace_query(db, q, q_row, &a, &err) : -1;
            MT_CHECK(rc == 0 && a.sum == 2LL * NPOS * K, "migrated routing view: %lld rows at layer 3", a.sum);
            QAcc b = { 0 };
            rc = db ? ms_trace_query(db, "SELECT count(*) FROM expert_stats WHERE channel IS NULL AND layer = 3",
                                     q_row, &b, &err) : -1;
            MT_CHECK(rc == 0 && b.sum == 2LL * NPOS * K, "migrated expert_stats view: channel column, NULL in old rows");
            MsTraceCursor *hc = db ? ms_trace_hidden(db, run, 0, &err) : NULL;
            MsTraceHidden hb[4];
            MT_CHECK(hc && ms_trace_hidden_next(hc, hb, 4, &err) == 4 && hb[0].channel == -1 && hb[3].channel == -1,
                     "migrated hidden_stats: channel −1 in old rows");
            ms_trace_cursor_free(hc);
            /* version 5: a run whose settings name more prompts than it has
             * is incomplete; runs that say nothing are complete */
            QAcc st = { 0 };
            char q2[256];
            snprintf(q2, sizeof q2, "SELECT (SELECT status FROM run WHERE run_id = %lld) || ' ' || "
                     "(SELECT status FROM run ORDER BY run_id DESC LIMIT 1) || ' ' || "
                     "(SELECT count(*) FROM run WHERE prompts_sha256 IS NOT NULL)", (long long)run);
            rc = db ? ms_trace_query(db, q2, q_row, &st, &err) : -1;
            MT_CHECK(rc == 0 && !strcmp(st.last, "complete incomplete 0"), "migrated run status: %s", st.last);
            ms_trace_close(db);
        }
    }

    /* --- a foreign SQLite database is refused, never modified */
    snprintf(p2, sizeof p2, "%s/foreign.db", dir);
    {
        char cmd[1024];
        snprintf(cmd, sizeof cmd, "sqlite3 '%s' 'CREATE TABLE x(a)' 2>/dev/null", p2);
        if (system(cmd) == 0) {
            MT_CHECK(ms_trace_open(p2, MS_TRACE_WRITE, &err) == NULL && err.code == MS_EFORMAT, "foreign db: %s", err.msg);
            snprintf(cmd, sizeof cmd, "sqlite3 '%s' 'PRAGMA user_version=99' 2>/dev/null", path);
            if (system(cmd) == 0)
                MT_CHECK(ms_trace_open(path, MS_TRACE_WRITE, &err) == NULL && err.code == MS_EUNSUPPORTED,
                         "newer schema refused: %s", err.msg);
            /* a negative version (a fuzz finding: it indexed the migrations
             * backwards) is refused in one line, in either mode */
            snprintf(cmd, sizeof cmd, "sqlite3 '%s' 'PRAGMA user_version=-1' 2>/dev/null", path);
            if (system(cmd) == 0) {
                MT_CHECK(ms_trace_open(path, MS_TRACE_WRITE, &err) == NULL && err.code == MS_EFORMAT &&
                         strstr(err.msg, "schema version -1") && !strchr(err.msg, '\n'),
                         "negative schema version refused: %s", err.msg);
                MT_CHECK(ms_trace_open(path, MS_TRACE_READ, &err) == NULL && err.code == MS_EFORMAT,
                         "and read-only too: %s", err.msg);
            }
        }
    }
    /* --- version 5: run status, prompt sets known by content, the parent
     * run checked, one open rule for every mode */
    {
        snprintf(path, sizeof path, "%s/v5.db", dir);
        db = ms_trace_open(path, MS_TRACE_CREATE, &err);
        MT_CHECK(db != NULL, "v5 create: %s", db ? "" : err.msg);
        int64_t r1 = db ? make_run(db, false, false, &err) : -1;
        MsTraceRunInfo ri = { 0 };
        MT_CHECK(r1 > 0 && ms_trace_run_info(db, r1, &ri, &err) == 0 && !strcmp(ri.status, "incomplete") &&
                 ri.prompts_sha256 == NULL, "a new run is incomplete");
        ms_trace_run_info_clear(&ri);
        MT_CHECK(r1 > 0 && ms_trace_run_set_status(db, r1, "complete", &err) == 0 &&
                 ms_trace_run_info(db, r1, &ri, &err) == 0 && !strcmp(ri.status, "complete"), "marked complete");
        ms_trace_run_info_clear(&ri);
        MT_CHECK(db && ms_trace_run_set_status(db, r1, "done", &err) == MS_EINVAL, "bad status: %s", err.msg);
        MT_CHECK(db && ms_trace_run_set_status(db, 999, "complete", &err) == MS_ENOTFOUND, "no run: %s", err.msg);

        const char *sha_a = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        const char *sha_b = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
        MsTraceRunDesc d = { .model_id = 1, .kind = "trace", .settings_json = "{\"gen\":0,\"prompts\":\"p.txt\"}",
                             .prompts_sha256 = sha_a };
        int64_t r2 = db ? ms_trace_run_new(db, &d, &err) : -1;
        MT_CHECK(r2 > r1, "run with a prompt-set hash: %s", r2 > 0 ? "" : err.msg);
        MsTraceRunDesc q = d;
        q.settings_json = "{\"gen\":0,\"prompts\":\"./sub/../p.txt\"}";
        MT_CHECK(db && ms_trace_run_find(db, &q, &err) == r2, "found by content, whatever the path");
        q.prompts_sha256 = sha_b;
        MT_CHECK(db && ms_trace_run_find(db, &q, &err) == 0, "other content: no run");
        q = d;
        q.settings_json = "{\"gen\":1,\"prompts\":\"p.txt\"}";
        MT_CHECK(db && ms_trace_run_find(db, &q, &err) == 0, "other settings: no run");
        /* a run without a hash (before version 5) matches by its settings as written */
        q = (MsTraceRunDesc){ .model_id = 1, .kind = "trace", .settings_json = "{\"gen\":0}",
                              .interventions = "silence 3:5", .prompts_sha256 = sha_b };
        MT_CHECK(db && ms_trace_run_find(db, &q, &err) == r1, "old run found by its settings");

        q = d;
        q.parent_run_id = 99;
        MT_CHECK(db && ms_trace_run_new(db, &q, &err) == MS_EINVAL && strstr(err.msg, "no run 99") &&
                 strstr(err.msg, "v5.db") && !strstr(err.msg, "FOREIGN"), "missing parent: %s", err.msg);
        q.parent_run_id = r2;
        int64_t r3 = db ? ms_trace_run_new(db, &q, &err) : -1;
        MT_CHECK(r3 > r2 && ms_trace_run_find(db, &q, &err) == r3, "child run found under its parent");
        q.parent_run_id = r1;
        MT_CHECK(db && ms_trace_run_find(db, &q, &err) == 0, "not under another parent");
        ms_trace_close(db);

        /* open: a directory, a missing file, a versioned foreign database */
        MT_CHECK(ms_trace_open(dir, MS_TRACE_CREATE, &err) == NULL && strstr(err.msg, "is a directory"),
                 "directory as database: %s", err.msg);
        snprintf(p2, sizeof p2, "%s/missing.db", dir);
        MT_CHECK(ms_trace_open(p2, MS_TRACE_WRITE, &err) == NULL && strstr(err.msg, "No such file") &&
                 access(p2, F_OK) != 0, "missing file read-write: %s (not created)", err.msg);
        char cmd[1024];
        snprintf(p2, sizeof p2, "%s/versioned.db", dir);
        snprintf(cmd, sizeof cmd, "sqlite3 '%s' 'CREATE TABLE x(a); PRAGMA user_version=5' 2>/dev/null", p2);
        if (system(cmd) == 0) {
            MT_CHECK(ms_trace_open(p2, MS_TRACE_READ, &err) == NULL && err.code == MS_EFORMAT &&
                     strstr(err.msg, "not a moescope trace database"), "versioned foreign db read-only: %s", err.msg);
            MT_CHECK(ms_trace_open(p2, MS_TRACE_CREATE, &err) == NULL && err.code == MS_EFORMAT,
                     "versioned foreign db read-write: %s", err.msg);
        }
    }
    free(s);
    return mt_done();
}
