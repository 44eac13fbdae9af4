/* output.c — render a draw callback into PNG, SVG or PDF files (written to a
 * temporary file beside the target and renamed on success) or an image. */
#include "plot-internal.h"

#include <cairo-pdf.h>
#include <cairo-svg.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const fmt_ext[3] = {".png", ".svg", ".pdf"};

int ms_plot_format_from_path(const char *path, MsError *err)
{
    if (!path || !*path) return ms_error_set(err, MS_EINVAL, "no output file name");
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *dot = strrchr(base, '.');
    if (!dot || dot == base)
        return ms_error_set(err, MS_EINVAL, "%s: no file extension to choose the format (use .png, .svg or .pdf)",
                            path);
    for (int i = 0; i < 3; i++)
        if (strcasecmp(dot, fmt_ext[i]) == 0) return i;
    return ms_error_set(err, MS_EINVAL, "%s: unknown figure format '%s' (use .png, .svg or .pdf)", path, dot);
}

int ms_plot_check_size(MsPlotFormat fmt, double width, double height, double scale, MsError *err)
{
    if (!isfinite(width) || !isfinite(height) || !(width > 0) || !(height > 0))
        return ms_error_set(err, MS_EINVAL, "figure size %gx%g: both sides must be > 0", width, height);
    if (!isfinite(scale) || !(scale > 0) || scale > 16)
        return ms_error_set(err, MS_EINVAL, "figure scale %g: must be > 0 and <= 16", scale);
    double w = round(width * scale), h = round(height * scale);
    const char *unit = fmt == MS_PLOT_PNG ? "px" : "pt";
    if (w < 1 || h < 1)
        return ms_error_set(err, MS_EINVAL, "figure size %gx%g at scale %g is below 1 %s", width, height, scale, unit);
    if (w > MS_PLOT_MAX_SIDE || h > MS_PLOT_MAX_SIDE)
        return ms_error_set(err, MS_EINVAL, "figure size %.0fx%.0f %s is too large (at most %.0f %s per side)", w, h,
                            unit, MS_PLOT_MAX_SIDE, unit);
    if (fmt == MS_PLOT_PNG && w * h > MS_PLOT_MAX_PIXELS)
        return ms_error_set(err, MS_EINVAL, "figure size %.0fx%.0f px is too large (%.0f Mpx, at most %.0f Mpx)", w, h,
                            w * h / 1e6, MS_PLOT_MAX_PIXELS / 1e6);
    return 0;
}

/* ---- in-memory output ---- */

typedef struct {
    unsigned char *data;
    size_t len, cap;
    bool failed;
} Buf;

static cairo_status_t buf_write(void *closure, const unsigned char *data, unsigned int length)
{
    Buf *b = closure;
    if (b->len + length > b->cap) {
        size_t cap = b->cap ? b->cap : 65536;
        while (cap < b->len + length) cap *= 2;
        unsigned char *p = realloc(b->data, cap);
        if (!p) {
            b->failed = true;
            return CAIRO_STATUS_WRITE_ERROR;
        }
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, length);
    b->len += length;
    return CAIRO_STATUS_SUCCESS;
}

static bool buf_puts(Buf *b, const char *s) { return buf_write(b, (const unsigned char *)s, (unsigned)strlen(s)) == 0; }

static bool buf_printf(Buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool buf_printf(Buf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    return n >= 0 && (size_t)n < sizeof tmp && buf_puts(b, tmp);
}

static bool xml_text(Buf *b, const char *s)
{
    for (; *s; s++) {
        const char *rep = *s == '&' ? "&amp;" : *s == '<' ? "&lt;" : *s == '>' ? "&gt;" : *s == '"' ? "&quot;" : NULL;
        if (rep ? !buf_puts(b, rep) : buf_write(b, (const unsigned char *)s, 1) != 0) return false;
    }
    return true;
}

/* Copy svg[0..n) to out, marking every <image> for nearest-neighbour scaling:
 * cairo's SVG surface drops the pattern filter, and a browser would blur a
 * heat map drawn as a few-pixel image into smeared cells. */
static bool copy_images_crisp(Buf *out, const unsigned char *svg, size_t n)
{
    static const char tag[] = "<image ";
    size_t start = 0;
    for (size_t i = 0; i + sizeof tag - 1 <= n; i++) {
        if (svg[i] != '<' || memcmp(svg + i, tag, sizeof tag - 1) != 0) continue;
        if (buf_write(out, svg + start, (unsigned)(i + sizeof tag - 1 - start)) != 0 ||
            !buf_puts(out, "image-rendering=\"optimizeSpeed\" style=\"image-rendering:pixelated\" "))
            return false;
        start = i + sizeof tag - 1;
    }
    return buf_write(out, svg + start, (unsigned)(n - start)) == 0;
}

/* The finished SVG: crisp images, and the logged text inserted as a
 * transparent layer before </svg>. */
static int svg_finish(Buf *svg, const MsPlotTextLog *log, Buf *out)
{
    const char *end = NULL;
    for (size_t i = svg->len; i >= 6; i--)
        if (memcmp(svg->data + i - 6, "</svg>", 6) == 0) {
            end = (const char *)svg->data + i - 6;
            break;
        }
    if (!end) return MS_EINTERNAL;
    size_t head = (size_t)(end - (const char *)svg->data);
    bool ok = copy_images_crisp(out, svg->data, head) &&
              buf_puts(out, "<g id=\"moescope-text\" fill-opacity=\"0\" stroke=\"none\" "
                            "font-family=\"DejaVu Sans, Noto Sans, sans-serif\">\n");
    for (size_t i = 0; ok && i < log->n; i++) {
        const MsPlotTextItem *it = &log->items[i];
        double deg = it->angle * 180 / 3.14159265358979323846;
        ok = buf_printf(out, "<text x=\"%.2f\" y=\"%.2f\" font-size=\"%.2f\"", it->bx, it->by, it->size) &&
             (fabs(deg) < 0.01 || buf_printf(out, " transform=\"rotate(%.2f %.2f %.2f)\"", deg, it->bx, it->by)) &&
             (it->width <= 0 || buf_printf(out, " textLength=\"%.2f\" lengthAdjust=\"spacingAndGlyphs\"", it->width)) &&
             buf_puts(out, ">") && xml_text(out, it->text) && buf_puts(out, "</text>\n");
    }
    ok = ok && buf_puts(out, "</g>\n") &&
         buf_write(out, svg->data + head, (unsigned)(svg->len - head)) == 0;
    return ok ? 0 : MS_ENOMEM;
}

/* Draw onto surface s (a width*scale x height*scale target). */
static int run_draw(cairo_surface_t *s, double width, double height, double scale, MsPlotDrawFn draw, void *user,
                    MsPlotTextLog *log, MsError *err)
{
    cairo_t *cr = cairo_create(s);
    if (cairo_status(cr) != CAIRO_STATUS_SUCCESS) {
        cairo_destroy(cr);
        return ms_error_set(err, MS_ENOMEM, "cannot start drawing: %s", cairo_status_to_string(cairo_status(cr)));
    }
    if (log && ms_plot_text_log_attach(cr, log) != 0) {
        cairo_destroy(cr);
        return ms_error_set(err, MS_ENOMEM, "out of memory");
    }
    cairo_scale(cr, scale, scale);
    int rc = draw(user, cr, width, height, err);
    if (rc == 0 && cairo_status(cr) != CAIRO_STATUS_SUCCESS)
        rc = ms_error_set(err, MS_EINTERNAL, "drawing failed: %s", cairo_status_to_string(cairo_status(cr)));
    else if (rc > 0)
        rc = ms_error_set(err, MS_EINTERNAL, "draw callback returned %d", rc);
    cairo_destroy(cr);
    return rc;
}

cairo_surface_t *ms_plot_render_image(double width, double height, double scale, MsPlotDrawFn draw, void *user,
                                      MsError *err)
{
    if (ms_plot_check_size(MS_PLOT_PNG, width, height, scale, err) < 0) return NULL;
    int w = (int)round(width * scale), h = (int)round(height * scale);
    cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, w, h);
    if (cairo_surface_status(s) != CAIRO_STATUS_SUCCESS) {
        ms_error_set(err, MS_ENOMEM, "cannot create a %dx%d image: %s", w, h,
                     cairo_status_to_string(cairo_surface_status(s)));
        cairo_surface_destroy(s);
        return NULL;
    }
    if (run_draw(s, width, height, scale, draw, user, NULL, err) < 0) {
        cairo_surface_destroy(s);
        return NULL;
    }
    cairo_surface_flush(s);
    return s;
}

/* Render into memory. */
static int render_buf(MsPlotFormat fmt, double width, double height, double scale, MsPlotDrawFn draw, void *user,
                      Buf *out, MsError *err)
{
    int rc = 0;
    double w = round(width * scale), h = round(height * scale);
    if (fmt == MS_PLOT_PNG) {
        cairo_surface_t *s = ms_plot_render_image(width, height, scale, draw, user, err);
        if (!s) return err ? err->code : MS_EINTERNAL;
        cairo_status_t st = cairo_surface_write_to_png_stream(s, buf_write, out);
        cairo_surface_destroy(s);
        if (st != CAIRO_STATUS_SUCCESS)
            return ms_error_set(err, out->failed ? MS_ENOMEM : MS_EINTERNAL, "PNG encoding failed: %s",
                                cairo_status_to_string(st));
        return 0;
    }
    Buf raw = {0};
    MsPlotTextLog log = {0};
    cairo_surface_t *s;
    if (fmt == MS_PLOT_SVG) {
        s = cairo_svg_surface_create_for_stream(buf_write, &raw, w, h);
        cairo_svg_surface_set_document_unit(s, CAIRO_SVG_UNIT_PX);
    } else {
        s = cairo_pdf_surface_create_for_stream(buf_write, out, w, h);
        cairo_pdf_surface_set_metadata(s, CAIRO_PDF_METADATA_CREATOR, "moescope");
    }
    if (cairo_surface_status(s) != CAIRO_STATUS_SUCCESS) {
        rc = ms_error_set(err, MS_ENOMEM, "cannot create the %s surface: %s", fmt == MS_PLOT_SVG ? "SVG" : "PDF",
                          cairo_status_to_string(cairo_surface_status(s)));
    } else {
        rc = run_draw(s, width, height, scale, draw, user, fmt == MS_PLOT_SVG ? &log : NULL, err);
        cairo_surface_finish(s);
        if (rc == 0 && cairo_surface_status(s) != CAIRO_STATUS_SUCCESS)
            rc = ms_error_set(err, raw.failed || out->failed ? MS_ENOMEM : MS_EINTERNAL, "%s output failed: %s",
                              fmt == MS_PLOT_SVG ? "SVG" : "PDF", cairo_status_to_string(cairo_surface_status(s)));
    }
    cairo_surface_destroy(s);
    if (rc == 0 && fmt == MS_PLOT_SVG) {
        rc = svg_finish(&raw, &log, out);
        if (rc < 0) rc = ms_error_set(err, rc, "SVG output failed: %s", ms_strerror(rc));
    }
    ms_plot_text_log_clear(&log);
    free(raw.data);
    return rc;
}

/* Mode bits for a new file: 0666 less the umask (read without changing it). */
static mode_t file_mode(void)
{
    mode_t mask = 022;
    FILE *f = fopen("/proc/self/status", "r");
    if (f) {
        char line[256];
        unsigned m;
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "Umask: %o", &m) == 1) {
                mask = (mode_t)m;
                break;
            }
        fclose(f);
    }
    return 0666 & ~mask;
}

int ms_plot_render_file(const char *path, double width, double height, double scale, MsPlotDrawFn draw,
                        void *user, MsError *err)
{
    int fmt = ms_plot_format_from_path(path, err);
    if (fmt < 0) return fmt;
    if (ms_plot_check_size((MsPlotFormat)fmt, width, height, scale, err) < 0) return ms_error_prefix(err, "%s: ", path);

    /* the temporary file first: an unwritable place fails before any drawing */
    const char *slash = strrchr(path, '/');
    size_t dlen = slash ? (size_t)(slash - path) : 0;
    const char *base = slash ? slash + 1 : path;
    size_t tlen = dlen + strlen(base) + 16;
    char *tmp = malloc(tlen), *dir = malloc(dlen + 2);
    if (!tmp || !dir) {
        free(tmp);
        free(dir);
        return ms_error_set(err, MS_ENOMEM, "%s: out of memory", path);
    }
    if (slash) {
        memcpy(dir, path, dlen ? dlen : 1);
        dir[dlen ? dlen : 1] = 0;
    } else {
        strcpy(dir, ".");
    }
    snprintf(tmp, tlen, "%s/.%s.XXXXXX", slash && dlen == 0 ? "" : dir, base);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        int e = errno;
        int rc = ms_error_set(err, MS_EIO, "%s: cannot create a file in %s: %s", path, dir, strerror(e));
        free(tmp);
        free(dir);
        return rc;
    }
    free(dir);
    fchmod(fd, file_mode());

    Buf out = {0};
    int rc = render_buf((MsPlotFormat)fmt, width, height, scale, draw, user, &out, err);
    if (rc < 0) {
        ms_error_prefix(err, "%s: ", path);
    } else {
        size_t off = 0;
        while (off < out.len) {
            ssize_t n = write(fd, out.data + off, out.len - off);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) {
                rc = ms_error_set(err, MS_EIO, "%s: write failed: %s", path, n < 0 ? strerror(errno) : "no space");
                break;
            }
            off += (size_t)n;
        }
        if (rc == 0 && fsync(fd) != 0 && errno != EINVAL)
            rc = ms_error_set(err, MS_EIO, "%s: write failed: %s", path, strerror(errno));
    }
    if (close(fd) != 0 && rc == 0) rc = ms_error_set(err, MS_EIO, "%s: write failed: %s", path, strerror(errno));
    if (rc == 0 && rename(tmp, path) != 0)
        rc = ms_error_set(err, MS_EIO, "%s: cannot replace the file: %s", path, strerror(errno));
    if (rc < 0) unlink(tmp);
    free(tmp);
    free(out.data);
    return rc;
}
