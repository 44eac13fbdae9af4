/* job-internal.h — plumbing shared by the jobs: progress clock, prompt-set
 * tokenization, and the sequence runner that evaluates one prompt (prefill,
 * forced tokens, generation) and feeds a trace writer. */
#ifndef MS_JOB_INTERNAL_H
#define MS_JOB_INTERNAL_H

#include "jobs.h"

double ms_job_now(void);       /* monotonic seconds */
double ms_job_cpu_now(void);   /* CPU seconds of the whole process */

/* Progress bookkeeping of one call: reports through fn (may be NULL). */
typedef struct {
    MsProgressFn fn;
    void *user;
    const char *stage;
    double t0;
    int64_t total, tokens_total;
    int64_t tokens;            /* evaluated by this call */
    int64_t skipped;           /* items skipped (resume): not part of the rate */
} MsJobClock;

void ms_job_clock_start(MsJobClock *c, MsProgressFn fn, void *user, const char *stage, int64_t total,
                        int64_t tokens_total);
void ms_job_clock_report(MsJobClock *c, int64_t done);

/* Tokenize every prompt (with BOS as the model says) before anything runs.
 * An empty prompt or an encoding failure is "NAME:LINE: problem".
 * *toks (n arrays) and *ntok are caller-freed with ms_job_tokens_free. */
int ms_job_tokenize(const MsTokenizer *tok, const MsPrompt *p, size_t n, const char *name,
                    int32_t ***toks, int **ntok, int *max_tok, MsError *err);
void ms_job_tokens_free(int32_t **toks, int *ntok, size_t n);
/* Every prompt, with n_gen tokens generated after it, fits the model's
 * trained context (when the model states one): else MS_ERANGE
 * "NAME:LINE: prompt of N tokens (+ G generated) is longer than the
 * model's context of C tokens" — never traced past it silently. */
int ms_job_check_context(const MsModel *m, const MsPrompt *p, const int *ntok, size_t n, int n_gen,
                         const char *name, MsError *err);

/* Store one token with its piece text. */
int ms_job_put_token(MsTraceWriter *w, const MsTokenizer *tok, int pos, int32_t id, bool gen, float lp, float ent,
                     MsError *err);

/* Evaluates sequences in one context, feeding a trace writer.  Rows: after
 * position p is evaluated its logits row predicts the token at p + 1;
 * on_row sees the rows that exist, in position order: every row when
 * all_rows, else only those of generated (or forced) tokens. */
typedef struct {
    MsContext *ctx;
    const MsModel *m;
    const MsTokenizer *tok;
    int V, chunk;
    float *logits;              /* [chunk][V] */
    float *prev;                /* [V] the row of the last position evaluated */
    int pos;                    /* tokens evaluated since ms_seq_begin */
    bool all_rows;              /* logits at every prompt position (log-probs, on_row) */
    MsTraceWriter *w;           /* tokens stored here when non-NULL */
    MsSampler *smp;             /* for ms_seq_next */
    int (*on_row)(void *user, int pos, const float *row, MsError *err);
    void *row_user;
    MsJobClock *clock;          /* tokens counted here; may be NULL */
} MsSeqRunner;

/* Allocates logits/prev for prefill chunks of up to chunk tokens. */
int ms_seq_runner_init(MsSeqRunner *r, MsContext *ctx, const MsModel *m, int chunk, MsError *err);
void ms_seq_runner_clear(MsSeqRunner *r);

/* Start a sequence from an empty cache. */
void ms_seq_begin(MsSeqRunner *r);
/* Evaluate ids[0..n) at the next positions (in chunks); tokens at positions
 * >= n_prompt are stored as generated (a teacher-forced continuation).
 * Log-probs are stored for every token with a row before it when all_rows,
 * and for generated tokens always; entropies likewise for their own row. */
int ms_seq_feed(MsSeqRunner *r, const int32_t *ids, int n, int n_prompt, MsError *err);
/* The next token drawn from the last row with r->smp; −1 at an
 * end-of-generation token, MS_E* if the sampler fails. */
int32_t ms_seq_next(MsSeqRunner *r, MsError *err);

/* Prompt then up to n_gen generated tokens (stopping at end of generation);
 * generated ids go to gen (capacity n_gen, may be NULL), their count to
 * *n_gen_out. */
int ms_seq_run(MsSeqRunner *r, const int32_t *ids, int n, int n_gen, int32_t *gen, int *n_gen_out, MsError *err);

/* --------------------------------------------------------- experiments */

/* One context comparing the baseline and an intervened model prompt by
 * prompt (exp-core.c): experiments, sweeps and the single-prompt call. */
typedef struct {
    const MsModel *m;
    int V, n_layer;
    MsContext *ctx;
    MsSeqRunner r;
    int n_gen;
    bool free_gen;
    float temp;
    uint64_t seed;
    /* the current prompt */
    int32_t *seq;               /* [cap] prompt then baseline continuation */
    int n, n_prompt, cap;
    float *rows_b;              /* [cap][V] baseline next-token rows */
    float *row_last;            /* the intervened row at n_prompt − 1 (free continuation) */
    MsRouteCapture *cap_b, *cap_i;
    MsComparePos *pos;          /* [cap] */
    MsCompareLayer *lay;        /* [n_layer] MoE layers, n_lay used */
    int n_lay;
    int32_t *free_toks;         /* [n_gen] */
    int n_free;
    MsComparePrompt sum;        /* of the last intervened pass (token arrays point here) */
} MsExpCore;

int ms_exp_core_init(MsExpCore *x, const MsModel *m, int max_prompt, int chunk, int n_threads, int n_gen,
                     bool free_gen, float temp, uint64_t seed, const MsCancel *cancel, MsError *err);
void ms_exp_core_clear(MsExpCore *x);
/* The baseline pass of a prompt (stored through w when non-NULL). */
int ms_exp_core_baseline(MsExpCore *x, const int32_t *ids, int n_prompt, uint64_t stream, MsTraceWriter *w,
                         MsError *err);
/* The intervened pass against the last baseline: fills pos, lay and sum
 * (and the free continuation when free_gen). */
int ms_exp_core_intervened(MsExpCore *x, const MsIntervention *iv, uint64_t stream, MsTraceWriter *w,
                           MsError *err);
/* Detokenize ids as valid UTF-8 (invalid bytes become U+FFFD), malloc'd. */
char *ms_job_text(const MsTokenizer *tok, const int32_t *ids, int n);
/* The same for raw bytes. */
char *ms_job_utf8(const char *raw, size_t len);

#endif
