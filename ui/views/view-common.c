/* view-common.c — what every view shares: parameter and state defaults,
 * colour-by names, file rendering (ms-view.h). */
#include <math.h>
#include <string.h>

#include "ms-view.h"

static const char *const color_names[MS_VIEW_COLOR_COUNT] = { "default", "expert", "entropy", "weight", "hidden",
                                                                    "lift", "jaccard" };

int ms_view_color_from_name(const char *name)
{
    for (int i = 1; i < MS_VIEW_COLOR_COUNT; i++)
        if (!strcmp(name, color_names[i])) return i;
    return MS_EINVAL;
}

const char *ms_view_color_name(MsViewColorBy c)
{
    return c >= 0 && c < MS_VIEW_COLOR_COUNT ? color_names[c] : "?";
}

int ms_view_color_check(const MsViewClass *v, MsViewColorBy c, MsError *err)
{
    if (c == MS_VIEW_COLOR_DEFAULT || (v->colors & MS_VIEW_COLOR_BIT(c))) return 0;
    if (!v->colors) return ms_error_set(err, MS_EINVAL, "%s takes no --color-by (got %s)", v->name, ms_view_color_name(c));
    char list[160] = "";
    int n = 0, k = 0;
    for (int i = 1; i < MS_VIEW_COLOR_COUNT; i++) n += (v->colors & MS_VIEW_COLOR_BIT(i)) != 0;
    for (int i = 1; i < MS_VIEW_COLOR_COUNT; i++) {
        if (!(v->colors & MS_VIEW_COLOR_BIT(i))) continue;
        size_t o = strlen(list);
        snprintf(list + o, sizeof list - o, "%s%s", k == 0 ? "" : k == n - 1 ? " or " : ", ", color_names[i]);
        k++;
    }
    return ms_error_set(err, MS_EINVAL, "%s colours by %s (got %s)", v->name, list, ms_view_color_name(c));
}

void ms_view_params_init(MsViewParams *p)
{
    memset(p, 0, sizeof *p);
    p->layer = -1;
    p->layer_lo = p->layer_hi = -1;
    p->run_missing = true;
}

void ms_view_state_init(MsViewState *s)
{
    memset(s, 0, sizeof *s);
    s->sel_layer = s->sel_expert = -1;
    s->hover_row = s->hover_col = -1;
}

MsViewFrame ms_view_frame_from_geom(const MsPlotGeom *g, double x_lo, double x_hi, double y_lo, double y_hi)
{
    MsViewFrame f = { .x_lo = x_lo, .x_hi = x_hi, .y_lo = y_lo, .y_hi = y_hi, .plot = g->plot,
                      .x_flip = g->x_flip, .y_down = g->y_down };
    return f;
}

typedef struct {
    const MsViewClass *v;
    const void *model;
    const MsViewState *s;
} Render;

static int render_cb(void *user, cairo_t *cr, double w, double h, MsError *err)
{
    const Render *r = user;
    return r->v->draw(cr, w, h, r->model, r->s, err);
}

int ms_view_render_file(const MsViewClass *v, const void *model, const MsViewState *s, const char *path,
                        double width, double height, double scale, MsError *err)
{
    Render r = { v, model, s };
    return ms_plot_render_file(path, width, height, scale, render_cb, &r, err);
}
