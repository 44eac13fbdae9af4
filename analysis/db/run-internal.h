/* run-internal.h — shared plumbing of the db-facing analysis modules
 * (analysis/db/ only): the run layout, the token-grouping routing stream,
 * progress and cancel, and the module entry points. */
#ifndef MS_ANALYSIS_RUN_INTERNAL_H
#define MS_ANALYSIS_RUN_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>

#include <jansson.h>

#include "run.h"

/* ------------------------------------------------------------ progress */

/* One call's progress: tokens counted by every meter, modules done.  Only
 * the owner thread (the caller of ms_analyze / ms_analyze_all) calls the
 * user's function; other threads only add to the counters. */
typedef struct {
    MsProgressFn fn;
    void *user;
    pthread_t owner;
    double t0;
    const char *stage;
    atomic_llong tokens;
    int64_t tokens_total;
    atomic_int done;
    int total;
    int64_t last_tokens, step;
    int last_done;
    const char *last_stage;
} AnProgress;

/* One thread's share of the count: at most `total` tokens. */
typedef struct {
    AnProgress *p;
    int64_t done, total;
} AnMeter;

void an_progress_init(AnProgress *p, const MsAnOptions *o, int64_t tokens_total, int modules);
/* Reports when on the owner thread and something moved (always when force). */
void an_progress_report(AnProgress *p, bool force);
void an_meter_add(AnMeter *m, int64_t n);     /* m may be NULL */
void an_meter_fill(AnMeter *m);               /* count the rest of the share */

/* ----------------------------------------------------------------- run */

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
    /* long work: the caller's cancel flag and this thread's meter (NULL =
     * not counted, e.g. consistency's model-level thread) */
    const MsCancel *cancel;
    AnMeter *meter;
} AnRun;

/* A little-endian uint16 of a stored blob (experts, channels). */
static inline uint32_t an_le_u16(const unsigned char *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }

int an_run_open(MsTraceDb *db, int64_t run_id, AnRun *r, MsError *err);
/* Decode the run's routing once into r->cache (see AnRun); meters: the two
 * decode threads' shares (NULL = not counted). */
int an_run_cache_build(MsTraceDb *db, AnRun *r, AnMeter *m1, AnMeter *m2, MsError *err);
void an_run_close(AnRun *r);
/* Index of a prompt id (binary search), −1 if unknown. */
int an_run_prompt_index(const AnRun *r, int64_t prompt_id);
/* Label value as text ("" when absent; numbers printed), into buf. */
const char *an_label(const AnRun *r, int prompt_index, const char *key, char *buf, size_t n);
/* The head every result starts with. */
MsAnHead an_head(const AnRun *r, const MsAnOptions *o);

/* MS_ECANCELLED (with a message) once the caller's flag is set, else 0. */
int an_poll(const AnRun *r, MsError *err);

/* One pass over the run's tokens outside the routing stream (probs,
 * residual stats, tokens): counted into the meter at most once per token
 * of the run; the cancel flag is polled every 1,024 tokens. */
typedef struct { int64_t n, counted; } AnPass;
int an_pass_tick(const AnRun *r, AnPass *p, MsError *err);
void an_pass_end(const AnRun *r, AnPass *p);

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
 * stay NaN (from SQLite every field is filled).  The stream is one pass
 * (an_pass_*): polls the cancel flag, counts into the meter. */
enum { AN_NEED_W = 1, AN_NEED_MX = 2 };
AnStream *an_stream_new(MsTraceDb *db, const AnRun *r, bool with_tokens, unsigned need, MsError *err);
void an_stream_free(AnStream *s);
/* 1 = token in *t, 0 = end, < 0 = MS_E* (MS_ECANCELLED). */
int an_stream_next(AnStream *s, AnTok *t, MsError *err);

/* role filter */
bool an_role_ok(MsAnRole role, const AnTok *t);
/* Does the run hold any generated token? (scans tokens; cheap) 1/0/MS_E* */
int an_run_has_generated(MsTraceDb *db, const AnRun *r, MsError *err);

/* Slot range selected by --layer: [*lo, *hi).  MS_EINVAL if the layer is
 * not a MoE layer of the run. */
int an_slot_range(const AnRun *r, int layer, int *lo, int *hi, MsError *err);

/* Token passes a module makes over the run (for the progress total). */
int an_module_passes(MsAnModule m, const AnRun *r, const MsAnOptions *o);

/* Module entry points (run-*.c): compute only, never write. */
typedef int (*AnModuleFn)(MsTraceDb *db, AnRun *r, const MsAnOptions *o, MsAnResult *out, MsError *err);
int an_load(MsTraceDb *, AnRun *, const MsAnOptions *, MsAnResult *, MsError *);
int an_coactivation(MsTraceDb *, AnRun *, const MsAnOptions *, MsAnResult *, MsError *);
int an_affinity(MsTraceDb *, AnRun *, const MsAnOptions *, MsAnResult *, MsError *);
int an_consistency(MsTraceDb *, AnRun *, const MsAnOptions *, MsAnResult *, MsError *);
int an_superexperts(MsTraceDb *, AnRun *, const MsAnOptions *, MsAnResult *, MsError *);
int an_npmi(MsTraceDb *, AnRun *, const MsAnOptions *, MsAnResult *, MsError *);
int an_riskdiff(MsTraceDb *, AnRun *, const MsAnOptions *, MsAnResult *, MsError *);
int an_crosslingual(MsTraceDb *, AnRun *, const MsAnOptions *, MsAnResult *, MsError *);
int an_pathways(MsTraceDb *, AnRun *, const MsAnOptions *, MsAnResult *, MsError *);

/* Per-prompt mean routing (crosslingual, pathways): the stream, then the
 * stored probabilities unless sparse.  *out owned by the caller. */
int an_prompt_means(MsTraceDb *db, const AnRun *r, bool sparse, MsPromptMeans **out, MsError *err);

#endif
