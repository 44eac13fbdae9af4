/* convert.c — a model description (GGUF, or a Hugging Face checkpoint read
 * into one by engine/hf.c) written as GGUF through the engine's writer and
 * quantisers (`moescope convert`). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "quant.h"
#include "synth.h"

static bool ends_with(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

/* The output type of one tensor (see synth.h). */
static int out_type(const MsGgufTensor *t, int type)
{
    if (type < 0) return t->type;
    bool matrix = t->n_dims >= 2 && ends_with(t->name, ".weight") && !strstr(t->name, "ffn_gate_inp");
    if (!matrix) return MS_TYPE_F32;
    return ms_synth_fit_type(type, t->ne[0]);
}

/* Copy every metadata pair the writer can represent. */
static int copy_kv(const MsGguf *g, MsGgufWriter *w, int type, MsError *err)
{
    const char *path = ms_gguf_path(g);
    for (int64_t i = 0; i < ms_gguf_n_kv(g); i++) {
        const char *k = ms_gguf_kv_key(g, i);
        int kt = ms_gguf_kv_type(g, i);
        if (type >= 0 && (!strcmp(k, "general.file_type") || !strcmp(k, "general.quantization_version"))) continue;
        /* a GGUF's tokenizer follows llama.cpp: tokenizer.json's HF-only
         * semantics (engine/hf.c) are not carried over */
        if (!strncmp(k, "tokenizer.hf.", 13)) continue;
        int rc = 0;
        uint32_t u;
        float f;
        bool b;
        int64_t v;
        const char *s;
        uint64_t len;
        MsGgufArray a;
        switch (kt) {
        case MS_GGUF_UINT8: case MS_GGUF_UINT16: case MS_GGUF_UINT32:
            rc = ms_gguf_get_u32(g, k, &u, err) ?: ms_gguf_writer_set_u32(w, k, u);
            break;
        case MS_GGUF_INT8: case MS_GGUF_INT16: case MS_GGUF_INT32:
            rc = ms_gguf_get_i64(g, k, &v, err) ?: ms_gguf_writer_set_i32(w, k, (int32_t)v);
            break;
        case MS_GGUF_UINT64: case MS_GGUF_INT64:
            rc = ms_gguf_get_i64(g, k, &v, err) ?: ms_gguf_writer_set_u64(w, k, (uint64_t)v);
            break;
        case MS_GGUF_FLOAT32: case MS_GGUF_FLOAT64:
            rc = ms_gguf_get_f32(g, k, &f, err) ?: ms_gguf_writer_set_f32(w, k, f);
            break;
        case MS_GGUF_BOOL:
            rc = ms_gguf_get_bool(g, k, &b, err) ?: ms_gguf_writer_set_bool(w, k, b);
            break;
        case MS_GGUF_STRING: {
            rc = ms_gguf_get_str(g, k, &s, &len, err);
            char *z = rc ? NULL : strndup(s, len);
            if (!rc) rc = z ? ms_gguf_writer_set_str(w, k, z) : MS_ENOMEM;
            free(z);
            break;
        }
        case MS_GGUF_ARRAY:
            rc = ms_gguf_get_arr(g, k, &a, err);
            if (rc) break;
            if (a.elem_type == MS_GGUF_STRING) {
                char **v2 = calloc(a.n ? a.n : 1, sizeof *v2);
                if (!v2) { rc = MS_ENOMEM; break; }
                for (uint64_t j = 0; j < a.n && !rc; j++) {
                    ms_gguf_arr_str(&a, j, &s, &len);
                    if (!(v2[j] = strndup(s, len))) rc = MS_ENOMEM;
                }
                if (!rc) rc = ms_gguf_writer_set_arr_str(w, k, (const char *const *)v2, a.n);
                for (uint64_t j = 0; j < a.n; j++) free(v2[j]);
                free(v2);
            } else {
                rc = ms_gguf_writer_set_arr(w, k, a.elem_type, a.data, a.n);
            }
            break;
        default:
            rc = MS_EFORMAT;
        }
        if (rc) return ms_error_set(err, rc < 0 ? rc : MS_EFORMAT, "%s: cannot copy metadata key %s", path, k);
    }
    if (type >= 0) {
        if (ms_gguf_writer_set_u32(w, "general.file_type", (uint32_t)ms_synth_ftype(type))
            || ms_gguf_writer_set_u32(w, "general.quantization_version", 2))
            return ms_error_set(err, MS_ENOMEM, "%s: out of memory", path);
    }
    return 0;
}

int ms_convert_write(const MsGguf *g, const char *out, int type, MsProgressFn progress, void *user,
                     const MsCancel *cancel, MsError *err)
{
    if (type >= 0 && (type >= MS_TYPE_COUNT || !ms_type_is_supported(type) || ms_type_block_elems(type) <= 0))
        return ms_error_set(err, MS_EINVAL, "convert: unsupported output type %d", type);
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp-%ld", out, (long)getpid()) >= (int)sizeof tmp)
        return ms_error_set(err, MS_EINVAL, "%s: path too long", out);
    bool exact = true;
    if (ms_gguf_get_bool(g, "tokenizer.hf.pre_exact", &exact, NULL) == 0 && !exact)
        return ms_error_set(err, MS_EUNSUPPORTED, "%s: the tokenizer.json pre-tokenizer has no llama.cpp "
                            "equivalent (tokenizer.ggml.pre), so no GGUF would tokenize like it", ms_gguf_path(g));
    MsGgufWriter *w = ms_gguf_writer_new(tmp, err);
    if (!w) return err ? err->code : MS_EIO;
    int rc = copy_kv(g, w, type, err);
    const int64_t n = ms_gguf_n_tensors(g);
    for (int64_t i = 0; i < n && !rc; i++) {
        const MsGgufTensor *t = ms_gguf_tensor(g, i);
        if (ms_gguf_writer_add_tensor(w, t->name, out_type(t, type), t->n_dims, t->ne) < 0)
            rc = ms_error_set(err, MS_EFORMAT, "%s: cannot add tensor %s", out, t->name);
    }
    if (!rc && ms_gguf_writer_write_header(w) < 0) rc = ms_error_set(err, MS_EIO, "%s: cannot write the header", out);
    float *row = NULL;
    uint8_t *buf = NULL;
    size_t cap_row = 0, cap_buf = 0;
    for (int64_t i = 0; i < n && !rc; i++) {
        if (ms_cancel_requested(cancel)) { rc = ms_error_set(err, MS_ECANCELLED, "%s: cancelled", out); break; }
        const MsGgufTensor *t = ms_gguf_tensor(g, i);
        const int ot = out_type(t, type);
        if (ot == t->type) {
            if (ms_gguf_writer_write_tensor_data(w, t->data, t->nbytes) < 0)
                rc = ms_error_set(err, MS_EIO, "%s: write failed", out);
        } else {
            const int64_t cols = t->ne[0], rows = t->ne[1] * t->ne[2] * t->ne[3];
            const size_t in_rb = ms_row_bytes(t->type, cols), out_rb = ms_row_bytes(ot, cols);
            const size_t need = out_rb * (size_t)rows;
            if ((size_t)cols > cap_row) {
                free(row);
                cap_row = (size_t)cols;
                if (!(row = malloc(cap_row * sizeof *row))) { rc = ms_error_set(err, MS_ENOMEM, "%s: out of memory", out); break; }
            }
            if (need > cap_buf) {
                free(buf);
                cap_buf = need;
                if (!(buf = malloc(cap_buf))) { rc = ms_error_set(err, MS_ENOMEM, "%s: out of memory", out); break; }
            }
            for (int64_t r = 0; r < rows && !rc; r++) {
                ms_dequantize_row(t->type, (const uint8_t *)t->data + (size_t)r * in_rb, row, cols);
                if (ms_quantize_row(ot, row, buf + (size_t)r * out_rb, cols) < 0)
                    rc = ms_error_set(err, MS_EUNSUPPORTED, "%s: cannot quantise %s to %s", out, t->name, ms_type_name(ot));
            }
            if (!rc && ms_gguf_writer_write_tensor_data(w, buf, need) < 0)
                rc = ms_error_set(err, MS_EIO, "%s: write failed", out);
        }
        if (progress && !rc) {
            MsProgress p = { .stage = "convert", .done = i + 1, .total = n, .eta_s = -1 };
            progress(user, &p);
        }
    }
    free(row);
    free(buf);
    if (!rc) rc = ms_gguf_writer_finish(w, err);
    ms_gguf_writer_free(w);
    if (!rc && rename(tmp, out) != 0) rc = ms_error_set(err, MS_EIO, "%s: cannot rename the finished file into place", out);
    if (rc) unlink(tmp);
    return rc;
}
