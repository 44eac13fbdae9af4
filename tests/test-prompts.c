/* test-prompts.c — prompt files: text escapes, blank lines, CRLF, JSONL with
 * labels, error reporting with line numbers. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "mtest.h"
#include "prompts.h"

static const char *write_file(const char *name, const char *data, size_t len)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", mt_tmpdir(), name);
    FILE *f = fopen(path, "wb");
    if (!f) return NULL;
    fwrite(data, 1, len, f);
    fclose(f);
    return path;
}

int main(void)
{
    MsError err = { 0 };
    MsPrompt *p = NULL;
    size_t n = 0;

    /* unescape alone */
    char s1[] = "a\\nb\\tc\\\\d";
    int r = ms_prompt_unescape(s1, strlen(s1), &err);
    MT_CHECK(r == 7 && !memcmp(s1, "a\nb\tc\\d", 7), "unescape \\n \\t \\\\ (len %d)", r);
    char s2[] = "ok \\q here";
    r = ms_prompt_unescape(s2, strlen(s2), &err);
    MT_CHECK(r == MS_EFORMAT && strstr(err.msg, "\\q") && !strncmp(err.msg, "4: ", 3),
             "unknown escape rejected with column: %s", err.msg);
    char s3[] = "trailing \\";
    r = ms_prompt_unescape(s3, strlen(s3), &err);
    MT_CHECK(r == MS_EFORMAT, "lone trailing backslash rejected: %s", err.msg);
    char s4[] = "\\\\n";   /* escaped backslash then plain n */
    r = ms_prompt_unescape(s4, strlen(s4), &err);
    MT_CHECK(r == 2 && !memcmp(s4, "\\n", 2), "\\\\n decodes to backslash + n");

    /* text file: blank lines skipped, CRLF stripped, line numbers kept */
    const char txt[] = "first line\r\n\r\n   \n\tsecond\\tx\r\nthird\\nline\n\nlast no newline";
    const char *path = write_file("p.txt", txt, sizeof txt - 1);
    r = ms_prompts_read(path, &p, &n, &err);
    MT_CHECK(r == 0 && n == 4, "text file: 4 prompts (rc %d, n %zu) %s", r, n, r ? err.msg : "");
    if (r == 0 && n == 4) {
        MT_CHECK(!strcmp(p[0].text, "first line") && p[0].len == 10 && p[0].line == 1, "CRLF stripped, line 1");
        MT_CHECK(!strcmp(p[1].text, "\tsecond\tx") && p[1].line == 4, "leading tab kept, escape decoded, line 4 (%d)", p[1].line);
        MT_CHECK(!strcmp(p[2].text, "third\nline") && p[2].line == 5, "\\n decoded, line 5");
        MT_CHECK(!strcmp(p[3].text, "last no newline") && p[3].line == 7, "last line without newline, line 7");
        MT_CHECK(p[0].labels_json == NULL, "text prompts have no labels");
    }
    ms_prompts_free(p, n);
    p = NULL;

    /* text file with a bad escape: FILE:LINE: in the message */
    const char bad[] = "fine\nalso fine\nbad \\x escape\n";
    path = write_file("bad.txt", bad, sizeof bad - 1);
    r = ms_prompts_read(path, &p, &n, &err);
    char want[600];
    snprintf(want, sizeof want, "%s:3:", path);
    MT_CHECK(r == MS_EFORMAT && !strncmp(err.msg, want, strlen(want)) && strstr(err.msg, "\\x"),
             "bad escape reported as FILE:3: %s", err.msg);

    /* JSONL with labels, blank line, CRLF */
    const char jl[] = "{\"text\": \"Hello\\nworld\", \"labels\": {\"topic\": \"greeting\", \"n\": 2}}\r\n"
                      "\n"
                      "{\"text\": \"caf\\u00e9\"}\n"
                      "  {\"labels\": null, \"text\": \"tab\\there\"}\n";
    path = write_file("p.jsonl", jl, sizeof jl - 1);
    r = ms_prompts_read(path, &p, &n, &err);
    MT_CHECK(r == 0 && n == 3, "JSONL: 3 prompts (rc %d) %s", r, r ? err.msg : "");
    if (r == 0 && n == 3) {
        MT_CHECK(!strcmp(p[0].text, "Hello\nworld") && p[0].line == 1, "JSON escapes decoded");
        MT_CHECK(p[0].labels_json && !strcmp(p[0].labels_json, "{\"n\":2,\"topic\":\"greeting\"}"),
                 "labels as compact JSON: %s", p[0].labels_json ? p[0].labels_json : "(null)");
        MT_CHECK(!strcmp(p[1].text, "caf\xc3\xa9") && p[1].line == 3 && !p[1].labels_json, "unicode, no labels, line 3");
        MT_CHECK(p[2].len == 8 && !memcmp(p[2].text, "tab\there", 8) && p[2].line == 4, "leading blanks, labels null "
                 "(len %zu)", p[2].len);
    }
    ms_prompts_free(p, n);
    p = NULL;

    /* malformed JSONL line reported with its line number */
    const char jbad[] = "{\"text\": \"ok\"}\n{\"text\": \"ok too\"}\n\n{\"text\": \"unterminated}\n";
    path = write_file("bad.jsonl", jbad, sizeof jbad - 1);
    r = ms_prompts_read(path, &p, &n, &err);
    snprintf(want, sizeof want, "%s:4:", path);
    MT_CHECK(r == MS_EFORMAT && !strncmp(err.msg, want, strlen(want)), "malformed JSONL at line 4: %s", err.msg);
    MT_CHECK(strchr(err.msg, '\n') == NULL, "error message is one line");

    const char jnotext[] = "{\"text\": \"ok\"}\n{\"txt\": \"typo\"}\n";
    path = write_file("notext.jsonl", jnotext, sizeof jnotext - 1);
    r = ms_prompts_read(path, &p, &n, &err);
    MT_CHECK(r == MS_EFORMAT && strstr(err.msg, ":2:") && strstr(err.msg, "text"), "missing text at line 2: %s", err.msg);

    const char jlab[] = "{\"text\": \"ok\", \"labels\": [1, 2]}\n";
    path = write_file("lab.jsonl", jlab, sizeof jlab - 1);
    r = ms_prompts_read(path, &p, &n, &err);
    MT_CHECK(r == MS_EFORMAT && strstr(err.msg, ":1:") && strstr(err.msg, "labels"), "non-object labels: %s", err.msg);

    /* one rule for prompt text: valid UTF-8 without NUL, or the line and
     * column of the first problem (never a silent change) */
    const char nul_esc[] = "{\"text\": \"ok\"}\n{\"text\": \"nul\\u0000byte\"}\n";
    path = write_file("nul.jsonl", nul_esc, sizeof nul_esc - 1);
    r = ms_prompts_read(path, &p, &n, &err);
    MT_CHECK(r == MS_EFORMAT && strstr(err.msg, ":2: ") && strstr(err.msg, "NUL"), "\\u0000 in JSONL text: %s", err.msg);
    const char nul_raw[] = "fine\nraw \0 byte\n";
    path = write_file("nul.txt", nul_raw, sizeof nul_raw - 1);
    r = ms_prompts_read(path, &p, &n, &err);
    MT_CHECK(r == MS_EFORMAT && strstr(err.msg, ":2:5: NUL character"), "raw NUL byte: line 2 column 5: %s", err.msg);
    const char bad8[] = "caf\xc3\xa9 is fine\n\nbut \xff is not\n";
    path = write_file("bad8.txt", bad8, sizeof bad8 - 1);
    r = ms_prompts_read(path, &p, &n, &err);
    MT_CHECK(r == MS_EFORMAT && strstr(err.msg, ":3:5: invalid UTF-8 (byte 0xff)"), "invalid UTF-8: line 3 column 5: %s",
             err.msg);
    const char over[] = "\xc0\xaf overlong\n";
    path = write_file("over.txt", over, sizeof over - 1);
    r = ms_prompts_read(path, &p, &n, &err);
    MT_CHECK(r == MS_EFORMAT && strstr(err.msg, ":1:1: invalid UTF-8"), "overlong form rejected: %s", err.msg);
    const char surr[] = "{\"text\": \"\xed\xa0\x80\"}\n";
    path = write_file("surr.jsonl", surr, sizeof surr - 1);
    r = ms_prompts_read(path, &p, &n, &err);
    MT_CHECK(r == MS_EFORMAT && strstr(err.msg, ":1:11: invalid UTF-8"), "encoded surrogate in JSONL rejected: %s",
             err.msg);

    /* limits: a line over 1 MiB, an endless line (/dev/zero), a file over
     * 256 MiB; each a clear error, memory bounded */
    size_t big = MS_PROMPT_MAX_LINE + 10;
    char *line = malloc(big + 8);
    memcpy(line, "short\n", 6);
    memset(line + 6, 'a', big);
    line[6 + big] = '\n';
    path = write_file("long.txt", line, big + 7);
    free(line);
    r = ms_prompts_read(path, &p, &n, &err);
    MT_CHECK(r == MS_ERANGE && strstr(err.msg, ":2: line longer than the limit of 1024 KiB"), "10 MB line: %s", err.msg);
    r = ms_prompts_read("/dev/zero", &p, &n, &err);
    MT_CHECK(r == MS_EFORMAT && !strcmp(err.msg, "/dev/zero:1:1: NUL character (text must be valid UTF-8 without NUL)"),
             "/dev/zero: %s", err.msg);
    char *txt2 = NULL;
    size_t tl = 0;
    r = ms_text_read_file("/dev/zero", 1 << 20, &txt2, &tl, &err);
    MT_CHECK(r == MS_ERANGE && strstr(err.msg, "/dev/zero: larger than the limit of 1 MiB"), "text file limit: %s", err.msg);
    path = write_file("sparse.txt", "x", 1);
    MT_CHECK(truncate(path, (off_t)MS_PROMPT_MAX_FILE + 1) == 0, "a sparse file of 256 MiB + 1");
    r = ms_prompts_read(path, &p, &n, &err);
    MT_CHECK(r == MS_ERANGE && strstr(err.msg, "larger than the limit of 256 MiB"), "file over 256 MiB: %s", err.msg);
    remove(path);

    /* empty and blank-only files have no prompts: an error, not a run of 0 */
    path = write_file("empty.txt", "\n \n\t\r\n", 6);
    r = ms_prompts_read(path, &p, &n, &err);
    MT_CHECK(r == MS_EFORMAT && strstr(err.msg, "no prompts"), "blank-only file: %s", err.msg);
    path = write_file("zero.txt", "", 0);
    r = ms_prompts_read(path, &p, &n, &err);
    MT_CHECK(r == MS_EFORMAT && strstr(err.msg, "zero.txt: no prompts"), "empty file: %s", err.msg);
    r = ms_prompts_read("/nonexistent/dir/prompts.txt", &p, &n, &err);
    MT_CHECK(r == MS_EIO && strstr(err.msg, "/nonexistent/dir/prompts.txt:"), "missing file named: %s", err.msg);
    r = ms_prompts_read(mt_tmpdir(), &p, &n, &err);
    MT_CHECK(r < 0 && strstr(err.msg, mt_tmpdir()), "directory rejected: %s", err.msg);
    ms_prompts_free(NULL, 0);   /* must accept NULL (crash = failure) */

    /* the prompt set's identity (--resume): content, not format or line ends */
    {
        static const char *const sets[] = {
            "alpha\nbeta\n",                                        /* 0 plain */
            "alpha\r\n\r\nbeta",                                  /* 1 plain, CRLF, a blank line */
            "{\"text\": \"alpha\"}\n{\"text\": \"beta\"}\n",          /* 2 JSONL */
            "alpha\nbeta gamma\n",                                  /* 3 other text */
            "{\"text\": \"alpha\", \"labels\": {}}\n{\"text\": \"beta\"}\n", /* 4 labels {} */
            "alphabeta\n",                                           /* 5 concatenation */
        };
        char h[6][65];
        for (int i = 0; i < 6; i++) {
            MsPrompt *q = NULL;
            size_t nq = 0;
            int rq = ms_prompts_parse("set", sets[i], strlen(sets[i]), &q, &nq, &err);
            MT_CHECK(rq == 0, "set %d parsed: %s", i, rq ? err.msg : "");
            ms_prompts_sha256(q, nq, h[i]);
            ms_prompts_free(q, nq);
        }
        MT_CHECK(!strcmp(h[0], h[1]) && !strcmp(h[0], h[2]), "same prompts, same hash (plain, CRLF, JSONL)");
        MT_CHECK(strcmp(h[0], h[3]) && strcmp(h[0], h[4]) && strcmp(h[0], h[5]),
                 "other text, labels {} or a concatenation: another hash");
        MT_CHECK(strlen(h[0]) == 64 && strspn(h[0], "0123456789abcdef") == 64, "64 hex digits");
    }
    return mt_done();
}
