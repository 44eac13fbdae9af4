/* fuzz-prompts.c — plain and JSONL prompt files (jobs/prompts.c).
 *
 * The input is a prompt file, read both from memory (ms_prompts_parse, the
 * workbench's way) and by path (ms_prompts_read, the command line's, with
 * its size and line limits).  Checks: both agree; every prompt is
 * NUL-terminated, within the input's size, valid UTF-8 without NUL (the one
 * rule for prompt text) and has a line number inside the file, in rising
 * order; labels are a JSON object; a failure is one line "NAME:LINE: ..."
 * or "NAME: ...". */
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"
#include "prompts.h"

static void check_err(const MsError *e, const char *name)
{
    size_t nl = strlen(name);
    if (!e->msg[0] || strchr(e->msg, '\n') || strncmp(e->msg, name, nl) != 0 || e->msg[nl] != ':') {
        fprintf(stderr, "fuzz-prompts: bad error message '%s'\n", e->msg);
        abort();
    }
}

static void check_prompts(const MsPrompt *p, size_t n, const uint8_t *data, size_t size)
{
    long lines = 1;
    for (size_t i = 0; i < size; i++) lines += data[i] == '\n';
    int prev = 0;
    for (size_t i = 0; i < n; i++) {
        if (!p[i].text || p[i].text[p[i].len] != '\0' || p[i].len > size) abort();
        if (p[i].line <= prev || p[i].line > lines) abort();
        prev = p[i].line;
        if (memchr(p[i].text, '\0', p[i].len)) {
            fprintf(stderr, "fuzz-prompts: prompt on line %d holds a NUL\n", p[i].line);
            abort();
        }
        if (ms_text_utf8_check(p[i].text, p[i].len, NULL, NULL) != 0) {
            fprintf(stderr, "fuzz-prompts: prompt on line %d is not valid UTF-8\n", p[i].line);
            abort();
        }
        if (p[i].labels_json) {
            json_t *j = json_loads(p[i].labels_json, 0, NULL);
            if (!json_is_object(j)) abort();
            json_decref(j);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    MsPrompt *p = NULL, *q = NULL;
    size_t n = 0, nq = 0;
    MsError e1 = { 0 }, e2 = { 0 };
    int r1 = ms_prompts_parse("in.txt", (const char *)data, size, &p, &n, &e1);
    if (r1 < 0) check_err(&e1, "in.txt");
    else check_prompts(p, n, data, size);

    char path[64];
    int fd = fz_memfd(data, size, path, sizeof path);
    if (fd >= 0) {
        int r2 = ms_prompts_read(path, &q, &nq, &e2);
        if (r2 < 0) check_err(&e2, path);
        /* the same verdict and the same prompts from memory and from a file */
        if ((r1 < 0) != (r2 < 0)) {
            fprintf(stderr, "fuzz-prompts: parse %d ('%s') but read %d ('%s')\n", r1, e1.msg, r2, e2.msg);
            abort();
        }
        if (r2 == 0) {
            if (nq != n) abort();
            for (size_t i = 0; i < n; i++)
                if (q[i].len != p[i].len || memcmp(q[i].text, p[i].text, p[i].len) || q[i].line != p[i].line ||
                    !q[i].labels_json != !p[i].labels_json ||
                    (p[i].labels_json && strcmp(p[i].labels_json, q[i].labels_json)))
                    abort();
        }
        close(fd);
    }
    ms_prompts_free(p, n);
    ms_prompts_free(q, nq);

    /* the escape decoder alone on the raw bytes */
    char *s = malloc(size + 1);
    if (s) {
        memcpy(s, data, size);
        s[size] = 0;
        MsError e = { 0 };
        int r = ms_prompt_unescape(s, size, &e);
        if (r > (int)size || (r < 0 && (!e.msg[0] || strchr(e.msg, '\n')))) abort();
        free(s);
    }
    return 0;
}
