/* reader.c — runs, prompts, tokens and routing read back in bounded-memory
 * cursors, and read-only ad-hoc queries. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db-internal.h"

static char *dup_col(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return t ? strdup((const char *)t) : NULL;
}

int ms_trace_runs(MsTraceDb *db, int64_t **ids, int *n, MsError *err)
{
    if (db->be) return db->be->runs(db, ids, n, err);
    sqlite3_stmt *st;
    int rc = ms_db_prepare(db, "SELECT run_id FROM run ORDER BY run_id", &st, err);
    if (rc) return rc;
    int cap = 16, cnt = 0;
    int64_t *v = malloc((size_t)cap * sizeof *v);
    while (v && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (cnt == cap) {
            int64_t *nv = realloc(v, (size_t)(cap *= 2) * sizeof *v);
            if (!nv) { free(v); v = NULL; break; }
            v = nv;
        }
        v[cnt++] = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    if (!v) return ms_error_set(err, MS_ENOMEM, "%s: out of memory", db->path);
    if (rc != SQLITE_DONE) { free(v); return ms_db_fail(db, err, MS_EDB, "list runs"); }
    *ids = v;
    *n = cnt;
    return 0;
}

void ms_trace_run_info_clear(MsTraceRunInfo *ri)
{
    if (!ri) return;
    free(ri->kind); free(ri->created); free(ri->settings_json);
    free(ri->interventions); free(ri->program_version);
    free(ri->status); free(ri->prompts_sha256);
    memset(ri, 0, sizeof *ri);
}

static void parse_layers(MsTraceModel *m, const char *json)
{
    m->n_moe_layers = 0;
    for (const char *p = json; p && *p;) {
        if (*p >= '0' && *p <= '9') {
            long l = strtol(p, (char **)&p, 10);
            if (l >= 0 && l < MS_TRACE_MAX_LAYER && !m->is_moe[l]) { m->is_moe[l] = 1; m->n_moe_layers++; }
        } else p++;
    }
}

int ms_trace_run_info(MsTraceDb *db, int64_t run_id, MsTraceRunInfo *out, MsError *err)
{
    if (db->be) return db->be->run_info(db, run_id, out, err);
    memset(out, 0, sizeof *out);
    sqlite3_stmt *st;
    int rc = ms_db_prepare(db,
        "SELECT r.run_id, r.model_id, coalesce(r.parent_run_id,0), r.kind, r.created, r.settings, "
        "r.interventions, r.program_version, r.has_probs, r.has_stats, "
        "(SELECT count(*) FROM prompt p WHERE p.run_id=r.run_id), "
        "(SELECT coalesce(sum(n_tokens),0) FROM prompt p WHERE p.run_id=r.run_id), "
        "m.file_name, m.file_size, m.sha256, m.arch, m.name, m.n_layer, m.n_expert, m.n_expert_used, "
        "m.n_expert_shared, m.score_func, m.norm_topk, m.w_scale, m.n_embd, m.n_vocab, m.n_ff_exp, m.moe_layers, "
        "coalesce(r.status, 'complete'), r.prompts_sha256 "
        "FROM run r JOIN model m USING(model_id) WHERE r.run_id=?1", &st, err);
    if (rc) return rc;
    sqlite3_bind_int64(st, 1, run_id);
    rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        sqlite3_finalize(st);
        if (rc == SQLITE_DONE) return ms_error_set(err, MS_ENOTFOUND, "%s: no run %lld", db->path, (long long)run_id);
        return ms_db_fail(db, err, MS_EDB, "read run");
    }
    out->run_id = sqlite3_column_int64(st, 0);
    out->model_id = sqlite3_column_int64(st, 1);
    out->parent_run_id = sqlite3_column_int64(st, 2);
    out->kind = dup_col(st, 3);
    out->created = dup_col(st, 4);
    out->settings_json = dup_col(st, 5);
    out->interventions = dup_col(st, 6);
    out->program_version = dup_col(st, 7);
    out->has_probs = sqlite3_column_int(st, 8);
    out->has_stats = sqlite3_column_int(st, 9);
    out->n_prompts = sqlite3_column_int64(st, 10);
    out->n_tokens = sqlite3_column_int64(st, 11);
    MsTraceModel *m = &out->model;
    m->model_id = out->model_id;
#define TXT(dst, i) snprintf(dst, sizeof dst, "%s", sqlite3_column_text(st, i) ? (const char *)sqlite3_column_text(st, i) : "")
    TXT(m->file_name, 12);
    m->file_size = (uint64_t)sqlite3_column_int64(st, 13);
    TXT(m->sha256, 14);
    TXT(m->arch, 15);
    TXT(m->name, 16);
    m->n_layer = sqlite3_column_int(st, 17);
    m->n_expert = sqlite3_column_int(st, 18);
    m->n_expert_used = sqlite3_column_int(st, 19);
    m->n_expert_shared = sqlite3_column_int(st, 20);
    TXT(m->score_func, 21);
    m->norm_topk = sqlite3_column_int(st, 22);
    m->w_scale = (float)sqlite3_column_double(st, 23);
    m->n_embd = sqlite3_column_int(st, 24);
    m->n_vocab = sqlite3_column_int(st, 25);
    m->n_ff_exp = sqlite3_column_int(st, 26);
#undef TXT
    parse_layers(m, (const char *)sqlite3_column_text(st, 27));
    out->status = dup_col(st, 28);
    out->prompts_sha256 = dup_col(st, 29);
    sqlite3_finalize(st);
    if (!out->kind || !out->created || !out->program_version || !out->status) {
        ms_trace_run_info_clear(out);
        return ms_error_set(err, MS_ENOMEM, "%s: out of memory", db->path);
    }
    return 0;
}

int64_t ms_trace_prompt_lookup(MsTraceDb *db, int64_t run_id, int index, MsError *err)
{
    if (db->be) return db->be->prompt_lookup(db, run_id, index, err);
    sqlite3_stmt *st;
    int rc = ms_db_prepare(db, "SELECT prompt_id FROM prompt WHERE run_id=?1 AND idx=?2", &st, err);
    if (rc) return rc;
    sqlite3_bind_int64(st, 1, run_id);
    sqlite3_bind_int(st, 2, index);
    rc = sqlite3_step(st);
    int64_t id = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return ms_db_fail(db, err, MS_EDB, "find prompt");
    return id;
}

void ms_trace_prompt_info_clear(MsTracePromptInfo *p)
{
    if (!p) return;
    free(p->text);
    free(p->labels_json);
    memset(p, 0, sizeof *p);
}

int ms_trace_prompt_get(MsTraceDb *db, int64_t run_id, int index, MsTracePromptInfo *out, MsError *err)
{
    if (db->be) return db->be->prompt_get(db, run_id, index, out, err);
    memset(out, 0, sizeof *out);
    sqlite3_stmt *st;
    int rc = ms_db_prepare(db, "SELECT prompt_id, text_bytes, labels, n_tokens FROM prompt WHERE run_id=?1 AND idx=?2",
                           &st, err);
    if (rc) return rc;
    sqlite3_bind_int64(st, 1, run_id);
    sqlite3_bind_int(st, 2, index);
    rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        sqlite3_finalize(st);
        if (rc == SQLITE_DONE)
            return ms_error_set(err, MS_ENOTFOUND, "%s: run %lld has no prompt %d", db->path, (long long)run_id, index);
        return ms_db_fail(db, err, MS_EDB, "read prompt");
    }
    out->prompt_id = sqlite3_column_int64(st, 0);
    out->run_id = run_id;
    out->index = index;
    const void *b = sqlite3_column_blob(st, 1);
    out->text_len = (size_t)sqlite3_column_bytes(st, 1);
    out->text = malloc(out->text_len + 1);
    if (out->text) {
        if (out->text_len) memcpy(out->text, b, out->text_len);
        out->text[out->text_len] = 0;
    }
    out->labels_json = dup_col(st, 2);
    out->n_tokens = sqlite3_column_int(st, 3);
    bool oom = !out->text || (sqlite3_column_type(st, 2) != SQLITE_NULL && !out->labels_json);
    sqlite3_finalize(st);
    if (oom) {
        ms_trace_prompt_info_clear(out);
        return ms_error_set(err, MS_ENOMEM, "%s: out of memory", db->path);
    }
    return 0;
}

int ms_trace_changed(MsTraceDb *db, uint64_t *stamp, MsError *err)
{
    if (db->be) return db->be->changed(db, stamp, err);
    sqlite3_stmt *st;
    int rc = ms_db_prepare(db, "PRAGMA data_version", &st, err);
    if (rc) return rc;
    rc = sqlite3_step(st);
    uint64_t dv = rc == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW) return ms_db_fail(db, err, MS_EDB, "data_version");
    /* data_version moves on other connections' commits, total_changes on ours */
    uint64_t now = (dv << 40) ^ (uint64_t)sqlite3_total_changes64(db->h) ^ 1u;
    int changed = now != *stamp;
    *stamp = now;
    return changed;
}

/* ---------------------------------------------------------------- cursors */

typedef enum { CUR_PROMPTS, CUR_TOKENS, CUR_ROUTING, CUR_PROBS, CUR_HIDDEN, CUR_ANALYSES, CUR_TABLE } CurKind;

struct MsTraceCursor {
    MsTraceDb *db;
    CurKind kind;
    sqlite3_stmt *st;
    bool done;
    bool pending;          /* routing: st holds a row whose group was not emitted yet */
    int pending_from;      /* first rank of that group still to emit */
    float *fbuf;           /* probs: 2 * n floats */
    size_t fcap;
    /* result table: its columns and one row of values */
    int n_cols;
    MsColumn *cols;
    MsTraceValue *vals;
};

void ms_trace_cursor_free(MsTraceCursor *c)
{
    if (c && ms_db_of(c)->be) { ms_db_of(c)->be->cursor_free(c); return; }
    if (!c) return;
    sqlite3_finalize(c->st);
    free(c->fbuf);
    for (int i = 0; c->cols && i < c->n_cols; i++) free((char *)c->cols[i].name);
    free(c->cols);
    free(c->vals);
    free(c);
}

static MsTraceCursor *cursor_new(MsTraceDb *db, CurKind kind, const char *sel, const char *where, const char *order,
                                 int64_t run_id, int64_t prompt_id, MsError *err)
{
    char sql[1024];
    snprintf(sql, sizeof sql, "%s%s%s", sel, where, order);
    MsTraceCursor *c = calloc(1, sizeof *c);
    if (!c) {
        ms_error_set(err, MS_ENOMEM, "%s: out of memory", db->path);
        return NULL;
    }
    c->db = db;
    c->kind = kind;
    if (ms_db_prepare(db, sql, &c->st, err)) {
        free(c);
        return NULL;
    }
    sqlite3_bind_int64(c->st, 1, run_id);
    sqlite3_bind_int64(c->st, 2, prompt_id);
    return c;
}

/* 1 row, 0 end, < 0 error */
static int cur_step(MsTraceCursor *c, MsError *err)
{
    if (c->done) return 0;
    int rc = sqlite3_step(c->st);
    if (rc == SQLITE_ROW) return 1;
    c->done = true;
    if (rc == SQLITE_DONE) return 0;
    return ms_db_fail(c->db, err, MS_EDB, "read");
}

/* Rows of one run (prompt_id 0) or one prompt; the prompt filter keeps the
 * primary-key order so SQLite streams without sorting. */
#define WHERE_RUN " WHERE run_id = ?1 AND prompt_id BETWEEN (SELECT min(prompt_id) FROM prompt WHERE run_id = ?1) " \
    "AND (SELECT max(prompt_id) FROM prompt WHERE run_id = ?1) "
#define WHERE_ONE " WHERE run_id = ?1 AND prompt_id = ?2 "
#define WHERE_RP(pid) ((pid) ? WHERE_ONE : WHERE_RUN)

MsTraceCursor *ms_trace_prompts(MsTraceDb *db, int64_t run_id, MsError *err)
{
    if (db->be) return db->be->prompts(db, run_id, err);
    return cursor_new(db, CUR_PROMPTS, "SELECT prompt_id, run_id, idx, text_bytes, labels, n_tokens, worker FROM prompt "
                      "WHERE run_id=?1", "", " ORDER BY idx", run_id, 0, err);
}

int ms_trace_prompts_next(MsTraceCursor *c, MsTracePrompt *out, MsError *err)
{
    if (ms_db_of(c)->be) return ms_db_of(c)->be->prompts_next(c, out, err);
    if (c->kind != CUR_PROMPTS) return ms_error_set(err, MS_EINVAL, "%s: wrong cursor", c->db->path);
    int rc = cur_step(c, err);
    if (rc <= 0) return rc;
    sqlite3_stmt *st = c->st;
    out->prompt_id = sqlite3_column_int64(st, 0);
    out->run_id = sqlite3_column_int64(st, 1);
    out->index = sqlite3_column_int(st, 2);
    out->text = sqlite3_column_blob(st, 3);
    out->text_len = (size_t)sqlite3_column_bytes(st, 3);
    if (!out->text) out->text = "";
    out->labels_json = (const char *)sqlite3_column_text(st, 4);
    out->n_tokens = sqlite3_column_int(st, 5);
    out->worker = (const char *)sqlite3_column_text(st, 6);
    return 1;
}

MsTraceCursor *ms_trace_tokens(MsTraceDb *db, int64_t run_id, int64_t prompt_id, MsError *err)
{
    if (db->be) return db->be->tokens(db, run_id, prompt_id, err);
    return cursor_new(db, CUR_TOKENS, "SELECT prompt_id, pos, token_id, piece_bytes, is_generated, logprob, entropy "
                      "FROM token", WHERE_RP(prompt_id), "ORDER BY prompt_id, pos", run_id, prompt_id, err);
}

static float col_float(sqlite3_stmt *st, int i)
{
    return sqlite3_column_type(st, i) == SQLITE_NULL ? NAN : (float)sqlite3_column_double(st, i);
}

int ms_trace_tokens_next(MsTraceCursor *c, MsTraceToken *out, MsError *err)
{
    if (ms_db_of(c)->be) return ms_db_of(c)->be->tokens_next(c, out, err);
    if (c->kind != CUR_TOKENS) return ms_error_set(err, MS_EINVAL, "%s: wrong cursor", c->db->path);
    int rc = cur_step(c, err);
    if (rc <= 0) return rc;
    sqlite3_stmt *st = c->st;
    out->prompt_id = sqlite3_column_int64(st, 0);
    out->pos = sqlite3_column_int(st, 1);
    out->token_id = sqlite3_column_int(st, 2);
    out->piece = sqlite3_column_blob(st, 3);
    out->piece_len = (size_t)sqlite3_column_bytes(st, 3);
    if (!out->piece) out->piece = "";
    out->is_generated = sqlite3_column_int(st, 4);
    out->logprob = col_float(st, 5);
    out->entropy = col_float(st, 6);
    return 1;
}

/* The routing SELECT: the channel column is read only for runs with
 * stats (a constant NULL costs nothing per row of the big scans). */
static const char *routing_select(MsTraceDb *db, int64_t run_id)
{
    static const char with[] = "SELECT prompt_id, pos, layer, experts, weights, out_maxabs, out_l2, out_argmax "
                               "FROM routing_packed",
                      without[] = "SELECT prompt_id, pos, layer, experts, weights, out_maxabs, out_l2, NULL "
                                  "FROM routing_packed";
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db->h, "SELECT has_stats FROM run WHERE run_id = ?1", -1, &st, NULL) != SQLITE_OK)
        return with;
    sqlite3_bind_int64(st, 1, run_id);
    bool stats = sqlite3_step(st) != SQLITE_ROW || sqlite3_column_int(st, 0) != 0;
    sqlite3_finalize(st);
    return stats ? with : without;
}

/* The current routing row as stored, blob sizes checked against its k. */
static int packed_row(MsTraceCursor *c, MsTraceRoutePacked *out, MsError *err)
{
    sqlite3_stmt *st = c->st;
    int nb = sqlite3_column_bytes(st, 3);
    const unsigned char *ex = sqlite3_column_blob(st, 3);
    int k = nb / 2;
    if (!ex || k == 0 || (nb & 1))
        return ms_error_set(err, MS_EFORMAT, "%s: corrupt routing row (experts blob of %d bytes)", c->db->path, nb);
    out->weights = sqlite3_column_blob(st, 4);
    out->maxabs = sqlite3_column_blob(st, 5);
    out->l2 = sqlite3_column_blob(st, 6);
    out->argmax = sqlite3_column_blob(st, 7);
    if ((out->weights && sqlite3_column_bytes(st, 4) != 4 * k) || (out->maxabs && sqlite3_column_bytes(st, 5) != 4 * k) ||
        (out->l2 && sqlite3_column_bytes(st, 6) != 4 * k) || (out->argmax && sqlite3_column_bytes(st, 7) != 2 * k))
        return ms_error_set(err, MS_EFORMAT, "%s: corrupt routing row (blob sizes)", c->db->path);
    out->experts = ex;
    out->k = k;
    out->prompt_id = sqlite3_column_int64(st, 0);
    out->pos = sqlite3_column_int(st, 1);
    out->layer = sqlite3_column_int(st, 2);
    return 0;
}

MsTraceCursor *ms_trace_routing(MsTraceDb *db, int64_t run_id, int64_t prompt_id, MsError *err)
{
    if (db->be) return db->be->routing(db, run_id, prompt_id, prompt_id, err);
    return cursor_new(db, CUR_ROUTING, routing_select(db, run_id), WHERE_RP(prompt_id),
                      "ORDER BY prompt_id, pos, layer", run_id, prompt_id, err);
}

int ms_trace_routing_next(MsTraceCursor *c, MsTraceRoute *buf, int cap, MsError *err)
{
    if (ms_db_of(c)->be) return ms_db_of(c)->be->routing_next(c, buf, cap, err);
    if (c->kind != CUR_ROUTING) return ms_error_set(err, MS_EINVAL, "%s: wrong cursor", c->db->path);
    if (cap <= 0) return ms_error_set(err, MS_EINVAL, "%s: chunk capacity must be positive", c->db->path);
    int n = 0;
    for (;;) {
        if (!c->pending) {
            int rc = cur_step(c, err);
            if (rc < 0) return rc;
            if (rc == 0) return n;
            c->pending = true;
            c->pending_from = 0;
        }
        MsTraceRoutePacked row;
        int rc = packed_row(c, &row, err);
        if (rc < 0) return rc;
        int k = row.k;
        const unsigned char *ex = row.experts, *wt = row.weights, *mx = row.maxabs, *l2 = row.l2, *am = row.argmax;
        /* keep a group whole when it fits in a chunk */
        int left = k - c->pending_from;
        if (n > 0 && left > cap - n && k <= cap) return n;
        int j = c->pending_from;
        for (; j < k && n < cap; j++, n++) {
            MsTraceRoute *r = &buf[n];
            r->prompt_id = row.prompt_id;
            r->pos = row.pos;
            r->layer = (int16_t)row.layer;
            r->rank = (int16_t)j;
            r->expert = (int32_t)ms_get_u16(ex + 2 * j);
            r->weight = wt ? ms_get_f32(wt + 4 * j) : NAN;
            r->maxabs = mx ? ms_get_f32(mx + 4 * j) : NAN;
            r->l2 = l2 ? ms_get_f32(l2 + 4 * j) : NAN;
            r->channel = am ? (int32_t)ms_get_u16(am + 2 * j) : -1;
        }
        if (j < k) { c->pending_from = j; return n; }
        c->pending = false;
        if (n == cap) return n;
    }
}

MsTraceCursor *ms_trace_routing_range(MsTraceDb *db, int64_t run_id, int64_t prompt_lo, int64_t prompt_hi,
                                      MsError *err)
{
    if (db->be) return db->be->routing(db, run_id, prompt_lo, prompt_hi, err);
    MsTraceCursor *c = cursor_new(db, CUR_ROUTING, routing_select(db, run_id),
                                  " WHERE run_id = ?1 AND prompt_id BETWEEN ?2 AND ?3 ",
                                  "ORDER BY prompt_id, pos, layer", run_id, prompt_lo, err);
    if (c) sqlite3_bind_int64(c->st, 3, prompt_hi);
    return c;
}

int ms_trace_routing_next_packed(MsTraceCursor *c, MsTraceRoutePacked *out, MsError *err)
{
    if (ms_db_of(c)->be) return ms_db_of(c)->be->routing_next_packed(c, out, err);
    if (c->kind != CUR_ROUTING || c->pending)
        return ms_error_set(err, MS_EINVAL, "%s: wrong cursor", c->db->path);
    int rc = cur_step(c, err);
    if (rc <= 0) return rc;
    rc = packed_row(c, out, err);
    return rc < 0 ? rc : 1;
}

MsTraceCursor *ms_trace_probs(MsTraceDb *db, int64_t run_id, int64_t prompt_id, MsError *err)
{
    if (db->be) return db->be->probs(db, run_id, prompt_id, err);
    return cursor_new(db, CUR_PROBS, "SELECT prompt_id, pos, layer, probs, logits FROM router_probs",
                      WHERE_RP(prompt_id), "ORDER BY prompt_id, pos, layer", run_id, prompt_id, err);
}

int ms_trace_probs_next(MsTraceCursor *c, MsTraceProbs *out, MsError *err)
{
    if (ms_db_of(c)->be) return ms_db_of(c)->be->probs_next(c, out, err);
    if (c->kind != CUR_PROBS) return ms_error_set(err, MS_EINVAL, "%s: wrong cursor", c->db->path);
    int rc = cur_step(c, err);
    if (rc <= 0) return rc;
    sqlite3_stmt *st = c->st;
    int nb = sqlite3_column_bytes(st, 3);
    const unsigned char *p = sqlite3_column_blob(st, 3), *z = sqlite3_column_blob(st, 4);
    if (!p || !z || nb % 2 || sqlite3_column_bytes(st, 4) != nb)
        return ms_error_set(err, MS_EFORMAT, "%s: corrupt router_probs row", c->db->path);
    size_t n = (size_t)nb / 2;
    if (2 * n > c->fcap) {
        float *nf = realloc(c->fbuf, 2 * n * sizeof *nf);
        if (!nf) return ms_error_set(err, MS_ENOMEM, "%s: out of memory", c->db->path);
        c->fbuf = nf;
        c->fcap = 2 * n;
    }
    for (size_t e = 0; e < n; e++) {
        c->fbuf[e] = ms_fp16_to_fp32((uint16_t)ms_get_u16(p + 2 * e));
        c->fbuf[n + e] = ms_fp16_to_fp32((uint16_t)ms_get_u16(z + 2 * e));
    }
    out->prompt_id = sqlite3_column_int64(st, 0);
    out->pos = sqlite3_column_int(st, 1);
    out->layer = sqlite3_column_int(st, 2);
    out->n_expert = (int32_t)n;
    out->probs = c->fbuf;
    out->logits = c->fbuf + n;
    return 1;
}

MsTraceCursor *ms_trace_hidden(MsTraceDb *db, int64_t run_id, int64_t prompt_id, MsError *err)
{
    if (db->be) return db->be->hidden(db, run_id, prompt_id, err);
    return cursor_new(db, CUR_HIDDEN, "SELECT prompt_id, pos, layer, maxabs, channel FROM hidden_stats",
                      WHERE_RP(prompt_id), "ORDER BY prompt_id, pos, layer", run_id, prompt_id, err);
}

int ms_trace_hidden_next(MsTraceCursor *c, MsTraceHidden *buf, int cap, MsError *err)
{
    if (ms_db_of(c)->be) return ms_db_of(c)->be->hidden_next(c, buf, cap, err);
    if (c->kind != CUR_HIDDEN) return ms_error_set(err, MS_EINVAL, "%s: wrong cursor", c->db->path);
    int n = 0;
    while (n < cap) {
        int rc = cur_step(c, err);
        if (rc < 0) return rc;
        if (rc == 0) break;
        buf[n].prompt_id = sqlite3_column_int64(c->st, 0);
        buf[n].pos = sqlite3_column_int(c->st, 1);
        buf[n].layer = sqlite3_column_int(c->st, 2);
        buf[n].maxabs = (float)sqlite3_column_double(c->st, 3);
        buf[n].channel = sqlite3_column_type(c->st, 4) == SQLITE_NULL ? -1 : sqlite3_column_int(c->st, 4);
        n++;
    }
    return n;
}

/* ------------------------------------------------------------------ query */

/* A query may read pragmas but not set them: `PRAGMA query_only=0` counts as
 * read-only to SQLite, and the connection is kept read-only by query_only. */
static int query_auth(void *user, int action, const char *a1, const char *a2, const char *db, const char *trig)
{
    (void)a1, (void)db, (void)trig;
    if (action == SQLITE_PRAGMA && a2) {
        *(int *)user = 1;
        return SQLITE_DENY;
    }
    return SQLITE_OK;
}

int ms_trace_query(MsTraceDb *db, const char *sql, MsTraceRowFn row, void *user, MsError *err)
{
    if (db->be) return db->be->query(db, sql, row, user, err);
    sqlite3_stmt *st;
    const char *tail = NULL;
    int pragma_set = 0;
    sqlite3_set_authorizer(db->h, query_auth, &pragma_set);
    int prc = sqlite3_prepare_v2(db->h, sql, -1, &st, &tail);
    sqlite3_set_authorizer(db->h, NULL, NULL);
    if (pragma_set) {
        if (prc == SQLITE_OK) sqlite3_finalize(st);
        return ms_error_set(err, MS_EINVAL, "%s: a query cannot set a PRAGMA (reading one is fine)", db->path);
    }
    if (prc != SQLITE_OK) return ms_db_fail(db, err, MS_EINVAL, "query");
    if (!st) return ms_error_set(err, MS_EINVAL, "%s: empty query", db->path);
    for (const char *t = tail; t && *t; t++)
        if (*t != ' ' && *t != '\t' && *t != '\n' && *t != '\r' && *t != ';') {
            sqlite3_finalize(st);
            return ms_error_set(err, MS_EINVAL, "%s: only one statement per query", db->path);
        }
    if (!sqlite3_stmt_readonly(st)) {
        sqlite3_finalize(st);
        return ms_error_set(err, MS_EINVAL, "%s: query is not read-only", db->path);
    }
    int n = sqlite3_column_count(st);
    const char **names = calloc((size_t)n + 1, sizeof *names);
    const char **vals = calloc((size_t)n + 1, sizeof *vals);
    char **owned = calloc((size_t)n + 1, sizeof *owned);
    int rc = 0;
    if (!names || !vals || !owned) {
        rc = ms_error_set(err, MS_ENOMEM, "%s: out of memory", db->path);
        goto out;
    }
    for (int i = 0; i < n; i++) names[i] = sqlite3_column_name(st, i);
    for (;;) {
        int s = sqlite3_step(st);
        if (s == SQLITE_DONE) break;
        if (s != SQLITE_ROW) { rc = ms_db_fail(db, err, MS_EDB, "query"); break; }
        for (int i = 0; i < n; i++) {
            free(owned[i]);
            owned[i] = NULL;
            int ty = sqlite3_column_type(st, i);
            if (ty == SQLITE_NULL) vals[i] = NULL;
            else if (ty == SQLITE_BLOB) {
                int nb = sqlite3_column_bytes(st, i);
                const unsigned char *b = sqlite3_column_blob(st, i);
                owned[i] = malloc((size_t)nb * 2 + 4);
                if (!owned[i]) { rc = ms_error_set(err, MS_ENOMEM, "%s: out of memory", db->path); goto out; }
                char *o = owned[i];
                *o++ = 'x'; *o++ = '\'';
                for (int j = 0; j < nb; j++) o += sprintf(o, "%02X", b[j]);
                *o++ = '\''; *o = '\0';
                vals[i] = owned[i];
            } else if (ty == SQLITE_FLOAT) {
                /* shortest text that reads back as the same double */
                double d = sqlite3_column_double(st, i);
                char buf[40];
                for (int prec = 15; prec <= 17; prec++) {
                    snprintf(buf, sizeof buf, "%.*g", prec, d);
                    if (strtod(buf, NULL) == d) break;
                }
                owned[i] = strdup(buf);
                vals[i] = owned[i];
            } else vals[i] = (const char *)sqlite3_column_text(st, i);
        }
        if (row(user, n, names, vals)) break;
    }
out:
    if (owned) for (int i = 0; i < n; i++) free(owned[i]);
    free(owned);
    free(names);
    free(vals);
    sqlite3_finalize(st);
    return rc;
}

/* ------------------------------------------------------ stored results */

MsTraceCursor *ms_trace_analyses(MsTraceDb *db, int64_t run_id, MsError *err)
{
    if (db->be) return db->be->analyses(db, run_id, err);
    return cursor_new(db, CUR_ANALYSES, "SELECT analysis_id, run_id, name, table_name, params, created, "
                      "program_version FROM analysis", run_id ? " WHERE run_id = ?1" : "",
                      " ORDER BY analysis_id", run_id, 0, err);
}

int ms_trace_analyses_next(MsTraceCursor *c, MsTraceAnalysis *out, MsError *err)
{
    if (ms_db_of(c)->be) return ms_db_of(c)->be->analyses_next(c, out, err);
    if (c->kind != CUR_ANALYSES) return ms_error_set(err, MS_EINVAL, "%s: wrong cursor", c->db->path);
    int rc = cur_step(c, err);
    if (rc <= 0) return rc;
    sqlite3_stmt *st = c->st;
    out->analysis_id = sqlite3_column_int64(st, 0);
    out->run_id = sqlite3_column_int64(st, 1);   /* NULL reads as 0 */
    out->name = (const char *)sqlite3_column_text(st, 2);
    out->table = (const char *)sqlite3_column_text(st, 3);
    out->params = (const char *)sqlite3_column_text(st, 4);
    out->created = (const char *)sqlite3_column_text(st, 5);
    out->program_version = (const char *)sqlite3_column_text(st, 6);
    if (!out->name) out->name = "";
    if (!out->table) out->table = "";
    if (!out->created) out->created = "";
    if (!out->program_version) out->program_version = "";
    return 1;
}

/* SQLite's affinity rules (§3.1 of its datatype page) on a declared type. */
static MsColType decl_type(const char *t)
{
    if (!t || !*t) return MS_COL_BLOB;
    char u[64];
    size_t n = 0;
    for (; t[n] && n + 1 < sizeof u; n++) u[n] = (char)(t[n] >= 'a' && t[n] <= 'z' ? t[n] - 32 : t[n]);
    u[n] = 0;
    if (strstr(u, "INT")) return MS_COL_INT;
    if (strstr(u, "CHAR") || strstr(u, "CLOB") || strstr(u, "TEXT")) return MS_COL_TEXT;
    if (strstr(u, "BLOB")) return MS_COL_BLOB;
    return MS_COL_REAL;
}

MsTraceCursor *ms_trace_table(MsTraceDb *db, const char *table, int64_t run_id, MsError *err)
{
    if (db->be) return db->be->table(db, table, run_id, err);
    if (!ms_db_ident_ok(table)) {
        ms_error_set(err, MS_EINVAL, "%s: bad result table name '%s'", db->path, table ? table : "");
        return NULL;
    }
    /* only tables the registry lists: the core tables are not results */
    sqlite3_stmt *st;
    if (ms_db_prepare(db, "SELECT count(*) FROM analysis WHERE table_name = ?1", &st, err)) return NULL;
    sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    int64_t reg = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    sqlite3_finalize(st);
    if (reg < 0) { ms_db_fail(db, err, MS_EDB, "read the analysis registry"); return NULL; }
    if (reg == 0) {
        ms_error_set(err, MS_ENOTFOUND, "%s: no result table '%s' (not in the analysis registry)", db->path, table);
        return NULL;
    }
    MsTraceCursor *c = calloc(1, sizeof *c);
    if (!c) { ms_error_set(err, MS_ENOMEM, "%s: out of memory", db->path); return NULL; }
    c->db = db;
    c->kind = CUR_TABLE;
    /* columns: names and declared types */
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT name, type FROM pragma_table_info('%s') ORDER BY cid", table);
    if (ms_db_prepare(db, sql, &st, err)) { free(c); return NULL; }
    int cap = 0;
    bool has_run = false;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (c->n_cols == cap) {
            cap = cap ? cap * 2 : 16;
            MsColumn *nc = realloc(c->cols, sizeof *nc * (size_t)cap);
            if (!nc) break;
            c->cols = nc;
        }
        const char *name = (const char *)sqlite3_column_text(st, 0);
        char *dup = strdup(name ? name : "");
        if (!dup) break;
        has_run |= !strcmp(dup, "run_id");
        c->cols[c->n_cols].name = dup;
        c->cols[c->n_cols++].type = decl_type((const char *)sqlite3_column_text(st, 1));
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        ms_trace_cursor_free(c);
        if (rc == SQLITE_ROW) ms_error_set(err, MS_ENOMEM, "%s: out of memory", db->path);
        else ms_db_fail(db, err, MS_EDB, "read result table columns");
        return NULL;
    }
    if (c->n_cols == 0) {
        ms_trace_cursor_free(c);
        ms_error_set(err, MS_ENOTFOUND, "%s: result table '%s' is registered but missing", db->path, table);
        return NULL;
    }
    if (run_id > 0 && !has_run) {
        ms_trace_cursor_free(c);
        ms_error_set(err, MS_EINVAL, "%s: result table '%s' has no run_id column", db->path, table);
        return NULL;
    }
    c->vals = calloc((size_t)c->n_cols, sizeof *c->vals);
    if (!c->vals) {
        ms_trace_cursor_free(c);
        ms_error_set(err, MS_ENOMEM, "%s: out of memory", db->path);
        return NULL;
    }
    /* write order; a WITHOUT ROWID table has none: its key order then */
    snprintf(sql, sizeof sql, "SELECT * FROM \"%s\"%s ORDER BY rowid", table, run_id > 0 ? " WHERE run_id = ?1" : "");
    if (sqlite3_prepare_v2(db->h, sql, -1, &c->st, NULL) != SQLITE_OK) {
        sqlite3_finalize(c->st);
        c->st = NULL;
        snprintf(sql, sizeof sql, "SELECT * FROM \"%s\"%s", table, run_id > 0 ? " WHERE run_id = ?1" : "");
        if (ms_db_prepare(db, sql, &c->st, err)) {
            ms_trace_cursor_free(c);
            return NULL;
        }
    }
    if (run_id > 0) sqlite3_bind_int64(c->st, 1, run_id);
    return c;
}

int ms_trace_table_columns(const MsTraceCursor *c, const MsColumn **cols)
{
    if (c && ms_db_of(c)->be) return ms_db_of(c)->be->table_columns(c, cols);
    if (!c || c->kind != CUR_TABLE) {
        if (cols) *cols = NULL;
        return MS_EINVAL;
    }
    if (cols) *cols = c->cols;
    return c->n_cols;
}

int ms_trace_table_next(MsTraceCursor *c, const MsTraceValue **vals, MsError *err)
{
    if (ms_db_of(c)->be) return ms_db_of(c)->be->table_next(c, vals, err);
    if (c->kind != CUR_TABLE) return ms_error_set(err, MS_EINVAL, "%s: wrong cursor", c->db->path);
    int rc = cur_step(c, err);
    if (rc <= 0) return rc;
    for (int i = 0; i < c->n_cols; i++) {
        MsTraceValue *v = &c->vals[i];
        memset(v, 0, sizeof *v);
        switch (sqlite3_column_type(c->st, i)) {
        case SQLITE_INTEGER: v->type = MS_COL_INT; v->i = sqlite3_column_int64(c->st, i); break;
        case SQLITE_FLOAT: v->type = MS_COL_REAL; v->r = sqlite3_column_double(c->st, i); break;
        case SQLITE_TEXT:
            v->type = MS_COL_TEXT;
            v->s = (const char *)sqlite3_column_text(c->st, i);
            v->len = (size_t)sqlite3_column_bytes(c->st, i);
            break;
        case SQLITE_BLOB:
            v->type = MS_COL_BLOB;
            v->s = sqlite3_column_blob(c->st, i);
            v->len = (size_t)sqlite3_column_bytes(c->st, i);
            if (!v->s) v->s = "";
            break;
        default: v->type = MS_COL_NULL; break;
        }
    }
    *vals = c->vals;
    return 1;
}
