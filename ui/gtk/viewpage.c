/* viewpage.c — one registered view (ui/views/ms-view.h) as a page of the
 * window: a drawing area painted by the view's own draw function (the one
 * `moescope plot` renders files with), prepared on a worker thread,
 * tooltips and the hover line from its hit test, clicks for the linked
 * selection, and zoom / pan (scroll, ctrl+scroll, drag, pinch, keys) over
 * the view's frame with the pure math of ui/workbench/wb-zoom.h. */
#include <math.h>

#include "wb-gtk.h"

struct ViewPage {
    Wb *wb;
    const MsViewClass *v;
    unsigned opts;
    GtkWidget *box, *area, *layer_spin, *color_dd, *order_dd, *top_spin, *classes_entry;
    GtkWidget *zoom_in, *zoom_out, *zoom_reset, *zoom_label;
    WbViewOpts o;
    MsViewState st;
    WbViewModel *vm;
    gboolean stale, visible, again;
    int gen;
    WbJob *job;
    char msg[600];
    const char *empty_hint;   /* added to "Nothing to show yet" (the sweep's: its Run sweep row) */
    double px, py;
    gboolean pointer_in;
    double drag_dx, drag_dy;
    gboolean drag_moved;   /* this press became a pan: its release is not a click */
    double pinch_scale;
    MsViewHit hover;
};

GtkWidget *wb_view_page_widget(ViewPage *p) { return p->box; }
const MsViewClass *wb_view_page_class(ViewPage *p) { return p->v; }

static gboolean get_frame(ViewPage *p, MsViewFrame *f)
{
    if (!p->vm || !p->v->frame) return FALSE;
    double w = gtk_widget_get_width(p->area), h = gtk_widget_get_height(p->area);
    if (w < 16 || h < 16) return FALSE;
    return p->v->frame(p->vm->model, &p->st, w, h, f);
}

static void update_zoom_controls(ViewPage *p)
{
    MsViewFrame f;
    gboolean can = get_frame(p, &f);
    gtk_widget_set_sensitive(p->zoom_in, can);
    gtk_widget_set_sensitive(p->zoom_out, can && wb_zoom_active(&p->st));
    gtk_widget_set_sensitive(p->zoom_reset, can && wb_zoom_active(&p->st));
    char b[160];
    if (!can) {
        snprintf(b, sizeof b, p->vm ? "No zoom in this view" : "");
    } else {
        double x0, x1, y0, y1;
        wb_zoom_window(&p->st, &f, &x0, &x1, &y0, &y1);
        if (!wb_zoom_active(&p->st)) snprintf(b, sizeof b, "Whole figure · ctrl+scroll or pinch to zoom");
        else snprintf(b, sizeof b, "Showing x %.0f–%.0f, y %.0f–%.0f · drag to pan", x0, x1, y0, y1);
    }
    wb_label_set(p->zoom_label, b);
}

/* ------------------------------------------------------------- drawing */

static void draw_message(cairo_t *cr, double w, double h, const char *msg)
{
    cairo_set_source_rgb(cr, 0.98, 0.98, 0.985);
    cairo_paint(cr);
    MsPlotStyle style = { .font_size = 14 };
    MsPlotText *t = ms_plot_text_new(&style);
    if (!t) return;
    cairo_set_source_rgb(cr, 0.35, 0.35, 0.4);
    /* in lines that fit, not ellipsized: a hint names a command to run */
    ms_plot_text_wrapped(t, cr, MS_PLOT_ROLE_LABEL, msg, w - 40, w / 2, h / 2);
    ms_plot_text_free(t);
}

static void draw_cb(GtkDrawingArea *a, cairo_t *cr, int w, int h, gpointer user)
{
    ViewPage *p = user;
    if (p->vm) {
        MsError err = { 0 };
        if (p->v->draw(cr, w, h, p->vm->model, &p->st, &err) < 0) {
            char b[700];
            snprintf(b, sizeof b, "Cannot draw at %d × %d: %s", w, h, err.msg);
            draw_message(cr, w, h, b);
        }
        return;
    }
    draw_message(cr, w, h, p->msg[0] ? p->msg : "…");
}

/* ------------------------------------------------------------ prepare */

typedef struct {
    ViewPage *p;
    int gen;
    const MsViewClass *v;
    char *db_path;
    MsViewParams params;
    char classes[128];
    WbViewModel *vm;
} Prep;

static void prep_free(gpointer d)
{
    Prep *x = d;
    g_free(x->db_path);
    wb_view_model_unref(x->vm);
    g_free(x);
}

static int prep_run(WbJob *j, gpointer d, MsError *err)
{
    Prep *x = d;
    MsTraceDb *db = ms_trace_open(x->db_path, MS_TRACE_READ, err);
    if (!db) return err->code ? err->code : MS_EDB;
    x->params.cancel = &j->cancel;
    x->params.progress = wb_job_report;
    x->params.progress_user = j;
    if (x->classes[0]) x->params.classes = x->classes;
    void *model = NULL;
    int rc = x->v->prepare(db, &x->params, &model, err);
    ms_trace_close(db);
    if (rc < 0) {
        if (model) x->v->free_model(model);
        return rc;
    }
    x->vm = g_atomic_rc_box_new0(WbViewModel);
    x->vm->v = x->v;
    x->vm->model = model;
    return 0;
}

static void start_prepare(ViewPage *p);

static void prep_done(Wb *wb, WbJob *j, int rc, const MsError *err, gpointer d)
{
    Prep *x = d;
    ViewPage *p = x->p;
    if (p->job == j) p->job = NULL;
    if (x->gen != p->gen) return;   /* superseded: the newer request follows */
    if (rc == 0) {
        wb_view_model_unref(p->vm);
        p->vm = x->vm;
        x->vm = NULL;
        p->msg[0] = '\0';
        gtk_accessible_update_property(GTK_ACCESSIBLE(p->area), GTK_ACCESSIBLE_PROPERTY_DESCRIPTION,
                                       p->v->summary ? p->v->summary : p->v->title, -1);
    } else if (rc != MS_ECANCELLED) {
        wb_view_model_unref(p->vm);
        p->vm = NULL;
        /* MS_ENOTFOUND: what the view draws is not stored yet (no
         * intervened run to compare, no sweep): a state, not a failure */
        gboolean missing = rc == MS_ENOTFOUND;
        /* the figure area says why without the database's path (the
         * window shows which database is open): the reason stays readable */
        const char *why = err->msg;
        size_t n = x->db_path ? strlen(x->db_path) : 0;
        if (n && !strncmp(why, x->db_path, n) && !strncmp(why + n, ": ", 2)) why += n + 2;
        const char *hint = missing && p->empty_hint ? p->empty_hint : "";
        snprintf(p->msg, sizeof p->msg, "%s%s: %s%s", missing ? "Nothing to show yet in " : "", p->v->title, why, hint);
        char *d = g_strdup_printf("%s: %s%s", missing ? "Nothing to show yet" : "Error", err->msg, hint);
        gtk_accessible_update_property(GTK_ACCESSIBLE(p->area), GTK_ACCESSIBLE_PROPERTY_DESCRIPTION, d, -1);
        g_free(d);
        if (!missing) wb_status(wb, "%s", p->msg);
    }
    update_zoom_controls(p);
    gtk_widget_queue_draw(p->area);
    if (p->again) {
        p->again = FALSE;
        start_prepare(p);
    }
}

static void prep_progress(Wb *wb, WbJob *j, const MsProgress *pr, gpointer d)
{
    Prep *x = d;
    ViewPage *p = x->p;
    if (x->gen != p->gen || p->vm) return;
    char b[300];
    wb_progress_text("Preparing", pr->stage ? pr->stage : "", pr, b, sizeof b);
    snprintf(p->msg, sizeof p->msg, "%s", b);
    gtk_widget_queue_draw(p->area);
}

static void start_prepare(ViewPage *p)
{
    Wb *wb = p->wb;
    if (!wb->db_path || wb->run <= 0) {
        wb_view_model_unref(p->vm);
        p->vm = NULL;
        snprintf(p->msg, sizeof p->msg, "Open a trace database, or a model and prompts and Run, to see %s.",
                 p->v->title);
        p->stale = FALSE;
        update_zoom_controls(p);
        gtk_widget_queue_draw(p->area);
        return;
    }
    if (p->job) {
        /* one preparation at a time per page: the newest request runs next */
        p->again = TRUE;
        return;
    }
    p->stale = FALSE;
    p->gen++;
    Prep *x = g_new0(Prep, 1);
    x->p = p;
    x->gen = p->gen;
    x->v = p->v;
    x->db_path = g_strdup(wb->db_path);
    p->o.run = wb->run;
    p->o.prompt = wb->cur_prompt >= 0 ? wb->cur_prompt : 0;
    wb_view_params(&p->o, p->opts, &x->params);
    snprintf(x->classes, sizeof x->classes, "%s", p->o.classes);
    x->params.classes = NULL;
    if (!p->vm) {
        snprintf(p->msg, sizeof p->msg, "Preparing %s…", p->v->title);
        gtk_widget_queue_draw(p->area);
    }
    gtk_accessible_update_property(GTK_ACCESSIBLE(p->area), GTK_ACCESSIBLE_PROPERTY_DESCRIPTION, "Preparing", -1);
    p->job = wb_job_start(wb, p->v->name, prep_run, prep_done, prep_progress, x, prep_free);
}

void wb_view_page_invalidate(ViewPage *p, gboolean only_if_uses_prompt)
{
    if (only_if_uses_prompt && !(p->opts & WB_OPT_PROMPT)) return;
    p->stale = TRUE;
    if (p->visible) start_prepare(p);
}

void wb_view_page_shown(ViewPage *p)
{
    Wb *wb = p->wb;
    for (guint i = 0; i < wb->pages->len; i++) ((ViewPage *)g_ptr_array_index(wb->pages, i))->visible = FALSE;
    p->visible = TRUE;
    if (p->stale || (!p->vm && !p->job)) start_prepare(p);
    update_zoom_controls(p);
}

ViewPage *wb_visible_view_page(Wb *wb)
{
    for (guint i = 0; wb->pages && i < wb->pages->len; i++) {
        ViewPage *p = g_ptr_array_index(wb->pages, i);
        if (p->visible) return p;
    }
    return NULL;
}

void wb_view_page_selection(ViewPage *p, const WbSelection *s)
{
    wb_selection_apply(s, &p->st);
    gtk_widget_queue_draw(p->area);
}

/* ------------------------------------------------------------- pointer */

static void set_hover(ViewPage *p, const MsViewHit *h)
{
    int64_t r = h ? h->row : -1, c = h ? h->col : -1;
    gboolean changed = r != p->st.hover_row || c != p->st.hover_col || (h && strcmp(h->text, p->hover.text));
    p->st.hover_row = r;
    p->st.hover_col = c;
    if (h) p->hover = *h;
    else memset(&p->hover, 0, sizeof p->hover);
    if (!changed) return;
    gtk_widget_set_tooltip_text(p->area, h && h->text[0] ? h->text : NULL);
    wb_hover_text(p->wb, h && h->text[0] ? h->text : NULL);   /* off the cells: the line empties */
    gtk_widget_queue_draw(p->area);
}

static void motion_cb(GtkEventControllerMotion *c, double x, double y, gpointer user)
{
    ViewPage *p = user;
    p->px = x;
    p->py = y;
    p->pointer_in = TRUE;
    if (!p->vm || !p->v->hit) return;
    MsViewHit h;
    memset(&h, 0, sizeof h);
    h.layer = h.expert = h.prompt = h.pos = -1;
    h.row = h.col = h.item = -1;
    if (p->v->hit(p->vm->model, &p->st, gtk_widget_get_width(p->area), gtk_widget_get_height(p->area), x, y, &h) &&
        h.kind != MS_HIT_NONE)
        set_hover(p, &h);
    else
        set_hover(p, NULL);
}

static void leave_cb(GtkEventControllerMotion *c, gpointer user)
{
    ViewPage *p = user;
    p->pointer_in = FALSE;
    set_hover(p, NULL);
}

static void click_cb(GtkGestureClick *g, int n_press, double x, double y, gpointer user)
{
    ViewPage *p = user;
    gtk_widget_grab_focus(p->area);
    if (!p->vm || !p->v->hit || n_press != 1 || p->drag_moved) return;
    MsViewHit h;
    memset(&h, 0, sizeof h);
    h.layer = h.expert = h.prompt = h.pos = -1;
    if (!p->v->hit(p->vm->model, &p->st, gtk_widget_get_width(p->area), gtk_widget_get_height(p->area), x, y, &h))
        return;
    if (wb_selection_click(&p->wb->sel, &h)) wb_selection_changed(p->wb);
}

static void zoom_by(ViewPage *p, double px, double py, double factor, int axes)
{
    MsViewFrame f;
    if (!get_frame(p, &f)) return;
    if (wb_zoom_at(&p->st, &f, px, py, factor, axes)) {
        update_zoom_controls(p);
        gtk_widget_queue_draw(p->area);
    }
}

static void pan_by(ViewPage *p, double dx, double dy)
{
    MsViewFrame f;
    if (!get_frame(p, &f)) return;
    if (wb_zoom_pan(&p->st, &f, dx, dy)) {
        update_zoom_controls(p);
        gtk_widget_queue_draw(p->area);
    }
}

static gboolean scroll_cb(GtkEventControllerScroll *c, double dx, double dy, gpointer user)
{
    ViewPage *p = user;
    GdkModifierType mods = gtk_event_controller_get_current_event_state(GTK_EVENT_CONTROLLER(c));
    MsViewFrame f;
    if (!get_frame(p, &f)) return FALSE;
    double px = p->pointer_in ? p->px : f.plot.x + f.plot.w / 2, py = p->pointer_in ? p->py : f.plot.y + f.plot.h / 2;
    if (mods & GDK_CONTROL_MASK) {
        /* ctrl+scroll zooms about the pointer; shift keeps it to x */
        double factor = pow(WB_ZOOM_STEP, -dy);
        zoom_by(p, px, py, factor, (mods & GDK_SHIFT_MASK) ? WB_AXIS_X : WB_AXIS_X | WB_AXIS_Y);
    } else if (mods & GDK_SHIFT_MASK) {
        pan_by(p, 0, -dy * 40);
    } else {
        /* the wheel moves along x (tokens), a horizontal wheel too */
        pan_by(p, -(dy + dx) * 40, 0);
    }
    return TRUE;
}

static void drag_begin_cb(GtkGestureDrag *g, double x, double y, gpointer user)
{
    ViewPage *p = user;
    p->drag_dx = p->drag_dy = 0;
    p->drag_moved = FALSE;
}

static void drag_update_cb(GtkGestureDrag *g, double ox, double oy, gpointer user)
{
    ViewPage *p = user;
    if (fabs(ox) + fabs(oy) > 4) p->drag_moved = TRUE;
    pan_by(p, ox - p->drag_dx, oy - p->drag_dy);
    p->drag_dx = ox;
    p->drag_dy = oy;
}

static void pinch_begin_cb(GtkGesture *g, GdkEventSequence *s, gpointer user)
{
    ((ViewPage *)user)->pinch_scale = 1;
}

static void pinch_cb(GtkGestureZoom *g, double scale, gpointer user)
{
    ViewPage *p = user;
    double cx, cy;
    if (!(scale > 0) || !gtk_gesture_get_bounding_box_center(GTK_GESTURE(g), &cx, &cy)) return;
    zoom_by(p, cx, cy, p->pinch_scale / scale, WB_AXIS_X | WB_AXIS_Y);
    p->pinch_scale = scale;
}

static gboolean key_cb(GtkEventControllerKey *k, guint keyval, guint code, GdkModifierType mods, gpointer user)
{
    ViewPage *p = user;
    MsViewFrame f;
    if (!get_frame(p, &f)) return FALSE;
    double cx = f.plot.x + f.plot.w / 2, cy = f.plot.y + f.plot.h / 2;
    switch (keyval) {
    case GDK_KEY_plus: case GDK_KEY_equal: case GDK_KEY_KP_Add: zoom_by(p, cx, cy, WB_ZOOM_STEP, 3); return TRUE;
    case GDK_KEY_minus: case GDK_KEY_KP_Subtract: zoom_by(p, cx, cy, 1 / WB_ZOOM_STEP, 3); return TRUE;
    case GDK_KEY_0: case GDK_KEY_KP_0:
        wb_zoom_reset(&p->st);
        update_zoom_controls(p);
        gtk_widget_queue_draw(p->area);
        return TRUE;
    case GDK_KEY_Left: pan_by(p, 60, 0); return TRUE;
    case GDK_KEY_Right: pan_by(p, -60, 0); return TRUE;
    case GDK_KEY_Up: pan_by(p, 0, 60); return TRUE;
    case GDK_KEY_Down: pan_by(p, 0, -60); return TRUE;
    default: return FALSE;
    }
}

static void zoom_btn_cb(GtkButton *b, gpointer user)
{
    ViewPage *p = user;
    MsViewFrame f;
    if (!get_frame(p, &f)) return;
    double cx = f.plot.x + f.plot.w / 2, cy = f.plot.y + f.plot.h / 2;
    if (GTK_WIDGET(b) == p->zoom_in) zoom_by(p, cx, cy, 0.5, 3);
    else if (GTK_WIDGET(b) == p->zoom_out) zoom_by(p, cx, cy, 2, 3);
    else {
        wb_zoom_reset(&p->st);
        update_zoom_controls(p);
        gtk_widget_queue_draw(p->area);
    }
}

static void resize_cb(GtkDrawingArea *a, int w, int h, gpointer user) { update_zoom_controls(user); }

/* ------------------------------------------------------------- options */

static void opts_changed(ViewPage *p)
{
    if (p->layer_spin) p->o.layer = gtk_spin_button_get_value_as_int(GTK_SPIN_BUTTON(p->layer_spin));
    if (p->color_dd) p->o.color_by = (MsViewColorBy)gtk_drop_down_get_selected(GTK_DROP_DOWN(p->color_dd));
    if (p->order_dd) p->o.order = (int)gtk_drop_down_get_selected(GTK_DROP_DOWN(p->order_dd));
    if (p->top_spin) p->o.top = gtk_spin_button_get_value_as_int(GTK_SPIN_BUTTON(p->top_spin));
    if (p->classes_entry) snprintf(p->o.classes, sizeof p->o.classes, "%s", gtk_editable_get_text(GTK_EDITABLE(p->classes_entry)));
    /* colour-by is a drawing state: no new preparation needed */
    p->st.color_by = p->o.color_by;
    wb_view_page_invalidate(p, FALSE);
}

static void spin_cb(GtkSpinButton *s, gpointer user) { opts_changed(user); }
static void dd_cb(GObject *o, GParamSpec *ps, gpointer user) { opts_changed(user); }
static void entry_cb(GtkEntry *e, gpointer user) { opts_changed(user); }

static GtkWidget *icon_button(const char *icon, const char *name)
{
    GtkWidget *b = gtk_button_new_from_icon_name(icon);
    gtk_widget_set_tooltip_text(b, name);
    return wb_labelled(b, name);
}

ViewPage *wb_view_page_new(Wb *wb, const MsViewClass *v)
{
    ViewPage *p = g_new0(ViewPage, 1);
    p->wb = wb;
    p->v = v;
    p->opts = wb_view_options(v->name);
    wb_view_opts_init(&p->o);
    ms_view_state_init(&p->st);
    p->stale = TRUE;
    p->box = gtk_box_new(GTK_ORIENTATION_VERTICAL, 6);
    gtk_widget_set_margin_start(p->box, 8);
    gtk_widget_set_margin_end(p->box, 8);
    gtk_widget_set_margin_top(p->box, 6);
    gtk_widget_set_margin_bottom(p->box, 6);

    /* no heading in this row: the page list marks the view and every figure
     * draws its own title; a heading here was cut short ("Expert co-activa…")
     * beside the controls at the default window size */
    GtkWidget *bar = gtk_box_new(GTK_ORIENTATION_HORIZONTAL, 6);
    char name[160];
    if (p->opts & WB_OPT_LAYER) {
        gtk_box_append(GTK_BOX(bar), wb_caption("Layer"));
        p->layer_spin = gtk_spin_button_new_with_range(-1, MS_TRACE_MAX_LAYER - 1, 1);
        wb_spin_word(p->layer_spin, "auto");   /* −1: the view's default layer */
        snprintf(name, sizeof name, "%s: layer (auto = the view's default)", v->title);
        gtk_widget_set_tooltip_text(p->layer_spin, "Block index; auto (−1) = the view's default");
        gtk_box_append(GTK_BOX(bar), wb_labelled(p->layer_spin, name));
        g_signal_connect(p->layer_spin, "value-changed", G_CALLBACK(spin_cb), p);
    }
    if (p->opts & WB_OPT_COLOR) {
        gtk_box_append(GTK_BOX(bar), wb_caption("Colour by"));
        const char *items[] = { "default", "top-1 expert", "routing entropy", "top-1 weight", "residual max |h|", NULL };
        p->color_dd = gtk_drop_down_new_from_strings(items);
        snprintf(name, sizeof name, "%s: colour by", v->title);
        gtk_box_append(GTK_BOX(bar), wb_labelled(p->color_dd, name));
        g_signal_connect(p->color_dd, "notify::selected", G_CALLBACK(dd_cb), p);
    }
    if (p->opts & WB_OPT_ORDER) {
        gtk_box_append(GTK_BOX(bar), wb_caption("Order"));
        const char *items[] = { "by id", "by load", "clustered", NULL };
        p->order_dd = gtk_drop_down_new_from_strings(items);
        snprintf(name, sizeof name, "%s: order", v->title);
        gtk_box_append(GTK_BOX(bar), wb_labelled(p->order_dd, name));
        g_signal_connect(p->order_dd, "notify::selected", G_CALLBACK(dd_cb), p);
    }
    if (p->opts & WB_OPT_TOP) {
        gtk_box_append(GTK_BOX(bar), wb_caption("Top"));
        p->top_spin = gtk_spin_button_new_with_range(0, 1000, 1);
        wb_spin_word(p->top_spin, "auto");   /* 0: the view's default */
        gtk_widget_set_tooltip_text(p->top_spin, "How many of the strongest items; auto = the view's default");
        snprintf(name, sizeof name, "%s: top N (auto = the view's default)", v->title);
        gtk_box_append(GTK_BOX(bar), wb_labelled(p->top_spin, name));
        g_signal_connect(p->top_spin, "value-changed", G_CALLBACK(spin_cb), p);
    }
    if (p->opts & WB_OPT_CLASSES) {
        gtk_box_append(GTK_BOX(bar), wb_caption("Classes"));
        p->classes_entry = gtk_entry_new();
        gtk_entry_set_placeholder_text(GTK_ENTRY(p->classes_entry), "text, label:language, …");
        gtk_editable_set_width_chars(GTK_EDITABLE(p->classes_entry), 16);
        snprintf(name, sizeof name, "%s: class scheme", v->title);
        gtk_box_append(GTK_BOX(bar), wb_labelled(p->classes_entry, name));
        g_signal_connect(p->classes_entry, "activate", G_CALLBACK(entry_cb), p);
    }
    GtkWidget *spacer = gtk_box_new(GTK_ORIENTATION_HORIZONTAL, 0);
    gtk_widget_set_hexpand(spacer, TRUE);
    gtk_box_append(GTK_BOX(bar), spacer);
    p->zoom_label = gtk_label_new("");
    snprintf(name, sizeof name, "%s: zoom", v->title);
    wb_labelled(p->zoom_label, name);
    gtk_widget_add_css_class(p->zoom_label, "dim-label");
    gtk_label_set_ellipsize(GTK_LABEL(p->zoom_label), PANGO_ELLIPSIZE_END);
    gtk_label_set_xalign(GTK_LABEL(p->zoom_label), 0);
    snprintf(name, sizeof name, "%s: zoom in", v->title);
    p->zoom_in = icon_button("zoom-in-symbolic", name);
    snprintf(name, sizeof name, "%s: zoom out", v->title);
    p->zoom_out = icon_button("zoom-out-symbolic", name);
    snprintf(name, sizeof name, "%s: whole figure", v->title);
    p->zoom_reset = icon_button("zoom-fit-best-symbolic", name);
    GtkWidget *zb = gtk_box_new(GTK_ORIENTATION_HORIZONTAL, 0);
    gtk_widget_add_css_class(zb, "linked");
    gtk_box_append(GTK_BOX(zb), p->zoom_in);
    gtk_box_append(GTK_BOX(zb), p->zoom_out);
    gtk_box_append(GTK_BOX(zb), p->zoom_reset);
    gtk_box_append(GTK_BOX(bar), zb);
    g_signal_connect(p->zoom_in, "clicked", G_CALLBACK(zoom_btn_cb), p);
    g_signal_connect(p->zoom_out, "clicked", G_CALLBACK(zoom_btn_cb), p);
    g_signal_connect(p->zoom_reset, "clicked", G_CALLBACK(zoom_btn_cb), p);
    gtk_box_append(GTK_BOX(p->box), bar);
    if (!strcmp(v->name, "sweep")) {
        gtk_box_append(GTK_BOX(p->box), wb_sweep_bar_new(wb));
        p->empty_hint = "; or choose candidates above and press Run sweep";
    }

    p->area = g_object_new(GTK_TYPE_DRAWING_AREA, "accessible-role", GTK_ACCESSIBLE_ROLE_IMG, NULL);
    gtk_widget_set_hexpand(p->area, TRUE);
    gtk_widget_set_vexpand(p->area, TRUE);
    gtk_widget_set_focusable(p->area, TRUE);
    gtk_widget_set_can_focus(p->area, TRUE);
    gtk_accessible_update_property(GTK_ACCESSIBLE(p->area), GTK_ACCESSIBLE_PROPERTY_LABEL, v->title,
                                   GTK_ACCESSIBLE_PROPERTY_DESCRIPTION, v->summary ? v->summary : v->title, -1);
    gtk_drawing_area_set_draw_func(GTK_DRAWING_AREA(p->area), draw_cb, p, NULL);
    g_signal_connect(p->area, "resize", G_CALLBACK(resize_cb), p);
    GtkEventController *m = gtk_event_controller_motion_new();
    g_signal_connect(m, "motion", G_CALLBACK(motion_cb), p);
    g_signal_connect(m, "enter", G_CALLBACK(motion_cb), p);
    g_signal_connect(m, "leave", G_CALLBACK(leave_cb), p);
    gtk_widget_add_controller(p->area, m);
    GtkGesture *click = gtk_gesture_click_new();
    g_signal_connect(click, "released", G_CALLBACK(click_cb), p);
    gtk_widget_add_controller(p->area, GTK_EVENT_CONTROLLER(click));
    GtkEventController *sc = gtk_event_controller_scroll_new(GTK_EVENT_CONTROLLER_SCROLL_BOTH_AXES);
    g_signal_connect(sc, "scroll", G_CALLBACK(scroll_cb), p);
    gtk_widget_add_controller(p->area, sc);
    GtkGesture *drag = gtk_gesture_drag_new();
    g_signal_connect(drag, "drag-begin", G_CALLBACK(drag_begin_cb), p);
    g_signal_connect(drag, "drag-update", G_CALLBACK(drag_update_cb), p);
    gtk_widget_add_controller(p->area, GTK_EVENT_CONTROLLER(drag));
    GtkGesture *pinch = gtk_gesture_zoom_new();
    g_signal_connect(pinch, "begin", G_CALLBACK(pinch_begin_cb), p);
    g_signal_connect(pinch, "scale-changed", G_CALLBACK(pinch_cb), p);
    gtk_widget_add_controller(p->area, GTK_EVENT_CONTROLLER(pinch));
    GtkEventController *key = gtk_event_controller_key_new();
    g_signal_connect(key, "key-pressed", G_CALLBACK(key_cb), p);
    gtk_widget_add_controller(p->area, key);
    gtk_box_append(GTK_BOX(p->box), p->area);
    gtk_box_append(GTK_BOX(p->box), p->zoom_label);
    update_zoom_controls(p);
    return p;
}

/* ------------------------------------------------------------- export */

typedef struct {
    WbViewModel *vm;
    MsViewState st;
    WbViewExport e;
} Exp;

static void exp_free(gpointer d)
{
    Exp *x = d;
    wb_view_model_unref(x->vm);
    g_free(x);
}

static int exp_run(WbJob *j, gpointer d, MsError *err)
{
    Exp *x = d;
    return ms_view_render_file(x->vm->v, x->vm->model, &x->st, x->e.path, x->e.width, x->e.height, x->e.scale, err);
}

static void exp_done(Wb *wb, WbJob *j, int rc, const MsError *err, gpointer d)
{
    Exp *x = d;
    if (rc < 0) wb_show_error(wb, "Export failed: %s", err->msg);
    else
        wb_status(wb, "Exported %s to %s (%.0f × %.0f at scale %g)", x->vm->v->name, x->e.path, x->e.width, x->e.height,
                  x->e.scale);
}

void wb_view_page_export(ViewPage *p, const WbViewExport *e)
{
    if (!p->vm) {
        wb_show_error(p->wb, "Export: the %s view has no figure yet (open a trace and wait for it to be drawn)",
                      p->v->name);
        return;
    }
    Exp *x = g_new0(Exp, 1);
    x->vm = wb_view_model_ref(p->vm);
    x->st = p->st;
    x->st.hover_row = x->st.hover_col = -1;
    x->e = *e;
    if (x->e.width <= 0 || x->e.height <= 0) {
        double w = gtk_widget_get_width(p->area), h = gtk_widget_get_height(p->area);
        if (w < 16 || h < 16) p->v->default_size ? p->v->default_size(p->vm->model, &w, &h) : (void)(w = 1200, h = 800);
        x->e.width = w;
        x->e.height = h;
    }
    wb_job_start(p->wb, "export view", exp_run, exp_done, NULL, x, exp_free);
}

void wb_view_page_free(ViewPage *p)
{
    if (!p) return;
    wb_view_model_unref(p->vm);
    g_free(p);
}
