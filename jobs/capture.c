/* capture.c — routing of a whole sequence in memory (see jobs.h). */
#include <stdlib.h>
#include <string.h>

#include "jobs.h"

typedef struct {
    int k, n_expert, cap;   /* k == 0 until the first event */
    int32_t *experts;
    int32_t *n_used;        /* [cap] experts each position used (k unless ser), 0 = unseen */
    float *weights, *probs;
} LayerBuf;

struct MsRouteCapture {
    int n_layer, n_pos;
    bool with_probs;
    int status;
    LayerBuf *lay;
};

MsRouteCapture *ms_route_capture_new(int n_layer, bool with_probs)
{
    if (n_layer < 0) return NULL;
    MsRouteCapture *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->n_layer = n_layer;
    c->with_probs = with_probs;
    c->lay = calloc((size_t)(n_layer ? n_layer : 1), sizeof *c->lay);
    if (!c->lay) {
        free(c);
        return NULL;
    }
    return c;
}

void ms_route_capture_free(MsRouteCapture *c)
{
    if (!c) return;
    for (int l = 0; l < c->n_layer; l++) {
        free(c->lay[l].experts);
        free(c->lay[l].n_used);
        free(c->lay[l].weights);
        free(c->lay[l].probs);
    }
    free(c->lay);
    free(c);
}

void ms_route_capture_reset(MsRouteCapture *c)
{
    if (!c) return;
    c->n_pos = 0;
    c->status = 0;
    /* k may differ in the next sequence (another intervention set): forget
     * the shape; grow() reuses the buffers through realloc */
    for (int l = 0; l < c->n_layer; l++) {
        c->lay[l].k = 0;
        c->lay[l].cap = 0;
    }
}

/* Make room for positions < need; new rows are marked unseen (−1). */
static int grow(LayerBuf *b, int need, bool probs)
{
    if (need <= b->cap) return 0;
    int nc = b->cap ? b->cap : 64;
    while (nc < need) nc *= 2;
    int32_t *e = realloc(b->experts, (size_t)nc * (size_t)b->k * sizeof *e);
    if (!e) return MS_ENOMEM;
    b->experts = e;
    float *w = realloc(b->weights, (size_t)nc * (size_t)b->k * sizeof *w);
    if (!w) return MS_ENOMEM;
    b->weights = w;
    int32_t *u = realloc(b->n_used, (size_t)nc * sizeof *u);
    if (!u) return MS_ENOMEM;
    b->n_used = u;
    memset(u + b->cap, 0, (size_t)(nc - b->cap) * sizeof *u);
    if (probs) {
        float *p = realloc(b->probs, (size_t)nc * (size_t)b->n_expert * sizeof *p);
        if (!p) return MS_ENOMEM;
        b->probs = p;
        memset(p + (size_t)b->cap * b->n_expert, 0, (size_t)(nc - b->cap) * (size_t)b->n_expert * sizeof *p);
    }
    for (size_t i = (size_t)b->cap * b->k; i < (size_t)nc * b->k; i++) {
        e[i] = -1;
        w[i] = 0.0f;
    }
    b->cap = nc;
    return 0;
}

static void on_routing(void *user, const MsRoutingEvent *ev)
{
    MsRouteCapture *c = user;
    if (c->status || ev->layer < 0 || ev->layer >= c->n_layer) return;
    LayerBuf *b = &c->lay[ev->layer];
    if (!b->k) {
        b->k = ev->k;
        b->n_expert = ev->n_expert;
    }
    if (b->k != ev->k || b->n_expert != ev->n_expert) {
        c->status = MS_EINTERNAL;   /* the set changed mid-sequence */
        return;
    }
    int maxp = -1;
    for (int t = 0; t < ev->n_tokens; t++) maxp = MS_MAX(maxp, ev->pos[t]);
    if (maxp < 0) return;
    if (grow(b, maxp + 1, c->with_probs) < 0) {
        c->status = MS_ENOMEM;
        return;
    }
    for (int t = 0; t < ev->n_tokens; t++) {
        int p = ev->pos[t];
        if (p < 0) continue;
        memcpy(b->experts + (size_t)p * b->k, ev->experts + (size_t)t * ev->k, (size_t)ev->k * sizeof(int32_t));
        memcpy(b->weights + (size_t)p * b->k, ev->weights + (size_t)t * ev->k, (size_t)ev->k * sizeof(float));
        b->n_used[p] = ev->n_used ? ev->n_used[t] : ev->k;
        if (c->with_probs)
            memcpy(b->probs + (size_t)p * b->n_expert, ev->probs + (size_t)t * ev->n_expert,
                   (size_t)ev->n_expert * sizeof(float));
    }
    c->n_pos = MS_MAX(c->n_pos, maxp + 1);
}

MsObserver ms_route_capture_observer(MsRouteCapture *c)
{
    MsObserver o = { .on_routing = on_routing, .on_hidden = NULL, .user = c };
    return o;
}

int ms_route_capture_status(const MsRouteCapture *c) { return c ? c->status : MS_EINVAL; }
int ms_route_capture_n_pos(const MsRouteCapture *c) { return c ? c->n_pos : 0; }

bool ms_route_capture_layer(const MsRouteCapture *c, int layer, MsRouteLayer *out)
{
    if (!c || layer < 0 || layer >= c->n_layer || !c->lay[layer].k || !c->lay[layer].cap) return false;
    const LayerBuf *b = &c->lay[layer];
    out->layer = layer;
    out->k = b->k;
    out->n_expert = b->n_expert;
    out->n_pos = MS_MIN(c->n_pos, b->cap);
    out->experts = b->experts;
    out->weights = b->weights;
    out->n_used = b->n_used;
    out->probs = c->with_probs ? b->probs : NULL;
    return true;
}
