/* wb-gtk.h — moescope-gtk's internal declarations: the window state (one
 * Wb per window), worker jobs, and the pages (views, interventions,
 * analyses).  The GTK layer is thin: every action calls the libraries
 * (jobs/, db/, analysis/, ui/views/, ui/workbench/) that the command line
 * calls too; long calls run on worker threads (WbJob) and report back to
 * the main loop, so no main-thread call takes longer than a frame. */
#ifndef WB_GTK_H
#define WB_GTK_H

#include <adwaita.h>
#include <gtk/gtk.h>

#include "jobs.h"
#include "ms-view.h"
#include "results.h"
#include "run.h"
#include "trace.h"
#include "wb-apply.h"
#include "wb-files.h"
#include "wb-grid.h"
#include "wb-select.h"
#include "wb-settings.h"
#include "wb-table.h"
#include "wb-text.h"
#include "wb-views.h"
#include "wb-zoom.h"

#define WB_APP_ID "io.github.moescope.Workbench"

typedef struct Wb Wb;
typedef struct WbChooser WbChooser;
typedef struct WbJob WbJob;
typedef struct ViewPage ViewPage;
typedef struct IvPage IvPage;
typedef struct AnPage AnPage;

/* ------------------------------------------------------------ shared data */

/* A loaded model, shared with worker threads (reference counted). */
typedef struct {
    MsModel *m;
    char *path;
} WbModel;
WbModel *wb_model_ref(WbModel *m);
void wb_model_unref(WbModel *m);   /* accepts NULL */

/* A prompt set (a file, or prompts typed into the window), shared likewise. */
typedef struct {
    MsPrompt *p;
    size_t n;
    char *name;                    /* file path, or "typed prompts" */
} WbPromptSet;
WbPromptSet *wb_prompt_set_ref(WbPromptSet *s);
void wb_prompt_set_unref(WbPromptSet *s);

/* A prepared view model, shared with an export running on a worker. */
typedef struct {
    const MsViewClass *v;
    void *model;
} WbViewModel;
WbViewModel *wb_view_model_ref(WbViewModel *vm);
void wb_view_model_unref(WbViewModel *vm);

/* ------------------------------------------------------------------- jobs */

/* Runs on the worker thread: return 0 or MS_E* (err set). */
typedef int (*WbJobRunFn)(WbJob *j, gpointer data, MsError *err);
/* Runs on the main thread when the job ends (not called once the window is gone). */
typedef void (*WbJobDoneFn)(Wb *wb, WbJob *j, int rc, const MsError *err, gpointer data);
/* Progress, on the main thread, coalesced (at most one pending report). */
typedef void (*WbJobProgressFn)(Wb *wb, WbJob *j, const MsProgress *p, gpointer data);

struct WbJob {
    Wb *wb;
    char *what;
    MsCancel cancel;
    double t_start, t_cancel;      /* monotonic seconds; t_cancel 0 = not cancelled */
    double t_end;
    WbJobRunFn run;
    WbJobDoneFn done;
    WbJobProgressFn progress;
    gpointer data;
    GDestroyNotify free_data;
    int rc;
    MsError err;
    GMutex lock;
    MsProgress last;
    gboolean pending;
    gboolean finished;
    gint refs;
    GThread *thread;               /* joined when the job's end is handled */
};

WbJob *wb_job_start(Wb *wb, const char *what, WbJobRunFn run, WbJobDoneFn done, WbJobProgressFn progress,
                    gpointer data, GDestroyNotify free_data);
void wb_job_cancel(WbJob *j);
/* MsProgressFn for the worker side: user = the job. */
void wb_job_report(void *user, const MsProgress *p);
double wb_now(void);

/* ----------------------------------------------------------------- window */

struct Wb {
    GtkApplication *app;
    GtkWindow *win;
    gboolean dead;
    int n_jobs;
    GPtrArray *jobs;               /* running jobs (borrowed; each removes itself when it ends) */
    WbSettings *settings;          /* the application's, borrowed */

    WbModel *model;
    WbPromptSet *prompts;
    WbGrid *grid;                  /* for the loaded model */
    char *db_path;
    gboolean db_readonly;
    MsTraceDb *db_poll;            /* main-thread handle: change polling only */
    uint64_t db_stamp;
    int64_t run;                   /* the run the views show, 0 = none */
    int64_t *runs;
    int n_runs;
    gboolean follow_newest;        /* a trace or experiment of ours is writing */
    int cur_prompt;                /* selected prompt index, −1 = none */
    WbSelection sel;
    WbFireIndex *fire;
    int fire_layers, fire_experts;

    WbJob *long_job;               /* trace / experiment / analysis / export: what Cancel stops */
    WbJob *prompts_job;
    gboolean prompts_again;
    guint poll_id;
    double last_refresh;
    WbChooser *chooser;            /* the file dialog's process while it runs (chooser.c) */
    gboolean no_foreign;           /* the compositor cannot parent the dialog to the window (chooser.c) */

    /* widgets */
    GtkWidget *title;
    GtkWidget *error_revealer, *error_label;
    GtkWidget *status_label, *hover_label, *sel_label, *clear_sel_btn;
    GtkWidget *progress, *progress_label, *cancel_btn;
    GtkWidget *paned, *sidebar;
    GtkWidget *model_grid;         /* the model's facts */
    GtkWidget *db_label, *run_dropdown;
    GtkStringList *run_names;
    gboolean run_dropdown_lock;
    GtkWidget *prompts_label, *filter_label;
    GListStore *prompt_store;
    GtkCustomFilter *prompt_filter;
    GtkFilterListModel *prompt_filtered;
    GtkSingleSelection *prompt_sel;
    GtkWidget *prompt_list;
    gboolean prompt_sel_lock;
    GtkWidget *gen_spin, *probs_switch, *stats_switch;
    GtkWidget *stack;
    GtkWidget *typed_view, *typed_labels;
    GPtrArray *pages;              /* ViewPage* in registry order */
    IvPage *iv;
    AnPage *an;
};

Wb *wb_window_new(GtkApplication *app, WbSettings *settings);
void wb_show_error(Wb *wb, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
void wb_status(Wb *wb, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
void wb_hover_text(Wb *wb, const char *text);
/* Opening (the app.* actions and the dialogs end here). */
void wb_open_model(Wb *wb, const char *path);
void wb_open_prompts(Wb *wb, const char *path);
void wb_open_db(Wb *wb, const char *path, gboolean readonly);
void wb_open_any(Wb *wb, const char *path);
void wb_set_prompt_set(Wb *wb, WbPromptSet *set);   /* takes the reference */
/* The linked selection changed: every view and the prompt filter follow. */
void wb_selection_changed(Wb *wb);
/* The run changed or new data arrived: views, prompts, fire index. */
void wb_data_changed(Wb *wb, gboolean new_run);
/* The selected prompt's bytes (borrowed) or NULL. */
const char *wb_prompt_text(Wb *wb, int index, size_t *len);
/* Start the long job (refused with a message when one runs). */
gboolean wb_long_job_begin(Wb *wb, WbJob *j);
void wb_long_job_end(Wb *wb, WbJob *j);
void wb_progress_show(Wb *wb, const char *what, const char *unit, const MsProgress *p);
void wb_remember_file(Wb *wb, const char *kind, const char *path);
GtkWidget *wb_labelled(GtkWidget *w, const char *name);   /* sets the accessible label, returns w */
GtkWidget *wb_caption(const char *text);                  /* a dimmed label before a field */
/* A spin button whose lowest value means a choice ("the default", "every
 * layer") reads word there, and word may be typed; word is a string
 * literal.  Call before connecting "value-changed". */
void wb_spin_word(GtkWidget *sb, const char *word);
/* A model, a non-empty prompt set and a database open for writing, or an
 * error in the window naming action (and `what` it stores): FALSE. */
gboolean wb_ready_to_store(Wb *wb, const char *action, const char *what);
/* Set a label's text keeping the accessible name wb_labelled gave it (the text stays readable through AT-SPI Text). */
void wb_label_set(GtkWidget *l, const char *text);
/* A button with a mnemonic, its accessible name the label without underscores. */
GtkWidget *wb_mnemonic_button(const char *label);
/* A dialog's button row, right-aligned: _Cancel, then the suggested action
 * ok_label; both callbacks get data. */
GtkWidget *wb_dialog_buttons(const char *ok_label, GCallback ok_cb, GCallback cancel_cb, gpointer data);
/* The form a path is kept and remembered in: a file's absolute name, a
 * PostgreSQL URI as given (newly allocated). */
char *wb_canonical_path(const char *path);
/* A drop-down over a GtkStringList whose long items are ellipsized (it never widens the window). */
GtkWidget *wb_string_dropdown(GtkStringList *list, int max_chars);
void wb_save_settings(Wb *wb);
void wb_update_recent_menu(Wb *wb);

/* ------------------------------------------------------------------ pages */

ViewPage *wb_view_page_new(Wb *wb, const MsViewClass *v);
GtkWidget *wb_view_page_widget(ViewPage *p);
const MsViewClass *wb_view_page_class(ViewPage *p);
/* Something the view shows changed (run, prompt, data); prepares again now
 * when visible, else when next shown. */
void wb_view_page_invalidate(ViewPage *p, gboolean only_if_uses_prompt);
void wb_view_page_shown(ViewPage *p);
void wb_view_page_selection(ViewPage *p, const WbSelection *s);
/* Render the prepared figure into a file on a worker (win.export-view). */
void wb_view_page_export(ViewPage *p, const WbViewExport *e);
void wb_view_page_free(ViewPage *p);
ViewPage *wb_visible_view_page(Wb *wb);
/* Run sweep (the Sweep page's bar): candidates, controls, a worker job. */
GtkWidget *wb_sweep_bar_new(Wb *wb);

IvPage *wb_iv_page_new(Wb *wb);
GtkWidget *wb_iv_page_widget(IvPage *p);
void wb_iv_page_model_changed(IvPage *p);   /* the grid was replaced (or removed) */
void wb_iv_page_prompt_changed(IvPage *p);
void wb_iv_page_selection(IvPage *p, const WbSelection *s);
void wb_iv_page_refresh(IvPage *p);         /* the grid's set changed */
void wb_iv_apply(IvPage *p);
void wb_iv_run_all(IvPage *p);
void wb_iv_load_plan(IvPage *p, const char *module);
int wb_iv_gen_tokens(IvPage *p);
void wb_iv_page_free(IvPage *p);

AnPage *wb_an_page_new(Wb *wb);
GtkWidget *wb_an_page_widget(AnPage *p);
void wb_an_page_data_changed(AnPage *p);
void wb_an_run(AnPage *p);
/* The plan of the last analysis run in this window for module, or NULL. */
const char *wb_an_last_plan(AnPage *p, const char *module);
void wb_an_page_free(AnPage *p);

/* The export dialog (Ctrl+E). */
void wb_export_dialog(Wb *wb);
/* A file chooser, in a child process (chooser.c says why); on accept,
 * calls fn(wb, path) from the main loop.  One at a time per window. */
typedef void (*WbPathFn)(Wb *wb, const char *path);
void wb_choose_file(Wb *wb, const char *title, GtkFileChooserAction action, const char *accept, WbPathFn fn);
/* The window is being destroyed: end its dialog's process, drop the callback. */
void wb_chooser_window_gone(Wb *wb);
/* `moescope-gtk --choose-file ...`: the dialog's process (main() calls it). */
int wb_chooser_main(int argc, char **argv);

#endif
