/* fuzz-db.c — opening and reading a crafted trace database.
 *
 * The input is a database file image.  It is opened read-write (schema
 * checks, the application id, forward migrations), then read-only, and
 * everything a viewer or an analysis reads is read: runs and their model
 * rows, prompts, tokens, the packed routing blobs (in small chunks, so
 * groups split across chunks, and undecoded), router probabilities,
 * residual stats, the analysis registry and result tables, comparison rows,
 * and the analyses themselves (without writing).  Checks: no crash, and
 * every failure is one line naming the database.  Seeds:
 * tests/fuzz/corpus/db (small traces of every schema version, with probs
 * and stats, imports, experiments, analysis tables, and the bad databases
 * of the tests). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz-memdb.h"
#include "run.h"
#include "trace.h"

static void init(void) { fz_sqlite_init(); }
#define FUZZ_INIT init
#include "fuzz.h"

static const char *uri_now;

static void check_err(const MsError *e)
{
    if (!e->code) return;
    size_t l = strlen(uri_now);
    if (!e->msg[0] || strchr(e->msg, '\n') || strncmp(e->msg, uri_now, l) != 0) {
        fprintf(stderr, "fuzz-db: bad error message '%s'\n", e->msg);
        abort();
    }
}

static volatile uint64_t sink;

static void read_run(MsTraceDb *db, int64_t run)
{
    MsError e = { 0 };
    MsTraceRunInfo ri;
    if (ms_trace_run_info(db, run, &ri, &e) == 0) {
        sink += (uint64_t)ri.model.n_layer + (uint64_t)ri.model.n_expert + ri.model.is_moe[0];
        ms_trace_run_info_clear(&ri);
    }
    check_err(&e);

    MsTraceCursor *c = ms_trace_prompts(db, run, &e);
    MsTracePrompt p;
    while (c && ms_trace_prompts_next(c, &p, &e) > 0)
        sink += p.text_len ? (uint8_t)p.text[p.text_len - 1] : 0;
    ms_trace_cursor_free(c);
    check_err(&e);

    c = ms_trace_tokens(db, run, 0, &e);
    MsTraceToken t;
    while (c && ms_trace_tokens_next(c, &t, &e) > 0)
        sink += t.piece_len ? (uint8_t)t.piece[t.piece_len - 1] : 0;
    ms_trace_cursor_free(c);
    check_err(&e);

    c = ms_trace_routing(db, run, 0, &e);
    MsTraceRoute r[7];
    int n;
    while (c && (n = ms_trace_routing_next(c, r, 7, &e)) > 0)
        for (int i = 0; i < n; i++) sink += (uint64_t)r[i].expert + (uint64_t)r[i].layer + (r[i].weight > 0);
    ms_trace_cursor_free(c);
    check_err(&e);

    c = ms_trace_routing_range(db, run, 0, INT64_MAX, &e);
    MsTraceRoutePacked pk;
    while (c && ms_trace_routing_next_packed(c, &pk, &e) > 0) {
        sink += pk.experts[2 * pk.k - 1];
        if (pk.weights) sink += pk.weights[4 * pk.k - 1];
        if (pk.maxabs) sink += pk.maxabs[4 * pk.k - 1];
        if (pk.l2) sink += pk.l2[4 * pk.k - 1];
        if (pk.argmax) sink += pk.argmax[2 * pk.k - 1];
    }
    ms_trace_cursor_free(c);
    check_err(&e);

    c = ms_trace_probs(db, run, 0, &e);
    MsTraceProbs pr;
    while (c && ms_trace_probs_next(c, &pr, &e) > 0)
        if (pr.n_expert > 0) sink += (pr.probs[pr.n_expert - 1] > 0) + (pr.logits[pr.n_expert - 1] > 0);
    ms_trace_cursor_free(c);
    check_err(&e);

    c = ms_trace_hidden(db, run, 0, &e);
    MsTraceHidden h[5];
    while (c && (n = ms_trace_hidden_next(c, h, 5, &e)) > 0)
        for (int i = 0; i < n; i++) sink += (uint64_t)h[i].channel;
    ms_trace_cursor_free(c);
    check_err(&e);

    MsTracePromptInfo pi;
    if (ms_trace_prompt_get(db, run, 0, &pi, &e) == 0) ms_trace_prompt_info_clear(&pi);
    check_err(&e);
}

static void read_results(MsTraceDb *db)
{
    MsError e = { 0 };
    MsTraceCursor *c = ms_trace_analyses(db, 0, &e);
    MsTraceAnalysis a;
    char tables[8][80];
    int nt = 0;
    while (c && ms_trace_analyses_next(c, &a, &e) > 0)
        if (nt < 8 && a.table) snprintf(tables[nt++], sizeof tables[0], "%s", a.table);
    ms_trace_cursor_free(c);
    check_err(&e);
    for (int i = 0; i < nt; i++) {
        c = ms_trace_table(db, tables[i], 0, &e);
        const MsTraceValue *v;
        const MsColumn *cols;
        int nc = c ? ms_trace_table_columns(c, &cols) : 0;
        while (c && ms_trace_table_next(c, &v, &e) > 0)
            for (int k = 0; k < nc; k++) sink += v[k].type == MS_COL_TEXT || v[k].type == MS_COL_BLOB ? v[k].len : 0;
        ms_trace_cursor_free(c);
        check_err(&e);
    }
}

static void analyses(MsTraceDb *db, int64_t run)
{
    /* the analyses of a run whose model row asks for a modest shape (a
     * huge one is a valid request for a lot of memory, not a bug) */
    MsError e = { 0 };
    MsTraceRunInfo ri;
    if (ms_trace_run_info(db, run, &ri, &e) != 0) return;
    double shape = (double)ri.model.n_layer * ri.model.n_expert * ri.model.n_expert;
    ms_trace_run_info_clear(&ri);
    if (shape > 1 << 16) return;
    static const char *const mods[] = { "load", "coactivation", "affinity", "superexperts", "pathways", "npmi",
                                        "consistency" };
    for (size_t i = 0; i < sizeof mods / sizeof *mods; i++) {
        MsAnOptions o;
        ms_an_options_default(&o);
        o.run_id = run;
        o.write = false;
        o.n_pairs = 20;
        if (!strcmp(mods[i], "consistency")) {
            o.segments[0] = 4;
            o.n_segments = 1;
            o.cache[0] = 2;
            o.n_cache = 1;
        }
        MsAnResult res;
        memset(&e, 0, sizeof e);
        ms_analyze(db, mods[i], &o, &res, &e);
        ms_an_result_clear(&res);
        check_err(&e);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char uri[96];
    /* the file image, with a WAL-mode header switched to rollback mode: an
     * in-memory database has no shared-memory index, and a WAL file whose
     * -wal is absent holds exactly its pages anyway */
    uint8_t *img = malloc(size ? size : 1);
    if (!img) return 0;
    memcpy(img, data, size);
    if (size > 19 && img[18] == 2 && img[19] == 2) img[18] = img[19] = 1;
    sqlite3 *keep = fz_memdb("fuzz-db", img, size, uri, sizeof uri);
    free(img);
    if (!keep) return 0;
    uri_now = uri;
    MsError e = { 0 };
    MsTraceDb *db = ms_trace_open(uri, MS_TRACE_WRITE, &e);   /* schema checks, migrations */
    check_err(&e);
    if (getenv("MS_FUZZ_VERBOSE")) fprintf(stderr, "open read-write: %s\n", db ? "ok" : e.msg);
    ms_trace_close(db);
    memset(&e, 0, sizeof e);
    db = ms_trace_open(uri, MS_TRACE_READ, &e);
    check_err(&e);
    if (getenv("MS_FUZZ_VERBOSE")) fprintf(stderr, "open read-only: %s\n", db ? "ok" : e.msg);
    if (db) {
        int64_t *runs = NULL;
        int nr = 0;
        if (ms_trace_runs(db, &runs, &nr, &e) == 0) {
            for (int i = 0; i < nr && i < 4; i++) {
                read_run(db, runs[i]);
                analyses(db, runs[i]);
            }
            if (nr >= 2) {
                MsCompareRows cr;
                memset(&cr, 0, sizeof cr);
                if (ms_trace_compare_rows(db, runs[1], runs[0], &cr, &e) == 0) ms_trace_compare_rows_clear(&cr);
                check_err(&e);
            }
            free(runs);
        }
        check_err(&e);
        read_results(db);
        uint64_t stamp = 0;
        ms_trace_changed(db, &stamp, &e);
        ms_trace_close(db);
    }
    sqlite3_close(keep);
    return 0;
}
