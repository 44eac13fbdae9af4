/* run.h — the analyses over a stored trace: each module streams a run
 * through db/trace.h's chunked reader into the accumulators of the pure
 * library, returns its typed result (analysis/results.h) and writes its
 * result tables (an_<module>*) into the same database.
 *
 * Library: libmsanalysisdb (analysis/db/), the database glue.  Its sources
 * may include analysis/ (the pure library), db/trace.h and jansson.h (label
 * parsing, the params column, the JSON forms); this header includes neither
 * jansson nor sqlite3, so a viewer can use it without either.  The JSON the
 * command prints is built by analysis/db/result-json.h.
 *
 * Memory is bounded by the model shape (L·E·E for the pairwise modules) and,
 * for consistency and pathways, by the longest prompt; never by the number
 * of routing rows.
 *
 * Long work: every entry point polls o->cancel (NULL = never) at least
 * every 1,024 tokens streamed and returns MS_ECANCELLED when it is set;
 * result tables and plan files are written only after every computation of
 * the call has completed, so a cancelled (or failed) call leaves the
 * database and the files as they were.  Progress (o->progress, on the
 * calling thread only): MsProgress.tokens / tokens_total count the tokens
 * streamed over the run's routing (and its probabilities, residual stats
 * or token rows where a module reads them; analyze all adds its decode)
 * against their total from the run info (n_tokens per pass), done / total
 * the modules finished; reports come in order and the last one is
 * tokens == tokens_total, done == total.  Safe on a worker thread; one
 * MsTraceDb handle per thread (analyze all opens its own extra read
 * connections). */
#ifndef MS_ANALYSIS_RUN_H
#define MS_ANALYSIS_RUN_H

#include "results.h"
#include "trace.h"

/* Module names: load coactivation affinity consistency superexperts npmi
 * riskdiff crosslingual pathways.  MS_ENOTFOUND for an unknown name.  out
 * is zeroed first; release with ms_an_result_clear. */
int ms_analyze(MsTraceDb *db, const char *name, const MsAnOptions *o, MsAnResult *out, MsError *err);

/* The same, one module at a time, typed (caller frees *out with its _free). */
int ms_analyze_load(MsTraceDb *db, const MsAnOptions *o, MsLoadResult **out, MsError *err);
int ms_analyze_coactivation(MsTraceDb *db, const MsAnOptions *o, MsCoactivationResult **out, MsError *err);
int ms_analyze_affinity(MsTraceDb *db, const MsAnOptions *o, MsAffinityResult **out, MsError *err);
int ms_analyze_consistency(MsTraceDb *db, const MsAnOptions *o, MsConsistencyResult **out, MsError *err);
int ms_analyze_superexperts(MsTraceDb *db, const MsAnOptions *o, MsSuperExpertsResult **out, MsError *err);
int ms_analyze_npmi(MsTraceDb *db, const MsAnOptions *o, MsNpmiResult **out, MsError *err);
int ms_analyze_riskdiff(MsTraceDb *db, const MsAnOptions *o, MsRiskDiffResult **out, MsError *err);
int ms_analyze_crosslingual(MsTraceDb *db, const MsAnOptions *o, MsCrosslingualResult **out, MsError *err);
int ms_analyze_pathways(MsTraceDb *db, const MsAnOptions *o, MsPathwaysResult **out, MsError *err);

/* analyze all: every applicable module on one run. */
typedef struct {
    double wall, cpu;                /* seconds; cpu = the thread that ran it (total: the process) */
} MsAnTime;

typedef struct {
    int64_t run_id;
    MsAnResult res[MS_AN_N_MODULES]; /* by MsAnModule; empty (any == NULL) when skipped */
    bool ran[MS_AN_N_MODULES];
    const char *skipped[MS_AN_N_MODULES];   /* static reason, NULL when the module ran */
    MsAnTime decode, time[MS_AN_N_MODULES], total;   /* module times include their table writes */
} MsAnAll;

/* Decodes the routing from SQLite once into a temporary file that each
 * module then streams (bounded memory); modules run on two workers.
 * Modules that cannot run on this trace (no stats, no probabilities, no
 * --label, no reference language) are skipped with a reason; any other
 * module error fails the call, and then nothing is written.  Tables are
 * written in module order.  out is zeroed first; release with
 * ms_an_all_clear. */
int ms_analyze_all(MsTraceDb *db, const MsAnOptions *o, MsAnAll *out, MsError *err);
void ms_an_all_clear(MsAnAll *a);                /* accepts NULL / zeroed */

/* NULL-terminated list of module names (static). */
const char *const *ms_analyze_modules(void);

/* Write a computed result as ms_analyze does: the plan file (o->plan_out,
 * even without o->write), then with o->write its tables in the order of
 * ms_an_result_tables, each replacing its namesake and registered in
 * `analysis` with the run and the params. */
int ms_an_result_write(MsTraceDb *db, const MsAnResult *r, const MsAnOptions *o, MsError *err);

#endif
