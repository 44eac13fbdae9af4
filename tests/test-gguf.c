/* test-gguf.c — GGUF reader and writer: round trips, malformed files, a
 * truncation sweep, seeded header corruption and the shared fixtures.
 *
 * Malformed files are built byte by byte by a small builder here (written
 * from the format description, independent of the writer) so that each
 * variant breaks exactly one rule; the reader must reject it with a one-line
 * "PATH: problem" message that names the rule. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>

#include "gguf.h"
#include "mtest.h"
#include "quant.h"

/* ---------------------------------------------------------------- helpers */

typedef struct {
    uint8_t *p;
    size_t n, cap;
} Buf;

static void put(Buf *b, const void *p, size_t n)
{
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->n + n) cap *= 2;
        b->p = realloc(b->p, cap);
        if (!b->p) { perror("realloc"); exit(99); }
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, p, n);
    b->n += n;
}
static void put_u8(Buf *b, uint8_t v) { put(b, &v, 1); }
static void put_u32(Buf *b, uint32_t v) { put(b, &v, 4); }
static void put_u64(Buf *b, uint64_t v) { put(b, &v, 8); }
static void put_str(Buf *b, const char *s) { put_u64(b, strlen(s)); put(b, s, strlen(s)); }
static void put_pad(Buf *b, size_t align) { while (b->n % align) put_u8(b, 0); }

static int write_bytes(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = n ? fwrite(p, 1, n, f) : 0;
    return fclose(f) == 0 && w == n ? 0 : -1;
}

static uint8_t *read_all(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *p = malloc(sz > 0 ? (size_t)sz : 1);
    if (p && fread(p, 1, (size_t)sz, f) != (size_t)sz) { free(p); p = NULL; }
    fclose(f);
    *n = (size_t)sz;
    return p;
}

/* The sweeps rewrite one file thousands of times: keep it in memory (a
 * memfd is a regular file, so the reader's open/fstat/mmap path is the real
 * one) to stay fast on a loaded machine. */
static int mem_file(char *path, size_t cap)
{
    int fd = memfd_create("gguf-test", MFD_CLOEXEC);
    if (fd >= 0) snprintf(path, cap, "/proc/self/fd/%d", fd);
    return fd;
}

static int mem_set(int fd, const void *p, size_t n)
{
    if (ftruncate(fd, 0) != 0) return -1;
    return n && pwrite(fd, p, n, 0) != (ssize_t)n ? -1 : 0;
}

static uint64_t rng_next(uint64_t *s)   /* xorshift64*, explicitly seeded */
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

/* A rejected open must carry a failure code, the path and one line. */
static bool good_failure(const MsError *e, const char *path)
{
    return (e->code == MS_EFORMAT || e->code == MS_EIO || e->code == MS_EUNSUPPORTED) &&
           strstr(e->msg, path) == e->msg && !strchr(e->msg, '\n');
}

/* Touch everything a successful open exposes, so ASan sees any bad pointer. */
static uint64_t walk(const MsGguf *g)
{
    uint64_t acc = 0;
    for (int64_t i = 0; i < ms_gguf_n_kv(g); i++) {
        const char *k = ms_gguf_kv_key(g, i);
        acc += strlen(k);
        if (ms_gguf_find_kv(g, k) != i) acc += 1000000;
        int t = ms_gguf_kv_type(g, i);
        if (t == MS_GGUF_STRING) {
            const char *s; uint64_t n;
            if (ms_gguf_get_str(g, k, &s, &n, NULL) == 0 && n) acc += (uint8_t)s[0] + (uint8_t)s[n - 1];
        } else if (t == MS_GGUF_ARRAY) {
            MsGgufArray a;
            if (ms_gguf_get_arr(g, k, &a, NULL) == 0) {
                for (uint64_t j = 0; j < a.n; j++) {
                    if (a.elem_type == MS_GGUF_STRING) {
                        const char *s; uint64_t n;
                        ms_gguf_arr_str(&a, j, &s, &n);
                        if (n) acc += (uint8_t)s[0] + (uint8_t)s[n - 1];
                    } else {
                        acc += (uint64_t)ms_gguf_arr_i64(&a, j);
                        acc += (uint64_t)(ms_gguf_arr_f64(&a, j) != 0);
                    }
                }
            }
        } else {
            int64_t v; float f; bool bo; uint32_t u;
            if (ms_gguf_get_i64(g, k, &v, NULL) == 0) acc += (uint64_t)v;
            if (ms_gguf_get_f32(g, k, &f, NULL) == 0) acc += f > 0;
            if (ms_gguf_get_bool(g, k, &bo, NULL) == 0) acc += bo;
            if (ms_gguf_get_u32(g, k, &u, NULL) == 0) acc += u;
        }
    }
    for (int64_t i = 0; i < ms_gguf_n_tensors(g); i++) {
        const MsGgufTensor *t = ms_gguf_tensor(g, i);
        if (ms_gguf_find_tensor(g, t->name) != t) acc += 1000000;
        if (t->nbytes) {
            const uint8_t *d = t->data;
            acc += d[0] + d[t->nbytes - 1];
        }
    }
    return acc;
}

/* ---------------------------------------------------------------- builder */

/* Each mutation breaks one container rule of GGUF-MOE.md 1.5. */
enum {
    M_NONE, M_MAGIC, M_V1, M_V4, M_BIGENDIAN, M_NKV_HUGE, M_NKV_NEG, M_NT_HUGE,
    M_KEY_EMPTY, M_KEY_LONG, M_KEY_NONASCII, M_KEY_NUL, M_KEY_PAST_EOF, M_STR_OVER_1G,
    M_VTYPE_13, M_VTYPE_NEG, M_ARR_NESTED, M_ARR_ETYPE, M_ARR_COUNT_CAP, M_ARR_PAST_EOF,
    M_ARR_STR_PAST_EOF, M_STR_PAST_EOF, M_DUP_KEY, M_ALIGN_U64, M_ALIGN_ZERO, M_ALIGN_NPOT,
    M_NAME_EMPTY, M_NAME_64, M_NAME_NUL, M_DUP_TENSOR, M_NDIMS_5, M_DIM_NEG, M_DIM_ZERO,
    M_NEL_OVERFLOW, M_BYTES_OVERFLOW, M_TYPE_UNKNOWN, M_TYPE_HUGE, M_TYPE_REMOVED,
    M_BLOCK_MISMATCH, M_OFF_UNALIGNED, M_OFF_PAST_EOF, M_DATA_PAST_EOF, M_OVERLAP,
    M_NO_DATA, M_INFO_TRUNC, M_NT_TOO_MANY, M_ARR_STR_OVER_1G, M_ARR_STR_COUNT, M_COUNT
};

static const struct { const char *name, *needle; } k_mut[M_COUNT] = {
    [M_NONE] = { "valid", NULL },
    [M_MAGIC] = { "bad magic", "not a GGUF file" },
    [M_V1] = { "version 1", "version 1" },
    [M_V4] = { "version 4", "unsupported GGUF version 4" },
    [M_BIGENDIAN] = { "big-endian file", "big-endian" },
    [M_NKV_HUGE] = { "kv count 2^62", "metadata count" },
    [M_NKV_NEG] = { "kv count -1", "metadata count" },
    [M_NT_HUGE] = { "tensor count 2^40", "tensor count" },
    [M_KEY_EMPTY] = { "empty key", "empty key" },
    [M_KEY_LONG] = { "key of 65536 bytes", "exceeds 65535" },
    [M_KEY_NONASCII] = { "non-ASCII key", "ASCII" },
    [M_KEY_NUL] = { "NUL inside key", "0x00" },
    [M_KEY_PAST_EOF] = { "key length past end of file", "truncated" },
    [M_STR_OVER_1G] = { "string length over 1 GiB", "1 GiB" },
    [M_VTYPE_13] = { "value type 13", "invalid value type id 13" },
    [M_VTYPE_NEG] = { "value type -1", "invalid value type id" },
    [M_ARR_NESTED] = { "array of arrays", "nested arrays" },
    [M_ARR_ETYPE] = { "array element type 77", "invalid array element type id 77" },
    [M_ARR_COUNT_CAP] = { "array count 2^31", "2^30" },
    [M_ARR_PAST_EOF] = { "array data past end of file", "truncated" },
    [M_ARR_STR_PAST_EOF] = { "string array element past end of file", "element" },
    [M_STR_PAST_EOF] = { "string value past end of file", "truncated" },
    [M_DUP_KEY] = { "duplicate key", "duplicate metadata key 't.u32'" },
    [M_ALIGN_U64] = { "general.alignment as u64", "expected u32" },
    [M_ALIGN_ZERO] = { "general.alignment 0", "power of two" },
    [M_ALIGN_NPOT] = { "general.alignment 48", "power of two" },
    [M_NAME_EMPTY] = { "empty tensor name", "empty name" },
    [M_NAME_64] = { "tensor name of 64 bytes", "too long" },
    [M_NAME_NUL] = { "NUL in tensor name", "NUL" },
    [M_DUP_TENSOR] = { "duplicate tensor name", "duplicate tensor name 'a'" },
    [M_NDIMS_5] = { "5 dimensions", "5 dimensions" },
    [M_DIM_NEG] = { "negative dimension", "negative" },
    [M_DIM_ZERO] = { "zero dimension", "zero" },
    [M_NEL_OVERFLOW] = { "element count overflow", "element count overflows" },
    [M_BYTES_OVERFLOW] = { "byte size overflow", "byte size overflows" },
    [M_TYPE_UNKNOWN] = { "tensor type id 43", "unknown ggml type id 43" },
    [M_TYPE_HUGE] = { "tensor type id 0xffffffff", "unknown ggml type id" },
    [M_TYPE_REMOVED] = { "removed tensor type 4", "removed" },
    [M_BLOCK_MISMATCH] = { "ne0 not a multiple of the block", "not a multiple of the Q8_0 block" },
    [M_OFF_UNALIGNED] = { "unaligned offset", "not a multiple of the alignment" },
    [M_OFF_PAST_EOF] = { "offset past end of file", "outside the file" },
    [M_DATA_PAST_EOF] = { "last tensor's data cut short", "outside the file" },
    [M_OVERLAP] = { "overlapping tensors", "overlaps" },
    [M_NO_DATA] = { "file ends after the tensor infos", "data section" },
    [M_INFO_TRUNC] = { "file ends inside a tensor info", "truncated" },
    [M_NT_TOO_MANY] = { "more tensors than infos present", "truncated" },
    [M_ARR_STR_OVER_1G] = { "string array element over 1 GiB", "element 1 of 3: string length 1073741825" },
    [M_ARR_STR_COUNT] = { "string array count beyond the file", "needs at least" },
};

/* Tensors of the base file: a F32 {8,4} (128 B), b Q8_0 {64,2} (136 B),
 * c F16 {16,2} (64 B, last, so the file ends exactly at its end). */
#define BASE_NT 3
#define BASE_NKV 9

static void put_kv_str(Buf *b, const char *k, const char *v) { put_str(b, k); put_u32(b, MS_GGUF_STRING); put_str(b, v); }

static void build(Buf *b, int m, uint32_t version)
{
    b->n = 0;
    uint64_t align = m == M_ALIGN_NPOT || m == M_ALIGN_ZERO || m == M_ALIGN_U64 ? 32 : 64;
    put(b, m == M_MAGIC ? "GGML" : "GGUF", 4);
    put_u32(b, m == M_V1 ? 1 : m == M_V4 ? 4 : m == M_BIGENDIAN ? 0x03000000u : version);
    put_u64(b, m == M_NT_HUGE ? (uint64_t)1 << 40 : m == M_NT_TOO_MANY ? BASE_NT + 1 : BASE_NT);
    put_u64(b, m == M_NKV_HUGE ? (uint64_t)1 << 62 : m == M_NKV_NEG ? UINT64_MAX
             : (uint64_t)BASE_NKV + (m == M_DUP_KEY || m == M_STR_PAST_EOF));

    /* 1: architecture string */
    if (m == M_KEY_EMPTY) put_kv_str(b, "", "test");
    else if (m == M_KEY_NONASCII) put_kv_str(b, "general.arch\xc3\xa9", "test");
    else if (m == M_KEY_NUL) { put_u64(b, 5); put(b, "ab\0cd", 5); put_u32(b, MS_GGUF_STRING); put_str(b, "test"); }
    else if (m == M_KEY_LONG) {
        char *k = malloc(65537);
        memset(k, 'k', 65536);
        k[65536] = '\0';
        put_kv_str(b, k, "test");
        free(k);
    } else if (m == M_KEY_PAST_EOF) { put_u64(b, 1u << 24); put(b, "general.architecture", 20); }
    else if (m == M_STR_OVER_1G) { put_str(b, "general.architecture"); put_u32(b, MS_GGUF_STRING); put_u64(b, ((uint64_t)1 << 30) + 1); }
    else put_kv_str(b, "general.architecture", "test");

    /* 2: alignment */
    put_str(b, "general.alignment");
    if (m == M_ALIGN_U64) { put_u32(b, MS_GGUF_UINT64); put_u64(b, 32); }
    else { put_u32(b, MS_GGUF_UINT32); put_u32(b, m == M_ALIGN_ZERO ? 0 : m == M_ALIGN_NPOT ? 48 : (uint32_t)align); }

    /* 3: scalars */
    put_str(b, "t.u32");
    put_u32(b, m == M_VTYPE_13 ? 13 : m == M_VTYPE_NEG ? 0xffffffffu : MS_GGUF_UINT32);
    put_u32(b, 4000000000u);
    if (m == M_DUP_KEY) { put_str(b, "t.u32"); put_u32(b, MS_GGUF_UINT32); put_u32(b, 7); }
    put_str(b, "t.i8"); put_u32(b, MS_GGUF_INT8); put_u8(b, (uint8_t)-5);
    put_str(b, "t.i16"); put_u32(b, MS_GGUF_INT16); { int16_t v = -30000; put(b, &v, 2); }
    put_str(b, "t.u64"); put_u32(b, MS_GGUF_UINT64); put_u64(b, (uint64_t)1 << 40);
    put_str(b, "t.f64"); put_u32(b, MS_GGUF_FLOAT64); { double v = 0.1; put(b, &v, 8); }

    /* 8: numeric array */
    put_str(b, "t.arr_i16");
    put_u32(b, MS_GGUF_ARRAY);
    put_u32(b, m == M_ARR_NESTED ? MS_GGUF_ARRAY : m == M_ARR_ETYPE ? 77 : MS_GGUF_INT16);
    put_u64(b, m == M_ARR_COUNT_CAP ? (uint64_t)1 << 31 : m == M_ARR_PAST_EOF ? (uint64_t)1 << 29 : 3);
    { int16_t v[3] = { -1, 2, 32767 }; put(b, v, 6); }

    /* 9: string array */
    put_str(b, "t.arr_str");
    put_u32(b, MS_GGUF_ARRAY);
    put_u32(b, MS_GGUF_STRING);
    put_u64(b, m == M_ARR_STR_COUNT ? (uint64_t)1 << 28 : 3);
    put_str(b, "alpha");
    if (m == M_ARR_STR_OVER_1G) put_u64(b, ((uint64_t)1 << 30) + 1);
    else put_str(b, "");
    if (m == M_ARR_STR_PAST_EOF) { put_u64(b, 1u << 20); put(b, "gam", 3); }
    else put_str(b, "gamma");
    if (m == M_STR_PAST_EOF) {
        /* a final string pair whose value claims more than the file holds */
        put_str(b, "t.late"); put_u32(b, MS_GGUF_STRING); put_u64(b, 1u << 20); put(b, "xy", 2);
    }

    /* tensor infos */
    struct { const char *name; uint32_t nd; uint64_t ne[5]; uint32_t type; uint64_t off; } ti[BASE_NT] = {
        { "a", 2, { 8, 4 }, MS_TYPE_F32, 0 },
        { "b", 2, { 64, 2 }, MS_TYPE_Q8_0, 0 },
        { "c", 2, { 16, 2 }, MS_TYPE_F16, 0 },
    };
    uint64_t nb[BASE_NT] = { 128, 136, 64 };
    uint64_t off = 0;
    for (int i = 0; i < BASE_NT; i++) {
        ti[i].off = off;
        off += (nb[i] + align - 1) / align * align;
    }
    switch (m) {
    case M_NAME_EMPTY: ti[1].name = ""; break;
    case M_NAME_64: ti[1].name = "n123456789012345678901234567890123456789012345678901234567890123"; break;
    case M_DUP_TENSOR: ti[2].name = "a"; break;
    case M_NDIMS_5: ti[0].nd = 5; ti[0].ne[2] = ti[0].ne[3] = ti[0].ne[4] = 1; break;
    case M_DIM_NEG: ti[0].ne[1] = (uint64_t)-4; break;
    case M_DIM_ZERO: ti[0].ne[1] = 0; break;
    case M_NEL_OVERFLOW: ti[0].nd = 3; ti[0].ne[0] = 8; ti[0].ne[1] = (uint64_t)1 << 32; ti[0].ne[2] = (uint64_t)1 << 32; break;
    case M_BYTES_OVERFLOW: ti[0].ne[0] = (uint64_t)1 << 61; ti[0].ne[1] = 2; break;
    case M_TYPE_UNKNOWN: ti[2].type = MS_TYPE_COUNT; break;
    case M_TYPE_HUGE: ti[2].type = 0xffffffffu; break;
    case M_TYPE_REMOVED: ti[2].type = 4; break;
    case M_BLOCK_MISMATCH: ti[1].ne[0] = 33; ti[1].ne[1] = 1; break;
    case M_OFF_UNALIGNED: ti[1].off += 4; break;
    case M_OFF_PAST_EOF: ti[2].off = (uint64_t)1 << 40; break;
    case M_OVERLAP: ti[2].off = ti[1].off; break;
    default: break;
    }
    for (int i = 0; i < BASE_NT; i++) {
        if (m == M_NAME_NUL && i == 1) { put_u64(b, 3); put(b, "b\0x", 3); }
        else put_str(b, ti[i].name);
        put_u32(b, ti[i].nd);
        for (uint32_t d = 0; d < ti[i].nd; d++) put_u64(b, ti[i].ne[d]);
        put_u32(b, ti[i].type);
        put_u64(b, ti[i].off);
        if (m == M_INFO_TRUNC && i == 1) return;
    }
    if (m == M_NO_DATA || m == M_NT_TOO_MANY) return;
    put_pad(b, align);
    /* data: a = 0..31 as f32, b = Q8_0 blocks, c = f16 of small ints */
    for (int i = 0; i < 32; i++) { float f = (float)i; put(b, &f, 4); }
    put_pad(b, align);
    for (int i = 0; i < 4; i++) {
        put_u8(b, 0x00); put_u8(b, 0x3c);           /* d = 1.0 */
        for (int j = 0; j < 32; j++) put_u8(b, (uint8_t)(j - 16));
    }
    put_pad(b, align);
    for (int i = 0; i < 32; i++) { uint16_t h = ms_fp32_to_fp16((float)i); put(b, &h, 2); }
    if (m == M_DATA_PAST_EOF) b->n -= 2;
}

/* ---------------------------------------------------------------- tests */

static void test_builder_roundtrip(const char *dir)
{
    char path[512];
    Buf b = { 0 };
    for (uint32_t ver = 2; ver <= 3; ver++) {
        snprintf(path, sizeof path, "%s/raw-v%u.gguf", dir, ver);
        build(&b, M_NONE, ver);
        write_bytes(path, b.p, b.n);
        MsError err = { 0 };
        MsGguf *g = ms_gguf_open(path, &err);
        MT_CHECK(g != NULL, "hand-built v%u file opens (%s)", ver, g ? "ok" : err.msg);
        if (!g) continue;
        MT_CHECK(ms_gguf_version(g) == ver, "version %u reported", ver);
        MT_CHECK(ms_gguf_file_size(g) == b.n, "file size %zu", b.n);
        MT_CHECK(ms_gguf_alignment(g) == 64, "general.alignment 64 honoured");
        MT_CHECK(!strcmp(ms_gguf_path(g), path), "path kept");
        MT_CHECK(ms_gguf_n_kv(g) == BASE_NKV && ms_gguf_n_tensors(g) == BASE_NT, "counts %" PRId64 "/%" PRId64,
                 ms_gguf_n_kv(g), ms_gguf_n_tensors(g));
        if (ver != 3) { ms_gguf_free(g); continue; }

        int64_t v;
        uint32_t u;
        float f;
        bool bo;
        MT_CHECK(ms_gguf_get_u32(g, "t.u32", &u, &err) == 0 && u == 4000000000u, "u32 4e9");
        MT_CHECK(ms_gguf_get_i64(g, "t.i8", &v, &err) == 0 && v == -5, "i8 -5");
        MT_CHECK(ms_gguf_get_i64(g, "t.i16", &v, &err) == 0 && v == -30000, "i16 -30000");
        MT_CHECK(ms_gguf_get_i64(g, "t.u64", &v, &err) == 0 && v == (int64_t)1 << 40, "u64 2^40");
        MT_CHECK(ms_gguf_get_f32(g, "t.f64", &f, &err) == 0 && f == 0.1f, "f64 read as f32");
        MT_CHECK(ms_gguf_get_f32(g, "t.i16", &f, &err) == 0 && f == -30000.0f, "integer read as f32");
        MT_CHECK(ms_gguf_kv_type(g, ms_gguf_find_kv(g, "t.i8")) == MS_GGUF_INT8, "kv type i8");
        MT_CHECK(ms_gguf_kv_type(g, ms_gguf_find_kv(g, "t.f64")) == MS_GGUF_FLOAT64, "kv type f64");

        /* range and type errors name the file and the key */
        ms_error_clear(&err);
        int rc = ms_gguf_get_u32(g, "t.i8", &u, &err);
        MT_CHECK(rc == MS_EFORMAT && strstr(err.msg, path) && strstr(err.msg, "t.i8"), "negative i8 as u32 rejected: %s", err.msg);
        rc = ms_gguf_get_u32(g, "t.u64", &u, &err);
        MT_CHECK(rc == MS_EFORMAT && strstr(err.msg, "t.u64"), "2^40 as u32 rejected");
        rc = ms_gguf_get_bool(g, "t.u32", &bo, &err);
        MT_CHECK(rc == MS_EFORMAT, "4e9 as bool rejected");
        const char *s;
        uint64_t n;
        rc = ms_gguf_get_str(g, "t.u32", &s, &n, &err);
        MT_CHECK(rc == MS_EFORMAT && strstr(err.msg, "expected string"), "u32 as string rejected: %s", err.msg);
        MsGgufArray a;
        rc = ms_gguf_get_arr(g, "general.architecture", &a, &err);
        MT_CHECK(rc == MS_EFORMAT, "string as array rejected");
        rc = ms_gguf_get_i64(g, "t.arr_i16", &v, &err);
        MT_CHECK(rc == MS_EFORMAT && strstr(err.msg, "array"), "array as integer rejected: %s", err.msg);
        MsError untouched = { 0 };
        rc = ms_gguf_get_u32(g, "no.such.key", &u, &untouched);
        MT_CHECK(rc == MS_ENOTFOUND && untouched.code == 0 && !untouched.msg[0], "missing key: MS_ENOTFOUND, err untouched");

        rc = ms_gguf_get_arr(g, "t.arr_i16", &a, &err);
        MT_CHECK(rc == 0 && a.elem_type == MS_GGUF_INT16 && a.n == 3 &&
                 ms_gguf_arr_i64(&a, 0) == -1 && ms_gguf_arr_i64(&a, 2) == 32767 &&
                 ms_gguf_arr_f64(&a, 1) == 2.0, "i16 array");
        rc = ms_gguf_get_arr(g, "t.arr_str", &a, &err);
        MT_CHECK(rc == 0 && a.elem_type == MS_GGUF_STRING && a.n == 3, "string array");
        if (rc == 0 && a.n == 3) {
            ms_gguf_arr_str(&a, 0, &s, &n);
            MT_CHECK(n == 5 && !memcmp(s, "alpha", 5), "string array [0]");
            ms_gguf_arr_str(&a, 1, &s, &n);
            MT_CHECK(n == 0, "string array [1] empty");
            ms_gguf_arr_str(&a, 2, &s, &n);
            MT_CHECK(n == 5 && !memcmp(s, "gamma", 5), "string array [2]");
        }

        const MsGgufTensor *ta = ms_gguf_find_tensor(g, "a"), *tb = ms_gguf_find_tensor(g, "b"),
                           *tc = ms_gguf_find_tensor(g, "c");
        MT_CHECK(ta && tb && tc && !ms_gguf_find_tensor(g, "d"), "tensor lookup");
        if (ta && tb && tc) {
            MT_CHECK(ta->n_dims == 2 && ta->ne[0] == 8 && ta->ne[1] == 4 && ta->ne[2] == 1 && ta->ne[3] == 1 &&
                     ta->type == MS_TYPE_F32 && ta->nbytes == 128 && ta->offset == 0, "tensor a info");
            MT_CHECK(tb->type == MS_TYPE_Q8_0 && tb->nbytes == 136 && tb->offset == 128, "tensor b info");
            MT_CHECK(tc->type == MS_TYPE_F16 && tc->nbytes == 64 && tc->offset == 320, "tensor c info");
            float f31;
            memcpy(&f31, (const uint8_t *)ta->data + 31 * 4, 4);
            MT_CHECK(f31 == 31.0f, "tensor a data");
            const uint8_t *pb = tb->data;
            MT_CHECK(pb[1] == 0x3c && (int8_t)pb[2] == -16 && (int8_t)pb[33] == 15, "tensor b data");
            uint16_t h;
            memcpy(&h, (const uint8_t *)tc->data + 62, 2);
            MT_CHECK(ms_fp16_to_fp32(h) == 31.0f, "tensor c data");
            MT_CHECK(((const uint8_t *)ta->data - (const uint8_t *)tc->data) == -320, "tensor data pointers follow offsets");
        }
        MT_CHECK(ms_gguf_tensor(g, -1) == NULL && ms_gguf_tensor(g, 3) == NULL && ms_gguf_kv_key(g, 99) == NULL,
                 "out-of-range indices give NULL");
        ms_gguf_free(g);
    }
    free(b.p);
}

static void test_malformed(const char *dir)
{
    char path[512];
    Buf b = { 0 };
    for (int m = 1; m < M_COUNT; m++) {
        snprintf(path, sizeof path, "%s/bad-%02d.gguf", dir, m);
        build(&b, m, 3);
        write_bytes(path, b.p, b.n);
        char seed[64];
        snprintf(seed, sizeof seed, "container-bad-%02d.gguf", m);
        mt_seed("gguf", seed, path);
        MsError err = { 0 };
        MsGguf *g = ms_gguf_open(path, &err);
        MT_CHECK(g == NULL && good_failure(&err, path) && strstr(err.msg, k_mut[m].needle),
                 "malformed: %s -> %s", k_mut[m].name, g ? "accepted!" : err.msg);
        ms_gguf_free(g);
    }
    free(b.p);

    /* file-system level failures */
    struct { const char *what; const char *needle; } fs[] = {
        { "nonexistent file", "No such file" },
        { "directory", "directory" },
        { "empty file", "empty" },
        { "file shorter than the header", "shorter than" },
        { "FIFO (must not hang)", "regular" },
        { "GGUF magic only", "shorter than" },
    };
    for (size_t i = 0; i < MS_ARRAY_LEN(fs); i++) {
        snprintf(path, sizeof path, "%s/fs-%zu.gguf", dir, i);
        if (i == 1) mkdir(path, 0700);
        if (i == 2) write_bytes(path, "", 0);
        if (i == 3) write_bytes(path, "GGUF\3\0\0\0\0\0\0\0\0\0\0\0", 16);
        if (i == 4) mkfifo(path, 0600);
        if (i == 5) write_bytes(path, "GGUF", 4);
        MsError err = { 0 };
        MsGguf *g = ms_gguf_open(path, &err);
        MT_CHECK(g == NULL && good_failure(&err, path) && strstr(err.msg, fs[i].needle),
                 "malformed: %s -> %s", fs[i].what, g ? "accepted!" : err.msg);
        ms_gguf_free(g);
    }
    MsError err = { 0 };
    MT_CHECK(ms_gguf_open(NULL, &err) == NULL && err.code < 0, "NULL path rejected");
    MT_CHECK(ms_gguf_open("/nonexistent/x.gguf", NULL) == NULL, "NULL error sink accepted");
    ms_gguf_free(NULL);
}

/* A file made by the writer, with every setter, several tensor types and a
 * data layout whose last tensor ends exactly at the end of the file. */
typedef struct {
    uint8_t f32[4 * 16 * 3];
    uint8_t q4k[144 * 2];
    uint8_t bf16[2 * 32];
} WData;

static int write_sample(const char *path, WData *d, uint32_t align, MsError *err)
{
    for (size_t i = 0; i < sizeof d->f32; i++) d->f32[i] = (uint8_t)(i * 7 + 1);
    for (size_t i = 0; i < sizeof d->q4k; i++) d->q4k[i] = (uint8_t)(i * 13 + 5);
    for (size_t i = 0; i < sizeof d->bf16; i++) d->bf16[i] = (uint8_t)(i * 3 + 2);
    MsGgufWriter *w = ms_gguf_writer_new(path, err);
    if (!w) return err->code;
    static const char *const toks[] = { "<s>", "", "hello", "\xe4\xb8\xad\xe6\x96\x87", "a b" };
    const float fa[4] = { 1.5f, -2.0f, 0.0f, 3.25f };
    const int32_t ia[3] = { -7, 0, 2147483647 };
    const uint8_t ua[2] = { 0, 255 };
    const double da[2] = { 1e300, -0.5 };
    const uint64_t qa[2] = { 0, UINT64_MAX };
    ms_gguf_writer_set_str(w, "general.architecture", "olmoe");
    if (align) ms_gguf_writer_set_u32(w, "general.alignment", align);
    ms_gguf_writer_set_u32(w, "w.u32", 123456789u);
    ms_gguf_writer_set_i32(w, "w.i32", -42);
    ms_gguf_writer_set_u64(w, "w.u64", 0xfedcba9876543210ull);
    ms_gguf_writer_set_f32(w, "w.f32", 1e-6f);
    ms_gguf_writer_set_bool(w, "w.bool", true);
    ms_gguf_writer_set_bool(w, "w.false", false);
    ms_gguf_writer_set_str(w, "w.empty", "");
    ms_gguf_writer_set_arr(w, "w.arr_f32", MS_GGUF_FLOAT32, fa, 4);
    ms_gguf_writer_set_arr(w, "w.arr_i32", MS_GGUF_INT32, ia, 3);
    ms_gguf_writer_set_arr(w, "w.arr_u8", MS_GGUF_UINT8, ua, 2);
    ms_gguf_writer_set_arr(w, "w.arr_f64", MS_GGUF_FLOAT64, da, 2);
    ms_gguf_writer_set_arr(w, "w.arr_u64", MS_GGUF_UINT64, qa, 2);
    ms_gguf_writer_set_arr(w, "w.arr_empty", MS_GGUF_INT32, NULL, 0);
    ms_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, 5);
    const int64_t ne_a[3] = { 16, 3, 1 }, ne_b[2] = { 256, 2 }, ne_c[1] = { 32 };
    ms_gguf_writer_add_tensor(w, "blk.0.a.weight", MS_TYPE_F32, 3, ne_a);
    ms_gguf_writer_add_tensor(w, "blk.0.b.weight", MS_TYPE_Q4_K, 2, ne_b);
    ms_gguf_writer_add_tensor(w, "c", MS_TYPE_BF16, 1, ne_c);
    ms_gguf_writer_write_header(w);
    ms_gguf_writer_write_tensor_data(w, d->f32, sizeof d->f32);
    ms_gguf_writer_write_tensor_data(w, d->q4k, sizeof d->q4k);
    ms_gguf_writer_write_tensor_data(w, d->bf16, sizeof d->bf16);
    int rc = ms_gguf_writer_finish(w, err);
    ms_gguf_writer_free(w);
    return rc;
}

static bool layout_plausible(const MsGguf *g);

static void test_writer_roundtrip(const char *dir, char *sample_path, size_t cap)
{
    static WData d;
    const uint32_t aligns[2] = { 0, 128 };
    for (int k = 0; k < 2; k++) {
        char path[512];
        snprintf(path, sizeof path, "%s/writer-%u.gguf", dir, aligns[k]);
        if (k == 0) snprintf(sample_path, cap, "%s", path);
        MsError err = { 0 };
        int rc = write_sample(path, &d, aligns[k], &err);
        MT_CHECK(rc == 0, "writer (alignment %u) finishes: %s", aligns[k], rc ? err.msg : "ok");
        char seed[64];
        snprintf(seed, sizeof seed, "container-sample-%u.gguf", aligns[k]);
        mt_seed("gguf", seed, path);
        MsGguf *g = ms_gguf_open(path, &err);
        MT_CHECK(g != NULL, "writer output opens: %s", g ? "ok" : err.msg);
        if (!g) continue;
        uint32_t A = aligns[k] ? aligns[k] : 32;
        MT_CHECK(ms_gguf_version(g) == 3 && ms_gguf_alignment(g) == A, "v3, alignment %u", A);
        MT_CHECK(ms_gguf_n_kv(g) == 15 + (aligns[k] != 0) && ms_gguf_n_tensors(g) == 3, "kv/tensor counts");
        MT_CHECK(!strcmp(ms_gguf_kv_key(g, 0), "general.architecture"), "keys in insertion order");

        const char *s;
        uint64_t n;
        uint32_t u;
        int64_t v;
        float f;
        bool bo;
        MT_CHECK(ms_gguf_get_str(g, "general.architecture", &s, &n, &err) == 0 && n == 5 && !memcmp(s, "olmoe", 5), "str");
        MT_CHECK(ms_gguf_get_str(g, "w.empty", &s, &n, &err) == 0 && n == 0, "empty str");
        MT_CHECK(ms_gguf_get_u32(g, "w.u32", &u, &err) == 0 && u == 123456789u, "u32");
        MT_CHECK(ms_gguf_get_i64(g, "w.i32", &v, &err) == 0 && v == -42, "i32");
        MT_CHECK(ms_gguf_kv_type(g, ms_gguf_find_kv(g, "w.u64")) == MS_GGUF_UINT64 &&
                 ms_gguf_get_i64(g, "w.u64", &v, &err) == MS_EFORMAT, "u64 beyond i64 range is a range error");
        MT_CHECK(ms_gguf_get_f32(g, "w.f32", &f, &err) == 0 && f == 1e-6f, "f32");
        MT_CHECK(ms_gguf_get_bool(g, "w.bool", &bo, &err) == 0 && bo, "bool true");
        MT_CHECK(ms_gguf_get_bool(g, "w.false", &bo, &err) == 0 && !bo, "bool false");
        MT_CHECK(ms_gguf_get_u32(g, "w.bool", &u, &err) == 0 && u == 1, "bool as integer");
        MsGgufArray a;
        MT_CHECK(ms_gguf_get_arr(g, "w.arr_f32", &a, &err) == 0 && a.elem_type == MS_GGUF_FLOAT32 && a.n == 4 &&
                 ms_gguf_arr_f64(&a, 0) == 1.5 && ms_gguf_arr_f64(&a, 3) == 3.25, "f32 array");
        MT_CHECK(ms_gguf_get_arr(g, "w.arr_i32", &a, &err) == 0 && a.n == 3 && ms_gguf_arr_i64(&a, 0) == -7 &&
                 ms_gguf_arr_i64(&a, 2) == 2147483647, "i32 array");
        MT_CHECK(ms_gguf_get_arr(g, "w.arr_u8", &a, &err) == 0 && a.n == 2 && ms_gguf_arr_i64(&a, 1) == 255, "u8 array");
        MT_CHECK(ms_gguf_get_arr(g, "w.arr_f64", &a, &err) == 0 && a.n == 2 && ms_gguf_arr_f64(&a, 0) == 1e300 &&
                 ms_gguf_arr_f64(&a, 1) == -0.5, "f64 array");
        MT_CHECK(ms_gguf_get_arr(g, "w.arr_u64", &a, &err) == 0 && a.n == 2 && ms_gguf_arr_f64(&a, 1) == 18446744073709551615.0,
                 "u64 array");
        MT_CHECK(ms_gguf_get_arr(g, "w.arr_empty", &a, &err) == 0 && a.n == 0 && a.elem_type == MS_GGUF_INT32, "empty array");
        MT_CHECK(ms_gguf_get_arr(g, "tokenizer.ggml.tokens", &a, &err) == 0 && a.n == 5 && a.str_off, "string array");
        if (a.n == 5) {
            ms_gguf_arr_str(&a, 3, &s, &n);
            MT_CHECK(n == 6 && !memcmp(s, "\xe4\xb8\xad\xe6\x96\x87", 6), "UTF-8 string element");
            ms_gguf_arr_str(&a, 4, &s, &n);
            MT_CHECK(n == 3 && !memcmp(s, "a b", 3), "last string element");
        }

        const MsGgufTensor *t0 = ms_gguf_tensor(g, 0), *t1 = ms_gguf_tensor(g, 1), *t2 = ms_gguf_tensor(g, 2);
        MT_CHECK(t0 && !strcmp(t0->name, "blk.0.a.weight") && t0->n_dims == 3 && t0->ne[0] == 16 && t0->ne[1] == 3 &&
                 t0->ne[2] == 1 && t0->nbytes == sizeof d.f32 && !memcmp(t0->data, d.f32, sizeof d.f32), "tensor 0 round trip");
        MT_CHECK(t1 && t1->type == MS_TYPE_Q4_K && t1->nbytes == sizeof d.q4k && t1->offset % A == 0 &&
                 !memcmp(t1->data, d.q4k, sizeof d.q4k), "tensor 1 (Q4_K) round trip");
        MT_CHECK(t2 && t2->type == MS_TYPE_BF16 && t2->n_dims == 1 && t2->ne[1] == 1 && t2->nbytes == sizeof d.bf16 &&
                 !memcmp(t2->data, d.bf16, sizeof d.bf16), "tensor 2 (BF16) round trip");
        const uint8_t *base = (const uint8_t *)t0->data - t0->offset;
        MT_CHECK((uint64_t)((const uint8_t *)t2->data + t2->nbytes - base) <= ms_gguf_file_size(g) &&
                 ms_gguf_file_size(g) % A == 0, "data section padded to the alignment");
        MT_CHECK(layout_plausible(g), "writer packs tensors back to back in order, as llama.cpp requires");
        ms_gguf_free(g);
    }

    /* writer misuse is reported, and the unfinished file removed */
    char path[512];
    snprintf(path, sizeof path, "%s/misuse.gguf", dir);
    MsError err = { 0 };
    MsGgufWriter *w = ms_gguf_writer_new(path, &err);
    const int64_t ne[2] = { 33, 1 }, ne_ok[1] = { 4 };
    MT_CHECK(ms_gguf_writer_set_u32(w, "k", 1) == 0 && ms_gguf_writer_set_u32(w, "k", 2) == MS_EINVAL, "writer: duplicate key");
    ms_gguf_writer_free(w);
    MT_CHECK(access(path, F_OK) != 0, "writer: unfinished file removed by free");
    w = ms_gguf_writer_new(path, &err);
    MT_CHECK(ms_gguf_writer_add_tensor(w, "q", MS_TYPE_Q8_0, 2, ne) == MS_EINVAL, "writer: ne0 not a multiple of the block");
    ms_gguf_writer_free(w);
    w = ms_gguf_writer_new(path, &err);
    MT_CHECK(ms_gguf_writer_set_u32(w, "general.alignment", 24) == MS_EINVAL, "writer: bad alignment");
    ms_gguf_writer_free(w);
    w = ms_gguf_writer_new(path, &err);
    MT_CHECK(ms_gguf_writer_set_u64(w, "general.alignment", 64) == MS_EINVAL, "writer: alignment must be u32");
    ms_gguf_writer_free(w);
    w = ms_gguf_writer_new(path, &err);
    MT_CHECK(ms_gguf_writer_add_tensor(w, "x", 4, 1, ne_ok) == MS_EINVAL, "writer: removed type refused");
    ms_gguf_writer_free(w);
    w = ms_gguf_writer_new(path, &err);
    ms_gguf_writer_add_tensor(w, "x", MS_TYPE_F32, 1, ne_ok);
    ms_gguf_writer_write_header(w);
    float four[4] = { 0 };
    MT_CHECK(ms_gguf_writer_write_tensor_data(w, four, 8) == MS_EINVAL, "writer: wrong data size");
    ms_error_clear(&err);
    MT_CHECK(ms_gguf_writer_finish(w, &err) == MS_EINVAL && strstr(err.msg, path) && access(path, F_OK) != 0,
             "writer: finish reports the first error and removes the file: %s", err.msg);
    ms_gguf_writer_free(w);
    w = ms_gguf_writer_new(path, &err);
    ms_gguf_writer_add_tensor(w, "x", MS_TYPE_F32, 1, ne_ok);
    ms_gguf_writer_write_header(w);
    ms_error_clear(&err);
    MT_CHECK(ms_gguf_writer_finish(w, &err) == MS_EINVAL && strstr(err.msg, "0 of 1"), "writer: missing tensor data: %s", err.msg);
    ms_gguf_writer_free(w);
    snprintf(path, sizeof path, "%s/no-such-dir/x.gguf", dir);
    MT_CHECK(ms_gguf_writer_new(path, &err) == NULL && err.code == MS_EIO && strstr(err.msg, path), "writer: unwritable path");
    ms_gguf_writer_free(NULL);
}

/* Types we cannot compute with but whose layout is known (GGUF-MOE.md 2:
 * IQ4_NL 32 elements / 18 bytes, MXFP4 32 / 17) pass the container checks;
 * model.c rejects them by name. */
static void test_layout_only_types(const char *dir)
{
    char path[512];
    snprintf(path, sizeof path, "%s/layout-only.gguf", dir);
    MsError err = { 0 };
    MsGgufWriter *w = ms_gguf_writer_new(path, &err);
    const int64_t ne_a[2] = { 64, 3 }, ne_b[1] = { 32 };
    static uint8_t zero[128];
    ms_gguf_writer_add_tensor(w, "mx", 39, 2, ne_a);
    ms_gguf_writer_add_tensor(w, "iq", 20, 1, ne_b);
    ms_gguf_writer_write_header(w);
    ms_gguf_writer_write_tensor_data(w, zero, 2 * 17 * 3);
    ms_gguf_writer_write_tensor_data(w, zero, 18);
    int rc = ms_gguf_writer_finish(w, &err);
    ms_gguf_writer_free(w);
    MsGguf *g = rc == 0 ? ms_gguf_open(path, &err) : NULL;
    const MsGgufTensor *mx = ms_gguf_find_tensor(g, "mx"), *iq = ms_gguf_find_tensor(g, "iq");
    MT_CHECK(g && mx && iq && mx->type == 39 && mx->nbytes == 102 && iq->type == 20 && iq->nbytes == 18,
             "MXFP4 and IQ4_NL tensors accepted with their block sizes: %s", g ? "ok" : err.msg);
    ms_gguf_free(g);
}

/* Every proper prefix of a file whose last tensor ends at EOF must fail. */
static void test_truncation(const char *dir, const char *sample)
{
    size_t n;
    uint8_t *full = read_all(sample, &n);
    MT_CHECK(full != NULL, "read sample back");
    if (!full) return;
    /* the sample's last tensor (BF16, 64 bytes) ends at EOF only when no
     * padding follows it: 64 is a multiple of 32 */
    char path[512];
    int fd = mem_file(path, sizeof path);
    MT_CHECK(fd >= 0, "memfd for the sweep");
    if (fd < 0) { free(full); return; }
    int accepted = 0, bad_msgs = 0, tried = 0;
    for (size_t len = 0; len < n; len++) {
        mem_set(fd, full, len);
        MsError err = { 0 };
        MsGguf *g = ms_gguf_open(path, &err);
        tried++;
        if (g) { accepted++; ms_gguf_free(g); }
        else if (!good_failure(&err, path)) { bad_msgs++; if (bad_msgs < 3) mt_diag("bad message at %zu: %s", len, err.msg); }
    }
    MT_CHECK(accepted == 0 && bad_msgs == 0, "truncation sweep: all %d prefixes rejected cleanly (%d accepted, %d bad messages)",
             tried, accepted, bad_msgs);
    mem_set(fd, full, n);
    MsGguf *g = ms_gguf_open(path, NULL);
    MT_CHECK(g != NULL, "full-length copy opens");
    ms_gguf_free(g);
    close(fd);
    free(full);
}

/* Seeded random corruption of the header region: may pass or fail, must not
 * crash, and failures must be well-formed. */
static void test_corruption(const char *dir, const char *sample)
{
    size_t n;
    uint8_t *full = read_all(sample, &n);
    if (!full) { MT_CHECK(0, "read sample"); return; }
    MsGguf *g0 = ms_gguf_open(sample, NULL);
    /* header region = everything before the data section, which ends with
     * the last tensor (no trailing padding in the sample) */
    const MsGgufTensor *last = ms_gguf_tensor(g0, ms_gguf_n_tensors(g0) - 1);
    size_t header = last ? (size_t)(n - (last->offset + last->nbytes)) : n;
    ms_gguf_free(g0);

    char path[512];
    int fd = mem_file(path, sizeof path);
    if (fd < 0) { MT_CHECK(0, "memfd for the corruption sweep"); free(full); return; }
    uint8_t *buf = malloc(n);
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    int ok = 0, failed = 0, bad_msgs = 0;
    uint64_t sink = 0;
    const int variants = 3000;
    for (int it = 0; it < variants; it++) {
        memcpy(buf, full, n);
        int flips = 1 + (int)(rng_next(&seed) % 4);
        for (int k = 0; k < flips; k++) {
            size_t pos = (size_t)(rng_next(&seed) % header);
            uint64_t r = rng_next(&seed);
            /* mix bit flips with "interesting" bytes that hit limits */
            static const uint8_t special[] = { 0x00, 0xff, 0x7f, 0x80, 0x01, 0x40 };
            buf[pos] = (r & 1) ? (uint8_t)(buf[pos] ^ (1u << ((r >> 1) % 8))) : special[(r >> 1) % sizeof special];
        }
        mem_set(fd, buf, n);
        MsError err = { 0 };
        MsGguf *g = ms_gguf_open(path, &err);
        if (g) { ok++; sink += walk(g); ms_gguf_free(g); }
        else { failed++; if (!good_failure(&err, path) && bad_msgs++ < 3) mt_diag("bad message: %s", err.msg); }
    }
    MT_CHECK(bad_msgs == 0 && ok + failed == variants,
             "%d corrupted headers: %d opened and walked, %d rejected cleanly (sink %" PRIu64 ")",
             variants, ok, failed, sink % 10);
    MT_CHECK(failed > variants / 2, "most header corruptions are detected (%d of %d)", failed, variants);
    close(fd);
    free(buf);
    free(full);
}

/* ---------------------------------------------------------------- fixtures */

static const struct { const char *file, *arch; uint64_t bytes; int n_expert, n_layer, n_embd; } k_models[] = {
    /* facts from ../shared/fixtures/README.md */
    { "olmoe-tiny.F32.gguf", "olmoe", 1229152, 16, 2, 64 },
    { "qwen2moe-tiny.F32.gguf", "qwen2moe", 898624, 8, 2, 64 },
    { "qwen2moe-tiny.BF16.gguf", "qwen2moe", 460608, 8, 2, 64 },
    { "qwen2moe-tiny.Q8_0.gguf", "qwen2moe", 255296, 8, 2, 64 },
    { "qwen2moe-tiny.Q4_0.gguf", "qwen2moe", 167776, 8, 2, 64 },
    { "mixtral-256.F16.gguf", "llama", 4532704, 4, 2, 256 },
    { "mixtral-256.Q6_K.gguf", "llama", 1875744, 4, 2, 256 },
    { "mixtral-256.Q5_K_M.gguf", "llama", 1634784, 4, 2, 256 },
    { "mixtral-256.Q4_K_M.gguf", "llama", 1408000, 4, 2, 256 },
    { "granitemoe-tiny.F32.gguf", "granitemoe", 903936, 8, 3, 64 },
    { "deepseek2-tiny.F32.gguf", "deepseek2", 1089952, 8, 3, 64 },
};

static int has_type(const MsGguf *g, int type)
{
    for (int64_t i = 0; i < ms_gguf_n_tensors(g); i++)
        if (ms_gguf_tensor(g, i)->type == type) return 1;
    return 0;
}

/* llama.cpp writes tensors back to back in info order, each padded to the
 * alignment: so with correct byte sizes (ours, from the type table) every
 * tensor starts at the padded end of the previous one. */
static bool layout_plausible(const MsGguf *g)
{
    uint64_t A = ms_gguf_alignment(g), expect = 0;
    const uint8_t *base = NULL;
    for (int64_t i = 0; i < ms_gguf_n_tensors(g); i++) {
        const MsGgufTensor *t = ms_gguf_tensor(g, i);
        if (!base) base = (const uint8_t *)t->data - t->offset;
        if ((const uint8_t *)t->data - t->offset != base || t->offset != expect) {
            mt_diag("tensor %s at %" PRIu64 ", expected %" PRIu64, t->name, t->offset, expect);
            return false;
        }
        expect = t->offset + (t->nbytes + A - 1) / A * A;
    }
    return expect <= ms_gguf_file_size(g);
}

static void test_fixtures(void)
{
    const char *shared = mt_shared_dir();
    if (!shared) {
        mt_skip("fixture models and vocabularies read as fixtures/README.md describes them: %s", mt_shared_absent());
        return;
    }
    char path[1024], key[256];
    for (size_t i = 0; i < MS_ARRAY_LEN(k_models); i++) {
        snprintf(path, sizeof path, "%s/fixtures/models/%s", shared, k_models[i].file);
        MsError err = { 0 };
        MsGguf *g = ms_gguf_open(path, &err);
        MT_CHECK(g != NULL, "fixture %s opens: %s", k_models[i].file, g ? "ok" : err.msg);
        if (!g) continue;
        const char *s;
        uint64_t n;
        uint32_t u;
        int rc = ms_gguf_get_str(g, "general.architecture", &s, &n, &err);
        MT_CHECK(rc == 0 && n == strlen(k_models[i].arch) && !memcmp(s, k_models[i].arch, n) &&
                 ms_gguf_file_size(g) == k_models[i].bytes, "%s: arch %s, %" PRIu64 " bytes", k_models[i].file,
                 k_models[i].arch, k_models[i].bytes);
        snprintf(key, sizeof key, "%s.expert_count", k_models[i].arch);
        bool e_ok = ms_gguf_get_u32(g, key, &u, &err) == 0 && u == (uint32_t)k_models[i].n_expert;
        snprintf(key, sizeof key, "%s.block_count", k_models[i].arch);
        bool l_ok = ms_gguf_get_u32(g, key, &u, &err) == 0 && u == (uint32_t)k_models[i].n_layer;
        snprintf(key, sizeof key, "%s.embedding_length", k_models[i].arch);
        bool d_ok = ms_gguf_get_u32(g, key, &u, &err) == 0 && u == (uint32_t)k_models[i].n_embd;
        MT_CHECK(e_ok && l_ok && d_ok, "%s: expert_count, block_count, embedding_length", k_models[i].file);
        MsGgufArray a;
        const MsGgufTensor *emb = ms_gguf_find_tensor(g, "token_embd.weight");
        MT_CHECK(ms_gguf_get_arr(g, "tokenizer.ggml.tokens", &a, &err) == 0 && a.elem_type == MS_GGUF_STRING &&
                 a.n == 559 && emb && emb->ne[0] == k_models[i].n_embd && emb->ne[1] == 559,
                 "%s: 559 tokens, token_embd {%d, 559}", k_models[i].file, k_models[i].n_embd);
        if (a.n == 559) {
            ms_gguf_arr_str(&a, 556, &s, &n);
            MT_CHECK(n == 13 && !memcmp(s, "<|endoftext|>", 13), "%s: token 556 is <|endoftext|>", k_models[i].file);
        }
        MT_CHECK(ms_gguf_n_tensors(g) > 10 && ms_gguf_n_kv(g) > 15 && layout_plausible(g),
                 "%s: %" PRId64 " tensors, %" PRId64 " keys, tensors packed back to back", k_models[i].file,
                 ms_gguf_n_tensors(g), ms_gguf_n_kv(g));
        const char *f = k_models[i].file;
        int want = strstr(f, ".Q8_0") ? MS_TYPE_Q8_0 : strstr(f, ".Q4_0") ? MS_TYPE_Q4_0 : strstr(f, ".Q6_K") ? MS_TYPE_Q6_K
                 : strstr(f, ".Q5_K_M") ? MS_TYPE_Q5_K : strstr(f, ".Q4_K_M") ? MS_TYPE_Q4_K : strstr(f, ".BF16") ? MS_TYPE_BF16
                 : strstr(f, ".F16") ? MS_TYPE_F16 : MS_TYPE_F32;
        MT_CHECK(has_type(g, want) && has_type(g, MS_TYPE_F32), "%s: has %s and F32 tensors", f, ms_type_name(want));
        if (strstr(f, "granitemoe")) MT_CHECK(!ms_gguf_find_tensor(g, "output.weight"), "granitemoe: tied embeddings, no output.weight");
        if (strstr(f, "olmoe.F32") || strstr(f, "olmoe-tiny.F32")) {
            int nonfinite = 0;
            const float *w = emb ? emb->data : NULL;
            for (int64_t j = 0; w && j < emb->ne[0] * emb->ne[1]; j++) {
                float x;
                memcpy(&x, w + j, 4);
                nonfinite += !isfinite(x);
            }
            MT_CHECK(w && nonfinite == 0, "olmoe token_embd: all %d floats finite", 64 * 559);
        }
        ms_gguf_free(g);
    }

    /* vocabularies: no tensors, one big string array; well-known sizes */
    static const struct { const char *name; uint64_t n_tokens; } known[] = {
        { "gpt-2", 50257 }, { "llama-spm", 32000 }, { "bert-bge", 30522 },
    };
    snprintf(path, sizeof path, "%s/fixtures/vocab", shared);
    DIR *dir = opendir(path);
    int n_vocab = 0;
    struct dirent *de;
    while (dir && (de = readdir(dir))) {
        size_t l = strlen(de->d_name);
        if (l < 5 || strcmp(de->d_name + l - 5, ".gguf")) continue;
        snprintf(path, sizeof path, "%s/fixtures/vocab/%s", shared, de->d_name);
        MsError err = { 0 };
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        MsGguf *g = ms_gguf_open(path, &err);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double ms = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
        MsGgufArray a = { 0 };
        int rc = g ? ms_gguf_get_arr(g, "tokenizer.ggml.tokens", &a, &err) : -1;
        MT_CHECK(g && ms_gguf_n_tensors(g) == 0 && rc == 0 && a.elem_type == MS_GGUF_STRING && a.n > 1000,
                 "vocab %s: opens, no tensors, %" PRIu64 " tokens (%.1f ms)", de->d_name, a.n, ms);
        for (size_t k = 0; k < MS_ARRAY_LEN(known); k++) {
            char want[128];
            snprintf(want, sizeof want, "ggml-vocab-%s.gguf", known[k].name);
            if (!strcmp(de->d_name, want)) MT_CHECK(a.n == known[k].n_tokens, "vocab %s has %" PRIu64 " tokens", known[k].name, known[k].n_tokens);
        }
        if (g) (void)walk(g);
        ms_gguf_free(g);
        n_vocab++;
    }
    if (dir) closedir(dir);
    MT_CHECK(n_vocab == 10, "10 vocabulary files found (%d)", n_vocab);
}

/* The temp dir holds only what this program made: plain files, one FIFO
 * and one empty directory. */
static void remove_tmpdir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char p[1024];
    while (d && (de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        if (unlink(p) != 0) rmdir(p);
    }
    if (d) closedir(d);
    rmdir(dir);
}

int main(void)
{
    const char *dir = mt_tmpdir();
    char sample[512];
    test_builder_roundtrip(dir);
    test_malformed(dir);
    test_writer_roundtrip(dir, sample, sizeof sample);
    test_layout_only_types(dir);
    test_truncation(dir, sample);
    test_corruption(dir, sample);
    test_fixtures();
    remove_tmpdir(dir);
    return mt_done();
}
