/* test-views-a.c — the tokens, heatmap and load views on traces with known
 * routing: PNG, SVG and PDF files at two sizes (the PDF read back by
 * poppler's pdftoppm, the SVG's text layer by an XML parser), pixel probes
 * of cells and token boxes against the colours the routing implies, hit
 * tests at the centres of drawn cells, zoom, pixel-column aggregation,
 * linked selection, token pieces with an emoji, CJK, a control character
 * and invalid bytes, the stored and the computed load, and errors.
 *
 * Traces: one written through the trace writer's observer (block 0 dense,
 * blocks 1-3 MoE, E = 8, top-2, with router probabilities and residual
 * stats; top-1 of token t at block l is (t + l) mod 5, the second expert 7,
 * except token 3 of prompt 0 at block 2, which picks 6: so expert 5 is dead
 * everywhere, 6 dead at blocks 1 and 3 and cold at block 2); one of 3000
 * tokens for aggregation; and a real one: `moescope synth --plant-route
 * digit:1:3` traced over prompts with digits, where block 1 routes exactly
 * the digit tokens to expert 3. */
#include "mtest.h"
#include "plotcheck.h"
#include "ms-view.h"
#include "run.h"
#include "view-tokgrid.h"

#include <math.h>
#include <stdint.h>

#define NL 4
#define NE 8
#define NK 2

static const char *const P0[] = { "Hello", " wor", "ld", " \xF0\x9F\x98\x80", "\xE4\xB8\xAD\xE6\x96\x87", "\x07",
                                  "\xE4\xB8", "\n", " 42", " end", "!", " gen" };
#define N0 12
#define N1 60

/* ------------------------------------------------------------- helpers */

/* A tooltip on one TAP line: newlines as " | " (four buffers in turn, so
 * one message may hold several). */
static const char *flat(const char *s)
{
    static char buf[4][4400];
    static int k;
    char *b = buf[k++ & 3];
    size_t o = 0;
    for (; *s && o + 4 < sizeof buf[0]; s++) {
        if (*s == '\n') {
            memcpy(b + o, " | ", 3);
            o += 3;
        } else {
            b[o++] = *s;
        }
    }
    b[o] = 0;
    return b;
}

static int lum(uint32_t p) { return (int)(((p >> 16) & 255) * 2126 + ((p >> 8) & 255) * 7152 + (p & 255) * 722) / 10000; }

static bool run_ok(const char *cmd) { return system(cmd) == 0; }

typedef struct {
    const MsViewClass *v;
    const void *m;
    const MsViewState *s;
} R;

static int rdraw(void *u, cairo_t *cr, double w, double h, MsError *e)
{
    const R *r = u;
    return r->v->draw(cr, w, h, r->m, r->s, e);
}

static cairo_surface_t *render(const MsViewClass *v, const void *m, const MsViewState *s, int W, int H)
{
    MsError err = { 0 };
    R r = { v, m, s };
    cairo_surface_t *img = ms_plot_render_image(W, H, 1, rdraw, &r, &err);
    if (!img) mt_diag("render %s: %s", v->name, err.msg);
    return img;
}

static void *prepare(MsTraceDb *db, const char *view, const MsViewParams *p, MsError *err)
{
    void *m = NULL;
    if (ms_view_find(view)->prepare(db, p, &m, err) < 0) return NULL;
    return m;
}

/* ------------------------------------------------------------- traces */

static int top1(int t, int l) { return (t + l) % 5; }

/* Prompt 0 (N0 tokens, the last generated) and prompt 1 (N1 tokens). */
static int write_known(const char *path)
{
    MsError err = { 0 };
    MsTraceDb *db = ms_trace_open(path, MS_TRACE_CREATE, &err);
    if (!db) return mt_diag("%s", err.msg), -1;
    MsTraceModel m = { 0 };
    snprintf(m.file_name, sizeof m.file_name, "known.gguf");
    snprintf(m.arch, sizeof m.arch, "olmoe");
    snprintf(m.score_func, sizeof m.score_func, "softmax");
    m.n_layer = NL;
    m.n_expert = NE;
    m.n_expert_used = NK;
    m.w_scale = 1;
    m.n_moe_layers = NL - 1;
    for (int l = 1; l < NL; l++) m.is_moe[l] = 1;
    int64_t mid = ms_trace_model_add(db, &m, &err);
    MsTraceRunDesc d = { .model_id = mid, .kind = "trace", .has_probs = true, .has_stats = true };
    int64_t run = mid > 0 ? ms_trace_run_new(db, &d, &err) : -1;
    MsTraceWriter *w = run > 0 ? ms_trace_writer_new(db, run, &err) : NULL;
    if (!w) return mt_diag("%s", err.msg), ms_trace_close(db), -1;
    MsObserver o = ms_trace_writer_observer(w);
    int rc = 0;
    for (int p = 0; p < 2 && !rc; p++) {
        int n = p == 0 ? N0 : N1;
        char text[2048] = "", piece[32];
        size_t tl = 0;
        for (int t = 0; t < n; t++) {
            const char *pc = p == 0 ? P0[t] : (snprintf(piece, sizeof piece, " t%d", t), piece);
            memcpy(text + tl, pc, strlen(pc));
            tl += strlen(pc);
        }
        rc |= ms_trace_writer_begin(w, p, text, tl, NULL, &err);
        for (int t = 0; t < n; t++) {
            const char *pc = p == 0 ? P0[t] : (snprintf(piece, sizeof piece, " t%d", t), piece);
            rc |= ms_trace_writer_token(w, t, 100 + t, pc, strlen(pc), p == 0 && t == n - 1, NAN, NAN, &err);
        }
        int32_t pos[N1], ex[N1 * NK], am[N1];
        float wt[N1 * NK], pr[N1 * NE], lg[N1 * NE], mx[N1];
        for (int l = 0; l < NL; l++) {
            for (int t = 0; t < n; t++) {
                pos[t] = t;
                mx[t] = (float)(10 * t + l);
                am[t] = 0;
            }
            MsHiddenEvent he = { l, n, pos, mx, am };
            o.on_hidden(o.user, &he);
            if (l == 0) continue;
            for (int t = 0; t < n; t++) {
                ex[t * NK] = top1(t, l);
                ex[t * NK + 1] = p == 0 && t == 3 && l == 2 ? 6 : 7;
                wt[t * NK] = 0.7f;
                wt[t * NK + 1] = 0.3f;
                for (int e = 0; e < NE; e++) pr[t * NE + e] = 0.025f;
                pr[t * NE + ex[t * NK]] = 0.6f;
                pr[t * NE + ex[t * NK + 1]] = 0.25f;
                for (int e = 0; e < NE; e++) lg[t * NE + e] = logf(pr[t * NE + e]);
            }
            MsRoutingEvent ev = { l, n, pos, NE, NK, ex, wt, pr, lg, NULL, NULL, NULL, NULL };
            o.on_routing(o.user, &ev);
        }
        rc |= ms_trace_writer_commit(w, NULL, &err);
    }
    if (rc) mt_diag("%s", err.msg);
    ms_trace_writer_free(w);
    ms_trace_close(db);
    return rc ? -1 : 0;
}

/* One prompt of T tokens: top-1 expert 1 everywhere, except 6 for tokens
 * [a, b) at block 0; no weights (an import-like trace). */
static int write_long(const char *path, int T, int a, int b)
{
    MsError err = { 0 };
    MsTraceDb *db = ms_trace_open(path, MS_TRACE_CREATE, &err);
    if (!db) return -1;
    MsTraceModel m = { 0 };
    snprintf(m.arch, sizeof m.arch, "imported");
    m.n_layer = 2;
    m.n_expert = NE;
    m.n_expert_used = NK;
    m.w_scale = 1;
    m.n_moe_layers = 2;
    m.is_moe[0] = m.is_moe[1] = 1;
    int64_t mid = ms_trace_model_add(db, &m, &err);
    MsTraceRunDesc d = { .model_id = mid, .kind = "import" };
    int64_t run = mid > 0 ? ms_trace_run_new(db, &d, &err) : -1;
    MsTraceWriter *w = run > 0 ? ms_trace_writer_new(db, run, &err) : NULL;
    int rc = w ? 0 : -1;
    rc = rc ? rc : ms_trace_writer_begin(w, 0, "", 0, NULL, &err);
    for (int t = 0; t < T && !rc; t++) rc = ms_trace_writer_token(w, t, -1, "", 0, false, NAN, NAN, &err);
    for (int t = 0; t < T && !rc; t++)
        for (int l = 0; l < 2 && !rc; l++) {
            int32_t e[2] = { l == 0 && t >= a && t < b ? 6 : 1, 2 };
            rc = ms_trace_writer_route(w, t, l, 2, e, NULL, &err);
        }
    if (!rc) rc = ms_trace_writer_commit(w, NULL, &err);
    if (rc) mt_diag("%s", err.msg);
    ms_trace_writer_free(w);
    ms_trace_close(db);
    return rc;
}

/* -------------------------------------------------------------- files */

static char svg_script[600];

static void write_svg_script(const char *tmp)
{
    snprintf(svg_script, sizeof svg_script, "%s/svgtext.py", tmp);
    FILE *f = fopen(svg_script, "w");
    if (!f) return;
    fputs("import sys, xml.etree.ElementTree as ET\n"
          "root = ET.parse(sys.argv[1]).getroot()\n"
          "ns = '{http://www.w3.org/2000/svg}'\n"
          "assert root.tag == ns + 'svg', root.tag\n"
          "out = open(sys.argv[2], 'w', encoding='utf-8')\n"
          "for e in root.iter(ns + 'text'):\n"
          "    out.write((e.text or '') + '\\n')\n",
          f);
    fclose(f);
}

/* Every view as PNG, SVG and PDF at its default size and at 640x420; the
 * SVG's words must include `words` (NULL-terminated). */
static void check_files(MsTraceDb *db, const char *view, const MsViewParams *p, const char *const *words)
{
    const char *tmp = mt_tmpdir();
    MsError err = { 0 };
    const MsViewClass *v = ms_view_find(view);
    void *m = prepare(db, view, p, &err);
    MT_CHECK(m != NULL, "%s: prepared (%s)", view, m ? "ok" : err.msg);
    if (!m) return;
    double dw = 0, dh = 0;
    v->default_size(m, &dw, &dh);
    MT_CHECK(dw >= 400 && dh >= 200 && dw <= 4000 && dh <= 4000, "%s: default size %gx%g", view, dw, dh);
    double sizes[2][2] = { { dw, dh }, { 640, 420 } };
    MsViewState s;
    ms_view_state_init(&s);
    for (int k = 0; k < 2; k++) {
        int W = (int)sizes[k][0], H = (int)sizes[k][1];
        char path[700], out[700], cmd[2200];
        size_t len = 0;
        snprintf(path, sizeof path, "%s/%s-%d.png", tmp, view, k);
        int rc = ms_view_render_file(v, m, &s, path, W, H, 1, &err);
        cairo_surface_t *img = rc == 0 ? cairo_image_surface_create_from_png(path) : NULL;
        bool ok = img && cairo_surface_status(img) == CAIRO_STATUS_SUCCESS && cairo_image_surface_get_width(img) == W &&
                  cairo_image_surface_get_height(img) == H;
        long dark = 0;
        for (int y = 0; ok && y < H; y += 2)
            for (int x = 0; x < W; x += 2) dark += lum(pc_pixel(img, x, y)) < 200;
        MT_CHECK(ok && dark > (long)W * H / 4 / 50, "%s: PNG %dx%d written and read back, with ink (%s)", view, W, H,
                 rc ? err.msg : "ok");
        if (img) cairo_surface_destroy(img);

        snprintf(path, sizeof path, "%s/%s-%d.svg", tmp, view, k);
        rc = ms_view_render_file(v, m, &s, path, W, H, 1, &err);
        char *data = rc == 0 ? pc_read_file(path, &len) : NULL;
        MT_CHECK(data && !strncmp(data, "<?xml", 5), "%s: SVG %dx%d written (%s)", view, W, H, rc ? err.msg : "ok");
        free(data);
        snprintf(out, sizeof out, "%s/%s-%d.txt", tmp, view, k);
        snprintf(cmd, sizeof cmd, "python3 '%s' '%s' '%s'", svg_script, path, out);
        char *text = run_ok(cmd) ? pc_read_file(out, NULL) : NULL;
        MT_CHECK(text != NULL, "%s: SVG %dx%d parses as XML with an <svg> root", view, W, H);
        for (int i = 0; text && words[i]; i++)
            MT_CHECK(strstr(text, words[i]) != NULL, "%s: SVG %dx%d holds \"%s\"", view, W, H, words[i]);
        free(text);

        snprintf(path, sizeof path, "%s/%s-%d.pdf", tmp, view, k);
        rc = ms_view_render_file(v, m, &s, path, W, H, 1, &err);
        data = rc == 0 ? pc_read_file(path, &len) : NULL;
        MT_CHECK(data && !strncmp(data, "%PDF-", 5), "%s: PDF %dx%d written (%s)", view, W, H, rc ? err.msg : "ok");
        free(data);
        snprintf(out, sizeof out, "%s/%s-%d-pdf", tmp, view, k);
        snprintf(cmd, sizeof cmd, "pdftoppm -png -r 72 -singlefile '%s' '%s' 2>&1", path, out);
        bool conv = run_ok(cmd);
        strcat(out, ".png");
        img = conv ? cairo_image_surface_create_from_png(out) : NULL;
        ok = img && cairo_surface_status(img) == CAIRO_STATUS_SUCCESS &&
             abs(cairo_image_surface_get_width(img) - W) <= 1 && abs(cairo_image_surface_get_height(img) - H) <= 1;
        dark = 0;
        for (int y = 0; ok && y < cairo_image_surface_get_height(img); y += 2)
            for (int x = 0; x < cairo_image_surface_get_width(img); x += 2) dark += lum(pc_pixel(img, x, y)) < 200;
        MT_CHECK(ok && dark > (long)W * H / 4 / 50, "%s: pdftoppm reads the PDF %dx%d (page size, with ink)", view, W,
                 H);
        if (img) cairo_surface_destroy(img);
    }
    v->free_model(m);
}

/* ----------------------------------------------------------- heatmap */

static void test_heatmap(MsTraceDb *db)
{
    const MsViewClass *v = ms_view_find("heatmap");
    MsViewParams p;
    ms_view_params_init(&p);
    MsError err = { 0 };
    void *m = prepare(db, "heatmap", &p, &err);
    MT_CHECK(m != NULL, "heatmap: prepared (%s)", m ? "ok" : err.msg);
    if (!m) return;
    const int W = 1400, H = 600;
    MsViewState s;
    ms_view_state_init(&s);
    cairo_surface_t *img = render(v, m, &s, W, H);
    if (!img) return;

    /* rows are the MoE blocks 1..3: every cell of the prompt */
    int bad = 0, hits = 0;
    for (int r = 0; r < 3; r++)
        for (int t = 0; t < N0; t++) {
            MsPlotRect c;
            if (!ms_view_heatmap_cell_rect(m, &s, W, H, r, t, &c)) {
                bad++;
                continue;
            }
            double cx = c.x + c.w / 2, cy = c.y + c.h / 2;
            uint32_t want = pc_rgb24(ms_plot_category_color(top1(t, r + 1)));
            if (pc_chan_diff(pc_pixel(img, (int)cx, (int)cy), want) > 2) bad++;
            MsViewHit h;
            if (v->hit(m, &s, W, H, cx, cy, &h) && h.kind == MS_HIT_CELL && h.layer == r + 1 && h.pos == t &&
                h.row == r && h.expert == top1(t, r + 1) && h.value == top1(t, r + 1))
                hits++;
        }
    MT_CHECK(bad == 0, "heatmap: the centre of every cell has its top-1 expert's palette colour (%d wrong)", bad);
    MT_CHECK(hits == 3 * N0, "heatmap: hit at every cell's centre returns that cell: layer, token, expert (%d of %d)",
             hits, 3 * N0);

    /* the tooltip: token, piece escaped, every layer's experts and weights */
    MsPlotRect c;
    MsViewHit h;
    ms_view_heatmap_cell_rect(m, &s, W, H, 1, 3, &c);
    v->hit(m, &s, W, H, c.x + c.w / 2, c.y + c.h / 2, &h);
    MT_CHECK(strstr(h.text, "layer 2, token 3: top-1 expert E0") && strstr(h.text, "\xE2\x90\xA3\xF0\x9F\x98\x80") &&
             strstr(h.text, "layer 1: E4 0.7, E7 0.3") && strstr(h.text, "layer 2: E0 0.7, E6 0.3") &&
             strstr(h.text, "layer 3: E1 0.7, E7 0.3"),
             "heatmap: the tooltip names the cell, the piece and every layer's experts and weights (%s)", flat(h.text));
    MT_CHECK(v->hit(m, &s, W, H, 2, 2, &h) == false && h.kind == MS_HIT_NONE, "heatmap: nothing at the corner");

    /* the token strip: pieces escaped as msplot shows tokens */
    MsPlotRect sr;
    bool strip = ms_view_heatmap_cell_rect(m, &s, W, H, -1, 4, &sr);
    MT_CHECK(strip && v->hit(m, &s, W, H, sr.x + sr.w / 2, sr.y + sr.h / 2, &h) && h.kind == MS_HIT_TOKEN &&
             h.pos == 4 && strstr(h.text, "\xE4\xB8\xAD\xE6\x96\x87"),
             "heatmap: the strip above the grid shows pieces; a hit there is the token (%s)", flat(h.text));
    ms_view_heatmap_cell_rect(m, &s, W, H, -1, 6, &sr);
    v->hit(m, &s, W, H, sr.x + sr.w / 2, sr.y + sr.h / 2, &h);
    MT_CHECK(h.pos == 6 && strstr(h.text, "\\xE4\\xB8"), "heatmap: invalid bytes are shown escaped (%s)", flat(h.text));
    ms_view_heatmap_cell_rect(m, &s, W, H, -1, 5, &sr);
    v->hit(m, &s, W, H, sr.x + sr.w / 2, sr.y + sr.h / 2, &h);
    MT_CHECK(h.pos == 5 && strstr(h.text, "\\x07"), "heatmap: a control character is shown escaped (%s)", flat(h.text));

    /* linked selection: expert 6 at block 2 is chosen by token 3 only */
    MsViewState sel = s;
    sel.sel_layer = 2;
    sel.sel_expert = 6;
    cairo_surface_t *simg = render(v, m, &sel, W, H);
    if (simg) {
        MsPlotRect a, b, o;
        ms_view_heatmap_cell_rect(m, &s, W, H, 1, 3, &a);
        ms_view_heatmap_cell_rect(m, &s, W, H, 1, 4, &b);
        ms_view_heatmap_cell_rect(m, &s, W, H, 2, 4, &o);
        uint32_t pa = pc_pixel(simg, (int)(a.x + a.w / 2), (int)(a.y + a.h / 2));
        uint32_t pb = pc_pixel(simg, (int)(b.x + b.w / 2), (int)(b.y + b.h / 2));
        uint32_t orig_b = pc_pixel(img, (int)(b.x + b.w / 2), (int)(b.y + b.h / 2));
        uint32_t po = pc_pixel(simg, (int)(o.x + o.w / 2), (int)(o.y + o.h / 2));
        int ay = (int)(a.y + a.h / 2), edge = lum(pc_pixel(simg, (int)a.x, ay)) < lum(pc_pixel(simg, (int)a.x + 1, ay))
                                                 ? lum(pc_pixel(simg, (int)a.x, ay))
                                                 : lum(pc_pixel(simg, (int)a.x + 1, ay));
        MT_CHECK(pc_chan_diff(pa, pc_rgb24(ms_plot_category_color(0))) <= 2 && edge < 60,
                 "heatmap: selected expert 6 at layer 2: the token routed to it keeps its colour and is outlined");
        MT_CHECK(lum(pb) > lum(orig_b) + 40, "heatmap: the other cells of that layer are dimmed (%06x -> %06x)", orig_b, pb);
        MT_CHECK(pc_chan_diff(po, pc_rgb24(ms_plot_category_color(top1(4, 3)))) <= 2, "heatmap: other layers are untouched");
        cairo_surface_destroy(simg);
    }

    /* zoom: tokens [4, 8) of layers [1, 3) */
    MsViewState z = s;
    z.x0 = 4;
    z.x1 = 8;
    z.y0 = 1;
    z.y1 = 3;
    cairo_surface_t *zimg = render(v, m, &z, W, H);
    MsPlotRect zc, full;
    ms_view_heatmap_cell_rect(m, &s, W, H, 1, 5, &full);
    bool vis = ms_view_heatmap_cell_rect(m, &z, W, H, 1, 5, &zc);
    MT_CHECK(vis && zc.w > 3 * full.w && zc.h > 1.4 * full.h, "heatmap: zoomed in, a cell is larger (%.0fx%.0f vs %.0fx%.0f)",
             zc.w, zc.h, full.w, full.h);
    if (zimg && vis) {
        MT_CHECK(pc_chan_diff(pc_pixel(zimg, (int)(zc.x + zc.w / 2), (int)(zc.y + zc.h / 2)),
                           pc_rgb24(ms_plot_category_color(top1(5, 2)))) <= 2 &&
                     v->hit(m, &z, W, H, zc.x + zc.w / 2, zc.y + zc.h / 2, &h) && h.pos == 5 && h.layer == 2,
                 "heatmap: zoomed, the cell is drawn and hit where the geometry says");
        MT_CHECK(!ms_view_heatmap_cell_rect(m, &z, W, H, 1, 2, &zc) || zc.x + zc.w <= zc.x + 0.001 ||
                     !v->hit(m, &z, W, H, zc.x + zc.w / 2, zc.y + zc.h / 2, &h) || h.kind != MS_HIT_CELL,
                 "heatmap: a token left of the window is neither drawn nor hit");
    }
    if (zimg) cairo_surface_destroy(zimg);

    /* colour modes: the weight (0.7 everywhere = the top of the scale) and
     * residual max |h| (10 t + l, largest at the last token of block 3) */
    MsViewState cw = s;
    cw.color_by = MS_VIEW_COLOR_WEIGHT;
    cairo_surface_t *wimg = render(v, m, &cw, W, H);
    ms_view_heatmap_cell_rect(m, &cw, W, H, 0, 0, &c);
    MT_CHECK(wimg && pc_chan_diff(pc_pixel(wimg, (int)(c.x + c.w / 2), (int)(c.y + c.h / 2)),
                               pc_rgb24(ms_plot_cmap_at(MS_CMAP_VIRIDIS, 1))) <= 2,
             "heatmap: colour by top-1 weight: viridis at the top of the scale");
    if (wimg) cairo_surface_destroy(wimg);
    cw.color_by = MS_VIEW_COLOR_HIDDEN;
    wimg = render(v, m, &cw, W, H);
    ms_view_heatmap_cell_rect(m, &cw, W, H, 2, N0 - 1, &c);
    MsPlotRect c2;
    ms_view_heatmap_cell_rect(m, &cw, W, H, 0, 0, &c2);
    MT_CHECK(wimg && pc_chan_diff(pc_pixel(wimg, (int)(c.x + c.w / 2), (int)(c.y + c.h / 2)),
                               pc_rgb24(ms_plot_cmap_at(MS_CMAP_VIRIDIS, 1))) <= 2 &&
                 pc_chan_diff(pc_pixel(wimg, (int)(c2.x + c2.w / 2), (int)(c2.y + c2.h / 2)),
                           pc_rgb24(ms_plot_cmap_at(MS_CMAP_VIRIDIS, 1.0 / (10 * (N0 - 1) + 3)))) <= 3,
             "heatmap: colour by residual max |h|: largest at the last token of block 3, smallest at token 0 of block 1");
    if (wimg) cairo_surface_destroy(wimg);
    cw.color_by = MS_VIEW_COLOR_ENTROPY;
    wimg = render(v, m, &cw, W, H);
    ms_view_heatmap_cell_rect(m, &cw, W, H, 0, 0, &c);
    MT_CHECK(wimg && pc_chan_diff(pc_pixel(wimg, (int)(c.x + c.w / 2), (int)(c.y + c.h / 2)), pc_rgb24(ms_plot_missing_color())) <= 2,
             "heatmap: entropy asked of a model prepared without it: missing grey (and a note), not a wrong colour");
    if (wimg) cairo_surface_destroy(wimg);
    cairo_surface_destroy(img);
    v->free_model(m);

    /* entropy prepared: from the router probabilities */
    p.color_by = MS_VIEW_COLOR_ENTROPY;
    m = prepare(db, "heatmap", &p, &err);
    MT_CHECK(m != NULL, "heatmap: prepared for entropy (%s)", m ? "ok" : err.msg);
    if (m) {
        img = render(v, m, &s, W, H);
        ms_view_heatmap_cell_rect(m, &s, W, H, 1, 2, &c);
        double H8 = -(0.6 * log(0.6) + 0.25 * log(0.25) + 6 * 0.025 * log(0.025));
        v->hit(m, &s, W, H, c.x + c.w / 2, c.y + c.h / 2, &h);
        MT_CHECK(img && fabs(h.value - H8) < 1e-3 && strstr(h.text, "routing entropy") &&
                     pc_chan_diff(pc_pixel(img, (int)(c.x + c.w / 2), (int)(c.y + c.h / 2)),
                               pc_rgb24(ms_plot_cmap_at(MS_CMAP_VIRIDIS, H8 / log(NE)))) <= 3,
                 "heatmap: routing entropy %.4f nats from the probabilities, coloured on [0, ln E] (hit %.4f)", H8, h.value);
        if (img) cairo_surface_destroy(img);
        v->free_model(m);
    }

    /* errors */
    ms_view_params_init(&p);
    p.prompt = 5;
    MT_CHECK(!prepare(db, "heatmap", &p, &err) && err.code == MS_ENOTFOUND && strstr(err.msg, "no prompt 5") &&
                 strstr(err.msg, "it has 2") && !strchr(err.msg, '\n'),
             "heatmap: a missing prompt is a one-line error (%s)", err.msg);
    ms_view_params_init(&p);
    p.layer_lo = p.layer_hi = 0;
    MT_CHECK(!prepare(db, "heatmap", &p, &err) && err.code == MS_EINVAL && strstr(err.msg, "no MoE block in 0-0"),
             "heatmap: a dense block range is an error (%s)", err.msg);
    ms_view_params_init(&p);
    p.run = 9;
    MT_CHECK(!prepare(db, "heatmap", &p, &err) && err.code == MS_ENOTFOUND && strstr(err.msg, "no run 9"),
             "heatmap: a missing run is an error (%s)", err.msg);
    ms_view_params_init(&p);
    p.layer_lo = 2;
    p.layer_hi = 3;
    m = prepare(db, "heatmap", &p, &err);
    MT_CHECK(m && ms_view_heatmap_cell_rect(m, &s, W, H, 1, 0, &c) && !ms_view_heatmap_cell_rect(m, &s, W, H, 2, 0, &c) &&
                 v->hit(m, &s, W, H, c.x + 1, c.y + 1, &h) == false,
             "heatmap: --layers 2-3 shows two rows");
    if (m) {
        ms_view_heatmap_cell_rect(m, &s, W, H, 0, 0, &c);
        v->hit(m, &s, W, H, c.x + c.w / 2, c.y + c.h / 2, &h);
        MT_CHECK(h.layer == 2, "heatmap: its first row is block 2 (%d)", h.layer);
        v->free_model(m);
    }
}

/* Many more tokens than pixels: pixel columns aggregate, none skipped. */
static void test_aggregation(const char *dir)
{
    char path[600];
    snprintf(path, sizeof path, "%s/long.db", dir);
    const int T = 3000, A = 1500, B = 1800;
    MT_CHECK(write_long(path, T, A, B) == 0, "a 3000-token trace without weights");
    MsError err = { 0 };
    MsTraceDb *db = ms_trace_open(path, MS_TRACE_READ, &err);
    if (!db) return;
    const MsViewClass *v = ms_view_find("heatmap");
    MsViewParams p;
    ms_view_params_init(&p);
    void *m = prepare(db, "heatmap", &p, &err);
    MsViewState s;
    ms_view_state_init(&s);
    const int W = 640, H = 420;
    cairo_surface_t *img = m ? render(v, m, &s, W, H) : NULL;
    if (img) {
        MsPlotRect a, b, z;
        ms_view_heatmap_cell_rect(m, &s, W, H, 0, A, &a);
        ms_view_heatmap_cell_rect(m, &s, W, H, 0, B, &b);
        ms_view_heatmap_cell_rect(m, &s, W, H, 0, 100, &z);
        MT_CHECK(a.w < 0.5, "aggregation: %d tokens in a %dpx figure, a token is %.2f px wide", T, W, a.w);
        int y = (int)(a.y + a.h / 2), in6 = 0, n = 0;
        for (int x = (int)ceil(a.x) + 1; x < (int)b.x - 1; x++, n++)
            in6 += pc_chan_diff(pc_pixel(img, x, y), pc_rgb24(ms_plot_category_color(6))) <= 2;
        MT_CHECK(n > 20 && in6 == n, "aggregation: the pixel columns of tokens %d-%d show expert 6 (%d of %d)", A, B - 1,
                 in6, n);
        MT_CHECK(pc_chan_diff(pc_pixel(img, (int)z.x, y), pc_rgb24(ms_plot_category_color(1))) <= 2,
                 "aggregation: the others show expert 1");
        MsViewHit h;
        bool hit = v->hit(m, &s, W, H, (a.x + b.x) / 2, y, &h);
        MT_CHECK(hit && h.kind == MS_HIT_CELL && h.pos >= A && h.pos < B && h.expert == 6 &&
                     strstr(h.text, "this pixel column shows tokens"),
                 "aggregation: the hit names the token and the tokens its pixel column stands for (%s)", flat(h.text));
        MT_CHECK(!strstr(h.text, "E6 0") && strstr(h.text, "layer 0: E6, E2"),
                 "aggregation: a trace without weights lists the experts alone");
        /* linked selection zoomed out: expert 6 at block 0 marks exactly
         * the pixel columns of tokens A..B-1; the rest is dimmed */
        MsViewState sel = s;
        sel.sel_layer = 0;
        sel.sel_expert = 6;
        cairo_surface_t *simg = render(v, m, &sel, W, H);
        if (simg) {
            int kept = 0, dim = 0, nin = 0, nout = 0;
            for (int x = (int)ceil(a.x) + 2; x < (int)b.x - 2; x++, nin++)
                kept += pc_chan_diff(pc_pixel(simg, x, y), pc_rgb24(ms_plot_category_color(6))) <= 2;
            MsPlotRect l;
            ms_view_heatmap_cell_rect(m, &s, W, H, 0, 0, &l);
            for (int x = (int)ceil(l.x) + 2; x < (int)a.x - 2; x++, nout++)
                dim += lum(pc_pixel(simg, x, y)) > lum(pc_pixel(img, x, y)) + 40;
            MT_CHECK(nin > 20 && kept == nin && nout > 100 && dim == nout,
                     "aggregation: selecting E6 at block 0 keeps the columns of tokens %d-%d (%d of %d) and dims the "
                     "others (%d of %d)", A, B - 1, kept, nin, dim, nout);
            cairo_surface_destroy(simg);
        }
        cairo_surface_destroy(img);
        /* colour by weight: the trace has none */
        p.color_by = MS_VIEW_COLOR_WEIGHT;
        MT_CHECK(!prepare(db, "heatmap", &p, &err) && strstr(err.msg, "no gate weights"),
                 "heatmap: colour by weight on a trace without weights is an error (%s)", err.msg);
        p.color_by = MS_VIEW_COLOR_HIDDEN;
        MT_CHECK(!prepare(db, "heatmap", &p, &err) && strstr(err.msg, "--stats"),
                 "heatmap: colour by hidden on a trace without stats names --stats (%s)", err.msg);
    }
    if (m) v->free_model(m);
    ms_trace_close(db);
}

/* ------------------------------------------------------------ tokens */

static void test_tokens(MsTraceDb *db)
{
    const MsViewClass *v = ms_view_find("tokens");
    MsViewParams p;
    ms_view_params_init(&p);
    p.layer = 2;
    MsError err = { 0 };
    void *m = prepare(db, "tokens", &p, &err);
    MT_CHECK(m != NULL, "tokens: prepared at layer 2 (%s)", m ? "ok" : err.msg);
    if (!m) return;
    const int W = 900, H = 300;
    MsViewState s;
    ms_view_state_init(&s);
    cairo_surface_t *img = render(v, m, &s, W, H);
    if (!img) return;
    int bad = 0, hits = 0;
    MsPlotRect box[N0];
    for (int t = 0; t < N0; t++) {
        if (!ms_view_tokens_box(m, &s, W, H, t, &box[t])) {
            bad++;
            continue;
        }
        /* inside the box, left of the text */
        uint32_t px = pc_pixel(img, (int)ceil(box[t].x) + 1, (int)(box[t].y + box[t].h / 2));
        if (pc_chan_diff(px, pc_rgb24(ms_plot_category_color(top1(t, 2)))) > 2) bad++;
        MsViewHit h;
        if (v->hit(m, &s, W, H, box[t].x + box[t].w / 2, box[t].y + box[t].h / 2, &h) && h.kind == MS_HIT_TOKEN &&
            h.pos == t && h.layer == 2 && h.expert == top1(t, 2))
            hits++;
    }
    MT_CHECK(bad == 0, "tokens: every piece's box has its top-1 expert's colour at layer 2 (%d wrong)", bad);
    MT_CHECK(hits == N0, "tokens: hit at every box's centre returns that token (%d of %d)", hits, N0);
    MT_CHECK(box[1].y == box[0].y && box[1].x > box[0].x && box[8].y > box[7].y && fabs(box[8].x - box[0].x) < 0.01,
             "tokens: pieces flow like text; the piece after a newline starts a line");
    MT_CHECK(box[3].w > box[1].w * 0.5 && box[4].w > box[2].w, "tokens: the emoji and CJK pieces take their width");
    /* text inside a box reads on its colour */
    long ink = 0;
    for (int y = (int)box[0].y; y < (int)(box[0].y + box[0].h); y++)
        for (int x = (int)box[0].x + 3; x < (int)(box[0].x + box[0].w - 2); x++)
            ink += pc_chan_diff(pc_pixel(img, x, y), pc_rgb24(ms_plot_category_color(top1(0, 2)))) > 60;
    MT_CHECK(ink > 20, "tokens: the piece is drawn inside its box (%ld text pixels)", ink);

    MsViewHit h;
    v->hit(m, &s, W, H, box[3].x + box[3].w / 2, box[3].y + box[3].h / 2, &h);
    MT_CHECK(strstr(h.text, "layer 2: top-1 expert E0") && strstr(h.text, "\xF0\x9F\x98\x80") &&
                 strstr(h.text, "layer 2: E0 0.7, E6 0.3"),
             "tokens: the tooltip holds the piece and every layer's experts (%s)", flat(h.text));

    /* linked selection: tokens routed to expert 6 at block 2 are underlined */
    MsViewState sel = s;
    sel.sel_layer = 2;
    sel.sel_expert = 6;
    cairo_surface_t *simg = render(v, m, &sel, W, H);
    if (simg) {
        int under = (int)(box[3].y + box[3].h + 2);
        MT_CHECK(lum(pc_pixel(simg, (int)(box[3].x + box[3].w / 2), under)) < 40 &&
                     lum(pc_pixel(simg, (int)(box[4].x + box[4].w / 2), under)) > 200 &&
                     lum(pc_pixel(img, (int)(box[3].x + box[3].w / 2), under)) > 200,
                 "tokens: the token routed to the selected expert is underlined, the others not");
        cairo_surface_destroy(simg);
    }
    cairo_surface_destroy(img);

    /* a short prompt in a tall figure: the frame ends below its last line
     * (and its key), not in a large empty box at the figure's foot */
    const int TH = 700;
    cairo_surface_t *tall = render(v, m, &s, W, TH);
    MsPlotRect lb;
    bool have = ms_view_tokens_box(m, &s, W, TH, N0 - 1, &lb);
    long dark = 0;
    for (int y = TH / 2; tall && y < TH; y++)
        for (int x = 0; x < W; x++) dark += lum(pc_pixel(tall, x, y)) < 128;
    MT_CHECK(tall && have && lb.y < 120 && dark == 0,
             "tokens: %d tokens at %dx%d: the frame ends under the text (last line at y %.0f; %ld dark pixels in the "
             "lower half)", N0, W, TH, lb.y, dark);
    if (tall) cairo_surface_destroy(tall);
    v->free_model(m);

    /* entropy at layer 2 from the probabilities */
    p.color_by = MS_VIEW_COLOR_ENTROPY;
    m = prepare(db, "tokens", &p, &err);
    if (m) {
        img = render(v, m, &s, W, H);
        MsPlotRect b;
        ms_view_tokens_box(m, &s, W, H, 2, &b);
        double H8 = -(0.6 * log(0.6) + 0.25 * log(0.25) + 6 * 0.025 * log(0.025));
        MT_CHECK(img && pc_chan_diff(pc_pixel(img, (int)ceil(b.x) + 1, (int)(b.y + b.h / 2)),
                                  pc_rgb24(ms_plot_cmap_at(MS_CMAP_VIRIDIS, H8 / log(NE)))) <= 3,
                 "tokens: colour by routing entropy (viridis on [0, ln E])");
        if (img) cairo_surface_destroy(img);
        v->free_model(m);
    }
    ms_view_params_init(&p);
    p.layer = 0;
    MT_CHECK(!prepare(db, "tokens", &p, &err) && strstr(err.msg, "block 0") && strstr(err.msg, "not a shown MoE layer"),
             "tokens: a dense block is an error (%s)", err.msg);
    ms_view_params_init(&p);
    p.color_by = MS_VIEW_COLOR_HIDDEN;
    MT_CHECK(!prepare(db, "tokens", &p, &err) && strstr(err.msg, "expert or entropy"),
             "tokens: colour by hidden is refused (%s)", err.msg);

    /* scrolling: a prompt longer than the figure */
    ms_view_params_init(&p);
    p.prompt = 1;
    m = prepare(db, "tokens", &p, &err);
    if (m) {
        MsPlotRect b0, b1;
        bool first = ms_view_tokens_box(m, &s, 420, 200, 0, &b0);
        bool last = ms_view_tokens_box(m, &s, 420, 200, N1 - 1, &b1);
        MsViewState sc = s;
        sc.y0 = 1000;   /* past the end: the last lines */
        sc.y1 = 1001;
        bool last2 = ms_view_tokens_box(m, &sc, 420, 200, N1 - 1, &b1);
        bool first2 = ms_view_tokens_box(m, &sc, 420, 200, 0, &b0);
        MT_CHECK(first && !last && last2 && !first2, "tokens: a long prompt scrolls by lines (y0/y1)");
        v->free_model(m);
    }
}

/* -------------------------------------------------------------- load */

/* A hit on the bars panel right of the heat map at height y. */
static bool bar_hit(const MsViewClass *v, const void *m, const MsViewState *s, int W, int H, double y, MsViewHit *h)
{
    MsPlotRect c;
    ms_view_load_cell_rect(m, s, W, H, 0, NE - 1, &c);
    for (double x = c.x + c.w + 1; x < W; x += 4)
        if (v->hit(m, s, W, H, x, y, h) && h->kind == MS_HIT_LAYER) return true;
    return false;
}

static void test_load(MsTraceDb *db, const char *dir)
{
    const MsViewClass *v = ms_view_find("load");
    MsViewParams p;
    ms_view_params_init(&p);
    MsError err = { 0 };
    p.run_missing = false;
    MT_CHECK(!prepare(db, "load", &p, &err) && err.code == MS_ENOTFOUND && strstr(err.msg, "moescope analyze load"),
             "load: --no-run without a stored analysis names the command (%s)", err.msg);
    p.run_missing = true;
    void *m = prepare(db, "load", &p, &err);
    MT_CHECK(m != NULL, "load: computed from the trace (%s)", m ? "ok" : err.msg);
    if (!m) return;
    const int W = 1400, H = 560;
    MsViewState s;
    ms_view_state_init(&s);
    cairo_surface_t *img = render(v, m, &s, W, H);
    if (!img) return;
    MsPlotRect c;
    MsViewHit h;
    /* row r = block r + 1; counts over 72 tokens, 144 selections a layer */
    struct { int row, e; int mark; double share; } cells[] = {
        { 0, 5, 2, 0 }, { 0, 6, 2, 0 }, { 2, 5, 2, 0 }, { 1, 6, 1, 100.0 / 144 }, { 2, 7, 0, 50 }, { 1, 7, 0, 71 * 100.0 / 144 },
    };
    double smax = 0;
    for (size_t i = 0; i < MS_ARRAY_LEN(cells); i++) smax = fmax(smax, cells[i].share);
    for (size_t i = 0; i < MS_ARRAY_LEN(cells); i++) {
        bool vis = ms_view_load_cell_rect(m, &s, W, H, cells[i].row, cells[i].e, &c);
        double cx = c.x + c.w / 2, cy = c.y + c.h / 2, sz = fmin(c.w, c.h);
        uint32_t centre = pc_pixel(img, (int)cx, (int)cy), ring = pc_pixel(img, (int)(cx + sz * 0.256), (int)cy);
        uint32_t fill = pc_rgb24(ms_plot_cmap_value(MS_CMAP_VIRIDIS, cells[i].share, 0, smax));
        const char *what = cells[i].mark == 2 ? "dead: a cross at its centre"
                           : cells[i].mark == 1 ? "cold: a ring, its centre the cell's colour"
                                                : "live: its share's colour, no mark";
        bool ok = vis;
        if (cells[i].mark == 2) ok = ok && lum(centre) > 200 && pc_chan_diff(centre, fill) > 100;
        else if (cells[i].mark == 1) ok = ok && pc_chan_diff(centre, fill) <= 3 && lum(ring) > 180;
        else ok = ok && pc_chan_diff(centre, fill) <= 3 && pc_chan_diff(ring, fill) <= 3;
        MT_CHECK(ok, "load: cell (block %d, E%d) %s (%06x, ring %06x, fill %06x)", cells[i].row + 1, cells[i].e, what,
                 centre, ring, fill);
        bool hit = v->hit(m, &s, W, H, cx, cy, &h);
        MT_CHECK(hit && h.kind == MS_HIT_CELL && h.layer == cells[i].row + 1 && h.expert == cells[i].e &&
                     fabs(h.value - cells[i].share) < 1e-4,
                 "load: hit at its centre returns the cell and its share %.3f %% (%s)", cells[i].share, flat(h.text));
    }
    ms_view_load_cell_rect(m, &s, W, H, 0, 5, &c);
    v->hit(m, &s, W, H, c.x + c.w / 2, c.y + c.h / 2, &h);
    MT_CHECK(strstr(h.text, "dead") && strstr(h.text, "0 selections"), "load: the tooltip says dead (%s)", flat(h.text));
    /* the bars panel: a hit there is the layer */
    ms_view_load_cell_rect(m, &s, W, H, 2, NE - 1, &c);
    bool hit = bar_hit(v, m, &s, W, H, c.y + c.h / 2, &h);
    MT_CHECK(hit && h.kind == MS_HIT_LAYER && h.layer == 3 && strstr(h.text, "Gini") && strstr(h.text, "computed from the trace"),
             "load: the bars beside the heat map hit as the layer (%s)", flat(h.text));
    /* the bars: normalised entropy and Gini of block 3 (counts 72,144/5 per top-1..., 72 for E7) */
    cairo_surface_destroy(img);

    /* linked selection: the cell is outlined */
    MsViewState sel = s;
    sel.sel_layer = 2;
    sel.sel_expert = 3;
    img = render(v, m, &sel, W, H);
    ms_view_load_cell_rect(m, &s, W, H, 1, 3, &c);
    MT_CHECK(img && lum(pc_pixel(img, (int)c.x + 1, (int)(c.y + c.h / 2))) < 40 &&
                 lum(pc_pixel(img, (int)(c.x + c.w / 2), (int)c.y + 1)) < 40,
             "load: the selected (layer, expert) cell is outlined");
    if (img) cairo_surface_destroy(img);

    /* the stored result: same numbers, read instead of computed */
    char copy[600], cmd[1400];
    snprintf(copy, sizeof copy, "%s/stored.db", dir);
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", ms_trace_path(db), copy);
    MsTraceDb *wdb = run_ok(cmd) ? ms_trace_open(copy, MS_TRACE_WRITE, &err) : NULL;
    MsAnOptions o;
    ms_an_options_default(&o);
    MsLoadResult *res = NULL;
    MT_CHECK(wdb && ms_analyze_load(wdb, &o, &res, &err) == 0, "load: moescope analyze load on a copy (%s)", err.msg);
    ms_load_result_free(res);
    if (wdb) {
        p.run_missing = false;
        void *m2 = prepare(wdb, "load", &p, &err);
        MT_CHECK(m2 != NULL, "load: with the stored analysis, --no-run works (%s)", m2 ? "ok" : err.msg);
        if (m2) {
            int same = 0, n = 0;
            for (int r = 0; r < 3; r++)
                for (int e = 0; e < NE; e++, n++) {
                    MsViewHit h1, h2;
                    ms_view_load_cell_rect(m, &s, W, H, r, e, &c);
                    v->hit(m, &s, W, H, c.x + c.w / 2, c.y + c.h / 2, &h1);
                    v->hit(m2, &s, W, H, c.x + c.w / 2, c.y + c.h / 2, &h2);
                    same += h1.value == h2.value || (isnan(h1.value) && isnan(h2.value));
                }
            ms_view_load_cell_rect(m2, &s, W, H, 2, NE - 1, &c);
            bar_hit(v, m2, &s, W, H, c.y + c.h / 2, &h);
            MT_CHECK(same == n && strstr(h.text, "stored result"),
                     "load: the stored tables give the computed shares cell for cell (%d of %d) and say so", same, n);
            v->free_model(m2);
        }
        ms_trace_close(wdb);
    }
    ms_view_params_init(&p);
    p.layer_lo = 2;
    p.layer_hi = 3;
    void *m3 = prepare(db, "load", &p, &err);
    MT_CHECK(m3 && ms_view_load_cell_rect(m3, &s, W, H, 1, 0, &c) && !ms_view_load_cell_rect(m3, &s, W, H, 2, 0, &c),
             "load: --layers 2-3 shows two rows");
    if (m3) v->free_model(m3);
    v->free_model(m);
}

/* -------------------------------------------------- planted routing */

static bool is_digit_piece(const char *b, size_t n)
{
    int d = 0;
    for (size_t i = 0; i < n; i++) {
        if (b[i] >= '0' && b[i] <= '9') d++;
        else if (!strchr(" \t\n\r\v\f", b[i])) return false;
    }
    return d > 0;
}

static void test_planted(const char *dir)
{
    const char *M = getenv("MOESCOPE");
    if (!M || access(M, X_OK) != 0) {
        mt_skip("planted routing: MOESCOPE (the moescope binary) not set");
        return;
    }
    char cmd[3000], prompts[600], model[600], dbp[600];
    snprintf(prompts, sizeof prompts, "%s/prompts.txt", dir);
    snprintf(model, sizeof model, "%s/route.gguf", dir);
    snprintf(dbp, sizeof dbp, "%s/route.db", dir);
    FILE *f = fopen(prompts, "w");
    if (!f) return;
    fputs("The year 2024 had 366 days and the price rose to 19.99 dollars.\n"
          "Call 555-0142 before 9:30 or write to 12 Main Street.\n",
          f);
    fclose(f);
    snprintf(cmd, sizeof cmd,
             "'%s' synth --arch olmoe --layers 4 --embd 64 --heads 4 --experts 8 --used 2 --ff 32 --vocab 512 "
             "--type F32 --plant-route digit:1:3 '%s' >/dev/null 2>&1 && '%s' trace '%s' --prompts '%s' --db '%s' "
             ">/dev/null 2>&1",
             M, model, M, model, prompts, dbp);
    bool ok = run_ok(cmd);
    MT_CHECK(ok, "planted: synth --plant-route digit:1:3 and trace");
    if (!ok) return;
    MsError err = { 0 };
    MsTraceDb *db = ms_trace_open(dbp, MS_TRACE_READ, &err);
    if (!db) return;
    const MsViewClass *v = ms_view_find("heatmap");
    MsViewParams p;
    ms_view_params_init(&p);
    void *m = prepare(db, "heatmap", &p, &err);
    MsTokGrid *g = NULL;
    ms_tokgrid_prepare(db, &p, 0, &g, &err);
    if (m && g) {
        const int W = 1400, H = 560;
        MsViewState s;
        ms_view_state_init(&s);
        cairo_surface_t *img = render(v, m, &s, W, H);
        int digits = 0, good = 0, hits = 0;
        for (int t = 0; img && t < g->n_tok; t++) {
            if (!is_digit_piece(g->pieces + g->piece_off[t], (size_t)(g->piece_off[t + 1] - g->piece_off[t]))) continue;
            digits++;
            MsPlotRect c;
            ms_view_heatmap_cell_rect(m, &s, W, H, g->layer_row[1], t, &c);
            double cx = c.x + c.w / 2, cy = c.y + c.h / 2;
            good += pc_chan_diff(pc_pixel(img, (int)cx, (int)cy), pc_rgb24(ms_plot_category_color(3))) <= 2;
            MsViewHit h;
            hits += v->hit(m, &s, W, H, cx, cy, &h) && h.kind == MS_HIT_CELL && h.pos == t && h.layer == 1 &&
                    h.expert == 3;
        }
        MT_CHECK(digits >= 5 && good == digits,
                 "planted: the cell of every digit token at block 1 has expert 3's colour (%d of %d)", good, digits);
        MT_CHECK(hits == digits, "planted: hit at those cells returns the token and expert 3 (%d of %d)", hits, digits);
        /* and no other token is routed to expert 3 there */
        int others = 0;
        for (int t = 0; t < g->n_tok; t++)
            if (!is_digit_piece(g->pieces + g->piece_off[t], (size_t)(g->piece_off[t + 1] - g->piece_off[t])) &&
                ms_tokgrid_selects(g, g->layer_row[1], t, 3))
                others++;
        MT_CHECK(others == 0, "planted: no other token selects expert 3 at block 1 (%d)", others);
        if (img) cairo_surface_destroy(img);

        /* the token strip at block 1: digit boxes in expert 3's colour */
        const MsViewClass *tv = ms_view_find("tokens");
        MsViewParams tp;
        ms_view_params_init(&tp);
        tp.layer = 1;
        void *tm = prepare(db, "tokens", &tp, &err);
        const int TW = 1000, TH = 400;
        cairo_surface_t *timg = tm ? render(tv, tm, &s, TW, TH) : NULL;
        int tdig = 0, tgood = 0, tother = 0;
        for (int t = 0; timg && t < g->n_tok; t++) {
            MsPlotRect b;
            if (!ms_view_tokens_box(tm, &s, TW, TH, t, &b)) continue;
            uint32_t px = pc_pixel(timg, (int)ceil(b.x) + 1, (int)(b.y + b.h / 2));
            bool three = pc_chan_diff(px, pc_rgb24(ms_plot_category_color(3))) <= 2;
            if (is_digit_piece(g->pieces + g->piece_off[t], (size_t)(g->piece_off[t + 1] - g->piece_off[t]))) {
                tdig++;
                tgood += three;
            } else {
                tother += three;
            }
        }
        MT_CHECK(tdig == digits && tgood == tdig && tother == 0,
                 "planted: tokens --layer 1 draws every digit token's box in expert 3's colour (%d of %d) and no "
                 "other (%d)", tgood, tdig, tother);
        if (timg) cairo_surface_destroy(timg);
        if (tm) tv->free_model(tm);
    }
    ms_tokgrid_free(g);
    if (m) v->free_model(m);
    ms_trace_close(db);
}

int main(void)
{
    const char *tmp = mt_tmpdir();
    char path[600];
    snprintf(path, sizeof path, "%s/known.db", tmp);
    bool have_pdftoppm = run_ok("command -v pdftoppm >/dev/null 2>&1");
    bool have_python = run_ok("command -v python3 >/dev/null 2>&1");
    MT_CHECK(have_pdftoppm, "pdftoppm is installed (poppler-utils, tools/install-deps.sh)");
    MT_CHECK(have_python, "python3 is installed (XML check of the SVG)");
    write_svg_script(tmp);
    MT_CHECK(ms_view_find("tokens") && ms_view_find("heatmap") && ms_view_find("load"),
             "the registry lists tokens, heatmap and load");
    MT_CHECK(write_known(path) == 0, "a trace with known routing through the writer's observer");
    MsError err = { 0 };
    MsTraceDb *db = ms_trace_open(path, MS_TRACE_READ, &err);
    MT_CHECK(db != NULL, "opened read-only (%s)", db ? "ok" : err.msg);
    if (db) {
        MsViewParams p;
        ms_view_params_init(&p);
        const char *hw[] = { "Token position", "Layer", "Top-1 expert", "E4", "\xE4\xB8\xAD\xE6\x96\x87", NULL };
        check_files(db, "heatmap", &p, hw);
        const char *tw[] = { "Line start", "Top-1 expert", "Hello", "\xF0\x9F\x98\x80", "\xE4\xB8\xAD\xE6\x96\x87",
                             "\\x07", "\\xE4\\xB8", NULL };
        p.layer = 2;
        check_files(db, "tokens", &p, tw);
        ms_view_params_init(&p);
        const char *lw[] = { "Expert", "Layer", "share of the layer", "Balance", "Gini", "dead: never chosen",
                             "Expert load by layer", NULL };
        check_files(db, "load", &p, lw);
        test_heatmap(db);
        test_tokens(db);
        test_load(db, tmp);
        ms_trace_close(db);
    }
    test_aggregation(tmp);
    test_planted(tmp);
    ms_plot_release_caches();
    return mt_done();
}
