/* wb-files.h — files the workbench opens and writes: what kind a dropped or
 * chosen file is (by its first bytes, not its name), and the parameter
 * strings of the export actions.  Plain C: no GTK. */
#ifndef WB_FILES_H
#define WB_FILES_H

#include <stdbool.h>

#include "ms-common.h"
#include "trace.h"

typedef enum {
    WB_FILE_UNKNOWN = 0,
    WB_FILE_MODEL,      /* GGUF ("GGUF" magic) */
    WB_FILE_DB,         /* SQLite ("SQLite format 3\0") */
    WB_FILE_TEXT,       /* UTF-8 text: a prompt set (or an intervention set) */
} WbFileKind;

/* Sniff a file: MS_EIO (unreadable, a directory) with a message, or a kind;
 * WB_FILE_UNKNOWN for binary data that is none of them (with a message).
 * A name ending in .gguf is a model whatever it holds (the loader says
 * what is wrong with it).
 * A PostgreSQL connection URI (postgresql://... or postgres://...) is a
 * trace database without looking further (nothing is connected to). */
int wb_file_kind(const char *path, MsError *err);

/* Where the workbench accepts a trace database file it accepts a
 * PostgreSQL URI too (the open dialog's "PostgreSQL database…", --db, the
 * open-db actions, a dropped or typed text).  True when s is such a URI. */
bool wb_db_is_uri(const char *s);
/* A URI typed into the dialog: 0, or MS_EINVAL with a one-line message
 * (empty, not postgresql:// or postgres://, white space or control
 * characters inside). */
int wb_db_uri_check(const char *s, MsError *err);
/* True when the URI carries a password (user:password@ or password=):
 * such a URI is not written into the settings file. */
bool wb_db_uri_has_password(const char *s);
const char *wb_file_kind_name(WbFileKind k);   /* "model", "trace database", "text", "unknown" */
/* A text file whose first clause (after blank and '#' lines) is an
 * intervention operator and a spec ("silence 1:3", "top-k 2",
 * docs/interventions.md) is an intervention set rather than a prompt set. */
bool wb_text_is_intervention_set(const char *path);

/* win.export-view's parameter: "[WxH[@S]:]PATH" — an optional size in
 * figure units (and device scale) before the path, e.g.
 * "1600x1000:/tmp/heatmap.pdf", "800x600@2:fig.png".  Format from the
 * extension (.png .svg .pdf).  Width/height 0 = the widget's size. */
typedef struct {
    double width, height, scale;
    char path[4096];
} WbViewExport;
int wb_view_export_parse(const char *spec, WbViewExport *out, MsError *err);

/* win.export-trace's parameter: "FORMAT:PATH" with FORMAT sqlite, postgresql
 * or csv (PATH a directory for csv); or just PATH, the format then from the
 * extension: .sql = sqlite, .pgsql / .psql = postgresql, none = csv. */
typedef struct {
    MsExportFormat format;
    char path[4096];
} WbTraceExport;
int wb_trace_export_parse(const char *spec, WbTraceExport *out, MsError *err);
const char *wb_export_format_name(MsExportFormat f);   /* "SQL (SQLite)", "SQL (PostgreSQL)", "CSV" */

#endif
