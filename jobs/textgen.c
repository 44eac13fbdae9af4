/* textgen.c — perplexity and generation with routing capture (jobs.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "job-internal.h"

void ms_ppl_job_init(MsPplJob *j)
{
    memset(j, 0, sizeof *j);
    j->n_ctx = 512;
}

static MsContext *make_ctx(const MsModel *m, int n_ctx, int n_threads, int n_batch, const MsIntervention *iv,
                           const MsCancel *cancel, MsError *err)
{
    MsContextParams cp = ms_context_default_params();
    cp.n_ctx = n_ctx;
    cp.n_threads = n_threads;
    cp.n_batch = n_batch;
    MsContext *ctx = ms_context_new(m, &cp, err);
    if (!ctx) return NULL;
    if (iv && ms_context_set_intervention(ctx, iv, err) < 0) {
        ms_context_free(ctx);
        return NULL;
    }
    ms_context_set_cancel(ctx, cancel);
    return ctx;
}

int ms_ppl_job_run(const MsPplJob *j, const MsModel *m, const char *name, const char *text, size_t len,
                   MsPplResult *res, MsError *err)
{
    memset(res, 0, sizeof *res);
    if (j->n_ctx < 4) return ms_error_set(err, MS_EINVAL, "perplexity: chunk length %d < 4", j->n_ctx);
    const MsModelInfo *in = ms_model_info(m);
    const MsTokenizer *tok = ms_model_tokenizer(m);
    int32_t *ids = NULL, *chunk = NULL;
    float *logits = NULL;
    MsContext *ctx = NULL;
    /* the prompt-file rule (prompts.h): invalid text is refused with its line */
    if (ms_text_check(name, 1, text, len, err) < 0) return MS_EFORMAT;
    int n = ms_tokenizer_encode(tok, text, len, false, &ids, err);
    if (n < 0) return ms_error_prefix(err, "%s: ", name);
    int rc = 0;
    if (n < 4) {
        rc = ms_error_set(err, MS_EINVAL, "%s: too short (%d tokens; at least 4 needed)", name, n);
        goto done;
    }
    int cl = n < j->n_ctx ? n : j->n_ctx, n_chunk = n / cl;
    /* positions past the training context are not what the model was made for: refused, as trace does */
    if (in->n_ctx_train > 0 && cl > in->n_ctx_train) {
        rc = ms_error_set(err, MS_ERANGE, "%s: chunks of %d tokens are longer than the model's context of %d tokens "
                          "(give --ctx %d or less)", name, cl, in->n_ctx_train, in->n_ctx_train);
        goto done;
    }
    if (!(ctx = make_ctx(m, cl, j->n_threads, 0, j->iv, j->cancel, err))) {
        rc = err ? err->code : MS_ENOMEM;
        goto done;
    }
    logits = malloc((size_t)cl * (size_t)in->n_vocab * sizeof *logits);
    chunk = malloc((size_t)cl * sizeof *chunk);
    if (!logits || !chunk) {
        rc = ms_error_set(err, MS_ENOMEM, "out of memory (logits of %d tokens)", cl);
        goto done;
    }
    int32_t bos = ms_tokenizer_bos(tok);
    bool use_bos = ms_tokenizer_add_bos(tok) && bos >= 0;
    double nll = 0.0;
    long scored = 0;
    MsJobClock clock;
    ms_job_clock_start(&clock, j->progress, j->progress_user, "perplexity", n_chunk, (int64_t)n_chunk * cl);
    for (int c = 0; c < n_chunk; c++) {
        memcpy(chunk, ids + (size_t)c * cl, (size_t)cl * sizeof *chunk);
        if (use_bos) chunk[0] = bos;
        ms_context_reset(ctx);
        if ((rc = ms_context_eval(ctx, chunk, cl, logits, true, err)) < 0) goto done;
        for (int p = cl / 2; p < cl - 1; p++) {
            nll -= (double)ms_logprob(logits + (size_t)p * in->n_vocab, in->n_vocab, chunk[p + 1]);
            scored++;
        }
        clock.tokens += cl;
        ms_job_clock_report(&clock, c + 1);
    }
    res->nll_mean = nll / (double)scored;
    res->ppl = exp(res->nll_mean);
    res->n_scored = scored;
    res->n_chunks = n_chunk;
    res->chunk_len = cl;
    res->n_tokens = n;
    if (!isfinite(res->ppl))
        rc = ms_error_set(err, MS_ERANGE, "%s: perplexity is not finite (mean NLL %g)", name, res->nll_mean);
done:
    free(chunk);
    free(logits);
    free(ids);
    ms_context_free(ctx);
    return rc < 0 ? rc : 0;
}

/* ------------------------------------------------------------ generation */

void ms_gen_job_init(MsGenJob *j)
{
    memset(j, 0, sizeof *j);
    j->n_gen = 32;
    j->top_p = 1.0f;
}

void ms_generation_clear(MsGeneration *g)
{
    if (!g) return;
    free(g->tokens);
    ms_route_capture_free(g->routing);
    memset(g, 0, sizeof *g);
}

int ms_gen_job_run(const MsGenJob *j, const MsModel *m, const char *text, size_t len,
                   MsGeneration *out, MsError *err)
{
    memset(out, 0, sizeof *out);
    const MsModelInfo *in = ms_model_info(m);
    const MsTokenizer *tok = ms_model_tokenizer(m);
    int32_t *ids = NULL;
    float *logits = NULL;
    MsContext *ctx = NULL;
    MsSampler *smp = NULL;
    if (ms_text_check("prompt", 0, text, len, err) < 0) return MS_EFORMAT;   /* the rule of prompts.h */
    int n = ms_tokenizer_encode(tok, text, len, true, &ids, err), rc = 0;
    if (n < 0) return n;
    if (n == 0) {
        free(ids);
        return ms_error_set(err, MS_EINVAL, "the prompt has no tokens");
    }
    int n_gen = MS_MAX(j->n_gen, 0);
    if (in->n_ctx_train > 0 && (int64_t)n + n_gen > in->n_ctx_train) {   /* the rule of trace and experiment */
        free(ids);
        return ms_error_set(err, MS_ERANGE, "prompt of %d tokens (+ %d generated) is longer than the model's context "
                            "of %d tokens", n, n_gen, in->n_ctx_train);
    }
    out->tokens = malloc((size_t)(n + n_gen) * sizeof *out->tokens);
    logits = malloc((size_t)in->n_vocab * sizeof *logits);
    smp = ms_sampler_new(j->temp, j->top_p, j->seed);
    if (j->capture && !(out->routing = ms_route_capture_new(in->n_layer, j->capture_probs))) rc = MS_ENOMEM;
    if (!out->tokens || !logits || !smp || rc) {
        rc = ms_error_set(err, MS_ENOMEM, "out of memory");
        goto done;
    }
    memcpy(out->tokens, ids, (size_t)n * sizeof *ids);
    out->n_tokens = out->n_prompt = n;
    if (!(ctx = make_ctx(m, n + n_gen, j->n_threads, 0, j->iv, j->cancel, err))) {
        rc = err ? err->code : MS_ENOMEM;
        goto done;
    }
    if (out->routing) {
        MsObserver obs = ms_route_capture_observer(out->routing);
        ms_context_set_observer(ctx, &obs);
    }
    if ((rc = ms_context_eval(ctx, ids, n, logits, false, err)) < 0) goto done;
    for (int g = 0; g < n_gen; g++) {
        int32_t id = ms_sampler_sample(smp, logits, in->n_vocab);
        if (id < 0 || id >= in->n_vocab) {
            rc = ms_error_set(err, MS_EINTERNAL, "sampler returned an invalid token %d", id);
            goto done;
        }
        if (ms_tokenizer_is_eog(tok, id)) break;
        out->tokens[out->n_tokens++] = id;
        if (j->on_token) {
            char pb[256];
            int pl = ms_tokenizer_piece(tok, id, pb, sizeof pb);
            j->on_token(j->user, id, pb, pl > 0 ? (size_t)MS_MIN(pl, (int)sizeof pb) : 0);
        }
        /* the last token is evaluated only for its routing */
        if (g + 1 == n_gen && !out->routing) break;
        if ((rc = ms_context_eval(ctx, &id, 1, logits, false, err)) < 0) goto done;
    }
    if (out->routing && (rc = ms_route_capture_status(out->routing)) < 0)
        ms_error_set(err, rc, "recording routing: %s", ms_strerror(rc));
done:
    free(ids);
    free(logits);
    ms_sampler_free(smp);
    ms_context_free(ctx);
    if (rc < 0 && rc != MS_ECANCELLED) ms_generation_clear(out);
    return rc < 0 ? rc : 0;
}
