/* wb-zoom.h — zoom and pan of a view's data window (MsViewState x0..x1,
 * y0..y1) from pointer gestures: scroll, ctrl+scroll, drag, pinch.  Pure
 * math over the frame the view reports (MsViewClass.frame), so the window
 * stays under the pointer exactly as the view draws it.  An axis whose
 * window covers its whole extent is stored as "all" (x1 <= x0), which is
 * what the views draw without zoom. */
#ifndef WB_ZOOM_H
#define WB_ZOOM_H

#include <stdbool.h>

#include "ms-view.h"

enum { WB_AXIS_X = 1, WB_AXIS_Y = 2 };

/* The visible window of state s in frame f (the whole extent for "all"). */
void wb_zoom_window(const MsViewState *s, const MsViewFrame *f, double *x0, double *x1, double *y0, double *y1);
/* Data coordinates under figure point (px, py); false outside the plot area. */
bool wb_zoom_data_at(const MsViewState *s, const MsViewFrame *f, double px, double py, double *x, double *y);
/* Zoom by factor (< 1 zooms in) about figure point (px, py) along axes
 * (WB_AXIS_X | WB_AXIS_Y; an axis the frame cannot zoom is left alone).
 * The point under the pointer keeps its place.  Returns true when the
 * window changed. */
bool wb_zoom_at(MsViewState *s, const MsViewFrame *f, double px, double py, double factor, int axes);
/* Move the content by (dx, dy) figure units, as a drag does (the data under
 * the pointer follows it), stopping at the extent.  True when it moved. */
bool wb_zoom_pan(MsViewState *s, const MsViewFrame *f, double dx, double dy);
/* Back to the whole extent. */
void wb_zoom_reset(MsViewState *s);
/* True when some axis shows less than its whole extent. */
bool wb_zoom_active(const MsViewState *s);
/* The scroll-wheel step: one notch zooms by this factor. */
#define WB_ZOOM_STEP 0.8

#endif
