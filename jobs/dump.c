/* dump.c — tokens, routing and logits in the reference-fixture schema
 * (jobs.h: ms_dump_job_run). */
#include <errno.h>
#include <jansson.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "job-internal.h"

void ms_dump_job_init(MsDumpJob *j)
{
    memset(j, 0, sizeof *j);
    j->prompts_name = "";
}

/* Tiny JSON emitter: jansson escapes strings; floats are ours (shortest). */
static void put_jstr(FILE *f, const char *s, size_t n)
{
    json_t *j = json_stringn(s, n);
    char *d = j ? json_dumps(j, JSON_ENCODE_ANY) : NULL;
    fputs(d ? d : "null", f);
    free(d);
    json_decref(j);
}

/* Shortest decimal ("%.1g".."%.9g") that reads back as the same float32. */
static void put_jfloat(FILE *f, float v)
{
    if (!isfinite(v)) {
        fputs("null", f);
        return;
    }
    char b[40];
    for (int p = 1; p <= 9; p++) {
        snprintf(b, sizeof b, "%.*g", p, (double)v);
        if (strtof(b, NULL) == v) break;
    }
    fputs(b, f);
}

static const char *weights_tensor_name(const MsModelInfo *in)
{
    if (in->gating == MS_GATING_SOFTMAX_TOPK) return "ffn_moe_weights_softmax";
    if (in->w_scale != 1.0f) return "ffn_moe_weights_scaled";
    if (in->norm_w) return "ffn_moe_weights_norm";
    return "ffn_moe_weights";
}

static int write_f32_file(const char *path, const float *v, size_t n, MsError *err)
{
    FILE *f = fopen(path, "wb");
    if (!f) return ms_error_set(err, MS_EIO, "%s: %s", path, strerror(errno));
    size_t w = fwrite(v, sizeof(float), n, f);
    int bad = w != n;
    if (fclose(f) != 0) bad = 1;
    if (bad) return ms_error_set(err, MS_EIO, "%s: write failed", path);
    return 0;
}

static void put_header(FILE *jf, const MsModel *m, const char *model_path, int n_threads, const MsIntervention *iv)
{
    const MsModelInfo *in = ms_model_info(m);
    const MsTokenizer *tok = ms_model_tokenizer(m);
    char *pcopy = strdup(model_path);
    const char *base = pcopy ? basename(pcopy) : model_path;
    fputs("{\"model\":", jf);
    put_jstr(jf, base, strlen(base));
    free(pcopy);
    fprintf(jf, ",\"producer\":\"moescope %s\",\"arch\":", MS_VERSION);
    put_jstr(jf, in->arch_name, strlen(in->arch_name));
    fprintf(jf, ",\"n_vocab\":%d,\"n_layer\":%d,\"n_expert\":%d,\"n_expert_used\":%d,\"add_bos\":%s",
            in->n_vocab, in->n_layer, in->n_expert, in->n_expert_used, ms_tokenizer_add_bos(tok) ? "true" : "false");
    fprintf(jf, ",\"weights_tensor\":\"%s\"", weights_tensor_name(in));
    fprintf(jf, ",\"settings\":{\"n_threads\":%d,\"kv_cache_type\":\"f32\",\"flash_attn\":false,"
                "\"batch\":\"all prompt tokens in one ms_context_eval call (one micro-batch), logits at every position\","
                "\"add_special\":true,\"parse_special\":false",
            n_threads);
    if (iv) {
        char *s = ms_intervention_to_string(iv);
        fputs(",\"interventions\":", jf);
        put_jstr(jf, s ? s : "", s ? strlen(s) : 0);
        free(s);
    }
    fputs("},\"prompts\":[", jf);
}

/* One prompt's object: text, labels, tokens, per-layer routing, logits file. */
static void put_prompt(FILE *jf, size_t i, const MsPrompt *p, const int32_t *toks, int n, const MsRouteCapture *cap,
                       int n_layer, const char *logits_name)
{
    fputs(i ? ",{\"text\":" : "{\"text\":", jf);
    put_jstr(jf, p->text, p->len);
    if (p->labels_json) fprintf(jf, ",\"labels\":%s", p->labels_json);
    fputs(",\"tokens\":[", jf);
    for (int t = 0; t < n; t++) fprintf(jf, t ? ",%d" : "%d", toks[t]);
    fputs("],\"routing\":[", jf);
    int first = 1;
    for (int l = 0; l < n_layer; l++) {
        MsRouteLayer lc;
        if (!ms_route_capture_layer(cap, l, &lc)) continue;
        fprintf(jf, "%s{\"layer\":%d,\"experts\":[", first ? "" : ",", l);
        first = 0;
        for (int t = 0; t < n; t++) {
            fputs(t ? ",[" : "[", jf);
            for (int k = 0; k < lc.k; k++) fprintf(jf, k ? ",%d" : "%d", lc.experts[(size_t)t * lc.k + k]);
            fputc(']', jf);
        }
        fputs("],\"weights\":[", jf);
        for (int t = 0; t < n; t++) {
            fputs(t ? ",[" : "[", jf);
            for (int k = 0; k < lc.k; k++) {
                if (k) fputc(',', jf);
                put_jfloat(jf, lc.weights[(size_t)t * lc.k + k]);
            }
            fputc(']', jf);
        }
        fputs("],\"probs\":[", jf);
        for (int t = 0; t < n; t++) {
            fputs(t ? ",[" : "[", jf);
            for (int e = 0; e < lc.n_expert; e++) {
                if (e) fputc(',', jf);
                put_jfloat(jf, lc.probs[(size_t)t * lc.n_expert + e]);
            }
            fputc(']', jf);
        }
        fputs("]}", jf);
    }
    fputs("],\"logits\":", jf);
    put_jstr(jf, logits_name, strlen(logits_name));
    fputc('}', jf);
}

/* Final and temporary names of output file idx (−1 = the JSON). */
static void out_names(const char *prefix, long idx, char *fin, char *tmp, size_t cap)
{
    if (idx < 0) snprintf(fin, cap, "%s.json", prefix);
    else snprintf(fin, cap, "%s.p%ld.f32", prefix, idx);
    snprintf(tmp, cap, "%s.tmp%ld", fin, (long)getpid());
}

int ms_dump_job_run(const MsDumpJob *j, const MsModel *m, const char *model_path, const MsPrompt *prompts,
                    size_t n_prompts, const char *prefix, MsError *err)
{
    const char *pname = j->prompts_name ? j->prompts_name : "";
    if (n_prompts == 0) return ms_error_set(err, MS_EINVAL, "%s: no prompts", pname);
    const MsModelInfo *in = ms_model_info(m);
    for (size_t i = 0; i < n_prompts; i++) {
        json_t *js = json_stringn(prompts[i].text, prompts[i].len);   /* the JSON needs UTF-8 text */
        if (!js) return ms_error_set(err, MS_EFORMAT, "%s:%d: prompt is not valid UTF-8", pname, prompts[i].line);
        json_decref(js);
    }
    int32_t **toks = NULL;
    int *ntok = NULL, max_tok = 1;
    int rc = ms_job_tokenize(ms_model_tokenizer(m), prompts, n_prompts, pname, &toks, &ntok, &max_tok, err);
    if (rc < 0) return rc;
    if ((rc = ms_job_check_context(m, prompts, ntok, n_prompts, 0, pname, err)) < 0) {
        ms_job_tokens_free(toks, ntok, n_prompts);
        return rc;
    }
    size_t plen = strlen(prefix) + 96;
    char *fin = malloc(plen), *tmp = malloc(plen), *jtmp = malloc(plen);
    float *logits = malloc((size_t)max_tok * (size_t)in->n_vocab * sizeof *logits);
    MsRouteCapture *cap = ms_route_capture_new(in->n_layer, true);
    MsContext *ctx = NULL;
    FILE *jf = NULL;
    size_t n_done = 0;   /* logits files written (to remove on failure) */
    if (!fin || !tmp || !jtmp || !logits || !cap) {
        rc = ms_error_set(err, MS_ENOMEM, "out of memory (logits of %d tokens)", max_tok);
        goto done;
    }
    MsContextParams cp = ms_context_default_params();
    cp.n_ctx = max_tok;
    cp.n_batch = max_tok;   /* the whole prompt in one micro-batch, as the references */
    cp.n_threads = j->n_threads;
    cp.kv_type = MS_KV_F32;
    if (!(ctx = ms_context_new(m, &cp, err))) {
        rc = err ? err->code : MS_ENOMEM;
        ms_error_prefix(err, "%s: ", model_path);
        goto done;
    }
    if (j->iv && (rc = ms_context_set_intervention(ctx, j->iv, err)) < 0) goto done;
    ms_context_set_cancel(ctx, j->cancel);
    MsObserver obs = ms_route_capture_observer(cap);
    ms_context_set_observer(ctx, &obs);
    out_names(prefix, -1, fin, jtmp, plen);
    if (!(jf = fopen(jtmp, "w"))) {
        rc = ms_error_set(err, MS_EIO, "%s: %s", fin, strerror(errno));
        goto done;
    }
    put_header(jf, m, model_path, j->n_threads, j->iv);
    MsJobClock clock;
    ms_job_clock_start(&clock, j->progress, j->progress_user, "dump", (int64_t)n_prompts, 0);
    for (size_t i = 0; i < n_prompts; i++) {
        ms_route_capture_reset(cap);
        ms_context_reset(ctx);
        if ((rc = ms_context_eval(ctx, toks[i], ntok[i], logits, true, err)) < 0) {
            if (rc != MS_ECANCELLED) ms_error_prefix(err, "%s:%d: ", pname, prompts[i].line);
            goto done;
        }
        if ((rc = ms_route_capture_status(cap)) < 0) {
            ms_error_set(err, rc, "out of memory or inconsistent routing events");
            goto done;
        }
        out_names(prefix, (long)i, fin, tmp, plen);
        if ((rc = write_f32_file(tmp, logits, (size_t)ntok[i] * (size_t)in->n_vocab, err)) < 0) {
            unlink(tmp);
            goto done;
        }
        n_done = i + 1;
        char *fcopy = strdup(fin);
        put_prompt(jf, i, &prompts[i], toks[i], ntok[i], cap, in->n_layer, fcopy ? basename(fcopy) : fin);
        free(fcopy);
        clock.tokens += ntok[i];
        ms_job_clock_report(&clock, (int64_t)i + 1);
    }
    fputs("]}\n", jf);
    int bad = ferror(jf);
    if (fclose(jf) != 0) bad = 1;
    jf = NULL;
    if (bad) {
        out_names(prefix, -1, fin, tmp, plen);
        rc = ms_error_set(err, MS_EIO, "%s: write failed", fin);
        goto done;
    }
    /* every file is complete: give them their names */
    for (long i = -1; i < (long)n_prompts && rc == 0; i++) {
        out_names(prefix, i, fin, tmp, plen);
        if (rename(tmp, fin) != 0) rc = ms_error_set(err, MS_EIO, "%s: %s", fin, strerror(errno));
    }
done:
    if (jf) fclose(jf);
    if (rc < 0 && fin && tmp) {
        out_names(prefix, -1, fin, tmp, plen);
        unlink(tmp);
        for (size_t i = 0; i < n_done; i++) {
            out_names(prefix, (long)i, fin, tmp, plen);
            unlink(tmp);
        }
    }
    free(fin);
    free(tmp);
    free(jtmp);
    free(logits);
    ms_route_capture_free(cap);
    ms_context_free(ctx);
    ms_job_tokens_free(toks, ntok, n_prompts);
    return rc < 0 ? rc : 0;
}
