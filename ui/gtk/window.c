/* window.c — the workbench window: header bar, side panel (model, trace
 * database and run, run options, prompt list), one page per registered
 * view plus the Analyses, Interventions and Type-prompts pages, a status
 * bar with progress and Cancel.  Opening, tracing, exporting and the
 * window actions live here; every one calls a library function on a worker
 * thread (the same one the command line calls). */
#include <errno.h>
#include <glib/gstdio.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <unistd.h>

#include "wb-gtk.h"

void wb_window_state_release(Wb *wb);

/* A form's caption, dimmed like GNOME's. */
GtkWidget *wb_caption(const char *text)
{
    GtkWidget *l = gtk_label_new(text);
    gtk_widget_add_css_class(l, "dim-label");
    return l;
}

gboolean wb_ready_to_store(Wb *wb, const char *action, const char *what)
{
    if (!wb->model || !wb->grid) {
        wb_show_error(wb, "%s: open a model first", action);
        return FALSE;
    }
    if (!wb->prompts || wb->prompts->n == 0) {
        wb_show_error(wb, "%s: open a prompt set (or type prompts) first", action);
        return FALSE;
    }
    if (!wb->db_path || wb->db_readonly) {
        wb_show_error(wb, "%s stores %s: open a database for writing (or Run a trace first)", action, what);
        return FALSE;
    }
    return TRUE;
}

/* A spin button whose lowest value is not a number but a choice (a view's
 * default layer −1 or top N 0, a layer's own top-k 0, every layer −1) reads
 * a word there ("auto", "all"), and the word may be typed: the lowest value
 * is the adjustment's lower bound (a later set_range keeps it so). */
static gboolean word_output_cb(GtkSpinButton *sb, gpointer user)
{
    if (gtk_spin_button_get_value(sb) > gtk_adjustment_get_lower(gtk_spin_button_get_adjustment(sb))) return FALSE;
    gtk_editable_set_text(GTK_EDITABLE(sb), user);
    return TRUE;
}

static gint word_input_cb(GtkSpinButton *sb, gdouble *value, gpointer user)
{
    g_autofree char *t = g_strstrip(g_strdup(gtk_editable_get_text(GTK_EDITABLE(sb))));
    if (g_ascii_strcasecmp(t, user)) return FALSE;
    *value = gtk_adjustment_get_lower(gtk_spin_button_get_adjustment(sb));
    return TRUE;
}

void wb_spin_word(GtkWidget *sb, const char *word)
{
    /* a numeric spin button would refuse the letters */
    gtk_spin_button_set_numeric(GTK_SPIN_BUTTON(sb), FALSE);
    gtk_editable_set_width_chars(GTK_EDITABLE(sb), 4);
    g_signal_connect(sb, "output", G_CALLBACK(word_output_cb), (gpointer)word);
    g_signal_connect(sb, "input", G_CALLBACK(word_input_cb), (gpointer)word);
    double lo = gtk_adjustment_get_lower(gtk_spin_button_get_adjustment(GTK_SPIN_BUTTON(sb)));
    gtk_spin_button_set_value(GTK_SPIN_BUTTON(sb), lo + 1);   /* a change, so "output" runs */
    gtk_spin_button_set_value(GTK_SPIN_BUTTON(sb), lo);
}

GtkWidget *wb_labelled(GtkWidget *w, const char *name)
{
    gtk_accessible_update_property(GTK_ACCESSIBLE(w), GTK_ACCESSIBLE_PROPERTY_LABEL, name, -1);
    /* GtkLabel makes its text the accessible label on every change: keep the name to restore it */
    if (GTK_IS_LABEL(w)) g_object_set_data_full(G_OBJECT(w), "wb-name", g_strdup(name), g_free);
    return w;
}

GtkWidget *wb_mnemonic_button(const char *label)
{
    GtkWidget *b = gtk_button_new_with_mnemonic(label);
    /* GTK 4.8 names such a button "_Apply Apply" (its label, raw, through
     * labelled-by, then the text): name it by its plain text alone */
    GString *plain = g_string_new(NULL);
    for (const char *c = label; *c; c++)
        if (*c != '_' || c[1] == '_') g_string_append_c(plain, *c == '_' ? *++c : *c);
    wb_labelled(b, plain->str);
    gtk_accessible_reset_relation(GTK_ACCESSIBLE(b), GTK_ACCESSIBLE_RELATION_LABELLED_BY);
    g_string_free(plain, TRUE);
    return b;
}

GtkWidget *wb_dialog_buttons(const char *ok_label, GCallback ok_cb, GCallback cancel_cb, gpointer data)
{
    GtkWidget *bb = gtk_box_new(GTK_ORIENTATION_HORIZONTAL, 8);
    gtk_widget_set_halign(bb, GTK_ALIGN_END);
    GtkWidget *cancel = wb_mnemonic_button("_Cancel");
    g_signal_connect(cancel, "clicked", cancel_cb, data);
    GtkWidget *ok = wb_mnemonic_button(ok_label);
    gtk_widget_add_css_class(ok, "suggested-action");
    g_signal_connect(ok, "clicked", ok_cb, data);
    gtk_box_append(GTK_BOX(bb), cancel);
    gtk_box_append(GTK_BOX(bb), ok);
    return bb;
}

char *wb_canonical_path(const char *path)
{
    return wb_db_is_uri(path) ? g_strdup(path) : g_canonicalize_filename(path, NULL);
}

void wb_label_set(GtkWidget *l, const char *text)
{
    gtk_label_set_text(GTK_LABEL(l), text);
    const char *name = g_object_get_data(G_OBJECT(l), "wb-name");
    if (name) gtk_accessible_update_property(GTK_ACCESSIBLE(l), GTK_ACCESSIBLE_PROPERTY_LABEL, name, -1);
}

static void dd_setup(GtkSignalListItemFactory *f, GtkListItem *item, gpointer user)
{
    GtkWidget *l = gtk_label_new("");
    gtk_label_set_xalign(GTK_LABEL(l), 0);
    gtk_label_set_ellipsize(GTK_LABEL(l), PANGO_ELLIPSIZE_END);
    gtk_label_set_max_width_chars(GTK_LABEL(l), GPOINTER_TO_INT(user));
    gtk_list_item_set_child(item, l);
}

static void dd_bind(GtkSignalListItemFactory *f, GtkListItem *item, gpointer user)
{
    GtkStringObject *o = gtk_list_item_get_item(item);
    GtkWidget *l = gtk_list_item_get_child(item);
    wb_label_set(l, gtk_string_object_get_string(o));
    gtk_widget_set_tooltip_text(l, gtk_string_object_get_string(o));
}

GtkWidget *wb_string_dropdown(GtkStringList *list, int max_chars)
{
    GtkWidget *d = gtk_drop_down_new(G_LIST_MODEL(list), NULL);
    GtkListItemFactory *f = gtk_signal_list_item_factory_new();
    g_signal_connect(f, "setup", G_CALLBACK(dd_setup), GINT_TO_POINTER(max_chars));
    g_signal_connect(f, "bind", G_CALLBACK(dd_bind), NULL);
    gtk_drop_down_set_factory(GTK_DROP_DOWN(d), f);
    /* the popup list shows whole items */
    GtkListItemFactory *lf = gtk_signal_list_item_factory_new();
    g_signal_connect(lf, "setup", G_CALLBACK(dd_setup), GINT_TO_POINTER(90));
    g_signal_connect(lf, "bind", G_CALLBACK(dd_bind), NULL);
    gtk_drop_down_set_list_factory(GTK_DROP_DOWN(d), lf);
    g_object_unref(f);
    g_object_unref(lf);
    return d;
}

/* --------------------------------------------------------------- messages */

static void error_close_cb(GtkButton *b, gpointer user)
{
    Wb *wb = user;
    gtk_revealer_set_reveal_child(GTK_REVEALER(wb->error_revealer), FALSE);
}

void wb_show_error(Wb *wb, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *m = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_strdelimit(m, "\n\r", ' ');
    wb_label_set(wb->error_label, m);
    gtk_revealer_set_reveal_child(GTK_REVEALER(wb->error_revealer), TRUE);
    wb_label_set(wb->status_label, m);
    g_message("%s", m);
    g_free(m);
}

void wb_status(Wb *wb, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *m = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_strdelimit(m, "\n\r", ' ');
    wb_label_set(wb->status_label, m);
    g_free(m);
}

void wb_hover_text(Wb *wb, const char *text)
{
    /* one line, so the bar keeps its height and the figure its size (tooltips keep the lines) */
    GString *m = g_string_new(text ? text : "");
    g_string_replace(m, "\r", "", 0);
    g_string_replace(m, "\n", " · ", 0);
    wb_label_set(wb->hover_label, m->str);
    g_string_free(m, TRUE);
}

void wb_progress_show(Wb *wb, const char *what, const char *unit, const MsProgress *p)
{
    char b[400];
    wb_progress_text(what, unit, p, b, sizeof b);
    gtk_progress_bar_set_fraction(GTK_PROGRESS_BAR(wb->progress), wb_progress_fraction(p));
    wb_label_set(wb->progress_label, b);
}

gboolean wb_long_job_begin(Wb *wb, WbJob *j)
{
    if (wb->long_job) {
        /* the caller started j already: stop it, it will end quietly */
        wb_show_error(wb, "%s is still running: wait for it or Cancel it first", wb->long_job->what);
        wb_job_cancel(j);
        j->done = NULL;
        j->progress = NULL;
        return FALSE;
    }
    wb->long_job = j;
    gtk_widget_set_visible(wb->progress, TRUE);
    gtk_progress_bar_set_fraction(GTK_PROGRESS_BAR(wb->progress), 0);
    char b[160];
    snprintf(b, sizeof b, "%s: starting…", j->what);
    b[0] = (char)g_ascii_toupper(b[0]);
    wb_label_set(wb->progress_label, b);
    gtk_widget_set_sensitive(wb->cancel_btn, TRUE);
    GAction *a = g_action_map_lookup_action(G_ACTION_MAP(wb->win), "run");
    g_simple_action_set_enabled(G_SIMPLE_ACTION(a), FALSE);
    return TRUE;
}

void wb_long_job_end(Wb *wb, WbJob *j)
{
    wb->long_job = NULL;
    gtk_widget_set_sensitive(wb->cancel_btn, FALSE);
    gtk_widget_set_visible(wb->progress, FALSE);
    wb_label_set(wb->progress_label, "");
    GAction *a = g_action_map_lookup_action(G_ACTION_MAP(wb->win), "run");
    g_simple_action_set_enabled(G_SIMPLE_ACTION(a), TRUE);
}

/* ----------------------------------------------------------- prompt items */

#define WB_TYPE_PROMPT_ITEM (wb_prompt_item_get_type())
G_DECLARE_FINAL_TYPE(WbPromptItem, wb_prompt_item, WB, PROMPT_ITEM, GObject)
struct _WbPromptItem {
    GObject parent;
    int index;
    int n_tokens;      /* −1 = not traced */
    char *text;
    size_t len;
    char *labels;
    char *row;
};
G_DEFINE_TYPE(WbPromptItem, wb_prompt_item, G_TYPE_OBJECT)
static void wb_prompt_item_finalize(GObject *o)
{
    WbPromptItem *p = WB_PROMPT_ITEM(o);
    g_free(p->text);
    g_free(p->labels);
    g_free(p->row);
    G_OBJECT_CLASS(wb_prompt_item_parent_class)->finalize(o);
}
static void wb_prompt_item_class_init(WbPromptItemClass *k) { G_OBJECT_CLASS(k)->finalize = wb_prompt_item_finalize; }
static void wb_prompt_item_init(WbPromptItem *p) {}

const char *wb_prompt_text(Wb *wb, int index, size_t *len)
{
    if (index < 0) return NULL;
    guint n = g_list_model_get_n_items(G_LIST_MODEL(wb->prompt_store));
    for (guint i = 0; i < n; i++) {
        WbPromptItem *it = g_list_model_get_item(G_LIST_MODEL(wb->prompt_store), i);
        g_object_unref(it);   /* the store keeps it alive */
        if (it->index == index) {
            if (len) *len = it->len;
            return it->text;
        }
    }
    return NULL;
}

static gboolean prompt_filter_func(gpointer item, gpointer user)
{
    Wb *wb = user;
    if (!wb->fire) return TRUE;
    return wb_prompt_visible(wb->fire, &wb->sel, WB_PROMPT_ITEM(item)->index);
}

static void update_filter_label(Wb *wb)
{
    guint total = g_list_model_get_n_items(G_LIST_MODEL(wb->prompt_store));
    guint shown = g_list_model_get_n_items(G_LIST_MODEL(wb->prompt_filtered));
    char b[200], s[64];
    if (wb_selection_active(&wb->sel) && wb->fire) {
        wb_selection_describe(&wb->sel, s, sizeof s);
        snprintf(b, sizeof b, "Prompts where %s fires: %u of %u", s, shown, total);
    } else {
        snprintf(b, sizeof b, "%u prompt%s", total, total == 1 ? "" : "s");
    }
    wb_label_set(wb->filter_label, b);
}

static void prompt_setup(GtkSignalListItemFactory *f, GtkListItem *item, gpointer user)
{
    GtkWidget *l = gtk_label_new("");
    gtk_label_set_xalign(GTK_LABEL(l), 0);
    gtk_label_set_ellipsize(GTK_LABEL(l), PANGO_ELLIPSIZE_END);
    gtk_widget_set_margin_top(l, 2);
    gtk_widget_set_margin_bottom(l, 2);
    gtk_list_item_set_child(item, l);
}

static void prompt_bind(GtkSignalListItemFactory *f, GtkListItem *item, gpointer user)
{
    WbPromptItem *it = gtk_list_item_get_item(item);
    GtkWidget *l = gtk_list_item_get_child(item);
    wb_label_set(l, it->row);
    gtk_widget_set_tooltip_text(l, it->row);
}

static void select_prompt_index(Wb *wb, int index)
{
    guint n = g_list_model_get_n_items(G_LIST_MODEL(wb->prompt_filtered));
    for (guint i = 0; i < n; i++) {
        WbPromptItem *it = g_list_model_get_item(G_LIST_MODEL(wb->prompt_filtered), i);
        int idx = it->index;
        g_object_unref(it);
        if (idx == index) {
            wb->prompt_sel_lock = TRUE;
            gtk_single_selection_set_selected(wb->prompt_sel, i);
            wb->prompt_sel_lock = FALSE;
            return;
        }
    }
    wb->prompt_sel_lock = TRUE;
    gtk_single_selection_set_selected(wb->prompt_sel, GTK_INVALID_LIST_POSITION);
    wb->prompt_sel_lock = FALSE;
}

static void set_cur_prompt(Wb *wb, int index)
{
    if (index == wb->cur_prompt) return;
    wb->cur_prompt = index;
    for (guint i = 0; i < wb->pages->len; i++) wb_view_page_invalidate(g_ptr_array_index(wb->pages, i), TRUE);
    wb_iv_page_prompt_changed(wb->iv);
}

static void prompt_selected_cb(GtkSingleSelection *sel, GParamSpec *ps, gpointer user)
{
    Wb *wb = user;
    if (wb->prompt_sel_lock) return;
    WbPromptItem *it = gtk_single_selection_get_selected_item(sel);
    if (!it) return;
    set_cur_prompt(wb, it->index);
    wb_status(wb, "Prompt #%d selected", it->index);
}

/* ------------------------------------------------------ prompts reloading */

typedef struct {
    int index, n_tokens;
    char *text;
    size_t len;
    char *labels;
} PItem;

typedef struct {
    char *db_path;
    int64_t run;
    WbPromptSet *set;
    WbFireIndex *fire;
    gboolean new_fire;
    GArray *items;   /* PItem */
    gboolean set_differs;   /* the prompt set is not the run's: its prompts are not listed */
} ReloadJob;

static void pitem_clear(gpointer p)
{
    PItem *i = p;
    g_free(i->text);
    g_free(i->labels);
}

static void reload_free(gpointer d)
{
    ReloadJob *x = d;
    g_free(x->db_path);
    if (x->set) wb_prompt_set_unref(x->set);
    wb_fire_index_free(x->fire);
    if (x->items) g_array_free(x->items, TRUE);
    g_free(x);
}

static gint pitem_cmp(gconstpointer a, gconstpointer b)
{
    return ((const PItem *)a)->index - ((const PItem *)b)->index;
}

static int reload_run(WbJob *j, gpointer d, MsError *err)
{
    ReloadJob *x = d;
    x->items = g_array_new(FALSE, TRUE, sizeof(PItem));
    g_array_set_clear_func(x->items, pitem_clear);
    GHashTable *have = g_hash_table_new(g_direct_hash, g_direct_equal);
    int rc = 0;
    if (x->db_path && x->run > 0) {
        MsTraceDb *db = ms_trace_open(x->db_path, MS_TRACE_READ, err);
        if (!db) rc = err->code ? err->code : MS_EDB;
        MsTraceCursor *c = db ? ms_trace_prompts(db, x->run, err) : NULL;
        if (db && !c) rc = err->code ? err->code : MS_EDB;
        MsTracePrompt p;
        while (c && (rc = ms_trace_prompts_next(c, &p, err)) == 1) {
            PItem it = { .index = p.index, .n_tokens = p.n_tokens, .text = g_memdup2(p.text, p.text_len + 1),
                         .len = p.text_len, .labels = g_strdup(p.labels_json) };
            it.text[p.text_len] = '\0';
            g_array_append_val(x->items, it);
            g_hash_table_add(have, GINT_TO_POINTER(p.index + 1));
        }
        ms_trace_cursor_free(c);
        if (rc >= 0 && db) {
            if (x->new_fire) {
                MsTraceRunInfo ri;
                memset(&ri, 0, sizeof ri);
                if (ms_trace_run_info(db, x->run, &ri, err) == 0) {
                    wb_fire_index_free(x->fire);
                    x->fire = wb_fire_index_new(ri.model.n_layer, ri.model.n_expert);
                }
                ms_trace_run_info_clear(&ri);
            }
            if (x->fire) rc = wb_fire_index_update(x->fire, db, x->run, &j->cancel, err);
        }
        ms_trace_close(db);
    }
    /* The list shows the run's prompts, and the open set's not yet traced
     * ones only when the set is the run's (same text at every traced index:
     * a trace going on or resumed).  Another set (typed prompts, say) would
     * otherwise hide behind the run's prompts of the same index. */
    for (guint k = 0; x->set && k < x->items->len; k++) {
        const PItem *it = &g_array_index(x->items, PItem, k);
        if (it->index < 0 || (size_t)it->index >= x->set->n) continue;
        const MsPrompt *p = &x->set->p[it->index];
        if (p->len != it->len || memcmp(p->text, it->text, p->len)) {
            x->set_differs = TRUE;
            break;
        }
    }
    for (size_t i = 0; x->set && !x->set_differs && i < x->set->n; i++) {
        if (g_hash_table_contains(have, GINT_TO_POINTER((int)i + 1))) continue;
        const MsPrompt *p = &x->set->p[i];
        PItem it = { .index = (int)i, .n_tokens = -1, .text = g_memdup2(p->text, p->len + 1), .len = p->len,
                     .labels = g_strdup(p->labels_json) };
        it.text[p->len] = '\0';
        g_array_append_val(x->items, it);
    }
    g_hash_table_destroy(have);
    g_array_sort(x->items, pitem_cmp);
    return rc < 0 ? rc : 0;
}

static void start_reload(Wb *wb, gboolean new_fire);

static void reload_done(Wb *wb, WbJob *j, int rc, const MsError *err, gpointer d)
{
    ReloadJob *x = d;
    if (rc < 0 && rc != MS_ECANCELLED) wb_show_error(wb, "Reading the prompts: %s", err->msg);
    if (rc == 0) {
        GPtrArray *items = g_ptr_array_new_with_free_func(g_object_unref);
        int traced = 0;
        for (guint i = 0; i < x->items->len; i++) {
            PItem *p = &g_array_index(x->items, PItem, i);
            WbPromptItem *it = g_object_new(WB_TYPE_PROMPT_ITEM, NULL);
            it->index = p->index;
            it->n_tokens = p->n_tokens;
            it->text = p->text;
            it->len = p->len;
            it->labels = p->labels;
            p->text = p->labels = NULL;
            char row[400];
            wb_prompt_row_text(it->index, it->text, it->len, it->labels, it->n_tokens, 90, row, sizeof row);
            it->row = g_strdup(row);
            traced += it->n_tokens >= 0;
            g_ptr_array_add(items, it);
        }
        wb_fire_index_free(wb->fire);
        wb->fire = x->fire;
        x->fire = NULL;
        wb->prompt_sel_lock = TRUE;
        g_list_store_splice(wb->prompt_store, 0, g_list_model_get_n_items(G_LIST_MODEL(wb->prompt_store)), items->pdata,
                            items->len);
        wb->prompt_sel_lock = FALSE;
        g_ptr_array_free(items, TRUE);
        /* the selection stays on the same prompt; a first prompt is chosen when none was */
        if (wb->cur_prompt < 0 && x->items->len > 0) set_cur_prompt(wb, g_array_index(x->items, PItem, 0).index);
        select_prompt_index(wb, wb->cur_prompt);
        char b[600];
        const char *src = wb->prompts ? wb->prompts->name : NULL;
        if (wb->run > 0 && src && x->set_differs)
            snprintf(b, sizeof b, "%d traced in run %lld; prompt set: %s (%zu, not this run's: Run traces them)", traced,
                     (long long)wb->run, src, wb->prompts->n);
        else if (wb->run > 0 && src)
            snprintf(b, sizeof b, "%d traced in run %lld; prompt set: %s (%zu)", traced, (long long)wb->run, src,
                     wb->prompts->n);
        else if (wb->run > 0)
            snprintf(b, sizeof b, "%d traced in run %lld", traced, (long long)wb->run);
        else if (src)
            snprintf(b, sizeof b, "Prompt set: %s (%zu, not traced yet)", src, wb->prompts->n);
        else
            snprintf(b, sizeof b, "No prompts: open a prompt set or a trace database, or type prompts");
        wb_label_set(wb->prompts_label, b);
        gtk_widget_set_tooltip_text(wb->prompts_label, b);
        update_filter_label(wb);
        wb_iv_page_prompt_changed(wb->iv);
    }
    if (wb->prompts_again) {
        wb->prompts_again = FALSE;
        wb->prompts_job = NULL;
        start_reload(wb, FALSE);
    }
}

static void start_reload(Wb *wb, gboolean new_fire)
{
    if (wb->prompts_job) {
        wb->prompts_again = TRUE;
        if (new_fire) wb_job_cancel(wb->prompts_job);
        if (new_fire) {
            wb_fire_index_free(wb->fire);
            wb->fire = NULL;
        }
        return;
    }
    ReloadJob *x = g_new0(ReloadJob, 1);
    x->db_path = g_strdup(wb->db_path);
    x->run = wb->run;
    x->set = wb->prompts ? wb_prompt_set_ref(wb->prompts) : NULL;
    x->new_fire = new_fire || !wb->fire;
    x->fire = x->new_fire ? NULL : wb_fire_index_copy(wb->fire);
    wb->prompts_job = wb_job_start(wb, "read prompts", reload_run, reload_done, NULL, x, reload_free);
}

/* --------------------------------------------------------- data changes */

void wb_selection_changed(Wb *wb)
{
    char s[64], b[120];
    wb_selection_describe(&wb->sel, s, sizeof s);
    snprintf(b, sizeof b, "Selected: %s", s);
    wb_label_set(wb->sel_label, b);
    gtk_widget_set_sensitive(wb->clear_sel_btn, wb_selection_active(&wb->sel));
    for (guint i = 0; i < wb->pages->len; i++) wb_view_page_selection(g_ptr_array_index(wb->pages, i), &wb->sel);
    wb_iv_page_selection(wb->iv, &wb->sel);
    gtk_filter_changed(GTK_FILTER(wb->prompt_filter), GTK_FILTER_CHANGE_DIFFERENT);
    select_prompt_index(wb, wb->cur_prompt);
    update_filter_label(wb);
}

static void update_title(Wb *wb)
{
    GString *s = g_string_new(NULL);
    if (wb->model) g_string_append(s, strrchr(wb->model->path, '/') ? strrchr(wb->model->path, '/') + 1 : wb->model->path);
    if (wb->db_path) {
        if (s->len) g_string_append(s, " · ");
        const char *b = strrchr(wb->db_path, '/');
        g_string_append(s, b ? b + 1 : wb->db_path);
        if (wb->run > 0) g_string_append_printf(s, " (run %lld)", (long long)wb->run);
        if (wb->db_readonly) g_string_append(s, ", read-only");
    }
    adw_window_title_set_subtitle(ADW_WINDOW_TITLE(wb->title), s->len ? s->str : "open a model, a prompt set or a trace");
    g_string_free(s, TRUE);
}

void wb_data_changed(Wb *wb, gboolean new_run)
{
    if (new_run) {
        wb_fire_index_free(wb->fire);
        wb->fire = NULL;
    }
    start_reload(wb, new_run);
    for (guint i = 0; i < wb->pages->len; i++) wb_view_page_invalidate(g_ptr_array_index(wb->pages, i), FALSE);
    wb_an_page_data_changed(wb->an);
    update_title(wb);
    wb->last_refresh = wb_now();
}

/* ----------------------------------------------------------------- runs */

typedef struct {
    char *db_path;
    int64_t *ids;
    int n;
    char **names;
    int64_t *n_prompts;
} RunsJob;

static void runs_free(gpointer d)
{
    RunsJob *x = d;
    g_free(x->db_path);
    free(x->ids);
    if (x->names) g_strfreev(x->names);
    g_free(x->n_prompts);
    g_free(x);
}

static int runs_run(WbJob *j, gpointer d, MsError *err)
{
    RunsJob *x = d;
    MsTraceDb *db = ms_trace_open(x->db_path, MS_TRACE_READ, err);
    if (!db) return err->code ? err->code : MS_EDB;
    int rc = ms_trace_runs(db, &x->ids, &x->n, err);
    x->names = g_new0(char *, x->n + 1);
    x->n_prompts = g_new0(int64_t, x->n + 1);
    for (int i = 0; rc >= 0 && i < x->n; i++) {
        MsTraceRunInfo ri;
        memset(&ri, 0, sizeof ri);
        if (ms_trace_run_info(db, x->ids[i], &ri, err) < 0) {
            x->names[i] = g_strdup_printf("run %lld", (long long)x->ids[i]);
            continue;
        }
        x->n_prompts[i] = ri.n_prompts;
        x->names[i] = g_strdup_printf("run %lld · %s · %lld prompts · %s%s%s", (long long)ri.run_id,
                                      ri.kind ? ri.kind : "?", (long long)ri.n_prompts,
                                      ri.model.name[0] ? ri.model.name : ri.model.file_name,
                                      ri.interventions && *ri.interventions ? " · " : "",
                                      ri.interventions && *ri.interventions ? ri.interventions : "");
        ms_trace_run_info_clear(&ri);
    }
    ms_trace_close(db);
    return rc < 0 ? rc : 0;
}

static void set_run(Wb *wb, int64_t run);

static void runs_done(Wb *wb, WbJob *j, int rc, const MsError *err, gpointer d)
{
    RunsJob *x = d;
    if (!wb->db_path || strcmp(wb->db_path, x->db_path)) return;
    if (rc < 0) {
        wb_show_error(wb, "%s", err->msg);
        return;
    }
    g_free(wb->runs);
    wb->runs = g_memdup2(x->ids, sizeof(int64_t) * (size_t)(x->n ? x->n : 1));
    wb->n_runs = x->n;
    wb->run_dropdown_lock = TRUE;
    gtk_string_list_splice(wb->run_names, 0, g_list_model_get_n_items(G_LIST_MODEL(wb->run_names)),
                           (const char *const *)x->names);
    /* keep the current run; follow a run being written; else the newest with prompts */
    int64_t want = 0;
    for (int i = 0; i < x->n; i++)
        if (x->ids[i] == wb->run) want = wb->run;
    if (wb->follow_newest && x->n > 0) want = x->ids[x->n - 1];
    for (int i = x->n - 1; !want && i >= 0; i--)
        if (x->n_prompts[i] > 0) want = x->ids[i];
    if (!want && x->n > 0) want = x->ids[x->n - 1];
    for (int i = 0; i < x->n; i++)
        if (x->ids[i] == want) gtk_drop_down_set_selected(GTK_DROP_DOWN(wb->run_dropdown), (guint)i);
    wb->run_dropdown_lock = FALSE;
    gtk_widget_set_sensitive(wb->run_dropdown, x->n > 0);
    if (want != wb->run) set_run(wb, want);
}

static void refresh_runs(Wb *wb)
{
    if (!wb->db_path) return;
    RunsJob *x = g_new0(RunsJob, 1);
    x->db_path = g_strdup(wb->db_path);
    wb_job_start(wb, "list runs", runs_run, runs_done, NULL, x, runs_free);
}

static void set_run(Wb *wb, int64_t run)
{
    wb->run = run;
    for (guint i = 0; i < wb->pages->len; i++) {
        ViewPage *p = g_ptr_array_index(wb->pages, i);
        (void)p;
    }
    wb_data_changed(wb, TRUE);
}

static void run_dd_cb(GObject *o, GParamSpec *ps, gpointer user)
{
    Wb *wb = user;
    if (wb->run_dropdown_lock) return;
    guint i = gtk_drop_down_get_selected(GTK_DROP_DOWN(wb->run_dropdown));
    if (i < (guint)wb->n_runs && wb->runs[i] != wb->run) set_run(wb, wb->runs[i]);
}

/* Poll the database for new data (a trace being written, here or elsewhere). */
static gboolean poll_cb(gpointer user)
{
    Wb *wb = user;
    if (!wb->db_path) return G_SOURCE_CONTINUE;
    if (!wb->db_poll) {
        if (!wb_db_is_uri(wb->db_path) && g_access(wb->db_path, R_OK) != 0) return G_SOURCE_CONTINUE;
        MsError err = { 0 };
        wb->db_poll = ms_trace_open(wb->db_path, MS_TRACE_READ, &err);
        if (!wb->db_poll) return G_SOURCE_CONTINUE;
        wb->db_stamp = 0;
        ms_trace_changed(wb->db_poll, &wb->db_stamp, &err);
        refresh_runs(wb);
        return G_SOURCE_CONTINUE;
    }
    MsError err = { 0 };
    int ch = ms_trace_changed(wb->db_poll, &wb->db_stamp, &err);
    if (ch <= 0) return G_SOURCE_CONTINUE;
    /* new runs or prompts: the lists now, the pictures at most once a second */
    refresh_runs(wb);
    start_reload(wb, FALSE);
    if (wb_now() - wb->last_refresh >= 1.0) {
        for (guint i = 0; i < wb->pages->len; i++) wb_view_page_invalidate(g_ptr_array_index(wb->pages, i), FALSE);
        wb->last_refresh = wb_now();
    }
    return G_SOURCE_CONTINUE;
}

/* ---------------------------------------------------------------- opening */

void wb_remember_file(Wb *wb, const char *kind, const char *path)
{
    char *abs = wb_canonical_path(path);
    wb_recent_add(wb->settings, kind, abs);
    g_free(abs);
    wb_update_recent_menu(wb);
}

typedef struct {
    char *path;
    WbModel *model;
} ModelJob;

static void model_job_free(gpointer d)
{
    ModelJob *x = d;
    g_free(x->path);
    wb_model_unref(x->model);
    g_free(x);
}

static int model_run(WbJob *j, gpointer d, MsError *err)
{
    ModelJob *x = d;
    MsModel *m = ms_model_load(x->path, err);
    if (!m) return err->code ? err->code : MS_EFORMAT;
    x->model = g_atomic_rc_box_new0(WbModel);
    x->model->m = m;
    x->model->path = g_strdup(x->path);
    return 0;
}

static void show_model_info(Wb *wb)
{
    GtkWidget *g = wb->model_grid;
    GtkWidget *c;
    while ((c = gtk_widget_get_first_child(g))) gtk_grid_remove(GTK_GRID(g), c);
    if (!wb->model) {
        GtkWidget *l = gtk_label_new("No model. Open one with Ctrl+O (a GGUF file).");
        gtk_label_set_ellipsize(GTK_LABEL(l), PANGO_ELLIPSIZE_END);
        gtk_label_set_xalign(GTK_LABEL(l), 0);
        gtk_widget_add_css_class(l, "dim-label");
        gtk_grid_attach(GTK_GRID(g), l, 0, 0, 2, 1);
        return;
    }
    WbInfoRow rows[20];
    int n = wb_model_info_rows(wb->model->m, wb->model->path, rows, 20);
    for (int i = 0; i < n; i++) {
        GtkWidget *k = gtk_label_new(rows[i].name), *v = gtk_label_new(rows[i].value);
        gtk_label_set_xalign(GTK_LABEL(k), 0);
        gtk_label_set_xalign(GTK_LABEL(v), 0);
        gtk_label_set_selectable(GTK_LABEL(v), TRUE);
        gtk_label_set_ellipsize(GTK_LABEL(v), PANGO_ELLIPSIZE_MIDDLE);
        gtk_widget_add_css_class(k, "dim-label");
        char *name = g_strdup_printf("Model %s: %s", rows[i].name, rows[i].value);
        wb_labelled(v, name);
        g_free(name);
        gtk_grid_attach(GTK_GRID(g), k, 0, i, 1, 1);
        gtk_grid_attach(GTK_GRID(g), v, 1, i, 1, 1);
    }
}

static void model_done(Wb *wb, WbJob *j, int rc, const MsError *err, gpointer d)
{
    ModelJob *x = d;
    if (rc < 0) {
        wb_show_error(wb, "Cannot open the model: %s", err->msg);
        return;
    }
    WbGrid *old = wb->grid;
    WbGrid *g = wb_grid_new_for_model(x->model->m);
    if (!g) {
        wb_show_error(wb, "%s: the model's shape does not fit the intervention grid", x->path);
        return;
    }
    /* keep the set when the new model has the same shape */
    if (old) wb_grid_set_intervention(g, wb_grid_intervention(old), NULL);
    wb_grid_free(old);
    wb->grid = g;
    wb_model_unref(wb->model);
    wb->model = x->model;
    x->model = NULL;
    show_model_info(wb);
    wb_iv_page_model_changed(wb->iv);
    wb_iv_page_selection(wb->iv, &wb->sel);
    wb_remember_file(wb, "model", x->path);
    update_title(wb);
    wb_status(wb, "Model %s loaded in %.2f s", x->path, j->t_end - j->t_start);
}

void wb_open_model(Wb *wb, const char *path)
{
    ModelJob *x = g_new0(ModelJob, 1);
    x->path = g_strdup(path);
    wb_status(wb, "Opening model %s…", path);
    wb_job_start(wb, "open model", model_run, model_done, NULL, x, model_job_free);
}

typedef struct {
    char *path;
    WbPromptSet *set;
} PromptsJob;

static void prompts_job_free(gpointer d)
{
    PromptsJob *x = d;
    g_free(x->path);
    if (x->set) wb_prompt_set_unref(x->set);
    g_free(x);
}

static int prompts_run(WbJob *j, gpointer d, MsError *err)
{
    PromptsJob *x = d;
    MsPrompt *p = NULL;
    size_t n = 0;
    int rc = ms_prompts_read(x->path, &p, &n, err);
    if (rc < 0) return rc;
    if (n == 0) {
        ms_prompts_free(p, n);
        return ms_error_set(err, MS_EFORMAT, "%s: no prompts in the file", x->path);
    }
    x->set = g_atomic_rc_box_new0(WbPromptSet);
    x->set->p = p;
    x->set->n = n;
    x->set->name = g_strdup(x->path);
    return 0;
}

void wb_set_prompt_set(Wb *wb, WbPromptSet *set)
{
    if (wb->prompts) wb_prompt_set_unref(wb->prompts);
    wb->prompts = set;
    start_reload(wb, FALSE);
}

static void prompts_done(Wb *wb, WbJob *j, int rc, const MsError *err, gpointer d)
{
    PromptsJob *x = d;
    if (rc < 0) {
        wb_show_error(wb, "Cannot read the prompts: %s", err->msg);
        return;
    }
    size_t n = x->set->n;
    wb_set_prompt_set(wb, x->set);
    x->set = NULL;
    wb_remember_file(wb, "prompts", x->path);
    wb_status(wb, "%zu prompts read from %s", n, x->path);
}

void wb_open_prompts(Wb *wb, const char *path)
{
    PromptsJob *x = g_new0(PromptsJob, 1);
    x->path = g_strdup(path);
    wb_job_start(wb, "read prompts", prompts_run, prompts_done, NULL, x, prompts_job_free);
}

typedef struct {
    char *path;
    gboolean readonly;
    char *display;             /* the name shown: a URI without its password */
} DbJob;

static void db_job_free(gpointer d)
{
    DbJob *x = d;
    g_free(x->path);
    g_free(x->display);
    g_free(x);
}

static int db_run(WbJob *j, gpointer d, MsError *err)
{
    DbJob *x = d;
    /* opened for writing once: migrates an older schema; read-only never writes */
    MsTraceDb *db = ms_trace_open(x->path, x->readonly ? MS_TRACE_READ : MS_TRACE_WRITE, err);
    if (!db) return err->code ? err->code : MS_EDB;
    x->display = g_strdup(ms_trace_path(db));
    ms_trace_close(db);
    return 0;
}

static void db_done(Wb *wb, WbJob *j, int rc, const MsError *err, gpointer d)
{
    DbJob *x = d;
    if (rc < 0) {
        wb_show_error(wb, "Cannot open the trace database: %s", err->msg);
        return;
    }
    if (wb->long_job && wb->follow_newest) {
        wb_show_error(wb, "A trace is being written: wait for it or Cancel it before opening another database");
        return;
    }
    ms_trace_close(wb->db_poll);
    wb->db_poll = NULL;
    g_free(wb->db_path);
    /* a PostgreSQL URI is kept as given (the password too: it reconnects) */
    wb->db_path = wb_canonical_path(x->path);
    wb->db_readonly = x->readonly;
    wb->run = 0;
    const char *shown = wb_db_is_uri(x->path) && x->display ? x->display : wb->db_path;
    char *s = g_strdup_printf("%s%s", shown, x->readonly ? " (read-only)" : "");
    wb_label_set(wb->db_label, s);
    g_free(s);
    if (!wb_db_uri_has_password(x->path)) wb_remember_file(wb, "db", x->path);   /* no password in the settings file */
    wb_data_changed(wb, TRUE);
    poll_cb(wb);   /* opens the polling handle and lists the runs */
    wb_status(wb, "Trace database %s opened%s", shown, x->readonly ? " read-only" : "");
}

void wb_open_db(Wb *wb, const char *path, gboolean readonly)
{
    DbJob *x = g_new0(DbJob, 1);
    x->path = g_strdup(path);
    x->readonly = readonly;
    wb_job_start(wb, "open database", db_run, db_done, NULL, x, db_job_free);
}

/* 1 when path is the open database, 2 one of its companions (-wal, -shm,
 * -journal), else 0; by stat(), which opens nothing: reading them here to
 * tell their kind would drop this process's locks on them (chooser.c). */
static int open_db_file(Wb *wb, const char *path)
{
    struct stat a, b;
    if (!wb->db_path || wb_db_is_uri(wb->db_path) || stat(path, &a) != 0) return 0;
    static const char *const suffix[] = { "", "-wal", "-shm", "-journal" };
    for (size_t i = 0; i < G_N_ELEMENTS(suffix); i++) {
        char *p = g_strconcat(wb->db_path, suffix[i], NULL);
        gboolean same = stat(p, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
        g_free(p);
        if (same) return i == 0 ? 1 : 2;
    }
    return 0;
}

void wb_open_any(Wb *wb, const char *path)
{
    int open_db = open_db_file(wb, path);
    if (open_db == 1) {
        wb_open_db(wb, path, wb->db_readonly);
        return;
    }
    if (open_db == 2) {
        wb_show_error(wb, "Cannot open %s: it is a working file of the open database %s (open that instead)", path,
                      wb->db_path);
        return;
    }
    MsError err = { 0 };
    int k = wb_file_kind(path, &err);
    if (k == WB_FILE_MODEL) wb_open_model(wb, path);
    else if (k == WB_FILE_DB) wb_open_db(wb, path, FALSE);
    else if (k == WB_FILE_TEXT && wb_text_is_intervention_set(path))
        gtk_widget_activate_action(GTK_WIDGET(wb->win), "win.load-interventions", "s", path);
    else if (k == WB_FILE_TEXT) wb_open_prompts(wb, path);
    else wb_show_error(wb, "Cannot open %s: %s", path, err.msg[0] ? err.msg : "unknown kind of file");
}

/* ----------------------------------------------------------------- tracing */

typedef struct {
    WbModel *model;
    WbPromptSet *set;
    char *db_path;
    int n_gen;
    gboolean probs, stats;
    MsTraceJobResult res;
} TraceJob;

static void trace_free(gpointer d)
{
    TraceJob *x = d;
    wb_model_unref(x->model);
    wb_prompt_set_unref(x->set);
    g_free(x->db_path);
    g_free(x);
}

static int trace_run(WbJob *j, gpointer d, MsError *err)
{
    TraceJob *x = d;
    MsTraceDb *db = ms_trace_open(x->db_path, MS_TRACE_CREATE, err);
    if (!db) return err->code ? err->code : MS_EDB;
    MsTraceJob t;
    ms_trace_job_init(&t);
    t.prompts_name = x->set->name;
    t.n_gen = x->n_gen;
    t.probs = x->probs;
    t.stats = x->stats;
    t.progress = wb_job_report;
    t.progress_user = j;
    t.cancel = &j->cancel;
    int rc = ms_trace_job_run(&t, x->model->m, x->model->path, x->set->p, x->set->n, db, &x->res, err);
    ms_trace_close(db);
    return rc;
}

static void trace_progress(Wb *wb, WbJob *j, const MsProgress *p, gpointer d)
{
    wb_progress_show(wb, "Tracing", "prompts", p);
}

static void trace_done(Wb *wb, WbJob *j, int rc, const MsError *err, gpointer d)
{
    TraceJob *x = d;
    wb->follow_newest = FALSE;
    if (rc == MS_ECANCELLED) {
        wb_status(wb, "Cancelled: %zu of %zu prompts committed and kept in run %lld (stopped %.2f s after Cancel)",
                  x->res.n_written, x->res.n_prompts, (long long)x->res.run_id, j->t_end - j->t_cancel);
    } else if (rc < 0) {
        wb_show_error(wb, "Run failed: %s", err->msg);
    } else {
        wb_status(wb, "Traced %zu prompts (%lld tokens) into run %lld in %.1f s", x->res.n_written,
                  (long long)x->res.tokens, (long long)x->res.run_id, x->res.wall_s);
    }
    if (x->res.run_id > 0) wb->run = x->res.run_id;
    refresh_runs(wb);
    wb_data_changed(wb, TRUE);
}

static char *new_db_path(void)
{
    char *dir = g_build_filename(g_get_user_data_dir(), "moescope", "traces", NULL);
    g_mkdir_with_parents(dir, 0700);
    GDateTime *t = g_date_time_new_now_local();
    char *stamp = g_date_time_format(t, "%Y%m%d-%H%M%S");
    char *name = g_strdup_printf("trace-%s.db", stamp);
    char *p = g_build_filename(dir, name, NULL);
    g_date_time_unref(t);
    g_free(stamp);
    g_free(name);
    g_free(dir);
    return p;
}

static void act_run(GSimpleAction *a, GVariant *v, gpointer user)
{
    Wb *wb = user;
    if (!wb->model) {
        wb_show_error(wb, "Run: open a model first (Ctrl+O)");
        return;
    }
    if (!wb->prompts || wb->prompts->n == 0) {
        wb_show_error(wb, "Run: open a prompt set (a text or JSONL file) or type prompts first");
        return;
    }
    if (wb->db_path && wb->db_readonly) {
        wb_show_error(wb, "Run: %s is open read-only; open it for writing, or open a new database to trace into",
                      wb->db_path);
        return;
    }
    if (wb->long_job) {
        wb_show_error(wb, "%s is still running: wait for it or Cancel it first", wb->long_job->what);
        return;
    }
    gboolean fresh = !wb->db_path;
    if (fresh) {
        wb->db_path = new_db_path();
        wb->db_readonly = FALSE;
        wb_label_set(wb->db_label, wb->db_path);
    }
    TraceJob *x = g_new0(TraceJob, 1);
    x->model = wb_model_ref(wb->model);
    x->set = wb_prompt_set_ref(wb->prompts);
    x->db_path = g_strdup(wb->db_path);
    x->n_gen = gtk_spin_button_get_value_as_int(GTK_SPIN_BUTTON(wb->gen_spin));
    x->probs = gtk_switch_get_active(GTK_SWITCH(wb->probs_switch));
    x->stats = gtk_switch_get_active(GTK_SWITCH(wb->stats_switch));
    WbJob *j = wb_job_start(wb, "tracing", trace_run, trace_done, trace_progress, x, trace_free);
    if (!wb_long_job_begin(wb, j)) return;
    wb->follow_newest = TRUE;
    if (fresh) wb_remember_file(wb, "db", wb->db_path);
    update_title(wb);
    wb_status(wb, "Tracing %zu prompts into %s", wb->prompts->n, wb->db_path);
}

static void act_cancel(GSimpleAction *a, GVariant *v, gpointer user)
{
    Wb *wb = user;
    if (!wb->long_job) return;
    wb_job_cancel(wb->long_job);
    wb_label_set(wb->progress_label, "Cancelling…");
}

static void cancel_btn_cb(GtkButton *b, gpointer user) { act_cancel(NULL, NULL, user); }

/* ---------------------------------------------------------------- export */

typedef struct {
    char *db_path;
    WbTraceExport e;
} ExportJob;

static void export_free(gpointer d)
{
    ExportJob *x = d;
    g_free(x->db_path);
    g_free(x);
}

static int export_run(WbJob *j, gpointer d, MsError *err)
{
    ExportJob *x = d;
    MsTraceDb *db = ms_trace_open(x->db_path, MS_TRACE_READ, err);
    if (!db) return err->code ? err->code : MS_EDB;
    int rc;
    if (x->e.format == MS_EXPORT_CSV) {
        rc = ms_trace_export(db, MS_EXPORT_CSV, NULL, NULL, x->e.path, err);
    } else {
        /* a temporary file renamed at the end: a failure leaves nothing */
        char *tmp = g_strdup_printf("%s.tmp%ld", x->e.path, (long)getpid());
        FILE *f = fopen(tmp, "w");
        if (!f) {
            rc = ms_error_set(err, MS_EIO, "%s: cannot write: %s", x->e.path, strerror(errno));
        } else {
            rc = ms_trace_export(db, x->e.format, NULL, f, NULL, err);
            if ((fclose(f) != 0) && rc >= 0) rc = ms_error_set(err, MS_EIO, "%s: write failed: %s", x->e.path, strerror(errno));
            if (rc >= 0 && rename(tmp, x->e.path) != 0)
                rc = ms_error_set(err, MS_EIO, "%s: %s", x->e.path, strerror(errno));
            if (rc < 0) unlink(tmp);
        }
        g_free(tmp);
    }
    ms_trace_close(db);
    return rc;
}

static void export_done(Wb *wb, WbJob *j, int rc, const MsError *err, gpointer d)
{
    ExportJob *x = d;
    if (rc < 0) wb_show_error(wb, "Export failed: %s", err->msg);
    else wb_status(wb, "Exported the trace as %s to %s", wb_export_format_name(x->e.format), x->e.path);
}

static void act_export_trace(GSimpleAction *a, GVariant *v, gpointer user)
{
    Wb *wb = user;
    ExportJob *x = g_new0(ExportJob, 1);
    MsError err = { 0 };
    if (!wb->db_path) {
        wb_show_error(wb, "Export: no trace database is open");
        g_free(x);
        return;
    }
    if (wb_trace_export_parse(g_variant_get_string(v, NULL), &x->e, &err) < 0) {
        wb_show_error(wb, "%s", err.msg);
        g_free(x);
        return;
    }
    x->db_path = g_strdup(wb->db_path);
    WbJob *j = wb_job_start(wb, "export", export_run, export_done, NULL, x, export_free);
    wb_long_job_begin(wb, j);
}

static void act_export_view(GSimpleAction *a, GVariant *v, gpointer user)
{
    Wb *wb = user;
    WbViewExport e;
    MsError err = { 0 };
    if (wb_view_export_parse(g_variant_get_string(v, NULL), &e, &err) < 0) {
        wb_show_error(wb, "%s", err.msg);
        return;
    }
    ViewPage *p = wb_visible_view_page(wb);
    if (!p) {
        wb_show_error(wb, "Export view: show a view first (the sidebar lists them)");
        return;
    }
    wb_view_page_export(p, &e);
}

static void act_save_iv(GSimpleAction *a, GVariant *v, gpointer user)
{
    Wb *wb = user;
    MsError err = { 0 };
    const char *path = g_variant_get_string(v, NULL);
    if (!wb->grid) {
        wb_show_error(wb, "Save the intervention set: open a model first");
        return;
    }
    if (wb_grid_save_file(wb->grid, path, &err) < 0) wb_show_error(wb, "%s", err.msg);
    else {
        wb_remember_file(wb, "interventions", path);
        wb_status(wb, "Intervention set saved to %s", path);
    }
}

static void act_load_iv(GSimpleAction *a, GVariant *v, gpointer user)
{
    Wb *wb = user;
    MsError err = { 0 };
    const char *path = g_variant_get_string(v, NULL);
    if (!wb->grid) {
        wb_show_error(wb, "Load an intervention set: open a model first");
        return;
    }
    if (wb_grid_load_file(wb->grid, path, &err) < 0) {
        wb_show_error(wb, "%s", err.msg);
        return;
    }
    wb_remember_file(wb, "interventions", path);
    wb_iv_page_refresh(wb->iv);
    wb_status(wb, "Intervention set loaded from %s (%d operators)", path, wb_grid_count(wb->grid));
}

/* ------------------------------------------------------------- the pages */

static void show_page(Wb *wb, const char *name)
{
    GtkWidget *c = gtk_stack_get_child_by_name(GTK_STACK(wb->stack), name);
    if (!c) {
        wb_show_error(wb, "No page '%s'", name);
        return;
    }
    gtk_stack_set_visible_child(GTK_STACK(wb->stack), c);
}

static void act_show_page(GSimpleAction *a, GVariant *v, gpointer user) { show_page(user, g_variant_get_string(v, NULL)); }

static void stack_changed_cb(GtkStack *s, GParamSpec *ps, gpointer user)
{
    Wb *wb = user;
    const char *name = gtk_stack_get_visible_child_name(s);
    for (guint i = 0; name && i < wb->pages->len; i++) {
        ViewPage *p = g_ptr_array_index(wb->pages, i);
        if (!strcmp(wb_view_page_class(p)->name, name)) {
            wb_view_page_shown(p);
            return;
        }
    }
    for (guint i = 0; i < wb->pages->len; i++) {
        /* no view visible: none prepares in the background */
        ViewPage *p = g_ptr_array_index(wb->pages, i);
        (void)p;
    }
}

static void act_select_expert(GSimpleAction *a, GVariant *v, gpointer user)
{
    Wb *wb = user;
    const char *s = g_variant_get_string(v, NULL);
    int l = -1, e = -1;
    if (*s && (sscanf(s, "%d:%d", &l, &e) != 2 || l < 0 || e < 0)) {
        wb_show_error(wb, "select-expert: '%s' is not LAYER:EXPERT", s);
        return;
    }
    if (wb_selection_set(&wb->sel, l, e)) wb_selection_changed(wb);
}

static void act_clear_selection(GSimpleAction *a, GVariant *v, gpointer user)
{
    Wb *wb = user;
    if (wb_selection_set(&wb->sel, -1, -1)) wb_selection_changed(wb);
}

static void clear_sel_cb(GtkButton *b, gpointer user) { act_clear_selection(NULL, NULL, user); }

static void act_select_prompt(GSimpleAction *a, GVariant *v, gpointer user)
{
    Wb *wb = user;
    int i = g_variant_get_int32(v);
    if (!wb_prompt_text(wb, i, NULL)) {
        wb_show_error(wb, "select-prompt: there is no prompt #%d", i);
        return;
    }
    set_cur_prompt(wb, i);
    select_prompt_index(wb, i);
}

static void act_apply(GSimpleAction *a, GVariant *v, gpointer user) { wb_iv_apply(((Wb *)user)->iv); }
static void act_run_all(GSimpleAction *a, GVariant *v, gpointer user) { wb_iv_run_all(((Wb *)user)->iv); }
static void act_load_plan(GSimpleAction *a, GVariant *v, gpointer user)
{
    wb_iv_load_plan(((Wb *)user)->iv, g_variant_get_string(v, NULL));
}
static void act_run_analysis(GSimpleAction *a, GVariant *v, gpointer user) { wb_an_run(((Wb *)user)->an); }

static void act_toggle_sidebar(GSimpleAction *a, GVariant *v, gpointer user)
{
    Wb *wb = user;
    gtk_widget_set_visible(wb->sidebar, !gtk_widget_get_visible(wb->sidebar));
}

static void act_use_typed(GSimpleAction *a, GVariant *v, gpointer user)
{
    Wb *wb = user;
    GtkTextBuffer *b = gtk_text_view_get_buffer(GTK_TEXT_VIEW(wb->typed_view));
    GtkTextIter s, e;
    gtk_text_buffer_get_bounds(b, &s, &e);
    char *text = gtk_text_buffer_get_text(b, &s, &e, FALSE);
    const char *labels = gtk_editable_get_text(GTK_EDITABLE(wb->typed_labels));
    MsPrompt *p = NULL;
    size_t n = 0;
    MsError err = { 0 };
    if (wb_prompts_typed(text, strlen(text), labels, &p, &n, &err) < 0) {
        wb_show_error(wb, "%s", err.msg);
        g_free(text);
        return;
    }
    g_free(text);
    WbPromptSet *set = g_atomic_rc_box_new0(WbPromptSet);
    set->p = p;
    set->n = n;
    set->name = g_strdup("typed prompts");
    wb_set_prompt_set(wb, set);
    wb_status(wb, "%zu typed prompts are the prompt set now (Run traces them)", n);
}

static void use_typed_cb(GtkButton *b, gpointer user) { act_use_typed(NULL, NULL, user); }

/* ----------------------------------------------------------- file choosing */

static void open_any_path(Wb *wb, const char *p) { wb_open_any(wb, p); }
static void open_model_path(Wb *wb, const char *p) { wb_open_model(wb, p); }
static void open_prompts_path(Wb *wb, const char *p) { wb_open_prompts(wb, p); }
static void open_db_path(Wb *wb, const char *p) { wb_open_db(wb, p, FALSE); }
static void open_db_ro_path(Wb *wb, const char *p) { wb_open_db(wb, p, TRUE); }

static void act_open(GSimpleAction *a, GVariant *v, gpointer user)
{
    wb_choose_file(user, "Open a model, a prompt set, a trace database or an intervention set",
                   GTK_FILE_CHOOSER_ACTION_OPEN, "_Open", open_any_path);
}
static void act_open_model_dlg(GSimpleAction *a, GVariant *v, gpointer user)
{
    wb_choose_file(user, "Open a model (GGUF)", GTK_FILE_CHOOSER_ACTION_OPEN, "_Open", open_model_path);
}
static void act_open_prompts_dlg(GSimpleAction *a, GVariant *v, gpointer user)
{
    wb_choose_file(user, "Open a prompt set (text or JSONL)", GTK_FILE_CHOOSER_ACTION_OPEN, "_Open", open_prompts_path);
}
static void act_open_db_dlg(GSimpleAction *a, GVariant *v, gpointer user)
{
    wb_choose_file(user, "Open a trace database", GTK_FILE_CHOOSER_ACTION_OPEN, "_Open", open_db_path);
}
static void act_open_db_ro_dlg(GSimpleAction *a, GVariant *v, gpointer user)
{
    wb_choose_file(user, "Open a trace database read-only", GTK_FILE_CHOOSER_ACTION_OPEN, "_Open", open_db_ro_path);
}
/* "PostgreSQL database…": a URI where the file dialogs take a file */
typedef struct {
    Wb *wb;
    GtkWidget *win, *entry, *ro, *msg;
} UriDlg;

static void uri_open_cb(GtkWidget *b, gpointer user)
{
    UriDlg *d = user;
    const char *t = gtk_editable_get_text(GTK_EDITABLE(d->entry));
    MsError err = { 0 };
    if (wb_db_uri_check(t, &err) < 0) {
        gtk_label_set_text(GTK_LABEL(d->msg), err.msg);
        return;
    }
    wb_open_db(d->wb, t, gtk_check_button_get_active(GTK_CHECK_BUTTON(d->ro)));
    gtk_window_destroy(GTK_WINDOW(d->win));
}
static void uri_cancel_cb(GtkWidget *b, gpointer user) { gtk_window_destroy(GTK_WINDOW(((UriDlg *)user)->win)); }
static void uri_destroyed(GtkWidget *w, gpointer user) { g_free(user); }

static void act_open_db_uri_dlg(GSimpleAction *a, GVariant *v, gpointer user)
{
    Wb *wb = user;
    UriDlg *d = g_new0(UriDlg, 1);
    d->wb = wb;
    d->win = gtk_window_new();
    gtk_window_set_title(GTK_WINDOW(d->win), "Open a PostgreSQL trace database");
    gtk_window_set_transient_for(GTK_WINDOW(d->win), wb->win);
    gtk_window_set_modal(GTK_WINDOW(d->win), TRUE);
    GtkWidget *box = gtk_box_new(GTK_ORIENTATION_VERTICAL, 8);
    gtk_widget_set_margin_start(box, 16);
    gtk_widget_set_margin_end(box, 16);
    gtk_widget_set_margin_top(box, 16);
    gtk_widget_set_margin_bottom(box, 16);
    d->entry = gtk_entry_new();
    gtk_entry_set_placeholder_text(GTK_ENTRY(d->entry), "postgresql://user@host:5432/dbname");
    gtk_editable_set_width_chars(GTK_EDITABLE(d->entry), 44);
    g_signal_connect(d->entry, "activate", G_CALLBACK(uri_open_cb), d);
    gtk_box_append(GTK_BOX(box), wb_labelled(d->entry, "Connection URI (libpq syntax; PG* environment variables apply)"));
    d->ro = gtk_check_button_new_with_mnemonic("_Read-only");
    gtk_box_append(GTK_BOX(box), d->ro);
    d->msg = gtk_label_new("");
    gtk_label_set_wrap(GTK_LABEL(d->msg), TRUE);
    gtk_box_append(GTK_BOX(box), d->msg);
    gtk_box_append(GTK_BOX(box), wb_dialog_buttons("_Open", G_CALLBACK(uri_open_cb), G_CALLBACK(uri_cancel_cb), d));
    gtk_window_set_child(GTK_WINDOW(d->win), box);
    g_signal_connect(d->win, "destroy", G_CALLBACK(uri_destroyed), d);
    gtk_window_present(GTK_WINDOW(d->win));
}

static void act_export_dlg(GSimpleAction *a, GVariant *v, gpointer user) { wb_export_dialog(user); }

static gboolean drop_cb(GtkDropTarget *t, const GValue *value, double x, double y, gpointer user)
{
    Wb *wb = user;
    if (!G_VALUE_HOLDS(value, GDK_TYPE_FILE_LIST)) return FALSE;
    GSList *files = g_value_get_boxed(value);
    for (GSList *l = files; l; l = l->next) {
        char *path = g_file_get_path(l->data);
        if (path) wb_open_any(wb, path);
        g_free(path);
    }
    return files != NULL;
}

/* --------------------------------------------------------------- settings */

void wb_update_recent_menu(Wb *wb)
{
    GMenu *m = g_object_get_data(G_OBJECT(wb->win), "recent-menu");
    if (!m) return;
    g_menu_remove_all(m);
    static const char *const kinds[][3] = { { "model", "app.open-model", "Model" },
                                            { "prompts", "app.open-prompts", "Prompts" },
                                            { "db", "app.open-db", "Database" },
                                            { "interventions", "win.load-interventions", "Interventions" } };
    for (int k = 0; k < 4; k++) {
        const char *r[WB_RECENT_MAX];
        int n = wb_recent_list(wb->settings, kinds[k][0], r, WB_RECENT_MAX);
        for (int i = 0; i < n; i++) {
            const char *base = strrchr(r[i], '/');
            char *label = g_strdup_printf("%s: %s", kinds[k][2], base ? base + 1 : r[i]);
            GMenuItem *it = g_menu_item_new(label, NULL);
            g_menu_item_set_action_and_target_value(it, kinds[k][1], g_variant_new_string(r[i]));
            g_menu_append_item(m, it);
            g_object_unref(it);
            g_free(label);
        }
    }
}

void wb_save_settings(Wb *wb)
{
    WbSettings *s = wb->settings;
    int w = 0, h = 0;
    gtk_window_get_default_size(wb->win, &w, &h);
    if (w > 0 && h > 0) {
        wb_settings_set_int(s, "window", "width", w);
        wb_settings_set_int(s, "window", "height", h);
    }
    wb_settings_set_bool(s, "window", "maximized", gtk_window_is_maximized(wb->win));
    wb_settings_set_bool(s, "panels", "sidebar", gtk_widget_get_visible(wb->sidebar));
    wb_settings_set_int(s, "panels", "sidebar-width", gtk_paned_get_position(GTK_PANED(wb->paned)));
    const char *page = gtk_stack_get_visible_child_name(GTK_STACK(wb->stack));
    if (page) wb_settings_set(s, "panels", "page", page);
    wb_settings_set_int(s, "run", "gen", gtk_spin_button_get_value_as_int(GTK_SPIN_BUTTON(wb->gen_spin)));
    wb_settings_set_bool(s, "run", "probs", gtk_switch_get_active(GTK_SWITCH(wb->probs_switch)));
    wb_settings_set_bool(s, "run", "stats", gtk_switch_get_active(GTK_SWITCH(wb->stats_switch)));
    wb_settings_set_int(s, "apply", "gen", wb_iv_gen_tokens(wb->iv));
    if (wb->model) wb_settings_set(s, "last", "model", wb->model->path);
    if (wb->prompts && strcmp(wb->prompts->name, "typed prompts")) wb_settings_set(s, "last", "prompts", wb->prompts->name);
    if (wb->db_path && !wb_db_uri_has_password(wb->db_path)) {
        wb_settings_set(s, "last", "db", wb->db_path);
        wb_settings_set_bool(s, "last", "db-readonly", wb->db_readonly);
    }
}

static void restore_settings(Wb *wb)
{
    WbSettings *s = wb->settings;
    int w = wb_settings_get_int(s, "window", "width", 1280), h = wb_settings_get_int(s, "window", "height", 820);
    gtk_window_set_default_size(wb->win, CLAMP(w, 640, 8000), CLAMP(h, 480, 8000));
    if (wb_settings_get_bool(s, "window", "maximized", FALSE)) gtk_window_maximize(wb->win);
    gtk_widget_set_visible(wb->sidebar, wb_settings_get_bool(s, "panels", "sidebar", TRUE));
    gtk_paned_set_position(GTK_PANED(wb->paned), CLAMP(wb_settings_get_int(s, "panels", "sidebar-width", 330), 200, 900));
    const char *page = wb_settings_get(s, "panels", "page");
    if (page && gtk_stack_get_child_by_name(GTK_STACK(wb->stack), page))
        gtk_stack_set_visible_child_name(GTK_STACK(wb->stack), page);
    gtk_spin_button_set_value(GTK_SPIN_BUTTON(wb->gen_spin), wb_settings_get_int(s, "run", "gen", 0));
    gtk_switch_set_active(GTK_SWITCH(wb->probs_switch), wb_settings_get_bool(s, "run", "probs", TRUE));
    gtk_switch_set_active(GTK_SWITCH(wb->stats_switch), wb_settings_get_bool(s, "run", "stats", TRUE));
}

static gboolean close_request_cb(GtkWindow *w, gpointer user)
{
    Wb *wb = user;
    wb_save_settings(wb);
    /* running jobs stop at their next check; the application waits for them */
    for (guint i = 0; i < wb->jobs->len; i++) wb_job_cancel(g_ptr_array_index(wb->jobs, i));
    return FALSE;
}

static void destroy_cb(GtkWidget *w, gpointer user)
{
    Wb *wb = user;
    if (wb->poll_id) g_source_remove(wb->poll_id);
    wb->poll_id = 0;
    wb->dead = TRUE;
    wb_chooser_window_gone(wb);
    wb_window_state_release(wb);
}

/* ------------------------------------------------------------------ build */

static const GActionEntry win_actions[] = {
    { "open", act_open, NULL, NULL, NULL, { 0 } },
    { "open-model-dialog", act_open_model_dlg, NULL, NULL, NULL, { 0 } },
    { "open-prompts-dialog", act_open_prompts_dlg, NULL, NULL, NULL, { 0 } },
    { "open-db-dialog", act_open_db_dlg, NULL, NULL, NULL, { 0 } },
    { "open-db-readonly-dialog", act_open_db_ro_dlg, NULL, NULL, NULL, { 0 } },
    { "open-db-uri-dialog", act_open_db_uri_dlg, NULL, NULL, NULL, { 0 } },
    { "run", act_run, NULL, NULL, NULL, { 0 } },
    { "cancel", act_cancel, NULL, NULL, NULL, { 0 } },
    { "export", act_export_dlg, NULL, NULL, NULL, { 0 } },
    { "export-view", act_export_view, "s", NULL, NULL, { 0 } },
    { "export-trace", act_export_trace, "s", NULL, NULL, { 0 } },
    { "save-interventions", act_save_iv, "s", NULL, NULL, { 0 } },
    { "load-interventions", act_load_iv, "s", NULL, NULL, { 0 } },
    { "load-plan", act_load_plan, "s", NULL, NULL, { 0 } },
    { "show-page", act_show_page, "s", NULL, NULL, { 0 } },
    { "select-expert", act_select_expert, "s", NULL, NULL, { 0 } },
    { "clear-selection", act_clear_selection, NULL, NULL, NULL, { 0 } },
    { "select-prompt", act_select_prompt, "i", NULL, NULL, { 0 } },
    { "apply", act_apply, NULL, NULL, NULL, { 0 } },
    { "run-all", act_run_all, NULL, NULL, NULL, { 0 } },
    { "run-analysis", act_run_analysis, NULL, NULL, NULL, { 0 } },
    { "use-typed-prompts", act_use_typed, NULL, NULL, NULL, { 0 } },
    { "toggle-sidebar", act_toggle_sidebar, NULL, NULL, NULL, { 0 } },
};

static GtkWidget *heading(const char *text)
{
    GtkWidget *l = gtk_label_new(text);
    gtk_widget_add_css_class(l, "heading");
    gtk_label_set_xalign(GTK_LABEL(l), 0);
    gtk_widget_set_margin_top(l, 6);
    return l;
}

static GtkWidget *option_row(const char *caption, GtkWidget *w)
{
    GtkWidget *b = gtk_box_new(GTK_ORIENTATION_HORIZONTAL, 8);
    GtkWidget *l = gtk_label_new(caption);
    gtk_label_set_xalign(GTK_LABEL(l), 0);
    /* wraps rather than widen the side panel when Run options opens */
    gtk_label_set_wrap(GTK_LABEL(l), TRUE);
    gtk_label_set_wrap_mode(GTK_LABEL(l), PANGO_WRAP_WORD_CHAR);
    gtk_widget_set_hexpand(l, TRUE);
    gtk_box_append(GTK_BOX(b), l);
    gtk_widget_set_valign(w, GTK_ALIGN_CENTER);
    gtk_box_append(GTK_BOX(b), wb_labelled(w, caption));
    return b;
}

static GtkWidget *build_sidebar(Wb *wb)
{
    GtkWidget *box = gtk_box_new(GTK_ORIENTATION_VERTICAL, 4);
    gtk_widget_set_margin_start(box, 10);
    gtk_widget_set_margin_end(box, 6);
    gtk_widget_set_margin_top(box, 4);
    gtk_widget_set_margin_bottom(box, 6);

    GtkWidget *mx = wb_labelled(gtk_expander_new("Model"), "Model details");
    gtk_expander_set_expanded(GTK_EXPANDER(mx), TRUE);
    gtk_widget_add_css_class(mx, "heading");
    wb->model_grid = gtk_grid_new();
    gtk_grid_set_column_spacing(GTK_GRID(wb->model_grid), 10);
    gtk_grid_set_row_spacing(GTK_GRID(wb->model_grid), 1);
    gtk_widget_set_margin_start(wb->model_grid, 4);
    gtk_widget_add_css_class(wb->model_grid, "model-info");
    gtk_expander_set_child(GTK_EXPANDER(mx), wb->model_grid);
    gtk_box_append(GTK_BOX(box), mx);

    gtk_box_append(GTK_BOX(box), heading("Trace database"));
    wb->db_label = gtk_label_new("None open (Run creates one)");
    gtk_label_set_xalign(GTK_LABEL(wb->db_label), 0);
    gtk_label_set_ellipsize(GTK_LABEL(wb->db_label), PANGO_ELLIPSIZE_START);
    gtk_label_set_selectable(GTK_LABEL(wb->db_label), TRUE);
    gtk_widget_add_css_class(wb->db_label, "dim-label");
    gtk_box_append(GTK_BOX(box), wb->db_label);
    wb->run_names = gtk_string_list_new(NULL);
    wb->run_dropdown = wb_labelled(wb_string_dropdown(wb->run_names, 30), "Run");
    gtk_widget_set_sensitive(wb->run_dropdown, FALSE);
    g_signal_connect(wb->run_dropdown, "notify::selected", G_CALLBACK(run_dd_cb), wb);
    gtk_box_append(GTK_BOX(box), wb->run_dropdown);

    GtkWidget *rx = wb_labelled(gtk_expander_new(NULL), "Run options");
    GtkWidget *rxl = gtk_label_new("Run options");
    gtk_widget_add_css_class(rxl, "heading");   /* the title only: its options are in the body font */
    gtk_expander_set_label_widget(GTK_EXPANDER(rx), rxl);
    GtkWidget *ro = gtk_box_new(GTK_ORIENTATION_VERTICAL, 4);
    wb->gen_spin = gtk_spin_button_new_with_range(0, 4096, 1);
    gtk_box_append(GTK_BOX(ro), option_row("Tokens generated per prompt", wb->gen_spin));
    wb->probs_switch = gtk_switch_new();
    gtk_box_append(GTK_BOX(ro), option_row("Store router probabilities", wb->probs_switch));
    wb->stats_switch = gtk_switch_new();
    gtk_box_append(GTK_BOX(ro), option_row("Store expert output statistics", wb->stats_switch));
    gtk_expander_set_child(GTK_EXPANDER(rx), ro);
    gtk_box_append(GTK_BOX(box), rx);

    gtk_box_append(GTK_BOX(box), heading("Prompts"));
    wb->prompts_label = wb_labelled(gtk_label_new("No prompts: open a prompt set or a trace database, or type prompts"), "Prompt source");
    gtk_label_set_xalign(GTK_LABEL(wb->prompts_label), 0);
    /* wraps (up to three lines) so its end, which says whose prompts the
     * list shows, stays readable without widening the side panel */
    gtk_label_set_wrap(GTK_LABEL(wb->prompts_label), TRUE);
    gtk_label_set_wrap_mode(GTK_LABEL(wb->prompts_label), PANGO_WRAP_WORD_CHAR);
    gtk_label_set_lines(GTK_LABEL(wb->prompts_label), 3);
    gtk_label_set_ellipsize(GTK_LABEL(wb->prompts_label), PANGO_ELLIPSIZE_END);
    gtk_widget_add_css_class(wb->prompts_label, "dim-label");
    gtk_box_append(GTK_BOX(box), wb->prompts_label);
    wb->filter_label = wb_labelled(gtk_label_new("0 prompts"), "Prompt filter");
    gtk_label_set_xalign(GTK_LABEL(wb->filter_label), 0);
    gtk_label_set_ellipsize(GTK_LABEL(wb->filter_label), PANGO_ELLIPSIZE_END);
    gtk_box_append(GTK_BOX(box), wb->filter_label);

    wb->prompt_store = g_list_store_new(WB_TYPE_PROMPT_ITEM);
    wb->prompt_filter = gtk_custom_filter_new(prompt_filter_func, wb, NULL);
    wb->prompt_filtered = gtk_filter_list_model_new(G_LIST_MODEL(g_object_ref(wb->prompt_store)),
                                                    GTK_FILTER(g_object_ref(wb->prompt_filter)));
    wb->prompt_sel = gtk_single_selection_new(G_LIST_MODEL(wb->prompt_filtered));
    gtk_single_selection_set_autoselect(wb->prompt_sel, FALSE);
    gtk_single_selection_set_can_unselect(wb->prompt_sel, TRUE);
    g_signal_connect(wb->prompt_sel, "notify::selected", G_CALLBACK(prompt_selected_cb), wb);
    GtkListItemFactory *f = gtk_signal_list_item_factory_new();
    g_signal_connect(f, "setup", G_CALLBACK(prompt_setup), NULL);
    g_signal_connect(f, "bind", G_CALLBACK(prompt_bind), NULL);
    wb->prompt_list = gtk_list_view_new(GTK_SELECTION_MODEL(wb->prompt_sel), f);
    wb_labelled(wb->prompt_list, "Prompt list");
    GtkWidget *sc = gtk_scrolled_window_new();
    gtk_scrolled_window_set_policy(GTK_SCROLLED_WINDOW(sc), GTK_POLICY_NEVER, GTK_POLICY_AUTOMATIC);
    gtk_scrolled_window_set_child(GTK_SCROLLED_WINDOW(sc), wb->prompt_list);
    gtk_widget_set_vexpand(sc, TRUE);
    gtk_widget_add_css_class(sc, "card");
    gtk_box_append(GTK_BOX(box), sc);
    return box;
}

static GtkWidget *build_typed_page(Wb *wb)
{
    GtkWidget *v = gtk_box_new(GTK_ORIENTATION_VERTICAL, 8);
    gtk_widget_set_margin_start(v, 10);
    gtk_widget_set_margin_end(v, 10);
    gtk_widget_set_margin_top(v, 8);
    gtk_widget_set_margin_bottom(v, 8);
    GtkWidget *l = gtk_label_new("Type or paste prompts: one per line (\\n, \\t and \\\\ are escapes), or JSONL lines "
                                 "{\"text\": …, \"labels\": {…}}. Labels below go to every prompt that has none.");
    gtk_label_set_wrap(GTK_LABEL(l), TRUE);
    gtk_label_set_xalign(GTK_LABEL(l), 0);
    gtk_box_append(GTK_BOX(v), l);
    wb->typed_view = gtk_text_view_new();
    gtk_text_view_set_monospace(GTK_TEXT_VIEW(wb->typed_view), TRUE);
    gtk_text_view_set_wrap_mode(GTK_TEXT_VIEW(wb->typed_view), GTK_WRAP_WORD_CHAR);
    wb_labelled(wb->typed_view, "Typed prompts");
    GtkWidget *sc = gtk_scrolled_window_new();
    gtk_scrolled_window_set_child(GTK_SCROLLED_WINDOW(sc), wb->typed_view);
    gtk_widget_set_vexpand(sc, TRUE);
    gtk_widget_add_css_class(sc, "card");
    gtk_box_append(GTK_BOX(v), sc);
    GtkWidget *row = gtk_box_new(GTK_ORIENTATION_HORIZONTAL, 8);
    GtkWidget *ll = gtk_label_new("Labels");
    gtk_box_append(GTK_BOX(row), ll);
    wb->typed_labels = gtk_entry_new();
    gtk_entry_set_placeholder_text(GTK_ENTRY(wb->typed_labels), "language=en, domain=prose");
    gtk_widget_set_hexpand(wb->typed_labels, TRUE);
    wb_labelled(wb->typed_labels, "Labels for the typed prompts (key=value, …)");
    gtk_box_append(GTK_BOX(row), wb->typed_labels);
    GtkWidget *b = gtk_button_new_with_label("Use these prompts");
    gtk_widget_add_css_class(b, "suggested-action");
    g_signal_connect(b, "clicked", G_CALLBACK(use_typed_cb), wb);
    gtk_box_append(GTK_BOX(row), b);
    gtk_box_append(GTK_BOX(v), row);
    return v;
}

static GtkWidget *build_statusbar(Wb *wb)
{
    GtkWidget *v = gtk_box_new(GTK_ORIENTATION_VERTICAL, 2);
    gtk_widget_add_css_class(v, "statusbar");
    GtkWidget *r1 = gtk_box_new(GTK_ORIENTATION_HORIZONTAL, 8);
    wb->status_label = wb_labelled(gtk_label_new("Ready"), "Status");
    gtk_label_set_xalign(GTK_LABEL(wb->status_label), 0);
    gtk_label_set_ellipsize(GTK_LABEL(wb->status_label), PANGO_ELLIPSIZE_END);
    gtk_widget_set_hexpand(wb->status_label, TRUE);
    gtk_box_append(GTK_BOX(r1), wb->status_label);
    wb->progress_label = wb_labelled(gtk_label_new(""), "Progress details");
    gtk_label_set_ellipsize(GTK_LABEL(wb->progress_label), PANGO_ELLIPSIZE_END);
    gtk_box_append(GTK_BOX(r1), wb->progress_label);
    wb->progress = gtk_progress_bar_new();
    gtk_widget_set_size_request(wb->progress, 180, -1);
    gtk_widget_set_valign(wb->progress, GTK_ALIGN_CENTER);
    gtk_widget_set_visible(wb->progress, FALSE);
    wb_labelled(wb->progress, "Progress");
    gtk_box_append(GTK_BOX(r1), wb->progress);
    wb->cancel_btn = gtk_button_new_with_label("Cancel");
    gtk_widget_set_sensitive(wb->cancel_btn, FALSE);
    g_signal_connect(wb->cancel_btn, "clicked", G_CALLBACK(cancel_btn_cb), wb);
    gtk_box_append(GTK_BOX(r1), wb->cancel_btn);
    gtk_box_append(GTK_BOX(v), r1);
    GtkWidget *r2 = gtk_box_new(GTK_ORIENTATION_HORIZONTAL, 8);
    wb->sel_label = wb_labelled(gtk_label_new("Selected: nothing selected"), "Selection");
    gtk_box_append(GTK_BOX(r2), wb->sel_label);
    wb->clear_sel_btn = gtk_button_new_with_label("Clear selection");
    gtk_widget_add_css_class(wb->clear_sel_btn, "flat");
    gtk_widget_set_sensitive(wb->clear_sel_btn, FALSE);
    g_signal_connect(wb->clear_sel_btn, "clicked", G_CALLBACK(clear_sel_cb), wb);
    gtk_box_append(GTK_BOX(r2), wb->clear_sel_btn);
    gtk_box_append(GTK_BOX(r2), gtk_separator_new(GTK_ORIENTATION_VERTICAL));
    wb->hover_label = gtk_label_new("");
    gtk_label_set_xalign(GTK_LABEL(wb->hover_label), 0);
    gtk_label_set_ellipsize(GTK_LABEL(wb->hover_label), PANGO_ELLIPSIZE_END);
    gtk_widget_set_hexpand(wb->hover_label, TRUE);
    wb_labelled(wb->hover_label, "Hover");
    gtk_box_append(GTK_BOX(r2), wb->hover_label);
    gtk_box_append(GTK_BOX(v), r2);
    return v;
}

static GtkWidget *build_header(Wb *wb)
{
    GtkWidget *h = adw_header_bar_new();
    wb->title = adw_window_title_new("moescope", "");
    adw_header_bar_set_title_widget(ADW_HEADER_BAR(h), wb->title);

    GMenu *open = g_menu_new();
    g_menu_append(open, "Open…", "win.open");
    GMenu *kinds = g_menu_new();
    g_menu_append(kinds, "Model…", "win.open-model-dialog");
    g_menu_append(kinds, "Prompt set…", "win.open-prompts-dialog");
    g_menu_append(kinds, "Trace database…", "win.open-db-dialog");
    g_menu_append(kinds, "Trace database, read-only…", "win.open-db-readonly-dialog");
    g_menu_append(kinds, "PostgreSQL database…", "win.open-db-uri-dialog");
    g_menu_append_section(open, NULL, G_MENU_MODEL(kinds));
    GMenu *recent = g_menu_new();
    g_menu_append_submenu(open, "Recent", G_MENU_MODEL(recent));
    g_object_set_data_full(G_OBJECT(wb->win), "recent-menu", recent, g_object_unref);
    GtkWidget *ob = gtk_menu_button_new();
    gtk_menu_button_set_label(GTK_MENU_BUTTON(ob), "Open");
    gtk_menu_button_set_menu_model(GTK_MENU_BUTTON(ob), G_MENU_MODEL(open));
    wb_labelled(ob, "Open menu");
    gtk_widget_set_tooltip_text(ob, "Open a model, prompts or a trace (Ctrl+O opens any)");
    g_object_unref(open);
    g_object_unref(kinds);
    adw_header_bar_pack_start(ADW_HEADER_BAR(h), ob);

    GtkWidget *run = gtk_button_new();
    GtkWidget *rc = adw_button_content_new();
    adw_button_content_set_icon_name(ADW_BUTTON_CONTENT(rc), "media-playback-start-symbolic");
    adw_button_content_set_label(ADW_BUTTON_CONTENT(rc), "Run");
    gtk_button_set_child(GTK_BUTTON(run), rc);
    gtk_actionable_set_action_name(GTK_ACTIONABLE(run), "win.run");
    gtk_widget_set_tooltip_text(run, "Trace the prompt set with the model (Ctrl+R)");
    gtk_widget_add_css_class(run, "suggested-action");
    adw_header_bar_pack_start(ADW_HEADER_BAR(h), run);

    GtkWidget *side = gtk_button_new_from_icon_name("sidebar-show-symbolic");
    gtk_actionable_set_action_name(GTK_ACTIONABLE(side), "win.toggle-sidebar");
    gtk_widget_set_tooltip_text(side, "Show or hide the side panel (F9)");
    adw_header_bar_pack_start(ADW_HEADER_BAR(h), wb_labelled(side, "Side panel"));

    GMenu *main = g_menu_new();
    g_menu_append(main, "Export…", "win.export");
    g_menu_append(main, "Keyboard shortcuts", "win.show-help-overlay");
    g_menu_append(main, "About moescope", "app.about");
    g_menu_append(main, "Quit", "app.quit");
    GtkWidget *mb = gtk_menu_button_new();
    gtk_menu_button_set_icon_name(GTK_MENU_BUTTON(mb), "open-menu-symbolic");
    gtk_menu_button_set_menu_model(GTK_MENU_BUTTON(mb), G_MENU_MODEL(main));
    gtk_widget_set_tooltip_text(mb, "Main menu");
    g_object_unref(main);
    adw_header_bar_pack_end(ADW_HEADER_BAR(h), wb_labelled(mb, "Main menu"));
    GtkWidget *ex = gtk_button_new_with_label("Export…");
    gtk_actionable_set_action_name(GTK_ACTIONABLE(ex), "win.export");
    gtk_widget_set_tooltip_text(ex, "Export the trace, the current view or the intervention set (Ctrl+E)");
    adw_header_bar_pack_end(ADW_HEADER_BAR(h), ex);
    return h;
}

Wb *wb_window_new(GtkApplication *app, WbSettings *settings)
{
    Wb *wb = g_new0(Wb, 1);
    wb->app = app;
    wb->settings = settings;
    wb->cur_prompt = -1;
    wb->jobs = g_ptr_array_new();
    wb->pages = g_ptr_array_new();
    wb_selection_clear(&wb->sel);
    GtkWidget *win = adw_application_window_new(app);
    wb->win = GTK_WINDOW(win);
    gtk_window_set_title(wb->win, "moescope");
    g_object_set_data(G_OBJECT(win), "wb", wb);
    g_action_map_add_action_entries(G_ACTION_MAP(win), win_actions, G_N_ELEMENTS(win_actions), wb);

    GtkWidget *root = gtk_box_new(GTK_ORIENTATION_VERTICAL, 0);
    gtk_box_append(GTK_BOX(root), build_header(wb));

    /* errors stay until dismissed */
    wb->error_revealer = gtk_revealer_new();
    GtkWidget *eb = gtk_box_new(GTK_ORIENTATION_HORIZONTAL, 8);
    gtk_widget_add_css_class(eb, "error-bar");
    GtkWidget *icon = gtk_image_new_from_icon_name("dialog-error-symbolic");
    gtk_box_append(GTK_BOX(eb), icon);
    wb->error_label = gtk_label_new("");
    gtk_label_set_wrap(GTK_LABEL(wb->error_label), TRUE);
    gtk_label_set_xalign(GTK_LABEL(wb->error_label), 0);
    gtk_label_set_selectable(GTK_LABEL(wb->error_label), TRUE);
    gtk_widget_set_hexpand(wb->error_label, TRUE);
    wb_labelled(wb->error_label, "Error message");
    gtk_box_append(GTK_BOX(eb), wb->error_label);
    GtkWidget *close = gtk_button_new_with_label("Dismiss");
    g_signal_connect(close, "clicked", G_CALLBACK(error_close_cb), wb);
    gtk_box_append(GTK_BOX(eb), close);
    gtk_revealer_set_child(GTK_REVEALER(wb->error_revealer), eb);
    gtk_box_append(GTK_BOX(root), wb->error_revealer);

    wb->paned = gtk_paned_new(GTK_ORIENTATION_HORIZONTAL);
    wb->sidebar = build_sidebar(wb);
    gtk_paned_set_start_child(GTK_PANED(wb->paned), wb->sidebar);
    gtk_paned_set_resize_start_child(GTK_PANED(wb->paned), FALSE);
    gtk_paned_set_shrink_start_child(GTK_PANED(wb->paned), FALSE);

    GtkWidget *content = gtk_box_new(GTK_ORIENTATION_HORIZONTAL, 0);
    wb->stack = gtk_stack_new();
    gtk_stack_set_transition_type(GTK_STACK(wb->stack), GTK_STACK_TRANSITION_TYPE_NONE);
    /* each page is as wide as it needs: the widest does not set the window's minimum */
    gtk_stack_set_hhomogeneous(GTK_STACK(wb->stack), FALSE);
    gtk_stack_set_vhomogeneous(GTK_STACK(wb->stack), FALSE);
    gtk_widget_set_hexpand(wb->stack, TRUE);
    for (const MsViewClass *const *v = ms_view_all(); *v; v++) {
        ViewPage *p = wb_view_page_new(wb, *v);
        g_ptr_array_add(wb->pages, p);
        gtk_stack_add_titled(GTK_STACK(wb->stack), wb_view_page_widget(p), (*v)->name, (*v)->title);
    }
    wb->an = wb_an_page_new(wb);
    gtk_stack_add_titled(GTK_STACK(wb->stack), wb_an_page_widget(wb->an), "analyses", "Analyses");
    wb->iv = wb_iv_page_new(wb);
    gtk_stack_add_titled(GTK_STACK(wb->stack), wb_iv_page_widget(wb->iv), "interventions", "Interventions");
    gtk_stack_add_titled(GTK_STACK(wb->stack), build_typed_page(wb), "typed", "Type prompts");
    GtkWidget *ss = gtk_stack_sidebar_new();
    gtk_stack_sidebar_set_stack(GTK_STACK_SIDEBAR(ss), GTK_STACK(wb->stack));
    gtk_widget_set_size_request(ss, 170, -1);
    wb_labelled(ss, "Pages");
    gtk_box_append(GTK_BOX(content), ss);
    gtk_box_append(GTK_BOX(content), wb->stack);
    gtk_paned_set_end_child(GTK_PANED(wb->paned), content);
    gtk_widget_set_vexpand(wb->paned, TRUE);
    gtk_box_append(GTK_BOX(root), wb->paned);
    gtk_box_append(GTK_BOX(root), build_statusbar(wb));
    adw_application_window_set_content(ADW_APPLICATION_WINDOW(win), root);

    GtkDropTarget *drop = gtk_drop_target_new(GDK_TYPE_FILE_LIST, GDK_ACTION_COPY);
    g_signal_connect(drop, "drop", G_CALLBACK(drop_cb), wb);
    gtk_widget_add_controller(win, GTK_EVENT_CONTROLLER(drop));

    g_signal_connect(wb->stack, "notify::visible-child", G_CALLBACK(stack_changed_cb), wb);
    g_signal_connect(win, "close-request", G_CALLBACK(close_request_cb), wb);
    g_signal_connect(win, "destroy", G_CALLBACK(destroy_cb), wb);
    show_model_info(wb);
    restore_settings(wb);
    wb_update_recent_menu(wb);
    wb_iv_page_prompt_changed(wb->iv);
    update_title(wb);
    update_filter_label(wb);
    wb->poll_id = g_timeout_add(500, poll_cb, wb);
    stack_changed_cb(GTK_STACK(wb->stack), NULL, wb);
    return wb;
}
