/* ms-plot-text.h — text of figures through Pango: labels, and token pieces
 * of any script with control characters and invalid UTF-8 shown escaped.
 *
 * Units: all sizes and positions are cairo user units (one unit = one pixel of
 * a PNG at scale 1, one point of a PDF/SVG).  Layout uses unhinted metrics, so
 * a text measures the same whatever surface it is drawn on and geometry
 * computed once serves drawing and hit testing alike.
 *
 * Fonts: the families in MS_PLOT_FONT_SANS / _MONO, then fontconfig's fallback
 * for any character they lack.  Figures need fonts-dejavu-core, and for token
 * text in every script fonts-noto-core, fonts-noto-cjk and fonts-noto-color-emoji
 * (tools/install-deps.sh installs them); MsPlotTextSize.missing_glyphs tells
 * when a character had no font at all (drawn as a hex box). */
#ifndef MS_PLOT_TEXT_H
#define MS_PLOT_TEXT_H

#include <cairo.h>
#include <stdbool.h>
#include <stddef.h>

#include "ms-plot-color.h"

#define MS_PLOT_FONT_SANS "DejaVu Sans, Noto Sans"
#define MS_PLOT_FONT_MONO "DejaVu Sans Mono, Noto Sans Mono"

/* Text sizes of a figure.  Zero fields take the defaults; the style is read
 * only during the call it is passed to. */
typedef struct MsPlotStyle {
    double font_size;         /* base (axis-title) size in user units; default 12 */
    double text_scale;        /* multiplies every text size, tick and pad (print: 1.5); default 1 */
    const char *font_family;  /* NULL: MS_PLOT_FONT_SANS */
    const char *mono_family;  /* NULL: MS_PLOT_FONT_MONO (token pieces) */
} MsPlotStyle;

/* What a text is; sets its size relative to the base and its weight. */
typedef enum MsPlotRole {
    MS_PLOT_ROLE_TITLE,  /* 1.25 x, bold */
    MS_PLOT_ROLE_LABEL,  /* 1 x: axis and colour-bar titles */
    MS_PLOT_ROLE_TICK,   /* 0.85 x: tick labels, legend entries */
    MS_PLOT_ROLE_TOKEN,  /* 1 x, monospace family: token pieces */
    MS_PLOT_ROLE_NOTE,   /* 0.8 x: annotations */
    MS_PLOT_ROLE_COUNT
} MsPlotRole;

/* Size of a laid-out text (logical extents: advance width, line height). */
typedef struct MsPlotTextSize {
    double width, height;  /* logical box */
    double baseline;       /* from the top of the box */
    int missing_glyphs;    /* characters no installed font covers (shown as hex boxes) */
} MsPlotTextSize;

/* Measuring/drawing context: a Pango context plus one reusable layout.
 * Create one per drawing pass (cheap) and use it from one thread only.
 * NULL style = defaults.  Returns NULL on OOM.  ms_plot_text_free(NULL) is a no-op. */
typedef struct MsPlotText MsPlotText;
MsPlotText *ms_plot_text_new(const MsPlotStyle *style);
void ms_plot_text_free(MsPlotText *t);
/* The size in user units of `role` under this context's style. */
double ms_plot_text_role_size(const MsPlotText *t, MsPlotRole role);
/* The style's padding unit: half the base font size times text_scale. */
double ms_plot_text_pad(const MsPlotText *t);

/* Labels: UTF-8 text; invalid bytes and control characters other than '\n'
 * are shown escaped like token pieces.  max_width > 0 ellipsizes at the end
 * to fit that width (the measured size then respects it). */
void ms_plot_text_measure(MsPlotText *t, MsPlotRole role, const char *text, double max_width,
                          MsPlotTextSize *out);
/* Draw `text` with its anchor point at (x, y): ax, ay in [0,1] pick the point of
 * the logical box (0,0 = top left, 0.5,0.5 = centre, 1,1 = bottom right);
 * ay < 0 anchors at the baseline.  The box is rotated by `angle` radians
 * (clockwise in user space, e.g. -pi/2 for a y-axis title) around the anchor.
 * Colour: the current cairo source. */
void ms_plot_text_draw(MsPlotText *t, cairo_t *cr, MsPlotRole role, const char *text, double max_width,
                       double x, double y, double ax, double ay, double angle);

/* A figure title centred across `width` (less the padding each side), its
 * top at y: on one line when it fits, else on two broken at the space
 * nearest the middle (after ':' or ',' when one is near) rather than losing
 * its end to an ellipsis; each line still ellipsizes if it must.  cr NULL
 * only measures.  Colour: the current cairo source.  Returns its height. */
double ms_plot_text_title(MsPlotText *t, cairo_t *cr, const char *title, double width, double y);

/* A message centred on (x, y), broken at spaces (and at '\n') into lines of
 * at most max_width, each centred: for text that must be read whole, such as
 * a hint that names a command.  A word wider than max_width gets a line of
 * its own and ellipsizes.  cr NULL only measures.  Colour: the current cairo
 * source.  Returns the height of the lines (0 for empty text or on OOM). */
double ms_plot_text_wrapped(MsPlotText *t, cairo_t *cr, MsPlotRole role, const char *text, double max_width,
                            double x, double y);

/* ---- token pieces ----
 * ms_plot_token_escape() turns raw token bytes into valid, visible UTF-8:
 *   "\\" for a backslash (so an escape is never ambiguous with literal text);
 *   "\n", "\t", "\r" and "\xNN" for other C0 controls and DEL (e.g. "\x07");
 *   "\xNN" for every byte that is not part of a valid UTF-8 sequence (overlong
 *     forms, surrogates, code points above U+10FFFF, truncated sequences);
 *   "\uXXXX" for C1 controls and invisible format characters that would hide
 *     or reorder text (U+00AD, U+200B, U+200E/F, U+2028/9, U+202A-E, U+2060,
 *     U+2066-9, U+FEFF, U+FFF9-B, U+FFFE/F);
 *   with MS_PLOT_ESC_SPACE, U+0020 as U+2423 OPEN BOX.
 * Everything else passes through unchanged: CJK, Arabic, emoji sequences with
 * joiners and variation selectors, combining marks (a mark that starts a piece
 * shows on a dotted circle).  No byte is ever dropped. */
enum {
    MS_PLOT_ESC_SPACE = 1u << 0,  /* show spaces as U+2423 */
};
/* Escaped copy of bytes[0..len) (malloc'ed, NUL-terminated; caller frees), NULL on OOM. */
char *ms_plot_token_escape(const char *bytes, size_t len, unsigned flags);

/* Measure / draw a token piece (escaped as above; escapes drawn in a muted
 * colour so they read as notation).  (x, y) is the top left of its logical box;
 * colour: `fg`.  max_width > 0 ellipsizes. */
void ms_plot_token_measure(MsPlotText *t, const char *bytes, size_t len, unsigned flags, double max_width,
                           MsPlotTextSize *out);
void ms_plot_token_draw(MsPlotText *t, cairo_t *cr, const char *bytes, size_t len, unsigned flags,
                        double max_width, double x, double y, MsRgb fg);

/* Flow token pieces into lines of at most `width` user units, like words of a
 * paragraph: piece i gets box rects[i] (its escaped text plus `pad` on each
 * side); a piece wider than the line gets a line of its own, its box capped at
 * `width` (draw it with max_width = box width - 2 pad).  Returns the number of
 * lines (>= 1 for n > 0, 0 for n == 0).  rects must hold n entries. */
typedef struct MsPlotPiece {
    const char *bytes;
    size_t len;
} MsPlotPiece;
typedef struct MsPlotRect MsPlotRect;
int ms_plot_token_flow(MsPlotText *t, const MsPlotPiece *pieces, size_t n, unsigned flags, double width,
                       double pad, MsPlotRect *rects);

/* At program exit (optional): release the caches Pango, fontconfig and cairo
 * keep for the process, so leak checkers see a clean exit.  Call it once,
 * from the main thread, after every MsPlotText is freed and when no thread
 * will draw again. */
void ms_plot_release_caches(void);

/* ---- text log ----
 * Every text drawn through this API onto a cairo_t that has a log attached is
 * appended to it with its device-space bounding box.  The SVG writer uses it
 * to add the figure's words as a transparent text layer (searchable,
 * readable by screen readers); tests use it to check that nothing is clipped
 * or overlaps. */
typedef struct MsPlotTextItem {
    char *text;                /* escaped, as drawn (owned by the log) */
    double x0, y0, x1, y1;     /* device-space bounding box of the logical box */
    double bx, by;             /* device-space start of the baseline */
    double width;              /* logical advance width in device units */
    double size;               /* font size in device units */
    double angle;              /* rotation in radians (device space) */
    MsPlotRole role;
} MsPlotTextItem;
typedef struct MsPlotTextLog {
    MsPlotTextItem *items;
    size_t n, cap;
} MsPlotTextLog;
/* Attach (log non-NULL) or detach (NULL) a log to cr; the log must outlive
 * the attachment.  Returns 0 or MS_ENOMEM. */
int ms_plot_text_log_attach(cairo_t *cr, MsPlotTextLog *log);
/* Free the items (the struct itself is the caller's); NULL is a no-op. */
void ms_plot_text_log_clear(MsPlotTextLog *log);

#endif
