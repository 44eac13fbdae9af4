/* wb-select.c — linked selection and the fire index (wb-select.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wb-select.h"

void wb_selection_clear(WbSelection *s) { s->layer = s->expert = -1; }
bool wb_selection_active(const WbSelection *s) { return s->layer >= 0 && s->expert >= 0; }

bool wb_selection_set(WbSelection *s, int layer, int expert)
{
    if (layer < 0 || expert < 0) layer = expert = -1;
    if (s->layer == layer && s->expert == expert) return false;
    s->layer = layer;
    s->expert = expert;
    return true;
}

bool wb_selection_click(WbSelection *s, const MsViewHit *hit)
{
    if (!hit || hit->kind == MS_HIT_NONE || hit->layer < 0 || hit->expert < 0) return false;
    if (s->layer == hit->layer && s->expert == hit->expert) return wb_selection_set(s, -1, -1);
    return wb_selection_set(s, hit->layer, hit->expert);
}

void wb_selection_apply(const WbSelection *s, MsViewState *st)
{
    st->sel_layer = wb_selection_active(s) ? s->layer : -1;
    st->sel_expert = wb_selection_active(s) ? s->expert : -1;
}

void wb_selection_describe(const WbSelection *s, char *buf, size_t size)
{
    if (wb_selection_active(s)) snprintf(buf, size, "layer %d · expert %d", s->layer, s->expert);
    else snprintf(buf, size, "nothing selected");
}

/* ------------------------------------------------------------ fire index */

struct WbFireIndex {
    int n_layer, n_expert;
    size_t words;          /* uint64 words per prompt */
    int n_slots;           /* prompt indices 0..n_slots-1 have a slot */
    uint64_t **bits;       /* [n_slots], NULL = not indexed */
    int n_indexed;
    int64_t last_prompt_id;
};

WbFireIndex *wb_fire_index_new(int n_layer, int n_expert)
{
    if (n_layer < 1 || n_expert < 1) return NULL;
    WbFireIndex *x = calloc(1, sizeof *x);
    if (!x) return NULL;
    x->n_layer = n_layer;
    x->n_expert = n_expert;
    x->words = ((size_t)n_layer * (size_t)n_expert + 63) / 64;
    return x;
}

void wb_fire_index_free(WbFireIndex *x)
{
    if (!x) return;
    for (int i = 0; i < x->n_slots; i++) free(x->bits[i]);
    free(x->bits);
    free(x);
}

WbFireIndex *wb_fire_index_copy(const WbFireIndex *x)
{
    if (!x) return NULL;
    WbFireIndex *c = wb_fire_index_new(x->n_layer, x->n_expert);
    if (!c) return NULL;
    c->last_prompt_id = x->last_prompt_id;
    if (x->n_slots) {
        c->bits = calloc((size_t)x->n_slots, sizeof *c->bits);
        if (!c->bits) {
            wb_fire_index_free(c);
            return NULL;
        }
        c->n_slots = x->n_slots;
        for (int i = 0; i < x->n_slots; i++) {
            if (!x->bits[i]) continue;
            if (!(c->bits[i] = malloc(x->words * sizeof(uint64_t)))) {
                wb_fire_index_free(c);
                return NULL;
            }
            memcpy(c->bits[i], x->bits[i], x->words * sizeof(uint64_t));
            c->n_indexed++;
        }
    }
    return c;
}

int wb_fire_index_n_layer(const WbFireIndex *x) { return x ? x->n_layer : 0; }
int wb_fire_index_n_expert(const WbFireIndex *x) { return x ? x->n_expert : 0; }

static uint64_t *slot(WbFireIndex *x, int prompt)
{
    if (prompt < 0) return NULL;
    if (prompt >= x->n_slots) {
        int n = x->n_slots ? x->n_slots : 64;
        while (n <= prompt) n *= 2;
        uint64_t **b = realloc(x->bits, (size_t)n * sizeof *b);
        if (!b) return NULL;
        memset(b + x->n_slots, 0, (size_t)(n - x->n_slots) * sizeof *b);
        x->bits = b;
        x->n_slots = n;
    }
    if (!x->bits[prompt]) {
        x->bits[prompt] = calloc(x->words, sizeof(uint64_t));
        if (x->bits[prompt]) x->n_indexed++;
    }
    return x->bits[prompt];
}

int wb_fire_index_mark(WbFireIndex *x, int prompt, int layer, int expert)
{
    if (layer < 0 || layer >= x->n_layer || expert < 0 || expert >= x->n_expert) return MS_ERANGE;
    uint64_t *b = slot(x, prompt);
    if (!b) return prompt < 0 ? MS_ERANGE : MS_ENOMEM;
    size_t bit = (size_t)layer * (size_t)x->n_expert + (size_t)expert;
    b[bit / 64] |= 1ull << (bit % 64);
    return 0;
}

int wb_fire_index_n_prompts(const WbFireIndex *x) { return x ? x->n_indexed : 0; }

bool wb_fire_index_has(const WbFireIndex *x, int prompt)
{
    return x && prompt >= 0 && prompt < x->n_slots && x->bits[prompt];
}

bool wb_fire_index_fires(const WbFireIndex *x, int prompt, int layer, int expert)
{
    if (!wb_fire_index_has(x, prompt) || layer < 0 || layer >= x->n_layer || expert < 0 || expert >= x->n_expert)
        return false;
    size_t bit = (size_t)layer * (size_t)x->n_expert + (size_t)expert;
    return (x->bits[prompt][bit / 64] >> (bit % 64)) & 1;
}

bool wb_prompt_visible(const WbFireIndex *x, const WbSelection *s, int prompt)
{
    if (!s || !wb_selection_active(s)) return true;
    return wb_fire_index_fires(x, prompt, s->layer, s->expert);
}

int wb_fire_index_count(const WbFireIndex *x, const WbSelection *s)
{
    int n = 0;
    if (!x) return 0;
    for (int i = 0; i < x->n_slots; i++)
        if (x->bits[i] && wb_prompt_visible(x, s, i)) n++;
    return n;
}

typedef struct {
    int64_t id;
    int index;
} IdIndex;

static int find_index(const IdIndex *m, int n, int64_t id)
{
    int lo = 0, hi = n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (m[mid].id == id) return m[mid].index;
        if (m[mid].id < id) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}

static int cmp_id(const void *a, const void *b)
{
    int64_t x = ((const IdIndex *)a)->id, y = ((const IdIndex *)b)->id;
    return x < y ? -1 : x > y;
}

int wb_fire_index_update(WbFireIndex *x, MsTraceDb *db, int64_t run, const MsCancel *cancel, MsError *err)
{
    /* the new prompts: id > the last one indexed */
    MsTraceCursor *c = ms_trace_prompts(db, run, err);
    if (!c) return err && err->code ? err->code : MS_EDB;
    IdIndex *map = NULL;
    int n = 0, cap = 0, rc;
    MsTracePrompt p;
    while ((rc = ms_trace_prompts_next(c, &p, err)) == 1) {
        if (p.prompt_id <= x->last_prompt_id) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 256;
            IdIndex *m = realloc(map, (size_t)cap * sizeof *m);
            if (!m) {
                rc = ms_error_set(err, MS_ENOMEM, "out of memory");
                break;
            }
            map = m;
        }
        map[n].id = p.prompt_id;
        map[n].index = p.index;
        n++;
    }
    ms_trace_cursor_free(c);
    if (rc < 0 || n == 0) {
        free(map);
        return rc < 0 ? rc : 0;
    }
    qsort(map, (size_t)n, sizeof *map, cmp_id);
    /* fill fresh bitsets first, so a failure leaves the index unchanged */
    WbFireIndex *tmp = wb_fire_index_new(x->n_layer, x->n_expert);
    if (!tmp) {
        free(map);
        return ms_error_set(err, MS_ENOMEM, "out of memory");
    }
    for (int i = 0; i < n && rc >= 0; i++)
        if (!slot(tmp, map[i].index)) rc = ms_error_set(err, MS_ENOMEM, "out of memory");
    c = rc < 0 ? NULL : ms_trace_routing_range(db, run, map[0].id, map[n - 1].id, err);
    if (rc >= 0 && !c) rc = err && err->code ? err->code : MS_EDB;
    MsTraceRoutePacked r;
    int64_t rows = 0;
    while (c && (rc = ms_trace_routing_next_packed(c, &r, err)) == 1) {
        if ((++rows & 1023) == 0 && ms_cancel_requested(cancel)) {
            rc = ms_error_set(err, MS_ECANCELLED, "cancelled");
            break;
        }
        int idx = find_index(map, n, r.prompt_id);
        if (idx < 0 || r.layer < 0 || r.layer >= x->n_layer) continue;
        for (int j = 0; j < r.k; j++) {
            int e = r.experts[2 * j] | r.experts[2 * j + 1] << 8;
            if (e < x->n_expert) wb_fire_index_mark(tmp, idx, r.layer, e);
        }
    }
    ms_trace_cursor_free(c);
    if (rc >= 0) {
        for (int i = 0; i < tmp->n_slots; i++) {
            if (!tmp->bits[i]) continue;
            uint64_t *dst = slot(x, i);
            if (!dst) {
                rc = ms_error_set(err, MS_ENOMEM, "out of memory");
                break;
            }
            memcpy(dst, tmp->bits[i], x->words * sizeof *dst);
        }
        if (rc >= 0) x->last_prompt_id = map[n - 1].id;
    }
    wb_fire_index_free(tmp);
    free(map);
    return rc < 0 ? rc : 0;
}
