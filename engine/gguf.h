/* gguf.h — validating GGUF (v2/v3) reader over a read-only mmap, and a
 * streaming GGUF v3 writer.
 *
 * The reader checks the whole container before anything points into it:
 * magic, version, counts bounded by the file size, string lengths, value and
 * element types, duplicate keys/tensors, general.alignment, dims, known and
 * non-removed tensor types, ne0 % block size, byte sizes without overflow,
 * offset alignment and offset+size inside the file.  Any failure yields a
 * one-line message "PATH: problem" and NULL.  Model-level checks (required
 * tensors and keys, shapes against hyper-parameters) live in model.c. */
#ifndef MS_GGUF_H
#define MS_GGUF_H

#include <stdbool.h>
#include <stdint.h>

#include "ms-common.h"

typedef enum {
    MS_GGUF_UINT8 = 0, MS_GGUF_INT8 = 1, MS_GGUF_UINT16 = 2, MS_GGUF_INT16 = 3,
    MS_GGUF_UINT32 = 4, MS_GGUF_INT32 = 5, MS_GGUF_FLOAT32 = 6, MS_GGUF_BOOL = 7,
    MS_GGUF_STRING = 8, MS_GGUF_ARRAY = 9, MS_GGUF_UINT64 = 10, MS_GGUF_INT64 = 11,
    MS_GGUF_FLOAT64 = 12, MS_GGUF_TYPE_COUNT = 13
} MsGgufType;

typedef struct MsGguf MsGguf;

typedef struct {
    const char *name;      /* NUL-terminated, owned by the MsGguf */
    uint32_t n_dims;
    int64_t ne[4];         /* ne[0] fastest; unused dims are 1 */
    int type;              /* ggml type id (see quant.h MS_TYPE_*) */
    uint64_t offset;       /* relative to the data section */
    uint64_t nbytes;
    const void *data;      /* points into the read-only mapping */
} MsGgufTensor;

typedef struct {
    int elem_type;         /* MsGgufType, never ARRAY */
    uint64_t n;
    const uint8_t *data;   /* packed little-endian elements (for STRING: see ms_gguf_arr_str) */
    const uint64_t *str_off; /* STRING arrays: offset of element i's u64 length prefix, relative to data */
} MsGgufArray;

/* Open, map and validate.  Returns NULL and fills err on failure. */
MsGguf *ms_gguf_open(const char *path, MsError *err);
void ms_gguf_free(MsGguf *g);                 /* accepts NULL; unmaps */

const char *ms_gguf_path(const MsGguf *g);    /* borrowed */
uint32_t ms_gguf_version(const MsGguf *g);
uint64_t ms_gguf_file_size(const MsGguf *g);
uint32_t ms_gguf_alignment(const MsGguf *g);
/* Where the tensor data lives.  A file mapping uses the page cache's 4 KB
 * pages; a private copy in anonymous memory can use 2 MB pages
 * (MADV_HUGEPAGE), so the weight streams of a decode step cross far fewer
 * page-table entries: 5-20 % faster decode and prefill on x86-64 (see
 * docs/performance.md), for the cost of reading the whole file once and
 * holding it in memory of its own.  AUTO copies when the file is at most
 * half the memory the kernel reports available (MemAvailable), so large
 * models and many processes sharing one file stay mapped. */
typedef enum {
    MS_WEIGHTS_AUTO = 0,
    MS_WEIGHTS_MAPPED = 1,     /* the read-only file mapping (shared page cache) */
    MS_WEIGHTS_COPIED = 2,     /* a private read-only copy at the same address */
} MsWeights;

/* Put g's bytes where how says.  The copy replaces the mapping at the same
 * address (mremap), so every pointer g handed out stays valid.  A no-op for
 * in-memory descriptions (ms_gguf_new_mem) and when already copied.  Returns
 * 0, or a negative error when COPIED was asked and cannot be done (g is then
 * unchanged and still usable); AUTO falls back to the mapping silently. */
int ms_gguf_set_weights(MsGguf *g, MsWeights how, MsError *err);
/* MS_WEIGHTS_MAPPED or MS_WEIGHTS_COPIED (in-memory descriptions: MAPPED). */
MsWeights ms_gguf_weights(const MsGguf *g);
/* Bytes of g's copy that the kernel backs with huge pages now (its
 * AnonHugePages in /proc/self/smaps); 0 when mapped, or when the system has
 * transparent huge pages off or could not find free 2 MB blocks. */
uint64_t ms_gguf_huge_bytes(const MsGguf *g);

/* Ask the kernel to read the whole file into the page cache ahead of use
 * (madvise WILLNEED), as llama.cpp's loader does: without it the first
 * decode steps fault in expert pages one by one.  Advisory; never fails. */
void ms_gguf_prefetch(const MsGguf *g);

/* ---- metadata ---- */
int64_t ms_gguf_n_kv(const MsGguf *g);
const char *ms_gguf_kv_key(const MsGguf *g, int64_t i);  /* borrowed, NUL-terminated */
int ms_gguf_kv_type(const MsGguf *g, int64_t i);         /* MsGgufType */
int64_t ms_gguf_find_kv(const MsGguf *g, const char *key); /* index or -1 */

/* Typed getters.  All return 0, MS_ENOTFOUND when the key is absent (err
 * untouched, so callers can apply defaults), or MS_EFORMAT when the value has
 * the wrong type or is out of range (err filled, naming file and key).
 * Integer getters accept any integer type (and bool) and range-check;
 * float getters accept F32, F64 and integers. */
int ms_gguf_get_u32(const MsGguf *g, const char *key, uint32_t *out, MsError *err);
int ms_gguf_get_i64(const MsGguf *g, const char *key, int64_t *out, MsError *err);
int ms_gguf_get_f32(const MsGguf *g, const char *key, float *out, MsError *err);
int ms_gguf_get_bool(const MsGguf *g, const char *key, bool *out, MsError *err);
/* *s is borrowed and NOT NUL-terminated; *len is its byte length. */
int ms_gguf_get_str(const MsGguf *g, const char *key, const char **s, uint64_t *len, MsError *err);
int ms_gguf_get_arr(const MsGguf *g, const char *key, MsGgufArray *out, MsError *err);

/* Array element access (no bounds beyond i < a->n are needed: validated). */
void ms_gguf_arr_str(const MsGgufArray *a, uint64_t i, const char **s, uint64_t *len);
double ms_gguf_arr_f64(const MsGgufArray *a, uint64_t i);  /* numeric elements */
int64_t ms_gguf_arr_i64(const MsGgufArray *a, uint64_t i); /* integer/bool elements */

/* ---- tensors ---- */
int64_t ms_gguf_n_tensors(const MsGguf *g);
const MsGgufTensor *ms_gguf_tensor(const MsGguf *g, int64_t i);            /* borrowed */
const MsGgufTensor *ms_gguf_find_tensor(const MsGguf *g, const char *name); /* NULL if absent */

/* ---- where the description came from ----
 * "GGUF" for files opened with ms_gguf_open (one source file: the path), or
 * the format an in-memory description was built from (e.g. "safetensors")
 * with the files read to build it. */
const char *ms_gguf_format(const MsGguf *g);
int ms_gguf_n_source_files(const MsGguf *g);
const char *ms_gguf_source_file(const MsGguf *g, int i);   /* borrowed */

/* ---- in-memory descriptions ----
 * The same metadata + tensor table as a parsed file, built by a loader of
 * another format (hf.c) so that everything reading an MsGguf (model loader,
 * tokenizer, converter) works unchanged.  Values are copied; tensor data is
 * borrowed, and stays valid as long as the resources given to
 * ms_gguf_mem_own (freed, or unmapped when `mapped`, by ms_gguf_free).
 * Setting a key again replaces its value.  ms_gguf_file_size() is the sum
 * of the sizes given to ms_gguf_mem_add_file.  All return 0 or MS_E*. */
MsGguf *ms_gguf_new_mem(const char *path, const char *format, MsError *err);
int ms_gguf_mem_add_file(MsGguf *g, const char *path, uint64_t size);
int ms_gguf_mem_own(MsGguf *g, void *p, size_t size, bool mapped);
/* scalars (val points at the value; STRING: a NUL-terminated string) */
int ms_gguf_mem_set(MsGguf *g, const char *key, int type, const void *val);
int ms_gguf_mem_set_arr(MsGguf *g, const char *key, int elem_type, const void *data, uint64_t n);
int ms_gguf_mem_set_arr_str(MsGguf *g, const char *key, const char *const *v, const uint64_t *lens, uint64_t n);
/* ne[0] fastest, as in GGUF; data must hold the tensor's bytes */
int ms_gguf_mem_add_tensor(MsGguf *g, const char *name, int type, uint32_t n_dims, const int64_t *ne,
                           const void *data, MsError *err);

/* ---- writer (GGUF v3, little-endian, alignment 32 unless general.alignment set) ----
 * Usage: new -> set_* / add_tensor (infos only, in data order) -> write_header
 * -> write_tensor_data once per tensor, in the order added -> finish.
 * Streaming keeps multi-GB synthetic models out of memory. */
typedef struct MsGgufWriter MsGgufWriter;

MsGgufWriter *ms_gguf_writer_new(const char *path, MsError *err);
void ms_gguf_writer_free(MsGgufWriter *w);   /* accepts NULL; closes without finishing */
int ms_gguf_writer_set_u32(MsGgufWriter *w, const char *key, uint32_t v);
int ms_gguf_writer_set_i32(MsGgufWriter *w, const char *key, int32_t v);
int ms_gguf_writer_set_u64(MsGgufWriter *w, const char *key, uint64_t v);
int ms_gguf_writer_set_f32(MsGgufWriter *w, const char *key, float v);
int ms_gguf_writer_set_bool(MsGgufWriter *w, const char *key, bool v);
int ms_gguf_writer_set_str(MsGgufWriter *w, const char *key, const char *v);
/* numeric arrays: elem_type one of the fixed-size MsGgufType values */
int ms_gguf_writer_set_arr(MsGgufWriter *w, const char *key, int elem_type, const void *data, uint64_t n);
int ms_gguf_writer_set_arr_str(MsGgufWriter *w, const char *key, const char *const *v, uint64_t n);
int ms_gguf_writer_add_tensor(MsGgufWriter *w, const char *name, int type, uint32_t n_dims, const int64_t *ne);
int ms_gguf_writer_write_header(MsGgufWriter *w);
int ms_gguf_writer_write_tensor_data(MsGgufWriter *w, const void *data, uint64_t nbytes);
int ms_gguf_writer_finish(MsGgufWriter *w, MsError *err);  /* flush + close; frees nothing */

#endif
