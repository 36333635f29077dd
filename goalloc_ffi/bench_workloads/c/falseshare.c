/* falseshare: does the allocator put different threads' objects on one
 * cache line?
 *
 * Usage: falseshare THREADS ITERATIONS WRITES [SIZE]
 *
 * Passive phase (Hoard's cache-scratch): the main thread allocates THREADS
 * adjacent SIZE-byte objects (default 8) and hands one to each worker, which
 * frees it; then each worker ITERATIONS times allocates a SIZE-byte object,
 * writes every byte of it WRITES times and frees it. An allocator that gives
 * the worker back the object it just freed keeps the workers on the main
 * thread's cache line. Active phase (cache-thrash): the same loop without
 * the hand-over, so only objects the workers allocate side by side from a
 * shared pool can share a line. Wall time is the measure: a false-sharing
 * allocator makes the writes ping-pong the line between the cores.
 */
#include <pthread.h>

#include "common.h"

typedef struct {
    unsigned char *given;
    unsigned long iters, writes, size;
    uint64_t sum;
} job_t;

static void *worker(void *arg)
{
    job_t *j = arg;
    if (j->given != NULL)
        free(j->given);
    for (unsigned long i = 0; i < j->iters; i++) {
        volatile unsigned char *p = xmalloc(j->size);
        for (unsigned long b = 0; b < j->size; b++)
            p[b] = 0;
        for (unsigned long w = 0; w < j->writes; w++)
            for (unsigned long b = 0; b < j->size; b++)
                p[b] = (unsigned char)(p[b] + 1);
        j->sum += p[0];
        free((void *)p);
    }
    return NULL;
}

static uint64_t phase(unsigned nthreads, int passive, unsigned long iters, unsigned long writes,
                      unsigned long size)
{
    pthread_t tid[256];
    job_t job[256];
    for (unsigned t = 0; t < nthreads; t++) {
        job[t] = (job_t){.iters = iters, .writes = writes, .size = size};
        if (passive)
            job[t].given = xmalloc(size);
    }
    for (unsigned t = 0; t < nthreads; t++)
        if (pthread_create(&tid[t], NULL, worker, &job[t]) != 0)
            die("pthread_create failed", t);
    uint64_t sum = 0;
    for (unsigned t = 0; t < nthreads; t++) {
        pthread_join(tid[t], NULL);
        sum += job[t].sum;
    }
    return sum;
}

int main(int argc, char **argv)
{
    unsigned nthreads = (unsigned)arg_or(argc, argv, 1, 2);
    unsigned long iters = arg_or(argc, argv, 2, 20000);
    unsigned long writes = arg_or(argc, argv, 3, 1000);
    unsigned long size = arg_or(argc, argv, 4, 8);
    if (nthreads < 1 || nthreads > 256 || size < 1)
        die("bad arguments", 0);
    uint64_t sum = phase(nthreads, 1, iters, writes, size);
    sum += phase(nthreads, 0, iters, writes, size);
    printf("falseshare ok threads=%u iterations=%lu writes=%lu sum=%" PRIu64 "\n", nthreads, iters,
           writes, sum);
    return 0;
}
