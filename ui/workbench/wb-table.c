/* wb-table.c — result tables for the window (wb-table.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wb-table.h"

void wb_table_free(WbTable *t)
{
    if (!t) return;
    for (int64_t i = 0; t->cells && i < t->n_rows * t->n_cols; i++) free(t->cells[i].s);
    for (int c = 0; t->cols && c < t->n_cols; c++) free(t->cols[c]);
    free(t->cols);
    free(t->types);
    free(t->cells);
    free(t);
}

static WbTable *table_new(const char *name, int n_cols)
{
    WbTable *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    snprintf(t->name, sizeof t->name, "%s", name);
    t->n_cols = n_cols;
    t->cols = calloc((size_t)(n_cols ? n_cols : 1), sizeof *t->cols);
    t->types = calloc((size_t)(n_cols ? n_cols : 1), sizeof *t->types);
    if (!t->cols || !t->types) {
        wb_table_free(t);
        return NULL;
    }
    return t;
}

static int grow(WbTable *t, int64_t *cap)
{
    if (t->n_rows < *cap) return 0;
    int64_t nc = *cap ? *cap * 2 : 256;
    WbCell *c = realloc(t->cells, (size_t)(nc * t->n_cols) * sizeof *c);
    if (!c) return MS_ENOMEM;
    t->cells = c;
    *cap = nc;
    return 0;
}

static void finish_types(WbTable *t)
{
    for (int c = 0; c < t->n_cols; c++) {
        t->types[c] = MS_AN_REAL;
        for (int64_t r = 0; r < t->n_rows; r++) {
            const WbCell *x = &t->cells[r * t->n_cols + c];
            if (x->type != MS_AN_NULL) {
                t->types[c] = x->type;
                break;
            }
        }
    }
}

int wb_table_from_result(const MsAnTable *src, int64_t max_rows, WbTable **out, MsError *err)
{
    *out = NULL;
    WbTable *t = table_new(src->name, src->n_cols);
    if (!t) return ms_error_set(err, MS_ENOMEM, "out of memory");
    for (int c = 0; c < t->n_cols; c++)
        if (!(t->cols[c] = strdup(src->cols[c]))) goto oom;
    t->total_rows = src->n_rows;
    int64_t n = max_rows > 0 && src->n_rows > max_rows ? max_rows : src->n_rows;
    if (n > 0) {
        t->cells = calloc((size_t)(n * (t->n_cols ? t->n_cols : 1)), sizeof *t->cells);
        if (!t->cells) goto oom;
    }
    MsAnCell *row = calloc((size_t)(t->n_cols ? t->n_cols : 1), sizeof *row);
    if (!row) goto oom;
    for (int64_t r = 0; r < n; r++) {
        ms_an_table_row(src, r, row);
        t->n_rows = r + 1;
        for (int c = 0; c < t->n_cols; c++) {
            WbCell *x = &t->cells[r * t->n_cols + c];
            x->type = row[c].type;
            x->i = row[c].i;
            x->r = row[c].r;
            if (x->type == MS_AN_REAL && !isfinite(x->r)) x->type = MS_AN_NULL;
            if (x->type == MS_AN_TEXT && !row[c].s) x->type = MS_AN_NULL;
            if (x->type == MS_AN_TEXT && !(x->s = strdup(row[c].s))) {
                free(row);
                goto oom;
            }
        }
    }
    free(row);
    finish_types(t);
    *out = t;
    return 0;
oom:
    wb_table_free(t);
    return ms_error_set(err, MS_ENOMEM, "out of memory");
}

int wb_table_from_db(MsTraceDb *db, const char *table, int64_t run, int64_t max_rows, WbTable **out, MsError *err)
{
    *out = NULL;
    MsTraceCursor *c = ms_trace_table(db, table, run, err);
    if (!c) return err && err->code ? err->code : MS_EDB;
    const MsColumn *cols;
    int nc = ms_trace_table_columns(c, &cols);
    int skip = nc > 0 && !strcmp(cols[0].name, "run_id") ? 1 : 0;
    WbTable *t = table_new(table, nc - skip);
    int rc = 0;
    if (!t) rc = ms_error_set(err, MS_ENOMEM, "out of memory");
    for (int i = skip; !rc && i < nc; i++)
        if (!(t->cols[i - skip] = strdup(cols[i].name))) rc = ms_error_set(err, MS_ENOMEM, "out of memory");
    int64_t cap = 0;
    const MsTraceValue *v;
    while (!rc && (rc = ms_trace_table_next(c, &v, err)) == 1) {
        rc = 0;
        t->total_rows++;
        if (max_rows > 0 && t->n_rows >= max_rows) continue;
        if (grow(t, &cap) < 0) {
            rc = ms_error_set(err, MS_ENOMEM, "out of memory");
            break;
        }
        WbCell *row = &t->cells[t->n_rows * t->n_cols];
        memset(row, 0, (size_t)t->n_cols * sizeof *row);
        t->n_rows++;
        for (int i = skip; i < nc; i++) {
            WbCell *x = &row[i - skip];
            switch (v[i].type) {
            case MS_COL_INT: x->type = MS_AN_INT; x->i = v[i].i; break;
            case MS_COL_REAL: x->type = isfinite(v[i].r) ? MS_AN_REAL : MS_AN_NULL; x->r = v[i].r; break;
            case MS_COL_TEXT:
                x->type = MS_AN_TEXT;
                if (!(x->s = strdup(v[i].s))) rc = ms_error_set(err, MS_ENOMEM, "out of memory");
                break;
            case MS_COL_BLOB: {
                x->type = MS_AN_TEXT;
                char b[48];
                snprintf(b, sizeof b, "<%zu bytes>", v[i].len);
                if (!(x->s = strdup(b))) rc = ms_error_set(err, MS_ENOMEM, "out of memory");
                break;
            }
            default: x->type = MS_AN_NULL; break;
            }
        }
    }
    ms_trace_cursor_free(c);
    if (rc < 0) {
        wb_table_free(t);
        return rc;
    }
    finish_types(t);
    *out = t;
    return 0;
}

void wb_table_cell_text(const WbTable *t, int64_t row, int col, char *buf, size_t size)
{
    if (row < 0 || row >= t->n_rows || col < 0 || col >= t->n_cols) {
        if (size) buf[0] = '\0';
        return;
    }
    const WbCell *x = &t->cells[row * t->n_cols + col];
    switch (x->type) {
    case MS_AN_INT: snprintf(buf, size, "%lld", (long long)x->i); break;
    case MS_AN_REAL:
        if (x->r != 0 && fabs(x->r) >= 1e6) snprintf(buf, size, "%.6g", x->r);
        else snprintf(buf, size, "%.4g", x->r);
        break;
    case MS_AN_TEXT: snprintf(buf, size, "%s", x->s ? x->s : ""); break;
    default: snprintf(buf, size, "—"); break;
    }
}

int wb_table_compare(const WbTable *t, int col, int64_t a, int64_t b)
{
    const WbCell *x = &t->cells[a * t->n_cols + col], *y = &t->cells[b * t->n_cols + col];
    bool xn = x->type == MS_AN_NULL, yn = y->type == MS_AN_NULL;
    if (xn || yn) return xn && yn ? 0 : xn ? -1 : 1;
    if (x->type == MS_AN_TEXT || y->type == MS_AN_TEXT) {
        if (x->type != y->type) return x->type == MS_AN_TEXT ? 1 : -1;
        return strcmp(x->s ? x->s : "", y->s ? y->s : "");
    }
    double u = x->type == MS_AN_INT ? (double)x->i : x->r, v = y->type == MS_AN_INT ? (double)y->i : y->r;
    if (x->type == MS_AN_INT && y->type == MS_AN_INT) return x->i < y->i ? -1 : x->i > y->i;
    return u < v ? -1 : u > v;
}

int wb_stored_list(MsTraceDb *db, int64_t run, WbStored **out, int *n, MsError *err)
{
    *out = NULL;
    *n = 0;
    MsTraceCursor *c = ms_trace_analyses(db, run, err);
    if (!c) return err && err->code ? err->code : MS_EDB;
    int cap = 0, rc;
    MsTraceAnalysis a;
    while ((rc = ms_trace_analyses_next(c, &a, err)) == 1) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            WbStored *s = realloc(*out, (size_t)cap * sizeof *s);
            if (!s) {
                rc = ms_error_set(err, MS_ENOMEM, "out of memory");
                break;
            }
            *out = s;
        }
        WbStored *s = &(*out)[(*n)++];
        snprintf(s->name, sizeof s->name, "%s", a.name ? a.name : "");
        snprintf(s->table, sizeof s->table, "%s", a.table ? a.table : "");
        snprintf(s->created, sizeof s->created, "%s", a.created ? a.created : "");
        s->run_id = a.run_id;
    }
    ms_trace_cursor_free(c);
    if (rc < 0) {
        free(*out);
        *out = NULL;
        *n = 0;
        return rc;
    }
    return 0;
}

int wb_stored_plan(MsTraceDb *db, int64_t run, const char *module, char **text, MsError *err)
{
    *text = NULL;
    const char *how = !strcmp(module, "npmi")       ? "moescope analyze npmi --plan CLASS"
                      : !strcmp(module, "riskdiff") ? "moescope analyze riskdiff --label L --set1 A --set2 B"
                                                    : "moescope analyze crosslingual";
    char table[64];
    snprintf(table, sizeof table, "an_%s_plan", module);
    WbStored *st = NULL;
    int n = 0, rc = wb_stored_list(db, run, &st, &n, err);
    if (rc < 0) return rc;
    bool found = false;
    for (int i = 0; i < n && !found; i++) found = !strcmp(st[i].table, table);
    free(st);
    if (!found)
        return ms_error_set(err, MS_ENOTFOUND, "%s: no %s plan stored for run %lld (run %s, or the Analyses page)",
                            ms_trace_path(db), module, (long long)run, how);
    WbTable *t = NULL;
    rc = wb_table_from_db(db, table, run, 0, &t, err);
    if (rc < 0) return rc;
    int col = -1;
    for (int c = 0; c < t->n_cols; c++)
        if (!strcmp(t->cols[c], "interventions")) col = c;
    if (col < 0 || t->n_rows < 1 || t->cells[(t->n_rows - 1) * t->n_cols + col].type != MS_AN_TEXT) {
        wb_table_free(t);
        return ms_error_set(err, MS_EFORMAT, "%s: table %s has no interventions text", ms_trace_path(db), table);
    }
    *text = strdup(t->cells[(t->n_rows - 1) * t->n_cols + col].s);
    wb_table_free(t);
    return *text ? 0 : ms_error_set(err, MS_ENOMEM, "out of memory");
}
