/* ms-cpu.c — cpuid / xgetbv feature detection and the kernel level (ms-cpu.h). */
#include "ms-cpu.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define MS_X86 1
#else
#define MS_X86 0
#endif
#if MS_X86 && defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18
#endif

static const char *const isa_names[MS_ISA_COUNT] = {"scalar", "avx2", "avxvnni", "avx512", "avx512bf16"};

typedef struct {
    bool avx, avx2, fma, f16c, bmi1, bmi2, lzcnt, movbe;
    bool avx512f, avx512bw, avx512cd, avx512dq, avx512vl, avx512vnni, avx512bf16, avxvnni;
    bool amx_tile, amx_int8, amx_bf16, amx_ready;
    bool os_avx, os_avx512, os_amx;
    bool level[MS_ISA_COUNT];
    int best, active;
} CpuInfo;

static CpuInfo cpu;            /* written once by detect(), read-only afterwards */
static pthread_once_t cpu_once = PTHREAD_ONCE_INIT;

/* Levels compiled into this binary (engine/meson.build defines
 * MSQ_HAVE_X86_KERNELS when it builds quant-simd.c per level). */
static bool compiled(int isa)
{
#ifdef MSQ_HAVE_X86_KERNELS
    (void)isa;
    return true;
#else
    return isa == MS_ISA_SCALAR;
#endif
}

#if MS_X86
static uint64_t xgetbv0(void)
{
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (uint64_t)hi << 32 | lo;
}
#endif

static void detect(void)
{
    CpuInfo *c = &cpu;
    memset(c, 0, sizeof *c);
#if MS_X86
    unsigned a, b, cx, d, max = __get_cpuid_max(0, NULL);
    if (max >= 1 && __get_cpuid(1, &a, &b, &cx, &d)) {
        c->fma = cx >> 12 & 1;
        c->movbe = cx >> 22 & 1;
        c->avx = cx >> 28 & 1;
        c->f16c = cx >> 29 & 1;
        if (cx >> 27 & 1) {     /* OSXSAVE: xgetbv tells which register state the OS saves */
            uint64_t xcr0 = xgetbv0();
            c->os_avx = (xcr0 & 0x6) == 0x6;
            c->os_avx512 = (xcr0 & 0xe6) == 0xe6;
            c->os_amx = (xcr0 & 0x60000) == 0x60000;
        }
    }
    if (max >= 7 && __get_cpuid_count(7, 0, &a, &b, &cx, &d)) {
        c->bmi1 = b >> 3 & 1;
        c->avx2 = b >> 5 & 1;
        c->bmi2 = b >> 8 & 1;
        c->avx512f = b >> 16 & 1;
        c->avx512dq = b >> 17 & 1;
        c->avx512cd = b >> 28 & 1;
        c->avx512bw = b >> 30 & 1;
        c->avx512vl = b >> 31 & 1;
        c->avx512vnni = cx >> 11 & 1;
        c->amx_bf16 = d >> 22 & 1;
        c->amx_tile = d >> 24 & 1;
        c->amx_int8 = d >> 25 & 1;
        unsigned sub = a;
        if (sub >= 1 && __get_cpuid_count(7, 1, &a, &b, &cx, &d)) {
            c->avxvnni = a >> 4 & 1;
            c->avx512bf16 = a >> 5 & 1;
        }
    }
    if ((unsigned)__get_cpuid_max(0x80000000u, NULL) >= 0x80000001u && __get_cpuid(0x80000001u, &a, &b, &cx, &d))
        c->lzcnt = cx >> 5 & 1;
#if defined(__linux__)
    /* Linux hands out the AMX tile state only on request, once per process;
     * without it the first tile instruction raises SIGILL. */
    if (c->amx_tile && c->os_amx)
        c->amx_ready = syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
#endif
#endif
    bool v3 = c->avx && c->avx2 && c->fma && c->f16c && c->bmi1 && c->bmi2 && c->lzcnt && c->movbe && c->os_avx;
    bool v4 = v3 && c->avx512f && c->avx512bw && c->avx512cd && c->avx512dq && c->avx512vl && c->os_avx512;
    c->level[MS_ISA_SCALAR] = true;
    c->level[MS_ISA_AVX2] = v3;
    c->level[MS_ISA_AVXVNNI] = v3 && c->avxvnni;
    c->level[MS_ISA_AVX512] = v4 && c->avx512vnni;
    c->level[MS_ISA_AVX512BF16] = v4 && c->avx512vnni && c->avx512bf16;
    for (int i = 0; i < MS_ISA_COUNT; i++) {
        c->level[i] = c->level[i] && compiled(i);
        if (c->level[i]) c->best = i;
    }
    c->active = c->best;
    const char *env = getenv("MOESCOPE_ISA");
    if (env && *env) {
        int cap = ms_isa_from_name(env);
        if (cap < 0) {
            fprintf(stderr, "moescope: MOESCOPE_ISA=%s: unknown level (scalar, avx2, avxvnni, avx512, "
                    "avx512bf16); using %s\n", env, isa_names[c->best]);
        } else {
            while (cap > 0 && !c->level[cap]) cap--;
            if (cap < c->active) c->active = cap;
        }
    }
}

static const CpuInfo *info(void)
{
    pthread_once(&cpu_once, detect);
    return &cpu;
}

const char *ms_isa_name(int isa)
{
    return isa >= 0 && isa < MS_ISA_COUNT ? isa_names[isa] : NULL;
}

int ms_isa_from_name(const char *name)
{
    for (int i = 0; name && i < MS_ISA_COUNT; i++)
        if (strcasecmp(name, isa_names[i]) == 0) return i;
    return -1;
}

bool ms_isa_available(int isa)
{
    return isa >= 0 && isa < MS_ISA_COUNT && info()->level[isa];
}

int ms_isa_best(void) { return info()->best; }
int ms_isa_active(void) { return info()->active; }
bool ms_cpu_has_amx(void) { return info()->amx_tile; }
bool ms_cpu_amx_ready(void) { return info()->amx_ready; }

const char *ms_cpu_flags(char *buf, size_t size)
{
    const CpuInfo *c = info();
    const struct { bool on; const char *name; } f[] = {
        {c->avx2, "avx2"}, {c->fma, "fma"}, {c->f16c, "f16c"}, {c->bmi2, "bmi2"},
        {c->avxvnni, "avx-vnni"}, {c->avx512f, "avx512f"}, {c->avx512bw, "avx512bw"},
        {c->avx512dq, "avx512dq"}, {c->avx512vl, "avx512vl"}, {c->avx512vnni, "avx512-vnni"},
        {c->avx512bf16, "avx512-bf16"}, {c->amx_tile, "amx-tile"}, {c->amx_int8, "amx-int8"},
        {c->amx_bf16, "amx-bf16"},
    };
    size_t len = 0;
    if (size) buf[0] = 0;
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        if (!f[i].on) continue;
        int k = snprintf(buf + len, size > len ? size - len : 0, "%s%s", len ? " " : "", f[i].name);
        if (k < 0 || (size_t)k >= (size > len ? size - len : 0)) break;
        len += (size_t)k;
    }
    return buf;
}
