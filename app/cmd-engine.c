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
#include "prompts.h"
#include "quant.h"

static const char *yesno(bool b) { return b ? "yes" : "no"; }

/* ------------------------------------------------------------------ info */

static const char info_help[] =
    "usage: moescope info MODEL [--json]\n"
    "\n"
    "Describe a GGUF model: architecture, layers, experts (routed / used / shared),\n"
    "dimensions, weight types, tokenizer and file size.  The model is loaded and\n"
    "validated exactly as every other command loads it, so this is the command that\n"
    "explains why a file is rejected (exit status 1, one line on stderr).\n"
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
    MsModel *m = ms_cli_load_model(cmd, path);
    if (!m) return 1;
    const MsModelInfo *in = ms_model_info(m);
    const MsTokenizer *tok = ms_model_tokenizer(m);
    int64_t hist[MS_TYPE_COUNT];
    memset(hist, 0, sizeof hist);
    ms_model_type_histogram(m, hist);
    int n_moe = 0;
    for (int l = 0; l < in->n_layer; l++) n_moe += ms_model_layer_is_moe(m, l);

    if (json) {
        json_t *o = json_object(), *types = json_object();
        json_object_set_new(o, "file", json_string(path));
        json_object_set_new(o, "file_size", json_integer((json_int_t)in->file_size));
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
        json_object_set_new(o, "gating", json_string(in->gating == MS_GATING_SIGMOID ? "sigmoid" : "softmax"));
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
        printf("arch:       %s%s%s%s\n", in->arch_name, in->name && in->name[0] ? " (" : "",
               in->name && in->name[0] ? in->name : "", in->name && in->name[0] ? ")" : "");
        printf("layers:     %d (%d MoE, %d dense)\n", in->n_layer, n_moe, in->n_layer - n_moe);
        printf("experts:    %d routed, %d used per token, %d shared\n", in->n_expert, in->n_expert_used,
               in->n_expert_shared);
        printf("routing:    %s, top-k weights %s, scale %g\n",
               in->gating == MS_GATING_SIGMOID ? "sigmoid" : "softmax",
               in->norm_w ? "renormalised" : "as is", (double)in->w_scale);
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
    "\n"
    "  --no-bos     tokenize without BOS/EOS (otherwise as the model's metadata says)\n"
    "  --pieces     print one token per line: id, a tab, and its text (control\n"
    "               characters escaped as \\n \\t \\r \\xNN, backslash as \\\\)\n"
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
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        free(buf);
        return ms_cli_fail(cmd, "%s: is a directory", path);
    }
    MsGguf *g = ms_gguf_open(path, &err);
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
            if (pl > 0) print_escaped(pb, (size_t)MS_MIN(pl, (int)sizeof pb));
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

/* ------------------------------------------------------ routing capture */

/* Routing of one MoE layer over a whole sequence, gathered from observer
 * events (which may come in several micro-batches). */
typedef struct {
    int layer, k, n_expert;
    int32_t *experts;   /* [n_tok][k] */
    float *weights;     /* [n_tok][k] */
    float *probs;       /* [n_tok][E] */
} LayerCap;

typedef struct {
    int n_tok_cap;      /* positions that fit */
    int n_layer;
    LayerCap *lay;      /* [n_layer] indexed by block; k == 0 until seen */
    int fail;
} Capture;

static void cap_on_routing(void *user, const MsRoutingEvent *ev)
{
    Capture *c = user;
    if (ev->layer < 0 || ev->layer >= c->n_layer) return;
    LayerCap *lc = &c->lay[ev->layer];
    if (!lc->k) {
        lc->k = ev->k;
        lc->n_expert = ev->n_expert;
        lc->layer = ev->layer;
        lc->experts = calloc((size_t)c->n_tok_cap * (size_t)ev->k, sizeof *lc->experts);
        lc->weights = calloc((size_t)c->n_tok_cap * (size_t)ev->k, sizeof *lc->weights);
        lc->probs = calloc((size_t)c->n_tok_cap * (size_t)ev->n_expert, sizeof *lc->probs);
        if (!lc->experts || !lc->weights || !lc->probs) c->fail = 1;
    }
    if (c->fail || lc->k != ev->k || lc->n_expert != ev->n_expert) {
        c->fail = 1;
        return;
    }
    for (int t = 0; t < ev->n_tokens; t++) {
        int p = ev->pos[t];
        if (p < 0 || p >= c->n_tok_cap) continue;
        memcpy(lc->experts + (size_t)p * lc->k, ev->experts + (size_t)t * ev->k, (size_t)ev->k * sizeof(int32_t));
        memcpy(lc->weights + (size_t)p * lc->k, ev->weights + (size_t)t * ev->k, (size_t)ev->k * sizeof(float));
        memcpy(lc->probs + (size_t)p * lc->n_expert, ev->probs + (size_t)t * ev->n_expert,
               (size_t)ev->n_expert * sizeof(float));
    }
}

static int cap_init(Capture *c, int n_layer, int n_tok)
{
    memset(c, 0, sizeof *c);
    c->n_layer = n_layer;
    c->n_tok_cap = n_tok;
    c->lay = calloc((size_t)n_layer, sizeof *c->lay);
    return c->lay ? 0 : MS_ENOMEM;
}

static void cap_free(Capture *c)
{
    for (int l = 0; l < c->n_layer && c->lay; l++) {
        free(c->lay[l].experts);
        free(c->lay[l].weights);
        free(c->lay[l].probs);
    }
    free(c->lay);
    memset(c, 0, sizeof *c);
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
    "  -t THREADS       worker threads (default: all CPUs)\n";

/* Tiny JSON emitter: jansson escapes strings; floats are ours (shortest). */
static void put_jstr(FILE *f, const char *s, size_t n)
{
    json_t *j = json_stringn(s, n);
    char *d = j ? json_dumps(j, JSON_ENCODE_ANY) : NULL;
    fputs(d ? d : "null", f);
    free(d);
    json_decref(j);
}

static void put_jfloat(FILE *f, float v)
{
    char b[40];
    if (!isfinite(v)) {
        fputs("null", f);
        return;
    }
    ms_cli_fmt_float(b, sizeof b, v);
    fputs(b, f);
}

static const char *weights_tensor_name(const MsModelInfo *in)
{
    if (in->w_scale != 1.0f) return "ffn_moe_weights_scaled";
    if (in->norm_w) return "ffn_moe_weights_norm";
    return "ffn_moe_weights";
}

static int write_f32_file(const char *path, const float *v, size_t n, MsError *err)
{
    FILE *f = fopen(path, "wb");
    if (!f) return ms_error_set(err, MS_EIO, "%s: %s", path, strerror(errno));
    size_t w = fwrite(v, sizeof(float), n, f);
    int bad = w != n;
    if (fclose(f) != 0) bad = 1;
    if (bad) return ms_error_set(err, MS_EIO, "%s: write failed", path);
    return 0;
}

int ms_cmd_dump(int argc, char **argv)
{
    const char *cmd = "dump", *path = NULL, *pfile = NULL, *prefix = NULL;
    int n_threads = 0;
    MsCliIvSpecs ivs = { 0 };
    int rc = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        int r;
        if (ms_cli_is_help(a)) {
            fputs(dump_help, stdout);
            fputs(ms_cli_iv_help(), stdout);
            ms_cli_iv_free(&ivs);
            return 0;
        }
        if ((r = ms_cli_opt(cmd, argc, argv, &i, "--prompts", NULL, &v)) != 0) {
            if (r < 0) goto usage;
            pfile = v;
            continue;
        }
        if ((r = ms_cli_opt(cmd, argc, argv, &i, "--out", "-o", &v)) != 0) {
            if (r < 0) goto usage;
            prefix = v;
            continue;
        }
        if ((r = ms_cli_opt(cmd, argc, argv, &i, "--threads", "-t", &v)) != 0) {
            if (r < 0 || ms_cli_parse_int(cmd, "-t", v, 0, 1024, &n_threads) < 0) goto usage;
            continue;
        }
        if ((r = ms_cli_iv_opt(cmd, &ivs, argc, argv, &i)) != 0) {
            if (r < 0) goto usage;
            continue;
        }
        if (ms_cli_model_arg(cmd, a, &path) < 0) goto usage;
    }
    if (!path || !pfile || !prefix) {
        ms_cli_usage(cmd, "%s", !path ? "missing MODEL" : !pfile ? "--prompts FILE is required" : "--out PREFIX is required");
        goto usage;
    }

    MsError err = { 0 };
    MsPrompt *pr = NULL;
    size_t npr = 0;
    if (ms_prompts_read(pfile, &pr, &npr, &err) < 0) {
        ms_cli_iv_free(&ivs);
        return ms_cli_fail_err(cmd, &err);
    }
    if (npr == 0) {
        ms_prompts_free(pr, npr);
        ms_cli_iv_free(&ivs);
        return ms_cli_fail(cmd, "%s: no prompts", pfile);
    }
    MsModel *m = ms_cli_load_model(cmd, path);
    if (!m) {
        ms_prompts_free(pr, npr);
        ms_cli_iv_free(&ivs);
        return 1;
    }
    const MsModelInfo *in = ms_model_info(m);
    const MsTokenizer *tok = ms_model_tokenizer(m);
    MsIntervention *iv = NULL;
    int32_t **toks = calloc(npr, sizeof *toks);
    int *ntok = calloc(npr, sizeof *ntok);
    MsContext *ctx = NULL;
    FILE *jf = NULL;
    float *logits = NULL;
    char *jpath = NULL, *fpath = NULL;
    size_t plen = strlen(prefix) + 64;
    jpath = malloc(plen);
    fpath = malloc(plen);
    if (!toks || !ntok || !jpath || !fpath) {
        rc = ms_cli_fail(cmd, "out of memory");
        goto done;
    }
    if (ms_cli_iv_build(cmd, &ivs, in->n_layer, in->n_expert, &iv) < 0) {
        rc = 2;
        goto done;
    }
    int max_tok = 1;
    for (size_t i = 0; i < npr; i++) {
        json_t *js = json_stringn(pr[i].text, pr[i].len);   /* the JSON needs UTF-8 text */
        if (!js) {
            rc = ms_cli_fail(cmd, "%s:%d: prompt is not valid UTF-8", pfile, pr[i].line);
            goto done;
        }
        json_decref(js);
        ntok[i] = ms_tokenizer_encode(tok, pr[i].text, pr[i].len, true, &toks[i], &err);
        if (ntok[i] < 0) {
            ms_error_prefix(&err, "%s:%d: ", pfile, pr[i].line);
            rc = ms_cli_fail_err(cmd, &err);
            ntok[i] = 0;
            goto done;
        }
        if (ntok[i] == 0) {
            rc = ms_cli_fail(cmd, "%s:%d: prompt has no tokens", pfile, pr[i].line);
            goto done;
        }
        if (ntok[i] > max_tok) max_tok = ntok[i];
    }
    MsContextParams cp = ms_context_default_params();
    cp.n_ctx = max_tok;
    cp.n_batch = max_tok;   /* the whole prompt in one micro-batch, as the references */
    cp.n_threads = n_threads;
    cp.kv_type = MS_KV_F32;
    ctx = ms_context_new(m, &cp, &err);
    if (!ctx) {
        rc = ms_cli_fail_path(cmd, path, &err);
        goto done;
    }
    if (iv && ms_context_set_intervention(ctx, iv, &err) < 0) {
        rc = ms_cli_fail_err(cmd, &err);
        goto done;
    }
    logits = malloc((size_t)max_tok * (size_t)in->n_vocab * sizeof *logits);
    if (!logits) {
        rc = ms_cli_fail(cmd, "out of memory (logits of %d tokens)", max_tok);
        goto done;
    }
    snprintf(jpath, plen, "%s.json", prefix);
    jf = fopen(jpath, "w");
    if (!jf) {
        rc = ms_cli_fail(cmd, "%s: %s", jpath, strerror(errno));
        goto done;
    }
    char *pcopy = strdup(path);
    fputs("{\"model\":", jf);
    put_jstr(jf, pcopy ? basename(pcopy) : path, strlen(pcopy ? basename(pcopy) : path));
    free(pcopy);
    fprintf(jf, ",\"producer\":\"moescope %s\",\"arch\":", MS_VERSION);
    put_jstr(jf, in->arch_name, strlen(in->arch_name));
    fprintf(jf, ",\"n_vocab\":%d,\"n_layer\":%d,\"n_expert\":%d,\"n_expert_used\":%d,\"add_bos\":%s",
            in->n_vocab, in->n_layer, in->n_expert, in->n_expert_used,
            ms_tokenizer_add_bos(tok) ? "true" : "false");
    fprintf(jf, ",\"weights_tensor\":\"%s\"", weights_tensor_name(in));
    fprintf(jf, ",\"settings\":{\"n_threads\":%d,\"kv_cache_type\":\"f32\",\"flash_attn\":false,"
                "\"batch\":\"all prompt tokens in one ms_context_eval call (one micro-batch), logits at every position\","
                "\"add_special\":true,\"parse_special\":false",
            n_threads);
    if (iv) {
        char *s = ms_intervention_to_string(iv);
        fputs(",\"interventions\":", jf);
        put_jstr(jf, s ? s : "", s ? strlen(s) : 0);
        free(s);
    }
    fputs("},\"prompts\":[", jf);
    for (size_t i = 0; i < npr && rc == 0; i++) {
        Capture cap;
        if (cap_init(&cap, in->n_layer, ntok[i]) < 0) {
            rc = ms_cli_fail(cmd, "out of memory");
            break;
        }
        MsObserver obs = { .on_routing = cap_on_routing, .user = &cap };
        ms_context_reset(ctx);
        ms_context_set_observer(ctx, &obs);
        if (ms_context_eval(ctx, toks[i], ntok[i], logits, true, &err) < 0) {
            ms_error_prefix(&err, "%s:%d: ", pfile, pr[i].line);
            rc = ms_cli_fail_err(cmd, &err);
            cap_free(&cap);
            break;
        }
        ms_context_set_observer(ctx, NULL);
        if (cap.fail) {
            rc = ms_cli_fail(cmd, "out of memory or inconsistent routing events");
            cap_free(&cap);
            break;
        }
        snprintf(fpath, plen, "%s.p%zu.f32", prefix, i);
        if (write_f32_file(fpath, logits, (size_t)ntok[i] * (size_t)in->n_vocab, &err) < 0) {
            rc = ms_cli_fail_err(cmd, &err);
            cap_free(&cap);
            break;
        }
        fputs(i ? ",{\"text\":" : "{\"text\":", jf);
        put_jstr(jf, pr[i].text, pr[i].len);
        if (pr[i].labels_json) fprintf(jf, ",\"labels\":%s", pr[i].labels_json);
        fputs(",\"tokens\":[", jf);
        for (int t = 0; t < ntok[i]; t++) fprintf(jf, t ? ",%d" : "%d", toks[i][t]);
        fputs("],\"routing\":[", jf);
        int first = 1;
        for (int l = 0; l < in->n_layer; l++) {
            LayerCap *lc = &cap.lay[l];
            if (!lc->k) continue;
            fprintf(jf, "%s{\"layer\":%d,\"experts\":[", first ? "" : ",", l);
            first = 0;
            for (int t = 0; t < ntok[i]; t++) {
                fputs(t ? ",[" : "[", jf);
                for (int k = 0; k < lc->k; k++) fprintf(jf, k ? ",%d" : "%d", lc->experts[(size_t)t * lc->k + k]);
                fputc(']', jf);
            }
            fputs("],\"weights\":[", jf);
            for (int t = 0; t < ntok[i]; t++) {
                fputs(t ? ",[" : "[", jf);
                for (int k = 0; k < lc->k; k++) {
                    if (k) fputc(',', jf);
                    put_jfloat(jf, lc->weights[(size_t)t * lc->k + k]);
                }
                fputc(']', jf);
            }
            fputs("],\"probs\":[", jf);
            for (int t = 0; t < ntok[i]; t++) {
                fputs(t ? ",[" : "[", jf);
                for (int e = 0; e < lc->n_expert; e++) {
                    if (e) fputc(',', jf);
                    put_jfloat(jf, lc->probs[(size_t)t * lc->n_expert + e]);
                }
                fputc(']', jf);
            }
            fputs("]}", jf);
        }
        char *base = strdup(fpath);
        fputs("],\"logits\":", jf);
        put_jstr(jf, base ? basename(base) : fpath, strlen(base ? basename(base) : fpath));
        free(base);
        fputc('}', jf);
        cap_free(&cap);
    }
    fputs("]}\n", jf);
done:
    if (jf && fclose(jf) != 0 && rc == 0) rc = ms_cli_fail(cmd, "%s: write failed", jpath);
    free(logits);
    ms_context_free(ctx);
    ms_intervention_free(iv);
    for (size_t i = 0; toks && i < npr; i++) free(toks[i]);
    free(toks);
    free(ntok);
    free(jpath);
    free(fpath);
    ms_model_free(m);
    ms_prompts_free(pr, npr);
    ms_cli_iv_free(&ivs);
    return rc;
usage:
    ms_cli_iv_free(&ivs);
    return 2;
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
    "  -n N               tokens to generate (default 32)\n"
    "  --temp T           temperature; 0 = greedy (default 0)\n"
    "  --top-p P          nucleus sampling threshold (default 1 = off)\n"
    "  --seed S           sampler seed (default 0)\n"
    "  --routing          after the text, print a table: per token (prompt and\n"
    "                     generated) and MoE layer, the selected experts and weights\n"
    "  -t THREADS         worker threads (default: all CPUs)\n";

typedef struct {
    int pos, layer, k;
    int32_t *ids;
    float *w;
} RouteRec;

typedef struct {
    RouteRec *v;
    size_t n, cap;
    int fail;
} RouteLog;

static void log_on_routing(void *user, const MsRoutingEvent *ev)
{
    RouteLog *lg = user;
    for (int t = 0; t < ev->n_tokens && !lg->fail; t++) {
        if (lg->n == lg->cap) {
            size_t nc = lg->cap ? lg->cap * 2 : 256;
            RouteRec *nv = realloc(lg->v, nc * sizeof *nv);
            if (!nv) { lg->fail = 1; return; }
            lg->v = nv;
            lg->cap = nc;
        }
        RouteRec *r = &lg->v[lg->n];
        r->pos = ev->pos[t];
        r->layer = ev->layer;
        r->k = ev->k;
        r->ids = malloc((size_t)ev->k * sizeof *r->ids);
        r->w = malloc((size_t)ev->k * sizeof *r->w);
        if (!r->ids || !r->w) {
            free(r->ids);
            free(r->w);
            lg->fail = 1;
            return;
        }
        memcpy(r->ids, ev->experts + (size_t)t * ev->k, (size_t)ev->k * sizeof *r->ids);
        memcpy(r->w, ev->weights + (size_t)t * ev->k, (size_t)ev->k * sizeof *r->w);
        lg->n++;
    }
}

static int rec_cmp(const void *a, const void *b)
{
    const RouteRec *x = a, *y = b;
    if (x->pos != y->pos) return x->pos < y->pos ? -1 : 1;
    return (x->layer > y->layer) - (x->layer < y->layer);
}

static void print_routing(RouteLog *lg, const MsTokenizer *tok, const int32_t *ids, int n)
{
    qsort(lg->v, lg->n, sizeof *lg->v, rec_cmp);
    printf("\n\nrouting (pos token 'piece' | layer: expert:weight ...)\n");
    size_t r = 0;
    for (int p = 0; p < n; p++) {
        char pb[64];
        int pl = ms_tokenizer_piece(tok, ids[p], pb, sizeof pb);
        printf("%5d %6d '", p, ids[p]);
        if (pl > 0) print_escaped(pb, (size_t)MS_MIN(pl, (int)sizeof pb));
        putchar('\'');
        while (r < lg->n && lg->v[r].pos < p) r++;
        if (r >= lg->n || lg->v[r].pos != p) printf(" | (last token: not evaluated)");
        for (; r < lg->n && lg->v[r].pos == p; r++) {
            printf(" | L%d:", lg->v[r].layer);
            for (int k = 0; k < lg->v[r].k; k++) printf(" %d:%.3f", lg->v[r].ids[k], (double)lg->v[r].w[k]);
        }
        putchar('\n');
    }
}

static void routelog_free(RouteLog *lg)
{
    for (size_t i = 0; i < lg->n; i++) {
        free(lg->v[i].ids);
        free(lg->v[i].w);
    }
    free(lg->v);
}

int ms_cmd_generate(int argc, char **argv)
{
    const char *cmd = "generate", *path = NULL, *prompt = NULL;
    int n_gen = 32, n_threads = 0;
    float temp = 0.0f, top_p = 1.0f;
    uint64_t seed = 0;
    bool routing = false;
    MsCliIvSpecs ivs = { 0 };
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        int r;
        if (ms_cli_is_help(a)) {
            fputs(generate_help, stdout);
            fputs(ms_cli_iv_help(), stdout);
            ms_cli_iv_free(&ivs);
            return 0;
        }
        if (!strcmp(a, "--routing")) { routing = true; continue; }
        if ((r = ms_cli_opt(cmd, argc, argv, &i, "--prompt", "-p", &v)) != 0) {
            if (r < 0) goto usage;
            prompt = v;
            continue;
        }
        if ((r = ms_cli_opt(cmd, argc, argv, &i, "--n-predict", "-n", &v)) != 0) {
            if (r < 0 || ms_cli_parse_int(cmd, "-n", v, 0, 1 << 20, &n_gen) < 0) goto usage;
            continue;
        }
        if ((r = ms_cli_opt(cmd, argc, argv, &i, "--threads", "-t", &v)) != 0) {
            if (r < 0 || ms_cli_parse_int(cmd, "-t", v, 0, 1024, &n_threads) < 0) goto usage;
            continue;
        }
        if ((r = ms_cli_opt(cmd, argc, argv, &i, "--temp", NULL, &v)) != 0) {
            if (r < 0 || ms_cli_parse_float(cmd, "--temp", v, 0.0, 100.0, &temp) < 0) goto usage;
            continue;
        }
        if ((r = ms_cli_opt(cmd, argc, argv, &i, "--top-p", NULL, &v)) != 0) {
            if (r < 0 || ms_cli_parse_float(cmd, "--top-p", v, 0.0, 1.0, &top_p) < 0) goto usage;
            if (top_p <= 0.0f) {
                ms_cli_usage(cmd, "--top-p must be > 0");
                goto usage;
            }
            continue;
        }
        if ((r = ms_cli_opt(cmd, argc, argv, &i, "--seed", "-s", &v)) != 0) {
            if (r < 0 || ms_cli_parse_u64(cmd, "--seed", v, &seed) < 0) goto usage;
            continue;
        }
        if ((r = ms_cli_iv_opt(cmd, &ivs, argc, argv, &i)) != 0) {
            if (r < 0) goto usage;
            continue;
        }
        if (ms_cli_model_arg(cmd, a, &path) < 0) goto usage;
    }
    if (!path || !prompt) {
        ms_cli_usage(cmd, "%s", !path ? "missing MODEL" : "missing -p TEXT");
        goto usage;
    }

    MsError err = { 0 };
    int rc = 0;
    MsModel *m = ms_cli_load_model(cmd, path);
    if (!m) {
        ms_cli_iv_free(&ivs);
        return 1;
    }
    const MsModelInfo *in = ms_model_info(m);
    const MsTokenizer *tok = ms_model_tokenizer(m);
    MsIntervention *iv = NULL;
    MsContext *ctx = NULL;
    MsSampler *smp = NULL;
    int32_t *ids = NULL, *all = NULL;
    float *logits = NULL;
    RouteLog lg = { 0 };
    int n_all = 0;
    if (ms_cli_iv_build(cmd, &ivs, in->n_layer, in->n_expert, &iv) < 0) {
        rc = 2;
        goto done;
    }
    int n = ms_tokenizer_encode(tok, prompt, strlen(prompt), true, &ids, &err);
    if (n < 0) {
        rc = ms_cli_fail_err(cmd, &err);
        goto done;
    }
    if (n == 0) {
        rc = ms_cli_fail(cmd, "the prompt has no tokens");
        goto done;
    }
    MsContextParams cp = ms_context_default_params();
    cp.n_ctx = n + n_gen;
    cp.n_threads = n_threads;
    ctx = ms_context_new(m, &cp, &err);
    if (!ctx) {
        rc = ms_cli_fail_path(cmd, path, &err);
        goto done;
    }
    if (iv && ms_context_set_intervention(ctx, iv, &err) < 0) {
        rc = ms_cli_fail_err(cmd, &err);
        goto done;
    }
    if (routing) {
        MsObserver obs = { .on_routing = log_on_routing, .user = &lg };
        ms_context_set_observer(ctx, &obs);
    }
    smp = ms_sampler_new(temp, top_p, seed);
    logits = malloc((size_t)in->n_vocab * sizeof *logits);
    all = malloc((size_t)(n + n_gen) * sizeof *all);
    if (!smp || !logits || !all) {
        rc = ms_cli_fail(cmd, "out of memory");
        goto done;
    }
    memcpy(all, ids, (size_t)n * sizeof *all);
    n_all = n;
    if (ms_context_eval(ctx, ids, n, logits, false, &err) < 0) {
        rc = ms_cli_fail_err(cmd, &err);
        goto done;
    }
    for (int g = 0; g < n_gen; g++) {
        int32_t id = ms_sampler_sample(smp, logits, in->n_vocab);
        if (id < 0 || id >= in->n_vocab) {
            rc = ms_cli_fail(cmd, "sampler returned an invalid token %d", id);
            goto done;
        }
        if (ms_tokenizer_is_eog(tok, id)) break;
        all[n_all++] = id;
        char pb[256];
        int pl = ms_tokenizer_piece(tok, id, pb, sizeof pb);
        if (pl > 0) fwrite(pb, 1, (size_t)MS_MIN(pl, (int)sizeof pb), stdout);
        fflush(stdout);
        if (g + 1 == n_gen && !routing) break;   /* the last token only matters for its routing */
        if (ms_context_eval(ctx, &id, 1, logits, false, &err) < 0) {
            rc = ms_cli_fail_err(cmd, &err);
            goto done;
        }
    }
    if (routing) {
        if (lg.fail) rc = ms_cli_fail(cmd, "out of memory recording routing");
        else print_routing(&lg, tok, all, n_all);
    } else {
        putchar('\n');
    }
done:
    routelog_free(&lg);
    free(all);
    free(logits);
    free(ids);
    ms_sampler_free(smp);
    ms_context_free(ctx);
    ms_intervention_free(iv);
    ms_model_free(m);
    ms_cli_iv_free(&ivs);
    return rc;
usage:
    ms_cli_iv_free(&ivs);
    return 2;
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
    "  --ctx N      chunk length in tokens (default 512, at least 4)\n"
    "  -t THREADS   worker threads (default: all CPUs)\n";

int ms_cmd_perplexity(int argc, char **argv)
{
    const char *cmd = "perplexity", *path = NULL, *file = NULL;
    int n_ctx = 512, n_threads = 0;
    MsCliIvSpecs ivs = { 0 };
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        int r;
        if (ms_cli_is_help(a)) {
            fputs(perplexity_help, stdout);
            fputs(ms_cli_iv_help(), stdout);
            ms_cli_iv_free(&ivs);
            return 0;
        }
        if ((r = ms_cli_opt(cmd, argc, argv, &i, "--file", "-f", &v)) != 0) {
            if (r < 0) goto usage;
            file = v;
            continue;
        }
        if ((r = ms_cli_opt(cmd, argc, argv, &i, "--ctx", "-c", &v)) != 0) {
            if (r < 0 || ms_cli_parse_int(cmd, "--ctx", v, 4, 1 << 20, &n_ctx) < 0) goto usage;
            continue;
        }
        if ((r = ms_cli_opt(cmd, argc, argv, &i, "--threads", "-t", &v)) != 0) {
            if (r < 0 || ms_cli_parse_int(cmd, "-t", v, 0, 1024, &n_threads) < 0) goto usage;
            continue;
        }
        if ((r = ms_cli_iv_opt(cmd, &ivs, argc, argv, &i)) != 0) {
            if (r < 0) goto usage;
            continue;
        }
        if (ms_cli_model_arg(cmd, a, &path) < 0) goto usage;
    }
    if (!path || !file) {
        ms_cli_usage(cmd, "%s", !path ? "missing MODEL" : "--file F is required");
        goto usage;
    }

    MsError err = { 0 };
    int rc = 0;
    char *text = NULL;
    size_t tlen = 0;
    if (ms_cli_read_file(file, &text, &tlen, &err) < 0) {
        ms_cli_iv_free(&ivs);
        return ms_cli_fail_err(cmd, &err);
    }
    MsModel *m = ms_cli_load_model(cmd, path);
    if (!m) {
        free(text);
        ms_cli_iv_free(&ivs);
        return 1;
    }
    const MsModelInfo *in = ms_model_info(m);
    const MsTokenizer *tok = ms_model_tokenizer(m);
    MsIntervention *iv = NULL;
    MsContext *ctx = NULL;
    int32_t *ids = NULL, *chunk = NULL;
    float *logits = NULL;
    if (ms_cli_iv_build(cmd, &ivs, in->n_layer, in->n_expert, &iv) < 0) {
        rc = 2;
        goto done;
    }
    int n = ms_tokenizer_encode(tok, text, tlen, false, &ids, &err);
    if (n < 0) {
        ms_error_prefix(&err, "%s: ", file);
        rc = ms_cli_fail_err(cmd, &err);
        goto done;
    }
    if (n < 4) {
        rc = ms_cli_fail(cmd, "%s: too short (%d tokens; at least 4 needed)", file, n);
        goto done;
    }
    int cl = n < n_ctx ? n : n_ctx;
    int n_chunk = n / cl;
    MsContextParams cp = ms_context_default_params();
    cp.n_ctx = cl;
    cp.n_threads = n_threads;
    ctx = ms_context_new(m, &cp, &err);
    if (!ctx) {
        rc = ms_cli_fail_path(cmd, path, &err);
        goto done;
    }
    if (iv && ms_context_set_intervention(ctx, iv, &err) < 0) {
        rc = ms_cli_fail_err(cmd, &err);
        goto done;
    }
    logits = malloc((size_t)cl * (size_t)in->n_vocab * sizeof *logits);
    chunk = malloc((size_t)cl * sizeof *chunk);
    if (!logits || !chunk) {
        rc = ms_cli_fail(cmd, "out of memory (logits of %d tokens)", cl);
        goto done;
    }
    int32_t bos = ms_tokenizer_bos(tok);
    bool use_bos = ms_tokenizer_add_bos(tok) && bos >= 0;
    double nll = 0.0;
    long scored = 0;
    int first = cl / 2;
    for (int c = 0; c < n_chunk; c++) {
        memcpy(chunk, ids + (size_t)c * cl, (size_t)cl * sizeof *chunk);
        if (use_bos) chunk[0] = bos;
        ms_context_reset(ctx);
        if (ms_context_eval(ctx, chunk, cl, logits, true, &err) < 0) {
            rc = ms_cli_fail_err(cmd, &err);
            goto done;
        }
        for (int j = first; j < cl - 1; j++) {
            nll -= (double)ms_logprob(logits + (size_t)j * in->n_vocab, in->n_vocab, chunk[j + 1]);
            scored++;
        }
    }
    double ppl = exp(nll / (double)scored);
    if (!isfinite(ppl)) {
        rc = ms_cli_fail(cmd, "%s: perplexity is not finite (mean NLL %g)", file, nll / (double)scored);
        goto done;
    }
    printf("PPL = %.4f  tokens = %ld  chunks = %d  ctx = %d  (%d tokens in file)\n", ppl, scored, n_chunk, cl, n);
done:
    free(chunk);
    free(logits);
    free(ids);
    free(text);
    ms_context_free(ctx);
    ms_intervention_free(iv);
    ms_model_free(m);
    ms_cli_iv_free(&ivs);
    return rc;
usage:
    ms_cli_iv_free(&ivs);
    return 2;
}
