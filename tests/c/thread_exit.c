/*
 * thread_exit: many short-lived threads, each leaving objects for others to
 * free; RSS must stay bounded.
 *
 * Usage: thread_exit [threads [concurrency]]        (defaults: 2000, 8)
 *
 * The main thread starts `threads` threads in batches of `concurrency` and
 * joins each batch (every 16th thread is detached instead and reports its
 * end through a counter).  Each thread allocates OBJECTS blocks of random
 * sizes (tiny 1..15 B, small, medium, and a few large ones of 64..256 KiB),
 * fills each with a cookie derived from its address, then:
 *   - frees about a third of them itself;
 *   - swaps about a third into a shared array of slots, checking and freeing
 *     the block it displaces (allocated by another thread, most often one
 *     that has exited already);
 *   - leaves the rest live in the shared "leftover" ring, where the thread
 *     started LAG threads later finds, checks and frees them.
 * So every thread exits with objects still live, and most frees are of
 * objects whose allocating thread is gone.
 *
 * RSS and VM size come from /proc/self/statm after every SAMPLE_EVERY
 * threads.  RSS is bounded when the largest RSS of the last quarter of the
 * samples is at most 1.5 x the largest of the first quarter (the first
 * sample excluded) plus 16 MiB.
 *
 * Exit status: 0 ok; 1 usage or system error; 2 corruption; 3 RSS not
 * bounded.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "testlib.h"

enum {
    OBJECTS = 48,
    SHARED_SLOTS = 1024,
    LAG = 64,             /* leftovers are freed by the thread started LAG later */
    LEFTOVER_PER_THREAD = 16,
    MAX_CONCURRENCY = 256,
    MAX_SAMPLES = 64,
};

#define MiB (1024.0 * 1024.0)
#define SLACK_BYTES (16u << 20)
#define GROWTH 1.5

typedef struct {
    unsigned char *p;
    size_t size;
} block;

static _Atomic(block *) shared[SHARED_SLOTS]; /* each points to a heap-allocated block record */

/* leftovers[t % LAG]: what thread t left for thread t + LAG. */
static block leftovers[LAG][LEFTOVER_PER_THREAD];
static pthread_mutex_t leftover_lock[LAG];

static atomic_ulong n_allocs, n_frees, n_foreign_frees, n_large;
static atomic_int detached_running;

static size_t random_size(uint64_t *rng)
{
    uint64_t r = splitmix64(rng);
    unsigned bucket = (unsigned)(r % 100);
    r >>= 8;
    if (bucket < 25)
        return 1 + r % 15;
    if (bucket < 85)
        return 16 + r % 1009;
    if (bucket < 98)
        return 1025 + r % (32768 - 1024);
    return 65536 + r % (192 * 1024);
}

static unsigned char cookie(uintptr_t p, size_t i)
{
    uint64_t z = (uint64_t)p * 0x9E3779B97F4A7C15ULL + i * 0xD1B54A32D192ED03ULL;
    return (unsigned char)(z >> 56);
}

static void fill(block b)
{
    for (size_t i = 0; i < b.size; i++)
        b.p[i] = cookie((uintptr_t)b.p, i);
}

static void fail(const char *what, block b, size_t off)
{
    fprintf(stderr, "thread_exit: CORRUPTION (%s): block %p of %zu B, byte %zu\n", what,
            (void *)b.p, b.size, off);
    fflush(stderr);
    _exit(2);
}

static void check_and_free(block b, const char *what, int foreign)
{
    for (size_t i = 0; i < b.size; i++)
        if (b.p[i] != cookie((uintptr_t)b.p, i))
            fail(what, b, i);
    free(b.p);
    atomic_fetch_add_explicit(&n_frees, 1, memory_order_relaxed);
    if (foreign)
        atomic_fetch_add_explicit(&n_foreign_frees, 1, memory_order_relaxed);
}

static void *worker(void *arg)
{
    uint64_t index = (uint64_t)(uintptr_t)arg >> 1;
    int detached = (int)((uintptr_t)arg & 1);
    uint64_t rng = index * 0x2545F4914F6CDD1DULL + 1;
    block mine[OBJECTS];

    for (unsigned i = 0; i < OBJECTS; i++) {
        size_t size = random_size(&rng);
        unsigned char *p = (i % 5 == 0) ? calloc(1, size) : malloc(size);
        if (p == NULL) {
            fprintf(stderr, "thread_exit: allocation of %zu B failed (errno %d)\n", size, errno);
            _exit(1);
        }
        if (size > 32768)
            atomic_fetch_add_explicit(&n_large, 1, memory_order_relaxed);
        mine[i] = (block){p, size};
        fill(mine[i]);
    }
    atomic_fetch_add_explicit(&n_allocs, OBJECTS, memory_order_relaxed);

    /* What thread index - LAG left: check and free it (its owner is gone or
     * going). */
    unsigned ring = (unsigned)(index % LAG);
    block take[LEFTOVER_PER_THREAD];
    pthread_mutex_lock(&leftover_lock[ring]);
    memcpy(take, leftovers[ring], sizeof take);
    unsigned kept = 0;
    for (unsigned i = 0; i < OBJECTS; i++) {
        if (i % 3 == 2 && kept < LEFTOVER_PER_THREAD) {
            leftovers[ring][kept++] = mine[i];
            mine[i].p = NULL;
        }
    }
    for (; kept < LEFTOVER_PER_THREAD; kept++)
        leftovers[ring][kept] = (block){NULL, 0};
    pthread_mutex_unlock(&leftover_lock[ring]);
    for (unsigned i = 0; i < LEFTOVER_PER_THREAD; i++)
        if (take[i].p)
            check_and_free(take[i], "leftover of an exited thread", 1);

    for (unsigned i = 0; i < OBJECTS; i++) {
        if (mine[i].p == NULL)
            continue;
        if (i % 3 == 1) {
            /* swap into the shared array; the displaced block is foreign */
            block *rec = malloc(sizeof *rec);
            if (rec == NULL)
                _exit(1);
            *rec = mine[i];
            block *old = atomic_exchange(&shared[splitmix64(&rng) % SHARED_SLOTS], rec);
            if (old) {
                check_and_free(*old, "shared block", 1);
                free(old);
            }
        } else {
            check_and_free(mine[i], "own block", 0);
        }
    }
    if (detached)
        atomic_fetch_sub(&detached_running, 1);
    return NULL;
}

static void statm(double *vm, double *rss)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, resident = 0;
    if (f) {
        if (fscanf(f, "%lu %lu", &size, &resident) != 2)
            size = resident = 0;
        fclose(f);
    }
    double page = (double)sysconf(_SC_PAGESIZE);
    *vm = (double)size * page;
    *rss = (double)resident * page;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    unsigned long threads = argc > 1 ? strtoul(argv[1], NULL, 10) : 2000;
    unsigned concurrency = argc > 2 ? (unsigned)strtoul(argv[2], NULL, 10) : 8;
    if (threads < 20 || concurrency < 1 || concurrency > MAX_CONCURRENCY) {
        fprintf(stderr, "usage: thread_exit [threads>=20 [concurrency<=%d]]\n", MAX_CONCURRENCY);
        return 1;
    }
    for (unsigned i = 0; i < LAG; i++)
        pthread_mutex_init(&leftover_lock[i], NULL);
    printf("thread_exit: threads=%lu concurrency=%u objects/thread=%d\n", threads, concurrency,
           OBJECTS);
    fflush(stdout);

    pthread_attr_t detached_attr;
    pthread_attr_init(&detached_attr);
    pthread_attr_setdetachstate(&detached_attr, PTHREAD_CREATE_DETACHED);

    unsigned long sample_every = threads / 20;
    double rss[MAX_SAMPLES], vm[MAX_SAMPLES];
    unsigned nsamples = 0;
    double start = now();
    unsigned long started = 0, ndetached = 0;
    while (started < threads) {
        pthread_t th[MAX_CONCURRENCY];
        int joinable[MAX_CONCURRENCY];
        unsigned n = 0;
        for (; n < concurrency && started < threads; n++, started++) {
            int detach = started % 16 == 15;
            void *arg = (void *)(uintptr_t)(started << 1 | (unsigned long)detach);
            joinable[n] = !detach;
            if (detach)
                atomic_fetch_add(&detached_running, 1);
            int rc = pthread_create(&th[n], detach ? &detached_attr : NULL, worker, arg);
            if (rc != 0) {
                fprintf(stderr, "thread_exit: pthread_create: %s\n", strerror(rc));
                return 1;
            }
            ndetached += (unsigned long)detach;
            if ((started + 1) % sample_every == 0 && nsamples < MAX_SAMPLES) {
                statm(&vm[nsamples], &rss[nsamples]);
                printf("thread_exit: after %lu threads: rss %.1f MiB, vm %.1f MiB\n",
                       started + 1, rss[nsamples] / MiB, vm[nsamples] / MiB);
                fflush(stdout);
                nsamples++;
            }
        }
        for (unsigned i = 0; i < n; i++)
            if (joinable[i])
                pthread_join(th[i], NULL);
    }
    while (atomic_load(&detached_running) > 0) {
        struct timespec nap = {0, 1000000};
        nanosleep(&nap, NULL);
    }
    double elapsed = now() - start;

    /* Whatever is left: every allocating thread has exited. */
    for (unsigned r = 0; r < LAG; r++)
        for (unsigned i = 0; i < LEFTOVER_PER_THREAD; i++)
            if (leftovers[r][i].p)
                check_and_free(leftovers[r][i], "leftover at exit", 1);
    for (unsigned s = 0; s < SHARED_SLOTS; s++) {
        block *rec = atomic_exchange(&shared[s], NULL);
        if (rec) {
            check_and_free(*rec, "shared block at exit", 1);
            free(rec);
        }
    }

    unsigned quarter = nsamples / 4 ? nsamples / 4 : 1;
    double first = 0, last = 0;
    for (unsigned i = 1; i <= quarter && i < nsamples; i++)
        first = rss[i] > first ? rss[i] : first;
    for (unsigned i = nsamples - quarter; i < nsamples; i++)
        last = rss[i] > last ? rss[i] : last;
    double bound = GROWTH * first + SLACK_BYTES;
    int bounded = last <= bound;

    unsigned long allocs = atomic_load(&n_allocs), frees = atomic_load(&n_frees);
    printf("thread_exit: threads=%lu (detached %lu) seconds=%.1f allocs=%lu frees=%lu "
           "foreign_frees=%lu large=%lu\n",
           threads, ndetached, elapsed, allocs, frees, atomic_load(&n_foreign_frees),
           atomic_load(&n_large));
    printf("thread_exit: rss first quarter max %.1f MiB, last quarter max %.1f MiB, bound %.1f "
           "MiB (%.1f x first + %u MiB), vm %.1f -> %.1f MiB: %s\n",
           first / MiB, last / MiB, bound / MiB, GROWTH, SLACK_BYTES >> 20,
           nsamples ? vm[0] / MiB : 0.0, nsamples ? vm[nsamples - 1] / MiB : 0.0,
           bounded ? "bounded" : "NOT BOUNDED");
    if (allocs != frees) {
        printf("thread_exit: FAIL allocs != frees\n");
        return 2;
    }
    if (!bounded) {
        printf("thread_exit: FAIL rss grew\n");
        return 3;
    }
    printf("thread_exit: corruptions=0 ok\n");
    return 0;
}
