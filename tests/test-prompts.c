/* test-prompts.c — prompt files: text escapes, blank lines, CRLF, JSONL with
 * labels, error reporting with line numbers. */
#include <stdio.h>
#include <string.h>

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
    MT_CHECK(r == MS_EFORMAT && strstr(err.msg, "\\q") && strstr(err.msg, "column 4"),
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
                      "  {\"labels\": null, \"text\": \"nul\\u0000byte\"}\n";
    path = write_file("p.jsonl", jl, sizeof jl - 1);
    r = ms_prompts_read(path, &p, &n, &err);
    MT_CHECK(r == 0 && n == 3, "JSONL: 3 prompts (rc %d) %s", r, r ? err.msg : "");
    if (r == 0 && n == 3) {
        MT_CHECK(!strcmp(p[0].text, "Hello\nworld") && p[0].line == 1, "JSON escapes decoded");
        MT_CHECK(p[0].labels_json && !strcmp(p[0].labels_json, "{\"n\":2,\"topic\":\"greeting\"}"),
                 "labels as compact JSON: %s", p[0].labels_json ? p[0].labels_json : "(null)");
        MT_CHECK(!strcmp(p[1].text, "caf\xc3\xa9") && p[1].line == 3 && !p[1].labels_json, "unicode, no labels, line 3");
        MT_CHECK(p[2].len == 8 && !memcmp(p[2].text, "nul\0byte", 8) && p[2].line == 4, "embedded NUL kept (len %zu)",
                 p[2].len);
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

    /* empty file, missing file, directory */
    path = write_file("empty.txt", "\n\n", 2);
    r = ms_prompts_read(path, &p, &n, &err);
    MT_CHECK(r == 0 && n == 0, "blank-only file: 0 prompts");
    ms_prompts_free(p, n);
    p = NULL;
    r = ms_prompts_read("/nonexistent/dir/prompts.txt", &p, &n, &err);
    MT_CHECK(r == MS_EIO && strstr(err.msg, "/nonexistent/dir/prompts.txt:"), "missing file named: %s", err.msg);
    r = ms_prompts_read(mt_tmpdir(), &p, &n, &err);
    MT_CHECK(r < 0 && strstr(err.msg, mt_tmpdir()), "directory rejected: %s", err.msg);
    ms_prompts_free(NULL, 0);   /* must accept NULL (crash = failure) */
    return mt_done();
}
