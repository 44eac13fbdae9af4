/* plot-internal.h — shared by the files of ui/ (not a public header). */
#ifndef MS_PLOT_INTERNAL_H
#define MS_PLOT_INTERNAL_H

#include "ms-plot.h"

/* Published / generated colour tables (plot-seqmaps.c, plot-palettes.c). */
extern const float ms_plot_viridis_data[256][3];
extern const float ms_plot_cividis_data[256][3];
extern const float ms_plot_balance_data[257][3];
extern const float ms_plot_category_data[256][3];

/* Table behind a map: entries and their count (NULL for an unknown map). */
const float (*ms_plot_cmap_table_(MsColormap map, int *n))[3];

/* Fill lut[0..n-1] with packed colours of t = i / (n - 1). */
void ms_plot_cmap_lut_(MsColormap map, uint32_t *lut, int n);

/* Escape token bytes for display (see ms_plot_token_escape).  Writes into a
 * malloc'ed string; when spans is non-NULL it also receives a malloc'ed list
 * of [start, end) byte ranges of the output that are escapes.  NULL on OOM. */
typedef struct {
    size_t start, end;
} MsPlotSpan_;
char *ms_plot_escape_(const char *bytes, size_t len, unsigned flags, MsPlotSpan_ **spans,
                      size_t *n_spans);

/* Format a tick value with `decimals` digits after the point (no "-0"). */
void ms_plot_format_tick_(double v, double step, char *buf, size_t size);

#endif
