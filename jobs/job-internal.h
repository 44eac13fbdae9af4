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

/* Store one token with its piece text. */
int ms_job_put_token(MsTraceWriter *w, const MsTokenizer *tok, int pos, int32_t id, bool gen, float lp, float ent,
                     MsError *err);

/* Evaluates sequences in one context.  Rows: after position p is evaluated,
 * its logits row predicts the token at p + 1; on_row sees every row (when
 * all_rows) in position order. */
typedef struct {
    MsContext *ctx;
    const MsModel *m;
    const MsTokenizer *tok;
    int V, chunk;
    float *logits;              /* [chunk][V] */
    float *prev;                /* [V] the last row */
    bool all_rows;              /* logits at every prompt position (log-probs, on_row) */
    MsTraceWriter *w;           /* tokens stored here when non-NULL */
    MsSampler *smp;             /* for generation */
    int (*on_row)(void *user, int pos, const float *row, MsError *err);
    void *row_user;
    MsJobClock *clock;          /* tokens counted here; may be NULL */
} MsSeqRunner;

/* Allocates logits/prev for prompts up to chunk tokens.  */
int ms_seq_runner_init(MsSeqRunner *r, MsContext *ctx, const MsModel *m, int chunk, MsError *err);
void ms_seq_runner_clear(MsSeqRunner *r);

/* From an empty cache: evaluate ids[0..n) (positions >= n_prompt stored as
 * generated: teacher-forced continuation), then generate up to n_gen tokens
 * with r->smp (stopping at an end-of-generation token); generated ids go to
 * gen (capacity n_gen, may be NULL) and their count to *n_gen_out. */
int ms_seq_run(MsSeqRunner *r, const int32_t *ids, int n, int n_prompt, int n_gen, int32_t *gen, int *n_gen_out,
               MsError *err);

#endif
