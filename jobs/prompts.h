/* prompts.h — prompt files: plain text (one prompt per line, with the escapes
 * \n \t \\ decoded) or JSONL ({"text": ..., "labels": {...}} per line),
 * detected by the first non-blank character of the file ('{' = JSONL).
 * A malformed line is reported as "FILE:LINE: problem".
 *
 * Prompt text is valid UTF-8 without NUL characters: a line that is not is
 * rejected with its line number and column, never changed (the tokenizers
 * would replace invalid bytes with U+FFFD).  Every command and job that
 * takes text applies this one rule (ms_text_utf8_check).
 *
 * Limits (a clear error, never unbounded memory): a line of at most
 * MS_PROMPT_MAX_LINE bytes, a file of at most MS_PROMPT_MAX_FILE bytes, and
 * at least one prompt. */
#ifndef MS_PROMPTS_H
#define MS_PROMPTS_H

#include <stddef.h>

#include "ms-common.h"

#define MS_PROMPT_MAX_LINE ((size_t)1 << 20)    /* 1 MiB: one prompt line */
#define MS_PROMPT_MAX_FILE ((size_t)256 << 20)  /* 256 MiB: a prompt file, or a text read whole */

typedef struct {
    char *text;          /* decoded prompt, NUL-terminated (may contain NUL: use len) */
    size_t len;
    char *labels_json;   /* compact JSON object text of "labels", or NULL */
    int line;            /* 1-based line number in the file */
} MsPrompt;

/* Reads every prompt (blank lines are skipped in text files).  On success
 * *out (caller frees with ms_prompts_free) and *n (>= 1) are set.  A file
 * without prompts (empty, blank lines only) is MS_EFORMAT. */
int ms_prompts_read(const char *path, MsPrompt **out, size_t *n, MsError *err);
/* The same from a buffer already in memory (prompts typed or pasted into the
 * workbench); name stands for the file in messages ("NAME:LINE: ..."). */
int ms_prompts_parse(const char *name, const char *buf, size_t len, MsPrompt **out, size_t *n,
                     MsError *err);
void ms_prompts_free(MsPrompt *p, size_t n);   /* accepts NULL */
/* The content of a prompt set as 64 hex digits: SHA-256 over each prompt's
 * text and labels (lengths included, so no two sets collide by
 * concatenation).  Independent of the file's name, format (plain or
 * JSONL), line endings and blank lines: runs are resumed by it. */
void ms_prompts_sha256(const MsPrompt *p, size_t n, char out[65]);

/* 0 when s[0..len) is valid UTF-8 (shortest forms, no surrogates, at most
 * U+10FFFF) without NUL; otherwise -1 with the byte offset of the first
 * problem in *off and a static description in *why ("NUL character" or
 * "invalid UTF-8").  off/why may be NULL. */
int ms_text_utf8_check(const char *s, size_t len, size_t *off, const char **why);
/* The same rule with a message for err: "NAME:LINE:COL: problem" (line and
 * column counted from first_line in s, 1-based; first_line 0 leaves the
 * line out: "NAME: problem at byte N").  Returns 0 or MS_EFORMAT. */
int ms_text_check(const char *name, int first_line, const char *s, size_t len, MsError *err);
/* Read a whole text file of at most max bytes (0 = MS_PROMPT_MAX_FILE) into
 * a malloc'd NUL-terminated buffer; a larger file (or an endless one such as
 * /dev/zero) is MS_ERANGE "PATH: larger than N MiB", a directory MS_EIO. */
int ms_text_read_file(const char *path, size_t max, char **buf, size_t *len, MsError *err);
/* Decode \n \t \\ escapes of one text line in place; returns new length or
 * MS_EFORMAT for an unknown escape, err then reading "COL: problem" (1-based
 * column of the backslash) so that a "NAME:LINE:" prefix gives the usual
 * NAME:LINE:COL form. */
int ms_prompt_unescape(char *s, size_t len, MsError *err);

#endif
