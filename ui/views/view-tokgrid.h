/* view-tokgrid.h — what the `tokens` and `heatmap` views share: one prompt's
 * tokens and their routing at every shown MoE layer, read from a trace once
 * (the packed routing rows, one per token and layer) into flat arrays the
 * draw functions index directly, plus the tooltip text of a token.
 *
 * Internal to ui/views (not part of the view interface).  The grid belongs
 * to the caller of ms_tokgrid_prepare and is released with ms_tokgrid_free. */
#ifndef MS_VIEW_TOKGRID_H
#define MS_VIEW_TOKGRID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ms-view.h"

typedef struct {
    int64_t run_id, prompt_id;
    int prompt_index;
    char model[256];            /* the model's name or file name, for titles */
    int n_layer, n_expert, k;   /* the model's blocks, routed experts E, top-k */
    bool has_probs, has_stats;  /* what the run stored */

    /* tokens, by position 0 .. n_tok-1 */
    int n_tok, n_prompt_tok;    /* all tokens; those before the first generated one */
    char *pieces;               /* every piece's bytes, back to back */
    int64_t *piece_off;         /* piece p is pieces[piece_off[p] .. piece_off[p+1]) */
    int32_t *token_id;
    uint8_t *generated;         /* 1 for generated tokens */
    float *piece_w;             /* escaped width at a 12-unit token font, or NULL (not measured) */

    /* rows: the shown MoE blocks, ascending */
    int n_rows;
    int *row_layer;             /* block index of row r */
    int layer_row[MS_TRACE_MAX_LAYER]; /* row of a block, −1 when not shown */

    /* per cell, row-major [row * n_tok + pos]; missing = −1 / NaN.  These
     * arrays live in one allocation (arena) backed by huge pages where the
     * system offers them: touching ~50 MB of fresh 4 KiB pages costs more
     * than decoding the rows on some machines. */
    void *arena;
    int32_t *top1;              /* rank-0 expert */
    float *top1_w;              /* its gate weight */
    float *w_entropy;           /* entropy (nats) of the selected experts' weights, normalised to sum 1,
                                 * NULL unless prepared */
    float *p_entropy;           /* entropy (nats) of the router probabilities, NULL unless prepared */
    float *hidden;              /* residual max |h| after the block, NULL without stats */

    /* the selected sets, row-major like the cells: [(row * n_tok + pos) *
     * kmax + j] in rank order, unused entries 0xFFFF (so a scan of one
     * layer is sequential and needs no count) */
    int kmax;
    uint8_t *n_sel;             /* [row * n_tok + pos] */
    uint16_t *sel_e;
    uint16_t *sel_w;            /* binary16 (3 significant digits, enough to read); NaN without weights */
    bool has_weights;

    /* value ranges over the whole grid (NaN-free), for colour scales */
    float max_top1_w, max_w_entropy, max_p_entropy, max_hidden;
} MsTokGrid;

typedef enum {
    MS_TOKGRID_PROBS = 1u << 0,   /* read the router probabilities for p_entropy (when the run has them) */
    MS_TOKGRID_WIDTHS = 1u << 1,  /* measure each piece's width (piece_w) */
    MS_TOKGRID_WENTROPY = 1u << 2, /* compute w_entropy (else NULL) */
} MsTokGridFlags;

/* Read prompt p->prompt of run p->run (0 = newest with prompts) at the
 * MoE blocks in p->layer_lo..layer_hi (−1 = all; p->layer is not used).
 * Polls p->cancel.  Errors name the database: no run, no such prompt, no
 * MoE block in the range. */
int ms_tokgrid_prepare(MsTraceDb *db, const MsViewParams *p, unsigned flags, MsTokGrid **out, MsError *err);
void ms_tokgrid_free(MsTokGrid *g);   /* accepts NULL */

/* Tooltip text of token pos: position, piece (escaped), token id, generated,
 * then every shown layer's experts and weights.  Always NUL-terminated;
 * cut with "…" when it does not fit. */
void ms_tokgrid_token_text(const MsTokGrid *g, int pos, char *buf, size_t size);
/* True when expert e is in the selected set of (row, pos). */
bool ms_tokgrid_selects(const MsTokGrid *g, int row, int pos, int e);
/* Mark pixel columns: for tokens [t0, t1) of row `row`, a token t that
 * selects e sets mark[i] = 1 for every i in [floor(x(t)), ceil(x(t + 1)))
 * within [0, npx), where x(t) = (t − c0) · px_per_tok. */
void ms_tokgrid_mark_selects(const MsTokGrid *g, int row, int e, int64_t t0, int64_t t1, double c0,
                             double px_per_tok, uint8_t *mark, int npx);
/* Value of a cell for a colour mode (NaN when missing or not prepared);
 * MS_VIEW_COLOR_EXPERT gives the expert id as a double (−1 missing). */
double ms_tokgrid_value(const MsTokGrid *g, MsViewColorBy c, int row, int pos);
/* The entropy array a colour mode shows: p_entropy when prepared, else
 * the weight entropy (NULL when neither); *from_probs says which. */
const float *ms_tokgrid_entropy(const MsTokGrid *g, bool *from_probs);

/* Where a view draws an item (figure units), from the geometry its draw and
 * hit use: for tests, and for a window that scrolls an item into view.
 * False when the item is not visible (or the layout fails).  Heat map: row
 * −1 is the token strip (false when the strip is not shown). */
bool ms_view_heatmap_cell_rect(const void *model, const MsViewState *s, double W, double H, int row, int pos,
                               MsPlotRect *out);
bool ms_view_tokens_box(const void *model, const MsViewState *s, double W, double H, int pos, MsPlotRect *out);
bool ms_view_load_cell_rect(const void *model, const MsViewState *s, double W, double H, int row, int expert,
                            MsPlotRect *out);

/* Append s to the NUL-terminated buf (size bytes), cut at a character
 * boundary when it does not fit. */
void ms_view_append(char *buf, size_t size, const char *s);

/* The newest run with committed prompts, or p_run itself after checking it
 * exists.  MS_ENOTFOUND with a message otherwise. */
int64_t ms_view_resolve_run(MsTraceDb *db, int64_t p_run, MsTraceRunInfo *info, MsError *err);

#endif
