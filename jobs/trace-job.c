/* trace-job.c — run a prompt set into a trace database, one transaction per
 * prompt, so a kill or a cancel loses at most the prompt in flight and a
 * resume continues without duplicates (see jobs.h). */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "job-internal.h"

void ms_trace_job_init(MsTraceJob *j)
{
    memset(j, 0, sizeof *j);
    j->prompts_name = "";
    j->logprobs = true;
    j->n_batch = 256;
}

/* Observer wrapper that measures the time spent storing (timing). */
typedef struct {
    MsObserver inner;
    double secs;
} TimedObs;

static void timed_routing(void *user, const MsRoutingEvent *ev)
{
    TimedObs *t = user;
    double t0 = ms_job_now();
    t->inner.on_routing(t->inner.user, ev);
    t->secs += ms_job_now() - t0;
}

static void timed_hidden(void *user, const MsHiddenEvent *ev)
{
    TimedObs *t = user;
    double t0 = ms_job_now();
    t->inner.on_hidden(t->inner.user, ev);
    t->secs += ms_job_now() - t0;
}

/* The run row: found (resume) or new.  Settings identify the run for resume. */
static int64_t open_run(const MsTraceJob *j, const MsModel *m, const char *model_path, const MsPrompt *prompts,
                        size_t n_prompts, MsTraceDb *db, MsError *err)
{
    char sha[65];
    ms_prompts_sha256(prompts, n_prompts, sha);
    MsTraceModel tm;
    int rc = ms_trace_model_from_engine(&tm, m, model_path, err);
    if (rc < 0) return rc;
    int64_t model_id = ms_trace_model_add(db, &tm, err);
    if (model_id < 0) return model_id;
    char *ivtext = j->iv && !ms_intervention_is_empty(j->iv) ? ms_intervention_to_string(j->iv) : NULL;
    json_t *js = json_pack("{s:s, s:i, s:i, s:f, s:I, s:b, s:i}", "prompts", j->prompts_name ? j->prompts_name : "",
                           "n_prompts", (int)n_prompts, "gen", j->n_gen, "temp", (double)j->temp, "seed",
                           (json_int_t)j->seed, "logprobs", j->logprobs, "batch", j->n_batch);
    char *settings = js ? json_dumps(js, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(js);
    int64_t run_id = 0;
    if (!settings || (j->iv && !ms_intervention_is_empty(j->iv) && !ivtext)) {
        run_id = ms_error_set(err, MS_ENOMEM, "out of memory");
    } else {
        MsTraceRunDesc rd = { .model_id = model_id, .parent_run_id = j->parent_run, .kind = "trace",
                              .settings_json = settings, .interventions = ivtext, .prompts_sha256 = sha,
                              .has_probs = j->probs, .has_stats = j->stats };
        if (j->shard_n > 1) run_id = ms_trace_run_join(db, &rd, j->resume, err);
        else if (j->resume) run_id = ms_trace_run_find(db, &rd, err);
        if (run_id == 0) run_id = ms_trace_run_new(db, &rd, err);
    }
    free(settings);
    free(ivtext);
    return run_id;
}

int ms_trace_job_run(const MsTraceJob *j, const MsModel *m, const char *model_path,
                     const MsPrompt *prompts, size_t n_prompts, MsTraceDb *db,
                     MsTraceJobResult *res, MsError *err)
{
    memset(res, 0, sizeof *res);
    res->n_prompts = n_prompts;
    const char *pname = j->prompts_name ? j->prompts_name : "";
    const MsTokenizer *tok = ms_model_tokenizer(m);
    int32_t **toks = NULL;
    int *ntok = NULL, max_tok = 1;
    int rc = ms_job_tokenize(tok, prompts, n_prompts, pname, &toks, &ntok, &max_tok, err);
    if (rc < 0) return rc;
    if ((rc = ms_job_check_context(m, prompts, ntok, n_prompts, j->n_gen, pname, err)) < 0) {
        ms_job_tokens_free(toks, ntok, n_prompts);
        return rc;
    }
    int64_t tokens_total = 0;
    for (size_t i = 0; i < n_prompts; i++) tokens_total += ntok[i] + j->n_gen;

    MsTraceWriter *w = NULL;
    MsContext *ctx = NULL;
    MsSeqRunner sr = { 0 };
    int chunk = MS_MIN(j->n_batch > 0 ? j->n_batch : 256, max_tok);
    if (db) {
        int64_t run_id = open_run(j, m, model_path, prompts, n_prompts, db, err);
        if (run_id < 0) {
            rc = (int)run_id;
            goto done;
        }
        res->run_id = run_id;
        if (!(w = ms_trace_writer_new(db, run_id, err)) || (rc = ms_trace_writer_set_worker(w, j->worker, err)) < 0) {
            rc = err ? err->code : MS_EDB;
            goto done;
        }
    }
    MsContextParams cp = ms_context_default_params();
    cp.n_ctx = max_tok + j->n_gen;
    cp.n_threads = j->n_threads;
    cp.n_batch = chunk;
    if (!(ctx = ms_context_new(m, &cp, err))) {
        rc = err ? err->code : MS_ENOMEM;
        goto done;
    }
    if (j->iv && (rc = ms_context_set_intervention(ctx, j->iv, err)) < 0) goto done;
    ms_context_set_cancel(ctx, j->cancel);
    TimedObs tobs = { .secs = 0 };
    if (w) {
        tobs.inner = ms_trace_writer_observer(w);
        MsObserver obs = tobs.inner;
        if (j->timing) obs = (MsObserver){ timed_routing, timed_hidden, &tobs };
        ms_context_set_observer(ctx, &obs);
    }
    if ((rc = ms_seq_runner_init(&sr, ctx, m, chunk, err)) < 0) goto done;
    sr.all_rows = j->logprobs;
    sr.w = w;
    if (!(sr.smp = ms_sampler_new(j->temp, 1.0f, j->seed))) {
        rc = ms_error_set(err, MS_ENOMEM, "out of memory");
        goto done;
    }
    /* a shard's share: progress counts its prompts only */
    bool sharded = j->shard_n > 1;
    size_t n_mine = n_prompts, done_mine = 0;
    if (sharded) {
        n_mine = 0;
        tokens_total = 0;
        for (size_t i = 0; i < n_prompts; i++)
            if ((int)(i % (size_t)j->shard_n) == j->shard_i - 1) {
                n_mine++;
                tokens_total += ntok[i] + j->n_gen;
            }
    }
    MsJobClock clock;
    ms_job_clock_start(&clock, j->progress, j->progress_user, "trace", (int64_t)n_mine, tokens_total);
    sr.clock = &clock;
    double cpu0 = ms_job_cpu_now();
    for (size_t i = 0; i < n_prompts; i++) {
        if (ms_cancel_requested(j->cancel)) {
            rc = ms_error_set(err, MS_ECANCELLED, "cancelled");
            break;
        }
        if (sharded && (int)(i % (size_t)j->shard_n) != j->shard_i - 1) continue;
        done_mine++;
        if ((j->resume || sharded) && db) {
            int64_t have = ms_trace_prompt_lookup(db, res->run_id, (int)i, err);
            if (have < 0) {
                rc = (int)have;
                break;
            }
            if (have > 0) {
                res->n_skipped++;
                clock.skipped++;
                ms_job_clock_report(&clock, (int64_t)done_mine);
                continue;
            }
        }
        if (w && (rc = ms_trace_writer_begin(w, (int)i, prompts[i].text, prompts[i].len, prompts[i].labels_json,
                                             err)) < 0)
            break;
        rc = ms_seq_run(&sr, toks[i], ntok[i], j->n_gen, NULL, NULL, err);
        if (rc < 0) {
            if (rc != MS_ECANCELLED) ms_error_prefix(err, "%s:%d: ", pname, prompts[i].line);
            else ms_error_set(err, MS_ECANCELLED, "cancelled");
            break;
        }
        double tc = ms_job_now();
        if (w && (rc = ms_trace_writer_commit(w, NULL, err)) < 0) {
            /* another process writing the same run (--resume) committed
             * this prompt first (its uniqueness refused ours, after our
             * lookup if any): it is there, whole, so count it as present */
            MsError e2 = { 0 };
            if (rc == MS_EINVAL && ms_trace_prompt_lookup(db, res->run_id, (int)i, &e2) > 0) {
                rc = 0;
                res->n_skipped++;
                clock.skipped++;
                ms_job_clock_report(&clock, (int64_t)done_mine);
                continue;
            }
            break;
        }
        tobs.secs += ms_job_now() - tc;
        res->n_written++;
        ms_job_clock_report(&clock, (int64_t)done_mine);
    }
    if (w) ms_trace_writer_abort(w);   /* drops a prompt left in flight */
    /* every prompt of the set is committed: the run is complete (until then
     * it says "incomplete", also after a kill) */
    if (rc >= 0 && db && !sharded && res->n_written + res->n_skipped == n_prompts)
        rc = ms_trace_run_set_status(db, res->run_id, "complete", err);
    if (rc >= 0 && db && sharded) {   /* the other shards' prompts count too */
        MsTraceRunInfo ri;
        if ((rc = ms_trace_run_info(db, res->run_id, &ri, err)) >= 0) {
            if (ri.n_prompts == (int64_t)n_prompts) rc = ms_trace_run_set_status(db, res->run_id, "complete", err);
            ms_trace_run_info_clear(&ri);
        }
    }
    res->tokens = clock.tokens;
    res->wall_s = ms_job_now() - clock.t0;
    res->cpu_s = ms_job_cpu_now() - cpu0;
    res->store_s = tobs.secs;
done:
    ms_sampler_free(sr.smp);
    ms_seq_runner_clear(&sr);
    ms_context_free(ctx);
    ms_trace_writer_free(w);
    ms_job_tokens_free(toks, ntok, n_prompts);
    return rc < 0 ? rc : 0;
}
