/* cmd-synth.c — `moescope synth`: write a random-weight MoE model. */
#include <stdio.h>
#include <string.h>

#include "cli-util.h"
#include "commands.h"
#include "quant.h"
#include "synth.h"

static const char synth_help[] =
    "usage: moescope synth --arch A --layers N --embd D --heads H --experts E --used K\n"
    "                      --ff F --vocab V [--type T] [--seed S] [--kv-heads H] [-t N] OUT.gguf\n"
    "\n"
    "Write a random-weight Mixture-of-Experts model with a byte-level BPE tokenizer.\n"
    "Weights are normal draws scaled by 1/sqrt(fan_in); the file is deterministic\n"
    "given the options and the seed.\n"
    "\n"
    "  --arch A       olmoe, qwen2moe, llama (Mixtral-style), granitemoe, deepseek2\n"
    "  --layers N     blocks (deepseek2: the first is a dense FFN when N >= 2)\n"
    "  --embd D       model width\n"
    "  --heads H      attention heads (D/H must be even; deepseek2: divisible by 4)\n"
    "  --kv-heads H   key/value heads (default = heads; olmoe needs = heads)\n"
    "  --experts E    routed experts (1..256)\n"
    "  --used K       experts selected per token\n"
    "  --ff F         expert FFN width (qwen2moe shared expert 2F; deepseek2 dense 4F,\n"
    "                 2 shared experts of F)\n"
    "  --vocab V      vocabulary size (>= 258: 256 bytes, learned merges, unused\n"
    "                 fillers, <|endoftext|> and <|startoftext|>)\n"
    "  --type T       weight type of matrices: F32 F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1\n"
    "                 Q2_K Q3_K Q4_K Q5_K Q6_K; norms and routers stay F32.  Rows that\n"
    "                 are not whole blocks fall back (K-quants to Q4_0/Q5_0/Q5_1/Q8_0,\n"
    "                 then F16), as llama-quantize does.\n"
    "  --seed S       PRNG seed (default 42)\n"
    "  -t THREADS     generation threads (default: all CPUs, at most 16); the file\n"
    "                 is the same for any thread count\n";

int ms_cmd_synth(int argc, char **argv)
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
