/* cmd-bench.c — `moescope bench`: prefill and decode speed, llama-bench
 * style (pp: one batch of P tokens from an empty cache; tg: N single-token
 * evals from an empty cache), median and spread over repetitions. */
#include <jansson.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli-util.h"
#include "commands.h"
#include "engine.h"
#include "quant.h"

static const char bench_help[] =
    "usage: moescope bench MODEL [-p 512] [-n 32] [-t THREADS] [-r REPS] [--observer] [--json]\n"
    "\n"
    "Measure prefill and decode throughput in tokens/s, like llama-bench: the\n"
    "prefill test evaluates P tokens in one call from an empty KV cache; the decode\n"
    "test evaluates N tokens one at a time from an empty KV cache.  Token ids are\n"
    "fixed pseudo-random draws (seeded), so runs are comparable.  One warm-up run of\n"
    "each test precedes REPS timed repetitions; the median, mean, standard\n"
    "deviation, min and max are reported.\n"
    "\n"
    "  -p P         prefill tokens (default 512; 0 skips the test)\n"
    "  -n N         decode tokens (default 32; 0 skips the test)\n"
    "  -t THREADS   worker threads (default: all CPUs)\n"
    "  -r REPS      timed repetitions (default 5)\n"
    "  --observer   attach a routing + hidden-state observer that reads every value\n"
    "               it is given (to measure what an observer costs)\n"
    "  --json       one JSON object with prefill_tps and decode_tps (medians) and\n"
    "               the per-repetition values\n";

typedef struct {
    double sum;   /* keeps the compiler from dropping the reads */
    long events;
} Touch;

static void touch_routing(void *user, const MsRoutingEvent *ev)
{
    Touch *t = user;
    double s = 0;
    size_t nk = (size_t)ev->n_tokens * (size_t)ev->k, ne = (size_t)ev->n_tokens * (size_t)ev->n_expert;
    for (size_t i = 0; i < nk; i++) s += ev->experts[i] + ev->weights[i] + ev->out_maxabs[i] + ev->out_l2[i];
    for (size_t i = 0; i < ne; i++) s += ev->probs[i] + ev->logits[i];
    for (int i = 0; i < ev->n_tokens; i++) s += ev->pos[i];
    t->sum += s;
    t->events++;
}

static void touch_hidden(void *user, const MsHiddenEvent *ev)
{
    Touch *t = user;
    for (int i = 0; i < ev->n_tokens; i++) t->sum += ev->maxabs[i] + ev->pos[i];
    t->events++;
}

typedef struct { double median, mean, sd, min, max; } Stats;

static int dcmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static Stats stats_of(const double *v, int n)
{
    Stats s = { 0 };
    if (n <= 0) return s;
    double *c = malloc((size_t)n * sizeof *c);
    if (!c) return s;
    memcpy(c, v, (size_t)n * sizeof *c);
    qsort(c, (size_t)n, sizeof *c, dcmp);
    s.median = n % 2 ? c[n / 2] : 0.5 * (c[n / 2 - 1] + c[n / 2]);
    s.min = c[0];
    s.max = c[n - 1];
    for (int i = 0; i < n; i++) s.mean += c[i];
    s.mean /= n;
    for (int i = 0; i < n; i++) s.sd += (c[i] - s.mean) * (c[i] - s.mean);
    s.sd = n > 1 ? sqrt(s.sd / (n - 1)) : 0.0;
    free(c);
    return s;
}

static json_t *json_stats(const Stats *s, const double *v, int n)
{
    json_t *o = json_object(), *a = json_array();
    json_object_set_new(o, "median", json_real(s->median));
    json_object_set_new(o, "mean", json_real(s->mean));
    json_object_set_new(o, "sd", json_real(s->sd));
    json_object_set_new(o, "min", json_real(s->min));
    json_object_set_new(o, "max", json_real(s->max));
    for (int i = 0; i < n; i++) json_array_append_new(a, json_real(v[i]));
    json_object_set_new(o, "runs", a);
    return o;
}

int ms_cmd_bench(int argc, char **argv)
{
    const char *cmd = "bench", *path = NULL;
    int n_p = 512, n_g = 32, n_threads = 0, reps = 5;
    bool observer = false, json = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        int r;
        if (ms_cli_is_help(a)) {
            fputs(bench_help, stdout);
            return 0;
        }
        if (!strcmp(a, "--observer")) { observer = true; continue; }
        if (!strcmp(a, "--json")) { json = true; continue; }
        if ((r = ms_cli_opt(cmd, argc, argv, &i, "--n-prompt", "-p", &v)) != 0) {
            if (r < 0 || ms_cli_parse_int(cmd, "-p", v, 0, 1 << 20, &n_p) < 0) return 2;
            continue;
        }
        if ((r = ms_cli_opt(cmd, argc, argv, &i, "--n-gen", "-n", &v)) != 0) {
            if (r < 0 || ms_cli_parse_int(cmd, "-n", v, 0, 1 << 20, &n_g) < 0) return 2;
            continue;
        }
        if ((r = ms_cli_opt(cmd, argc, argv, &i, "--threads", "-t", &v)) != 0) {
            if (r < 0 || ms_cli_parse_int(cmd, "-t", v, 0, 1024, &n_threads) < 0) return 2;
            continue;
        }
        if ((r = ms_cli_opt(cmd, argc, argv, &i, "--reps", "-r", &v)) != 0) {
            if (r < 0 || ms_cli_parse_int(cmd, "-r", v, 1, 1000, &reps) < 0) return 2;
            continue;
        }
        if (a[0] == '-' && a[1]) return ms_cli_usage(cmd, "unknown option '%s'", a);
        if (path) return ms_cli_usage(cmd, "more than one MODEL ('%s', '%s')", path, a);
        path = a;
    }
    if (!path) return ms_cli_usage(cmd, "missing MODEL");
    if (n_p == 0 && n_g == 0) return ms_cli_usage(cmd, "-p and -n are both 0: nothing to measure");

    MsError err = { 0 };
    int rc = 0;
    MsModel *m = ms_cli_load_model(cmd, path);
    if (!m) return 1;
    const MsModelInfo *in = ms_model_info(m);
    int n_tok = MS_MAX(n_p, n_g);
    MsContextParams cp = ms_context_default_params();
    cp.n_ctx = n_tok;
    cp.n_threads = n_threads;
    MsContext *ctx = ms_context_new(m, &cp, &err);
    int32_t *toks = malloc((size_t)n_tok * sizeof *toks);
    float *logits = malloc((size_t)in->n_vocab * sizeof *logits);
    double *pp = calloc((size_t)reps, sizeof *pp), *tg = calloc((size_t)reps, sizeof *tg);
    Touch touch = { 0 };
    if (!ctx) {
        rc = ms_cli_fail_path(cmd, path, &err);
        goto done;
    }
    if (!toks || !logits || !pp || !tg) {
        rc = ms_cli_fail(cmd, "out of memory");
        goto done;
    }
    /* fixed pseudo-random ids (xorshift64*, seed 1) */
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    for (int i = 0; i < n_tok; i++) {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        toks[i] = (int32_t)((x * 0x2545f4914f6cdd1dULL >> 33) % (uint64_t)in->n_vocab);
    }
    if (observer) {
        MsObserver obs = { .on_routing = touch_routing, .on_hidden = touch_hidden, .user = &touch };
        ms_context_set_observer(ctx, &obs);
    }
    for (int r = -1; r < reps; r++) {   /* r = -1: warm-up */
        if (n_p > 0) {
            ms_context_reset(ctx);
            double t0 = ms_cli_now();
            if (ms_context_eval(ctx, toks, n_p, logits, false, &err) < 0) {
                rc = ms_cli_fail_err(cmd, &err);
                goto done;
            }
            double dt = ms_cli_now() - t0;
            if (r >= 0) pp[r] = n_p / (dt > 0 ? dt : 1e-9);
        }
        if (n_g > 0) {
            ms_context_reset(ctx);
            int ng = r < 0 ? MS_MIN(n_g, 2) : n_g;
            double t0 = ms_cli_now();
            for (int i = 0; i < ng; i++)
                if (ms_context_eval(ctx, &toks[i], 1, logits, false, &err) < 0) {
                    rc = ms_cli_fail_err(cmd, &err);
                    goto done;
                }
            double dt = ms_cli_now() - t0;
            if (r >= 0) tg[r] = ng / (dt > 0 ? dt : 1e-9);
        }
    }
    Stats sp = stats_of(pp, reps), sg = stats_of(tg, reps);
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int thr = n_threads > 0 ? n_threads : (int)(ncpu > 0 ? ncpu : 1);
    char *pc = strdup(path);
    const char *base = pc ? basename(pc) : path;
    if (json) {
        json_t *o = json_object();
        json_object_set_new(o, "model", json_string(base));
        json_object_set_new(o, "arch", json_string(in->arch_name));
        json_object_set_new(o, "weight_type", json_string(ms_type_name(in->weight_type)));
        json_object_set_new(o, "file_size", json_integer((json_int_t)in->file_size));
        json_object_set_new(o, "n_threads", json_integer(thr));
        json_object_set_new(o, "n_prompt", json_integer(n_p));
        json_object_set_new(o, "n_gen", json_integer(n_g));
        json_object_set_new(o, "reps", json_integer(reps));
        json_object_set_new(o, "observer", json_boolean(observer));
        json_object_set_new(o, "prefill_tps", n_p ? json_real(sp.median) : json_null());
        json_object_set_new(o, "decode_tps", n_g ? json_real(sg.median) : json_null());
        if (n_p) json_object_set_new(o, "prefill", json_stats(&sp, pp, reps));
        if (n_g) json_object_set_new(o, "decode", json_stats(&sg, tg, reps));
        if (observer) json_object_set_new(o, "observer_events", json_integer(touch.events));
        char *s = json_dumps(o, JSON_PRESERVE_ORDER);
        if (s) puts(s);
        free(s);
        json_decref(o);
    } else {
        printf("| %-28s | %-6s | %7s | %8s | %-6s | %12s | %9s | %10s | %10s |\n", "model", "type", "threads",
               "observer", "test", "t/s median", "sd", "min", "max");
        printf("|%.30s|%.8s|%.9s|%.10s|%.8s|%.14s|%.11s|%.12s|%.12s|\n", "------------------------------",
               "--------", "---------", "----------", "--------", "--------------", "-----------",
               "------------", "------------");
        if (n_p) {
            char t[32];
            snprintf(t, sizeof t, "pp%d", n_p);
            printf("| %-28.28s | %-6s | %7d | %8s | %-6s | %12.2f | %9.2f | %10.2f | %10.2f |\n", base,
                   ms_type_name(in->weight_type), thr, observer ? "yes" : "no", t, sp.median, sp.sd, sp.min, sp.max);
        }
        if (n_g) {
            char t[32];
            snprintf(t, sizeof t, "tg%d", n_g);
            printf("| %-28.28s | %-6s | %7d | %8s | %-6s | %12.2f | %9.2f | %10.2f | %10.2f |\n", base,
                   ms_type_name(in->weight_type), thr, observer ? "yes" : "no", t, sg.median, sg.sd, sg.min, sg.max);
        }
    }
    free(pc);
done:
    free(toks);
    free(logits);
    free(pp);
    free(tg);
    ms_context_free(ctx);
    ms_model_free(m);
    return rc;
}
