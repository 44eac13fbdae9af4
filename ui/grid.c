/* grid.c — pure geometry: grid cells <-> points, zoom/pan of ranges, hit
 * testing of rectangle lists.  No cairo calls. */
#include "plot-internal.h"

#include <math.h>

MsPlotGridMap ms_plot_grid_map(const MsPlotGeom *g, int64_t rows, int64_t cols)
{
    MsPlotGridMap m = {
        .rect = g->plot, .rows = rows, .cols = cols,
        .row0 = g->y_lo, .row1 = g->y_hi, .col0 = g->x_lo, .col1 = g->x_hi,
        .flip_rows = !g->y_down, .flip_cols = g->x_flip,
    };
    return m;
}

/* Continuous cell coordinate -> user-space position and back. */
static double col_pos(const MsPlotGridMap *m, double c)
{
    double u = (c - m->col0) / (m->col1 - m->col0);
    return m->rect.x + (m->flip_cols ? 1 - u : u) * m->rect.w;
}

static double row_pos(const MsPlotGridMap *m, double r)
{
    double u = (r - m->row0) / (m->row1 - m->row0);
    return m->rect.y + (m->flip_rows ? 1 - u : u) * m->rect.h;
}

static bool valid(const MsPlotGridMap *m)
{
    return m->col1 > m->col0 && m->row1 > m->row0 && m->rect.w > 0 && m->rect.h > 0 &&
           isfinite(m->col0) && isfinite(m->col1) && isfinite(m->row0) && isfinite(m->row1);
}

bool ms_plot_grid_hit(const MsPlotGridMap *m, double x, double y, int64_t *row, int64_t *col)
{
    if (!valid(m) || !ms_plot_rect_contains(&m->rect, x, y)) return false;
    double u = (x - m->rect.x) / m->rect.w, v = (y - m->rect.y) / m->rect.h;
    /* half-open cells: a flipped axis runs from col1 at the left edge down */
    double c = m->flip_cols ? ceil(m->col1 - u * (m->col1 - m->col0)) - 1 : floor(m->col0 + u * (m->col1 - m->col0));
    double r = m->flip_rows ? ceil(m->row1 - v * (m->row1 - m->row0)) - 1 : floor(m->row0 + v * (m->row1 - m->row0));
    if (c < 0 || c >= (double)m->cols || r < 0 || r >= (double)m->rows) return false;
    *row = (int64_t)r;
    *col = (int64_t)c;
    return true;
}

bool ms_plot_grid_cell_rect(const MsPlotGridMap *m, int64_t row, int64_t col, MsPlotRect *out)
{
    if (!valid(m)) {
        *out = (MsPlotRect){0, 0, 0, 0};
        return false;
    }
    double x0 = col_pos(m, (double)col), x1 = col_pos(m, (double)col + 1);
    double y0 = row_pos(m, (double)row), y1 = row_pos(m, (double)row + 1);
    out->x = fmin(x0, x1);
    out->y = fmin(y0, y1);
    out->w = fabs(x1 - x0);
    out->h = fabs(y1 - y0);
    const MsPlotRect *r = &m->rect;
    return row >= 0 && row < m->rows && col >= 0 && col < m->cols && out->x < r->x + r->w &&
           out->x + out->w > r->x && out->y < r->y + r->h && out->y + out->h > r->y;
}

static void clamp_range(double *lo, double *hi, double limit_lo, double limit_hi)
{
    double span = *hi - *lo;
    if (span >= limit_hi - limit_lo) {
        *lo = limit_lo;
        *hi = limit_hi;
        return;
    }
    if (*lo < limit_lo) {
        *lo = limit_lo;
        *hi = limit_lo + span;
    }
    if (*hi > limit_hi) {
        *hi = limit_hi;
        *lo = limit_hi - span;
    }
}

void ms_plot_range_zoom(double *lo, double *hi, double anchor, double factor, double min_span,
                        double limit_lo, double limit_hi)
{
    double span = *hi - *lo;
    if (!(span > 0) || !(factor > 0) || !isfinite(factor) || !(limit_hi > limit_lo)) return;
    double f = (anchor - *lo) / span;
    if (f < 0) f = 0;
    if (f > 1) f = 1;
    double ns = span * factor;
    if (ns < min_span) ns = min_span;
    if (ns > limit_hi - limit_lo) ns = limit_hi - limit_lo;
    *lo = anchor - f * ns;
    *hi = *lo + ns;
    clamp_range(lo, hi, limit_lo, limit_hi);
}

void ms_plot_range_pan(double *lo, double *hi, double delta, double limit_lo, double limit_hi)
{
    if (!isfinite(delta) || !(limit_hi > limit_lo)) return;
    *lo += delta;
    *hi += delta;
    clamp_range(lo, hi, limit_lo, limit_hi);
}

int64_t ms_plot_rect_hit(const MsPlotRect *rects, size_t n, double x, double y)
{
    for (size_t i = n; i-- > 0;)
        if (ms_plot_rect_contains(&rects[i], x, y)) return (int64_t)i;
    return -1;
}
