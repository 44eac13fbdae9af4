/* fuzz-hf.c — the Hugging Face checkpoint parsers of engine/hf.c.
 *
 * Byte 0 even: the rest is a safetensors file image, validated as
 * ms_hf_open validates each weights file (header length, JSON, dtypes,
 * shapes, offsets, overlaps and holes).  Byte 0 odd: the rest is a
 * tokenizer.json; when it is accepted, the tokenizer built from it encodes
 * a fixed text, every id must be inside its vocabulary, and the ids decode
 * (the file's decoder chain) and give pieces.
 * Checks: a failure is one line naming the input; nothing crashes, leaks or
 * reads outside the input (ASan/UBSan). */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf.h"
#include "tokenizer.h"

#include "fuzz.h"

static void one_line_naming(const MsError *err, const char *name)
{
    if (!err->msg[0] || strchr(err->msg, '\n') || strncmp(err->msg, name, strlen(name)) != 0) {
        fprintf(stderr, "fuzz-hf: bad failure message: %s\n", err->msg);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    MsError err = { 0 };
    if (!(data[0] & 1)) {
        if (ms_hf_check_safetensors("model.safetensors", data + 1, size - 1, &err) != 0)
            one_line_naming(&err, "model.safetensors");
        return 0;
    }
    MsGguf *g = ms_hf_tokenizer_from_json("tokenizer.json", (const char *)data + 1, size - 1, &err);
    if (!g) {
        one_line_naming(&err, "tokenizer.json");
        return 0;
    }
    MsTokenizer *t = ms_tokenizer_new(g, &err);
    ms_gguf_free(g);
    if (!t) {
        if (!err.msg[0] || strchr(err.msg, '\n')) abort();
        return 0;
    }
    static const char text[] = "Hello world, it's 2026: 12345 tokens\n\t  caf\xc3\xa9 <|endoftext|> ab <m> </s>";
    int32_t *ids = NULL;
    int n = ms_tokenizer_encode(t, text, sizeof text - 1, true, &ids, &err);
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= ms_tokenizer_n_vocab(t)) {
            fprintf(stderr, "fuzz-hf: id %d outside the vocabulary (%d)\n", ids[i], ms_tokenizer_n_vocab(t));
            abort();
        }
    /* decoding (the file's decoder chain) and each piece alone */
    size_t dl = 0;
    char *dec = n > 0 ? ms_tokenizer_decode(t, ids, (size_t)n, &dl) : NULL;
    if (dec && strlen(dec) > dl) abort();
    free(dec);
    for (int i = 0; i < n; i++) {
        char pb[64];
        if (ms_tokenizer_piece(t, ids[i], pb, sizeof pb) < 0) abort();
    }
    free(ids);
    ms_tokenizer_free(t);
    return 0;
}
