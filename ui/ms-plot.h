/* ms-plot.h — the figure foundation every moescope view is drawn with, on a
 * file (PNG, SVG, PDF) from the command line and in GTK widgets alike.
 * Needs cairo and Pango; no GTK, no SQLite, no jansson.
 *
 * A view is written as three pure pieces:
 *   1. prepare a data model (plain arrays, no cairo);
 *   2. draw(cairo_t *cr, double width, double height, model, state):
 *        MsPlotFrame f = {...};  MsPlotGeom g;
 *        ms_plot_layout(&f, width, height, &g, err);   // margins from text extents
 *        ms_plot_draw_back(cr, &f, &g);                 // background and grid lines
 *        ... data into g.plot (e.g. ms_plot_heatmap_draw with ms_plot_grid_map(&g)) ...
 *        ms_plot_draw_axes(cr, &f, &g);                 // axes, ticks, title, colour bar, legend
 *   3. hit test: ms_plot_layout() again (or a kept MsPlotGeom) and
 *      ms_plot_grid_hit() / ms_plot_rect_hit() / ms_plot_px_to_x().
 * ms_plot_render_file() runs such a draw callback into a file.
 *
 * Errors: negative MS_E* codes plus an MsError message (engine/ms-common.h).
 * Ownership: every struct passed in is borrowed for the call only, unless its
 * comment says otherwise; nothing here keeps global mutable state. */
#ifndef MS_PLOT_H
#define MS_PLOT_H

#include <cairo.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ms-common.h"
#include "ms-plot-color.h"
#include "ms-plot-text.h"

typedef struct MsPlotRect {
    double x, y, w, h;  /* user units; x, y = top left */
} MsPlotRect;

static inline bool ms_plot_rect_contains(const MsPlotRect *r, double x, double y)
{
    return x >= r->x && x < r->x + r->w && y >= r->y && y < r->y + r->h;
}

/* ---------------------------------------------------------------- frame */

typedef enum MsPlotAxisKind {
    MS_PLOT_AXIS_NONE = 0,  /* no ticks or labels (the title is still drawn) */
    MS_PLOT_AXIS_LINEAR,    /* continuous values, nice tick steps (1, 2, 2.5, 5 x 10^k) */
    MS_PLOT_AXIS_CATEGORY,  /* items 0..count-1, item i occupies [i, i+1) */
} MsPlotAxisKind;

/* Label of category item `index`: return a NUL-terminated UTF-8 string, either
 * written into buf[0..size) or a pointer that stays valid until the next call. */
typedef const char *(*MsPlotLabelFn)(void *user, int64_t index, char *buf, size_t size);

typedef struct MsPlotAxis {
    MsPlotAxisKind kind;
    const char *title;     /* e.g. "Layer"; NULL = none */
    const char *unit;      /* shown as "title (unit)"; NULL = none */
    double lo, hi;         /* visible range: values (LINEAR) or item positions (CATEGORY,
                            * e.g. 0 .. count; fractional while panning).  lo < hi. */
    int64_t count;         /* CATEGORY: number of items */
    MsPlotLabelFn label;   /* CATEGORY: item labels; NULL = the item index */
    void *label_user;
    bool flip;             /* x: lo at the right.  y: LINEAR lo at the top (default bottom),
                            * CATEGORY item lo at the bottom (default top, like table rows) */
    bool grid;             /* light grid lines at the ticks */
    double label_share;    /* CATEGORY: a tick label may take this share of the frame's width
                            * before it is shortened with "…"; 0 = 22 %, at most 14 text sizes */
} MsPlotAxis;

typedef struct MsPlotColorbar {
    MsPlotColorScale scale;
    const char *title;     /* e.g. "load fraction"; NULL = none */
    const char *unit;
    bool show_missing;     /* add a grey "n/a" swatch: the view has missing values */
} MsPlotColorbar;

typedef struct MsPlotLegendItem {
    const char *label;
    MsRgb color;
} MsPlotLegendItem;

typedef struct MsPlotLegend {
    const char *title;                /* NULL = none */
    const MsPlotLegendItem *items;    /* borrowed */
    size_t n;
} MsPlotLegend;

typedef struct MsPlotFrame {
    const char *title;                /* NULL = none */
    MsPlotAxis x, y;
    const MsPlotColorbar *colorbar;   /* NULL = none */
    const MsPlotLegend *legend;       /* NULL = none */
    const MsPlotStyle *style;         /* NULL = defaults */
} MsPlotFrame;

#define MS_PLOT_MAX_TICKS 128
#define MS_PLOT_TICK_LABEL_MAX 64

typedef struct MsPlotTick {
    double pos;                          /* user-space x (x axis) or y (y axis, colour bar) */
    double value;                        /* value, or item index for a category axis */
    char label[MS_PLOT_TICK_LABEL_MAX];  /* as drawn (shortened with "..." if longer) */
} MsPlotTick;

/* Geometry of a laid-out figure: everything drawing and hit testing need. */
typedef struct MsPlotGeom {
    double width, height;         /* the figure */
    MsPlotRect plot;              /* data area (edges on whole user units) */
    MsPlotRect colorbar;          /* the colour bar's gradient (w = 0 if none) */
    MsPlotRect legend;            /* the legend block (w = 0 if none) */
    double x_lo, x_hi, y_lo, y_hi;
    bool x_flip, y_down;          /* y_down: y_lo at the top */
    int n_xticks, n_yticks, n_cticks;
    MsPlotTick xticks[MS_PLOT_MAX_TICKS], yticks[MS_PLOT_MAX_TICKS], cticks[MS_PLOT_MAX_TICKS];
    size_t legend_shown;          /* entries drawn; the rest are summarised as "+N more" */
    int legend_cols;
    double legend_row_h, legend_col_w;
    double xlabel_w, ylabel_w;    /* widest tick label (shortened category labels included) */
} MsPlotGeom;

/* Lay out frame f in a width x height figure.  Margins come from the measured
 * text (title, tick labels, axis titles, colour bar, legend), so nothing is
 * clipped from about 400x300 to 4000x3000.  Category tick labels thin out to
 * every 2nd, 5th, 10th ... item when crowded.  Errors: MS_EINVAL for a
 * non-finite or empty axis range, a size <= 0 or a figure too small to hold
 * a plot area after the margins. */
int ms_plot_layout(const MsPlotFrame *f, double width, double height, MsPlotGeom *g, MsError *err);
/* Paint the figure background (white) and grid lines. */
void ms_plot_draw_back(cairo_t *cr, const MsPlotFrame *f, const MsPlotGeom *g);
/* Paint axes, ticks, tick labels, axis titles, title, colour bar and legend. */
void ms_plot_draw_axes(cairo_t *cr, const MsPlotFrame *f, const MsPlotGeom *g);

/* Value <-> user-space position along the laid-out axes (category axes:
 * position of item boundary v; item i's centre is v = i + 0.5). */
double ms_plot_x_to_px(const MsPlotGeom *g, double v);
double ms_plot_y_to_px(const MsPlotGeom *g, double v);
double ms_plot_px_to_x(const MsPlotGeom *g, double px);
double ms_plot_px_to_y(const MsPlotGeom *g, double py);

/* Choose nice linear ticks for [lo, hi] with at most max_ticks ticks: steps of
 * 1, 2, 2.5 or 5 x 10^k, values on multiples of the step.  Returns the count
 * (>= 2 unless the range is degenerate) and writes the step to *step. */
int ms_plot_nice_ticks(double lo, double hi, int max_ticks, double *values, double *step);

/* ------------------------------------------------------- grids, hit tests */

/* A rows x cols grid shown in rect, with a visible window [row0, row1) x
 * [col0, col1) in cell units (fractional while panning).  Row row0 is at the
 * top (flip_rows: at the bottom), column col0 at the left (flip_cols: right). */
typedef struct MsPlotGridMap {
    MsPlotRect rect;
    int64_t rows, cols;
    double row0, row1, col0, col1;
    bool flip_rows, flip_cols;
} MsPlotGridMap;

/* The grid map of a laid-out frame whose x axis holds the columns and y axis
 * the rows (both CATEGORY axes, or LINEAR over cell positions). */
MsPlotGridMap ms_plot_grid_map(const MsPlotGeom *g, int64_t rows, int64_t cols);
/* Cell under point (x, y): true and *row, *col set when the point is inside
 * rect on a cell of the grid; false otherwise. */
bool ms_plot_grid_hit(const MsPlotGridMap *m, double x, double y, int64_t *row, int64_t *col);
/* User-space rectangle of cell (row, col), unclipped; true when it overlaps rect. */
bool ms_plot_grid_cell_rect(const MsPlotGridMap *m, int64_t row, int64_t col, MsPlotRect *out);

/* Zoom the range [*lo, *hi] by `factor` (< 1 zooms in) about `anchor`, which
 * keeps its place; then keep the span >= min_span and inside [limit_lo, limit_hi]. */
void ms_plot_range_zoom(double *lo, double *hi, double anchor, double factor, double min_span,
                        double limit_lo, double limit_hi);
/* Shift [*lo, *hi] by delta, stopping at the limits (the span is kept). */
void ms_plot_range_pan(double *lo, double *hi, double delta, double limit_lo, double limit_hi);

/* Index of the rectangle containing (x, y), the last one when several do
 * (drawn on top); -1 when none does. */
int64_t ms_plot_rect_hit(const MsPlotRect *rects, size_t n, double x, double y);

/* ------------------------------------------------------------ heat maps */

typedef enum MsPlotAgg {
    MS_PLOT_AGG_MEAN = 0,  /* values: mean of the cells a pixel covers (NaN ignored) */
    MS_PLOT_AGG_PEAK,      /* values: the value of largest magnitude, sign kept */
} MsPlotAgg;

/* One of values / categories, row-major rows x cols (stride = cols). */
typedef struct MsPlotHeatmap {
    int64_t rows, cols;
    const float *values;         /* NaN = missing; coloured with scale */
    MsPlotColorScale scale;
    MsPlotAgg agg;
    const int32_t *categories;   /* used when values is NULL: category ids, < 0 missing;
                                  * coloured with palette[id] if id < n_palette, else
                                  * ms_plot_category_color(id) */
    const MsRgb *palette;
    size_t n_palette;
} MsPlotHeatmap;

/* Paint the visible window of h into m->rect as a raster: one image pixel per
 * cell scaled with the nearest filter, so cell edges are sharp.  When the
 * window has more cells than device pixels along an axis, consecutive cells
 * are aggregated into pixel buckets (mean or peak for values, the most
 * frequent id for categories, ties to the smaller id): every cell contributes,
 * none is skipped.  Errors: MS_EINVAL (bad sizes, no data), MS_ENOMEM. */
int ms_plot_heatmap_draw(cairo_t *cr, const MsPlotGridMap *m, const MsPlotHeatmap *h, MsError *err);

/* --------------------------------------------------------------- output */

typedef enum MsPlotFormat {
    MS_PLOT_PNG = 0,
    MS_PLOT_SVG,
    MS_PLOT_PDF,
} MsPlotFormat;

#define MS_PLOT_MAX_SIDE 20000.0     /* output pixels (PNG) or points (SVG/PDF) per side */
#define MS_PLOT_MAX_PIXELS 100e6     /* PNG pixels in all (400 MB of image) */

/* Draw callback: paint a width x height figure (user units) onto cr; return 0
 * or a negative MS_E* code (with err set) to abandon the output. */
typedef int (*MsPlotDrawFn)(void *user, cairo_t *cr, double width, double height, MsError *err);

/* Format from the file extension (.png, .svg, .pdf; any case) or MS_EINVAL. */
int ms_plot_format_from_path(const char *path, MsError *err);
/* Check a size: finite, > 0, and width*scale, height*scale within
 * MS_PLOT_MAX_SIDE (and MS_PLOT_MAX_PIXELS for PNG).  0 or MS_EINVAL. */
int ms_plot_check_size(MsPlotFormat fmt, double width, double height, double scale, MsError *err);
/* Render draw into `path`, format by extension: a width*scale x height*scale
 * output (pixels or points) on which the callback draws in width x height user
 * units.  The file is written to a temporary file in the same directory and
 * renamed over `path` only on success, so an error never leaves a partial
 * file.  SVG files carry the drawn text as a transparent text layer too. */
int ms_plot_render_file(const char *path, double width, double height, double scale, MsPlotDrawFn draw,
                        void *user, MsError *err);
/* Render into a new ARGB32 image surface (caller destroys), NULL on error. */
cairo_surface_t *ms_plot_render_image(double width, double height, double scale, MsPlotDrawFn draw,
                                      void *user, MsError *err);

#endif
