/* wb-apply.h — Apply: what the intervention panel sends (the selected
 * prompt, a copy of the grid's set, the comparison options) to the
 * experiment library (ms_compare_prompt, jobs.h), and what comes back drawn:
 * the per-token KL strip and the routing shift (layer × position, 1 −
 * Jaccard of the selected expert sets), with hit testing from the same
 * geometry.  Drawing is a pure function of the prepared figure (cairo and
 * msplot, no GTK). */
#ifndef WB_APPLY_H
#define WB_APPLY_H

#include <cairo.h>
#include <stdbool.h>

#include "jobs.h"
#include "wb-grid.h"

typedef struct {
    int prompt;                /* index in the prompt list */
    char *text;                /* the prompt's bytes (owned) */
    size_t len;
    MsIntervention *iv;        /* a copy of the grid's set (owned) */
    MsCompareOptions opts;     /* n_gen from the panel; cancel is the runner's */
} WbApplyRequest;

#define WB_APPLY_MAX_GEN 512

/* Build a request from the panel: prompt < 0 or empty text is MS_EINVAL
 * ("choose a prompt ..."); n_gen is clamped to 1..WB_APPLY_MAX_GEN. */
int wb_apply_request(WbApplyRequest *r, const WbGrid *g, int prompt, const char *text, size_t len, int n_gen,
                     MsError *err);
void wb_apply_request_clear(WbApplyRequest *r);   /* accepts zeroed */
/* Run it (a worker thread): ms_compare_prompt with the request's options. */
int wb_apply_run(const WbApplyRequest *r, const MsModel *m, const MsCancel *cancel, MsPromptCompare *out,
                 MsError *err);

/* The result as the panel shows it. */
typedef struct {
    int n_pos, n_prompt;       /* positions (prompt, then the baseline continuation) */
    float *kl;                 /* [n_pos]: row p predicts token p + 1 */
    int n_layers;
    int *layers;               /* MoE block ids */
    float *shift;              /* [n_layers][n_pos] 1 − Jaccard, NaN where a side has no routing */
    int k;                     /* widest expert list */
    int32_t *exp_base, *exp_run; /* [n_layers][n_pos][k] experts used, −1 padded */
    char **piece;              /* [n_pos] escaped text of the token at p */
    char **top1_base, **top1_run; /* [n_pos] escaped greedy choices after p */
    double kl_mean, kl_max;
    int first_divergence;      /* −1 = none */
    int changed;               /* (layer, position) pairs whose expert set differs */
    int words_changed;         /* in the two free continuations */
} WbApplyFig;

int wb_apply_fig_build(const MsPromptCompare *c, const MsModel *m, WbApplyFig **out, MsError *err);
void wb_apply_fig_free(WbApplyFig *f);   /* accepts NULL */
/* "KL mean 0.012 nats · max 0.31 · first divergence at token 14 · routing
 * changed at 12 of 164 (layer, token) pairs · 5 words differ". */
void wb_apply_summary(const WbApplyFig *f, char *buf, size_t size);

/* The KL strip: bars per position over a token-position axis; hover_pos
 * (−1 = none) is outlined. */
int wb_apply_draw_kl(cairo_t *cr, double w, double h, const WbApplyFig *f, int hover_pos, MsError *err);
bool wb_apply_hit_kl(const WbApplyFig *f, double w, double h, double x, double y, int *pos, char *text,
                     size_t size);
/* The routing shift: MoE layers × positions. */
int wb_apply_draw_shift(cairo_t *cr, double w, double h, const WbApplyFig *f, int hover_layer, int hover_pos,
                        MsError *err);
bool wb_apply_hit_shift(const WbApplyFig *f, double w, double h, double x, double y, int *layer, int *pos,
                        char *text, size_t size);

#endif
