/* view-matrix.c — the E×E matrix figure of coactivation and affinity: the
 * display values and colour scale of each metric, the row/column order
 * (id, load, or an average-linkage clustering leaf order), the strongest
 * pairs listed beside the heat map, and one layout shared by draw and hit. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "view-matrix.h"

enum { VB_MIN_SUPPORT = 5, VB_MAX_E = 4096 };

/* ---------------------------------------------------------- clustering */

static double sqdist(const double *a, const double *b, int dim)
{
    double s = 0;
    for (int k = 0; k < dim; k++) {
        double x = isfinite(a[k]) ? a[k] : 0, y = isfinite(b[k]) ? b[k] : 0, d = x - y;
        s += d * d;
    }
    return s;
}

int vb_cluster_order(const double *x, int n, int dim, int *order, MsError *err)
{
    if (n < 1 || dim < 1) return ms_error_set(err, MS_EINVAL, "clustering needs items and features (n %d, dim %d)", n, dim);
    size_t nn = (size_t)n;
    double *D = malloc(sizeof *D * nn * nn), *nnd = malloc(sizeof *nnd * nn);
    int *nb = malloc(sizeof *nb * nn), *size = malloc(sizeof *size * nn);
    int *head = malloc(sizeof *head * nn), *tail = malloc(sizeof *tail * nn);
    int *next = malloc(sizeof *next * nn), *prev = malloc(sizeof *prev * nn);
    bool *alive = malloc(sizeof *alive * nn);
    double *L = malloc(sizeof *L * nn * nn);   /* leaf-to-leaf distances, kept for the end choice */
    int rc = 0;
    if (!D || !nnd || !nb || !size || !head || !tail || !next || !prev || !alive || !L) {
        rc = ms_error_set(err, MS_ENOMEM, "out of memory clustering %d items", n);
        goto out;
    }
    /* leaf distances; clusters are doubly linked lists of leaves */
    for (int i = 0; i < n; i++) {
        D[(size_t)i * nn + i] = 0;
        for (int j = i + 1; j < n; j++)
            D[(size_t)i * nn + j] = D[(size_t)j * nn + i] = sqrt(sqdist(x + (size_t)i * dim, x + (size_t)j * dim, dim));
        size[i] = 1;
        head[i] = tail[i] = i;
        next[i] = prev[i] = -1;
        alive[i] = true;
    }
    memcpy(L, D, sizeof *L * nn * nn);
    /* nearest neighbour of each cluster: smallest distance, then smallest index */
#define NEAREST(i)                                                             \
    do {                                                                       \
        nb[i] = -1;                                                            \
        nnd[i] = INFINITY;                                                     \
        for (int j_ = 0; j_ < n; j_++)                                         \
            if (j_ != (i) && alive[j_] && D[(size_t)(i) * nn + j_] < nnd[i]) { \
                nnd[i] = D[(size_t)(i) * nn + j_];                             \
                nb[i] = j_;                                                    \
            }                                                                  \
    } while (0)
    for (int i = 0; i < n; i++) NEAREST(i);
    for (int step = 0; step < n - 1; step++) {
        int a = -1;
        for (int i = 0; i < n; i++)
            if (alive[i] && nb[i] >= 0 && (a < 0 || nnd[i] < nnd[a])) a = i;
        int b = nb[a];
        if (b < a) {
            int t = a;
            a = b;
            b = t;
        }
        /* a (the smaller index) absorbs b; choose the orientation whose
         * touching end leaves are closest: a b, a rev(b), rev(a) b, rev(a) rev(b) */
        double c[4] = {
            L[(size_t)tail[a] * nn + head[b]], L[(size_t)tail[a] * nn + tail[b]],
            L[(size_t)head[a] * nn + head[b]], L[(size_t)head[a] * nn + tail[b]],
        };
        int best = 0;
        for (int k = 1; k < 4; k++)
            if (c[k] < c[best]) best = k;
        if (best >= 2) {   /* reverse a */
            for (int v = head[a]; v >= 0;) {
                int nx = next[v];
                next[v] = prev[v];
                prev[v] = nx;
                v = nx;
            }
            int t = head[a];
            head[a] = tail[a];
            tail[a] = t;
        }
        if (best == 1 || best == 3) {   /* reverse b */
            for (int v = head[b]; v >= 0;) {
                int nx = next[v];
                next[v] = prev[v];
                prev[v] = nx;
                v = nx;
            }
            int t = head[b];
            head[b] = tail[b];
            tail[b] = t;
        }
        next[tail[a]] = head[b];
        prev[head[b]] = tail[a];
        tail[a] = tail[b];
        /* average linkage (Lance-Williams) */
        for (int k = 0; k < n; k++) {
            if (!alive[k] || k == a || k == b) continue;
            double d = (size[a] * D[(size_t)a * nn + k] + size[b] * D[(size_t)b * nn + k]) / (size[a] + size[b]);
            D[(size_t)a * nn + k] = D[(size_t)k * nn + a] = d;
        }
        size[a] += size[b];
        alive[b] = false;
        for (int k = 0; k < n; k++) {
            if (!alive[k] || k == a) continue;
            if (nb[k] == a || nb[k] == b) {
                NEAREST(k);
            } else {
                double d = D[(size_t)k * nn + a];
                if (d < nnd[k] || (d == nnd[k] && a < nb[k])) {
                    nnd[k] = d;
                    nb[k] = a;
                }
            }
        }
        NEAREST(a);
    }
#undef NEAREST
    {
        int root = -1;
        for (int i = 0; i < n && root < 0; i++)
            if (alive[i]) root = i;
        int o = 0;
        for (int v = head[root]; v >= 0 && o < n; v = next[v]) order[o++] = v;
        if (o != n) rc = ms_error_set(err, MS_EINTERNAL, "clustering lost items (%d of %d)", o, n);
    }
out:
    free(L);
    free(D);
    free(nnd);
    free(nb);
    free(size);
    free(head);
    free(tail);
    free(next);
    free(prev);
    free(alive);
    return rc;
}

/* ---------------------------------------------------------------- model */

VbMatrix *vb_matrix_new(VbMatKind kind, VbMetric metric, int E, MsError *err)
{
    if (E < 1 || E > VB_MAX_E) {
        ms_error_set(err, MS_EUNSUPPORTED, "a matrix view shows 1..%d experts (this model has %d)", VB_MAX_E, E);
        return NULL;
    }
    VbMatrix *m = calloc(1, sizeof *m);
    if (!m) {
        ms_error_set(err, MS_ENOMEM, "out of memory");
        return NULL;
    }
    size_t EE = (size_t)E * E;
    m->kind = kind;
    m->metric = metric;
    m->E = E;
    m->n_tokens = -1;
    snprintf(m->role, sizeof m->role, "all");
    m->count = calloc(EE, sizeof(double));
    m->lift = calloc(EE, sizeof(double));
    m->jaccard = kind == VB_MAT_COACT ? calloc(EE, sizeof(double)) : NULL;
    m->Q = kind == VB_MAT_AFF ? calloc(EE, sizeof(double)) : NULL;
    m->P = kind == VB_MAT_AFF ? calloc(EE, sizeof(double)) : NULL;
    m->load_r = calloc((size_t)E, sizeof(double));
    m->share_c = calloc((size_t)E, sizeof(double));
    m->order = calloc((size_t)E, sizeof(int));
    m->pos = calloc((size_t)E, sizeof(int));
    bool ok = m->count && m->lift && m->load_r && m->share_c && m->order && m->pos &&
              (kind == VB_MAT_COACT ? m->jaccard != NULL : m->Q && m->P);
    if (!ok) {
        vb_matrix_free(m);
        ms_error_set(err, MS_ENOMEM, "out of memory");
        return NULL;
    }
    for (int e = 0; e < E; e++) m->load_r[e] = m->share_c[e] = NAN;
    return m;
}

void vb_matrix_free(void *model)
{
    VbMatrix *m = model;
    if (!m) return;
    free(m->count);
    free(m->lift);
    free(m->jaccard);
    free(m->Q);
    free(m->P);
    free(m->load_r);
    free(m->share_c);
    free(m->order);
    free(m->pos);
    for (int k = 0; k < 3; k++) {
        free(m->cells[k]);
        free(m->top[k]);
    }
    free(m);
}

int vb_matrix_metric(VbMatKind kind, MsViewColorBy c, VbMetric *out, MsError *err)
{
    if (c == MS_VIEW_COLOR_DEFAULT) {
        *out = kind == VB_MAT_COACT ? VB_METRIC_LOGLIFT : VB_METRIC_Q;
        return 0;
    }
    if (c == MS_VIEW_COLOR_LIFT) {
        *out = VB_METRIC_LOGLIFT;
        return 0;
    }
    if (c == MS_VIEW_COLOR_JACCARD && kind == VB_MAT_COACT) {
        *out = VB_METRIC_JACCARD;
        return 0;
    }
    return ms_error_set(err, MS_EINVAL, "--color-by %s: %s colours by %s", ms_view_color_name(c),
                        kind == VB_MAT_COACT ? "coactivation" : "affinity",
                        kind == VB_MAT_COACT ? "lift (default) or jaccard" : "Q (default) or lift");
}

static bool metric_of_kind(const VbMatrix *m, VbMetric k)
{
    return m->kind == VB_MAT_COACT ? k == VB_METRIC_LOGLIFT || k == VB_METRIC_JACCARD
                                   : k == VB_METRIC_Q || k == VB_METRIC_LOGLIFT;
}

/* Display value of cell (i, j) under metric k, by expert ids; −INFINITY
 * for a log lift of 0 (the pair never occurs), clamped later. */
static double disp_value(const VbMatrix *m, VbMetric k, int i, int j)
{
    size_t ix = (size_t)i * m->E + j;
    if (m->kind == VB_MAT_COACT && i == j) return NAN;   /* an expert with itself */
    switch (k) {
    case VB_METRIC_LOGLIFT: {
        double l = m->lift[ix];
        if (!isfinite(l) || l < 0) return NAN;
        return l > 0 ? log2(l) : -INFINITY;
    }
    case VB_METRIC_JACCARD:
        return m->jaccard[ix];
    case VB_METRIC_Q:
        return m->Q[ix];
    }
    return NAN;
}

static int pair_cmp(const void *pa, const void *pb)
{
    const VbPair *a = pa, *b = pb;
    if (a->value != b->value) return a->value > b->value ? -1 : 1;
    if (a->count != b->count) return a->count > b->count ? -1 : 1;
    if (a->i != b->i) return a->i < b->i ? -1 : 1;
    return (a->j > b->j) - (a->j < b->j);
}

/* The strongest pairs under metric k: coactivation pairs i < j, by lift
 * (N_ij >= 5, so a pair seen once does not lead) or Jaccard; affinity
 * transitions by count C (the analysis's top paths), or by lift with
 * C >= 5. */
static int make_top(VbMatrix *m, VbMetric k, int top)
{
    int E = m->E;
    size_t cap = (size_t)E * E, n = 0;
    VbPair *all = malloc(sizeof *all * (cap ? cap : 1));
    if (!all) return MS_ENOMEM;
    for (int i = 0; i < E; i++)
        for (int j = m->kind == VB_MAT_COACT ? i + 1 : 0; j < E; j++) {
            size_t ix = (size_t)i * E + j;
            double c = m->count[ix], v;
            if (!(c > 0)) continue;
            if (k == VB_METRIC_Q) {
                v = c;
            } else if (k == VB_METRIC_JACCARD) {
                v = m->jaccard[ix];
            } else {
                if (c < VB_MIN_SUPPORT) continue;
                v = m->lift[ix];
            }
            if (!isfinite(v)) continue;
            all[n++] = (VbPair){ i, j, v, c, k == VB_METRIC_Q ? m->Q[ix] : v };
        }
    qsort(all, n, sizeof *all, pair_cmp);
    int keep = (int)(n < (size_t)top ? n : (size_t)top);
    m->top[k] = realloc(all, sizeof *all * (keep ? (size_t)keep : 1));
    if (!m->top[k]) {
        free(all);
        return MS_ENOMEM;
    }
    m->n_top[k] = keep;
    return 0;
}

static int order_cmp_load(const void *pa, const void *pb, void *user)
{
    const double *load = user;
    int a = *(const int *)pa, b = *(const int *)pb;
    double la = isfinite(load[a]) ? load[a] : -1, lb = isfinite(load[b]) ? load[b] : -1;
    if (la != lb) return la > lb ? -1 : 1;
    return (a > b) - (a < b);
}

int vb_matrix_finish(VbMatrix *m, const char *order, int top, MsError *err)
{
    int E = m->E;
    size_t EE = (size_t)E * E;
    if (top <= 0) top = 10;
    if (!order) order = "id";
    if (strcmp(order, "id") && strcmp(order, "load") && strcmp(order, "cluster"))
        return ms_error_set(err, MS_EINVAL, "--order must be id, load or cluster (got '%s')", order);
    snprintf(m->order_name, sizeof m->order_name, "%s", order);
    double *byid[3] = { NULL, NULL, NULL };
    int rc = 0;
    for (int k = 0; k < 3 && rc == 0; k++) {
        if (!metric_of_kind(m, (VbMetric)k)) continue;
        byid[k] = malloc(sizeof(double) * EE);
        m->cells[k] = malloc(sizeof(float) * EE);
        if (!byid[k] || !m->cells[k]) {
            rc = ms_error_set(err, MS_ENOMEM, "out of memory");
            break;
        }
        double mx = 0;
        bool missing = false;
        for (int i = 0; i < E; i++)
            for (int j = 0; j < E; j++) {
                double v = disp_value(m, (VbMetric)k, i, j);
                byid[k][(size_t)i * E + j] = v;
                if (isnan(v)) missing = true;
                else if (isfinite(v) && fabs(v) > mx) mx = fabs(v);
            }
        if (!(mx > 0)) mx = 1;
        /* never-together pairs (log lift −inf) show at the negative end */
        for (size_t q = 0; q < EE; q++)
            if (isinf(byid[k][q])) byid[k][q] = byid[k][q] < 0 ? -mx : mx;
        m->has_missing[k] = missing;
        m->scale[k] = k == VB_METRIC_LOGLIFT ? (MsPlotColorScale){ MS_CMAP_BALANCE, -mx, mx }
                                             : (MsPlotColorScale){ MS_CMAP_VIRIDIS, 0, mx };
        if (make_top(m, (VbMetric)k, top) < 0) rc = ms_error_set(err, MS_ENOMEM, "out of memory");
    }
    if (rc == 0) {
        for (int e = 0; e < E; e++) m->order[e] = e;
        if (!strcmp(order, "load")) {
            qsort_r(m->order, (size_t)E, sizeof(int), order_cmp_load, m->load_r);
        } else if (!strcmp(order, "cluster")) {
            /* features: coactivation, the expert's row (its own cell at the top
             * of the scale: an expert is most like itself); affinity, its row
             * at `from` and its column at `to`, so one order serves both axes */
            const double *v = byid[m->metric];
            double top_v = m->scale[m->metric].hi;
            int dim = m->kind == VB_MAT_COACT ? E : 2 * E;
            double *x = malloc(sizeof(double) * (size_t)E * dim);
            if (!x) rc = ms_error_set(err, MS_ENOMEM, "out of memory");
            for (int i = 0; x && i < E; i++) {
                double *f = x + (size_t)i * dim;
                for (int j = 0; j < E; j++) {
                    f[j] = m->kind == VB_MAT_COACT && i == j ? top_v : v[(size_t)i * E + j];
                    if (m->kind == VB_MAT_AFF) f[E + j] = v[(size_t)j * E + i];
                }
            }
            if (x) rc = vb_cluster_order(x, E, dim, m->order, err);
            free(x);
        }
    }
    if (rc == 0) {
        for (int r = 0; r < E; r++) m->pos[m->order[r]] = r;
        for (int k = 0; k < 3; k++) {
            if (!byid[k]) continue;
            for (int r = 0; r < E; r++)
                for (int c = 0; c < E; c++)
                    m->cells[k][(size_t)r * E + c] = (float)byid[k][(size_t)m->order[r] * E + m->order[c]];
        }
    }
    for (int k = 0; k < 3; k++) free(byid[k]);
    return rc;
}

/* --------------------------------------------------------------- layout */

typedef struct {
    VbMetric k;
    MsPlotFrame f;
    MsPlotColorbar cb;
    MsPlotGeom g;
    char title[256], xt[160], yt[160], cbt[128], head[128];
    double dx;                  /* the frame and list are drawn shifted right by dx (centred) */
    MsPlotRect list;            /* the list block (w = 0: no list), in frame coordinates */
    double row_h, head_h, sw, pad, name_w;
    int shown;                  /* list entries drawn */
    bool more;                  /* a "+N more" line after them */
} MatGeom;

static const char *axis_label(void *user, int64_t i, char *buf, size_t size)
{
    const VbMatrix *m = user;
    if (i < 0 || i >= m->E) return NULL;
    snprintf(buf, size, "%d", m->order[i]);
    return buf;
}

static VbMetric state_metric(const VbMatrix *m, const MsViewState *s)
{
    VbMetric k;
    if (s && s->color_by != MS_VIEW_COLOR_DEFAULT && vb_matrix_metric(m->kind, s->color_by, &k, NULL) == 0)
        return k;
    return m->metric;
}

static const char *arrow(const VbMatrix *m) { return m->kind == VB_MAT_COACT ? " \xE2\x86\x94 " : " \xE2\x86\x92 "; }

static void entry_texts(const VbMatrix *m, VbMetric k, const VbPair *p, char *name, size_t ns, char *val,
                        size_t vs)
{
    char c[48];
    vb_fmt_count(p->count, c, sizeof c);
    snprintf(name, ns, "E%d%sE%d", p->i, arrow(m), p->j);
    if (k == VB_METRIC_Q) snprintf(val, vs, "%s (%.2f)", c, p->q);
    else if (k == VB_METRIC_JACCARD) snprintf(val, vs, "%.3f (%s)", p->value, c);
    else snprintf(val, vs, "\xC3\x97%.2f (%s)", p->value, c);
}

static void list_head(const VbMatrix *m, VbMetric k, char *buf, size_t size)
{
    if (m->kind == VB_MAT_AFF && k == VB_METRIC_Q) snprintf(buf, size, "Top paths: tokens (Q)");
    else if (k == VB_METRIC_JACCARD) snprintf(buf, size, "Top pairs: Jaccard (tokens)");
    else snprintf(buf, size, "Top %s: lift (tokens)", m->kind == VB_MAT_AFF ? "paths" : "pairs");
}

static void texts(const VbMatrix *m, VbMetric k, const MsViewState *s, MatGeom *mg)
{
    if (s && s->title) snprintf(mg->title, sizeof mg->title, "%s", s->title);
    else if (m->kind == VB_MAT_COACT) snprintf(mg->title, sizeof mg->title, "Expert co-activation, layer %d", m->from);
    else snprintf(mg->title, sizeof mg->title, "Expert affinity, layer %d \xE2\x86\x92 %d", m->from, m->to);
    if (!(s && s->title) && strcmp(m->role, "all")) {
        size_t n = strlen(mg->title);
        snprintf(mg->title + n, sizeof mg->title - n, " (%s tokens)", m->role);
    }
    const char *ord = !strcmp(m->order_name, "id") ? "" : !strcmp(m->order_name, "load") ? ", by load" : ", clustered";
    if (m->kind == VB_MAT_COACT) {
        snprintf(mg->xt, sizeof mg->xt, "Expert%s", ord);
        snprintf(mg->yt, sizeof mg->yt, "Expert (layer %d)", m->from);
    } else {
        snprintf(mg->xt, sizeof mg->xt, "Expert at layer %d%s", m->to, ord);
        snprintf(mg->yt, sizeof mg->yt, "Expert at layer %d", m->from);
    }
    if (k == VB_METRIC_LOGLIFT)
        snprintf(mg->cbt, sizeof mg->cbt, m->kind == VB_MAT_COACT ? "log\xE2\x82\x82 lift (0 = independent)"
                                                                  : "log\xE2\x82\x82 lift Q/q (0 = independent)");
    else if (k == VB_METRIC_JACCARD)
        snprintf(mg->cbt, sizeof mg->cbt, "Jaccard index");
    else
        snprintf(mg->cbt, sizeof mg->cbt, "Q: P(j | i), top-k, row-normalised");
    list_head(m, k, mg->head, sizeof mg->head);
}

static int frame_layout(const VbMatrix *m, const MsViewState *s, MatGeom *mg, double w, double h, MsError *err)
{
    double E = m->E;
    memset(&mg->f, 0, sizeof mg->f);
    mg->cb = (MsPlotColorbar){ .scale = m->scale[mg->k], .title = mg->cbt, .show_missing = m->has_missing[mg->k] };
    mg->f.title = mg->title;
    mg->f.style = s ? &s->style : NULL;
    mg->f.colorbar = &mg->cb;
    mg->f.x = (MsPlotAxis){ .kind = MS_PLOT_AXIS_CATEGORY, .title = mg->xt, .lo = 0, .hi = E, .count = m->E,
                            .label = axis_label, .label_user = (void *)m };
    mg->f.y = mg->f.x;
    mg->f.y.title = mg->yt;
    if (s && s->x1 > s->x0) {
        mg->f.x.lo = fmax(0, s->x0);
        mg->f.x.hi = fmin(E, s->x1);
    }
    if (s && s->y1 > s->y0) {
        mg->f.y.lo = fmax(0, s->y0);
        mg->f.y.hi = fmin(E, s->y1);
    }
    if (!(mg->f.x.hi > mg->f.x.lo)) mg->f.x.lo = 0, mg->f.x.hi = E;
    if (!(mg->f.y.hi > mg->f.y.lo)) mg->f.y.lo = 0, mg->f.y.hi = E;
    return ms_plot_layout(&mg->f, w, h, &mg->g, err);
}

/* Layout of the whole figure: the frame (square cells where the shape
 * allows) in the left part, the list of strongest pairs at the right. */
static int mat_layout(const VbMatrix *m, const MsViewState *s, double W, double H, MatGeom *mg, MsError *err)
{
    memset(mg, 0, sizeof *mg);
    mg->k = state_metric(m, s);
    texts(m, mg->k, s, mg);
    MsPlotText *t = ms_plot_text_new(s ? &s->style : NULL);
    if (!t) return ms_error_set(err, MS_ENOMEM, "out of memory");
    mg->pad = ms_plot_text_pad(t);
    MsPlotTextSize sz;
    ms_plot_text_measure(t, MS_PLOT_ROLE_TICK, "0Ag", 0, &sz);
    mg->row_h = ceil(sz.height * 1.3);
    mg->sw = round(sz.height * 0.7);
    ms_plot_text_measure(t, MS_PLOT_ROLE_LABEL, mg->head, 0, &sz);
    mg->head_h = ceil(sz.height + mg->pad * 0.5);
    double head_w = sz.width;
    /* list width from its widest entry */
    double name_w = 0, val_w = 0;
    int n = m->n_top[mg->k];
    for (int i = 0; i < n; i++) {
        char a[64], b[96];
        entry_texts(m, mg->k, &m->top[mg->k][i], a, sizeof a, b, sizeof b);
        ms_plot_text_measure(t, MS_PLOT_ROLE_TICK, a, 0, &sz);
        name_w = fmax(name_w, sz.width);
        ms_plot_text_measure(t, MS_PLOT_ROLE_TICK, b, 0, &sz);
        val_w = fmax(val_w, sz.width);
    }
    ms_plot_text_free(t);
    mg->name_w = name_w;
    double list_w = n > 0 ? ceil(fmax(head_w, mg->sw * 2 + mg->pad * 0.8 + name_w + mg->pad + val_w) + mg->pad * 2) : 0;
    if (list_w > W * 0.4) list_w = 0;   /* too narrow a figure for the list */
    double W1 = W - list_w;
    int rc = frame_layout(m, s, mg, W1, H, err);
    if (rc < 0 && list_w > 0) {        /* try without the list */
        list_w = 0;
        W1 = W;
        rc = frame_layout(m, s, mg, W1, H, err);
    }
    if (rc < 0) return rc;
    /* square cells: give surplus width to the list side */
    double xs = mg->f.x.hi - mg->f.x.lo, ys = mg->f.y.hi - mg->f.y.lo;
    double want = mg->g.plot.h * xs / ys;
    if (mg->g.plot.w > want + 1) {
        W1 -= floor(mg->g.plot.w - want);
        if ((rc = frame_layout(m, s, mg, W1, H, err)) < 0) return rc;
    }
    mg->dx = fmax(0, floor((W - W1 - list_w) / 2));
    if (list_w > 0) {
        mg->list = (MsPlotRect){ W1, mg->g.plot.y, list_w - mg->pad, mg->g.plot.h };
        int rows = (int)floor((mg->list.h - mg->head_h) / mg->row_h);
        if (rows < 1) rows = 0;
        mg->shown = n <= rows ? n : rows > 0 ? rows - 1 : 0;
        mg->more = mg->shown < n && rows > 0;
    }
    return 0;
}

/* ---------------------------------------------------------------- draw */

static void rgb(cairo_t *cr, MsRgb c) { cairo_set_source_rgb(cr, c.r, c.g, c.b); }

static MsPlotRect entry_rect(const MatGeom *mg, int i)
{
    return (MsPlotRect){ mg->list.x, mg->list.y + mg->head_h + i * mg->row_h, mg->list.w, mg->row_h };
}

static bool sel_row(const VbMatrix *m, const MsViewState *s)
{
    return s && s->sel_expert >= 0 && s->sel_expert < m->E && (s->sel_layer < 0 || s->sel_layer == m->from);
}

static bool sel_col(const VbMatrix *m, const MsViewState *s)
{
    return s && s->sel_expert >= 0 && s->sel_expert < m->E && (s->sel_layer < 0 || s->sel_layer == m->to);
}

int vb_matrix_draw(cairo_t *cr, double width, double height, const void *model, const MsViewState *s,
                   MsError *err)
{
    const VbMatrix *m = model;
    MatGeom mg;
    int rc = mat_layout(m, s, width, height, &mg, err);
    if (rc < 0) return rc;
    cairo_save(cr);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    cairo_translate(cr, mg.dx, 0);
    ms_plot_draw_back(cr, &mg.f, &mg.g);
    MsPlotGridMap gm = ms_plot_grid_map(&mg.g, m->E, m->E);
    MsPlotHeatmap hm = { .rows = m->E, .cols = m->E, .values = m->cells[mg.k], .scale = m->scale[mg.k] };
    if ((rc = ms_plot_heatmap_draw(cr, &gm, &hm, err)) < 0) {
        cairo_restore(cr);
        return rc;
    }

    /* linked selection: the expert's row (at `from`) and column (at `to`) */
    double lw = fmax(1.0, round(mg.pad / 4.0));
    cairo_save(cr);
    cairo_rectangle(cr, mg.g.plot.x, mg.g.plot.y, mg.g.plot.w, mg.g.plot.h);
    cairo_clip(cr);
    cairo_set_line_width(cr, lw);
    MsPlotRect a, b;
    if (sel_row(m, s)) {
        int r = m->pos[s->sel_expert];
        ms_plot_grid_cell_rect(&gm, r, 0, &a);
        ms_plot_grid_cell_rect(&gm, r, m->E - 1, &b);
        double x0 = fmin(a.x, b.x), x1 = fmax(a.x + a.w, b.x + b.w);
        cairo_set_source_rgb(cr, 0, 0, 0);
        cairo_rectangle(cr, x0 + lw / 2, a.y + lw / 2, x1 - x0 - lw, a.h - lw);
        cairo_stroke(cr);
    }
    if (sel_col(m, s)) {
        int c = m->pos[s->sel_expert];
        ms_plot_grid_cell_rect(&gm, 0, c, &a);
        ms_plot_grid_cell_rect(&gm, m->E - 1, c, &b);
        double y0 = fmin(a.y, b.y), y1 = fmax(a.y + a.h, b.y + b.h);
        cairo_set_source_rgb(cr, 0, 0, 0);
        cairo_rectangle(cr, a.x + lw / 2, y0 + lw / 2, a.w - lw, y1 - y0 - lw);
        cairo_stroke(cr);
    }
    if (s && s->hover_row >= 0 && s->hover_row < m->E && s->hover_col >= 0 && s->hover_col < m->E) {
        ms_plot_grid_cell_rect(&gm, m->pos[s->hover_row], m->pos[s->hover_col], &a);
        cairo_set_source_rgb(cr, 1, 1, 1);
        cairo_set_line_width(cr, lw * 2);
        cairo_rectangle(cr, a.x, a.y, a.w, a.h);
        cairo_stroke_preserve(cr);
        cairo_set_source_rgb(cr, 0, 0, 0);
        cairo_set_line_width(cr, lw);
        cairo_stroke(cr);
    }
    cairo_restore(cr);

    const char *title = mg.f.title;
    mg.f.title = NULL;
    ms_plot_draw_axes(cr, &mg.f, &mg.g);

    /* the list of strongest pairs */
    if (mg.list.w > 0 && (mg.shown > 0 || mg.more)) {
        MsPlotText *t = ms_plot_text_new(s ? &s->style : NULL);
        if (!t) {
            cairo_restore(cr);
            return ms_error_set(err, MS_ENOMEM, "out of memory");
        }
        cairo_save(cr);
        double x = mg.list.x + mg.pad, xr = mg.list.x + mg.list.w;
        rgb(cr, (MsRgb){ 0.13, 0.13, 0.13 });
        ms_plot_text_draw(t, cr, MS_PLOT_ROLE_LABEL, mg.head, mg.list.w - mg.pad, x, mg.list.y, 0, 0, 0);
        const VbPair *top = m->top[mg.k];
        for (int i = 0; i < mg.shown; i++) {
            MsPlotRect r = entry_rect(&mg, i);
            double cy = r.y + r.h / 2;
            bool hl = (sel_row(m, s) && top[i].i == s->sel_expert) || (sel_col(m, s) && top[i].j == s->sel_expert) ||
                      (m->kind == VB_MAT_COACT && sel_row(m, s) && top[i].j == s->sel_expert);
            if (hl) {
                cairo_set_source_rgb(cr, 0.90, 0.90, 0.90);
                cairo_rectangle(cr, r.x + mg.pad * 0.5, r.y, r.w - mg.pad * 0.5, r.h);
                cairo_fill(cr);
            }
            rgb(cr, ms_plot_category_color(top[i].i));
            cairo_rectangle(cr, x, round(cy - mg.sw / 2), mg.sw, mg.sw);
            cairo_fill(cr);
            rgb(cr, ms_plot_category_color(top[i].j));
            cairo_rectangle(cr, x + mg.sw, round(cy - mg.sw / 2), mg.sw, mg.sw);
            cairo_fill(cr);
            char name[64], val[96];
            entry_texts(m, mg.k, &top[i], name, sizeof name, val, sizeof val);
            rgb(cr, (MsRgb){ 0.13, 0.13, 0.13 });
            ms_plot_text_draw(t, cr, MS_PLOT_ROLE_TICK, name, 0, x + mg.sw * 2 + mg.pad * 0.8, cy, 0, 0.5, 0);
            ms_plot_text_draw(t, cr, MS_PLOT_ROLE_TICK, val, 0, xr, cy, 1, 0.5, 0);
        }
        if (mg.more) {
            MsPlotRect r = entry_rect(&mg, mg.shown);
            char buf[64];
            snprintf(buf, sizeof buf, "+%d more (--top)", m->n_top[mg.k] - mg.shown);
            cairo_set_source_rgb(cr, 0.42, 0.42, 0.42);
            ms_plot_text_draw(t, cr, MS_PLOT_ROLE_TICK, buf, mg.list.w - mg.pad, x, r.y + r.h / 2, 0, 0.5, 0);
        }
        cairo_restore(cr);
        ms_plot_text_free(t);
    }
    cairo_restore(cr);
    vb_draw_title(cr, s ? &s->style : NULL, title, width);
    return 0;
}

/* ------------------------------------------------------------------ hit */

static void cell_text(const VbMatrix *m, int i, int j, char *buf, size_t size)
{
    size_t ix = (size_t)i * m->E + j;
    char c[48], ni[48], nt[48];
    vb_fmt_count(m->count[ix], c, sizeof c);
    vb_fmt_count(m->load_r[i], ni, sizeof ni);
    vb_fmt_count((double)m->n_tokens, nt, sizeof nt);
    if (m->kind == VB_MAT_COACT) {
        if (i == j) {
            snprintf(buf, size, "L%d E%d: selected by %s of %s tokens", m->from, i, ni, nt);
            return;
        }
        char nj[48];
        vb_fmt_count(m->load_r[j], nj, sizeof nj);
        snprintf(buf, size, "L%d E%d & E%d: together in %s tokens; lift %.3g (log\xE2\x82\x82 %.2f), Jaccard %.3f; "
                 "E%d in %s, E%d in %s of %s tokens",
                 m->from, i, j, c, m->lift[ix], log2(m->lift[ix]), m->jaccard[ix], i, ni, j, nj, nt);
    } else {
        snprintf(buf, size, "L%d E%d \xE2\x86\x92 L%d E%d: %s tokens (Q %.3f, P %.3f, lift %.3g); E%d at L%d: %s tokens",
                 m->from, i, m->to, j, c, m->Q[ix], m->P[ix], m->lift[ix], i, m->from, ni);
    }
}

bool vb_matrix_hit(const void *model, const MsViewState *s, double width, double height, double x, double y,
                   MsViewHit *out)
{
    const VbMatrix *m = model;
    memset(out, 0, sizeof *out);
    out->kind = MS_HIT_NONE;
    out->layer = out->expert = out->prompt = out->pos = -1;
    out->row = out->col = out->item = -1;
    out->value = NAN;
    MatGeom mg;
    if (mat_layout(m, s, width, height, &mg, NULL) < 0) return false;
    x -= mg.dx;
    MsPlotGridMap gm = ms_plot_grid_map(&mg.g, m->E, m->E);
    int64_t r, c;
    if (ms_plot_grid_hit(&gm, x, y, &r, &c)) {
        int i = m->order[r], j = m->order[c];
        out->kind = MS_HIT_CELL;
        out->layer = m->from;
        out->expert = i;
        out->row = i;
        out->col = j;
        out->value = m->cells[mg.k][(size_t)r * m->E + c];
        double raw = mg.k == VB_METRIC_Q ? m->Q[(size_t)i * m->E + j]
                   : mg.k == VB_METRIC_JACCARD ? m->jaccard[(size_t)i * m->E + j] : m->lift[(size_t)i * m->E + j];
        if (!(m->kind == VB_MAT_COACT && i == j)) out->value = raw;
        cell_text(m, i, j, out->text, sizeof out->text);
        return true;
    }
    const MsPlotRect *p = &mg.g.plot;
    /* tick labels: the row's or column's expert (linked selection) */
    if (y >= p->y && y < p->y + p->h && x >= 0 && x < p->x) {
        double v = ms_plot_px_to_y(&mg.g, y);
        int rr = (int)floor(v);
        if (rr >= 0 && rr < m->E) {
            out->kind = MS_HIT_EXPERT;
            out->layer = m->from;
            out->expert = m->order[rr];
            out->row = out->expert;
            char n[48];
            vb_fmt_count(m->load_r[out->expert], n, sizeof n);
            snprintf(out->text, sizeof out->text, "L%d E%d: selected by %s tokens", m->from, out->expert, n);
            return true;
        }
    }
    if (x >= p->x && x < p->x + p->w && y >= p->y + p->h && y < p->y + p->h + mg.row_h * 1.5) {
        double v = ms_plot_px_to_x(&mg.g, x);
        int cc = (int)floor(v);
        if (cc >= 0 && cc < m->E) {
            out->kind = MS_HIT_EXPERT;
            out->layer = m->to;
            out->expert = m->order[cc];
            out->col = out->expert;
            if (m->kind == VB_MAT_COACT) {
                char n[48];
                vb_fmt_count(m->load_r[out->expert], n, sizeof n);
                snprintf(out->text, sizeof out->text, "L%d E%d: selected by %s tokens", m->to, out->expert, n);
            } else {
                snprintf(out->text, sizeof out->text, "L%d E%d: %.1f %% of the selections at layer %d", m->to,
                         out->expert, 100 * m->share_c[out->expert], m->to);
            }
            return true;
        }
    }
    for (int i = 0; i < mg.shown; i++) {
        MsPlotRect er = entry_rect(&mg, i);
        if (!ms_plot_rect_contains(&er, x, y)) continue;
        const VbPair *tp = &m->top[mg.k][i];
        out->kind = MS_HIT_ITEM;
        out->item = i;
        out->layer = m->from;
        out->expert = tp->i;
        out->row = tp->i;
        out->col = tp->j;
        out->value = tp->value;
        cell_text(m, tp->i, tp->j, out->text, sizeof out->text);
        return true;
    }
    return false;
}

void vb_matrix_default_size(const void *model, double *width, double *height)
{
    const VbMatrix *m = model;
    /* room for about 14 px cells up to 64 experts, and the list */
    double side = m->E <= 16 ? 560 : m->E <= 64 ? 820 : 960;
    *width = side + 520;
    *height = side;
}
