/* Shared helpers of the goalloc benchmark workloads (bench/README.md says
 * what each one stresses; goalloc_ffi/bench.py compiles and runs them).
 *
 * Every workload is deterministic: its random streams are seeded from the
 * command line and the thread number, it checks the contents of every block
 * it frees, and the one line it prints depends only on those streams, never
 * on addresses or scheduling, so the runner can require the same output from
 * every allocator. A broken block or a failed malloc exits 2 with a message
 * on stderr.
 */
#ifndef GA_BENCH_COMMON_H
#define GA_BENCH_COMMON_H

#define _GNU_SOURCE
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* splitmix64: small, fast and good enough for choosing sizes and slots. */
static inline uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in [0, n) (n > 0), by the multiply-shift reduction. */
static inline uint32_t rng_below(uint64_t *s, uint32_t n)
{
    return (uint32_t)(((rng_next(s) >> 32) * (uint64_t)n) >> 32);
}

/* Uniform in [lo, hi]. */
static inline size_t rng_range(uint64_t *s, size_t lo, size_t hi)
{
    return lo + rng_below(s, (uint32_t)(hi - lo + 1));
}

static inline void die(const char *what, size_t n)
{
    fprintf(stderr, "%s (%zu)\n", what, n);
    exit(2);
}

static inline void *xmalloc(size_t n)
{
    void *p = malloc(n);
    if (p == NULL)
        die("malloc failed", n);
    return p;
}

/* A block of n >= 1 bytes carries its tag in its first bytes (8 of them when
 * n > 8, else 1) and in its last byte: touching both ends is what real
 * programs do and catches an allocator handing out overlapping blocks. */
static inline void tag_block(void *p, size_t n, uint64_t tag)
{
    unsigned char *b = p;
    if (n > 8)
        memcpy(b, &tag, 8);
    else
        b[0] = (unsigned char)tag;
    b[n - 1] = (unsigned char)(tag >> 8);
}

static inline void check_block(const void *p, size_t n, uint64_t tag)
{
    const unsigned char *b = p;
    uint64_t head = tag;
    if (n > 8)
        memcpy(&head, b, 8);
    else if (n > 1)
        head = (tag & ~(uint64_t)0xff) | b[0];
    if (head != tag || b[n - 1] != (unsigned char)(tag >> 8))
        die("corrupted block of size", n);
}

/* A block a workload keeps: its pointer, length and tag. */
typedef struct {
    void *p;
    uint32_t len;
    uint64_t tag;
} obj_t;

/* Checks and frees o's block, if any, adding its length to *sum. */
static inline void obj_release(obj_t *o, uint64_t *sum);

/* Puts a new block of len bytes with a tag from *rng in o's place, after
 * releasing the old one. */
static inline void obj_replace(obj_t *o, size_t len, uint64_t *rng, uint64_t *sum);

/* Order-independent checksum of per-thread results. */
static inline uint64_t mix(uint64_t acc, uint64_t x)
{
    return (acc ^ x) * 0x100000001B3ull + 0x9E37ull;
}

static inline void obj_release(obj_t *o, uint64_t *sum)
{
    if (o->p == NULL)
        return;
    check_block(o->p, o->len, o->tag);
    *sum = mix(*sum, o->len);
    free(o->p);
    o->p = NULL;
}

static inline void obj_replace(obj_t *o, size_t len, uint64_t *rng, uint64_t *sum)
{
    obj_release(o, sum);
    o->len = (uint32_t)len;
    o->tag = rng_next(rng);
    o->p = xmalloc(len);
    tag_block(o->p, len, o->tag);
}

/* A private working set of nslots blocks: ops times, the block at a
 * random position is replaced by one of size(rng) bytes; then all are
 * freed. Returns the checksum of the lengths freed along the way. */
static inline uint64_t working_set(unsigned long nslots, unsigned long ops, uint64_t seed,
                                   size_t (*size)(uint64_t *))
{
    uint64_t rng = seed, sum = 0, last = 0;
    obj_t *set = calloc(nslots, sizeof *set);
    if (set == NULL)
        die("calloc failed", nslots);
    for (unsigned long i = 0; i < ops; i++) {
        obj_t *o = &set[rng_below(&rng, (uint32_t)nslots)]; /* the slot, then the size */
        obj_replace(o, size(&rng), &rng, &sum);
    }
    for (unsigned long s = 0; s < nslots; s++)
        obj_release(&set[s], &last);
    free(set);
    return sum;
}

static inline unsigned long arg_or(int argc, char **argv, int i, unsigned long dflt)
{
    return argc > i ? strtoul(argv[i], NULL, 0) : dflt;
}

#endif
