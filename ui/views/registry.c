/* registry.c — every view, in the order menus and `moescope plot --help`
 * list them.  A view file defines one `const MsViewClass ms_view_NAME`. */
#include <string.h>

#include "ms-view.h"

extern const MsViewClass ms_view_tokens;
extern const MsViewClass ms_view_heatmap;
extern const MsViewClass ms_view_load;
extern const MsViewClass ms_view_coactivation;
extern const MsViewClass ms_view_affinity;
extern const MsViewClass ms_view_flow;
extern const MsViewClass ms_view_consistency;
extern const MsViewClass ms_view_superexperts;
extern const MsViewClass ms_view_npmi;
extern const MsViewClass ms_view_compare;
extern const MsViewClass ms_view_sweep;

static const MsViewClass *const all[] = {
    &ms_view_tokens,
    &ms_view_heatmap,
    &ms_view_load,
    &ms_view_coactivation,
    &ms_view_affinity,
    &ms_view_flow,
    &ms_view_consistency,
    &ms_view_superexperts,
    &ms_view_npmi,
    &ms_view_compare,
    &ms_view_sweep,
    NULL,
};

const MsViewClass *const *ms_view_all(void) { return all; }

const MsViewClass *ms_view_find(const char *name)
{
    for (size_t i = 0; all[i]; i++)
        if (!strcmp(all[i]->name, name)) return all[i];
    return NULL;
}
