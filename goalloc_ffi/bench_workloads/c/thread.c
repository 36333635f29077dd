/* thread: the pattern of glibc's bench-malloc-thread, written anew.
 *
 * Usage: thread THREADS ITERATIONS [WORKING_SET]
 *
 * THREADS threads, each with its own working set of WORKING_SET slots
 * (default 1000): ITERATIONS times, pick a random slot, free its block (after
 * checking its tag) and put a new block of a random size there. Sizes lean
 * small like a real program's: 80 % in 16..256 B, 15 % up to 2 KiB, 5 % up
 * to 16 KiB. Thread caches under contention-free multi-threading, and how
 * each thread's memory is reused.
 */
#include <pthread.h>

#include "common.h"

typedef struct {
    unsigned id;
    unsigned long iters, wset;
    uint64_t sum;
} job_t;

static size_t pick_size(uint64_t *rng)
{
    uint32_t r = rng_below(rng, 100);
    if (r < 80)
        return rng_range(rng, 16, 256);
    if (r < 95)
        return rng_range(rng, 257, 2048);
    return rng_range(rng, 2049, 16384);
}

static void *worker(void *arg)
{
    job_t *j = arg;
    uint64_t rng = 0x5EED0000ull + j->id;
    void **blk = calloc(j->wset, sizeof *blk);
    size_t *len = calloc(j->wset, sizeof *len);
    uint64_t *tag = calloc(j->wset, sizeof *tag);
    if (blk == NULL || len == NULL || tag == NULL)
        die("calloc failed", j->wset);
    for (unsigned long i = 0; i < j->iters; i++) {
        uint32_t s = rng_below(&rng, (uint32_t)j->wset);
        if (blk[s] != NULL) {
            check_block(blk[s], len[s], tag[s]);
            j->sum = mix(j->sum, len[s]);
            free(blk[s]);
        }
        len[s] = pick_size(&rng);
        tag[s] = rng_next(&rng);
        blk[s] = xmalloc(len[s]);
        tag_block(blk[s], len[s], tag[s]);
    }
    for (unsigned long s = 0; s < j->wset; s++) {
        if (blk[s] != NULL) {
            check_block(blk[s], len[s], tag[s]);
            free(blk[s]);
        }
    }
    free(blk);
    free(len);
    free(tag);
    return NULL;
}

int main(int argc, char **argv)
{
    unsigned nthreads = (unsigned)arg_or(argc, argv, 1, 2);
    unsigned long iters = arg_or(argc, argv, 2, 1000000);
    unsigned long wset = arg_or(argc, argv, 3, 1000);
    if (nthreads < 1 || nthreads > 256 || wset < 1)
        die("bad arguments", 0);
    pthread_t tid[256];
    job_t job[256];
    for (unsigned t = 0; t < nthreads; t++) {
        job[t] = (job_t){.id = t, .iters = iters, .wset = wset};
        if (pthread_create(&tid[t], NULL, worker, &job[t]) != 0)
            die("pthread_create failed", t);
    }
    uint64_t sum = 0;
    for (unsigned t = 0; t < nthreads; t++) {
        pthread_join(tid[t], NULL);
        sum += job[t].sum;
    }
    printf("thread ok threads=%u iterations=%lu sum=%" PRIx64 "\n", nthreads, iters, sum);
    return 0;
}
