/* prompts.c — prompt files: plain text (one prompt per line, \n \t \\
 * escapes) or JSONL ({"text": ..., "labels": {...}}), see prompts.h. */
#include "prompts.h"
#include "trace.h"

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ctype.h>
#include <stdint.h>
#include <sys/stat.h>

int ms_prompt_unescape(char *s, size_t len, MsError *err)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] != '\\') {
            s[o++] = s[i];
            continue;
        }
        if (i + 1 >= len)
            return ms_error_set(err, MS_EFORMAT, "%zu: backslash at end of line (write \\\\ for a backslash)", i + 1);
        char c = s[++i];
        switch (c) {
        case 'n': s[o++] = '\n'; break;
        case 't': s[o++] = '\t'; break;
        case '\\': s[o++] = '\\'; break;
        default:
            if ((unsigned char)c >= 0x20 && (unsigned char)c < 0x7f)
                return ms_error_set(err, MS_EFORMAT, "%zu: unknown escape \\%c (only \\n \\t \\\\)", i, c);
            return ms_error_set(err, MS_EFORMAT, "%zu: unknown escape \\ followed by byte 0x%02x (only \\n \\t \\\\)",
                                i, (unsigned char)c);
        }
    }
    if (o < len) s[o] = 0;
    return (int)o;
}

void ms_prompts_free(MsPrompt *p, size_t n)
{
    if (!p) return;
    for (size_t i = 0; i < n; i++) {
        free(p[i].text);
        free(p[i].labels_json);
    }
    free(p);
}

static bool is_blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\f' && s[i] != '\v') return false;
    return true;
}

/* ------------------------------------------------------------ text rule */

int ms_text_utf8_check(const char *str, size_t len, size_t *off, const char **why)
{
    const unsigned char *s = (const unsigned char *)str;
    for (size_t i = 0; i < len;) {
        unsigned c = s[i];
        if (c == 0) {
            if (off) *off = i;
            if (why) *why = "NUL character";
            return -1;
        }
        if (c < 0x80) { i++; continue; }
        size_t n;
        uint32_t cp;
        if (c >= 0xC2 && c <= 0xDF) { n = 2; cp = c & 0x1F; }
        else if (c >= 0xE0 && c <= 0xEF) { n = 3; cp = c & 0x0F; }
        else if (c >= 0xF0 && c <= 0xF4) { n = 4; cp = c & 0x07; }
        else goto bad;
        if (len - i < n) goto bad;
        for (size_t k = 1; k < n; k++) {
            if ((s[i + k] & 0xC0) != 0x80) goto bad;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        if ((n == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
            goto bad;
        i += n;
        continue;
    bad:
        if (off) *off = i;
        if (why) *why = "invalid UTF-8";
        return -1;
    }
    return 0;
}

int ms_text_check(const char *name, int first_line, const char *s, size_t len, MsError *err)
{
    size_t off = 0;
    const char *why = NULL;
    if (ms_text_utf8_check(s, len, &off, &why) == 0) return 0;
    char what[64];
    if (s[off]) snprintf(what, sizeof what, "%s (byte 0x%02x)", why, (unsigned char)s[off]);
    else snprintf(what, sizeof what, "%s", why);
    if (first_line <= 0)
        return ms_error_set(err, MS_EFORMAT, "%s: %s at byte %zu (text must be valid UTF-8 without NUL)", name, what,
                            off + 1);
    long line = first_line;
    size_t bol = 0;
    for (size_t i = 0; i < off; i++)
        if (s[i] == '\n') { line++; bol = i + 1; }
    return ms_error_set(err, MS_EFORMAT, "%s:%ld:%zu: %s (text must be valid UTF-8 without NUL)", name, line,
                        off - bol + 1, what);
}

/* Read a whole file, at most max bytes; with max_line > 0 a line longer
 * than that stops the read at once (an endless line such as /dev/zero). */
static int read_bounded(const char *path, size_t max, size_t max_line, char **out, size_t *out_len, MsError *err)
{
    struct stat st;
    FILE *f = fopen(path, "rb");
    if (!f) return ms_error_set(err, MS_EIO, "%s: %s", path, strerror(errno));
    if (fstat(fileno(f), &st) == 0) {
        if (S_ISDIR(st.st_mode)) {
            fclose(f);
            return ms_error_set(err, MS_EIO, "%s: is a directory", path);
        }
        if (S_ISREG(st.st_mode) && (uint64_t)st.st_size > max) {
            fclose(f);
            return ms_error_set(err, MS_ERANGE, "%s: %lld bytes, larger than the limit of %zu MiB", path,
                                (long long)st.st_size, max >> 20);
        }
    }
    size_t cap = 1 << 14, len = 0, bol = 0;   /* bol: start of the current line */
    long line = 1;
    char *buf = malloc(cap + 1);
    int rc = 0;
    if (!buf) {
        fclose(f);
        return ms_error_set(err, MS_ENOMEM, "%s: out of memory", path);
    }
    for (;;) {
        if (len == cap) {
            size_t nc = cap * 2 > max + 1 ? max + 1 : cap * 2;
            char *nb = nc > cap ? realloc(buf, nc + 1) : NULL;
            if (!nb) {
                rc = ms_error_set(err, MS_ENOMEM, "%s: out of memory", path);
                break;
            }
            buf = nb;
            cap = nc;
        }
        size_t r = fread(buf + len, 1, cap - len, f);
        if (r == 0) {
            if (ferror(f)) rc = ms_error_set(err, MS_EIO, "%s: read error: %s", path, strerror(errno));
            break;
        }
        size_t from = len;
        len += r;
        if (max_line) {
            for (size_t i = from; i < len; i++)
                if (buf[i] == '\n') { line++; bol = i + 1; }
            if (len - bol > max_line) {
                /* the most specific reason first: a binary file shows a NUL */
                const char *z = memchr(buf + bol, '\0', len - bol);
                if (z) rc = ms_error_set(err, MS_EFORMAT, "%s:%ld:%zu: NUL character (text must be valid UTF-8 "
                                         "without NUL)", path, line, (size_t)(z - (buf + bol)) + 1);
                else rc = ms_error_set(err, MS_ERANGE, "%s:%ld: line longer than the limit of %zu KiB", path, line,
                                       max_line >> 10);
                break;
            }
        }
        if (len > max) {
            rc = ms_error_set(err, MS_ERANGE, "%s: larger than the limit of %zu MiB", path, max >> 20);
            break;
        }
    }
    fclose(f);
    if (rc) {
        free(buf);
        return rc;
    }
    buf[len] = '\0';
    *out = buf;
    *out_len = len;
    return 0;
}

int ms_text_read_file(const char *path, size_t max, char **buf, size_t *len, MsError *err)
{
    return read_bounded(path, max ? max : MS_PROMPT_MAX_FILE, 0, buf, len, err);
}

static int push(MsPrompt **v, size_t *n, size_t *cap, MsPrompt p)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 16;
        MsPrompt *nv = realloc(*v, nc * sizeof *nv);
        if (!nv) return MS_ENOMEM;
        *v = nv;
        *cap = nc;
    }
    (*v)[(*n)++] = p;
    return 0;
}

/* Whether a string anywhere inside j holds a NUL: labels are read back with
 * jansson's default flags, which refuse "\u0000", so such a label would be
 * lost later instead of refused now. */
static bool json_holds_nul(const json_t *j)
{
    if (json_is_string(j)) return memchr(json_string_value(j), '\0', json_string_length(j)) != NULL;
    if (json_is_array(j)) {
        for (size_t i = 0; i < json_array_size(j); i++)
            if (json_holds_nul(json_array_get(j, i))) return true;
    } else if (json_is_object(j)) {
        const char *k;
        const json_t *v;
        json_object_foreach((json_t *)j, k, v) if (json_holds_nul(v)) return true;
    }
    return false;
}

/* One JSONL line -> prompt.  Returns 0 or MS_EFORMAT with err = "problem". */
static int parse_jsonl(const char *line, size_t len, MsPrompt *p, MsError *err)
{
    json_error_t je;
    json_t *o = json_loadb(line, len, JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES, &je);
    if (!o) return ms_error_set(err, MS_EFORMAT, "%d: invalid JSON: %s", je.column, je.text);
    int rc = 0;
    json_t *t = json_object_get(o, "text");
    json_t *l = json_object_get(o, "labels");
    if (!json_is_object(o)) {
        rc = ms_error_set(err, MS_EFORMAT, "expected a JSON object {\"text\": ...}");
    } else if (!json_is_string(t)) {
        rc = ms_error_set(err, MS_EFORMAT, t ? "\"text\" must be a string" : "missing \"text\"");
    } else if (l && !json_is_null(l) && !json_is_object(l)) {
        rc = ms_error_set(err, MS_EFORMAT, "\"labels\" must be an object");
    } else if (memchr(json_string_value(t), '\0', json_string_length(t))) {
        rc = ms_error_set(err, MS_EFORMAT, "\"text\" holds a NUL character (\\u0000; text must be valid UTF-8 "
                          "without NUL)");
    } else if (l && json_holds_nul(l)) {
        rc = ms_error_set(err, MS_EFORMAT, "\"labels\" hold a NUL character (\\u0000)");
    } else {
        size_t n = json_string_length(t);
        p->text = malloc(n + 1);
        if (!p->text) {
            rc = ms_error_set(err, MS_ENOMEM, "out of memory");
        } else {
            memcpy(p->text, json_string_value(t), n);
            p->text[n] = 0;
            p->len = n;
            if (l && json_is_object(l)) {
                p->labels_json = json_dumps(l, JSON_COMPACT | JSON_SORT_KEYS);
                if (!p->labels_json) {
                    free(p->text);
                    p->text = NULL;
                    rc = ms_error_set(err, MS_ENOMEM, "out of memory");
                }
            }
        }
    }
    json_decref(o);
    return rc;
}

int ms_prompts_read(const char *path, MsPrompt **out, size_t *n_out, MsError *err)
{
    /* Whole file in memory (bounded): line handling (CRLF, escapes) stays
     * simple and every line is checked before anything runs. */
    char *buf = NULL;
    size_t len = 0;
    int rc = read_bounded(path, MS_PROMPT_MAX_FILE, MS_PROMPT_MAX_LINE, &buf, &len, err);
    if (rc) return rc;
    rc = ms_prompts_parse(path, buf, len, out, n_out, err);
    free(buf);
    return rc;
}

int ms_prompts_parse(const char *name, const char *buf, size_t len, MsPrompt **out, size_t *n_out,
                     MsError *err)
{
    int rc = 0;
    /* Skip a UTF-8 BOM; detect JSONL by the first non-blank character. */
    size_t start = len >= 3 && !memcmp(buf, "\xEF\xBB\xBF", 3) ? 3 : 0;
    bool jsonl = false;
    for (size_t i = start; i < len; i++) {
        char c = buf[i];
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') continue;
        jsonl = c == '{';
        break;
    }

    MsPrompt *v = NULL;
    size_t n = 0, vcap = 0;
    int lineno = 0;
    for (size_t pos = start; pos < len && rc == 0;) {
        const char *nl = memchr(buf + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - buf) : len;
        size_t ll = end - pos;
        const char *line = buf + pos;
        lineno++;
        pos = end + 1;
        if (ll > MS_PROMPT_MAX_LINE) {
            const char *z = memchr(line, '\0', ll);
            if (z) rc = ms_error_set(err, MS_EFORMAT, "%s:%d:%zu: NUL character (text must be valid UTF-8 without NUL)",
                                     name, lineno, (size_t)(z - line) + 1);
            else rc = ms_error_set(err, MS_ERANGE, "%s:%d: line longer than the limit of %zu KiB", name, lineno,
                                   MS_PROMPT_MAX_LINE >> 10);
            break;
        }
        if (ll > 0 && line[ll - 1] == '\r') ll--;   /* CRLF files */
        if (is_blank(line, ll)) continue;
        /* the raw line: valid UTF-8, no NUL (an escape cannot make it invalid) */
        if ((rc = ms_text_check(name, lineno, line, ll, err)) < 0) break;
        MsPrompt p = { .line = lineno };
        MsError e = { 0 };
        if (jsonl) {
            rc = parse_jsonl(line, ll, &p, &e);
        } else {
            p.text = malloc(ll + 1);
            if (!p.text) {
                rc = ms_error_set(&e, MS_ENOMEM, "out of memory");
            } else {
                memcpy(p.text, line, ll);
                p.text[ll] = 0;
                int r = ms_prompt_unescape(p.text, ll, &e);
                if (r < 0) {
                    rc = r;
                    free(p.text);
                } else {
                    p.len = (size_t)r;
                    p.text[p.len] = 0;
                }
            }
        }
        if (rc < 0) {
            /* "COL: problem" from the unescaper and JSON parser: NAME:LINE:COL */
            ms_error_set(err, rc, "%s:%d:%s%s", name, lineno, isdigit((unsigned char)e.msg[0]) ? "" : " ", e.msg);
            break;
        }
        if (push(&v, &n, &vcap, p) < 0) {
            free(p.text);
            free(p.labels_json);
            rc = ms_error_set(err, MS_ENOMEM, "%s: out of memory", name);
        }
    }
    if (rc == 0 && n == 0)
        rc = ms_error_set(err, MS_EFORMAT, "%s: no prompts (the file is empty or has only blank lines)", name);
    if (rc < 0) {
        ms_prompts_free(v, n);
        return rc;
    }
    *out = v;
    *n_out = n;
    return 0;
}

void ms_prompts_sha256(const MsPrompt *p, size_t n, char out[65])
{
    MsSha256 s;
    ms_sha256_init(&s);
    ms_sha256_update(&s, "moescope prompt set 1\n", 22);
    for (size_t i = 0; i < n; i++) {
        unsigned char le[8];
        uint64_t v = p[i].len;
        for (int b = 0; b < 8; b++) le[b] = (unsigned char)(v >> (8 * b));
        ms_sha256_update(&s, le, 8);
        ms_sha256_update(&s, p[i].text, p[i].len);
        v = p[i].labels_json ? strlen(p[i].labels_json) : UINT64_MAX;   /* none differs from "{}" */
        for (int b = 0; b < 8; b++) le[b] = (unsigned char)(v >> (8 * b));
        ms_sha256_update(&s, le, 8);
        if (p[i].labels_json) ms_sha256_update(&s, p[i].labels_json, strlen(p[i].labels_json));
    }
    ms_sha256_final(&s, out);
}
