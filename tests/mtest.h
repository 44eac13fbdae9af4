/* mtest.h — a minimal TAP test harness for the C test programs.
 *
 *   MT_CHECK(cond, fmt, ...)  one assertion: prints "ok N - ..." or "not ok N - ..."
 *   mt_skip(fmt, ...)         one skipped part: prints "ok N # SKIP reason"
 *   mt_skip_all(reason)       nothing can run: prints "1..0 # SKIP reason", exits 0
 *   mt_shared_dir()           the reference fixtures (../shared) or NULL if absent
 *   mt_shared_absent()        why mt_shared_dir() is NULL, for skip reasons
 *   mt_parts(argc, argv)      --own / --reference: which part of a split program runs
 *   mt_tmpdir()               a fresh private temp directory for this test program
 *   return mt_done();         prints the plan; exit status 1 if anything failed
 *
 * Checks are counted, never abort, so one run reports every failure.
 *
 * Skipping: meson runs these programs with protocol 'tap'.  Debian 12's meson
 * (1.0.1) counts any non-zero exit status of a TAP test as an error, 77
 * included (77 means "skipped" only for protocol 'exitcode'); a TAP test is
 * counted as skipped when it exits 0 and every result is a SKIP, e.g. the
 * plan "1..0 # SKIP reason".  A program whose every check is
 * "ok N # SKIP ..." is skipped too; one real check makes it a pass. */
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
    /* a TAP result is one line: a newline in the description is written as \n */
    char buf[8192];
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    for (const char *c = buf; *c; c++) {
        if (*c == '\n') fputs("\\n", stdout);
        else putchar(*c);
    }
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

/* One part that cannot run here: a TAP "ok N # SKIP reason" line. */
static inline void mt_skip(const char *fmt, ...)
{
    va_list ap;
    mt_n_run++;
    printf("ok %d # SKIP ", mt_n_run);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
}

/* Nothing in this program can run: an empty plan with the reason, before
 * any check is printed.  Exit status 0, see the header comment. */
static inline void mt_skip_all(const char *reason)
{
    printf("1..0 # SKIP %s\n", reason);
    fflush(stdout);
    exit(0);
}

/* The reference fixtures: MS_SHARED_DIR when it is in the environment (an
 * empty value means "none", so `MS_SHARED_DIR= meson test` runs without
 * them), else MS_SHARED_DEFAULT (../shared, set by tests/meson.build).  A
 * directory without fixtures/ counts as absent. */
static inline const char *mt_shared_dir(void)
{
    const char *d = getenv("MS_SHARED_DIR");
    if (!d) d = getenv("MS_SHARED_DEFAULT");
    if (!d || !*d) return NULL;
    char sub[4096];
    struct stat st;
    snprintf(sub, sizeof sub, "%s/fixtures", d);
    if (stat(sub, &st) != 0 || !S_ISDIR(st.st_mode)) return NULL;
    return d;
}

/* Why mt_shared_dir() is NULL, for a skip reason (static buffer). */
static inline const char *mt_shared_absent(void)
{
    static char why[600];
    const char *o = getenv("MS_SHARED_DIR"), *d = o ? o : getenv("MS_SHARED_DEFAULT");
    if (!d || !*d)
        snprintf(why, sizeof why, "reference fixtures (../shared) not available: %s is empty or unset",
                 o ? "MS_SHARED_DIR" : "MS_SHARED_DEFAULT");
    else
        snprintf(why, sizeof why, "reference fixtures (../shared) not found: no %.400s/fixtures", d);
    return why;
}

/* Shared fixtures or skip the whole program with a printed reason. */
static inline const char *mt_require_shared(void)
{
    const char *d = mt_shared_dir();
    if (!d) mt_skip_all(mt_shared_absent());
    return d;
}

/* Programs with a large ../shared part are registered twice in
 * tests/meson.build, so that `meson test` shows the llama.cpp comparisons as
 * one test that is skipped without ../shared: no argument runs everything,
 * --own only what needs no reference fixtures, --reference only the
 * comparisons (the whole program skipped, with the reason, when ../shared is
 * absent).  Any other argument is a usage error (exit status 99). */
enum { MT_OWN = 1, MT_REFERENCE = 2, MT_ALL = 3 };

static inline int mt_parts(int argc, char **argv)
{
    if (argc < 2) return MT_ALL;
    if (argc == 2 && !strcmp(argv[1], "--own")) return MT_OWN;
    if (argc == 2 && !strcmp(argv[1], "--reference")) {
        mt_require_shared();
        return MT_REFERENCE;
    }
    fprintf(stderr, "usage: %s [--own | --reference]\n", argv[0]);
    exit(99);
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

/* Fuzz seeds: with MS_FUZZ_SEEDS=DIR in the environment, a test that
 * writes an input file (a malformed model, a bad prompt file...) copies it
 * to DIR/TARGET/NAME, for the fuzz corpora (tests/fuzz/README.md).  No-op
 * otherwise. */
static inline void mt_seed(const char *target, const char *name, const char *path)
{
    const char *dir = getenv("MS_FUZZ_SEEDS");
    if (!dir || !*dir) return;
    char out[1024];
    mkdir(dir, 0777);
    snprintf(out, sizeof out, "%s/%s", dir, target);
    mkdir(out, 0777);
    snprintf(out, sizeof out, "%s/%s/%s", dir, target, name);
    FILE *in = fopen(path, "rb"), *o = in ? fopen(out, "wb") : NULL;
    char buf[1 << 14];
    size_t n;
    while (in && o && (n = fread(buf, 1, sizeof buf, in)) > 0) fwrite(buf, 1, n, o);
    if (o) fclose(o);
    if (in) fclose(in);
}

/* Copy a file byte for byte; 0, or -1 when either side fails. */
static inline int mt_copy_file(const char *from, const char *to)
{
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    int rc = a && b ? 0 : -1;
    char buf[65536];
    size_t n;
    while (!rc && (n = fread(buf, 1, sizeof buf, a)) > 0)
        if (fwrite(buf, 1, n, b) != n) rc = -1;
    if (a) fclose(a);
    if (b && fclose(b)) rc = -1;
    return rc;
}

static inline int mt_done(void)
{
    /* meson would count an empty plan "1..0" as skipped: a program that
     * checked nothing has a bug, so it fails instead */
    if (mt_n_run == 0) MT_CHECK(0, "the program ran at least one check");
    printf("1..%d\n", mt_n_run);
    if (mt_n_failed) printf("# %d of %d checks failed\n", mt_n_failed, mt_n_run);
    return mt_n_failed ? 1 : 0;
}

#endif
