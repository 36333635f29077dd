/* threadchurn: threads come and go while allocating; objects outlive them.
 *
 * Usage: threadchurn THREADS GENERATIONS [KEEP] [TEMP]
 *
 * GENERATIONS times, start THREADS threads and join them. Thread t of a
 * generation first frees (after checking) the KEEP blocks (default 1000)
 * that thread t of the previous generation left behind, its owner now dead,
 * then allocates and frees TEMP short-lived blocks (default 4000) and
 * finally leaves KEEP new blocks of 16..2048 B for the next generation.
 * Thread start and exit in the allocator (cache set-up and hand-back),
 * frees into spans whose owner has exited, and whether memory cached by
 * dead threads is found again (peak RSS), as in mstress and mleak.
 */
#include <pthread.h>

#include "common.h"

typedef struct {
    unsigned id;
    unsigned long gen, keep, temp;
    obj_t *left;
    uint64_t sum;
} job_t;

static void *worker(void *arg)
{
    job_t *j = arg;
    uint64_t rng = (j->gen + 1) * 0x9E3779B97F4A7C15ull + j->id;
    for (unsigned long i = 0; i < j->keep; i++) {
        obj_release(&j->left[i], &j->sum);
    }
    void *tmp[64] = {0};
    for (unsigned long i = 0; i < j->temp; i++) {
        size_t n = rng_range(&rng, 8, 512);
        free(tmp[i % 64]);
        tmp[i % 64] = xmalloc(n);
        tag_block(tmp[i % 64], n, i);
    }
    for (unsigned i = 0; i < 64; i++)
        free(tmp[i]);
    for (unsigned long i = 0; i < j->keep; i++) {
        obj_t *o = &j->left[i];
        o->len = (uint32_t)rng_range(&rng, 16, 2048);
        o->tag = rng_next(&rng);
        o->p = xmalloc(o->len);
        tag_block(o->p, o->len, o->tag);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    unsigned nthreads = (unsigned)arg_or(argc, argv, 1, 4);
    unsigned long gens = arg_or(argc, argv, 2, 500);
    unsigned long keep = arg_or(argc, argv, 3, 1000);
    unsigned long temp = arg_or(argc, argv, 4, 4000);
    if (nthreads < 1 || nthreads > 256)
        die("bad arguments", 0);
    job_t job[256];
    pthread_t tid[256];
    for (unsigned t = 0; t < nthreads; t++) {
        job[t] = (job_t){.id = t, .keep = keep, .temp = temp};
        if ((job[t].left = calloc(keep ? keep : 1, sizeof(obj_t))) == NULL)
            die("calloc failed", keep);
    }
    for (unsigned long g = 0; g < gens; g++) {
        for (unsigned t = 0; t < nthreads; t++) {
            job[t].gen = g;
            if (pthread_create(&tid[t], NULL, worker, &job[t]) != 0)
                die("pthread_create failed", t);
        }
        for (unsigned t = 0; t < nthreads; t++)
            pthread_join(tid[t], NULL);
    }
    uint64_t sum = 0;
    for (unsigned t = 0; t < nthreads; t++) {
        for (unsigned long i = 0; i < keep; i++) {
            obj_t *o = &job[t].left[i];
            check_block(o->p, o->len, o->tag);
            free(o->p);
        }
        free(job[t].left);
        sum += job[t].sum;
    }
    printf("threadchurn ok threads=%u generations=%lu sum=%" PRIx64 "\n", nthreads, gens, sum);
    return 0;
}
