/* export.c — the Export dialog (Ctrl+E): what to export (the current view as
 * PNG / SVG / PDF at a chosen size, the trace as SQL for SQLite or
 * PostgreSQL or as CSV files, the intervention set as text) and where.  It
 * only composes the parameter of win.export-view, win.export-trace or
 * win.save-interventions and activates it, so the dialog and the actions
 * (which the tests call directly) run the same code. */
#include "wb-gtk.h"

typedef struct {
    Wb *wb;
    GtkWidget *win, *what, *w, *h, *scale, *path, *size_box;
} ExportDlg;

enum { E_PNG, E_SVG, E_PDF, E_SQL, E_PGSQL, E_CSV, E_IV };

static const char *suggest(ExportDlg *d, guint what)
{
    ViewPage *p = wb_visible_view_page(d->wb);
    static char b[600];
    const char *home = g_get_home_dir();
    const char *view = p ? wb_view_page_class(p)->name : "view";
    switch (what) {
    case E_PNG: snprintf(b, sizeof b, "%s/moescope-%s.png", home, view); break;
    case E_SVG: snprintf(b, sizeof b, "%s/moescope-%s.svg", home, view); break;
    case E_PDF: snprintf(b, sizeof b, "%s/moescope-%s.pdf", home, view); break;
    case E_SQL: snprintf(b, sizeof b, "%s/moescope-trace.sql", home); break;
    case E_PGSQL: snprintf(b, sizeof b, "%s/moescope-trace.pgsql", home); break;
    case E_CSV: snprintf(b, sizeof b, "%s/moescope-trace-csv", home); break;
    default: snprintf(b, sizeof b, "%s/moescope-interventions.txt", home); break;
    }
    return b;
}

static void what_cb(GObject *o, GParamSpec *ps, gpointer user)
{
    ExportDlg *d = user;
    guint w = gtk_drop_down_get_selected(GTK_DROP_DOWN(d->what));
    gtk_widget_set_sensitive(d->size_box, w <= E_PDF);
    gtk_editable_set_text(GTK_EDITABLE(d->path), suggest(d, w));
}

static void chosen(Wb *wb, const char *path)
{
    GtkWidget *entry = g_object_get_data(G_OBJECT(wb->win), "export-path-entry");
    if (entry) gtk_editable_set_text(GTK_EDITABLE(entry), path);
}

static void choose_cb(GtkButton *b, gpointer user)
{
    ExportDlg *d = user;
    guint w = gtk_drop_down_get_selected(GTK_DROP_DOWN(d->what));
    g_object_set_data(G_OBJECT(d->wb->win), "export-path-entry", d->path);
    wb_choose_file(d->wb, w == E_CSV ? "Export into a folder" : "Export to a file",
                   w == E_CSV ? GTK_FILE_CHOOSER_ACTION_SELECT_FOLDER : GTK_FILE_CHOOSER_ACTION_SAVE, "_Select", chosen);
}

static void export_cb(GtkButton *b, gpointer user)
{
    ExportDlg *d = user;
    guint w = gtk_drop_down_get_selected(GTK_DROP_DOWN(d->what));
    const char *path = gtk_editable_get_text(GTK_EDITABLE(d->path));
    char *spec = NULL;
    const char *action = "win.export-trace";
    switch (w) {
    case E_PNG:
    case E_SVG:
    case E_PDF: {
        /* the extension decides the format: make it match the choice */
        const char *ext = w == E_PNG ? ".png" : w == E_SVG ? ".svg" : ".pdf";
        char *p = g_str_has_suffix(path, ext) ? g_strdup(path) : g_strconcat(path, ext, NULL);
        spec = g_strdup_printf("%dx%d@%g:%s", gtk_spin_button_get_value_as_int(GTK_SPIN_BUTTON(d->w)),
                               gtk_spin_button_get_value_as_int(GTK_SPIN_BUTTON(d->h)),
                               gtk_spin_button_get_value(GTK_SPIN_BUTTON(d->scale)), p);
        g_free(p);
        action = "win.export-view";
        break;
    }
    case E_SQL: spec = g_strdup_printf("sqlite:%s", path); break;
    case E_PGSQL: spec = g_strdup_printf("postgresql:%s", path); break;
    case E_CSV: spec = g_strdup_printf("csv:%s", path); break;
    default: spec = g_strdup(path); action = "win.save-interventions"; break;
    }
    gtk_widget_activate_action(GTK_WIDGET(d->wb->win), action, "s", spec);
    g_free(spec);
    gtk_window_destroy(GTK_WINDOW(d->win));
}

static void cancel_cb(GtkButton *b, gpointer user) { gtk_window_destroy(GTK_WINDOW(((ExportDlg *)user)->win)); }

static void destroyed(GtkWidget *w, gpointer user)
{
    ExportDlg *d = user;
    if (!d->wb->dead) g_object_set_data(G_OBJECT(d->wb->win), "export-path-entry", NULL);
    g_free(d);
}

static GtkWidget *row(GtkWidget *grid, int r, const char *caption, GtkWidget *w)
{
    GtkWidget *l = gtk_label_new(caption);
    gtk_label_set_xalign(GTK_LABEL(l), 1);
    gtk_grid_attach(GTK_GRID(grid), l, 0, r, 1, 1);
    gtk_grid_attach(GTK_GRID(grid), wb_labelled(w, caption), 1, r, 1, 1);
    return w;
}

void wb_export_dialog(Wb *wb)
{
    ExportDlg *d = g_new0(ExportDlg, 1);
    d->wb = wb;
    d->win = gtk_window_new();
    gtk_window_set_title(GTK_WINDOW(d->win), "Export");
    gtk_window_set_transient_for(GTK_WINDOW(d->win), wb->win);
    gtk_window_set_modal(GTK_WINDOW(d->win), TRUE);
    gtk_window_set_default_size(GTK_WINDOW(d->win), 560, -1);
    GtkWidget *g = gtk_grid_new();
    gtk_grid_set_row_spacing(GTK_GRID(g), 8);
    gtk_grid_set_column_spacing(GTK_GRID(g), 10);
    gtk_widget_set_margin_start(g, 16);
    gtk_widget_set_margin_end(g, 16);
    gtk_widget_set_margin_top(g, 16);
    gtk_widget_set_margin_bottom(g, 16);
    const char *items[] = { "Current view as PNG", "Current view as SVG", "Current view as PDF",
                            "Trace as SQL for SQLite", "Trace as SQL for PostgreSQL", "Trace as CSV files (a folder)",
                            "Intervention set as text", NULL };
    d->what = row(g, 0, "What", gtk_drop_down_new_from_strings(items));
    d->size_box = gtk_box_new(GTK_ORIENTATION_HORIZONTAL, 6);
    ViewPage *p = wb_visible_view_page(wb);
    int w0 = 1200, h0 = 800;
    if (p) {
        GtkWidget *pw = wb_view_page_widget(p);
        if (gtk_widget_get_width(pw) > 100) w0 = gtk_widget_get_width(pw), h0 = gtk_widget_get_height(pw) - 40;
    }
    d->w = wb_labelled(gtk_spin_button_new_with_range(16, 20000, 10), "Width");
    gtk_spin_button_set_value(GTK_SPIN_BUTTON(d->w), w0);
    d->h = wb_labelled(gtk_spin_button_new_with_range(16, 20000, 10), "Height");
    gtk_spin_button_set_value(GTK_SPIN_BUTTON(d->h), h0);
    d->scale = wb_labelled(gtk_spin_button_new_with_range(0.5, 8, 0.5), "Scale");
    gtk_spin_button_set_digits(GTK_SPIN_BUTTON(d->scale), 1);
    gtk_spin_button_set_value(GTK_SPIN_BUTTON(d->scale), 1);
    gtk_box_append(GTK_BOX(d->size_box), d->w);
    gtk_box_append(GTK_BOX(d->size_box), gtk_label_new("×"));
    gtk_box_append(GTK_BOX(d->size_box), d->h);
    gtk_box_append(GTK_BOX(d->size_box), gtk_label_new("scale"));
    gtk_box_append(GTK_BOX(d->size_box), d->scale);
    row(g, 1, "Size (px or pt)", d->size_box);
    GtkWidget *pb = gtk_box_new(GTK_ORIENTATION_HORIZONTAL, 6);
    d->path = wb_labelled(gtk_entry_new(), "File or folder");
    gtk_widget_set_hexpand(d->path, TRUE);
    gtk_box_append(GTK_BOX(pb), d->path);
    GtkWidget *ch = gtk_button_new_with_label("Choose…");
    g_signal_connect(ch, "clicked", G_CALLBACK(choose_cb), d);
    gtk_box_append(GTK_BOX(pb), ch);
    row(g, 2, "To", pb);
    gtk_grid_attach(GTK_GRID(g), wb_dialog_buttons("_Export", G_CALLBACK(export_cb), G_CALLBACK(cancel_cb), d), 0, 3, 2, 1);
    gtk_window_set_child(GTK_WINDOW(d->win), g);
    g_signal_connect(d->what, "notify::selected", G_CALLBACK(what_cb), d);
    g_signal_connect(d->win, "destroy", G_CALLBACK(destroyed), d);
    what_cb(NULL, NULL, d);
    gtk_window_present(GTK_WINDOW(d->win));
}
