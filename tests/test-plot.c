/* test-plot.c — ui/ pure parts: colour maps and palette, colour science,
 * token escaping, nice ticks, grid hit testing, zoom/pan, rectangle hits. */
#include "mtest.h"
#include "ms-plot.h"

#include <math.h>
#include <stdint.h>

static bool rgb_near(MsRgb a, MsRgb b, double tol)
{
    return fabs(a.r - b.r) <= tol && fabs(a.g - b.g) <= tol && fabs(a.b - b.b) <= tol;
}

static uint32_t hex(MsRgb c) { return ms_plot_rgb_pack(c) & 0xffffff; }

static double de(MsRgb a, MsRgb b) { return ms_plot_delta_e2000(ms_plot_rgb_to_lab(a), ms_plot_rgb_to_lab(b)); }

static void test_deltae(void)
{
    /* reference pairs of Sharma, Wu & Dalal (2005), "The CIEDE2000 color-difference formula" */
    static const double pairs[][7] = {
        {50.0, 2.6772, -79.7751, 50.0, 0.0, -82.7485, 2.0425},
        {50.0, 0.0, 0.0, 50.0, -1.0, 2.0, 2.3669},
        {50.0, 2.5, 0.0, 73.0, 25.0, -18.0, 27.1492},
    };
    for (size_t i = 0; i < MS_ARRAY_LEN(pairs); i++) {
        MsLab x = {pairs[i][0], pairs[i][1], pairs[i][2]}, y = {pairs[i][3], pairs[i][4], pairs[i][5]};
        double d = ms_plot_delta_e2000(x, y), d2 = ms_plot_delta_e2000(y, x);
        MT_CHECK(fabs(d - pairs[i][6]) < 5e-4 && fabs(d2 - d) < 1e-9, "CIEDE2000 reference pair %zu: %.4f (want %.4f)",
                 i, d, pairs[i][6]);
    }
    MsLab w = ms_plot_rgb_to_lab((MsRgb){1, 1, 1}), k = ms_plot_rgb_to_lab((MsRgb){0, 0, 0});
    MT_CHECK(fabs(w.L - 100) < 0.01 && fabs(w.a) < 0.01 && fabs(w.b) < 0.01 && fabs(k.L) < 0.01,
             "CIELAB: white is L 100, black L 0 (white %.3f %.3f %.3f)", w.L, w.a, w.b);
    MsRgb c = {0.2, 0.6, 0.9};
    bool ok;
    MsRgb back = ms_plot_oklab_to_rgb(ms_plot_rgb_to_oklab(c), &ok);
    MT_CHECK(ok && rgb_near(c, back, 1e-6), "OKLab round trip");
}

static void test_sequential(void)
{
    /* endpoints of the published tables, as their well-known hex codes */
    MT_CHECK(hex(ms_plot_cmap_at(MS_CMAP_VIRIDIS, 0)) == 0x440154 && hex(ms_plot_cmap_at(MS_CMAP_VIRIDIS, 1)) == 0xfde725,
             "viridis runs #440154 -> #fde725 (%06x -> %06x)", hex(ms_plot_cmap_at(MS_CMAP_VIRIDIS, 0)),
             hex(ms_plot_cmap_at(MS_CMAP_VIRIDIS, 1)));
    MT_CHECK(hex(ms_plot_cmap_at(MS_CMAP_CIVIDIS, 0)) == 0x00224e && hex(ms_plot_cmap_at(MS_CMAP_CIVIDIS, 1)) == 0xfee838,
             "cividis runs #00224e -> #fee838 (%06x -> %06x)", hex(ms_plot_cmap_at(MS_CMAP_CIVIDIS, 0)),
             hex(ms_plot_cmap_at(MS_CMAP_CIVIDIS, 1)));
    MsColormap seq[2] = {MS_CMAP_VIRIDIS, MS_CMAP_CIVIDIS};
    for (int m = 0; m < 2; m++) {
        double prev = -1, min_step = 1e9, max_step = 0;
        bool mono = true;
        for (int i = 0; i <= 1024; i++) {
            double L = ms_plot_rgb_to_lab(ms_plot_cmap_at(seq[m], i / 1024.0)).L;
            if (i > 0) {
                if (!(L > prev)) mono = false;
                min_step = fmin(min_step, L - prev);
                max_step = fmax(max_step, L - prev);
            }
            prev = L;
        }
        MT_CHECK(mono, "%s: CIELAB lightness strictly increasing over 1025 samples (steps %.4f..%.4f)",
                 ms_plot_cmap_name(seq[m]), min_step, max_step);
        MT_CHECK(!ms_plot_cmap_is_diverging(seq[m]), "%s is sequential", ms_plot_cmap_name(seq[m]));
    }
    /* clamping, ranges */
    MT_CHECK(hex(ms_plot_cmap_at(MS_CMAP_VIRIDIS, -3)) == 0x440154 && hex(ms_plot_cmap_at(MS_CMAP_VIRIDIS, 7)) == 0xfde725,
             "t outside [0,1] clamps to the ends");
    MT_CHECK(rgb_near(ms_plot_cmap_value(MS_CMAP_VIRIDIS, 15, 10, 20), ms_plot_cmap_at(MS_CMAP_VIRIDIS, 0.5), 1e-12),
             "value 15 on [10,20] is the middle colour");
    MT_CHECK(rgb_near(ms_plot_cmap_value(MS_CMAP_VIRIDIS, 15, 20, 10), ms_plot_cmap_at(MS_CMAP_VIRIDIS, 0.5), 1e-12) &&
             rgb_near(ms_plot_cmap_value(MS_CMAP_VIRIDIS, 18, 20, 10), ms_plot_cmap_at(MS_CMAP_VIRIDIS, 0.2), 1e-12),
             "reversed range [20,10] maps 20 to the low end");
    MT_CHECK(rgb_near(ms_plot_cmap_value(MS_CMAP_VIRIDIS, 3, 3, 3), ms_plot_cmap_at(MS_CMAP_VIRIDIS, 0.5), 1e-12),
             "flat range shows the middle colour");
    MsRgb miss = ms_plot_missing_color();
    MT_CHECK(rgb_near(ms_plot_cmap_value(MS_CMAP_VIRIDIS, NAN, 0, 1), miss, 0) &&
             rgb_near(ms_plot_cmap_at(MS_CMAP_CIVIDIS, NAN), miss, 0) &&
             rgb_near(ms_plot_cmap_signed(MS_CMAP_BALANCE, NAN, 1), ms_plot_cmap_missing(MS_CMAP_BALANCE), 0) &&
             rgb_near(ms_plot_cmap_value(MS_CMAP_VIRIDIS, 0.5, NAN, 1), miss, 0),
             "NaN values (and a NaN range) are the missing grey");
    MT_CHECK(ms_plot_cmap_from_name("Viridis") == MS_CMAP_VIRIDIS && ms_plot_cmap_from_name("balance") == MS_CMAP_BALANCE &&
             ms_plot_cmap_from_name("jet") == MS_EINVAL && ms_plot_cmap_name(MS_CMAP_COUNT) == NULL,
             "map names");
    float v[6] = {3, NAN, -2, INFINITY, 7, 1};
    MsPlotColorScale s = ms_plot_scale_fit(MS_CMAP_VIRIDIS, v, 6), d = ms_plot_scale_fit(MS_CMAP_BALANCE, v, 6);
    MT_CHECK(s.lo == -2 && s.hi == 7 && d.lo == -7 && d.hi == 7, "scale fit ignores NaN/inf; diverging is symmetric");
}

static void test_diverging(void)
{
    MsRgb centre = ms_plot_cmap_at(MS_CMAP_BALANCE, 0.5);
    MsLab lc = ms_plot_rgb_to_lab(centre);
    MT_CHECK(ms_plot_cmap_is_diverging(MS_CMAP_BALANCE), "balance is diverging");
    MT_CHECK(hypot(lc.a, lc.b) < 1.0 && lc.L > 90, "diverging centre is a neutral near-white (L %.1f, chroma %.2f)", lc.L,
             hypot(lc.a, lc.b));
    MT_CHECK(rgb_near(ms_plot_cmap_value(MS_CMAP_BALANCE, 0, -1, 3), centre, 1e-12) &&
             rgb_near(ms_plot_cmap_signed(MS_CMAP_BALANCE, 0, 5), centre, 1e-12),
             "zero maps to the centre even for an asymmetric range [-1,3]");
    MT_CHECK(rgb_near(ms_plot_cmap_value(MS_CMAP_BALANCE, -3, -1, 3), ms_plot_cmap_at(MS_CMAP_BALANCE, 0), 1e-12) &&
             rgb_near(ms_plot_cmap_value(MS_CMAP_BALANCE, 1.5, -1, 3), ms_plot_cmap_at(MS_CMAP_BALANCE, 0.75), 1e-12),
             "diverging range is symmetric: [-1,3] acts as [-3,3]");
    bool mono = true, sym = true;
    double worst = 0;
    for (int i = 1; i <= 512; i++) {
        double d = i / 1024.0, dp = (i - 1) / 1024.0;
        double ln = ms_plot_rgb_to_lab(ms_plot_cmap_at(MS_CMAP_BALANCE, 0.5 - d)).L;
        double lp = ms_plot_rgb_to_lab(ms_plot_cmap_at(MS_CMAP_BALANCE, 0.5 + d)).L;
        double ln0 = ms_plot_rgb_to_lab(ms_plot_cmap_at(MS_CMAP_BALANCE, 0.5 - dp)).L;
        double lp0 = ms_plot_rgb_to_lab(ms_plot_cmap_at(MS_CMAP_BALANCE, 0.5 + dp)).L;
        if (!(ln < ln0) || !(lp < lp0)) mono = false;
        worst = fmax(worst, fabs(ln - lp));
        if (fabs(ln - lp) > 2.0) sym = false;
    }
    MT_CHECK(mono, "diverging lightness falls monotonically away from the centre on both sides");
    MT_CHECK(sym, "diverging halves match in lightness (max |dL*| %.2f)", worst);
    MsLab neg = ms_plot_rgb_to_lab(ms_plot_cmap_at(MS_CMAP_BALANCE, 0)), pos = ms_plot_rgb_to_lab(ms_plot_cmap_at(MS_CMAP_BALANCE, 1));
    MT_CHECK(neg.b < -25 && pos.a > 25, "negative end is blue (b* %.1f), positive end red (a* %.1f)", neg.b, pos.a);
}

static void test_categorical(void)
{
    MsRgb c[256];
    for (int i = 0; i < 256; i++) c[i] = ms_plot_category_color(i);
    double dmin = 1e9;
    int wi = 0, wj = 0;
    for (int i = 0; i < 128; i++)
        for (int j = i + 1; j < 128; j++) {
            double d = de(c[i], c[j]);
            if (d < dmin) { dmin = d; wi = i; wj = j; }
        }
    MT_CHECK(dmin >= 8.0, "expert colours 0..127 pairwise >= 8 CIEDE2000 apart (closest %d/%d: %.2f)", wi, wj, dmin);
    double dmin20 = 1e9, dmin64 = 1e9;
    for (int i = 0; i < 64; i++)
        for (int j = i + 1; j < 64; j++) {
            double d = de(c[i], c[j]);
            dmin64 = fmin(dmin64, d);
            if (j < 20) dmin20 = fmin(dmin20, d);
        }
    MT_CHECK(dmin20 >= 18.0, "expert colours 0..19 pairwise >= 18 CIEDE2000 apart (%.2f)", dmin20);
    MT_CHECK(dmin64 >= 11.0, "expert colours 0..63 pairwise >= 11 CIEDE2000 apart (%.2f)", dmin64);
    MsRgb miss = ms_plot_missing_color(), white = {1, 1, 1};
    double dmiss = 1e9, dwhite = 1e9;
    for (int i = 0; i < 256; i++) {
        dmiss = fmin(dmiss, de(c[i], miss));
        dwhite = fmin(dwhite, de(c[i], white));
    }
    MT_CHECK(dmiss >= 10 && dwhite >= 10, "no expert colour near the missing grey (%.1f) or the white background (%.1f)",
             dmiss, dwhite);
    for (int m = 0; m < MS_CMAP_COUNT; m++) {
        double dmap = 1e9;
        MsRgb mm = ms_plot_cmap_missing((MsColormap)m);
        MsLab ml = ms_plot_rgb_to_lab(mm);
        for (int i = 0; i <= 1024; i++) dmap = fmin(dmap, de(ms_plot_cmap_at((MsColormap)m, i / 1024.0), mm));
        MT_CHECK(dmap >= 10 && hypot(ml.a, ml.b) < 0.5, "%s: its missing colour is a neutral grey >= 10 CIEDE2000 from every colour of the map (%.1f)",
                 ms_plot_cmap_name((MsColormap)m), dmap);
    }
    bool stable = true, inrange = true;
    double dnext = 1e9;
    for (int64_t i = 0; i < 1000; i++) {
        MsRgb a = ms_plot_category_color(i), b = ms_plot_category_color(i);
        if (!rgb_near(a, b, 0)) stable = false;
        if (a.r < 0 || a.r > 1 || a.g < 0 || a.g > 1 || a.b < 0 || a.b > 1) inrange = false;
        if (i >= 256) dnext = fmin(dnext, de(a, ms_plot_category_color(i + 1)));
    }
    MT_CHECK(stable && inrange, "expert colours are stable and in gamut for ids 0..999");
    MT_CHECK(dnext >= 10, "beyond the table, consecutive ids differ clearly (min %.1f)", dnext);
    MT_CHECK(rgb_near(ms_plot_category_color(-1), miss, 0), "negative id is the missing grey");
    MsRgb yellow = {1, 0.9, 0.2}, purple = {0.27, 0.0, 0.33}, p;
    MT_CHECK(ms_plot_contrast_text(yellow).r == 0 && ms_plot_contrast_text(purple).r == 1, "contrast text black/white");
    MT_CHECK(ms_plot_rgb_parse("#ff8000", &p) == 0 && hex(p) == 0xff8000 && ms_plot_rgb_parse("ff8000", &p) < 0 &&
             ms_plot_rgb_parse("#ff80zz", &p) < 0, "hex colour parsing");
}

/* ---- escaping ---- */

static bool esc_is(const char *in, size_t len, unsigned flags, const char *want)
{
    char *s = ms_plot_token_escape(in, len, flags);
    bool ok = s && strcmp(s, want) == 0;
    if (!ok) mt_diag("escape gave \"%s\", want \"%s\"", s ? s : "(null)", want);
    free(s);
    return ok;
}

static int hexval(char c) { return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1; }

/* Inverse of the escaping (without MS_PLOT_ESC_SPACE); -1 on a malformed escape. */
static long unescape(const char *s, unsigned char *out)
{
    long n = 0;
    while (*s) {
        if (*s != '\\') { out[n++] = (unsigned char)*s++; continue; }
        s++;
        if (*s == '\\') { out[n++] = '\\'; s++; }
        else if (*s == 'n') { out[n++] = '\n'; s++; }
        else if (*s == 't') { out[n++] = '\t'; s++; }
        else if (*s == 'r') { out[n++] = '\r'; s++; }
        else if (*s == 'x') {
            int a = hexval(s[1]), b = a < 0 ? -1 : hexval(s[2]);
            if (b < 0) return -1;
            out[n++] = (unsigned char)(a * 16 + b);
            s += 3;
        } else if (*s == 'u') {
            unsigned cp = 0;
            for (int i = 1; i <= 4; i++) {
                int d = hexval(s[i]);
                if (d < 0) return -1;
                cp = cp * 16 + (unsigned)d;
            }
            if (cp < 0x800) { out[n++] = (unsigned char)(0xC0 | cp >> 6); out[n++] = (unsigned char)(0x80 | (cp & 63)); }
            else { out[n++] = (unsigned char)(0xE0 | cp >> 12); out[n++] = (unsigned char)(0x80 | (cp >> 6 & 63)); out[n++] = (unsigned char)(0x80 | (cp & 63)); }
            s += 5;
        } else return -1;
    }
    return n;
}

/* Valid UTF-8 with no C0/C1 control characters. */
static bool clean_utf8(const unsigned char *s)
{
    while (*s) {
        unsigned c = *s, cp, n;
        if (c < 0x80) { if (c < 0x20 || c == 0x7F) return false; s++; continue; }
        if (c >= 0xC2 && c <= 0xDF) { n = 1; cp = c & 0x1F; }
        else if (c >= 0xE0 && c <= 0xEF) { n = 2; cp = c & 0x0F; }
        else if (c >= 0xF0 && c <= 0xF4) { n = 3; cp = c & 0x07; }
        else return false;
        for (unsigned i = 1; i <= n; i++) {
            if ((s[i] & 0xC0) != 0x80) return false;
            cp = cp << 6 | (s[i] & 0x3F);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)) || (cp >= 0xD800 && cp <= 0xDFFF) ||
            (cp >= 0x80 && cp <= 0x9F))
            return false;
        s += n + 1;
    }
    return true;
}

static void test_escape(void)
{
    MT_CHECK(esc_is("a\nb\tc\r\x07", 7, 0, "a\\nb\\tc\\r\\x07"), "controls: \\n \\t \\r \\x07");
    MT_CHECK(esc_is("a\0b\x1b\x7f", 5, 0, "a\\x00b\\x1B\\x7F"), "NUL, ESC and DEL escaped, nothing dropped");
    MT_CHECK(esc_is("\\n", 2, 0, "\\\\n"), "a literal backslash-n is not mistaken for a newline");
    MT_CHECK(esc_is("\xff\xfe", 2, 0, "\\xFF\\xFE"), "invalid bytes as \\xNN");
    MT_CHECK(esc_is("x\xe4\xb8", 3, 0, "x\\xE4\\xB8"), "truncated 3-byte sequence: every byte kept");
    MT_CHECK(esc_is("\xc0\xaf\xe0\x80\xaf", 5, 0, "\\xC0\\xAF\\xE0\\x80\\xAF"), "overlong forms rejected");
    MT_CHECK(esc_is("\xed\xa0\x80", 3, 0, "\\xED\\xA0\\x80"), "UTF-16 surrogate rejected");
    MT_CHECK(esc_is("\xf4\x90\x80\x80", 4, 0, "\\xF4\\x90\\x80\\x80"), "code point above U+10FFFF rejected");
    const char *ok = "中文 مرحبا e\xcc\x81 \xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd \xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91\xa9";
    MT_CHECK(esc_is(ok, strlen(ok), 0, ok), "CJK, Arabic, combining mark, emoji with modifier and ZWJ pass unchanged");
    MT_CHECK(esc_is("\xc2\x85|\xe2\x80\xae|\xef\xbb\xbf|\xe2\x80\x8b", 14, 0, "\\u0085|\\u202E|\\uFEFF|\\u200B"),
             "C1 control, bidi override, BOM and zero-width space as \\uXXXX");
    MT_CHECK(esc_is(" a b ", 5, MS_PLOT_ESC_SPACE, "\xe2\x90\xa3" "a" "\xe2\x90\xa3" "b" "\xe2\x90\xa3"),
             "MS_PLOT_ESC_SPACE shows spaces as U+2423");
    MT_CHECK(esc_is("", 0, 0, "") && esc_is(NULL, 0, 0, ""), "empty piece");

    /* random bytes: the output is clean UTF-8 and unescapes to the input */
    uint64_t s = 12345;
    unsigned char in[64], back[512];
    bool all = true;
    for (int round = 0; round < 3000 && all; round++) {
        size_t n = (size_t)(round % 40);
        for (size_t i = 0; i < n; i++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            unsigned r = (unsigned)(s >> 33);
            /* bias towards interesting bytes */
            in[i] = (unsigned char)(r % 4 == 0 ? 0x80 + (r >> 8) % 0x80 : r % 4 == 1 ? (r >> 8) % 0x20 : (r >> 8));
        }
        char *e = ms_plot_token_escape((const char *)in, n, 0);
        long m = e ? unescape(e, back) : -1;
        if (!e || !clean_utf8((const unsigned char *)e) || m != (long)n || memcmp(in, back, n) != 0) {
            all = false;
            mt_diag("round %d: escape not clean or not reversible: %s", round, e ? e : "(null)");
        }
        free(e);
    }
    MT_CHECK(all, "3000 random byte strings: escapes are valid visible UTF-8 and reversible (no byte lost)");
}

/* ---- ticks ---- */

static void test_ticks(void)
{
    double v[MS_PLOT_MAX_TICKS], step;
    int n = ms_plot_nice_ticks(0, 100, 6, v, &step);
    MT_CHECK(n == 6 && step == 20 && v[0] == 0 && v[5] == 100, "[0,100] in <= 6 ticks: 0,20..100 (n %d step %g)", n, step);
    n = ms_plot_nice_ticks(0, 1, 5, v, &step);
    MT_CHECK(n == 5 && step == 0.25 && v[4] == 1, "[0,1] in <= 5 ticks: step 0.25 (n %d step %g)", n, step);
    n = ms_plot_nice_ticks(-0.37, 0.37, 8, v, &step);
    bool zero = false;
    for (int i = 0; i < n; i++) zero |= v[i] == 0;
    MT_CHECK(n >= 3 && n <= 8 && zero && v[0] >= -0.37 && v[n - 1] <= 0.37, "symmetric range has a 0 tick (n %d step %g)", n, step);
    bool good = true;
    uint64_t s = 99;
    for (int i = 0; i < 2000; i++) {
        s = s * 6364136223846793005ull + 1;
        double lo = ((double)(s >> 11) / 9007199254740992.0 - 0.5) * pow(10, (int)(s % 13) - 6);
        s = s * 6364136223846793005ull + 1;
        double hi = lo + ((double)(s >> 11) / 9007199254740992.0 + 1e-3) * pow(10, (int)(s % 13) - 6);
        int max = 2 + (int)(s % 12);
        n = ms_plot_nice_ticks(lo, hi, max, v, &step);
        double m = step / pow(10, floor(log10(step) + 1e-12));
        bool nice = fabs(m - 1) < 1e-9 || fabs(m - 2) < 1e-9 || fabs(m - 2.5) < 1e-9 || fabs(m - 5) < 1e-9;
        if (n < 1 || n > max || !nice) good = false;
        for (int k = 0; k < n && good; k++) {
            double eps = (hi - lo) * 1e-9;
            if (v[k] < lo - eps || v[k] > hi + eps) good = false;
            /* rounding of v ~ |v| * 2^-52 limits how exact spacing can be */
            double tol = step * 1e-6 + fabs(v[k]) * 1e-15;
            if (k > 0 && fabs(v[k] - v[k - 1] - step) > tol) good = false;
            if (fabs(v[k] - round(v[k] / step) * step) > tol) good = false;
        }
        if (!good) mt_diag("range [%g, %g] max %d: n %d step %g", lo, hi, max, n, step);
        if (!good) break;
    }
    MT_CHECK(good, "2000 random ranges: <= max ticks, inside the range, on multiples of a 1/2/2.5/5 x 10^k step");
    MT_CHECK(ms_plot_nice_ticks(1, 1, 5, v, &step) == 0 && ms_plot_nice_ticks(0, NAN, 5, v, &step) == 0,
             "empty or NaN range gives no ticks");
}

/* ---- hit testing ---- */

static void test_grid(void)
{
    MsPlotGridMap m = {.rect = {10, 20, 200, 100}, .rows = 4, .cols = 8, .row0 = 0, .row1 = 4, .col0 = 0, .col1 = 8};
    int64_t r = -1, c = -1;
    MT_CHECK(ms_plot_grid_hit(&m, 10, 20, &r, &c) && r == 0 && c == 0, "top-left corner is cell (0,0)");
    MT_CHECK(ms_plot_grid_hit(&m, 209.9, 119.9, &r, &c) && r == 3 && c == 7, "bottom-right is cell (3,7)");
    MT_CHECK(!ms_plot_grid_hit(&m, 9.9, 50, &r, &c) && !ms_plot_grid_hit(&m, 210, 50, &r, &c) &&
             !ms_plot_grid_hit(&m, 50, 120, &r, &c), "points outside the rect miss");
    MsPlotRect cr;
    MT_CHECK(ms_plot_grid_cell_rect(&m, 2, 5, &cr) && cr.x == 135 && cr.y == 70 && cr.w == 25 && cr.h == 25,
             "cell (2,5) is at 135,70 25x25");
    bool round_trip = true;
    for (int64_t i = 0; i < 4; i++)
        for (int64_t j = 0; j < 8; j++) {
            ms_plot_grid_cell_rect(&m, i, j, &cr);
            if (!ms_plot_grid_hit(&m, cr.x + cr.w / 2, cr.y + cr.h / 2, &r, &c) || r != i || c != j) round_trip = false;
        }
    MT_CHECK(round_trip, "cell -> rect -> centre -> cell round trip");
    /* zoomed and panned window */
    MsPlotGridMap z = m;
    z.col0 = 2.5;
    z.col1 = 6.5;
    z.row0 = 1;
    z.row1 = 3;
    MT_CHECK(ms_plot_grid_hit(&z, 10, 20, &r, &c) && r == 1 && c == 2, "zoomed: left edge is half of column 2, row 1");
    MT_CHECK(ms_plot_grid_hit(&z, 10 + 25, 20, &r, &c) && c == 3, "zoomed: column 3 starts half a cell (25 px) in");
    MT_CHECK(!ms_plot_grid_cell_rect(&z, 0, 0, &cr) && ms_plot_grid_cell_rect(&z, 1, 2, &cr) && cr.x == -15 && cr.w == 50,
             "zoomed: (0,0) off screen, (1,2) partly visible at x -15 w 50");
    round_trip = true;
    for (int64_t i = 1; i < 3; i++)
        for (int64_t j = 3; j < 6; j++) {
            ms_plot_grid_cell_rect(&z, i, j, &cr);
            if (!ms_plot_grid_hit(&z, cr.x + cr.w / 2, cr.y + cr.h / 2, &r, &c) || r != i || c != j) round_trip = false;
        }
    MT_CHECK(round_trip, "zoomed round trip");
    MsPlotGridMap f = m;
    f.flip_rows = f.flip_cols = true;
    MT_CHECK(ms_plot_grid_hit(&f, 10, 20, &r, &c) && r == 3 && c == 7, "flipped: top-left is the last cell");
    MsPlotGridMap past = m;
    past.col1 = 12;
    MT_CHECK(!ms_plot_grid_hit(&past, 205, 50, &r, &c), "window beyond the last column: no cell there");
    MsPlotGridMap bad = m;
    bad.col1 = bad.col0;
    MT_CHECK(!ms_plot_grid_hit(&bad, 50, 50, &r, &c) && !ms_plot_grid_cell_rect(&bad, 0, 0, &cr), "empty window: no hits");

    double lo = 0, hi = 100;
    ms_plot_range_zoom(&lo, &hi, 25, 0.5, 1, 0, 100);
    MT_CHECK(lo == 12.5 && hi == 62.5, "zoom x0.5 about 25 keeps 25 in place: [%g, %g]", lo, hi);
    ms_plot_range_zoom(&lo, &hi, 60, 0.001, 4, 0, 100);
    MT_CHECK(fabs(hi - lo - 4) < 1e-9 && lo <= 60 && hi >= 60, "zoom stops at the minimum span: [%g, %g]", lo, hi);
    ms_plot_range_zoom(&lo, &hi, 60, 1000, 4, 0, 100);
    MT_CHECK(lo == 0 && hi == 100, "zoom out stops at the limits: [%g, %g]", lo, hi);
    lo = 10;
    hi = 30;
    ms_plot_range_pan(&lo, &hi, 200, 0, 100);
    MT_CHECK(lo == 80 && hi == 100, "pan stops at the right limit keeping the span: [%g, %g]", lo, hi);
    ms_plot_range_pan(&lo, &hi, -500, 0, 100);
    MT_CHECK(lo == 0 && hi == 20, "pan stops at the left limit: [%g, %g]", lo, hi);

    MsPlotRect rs[3] = {{0, 0, 10, 10}, {5, 5, 10, 10}, {30, 0, 5, 5}};
    MT_CHECK(ms_plot_rect_hit(rs, 3, 1, 1) == 0 && ms_plot_rect_hit(rs, 3, 7, 7) == 1 && ms_plot_rect_hit(rs, 3, 32, 2) == 2 &&
             ms_plot_rect_hit(rs, 3, 20, 20) == -1 && ms_plot_rect_hit(rs, 3, 10, 1) == -1 && ms_plot_rect_hit(NULL, 0, 1, 1) == -1,
             "rectangle hits: the topmost (last) wins, right/bottom edges exclusive, -1 for none");
}

int main(void)
{
    test_deltae();
    test_sequential();
    test_diverging();
    test_categorical();
    test_escape();
    test_ticks();
    test_grid();
    ms_plot_release_caches();
    return mt_done();
}
