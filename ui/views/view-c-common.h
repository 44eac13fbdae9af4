/* view-c-common.h — what the superexperts, npmi, compare and sweep views
 * share (views of the "c" set): picking the run, finding a stored analysis
 * result and reading its table with the columns a view needs (errors name
 * the table, the column and the command that rewrites it), and small
 * drawing pieces (a figure title over several panels, text that fits a
 * cell).  Internal to ui/views/. */
#ifndef MS_VIEW_C_COMMON_H
#define MS_VIEW_C_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ms-view.h"

/* ------------------------------------------------------------------ data */

/* Run `want` (0 = the newest run with committed prompts) into *ri (caller
 * clears it).  Errors name the database: no such run, no run with prompts. */
int vc_run_info(MsTraceDb *db, int64_t want, MsTraceRunInfo *ri, MsError *err);

/* The analysis command that (re)writes a module's tables for a run, as the
 * user would type it: "moescope analyze NAME --db DB --run R[ EXTRA]". */
void vc_analyze_cmd(char *buf, size_t size, MsTraceDb *db, const char *name, int64_t run, const char *extra);

/* Is `table` registered for run as a result of analysis `name`?  1 = yes
 * (*params, if non-NULL, gets a malloc'd copy of its params JSON or NULL),
 * 0 = no, < 0 = MS_E*. */
int vc_find_stored(MsTraceDb *db, int64_t run, const char *name, const char *table, char **params, MsError *err);

/* A stored result table with the columns a view needs: idx[i] receives the
 * position of column need[i].  A registered table that is missing, or one
 * without a needed column (written by an older moescope), is an error that
 * names the table (and the column) and says to run `cmd` again. */
MsTraceCursor *vc_table_open(MsTraceDb *db, const char *table, int64_t run, const char *const *need, int n_need,
                             int *idx, const char *cmd, MsError *err);

/* Values of a stored row: NULL (or a type that does not fit) gives NaN / dflt. */
double vc_val_real(const MsTraceValue *v);
int64_t vc_val_int(const MsTraceValue *v, int64_t dflt);

/* "\xE2\x88\x92" for negatives: a number as figures print it (U+2212 minus). */
void vc_fmt_num(char *buf, size_t size, double v, int decimals);

/* --------------------------------------------------------------- drawing */

/* The figure title centred over the full width (on two lines when one is
 * too narrow): returns the height of the band it takes (0 for no title);
 * draws it when cr is non-NULL. */
double vc_title_band(cairo_t *cr, const MsPlotStyle *style, const char *title, double width);

/* A key: swatches and labels left to right from (x, y) (top), in TICK-size
 * text, wrapping to a new line at x + max_w; items with a negative swatch
 * kind draw no swatch.  kind 0 = filled square, 1 = ring, 2 = a short bar.
 * Returns the height of the lines; draws when cr is non-NULL. */
typedef struct {
    const char *label;
    MsRgb color;
    int kind;
} VcKey;
double vc_key_line(cairo_t *cr, MsPlotText *t, const VcKey *keys, int n, double x, double y, double max_w);

/* Text in a cell: drawn centred in r with the colour that reads on bg when
 * it fits (with a small margin); returns whether it was drawn. */
bool vc_cell_text(cairo_t *cr, MsPlotText *t, MsPlotRole role, const char *text, const MsPlotRect *r, MsRgb bg);

/* A rectangle outline of line width lw drawn inside r (so neighbours keep
 * their colour). */
void vc_outline(cairo_t *cr, const MsPlotRect *r, double lw, MsRgb c);

/* Clamp [lo, hi) to a zoom window [w0, w1) when the window is set (w1 > w0)
 * and overlaps; keeps at least `min_span`. */
void vc_window(double *lo, double *hi, double w0, double w1, double min_span);

/* Shared visual constants. */
#define VC_HIGHLIGHT ((MsRgb){0.85, 0.10, 0.10})   /* flagged items: super experts, top picks */
#define VC_INK ((MsRgb){0.13, 0.13, 0.13})
#define VC_MUTED ((MsRgb){0.42, 0.42, 0.42})

#endif
