/* experiment.c — baseline vs intervened over a prompt set into a trace
 * database, and the single-prompt comparison in memory (jobs.h). */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "job-internal.h"

void ms_experiment_job_init(MsExperimentJob *j)
{
    memset(j, 0, sizeof *j);
    j->prompts_name = "";
    j->free_gen = true;
    j->n_batch = 256;
}

void ms_compare_options_init(MsCompareOptions *o)
{
    memset(o, 0, sizeof *o);
    o->n_gen = 32;
    o->free_gen = true;
    o->n_batch = 256;
}

/* Settings that identify the pair for --resume (the baseline's include the
 * intervention, so two experiments on one prompt set keep their own). */
static char *settings_json(const MsExperimentJob *j, size_t n_prompts, const char *role, const char *ivtext)
{
    json_t *js = json_pack("{s:s, s:i, s:i, s:b, s:f, s:I, s:i, s:{s:s, s:s}}", "prompts",
                           j->prompts_name ? j->prompts_name : "", "n_prompts", (int)n_prompts, "gen", j->n_gen,
                           "free_gen", j->free_gen, "temp", (double)j->temp, "seed", (json_int_t)j->seed, "batch",
                           j->n_batch, "experiment", "role", role, "interventions", ivtext ? ivtext : "");
    char *s = js ? json_dumps(js, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(js);
    return s;
}

typedef struct {
    int64_t base, run;
    MsTraceWriter *wb, *wi;
} Pair;

static int open_pair(const MsExperimentJob *j, const MsModel *m, const char *model_path, const MsPrompt *prompts,
                     size_t n_prompts, MsTraceDb *db, Pair *p, MsError *err)
{
    char sha[65];
    ms_prompts_sha256(prompts, n_prompts, sha);
    MsTraceModel tm;
    int rc = ms_trace_model_from_engine(&tm, m, model_path, err);
    if (rc < 0) return rc;
    int64_t model_id = ms_trace_model_add(db, &tm, err);
    if (model_id < 0) return (int)model_id;
    char *ivtext = j->iv && !ms_intervention_is_empty(j->iv) ? ms_intervention_to_string(j->iv) : NULL;
    char *sb = settings_json(j, n_prompts, "baseline", ivtext), *si = settings_json(j, n_prompts, "intervened", ivtext);
    rc = !sb || !si || (j->iv && !ms_intervention_is_empty(j->iv) && !ivtext) ? ms_error_set(err, MS_ENOMEM, "out of memory") : 0;
    MsTraceRunDesc b = { .model_id = model_id, .kind = "baseline", .settings_json = sb, .prompts_sha256 = sha,
                         .has_probs = j->probs, .has_stats = j->stats };
    MsTraceRunDesc r = { .model_id = model_id, .kind = "intervened", .settings_json = si, .interventions = ivtext,
                         .prompts_sha256 = sha, .has_probs = j->probs, .has_stats = j->stats };
    if (!rc && j->shard_n > 1) {   /* workers starting together agree on one pair */
        if ((p->base = ms_trace_run_join(db, &b, j->resume, err)) > 0) {
            r.parent_run_id = p->base;
            if ((p->run = ms_trace_run_join(db, &r, j->resume, err)) < 0) rc = (int)p->run;
        }
    } else if (!rc && j->resume && (p->base = ms_trace_run_find(db, &b, err)) > 0) {
        r.parent_run_id = p->base;
        p->run = ms_trace_run_find(db, &r, err);
        if (p->run < 0) rc = (int)p->run;
    }
    if (!rc && p->base < 0) rc = (int)p->base;
    if (!rc && p->base == 0 && (p->base = ms_trace_run_new(db, &b, err)) < 0) rc = (int)p->base;
    r.parent_run_id = p->base;
    if (!rc && p->run == 0 && (p->run = ms_trace_run_new(db, &r, err)) < 0) rc = (int)p->run;
    if (!rc && !(p->wb = ms_trace_writer_new(db, p->base, err))) rc = err ? err->code : MS_EDB;
    if (!rc && !(p->wi = ms_trace_writer_new(db, p->run, err))) rc = err ? err->code : MS_EDB;
    if (!rc && j->worker && ((rc = ms_trace_writer_set_worker(p->wb, j->worker, err)) < 0 ||
                             (rc = ms_trace_writer_set_worker(p->wi, j->worker, err)) < 0))
        return rc;
    free(sb);
    free(si);
    free(ivtext);
    return rc;
}

/* Store one prompt of both runs and its comparison in one transaction. */
static int commit_prompt(MsTraceDb *db, Pair *p, MsExpCore *x, int index, MsError *err)
{
    const MsTokenizer *tok = ms_model_tokenizer(x->m);
    MsComparePrompt s = x->sum;
    s.index = index;
    char *tb = ms_job_text(tok, s.tokens_baseline, s.n_tokens_baseline);
    char *tr = ms_job_text(tok, s.tokens_run, s.n_tokens_run);
    s.text_baseline = tb;
    s.text_run = tr;
    int rc = !tb || !tr ? ms_error_set(err, MS_ENOMEM, "out of memory") : ms_trace_tx_begin(db, err);
    if (!rc) rc = ms_trace_writer_commit(p->wb, NULL, err);
    if (!rc) rc = ms_trace_writer_commit(p->wi, NULL, err);
    if (!rc) rc = ms_trace_compare_put(db, p->run, p->base, &s, x->pos, x->n, x->lay, x->n_lay, err);
    if (!rc) rc = ms_trace_tx_commit(db, err);
    if (rc) ms_trace_tx_rollback(db);
    free(tb);
    free(tr);
    return rc;
}

int ms_experiment_job_run(const MsExperimentJob *j, const MsModel *m, const char *model_path,
                          const MsPrompt *prompts, size_t n_prompts, MsTraceDb *db,
                          MsExperimentResult *res, MsError *err)
{
    memset(res, 0, sizeof *res);
    res->n_prompts = n_prompts;
    const char *pname = j->prompts_name ? j->prompts_name : "";
    int32_t **toks = NULL;
    int *ntok = NULL, max_tok = 1;
    const MsModelInfo *in = ms_model_info(m);
    /* every input is checked before anything is written */
    int rc = j->iv ? ms_intervention_validate(j->iv, in->n_layer, in->n_expert, in->n_expert_used, err) : 0;
    if (rc < 0) return rc;
    rc = ms_job_tokenize(ms_model_tokenizer(m), prompts, n_prompts, pname, &toks, &ntok, &max_tok, err);
    if (rc < 0) return rc;
    if ((rc = ms_job_check_context(m, prompts, ntok, n_prompts, j->n_gen, pname, err)) < 0) {
        ms_job_tokens_free(toks, ntok, n_prompts);
        return rc;
    }
    Pair p = { 0 };
    MsExpCore x;
    memset(&x, 0, sizeof x);
    if ((rc = open_pair(j, m, model_path, prompts, n_prompts, db, &p, err)) < 0) goto done;
    res->baseline_run = p.base;
    res->run = p.run;
    if ((rc = ms_exp_core_init(&x, m, max_tok, j->n_batch > 0 ? j->n_batch : 256, j->n_threads, j->n_gen, j->free_gen,
                               j->temp, j->seed, j->cancel, err)) < 0)
        goto done;
    MsJobClock clock;
    int64_t tokens_total = 0;
    /* a shard's share: progress counts its prompts only */
    bool sharded = j->shard_n > 1;
    size_t n_mine = 0, done_mine = 0;
    for (size_t i = 0; i < n_prompts; i++)
        if (!sharded || (int)(i % (size_t)j->shard_n) == j->shard_i - 1) {
            n_mine++;
            tokens_total += 2 * (ntok[i] + j->n_gen);
        }
    ms_job_clock_start(&clock, j->progress, j->progress_user, "experiment", (int64_t)n_mine, tokens_total);
    x.r.clock = &clock;
    for (size_t i = 0; i < n_prompts; i++) {
        if (ms_cancel_requested(j->cancel)) {
            rc = ms_error_set(err, MS_ECANCELLED, "cancelled");
            break;
        }
        if (sharded && (int)(i % (size_t)j->shard_n) != j->shard_i - 1) continue;
        done_mine++;
        if ((j->resume || sharded) && (rc = ms_trace_compare_has(db, p.run, (int)i, err)) != 0) {
            if (rc < 0) break;
            rc = 0;
            res->n_skipped++;
            clock.skipped++;
            ms_job_clock_report(&clock, (int64_t)done_mine);
            continue;
        }
        /* a prompt half-written before a kill is dropped and redone whole */
        if ((rc = ms_trace_writer_begin(p.wb, (int)i, prompts[i].text, prompts[i].len, prompts[i].labels_json, err)) < 0 ||
            (rc = ms_trace_writer_begin(p.wi, (int)i, prompts[i].text, prompts[i].len, prompts[i].labels_json, err)) < 0)
            break;
        rc = ms_exp_core_baseline(&x, toks[i], ntok[i], i, p.wb, err);
        if (rc == 0) rc = ms_exp_core_intervened(&x, j->iv, i, p.wi, err);
        if (rc == 0) rc = commit_prompt(db, &p, &x, (int)i, err);
        if (rc < 0) {
            if (rc == MS_ECANCELLED) ms_error_set(err, MS_ECANCELLED, "cancelled");
            else ms_error_prefix(err, "%s:%d: ", pname, prompts[i].line);
            break;
        }
        res->n_written++;
        ms_job_clock_report(&clock, (int64_t)done_mine);
    }
    /* both runs complete once every prompt of the set is in (with shards:
     * whichever worker wrote it) */
    bool all = res->n_written + res->n_skipped == n_prompts;
    if (rc >= 0 && sharded) {
        MsTraceRunInfo ri;
        if ((rc = ms_trace_run_info(db, p.run, &ri, err)) >= 0) {
            all = ri.n_prompts == (int64_t)n_prompts;
            ms_trace_run_info_clear(&ri);
        }
    }
    if (rc >= 0 && all && (rc = ms_trace_run_set_status(db, p.base, "complete", err)) >= 0)
        rc = ms_trace_run_set_status(db, p.run, "complete", err);
    res->tokens = clock.tokens;
    res->wall_s = ms_job_now() - clock.t0;
done:
    ms_trace_writer_free(p.wb);
    ms_trace_writer_free(p.wi);
    ms_exp_core_clear(&x);
    ms_job_tokens_free(toks, ntok, n_prompts);
    return rc < 0 ? rc : 0;
}

/* ------------------------------------------------------------ one prompt */

void ms_prompt_compare_clear(MsPromptCompare *c)
{
    if (!c) return;
    free(c->tokens);
    free(c->tokens_run);
    free(c->pos);
    free(c->layers);
    free(c->text_baseline);
    free(c->text_run);
    ms_route_capture_free(c->routing_baseline);
    ms_route_capture_free(c->routing_run);
    memset(c, 0, sizeof *c);
}

static void *dup_mem(const void *p, size_t n)
{
    void *d = malloc(n ? n : 1);
    if (d && n) memcpy(d, p, n);
    return d;
}

int ms_compare_prompt(const MsCompareOptions *o, const MsModel *m, const MsIntervention *iv, const char *text,
                      size_t len, MsPromptCompare *out, MsError *err)
{
    memset(out, 0, sizeof *out);
    int32_t *ids = NULL;
    const MsTokenizer *tok = ms_model_tokenizer(m);
    int n = ms_tokenizer_encode(tok, text, len, true, &ids, err);
    if (n < 0) return n;
    if (n == 0) {
        free(ids);
        return ms_error_set(err, MS_EINVAL, "the prompt has no tokens");
    }
    MsExpCore x;
    MsJobClock clock;
    ms_job_clock_start(&clock, o->progress, o->progress_user, "compare", 2, 2 * (int64_t)(n + o->n_gen));
    int rc = ms_exp_core_init(&x, m, n, o->n_batch > 0 ? o->n_batch : 256, o->n_threads, o->n_gen, o->free_gen,
                              o->temp, o->seed, o->cancel, err);
    x.r.clock = &clock;
    if (rc == 0) rc = ms_exp_core_baseline(&x, ids, n, 0, NULL, err);
    if (rc == 0) ms_job_clock_report(&clock, 1);
    if (rc == 0) rc = ms_exp_core_intervened(&x, iv, 0, NULL, err);
    if (rc == 0) ms_job_clock_report(&clock, 2);
    free(ids);
    if (rc < 0) {
        ms_exp_core_clear(&x);
        return rc;
    }
    out->n_prompt = x.n_prompt;
    out->n_tokens = x.n;
    out->n_run = x.n_free;
    out->n_layers = x.n_lay;
    out->tokens = dup_mem(x.seq, (size_t)x.n * sizeof *x.seq);
    out->tokens_run = dup_mem(x.free_toks, (size_t)x.n_free * sizeof *x.free_toks);
    out->pos = dup_mem(x.pos, (size_t)x.n * sizeof *x.pos);
    out->layers = dup_mem(x.lay, (size_t)x.n_lay * sizeof *x.lay);
    out->text_baseline = ms_job_text(tok, x.seq + x.n_prompt, x.n - x.n_prompt);
    out->text_run = ms_job_text(tok, x.free_toks, x.n_free);
    /* the captures move to the caller */
    out->routing_baseline = x.cap_b;
    out->routing_run = x.cap_i;
    x.cap_b = x.cap_i = NULL;
    out->summary = x.sum;
    ms_exp_core_clear(&x);
    if (!out->tokens || !out->tokens_run || !out->pos || !out->layers || !out->text_baseline || !out->text_run) {
        ms_prompt_compare_clear(out);
        return ms_error_set(err, MS_ENOMEM, "out of memory");
    }
    out->summary.tokens_baseline = out->tokens + out->n_prompt;
    out->summary.tokens_run = out->tokens_run;
    out->summary.text_baseline = out->text_baseline;
    out->summary.text_run = out->text_run;
    return 0;
}
