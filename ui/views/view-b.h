/* view-b.h — what the views coactivation, affinity, flow and consistency
 * share (not a public header): the run a view shows, stored analysis
 * results found through the registry (ms_trace_analyses / ms_trace_table,
 * no SQL), a fast scan of the packed routing for results that are not
 * stored, the clustering order of matrix rows, and small drawing helpers.
 *
 * Ownership: every function that fills a struct says how to release it;
 * nothing here keeps state between calls. */
#ifndef MS_VIEW_B_H
#define MS_VIEW_B_H

#include <stdbool.h>
#include <stdint.h>

#include "ms-view.h"
#include "trace.h"

/* ------------------------------------------------------------- the run */

/* The run a view shows: p_run, or (0) the newest run with prompts.  Fills
 * *ri (release with ms_trace_run_info_clear).  Errors name the database. */
int vb_run(MsTraceDb *db, int64_t p_run, MsTraceRunInfo *ri, MsError *err);

/* MoE blocks of the run's model in order; returns their count (<= 256). */
int vb_moe_layers(const MsTraceRunInfo *ri, int layers[MS_TRACE_MAX_LAYER]);

/* The block a one-layer view shows: `want` (it must be a MoE block) or,
 * want < 0, the first MoE block; *slot receives its index among the MoE
 * blocks.  Returns the block or MS_EINVAL naming the MoE blocks. */
int vb_pick_layer(MsTraceDb *db, const MsTraceRunInfo *ri, int want, int *slot, MsError *err);

/* ---------------------------------------------------- stored results */

/* The registry entry of result table `table` for the run: 1 and *params
 * (malloc'd copy of its params JSON text, NULL when it has none; caller
 * frees) when stored, 0 when not, < 0 on a database error. */
int vb_stored(MsTraceDb *db, int64_t run, const char *table, char **params, MsError *err);

/* Open a stored result table of the run for reading and map the columns a
 * view needs: idx[i] is the column of names[i].  A missing column means the
 * table was written by another version of moescope: MS_EFORMAT naming the
 * table, the column and the command that rewrites it ("moescope analyze
 * MODULE --db DB"). */
MsTraceCursor *vb_table_open(MsTraceDb *db, int64_t run, const char *table, const char *module,
                             const char *const *names, int n, int *idx, MsError *err);

/* A value of a stored row as a number: INT or REAL; NULL and anything else NaN. */
double vb_num(const MsTraceValue *v);

/* Tiny readers of a params JSON text: the integer / string / integer list
 * under `key` at the top level.  Return false when absent or of another
 * type (JSON null included). */
bool vb_param_int(const char *params, const char *key, int64_t *out);
bool vb_param_str(const char *params, const char *key, char *out, size_t size);
int vb_param_ints(const char *params, const char *key, int *out, int cap);   /* count, or -1 */

/* The one-line error of a view whose analysis is missing under --no-run. */
int vb_not_stored(MsTraceDb *db, int64_t run, const char *what, const char *command, MsError *err);

/* ------------------------------------------------- packed routing scan */

/* One token as the scan delivers it: for each MoE slot s (index into the
 * run's MoE layers), ids[s * stride .. + n[s]) are its experts in rank order
 * (n[s] = 0 when the token has no row at that layer). */
typedef struct {
    int64_t prompt_id;
    int32_t pos;
    const int32_t *ids;
    const int *n;
    int stride;
} VbToken;

typedef int (*VbTokenFn)(void *user, const VbToken *t, MsError *err);

/* Stream every token of the run (or, prompts non-NULL, of the n_prompts
 * prompts with those prompt ids, in that order; n_tokens their tokens, for
 * progress) through fn, reading routing_packed rows
 * (ms_trace_routing_next_packed: one row per token and layer, no expansion
 * per expert).  Only slots with want[s] set are decoded (NULL = all).
 * Polls cancel every 1,024 tokens (MS_ECANCELLED) and reports progress
 * (tokens) with stage `stage`.  Rows at a layer that is not MoE or naming
 * an expert >= E are MS_EFORMAT. */
int vb_scan(MsTraceDb *db, const MsTraceRunInfo *ri, const bool *want, const int64_t *prompts, int n_prompts,
            int64_t n_tokens, VbTokenFn fn, void *user, MsProgressFn progress, void *progress_user,
            const MsCancel *cancel, const char *stage, MsError *err);

/* The same scan on two threads: the run's prompts split into two halves by
 * tokens (prompt ids ascending), the first half read here into user0, the
 * second by a second read connection (ms_trace_open of the same file) into
 * user1 — fn must treat the two users independently.  *split says whether
 * the second thread ran (small runs and unusual prompt ids scan on this
 * thread only, into user0; so do runs of fewer than min_tokens tokens).
 * An error of either half stops both. */
int vb_scan_split(MsTraceDb *db, const MsTraceRunInfo *ri, const bool *want, VbTokenFn fn, void *user0, void *user1,
                  bool *split, int64_t min_tokens, MsProgressFn progress, void *progress_user, const MsCancel *cancel, const char *stage,
                  MsError *err);

/* --------------------------------------------------- clustering order */

/* Leaf order of the average-linkage (UPGMA) hierarchical clustering of n
 * items with feature vectors x[i * dim .. + dim) under Euclidean distance.
 * Deterministic: ties go to the smaller index; a merge joins its two
 * clusters end to end in whichever of the four orientations puts the
 * closest pair of end items next to each other (first such on ties).
 * order[0..n) receives a permutation of 0..n-1.  NaN features count as 0.
 * Returns 0, MS_EINVAL (n < 1, dim < 1) or MS_ENOMEM.  O(n^2) memory,
 * O(n^2) to O(n^3) time (n = 256: a few milliseconds). */
int vb_cluster_order(const double *x, int n, int dim, int *order, MsError *err);

/* ------------------------------------------------------------ models */

/* The prepared models of flow and consistency (the tests read them). */
typedef struct {
    int p;              /* pair index: column p -> p + 1 */
    int i, j;           /* experts */
    double count;       /* tokens */
} VbBand;

typedef struct {
    int64_t run, n_tokens;   /* tokens with routing at some layer */
    int E, n_cols, top;
    bool by_load;            /* node order in a column: load (else id) */
    int *layer;              /* n_cols blocks */
    double *load;            /* n_cols × E top-1 tokens */
    double *colsum;          /* n_cols */
    double *T;               /* (n_cols − 1) × E × E transitions */
    double *pair_total, *pair_shown;   /* n_cols − 1 */
    int64_t *pair_n;         /* transitions with count > 0 */
    int n_bands;
    VbBand *bands;             /* by pair, then count descending */
    bool *shown;             /* n_cols × E: the expert has a node */
    int *n_shown;            /* n_cols */
    double *other;           /* n_cols: tokens of experts without a node */
    int *n_other;            /* n_cols: experts with tokens but no node */
    int n_legend;
    int *legend_e;           /* experts with a node somewhere, by id */
} VbFlow;

typedef struct {
    int64_t run;
    int E, k;
    int n_lay, n_m, n_c;
    int *layer;              /* n_lay blocks */
    int *m, *C;
    double *srp, *rho, *act; /* n_lay × n_m (act: activation frequency r, NaN = unknown) */
    double *sch;             /* n_lay × n_c at m = sch_m */
    int sch_m;
    bool has_model;
    double *model_srp, *model_sch;   /* n_m, n_c */
    bool stored, cold;
    int n_prompts, n_used;   /* prompts of the run, and those computed from */
    int step;                /* every step-th prompt (1 = all) */
} VbCons;

/* ---------------------------------------------------------- drawing */

/* Format n with thin thousands separators ("1 234 567"). */
void vb_fmt_count(double n, char *buf, size_t size);

/* Draw a title centred over the whole figure (the frames of these views
 * are laid out in part of the width). */
void vb_draw_title(cairo_t *cr, const MsPlotStyle *style, const char *title, double width);

#endif
