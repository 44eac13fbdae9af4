/* bench-tokenizer.c — tokenizer throughput on a large real vocabulary: the
 * vocabulary of a GGUF file (or a gzip-compressed one, read through zlib)
 * tokenizes a text of about 1 MiB; prints bytes, tokens and the best of
 * several runs.  Without a TEXT argument the text is the repository's
 * held-out excerpts (the .txt files of data/heldout: English, German, French, Spanish,
 * prose, C and Python), concatenated and repeated up to 1 MiB.
 *
 * usage: bench-tokenizer VOCAB.gguf[.gz] [TEXT] [-r REPS]   (default 5 reps) */
#include "gguf.h"
#include "tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Whole file (gunzipped when it ends in .gz) into a malloc'd buffer. */
static char *slurp(const char *path, size_t *len)
{
    gzFile f = gzopen(path, "rb");   /* reads plain files unchanged too */
    if (!f) return NULL;
    size_t cap = 1 << 20, n = 0;
    char *buf = malloc(cap);
    int r;
    while (buf && (r = gzread(f, buf + n, (unsigned)(cap - n))) > 0) {
        n += (size_t)r;
        if (n == cap) {
            char *p = realloc(buf, cap *= 2);
            if (!p) { free(buf); buf = NULL; }
            else buf = p;
        }
    }
    gzclose(f);
    *len = n;
    return buf;
}

int main(int argc, char **argv)
{
    const char *vocab = NULL, *text_path = NULL;
    int reps = 5;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-r") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!vocab) vocab = argv[i];
        else if (!text_path) text_path = argv[i];
        else { fprintf(stderr, "bench-tokenizer: unexpected argument '%s'\n", argv[i]); return 2; }
    }
    if (!vocab || reps < 1) {
        fprintf(stderr, "usage: bench-tokenizer VOCAB.gguf[.gz] [TEXT] [-r REPS]\n");
        return 2;
    }
    /* the vocabulary: a temp copy when it is compressed (the reader maps files) */
    size_t vl = strlen(vocab);
    char tmp[] = "/tmp/bench-tokenizer-XXXXXX";
    const char *gpath = vocab;
    if (vl > 3 && !strcmp(vocab + vl - 3, ".gz")) {
        size_t n;
        char *b = slurp(vocab, &n);
        int fd = b ? mkstemp(tmp) : -1;
        if (fd < 0 || write(fd, b, n) != (ssize_t)n) {
            fprintf(stderr, "bench-tokenizer: %s: cannot unpack\n", vocab);
            return 1;
        }
        close(fd);
        free(b);
        gpath = tmp;
    }
    MsError err = { 0 };
    double t0 = now();
    MsGguf *g = ms_gguf_open(gpath, &err);
    MsTokenizer *t = g ? ms_tokenizer_new(g, &err) : NULL;
    double t_load = now() - t0;
    if (gpath == tmp) unlink(tmp);
    if (!t) {
        fprintf(stderr, "bench-tokenizer: %s\n", err.msg);
        return 1;
    }

    size_t len = 0;
    char *text = NULL;
    if (text_path) {
        text = slurp(text_path, &len);
        if (!text) { fprintf(stderr, "bench-tokenizer: %s: cannot read\n", text_path); return 1; }
    } else {
        static const char *const parts[] = { "en", "de", "fr", "es", "prose", "c", "python" };
        const size_t target = 1 << 20;
        text = malloc(target + 1);
        while (text && len < target) {
            size_t before = len;
            for (size_t i = 0; i < sizeof parts / sizeof parts[0] && len < target; i++) {
                char p[1024];
                snprintf(p, sizeof p, "%s/heldout/%s.txt", MS_DATA_DIR, parts[i]);
                size_t n;
                char *b = slurp(p, &n);
                if (!b) continue;
                if (n > target - len) n = target - len;
                while (n > 0 && ((unsigned char)b[n] & 0xc0) == 0x80 && len + n < target) n--;  /* whole characters */
                memcpy(text + len, b, n);
                len += n;
                free(b);
            }
            if (len == before) { fprintf(stderr, "bench-tokenizer: %s/heldout not found\n", MS_DATA_DIR); return 1; }
        }
    }
    double best = 1e30;
    int n_tok = 0;
    for (int r = 0; r < reps; r++) {
        int32_t *ids = NULL;
        double a = now();
        n_tok = ms_tokenizer_encode(t, text, len, false, &ids, &err);
        double b = now() - a;
        free(ids);
        if (n_tok < 0) { fprintf(stderr, "bench-tokenizer: %s\n", err.msg); return 1; }
        if (b < best) best = b;
    }
    printf("vocabulary %s (%d tokens, pre %s): load %.3f s; %zu bytes -> %d tokens in %.3f s (best of %d), %.2f MB/s\n",
           vocab, (int)ms_tokenizer_n_vocab(t), ms_tokenizer_pre_name(t), t_load, len, n_tok, best, reps,
           len / best / 1e6);
    free(text);
    ms_tokenizer_free(t);
    ms_gguf_free(g);
    return 0;
}
