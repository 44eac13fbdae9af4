/* view-matrix.h — the E×E matrix figure behind the views coactivation and
 * affinity (not a public header): a prepared model, its row/column order,
 * the strongest pairs listed beside the heat map, the pure draw and the
 * hit test.  view-coactivation.c and view-affinity.c fill the model. */
#ifndef MS_VIEW_MATRIX_H
#define MS_VIEW_MATRIX_H

#include "view-b.h"

typedef enum {
    VB_MAT_COACT = 0,   /* one layer, symmetric, diagonal undefined */
    VB_MAT_AFF,         /* layer pair from -> to */
} VbMatKind;

typedef enum {
    VB_METRIC_LOGLIFT = 0,  /* log2 lift, diverging, 0 = independent */
    VB_METRIC_JACCARD,      /* sequential [0, max] */
    VB_METRIC_Q,            /* affinity: row-normalised top-k counts, sequential */
} VbMetric;

typedef struct {
    int i, j;           /* expert ids (row, column) */
    double value;       /* the metric the list ranks by (lift, Jaccard, or C) */
    double count;       /* N_ij or C */
    double q;           /* affinity: Q; coactivation: the metric */
} VbPair;

typedef struct VbMatrix {
    VbMatKind kind;
    int E;
    int from, to;               /* blocks (coactivation: from == to) */
    int distance;               /* affinity: d in MoE layers */
    int64_t run, n_tokens;      /* tokens behind the matrix (−1 = unknown) */
    bool stored;                /* read from stored tables (else computed from the trace) */
    char role[32];              /* token scope of the analysis ("all", "prompt", ...) */
    /* by expert ids, E×E row-major */
    double *count;              /* N_ij (diagonal N_i) / C */
    double *lift, *jaccard;     /* coactivation; affinity: lift only (Q / q_j) */
    double *Q, *P;              /* affinity */
    double *load_r;             /* E: tokens selecting the row expert (N_i, n_i); NaN = unknown */
    double *share_c;            /* E: affinity: q_j, share of selections of column expert at `to` */
    /* order and display (per metric: VB_METRIC_*; only the kind's metrics are filled) */
    VbMetric metric;            /* prepared: the order and the default colouring follow it */
    char order_name[16];
    int *order, *pos;           /* position -> expert, expert -> position */
    float *cells[3];            /* E×E display values by position (NaN = n/a) */
    bool has_missing[3];
    MsPlotColorScale scale[3];
    int n_top[3];
    VbPair *top[3];
} VbMatrix;

/* Allocate the arrays of an E-expert matrix (kind and metric set). */
VbMatrix *vb_matrix_new(VbMatKind kind, VbMetric metric, int E, MsError *err);
void vb_matrix_free(void *m);
/* After the matrices are filled: display values, colour scale, the
 * order named `order` (NULL = "id"; "load", "cluster"; anything else
 * MS_EINVAL) and the top `top` pairs (0 = 10). */
int vb_matrix_finish(VbMatrix *m, const char *order, int top, MsError *err);

int vb_matrix_draw(cairo_t *cr, double width, double height, const void *model, const MsViewState *s,
                   MsError *err);
bool vb_matrix_hit(const void *model, const MsViewState *s, double width, double height, double x, double y,
                   MsViewHit *out);
void vb_matrix_default_size(const void *model, double *width, double *height);

/* The metric a --color-by value asks for (MS_VIEW_COLOR_DEFAULT: the
 * view's default), or MS_EINVAL naming what the view accepts. */
int vb_matrix_metric(VbMatKind kind, MsViewColorBy c, VbMetric *out, MsError *err);

#endif
