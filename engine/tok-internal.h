/* tok-internal.h — private pieces shared by the tokenizer files
 * (tokenizer.c: loading, special-token partition, pieces/decoding;
 * tok-bpe.c: pre-tokenizer regexes and byte-level BPE; tok-spm.c:
 * SentencePiece; tok-wpm.c: WordPiece; tok-util.c: hash map, UTF-8, heap).
 * Nothing here is part of the engine's public interface. */
#ifndef MS_TOK_INTERNAL_H
#define MS_TOK_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tokenizer.h"

/* Token attributes, derived from tokenizer.ggml.token_type (1 normal,
 * 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte) plus the
 * strip flags llama.cpp sets for some models. */
enum {
    TOK_ATTR_NORMAL = 1 << 0,
    TOK_ATTR_UNKNOWN = 1 << 1,
    TOK_ATTR_CONTROL = 1 << 2,
    TOK_ATTR_USER = 1 << 3,
    TOK_ATTR_UNUSED = 1 << 4,
    TOK_ATTR_BYTE = 1 << 5,
    TOK_ATTR_LSTRIP = 1 << 6,
    TOK_ATTR_RSTRIP = 1 << 7,
};

/* ---- string -> int32 hash map (open addressing; keys are borrowed) ---- */
typedef struct {
    const char *key;   /* NULL marks an empty slot */
    uint32_t len;
    int32_t val;
} TokMapEntry;

typedef struct {
    TokMapEntry *slots;
    size_t cap;        /* power of two */
    size_t n;
} TokMap;

int tokmap_init(TokMap *m, size_t expected);
void tokmap_clear(TokMap *m);
/* Insert key (borrowed, must outlive the map).  When the key exists the
 * value is replaced only if overwrite. */
void tokmap_put(TokMap *m, const char *key, size_t len, int32_t val, bool overwrite);
int32_t tokmap_get(const TokMap *m, const char *key, size_t len); /* -1 if absent */
uint64_t tok_hash(const char *s, size_t n);

/* ---- growable arrays ---- */
typedef struct { int32_t *v; size_t n, cap; } TokIds;
int tokids_push(TokIds *a, int32_t id);   /* 0 or MS_ENOMEM */

typedef struct { char *s; size_t n, cap; } TokStr;
int tokstr_append(TokStr *b, const char *s, size_t n);
int tokstr_reserve(TokStr *b, size_t n);

/* ---- UTF-8 ---- */
/* Byte length of the sequence a lead byte announces (continuation bytes and
 * invalid leads count as 1), as llama.cpp's unicode_len_utf8. */
int tok_utf8_len(uint8_t lead);
/* Decode leniently as llama.cpp does: a malformed or truncated sequence
 * yields U+FFFD and consumes one byte; overlong forms and surrogates are
 * accepted as decoded.  Writes at most len code points; returns count. */
size_t tok_utf8_decode(const char *s, size_t len, uint32_t *out);
/* Encode any value < 0x200000 (surrogates included); returns bytes (1..4). */
int tok_utf8_encode(uint32_t cp, char *out);

/* ---- Unicode classes (llama.cpp's code-point flags) ---- */
bool tok_is_whitespace(uint32_t cp);

/* ---- binary min-heap of merge candidates ---- */
typedef struct {
    double key;        /* BPE: rank; SPM: -score */
    int32_t left, right;
    uint32_t size;     /* byte length of left + right when queued */
} TokBigram;

typedef struct { TokBigram *v; size_t n, cap; } TokHeap;
int tokheap_push(TokHeap *h, TokBigram b);
TokBigram tokheap_pop(TokHeap *h);  /* requires h->n > 0 */

/* Symbol of the merge loops: a byte span of the word with list links, and
 * the token whose text it is (-1 when the span is not a token). */
typedef struct {
    int32_t prev, next;
    uint32_t off, n;
    int32_t id;
} TokSym;

/* BPE merges keyed by the token ids of their two sides: one probe of a
 * 64-bit key instead of building and hashing "left right".  Merges whose
 * sides are not both tokens stay reachable through the string map. */
typedef struct {
    uint64_t *key;     /* (left << 32 | right); UINT64_MAX = empty slot */
    int32_t *rank;     /* merge rank (first occurrence) */
    int32_t *result;   /* token of left+right, -1 if not in the vocabulary */
    size_t cap;        /* power of two */
} TokPairMap;

/* ---- tokenizer.json pipeline pieces (tokenizer.c) ---- */
enum { TOK_HF_NFC, TOK_HF_PREPEND, TOK_HF_REPLACE,                        /* normalizers */
       TOK_HF_D_BYTELEVEL, TOK_HF_D_REPLACE, TOK_HF_D_BYTEFALLBACK,       /* decoders */
       TOK_HF_D_FUSE, TOK_HF_D_STRIP, TOK_HF_D_METASPACE };
typedef struct TokHfStep {
    int op;
    char *a, *b;              /* Prepend: a; Replace: a -> b; Strip/Metaspace: a = the character */
    int n1, n2;               /* Strip: start, stop; Metaspace: prepend scheme */
} TokHfStep;

enum { TOK_HF_LSTRIP = 1, TOK_HF_RSTRIP = 2, TOK_HF_SINGLE_WORD = 4, TOK_HF_NORMALIZED = 8, TOK_HF_SPECIAL = 16 };
typedef struct TokHfAdded {
    int32_t id;
    int flags;                /* TOK_HF_* */
    char *match;              /* the text matched: content, or its normalized form */
    size_t len;
} TokHfAdded;

/* ---- the tokenizer ---- */
struct TokRegex;

struct MsTokenizer {
    MsTokKind kind;
    char *model;              /* "gpt2", "llama", "bert" */
    char *pre;                /* tokenizer.ggml.pre or "default" */
    int32_t n_vocab;

    char *pool;               /* all token texts, each NUL-terminated */
    size_t *tok_off;          /* n_vocab offsets into pool */
    uint32_t *tok_len;
    float *scores;            /* n_vocab (0 when absent) */
    uint8_t *attr;            /* n_vocab TOK_ATTR_* */
    uint8_t *eog;             /* n_vocab: 1 for end-of-generation tokens */
    TokMap vocab;             /* text -> id; a later duplicate wins, as llama.cpp */
    uint32_t max_token_len;

    char *merge_pool;         /* BPE merges "left right", rank = index */
    TokMap merges;            /* first occurrence wins */
    TokPairMap pairs;         /* the same merges by token ids (tok-bpe.c) */
    int32_t byte_cp_tok[256]; /* BPE: token of each byte's printable character, -1 if none */
    bool no_word_cache;       /* BPE: merge every piece (tests compare with the cached path) */

    int32_t bos, eos, eot, eom, unk, sep, pad;
    bool add_bos, add_eos, add_sep;
    bool add_space_prefix, clean_spaces, ignore_merges;

    int32_t *special;         /* control/user/unknown ids, longest text first */
    size_t n_special;

    /* Hugging Face semantics (tokenizer.hf.* keys, written only for a
     * tokenizer.json): the file's own Split regexes replace the
     * pre-tokenizer's */
    char **hf_rx;
    size_t n_hf_rx;
    /* the full tokenizer.json pipeline (tokenizer.hf.mode present):
     * normalizer steps, Metaspace, BPE over characters with byte fallback
     * when not byte-level, added tokens with their flags, decoder steps */
    bool hf;
    bool hf_byte_level;       /* ByteLevel pre-tokenizer: byte-level BPE */
    bool hf_byte_fallback, hf_fuse_unk;
    int32_t hf_unk;           /* model.unk_token, -1 if none */
    struct TokHfStep *hf_norm;    /* normalizer steps, in order */
    size_t n_hf_norm;
    struct TokHfStep *hf_dec;     /* decoder steps, in order */
    size_t n_hf_dec;
    char *hf_meta;            /* Metaspace replacement (UTF-8), NULL if none */
    int hf_meta_scheme;       /* 0 always, 1 first, 2 never */
    struct TokHfAdded *hf_added;  /* added tokens, as tokenizer.json lists them */
    size_t n_hf_added;
    uint32_t *hf_by_byte;     /* hf_added indices by first byte, longest first */
    uint32_t hf_byte_start[257];  /* bucket of byte b: hf_by_byte[start[b] .. start[b+1]) */
    int32_t *hf_added_ix;     /* n_vocab: 1 + index into hf_added of a token
                               * decoded in its normalized form, else 0 (NULL if none) */

    struct TokRegex *regex;   /* BPE pre-tokenizer, applied in order */
    size_t n_regex;

    int32_t byte_tok[256];    /* SPM: <0xXX> (or the raw byte) token, -1 if none */

    /* SPM: Bloom bitmap of the adjacent character pairs inside tokens.  Where
     * two neighbouring characters of the text form no such pair, no merge
     * can ever cross between them, so the merge queue runs per segment. */
    uint64_t *spm_pairs;
};

#define TOK_SPM_PAIR_BITS 22
static inline bool tok_spm_pair_maybe(const MsTokenizer *t, const char *s, size_t n)
{
    uint64_t h = tok_hash(s, n) >> (64 - TOK_SPM_PAIR_BITS);
    return (t->spm_pairs[h >> 6] >> (h & 63)) & 1;
}

static inline const char *tok_text(const MsTokenizer *t, int32_t id) { return t->pool + t->tok_off[id]; }

/* tok-bpe.c */
int tok_bpe_setup(MsTokenizer *t, MsError *err);   /* compile regexes for t->pre */
void tok_bpe_free(MsTokenizer *t);
/* Per-call scratch (match data, JIT stack, buffers), reused across the
 * fragments of one ms_tokenizer_encode call. */
typedef struct TokBpeSession TokBpeSession;
TokBpeSession *tok_bpe_session_new(const MsTokenizer *t);  /* NULL: no memory */
void tok_bpe_session_free(TokBpeSession *s);               /* accepts NULL */
int tok_bpe_encode(const MsTokenizer *t, TokBpeSession *s, const char *text, size_t len, TokIds *out);
/* One tokenizer.json BPE word over characters (not byte-level): each
 * character's token, else its <0xXX> byte tokens (byte_fallback), else unk
 * (fused when fuse_unk); then merges by rank, leftmost first. */
int tok_hf_bpe_word(const MsTokenizer *t, TokBpeSession *s, const char *word, size_t len, TokIds *out);
/* The byte <-> code point mapping of byte-level BPE. */
uint32_t tok_byte_to_cp(uint8_t b);
int tok_cp_to_byte(uint32_t cp);  /* -1 if cp is not in the mapping */

/* tok-spm.c */
int tok_spm_encode(const MsTokenizer *t, const char *text, size_t len, TokIds *out);
/* tok-wpm.c */
int tok_wpm_encode(const MsTokenizer *t, const char *text, size_t len, TokIds *out);

#endif
