/* synth.h — random-weight MoE models of any shape and supported weight type,
 * written as GGUF through the project's own writer and quantisers, with a
 * valid byte-level BPE tokenizer.  Used by tests, benchmarks and users who
 * want a model of a given shape.  Deterministic given the seed.
 *
 * Library mssynth (synth/): model tooling, kept out of the runtime engine
 * library; it links msengine for the GGUF writer and the quantisers. */
#ifndef MS_SYNTH_H
#define MS_SYNTH_H

#include <stdint.h>

#include "gguf.h"
#include "ms-common.h"

typedef struct {
    const char *arch;      /* "olmoe", "qwen2moe", "llama", "granitemoe", "deepseek2",
                            * "qwen3moe", "gpt-oss", "phimoe" */
    int n_layer, n_embd, n_head, n_head_kv;  /* n_head_kv 0 = n_head */
    int head_dim;          /* attention head width; 0 = n_embd / n_head (qwen3moe and
                            * gpt-oss may set any even width, as their models do) */
    int n_expert, n_expert_used, n_ff;       /* n_ff: expert FFN width */
    int n_vocab;
    int n_swa;             /* gpt-oss sliding window in tokens (0 = 128, gpt-oss-20b's) */
    int v3;                /* deepseek2 only, nonzero: the DeepSeek-V3 layout — absorbed MLA
                            * (attn_k_b / attn_v_b), sigmoid router with a selection bias,
                            * group-limited routing, renormalised weights x 2.5, one shared expert */
    int type;              /* MS_TYPE_* for 2-D weights; norms and router stay F32.
                            * MXFP4 is llama-quantize's MXFP4_MOE mix: the 3-D expert
                            * tensors in MXFP4, every other matrix in Q8_0 */
    uint64_t seed;
    int n_threads;         /* generation/quantisation threads; 0 = online CPUs (max 16).
                            * The output does not depend on it. */

    /* Planted structure (all off by default; off = the plain random model,
     * byte for byte).  Planted channels of the residual stream are never
     * written by attention or FFN outputs, so they carry the token embedding
     * unchanged through every layer.  See docs/cli.md (synth). */
    int super_layer, super_expert;   /* super expert (block index, expert); used
                                      * when n_super_tokens > 0 */
    const int *super_tokens;         /* token ids (borrowed, n_super_tokens of them) */
    int n_super_tokens;
    int route_layer, route_expert;   /* planted routing; used when route_class is
                                      * set or n_route_tokens > 0 */
    const char *route_class;         /* "digit": tokens whose text is digits (and
                                      * whitespace) only; else NULL and route_tokens */
    const int *route_tokens;         /* borrowed, n_route_tokens of them */
    int n_route_tokens;
    int chain;                       /* nonzero: every MoE layer routes every token alike */
} MsSynthParams;

MsSynthParams ms_synth_default_params(void);
/* Write the model to path.  Returns 0 or MS_E* (err names the problem). */
int ms_synth_write(const char *path, const MsSynthParams *p, MsError *err);

/* A weight type that can store rows of ne0 elements: type itself, or
 * llama-quantize's fallback for rows that are not whole K blocks. */
int ms_synth_fit_type(int type, int64_t ne0);
/* llama.cpp's general.file_type value for a file mostly of `type`. */
int ms_synth_ftype(int type);

/* Write a model description (a GGUF file, or a Hugging Face checkpoint read
 * by ms_hf_open) as a GGUF v3 file through the project's writer and
 * quantisers.  type -1 keeps every tensor's own type (lossless); otherwise
 * matrices (.weight with 2+ dims, except routers, ffn_gate_inp) become
 * `type` (with ms_synth_fit_type's fallbacks), routers and 1-D tensors F32,
 * as llama.cpp's converter and llama-quantize do.  Tensors already of the
 * target type are copied byte for byte.  The output is written to a
 * temporary name and renamed, so a failure leaves no partial file.
 * progress/cancel may be NULL.  Returns 0 or MS_E* (err names the file). */
int ms_convert_write(const MsGguf *src, const char *out, int type, MsProgressFn progress, void *user,
                     const MsCancel *cancel, MsError *err);

#endif
