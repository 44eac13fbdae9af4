/* tokenizer.h — tokenizers built from GGUF metadata, matching llama.cpp:
 * byte-level BPE (tokenizer.ggml.model "gpt2") with the pre-tokenizer regexes
 * of tokenizer.ggml.pre (through PCRE2), SentencePiece ("llama"), and
 * WordPiece ("bert").  Works on vocabulary-only GGUF files.  Facts:
 * GGUF-MOE.md §7. */
#ifndef MS_TOKENIZER_H
#define MS_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gguf.h"
#include "ms-common.h"

typedef struct MsTokenizer MsTokenizer;

typedef enum { MS_TOK_BPE, MS_TOK_SPM, MS_TOK_WPM } MsTokKind;

/* Build from g's tokenizer.* keys.  g is only read during the call (the
 * tokenizer copies what it needs).  Unsupported model/pre values give
 * MS_EUNSUPPORTED with a message naming them. */
MsTokenizer *ms_tokenizer_new(const MsGguf *g, MsError *err);
void ms_tokenizer_free(MsTokenizer *t);  /* accepts NULL */

MsTokKind ms_tokenizer_kind(const MsTokenizer *t);
const char *ms_tokenizer_model_name(const MsTokenizer *t); /* "gpt2", "llama", "bert" */
const char *ms_tokenizer_pre_name(const MsTokenizer *t);   /* tokenizer.ggml.pre or "default" */
int32_t ms_tokenizer_n_vocab(const MsTokenizer *t);
int32_t ms_tokenizer_bos(const MsTokenizer *t);  /* -1 if none */
int32_t ms_tokenizer_eos(const MsTokenizer *t);  /* -1 if none */
bool ms_tokenizer_add_bos(const MsTokenizer *t);
bool ms_tokenizer_add_eos(const MsTokenizer *t);
bool ms_tokenizer_is_eog(const MsTokenizer *t, int32_t id); /* eos/eot/eom */

/* Tokenize text[0..len) (UTF-8; invalid bytes are handled as llama.cpp does).
 * add_special: prepend BOS / append EOS (and WPM's CLS/SEP) as the metadata
 * says.  Special tokens in the text are NOT parsed (parse_special = false).
 * On success *out is a malloc'd array the caller frees and the count is
 * returned; negative MS_E* on failure. */
int ms_tokenizer_encode(const MsTokenizer *t, const char *text, size_t len,
                        bool add_special, int32_t **out, MsError *err);

/* The raw piece bytes of one token as it appears in detokenised text (byte
 * tokens give their byte, "▁" becomes a space, control tokens give "").
 * Writes at most cap bytes and returns the full length, or MS_ERANGE for an
 * id outside the vocabulary. */
int ms_tokenizer_piece(const MsTokenizer *t, int32_t id, char *buf, size_t cap);
/* Vocabulary text of a token as stored (e.g. "Ġthe"); borrowed. NULL if out of range. */
const char *ms_tokenizer_token_text(const MsTokenizer *t, int32_t id);
/* Detokenise ids into a malloc'd NUL-terminated string (length in *len). */
char *ms_tokenizer_decode(const MsTokenizer *t, const int32_t *ids, size_t n, size_t *len);

#endif
