/* ms-view.h — every moescope figure as a view: a model prepared from a
 * trace database (may take time; on a worker thread), a pure draw function
 * over that model (cheap: every resize, hover and zoom), and hit testing
 * from the same geometry the draw used.  `moescope plot` renders views into
 * PNG/SVG/PDF files; the GTK workbench paints exactly the same functions into
 * its widgets.  Needs cairo and Pango (ui/ms-plot.h); never GTK.
 *
 * Data comes through the middle layer's readers (jobs/, db/trace.h) and the
 * typed analysis results (analysis/); no SQL text in this folder's drawing
 * code.  A view whose analysis has not been run runs it when
 * params.run_missing (the default) and otherwise fails naming the command.
 *
 * Ownership: a model belongs to the caller of prepare and is released with
 * the class's free_model; draw and hit only read it.  Errors: negative MS_E*
 * and an MsError line naming the database and the problem. */
#ifndef MS_VIEW_H
#define MS_VIEW_H

#include <cairo.h>
#include <stdbool.h>
#include <stdint.h>

#include "ms-common.h"
#include "ms-plot.h"
#include "trace.h"

/* What a heat map / token strip colours its cells by. */
typedef enum {
    MS_VIEW_COLOR_DEFAULT = 0,  /* the view's own default */
    MS_VIEW_COLOR_EXPERT,       /* top-1 expert (categorical) */
    MS_VIEW_COLOR_ENTROPY,      /* routing entropy of the token (nats) */
    MS_VIEW_COLOR_WEIGHT,       /* top-1 gate weight */
    MS_VIEW_COLOR_HIDDEN,       /* residual max |h| after the block */
    MS_VIEW_COLOR_LIFT,         /* coactivation / affinity: log2 lift (diverging) */
    MS_VIEW_COLOR_JACCARD,      /* coactivation: Jaccard index */
    MS_VIEW_COLOR_COUNT
} MsViewColorBy;

/* "expert" "entropy" "weight" "hidden" "lift" "jaccard" -> enum, MS_EINVAL otherwise. */
int ms_view_color_from_name(const char *name);
const char *ms_view_color_name(MsViewColorBy c);
#define MS_VIEW_COLOR_BIT(c) (1u << (c))
struct MsViewClass;
/* 0 when view v takes colouring c (MS_VIEW_COLOR_DEFAULT always), else
 * MS_EINVAL with "coactivation colours by lift or jaccard (got entropy)" or
 * "load takes no --color-by": the command line checks before preparing. */
int ms_view_color_check(const struct MsViewClass *v, MsViewColorBy c, MsError *err);

/* What to prepare.  Fields a view does not use are ignored. */
typedef struct {
    int64_t run;                /* 0 = the newest run with prompts */
    int64_t baseline;           /* compare: 0 = the run's parent */
    int64_t sweep;              /* sweep: 0 = the newest */
    int prompt;                 /* prompt index (tokens, heatmap, compare), default 0 */
    int layer;                  /* block index, −1 = the view's default */
    int layer_lo, layer_hi;     /* inclusive block range, −1 = all */
    MsViewColorBy color_by;
    const char *order;          /* matrices: "id" (default), "load" or "cluster" */
    const char *classes;        /* npmi: class scheme for running it ("text", "label:language", ...) */
    int top;                    /* strongest paths / flows / classes shown, 0 = view default */
    bool run_missing;           /* run a missing analysis (default true) */
    MsProgressFn progress;      /* for long preparations (an analysis run) */
    void *progress_user;
    const MsCancel *cancel;
} MsViewParams;

void ms_view_params_init(MsViewParams *p);

/* Interaction the draw honours; the same state must be given to hit. */
typedef struct {
    double x0, x1, y0, y1;      /* visible window in the view's data units; x1 <= x0 (or y1 <= y0) = all */
    int sel_layer, sel_expert;  /* linked selection to highlight, −1 = none */
    int64_t hover_row, hover_col; /* highlighted cell, −1 = none */
    MsViewColorBy color_by;     /* overrides the prepared default when set */
    const char *title;          /* overrides the figure title */
    MsPlotStyle style;          /* fonts and text scale */
} MsViewState;

void ms_view_state_init(MsViewState *s);

typedef enum {
    MS_HIT_NONE = 0,
    MS_HIT_CELL,                /* a matrix / heat-map cell */
    MS_HIT_TOKEN,               /* a token of a prompt */
    MS_HIT_EXPERT,              /* an (layer, expert) item: bar, node, label */
    MS_HIT_LAYER,               /* a whole layer (row label, curve) */
    MS_HIT_ITEM,                /* a list entry (sweep candidate, flow link) */
} MsHitKind;

/* What is under a point: enough for a tooltip and for linked selection. */
typedef struct {
    MsHitKind kind;
    int layer, expert;          /* −1 where not meaningful */
    int prompt, pos;            /* token position, −1 where not meaningful */
    int64_t row, col, item;
    double value;               /* the cell's value (NaN if none) */
    char text[4096];            /* what the user reads: piece, position, experts and weights, value
                                 * (4096: every layer's top-k of a token, e.g. 16 layers x top-8) */
} MsViewHit;

/* Where a zoomable view draws its data window: what the workbench needs to
 * zoom about the pointer and pan by dragging (ui/workbench/wb-zoom.h). */
typedef struct {
    double x_lo, x_hi, y_lo, y_hi;  /* the whole window in data units; an axis with lo >= hi does not zoom */
    double min_dx, min_dy;          /* smallest span worth zooming to (e.g. 8 tokens, 1 layer); 0 = any */
    MsPlotRect plot;                /* where the visible window is drawn, figure units */
    bool x_flip, y_down;            /* as MsPlotGeom: x_lo drawn at the right; y_lo at the top */
} MsViewFrame;

/* A frame from a laid-out figure (plot rect and orientation of g). */
MsViewFrame ms_view_frame_from_geom(const MsPlotGeom *g, double x_lo, double x_hi, double y_lo, double y_hi);

typedef struct MsViewClass {
    const char *name;           /* as the command line takes it: "heatmap" */
    const char *title;          /* "Token × layer heat map" */
    const char *summary;        /* one line for `moescope plot --help` */
    unsigned colors;            /* the --color-by values it takes, bits MS_VIEW_COLOR_BIT(c); 0: none */
    int (*prepare)(MsTraceDb *db, const MsViewParams *p, void **model, MsError *err);
    void (*free_model)(void *model);
    int (*draw)(cairo_t *cr, double width, double height, const void *model, const MsViewState *s, MsError *err);
    /* false (out->kind MS_HIT_NONE) when nothing is under (x, y) */
    bool (*hit)(const void *model, const MsViewState *s, double width, double height, double x, double y,
                MsViewHit *out);
    void (*default_size)(const void *model, double *width, double *height);
    /* Optional (NULL: the view does not zoom or pan): the frame of a width ×
     * height figure drawn in state s; false when there is nothing to zoom. */
    bool (*frame)(const void *model, const MsViewState *s, double width, double height, MsViewFrame *out);
} MsViewClass;

/* The registry: every view, in the order menus show them. */
const MsViewClass *const *ms_view_all(void);      /* NULL-terminated */
const MsViewClass *ms_view_find(const char *name); /* NULL if unknown */

/* Render one view into a file (format by extension; temp file + rename). */
int ms_view_render_file(const MsViewClass *v, const void *model, const MsViewState *s, const char *path,
                        double width, double height, double scale, MsError *err);

#endif
