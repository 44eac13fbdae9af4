/* test-tokenizer-hf.c — tokenizer.json features that the real Qwen3,
 * DeepSeek-V3 and gpt-oss files of ../shared do not use, on small
 * tokenizer.json files written here in Hugging Face's exact JSON structure
 * (the shapes of the hub's Llama-2 / Mixtral / Phi-3.5-MoE and newer
 * Mistral files): byte_fallback with <0xXX> tokens, unk and fuse_unk, the
 * Prepend + Replace normalizer sequence, the Metaspace pre-tokenizer and
 * decoder, Digits, added tokens with lstrip / rstrip / single_word /
 * normalized, leftmost-longest added-token matching, and the Replace /
 * ByteFallback / Fuse / Strip decoder chain.
 *
 * Every expected id list is derived by hand from Hugging Face's documented
 * algorithm (tokenizers: BPE::merge_word and Word::merge_all, merges applied
 * lowest rank first, leftmost on ties; AddedVocabulary::find_matches;
 * Prepend/Replace normalizers; Metaspace), and the derivation is written
 * next to it.  Runs without ../shared. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "hf.h"
#include "mtest.h"
#include "tokenizer.h"

/* The vocabulary of all the files below ("\u2581" is SentencePiece's
 * space, written ▁ in the comments):
 *   0 <unk>  1 <s>  2 </s>  3 <0x0A>  4 <0xE4>  5 <0xBD>  6 <0xA0>  7 ▁
 *   8 h  9 e  10 l  11 o  12 w  13 r  14 d  15 ▁h  16 ll  17 ▁he  18 ▁hell
 *   19 ▁hello  20 ▁w  21 or  22 ▁wor  23 ld  24 ▁world  25 ▁▁
 *   26 1  27 2  28 3  29 12
 * No c, i, x, 😀 and no byte tokens for them: those take the unk path. */
#define VOCAB                                                                                              \
    "{\"<unk>\":0,\"<s>\":1,\"</s>\":2,\"<0x0A>\":3,\"<0xE4>\":4,\"<0xBD>\":5,\"<0xA0>\":6,"             \
    "\"\\u2581\":7,\"h\":8,\"e\":9,\"l\":10,\"o\":11,\"w\":12,\"r\":13,\"d\":14,\"\\u2581h\":15,"          \
    "\"ll\":16,\"\\u2581he\":17,\"\\u2581hell\":18,\"\\u2581hello\":19,\"\\u2581w\":20,\"or\":21,"         \
    "\"\\u2581wor\":22,\"ld\":23,\"\\u2581world\":24,\"\\u2581\\u2581\":25,\"1\":26,\"2\":27,\"3\":28,"    \
    "\"12\":29}"
/* merge ranks: 0 ▁+h  1 l+l  2 ▁h+e  3 ▁he+ll  4 ▁hell+o  5 ▁+w  6 o+r
 * 7 ▁w+or  8 l+d  9 ▁wor+ld  10 1+2 */
#define MERGES                                                                                             \
    "\"\\u2581 h\",\"l l\",\"\\u2581h e\",\"\\u2581he ll\",\"\\u2581hell o\",\"\\u2581 w\",\"o r\","      \
    "\"\\u2581w or\",\"l d\",\"\\u2581wor ld\",\"1 2\""
/* the same with ▁+▁ first (rank 0; the others shift by one, same order) */
#define MERGES_SP "\"\\u2581 \\u2581\"," MERGES

#define ADDED_SPECIAL                                                                                      \
    "{\"id\":0,\"content\":\"<unk>\",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,"           \
    "\"normalized\":false,\"special\":true},"                                                              \
    "{\"id\":1,\"content\":\"<s>\",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,"             \
    "\"normalized\":false,\"special\":true},"                                                              \
    "{\"id\":2,\"content\":\"</s>\",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,"            \
    "\"normalized\":false,\"special\":true}"

/* Llama-2 / Mixtral / Phi-3.5-MoE style: Prepend(▁) + Replace(" " -> ▁),
 * no pre-tokenizer, BPE with byte_fallback and fuse_unk, the
 * Replace/ByteFallback/Fuse/Strip decoder, <s> from the template. */
#define LLAMA_NORMALIZER                                                                                   \
    "{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"Prepend\",\"prepend\":\"\\u2581\"},"            \
    "{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"\\u2581\"}]}"
#define LLAMA_DECODER                                                                                      \
    "{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"Replace\",\"pattern\":{\"String\":\"\\u2581\"},"   \
    "\"content\":\" \"},{\"type\":\"ByteFallback\"},{\"type\":\"Fuse\"},"                                 \
    "{\"type\":\"Strip\",\"content\":\" \",\"start\":1,\"stop\":0}]}"
#define TEMPLATE                                                                                           \
    "{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"<s>\",\"type_id\":0}},"     \
    "{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}],\"pair\":[],"                                   \
    "\"special_tokens\":{\"<s>\":{\"id\":\"<s>\",\"ids\":[1],\"tokens\":[\"<s>\"]}}}"

static char *tokjson(const char *added, const char *normalizer, const char *pre, const char *merges, const char *decoder)
{
    const char *fmt =
        "{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,\"added_tokens\":[%s],"
        "\"normalizer\":%s,\"pre_tokenizer\":%s,\"post_processor\":" TEMPLATE ",\"decoder\":%s,"
        "\"model\":{\"type\":\"BPE\",\"dropout\":null,\"unk_token\":\"<unk>\",\"continuing_subword_prefix\":null,"
        "\"end_of_word_suffix\":null,\"fuse_unk\":true,\"byte_fallback\":true,\"ignore_merges\":false,"
        "\"vocab\":" VOCAB ",\"merges\":[%s]}}";
    size_t n = strlen(fmt) + strlen(added) + strlen(normalizer) + strlen(pre) + strlen(merges) + strlen(decoder) + 1;
    char *s = malloc(n);
    if (s) snprintf(s, n, fmt, added, normalizer, pre, decoder, merges);
    return s;
}

static MsTokenizer *load(const char *name, char *json)
{
    MsError err = { 0 };
    MsGguf *g = json ? ms_hf_tokenizer_from_json(name, json, strlen(json), &err) : NULL;
    MsTokenizer *t = g ? ms_tokenizer_new(g, &err) : NULL;
    MT_CHECK(t != NULL, "%s: tokenizer.json loads (%s)", name, t ? "ok" : err.msg);
    ms_gguf_free(g);
    free(json);
    return t;
}

/* text for a one-line TAP description: newlines and tabs escaped */
static const char *show(const char *s, char *buf, size_t cap)
{
    size_t o = 0;
    for (; *s && o + 3 < cap; s++) {
        if (*s == '\n' || *s == '\t') {
            buf[o++] = '\\';
            buf[o++] = *s == '\n' ? 'n' : 't';
        } else {
            buf[o++] = *s;
        }
    }
    buf[o] = '\0';
    return buf;
}

static void expect(const MsTokenizer *t, const char *name, const char *text, bool special, const int32_t *want, int nw)
{
    if (!t) return;
    int32_t *ids = NULL;
    MsError err = { 0 };
    int n = ms_tokenizer_encode(t, text, strlen(text), special, &ids, &err);
    bool same = n == nw;
    for (int i = 0; same && i < n; i++) same = ids[i] == want[i];
    char got[256] = "", w[256] = "";
    for (int i = 0; i < n && strlen(got) < 200; i++) snprintf(got + strlen(got), sizeof got - strlen(got), " %d", ids[i]);
    for (int i = 0; i < nw && strlen(w) < 200; i++) snprintf(w + strlen(w), sizeof w - strlen(w), " %d", want[i]);
    char sb[128];
    MT_CHECK(same, "%s: \"%s\"%s ->%s (want%s)", name, show(text, sb, sizeof sb), special ? " +special" : "",
             n < 0 ? err.msg : got, w);
    free(ids);
}
#define EXPECT(t, name, text, special, ...)                                                                \
    do {                                                                                                   \
        static const int32_t w_[] = { __VA_ARGS__ };                                                       \
        expect(t, name, text, special, w_, (int)(sizeof w_ / sizeof w_[0]));                              \
    } while (0)

static void expect_decode(const MsTokenizer *t, const char *name, const int32_t *ids, size_t n, const char *want)
{
    if (!t) return;
    size_t len = 0;
    char *s = ms_tokenizer_decode(t, ids, n, &len);
    char wb[128], gb[128];
    MT_CHECK(s && len == strlen(want) && !memcmp(s, want, len), "%s: decodes to \"%s\" (got \"%s\")", name,
             show(want, wb, sizeof wb), show(s ? s : "(null)", gb, sizeof gb));
    free(s);
}
#define DECODE(t, name, want, ...)                                                                         \
    do {                                                                                                   \
        static const int32_t d_[] = { __VA_ARGS__ };                                                       \
        expect_decode(t, name, d_, sizeof d_ / sizeof d_[0], want);                                        \
    } while (0)

static void expect_piece(const MsTokenizer *t, const char *name, int32_t id, const char *want)
{
    if (!t) return;
    char buf[64];
    int n = ms_tokenizer_piece(t, id, buf, sizeof buf);
    MT_CHECK(n == (int)strlen(want) && !memcmp(buf, want, (size_t)n), "%s: piece of %d is \"%s\"", name, id, want);
}

static void test_llama_style(void)
{
    const char *nm = "llama-style (Prepend+Replace, byte_fallback)";
    MsTokenizer *t = load(nm, tokjson(ADDED_SPECIAL, LLAMA_NORMALIZER, "null", MERGES, LLAMA_DECODER));
    /* "▁hello▁world" is one word: ▁+h(0) l+l(1) ▁h+e(2) ▁he+ll(3)
     * ▁hell+o(4) ▁+w(5) o+r(6) ▁w+or(7) l+d(8), then ▁wor+ld(9) */
    EXPECT(t, nm, "hello world", false, 19, 24);
    EXPECT(t, nm, "hello world", true, 1, 19, 24);
    /* \n and 你 (E4 BD A0) are not tokens: their <0xXX> byte tokens */
    EXPECT(t, nm, "hello\n\xe4\xbd\xa0", false, 19, 3, 4, 5, 6);
    /* 😀 has no byte tokens: <unk>; x neither, and fuse_unk joins them */
    EXPECT(t, nm, "wd\xf0\x9f\x98\x80x", false, 20, 14, 0);
    /* </s> is cut from the raw text; each side is normalized on its own,
     * so "hello" after it gets its own ▁ (i has no token: <unk>) */
    EXPECT(t, nm, "hi</s>hello", false, 15, 0, 2, 19);
    EXPECT(t, nm, "", true, 1);
    /* decoder: ▁ -> space, byte runs -> UTF-8, fused, one leading space
     * stripped; <s> (special) left out */
    DECODE(t, nm, "hello world", 1, 19, 24);
    DECODE(t, nm, "hello\n\xe4\xbd\xa0", 19, 3, 4, 5, 6);
    DECODE(t, nm, "\xef\xbf\xbd\xef\xbf\xbd", 4, 5);   /* not UTF-8: U+FFFD per byte */
    expect_piece(t, nm, 19, " hello");
    expect_piece(t, nm, 4, "\xe4");   /* a piece alone keeps its byte */
    ms_tokenizer_free(t);
}

#define META(scheme, split)                                                                                \
    "{\"type\":\"Metaspace\",\"replacement\":\"\\u2581\",\"prepend_scheme\":\"" scheme "\",\"split\":" split "}"

static void test_metaspace(void)
{
    const char *nm = "Metaspace(first, no split)";
    MsTokenizer *t = load(nm, tokjson(ADDED_SPECIAL, "null", META("first", "false"), MERGES_SP, META("first", "false")));
    EXPECT(t, nm, "hello world", false, 19, 24);
    /* "▁hello▁▁world" as one word: ▁+▁ (rank 0) goes first and takes the ▁
     * that ▁+w needed: ▁hello ▁▁ w or ld */
    EXPECT(t, nm, "hello  world", false, 19, 25, 12, 21, 23);
    /* first: the text after </s> does not start the input, so no ▁:
     * "hello▁world" -> h e ll o ▁world */
    EXPECT(t, nm, "</s>hello world", false, 2, 8, 9, 16, 11, 24);
    /* decoder: ▁ -> space, except that the first token loses all of its ▁ */
    DECODE(t, nm, "hello world", 19, 24);
    DECODE(t, nm, "hello   world", 19, 25, 24);
    ms_tokenizer_free(t);

    nm = "Metaspace(always, split)";
    t = load(nm, tokjson(ADDED_SPECIAL, "null", META("always", "true"), MERGES_SP, META("always", "true")));
    /* split before each ▁: "▁hello" "▁" "▁world", so ▁+▁ cannot happen */
    EXPECT(t, nm, "hello  world", false, 19, 7, 24);
    /* always: the piece after </s> gets its ▁ too */
    EXPECT(t, nm, "</s>hello world", false, 2, 19, 24);
    ms_tokenizer_free(t);
}

static void test_digits(void)
{
    const char *nm = "Metaspace + Digits(individual)";
    MsTokenizer *t = load(nm, tokjson(ADDED_SPECIAL, "null",
                                      "{\"type\":\"Sequence\",\"pretokenizers\":[" META("first", "false")
                                      ",{\"type\":\"Digits\",\"individual_digits\":true}]}",
                                      MERGES, META("first", "false")));
    /* "▁he123" -> "▁he" "1" "2" "3": no 1+2 merge across pieces */
    EXPECT(t, nm, "he123", false, 17, 26, 27, 28);
    ms_tokenizer_free(t);
    nm = "Metaspace + Digits(runs)";
    t = load(nm, tokjson(ADDED_SPECIAL, "null",
                         "{\"type\":\"Sequence\",\"pretokenizers\":[" META("first", "false")
                         ",{\"type\":\"Digits\",\"individual_digits\":false}]}",
                         MERGES, META("first", "false")));
    /* "▁he" "123": 1+2 merges, 3 stays */
    EXPECT(t, nm, "he123", false, 17, 29, 28);
    ms_tokenizer_free(t);
}

#define ADDED(id, content, sw, ls, rs, norm, special)                                                      \
    ",{\"id\":" #id ",\"content\":\"" content "\",\"single_word\":" sw ",\"lstrip\":" ls ",\"rstrip\":" rs \
    ",\"normalized\":" norm ",\"special\":" special "}"

static void test_added_flags(void)
{
    const char *nm = "added tokens with flags";
    MsTokenizer *t = load(nm, tokjson(ADDED_SPECIAL
                                      ADDED(30, "<mask>", "false", "true", "false", "false", "false")
                                      ADDED(31, "ow", "true", "false", "false", "false", "false")
                                      ADDED(32, "wor", "false", "false", "false", "true", "false")
                                      ADDED(33, "<sep>", "false", "false", "true", "false", "false")
                                      ADDED(34, "ab", "false", "false", "false", "false", "false")
                                      ADDED(35, "bcd", "false", "false", "false", "false", "false"),
                                      LLAMA_NORMALIZER, "null", MERGES, LLAMA_DECODER));
    /* normalized "wor" is matched in its normalized form "▁wor", in the
     * normalized text "▁hello▁world": ▁hello | wor | ld */
    EXPECT(t, nm, "hello world", false, 19, 32, 23);
    /* lstrip: <mask> takes the space before it; " world" -> "▁▁world" ->
     * ▁ | ▁wor | ld */
    EXPECT(t, nm, "hello <mask> world", false, 19, 30, 7, 32, 23);
    /* rstrip: <sep> takes the space after it; "world" -> ▁wor | ld */
    EXPECT(t, nm, "hello<sep> world", false, 19, 33, 32, 23);
    /* single_word: "ow" alone matches, "ow" in "how" does not; " how" ->
     * "▁▁how" -> ▁ ▁h o w */
    EXPECT(t, nm, "ow how", false, 31, 7, 15, 11, 12);
    /* leftmost-longest: "ab" at 0 wins over the longer "bcd" at 1; "cd" ->
     * "▁cd" -> ▁ <unk> d */
    EXPECT(t, nm, "abcd", false, 34, 7, 0, 14);
    /* decoding: a normalized added token gives its normalized form (▁wor);
     * a non-special one is kept */
    DECODE(t, nm, "hello<mask>  world", 19, 30, 7, 32, 23);
    ms_tokenizer_free(t);
}

static void test_refused(void)
{
    static const struct { const char *what, *norm, *pre, *dec; } bad[] = {
        { "a Replace normalizer with a Regex pattern",
          "{\"type\":\"Replace\",\"pattern\":{\"Regex\":\" +\"},\"content\":\" \"}", "null", LLAMA_DECODER },
        { "Metaspace after another pre-tokenizer", "null",
          "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Digits\",\"individual_digits\":true}," META("first", "false") "]}",
          LLAMA_DECODER },
        { "a CTC decoder", "null", "null", "{\"type\":\"CTC\",\"pad_token\":\"<pad>\"}" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *j = tokjson(ADDED_SPECIAL, bad[i].norm, bad[i].pre, MERGES, bad[i].dec);
        MsError err = { 0 };
        MsGguf *g = ms_hf_tokenizer_from_json("tokenizer.json", j, strlen(j), &err);
        MT_CHECK(!g && err.code == MS_EUNSUPPORTED && strstr(err.msg, "tokenizer.json: ") == err.msg &&
                     !strchr(err.msg, '\n'),
                 "%s is refused in one line naming the file (%s)", bad[i].what, err.msg);
        ms_gguf_free(g);
        free(j);
    }
}

/* One absurd id in a small file (a fuzz finding: 29 million [PADi] tokens
 * ran out of memory) is refused; a few holes are padded as usual. */
static void test_holes(void)
{
    static const char *const js[2] = {
        "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":29332537},\"merges\":[]}}",
        "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1000},\"merges\":[]}}",
    };
    for (int i = 0; i < 2; i++) {
        MsError err = { 0 };
        MsGguf *g = ms_hf_tokenizer_from_json("tokenizer.json", js[i], strlen(js[i]), &err);
        MsTokenizer *t = g ? ms_tokenizer_new(g, &err) : NULL;
        if (i == 0)
            MT_CHECK(!g && err.code == MS_EFORMAT && strstr(err.msg, "tokenizer.json: ") == err.msg,
                     "an id of 29332537 among 2 tokens is refused (%s)", err.msg);
        else
            MT_CHECK(t && ms_tokenizer_n_vocab(t) == 1001, "999 holes are padded (%d tokens)", t ? ms_tokenizer_n_vocab(t) : -1);
        ms_tokenizer_free(t);
        ms_gguf_free(g);
    }
}

/* Replace steps whose content holds their own pattern multiply the text at
 * each step (a fuzz finding: 70 bytes became 12 MB, 450 MB of memory and
 * seconds per encode).  A chain that can lengthen text more than 64-fold is
 * refused when the tokenizer is built, in the normalizer and the decoder;
 * the usual chains (Replace " " -> U+2581 is 3-fold) load. */
#define REPL(PAT, TO) "{\"type\":\"Replace\",\"pattern\":{\"String\":\"" PAT "\"},\"content\":\"" TO "\"}"
static void test_growth(void)
{
    static const struct { const char *what, *norm, *dec; bool ok; } c[] = {
        { "three Replaces of ' ' by 'a a a a' (343-fold) in the normalizer",
          "{\"type\":\"Sequence\",\"normalizers\":[" REPL(" ", "a a a a") "," REPL(" ", "a a a a") "," REPL(" ", "a a a a") "]}",
          LLAMA_DECODER, false },
        { "one Replace of 'x' by 65 characters in the decoder", "null",
          "{\"type\":\"Sequence\",\"decoders\":[" REPL("x", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa") "]}", false },
        { "a Prepend of 64 characters (65-fold on one-byte pieces)",
          "{\"type\":\"Prepend\",\"prepend\":\"pppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppp\"}",
          LLAMA_DECODER, false },
        { "two Replaces of ' ' by 'h h h h' (49-fold)",
          "{\"type\":\"Sequence\",\"normalizers\":[" REPL(" ", "h h h h") "," REPL(" ", "h h h h") "]}", LLAMA_DECODER,
          true },
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        char *j = tokjson(ADDED_SPECIAL, c[i].norm, "null", MERGES, c[i].dec);
        MsError err = { 0 };
        MsGguf *g = j ? ms_hf_tokenizer_from_json("tokenizer.json", j, strlen(j), &err) : NULL;
        MsTokenizer *t = g ? ms_tokenizer_new(g, &err) : NULL;
        if (c[i].ok) {
            /* "h h" -> "hh h h hh" -> "hh" "h h h h" "h" "h h h h" "h" "h h h h" "hh":
             * 18 h (id 8) and 9 spaces, each an unk (no merge applies) */
            int32_t *ids = NULL;
            int n = t ? ms_tokenizer_encode(t, "h h", 3, false, &ids, &err) : -1, nh = 0, nu = 0;
            for (int k = 0; k < n; k++) nh += ids[k] == 8, nu += ids[k] == 0;
            MT_CHECK(n == 27 && nh == 18 && nu == 9, "%s loads and encodes 'h h' into %d ids, %d h and %d unk (%s)",
                     c[i].what, n, nh, nu, t ? "ok" : err.msg);
            free(ids);
        } else {
            MT_CHECK(g && !t && err.code == MS_EFORMAT && strstr(err.msg, "tokenizer.json: ") == err.msg &&
                         strstr(err.msg, "more than 64 times longer") && !strchr(err.msg, '\n'),
                     "%s is refused in one line naming the file (%s)", c[i].what, err.msg);
        }
        ms_tokenizer_free(t);
        ms_gguf_free(g);
        free(j);
    }
}
#undef REPL

/* A GGUF's Metaspace replacement is one character, as in tokenizer.json:
 * a longer one replaced every space of the text with it. */
static void test_metaspace_char(void)
{
    static const char *const rep[3] = { "\xe2\x96\x81", "\xe2\x96\x81\xe2\x96\x81", "________" };
    for (int i = 0; i < 3; i++) {
        char *j = tokjson(ADDED_SPECIAL, "null", META("first", "false"), MERGES_SP, META("first", "false"));
        MsError err = { 0 };
        MsGguf *g = j ? ms_hf_tokenizer_from_json("tokenizer.json", j, strlen(j), &err) : NULL;
        int rc = g ? ms_gguf_mem_set(g, "tokenizer.hf.metaspace", MS_GGUF_STRING, rep[i]) : -1;
        MsTokenizer *t = rc == 0 ? ms_tokenizer_new(g, &err) : NULL;
        if (i == 0)
            MT_CHECK(t != NULL, "a GGUF's Metaspace replacement U+2581 loads (%s)", t ? "ok" : err.msg);
        else
            MT_CHECK(rc == 0 && !t && strstr(err.msg, "tokenizer.hf.metaspace must be one character"),
                     "a GGUF's Metaspace replacement '%s' is refused (%s)", rep[i], err.msg);
        ms_tokenizer_free(t);
        ms_gguf_free(g);
        free(j);
    }
}

int main(void)
{
    test_holes();
    test_growth();
    test_metaspace_char();
    test_llama_style();
    test_metaspace();
    test_digits();
    test_added_flags();
    test_refused();
    return mt_done();
}
