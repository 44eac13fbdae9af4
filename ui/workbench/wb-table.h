/* wb-table.h — analysis result tables as the window shows them (a column
 * view with sorting): typed cells copied from a result in memory
 * (MsAnTable, analysis/results.h) or from a stored table
 * (ms_trace_table), display text, and a comparison for sorting.  Also the
 * stored analyses of a run and the steering plans they wrote.  Plain C. */
#ifndef WB_TABLE_H
#define WB_TABLE_H

#include <stdint.h>

#include "results.h"
#include "trace.h"

typedef struct {
    MsAnCellType type;
    int64_t i;
    double r;
    char *s;
} WbCell;

typedef struct {
    char name[64];             /* "an_load" */
    int n_cols;
    char **cols;
    MsAnCellType *types;       /* per column: the first non-NULL cell's type (REAL when all NULL) */
    int64_t n_rows;            /* rows held */
    int64_t total_rows;        /* rows the table has (> n_rows when capped) */
    WbCell *cells;             /* [n_rows][n_cols] */
} WbTable;

/* Copy at most max_rows rows (0 = all). */
int wb_table_from_result(const MsAnTable *t, int64_t max_rows, WbTable **out, MsError *err);
/* A stored table (its run_id column left out), rows of run (0 = all). */
int wb_table_from_db(MsTraceDb *db, const char *table, int64_t run, int64_t max_rows, WbTable **out, MsError *err);
void wb_table_free(WbTable *t);   /* accepts NULL */
/* Display text: integers as they are, reals with 4 significant digits
 * (up to 6 for large magnitudes), NULL as "—". */
void wb_table_cell_text(const WbTable *t, int64_t row, int col, char *buf, size_t size);
/* Order of two rows by one column: NULL first, numbers by value, text by bytes. */
int wb_table_compare(const WbTable *t, int col, int64_t a, int64_t b);

/* The stored analyses of a run (run 0 = all), in registration order. */
typedef struct {
    char name[32];             /* "load" */
    char table[64];            /* "an_load_experts" */
    char created[32];
    int64_t run_id;
} WbStored;
int wb_stored_list(MsTraceDb *db, int64_t run, WbStored **out, int *n, MsError *err);
/* The steering plan module ("npmi", "riskdiff", "crosslingual") stored for
 * run: its intervention text (caller frees).  MS_ENOTFOUND with a message
 * naming the command that writes it when there is none. */
int wb_stored_plan(MsTraceDb *db, int64_t run, const char *module, char **text, MsError *err);

#endif
