/* import.c — routing traces produced elsewhere (vLLM/SGLang expert-id
 * arrays, CSV, JSONL) stored as runs of kind "import".  Formats are in
 * docs/schema.md.  The whole import is one transaction: all or nothing. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "db-internal.h"

/* One line of a labels file.  Kept as a list, not an array by prompt
 * index, so a label for prompt 100,000,000 costs one entry. */
typedef struct {
    int idx;
    long line;
    char *json;
} ImpLabel;

typedef struct {
    MsTraceDb *db;
    const char *path;
    const MsImportOptions *opt;
    MsError *err;
    MsTraceWriter *w;
    int64_t run_id, model_id;
    ImpLabel *labels;        /* sorted by prompt index, one per index (the file's last line wins) */
    int n_labels;
    int max_expert, max_k, max_layer;
    uint8_t seen_layer[MS_TRACE_MAX_LAYER];
    int cur_prompt;          /* -1 = none open */
    int max_pos;             /* of the open prompt */
    int n_prompts;
    uint8_t *done;           /* bit set: prompt indices already committed */
    int done_cap;            /* in prompts */
    uint8_t *has_tok;        /* positions of the open prompt with a token row */
    int tok_cap;
    bool gaps_free;          /* ids: a request's file holds every position */
    int n_data_pos, last_data_pos;   /* of the open prompt: positions with rows */
} Imp;

static int imp_fail(Imp *im, int code, long line, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int imp_fail(Imp *im, int code, long line, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (line > 0) return ms_error_set(im->err, code, "%s:%ld: %s", im->path, line, msg);
    return ms_error_set(im->err, code, "%s: %s", im->path, msg);
}

/* One line of a text file into *buf (NUL-terminated, the newline kept):
 * its length, -1 at the end of the file, or -2 with err set when the line
 * is longer than MS_IMPORT_MAX_LINE (an endless line such as /dev/zero
 * stops there) or holds a NUL byte (it would end the text early). */
static ssize_t read_line(char **buf, size_t *cap, FILE *f, const char *path, long no, MsError *err)
{
    size_t n = 0;
    int c;
    while ((c = getc(f)) != EOF) {
        if (n >= MS_IMPORT_MAX_LINE) {
            if (no > 0) ms_error_set(err, MS_EFORMAT, "%s:%ld: line longer than %zu bytes", path, no, MS_IMPORT_MAX_LINE);
            else ms_error_set(err, MS_EFORMAT, "%s: a header line longer than %zu bytes", path, MS_IMPORT_MAX_LINE);
            return -2;
        }
        if (n + 2 > *cap) {
            size_t nc = *cap ? *cap * 2 : 256;
            char *nb = realloc(*buf, nc);
            if (!nb) { ms_error_set(err, MS_ENOMEM, "%s: out of memory", path); return -2; }
            *buf = nb;
            *cap = nc;
        }
        if (c == 0) {
            if (no > 0) ms_error_set(err, MS_EFORMAT, "%s:%ld: NUL byte in a text line", path, no);
            else ms_error_set(err, MS_EFORMAT, "%s: NUL byte in a header line", path);
            return -2;
        }
        (*buf)[n++] = (char)c;
        if (c == '\n') break;
    }
    if (ferror(f)) { ms_error_set(err, MS_EIO, "%s: read error: %s", path, strerror(errno)); return -2; }
    if (n == 0) return -1;
    (*buf)[n] = '\0';
    return (ssize_t)n;
}

static int label_cmp(const void *a, const void *b)
{
    const ImpLabel *x = a, *y = b;
    if (x->idx != y->idx) return x->idx < y->idx ? -1 : 1;
    return x->line < y->line ? -1 : x->line > y->line;
}

static int load_labels(Imp *im, const char *path)
{
    int lcap = 0;
    FILE *f = fopen(path, "r");
    if (!f) return ms_error_set(im->err, MS_EIO, "%s: %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    long no = 0;
    int rc = 0;
    ssize_t len;
    while (!rc && (len = read_line(&line, &cap, f, path, no + 1, im->err)) != -1) {
        no++;
        if (len < 0) { rc = im->err->code; break; }
        const char *p = line;
        while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') p++;
        if (!*p) continue;
        json_error_t je;
        json_t *j = json_loads(line, JSON_REJECT_DUPLICATES, &je);
        json_t *pi = j ? json_object_get(j, "prompt") : NULL, *lb = j ? json_object_get(j, "labels") : NULL;
        if (!j || !json_is_integer(pi) || !json_is_object(lb) || json_integer_value(pi) < 0 ||
            json_integer_value(pi) > 100000000) {
            rc = ms_error_set(im->err, MS_EFORMAT, "%s:%ld: expected {\"prompt\": N, \"labels\": {...}}%s%s",
                              path, no, j ? "" : ": ", j ? "" : je.text);
            json_decref(j);
            break;
        }
        if (im->n_labels == lcap) {
            int nc = lcap ? 2 * lcap : 64;
            ImpLabel *nl = realloc(im->labels, (size_t)nc * sizeof *nl);
            if (!nl) { json_decref(j); rc = ms_error_set(im->err, MS_ENOMEM, "%s: out of memory", path); break; }
            im->labels = nl;
            lcap = nc;
        }
        int idx = (int)json_integer_value(pi);
        char *js = json_dumps(lb, JSON_COMPACT | JSON_SORT_KEYS);
        json_decref(j);
        if (!js) { rc = ms_error_set(im->err, MS_ENOMEM, "%s: out of memory", path); break; }
        im->labels[im->n_labels++] = (ImpLabel){ idx, no, js };
    }
    free(line);
    fclose(f);
    if (rc) return rc;
    /* by index, then line; of several lines for one prompt the last wins */
    if (im->n_labels > 1) qsort(im->labels, (size_t)im->n_labels, sizeof *im->labels, label_cmp);
    int n = 0;
    for (int i = 0; i < im->n_labels; i++) {
        if (i + 1 < im->n_labels && im->labels[i + 1].idx == im->labels[i].idx) {
            free(im->labels[i].json);
            continue;
        }
        im->labels[n++] = im->labels[i];
    }
    im->n_labels = n;
    return 0;
}

static const char *label_of(const Imp *im, int idx)
{
    int lo = 0, hi = im->n_labels;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (im->labels[mid].idx < idx) lo = mid + 1;
        else hi = mid;
    }
    return lo < im->n_labels && im->labels[lo].idx == idx ? im->labels[lo].json : NULL;
}

static bool prompt_done(const Imp *im, int idx)
{
    return idx < im->done_cap && (im->done[idx >> 3] >> (idx & 7) & 1);
}

static int prompt_close(Imp *im)
{
    if (im->cur_prompt < 0) return 0;
    for (int p = 0; p <= im->max_pos; p++) {
        if (p < im->tok_cap && im->has_tok[p]) continue;
        int rc = ms_trace_writer_token(im->w, p, -1, "", 0, false, NAN, NAN, im->err);
        if (rc) return rc;
    }
    int rc = ms_trace_writer_commit(im->w, NULL, im->err);
    if (rc) return rc;
    im->n_prompts++;
    im->cur_prompt = -1;
    if (im->has_tok) memset(im->has_tok, 0, (size_t)im->tok_cap);
    return 0;
}

/* Open prompt idx unless it is the current one; prompts must be contiguous. */
static int prompt_open(Imp *im, int idx, long line, const char *text, size_t len)
{
    if (idx == im->cur_prompt) return 0;
    int rc = prompt_close(im);
    if (rc) return rc;
    if (idx < 0 || idx > 100000000) return imp_fail(im, MS_EFORMAT, line, "bad prompt index %d", idx);
    if (idx >= im->done_cap) {
        int nc = (MS_MAX(idx + 1, im->done_cap * 2) + 7) & ~7;
        uint8_t *nd = realloc(im->done, (size_t)nc / 8);
        if (!nd) return imp_fail(im, MS_ENOMEM, 0, "out of memory");
        memset(nd + im->done_cap / 8, 0, (size_t)(nc - im->done_cap) / 8);
        im->done = nd;
        im->done_cap = nc;
    }
    if (prompt_done(im, idx)) return imp_fail(im, MS_EFORMAT, line, "prompt %d appears again after other prompts "
                                       "(rows of one prompt must be contiguous)", idx);
    im->done[idx >> 3] |= (uint8_t)(1u << (idx & 7));
    const char *lb = label_of(im, idx);
    rc = ms_trace_writer_begin(im->w, idx, text ? text : "", text ? len : 0, lb, im->err);
    if (rc) return rc;
    im->cur_prompt = idx;
    im->max_pos = -1;
    im->n_data_pos = 0;
    im->last_data_pos = -1;
    return 0;
}

/* A position with rows in a csv or jsonl prompt (positions arrive in
 * increasing order).  Positions between such positions become token rows
 * with no routing, so a file could describe a prompt far longer than its
 * data (54 bytes naming position 6130507 made six million rows and took a
 * minute and 1 GB).  A prompt may leave at most as many positions without
 * rows as it has positions with rows, plus IMP_GAP_SLACK. */
#define IMP_GAP_SLACK 1024
static int note_pos(Imp *im, long line, int pos)
{
    if (im->gaps_free || pos == im->last_data_pos) return 0;
    int before = pos - im->n_data_pos;   /* earlier positions without rows */
    if (before > im->n_data_pos + IMP_GAP_SLACK)
        return imp_fail(im, MS_EFORMAT, line,
                        "position %d: %d earlier positions of prompt %d have no rows (at most as many as those "
                        "with rows, plus %d)", pos, before, im->cur_prompt, IMP_GAP_SLACK);
    im->n_data_pos++;
    im->last_data_pos = pos;
    return 0;
}

static int add_group(Imp *im, long line, int pos, int layer, int k, const int32_t *ex, const float *wt)
{
    if (pos < 0 || pos > 100000000) return imp_fail(im, MS_EFORMAT, line, "bad position %d", pos);
    if (layer < 0 || layer >= MS_TRACE_MAX_LAYER) return imp_fail(im, MS_EFORMAT, line, "bad layer %d", layer);
    int rc = note_pos(im, line, pos);
    if (rc) return rc;
    if (im->opt->top_k > 0 && k > im->opt->top_k)
        return imp_fail(im, MS_EFORMAT, line, "%d experts at position %d layer %d but --top-k is %d",
                        k, pos, layer, im->opt->top_k);
    for (int j = 0; j < k; j++) {
        if (ex[j] < 0 || ex[j] > MS_TRACE_MAX_EXPERT || (im->opt->n_expert > 0 && ex[j] >= im->opt->n_expert))
            return imp_fail(im, MS_EFORMAT, line, "expert id %d out of range", ex[j]);
        im->max_expert = MS_MAX(im->max_expert, ex[j]);
        for (int i = 0; i < j; i++)
            if (ex[i] == ex[j])
                return imp_fail(im, MS_EFORMAT, line, "expert %d selected twice at position %d layer %d",
                                ex[j], pos, layer);
    }
    im->max_k = MS_MAX(im->max_k, k);
    im->max_layer = MS_MAX(im->max_layer, layer);
    im->seen_layer[layer] = 1;
    im->max_pos = MS_MAX(im->max_pos, pos);
    return ms_trace_writer_route(im->w, pos, layer, k, ex, wt, im->err);
}

/* ------------------------------------------------------------------- csv */

typedef struct { int prompt, pos, layer, rank, expert; float weight; long line; } CsvRow;

static int cmp_csv(const void *a, const void *b)
{
    const CsvRow *x = a, *y = b;
    if (x->pos != y->pos) return x->pos < y->pos ? -1 : 1;
    if (x->layer != y->layer) return x->layer < y->layer ? -1 : 1;
    return (x->rank > y->rank) - (x->rank < y->rank);
}

static int flush_csv(Imp *im, CsvRow *r, size_t n)
{
    if (n == 0) return 0;
    qsort(r, n, sizeof *r, cmp_csv);
    int32_t ex[4096];
    float wt[4096];
    for (size_t i = 0; i < n;) {
        size_t j = i;
        bool have_w = false;
        while (j < n && r[j].pos == r[i].pos && r[j].layer == r[i].layer) {
            int k = (int)(j - i);
            if (r[j].rank != k)
                return imp_fail(im, MS_EFORMAT, r[j].line, "rank %d at position %d layer %d: ranks must be 0..k-1",
                                r[j].rank, r[j].pos, r[j].layer);
            if (k >= 4096) return imp_fail(im, MS_EFORMAT, r[j].line, "too many experts in one group");
            ex[k] = r[j].expert;
            wt[k] = r[j].weight;
            if (!isnan(r[j].weight)) have_w = true;
            j++;
        }
        int rc = add_group(im, r[i].line, r[i].pos, r[i].layer, (int)(j - i), ex, have_w ? wt : NULL);
        if (rc) return rc;
        i = j;
    }
    return 0;
}

static int parse_int(const char *s, int *out)
{
    char *e;
    errno = 0;
    long v = strtol(s, &e, 10);
    if (e == s || *e || errno || v < -1 || v > 2000000000) return -1;
    *out = (int)v;
    return 0;
}

static int import_csv(Imp *im, FILE *f)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long no = 0;
    int rc = 0;
    CsvRow *rows = NULL;
    size_t n = 0, rcap = 0;
    int want = 6;   /* fields per row: as many as the header names */
    while ((len = read_line(&line, &cap, f, im->path, no + 1, im->err)) != -1) {
        no++;
        if (len < 0) { rc = im->err->code; break; }
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = '\0';
        if (no == 1) {
            const char *h = line;
            if (!strncmp(h, "\xEF\xBB\xBF", 3)) h += 3;
            if (strcmp(h, "prompt,position,layer,rank,expert,weight") && strcmp(h, "prompt,position,layer,rank,expert")) {
                rc = imp_fail(im, MS_EFORMAT, no, "expected the header prompt,position,layer,rank,expert,weight");
                break;
            }
            want = strcmp(h, "prompt,position,layer,rank,expert") ? 6 : 5;
            continue;
        }
        if (!len) continue;
        char *fld[7];
        int nf = 0;
        for (char *p = line; nf < 7;) {
            fld[nf++] = p;
            char *c = strchr(p, ',');
            if (!c) break;
            *c = '\0';
            p = c + 1;
        }
        int v[5];
        if (nf != want) {
            rc = imp_fail(im, MS_EFORMAT, no, "expected %d fields as in the header, got %d%s", want, nf,
                          nf == 7 ? " or more" : "");
            break;
        }
        bool ok = true;
        for (int i = 0; i < 5 && ok; i++) ok = !parse_int(fld[i], &v[i]) && v[i] >= 0;
        if (!ok) { rc = imp_fail(im, MS_EFORMAT, no, "fields 1-5 must be non-negative integers"); break; }
        float wt = NAN;
        if (nf == 6 && fld[5][0]) {
            char *e;
            wt = strtof(fld[5], &e);
            if (*e || !isfinite(wt)) { rc = imp_fail(im, MS_EFORMAT, no, "bad weight '%s'", fld[5]); break; }
        }
        if (v[0] != im->cur_prompt) {
            if ((rc = flush_csv(im, rows, n))) break;
            n = 0;
            if ((rc = prompt_open(im, v[0], no, NULL, 0))) break;
        }
        if (n == rcap) {
            rcap = rcap ? rcap * 2 : 4096;
            CsvRow *nr = realloc(rows, rcap * sizeof *nr);
            if (!nr) { rc = imp_fail(im, MS_ENOMEM, 0, "out of memory"); break; }
            rows = nr;
        }
        rows[n++] = (CsvRow){ v[0], v[1], v[2], v[3], v[4], wt, no };
    }
    if (!rc) rc = flush_csv(im, rows, n);
    free(rows);
    free(line);
    return rc;
}

/* ------------------------------------------------------------------- ids */

/* Repeated: one JSON header line {"tokens":T,"layers":L,"top_k":K[,"layer_ids":[...]]
 * [,"weights":true][,"text":"..."]} then T*L*K int32 LE ids ([token][layer][rank]),
 * then (with "weights") T*L*K float32 LE weights. */
static int import_ids(Imp *im, FILE *f)
{
    int rc = 0, req = 0;
    char *hdr = NULL;
    size_t cap = 0;
    ssize_t len;
    int32_t *ids = NULL;
    float *wts = NULL;
    while (!rc && (len = read_line(&hdr, &cap, f, im->path, 0, im->err)) != -1) {
        if (len < 0) { rc = im->err->code; break; }
        if (len == 1 && hdr[0] == '\n') continue;
        json_error_t je;
        json_t *j = json_loads(hdr, 0, &je);
        json_t *jt = json_object_get(j, "tokens"), *jl = json_object_get(j, "layers"), *jk = json_object_get(j, "top_k");
        if (!j || !json_is_integer(jt) || !json_is_integer(jl) || !json_is_integer(jk)) {
            rc = imp_fail(im, MS_EFORMAT, 0, "request %d: header must be a JSON line with integer tokens, layers, top_k",
                          req);
            json_decref(j);
            break;
        }
        json_int_t T = json_integer_value(jt), L = json_integer_value(jl), K = json_integer_value(jk);
        if (T < 0 || T > 10000000 || L < 1 || L > MS_TRACE_MAX_LAYER || K < 1 || K > 4096) {
            rc = imp_fail(im, MS_EFORMAT, 0, "request %d: tokens/layers/top_k out of range", req);
            json_decref(j);
            break;
        }
        int lid[MS_TRACE_MAX_LAYER];
        json_t *jli = json_object_get(j, "layer_ids");
        for (int l = 0; l < L; l++) lid[l] = l;
        if (jli) {
            if (!json_is_array(jli) || (json_int_t)json_array_size(jli) != L) {
                rc = imp_fail(im, MS_EFORMAT, 0, "request %d: layer_ids must list %d block indices", req, (int)L);
                json_decref(j);
                break;
            }
            for (int l = 0; l < L; l++) lid[l] = (int)json_integer_value(json_array_get(jli, (size_t)l));
        }
        bool has_w = json_is_true(json_object_get(j, "weights"));
        const char *text = json_string_value(json_object_get(j, "text"));
        size_t tlen = text ? json_string_length(json_object_get(j, "text")) : 0;
        size_t n = (size_t)(T * L * K);
        int32_t *ni = realloc(ids, MS_MAX(n, 1) * sizeof *ids);
        if (ni) ids = ni;
        float *nw = ni ? realloc(wts, MS_MAX(n, 1) * sizeof *wts) : NULL;
        if (nw) wts = nw;
        if (!ni || !nw) { json_decref(j); rc = imp_fail(im, MS_ENOMEM, 0, "out of memory"); break; }
        unsigned char *raw = (unsigned char *)ids;
        if (fread(raw, 4, n, f) != n) {
            json_decref(j);
            rc = imp_fail(im, MS_EFORMAT, 0, "request %d: truncated (expected %zu int32 ids)", req, n);
            break;
        }
        for (size_t i = 0; i < n; i++)   /* little-endian on disk */
            ids[i] = (int32_t)((uint32_t)raw[4 * i] | (uint32_t)raw[4 * i + 1] << 8 |
                               (uint32_t)raw[4 * i + 2] << 16 | (uint32_t)raw[4 * i + 3] << 24);
        if (has_w) {
            if (fread(wts, 4, n, f) != n) {
                json_decref(j);
                rc = imp_fail(im, MS_EFORMAT, 0, "request %d: truncated weights", req);
                break;
            }
            for (size_t i = 0; i < n; i++) wts[i] = ms_get_f32((unsigned char *)&wts[i]);
            size_t bad = n;
            for (size_t i = 0; i < n && bad == n; i++)
                if (!isfinite(wts[i]) && ids[i] >= 0) bad = i;
            if (bad < n) {
                json_decref(j);
                rc = imp_fail(im, MS_EFORMAT, 0, "request %d: weight %zu is not a finite number", req, bad);
                break;
            }
        }
        rc = prompt_open(im, req, 0, text, tlen);
        json_decref(j);
        for (json_int_t t = 0; t < T && !rc; t++)
            for (json_int_t l = 0; l < L && !rc; l++) {
                size_t o = (size_t)((t * L + l) * K);
                /* vLLM pads short selections with -1: keep the real ids */
                int k = 0;
                while (k < K && ids[o + (size_t)k] >= 0) k++;
                if (k == 0) continue;
                rc = add_group(im, 0, (int)t, lid[l], k, ids + o, has_w ? wts + o : NULL);
            }
        if (!rc) rc = prompt_close(im);
        req++;
    }
    free(hdr);
    free(ids);
    free(wts);
    return rc;
}

/* ----------------------------------------------------------------- jsonl */

/* {"prompt":i,"position":t,"experts":[[ids of layer 0],...],"weights":[[...],...],
 *  "layers":[block index per entry],"token_id":id,"piece":"..","text":"prompt text"} */
static int import_jsonl(Imp *im, FILE *f)
{
    char *line = NULL;
    size_t cap = 0;
    long no = 0;
    int rc = 0;
    int last_pos = -1;
    ssize_t len;
    while (!rc && (len = read_line(&line, &cap, f, im->path, no + 1, im->err)) != -1) {
        no++;
        if (len < 0) { rc = im->err->code; break; }
        const char *p = line;
        while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') p++;
        if (!*p) continue;
        json_error_t je;
        json_t *j = json_loads(line, JSON_ALLOW_NUL, &je);
        if (!j || !json_is_object(j)) {
            rc = imp_fail(im, MS_EFORMAT, no, "not a JSON object%s%s", j ? "" : ": ", j ? "" : je.text);
            json_decref(j);
            break;
        }
        json_t *jp = json_object_get(j, "prompt"), *jt = json_object_get(j, "position");
        json_t *je_ = json_object_get(j, "experts"), *jw = json_object_get(j, "weights");
        json_t *jl = json_object_get(j, "layers");
        if (!json_is_integer(jp) || !json_is_integer(jt) || !json_is_array(je_) ||
            (jw && !json_is_array(jw)) || (jl && !json_is_array(jl))) {
            rc = imp_fail(im, MS_EFORMAT, no, "need integer prompt, position and an experts array of arrays");
            json_decref(j);
            break;
        }
        int pr = (int)json_integer_value(jp), pos = (int)json_integer_value(jt);
        json_t *jtext = json_object_get(j, "text");
        if (pr != im->cur_prompt) {
            rc = prompt_open(im, pr, no, json_string_value(jtext), jtext ? json_string_length(jtext) : 0);
            last_pos = -1;
        }
        if (!rc && pos <= last_pos) rc = imp_fail(im, MS_EFORMAT, no, "positions of a prompt must increase");
        if (!rc && (pos < 0 || pos > 100000000)) rc = imp_fail(im, MS_EFORMAT, no, "bad position %d", pos);
        if (!rc) rc = note_pos(im, no, pos);
        last_pos = pos;
        size_t nl = json_array_size(je_);
        if (!rc && jl && json_array_size(jl) != nl) rc = imp_fail(im, MS_EFORMAT, no, "layers and experts differ in length");
        for (size_t l = 0; l < nl && !rc; l++) {
            json_t *row = json_array_get(je_, l), *wrow = jw ? json_array_get(jw, l) : NULL;
            size_t k = json_array_size(row);
            if (!json_is_array(row) || k == 0 || k > 4096 || (wrow && json_array_size(wrow) != k)) {
                rc = imp_fail(im, MS_EFORMAT, no, "experts[%zu] must be a non-empty array (weights the same size)", l);
                break;
            }
            int32_t ex[4096];
            float wt[4096];
            for (size_t i = 0; i < k; i++) {
                json_t *e = json_array_get(row, i);
                if (!json_is_integer(e)) { rc = imp_fail(im, MS_EFORMAT, no, "expert ids must be integers"); break; }
                json_int_t v = json_integer_value(e);
                ex[i] = v < 0 || v > MS_TRACE_MAX_EXPERT ? -1 : (int32_t)v;
                if (wrow) {
                    json_t *w = json_array_get(wrow, i);
                    if (!json_is_number(w)) { rc = imp_fail(im, MS_EFORMAT, no, "weights must be numbers"); break; }
                    wt[i] = (float)json_number_value(w);
                }
            }
            int layer = (int)l;
            if (!rc && jl) {
                json_t *lv = json_array_get(jl, l);
                if (!json_is_integer(lv)) rc = imp_fail(im, MS_EFORMAT, no, "layers must be integers");
                else layer = (int)json_integer_value(lv);
            }
            if (!rc) rc = add_group(im, no, pos, layer, (int)k, ex, wrow ? wt : NULL);
        }
        /* token metadata when given; prompt_close fills the rest with -1 */
        json_t *jid = json_object_get(j, "token_id"), *jpc = json_object_get(j, "piece");
        if (!rc && (json_is_integer(jid) || json_is_string(jpc))) {
            /* recorded via the writer directly; prompt_close skips known positions */
            rc = ms_trace_writer_token(im->w, pos, json_is_integer(jid) ? (int32_t)json_integer_value(jid) : -1,
                                       json_string_value(jpc) ? json_string_value(jpc) : "",
                                       json_is_string(jpc) ? json_string_length(jpc) : 0, false, NAN, NAN, im->err);
            if (!rc && pos >= im->tok_cap) {
                int nc = MS_MAX(pos + 1, im->tok_cap * 2);
                uint8_t *nt = realloc(im->has_tok, (size_t)nc);
                if (!nt) rc = imp_fail(im, MS_ENOMEM, 0, "out of memory");
                else {
                    memset(nt + im->tok_cap, 0, (size_t)(nc - im->tok_cap));
                    im->has_tok = nt;
                    im->tok_cap = nc;
                }
            }
            if (!rc) im->has_tok[pos] = 1;
        }
        json_decref(j);
    }
    free(line);
    return rc;
}

int ms_trace_import(MsTraceDb *db, MsImportFormat fmt, const char *path, const MsImportOptions *opt,
                    int64_t *run_id, MsError *err)
{
    if (db->be && (!db->be->import_model || !db->be->import_model_shape)) return ms_db_unsupported(db, err, "import");
    MsImportOptions dflt = { 0 };
    Imp im = { .db = db, .path = path, .opt = opt ? opt : &dflt, .err = err, .cur_prompt = -1, .max_expert = -1,
               .gaps_free = fmt == MS_IMPORT_IDS };
    if (im.opt->n_expert < 0 || im.opt->top_k < 0 || (im.opt->n_expert && im.opt->top_k > im.opt->n_expert))
        return ms_error_set(err, MS_EINVAL, "%s: bad --experts / --top-k", path);
    FILE *f = fopen(path, fmt == MS_IMPORT_IDS ? "rb" : "r");
    if (!f) return ms_error_set(err, MS_EIO, "%s: %s", path, strerror(errno));
    int rc = 0;
    if (im.opt->labels_path) rc = load_labels(&im, im.opt->labels_path);
    if (!rc) rc = db->be ? ms_trace_tx_begin(db, err) : ms_db_exec(db, "BEGIN IMMEDIATE", err);
    bool in_tx = !rc;
    if (!rc && db->be) {   /* another backend: the same rows through its own calls */
        const char *src = im.opt->source_name ? im.opt->source_name : path;
        const char *base = strrchr(src, '/');
        im.model_id = db->be->import_model(db, base ? base + 1 : src, err);
        if (im.model_id < 0) rc = (int)im.model_id;
    } else if (!rc) {
        const char *src = im.opt->source_name ? im.opt->source_name : path;
        const char *base = strrchr(src, '/');
        sqlite3_stmt *st;
        rc = ms_db_prepare(db, "INSERT INTO model(file_name,file_size,sha256,arch,name,n_layer,n_expert,n_expert_used,"
                               "n_expert_shared,score_func,norm_topk,w_scale,n_embd,n_vocab,n_ff_exp,moe_layers) "
                               "VALUES(?1,0,'','imported','',0,0,0,0,'unknown',0,1,0,0,0,'[]')", &st, err);
        if (!rc) {
            sqlite3_bind_text(st, 1, base ? base + 1 : src, -1, SQLITE_TRANSIENT);
            if (sqlite3_step(st) != SQLITE_DONE) rc = ms_db_fail(db, err, MS_EDB, "import");
            sqlite3_finalize(st);
            im.model_id = sqlite3_last_insert_rowid(db->h);
        }
    }
    if (!rc) {
        static const char *const fmts[] = { "", "ids", "csv", "jsonl" };
        char settings[512];
        snprintf(settings, sizeof settings, "{\"import_format\":\"%s\"}", fmts[fmt >= 1 && fmt <= 3 ? fmt : 0]);
        MsTraceRunDesc d = { .model_id = im.model_id, .kind = "import", .settings_json = settings };
        int64_t id = ms_trace_run_new(db, &d, err);
        if (id < 0) rc = (int)id;
        else im.run_id = id;
    }
    if (!rc && !(im.w = ms_trace_writer_new(db, im.run_id, err))) rc = err ? err->code : MS_EDB;
    if (!rc) {
        if (fmt == MS_IMPORT_CSV) rc = import_csv(&im, f);
        else if (fmt == MS_IMPORT_IDS) rc = import_ids(&im, f);
        else if (fmt == MS_IMPORT_JSONL) rc = import_jsonl(&im, f);
        else rc = ms_error_set(err, MS_EINVAL, "%s: unknown import format", path);
    }
    if (!rc) rc = prompt_close(&im);
    if (!rc && im.max_k < 0 + 1) rc = imp_fail(&im, MS_EFORMAT, 0, "no routing rows");
    for (int i = 0; !rc && i < im.n_labels; i++)   /* a label for no prompt is a mistake, not dropped */
        if (!prompt_done(&im, im.labels[i].idx))
            rc = ms_error_set(err, MS_EFORMAT, "%s:%ld: labels for prompt %d, which %s has no rows for",
                              im.opt->labels_path, im.labels[i].line, im.labels[i].idx, path);
    if (!rc) {
        int E = im.opt->n_expert > 0 ? im.opt->n_expert : im.max_expert + 1;
        int K = im.opt->top_k > 0 ? im.opt->top_k : im.max_k;
        MsTraceModel m = { 0 };
        m.n_layer = im.max_layer + 1;
        for (int l = 0; l < m.n_layer; l++) m.is_moe[l] = im.seen_layer[l];
        char layers[MS_TRACE_MAX_LAYER * 5 + 8];
        size_t n = 0;
        layers[n++] = '[';
        for (int l = 0; l < m.n_layer; l++)
            if (m.is_moe[l]) n += (size_t)snprintf(layers + n, sizeof layers - n, "%s%d", n > 1 ? "," : "", l);
        layers[n++] = ']';
        layers[n] = '\0';
        sqlite3_stmt *st = NULL;
        if (db->be) rc = db->be->import_model_shape(db, im.model_id, m.n_layer, E, K, layers, err);
        else rc = ms_db_prepare(db, "UPDATE model SET n_layer=?1, n_expert=?2, n_expert_used=?3, moe_layers=?4 "
                                    "WHERE model_id=?5", &st, err);
        if (!rc && st) {
            sqlite3_bind_int(st, 1, m.n_layer);
            sqlite3_bind_int(st, 2, E);
            sqlite3_bind_int(st, 3, K);
            sqlite3_bind_text(st, 4, layers, -1, SQLITE_STATIC);
            sqlite3_bind_int64(st, 5, im.model_id);
            if (sqlite3_step(st) != SQLITE_DONE) rc = ms_db_fail(db, err, MS_EDB, "import");
            sqlite3_finalize(st);
        }
    }
    if (!rc) rc = ms_trace_run_set_status(db, im.run_id, "complete", err);   /* one transaction: all or nothing */
    ms_trace_writer_free(im.w);
    if (in_tx && db->be) {
        if (!rc) rc = ms_trace_tx_commit(db, err);
        if (rc) ms_trace_tx_rollback(db);
    } else if (in_tx) {
        if (!rc) rc = ms_db_exec(db, "COMMIT", err);
        if (rc) sqlite3_exec(db->h, "ROLLBACK", NULL, NULL, NULL);
    }
    fclose(f);
    for (int i = 0; i < im.n_labels; i++) free(im.labels[i].json);
    free(im.labels);
    free(im.done);
    free(im.has_tok);
    if (!rc && run_id) *run_id = im.run_id;
    return rc;
}
