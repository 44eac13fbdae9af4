/* ms-common.h — error contract and small numeric helpers shared by every
 * plain-C layer (engine/, db/, analysis/).
 *
 * Error contract: functions return 0 (or a non-negative count / a valid
 * pointer) on success and a negative MS_E* code (or NULL) on failure; when an
 * MsError* is passed it receives the code and a one-line message that names
 * the file or object and the problem.  Library code never exits or aborts on
 * bad input.  MsError may be NULL when the caller does not want the text. */
#ifndef MS_COMMON_H
#define MS_COMMON_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

enum {
    MS_OK = 0,
    MS_EIO = -1,        /* open/read/write/mmap failed */
    MS_EFORMAT = -2,    /* malformed file or data */
    MS_EUNSUPPORTED = -3, /* valid but not supported (arch, weight type, ...) */
    MS_EINVAL = -4,     /* impossible option or argument */
    MS_ENOMEM = -5,
    MS_ERANGE = -6,     /* value out of range (context full, id out of vocab) */
    MS_ENOTFOUND = -7,  /* missing key / tensor / row */
    MS_EDB = -8,        /* database error */
    MS_EINTERNAL = -9,
    MS_ECANCELLED = -10, /* stopped by the caller's cancel flag (not an error of the input) */
};

#define MS_ERRMSG_MAX 512

typedef struct MsError {
    int code;
    char msg[MS_ERRMSG_MAX];
} MsError;

/* Record code and a printf-style message into err (if non-NULL); returns code
 * so callers can write `return ms_error_set(err, MS_EFORMAT, "...")`. */
int ms_error_set(MsError *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prefix an existing message, e.g. with the file name. */
int ms_error_prefix(MsError *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void ms_error_clear(MsError *err);
/* Static, human-readable name of a code ("malformed input", ...). */
const char *ms_strerror(int code);

/* Strictly valid UTF-8 (shortest forms, no surrogates, at most U+10FFFF; NUL
 * allowed): returns len, or the byte offset of the first invalid sequence. */
size_t ms_utf8_valid_prefix(const char *s, size_t len);

/* ---- half-precision conversions (IEEE binary16 and bfloat16) ---- */
static inline float ms_fp32_from_bits(uint32_t w) { float f; memcpy(&f, &w, 4); return f; }
static inline uint32_t ms_fp32_to_bits(float f) { uint32_t w; memcpy(&w, &f, 4); return w; }

/* binary16 -> float, exact. */
float ms_fp16_to_fp32(uint16_t h);
/* float -> binary16, round to nearest even (as F16C / ggml do). */
uint16_t ms_fp32_to_fp16(float f);
static inline float ms_bf16_to_fp32(uint16_t b) { return ms_fp32_from_bits((uint32_t)b << 16); }
/* float -> bfloat16, round to nearest even, NaN quieted (as ggml). */
static inline uint16_t ms_fp32_to_bf16(float f)
{
    uint32_t u = ms_fp32_to_bits(f);
    if ((u & 0x7fffffff) > 0x7f800000) return (uint16_t)((u >> 16) | 64);
    return (uint16_t)((u + (0x7fff + ((u >> 16) & 1))) >> 16);
}

/* ---- long jobs: cancel flag and progress ----
 * A long call (tracing, an experiment, a sweep, an analysis, one
 * ms_context_eval) polls a cancel flag that any other thread may set with
 * ms_cancel_request(); it then stops at the next safe point and returns
 * MS_ECANCELLED.  A NULL flag means "never cancelled". */
typedef atomic_int MsCancel;
static inline void ms_cancel_init(MsCancel *c) { atomic_init(c, 0); }
static inline void ms_cancel_request(MsCancel *c) { if (c) atomic_store_explicit(c, 1, memory_order_relaxed); }
static inline bool ms_cancel_requested(const MsCancel *c)
{
    return c && atomic_load_explicit((MsCancel *)c, memory_order_relaxed) != 0;
}

/* Progress of a long call, reported through an MsProgressFn on the calling
 * (worker) thread; the struct is borrowed for the callback only.  Units:
 * `done`/`total` count the job's main items (prompts for tracing and
 * experiments, candidates for sweeps, modules or steps for analyses). */
typedef struct {
    const char *stage;       /* static text: "trace", "baseline", "intervened", "load", ... */
    int64_t done, total;     /* items finished / to do (total 0 = unknown) */
    int64_t tokens;          /* tokens evaluated so far in this call (0 where meaningless) */
    int64_t tokens_total;    /* tokens to evaluate in all (0 = unknown) */
    double elapsed_s;        /* wall seconds since the call started */
    double tokens_per_s;     /* tokens / elapsed over the items evaluated here (resumed ones excluded) */
    double eta_s;            /* estimated seconds left, < 0 = unknown */
} MsProgress;
typedef void (*MsProgressFn)(void *user, const MsProgress *p);

/* ---- output files: whole or not at all ----
 * Every file the program writes goes to a temporary file beside its final
 * name (".NAME.tmp-PID-N" in the same directory, so the rename is atomic)
 * and is renamed over it only when complete: a failure, a cancel or a kill
 * never leaves a partial file (after a kill at most that hidden temporary
 * remains) and an existing file stays as it was until the new one is whole.
 * A path that exists and is not a regular file (/dev/stdout, a FIFO) is
 * written directly.  Usage: open, write to o.f, then commit or abort. */
typedef struct {
    FILE *f;            /* write here */
    char *path;         /* the final name */
    char *tmp;          /* the temporary name, NULL when writing directly */
} MsOutFile;
/* 0 or MS_EIO / MS_ENOMEM with "PATH: problem"; o is zeroed on failure. */
int ms_outfile_open(MsOutFile *o, const char *path, MsError *err);
/* Flush, sync, close and rename into place; on failure (a full disk, an
 * I/O error seen at any write) the temporary is removed and MS_EIO
 * returned with "PATH: write failed: REASON".  Always releases o. */
int ms_outfile_commit(MsOutFile *o, MsError *err);
/* Close and remove the temporary (the final name is untouched).  Accepts a
 * zeroed or already released o. */
void ms_outfile_abort(MsOutFile *o);

#define MS_MIN(a, b) ((a) < (b) ? (a) : (b))
#define MS_MAX(a, b) ((a) > (b) ? (a) : (b))
#define MS_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
