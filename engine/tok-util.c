/* tok-util.c — hash map, growable arrays, UTF-8 and heap helpers for the
 * tokenizers (see tok-internal.h). */
#include "tok-internal.h"

#include <stdlib.h>
#include <string.h>

/* ---- hash map ---- */

uint64_t tok_hash(const char *s, size_t n)
{
    /* FNV-1a, then a final mix so the low bits (the slot index) vary well */
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)s[i];
        h *= 1099511628211ull;
    }
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 32;
    return h;
}

int tokmap_init(TokMap *m, size_t expected)
{
    size_t cap = 16;
    while (cap < expected * 2 + 16) cap <<= 1;  /* load factor <= 1/2 */
    m->slots = calloc(cap, sizeof *m->slots);
    m->cap = m->slots ? cap : 0;
    m->n = 0;
    return m->slots ? MS_OK : MS_ENOMEM;
}

void tokmap_clear(TokMap *m)
{
    free(m->slots);
    m->slots = NULL;
    m->cap = m->n = 0;
}

static TokMapEntry *tokmap_slot(const TokMap *m, const char *key, size_t len)
{
    size_t mask = m->cap - 1, i = (size_t)tok_hash(key, len) & mask;
    for (;;) {
        TokMapEntry *e = &m->slots[i];
        if (!e->key || (e->len == len && memcmp(e->key, key, len) == 0)) return e;
        i = (i + 1) & mask;
    }
}

void tokmap_put(TokMap *m, const char *key, size_t len, int32_t val, bool overwrite)
{
    /* callers size the map for all keys up front, so it never fills */
    TokMapEntry *e = tokmap_slot(m, key, len);
    if (!e->key) {
        e->key = key;
        e->len = (uint32_t)len;
        e->val = val;
        m->n++;
    } else if (overwrite) {
        e->val = val;
    }
}

int32_t tokmap_get(const TokMap *m, const char *key, size_t len)
{
    if (!m->cap) return -1;
    const TokMapEntry *e = tokmap_slot(m, key, len);
    return e->key ? e->val : -1;
}

/* ---- arrays ---- */

int tokids_push(TokIds *a, int32_t id)
{
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 64;
        int32_t *v = realloc(a->v, cap * sizeof *v);
        if (!v) return MS_ENOMEM;
        a->v = v;
        a->cap = cap;
    }
    a->v[a->n++] = id;
    return MS_OK;
}

int tokstr_reserve(TokStr *b, size_t n)
{
    if (b->n + n + 1 <= b->cap) return MS_OK;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->n + n + 1) cap *= 2;
    char *s = realloc(b->s, cap);
    if (!s) return MS_ENOMEM;
    b->s = s;
    b->cap = cap;
    return MS_OK;
}

int tokstr_append(TokStr *b, const char *s, size_t n)
{
    if (tokstr_reserve(b, n)) return MS_ENOMEM;
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = '\0';
    return MS_OK;
}

/* ---- UTF-8 ---- */

int tok_utf8_len(uint8_t lead)
{
    static const uint8_t lens[16] = { 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4 };
    return lens[lead >> 4];
}

size_t tok_utf8_decode(const char *str, size_t len, uint32_t *out)
{
    const uint8_t *s = (const uint8_t *)str;
    size_t i = 0, n = 0;
    while (i < len) {
        uint8_t c = s[i];
        int need;
        uint32_t cp = 0;
        if (c < 0x80) { out[n++] = c; i++; continue; }
        if (!(c & 0x40)) need = -1;              /* stray continuation byte */
        else if (!(c & 0x20)) { need = 1; cp = c & 0x1f; }
        else if (!(c & 0x10)) { need = 2; cp = c & 0x0f; }
        else if (!(c & 0x08)) { need = 3; cp = c & 0x07; }
        else need = -1;
        bool ok = need > 0 && i + (size_t)need < len;  /* all bytes present */
        if (ok) {
            for (int k = 1; k <= need; k++)
                if ((s[i + k] & 0xc0) != 0x80) { ok = false; break; }
        }
        if (!ok) { out[n++] = 0xFFFD; i++; continue; }
        for (int k = 1; k <= need; k++) cp = (cp << 6) | (s[i + k] & 0x3f);
        out[n++] = cp;
        i += (size_t)need + 1;
    }
    return n;
}

int tok_utf8_encode(uint32_t cp, char *o)
{
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) {
        o[0] = (char)(0xc0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | ((cp >> 18) & 0x07));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Unicode White_Space, the set llama.cpp's tables use. */
bool tok_is_whitespace(uint32_t cp)
{
    if (cp < 0x80) return cp == ' ' || (cp >= 0x09 && cp <= 0x0d);
    return cp == 0x85 || cp == 0xa0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a) ||
           cp == 0x2028 || cp == 0x2029 || cp == 0x202f || cp == 0x205f || cp == 0x3000;
}

/* ---- heap ---- */

static bool big_less(const TokBigram *a, const TokBigram *b)
{
    /* lower key first; on ties the leftmost pair, as llama.cpp's comparators */
    return a->key < b->key || (a->key == b->key && a->left < b->left);
}

int tokheap_push(TokHeap *h, TokBigram b)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        TokBigram *v = realloc(h->v, cap * sizeof *v);
        if (!v) return MS_ENOMEM;
        h->v = v;
        h->cap = cap;
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!big_less(&b, &h->v[p])) break;
        h->v[i] = h->v[p];
        i = p;
    }
    h->v[i] = b;
    return MS_OK;
}

TokBigram tokheap_pop(TokHeap *h)
{
    TokBigram top = h->v[0], last = h->v[--h->n];
    size_t i = 0, n = h->n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && big_less(&h->v[c + 1], &h->v[c])) c++;
        if (!big_less(&h->v[c], &last)) break;
        h->v[i] = h->v[c];
        i = c;
    }
    if (n) h->v[i] = last;
    return top;
}
