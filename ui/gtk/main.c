/* main.c — moescope-gtk, the workbench: an AdwApplication
 * (io.github.moescope.Workbench) with the app actions, keyboard shortcuts,
 * the command line `moescope-gtk [MODEL] [--db DB] [--prompts FILE]` and
 * the settings key file (ui/workbench/wb-settings.h) in the user's config
 * directory.  Without a display it says so and exits 1 (the text report is
 * `moescope demo`). */
#include <execinfo.h>
#include <locale.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#include "wb-gtk.h"

typedef struct {
    WbSettings *settings;
    char *settings_path;
} App;

static Wb *active(GtkApplication *app)
{
    GtkWindow *w = gtk_application_get_active_window(app);
    if (!w) {
        GList *l = gtk_application_get_windows(app);
        w = l ? l->data : NULL;
    }
    return w ? g_object_get_data(G_OBJECT(w), "wb") : NULL;
}

static Wb *window(GtkApplication *app, App *a)
{
    Wb *wb = active(app);
    if (!wb) {
        wb = wb_window_new(app, a->settings);
        gtk_window_present(wb->win);
    }
    return wb;
}

/* A crash leaves the call stack on stderr, so a report (or a test's log)
 * says where.  Not in a sanitizer build: its own handler says more. */
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
static void crash_handler(int sig)
{
    static const char head[] = "moescope-gtk: crashed; call stack:\n";
    void *frames[64];
    if (write(STDERR_FILENO, head, sizeof head - 1) < 0) { /* nothing more to do */ }
    backtrace_symbols_fd(frames, backtrace(frames, 64), STDERR_FILENO);
    signal(sig, SIG_DFL);
    raise(sig);
}
#endif

static void install_crash_handler(void)
{
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
    void *warm[1];
    backtrace(warm, 1);   /* loads libgcc now, not inside the handler */
    signal(SIGSEGV, crash_handler);
    signal(SIGBUS, crash_handler);
    signal(SIGFPE, crash_handler);
#endif
}

static App *app_data(gpointer app) { return g_object_get_data(G_OBJECT(app), "moescope-app"); }

#define PATH_ACTION(name, call)                                                            \
    static void name(GSimpleAction *act, GVariant *v, gpointer app)                        \
    {                                                                                      \
        Wb *wb = window(GTK_APPLICATION(app), app_data(app));                              \
        const char *path = g_variant_get_string(v, NULL);                                  \
        call;                                                                              \
    }
PATH_ACTION(act_open_model, wb_open_model(wb, path))
PATH_ACTION(act_open_prompts, wb_open_prompts(wb, path))
PATH_ACTION(act_open_db, wb_open_db(wb, path, FALSE))
PATH_ACTION(act_open_db_ro, wb_open_db(wb, path, TRUE))
PATH_ACTION(act_open_any, wb_open_any(wb, path))

static void act_quit(GSimpleAction *act, GVariant *v, gpointer app)
{
    /* closing a window destroys it, which takes it off the application's
     * list and frees that list node: walk a copy that holds each window */
    GList *l = g_list_copy(gtk_application_get_windows(GTK_APPLICATION(app)));
    for (GList *i = l; i; i = i->next) g_object_ref(i->data);
    for (GList *i = l; i; i = i->next) gtk_window_close(i->data);
    g_list_free_full(l, g_object_unref);
}

static void act_about(GSimpleAction *act, GVariant *v, gpointer app)
{
    Wb *wb = active(GTK_APPLICATION(app));
    GtkWidget *w = adw_about_window_new();
    adw_about_window_set_application_name(ADW_ABOUT_WINDOW(w), "moescope");
    adw_about_window_set_application_icon(ADW_ABOUT_WINDOW(w), WB_APP_ID);
    adw_about_window_set_version(ADW_ABOUT_WINDOW(w), MS_VERSION);
    adw_about_window_set_comments(ADW_ABOUT_WINDOW(w),
                                  "A routing-analysis and interpretability workbench for Mixture-of-Experts "
                                  "language models: trace, look at and change what the router does.");
    adw_about_window_set_license_type(ADW_ABOUT_WINDOW(w), GTK_LICENSE_MIT_X11);
    if (wb) gtk_window_set_transient_for(GTK_WINDOW(w), wb->win);
    gtk_window_present(GTK_WINDOW(w));
}

static const GActionEntry app_actions[] = {
    { "open-model", act_open_model, "s", NULL, NULL, { 0 } },
    { "open-prompts", act_open_prompts, "s", NULL, NULL, { 0 } },
    { "open-db", act_open_db, "s", NULL, NULL, { 0 } },
    { "open-db-readonly", act_open_db_ro, "s", NULL, NULL, { 0 } },
    { "open", act_open_any, "s", NULL, NULL, { 0 } },
    { "quit", act_quit, NULL, NULL, NULL, { 0 } },
    { "about", act_about, NULL, NULL, NULL, { 0 } },
};

static void startup_cb(GApplication *app, gpointer user)
{
    App *a = user;
    g_action_map_add_action_entries(G_ACTION_MAP(app), app_actions, G_N_ELEMENTS(app_actions), app);
    static const struct {
        const char *action;
        const char *accels[3];
    } accels[] = {
        { "app.quit", { "<Control>q", NULL } },
        { "win.open", { "<Control>o", NULL } },
        { "win.run", { "<Control>r", NULL } },
        { "win.export", { "<Control>e", NULL } },
        { "win.apply", { "<Control>Return", NULL } },
        { "win.toggle-sidebar", { "F9", NULL } },
        { "win.show-help-overlay", { "F1", "<Control>question", NULL } },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(accels); i++)
        gtk_application_set_accels_for_action(GTK_APPLICATION(app), accels[i].action, accels[i].accels);
    a->settings = wb_settings_new();
    a->settings_path = wb_settings_path(g_get_user_config_dir());
    MsError err = { 0 };
    if (a->settings_path && wb_settings_load(a->settings, a->settings_path, &err) < 0)
        g_warning("settings: %s (the rest was read)", err.msg);
}

static void shutdown_cb(GApplication *app, gpointer user)
{
    App *a = user;
    MsError err = { 0 };
    if (a->settings_path && wb_settings_save(a->settings, a->settings_path, &err) < 0)
        g_warning("settings not saved: %s", err.msg);
}

static void activate_cb(GApplication *app, gpointer user)
{
    Wb *wb = window(GTK_APPLICATION(app), user);
    gtk_window_present(wb->win);
}

static int command_line_cb(GApplication *app, GApplicationCommandLine *cl, gpointer user)
{
    App *a = user;
    GVariantDict *o = g_application_command_line_get_options_dict(cl);
    const char *db = NULL, *prompts = NULL;
    const char **rest = NULL;
    gboolean ro = FALSE;
    g_variant_dict_lookup(o, "db", "^&ay", &db);
    g_variant_dict_lookup(o, "prompts", "^&ay", &prompts);
    g_variant_dict_lookup(o, "read-only", "b", &ro);
    g_variant_dict_lookup(o, G_OPTION_REMAINING, "^a&ay", &rest);
    Wb *wb = window(GTK_APPLICATION(app), a);
    gtk_window_present(wb->win);
    /* paths relative to the caller's directory */
    for (int i = 0; rest && rest[i]; i++) {
        if (wb_db_is_uri(rest[i])) {   /* a PostgreSQL URI among the files */
            wb_open_db(wb, rest[i], ro);
            continue;
        }
        GFile *f = g_application_command_line_create_file_for_arg(cl, rest[i]);
        char *p = g_file_get_path(f);
        g_object_unref(f);
        if (!p) continue;
        /* MODEL first; any other kind of file is opened by what it is */
        MsError err = { 0 };
        if (i == 0 && wb_file_kind(p, &err) == WB_FILE_MODEL) wb_open_model(wb, p);
        else wb_open_any(wb, p);
        g_free(p);
    }
    g_free(rest);
    if (prompts) {
        GFile *f = g_application_command_line_create_file_for_arg(cl, prompts);
        char *p = g_file_get_path(f);
        g_object_unref(f);
        if (p) wb_open_prompts(wb, p);
        g_free(p);
    }
    if (db && wb_db_is_uri(db)) {
        wb_open_db(wb, db, ro);   /* a PostgreSQL URI: as given */
    } else if (db) {
        GFile *f = g_application_command_line_create_file_for_arg(cl, db);
        char *p = g_file_get_path(f);
        g_object_unref(f);
        if (p) wb_open_db(wb, p, ro);
        g_free(p);
    }
    return 0;
}

static const GOptionEntry options[] = {
    { "db", 0, 0, G_OPTION_ARG_FILENAME, NULL, "Trace database to open: a file (created by Run when it does not exist) or a PostgreSQL URI", "DB" },
    { "prompts", 0, 0, G_OPTION_ARG_FILENAME, NULL, "Prompt set to open (text or JSONL)", "FILE" },
    { "read-only", 0, 0, G_OPTION_ARG_NONE, NULL, "Open the database read-only", NULL },
    { G_OPTION_REMAINING, 0, 0, G_OPTION_ARG_FILENAME_ARRAY, NULL, NULL, "[MODEL] [FILE…]" },
    { 0 },
};

int main(int argc, char **argv)
{
    setlocale(LC_ALL, "");
    install_crash_handler();
    if (argc > 1 && !strcmp(argv[1], "--choose-file")) return wb_chooser_main(argc, argv);
    gboolean help = FALSE;
    for (int i = 1; i < argc; i++)
        help |= !strcmp(argv[i], "--help") || !strcmp(argv[i], "-h") || !strncmp(argv[i], "--help-", 7);
    if (!help && !gtk_init_check()) {
        fprintf(stderr, "moescope-gtk: cannot open a display (is DISPLAY or WAYLAND_DISPLAY set?); "
                        "`moescope demo` prints the text report without one\n");
        return 1;
    }
    App a = { 0 };
    AdwApplication *app = adw_application_new(WB_APP_ID, G_APPLICATION_HANDLES_COMMAND_LINE);
    g_object_set_data(G_OBJECT(app), "moescope-app", &a);
    g_application_add_main_option_entries(G_APPLICATION(app), options);
    g_application_set_option_context_summary(
        G_APPLICATION(app),
        "The moescope workbench: open a model and a prompt set, trace the routing, look at every view,\n"
        "silence, force or steer experts and see what changes, export traces and figures.\n"
        "Files may be given in any order; each is opened by what it is (GGUF model, trace database,\n"
        "prompt set, intervention set).");
    g_signal_connect(app, "startup", G_CALLBACK(startup_cb), &a);
    g_signal_connect(app, "shutdown", G_CALLBACK(shutdown_cb), &a);
    g_signal_connect(app, "activate", G_CALLBACK(activate_cb), &a);
    g_signal_connect(app, "command-line", G_CALLBACK(command_line_cb), &a);
    int rc = g_application_run(G_APPLICATION(app), argc, argv);
    g_object_unref(app);
    wb_settings_free(a.settings);
    free(a.settings_path);
    return rc;
}
