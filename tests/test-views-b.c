/* test-views-b.c — the views coactivation, affinity, flow and consistency
 * (ui/views/view-*.c) on traces with known routing written here:
 *   "blocks": 3 MoE blocks (block 0 dense), E = 12, k = 2, every token picks
 *             two experts of one of three planted expert groups, and the same
 *             two, in the same order, at every MoE layer;
 *   "chain1": the same with k = 1 and any expert (affinity Q = identity);
 *   and a `moescope synth --plant-chain` model traced by `moescope trace`.
 * Checked: the clustering order (a permutation, planted groups contiguous,
 * deterministic); values equal to the analyses (ms_analyze_* with write =
 * false) both computed and read back from stored tables; pixel colours of
 * the cells / bands / curves the hit test names at a point; linked
 * selection; PNG, SVG (axis titles) and PDF (pdftoppm) at two sizes with no
 * text clipped or overlapping; errors as one line naming the problem. */
#include "mtest.h"
#include "plotcheck.h"

#include <math.h>
#include <sys/wait.h>
#include <time.h>

#include "ms-view.h"
#include "results.h"
#include "run.h"
#include "view-b.h"
#include "view-matrix.h"

enum { NL = 4, E = 12, NP = 6, T = 120 };
/* the planted expert groups (ids scrambled so that id order hides them) */
static const int groups[3][4] = { { 0, 5, 9, 2 }, { 1, 4, 7, 11 }, { 3, 6, 8, 10 } };

static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}
static int rng_int(uint64_t *s, int n) { return (int)(rng_next(s) % (uint64_t)n); }

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int make_trace(const char *path, int k, MsError *err)
{
    MsTraceDb *db = ms_trace_open(path, MS_TRACE_CREATE, err);
    if (!db) return -1;
    MsTraceModel m;
    memset(&m, 0, sizeof m);
    snprintf(m.file_name, sizeof m.file_name, "planted-%d.gguf", k);
    snprintf(m.arch, sizeof m.arch, "test");
    snprintf(m.score_func, sizeof m.score_func, "softmax");
    m.n_layer = NL;
    m.n_expert = E;
    m.n_expert_used = k;
    m.w_scale = 1;
    m.n_vocab = 64;
    for (int l = 1; l < NL; l++) m.is_moe[l] = 1;
    m.n_moe_layers = NL - 1;
    int64_t mid = ms_trace_model_add(db, &m, err);
    MsTraceRunDesc d = { .model_id = mid, .kind = "trace" };
    int64_t rid = mid > 0 ? ms_trace_run_new(db, &d, err) : -1;
    MsTraceWriter *w = rid > 0 ? ms_trace_writer_new(db, rid, err) : NULL;
    if (!w) {
        ms_trace_close(db);
        return -1;
    }
    uint64_t rs = 1234 + (uint64_t)k;
    int rc = 0;
    for (int p = 0; p < NP && rc >= 0; p++) {
        rc = ms_trace_writer_begin(w, p, "planted", 7, NULL, err);
        for (int t = 0; t < T && rc >= 0; t++) {
            rc = ms_trace_writer_token(w, t, t % 50, "a", 1, false, NAN, NAN, err);
            int32_t ex[4];
            float wt[4] = { 0.6f, 0.4f, 0, 0 };
            if (k == 1) {
                ex[0] = rng_int(&rs, E);
            } else {
                const int *g = groups[rng_int(&rs, 3)];
                ex[0] = g[rng_int(&rs, 4)];
                do ex[1] = g[rng_int(&rs, 4)];
                while (ex[1] == ex[0]);
            }
            for (int l = 1; l < NL && rc >= 0; l++) rc = ms_trace_writer_route(w, t, l, k, ex, wt, err);
        }
        if (rc >= 0) rc = ms_trace_writer_commit(w, NULL, err);
    }
    ms_trace_writer_free(w);
    ms_trace_close(db);
    return rc;
}

static int group_of(int e)
{
    for (int g = 0; g < 3; g++)
        for (int i = 0; i < 4; i++)
            if (groups[g][i] == e) return g;
    return -1;
}

/* ------------------------------------------------------------- pixels */

typedef struct {
    const MsViewClass *v;
    const void *model;
    const MsViewState *s;
} R;

static int r_draw(void *user, cairo_t *cr, double w, double h, MsError *err)
{
    const R *r = user;
    return r->v->draw(cr, w, h, r->model, r->s, err);
}

static cairo_surface_t *render(const MsViewClass *v, const void *model, const MsViewState *s, double w, double h)
{
    R r = { v, model, s };
    MsError err = { 0 };
    cairo_surface_t *img = ms_plot_render_image(w, h, 1, r_draw, &r, &err);
    if (!img) mt_diag("render %s: %s", v->name, err.msg);
    return img;
}

static bool run_ok(const char *cmd)
{
    int st = system(cmd);
    return st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    if (b) b[n] = 0;
    fclose(f);
    if (len) *len = (size_t)n;
    return b;
}

static void *prep(const MsViewClass *v, MsTraceDb *db, const MsViewParams *p, MsError *err)
{
    void *m = NULL;
    memset(err, 0, sizeof *err);
    if (v->prepare(db, p, &m, err) < 0) return NULL;
    return m;
}

/* ------------------------------------------------------- clustering order */

static bool is_perm(const int *o, int n)
{
    bool seen[512] = { false };
    for (int i = 0; i < n; i++) {
        if (o[i] < 0 || o[i] >= n || seen[o[i]]) return false;
        seen[o[i]] = true;
    }
    return true;
}

/* members of each group (of[i]) stand next to each other in order */
static bool contiguous(const int *order, int n, const int *of, int n_groups)
{
    for (int g = 0; g < n_groups; g++) {
        int first = -1, last = -1, cnt = 0;
        for (int p = 0; p < n; p++)
            if (of[order[p]] == g) {
                if (first < 0) first = p;
                last = p;
                cnt++;
            }
        if (cnt && last - first + 1 != cnt) return false;
    }
    return true;
}

static void test_cluster_order(void)
{
    uint64_t rs = 99;
    int order[64], order2[64];
    static const int sizes[] = { 1, 2, 5, 40, 64 };
    for (size_t k = 0; k < MS_ARRAY_LEN(sizes); k++) {
        int n = sizes[k], dim = 7;
        double x[64 * 7];
        for (int i = 0; i < n * dim; i++) x[i] = (double)rng_int(&rs, 1000) / 100;
        MsError err = { 0 };
        int rc = vb_cluster_order(x, n, dim, order, &err);
        MT_CHECK(rc == 0 && is_perm(order, n), "cluster order of %d random items is a permutation", n);
        vb_cluster_order(x, n, dim, order2, &err);
        MT_CHECK(!memcmp(order, order2, sizeof(int) * (size_t)n), "cluster order of %d items is deterministic", n);
    }
    /* three planted groups of sizes 5, 7, 4 under scrambled ids, noisy features */
    int n = 16, of[16], ids[16];
    for (int i = 0; i < n; i++) ids[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = rng_int(&rs, i + 1), t = ids[i];
        ids[i] = ids[j];
        ids[j] = t;
    }
    for (int i = 0; i < n; i++) of[ids[i]] = i < 5 ? 0 : i < 12 ? 1 : 2;
    double x[16 * 6];
    for (int i = 0; i < n; i++)
        for (int d = 0; d < 6; d++) x[i * 6 + d] = (d / 2 == of[i] ? 3.0 : 0.0) + (double)rng_int(&rs, 100) / 200;
    MsError err = { 0 };
    MT_CHECK(vb_cluster_order(x, n, 6, order, &err) == 0 && is_perm(order, n) && contiguous(order, n, of, 3),
             "cluster order puts each of three planted groups (5, 7, 4 scrambled ids) together");
    /* equal distances everywhere: still a permutation; NaN counts as 0 */
    double flat[9 * 2];
    for (int i = 0; i < 18; i++) flat[i] = i % 2 ? NAN : 1;
    MT_CHECK(vb_cluster_order(flat, 9, 2, order, &err) == 0 && is_perm(order, 9), "ties and NaN features: a permutation");
    MT_CHECK(vb_cluster_order(flat, 0, 2, order, &err) == MS_EINVAL, "no items: MS_EINVAL");
}

/* --------------------------------------------------------------- layout */

static bool overlap(const MsPlotTextItem *a, const MsPlotTextItem *b)
{
    return a->x0 < b->x1 - 0.5 && b->x0 < a->x1 - 0.5 && a->y0 < b->y1 - 0.5 && b->y0 < a->y1 - 0.5;
}

/* Every text inside the figure, no two overlapping (flow: node labels sit
 * over bands by design, but never over each other). */
static void check_texts(const MsViewClass *v, const void *model, double w, double h)
{
    cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, (int)w, (int)h);
    cairo_t *cr = cairo_create(s);
    MsPlotTextLog log = { 0 };
    MsError err = { 0 };
    MsViewState st;
    ms_view_state_init(&st);
    ms_plot_text_log_attach(cr, &log);
    int rc = v->draw(cr, w, h, model, &st, &err);
    ms_plot_text_log_attach(cr, NULL);
    MT_CHECK(rc == 0, "%s %gx%g: drawn (%s)", v->name, w, h, rc ? err.msg : "ok");
    int clipped = 0, overlaps = 0;
    for (size_t i = 0; i < log.n; i++) {
        const MsPlotTextItem *it = &log.items[i];
        if (it->x0 < -0.5 || it->y0 < -0.5 || it->x1 > w + 0.5 || it->y1 > h + 0.5) {
            if (clipped++ < 3) mt_diag("clipped: \"%s\" at %.1f,%.1f-%.1f,%.1f", it->text, it->x0, it->y0, it->x1, it->y1);
        }
        for (size_t j = 0; j < i; j++)
            if (overlap(it, &log.items[j]) && overlaps++ < 3)
                mt_diag("overlap: \"%s\" and \"%s\"", it->text, log.items[j].text);
    }
    MT_CHECK(log.n > 5 && clipped == 0, "%s %gx%g: all %zu texts inside the figure", v->name, w, h, log.n);
    MT_CHECK(overlaps == 0, "%s %gx%g: no two texts overlap", v->name, w, h);
    ms_plot_text_log_clear(&log);
    cairo_destroy(cr);
    cairo_surface_destroy(s);
}

/* PNG, SVG, PDF at two sizes; the SVG holds the axis titles. */
static void check_files(const MsViewClass *v, const void *model, const char *const *words, int n_words)
{
    static const double sizes[2][2] = { { 1400, 900 }, { 640, 420 } };
    const char *tmp = mt_tmpdir();
    bool have_pdftoppm = run_ok("command -v pdftoppm >/dev/null 2>&1");
    for (int k = 0; k < 2; k++) {
        double w = sizes[k][0], h = sizes[k][1];
        MsViewState st;
        ms_view_state_init(&st);
        char path[512], out[600], cmd[1400];
        MsError err = { 0 };
        snprintf(path, sizeof path, "%s/%s-%d.png", tmp, v->name, k);
        int rc = ms_view_render_file(v, model, &st, path, w, h, 1, &err);
        cairo_surface_t *s = rc == 0 ? cairo_image_surface_create_from_png(path) : NULL;
        MT_CHECK(s && cairo_surface_status(s) == CAIRO_STATUS_SUCCESS && cairo_image_surface_get_width(s) == (int)w &&
                     cairo_image_surface_get_height(s) == (int)h,
                 "%s %gx%g: a PNG of that size (%s)", v->name, w, h, rc ? err.msg : "ok");
        if (s) cairo_surface_destroy(s);

        snprintf(path, sizeof path, "%s/%s-%d.svg", tmp, v->name, k);
        rc = ms_view_render_file(v, model, &st, path, w, h, 1, &err);
        char *svg = rc == 0 ? read_all(path, NULL) : NULL;
        MT_CHECK(svg && strstr(svg, "<svg"), "%s %gx%g: an SVG (%s)", v->name, w, h, rc ? err.msg : "ok");
        for (int i = 0; svg && i < n_words; i++)
            MT_CHECK(strstr(svg, words[i]) != NULL, "%s %gx%g: the SVG holds \"%s\"", v->name, w, h, words[i]);
        free(svg);

        snprintf(path, sizeof path, "%s/%s-%d.pdf", tmp, v->name, k);
        rc = ms_view_render_file(v, model, &st, path, w, h, 1, &err);
        char *pdf = rc == 0 ? read_all(path, NULL) : NULL;
        MT_CHECK(pdf && !strncmp(pdf, "%PDF-", 5), "%s %gx%g: a PDF (%s)", v->name, w, h, rc ? err.msg : "ok");
        free(pdf);
        snprintf(out, sizeof out, "%s/%s-%d-pdf", tmp, v->name, k);
        snprintf(cmd, sizeof cmd, "pdftoppm -png -r 72 -singlefile '%s' '%s' 2>&1", path, out);
        bool conv = have_pdftoppm && run_ok(cmd);
        strcat(out, ".png");
        s = conv ? cairo_image_surface_create_from_png(out) : NULL;
        MT_CHECK(s && cairo_surface_status(s) == CAIRO_STATUS_SUCCESS && abs(cairo_image_surface_get_width(s) - (int)w) <= 1,
                 "%s %gx%g: pdftoppm reads the PDF%s", v->name, w, h, have_pdftoppm ? "" : " (pdftoppm is not installed)");
        if (s) cairo_surface_destroy(s);
        check_texts(v, model, w, h);
    }
}

/* ---------------------------------------------------- coactivation */

/* The matrix cells' centres (by position), found with the hit test along
 * one horizontal line through the figure and one vertical line through the
 * first column (cheap: a hit lays the figure out, as the draw does). */
static bool matrix_grid(const VbMatrix *m, const MsViewClass *v, const MsViewState *st, double w, double h, double *xc,
                        double *yc, double *cw, double *ch)
{
    double lo[64], hi[64];
    for (int i = 0; i < m->E; i++) lo[i] = INFINITY, hi[i] = -INFINITY;
    MsViewHit hit;
    for (double x = 0.5; x < w; x += 2)
        if (v->hit(m, st, w, h, x, h / 2, &hit) && hit.kind == MS_HIT_CELL) {
            int c = m->pos[hit.col];
            lo[c] = fmin(lo[c], x);
            hi[c] = fmax(hi[c], x);
        }
    for (int i = 0; i < m->E; i++) {
        if (!(hi[i] >= lo[i])) return false;
        xc[i] = (lo[i] + hi[i]) / 2;
        lo[i] = INFINITY, hi[i] = -INFINITY;
    }
    *cw = fabs(xc[m->E - 1] - xc[0]) / (m->E - 1);
    for (double y = 0.5; y < h; y += 2)
        if (v->hit(m, st, w, h, xc[0], y, &hit) && hit.kind == MS_HIT_CELL) {
            int r = m->pos[hit.row];
            lo[r] = fmin(lo[r], y);
            hi[r] = fmax(hi[r], y);
        }
    for (int i = 0; i < m->E; i++) {
        if (!(hi[i] >= lo[i])) return false;
        yc[i] = (lo[i] + hi[i]) / 2;
    }
    *ch = fabs(yc[m->E - 1] - yc[0]) / (m->E - 1);
    return *cw > 4 && *ch > 4;
}

/* Every cell, at its centre and two inner corners: the hit test names that
 * cell and the pixel there has the colour of the cell's value. */
static void check_matrix_hits(const VbMatrix *m, const MsViewClass *v, const MsViewState *st, double w, double h,
                              const char *what, bool (*extra)(const VbMatrix *, int, int, uint32_t))
{
    cairo_surface_t *s = render(v, m, st, w, h);
    double xc[64], yc[64], cw = 0, ch = 0;
    bool grid = s && matrix_grid(m, v, st, w, h, xc, yc, &cw, &ch);
    MT_CHECK(grid, "%s: rendered, every row and column found by the hit test (cells %.1f x %.1f)", what, cw, ch);
    if (!grid) {
        if (s) cairo_surface_destroy(s);
        return;
    }
    static const double off[3][2] = { { 0, 0 }, { -0.3, -0.3 }, { 0.3, 0.3 } };
    int tried = 0, agree = 0, named = 0, extra_ok = 0;
    VbMetric k = m->metric;
    for (int r = 0; r < m->E; r++)
        for (int c = 0; c < m->E; c++)
            for (int o = 0; o < 3; o++) {
                double x = xc[c] + off[o][0] * cw, y = yc[r] + off[o][1] * ch;
                int ii = m->order[r], jj = m->order[c];
                MsViewHit hit;
                tried++;
                if (v->hit(m, st, w, h, x, y, &hit) && hit.kind == MS_HIT_CELL && hit.row == ii && hit.col == jj) named++;
                float val = m->cells[k][(size_t)r * m->E + c];
                uint32_t want = pc_rgb24(isnan(val) ? ms_plot_cmap_missing(m->scale[k].map) : ms_plot_scale_color(&m->scale[k], val));
                uint32_t got = pc_pixel(s, (int)x, (int)y);
                if (pc_chan_diff(got, want) <= 2) agree++;
                else if (tried - agree < 4) mt_diag("%s: cell E%d,E%d at %.1f,%.1f is %06x, want %06x", what, ii, jj, x, y, got, want);
                if (!extra || extra(m, ii, jj, got)) extra_ok++;
            }
    MT_CHECK(named == tried, "%s: the hit test names the cell at %d points in the %d cells (%d)", what, tried,
             m->E * m->E, named);
    MT_CHECK(agree == tried, "%s: the pixel there has that cell's colour (%d of %d)", what, agree, tried);
    if (extra) MT_CHECK(extra_ok == tried, "%s: the planted structure at every probed cell (%d of %d)", what, extra_ok, tried);
    cairo_surface_destroy(s);
}

/* coactivation on the blocks trace: pairs of one group red (together more
 * than chance), pairs across groups at the blue end (never together),
 * the diagonal the n/a grey */
static bool coact_planted(const VbMatrix *m, int i, int j, uint32_t got)
{
    if (i == j) return pc_chan_diff(got, pc_rgb24(ms_plot_cmap_missing(MS_CMAP_BALANCE))) <= 2;
    if (group_of(i) != group_of(j)) return pc_chan_diff(got, pc_rgb24(ms_plot_cmap_at(MS_CMAP_BALANCE, 0))) <= 2;
    (void)m;
    int r = (int)(got >> 16) & 255, b = (int)got & 255;
    return r > b + 20;
}

static void test_coactivation(const char *blocks_db, const char *work_db)
{
    const MsViewClass *v = ms_view_find("coactivation");
    MT_CHECK(v != NULL, "coactivation is registered");
    if (!v) return;
    MsError err = { 0 };
    MsTraceDb *db = ms_trace_open(blocks_db, MS_TRACE_READ, &err);
    MsViewParams p;
    ms_view_params_init(&p);
    p.order = "cluster";
    VbMatrix *m = prep(v, db, &p, &err);
    MT_CHECK(m && m->from == 1 && m->to == 1 && !m->stored && m->E == E,
             "coactivation: default layer is the first MoE block (1), computed from the trace (%s)", m ? "ok" : err.msg);
    if (!m) {
        ms_trace_close(db);
        return;
    }
    int of[E];
    for (int e = 0; e < E; e++) of[e] = group_of(e);
    MT_CHECK(is_perm(m->order, E) && contiguous(m->order, E, of, 3),
             "coactivation --order cluster: a permutation with each planted group together");
    /* the same numbers as the analysis */
    MsAnOptions o;
    ms_an_options_default(&o);
    o.layer = 1;
    o.write = false;
    MsCoactivationResult *r = NULL;
    int rc = ms_analyze_coactivation(db, &o, &r, &err);
    int bad = 0;
    for (int q = 0; rc == 0 && q < E * E; q++) {
        const MsCoactLayer *l = &r->layers[0];
        if (m->count[q] != (double)l->N[q]) bad++;
        if (!(m->lift[q] == l->lift[q] || (isnan(m->lift[q]) && isnan(l->lift[q])))) bad++;
        if (!(m->jaccard[q] == l->jaccard[q] || (isnan(m->jaccard[q]) && isnan(l->jaccard[q])))) bad++;
    }
    MT_CHECK(rc == 0 && bad == 0 && m->n_tokens == r->layers[0].n_tokens,
             "coactivation: N, lift and Jaccard equal ms_analyze_coactivation's, cell for cell (%d differ)", bad);
    ms_coactivation_result_free(r);

    MsViewState st;
    ms_view_state_init(&st);
    check_matrix_hits(m, v, &st, 1400, 900, "coactivation 1400x900", coact_planted);
    check_matrix_hits(m, v, &st, 640, 420, "coactivation 640x420", coact_planted);

    /* the list: the strongest pairs are pairs of one group */
    int same = 0;
    for (int i = 0; i < m->n_top[VB_METRIC_LOGLIFT]; i++)
        same += group_of(m->top[VB_METRIC_LOGLIFT][i].i) == group_of(m->top[VB_METRIC_LOGLIFT][i].j);
    MT_CHECK(m->n_top[VB_METRIC_LOGLIFT] == 10 && same == 10, "coactivation: the 10 listed pairs are all within a group");

    /* linked selection: the picture changes only along the expert's row and column */
    int sel = 7;
    st.sel_expert = sel;
    cairo_surface_t *a = render(v, m, NULL, 1400, 900), *b = render(v, m, &st, 1400, 900);
    MsViewState plain;
    ms_view_state_init(&plain);
    int changed = 0, outside = 0, probed = 0;
    for (int y = 0; a && b && y < 900; y += 1)
        for (int x = 0; x < 1400; x += 1) {
            if (pc_pixel(a, x, y) == pc_pixel(b, x, y)) continue;
            /* every 8th changed pixel: some point of it or its neighbours
             * (anti-aliased edges) lies in the row or column of the expert */
            if (changed++ % 8) continue;
            probed++;
            bool ok = false;
            for (int q = 0; q < 9 && !ok; q++) {
                MsViewHit hh;
                double px = x + 0.5 + (q % 3 - 1), py = y + 0.5 + (q / 3 - 1);
                ok = v->hit(m, &plain, 1400, 900, px, py, &hh) && (hh.kind == MS_HIT_CELL || hh.kind == MS_HIT_ITEM) &&
                     (hh.row == sel || hh.col == sel);
            }
            if (!ok && outside++ < 3) mt_diag("selection changed %d,%d outside the row/column of E%d", x, y, sel);
        }
    MT_CHECK(changed > 100 && outside == 0, "coactivation: selecting E%d marks its row and column only (%d pixels, %d probed)",
             sel, changed, probed);
    st.sel_expert = -1;
    if (a) cairo_surface_destroy(a);
    if (b) cairo_surface_destroy(b);

    /* hit on a list entry names its pair */
    MsViewHit hit;
    bool found = false;
    for (int y = 0; y < 900 && !found; y += 3)
        for (int x = 1000; x < 1400 && !found; x += 10)
            if (v->hit(m, &plain, 1400, 900, x, y, &hit) && hit.kind == MS_HIT_ITEM && hit.item == 0) found = true;
    MT_CHECK(found && hit.row == m->top[VB_METRIC_LOGLIFT][0].i && hit.col == m->top[VB_METRIC_LOGLIFT][0].j &&
                 strstr(hit.text, "together in"),
             "coactivation: the first list entry is hit-testable (%s)", found ? hit.text : "not found");

    const char *words[] = { "Expert (layer 1)", "Expert, clustered", "lift" };
    check_files(v, m, words, 3);
    vb_matrix_free(m);

    /* --order load: loads descending; --color-by jaccard */
    p.order = "load";
    p.color_by = MS_VIEW_COLOR_JACCARD;
    m = prep(v, db, &p, &err);
    bool sorted = m != NULL;
    for (int i = 1; m && i < E; i++) sorted &= m->load_r[m->order[i - 1]] >= m->load_r[m->order[i]];
    MT_CHECK(sorted && m->metric == VB_METRIC_JACCARD, "coactivation --order load --color-by jaccard: loads descending");
    if (m) check_matrix_hits(m, v, &st, 900, 700, "coactivation jaccard", NULL);
    vb_matrix_free(m);
    ms_trace_close(db);

    /* stored results: analyze writes the tables; the view reads them back */
    db = ms_trace_open(work_db, MS_TRACE_WRITE, &err);
    o.layer = -1;
    o.write = true;
    r = NULL;
    rc = ms_analyze_coactivation(db, &o, &r, &err);
    MT_CHECK(rc == 0, "analyze coactivation writes its tables (%s)", rc ? err.msg : "ok");
    p.order = NULL;
    p.color_by = 0;
    p.layer = 3;
    p.run_missing = false;
    m = rc == 0 ? prep(v, db, &p, &err) : NULL;
    bad = 0;
    int li = -1;
    for (int i = 0; r && i < r->n_layers; i++)
        if (r->layers[i].layer == 3) li = i;
    for (int q = 0; m && li >= 0 && q < E * E; q++) {
        const MsCoactLayer *l = &r->layers[li];
        if (m->count[q] != (double)l->N[q]) bad++;
        if (!(fabs(m->lift[q] - l->lift[q]) <= 1e-12 * fabs(l->lift[q]) || (isnan(m->lift[q]) && isnan(l->lift[q])))) bad++;
    }
    MT_CHECK(m && m->stored && li >= 0 && bad == 0 && m->n_tokens == r->layers[li].n_tokens,
             "coactivation --layer 3 --no-run: read from an_coactivation, N (diagonal derived), lift and M equal (%s, %d differ)",
             m ? "ok" : err.msg, bad);
    vb_matrix_free(m);
    ms_coactivation_result_free(r);
    ms_trace_close(db);
}

/* ------------------------------------------------------------ affinity */

static bool aff_identity(const VbMatrix *m, int i, int j, uint32_t got)
{
    (void)m;
    return pc_chan_diff(got, pc_rgb24(ms_plot_cmap_at(MS_CMAP_VIRIDIS, i == j ? 1 : 0))) <= 2;
}

static void test_affinity(const char *chain_db, const char *blocks_work)
{
    const MsViewClass *v = ms_view_find("affinity");
    MT_CHECK(v != NULL, "affinity is registered");
    if (!v) return;
    MsError err = { 0 };
    MsTraceDb *db = ms_trace_open(chain_db, MS_TRACE_READ, &err);
    static const char *const orders[] = { "id", "load", "cluster" };
    MsViewState st;
    ms_view_state_init(&st);
    for (int k = 0; k < 3; k++) {
        MsViewParams p;
        ms_view_params_init(&p);
        p.order = orders[k];
        VbMatrix *m = prep(v, db, &p, &err);
        MT_CHECK(m && m->from == 1 && m->to == 2, "affinity --order %s: pair 1 -> 2 (%s)", orders[k], m ? "ok" : err.msg);
        if (!m) continue;
        char what[64];
        snprintf(what, sizeof what, "affinity (k = 1, identical layers) --order %s", orders[k]);
        /* Q is the identity: the diagonal in the top colour, the rest in the bottom one */
        check_matrix_hits(m, v, &st, 1000, 760, what, aff_identity);
        if (k == 0) {
            MsAnOptions o;
            ms_an_options_default(&o);
            o.layer = 1;
            o.write = false;
            MsAffinityResult *r = NULL;
            int rc = ms_analyze_affinity(db, &o, &r, &err);
            int bad = 0;
            for (int q = 0; rc == 0 && q < E * E; q++) {
                const MsAffPair *pr = &r->pairs[0];
                if (m->count[q] != pr->C[q] || !(m->Q[q] == pr->Q[q] || (isnan(m->Q[q]) && isnan(pr->Q[q])))) bad++;
            }
            MT_CHECK(rc == 0 && r->pairs[0].to == 2 && bad == 0,
                     "affinity: C and Q equal ms_analyze_affinity's (pair 1 -> 2), %d differ", bad);
            ms_affinity_result_free(r);
            const char *words[] = { "Expert at layer 1", "Expert at layer 2", "top-k, row-normalised" };
            check_files(v, m, words, 3);
        }
        vb_matrix_free(m);
    }
    ms_trace_close(db);

    /* stored: the blocks trace, pair 2 -> 3 */
    db = ms_trace_open(blocks_work, MS_TRACE_WRITE, &err);
    MsAnOptions o;
    ms_an_options_default(&o);
    MsAffinityResult *r = NULL;
    int rc = ms_analyze_affinity(db, &o, &r, &err);
    MsViewParams p;
    ms_view_params_init(&p);
    p.layer = 2;
    p.run_missing = false;
    p.color_by = MS_VIEW_COLOR_LIFT;
    VbMatrix *m = rc == 0 ? prep(v, db, &p, &err) : NULL;
    int bad = 0, pi = -1;
    for (int i = 0; r && i < r->n_pairs; i++)
        if (r->pairs[i].from == 2) pi = i;
    for (int q = 0; m && pi >= 0 && q < E * E; q++) {
        const MsAffPair *pr = &r->pairs[pi];
        if (m->count[q] != pr->C[q]) bad++;
        if (!(m->Q[q] == pr->Q[q] || (isnan(m->Q[q]) && isnan(pr->Q[q])))) bad++;
        if (!(m->lift[q] == pr->lift[q] || (isnan(m->lift[q]) && isnan(pr->lift[q])))) bad++;
    }
    for (int e = 0; m && pi >= 0 && e < E; e++)
        if (m->load_r[e] != r->pairs[pi].n[e]) bad++;
    MT_CHECK(m && m->stored && m->to == 3 && m->metric == VB_METRIC_LOGLIFT && bad == 0 &&
                 m->n_tokens == r->pairs[pi].n_tokens,
             "affinity --layer 2 --no-run --color-by lift: read from an_affinity_cells, C, Q, lift, n_i equal (%s, %d differ)",
             m ? "ok" : err.msg, bad);
    /* identical routing with k = 2: every path stays in its group; the
     * strongest transitions are an expert to itself */
    if (m) {
        int same = 0;
        for (int i = 0; i < m->n_top[VB_METRIC_Q]; i++) same += m->top[VB_METRIC_Q][i].i == m->top[VB_METRIC_Q][i].j;
        MT_CHECK(m->n_top[VB_METRIC_Q] == 10 && same == 10, "affinity: the 10 largest transitions are E -> E (k = 2, identical layers)");
        MsViewState s2;
        ms_view_state_init(&s2);
        MsViewHit hit;
        double xc[64], yc[64], cw, ch;
        bool found = matrix_grid(m, v, &s2, 1000, 760, xc, yc, &cw, &ch) &&
                     v->hit(m, &s2, 1000, 760, xc[m->pos[4]], yc[m->pos[4]], &hit) && hit.kind == MS_HIT_CELL &&
                     hit.row == 4 && hit.col == 4;
        MT_CHECK(found && strstr(hit.text, "L2 E4 \xE2\x86\x92 L3 E4:") && strstr(hit.text, "tokens"),
                 "affinity: the tooltip of cell (4, 4) names the path and its tokens (%s)", found ? hit.text : "none");
    }
    vb_matrix_free(m);
    ms_affinity_result_free(r);
    ms_trace_close(db);
}

/* ---------------------------------------------------------------- flow */

static int count_feed(void *user, const VbToken *t, MsError *err)
{
    (void)err;
    int64_t *c = user;
    for (int s = 0; s < 3; s++)
        if (t->n[s] > 0) c[s * E + t->ids[(size_t)s * t->stride]]++;
    c[3 * E]++;
    return 0;
}

static void test_flow(const char *blocks_db)
{
    const MsViewClass *v = ms_view_find("flow");
    MT_CHECK(v != NULL, "flow is registered");
    if (!v) return;
    MsError err = { 0 };
    MsTraceDb *db = ms_trace_open(blocks_db, MS_TRACE_READ, &err);
    MsViewParams p;
    ms_view_params_init(&p);
    p.top = 6;
    VbFlow *f = prep(v, db, &p, &err);
    MT_CHECK(f && f->n_cols == 3 && f->layer[0] == 1 && f->n_tokens == NP * T,
             "flow: the three MoE layers, %d tokens (%s)", NP * T, f ? "ok" : err.msg);
    if (!f) {
        ms_trace_close(db);
        return;
    }
    /* identical routing: bands only E -> E, counts = the top-1 transitions of the analysis */
    MsAnOptions o;
    ms_an_options_default(&o);
    o.write = false;
    o.variant = "top1";
    MsAffinityResult *r = NULL;
    int rc = ms_analyze_affinity(db, &o, &r, &err);
    int self = 0, bad = 0;
    for (int b = 0; b < f->n_bands; b++) {
        const VbBand *bd = &f->bands[b];
        self += bd->i == bd->j;
        if (rc == 0 && bd->count != r->pairs[bd->p].var_C[bd->i * E + bd->j]) bad++;
    }
    MT_CHECK(f->n_bands == 2 * 6 && self == f->n_bands, "flow: %d bands (top 6 of 2 pairs), all E -> E", f->n_bands);
    MT_CHECK(rc == 0 && bad == 0, "flow: band counts equal the analysis's top-1 transition counts (%d differ)", bad);
    ms_affinity_result_free(r);

    /* hit testing: every band and node the sweep finds is drawn there in
     * its colour (a coarse grid for the bands; the node columns found along
     * one line, then scanned down their middles) */
    MsViewState st;
    ms_view_state_init(&st);
    double w = 1200, h = 760;
    cairo_surface_t *s = render(v, f, &st, w, h);
    bool band_seen[12] = { false };
    int bands = 0, nodes = 0, colour_ok = 0, colour_tried = 0, text_ok = 0, node_ok = 0;
    double col_lo[8], col_hi[8];
    int n_col = 0;
    bool in = false;
    for (double x = 0.5; s && x < w; x += 1) {
        MsViewHit hit;
        bool node = v->hit(f, &st, w, h, x, h / 2, &hit) && hit.kind == MS_HIT_EXPERT;
        if (node && !in && n_col < 8) col_lo[n_col++] = x;
        if (node) col_hi[n_col - 1] = x;
        in = node;
    }
    for (double y = 0; s && y < h; y += 9)
        for (double x = 0; x < w; x += 9) {
            MsViewHit hit;
            if (!v->hit(f, &st, w, h, x, y, &hit) || hit.kind != MS_HIT_ITEM) continue;
            bands++;
            band_seen[hit.item] = true;
            const VbBand *bd = &f->bands[hit.item];
            char want[128];
            snprintf(want, sizeof want, "L%d E%d \xE2\x86\x92 L%d E%d: ", f->layer[bd->p], bd->i, f->layer[bd->p + 1], bd->j);
            text_ok += hit.row == bd->i && hit.col == bd->j && !strncmp(hit.text, want, strlen(want)) &&
                       strstr(hit.text, "(100 %)");
            /* a band's colour is its source expert's at alpha 0.45 over white,
             * or over a band it crosses (away from its edges) */
            MsRgb c = ms_plot_category_color(bd->i);
            MsRgb blend = { 0.45 * c.r + 0.55, 0.45 * c.g + 0.55, 0.45 * c.b + 0.55 };
            uint32_t got = pc_pixel(s, (int)x, (int)y);
            MsViewHit a1, a2;
            bool by_label = false;   /* node labels sit on a 75 % white box beside their node */
            for (int k = 0; k < n_col; k++)
                by_label |= k < n_col - 1 ? x >= col_hi[k] && x < col_hi[k] + 60 : x > col_lo[k] - 60 && x <= col_lo[k];
            if (!by_label && v->hit(f, &st, w, h, x, y - 2, &a1) && v->hit(f, &st, w, h, x, y + 2, &a2) && a1.item == hit.item &&
                a2.item == hit.item) {
                colour_tried++;
                bool ok = pc_chan_diff(got, pc_rgb24(blend)) <= 3;
                for (int b2 = 0; b2 < f->n_bands && !ok; b2++) {
                    MsRgb u = ms_plot_category_color(f->bands[b2].i);
                    MsRgb ub = { 0.45 * u.r + 0.55, 0.45 * u.g + 0.55, 0.45 * u.b + 0.55 };
                    MsRgb two = { 0.45 * c.r + 0.55 * ub.r, 0.45 * c.g + 0.55 * ub.g, 0.45 * c.b + 0.55 * ub.b };
                    ok = b2 != hit.item && pc_chan_diff(got, pc_rgb24(two)) <= 3;
                }
                if (ok) colour_ok++;
                else if (colour_tried - colour_ok < 4)
                    mt_diag("flow: band %lld at %.0f,%.0f is %06x, want %06x", (long long)hit.item, x, y, got, pc_rgb24(blend));
            }
        }
    for (int k = 0; k < n_col; k++)
        for (double y = 0.5; y < h; y += 3) {
            double x = (col_lo[k] + col_hi[k]) / 2;
            MsViewHit hit;
            if (!v->hit(f, &st, w, h, x, y, &hit) || hit.kind != MS_HIT_EXPERT) continue;
            nodes++;
            uint32_t got = pc_pixel(s, (int)x, (int)y);
            MsRgb c = hit.expert >= 0 ? ms_plot_category_color(hit.expert) : ms_plot_missing_color();
            if (pc_chan_diff(got, pc_rgb24(c)) <= 2) node_ok++;
        }
    int seen = 0;
    for (int b = 0; b < f->n_bands; b++) seen += band_seen[b];
    MT_CHECK(seen == f->n_bands && text_ok == bands, "flow: all %d bands hit, each tooltip \"L1 E5 -> L2 E5: N tokens (100 %%)\" (%d of %d)",
             f->n_bands, text_ok, bands);
    MT_CHECK(colour_tried > 200 && colour_ok == colour_tried,
             "flow: bands under the hit points have their source expert's colour (%d of %d)", colour_ok, colour_tried);
    MT_CHECK(n_col == 3 && nodes > 100 && node_ok > nodes * 0.97,
             "flow: %d node columns; nodes under the hit points have their expert's colour (%d of %d)", n_col, node_ok, nodes);
    if (s) cairo_surface_destroy(s);
    const char *words[] = { "MoE layer", "Tokens by top-1 expert", "shown" };
    check_files(v, f, words, 3);
    v->free_model(f);

    /* the two-thread scan equals the one-thread scan */
    MsTraceRunInfo ri;
    ms_trace_run_info(db, 1, &ri, &err);
    int64_t c1[3 * E + 1] = { 0 }, c2a[3 * E + 1] = { 0 }, c2b[3 * E + 1] = { 0 };
    bool split = false;
    int r1 = vb_scan(db, &ri, NULL, NULL, 0, 0, count_feed, c1, NULL, NULL, NULL, "t", &err);
    int r2 = vb_scan_split(db, &ri, NULL, count_feed, c2a, c2b, &split, 0, NULL, NULL, NULL, "t", &err);
    bool same = r1 == 0 && r2 == 0 && split && c2a[3 * E] > 0 && c2b[3 * E] > 0;
    for (int i = 0; i <= 3 * E; i++) same &= c1[i] == c2a[i] + c2b[i];
    MT_CHECK(same, "vb_scan_split: two halves (%lld + %lld tokens) sum to the one-thread scan", (long long)c2a[3 * E],
             (long long)c2b[3 * E]);
    ms_trace_run_info_clear(&ri);
    ms_trace_close(db);
}

/* ---------------------------------------------------------- consistency */

static void test_consistency(const char *blocks_work)
{
    const MsViewClass *v = ms_view_find("consistency");
    MT_CHECK(v != NULL, "consistency is registered");
    if (!v) return;
    MsError err = { 0 };
    MsTraceDb *db = ms_trace_open(blocks_work, MS_TRACE_WRITE, &err);
    MsViewParams p;
    ms_view_params_init(&p);
    VbCons *c = prep(v, db, &p, &err);
    MT_CHECK(c && !c->stored && c->n_lay == 3 && c->n_m == 4 && c->n_c == E && c->sch_m == 16 && c->step == 1,
             "consistency: computed for 3 layers, m = 4..256, C = 1..12 (%s)", c ? "ok" : err.msg);
    if (!c) {
        ms_trace_close(db);
        return;
    }
    /* identical routing at every layer: equal curves; SRP on or above 2r/(1+r) */
    int diff = 0, below = 0, finite = 0;
    for (int l = 1; l < c->n_lay; l++) {
        for (int i = 0; i < c->n_m; i++) diff += !(c->srp[l * c->n_m + i] == c->srp[i] || (isnan(c->srp[i]) && isnan(c->srp[l * c->n_m + i])));
        for (int i = 0; i < c->n_c; i++) diff += c->sch[l * c->n_c + i] != c->sch[i];
    }
    for (int i = 0; i < c->n_lay * c->n_m; i++) {
        if (!isfinite(c->srp[i])) continue;
        finite++;
        double r = c->act[i];
        if (!(c->srp[i] >= 2 * r / (1 + r) - 1e-12)) below++;
    }
    MT_CHECK(diff == 0 && finite == 3 * 3 && isnan(c->srp[3]) && below == 0,
             "consistency: identical layers give identical curves; m = 256 > T has no windows; SRP >= 2r/(1+r)");
    /* the analysis gives the same values */
    MsAnOptions o;
    ms_an_options_default(&o);
    o.write = true;
    for (int i = 0; i < E; i++) o.cache[i] = i + 1;
    o.n_cache = E;
    MsConsistencyResult *r = NULL;
    int rc = ms_analyze_consistency(db, &o, &r, &err);
    int bad = 0;
    for (int l = 0; rc == 0 && l < 3; l++) {
        for (int i = 0; i < 4; i++) {
            double a = c->srp[l * 4 + i], b = r->layers[l].srp[i];
            if (!(a == b || (isnan(a) && isnan(b)))) bad++;
            if (!(c->act[l * 4 + i] == r->layers[l].act_r[i] || (isnan(c->act[l * 4 + i]) && isnan(r->layers[l].act_r[i])))) bad++;
        }
        for (int j = 0; j < E; j++)
            if (c->sch[l * E + j] != r->layers[l].sch[1 * E + j]) bad++;   /* m index 1 = 16 */
    }
    MT_CHECK(rc == 0 && bad == 0, "consistency: SRP, r and SCH (m = 16) equal ms_analyze_consistency's (%d differ)", bad);

    /* hit testing: each point of the last layer's curves (drawn on top);
     * a coarse scan finds the points, a fine one around each its centre */
    MsViewState st;
    ms_view_state_init(&st);
    double w = 1300, h = 620;
    MsViewHit hit;
    int hits = 0, right = 0, n_pts = 0;
    struct { int panel, item; double sx, sy; int n; } pts[64];
    for (double y = 0; y < h; y += 12)
        for (double x = 0; x < w; x += 12) {
            if (!v->hit(c, &st, w, h, x, y, &hit) || hit.kind != MS_HIT_LAYER || hit.row < 0) continue;
            int q = 0;
            while (q < n_pts && !(pts[q].panel == hit.row && pts[q].item == hit.item)) q++;
            if (q < n_pts || n_pts == 64) continue;
            pts[n_pts++] = (typeof(pts[0])){ (int)hit.row, (int)hit.item, 0, 0, 0 };
            for (double yy = y - 12; yy <= y + 12; yy += 2)
                for (double xx = x - 12; xx <= x + 12; xx += 2) {
                    if (!v->hit(c, &st, w, h, xx, yy, &hit) || hit.kind != MS_HIT_LAYER || hit.row < 0) continue;
                    hits++;
                    int l = -1;
                    for (int i = 0; i < c->n_lay; i++)
                        if (c->layer[i] == hit.layer) l = i;
                    double want = hit.row == 0 ? c->srp[l * c->n_m + hit.item] : c->sch[l * c->n_c + hit.item];
                    if (l == c->n_lay - 1 && hit.value == want && strstr(hit.text, "L3, ")) right++;
                    if (hit.row == pts[q].panel && hit.item == pts[q].item) {
                        pts[q].sx += xx;
                        pts[q].sy += yy;
                        pts[q].n++;
                    }
                }
        }
    MT_CHECK(n_pts >= 12 && hits > 100 && right == hits,
             "consistency: %d points found; the hit test names layer 3 (on top), its x and value (%d of %d)", n_pts, right,
             hits);
    /* with layer 3 selected (drawn opaque on top), each point's centre has
     * its colour: viridis at 0.88 (the deepest layer's) */
    st.sel_layer = 3;
    cairo_surface_t *img = render(v, c, &st, w, h);
    uint32_t want3 = pc_rgb24(ms_plot_cmap_at(MS_CMAP_VIRIDIS, 0.88));
    int colour_ok = 0;
    for (int q = 0; img && q < n_pts; q++) {
        uint32_t got = pts[q].n ? pc_pixel(img, (int)(pts[q].sx / pts[q].n), (int)(pts[q].sy / pts[q].n)) : 0;
        if (pc_chan_diff(got, want3) <= 3) colour_ok++;
        else mt_diag("consistency: point %d/%d at %.1f,%.1f is %06x, want %06x", pts[q].panel, pts[q].item,
                     pts[q].sx / pts[q].n, pts[q].sy / pts[q].n, got, want3);
    }
    MT_CHECK(img && colour_ok == n_pts, "consistency --layer 3 selected: each point drawn in layer 3's colour (%d of %d)",
             colour_ok, n_pts);
    if (img) cairo_surface_destroy(img);
    st.sel_layer = -1;
    /* a legend entry selects its layer */
    bool legend = false;
    for (double y = 0; y < h && !legend; y += 3)
        for (double x = w * 0.8; x < w && !legend; x += 4)
            legend = v->hit(c, &st, w, h, x, y, &hit) && hit.kind == MS_HIT_LAYER && hit.row < 0 && hit.layer == 2;
    MT_CHECK(legend, "consistency: the legend entry of layer 2 is hit-testable");
    const char *words[] = { "Segment length m (tokens)", "Layer cache size C", "SRP (best F1)", "SCH (hit rate)",
                            "No SRP at m = 256: no prompt has that many tokens" };
    check_files(v, c, words, 5);
    v->free_model(c);

    /* stored: the same numbers, with the model level and the reference */
    p.run_missing = false;
    c = prep(v, db, &p, &err);
    bad = 0;
    for (int l = 0; c && rc == 0 && l < 3; l++) {
        for (int i = 0; i < 4; i++) {
            double a = c->srp[l * 4 + i], b = r->layers[l].srp[i];
            if (!(a == b || (isnan(a) && isnan(b)))) bad++;
            double ar = c->act[l * 4 + i], br = r->layers[l].act_r[i];
            if (!(fabs(ar - br) <= 1e-12 || (isnan(ar) && isnan(br)))) bad++;
        }
        for (int j = 0; j < E; j++)
            if (c->sch[l * E + j] != r->layers[l].sch[1 * E + j]) bad++;
    }
    MT_CHECK(c && c->stored && c->has_model && c->n_c == E && bad == 0 && c->model_srp[1] == r->model_srp[1],
             "consistency --no-run: read from an_consistency(+_experts): values, r and the model level equal (%s, %d differ)",
             c ? "ok" : err.msg, bad);
    if (c) v->free_model(c);
    ms_consistency_result_free(r);
    ms_trace_close(db);
}

/* --------------------------------------------------- synth --plant-chain */

static void test_plant_chain(void)
{
    const char *M = getenv("MOESCOPE");
    if (!M || !*M) {
        mt_skip("synth --plant-chain: MOESCOPE is not set");
        return;
    }
    const char *tmp = mt_tmpdir();
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "printf 'The year 2024 had 366 days.\\nCall 555-0142 before 9:30.\\ndef mean(v): return sum(v) / len(v)\\n"
             "The students walked along the river past the old mill.\\n' >'%s/p.txt' && "
             "'%s' synth --arch olmoe --layers 4 --embd 64 --heads 4 --experts 8 --used 2 --ff 32 --vocab 512 "
             "--plant-chain -t 1 '%s/chain.gguf' >/dev/null 2>&1 && "
             "'%s' trace '%s/chain.gguf' --prompts '%s/p.txt' --db '%s/chain.db' -t 1 >/dev/null 2>&1",
             tmp, M, tmp, M, tmp, tmp, tmp);
    bool ok = run_ok(cmd);
    MT_CHECK(ok, "synth --plant-chain and trace it");
    if (!ok) return;
    snprintf(cmd, sizeof cmd, "%s/chain.db", tmp);
    MsError err = { 0 };
    MsTraceDb *db = ms_trace_open(cmd, MS_TRACE_READ, &err);
    MsViewParams p;
    ms_view_params_init(&p);
    p.order = "cluster";
    const MsViewClass *va = ms_view_find("affinity");
    VbMatrix *m = prep(va, db, &p, &err);
    if (m) {
        /* Q = C / (k c_i): the diagonal is 1/k = 1/2, the row maximum, in the
         * top colour; cells no token links in the bottom colour */
        int diag_ok = 0, zero_ok = 0, zeros = 0, other_ok = 0;
        double maxq = 0;
        for (int q = 0; q < 64; q++)
            if (m->Q[q] > maxq) maxq = m->Q[q];
        for (int i = 0; i < 8; i++) diag_ok += m->Q[i * 9] == 0.5;
        MsViewState st;
        ms_view_state_init(&st);
        cairo_surface_t *s = render(va, m, &st, 900, 700);
        double xc[64], yc[64], cw, ch;
        bool grid = s && matrix_grid(m, va, &st, 900, 700, xc, yc, &cw, &ch);
        for (int r = 0; grid && r < 8; r++)
            for (int c = 0; c < 8; c++) {
                int i = m->order[r], j = m->order[c];
                MsViewHit h;
                if (!va->hit(m, &st, 900, 700, xc[c], yc[r], &h) || h.kind != MS_HIT_CELL || h.row != i || h.col != j) continue;
                uint32_t got = pc_pixel(s, (int)xc[c], (int)yc[r]);
                uint32_t top = pc_rgb24(ms_plot_cmap_at(MS_CMAP_VIRIDIS, 1)), bottom = pc_rgb24(ms_plot_cmap_at(MS_CMAP_VIRIDIS, 0));
                if (i == j) diag_ok += pc_chan_diff(got, top) <= 2 ? 100 : 0;
                else if (m->count[i * 8 + j] == 0) {
                    zeros++;
                    zero_ok += pc_chan_diff(got, bottom) <= 2;
                } else {
                    other_ok += pc_chan_diff(got, top) > 30;
                }
            }
        int offdiag = 0;
        for (int q = 0; q < 64; q++) offdiag += q % 9 != 0 && m->count[q] > 0;
        MT_CHECK(maxq == 0.5 && diag_ok == 8 + 800, "plant-chain affinity: Q diagonal = 1/k = max, drawn in the top colour");
        MT_CHECK(zero_ok == zeros && zeros == 56 - offdiag && other_ok == offdiag,
                 "plant-chain affinity: %d unlinked cells in the bottom colour, %d linked off-diagonal cells below the top",
                 zeros, offdiag);
        if (s) cairo_surface_destroy(s);
        vb_matrix_free(m);
    } else {
        MT_CHECK(0, "plant-chain affinity: prepared (%s)", err.msg);
    }
    ms_view_params_init(&p);
    VbFlow *f = prep(ms_view_find("flow"), db, &p, &err);
    int self = 0;
    for (int b = 0; f && b < f->n_bands; b++) self += f->bands[b].i == f->bands[b].j;
    MT_CHECK(f && f->n_bands > 0 && self == f->n_bands, "plant-chain flow: every band joins an expert to itself (%d)",
             f ? f->n_bands : 0);
    if (f) ms_view_find("flow")->free_model(f);
    VbCons *c = prep(ms_view_find("consistency"), db, &p, &err);
    int diff = 0;
    for (int l = 1; c && l < c->n_lay; l++) {
        for (int i = 0; i < c->n_m; i++) diff += !(c->srp[l * c->n_m + i] == c->srp[i] || (isnan(c->srp[i]) && isnan(c->srp[l * c->n_m + i])));
        for (int i = 0; i < c->n_c; i++) diff += c->sch[l * c->n_c + i] != c->sch[i];
    }
    MT_CHECK(c && c->n_lay == 4 && diff == 0, "plant-chain consistency: the four layers' curves coincide (%d differ)", diff);
    if (c) ms_view_find("consistency")->free_model(c);
    ms_trace_close(db);

    /* the command line: each view into each format at its default size, and
     * bad input as one line on stderr, a non-zero exit and no file */
    static const char *const views[] = { "coactivation", "affinity", "flow", "consistency" };
    static const char *const exts[] = { "png", "svg", "pdf" };
    for (int vi = 0; vi < 4; vi++) {
        int made = 0;
        for (int e = 0; e < 3; e++) {
            char out[600];
            snprintf(out, sizeof out, "%s/cli-%s.%s", tmp, views[vi], exts[e]);
            static const char *const opts[] = { "--order cluster", "--order load --color-by lift", "--order load --top 4",
                                                "--layers 1-3" };
            snprintf(cmd, sizeof cmd, "'%s' plot %s --db '%s/chain.db' %s -o '%s' 2>/dev/null", M, views[vi], tmp, opts[vi],
                     out);
            size_t len = 0;
            char *b = run_ok(cmd) ? read_all(out, &len) : NULL;
            made += b && len > 100 &&
                    (e == 0 ? !memcmp(b, "\x89PNG", 4) : e == 1 ? strstr(b, "<svg") != NULL : !memcmp(b, "%PDF-", 5));
            free(b);
        }
        MT_CHECK(made == 3, "moescope plot %s -o x.png|svg|pdf on the plant-chain trace (%d of 3)", views[vi], made);
    }
    static const char *const bad[][2] = {
        { "coactivation --layer 9", "layer 9 is not a MoE layer" },
        { "affinity --layer 3", "last MoE layer" },
        { "flow --layers 1-1", "two MoE layers" },
        { "coactivation --order bogus", "--order must be id, load or cluster" },
        { "consistency --run 7", "no run 7" },
        { "affinity --no-run", "moescope analyze affinity" },
        { "flow --width 100000", "--width" },
    };
    for (size_t i = 0; i < MS_ARRAY_LEN(bad); i++) {
        char out[600], errf[600];
        snprintf(out, sizeof out, "%s/bad.png", tmp);
        snprintf(errf, sizeof errf, "%s/bad.err", tmp);
        snprintf(cmd, sizeof cmd, "'%s' plot %s --db '%s/chain.db' -o '%s' 2>'%s'", M, bad[i][0], tmp, out, errf);
        bool failed = !run_ok(cmd);
        char *msg = read_all(errf, NULL);
        size_t lines = 0;
        for (char *q = msg; q && *q; q++) lines += *q == '\n';
        bool no_file = access(out, F_OK) != 0;
        MT_CHECK(failed && msg && lines == 1 && strstr(msg, bad[i][1]) && no_file,
                 "moescope plot %s: fails with one line naming the problem, no file (%s)", bad[i][0],
                 msg ? strtok(msg, "\n") ? msg : "" : "no stderr");
        free(msg);
        remove(out);
    }
    /* an output directory that does not exist */
    snprintf(cmd, sizeof cmd, "'%s' plot flow --db '%s/chain.db' -o '%s/no/such/dir/f.pdf' 2>/dev/null", M, tmp, tmp);
    MT_CHECK(!run_ok(cmd), "moescope plot flow -o into a missing directory fails");
}

/* --------------------------------------------------------------- errors */

static void expect_err(const char *view, MsTraceDb *db, const MsViewParams *p, const char *needle, const char *what)
{
    MsError err = { 0 };
    void *m = NULL;
    int rc = ms_view_find(view)->prepare(db, p, &m, &err);
    MT_CHECK(rc < 0 && !m && strstr(err.msg, needle) && !strchr(err.msg, '\n'), "%s %s: one line naming the problem (%s)",
             view, what, err.msg);
    if (m) ms_view_find(view)->free_model(m);
}

static void test_errors(const char *blocks_db, const char *old_db)
{
    MsError err = { 0 };
    MsTraceDb *db = ms_trace_open(blocks_db, MS_TRACE_READ, &err);
    MsViewParams p;
    ms_view_params_init(&p);
    p.order = "random";
    expect_err("coactivation", db, &p, "--order must be id, load or cluster", "--order random");
    expect_err("flow", db, &p, "--order", "--order random");
    ms_view_params_init(&p);
    p.layer = 0;
    expect_err("coactivation", db, &p, "layer 0 is not a MoE layer (MoE layers 1..3)", "--layer 0 (dense)");
    p.layer = 3;
    expect_err("affinity", db, &p, "last MoE layer", "--layer 3");
    ms_view_params_init(&p);
    p.color_by = MS_VIEW_COLOR_JACCARD;
    expect_err("affinity", db, &p, "Q (default) or lift", "--color-by jaccard");
    ms_view_params_init(&p);
    p.run_missing = false;
    expect_err("coactivation", db, &p, "moescope analyze coactivation", "--no-run without stored results");
    expect_err("consistency", db, &p, "moescope analyze consistency", "--no-run without stored results");
    ms_view_params_init(&p);
    p.run = 99;
    expect_err("affinity", db, &p, "no run 99", "--run 99");
    ms_view_params_init(&p);
    p.layer_lo = p.layer_hi = 2;
    expect_err("flow", db, &p, "two MoE layers", "--layers 2-2");
    ms_trace_close(db);

    /* a result table from another version: a column the view needs is missing */
    db = ms_trace_open(old_db, MS_TRACE_WRITE, &err);
    MsColumn cols[] = { { "run_id", MS_COL_INT }, { "layer", MS_COL_INT }, { "i", MS_COL_INT }, { "j", MS_COL_INT },
                        { "n_ij", MS_COL_INT } };
    MsTraceResult *r = ms_trace_result_new(db, 1, "coactivation", "{\"layer\":null}", "an_coactivation", cols, 5, &err);
    if (r) {
        ms_trace_result_int(r, 0, 1);
        ms_trace_result_int(r, 1, 1);
        ms_trace_result_int(r, 2, 0);
        ms_trace_result_int(r, 3, 1);
        ms_trace_result_int(r, 4, 5);
        ms_trace_result_row(r, &err);
        ms_trace_result_commit(r, &err);
        ms_trace_result_free(r);
    }
    ms_view_params_init(&p);
    expect_err("coactivation", db, &p, "has no column 'coact' (written by another version", "with an older table");
    ms_trace_close(db);
}

int main(void)
{
    const char *tmp = mt_tmpdir();
    char blocks[512], blocks_w[512], chain[512], old[512];
    snprintf(blocks, sizeof blocks, "%s/blocks.db", tmp);
    snprintf(blocks_w, sizeof blocks_w, "%s/blocks-w.db", tmp);
    snprintf(chain, sizeof chain, "%s/chain1.db", tmp);
    snprintf(old, sizeof old, "%s/old.db", tmp);
    MsError err = { 0 };
    int rc = make_trace(blocks, 2, &err);
    if (rc >= 0) rc = make_trace(blocks_w, 2, &err);
    if (rc >= 0) rc = make_trace(old, 2, &err);
    if (rc >= 0) rc = make_trace(chain, 1, &err);
    MT_CHECK(rc >= 0, "planted traces written (%s)", rc >= 0 ? "ok" : err.msg);
    if (rc < 0) return mt_done();
    double t0;
    t0 = now_s();
    test_cluster_order();
    mt_diag("%s: %.1f s", "test_cluster_order", now_s() - t0);
    t0 = now_s();
    test_coactivation(blocks, blocks_w);
    mt_diag("%s: %.1f s", "test_coactivation", now_s() - t0);
    t0 = now_s();
    test_affinity(chain, blocks_w);
    mt_diag("%s: %.1f s", "test_affinity", now_s() - t0);
    t0 = now_s();
    test_flow(blocks);
    mt_diag("%s: %.1f s", "test_flow", now_s() - t0);
    t0 = now_s();
    test_errors(blocks, old);
    mt_diag("%s: %.1f s", "test_errors", now_s() - t0);
    t0 = now_s();
    test_consistency(old);
    mt_diag("%s: %.1f s", "test_consistency", now_s() - t0);
    t0 = now_s();
    test_plant_chain();
    mt_diag("%s: %.1f s", "test_plant_chain", now_s() - t0);
    ms_plot_release_caches();
    return mt_done();
}
