/* intervene-text.c — the text form of an intervention set (engine.h:
 * ms_intervention_parse, _parse_text, _to_string): CLI specs "KIND SPEC",
 * the canonical one-line printer and the parser of whole texts. */
#include <errno.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "intervene-internal.h"

/* --------------------------------------------------------------- parser */

/* Set of indices 0..n-1 as a byte mask. */
typedef struct {
    int n;
    uint8_t *on;
} IdxSet;

/* Parse a decimal index without sign, spaces or overflow. */
static int parse_index(const char *s, size_t len, long *out)
{
    if (len == 0 || len > 9) return -1;
    long v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

/* "a,b-c,*" over 0..set->n-1; what names the field in messages. */
static int parse_list(const char *s, size_t len, IdxSet *set, const char *what, const char *kind,
                      const char *spec, MsError *err)
{
    if (len == 0)
        return ms_error_set(err, MS_EINVAL, "%s %.80s: empty %s list", kind, spec, what);
    size_t i = 0;
    while (i <= len) {
        size_t j = i;
        while (j < len && s[j] != ',') j++;
        const char *it = s + i;
        size_t il = j - i;
        if (il == 0)
            return ms_error_set(err, MS_EINVAL, "%s %.80s: empty item in %s list", kind, spec, what);
        if (il == 1 && it[0] == '*') {
            memset(set->on, 1, (size_t)set->n);
        } else {
            const char *dash = memchr(it, '-', il);
            long a, b;
            if (dash) {
                if (parse_index(it, (size_t)(dash - it), &a) ||
                    parse_index(dash + 1, il - (size_t)(dash - it) - 1, &b))
                    return ms_error_set(err, MS_EINVAL, "%s %.80s: bad %s range '%.*s'", kind, spec,
                                        what, (int)MS_MIN(il, 40), it);
                if (b < a)
                    return ms_error_set(err, MS_EINVAL, "%s %.80s: reversed %s range %ld-%ld", kind,
                                        spec, what, a, b);
            } else {
                if (parse_index(it, il, &a))
                    return ms_error_set(err, MS_EINVAL, "%s %.80s: bad %s '%.*s'", kind, spec, what,
                                        (int)MS_MIN(il, 40), it);
                b = a;
            }
            if (b >= set->n)
                return ms_error_set(err, MS_ERANGE, "%s %.80s: %s %ld out of range 0..%d", kind, spec,
                                    what, b, set->n - 1);
            memset(set->on + a, 1, (size_t)(b - a + 1));
        }
        i = j + 1;
    }
    return 0;
}

/* A finite float, whole field, in the C locale whatever the process uses. */
static int parse_float(const char *s, size_t len, float *out)
{
    char buf[64];
    if (len == 0 || len >= sizeof buf) return -1;
    memcpy(buf, s, len);
    buf[len] = 0;
    /* Only plain decimal syntax: no spaces, hex, inf or nan words. */
    for (size_t i = 0; i < len; i++) {
        char c = buf[i];
        if (!((c >= '0' && c <= '9') || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-'))
            return -1;
    }
    locale_t c_loc = newlocale(LC_ALL_MASK, "C", (locale_t)0);
    if (c_loc == (locale_t)0) return -1;
    char *end = NULL;
    errno = 0;
    double v = strtod_l(buf, &end, c_loc);
    freelocale(c_loc);
    if (end != buf + len || errno == ERANGE || !isfinite(v) || fabs(v) > 3.0e38) return -1;
    *out = (float)v;
    return 0;
}

typedef enum {
    K_SILENCE, K_DROP, K_FORCE, K_STEER, K_SCALE, K_STEER_STD, K_RAISE, K_LOWER, K_TOPK, K_SER, K_COUNT
} Kind;
static const char *const kind_names[K_COUNT] = { "silence", "drop", "force", "steer", "scale", "steer-std",
                                                 "raise", "lower", "top-k", "ser" };

#define UNKNOWN_KIND \
    "unknown intervention (silence, drop, force, steer, scale, steer-std, raise, lower, top-k, ser)"

static Kind kind_of(const char *name)
{
    for (int i = 0; i < K_COUNT; i++)
        if (strcmp(name, kind_names[i]) == 0) return (Kind)i;
    return K_COUNT;
}

/* Apply one spec of one kind to iv; kn labels it in messages ("--silence"
 * on the command line, "silence" in a text).  On error iv may be partly
 * changed: callers work on a copy. */
static int parse_into(MsIntervention *iv, Kind kind, const char *kn, const char *spec, MsError *err)
{
    const char *f[4];
    size_t fl[4];
    int nf = 0;
    const char *p = spec;
    for (;;) {
        const char *c = strchr(p, ':');
        if (nf == 4) return ms_error_set(err, MS_EINVAL, "%s %.80s: too many ':' fields", kn, spec);
        f[nf] = p;
        fl[nf] = c ? (size_t)(c - p) : strlen(p);
        nf++;
        if (!c) break;
        p = c + 1;
    }
    /* raise / lower take an optional margin (default 0.01, SteerMoE's) */
    bool assign = kind == K_RAISE || kind == K_LOWER;
    int want = kind == K_STEER || kind == K_SCALE || kind == K_STEER_STD ? 3
             : kind == K_TOPK ? (nf == 1 ? 1 : 2) : kind == K_SER ? (nf == 2 ? 2 : 3)
             : assign && nf == 3 ? 3 : 2;
    if (nf != want) {
        const char *form = kind == K_STEER ? "L:E:DELTA" : kind == K_SCALE ? "L:E:F"
                         : kind == K_STEER_STD ? "L:E:LAMBDA" : kind == K_TOPK ? "K or L:K"
                         : kind == K_SER ? "KMIN:T or L:KMIN:T"
                         : assign ? "L:E or L:E:D" : "L:E";
        return ms_error_set(err, MS_EINVAL, "%s %.80s: expected %s", kn, spec, form);
    }

    int rc = 0;
    IdxSet ls = { iv->n_layer, calloc((size_t)iv->n_layer, 1) };
    IdxSet es = { iv->n_expert, calloc((size_t)iv->n_expert, 1) };
    if (!ls.on || !es.on) {
        rc = ms_error_set(err, MS_ENOMEM, "%s: out of memory", kn);
        goto out;
    }

    if (kind == K_TOPK) {
        long k;
        const char *ks = f[nf - 1];
        size_t kl = fl[nf - 1];
        if (parse_index(ks, kl, &k)) {
            rc = ms_error_set(err, MS_EINVAL, "%s %.80s: bad k '%.*s'", kn, spec, (int)MS_MIN(kl, 40), ks);
            goto out;
        }
        if (k < 1 || k > iv->n_expert) {
            rc = ms_error_set(err, MS_ERANGE, "%s %.80s: k %ld out of range 1..%d", kn, spec, k,
                              iv->n_expert);
            goto out;
        }
        if (nf == 1) memset(ls.on, 1, (size_t)ls.n);
        else if ((rc = parse_list(f[0], fl[0], &ls, "layer", kn, spec, err))) goto out;
        for (int l = 0; l < iv->n_layer; l++) {
            if (!ls.on[l]) continue;
            if ((rc = ms_iv_layer_check(iv, l, (int)k, err))) {
                ms_error_prefix(err, "%s %.80s: ", kn, spec);
                goto out;
            }
        }
        for (int l = 0; l < iv->n_layer; l++)
            if (ls.on[l]) iv->k[l] = (int)k;
        goto out;
    }

    if (kind == K_SER) {
        long kmin;
        float t;
        const char *ks = f[nf - 2], *ts = f[nf - 1];
        size_t kl = fl[nf - 2], tl = fl[nf - 1];
        if (parse_index(ks, kl, &kmin)) {
            rc = ms_error_set(err, MS_EINVAL, "%s %.80s: bad KMIN '%.*s'", kn, spec, (int)MS_MIN(kl, 40), ks);
            goto out;
        }
        if (kmin < 1 || kmin > iv->n_expert) {
            rc = ms_error_set(err, MS_ERANGE, "%s %.80s: KMIN %ld out of range 1..%d", kn, spec, kmin,
                              iv->n_expert);
            goto out;
        }
        if (parse_float(ts, tl, &t) || !(t >= 0.0f && t <= 1.0f)) {
            rc = ms_error_set(err, MS_EINVAL, "%s %.80s: bad threshold T '%.*s' (want a number in 0..1)", kn,
                              spec, (int)MS_MIN(tl, 40), ts);
            goto out;
        }
        if (nf == 2) memset(ls.on, 1, (size_t)ls.n);
        else if ((rc = parse_list(f[0], fl[0], &ls, "layer", kn, spec, err))) goto out;
        for (int l = 0; l < iv->n_layer; l++) {
            if (!ls.on[l]) continue;
            iv->ser_kmin[l] = (int)kmin;
            iv->ser_t[l] = t;
            if ((rc = ms_iv_layer_check(iv, l, iv->k[l], err))) {
                ms_error_prefix(err, "%s %.80s: ", kn, spec);
                goto out;
            }
        }
        goto out;
    }

    if ((rc = parse_list(f[0], fl[0], &ls, "layer", kn, spec, err))) goto out;
    if ((rc = parse_list(f[1], fl[1], &es, "expert", kn, spec, err))) goto out;
    float val = assign ? 0.01f : 0.0f;
    if (nf == 3 && (parse_float(f[2], fl[2], &val) || (assign && val < 0))) {
        rc = ms_error_set(err, MS_EINVAL, "%s %.80s: bad %s '%.*s' (want a finite number%s)", kn, spec,
                          kind == K_STEER ? "delta" : kind == K_STEER_STD ? "lambda" : assign ? "margin" : "factor",
                          (int)MS_MIN(fl[2], 40), f[2], assign ? " >= 0" : "");
        goto out;
    }
    for (int l = 0; l < iv->n_layer; l++) {
        if (!ls.on[l]) continue;
        size_t off = (size_t)l * iv->n_expert;
        for (int e = 0; e < iv->n_expert; e++) {
            if (!es.on[e]) continue;
            switch (kind) {
            case K_SILENCE: iv->flags[off + e] |= F_SILENCE; break;
            case K_DROP: iv->flags[off + e] |= F_DROP; break;
            case K_FORCE: iv->flags[off + e] |= F_FORCE; break;
            case K_STEER: iv->bias[off + e] = val; break;
            case K_SCALE: iv->scale[off + e] = val; break;
            case K_STEER_STD: iv->lam[off + e] = val; break;
            case K_RAISE: case K_LOWER:
                iv->flags[off + e] = (uint8_t)((iv->flags[off + e] & ~(F_RAISE | F_LOWER)) |
                                               (kind == K_RAISE ? F_RAISE : F_LOWER));
                iv->margin[off + e] = val;
                break;
            default: break;
            }
        }
        if ((rc = ms_iv_layer_check(iv, l, iv->k[l], err))) {
            ms_error_prefix(err, "%s %.80s: ", kn, spec);
            goto out;
        }
    }
out:
    free(ls.on);
    free(es.on);
    return rc;
}

int ms_intervention_parse(MsIntervention *iv, const char *kind, const char *spec, MsError *err)
{
    if (!iv) return ms_error_set(err, MS_EINVAL, "intervention: no set to apply the spec to");
    if (!kind) return ms_error_set(err, MS_EINVAL, "intervention: no kind given");
    Kind kd = kind_of(kind);
    if (kd == K_COUNT)
        return ms_error_set(err, MS_EINVAL, "--%.40s: " UNKNOWN_KIND, kind);
    if (!spec || !*spec) return ms_error_set(err, MS_EINVAL, "--%s: empty spec", kind);
    char lab[48];
    snprintf(lab, sizeof lab, "--%s", kind);
    /* Work on a copy so a failing spec leaves iv exactly as it was. */
    MsIntervention *tmp = ms_intervention_copy(iv);
    if (!tmp) return ms_error_set(err, MS_ENOMEM, "--%s: out of memory", kind);
    int rc = parse_into(tmp, kd, lab, spec, err);
    if (rc == 0) ms_iv_assign(iv, tmp);
    ms_intervention_free(tmp);
    return rc;
}

/* -------------------------------------------------------------- printer */

typedef struct {
    char *s;
    size_t len, cap;
    bool oom;
} Buf;

static void buf_add(Buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void buf_add(Buf *b, const char *fmt, ...)
{
    if (b->oom) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) { b->oom = true; return; }
    if (b->len + (size_t)n + 1 > b->cap) {
        size_t cap = (b->cap ? b->cap * 2 : 128);
        while (cap < b->len + (size_t)n + 1) cap *= 2;
        char *s = realloc(b->s, cap);
        if (!s) { b->oom = true; return; }
        b->s = s;
        b->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* Index mask as "*" when full, else runs: "3", "3-4", "0-2,7". */
static void buf_list(Buf *b, const uint8_t *on, int n)
{
    int cnt = 0;
    for (int i = 0; i < n; i++) cnt += on[i] != 0;
    if (cnt == n) { buf_add(b, "*"); return; }
    bool first = true;
    for (int i = 0; i < n;) {
        if (!on[i]) { i++; continue; }
        int j = i;
        while (j + 1 < n && on[j + 1]) j++;
        if (j > i) buf_add(b, "%s%d-%d", first ? "" : ",", i, j);
        else buf_add(b, "%s%d", first ? "" : ",", i);
        first = false;
        i = j + 1;
    }
}

/* Shortest decimal that reads back as the same float, C locale. */
void ms_iv_fmt_float(char *out, size_t cap, float v, bool plus)
{
    locale_t c_loc = newlocale(LC_ALL_MASK, "C", (locale_t)0);
    locale_t old = c_loc ? uselocale(c_loc) : (locale_t)0;
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(out, cap, plus ? "%+.*g" : "%.*g", prec, (double)v);
        if (strtof(out, NULL) == v) break;
    }
    if (c_loc) {
        uselocale(old);
        freelocale(c_loc);
    }
}

/* One value kind (flag bit, or bias/scale rows) printed as "kind L:E[:V] ...".
 * Entries are (value, expert set) per layer; layers with the same pair are
 * merged into one layer list.  Order: first layer, then first expert. */
static void print_kind(Buf *b, const MsIntervention *iv, Kind kind, bool *any)
{
    const int L = iv->n_layer, E = iv->n_expert;
    uint8_t *done = calloc((size_t)L * E, 1);  /* (l,e) already printed */
    uint8_t *es = malloc((size_t)E), *ls = malloc((size_t)L), *tmp = malloc((size_t)E);
    if (!done || !es || !ls || !tmp) { b->oom = true; goto out; }
    bool started = false;

    #define ACTIVE(l, e) (kind <= K_FORCE || kind >= K_RAISE ? (iv->flags[(size_t)(l) * E + (e)] & \
        (kind == K_SILENCE ? F_SILENCE : kind == K_DROP ? F_DROP : kind == K_FORCE ? F_FORCE \
         : kind == K_RAISE ? F_RAISE : F_LOWER)) != 0 \
        : kind == K_STEER ? iv->bias[(size_t)(l) * E + (e)] != 0.0f \
        : kind == K_STEER_STD ? iv->lam[(size_t)(l) * E + (e)] != 0.0f : iv->scale[(size_t)(l) * E + (e)] != 1.0f)
    #define VALUE(l, e) (kind == K_STEER ? iv->bias[(size_t)(l) * E + (e)] \
        : kind == K_SCALE ? iv->scale[(size_t)(l) * E + (e)] \
        : kind == K_STEER_STD ? iv->lam[(size_t)(l) * E + (e)] \
        : kind >= K_RAISE ? iv->margin[(size_t)(l) * E + (e)] : 0.0f)

    for (int l = 0; l < L; l++) {
        for (int e = 0; e < E; e++) {
            if (done[(size_t)l * E + e] || !ACTIVE(l, e)) continue;
            float v = VALUE(l, e);
            /* expert set of this value at layer l */
            for (int x = 0; x < E; x++) es[x] = ACTIVE(l, x) && VALUE(l, x) == v;
            /* layers with exactly the same set for this value */
            memset(ls, 0, (size_t)L);
            for (int m = l; m < L; m++) {
                bool same = true;
                for (int x = 0; x < E && same; x++) {
                    tmp[x] = ACTIVE(m, x) && VALUE(m, x) == v;
                    same = tmp[x] == es[x];
                }
                if (same) ls[m] = 1;
            }
            for (int m = 0; m < L; m++)
                if (ls[m])
                    for (int x = 0; x < E; x++)
                        if (es[x]) done[(size_t)m * E + x] = 1;
            if (!started) {
                buf_add(b, "%s%s", *any ? "; " : "", kind_names[kind]);
                started = true;
                *any = true;
            }
            buf_add(b, " ");
            buf_list(b, ls, L);
            buf_add(b, ":");
            buf_list(b, es, E);
            if (kind >= K_STEER) {
                char num[48];
                ms_iv_fmt_float(num, sizeof num, v, kind == K_STEER || kind == K_STEER_STD);
                buf_add(b, ":%s", num);
            }
        }
    }
    #undef ACTIVE
    #undef VALUE
out:
    free(done);
    free(es);
    free(ls);
    free(tmp);
}

char *ms_intervention_to_string(const MsIntervention *iv)
{
    Buf b = { 0 };
    bool any = false;
    buf_add(&b, "%s", "");
    if (iv) {
        for (int kd = K_SILENCE; kd < K_TOPK; kd++) print_kind(&b, iv, (Kind)kd, &any);
        /* top-k: group layers by override value, in order of first layer. */
        uint8_t *ls = calloc((size_t)iv->n_layer, 1);
        uint8_t *done = calloc((size_t)iv->n_layer, 1);
        if (!ls || !done) b.oom = true;
        bool started = false;
        for (int l = 0; ls && done && l < iv->n_layer; l++) {
            if (!iv->k[l] || done[l]) continue;
            int k = iv->k[l];
            for (int m = 0; m < iv->n_layer; m++) ls[m] = iv->k[m] == k;
            for (int m = 0; m < iv->n_layer; m++) done[m] |= ls[m];
            if (!started) {
                buf_add(&b, "%stop-k", any ? "; " : "");
                started = any = true;
            }
            int cnt = 0;
            for (int m = 0; m < iv->n_layer; m++) cnt += ls[m];
            if (cnt == iv->n_layer) {
                buf_add(&b, " %d", k);
            } else {
                buf_add(&b, " ");
                buf_list(&b, ls, iv->n_layer);
                buf_add(&b, ":%d", k);
            }
        }
        /* ser: group layers by (KMIN, T), always with the layer list */
        if (done) memset(done, 0, (size_t)iv->n_layer);
        started = false;
        for (int l = 0; ls && done && l < iv->n_layer; l++) {
            if (!iv->ser_kmin[l] || done[l]) continue;
            int km = iv->ser_kmin[l];
            float t = iv->ser_t[l];
            for (int m = 0; m < iv->n_layer; m++) ls[m] = iv->ser_kmin[m] == km && iv->ser_t[m] == t;
            for (int m = 0; m < iv->n_layer; m++) done[m] |= ls[m];
            if (!started) {
                buf_add(&b, "%sser", any ? "; " : "");
                started = any = true;
            }
            char num[48];
            ms_iv_fmt_float(num, sizeof num, t, false);
            buf_add(&b, " ");
            buf_list(&b, ls, iv->n_layer);
            buf_add(&b, ":%d:%s", km, num);
        }
        free(ls);
        free(done);
    }
    if (b.oom) {
        free(b.s);
        return NULL;
    }
    return b.s;
}

/* Apply a whole text (modified in place) to iv, a scratch copy: partly
 * changed on error, when *bad_line receives the 1-based line at fault. */
static int parse_text_into(MsIntervention *iv, char *s, int *bad_line, MsError *err)
{
    int line = 0;
    for (char *ln = s; ln; ) {
        char *nl = strchr(ln, '\n');
        if (nl) *nl = '\0';
        line++;
        char *hash = strchr(ln, '#');   /* comment to the end of the line */
        if (hash) *hash = '\0';
        char *save = NULL;
        for (char *cl = strtok_r(ln, ";", &save); cl; cl = strtok_r(NULL, ";", &save)) {
            char *save2 = NULL;
            char *kind = strtok_r(cl, " \t\r\f\v", &save2);
            if (!kind) continue;   /* blank clause or trailing ';' */
            Kind kd = kind_of(kind);
            int rc = 0, nspec = 0;
            if (kd == K_COUNT) {
                rc = ms_error_set(err, MS_EINVAL, "'%.40s': " UNKNOWN_KIND, kind);
            } else {
                for (char *sp = strtok_r(NULL, " \t\r\f\v", &save2); sp && !rc;
                     sp = strtok_r(NULL, " \t\r\f\v", &save2), nspec++)
                    rc = parse_into(iv, kd, kind, sp, err);
                if (!rc && nspec == 0) rc = ms_error_set(err, MS_EINVAL, "'%s' without a spec", kind);
            }
            if (rc) {
                *bad_line = line;
                return rc;
            }
        }
        ln = nl ? nl + 1 : NULL;
    }
    return 0;
}

/* Text that is not valid UTF-8 is refused wherever it is, comments
 * included (one rule for the text, a file and a flag): the line and column,
 * not the bytes (they would reach the terminal raw).  path NULL: text. */
static int check_utf8(const char *s, size_t len, const char *path, MsError *err)
{
    size_t bad = ms_utf8_valid_prefix(s, len);
    if (bad >= len) return 0;
    int line = 1;
    size_t col = 1;
    for (size_t k = 0; k < bad; k++) {
        if (s[k] == '\n') { line++; col = 1; }
        else col++;
    }
    if (path)
        return ms_error_set(err, MS_EFORMAT, "%s:%d:%zu: invalid UTF-8 (byte 0x%02x)", path, line, col,
                            (unsigned char)s[bad]);
    return ms_error_set(err, MS_EFORMAT, "intervention: line %d, column %zu: invalid UTF-8 (byte 0x%02x)", line,
                        col, (unsigned char)s[bad]);
}

int ms_intervention_parse_text(MsIntervention *iv, const char *text, MsError *err)
{
    if (!iv) return ms_error_set(err, MS_EINVAL, "intervention: no set to apply the text to");
    if (!text) return ms_error_set(err, MS_EINVAL, "intervention: no text");
    int urc = check_utf8(text, strlen(text), NULL, err);
    if (urc < 0) return urc;
    char *s = strdup(text);
    MsIntervention *tmp = ms_intervention_copy(iv);
    int rc = 0;
    if (!s || !tmp) {
        rc = ms_error_set(err, MS_ENOMEM, "intervention: out of memory");
    } else {
        const char *nl = strchr(text, '\n');
        bool lined = nl && nl[strspn(nl, " \t\r\n\f\v")] != '\0';   /* a second line with content */
        int line = 0;
        rc = parse_text_into(tmp, s, &line, err);
        if (rc == 0) ms_iv_assign(iv, tmp);
        else if (lined) ms_error_prefix(err, "line %d: ", line);
        else ms_error_prefix(err, "intervention: ");
    }
    free(s);
    ms_intervention_free(tmp);
    return rc;
}

int ms_intervention_load(MsIntervention *iv, const char *path, MsError *err)
{
    if (!iv || !path) return ms_error_set(err, MS_EINVAL, "intervention: no set or no file name");
    enum { MAX_BYTES = 16 << 20 };   /* sets are small; refuse a wrong file early */
    FILE *fp = fopen(path, "rb");
    if (!fp) return ms_error_set(err, MS_EIO, "%s: %s", path, strerror(errno));
    char *s = NULL;
    size_t len = 0, cap = 0;
    int rc = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 8192;
            char *ns = realloc(s, cap);
            if (!ns) { rc = ms_error_set(err, MS_ENOMEM, "%s: out of memory", path); break; }
            s = ns;
        }
        size_t got = fread(s + len, 1, cap - len - 1, fp);
        len += got;
        if (len > MAX_BYTES) { rc = ms_error_set(err, MS_EFORMAT, "%s: larger than 16 MiB, not an intervention set", path); break; }
        if (got == 0) {
            if (ferror(fp)) rc = ms_error_set(err, MS_EIO, "%s: read error", path);
            break;
        }
    }
    fclose(fp);
    if (rc == 0 && memchr(s, '\0', len))
        rc = ms_error_set(err, MS_EFORMAT, "%s: NUL byte in intervention text", path);
    if (rc == 0) rc = check_utf8(s, len, path, err);
    MsIntervention *tmp = rc ? NULL : ms_intervention_copy(iv);
    if (rc == 0 && !tmp) rc = ms_error_set(err, MS_ENOMEM, "%s: out of memory", path);
    if (rc == 0) {
        s[len] = '\0';
        int line = 0;
        rc = parse_text_into(tmp, s, &line, err);
        if (rc == 0) ms_iv_assign(iv, tmp);
        else ms_error_prefix(err, "%s:%d: ", path, line);
    }
    ms_intervention_free(tmp);
    free(s);
    return rc;
}
