/* wb-grid.h — the intervention panel's state: a layers × experts grid over
 * one MsIntervention (engine/engine.h), which stays the single source of
 * truth.  A click cycles an expert none → silence → force → none, a slider
 * steers it (router-logit bias), each layer may override top-k, and a plan
 * written by an analysis (or a saved set) loads into it.  Operators the grid
 * has no control for (drop, scale, steer-std, raise/lower, ser) are kept and
 * shown as "other".
 *
 * Every change is checked against the model (ms_intervention_validate with
 * the model's k) and refused, leaving the set as it was, when it would break
 * a layer's rule; the message says why.  Plain C: no GTK (ui/gtk/ draws and
 * wires it).  Ownership: a WbGrid owns its set; borrowed pointers live until
 * the next change. */
#ifndef WB_GRID_H
#define WB_GRID_H

#include <cairo.h>
#include <stdbool.h>

#include "engine.h"
#include "ms-common.h"

typedef enum { WB_CELL_NONE = 0, WB_CELL_SILENCE = 1, WB_CELL_FORCE = 2 } WbCellMode;

#define WB_STEER_MAX 8.0f   /* the slider's range: router-logit bias in [-8, +8] */

typedef struct WbGrid WbGrid;

/* A grid for a model of n_layer blocks, n_expert routed experts, top-k
 * k_default; moe[l] false marks a dense block (NULL = every block is MoE).
 * NULL on bad sizes or out of memory. */
WbGrid *wb_grid_new(int n_layer, int n_expert, int k_default, const bool *moe);
WbGrid *wb_grid_new_for_model(const MsModel *m);
void wb_grid_free(WbGrid *g);                       /* accepts NULL */

int wb_grid_n_layer(const WbGrid *g);
int wb_grid_n_expert(const WbGrid *g);
int wb_grid_k_default(const WbGrid *g);
bool wb_grid_is_moe(const WbGrid *g, int layer);

/* The set (borrowed; copy it to keep it past the next change). */
const MsIntervention *wb_grid_intervention(const WbGrid *g);
/* Canonical text form (caller frees), "" for an empty set. */
char *wb_grid_to_text(const WbGrid *g);
/* Experts with any operator, plus layers with their own operator. */
int wb_grid_count(const WbGrid *g);

WbCellMode wb_grid_mode(const WbGrid *g, int layer, int expert);
float wb_grid_steer(const WbGrid *g, int layer, int expert);
/* Operators the grid has no control for (drop, scale, steer-std, raise/lower). */
bool wb_grid_has_other(const WbGrid *g, int layer, int expert);
/* top-k override of a layer, 0 = the model's k. */
int wb_grid_top_k(const WbGrid *g, int layer);

/* The next mode of a click: none → silence → force → none.  When the next
 * mode breaks the layer's rule the one after is tried (none always works),
 * and err says what was skipped (err->code stays 0 when nothing was).
 * Returns the new mode, or MS_ERANGE / MS_EINVAL (a dense layer) unchanged. */
int wb_grid_cycle(WbGrid *g, int layer, int expert, MsError *err);
/* Set one mode directly: 0 or MS_E* with the set unchanged. */
int wb_grid_set_mode(WbGrid *g, int layer, int expert, WbCellMode mode, MsError *err);
/* Router-logit bias, clamped to ±WB_STEER_MAX; 0 removes it. */
int wb_grid_set_steer(WbGrid *g, int layer, int expert, float bias, MsError *err);
/* k for one layer, 0 = the model's; 1..n_expert otherwise. */
int wb_grid_set_top_k(WbGrid *g, int layer, int k, MsError *err);
/* Remove every operator of one expert / of the whole set. */
void wb_grid_clear_expert(WbGrid *g, int layer, int expert);
void wb_grid_clear(WbGrid *g);

/* Replace the whole set, all or nothing (checked against the model). */
int wb_grid_set_intervention(WbGrid *g, const MsIntervention *iv, MsError *err);
/* The text form (a saved set, a plan): replaces the set, all or nothing. */
int wb_grid_load_text(WbGrid *g, const char *text, MsError *err);
/* A plan (the text an analysis writes): as wb_grid_load_text, but a plan
 * with no operator (no expert qualified) leaves the set unchanged rather
 * than clearing it.  Returns the number of operators loaded (0: empty). */
int wb_grid_load_plan(WbGrid *g, const char *text, MsError *err);
/* The same from a file ("PATH:LINE: problem"). */
int wb_grid_load_file(WbGrid *g, const char *path, MsError *err);
/* Write the text form to path (temporary file + rename), with a comment line. */
int wb_grid_save_file(const WbGrid *g, const char *path, MsError *err);

/* "Layer 1, expert 3: silenced, steer +1.50" — what a user reads about a cell. */
void wb_grid_cell_describe(const WbGrid *g, int layer, int expert, char *buf, size_t size);

/* ---- geometry and drawing (cairo, no GTK) ----
 * Fixed-size cells: a column of layer labels at the left, a row of expert
 * ids on top, then n_layer rows × n_expert columns of WB_GRID_CELL_W ×
 * WB_GRID_CELL_H.  Pure functions of the grid, so a click maps to exactly
 * the cell that was drawn. */
#define WB_GRID_LABEL_W 72.0
#define WB_GRID_LABEL_H 22.0
#define WB_GRID_CELL_W 26.0
#define WB_GRID_CELL_H 22.0

void wb_grid_size(const WbGrid *g, double *width, double *height);
/* Cell under (x, y): true with *layer, *expert set. */
bool wb_grid_hit(const WbGrid *g, double x, double y, int *layer, int *expert);
/* Top left of a cell. */
void wb_grid_cell_origin(const WbGrid *g, int layer, int expert, double *x, double *y);

typedef struct {
    int focus_layer, focus_expert;   /* keyboard focus / the cell the editor shows, −1 = none */
    int sel_layer, sel_expert;       /* linked selection, −1 = none */
    int hover_layer, hover_expert;   /* −1 = none */
} WbGridMarks;
void wb_grid_marks_init(WbGridMarks *m);
/* Paint the grid at (0, 0) in its own size. */
void wb_grid_draw(cairo_t *cr, const WbGrid *g, const WbGridMarks *m);

#endif
