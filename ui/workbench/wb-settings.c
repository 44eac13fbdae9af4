/* wb-settings.c — the workbench's key file (wb-settings.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "wb-settings.h"

typedef struct {
    char *group, *key, *value;
} Entry;

struct WbSettings {
    Entry *e;
    int n, cap;
};

WbSettings *wb_settings_new(void) { return calloc(1, sizeof(WbSettings)); }

static void clear(WbSettings *s)
{
    for (int i = 0; i < s->n; i++) {
        free(s->e[i].group);
        free(s->e[i].key);
        free(s->e[i].value);
    }
    s->n = 0;
}

void wb_settings_free(WbSettings *s)
{
    if (!s) return;
    clear(s);
    free(s->e);
    free(s);
}

char *wb_settings_path(const char *config_dir)
{
    if (!config_dir || !*config_dir) return NULL;
    size_t n = strlen(config_dir) + 32;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/moescope/workbench.ini", config_dir);
    return p;
}

static bool name_ok(const char *s)
{
    return s && *s && !strpbrk(s, "=[]\n\r");
}

static int find(const WbSettings *s, const char *group, const char *key)
{
    for (int i = 0; i < s->n; i++)
        if (!strcmp(s->e[i].group, group) && !strcmp(s->e[i].key, key)) return i;
    return -1;
}

const char *wb_settings_get(const WbSettings *s, const char *group, const char *key)
{
    int i = s && group && key ? find(s, group, key) : -1;
    return i >= 0 ? s->e[i].value : NULL;
}

int wb_settings_get_int(const WbSettings *s, const char *group, const char *key, int dflt)
{
    const char *v = wb_settings_get(s, group, key);
    if (!v) return dflt;
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    return end == v || *end || errno || x < -2147483647L || x > 2147483647L ? dflt : (int)x;
}

bool wb_settings_get_bool(const WbSettings *s, const char *group, const char *key, bool dflt)
{
    const char *v = wb_settings_get(s, group, key);
    if (!v) return dflt;
    if (!strcmp(v, "true") || !strcmp(v, "1")) return true;
    if (!strcmp(v, "false") || !strcmp(v, "0")) return false;
    return dflt;
}

int wb_settings_set(WbSettings *s, const char *group, const char *key, const char *value)
{
    if (!s || !name_ok(group) || !name_ok(key)) return MS_EINVAL;
    int i = find(s, group, key);
    if (!value) {
        if (i >= 0) {
            free(s->e[i].group);
            free(s->e[i].key);
            free(s->e[i].value);
            memmove(s->e + i, s->e + i + 1, (size_t)(s->n - i - 1) * sizeof *s->e);
            s->n--;
        }
        return 0;
    }
    char *v = strdup(value);
    if (!v) return MS_ENOMEM;
    if (i >= 0) {
        free(s->e[i].value);
        s->e[i].value = v;
        return 0;
    }
    if (s->n == s->cap) {
        int cap = s->cap ? s->cap * 2 : 32;
        Entry *e = realloc(s->e, (size_t)cap * sizeof *e);
        if (!e) {
            free(v);
            return MS_ENOMEM;
        }
        s->e = e;
        s->cap = cap;
    }
    Entry *e = &s->e[s->n];
    e->group = strdup(group);
    e->key = strdup(key);
    e->value = v;
    if (!e->group || !e->key) {
        free(e->group);
        free(e->key);
        free(v);
        return MS_ENOMEM;
    }
    s->n++;
    return 0;
}

int wb_settings_set_int(WbSettings *s, const char *group, const char *key, int v)
{
    char b[24];
    snprintf(b, sizeof b, "%d", v);
    return wb_settings_set(s, group, key, b);
}

int wb_settings_set_bool(WbSettings *s, const char *group, const char *key, bool v)
{
    return wb_settings_set(s, group, key, v ? "true" : "false");
}

/* Unescape \\ \n \t in place; false for an unknown escape. */
static bool unescape(char *s)
{
    char *o = s;
    for (char *p = s; *p; p++) {
        if (*p != '\\') {
            *o++ = *p;
            continue;
        }
        p++;
        if (*p == '\\') *o++ = '\\';
        else if (*p == 'n') *o++ = '\n';
        else if (*p == 't') *o++ = '\t';
        else return false;
    }
    *o = '\0';
    return true;
}

int wb_settings_load(WbSettings *s, const char *path, MsError *err)
{
    FILE *f = fopen(path, "r");
    clear(s);
    if (!f) {
        if (errno == ENOENT) return 0;
        return ms_error_set(err, MS_EIO, "%s: cannot read: %s", path, strerror(errno));
    }
    char *line = NULL, group[256] = "";
    size_t cap = 0;
    ssize_t len;
    int lineno = 0, rc = 0;
    while ((len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = '\0';
        char *p = line;
        while (*p == ' ' || *p == '\t') p++;
        if (!*p || *p == '#' || *p == ';') continue;
        const char *bad = NULL;
        if (*p == '[') {
            char *end = strchr(p, ']');
            if (!end || end == p + 1 || end[1] || (size_t)(end - p) >= sizeof group) bad = "a group line is [NAME]";
            else {
                *end = '\0';
                snprintf(group, sizeof group, "%s", p + 1);
                if (!name_ok(group)) bad = "bad group name", group[0] = '\0';
            }
        } else {
            char *eq = strchr(p, '=');
            if (!eq) bad = "expected key=value";
            else if (!group[0]) bad = "key=value before any [group]";
            else {
                char *k = p, *ke = eq;
                while (ke > k && (ke[-1] == ' ' || ke[-1] == '\t')) ke--;
                *ke = '\0';
                if (!unescape(eq + 1)) bad = "unknown escape (only \\\\ \\n \\t)";
                else if (wb_settings_set(s, group, k, eq + 1) < 0) bad = "bad key";
            }
        }
        if (bad && !rc) rc = ms_error_set(err, MS_EFORMAT, "%s:%d: %s", path, lineno, bad);
    }
    free(line);
    fclose(f);
    return rc;
}

static int mkdirs(char *dir)
{
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        int r = mkdir(dir, 0700);
        *p = '/';
        if (r != 0 && errno != EEXIST) return -1;
    }
    return mkdir(dir, 0700) != 0 && errno != EEXIST ? -1 : 0;
}

static void put_escaped(FILE *f, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\') fputs("\\\\", f);
        else if (*v == '\n') fputs("\\n", f);
        else if (*v == '\t') fputs("\\t", f);
        else fputc(*v, f);
    }
}

int wb_settings_save(const WbSettings *s, const char *path, MsError *err)
{
    size_t n = strlen(path);
    char *dir = strdup(path), *tmp = malloc(n + 24);
    if (!dir || !tmp) {
        free(dir);
        free(tmp);
        return ms_error_set(err, MS_ENOMEM, "out of memory");
    }
    char *slash = strrchr(dir, '/');
    int rc = 0;
    if (slash && slash != dir) {
        *slash = '\0';
        if (mkdirs(dir) < 0) rc = ms_error_set(err, MS_EIO, "%s: cannot create: %s", dir, strerror(errno));
    }
    free(dir);
    if (rc) {
        free(tmp);
        return rc;
    }
    snprintf(tmp, n + 24, "%s.tmp%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f) {
        rc = ms_error_set(err, MS_EIO, "%s: cannot write: %s", path, strerror(errno));
        free(tmp);
        return rc;
    }
    fputs("# moescope workbench settings (rewritten on exit)\n", f);
    /* groups in order of first appearance */
    for (int i = 0; i < s->n; i++) {
        bool seen = false;
        for (int j = 0; j < i && !seen; j++) seen = !strcmp(s->e[j].group, s->e[i].group);
        if (seen) continue;
        fprintf(f, "\n[%s]\n", s->e[i].group);
        for (int j = i; j < s->n; j++) {
            if (strcmp(s->e[j].group, s->e[i].group)) continue;
            fprintf(f, "%s=", s->e[j].key);
            put_escaped(f, s->e[j].value);
            fputc('\n', f);
        }
    }
    if (ferror(f) | (fclose(f) != 0)) rc = ms_error_set(err, MS_EIO, "%s: write failed: %s", path, strerror(errno));
    if (!rc && rename(tmp, path) != 0) rc = ms_error_set(err, MS_EIO, "%s: %s", path, strerror(errno));
    if (rc) unlink(tmp);
    free(tmp);
    return rc;
}

/* ------------------------------------------------------------ recent */

static void recent_group(const char *kind, char *buf, size_t size) { snprintf(buf, size, "recent-%s", kind); }

int wb_recent_list(const WbSettings *s, const char *kind, const char **out, int max)
{
    char g[64], k[16];
    recent_group(kind, g, sizeof g);
    int n = 0;
    for (int i = 0; i < WB_RECENT_MAX && n < max; i++) {
        snprintf(k, sizeof k, "%d", i);
        const char *v = wb_settings_get(s, g, k);
        if (v && *v) out[n++] = v;
    }
    return n;
}

static int recent_store(WbSettings *s, const char *g, char **paths, int n)
{
    char k[16];
    int rc = 0;
    for (int i = 0; i < WB_RECENT_MAX; i++) {
        snprintf(k, sizeof k, "%d", i);
        int r = wb_settings_set(s, g, k, i < n ? paths[i] : NULL);
        if (r < 0) rc = r;
    }
    return rc;
}

static int recent_edit(WbSettings *s, const char *kind, const char *path, bool add)
{
    if (!path || !*path || !name_ok(kind)) return MS_EINVAL;
    char g[64];
    recent_group(kind, g, sizeof g);
    const char *cur[WB_RECENT_MAX];
    int n = wb_recent_list(s, kind, cur, WB_RECENT_MAX);
    char *paths[WB_RECENT_MAX + 1];
    int m = 0, rc = 0;
    if (add && !(paths[m++] = strdup(path))) return MS_ENOMEM;
    for (int i = 0; i < n && m < WB_RECENT_MAX; i++) {
        if (!strcmp(cur[i], path)) continue;
        if (!(paths[m] = strdup(cur[i]))) rc = MS_ENOMEM;
        else m++;
    }
    if (!rc) rc = recent_store(s, g, paths, m);
    for (int i = 0; i < m; i++) free(paths[i]);
    return rc;
}

int wb_recent_add(WbSettings *s, const char *kind, const char *path) { return recent_edit(s, kind, path, true); }
int wb_recent_remove(WbSettings *s, const char *kind, const char *path) { return recent_edit(s, kind, path, false); }
