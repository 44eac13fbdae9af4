/* gguf-pack — pack raw float32 tensors plus JSON metadata into a GGUF file
 * through the project's own writer and quantisers.
 *
 * Used by tools/train/train_moe.py (which exports a trained model) so that
 * trained models are written by the same code as synthetic ones.
 *
 * usage: gguf-pack META.json TENSORS.f32 OUT.gguf
 *
 * META.json:
 *   {"kv": [{"key": K, "type": T, "value": V}, ...],
 *    "tensors": [{"name": N, "type": "F32"|"F16"|"Q8_0"|..., "ne": [ne0, ne1, ...],
 *                 "offset": BYTE_OFFSET_IN_TENSORS_F32}, ...]}
 * T is one of u32 i32 u64 f32 bool str arr_i32 arr_f32 arr_str.
 * Tensor data are little-endian float32 in ggml order (ne0 fastest); each
 * row of ne0 values is quantised with ms_quantize_row.  Tensors are written
 * in the order listed. */
#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "gguf.h"
#include "quant.h"

static int fail(const char *fmt, const char *a, const char *b)
{
    fprintf(stderr, "gguf-pack: ");
    fprintf(stderr, fmt, a, b);
    fputc('\n', stderr);
    return 1;
}

/* 0, 1 after printing one line, or -1 when the writer refused the value. */
static int set_kv1(MsGgufWriter *w, json_t *kv, const char *meta)
{
    const char *key = json_string_value(json_object_get(kv, "key"));
    const char *type = json_string_value(json_object_get(kv, "type"));
    json_t *v = json_object_get(kv, "value");
    if (!key || !type || !v) return fail("%s: kv entry needs key, type and value%s", meta, "");
    static const char *const known[] = { "u32", "i32", "u64", "f32", "bool", "str", "arr_i32", "arr_f32", "arr_str" };
    bool ok = false;
    for (size_t i = 0; i < sizeof known / sizeof *known; i++) ok |= !strcmp(type, known[i]);
    if (!ok) return fail("%s: unknown kv type %s", meta, type);
    if (!strcmp(type, "u32")) return ms_gguf_writer_set_u32(w, key, (uint32_t)json_integer_value(v)) < 0 ? -1 : 0;
    if (!strcmp(type, "i32")) return ms_gguf_writer_set_i32(w, key, (int32_t)json_integer_value(v)) < 0 ? -1 : 0;
    if (!strcmp(type, "u64")) return ms_gguf_writer_set_u64(w, key, (uint64_t)json_integer_value(v)) < 0 ? -1 : 0;
    if (!strcmp(type, "f32")) return ms_gguf_writer_set_f32(w, key, (float)json_number_value(v)) < 0 ? -1 : 0;
    if (!strcmp(type, "bool")) return ms_gguf_writer_set_bool(w, key, json_is_true(v)) < 0 ? -1 : 0;
    if (!strcmp(type, "str")) {
        if (!json_is_string(v)) return fail("%s: %s is not a string", meta, key);
        return ms_gguf_writer_set_str(w, key, json_string_value(v)) < 0 ? -1 : 0;
    }
    if (!json_is_array(v)) return fail("%s: %s is not an array", meta, key);
    size_t n = json_array_size(v);
    int rc;
    if (!strcmp(type, "arr_str")) {
        const char **s = calloc(n ? n : 1, sizeof *s);
        if (!s) return -1;
        for (size_t i = 0; i < n; i++) {
            s[i] = json_string_value(json_array_get(v, i));
            if (!s[i]) { free(s); return fail("%s: %s has a non-string element", meta, key); }
        }
        rc = ms_gguf_writer_set_arr_str(w, key, s, n) < 0 ? -1 : 0;
        free(s);
        return rc;
    }
    if (!strcmp(type, "arr_i32") || !strcmp(type, "arr_f32")) {
        bool is_int = type[4] == 'i';
        void *buf = malloc((n ? n : 1) * 4);
        if (!buf) return -1;
        for (size_t i = 0; i < n; i++) {
            json_t *e = json_array_get(v, i);
            if (is_int) ((int32_t *)buf)[i] = (int32_t)json_integer_value(e);
            else ((float *)buf)[i] = (float)json_number_value(e);
        }
        rc = ms_gguf_writer_set_arr(w, key, is_int ? MS_GGUF_INT32 : MS_GGUF_FLOAT32, buf, n) < 0 ? -1 : 0;
        free(buf);
        return rc;
    }
    return fail("%s: unknown kv type %s", meta, type);  /* not reached: checked above */
}

/* Returns 0 or 1 after printing one line. */
static int set_kv(MsGgufWriter *w, json_t *kv, const char *meta)
{
    int rc = set_kv1(w, kv, meta);
    if (rc < 0) {
        const char *key = json_string_value(json_object_get(kv, "key"));
        return fail("%s: cannot set metadata %s", meta, key ? key : "?");
    }
    return rc;
}

typedef struct {
    const char *name;
    int type;
    uint32_t n_dims;
    int64_t ne[4];
    uint64_t offset, n_elems;
} Tensor;

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: gguf-pack META.json TENSORS.f32 OUT.gguf\n");
        return 2;
    }
    const char *meta = argv[1], *data = argv[2], *out = argv[3];
    json_error_t jerr;
    json_t *root = json_load_file(meta, 0, &jerr);
    if (!root) {
        fprintf(stderr, "gguf-pack: %s:%d: %s\n", meta, jerr.line, jerr.text);
        return 1;
    }
    FILE *fd = fopen(data, "rb");
    if (!fd) {
        fprintf(stderr, "gguf-pack: %s: %s\n", data, strerror(errno));
        json_decref(root);
        return 1;
    }
    struct stat st;
    uint64_t data_size = fstat(fileno(fd), &st) == 0 ? (uint64_t)st.st_size : 0;

    json_t *kvs = json_object_get(root, "kv"), *tens = json_object_get(root, "tensors");
    size_t nt = json_array_size(tens);
    Tensor *t = calloc(nt ? nt : 1, sizeof *t);
    MsError err = {0};
    MsGgufWriter *w = NULL;
    int rc = 1;
    if (!json_is_array(kvs) || !json_is_array(tens) || !t) {
        fail("%s: needs arrays \"kv\" and \"tensors\"%s", meta, "");
        goto out;
    }
    /* validate every tensor before writing anything */
    for (size_t i = 0; i < nt; i++) {
        json_t *j = json_array_get(tens, i), *ne = json_object_get(j, "ne");
        t[i].name = json_string_value(json_object_get(j, "name"));
        const char *ty = json_string_value(json_object_get(j, "type"));
        t[i].type = ty ? ms_type_from_name(ty) : -1;
        t[i].offset = (uint64_t)json_integer_value(json_object_get(j, "offset"));
        size_t nd = json_array_size(ne);
        if (!t[i].name || t[i].type < 0 || nd < 1 || nd > 4) {
            fail("%s: tensor entry %s needs name, a known type and 1-4 dims", meta, t[i].name ? t[i].name : "?");
            goto out;
        }
        t[i].n_dims = (uint32_t)nd;
        t[i].n_elems = 1;
        for (int d = 0; d < 4; d++) {
            t[i].ne[d] = d < (int)nd ? json_integer_value(json_array_get(ne, d)) : 1;
            if (t[i].ne[d] <= 0) { fail("%s: tensor %s has a non-positive dim", meta, t[i].name); goto out; }
            t[i].n_elems *= (uint64_t)t[i].ne[d];
        }
        if (t[i].ne[0] % ms_type_block_elems(t[i].type) != 0) {
            fail("%s: tensor %s: ne0 not a multiple of the block size", meta, t[i].name);
            goto out;
        }
        if (t[i].offset + t[i].n_elems * 4 > data_size) {
            fail("%s: tensor %s lies outside the data file", meta, t[i].name);
            goto out;
        }
    }
    w = ms_gguf_writer_new(out, &err);
    if (!w) { fprintf(stderr, "gguf-pack: %s\n", err.msg); goto out; }
    for (size_t i = 0; i < json_array_size(kvs); i++)
        if (set_kv(w, json_array_get(kvs, i), meta)) goto out;
    for (size_t i = 0; i < nt; i++)
        if (ms_gguf_writer_add_tensor(w, t[i].name, t[i].type, t[i].n_dims, t[i].ne) < 0) {
            fail("%s: cannot add tensor %s", out, t[i].name);
            goto out;
        }
    if (ms_gguf_writer_write_header(w) < 0) { fail("%s: cannot write header%s", out, ""); goto out; }
    for (size_t i = 0; i < nt; i++) {
        int64_t ne0 = t[i].ne[0];
        uint64_t rows = t[i].n_elems / (uint64_t)ne0;
        size_t rb = ms_row_bytes(t[i].type, ne0);
        float *src = malloc(t[i].n_elems * 4);
        uint8_t *dst = malloc(rb * rows);
        if (!src || !dst) { free(src); free(dst); fail("out of memory for %s%s", t[i].name, ""); goto out; }
        if (fseeko(fd, (off_t)t[i].offset, SEEK_SET) != 0 || fread(src, 4, t[i].n_elems, fd) != t[i].n_elems) {
            free(src); free(dst);
            fail("%s: cannot read tensor %s", data, t[i].name);
            goto out;
        }
        int q = 0;
        for (uint64_t r = 0; r < rows && !q; r++)
            q = ms_quantize_row(t[i].type, src + r * (uint64_t)ne0, dst + r * rb, ne0);
        int wr = q ? 0 : ms_gguf_writer_write_tensor_data(w, dst, rb * rows);
        free(src);
        free(dst);
        if (q) { fail("cannot quantise %s to %s", t[i].name, ms_type_name(t[i].type)); goto out; }
        if (wr < 0) { fail("%s: cannot write tensor %s", out, t[i].name); goto out; }
    }
    if (ms_gguf_writer_finish(w, &err) < 0) { fprintf(stderr, "gguf-pack: %s\n", err.msg); goto out; }
    rc = 0;
out:
    ms_gguf_writer_free(w);
    if (rc && w) remove(out);
    free(t);
    fclose(fd);
    json_decref(root);
    return rc;
}
