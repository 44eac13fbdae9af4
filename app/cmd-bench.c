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
#include "ms-cpu.h"
#include "quant.h"

static const char bench_help[] =
    "usage: moescope bench MODEL [-p 512] [-n 32] [-t THREADS] [-r REPS] [--observer] [--json]\n"
    "\n"
    "Measure prefill and decode throughput in tokens/s, like llama-bench: the\n"
    "prefill test evaluates P tokens in one call from an empty KV cache; the decode\n"
    "test evaluates N tokens one at a time from an empty KV cache.  Token ids are\n"
    "fixed pseudo-random draws (seeded), so runs are comparable.  One warm-up run of\n"
    "each test precedes REPS timed repetitions; the median, standard deviation,\n"
    "min and max are printed (with --json the mean and every repetition too).\n"
    "\n"
    "  -p P         prefill tokens (default 512; 0 skips the test)\n"
    "  -n N         decode tokens (default 32; 0 skips the test)\n"
    "  -t THREADS   worker threads (default: all CPUs)\n"
    MS_CLI_WEIGHTS_HELP
    "  -r REPS      timed repetitions (default 5)\n"
    "  --observer   attach a routing + hidden-state observer that reads every value\n"
    "               it is given (to measure what an observer costs)\n"
    "  --json       one JSON object with prefill_tps and decode_tps (medians) and\n"
    "               the per-repetition values\n"
    "\n"
    "Decode is bound by memory bandwidth: the bytes of weight matrices one token\n"
    "reads (the routed experts counted k of E, the embedding one row) are printed\n"
    "with the bandwidth that gives at the median speed (decode_weight_bytes,\n"
    "decode_gbps), to set against a stream-read benchmark on the same threads\n"
    "(build/bench/bench-stream).  Also printed: the kernel level in use (isa;\n"
    "MOESCOPE_ISA=scalar|avx2|avxvnni|avx512|avx512bf16 caps it) and the CPU's\n"
    "relevant flags.\n";

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

typedef struct {
    int n_p, n_g, reps;
    bool observer, json;
    double *pp, *tg;   /* [reps] tokens/s */
    Touch touch;
    MsWeights weights;     /* where the weights ended up (mapped or copied) */
    uint64_t huge_bytes;   /* of the copy, in 2 MB pages after the runs */
} Bench;

/* fixed pseudo-random ids (xorshift64*, seed 1) */
static void bench_tokens(int32_t *toks, int n, int n_vocab)
{
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    for (int i = 0; i < n; i++) {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        toks[i] = (int32_t)((x * 0x2545f4914f6cdd1dULL >> 33) % (uint64_t)n_vocab);
    }
}

/* One warm-up run of each test, then reps timed ones. */
static int bench_measure(Bench *b, MsContext *ctx, const int32_t *toks, float *logits, MsError *err)
{
    if (b->observer) {
        MsObserver obs = { .on_routing = touch_routing, .on_hidden = touch_hidden, .user = &b->touch };
        ms_context_set_observer(ctx, &obs);
    }
    for (int r = -1; r < b->reps; r++) {   /* r = -1: warm-up */
        if (b->n_p > 0) {
            ms_context_reset(ctx);
            double t0 = ms_cli_now();
            int rc = ms_context_eval(ctx, toks, b->n_p, logits, false, err);
            if (rc < 0) return rc;
            double dt = ms_cli_now() - t0;
            if (r >= 0) b->pp[r] = b->n_p / (dt > 0 ? dt : 1e-9);
        }
        if (b->n_g > 0) {
            ms_context_reset(ctx);
            int ng = r < 0 ? MS_MIN(b->n_g, 2) : b->n_g;
            double t0 = ms_cli_now();
            for (int i = 0; i < ng; i++) {
                int rc = ms_context_eval(ctx, &toks[i], 1, logits, false, err);
                if (rc < 0) return rc;
            }
            double dt = ms_cli_now() - t0;
            if (r >= 0) b->tg[r] = ng / (dt > 0 ? dt : 1e-9);
        }
    }
    return 0;
}

static void bench_print_json(const Bench *b, const MsModelInfo *in, const char *base, int thr, uint64_t wbytes)
{
    Stats sp = stats_of(b->pp, b->reps), sg = stats_of(b->tg, b->reps);
    char flags[256];
    json_t *o = json_object();
    json_object_set_new(o, "model", json_string(base));
    json_object_set_new(o, "arch", json_string(in->arch_name));
    json_object_set_new(o, "weight_type", json_string(ms_type_name(in->weight_type)));
    json_object_set_new(o, "file_size", json_integer((json_int_t)in->file_size));
    json_object_set_new(o, "n_threads", json_integer(thr));
    json_object_set_new(o, "n_prompt", json_integer(b->n_p));
    json_object_set_new(o, "n_gen", json_integer(b->n_g));
    json_object_set_new(o, "reps", json_integer(b->reps));
    json_object_set_new(o, "observer", json_boolean(b->observer));
    json_object_set_new(o, "prefill_tps", b->n_p ? json_real(sp.median) : json_null());
    json_object_set_new(o, "decode_tps", b->n_g ? json_real(sg.median) : json_null());
    if (b->n_p) json_object_set_new(o, "prefill", json_stats(&sp, b->pp, b->reps));
    if (b->n_g) json_object_set_new(o, "decode", json_stats(&sg, b->tg, b->reps));
    json_object_set_new(o, "decode_weight_bytes", json_integer((json_int_t)wbytes));
    json_object_set_new(o, "decode_gbps", b->n_g ? json_real(1e-9 * (double)wbytes * sg.median) : json_null());
    json_object_set_new(o, "isa", json_string(ms_isa_name(ms_isa_active())));
    json_object_set_new(o, "cpu_flags", json_string(ms_cpu_flags(flags, sizeof flags)));
    json_object_set_new(o, "weights", json_string(b->weights == MS_WEIGHTS_COPIED ? "copied" : "mapped"));
    json_object_set_new(o, "weights_huge_bytes", json_integer((json_int_t)b->huge_bytes));
    if (b->observer) json_object_set_new(o, "observer_events", json_integer(b->touch.events));
    char *s = json_dumps(o, JSON_PRESERVE_ORDER);
    if (s) puts(s);
    free(s);
    json_decref(o);
}

static void bench_print_table(const Bench *b, const MsModelInfo *in, const char *base, int thr, uint64_t wbytes)
{
    printf("| %-28s | %-6s | %7s | %8s | %-6s | %12s | %9s | %10s | %10s |\n", "model", "type", "threads",
           "observer", "test", "t/s median", "sd", "min", "max");
    printf("|%.30s|%.8s|%.9s|%.10s|%.8s|%.14s|%.11s|%.12s|%.12s|\n", "------------------------------",
           "--------", "---------", "----------", "--------", "--------------", "-----------",
           "------------", "------------");
    for (int test = 0; test < 2; test++) {
        int n = test ? b->n_g : b->n_p;
        if (!n) continue;
        Stats s = stats_of(test ? b->tg : b->pp, b->reps);
        char t[32];
        snprintf(t, sizeof t, "%s%d", test ? "tg" : "pp", n);
        printf("| %-28.28s | %-6s | %7d | %8s | %-6s | %12.2f | %9.2f | %10.2f | %10.2f |\n", base,
               ms_type_name(in->weight_type), thr, b->observer ? "yes" : "no", t, s.median, s.sd, s.min, s.max);
    }
    char flags[256];
    if (b->n_g)
        printf("decode reads %.1f MB of weights per token: %.2f GB/s at the median\n", 1e-6 * (double)wbytes,
               1e-9 * (double)wbytes * stats_of(b->tg, b->reps).median);
    printf("kernels: %s (cpu: %s)\n", ms_isa_name(ms_isa_active()), ms_cpu_flags(flags, sizeof flags));
    if (b->weights == MS_WEIGHTS_COPIED)
        printf("weights: a private copy in memory, %.1f of %.1f MB in 2 MB pages\n",
               1e-6 * (double)b->huge_bytes, 1e-6 * (double)in->file_size);
    else
        printf("weights: mapped from the file\n");
}

int ms_cmd_bench(int argc, char **argv)
{
    const char *cmd = "bench";
    Bench b = { .n_p = 512, .n_g = 32, .reps = 5 };
    MsCliCommon c = { .groups = MS_CLI_G_MODEL | MS_CLI_G_THREADS };
    const MsCliOpt opts[] = {
        { "--n-prompt", "-p", MS_OPT_INT, &b.n_p, 0, 1 << 20 },
        { "--n-gen", "-n", MS_OPT_INT, &b.n_g, 0, 1 << 20 },
        { "--reps", "-r", MS_OPT_INT, &b.reps, 1, 1000 },
        { "--observer", NULL, MS_OPT_FLAG, &b.observer, 0, 0 },
        { "--json", NULL, MS_OPT_FLAG, &b.json, 0, 0 },
        { 0 },
    };
    int rc = ms_cli_parse(cmd, argc, argv, opts, &c, bench_help);
    if (!rc && b.n_p == 0 && b.n_g == 0)
        rc = ms_cli_usage(cmd, "-p and -n are both 0: nothing to measure");
    if (rc) return ms_cli_exit(rc);

    MsError err = { 0 };
    MsModel *m = ms_cli_load_model(cmd, c.model, c.weights);
    if (!m) return 1;
    const MsModelInfo *in = ms_model_info(m);
    int n_tok = MS_MAX(b.n_p, b.n_g);
    MsContextParams cp = ms_context_default_params();
    cp.n_ctx = n_tok;
    cp.n_threads = c.n_threads;
    MsContext *ctx = ms_context_new(m, &cp, &err);
    int32_t *toks = malloc((size_t)n_tok * sizeof *toks);
    float *logits = malloc((size_t)in->n_vocab * sizeof *logits);
    b.pp = calloc((size_t)b.reps, sizeof *b.pp);
    b.tg = calloc((size_t)b.reps, sizeof *b.tg);
    if (!ctx) rc = ms_cli_fail_path(cmd, c.model, &err);
    else if (!toks || !logits || !b.pp || !b.tg) rc = ms_cli_fail(cmd, "out of memory");
    if (rc == 0) {
        bench_tokens(toks, n_tok, in->n_vocab);
        if (bench_measure(&b, ctx, toks, logits, &err) < 0) rc = ms_cli_fail_err(cmd, &err);
        b.weights = ms_gguf_weights(ms_model_gguf(m));
        b.huge_bytes = ms_gguf_huge_bytes(ms_model_gguf(m));
    }
    if (rc == 0) {
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        int thr = c.n_threads > 0 ? c.n_threads : (int)(ncpu > 0 ? ncpu : 1);
        char *pc = strdup(c.model);
        const char *base = pc ? basename(pc) : c.model;
        uint64_t wbytes = ms_model_decode_weight_bytes(m);
        if (b.json) bench_print_json(&b, in, base, thr, wbytes);
        else bench_print_table(&b, in, base, thr, wbytes);
        free(pc);
    }
    free(toks);
    free(logits);
    free(b.pp);
    free(b.tg);
    ms_context_free(ctx);
    ms_model_free(m);
    return rc;
}
