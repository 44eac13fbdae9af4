/* wb-zoom.c — zoom and pan math (wb-zoom.h). */
#include <math.h>

#include "wb-zoom.h"

static bool can_x(const MsViewFrame *f) { return f->x_hi > f->x_lo; }
static bool can_y(const MsViewFrame *f) { return f->y_hi > f->y_lo; }

void wb_zoom_window(const MsViewState *s, const MsViewFrame *f, double *x0, double *x1, double *y0, double *y1)
{
    if (s->x1 > s->x0) *x0 = s->x0, *x1 = s->x1;
    else *x0 = f->x_lo, *x1 = f->x_hi;
    if (s->y1 > s->y0) *y0 = s->y0, *y1 = s->y1;
    else *y0 = f->y_lo, *y1 = f->y_hi;
}

/* Store a window, as "all" where it covers the extent. */
static void store(MsViewState *s, const MsViewFrame *f, double x0, double x1, double y0, double y1)
{
    double ex = (f->x_hi - f->x_lo) * 1e-9, ey = (f->y_hi - f->y_lo) * 1e-9;
    if (!can_x(f) || (x0 <= f->x_lo + ex && x1 >= f->x_hi - ex)) s->x0 = s->x1 = 0;
    else s->x0 = x0, s->x1 = x1;
    if (!can_y(f) || (y0 <= f->y_lo + ey && y1 >= f->y_hi - ey)) s->y0 = s->y1 = 0;
    else s->y0 = y0, s->y1 = y1;
}

bool wb_zoom_data_at(const MsViewState *s, const MsViewFrame *f, double px, double py, double *x, double *y)
{
    double x0, x1, y0, y1;
    wb_zoom_window(s, f, &x0, &x1, &y0, &y1);
    if (!(f->plot.w > 0 && f->plot.h > 0)) return false;
    double tx = (px - f->plot.x) / f->plot.w, ty = (py - f->plot.y) / f->plot.h;
    bool inside = tx >= 0 && tx <= 1 && ty >= 0 && ty <= 1;
    if (f->x_flip) tx = 1 - tx;
    if (!f->y_down) ty = 1 - ty;
    *x = x0 + tx * (x1 - x0);
    *y = y0 + ty * (y1 - y0);
    return inside;
}

static double min_span(double want, double extent) { return want > 0 ? want : extent * 1e-6; }

bool wb_zoom_at(MsViewState *s, const MsViewFrame *f, double px, double py, double factor, int axes)
{
    double x0, x1, y0, y1, ax, ay;
    if (!(factor > 0) || !isfinite(factor)) return false;
    wb_zoom_window(s, f, &x0, &x1, &y0, &y1);
    wb_zoom_data_at(s, f, px, py, &ax, &ay);
    double ox0 = x0, ox1 = x1, oy0 = y0, oy1 = y1;
    if ((axes & WB_AXIS_X) && can_x(f))
        ms_plot_range_zoom(&x0, &x1, ax, factor, min_span(f->min_dx, f->x_hi - f->x_lo), f->x_lo, f->x_hi);
    if ((axes & WB_AXIS_Y) && can_y(f))
        ms_plot_range_zoom(&y0, &y1, ay, factor, min_span(f->min_dy, f->y_hi - f->y_lo), f->y_lo, f->y_hi);
    store(s, f, x0, x1, y0, y1);
    return x0 != ox0 || x1 != ox1 || y0 != oy0 || y1 != oy1;
}

bool wb_zoom_pan(MsViewState *s, const MsViewFrame *f, double dx, double dy)
{
    double x0, x1, y0, y1;
    if (!(f->plot.w > 0 && f->plot.h > 0)) return false;
    wb_zoom_window(s, f, &x0, &x1, &y0, &y1);
    double ox0 = x0, oy0 = y0;
    /* dragging right moves the content right: the window moves left */
    double ddx = -dx * (x1 - x0) / f->plot.w, ddy = -dy * (y1 - y0) / f->plot.h;
    if (f->x_flip) ddx = -ddx;
    if (!f->y_down) ddy = -ddy;
    if (can_x(f)) ms_plot_range_pan(&x0, &x1, ddx, f->x_lo, f->x_hi);
    if (can_y(f)) ms_plot_range_pan(&y0, &y1, ddy, f->y_lo, f->y_hi);
    store(s, f, x0, x1, y0, y1);
    return x0 != ox0 || y0 != oy0;
}

void wb_zoom_reset(MsViewState *s) { s->x0 = s->x1 = s->y0 = s->y1 = 0; }

bool wb_zoom_active(const MsViewState *s) { return s->x1 > s->x0 || s->y1 > s->y0; }
