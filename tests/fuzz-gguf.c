/* fuzz-gguf.c — fuzz target for the GGUF reader (built, not run by the suite).
 *
 * With clang -fsanitize=fuzzer,address it is a libFuzzer target
 * (LLVMFuzzerTestOneInput); otherwise main() replays the files named on the
 * command line, e.g. a crash reproducer:  ./fuzz-gguf crash-1234
 * Each input is placed in a memfd so the reader's real open/mmap path runs. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "gguf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Read every accessor so out-of-bounds pointers are actually dereferenced. */
static void touch(const MsGguf *g)
{
    volatile uint64_t acc = 0;
    for (int64_t i = 0; i < ms_gguf_n_kv(g); i++) {
        const char *k = ms_gguf_kv_key(g, i);
        MsGgufArray a;
        const char *s;
        uint64_t n;
        int64_t v;
        float f;
        if (ms_gguf_get_arr(g, k, &a, NULL) == 0) {
            for (uint64_t j = 0; j < a.n; j++) {
                if (a.elem_type == MS_GGUF_STRING) {
                    ms_gguf_arr_str(&a, j, &s, &n);
                    if (n) acc += (uint8_t)s[n - 1];
                } else {
                    acc += (uint64_t)ms_gguf_arr_i64(&a, j) + (ms_gguf_arr_f64(&a, j) > 0);
                }
            }
        } else if (ms_gguf_get_str(g, k, &s, &n, NULL) == 0) {
            if (n) acc += (uint8_t)s[n - 1];
        } else {
            if (ms_gguf_get_i64(g, k, &v, NULL) == 0) acc += (uint64_t)v;
            if (ms_gguf_get_f32(g, k, &f, NULL) == 0) acc += f > 0;
        }
    }
    for (int64_t i = 0; i < ms_gguf_n_tensors(g); i++) {
        const MsGgufTensor *t = ms_gguf_tensor(g, i);
        if (t->nbytes) acc += ((const uint8_t *)t->data)[t->nbytes - 1];
        acc += ms_gguf_find_tensor(g, t->name) == t;
    }
    (void)acc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd = memfd_create("fuzz-gguf", MFD_CLOEXEC);
    if (fd < 0) return 0;
    if (size && write(fd, data, size) != (ssize_t)size) { close(fd); return 0; }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    MsError err = { 0 };
    MsGguf *g = ms_gguf_open(path, &err);
    if (g) touch(g);
    ms_gguf_free(g);
    close(fd);
    return 0;
}

#ifndef MS_LIBFUZZER
int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        FILE *f = fopen(argv[i], "rb");
        if (!f) { perror(argv[i]); continue; }
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
        if (buf) LLVMFuzzerTestOneInput(buf, n);
        free(buf);
        printf("%s: done\n", argv[i]);
    }
    return 0;
}
#endif
