/* superexperts.c — METHODS.md §4.2: the down_proj outlier rule. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "analysis.h"

static int cmp_asc_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

double ms_percentile(const double *x, int n, double q)
{
    if (!x || n < 1 || !(q >= 0 && q <= 100)) return NAN;
    double *s = malloc((size_t)n * sizeof *s);
    if (!s) return NAN;
    memcpy(s, x, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, cmp_asc_double);
    double pos = q / 100.0 * (n - 1);
    int lo = (int)floor(pos);
    double v = lo + 1 < n ? s[lo] + (pos - lo) * (s[lo + 1] - s[lo]) : s[n - 1];
    free(s);
    return v;
}

long ms_round_half_even(double x)
{
    double f = floor(x), d = x - f;
    if (d > 0.5) return (long)f + 1;
    if (d < 0.5) return (long)f;
    return ((long)f % 2 == 0) ? (long)f : (long)f + 1;
}

int ms_superexperts(const double *values, const int *layer, int n, int n_layers,
                    double include_frac, MsSeRule rule, bool *is_se, MsSeInfo *info)
{
    if (!values || !layer || !is_se || n < 0 || n_layers < 1 ||
        !(include_frac > 0 && include_frac <= 1))
        return MS_EINVAL;
    MsSeInfo inf;
    memset(&inf, 0, sizeof inf);
    inf.layer_cut = (int)ms_round_half_even(include_frac * n_layers);
    double *cand = malloc(((size_t)n + 1) * sizeof *cand);
    if (!cand) return MS_ENOMEM;
    int nc = 0;
    double sum = 0, mx = -INFINITY;
    for (int i = 0; i < n; i++) {
        is_se[i] = false;
        if (layer[i] < inf.layer_cut) {
            cand[nc++] = values[i];
            sum += values[i];
            if (values[i] > mx) mx = values[i];
        }
    }
    inf.n_candidates = nc;
    if (nc == 0) {
        free(cand);
        inf.p995 = inf.max_div10 = inf.threshold = inf.mean = inf.std = inf.max = NAN;
        if (info) *info = inf;
        return 0;
    }
    inf.mean = sum / nc;
    double var = 0;
    for (int i = 0; i < nc; i++) var += (cand[i] - inf.mean) * (cand[i] - inf.mean);
    inf.std = sqrt(var / nc);
    inf.max = mx;
    inf.p995 = ms_percentile(cand, nc, 99.5);
    inf.max_div10 = floor(mx / 10.0);   /* Python a_max // 10 */
    free(cand);
    switch (rule) {
    case MS_SE_PAPER: inf.threshold = MS_MAX(inf.p995, inf.max_div10); break;
    case MS_SE_P995: inf.threshold = inf.p995; break;
    case MS_SE_MEAN3SD: inf.threshold = inf.mean + 3 * inf.std; break;
    case MS_SE_MEAN50: inf.threshold = 50 * inf.mean; break;
    default: return MS_EINVAL;
    }
    int cnt = 0;
    for (int i = 0; i < n; i++)
        if (layer[i] < inf.layer_cut && values[i] > inf.threshold) {
            is_se[i] = true;
            cnt++;
        }
    if (info) *info = inf;
    return cnt;
}
