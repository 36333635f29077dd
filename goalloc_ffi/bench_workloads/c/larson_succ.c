/* larson_succ: Larson and Krishnan's server benchmark as the original
 * paper runs it, with thread succession.
 *
 * Usage: larson_succ THREADS GENERATIONS OPS [SLOTS]
 *
 * The main thread fills THREADS arrays of SLOTS (default 5000) blocks of
 * 8..1000 B. Thread t works on array t: OPS times it frees a random block
 * (after checking it) and allocates one of a random size in its place.
 * Then it starts a successor thread that inherits the array (blocks the
 * main thread, its predecessors and itself allocated) and exits; after
 * GENERATIONS such threads per array the last one reports. So thread
 * creation and exit are in the loop, with live blocks handed on each time:
 * a thread cache is set up and torn down per generation, and every new
 * thread frees into spans whose owner is gone.
 */
#include <pthread.h>

#include "common.h"

typedef struct {
    unsigned array;
    unsigned long generation;
} job_t;

static unsigned nthreads;
static unsigned long generations, ops, nslots;
static obj_t **arrays;
static uint64_t *sums;
static job_t *jobs;
static unsigned finished;
static pthread_mutex_t done_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t done_cond = PTHREAD_COND_INITIALIZER;
static pthread_attr_t detached;

static void replace(obj_t *o, uint64_t *rng, uint64_t *sum)
{
    /* the length is drawn before the tag, as the stream always was */
    size_t len = rng_range(rng, 8, 1000);
    obj_replace(o, len, rng, sum);
}

static void *worker(void *arg)
{
    job_t *j = arg;
    obj_t *a = arrays[j->array];
    /* the stream of (array, generation) does not depend on scheduling */
    uint64_t rng = (j->array + 1) * 0x9E3779B97F4A7C15ull + j->generation;
    for (unsigned long i = 0; i < ops; i++)
        replace(&a[rng_below(&rng, (uint32_t)nslots)], &rng, &sums[j->array]);
    if (++j->generation < generations) {
        pthread_t next;
        if (pthread_create(&next, &detached, worker, j) != 0)
            die("pthread_create failed", j->generation);
        return NULL; /* this thread exits; its successor goes on */
    }
    pthread_mutex_lock(&done_lock);
    finished++;
    pthread_cond_signal(&done_cond);
    pthread_mutex_unlock(&done_lock);
    return NULL;
}

int main(int argc, char **argv)
{
    nthreads = (unsigned)arg_or(argc, argv, 1, 2);
    generations = arg_or(argc, argv, 2, 100);
    ops = arg_or(argc, argv, 3, 20000);
    nslots = arg_or(argc, argv, 4, 5000);
    if (nthreads < 1 || nthreads > 256 || nslots < 1 || generations < 1)
        die("bad arguments", 0);
    arrays = calloc(nthreads, sizeof *arrays);
    sums = calloc(nthreads, sizeof *sums);
    jobs = calloc(nthreads, sizeof *jobs);
    if (arrays == NULL || sums == NULL || jobs == NULL || pthread_attr_init(&detached) != 0 ||
        pthread_attr_setdetachstate(&detached, PTHREAD_CREATE_DETACHED) != 0)
        die("setup failed", 0);
    for (unsigned t = 0; t < nthreads; t++) {
        if ((arrays[t] = calloc(nslots, sizeof(obj_t))) == NULL)
            die("calloc failed", nslots);
        uint64_t rng = 0x5EED0000ull + t;
        for (unsigned long s = 0; s < nslots; s++)
            replace(&arrays[t][s], &rng, &sums[t]);
    }
    for (unsigned t = 0; t < nthreads; t++) {
        jobs[t] = (job_t){t, 0};
        pthread_t tid;
        if (pthread_create(&tid, &detached, worker, &jobs[t]) != 0)
            die("pthread_create failed", t);
    }
    pthread_mutex_lock(&done_lock);
    while (finished < nthreads)
        pthread_cond_wait(&done_cond, &done_lock);
    pthread_mutex_unlock(&done_lock);
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
    printf("larson_succ ok threads=%u generations=%lu ops=%lu sum=%" PRIx64 "\n", nthreads, generations,
           ops, sum);
    return 0;
}
