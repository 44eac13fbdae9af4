/* trace.h — the trace store: every routing decision of a run in one SQLite
 * database (schema in docs/schema.md), written through the engine's
 * MsObserver and read back in bounded-memory chunks by the analyses.
 *
 * db/ owns all SQLite code; nothing here exposes sqlite3 types.
 *
 * Errors: functions return 0 (or a count / id >= 0, or a valid pointer) on
 * success and a negative MS_E* code (or NULL) on failure; err receives a one
 * line message starting with the database file name ("t.db: ...").
 *
 * Threading: an MsTraceDb handle is used by one thread at a time.  Several
 * processes may open the same file: WAL mode lets readers run while a trace
 * is being written.
 *
 * Ownership: every pointer a *_next() call returns inside its output struct
 * is borrowed from the cursor and valid until the next call on that cursor
 * or its free.  Structs documented "caller owns" are released with the
 * matching *_clear()/free function. */
#ifndef MS_TRACE_H
#define MS_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "engine.h"
#include "ms-common.h"

/* PRAGMA user_version of the schema this code writes.  Older databases are
 * migrated forward on open (read-write); newer ones are refused. */
#define MS_TRACE_SCHEMA_VERSION 6
#define MS_TRACE_MAX_LAYER 256   /* layer indices 0..255 */
#define MS_TRACE_MAX_EXPERT 65535

/* ---------------------------------------------------------------- database */

typedef struct MsTraceDb MsTraceDb;

enum {
    MS_TRACE_READ = 0,        /* read-only (query_only); the file must exist */
    MS_TRACE_WRITE = 1,       /* read-write; the file must exist */
    MS_TRACE_CREATE = 3,      /* read-write, created (with schema) if missing */
};

/* Open or create; creates / migrates the schema when writable.  A file that
 * is not a moescope trace (no schema, foreign tables) is MS_EFORMAT. */
MsTraceDb *ms_trace_open(const char *path, int mode, MsError *err);
void ms_trace_close(MsTraceDb *db);                  /* accepts NULL */
/* True when path is a PostgreSQL connection URI (postgresql:// or
 * postgres://) rather than a file name. */
bool ms_trace_path_is_postgresql(const char *path);
const char *ms_trace_path(const MsTraceDb *db);      /* borrowed */
int ms_trace_user_version(const MsTraceDb *db);

/* ------------------------------------------------------------- model, run */

/* Static model facts, stored once per distinct model (file name + sha256). */
typedef struct {
    int64_t model_id;          /* output only */
    char file_name[256];       /* base name of the GGUF file ("" for imports) */
    uint64_t file_size;
    char sha256[65];           /* lowercase hex, "" if unknown */
    char arch[32];             /* "olmoe", ..., "imported" */
    char name[128];            /* general.name or "" */
    int n_layer;               /* decoder blocks */
    int n_expert;              /* routed experts E */
    int n_expert_used;         /* k */
    int n_expert_shared;
    char score_func[16];       /* "softmax" | "sigmoid" | "softmax_topk" (gpt-oss: probs are logits) | "unknown" */
    bool norm_topk;            /* top-k weights renormalised */
    float w_scale;             /* routed scaling factor (1 if none) */
    int n_embd, n_vocab, n_ff_exp;
    int n_moe_layers;
    uint8_t is_moe[MS_TRACE_MAX_LAYER]; /* 1 when block l has a router */
} MsTraceModel;

/* Fill m from a loaded model (sha256 of path is computed: one read pass). */
int ms_trace_model_from_engine(MsTraceModel *m, const MsModel *model, const char *path, MsError *err);
/* Insert (or find the identical) model row; returns model_id > 0 or MS_E*. */
int64_t ms_trace_model_add(MsTraceDb *db, const MsTraceModel *m, MsError *err);

/* A run: one pass of one model over a prompt set. */
typedef struct {
    int64_t run_id;            /* output only */
    int64_t model_id;
    int64_t parent_run_id;     /* 0 = none (else the run this one is compared to) */
    const char *kind;          /* "trace" | "import" */
    const char *settings_json; /* free-form JSON object text (gen, probs, stats, prompt file...) or NULL */
    const char *interventions; /* canonical text (ms_intervention_to_string) or NULL / "" = none */
    const char *prompts_sha256; /* content of the prompt set (ms_prompts_sha256) or NULL (imports) */
    bool has_probs, has_stats;
} MsTraceRunDesc;

/* A new run, status "incomplete" until ms_trace_run_set_status marks it
 * "complete".  A parent_run_id that names no run is MS_EINVAL "no run N
 * (the parent run)". */
int64_t ms_trace_run_new(MsTraceDb *db, const MsTraceRunDesc *d, MsError *err);
/* Latest run for --resume with this model, kind, prompt set content
 * (prompts_sha256), interventions text, has_probs/has_stats, parent (when
 * d->parent_run_id > 0) and settings, where the settings JSON is compared
 * without its "prompts" member (the prompt file as named: a set is known by
 * its content, not its path).  A run without a hash (written before schema
 * version 5) matches when its settings, path included, are equal.  run_id,
 * 0 if none, or MS_E*. */
int64_t ms_trace_run_find(MsTraceDb *db, const MsTraceRunDesc *d, MsError *err);
/* Mark a run "complete" (every prompt of its set committed) or "incomplete". */
int ms_trace_run_set_status(MsTraceDb *db, int64_t run_id, const char *status, MsError *err);
/* For workers that share one run (trace --shard I/N): the run
 * ms_trace_run_find returns when it is "incomplete" (with any_status:
 * whatever its status), else a new run — found or made in one transaction,
 * so that workers starting together agree on one run. */
int64_t ms_trace_run_join(MsTraceDb *db, const MsTraceRunDesc *d, bool any_status, MsError *err);

/* Run description as read back.  Caller owns; release with _clear. */
typedef struct {
    int64_t run_id, model_id, parent_run_id;
    char *kind, *created, *settings_json, *interventions, *program_version;
    char *status;                 /* "complete" | "incomplete" (never NULL after a successful read) */
    char *prompts_sha256;         /* NULL when unknown */
    bool has_probs, has_stats;
    int64_t n_prompts, n_tokens;  /* committed */
    MsTraceModel model;
} MsTraceRunInfo;

/* Run ids in ascending order; *ids is malloc'd (caller frees), *n its length. */
int ms_trace_runs(MsTraceDb *db, int64_t **ids, int *n, MsError *err);
/* MS_ENOTFOUND when no such run. */
int ms_trace_run_info(MsTraceDb *db, int64_t run_id, MsTraceRunInfo *out, MsError *err);
void ms_trace_run_info_clear(MsTraceRunInfo *ri);    /* accepts NULL / zeroed */
/* prompt_id of the committed prompt `index` of a run, 0 if absent, or MS_E*. */
int64_t ms_trace_prompt_lookup(MsTraceDb *db, int64_t run_id, int index, MsError *err);

/* A committed prompt by its index in the prompt set (the viewer's "prompt
 * P").  Caller owns; release with ms_trace_prompt_info_clear.  MS_ENOTFOUND
 * when the run has no such committed prompt. */
typedef struct {
    int64_t prompt_id, run_id;
    int index;
    char *text; size_t text_len;         /* exact bytes, NUL-terminated for convenience */
    char *labels_json;                   /* NULL if none */
    int n_tokens;
} MsTracePromptInfo;
int ms_trace_prompt_get(MsTraceDb *db, int64_t run_id, int index, MsTracePromptInfo *out, MsError *err);
void ms_trace_prompt_info_clear(MsTracePromptInfo *p);   /* accepts NULL / zeroed */

/* Cheap "has the database changed" check for a window that refreshes while
 * a trace is written (by this or another process): compares *stamp with the
 * database's current change stamp (SQLite's data_version plus this handle's
 * own changes), stores the new stamp and returns 1 when it differs, 0 when
 * not, or MS_E*.  Start with *stamp = 0 (the first call reports a change). */
int ms_trace_changed(MsTraceDb *db, uint64_t *stamp, MsError *err);

/* ----------------------------------------------------------------- writer */

typedef struct MsTraceWriter MsTraceWriter;

/* A writer for one run.  Tokens and observer events of the current prompt
 * are buffered in memory and written in one transaction at commit, in
 * (pos, layer) order, with prepared statements. */
MsTraceWriter *ms_trace_writer_new(MsTraceDb *db, int64_t run_id, MsError *err);
void ms_trace_writer_free(MsTraceWriter *w);  /* accepts NULL; drops an uncommitted prompt */

/* An observer that feeds this writer (user = w).  Routing is recorded
 * always; probs/logits when the run has_probs; per-expert output stats and
 * hidden stats when has_stats.  Events outside begin/commit are ignored.
 * Callback failures (e.g. out of memory) are sticky and reported by commit. */
MsObserver ms_trace_writer_observer(MsTraceWriter *w);

/* Name the process that writes (stored with every prompt as
 * prompt.worker, e.g. "host:pid shard 2/3"); NULL = not recorded (the
 * default).  The text is copied. */
int ms_trace_writer_set_worker(MsTraceWriter *w, const char *worker, MsError *err);
/* Start prompt `index` (0-based position in the prompt file).  text may hold
 * NUL bytes (len given); labels_json is a JSON object text or NULL.  An
 * uncommitted previous prompt is dropped.  Buffers are copied. */
int ms_trace_writer_begin(MsTraceWriter *w, int index, const char *text, size_t len,
                          const char *labels_json, MsError *err);
/* One token of the current prompt.  logprob / entropy: NAN = unknown (NULL). */
int ms_trace_writer_token(MsTraceWriter *w, int pos, int32_t token_id,
                          const char *piece, size_t piece_len, bool is_generated,
                          float logprob, float entropy, MsError *err);
/* Direct routing input (importers, tests): one (pos, layer) group of k
 * experts; weights may be NULL (stored as NaN -> NULL in the view). */
int ms_trace_writer_route(MsTraceWriter *w, int pos, int layer, int k,
                          const int32_t *experts, const float *weights, MsError *err);
/* Write everything buffered for the prompt in one transaction. On success
 * *prompt_id (may be NULL) receives the new prompt's id. */
int ms_trace_writer_commit(MsTraceWriter *w, int64_t *prompt_id, MsError *err);
void ms_trace_writer_abort(MsTraceWriter *w);    /* drop the current prompt */
/* Routing rows written so far by this writer (for progress / benchmarks). */
int64_t ms_trace_writer_rows(const MsTraceWriter *w);

/* ----------------------------------------------------------------- reader */

typedef struct MsTraceCursor MsTraceCursor;   /* any of the iterators below */
void ms_trace_cursor_free(MsTraceCursor *c);   /* accepts NULL */

/* Prompts of a run in index order. */
typedef struct {
    int64_t prompt_id, run_id;
    int index;
    const char *text; size_t text_len;   /* exact bytes (may hold NUL), borrowed */
    const char *labels_json;             /* borrowed, NULL if none */
    int n_tokens;
    const char *worker;                  /* borrowed: the process that wrote it, NULL if not recorded */
} MsTracePrompt;
MsTraceCursor *ms_trace_prompts(MsTraceDb *db, int64_t run_id, MsError *err);
/* 1 = *out filled, 0 = end, < 0 = MS_E*. */
int ms_trace_prompts_next(MsTraceCursor *c, MsTracePrompt *out, MsError *err);

/* Tokens of a run (prompt_id = 0) or of one prompt, in (prompt_id, pos) order. */
typedef struct {
    int64_t prompt_id;
    int32_t pos, token_id;
    const char *piece; size_t piece_len; /* exact bytes, borrowed */
    bool is_generated;
    float logprob, entropy;              /* NAN when unknown */
} MsTraceToken;
MsTraceCursor *ms_trace_tokens(MsTraceDb *db, int64_t run_id, int64_t prompt_id, MsError *err);
int ms_trace_tokens_next(MsTraceCursor *c, MsTraceToken *out, MsError *err);

/* Routing in (prompt_id, pos, layer, rank) order, as fixed-size chunks.
 * One (prompt, pos, layer) group is never split across chunks when cap is at
 * least its k (cap >= 256 always suffices for k <= 256).  maxabs / l2 /
 * channel are the expert_stats values (NAN / −1 when the run has no stats;
 * channel is also −1 in rows written before schema version 3). */
typedef struct {
    int64_t prompt_id;
    int32_t pos;
    int16_t layer, rank;
    int32_t expert;
    float weight;
    float maxabs, l2;
    int32_t channel;
} MsTraceRoute;
MsTraceCursor *ms_trace_routing(MsTraceDb *db, int64_t run_id, int64_t prompt_id, MsError *err);
/* Fills up to cap rows; returns the count (0 = end) or MS_E*. */
int ms_trace_routing_next(MsTraceCursor *c, MsTraceRoute *buf, int cap, MsError *err);
/* The same cursor read one stored row per (token, MoE layer), undecoded:
 * experts k × uint16 LE in rank order; weights, maxabs, l2 k × binary32 LE
 * or NULL; argmax k × uint16 LE (channel of each maxabs) or NULL.  Blobs are borrowed until the next call.  Do not mix with
 * ms_trace_routing_next on one cursor.  1 = row in *out, 0 = end, < 0 = MS_E*. */
typedef struct {
    int64_t prompt_id;
    int32_t pos, layer, k;
    const unsigned char *experts, *weights, *maxabs, *l2, *argmax;
} MsTraceRoutePacked;
int ms_trace_routing_next_packed(MsTraceCursor *c, MsTraceRoutePacked *out, MsError *err);
/* Routing rows of one run whose prompt_id is in [prompt_lo, prompt_hi], in
 * (prompt, pos, layer) order; read with either next function. */
MsTraceCursor *ms_trace_routing_range(MsTraceDb *db, int64_t run_id, int64_t prompt_lo, int64_t prompt_hi,
                                      MsError *err);

/* Router probabilities / logits per (token, layer), decoded from binary16
 * to float, n_expert values each.  Arrays borrowed until the next call. */
typedef struct {
    int64_t prompt_id;
    int32_t pos, layer, n_expert;
    const float *probs, *logits;
} MsTraceProbs;
MsTraceCursor *ms_trace_probs(MsTraceDb *db, int64_t run_id, int64_t prompt_id, MsError *err);
int ms_trace_probs_next(MsTraceCursor *c, MsTraceProbs *out, MsError *err);

/* Residual max |h| per (token, layer), all blocks, in (prompt, pos, layer)
 * order; channel: where that max is (−1 when not stored, before version 3). */
typedef struct {
    int64_t prompt_id;
    int32_t pos, layer;
    float maxabs;
    int32_t channel;
} MsTraceHidden;
MsTraceCursor *ms_trace_hidden(MsTraceDb *db, int64_t run_id, int64_t prompt_id, MsError *err);
int ms_trace_hidden_next(MsTraceCursor *c, MsTraceHidden *buf, int cap, MsError *err);

/* ------------------------------------------------------- analysis results */

/* Analyses write result tables into the same database.  A result table is
 * named by the caller (letters, digits, '_'; it is created as given, e.g.
 * "an_load"), replaced if it exists, and registered in table `analysis`
 * with the run, analysis name and parameters. */
typedef enum { MS_COL_NULL = 0, MS_COL_INT = 1, MS_COL_REAL = 2, MS_COL_TEXT = 3, MS_COL_BLOB = 4 } MsColType;
typedef struct { const char *name; MsColType type; } MsColumn;

typedef struct MsTraceResult MsTraceResult;
MsTraceResult *ms_trace_result_new(MsTraceDb *db, int64_t run_id, const char *analysis,
                                   const char *params_json, const char *table,
                                   const MsColumn *cols, int n_cols, MsError *err);
/* Set column i (0-based) of the pending row, then ms_trace_result_row(). */
int ms_trace_result_int(MsTraceResult *r, int col, int64_t v);
int ms_trace_result_real(MsTraceResult *r, int col, double v);   /* NaN -> NULL */
int ms_trace_result_text(MsTraceResult *r, int col, const char *s); /* NULL -> NULL */
int ms_trace_result_null(MsTraceResult *r, int col);
int ms_trace_result_row(MsTraceResult *r, MsError *err);
/* Commit the table (everything is one transaction). */
int ms_trace_result_commit(MsTraceResult *r, MsError *err);
void ms_trace_result_free(MsTraceResult *r);  /* accepts NULL; uncommitted work rolled back */

/* Reading results back without SQL (a viewer's way in).  The registry:
 * one row per result table, the latest write of each.  Strings are
 * borrowed until the next call on the cursor or its free. */
typedef struct {
    int64_t analysis_id;
    int64_t run_id;              /* 0 when the row names no run */
    const char *name;            /* the analysis: "load", "npmi", ... */
    const char *table;           /* its result table: "an_load_experts", ... */
    const char *params;          /* parameters as JSON text, NULL if none */
    const char *created;         /* "YYYY-MM-DDTHH:MM:SSZ" (UTC) */
    const char *program_version;
} MsTraceAnalysis;
/* The analyses stored for a run (run_id 0 = every run), in registration order. */
MsTraceCursor *ms_trace_analyses(MsTraceDb *db, int64_t run_id, MsError *err);
int ms_trace_analyses_next(MsTraceCursor *c, MsTraceAnalysis *out, MsError *err);

/* One value of a result row; SQL NULL is type MS_COL_NULL (a NaN that was
 * written is NULL too).  Text and blob bytes are borrowed until the next
 * call on the cursor (text is NUL-terminated). */
typedef struct {
    MsColType type;
    int64_t i;                   /* MS_COL_INT */
    double r;                    /* MS_COL_REAL */
    const char *s;               /* MS_COL_TEXT, MS_COL_BLOB */
    size_t len;
} MsTraceValue;
/* The rows of a result table the registry lists (MS_ENOTFOUND otherwise),
 * in the order they were written (key order for a WITHOUT ROWID table), one
 * at a time (bounded memory); run_id 0 = every row, else only rows of that
 * run. */
MsTraceCursor *ms_trace_table(MsTraceDb *db, const char *table, int64_t run_id, MsError *err);
/* Its columns (names and declared types, run_id first); returns the count
 * and points *cols at them (borrowed, live as long as the cursor). */
int ms_trace_table_columns(const MsTraceCursor *c, const MsColumn **cols);
/* 1 = *vals points at one value per column, 0 = end, < 0 = MS_E*. */
int ms_trace_table_next(MsTraceCursor *c, const MsTraceValue **vals, MsError *err);

/* ------------------------------------------------ experiments and sweeps */

/* An outer transaction around several writes (a prompt of both runs of an
 * experiment and its comparison rows commit together; writer commits inside
 * become savepoints).  rollback accepts a handle with no transaction. */
int ms_trace_tx_begin(MsTraceDb *db, MsError *err);
int ms_trace_tx_commit(MsTraceDb *db, MsError *err);
void ms_trace_tx_rollback(MsTraceDb *db);

/* One prompt of an experiment (schema version 4, docs/schema.md): the row at
 * position p predicts the token at p + 1 of the teacher-forced sequence
 * (prompt, then the baseline's continuation). */
typedef struct {
    int pos;
    float kl;                     /* KL(baseline || intervened) of the next-token distributions */
    float lp_baseline, lp_run;    /* log-prob of the token at pos + 1 (NAN at the last row) */
    int32_t top1_baseline, top1_run;
} MsComparePos;

typedef struct {
    int layer, n_pos, n_changed;  /* positions, and those whose selected set differs */
    double jaccard_sum;           /* Σ |A∩B| / |A∪B| over positions */
} MsCompareLayer;

typedef struct {
    int index;                    /* prompt index */
    int n_tokens, n_prompt_tokens;/* teacher-forced positions; of them the prompt's */
    double kl_mean, kl_max;
    int n_scored;                 /* tokens with a log-prob under both (n_tokens − 1) */
    double nll_baseline, nll_run; /* Σ −log p over the scored tokens */
    int top1_agree;               /* rows whose greedy choice agrees */
    int first_divergence;         /* first position whose greedy choice differs, −1 = none */
    const int32_t *tokens_baseline; int n_tokens_baseline; /* the baseline's continuation */
    const int32_t *tokens_run; int n_tokens_run;           /* the intervened model's free continuation */
    const char *text_baseline, *text_run;                  /* their text (valid UTF-8), may be NULL */
} MsComparePrompt;

/* Insert one prompt's comparison rows (in the caller's transaction, if any). */
int ms_trace_compare_put(MsTraceDb *db, int64_t run_id, int64_t baseline_run_id, const MsComparePrompt *p,
                         const MsComparePos *pos, int n_pos, const MsCompareLayer *lay, int n_lay, MsError *err);
/* 1 when prompt index has comparison rows for run_id, 0 if not, or MS_E*. */
int ms_trace_compare_has(MsTraceDb *db, int64_t run_id, int index, MsError *err);

/* Reading back, for `compare` and the workbench.  Caller owns the arrays
 * (ms_trace_compare_rows_clear). */
typedef struct {
    int64_t run_id, baseline_run_id;
    int n_prompts;
    MsComparePrompt *prompts;     /* by prompt index; strings and token arrays owned here */
    int n_layers;
    MsCompareLayer *layers;       /* summed over prompts, by layer */
    MsCompareLayer *prompt_layers;/* [n_prompts][n_layers] per prompt, same layer order */
} MsCompareRows;
/* MS_ENOTFOUND when the pair has no rows. */
int ms_trace_compare_rows(MsTraceDb *db, int64_t run_id, int64_t baseline_run_id, MsCompareRows *out, MsError *err);
void ms_trace_compare_rows_clear(MsCompareRows *r);
/* The per-position rows of one prompt (malloc'd array in *out). */
int ms_trace_compare_positions(MsTraceDb *db, int64_t run_id, int index, MsComparePos **out, int *n, MsError *err);

/* A sweep: one row per candidate intervention set (and random control). */
typedef struct {
    int cand;
    const char *kind;             /* "candidate" | "control" */
    const char *label;            /* e.g. "silence 3:5" or "control 2" */
    const char *interventions;    /* the set in text form */
    int n_experts;
    int64_t n_positions;
    double kl_mean, kl_max, top1_agreement, ppl_baseline, ppl_run, dppl, changed_share, jaccard_mean;
    double z_kl, z_dppl;          /* against the controls (NaN without controls) */
    int rank;                     /* by kl_mean among candidates, 1 = largest; 0 for controls */
} MsSweepRow;
/* Create a sweep (settings JSON text) and return its id > 0, or MS_E*. */
int64_t ms_trace_sweep_new(MsTraceDb *db, int64_t model_id, int64_t baseline_run_id, const char *settings_json,
                           MsError *err);
int ms_trace_sweep_put(MsTraceDb *db, int64_t sweep_id, const MsSweepRow *rows, int n, MsError *err);

/* A stored sweep read back (the `sweep` view, the workbench).  Caller owns;
 * release with ms_trace_sweep_rows_clear. */
typedef struct {
    int64_t sweep_id;
    int64_t baseline_run_id;      /* 0 when the sweep kept its baselines in memory */
    int64_t model_id;
    int n_layer, n_expert;        /* the model's blocks and routed experts */
    char *created;                /* "YYYY-MM-DDTHH:MM:SSZ" (UTC) */
    char *settings;               /* JSON text, NULL if none */
    int n_rows;
    MsSweepRow *rows;             /* in set order (cand); strings owned here; NULL reals are NaN,
                                   * a NULL rank (controls) is 0 */
} MsSweepRows;
/* The rows of sweep sweep_id (0 = the newest).  MS_ENOTFOUND when there is
 * no such sweep (or none at all, e.g. in a database older than schema 4). */
int ms_trace_sweep_rows(MsTraceDb *db, int64_t sweep_id, MsSweepRows *out, MsError *err);
void ms_trace_sweep_rows_clear(MsSweepRows *r);   /* accepts NULL / zeroed */

/* A sweep filled by several workers (sweep --shard I/N), each storing the
 * rows of its share of the candidate sets.  join: the latest sweep of this
 * model and settings that holds fewer than n_cand rows, else a new one —
 * found or made in one transaction, so workers starting together agree. */
int64_t ms_trace_sweep_join(MsTraceDb *db, int64_t model_id, const char *settings_json, int n_cand, MsError *err);
/* The candidate numbers (cand) sweep_id holds, ascending; *cands is
 * malloc'd (caller frees). */
int ms_trace_sweep_cands(MsTraceDb *db, int64_t sweep_id, int **cands, int *n, MsError *err);
/* Store one worker's rows and, when the sweep then holds all n_cand rows,
 * call finish(user, rows, n_cand) with every row (cand order; strings
 * borrowed for the call) to set z_kl, z_dppl and rank, and store those —
 * all in one transaction under a lock on the sweep, so exactly one worker
 * (the last) finishes it.  *complete tells whether it did. */
typedef void (*MsSweepFinishFn)(void *user, MsSweepRow *rows, int n);
int ms_trace_sweep_put_shard(MsTraceDb *db, int64_t sweep_id, const MsSweepRow *rows, int n, int n_cand,
                             MsSweepFinishFn finish, void *user, bool *complete, MsError *err);

/* --------------------------------------------------- query, export, import */

/* Run one read-only statement; row() is called per row with column names
 * and values as text (NULL for SQL NULL; blobs as hex "x'..'"); returning
 * nonzero from row() stops early.  Writes are refused (MS_EINVAL). */
typedef int (*MsTraceRowFn)(void *user, int n_cols, const char *const *names,
                            const char *const *values);
int ms_trace_query(MsTraceDb *db, const char *sql, MsTraceRowFn row, void *user, MsError *err);

typedef enum { MS_EXPORT_SQL = 1, MS_EXPORT_PGSQL = 2, MS_EXPORT_CSV = 3 } MsExportFormat;
/* tables: comma list of logical table names, NULL = all.  CSV writes one
 * file per table into out_dir (out must be NULL); the SQL formats write to
 * out.  See docs/schema.md for what each format carries. */
int ms_trace_export(MsTraceDb *db, MsExportFormat fmt, const char *tables,
                    FILE *out, const char *out_dir, MsError *err);
/* The same into a file (sql, pgsql) or a directory (csv, created when
 * missing), whole or not at all: written under temporary names and renamed
 * into place only when complete (ms_outfile_open), so a failure midway (a
 * corrupt page, a full disk) leaves no partial file and an existing one
 * unchanged.  Errors name the file. */
int ms_trace_export_path(MsTraceDb *db, MsExportFormat fmt, const char *tables, const char *path, MsError *err);

typedef enum { MS_IMPORT_IDS = 1, MS_IMPORT_CSV = 2, MS_IMPORT_JSONL = 3 } MsImportFormat;
typedef struct {
    int n_expert, top_k;        /* 0 = infer */
    const char *labels_path;    /* JSONL {"prompt": i, "labels": {...}} or NULL */
    const char *source_name;    /* recorded as model file_name */
} MsImportOptions;
/* Import one file as a new run; *run_id receives its id.  Text lines (all
 * of csv and jsonl, the ids headers, the labels file) are at most
 * MS_IMPORT_MAX_LINE bytes without NUL; labels must name imported prompts;
 * weights must be finite. */
#define MS_IMPORT_MAX_LINE ((size_t)16 << 20)
int ms_trace_import(MsTraceDb *db, MsImportFormat fmt, const char *path,
                    const MsImportOptions *opt, int64_t *run_id, MsError *err);

/* SHA-256 of a file as 64 lowercase hex digits + NUL. */
int ms_sha256_file(const char *path, char out[65], MsError *err);
/* SHA-256 of bytes fed in pieces. */
typedef struct { uint32_t h[8]; uint64_t len; unsigned char buf[64]; size_t nbuf; } MsSha256;
void ms_sha256_init(MsSha256 *s);
void ms_sha256_update(MsSha256 *s, const void *p, size_t n);
void ms_sha256_final(MsSha256 *s, char out[65]);

/* ------------------------------------------------------------------ merge */

/* Merge every run of the source databases (shards of one prompt set traced
 * apart, e.g. with trace --shard I/N on machines without a shared server)
 * into one run of dst, of either backend.  All source runs must have the
 * same model (sha256 and shape), kind, settings (the prompt file's name
 * aside), interventions and stored data (probs, stats): otherwise MS_EINVAL
 * naming the source and what differs, before anything is written.  The
 * dst run is the latest matching one (made when there is none); a prompt
 * index dst already holds is skipped, so a merge can be repeated or resumed.
 * Every prompt is one transaction; progress in prompts (stage "merge"). */
typedef struct {
    int64_t run_id;            /* the run in dst */
    int64_t n_written, n_skipped;
    int n_sources;
} MsTraceMergeResult;
int ms_trace_merge(MsTraceDb *dst, MsTraceDb *const *srcs, int n_src, MsTraceMergeResult *res, MsProgressFn progress,
                   void *progress_user, const MsCancel *cancel, MsError *err);

#endif
