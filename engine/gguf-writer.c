/* gguf-writer.c — streaming GGUF v3 writer.
 *
 * Metadata is serialised into a memory buffer as it is set; tensor infos are
 * kept as a list.  write_header emits header, metadata, infos and padding;
 * tensor bytes are then streamed straight to the file, each followed by
 * padding to the alignment, so large models never sit in memory.
 * Errors are sticky: the first one is kept, later calls return it, and
 * ms_gguf_writer_finish reports it (and removes the incomplete file).
 *
 * Why it stays in the engine library although inference never writes GGUF:
 * it is the other half of the container format gguf.h defines (same type
 * table, alignment and key rules), the reader's own tests build valid and
 * corrupt files with it, and tools/gguf-pack (the trained-model packer) needs
 * it without needing synth/.  It depends on nothing but libc and quant.h's
 * block sizes, and a static link pulls it into a program only if called. */
#include "gguf.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "quant.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the GGUF writer emits host-order fields; big-endian hosts are not supported"
#endif

#define W_DEFAULT_ALIGN 32u
#define W_MAX_KEY 65535u
#define W_MAX_NAME 63u

typedef struct {
    char *name;
    int type;
    uint32_t n_dims;
    int64_t ne[4];
    uint64_t nbytes;
    uint64_t offset;
} WTensor;

enum { W_COLLECT, W_DATA, W_DONE };

struct MsGgufWriter {
    char *path;
    FILE *f;
    int state;
    MsError err;               /* first error, sticky */
    uint8_t *kv;               /* serialised metadata pairs */
    size_t kv_len, kv_cap;
    int64_t n_kv;
    char **keys;               /* for duplicate detection */
    WTensor *t;
    int64_t n_t, cap_t;
    int64_t next;              /* next tensor whose data is expected */
    uint32_t alignment;
};

static int w_fail(MsGgufWriter *w, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int w_fail(MsGgufWriter *w, int code, const char *fmt, ...)
{
    if (w->err.code) return w->err.code;   /* keep the first error */
    char msg[MS_ERRMSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return ms_error_set(&w->err, code, "%s: %s", w->path, msg);
}

MsGgufWriter *ms_gguf_writer_new(const char *path, MsError *err)
{
    if (!path) { ms_error_set(err, MS_EINVAL, "(null): no path given"); return NULL; }
    MsGgufWriter *w = calloc(1, sizeof *w);
    if (!w || !(w->path = strdup(path))) {
        free(w);
        ms_error_set(err, MS_ENOMEM, "%s: out of memory", path);
        return NULL;
    }
    w->alignment = W_DEFAULT_ALIGN;
    w->f = fopen(path, "wb");
    if (!w->f) {
        ms_error_set(err, MS_EIO, "%s: cannot create: %s", path, strerror(errno));
        free(w->path);
        free(w);
        return NULL;
    }
    setvbuf(w->f, NULL, _IOFBF, 1 << 20);
    return w;
}

void ms_gguf_writer_free(MsGgufWriter *w)
{
    if (!w) return;
    if (w->f) {
        /* never finished: the file is incomplete, do not leave it behind */
        fclose(w->f);
        unlink(w->path);
    }
    for (int64_t i = 0; i < w->n_kv; i++) free(w->keys[i]);
    free(w->keys);
    for (int64_t i = 0; i < w->n_t; i++) free(w->t[i].name);
    free(w->t);
    free(w->kv);
    free(w->path);
    free(w);
}

/* ---------------------------------------------------------------- metadata */

static int kv_reserve(MsGgufWriter *w, size_t extra)
{
    if (extra > SIZE_MAX / 2 - w->kv_len) return w_fail(w, MS_ENOMEM, "metadata too large");
    if (w->kv_len + extra <= w->kv_cap) return 0;
    size_t cap = w->kv_cap ? w->kv_cap : 4096;
    while (cap < w->kv_len + extra) cap *= 2;
    uint8_t *p = realloc(w->kv, cap);
    if (!p) return w_fail(w, MS_ENOMEM, "out of memory for metadata");
    w->kv = p;
    w->kv_cap = cap;
    return 0;
}

static void kv_put(MsGgufWriter *w, const void *p, size_t n)
{
    memcpy(w->kv + w->kv_len, p, n);
    w->kv_len += n;
}

static void kv_put_u32(MsGgufWriter *w, uint32_t v) { kv_put(w, &v, 4); }
static void kv_put_u64(MsGgufWriter *w, uint64_t v) { kv_put(w, &v, 8); }

/* Validate the key and write its string plus the value type; the caller has
 * reserved room for the value. */
static int begin_kv(MsGgufWriter *w, const char *key, int type, size_t value_bytes)
{
    if (w->err.code) return w->err.code;
    if (w->state != W_COLLECT) return w_fail(w, MS_EINVAL, "metadata '%s' set after write_header", key ? key : "");
    if (!key || !*key) return w_fail(w, MS_EINVAL, "empty metadata key");
    size_t klen = strlen(key);
    if (klen > W_MAX_KEY) return w_fail(w, MS_EINVAL, "metadata key longer than %u bytes", W_MAX_KEY);
    for (size_t i = 0; i < klen; i++)
        if ((unsigned char)key[i] >= 0x80)
            return w_fail(w, MS_EINVAL, "metadata key '%s' is not ASCII", key);
    /* linear: files carry tens of keys */
    for (int64_t i = 0; i < w->n_kv; i++)
        if (!strcmp(w->keys[i], key)) return w_fail(w, MS_EINVAL, "duplicate metadata key '%s'", key);
    /* readers (ours and llama.cpp) insist on u32 here */
    if (!strcmp(key, "general.alignment") && type != MS_GGUF_UINT32)
        return w_fail(w, MS_EINVAL, "general.alignment must be set with set_u32");
    if (value_bytes > SIZE_MAX / 2) return w_fail(w, MS_ENOMEM, "metadata value too large");
    int rc = kv_reserve(w, 8 + klen + 4 + value_bytes);
    if (rc) return rc;
    char **keys = realloc(w->keys, (size_t)(w->n_kv + 1) * sizeof *keys);
    if (!keys) return w_fail(w, MS_ENOMEM, "out of memory");
    w->keys = keys;
    if (!(keys[w->n_kv] = strdup(key))) return w_fail(w, MS_ENOMEM, "out of memory");
    w->n_kv++;
    kv_put_u64(w, klen);
    kv_put(w, key, klen);
    kv_put_u32(w, (uint32_t)type);
    return 0;
}

int ms_gguf_writer_set_u32(MsGgufWriter *w, const char *key, uint32_t v)
{
    if (!w) return MS_EINVAL;
    if (key && !strcmp(key, "general.alignment")) {
        if (v == 0 || (v & (v - 1)))
            return w_fail(w, MS_EINVAL, "general.alignment %" PRIu32 " is not a non-zero power of two", v);
    }
    int rc = begin_kv(w, key, MS_GGUF_UINT32, 4);
    if (rc) return rc;
    kv_put_u32(w, v);
    if (!strcmp(key, "general.alignment")) w->alignment = v;
    return 0;
}

int ms_gguf_writer_set_i32(MsGgufWriter *w, const char *key, int32_t v)
{
    if (!w) return MS_EINVAL;
    int rc = begin_kv(w, key, MS_GGUF_INT32, 4);
    if (rc) return rc;
    kv_put(w, &v, 4);
    return 0;
}

int ms_gguf_writer_set_u64(MsGgufWriter *w, const char *key, uint64_t v)
{
    if (!w) return MS_EINVAL;
    int rc = begin_kv(w, key, MS_GGUF_UINT64, 8);
    if (rc) return rc;
    kv_put_u64(w, v);
    return 0;
}

int ms_gguf_writer_set_f32(MsGgufWriter *w, const char *key, float v)
{
    if (!w) return MS_EINVAL;
    int rc = begin_kv(w, key, MS_GGUF_FLOAT32, 4);
    if (rc) return rc;
    kv_put(w, &v, 4);
    return 0;
}

int ms_gguf_writer_set_bool(MsGgufWriter *w, const char *key, bool v)
{
    if (!w) return MS_EINVAL;
    int rc = begin_kv(w, key, MS_GGUF_BOOL, 1);
    if (rc) return rc;
    uint8_t b = v ? 1 : 0;
    kv_put(w, &b, 1);
    return 0;
}

int ms_gguf_writer_set_str(MsGgufWriter *w, const char *key, const char *v)
{
    if (!w) return MS_EINVAL;
    if (!v) return w_fail(w, MS_EINVAL, "NULL string for key '%s'", key ? key : "");
    size_t n = strlen(v);
    int rc = begin_kv(w, key, MS_GGUF_STRING, 8 + n);
    if (rc) return rc;
    kv_put_u64(w, n);
    kv_put(w, v, n);
    return 0;
}

static size_t fixed_size(int t)
{
    switch (t) {
    case MS_GGUF_UINT8: case MS_GGUF_INT8: case MS_GGUF_BOOL: return 1;
    case MS_GGUF_UINT16: case MS_GGUF_INT16: return 2;
    case MS_GGUF_UINT32: case MS_GGUF_INT32: case MS_GGUF_FLOAT32: return 4;
    case MS_GGUF_UINT64: case MS_GGUF_INT64: case MS_GGUF_FLOAT64: return 8;
    default: return 0;
    }
}

int ms_gguf_writer_set_arr(MsGgufWriter *w, const char *key, int elem_type, const void *data, uint64_t n)
{
    if (!w) return MS_EINVAL;
    size_t es = fixed_size(elem_type);
    if (!es) return w_fail(w, MS_EINVAL, "key '%s': array element type %d is not a fixed-size type",
                           key ? key : "", elem_type);
    if (n && !data) return w_fail(w, MS_EINVAL, "key '%s': NULL array data", key ? key : "");
    if (n > ((uint64_t)1 << 30)) return w_fail(w, MS_EINVAL, "key '%s': array too long", key ? key : "");
    int rc = begin_kv(w, key, MS_GGUF_ARRAY, 12 + (size_t)n * es);
    if (rc) return rc;
    kv_put_u32(w, (uint32_t)elem_type);
    kv_put_u64(w, n);
    if (n) kv_put(w, data, (size_t)n * es);
    return 0;
}

int ms_gguf_writer_set_arr_str(MsGgufWriter *w, const char *key, const char *const *v, uint64_t n)
{
    if (!w) return MS_EINVAL;
    if (n && !v) return w_fail(w, MS_EINVAL, "key '%s': NULL string array", key ? key : "");
    if (n > ((uint64_t)1 << 30)) return w_fail(w, MS_EINVAL, "key '%s': array too long", key ? key : "");
    size_t total = 12;
    for (uint64_t i = 0; i < n; i++) {
        if (!v[i]) return w_fail(w, MS_EINVAL, "key '%s': NULL string at %" PRIu64, key ? key : "", i);
        size_t l = strlen(v[i]);
        if (l > SIZE_MAX / 4 - total) return w_fail(w, MS_ENOMEM, "key '%s': array too large", key ? key : "");
        total += 8 + l;
    }
    int rc = begin_kv(w, key, MS_GGUF_ARRAY, total);
    if (rc) return rc;
    kv_put_u32(w, MS_GGUF_STRING);
    kv_put_u64(w, n);
    for (uint64_t i = 0; i < n; i++) {
        size_t l = strlen(v[i]);
        kv_put_u64(w, l);
        kv_put(w, v[i], l);
    }
    return 0;
}

/* ---------------------------------------------------------------- tensors */

int ms_gguf_writer_add_tensor(MsGgufWriter *w, const char *name, int type, uint32_t n_dims, const int64_t *ne)
{
    if (!w) return MS_EINVAL;
    if (w->err.code) return w->err.code;
    if (w->state != W_COLLECT) return w_fail(w, MS_EINVAL, "tensor '%s' added after write_header", name ? name : "");
    if (!name || !*name) return w_fail(w, MS_EINVAL, "empty tensor name");
    size_t nl = strlen(name);
    if (nl > W_MAX_NAME) return w_fail(w, MS_EINVAL, "tensor name '%s' longer than %u bytes", name, W_MAX_NAME);
    if (n_dims < 1 || n_dims > 4 || !ne)
        return w_fail(w, MS_EINVAL, "tensor '%s': %" PRIu32 " dimensions (need 1..4)", name, n_dims);
    int64_t be = ms_type_block_elems(type);
    uint64_t bb = ms_type_block_bytes(type);
    if (type < 0 || type >= MS_TYPE_COUNT || be <= 0 || bb == 0)
        return w_fail(w, MS_EINVAL, "tensor '%s': ggml type %d has no block layout", name, type);
    WTensor t = { .type = type, .n_dims = n_dims, .ne = { 1, 1, 1, 1 } };
    for (uint32_t d = 0; d < n_dims; d++) {
        if (ne[d] <= 0) return w_fail(w, MS_EINVAL, "tensor '%s': dimension %" PRIu32 " is %" PRId64, name, d, ne[d]);
        t.ne[d] = ne[d];
    }
    if (t.ne[0] % be)
        return w_fail(w, MS_EINVAL, "tensor '%s': first dimension %" PRId64 " is not a multiple of %s block size %" PRId64,
                      name, t.ne[0], ms_type_name(type), be);
    int64_t nel = 1;
    uint64_t nb;
    for (int d = 0; d < 4; d++)
        if (__builtin_mul_overflow(nel, t.ne[d], &nel))
            return w_fail(w, MS_EINVAL, "tensor '%s': element count overflows", name);
    if (__builtin_mul_overflow((uint64_t)(t.ne[0] / be), bb, &nb) ||
        __builtin_mul_overflow(nb, (uint64_t)(nel / t.ne[0]), &nb) || nb > (uint64_t)INT64_MAX / 2)
        return w_fail(w, MS_EINVAL, "tensor '%s': byte size overflows", name);
    t.nbytes = nb;
    for (int64_t i = 0; i < w->n_t; i++)
        if (!strcmp(w->t[i].name, name)) return w_fail(w, MS_EINVAL, "duplicate tensor name '%s'", name);
    if (w->n_t == w->cap_t) {
        int64_t cap = w->cap_t ? w->cap_t * 2 : 64;
        WTensor *p = realloc(w->t, (size_t)cap * sizeof *p);
        if (!p) return w_fail(w, MS_ENOMEM, "out of memory");
        w->t = p;
        w->cap_t = cap;
    }
    if (!(t.name = strdup(name))) return w_fail(w, MS_ENOMEM, "out of memory");
    w->t[w->n_t++] = t;
    return 0;
}

/* ---------------------------------------------------------------- output */

static int w_write(MsGgufWriter *w, const void *p, size_t n)
{
    if (n && fwrite(p, 1, n, w->f) != n)
        return w_fail(w, MS_EIO, "write failed: %s", strerror(errno));
    return 0;
}

static int w_pad(MsGgufWriter *w, uint64_t pos)
{
    static const uint8_t zeros[256];
    uint64_t pad = (w->alignment - pos % w->alignment) % w->alignment;
    while (pad) {
        size_t k = pad > sizeof zeros ? sizeof zeros : (size_t)pad;
        int rc = w_write(w, zeros, k);
        if (rc) return rc;
        pad -= k;
    }
    return 0;
}

int ms_gguf_writer_write_header(MsGgufWriter *w)
{
    if (!w) return MS_EINVAL;
    if (w->err.code) return w->err.code;
    if (w->state != W_COLLECT) return w_fail(w, MS_EINVAL, "write_header called twice");
    /* offsets are assigned now, when the alignment is final */
    uint64_t off = 0;
    for (int64_t i = 0; i < w->n_t; i++) {
        w->t[i].offset = off;
        uint64_t padded = w->t[i].nbytes + (w->alignment - w->t[i].nbytes % w->alignment) % w->alignment;
        if (__builtin_add_overflow(off, padded, &off)) return w_fail(w, MS_EINVAL, "data section too large");
    }
    uint32_t ver = 3;
    uint64_t nt = (uint64_t)w->n_t, nkv = (uint64_t)w->n_kv;
    uint64_t pos = 0;
    int rc = 0;
    rc = rc ? rc : w_write(w, "GGUF", 4);
    rc = rc ? rc : w_write(w, &ver, 4);
    rc = rc ? rc : w_write(w, &nt, 8);
    rc = rc ? rc : w_write(w, &nkv, 8);
    rc = rc ? rc : w_write(w, w->kv, w->kv_len);
    pos = 24 + w->kv_len;
    for (int64_t i = 0; i < w->n_t && !rc; i++) {
        const WTensor *t = &w->t[i];
        uint64_t nl = strlen(t->name);
        int32_t ty = t->type;
        rc = rc ? rc : w_write(w, &nl, 8);
        rc = rc ? rc : w_write(w, t->name, nl);
        rc = rc ? rc : w_write(w, &t->n_dims, 4);
        for (uint32_t d = 0; d < t->n_dims && !rc; d++) {
            uint64_t v = (uint64_t)t->ne[d];
            rc = w_write(w, &v, 8);
        }
        rc = rc ? rc : w_write(w, &ty, 4);
        rc = rc ? rc : w_write(w, &t->offset, 8);
        pos += 8 + nl + 4 + 8ull * t->n_dims + 4 + 8;
    }
    rc = rc ? rc : w_pad(w, pos);
    if (rc) return rc;
    w->state = W_DATA;
    return 0;
}

int ms_gguf_writer_write_tensor_data(MsGgufWriter *w, const void *data, uint64_t nbytes)
{
    if (!w) return MS_EINVAL;
    if (w->err.code) return w->err.code;
    if (w->state != W_DATA) return w_fail(w, MS_EINVAL, "tensor data written before write_header or after finish");
    if (w->next >= w->n_t) return w_fail(w, MS_EINVAL, "more tensor data than tensors (%" PRId64 ")", w->n_t);
    const WTensor *t = &w->t[w->next];
    if (nbytes != t->nbytes)
        return w_fail(w, MS_EINVAL, "tensor '%s': %" PRIu64 " bytes of data given, %" PRIu64 " expected",
                      t->name, nbytes, t->nbytes);
    if (!data) return w_fail(w, MS_EINVAL, "tensor '%s': NULL data", t->name);
    int rc = w_write(w, data, (size_t)nbytes);
    if (!rc) rc = w_pad(w, t->nbytes);
    if (rc) return rc;
    w->next++;
    return 0;
}

int ms_gguf_writer_finish(MsGgufWriter *w, MsError *err)
{
    if (!w) return ms_error_set(err, MS_EINVAL, "(null): no writer");
    if (!w->err.code && w->state == W_COLLECT) w_fail(w, MS_EINVAL, "finish called before write_header");
    if (!w->err.code && w->state == W_DONE) w_fail(w, MS_EINVAL, "finish called twice");
    if (!w->err.code && w->next != w->n_t)
        w_fail(w, MS_EINVAL, "only %" PRId64 " of %" PRId64 " tensors' data written", w->next, w->n_t);
    if (w->f) {
        int bad = ferror(w->f);
        int e = errno;
        if (fclose(w->f) != 0 || bad) {
            if (!bad) e = errno;
            w_fail(w, MS_EIO, "write failed: %s", strerror(e));
        }
        w->f = NULL;
        if (w->err.code) unlink(w->path);
    }
    w->state = W_DONE;
    if (w->err.code) {
        if (err) *err = w->err;
        return w->err.code;
    }
    return 0;
}
