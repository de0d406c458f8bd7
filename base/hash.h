/* hash.h -- FNV-1a (64 bit): the string hash map's hash, seeds derived from
 * names, and the test-set fingerprint. Not cryptographic; stable across
 * hosts and builds, which is what its users need. */
#ifndef FOLDLINE_HASH_H
#define FOLDLINE_HASH_H

#include <stddef.h>
#include <stdint.h>

#define FL_FNV1A_INIT 1469598103934665603ull

/* h extended by the n bytes at p (start with FL_FNV1A_INIT). */
static inline uint64_t fl_fnv1a(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = (const unsigned char *)p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

/* h extended by the bytes of the string s (without its terminator). */
static inline uint64_t fl_fnv1a_str(uint64_t h, const char *s)
{
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* FNV-1a of a string. */
static inline uint64_t fl_hash_str(const char *s)
{
    return fl_fnv1a_str(FL_FNV1A_INIT, s);
}

#endif
