/* fuzz.h — shared by the fuzz-<target> programs (tests/fuzz/README.md).
 *
 * Each target defines LLVMFuzzerTestOneInput (and may define
 * FUZZ_INIT, a function run once before the first input).  Built with
 * -Dfuzz=true (clang) the program is a libFuzzer target; otherwise (and
 * always in the test suite) the main() below replays files: each argument
 * is a file or a directory of files, e.g. a committed corpus or a crash
 * reproducer:  build/tests/fuzz/fuzz-gguf crash-1234
 * The replay prints one line per directory and a total, and exits 0: a
 * finding shows as a sanitizer report and a non-zero exit (abort). */
#ifndef MS_FUZZ_H
#define MS_FUZZ_H

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* The input as a file the code under test opens by path: a memfd, so the
 * real open/read/mmap paths run without touching the disk.  Returns the fd
 * (close it when done) and the path in buf, or -1. */
static inline int fz_memfd(const uint8_t *data, size_t size, char *path, size_t cap)
{
    int fd = memfd_create("fuzz-input", MFD_CLOEXEC);
    if (fd < 0) return -1;
    size_t off = 0;
    while (off < size) {
        ssize_t w = write(fd, data + off, size - off);
        if (w <= 0) { close(fd); return -1; }
        off += (size_t)w;
    }
    snprintf(path, cap, "/proc/self/fd/%d", fd);
    return fd;
}

#ifndef FUZZ_INIT
static void fz_no_init(void) {}
#define FUZZ_INIT fz_no_init
#endif

static int fz_initialized;
static void fz_init_once(void)
{
    if (!fz_initialized) {
        fz_initialized = 1;
        FUZZ_INIT();
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fz_init_once();
    return 0;
}

#ifndef MS_LIBFUZZER
static int fz_replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) { perror(path); return -1; }
    size_t cap = 1 << 16, n = 0, r;
    uint8_t *buf = malloc(cap);
    while (buf && (r = fread(buf + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap) {
            uint8_t *p = realloc(buf, cap *= 2);
            if (!p) { free(buf); buf = NULL; break; }
            buf = p;
        }
    }
    fclose(f);
    if (!buf) { fprintf(stderr, "%s: out of memory\n", path); return -1; }
    /* an exact-size copy, so reading past the input is an ASan finding */
    uint8_t *exact = malloc(n ? n : 1);
    if (exact) memcpy(exact, buf, n);
    free(buf);
    if (!exact) return -1;
    LLVMFuzzerTestOneInput(exact, n);
    free(exact);
    return 0;
}

static int fz_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv)
{
    fz_init_once();
    long total = 0;
    int bad = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (argv[i][0] == '-') continue;   /* libFuzzer-style flags are ignored in replay */
        if (stat(argv[i], &st) != 0) { perror(argv[i]); bad = 1; continue; }
        if (!S_ISDIR(st.st_mode)) {
            if (fz_replay_file(argv[i]) == 0) total++;
            else bad = 1;
            continue;
        }
        DIR *d = opendir(argv[i]);
        if (!d) { perror(argv[i]); bad = 1; continue; }
        char **names = NULL;
        size_t nn = 0, cap = 0;
        struct dirent *e;
        while ((e = readdir(d))) {
            if (e->d_name[0] == '.') continue;
            if (nn == cap) {
                cap = cap ? cap * 2 : 64;
                char **p = realloc(names, cap * sizeof *p);
                if (!p) break;
                names = p;
            }
            names[nn++] = strdup(e->d_name);
        }
        closedir(d);
        if (nn) qsort(names, nn, sizeof *names, fz_cmp);   /* same order every run */
        long here = 0;
        for (size_t k = 0; k < nn; k++) {
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", argv[i], names[k]);
            if (names[k] && stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
                if (fz_replay_file(path) == 0) here++;
                else bad = 1;
            }
            free(names[k]);
        }
        free(names);
        printf("%s: %ld inputs replayed\n", argv[i], here);
        total += here;
    }
    printf("%ld inputs replayed\n", total);
    return bad;
}
#endif

#endif
