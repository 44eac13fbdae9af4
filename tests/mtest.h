/* mtest.h — a minimal TAP test harness for the C test programs.
 *
 *   MT_CHECK(cond, fmt, ...)  one assertion: prints "ok N - ..." or "not ok N - ..."
 *   mt_skip_all(reason)       prints "1..0 # SKIP reason" and exits 77 (meson: skipped)
 *   mt_shared_dir()           path of ../shared (from MS_SHARED_DIR) or NULL if absent
 *   mt_tmpdir()               a fresh private temp directory for this test program
 *   return mt_done();         prints the plan; exit status 1 if anything failed
 *
 * Checks are counted, never abort, so one run reports every failure. */
#ifndef MS_MTEST_H
#define MS_MTEST_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <ftw.h>
#include <unistd.h>

static int mt_n_run, mt_n_failed;

static inline int mt_check_(int ok, const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    mt_n_run++;
    if (!ok) mt_n_failed++;
    printf("%s %d - ", ok ? "ok" : "not ok", mt_n_run);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    if (!ok) printf("  (%s:%d)", file, line);
    printf("\n");
    fflush(stdout);
    return ok;
}
#define MT_CHECK(cond, ...) mt_check_(!!(cond), __FILE__, __LINE__, __VA_ARGS__)

static inline void mt_diag(const char *fmt, ...)
{
    va_list ap;
    printf("# ");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
}

static inline void mt_skip_all(const char *reason)
{
    printf("1..0 # SKIP %s\n", reason);
    fflush(stdout);
    exit(77);
}

static inline const char *mt_shared_dir(void)
{
    const char *d = getenv("MS_SHARED_DIR");
    struct stat st;
    if (!d || stat(d, &st) != 0 || !S_ISDIR(st.st_mode)) return NULL;
    return d;
}

/* Shared fixtures or skip the whole program with a printed reason. */
static inline const char *mt_require_shared(void)
{
    const char *d = mt_shared_dir();
    if (!d) mt_skip_all("../shared (reference fixtures) not found beside the project");
    return d;
}

static char mt_tmpdir_path[256];

static inline int mt_rm_entry_(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb; (void)flag; (void)ftw;
    return remove(path);
}

/* Remove the temp directory (unless MS_KEEP_TMP is set, for debugging). */
static inline void mt_tmpdir_cleanup(void)
{
    if (mt_tmpdir_path[0] && !getenv("MS_KEEP_TMP"))
        nftw(mt_tmpdir_path, mt_rm_entry_, 16, FTW_DEPTH | FTW_PHYS);
}

static inline const char *mt_tmpdir(void)
{
    char *dir = mt_tmpdir_path;
    if (!dir[0]) {
        const char *base = getenv("TMPDIR");
        snprintf(dir, sizeof mt_tmpdir_path, "%s/mstest.XXXXXX", base && *base ? base : "/tmp");
        if (!mkdtemp(dir)) { perror("mkdtemp"); exit(99); }
        atexit(mt_tmpdir_cleanup);
    }
    return dir;
}

static inline int mt_done(void)
{
    printf("1..%d\n", mt_n_run);
    if (mt_n_failed) printf("# %d of %d checks failed\n", mt_n_failed, mt_n_run);
    return mt_n_failed ? 1 : 0;
}

#endif
