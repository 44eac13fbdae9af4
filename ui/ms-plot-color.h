/* ms-plot-color.h — colour maps and the categorical expert palette of every
 * moescope figure.  Plain C, no cairo: pure functions of their arguments.
 *
 * Colours are sRGB with components in [0,1] (MsRgb).  Missing values (NaN)
 * come out as a neutral grey at least 10 CIEDE2000 units away from every
 * colour of the map (ms_plot_cmap_missing: light grey for the sequential maps
 * and the categorical palette, mid grey for the diverging map, whose centre is
 * a light neutral), so a missing cell never reads as a value.
 *
 * Maps (docs/figures.md "Drawing conventions" explains when to use which):
 *   MS_CMAP_VIRIDIS   sequential, dark blue-purple -> yellow, lightness rises
 *                     monotonically (published 256-entry table, CC0);
 *   MS_CMAP_CIVIDIS   sequential, blue -> yellow, readable with red-green
 *                     colour-vision deficiency (published table, CC0);
 *   MS_CMAP_BALANCE   diverging for signed values: blue (negative) - near-white
 *                     neutral (zero) - red (positive); straight lines in OKLab
 *                     with equal lightness at both ends.
 * A diverging map is always centred on zero: its range is made symmetric,
 * [-m, m] with m = max(|lo|, |hi|), so equal magnitudes get equal saturation. */
#ifndef MS_PLOT_COLOR_H
#define MS_PLOT_COLOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct MsRgb {
    double r, g, b;  /* sRGB, each in [0,1] */
} MsRgb;

typedef enum MsColormap {
    MS_CMAP_VIRIDIS = 0,
    MS_CMAP_CIVIDIS = 1,
    MS_CMAP_BALANCE = 2,
    MS_CMAP_COUNT
} MsColormap;

/* "viridis", "cividis", "balance"; NULL for an unknown id. */
const char *ms_plot_cmap_name(MsColormap map);
/* The map called `name` (case-insensitive), or MS_EINVAL (< 0). */
int ms_plot_cmap_from_name(const char *name);
bool ms_plot_cmap_is_diverging(MsColormap map);

/* Colour at position t in [0,1] (clamped; linear interpolation between table
 * entries).  NaN t gives ms_plot_cmap_missing(map), an unknown map light grey. */
MsRgb ms_plot_cmap_at(MsColormap map, double t);

/* A colour scale: a map plus the data range mapped onto it. */
typedef struct MsPlotColorScale {
    MsColormap map;
    double lo, hi;  /* sequential: lo -> t 0, hi -> t 1; diverging: see above */
} MsPlotColorScale;

/* Position of value v on the scale, in [0,1]; NaN for a NaN v (or a NaN or
 * infinite range).  lo == hi maps every finite value to 0.5 (a flat field is
 * shown in the middle colour, not as an extreme); lo > hi is treated as
 * [hi, lo] reversed.  Diverging: 0.5 + 0.5 v / max(|lo|,|hi|) (0.5 when both are 0). */
double ms_plot_scale_t(const MsPlotColorScale *s, double v);
/* ms_plot_cmap_at(s->map, ms_plot_scale_t(s, v)). */
MsRgb ms_plot_scale_color(const MsPlotColorScale *s, double v);
/* Shortcuts: explicit range, and symmetric range [-absmax, absmax]. */
MsRgb ms_plot_cmap_value(MsColormap map, double v, double lo, double hi);
MsRgb ms_plot_cmap_signed(MsColormap map, double v, double absmax);
/* Fit a scale to n values (NaN and infinities ignored): [min, max] for a
 * sequential map, [-m, m] for a diverging one.  No finite value: [0, 1]. */
MsPlotColorScale ms_plot_scale_fit(MsColormap map, const float *values, size_t n);

/* The grey of missing values: light grey (sequential maps, categories). */
MsRgb ms_plot_missing_color(void);
/* The grey of missing values on `map`. */
MsRgb ms_plot_cmap_missing(MsColormap map);

/* Stable colour of category (expert) `id`: the same id always gets the same
 * colour, whatever the number of experts.  Ids 0..255 come from a fixed table
 * built in greedy farthest-point order under CIEDE2000 (each colour as far as
 * possible from all earlier ones; tools/gen-palettes.py), legible on white
 * (OKLab L 0.40-0.82) and never grey (chroma 0.07-0.22, >= 12 from white and
 * from the missing grey).  Minimum pairwise CIEDE2000 distance: 18 among ids
 * 0..19, 11 among 0..63, 8 among 0..127 (tests/test-plot.c checks these).
 * Ids >= 256 step the hue by the golden angle (137.5 deg) in OKLCh with four
 * cycling lightness levels (stable, but no distance guarantee).  A negative id
 * gives the missing-value grey. */
MsRgb ms_plot_category_color(int64_t id);

/* Black or white, whichever reads better on background bg (WCAG contrast). */
MsRgb ms_plot_contrast_text(MsRgb bg);

/* Cairo ARGB32/RGB24 pixel 0xffRRGGBB of c (components clamped, rounded). */
uint32_t ms_plot_rgb_pack(MsRgb c);
/* Parse "#rrggbb" into *out; MS_EINVAL (< 0) when malformed. */
int ms_plot_rgb_parse(const char *hex, MsRgb *out);

/* ---- colour science (used by tests and by palette construction) ---- */
typedef struct MsLab {
    double L, a, b;
} MsLab;
/* CIELAB (D65 white) of an sRGB colour. */
MsLab ms_plot_rgb_to_lab(MsRgb c);
/* CIEDE2000 colour difference (kL = kC = kH = 1). */
double ms_plot_delta_e2000(MsLab x, MsLab y);
/* OKLab <-> sRGB; the result of oklab_to_rgb is clamped into gamut and
 * *in_gamut (if non-NULL) says whether clamping was needed. */
MsLab ms_plot_rgb_to_oklab(MsRgb c);
MsRgb ms_plot_oklab_to_rgb(MsLab lab, bool *in_gamut);

#endif
