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
    const int32_t *n_used;    /* [n_pos] experts each position used: its first n_used ids (k unless
                               * the ser intervention left some out; 0 for unseen rows) */
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
    /* shard_i of shard_n (1-based; shard_n 0 or 1 = the whole set): only the
     * prompts whose index i has i % shard_n == shard_i - 1.  The workers of
     * one set join one run (ms_trace_run_join: the latest matching
     * incomplete run, any matching run with resume, else a new one); each
     * skips prompts already committed; the run is complete when every
     * prompt of the set is in, whichever worker wrote it. */
    int shard_i, shard_n;
    const char *worker;         /* stored with each prompt (prompt.worker), NULL = not recorded */
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
 * n_ctx is one chunk.  name stands for the text in messages.  Text that is
 * not valid UTF-8 without NUL is MS_EFORMAT "NAME:LINE:COL: ..." (prompts.h);
 * a chunk longer than the model's training context is MS_ERANGE. */
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
 * n_gen tokens or an end-of-generation token.  Text that is not valid UTF-8
 * without NUL is MS_EFORMAT "prompt: ... at byte N" (prompts.h); prompt
 * tokens + n_gen beyond the model's training context is MS_ERANGE. */
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

/* ------------------------------------------------------------ experiments */

/* Baseline and intervened model on the same prompts.  Per prompt: the
 * baseline evaluates the prompt and generates n_gen tokens (greedy unless
 * temp > 0), keeping every next-token distribution in memory; the
 * intervened model is then teacher-forced on exactly those tokens (the
 * prompt in the same chunks, the continuation one token at a time, so an
 * empty set computes bit for bit what the baseline did: KL exactly 0), and
 * each of its distributions is compared with the baseline's at once
 * (KL(baseline || intervened), log-probs of the reference tokens, greedy
 * choices).  With free_gen the intervened model then also continues the
 * prompt on its own for n_gen tokens.  Memory: the baseline's rows of one
 * prompt, (prompt + n_gen) × n_vocab floats. */
typedef struct {
    const char *prompts_name;
    int n_gen;                  /* baseline continuation tokens (default 0) */
    bool free_gen;              /* the intervened model also continues freely (default true) */
    float temp;                 /* 0 = greedy (default); else both continuations sample, same seed */
    uint64_t seed;
    bool probs, stats;          /* store router probabilities / expert stats in both traces */
    bool resume;                /* complete the latest matching pair of runs */
    /* shard_i of shard_n (as MsTraceJob): only the prompts whose index i has
     * i % shard_n == shard_i - 1; the workers of one set join one pair of
     * runs (ms_trace_run_join for the baseline, then for the intervened run
     * under it), skip prompts already compared, and the pair is complete
     * when every prompt of the set is in, whichever worker wrote it. */
    int shard_i, shard_n;
    const char *worker;         /* stored with each prompt of both runs, NULL = not recorded */
    int n_threads, n_batch;     /* 0 = all CPUs; prefill chunk (default 256) */
    const MsIntervention *iv;   /* borrowed; NULL or empty = the baseline again */
    MsProgressFn progress;      /* stage "experiment"; done/total in prompts */
    void *progress_user;
    const MsCancel *cancel;
} MsExperimentJob;

void ms_experiment_job_init(MsExperimentJob *j);

typedef struct {
    int64_t baseline_run, run;  /* run.parent_run of run is baseline_run */
    size_t n_prompts, n_written, n_skipped;
    int64_t tokens;             /* evaluated by this call, both models */
    double wall_s;
} MsExperimentResult;

/* Two ordinary traces (kinds "baseline" and "intervened", each recording
 * its intervention set) plus the comparison rows (an_compare_*), each
 * prompt of both runs and its comparison committed in one transaction. */
int ms_experiment_job_run(const MsExperimentJob *j, const MsModel *m, const char *model_path,
                          const MsPrompt *prompts, size_t n_prompts, MsTraceDb *db,
                          MsExperimentResult *res, MsError *err);

/* One prompt baseline vs intervened, in memory (the workbench's "toggle an
 * expert, see the difference").  Options as MsExperimentJob. */
typedef struct {
    int n_gen;                  /* default 32 */
    bool free_gen;              /* default true */
    float temp;
    uint64_t seed;
    int n_threads;
    int n_batch;                /* default 256 */
    MsProgressFn progress;      /* stage "compare"; done/total in passes: baseline, intervened (2) */
    void *progress_user;
    const MsCancel *cancel;
} MsCompareOptions;

void ms_compare_options_init(MsCompareOptions *o);

/* Caller owns; release with ms_prompt_compare_clear. */
typedef struct {
    int n_prompt, n_tokens;     /* the teacher-forced sequence: prompt, then the baseline's continuation */
    int32_t *tokens;            /* [n_tokens] */
    int32_t *tokens_run;        /* the intervened model's free continuation */
    int n_run;
    MsComparePos *pos;          /* [n_tokens]: row p predicts token p + 1 */
    MsCompareLayer *layers;     /* per MoE layer: routing shift over the n_tokens positions */
    int n_layers;
    MsComparePrompt summary;    /* index 0; texts and token arrays point into this struct */
    MsRouteCapture *routing_baseline, *routing_run;   /* every position of both teacher-forced runs */
    char *text_baseline, *text_run;                   /* the two continuations as text */
} MsPromptCompare;

int ms_compare_prompt(const MsCompareOptions *o, const MsModel *m, const MsIntervention *iv, const char *text,
                      size_t len, MsPromptCompare *out, MsError *err);
void ms_prompt_compare_clear(MsPromptCompare *c);   /* accepts zeroed */

/* ------------------------------------------------------------------ sweeps */

/* Candidate intervention sets compared one by one against one baseline per
 * prompt (the evidence of MoTE, L³ silencing, SteerMoE and the super-expert
 * paper: the effect of each expert, and of random experts beside it). */
typedef struct {
    char *label;                /* e.g. "silence 3:5", "control 4 of 3:1" */
    MsIntervention *iv;         /* owned */
    int n_experts;              /* experts the set touches */
    bool control;               /* a random control */
    int shape;                  /* candidates with the same layer histogram share a shape */
} MsSweepCand;

typedef struct {
    MsSweepCand *c;
    int n, cap;
    int n_layer, n_expert;
} MsSweepSet;

void ms_sweep_set_init(MsSweepSet *s, const MsModel *m);
void ms_sweep_set_clear(MsSweepSet *s);
/* Silence each expert of the given layers in turn (layers[n_layers] block
 * indices; a dense block is an error). */
int ms_sweep_add_silence_each(MsSweepSet *s, const MsModel *m, const int *layers, int n_layers, MsError *err);
/* Candidates from an analysis already in db for run (0 = newest):
 * "superexperts" (each super expert, then all of them together), "npmi:CLASS"
 * (the top experts of CLASS by nPMI), "riskdiff" (the top experts by |RD|);
 * top = how many (0 = all super experts / 8).  Each is silenced; a set of
 * all of them is added when there is more than one. */
int ms_sweep_add_from_analysis(MsSweepSet *s, MsTraceDb *db, int64_t run, const char *spec, int top, MsError *err);
/* True when spec has one of those forms (checked before anything is loaded). */
bool ms_sweep_from_analysis_valid(const char *spec);
/* n random controls for every shape among the candidates: the same number
 * of experts per layer, drawn (seeded) from experts that are not candidates
 * where there are enough, silenced like the candidates. */
int ms_sweep_add_controls(MsSweepSet *s, int n, uint64_t seed, MsError *err);
/* The classes of the stored nPMI analysis, sorted: the CLASS values that
 * --from-analysis npmi:CLASS takes; none (0) when no nPMI analysis is
 * stored.  *out: malloc'd array of *n malloc'd strings (the caller frees
 * each, then the array). */
int ms_sweep_npmi_classes(MsTraceDb *db, char ***out, int *n, MsError *err);
/* A layer list as `sweep --silence-each` takes it: "1", "0,2", "1-3", or
 * "*" = every layer with experts (leading dense blocks, as in DeepSeek,
 * are skipped; a dense layer named on purpose is left for
 * ms_sweep_add_silence_each to refuse) -> out[*n] block indices (out holds
 * MS_TRACE_MAX_LAYER).  MS_EINVAL / MS_ERANGE with a message naming spec. */
int ms_sweep_parse_layers(const MsModel *m, const char *spec, int *out, int *n, MsError *err);

/* What a sweep silences, as `moescope sweep` and the workbench's Run sweep
 * name it: each expert of `layers` (from ms_sweep_parse_layers) and/or the
 * candidates of a stored analysis `from` (ms_sweep_add_from_analysis: run,
 * top), then `controls` random controls per shape (seeded). */
typedef struct {
    const int *layers;          /* [n_layers] block indices, or NULL */
    int n_layers;
    const char *from;           /* "superexperts", "npmi:CLASS", "riskdiff", or NULL */
    int64_t run;                /* the analysed run, 0 = the table's */
    int top;                    /* 0 = the analysis's default */
    int controls;
    uint64_t seed;
} MsSweepSpec;

/* Initialises set for m and fills it from spec; db is needed for `from`.
 * On error set is left initialised (ms_sweep_set_clear frees it). */
int ms_sweep_set_build(MsSweepSet *set, const MsModel *m, MsTraceDb *db, const MsSweepSpec *spec, MsError *err);

typedef struct {
    const char *prompts_name;
    int n_gen;                  /* baseline continuation tokens, teacher-forced for each candidate */
    float temp;
    uint64_t seed;
    int n_threads, n_batch;
    /* shard_i of shard_n (1-based; needs db): only the sets whose index c
     * has c % shard_n == shard_i - 1, each over every prompt (a sweep's
     * work is its sets; the baselines are recomputed by each worker).  The
     * workers of one sweep join one stored sweep (same model, settings and
     * sets: ms_trace_sweep_join), skip sets it already holds, and the last
     * to store computes the z-scores and ranks over every set. */
    int shard_i, shard_n;
    MsProgressFn progress;      /* stage "sweep"; done/total = prompts × sets */
    void *progress_user;
    const MsCancel *cancel;
} MsSweepJob;

void ms_sweep_job_init(MsSweepJob *j);

typedef struct {
    int64_t sweep_id;           /* 0 when db is NULL */
    MsSweepRow *rows;           /* [n_rows] in set order; strings borrowed from the set.  A shard's
                                 * result holds its own sets (z-scores and ranks unknown: NaN, 0)
                                 * unless it completed the sweep: then every set, z and rank included */
    int n_rows;
    bool complete;              /* every set's row is stored (always, unsharded) */
    int n_skipped;              /* sets a shard found stored already */
    int n_written;              /* sets this call computed and stored */
    double wall_s;
} MsSweepResult;

/* Effects of every set (KL, perplexity, greedy agreement, routing shift),
 * z-scores of the candidates against the controls of their shape, ranks by
 * mean KL.  Stored in sweep / sweep_candidate when db is non-NULL (model
 * row by model_path). */
int ms_sweep_job_run(const MsSweepJob *j, const MsModel *m, const char *model_path, const MsPrompt *prompts,
                     size_t n_prompts, const MsSweepSet *set, MsTraceDb *db, MsSweepResult *res, MsError *err);
void ms_sweep_result_clear(MsSweepResult *r);

/* ---------------------------------------------------------------- compare */

/* What changed between a baseline run and another run of the same model on
 * the same prompts (`moescope compare`, the workbench's experiment view).
 * With comparison rows (the pair was made by ms_experiment_job_run) every
 * field is known.  Two other runs are compared from their traces: tokens,
 * log-probs and routing over each prompt's common prefix of identical
 * tokens; KL and greedy agreement need both full distributions, so they are
 * NaN there, except for a run compared with itself (KL 0, agreement 1). */
typedef struct {
    int64_t baseline_run, run;
    bool has_distributions;      /* KL and top-1 agreement known */
    MsCompareRows rows;          /* per prompt (texts, tokens) and per layer */
    int n_prompts;
    int64_t n_positions;
    double kl_mean, kl_max, top1_agreement;
    double ppl_baseline, ppl_run, dlogprob_mean;   /* Δ = mean(log p_run − log p_baseline) */
    double first_divergence_mean;                  /* over the prompts that diverge */
    int n_diverged;
} MsCompareReport;

/* Errors: an unknown run, runs of different models or of different prompt
 * sets (MS_EINVAL naming both runs). */
int ms_compare_report(MsTraceDb *db, int64_t baseline_run, int64_t run, MsCompareReport *out, MsError *err);
void ms_compare_report_clear(MsCompareReport *r);   /* accepts zeroed */

/* Word-level diff of two texts (split at whitespace, which stays attached
 * to the word before it): pieces in order, each kept, deleted (only in a)
 * or inserted (only in b); text borrowed from a or b. */
typedef enum { MS_DIFF_SAME = 0, MS_DIFF_DEL = 1, MS_DIFF_INS = 2 } MsDiffOp;
typedef struct {
    MsDiffOp op;
    const char *text;
    size_t len;
} MsDiffPiece;
/* *out malloc'd (caller frees), *n pieces. */
int ms_word_diff(const char *a, const char *b, MsDiffPiece **out, int *n);

#endif
