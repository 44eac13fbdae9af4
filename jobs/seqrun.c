/* seqrun.c — the shared plumbing of the jobs (job-internal.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "job-internal.h"

double ms_job_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double ms_job_cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void ms_job_clock_start(MsJobClock *c, MsProgressFn fn, void *user, const char *stage, int64_t total,
                        int64_t tokens_total)
{
    memset(c, 0, sizeof *c);
    c->fn = fn;
    c->user = user;
    c->stage = stage;
    c->total = total;
    c->tokens_total = tokens_total;
    c->t0 = ms_job_now();
}

void ms_job_clock_report(MsJobClock *c, int64_t done)
{
    if (!c || !c->fn) return;
    MsProgress p = { .stage = c->stage, .done = done, .total = c->total, .tokens = c->tokens,
                     .tokens_total = c->tokens_total, .eta_s = -1 };
    p.elapsed_s = ms_job_now() - c->t0;
    p.tokens_per_s = p.elapsed_s > 0 ? (double)c->tokens / p.elapsed_s : 0;
    int64_t run = done - c->skipped;
    if (run > 0 && c->total > 0) p.eta_s = p.elapsed_s * (double)(c->total - done) / (double)run;
    c->fn(c->user, &p);
}

void ms_job_tokens_free(int32_t **toks, int *ntok, size_t n)
{
    if (toks)
        for (size_t i = 0; i < n; i++) free(toks[i]);
    free(toks);
    free(ntok);
}

int ms_job_tokenize(const MsTokenizer *tok, const MsPrompt *p, size_t n, const char *name,
                    int32_t ***toks_out, int **ntok_out, int *max_tok, MsError *err)
{
    int32_t **toks = calloc(n ? n : 1, sizeof *toks);
    int *ntok = calloc(n ? n : 1, sizeof *ntok);
    if (!toks || !ntok) {
        free(toks);
        free(ntok);
        return ms_error_set(err, MS_ENOMEM, "out of memory");
    }
    int mx = 1, rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        ntok[i] = ms_tokenizer_encode(tok, p[i].text, p[i].len, true, &toks[i], err);
        if (ntok[i] < 0) {
            rc = ntok[i];
            ntok[i] = 0;
            toks[i] = NULL;
            ms_error_prefix(err, "%s:%d: ", name, p[i].line);
        } else if (ntok[i] == 0) {
            rc = ms_error_set(err, MS_EFORMAT, "%s:%d: prompt has no tokens", name, p[i].line);
        } else {
            mx = MS_MAX(mx, ntok[i]);
        }
    }
    if (rc < 0) {
        ms_job_tokens_free(toks, ntok, n);
        return rc;
    }
    *toks_out = toks;
    *ntok_out = ntok;
    if (max_tok) *max_tok = mx;
    return 0;
}

int ms_job_check_context(const MsModel *m, const MsPrompt *p, const int *ntok, size_t n, int n_gen,
                         const char *name, MsError *err)
{
    int ctx = ms_model_info(m)->n_ctx_train;
    if (ctx <= 0) return 0;
    for (size_t i = 0; i < n; i++)
        if ((int64_t)ntok[i] + (n_gen > 0 ? n_gen : 0) > ctx) {
            char gen[48] = "";
            if (n_gen > 0) snprintf(gen, sizeof gen, " (+ %d generated)", n_gen);
            return ms_error_set(err, MS_ERANGE, "%s:%d: prompt of %d tokens%s is longer than the model's context "
                                "of %d tokens", name, p[i].line, ntok[i], gen, ctx);
        }
    return 0;
}

int ms_job_put_token(MsTraceWriter *w, const MsTokenizer *tok, int pos, int32_t id, bool gen, float lp, float ent,
                     MsError *err)
{
    if (!w) return 0;
    char buf[256];
    int n = ms_tokenizer_piece(tok, id, buf, sizeof buf);
    if (n < 0) return ms_error_set(err, n, "token id %d outside the vocabulary", id);
    if ((size_t)n <= sizeof buf) return ms_trace_writer_token(w, pos, id, buf, (size_t)n, gen, lp, ent, err);
    char *big = malloc((size_t)n);
    if (!big) return ms_error_set(err, MS_ENOMEM, "out of memory");
    ms_tokenizer_piece(tok, id, big, (size_t)n);
    int rc = ms_trace_writer_token(w, pos, id, big, (size_t)n, gen, lp, ent, err);
    free(big);
    return rc;
}

int ms_seq_runner_init(MsSeqRunner *r, MsContext *ctx, const MsModel *m, int chunk, MsError *err)
{
    memset(r, 0, sizeof *r);
    r->ctx = ctx;
    r->m = m;
    r->tok = ms_model_tokenizer(m);
    r->V = ms_model_info(m)->n_vocab;
    r->chunk = MS_MAX(chunk, 1);
    r->all_rows = true;
    r->logits = malloc((size_t)r->chunk * (size_t)r->V * sizeof *r->logits);
    r->prev = malloc((size_t)r->V * sizeof *r->prev);
    if (!r->logits || !r->prev) {
        ms_seq_runner_clear(r);
        return ms_error_set(err, MS_ENOMEM, "out of memory (logits of %d tokens)", chunk);
    }
    return 0;
}

void ms_seq_runner_clear(MsSeqRunner *r)
{
    free(r->logits);
    free(r->prev);
    r->logits = r->prev = NULL;
}

void ms_seq_begin(MsSeqRunner *r)
{
    ms_context_reset(r->ctx);
    r->pos = 0;
}

int ms_seq_feed(MsSeqRunner *r, const int32_t *ids, int n, int n_prompt, MsError *err)
{
    const int V = r->V;
    int rc = 0;
    for (int i0 = 0; i0 < n; i0 += r->chunk) {
        int c = MS_MIN(r->chunk, n - i0), t0 = r->pos;
        /* a chunk of generated tokens has every row in the buffer too */
        bool rows = r->all_rows || t0 >= n_prompt;
        if ((rc = ms_context_eval(r->ctx, ids + i0, c, r->logits, rows, err)) < 0) return rc;
        for (int j = 0; j < c; j++) {
            int t = t0 + j;
            bool gen = t >= n_prompt, have_row = rows || j == c - 1;
            const float *row = r->logits + (size_t)(rows ? j : 0) * V;
            float lp = NAN, ent = NAN;
            if (t > 0 && (r->all_rows || gen))
                lp = ms_logprob(j > 0 ? r->logits + (size_t)(j - 1) * V : r->prev, V, ids[i0 + j]);
            /* without all_rows only the prompt's last row keeps its entropy */
            if (have_row && (r->all_rows || gen || t == n_prompt - 1)) ent = ms_entropy(row, V);
            if (have_row && (r->all_rows || gen) && r->on_row && (rc = r->on_row(r->row_user, t, row, err)) < 0)
                return rc;
            if ((rc = ms_job_put_token(r->w, r->tok, t, ids[i0 + j], gen, lp, ent, err)) < 0) return rc;
        }
        /* keep the last row: it predicts the first token of the next chunk */
        memcpy(r->prev, r->logits + (size_t)(rows ? c - 1 : 0) * V, (size_t)V * sizeof *r->prev);
        r->pos += c;
        if (r->clock) r->clock->tokens += c;
    }
    return 0;
}

int32_t ms_seq_next(MsSeqRunner *r, MsError *err)
{
    int32_t id = ms_sampler_sample(r->smp, r->prev, r->V);
    if (id < 0 || id >= r->V) return ms_error_set(err, MS_EINTERNAL, "sampler returned an invalid token %d", id);
    return ms_tokenizer_is_eog(r->tok, id) ? -1 : id;
}

int ms_seq_run(MsSeqRunner *r, const int32_t *ids, int n, int n_gen, int32_t *gen, int *n_gen_out, MsError *err)
{
    if (n_gen_out) *n_gen_out = 0;
    ms_seq_begin(r);
    int rc = ms_seq_feed(r, ids, n, n, err);
    for (int g = 0; rc == 0 && g < n_gen; g++) {
        int32_t id = ms_seq_next(r, err);
        if (id < -1) return id;
        if (id < 0) break;
        if ((rc = ms_seq_feed(r, &id, 1, n, err)) < 0) break;
        if (gen) gen[g] = id;
        if (n_gen_out) *n_gen_out = g + 1;
    }
    return rc;
}
