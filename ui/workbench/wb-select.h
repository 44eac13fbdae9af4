/* wb-select.h — linked selection: a (layer, expert) chosen in any view is
 * highlighted in every other (MsViewState.sel_layer / sel_expert), and the
 * prompt list keeps the prompts where that expert fires.  The fire index
 * says, per traced prompt, which (layer, expert) pairs were selected at
 * some position; it is read from the trace in bounded memory (one bit per
 * prompt, layer and expert) and updated incrementally while a trace is
 * being written.  Plain C: no GTK. */
#ifndef WB_SELECT_H
#define WB_SELECT_H

#include <stdbool.h>
#include <stdint.h>

#include "ms-view.h"
#include "trace.h"

typedef struct {
    int layer, expert;   /* −1 = nothing selected */
} WbSelection;

void wb_selection_clear(WbSelection *s);
bool wb_selection_active(const WbSelection *s);
/* A click on what hit describes: selects its (layer, expert), or clears the
 * selection when it is the one already selected.  A hit without both a
 * layer and an expert leaves the selection alone.  True when it changed. */
bool wb_selection_click(WbSelection *s, const MsViewHit *hit);
/* Select (layer, expert) directly (−1, −1 clears).  True when it changed. */
bool wb_selection_set(WbSelection *s, int layer, int expert);
/* Copy into a view state (sel_layer / sel_expert). */
void wb_selection_apply(const WbSelection *s, MsViewState *st);
/* "layer 1 · expert 3" or "nothing selected". */
void wb_selection_describe(const WbSelection *s, char *buf, size_t size);

typedef struct WbFireIndex WbFireIndex;

/* An empty index for a model of n_layer blocks and n_expert experts. */
WbFireIndex *wb_fire_index_new(int n_layer, int n_expert);
void wb_fire_index_free(WbFireIndex *x);   /* accepts NULL */
/* A copy (a worker updates the copy while the window filters with the original). */
WbFireIndex *wb_fire_index_copy(const WbFireIndex *x);
int wb_fire_index_n_layer(const WbFireIndex *x);
int wb_fire_index_n_expert(const WbFireIndex *x);
/* Read the prompts of run committed since the last call (all on the first)
 * and their routing.  Polls cancel per routing row.  0 or MS_E*; on error
 * the index holds what it held before. */
int wb_fire_index_update(WbFireIndex *x, MsTraceDb *db, int64_t run, const MsCancel *cancel, MsError *err);
/* Mark that (layer, expert) fired in prompt index (for tests and importers). */
int wb_fire_index_mark(WbFireIndex *x, int prompt, int layer, int expert);
/* Prompts indexed so far. */
int wb_fire_index_n_prompts(const WbFireIndex *x);
bool wb_fire_index_has(const WbFireIndex *x, int prompt);
bool wb_fire_index_fires(const WbFireIndex *x, int prompt, int layer, int expert);
/* Whether prompt index stays in the list under selection s: every prompt
 * without a selection; with one, the indexed prompts where it fires. */
bool wb_prompt_visible(const WbFireIndex *x, const WbSelection *s, int prompt);
/* How many indexed prompts the selection keeps. */
int wb_fire_index_count(const WbFireIndex *x, const WbSelection *s);

#endif
