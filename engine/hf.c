/* hf.c — Hugging Face checkpoints into an in-memory MsGguf (see hf.h).
 * Name and layout conventions per family follow llama.cpp's converter
 * (convert_hf_to_gguf.py), so the result is what converting the checkpoint
 * with it would give. */
#include "hf.h"

#include <ctype.h>
#include <unistr.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "quant.h"

#define ST_MAX_HEADER ((uint64_t)100 << 20)
#define ST_U8 (-2)   /* StTensor.type of a U8 tensor (not an engine type) */   /* the safetensors format's own limit */
#define HF_MAX_JSON ((off_t)1 << 30)

/* ------------------------------------------------------------------ files */

typedef struct {
    char *name;            /* HF tensor name */
    int type;              /* MS_TYPE_F32 / F16 / BF16, or ST_U8 */
    int nd;
    int64_t shape[4];      /* PyTorch order: slowest first */
    const uint8_t *data;
    uint64_t nbytes;
    int file;              /* index into Hf.files */
    bool used;
} StTensor;

typedef struct {
    const char *dir;
    char *cfg_path, *tok_path, *tokcfg_path;
    json_t *cfg, *tokj, *tokcfg;
    StTensor *t;
    int64_t nt, cap;
    char **files;          /* safetensors paths, for messages */
    int n_files;
    MsGguf *g;
    MsError *err;
    const char *arch;      /* GGUF architecture name */
    const char *model_type;
} Hf;

static char *path_join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    size_t o = a;
    if (a && dir[a - 1] != '/') p[o++] = '/';
    memcpy(p + o, name, b + 1);
    return p;
}

static bool file_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* Map a regular file read-only.  *size 0 gives p NULL. */
static int map_file(const char *path, const uint8_t **p, uint64_t *size, MsError *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return ms_error_set(err, MS_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return ms_error_set(err, MS_EIO, "%s: not a regular file", path);
    }
    *size = (uint64_t)st.st_size;
    *p = NULL;
    if (st.st_size == 0) { close(fd); return 0; }
    void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED) return ms_error_set(err, MS_EIO, "%s: cannot map: %s", path, strerror(errno));
    *p = m;
    return 0;
}

static json_t *load_json_flags(const char *path, bool required, size_t flags, MsError *err, int *rc)
{
    *rc = 0;
    struct stat st;
    if (stat(path, &st) != 0) {
        if (required) *rc = ms_error_set(err, MS_ENOTFOUND, "%s: missing (%s)", path, strerror(errno));
        return NULL;
    }
    if (!S_ISREG(st.st_mode)) { *rc = ms_error_set(err, MS_EIO, "%s: not a regular file", path); return NULL; }
    if (st.st_size > HF_MAX_JSON) { *rc = ms_error_set(err, MS_EFORMAT, "%s: larger than 1 GiB", path); return NULL; }
    json_error_t je;
    json_t *j = json_load_file(path, JSON_REJECT_DUPLICATES | flags, &je);
    if (!j) { *rc = ms_error_set(err, MS_EFORMAT, "%s: line %d: %s", path, je.line, je.text); return NULL; }
    if (!json_is_object(j)) {
        json_decref(j);
        *rc = ms_error_set(err, MS_EFORMAT, "%s: not a JSON object", path);
        return NULL;
    }
    return j;
}

static json_t *load_json(const char *path, bool required, MsError *err, int *rc)
{
    return load_json_flags(path, required, 0, err, rc);
}

/* ------------------------------------------------------------------ safetensors */

static int st_dtype(const char *s, int *type, int *esize)
{
    if (!strcmp(s, "F32")) { *type = MS_TYPE_F32; *esize = 4; return 1; }
    if (!strcmp(s, "F16")) { *type = MS_TYPE_F16; *esize = 2; return 1; }
    if (!strcmp(s, "BF16")) { *type = MS_TYPE_BF16; *esize = 2; return 1; }
    if (!strcmp(s, "U8")) { *type = ST_U8; *esize = 1; return 1; }   /* gpt-oss MXFP4 blocks/scales only */
    static const char *const known[] = { "F64", "I64", "I32", "I16", "I8", "U64", "U32", "U16", "BOOL",
                                         "F8_E4M3", "F8_E5M2", "F8_E8M0", "F4", "F6_E2M3", "F6_E3M2", "C64", NULL };
    for (int i = 0; known[i]; i++)
        if (!strcmp(s, known[i])) return 0;
    return -1;
}

typedef struct { uint64_t a, b; const char *name; } Range;

static int cmp_range(const void *x, const void *y)
{
    const Range *a = x, *b = y;
    return a->a < b->a ? -1 : a->a > b->a ? 1 : (a->b < b->b ? -1 : a->b > b->b);
}

/* Parse and validate one safetensors image; tensors are appended to H (when
 * H is NULL nothing is kept).  Checks: header length within the file and the
 * format's 100 MiB limit, a JSON object without duplicate names, known
 * dtypes with integer non-negative shapes, data_offsets inside the data
 * section with end - begin = the dtype's size x elements, and the ranges
 * tiling the data section without overlaps or holes. */
static int st_parse(Hf *H, const char *name, const uint8_t *map, uint64_t size, int file, MsError *err)
{
    if (size < 8)
        return ms_error_set(err, MS_EFORMAT, "%s: file of %" PRIu64 " bytes is too short for a safetensors header",
                            name, size);
    uint64_t n;
    memcpy(&n, map, 8);
    if (n < 2 || n > size - 8)
        return ms_error_set(err, MS_EFORMAT, "%s: header length %" PRIu64 " does not fit in a file of %" PRIu64
                            " bytes (truncated, or not a safetensors file)", name, n, size);
    if (n > ST_MAX_HEADER)
        return ms_error_set(err, MS_EFORMAT, "%s: header length %" PRIu64 " exceeds the 100 MiB limit", name, n);
    if (map[8] != '{')
        return ms_error_set(err, MS_EFORMAT, "%s: header does not start with '{' (not a safetensors file)", name);
    json_error_t je;
    json_t *root = json_loadb((const char *)map + 8, (size_t)n, JSON_REJECT_DUPLICATES | JSON_DISABLE_EOF_CHECK, &je);
    if (!root)
        return ms_error_set(err, MS_EFORMAT, "%s: header JSON: %s (at byte %d)", name, je.text, je.position);
    /* after the object only padding spaces may follow */
    for (size_t i = je.position; i < n; i++)
        if (map[8 + i] != ' ' && map[8 + i] != '\t' && map[8 + i] != '\n' && map[8 + i] != '\r') {
            json_decref(root);
            return ms_error_set(err, MS_EFORMAT, "%s: header has bytes after its JSON object", name);
        }
    int rc = 0;
    const uint64_t data_size = size - 8 - n;
    const uint8_t *data = map + 8 + n;
    size_t cnt = json_object_size(root);
    Range *rg = malloc((cnt ? cnt : 1) * sizeof *rg);
    size_t nr = 0;
    if (!rg) { json_decref(root); return ms_error_set(err, MS_ENOMEM, "%s: out of memory", name); }
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        if (!strcmp(key, "__metadata__")) {
            if (!json_is_object(v)) { rc = ms_error_set(err, MS_EFORMAT, "%s: __metadata__ is not an object", name); break; }
            continue;
        }
        if (!*key) { rc = ms_error_set(err, MS_EFORMAT, "%s: a tensor has an empty name", name); break; }
        if (!json_is_object(v)) { rc = ms_error_set(err, MS_EFORMAT, "%s: tensor %s: entry is not an object", name, key); break; }
        json_t *jd = json_object_get(v, "dtype"), *js = json_object_get(v, "shape"), *jo = json_object_get(v, "data_offsets");
        if (!json_is_string(jd) || !json_is_array(js) || !json_is_array(jo) || json_array_size(jo) != 2) {
            rc = ms_error_set(err, MS_EFORMAT, "%s: tensor %s: needs dtype (string), shape (array) and data_offsets "
                              "([begin, end])", name, key);
            break;
        }
        int type = 0, esize = 0;
        int k = st_dtype(json_string_value(jd), &type, &esize);
        if (k <= 0) {
            rc = ms_error_set(err, k < 0 ? MS_EFORMAT : MS_EUNSUPPORTED, "%s: tensor %s: %s dtype '%.16s' "
                              "(supported: F32, F16, BF16; U8 for MXFP4 blocks)", name, key, k < 0 ? "unknown" : "unsupported",
                              json_string_value(jd));
            break;
        }
        size_t nd = json_array_size(js);
        if (nd > 4) { rc = ms_error_set(err, MS_EUNSUPPORTED, "%s: tensor %s: %zu dimensions (at most 4)", name, key, nd); break; }
        uint64_t nel = 1;
        int64_t shape[4] = { 1, 1, 1, 1 };
        bool bad = false;
        for (size_t d = 0; d < nd; d++) {
            json_t *x = json_array_get(js, d);
            if (!json_is_integer(x) || json_integer_value(x) < 0) { bad = true; break; }
            shape[d] = json_integer_value(x);
            if (__builtin_mul_overflow(nel, (uint64_t)shape[d], &nel)) { bad = true; break; }
        }
        json_t *o0 = json_array_get(jo, 0), *o1 = json_array_get(jo, 1);
        uint64_t nb;
        if (bad || __builtin_mul_overflow(nel, (uint64_t)esize, &nb)) {
            rc = ms_error_set(err, MS_EFORMAT, "%s: tensor %s: shape must be non-negative integers with a "
                              "representable size", name, key);
            break;
        }
        if (!json_is_integer(o0) || !json_is_integer(o1) || json_integer_value(o0) < 0
            || json_integer_value(o1) < json_integer_value(o0)) {
            rc = ms_error_set(err, MS_EFORMAT, "%s: tensor %s: data_offsets must be integers 0 <= begin <= end",
                              name, key);
            break;
        }
        uint64_t a = (uint64_t)json_integer_value(o0), b = (uint64_t)json_integer_value(o1);
        if (b > data_size) {
            rc = ms_error_set(err, MS_EFORMAT, "%s: tensor %s: data [%" PRIu64 ", %" PRIu64 ") lies outside the "
                              "data section of %" PRIu64 " bytes (truncated file?)", name, key, a, b, data_size);
            break;
        }
        if (b - a != nb) {
            rc = ms_error_set(err, MS_EFORMAT, "%s: tensor %s: data_offsets span %" PRIu64 " bytes but %s x %"
                              PRIu64 " elements need %" PRIu64, name, key, b - a, json_string_value(jd), nel, nb);
            break;
        }
        rg[nr++] = (Range){ a, b, key };
        if (H) {
            if (H->nt == H->cap) {
                int64_t cap = H->cap ? H->cap * 2 : 256;
                StTensor *t = realloc(H->t, (size_t)cap * sizeof *t);
                if (!t) { rc = ms_error_set(err, MS_ENOMEM, "%s: out of memory", name); break; }
                H->t = t;
                H->cap = cap;
            }
            StTensor *t = &H->t[H->nt];
            memset(t, 0, sizeof *t);
            if (!(t->name = strdup(key))) { rc = ms_error_set(err, MS_ENOMEM, "%s: out of memory", name); break; }
            H->nt++;
            t->type = type;
            t->nd = (int)nd;
            memcpy(t->shape, shape, sizeof shape);
            t->data = data + a;
            t->nbytes = nb;
            t->file = file;
        }
    }
    if (!rc) {
        qsort(rg, nr, sizeof *rg, cmp_range);
        uint64_t at = 0;
        for (size_t i = 0; i < nr && !rc; i++) {
            if (rg[i].a < at)
                rc = ms_error_set(err, MS_EFORMAT, "%s: tensor %s overlaps tensor %s", name, rg[i].name, rg[i - 1].name);
            else if (rg[i].a > at)
                rc = ms_error_set(err, MS_EFORMAT, "%s: %" PRIu64 " bytes before tensor %s belong to no tensor",
                                  name, rg[i].a - at, rg[i].name);
            at = rg[i].b > at ? rg[i].b : at;
        }
        if (!rc && at != data_size)
            rc = ms_error_set(err, MS_EFORMAT, "%s: the last %" PRIu64 " bytes of the data section belong to no tensor",
                              name, data_size - at);
    }
    free(rg);
    json_decref(root);
    return rc;
}

int ms_hf_check_safetensors(const char *name, const void *data, size_t size, MsError *err)
{
    return st_parse(NULL, name, data, size, 0, err);
}

static int cmp_st(const void *a, const void *b)
{
    return strcmp(((const StTensor *)a)->name, ((const StTensor *)b)->name);
}

static StTensor *st_find(Hf *H, const char *name)
{
    StTensor key = { .name = (char *)name };
    return bsearch(&key, H->t, (size_t)H->nt, sizeof *H->t, cmp_st);
}

static int add_st_file(Hf *H, const char *path)
{
    char **f = realloc(H->files, (size_t)(H->n_files + 1) * sizeof *f);
    if (!f) return ms_error_set(H->err, MS_ENOMEM, "%s: out of memory", path);
    H->files = f;
    if (!(f[H->n_files] = strdup(path))) return ms_error_set(H->err, MS_ENOMEM, "%s: out of memory", path);
    int file = H->n_files++;
    const uint8_t *map = NULL;
    uint64_t size = 0;
    int rc = map_file(path, &map, &size, H->err);
    if (rc) return rc;
    if (map && ms_gguf_mem_own(H->g, (void *)map, (size_t)size, true)) {
        munmap((void *)map, (size_t)size);
        return ms_error_set(H->err, MS_ENOMEM, "%s: out of memory", path);
    }
    if (ms_gguf_mem_add_file(H->g, path, size)) return ms_error_set(H->err, MS_ENOMEM, "%s: out of memory", path);
    return st_parse(H, path, map, size, file, H->err);
}

/* model.safetensors, or the shards model.safetensors.index.json names
 * (each tensor in the shard the index says, and nothing else). */
static int load_weights(Hf *H)
{
    char *single = path_join(H->dir, "model.safetensors");
    char *index = path_join(H->dir, "model.safetensors.index.json");
    int rc = 0;
    json_t *ix = NULL;
    if (!single || !index) { rc = ms_error_set(H->err, MS_ENOMEM, "out of memory"); goto done; }
    if (!file_exists(index)) {
        if (!file_exists(single)) {
            rc = ms_error_set(H->err, MS_ENOTFOUND, "%s: no model.safetensors or model.safetensors.index.json",
                              H->dir);
            goto done;
        }
        rc = add_st_file(H, single);
    } else {
        ix = load_json(index, true, H->err, &rc);
        if (rc) goto done;
        json_t *wm = json_object_get(ix, "weight_map");
        if (!json_is_object(wm) || json_object_size(wm) == 0) {
            rc = ms_error_set(H->err, MS_EFORMAT, "%s: weight_map missing or empty", index);
            goto done;
        }
        /* shards in order of first mention */
        const char *k;
        json_t *v;
        json_t *seen = json_object();
        json_object_foreach(wm, k, v) {
            const char *f = json_string_value(v);
            if (!f || !*f || strchr(f, '/') || !strcmp(f, "..") || !strcmp(f, ".")) {
                rc = ms_error_set(H->err, MS_EFORMAT, "%s: weight_map entry %s must name a file in the directory",
                                  index, k);
                break;
            }
            if (json_object_get(seen, f)) continue;
            json_object_set_new(seen, f, json_integer(H->n_files));
            char *p = path_join(H->dir, f);
            if (!p) { rc = ms_error_set(H->err, MS_ENOMEM, "out of memory"); break; }
            if (!file_exists(p)) rc = ms_error_set(H->err, MS_ENOTFOUND, "%s: shard %s named by the index is missing",
                                                   index, f);
            else rc = add_st_file(H, p);
            free(p);
            if (rc) break;
        }
        if (!rc) {
            qsort(H->t, (size_t)H->nt, sizeof *H->t, cmp_st);
            for (int64_t i = 0; i < H->nt && !rc; i++) {
                const char *f = json_string_value(json_object_get(wm, H->t[i].name));
                json_t *fi = f ? json_object_get(seen, f) : NULL;
                if (!fi) rc = ms_error_set(H->err, MS_EFORMAT, "%s: tensor %s is not in the index", H->files[H->t[i].file],
                                           H->t[i].name);
                else if (json_integer_value(fi) != H->t[i].file)
                    rc = ms_error_set(H->err, MS_EFORMAT, "%s: tensor %s: the index puts it in %s",
                                      H->files[H->t[i].file], H->t[i].name, f);
            }
            json_object_foreach(wm, k, v) {
                if (rc) break;
                if (!st_find(H, k)) rc = ms_error_set(H->err, MS_EFORMAT, "%s: tensor %s is not in shard %s", index, k,
                                                      json_string_value(v));
            }
        }
        json_decref(seen);
    }
    if (!rc) {
        qsort(H->t, (size_t)H->nt, sizeof *H->t, cmp_st);
        for (int64_t i = 0; i + 1 < H->nt && !rc; i++)
            if (!strcmp(H->t[i].name, H->t[i + 1].name))
                rc = ms_error_set(H->err, MS_EFORMAT, "%s: tensor %s is also in %s", H->files[H->t[i + 1].file],
                                  H->t[i].name, H->files[H->t[i].file]);
    }
done:
    json_decref(ix);
    free(single);
    free(index);
    return rc;
}

/* ------------------------------------------------------------------ config.json */

static json_t *cfg_get(const json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_null(v) ? NULL : v;
}

static int cfg_int(Hf *H, const char *k, bool required, int64_t def, int64_t lo, int64_t hi, int64_t *out)
{
    json_t *v = cfg_get(H->cfg, k);
    if (!v) {
        if (required) return ms_error_set(H->err, MS_ENOTFOUND, "%s: missing field %s", H->cfg_path, k);
        *out = def;
        return 0;
    }
    if (!json_is_integer(v))
        return ms_error_set(H->err, MS_EFORMAT, "%s: field %s must be an integer", H->cfg_path, k);
    int64_t x = json_integer_value(v);
    if (x < lo || x > hi)
        return ms_error_set(H->err, MS_EFORMAT, "%s: field %s = %" PRId64 " out of range [%" PRId64 ", %" PRId64 "]",
                            H->cfg_path, k, x, lo, hi);
    *out = x;
    return 0;
}

static int num_of(Hf *H, const json_t *o, const char *where, const char *k, bool required, double def, double *out)
{
    json_t *v = cfg_get(o, k);
    if (!v) {
        if (required) return ms_error_set(H->err, MS_ENOTFOUND, "%s: missing field %s%s", H->cfg_path, where, k);
        *out = def;
        return 0;
    }
    if (!json_is_number(v) || !isfinite(json_number_value(v)))
        return ms_error_set(H->err, MS_EFORMAT, "%s: field %s%s must be a number", H->cfg_path, where, k);
    *out = json_number_value(v);
    return 0;
}

static int cfg_num(Hf *H, const char *k, bool required, double def, double *out)
{
    return num_of(H, H->cfg, "", k, required, def, out);
}

static int cfg_bool(Hf *H, const char *k, bool def, bool *out)
{
    json_t *v = cfg_get(H->cfg, k);
    if (!v) { *out = def; return 0; }
    if (!json_is_boolean(v)) return ms_error_set(H->err, MS_EFORMAT, "%s: field %s must be true or false", H->cfg_path, k);
    *out = json_is_true(v);
    return 0;
}

static const char *cfg_str(Hf *H, const json_t *o, const char *k)
{
    (void)H;
    return json_string_value(cfg_get(o, k));
}

static int nomem(Hf *H) { return ms_error_set(H->err, MS_ENOMEM, "%s: out of memory", H->dir); }

static int set_u32(Hf *H, const char *suffix, int64_t v)
{
    char key[160];
    snprintf(key, sizeof key, "%s.%s", H->arch, suffix);
    uint32_t u = (uint32_t)v;
    return ms_gguf_mem_set(H->g, key, MS_GGUF_UINT32, &u) ? nomem(H) : 0;
}

static int set_f32(Hf *H, const char *suffix, double v)
{
    char key[160];
    snprintf(key, sizeof key, "%s.%s", H->arch, suffix);
    float f = (float)v;
    return ms_gguf_mem_set(H->g, key, MS_GGUF_FLOAT32, &f) ? nomem(H) : 0;
}

static int set_bool(Hf *H, const char *suffix, bool v)
{
    char key[160];
    snprintf(key, sizeof key, "%s.%s", H->arch, suffix);
    return ms_gguf_mem_set(H->g, key, MS_GGUF_BOOL, &v) ? nomem(H) : 0;
}

static int set_str(Hf *H, const char *key, const char *v)
{
    return ms_gguf_mem_set(H->g, key, MS_GGUF_STRING, v) ? nomem(H) : 0;
}

#define TRY(x) do { int rc_ = (x); if (rc_) return rc_; } while (0)

/* ------------------------------------------------------------------ tensors */

static void fmt_shape(char *buf, size_t cap, int nd, const int64_t *s)
{
    size_t o = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < nd && o < cap; i++) o += (size_t)snprintf(buf + o, cap - o, "%s%" PRId64, i ? ", " : "", s[i]);
    if (o < cap) snprintf(buf + o, cap - o, "]");
}

/* The HF tensor `name` with shape s[0..nd) (PyTorch order), marked used.
 * NULL with *rc = 0 when absent and optional. */
static StTensor *need_t(Hf *H, const char *name, int nd, const int64_t *s, bool required, bool u8, int *rc);
static StTensor *need(Hf *H, const char *name, int nd, const int64_t *s, bool required, int *rc)
{
    return need_t(H, name, nd, s, required, false, rc);
}

/* u8: the tensor must be U8 (MXFP4 blocks and scales); otherwise a float */
static StTensor *need_t(Hf *H, const char *name, int nd, const int64_t *s, bool required, bool u8, int *rc)
{
    *rc = 0;
    StTensor *t = st_find(H, name);
    if (!t) {
        if (required)
            *rc = ms_error_set(H->err, MS_ENOTFOUND, "%s: missing tensor %s (model_type %s)",
                               H->n_files == 1 ? H->files[0] : H->dir, name, H->model_type);
        return NULL;
    }
    bool ok = t->nd == nd;
    for (int i = 0; ok && i < nd; i++) ok = t->shape[i] == s[i];
    if (!ok) {
        char got[96], want[96];
        fmt_shape(got, sizeof got, t->nd, t->shape);
        fmt_shape(want, sizeof want, nd, s);
        *rc = ms_error_set(H->err, MS_EFORMAT, "%s: tensor %s has shape %s but config.json implies %s",
                           H->files[t->file], name, got, want);
        return NULL;
    }
    if ((t->type == ST_U8) != u8) {
        *rc = ms_error_set(H->err, MS_EUNSUPPORTED, "%s: tensor %s has dtype %s, expected %s", H->files[t->file], name,
                           t->type == ST_U8 ? "U8" : ms_type_name(t->type), u8 ? "U8" : "F32, F16 or BF16");
        return NULL;
    }
    t->used = true;
    return t;
}

static size_t esize_of(int type) { return type == MS_TYPE_F32 ? 4 : 2; }

static void *own_alloc(Hf *H, size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p && ms_gguf_mem_own(H->g, p, n, false)) { free(p); p = NULL; }
    return p;
}

/* Add a GGUF tensor of ne[0..nd) over data (in place when naturally
 * aligned, else copied). */
static int add(Hf *H, const char *gg, int type, int nd, const int64_t *ne, const void *data, uint64_t nbytes)
{
    if ((uintptr_t)data % esize_of(type)) {
        void *p = own_alloc(H, (size_t)nbytes);
        if (!p) return nomem(H);
        memcpy(p, data, (size_t)nbytes);
        data = p;
    }
    static const char empty[4];
    return ms_gguf_mem_add_tensor(H->g, gg, type, (uint32_t)nd, ne, nbytes ? data : empty, H->err);
}

/* HF [s0, s1, ...] used as is: GGUF ne is the shape reversed. */
static int put(Hf *H, bool required, int nd, const int64_t *s, const char *gg, const char *hf)
{
    int rc;
    StTensor *t = need(H, hf, nd, s, required, &rc);
    if (!t) return rc;
    int64_t ne[4];
    for (int i = 0; i < nd; i++) ne[i] = s[nd - 1 - i];
    return add(H, gg, t->type, nd, ne, t->data, t->nbytes);
}

#define NM(buf, ...) (snprintf(buf, sizeof buf, __VA_ARGS__), buf)

static int put1(Hf *H, bool required, int64_t n, const char *gg, const char *hf)
{
    int64_t s[1] = { n };
    return put(H, required, 1, s, gg, hf);
}

static int put2(Hf *H, bool required, int64_t rows, int64_t cols, const char *gg, const char *hf)
{
    int64_t s[2] = { rows, cols };
    return put(H, required, 2, s, gg, hf);
}

/* llama.cpp's LlamaModel.permute: HF keeps each head's rotary dims in
 * rotate_half order (first half, second half); GGUF interleaves them in
 * adjacent pairs.  GGUF row (h, 2j + i) = HF row (h, i * hd/2 + j).  Works
 * on rows of any width (1 for biases). */
static int put_permuted(Hf *H, bool required, int nd, int64_t rows, int64_t cols, int64_t n_head,
                        const char *gg, const char *hf)
{
    int64_t s[2] = { rows, cols };
    int rc;
    StTensor *t = need(H, hf, nd, s, required, &rc);
    if (!t) return rc;
    if (rows % n_head || (rows / n_head) % 2)
        return ms_error_set(H->err, MS_EFORMAT, "%s: tensor %s: %" PRId64 " rows do not split into %" PRId64
                            " heads of even width", H->files[t->file], hf, rows, n_head);
    const int64_t hd = rows / n_head, half = hd / 2;
    const size_t rb = (size_t)(nd == 2 ? cols : 1) * esize_of(t->type);
    uint8_t *p = own_alloc(H, (size_t)t->nbytes);
    if (!p) return nomem(H);
    for (int64_t h = 0; h < n_head; h++)
        for (int64_t j = 0; j < half; j++)
            for (int64_t i = 0; i < 2; i++)
                memcpy(p + (size_t)(h * hd + 2 * j + i) * rb, t->data + (size_t)(h * hd + i * half + j) * rb, rb);
    int64_t ne[2] = { nd == 2 ? cols : rows, rows };
    return ms_gguf_mem_add_tensor(H->g, gg, t->type, (uint32_t)nd, ne, p, H->err);
}

/* Per-expert [rows, cols] tensors (hf_fmt with %d layer, %d expert) stacked
 * into one GGUF {cols, rows, n_exp}. */
static int put_stacked(Hf *H, int layer, int64_t n_exp, int64_t rows, int64_t cols, const char *gg, const char *hf_fmt)
{
    int64_t s[2] = { rows, cols };
    uint8_t *p = NULL;
    int type = -1;
    size_t per = 0;
    for (int64_t e = 0; e < n_exp; e++) {
        char nm[256];
        snprintf(nm, sizeof nm, hf_fmt, layer, (int)e);
        int rc;
        StTensor *t = need(H, nm, 2, s, true, &rc);
        if (!t) return rc;
        if (e == 0) {
            type = t->type;
            per = (size_t)t->nbytes;
            if (!(p = own_alloc(H, per * (size_t)n_exp))) return nomem(H);
        } else if (t->type != type) {
            return ms_error_set(H->err, MS_EUNSUPPORTED, "%s: tensor %s has type %s but expert 0 has %s",
                                H->files[t->file], nm, ms_type_name(t->type), ms_type_name(type));
        }
        memcpy(p + per * (size_t)e, t->data, per);
    }
    int64_t ne[3] = { cols, rows, n_exp };
    return ms_gguf_mem_add_tensor(H->g, gg, type, 3, ne, p, H->err);
}

/* Fused [.., 2F, cols] (gate rows first, then up) split into two GGUF
 * tensors {cols, F, ..}: granite's input_linear. */
static int put_split_halves(Hf *H, int nd, int64_t n_exp, int64_t F, int64_t cols, const char *gg_a, const char *gg_b,
                            const char *hf)
{
    int64_t s3[3] = { n_exp, 2 * F, cols }, s2[2] = { 2 * F, cols };
    int rc;
    StTensor *t = need(H, hf, nd, nd == 3 ? s3 : s2, true, &rc);
    if (!t) return rc;
    const size_t half = (size_t)(F * cols) * esize_of(t->type);
    const int64_t ne_ = nd == 3 ? n_exp : 1;
    uint8_t *a = own_alloc(H, half * (size_t)ne_), *b = own_alloc(H, half * (size_t)ne_);
    if (!a || !b) return nomem(H);
    for (int64_t e = 0; e < ne_; e++) {
        memcpy(a + half * (size_t)e, t->data + 2 * half * (size_t)e, half);
        memcpy(b + half * (size_t)e, t->data + 2 * half * (size_t)e + half, half);
    }
    int64_t ne[3] = { cols, F, n_exp };
    TRY(ms_gguf_mem_add_tensor(H->g, gg_a, t->type, (uint32_t)nd, ne, a, H->err));
    return ms_gguf_mem_add_tensor(H->g, gg_b, t->type, (uint32_t)nd, ne, b, H->err);
}

/* gpt-oss experts: gate_up_proj [E, in, 2F] with gate/up interleaved on the
 * last axis, and down_proj [E, F, out]: transposed into GGUF {in, F, E}
 * (gate, up) and {F, out, E}; the biases [E, 2F] de-interleaved. */
/* DeepSeek-V3's kv_b_proj [n_head * (nope + v), kv_lora] (per head: nope
 * key rows, then v value rows) split as llama.cpp's converter does for
 * absorbed MLA: attn_k_b {nope, kv_lora, n_head} (each head's key rows
 * transposed) and attn_v_b {kv_lora, v, n_head} (the value rows as they are). */
static int put_kv_b_split(Hf *H, int il, int64_t nH, int64_t nope, int64_t vd, int64_t kvr, const char *name)
{
    int64_t s[2] = { nH * (nope + vd), kvr };
    int rc;
    StTensor *t = need(H, name, 2, s, true, &rc);
    if (!t) return rc;
    const size_t es = esize_of(t->type);
    uint8_t *k = own_alloc(H, (size_t)(nH * nope * kvr) * es), *v = own_alloc(H, (size_t)(nH * vd * kvr) * es);
    if (!k || !v) return nomem(H);
    for (int64_t h = 0; h < nH; h++) {
        const uint8_t *rows = t->data + (size_t)(h * (nope + vd) * kvr) * es;
        for (int64_t r = 0; r < kvr; r++)
            for (int64_t n = 0; n < nope; n++)
                memcpy(k + (size_t)((h * kvr + r) * nope + n) * es, rows + (size_t)(n * kvr + r) * es, es);
        memcpy(v + (size_t)(h * vd * kvr) * es, rows + (size_t)(nope * kvr) * es, (size_t)(vd * kvr) * es);
    }
    char gg[96];
    int64_t ne_k[3] = { nope, kvr, nH }, ne_v[3] = { kvr, vd, nH };
    TRY(ms_gguf_mem_add_tensor(H->g, NM(gg, "blk.%d.attn_k_b.weight", il), t->type, 3, ne_k, k, H->err));
    return ms_gguf_mem_add_tensor(H->g, NM(gg, "blk.%d.attn_v_b.weight", il), t->type, 3, ne_v, v, H->err);
}

/* gpt-oss's original checkpoint: experts as MXFP4 (U8 blocks [.., rows,
 * cols/32, 16] and E8M0 scales [.., rows, cols/32]), gate and up
 * interleaved by row.  Repacked once into ggml's MXFP4 blocks (scale byte,
 * then element j in the low and j+16 in the high nibble of byte j; HF has
 * elements 2k and 2k+1 in byte k), nothing dequantised.  rows_of_out:
 * output rows per expert in the result; step/first pick HF rows first,
 * first + step, ... (gate: 0, 2, ...; up: 1, 3, ...; down: 0, 1, ...). */
static int put_mxfp4(Hf *H, const StTensor *bl, const StTensor *sc, int64_t NE, int64_t rows_in, int64_t rows_out,
                     int64_t cols, int step, int first, const char *gg)
{
    const int64_t nb = cols / 32;
    uint8_t *o = own_alloc(H, (size_t)(NE * rows_out * nb) * 17);
    if (!o) return nomem(H);
    for (int64_t e = 0; e < NE; e++)
        for (int64_t r = 0; r < rows_out; r++) {
            int64_t rin = first + step * r;
            for (int64_t b = 0; b < nb; b++) {
                const uint8_t *q = bl->data + (size_t)(((e * rows_in + rin) * nb + b) * 16);
                uint8_t *d = o + (size_t)(((e * rows_out + r) * nb + b) * 17);
                d[0] = sc->data[(size_t)((e * rows_in + rin) * nb + b)];
                for (int j = 0; j < 16; j++) {
                    int lo = (q[j / 2] >> (4 * (j & 1))) & 15, hi = (q[(j + 16) / 2] >> (4 * (j & 1))) & 15;
                    d[1 + j] = (uint8_t)(lo | hi << 4);
                }
            }
        }
    int64_t ne[3] = { cols, rows_out, NE };
    return ms_gguf_mem_add_tensor(H->g, gg, MS_TYPE_MXFP4, 3, ne, o, H->err);
}

static int put_oss_experts(Hf *H, int il, int64_t NE, int64_t E, int64_t F)
{
    char nm[256], gg[96];
    int rc;
    if (st_find(H, NM(nm, "model.layers.%d.mlp.experts.gate_up_proj_blocks", il))) {
        if (E % 32 || F % 32)
            return ms_error_set(H->err, MS_EFORMAT, "%s: MXFP4 experts need hidden_size and intermediate_size "
                                "divisible by 32", H->cfg_path);
        int64_t s_gb[4] = { NE, 2 * F, E / 32, 16 }, s_gs[3] = { NE, 2 * F, E / 32 };
        int64_t s_db[4] = { NE, E, F / 32, 16 }, s_ds[3] = { NE, E, F / 32 };
        StTensor *gb = need_t(H, nm, 4, s_gb, true, true, &rc);
        if (!gb) return rc;
        StTensor *gs = need_t(H, NM(nm, "model.layers.%d.mlp.experts.gate_up_proj_scales", il), 3, s_gs, true, true, &rc);
        if (!gs) return rc;
        StTensor *db = need_t(H, NM(nm, "model.layers.%d.mlp.experts.down_proj_blocks", il), 4, s_db, true, true, &rc);
        if (!db) return rc;
        StTensor *ds = need_t(H, NM(nm, "model.layers.%d.mlp.experts.down_proj_scales", il), 3, s_ds, true, true, &rc);
        if (!ds) return rc;
        TRY(put_mxfp4(H, gb, gs, NE, 2 * F, F, E, 2, 0, NM(gg, "blk.%d.ffn_gate_exps.weight", il)));
        TRY(put_mxfp4(H, gb, gs, NE, 2 * F, F, E, 2, 1, NM(gg, "blk.%d.ffn_up_exps.weight", il)));
        TRY(put_mxfp4(H, db, ds, NE, E, E, F, 1, 0, NM(gg, "blk.%d.ffn_down_exps.weight", il)));
        int64_t s_gub[2] = { NE, 2 * F }, s_dbias[2] = { NE, E }, ne_b[2] = { F, NE };
        StTensor *gub = need(H, NM(nm, "model.layers.%d.mlp.experts.gate_up_proj_bias", il), 2, s_gub, true, &rc);
        if (!gub) return rc;
        const size_t esb = esize_of(gub->type);
        uint8_t *gbias = own_alloc(H, (size_t)(NE * F) * esb), *ubias = own_alloc(H, (size_t)(NE * F) * esb);
        if (!gbias || !ubias) return nomem(H);
        for (int64_t e = 0; e < NE; e++)
            for (int64_t f = 0; f < F; f++) {
                memcpy(gbias + (size_t)(e * F + f) * esb, gub->data + (size_t)(e * 2 * F + 2 * f) * esb, esb);
                memcpy(ubias + (size_t)(e * F + f) * esb, gub->data + (size_t)(e * 2 * F + 2 * f + 1) * esb, esb);
            }
        TRY(ms_gguf_mem_add_tensor(H->g, NM(gg, "blk.%d.ffn_gate_exps.bias", il), gub->type, 2, ne_b, gbias, H->err));
        TRY(ms_gguf_mem_add_tensor(H->g, NM(gg, "blk.%d.ffn_up_exps.bias", il), gub->type, 2, ne_b, ubias, H->err));
        return put(H, true, 2, s_dbias, NM(gg, "blk.%d.ffn_down_exps.bias", il),
                   NM(nm, "model.layers.%d.mlp.experts.down_proj_bias", il));
    }
    int64_t s_gu[3] = { NE, E, 2 * F }, s_d[3] = { NE, F, E }, s_gub[2] = { NE, 2 * F }, s_db[2] = { NE, E };
    StTensor *gu = need(H, NM(nm, "model.layers.%d.mlp.experts.gate_up_proj", il), 3, s_gu, true, &rc);
    if (!gu) return rc;
    StTensor *dn = need(H, NM(nm, "model.layers.%d.mlp.experts.down_proj", il), 3, s_d, true, &rc);
    if (!dn) return rc;
    StTensor *gub = need(H, NM(nm, "model.layers.%d.mlp.experts.gate_up_proj_bias", il), 2, s_gub, true, &rc);
    if (!gub) return rc;
    const size_t es = esize_of(gu->type), esd = esize_of(dn->type), esb = esize_of(gub->type);
    uint8_t *g = own_alloc(H, (size_t)(NE * F * E) * es), *u = own_alloc(H, (size_t)(NE * F * E) * es);
    uint8_t *d = own_alloc(H, (size_t)(NE * F * E) * esd);
    uint8_t *gb = own_alloc(H, (size_t)(NE * F) * esb), *ub = own_alloc(H, (size_t)(NE * F) * esb);
    if (!g || !u || !d || !gb || !ub) return nomem(H);
    for (int64_t e = 0; e < NE; e++) {
        for (int64_t f = 0; f < F; f++)
            for (int64_t h = 0; h < E; h++) {
                size_t dst = (size_t)((e * F + f) * E + h), src = (size_t)((e * E + h) * 2 * F + 2 * f);
                memcpy(g + dst * es, gu->data + src * es, es);
                memcpy(u + dst * es, gu->data + (src + 1) * es, es);
            }
        for (int64_t h = 0; h < E; h++)
            for (int64_t f = 0; f < F; f++)
                memcpy(d + (size_t)((e * E + h) * F + f) * esd, dn->data + (size_t)((e * F + f) * E + h) * esd, esd);
        for (int64_t f = 0; f < F; f++) {
            memcpy(gb + (size_t)(e * F + f) * esb, gub->data + (size_t)(e * 2 * F + 2 * f) * esb, esb);
            memcpy(ub + (size_t)(e * F + f) * esb, gub->data + (size_t)(e * 2 * F + 2 * f + 1) * esb, esb);
        }
    }
    int64_t ne_gu[3] = { E, F, NE }, ne_d[3] = { F, E, NE }, ne_b[2] = { F, NE };
    TRY(ms_gguf_mem_add_tensor(H->g, NM(gg, "blk.%d.ffn_gate_exps.weight", il), gu->type, 3, ne_gu, g, H->err));
    TRY(ms_gguf_mem_add_tensor(H->g, NM(gg, "blk.%d.ffn_up_exps.weight", il), gu->type, 3, ne_gu, u, H->err));
    TRY(ms_gguf_mem_add_tensor(H->g, NM(gg, "blk.%d.ffn_down_exps.weight", il), dn->type, 3, ne_d, d, H->err));
    TRY(ms_gguf_mem_add_tensor(H->g, NM(gg, "blk.%d.ffn_gate_exps.bias", il), gub->type, 2, ne_b, gb, H->err));
    TRY(ms_gguf_mem_add_tensor(H->g, NM(gg, "blk.%d.ffn_up_exps.bias", il), gub->type, 2, ne_b, ub, H->err));
    return put(H, true, 2, s_db, NM(gg, "blk.%d.ffn_down_exps.bias", il),
               NM(nm, "model.layers.%d.mlp.experts.down_proj_bias", il));
}

/* ------------------------------------------------------------------ families */

typedef enum { F_OLMOE, F_QWEN2MOE, F_MIXTRAL, F_GRANITE, F_DEEPSEEK2, F_QWEN3MOE, F_GPTOSS, F_PHIMOE } Family;

static const struct { const char *model_type, *arch; Family f; } k_families[] = {
    { "olmoe", "olmoe", F_OLMOE },
    { "qwen2_moe", "qwen2moe", F_QWEN2MOE },
    { "mixtral", "llama", F_MIXTRAL },
    { "granitemoe", "granitemoe", F_GRANITE },
    { "granitemoeshared", "granitemoe", F_GRANITE },
    { "deepseek_v2", "deepseek2", F_DEEPSEEK2 },
    { "deepseek_v3", "deepseek2", F_DEEPSEEK2 },   /* absorbed MLA, sigmoid router (below) */
    { "qwen3_moe", "qwen3moe", F_QWEN3MOE },
    { "gpt_oss", "gpt-oss", F_GPTOSS },
    { "phimoe", "phimoe", F_PHIMOE },
};

static int build(Hf *H, Family fam)
{
    int64_t E = 0, L = 0, nH = 0, nKV = 0, hd = 0, NE = 0, K = 0, ctx = 0, V = 0, ff = 0;
    double eps = 0, theta = 0;
    char hf[256], gg[96];
    TRY(cfg_int(H, "hidden_size", true, 0, 1, 1 << 20, &E));
    TRY(cfg_int(H, "num_hidden_layers", true, 0, 1, 4096, &L));
    TRY(cfg_int(H, "num_attention_heads", true, 0, 1, 4096, &nH));
    TRY(cfg_int(H, "num_key_value_heads", false, nH, 1, nH, &nKV));
    if (nH % nKV) return ms_error_set(H->err, MS_EFORMAT, "%s: num_attention_heads %" PRId64 " is not a multiple of "
                                      "num_key_value_heads %" PRId64, H->cfg_path, nH, nKV);
    TRY(cfg_int(H, "head_dim", false, E / nH, 1, 1 << 16, &hd));
    TRY(cfg_int(H, "max_position_embeddings", true, 0, 1, 1 << 24, &ctx));
    TRY(cfg_int(H, "vocab_size", true, 0, 1, INT32_MAX, &V));
    TRY(cfg_int(H, "intermediate_size", true, 0, 1, 1 << 24, &ff));
    TRY(cfg_num(H, "rms_norm_eps", true, 0, &eps));
    TRY(cfg_num(H, "rope_theta", false, 10000.0, &theta));
    if (!(eps >= 0) || !(theta > 0))
        return ms_error_set(H->err, MS_EFORMAT, "%s: rms_norm_eps must be >= 0 and rope_theta > 0", H->cfg_path);
    const char *ne_key = fam == F_OLMOE || fam == F_QWEN2MOE || fam == F_QWEN3MOE ? "num_experts"
                       : fam == F_DEEPSEEK2 ? "n_routed_experts" : "num_local_experts";
    TRY(cfg_int(H, ne_key, true, 0, 1, 4096, &NE));
    TRY(cfg_int(H, "num_experts_per_tok", true, 0, 1, NE, &K));
    bool tie;
    TRY(cfg_bool(H, "tie_word_embeddings", false, &tie));

    TRY(set_str(H, "general.architecture", H->arch));
    TRY(set_u32(H, "context_length", ctx));
    TRY(set_u32(H, "embedding_length", E));
    TRY(set_u32(H, "block_count", L));
    TRY(set_u32(H, "feed_forward_length", ff));
    TRY(set_u32(H, "attention.head_count", nH));
    TRY(set_u32(H, "attention.head_count_kv", nKV));
    TRY(set_f32(H, "rope.freq_base", theta));
    TRY(set_f32(H, "attention.layer_norm_rms_epsilon", eps));
    TRY(set_u32(H, "expert_count", NE));
    TRY(set_u32(H, "expert_used_count", K));
    if (cfg_get(H->cfg, "head_dim")) {
        TRY(set_u32(H, "attention.key_length", hd));
        TRY(set_u32(H, "attention.value_length", hd));
    }

    int64_t Fe = ff, S = 0, dense_lead = 0, qr = 0, kvr = 0, nope = 0, rope = 0, vd = 0;
    bool v3 = false, need_bias = false;
    const json_t *rs = cfg_get(H->cfg, "rope_scaling");
    if (rs && !json_is_object(rs))
        return ms_error_set(H->err, MS_EFORMAT, "%s: field rope_scaling must be an object or null", H->cfg_path);
    const char *rs_type = rs ? (cfg_str(H, rs, "rope_type") ? cfg_str(H, rs, "rope_type") : cfg_str(H, rs, "type")) : NULL;
    bool b;
    switch (fam) {
    case F_OLMOE:
        if (cfg_get(H->cfg, "clip_qkv"))
            return ms_error_set(H->err, MS_EUNSUPPORTED, "%s: clip_qkv is not supported", H->cfg_path);
        break;
    case F_QWEN2MOE: {
        TRY(cfg_int(H, "moe_intermediate_size", true, 0, 1, 1 << 24, &Fe));
        TRY(cfg_int(H, "shared_expert_intermediate_size", true, 0, 1, 1 << 24, &S));
        TRY(set_u32(H, "expert_feed_forward_length", Fe));
        TRY(set_u32(H, "expert_shared_feed_forward_length", S));
        int64_t step;
        TRY(cfg_int(H, "decoder_sparse_step", false, 1, 1, 1 << 20, &step));
        json_t *mol = cfg_get(H->cfg, "mlp_only_layers");
        if (step != 1 || (mol && json_array_size(mol) > 0))
            return ms_error_set(H->err, MS_EUNSUPPORTED, "%s: dense layers (decoder_sparse_step, mlp_only_layers) "
                                "are not supported for qwen2_moe", H->cfg_path);
        TRY(cfg_bool(H, "norm_topk_prob", false, &b));
        if (b) return ms_error_set(H->err, MS_EUNSUPPORTED, "%s: qwen2_moe with norm_topk_prob true is not supported "
                                   "(llama.cpp's graph never renormalises)", H->cfg_path);
        break;
    }
    case F_QWEN3MOE: {
        TRY(cfg_int(H, "moe_intermediate_size", true, 0, 1, 1 << 24, &Fe));
        TRY(set_u32(H, "expert_feed_forward_length", Fe));
        TRY(cfg_bool(H, "norm_topk_prob", true, &b));
        if (!b) return ms_error_set(H->err, MS_EUNSUPPORTED, "%s: qwen3_moe with norm_topk_prob false is not supported "
                                    "(llama.cpp's graph always renormalises)", H->cfg_path);
        int64_t step;
        TRY(cfg_int(H, "decoder_sparse_step", false, 1, 1, 1 << 20, &step));
        json_t *mol = cfg_get(H->cfg, "mlp_only_layers");
        if (step != 1 || (mol && json_array_size(mol) > 0))
            return ms_error_set(H->err, MS_EUNSUPPORTED, "%s: dense layers (decoder_sparse_step, mlp_only_layers) "
                                "are not supported for qwen3_moe", H->cfg_path);
        break;
    }
    case F_MIXTRAL:
    case F_GRANITE:
        TRY(set_u32(H, "rope.dimension_count", hd));
        TRY(set_u32(H, "vocab_size", V));
        if (fam == F_GRANITE) {
            double em, rm, am, ls;
            TRY(cfg_num(H, "embedding_multiplier", true, 0, &em));
            TRY(cfg_num(H, "residual_multiplier", true, 0, &rm));
            TRY(cfg_num(H, "attention_multiplier", true, 0, &am));
            TRY(cfg_num(H, "logits_scaling", true, 0, &ls));
            if (ls == 0) return ms_error_set(H->err, MS_EFORMAT, "%s: logits_scaling is 0", H->cfg_path);
            TRY(set_f32(H, "embedding_scale", em));
            TRY(set_f32(H, "residual_scale", rm));
            TRY(set_f32(H, "attention.scale", am));
            TRY(set_f32(H, "logit_scale", ls));   /* logits are divided by it */
            TRY(cfg_int(H, "shared_intermediate_size", false, 0, 0, 1 << 24, &S));
            if (S) TRY(set_u32(H, "expert_shared_feed_forward_length", S));
        }
        if (rs) return ms_error_set(H->err, MS_EUNSUPPORTED, "%s: rope_scaling is not supported for %s",
                                    H->cfg_path, H->model_type);
        break;
    case F_PHIMOE: {
        int64_t orig;
        TRY(set_u32(H, "rope.dimension_count", hd));
        TRY(set_u32(H, "vocab_size", V));
        TRY(cfg_int(H, "original_max_position_embeddings", true, 0, 1, 1 << 24, &orig));
        TRY(set_u32(H, "rope.scaling.original_context_length", orig));
        /* the converter's LongRoPE magnitude, from the context ratio */
        double sc = (double)ctx / (double)orig;
        double af = sc <= 1.0 ? 1.0 : sqrt(1.0 + log(sc) / log((double)orig));
        TRY(set_f32(H, "rope.scaling.attn_factor", af));
        if (!rs || !rs_type || strcmp(rs_type, "longrope"))
            return ms_error_set(H->err, MS_EUNSUPPORTED, "%s: phimoe needs rope_scaling of type longrope", H->cfg_path);
        const char *names[2] = { "short_factor", "long_factor" };
        const char *ggn[2] = { "rope_factors_short.weight", "rope_factors_long.weight" };
        for (int i = 0; i < 2; i++) {
            json_t *a = cfg_get(rs, names[i]);
            if (!json_is_array(a) || (int64_t)json_array_size(a) != hd / 2)
                return ms_error_set(H->err, MS_EFORMAT, "%s: rope_scaling.%s must hold %" PRId64 " numbers",
                                    H->cfg_path, names[i], hd / 2);
            float *p = own_alloc(H, (size_t)(hd / 2) * sizeof *p);
            if (!p) return nomem(H);
            for (int64_t j = 0; j < hd / 2; j++) {
                json_t *x = json_array_get(a, (size_t)j);
                if (!json_is_number(x))
                    return ms_error_set(H->err, MS_EFORMAT, "%s: rope_scaling.%s[%" PRId64 "] is not a number",
                                        H->cfg_path, names[i], j);
                p[j] = (float)json_number_value(x);
            }
            int64_t ne[1] = { hd / 2 };
            TRY(ms_gguf_mem_add_tensor(H->g, ggn[i], MS_TYPE_F32, 1, ne, p, H->err));
        }
        rs = NULL;
        break;
    }
    case F_GPTOSS: {
        int64_t sw;
        TRY(cfg_int(H, "sliding_window", true, 0, 1, 1 << 24, &sw));
        TRY(set_u32(H, "attention.sliding_window", sw));
        TRY(set_u32(H, "expert_feed_forward_length", ff));
        json_t *lt = cfg_get(H->cfg, "layer_types");
        for (int64_t i = 0; lt && i < L; i++) {
            const char *s = json_string_value(json_array_get(lt, (size_t)i));
            const char *want = i % 2 == 0 ? "sliding_attention" : "full_attention";
            if (!s || strcmp(s, want))
                return ms_error_set(H->err, MS_EUNSUPPORTED, "%s: layer_types[%" PRId64 "] must be %s (the engine "
                                    "alternates sliding and full attention, as llama.cpp does)", H->cfg_path, i, want);
        }
        double lim;
        TRY(cfg_num(H, "swiglu_limit", false, 7.0, &lim));
        if (lim != 7.0) return ms_error_set(H->err, MS_EUNSUPPORTED, "%s: swiglu_limit %g (only 7 is supported)",
                                            H->cfg_path, lim);
        break;
    }
    case F_DEEPSEEK2: {
        int64_t q_lora;
        v3 = !strcmp(H->model_type, "deepseek_v3");
        TRY(cfg_int(H, "first_k_dense_replace", false, 0, 0, L, &dense_lead));
        TRY(cfg_int(H, "q_lora_rank", false, 0, 0, 1 << 20, &q_lora));
        qr = q_lora;
        TRY(cfg_int(H, "kv_lora_rank", true, 0, 1, 1 << 20, &kvr));
        TRY(cfg_int(H, "qk_nope_head_dim", true, 0, 1, 1 << 16, &nope));
        TRY(cfg_int(H, "qk_rope_head_dim", true, 0, 2, 1 << 16, &rope));
        TRY(cfg_int(H, "v_head_dim", true, 0, 1, 1 << 16, &vd));
        TRY(cfg_int(H, "moe_intermediate_size", true, 0, 1, 1 << 24, &Fe));
        int64_t ns, freq, ng, tg;
        TRY(cfg_int(H, "n_shared_experts", false, 0, 0, 4096, &ns));
        TRY(cfg_int(H, "moe_layer_freq", false, 1, 1, 1, &freq));
        TRY(cfg_int(H, "n_group", false, 1, 1, 64, &ng));
        TRY(cfg_int(H, "topk_group", false, ng, 1, ng, &tg));
        double rsf;
        TRY(cfg_num(H, "routed_scaling_factor", false, 1.0, &rsf));
        TRY(cfg_bool(H, "norm_topk_prob", false, &b));
        /* V3: sigmoid scores, noaux_tc (group-limited selection on the
         * scores plus e_score_correction_bias); the transformers defaults */
        const char *sf = cfg_str(H, H->cfg, "scoring_func");
        if (!sf) sf = v3 ? "sigmoid" : "softmax";
        if (strcmp(sf, "softmax") && strcmp(sf, "sigmoid"))
            return ms_error_set(H->err, MS_EUNSUPPORTED, "%s: scoring_func '%.32s' is not supported for %s",
                                H->cfg_path, sf, H->model_type);
        const char *tm = cfg_str(H, H->cfg, "topk_method");
        if (!tm && v3) tm = "noaux_tc";
        bool grouped = tm && (!strcmp(tm, "group_limited_greedy") || !strcmp(tm, "noaux_tc"));
        if (tm && !grouped && strcmp(tm, "greedy"))
            return ms_error_set(H->err, MS_EUNSUPPORTED, "%s: topk_method '%.32s' is not supported", H->cfg_path, tm);
        need_bias = tm && !strcmp(tm, "noaux_tc");
        S = Fe * ns;
        TRY(set_u32(H, "leading_dense_block_count", dense_lead));
        if (qr) TRY(set_u32(H, "attention.q_lora_rank", qr));
        TRY(set_u32(H, "attention.kv_lora_rank", kvr));
        if (v3) {   /* absorbed MLA as llama.cpp's 2026 converter writes it: one latent KV head */
            TRY(set_u32(H, "attention.head_count_kv", 1));
            TRY(set_u32(H, "attention.key_length", kvr + rope));
            TRY(set_u32(H, "attention.value_length", kvr));
            TRY(set_u32(H, "attention.key_length_mla", nope + rope));
            TRY(set_u32(H, "attention.value_length_mla", vd));
        } else {
            TRY(set_u32(H, "attention.key_length", nope + rope));
            TRY(set_u32(H, "attention.value_length", vd));
        }
        TRY(set_u32(H, "rope.dimension_count", rope));
        TRY(set_u32(H, "expert_feed_forward_length", Fe));
        TRY(set_u32(H, "expert_shared_count", ns));
        TRY(set_f32(H, "expert_weights_scale", rsf));
        TRY(set_bool(H, "expert_weights_norm", b));
        TRY(set_u32(H, "expert_gating_func", strcmp(sf, "sigmoid") ? 1 : 2));
        TRY(set_u32(H, "vocab_size", V));
        if (grouped && ng > 1) {
            TRY(set_u32(H, "expert_group_count", ng));
            TRY(set_u32(H, "expert_group_used_count", tg));
        }
        if (rs && rs_type && !strcmp(rs_type, "yarn")) {
            double f, msad;
            int64_t orig;
            TRY(num_of(H, rs, "rope_scaling.", "factor", true, 0, &f));
            TRY(num_of(H, rs, "rope_scaling.", "mscale_all_dim", false, 0, &msad));
            TRY(cfg_int(H, "max_position_embeddings", true, 0, 1, 1 << 24, &orig));
            json_t *o = cfg_get(rs, "original_max_position_embeddings");
            if (o && json_is_integer(o)) orig = json_integer_value(o);
            if (!(f > 0)) return ms_error_set(H->err, MS_EFORMAT, "%s: rope_scaling.factor must be > 0", H->cfg_path);
            /* factor 1 changes nothing in HF or llama.cpp: written only otherwise */
            if (f != 1.0) {
                TRY(set_str(H, "deepseek2.rope.scaling.type", "yarn"));
                TRY(set_f32(H, "rope.scaling.factor", f));
                TRY(set_u32(H, "rope.scaling.original_context_length", orig));
            }
            TRY(set_f32(H, "rope.scaling.yarn_log_multiplier", 0.1 * msad));
            rs = NULL;
        }
        break;
    }
    }
    if (rs && rs_type && fam == F_GPTOSS && !strcmp(rs_type, "yarn")) {
        double f;
        int64_t orig;
        TRY(num_of(H, rs, "rope_scaling.", "factor", true, 0, &f));
        json_t *o = cfg_get(rs, "original_max_position_embeddings");
        if (!json_is_integer(o))
            return ms_error_set(H->err, MS_EFORMAT, "%s: rope_scaling.original_max_position_embeddings missing",
                                H->cfg_path);
        orig = json_integer_value(o);
        double bf, bs;
        TRY(num_of(H, rs, "rope_scaling.", "beta_fast", false, 32, &bf));
        TRY(num_of(H, rs, "rope_scaling.", "beta_slow", false, 1, &bs));
        if (bf != 32 || bs != 1)
            return ms_error_set(H->err, MS_EUNSUPPORTED, "%s: YaRN beta_fast/beta_slow other than 32/1", H->cfg_path);
        json_t *tr = cfg_get(rs, "truncate");
        if (tr && !json_is_true(tr))
            return ms_error_set(H->err, MS_EUNSUPPORTED, "%s: rope_scaling.truncate false is not supported "
                                "(the engine floors the YaRN correction range, as llama.cpp does)", H->cfg_path);
        TRY(set_str(H, "gpt-oss.rope.scaling.type", "yarn"));
        TRY(set_f32(H, "rope.scaling.factor", f));
        TRY(set_u32(H, "rope.scaling.original_context_length", orig));
        rs = NULL;
    }
    if (rs && rs_type && strcmp(rs_type, "default"))
        return ms_error_set(H->err, MS_EUNSUPPORTED, "%s: rope_scaling type '%.32s' is not supported for %s",
                            H->cfg_path, rs_type, H->model_type);

    /* ---- tensors ---- */
    TRY(put2(H, true, V, E, "token_embd.weight", "model.embed_tokens.weight"));
    const bool phi = fam == F_PHIMOE, oss = fam == F_GPTOSS;
    const bool permute = fam == F_MIXTRAL || fam == F_GRANITE;
    bool attn_bias = false;
    TRY(cfg_bool(H, "attention_bias", false, &attn_bias));
    for (int il = 0; il < (int)L; il++) {
#define P(x) "model.layers.%d." x
        TRY(put1(H, true, E, NM(gg, "blk.%d.attn_norm.weight", il), NM(hf, P("input_layernorm.weight"), il)));
        TRY(put1(H, true, E, NM(gg, oss ? "blk.%d.post_attention_norm.weight" : "blk.%d.ffn_norm.weight", il),
                 NM(hf, P("post_attention_layernorm.weight"), il)));
        if (phi) {
            TRY(put1(H, true, E, NM(gg, "blk.%d.attn_norm.bias", il), NM(hf, P("input_layernorm.bias"), il)));
            TRY(put1(H, true, E, NM(gg, "blk.%d.ffn_norm.bias", il), NM(hf, P("post_attention_layernorm.bias"), il)));
        }
        if (fam == F_DEEPSEEK2) {
            const int64_t dk = nope + rope;
            if (qr) {
                TRY(put2(H, true, qr, E, NM(gg, "blk.%d.attn_q_a.weight", il), NM(hf, P("self_attn.q_a_proj.weight"), il)));
                TRY(put1(H, true, qr, NM(gg, "blk.%d.attn_q_a_norm.weight", il),
                         NM(hf, P("self_attn.q_a_layernorm.weight"), il)));
                TRY(put2(H, true, nH * dk, qr, NM(gg, "blk.%d.attn_q_b.weight", il), NM(hf, P("self_attn.q_b_proj.weight"), il)));
            } else {
                TRY(put2(H, true, nH * dk, E, NM(gg, "blk.%d.attn_q.weight", il), NM(hf, P("self_attn.q_proj.weight"), il)));
            }
            TRY(put2(H, true, kvr + rope, E, NM(gg, "blk.%d.attn_kv_a_mqa.weight", il),
                     NM(hf, P("self_attn.kv_a_proj_with_mqa.weight"), il)));
            TRY(put1(H, true, kvr, NM(gg, "blk.%d.attn_kv_a_norm.weight", il), NM(hf, P("self_attn.kv_a_layernorm.weight"), il)));
            if (v3) TRY(put_kv_b_split(H, il, nH, nope, vd, kvr, NM(hf, P("self_attn.kv_b_proj.weight"), il)));
            else TRY(put2(H, true, nH * (nope + vd), kvr, NM(gg, "blk.%d.attn_kv_b.weight", il),
                          NM(hf, P("self_attn.kv_b_proj.weight"), il)));
            TRY(put2(H, true, E, nH * vd, NM(gg, "blk.%d.attn_output.weight", il), NM(hf, P("self_attn.o_proj.weight"), il)));
        } else {
            const bool qkv_b = fam == F_QWEN2MOE || phi || attn_bias;
            if (permute) {
                TRY(put_permuted(H, true, 2, nH * hd, E, nH, NM(gg, "blk.%d.attn_q.weight", il), NM(hf, P("self_attn.q_proj.weight"), il)));
                TRY(put_permuted(H, true, 2, nKV * hd, E, nKV, NM(gg, "blk.%d.attn_k.weight", il), NM(hf, P("self_attn.k_proj.weight"), il)));
                TRY(put_permuted(H, qkv_b, 1, nH * hd, 1, nH, NM(gg, "blk.%d.attn_q.bias", il), NM(hf, P("self_attn.q_proj.bias"), il)));
                TRY(put_permuted(H, qkv_b, 1, nKV * hd, 1, nKV, NM(gg, "blk.%d.attn_k.bias", il), NM(hf, P("self_attn.k_proj.bias"), il)));
            } else {
                TRY(put2(H, true, nH * hd, E, NM(gg, "blk.%d.attn_q.weight", il), NM(hf, P("self_attn.q_proj.weight"), il)));
                TRY(put2(H, true, nKV * hd, E, NM(gg, "blk.%d.attn_k.weight", il), NM(hf, P("self_attn.k_proj.weight"), il)));
                TRY(put1(H, qkv_b, nH * hd, NM(gg, "blk.%d.attn_q.bias", il), NM(hf, P("self_attn.q_proj.bias"), il)));
                TRY(put1(H, qkv_b, nKV * hd, NM(gg, "blk.%d.attn_k.bias", il), NM(hf, P("self_attn.k_proj.bias"), il)));
            }
            TRY(put2(H, true, nKV * hd, E, NM(gg, "blk.%d.attn_v.weight", il), NM(hf, P("self_attn.v_proj.weight"), il)));
            TRY(put1(H, qkv_b, nKV * hd, NM(gg, "blk.%d.attn_v.bias", il), NM(hf, P("self_attn.v_proj.bias"), il)));
            TRY(put2(H, true, E, nH * hd, NM(gg, "blk.%d.attn_output.weight", il), NM(hf, P("self_attn.o_proj.weight"), il)));
            TRY(put1(H, phi || attn_bias, E, NM(gg, "blk.%d.attn_output.bias", il), NM(hf, P("self_attn.o_proj.bias"), il)));
            if (fam == F_OLMOE) {
                TRY(put1(H, true, nH * hd, NM(gg, "blk.%d.attn_q_norm.weight", il), NM(hf, P("self_attn.q_norm.weight"), il)));
                TRY(put1(H, true, nKV * hd, NM(gg, "blk.%d.attn_k_norm.weight", il), NM(hf, P("self_attn.k_norm.weight"), il)));
            } else if (fam == F_QWEN3MOE) {
                TRY(put1(H, true, hd, NM(gg, "blk.%d.attn_q_norm.weight", il), NM(hf, P("self_attn.q_norm.weight"), il)));
                TRY(put1(H, true, hd, NM(gg, "blk.%d.attn_k_norm.weight", il), NM(hf, P("self_attn.k_norm.weight"), il)));
            }
            if (oss) TRY(put1(H, true, nH, NM(gg, "blk.%d.attn_sinks.weight", il), NM(hf, P("self_attn.sinks"), il)));
        }

        /* FFN */
        if (fam == F_DEEPSEEK2 && il < dense_lead) {
            TRY(put2(H, true, ff, E, NM(gg, "blk.%d.ffn_gate.weight", il), NM(hf, P("mlp.gate_proj.weight"), il)));
            TRY(put2(H, true, ff, E, NM(gg, "blk.%d.ffn_up.weight", il), NM(hf, P("mlp.up_proj.weight"), il)));
            TRY(put2(H, true, E, ff, NM(gg, "blk.%d.ffn_down.weight", il), NM(hf, P("mlp.down_proj.weight"), il)));
            continue;
        }
        switch (fam) {
        case F_OLMOE: case F_QWEN2MOE: case F_QWEN3MOE: case F_DEEPSEEK2:
            TRY(put2(H, true, NE, E, NM(gg, "blk.%d.ffn_gate_inp.weight", il), NM(hf, P("mlp.gate.weight"), il)));
            TRY(put_stacked(H, il, NE, Fe, E, NM(gg, "blk.%d.ffn_gate_exps.weight", il), P("mlp.experts.%d.gate_proj.weight")));
            TRY(put_stacked(H, il, NE, Fe, E, NM(gg, "blk.%d.ffn_up_exps.weight", il), P("mlp.experts.%d.up_proj.weight")));
            TRY(put_stacked(H, il, NE, E, Fe, NM(gg, "blk.%d.ffn_down_exps.weight", il), P("mlp.experts.%d.down_proj.weight")));
            break;
        case F_MIXTRAL: case F_PHIMOE:
            TRY(put2(H, true, NE, E, NM(gg, "blk.%d.ffn_gate_inp.weight", il), NM(hf, P("block_sparse_moe.gate.weight"), il)));
            TRY(put_stacked(H, il, NE, Fe, E, NM(gg, "blk.%d.ffn_gate_exps.weight", il), P("block_sparse_moe.experts.%d.w1.weight")));
            TRY(put_stacked(H, il, NE, Fe, E, NM(gg, "blk.%d.ffn_up_exps.weight", il), P("block_sparse_moe.experts.%d.w3.weight")));
            TRY(put_stacked(H, il, NE, E, Fe, NM(gg, "blk.%d.ffn_down_exps.weight", il), P("block_sparse_moe.experts.%d.w2.weight")));
            break;
        case F_GRANITE: {
            int64_t s3[3] = { NE, E, Fe };
            TRY(put2(H, true, NE, E, NM(gg, "blk.%d.ffn_gate_inp.weight", il),
                     NM(hf, P("block_sparse_moe.router.layer.weight"), il)));
            char gg2[96];
            TRY(put_split_halves(H, 3, NE, Fe, E, NM(gg, "blk.%d.ffn_gate_exps.weight", il),
                                 NM(gg2, "blk.%d.ffn_up_exps.weight", il), NM(hf, P("block_sparse_moe.input_linear.weight"), il)));
            TRY(put(H, true, 3, s3, NM(gg, "blk.%d.ffn_down_exps.weight", il), NM(hf, P("block_sparse_moe.output_linear.weight"), il)));
            if (S) {
                TRY(put_split_halves(H, 2, 1, S, E, NM(gg, "blk.%d.ffn_gate_shexp.weight", il),
                                     NM(gg2, "blk.%d.ffn_up_shexp.weight", il), NM(hf, P("shared_mlp.input_linear.weight"), il)));
                TRY(put2(H, true, E, S, NM(gg, "blk.%d.ffn_down_shexp.weight", il), NM(hf, P("shared_mlp.output_linear.weight"), il)));
            }
            break;
        }
        case F_GPTOSS:
            TRY(put2(H, true, NE, E, NM(gg, "blk.%d.ffn_gate_inp.weight", il), NM(hf, P("mlp.router.weight"), il)));
            TRY(put1(H, true, NE, NM(gg, "blk.%d.ffn_gate_inp.bias", il), NM(hf, P("mlp.router.bias"), il)));
            TRY(put_oss_experts(H, il, NE, E, Fe));
            break;
        }
        if (fam == F_QWEN2MOE) {
            TRY(put2(H, true, S, E, NM(gg, "blk.%d.ffn_gate_shexp.weight", il), NM(hf, P("mlp.shared_expert.gate_proj.weight"), il)));
            TRY(put2(H, true, S, E, NM(gg, "blk.%d.ffn_up_shexp.weight", il), NM(hf, P("mlp.shared_expert.up_proj.weight"), il)));
            TRY(put2(H, true, E, S, NM(gg, "blk.%d.ffn_down_shexp.weight", il), NM(hf, P("mlp.shared_expert.down_proj.weight"), il)));
            /* Linear(hidden, 1): [1, E] in HF, 1-D {E} in llama.cpp's files */
            int64_t s[2] = { 1, E };
            int rc;
            StTensor *t = need(H, NM(hf, P("mlp.shared_expert_gate.weight"), il), 2, s, true, &rc);
            if (!t) return rc;
            int64_t ne[1] = { E };
            TRY(add(H, NM(gg, "blk.%d.ffn_gate_inp_shexp.weight", il), t->type, 1, ne, t->data, t->nbytes));
        }
        if (fam == F_DEEPSEEK2) {
            TRY(put1(H, need_bias, NE, NM(gg, "blk.%d.exp_probs_b.bias", il), NM(hf, P("mlp.gate.e_score_correction_bias"), il)));
            if (S) {
                TRY(put2(H, true, S, E, NM(gg, "blk.%d.ffn_gate_shexp.weight", il), NM(hf, P("mlp.shared_experts.gate_proj.weight"), il)));
                TRY(put2(H, true, S, E, NM(gg, "blk.%d.ffn_up_shexp.weight", il), NM(hf, P("mlp.shared_experts.up_proj.weight"), il)));
                TRY(put2(H, true, E, S, NM(gg, "blk.%d.ffn_down_shexp.weight", il), NM(hf, P("mlp.shared_experts.down_proj.weight"), il)));
            }
        }
#undef P
    }
    TRY(put1(H, true, E, "output_norm.weight", "model.norm.weight"));
    if (phi) TRY(put1(H, true, E, "output_norm.bias", "model.norm.bias"));
    if (tie) {
        StTensor *t = st_find(H, "lm_head.weight");
        if (t) t->used = true;   /* tied: HF ignores a stored copy too */
    } else {
        TRY(put2(H, true, V, E, "output.weight", "lm_head.weight"));
        if (phi) TRY(put1(H, true, V, "output.bias", "lm_head.bias"));
    }
    /* DeepSeek-V3's multi-token-prediction layers follow the last layer;
     * next-token inference does not use them (llama.cpp's converter skips them) */
    int64_t mtp = 0;
    if (fam == F_DEEPSEEK2) TRY(cfg_int(H, "num_nextn_predict_layers", false, 0, 0, 64, &mtp));
    for (int64_t i = 0; i < H->nt; i++) {
        const char *n = H->t[i].name;
        static const char inv[] = "rotary_emb.inv_freq";   /* a cache some checkpoints store */
        size_t l = strlen(n), il = sizeof inv - 1;
        if (H->t[i].used || (l >= il && !strcmp(n + l - il, inv))) continue;
        long long li = -1;
        if (mtp && sscanf(n, "model.layers.%lld.", &li) == 1 && li >= L && li < L + mtp) continue;
        return ms_error_set(H->err, MS_EFORMAT, "%s: tensor %s is not part of a %s model", H->files[H->t[i].file],
                            n, H->model_type);
    }
    return 0;
}

/* ------------------------------------------------------------------ tokenizer.json */

/* Pre-tokenizer setups whose behaviour the engine's byte-level BPE already
 * has under a tokenizer.ggml.pre name: the Split regexes of the real
 * tokenizer.json files (as llama.cpp's llama-vocab.cpp quotes them), each
 * followed by ByteLevel without its own regex; or ByteLevel with its
 * built-in GPT-2 regex alone. */
#define RXI_CONTRACTIONS "(?i:'s|'t|'re|'ve|'m|'ll|'d)"
static const struct { const char *desc, *pre; } k_pre[] = {
    { "bytelevel+regex", "gpt-2" },
    { "split:" RXI_CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
      ";bytelevel", "qwen2" },
    { "split:" RXI_CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
      ";bytelevel", "llama3" },
    { "split:[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+" RXI_CONTRACTIONS "?"
      "|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*" RXI_CONTRACTIONS "?"
      "|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+;bytelevel", "gpt-4o" },
    { "split:\\p{N}{1,3};split:[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+;"
      "split:[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*"
      "|\\s*[\r\n]+|\\s+(?!\\S)|\\s+;bytelevel", "deepseek-v3" },
};

typedef struct { char *s; size_t n, cap; bool oom; } Buf;

static void buf_add(Buf *b, const char *s)
{
    size_t l = strlen(s);
    if (b->oom) return;
    if (b->n + l + 1 > b->cap) {
        size_t c = (b->n + l + 1) * 2;
        char *p = realloc(b->s, c);
        if (!p) { b->oom = true; return; }
        b->s = p;
        b->cap = c;
    }
    memcpy(b->s + b->n, s, l + 1);
    b->n += l;
}

/* The regex of HF's ByteLevel pre-tokenizer with use_regex (GPT-2's). */
#define HF_BYTELEVEL_RX "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"

typedef struct { const char *v[16]; int n; } RxList;

/* One pre-tokenizer into the description and its regex into rx; false
 * when not representable. */
static bool describe_pre(const json_t *p, Buf *b, RxList *rx)
{
    const char *ty = json_string_value(json_object_get(p, "type"));
    if (!ty) return false;
    if (!strcmp(ty, "ByteLevel")) {
        if (json_is_true(json_object_get(p, "add_prefix_space"))) return false;
        json_t *ur = json_object_get(p, "use_regex");
        bool use = !(ur && !json_is_true(ur));
        buf_add(b, use ? "bytelevel+regex" : "bytelevel");
        if (use) {
            if (rx->n == 16) return false;
            rx->v[rx->n++] = HF_BYTELEVEL_RX;
        }
        return true;
    }
    if (!strcmp(ty, "Metaspace")) {   /* handled by the caller (first only) */
        buf_add(b, "metaspace");
        return true;
    }
    if (!strcmp(ty, "Digits")) {   /* digits isolated, one by one or in runs */
        bool one = json_is_true(json_object_get(p, "individual_digits"));
        buf_add(b, one ? "digits" : "digits+");
        if (rx->n == 16) return false;
        rx->v[rx->n++] = one ? "\\p{N}" : "\\p{N}+";
        return true;
    }
    if (!strcmp(ty, "Split")) {
        const char *re = json_string_value(json_object_get(json_object_get(p, "pattern"), "Regex"));
        const char *beh = json_string_value(json_object_get(p, "behavior"));
        if (!re || !beh || strcmp(beh, "Isolated") || json_is_true(json_object_get(p, "invert"))) return false;
        buf_add(b, "split:");
        buf_add(b, re);
        if (rx->n == 16) return false;
        rx->v[rx->n++] = re;
        return true;
    }
    return false;
}

/* Normalizer / decoder steps for tokenizer.hf.{norm,dec}_* */
typedef struct {
    const char *op[32], *a[32], *b[32];
    int32_t n[64];
    int k;
    char ch[32][8];   /* characters held as strings (Strip, Metaspace) */
} Steps;

static bool step_add(Steps *st, const char *op, const char *a, const char *b, int n1, int n2)
{
    if (st->k == 32) return false;
    st->op[st->k] = op;
    st->a[st->k] = a ? a : "";
    st->b[st->k] = b ? b : "";
    st->n[2 * st->k] = n1;
    st->n[2 * st->k + 1] = n2;
    st->k++;
    return true;
}

/* one character of a JSON string (Strip's content, Metaspace's replacement) */
static const char *one_char(const json_t *v)
{
    const char *s = json_string_value(v);
    if (!s || !*s) return NULL;
    size_t l = strlen(s), cl = (unsigned char)s[0] < 0x80 ? 1 : (unsigned char)s[0] < 0xe0 ? 2 : (unsigned char)s[0] < 0xf0 ? 3 : 4;
    return l == cl ? s : NULL;
}

/* normalizer: NFC, Prepend, Replace (string pattern), Sequences of them */
static bool describe_norm(const json_t *n, Steps *st, const char **bad)
{
    const char *ty = json_string_value(json_object_get(n, "type"));
    *bad = ty ? ty : "?";
    if (!ty) return false;
    if (!strcmp(ty, "Sequence")) {
        json_t *seq = json_object_get(n, "normalizers");
        if (!json_is_array(seq)) return false;
        for (size_t i = 0; i < json_array_size(seq); i++)
            if (!describe_norm(json_array_get(seq, i), st, bad)) return false;
        return true;
    }
    if (!strcmp(ty, "NFC")) return step_add(st, "NFC", NULL, NULL, 0, 0);
    if (!strcmp(ty, "Prepend")) {
        const char *p = json_string_value(json_object_get(n, "prepend"));
        return p && step_add(st, "Prepend", p, NULL, 0, 0);
    }
    if (!strcmp(ty, "Replace")) {
        const char *pat = json_string_value(json_object_get(json_object_get(n, "pattern"), "String"));
        const char *c = json_string_value(json_object_get(n, "content"));
        if (!pat) *bad = "Replace with a Regex pattern";
        return pat && *pat && c && step_add(st, "Replace", pat, c, 0, 0);
    }
    return false;
}

/* decoder: ByteLevel, Replace (string), ByteFallback, Fuse, Strip,
 * Metaspace, Sequences of them */
static bool describe_dec(const json_t *d, Steps *st, const char **bad)
{
    const char *ty = json_string_value(json_object_get(d, "type"));
    *bad = ty ? ty : "?";
    if (!ty) return false;
    if (!strcmp(ty, "Sequence")) {
        json_t *seq = json_object_get(d, "decoders");
        if (!json_is_array(seq)) return false;
        for (size_t i = 0; i < json_array_size(seq); i++)
            if (!describe_dec(json_array_get(seq, i), st, bad)) return false;
        return true;
    }
    if (!strcmp(ty, "ByteLevel") || !strcmp(ty, "ByteFallback") || !strcmp(ty, "Fuse"))
        return step_add(st, ty, NULL, NULL, 0, 0);
    if (!strcmp(ty, "Replace")) {
        const char *pat = json_string_value(json_object_get(json_object_get(d, "pattern"), "String"));
        const char *c = json_string_value(json_object_get(d, "content"));
        return pat && *pat && c && step_add(st, "Replace", pat, c, 0, 0);
    }
    if (!strcmp(ty, "Strip")) {
        const char *c = one_char(json_object_get(d, "content"));
        json_t *a = json_object_get(d, "start"), *b = json_object_get(d, "stop");
        if (!c || !json_is_integer(a) || !json_is_integer(b) || json_integer_value(a) < 0 || json_integer_value(b) < 0 ||
            json_integer_value(a) > 1 << 20 || json_integer_value(b) > 1 << 20)
            return false;
        return step_add(st, "Strip", c, NULL, (int)json_integer_value(a), (int)json_integer_value(b));
    }
    if (!strcmp(ty, "Metaspace")) {
        const char *c = one_char(json_object_get(d, "replacement"));
        const char *sc = json_string_value(json_object_get(d, "prepend_scheme"));
        int scheme = !sc || !strcmp(sc, "always") ? 0 : !strcmp(sc, "first") ? 1 : !strcmp(sc, "never") ? 2 : -1;
        if (json_is_false(json_object_get(d, "add_prefix_space"))) scheme = 2;
        return c && scheme >= 0 && step_add(st, "Metaspace", c, NULL, scheme, 0);
    }
    return false;
}

static int set_steps(MsGguf *g, const char *key, const Steps *st)
{
    char k[64];
    uint64_t la[32], lb[32], lo[32];
    for (int i = 0; i < st->k; i++) la[i] = strlen(st->a[i]), lb[i] = strlen(st->b[i]), lo[i] = strlen(st->op[i]);
    int rc = 0;
    snprintf(k, sizeof k, "%s_op", key);
    rc = rc || ms_gguf_mem_set_arr_str(g, k, st->op, lo, (uint64_t)st->k);
    snprintf(k, sizeof k, "%s_a", key);
    rc = rc || ms_gguf_mem_set_arr_str(g, k, st->a, la, (uint64_t)st->k);
    snprintf(k, sizeof k, "%s_b", key);
    rc = rc || ms_gguf_mem_set_arr_str(g, k, st->b, lb, (uint64_t)st->k);
    snprintf(k, sizeof k, "%s_n", key);
    rc = rc || ms_gguf_mem_set_arr(g, k, MS_GGUF_INT32, st->n, 2 * (uint64_t)st->k);
    return rc;
}

static int tok_err(MsError *err, const char *path, int code, const char *what)
{
    return ms_error_set(err, code, "%s: %s", path, what);
}

/* id of a token named by tokenizer_config.json ("<s>" or {"content": ..}) */
static int64_t special_id(const json_t *vocab, const json_t *added, const json_t *v)
{
    const char *s = json_is_string(v) ? json_string_value(v) : json_string_value(json_object_get(v, "content"));
    if (!s) return -1;
    size_t i;
    json_t *a;
    json_array_foreach(added, i, a)
        if (json_is_string(json_object_get(a, "content")) && !strcmp(json_string_value(json_object_get(a, "content")), s))
            return json_integer_value(json_object_get(a, "id"));
    json_t *x = json_object_get(vocab, s);
    return json_is_integer(x) ? json_integer_value(x) : -1;
}

/* tokenizer.json (+ tokenizer_config.json, config.json when given) into
 * tokenizer.ggml.* keys.  min_vocab: pad the vocabulary to this size with
 * unused [PADi] tokens, as llama.cpp's converter does for config.json's
 * vocab_size. */
static int load_tokenizer(MsGguf *g, const char *path, json_t *tj, json_t *tc, json_t *cfg, int64_t min_vocab, MsError *err)
{
    json_t *model = json_object_get(tj, "model");
    const char *mt = json_string_value(json_object_get(model, "type"));
    if (!json_is_object(model)) return tok_err(err, path, MS_EFORMAT, "no \"model\" object");
    if (!mt || strcmp(mt, "BPE")) {
        return ms_error_set(err, MS_EUNSUPPORTED, "%s: tokenizer model type '%.32s' is not supported (only BPE)", path,
                            mt ? mt : "(none)");
    }
    bool byte_fallback = json_is_true(json_object_get(model, "byte_fallback"));
    bool fuse_unk = json_is_true(json_object_get(model, "fuse_unk"));
    if ((json_is_string(json_object_get(model, "continuing_subword_prefix")) &&
         *json_string_value(json_object_get(model, "continuing_subword_prefix"))) ||
        (json_is_string(json_object_get(model, "end_of_word_suffix")) &&
         *json_string_value(json_object_get(model, "end_of_word_suffix"))))
        return tok_err(err, path, MS_EUNSUPPORTED, "BPE with continuing_subword_prefix or end_of_word_suffix is not supported");
    json_t *dropout = json_object_get(model, "dropout");
    if (json_is_number(dropout) && json_number_value(dropout) != 0)
        return tok_err(err, path, MS_EUNSUPPORTED, "BPE with dropout is not supported (tokenization would be random)");
    json_t *vocab = json_object_get(model, "vocab"), *merges = json_object_get(model, "merges");
    json_t *added = json_object_get(tj, "added_tokens");
    if (!json_is_object(vocab) || !json_is_array(merges))
        return tok_err(err, path, MS_EFORMAT, "model.vocab must be an object and model.merges an array");
    if (added && !json_is_array(added)) return tok_err(err, path, MS_EFORMAT, "added_tokens must be an array");

    /* normalizer: NFC, Prepend, Replace and Sequences of them */
    Steps norm = { .k = 0 }, decs = { .k = 0 };
    const char *bad = NULL;
    json_t *nz = json_object_get(tj, "normalizer");
    if (nz && !json_is_null(nz) && !describe_norm(nz, &norm, &bad))
        return ms_error_set(err, MS_EUNSUPPORTED, "%s: normalizer '%.40s' is not supported (NFC, Prepend, Replace with "
                            "a string, Sequence)", path, bad);
    bool nz_nfc = norm.k > 0;
    for (int i = 0; i < norm.k; i++) nz_nfc = nz_nfc && !strcmp(norm.op[i], "NFC");
    /* pre-tokenizer: none, or ByteLevel last, after Split (Isolated regex)
     * and Digits, with Metaspace only first, in a Sequence */
    json_t *pt = json_object_get(tj, "pre_tokenizer");
    Buf d = { 0 };
    RxList rx = { .n = 0 };
    bool ok = json_is_object(pt) || !pt || json_is_null(pt);
    json_t *meta = NULL;
    char meta_rx[64];
    if (json_is_object(pt)) {
        json_t *seq = json_object_get(pt, "pretokenizers");
        const char *ty0 = json_string_value(json_object_get(pt, "type"));
        bool is_seq = ty0 && !strcmp(ty0, "Sequence");
        json_t *first = is_seq ? json_array_get(seq, 0) : pt;
        const char *tyf = json_string_value(json_object_get(first, "type"));
        if (tyf && !strcmp(tyf, "Metaspace")) {
            meta = first;
            const char *c = one_char(json_object_get(meta, "replacement"));
            const char *sc = json_string_value(json_object_get(meta, "prepend_scheme"));
            json_t *sp = json_object_get(meta, "split");
            if (!c || (sc && strcmp(sc, "always") && strcmp(sc, "first") && strcmp(sc, "never")) ||
                (sp && !json_is_boolean(sp)))
                ok = false;
            else if (!sp || json_is_true(sp)) {   /* split before each replacement (MergedWithNext) */
                ucs4_t cp = 0;
                u8_mbtouc(&cp, (const uint8_t *)c, strlen(c));
                snprintf(meta_rx, sizeof meta_rx, "\\x{%X}[^\\x{%X}]*", (unsigned)cp, (unsigned)cp);
                rx.v[rx.n++] = meta_rx;
            }
        }
        if (is_seq) {
            size_t i;
            json_t *p;
            if (!json_is_array(seq)) ok = false;
            json_array_foreach(seq, i, p) {
                if (i) buf_add(&d, ";");
                const char *ty = json_string_value(json_object_get(p, "type"));
                ok = ok && describe_pre(p, &d, &rx) && !(ty && !strcmp(ty, "Metaspace") && i != 0);
                /* byte-level mapping must come last: the regexes see the text */
                if (ty && !strcmp(ty, "ByteLevel") && i + 1 != json_array_size(seq)) ok = false;
            }
        } else {
            ok = ok && describe_pre(pt, &d, &rx);
        }
    }
    if (d.oom) { free(d.s); return ms_error_set(err, MS_ENOMEM, "%s: out of memory", path); }
    /* the llama.cpp name of a setup it knows (for a GGUF written by
     * convert); another combination of supported pieces still runs, with
     * the file's regexes, but has no llama.cpp equivalent */
    const char *pre = NULL;
    bool pre_exact = true;
    bool byte_level = ok && d.s && (strstr(d.s, "bytelevel") != NULL);
    for (size_t i = 0; ok && d.s && i < sizeof k_pre / sizeof k_pre[0]; i++)
        if (!strcmp(d.s, k_pre[i].desc)) pre = k_pre[i].pre;
    free(d.s);
    if (!pre && ok) {
        pre = "gpt-2";   /* flags only: the steps are the file's */
        pre_exact = false;
    }
    if (!pre)
        return tok_err(err, path, MS_EUNSUPPORTED, "pre_tokenizer is not supported (ByteLevel last, after Split with "
                       "a regex in Isolated mode or Digits, Metaspace first, in a Sequence)");
    if (byte_level && (byte_fallback || meta))
        return tok_err(err, path, MS_EUNSUPPORTED, "ByteLevel with byte_fallback or Metaspace is not supported");
    json_t *dec = json_object_get(tj, "decoder");
    if (dec && !json_is_null(dec) && !describe_dec(dec, &decs, &bad))
        return ms_error_set(err, MS_EUNSUPPORTED, "%s: decoder '%.40s' is not supported (ByteLevel, Replace, "
                            "ByteFallback, Fuse, Strip, Metaspace, Sequence)", path, bad);
    if (norm.k && !nz_nfc) pre_exact = false;   /* llama.cpp's BPE has no such normalizer */

    /* vocabulary: ids 0..n-1; holes become unused [PADi] tokens */
    int64_t n = min_vocab > 0 ? min_vocab : 0;
    const char *k;
    json_t *v;
    json_object_foreach(vocab, k, v) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= (1 << 26))
            return ms_error_set(err, MS_EFORMAT, "%s: vocab id of token '%.40s' is not an integer in [0, 2^26)", path, k);
        if (json_integer_value(v) + 1 > n) n = json_integer_value(v) + 1;
    }
    size_t ai;
    json_t *a;
    json_array_foreach(added, ai, a) {
        json_t *id = json_object_get(a, "id");
        if (!json_is_integer(id) || json_integer_value(id) < 0 || json_integer_value(id) >= (1 << 26)
            || !json_is_string(json_object_get(a, "content")))
            return ms_error_set(err, MS_EFORMAT, "%s: added_tokens[%zu] needs an id in [0, 2^26) and a content string",
                                path, ai);
        if (json_integer_value(id) + 1 > n) n = json_integer_value(id) + 1;
    }
    if (n == 0) return tok_err(err, path, MS_EFORMAT, "empty vocabulary");
    /* holes become [PADi] tokens: a few are normal, millions (one absurd id
     * in a small file) would only cost memory */
    int64_t listed = (int64_t)json_object_size(vocab) + (int64_t)json_array_size(added);
    if (n > min_vocab && n > listed + 65536)
        return ms_error_set(err, MS_EFORMAT, "%s: token ids reach %" PRId64 " but only %" PRId64 " tokens are listed "
                            "(more than 65536 ids unused)", path, n - 1, listed);
    const char **tok = calloc((size_t)n, sizeof *tok);
    uint64_t *len = calloc((size_t)n, sizeof *len);
    int32_t *type = calloc((size_t)n, sizeof *type);
    char *pads = NULL;
    int32_t *added_id = NULL, *added_fl = NULL;
    const char **mg = NULL;
    uint64_t *mlen = NULL;
    char *mbuf = NULL;
    int rc = 0;
    if (!tok || !len || !type) { rc = ms_error_set(err, MS_ENOMEM, "%s: out of memory", path); goto out; }
    json_object_foreach(vocab, k, v) {
        int64_t id = json_integer_value(v);
        if (tok[id]) { rc = ms_error_set(err, MS_EFORMAT, "%s: vocab id %" PRId64 " is used twice", path, id); goto out; }
        tok[id] = k;
        len[id] = strlen(k);
        type[id] = 1;   /* normal */
    }
    if (byte_fallback)   /* <0xXX> tokens are bytes */
        for (int64_t i = 0; i < n; i++)
            if (tok[i] && len[i] == 6 && !strncmp(tok[i], "<0x", 3) && tok[i][5] == '>' && isxdigit((unsigned char)tok[i][3])
                && isxdigit((unsigned char)tok[i][4]))
                type[i] = 6;
    size_t n_added = json_array_size(added);
    added_id = calloc(n_added ? n_added : 1, sizeof *added_id);
    added_fl = calloc(n_added ? n_added : 1, sizeof *added_fl);
    if (!added_id || !added_fl) { rc = ms_error_set(err, MS_ENOMEM, "%s: out of memory", path); goto out; }
    json_array_foreach(added, ai, a) {
        int64_t id = json_integer_value(json_object_get(a, "id"));
        tok[id] = json_string_value(json_object_get(a, "content"));
        len[id] = strlen(tok[id]);
        bool special = json_is_true(json_object_get(a, "special"));
        type[id] = special ? 3 : 4;   /* control : user-defined */
        /* HF's AddedToken flags; normalized defaults to !special */
        json_t *nm = json_object_get(a, "normalized");
        bool normalized = json_is_boolean(nm) ? json_is_true(nm) : !special;
        added_id[ai] = (int32_t)id;
        added_fl[ai] = (json_is_true(json_object_get(a, "lstrip")) ? 1 : 0) | (json_is_true(json_object_get(a, "rstrip")) ? 2 : 0)
                     | (json_is_true(json_object_get(a, "single_word")) ? 4 : 0) | (normalized ? 8 : 0) | (special ? 16 : 0);
    }
    int64_t n_pad = 0;
    for (int64_t i = 0; i < n; i++) n_pad += !tok[i];
    if (n_pad) {
        if (!(pads = malloc((size_t)n_pad * 24))) { rc = ms_error_set(err, MS_ENOMEM, "%s: out of memory", path); goto out; }
        char *p = pads;
        for (int64_t i = 0; i < n; i++)
            if (!tok[i]) {
                int l = snprintf(p, 24, "[PAD%" PRId64 "]", i);
                tok[i] = p;
                len[i] = (uint64_t)l;
                type[i] = 5;   /* unused */
                p += 24;
            }
    }
    /* merges: "a b" strings, or [a, b] pairs in newer files */
    size_t nm = json_array_size(merges), mtot = 0;
    for (size_t i = 0; i < nm; i++) {
        json_t *m = json_array_get(merges, i);
        if (json_is_string(m)) mtot += strlen(json_string_value(m)) + 1;
        else if (json_is_array(m) && json_array_size(m) == 2 && json_is_string(json_array_get(m, 0))
                 && json_is_string(json_array_get(m, 1)))
            mtot += strlen(json_string_value(json_array_get(m, 0))) + strlen(json_string_value(json_array_get(m, 1))) + 2;
        else { rc = ms_error_set(err, MS_EFORMAT, "%s: model.merges[%zu] is neither \"a b\" nor [a, b]", path, i); goto out; }
    }
    mg = calloc(nm ? nm : 1, sizeof *mg);
    mlen = calloc(nm ? nm : 1, sizeof *mlen);
    mbuf = malloc(mtot ? mtot : 1);
    if (!mg || !mlen || !mbuf) { rc = ms_error_set(err, MS_ENOMEM, "%s: out of memory", path); goto out; }
    char *mp = mbuf;
    for (size_t i = 0; i < nm; i++) {
        json_t *m = json_array_get(merges, i);
        int l = json_is_string(m) ? sprintf(mp, "%s", json_string_value(m))
              : sprintf(mp, "%s %s", json_string_value(json_array_get(m, 0)), json_string_value(json_array_get(m, 1)));
        mg[i] = mp;
        mlen[i] = (uint64_t)l;
        mp += l + 1;
    }
    /* special ids: tokenizer_config.json's names, else config.json's ids */
    const char *names[3] = { "bos_token", "eos_token", "pad_token" };
    const char *cids[3] = { "bos_token_id", "eos_token_id", "pad_token_id" };
    const char *keys[3] = { "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id", "tokenizer.ggml.padding_token_id" };
    for (int i = 0; i < 3; i++) {
        int64_t id = tc ? special_id(vocab, added, json_object_get(tc, names[i])) : -1;
        json_t *ci = cfg ? json_object_get(cfg, cids[i]) : NULL;
        if (id < 0 && json_is_integer(ci)) id = json_integer_value(ci);
        if (id < 0) continue;
        if (id >= n) { rc = ms_error_set(err, MS_EFORMAT, "%s: %s %" PRId64 " is outside the vocabulary", path, cids[i], id); goto out; }
        uint32_t u = (uint32_t)id;
        if (ms_gguf_mem_set(g, keys[i], MS_GGUF_UINT32, &u)) { rc = ms_error_set(err, MS_ENOMEM, "%s: out of memory", path); goto out; }
    }
    /* BOS/EOS: the post-processor's template when it has one, else
     * tokenizer_config.json's add_bos_token / add_eos_token */
    bool add_bos = false, add_eos = false, tmpl = false;
    json_t *pp = json_object_get(tj, "post_processor");
    json_t *procs = json_is_array(json_object_get(pp, "processors")) ? json_object_get(pp, "processors") : NULL;
    for (size_t i = 0; i < (procs ? json_array_size(procs) : 1); i++) {
        json_t *p = procs ? json_array_get(procs, i) : pp;
        const char *pt2 = json_string_value(json_object_get(p, "type"));
        if (!pt2 || strcmp(pt2, "TemplateProcessing")) continue;
        json_t *single = json_object_get(p, "single");
        size_t ns = json_array_size(single);
        tmpl = true;
        add_bos = ns > 0 && json_object_get(json_array_get(single, 0), "SpecialToken");
        add_eos = ns > 1 && json_object_get(json_array_get(single, ns - 1), "SpecialToken");
        /* the ids the template adds are its special_tokens' own */
        for (int e = 0; e < 2; e++) {
            if (!(e ? add_eos : add_bos)) continue;
            json_t *st = json_object_get(json_array_get(single, e ? ns - 1 : 0), "SpecialToken");
            const char *nm = json_string_value(json_object_get(st, "id"));
            json_t *ids = json_object_get(json_object_get(json_object_get(p, "special_tokens"), nm ? nm : ""), "ids");
            json_t *id0 = json_array_get(ids, 0);
            if (json_array_size(ids) != 1 || !json_is_integer(id0) || json_integer_value(id0) < 0 ||
                json_integer_value(id0) >= n)
                continue;   /* several ids or none: the names of tokenizer_config.json decide */
            uint32_t u = (uint32_t)json_integer_value(id0);
            if (ms_gguf_mem_set(g, e ? keys[1] : keys[0], MS_GGUF_UINT32, &u)) {
                rc = ms_error_set(err, MS_ENOMEM, "%s: out of memory", path);
                goto out;
            }
        }
    }
    if (!tmpl && tc) {
        add_bos = json_is_true(json_object_get(tc, "add_bos_token"));
        add_eos = json_is_true(json_object_get(tc, "add_eos_token"));
    }
    if (ms_gguf_mem_set(g, "tokenizer.ggml.model", MS_GGUF_STRING, "gpt2")
        || ms_gguf_mem_set(g, "tokenizer.ggml.pre", MS_GGUF_STRING, pre)
        || ms_gguf_mem_set_arr_str(g, "tokenizer.ggml.tokens", tok, len, (uint64_t)n)
        || ms_gguf_mem_set_arr(g, "tokenizer.ggml.token_type", MS_GGUF_INT32, type, (uint64_t)n)
        || ms_gguf_mem_set_arr_str(g, "tokenizer.ggml.merges", mg, mlen, nm)
        || ms_gguf_mem_set(g, "tokenizer.ggml.add_bos_token", MS_GGUF_BOOL, &add_bos)
        || ms_gguf_mem_set(g, "tokenizer.ggml.add_eos_token", MS_GGUF_BOOL, &add_eos))
        rc = ms_error_set(err, MS_ENOMEM, "%s: out of memory", path);
    /* Hugging Face's semantics on top (tokenizer.hf.*; convert leaves them
     * out, so a GGUF follows llama.cpp): the file's own regexes, its
     * normaliser, ignore_merges, and every added token matched in text */
    if (!rc) {
        uint64_t rl[16];
        for (int i = 0; i < rx.n; i++) rl[i] = strlen(rx.v[i]);
        bool im = json_is_true(json_object_get(model, "ignore_merges")), yes = true;
        /* transformers' clean_up_tokenization_spaces (off when absent) */
        bool clean = tc && json_is_true(json_object_get(tc, "clean_up_tokenization_spaces"));
        const char *unk = json_string_value(json_object_get(model, "unk_token"));
        json_t *uid = unk ? json_object_get(vocab, unk) : NULL;
        uint32_t unk_id = json_is_integer(uid) ? (uint32_t)json_integer_value(uid) : 0;
        if (!decs.k && byte_level) step_add(&decs, "ByteLevel", NULL, NULL, 0, 0);
        if (ms_gguf_mem_set(g, "tokenizer.hf.mode", MS_GGUF_BOOL, &yes)
            || (rx.n && ms_gguf_mem_set_arr_str(g, "tokenizer.hf.pre_regex", rx.v, rl, (uint64_t)rx.n))
            || ms_gguf_mem_set(g, "tokenizer.hf.ignore_merges", MS_GGUF_BOOL, &im)
            || ms_gguf_mem_set(g, "tokenizer.hf.pre_exact", MS_GGUF_BOOL, &pre_exact)
            || ms_gguf_mem_set(g, "tokenizer.hf.byte_level", MS_GGUF_BOOL, &byte_level)
            || ms_gguf_mem_set(g, "tokenizer.hf.byte_fallback", MS_GGUF_BOOL, &byte_fallback)
            || ms_gguf_mem_set(g, "tokenizer.hf.fuse_unk", MS_GGUF_BOOL, &fuse_unk)
            || ms_gguf_mem_set(g, "tokenizer.hf.clean_spaces", MS_GGUF_BOOL, &clean)
            || (uid && ms_gguf_mem_set(g, "tokenizer.hf.unk_id", MS_GGUF_UINT32, &unk_id))
            || (uid && ms_gguf_mem_set(g, "tokenizer.ggml.unknown_token_id", MS_GGUF_UINT32, &unk_id))
            || set_steps(g, "tokenizer.hf.norm", &norm) || set_steps(g, "tokenizer.hf.dec", &decs)
            || ms_gguf_mem_set_arr(g, "tokenizer.hf.added_id", MS_GGUF_INT32, added_id, n_added)
            || ms_gguf_mem_set_arr(g, "tokenizer.hf.added_flags", MS_GGUF_INT32, added_fl, n_added))
            rc = ms_error_set(err, MS_ENOMEM, "%s: out of memory", path);
        if (!rc && meta) {
            const char *sc = json_string_value(json_object_get(meta, "prepend_scheme"));
            uint32_t scheme = !sc || !strcmp(sc, "always") ? 0 : !strcmp(sc, "first") ? 1 : 2;
            if (json_is_false(json_object_get(meta, "add_prefix_space"))) scheme = 2;
            if (ms_gguf_mem_set(g, "tokenizer.hf.metaspace", MS_GGUF_STRING, one_char(json_object_get(meta, "replacement")))
                || ms_gguf_mem_set(g, "tokenizer.hf.metaspace_scheme", MS_GGUF_UINT32, &scheme))
                rc = ms_error_set(err, MS_ENOMEM, "%s: out of memory", path);
        }
    }
out:
    free(tok); free(len); free(type); free(pads); free(mg); free(mlen); free(mbuf); free(added_id); free(added_fl);
    return rc;
}

/* ------------------------------------------------------------------ open */

bool ms_hf_is_checkpoint(const char *path)
{
    struct stat st;
    if (!path || stat(path, &st) != 0) return false;
    if (S_ISDIR(st.st_mode)) return true;
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    return !strcmp(b, "config.json") || !strcmp(b, "tokenizer.json");
}

/* The directory of a checkpoint path (a directory, or a file in it). */
static char *dir_of(const char *path)
{
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) return strdup(path);
    const char *b = strrchr(path, '/');
    if (!b) return strdup(".");
    return b == path ? strdup("/") : strndup(path, (size_t)(b - path));
}

static void hf_clear(Hf *H)
{
    for (int64_t i = 0; i < H->nt; i++) free(H->t[i].name);
    free(H->t);
    for (int i = 0; i < H->n_files; i++) free(H->files[i]);
    free(H->files);
    free(H->cfg_path); free(H->tok_path); free(H->tokcfg_path);
    json_decref(H->cfg); json_decref(H->tokj); json_decref(H->tokcfg);
    free((char *)H->dir);
}

static int open_tokenizer_files(Hf *H, MsError *err)
{
    int rc;
    if (!H->tok_path) H->tok_path = path_join(H->dir, "tokenizer.json");
    H->tokcfg_path = path_join(H->dir, "tokenizer_config.json");
    if (!H->tok_path || !H->tokcfg_path) return ms_error_set(err, MS_ENOMEM, "%s: out of memory", H->dir);
    if (!(H->tokj = load_json(H->tok_path, true, err, &rc))) return rc;
    /* only strings and booleans are read from it; model_max_length is often
     * an integer beyond 64 bits (1e30 written out), so numbers load as reals */
    H->tokcfg = load_json_flags(H->tokcfg_path, false, JSON_DECODE_INT_AS_REAL, err, &rc);
    if (rc) return rc;
    uint64_t z = 0;
    struct stat st;
    if (stat(H->tok_path, &st) == 0) z = (uint64_t)st.st_size;
    if (ms_gguf_mem_add_file(H->g, H->tok_path, z)) return ms_error_set(err, MS_ENOMEM, "%s: out of memory", H->dir);
    if (H->tokcfg && stat(H->tokcfg_path, &st) == 0 && ms_gguf_mem_add_file(H->g, H->tokcfg_path, (uint64_t)st.st_size))
        return ms_error_set(err, MS_ENOMEM, "%s: out of memory", H->dir);
    return 0;
}

MsGguf *ms_hf_open_tokenizer(const char *path, MsError *err)
{
    Hf H = { .err = err };
    int rc = 0;
    if (!path) { ms_error_set(err, MS_EINVAL, "(null): no path given"); return NULL; }
    if (!(H.dir = dir_of(path))) { ms_error_set(err, MS_ENOMEM, "%s: out of memory", path); return NULL; }
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    if (!strcmp(b, "tokenizer.json") && !(H.tok_path = strdup(path))) rc = ms_error_set(err, MS_ENOMEM, "out of memory");
    if (!rc && !(H.g = ms_gguf_new_mem(path, "tokenizer.json", err))) rc = MS_ENOMEM;
    if (!rc) rc = open_tokenizer_files(&H, err);
    if (!rc) {
        H.cfg_path = path_join(H.dir, "config.json");
        if (!H.cfg_path) rc = ms_error_set(err, MS_ENOMEM, "out of memory");
        else H.cfg = load_json(H.cfg_path, false, err, &rc);
    }
    if (!rc) rc = load_tokenizer(H.g, H.tok_path, H.tokj, H.tokcfg, H.cfg, 0, err);
    MsGguf *g = H.g;
    if (rc) { ms_gguf_free(g); g = NULL; }
    hf_clear(&H);
    return g;
}

MsGguf *ms_hf_tokenizer_from_json(const char *name, const char *json, size_t len, MsError *err)
{
    json_error_t je;
    json_t *j = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
    if (!j) { ms_error_set(err, MS_EFORMAT, "%s: line %d: %s", name, je.line, je.text); return NULL; }
    MsGguf *g = NULL;
    if (!json_is_object(j)) ms_error_set(err, MS_EFORMAT, "%s: not a JSON object", name);
    else if ((g = ms_gguf_new_mem(name, "tokenizer.json", err)) && load_tokenizer(g, name, j, NULL, NULL, 0, err)) {
        ms_gguf_free(g);
        g = NULL;
    }
    json_decref(j);
    return g;
}

MsGguf *ms_hf_open(const char *path, MsError *err)
{
    Hf H = { .err = err };
    int rc = 0;
    if (!path) { ms_error_set(err, MS_EINVAL, "(null): no path given"); return NULL; }
    if (!(H.dir = dir_of(path))) { ms_error_set(err, MS_ENOMEM, "%s: out of memory", path); return NULL; }
    if (!(H.g = ms_gguf_new_mem(H.dir, "safetensors", err))) { hf_clear(&H); return NULL; }
    if (!(H.cfg_path = path_join(H.dir, "config.json"))) rc = ms_error_set(err, MS_ENOMEM, "out of memory");
    if (!rc) H.cfg = load_json(H.cfg_path, true, err, &rc);
    if (!rc) {
        struct stat st;
        if (stat(H.cfg_path, &st) == 0 && ms_gguf_mem_add_file(H.g, H.cfg_path, (uint64_t)st.st_size))
            rc = ms_error_set(err, MS_ENOMEM, "out of memory");
    }
    Family fam = F_OLMOE;
    if (!rc) {
        H.model_type = json_string_value(json_object_get(H.cfg, "model_type"));
        if (!H.model_type) rc = ms_error_set(err, MS_EFORMAT, "%s: missing field model_type", H.cfg_path);
        for (size_t i = 0; !rc && i < sizeof k_families / sizeof k_families[0]; i++)
            if (!strcmp(H.model_type, k_families[i].model_type)) {
                H.arch = k_families[i].arch;
                fam = k_families[i].f;
            }
        if (!rc && !H.arch)
            rc = ms_error_set(err, MS_EUNSUPPORTED, "%s: unsupported model_type '%.64s' (supported: olmoe, qwen2_moe, "
                              "mixtral, granitemoe, deepseek_v2, deepseek_v3, qwen3_moe, gpt_oss, phimoe)", H.cfg_path, H.model_type);
    }
    if (!rc) rc = load_weights(&H);
    if (!rc) rc = build(&H, fam);
    if (!rc) {
        /* the directory's own name, as llama.cpp's converter names models */
        char *nm = strdup(H.dir);
        if (!nm) rc = nomem(&H);
        for (size_t l = nm ? strlen(nm) : 0; l > 1 && nm[l - 1] == '/'; l--) nm[l - 1] = '\0';
        const char *b = nm ? strrchr(nm, '/') : NULL;
        if (nm) rc = set_str(&H, "general.name", b && b[1] ? b + 1 : nm);
        free(nm);
    }
    if (!rc) rc = open_tokenizer_files(&H, err);
    if (!rc) {
        int64_t V = 0;
        cfg_int(&H, "vocab_size", true, 0, 1, INT32_MAX, &V);
        rc = load_tokenizer(H.g, H.tok_path, H.tokj, H.tokcfg, H.cfg, V, err);
        if (!rc) {
            MsGgufArray a;
            if (ms_gguf_get_arr(H.g, "tokenizer.ggml.tokens", &a, NULL) == 0 && (int64_t)a.n != V)
                rc = ms_error_set(err, MS_EFORMAT, "%s: %" PRIu64 " tokens but config.json says vocab_size %" PRId64,
                                  H.tok_path, a.n, V);
        }
    }
    MsGguf *g = H.g;
    if (rc) { ms_gguf_free(g); g = NULL; }
    hf_clear(&H);
    return g;
}
