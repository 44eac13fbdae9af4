/* wb-text.c — the workbench's label texts (wb-text.h). */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quant.h"
#include "wb-text.h"

void wb_format_duration(double s, char *buf, size_t size)
{
    if (!(s >= 0) || !isfinite(s)) {
        snprintf(buf, size, "?");
        return;
    }
    long t = (long)(s + 0.5);
    if (t < 60) snprintf(buf, size, "%ld s", t);
    else if (t < 3600) snprintf(buf, size, "%ld min %02ld s", t / 60, t % 60);
    else snprintf(buf, size, "%ld h %02ld min", t / 3600, (t % 3600) / 60);
}

/* 1234567 -> "1,234,567" */
static void thousands(int64_t v, char *buf, size_t size)
{
    char tmp[32];
    snprintf(tmp, sizeof tmp, "%lld", (long long)(v < 0 ? -v : v));
    size_t n = strlen(tmp), o = 0;
    char out[48];
    if (v < 0) out[o++] = '-';
    for (size_t i = 0; i < n; i++) {
        if (i && (n - i) % 3 == 0) out[o++] = ',';
        out[o++] = tmp[i];
    }
    out[o] = '\0';
    snprintf(buf, size, "%s", out);
}

double wb_progress_fraction(const MsProgress *p)
{
    if (!p || p->total <= 0) return 0;
    double f = (double)p->done / (double)p->total;
    return f < 0 ? 0 : f > 1 ? 1 : f;
}

void wb_progress_text(const char *what, const char *unit, const MsProgress *p, char *buf, size_t size)
{
    size_t n = (size_t)snprintf(buf, size, "%s", what ? what : "Working");
    if (!p) return;
    char a[32], b[32];
#define PUT(...) do { if (n < size) n += (size_t)snprintf(buf + n, size - n, __VA_ARGS__); } while (0)
    thousands(p->done, a, sizeof a);
    if (p->total > 0) {
        thousands(p->total, b, sizeof b);
        PUT(": %s / %s %s", a, b, unit ? unit : "");
    } else {
        PUT(": %s %s", a, unit ? unit : "");
    }
    if (p->tokens > 0) {
        thousands(p->tokens, a, sizeof a);
        PUT(" · %s tokens", a);
    }
    if (p->tokens_per_s > 0 && isfinite(p->tokens_per_s)) PUT(" · %.0f tokens/s", p->tokens_per_s);
    if (p->eta_s >= 0 && isfinite(p->eta_s) && (p->total <= 0 || p->done < p->total)) {
        wb_format_duration(p->eta_s, a, sizeof a);
        PUT(" · about %s left", a);
    }
#undef PUT
}

static const char *gating_name(MsGating g) { return g == MS_GATING_SIGMOID ? "sigmoid" : "softmax"; }

int wb_model_info_rows(const MsModel *m, const char *path, WbInfoRow *rows, int max)
{
    const MsModelInfo *mi = ms_model_info(m);
    int n = 0, n_moe = 0;
    for (int l = 0; l < mi->n_layer; l++) n_moe += ms_model_layer_is_moe(m, l);
#define ROW(nm, ...)                                                        \
    do {                                                                    \
        if (n < max) {                                                      \
            snprintf(rows[n].name, sizeof rows[n].name, "%s", nm);          \
            snprintf(rows[n].value, sizeof rows[n].value, __VA_ARGS__);     \
            n++;                                                            \
        }                                                                   \
    } while (0)
    if (path) {
        const char *base = strrchr(path, '/');
        ROW("File", "%s", base ? base + 1 : path);
    }
    if (mi->name && *mi->name) ROW("Name", "%s", mi->name);
    ROW("Architecture", "%s", mi->arch_name ? mi->arch_name : "?");
    ROW("Layers", "%d (%d MoE)", mi->n_layer, n_moe);
    if (mi->n_expert_shared > 0)
        ROW("Experts", "%d routed, top-%d, %d shared", mi->n_expert, mi->n_expert_used, mi->n_expert_shared);
    else
        ROW("Experts", "%d routed, top-%d", mi->n_expert, mi->n_expert_used);
    ROW("Gating", "%s%s", gating_name(mi->gating), mi->norm_w ? ", top-k renormalised" : "");
    ROW("Embedding", "%d", mi->n_embd);
    ROW("Heads", "%d (%d KV)", mi->n_head, mi->n_head_kv);
    ROW("Vocabulary", "%d tokens", mi->n_vocab);
    ROW("Context", "%d tokens", mi->n_ctx_train);
    const char *tn = ms_type_name(mi->weight_type);
    ROW("Weights", "%s", tn ? tn : "?");
    /* decimal units, as the README gives the default model's 8.8 MB */
    if (mi->file_size >= 1000000000u) ROW("Size", "%.2f GB", mi->file_size / 1e9);
    else ROW("Size", "%.1f MB", mi->file_size / 1e6);
    /* which one decides speed and whether other processes share the pages */
    if (ms_gguf_weights(ms_model_gguf(m)) == MS_WEIGHTS_COPIED) ROW("Memory", "private copy");
    else ROW("Memory", "mapped from the file");
#undef ROW
    return n;
}

/* Append a UTF-8 character or escape of s[*i] to out (size-bounded). */
static size_t put_char(const unsigned char *s, size_t len, size_t *i, char *out, size_t o, size_t size)
{
    unsigned char c = s[*i];
    const char *rep = NULL;
    char esc[8];
    size_t clen = 1;
    if (c == '\n') rep = "\xe2\x90\xa4";      /* ␤ */
    else if (c == '\t') rep = "\xe2\x90\x89"; /* ␉ */
    else if (c < 0x20 || c == 0x7f) {
        snprintf(esc, sizeof esc, "\\x%02x", c);
        rep = esc;
    } else if (c >= 0x80) {
        clen = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 0;
        bool ok = clen > 0 && *i + clen <= len;
        for (size_t k = 1; ok && k < clen; k++) ok = (s[*i + k] & 0xc0) == 0x80;
        if (!ok) {
            snprintf(esc, sizeof esc, "\\x%02x", c);
            rep = esc;
            clen = 1;
        }
    }
    if (rep) {
        size_t rl = strlen(rep);
        if (o + rl < size) memcpy(out + o, rep, rl), o += rl;
    } else if (o + clen < size) {
        memcpy(out + o, s + *i, clen);
        o += clen;
    }
    *i += clen;
    return o;
}

void wb_prompt_row_text(int index, const char *text, size_t len, const char *labels_json, int n_tokens,
                        int max_chars, char *buf, size_t size)
{
    if (!size) return;
    size_t o = (size_t)snprintf(buf, size, "#%d", index);
    if (o >= size) return;
    if (labels_json) {
        json_t *j = json_loads(labels_json, 0, NULL);
        const char *k;
        json_t *v;
        if (json_is_object(j)) {
            /* the short labels, as the bundled sets have them (language, domain) first */
            const char *pref[] = { "language", "domain", "class" }, *shown[3];
            int ns = 0;
            for (size_t i = 0; i < 3; i++) {
                v = json_object_get(j, pref[i]);
                if (!json_is_string(v)) continue;
                bool dup = false;   /* "code · code · code" says it once */
                for (int k = 0; k < ns; k++) dup |= !strcmp(shown[k], json_string_value(v));
                if (dup) continue;
                shown[ns++] = json_string_value(v);
                if (o < size) o += (size_t)snprintf(buf + o, size - o, " · %s", json_string_value(v));
            }
            json_object_foreach(j, k, v) {
                if (!strcmp(k, "language") || !strcmp(k, "domain") || !strcmp(k, "class") || !strcmp(k, "pair_id"))
                    continue;
                if (json_is_string(v) && o < size) o += (size_t)snprintf(buf + o, size - o, " · %s=%s", k, json_string_value(v));
            }
        }
        json_decref(j);
    }
    if (o < size) {
        if (n_tokens >= 0) o += (size_t)snprintf(buf + o, size - o, " · %d tokens — ", n_tokens);
        else o += (size_t)snprintf(buf + o, size - o, " · not traced — ");
    }
    if (o >= size) {
        buf[size - 1] = '\0';
        return;
    }
    const unsigned char *s = (const unsigned char *)text;
    size_t i = 0;
    int chars = 0;
    while (i < len && o + 8 < size && (max_chars <= 0 || chars < max_chars)) {
        o = put_char(s, len, &i, buf, o, size);
        chars++;
    }
    if (i < len && o + 4 < size) {
        memcpy(buf + o, "\xe2\x80\xa6", 3); /* … */
        o += 3;
    }
    buf[o < size ? o : size - 1] = '\0';
}

int wb_labels_from_spec(const char *spec, char **json, MsError *err)
{
    *json = NULL;
    if (!spec) return 0;
    json_t *o = json_object();
    if (!o) return ms_error_set(err, MS_ENOMEM, "out of memory");
    char *copy = strdup(spec);
    if (!copy) {
        json_decref(o);
        return ms_error_set(err, MS_ENOMEM, "out of memory");
    }
    int rc = 0;
    char *save = NULL;
    for (char *part = strtok_r(copy, ",;", &save); part; part = strtok_r(NULL, ",;", &save)) {
        while (*part == ' ' || *part == '\t') part++;
        char *end = part + strlen(part);
        while (end > part && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\n' || end[-1] == '\r')) *--end = '\0';
        if (!*part) continue;
        char *eq = strchr(part, '=');
        if (!eq) {
            rc = ms_error_set(err, MS_EFORMAT, "labels: '%s' is not key=value", part);
            break;
        }
        char *ke = eq;
        while (ke > part && (ke[-1] == ' ' || ke[-1] == '\t')) ke--;
        *ke = '\0';
        char *v = eq + 1;
        while (*v == ' ' || *v == '\t') v++;
        if (!*part) {
            rc = ms_error_set(err, MS_EFORMAT, "labels: '=%s' has no key", v);
            break;
        }
        json_t *sv = json_string(v);
        if (!sv) {
            rc = ms_error_set(err, MS_EFORMAT, "labels: '%s' is not valid UTF-8", part);
            break;
        }
        json_object_set_new(o, part, sv);
    }
    free(copy);
    if (!rc && json_object_size(o) > 0) {
        *json = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
        if (!*json) rc = ms_error_set(err, MS_ENOMEM, "out of memory");
    }
    json_decref(o);
    return rc;
}

int wb_prompts_typed(const char *text, size_t len, const char *labels_spec, MsPrompt **out, size_t *n,
                     MsError *err)
{
    char *labels = NULL;
    *out = NULL;
    *n = 0;
    int rc = wb_labels_from_spec(labels_spec, &labels, err);
    if (rc < 0) return rc;
    rc = ms_prompts_parse("typed prompts", text, len, out, n, err);
    if (rc >= 0 && *n == 0) rc = ms_error_set(err, MS_EINVAL, "typed prompts: no prompt (one prompt per line)");
    for (size_t i = 0; rc >= 0 && labels && i < *n; i++) {
        if ((*out)[i].labels_json) continue;
        if (!((*out)[i].labels_json = strdup(labels))) rc = ms_error_set(err, MS_ENOMEM, "out of memory");
    }
    free(labels);
    if (rc < 0) {
        ms_prompts_free(*out, *n);
        *out = NULL;
        *n = 0;
    }
    return rc < 0 ? rc : 0;
}

char *wb_markup_escape(const char *s, size_t len)
{
    size_t cap = len * 6 + 1, o = 0;
    char *r = malloc(cap);
    if (!r) return NULL;
    for (size_t i = 0; i < len; i++) {
        const char *rep = NULL;
        switch (s[i]) {
        case '&': rep = "&amp;"; break;
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '"': rep = "&quot;"; break;
        case '\'': rep = "&#39;"; break;
        default: break;
        }
        if (rep) {
            size_t rl = strlen(rep);
            memcpy(r + o, rep, rl);
            o += rl;
        } else if ((unsigned char)s[i] < 0x20 && s[i] != '\n' && s[i] != '\t') {
            o += (size_t)snprintf(r + o, cap - o, "\\x%02x", (unsigned char)s[i]);
        } else {
            r[o++] = s[i];
        }
    }
    r[o] = '\0';
    return r;
}

/* words (runs of non-space bytes) in s[0..len) */
static int count_words(const char *s, size_t len)
{
    int n = 0;
    bool in = false;
    for (size_t i = 0; i < len; i++) {
        bool sp = s[i] == ' ' || s[i] == '\n' || s[i] == '\t' || s[i] == '\r';
        if (!sp && !in) n++;
        in = !sp;
    }
    return n;
}

char *wb_diff_markup(const char *a, const char *b, int side, int *n_marked)
{
    MsDiffPiece *p = NULL;
    int n = 0;
    if (n_marked) *n_marked = 0;
    if (ms_word_diff(a ? a : "", b ? b : "", &p, &n) < 0) return NULL;
    size_t cap = 64;
    for (int i = 0; i < n; i++) cap += p[i].len * 6 + 96;
    char *r = malloc(cap);
    if (!r) {
        free(p);
        return NULL;
    }
    size_t o = 0;
    r[0] = '\0';
    MsDiffOp mine = side ? MS_DIFF_INS : MS_DIFF_DEL, other = side ? MS_DIFF_DEL : MS_DIFF_INS;
    for (int i = 0; i < n; i++) {
        if (p[i].op == other) continue;
        char *e = wb_markup_escape(p[i].text, p[i].len);
        if (!e) {
            free(r);
            free(p);
            return NULL;
        }
        if (p[i].op == mine) {
            /* strike the baseline's lost words, underline the new ones; the
             * tints are the comparison view's (blue: only the baseline's,
             * red: only the intervened model's), so a colour means one thing */
            o += (size_t)snprintf(r + o, cap - o, side ? "<span background=\"#fac7bd\" underline=\"single\">%s</span>"
                                                       : "<span background=\"#bdd4f2\" strikethrough=\"true\">%s</span>",
                                  e);
            if (n_marked) *n_marked += count_words(p[i].text, p[i].len);
        } else {
            o += (size_t)snprintf(r + o, cap - o, "%s", e);
        }
        free(e);
    }
    free(p);
    return r;
}
