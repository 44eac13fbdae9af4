/* fuzz-interventions.c — the intervention text form (engine/intervene-text.c).
 *
 * Input: byte 0 gives the model's layers (1..16), byte 1 its experts
 * (1..64), byte 2 the command-line flag a spec is parsed as; the rest is
 * the text.  It is parsed as a whole set (ms_intervention_parse_text), as a
 * file (ms_intervention_load, by path) and as the value of one flag
 * (ms_intervention_parse).  Checks: a failure is one line and leaves the set
 * unchanged (all or nothing); a success writes back (to_string) to text
 * that parses to an equal set, and the file and in-memory forms agree. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine.h"
#include "fuzz.h"

static void one_line(const MsError *e)
{
    if (!e->msg[0] || strchr(e->msg, '\n')) {
        fprintf(stderr, "fuzz-interventions: bad error message '%s'\n", e->msg);
        abort();
    }
}

static void round_trip(const MsIntervention *iv, int L, int E)
{
    char *s = ms_intervention_to_string(iv);
    if (!s) abort();
    MsIntervention *back = ms_intervention_new(L, E);
    MsError e = { 0 };
    if (ms_intervention_parse_text(back, s, &e) != 0 || !ms_intervention_equal(iv, back)) {
        fprintf(stderr, "fuzz-interventions: '%s' does not read back (%s)\n", s, e.msg);
        abort();
    }
    ms_intervention_free(back);
    free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3) return 0;
    int L = 1 + data[0] % 16, E = 1 + data[1] % 64;
    static const char *const kinds[] = { "silence", "drop", "force", "steer", "scale", "steer-std",
                                         "raise", "lower", "top-k", "ser", "bogus" };
    const char *kind = kinds[data[2] % (sizeof kinds / sizeof *kinds)];
    char *text = malloc(size - 3 + 1);
    if (!text) return 0;
    memcpy(text, data + 3, size - 3);
    text[size - 3] = 0;

    /* a pre-existing operator, so "unchanged on failure" means something */
    MsIntervention *iv = ms_intervention_new(L, E);
    ms_intervention_silence(iv, 0, E - 1);
    MsIntervention *before = ms_intervention_copy(iv);
    MsError e = { 0 };
    int r1 = ms_intervention_parse_text(iv, text, &e);
    if (r1 < 0) {
        one_line(&e);
        if (!ms_intervention_equal(iv, before)) { fprintf(stderr, "fuzz-interventions: failed parse changed the set\n"); abort(); }
    } else {
        round_trip(iv, L, E);
        ms_intervention_validate(iv, L, E, 1, &e);
    }

    /* the same text as a file: same verdict (a NUL byte is the file's own error) */
    char path[64];
    int fd = fz_memfd(data + 3, size - 3, path, sizeof path);
    if (fd >= 0) {
        MsIntervention *fv = ms_intervention_new(L, E);
        ms_intervention_silence(fv, 0, E - 1);
        MsError fe = { 0 };
        int r2 = ms_intervention_load(fv, path, &fe);
        bool has_nul = memchr(data + 3, 0, size - 3) != NULL;
        if (r2 < 0) one_line(&fe);
        if (!has_nul && ((r1 < 0) != (r2 < 0) || (r2 == 0 && !ms_intervention_equal(iv, fv)))) {
            fprintf(stderr, "fuzz-interventions: text %d ('%s') but file %d ('%s')\n", r1, e.msg, r2, fe.msg);
            abort();
        }
        ms_intervention_free(fv);
        close(fd);
    }

    /* one command-line flag */
    MsIntervention *cv = ms_intervention_new(L, E);
    MsIntervention *cb = ms_intervention_copy(cv);
    MsError ce = { 0 };
    if (ms_intervention_parse(cv, kind, text, &ce) < 0) {
        one_line(&ce);
        if (!ms_intervention_equal(cv, cb)) abort();
    } else {
        round_trip(cv, L, E);
    }
    ms_intervention_free(cv);
    ms_intervention_free(cb);
    ms_intervention_free(before);
    ms_intervention_free(iv);
    free(text);
    return 0;
}
