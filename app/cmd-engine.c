/* cmd-engine.c — the engine commands: info, tokenize, dump, generate,
 * perplexity. */
#include <errno.h>
#include <jansson.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli-util.h"
#include "commands.h"
#include "engine.h"
#include "hf.h"
#include "jobs.h"
#include "quant.h"

static const char *yesno(bool b) { return b ? "yes" : "no"; }

/* ------------------------------------------------------------------ info */

static const char info_help[] =
    "usage: moescope info MODEL [--json]\n"
    "\n"
    "Describe a model (a GGUF file, or a Hugging Face checkpoint directory or its\n"
    "config.json): format and files read, architecture, layers, experts (routed /\n"
    "used / shared), dimensions, weight types, tokenizer and size.  The model is\n"
    "loaded and validated exactly as every other command loads it, so this is the\n"
    "command that explains why a file is rejected (exit status 1, one line on\n"
    "stderr).\n"
    "\n"
    "  --json   print one JSON object instead of text\n";

int ms_cmd_info(int argc, char **argv)
{
    const char *cmd = "info", *path = NULL;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (ms_cli_is_help(a)) {
            fputs(info_help, stdout);
            return 0;
        }
        if (!strcmp(a, "--json")) json = true;
        else if (a[0] == '-' && a[1]) return ms_cli_usage(cmd, "unknown option '%s'", a);
        else if (path) return ms_cli_usage(cmd, "more than one MODEL ('%s', '%s')", path, a);
        else path = a;
    }
    if (!path) return ms_cli_usage(cmd, "missing MODEL");
    MsModel *m = ms_cli_load_model(cmd, path, MS_WEIGHTS_MAPPED);   /* only described */
    if (!m) return 1;
    const MsModelInfo *in = ms_model_info(m);
    const MsTokenizer *tok = ms_model_tokenizer(m);
    const MsGguf *g = ms_model_gguf(m);
    int64_t hist[MS_TYPE_COUNT];
    memset(hist, 0, sizeof hist);
    ms_model_type_histogram(m, hist);
    int n_moe = 0;
    for (int l = 0; l < in->n_layer; l++) n_moe += ms_model_layer_is_moe(m, l);

    if (json) {
        json_t *o = json_object(), *types = json_object();
        json_object_set_new(o, "file", json_string(path));
        json_object_set_new(o, "file_size", json_integer((json_int_t)in->file_size));
        json_object_set_new(o, "format", json_string(ms_gguf_format(g)));
        json_t *files = json_array();
        for (int i = 0; i < ms_gguf_n_source_files(g); i++)
            json_array_append_new(files, json_string(ms_gguf_source_file(g, i)));
        json_object_set_new(o, "files", files);
        json_object_set_new(o, "arch", json_string(in->arch_name));
        json_object_set_new(o, "name", json_string(in->name ? in->name : ""));
        json_object_set_new(o, "n_layer", json_integer(in->n_layer));
        json_object_set_new(o, "n_layer_moe", json_integer(n_moe));
        json_object_set_new(o, "n_layer_dense_lead", json_integer(in->n_layer_dense_lead));
        json_object_set_new(o, "n_expert", json_integer(in->n_expert));
        json_object_set_new(o, "n_expert_used", json_integer(in->n_expert_used));
        json_object_set_new(o, "n_expert_shared", json_integer(in->n_expert_shared));
        json_object_set_new(o, "n_embd", json_integer(in->n_embd));
        json_object_set_new(o, "n_head", json_integer(in->n_head));
        json_object_set_new(o, "n_head_kv", json_integer(in->n_head_kv));
        json_object_set_new(o, "head_dim_k", json_integer(in->head_dim_k));
        json_object_set_new(o, "head_dim_v", json_integer(in->head_dim_v));
        json_object_set_new(o, "n_rot", json_integer(in->n_rot));
        json_object_set_new(o, "n_ff_exp", json_integer(in->n_ff_exp));
        json_object_set_new(o, "n_ff_shexp", json_integer(in->n_ff_shexp));
        json_object_set_new(o, "n_ff_dense", json_integer(in->n_ff_dense));
        json_object_set_new(o, "n_vocab", json_integer(in->n_vocab));
        json_object_set_new(o, "n_ctx_train", json_integer(in->n_ctx_train));
        json_object_set_new(o, "gating", json_string(ms_gating_name(in->gating)));
        json_object_set_new(o, "n_expert_groups", json_integer(in->n_expert_groups));
        json_object_set_new(o, "n_group_used", json_integer(in->n_group_used));
        json_object_set_new(o, "router_bias", json_boolean(in->router_bias));
        json_object_set_new(o, "n_swa", json_integer(in->n_swa));
        json_object_set_new(o, "n_swa_layers", json_integer(in->n_swa_layers));
        json_object_set_new(o, "attn_sinks", json_boolean(in->attn_sinks));
        json_object_set_new(o, "mla_absorbed", json_boolean(in->mla_absorbed));
        json_object_set_new(o, "kv_lora_rank", json_integer(in->kv_lora_rank));
        json_object_set_new(o, "rope_factors", json_boolean(in->rope_factors));
        json_object_set_new(o, "norm_w", json_boolean(in->norm_w));
        json_object_set_new(o, "w_scale", json_real(in->w_scale));
        json_object_set_new(o, "rope_base", json_real(in->rope_base));
        json_object_set_new(o, "rope_neox", json_boolean(in->rope_neox));
        json_object_set_new(o, "weight_type", json_string(ms_type_name(in->weight_type)));
        for (int t = 0; t < MS_TYPE_COUNT; t++)
            if (hist[t]) json_object_set_new(types, ms_type_name(t), json_integer(hist[t]));
        json_object_set_new(o, "tensor_types", types);
        json_object_set_new(o, "tokenizer", json_string(ms_tokenizer_model_name(tok)));
        json_object_set_new(o, "tokenizer_pre", json_string(ms_tokenizer_pre_name(tok)));
        json_object_set_new(o, "bos", json_integer(ms_tokenizer_bos(tok)));
        json_object_set_new(o, "eos", json_integer(ms_tokenizer_eos(tok)));
        json_object_set_new(o, "add_bos", json_boolean(ms_tokenizer_add_bos(tok)));
        char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (s) puts(s);
        free(s);
        json_decref(o);
    } else {
        printf("file:       %s (%llu bytes)\n", path, (unsigned long long)in->file_size);
        printf("format:     %s", ms_gguf_format(g));
        if (!strcmp(ms_gguf_format(g), "GGUF")) printf(" v%u", (unsigned)ms_gguf_version(g));
        else
            for (int i = 0; i < ms_gguf_n_source_files(g); i++)
                printf("%s%s", i ? ", " : " (read ", ms_gguf_source_file(g, i));
        printf("%s\n", strcmp(ms_gguf_format(g), "GGUF") && ms_gguf_n_source_files(g) ? ")" : "");
        printf("arch:       %s%s%s%s\n", in->arch_name, in->name && in->name[0] ? " (" : "",
               in->name && in->name[0] ? in->name : "", in->name && in->name[0] ? ")" : "");
        printf("layers:     %d (%d MoE, %d dense)\n", in->n_layer, n_moe, in->n_layer - n_moe);
        printf("experts:    %d routed, %d used per token, %d shared\n", in->n_expert, in->n_expert_used,
               in->n_expert_shared);
        printf("routing:    %s, top-k weights %s, scale %g%s", ms_gating_name(in->gating),
               in->gating == MS_GATING_SOFTMAX_TOPK ? "= softmax of the chosen logits"
               : in->norm_w ? "renormalised" : "as is", (double)in->w_scale, in->router_bias ? ", router bias" : "");
        if (in->n_expert_groups > 1) printf(", experts from the best %d of %d groups", in->n_group_used, in->n_expert_groups);
        printf("\n");
        if (in->n_swa || in->attn_sinks || in->mla_absorbed || in->rope_factors) {
            printf("attention: ");
            if (in->n_swa) printf(" sliding window %d on %d of %d blocks;", in->n_swa, in->n_swa_layers, in->n_layer);
            if (in->attn_sinks) printf(" sinks;");
            if (in->mla_absorbed) printf(" absorbed MLA (latent %d);", in->kv_lora_rank);
            if (in->rope_factors) printf(" RoPE frequency factors;");
            printf("\n");
        }
        printf("dims:       embd %d, heads %d (kv %d), head dim k %d / v %d, rope %d (%s, base %g)\n",
               in->n_embd, in->n_head, in->n_head_kv, in->head_dim_k, in->head_dim_v, in->n_rot,
               in->rope_neox ? "neox" : "norm", (double)in->rope_base);
        printf("ffn:        expert %d, shared %d, dense %d\n", in->n_ff_exp, in->n_ff_shexp, in->n_ff_dense);
        printf("context:    %d (training)\n", in->n_ctx_train);
        printf("weights:    %s (tensors:", ms_type_name(in->weight_type));
        for (int t = 0; t < MS_TYPE_COUNT; t++)
            if (hist[t]) printf(" %s x%lld", ms_type_name(t), (long long)hist[t]);
        printf(")\n");
        int32_t bos = ms_tokenizer_bos(tok), eos = ms_tokenizer_eos(tok);
        printf("tokenizer:  %s (pre %s), %d tokens, bos %d, eos %d, add bos %s\n",
               ms_tokenizer_model_name(tok), ms_tokenizer_pre_name(tok), ms_tokenizer_n_vocab(tok),
               bos, eos, yesno(ms_tokenizer_add_bos(tok)));
    }
    ms_model_free(m);
    return 0;
}

/* -------------------------------------------------------------- tokenize */

static const char tokenize_help[] =
    "usage: moescope tokenize MODEL [--no-bos] [--pieces] ([--] TEXT | --file F)\n"
    "\n"
    "Print the token ids of TEXT (or of the whole file F, byte for byte), separated\n"
    "by spaces.  Works on vocabulary-only GGUF files: only the tokenizer is read.\n"
    "MODEL may also be a Hugging Face checkpoint directory or a tokenizer.json,\n"
    "which is tokenized with Hugging Face's semantics (docs/hf-checkpoints.md).\n"
    "\n"
    "  --no-bos     tokenize without BOS/EOS (otherwise as the model's metadata says)\n"
    "  --pieces     print one token per line: id, a tab, and its text (control\n"
    "               characters escaped as \\n \\t \\r \\xNN, backslash as \\\\; a control\n"
    "               token such as BOS, whose text is empty, by its vocabulary entry)\n"
    "  --file F     read the text from F\n";

static void print_escaped(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n') fputs("\\n", stdout);
        else if (c == '\t') fputs("\\t", stdout);
        else if (c == '\r') fputs("\\r", stdout);
        else if (c == '\\') fputs("\\\\", stdout);
        else if (c < 0x20 || c == 0x7f) printf("\\x%02x", c);
        else putchar(c);
    }
}

int ms_cmd_tokenize(int argc, char **argv)
{
    const char *cmd = "tokenize", *path = NULL, *text = NULL, *file = NULL;
    bool no_bos = false, pieces = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        int r;
        if (ms_cli_is_help(a)) {
            fputs(tokenize_help, stdout);
            return 0;
        }
        if (!strcmp(a, "--no-bos")) { no_bos = true; continue; }
        if (!strcmp(a, "--pieces")) { pieces = true; continue; }
        if ((r = ms_cli_opt(cmd, argc, argv, &i, "--file", "-f", &v)) != 0) {
            if (r < 0) return 2;
            file = v;
            continue;
        }
        if (!strcmp(a, "--")) { /* the next argument is TEXT even if it starts with '-' */
            if (i + 1 >= argc) return ms_cli_usage(cmd, "-- must be followed by TEXT");
            a = argv[++i];
            if (!path) return ms_cli_usage(cmd, "missing MODEL before --");
            if (text) return ms_cli_usage(cmd, "more than one TEXT (quote the text)");
            text = a;
            continue;
        }
        if (a[0] == '-' && a[1]) return ms_cli_usage(cmd, "unknown option '%s' (use -- before a TEXT starting with '-')", a);
        if (!path) path = a;
        else if (!text) text = a;
        else return ms_cli_usage(cmd, "more than one TEXT (quote the text)");
    }
    if (!path) return ms_cli_usage(cmd, "missing MODEL");
    if (!text && !file) return ms_cli_usage(cmd, "missing TEXT or --file F");
    if (text && file) return ms_cli_usage(cmd, "give TEXT or --file F, not both");

    MsError err = { 0 };
    char *buf = NULL;
    size_t len;
    if (file) {
        if (ms_cli_read_file(file, &buf, &len, &err) < 0) return ms_cli_fail_err(cmd, &err);
    } else {
        len = strlen(text);
    }
    /* one rule for text in every command (jobs/prompts.h): never silently changed */
    if (ms_text_check(file ? file : "TEXT", file ? 1 : 0, file ? buf : text, len, &err) < 0) {
        free(buf);
        return ms_cli_fail_err(cmd, &err);
    }
    /* a checkpoint directory, its config.json or a tokenizer.json: only the tokenizer is read */
    MsGguf *g = ms_hf_is_checkpoint(path) ? ms_hf_open_tokenizer(path, &err) : ms_gguf_open(path, &err);
    if (!g) {
        free(buf);
        return ms_cli_fail_path(cmd, path, &err);
    }
    MsTokenizer *t = ms_tokenizer_new(g, &err);
    if (!t) {
        ms_gguf_free(g);
        free(buf);
        return ms_cli_fail_path(cmd, path, &err);
    }
    int32_t *ids = NULL;
    int n = ms_tokenizer_encode(t, file ? buf : text, len, !no_bos, &ids, &err);
    int rc = 0;
    if (n < 0) {
        rc = ms_cli_fail_path(cmd, file ? file : "TEXT", &err);
    } else if (pieces) {
        for (int i = 0; i < n; i++) {
            char pb[256];
            int pl = ms_tokenizer_piece(t, ids[i], pb, sizeof pb);
            printf("%d\t", ids[i]);
            /* a control token (BOS, EOS) decodes to nothing: shown by its
             * vocabulary entry, as llama.cpp's llama-tokenize shows it */
            const char *v = pl == 0 ? ms_tokenizer_token_text(t, ids[i]) : NULL;
            if (pl > 0) print_escaped(pb, (size_t)MS_MIN(pl, (int)sizeof pb));
            else if (v) print_escaped(v, strlen(v));
            putchar('\n');
        }
    } else {
        for (int i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
        putchar('\n');
    }
    free(ids);
    ms_tokenizer_free(t);
    ms_gguf_free(g);
    free(buf);
    return rc;
}

/* ------------------------------------------------------------------ dump */

static const char dump_help[] =
    "usage: moescope dump MODEL --prompts FILE --out PREFIX [-t THREADS] [interventions]\n"
    "\n"
    "Run every prompt of FILE (one per line with \\n \\t \\\\ escapes, or JSONL with\n"
    "\"text\") through the model in one batch and write PREFIX.json and\n"
    "PREFIX.p<i>.f32 in the reference-fixture schema: tokens (BOS as the metadata\n"
    "says), per MoE layer the selected experts, their applied weights and the router\n"
    "probabilities, and the logits at every position (raw little-endian float32,\n"
    "[n_tokens][n_vocab]).  Floats are printed with the shortest decimal that reads\n"
    "back as the same float32.  KV cache F32.\n"
    "\n"
    "  --prompts FILE   prompt file\n"
    "  --out PREFIX     output prefix (directories must exist)\n"
    "  -t THREADS       worker threads (default: all CPUs)\n"
    MS_CLI_WEIGHTS_HELP;

int ms_cmd_dump(int argc, char **argv)
{
    const char *cmd = "dump", *prefix = NULL;
    MsCliCommon c = { .groups = MS_CLI_G_MODEL | MS_CLI_G_THREADS | MS_CLI_G_PROMPTS | MS_CLI_G_IV };
    const MsCliOpt opts[] = { { "--out", "-o", MS_OPT_STR, &prefix, 0, 0 }, { 0 } };
    int rc = ms_cli_parse(cmd, argc, argv, opts, &c, dump_help);
    if (!rc && !prefix) rc = ms_cli_usage(cmd, "--out PREFIX is required");
    if (rc) {
        ms_cli_common_free(&c);
        return ms_cli_exit(rc);
    }
    MsError err = { 0 };
    MsPrompt *pr = NULL;
    size_t npr = 0;
    MsModel *m = NULL;
    MsIntervention *iv = NULL;
    if ((rc = ms_cli_read_prompts(cmd, c.prompts, &pr, &npr)) == 0 && npr == 0)
        rc = ms_cli_fail(cmd, "%s: no prompts", c.prompts);
    if (rc == 0 && (rc = ms_cli_common_load(cmd, &c, &m, &iv)) == 0) {
        MsDumpJob j;
        ms_dump_job_init(&j);
        j.prompts_name = c.prompts;
        j.n_threads = c.n_threads;
        j.iv = iv;
        if (ms_dump_job_run(&j, m, c.model, pr, npr, prefix, &err) < 0) rc = ms_cli_fail_err(cmd, &err);
    }
    ms_intervention_free(iv);
    ms_model_free(m);
    ms_prompts_free(pr, npr);
    ms_cli_common_free(&c);
    return rc;
}

/* -------------------------------------------------------------- generate */

static const char generate_help[] =
    "usage: moescope generate MODEL -p TEXT [-n N] [--temp T] [--top-p P] [--seed S]\n"
    "                         [--routing] [-t THREADS] [interventions]\n"
    "\n"
    "Continue TEXT and print the continuation (the prompt is not echoed).  The\n"
    "prompt is tokenized with BOS as the model's metadata says; generation stops\n"
    "after N tokens or at an end-of-generation token.\n"
    "\n"
    "  -p, --prompt TEXT  the prompt\n"
    "  -n N               tokens to generate (default 32); the prompt's tokens and\n"
    "                     N must fit the model's context (moescope info)\n"
    "  --temp T           temperature; 0 = greedy (default 0)\n"
    "  --top-p P          nucleus sampling threshold (default 1 = off)\n"
    "  --seed S           sampler seed (default 0)\n"
    "  --routing          after the text, print a table: per token (prompt and\n"
    "                     generated) and MoE layer, the selected experts and weights\n"
    "  -t THREADS         worker threads (default: all CPUs)\n"
    MS_CLI_WEIGHTS_HELP;

static void print_routing(const MsGeneration *g, const MsTokenizer *tok, int n_layer)
{
    printf("\n\nrouting (pos token 'piece' | layer: expert:weight ...)\n");
    for (int p = 0; p < g->n_tokens; p++) {
        char pb[64];
        int pl = ms_tokenizer_piece(tok, g->tokens[p], pb, sizeof pb);
        printf("%5d %6d '", p, g->tokens[p]);
        if (pl > 0) print_escaped(pb, (size_t)MS_MIN(pl, (int)sizeof pb));
        putchar('\'');
        bool any = false;
        for (int l = 0; l < n_layer; l++) {
            MsRouteLayer rl;
            if (!ms_route_capture_layer(g->routing, l, &rl) || p >= rl.n_pos || rl.experts[(size_t)p * rl.k] < 0)
                continue;
            any = true;
            printf(" | L%d:", l);
            for (int k = 0; k < rl.k; k++)
                printf(" %d:%.3f", rl.experts[(size_t)p * rl.k + k], (double)rl.weights[(size_t)p * rl.k + k]);
        }
        if (!any) printf(" | (last token: not evaluated)");
        putchar('\n');
    }
}

static void print_piece(void *user, int32_t id, const char *piece, size_t len)
{
    (void)user;
    (void)id;
    fwrite(piece, 1, len, stdout);
    fflush(stdout);
}

int ms_cmd_generate(int argc, char **argv)
{
    const char *cmd = "generate", *prompt = NULL;
    MsGenJob j;
    ms_gen_job_init(&j);
    MsCliCommon c = { .groups = MS_CLI_G_MODEL | MS_CLI_G_THREADS | MS_CLI_G_IV };
    const MsCliOpt opts[] = {
        { "--prompt", "-p", MS_OPT_STR, &prompt, 0, 0 },
        { "--n-predict", "-n", MS_OPT_INT, &j.n_gen, 0, 1 << 20 },
        { "--temp", NULL, MS_OPT_FLOAT, &j.temp, 0.0, 100.0 },
        { "--top-p", NULL, MS_OPT_FLOAT, &j.top_p, 0.0, 1.0 },
        { "--seed", "-s", MS_OPT_U64, &j.seed, 0, 0 },
        { "--routing", NULL, MS_OPT_FLAG, &j.capture, 0, 0 },
        { 0 },
    };
    int rc = ms_cli_parse(cmd, argc, argv, opts, &c, generate_help);
    if (!rc && !prompt) rc = ms_cli_usage(cmd, "missing -p TEXT");
    if (!rc && j.top_p <= 0.0f) rc = ms_cli_usage(cmd, "--top-p must be > 0");
    if (rc) {
        ms_cli_common_free(&c);
        return ms_cli_exit(rc);
    }
    MsError err = { 0 };
    MsModel *m = NULL;
    MsIntervention *iv = NULL;
    MsGeneration g = { 0 };
    if ((rc = ms_cli_common_load(cmd, &c, &m, &iv)) == 0) {
        j.n_threads = c.n_threads;
        j.iv = iv;
        j.on_token = print_piece;
        if (ms_gen_job_run(&j, m, prompt, strlen(prompt), &g, &err) < 0) rc = ms_cli_fail_err(cmd, &err);
        else if (j.capture) print_routing(&g, ms_model_tokenizer(m), ms_model_info(m)->n_layer);
        else putchar('\n');
    }
    ms_generation_clear(&g);
    ms_intervention_free(iv);
    ms_model_free(m);
    ms_cli_common_free(&c);
    return rc;
}

/* ------------------------------------------------------------ perplexity */

static const char perplexity_help[] =
    "usage: moescope perplexity MODEL --file F [--ctx N] [-t THREADS] [interventions]\n"
    "\n"
    "Perplexity of the text of F, llama.cpp-style: the text is tokenized (without\n"
    "BOS/EOS) and cut into chunks of N tokens; each chunk is evaluated from an empty\n"
    "KV cache (its first token replaced by BOS when the model adds one), and only\n"
    "the second half of each chunk is scored: the logits at positions j = N/2 ..\n"
    "N-2 predict token j+1, so each position has at least N/2 tokens of context.\n"
    "When the text has fewer than N tokens, one chunk of all its tokens is used.\n"
    "Tokens after the last whole chunk are ignored.  Prints PPL, the number of\n"
    "scored tokens and chunks.\n"
    "\n"
    "  --file F     the text\n"
    "  --ctx N      chunk length in tokens (default 512, or the model's context\n"
    "               when that is shorter; at least 4, at most the model's context:\n"
    "               moescope info)\n"
    "  -t THREADS   worker threads (default: all CPUs)\n"
    MS_CLI_WEIGHTS_HELP;

int ms_cmd_perplexity(int argc, char **argv)
{
    const char *cmd = "perplexity", *file = NULL;
    int ctx_opt = 0;
    MsPplJob j;
    ms_ppl_job_init(&j);
    MsCliCommon c = { .groups = MS_CLI_G_MODEL | MS_CLI_G_THREADS | MS_CLI_G_IV };
    const MsCliOpt opts[] = {
        { "--file", "-f", MS_OPT_STR, &file, 0, 0 },
        { "--ctx", "-c", MS_OPT_INT, &ctx_opt, 4, 1 << 20 },
        { 0 },
    };
    int rc = ms_cli_parse(cmd, argc, argv, opts, &c, perplexity_help);
    if (!rc && !file) rc = ms_cli_usage(cmd, "--file F is required");
    if (rc) {
        ms_cli_common_free(&c);
        return ms_cli_exit(rc);
    }
    MsError err = { 0 };
    char *text = NULL;
    size_t tlen = 0;
    MsModel *m = NULL;
    MsIntervention *iv = NULL;
    if (ms_cli_read_file(file, &text, &tlen, &err) < 0) rc = ms_cli_fail_err(cmd, &err);
    else rc = ms_cli_common_load(cmd, &c, &m, &iv);
    if (rc == 0) {
        const int ctx_train = ms_model_info(m)->n_ctx_train;
        if (ctx_opt) j.n_ctx = ctx_opt;
        else if (ctx_train >= 4 && ctx_train < j.n_ctx) j.n_ctx = ctx_train;   /* a model made for less than 512 */
        j.n_threads = c.n_threads;
        j.iv = iv;
        MsPplResult r;
        if (ms_ppl_job_run(&j, m, file, text, tlen, &r, &err) < 0)
            rc = ms_cli_fail_err(cmd, &err);
        else
            printf("PPL = %.4f  tokens = %ld  chunks = %d  ctx = %d  (%d tokens in file)\n", r.ppl, r.n_scored,
                   r.n_chunks, r.chunk_len, r.n_tokens);
    }
    free(text);
    ms_intervention_free(iv);
    ms_model_free(m);
    ms_cli_common_free(&c);
    return rc;
}
