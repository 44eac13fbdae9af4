/* fuzz-gguf.c — the GGUF container and the model loader on hostile files.
 *
 * The input is a GGUF file (in a memfd, so the real open/mmap path runs).
 * Every accessor of the container is read so that an out-of-bounds pointer
 * is dereferenced (ASan sees it); then the model loader validates the same
 * file and, when it accepts it, the model runs: the tokenizer encodes and
 * decodes a short text and the forward pass evaluates up to three tokens, so
 * a shape or offset the loader let through that reaches outside the mapping
 * is a finding.  Seeds: tests/fuzz/corpus/gguf (tiny synthetic models of
 * each architecture and weight type, and the bad files of test-gguf and
 * test-model-errors). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine.h"
#include "fuzz.h"
#include "gguf.h"

/* Read every accessor so out-of-bounds pointers are actually dereferenced. */
static void touch(const MsGguf *g)
{
    volatile uint64_t acc = 0;
    for (int64_t i = 0; i < ms_gguf_n_kv(g); i++) {
        const char *k = ms_gguf_kv_key(g, i);
        MsGgufArray a;
        const char *s;
        uint64_t n;
        int64_t v;
        float f;
        acc += ms_gguf_find_kv(g, k) == i;
        if (ms_gguf_get_arr(g, k, &a, NULL) == 0) {
            for (uint64_t j = 0; j < a.n; j++) {
                if (a.elem_type == MS_GGUF_STRING) {
                    ms_gguf_arr_str(&a, j, &s, &n);
                    if (n) acc += (uint8_t)s[0] + (uint8_t)s[n - 1];
                } else {
                    acc += (uint64_t)ms_gguf_arr_i64(&a, j) + (ms_gguf_arr_f64(&a, j) > 0);
                }
            }
        } else if (ms_gguf_get_str(g, k, &s, &n, NULL) == 0) {
            if (n) acc += (uint8_t)s[0] + (uint8_t)s[n - 1];
        } else {
            uint32_t u;
            bool b;
            if (ms_gguf_get_i64(g, k, &v, NULL) == 0) acc += (uint64_t)v;
            if (ms_gguf_get_u32(g, k, &u, NULL) == 0) acc += u;
            if (ms_gguf_get_f32(g, k, &f, NULL) == 0) acc += f > 0;
            if (ms_gguf_get_bool(g, k, &b, NULL) == 0) acc += b;
        }
    }
    for (int64_t i = 0; i < ms_gguf_n_tensors(g); i++) {
        const MsGgufTensor *t = ms_gguf_tensor(g, i);
        if (t->nbytes) acc += ((const uint8_t *)t->data)[0] + ((const uint8_t *)t->data)[t->nbytes - 1];
        acc += ms_gguf_find_tensor(g, t->name) == t;
    }
    (void)acc;
}

/* The loaded model end to end, kept tiny: a short text through the
 * tokenizer, a few tokens through the forward pass. */
static void run_model(const MsModel *m)
{
    const MsModelInfo *in = ms_model_info(m);
    const MsTokenizer *tok = ms_model_tokenizer(m);
    static const char text[] = "Hi 12 \xc3\xa9t\xc3\xa9!";
    int32_t *ids = NULL;
    int n = ms_tokenizer_encode(tok, text, sizeof text - 1, true, &ids, NULL);
    if (n > 0) {
        size_t len = 0;
        free(ms_tokenizer_decode(tok, ids, (size_t)n, &len));
        char piece[64];
        for (int i = 0; i < n; i++) ms_tokenizer_piece(tok, ids[i], piece, sizeof piece);
    }
    /* bound the work a valid-but-large model could ask for */
    if (n > 0 && (int64_t)in->n_embd * in->n_layer <= (1 << 16) && in->n_vocab <= (1 << 16)) {
        MsContextParams cp = ms_context_default_params();
        cp.n_ctx = 4;
        cp.n_threads = 1;
        cp.n_batch = 2;
        MsContext *ctx = ms_context_new(m, &cp, NULL);
        if (ctx) {
            float *logits = malloc((size_t)in->n_vocab * 3 * sizeof *logits);
            int nt = n < 3 ? n : 3;
            if (logits) ms_context_eval(ctx, ids, nt, logits, true, NULL);
            free(logits);
            ms_context_free(ctx);
        }
    }
    free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64];
    int fd = fz_memfd(data, size, path, sizeof path);
    if (fd < 0) return 0;
    MsError err = { 0 };
    MsGguf *g = ms_gguf_open(path, &err);
    if (g) touch(g);
    ms_gguf_free(g);
    if (g) {
        MsModel *m = ms_model_load(path, &err);
        if (m) run_model(m);
        ms_model_free(m);
    }
    /* every failure is one line naming the file */
    if (err.code && (strchr(err.msg, '\n') || strncmp(err.msg, path, strlen(path)) != 0)) {
        fprintf(stderr, "fuzz-gguf: bad error message: %s\n", err.msg);
        abort();
    }
    close(fd);
    return 0;
}
