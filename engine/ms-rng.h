/* ms-rng.h — the engine's one pseudo-random generator: xoshiro256** seeded
 * through splitmix64 (as its authors recommend, so any seed, 0 included, gives
 * a good state).  State is always an explicit caller-owned value; there is no
 * global stream. */
#ifndef MS_RNG_H
#define MS_RNG_H

#include <stdint.h>

typedef struct { uint64_t s[4]; } MsRng;

static inline uint64_t ms_splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline void ms_rng_seed(MsRng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++) r->s[i] = ms_splitmix64(&seed);
}

static inline uint64_t ms_rng_rotl_(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static inline uint64_t ms_rng_next(MsRng *r)
{
    uint64_t *s = r->s;
    uint64_t out = ms_rng_rotl_(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = ms_rng_rotl_(s[3], 45);
    return out;
}

/* Uniform in [0, 1) with 53 random bits. */
static inline double ms_rng_uniform01(MsRng *r) { return (double)(ms_rng_next(r) >> 11) * 0x1.0p-53; }

#endif
