/* bench-heatmap — time ui/'s heat map raster primitive and a whole figure.
 *
 *   bench-heatmap [-r ROWS] [-c COLS] [--cat] [-n RUNS] [-W WIDTH] [-H HEIGHT] [-o FILE]
 *
 * Default: a 16 x 100000 grid (experts x tokens) of routing weights drawn into
 * a 1400x900 image, both orientations and a categorical grid; prints the
 * median and minimum time of ms_plot_heatmap_draw and of the whole figure
 * (layout, frame, heat map).  -o also writes the figure (PNG, SVG or PDF). */
#include "ms-plot.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    int64_t rows, cols;
    float *values;
    int32_t *cats;
    MsPlotFrame frame;
    MsPlotColorbar cbar;
    MsPlotLegend legend;
    MsPlotLegendItem items[64];
    char names[64][16];
} Fig;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* CPU time of this thread: robust when other work shares the cores. */
static double cpu_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Deterministic data: a smooth per-row preference plus hashed noise. */
static void fill(Fig *f, bool cat)
{
    size_t n = (size_t)(f->rows * f->cols);
    uint64_t s = 0x9E3779B97F4A7C15ull;
    if (cat) f->cats = malloc(n * sizeof *f->cats);
    else f->values = malloc(n * sizeof *f->values);
    for (int64_t r = 0; r < f->rows; r++)
        for (int64_t c = 0; c < f->cols; c++) {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            double noise = (double)(s >> 11) / 9007199254740992.0;
            size_t i = (size_t)(r * f->cols + c);
            if (cat) f->cats[i] = (int32_t)((c / 500 + r + (noise < 0.2 ? 7 : 0)) % 32);
            else f->values[i] = (float)(0.5 + 0.35 * sin((double)c / 2000.0 + (double)r) * noise + 0.15 * noise);
        }
}

static int draw(void *user, cairo_t *cr, double w, double h, MsError *err)
{
    Fig *f = user;
    MsPlotGeom g;
    int rc = ms_plot_layout(&f->frame, w, h, &g, err);
    if (rc < 0) return rc;
    ms_plot_draw_back(cr, &f->frame, &g);
    MsPlotGridMap m = ms_plot_grid_map(&g, f->rows, f->cols);
    MsPlotHeatmap hm = {.rows = f->rows, .cols = f->cols, .values = f->values, .categories = f->cats,
                        .scale = f->cbar.scale};
    rc = ms_plot_heatmap_draw(cr, &m, &hm, err);
    if (rc < 0) return rc;
    ms_plot_draw_axes(cr, &f->frame, &g);
    return 0;
}

static void setup(Fig *f, int64_t rows, int64_t cols, bool cat)
{
    memset(f, 0, sizeof *f);
    f->rows = rows;
    f->cols = cols;
    fill(f, cat);
    bool tokens_x = cols >= rows;
    f->frame.title = cat ? "Top-1 expert per token and layer" : "Routing weight per token and expert";
    f->frame.x = (MsPlotAxis){.kind = MS_PLOT_AXIS_CATEGORY, .title = tokens_x ? "Token position" : "Expert",
                              .lo = 0, .hi = (double)cols, .count = cols};
    f->frame.y = (MsPlotAxis){.kind = MS_PLOT_AXIS_CATEGORY, .title = tokens_x ? (cat ? "Layer" : "Expert") : "Token position",
                              .lo = 0, .hi = (double)rows, .count = rows};
    if (cat) {
        for (int i = 0; i < 32; i++) {
            snprintf(f->names[i], sizeof f->names[i], "E%d", i);
            f->items[i] = (MsPlotLegendItem){f->names[i], ms_plot_category_color(i)};
        }
        f->legend = (MsPlotLegend){.title = "Expert", .items = f->items, .n = 32};
        f->frame.legend = &f->legend;
    } else {
        f->cbar = (MsPlotColorbar){.scale = ms_plot_scale_fit(MS_CMAP_VIRIDIS, f->values, (size_t)(rows * cols)),
                                   .title = "routing weight"};
        f->frame.colorbar = &f->cbar;
    }
}

static void bench(Fig *f, double w, double h, int runs)
{
    cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, (int)w, (int)h);
    cairo_t *cr = cairo_create(s);
    MsError err = {0};
    MsPlotGeom g;
    if (ms_plot_layout(&f->frame, w, h, &g, &err) < 0) {
        fprintf(stderr, "bench-heatmap: %s\n", err.msg);
        exit(1);
    }
    MsPlotGridMap m = ms_plot_grid_map(&g, f->rows, f->cols);
    MsPlotHeatmap hm = {.rows = f->rows, .cols = f->cols, .values = f->values, .categories = f->cats,
                        .scale = f->cbar.scale};
    double *t = malloc((size_t)runs * sizeof *t), *tf = malloc((size_t)runs * sizeof *tf);
    double *tc = malloc((size_t)runs * sizeof *tc);
    for (int i = 0; i < runs; i++) {
        double t0 = now_ms(), c0 = cpu_ms();
        if (ms_plot_heatmap_draw(cr, &m, &hm, &err) < 0) {
            fprintf(stderr, "bench-heatmap: %s\n", err.msg);
            exit(1);
        }
        cairo_surface_flush(s);
        t[i] = now_ms() - t0;
        tc[i] = cpu_ms() - c0;
        t0 = now_ms();
        draw(f, cr, w, h, &err);
        cairo_surface_flush(s);
        tf[i] = now_ms() - t0;
    }
    qsort(t, (size_t)runs, sizeof *t, cmp_d);
    qsort(tf, (size_t)runs, sizeof *tf, cmp_d);
    qsort(tc, (size_t)runs, sizeof *tc, cmp_d);
    printf("%-12s %6lld x %-6lld into %4.0fx%-4.0f (plot %.0fx%.0f): heatmap wall median %6.2f ms (min %6.2f), "
           "CPU median %6.2f ms; whole figure wall median %6.2f ms (min %6.2f)\n",
           f->cats ? "categorical" : "values", (long long)f->rows, (long long)f->cols, w, h, g.plot.w, g.plot.h,
           t[runs / 2], t[0], tc[runs / 2], tf[runs / 2], tf[0]);
    free(t);
    free(tc);
    free(tf);
    cairo_destroy(cr);
    cairo_surface_destroy(s);
}

int main(int argc, char **argv)
{
    int64_t rows = 0, cols = 0;
    bool cat = false;
    int runs = 21;
    double w = 1400, h = 900;
    const char *out = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--cat")) { cat = true; continue; }
        if (!v) { fprintf(stderr, "usage: bench-heatmap [-r ROWS] [-c COLS] [--cat] [-n RUNS] [-W W] [-H H] [-o FILE]\n"); return 2; }
        if (!strcmp(a, "-r")) rows = atoll(v);
        else if (!strcmp(a, "-c")) cols = atoll(v);
        else if (!strcmp(a, "-n")) runs = atoi(v);
        else if (!strcmp(a, "-W")) w = atof(v);
        else if (!strcmp(a, "-H")) h = atof(v);
        else if (!strcmp(a, "-o")) out = v;
        else { fprintf(stderr, "bench-heatmap: unknown option %s\n", a); return 2; }
        i++;
    }
    if (runs < 1) runs = 1;
    Fig f;
    if (rows > 0 || cols > 0 || out) {
        setup(&f, rows > 0 ? rows : 16, cols > 0 ? cols : 100000, cat);
        if (out) {
            MsError err = {0};
            if (ms_plot_render_file(out, w, h, 1, draw, &f, &err) < 0) {
                fprintf(stderr, "bench-heatmap: %s\n", err.msg);
                return 1;
            }
            printf("wrote %s\n", out);
        } else {
            bench(&f, w, h, runs);
        }
        free(f.values);
        free(f.cats);
        return 0;
    }
    static const int64_t shapes[3][3] = {{16, 100000, 0}, {100000, 16, 0}, {16, 100000, 1}};
    for (int i = 0; i < 3; i++) {
        setup(&f, shapes[i][0], shapes[i][1], shapes[i][2]);
        bench(&f, w, h, runs);
        free(f.values);
        free(f.cats);
    }
    return 0;
}
