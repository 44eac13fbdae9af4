/* prompts.c — prompt files: plain text (one prompt per line, \n \t \\
 * escapes) or JSONL ({"text": ..., "labels": {...}}), see prompts.h. */
#include "prompts.h"

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
            return ms_error_set(err, MS_EFORMAT, "column %zu: backslash at end of line (write \\\\ for a backslash)", i + 1);
        char c = s[++i];
        switch (c) {
        case 'n': s[o++] = '\n'; break;
        case 't': s[o++] = '\t'; break;
        case '\\': s[o++] = '\\'; break;
        default:
            if ((unsigned char)c >= 0x20 && (unsigned char)c < 0x7f)
                return ms_error_set(err, MS_EFORMAT, "column %zu: unknown escape \\%c (only \\n \\t \\\\)", i, c);
            return ms_error_set(err, MS_EFORMAT, "column %zu: unknown escape \\ followed by byte 0x%02x (only \\n \\t \\\\)",
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

/* One JSONL line -> prompt.  Returns 0 or MS_EFORMAT with err = "problem". */
static int parse_jsonl(const char *line, size_t len, MsPrompt *p, MsError *err)
{
    json_error_t je;
    json_t *o = json_loadb(line, len, JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES, &je);
    if (!o) return ms_error_set(err, MS_EFORMAT, "invalid JSON at column %d: %s", je.column, je.text);
    int rc = 0;
    json_t *t = json_object_get(o, "text");
    json_t *l = json_object_get(o, "labels");
    if (!json_is_object(o)) {
        rc = ms_error_set(err, MS_EFORMAT, "expected a JSON object {\"text\": ...}");
    } else if (!json_is_string(t)) {
        rc = ms_error_set(err, MS_EFORMAT, "missing or non-string \"text\"");
    } else if (l && !json_is_null(l) && !json_is_object(l)) {
        rc = ms_error_set(err, MS_EFORMAT, "\"labels\" must be an object");
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
    struct stat st;
    FILE *f = fopen(path, "rb");
    if (!f) return ms_error_set(err, MS_EIO, "%s: %s", path, strerror(errno));
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        fclose(f);
        return ms_error_set(err, MS_EIO, "%s: is a directory", path);
    }
    /* Whole file in memory: prompt files are small and this keeps line
     * handling (CRLF, embedded NUL) simple. */
    size_t cap = 1 << 14, len = 0;
    char *buf = malloc(cap);
    int rc = 0;
    if (!buf) {
        fclose(f);
        return ms_error_set(err, MS_ENOMEM, "%s: out of memory", path);
    }
    for (;;) {
        if (len == cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                rc = ms_error_set(err, MS_ENOMEM, "%s: out of memory", path);
                break;
            }
            buf = nb;
            cap *= 2;
        }
        size_t r = fread(buf + len, 1, cap - len, f);
        len += r;
        if (r == 0) {
            if (ferror(f)) rc = ms_error_set(err, MS_EIO, "%s: read error", path);
            break;
        }
    }
    fclose(f);
    if (rc == 0) rc = ms_prompts_parse(path, buf, len, out, n_out, err);
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
        if (ll > 0 && line[ll - 1] == '\r') ll--;   /* CRLF files */
        if (is_blank(line, ll)) continue;
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
            ms_error_set(err, rc, "%s:%d: %s", name, lineno, e.msg);
            break;
        }
        if (push(&v, &n, &vcap, p) < 0) {
            free(p.text);
            free(p.labels_json);
            rc = ms_error_set(err, MS_ENOMEM, "%s: out of memory", name);
        }
    }
    if (rc < 0) {
        ms_prompts_free(v, n);
        return rc;
    }
    *out = v;
    *n_out = n;
    return 0;
}
