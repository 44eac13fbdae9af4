/* prompts.h — prompt files: plain text (one prompt per line, with the escapes
 * \n \t \\ decoded) or JSONL ({"text": ..., "labels": {...}} per line),
 * detected by the first non-blank character of the file ('{' = JSONL).
 * A malformed line is reported as "FILE:LINE: problem". */
#ifndef MS_PROMPTS_H
#define MS_PROMPTS_H

#include <stddef.h>

#include "ms-common.h"

typedef struct {
    char *text;          /* decoded prompt, NUL-terminated (may contain NUL: use len) */
    size_t len;
    char *labels_json;   /* compact JSON object text of "labels", or NULL */
    int line;            /* 1-based line number in the file */
} MsPrompt;

/* Reads every prompt (blank lines are skipped in text files).  On success
 * *out (caller frees with ms_prompts_free) and *n are set. */
int ms_prompts_read(const char *path, MsPrompt **out, size_t *n, MsError *err);
/* The same from a buffer already in memory (prompts typed or pasted into the
 * workbench); name stands for the file in messages ("NAME:LINE: ..."). */
int ms_prompts_parse(const char *name, const char *buf, size_t len, MsPrompt **out, size_t *n,
                     MsError *err);
void ms_prompts_free(MsPrompt *p, size_t n);   /* accepts NULL */
/* Decode \n \t \\ escapes of one text line in place; returns new length or
 * MS_EFORMAT for an unknown escape (err names column). */
int ms_prompt_unescape(char *s, size_t len, MsError *err);

#endif
