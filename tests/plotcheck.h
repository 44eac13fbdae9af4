/* plotcheck.h — helpers the figure tests share: pixels of a cairo image
 * surface, colour distance, a whole file read into memory.  Header-only
 * (static inline) so each test program stays one file. */
#ifndef MS_TESTS_PLOTCHECK_H
#define MS_TESTS_PLOTCHECK_H

#include <cairo.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "ms-plot.h"

/* The RGB of pixel (x, y) of an ARGB32/RGB24 surface, 0 outside it. */
static inline uint32_t pc_pixel(cairo_surface_t *s, int x, int y)
{
    int w = cairo_image_surface_get_width(s), h = cairo_image_surface_get_height(s);
    if (x < 0 || y < 0 || x >= w || y >= h) return 0;
    const unsigned char *d = cairo_image_surface_get_data(s);
    return *(const uint32_t *)(d + (size_t)y * (size_t)cairo_image_surface_get_stride(s) + (size_t)x * 4) & 0xffffff;
}

/* The largest difference of one channel between two RGB values. */
static inline int pc_chan_diff(uint32_t a, uint32_t b)
{
    int m = 0;
    for (int sh = 0; sh <= 16; sh += 8) {
        int d = abs((int)((a >> sh) & 255) - (int)((b >> sh) & 255));
        if (d > m) m = d;
    }
    return m;
}

static inline uint32_t pc_rgb24(MsRgb c) { return ms_plot_rgb_pack(c) & 0xffffff; }

/* A whole file, NUL-terminated (caller frees); NULL when unreadable. */
static inline char *pc_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    if (b) b[n] = 0;
    fclose(f);
    if (b && len) *len = (size_t)n;
    return b;
}

#endif
