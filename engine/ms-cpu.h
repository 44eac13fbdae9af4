/* ms-cpu.h — what the CPU offers, and which kernel level the engine uses.
 *
 * The weight kernels (quant-simd.c) are compiled once per level and chosen
 * at run time, so one binary runs on any x86-64 machine and takes the
 * fastest path the CPU and the OS support.  Detection (cpuid, xgetbv)
 * happens once per process, on first use, and is read-only afterwards;
 * every function here is thread-safe.
 *
 * MOESCOPE_ISA in the environment (read at that first use) caps the level:
 * one of the names below; the engine then uses the best available level at
 * or below it.  An unknown name is reported once on stderr and ignored.
 * Tests and benchmarks can also run one level explicitly (ms_gemm_isa in
 * quant.h). */
#ifndef MS_CPU_H
#define MS_CPU_H

#include <stdbool.h>
#include <stddef.h>

enum {
    MS_ISA_SCALAR = 0,     /* portable C */
    MS_ISA_AVX2,           /* AVX2 + FMA + F16C (x86-64-v3) */
    MS_ISA_AVXVNNI,        /* + AVX-VNNI */
    MS_ISA_AVX512,         /* x86-64-v4 (AVX-512 F/BW/CD/DQ/VL) + AVX512-VNNI */
    MS_ISA_AVX512BF16,     /* + AVX512-BF16 */
    MS_ISA_COUNT
};

/* "scalar", "avx2", "avxvnni", "avx512", "avx512bf16"; NULL out of range. */
const char *ms_isa_name(int isa);
/* The level of a name (case-insensitive), -1 if unknown. */
int ms_isa_from_name(const char *name);
/* True when the level is compiled into this binary and the CPU and the OS
 * (saved register state) support it.  MS_ISA_SCALAR is always available. */
bool ms_isa_available(int isa);
/* The highest available level. */
int ms_isa_best(void);
/* The level ms_vec_dot / ms_gemv / ms_gemm use: ms_isa_best() capped by
 * MOESCOPE_ISA. */
int ms_isa_active(void);
/* The CPU's relevant feature names, space-separated ("avx2 fma f16c
 * avx512f ... amx-tile"), into buf (always terminated).  Returns buf. */
const char *ms_cpu_flags(char *buf, size_t size);
/* AMX tiles: present on the CPU, and (Linux) the tile-data permission
 * granted by arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA), which the
 * first use requests once for the process when the CPU has AMX. */
bool ms_cpu_has_amx(void);
bool ms_cpu_amx_ready(void);

#endif
