/* gguf.c — validating GGUF v2/v3 reader over a read-only mmap.
 *
 * Parsing happens once, in ms_gguf_open: every count, length, type id, shape
 * and offset is checked against the bytes that are really there before any
 * allocation is sized by it or any pointer is handed out.  Afterwards the
 * accessors only index validated tables, so they need no further checks.
 * Facts: GGUF-MOE.md section 1 (layout 1.1, value types 1.2, checks 1.5). */
#include "gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "quant.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the GGUF reader reads little-endian fields with memcpy; big-endian hosts are not supported"
#endif

#define GGUF_HEADER_BYTES 24u
#define GGUF_MIN_KV_BYTES 14u       /* key len 8 + key >= 1 + type 4 + value >= 1 */
#define GGUF_MIN_TINFO_BYTES 25u    /* name len 8 + name >= 1 + n_dims 4 + type 4 + offset 8 */
#define GGUF_MAX_STR ((uint64_t)1 << 30)   /* ggml's cap on any string */
#define GGUF_MAX_ARR ((uint64_t)1 << 30)   /* ggml's cap on array elements */
#define GGUF_MAX_KEY 65535u
#define GGUF_MAX_NAME 63u           /* GGML_MAX_NAME 64 includes the terminator */
#define GGUF_MAX_DIMS 4u
#define GGUF_DEFAULT_ALIGN 32u

typedef struct {
    const char *key;           /* NUL-terminated copy in g->arena (stable address) */
    int type;                  /* MsGgufType */
    int elem_type;             /* arrays only */
    const uint8_t *val;        /* scalar: the value; STRING: first byte; ARRAY: first element */
    uint64_t n;                /* STRING: byte length; ARRAY: element count */
    uint64_t *str_off;         /* STRING arrays: owned index, else NULL */
} Kv;

/* Open-addressing hash of names to indices, for duplicate detection at open
 * time and O(1) lookup afterwards. */
typedef struct {
    int64_t *slot;             /* index + 1, 0 = empty */
    uint64_t mask;
    int64_t n;                 /* entries, kept below half the slots */
} NameIndex;

/* Keys and names live in chunks that never move, so pointers handed out
 * while parsing stay valid as more are added. */
typedef struct Chunk {
    struct Chunk *next;
    size_t used, cap;
    char data[];
} Chunk;

struct MsGguf {
    char *path;
    const uint8_t *map;
    uint64_t size;
    uint32_t version;
    uint32_t alignment;
    uint64_t data_start;
    int64_t n_kv;
    Kv *kv;
    int64_t n_tensors;
    MsGgufTensor *tensors;
    Chunk *arena;              /* NUL-terminated keys and tensor names (and in-memory values) */
    NameIndex kv_index, tensor_index;
    /* in-memory descriptions (ms_gguf_new_mem): resources freed with g and
     * the files the description was read from */
    bool mem;
    bool copied;               /* map holds a private anonymous copy (ms_gguf_set_weights) */
    int fd;                    /* the file, for that copy; -1 for in-memory descriptions */
    int64_t cap_kv, cap_t;
    struct MemRes { void *p; size_t size; bool mapped; } *res;
    int n_res, cap_res;
    char *format;
    char **files;
    int n_files;
};

/* Cursor over the mapping; every read is bounds-checked. */
typedef struct {
    const uint8_t *base;
    uint64_t size, pos;
    const char *path;
    MsError *err;
} Rd;

static const uint8_t k_value_size[MS_GGUF_TYPE_COUNT] = {
    [MS_GGUF_UINT8] = 1, [MS_GGUF_INT8] = 1, [MS_GGUF_UINT16] = 2, [MS_GGUF_INT16] = 2,
    [MS_GGUF_UINT32] = 4, [MS_GGUF_INT32] = 4, [MS_GGUF_FLOAT32] = 4, [MS_GGUF_BOOL] = 1,
    [MS_GGUF_STRING] = 0, [MS_GGUF_ARRAY] = 0, [MS_GGUF_UINT64] = 8, [MS_GGUF_INT64] = 8,
    [MS_GGUF_FLOAT64] = 8,
};

static const char *const k_value_name[MS_GGUF_TYPE_COUNT] = {
    "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64",
};

static const char *value_type_name(int t)
{
    return t >= 0 && t < MS_GGUF_TYPE_COUNT ? k_value_name[t] : "invalid";
}

static int fail(MsError *err, const char *path, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* "PATH: problem" in one line. */
static int fail(MsError *err, const char *path, int code, const char *fmt, ...)
{
    if (err) {
        char msg[MS_ERRMSG_MAX];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        ms_error_set(err, code, "%s: %s", path, msg);
    }
    return code;
}

static int rd_need(Rd *r, uint64_t n, const char *what, int64_t idx)
{
    if (n > r->size - r->pos)
        return fail(r->err, r->path, MS_EFORMAT,
                    "truncated file: %s %" PRId64 " needs %" PRIu64 " bytes at offset %" PRIu64
                    " but only %" PRIu64 " remain", what, idx, n, r->pos, r->size - r->pos);
    return 0;
}

static int rd_u32(Rd *r, uint32_t *v, const char *what, int64_t idx)
{
    int rc = rd_need(r, 4, what, idx);
    if (rc) return rc;
    memcpy(v, r->base + r->pos, 4);
    r->pos += 4;
    return 0;
}

static int rd_u64(Rd *r, uint64_t *v, const char *what, int64_t idx)
{
    int rc = rd_need(r, 8, what, idx);
    if (rc) return rc;
    memcpy(v, r->base + r->pos, 8);
    r->pos += 8;
    return 0;
}

/* A length-prefixed string; the length is checked against the bytes left and
 * the 1 GiB cap before anyone uses it. */
static int rd_str(Rd *r, const uint8_t **s, uint64_t *len, const char *what, int64_t idx)
{
    uint64_t n;
    int rc = rd_u64(r, &n, what, idx);
    if (rc) return rc;
    if (n > GGUF_MAX_STR)
        return fail(r->err, r->path, MS_EFORMAT, "%s %" PRId64 ": string length %" PRIu64
                    " exceeds the 1 GiB limit", what, idx, n);
    if (n > r->size - r->pos)
        return fail(r->err, r->path, MS_EFORMAT, "truncated file: %s %" PRId64 ": string of %" PRIu64
                    " bytes at offset %" PRIu64 " but only %" PRIu64 " remain",
                    what, idx, n, r->pos, r->size - r->pos);
    *s = r->base + r->pos;
    *len = n;
    r->pos += n;
    return 0;
}

/* ---------------------------------------------------------------- index */

static uint64_t hash_name(const char *s)
{
    uint64_t h = 1469598103934665603ull;   /* FNV-1a */
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

static void index_put(NameIndex *ix, const char *name, int64_t idx)
{
    uint64_t h = hash_name(name) & ix->mask;
    while (ix->slot[h]) h = (h + 1) & ix->mask;
    ix->slot[h] = idx + 1;
}

/* Returns the index of an equal name already present (nothing inserted),
 * -1 after inserting, or MS_ENOMEM - 1 (< -1) when growing failed.  The
 * table grows with the entries, so a header that merely claims many pairs
 * costs nothing until they are really there. */
static int64_t index_insert(NameIndex *ix, const char *name, int64_t idx,
                            const char *(*name_of)(const void *, int64_t), const void *ctx)
{
    if (!ix->slot || (uint64_t)(ix->n + 1) * 2 > ix->mask + 1) {
        uint64_t cap = ix->slot ? (ix->mask + 1) * 2 : 64;
        int64_t *old = ix->slot;
        ix->slot = calloc(cap, sizeof *ix->slot);
        if (!ix->slot) { ix->slot = old; return MS_ENOMEM - 1; }
        ix->mask = cap - 1;
        free(old);
        /* entries are the indices 0..n-1, inserted in order */
        for (int64_t j = 0; j < ix->n; j++) index_put(ix, name_of(ctx, j), j);
    }
    uint64_t h = hash_name(name) & ix->mask;
    for (;;) {
        int64_t s = ix->slot[h];
        if (!s) { ix->slot[h] = idx + 1; ix->n++; return -1; }
        if (!strcmp(name_of(ctx, s - 1), name)) return s - 1;
        h = (h + 1) & ix->mask;
    }
}

static int64_t index_find(const NameIndex *ix, const char *name, const char *(*name_of)(const void *, int64_t), const void *ctx)
{
    if (!ix->slot || !name) return -1;
    uint64_t h = hash_name(name) & ix->mask;
    for (;;) {
        int64_t s = ix->slot[h];
        if (!s) return -1;
        if (!strcmp(name_of(ctx, s - 1), name)) return s - 1;
        h = (h + 1) & ix->mask;
    }
}

static const char *kv_name_of(const void *ctx, int64_t i) { return ((const MsGguf *)ctx)->kv[i].key; }
static const char *tensor_name_of(const void *ctx, int64_t i) { return ((const MsGguf *)ctx)->tensors[i].name; }

/* ---------------------------------------------------------------- parsing */

/* Copy a validated (<= 64 KiB) name into the arena; NULL when out of memory. */
static const char *arena_put(Chunk **arena, const uint8_t *s, uint64_t len)
{
    Chunk *c = *arena;
    if (!c || c->cap - c->used < len + 1) {
        size_t cap = len + 1 > 65536 ? (size_t)len + 1 : 65536;
        Chunk *n = malloc(sizeof *n + cap);
        if (!n) return NULL;
        n->next = c;
        n->used = 0;
        n->cap = cap;
        *arena = c = n;
    }
    char *d = c->data + c->used;
    memcpy(d, s, len);
    d[len] = '\0';
    c->used += len + 1;
    return d;
}

/* Make room for element i of a table that grows as entries are parsed.
 * Returns the (possibly moved) table, or NULL with v still valid. */
static void *grow(void *v, int64_t *cap, int64_t i, size_t elem)
{
    if (i < *cap) return v;
    int64_t nc = *cap ? *cap * 2 : 64;
    char *p = realloc(v, (size_t)nc * elem);
    if (!p) return NULL;
    memset(p + (size_t)*cap * elem, 0, (size_t)(nc - *cap) * elem);
    *cap = nc;
    return p;
}

static int parse_kv(MsGguf *g, Rd *r, int64_t i)
{
    Kv *kv = &g->kv[i];
    const uint8_t *ks = NULL;
    uint64_t klen = 0;
    int rc = rd_str(r, &ks, &klen, "key of metadata pair", i);
    if (rc) return rc;
    if (klen == 0)
        return fail(r->err, r->path, MS_EFORMAT, "metadata pair %" PRId64 " has an empty key", i);
    if (klen > GGUF_MAX_KEY)
        return fail(r->err, r->path, MS_EFORMAT, "metadata pair %" PRId64 ": key length %" PRIu64
                    " exceeds %u bytes", i, klen, GGUF_MAX_KEY);
    for (uint64_t j = 0; j < klen; j++)
        if (ks[j] == 0 || ks[j] >= 0x80)
            return fail(r->err, r->path, MS_EFORMAT, "metadata pair %" PRId64
                        ": key contains byte 0x%02x (keys must be ASCII without NUL)", i, ks[j]);
    kv->key = arena_put(&g->arena, ks, klen);
    int64_t dup = kv->key ? index_insert(&g->kv_index, kv->key, i, kv_name_of, g) : MS_ENOMEM - 1;
    if (dup < -1) return fail(r->err, r->path, MS_ENOMEM, "out of memory");
    if (dup >= 0)
        return fail(r->err, r->path, MS_EFORMAT, "duplicate metadata key '%s' (pairs %" PRId64
                    " and %" PRId64 ")", kv->key, dup, i);

    uint32_t t;
    if ((rc = rd_u32(r, &t, "value type of metadata pair", i))) return rc;
    if (t >= MS_GGUF_TYPE_COUNT)
        return fail(r->err, r->path, MS_EFORMAT, "key '%s': invalid value type id %" PRIu32, kv->key, t);
    kv->type = (int)t;
    kv->elem_type = -1;

    if (t == MS_GGUF_STRING) {
        return rd_str(r, &kv->val, &kv->n, "string value of metadata pair", i);
    }
    if (t != MS_GGUF_ARRAY) {
        if ((rc = rd_need(r, k_value_size[t], "value of metadata pair", i))) return rc;
        kv->val = r->base + r->pos;
        kv->n = 1;
        r->pos += k_value_size[t];
        return 0;
    }

    uint32_t et;
    uint64_t n;
    if ((rc = rd_u32(r, &et, "array element type of metadata pair", i))) return rc;
    if (et == MS_GGUF_ARRAY)
        return fail(r->err, r->path, MS_EFORMAT, "key '%s': nested arrays are not supported", kv->key);
    if (et >= MS_GGUF_TYPE_COUNT)
        return fail(r->err, r->path, MS_EFORMAT, "key '%s': invalid array element type id %" PRIu32,
                    kv->key, et);
    if ((rc = rd_u64(r, &n, "array length of metadata pair", i))) return rc;
    if (n > GGUF_MAX_ARR)
        return fail(r->err, r->path, MS_EFORMAT, "key '%s': array of %" PRIu64
                    " elements exceeds the 2^30 limit", kv->key, n);
    kv->elem_type = (int)et;
    kv->n = n;
    kv->val = r->base + r->pos;
    uint64_t esz = et == MS_GGUF_STRING ? 8 : k_value_size[et];
    /* n <= 2^30 and esz <= 8: the product cannot overflow */
    if (n * esz > r->size - r->pos)
        return fail(r->err, r->path, MS_EFORMAT, "truncated file: key '%s': array of %" PRIu64
                    " %s elements needs at least %" PRIu64 " bytes at offset %" PRIu64
                    " but only %" PRIu64 " remain", kv->key, n, value_type_name((int)et),
                    n * esz, r->pos, r->size - r->pos);
    if (et != MS_GGUF_STRING) {
        r->pos += n * esz;
        return 0;
    }
    /* String arrays (tokenizer vocabularies): one pass builds the offset
     * index, so element access is O(1) later. */
    kv->str_off = malloc((n ? n : 1) * sizeof *kv->str_off);
    if (!kv->str_off) return fail(r->err, r->path, MS_ENOMEM, "out of memory for key '%s'", kv->key);
    uint64_t start = r->pos;
    for (uint64_t j = 0; j < n; j++) {
        uint64_t len;
        kv->str_off[j] = r->pos - start;
        if (r->size - r->pos < 8)
            return fail(r->err, r->path, MS_EFORMAT, "truncated file: key '%s': element %" PRIu64
                        " of %" PRIu64 ": no room for its length", kv->key, j, n);
        memcpy(&len, r->base + r->pos, 8);
        r->pos += 8;
        if (len > GGUF_MAX_STR)
            return fail(r->err, r->path, MS_EFORMAT, "key '%s': element %" PRIu64 " of %" PRIu64
                        ": string length %" PRIu64 " exceeds the 1 GiB limit", kv->key, j, n, len);
        if (len > r->size - r->pos)
            return fail(r->err, r->path, MS_EFORMAT, "truncated file: key '%s': element %" PRIu64
                        " of %" PRIu64 ": string of %" PRIu64 " bytes runs past the end of the file",
                        kv->key, j, n, len);
        r->pos += len;
    }
    return 0;
}

static int check_alignment(MsGguf *g, MsError *err)
{
    int64_t i = ms_gguf_find_kv(g, "general.alignment");
    g->alignment = GGUF_DEFAULT_ALIGN;
    if (i < 0) return 0;
    const Kv *kv = &g->kv[i];
    if (kv->type != MS_GGUF_UINT32)
        return fail(err, g->path, MS_EFORMAT, "general.alignment has type %s, expected u32",
                    value_type_name(kv->type));
    uint32_t a;
    memcpy(&a, kv->val, 4);
    if (a == 0 || (a & (a - 1)))
        return fail(err, g->path, MS_EFORMAT, "general.alignment %" PRIu32
                    " is not a non-zero power of two", a);
    g->alignment = a;
    return 0;
}

static int parse_tensor_info(MsGguf *g, Rd *r, int64_t i)
{
    MsGgufTensor *t = &g->tensors[i];
    const uint8_t *ns = NULL;
    uint64_t nlen = 0;
    int rc = rd_str(r, &ns, &nlen, "name of tensor", i);
    if (rc) return rc;
    if (nlen == 0)
        return fail(r->err, r->path, MS_EFORMAT, "tensor %" PRId64 " has an empty name", i);
    if (nlen > GGUF_MAX_NAME)
        return fail(r->err, r->path, MS_EFORMAT, "tensor %" PRId64 ": name of %" PRIu64
                    " bytes is too long (limit %u)", i, nlen, GGUF_MAX_NAME);
    if (memchr(ns, 0, nlen))
        return fail(r->err, r->path, MS_EFORMAT, "tensor %" PRId64 ": name contains a NUL byte", i);
    t->name = arena_put(&g->arena, ns, nlen);
    int64_t dup = t->name ? index_insert(&g->tensor_index, t->name, i, tensor_name_of, g) : MS_ENOMEM - 1;
    if (dup < -1) return fail(r->err, r->path, MS_ENOMEM, "out of memory");
    if (dup >= 0)
        return fail(r->err, r->path, MS_EFORMAT, "duplicate tensor name '%s' (tensors %" PRId64
                    " and %" PRId64 ")", t->name, dup, i);

    uint32_t nd;
    if ((rc = rd_u32(r, &nd, "dimension count of tensor", i))) return rc;
    if (nd > GGUF_MAX_DIMS)
        return fail(r->err, r->path, MS_EFORMAT, "tensor '%s': %" PRIu32 " dimensions (at most %u)",
                    t->name, nd, GGUF_MAX_DIMS);
    t->n_dims = nd;
    for (int d = 0; d < 4; d++) t->ne[d] = 1;
    for (uint32_t d = 0; d < nd; d++) {
        uint64_t v;
        if ((rc = rd_u64(r, &v, "dimensions of tensor", i))) return rc;
        if (v > (uint64_t)INT64_MAX)
            return fail(r->err, r->path, MS_EFORMAT, "tensor '%s': dimension %" PRIu32
                        " is negative (%" PRId64 ")", t->name, d, (int64_t)v);
        if (v == 0)
            return fail(r->err, r->path, MS_EFORMAT, "tensor '%s': dimension %" PRIu32 " is zero",
                        t->name, d);
        t->ne[d] = (int64_t)v;
    }
    uint32_t ty;
    if ((rc = rd_u32(r, &ty, "type of tensor", i))) return rc;
    if ((rc = rd_u64(r, &t->offset, "data offset of tensor", i))) return rc;

    /* element count must fit int64 (ggml uses signed counts) */
    int64_t nel = 1;
    for (int d = 0; d < 4; d++)
        if (__builtin_mul_overflow(nel, t->ne[d], &nel))
            return fail(r->err, r->path, MS_EFORMAT, "tensor '%s': element count overflows "
                        "(%" PRId64 " x %" PRId64 " x %" PRId64 " x %" PRId64 ")",
                        t->name, t->ne[0], t->ne[1], t->ne[2], t->ne[3]);

    if (ty >= (uint32_t)MS_TYPE_COUNT)
        return fail(r->err, r->path, MS_EFORMAT, "tensor '%s': unknown ggml type id %" PRIu32,
                    t->name, ty);
    t->type = (int)ty;
    int64_t be = ms_type_block_elems(t->type);
    uint64_t bb = ms_type_block_bytes(t->type);
    if (be <= 0 || bb == 0)
        return fail(r->err, r->path, MS_EFORMAT, "tensor '%s': ggml type id %" PRIu32
                    " (%s) is removed or unsupported", t->name, ty, ms_type_name(t->type));
    if (t->ne[0] % be)
        return fail(r->err, r->path, MS_EFORMAT, "tensor '%s': first dimension %" PRId64
                    " is not a multiple of the %s block size %" PRId64,
                    t->name, t->ne[0], ms_type_name(t->type), be);
    uint64_t nb;
    if (__builtin_mul_overflow((uint64_t)(t->ne[0] / be), bb, &nb) ||
        __builtin_mul_overflow(nb, (uint64_t)t->ne[1], &nb) ||
        __builtin_mul_overflow(nb, (uint64_t)t->ne[2], &nb) ||
        __builtin_mul_overflow(nb, (uint64_t)t->ne[3], &nb) || nb > (uint64_t)INT64_MAX)
        return fail(r->err, r->path, MS_EFORMAT, "tensor '%s': byte size overflows", t->name);
    t->nbytes = nb;
    return 0;
}

static int cmp_by_offset(const void *a, const void *b)
{
    const MsGgufTensor *x = *(const MsGgufTensor *const *)a, *y = *(const MsGgufTensor *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* Offsets: aligned, inside the file, and no two tensors sharing bytes. */
static int check_tensor_data(MsGguf *g, MsError *err)
{
    if (g->n_tensors == 0) return 0;
    if (g->data_start > g->size)
        return fail(err, g->path, MS_EFORMAT, "truncated file: data section would start at %" PRIu64
                    " but the file has %" PRIu64 " bytes", g->data_start, g->size);
    uint64_t room = g->size - g->data_start;
    for (int64_t i = 0; i < g->n_tensors; i++) {
        MsGgufTensor *t = &g->tensors[i];
        if (t->offset % g->alignment)
            return fail(err, g->path, MS_EFORMAT, "tensor '%s': data offset %" PRIu64
                        " is not a multiple of the alignment %" PRIu32, t->name, t->offset, g->alignment);
        if (t->offset > room || t->nbytes > room - t->offset)
            return fail(err, g->path, MS_EFORMAT, "tensor '%s': data [%" PRIu64 ", +%" PRIu64
                        ") lies outside the file (data section holds %" PRIu64 " bytes)",
                        t->name, t->offset, t->nbytes, room);
        t->data = g->map + g->data_start + t->offset;
    }
    const MsGgufTensor **by = malloc((size_t)g->n_tensors * sizeof *by);
    if (!by) return fail(err, g->path, MS_ENOMEM, "out of memory");
    for (int64_t i = 0; i < g->n_tensors; i++) by[i] = &g->tensors[i];
    qsort(by, (size_t)g->n_tensors, sizeof *by, cmp_by_offset);
    int rc = 0;
    for (int64_t i = 0; i + 1 < g->n_tensors; i++)
        if (by[i]->offset + by[i]->nbytes > by[i + 1]->offset) {
            rc = fail(err, g->path, MS_EFORMAT, "tensor '%s' overlaps tensor '%s' in the data section",
                      by[i]->name, by[i + 1]->name);
            break;
        }
    free(by);
    return rc;
}

static int parse(MsGguf *g, MsError *err)
{
    Rd r = { .base = g->map, .size = g->size, .pos = 0, .path = g->path, .err = err };
    int rc;

    /* magic first, so a short non-GGUF file is named as such */
    if (g->size >= 4 && memcmp(g->map, "GGUF", 4))
        return fail(err, g->path, MS_EFORMAT, "not a GGUF file (magic %02x %02x %02x %02x, expected \"GGUF\")",
                    g->map[0], g->map[1], g->map[2], g->map[3]);
    if (g->size < GGUF_HEADER_BYTES)
        return fail(err, g->path, MS_EFORMAT, "file of %" PRIu64 " bytes is shorter than the %u-byte "
                    "GGUF header", g->size, GGUF_HEADER_BYTES);
    r.pos = 4;
    uint32_t ver;
    uint64_t n_t, n_kv;
    rd_u32(&r, &ver, "header", 0);
    rd_u64(&r, &n_t, "header", 0);
    rd_u64(&r, &n_kv, "header", 0);
    if (ver != 0 && (ver & 0xffffu) == 0)
        return fail(err, g->path, MS_EUNSUPPORTED, "big-endian GGUF file (version reads as 0x%08" PRIx32
                    " when little-endian) is not supported", ver);
    if (ver == 1)
        return fail(err, g->path, MS_EUNSUPPORTED, "GGUF version 1 is not supported (need 2 or 3)");
    if (ver != 2 && ver != 3)
        return fail(err, g->path, MS_EUNSUPPORTED, "unsupported GGUF version %" PRIu32 " (need 2 or 3)", ver);
    g->version = ver;

    /* Bound the counts by what the rest of the file could hold, before any
     * allocation is sized by them. */
    uint64_t rest = g->size - r.pos;
    if (n_kv > (uint64_t)INT64_MAX || n_kv > rest / GGUF_MIN_KV_BYTES)
        return fail(err, g->path, MS_EFORMAT, "metadata count %" PRIu64 " is impossible: the file "
                    "has %" PRIu64 " bytes after the header", n_kv, rest);
    if (n_t > (uint64_t)INT64_MAX || n_t > rest / GGUF_MIN_TINFO_BYTES)
        return fail(err, g->path, MS_EFORMAT, "tensor count %" PRIu64 " is impossible: the file "
                    "has %" PRIu64 " bytes after the header", n_t, rest);
    if (n_kv * GGUF_MIN_KV_BYTES + n_t * GGUF_MIN_TINFO_BYTES > rest)
        return fail(err, g->path, MS_EFORMAT, "truncated file: %" PRIu64 " metadata pairs and %" PRIu64
                    " tensors cannot fit in %" PRIu64 " bytes", n_kv, n_t, rest);
    /* Tables grow as entries are really parsed: a header that claims many
     * pairs in a large file fails on the bytes, not on a huge allocation.
     * n_kv / n_tensors count the parsed entries, so free() stays exact. */
    int64_t cap_kv = 0, cap_t = 0;
    for (int64_t i = 0; i < (int64_t)n_kv; i++) {
        Kv *kv = grow(g->kv, &cap_kv, i, sizeof *g->kv);
        if (!kv) return fail(err, g->path, MS_ENOMEM, "out of memory");
        g->kv = kv;
        g->n_kv = i + 1;
        if ((rc = parse_kv(g, &r, i))) return rc;
    }
    if ((rc = check_alignment(g, err))) return rc;
    for (int64_t i = 0; i < (int64_t)n_t; i++) {
        MsGgufTensor *t = grow(g->tensors, &cap_t, i, sizeof *g->tensors);
        if (!t) return fail(err, g->path, MS_ENOMEM, "out of memory");
        g->tensors = t;
        g->n_tensors = i + 1;
        if ((rc = parse_tensor_info(g, &r, i))) return rc;
    }
    g->data_start = r.pos + (g->alignment - r.pos % g->alignment) % g->alignment;
    return check_tensor_data(g, err);
}

/* ---------------------------------------------------------------- open/free */

#define HUGE_ALIGN ((size_t)2 << 20)   /* x86-64 PMD: one page-table entry per 2 MB */

static size_t page_round(size_t n)
{
    long ps = sysconf(_SC_PAGESIZE);
    size_t p = ps > 0 ? (size_t)ps : 4096;
    return (n + p - 1) / p * p;
}

/* An address range of len bytes starting on a 2 MB boundary, reserved
 * PROT_NONE; the caller maps over it with MAP_FIXED.  Huge pages can back
 * only aligned 2 MB blocks, and mremap keeps them only between aligned
 * addresses, so both the file mapping and its copy start aligned. */
static uint8_t *reserve_aligned(size_t len)
{
    size_t span = page_round(len) + HUGE_ALIGN;
    uint8_t *r = mmap(NULL, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (r == MAP_FAILED) return NULL;
    uint8_t *a = (uint8_t *)(((uintptr_t)r + HUGE_ALIGN - 1) & ~(uintptr_t)(HUGE_ALIGN - 1));
    size_t head = (size_t)(a - r), tail = span - head - page_round(len);
    if (head) munmap(r, head);
    if (tail) munmap(a + page_round(len), tail);
    return a;
}

static void *map_file(int fd, size_t len)
{
    uint8_t *a = reserve_aligned(len);
    if (a) {
        void *m = mmap(a, len, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd, 0);
        if (m != MAP_FAILED) return m;
        munmap(a, len);
    }
    return mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
}

/* MemAvailable from /proc/meminfo in bytes, 0 when unknown. */
static uint64_t mem_available(void)
{
    FILE *f = fopen("/proc/meminfo", "re");
    if (!f) return 0;
    char line[128];
    unsigned long long kb = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) break;
    fclose(f);
    return (uint64_t)kb * 1024u;
}

int ms_gguf_set_weights(MsGguf *g, MsWeights how, MsError *err)
{
    if (!g || g->mem || !g->map || g->copied || how == MS_WEIGHTS_MAPPED) return 0;
    const size_t len = (size_t)g->size;
    if (how == MS_WEIGHTS_AUTO && g->size > mem_available() / 2) return 0;
    uint8_t *a = reserve_aligned(len);
    if (!a || mmap(a, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED) {
        if (a) munmap(a, len);
        if (how == MS_WEIGHTS_AUTO) return 0;
        return fail(err, g->path, MS_ENOMEM, "cannot allocate %.1f MB to copy the weights into: %s",
                    (double)len / 1e6, strerror(errno));
    }
    madvise(a, len, MADV_HUGEPAGE);   /* advisory: without THP the copy still works */
    /* pread, not memcpy from the mapping: the kernel copies from the page
     * cache without faulting the mapping in 4 KB at a time.  One huge page
     * per call: larger reads into not yet faulted memory were several times
     * slower (3 GB: 0.5 s in 2 MB reads, 4.7 s in 64 MB reads). */
    size_t done = 0;
    int e = 0;
    while (done < len && !e) {
        ssize_t n = pread(g->fd, a + done, MS_MIN(len - done, HUGE_ALIGN), (off_t)done);
        if (n > 0) done += (size_t)n;
        else if (n == 0) e = ESPIPE;   /* the file shrank since it was opened */
        else if (errno != EINTR) e = errno;
    }
    void *r = MAP_FAILED;
    if (!e && mprotect(a, len, PROT_READ) == 0) {
        r = mremap(a, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, (void *)g->map);
        if (r == MAP_FAILED) e = errno;
    } else if (!e) {
        e = errno;
    }
    if (r == MAP_FAILED) {
        munmap(a, len);
        if (how == MS_WEIGHTS_AUTO) return 0;
        return fail(err, g->path, MS_EIO, "cannot copy the weights into memory: %s",
                    e == ESPIPE ? "the file shrank while it was read" : strerror(e));
    }
    g->copied = true;
    return 0;
}

MsWeights ms_gguf_weights(const MsGguf *g)
{
    return g && g->copied ? MS_WEIGHTS_COPIED : MS_WEIGHTS_MAPPED;
}

uint64_t ms_gguf_huge_bytes(const MsGguf *g)
{
    if (!g || !g->copied) return 0;
    FILE *f = fopen("/proc/self/smaps", "re");
    if (!f) return 0;
    char line[4352];   /* a header line ends with a path of up to PATH_MAX */
    bool in = false;
    unsigned long long kb = 0;
    uintptr_t lo, hi, at = (uintptr_t)g->map;
    while (fgets(line, sizeof line, f)) {
        /* a mapping's header "lo-hi perms ..."; field lines start "Name:" */
        if (sscanf(line, "%" SCNxPTR "-%" SCNxPTR, &lo, &hi) == 2) {
            in = lo <= at && at < hi;
            continue;
        }
        if (in && sscanf(line, "AnonHugePages: %llu kB", &kb) == 1) break;
    }
    fclose(f);
    return in ? (uint64_t)kb * 1024u : 0;
}

MsGguf *ms_gguf_open(const char *path, MsError *err)
{
    if (!path) { ms_error_set(err, MS_EINVAL, "(null): no path given"); return NULL; }
    MsGguf *g = calloc(1, sizeof *g);
    if (g) g->fd = -1;
    if (!g || !(g->path = strdup(path))) {
        free(g);
        ms_error_set(err, MS_ENOMEM, "%s: out of memory", path);
        return NULL;
    }
    /* O_NONBLOCK: opening a FIFO must not hang waiting for a writer */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        fail(err, path, MS_EIO, "cannot open: %s", strerror(errno));
        goto bad;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        fail(err, path, MS_EIO, "cannot stat: %s", strerror(errno));
        close(fd);
        goto bad;
    }
    if (S_ISDIR(st.st_mode)) {
        fail(err, path, MS_EIO, "is a directory, not a GGUF file");
        close(fd);
        goto bad;
    }
    if (!S_ISREG(st.st_mode)) {
        fail(err, path, MS_EIO, "not a regular file");
        close(fd);
        goto bad;
    }
    if (st.st_size == 0) {
        fail(err, path, MS_EFORMAT, "empty file");
        close(fd);
        goto bad;
    }
    if ((uint64_t)st.st_size > SIZE_MAX) {
        fail(err, path, MS_EIO, "file too large to map");
        close(fd);
        goto bad;
    }
    g->size = (uint64_t)st.st_size;
    void *m = map_file(fd, (size_t)g->size);
    g->fd = fd;   /* kept for ms_gguf_set_weights; closed by ms_gguf_free */
    if (m == MAP_FAILED) {
        fail(err, path, MS_EIO, "cannot map: %s", strerror(errno));
        goto bad;
    }
    g->map = m;
    if (parse(g, err)) goto bad;
    return g;
bad:
    ms_gguf_free(g);
    return NULL;
}

void ms_gguf_prefetch(const MsGguf *g)
{
    if (g && g->map && g->size && !g->copied) madvise((void *)g->map, (size_t)g->size, MADV_WILLNEED);
    for (int i = 0; g && i < g->n_res; i++)
        if (g->res[i].mapped) madvise(g->res[i].p, g->res[i].size, MADV_WILLNEED);
}

void ms_gguf_free(MsGguf *g)
{
    if (!g) return;
    for (int i = 0; i < g->n_res; i++) {
        if (g->res[i].mapped) munmap(g->res[i].p, g->res[i].size);
        else free(g->res[i].p);
    }
    free(g->res);
    for (int i = 0; i < g->n_files; i++) free(g->files[i]);
    free(g->files);
    free(g->format);
    if (g->kv)
        for (int64_t i = 0; i < g->n_kv; i++) free(g->kv[i].str_off);
    free(g->kv);
    free(g->tensors);
    while (g->arena) {
        Chunk *next = g->arena->next;
        free(g->arena);
        g->arena = next;
    }
    free(g->kv_index.slot);
    free(g->tensor_index.slot);
    if (g->map) munmap((void *)g->map, (size_t)g->size);
    if (g->fd >= 0) close(g->fd);
    free(g->path);
    free(g);
}

const char *ms_gguf_path(const MsGguf *g) { return g ? g->path : NULL; }
const char *ms_gguf_format(const MsGguf *g) { return g && g->format ? g->format : "GGUF"; }
int ms_gguf_n_source_files(const MsGguf *g) { return g ? (g->mem ? g->n_files : 1) : 0; }
const char *ms_gguf_source_file(const MsGguf *g, int i)
{
    if (!g || i < 0 || i >= ms_gguf_n_source_files(g)) return NULL;
    return g->mem ? g->files[i] : g->path;
}
uint32_t ms_gguf_version(const MsGguf *g) { return g ? g->version : 0; }
uint64_t ms_gguf_file_size(const MsGguf *g) { return g ? g->size : 0; }
uint32_t ms_gguf_alignment(const MsGguf *g) { return g ? g->alignment : 0; }

/* ---------------------------------------------------------------- metadata */

int64_t ms_gguf_n_kv(const MsGguf *g) { return g ? g->n_kv : 0; }

const char *ms_gguf_kv_key(const MsGguf *g, int64_t i)
{
    return g && i >= 0 && i < g->n_kv ? g->kv[i].key : NULL;
}

int ms_gguf_kv_type(const MsGguf *g, int64_t i)
{
    return g && i >= 0 && i < g->n_kv ? g->kv[i].type : -1;
}

int64_t ms_gguf_find_kv(const MsGguf *g, const char *key)
{
    return g ? index_find(&g->kv_index, key, kv_name_of, g) : -1;
}

static bool type_is_int(int t)
{
    switch (t) {
    case MS_GGUF_UINT8: case MS_GGUF_INT8: case MS_GGUF_UINT16: case MS_GGUF_INT16:
    case MS_GGUF_UINT32: case MS_GGUF_INT32: case MS_GGUF_UINT64: case MS_GGUF_INT64:
    case MS_GGUF_BOOL:
        return true;
    default:
        return false;
    }
}

/* Integer value widened without loss: signed in *s or unsigned in *u
 * (*is_neg tells which). */
static void read_int(int t, const uint8_t *p, bool *is_neg, int64_t *s, uint64_t *u)
{
    uint8_t u8; int8_t i8; uint16_t u16; int16_t i16; uint32_t u32; int32_t i32; int64_t i64;
    *is_neg = false;
    *s = 0;
    *u = 0;
    switch (t) {
    case MS_GGUF_UINT8: case MS_GGUF_BOOL: memcpy(&u8, p, 1); *u = u8; break;
    case MS_GGUF_INT8: memcpy(&i8, p, 1); *s = i8; break;
    case MS_GGUF_UINT16: memcpy(&u16, p, 2); *u = u16; break;
    case MS_GGUF_INT16: memcpy(&i16, p, 2); *s = i16; break;
    case MS_GGUF_UINT32: memcpy(&u32, p, 4); *u = u32; break;
    case MS_GGUF_INT32: memcpy(&i32, p, 4); *s = i32; break;
    case MS_GGUF_UINT64: memcpy(u, p, 8); break;
    case MS_GGUF_INT64: memcpy(&i64, p, 8); *s = i64; break;
    default: break;
    }
    if (t == MS_GGUF_INT8 || t == MS_GGUF_INT16 || t == MS_GGUF_INT32 || t == MS_GGUF_INT64) {
        if (*s < 0) *is_neg = true;
        else *u = (uint64_t)*s;
    }
}

static const Kv *lookup(const MsGguf *g, const char *key)
{
    int64_t i = ms_gguf_find_kv(g, key);
    return i < 0 ? NULL : &g->kv[i];
}

static int wrong_type(const MsGguf *g, const Kv *kv, const char *want, MsError *err)
{
    if (kv->type == MS_GGUF_ARRAY)
        return fail(err, g->path, MS_EFORMAT, "key '%s' has type array of %s, expected %s",
                    kv->key, value_type_name(kv->elem_type), want);
    return fail(err, g->path, MS_EFORMAT, "key '%s' has type %s, expected %s",
                kv->key, value_type_name(kv->type), want);
}

/* Shared by the integer getters: value as (neg, s, u) or an error. */
static int get_int(const MsGguf *g, const char *key, const Kv **kvp, bool *neg, int64_t *s,
                   uint64_t *u, MsError *err)
{
    const Kv *kv = lookup(g, key);
    if (!kv) return MS_ENOTFOUND;
    *kvp = kv;
    if (!type_is_int(kv->type)) return wrong_type(g, kv, "an integer", err);
    read_int(kv->type, kv->val, neg, s, u);
    return 0;
}

int ms_gguf_get_u32(const MsGguf *g, const char *key, uint32_t *out, MsError *err)
{
    const Kv *kv;
    bool neg;
    int64_t s;
    uint64_t u;
    int rc = get_int(g, key, &kv, &neg, &s, &u, err);
    if (rc) return rc;
    if (neg)
        return fail(err, g->path, MS_EFORMAT, "key '%s': value %" PRId64 " is out of range for u32", key, s);
    if (u > UINT32_MAX)
        return fail(err, g->path, MS_EFORMAT, "key '%s': value %" PRIu64 " is out of range for u32", key, u);
    *out = (uint32_t)u;
    return 0;
}

int ms_gguf_get_i64(const MsGguf *g, const char *key, int64_t *out, MsError *err)
{
    const Kv *kv;
    bool neg;
    int64_t s;
    uint64_t u;
    int rc = get_int(g, key, &kv, &neg, &s, &u, err);
    if (rc) return rc;
    if (neg) { *out = s; return 0; }
    if (u > (uint64_t)INT64_MAX)
        return fail(err, g->path, MS_EFORMAT, "key '%s': value %" PRIu64 " is out of range for i64", key, u);
    *out = (int64_t)u;
    return 0;
}

int ms_gguf_get_f32(const MsGguf *g, const char *key, float *out, MsError *err)
{
    const Kv *kv = lookup(g, key);
    if (!kv) return MS_ENOTFOUND;
    if (kv->type == MS_GGUF_FLOAT32) {
        memcpy(out, kv->val, 4);
        return 0;
    }
    if (kv->type == MS_GGUF_FLOAT64) {
        double d;
        memcpy(&d, kv->val, 8);
        if (isfinite(d) && fabs(d) > FLT_MAX)
            return fail(err, g->path, MS_EFORMAT, "key '%s': value %g is out of range for f32", key, d);
        *out = (float)d;
        return 0;
    }
    if (type_is_int(kv->type) && kv->type != MS_GGUF_BOOL) {
        bool neg;
        int64_t s;
        uint64_t u;
        read_int(kv->type, kv->val, &neg, &s, &u);
        *out = neg ? (float)s : (float)u;
        return 0;
    }
    return wrong_type(g, kv, "a number", err);
}

int ms_gguf_get_bool(const MsGguf *g, const char *key, bool *out, MsError *err)
{
    const Kv *kv = lookup(g, key);
    if (!kv) return MS_ENOTFOUND;
    if (kv->type == MS_GGUF_BOOL) {
        *out = kv->val[0] != 0;   /* as llama.cpp: any non-zero byte is true */
        return 0;
    }
    if (type_is_int(kv->type)) {
        bool neg;
        int64_t s;
        uint64_t u;
        read_int(kv->type, kv->val, &neg, &s, &u);
        if (neg || u > 1)
            return fail(err, g->path, MS_EFORMAT, "key '%s': integer value is not 0 or 1", key);
        *out = u != 0;
        return 0;
    }
    return wrong_type(g, kv, "bool", err);
}

int ms_gguf_get_str(const MsGguf *g, const char *key, const char **s, uint64_t *len, MsError *err)
{
    const Kv *kv = lookup(g, key);
    if (!kv) return MS_ENOTFOUND;
    if (kv->type != MS_GGUF_STRING) return wrong_type(g, kv, "string", err);
    *s = (const char *)kv->val;
    *len = kv->n;
    return 0;
}

int ms_gguf_get_arr(const MsGguf *g, const char *key, MsGgufArray *out, MsError *err)
{
    const Kv *kv = lookup(g, key);
    if (!kv) return MS_ENOTFOUND;
    if (kv->type != MS_GGUF_ARRAY) return wrong_type(g, kv, "array", err);
    out->elem_type = kv->elem_type;
    out->n = kv->n;
    out->data = kv->val;
    out->str_off = kv->str_off;
    return 0;
}

void ms_gguf_arr_str(const MsGgufArray *a, uint64_t i, const char **s, uint64_t *len)
{
    const uint8_t *p = a->data + a->str_off[i];
    memcpy(len, p, 8);
    *s = (const char *)p + 8;
}

double ms_gguf_arr_f64(const MsGgufArray *a, uint64_t i)
{
    uint64_t esz = a->elem_type >= 0 && a->elem_type < MS_GGUF_TYPE_COUNT ? k_value_size[a->elem_type] : 0;
    if (!esz) return 0.0;
    const uint8_t *p = a->data + i * esz;
    if (a->elem_type == MS_GGUF_FLOAT32) { float f; memcpy(&f, p, 4); return f; }
    if (a->elem_type == MS_GGUF_FLOAT64) { double d; memcpy(&d, p, 8); return d; }
    bool neg;
    int64_t s;
    uint64_t u;
    read_int(a->elem_type, p, &neg, &s, &u);
    return neg ? (double)s : (double)u;
}

int64_t ms_gguf_arr_i64(const MsGgufArray *a, uint64_t i)
{
    if (!type_is_int(a->elem_type)) return 0;
    bool neg;
    int64_t s;
    uint64_t u;
    read_int(a->elem_type, a->data + i * k_value_size[a->elem_type], &neg, &s, &u);
    return neg ? s : (int64_t)u;   /* u64 above INT64_MAX wraps, documented as integer access */
}

/* ---------------------------------------------------------------- tensors */

int64_t ms_gguf_n_tensors(const MsGguf *g) { return g ? g->n_tensors : 0; }

const MsGgufTensor *ms_gguf_tensor(const MsGguf *g, int64_t i)
{
    return g && i >= 0 && i < g->n_tensors ? &g->tensors[i] : NULL;
}

const MsGgufTensor *ms_gguf_find_tensor(const MsGguf *g, const char *name)
{
    if (!g) return NULL;
    int64_t i = index_find(&g->tensor_index, name, tensor_name_of, g);
    return i < 0 ? NULL : &g->tensors[i];
}

/* ---------------------------------------------------------------- in memory */

MsGguf *ms_gguf_new_mem(const char *path, const char *format, MsError *err)
{
    MsGguf *g = calloc(1, sizeof *g);
    if (g) g->fd = -1;
    if (!g || !(g->path = strdup(path ? path : "")) || !(g->format = strdup(format ? format : "memory"))) {
        if (g) free(g->path);
        free(g);
        ms_error_set(err, MS_ENOMEM, "%s: out of memory", path ? path : "(null)");
        return NULL;
    }
    g->mem = true;
    g->version = 3;
    g->alignment = GGUF_DEFAULT_ALIGN;
    return g;
}

int ms_gguf_mem_add_file(MsGguf *g, const char *path, uint64_t size)
{
    if (!g || !g->mem) return MS_EINVAL;
    char **f = realloc(g->files, (size_t)(g->n_files + 1) * sizeof *f);
    if (!f) return MS_ENOMEM;
    g->files = f;
    if (!(f[g->n_files] = strdup(path))) return MS_ENOMEM;
    g->n_files++;
    g->size += size;
    return 0;
}

int ms_gguf_mem_own(MsGguf *g, void *p, size_t size, bool mapped)
{
    if (!g || !g->mem) return MS_EINVAL;
    if (g->n_res == g->cap_res) {
        int cap = g->cap_res ? g->cap_res * 2 : 16;
        struct MemRes *r = realloc(g->res, (size_t)cap * sizeof *r);
        if (!r) return MS_ENOMEM;
        g->res = r;
        g->cap_res = cap;
    }
    g->res[g->n_res++] = (struct MemRes){ p, size, mapped };
    return 0;
}

/* Copy n bytes into the arena (stable address); NULL when out of memory. */
static const uint8_t *arena_blob(Chunk **arena, const void *p, uint64_t n)
{
    return (const uint8_t *)arena_put(arena, p, n);
}

/* A new pair, or the existing one of that key replaced (last set wins). */
static Kv *mem_kv(MsGguf *g, const char *key)
{
    if (!g || !g->mem || !key || !*key) return NULL;
    int64_t i = ms_gguf_find_kv(g, key);
    if (i >= 0) {
        free(g->kv[i].str_off);
        g->kv[i].str_off = NULL;
        return &g->kv[i];
    }
    Kv *kv = grow(g->kv, &g->cap_kv, g->n_kv, sizeof *g->kv);
    if (!kv) return NULL;
    g->kv = kv;
    kv = &g->kv[g->n_kv];
    memset(kv, 0, sizeof *kv);
    kv->key = arena_put(&g->arena, (const uint8_t *)key, strlen(key));
    if (!kv->key) return NULL;
    if (index_insert(&g->kv_index, kv->key, g->n_kv, kv_name_of, g) < -1) return NULL;
    g->n_kv++;
    return kv;
}

int ms_gguf_mem_set(MsGguf *g, const char *key, int type, const void *val)
{
    if (type < 0 || type >= MS_GGUF_TYPE_COUNT || type == MS_GGUF_ARRAY) return MS_EINVAL;
    uint64_t n = type == MS_GGUF_STRING ? strlen(val) : k_value_size[type];
    Kv *kv = mem_kv(g, key);
    if (!kv) return MS_ENOMEM;
    kv->type = type;
    kv->elem_type = -1;
    kv->n = type == MS_GGUF_STRING ? n : 1;
    kv->val = arena_blob(&g->arena, val, n);
    return kv->val ? 0 : MS_ENOMEM;
}

int ms_gguf_mem_set_arr(MsGguf *g, const char *key, int elem_type, const void *data, uint64_t n)
{
    if (elem_type < 0 || elem_type >= MS_GGUF_TYPE_COUNT || elem_type == MS_GGUF_ARRAY
        || elem_type == MS_GGUF_STRING || n > GGUF_MAX_ARR) return MS_EINVAL;
    Kv *kv = mem_kv(g, key);
    if (!kv) return MS_ENOMEM;
    kv->type = MS_GGUF_ARRAY;
    kv->elem_type = elem_type;
    kv->n = n;
    kv->val = arena_blob(&g->arena, data, n * k_value_size[elem_type]);
    return kv->val ? 0 : MS_ENOMEM;
}

int ms_gguf_mem_set_arr_str(MsGguf *g, const char *key, const char *const *v, const uint64_t *lens, uint64_t n)
{
    if (n > GGUF_MAX_ARR) return MS_EINVAL;
    uint64_t total = 0;
    for (uint64_t i = 0; i < n; i++) total += 8 + lens[i];
    uint8_t *buf = malloc(total ? total : 1);
    uint64_t *off = malloc((n ? n : 1) * sizeof *off);
    if (!buf || !off) { free(buf); free(off); return MS_ENOMEM; }
    uint64_t o = 0;
    for (uint64_t i = 0; i < n; i++) {
        off[i] = o;
        memcpy(buf + o, &lens[i], 8);
        memcpy(buf + o + 8, v[i], lens[i]);
        o += 8 + lens[i];
    }
    Kv *kv = mem_kv(g, key);
    const uint8_t *val = kv ? arena_blob(&g->arena, buf, total) : NULL;
    free(buf);
    if (!val) { free(off); return MS_ENOMEM; }
    kv->type = MS_GGUF_ARRAY;
    kv->elem_type = MS_GGUF_STRING;
    kv->n = n;
    kv->val = val;
    kv->str_off = off;
    return 0;
}

int ms_gguf_mem_add_tensor(MsGguf *g, const char *name, int type, uint32_t n_dims, const int64_t *ne,
                           const void *data, MsError *err)
{
    if (!g || !g->mem || !name || n_dims < 1 || n_dims > GGUF_MAX_DIMS || !data)
        return ms_error_set(err, MS_EINVAL, "%s: bad tensor description", g ? g->path : "(null)");
    size_t nl = strlen(name);
    if (nl == 0 || nl > GGUF_MAX_NAME)
        return fail(err, g->path, MS_EFORMAT, "tensor name '%s' is empty or longer than %u bytes",
                    name, GGUF_MAX_NAME);
    if (ms_gguf_find_tensor(g, name))
        return fail(err, g->path, MS_EFORMAT, "two tensors map to '%s'", name);
    int64_t be = type >= 0 && type < MS_TYPE_COUNT ? ms_type_block_elems(type) : 0;
    uint64_t bb = type >= 0 && type < MS_TYPE_COUNT ? ms_type_block_bytes(type) : 0;
    if (be <= 0 || bb == 0)
        return fail(err, g->path, MS_EFORMAT, "tensor '%s': unsupported type id %d", name, type);
    int64_t n4[4] = { 1, 1, 1, 1 };
    for (uint32_t d = 0; d < n_dims; d++) {
        if (ne[d] < 1) return fail(err, g->path, MS_EFORMAT, "tensor '%s': dimension %u is %" PRId64,
                                   name, d, ne[d]);
        n4[d] = ne[d];
    }
    if (n4[0] % be)
        return fail(err, g->path, MS_EFORMAT, "tensor '%s': first dimension %" PRId64
                    " is not a multiple of the %s block size", name, n4[0], ms_type_name(type));
    uint64_t nb;
    if (__builtin_mul_overflow((uint64_t)(n4[0] / be), bb, &nb) ||
        __builtin_mul_overflow(nb, (uint64_t)n4[1], &nb) ||
        __builtin_mul_overflow(nb, (uint64_t)n4[2], &nb) ||
        __builtin_mul_overflow(nb, (uint64_t)n4[3], &nb) || nb > (uint64_t)INT64_MAX)
        return fail(err, g->path, MS_EFORMAT, "tensor '%s': byte size overflows", name);
    MsGgufTensor *t = grow(g->tensors, &g->cap_t, g->n_tensors, sizeof *g->tensors);
    if (!t) return fail(err, g->path, MS_ENOMEM, "out of memory");
    g->tensors = t;
    t = &g->tensors[g->n_tensors];
    memset(t, 0, sizeof *t);
    t->name = arena_put(&g->arena, (const uint8_t *)name, nl);
    if (!t->name || index_insert(&g->tensor_index, t->name, g->n_tensors, tensor_name_of, g) < -1)
        return fail(err, g->path, MS_ENOMEM, "out of memory");
    t->n_dims = n_dims;
    memcpy(t->ne, n4, sizeof n4);
    t->type = type;
    t->nbytes = nb;
    t->data = data;
    /* offsets as a writer would lay the tensors out (informational) */
    uint64_t off = 0;
    if (g->n_tensors > 0) {
        const MsGgufTensor *p = &g->tensors[g->n_tensors - 1];
        off = p->offset + p->nbytes;
        off += (g->alignment - off % g->alignment) % g->alignment;
    }
    t->offset = off;
    g->n_tensors++;
    return 0;
}
