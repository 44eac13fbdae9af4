/* bench-compare.c — the workbench's "toggle an expert, see the difference"
 * call (ms_compare_prompt): one prompt of P tokens plus G generated, baseline
 * vs one silenced expert, on a model (default: the bundled demo model).
 * Prints the median and min wall time over R repetitions.
 *
 *   build/bench/bench-compare [MODEL] [-p 64] [-g 32] [-r 9] [-t 2] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jobs.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    const char *model = MS_SOURCE_ROOT "/data/models/default.gguf";
    int P = 64, G = 32, R = 9, threads = 2;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-p") && i + 1 < argc) P = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-g") && i + 1 < argc) G = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-r") && i + 1 < argc) R = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-t") && i + 1 < argc) threads = atoi(argv[++i]);
        else model = argv[i];
    }
    MsError err = { 0 };
    MsModel *m = ms_model_load(model, &err);
    if (!m) {
        fprintf(stderr, "bench-compare: %s\n", err.msg);
        return 1;
    }
    /* a text of about P tokens: words until the tokenizer says P */
    char text[65536] = "";
    const char *words[] = { "The ", "router ", "sends ", "each ", "token ", "to ", "two ", "experts, ", "and ", "the " };
    for (int w = 0;; w++) {
        int32_t *ids = NULL;
        int n = ms_tokenizer_encode(ms_model_tokenizer(m), text, strlen(text), true, &ids, &err);
        free(ids);
        if (n >= P || strlen(text) > sizeof text - 32) break;
        strcat(text, words[w % 10]);
    }
    const MsModelInfo *in = ms_model_info(m);
    MsIntervention *iv = ms_intervention_new(in->n_layer, in->n_expert);
    ms_intervention_silence(iv, in->n_layer / 2, 1);
    MsCompareOptions o;
    ms_compare_options_init(&o);
    o.n_gen = G;
    o.n_threads = threads;
    double *t = malloc(sizeof *t * (size_t)R);
    MsPromptCompare c;
    int n_tok = 0;
    for (int r = -1; r < R; r++) {   /* r = -1: warm-up */
        double t0 = now_s();
        if (ms_compare_prompt(&o, m, iv, text, strlen(text), &c, &err) < 0) {
            fprintf(stderr, "bench-compare: %s\n", err.msg);
            return 1;
        }
        if (r >= 0) t[r] = now_s() - t0;
        n_tok = c.n_tokens;
        ms_prompt_compare_clear(&c);
    }
    qsort(t, (size_t)R, sizeof *t, cmp_d);
    printf("compare one prompt (%d prompt + %d generated tokens, silence %d:1, %d threads): median %.1f ms, min %.1f ms\n",
           n_tok - G, G, in->n_layer / 2, threads, 1e3 * t[R / 2], 1e3 * t[0]);
    free(t);
    ms_intervention_free(iv);
    ms_model_free(m);
    return 0;
}
