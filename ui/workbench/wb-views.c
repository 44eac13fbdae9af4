/* wb-views.c — view options and module links (wb-views.h). */
#include <string.h>

#include "wb-views.h"

static const struct {
    const char *name;
    unsigned opts;
    const char *module;
} known[] = {
    { "tokens", WB_OPT_PROMPT | WB_OPT_LAYER | WB_OPT_COLOR, NULL },
    { "heatmap", WB_OPT_PROMPT | WB_OPT_COLOR | WB_OPT_ZOOM, NULL },
    { "load", 0, "load" },
    { "coactivation", WB_OPT_LAYER | WB_OPT_ORDER | WB_OPT_TOP, "coactivation" },
    { "affinity", WB_OPT_LAYER | WB_OPT_ORDER | WB_OPT_TOP, "affinity" },
    { "flow", WB_OPT_TOP, "affinity" },
    { "consistency", 0, "consistency" },
    { "superexperts", 0, "superexperts" },
    { "npmi", WB_OPT_CLASSES | WB_OPT_TOP, "npmi" },
    { "compare", WB_OPT_PROMPT, NULL },
    { "sweep", WB_OPT_TOP, NULL },
};

unsigned wb_view_options(const char *name)
{
    for (size_t i = 0; name && i < sizeof known / sizeof known[0]; i++)
        if (!strcmp(known[i].name, name)) return known[i].opts | WB_OPT_ZOOM;
    return WB_OPT_PROMPT | WB_OPT_LAYER | WB_OPT_COLOR | WB_OPT_ORDER | WB_OPT_TOP | WB_OPT_ZOOM;
}

void wb_view_opts_init(WbViewOpts *o)
{
    memset(o, 0, sizeof *o);
    o->layer = -1;
}

const char *wb_order_name(int order) { return order == 1 ? "load" : order == 2 ? "cluster" : "id"; }

void wb_view_params(const WbViewOpts *o, unsigned mask, MsViewParams *p)
{
    ms_view_params_init(p);
    p->run = o->run;
    if (mask & WB_OPT_PROMPT) p->prompt = o->prompt;
    if (mask & WB_OPT_LAYER) p->layer = o->layer;
    if (mask & WB_OPT_COLOR) p->color_by = o->color_by;
    if (mask & WB_OPT_ORDER) p->order = wb_order_name(o->order);
    if (mask & WB_OPT_TOP) p->top = o->top;
    if ((mask & WB_OPT_CLASSES) && o->classes[0]) p->classes = o->classes;
}

const char *wb_view_module(const char *view)
{
    for (size_t i = 0; view && i < sizeof known / sizeof known[0]; i++)
        if (!strcmp(known[i].name, view)) return known[i].module;
    return NULL;
}

const MsViewClass *wb_module_view(const char *module)
{
    if (!module) return NULL;
    for (const MsViewClass *const *v = ms_view_all(); *v; v++) {
        const char *m = wb_view_module((*v)->name);
        if (m && !strcmp(m, module)) return *v;
    }
    return NULL;
}
