/* heatmap.c — raster heat maps: one image pixel per cell (or per bucket of
 * cells when there are more cells than device pixels), scaled into the plot
 * rectangle with the nearest filter. */
#include "plot-internal.h"

#include <math.h>
#include <stdlib.h>

#define LUT_N 4096
#define MAX_IMAGE_SIDE 16384 /* cairo image surfaces stop at 32767 */

static double col_pos(const MsPlotGridMap *m, double c)
{
    double u = (c - m->col0) / (m->col1 - m->col0);
    return m->rect.x + (m->flip_cols ? 1 - u : u) * m->rect.w;
}

static double row_pos(const MsPlotGridMap *m, double r)
{
    double u = (r - m->row0) / (m->row1 - m->row0);
    return m->rect.y + (m->flip_rows ? 1 - u : u) * m->rect.h;
}

/* Device pixels spanned by the user-space vector (dx, dy). */
static int64_t device_len(cairo_t *cr, double dx, double dy)
{
    cairo_user_to_device_distance(cr, &dx, &dy);
    double d = ceil(hypot(dx, dy) - 1e-6);
    if (!(d >= 1)) return 1;
    return d > MAX_IMAGE_SIDE ? MAX_IMAGE_SIDE : (int64_t)d;
}

/* Bucket k of nb over n cells starting at a covers [b[k], b[k+1]). */
static void buckets(int64_t *b, int64_t nb, int64_t a, int64_t n)
{
    for (int64_t k = 0; k <= nb; k++) b[k] = a + (int64_t)((__int128)k * n / nb);
}

typedef struct {
    uint32_t lut[LUT_N];
    uint32_t missing;
    double ka, kb; /* t = ka * v + kb */
} ValueMap;

static void value_map_init(ValueMap *vm, const MsPlotColorScale *s)
{
    ms_plot_cmap_lut_(s->map, vm->lut, LUT_N);
    vm->missing = ms_plot_rgb_pack(ms_plot_cmap_missing(s->map));
    double lo = s->lo, hi = s->hi;
    if (ms_plot_cmap_is_diverging(s->map)) {
        double m = fmax(fabs(lo), fabs(hi));
        vm->ka = m > 0 ? 0.5 / m : 0;
        vm->kb = 0.5;
    } else if (hi != lo) {
        vm->ka = 1 / (hi - lo);
        vm->kb = -lo / (hi - lo);
    } else {
        vm->ka = 0;
        vm->kb = 0.5;
    }
}

static inline uint32_t value_pixel(const ValueMap *vm, double v)
{
    if (v != v) return vm->missing;
    double t = vm->ka * v + vm->kb;
    if (!(t > 0)) return vm->lut[0]; /* also -inf * 0 = NaN for a flat scale: lowest */
    if (t >= 1) return vm->lut[LUT_N - 1];
    return vm->lut[(int)(t * (LUT_N - 1) + 0.5)];
}

static void fill_values(const MsPlotHeatmap *h, const ValueMap *vm, const int64_t *bc, int64_t nbc, const int64_t *br,
                        int64_t nbr, uint32_t *px, int stride_px, double *acc, int64_t *cnt)
{
    bool peak = h->agg == MS_PLOT_AGG_PEAK;
    for (int64_t r = 0; r < nbr; r++) {
        uint32_t *out = px + (size_t)r * (size_t)stride_px;
        if (br[r + 1] - br[r] == 1 && bc[nbc] - bc[0] == nbc) {
            /* one cell per pixel: map directly */
            const float *src = h->values + (size_t)br[r] * (size_t)h->cols + bc[0];
            for (int64_t k = 0; k < nbc; k++) out[k] = value_pixel(vm, src[k]);
            continue;
        }
        for (int64_t k = 0; k < nbc; k++) {
            acc[k] = peak ? NAN : 0;
            cnt[k] = 0;
        }
        for (int64_t row = br[r]; row < br[r + 1]; row++) {
            const float *src = h->values + (size_t)row * (size_t)h->cols;
            for (int64_t k = 0; k < nbc; k++) {
                if (peak) {
                    double best = acc[k];
                    for (int64_t c = bc[k]; c < bc[k + 1]; c++) {
                        double v = src[c];
                        if (v == v && !(fabs(v) <= fabs(best))) best = v;
                    }
                    acc[k] = best;
                } else {
                    double s = 0;
                    int64_t n = 0;
                    for (int64_t c = bc[k]; c < bc[k + 1]; c++) {
                        float v = src[c];
                        if (v == v) {
                            s += v;
                            n++;
                        }
                    }
                    acc[k] += s;
                    cnt[k] += n;
                }
            }
        }
        for (int64_t k = 0; k < nbc; k++)
            out[k] = peak ? value_pixel(vm, acc[k]) : cnt[k] ? value_pixel(vm, acc[k] / (double)cnt[k]) : vm->missing;
    }
}

static uint32_t category_pixel(const MsPlotHeatmap *h, int64_t id)
{
    if (id >= 0 && h->palette && (size_t)id < h->n_palette) return ms_plot_rgb_pack(h->palette[id]);
    return ms_plot_rgb_pack(ms_plot_category_color(id));
}

static int cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* Most frequent id >= 0 of a block, ties to the smaller id; -1 if none.
 * counts (size ncount) is all zero on entry and on return (the ids counted
 * are remembered in `touched`); ids beyond it go through the sorted scratch
 * buffer.  touched and scratch hold one entry per cell of the block. */
static int32_t block_mode(const MsPlotHeatmap *h, int64_t r0, int64_t r1, int64_t c0, int64_t c1, uint32_t *counts,
                          int64_t ncount, int32_t *touched, int32_t *scratch)
{
    int32_t best = -1;
    uint32_t best_n = 0;
    int64_t ns = 0, nt = 0;
    for (int64_t r = r0; r < r1; r++) {
        const int32_t *src = h->categories + (size_t)r * (size_t)h->cols;
        for (int64_t c = c0; c < c1; c++) {
            int32_t id = src[c];
            if (id < 0) continue;
            if (id < ncount) {
                /* branch-free: whether an id is new is unpredictable */
                touched[nt] = id;
                nt += counts[id]++ == 0;
            } else {
                scratch[ns++] = id;
            }
        }
    }
    for (int64_t i = 0; i < nt; i++) {
        int32_t id = touched[i];
        uint32_t n = counts[id];
        bool better = (n > best_n) | ((n == best_n) & (id < best));
        best = better ? id : best;
        best_n = better ? n : best_n;
        counts[id] = 0;
    }
    if (ns > 0) {
        qsort(scratch, (size_t)ns, sizeof *scratch, cmp_i32);
        for (int64_t i = 0; i < ns;) {
            int64_t j = i;
            while (j < ns && scratch[j] == scratch[i]) j++;
            if ((uint32_t)(j - i) > best_n) {
                best = scratch[i];
                best_n = (uint32_t)(j - i);
            }
            i = j;
        }
    }
    return best;
}

int ms_plot_heatmap_draw(cairo_t *cr, const MsPlotGridMap *m, const MsPlotHeatmap *h, MsError *err)
{
    if (!h->values && !h->categories) return ms_error_set(err, MS_EINVAL, "heat map has no data");
    if (h->rows <= 0 || h->cols <= 0 || h->rows > INT64_MAX / h->cols)
        return ms_error_set(err, MS_EINVAL, "heat map size %lldx%lld is invalid", (long long)h->rows,
                            (long long)h->cols);
    if (!(m->col1 > m->col0) || !(m->row1 > m->row0) || !isfinite(m->col0) || !isfinite(m->col1) ||
        !isfinite(m->row0) || !isfinite(m->row1) || !(m->rect.w > 0) || !(m->rect.h > 0))
        return ms_error_set(err, MS_EINVAL, "heat map window is empty or not finite");
    if (h->values && (!isfinite(h->scale.lo) || !isfinite(h->scale.hi)))
        return ms_error_set(err, MS_EINVAL, "heat map colour range [%g, %g] is not finite", h->scale.lo,
                            h->scale.hi);
    /* the visible whole cells */
    double fc0 = floor(m->col0), fc1 = ceil(m->col1), fr0 = floor(m->row0), fr1 = ceil(m->row1);
    int64_t ca = fc0 < 0 ? 0 : (int64_t)fc0, cb = fc1 > (double)h->cols ? h->cols : (int64_t)fc1;
    int64_t ra = fr0 < 0 ? 0 : (int64_t)fr0, rb = fr1 > (double)h->rows ? h->rows : (int64_t)fr1;
    if (ca >= cb || ra >= rb) return 0;
    double xa = col_pos(m, (double)ca), xb = col_pos(m, (double)cb);
    double ya = row_pos(m, (double)ra), yb = row_pos(m, (double)rb);
    int64_t nc = cb - ca, nr = rb - ra;
    int64_t nbc = device_len(cr, xb - xa, 0), nbr = device_len(cr, 0, yb - ya);
    if (nbc > nc) nbc = nc;
    if (nbr > nr) nbr = nr;

    int rc = 0;
    int64_t *bc = malloc((size_t)(nbc + 1) * sizeof *bc), *br = malloc((size_t)(nbr + 1) * sizeof *br);
    double *acc = malloc((size_t)nbc * sizeof *acc);
    int64_t *cnt = malloc((size_t)nbc * sizeof *cnt);
    uint32_t *counts = NULL;
    int32_t *scratch = NULL, *touched = NULL;
    ValueMap *vm = NULL;
    cairo_surface_t *img = NULL;
    if (!bc || !br || !acc || !cnt) {
        rc = ms_error_set(err, MS_ENOMEM, "out of memory drawing a heat map");
        goto out;
    }
    buckets(bc, nbc, ca, nc);
    buckets(br, nbr, ra, nr);
    img = cairo_image_surface_create(CAIRO_FORMAT_RGB24, (int)nbc, (int)nbr);
    if (cairo_surface_status(img) != CAIRO_STATUS_SUCCESS) {
        rc = ms_error_set(err, MS_ENOMEM, "cannot create a %lldx%lld heat map image", (long long)nbc,
                          (long long)nbr);
        goto out;
    }
    cairo_surface_flush(img);
    uint32_t *px = (uint32_t *)cairo_image_surface_get_data(img);
    int stride_px = cairo_image_surface_get_stride(img) / 4;
    if (h->values) {
        vm = malloc(sizeof *vm);
        if (!vm) {
            rc = ms_error_set(err, MS_ENOMEM, "out of memory drawing a heat map");
            goto out;
        }
        value_map_init(vm, &h->scale);
        fill_values(h, vm, bc, nbc, br, nbr, px, stride_px, acc, cnt);
    } else {
        /* largest block: scratch for ids beyond the counting table */
        int64_t maxc = 0, maxr = 0;
        for (int64_t k = 0; k < nbc; k++) maxc = bc[k + 1] - bc[k] > maxc ? bc[k + 1] - bc[k] : maxc;
        for (int64_t k = 0; k < nbr; k++) maxr = br[k + 1] - br[k] > maxr ? br[k + 1] - br[k] : maxr;
        const int64_t ncount = 65536;
        counts = calloc((size_t)ncount, sizeof *counts);
        scratch = malloc((size_t)(maxc * maxr) * sizeof *scratch);
        touched = malloc((size_t)(maxc * maxr) * sizeof *touched);
        if (!counts || !scratch || !touched) {
            rc = ms_error_set(err, MS_ENOMEM, "out of memory drawing a heat map");
            goto out;
        }
        uint32_t missing = ms_plot_rgb_pack(ms_plot_missing_color());
        for (int64_t r = 0; r < nbr; r++) {
            uint32_t *o = px + (size_t)r * (size_t)stride_px;
            for (int64_t k = 0; k < nbc; k++) {
                int32_t id = block_mode(h, br[r], br[r + 1], bc[k], bc[k + 1], counts, ncount, touched, scratch);
                o[k] = id < 0 ? missing : category_pixel(h, id);
            }
        }
    }
    cairo_surface_mark_dirty(img);

    /* Vector targets (PDF, SVG): viewers may ignore the nearest filter and
     * smooth a few-pixel image into blurred cells, so repeat each cell into a
     * block of whole pixels close to the device size. */
    if (cairo_surface_get_type(cairo_get_group_target(cr)) != CAIRO_SURFACE_TYPE_IMAGE) {
        int64_t kx = device_len(cr, xb - xa, 0) / nbc, ky = device_len(cr, 0, yb - ya) / nbr;
        if (kx * nbc > 4096) kx = 4096 / nbc;
        if (ky * nbr > 4096) ky = 4096 / nbr;
        if (kx < 1) kx = 1;
        if (ky < 1) ky = 1;
        if (kx > 1 || ky > 1) {
            cairo_surface_t *big = cairo_image_surface_create(CAIRO_FORMAT_RGB24, (int)(nbc * kx), (int)(nbr * ky));
            if (cairo_surface_status(big) != CAIRO_STATUS_SUCCESS) {
                cairo_surface_destroy(big);
                rc = ms_error_set(err, MS_ENOMEM, "cannot create a heat map image");
                goto out;
            }
            cairo_surface_flush(big);
            uint32_t *bp = (uint32_t *)cairo_image_surface_get_data(big);
            int bstride = cairo_image_surface_get_stride(big) / 4;
            for (int64_t r = 0; r < nbr * ky; r++) {
                const uint32_t *src = px + (size_t)(r / ky) * (size_t)stride_px;
                uint32_t *dst = bp + (size_t)r * (size_t)bstride;
                for (int64_t c = 0; c < nbc * kx; c++) dst[c] = src[c / kx];
            }
            cairo_surface_mark_dirty(big);
            cairo_surface_destroy(img);
            img = big;
            nbc *= kx;
            nbr *= ky;
        }
    }

    /* image pixel (i, j) -> user (xa + i (xb - xa) / nbc, ya + j (yb - ya) / nbr) */
    cairo_matrix_t mat;
    cairo_matrix_init(&mat, (xb - xa) / (double)nbc, 0, 0, (yb - ya) / (double)nbr, xa, ya);
    if (cairo_matrix_invert(&mat) != CAIRO_STATUS_SUCCESS) goto out; /* zero-size: nothing to paint */
    cairo_save(cr);
    cairo_rectangle(cr, m->rect.x, m->rect.y, m->rect.w, m->rect.h);
    cairo_clip(cr);
    cairo_set_source_surface(cr, img, 0, 0);
    cairo_pattern_t *pat = cairo_get_source(cr);
    cairo_pattern_set_matrix(pat, &mat);
    cairo_pattern_set_filter(pat, CAIRO_FILTER_NEAREST);
    cairo_pattern_set_extend(pat, CAIRO_EXTEND_NONE);
    cairo_rectangle(cr, fmin(xa, xb), fmin(ya, yb), fabs(xb - xa), fabs(yb - ya));
    cairo_fill(cr);
    cairo_restore(cr);
    if (cairo_status(cr) != CAIRO_STATUS_SUCCESS)
        rc = ms_error_set(err, MS_EINTERNAL, "cairo: %s", cairo_status_to_string(cairo_status(cr)));
out:
    if (img) cairo_surface_destroy(img);
    free(vm);
    free(counts);
    free(scratch);
    free(touched);
    free(bc);
    free(br);
    free(acc);
    free(cnt);
    return rc;
}
