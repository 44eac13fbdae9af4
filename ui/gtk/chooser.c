/* chooser.c — file dialogs in a process of their own.
 *
 * GTK 4.8 runs its file chooser inside the application unless a desktop
 * portal is used (in a flatpak or snap, or with GDK_DEBUG=portals; GTK 4 no
 * longer reads GTK 3's GTK_USE_PORTAL), and the chooser opens and
 * closes the files of the folder it lists to guess their types.  POSIX
 * record locks belong to the process: closing any descriptor of a file drops
 * every lock the process holds on it, SQLite's on the trace database
 * included.  Another program on that database then takes itself for the last
 * connection when it closes and deletes the -wal and -shm under the open
 * window, which from then on misses new runs and can damage the file with
 * its next write ("database disk image is malformed", seen in the GUI test).
 *
 * So, as a portal does, the chooser runs in a child process:
 * `moescope-gtk --choose-file open|save|folder --title T --accept LABEL
 * [--transient-for PARENT]` shows the dialog and writes the chosen path and a
 * NUL to stdout (exit 0), or nothing (exit 1, cancelled).  The window stays
 * responsive meanwhile.  --transient-for names the window the dialog belongs
 * to as a portal's parent_window does, "x11:XID" or "wayland:HANDLE" (a
 * handle the window exported through xdg-foreign): the dialog is kept above
 * it, and a tiling compositor floats it instead of tiling it beside it. */
#include <string.h>
#include <sys/prctl.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#include "wb-gtk.h"

#ifdef MS_HAVE_X11
#include <gdk/x11/gdkx.h>
#endif
#ifdef MS_HAVE_WAYLAND
#include <gdk/wayland/gdkwayland.h>
#endif

struct WbChooser {
    Wb *wb;            /* NULL once the window is gone */
    WbPathFn fn;
    GSubprocess *proc; /* NULL until started (on Wayland, once the handle is exported) */
    GtkFileChooserAction action;
    char *title, *accept;
    gboolean exported; /* the window's surface is exported for it (Wayland) */
};

static const char *action_name(GtkFileChooserAction a)
{
    return a == GTK_FILE_CHOOSER_ACTION_SAVE ? "save" : a == GTK_FILE_CHOOSER_ACTION_SELECT_FOLDER ? "folder" : "open";
}

static void chooser_free(WbChooser *c)
{
    if (c->wb && c->wb->chooser == c) c->wb->chooser = NULL;
#ifdef MS_HAVE_WAYLAND
    /* the handle would let any client parent its windows to ours */
    if (c->exported && c->wb) {
        GdkSurface *s = gtk_native_get_surface(GTK_NATIVE(c->wb->win));
        if (s && GDK_IS_WAYLAND_TOPLEVEL(s)) gdk_wayland_toplevel_unexport_handle(GDK_TOPLEVEL(s));
    }
#endif
    g_clear_object(&c->proc);
    g_free(c->title);
    g_free(c->accept);
    g_free(c);
}

static void chooser_done(GObject *src, GAsyncResult *res, gpointer user)
{
    WbChooser *c = user;
    GBytes *out = NULL;
    GError *e = NULL;
    gboolean fine = g_subprocess_communicate_finish(G_SUBPROCESS(src), res, &out, NULL, &e);
    Wb *wb = c->wb;
    gboolean exited = fine && g_subprocess_get_if_exited(c->proc);
    int code = !fine ? 0 : exited ? g_subprocess_get_exit_status(c->proc) : g_subprocess_get_term_sig(c->proc);
    if (wb) {
        wb->chooser = NULL;
        if (!fine) {
            wb_show_error(wb, "The file dialog failed: %s", e->message);
        } else if (exited && code == 0) {
            gsize n = 0;
            const char *p = out ? g_bytes_get_data(out, &n) : NULL;
            /* the path ends at its NUL: anything else is not an answer */
            if (p && n > 1 && memchr(p, '\0', n) == p + n - 1) c->fn(wb, p);
            else wb_show_error(wb, "The file dialog gave no file name");
        } else if (!exited || code != 1) {   /* 1: cancelled */
            wb_show_error(wb, "The file dialog ended unexpectedly (%s %d; its messages are on the terminal)",
                          exited ? "exit status" : "signal", code);
        }
    }
    if (out) g_bytes_unref(out);
    g_clear_error(&e);
    chooser_free(c);
}

/* Starts the dialog's process; parent is "x11:XID", "wayland:HANDLE" or NULL. */
static void chooser_start(WbChooser *c, const char *parent)
{
    /* /proc/self/exe: this very program, wherever it was started from */
    const char *argv[] = { "/proc/self/exe", "--choose-file", action_name(c->action), "--title", c->title,
                           "--accept", c->accept, parent ? "--transient-for" : NULL, parent, NULL };
    GError *e = NULL;
    c->proc = g_subprocess_newv(argv, G_SUBPROCESS_FLAGS_STDOUT_PIPE, &e);
    if (!c->proc) {
        wb_show_error(c->wb, "Cannot show the file dialog: %s", e->message);
        g_error_free(e);
        chooser_free(c);
        return;
    }
    g_subprocess_communicate_async(c->proc, NULL, NULL, chooser_done, c);
}

#ifdef MS_HAVE_WAYLAND
static void exported_cb(GdkToplevel *toplevel, const char *handle, gpointer user)
{
    (void)toplevel;
    WbChooser *c = user;
    if (!c->wb) {   /* the window closed meanwhile */
        chooser_free(c);
        return;
    }
    char *parent = g_strconcat("wayland:", handle, NULL);
    chooser_start(c, parent);
    g_free(parent);
}
#endif

void wb_choose_file(Wb *wb, const char *title, GtkFileChooserAction action, const char *accept, WbPathFn fn)
{
    if (wb->chooser) {
        wb_status(wb, "A file dialog is open already: choose there, or cancel it");
        return;
    }
    WbChooser *c = g_new0(WbChooser, 1);
    c->wb = wb;
    c->fn = fn;
    c->action = action;
    c->title = g_strdup(title);
    c->accept = g_strdup(accept);
    wb->chooser = c;
    GdkSurface *s = gtk_native_get_surface(GTK_NATIVE(wb->win));
    (void)s;
#ifdef MS_HAVE_X11
    if (s && GDK_IS_X11_SURFACE(s)) {
        char xid[40];
        g_snprintf(xid, sizeof xid, "x11:%lu", (unsigned long)gdk_x11_surface_get_xid(s));
        chooser_start(c, xid);
        return;
    }
#endif
#ifdef MS_HAVE_WAYLAND
    /* Fails (with GTK's warning) where the compositor has no xdg-foreign:
     * the dialog then opens as a window of its own, as it did before. */
    if (s && GDK_IS_WAYLAND_TOPLEVEL(s) && !wb->no_foreign) {
        if (gdk_wayland_toplevel_export_handle(GDK_TOPLEVEL(s), exported_cb, c, NULL)) {
            c->exported = TRUE;
            return;
        }
        wb->no_foreign = TRUE;
    }
#endif
    chooser_start(c, NULL);
}

void wb_chooser_window_gone(Wb *wb)
{
    if (!wb->chooser) return;
    wb->chooser->wb = NULL;
    /* not started yet: exported_cb frees it */
    if (wb->chooser->proc) g_subprocess_force_exit(wb->chooser->proc);
    wb->chooser = NULL;
}

/* ------------------------------------------------------- the child's side */

typedef struct {
    gboolean done;
    char *path;
} Answer;

static void response_cb(GtkDialog *d, int response, gpointer user)
{
    Answer *a = user;
    if (response == GTK_RESPONSE_ACCEPT) {
        GFile *f = gtk_file_chooser_get_file(GTK_FILE_CHOOSER(d));
        a->path = f ? g_file_get_path(f) : NULL;
        if (f) g_object_unref(f);
    }
    a->done = TRUE;
}

static void usage(void)
{
    fprintf(stderr, "usage: moescope-gtk --choose-file open|save|folder --title TITLE --accept LABEL [--transient-for x11:XID|wayland:HANDLE]\n"
                    "(the workbench runs this itself for its file dialogs)\n");
}

int wb_chooser_main(int argc, char **argv)
{
    const char *kind = NULL, *title = NULL, *accept = NULL, *parent = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--choose-file")) kind = argv[i + 1];
        else if (!strcmp(argv[i], "--title")) title = argv[i + 1];
        else if (!strcmp(argv[i], "--accept")) accept = argv[i + 1];
        else if (!strcmp(argv[i], "--transient-for")) parent = argv[i + 1];
        else {
            usage();
            return 2;
        }
    }
    GtkFileChooserAction action;
    if (!kind || !title || !accept || argc % 2 == 0) {
        usage();
        return 2;
    }
    if (!strcmp(kind, "open")) action = GTK_FILE_CHOOSER_ACTION_OPEN;
    else if (!strcmp(kind, "save")) action = GTK_FILE_CHOOSER_ACTION_SAVE;
    else if (!strcmp(kind, "folder")) action = GTK_FILE_CHOOSER_ACTION_SELECT_FOLDER;
    else {
        usage();
        return 2;
    }
    /* no orphaned dialog when the workbench ends first */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() == 1) return 1;
    g_set_prgname("moescope-gtk");
    if (!gtk_init_check()) {
        fprintf(stderr, "moescope-gtk: the file dialog cannot open the display\n");
        return 3;
    }
    adw_init();
    GtkWidget *d = gtk_file_chooser_dialog_new(title, NULL, action, "_Cancel", GTK_RESPONSE_CANCEL, accept,
                                               GTK_RESPONSE_ACCEPT, NULL);
    g_object_ref(d);   /* Escape or the window's close button destroys it before the loop ends */
    gtk_dialog_set_default_response(GTK_DIALOG(d), GTK_RESPONSE_ACCEPT);
    Answer a = { 0 };
    g_signal_connect(d, "response", G_CALLBACK(response_cb), &a);
    gtk_widget_realize(d);
    GdkSurface *s = gtk_native_get_surface(GTK_NATIVE(d));
    (void)s, (void)parent;   /* unused in a build with neither backend */
#ifdef MS_HAVE_X11
    if (parent && g_str_has_prefix(parent, "x11:") && s && GDK_IS_X11_SURFACE(s)) {
        char *end = NULL;
        unsigned long w = strtoul(parent + 4, &end, 10);
        if (end && end != parent + 4 && !*end && w)
            XSetTransientForHint(gdk_x11_display_get_xdisplay(gdk_surface_get_display(s)),
                                 gdk_x11_surface_get_xid(s), (Window)w);
    }
#endif
#ifdef MS_HAVE_WAYLAND
    /* before the first present, so the dialog maps with its parent */
    if (parent && g_str_has_prefix(parent, "wayland:") && parent[8] && s && GDK_IS_WAYLAND_TOPLEVEL(s))
        gdk_wayland_toplevel_set_transient_for_exported(GDK_TOPLEVEL(s), parent + 8);
#endif
    gtk_window_present(GTK_WINDOW(d));
    while (!a.done) g_main_context_iteration(NULL, TRUE);
    gtk_window_destroy(GTK_WINDOW(d));
    g_object_unref(d);
    if (!a.path) return 1;
    size_t n = strlen(a.path) + 1;
    int rc = fwrite(a.path, 1, n, stdout) == n && fflush(stdout) == 0 ? 0 : 3;
    g_free(a.path);
    return rc;
}
