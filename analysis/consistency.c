/* consistency.c — METHODS.md §3: SRP and SCH (moe-lrc). */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "analysis.h"

/* Whether row[j] already appeared in row[0..j). */
static bool srp_repeat(const int32_t *row, int j)
{
    for (int i = 0; i < j; i++)
        if (row[i] == row[j]) return true;
    return false;
}

/* Window counts change only where an activation enters or leaves the
 * window, so each expert's histogram is built from its activation list in
 * O(activations) instead of O(T). */
int ms_srp_hist_add(int64_t *hist, int E, int m, const int32_t *ids, const int *n,
                    int stride, int T)
{
    if (!hist || E < 1 || m < 1 || T < 0 || (T > 0 && (!ids || !n))) return MS_EINVAL;
    int64_t W = (int64_t)T - m + 1;
    if (W <= 0) return 0;
    int *cnt = calloc((size_t)E + 1, sizeof *cnt);
    if (!cnt) return MS_ENOMEM;
    /* An expert counts once per token: a list naming it twice (only a
     * damaged or crafted trace has one) would let a window count more
     * than m tokens and index past the histogram's m + 1 bins. */
    int total = 0;
    for (int t = 0; t < T; t++)
        for (int j = 0; j < n[t]; j++) {
            int e = ids[(size_t)t * stride + j];
            if (e >= E) { free(cnt); return MS_ERANGE; }
            if (e >= 0 && !srp_repeat(ids + (size_t)t * stride, j)) { cnt[e + 1]++; total++; }
        }
    for (int e = 0; e < E; e++) cnt[e + 1] += cnt[e];
    int *pos = malloc(((size_t)total + 1) * sizeof *pos), *fill = malloc((size_t)E * sizeof *fill);
    if (!pos || !fill) { free(cnt); free(pos); free(fill); return MS_ENOMEM; }
    memcpy(fill, cnt, (size_t)E * sizeof *fill);
    for (int t = 0; t < T; t++)
        for (int j = 0; j < n[t]; j++) {
            int e = ids[(size_t)t * stride + j];
            if (e >= 0 && !srp_repeat(ids + (size_t)t * stride, j)) pos[fill[e]++] = t;
        }
    for (int e = 0; e < E; e++) {
        const int *P = pos + cnt[e];
        int np = cnt[e + 1] - cnt[e];
        int64_t *h = hist + (size_t)e * (m + 1);
        int64_t p = 0;
        int f = 0, ia = 0, ib = 0;
        while (p < W) {
            while (ia < np && MS_MAX((int64_t)P[ia] - m + 1, 0) <= p) { f++; ia++; }
            while (ib < np && (int64_t)P[ib] + 1 <= p) { f--; ib++; }
            int64_t next = W;
            if (ia < np) next = MS_MIN(next, MS_MAX((int64_t)P[ia] - m + 1, 0));
            if (ib < np) next = MS_MIN(next, (int64_t)P[ib] + 1);
            h[f] += next - p;
            p = next;
        }
    }
    free(cnt);
    free(pos);
    free(fill);
    return 0;
}

MsSrp ms_srp_from_hist(const int64_t *h, int m)
{
    MsSrp r = {0, 0, 0, NAN, 0, 0};
    int64_t A = 0, win = 0;
    for (int c = 0; c <= m; c++) {
        A += (int64_t)c * h[c];
        win += h[c];
    }
    /* suffix sums give TP(α) and P(α) for every threshold in one pass */
    double best = -1, tp = 0, pc = 0;
    double *F = malloc(((size_t)m + 1) * sizeof *F);
    if (!F) { r.srp = NAN; return r; }
    for (int a = m; a >= 0; a--) {
        tp += (double)a * (double)h[a];
        pc += (double)m * (double)h[a];
        double den = pc + (double)A;
        F[a] = 2.0 * tp / (den > 1 ? den : 1);
    }
    for (int a = 0; a <= m; a++)
        if (F[a] > best) {
            best = F[a];
            r.alpha = a;
        }
    double Pa = 0;
    for (int c = r.alpha; c <= m; c++) Pa += (double)m * (double)h[c];
    free(F);
    r.srp = best;
    r.rho = A > 0 ? Pa / (double)A : 0.0;
    r.A = A;
    r.windows = win;
    r.act_r = win > 0 ? (double)A / ((double)m * (double)win) : NAN;
    return r;
}

/* ------------------------------------------------------------------ SCH */

/* The cache is an indexed binary min-heap.  Each entry carries its packed
 * key (fut + 2^20) << 40 | last, so one integer compare orders entries by
 * (fut, last) exactly as the eviction rule does (fut >= 0, last < 2^40). */
typedef struct { uint64_t key; int id; } SchEnt;

/* Caches up to this size use the flat array: a vectorised minimum scan on
 * a miss is cheaper than two O(log C) heap updates on every request
 * (measured on the 1M-token benchmark: 256 slots, 128 requests a token). */
enum { SCH_FLAT_MAX = 512 };

struct MsSchSim {
    int U;
    int64_t *fut, *last;
    int64_t *seen;        /* stamp of the run that saw the id */
    int *hpos;            /* heap index of an id, −1 when not cached */
    SchEnt *heap;
    uint64_t *fkey;       /* flat mode: keys and ids of the cached entries */
    int *fid;
    int *znext, *zprev;   /* flat mode: list of the cached ids with fut 0 */
    int nheap;
    int64_t run;
};

MsSchSim *ms_sch_sim_new(int universe)
{
    if (universe < 1) return NULL;
    MsSchSim *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    size_t U = (size_t)universe;
    s->U = universe;
    s->fut = calloc(U < 64 ? 64 : U, sizeof(int64_t));
    s->last = calloc(U < 64 ? 64 : U, sizeof(int64_t));
    s->seen = calloc(U < 64 ? 64 : U, sizeof(int64_t));
    s->hpos = malloc(U * sizeof(int));
    s->heap = calloc(U, sizeof(SchEnt));
    s->fkey = calloc(U, sizeof(uint64_t));
    s->fid = calloc(U, sizeof(int));
    s->znext = calloc(U, sizeof(int));
    s->zprev = calloc(U, sizeof(int));
    if (!s->fut || !s->last || !s->seen || !s->hpos || !s->heap || !s->fkey || !s->fid || !s->znext || !s->zprev) {
        ms_sch_sim_free(s);
        return NULL;
    }
    for (size_t i = 0; i < U; i++) s->hpos[i] = -1;
    return s;
}

void ms_sch_sim_free(MsSchSim *s)
{
    if (!s) return;
    free(s->fut); free(s->last); free(s->seen);
    free(s->hpos); free(s->heap);
    free(s->fkey); free(s->fid);
    free(s->znext); free(s->zprev);
    free(s);
}

/* The heap helpers take the arrays as restrict locals: the hot loop then
 * keeps them in registers instead of reloading them through s. */
static inline uint64_t sch_key(const int64_t *restrict fut, const int64_t *restrict last, int id)
{
    return ((uint64_t)(fut[id] + (1 << 20)) << 40) | (uint64_t)last[id];
}

static inline void sch_up(SchEnt *restrict heap, int *restrict hpos, int i)
{
    SchEnt e = heap[i];
    while (i > 0) {
        int p = (i - 1) / 2;
        if (heap[p].key <= e.key) break;
        heap[i] = heap[p];
        hpos[heap[i].id] = i;
        i = p;
    }
    heap[i] = e;
    hpos[e.id] = i;
}

static inline void sch_down(SchEnt *restrict heap, int *restrict hpos, int n, int i)
{
    SchEnt e = heap[i];
    for (;;) {
        int c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && heap[c + 1].key < heap[c].key) c++;
        if (heap[c].key >= e.key) break;
        heap[i] = heap[c];
        hpos[heap[i].id] = i;
        i = c;
    }
    heap[i] = e;
    hpos[e.id] = i;
}

/* Index of the smallest key.  Keys are unique (last is), so exactly one
 * slot matches; both loops are branch-free and vectorise. */
static inline int sch_flat_argmin(const uint64_t *restrict key, int n)
{
    uint64_t best = UINT64_MAX;
    for (int c = 0; c < n; c++) best = key[c] < best ? key[c] : best;
    int slot = 0;
    for (int c = 0; c < n; c++) slot |= key[c] == best ? c : 0;
    return slot;
}

/* key of a cached id changed: restore the heap order */
static inline void sch_rekey(SchEnt *restrict heap, int *restrict hpos, int n, uint64_t k, int id)
{
    int i = hpos[id];
    uint64_t old = heap[i].key;
    heap[i].key = k;
    if (k < old) sch_up(heap, hpos, i);
    else if (k > old) sch_down(heap, hpos, n, i);
}

/* Future counts of the look-ahead window before the first token: the
 * requests of tokens 0..m-1. */
static void sch_first_window(int64_t *fut, const int32_t *ids, int T, int k, int m)
{
    for (int t = 0; t < MS_MIN(m, T); t++)
        for (int j = 0; j < k; j++)
            if (ids[(size_t)t * k + j] >= 0) fut[ids[(size_t)t * k + j]]++;
}

/* Universes of at most 64 ids (one layer's experts): cache and first-touch
 * sets are bit masks, and the keys are not kept at all — a miss with a full
 * cache computes (fut, last) of the cached ids (the set bits) from the
 * arrays.  Same rules, same result as the general path, with no per-request
 * key upkeep. */
static int64_t sch_run_small(MsSchSim *s, const int32_t *ids, int T, int k, int m, int C, bool cold,
                             int64_t *requests)
{
    int cap = MS_MIN(C, s->U);
    int64_t *restrict fut = s->fut, *restrict last = s->last;
    for (int e = 0; e < 64; e++) fut[e] = 0, last[e] = 0;
    sch_first_window(fut, ids, T, k, m);
    uint64_t cached = 0, seen = 0;
    int64_t hits = 0, req = 0, ts = 0;
    int uni = 0, ncached = 0;
    for (int i = 0; i < T; i++) {
        const int32_t *S = ids + (size_t)i * k;
        for (int j = 0; j < k; j++) {
            int x = S[j];
            if (x < 0) continue;
            req++;
            /* cached ids were all seen before: a first touch is never
             * cached, and the hit needs no branch */
            hits += (int64_t)(cached >> x & 1);
            uint64_t b = (uint64_t)1 << x;
            if (!(seen & b)) {
                if (!cold && uni < C) hits++;
                uni++;
                seen |= b;
            }
        }
        for (int j = 0; j < k; j++) {
            int x = S[j];
            if (x < 0) continue;
            uint64_t b = (uint64_t)1 << x;
            if (!(cached & b)) {
                if (ncached >= cap) {
                    /* the cached ids' keys, computed now; x is not cached,
                     * so its own key does not take part */
                    uint64_t best = UINT64_MAX;
                    int y = 0;
                    for (uint64_t r = cached; r; r &= r - 1) {
                        int e = __builtin_ctzll(r);
                        uint64_t key = sch_key(fut, last, e);
                        y = key < best ? e : y;
                        best = key < best ? key : best;
                    }
                    cached &= ~((uint64_t)1 << y);
                } else {
                    ncached++;
                }
                cached |= b;
            }
            ts++;
            fut[x]--;
            last[x] = ts;
        }
        if (i + m < T)
            for (int j = 0; j < k; j++)
                if (ids[(size_t)(i + m) * k + j] >= 0) fut[ids[(size_t)(i + m) * k + j]]++;
    }
    if (requests) *requests = req;
    return hits;
}

int64_t ms_sch_sim_run(MsSchSim *s, const int32_t *ids, int T, int k, int m, int C,
                       bool cold, int64_t *requests)
{
    if (!s || T < 0 || k < 1 || m < 1 || C < 1 || (T > 0 && !ids)) return MS_EINVAL;
    if ((int64_t)T * k >= (int64_t)1 << 40) return MS_ERANGE;
    for (int64_t i = 0; i < (int64_t)T * k; i++)
        if (ids[i] >= s->U) return MS_ERANGE;
    if (s->U <= 64) return sch_run_small(s, ids, T, k, m, C, cold, requests);
    int cap = MS_MIN(C, s->U);
    int64_t run = ++s->run;
    int64_t *restrict fut = s->fut, *restrict last = s->last, *restrict seen = s->seen;
    int *restrict hpos = s->hpos;
    SchEnt *restrict heap = s->heap;
    uint64_t *restrict fkey = s->fkey;
    int *restrict fid = s->fid;
    int *restrict zn = s->znext, *restrict zp = s->zprev;
    /* The cached ids with fut 0, oldest use first: fut only falls by a
     * use, which also makes last the newest, so appending on that use
     * keeps the list in last order.  Its head is the eviction victim
     * whenever the list is not empty; otherwise the flat scan decides. */
    int zh = -1, zt = -1;
#define Z_APPEND(x) do { zp[x] = zt; zn[x] = -1; if (zt >= 0) zn[zt] = (x); else zh = (x); zt = (x); } while (0)
#define Z_REMOVE(x) do { if (zp[x] >= 0) zn[zp[x]] = zn[x]; else zh = zn[x]; \
                         if (zn[x] >= 0) zp[zn[x]] = zp[x]; else zt = zp[x]; } while (0)
    /* fut/last are only meaningful for ids touched in this run: reset them */
    for (int64_t i = 0; i < (int64_t)T * k; i++)
        if (ids[i] >= 0) fut[ids[i]] = 0, last[ids[i]] = 0;
    sch_first_window(fut, ids, T, k, m);
    int64_t hits = 0, req = 0, ts = 0;
    int uni = 0, nheap = 0;
    /* small caches: an unordered array with a scan for the minimum on
     * eviction beats keeping a heap ordered on every key change */
    bool flat = cap <= SCH_FLAT_MAX;
    for (int i = 0; i < T; i++) {
        const int32_t *S = ids + (size_t)i * k;
        /* 1. hits against the cache as it was before this token (no
         *    change happens during this loop, so "before" = "now") */
        for (int j = 0; j < k; j++) {
            int x = S[j];
            if (x < 0) continue;
            req++;
            hits += hpos[x] >= 0;   /* cached ids were all seen: no branch needed */
            if (seen[x] != run) {
                if (!cold && uni < C) hits++;
                uni++;
                seen[x] = run;
            }
        }
        /* 2. update the cache in rank order */
        for (int j = 0; j < k; j++) {
            int x = S[j];
            if (x < 0) continue;
            ts++;
            fut[x]--;
            last[x] = ts;
            if (hpos[x] >= 0) {
                if (flat) {
                    fkey[hpos[x]] = sch_key(fut, last, x);
                    if (fut[x] == 0) Z_APPEND(x);
                } else {
                    sch_rekey(heap, hpos, nheap, sch_key(fut, last, x), x);
                }
                continue;
            }
            /* miss: evict the minimum (fut, last), computed before x's
             * update — x is not in the cache, so its key does not matter */
            if (flat) {
                int slot = nheap;
                if (nheap >= cap) {
                    if (zh >= 0) {
                        int y = zh;
                        Z_REMOVE(y);
                        slot = hpos[y];
                    } else {
                        /* keys are unique (last is), so the scan finds
                         * the same minimum as the heap would */
                        slot = sch_flat_argmin(fkey, nheap);
                    }
                    hpos[fid[slot]] = -1;
                } else {
                    nheap++;
                }
                fkey[slot] = sch_key(fut, last, x);
                fid[slot] = x;
                hpos[x] = slot;
                if (fut[x] == 0) Z_APPEND(x);
                continue;
            }
            if (nheap >= cap) {
                int y = heap[0].id;
                hpos[y] = -1;
                nheap--;
                if (nheap) {
                    heap[0] = heap[nheap];
                    hpos[heap[0].id] = 0;
                    sch_down(heap, hpos, nheap, 0);
                }
            }
            heap[nheap] = (SchEnt){sch_key(fut, last, x), x};
            hpos[x] = nheap++;
            sch_up(heap, hpos, hpos[x]);
        }
        /* 3. slide the look-ahead window */
        if (i + m < T)
            for (int j = 0; j < k; j++) {
                int x = ids[(size_t)(i + m) * k + j];
                if (x < 0) continue;
                fut[x]++;
                if (hpos[x] < 0) continue;
                if (flat) {
                    fkey[hpos[x]] = sch_key(fut, last, x);
                    if (fut[x] == 1) Z_REMOVE(x);
                } else {
                    sch_rekey(heap, hpos, nheap, sch_key(fut, last, x), x);
                }
            }
    }
#undef Z_APPEND
#undef Z_REMOVE
    /* leave no stale membership for the next run */
    for (int c = 0; c < nheap; c++) hpos[flat ? fid[c] : heap[c].id] = -1;
    s->nheap = 0;
    if (requests) *requests = req;
    return hits;
}
