/* run-class.c — token-class modules over a stored run: nPMI (METHODS §5)
 * with RICE-style steering plans and SteerMoE risk difference (§6).  The
 * classes, ranking and selections are pure (analysis/build-class.c). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "run-internal.h"

/* Effective role: METHODS default for the module (generated tokens), but a
 * run without any generated token falls back to all tokens (*fallback). */
static int resolve_role(MsTraceDb *db, const AnRun *r, const MsAnOptions *o, MsAnRole *role, bool *fallback,
                        MsError *err)
{
    *fallback = false;
    if (o->role) return ms_an_role_parse(o->role, MS_AN_ROLE_ALL, role, err);
    int g = an_run_has_generated(db, r, err);
    if (g < 0) return g;
    *role = g ? MS_AN_ROLE_GENERATED : MS_AN_ROLE_ALL;
    *fallback = !g;
    return 0;
}

/* --by token: the token ids in scope counted (one pass over the tokens). */
static int token_counts(MsTraceDb *db, const AnRun *r, MsAnRole role, int64_t **cnt_out, int32_t *n_out,
                        MsError *err)
{
    *cnt_out = NULL;
    *n_out = 0;
    MsTraceCursor *tc = ms_trace_tokens(db, r->run_id, 0, err);
    if (!tc) return err ? err->code : MS_EDB;
    MsTraceToken tk;
    int64_t *cnt = NULL;
    int32_t ccap = 0;
    AnPass pass = {0};
    int rc;
    while ((rc = ms_trace_tokens_next(tc, &tk, err)) == 1) {
        if ((rc = an_pass_tick(r, &pass, err)) < 0) break;
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
    }
    ms_trace_cursor_free(tc);
    if (rc < 0) { free(cnt); return rc; }
    an_pass_end(r, &pass);
    *cnt_out = cnt;
    *n_out = ccap;
    return 0;
}

int an_npmi(MsTraceDb *db, AnRun *r, const MsAnOptions *o, MsAnResult *out, MsError *err)
{
    int lo, hi, rc = an_slot_range(r, o->layer, &lo, &hi, err);
    if (rc < 0) return rc;
    MsAnRole role;
    bool fallback;
    if ((rc = resolve_role(db, r, o, &role, &fallback, err)) < 0) return rc;
    MsNpmiBy kind;
    const char *label;
    int bucket;
    if ((rc = ms_npmi_parse_by(o->by ? o->by : "text", &kind, &label, &bucket, err)) < 0) return rc;
    MsNpmiClasses cls = {0};
    if (kind == MS_NPMI_BY_TEXT) rc = ms_npmi_classes_text(&cls);
    else if (kind == MS_NPMI_BY_POS) rc = ms_npmi_classes_pos(&cls, bucket);
    else if (kind == MS_NPMI_BY_LABEL) {
        char (*v)[256] = malloc(sizeof *v * ((size_t)r->n_prompt + 1));
        const char **vp = malloc(sizeof *vp * ((size_t)r->n_prompt + 1));
        if (!v || !vp) rc = MS_ENOMEM;
        for (int p = 0; rc >= 0 && p < r->n_prompt; p++) vp[p] = an_label(r, p, label, v[p], sizeof v[p]);
        if (rc >= 0) rc = ms_npmi_classes_label(&cls, vp, r->n_prompt);
        free(v);
        free(vp);
        if (rc >= 0 && cls.n == 0) {
            ms_npmi_classes_clear(&cls);
            return ms_error_set(err, MS_ENOTFOUND, "run %lld: no prompt has label '%s'", (long long)r->run_id, label);
        }
    } else {
        /* token ids: the max_classes most frequent ids in scope (first pass) */
        int64_t *cnt;
        int32_t ncnt;
        if ((rc = token_counts(db, r, role, &cnt, &ncnt, err)) < 0) return rc;
        rc = ms_npmi_classes_token(&cls, cnt, ncnt, o->max_classes);
        free(cnt);
    }
    if (rc < 0) {
        ms_npmi_classes_clear(&cls);
        return ms_error_set(err, MS_ENOMEM, "out of memory");
    }
    int ns = hi - lo;
    MsNpmiAcc *acc = ms_npmi_acc_new(ns, r->E, cls.n);
    if (!acc) {
        ms_npmi_classes_clear(&cls);
        return ms_error_set(err, MS_ENOMEM, "out of memory");
    }
    bool need_tok = kind == MS_NPMI_BY_TEXT || kind == MS_NPMI_BY_TOKEN || role != MS_AN_ROLE_ALL;
    AnStream *st = an_stream_new(db, r, need_tok, 0, err);
    if (!st) rc = err ? err->code : MS_EDB;
    AnTok t;
    while (st && (rc = an_stream_next(st, &t, err)) == 1) {
        if (!an_role_ok(role, &t)) continue;
        int c = -1;
        if (kind == MS_NPMI_BY_TEXT) c = t.has_token ? ms_text_class(t.piece, t.piece_len) : -1;
        else if (kind == MS_NPMI_BY_TOKEN)
            c = t.has_token && t.token_id >= 0 && t.token_id < cls.n_tokens ? cls.of_token[t.token_id] : -1;
        else if (kind == MS_NPMI_BY_LABEL) c = t.prompt_index >= 0 ? cls.of_prompt[t.prompt_index] : -1;
        else c = MS_MIN(t.pos / bucket, MS_NPMI_POS_BUCKETS - 1);
        /* positions without a class still count in N (they are events) */
        for (int s = lo; s < hi && rc >= 0; s++)
            rc = ms_npmi_acc_add(acc, s - lo, &c, c >= 0 ? 1 : 0, t.ids + (size_t)s * r->k, t.n[s]);
        if (rc < 0) break;
    }
    an_stream_free(st);
    if (rc >= 0) {
        MsAnHead h = an_head(r, o);
        rc = ms_npmi_result_build(&h, o, role, fallback, acc, r->slot_layer + lo, ns, &cls, &out->npmi, err);
    }
    ms_npmi_acc_free(acc);
    ms_npmi_classes_clear(&cls);
    return rc < 0 ? rc : 0;
}

/* -------------------------------------------------------------- riskdiff */

int an_riskdiff(MsTraceDb *db, AnRun *r, const MsAnOptions *o, MsAnResult *out, MsError *err)
{
    if (!o->label || !o->set1 || !o->set2)
        return ms_error_set(err, MS_EINVAL, "riskdiff needs --label NAME --set1 VALUE --set2 VALUE");
    int lo, hi, rc = an_slot_range(r, o->layer, &lo, &hi, err);
    if (rc < 0) return rc;
    MsAnRole role;
    bool fallback;
    if ((rc = resolve_role(db, r, o, &role, &fallback, err)) < 0) return rc;
    int P = r->n_prompt;
    int *set = malloc(sizeof(int) * ((size_t)P + 1));
    MsRdCounts *cn = ms_rd_counts_new(r->n_slot, r->E);
    if (!set || !cn) { rc = ms_error_set(err, MS_ENOMEM, "out of memory"); goto done; }
    for (int p = 0; p < P; p++) {
        char v[256];
        an_label(r, p, o->label, v, sizeof v);
        set[p] = !strcmp(v, o->set1) ? 1 : !strcmp(v, o->set2) ? 2 : 0;
    }
    AnStream *st = an_stream_new(db, r, role != MS_AN_ROLE_ALL, 0, err);
    if (!st) { rc = err ? err->code : MS_EDB; goto done; }
    AnTok t;
    while ((rc = an_stream_next(st, &t, err)) == 1) {
        if (t.prompt_index < 0 || !set[t.prompt_index] || !an_role_ok(role, &t)) continue;
        ms_rd_counts_add(cn, set[t.prompt_index], t.ids, t.n, r->k);
    }
    an_stream_free(st);
    if (rc < 0) goto done;
    MsAnHead h = an_head(r, o);
    rc = ms_riskdiff_result_build(&h, o, role, fallback, cn, r->slot_layer, lo, hi, r->k, &out->riskdiff, err);
done:
    free(set);
    ms_rd_counts_free(cn);
    return rc < 0 ? rc : 0;
}
