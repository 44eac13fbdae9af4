/* run-internal.h — shared plumbing of the db-facing analysis modules. */
#ifndef MS_ANALYSIS_RUN_INTERNAL_H
#define MS_ANALYSIS_RUN_INTERNAL_H

#include <stdio.h>

#include "run.h"

/* The run's MoE layers as dense "slots" 0..n_slot−1 (METHODS §0.1: layers
 * keep their block index; pairs are of consecutive MoE layers). */
typedef struct {
    int64_t run_id;
    MsTraceRunInfo info;
    int E, k;                         /* k = max selections per (token, layer) */
    int n_layer;                      /* decoder blocks */
    int n_slot;
    int slot_layer[MS_TRACE_MAX_LAYER];
    int layer_slot[MS_TRACE_MAX_LAYER]; /* −1 when not MoE */
    /* prompts (index order) */
    int n_prompt;
    int64_t *prompt_id;
    json_t **labels;                  /* parsed labels objects or NULL */
    int *prompt_tokens;
    /* Optional decoded copy of the routing (analyze all): two temporary
     * files, mapped read-only, that streams replay instead of reading
     * SQLite again.  cache: per token int64 prompt_id, int32 pos,
     * uint8 n[S], int16 ids[S·k] (compacted, −1 padded); cache_vals: per
     * token float w[S·k] when cache_w, then float maxabs[S·k] when
     * cache_mx (host byte order).  Streams that do not ask for the values
     * never touch the second file.  The two decode threads' halves stay
     * two segments (no copy to join them): tokens [0, cache_split) in
     * cache/cache_vals, the rest in cache2/cache_vals2. */
    const unsigned char *cache, *cache_vals, *cache2, *cache_vals2;
    size_t cache_len, cache_vals_len, cache2_len, cache_vals2_len;
    bool cache_w, cache_mx;
    int64_t cache_tokens, cache_split;
    /* analyze all: a JSON array that collects this module's table writes
     * and plan files (an_write_rows / an_store_plan) for later replay in
     * module order; NULL = write at once */
    json_t *defer;
} AnRun;

/* A little-endian uint16 of a stored blob (experts, channels). */
static inline uint32_t an_le_u16(const unsigned char *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }

int an_run_open(MsTraceDb *db, int64_t run_id, AnRun *r, MsError *err);
/* Decode the run's routing once into r->cache (see AnRun). */
int an_run_cache_build(MsTraceDb *db, AnRun *r, MsError *err);
void an_run_close(AnRun *r);
/* Index of a prompt id (binary search), −1 if unknown. */
int an_run_prompt_index(const AnRun *r, int64_t prompt_id);
/* Label value as text ("" when absent; numbers printed), into buf. */
const char *an_label(const AnRun *r, int prompt_index, const char *key, char *buf, size_t n);

/* One token with its routing at every MoE slot. */
typedef struct {
    int64_t prompt_id;
    int prompt_index;
    int32_t pos;
    bool first_of_prompt;
    const int32_t *ids;      /* n_slot × k, −1 padded, rank order */
    const float *w, *maxabs; /* same layout */
    const int *n;            /* per slot count */
    bool has_token;          /* tok fields below valid (when tokens requested) */
    int32_t token_id;
    const char *piece;
    size_t piece_len;
    bool is_generated;
} AnTok;

typedef struct AnStream AnStream;
/* need: AN_NEED_* bits; from the decoded cache, the values not asked for
 * stay NaN (from SQLite every field is filled). */
enum { AN_NEED_W = 1, AN_NEED_MX = 2 };
AnStream *an_stream_new(MsTraceDb *db, const AnRun *r, bool with_tokens, unsigned need, MsError *err);
void an_stream_free(AnStream *s);
/* 1 = token in *t, 0 = end, < 0 = MS_E*. */
int an_stream_next(AnStream *s, AnTok *t, MsError *err);

/* role filter: "all" | "prompt" | "generated" */
bool an_role_ok(const char *role, const AnTok *t);
/* Does the run hold any generated token? (scans tokens; cheap) 1/0/MS_E* */
int an_run_has_generated(MsTraceDb *db, const AnRun *r, MsError *err);

/* JSON helpers: NaN/inf as null. */
json_t *an_real(double v);
json_t *an_real_array(const double *v, int n);
json_t *an_int_array(const int64_t *v, int n);
json_t *an_real_matrix(const double *m, int rows, int cols);

/* Write an array of flat JSON objects as a result table (columns from the
 * first row's keys; ints, reals, strings).  Empty arrays write nothing. */
int an_write_rows(MsTraceDb *db, const AnRun *r, const char *analysis, const json_t *params,
                  const char *table, const json_t *rows, MsError *err);

/* Module entry points (run-*.c). */
typedef int (*AnModuleFn)(MsTraceDb *db, AnRun *r, const MsAnOptions *o, MsAnResult *out,
                          json_t *params, MsError *err);
int an_load(MsTraceDb *, AnRun *, const MsAnOptions *, MsAnResult *, json_t *, MsError *);
int an_coactivation(MsTraceDb *, AnRun *, const MsAnOptions *, MsAnResult *, json_t *, MsError *);
int an_affinity(MsTraceDb *, AnRun *, const MsAnOptions *, MsAnResult *, json_t *, MsError *);
int an_consistency(MsTraceDb *, AnRun *, const MsAnOptions *, MsAnResult *, json_t *, MsError *);
int an_superexperts(MsTraceDb *, AnRun *, const MsAnOptions *, MsAnResult *, json_t *, MsError *);
int an_npmi(MsTraceDb *, AnRun *, const MsAnOptions *, MsAnResult *, json_t *, MsError *);
int an_riskdiff(MsTraceDb *, AnRun *, const MsAnOptions *, MsAnResult *, json_t *, MsError *);
int an_crosslingual(MsTraceDb *, AnRun *, const MsAnOptions *, MsAnResult *, json_t *, MsError *);
int an_pathways(MsTraceDb *, AnRun *, const MsAnOptions *, MsAnResult *, json_t *, MsError *);

/* Slot range selected by --layer: [*lo, *hi).  MS_EINVAL if the layer is
 * not a MoE layer of the run. */
int an_slot_range(const AnRun *r, int layer, int *lo, int *hi, MsError *err);

/* Store a plan (intervention text) in an_plans and optionally a file. */
int an_store_plan(MsTraceDb *db, const AnRun *r, const char *analysis, const json_t *params,
                  const char *plan, const char *path, bool write, MsError *err);

#endif
