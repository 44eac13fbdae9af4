/* result-json.h — the typed results as the JSON documents and display rows
 * that `moescope analyze --format json|table|csv` prints (shapes in
 * docs/analysis.md).  Every function returns a new reference (NULL when out
 * of memory); NaN and infinities are written as null.
 *
 * Library: libmsanalysisdb (analysis/db/); includes jansson.h and run.h.
 * Nothing else in the analysis code needs JSON to use a result: drawing
 * code reads the typed structs of analysis/results.h. */
#ifndef MS_ANALYSIS_RESULT_JSON_H
#define MS_ANALYSIS_RESULT_JSON_H

#include <jansson.h>

#include "run.h"

/* The module document: the module's keys, then "run" and "params". */
json_t *ms_an_result_json(const MsAnResult *r);
/* Its "params" object (also the `analysis` registry's params column). */
json_t *ms_an_params_json(const MsAnResult *r);
/* A result table as an array of flat objects (keys = columns). */
json_t *ms_an_table_json(const MsAnTable *t);
/* The rows `analyze` displays: the module's main table an_<module>. */
json_t *ms_an_rows_json(const MsAnResult *r);
/* analyze all: {"run", "modules": {name: document}, "skipped": {name:
 * reason}, "timing": {"decode": {"wall", "cpu"}, name: {...}, "total"}}. */
json_t *ms_an_all_json(const MsAnAll *a);

/* Per module: the document of ms_an_result_json. */
json_t *ms_load_result_json(const MsLoadResult *r);
json_t *ms_coactivation_result_json(const MsCoactivationResult *r);
json_t *ms_affinity_result_json(const MsAffinityResult *r);
json_t *ms_consistency_result_json(const MsConsistencyResult *r);
json_t *ms_superexperts_result_json(const MsSuperExpertsResult *r);
json_t *ms_npmi_result_json(const MsNpmiResult *r);
json_t *ms_riskdiff_result_json(const MsRiskDiffResult *r);
json_t *ms_crosslingual_result_json(const MsCrosslingualResult *r);
json_t *ms_pathways_result_json(const MsPathwaysResult *r);

#endif
