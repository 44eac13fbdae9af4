/* test-workbench.c — the workbench's logic without a display (ui/workbench/):
 * the intervention grid's state machine and its text form, zoom and pan
 * about the pointer, linked selection and the fire index over a real trace,
 * the settings key file and recent files, file kinds and export parameters,
 * label texts, view options, result tables and stored plans, and what
 * Apply sends and draws on the bundled default model. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "ms-plot.h"
#include "mtest.h"
#include "wb-apply.h"
#include "wb-files.h"
#include "wb-grid.h"
#include "wb-select.h"
#include "wb-settings.h"
#include "wb-table.h"
#include "wb-text.h"
#include "wb-views.h"
#include "wb-zoom.h"

static const char *tmp;

static char *tpath(const char *name)
{
    static char buf[8][1024];
    static int i;
    char *b = buf[i++ % 8];
    snprintf(b, sizeof buf[0], "%s/%s", tmp, name);
    return b;
}

static void write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(data, 1, n, f);
        fclose(f);
    }
}

/* Colour of pixel (x, y) of an ARGB32 surface. */
static void pixel(cairo_surface_t *s, int x, int y, int *r, int *g, int *b)
{
    cairo_surface_flush(s);
    const unsigned char *d = cairo_image_surface_get_data(s);
    uint32_t v = *(const uint32_t *)(d + (size_t)y * cairo_image_surface_get_stride(s) + (size_t)x * 4);
    *r = (v >> 16) & 255;
    *g = (v >> 8) & 255;
    *b = v & 255;
}

/* ------------------------------------------------------------------ grid */

static void test_grid(void)
{
    bool moe[4] = { false, true, true, true };
    WbGrid *g = wb_grid_new(4, 8, 2, moe);
    MsError err = { 0 };
    MT_CHECK(g && wb_grid_count(g) == 0, "grid: a new grid has no operator");
    MT_CHECK(!wb_grid_new(4, 8, 9, NULL) && !wb_grid_new(0, 8, 2, NULL), "grid: impossible shapes are refused");

    /* a click cycles none -> silence -> force -> none */
    MT_CHECK(wb_grid_cycle(g, 1, 3, &err) == WB_CELL_SILENCE && err.code == 0, "grid: first click silences");
    char *t = wb_grid_to_text(g);
    MT_CHECK(t && !strcmp(t, "silence 1:3"), "grid: text form after one click: '%s'", t ? t : "(null)");
    free(t);
    MT_CHECK(wb_grid_cycle(g, 1, 3, &err) == WB_CELL_FORCE && wb_grid_mode(g, 1, 3) == WB_CELL_FORCE,
             "grid: second click forces");
    t = wb_grid_to_text(g);
    MT_CHECK(t && !strcmp(t, "force 1:3"), "grid: text form after two clicks: '%s'", t ? t : "(null)");
    free(t);
    MT_CHECK(wb_grid_cycle(g, 1, 3, &err) == WB_CELL_NONE && wb_grid_count(g) == 0,
             "grid: third click clears, the set is empty again");

    /* a dense block has no router */
    MT_CHECK(wb_grid_cycle(g, 0, 1, &err) == MS_EINVAL && strstr(err.msg, "dense"), "grid: dense layer refused: %s",
             err.msg);
    MT_CHECK(wb_grid_cycle(g, 9, 1, &err) == MS_ERANGE, "grid: a cell outside the model is refused");

    /* the layer's rule: with k = 2 at most 6 of 8 experts can be silenced */
    for (int e = 0; e < 6; e++) wb_grid_set_mode(g, 2, e, WB_CELL_SILENCE, NULL);
    MT_CHECK(wb_grid_count(g) == 6, "grid: six experts silenced");
    int m = wb_grid_cycle(g, 2, 6, &err);
    MT_CHECK(m == WB_CELL_FORCE && err.code != 0 && strstr(err.msg, "cannot silence layer 2, expert 6") &&
                 strstr(err.msg, "'force'"),
             "grid: silencing a 7th expert of a top-2 layer is skipped to force, with the reason: %s", err.msg);
    m = wb_grid_cycle(g, 2, 6, &err);
    MT_CHECK(m == WB_CELL_NONE && wb_grid_mode(g, 2, 6) == WB_CELL_NONE, "grid: and the next click clears it");
    MT_CHECK(wb_grid_set_mode(g, 2, 7, WB_CELL_FORCE, &err) == 0 && wb_grid_set_mode(g, 2, 6, WB_CELL_FORCE, &err) == 0,
             "grid: two forced experts fit k = 2");
    MT_CHECK(wb_grid_set_top_k(g, 2, 1, &err) < 0 && wb_grid_top_k(g, 2) == 0,
             "grid: top-k 1 with two forced is refused, the set unchanged: %s", err.msg);
    wb_grid_clear(g);
    MT_CHECK(wb_grid_count(g) == 0 && ms_intervention_is_empty(wb_grid_intervention(g)), "grid: clear");

    /* steer and top-k */
    MT_CHECK(wb_grid_set_steer(g, 3, 5, 1.5f, &err) == 0 && wb_grid_steer(g, 3, 5) == 1.5f, "grid: steer +1.5");
    MT_CHECK(wb_grid_set_steer(g, 3, 4, 100.0f, &err) == 0 && wb_grid_steer(g, 3, 4) == WB_STEER_MAX,
             "grid: steer is clamped to the slider's range");
    MT_CHECK(wb_grid_set_steer(g, 3, 4, NAN, &err) < 0, "grid: NaN steer refused");
    MT_CHECK(wb_grid_set_top_k(g, 1, 4, &err) == 0 && wb_grid_top_k(g, 1) == 4, "grid: layer top-k 4");
    MT_CHECK(wb_grid_set_top_k(g, 1, 9, &err) == MS_ERANGE, "grid: top-k above E refused");
    t = wb_grid_to_text(g);
    MT_CHECK(t && strstr(t, "steer 3:4:+8 3:5:+1.5") && strstr(t, "top-k 1:4"), "grid: text form has steer and top-k: '%s'",
             t ? t : "(null)");
    char d[256];
    wb_grid_cell_describe(g, 3, 5, d, sizeof d);
    MT_CHECK(!strcmp(d, "Layer 3, expert 5: steer +1.50"), "grid: cell description '%s'", d);
    wb_grid_cell_describe(g, 1, 0, d, sizeof d);
    MT_CHECK(!strcmp(d, "Layer 1, expert 0: no intervention; layer top-k 4"), "grid: cell description '%s'", d);

    /* the text form round-trips through a file */
    MT_CHECK(wb_grid_save_file(g, tpath("set.txt"), &err) == 0, "grid: save");
    WbGrid *g2 = wb_grid_new(4, 8, 2, moe);
    MT_CHECK(wb_grid_load_file(g2, tpath("set.txt"), &err) == 0 &&
                 ms_intervention_equal(wb_grid_intervention(g), wb_grid_intervention(g2)),
             "grid: load gives an equal set");
    free(t);

    /* a plan with operators the grid has no control for keeps them */
    memset(&err, 0, sizeof err);
    MT_CHECK(wb_grid_load_text(g2, "steer-std 2:1:0.5\nraise 3:0:0.01 # a comment\nsilence 1:7", &err) == 0,
             "grid: a cross-lingual / SteerMoE style plan loads: %s", err.msg);
    MT_CHECK(wb_grid_has_other(g2, 2, 1) && wb_grid_has_other(g2, 3, 0) && !wb_grid_has_other(g2, 1, 7) &&
                 wb_grid_mode(g2, 1, 7) == WB_CELL_SILENCE && wb_grid_top_k(g2, 1) == 0,
             "grid: loading replaces the set; other operators are marked as such");
    MsIntervention *before = ms_intervention_copy(wb_grid_intervention(g2));
    write_file(tpath("bad.txt"), "silence 1:2\nsilence 9:1\n", 24);
    MT_CHECK(wb_grid_load_file(g2, tpath("bad.txt"), &err) < 0 && strstr(err.msg, "bad.txt:2") &&
                 ms_intervention_equal(before, wb_grid_intervention(g2)),
             "grid: a bad file names its line and leaves the set alone: %s", err.msg);
    MT_CHECK(wb_grid_load_text(g2, "silence 1:0-7", &err) < 0 && ms_intervention_equal(before, wb_grid_intervention(g2)),
             "grid: a set that silences a whole layer is refused: %s", err.msg);
    MT_CHECK(wb_grid_load_text(g2, "force 1:0-2", &err) < 0, "grid: more forced than the model's k is refused: %s",
             err.msg);
    /* a plan: an empty one (no expert qualified) leaves the set as it was */
    MT_CHECK(wb_grid_load_plan(g2, "# npmi plan: no expert qualified\n", &err) == 0 &&
                 ms_intervention_equal(before, wb_grid_intervention(g2)),
             "grid: an empty plan loads nothing and leaves the set alone");
    MT_CHECK(wb_grid_load_plan(g2, "silence 1:2\nsilence 3:4,5", &err) == 3 && wb_grid_count(g2) == 3 &&
                 wb_grid_mode(g2, 3, 5) == WB_CELL_SILENCE,
             "grid: a plan of three operators loads three (%d)", wb_grid_count(g2));
    MT_CHECK(wb_grid_load_plan(g2, "silence 9:1", &err) < 0 && wb_grid_count(g2) == 3,
             "grid: a plan that does not fit is refused and changes nothing: %s", err.msg);
    ms_intervention_free(before);

    /* geometry: a click lands on the cell that was drawn there */
    double w, h, x, y;
    wb_grid_size(g, &w, &h);
    MT_CHECK(w == WB_GRID_LABEL_W + 8 * WB_GRID_CELL_W + 1 && h == WB_GRID_LABEL_H + 4 * WB_GRID_CELL_H + 1,
             "grid: size %gx%g", w, h);
    bool all = true;
    for (int l = 0; l < 4; l++)
        for (int e = 0; e < 8; e++) {
            int hl, he;
            wb_grid_cell_origin(g, l, e, &x, &y);
            all &= wb_grid_hit(g, x + WB_GRID_CELL_W / 2, y + WB_GRID_CELL_H / 2, &hl, &he) && hl == l && he == e;
        }
    int hl, he;
    MT_CHECK(all && !wb_grid_hit(g, 5, 5, &hl, &he) && !wb_grid_hit(g, w + 3, 30, &hl, &he),
             "grid: hit test inverts the cell origins; labels and outside miss");

    /* drawn colours: a silenced cell shows its red cross, a forced one its green dot */
    wb_grid_clear(g);
    wb_grid_set_mode(g, 1, 2, WB_CELL_SILENCE, NULL);
    wb_grid_set_mode(g, 2, 5, WB_CELL_FORCE, NULL);
    cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, (int)ceil(w), (int)ceil(h));
    cairo_t *cr = cairo_create(s);
    WbGridMarks mk;
    wb_grid_marks_init(&mk);
    wb_grid_draw(cr, g, &mk);
    cairo_destroy(cr);
    int r, gg, b;
    wb_grid_cell_origin(g, 1, 2, &x, &y);
    pixel(s, (int)(x + WB_GRID_CELL_W / 2), (int)(y + WB_GRID_CELL_H / 2), &r, &gg, &b);
    MT_CHECK(r > 150 && gg < 80 && b < 80, "grid: silenced cell centre is red (%d,%d,%d)", r, gg, b);
    wb_grid_cell_origin(g, 2, 5, &x, &y);
    pixel(s, (int)(x + WB_GRID_CELL_W / 2), (int)(y + WB_GRID_CELL_H / 2), &r, &gg, &b);
    MT_CHECK(gg > 110 && r < 60 && b < 100, "grid: forced cell centre is green (%d,%d,%d)", r, gg, b);
    wb_grid_cell_origin(g, 3, 0, &x, &y);
    pixel(s, (int)(x + WB_GRID_CELL_W / 2), (int)(y + WB_GRID_CELL_H / 2), &r, &gg, &b);
    MT_CHECK(r > 240 && gg > 240 && b > 240, "grid: an untouched cell is near white (%d,%d,%d)", r, gg, b);
    wb_grid_cell_origin(g, 0, 0, &x, &y);
    pixel(s, (int)(x + WB_GRID_CELL_W / 2), (int)(y + WB_GRID_CELL_H / 2), &r, &gg, &b);
    MT_CHECK(r == gg && gg == b && r < 245, "grid: a dense layer is grey (%d,%d,%d)", r, gg, b);
    cairo_surface_destroy(s);
    wb_grid_free(g);
    wb_grid_free(g2);
}

/* ------------------------------------------------------------------ zoom */

static bool near(double a, double b) { return fabs(a - b) <= 1e-6 * fmax(1, fabs(b)); }

static void test_zoom(void)
{
    /* 1000 tokens along x on a 500-px plot at x = 100; 16 layers down y */
    MsViewFrame f = { .x_lo = 0, .x_hi = 1000, .y_lo = 0, .y_hi = 16, .min_dx = 8, .min_dy = 1,
                      .plot = { 100, 50, 500, 320 }, .y_down = true };
    MsViewState s;
    ms_view_state_init(&s);
    double x, y, x0, x1, y0, y1;
    MT_CHECK(wb_zoom_data_at(&s, &f, 350, 210, &x, &y) && near(x, 500) && near(y, 8),
             "zoom: the plot centre is the data centre (%g, %g)", x, y);
    MT_CHECK(!wb_zoom_data_at(&s, &f, 50, 210, &x, &y), "zoom: left of the plot is outside");
    /* zoom in about a point: the data under it keeps its place */
    double px = 200, py = 100, ax, ay;
    wb_zoom_data_at(&s, &f, px, py, &ax, &ay);
    MT_CHECK(wb_zoom_at(&s, &f, px, py, 0.5, WB_AXIS_X), "zoom: zoom in changes the window");
    wb_zoom_window(&s, &f, &x0, &x1, &y0, &y1);
    wb_zoom_data_at(&s, &f, px, py, &x, &y);
    MT_CHECK(near(x1 - x0, 500) && near(x, ax) && s.y1 <= s.y0,
             "zoom: x span halves [%g, %g], %g stays under the pointer, y untouched", x0, x1, ax);
    /* pan: dragging 100 px right moves the window left by 100 px worth */
    MT_CHECK(wb_zoom_pan(&s, &f, 100, 0), "zoom: pan moves");
    wb_zoom_window(&s, &f, &x0, &x1, &y0, &y1);
    MT_CHECK(near(x0, 0) || near(x0, 200 - 100), "zoom: window after the drag starts at %g", x0);
    MT_CHECK(!wb_zoom_pan(&s, &f, 10000, 0) && near(s.x0, 0), "zoom: pan stops at the extent");
    /* zoom in a lot: the span stops at min_dx */
    for (int i = 0; i < 60; i++) wb_zoom_at(&s, &f, 300, 100, 0.5, WB_AXIS_X | WB_AXIS_Y);
    wb_zoom_window(&s, &f, &x0, &x1, &y0, &y1);
    MT_CHECK(near(x1 - x0, 8) && near(y1 - y0, 1) && x0 >= 0 && x1 <= 1000, "zoom: min span 8 tokens x 1 layer");
    /* zoom back out: the whole extent is stored as "all" */
    for (int i = 0; i < 80; i++) wb_zoom_at(&s, &f, 300, 100, 2, WB_AXIS_X | WB_AXIS_Y);
    MT_CHECK(!wb_zoom_active(&s) && s.x1 <= s.x0 && s.y1 <= s.y0, "zoom: zoomed out fully = all");
    /* y axis drawn upwards and x flipped */
    MsViewFrame g = f;
    g.y_down = false;
    g.x_flip = true;
    MT_CHECK(wb_zoom_data_at(&s, &g, 100, 50, &x, &y) && near(x, 1000) && near(y, 16),
             "zoom: flipped x and upward y map the top left to (%g, %g)", x, y);
    /* a frame that does not zoom along y */
    MsViewFrame h = f;
    h.y_hi = h.y_lo;
    wb_zoom_at(&s, &h, 300, 100, 0.5, WB_AXIS_X | WB_AXIS_Y);
    MT_CHECK(s.x1 > s.x0 && s.y1 <= s.y0, "zoom: an axis without extent is left alone");
    wb_zoom_reset(&s);
    MT_CHECK(!wb_zoom_active(&s), "zoom: reset");
}

/* -------------------------------------------------------------- selection */

static int64_t make_trace(MsTraceDb *db, MsError *err)
{
    MsTraceModel m;
    memset(&m, 0, sizeof m);
    snprintf(m.file_name, sizeof m.file_name, "t.gguf");
    snprintf(m.arch, sizeof m.arch, "test");
    snprintf(m.score_func, sizeof m.score_func, "softmax");
    m.n_layer = 3;
    m.n_expert = 8;
    m.n_expert_used = 2;
    m.w_scale = 1;
    m.n_vocab = 32;
    for (int l = 0; l < 3; l++) m.is_moe[l] = 1;
    m.n_moe_layers = 3;
    int64_t mid = ms_trace_model_add(db, &m, err);
    MsTraceRunDesc d = { .model_id = mid, .kind = "trace" };
    return mid > 0 ? ms_trace_run_new(db, &d, err) : -1;
}

/* Prompt p: at layer 1 expert p fires (with expert 7); other layers 0 and 1. */
static int add_prompt(MsTraceDb *db, int64_t run, int p, MsError *err)
{
    MsTraceWriter *w = ms_trace_writer_new(db, run, err);
    if (!w) return -1;
    int rc = ms_trace_writer_begin(w, p, "ab", 2, NULL, err);
    for (int pos = 0; pos < 2 && rc >= 0; pos++) {
        rc = ms_trace_writer_token(w, pos, 3, "a", 1, false, NAN, NAN, err);
        for (int l = 0; l < 3 && rc >= 0; l++) {
            int32_t ex[2] = { l == 1 ? p : 0, l == 1 ? 7 : 1 };
            rc = ms_trace_writer_route(w, pos, l, 2, ex, NULL, err);
        }
    }
    if (rc >= 0) rc = ms_trace_writer_commit(w, NULL, err);
    ms_trace_writer_free(w);
    return rc;
}

static void test_select(void)
{
    WbSelection s;
    wb_selection_clear(&s);
    MsViewHit h = { .kind = MS_HIT_CELL, .layer = 1, .expert = 3 };
    MT_CHECK(!wb_selection_active(&s) && wb_selection_click(&s, &h) && s.layer == 1 && s.expert == 3,
             "select: a click on a cell selects its expert");
    MsViewState st;
    ms_view_state_init(&st);
    wb_selection_apply(&s, &st);
    MT_CHECK(st.sel_layer == 1 && st.sel_expert == 3, "select: copied into a view state");
    MsViewHit tok = { .kind = MS_HIT_TOKEN, .layer = -1, .expert = -1, .pos = 4 };
    MT_CHECK(!wb_selection_click(&s, &tok) && s.layer == 1, "select: a hit without an expert leaves it");
    MT_CHECK(wb_selection_click(&s, &h) && !wb_selection_active(&s), "select: clicking it again clears");
    wb_selection_apply(&s, &st);
    MT_CHECK(st.sel_layer == -1 && st.sel_expert == -1, "select: cleared in the view state");
    char b[64];
    wb_selection_set(&s, 2, 5);
    wb_selection_describe(&s, b, sizeof b);
    MT_CHECK(!strcmp(b, "layer 2 · expert 5"), "select: described as '%s'", b);

    /* the fire index over a trace, updated while prompts are committed */
    MsError err = { 0 };
    MsTraceDb *db = ms_trace_open(tpath("fire.db"), MS_TRACE_CREATE, &err);
    int64_t run = db ? make_trace(db, &err) : -1;
    for (int p = 0; p < 4 && run > 0; p++) add_prompt(db, run, p, &err);
    WbFireIndex *x = wb_fire_index_new(3, 8);
    MsTraceDb *ro = ms_trace_open(tpath("fire.db"), MS_TRACE_READ, &err);
    int rc = ro ? wb_fire_index_update(x, ro, run, NULL, &err) : -1;
    MT_CHECK(rc == 0 && wb_fire_index_n_prompts(x) == 4, "fire: 4 prompts indexed (%s)", err.msg);
    bool ok = true;
    for (int p = 0; p < 4; p++)
        for (int e = 0; e < 8; e++) ok &= wb_fire_index_fires(x, p, 1, e) == (e == p || e == 7);
    MT_CHECK(ok && wb_fire_index_fires(x, 2, 0, 0) && !wb_fire_index_fires(x, 2, 0, 5),
             "fire: every (prompt, layer, expert) bit as traced");
    wb_selection_set(&s, 1, 2);
    MT_CHECK(wb_prompt_visible(x, &s, 2) && !wb_prompt_visible(x, &s, 1) && wb_fire_index_count(x, &s) == 1,
             "fire: selecting layer 1 expert 2 keeps only prompt 2");
    wb_selection_set(&s, 1, 7);
    MT_CHECK(wb_fire_index_count(x, &s) == 4, "fire: expert 7 fires in all four");
    wb_selection_clear(&s);
    MT_CHECK(wb_prompt_visible(x, &s, 3) && wb_prompt_visible(x, &s, 99), "fire: no selection keeps every prompt");
    /* a fifth prompt arrives: the update reads only it */
    add_prompt(db, run, 4, &err);
    rc = wb_fire_index_update(x, ro, run, NULL, &err);
    wb_selection_set(&s, 1, 4);
    MT_CHECK(rc == 0 && wb_fire_index_n_prompts(x) == 5 && wb_prompt_visible(x, &s, 4) && wb_fire_index_count(x, &s) == 1,
             "fire: incremental update adds the new prompt");
    rc = wb_fire_index_update(x, ro, run, NULL, &err);
    MT_CHECK(rc == 0 && wb_fire_index_n_prompts(x) == 5, "fire: an update with nothing new changes nothing");
    MT_CHECK(wb_fire_index_mark(x, 0, 3, 0) == MS_ERANGE, "fire: marking outside the model is refused");
    WbFireIndex *cp = wb_fire_index_copy(x);
    add_prompt(db, run, 5, &err);
    rc = cp ? wb_fire_index_update(cp, ro, run, NULL, &err) : -1;
    wb_selection_set(&s, 1, 5);
    MT_CHECK(rc == 0 && wb_fire_index_n_prompts(cp) == 6 && wb_fire_index_n_prompts(x) == 5 &&
                 wb_prompt_visible(cp, &s, 5) && !wb_prompt_visible(x, &s, 5) && wb_fire_index_fires(cp, 2, 1, 2),
             "fire: a copy updates on its own, the original unchanged, and only the new prompt is read");
    wb_fire_index_free(cp);
    wb_fire_index_free(x);
    ms_trace_close(ro);
    ms_trace_close(db);
}


/* A 40-token prompt over 3 layers: at layer l token pos's top-1 expert is
 * (pos + l) % 8, so a hit names the cell it is on. */
static int add_long_prompt(MsTraceDb *db, int64_t run, MsError *err)
{
    MsTraceWriter *w = ms_trace_writer_new(db, run, err);
    if (!w) return -1;
    int rc = ms_trace_writer_begin(w, 0, "x", 1, NULL, err);
    for (int pos = 0; pos < 40 && rc >= 0; pos++) {
        rc = ms_trace_writer_token(w, pos, 3, "a", 1, false, NAN, NAN, err);
        for (int l = 0; l < 3 && rc >= 0; l++) {
            int32_t ex[2] = { (pos + l) % 8, (pos + l + 1) % 8 };
            rc = ms_trace_writer_route(w, pos, l, 2, ex, NULL, err);
        }
    }
    if (rc >= 0) rc = ms_trace_writer_commit(w, NULL, err);
    ms_trace_writer_free(w);
    return rc;
}

/* The real heat map view's frame: the data point wb-zoom puts under a
 * pixel is the cell the view's own hit test finds there, before and after
 * zooming about that pixel and dragging. */
static bool frame_agrees(const MsViewClass *v, const void *model, const MsViewState *s, const MsViewFrame *f,
                         double W, double H, double px, double py)
{
    double x, y;
    MsViewHit h;
    if (!wb_zoom_data_at(s, f, px, py, &x, &y) || !v->hit(model, s, W, H, px, py, &h)) return false;
    return h.kind == MS_HIT_CELL && h.col == (int64_t)floor(x) && h.row == (int64_t)floor(y) &&
           h.expert == (int)((h.col + h.row) % 8);
}

static void test_zoom_heatmap(void)
{
    const MsViewClass *v = ms_view_find("heatmap");
    MT_CHECK(v && v->frame, "zoom: the heat map view has a frame");
    if (!v || !v->frame) return;
    MsError err = { 0 };
    MsTraceDb *db = ms_trace_open(tpath("zoom.db"), MS_TRACE_CREATE, &err);
    int64_t run = db ? make_trace(db, &err) : -1;
    int rc = run > 0 ? add_long_prompt(db, run, &err) : -1;
    MsViewParams p;
    ms_view_params_init(&p);
    void *model = NULL;
    if (rc >= 0) rc = v->prepare(db, &p, &model, &err);
    MT_CHECK(rc >= 0 && model, "zoom: heat map prepared (%s)", err.msg);
    if (rc < 0 || !model) {
        ms_trace_close(db);
        return;
    }
    const double W = 900, H = 420;
    MsViewState s;
    ms_view_state_init(&s);
    MsViewFrame f;
    bool has = v->frame(model, &s, W, H, &f);
    MT_CHECK(has && f.x_lo == 0 && f.x_hi == 40 && f.y_lo == 0 && f.y_hi == 3 &&
                 f.plot.w > 100 && f.plot.h > 50 && f.plot.x > 0 && f.plot.x + f.plot.w < W,
             "zoom: heat map frame is 40 tokens x 3 layers in a %gx%g plot", f.plot.w, f.plot.h);
    double px = f.plot.x + 0.37 * f.plot.w, py = f.plot.y + 0.62 * f.plot.h;
    MT_CHECK(frame_agrees(v, model, &s, &f, W, H, px, py), "zoom: whole figure: data point = hit cell");
    double ax, ay, bx, by;
    wb_zoom_data_at(&s, &f, px, py, &ax, &ay);
    MT_CHECK(wb_zoom_at(&s, &f, px, py, 0.25, WB_AXIS_X | WB_AXIS_Y) && wb_zoom_active(&s),
             "zoom: the heat map zooms in");
    v->frame(model, &s, W, H, &f);
    wb_zoom_data_at(&s, &f, px, py, &bx, &by);
    /* zoomed in, the token strip may appear above the grid and shift it
     * down a little: x stays exactly, y within a tenth of a row */
    MT_CHECK(near(ax, bx) && fabs(ay - by) < 0.1 && frame_agrees(v, model, &s, &f, W, H, px, py) &&
                 frame_agrees(v, model, &s, &f, W, H, f.plot.x + 3, f.plot.y + 3),
             "zoom: zoomed: the point under the pointer stays (%g,%g -> %g,%g) and matches the hit cell", ax, ay,
             bx, by);
    MT_CHECK(wb_zoom_pan(&s, &f, -80, 0), "zoom: the heat map pans");
    v->frame(model, &s, W, H, &f);
    MT_CHECK(frame_agrees(v, model, &s, &f, W, H, px, py), "zoom: panned: data point = hit cell");
    v->free_model(model);
    ms_trace_close(db);
}

/* -------------------------------------------------------------- settings */

static void test_settings(void)
{
    MsError err = { 0 };
    char *p = wb_settings_path("/home/u/.config");
    MT_CHECK(p && !strcmp(p, "/home/u/.config/moescope/workbench.ini"), "settings: path %s", p ? p : "(null)");
    free(p);
    MT_CHECK(!wb_settings_path(""), "settings: no config dir, no path");
    WbSettings *s = wb_settings_new();
    const char *file = tpath("cfg/sub/workbench.ini");
    MT_CHECK(wb_settings_load(s, file, &err) == 0 && !wb_settings_get(s, "window", "width"),
             "settings: a missing file is empty");
    wb_settings_set_int(s, "window", "width", 1400);
    wb_settings_set_bool(s, "panels", "sidebar", false);
    wb_settings_set(s, "panels", "view", "heatmap");
    wb_settings_set(s, "files", "odd", "a\\b\nc\td = [x]");
    MT_CHECK(wb_settings_set(s, "bad=group", "k", "v") == MS_EINVAL && wb_settings_set(s, "g", "k\n", "v") == MS_EINVAL,
             "settings: bad group / key names refused");
    for (int i = 0; i < 12; i++) {
        char b[64];
        snprintf(b, sizeof b, "/models/m%d.gguf", i);
        wb_recent_add(s, "model", b);
    }
    wb_recent_add(s, "model", "/models/m5.gguf");
    const char *r[WB_RECENT_MAX];
    int n = wb_recent_list(s, "model", r, WB_RECENT_MAX);
    MT_CHECK(n == 10 && !strcmp(r[0], "/models/m5.gguf") && !strcmp(r[1], "/models/m11.gguf") &&
                 !strcmp(r[9], "/models/m2.gguf"),
             "recent: newest first, deduplicated, at most 10 (%d: %s, %s ... %s)", n, n ? r[0] : "", n > 1 ? r[1] : "",
             n > 9 ? r[9] : "");
    wb_recent_remove(s, "model", "/models/m11.gguf");
    n = wb_recent_list(s, "model", r, WB_RECENT_MAX);
    MT_CHECK(n == 9 && !strcmp(r[1], "/models/m10.gguf"), "recent: remove");
    MT_CHECK(wb_settings_save(s, file, &err) == 0, "settings: save creates the directory (%s)", err.msg);
    WbSettings *s2 = wb_settings_new();
    MT_CHECK(wb_settings_load(s2, file, &err) == 0, "settings: load");
    const char *odd = wb_settings_get(s2, "files", "odd");
    MT_CHECK(wb_settings_get_int(s2, "window", "width", 0) == 1400 && !wb_settings_get_bool(s2, "panels", "sidebar", true) &&
                 !strcmp(wb_settings_get(s2, "panels", "view"), "heatmap") && odd && !strcmp(odd, "a\\b\nc\td = [x]"),
             "settings: values round-trip, escapes included");
    n = wb_recent_list(s2, "model", r, WB_RECENT_MAX);
    MT_CHECK(n == 9 && !strcmp(r[0], "/models/m5.gguf"), "recent: round-trips");
    MT_CHECK(wb_settings_get_int(s2, "window", "nope", 7) == 7 && wb_settings_get_bool(s2, "panels", "view", true),
             "settings: defaults for absent or unparsable values");
    write_file(tpath("bad.ini"), "[window]\nwidth=800\ngarbage line\n[x\nheight=600\n", 46);
    MT_CHECK(wb_settings_load(s2, tpath("bad.ini"), &err) == MS_EFORMAT && strstr(err.msg, "bad.ini:3:") &&
                 wb_settings_get_int(s2, "window", "width", 0) == 800 && wb_settings_get_int(s2, "window", "height", 0) == 600,
             "settings: a malformed line is reported by number, the rest is read: %s", err.msg);
    wb_settings_free(s);
    wb_settings_free(s2);
}

/* ----------------------------------------------------------------- files */

static void test_files(void)
{
    MsError err = { 0 };
    write_file(tpath("m.gguf"), "GGUF\3\0\0\0", 8);
    write_file(tpath("p.jsonl"), "{\"text\": \"héllo\"}\n", 19);
    write_file(tpath("bin"), "\x01\x02\0\xff", 4);
    write_file(tpath("empty"), "", 0);
    MsTraceDb *db = ms_trace_open(tpath("k.db"), MS_TRACE_CREATE, &err);
    ms_trace_close(db);
    MT_CHECK(wb_file_kind(tpath("m.gguf"), &err) == WB_FILE_MODEL, "files: GGUF by its magic");
    MT_CHECK(wb_file_kind(tpath("k.db"), &err) == WB_FILE_DB, "files: a trace database by SQLite's header");
    MT_CHECK(wb_file_kind(tpath("p.jsonl"), &err) == WB_FILE_TEXT, "files: UTF-8 text");
    write_file(tpath("notes.GGUF"), "just text\n", 10);
    MT_CHECK(wb_file_kind(tpath("notes.GGUF"), &err) == WB_FILE_MODEL,
             "files: a text file named .gguf goes to the model loader (which says it is not GGUF), not to prompts");
    MT_CHECK(wb_file_kind(tpath("bin"), &err) == WB_FILE_UNKNOWN && strstr(err.msg, "not a GGUF model"),
             "files: binary data is unknown, with a message: %s", err.msg);
    write_file(tpath("set.iv"), "# a plan\n\nsilence 1:3\n", 22);
    MT_CHECK(wb_text_is_intervention_set(tpath("set.iv")) && !wb_text_is_intervention_set(tpath("p.jsonl")),
             "files: an intervention set is told from a prompt set by its first clause");
    write_file(tpath("prose.txt"), "silence is golden\n", 18);
    MT_CHECK(!wb_text_is_intervention_set(tpath("prose.txt")), "files: prose starting with an operator word is prompts");
    MT_CHECK(wb_file_kind(tpath("empty"), &err) == WB_FILE_UNKNOWN && strstr(err.msg, "empty"), "files: empty file");
    MT_CHECK(wb_file_kind(tpath("nope"), &err) == MS_EIO && strstr(err.msg, "nope"), "files: missing: %s", err.msg);
    MT_CHECK(wb_file_kind(tmp, &err) == MS_EIO && strstr(err.msg, "directory"), "files: a directory: %s", err.msg);
    /* a PostgreSQL URI is a trace database wherever a file is (nothing is connected to here) */
    MT_CHECK(wb_file_kind("postgresql://ms@127.0.0.1:1/tr", &err) == WB_FILE_DB &&
                 wb_file_kind("postgres://h/db", &err) == WB_FILE_DB && wb_db_is_uri("postgresql://h/db") &&
                 !wb_db_is_uri(tpath("k.db")) && !wb_db_is_uri("postgresql:/x"),
             "files: a PostgreSQL URI is a trace database");
    MT_CHECK(wb_db_uri_check("postgresql://ms@db.lab:5432/traces?sslmode=require", &err) == 0,
             "files: a URI with host, port, database and parameters is accepted");
    MT_CHECK(wb_db_uri_check("", &err) == MS_EINVAL && strstr(err.msg, "no database URI"), "files: empty URI: %s", err.msg);
    MT_CHECK(wb_db_uri_check("mysql://h/db", &err) == MS_EINVAL && strstr(err.msg, "not a PostgreSQL URI") &&
                 !strchr(err.msg, '\n'), "files: another scheme: %s", err.msg);
    MT_CHECK(wb_db_uri_check("postgresql://h/d b", &err) == MS_EINVAL && strstr(err.msg, "white space"),
             "files: white space inside: %s", err.msg);
    MT_CHECK(wb_db_uri_has_password("postgresql://ms:s3cret@h/db") && wb_db_uri_has_password("postgresql://h/db?password=x") &&
                 !wb_db_uri_has_password("postgresql://ms@h:5432/db") && !wb_db_uri_has_password("postgresql://h:5432/db") &&
                 !wb_db_uri_has_password(tpath("k.db")),
             "files: a URI with a password is told (it is not remembered in the settings)");

    WbViewExport v;
    MT_CHECK(wb_view_export_parse("1600x1000:/tmp/a b.pdf", &v, &err) == 0 && v.width == 1600 && v.height == 1000 &&
                 v.scale == 1 && !strcmp(v.path, "/tmp/a b.pdf"),
             "export view: size and path");
    MT_CHECK(wb_view_export_parse("800x600@2:fig.png", &v, &err) == 0 && v.scale == 2 && !strcmp(v.path, "fig.png"),
             "export view: size, scale and path");
    MT_CHECK(wb_view_export_parse("/x/fig.svg", &v, &err) == 0 && v.width == 0 && !strcmp(v.path, "/x/fig.svg"),
             "export view: just a path (the widget's size)");
    MT_CHECK(wb_view_export_parse("10x10:fig.png", &v, &err) < 0 && strstr(err.msg, "size"),
             "export view: a tiny size is refused: %s", err.msg);
    MT_CHECK(wb_view_export_parse("fig.bmp", &v, &err) < 0, "export view: unknown format refused: %s", err.msg);
    MT_CHECK(wb_view_export_parse("", &v, &err) < 0, "export view: empty refused");
    WbTraceExport t;
    MT_CHECK(wb_trace_export_parse("postgresql:/tmp/t.txt", &t, &err) == 0 && t.format == MS_EXPORT_PGSQL &&
                 !strcmp(t.path, "/tmp/t.txt"),
             "export trace: explicit format");
    MT_CHECK(wb_trace_export_parse("/tmp/t.sql", &t, &err) == 0 && t.format == MS_EXPORT_SQL, "export trace: .sql");
    MT_CHECK(wb_trace_export_parse("/tmp/t.pgsql", &t, &err) == 0 && t.format == MS_EXPORT_PGSQL, "export trace: .pgsql");
    MT_CHECK(wb_trace_export_parse("/tmp/csvdir", &t, &err) == 0 && t.format == MS_EXPORT_CSV, "export trace: a directory");
    MT_CHECK(wb_trace_export_parse("/tmp/t.doc", &t, &err) < 0 && wb_trace_export_parse("csv:", &t, &err) < 0,
             "export trace: unknown extension and empty path refused");
}

/* ------------------------------------------------------------------ text */

static void test_text(void)
{
    char b[512];
    wb_format_duration(4.4, b, sizeof b);
    MT_CHECK(!strcmp(b, "4 s"), "text: duration %s", b);
    wb_format_duration(125, b, sizeof b);
    MT_CHECK(!strcmp(b, "2 min 05 s"), "text: duration %s", b);
    wb_format_duration(3780, b, sizeof b);
    MT_CHECK(!strcmp(b, "1 h 03 min"), "text: duration %s", b);
    wb_format_duration(-1, b, sizeof b);
    MT_CHECK(!strcmp(b, "?"), "text: unknown duration");
    MsProgress p = { .stage = "trace", .done = 12, .total = 286, .tokens = 1234, .tokens_per_s = 340.2, .eta_s = 12 };
    wb_progress_text("Tracing", "prompts", &p, b, sizeof b);
    MT_CHECK(!strcmp(b, "Tracing: 12 / 286 prompts · 1,234 tokens · 340 tokens/s · about 12 s left"), "text: '%s'", b);
    MT_CHECK(near(wb_progress_fraction(&p), 12.0 / 286), "text: fraction");
    p.eta_s = -1;
    p.total = 0;
    p.tokens = 0;
    p.tokens_per_s = 0;
    wb_progress_text("Tracing", "prompts", &p, b, sizeof b);
    MT_CHECK(!strcmp(b, "Tracing: 12 prompts"), "text: unknowns left out: '%s'", b);

    const char txt[] = "Hello\tworld\nsecond line \x01 and \xff more text that goes on and on";
    wb_prompt_row_text(3, txt, sizeof txt - 1, "{\"language\":\"en\",\"domain\":\"prose\",\"pair_id\":\"p1\",\"set\":\"a\"}",
                       12, 32, b, sizeof b);
    MT_CHECK(!strcmp(b, "#3 · en · prose · set=a · 12 tokens — Hello␉world␤second line \\x01 and \\xff …"),
             "text: prompt row '%s'", b);
    wb_prompt_row_text(24, "x", 1, "{\"language\":\"code\",\"domain\":\"code\",\"class\":\"code\"}", 5, 30, b, sizeof b);
    MT_CHECK(!strcmp(b, "#24 · code · 5 tokens — x"), "text: a repeated label value is shown once: '%s'", b);
    wb_prompt_row_text(0, "short", 5, NULL, -1, 30, b, sizeof b);
    MT_CHECK(!strcmp(b, "#0 · not traced — short"), "text: untraced row '%s'", b);

    MsError err = { 0 };
    char *j = NULL;
    MT_CHECK(wb_labels_from_spec(" language = de , domain=prose;x=1 ", &j, &err) == 0 && j &&
                 !strcmp(j, "{\"domain\":\"prose\",\"language\":\"de\",\"x\":\"1\"}"),
             "text: labels spec -> %s", j ? j : "(null)");
    free(j);
    MT_CHECK(wb_labels_from_spec("language", &j, &err) == MS_EFORMAT && strstr(err.msg, "'language'"),
             "text: a label without = is refused: %s", err.msg);
    MT_CHECK(wb_labels_from_spec("  ", &j, &err) == 0 && !j, "text: empty labels spec");
    MsPrompt *pr = NULL;
    size_t n = 0;
    const char typed[] = "first prompt\n\nsecond\\tprompt\n";
    MT_CHECK(wb_prompts_typed(typed, sizeof typed - 1, "language=en", &pr, &n, &err) == 0 && n == 2 &&
                 !strcmp(pr[1].text, "second\tprompt") && pr[0].labels_json && strstr(pr[0].labels_json, "\"en\""),
             "text: typed prompts with labels");
    ms_prompts_free(pr, n);
    const char typed2[] = "{\"text\": \"a\", \"labels\": {\"language\": \"fr\"}}\n{\"text\": \"b\"}\n";
    MT_CHECK(wb_prompts_typed(typed2, sizeof typed2 - 1, "language=en", &pr, &n, &err) == 0 && n == 2 &&
                 strstr(pr[0].labels_json, "fr") && strstr(pr[1].labels_json, "en"),
             "text: typed JSONL keeps its own labels, the others get the spec's");
    ms_prompts_free(pr, n);
    const char typed3[] = "{\"text\": \"a\"\n";
    MT_CHECK(wb_prompts_typed(typed3, sizeof typed3 - 1, NULL, &pr, &n, &err) < 0 && strstr(err.msg, "typed prompts:1"),
             "text: a malformed typed line names its line: %s", err.msg);
    MT_CHECK(wb_prompts_typed("\n\n", 2, NULL, &pr, &n, &err) < 0 && strstr(err.msg, "no prompt"),
             "text: nothing typed: %s", err.msg);

    int marked = 0;
    char *m0 = wb_diff_markup("the cat sat <here>", "the dog sat <here>", 0, &marked);
    MT_CHECK(m0 && strstr(m0, "strikethrough") && strstr(m0, ">cat </span>") && strstr(m0, "&lt;here&gt;") && marked == 1,
             "text: baseline side marks the lost word, escapes markup: %s", m0 ? m0 : "(null)");
    char *m1 = wb_diff_markup("the cat sat <here>", "the dog sat <here>", 1, &marked);
    MT_CHECK(m1 && strstr(m1, ">dog </span>") && !strstr(m1, "cat") && marked == 1, "text: intervened side marks the new word");
    /* the comparison view's key: blue only the baseline's, red only the intervened model's */
    MT_CHECK(m0 && m1 && strstr(m0, "#bdd4f2") && strstr(m1, "#fac7bd"),
             "text: the marks' tints are the comparison view's (blue baseline, red intervened)");
    free(m0);
    free(m1);
    m0 = wb_diff_markup("same", "same", 0, &marked);
    MT_CHECK(m0 && !strcmp(m0, "same") && marked == 0, "text: identical texts mark nothing");
    free(m0);
    /* a whole added sentence is one marked piece but five words */
    m1 = wb_diff_markup("It is a library.", "It is a library. This package contains the library.", 1, &marked);
    MT_CHECK(m1 && marked == 5, "text: an added sentence counts its 5 words, not 1 piece (%d)", marked);
    free(m1);
}

/* ----------------------------------------------------------------- views */

static void test_views(void)
{
    MT_CHECK(wb_view_options("heatmap") & WB_OPT_PROMPT && !(wb_view_options("load") & WB_OPT_PROMPT) &&
                 (wb_view_options("coactivation") & WB_OPT_ORDER),
             "views: known views get their options");
    unsigned all = wb_view_options("something-new");
    MT_CHECK((all & WB_OPT_PROMPT) && (all & WB_OPT_LAYER) && (all & WB_OPT_COLOR), "views: an unknown view gets them all");
    WbViewOpts o;
    wb_view_opts_init(&o);
    o.run = 4;
    o.prompt = 7;
    o.layer = 2;
    o.order = 1;
    snprintf(o.classes, sizeof o.classes, "label:language");
    MsViewParams p;
    wb_view_params(&o, WB_OPT_PROMPT | WB_OPT_ORDER, &p);
    MT_CHECK(p.run == 4 && p.prompt == 7 && p.layer == -1 && !strcmp(p.order, "load") && !p.classes && p.run_missing,
             "views: params from the options the view uses, the rest at defaults");
    MT_CHECK(!strcmp(wb_view_module("flow"), "affinity") && !wb_view_module("heatmap"), "views: flow draws affinity");
    for (const MsViewClass *const *v = ms_view_all(); *v; v++) {
        const char *m = wb_view_module((*v)->name);
        if (m) MT_CHECK(wb_module_view(m) != NULL, "views: module %s has a registered view", m);
    }
}

/* ---------------------------------------------------------------- tables */

static void fake_row(const void *src, int64_t i, MsAnCell *out)
{
    out[0] = (MsAnCell){ .type = MS_AN_INT, .i = 10 - i };
    out[1] = i == 1 ? (MsAnCell){ .type = MS_AN_REAL, .r = NAN } : (MsAnCell){ .type = MS_AN_REAL, .r = i * 0.123456 };
    out[2] = (MsAnCell){ .type = MS_AN_TEXT, .s = i % 2 ? "b" : "a" };
}

static void test_tables(void)
{
    static const char *const cols[] = { "layer", "share", "name" };
    MsAnTable src = { .name = "an_fake", .n_cols = 3, .cols = cols, .n_rows = 5, .row = fake_row };
    WbTable *t = NULL;
    MsError err = { 0 };
    MT_CHECK(wb_table_from_result(&src, 4, &t, &err) == 0 && t->n_rows == 4 && t->total_rows == 5 && t->n_cols == 3,
             "table: a capped copy of a result table");
    char b[64];
    wb_table_cell_text(t, 0, 0, b, sizeof b);
    MT_CHECK(!strcmp(b, "10"), "table: int text %s", b);
    wb_table_cell_text(t, 2, 1, b, sizeof b);
    MT_CHECK(!strcmp(b, "0.2469"), "table: real text %s", b);
    wb_table_cell_text(t, 1, 1, b, sizeof b);
    MT_CHECK(!strcmp(b, "—"), "table: NaN shows as NULL");
    MT_CHECK(t->types[0] == MS_AN_INT && t->types[1] == MS_AN_REAL && t->types[2] == MS_AN_TEXT, "table: column types");
    MT_CHECK(wb_table_compare(t, 0, 0, 1) > 0 && wb_table_compare(t, 1, 1, 0) < 0 && wb_table_compare(t, 1, 2, 3) < 0 &&
                 wb_table_compare(t, 2, 0, 1) < 0 && wb_table_compare(t, 2, 0, 2) == 0,
             "table: sort order (numbers by value, NULL first, text by bytes)");
    wb_table_free(t);

    /* a stored table and a stored plan */
    MsTraceDb *db = ms_trace_open(tpath("tab.db"), MS_TRACE_CREATE, &err);
    int64_t run = db ? make_trace(db, &err) : -1;
    MsColumn pc[] = { { "run_id", MS_COL_INT }, { "analysis", MS_COL_TEXT }, { "interventions", MS_COL_TEXT } };
    MsTraceResult *r = run > 0 ? ms_trace_result_new(db, run, "npmi", NULL, "an_npmi_plan", pc, 3, &err) : NULL;
    if (r) {
        ms_trace_result_int(r, 0, run);
        ms_trace_result_text(r, 1, "npmi");
        ms_trace_result_text(r, 2, "silence 1:2; silence 2:4");
        ms_trace_result_row(r, &err);
        ms_trace_result_commit(r, &err);
        ms_trace_result_free(r);
    }
    char *plan = NULL;
    MT_CHECK(wb_stored_plan(db, run, "npmi", &plan, &err) == 0 && plan && !strcmp(plan, "silence 1:2; silence 2:4"),
             "table: the stored nPMI plan reads back: %s", plan ? plan : err.msg);
    free(plan);
    MT_CHECK(wb_stored_plan(db, run, "riskdiff", &plan, &err) == MS_ENOTFOUND &&
                 strstr(err.msg, "moescope analyze riskdiff"),
             "table: a missing plan says which command writes it: %s", err.msg);
    WbStored *st = NULL;
    int n = 0;
    MT_CHECK(wb_stored_list(db, run, &st, &n, &err) == 0 && n == 1 && !strcmp(st[0].table, "an_npmi_plan") &&
                 !strcmp(st[0].name, "npmi"),
             "table: the stored analyses of the run");
    free(st);
    MT_CHECK(wb_table_from_db(db, "an_npmi_plan", run, 0, &t, &err) == 0 && t->n_cols == 2 &&
                 !strcmp(t->cols[0], "analysis") && t->n_rows == 1,
             "table: a stored table without its run_id column");
    wb_table_free(t);
    MT_CHECK(wb_table_from_db(db, "an_nothing", run, 0, &t, &err) < 0, "table: an unknown table is an error: %s",
             err.msg);
    ms_trace_close(db);
}

/* ----------------------------------------------------------------- apply */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* The side panel's facts, and where the weights live, both ways. */
static void test_model_rows(void)
{
    const char *src = getenv("MS_SOURCE_DIR");
    char path[1024];
    snprintf(path, sizeof path, "%s/data/models/default.gguf", src ? src : ".");
    const MsWeights how[2] = { MS_WEIGHTS_MAPPED, MS_WEIGHTS_COPIED };
    const char *want[2] = { "mapped from the file", "private copy" };
    for (int i = 0; i < 2; i++) {
        MsError err = { 0 };
        MsModel *m = ms_model_load_ex(path, how[i], &err);
        if (!m) {
            MT_CHECK(0, "model rows: the default model loads: %s", err.msg);
            return;
        }
        WbInfoRow rows[20];
        const int n = wb_model_info_rows(m, path, rows, 20);
        const char *mem = NULL, *file = NULL, *experts = NULL;
        for (int r = 0; r < n; r++) {
            if (!strcmp(rows[r].name, "Memory")) mem = rows[r].value;
            if (!strcmp(rows[r].name, "File")) file = rows[r].value;
            if (!strcmp(rows[r].name, "Experts")) experts = rows[r].value;
        }
        MT_CHECK(mem && !strcmp(mem, want[i]), "model rows: Memory says '%s' (got '%s')", want[i], mem ? mem : "none");
        MT_CHECK(file && !strcmp(file, "default.gguf") && experts && !strcmp(experts, "16 routed, top-2"),
                 "model rows: File '%s', Experts '%s'", file ? file : "none", experts ? experts : "none");
        ms_model_free(m);
    }
}

static void test_apply(void)
{
    const char *src = getenv("MS_SOURCE_DIR");
    char path[1024];
    snprintf(path, sizeof path, "%s/data/models/default.gguf", src ? src : ".");
    MsError err = { 0 };
    MsModel *m = ms_model_load(path, &err);
    if (!m) {
        MT_CHECK(0, "apply: the default model loads: %s", err.msg);
        return;
    }
    WbGrid *g = wb_grid_new_for_model(m);
    WbApplyRequest rq;
    MT_CHECK(wb_apply_request(&rq, g, -1, NULL, 0, 16, &err) == MS_EINVAL && strstr(err.msg, "choose a prompt"),
             "apply: without a prompt: %s", err.msg);
    MT_CHECK(wb_apply_request(&rq, g, 0, "", 0, 16, &err) == MS_EINVAL, "apply: an empty prompt is refused");
    const char *text = "The library is closed on Sundays and public holidays.";

    /* the empty set: both sides identical (KL exactly 0, no routing change) */
    MT_CHECK(wb_apply_request(&rq, g, 3, text, strlen(text), 9999, &err) == 0 && rq.opts.n_gen == WB_APPLY_MAX_GEN &&
                 rq.prompt == 3 && ms_intervention_is_empty(rq.iv),
             "apply: the request carries the prompt, an empty set, n_gen clamped");
    rq.opts.n_gen = 12;
    MsPromptCompare c;
    int rc = wb_apply_run(&rq, m, NULL, &c, &err);
    WbApplyFig *f = NULL;
    if (rc == 0) rc = wb_apply_fig_build(&c, m, &f, &err);
    MT_CHECK(rc == 0 && f->kl_max == 0 && f->changed == 0 && f->first_divergence == -1 && f->words_changed == 0 &&
                 !strcmp(c.text_baseline, c.text_run),
             "apply: an empty set changes nothing (KL max %g, %d changed)", f ? f->kl_max : -1, f ? f->changed : -1);
    wb_apply_fig_free(f);
    ms_prompt_compare_clear(&c);
    wb_apply_request_clear(&rq);

    /* silence the baseline's top-1 expert of the first MoE layer at the last prompt token */
    MsCompareOptions o;
    ms_compare_options_init(&o);
    o.n_gen = 1;
    ms_compare_prompt(&o, m, NULL, text, strlen(text), &c, &err);
    MsRouteLayer rl;
    int L = c.layers[0].layer, e = -1;
    if (ms_route_capture_layer(c.routing_baseline, L, &rl)) e = rl.experts[(size_t)(c.n_prompt - 1) * rl.k];
    ms_prompt_compare_clear(&c);
    MT_CHECK(e >= 0 && wb_grid_cycle(g, L, e, &err) == WB_CELL_SILENCE, "apply: silence layer %d expert %d", L, e);
    wb_apply_request(&rq, g, 0, text, strlen(text), 16, &err);
    wb_grid_clear(g);
    MT_CHECK(rq.iv && !ms_intervention_is_empty(rq.iv), "apply: the request keeps its own copy of the set");
    double t0 = now_s();
    rc = wb_apply_run(&rq, m, NULL, &c, &err);
    double dt = now_s() - t0;
    mt_diag("Apply (prompt of %zu bytes, 16 tokens generated) took %.3f s", strlen(text), dt);
    if (rc == 0) rc = wb_apply_fig_build(&c, m, &f, &err);
    MT_CHECK(rc == 0 && f->kl_max > 0 && f->changed > 0 && f->n_pos == c.n_tokens && f->n_prompt == c.n_prompt,
             "apply: silencing changes the distributions (KL max %g) and the routing (%d pairs)", f ? f->kl_max : -1,
             f ? f->changed : -1);
    bool never = true;
    for (int p = 0; f && p < f->n_pos; p++) {
        int32_t *eb = f->exp_run + ((size_t)0 * f->n_pos + p) * f->k;
        for (int j = 0; j < f->k; j++) never &= eb[j] != e;
    }
    MT_CHECK(f && never, "apply: the silenced expert is never used at its layer in the intervened run");
    if (f) {
        char s[512];
        wb_apply_summary(f, s, sizeof s);
        MT_CHECK(strstr(s, "KL mean") && strstr(s, "routing changed at"), "apply: summary '%s'", s);
        /* the KL strip: the tallest bar is drawn where the hit test finds it */
        int pmax = 0;
        for (int p = 0; p < f->n_pos; p++)
            if (f->kl[p] > f->kl[pmax]) pmax = p;
        double W = 900, H = 160;
        cairo_surface_t *sf = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, (int)W, (int)H);
        cairo_t *cr = cairo_create(sf);
        rc = wb_apply_draw_kl(cr, W, H, f, -1, &err);
        cairo_destroy(cr);
        int found = -1;
        char tip[512] = "";
        for (double x = 0; x < W && found < 0; x += 1) {
            int pos;
            if (wb_apply_hit_kl(f, W, H, x, H / 2, &pos, tip, sizeof tip) && pos == pmax) found = (int)x;
        }
        MT_CHECK(rc == 0 && found >= 0 && strstr(tip, "KL") && strstr(tip, "token"),
                 "apply: KL strip hit test finds the tallest bar (token %d): %s", pmax, tip);
        cairo_surface_destroy(sf);
        sf = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, (int)W, 220);
        cr = cairo_create(sf);
        rc = wb_apply_draw_shift(cr, W, 220, f, -1, -1, &err);
        cairo_destroy(cr);
        /* a cell that changed: find it through the hit test and check its colour is not the scale's 0 */
        bool hit_changed = false;
        for (double y = 0; y < 220 && !hit_changed; y += 2)
            for (double x = 0; x < W && !hit_changed; x += 2) {
                int hl, hp;
                char tx[512];
                if (wb_apply_hit_shift(f, W, 220, x, y, &hl, &hp, tx, sizeof tx) &&
                    f->shift[(size_t)hl * f->n_pos + hp] > 0.5f) {
                    int r, gg, b;
                    pixel(sf, (int)x, (int)y, &r, &gg, &b);
                    MsRgb lo = ms_plot_cmap_at(MS_CMAP_VIRIDIS, 0);
                    hit_changed = fabs(r - lo.r * 255) + fabs(gg - lo.g * 255) + fabs(b - lo.b * 255) > 60 &&
                                  strstr(tx, "baseline experts");
                }
            }
        MT_CHECK(rc == 0 && hit_changed, "apply: routing shift draws a changed cell where its hit test says");
        cairo_surface_destroy(sf);
    }
    wb_apply_fig_free(f);
    ms_prompt_compare_clear(&c);

    /* cancelled before it starts: MS_ECANCELLED, nothing returned */
    MsCancel cancel;
    ms_cancel_init(&cancel);
    ms_cancel_request(&cancel);
    rc = wb_apply_run(&rq, m, &cancel, &c, &err);
    MT_CHECK(rc == MS_ECANCELLED, "apply: a cancelled run says so (%d)", rc);
    ms_prompt_compare_clear(&c);
    wb_apply_request_clear(&rq);
    wb_grid_free(g);
    ms_model_free(m);
}

int main(void)
{
    tmp = mt_tmpdir();
    test_grid();
    test_zoom();
    test_select();
    test_zoom_heatmap();
    test_settings();
    test_files();
    test_text();
    test_views();
    test_tables();
    test_model_rows();
    test_apply();
    ms_plot_release_caches();
    return mt_done();
}
