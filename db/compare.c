/* compare.c — experiment comparison rows and sweep results (schema version
 * 4), and the outer transaction that commits an experiment's prompt whole. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db-internal.h"

int ms_trace_tx_begin(MsTraceDb *db, MsError *err)
{
    if (db->be) return db->be->tx_begin(db, err);
    return ms_db_exec(db, "BEGIN IMMEDIATE", err);
}
int ms_trace_tx_commit(MsTraceDb *db, MsError *err)
{
    if (db->be) return db->be->tx_commit(db, err);
    return ms_db_exec(db, "COMMIT", err);
}

void ms_trace_tx_rollback(MsTraceDb *db)
{
    if (db && db->be) { db->be->tx_rollback(db); return; }
    if (db && !sqlite3_get_autocommit(db->h)) sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
}

static void bind_real(sqlite3_stmt *st, int i, double v)
{
    if (isfinite(v)) sqlite3_bind_double(st, i, v);
    else sqlite3_bind_null(st, i);
}

/* int32 token ids as a little-endian blob */
static unsigned char *ids_blob(const int32_t *ids, int n)
{
    unsigned char *b = malloc((size_t)(n > 0 ? n : 1) * 4);
    for (int i = 0; b && i < n; i++) {
        uint32_t v = (uint32_t)ids[i];
        b[4 * i] = (unsigned char)v;
        b[4 * i + 1] = (unsigned char)(v >> 8);
        b[4 * i + 2] = (unsigned char)(v >> 16);
        b[4 * i + 3] = (unsigned char)(v >> 24);
    }
    return b;
}

static int step_done(MsTraceDb *db, sqlite3_stmt *st, const char *what, MsError *err)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : ms_db_fail(db, err, MS_EDB, what);
}

static int put_prompt(MsTraceDb *db, int64_t run, int64_t base, const MsComparePrompt *p, MsError *err)
{
    sqlite3_stmt *st;
    int rc = ms_db_prepare(db, "INSERT INTO an_compare_prompt VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,"
                               "?15,?16)", &st, err);
    if (rc) return rc;
    unsigned char *tb = ids_blob(p->tokens_baseline, p->n_tokens_baseline);
    unsigned char *tr = ids_blob(p->tokens_run, p->n_tokens_run);
    if (!tb || !tr) {
        free(tb);
        free(tr);
        sqlite3_finalize(st);
        return ms_error_set(err, MS_ENOMEM, "%s: out of memory", db->path);
    }
    sqlite3_bind_int64(st, 1, run);
    sqlite3_bind_int64(st, 2, base);
    sqlite3_bind_int(st, 3, p->index);
    sqlite3_bind_int(st, 4, p->n_tokens);
    sqlite3_bind_int(st, 5, p->n_prompt_tokens);
    bind_real(st, 6, p->kl_mean);
    bind_real(st, 7, p->kl_max);
    sqlite3_bind_int(st, 8, p->n_scored);
    bind_real(st, 9, p->nll_baseline);
    bind_real(st, 10, p->nll_run);
    sqlite3_bind_int(st, 11, p->top1_agree);
    if (p->first_divergence >= 0) sqlite3_bind_int(st, 12, p->first_divergence);
    if (p->text_baseline) sqlite3_bind_text(st, 13, p->text_baseline, -1, SQLITE_STATIC);
    if (p->text_run) sqlite3_bind_text(st, 14, p->text_run, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 15, tb, 4 * p->n_tokens_baseline, SQLITE_STATIC);
    sqlite3_bind_blob(st, 16, tr, 4 * p->n_tokens_run, SQLITE_STATIC);
    rc = step_done(db, st, "add comparison", err);
    sqlite3_finalize(st);
    free(tb);
    free(tr);
    return rc;
}


/* ------------------------------------------- another backend (PostgreSQL)
 * The same statements through the backend's exec (SQLite's ?N numbering;
 * the SQL here is the portable subset both dialects read alike). */

#define VI(x) ((MsTraceValue){ .type = MS_COL_INT, .i = (x) })
#define VR(x) ((MsTraceValue){ .type = isfinite(x) ? MS_COL_REAL : MS_COL_NULL, .r = (x) })
static inline MsTraceValue VT(const char *x) { return (MsTraceValue){ .type = x ? MS_COL_TEXT : MS_COL_NULL, .s = x }; }
#define VB(p, n) ((MsTraceValue){ .type = MS_COL_BLOB, .s = (const char *)(p), .len = (n) })

static int bx(MsTraceDb *db, const char *sql, int n, const MsTraceValue *p, MsDbRows *out, MsError *err)
{
    if (!db->be->exec) return ms_db_unsupported(db, err, "experiments and sweeps");
    return db->be->exec(db, sql, n, p, out, err);
}
static const MsTraceValue *rv(const MsDbRows *r, int row, int col) { return &r->v[(size_t)row * r->n_cols + col]; }
static int64_t rv_i(const MsDbRows *r, int row, int col)
{
    const MsTraceValue *v = rv(r, row, col);
    return v->type == MS_COL_INT ? v->i : v->type == MS_COL_REAL ? (int64_t)v->r : 0;
}
static double rv_r(const MsDbRows *r, int row, int col)
{
    const MsTraceValue *v = rv(r, row, col);
    return v->type == MS_COL_REAL ? v->r : v->type == MS_COL_INT ? (double)v->i : NAN;
}
static char *rv_dup(const MsDbRows *r, int row, int col)
{
    const MsTraceValue *v = rv(r, row, col);
    return v->type == MS_COL_TEXT ? strdup(v->s) : NULL;
}
static int32_t *rv_ids(const MsDbRows *r, int row, int col, int *n)
{
    const MsTraceValue *v = rv(r, row, col);
    int len = v->type == MS_COL_BLOB ? (int)(v->len / 4) : 0;
    const unsigned char *b = (const unsigned char *)v->s;
    int32_t *o = malloc((size_t)(len > 0 ? len : 1) * sizeof *o);
    for (int i = 0; o && i < len; i++)
        o[i] = (int32_t)((uint32_t)b[4 * i] | (uint32_t)b[4 * i + 1] << 8 | (uint32_t)b[4 * i + 2] << 16 |
                         (uint32_t)b[4 * i + 3] << 24);
    *n = o ? len : 0;
    return o;
}

/* INSERT of n rows of w values each, in statements of up to 100 rows */
static int be_insert_rows(MsTraceDb *db, const char *table, int w, const MsTraceValue *vals, int n, MsError *err)
{
    /* "?NNNNN," per value, "()," per row, the head */
    size_t cap = (size_t)100 * (size_t)w * 8 + 100 * 3 + strlen(table) + 64;
    char *sql = malloc(cap);
    if (!sql) return ms_error_set(err, MS_ENOMEM, "%s: out of memory", db->path);
    int rc = 0;
    for (int at = 0; !rc && at < n; at += 100) {
        int m = MS_MIN(100, n - at);
        size_t l = (size_t)snprintf(sql, cap, "INSERT INTO %s VALUES", table);
        for (int i = 0; i < m && l < cap; i++) {
            l += (size_t)snprintf(sql + l, cap - l, "%s(", i ? "," : "");
            for (int c = 0; c < w && l < cap; c++) l += (size_t)snprintf(sql + l, cap - l, "%s?%d", c ? "," : "", i * w + c + 1);
            if (l < cap) l += (size_t)snprintf(sql + l, cap - l, ")");
        }
        rc = bx(db, sql, m * w, vals + (size_t)at * w, NULL, err);
    }
    free(sql);
    return rc;
}

static int be_compare_put(MsTraceDb *db, int64_t run_id, int64_t base, const MsComparePrompt *p,
                          const MsComparePos *pos, int n_pos, const MsCompareLayer *lay, int n_lay, MsError *err)
{
    unsigned char *tb = ids_blob(p->tokens_baseline, p->n_tokens_baseline);
    unsigned char *tr = ids_blob(p->tokens_run, p->n_tokens_run);
    MsTraceValue *v = malloc((size_t)(MS_MAX(n_pos * 9, n_lay * 7) + 1) * sizeof *v);
    int rc = !tb || !tr || !v ? ms_error_set(err, MS_ENOMEM, "%s: out of memory", db->path) : 0;
    if (!rc) {
        MsTraceValue a[16] = { VI(run_id), VI(base), VI(p->index), VI(p->n_tokens), VI(p->n_prompt_tokens),
            VR(p->kl_mean), VR(p->kl_max), VI(p->n_scored), VR(p->nll_baseline), VR(p->nll_run), VI(p->top1_agree),
            p->first_divergence >= 0 ? VI(p->first_divergence) : (MsTraceValue){ 0 }, VT(p->text_baseline),
            VT(p->text_run), VB(tb, 4 * (size_t)p->n_tokens_baseline), VB(tr, 4 * (size_t)p->n_tokens_run) };
        rc = bx(db, "INSERT INTO an_compare_prompt VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16)", 16,
                a, NULL, err);
    }
    for (int i = 0; !rc && i < n_pos; i++) {
        MsTraceValue *r = v + (size_t)i * 9;
        r[0] = VI(run_id); r[1] = VI(base); r[2] = VI(p->index); r[3] = VI(pos[i].pos);
        r[4] = (MsTraceValue){ .type = MS_COL_REAL, .r = pos[i].kl };
        r[5] = VR((double)pos[i].lp_baseline); r[6] = VR((double)pos[i].lp_run);
        r[7] = VI(pos[i].top1_baseline); r[8] = VI(pos[i].top1_run);
    }
    if (!rc) rc = be_insert_rows(db, "an_compare_pos", 9, v, n_pos, err);
    for (int i = 0; !rc && i < n_lay; i++) {
        MsTraceValue *r = v + (size_t)i * 7;
        r[0] = VI(run_id); r[1] = VI(base); r[2] = VI(p->index); r[3] = VI(lay[i].layer); r[4] = VI(lay[i].n_pos);
        r[5] = VI(lay[i].n_changed); r[6] = (MsTraceValue){ .type = MS_COL_REAL, .r = lay[i].jaccard_sum };
    }
    if (!rc) rc = be_insert_rows(db, "an_compare_layer", 7, v, n_lay, err);
    free(tb);
    free(tr);
    free(v);
    return rc;
}

static int be_compare_has(MsTraceDb *db, int64_t run_id, int index, MsError *err)
{
    MsTraceValue a[2] = { VI(run_id), VI(index) };
    MsDbRows r;
    int rc = bx(db, "SELECT 1 FROM an_compare_prompt WHERE run_id=?1 AND idx=?2", 2, a, &r, err);
    if (rc) return rc;
    rc = r.n_rows > 0;
    db->be->rows_free(&r);
    return rc;
}

static int be_read_prompts(MsTraceDb *db, MsCompareRows *out, MsError *err)
{
    MsTraceValue a[2] = { VI(out->run_id), VI(out->baseline_run_id) };
    MsDbRows r;
    int rc = bx(db, "SELECT idx, n_tokens, n_prompt_tokens, kl_mean, kl_max, n_scored, nll_baseline, "
                    "nll_run, top1_agree, coalesce(first_divergence, -1), text_baseline, text_run, "
                    "tokens_baseline, tokens_run FROM an_compare_prompt WHERE run_id=?1 AND "
                    "baseline_run_id=?2 ORDER BY idx", 2, a, &r, err);
    if (rc) return rc;
    out->prompts = calloc((size_t)MS_MAX(r.n_rows, 1), sizeof *out->prompts);
    bool oom = !out->prompts;
    for (int t = 0; !oom && t < r.n_rows; t++) {
        MsComparePrompt *p = &out->prompts[out->n_prompts++];
        p->index = (int)rv_i(&r, t, 0);
        p->n_tokens = (int)rv_i(&r, t, 1);
        p->n_prompt_tokens = (int)rv_i(&r, t, 2);
        p->kl_mean = rv_r(&r, t, 3);
        p->kl_max = rv_r(&r, t, 4);
        p->n_scored = (int)rv_i(&r, t, 5);
        p->nll_baseline = rv_r(&r, t, 6);
        p->nll_run = rv_r(&r, t, 7);
        p->top1_agree = (int)rv_i(&r, t, 8);
        p->first_divergence = (int)rv_i(&r, t, 9);
        p->text_baseline = rv_dup(&r, t, 10);
        p->text_run = rv_dup(&r, t, 11);
        p->tokens_baseline = rv_ids(&r, t, 12, &p->n_tokens_baseline);
        p->tokens_run = rv_ids(&r, t, 13, &p->n_tokens_run);
        oom = !p->tokens_baseline || !p->tokens_run;
    }
    db->be->rows_free(&r);
    return oom ? ms_error_set(err, MS_ENOMEM, "%s: out of memory", db->path) : 0;
}

/* The per-layer and per-prompt-layer arrays of a comparison result, for the
 * layers it names (either backend's reader). */
static int compare_layers_alloc(MsTraceDb *db, MsCompareRows *out, const int *layers, int nl, MsError *err)
{
    out->n_layers = nl;
    out->layers = calloc((size_t)(nl ? nl : 1), sizeof *out->layers);
    out->prompt_layers = calloc((size_t)(nl ? nl : 1) * (size_t)(out->n_prompts ? out->n_prompts : 1),
                                sizeof *out->prompt_layers);
    if (!out->layers || !out->prompt_layers) return ms_error_set(err, MS_ENOMEM, "%s: out of memory", db->path);
    for (int l = 0; l < nl; l++) {
        out->layers[l].layer = layers[l];
        for (int i = 0; i < out->n_prompts; i++) out->prompt_layers[(size_t)i * nl + l].layer = layers[l];
    }
    return 0;
}

static int be_read_layers(MsTraceDb *db, MsCompareRows *out, MsError *err)
{
    MsTraceValue a[2] = { VI(out->run_id), VI(out->baseline_run_id) };
    MsDbRows r;
    int rc = bx(db, "SELECT DISTINCT layer FROM an_compare_layer WHERE run_id=?1 AND baseline_run_id=?2 "
                    "ORDER BY layer", 2, a, &r, err);
    if (rc) return rc;
    int layers[MS_TRACE_MAX_LAYER], nl = 0;
    for (int t = 0; t < r.n_rows && nl < MS_TRACE_MAX_LAYER; t++) layers[nl++] = (int)rv_i(&r, t, 0);
    db->be->rows_free(&r);
    rc = compare_layers_alloc(db, out, layers, nl, err);
    if (rc) return rc;
    rc = bx(db, "SELECT idx, layer, n_pos, n_changed, jaccard_sum FROM an_compare_layer WHERE run_id=?1 AND "
                "baseline_run_id=?2 ORDER BY idx, layer", 2, a, &r, err);
    if (rc) return rc;
    int pi = 0;
    for (int t = 0; t < r.n_rows; t++) {
        int idx = (int)rv_i(&r, t, 0), layer = (int)rv_i(&r, t, 1), l = 0;
        while (pi < out->n_prompts && out->prompts[pi].index < idx) pi++;
        while (l < nl && layers[l] != layer) l++;
        if (pi >= out->n_prompts || out->prompts[pi].index != idx || l == nl) continue;
        MsCompareLayer *pl = &out->prompt_layers[(size_t)pi * nl + l], *tot = &out->layers[l];
        pl->n_pos = (int)rv_i(&r, t, 2);
        pl->n_changed = (int)rv_i(&r, t, 3);
        pl->jaccard_sum = rv_r(&r, t, 4);
        tot->n_pos += pl->n_pos;
        tot->n_changed += pl->n_changed;
        tot->jaccard_sum += pl->jaccard_sum;
    }
    db->be->rows_free(&r);
    return 0;
}

static int be_compare_positions(MsTraceDb *db, int64_t run_id, int index, MsComparePos **out, int *n, MsError *err)
{
    MsTraceValue a[2] = { VI(run_id), VI(index) };
    MsDbRows r;
    int rc = bx(db, "SELECT pos, kl, lp_baseline, lp_run, top1_baseline, top1_run FROM an_compare_pos "
                    "WHERE run_id=?1 AND idx=?2 ORDER BY pos", 2, a, &r, err);
    if (rc) return rc;
    MsComparePos *v = malloc((size_t)MS_MAX(r.n_rows, 1) * sizeof *v);
    for (int t = 0; v && t < r.n_rows; t++) {
        v[t].pos = (int)rv_i(&r, t, 0);
        v[t].kl = (float)rv_r(&r, t, 1);
        v[t].lp_baseline = (float)rv_r(&r, t, 2);
        v[t].lp_run = (float)rv_r(&r, t, 3);
        v[t].top1_baseline = (int32_t)rv_i(&r, t, 4);
        v[t].top1_run = (int32_t)rv_i(&r, t, 5);
    }
    int nr = r.n_rows;
    db->be->rows_free(&r);
    if (!v) return ms_error_set(err, MS_ENOMEM, "%s: out of memory", db->path);
    *out = v;
    *n = nr;
    return 0;
}

static int64_t be_sweep_new(MsTraceDb *db, int64_t model_id, int64_t baseline_run_id, const char *settings_json,
                            MsError *err)
{
    char now[32];
    time_t tt = time(NULL);
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(now, sizeof now, "%Y-%m-%dT%H:%M:%SZ", &tm);
    MsTraceValue a[5] = { baseline_run_id > 0 ? VI(baseline_run_id) : (MsTraceValue){ 0 }, VI(model_id), VT(now),
                          VT(settings_json), VT(MS_VERSION) };
    MsDbRows r;
    int rc = bx(db, "INSERT INTO sweep(baseline_run_id, model_id, created, settings, program_version) "
                    "VALUES(?1, ?2, ?3, ?4, ?5) RETURNING sweep_id", 5, a, &r, err);
    if (rc) return rc;
    int64_t id = r.n_rows ? rv_i(&r, 0, 0) : 0;
    db->be->rows_free(&r);
    return id > 0 ? id : ms_error_set(err, MS_EDB, "%s: add sweep: no id", db->path);
}

/* The sweep_candidate columns of n rows, 18 values each (malloc'd; NULL
 * when out of memory).  Texts point into rows. */
static MsTraceValue *sweep_values(int64_t sweep_id, const MsSweepRow *rows, int n)
{
    MsTraceValue *v = malloc((size_t)MS_MAX(n, 1) * 18 * sizeof *v);
    if (!v) return NULL;
    for (int i = 0; i < n; i++) {
        const MsSweepRow *r = &rows[i];
        MsTraceValue *x = v + (size_t)i * 18;
        x[0] = VI(sweep_id); x[1] = VI(r->cand); x[2] = VT(r->kind); x[3] = VT(r->label);
        x[4] = VT(r->interventions ? r->interventions : ""); x[5] = VI(r->n_experts); x[6] = VI(r->n_positions);
        const double d[] = { r->kl_mean, r->kl_max, r->top1_agreement, r->ppl_baseline, r->ppl_run, r->dppl,
                             r->changed_share, r->jaccard_mean, r->z_kl, r->z_dppl };
        for (int j = 0; j < 10; j++) x[7 + j] = VR(d[j]);
        x[17] = r->rank > 0 ? VI(r->rank) : (MsTraceValue){ 0 };
    }
    return v;
}

static int be_sweep_put(MsTraceDb *db, int64_t sweep_id, const MsSweepRow *rows, int n, MsError *err)
{
    MsTraceValue *v = sweep_values(sweep_id, rows, n);
    if (!v) return ms_error_set(err, MS_ENOMEM, "%s: out of memory", db->path);
    int rc = ms_trace_tx_begin(db, err);
    if (!rc) rc = be_insert_rows(db, "sweep_candidate", 18, v, n, err);
    if (!rc) rc = ms_trace_tx_commit(db, err);
    if (rc) ms_trace_tx_rollback(db);
    free(v);
    return rc;
}

static int be_sweep_rows(MsTraceDb *db, int64_t sweep_id, MsSweepRows *out, MsError *err)
{
    MsTraceValue a[1] = { VI(sweep_id) };
    MsDbRows r;
    int rc = bx(db, sweep_id > 0
                    ? "SELECT s.sweep_id, coalesce(s.baseline_run_id, 0), s.model_id, m.n_layer, m.n_expert, "
                      "s.created, s.settings FROM sweep s JOIN model m USING (model_id) WHERE s.sweep_id = ?1"
                    : "SELECT s.sweep_id, coalesce(s.baseline_run_id, 0), s.model_id, m.n_layer, m.n_expert, "
                      "s.created, s.settings FROM sweep s JOIN model m USING (model_id) "
                      "ORDER BY s.sweep_id DESC LIMIT 1", sweep_id > 0 ? 1 : 0, a, &r, err);
    if (rc) return rc;
    if (r.n_rows == 0) {
        db->be->rows_free(&r);
        return sweep_id > 0 ? ms_error_set(err, MS_ENOTFOUND, "%s: no sweep %lld", db->path, (long long)sweep_id)
                            : ms_error_set(err, MS_ENOTFOUND, "%s: no sweep stored (`moescope sweep ... --db %s` "
                                           "stores one)", db->path, db->path);
    }
    out->sweep_id = rv_i(&r, 0, 0);
    out->baseline_run_id = rv_i(&r, 0, 1);
    out->model_id = rv_i(&r, 0, 2);
    out->n_layer = (int)rv_i(&r, 0, 3);
    out->n_expert = (int)rv_i(&r, 0, 4);
    out->created = rv_dup(&r, 0, 5);
    out->settings = rv_dup(&r, 0, 6);
    db->be->rows_free(&r);
    if (!out->created) return ms_error_set(err, MS_ENOMEM, "%s: out of memory", db->path);
    a[0] = VI(out->sweep_id);
    rc = bx(db, "SELECT cand, kind, label, interventions, n_experts, n_positions, kl_mean, kl_max, "
                "top1_agreement, ppl_baseline, ppl_run, dppl, changed_share, jaccard_mean, z_kl, "
                "z_dppl, coalesce(rank, 0) FROM sweep_candidate WHERE sweep_id = ?1 ORDER BY cand", 1, a, &r, err);
    if (rc) return rc;
    out->rows = calloc((size_t)MS_MAX(r.n_rows, 1), sizeof *out->rows);
    if (!out->rows) rc = ms_error_set(err, MS_ENOMEM, "%s: out of memory", db->path);
    for (int t = 0; !rc && t < r.n_rows; t++) {
        MsSweepRow *x = &out->rows[out->n_rows++];
        x->cand = (int)rv_i(&r, t, 0);
        x->kind = rv_dup(&r, t, 1);
        x->label = rv_dup(&r, t, 2);
        x->interventions = rv_dup(&r, t, 3);
        x->n_experts = (int)rv_i(&r, t, 4);
        x->n_positions = rv_i(&r, t, 5);
        double *d[] = { &x->kl_mean, &x->kl_max, &x->top1_agreement, &x->ppl_baseline, &x->ppl_run, &x->dppl,
                        &x->changed_share, &x->jaccard_mean, &x->z_kl, &x->z_dppl };
        for (int j = 0; j < 10; j++) *d[j] = rv_r(&r, t, 6 + j);
        x->rank = (int)rv_i(&r, t, 16);
        if (!x->kind || !x->label || !x->interventions) rc = ms_error_set(err, MS_ENOMEM, "%s: out of memory", db->path);
    }
    db->be->rows_free(&r);
    return rc;
}

int ms_trace_compare_put(MsTraceDb *db, int64_t run_id, int64_t baseline_run_id, const MsComparePrompt *p,
                         const MsComparePos *pos, int n_pos, const MsCompareLayer *lay, int n_lay, MsError *err)
{
    if (db->be) return be_compare_put(db, run_id, baseline_run_id, p, pos, n_pos, lay, n_lay, err);
    int rc = put_prompt(db, run_id, baseline_run_id, p, err);
    sqlite3_stmt *st = NULL;
    if (!rc) rc = ms_db_prepare(db, "INSERT INTO an_compare_pos VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9)", &st, err);
    for (int i = 0; !rc && i < n_pos; i++) {
        sqlite3_bind_int64(st, 1, run_id);
        sqlite3_bind_int64(st, 2, baseline_run_id);
        sqlite3_bind_int(st, 3, p->index);
        sqlite3_bind_int(st, 4, pos[i].pos);
        sqlite3_bind_double(st, 5, pos[i].kl);
        bind_real(st, 6, pos[i].lp_baseline);
        bind_real(st, 7, pos[i].lp_run);
        sqlite3_bind_int(st, 8, pos[i].top1_baseline);
        sqlite3_bind_int(st, 9, pos[i].top1_run);
        rc = step_done(db, st, "add comparison positions", err);
    }
    sqlite3_finalize(st);
    st = NULL;
    if (!rc) rc = ms_db_prepare(db, "INSERT INTO an_compare_layer VALUES(?1,?2,?3,?4,?5,?6,?7)", &st, err);
    for (int i = 0; !rc && i < n_lay; i++) {
        sqlite3_bind_int64(st, 1, run_id);
        sqlite3_bind_int64(st, 2, baseline_run_id);
        sqlite3_bind_int(st, 3, p->index);
        sqlite3_bind_int(st, 4, lay[i].layer);
        sqlite3_bind_int(st, 5, lay[i].n_pos);
        sqlite3_bind_int(st, 6, lay[i].n_changed);
        sqlite3_bind_double(st, 7, lay[i].jaccard_sum);
        rc = step_done(db, st, "add comparison layers", err);
    }
    sqlite3_finalize(st);
    return rc;
}

int ms_trace_compare_has(MsTraceDb *db, int64_t run_id, int index, MsError *err)
{
    if (db->be) return be_compare_has(db, run_id, index, err);
    sqlite3_stmt *st;
    int rc = ms_db_prepare(db, "SELECT 1 FROM an_compare_prompt WHERE run_id=?1 AND idx=?2", &st, err);
    if (rc) return rc;
    sqlite3_bind_int64(st, 1, run_id);
    sqlite3_bind_int(st, 2, index);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc == SQLITE_ROW) return 1;
    return rc == SQLITE_DONE ? 0 : ms_db_fail(db, err, MS_EDB, "find comparison");
}

/* ----------------------------------------------------------------- reading */

void ms_trace_compare_rows_clear(MsCompareRows *r)
{
    if (!r) return;
    for (int i = 0; r->prompts && i < r->n_prompts; i++) {
        free((void *)r->prompts[i].tokens_baseline);
        free((void *)r->prompts[i].tokens_run);
        free((void *)r->prompts[i].text_baseline);
        free((void *)r->prompts[i].text_run);
    }
    free(r->prompts);
    free(r->layers);
    free(r->prompt_layers);
    memset(r, 0, sizeof *r);
}

static int32_t *blob_ids(sqlite3_stmt *st, int col, int *n)
{
    const unsigned char *b = sqlite3_column_blob(st, col);
    int len = sqlite3_column_bytes(st, col) / 4;
    int32_t *v = malloc((size_t)(len > 0 ? len : 1) * sizeof *v);
    for (int i = 0; v && i < len; i++)
        v[i] = (int32_t)((uint32_t)b[4 * i] | (uint32_t)b[4 * i + 1] << 8 | (uint32_t)b[4 * i + 2] << 16 |
                         (uint32_t)b[4 * i + 3] << 24);
    *n = v ? len : 0;
    return v;
}

static double col_real(sqlite3_stmt *st, int i)
{
    return sqlite3_column_type(st, i) == SQLITE_NULL ? NAN : sqlite3_column_double(st, i);
}

static char *col_dup(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return t ? strdup((const char *)t) : NULL;
}

static int read_prompts(MsTraceDb *db, MsCompareRows *out, MsError *err)
{
    sqlite3_stmt *st;
    int rc = ms_db_prepare(db, "SELECT idx, n_tokens, n_prompt_tokens, kl_mean, kl_max, n_scored, nll_baseline, "
                               "nll_run, top1_agree, coalesce(first_divergence, -1), text_baseline, text_run, "
                               "tokens_baseline, tokens_run FROM an_compare_prompt WHERE run_id=?1 AND "
                               "baseline_run_id=?2 ORDER BY idx", &st, err);
    if (rc) return rc;
    sqlite3_bind_int64(st, 1, out->run_id);
    sqlite3_bind_int64(st, 2, out->baseline_run_id);
    int cap = 0;
    bool oom = false;
    while (!oom && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (out->n_prompts == cap) {
            int nc = cap ? 2 * cap : 64;
            MsComparePrompt *np = realloc(out->prompts, (size_t)nc * sizeof *np);
            if (!np) { oom = true; break; }
            out->prompts = np;
            cap = nc;
        }
        MsComparePrompt *p = &out->prompts[out->n_prompts++];
        memset(p, 0, sizeof *p);
        p->index = sqlite3_column_int(st, 0);
        p->n_tokens = sqlite3_column_int(st, 1);
        p->n_prompt_tokens = sqlite3_column_int(st, 2);
        p->kl_mean = col_real(st, 3);
        p->kl_max = col_real(st, 4);
        p->n_scored = sqlite3_column_int(st, 5);
        p->nll_baseline = col_real(st, 6);
        p->nll_run = col_real(st, 7);
        p->top1_agree = sqlite3_column_int(st, 8);
        p->first_divergence = sqlite3_column_int(st, 9);
        p->text_baseline = col_dup(st, 10);
        p->text_run = col_dup(st, 11);
        p->tokens_baseline = blob_ids(st, 12, &p->n_tokens_baseline);
        p->tokens_run = blob_ids(st, 13, &p->n_tokens_run);
        oom = !p->tokens_baseline || !p->tokens_run;
    }
    sqlite3_finalize(st);
    if (oom) return ms_error_set(err, MS_ENOMEM, "%s: out of memory", db->path);
    return rc == SQLITE_DONE ? 0 : ms_db_fail(db, err, MS_EDB, "read comparison");
}

static int read_layers(MsTraceDb *db, MsCompareRows *out, MsError *err)
{
    sqlite3_stmt *st;
    int rc = ms_db_prepare(db, "SELECT DISTINCT layer FROM an_compare_layer WHERE run_id=?1 AND baseline_run_id=?2 "
                               "ORDER BY layer", &st, err);
    if (rc) return rc;
    sqlite3_bind_int64(st, 1, out->run_id);
    sqlite3_bind_int64(st, 2, out->baseline_run_id);
    int layers[MS_TRACE_MAX_LAYER], nl = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && nl < MS_TRACE_MAX_LAYER) layers[nl++] = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    rc = compare_layers_alloc(db, out, layers, nl, err);
    if (rc) return rc;
    rc = ms_db_prepare(db, "SELECT idx, layer, n_pos, n_changed, jaccard_sum FROM an_compare_layer WHERE run_id=?1 AND "
                           "baseline_run_id=?2 ORDER BY idx, layer", &st, err);
    if (rc) return rc;
    sqlite3_bind_int64(st, 1, out->run_id);
    sqlite3_bind_int64(st, 2, out->baseline_run_id);
    int pi = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int idx = sqlite3_column_int(st, 0), layer = sqlite3_column_int(st, 1), l = 0;
        while (pi < out->n_prompts && out->prompts[pi].index < idx) pi++;
        while (l < nl && layers[l] != layer) l++;
        if (pi >= out->n_prompts || out->prompts[pi].index != idx || l == nl) continue;
        MsCompareLayer *pl = &out->prompt_layers[(size_t)pi * nl + l], *tot = &out->layers[l];
        pl->n_pos = sqlite3_column_int(st, 2);
        pl->n_changed = sqlite3_column_int(st, 3);
        pl->jaccard_sum = sqlite3_column_double(st, 4);
        tot->n_pos += pl->n_pos;
        tot->n_changed += pl->n_changed;
        tot->jaccard_sum += pl->jaccard_sum;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : ms_db_fail(db, err, MS_EDB, "read comparison layers");
}

int ms_trace_compare_rows(MsTraceDb *db, int64_t run_id, int64_t baseline_run_id, MsCompareRows *out, MsError *err)
{
    memset(out, 0, sizeof *out);
    out->run_id = run_id;
    out->baseline_run_id = baseline_run_id;
    int rc = db->be ? be_read_prompts(db, out, err) : read_prompts(db, out, err);
    if (!rc && out->n_prompts == 0)
        rc = ms_error_set(err, MS_ENOTFOUND, "%s: no comparison of run %lld against baseline %lld", db->path,
                          (long long)run_id, (long long)baseline_run_id);
    if (!rc) rc = db->be ? be_read_layers(db, out, err) : read_layers(db, out, err);
    if (rc) ms_trace_compare_rows_clear(out);
    return rc;
}

int ms_trace_compare_positions(MsTraceDb *db, int64_t run_id, int index, MsComparePos **out, int *n, MsError *err)
{
    *out = NULL;
    *n = 0;
    if (db->be) return be_compare_positions(db, run_id, index, out, n, err);
    sqlite3_stmt *st;
    int rc = ms_db_prepare(db, "SELECT pos, kl, lp_baseline, lp_run, top1_baseline, top1_run FROM an_compare_pos "
                               "WHERE run_id=?1 AND idx=?2 ORDER BY pos", &st, err);
    if (rc) return rc;
    sqlite3_bind_int64(st, 1, run_id);
    sqlite3_bind_int(st, 2, index);
    int cap = 0;
    MsComparePos *v = NULL;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == cap) {
            int nc = cap ? 2 * cap : 128;
            MsComparePos *nv = realloc(v, (size_t)nc * sizeof *nv);
            if (!nv) break;
            v = nv;
            cap = nc;
        }
        MsComparePos *p = &v[(*n)++];
        p->pos = sqlite3_column_int(st, 0);
        p->kl = (float)sqlite3_column_double(st, 1);
        p->lp_baseline = (float)col_real(st, 2);
        p->lp_run = (float)col_real(st, 3);
        p->top1_baseline = sqlite3_column_int(st, 4);
        p->top1_run = sqlite3_column_int(st, 5);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        free(v);
        *n = 0;
        return rc == SQLITE_ROW ? ms_error_set(err, MS_ENOMEM, "%s: out of memory", db->path)
                                : ms_db_fail(db, err, MS_EDB, "read comparison positions");
    }
    *out = v;
    return 0;
}

/* ------------------------------------------------------------------ sweeps */

int64_t ms_trace_sweep_new(MsTraceDb *db, int64_t model_id, int64_t baseline_run_id, const char *settings_json,
                           MsError *err)
{
    if (db->be) return be_sweep_new(db, model_id, baseline_run_id, settings_json, err);
    sqlite3_stmt *st;
    int rc = ms_db_prepare(db, "INSERT INTO sweep(baseline_run_id, model_id, created, settings, program_version) "
                               "VALUES(?1, ?2, strftime('%Y-%m-%dT%H:%M:%SZ','now'), ?3, ?4)", &st, err);
    if (rc) return rc;
    if (baseline_run_id > 0) sqlite3_bind_int64(st, 1, baseline_run_id);
    sqlite3_bind_int64(st, 2, model_id);
    if (settings_json) sqlite3_bind_text(st, 3, settings_json, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, MS_VERSION, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return ms_db_fail(db, err, MS_EDB, "add sweep");
    return sqlite3_last_insert_rowid(db->h);
}

int ms_trace_sweep_put(MsTraceDb *db, int64_t sweep_id, const MsSweepRow *rows, int n, MsError *err)
{
    if (db->be) return be_sweep_put(db, sweep_id, rows, n, err);
    int rc = ms_trace_tx_begin(db, err);
    sqlite3_stmt *st = NULL;
    if (!rc) rc = ms_db_prepare(db, "INSERT INTO sweep_candidate VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,"
                                    "?14,?15,?16,?17,?18)", &st, err);
    for (int i = 0; !rc && i < n; i++) {
        const MsSweepRow *r = &rows[i];
        sqlite3_bind_int64(st, 1, sweep_id);
        sqlite3_bind_int(st, 2, r->cand);
        sqlite3_bind_text(st, 3, r->kind, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, r->label, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 5, r->interventions ? r->interventions : "", -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 6, r->n_experts);
        sqlite3_bind_int64(st, 7, r->n_positions);
        const double v[] = { r->kl_mean, r->kl_max, r->top1_agreement, r->ppl_baseline, r->ppl_run, r->dppl,
                             r->changed_share, r->jaccard_mean, r->z_kl, r->z_dppl };
        for (int j = 0; j < 10; j++) bind_real(st, 8 + j, v[j]);
        if (r->rank > 0) sqlite3_bind_int(st, 18, r->rank);
        else sqlite3_bind_null(st, 18);
        rc = step_done(db, st, "add sweep result", err);
    }
    sqlite3_finalize(st);
    if (!rc) rc = ms_trace_tx_commit(db, err);
    if (rc) ms_trace_tx_rollback(db);
    return rc;
}

void ms_trace_sweep_rows_clear(MsSweepRows *r)
{
    if (!r) return;
    for (int i = 0; r->rows && i < r->n_rows; i++) {
        free((char *)r->rows[i].kind);
        free((char *)r->rows[i].label);
        free((char *)r->rows[i].interventions);
    }
    free(r->rows);
    free(r->created);
    free(r->settings);
    memset(r, 0, sizeof *r);
}

static int sweep_head(MsTraceDb *db, int64_t sweep_id, MsSweepRows *out, MsError *err)
{
    sqlite3_stmt *st;
    int rc = ms_db_prepare(db, sweep_id > 0
                               ? "SELECT s.sweep_id, coalesce(s.baseline_run_id, 0), s.model_id, m.n_layer, m.n_expert, "
                                 "s.created, s.settings FROM sweep s JOIN model m USING (model_id) WHERE s.sweep_id = ?1"
                               : "SELECT s.sweep_id, coalesce(s.baseline_run_id, 0), s.model_id, m.n_layer, m.n_expert, "
                                 "s.created, s.settings FROM sweep s JOIN model m USING (model_id) "
                                 "ORDER BY s.sweep_id DESC LIMIT 1", &st, err);
    if (rc) return rc;
    if (sweep_id > 0) sqlite3_bind_int64(st, 1, sweep_id);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        out->sweep_id = sqlite3_column_int64(st, 0);
        out->baseline_run_id = sqlite3_column_int64(st, 1);
        out->model_id = sqlite3_column_int64(st, 2);
        out->n_layer = sqlite3_column_int(st, 3);
        out->n_expert = sqlite3_column_int(st, 4);
        out->created = col_dup(st, 5);
        out->settings = col_dup(st, 6);
        rc = !out->created ? ms_error_set(err, MS_ENOMEM, "%s: out of memory", db->path) : 0;
    } else if (rc == SQLITE_DONE) {
        rc = sweep_id > 0 ? ms_error_set(err, MS_ENOTFOUND, "%s: no sweep %lld", db->path, (long long)sweep_id)
                          : ms_error_set(err, MS_ENOTFOUND, "%s: no sweep stored (`moescope sweep ... --db %s` stores one)",
                                         db->path, db->path);
    } else {
        rc = ms_db_fail(db, err, MS_EDB, "read sweep");
    }
    sqlite3_finalize(st);
    return rc;
}

int ms_trace_sweep_rows(MsTraceDb *db, int64_t sweep_id, MsSweepRows *out, MsError *err)
{
    memset(out, 0, sizeof *out);
    if (db->user_version < 4)
        return ms_error_set(err, MS_ENOTFOUND, "%s: no sweep stored (schema version %d predates sweeps)", db->path,
                            db->user_version);
    if (db->be) {
        int rc = be_sweep_rows(db, sweep_id, out, err);
        if (rc) ms_trace_sweep_rows_clear(out);
        return rc;
    }
    int rc = sweep_head(db, sweep_id, out, err);
    sqlite3_stmt *st = NULL;
    if (!rc) rc = ms_db_prepare(db, "SELECT cand, kind, label, interventions, n_experts, n_positions, kl_mean, kl_max, "
                                    "top1_agreement, ppl_baseline, ppl_run, dppl, changed_share, jaccard_mean, z_kl, "
                                    "z_dppl, coalesce(rank, 0) FROM sweep_candidate WHERE sweep_id = ?1 ORDER BY cand",
                                &st, err);
    if (!rc) sqlite3_bind_int64(st, 1, out->sweep_id);
    int cap = 0, step = SQLITE_DONE;
    while (!rc && (step = sqlite3_step(st)) == SQLITE_ROW) {
        if (out->n_rows == cap) {
            int nc = cap ? 2 * cap : 32;
            MsSweepRow *nv = realloc(out->rows, (size_t)nc * sizeof *nv);
            if (!nv) { rc = ms_error_set(err, MS_ENOMEM, "%s: out of memory", db->path); break; }
            out->rows = nv;
            cap = nc;
        }
        MsSweepRow *r = &out->rows[out->n_rows++];
        memset(r, 0, sizeof *r);
        r->cand = sqlite3_column_int(st, 0);
        r->kind = col_dup(st, 1);
        r->label = col_dup(st, 2);
        r->interventions = col_dup(st, 3);
        r->n_experts = sqlite3_column_int(st, 4);
        r->n_positions = sqlite3_column_int64(st, 5);
        double *v[] = { &r->kl_mean, &r->kl_max, &r->top1_agreement, &r->ppl_baseline, &r->ppl_run, &r->dppl,
                        &r->changed_share, &r->jaccard_mean, &r->z_kl, &r->z_dppl };
        for (int j = 0; j < 10; j++) *v[j] = col_real(st, 6 + j);
        r->rank = sqlite3_column_int(st, 16);
        if (!r->kind || !r->label || !r->interventions) rc = ms_error_set(err, MS_ENOMEM, "%s: out of memory", db->path);
    }
    if (!rc && step != SQLITE_DONE) rc = ms_db_fail(db, err, MS_EDB, "read sweep candidates");
    sqlite3_finalize(st);
    if (rc) ms_trace_sweep_rows_clear(out);
    return rc;
}

/* ------------------------------------------- sweeps of several workers */

/* exec for SQLite: the same contract as a backend's (values copied). */
static int sq_exec(MsTraceDb *db, const char *sql, int n, const MsTraceValue *p, MsDbRows *out, MsError *err)
{
    if (out) memset(out, 0, sizeof *out);
    sqlite3_stmt *st;
    int rc = ms_db_prepare(db, sql, &st, err);
    if (rc) return rc;
    for (int i = 0; i < n; i++) {
        const MsTraceValue *v = &p[i];
        if (v->type == MS_COL_INT) sqlite3_bind_int64(st, i + 1, v->i);
        else if (v->type == MS_COL_REAL && isfinite(v->r)) sqlite3_bind_double(st, i + 1, v->r);
        else if (v->type == MS_COL_TEXT) sqlite3_bind_text(st, i + 1, v->s, -1, SQLITE_STATIC);
        else if (v->type == MS_COL_BLOB) sqlite3_bind_blob(st, i + 1, v->s, (int)v->len, SQLITE_STATIC);
    }
    int cap = 0, step;
    bool oom = false;
    while (!oom && (step = sqlite3_step(st)) == SQLITE_ROW) {
        if (!out) continue;
        int nc = sqlite3_column_count(st);
        if (out->n_rows == cap) {
            int ncap = cap ? 2 * cap : 16;
            MsTraceValue *nv = realloc(out->v, (size_t)ncap * (size_t)MS_MAX(nc, 1) * sizeof *nv);
            if (!nv) { oom = true; break; }
            out->v = nv;
            cap = ncap;
        }
        out->n_cols = nc;
        MsTraceValue *r = out->v + (size_t)out->n_rows++ * nc;
        for (int c = 0; c < nc; c++) {
            memset(&r[c], 0, sizeof r[c]);
            switch (sqlite3_column_type(st, c)) {
            case SQLITE_INTEGER: r[c].type = MS_COL_INT; r[c].i = sqlite3_column_int64(st, c); r[c].r = (double)r[c].i; break;
            case SQLITE_FLOAT: r[c].type = MS_COL_REAL; r[c].r = sqlite3_column_double(st, c); break;
            case SQLITE_TEXT: case SQLITE_BLOB: {
                size_t len = (size_t)sqlite3_column_bytes(st, c);
                const void *b = sqlite3_column_type(st, c) == SQLITE_TEXT ? (const void *)sqlite3_column_text(st, c)
                                                                          : sqlite3_column_blob(st, c);
                char *d = malloc(len + 1);
                if (!d) { oom = true; break; }
                if (len) memcpy(d, b, len);
                d[len] = '\0';
                r[c].type = sqlite3_column_type(st, c) == SQLITE_TEXT ? MS_COL_TEXT : MS_COL_BLOB;
                r[c].s = d;
                r[c].len = len;
                break;
            }
            default: break;
            }
        }
    }
    sqlite3_finalize(st);
    if (oom) return ms_error_set(err, MS_ENOMEM, "%s: out of memory", db->path);
    return step == SQLITE_DONE ? 0 : ms_db_fail(db, err, MS_EDB, "query");
}

static void sq_rows_free(MsDbRows *r)
{
    for (int i = 0; r->v && i < r->n_rows * r->n_cols; i++)
        if (r->v[i].type == MS_COL_TEXT || r->v[i].type == MS_COL_BLOB) free((char *)r->v[i].s);
    free(r->v);
    memset(r, 0, sizeof *r);
}

/* either backend */
static int dx(MsTraceDb *db, const char *sql, int n, const MsTraceValue *p, MsDbRows *out, MsError *err)
{
    return db->be ? bx(db, sql, n, p, out, err) : sq_exec(db, sql, n, p, out, err);
}
static void dx_free(MsTraceDb *db, MsDbRows *r)
{
    if (db->be) db->be->rows_free(r);
    else sq_rows_free(r);
}

int64_t ms_trace_sweep_join(MsTraceDb *db, int64_t model_id, const char *settings_json, int n_cand, MsError *err)
{
    int rc = ms_trace_tx_begin(db, err);
    if (rc) return rc;
    MsDbRows r = { 0 };
    if (db->be) rc = dx(db, "LOCK TABLE sweep IN SHARE ROW EXCLUSIVE MODE", 0, NULL, NULL, err);
    MsTraceValue a[3] = { VI(model_id), VT(settings_json), VI(n_cand) };
    if (!rc) rc = dx(db, "SELECT s.sweep_id FROM sweep s WHERE s.model_id = ?1 AND s.settings = ?2 AND "
                         "(SELECT count(*) FROM sweep_candidate c WHERE c.sweep_id = s.sweep_id) < ?3 "
                         "ORDER BY s.sweep_id DESC LIMIT 1", 3, a, &r, err);
    int64_t id = 0;
    if (!rc) {
        id = r.n_rows ? rv_i(&r, 0, 0) : 0;
        dx_free(db, &r);
    }
    if (!rc && !id) {
        id = ms_trace_sweep_new(db, model_id, 0, settings_json, err);
        if (id < 0) rc = (int)id;
    }
    if (!rc) rc = ms_trace_tx_commit(db, err);
    if (rc) ms_trace_tx_rollback(db);
    return rc ? rc : id;
}

int ms_trace_sweep_cands(MsTraceDb *db, int64_t sweep_id, int **cands, int *n, MsError *err)
{
    *cands = NULL;
    *n = 0;
    MsTraceValue a[1] = { VI(sweep_id) };
    MsDbRows r;
    int rc = dx(db, "SELECT cand FROM sweep_candidate WHERE sweep_id = ?1 ORDER BY cand", 1, a, &r, err);
    if (rc) return rc;
    int *v = malloc((size_t)MS_MAX(r.n_rows, 1) * sizeof *v);
    for (int t = 0; v && t < r.n_rows; t++) v[t] = (int)rv_i(&r, t, 0);
    int nr = r.n_rows;
    dx_free(db, &r);
    if (!v) return ms_error_set(err, MS_ENOMEM, "%s: out of memory", db->path);
    *cands = v;
    *n = nr;
    return 0;
}

int ms_trace_sweep_put_shard(MsTraceDb *db, int64_t sweep_id, const MsSweepRow *rows, int n, int n_cand,
                             MsSweepFinishFn finish, void *user, bool *complete, MsError *err)
{
    *complete = false;
    MsTraceValue *v = sweep_values(sweep_id, rows, n);
    if (!v) return ms_error_set(err, MS_ENOMEM, "%s: out of memory", db->path);
    /* the lock on the sweep orders the workers: the last to store sees every row */
    MsTraceValue id[1] = { VI(sweep_id) };
    int rc = ms_trace_tx_begin(db, err);
    bool in_tx = !rc;
    if (!rc && db->be) rc = dx(db, "SELECT 1 FROM sweep WHERE sweep_id = ?1 FOR UPDATE", 1, id, NULL, err);
    if (!rc) rc = db->be ? be_insert_rows(db, "sweep_candidate", 18, v, n, err) : 0;
    for (int i = 0; !rc && !db->be && i < n; i++)
        rc = dx(db, "INSERT INTO sweep_candidate VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18)",
                18, v + (size_t)i * 18, NULL, err);
    free(v);
    MsDbRows all = { 0 };
    if (!rc) rc = dx(db, "SELECT cand, kind, label, interventions, n_experts, n_positions, kl_mean, kl_max, "
                         "top1_agreement, ppl_baseline, ppl_run, dppl, changed_share, jaccard_mean, z_kl, "
                         "z_dppl, coalesce(rank, 0) FROM sweep_candidate WHERE sweep_id = ?1 ORDER BY cand",
                     1, id, &all, err);
    if (!rc && all.n_rows == n_cand) {
        MsSweepRow *w = calloc((size_t)MS_MAX(n_cand, 1), sizeof *w);
        if (!w) rc = ms_error_set(err, MS_ENOMEM, "%s: out of memory", db->path);
        for (int t = 0; !rc && t < n_cand; t++) {
            MsSweepRow *x = &w[t];
            x->cand = (int)rv_i(&all, t, 0);
            x->kind = rv(&all, t, 1)->s;
            x->label = rv(&all, t, 2)->s;
            x->interventions = rv(&all, t, 3)->s;
            x->n_experts = (int)rv_i(&all, t, 4);
            x->n_positions = rv_i(&all, t, 5);
            double *d[] = { &x->kl_mean, &x->kl_max, &x->top1_agreement, &x->ppl_baseline, &x->ppl_run, &x->dppl,
                            &x->changed_share, &x->jaccard_mean, &x->z_kl, &x->z_dppl };
            for (int j = 0; j < 10; j++) *d[j] = rv_r(&all, t, 6 + j);
            x->rank = (int)rv_i(&all, t, 16);
            if (x->cand != t) rc = ms_error_set(err, MS_EFORMAT, "%s: sweep %lld: candidate %d missing", db->path,
                                                (long long)sweep_id, t);
        }
        if (!rc) finish(user, w, n_cand);
        for (int t = 0; !rc && t < n_cand; t++) {
            MsTraceValue u[5] = { VR(w[t].z_kl), VR(w[t].z_dppl), w[t].rank > 0 ? VI(w[t].rank) : (MsTraceValue){ 0 },
                                  VI(sweep_id), VI(t) };
            rc = dx(db, "UPDATE sweep_candidate SET z_kl = ?1, z_dppl = ?2, rank = ?3 WHERE sweep_id = ?4 AND cand = ?5",
                    5, u, NULL, err);
        }
        free(w);
        if (!rc) *complete = true;
    }
    if (all.v) dx_free(db, &all);
    if (in_tx && !rc) rc = ms_trace_tx_commit(db, err);
    if (rc && in_tx) ms_trace_tx_rollback(db);
    if (rc) *complete = false;
    return rc;
}
