/* workingset: private working sets of blocks replaced at random
 * positions, with the size distributions of two standard tests.
 *
 * Usage: workingset invsq THREADS OPS [SLOTS]
 *        workingset log THREADS OPS [SLOTS [MAX]]
 *
 * Each of THREADS threads keeps its own SLOTS blocks and OPS times replaces
 * the one at a random position (checked before the free).
 *   invsq: glibc's bench-malloc-thread: sizes 4 B..32 KiB with density
 *          proportional to 1/size^2; half of the requests are 8 B or less
 *          and a long tail reaches the multi-KiB classes, so that every
 *          thread touches dozens of size classes in turn (SLOTS 1024).
 *   log:   sizes 8 B..MAX (default 65536, a power of two), log-uniform by
 *          octaves: an octave [2^k, 2^(k+1)) drawn uniformly, then a size
 *          uniformly in it, as many requests between 8 and 16 B as between
 *          32 and 64 KiB; small classes, large ones and the page heap in one
 *          mix (SLOTS 2000).
 */
#include <pthread.h>
#include <stdbool.h>

#include "common.h"

static unsigned long ops, nslots, max_size;
static unsigned octaves; /* log2(max_size / 8) */
static uint64_t sums[256];
static size_t (*size_of)(uint64_t *);

/* Inverse of the CDF of c/x^2 on [4, 32768]. */
static size_t invsq_size(uint64_t *rng)
{
    const double lo = 4.0, hi = 32768.0;
    double u = (double)(rng_next(rng) >> 11) * 0x1.0p-53;
    size_t n = (size_t)(1.0 / (1.0 / lo - u * (1.0 / lo - 1.0 / hi)));
    return n < 4 ? 4 : n > 32768 ? 32768 : n;
}

static size_t log_size(uint64_t *rng)
{
    size_t lo = (size_t)8 << rng_below(rng, octaves);
    return rng_range(rng, lo, 2 * lo - 1);
}

static void *worker(void *arg)
{
    unsigned t = (unsigned)(uintptr_t)arg;
    uint64_t seed = (size_of == invsq_size ? 0x1234567ull : 0xC0FFEEull) * (t + 1);
    sums[t] = working_set(nslots, ops, seed, size_of);
    return NULL;
}

int main(int argc, char **argv)
{
    const char *dist = argc > 1 ? argv[1] : "";
    bool invsq = strcmp(dist, "invsq") == 0;
    if (!invsq && strcmp(dist, "log") != 0)
        die("usage: workingset invsq|log THREADS OPS [SLOTS [MAX]]", 0);
    size_of = invsq ? invsq_size : log_size;
    unsigned nthreads = (unsigned)arg_or(argc, argv, 2, 2);
    ops = arg_or(argc, argv, 3, 1000000);
    nslots = arg_or(argc, argv, 4, invsq ? 1024 : 2000);
    max_size = arg_or(argc, argv, 5, 65536);
    if (nthreads < 1 || nthreads > 256 || nslots < 1 || max_size < 16 || max_size > (1ul << 30) ||
        (max_size & (max_size - 1)) != 0)
        die("bad arguments", 0);
    octaves = (unsigned)__builtin_ctzl(max_size / 8);
    pthread_t tid[256];
    for (unsigned t = 0; t < nthreads; t++)
        if (pthread_create(&tid[t], NULL, worker, (void *)(uintptr_t)t) != 0)
            die("pthread_create failed", t);
    uint64_t sum = 0;
    for (unsigned t = 0; t < nthreads; t++) {
        pthread_join(tid[t], NULL);
        sum += sums[t];
    }
    printf("workingset %s ok threads=%u ops=%lu sum=%" PRIx64 "\n", dist, nthreads, ops, sum);
    return 0;
}
