/* cmd-experiment.c — `moescope experiment` (ms_experiment_job_run) and
 * `moescope compare` (ms_compare_report): options in, library call, output. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli-util.h"
#include "commands.h"
#include "jobs.h"

static const char experiment_help[] =
    "usage: moescope experiment MODEL --prompts FILE --db DB (--interventions FILE | operators)\n"
    "                           [--gen N] [--temp T] [--seed S] [--resume] [--shard I/N]\n"
    "                           [-t THREADS]\n"
    "\n"
    "Run the baseline and the intervened model on the same prompts and store both\n"
    "as traces in DB (kinds 'baseline' and 'intervened', linked by parent_run),\n"
    "then print both run ids.  Per prompt the baseline reads the prompt and\n"
    "continues it for N tokens (greedy unless --temp); the intervened model is\n"
    "teacher-forced on exactly those tokens, so every position aligns, and its\n"
    "next-token distribution is compared with the baseline's as it is computed\n"
    "(KL, log-probs, greedy choices, routing: tables an_compare_*; see\n"
    "docs/experiments.md).  With --gen N the intervened model also continues the\n"
    "prompt freely, so the two continuations can be read side by side.  Each\n"
    "prompt of both runs is one transaction; Ctrl+C keeps what is committed and\n"
    "--resume completes the pair.  Read the result with `moescope compare`.\n"
    "\n"
    "  --prompts FILE  plain text (one prompt per line) or JSONL with \"text\"\n"
    "  --db DB         the trace database (created if missing)\n"
    "  --gen N         continuation tokens (default 0: the prompts only)\n"
    "  --no-free-gen   with --gen: skip the intervened model's free continuation\n"
    "  --temp T        sample both continuations at temperature T (same seed)\n"
    "  --seed S        sampler seed (default 0)\n"
    "  --probs         also store router probabilities in both traces\n"
    "  --stats         also store expert output statistics in both traces\n"
    "  --resume        complete the latest matching pair of runs\n"
    "  --shard I/N     only shard I of N (1 <= I <= N): the prompts whose 0-based\n"
    "                  index modulo N is I - 1.  N workers with the same options\n"
    "                  (on one machine or several, one --db, e.g. a PostgreSQL URI)\n"
    "                  fill one pair of runs; a restarted worker skips the prompts\n"
    "                  already compared; each prompt records its worker\n"
    "  -t THREADS      worker threads (default: all CPUs)\n"
    MS_CLI_WEIGHTS_HELP
    "  --batch N       tokens per prefill chunk (default 256)\n";

int ms_cmd_experiment(int argc, char **argv)
{
    const char *cmd = "experiment", *dbpath = NULL, *shard = NULL;
    bool no_free = false;
    MsExperimentJob j;
    ms_experiment_job_init(&j);
    MsCliCommon c = { .groups = MS_CLI_G_MODEL | MS_CLI_G_THREADS | MS_CLI_G_PROMPTS | MS_CLI_G_IV };
    const MsCliOpt opts[] = {
        { "--db", NULL, MS_OPT_STR, &dbpath, 0, 0 },
        { "--gen", "-n", MS_OPT_INT, &j.n_gen, 0, 1 << 16 },
        { "--temp", NULL, MS_OPT_FLOAT, &j.temp, 0.0, 100.0 },
        { "--seed", "-s", MS_OPT_U64, &j.seed, 0, 0 },
        { "--batch", NULL, MS_OPT_INT, &j.n_batch, 1, 1 << 16 },
        { "--no-free-gen", NULL, MS_OPT_FLAG, &no_free, 0, 0 },
        { "--probs", NULL, MS_OPT_FLAG, &j.probs, 0, 0 },
        { "--stats", NULL, MS_OPT_FLAG, &j.stats, 0, 0 },
        { "--resume", NULL, MS_OPT_FLAG, &j.resume, 0, 0 },
        { "--shard", NULL, MS_OPT_STR, &shard, 0, 0 },
        { 0 },
    };
    int rc = ms_cli_parse(cmd, argc, argv, opts, &c, experiment_help);
    if (!rc && !dbpath) rc = ms_cli_usage(cmd, "--db DB is required");
    if (!rc && shard) rc = ms_cli_shard(cmd, shard, &j.shard_i, &j.shard_n);
    /* who wrote each prompt: this host and process (and shard) */
    char worker[320];
    ms_cli_worker_name(worker, sizeof worker, j.shard_i, j.shard_n);
    j.worker = worker;
    if (!rc && c.ivs.n == 0) rc = ms_cli_usage(cmd, "no intervention: give --interventions FILE or operators such as --silence L:E");
    if (rc) {
        ms_cli_common_free(&c);
        return ms_cli_exit(rc);
    }
    j.free_gen = !no_free;
    j.prompts_name = c.prompts;
    j.n_threads = c.n_threads;
    MsError err = { 0 };
    MsPrompt *pr = NULL;
    size_t npr = 0;
    MsModel *m = NULL;
    MsIntervention *iv = NULL;
    MsTraceDb *db = NULL;
    if ((rc = ms_cli_read_prompts(cmd, c.prompts, &pr, &npr)) != 0 || (rc = ms_cli_common_load(cmd, &c, &m, &iv)) != 0)
        goto done;
    if (npr == 0) {
        rc = ms_cli_fail(cmd, "%s: no prompts", c.prompts);
        goto done;
    }
    /* allowed, as a null control (the pair must come out identical), but
     * said: an empty plan or file is more often a mistake */
    if (!iv || ms_intervention_is_empty(iv))
        fprintf(stderr, "moescope %s: note: the interventions given change nothing, so the intervened run will "
                "equal its baseline (a null control)\n", cmd);
    const MsModelInfo *in = ms_model_info(m);
    if (iv && ms_intervention_validate(iv, in->n_layer, in->n_expert, in->n_expert_used, &err) < 0) {
        rc = ms_cli_fail_err(cmd, &err);
        goto done;
    }
    const bool existed = ms_cli_db_exists(dbpath);
    if (!(db = ms_trace_open(dbpath, MS_TRACE_CREATE, &err))) {
        rc = ms_cli_fail_err(cmd, &err);
        goto done;
    }
    MsCliBar bar;
    ms_cli_bar_init(&bar, "prompts");
    j.progress = ms_cli_bar_progress;
    j.progress_user = &bar;
    j.iv = iv;
    MsCancel cancel;
    ms_cancel_init(&cancel);
    j.cancel = &cancel;
    ms_cli_sigint_cancel(&cancel);
    MsExperimentResult res;
    int jr = ms_experiment_job_run(&j, m, c.model, pr, npr, db, &res, &err);
    ms_cli_sigint_restore();
    if (jr == MS_ECANCELLED) {
        if (bar.tty) fputc('\n', stderr);
        fprintf(stderr, "moescope experiment: interrupted: %zu of %zu prompts of runs %lld and %lld committed; "
                "run the same command with --resume to complete them\n", res.n_written + res.n_skipped, res.n_prompts,
                (long long)res.baseline_run, (long long)res.run);
        rc = 130;
    } else if (jr < 0) {
        rc = ms_cli_fail_err(cmd, &err);
        if (!existed && res.n_written == 0) ms_cli_drop_new_db(&db, dbpath);   /* refused input */
    } else {
        printf("baseline run %lld, intervened run %lld: %zu prompts (%zu written, %zu already present)\n",
               (long long)res.baseline_run, (long long)res.run, res.n_prompts, res.n_written, res.n_skipped);
        printf("compare them: moescope compare --db %s --baseline %lld --run %lld\n", dbpath,
               (long long)res.baseline_run, (long long)res.run);
    }
done:
    ms_trace_close(db);
    ms_intervention_free(iv);
    ms_model_free(m);
    ms_prompts_free(pr, npr);
    ms_cli_common_free(&c);
    return rc;
}

/* --------------------------------------------------------------- compare */

static const char compare_help[] =
    "usage: moescope compare --db DB --baseline RUN --run RUN [--format table|json|csv]\n"
    "                        [--prompts N]\n"
    "\n"
    "What changed between a baseline run and another run of the same model on the\n"
    "same prompts: per prompt and overall, the mean and max KL(baseline || run) of\n"
    "the next-token distributions, top-1 (greedy) agreement, the perplexity of both\n"
    "and the mean change of the reference tokens' log-probs, the first position\n"
    "where the greedy choices diverge, the two continuations side by side with a\n"
    "word-level diff, and the routing shift per layer (share of positions whose\n"
    "selected set changed, mean Jaccard overlap of the sets).  Runs made by\n"
    "`moescope experiment` carry every figure; two other runs are compared from\n"
    "their traces over each prompt's common prefix, without KL and agreement.\n"
    "\n"
    "  --db DB          the trace database\n"
    "  --baseline RUN   the baseline run id\n"
    "  --run RUN        the run to compare with it\n"
    "  --format F       table (default), json or csv (one row per prompt: index,\n"
    "                   n_tokens, n_prompt_tokens, n_scored, kl_mean, kl_max,\n"
    "                   top1_agreement, ppl_baseline, ppl_run, first_divergence;\n"
    "                   an empty field is a value these runs do not have)\n"
    "  --prompts N      table: show the continuations of the first N prompts (default 5)\n";

static json_t *jreal(double v) { return isfinite(v) ? json_real(v) : json_null(); }

static json_t *shift_json(const MsCompareLayer *lay, int n)
{
    json_t *a = json_array();
    for (int l = 0; l < n; l++) {
        double np = lay[l].n_pos;
        json_array_append_new(a, json_pack("{s:i, s:o, s:o, s:i}", "layer", lay[l].layer, "changed_share",
                                           jreal(np > 0 ? lay[l].n_changed / np : NAN), "jaccard_mean",
                                           jreal(np > 0 ? lay[l].jaccard_sum / np : NAN), "n_positions", (int)np));
    }
    return a;
}

static json_t *diff_json(const char *a, const char *b)
{
    MsDiffPiece *d = NULL;
    int n = 0;
    json_t *arr = json_array();
    if (ms_word_diff(a, b, &d, &n) < 0) return arr;
    static const char *const ops[] = { "same", "del", "ins" };
    for (int i = 0; i < n; i++)
        json_array_append_new(arr, json_pack("{s:s, s:s%}", "op", ops[d[i].op], "text", d[i].text, d[i].len));
    free(d);
    return arr;
}

static double ppl_of(double nll, int n) { return n > 0 ? exp(nll / n) : NAN; }

static json_t *report_json(const MsCompareReport *r)
{
    const MsCompareRows *w = &r->rows;
    json_t *prompts = json_array();
    for (int i = 0; i < w->n_prompts; i++) {
        const MsComparePrompt *p = &w->prompts[i];
        json_t *o = json_pack("{s:i, s:i, s:i, s:i, s:o, s:o, s:o, s:o, s:o, s:o}", "index", p->index, "n_tokens",
                              p->n_tokens, "n_prompt_tokens", p->n_prompt_tokens, "n_scored", p->n_scored,
                              "kl_mean", jreal(p->kl_mean),
                              "kl_max", jreal(p->kl_max), "top1_agreement",
                              jreal(r->has_distributions && p->n_tokens ? (double)p->top1_agree / p->n_tokens : NAN),
                              "ppl_baseline", jreal(ppl_of(p->nll_baseline, p->n_scored)), "ppl_run",
                              jreal(ppl_of(p->nll_run, p->n_scored)), "dlogprob_mean",
                              jreal(p->n_scored ? (p->nll_baseline - p->nll_run) / p->n_scored : NAN));
        json_object_set_new(o, "first_divergence", p->first_divergence >= 0 ? json_integer(p->first_divergence) : json_null());
        json_object_set_new(o, "text_baseline", json_string(p->text_baseline ? p->text_baseline : ""));
        json_object_set_new(o, "text_run", json_string(p->text_run ? p->text_run : ""));
        json_object_set_new(o, "diff", diff_json(p->text_baseline, p->text_run));
        json_object_set_new(o, "routing_shift", shift_json(w->prompt_layers + (size_t)i * w->n_layers, w->n_layers));
        json_array_append_new(prompts, o);
    }
    json_t *ov = json_pack("{s:i, s:I, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:i, s:b}", "n_prompts", r->n_prompts,
                           "n_positions", (json_int_t)r->n_positions, "kl_mean", jreal(r->kl_mean), "kl_max",
                           jreal(r->kl_max), "top1_agreement", jreal(r->top1_agreement), "ppl_baseline",
                           jreal(r->ppl_baseline), "ppl_run", jreal(r->ppl_run), "dlogprob_mean",
                           jreal(r->dlogprob_mean), "first_divergence_mean", jreal(r->first_divergence_mean),
                           "n_diverged", r->n_diverged, "has_distributions", r->has_distributions);
    json_object_set_new(ov, "routing_shift", shift_json(w->layers, w->n_layers));
    return json_pack("{s:I, s:I, s:o, s:o}", "baseline", (json_int_t)r->baseline_run, "run", (json_int_t)r->run,
                     "prompts", prompts, "overall", ov);
}

/* bytes beyond the first of each UTF-8 character: printf pads by bytes */
static int utf8_extra(const char *s) { return (int)(strlen(s) - ms_cli_text_width(s)); }

static void print_num(const char *label, double v, const char *fmt)
{
    printf("  %-*s ", 22 + utf8_extra(label), label);
    if (isfinite(v)) printf(fmt, v);
    else printf("-");
    putchar('\n');
}

/* text on one line: newlines and other control characters escaped */
static void put_escaped(const char *s, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        unsigned char ch = (unsigned char)s[k];
        if (ch == '\n') fputs("\\n", stdout);
        else if (ch < 0x20) printf("\\x%02x", ch);
        else putchar(ch);
    }
}

/* "word [-old-]{+new+}" on one line */
static void print_diff(const char *a, const char *b)
{
    MsDiffPiece *d = NULL;
    int n = 0;
    if (ms_word_diff(a, b, &d, &n) < 0) return;
    for (int i = 0; i < n; i++) {
        if (d[i].op == MS_DIFF_DEL) fputs("[-", stdout);
        if (d[i].op == MS_DIFF_INS) fputs("{+", stdout);
        put_escaped(d[i].text, d[i].len);
        if (d[i].op == MS_DIFF_DEL) fputs("-]", stdout);
        if (d[i].op == MS_DIFF_INS) fputs("+}", stdout);
    }
    free(d);
}

static void report_table(const MsCompareReport *r, int show)
{
    const MsCompareRows *w = &r->rows;
    printf("run %lld against baseline %lld: %d prompts, %lld positions%s\n", (long long)r->run,
           (long long)r->baseline_run, r->n_prompts, (long long)r->n_positions,
           r->has_distributions ? "" : " (compared from the traces: no KL or greedy agreement)");
    print_num("KL mean", r->kl_mean, "%.6g");
    print_num("KL max", r->kl_max, "%.6g");
    print_num("top-1 agreement", r->top1_agreement, "%.4f");
    print_num("perplexity baseline", r->ppl_baseline, "%.4f");
    print_num("perplexity run", r->ppl_run, "%.4f");
    print_num("mean Δ log-prob", r->dlogprob_mean, "%+.6f");
    print_num("first divergence", r->first_divergence_mean, "%.2f (mean position)");
    printf("  %-22s %d of %d prompts\n", "diverging", r->n_diverged, r->n_prompts);
    printf("routing shift          changed   jaccard\n");
    for (int l = 0; l < w->n_layers; l++) {
        double np = w->layers[l].n_pos;
        printf("  layer %-4d             %7.4f   %7.4f\n", w->layers[l].layer, np ? w->layers[l].n_changed / np : NAN,
               np ? w->layers[l].jaccard_sum / np : NAN);
    }
    for (int i = 0; i < w->n_prompts && i < show; i++) {
        const MsComparePrompt *p = &w->prompts[i];
        printf("prompt %d: %d tokens, KL mean ", p->index, p->n_tokens);
        if (isfinite(p->kl_mean)) printf("%.4g", p->kl_mean);
        else putchar('-');
        if (p->first_divergence >= 0) printf(", first divergence %d\n", p->first_divergence);
        else fputs(", no divergence\n", stdout);
        const char *tb = p->text_baseline ? p->text_baseline : "", *tr = p->text_run ? p->text_run : "";
        fputs("  baseline: ", stdout);
        put_escaped(tb, strlen(tb));
        fputs("\n  run:      ", stdout);
        put_escaped(tr, strlen(tr));
        fputs("\n  diff:     ", stdout);
        print_diff(p->text_baseline, p->text_run);
        putchar('\n');
    }
    if (show < w->n_prompts)
        printf("(continuations of %d of %d prompts shown: --prompts N for more, --format json or csv for all)\n",
               show, w->n_prompts);
}

/* a CSV field: unknown (not finite) is empty, as null is in JSON and "-" in the table */
static void csv_num(double v, char sep)
{
    if (isfinite(v)) printf("%.9g", v);
    putchar(sep);
}

static void report_csv(const MsCompareReport *r)
{
    /* the columns and their meaning are those of --format json's prompts */
    puts("index,n_tokens,n_prompt_tokens,n_scored,kl_mean,kl_max,top1_agreement,ppl_baseline,ppl_run,"
         "first_divergence");
    for (int i = 0; i < r->rows.n_prompts; i++) {
        const MsComparePrompt *p = &r->rows.prompts[i];
        printf("%d,%d,%d,%d,", p->index, p->n_tokens, p->n_prompt_tokens, p->n_scored);
        csv_num(p->kl_mean, ',');
        csv_num(p->kl_max, ',');
        csv_num(r->has_distributions && p->n_tokens ? (double)p->top1_agree / p->n_tokens : NAN, ',');
        csv_num(ppl_of(p->nll_baseline, p->n_scored), ',');
        csv_num(ppl_of(p->nll_run, p->n_scored), ',');
        if (p->first_divergence >= 0) printf("%d", p->first_divergence);
        putchar('\n');
    }
}

int ms_cmd_compare(int argc, char **argv)
{
    const char *cmd = "compare", *dbpath = NULL, *format = "table";
    int64_t base = 0, run = 0;
    int show = 5;
    MsCliCommon c = { .groups = 0 };
    const MsCliOpt opts[] = {
        { "--db", NULL, MS_OPT_STR, &dbpath, 0, 0 },
        { "--baseline", NULL, MS_OPT_I64, &base, 1, 2147483647.0 },
        { "--run", NULL, MS_OPT_I64, &run, 1, 2147483647.0 },
        { "--format", "-f", MS_OPT_STR, &format, 0, 0 },
        { "--prompts", NULL, MS_OPT_INT, &show, 0, 1 << 30 },
        { 0 },
    };
    int rc = ms_cli_parse(cmd, argc, argv, opts, &c, compare_help);
    if (!rc && (!dbpath || !base || !run)) rc = ms_cli_usage(cmd, "--db, --baseline and --run are required");
    if (!rc && strcmp(format, "table") && strcmp(format, "json") && strcmp(format, "csv"))
        rc = ms_cli_usage(cmd, "--format must be table, json or csv (got '%s')", format);
    if (rc) return ms_cli_exit(rc);
    MsError err = { 0 };
    MsTraceDb *db = ms_trace_open(dbpath, MS_TRACE_READ, &err);
    if (!db) return ms_cli_fail_err(cmd, &err);
    MsCompareReport r;
    if (ms_compare_report(db, base, run, &r, &err) < 0) {
        rc = ms_cli_fail_err(cmd, &err);
    } else if (!strcmp(format, "json")) {
        json_t *o = report_json(&r);
        char *s = json_dumps(o, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
        if (s) puts(s);
        free(s);
        json_decref(o);
    } else if (!strcmp(format, "csv")) {
        report_csv(&r);
    } else {
        report_table(&r, show);
    }
    ms_compare_report_clear(&r);
    ms_trace_close(db);
    return rc;
}

/* ----------------------------------------------------------------- sweep */

static const char sweep_help[] =
    "usage: moescope sweep MODEL --prompts FILE (--silence-each LAYERS | --from-analysis A)\n"
    "                      [--db DB] [--run R] [--top N] [--random-controls N] [--seed S]\n"
    "                      [--gen N] [--format table|json|csv] [--shard I/N] [-t THREADS]\n"
    "\n"
    "Silence candidate experts one set at a time and measure each set's effect\n"
    "against one baseline per prompt (the model and the baseline are computed\n"
    "once): mean and max KL(baseline || silenced), the change of perplexity, top-1\n"
    "agreement and the routing shift.  Random controls of the same shape (the same\n"
    "number of experts in each layer, drawn from the experts that are not\n"
    "candidates) give the spread an effect must beat: each candidate gets a z-score\n"
    "against the controls of its shape.  Results are ranked by mean KL and, with\n"
    "--db, stored in tables sweep and sweep_candidate.\n"
    "\n"
    "  --silence-each LAYERS   each expert of these layers in turn ('1', '0,2', '1-3',\n"
    "                          or '*': every layer with experts)\n"
    "  --from-analysis A       candidates from an analysis already stored in --db:\n"
    "                          superexperts (each super expert, then all together),\n"
    "                          npmi:CLASS or riskdiff (the --top N strongest experts,\n"
    "                          then all together)\n"
    "  --run R                 the analysed run (default: the one the table holds)\n"
    "  --top N                 candidates taken from the analysis (default 8; all SEs)\n"
    "  --random-controls N     N random sets per candidate shape (default 0)\n"
    "  --seed S                seed of the controls and of sampling (default 0)\n"
    "  --gen N                 baseline continuation tokens, teacher-forced (default 0)\n"
    "  --db DB                 store the sweep here (and read --from-analysis from it)\n"
    "  --format F              table (default), json or csv\n"
    "  --shard I/N             only the sets whose 0-based number modulo N is I - 1\n"
    "                          (each over every prompt); N workers with one --db\n"
    "                          (e.g. a PostgreSQL URI) fill one sweep, the last\n"
    "                          computes the z-scores and ranks over every set; a\n"
    "                          restarted worker skips the sets already stored\n"
    "  -t THREADS              worker threads (default: all CPUs)\n"
    MS_CLI_WEIGHTS_HELP;

static json_t *sweep_json(const MsSweepResult *r)
{
    json_t *a = json_array();
    for (int i = 0; i < r->n_rows; i++) {
        const MsSweepRow *w = &r->rows[i];
        json_t *o = json_pack("{s:i, s:s, s:s, s:s, s:i, s:I, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}",
                              "cand", w->cand, "kind", w->kind, "label", w->label, "interventions", w->interventions,
                              "n_experts", w->n_experts, "n_positions", (json_int_t)w->n_positions, "kl_mean",
                              jreal(w->kl_mean), "kl_max", jreal(w->kl_max), "top1_agreement", jreal(w->top1_agreement),
                              "ppl_baseline", jreal(w->ppl_baseline), "ppl_run", jreal(w->ppl_run), "dppl",
                              jreal(w->dppl), "changed_share", jreal(w->changed_share), "jaccard_mean",
                              jreal(w->jaccard_mean), "z_kl", jreal(w->z_kl), "z_dppl", jreal(w->z_dppl));
        json_object_set_new(o, "rank", w->rank ? json_integer(w->rank) : json_null());
        json_array_append_new(a, o);
    }
    return json_pack("{s:I, s:o}", "sweep_id", (json_int_t)r->sweep_id, "sets", a);
}

static void sweep_table(const MsSweepResult *r)
{
    int wd = 9;   /* Δppl of a model with a large perplexity is wider than 9 */
    for (int i = 0; i < r->n_rows; i++) wd = MS_MAX(wd, snprintf(NULL, 0, "%+.4f", r->rows[i].dppl));
    printf("%4s  %-28s %9s %9s %7s %*s %8s %7s\n", "rank", "set", "kl_mean", "kl_max", "top1", wd + utf8_extra("Δppl"),
           "Δppl", "changed", "z_kl");
    for (int rank = 1; rank <= r->n_rows; rank++)
        for (int i = 0; i < r->n_rows; i++) {
            const MsSweepRow *w = &r->rows[i];
            if (w->rank != rank) continue;
            printf("%4d  %-28.28s %9.5f %9.4f %7.4f %+*.4f %8.4f ", w->rank, w->label, w->kl_mean, w->kl_max,
                   w->top1_agreement, wd, w->dppl, w->changed_share);
            if (isfinite(w->z_kl)) printf("%7.2f\n", w->z_kl);
            else printf("%7s\n", "-");   /* no controls to compare with */
        }
    /* the controls' spread: mean ± sd of each measure over the controls */
    double s[4] = { 0 }, q[4] = { 0 };
    int nc = 0;
    for (int i = 0; i < r->n_rows; i++) {
        const MsSweepRow *w = &r->rows[i];
        if (strcmp(w->kind, "control")) continue;
        double v[4] = { w->kl_mean, w->top1_agreement, w->dppl, w->changed_share };
        for (int k = 0; k < 4; k++) s[k] += v[k], q[k] += v[k] * v[k];
        nc++;
    }
    if (nc > 1) {
        printf("controls (%d): kl_mean %.5f ± %.5f, top1 %.4f ± %.4f, Δppl %+.4f ± %.4f, changed %.4f ± %.4f\n", nc,
               s[0] / nc, sqrt(fmax(0, (q[0] - s[0] * s[0] / nc) / (nc - 1))), s[1] / nc,
               sqrt(fmax(0, (q[1] - s[1] * s[1] / nc) / (nc - 1))), s[2] / nc,
               sqrt(fmax(0, (q[2] - s[2] * s[2] / nc) / (nc - 1))), s[3] / nc,
               sqrt(fmax(0, (q[3] - s[3] * s[3] / nc) / (nc - 1))));
    }
}

static void sweep_csv(const MsSweepResult *r)
{
    puts("cand,kind,label,n_experts,kl_mean,kl_max,top1_agreement,ppl_baseline,ppl_run,dppl,changed_share,jaccard_mean,"
         "z_kl,z_dppl,rank");
    for (int i = 0; i < r->n_rows; i++) {
        const MsSweepRow *w = &r->rows[i];
        printf("%d,%s,\"%s\",%d,", w->cand, w->kind, w->label, w->n_experts);
        const double v[] = { w->kl_mean, w->kl_max, w->top1_agreement, w->ppl_baseline, w->ppl_run, w->dppl,
                             w->changed_share, w->jaccard_mean, w->z_kl, w->z_dppl };
        for (size_t k = 0; k < sizeof v / sizeof v[0]; k++) csv_num(v[k], ',');   /* unknown: empty */
        if (w->rank > 0) printf("%d", w->rank);
        putchar('\n');
    }
}

typedef struct {
    const char *each, *from, *dbpath, *format, *shard;
    int64_t run;
    int top, controls;
} SweepOpts;

/* The candidate sets the options name, then the controls. */
static int sweep_sets(const char *cmd, const SweepOpts *so, const MsModel *m, MsTraceDb *db, uint64_t seed,
                      MsSweepSet *set)
{
    MsError err = { 0 };
    int layers[MS_TRACE_MAX_LAYER], nl = 0;
    /* a bad layer list is a usage error (exit 2) */
    if (so->each && ms_sweep_parse_layers(m, so->each, layers, &nl, &err) < 0) {
        ms_sweep_set_init(set, m);
        return ms_cli_usage(cmd, "--silence-each: %s", err.msg), 2;
    }
    const MsSweepSpec spec = { .layers = so->each ? layers : NULL, .n_layers = nl, .from = so->from, .run = so->run,
                               .top = so->top, .controls = so->controls, .seed = seed };
    return ms_sweep_set_build(set, m, db, &spec, &err) < 0 ? ms_cli_fail_err(cmd, &err) : 0;
}

int ms_cmd_sweep(int argc, char **argv)
{
    const char *cmd = "sweep";
    SweepOpts so = { .format = "table" };
    MsSweepJob j;
    ms_sweep_job_init(&j);
    MsCliCommon c = { .groups = MS_CLI_G_MODEL | MS_CLI_G_THREADS | MS_CLI_G_PROMPTS };
    const MsCliOpt opts[] = {
        { "--silence-each", NULL, MS_OPT_STR, &so.each, 0, 0 },
        { "--from-analysis", NULL, MS_OPT_STR, &so.from, 0, 0 },
        { "--db", NULL, MS_OPT_STR, &so.dbpath, 0, 0 },
        { "--run", NULL, MS_OPT_I64, &so.run, 1, 2147483647.0 },
        { "--top", NULL, MS_OPT_INT, &so.top, 1, 100000 },
        { "--random-controls", NULL, MS_OPT_INT, &so.controls, 0, 100000 },
        { "--seed", "-s", MS_OPT_U64, &j.seed, 0, 0 },
        { "--gen", "-n", MS_OPT_INT, &j.n_gen, 0, 1 << 16 },
        { "--format", "-f", MS_OPT_STR, &so.format, 0, 0 },
        { "--shard", NULL, MS_OPT_STR, &so.shard, 0, 0 },
        { 0 },
    };
    int rc = ms_cli_parse(cmd, argc, argv, opts, &c, sweep_help);
    if (!rc && !so.each && !so.from) rc = ms_cli_usage(cmd, "give --silence-each LAYERS or --from-analysis A");
    if (!rc && so.shard) {
        rc = ms_cli_shard(cmd, so.shard, &j.shard_i, &j.shard_n);
        if (!rc && !so.dbpath) rc = ms_cli_usage(cmd, "--shard needs --db DB (where the shards meet)");
    }
    if (!rc && so.from && !so.dbpath) rc = ms_cli_usage(cmd, "--from-analysis reads the analysis from --db DB");
    if (!rc && so.from && !ms_sweep_from_analysis_valid(so.from))
        rc = ms_cli_usage(cmd, "--from-analysis: '%s' is not superexperts, npmi:CLASS or riskdiff", so.from);
    if (!rc && strcmp(so.format, "table") && strcmp(so.format, "json") && strcmp(so.format, "csv"))
        rc = ms_cli_usage(cmd, "--format must be table, json or csv (got '%s')", so.format);
    if (rc) return ms_cli_exit(rc);
    j.prompts_name = c.prompts;
    j.n_threads = c.n_threads;
    MsError err = { 0 };
    MsPrompt *pr = NULL;
    size_t npr = 0;
    MsModel *m = NULL;
    MsIntervention *iv = NULL;
    MsTraceDb *db = NULL;
    MsSweepSet set = { 0 };
    MsSweepResult res = { 0 };
    const bool existed = !so.dbpath || ms_cli_db_exists(so.dbpath);
    if ((rc = ms_cli_read_prompts(cmd, c.prompts, &pr, &npr)) != 0 || (rc = ms_cli_common_load(cmd, &c, &m, &iv)) != 0)
        goto done;
    if (npr == 0) rc = ms_cli_fail(cmd, "%s: no prompts", c.prompts);
    /* the analysis is read from the database: a missing file is that, not an empty analysis */
    if (!rc && so.from && !existed) rc = ms_cli_fail(cmd, "%s: No such file or directory", so.dbpath);
    if (!rc && so.dbpath && !(db = ms_trace_open(so.dbpath, MS_TRACE_CREATE, &err))) rc = ms_cli_fail_err(cmd, &err);
    if (!rc) rc = sweep_sets(cmd, &so, m, db, j.seed, &set);
    if (rc) goto done;
    MsCliBar bar;
    ms_cli_bar_init(&bar, "sets x prompts");
    j.progress = ms_cli_bar_progress;
    j.progress_user = &bar;
    MsCancel cancel;
    ms_cancel_init(&cancel);
    j.cancel = &cancel;
    ms_cli_sigint_cancel(&cancel);
    int jr = ms_sweep_job_run(&j, m, c.model, pr, npr, &set, db, &res, &err);
    ms_cli_sigint_restore();
    if (jr == MS_ECANCELLED) {
        fprintf(stderr, "%smoescope sweep: interrupted; nothing stored\n", bar.tty ? "\n" : "");
        rc = 130;
    } else if (jr < 0) {
        rc = ms_cli_fail_err(cmd, &err);
    } else if (!strcmp(so.format, "json")) {
        json_t *o = sweep_json(&res);
        char *s = json_dumps(o, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
        if (s) puts(s);
        free(s);
        json_decref(o);
    } else if (!strcmp(so.format, "csv")) {
        sweep_csv(&res);
    } else {
        sweep_table(&res);
        fprintf(stderr, "moescope sweep: %d set%s x %zu prompt%s in %.1f s%s\n", res.n_rows, res.n_rows == 1 ? "" : "s",
                npr, npr == 1 ? "" : "s", res.wall_s,
                res.sweep_id ? "" : " (not stored: no --db)");
    }
    if (!rc && jr >= 0 && j.shard_n > 1)
        fprintf(stderr, "moescope sweep: sweep %lld: shard %d/%d stored %d sets (%d already present)%s\n",
                (long long)res.sweep_id, j.shard_i, j.shard_n, res.n_written, res.n_skipped,
                res.complete ? "; the sweep is complete: every set shown, z-scores and ranks included"
                             : "; z-scores and ranks come with the last shard");
done:
    if (rc && rc != 130 && db && !existed && res.n_written == 0) ms_cli_drop_new_db(&db, so.dbpath);   /* refused */
    ms_sweep_result_clear(&res);
    ms_sweep_set_clear(&set);
    ms_trace_close(db);
    ms_intervention_free(iv);
    ms_model_free(m);
    ms_prompts_free(pr, npr);
    ms_cli_common_free(&c);
    return rc;
}
