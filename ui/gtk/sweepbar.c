/* sweepbar.c — Run sweep, on the Sweep page: choose what to silence one set
 * at a time (each expert of some layers, the stored super experts, or the
 * strongest experts of a stored risk-difference or nPMI analysis, the
 * latter for one of its classes) and how many random controls to draw,
 * then run it on a worker over the open prompt set into the open database;
 * the Sweep view then shows it.  The work is the jobs library's, the same
 * calls `moescope sweep` makes:
 *   moescope sweep MODEL --prompts FILE --silence-each LAYERS
 *                  --random-controls N --db DB   (or --from-analysis A) */
#include "wb-gtk.h"

typedef struct {
    Wb *wb;
    GtkWidget *box, *mode_dd, *layers_entry, *class_dd, *top_box, *top_spin, *controls_spin, *run_btn;
    GtkStringList *classes;   /* the class drop-down's model: the stored nPMI classes */
} SweepBar;

/* the drop-down's items, in order, and the --from-analysis each names
 * (nPMI's gets ":CLASS") */
static const char *const mode_items[] = { "each expert of layers", "each super expert",
                                          "strongest by risk difference", "strongest by nPMI for a class", NULL };
static const char *const mode_from[] = { NULL, "superexperts", "riskdiff", "npmi" };
enum { MODE_LAYERS = 0, MODE_SUPER = 1, MODE_RISKDIFF = 2, MODE_NPMI = 3 };

typedef struct {
    WbModel *model;
    WbPromptSet *set;
    char *db_path;
    int layers[MS_TRACE_MAX_LAYER], n_layers;   /* parsed on the main thread; n_layers < 0: none */
    char *from;
    int top;   /* --top: 0 = the analysis's default */
    int controls;
    MsSweepResult res;
    MsSweepSet sweep;
    size_t n_prompts;
} SweepJob;

static void sweep_free(gpointer d)
{
    SweepJob *x = d;
    ms_sweep_result_clear(&x->res);
    ms_sweep_set_clear(&x->sweep);
    wb_model_unref(x->model);
    wb_prompt_set_unref(x->set);
    g_free(x->db_path);
    g_free(x->from);
    g_free(x);
}

static int sweep_run(WbJob *j, gpointer d, MsError *err)
{
    SweepJob *x = d;
    MsTraceDb *db = ms_trace_open(x->db_path, MS_TRACE_CREATE, err);
    if (!db) return err->code ? err->code : MS_EDB;
    const MsSweepSpec spec = { .layers = x->n_layers >= 0 ? x->layers : NULL, .n_layers = x->n_layers,
                               .from = x->from, .top = x->top, .controls = x->controls };
    int rc = ms_sweep_set_build(&x->sweep, x->model->m, db, &spec, err);
    if (rc == 0) {
        MsSweepJob sj;
        ms_sweep_job_init(&sj);
        sj.prompts_name = x->set->name;
        sj.progress = wb_job_report;
        sj.progress_user = j;
        sj.cancel = &j->cancel;
        rc = ms_sweep_job_run(&sj, x->model->m, x->model->path, x->set->p, x->set->n, &x->sweep, db, &x->res, err);
    }
    ms_trace_close(db);
    return rc;
}

static void sweep_progress(Wb *wb, WbJob *j, const MsProgress *pr, gpointer d)
{
    wb_progress_show(wb, "Sweep", "set × prompt runs", pr);
}

static void sweep_done(Wb *wb, WbJob *j, int rc, const MsError *err, gpointer d)
{
    SweepJob *x = d;
    if (rc == MS_ECANCELLED) {
        wb_status(wb, "Sweep cancelled (stopped %.2f s after Cancel); nothing stored", j->t_end - j->t_cancel);
        return;
    }
    if (rc < 0) {
        wb_show_error(wb, "Sweep: %s", err->msg);
        return;
    }
    /* which class an nPMI sweep was of */
    char *of = x->from && !strncmp(x->from, "npmi:", 5) ? g_strdup_printf(" (nPMI class %s)", x->from + 5) : g_strdup("");
    const MsSweepRow *best = NULL;
    for (int i = 0; i < x->res.n_rows; i++)
        if (x->res.rows[i].rank == 1) best = &x->res.rows[i];
    if (best)
        wb_status(wb, "Sweep %lld%s stored: %d sets × %zu prompts in %.1f s; the strongest: %s (mean KL %.4g)",
                  (long long)x->res.sweep_id, of, x->res.n_rows, x->n_prompts, x->res.wall_s, best->label, best->kl_mean);
    else
        wb_status(wb, "Sweep %lld%s stored: %d sets × %zu prompts in %.1f s", (long long)x->res.sweep_id, of,
                  x->res.n_rows, x->n_prompts, x->res.wall_s);
    g_free(of);
    /* the Sweep view shows the newest sweep: draw it again */
    for (guint i = 0; wb->pages && i < wb->pages->len; i++) {
        ViewPage *vp = g_ptr_array_index(wb->pages, i);
        if (!strcmp(wb_view_page_class(vp)->name, "sweep")) wb_view_page_invalidate(vp, FALSE);
    }
}

/* The classes of the stored nPMI analysis, read again (an analysis may have
 * been run since); the chosen one stays chosen when it is still there.
 * Returns how many there are. */
static guint classes_refresh(SweepBar *s)
{
    Wb *wb = s->wb;
    char *keep = NULL;
    GObject *it = gtk_drop_down_get_selected_item(GTK_DROP_DOWN(s->class_dd));
    if (it) keep = g_strdup(gtk_string_object_get_string(GTK_STRING_OBJECT(it)));
    char **cl = NULL;
    int n = 0;
    if (wb->db_path) {
        MsError err = { 0 };
        MsTraceDb *db = ms_trace_open(wb->db_path, MS_TRACE_READ, &err);
        if (db) ms_sweep_npmi_classes(db, &cl, &n, &err);   /* an error reads as no class */
        ms_trace_close(db);
    }
    /* the model stays the drop-down's: its items are replaced */
    const char **v = g_new0(const char *, n + 1);
    guint sel = 0;
    for (int i = 0; i < n; i++) {
        v[i] = cl[i];
        if (keep && !strcmp(cl[i], keep)) sel = (guint)i;
    }
    gtk_string_list_splice(s->classes, 0, g_list_model_get_n_items(G_LIST_MODEL(s->classes)), v);
    g_free(v);
    for (int i = 0; i < n; i++) free(cl[i]);
    free(cl);
    gtk_drop_down_set_selected(GTK_DROP_DOWN(s->class_dd), sel);
    g_free(keep);
    return (guint)n;
}

static void run_cb(GtkButton *b, gpointer user)
{
    SweepBar *s = user;
    Wb *wb = s->wb;
    if (!wb_ready_to_store(wb, "Run sweep", "the sweep")) return;
    guint mode = gtk_drop_down_get_selected(GTK_DROP_DOWN(s->mode_dd));
    if (mode >= G_N_ELEMENTS(mode_from)) mode = 0;
    SweepJob *x = g_new0(SweepJob, 1);
    x->n_layers = -1;
    if (mode == MODE_LAYERS) {
        /* parsed here, so a bad list is said at once, before a worker starts */
        char *each = g_strstrip(g_strdup(gtk_editable_get_text(GTK_EDITABLE(s->layers_entry))));
        MsError err = { 0 };
        int rc = ms_sweep_parse_layers(wb->model->m, each, x->layers, &x->n_layers, &err);
        g_free(each);
        if (rc < 0) {
            wb_show_error(wb, "Run sweep: layers: %s", err.msg);
            g_free(x);
            return;
        }
    }
    x->model = wb_model_ref(wb->model);
    x->set = wb_prompt_set_ref(wb->prompts);
    x->n_prompts = wb->prompts->n;
    x->db_path = g_strdup(wb->db_path);
    if (mode == MODE_NPMI) {
        classes_refresh(s);
        GObject *it = gtk_drop_down_get_selected_item(GTK_DROP_DOWN(s->class_dd));
        if (!it) {
            wb_show_error(wb, "Run sweep: the open database holds no nPMI analysis: run npmi on the Analyses "
                              "page first (moescope analyze npmi --by … --db DB)");
            sweep_free(x);
            return;
        }
        x->from = g_strdup_printf("npmi:%s", gtk_string_object_get_string(GTK_STRING_OBJECT(it)));
    } else {
        x->from = g_strdup(mode_from[mode]);
    }
    if (mode == MODE_RISKDIFF || mode == MODE_NPMI) x->top = gtk_spin_button_get_value_as_int(GTK_SPIN_BUTTON(s->top_spin));
    x->controls = gtk_spin_button_get_value_as_int(GTK_SPIN_BUTTON(s->controls_spin));
    WbJob *j = wb_job_start(wb, "sweep", sweep_run, sweep_done, sweep_progress, x, sweep_free);
    wb_long_job_begin(wb, j);
}

static void mode_cb(GObject *o, GParamSpec *ps, gpointer user)
{
    SweepBar *s = user;
    guint mode = gtk_drop_down_get_selected(GTK_DROP_DOWN(s->mode_dd));
    gtk_widget_set_visible(s->layers_entry, mode == MODE_LAYERS);
    gtk_widget_set_visible(s->class_dd, mode == MODE_NPMI);
    gtk_widget_set_visible(s->top_box, mode == MODE_RISKDIFF || mode == MODE_NPMI);
    if (mode == MODE_NPMI && !classes_refresh(s))
        wb_status(s->wb, "No nPMI analysis is stored yet: run npmi on the Analyses page, then choose its class here");
}

/* an analysis run meanwhile may have stored classes: read them when the
 * page is shown again */
static void map_cb(GtkWidget *w, gpointer user)
{
    SweepBar *s = user;
    if (gtk_drop_down_get_selected(GTK_DROP_DOWN(s->mode_dd)) == MODE_NPMI) classes_refresh(s);
}

GtkWidget *wb_sweep_bar_new(Wb *wb)
{
    SweepBar *s = g_new0(SweepBar, 1);
    s->wb = wb;
    /* two rows, so the whole bar fits beside the page list at the
     * window's default width: what to silence, then how to run it */
    s->box = gtk_box_new(GTK_ORIENTATION_VERTICAL, 6);
    g_object_set_data_full(G_OBJECT(s->box), "sweep-bar", s, g_free);
    GtkWidget *row1 = gtk_box_new(GTK_ORIENTATION_HORIZONTAL, 6), *row2 = gtk_box_new(GTK_ORIENTATION_HORIZONTAL, 6);
    gtk_box_append(GTK_BOX(s->box), row1);
    gtk_box_append(GTK_BOX(s->box), row2);

    gtk_box_append(GTK_BOX(row1), wb_caption("Silence"));
    s->mode_dd = gtk_drop_down_new_from_strings((const char *const *)mode_items);
    gtk_widget_set_tooltip_text(s->mode_dd, "The candidate sets, silenced one at a time against one baseline per prompt "
                                            "(--silence-each); the last three read the analyses stored in the open database "
                                            "(--from-analysis superexperts / riskdiff / npmi:CLASS)");
    gtk_box_append(GTK_BOX(row1), wb_labelled(s->mode_dd, "Sweep candidates"));
    g_signal_connect(s->mode_dd, "notify::selected", G_CALLBACK(mode_cb), s);

    s->layers_entry = gtk_entry_new();
    gtk_editable_set_text(GTK_EDITABLE(s->layers_entry), "*");
    gtk_editable_set_width_chars(GTK_EDITABLE(s->layers_entry), 6);
    gtk_widget_set_tooltip_text(s->layers_entry, "1, 0,2, 1-3 or * (every layer with experts)");
    gtk_box_append(GTK_BOX(row1), wb_labelled(s->layers_entry, "Sweep layers"));

    s->classes = gtk_string_list_new(NULL);
    /* takes the model and the expression that shows each item's string */
    s->class_dd = gtk_drop_down_new(G_LIST_MODEL(s->classes),
                                    gtk_property_expression_new(GTK_TYPE_STRING_OBJECT, NULL, "string"));
    gtk_widget_set_tooltip_text(s->class_dd, "The class whose strongest experts by stored nPMI are silenced, each "
                                             "alone and then all together (--from-analysis npmi:CLASS)");
    gtk_widget_set_visible(s->class_dd, FALSE);
    gtk_box_append(GTK_BOX(row1), wb_labelled(s->class_dd, "Sweep nPMI class"));
    g_signal_connect(s->box, "map", G_CALLBACK(map_cb), s);

    s->top_spin = gtk_spin_button_new_with_range(1, 256, 1);
    gtk_spin_button_set_value(GTK_SPIN_BUTTON(s->top_spin), 8);
    gtk_widget_set_tooltip_text(s->top_spin, "How many of the analysis's strongest experts: each alone, then all "
                                             "together (--top N)");
    s->top_box = gtk_box_new(GTK_ORIENTATION_HORIZONTAL, 6);
    gtk_box_append(GTK_BOX(s->top_box), wb_caption("Strongest"));
    gtk_box_append(GTK_BOX(s->top_box), wb_labelled(s->top_spin, "Sweep strongest experts"));
    gtk_widget_set_visible(s->top_box, FALSE);
    gtk_box_append(GTK_BOX(row1), s->top_box);

    gtk_box_append(GTK_BOX(row2), wb_caption("Random controls"));
    s->controls_spin = gtk_spin_button_new_with_range(0, 100, 1);
    gtk_spin_button_set_value(GTK_SPIN_BUTTON(s->controls_spin), 4);
    gtk_widget_set_tooltip_text(s->controls_spin, "Random sets of the same shape per candidate shape: the spread an "
                                                  "effect must beat (its z-score)");
    gtk_box_append(GTK_BOX(row2), wb_labelled(s->controls_spin, "Random controls per shape"));

    s->run_btn = wb_mnemonic_button("Run s_weep");
    gtk_widget_set_tooltip_text(s->run_btn, "Over the open prompt set, stored in the open database "
                                            "(moescope sweep MODEL --prompts FILE --silence-each LAYERS "
                                            "--random-controls N --db DB)");
    g_signal_connect(s->run_btn, "clicked", G_CALLBACK(run_cb), s);
    gtk_box_append(GTK_BOX(row2), s->run_btn);
    return s->box;
}
