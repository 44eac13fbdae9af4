/* wb-grid.c — the intervention grid over one MsIntervention (wb-grid.h). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ms-plot.h"
#include "wb-grid.h"

struct WbGrid {
    int n_layer, n_expert, k;
    bool *moe;
    MsIntervention *iv;
};

WbGrid *wb_grid_new(int n_layer, int n_expert, int k_default, const bool *moe)
{
    if (n_layer < 1 || n_expert < 1 || k_default < 1 || k_default > n_expert) return NULL;
    WbGrid *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    g->n_layer = n_layer;
    g->n_expert = n_expert;
    g->k = k_default;
    g->moe = malloc((size_t)n_layer * sizeof *g->moe);
    g->iv = ms_intervention_new(n_layer, n_expert);
    if (!g->moe || !g->iv) {
        wb_grid_free(g);
        return NULL;
    }
    for (int l = 0; l < n_layer; l++) g->moe[l] = moe ? moe[l] : true;
    return g;
}

WbGrid *wb_grid_new_for_model(const MsModel *m)
{
    const MsModelInfo *mi = ms_model_info(m);
    bool *moe = malloc((size_t)mi->n_layer * sizeof *moe);
    if (!moe) return NULL;
    for (int l = 0; l < mi->n_layer; l++) moe[l] = ms_model_layer_is_moe(m, l);
    WbGrid *g = wb_grid_new(mi->n_layer, mi->n_expert, mi->n_expert_used, moe);
    free(moe);
    return g;
}

void wb_grid_free(WbGrid *g)
{
    if (!g) return;
    ms_intervention_free(g->iv);
    free(g->moe);
    free(g);
}

int wb_grid_n_layer(const WbGrid *g) { return g->n_layer; }
int wb_grid_n_expert(const WbGrid *g) { return g->n_expert; }
int wb_grid_k_default(const WbGrid *g) { return g->k; }
bool wb_grid_is_moe(const WbGrid *g, int layer) { return layer >= 0 && layer < g->n_layer && g->moe[layer]; }
const MsIntervention *wb_grid_intervention(const WbGrid *g) { return g->iv; }

char *wb_grid_to_text(const WbGrid *g) { return ms_intervention_to_string(g->iv); }

static int count_cb(void *user, const MsInterventionEntry *e)
{
    (*(int *)user)++;
    return 0;
}

int wb_grid_count(const WbGrid *g)
{
    int n = 0;
    ms_intervention_list(g->iv, count_cb, &n);
    return n;
}

static bool in_range(const WbGrid *g, int layer, int expert)
{
    return layer >= 0 && layer < g->n_layer && expert >= 0 && expert < g->n_expert;
}

static MsExpertOps ops_of(const WbGrid *g, int layer, int expert)
{
    MsExpertOps o = MS_EXPERT_OPS_NONE;
    if (in_range(g, layer, expert)) ms_intervention_get(g->iv, layer, expert, &o);
    return o;
}

WbCellMode wb_grid_mode(const WbGrid *g, int layer, int expert)
{
    MsExpertOps o = ops_of(g, layer, expert);
    return o.silence ? WB_CELL_SILENCE : o.force ? WB_CELL_FORCE : WB_CELL_NONE;
}

float wb_grid_steer(const WbGrid *g, int layer, int expert) { return ops_of(g, layer, expert).bias; }

bool wb_grid_has_other(const WbGrid *g, int layer, int expert)
{
    MsExpertOps o = ops_of(g, layer, expert);
    return o.drop || o.scale != 1.0f || o.steer_std != 0.0f || o.assign != MS_ASSIGN_NONE;
}

int wb_grid_top_k(const WbGrid *g, int layer) { return ms_intervention_top_k_get(g->iv, layer); }

/* Check a candidate set against the model; on success it replaces the grid's. */
static int commit(WbGrid *g, MsIntervention *cand, MsError *err)
{
    int rc = ms_intervention_validate(cand, g->n_layer, g->n_expert, g->k, err);
    if (rc < 0) {
        ms_intervention_free(cand);
        return rc;
    }
    ms_intervention_free(g->iv);
    g->iv = cand;
    return 0;
}

static int check_cell(const WbGrid *g, int layer, int expert, MsError *err)
{
    if (!in_range(g, layer, expert))
        return ms_error_set(err, MS_ERANGE, "layer %d, expert %d: outside the model (%d layers, %d experts)", layer,
                            expert, g->n_layer, g->n_expert);
    if (!g->moe[layer])
        return ms_error_set(err, MS_EINVAL, "layer %d is a dense block: it has no router to intervene on", layer);
    return 0;
}

int wb_grid_set_mode(WbGrid *g, int layer, int expert, WbCellMode mode, MsError *err)
{
    int rc = check_cell(g, layer, expert, err);
    if (rc < 0) return rc;
    MsExpertOps o = ops_of(g, layer, expert);
    o.silence = mode == WB_CELL_SILENCE;
    o.force = mode == WB_CELL_FORCE;
    if (o.silence && o.assign == MS_ASSIGN_RAISE) o.assign = MS_ASSIGN_NONE, o.margin = 0; /* raise vs silence */
    MsIntervention *c = ms_intervention_copy(g->iv);
    if (!c) return ms_error_set(err, MS_ENOMEM, "out of memory");
    rc = ms_intervention_set(c, layer, expert, &o, err);
    if (rc < 0) {
        ms_intervention_free(c);
        return rc;
    }
    return commit(g, c, err);
}

static const char *mode_word(WbCellMode m)
{
    return m == WB_CELL_SILENCE ? "silence" : m == WB_CELL_FORCE ? "force" : "none";
}

int wb_grid_cycle(WbGrid *g, int layer, int expert, MsError *err)
{
    ms_error_clear(err);
    int rc = check_cell(g, layer, expert, err);
    if (rc < 0) return rc;
    WbCellMode cur = wb_grid_mode(g, layer, expert);
    WbCellMode next = (WbCellMode)((cur + 1) % 3);
    MsError e1 = { 0 };
    if (wb_grid_set_mode(g, layer, expert, next, &e1) == 0) return next;
    WbCellMode after = (WbCellMode)((next + 1) % 3);
    if (after == cur || wb_grid_set_mode(g, layer, expert, after, NULL) < 0) after = cur;
    if (err) {
        ms_error_set(err, e1.code ? e1.code : MS_EINVAL, "cannot %s layer %d, expert %d (%s); it is now '%s'",
                     mode_word(next), layer, expert, e1.msg, mode_word(after));
    }
    return after;
}

int wb_grid_set_steer(WbGrid *g, int layer, int expert, float bias, MsError *err)
{
    int rc = check_cell(g, layer, expert, err);
    if (rc < 0) return rc;
    if (!isfinite(bias)) return ms_error_set(err, MS_EINVAL, "steer: not a finite number");
    if (bias > WB_STEER_MAX) bias = WB_STEER_MAX;
    if (bias < -WB_STEER_MAX) bias = -WB_STEER_MAX;
    MsExpertOps o = ops_of(g, layer, expert);
    o.bias = bias;
    MsIntervention *c = ms_intervention_copy(g->iv);
    if (!c) return ms_error_set(err, MS_ENOMEM, "out of memory");
    rc = ms_intervention_set(c, layer, expert, &o, err);
    if (rc < 0) {
        ms_intervention_free(c);
        return rc;
    }
    return commit(g, c, err);
}

int wb_grid_set_top_k(WbGrid *g, int layer, int k, MsError *err)
{
    int rc = check_cell(g, layer, 0, err);
    if (rc < 0) return rc;
    if (k < 0 || k > g->n_expert)
        return ms_error_set(err, MS_ERANGE, "layer %d: top-k %d outside 0..%d (0 = the model's %d)", layer, k,
                            g->n_expert, g->k);
    MsLayerOps lo;
    ms_intervention_get_layer(g->iv, layer, &lo);
    lo.top_k = k;
    MsIntervention *c = ms_intervention_copy(g->iv);
    if (!c) return ms_error_set(err, MS_ENOMEM, "out of memory");
    rc = ms_intervention_set_layer(c, layer, &lo, err);
    if (rc < 0) {
        ms_intervention_free(c);
        return rc;
    }
    return commit(g, c, err);
}

void wb_grid_clear_expert(WbGrid *g, int layer, int expert)
{
    if (in_range(g, layer, expert)) ms_intervention_clear_expert(g->iv, layer, expert);
}

void wb_grid_clear(WbGrid *g) { ms_intervention_clear(g->iv); }

int wb_grid_set_intervention(WbGrid *g, const MsIntervention *iv, MsError *err)
{
    if (!iv) {
        wb_grid_clear(g);
        return 0;
    }
    if (ms_intervention_n_layer(iv) != g->n_layer || ms_intervention_n_expert(iv) != g->n_expert)
        return ms_error_set(err, MS_EINVAL, "the set is for %d layers × %d experts, the model has %d × %d",
                            ms_intervention_n_layer(iv), ms_intervention_n_expert(iv), g->n_layer, g->n_expert);
    MsIntervention *c = ms_intervention_copy(iv);
    if (!c) return ms_error_set(err, MS_ENOMEM, "out of memory");
    return commit(g, c, err);
}

/* Parse text for this grid; an empty set replaces the grid's only when
 * keep_empty.  1: committed, 0: empty and left alone, < 0: error. */
static int load_text(WbGrid *g, const char *text, bool keep_empty, MsError *err)
{
    MsIntervention *c = ms_intervention_new(g->n_layer, g->n_expert);
    if (!c) return ms_error_set(err, MS_ENOMEM, "out of memory");
    int rc = ms_intervention_parse_text(c, text, err);
    if (rc < 0 || (!keep_empty && ms_intervention_is_empty(c))) {
        ms_intervention_free(c);
        return rc < 0 ? rc : 0;
    }
    rc = commit(g, c, err);
    return rc < 0 ? rc : 1;
}

int wb_grid_load_text(WbGrid *g, const char *text, MsError *err)
{
    int rc = load_text(g, text, true, err);
    return rc < 0 ? rc : 0;
}

int wb_grid_load_plan(WbGrid *g, const char *text, MsError *err)
{
    int rc = load_text(g, text, false, err);
    return rc <= 0 ? rc : wb_grid_count(g);
}

int wb_grid_load_file(WbGrid *g, const char *path, MsError *err)
{
    MsIntervention *c = ms_intervention_new(g->n_layer, g->n_expert);
    if (!c) return ms_error_set(err, MS_ENOMEM, "out of memory");
    int rc = ms_intervention_load(c, path, err);
    if (rc < 0) {
        ms_intervention_free(c);
        return rc;
    }
    rc = commit(g, c, err);
    if (rc < 0) ms_error_prefix(err, "%s: ", path);
    return rc;
}

int wb_grid_save_file(const WbGrid *g, const char *path, MsError *err)
{
    char *text = wb_grid_to_text(g);
    if (!text) return ms_error_set(err, MS_ENOMEM, "out of memory");
    size_t n = strlen(path);
    char *tmp = malloc(n + 16);
    if (!tmp) {
        free(text);
        return ms_error_set(err, MS_ENOMEM, "out of memory");
    }
    snprintf(tmp, n + 16, "%s.tmp%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    int rc = 0;
    if (!f) {
        rc = ms_error_set(err, MS_EIO, "%s: cannot write: %s", path, strerror(errno));
    } else {
        fprintf(f, "# moescope intervention set (docs/interventions.md), %d layers x %d experts\n", g->n_layer,
                g->n_expert);
        if (text[0]) fprintf(f, "%s\n", text);
        if (ferror(f) | (fclose(f) != 0)) rc = ms_error_set(err, MS_EIO, "%s: write failed: %s", path, strerror(errno));
        if (!rc && rename(tmp, path) != 0) rc = ms_error_set(err, MS_EIO, "%s: %s", path, strerror(errno));
        if (rc) unlink(tmp);
    }
    free(tmp);
    free(text);
    return rc;
}

void wb_grid_cell_describe(const WbGrid *g, int layer, int expert, char *buf, size_t size)
{
    if (!size) return;
    if (!in_range(g, layer, expert)) {
        snprintf(buf, size, "no cell");
        return;
    }
    if (!g->moe[layer]) {
        snprintf(buf, size, "Layer %d, expert %d: dense block (no router)", layer, expert);
        return;
    }
    MsExpertOps o = ops_of(g, layer, expert);
    size_t n = (size_t)snprintf(buf, size, "Layer %d, expert %d: ", layer, expert);
    const char *sep = "";
#define ADD(...)                                                       \
    do {                                                               \
        if (n < size) n += (size_t)snprintf(buf + n, size - n, "%s", sep); \
        if (n < size) n += (size_t)snprintf(buf + n, size - n, __VA_ARGS__); \
        sep = ", ";                                                    \
    } while (0)
    if (o.silence) ADD("silenced");
    if (o.force) ADD("forced");
    if (o.bias != 0.0f) ADD("steer %+.2f", o.bias);
    if (o.drop) ADD("dropped");
    if (o.scale != 1.0f) ADD("weight × %.3g", o.scale);
    if (o.steer_std != 0.0f) ADD("steer-std %+.3g", o.steer_std);
    if (o.assign == MS_ASSIGN_RAISE) ADD("raised (margin %.3g)", o.margin);
    if (o.assign == MS_ASSIGN_LOWER) ADD("lowered (margin %.3g)", o.margin);
    if (!*sep) ADD("no intervention");
    int k = wb_grid_top_k(g, layer);
    if (k > 0 && n < size) snprintf(buf + n, size - n, "; layer top-k %d", k);
#undef ADD
}

/* ------------------------------------------------------------ geometry */

void wb_grid_size(const WbGrid *g, double *width, double *height)
{
    *width = WB_GRID_LABEL_W + g->n_expert * WB_GRID_CELL_W + 1;
    *height = WB_GRID_LABEL_H + g->n_layer * WB_GRID_CELL_H + 1;
}

bool wb_grid_hit(const WbGrid *g, double x, double y, int *layer, int *expert)
{
    double cx = (x - WB_GRID_LABEL_W) / WB_GRID_CELL_W, cy = (y - WB_GRID_LABEL_H) / WB_GRID_CELL_H;
    if (!(cx >= 0 && cy >= 0 && cx < g->n_expert && cy < g->n_layer)) return false;
    *layer = (int)cy;
    *expert = (int)cx;
    return true;
}

void wb_grid_cell_origin(const WbGrid *g, int layer, int expert, double *x, double *y)
{
    *x = WB_GRID_LABEL_W + expert * WB_GRID_CELL_W;
    *y = WB_GRID_LABEL_H + layer * WB_GRID_CELL_H;
}

void wb_grid_marks_init(WbGridMarks *m)
{
    m->focus_layer = m->focus_expert = -1;
    m->sel_layer = m->sel_expert = -1;
    m->hover_layer = m->hover_expert = -1;
}

static void set_rgb(cairo_t *cr, MsRgb c) { cairo_set_source_rgb(cr, c.r, c.g, c.b); }

void wb_grid_draw(cairo_t *cr, const WbGrid *g, const WbGridMarks *m)
{
    double W, H;
    wb_grid_size(g, &W, &H);
    MsPlotStyle style = { .font_size = 11 };
    MsPlotText *t = ms_plot_text_new(&style);
    if (!t) return;
    cairo_save(cr);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_rectangle(cr, 0, 0, W, H);
    cairo_fill(cr);
    const MsRgb ink = { 0.1, 0.1, 0.12 }, grey = { 0.55, 0.55, 0.58 };
    const MsRgb c_sil = { 0.72, 0.13, 0.15 }, c_force = { 0.10, 0.55, 0.25 };
    char buf[64];
    /* expert ids on top: every id when they fit, else every 2nd, 4th ... */
    int step = 1;
    while (step * WB_GRID_CELL_W < 22 && step < g->n_expert) step *= 2;
    for (int e = 0; e < g->n_expert; e++) {
        bool sel = m && e == m->sel_expert;
        if (e % step && !sel) continue;
        snprintf(buf, sizeof buf, "%d", e);
        set_rgb(cr, sel ? c_force : grey);
        ms_plot_text_draw(t, cr, MS_PLOT_ROLE_TICK, buf, 0, WB_GRID_LABEL_W + (e + 0.5) * WB_GRID_CELL_W,
                          WB_GRID_LABEL_H - 3, 0.5, 1, 0);
    }
    for (int l = 0; l < g->n_layer; l++) {
        int k = wb_grid_top_k(g, l);
        if (k > 0)
            snprintf(buf, sizeof buf, "L%d k=%d", l, k);
        else
            snprintf(buf, sizeof buf, g->moe[l] ? "L%d" : "L%d dense", l);
        set_rgb(cr, m && l == m->sel_layer ? c_force : ink);
        ms_plot_text_draw(t, cr, MS_PLOT_ROLE_TICK, buf, WB_GRID_LABEL_W - 8, WB_GRID_LABEL_W - 6,
                          WB_GRID_LABEL_H + (l + 0.5) * WB_GRID_CELL_H, 1, 0.5, 0);
        for (int e = 0; e < g->n_expert; e++) {
            double x, y;
            wb_grid_cell_origin(g, l, e, &x, &y);
            if (!g->moe[l]) {
                cairo_set_source_rgb(cr, 0.93, 0.93, 0.93);
                cairo_rectangle(cr, x, y, WB_GRID_CELL_W, WB_GRID_CELL_H);
                cairo_fill(cr);
                continue;
            }
            MsExpertOps o = ops_of(g, l, e);
            /* steer: a diverging fill, blue for negative, red for positive */
            MsRgb fill = { 0.97, 0.97, 0.98 };
            if (o.bias != 0.0f) fill = ms_plot_cmap_signed(MS_CMAP_BALANCE, o.bias, WB_STEER_MAX);
            if (o.silence) fill = (MsRgb){ 0.99, 0.86, 0.86 };
            if (o.force) fill = (MsRgb){ 0.84, 0.95, 0.86 };
            set_rgb(cr, fill);
            cairo_rectangle(cr, x, y, WB_GRID_CELL_W, WB_GRID_CELL_H);
            cairo_fill(cr);
            double cx = x + WB_GRID_CELL_W / 2, cy = y + WB_GRID_CELL_H / 2;
            if (o.silence) { /* a cross */
                set_rgb(cr, c_sil);
                cairo_set_line_width(cr, 2);
                cairo_move_to(cr, cx - 5, cy - 5);
                cairo_line_to(cr, cx + 5, cy + 5);
                cairo_move_to(cr, cx + 5, cy - 5);
                cairo_line_to(cr, cx - 5, cy + 5);
                cairo_stroke(cr);
            } else if (o.force) { /* a filled dot */
                set_rgb(cr, c_force);
                cairo_arc(cr, cx, cy, 5, 0, 2 * M_PI);
                cairo_fill(cr);
            }
            if (o.drop || o.scale != 1.0f || o.steer_std != 0.0f || o.assign != MS_ASSIGN_NONE) {
                /* other operators: a small triangle in the corner */
                set_rgb(cr, (MsRgb){ 0.45, 0.25, 0.6 });
                cairo_move_to(cr, x + WB_GRID_CELL_W, y);
                cairo_line_to(cr, x + WB_GRID_CELL_W, y + 8);
                cairo_line_to(cr, x + WB_GRID_CELL_W - 8, y);
                cairo_close_path(cr);
                cairo_fill(cr);
            }
        }
    }
    /* cell lines */
    cairo_set_source_rgb(cr, 0.82, 0.82, 0.85);
    cairo_set_line_width(cr, 1);
    for (int e = 0; e <= g->n_expert; e++) {
        double x = WB_GRID_LABEL_W + e * WB_GRID_CELL_W + 0.5;
        cairo_move_to(cr, x, WB_GRID_LABEL_H);
        cairo_line_to(cr, x, H - 0.5);
    }
    for (int l = 0; l <= g->n_layer; l++) {
        double y = WB_GRID_LABEL_H + l * WB_GRID_CELL_H + 0.5;
        cairo_move_to(cr, WB_GRID_LABEL_W, y);
        cairo_line_to(cr, W - 0.5, y);
    }
    cairo_stroke(cr);
    if (m) {
        double x, y;
        if (m->sel_layer >= 0 && m->sel_layer < g->n_layer && m->sel_expert >= 0 && m->sel_expert < g->n_expert) {
            wb_grid_cell_origin(g, m->sel_layer, m->sel_expert, &x, &y);
            cairo_set_source_rgb(cr, 0.95, 0.6, 0.05);
            cairo_set_line_width(cr, 2);
            cairo_rectangle(cr, x + 1, y + 1, WB_GRID_CELL_W - 2, WB_GRID_CELL_H - 2);
            cairo_stroke(cr);
        }
        if (m->hover_layer >= 0 && in_range(g, m->hover_layer, m->hover_expert)) {
            wb_grid_cell_origin(g, m->hover_layer, m->hover_expert, &x, &y);
            cairo_set_source_rgba(cr, 0, 0, 0, 0.35);
            cairo_set_line_width(cr, 1);
            cairo_rectangle(cr, x + 0.5, y + 0.5, WB_GRID_CELL_W - 1, WB_GRID_CELL_H - 1);
            cairo_stroke(cr);
        }
        if (m->focus_layer >= 0 && in_range(g, m->focus_layer, m->focus_expert)) {
            wb_grid_cell_origin(g, m->focus_layer, m->focus_expert, &x, &y);
            cairo_set_source_rgb(cr, 0.1, 0.3, 0.8);
            cairo_set_line_width(cr, 2);
            double dash[] = { 3, 2 };
            cairo_set_dash(cr, dash, 2, 0);
            cairo_rectangle(cr, x + 2, y + 2, WB_GRID_CELL_W - 4, WB_GRID_CELL_H - 4);
            cairo_stroke(cr);
            cairo_set_dash(cr, NULL, 0, 0);
        }
    }
    cairo_restore(cr);
    ms_plot_text_free(t);
}
