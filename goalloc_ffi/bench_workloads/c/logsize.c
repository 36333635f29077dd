/* logsize: blocks replaced at random positions with sizes drawn
 * log-uniformly, as allocator test suites do it.
 *
 * Usage: logsize THREADS OPS [SLOTS [MAX]]
 *
 * Each of THREADS threads owns an array of SLOTS (default 2000) blocks and
 * OPS times replaces the one at a random position (checked before the
 * free) by a block of 8..MAX bytes (default 65536, a power of two),
 * log-uniform by octaves: an octave [2^k, 2^(k+1)) drawn uniformly, then a
 * size uniformly in it, so that there are as many requests between 8 and
 * 16 B as between 32 and 64 KiB. Small classes,
 * the large ones and the page heap are all in the mix, without any
 * cross-thread traffic.
 */
#include <pthread.h>

#include "common.h"

typedef struct {
    void *p;
    uint32_t len;
    uint64_t tag;
} obj_t;

static unsigned long ops, nslots, max_size;
static uint64_t sums[256];

static unsigned octaves; /* log2(max_size / 8) */

static size_t log_size(uint64_t *rng)
{
    size_t lo = (size_t)8 << rng_below(rng, octaves);
    return rng_range(rng, lo, 2 * lo - 1);
}

static void *worker(void *arg)
{
    unsigned t = (unsigned)(uintptr_t)arg;
    uint64_t rng = 0xC0FFEEull * (t + 1), sum = 0;
    obj_t *set = calloc(nslots, sizeof *set);
    if (set == NULL)
        die("calloc failed", nslots);
    for (unsigned long i = 0; i < ops; i++) {
        obj_t *o = &set[rng_below(&rng, (uint32_t)nslots)];
        if (o->p != NULL) {
            check_block(o->p, o->len, o->tag);
            sum = mix(sum, o->len);
            free(o->p);
        }
        o->len = (uint32_t)log_size(&rng);
        o->tag = rng_next(&rng);
        o->p = xmalloc(o->len);
        tag_block(o->p, o->len, o->tag);
    }
    for (unsigned long s = 0; s < nslots; s++)
        if (set[s].p != NULL) {
            check_block(set[s].p, set[s].len, set[s].tag);
            free(set[s].p);
        }
    free(set);
    sums[t] = sum;
    return NULL;
}

int main(int argc, char **argv)
{
    unsigned nthreads = (unsigned)arg_or(argc, argv, 1, 1);
    ops = arg_or(argc, argv, 2, 1000000);
    nslots = arg_or(argc, argv, 3, 2000);
    max_size = arg_or(argc, argv, 4, 65536);
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
    printf("logsize ok threads=%u ops=%lu sum=%" PRIx64 "\n", nthreads, ops, sum);
    return 0;
}
