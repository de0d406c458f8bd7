/* rng.h -- counter-based randomness for training: every draw is a pure
 * function of (seed, stream, index), so a job's shuffles and augmentations
 * do not depend on which rank ran it, in which order, or after a resume. */
#ifndef FOLDLINE_RNG_H
#define FOLDLINE_RNG_H

#include <stdint.h>

#include "base/hash.h"

/* splitmix64 finaliser: a well-mixed 64-bit function of x. */
static inline uint64_t fl_mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

typedef struct {
    uint64_t state;
} fl_rng;

/* A generator for one (seed, a, b) triple, e.g. (job seed, epoch, row). */
static inline fl_rng fl_rng_for(uint64_t seed, uint64_t a, uint64_t b)
{
    fl_rng r = {fl_mix64(seed ^ fl_mix64(a ^ fl_mix64(b + 0x632be59bd9b4e019ull)))};
    return r;
}

static inline uint64_t fl_rng_next(fl_rng *r)
{
    r->state += 0x9e3779b97f4a7c15ull;
    uint64_t z = r->state;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [0, 1) with 53 bits. */
static inline double fl_rng_uniform(fl_rng *r)
{
    return (fl_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

/* Uniform integer in [0, n) (n >= 1), without modulo bias. */
static inline uint64_t fl_rng_below(fl_rng *r, uint64_t n)
{
    uint64_t limit = UINT64_MAX - UINT64_MAX % n, v;
    do
        v = fl_rng_next(r);
    while (v >= limit);
    return v % n;
}

/* fl_hash_str (FNV-1a of a string, for deriving seeds from names): base/hash.h */

#endif
