/* run.h — the analyses over a stored trace: each module streams a run
 * through db/trace.h's chunked reader, computes the METHODS.md quantities
 * with analysis.h, writes its result tables (an_<module>*) into the same
 * database and returns a JSON document (shapes in docs/analysis.md) plus a
 * flat row list for table/CSV display.
 *
 * Memory is bounded by the model shape (L·E·E for the pairwise modules) and,
 * for consistency and pathways, by the longest prompt; never by the number
 * of routing rows. */
#ifndef MS_ANALYSIS_RUN_H
#define MS_ANALYSIS_RUN_H

#include <jansson.h>

#include "analysis.h"
#include "trace.h"

#define MS_AN_MAX_LIST 64

typedef struct {
    int64_t run_id;          /* 0 = the newest run */
    int layer;               /* block index, -1 = every MoE layer */
    bool write;              /* write result tables (default true) */
    const char *role;        /* token scope: "all" | "prompt" | "generated"; NULL = module default */

    /* affinity */
    int distance;            /* d >= 1 (MoE layers), default 1 */
    const char *variant;     /* "topk" (default) | "top1" | "weighted": extra matrices in the doc */
    int top;                 /* top transitions per pair / plan size, default 10 */

    /* consistency */
    int segments[MS_AN_MAX_LIST], n_segments;   /* default 4,16,64,256 */
    int cache[MS_AN_MAX_LIST * 4], n_cache;     /* layer cache sizes C, default 1..E */
    bool cold;               /* SCH cold start (default warm, the reference) */

    /* superexperts */
    double include_frac;     /* default 0.75 */
    MsSeRule se_rule;

    /* npmi */
    const char *by;          /* "token" | "text" | "label:NAME" | "pos:B" (default "text") */
    int min_support;         /* rows with n_xy >= this (default 5) */
    int max_classes;         /* --by token: most frequent token ids kept (default 512) */
    const char *plan_class;  /* write a steering plan for this class */
    double beta;             /* plan: boost = bias ln(beta); <= 0 = suppress (silence) */

    /* riskdiff */
    const char *label;       /* prompt label key that splits the two sets */
    const char *set1, *set2; /* its values (set 1 = behaviour to promote) */
    int n_pos, n_neg;        /* experts to activate / deactivate */
    bool reverse;

    /* crosslingual */
    const char *lang_key, *pair_key, *ref_lang;
    double tau;              /* Δ threshold (default 0.3) */
    int mid_lo, mid_hi;      /* middle layer range (block indices), -1 = middle half */
    bool cl_hard;            /* plan operator: hard (raise to max, METHODS §9.3 eq. 5) instead of soft */
    double cl_lambda;        /* soft operator: logit += lambda · std (default 0.5) */

    /* pathways */
    double path_tau;         /* default 0.7 */
    bool token_level;        /* edit distance granularity (default char) */
    int n_pairs;             /* sampled pairs when there are more (default 2000) */
    uint64_t seed;
    bool sparse_weights;     /* use top-k combine weights instead of probs */

    const char *plan_out;    /* write the intervention set text here too */
} MsAnOptions;

void ms_an_options_default(MsAnOptions *o);

typedef struct {
    json_t *doc;             /* module document (owned) */
    json_t *rows;            /* array of flat objects, the main table (owned) */
    char *plan;              /* intervention set text (npmi/riskdiff/crosslingual) or NULL */
    int64_t run_id;
} MsAnResult;

void ms_an_result_clear(MsAnResult *r);   /* accepts zeroed */

/* Module names: load coactivation affinity consistency superexperts npmi
 * riskdiff crosslingual pathways.  MS_ENOTFOUND for an unknown name. */
int ms_analyze(MsTraceDb *db, const char *name, const MsAnOptions *o, MsAnResult *out,
               MsError *err);
/* Every applicable module on one run, decoding the routing from SQLite once
 * into a temporary file that each module then streams (bounded memory).
 * out receives {"modules": {name: doc}, "skipped": {name: reason},
 * "timing": {"decode": {wall, cpu}, name: {wall, cpu}}} (seconds); result
 * tables are written as by ms_analyze.  Modules that cannot run on this
 * trace (no stats, no probabilities, no --label) are skipped with a reason;
 * any other module error fails the call. */
int ms_analyze_all(MsTraceDb *db, const MsAnOptions *o, json_t **out, MsError *err);

/* NULL-terminated list of module names (static). */
const char *const *ms_analyze_modules(void);

#endif
