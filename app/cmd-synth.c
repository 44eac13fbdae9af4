/* cmd-synth.c — `moescope synth`: write a random-weight MoE model. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli-util.h"
#include "commands.h"
#include "hf.h"
#include "quant.h"
#include "synth.h"

static const char synth_help[] =
    "usage: moescope synth --arch A --layers N --embd D --heads H --experts E --used K\n"
    "                      --ff F --vocab V [--type T] [--seed S] [--kv-heads H] [--head-dim W] [-t N]\n"
    "                      [--window N] [--v3] [--plant-super L:E:IDS] [--plant-route CLASS:L:E]\n"
    "                      [--plant-chain] OUT.gguf\n"
    "\n"
    "Write a random-weight Mixture-of-Experts model with a byte-level BPE tokenizer.\n"
    "Weights are normal draws scaled by 1/sqrt(fan_in); the file is deterministic\n"
    "given the options and the seed.\n"
    "\n"
    "  --arch A       olmoe, qwen2moe, qwen3moe, llama (Mixtral-style), granitemoe,\n"
    "                 deepseek2, gpt-oss, phimoe\n"
    "  --layers N     blocks (deepseek2: the first is a dense FFN when N >= 2)\n"
    "  --embd D       model width\n"
    "  --heads H      attention heads (D/H must be even; deepseek2: divisible by 4)\n"
    "  --kv-heads H   key/value heads (default = heads; olmoe needs = heads)\n"
    "  --head-dim W   head width (qwen3moe, gpt-oss; default D/H), e.g. 128 for\n"
    "                 Qwen3-30B-A3B's shapes, 64 for gpt-oss-20b's\n"
    "  --window N     gpt-oss sliding window in tokens (default 128, gpt-oss-20b's)\n"
    "  --v3           deepseek2 in the DeepSeek-V3 layout: absorbed MLA (attn_k_b,\n"
    "                 attn_v_b), sigmoid router with a selection bias, group-limited\n"
    "                 routing (8, 4 or 2 groups, half of them used), weights\n"
    "                 renormalised x 2.5, one shared expert\n"
    "  --experts E    routed experts (1..256)\n"
    "  --used K       experts selected per token\n"
    "  --ff F         expert FFN width (qwen2moe shared expert 2F; deepseek2 dense 4F,\n"
    "                 2 shared experts of F)\n"
    "  --vocab V      vocabulary size (>= 258: 256 bytes, learned merges, unused\n"
    "                 fillers, <|endoftext|> and <|startoftext|>)\n"
    "  --type T       weight type of matrices: F32 F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1\n"
    "                 Q2_K Q3_K Q4_K Q5_K Q6_K IQ4_NL MXFP4; norms, biases and routers\n"
    "                 stay F32.  MXFP4 is llama-quantize's MXFP4_MOE mix: the expert\n"
    "                 tensors in MXFP4, every other matrix in Q8_0.  Rows that are not\n"
    "                 whole blocks fall back (K-quants to IQ4_NL/Q5_0/Q5_1/Q8_0, then\n"
    "                 F16), as llama-quantize does.\n"
    "  --seed S       PRNG seed (default 42)\n"
    "  -t THREADS     generation threads (default: all CPUs, at most 16); the file\n"
    "                 is the same for any thread count\n"
    "\n"
    "Planted structure (for checking analyses; needs embd >= 8).  Reserved residual\n"
    "channels (the last three) are never written by attention or FFN outputs, so\n"
    "they carry the token embedding through every layer:\n"
    "  --plant-super L:E:IDS  tokens IDS (comma list of ids) are routed to expert E\n"
    "                 at block L (and no other token is), whose FFN unit 0 responds\n"
    "                 strongly to them with a huge output on residual channel D-4:\n"
    "                 E is the one super expert\n"
    "  --plant-route CLASS:L:E  block L routes exactly the tokens of CLASS to\n"
    "                 expert E (rank 0) and no other token to it; CLASS is 'digit'\n"
    "                 (token text of digits and whitespace only) or a comma list of ids\n"
    "  --plant-chain  every MoE block has the same router and FFN norm, and the\n"
    "                 residual channels the routers read (the lower half) are never\n"
    "                 written: every token selects the same experts at every layer\n";

/* "a,b,c" -> ids (malloc'd); -1 on a malformed list (message printed). */
static int parse_ids(const char *cmd, const char *opt, const char *s, int **ids, int *n)
{
    int cap = 8, k = 0;
    int *v = malloc((size_t)cap * sizeof *v);
    if (!v) {
        ms_cli_fail(cmd, "out of memory");
        return -1;
    }
    for (const char *q = s;;) {
        char *end;
        errno = 0;
        long x = strtol(q, &end, 10);
        if (end == q || errno || x < 0 || x > 1 << 22 || (*end && *end != ',')) {
            free(v);
            ms_cli_usage(cmd, "%s: '%s' is not a comma list of token ids", opt, s);
            return -1;
        }
        if (k == cap) {
            int *nv = realloc(v, (size_t)(cap *= 2) * sizeof *nv);
            if (!nv) { free(v); ms_cli_fail(cmd, "out of memory"); return -1; }
            v = nv;
        }
        v[k++] = (int)x;
        if (!*end) break;
        q = end + 1;
    }
    *ids = v;
    *n = k;
    return 0;
}

/* "L:E" at s -> layer, expert; rest (after a third ':') in *rest if wanted. */
static int parse_le(const char *cmd, const char *opt, const char *s, int *l, int *e, const char **rest)
{
    char *end;
    errno = 0;
    long a = strtol(s, &end, 10);
    if (end == s || errno || *end != ':' || a < 0 || a > 1024) goto bad;
    const char *q = end + 1;
    long b = strtol(q, &end, 10);
    if (end == q || errno || b < 0 || b > 255) goto bad;
    if (rest ? *end != ':' : *end != 0) goto bad;
    if (rest) *rest = end + 1;
    *l = (int)a;
    *e = (int)b;
    return 0;
bad:
    ms_cli_usage(cmd, "%s: '%s' is not of the form %s", opt, s, rest ? "L:E:IDS" : "CLASS:L:E");
    return -1;
}

/* The id lists it parses are left in *super_ids / *route_ids for the caller
 * to free. */
static int synth_run(int argc, char **argv, int **super_ids, int **route_ids)
{
    const char *cmd = "synth";
    MsSynthParams p = ms_synth_default_params();
    const char *out = NULL;
    bool have[8] = { 0 };
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        int r;
        if (ms_cli_is_help(a)) {
            fputs(synth_help, stdout);
            return 0;
        }
#define OPTI(name, field, lo, hi, idx)                                             \
        if ((r = ms_cli_opt(cmd, argc, argv, &i, name, NULL, &v)) != 0) {          \
            if (r < 0 || ms_cli_parse_int(cmd, name, v, lo, hi, &p.field) < 0)     \
                return 2;                                                          \
            if (idx >= 0) have[idx] = true;                                        \
            continue;                                                              \
        }
        OPTI("--layers", n_layer, 1, 1024, 0)
        OPTI("--embd", n_embd, 2, 65536, 1)
        OPTI("--heads", n_head, 1, 4096, 2)
        OPTI("--experts", n_expert, 1, 256, 3)
        OPTI("--used", n_expert_used, 1, 256, 4)
        OPTI("--ff", n_ff, 1, 1 << 20, 5)
        OPTI("--vocab", n_vocab, 258, 1 << 22, 6)
        OPTI("--kv-heads", n_head_kv, 1, 4096, -1)
        OPTI("--head-dim", head_dim, 2, 4096, -1)
        OPTI("--window", n_swa, 1, 1 << 20, -1)
        if (!strcmp(argv[i], "--v3")) {
            p.v3 = 1;
            continue;
        }
        OPTI("--threads", n_threads, 0, 1024, -1)
        if ((r = ms_cli_opt(cmd, argc, argv, &i, "-t", NULL, &v)) != 0) {
            if (r < 0 || ms_cli_parse_int(cmd, "-t", v, 0, 1024, &p.n_threads) < 0) return 2;
            continue;
        }
#undef OPTI
        if ((r = ms_cli_opt(cmd, argc, argv, &i, "--arch", NULL, &v)) != 0) {
            if (r < 0) return 2;
            p.arch = v;
            have[7] = true;
            continue;
        }
        if ((r = ms_cli_opt(cmd, argc, argv, &i, "--type", NULL, &v)) != 0) {
            if (r < 0) return 2;
            p.type = ms_type_from_name(v);
            if (p.type < 0 || !ms_type_is_supported(p.type))
                return ms_cli_usage(cmd, "--type: '%s' is not a supported weight type", v);
            continue;
        }
        if (!strcmp(a, "--plant-chain")) {
            p.chain = 1;
            continue;
        }
        if ((r = ms_cli_opt(cmd, argc, argv, &i, "--plant-super", NULL, &v)) != 0) {
            const char *ids;
            if (r < 0 || *super_ids) {
                if (r > 0) ms_cli_usage(cmd, "--plant-super given twice");
                return 2;
            }
            if (parse_le(cmd, "--plant-super", v, &p.super_layer, &p.super_expert, &ids) < 0 ||
                parse_ids(cmd, "--plant-super", ids, super_ids, &p.n_super_tokens) < 0)
                return 2;
            p.super_tokens = *super_ids;
            continue;
        }
        if ((r = ms_cli_opt(cmd, argc, argv, &i, "--plant-route", NULL, &v)) != 0) {
            if (r < 0 || p.route_class || *route_ids) {
                if (r > 0) ms_cli_usage(cmd, "--plant-route given twice");
                return 2;
            }
            const char *c = strchr(v, ':');
            if (!c || c == v || !strchr(c + 1, ':'))
                return ms_cli_usage(cmd, "--plant-route: '%s' is not of the form CLASS:L:E", v);
            if (parse_le(cmd, "--plant-route", c + 1, &p.route_layer, &p.route_expert, NULL) < 0) return 2;
            if (!strncmp(v, "digit:", 6)) {
                p.route_class = "digit";
            } else {
                char cls[256];
                size_t n = (size_t)(c - v);
                if (n >= sizeof cls) return ms_cli_usage(cmd, "--plant-route: token list too long");
                memcpy(cls, v, n);
                cls[n] = 0;
                if (parse_ids(cmd, "--plant-route", cls, route_ids, &p.n_route_tokens) < 0) return 2;
                p.route_tokens = *route_ids;
            }
            continue;
        }
        if ((r = ms_cli_opt(cmd, argc, argv, &i, "--seed", NULL, &v)) != 0) {
            if (r < 0 || ms_cli_parse_u64(cmd, "--seed", v, &p.seed) < 0) return 2;
            continue;
        }
        if (a[0] == '-' && a[1]) return ms_cli_usage(cmd, "unknown option '%s'", a);
        if (out) return ms_cli_usage(cmd, "more than one output file ('%s', '%s')", out, a);
        out = a;
    }
    static const char *const names[8] = { "--layers", "--embd", "--heads", "--experts", "--used",
                                          "--ff", "--vocab", "--arch" };
    for (int k = 0; k < 8; k++)
        if (!have[k]) return ms_cli_usage(cmd, "%s is required", names[k]);
    if (!out) return ms_cli_usage(cmd, "missing OUT.gguf");
    MsError err = { 0 };
    if (ms_synth_write(out, &p, &err) < 0) {
        if (err.code == MS_EINVAL) return ms_cli_usage(cmd, "%s", err.msg);
        return ms_cli_fail_err(cmd, &err);
    }
    return 0;
}

int ms_cmd_synth(int argc, char **argv)
{
    int *super_ids = NULL, *route_ids = NULL;
    int rc = synth_run(argc, argv, &super_ids, &route_ids);
    free(super_ids);
    free(route_ids);
    return rc;
}

/* ---- convert ---- */

static const char convert_help[] =
    "usage: moescope convert MODEL OUT.gguf [--type T]\n"
    "\n"
    "Write MODEL (a Hugging Face checkpoint directory or its config.json, or a GGUF\n"
    "file) as a GGUF v3 file through moescope's own writer and quantisers, so a\n"
    "checkpoint reaches the quantised kernels and llama.cpp.  Tensor names, layouts\n"
    "and metadata are llama.cpp's (docs/hf-checkpoints.md).\n"
    "\n"
    "  --type T   auto (default: every tensor keeps its type, lossless), F32, F16,\n"
    "             BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K,\n"
    "             IQ4_NL or MXFP4.  Matrices become T (K types fall back as\n"
    "             llama-quantize does for rows that are not whole blocks); routers\n"
    "             (ffn_gate_inp), norms, biases and other 1-D tensors stay F32.\n"
    "\n"
    "The file appears only when complete: a failure leaves no partial OUT.gguf.\n";

int ms_cmd_convert(int argc, char **argv)
{
    const char *cmd = "convert", *in = NULL, *out = NULL, *tname = "auto";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (ms_cli_is_help(a)) { fputs(convert_help, stdout); return 0; }
        if (!strcmp(a, "--type")) {
            if (++i >= argc) return ms_cli_usage(cmd, "--type needs a value");
            tname = argv[i];
        } else if (a[0] == '-' && a[1]) return ms_cli_usage(cmd, "unknown option '%s'", a);
        else if (!in) in = a;
        else if (!out) out = a;
        else return ms_cli_usage(cmd, "too many arguments ('%s')", a);
    }
    if (!in || !out) return ms_cli_usage(cmd, "need MODEL and OUT.gguf");
    int type = -1;
    if (strcmp(tname, "auto")) {
        type = ms_type_from_name(tname);
        if (type < 0 || !ms_type_is_supported(type))
            return ms_cli_usage(cmd, "unknown --type '%s' (auto, F32, F16, BF16, Q8_0, Q4_K, ...)", tname);
    }
    MsError err = { 0 };
    MsGguf *g = ms_hf_is_checkpoint(in) ? ms_hf_open(in, &err) : ms_gguf_open(in, &err);
    if (!g) return ms_cli_fail_path(cmd, in, &err);
    int rc = ms_convert_write(g, out, type, NULL, NULL, NULL, &err);
    ms_gguf_free(g);
    if (rc) return ms_cli_fail_err(cmd, &err);   /* names the input or OUT.gguf */
    printf("wrote %s (%s)\n", out, type < 0 ? "types kept" : ms_type_name(type));
    return 0;
}
