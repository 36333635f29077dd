/* larson: a server in the style of Larson and Krishnan's benchmark.
 *
 * Usage: larson THREADS ROUNDS OPS [SLOTS]
 *
 * Each of THREADS workers fills an array of SLOTS (default 4000) blocks of
 * 8..1000 B. Then, for ROUNDS rounds separated by a barrier, worker t takes
 * over the array worker t-1 used in the previous round and does OPS
 * replacements on it: free a random block (allocated, as a rule, by another
 * thread) after checking it, and allocate a new one in its place. Like
 * connections that move between server threads, memory flows from thread
 * to thread: remote frees, spans owned by someone else, and whether freed
 * memory can be reused by the thread that now needs it (peak RSS).
 */
#include <pthread.h>

#include "common.h"

static unsigned nthreads;
static unsigned long rounds, ops, nslots;
static obj_t **arrays;
static uint64_t *sums;
static pthread_barrier_t barrier;

/* The stream of array a in round r does not depend on which thread runs it. */
static void replace(obj_t *o, uint64_t *rng, uint64_t *sum)
{
    /* the length is drawn before the tag, as the stream always was */
    size_t len = rng_range(rng, 8, 1000);
    obj_replace(o, len, rng, sum);
}

static void *worker(void *arg)
{
    unsigned t = (unsigned)(uintptr_t)arg;
    uint64_t rng = 0xA5A5ull * (t + 1);
    for (unsigned long s = 0; s < nslots; s++)
        replace(&arrays[t][s], &rng, &sums[t]);
    for (unsigned long r = 1; r <= rounds; r++) {
        pthread_barrier_wait(&barrier);
        unsigned a = (unsigned)((t + r) % nthreads);
        rng = (a + 1) * 0x9E3779B97F4A7C15ull + r;
        for (unsigned long i = 0; i < ops; i++)
            replace(&arrays[a][rng_below(&rng, (uint32_t)nslots)], &rng, &sums[a]);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    nthreads = (unsigned)arg_or(argc, argv, 1, 2);
    rounds = arg_or(argc, argv, 2, 40);
    ops = arg_or(argc, argv, 3, 50000);
    nslots = arg_or(argc, argv, 4, 4000);
    if (nthreads < 1 || nthreads > 256 || nslots < 1)
        die("bad arguments", 0);
    arrays = calloc(nthreads, sizeof *arrays);
    sums = calloc(nthreads, sizeof *sums);
    pthread_t tid[256];
    if (arrays == NULL || sums == NULL || pthread_barrier_init(&barrier, NULL, nthreads) != 0)
        die("setup failed", 0);
    for (unsigned t = 0; t < nthreads; t++)
        if ((arrays[t] = calloc(nslots, sizeof(obj_t))) == NULL)
            die("calloc failed", nslots);
    for (unsigned t = 0; t < nthreads; t++)
        if (pthread_create(&tid[t], NULL, worker, (void *)(uintptr_t)t) != 0)
            die("pthread_create failed", t);
    for (unsigned t = 0; t < nthreads; t++)
        pthread_join(tid[t], NULL);
    uint64_t sum = 0;
    for (unsigned t = 0; t < nthreads; t++) {
        for (unsigned long s = 0; s < nslots; s++) {
            obj_t *o = &arrays[t][s];
            check_block(o->p, o->len, o->tag);
            free(o->p);
        }
        free(arrays[t]);
        sum += sums[t];
    }
    printf("larson ok threads=%u rounds=%lu ops=%lu sum=%" PRIx64 "\n", nthreads, rounds, ops, sum);
    return 0;
}
