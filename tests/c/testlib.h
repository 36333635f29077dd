/* Helpers shared by the test programs in tests/c (each is compiled on its
 * own, as a complete program, with no goalloc header). */
#ifndef GOALLOC_TESTLIB_H
#define GOALLOC_TESTLIB_H

#include <stdint.h>

/* splitmix64: a small, fast, seedable generator; the same stream on every
 * allocator, so runs under glibc and goalloc do the same work. */
static inline uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

#endif
