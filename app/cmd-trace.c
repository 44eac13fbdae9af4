/* cmd-trace.c — `moescope trace`: run every prompt of a file through the
 * model and store tokens and routing in a trace database, one transaction
 * per prompt (so a kill loses at most the prompt in flight and --resume
 * continues without duplicates). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cli-util.h"
#include "commands.h"
#include "prompts.h"
#include "trace.h"

static const char trace_help[] =
    "usage: moescope trace MODEL --prompts FILE --db OUT.db [options] [interventions]\n"
    "\n"
    "Runs every prompt (prefill, then optionally N generated tokens, traced too)\n"
    "and stores tokens, log-probabilities and every routing decision in the\n"
    "SQLite database OUT.db (created if missing; see docs/schema.md).  Each prompt\n"
    "is one transaction.  On a terminal a progress bar shows prompts done,\n"
    "tokens/s and the time left.\n"
    "\n"
    "  --prompts FILE  plain text (one prompt per line, escapes \\n \\t \\\\) or JSONL\n"
    "                  ({\"text\": ..., \"labels\": {...}} per line)\n"
    "  --db OUT.db     the trace database\n"
    "  --gen N         generate N tokens after each prompt (default 0)\n"
    "  --temp T        sampling temperature for --gen (default 0 = greedy)\n"
    "  --seed S        sampler seed (default 0)\n"
    "  --probs         also store the full router probabilities and logits (binary16)\n"
    "  --stats         also store expert output max|x| / L2 and residual max|h|\n"
    "  --no-logprobs   skip per-token log-probabilities and entropies (faster prefill)\n"
    "  --parent RUN    record RUN as the run this one is compared with\n"
    "  --resume        continue the latest run with the same model, prompt file\n"
    "                  (as named), settings and interventions, skipping prompts\n"
    "                  already committed; otherwise start a new run\n"
    "  -t THREADS      worker threads (default: all CPUs)\n"
    "  --batch N       tokens per prefill chunk (default 256)\n"
    "  --timing        print the time of the prompt loop (inference + storing)\n"
    "  --no-store      run the same inference without observer or database (a\n"
    "                  benchmark baseline; --db is not needed)\n";

typedef struct {
    bool tty;
    double t0, last;
    int64_t tokens;
    size_t skipped;        /* resumed prompts: not part of the rate */
} Progress;

/* CPU seconds of the whole process (all threads), for --timing */
static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void progress(Progress *p, size_t done, size_t total, bool final)
{
    if (!p->tty) return;
    double now = ms_cli_now();
    if (!final && now - p->last < 0.2) return;
    p->last = now;
    double el = now - p->t0;
    double tps = el > 0 ? (double)p->tokens / el : 0;
    size_t run = done > p->skipped ? done - p->skipped : 0;
    double eta = run > 0 ? el * (double)(total - done) / (double)run : 0;
    int width = 30, fill = total ? (int)((double)width * (double)done / (double)total) : width;
    char bar[64];
    for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
    bar[width] = '\0';
    fprintf(stderr, "\r[%s] %zu/%zu prompts  %.0f tok/s  ETA %02d:%02d  ", bar, done, total, tps,
            (int)(eta / 60), (int)fmod(eta, 60));
    if (final) fputc('\n', stderr);
    fflush(stderr);
}

/* Observer wrapper that measures the time spent storing (for --timing). */
typedef struct {
    MsObserver inner;
    double secs;
} TimedObs;

static void timed_routing(void *user, const MsRoutingEvent *ev)
{
    TimedObs *t = user;
    double t0 = ms_cli_now();
    t->inner.on_routing(t->inner.user, ev);
    t->secs += ms_cli_now() - t0;
}

static void timed_hidden(void *user, const MsHiddenEvent *ev)
{
    TimedObs *t = user;
    double t0 = ms_cli_now();
    t->inner.on_hidden(t->inner.user, ev);
    t->secs += ms_cli_now() - t0;
}

static int put_token(MsTraceWriter *w, const MsTokenizer *tok, int pos, int32_t id, bool gen, float lp, float ent,
                     MsError *err)
{
    if (!w) return 0;   /* --no-store */
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

int ms_cmd_trace(int argc, char **argv)
{
    const char *cmd = "trace", *path = NULL, *pfile = NULL, *dbpath = NULL;
    int n_gen = 0, n_threads = 0, n_batch = 256;
    float temp = 0.0f;
    uint64_t seed = 0, parent = 0;
    bool probs = false, stats = false, resume = false, logprobs = true, timing = false, no_store = false;
    MsCliIvSpecs ivs = { 0 };
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        int r;
        if (ms_cli_is_help(a)) {
            fputs(trace_help, stdout);
            fputs(ms_cli_iv_help(), stdout);
            ms_cli_iv_free(&ivs);
            return 0;
        }
        if (!strcmp(a, "--probs")) { probs = true; continue; }
        if (!strcmp(a, "--stats")) { stats = true; continue; }
        if (!strcmp(a, "--resume")) { resume = true; continue; }
        if (!strcmp(a, "--no-logprobs")) { logprobs = false; continue; }
        if (!strcmp(a, "--timing")) { timing = true; continue; }
        if (!strcmp(a, "--no-store")) { no_store = true; continue; }
        if ((r = ms_cli_opt(cmd, argc, argv, &i, "--prompts", NULL, &v)) != 0) {
            if (r < 0) goto usage;
            pfile = v;
            continue;
        }
        if ((r = ms_cli_opt(cmd, argc, argv, &i, "--db", NULL, &v)) != 0) {
            if (r < 0) goto usage;
            dbpath = v;
            continue;
        }
        if ((r = ms_cli_opt(cmd, argc, argv, &i, "--gen", "-n", &v)) != 0) {
            if (r < 0 || ms_cli_parse_int(cmd, "--gen", v, 0, 1 << 20, &n_gen) < 0) goto usage;
            continue;
        }
        if ((r = ms_cli_opt(cmd, argc, argv, &i, "--threads", "-t", &v)) != 0) {
            if (r < 0 || ms_cli_parse_int(cmd, "-t", v, 0, 1024, &n_threads) < 0) goto usage;
            continue;
        }
        if ((r = ms_cli_opt(cmd, argc, argv, &i, "--batch", NULL, &v)) != 0) {
            if (r < 0 || ms_cli_parse_int(cmd, "--batch", v, 1, 1 << 16, &n_batch) < 0) goto usage;
            continue;
        }
        if ((r = ms_cli_opt(cmd, argc, argv, &i, "--temp", NULL, &v)) != 0) {
            if (r < 0 || ms_cli_parse_float(cmd, "--temp", v, 0.0, 100.0, &temp) < 0) goto usage;
            continue;
        }
        if ((r = ms_cli_opt(cmd, argc, argv, &i, "--seed", "-s", &v)) != 0) {
            if (r < 0 || ms_cli_parse_u64(cmd, "--seed", v, &seed) < 0) goto usage;
            continue;
        }
        if ((r = ms_cli_opt(cmd, argc, argv, &i, "--parent", NULL, &v)) != 0) {
            if (r < 0 || ms_cli_parse_u64(cmd, "--parent", v, &parent) < 0) goto usage;
            continue;
        }
        if ((r = ms_cli_iv_opt(cmd, &ivs, argc, argv, &i)) != 0) {
            if (r < 0) goto usage;
            continue;
        }
        if (ms_cli_model_arg(cmd, a, &path) < 0) goto usage;
    }
    if (!path || !pfile || (!dbpath && !no_store)) {
        ms_cli_usage(cmd, "%s", !path ? "missing MODEL" : !pfile ? "--prompts FILE is required" : "--db OUT.db is required");
        goto usage;
    }

    MsError err = { 0 };
    int rc = 0;
    MsPrompt *pr = NULL;
    size_t npr = 0;
    /* every line is parsed before anything is written */
    if (ms_prompts_read(pfile, &pr, &npr, &err) < 0) {
        ms_cli_iv_free(&ivs);
        return ms_cli_fail_err(cmd, &err);
    }
    MsModel *m = ms_cli_load_model(cmd, path);
    if (!m) {
        ms_prompts_free(pr, npr);
        ms_cli_iv_free(&ivs);
        return 1;
    }
    const MsModelInfo *in = ms_model_info(m);
    const MsTokenizer *tok = ms_model_tokenizer(m);
    MsIntervention *iv = NULL;
    MsContext *ctx = NULL;
    MsSampler *smp = NULL;
    MsTraceDb *db = NULL;
    MsTraceWriter *w = NULL;
    float *logits = NULL, *prev = NULL;
    int32_t **toks = calloc(npr ? npr : 1, sizeof *toks);
    int *ntok = calloc(npr ? npr : 1, sizeof *ntok);
    char *ivtext = NULL, *settings = NULL;
    if (!toks || !ntok) {
        rc = ms_cli_fail(cmd, "out of memory");
        goto done;
    }
    if (ms_cli_iv_build(cmd, &ivs, in->n_layer, in->n_expert, &iv) < 0) {
        rc = 2;
        goto done;
    }
    int max_tok = 1;
    for (size_t i = 0; i < npr; i++) {
        ntok[i] = ms_tokenizer_encode(tok, pr[i].text, pr[i].len, true, &toks[i], &err);
        if (ntok[i] < 0) {
            ntok[i] = 0;
            ms_error_prefix(&err, "%s:%d: ", pfile, pr[i].line);
            rc = ms_cli_fail_err(cmd, &err);
            goto done;
        }
        if (ntok[i] == 0) {
            rc = ms_cli_fail(cmd, "%s:%d: prompt has no tokens", pfile, pr[i].line);
            goto done;
        }
        max_tok = MS_MAX(max_tok, ntok[i]);
    }

    int64_t run_id = 0;
    if (no_store) goto run;
    db = ms_trace_open(dbpath, MS_TRACE_CREATE, &err);
    if (!db) {
        rc = ms_cli_fail_err(cmd, &err);
        goto done;
    }
    MsTraceModel tm;
    if (ms_trace_model_from_engine(&tm, m, path, &err) < 0) {
        rc = ms_cli_fail_err(cmd, &err);
        goto done;
    }
    int64_t model_id = ms_trace_model_add(db, &tm, &err);
    if (model_id < 0) {
        rc = ms_cli_fail_err(cmd, &err);
        goto done;
    }
    ivtext = iv && !ms_intervention_is_empty(iv) ? ms_intervention_to_string(iv) : NULL;
    {
        json_t *js = json_pack("{s:s, s:i, s:i, s:f, s:I, s:b, s:i}", "prompts", pfile, "n_prompts", (int)npr,
                               "gen", n_gen, "temp", (double)temp, "seed", (json_int_t)seed, "logprobs", logprobs,
                               "batch", n_batch);
        settings = js ? json_dumps(js, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
        json_decref(js);
        if (!settings) {
            rc = ms_cli_fail(cmd, "out of memory");
            goto done;
        }
    }
    MsTraceRunDesc rd = { .model_id = model_id, .parent_run_id = (int64_t)parent, .kind = "trace",
                          .settings_json = settings, .interventions = ivtext, .has_probs = probs, .has_stats = stats };
    if (resume) {
        run_id = ms_trace_run_find(db, &rd, &err);
        if (run_id < 0) {
            rc = ms_cli_fail_err(cmd, &err);
            goto done;
        }
    }
    if (!run_id) {
        run_id = ms_trace_run_new(db, &rd, &err);
        if (run_id < 0) {
            rc = ms_cli_fail_err(cmd, &err);
            goto done;
        }
    }
    w = ms_trace_writer_new(db, run_id, &err);
    if (!w) {
        rc = ms_cli_fail_err(cmd, &err);
        goto done;
    }
run:;

    MsContextParams cp = ms_context_default_params();
    cp.n_ctx = max_tok + n_gen;
    cp.n_threads = n_threads;
    cp.n_batch = MS_MIN(n_batch, max_tok);
    ctx = ms_context_new(m, &cp, &err);
    if (!ctx) {
        rc = ms_cli_fail_path(cmd, path, &err);
        goto done;
    }
    if (iv && ms_context_set_intervention(ctx, iv, &err) < 0) {
        rc = ms_cli_fail_err(cmd, &err);
        goto done;
    }
    TimedObs tobs = { .secs = 0 };
    if (w) {
        tobs.inner = ms_trace_writer_observer(w);
        MsObserver obs = tobs.inner;
        if (timing) obs = (MsObserver){ timed_routing, timed_hidden, &tobs };
        ms_context_set_observer(ctx, &obs);
    }
    smp = ms_sampler_new(temp, 1.0f, seed);
    size_t V = (size_t)in->n_vocab;
    int chunk = MS_MIN(n_batch, max_tok);
    logits = malloc((size_t)chunk * V * sizeof *logits);
    prev = malloc(V * sizeof *prev);
    if (!smp || !logits || !prev) {
        rc = ms_cli_fail(cmd, "out of memory");
        goto done;
    }

    Progress pg = { .tty = isatty(STDERR_FILENO), .t0 = ms_cli_now() };
    double cpu0 = cpu_now();
    size_t skipped = 0, written = 0;
    for (size_t i = 0; i < npr && !rc; i++) {
        if (resume && db) {
            int64_t have = ms_trace_prompt_lookup(db, run_id, (int)i, &err);
            if (have < 0) { rc = ms_cli_fail_err(cmd, &err); break; }
            if (have > 0) { skipped++; pg.skipped++; progress(&pg, i + 1, npr, false); continue; }
        }
        ms_context_reset(ctx);
        if (w && ms_trace_writer_begin(w, (int)i, pr[i].text, pr[i].len, pr[i].labels_json, &err) < 0) {
            rc = ms_cli_fail_err(cmd, &err);
            break;
        }
        const int32_t *ids = toks[i];
        int n = ntok[i];
        /* prefill in chunks: logprob of token t comes from the logits at t-1,
         * the entropy of token t's row is that of the logits at t */
        for (int t0 = 0; t0 < n && !rc; t0 += chunk) {
            int c = MS_MIN(chunk, n - t0);
            bool all = logprobs;
            if (ms_context_eval(ctx, ids + t0, c, logits, all, &err) < 0) {
                ms_error_prefix(&err, "%s:%d: ", pfile, pr[i].line);
                rc = ms_cli_fail_err(cmd, &err);
                break;
            }
            for (int j = 0; j < c && !rc; j++) {
                int t = t0 + j;
                float lp = NAN, ent = NAN;
                if (logprobs) {
                    if (t > 0) lp = ms_logprob(j > 0 ? logits + (size_t)(j - 1) * V : prev, in->n_vocab, ids[t]);
                    ent = ms_entropy(logits + (size_t)j * V, in->n_vocab);
                } else if (t == n - 1) {
                    ent = ms_entropy(logits, in->n_vocab);
                }
                if (put_token(w, tok, t, ids[t], false, lp, ent, &err) < 0) {
                    rc = ms_cli_fail_err(cmd, &err);
                }
            }
            /* keep the last row: it predicts the first token of the next chunk */
            memcpy(prev, logprobs ? logits + (size_t)(c - 1) * V : logits, V * sizeof *prev);
        }
        pg.tokens += n;
        for (int g = 0; g < n_gen && !rc; g++) {
            int32_t id = ms_sampler_sample(smp, prev, in->n_vocab);
            if (id < 0 || id >= in->n_vocab) {
                rc = ms_cli_fail(cmd, "sampler returned an invalid token %d", id);
                break;
            }
            if (ms_tokenizer_is_eog(tok, id)) break;
            float lp = ms_logprob(prev, in->n_vocab, id);
            if (ms_context_eval(ctx, &id, 1, prev, false, &err) < 0) {
                rc = ms_cli_fail_err(cmd, &err);
                break;
            }
            if (put_token(w, tok, n + g, id, true, lp, ms_entropy(prev, in->n_vocab), &err) < 0)
                rc = ms_cli_fail_err(cmd, &err);
            pg.tokens++;
        }
        if (rc) break;
        double tc = ms_cli_now();
        if (w && ms_trace_writer_commit(w, NULL, &err) < 0) {
            rc = ms_cli_fail_err(cmd, &err);
            break;
        }
        tobs.secs += ms_cli_now() - tc;
        written++;
        progress(&pg, i + 1, npr, false);
    }
    if (!rc) {
        progress(&pg, npr, npr, true);
        if (timing) {
            double el = ms_cli_now() - pg.t0;
            fprintf(stderr, "moescope trace: %lld tokens in %.3f s (%.1f tokens/s), CPU %.3f s, storing %.3f s "
                    "(%.2f %%)%s\n", (long long)pg.tokens, el, el > 0 ? (double)pg.tokens / el : 0.0, cpu_now() - cpu0,
                    tobs.secs, el > 0 ? 100.0 * tobs.secs / el : 0.0, no_store ? " without storing" : "");
        }
        if (pg.tty || skipped)
            fprintf(stderr, "moescope trace: run %lld: %zu prompts written, %zu already present\n",
                    (long long)run_id, written, skipped);
    }
done:
    ms_trace_writer_free(w);
    ms_trace_close(db);
    free(logits);
    free(prev);
    free(settings);
    free(ivtext);
    if (toks) for (size_t i = 0; i < npr; i++) free(toks[i]);
    free(toks);
    free(ntok);
    ms_sampler_free(smp);
    ms_context_free(ctx);
    ms_intervention_free(iv);
    ms_model_free(m);
    ms_prompts_free(pr, npr);
    ms_cli_iv_free(&ivs);
    return rc;
usage:
    ms_cli_iv_free(&ivs);
    return 2;
}
