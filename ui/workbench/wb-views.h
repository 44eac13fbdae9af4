/* wb-views.h — the options each view page offers and the MsViewParams they
 * make; which analysis a view draws (so the Analyses page can show a
 * result's picture).  The views themselves come from ms_view_all(): a view
 * this table does not know gets every common option.  Plain C: no GTK. */
#ifndef WB_VIEWS_H
#define WB_VIEWS_H

#include <stdint.h>

#include "ms-view.h"

enum {
    WB_OPT_PROMPT = 1 << 0,    /* prompt index */
    WB_OPT_LAYER = 1 << 1,     /* one block */
    WB_OPT_COLOR = 1 << 2,     /* colour by */
    WB_OPT_ORDER = 1 << 3,     /* matrix order */
    WB_OPT_TOP = 1 << 4,       /* strongest N */
    WB_OPT_CLASSES = 1 << 5,   /* npmi class scheme */
    WB_OPT_ZOOM = 1 << 6,      /* zoom / pan controls (when the view has a frame) */
};

/* Option mask for a view name. */
unsigned wb_view_options(const char *name);

/* The page's option values. */
typedef struct {
    int64_t run;               /* 0 = newest */
    int prompt;
    int layer;                 /* −1 = the view's default */
    MsViewColorBy color_by;
    int order;                 /* 0 id, 1 load, 2 cluster */
    int top;                   /* 0 = the view's default */
    char classes[128];         /* "" = default */
} WbViewOpts;

void wb_view_opts_init(WbViewOpts *o);
/* Fill p from o, using only the options in mask (the rest at defaults). */
void wb_view_params(const WbViewOpts *o, unsigned mask, MsViewParams *p);
const char *wb_order_name(int order);   /* "id" "load" "cluster" */

/* The analysis module a view draws ("load" for load, "affinity" for flow
 * and affinity, ...) or NULL; and the first registered view that draws a
 * module, or NULL. */
const char *wb_view_module(const char *view);
const MsViewClass *wb_module_view(const char *module);

#endif
