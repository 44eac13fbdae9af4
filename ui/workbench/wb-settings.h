/* wb-settings.h — what the workbench remembers between sessions: window
 * size, panel state, last files and the recent-files lists, in a small key
 * file (INI: "[group]" lines, "key=value" lines, '#' comments) in the user's
 * config directory (CONFIG/moescope/workbench.ini).  Values are stored with
 * \\ \n \t escapes, so any path round-trips.  Plain C: no GLib, no GTK. */
#ifndef WB_SETTINGS_H
#define WB_SETTINGS_H

#include <stdbool.h>

#include "ms-common.h"

typedef struct WbSettings WbSettings;

WbSettings *wb_settings_new(void);
void wb_settings_free(WbSettings *s);   /* accepts NULL */

/* "CONFIG/moescope/workbench.ini" (caller frees); NULL for an empty dir. */
char *wb_settings_path(const char *config_dir);
/* Read a key file, replacing what s holds.  A missing file is an empty one
 * (0).  A malformed line is skipped and reported as MS_EFORMAT
 * "PATH:LINE: problem" after the rest has been read. */
int wb_settings_load(WbSettings *s, const char *path, MsError *err);
/* Write (creating the directory; temporary file + rename). */
int wb_settings_save(const WbSettings *s, const char *path, MsError *err);

/* Borrowed until the next change; NULL when absent. */
const char *wb_settings_get(const WbSettings *s, const char *group, const char *key);
int wb_settings_get_int(const WbSettings *s, const char *group, const char *key, int dflt);
bool wb_settings_get_bool(const WbSettings *s, const char *group, const char *key, bool dflt);
/* Set (value NULL removes).  Groups and keys: no '=', '[', ']' or line ends;
 * MS_EINVAL otherwise. */
int wb_settings_set(WbSettings *s, const char *group, const char *key, const char *value);
int wb_settings_set_int(WbSettings *s, const char *group, const char *key, int v);
int wb_settings_set_bool(WbSettings *s, const char *group, const char *key, bool v);

/* Recent files of a kind ("model", "prompts", "db", "interventions"), newest
 * first, at most WB_RECENT_MAX, no duplicates. */
#define WB_RECENT_MAX 10
int wb_recent_list(const WbSettings *s, const char *kind, const char **out, int max);
int wb_recent_add(WbSettings *s, const char *kind, const char *path);
int wb_recent_remove(WbSettings *s, const char *kind, const char *path);

#endif
