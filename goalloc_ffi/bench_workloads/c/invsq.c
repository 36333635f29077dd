/* invsq: glibc's bench-malloc-thread with its size distribution.
 *
 * Usage: invsq THREADS OPS [SLOTS]
 *
 * Each of THREADS threads keeps a private working set of SLOTS (default
 * 1024) blocks and OPS times replaces a random one (checking it before the
 * free) with a block whose size is drawn from 4 B..32 KiB with density
 * proportional to 1/size^2, the distribution glibc's benchmark uses: half
 * of the requests are 8 B or less, and a long tail reaches the multi-KiB
 * classes, so that every thread touches dozens of size classes in turn.
 */
#include <pthread.h>

#include "common.h"

#define MIN_SIZE 4.0
#define MAX_SIZE 32768.0

typedef struct {
    void *p;
    uint32_t len;
    uint64_t tag;
} obj_t;

static unsigned long ops, nslots;
static uint64_t sums[256];

/* Inverse of the CDF of c/x^2 on [MIN_SIZE, MAX_SIZE]. */
static size_t invsq_size(uint64_t *rng)
{
    double u = (double)(rng_next(rng) >> 11) * 0x1.0p-53;
    double x = 1.0 / (1.0 / MIN_SIZE - u * (1.0 / MIN_SIZE - 1.0 / MAX_SIZE));
    size_t n = (size_t)x;
    return n < 4 ? 4 : n > 32768 ? 32768 : n;
}

static void *worker(void *arg)
{
    unsigned t = (unsigned)(uintptr_t)arg;
    uint64_t rng = 0x1234567ull * (t + 1), sum = 0;
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
        o->len = (uint32_t)invsq_size(&rng);
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
    unsigned nthreads = (unsigned)arg_or(argc, argv, 1, 2);
    ops = arg_or(argc, argv, 2, 1000000);
    nslots = arg_or(argc, argv, 3, 1024);
    if (nthreads < 1 || nthreads > 256 || nslots < 1)
        die("bad arguments", 0);
    pthread_t tid[256];
    for (unsigned t = 0; t < nthreads; t++)
        if (pthread_create(&tid[t], NULL, worker, (void *)(uintptr_t)t) != 0)
            die("pthread_create failed", t);
    uint64_t sum = 0;
    for (unsigned t = 0; t < nthreads; t++) {
        pthread_join(tid[t], NULL);
        sum += sums[t];
    }
    printf("invsq ok threads=%u ops=%lu sum=%" PRIx64 "\n", nthreads, ops, sum);
    return 0;
}
