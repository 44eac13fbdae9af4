/* wb-text.h — what the workbench writes into its labels, as pure functions
 * (tested without a display): progress lines, durations, the model's facts,
 * prompt-list rows, labels typed as "key=value", and the word diff of two
 * continuations as Pango markup.  Plain C: no GTK. */
#ifndef WB_TEXT_H
#define WB_TEXT_H

#include <stdbool.h>
#include <stddef.h>

#include "engine.h"
#include "jobs.h"
#include "ms-common.h"

/* "4 s", "2 min 05 s", "1 h 03 min"; "?" for a negative or non-finite value. */
void wb_format_duration(double s, char *buf, size_t size);
/* "Tracing: 12 / 286 prompts · 1,234 tokens · 340 tokens/s · about 12 s left"
 * (what: "Tracing", "Experiment", ...; unknown parts are left out). */
void wb_progress_text(const char *what, const char *unit, const MsProgress *p, char *buf, size_t size);
/* Fraction done in [0, 1] (0 for an unknown total). */
double wb_progress_fraction(const MsProgress *p);

/* The model's facts for the side panel, as name / value rows. */
typedef struct {
    char name[32];
    char value[160];
} WbInfoRow;
/* Fills up to max rows; returns the count.  path may be NULL. */
int wb_model_info_rows(const MsModel *m, const char *path, WbInfoRow *rows, int max);

/* One row of the prompt list: "#3 · en · prose · 12 tokens — The library is
 * closed…"; the text's control characters are shown as ␤/␉ or \xNN, at most
 * max_chars characters of it.  n_tokens < 0 = not traced. */
void wb_prompt_row_text(int index, const char *text, size_t len, const char *labels_json, int n_tokens,
                        int max_chars, char *buf, size_t size);

/* Labels typed as "key=value, key2=value2" into a JSON object text (caller
 * frees; NULL for an empty spec).  MS_EFORMAT naming the part otherwise. */
int wb_labels_from_spec(const char *spec, char **json, MsError *err);
/* Prompts typed or pasted into the window (plain lines or JSONL, as
 * ms_prompts_parse), each prompt without labels getting labels_spec's. */
int wb_prompts_typed(const char *text, size_t len, const char *labels_spec, MsPrompt **out, size_t *n,
                     MsError *err);

/* The word diff of a (baseline) and b (intervened) as Pango markup of one
 * side (0: a, its deleted words marked; 1: b, its inserted words marked);
 * caller frees.  *n_marked (may be NULL) receives the marked words. */
char *wb_diff_markup(const char *a, const char *b, int side, int *n_marked);
/* Text escaped for Pango markup (caller frees). */
char *wb_markup_escape(const char *s, size_t len);

#endif
