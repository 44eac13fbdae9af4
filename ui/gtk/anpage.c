/* anpage.c — the Analyses page: run any analysis module on the current run
 * with its main options (ms_analyze on a worker thread, the function
 * `moescope analyze` calls), see its result tables in a sortable column
 * view (ui/workbench/wb-table.h) and its picture (the view that draws the
 * module), and browse the tables already stored in the database. */
#include "wb-gtk.h"

/* A row of the shown table, by index. */
#define WB_TYPE_ROW (wb_row_get_type())
G_DECLARE_FINAL_TYPE(WbRow, wb_row, WB, ROW, GObject)
struct _WbRow {
    GObject parent;
    int64_t row;
};
G_DEFINE_TYPE(WbRow, wb_row, G_TYPE_OBJECT)
static void wb_row_class_init(WbRowClass *k) {}
static void wb_row_init(WbRow *r) {}

#define MAX_ROWS 20000

typedef struct {
    char label[96];     /* what the dropdown shows */
    WbTable *table;     /* computed (owned), or NULL for a stored one */
    char stored[64];    /* the stored table's name */
} TableRef;

typedef struct {
    struct AnPage *page;
    int col;
    int chars;          /* the column's label width: its widest cell, capped */
} ColRef;

struct AnPage {
    Wb *wb;
    GtkWidget *box, *module_dd, *layer_spin, *role_dd, *top_spin, *by_entry, *plan_entry, *label_entry, *set1_entry,
        *set2_entry, *lang_entry, *ref_entry, *run_btn, *figure_btn, *table_dd, *info, *colview;
    GtkWidget *npmi_grid, *cl_grid, *rd_grid;   /* one analysis's own fields, shown when it is chosen */
    GtkStringList *table_names;
    GArray *tables;     /* TableRef */
    gboolean table_lock;
    WbTable *shown;     /* the table in the column view (borrowed from tables, or owned when stored) */
    gboolean shown_owned;
    GListStore *rows;
    char module[32];    /* of the computed tables */
    char *plans[MS_AN_N_MODULES];
    WbJob *job;
};

GtkWidget *wb_an_page_widget(AnPage *p) { return p->box; }

const char *wb_an_last_plan(AnPage *p, const char *module)
{
    int m = ms_an_module_from_name(module);
    return m >= 0 && m < MS_AN_N_MODULES ? p->plans[m] : NULL;
}

static const char *selected_module(AnPage *p)
{
    const char *const *mods = ms_analyze_modules();
    guint i = gtk_drop_down_get_selected(GTK_DROP_DOWN(p->module_dd));
    for (guint k = 0; mods[k]; k++)
        if (k == i) return mods[k];
    return mods[0];
}

/* Which options a module takes (the others are insensitive). */
static void module_cb(GObject *o, GParamSpec *ps, gpointer user)
{
    AnPage *p = user;
    const char *m = selected_module(p);
    gboolean npmi = !strcmp(m, "npmi"), rd = !strcmp(m, "riskdiff"), cl = !strcmp(m, "crosslingual");
    gtk_widget_set_sensitive(p->layer_spin, !cl && strcmp(m, "pathways"));
    gtk_widget_set_sensitive(p->role_dd, !cl && strcmp(m, "pathways") && strcmp(m, "consistency"));
    gtk_widget_set_sensitive(p->top_spin, !strcmp(m, "affinity") || npmi);
    /* only the chosen analysis's own fields: all three groups side by side
     * were wider than the page and were cut at the window's edge */
    gtk_widget_set_visible(p->npmi_grid, npmi);
    gtk_widget_set_visible(p->rd_grid, rd);
    gtk_widget_set_visible(p->cl_grid, cl);
    gtk_widget_set_sensitive(p->figure_btn, wb_module_view(m) != NULL);
}

/* ------------------------------------------------------------ the table */

static void clear_shown(AnPage *p)
{
    g_list_store_remove_all(p->rows);
    GListModel *cols = gtk_column_view_get_columns(GTK_COLUMN_VIEW(p->colview));
    while (g_list_model_get_n_items(cols) > 0) {
        GtkColumnViewColumn *c = g_list_model_get_item(cols, 0);
        gtk_column_view_remove_column(GTK_COLUMN_VIEW(p->colview), c);
        g_object_unref(c);
    }
    if (p->shown_owned) wb_table_free(p->shown);
    p->shown = NULL;
    p->shown_owned = FALSE;
}

static void free_colref(gpointer d, GClosure *c) { g_free(d); }

static void cell_setup(GtkSignalListItemFactory *f, GtkListItem *item, gpointer user)
{
    const ColRef *c = user;
    GtkWidget *l = gtk_label_new("");
    gtk_label_set_ellipsize(GTK_LABEL(l), PANGO_ELLIPSIZE_END);
    /* An ellipsizing label asks for almost no width, so without this the
     * view squeezed number columns to "0.4…" */
    gtk_label_set_width_chars(GTK_LABEL(l), c->chars);
    gtk_list_item_set_child(item, l);
}

static void cell_bind(GtkSignalListItemFactory *f, GtkListItem *item, gpointer user)
{
    ColRef *c = user;
    WbRow *r = gtk_list_item_get_item(item);
    GtkWidget *l = gtk_list_item_get_child(item);
    if (!c->page->shown || !r) return;
    char b[512];
    wb_table_cell_text(c->page->shown, r->row, c->col, b, sizeof b);
    wb_label_set(l, b);
    gtk_label_set_xalign(GTK_LABEL(l), c->page->shown->types[c->col] == MS_AN_TEXT ? 0 : 1);
}

static int row_compare(gconstpointer a, gconstpointer b, gpointer user)
{
    ColRef *c = user;
    if (!c->page->shown) return 0;
    return wb_table_compare(c->page->shown, c->col, ((const WbRow *)a)->row, ((const WbRow *)b)->row);
}

/* Characters the widest cell of column `col` needs (the header too), read
 * from the first rows, between 4 and 32: longer text is ellipsized and the
 * column stays resizable. */
static int column_chars(const WbTable *t, int col)
{
    int w = (int)g_utf8_strlen(t->cols[col], -1);
    const int64_t n = MIN(t->n_rows, 2000);
    for (int64_t r = 0; r < n && w < 32; r++) {
        char b[512];
        wb_table_cell_text(t, r, col, b, sizeof b);
        w = MAX(w, (int)g_utf8_strlen(b, -1));
    }
    return CLAMP(w, 4, 32);
}

static void show_table(AnPage *p, WbTable *t, gboolean owned)
{
    clear_shown(p);
    p->shown = t;
    p->shown_owned = owned;
    if (!t) {
        wb_label_set(p->info, "");
        return;
    }
    for (int c = 0; c < t->n_cols; c++) {
        ColRef *cr = g_new0(ColRef, 1);
        cr->page = p;
        cr->col = c;
        cr->chars = column_chars(t, c);
        GtkListItemFactory *f = gtk_signal_list_item_factory_new();
        g_signal_connect(f, "setup", G_CALLBACK(cell_setup), cr);
        g_signal_connect_data(f, "bind", G_CALLBACK(cell_bind), cr, free_colref, 0);
        GtkColumnViewColumn *col = gtk_column_view_column_new(t->cols[c], f);
        GtkSorter *s = GTK_SORTER(gtk_custom_sorter_new(row_compare, cr, NULL));
        gtk_column_view_column_set_sorter(col, s);
        g_object_unref(s);
        gtk_column_view_column_set_resizable(col, TRUE);
        gtk_column_view_append_column(GTK_COLUMN_VIEW(p->colview), col);
        g_object_unref(col);
    }
    GPtrArray *items = g_ptr_array_new_with_free_func(g_object_unref);
    for (int64_t r = 0; r < t->n_rows; r++) {
        WbRow *row = g_object_new(WB_TYPE_ROW, NULL);
        row->row = r;
        g_ptr_array_add(items, row);
    }
    g_list_store_splice(p->rows, 0, 0, items->pdata, items->len);
    g_ptr_array_free(items, TRUE);
    char b[200];
    if (t->total_rows > t->n_rows)
        snprintf(b, sizeof b, "%s: %lld of %lld rows shown, %d columns (click a header to sort)", t->name,
                 (long long)t->n_rows, (long long)t->total_rows, t->n_cols);
    else
        snprintf(b, sizeof b, "%s: %lld rows, %d columns (click a header to sort)", t->name, (long long)t->n_rows,
                 t->n_cols);
    wb_label_set(p->info, b);
}

typedef struct {
    char *db_path;
    int64_t run;
    char table[64];
    WbTable *t;
} LoadJob;

static void load_free(gpointer d)
{
    LoadJob *x = d;
    g_free(x->db_path);
    wb_table_free(x->t);
    g_free(x);
}

static int load_run(WbJob *j, gpointer d, MsError *err)
{
    LoadJob *x = d;
    MsTraceDb *db = ms_trace_open(x->db_path, MS_TRACE_READ, err);
    if (!db) return err->code ? err->code : MS_EDB;
    int rc = wb_table_from_db(db, x->table, x->run, MAX_ROWS, &x->t, err);
    ms_trace_close(db);
    return rc;
}

static void load_done(Wb *wb, WbJob *j, int rc, const MsError *err, gpointer d)
{
    LoadJob *x = d;
    if (rc < 0) {
        wb_show_error(wb, "%s", err->msg);
        return;
    }
    show_table(wb->an, x->t, TRUE);
    x->t = NULL;
}

static void table_dd_cb(GObject *o, GParamSpec *ps, gpointer user)
{
    AnPage *p = user;
    if (p->table_lock) return;
    guint i = gtk_drop_down_get_selected(GTK_DROP_DOWN(p->table_dd));
    if (i >= p->tables->len) return;
    TableRef *r = &g_array_index(p->tables, TableRef, i);
    if (r->table) {
        show_table(p, r->table, FALSE);
        return;
    }
    Wb *wb = p->wb;
    if (!wb->db_path) return;
    LoadJob *x = g_new0(LoadJob, 1);
    x->db_path = g_strdup(wb->db_path);
    x->run = wb->run;
    snprintf(x->table, sizeof x->table, "%s", r->stored);
    wb_label_set(p->info, "Loading…");
    wb_job_start(wb, "load table", load_run, load_done, NULL, x, load_free);
}

/* Rebuild the dropdown: computed tables, then the stored ones. */
static void set_tables(AnPage *p, WbStored *stored, int n_stored, int select)
{
    p->table_lock = TRUE;
    clear_shown(p);
    /* keep computed tables, drop stored entries */
    GArray *keep = g_array_new(FALSE, TRUE, sizeof(TableRef));
    for (guint i = 0; i < p->tables->len; i++) {
        TableRef *r = &g_array_index(p->tables, TableRef, i);
        if (r->table) g_array_append_val(keep, *r);
    }
    g_array_free(p->tables, TRUE);
    p->tables = keep;
    for (int i = 0; i < n_stored; i++) {
        TableRef r = { 0 };
        snprintf(r.label, sizeof r.label, "stored: %s", stored[i].table);
        snprintf(r.stored, sizeof r.stored, "%s", stored[i].table);
        g_array_append_val(p->tables, r);
    }
    guint n = g_list_model_get_n_items(G_LIST_MODEL(p->table_names));
    const char **names = g_new0(const char *, p->tables->len + 1);
    for (guint i = 0; i < p->tables->len; i++) names[i] = g_array_index(p->tables, TableRef, i).label;
    gtk_string_list_splice(p->table_names, 0, n, names);
    g_free(names);
    p->table_lock = FALSE;
    if (p->tables->len == 0) {
        wb_label_set(p->info, "No result tables yet: choose an analysis and Run it.");
        return;
    }
    if (select < 0 || (guint)select >= p->tables->len) select = 0;
    if (gtk_drop_down_get_selected(GTK_DROP_DOWN(p->table_dd)) == (guint)select) table_dd_cb(NULL, NULL, p);
    else gtk_drop_down_set_selected(GTK_DROP_DOWN(p->table_dd), (guint)select);
}

typedef struct {
    char *db_path;
    int64_t run;
    WbStored *st;
    int n;
} ListJob;

static void list_free(gpointer d)
{
    ListJob *x = d;
    g_free(x->db_path);
    free(x->st);
    g_free(x);
}

static int list_run(WbJob *j, gpointer d, MsError *err)
{
    ListJob *x = d;
    MsTraceDb *db = ms_trace_open(x->db_path, MS_TRACE_READ, err);
    if (!db) return err->code ? err->code : MS_EDB;
    int rc = wb_stored_list(db, x->run, &x->st, &x->n, err);
    ms_trace_close(db);
    return rc;
}

static void list_done(Wb *wb, WbJob *j, int rc, const MsError *err, gpointer d)
{
    ListJob *x = d;
    AnPage *p = wb->an;
    if (rc < 0) return;   /* no analysis registry yet is not worth a message */
    int computed = 0;
    for (guint i = 0; i < p->tables->len; i++) computed += g_array_index(p->tables, TableRef, i).table != NULL;
    guint sel = gtk_drop_down_get_selected(GTK_DROP_DOWN(p->table_dd));
    set_tables(p, x->st, x->n, sel != GTK_INVALID_LIST_POSITION ? (int)sel : computed ? 0 : 0);
}

void wb_an_page_data_changed(AnPage *p)
{
    Wb *wb = p->wb;
    gtk_widget_set_sensitive(p->run_btn, wb->db_path && wb->run > 0);
    if (!wb->db_path || wb->run <= 0) return;
    ListJob *x = g_new0(ListJob, 1);
    x->db_path = g_strdup(wb->db_path);
    x->run = wb->run;
    wb_job_start(wb, "list analyses", list_run, list_done, NULL, x, list_free);
}

/* ------------------------------------------------------------- running */

typedef struct {
    char *db_path;
    gboolean write;
    char module[32];
    MsAnOptions o;
    char by[128], plan_class[128], label[64], set1[64], set2[64], lang[64], ref[32];
    WbTable *tables[MS_AN_MAX_TABLES];
    int n_tables;
    char *plan;
} RunJob;

static void run_free(gpointer d)
{
    RunJob *x = d;
    for (int i = 0; i < x->n_tables; i++) wb_table_free(x->tables[i]);
    g_free(x->db_path);
    free(x->plan);
    g_free(x);
}

static int run_run(WbJob *j, gpointer d, MsError *err)
{
    RunJob *x = d;
    MsTraceDb *db = ms_trace_open(x->db_path, x->write ? MS_TRACE_WRITE : MS_TRACE_READ, err);
    if (!db) return err->code ? err->code : MS_EDB;
    x->o.progress = wb_job_report;
    x->o.progress_user = j;
    x->o.cancel = &j->cancel;
    x->o.write = x->write;
    MsAnResult res;
    int rc = ms_analyze(db, x->module, &x->o, &res, err);
    ms_trace_close(db);
    if (rc < 0) return rc;
    MsAnTable t[MS_AN_MAX_TABLES];
    int n = ms_an_result_tables(&res, t);
    for (int i = 0; i < n && rc >= 0; i++) {
        rc = wb_table_from_result(&t[i], MAX_ROWS, &x->tables[x->n_tables], err);
        if (rc >= 0) x->n_tables++;
    }
    const char *plan = ms_an_result_plan(&res);
    if (plan && rc >= 0 && !(x->plan = strdup(plan))) rc = ms_error_set(err, MS_ENOMEM, "out of memory");
    ms_an_result_clear(&res);
    return rc;
}

static void run_progress(Wb *wb, WbJob *j, const MsProgress *pr, gpointer d)
{
    RunJob *x = d;
    char what[64];
    snprintf(what, sizeof what, "Analysis %s", x->module);
    wb_progress_show(wb, what, "steps", pr);
}

static void run_done(Wb *wb, WbJob *j, int rc, const MsError *err, gpointer d)
{
    RunJob *x = d;
    AnPage *p = wb->an;
    p->job = NULL;
    if (rc == MS_ECANCELLED) {
        wb_status(wb, "Analysis %s cancelled (stopped %.2f s after Cancel); nothing was written", x->module,
                  j->t_end - j->t_cancel);
        return;
    }
    if (rc < 0) {
        wb_show_error(wb, "Analysis %s: %s", x->module, err->msg);
        return;
    }
    /* the computed tables replace the previous ones */
    clear_shown(p);
    for (guint i = 0; i < p->tables->len; i++) wb_table_free(g_array_index(p->tables, TableRef, i).table);
    g_array_set_size(p->tables, 0);
    for (int i = 0; i < x->n_tables; i++) {
        TableRef r = { 0 };
        snprintf(r.label, sizeof r.label, "%s (computed)", x->tables[i]->name);
        r.table = x->tables[i];
        x->tables[i] = NULL;
        g_array_append_val(p->tables, r);
    }
    int m = ms_an_module_from_name(x->module);
    if (m >= 0 && m < MS_AN_N_MODULES) {
        free(p->plans[m]);
        p->plans[m] = x->plan;
        x->plan = NULL;
    }
    snprintf(p->module, sizeof p->module, "%s", x->module);
    /* the main table an_<module> comes last: show it */
    set_tables(p, NULL, 0, x->n_tables - 1);
    wb_status(wb, "Analysis %s: %d table%s%s in %.2f s", x->module, x->n_tables, x->n_tables == 1 ? "" : "s",
              x->write ? ", written to the database" : " (database read-only: not stored)", j->t_end - j->t_start);
    /* pictures drawn from this module are out of date */
    for (guint i = 0; i < wb->pages->len; i++) {
        ViewPage *vp = g_ptr_array_index(wb->pages, i);
        const char *vm = wb_view_module(wb_view_page_class(vp)->name);
        if (vm && !strcmp(vm, x->module)) wb_view_page_invalidate(vp, FALSE);
    }
    if (x->write) wb_an_page_data_changed(p);
}

static const char *entry_text(GtkWidget *e) { return gtk_editable_get_text(GTK_EDITABLE(e)); }

void wb_an_run(AnPage *p)
{
    Wb *wb = p->wb;
    if (!wb->db_path || wb->run <= 0) {
        wb_show_error(wb, "Analyses run on a trace: open a database (or Run a prompt set) first");
        return;
    }
    RunJob *x = g_new0(RunJob, 1);
    x->db_path = g_strdup(wb->db_path);
    x->write = !wb->db_readonly;
    snprintf(x->module, sizeof x->module, "%s", selected_module(p));
    ms_an_options_default(&x->o);
    x->o.run_id = wb->run;
    x->o.layer = gtk_spin_button_get_value_as_int(GTK_SPIN_BUTTON(p->layer_spin));
    static const char *const roles[] = { NULL, "all", "prompt", "generated" };
    guint ri = gtk_drop_down_get_selected(GTK_DROP_DOWN(p->role_dd));
    x->o.role = ri < 4 ? roles[ri] : NULL;
    int top = gtk_spin_button_get_value_as_int(GTK_SPIN_BUTTON(p->top_spin));
    if (top > 0) x->o.top = top;
#define COPY(field, widget)                                                       \
    do {                                                                          \
        snprintf(x->field, sizeof x->field, "%s", entry_text(p->widget));         \
        g_strstrip(x->field);                                                     \
    } while (0)
    COPY(by, by_entry);
    COPY(plan_class, plan_entry);
    COPY(label, label_entry);
    COPY(set1, set1_entry);
    COPY(set2, set2_entry);
    COPY(lang, lang_entry);
    COPY(ref, ref_entry);
#undef COPY
    if (x->by[0]) x->o.by = x->by;
    if (x->plan_class[0]) x->o.plan_class = x->plan_class;
    if (x->label[0]) x->o.label = x->label;
    if (x->set1[0]) x->o.set1 = x->set1;
    if (x->set2[0]) x->o.set2 = x->set2;
    if (x->lang[0]) x->o.lang_key = x->lang;
    if (x->ref[0]) x->o.ref_lang = x->ref;
    WbJob *j = wb_job_start(wb, "analysis", run_run, run_done, run_progress, x, run_free);
    if (wb_long_job_begin(wb, j)) p->job = j;
}

static void run_btn_cb(GtkButton *b, gpointer user) { wb_an_run(user); }

static void figure_btn_cb(GtkButton *b, gpointer user)
{
    AnPage *p = user;
    const MsViewClass *v = wb_module_view(selected_module(p));
    if (!v) return;
    gtk_widget_activate_action(GTK_WIDGET(p->wb->win), "win.show-page", "s", v->name);
}

/* ---------------------------------------------------------------- build */

static GtkWidget *entry(const char *placeholder, const char *name, const char *text)
{
    GtkWidget *e = gtk_entry_new();
    gtk_entry_set_placeholder_text(GTK_ENTRY(e), placeholder);
    if (text) gtk_editable_set_text(GTK_EDITABLE(e), text);
    gtk_editable_set_width_chars(GTK_EDITABLE(e), 12);
    return wb_labelled(e, name);
}

static void grid_row(GtkWidget *grid, int col, int row, const char *caption, GtkWidget *w)
{
    GtkWidget *l = gtk_label_new(caption);
    gtk_label_set_xalign(GTK_LABEL(l), 1);
    gtk_widget_add_css_class(l, "dim-label");
    gtk_grid_attach(GTK_GRID(grid), l, col, row, 1, 1);
    gtk_grid_attach(GTK_GRID(grid), w, col + 1, row, 1, 1);
}

static GtkWidget *form_grid(void)
{
    GtkWidget *g = gtk_grid_new();
    gtk_grid_set_column_spacing(GTK_GRID(g), 8);
    gtk_grid_set_row_spacing(GTK_GRID(g), 6);
    return g;
}

AnPage *wb_an_page_new(Wb *wb)
{
    AnPage *p = g_new0(AnPage, 1);
    p->wb = wb;
    p->tables = g_array_new(FALSE, TRUE, sizeof(TableRef));
    p->box = gtk_box_new(GTK_ORIENTATION_VERTICAL, 8);
    gtk_widget_set_margin_start(p->box, 10);
    gtk_widget_set_margin_end(p->box, 10);
    gtk_widget_set_margin_top(p->box, 8);
    gtk_widget_set_margin_bottom(p->box, 8);

    GtkWidget *g = form_grid();
    const char *const *mods = ms_analyze_modules();
    p->module_dd = wb_labelled(gtk_drop_down_new_from_strings(mods), "Analysis");
    grid_row(g, 0, 0, "Analysis", p->module_dd);
    p->layer_spin = wb_labelled(gtk_spin_button_new_with_range(-1, MS_TRACE_MAX_LAYER - 1, 1),
                                "Layer (all = every MoE layer)");
    wb_spin_word(p->layer_spin, "all");   /* −1 */
    grid_row(g, 0, 1, "Layer", p->layer_spin);
    const char *roles[] = { "module default", "all tokens", "prompt tokens", "generated tokens", NULL };
    p->role_dd = wb_labelled(gtk_drop_down_new_from_strings(roles), "Token scope");
    grid_row(g, 0, 2, "Tokens", p->role_dd);
    p->top_spin = wb_labelled(gtk_spin_button_new_with_range(0, 1000, 1), "Top N (auto = the module's default)");
    wb_spin_word(p->top_spin, "auto");   /* 0 */
    grid_row(g, 0, 3, "Top", p->top_spin);
    p->npmi_grid = form_grid();
    p->by_entry = entry("text", "nPMI classes (--by)", NULL);
    grid_row(p->npmi_grid, 0, 0, "nPMI classes", p->by_entry);
    p->plan_entry = entry("class for a plan", "nPMI plan class (--plan)", NULL);
    grid_row(p->npmi_grid, 0, 1, "nPMI plan class", p->plan_entry);
    p->cl_grid = form_grid();
    p->lang_entry = entry("language", "Cross-lingual: language label key", NULL);
    grid_row(p->cl_grid, 0, 0, "Language key", p->lang_entry);
    p->ref_entry = entry("en", "Cross-lingual: reference language", NULL);
    grid_row(p->cl_grid, 0, 1, "Reference language", p->ref_entry);
    p->rd_grid = form_grid();
    p->label_entry = entry("label key", "Risk difference: label key", NULL);
    grid_row(p->rd_grid, 0, 0, "Label key", p->label_entry);
    p->set1_entry = entry("value to promote", "Risk difference: set 1 value", NULL);
    grid_row(p->rd_grid, 0, 1, "Set 1", p->set1_entry);
    p->set2_entry = entry("value to demote", "Risk difference: set 2 value", NULL);
    grid_row(p->rd_grid, 0, 2, "Set 2", p->set2_entry);
    GtkWidget *form = gtk_box_new(GTK_ORIENTATION_HORIZONTAL, 24);
    gtk_box_append(GTK_BOX(form), g);
    gtk_box_append(GTK_BOX(form), p->npmi_grid);
    gtk_box_append(GTK_BOX(form), p->cl_grid);
    gtk_box_append(GTK_BOX(form), p->rd_grid);
    gtk_box_append(GTK_BOX(p->box), form);

    GtkWidget *bar = gtk_box_new(GTK_ORIENTATION_HORIZONTAL, 8);
    p->run_btn = wb_mnemonic_button("_Run analysis");
    gtk_widget_add_css_class(p->run_btn, "suggested-action");
    g_signal_connect(p->run_btn, "clicked", G_CALLBACK(run_btn_cb), p);
    gtk_box_append(GTK_BOX(bar), p->run_btn);
    p->figure_btn = gtk_button_new_with_label("Show figure");
    gtk_widget_set_tooltip_text(p->figure_btn, "Show the view that draws this analysis");
    g_signal_connect(p->figure_btn, "clicked", G_CALLBACK(figure_btn_cb), p);
    gtk_box_append(GTK_BOX(bar), p->figure_btn);
    GtkWidget *tl = gtk_label_new("Table");
    gtk_widget_add_css_class(tl, "dim-label");
    gtk_widget_set_margin_start(tl, 12);
    gtk_box_append(GTK_BOX(bar), tl);
    p->table_names = gtk_string_list_new(NULL);
    p->table_dd = wb_labelled(wb_string_dropdown(p->table_names, 32), "Result table");
    g_signal_connect(p->table_dd, "notify::selected", G_CALLBACK(table_dd_cb), p);
    gtk_box_append(GTK_BOX(bar), p->table_dd);
    gtk_box_append(GTK_BOX(p->box), bar);

    p->info = wb_labelled(gtk_label_new("No result tables yet: choose an analysis and Run it."), "Table information");
    gtk_label_set_xalign(GTK_LABEL(p->info), 0);
    gtk_box_append(GTK_BOX(p->box), p->info);

    p->rows = g_list_store_new(WB_TYPE_ROW);
    p->colview = gtk_column_view_new(NULL);
    GtkSortListModel *sorted = gtk_sort_list_model_new(G_LIST_MODEL(g_object_ref(p->rows)),
                                                       g_object_ref(gtk_column_view_get_sorter(GTK_COLUMN_VIEW(p->colview))));
    GtkSelectionModel *selm = GTK_SELECTION_MODEL(gtk_no_selection_new(G_LIST_MODEL(sorted)));
    gtk_column_view_set_model(GTK_COLUMN_VIEW(p->colview), selm);
    g_object_unref(selm);
    gtk_column_view_set_show_column_separators(GTK_COLUMN_VIEW(p->colview), TRUE);
    gtk_column_view_set_show_row_separators(GTK_COLUMN_VIEW(p->colview), TRUE);
    wb_labelled(p->colview, "Analysis result table");
    GtkWidget *sc = gtk_scrolled_window_new();
    gtk_scrolled_window_set_child(GTK_SCROLLED_WINDOW(sc), p->colview);
    gtk_widget_set_vexpand(sc, TRUE);
    gtk_box_append(GTK_BOX(p->box), sc);
    g_signal_connect(p->module_dd, "notify::selected", G_CALLBACK(module_cb), p);
    module_cb(NULL, NULL, p);
    gtk_widget_set_sensitive(p->run_btn, FALSE);
    return p;
}

void wb_an_page_free(AnPage *p)
{
    if (!p) return;
    if (p->shown_owned) wb_table_free(p->shown);
    for (guint i = 0; i < p->tables->len; i++) wb_table_free(g_array_index(p->tables, TableRef, i).table);
    g_array_free(p->tables, TRUE);
    for (int i = 0; i < MS_AN_N_MODULES; i++) free(p->plans[i]);
    g_clear_object(&p->rows);
    g_free(p);
}
