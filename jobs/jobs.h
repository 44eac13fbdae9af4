/* jobs.h — the middle layer: the work that both the command line (app/) and
 * the workbench (ui/) start.  Running a prompt set into a trace, perplexity,
 * generation with routing capture, the dump of the reference schema; the
 * prompt readers are in prompts.h beside this file.
 *
 * Layering: jobs/ calls engine/ (inference) and db/ (the trace store); it
 * never prints, never exits and never includes GTK.  app/ parses options,
 * calls one of these and prints; the GTK window calls the same functions on
 * a worker thread.
 *
 * Long calls take a progress callback and a cancel flag (engine/ms-common.h).
 * The callback runs on the calling thread, in order, with `done` rising to
 * `total`; the last report of a call that completes has done == total.  The
 * flag may be set from any thread (or a signal handler); the job stops at
 * the next layer boundary and returns MS_ECANCELLED.
 *
 * Errors: 0 on success, negative MS_E* with a one-line message in err
 * ("FILE:LINE: problem" where a prompt line is involved). */
#ifndef MS_JOBS_H
#define MS_JOBS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine.h"
#include "prompts.h"
#include "trace.h"

/* ------------------------------------------------------- routing capture */

/* Routing of a whole sequence kept in memory (generate --routing, dump, the
 * workbench's single-prompt comparison), filled from observer events that may
 * arrive in several micro-batches and layer by layer. */
typedef struct MsRouteCapture MsRouteCapture;

/* n_layer: blocks of the model.  with_probs: also keep the router
 * probabilities [pos][E].  NULL when out of memory. */
MsRouteCapture *ms_route_capture_new(int n_layer, bool with_probs);
void ms_route_capture_free(MsRouteCapture *c);        /* accepts NULL */
/* Forget every position (buffers are kept for the next sequence). */
void ms_route_capture_reset(MsRouteCapture *c);
/* An observer feeding c (c must outlive its use). */
MsObserver ms_route_capture_observer(MsRouteCapture *c);
/* 0, or the sticky MS_E* of a failed event (out of memory, a layer whose k
 * or n_expert changed between events). */
int ms_route_capture_status(const MsRouteCapture *c);
/* 1 + the highest position seen at any layer (0 when empty). */
int ms_route_capture_n_pos(const MsRouteCapture *c);

/* One MoE layer of the capture; arrays are borrowed from c until its next
 * event, reset or free.  Rows of positions never seen hold expert −1. */
typedef struct {
    int layer, k, n_expert, n_pos;
    const int32_t *experts;   /* [n_pos][k] ranked selected ids */
    const float *weights;     /* [n_pos][k] applied gate weights */
    const float *probs;       /* [n_pos][E] router probabilities, NULL without with_probs */
} MsRouteLayer;
/* false when the layer is out of range or saw no event (dense block). */
bool ms_route_capture_layer(const MsRouteCapture *c, int layer, MsRouteLayer *out);

/* ------------------------------------------------------------- tracing */

typedef struct {
    const char *prompts_name;   /* the prompt set as named in the run settings and in messages */
    int n_gen;                  /* tokens generated after each prompt (traced too), default 0 */
    float temp;                 /* sampling temperature for n_gen; 0 = greedy (default) */
    uint64_t seed;              /* sampler seed (default 0) */
    bool probs;                 /* store full router probabilities and logits (binary16) */
    bool stats;                 /* store expert output max|x| / L2 and residual max|h| */
    bool logprobs;              /* per-token log-probs and entropies (default true) */
    bool resume;                /* continue the latest matching run, skipping committed prompts */
    bool timing;                /* measure the time spent storing (res->store_s) */
    int64_t parent_run;         /* run.parent_run (0 = none) */
    int n_threads;              /* 0 = all CPUs */
    int n_batch;                /* tokens per prefill chunk, default 256 */
    const MsIntervention *iv;   /* borrowed; NULL or empty = none */
    MsProgressFn progress;      /* stage "trace"; done/total in prompts */
    void *progress_user;
    const MsCancel *cancel;
} MsTraceJob;

void ms_trace_job_init(MsTraceJob *j);   /* the defaults above */

typedef struct {
    int64_t run_id;             /* 0 when nothing is stored (db NULL) */
    size_t n_prompts;           /* in the set */
    size_t n_written;           /* committed by this call */
    size_t n_skipped;           /* already committed (resume) */
    int64_t tokens;             /* tokens evaluated by this call */
    double wall_s, cpu_s;       /* the prompt loop: wall, and CPU of the whole process */
    double store_s;             /* observer + commit time (only with timing) */
} MsTraceJobResult;

/* Trace every prompt: prefill (log-probs and entropies per token), then
 * n_gen generated tokens, each prompt one transaction in db.  db NULL runs
 * the same inference without observer or database (a benchmark baseline).
 * Every prompt is tokenized before anything is written.  model_path names
 * the model file in the model row (its sha256 is computed).  On cancel the
 * prompt in flight is dropped, res says what is committed, and the result
 * is MS_ECANCELLED; with resume the run completes later. */
int ms_trace_job_run(const MsTraceJob *j, const MsModel *m, const char *model_path,
                     const MsPrompt *prompts, size_t n_prompts, MsTraceDb *db,
                     MsTraceJobResult *res, MsError *err);

/* ----------------------------------------------------------- perplexity */

typedef struct {
    int n_ctx;                  /* chunk length in tokens, >= 4 (default 512) */
    int n_threads;
    const MsIntervention *iv;
    MsProgressFn progress;      /* stage "perplexity"; done/total in chunks */
    void *progress_user;
    const MsCancel *cancel;
} MsPplJob;

void ms_ppl_job_init(MsPplJob *j);

typedef struct {
    double ppl, nll_mean;
    long n_scored;
    int n_chunks, chunk_len, n_tokens;
} MsPplResult;

/* llama.cpp-style perplexity of text (tokenized without BOS/EOS): chunks of
 * n_ctx tokens from an empty cache, first token replaced by BOS when the
 * model adds one, the second half of each chunk scored.  A text shorter than
 * n_ctx is one chunk.  name stands for the text in messages. */
int ms_ppl_job_run(const MsPplJob *j, const MsModel *m, const char *name, const char *text, size_t len,
                   MsPplResult *res, MsError *err);

/* ----------------------------------------------------------- generation */

typedef struct {
    int n_gen;                  /* tokens to generate (default 32) */
    float temp, top_p;          /* 0 = greedy; top_p 1 = off */
    uint64_t seed;
    int n_threads;
    const MsIntervention *iv;
    bool capture;               /* record the routing of every position */
    bool capture_probs;         /* ... with router probabilities */
    /* Called for each generated token as it is chosen (piece bytes borrowed). */
    void (*on_token)(void *user, int32_t id, const char *piece, size_t len);
    void *user;
    const MsCancel *cancel;
} MsGenJob;

void ms_gen_job_init(MsGenJob *j);

/* Caller owns; release with ms_generation_clear. */
typedef struct {
    int32_t *tokens;            /* prompt tokens then generated ones */
    int n_tokens, n_prompt;
    MsRouteCapture *routing;    /* when capture: every position 0..n_tokens-1 was evaluated */
} MsGeneration;

/* Continue text (tokenized with BOS as the model's metadata says) until
 * n_gen tokens or an end-of-generation token. */
int ms_gen_job_run(const MsGenJob *j, const MsModel *m, const char *text, size_t len,
                   MsGeneration *out, MsError *err);
void ms_generation_clear(MsGeneration *g);   /* accepts zeroed */

/* ------------------------------------------------------------------ dump */

typedef struct {
    const char *prompts_name;   /* for messages */
    int n_threads;
    const MsIntervention *iv;
    MsProgressFn progress;      /* stage "dump"; done/total in prompts */
    void *progress_user;
    const MsCancel *cancel;
} MsDumpJob;

void ms_dump_job_init(MsDumpJob *j);

/* Tokens, per-MoE-layer routing (experts, applied weights, probabilities)
 * and the logits at every position, in the reference-fixture schema:
 * PREFIX.json and PREFIX.p<i>.f32 (raw little-endian float32
 * [n_tokens][n_vocab]).  Each prompt runs as one micro-batch with an F32 KV
 * cache, as the references were made.  Files are written under temporary
 * names and renamed when complete, so a failure leaves no partial output. */
int ms_dump_job_run(const MsDumpJob *j, const MsModel *m, const char *model_path, const MsPrompt *prompts,
                    size_t n_prompts, const char *prefix, MsError *err);

#endif
