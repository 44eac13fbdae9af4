/* hf.h — Hugging Face checkpoints (config.json + safetensors + tokenizer.json)
 * read into the same in-memory description (metadata + tensor table, an
 * MsGguf) that a GGUF file gives, so the model loader, tokenizer, forward
 * pass and GGUF writer need no second path.
 *
 * What is checked before anything points into the files: every safetensors
 * header (length, JSON, dtypes, shapes, data_offsets inside the file, no
 * overlaps or holes), sharding against model.safetensors.index.json, the
 * config.json fields a family needs, every tensor the family needs present
 * with the shape config.json implies, and no tensor left unused.  Failures
 * are one line, "FILE: problem", naming the file at fault.
 *
 * Tensors whose HF layout already is the GGUF layout (F32/F16/BF16,
 * naturally aligned) point into the read-only mappings.  Layouts that differ
 * are transformed once, into owned memory: per-expert tensors stacked into
 * one [E][rows][cols] block, fused gate/up split, gpt-oss's transposed and
 * interleaved experts, the q/k RoPE permutation of the llama layout, and
 * phimoe's LongRoPE factors (docs/hf-checkpoints.md gives the memory cost). */
#ifndef MS_HF_H
#define MS_HF_H

#include <stdbool.h>

#include "gguf.h"
#include "ms-common.h"

/* True when path names a checkpoint: a directory, or a file whose name is
 * config.json or tokenizer.json.  Does not validate anything. */
bool ms_hf_is_checkpoint(const char *path);

/* Open a checkpoint directory (or its config.json): weights, hyper-
 * parameters and tokenizer, with GGUF names and keys (general.architecture
 * as llama.cpp names it).  NULL with err filled on failure.  The result is
 * freed with ms_gguf_free; ms_gguf_format() says "safetensors" and
 * ms_gguf_source_file() lists the files read. */
MsGguf *ms_hf_open(const char *path, MsError *err);

/* Only the tokenizer (tokenizer.ggml.* keys) of a directory or a
 * tokenizer.json path; tokenizer_config.json and config.json next to it are
 * read when present. */
MsGguf *ms_hf_open_tokenizer(const char *path, MsError *err);

/* The tokenizer keys of a tokenizer.json held in memory (json[0..len));
 * name is used in messages.  For fuzzing and tests. */
MsGguf *ms_hf_tokenizer_from_json(const char *name, const char *json, size_t len, MsError *err);

/* Validate one safetensors image (the bytes of a whole file) without
 * keeping anything: the header checks of ms_hf_open.  For fuzzing and
 * tests; name is used in messages. */
int ms_hf_check_safetensors(const char *name, const void *data, size_t size, MsError *err);

#endif
