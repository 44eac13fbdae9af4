/* ivpage.c — the intervention panel: the layers × experts grid (its state
 * machine is ui/workbench/wb-grid.h), a cell editor (mode, steer slider,
 * the layer's top-k), plans and saved sets, and Apply: the selected prompt
 * baseline vs intervened through the experiment library
 * (ms_compare_prompt), shown as two continuations with the differing words
 * marked, the per-token KL strip and the routing shift; "Run on all prompts"
 * stores a full experiment (ms_experiment_job_run). */
#include <math.h>

#include "wb-gtk.h"

struct IvPage {
    Wb *wb;
    GtkWidget *box, *stack, *set_label, *grid_area, *grid_scroll, *cell_label;
    GtkWidget *mode_btn[3], *steer, *steer_label, *topk_spin, *topk_label;
    GtkWidget *prompt_label, *gen_spin, *apply_btn, *run_all_btn;
    GtkWidget *summary, *base_label, *run_label, *kl_area, *shift_area;
    WbGridMarks marks;
    gboolean lock;
    WbJob *apply_job;
    int apply_gen;
    WbApplyFig *fig;
    int kl_hover, shift_hover_l, shift_hover_p;
};

GtkWidget *wb_iv_page_widget(IvPage *p) { return p->box; }
int wb_iv_gen_tokens(IvPage *p) { return gtk_spin_button_get_value_as_int(GTK_SPIN_BUTTON(p->gen_spin)); }

static gboolean focus_valid(IvPage *p)
{
    WbGrid *g = p->wb->grid;
    return g && p->marks.focus_layer >= 0 && p->marks.focus_layer < wb_grid_n_layer(g) && p->marks.focus_expert >= 0 &&
           p->marks.focus_expert < wb_grid_n_expert(g);
}

/* Bring the editor and labels in line with the grid. */
void wb_iv_page_refresh(IvPage *p)
{
    WbGrid *g = p->wb->grid;
    if (!g) return;
    char *t = wb_grid_to_text(g);
    char *s = g_strdup_printf("Intervention set: %s", t && *t ? t : "(empty — click cells to silence or force experts)");
    wb_label_set(p->set_label, s);
    g_free(s);
    free(t);
    p->lock = TRUE;
    gboolean fv = focus_valid(p);
    for (int i = 0; i < 3; i++) gtk_widget_set_sensitive(p->mode_btn[i], fv);
    gtk_widget_set_sensitive(p->steer, fv);
    gtk_widget_set_sensitive(p->topk_spin, fv);
    if (fv) {
        int l = p->marks.focus_layer, e = p->marks.focus_expert;
        char d[300];
        wb_grid_cell_describe(g, l, e, d, sizeof d);
        wb_label_set(p->cell_label, d);
        WbCellMode m = wb_grid_mode(g, l, e);
        for (int i = 0; i < 3; i++) gtk_toggle_button_set_active(GTK_TOGGLE_BUTTON(p->mode_btn[i]), (int)m == i);
        gtk_range_set_value(GTK_RANGE(p->steer), wb_grid_steer(g, l, e));
        char b[64];
        snprintf(b, sizeof b, "%+.2f", wb_grid_steer(g, l, e));
        wb_label_set(p->steer_label, b);
        gtk_spin_button_set_value(GTK_SPIN_BUTTON(p->topk_spin), wb_grid_top_k(g, l));
        snprintf(b, sizeof b, "Layer %d top-k (auto = the model's %d)", l, wb_grid_k_default(g));
        wb_label_set(p->topk_label, b);
    } else {
        wb_label_set(p->cell_label, "Click a cell of the grid (or select an expert in a view)");
    }
    p->lock = FALSE;
    gtk_widget_queue_draw(p->grid_area);
}

void wb_iv_page_model_changed(IvPage *p)
{
    WbGrid *g = p->wb->grid;
    gtk_stack_set_visible_child_name(GTK_STACK(p->stack), g ? "panel" : "empty");
    if (!g) return;
    double w, h;
    wb_grid_size(g, &w, &h);
    gtk_widget_set_size_request(p->grid_area, (int)ceil(w), (int)ceil(h));
    /* the whole grid when it fits in 300 px (the panels below would squeeze it otherwise) */
    gtk_scrolled_window_set_max_content_height(GTK_SCROLLED_WINDOW(p->grid_scroll), (int)fmin(ceil(h), 300));
    gtk_scrolled_window_set_min_content_height(GTK_SCROLLED_WINDOW(p->grid_scroll), (int)fmin(ceil(h), 300));
    gtk_spin_button_set_range(GTK_SPIN_BUTTON(p->topk_spin), 0, wb_grid_n_expert(g));
    p->marks.focus_layer = p->marks.focus_expert = -1;
    for (int l = 0; l < wb_grid_n_layer(g); l++)
        if (wb_grid_is_moe(g, l)) {
            p->marks.focus_layer = l;
            p->marks.focus_expert = 0;
            break;
        }
    wb_iv_page_refresh(p);
}

void wb_iv_page_prompt_changed(IvPage *p)
{
    Wb *wb = p->wb;
    size_t len = 0;
    const char *t = wb_prompt_text(wb, wb->cur_prompt, &len);
    char b[400];
    if (!t) snprintf(b, sizeof b, "Prompt: none selected — choose one in the prompt list");
    else {
        char row[300];
        wb_prompt_row_text(wb->cur_prompt, t, len, NULL, -2, 80, row, sizeof row);
        /* drop the "· not traced —" part the row text adds for n_tokens < 0 */
        char *dash = strstr(row, " — ");
        snprintf(b, sizeof b, "Prompt #%d: %s", wb->cur_prompt, dash ? dash + strlen(" — ") : row);
    }
    wb_label_set(p->prompt_label, b);
}

void wb_iv_page_selection(IvPage *p, const WbSelection *s)
{
    p->marks.sel_layer = s->layer;
    p->marks.sel_expert = s->expert;
    if (wb_selection_active(s) && p->wb->grid && s->layer < wb_grid_n_layer(p->wb->grid) &&
        s->expert < wb_grid_n_expert(p->wb->grid)) {
        p->marks.focus_layer = s->layer;
        p->marks.focus_expert = s->expert;
    }
    wb_iv_page_refresh(p);
}

/* ----------------------------------------------------------------- grid */

static void grid_draw_cb(GtkDrawingArea *a, cairo_t *cr, int w, int h, gpointer user)
{
    IvPage *p = user;
    if (p->wb->grid) wb_grid_draw(cr, p->wb->grid, &p->marks);
}

static void report(Wb *wb, const MsError *err)
{
    if (err->code) wb_show_error(wb, "%s", err->msg);
}

static void grid_click_cb(GtkGestureClick *g, int n, double x, double y, gpointer user)
{
    IvPage *p = user;
    Wb *wb = p->wb;
    int l, e;
    gtk_widget_grab_focus(p->grid_area);
    if (!wb->grid || !wb_grid_hit(wb->grid, x, y, &l, &e)) return;
    p->marks.focus_layer = l;
    p->marks.focus_expert = e;
    MsError err = { 0 };
    int m = wb_grid_cycle(wb->grid, l, e, &err);
    if (m < 0 || err.code) report(wb, &err);
    char d[300];
    wb_grid_cell_describe(wb->grid, l, e, d, sizeof d);
    wb_status(wb, "%s", d);
    wb_iv_page_refresh(p);
}

static void grid_motion_cb(GtkEventControllerMotion *c, double x, double y, gpointer user)
{
    IvPage *p = user;
    int l = -1, e = -1;
    if (p->wb->grid && !wb_grid_hit(p->wb->grid, x, y, &l, &e)) l = e = -1;
    if (l == p->marks.hover_layer && e == p->marks.hover_expert) return;
    p->marks.hover_layer = l;
    p->marks.hover_expert = e;
    if (l >= 0) {
        char d[300];
        wb_grid_cell_describe(p->wb->grid, l, e, d, sizeof d);
        gtk_widget_set_tooltip_text(p->grid_area, d);
        wb_hover_text(p->wb, d);
    } else {
        gtk_widget_set_tooltip_text(p->grid_area, NULL);
        wb_hover_text(p->wb, NULL);
    }
    gtk_widget_queue_draw(p->grid_area);
}

static gboolean grid_key_cb(GtkEventControllerKey *k, guint keyval, guint code, GdkModifierType mods, gpointer user)
{
    IvPage *p = user;
    WbGrid *g = p->wb->grid;
    if (!g) return FALSE;
    int l = p->marks.focus_layer < 0 ? 0 : p->marks.focus_layer, e = p->marks.focus_expert < 0 ? 0 : p->marks.focus_expert;
    switch (keyval) {
    case GDK_KEY_Left: e = e > 0 ? e - 1 : 0; break;
    case GDK_KEY_Right: e = e + 1 < wb_grid_n_expert(g) ? e + 1 : e; break;
    case GDK_KEY_Up: l = l > 0 ? l - 1 : 0; break;
    case GDK_KEY_Down: l = l + 1 < wb_grid_n_layer(g) ? l + 1 : l; break;
    case GDK_KEY_space:
    case GDK_KEY_Return: {
        MsError err = { 0 };
        int m = wb_grid_cycle(g, l, e, &err);
        if (m < 0 || err.code) report(p->wb, &err);
        break;
    }
    default: return FALSE;
    }
    p->marks.focus_layer = l;
    p->marks.focus_expert = e;
    wb_iv_page_refresh(p);
    return TRUE;
}

/* --------------------------------------------------------------- editor */

static void mode_cb(GtkToggleButton *b, gpointer user)
{
    IvPage *p = user;
    if (p->lock || !gtk_toggle_button_get_active(b) || !focus_valid(p)) return;
    int mode = 0;
    for (int i = 0; i < 3; i++)
        if (GTK_WIDGET(b) == p->mode_btn[i]) mode = i;
    MsError err = { 0 };
    if (wb_grid_set_mode(p->wb->grid, p->marks.focus_layer, p->marks.focus_expert, (WbCellMode)mode, &err) < 0)
        report(p->wb, &err);
    wb_iv_page_refresh(p);
}

static void steer_cb(GtkRange *r, gpointer user)
{
    IvPage *p = user;
    if (p->lock || !focus_valid(p)) return;
    double v = round(gtk_range_get_value(r) * 100) / 100;
    if (fabs(v) < 0.005) v = 0;
    MsError err = { 0 };
    if (wb_grid_set_steer(p->wb->grid, p->marks.focus_layer, p->marks.focus_expert, (float)v, &err) < 0)
        report(p->wb, &err);
    wb_iv_page_refresh(p);
}

static void topk_cb(GtkSpinButton *s, gpointer user)
{
    IvPage *p = user;
    if (p->lock || !focus_valid(p)) return;
    MsError err = { 0 };
    if (wb_grid_set_top_k(p->wb->grid, p->marks.focus_layer, gtk_spin_button_get_value_as_int(s), &err) < 0)
        report(p->wb, &err);
    wb_iv_page_refresh(p);
}

static void clear_cb(GtkButton *b, gpointer user)
{
    IvPage *p = user;
    if (!p->wb->grid) return;
    wb_grid_clear(p->wb->grid);
    wb_status(p->wb, "Intervention set cleared");
    wb_iv_page_refresh(p);
}

static void load_set_chosen(Wb *wb, const char *path)
{
    gtk_widget_activate_action(GTK_WIDGET(wb->win), "win.load-interventions", "s", path);
}
static void save_set_chosen(Wb *wb, const char *path)
{
    gtk_widget_activate_action(GTK_WIDGET(wb->win), "win.save-interventions", "s", path);
}

static void load_set_cb(GtkButton *b, gpointer user)
{
    wb_choose_file(((IvPage *)user)->wb, "Load an intervention set", GTK_FILE_CHOOSER_ACTION_OPEN, "_Load",
                   load_set_chosen);
}

static void save_set_cb(GtkButton *b, gpointer user)
{
    wb_choose_file(((IvPage *)user)->wb, "Save the intervention set", GTK_FILE_CHOOSER_ACTION_SAVE, "_Save",
                   save_set_chosen);
}

/* ---------------------------------------------------------------- plans */

typedef struct {
    char *db_path;
    int64_t run;
    char module[32];
    char *text;
} PlanJob;

static void plan_free(gpointer d)
{
    PlanJob *x = d;
    g_free(x->db_path);
    free(x->text);
    g_free(x);
}

static int plan_run(WbJob *j, gpointer d, MsError *err)
{
    PlanJob *x = d;
    MsTraceDb *db = ms_trace_open(x->db_path, MS_TRACE_READ, err);
    if (!db) return err->code ? err->code : MS_EDB;
    int rc = wb_stored_plan(db, x->run, x->module, &x->text, err);
    ms_trace_close(db);
    return rc;
}

static void load_plan_text(IvPage *p, const char *module, const char *text, const char *from)
{
    MsError err = { 0 };
    if (!p->wb->grid) {
        wb_show_error(p->wb, "Open a model first: a plan is loaded into the grid of a model");
        return;
    }
    int n = wb_grid_load_plan(p->wb->grid, text, &err);
    if (n < 0) {
        wb_show_error(p->wb, "The %s plan does not fit this model: %s", module, err.msg);
        return;
    }
    if (n == 0) {
        wb_status(p->wb, "The %s plan (%s) is empty: no expert qualified for it in this run; the grid is "
                  "unchanged", module, from);
        return;
    }
    wb_status(p->wb, "Loaded the %s plan (%s): %d operator%s", module, from, n, n == 1 ? "" : "s");
    wb_iv_page_refresh(p);
}

static void plan_done(Wb *wb, WbJob *j, int rc, const MsError *err, gpointer d)
{
    PlanJob *x = d;
    if (rc < 0) {
        wb_show_error(wb, "%s", err->msg);
        return;
    }
    load_plan_text(wb->iv, x->module, x->text, "stored in the database");
}

void wb_iv_load_plan(IvPage *p, const char *module)
{
    Wb *wb = p->wb;
    if (strcmp(module, "npmi") && strcmp(module, "riskdiff") && strcmp(module, "crosslingual")) {
        wb_show_error(wb, "load-plan: '%s' writes no plan (npmi, riskdiff or crosslingual)", module);
        return;
    }
    const char *mem = wb->an ? wb_an_last_plan(wb->an, module) : NULL;
    if (mem) {
        load_plan_text(p, module, mem, "from the Analyses page");
        return;
    }
    if (!wb->db_path || wb->run <= 0) {
        wb_show_error(wb, "No %s plan: run the analysis on the Analyses page, or open a database that holds one",
                      module);
        return;
    }
    PlanJob *x = g_new0(PlanJob, 1);
    x->db_path = g_strdup(wb->db_path);
    x->run = wb->run;
    snprintf(x->module, sizeof x->module, "%s", module);
    wb_job_start(wb, "load plan", plan_run, plan_done, NULL, x, plan_free);
}

static void plan_btn_cb(GtkButton *b, gpointer user)
{
    wb_iv_load_plan(user, g_object_get_data(G_OBJECT(b), "module"));
}

/* ---------------------------------------------------------------- apply */

typedef struct {
    IvPage *p;
    int gen;
    WbApplyRequest rq;
    WbModel *model;
    WbApplyFig *fig;
    char *text_base, *text_run;
    double dt;
} ApplyJob;

static void apply_free(gpointer d)
{
    ApplyJob *x = d;
    wb_apply_request_clear(&x->rq);
    wb_model_unref(x->model);
    wb_apply_fig_free(x->fig);
    free(x->text_base);
    free(x->text_run);
    g_free(x);
}

static int apply_run(WbJob *j, gpointer d, MsError *err)
{
    ApplyJob *x = d;
    double t0 = wb_now();
    MsPromptCompare c;
    int rc = wb_apply_run(&x->rq, x->model->m, &j->cancel, &c, err);
    if (rc == 0) rc = wb_apply_fig_build(&c, x->model->m, &x->fig, err);
    if (rc == 0) {
        x->text_base = strdup(c.text_baseline ? c.text_baseline : "");
        x->text_run = strdup(c.text_run ? c.text_run : "");
    }
    ms_prompt_compare_clear(&c);
    x->dt = wb_now() - t0;
    return rc;
}

static void set_markup(GtkWidget *label, const char *markup, const char *plain)
{
    gtk_label_set_markup(GTK_LABEL(label), markup ? markup : "");
    const char *name = g_object_get_data(G_OBJECT(label), "wb-name");
    if (name) gtk_accessible_update_property(GTK_ACCESSIBLE(label), GTK_ACCESSIBLE_PROPERTY_LABEL, name, -1);
    gtk_accessible_update_property(GTK_ACCESSIBLE(label), GTK_ACCESSIBLE_PROPERTY_DESCRIPTION, plain ? plain : "", -1);
}

static void apply_done(Wb *wb, WbJob *j, int rc, const MsError *err, gpointer d)
{
    ApplyJob *x = d;
    IvPage *p = x->p;
    if (p->apply_job == j) p->apply_job = NULL;
    if (x->gen != p->apply_gen) return;
    gtk_widget_set_sensitive(p->apply_btn, TRUE);
    if (rc < 0) {
        if (rc != MS_ECANCELLED) wb_show_error(wb, "Apply: %s", err->msg);
        wb_label_set(p->summary, rc == MS_ECANCELLED ? "Apply cancelled" : "Apply failed");
        return;
    }
    wb_apply_fig_free(p->fig);
    p->fig = x->fig;
    x->fig = NULL;
    p->kl_hover = p->shift_hover_l = p->shift_hover_p = -1;
    char s[700], sum[600];
    wb_apply_summary(p->fig, sum, sizeof sum);
    char *iv = ms_intervention_to_string(x->rq.iv);
    snprintf(s, sizeof s, "Prompt #%d with “%s”, %d tokens generated, in %.2f s: %s", x->rq.prompt,
             iv && *iv ? iv : "no intervention", x->rq.opts.n_gen, x->dt, sum);
    free(iv);
    wb_label_set(p->summary, s);
    char *mb = wb_diff_markup(x->text_base, x->text_run, 0, NULL), *mr = wb_diff_markup(x->text_base, x->text_run, 1, NULL);
    set_markup(p->base_label, mb, x->text_base);
    set_markup(p->run_label, mr, x->text_run);
    free(mb);
    free(mr);
    gtk_widget_queue_draw(p->kl_area);
    gtk_widget_queue_draw(p->shift_area);
    wb_status(wb, "Apply took %.2f s", x->dt);
}

void wb_iv_apply(IvPage *p)
{
    Wb *wb = p->wb;
    if (!wb->model || !wb->grid) {
        wb_show_error(wb, "Apply: open a model first");
        return;
    }
    size_t len = 0;
    const char *t = wb_prompt_text(wb, wb->cur_prompt, &len);
    ApplyJob *x = g_new0(ApplyJob, 1);
    MsError err = { 0 };
    if (wb_apply_request(&x->rq, wb->grid, t ? wb->cur_prompt : -1, t, len, wb_iv_gen_tokens(p), &err) < 0) {
        wb_show_error(wb, "%s", err.msg);
        g_free(x);
        return;
    }
    if (p->apply_job) wb_job_cancel(p->apply_job);
    x->p = p;
    x->gen = ++p->apply_gen;
    x->model = wb_model_ref(wb->model);
    wb_label_set(p->summary, "Applying…");
    p->apply_job = wb_job_start(wb, "apply", apply_run, apply_done, NULL, x, apply_free);
}

static void apply_btn_cb(GtkButton *b, gpointer user) { wb_iv_apply(user); }
static void run_all_btn_cb(GtkButton *b, gpointer user)
{
    gtk_widget_activate_action(GTK_WIDGET(((IvPage *)user)->wb->win), "win.run-all", NULL);
}

/* ---------------------------------------------------- run on all prompts */

typedef struct {
    WbModel *model;
    WbPromptSet *set;
    MsIntervention *iv;
    char *db_path;
    int n_gen;
    MsExperimentResult res;
} ExpJob;

static void exp_free(gpointer d)
{
    ExpJob *x = d;
    wb_model_unref(x->model);
    wb_prompt_set_unref(x->set);
    ms_intervention_free(x->iv);
    g_free(x->db_path);
    g_free(x);
}

static int exp_run(WbJob *j, gpointer d, MsError *err)
{
    ExpJob *x = d;
    MsTraceDb *db = ms_trace_open(x->db_path, MS_TRACE_CREATE, err);
    if (!db) return err->code ? err->code : MS_EDB;
    MsExperimentJob ej;
    ms_experiment_job_init(&ej);
    ej.prompts_name = x->set->name;
    ej.n_gen = x->n_gen;
    ej.iv = x->iv;
    ej.progress = wb_job_report;
    ej.progress_user = j;
    ej.cancel = &j->cancel;
    int rc = ms_experiment_job_run(&ej, x->model->m, x->model->path, x->set->p, x->set->n, db, &x->res, err);
    ms_trace_close(db);
    return rc;
}

static void exp_progress(Wb *wb, WbJob *j, const MsProgress *pr, gpointer d)
{
    wb_progress_show(wb, "Experiment", "prompts", pr);
}

static void exp_done(Wb *wb, WbJob *j, int rc, const MsError *err, gpointer d)
{
    ExpJob *x = d;
    wb->follow_newest = FALSE;
    if (rc == MS_ECANCELLED) {
        wb_status(wb, "Experiment cancelled after %zu of %zu prompts (stopped %.2f s after Cancel); the committed prompts are kept",
                  x->res.n_written, x->res.n_prompts, j->t_end - j->t_cancel);
    } else if (rc < 0) {
        wb_show_error(wb, "Experiment: %s", err->msg);
    } else {
        wb_status(wb, "Experiment stored: baseline run %lld, intervened run %lld, %zu prompts in %.1f s",
                  (long long)x->res.baseline_run, (long long)x->res.run, x->res.n_written, x->res.wall_s);
    }
    if (x->res.run > 0) wb->run = x->res.run;
    wb_data_changed(wb, TRUE);
}

void wb_iv_run_all(IvPage *p)
{
    Wb *wb = p->wb;
    if (!wb_ready_to_store(wb, "Run on all prompts", "an experiment")) return;
    ExpJob *x = g_new0(ExpJob, 1);
    x->model = wb_model_ref(wb->model);
    x->set = wb_prompt_set_ref(wb->prompts);
    x->iv = ms_intervention_copy(wb_grid_intervention(wb->grid));
    x->db_path = g_strdup(wb->db_path);
    x->n_gen = wb_iv_gen_tokens(p);
    WbJob *j = wb_job_start(wb, "experiment", exp_run, exp_done, exp_progress, x, exp_free);
    if (!wb_long_job_begin(wb, j)) return;
    wb->follow_newest = TRUE;
}

/* -------------------------------------------------------- result figures */

static void kl_draw_cb(GtkDrawingArea *a, cairo_t *cr, int w, int h, gpointer user)
{
    IvPage *p = user;
    MsError err = { 0 };
    if (!p->fig || wb_apply_draw_kl(cr, w, h, p->fig, p->kl_hover, &err) < 0) {
        cairo_set_source_rgb(cr, 0.98, 0.98, 0.985);
        cairo_paint(cr);
    }
}

static void shift_draw_cb(GtkDrawingArea *a, cairo_t *cr, int w, int h, gpointer user)
{
    IvPage *p = user;
    MsError err = { 0 };
    if (!p->fig || wb_apply_draw_shift(cr, w, h, p->fig, p->shift_hover_l, p->shift_hover_p, &err) < 0) {
        cairo_set_source_rgb(cr, 0.98, 0.98, 0.985);
        cairo_paint(cr);
    }
}

static void kl_motion_cb(GtkEventControllerMotion *c, double x, double y, gpointer user)
{
    IvPage *p = user;
    if (!p->fig) return;
    int pos = -1;
    char t[600];
    GtkWidget *a = p->kl_area;
    if (!wb_apply_hit_kl(p->fig, gtk_widget_get_width(a), gtk_widget_get_height(a), x, y, &pos, t, sizeof t)) pos = -1;
    if (pos == p->kl_hover) return;
    p->kl_hover = pos;
    gtk_widget_set_tooltip_text(a, pos >= 0 ? t : NULL);
    wb_hover_text(p->wb, pos >= 0 ? t : NULL);
    gtk_widget_queue_draw(a);
}

static void shift_motion_cb(GtkEventControllerMotion *c, double x, double y, gpointer user)
{
    IvPage *p = user;
    if (!p->fig) return;
    int l = -1, pos = -1;
    char t[600];
    GtkWidget *a = p->shift_area;
    if (!wb_apply_hit_shift(p->fig, gtk_widget_get_width(a), gtk_widget_get_height(a), x, y, &l, &pos, t, sizeof t))
        l = pos = -1;
    if (l == p->shift_hover_l && pos == p->shift_hover_p) return;
    p->shift_hover_l = l;
    p->shift_hover_p = pos;
    gtk_widget_set_tooltip_text(a, l >= 0 ? t : NULL);
    wb_hover_text(p->wb, l >= 0 ? t : NULL);
    gtk_widget_queue_draw(a);
}

/* ---------------------------------------------------------------- build */

/* A button named by its visible label; tip says more. */
static GtkWidget *button(const char *label, const char *tip, GCallback cb, gpointer user)
{
    GtkWidget *b = wb_mnemonic_button(label);
    if (tip) gtk_widget_set_tooltip_text(b, tip);
    g_signal_connect(b, "clicked", cb, user);
    return b;
}

typedef void (*MotionFn)(GtkEventControllerMotion *, double, double, gpointer);

/* Leaving an area is a motion to a point no figure holds: its hover ends. */
static void area_leave_cb(GtkEventControllerMotion *c, gpointer user)
{
    MotionFn motion = (MotionFn)g_object_get_data(G_OBJECT(c), "ms-motion");
    if (motion) motion(c, -1e6, -1e6, user);
}

static void add_motion(GtkWidget *a, MotionFn motion, gpointer user)
{
    GtkEventController *m = gtk_event_controller_motion_new();
    g_object_set_data(G_OBJECT(m), "ms-motion", (gpointer)motion);
    g_signal_connect(m, "motion", G_CALLBACK(motion), user);
    g_signal_connect(m, "leave", G_CALLBACK(area_leave_cb), user);
    gtk_widget_add_controller(a, m);
}

static GtkWidget *figure_area(const char *name, const char *desc, int height, GtkDrawingAreaDrawFunc draw,
                              MotionFn motion, gpointer user)
{
    GtkWidget *a = g_object_new(GTK_TYPE_DRAWING_AREA, "accessible-role", GTK_ACCESSIBLE_ROLE_IMG, NULL);
    gtk_accessible_update_property(GTK_ACCESSIBLE(a), GTK_ACCESSIBLE_PROPERTY_LABEL, name,
                                   GTK_ACCESSIBLE_PROPERTY_DESCRIPTION, desc, -1);
    gtk_widget_set_size_request(a, -1, height);
    gtk_widget_set_hexpand(a, TRUE);
    gtk_drawing_area_set_draw_func(GTK_DRAWING_AREA(a), draw, user, NULL);
    add_motion(a, motion, user);
    return a;
}

static GtkWidget *text_column(const char *title, GtkWidget **label, const char *name)
{
    GtkWidget *box = gtk_box_new(GTK_ORIENTATION_VERTICAL, 4);
    GtkWidget *h = gtk_label_new(title);
    gtk_widget_add_css_class(h, "heading");
    gtk_label_set_xalign(GTK_LABEL(h), 0);
    gtk_box_append(GTK_BOX(box), h);
    *label = gtk_label_new("");
    gtk_label_set_wrap(GTK_LABEL(*label), TRUE);
    gtk_label_set_wrap_mode(GTK_LABEL(*label), PANGO_WRAP_WORD_CHAR);
    gtk_label_set_xalign(GTK_LABEL(*label), 0);
    gtk_label_set_yalign(GTK_LABEL(*label), 0);
    gtk_label_set_selectable(GTK_LABEL(*label), TRUE);
    gtk_widget_add_css_class(*label, "continuation");
    gtk_widget_set_size_request(*label, -1, 60);
    wb_labelled(*label, name);
    gtk_box_append(GTK_BOX(box), *label);
    gtk_widget_set_hexpand(box, TRUE);
    return box;
}

IvPage *wb_iv_page_new(Wb *wb)
{
    IvPage *p = g_new0(IvPage, 1);
    p->wb = wb;
    wb_grid_marks_init(&p->marks);
    p->kl_hover = p->shift_hover_l = p->shift_hover_p = -1;
    p->stack = gtk_stack_new();
    GtkWidget *empty = adw_status_page_new();
    adw_status_page_set_title(ADW_STATUS_PAGE(empty), "No model");
    adw_status_page_set_description(ADW_STATUS_PAGE(empty),
                                    "Open a model (Ctrl+O) to silence, force or steer its experts and see what changes.");
    adw_status_page_set_icon_name(ADW_STATUS_PAGE(empty), "applications-science-symbolic");
    gtk_stack_add_named(GTK_STACK(p->stack), empty, "empty");

    GtkWidget *v = gtk_box_new(GTK_ORIENTATION_VERTICAL, 8);
    gtk_widget_set_margin_start(v, 10);
    gtk_widget_set_margin_end(v, 10);
    gtk_widget_set_margin_top(v, 8);
    gtk_widget_set_margin_bottom(v, 8);

    /* toolbar: set management, then plans; the two groups wrap onto two
     * lines when the page is narrow rather than run off its right edge */
    GtkWidget *bar = g_object_new(GTK_TYPE_FLOW_BOX, "accessible-role", GTK_ACCESSIBLE_ROLE_GROUP, NULL);
    gtk_flow_box_set_selection_mode(GTK_FLOW_BOX(bar), GTK_SELECTION_NONE);
    gtk_flow_box_set_max_children_per_line(GTK_FLOW_BOX(bar), 2);
    gtk_flow_box_set_column_spacing(GTK_FLOW_BOX(bar), 18);
    gtk_flow_box_set_row_spacing(GTK_FLOW_BOX(bar), 6);
    gtk_widget_set_halign(bar, GTK_ALIGN_START);
    GtkWidget *setg = gtk_box_new(GTK_ORIENTATION_HORIZONTAL, 6);
    gtk_box_append(GTK_BOX(setg), button("Clear all", "Clear the intervention set", G_CALLBACK(clear_cb), p));
    gtk_box_append(GTK_BOX(setg), button("Load set…", "Load an intervention set from a file", G_CALLBACK(load_set_cb), p));
    gtk_box_append(GTK_BOX(setg), button("Save set…", "Save the intervention set to a file", G_CALLBACK(save_set_cb), p));
    gtk_flow_box_append(GTK_FLOW_BOX(bar), setg);
    GtkWidget *plang = gtk_box_new(GTK_ORIENTATION_HORIZONTAL, 6);
    GtkWidget *pl = gtk_label_new("Load plan:");
    gtk_widget_add_css_class(pl, "dim-label");
    gtk_box_append(GTK_BOX(plang), pl);
    static const char *const plans[][2] = { { "npmi", "nPMI" }, { "riskdiff", "Risk difference" },
                                            { "crosslingual", "Cross-lingual" } };
    for (int i = 0; i < 3; i++) {
        char name[96];
        snprintf(name, sizeof name, "Load the %s plan into the grid", plans[i][1]);
        GtkWidget *b = button(plans[i][1], name, G_CALLBACK(plan_btn_cb), p);
        g_object_set_data(G_OBJECT(b), "module", (gpointer)plans[i][0]);
        gtk_box_append(GTK_BOX(plang), b);
    }
    gtk_flow_box_append(GTK_FLOW_BOX(bar), plang);
    /* Tab goes to the buttons, not to the flow box's child slots */
    gtk_widget_set_focusable(gtk_widget_get_parent(setg), FALSE);
    gtk_widget_set_focusable(gtk_widget_get_parent(plang), FALSE);
    gtk_box_append(GTK_BOX(v), bar);

    p->set_label = wb_labelled(gtk_label_new(""), "Intervention set");
    gtk_label_set_xalign(GTK_LABEL(p->set_label), 0);
    gtk_label_set_wrap(GTK_LABEL(p->set_label), TRUE);
    gtk_label_set_selectable(GTK_LABEL(p->set_label), TRUE);
    gtk_widget_add_css_class(p->set_label, "monospace");
    gtk_box_append(GTK_BOX(v), p->set_label);

    /* the grid and its legend */
    p->grid_area = g_object_new(GTK_TYPE_DRAWING_AREA, "accessible-role", GTK_ACCESSIBLE_ROLE_IMG, NULL);
    gtk_accessible_update_property(GTK_ACCESSIBLE(p->grid_area), GTK_ACCESSIBLE_PROPERTY_LABEL, "Intervention grid",
                                   GTK_ACCESSIBLE_PROPERTY_DESCRIPTION,
                                   "Layers by experts; a click cycles an expert through silence, force and none", -1);
    gtk_widget_set_focusable(p->grid_area, TRUE);
    gtk_drawing_area_set_draw_func(GTK_DRAWING_AREA(p->grid_area), grid_draw_cb, p, NULL);
    GtkGesture *click = gtk_gesture_click_new();
    g_signal_connect(click, "pressed", G_CALLBACK(grid_click_cb), p);
    gtk_widget_add_controller(p->grid_area, GTK_EVENT_CONTROLLER(click));
    add_motion(p->grid_area, grid_motion_cb, p);
    GtkEventController *k = gtk_event_controller_key_new();
    g_signal_connect(k, "key-pressed", G_CALLBACK(grid_key_cb), p);
    gtk_widget_add_controller(p->grid_area, k);
    p->grid_scroll = gtk_scrolled_window_new();
    gtk_scrolled_window_set_propagate_natural_height(GTK_SCROLLED_WINDOW(p->grid_scroll), TRUE);
    gtk_scrolled_window_set_child(GTK_SCROLLED_WINDOW(p->grid_scroll), p->grid_area);
    gtk_widget_set_halign(p->grid_area, GTK_ALIGN_START);
    gtk_box_append(GTK_BOX(v), p->grid_scroll);
    GtkWidget *legend = gtk_label_new("Click: none → silence (✕) → force (●) → none · blue/red fill: steered down/up · "
                                      "purple corner: another operator from a plan · orange outline: the selected expert");
    gtk_widget_add_css_class(legend, "dim-label");
    gtk_label_set_xalign(GTK_LABEL(legend), 0);
    gtk_label_set_wrap(GTK_LABEL(legend), TRUE);
    gtk_box_append(GTK_BOX(v), legend);

    /* the cell editor: what the cell is and its layer's top-k, then its mode and steer */
    GtkWidget *ed = gtk_box_new(GTK_ORIENTATION_HORIZONTAL, 8);
    p->cell_label = gtk_label_new("");
    gtk_label_set_xalign(GTK_LABEL(p->cell_label), 0);
    gtk_label_set_ellipsize(GTK_LABEL(p->cell_label), PANGO_ELLIPSIZE_END);
    gtk_widget_set_hexpand(p->cell_label, TRUE);
    gtk_widget_add_css_class(p->cell_label, "heading");
    wb_labelled(p->cell_label, "Selected cell");
    gtk_box_append(GTK_BOX(ed), p->cell_label);
    p->topk_label = gtk_label_new("Layer top-k");
    gtk_widget_add_css_class(p->topk_label, "dim-label");
    gtk_box_append(GTK_BOX(ed), p->topk_label);
    p->topk_spin = gtk_spin_button_new_with_range(0, 1, 1);
    wb_spin_word(p->topk_spin, "auto");   /* 0: the model's own k */
    wb_labelled(p->topk_spin, "Top-k of the selected layer (auto = the model's)");
    g_signal_connect(p->topk_spin, "value-changed", G_CALLBACK(topk_cb), p);
    gtk_box_append(GTK_BOX(ed), p->topk_spin);
    gtk_box_append(GTK_BOX(v), ed);
    GtkWidget *ed2 = gtk_box_new(GTK_ORIENTATION_HORIZONTAL, 8);
    GtkWidget *mb = gtk_box_new(GTK_ORIENTATION_HORIZONTAL, 0);
    gtk_widget_add_css_class(mb, "linked");
    static const char *const modes[3] = { "None", "Silence", "Force" };
    for (int i = 0; i < 3; i++) {
        p->mode_btn[i] = gtk_toggle_button_new_with_label(modes[i]);
        char name[64];
        snprintf(name, sizeof name, "Selected cell: %s", modes[i]);
        wb_labelled(p->mode_btn[i], name);
        if (i) gtk_toggle_button_set_group(GTK_TOGGLE_BUTTON(p->mode_btn[i]), GTK_TOGGLE_BUTTON(p->mode_btn[0]));
        g_signal_connect(p->mode_btn[i], "toggled", G_CALLBACK(mode_cb), p);
        gtk_box_append(GTK_BOX(mb), p->mode_btn[i]);
    }
    gtk_box_append(GTK_BOX(ed2), mb);
    GtkWidget *sl = gtk_label_new("Steer");
    gtk_widget_set_tooltip_text(sl, "Router-logit bias added to the selected expert");
    gtk_widget_add_css_class(sl, "dim-label");
    gtk_widget_set_margin_start(sl, 12);
    gtk_box_append(GTK_BOX(ed2), sl);
    p->steer = gtk_scale_new_with_range(GTK_ORIENTATION_HORIZONTAL, -WB_STEER_MAX, WB_STEER_MAX, 0.1);
    gtk_scale_add_mark(GTK_SCALE(p->steer), 0, GTK_POS_BOTTOM, NULL);
    gtk_widget_set_hexpand(p->steer, TRUE);
    gtk_widget_set_tooltip_text(p->steer, "Router-logit bias added to the selected expert (0 = none)");
    wb_labelled(p->steer, "Steer the selected expert (router-logit bias)");
    g_signal_connect(p->steer, "value-changed", G_CALLBACK(steer_cb), p);
    gtk_box_append(GTK_BOX(ed2), p->steer);
    p->steer_label = gtk_label_new("+0.00");
    gtk_label_set_width_chars(GTK_LABEL(p->steer_label), 6);
    wb_labelled(p->steer_label, "Steer value");
    gtk_box_append(GTK_BOX(ed2), p->steer_label);
    gtk_box_append(GTK_BOX(v), ed2);

    gtk_box_append(GTK_BOX(v), gtk_separator_new(GTK_ORIENTATION_HORIZONTAL));

    /* apply */
    GtkWidget *ar = gtk_box_new(GTK_ORIENTATION_HORIZONTAL, 8);
    p->prompt_label = wb_labelled(gtk_label_new(""), "Apply prompt");
    gtk_label_set_xalign(GTK_LABEL(p->prompt_label), 0);
    gtk_label_set_ellipsize(GTK_LABEL(p->prompt_label), PANGO_ELLIPSIZE_END);
    gtk_widget_set_hexpand(p->prompt_label, TRUE);
    gtk_box_append(GTK_BOX(ar), p->prompt_label);
    GtkWidget *gl = gtk_label_new("Tokens to generate");
    gtk_widget_add_css_class(gl, "dim-label");
    gtk_box_append(GTK_BOX(ar), gl);
    p->gen_spin = gtk_spin_button_new_with_range(1, WB_APPLY_MAX_GEN, 1);
    gtk_spin_button_set_value(GTK_SPIN_BUTTON(p->gen_spin), 24);
    wb_labelled(p->gen_spin, "Tokens to generate after the prompt");
    gtk_box_append(GTK_BOX(ar), p->gen_spin);
    p->apply_btn = button("_Apply", "Apply: the selected prompt, baseline vs intervened", G_CALLBACK(apply_btn_cb), p);
    gtk_widget_add_css_class(p->apply_btn, "suggested-action");
    gtk_box_append(GTK_BOX(ar), p->apply_btn);
    p->run_all_btn = button("Run on all prompts", "Run on all prompts: store a full experiment in the database",
                            G_CALLBACK(run_all_btn_cb), p);
    gtk_box_append(GTK_BOX(ar), p->run_all_btn);
    gtk_box_append(GTK_BOX(v), ar);

    p->summary = wb_labelled(gtk_label_new("Apply runs the selected prompt with and without the set and shows what changed."), "Apply result");
    gtk_label_set_xalign(GTK_LABEL(p->summary), 0);
    gtk_label_set_wrap(GTK_LABEL(p->summary), TRUE);
    gtk_label_set_selectable(GTK_LABEL(p->summary), TRUE);
    gtk_box_append(GTK_BOX(v), p->summary);
    GtkWidget *cols = gtk_box_new(GTK_ORIENTATION_HORIZONTAL, 16);
    gtk_box_set_homogeneous(GTK_BOX(cols), TRUE);
    gtk_box_append(GTK_BOX(cols), text_column("Baseline continuation", &p->base_label, "Baseline continuation"));
    gtk_box_append(GTK_BOX(cols), text_column("Intervened continuation", &p->run_label, "Intervened continuation"));
    gtk_box_append(GTK_BOX(v), cols);
    p->kl_area = figure_area("Per-token KL strip", "KL(baseline ‖ intervened) of the next-token distribution per position",
                             150, kl_draw_cb, kl_motion_cb, p);
    gtk_box_append(GTK_BOX(v), p->kl_area);
    p->shift_area = figure_area("Routing shift", "Per layer and position: 1 − Jaccard of the selected experts", 170,
                                shift_draw_cb, shift_motion_cb, p);
    gtk_box_append(GTK_BOX(v), p->shift_area);

    GtkWidget *scroll = gtk_scrolled_window_new();
    gtk_scrolled_window_set_policy(GTK_SCROLLED_WINDOW(scroll), GTK_POLICY_NEVER, GTK_POLICY_AUTOMATIC);
    gtk_scrolled_window_set_child(GTK_SCROLLED_WINDOW(scroll), v);
    gtk_stack_add_named(GTK_STACK(p->stack), scroll, "panel");
    gtk_stack_set_visible_child_name(GTK_STACK(p->stack), "empty");
    p->box = p->stack;
    return p;
}

void wb_iv_page_free(IvPage *p)
{
    if (!p) return;
    wb_apply_fig_free(p->fig);
    g_free(p);
}
