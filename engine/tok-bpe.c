/* tok-bpe.c — byte-level BPE (tokenizer.ggml.model "gpt2"): the
 * pre-tokenizer regex lists selected by tokenizer.ggml.pre, run through
 * PCRE2 the way llama.cpp's unicode_regex_split applies them, then merges by
 * rank.  Facts: GGUF-MOE.md §7.2; regex lists as in llama.cpp's
 * llama-vocab.cpp (Feb 2025). */
#include "tok-internal.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <stdlib.h>
#include <string.h>

struct TokRegex {
    pcre2_code *code;
};

/* The GPT-2 pattern.  llama.cpp recognises this exact string and runs
 * hand-written code that also has the trailing "|\s+" alternative of the
 * original OpenAI pattern; appending it gives PCRE2 the same behaviour. */
#define RX_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"
#define RX_GPT2_FULL RX_GPT2 "|\\s+"
#define RX_LLAMA3 "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RX_QWEN2 "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RX_BLOOM " ?[^(\\s|.,!?\\x{2026}\\x{3002}\\x{FF0C}\\x{3001}\\x{964}\\x{6D4}\\x{60C})]+"

static const char *const rx_default[] = { "[\\p{P}\\$\\+<=>\\^~\\|]+", RX_GPT2_FULL, "\\p{N}+", "[0-9][0-9][0-9]", NULL };
static const char *const rx_gpt2[] = { RX_GPT2_FULL, NULL };
static const char *const rx_llama3[] = { RX_LLAMA3, NULL };
static const char *const rx_qwen2[] = { RX_QWEN2, NULL };
static const char *const rx_falcon[] = { "[\\p{P}\\$\\+<=>\\^~\\|`]+", RX_GPT2_FULL, "[0-9][0-9][0-9]", NULL };
static const char *const rx_starcoder[] = { "\\p{N}", RX_GPT2_FULL, NULL };
static const char *const rx_deepseek_coder[] = {
    "[\\r\\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", "[\\x{4E00}-\\x{9FA5}\\x{800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+", "\\p{N}", NULL };
/* Non-ASCII is written as \x{...} so no editor or normalisation can alter
 * it.  The fact sheet's copy of the deepseek-llm letter class went through
 * NFC, which turned U+1F7D, U+1FBE, U+1FD3, U+1FDB, U+2126 and U+212A into
 * their canonical equivalents (making two ranges run backwards); the class
 * lists cased letters in code point order, which fixes the originals. */
static const char *const rx_deepseek_llm[] = {
    "[\\r\\n]",
    "\\s?[A-Za-z\\x{B5}\\x{C0}-\\x{D6}\\x{D8}-\\x{F6}\\x{F8}-\\x{1BA}\\x{1BC}-\\x{1BF}\\x{1C4}-\\x{293}\\x{295}-\\x{2AF}\\x{370}-\\x{373}\\x{376}\\x{377}\\x{37B}-\\x{37D}\\x{37F}\\x{386}\\x{388}-\\x{38A}\\x{38C}\\x{38E}-\\x{3A1}\\x{3A3}-\\x{3F5}\\x{3F7}-\\x{481}\\x{48A}-\\x{52F}\\x{531}-\\x{556}\\x{10A0}-\\x{10C5}\\x{13A0}-\\x{13F5}\\x{13F8}-\\x{13FD}\\x{1C90}-\\x{1CBA}\\x{1CBD}-\\x{1CBF}\\x{1D00}-\\x{1D2B}\\x{1D6B}-\\x{1D77}\\x{1D79}-\\x{1D9A}\\x{1E00}-\\x{1F15}\\x{1F18}-\\x{1F1D}\\x{1F20}-\\x{1F45}\\x{1F48}-\\x{1F4D}\\x{1F50}-\\x{1F57}\\x{1F59}\\x{1F5B}\\x{1F5D}\\x{1F5F}-\\x{1F7D}\\x{1F80}-\\x{1FB4}\\x{1FB6}-\\x{1FBC}\\x{1FBE}\\x{1FC2}-\\x{1FC4}\\x{1FC6}-\\x{1FCC}\\x{1FD0}-\\x{1FD3}\\x{1FD6}-\\x{1FDB}\\x{1FE0}-\\x{1FEC}\\x{1FF2}-\\x{1FF4}\\x{1FF6}-\\x{1FFC}\\x{2102}\\x{2107}\\x{210A}-\\x{2113}\\x{2115}\\x{2119}-\\x{211D}\\x{2124}\\x{2126}\\x{2128}\\x{212A}-\\x{212D}\\x{212F}-\\x{2134}\\x{2139}\\x{213C}-\\x{213F}\\x{2145}-\\x{2149}\\x{214E}\\x{2183}\\x{2184}\\x{2C00}-\\x{2C7B}\\x{2C7E}-\\x{2CE4}\\x{2CEB}-\\x{2CEE}\\x{2CF2}\\x{2CF3}\\x{A640}-\\x{A66D}\\x{A680}-\\x{A69B}\\x{A722}-\\x{A76F}\\x{A771}-\\x{A787}\\x{A78B}-\\x{A78E}\\x{AB70}-\\x{ABBF}\\x{FB00}-\\x{FB06}\\x{FB13}-\\x{FB17}\\x{FF21}-\\x{FF3A}\\x{FF41}-\\x{FF5A}\\x{10400}-\\x{1044F}\\x{104B0}-\\x{104D3}\\x{104D8}-\\x{104FB}\\x{10C80}-\\x{10CB2}\\x{10CC0}-\\x{10CF2}\\x{118A0}-\\x{118DF}\\x{1E900}-\\x{1E943}]+",
    "\\s?[!-/:-~\\x{FF01}-\\x{FF0F}\\x{FF1A}-\\x{FF5E}\\x{2018}-\\x{201F}\\x{3000}-\\x{3002}]+",
    "\\s+$",
    "[\\x{4E00}-\\x{9FA5}\\x{800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+",
    "\\p{N}+",
    NULL };
static const char *const rx_deepseek3[] = {
    "\\p{N}{1,3}",
    "[\\x{4E00}-\\x{9FA5}\\x{3040}-\\x{309F}\\x{30A0}-\\x{30FF}]+",
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\\r\\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    NULL };
static const char *const rx_bloom[] = { RX_BLOOM, NULL };
static const char *const rx_viking[] = { RX_BLOOM, "\\p{N}", NULL };
static const char *const rx_tekken[] = {
    "[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))*((?=[\\p{L}])([^A-Z]))+|[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))+((?=[\\p{L}])([^A-Z]))*|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    NULL };
static const char *const rx_gpt4o[] = {
    "[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))*((?=[\\p{L}])([^A-Z]))+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))+((?=[\\p{L}])([^A-Z]))*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    NULL };
static const char *const rx_chameleon[] = {
    "<sentinel:[0-9]+>", "(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z", "([\\t\\n]|    |  )",
    "\\p{N}", "[\\p{P}!-/:-@\\[-`{-~]", RX_GPT2_FULL, NULL };

/* tokenizer.ggml.pre values llama.cpp knows, with the flags it sets. */
typedef struct {
    const char *name;
    const char *const *rx;
    bool clean_spaces, ignore_merges, add_bos;
} PreType;

static const PreType pre_types[] = {
    { "default", rx_default, true, false, false },
    { "llama3", rx_llama3, true, true, true },
    { "llama-v3", rx_llama3, true, true, true },
    { "llama-bpe", rx_llama3, true, true, true },
    { "falcon3", rx_llama3, true, true, true },
    { "dbrx", rx_llama3, true, false, false },
    { "smaug-bpe", rx_llama3, true, false, false },
    { "chatglm-bpe", rx_llama3, true, false, false },
    { "deepseek-llm", rx_deepseek_llm, false, false, false },
    { "deepseek-coder", rx_deepseek_coder, false, false, false },
    { "deepseek-v3", rx_deepseek3, false, false, false },
    { "falcon", rx_falcon, true, false, false },
    { "mpt", rx_gpt2, true, false, false },
    { "olmo", rx_gpt2, true, false, false },
    { "jais", rx_gpt2, true, false, false },
    { "gpt-2", rx_gpt2, true, false, false },
    { "phi-2", rx_gpt2, true, false, false },
    { "jina-es", rx_gpt2, true, false, false },
    { "jina-de", rx_gpt2, true, false, false },
    { "gigachat", rx_gpt2, true, false, false },
    { "jina-v1-en", rx_gpt2, true, false, false },
    { "jina-v2-es", rx_gpt2, true, false, false },
    { "jina-v2-de", rx_gpt2, true, false, false },
    { "jina-v2-code", rx_gpt2, true, false, false },
    { "roberta-bpe", rx_gpt2, true, false, false },
    { "starcoder", rx_starcoder, true, false, false },
    { "refact", rx_starcoder, true, false, false },
    { "codeshell", rx_starcoder, true, false, false },
    { "exaone", rx_starcoder, true, false, false },
    { "minerva-7b", rx_starcoder, true, false, false },
    { "command-r", rx_starcoder, false, false, false },
    { "smollm", rx_starcoder, false, false, false },
    { "qwen2", rx_qwen2, false, false, false },
    { "deepseek-r1-qwen", rx_qwen2, false, false, false },
    { "megrez", rx_qwen2, false, false, false },
    { "stablelm2", rx_qwen2, true, false, false },
    { "poro-chat", rx_bloom, false, false, false },
    { "bloom", rx_bloom, true, false, false },
    { "gpt3-finnish", rx_bloom, true, false, false },
    { "viking", rx_viking, false, false, false },
    { "tekken", rx_tekken, false, true, true },
    { "chameleon", rx_chameleon, false, false, true },
    { "gpt-4o", rx_gpt4o, false, false, false },
    { "llama4", rx_gpt4o, false, false, false },
};

/* ---- byte-level mapping ---- */

/* Printable bytes map to themselves; the other 68 to U+0100 upward in byte
 * order (GPT-2's bytes_to_unicode). */
static bool byte_is_printable(unsigned b)
{
    return (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae);
}

uint32_t tok_byte_to_cp(uint8_t b)
{
    if (byte_is_printable(b)) return b;
    uint32_t n = 0;
    for (unsigned i = 0; i < b; i++) n += !byte_is_printable(i);
    return 256 + n;
}

int tok_cp_to_byte(uint32_t cp)
{
    if (cp < 256) return byte_is_printable(cp) ? (int)cp : -1;
    if (cp >= 256 + 68) return -1;
    uint32_t n = cp - 256;
    for (unsigned b = 0; b < 256; b++)
        if (!byte_is_printable(b) && n-- == 0) return (int)b;
    return -1;
}

/* ---- setup ---- */

static int build_pairs(MsTokenizer *t);

int tok_bpe_setup(MsTokenizer *t, MsError *err)
{
    const PreType *pt = NULL;
    for (size_t i = 0; i < MS_ARRAY_LEN(pre_types); i++)
        if (strcmp(pre_types[i].name, t->pre) == 0) { pt = &pre_types[i]; break; }
    if (!pt)
        return ms_error_set(err, MS_EUNSUPPORTED, "unsupported pre-tokenizer tokenizer.ggml.pre = '%s'", t->pre);
    t->clean_spaces = pt->clean_spaces;
    t->ignore_merges = pt->ignore_merges;
    t->add_bos = pt->add_bos;
    if (build_pairs(t)) return ms_error_set(err, MS_ENOMEM, "out of memory");

    size_t n = 0;
    while (pt->rx[n]) n++;
    const char *const *rx = pt->rx;
    if (t->n_hf_rx || t->hf) {   /* a tokenizer.json's own regexes (maybe none) */
        rx = (const char *const *)t->hf_rx;
        n = t->n_hf_rx;
    }
    t->regex = calloc(n ? n : 1, sizeof *t->regex);
    if (!t->regex) return ms_error_set(err, MS_ENOMEM, "out of memory");
    t->n_regex = n;
    for (size_t i = 0; i < n; i++) {
        int ec;
        PCRE2_SIZE eo;
        /* DOLLAR_ENDONLY: "$" means the end of the piece, as in std::regex */
        t->regex[i].code = pcre2_compile((PCRE2_SPTR)rx[i], PCRE2_ZERO_TERMINATED,
                                         PCRE2_UTF | PCRE2_DOLLAR_ENDONLY, &ec, &eo, NULL);
        if (!t->regex[i].code) {
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(ec, msg, sizeof msg);
            return ms_error_set(err, t->n_hf_rx ? MS_EUNSUPPORTED : MS_EINTERNAL,
                                "pre-tokenizer '%s': regex %zu does not compile at %zu: %s",
                                t->pre, i, (size_t)eo, (const char *)msg);
        }
        /* JIT is an optimisation only: without it pcre2_match interprets */
        (void)pcre2_jit_compile(t->regex[i].code, PCRE2_JIT_COMPLETE);
    }
    return MS_OK;
}

static inline size_t pair_slot(const TokPairMap *p, uint64_t key)
{
    size_t i = (size_t)((key * 0x9e3779b97f4a7c15ull) >> 32) & (p->cap - 1);
    while (p->key[i] != key && p->key[i] != UINT64_MAX) i = (i + 1) & (p->cap - 1);
    return i;
}

/* Merge rank of the token pair (left, right), -1 if none; *result = the
 * merged token. */
static inline int32_t pair_rank(const TokPairMap *p, int32_t left, int32_t right, int32_t *result)
{
    if (!p->cap) return -1;
    size_t i = pair_slot(p, (uint64_t)(uint32_t)left << 32 | (uint32_t)right);
    if (p->key[i] == UINT64_MAX) return -1;
    *result = p->result[i];
    return p->rank[i];
}

/* The id-keyed merge table and the byte -> token table (tokenizer.c has
 * loaded the vocabulary and the string-keyed merges). */
static int build_pairs(MsTokenizer *t)
{
    for (unsigned b = 0; b < 256; b++) {
        char u[4];
        int k = tok_utf8_encode(tok_byte_to_cp((uint8_t)b), u);
        t->byte_cp_tok[b] = tokmap_get(&t->vocab, u, (size_t)k);
    }
    TokPairMap *p = &t->pairs;
    size_t n = t->merges.n, cap = 16;
    while (cap < 2 * n + 16) cap <<= 1;
    p->key = malloc(cap * sizeof *p->key);
    p->rank = malloc(cap * sizeof *p->rank);
    p->result = malloc(cap * sizeof *p->result);
    if (!p->key || !p->rank || !p->result) return MS_ENOMEM;
    memset(p->key, 0xff, cap * sizeof *p->key);
    p->cap = cap;
    /* walk the string map: each entry is one merge "left right" (its first
     * occurrence), rank = value; split at the first space after byte 0 */
    for (size_t i = 0; i < t->merges.cap; i++) {
        const TokMapEntry *e = &t->merges.slots[i];
        if (!e->key) continue;
        const char *sp = memchr(e->key + 1, ' ', e->len - 1);
        size_t ll = (size_t)(sp - e->key), rl = e->len - ll - 1;
        int32_t l = tokmap_get(&t->vocab, e->key, ll), r = tokmap_get(&t->vocab, sp + 1, rl);
        if (l < 0 || r < 0) continue;   /* reachable by string only */
        char buf[512];
        int32_t res = -1;
        if (ll + rl <= sizeof buf) {
            memcpy(buf, e->key, ll);
            memcpy(buf + ll, sp + 1, rl);
            res = tokmap_get(&t->vocab, buf, ll + rl);
        } else {
            continue;   /* absurdly long sides: leave it to the string path */
        }
        uint64_t key = (uint64_t)(uint32_t)l << 32 | (uint32_t)r;
        size_t s = pair_slot(p, key);
        /* two merge strings can map to one id pair only through duplicate
         * token texts; the lower rank wins, as the string lookup would */
        if (p->key[s] == key && p->rank[s] <= e->val) continue;
        p->key[s] = key;
        p->rank[s] = e->val;
        p->result[s] = res;
    }
    return MS_OK;
}

void tok_bpe_free(MsTokenizer *t)
{
    for (size_t i = 0; i < t->n_regex; i++) pcre2_code_free(t->regex[i].code);
    free(t->regex);
    t->regex = NULL;
    t->n_regex = 0;
}

/* ---- pre-tokenization ----
 * llama.cpp decodes the text to code points (bad bytes become U+FFFD), then
 * applies each regex to each current piece separately, keeping both the
 * matches and the text between them.  Its regex engines see non-ASCII
 * whitespace as "\v" (so only ASCII \s semantics are needed) and know only
 * the Unicode categories; the matching copy below reproduces that: non-ASCII
 * whitespace -> U+000B, and surrogates / values beyond U+10FFFF (which the
 * lenient decoder lets through and which have no category) -> U+FFFD.
 * PCRE2 is used without UCP, so \s is exactly the ASCII set (tab to CR and
 * space) while \p{L}, \p{N}, \p{P} come from its Unicode tables. */

typedef struct {
    uint32_t *cps;        /* the code points */
    size_t n;
    char *subj;           /* matching copy, valid UTF-8 */
    size_t *bpos;         /* byte offset of code point i in subj (n + 1) */
    uint32_t *cpi;        /* code point index at each subj byte offset */
    size_t *pieces, n_pieces, cap_pieces;
    size_t *tmp, n_tmp, cap_tmp;
    size_t cap_text;      /* capacity of cps/subj/bpos/cpi, in code points */
} Split;

static void split_free(Split *s)
{
    free(s->cps);
    free(s->subj);
    free(s->bpos);
    free(s->cpi);
    free(s->pieces);
    free(s->tmp);
}

static int push_len(size_t **v, size_t *n, size_t *cap, size_t x)
{
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 256;
        size_t *p = realloc(*v, c * sizeof *p);
        if (!p) return MS_ENOMEM;
        *v = p;
        *cap = c;
    }
    (*v)[(*n)++] = x;
    return MS_OK;
}

enum { SUBJ_PAD = 64 };

static int split_prepare(Split *s, const char *text, size_t len)
{
    if (len + 1 > s->cap_text) {  /* buffers are reused across fragments */
        size_t c = len + 1;
        uint32_t *cps = realloc(s->cps, c * sizeof *cps);
        if (cps) s->cps = cps;
        /* PCRE2's JIT reads up to a vector past the end of the subject
         * (loads whose extra bytes it ignores): 64 zero bytes of padding keep
         * those reads inside the block and defined, so memory checkers see
         * neither reads past a block nor uninitialised bytes */
        char *subj = realloc(s->subj, c * 4 + 1 + SUBJ_PAD);
        if (subj) memset(subj, 0, c * 4 + 1 + SUBJ_PAD);
        if (subj) s->subj = subj;
        size_t *bpos = realloc(s->bpos, (c + 1) * sizeof *bpos);
        if (bpos) s->bpos = bpos;
        uint32_t *cpi = realloc(s->cpi, (c * 4 + 1) * sizeof *cpi);
        if (cpi) s->cpi = cpi;
        if (!cps || !subj || !bpos || !cpi) return MS_ENOMEM;
        s->cap_text = c;
    }
    s->n = tok_utf8_decode(text, len, s->cps);
    size_t b = 0;
    for (size_t i = 0; i < s->n; i++) {
        uint32_t c = s->cps[i];
        if (c >= 0x80 && tok_is_whitespace(c)) c = 0x0b;
        else if ((c >= 0xd800 && c <= 0xdfff) || c > 0x10ffff) c = 0xfffd;
        s->bpos[i] = b;
        int k = tok_utf8_encode(c, s->subj + b);
        for (int j = 0; j < k; j++) s->cpi[b + j] = (uint32_t)i;
        b += (size_t)k;
    }
    s->bpos[s->n] = b;
    s->cpi[b] = (uint32_t)s->n;
    s->subj[b] = '\0';
    s->n_pieces = 0;
    if (s->n) return push_len(&s->pieces, &s->n_pieces, &s->cap_pieces, s->n);
    return MS_OK;
}

static int split_apply(Split *s, const pcre2_code *code, pcre2_match_data *md, pcre2_match_context *mc)
{
    size_t start = 0;
    s->n_tmp = 0;
    for (size_t p = 0; p < s->n_pieces; p++) {
        size_t len = s->pieces[p];
        const char *subj = s->subj + s->bpos[start];
        size_t blen = s->bpos[start + len] - s->bpos[start];
        size_t base = s->bpos[start];
        size_t pos = 0, prev = 0;    /* byte offsets within the piece */
        while (pos <= blen) {
            int rc = pcre2_match(code, (PCRE2_SPTR)subj, blen, pos, PCRE2_NO_UTF_CHECK, md, mc);
            if (rc == PCRE2_ERROR_NOMATCH) break;
            if (rc < 0) return MS_EINTERNAL;
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
            size_t ms = ov[0], me = ov[1];
            if (me == ms) {
                /* an empty match covers nothing: step over one character */
                if (ms >= blen) break;
                pos = ms + (size_t)tok_utf8_len((uint8_t)subj[ms]);
                continue;
            }
            size_t cms = s->cpi[base + ms], cme = s->cpi[base + me], cprev = s->cpi[base + prev];
            if (cms > cprev && push_len(&s->tmp, &s->n_tmp, &s->cap_tmp, cms - cprev)) return MS_ENOMEM;
            if (push_len(&s->tmp, &s->n_tmp, &s->cap_tmp, cme - cms)) return MS_ENOMEM;
            prev = pos = me;
        }
        size_t cprev = s->cpi[base + prev] - start;
        if (cprev < len && push_len(&s->tmp, &s->n_tmp, &s->cap_tmp, len - cprev)) return MS_ENOMEM;
        start += len;
    }
    /* swap */
    size_t *v = s->pieces, c = s->cap_pieces;
    s->pieces = s->tmp;
    s->cap_pieces = s->cap_tmp;
    s->n_pieces = s->n_tmp;
    s->tmp = v;
    s->cap_tmp = c;
    return MS_OK;
}

/* ---- merges ---- */

typedef struct {
    TokSym *sym;
    size_t cap_sym;
    TokHeap heap;
    TokStr key;
} BpeScratch;

static int bpe_add_bigram(const MsTokenizer *t, BpeScratch *w, const char *word, int32_t l, int32_t r)
{
    if (l < 0 || r < 0) return MS_OK;
    const TokSym *a = &w->sym[l], *b = &w->sym[r];
    if (a->id >= 0 && b->id >= 0) {
        /* both sides are tokens: any merge of their texts is in the id table */
        int32_t res, rank = pair_rank(&t->pairs, a->id, b->id, &res);
        if (rank < 0) return MS_OK;
        TokBigram g = { .key = rank, .left = l, .right = r, .size = a->n + b->n };
        return tokheap_push(&w->heap, g);
    }
    w->key.n = 0;
    if (tokstr_append(&w->key, word + a->off, a->n) || tokstr_append(&w->key, " ", 1) ||
        tokstr_append(&w->key, word + b->off, b->n))
        return MS_ENOMEM;
    int32_t rank = tokmap_get(&t->merges, w->key.s, w->key.n);
    if (rank < 0) return MS_OK;
    TokBigram g = { .key = rank, .left = l, .right = r, .size = a->n + b->n };
    return tokheap_push(&w->heap, g);
}

/* word: the piece in byte-level characters; bytes: its original bytes,
 * one per character. */
static int bpe_word(const MsTokenizer *t, BpeScratch *w, const char *word, size_t len, const uint8_t *bytes,
                    TokIds *out)
{
    if (t->ignore_merges) {
        /* llama3-style: a pre-token that is itself a token is emitted whole */
        int32_t id = tokmap_get(&t->vocab, word, len);
        if (id >= 0) return tokids_push(out, id);
    }
    size_t n = 0;
    for (size_t off = 0; off < len; n++) {
        if (n == w->cap_sym) {
            size_t c = w->cap_sym ? w->cap_sym * 2 : 64;
            TokSym *p = realloc(w->sym, c * sizeof *p);
            if (!p) return MS_ENOMEM;
            w->sym = p;
            w->cap_sym = c;
        }
        size_t cl = MS_MIN((size_t)tok_utf8_len((uint8_t)word[off]), len - off);
        w->sym[n] = (TokSym){ .prev = (int32_t)n - 1, .off = (uint32_t)off, .n = (uint32_t)cl,
                              .id = t->byte_cp_tok[bytes[n]] };
        off += cl;
        w->sym[n].next = off == len ? -1 : (int32_t)n + 1;
    }
    w->heap.n = 0;
    for (size_t i = 1; i < n; i++)
        if (bpe_add_bigram(t, w, word, (int32_t)i - 1, (int32_t)i)) return MS_ENOMEM;
    while (w->heap.n) {
        TokBigram g = tokheap_pop(&w->heap);
        TokSym *a = &w->sym[g.left], *b = &w->sym[g.right];
        /* stale entry: one side was merged away or grew since it was queued */
        if (a->n == 0 || b->n == 0 || a->n + b->n != g.size) continue;
        int32_t res = -1;
        if (a->id >= 0 && b->id >= 0) pair_rank(&t->pairs, a->id, b->id, &res);
        else res = tokmap_get(&t->vocab, word + a->off, a->n + b->n);
        a->id = res;
        a->n += b->n;
        b->n = 0;
        a->next = b->next;
        if (b->next >= 0) w->sym[b->next].prev = g.left;
        if (bpe_add_bigram(t, w, word, a->prev, g.left) || bpe_add_bigram(t, w, word, g.left, a->next))
            return MS_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        const TokSym *s = &w->sym[i];
        if (s->n == 0) continue;
        int32_t id = s->id;
        if (id >= 0) {
            if (tokids_push(out, id)) return MS_ENOMEM;
            continue;
        }
        /* not a token: llama.cpp tries each byte on its own and drops misses */
        for (uint32_t j = 0; j < s->n; j++) {
            id = tokmap_get(&t->vocab, word + s->off + j, 1);
            if (id >= 0 && tokids_push(out, id)) return MS_ENOMEM;
        }
    }
    return MS_OK;
}

struct TokBpeSession {
    Split split;
    BpeScratch w;
    TokStr word;
    TokStr bytes;        /* the piece's bytes, one per character of word */
    /* Word cache for this call: BPE of a piece depends on its bytes only,
     * and text repeats its words, so each distinct short piece is merged
     * once (llama.cpp merges every time; the ids are the same). */
    struct { uint64_t h; uint32_t key_off, key_len, ids_off, n_ids; } *cache;
    size_t cache_cap, cache_n;
    TokStr cache_keys;
    TokIds cache_ids;
    pcre2_match_data **md;
    pcre2_match_context *mc;
    pcre2_jit_stack *js;
    char enc[256][3];
    uint8_t enc_len[256];
};

void tok_bpe_session_free(TokBpeSession *ss)
{
    if (!ss) return;
    split_free(&ss->split);
    free(ss->w.sym);
    free(ss->w.heap.v);
    free(ss->w.key.s);
    free(ss->word.s);
    free(ss->bytes.s);
    free(ss->cache);
    free(ss->cache_keys.s);
    free(ss->cache_ids.v);
    if (ss->md) {
        for (size_t i = 0; ss->md[i]; i++) pcre2_match_data_free(ss->md[i]);
        free(ss->md);
    }
    pcre2_match_context_free(ss->mc);
    pcre2_jit_stack_free(ss->js);
    free(ss);
}

#define CACHE_KEY_MAX 48
#define CACHE_MAX (1 << 15)            /* distinct pieces per call */

TokBpeSession *tok_bpe_session_new(const MsTokenizer *t)
{
    TokBpeSession *ss = calloc(1, sizeof *ss);
    if (!ss) return NULL;
    /* the word cache is sized by the first text (tok_bpe_encode) */
    ss->md = calloc(t->n_regex + 1, sizeof *ss->md);  /* NULL-terminated */
    ss->mc = pcre2_match_context_create(NULL);
    /* the JIT's default 32 KiB stack is too small for long pieces */
    ss->js = pcre2_jit_stack_create(32 * 1024, 4 * 1024 * 1024, NULL);
    if (!ss->md || !ss->mc || !ss->js) goto fail;
    pcre2_jit_stack_assign(ss->mc, NULL, ss->js);
    for (size_t i = 0; i < t->n_regex; i++)
        if (!(ss->md[i] = pcre2_match_data_create_from_pattern(t->regex[i].code, NULL))) goto fail;
    for (unsigned b = 0; b < 256; b++)
        ss->enc_len[b] = (uint8_t)tok_utf8_encode(tok_byte_to_cp((uint8_t)b), ss->enc[b]);
    return ss;
fail:
    tok_bpe_session_free(ss);
    return NULL;
}

int tok_bpe_encode(const MsTokenizer *t, TokBpeSession *ss, const char *text, size_t len, TokIds *out)
{
    if (!ss->cache && len >= 256 && !t->no_word_cache) {
        /* room for a distinct piece per ~8 bytes, load factor <= 1/2; a
         * failed allocation only means no caching (the ids are the same) */
        size_t cap = 64;
        while (cap < 2 * CACHE_MAX && cap < len / 4) cap <<= 1;
        if ((ss->cache = calloc(cap, sizeof *ss->cache))) ss->cache_cap = cap;
    }
    Split *s = &ss->split;
    int rc = split_prepare(s, text, len);
    if (rc) return rc;
    for (size_t i = 0; i < t->n_regex && s->n_pieces; i++)
        if ((rc = split_apply(s, t->regex[i].code, ss->md[i], ss->mc))) return rc;

    size_t start = 0;
    for (size_t p = 0; p < s->n_pieces; p++) {
        /* the piece's UTF-8 (re-encoded from code points, so bad bytes are
         * U+FFFD), each byte then mapped to its printable code point */
        TokStr *word = &ss->word, *bytes = &ss->bytes;
        word->n = 0;
        bytes->n = 0;
        for (size_t i = start; i < start + s->pieces[p]; i++) {
            char u[4];
            int k = tok_utf8_encode(s->cps[i], u);
            if (tokstr_append(bytes, u, (size_t)k)) return MS_ENOMEM;
            for (int j = 0; j < k; j++) {
                uint8_t b = (uint8_t)u[j];
                if (tokstr_append(word, ss->enc[b], ss->enc_len[b])) return MS_ENOMEM;
            }
        }
        start += s->pieces[p];
        if (!word->n) continue;
        /* the word cache (pieces of up to CACHE_KEY_MAX bytes, at most
         * CACHE_MAX distinct ones per call; beyond that, merges as usual) */
        size_t slot = 0;
        uint64_t h = 0;
        bool cacheable = bytes->n <= CACHE_KEY_MAX && ss->cache;
        if (cacheable) {
            h = tok_hash(bytes->s, bytes->n);
            slot = (size_t)h & (ss->cache_cap - 1);
            for (;; slot = (slot + 1) & (ss->cache_cap - 1)) {
                if (!ss->cache[slot].key_len) break;
                if (ss->cache[slot].h == h && ss->cache[slot].key_len == bytes->n &&
                    memcmp(ss->cache_keys.s + ss->cache[slot].key_off, bytes->s, bytes->n) == 0) {
                    for (uint32_t k = 0; k < ss->cache[slot].n_ids; k++)
                        if (tokids_push(out, ss->cache_ids.v[ss->cache[slot].ids_off + k])) return MS_ENOMEM;
                    goto next_piece;
                }
            }
        }
        size_t n0 = out->n;
        if (t->hf && !t->hf_byte_level) rc = tok_hf_bpe_word(t, ss, bytes->s, bytes->n, out);
        else rc = bpe_word(t, &ss->w, word->s, word->n, (const uint8_t *)bytes->s, out);
        if (rc) return rc;
        if (cacheable && ss->cache_n < ss->cache_cap / 2) {
            uint32_t key_off = (uint32_t)ss->cache_keys.n, ids_off = (uint32_t)ss->cache_ids.n;
            if (tokstr_append(&ss->cache_keys, bytes->s, bytes->n)) return MS_ENOMEM;
            for (size_t k = n0; k < out->n; k++)
                if (tokids_push(&ss->cache_ids, out->v[k])) return MS_ENOMEM;
            ss->cache[slot].h = h;
            ss->cache[slot].key_off = key_off;
            ss->cache[slot].key_len = (uint32_t)bytes->n;
            ss->cache[slot].ids_off = ids_off;
            ss->cache[slot].n_ids = (uint32_t)(out->n - n0);
            ss->cache_n++;
        }
    next_piece:;
    }
    return MS_OK;
}

/* Hugging Face's BPE::merge_word and Word::merge_all (models/bpe) over
 * characters: merges are keyed by the ids of both sides and exist only when
 * the merged text is a token too, so the id table answers every lookup. */
int tok_hf_bpe_word(const MsTokenizer *t, TokBpeSession *ss, const char *word, size_t len, TokIds *out)
{
    BpeScratch *w = &ss->w;
    if (t->ignore_merges) {
        int32_t id = tokmap_get(&t->vocab, word, len);
        if (id >= 0) return tokids_push(out, id);
    }
    size_t n = 0;
    int32_t unk_pending = 0;   /* 1 while an unk symbol is waiting to be added */
    uint32_t unk_off = 0, unk_len = 0;
#define PUSH_SYM(ID, OFF, LEN)                                                  \
    do {                                                                        \
        if (n == w->cap_sym) {                                                  \
            size_t c_ = w->cap_sym ? w->cap_sym * 2 : 64;                       \
            TokSym *p_ = realloc(w->sym, c_ * sizeof *p_);                      \
            if (!p_) return MS_ENOMEM;                                          \
            w->sym = p_;                                                        \
            w->cap_sym = c_;                                                    \
        }                                                                       \
        w->sym[n] = (TokSym){ .prev = (int32_t)n - 1, .next = (int32_t)n + 1,   \
                              .off = (OFF), .n = (LEN), .id = (ID) };           \
        n++;                                                                    \
    } while (0)
    for (size_t off = 0; off < len;) {
        size_t cl = MS_MIN((size_t)tok_utf8_len((uint8_t)word[off]), len - off);
        int32_t id = tokmap_get(&t->vocab, word + off, cl);
        if (id >= 0) {
            if (unk_pending) PUSH_SYM(t->hf_unk, unk_off, unk_len);
            unk_pending = 0;
            PUSH_SYM(id, (uint32_t)off, (uint32_t)cl);
            off += cl;
            continue;
        }
        bool all = t->hf_byte_fallback;
        for (size_t j = 0; all && j < cl; j++) all = t->byte_tok[(uint8_t)word[off + j]] >= 0;
        if (all) {   /* HF leaves a pending unk waiting here */
            for (size_t j = 0; j < cl; j++) PUSH_SYM(t->byte_tok[(uint8_t)word[off + j]], (uint32_t)(off + j), 1);
            off += cl;
            continue;
        }
        if (t->hf_unk >= 0) {
            if (unk_pending && t->hf_fuse_unk) {
                unk_len += (uint32_t)cl;
            } else {
                if (unk_pending) PUSH_SYM(t->hf_unk, unk_off, unk_len);
                unk_pending = 1;
                unk_off = (uint32_t)off;
                unk_len = (uint32_t)cl;
            }
        }   /* no unk token: the character is dropped, as HF does */
        off += cl;
    }
    if (unk_pending) PUSH_SYM(t->hf_unk, unk_off, unk_len);
#undef PUSH_SYM
    if (n) w->sym[n - 1].next = -1;
    w->heap.n = 0;
    for (size_t i = 1; i < n; i++) {
        int32_t res, rank = pair_rank(&t->pairs, w->sym[i - 1].id, w->sym[i].id, &res);
        if (rank >= 0 && res >= 0) {
            TokBigram g = { .key = rank, .left = (int32_t)i - 1, .right = (int32_t)i, .size = (uint32_t)res };
            if (tokheap_push(&w->heap, g)) return MS_ENOMEM;
        }
    }
    while (w->heap.n) {
        TokBigram g = tokheap_pop(&w->heap);
        TokSym *a = &w->sym[g.left];
        /* stale entry: the left side is gone, last, or no longer forms this
         * merge with its right neighbour (HF compares the merged id) */
        if (a->n == 0 || a->next < 0) continue;
        TokSym *b = &w->sym[a->next];
        int32_t res, rank = pair_rank(&t->pairs, a->id, b->id, &res);
        if (rank < 0 || res != (int32_t)g.size) continue;
        a->id = res;
        a->n += b->n;
        b->n = 0;
        a->next = b->next;
        if (b->next >= 0) w->sym[b->next].prev = g.left;
        if (a->prev >= 0) {
            TokSym *p = &w->sym[a->prev];
            if ((rank = pair_rank(&t->pairs, p->id, a->id, &res)) >= 0 && res >= 0) {
                TokBigram q = { .key = rank, .left = a->prev, .right = g.left, .size = (uint32_t)res };
                if (tokheap_push(&w->heap, q)) return MS_ENOMEM;
            }
        }
        if (a->next >= 0) {
            TokSym *nx = &w->sym[a->next];
            if ((rank = pair_rank(&t->pairs, a->id, nx->id, &res)) >= 0 && res >= 0) {
                TokBigram q = { .key = rank, .left = g.left, .right = a->next, .size = (uint32_t)res };
                if (tokheap_push(&w->heap, q)) return MS_ENOMEM;
            }
        }
    }
    for (size_t i = 0; i < n; i++)
        if (w->sym[i].n && tokids_push(out, w->sym[i].id)) return MS_ENOMEM;
    return MS_OK;
}
