/* Benchmark loops for pytest-benchmark (see benchloops.h); only in the cffi
 * extension. See malloc.c for the overview. */
#if defined(GA_TESTING)
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "benchloops.h"
#include "goalloc.h"

#ifndef GA_DEBUG
#define GA_DEBUG 0
#endif

typedef struct {
    void *(*alloc)(size_t);
    void (*release)(void *);
} heap_fns_t;

/* Both heaps are called through these pointers, so each pays the same
 * indirect call and neither can be inlined into (or elided from) a loop. */
static const heap_fns_t heaps[2] = {{malloc, free}, {ga_malloc, ga_free}};

static const heap_fns_t *heap_of(int heap)
{
    return heap == GA_BENCH_SYSTEM || heap == GA_BENCH_GOALLOC ? &heaps[heap] : NULL;
}

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* ---- n malloc/free pairs of one size ------------------------------------------- */

__attribute__((noinline)) static uint64_t pairs_loop(const heap_fns_t *h, size_t size, uint64_t n)
{
    uint64_t sum = 0;
    for (uint64_t i = 0; i < n; i++) {
        volatile unsigned char *p = h->alloc(size);
        if (p == NULL)
            return UINT64_MAX;
        p[0] = (unsigned char)i;
        sum += p[0];
        h->release((void *)p);
    }
    return sum;
}

uint64_t ga_bench_pairs(int heap, size_t size, uint64_t n)
{
    const heap_fns_t *h = heap_of(heap);
    return h == NULL || size == 0 ? UINT64_MAX : pairs_loop(h, size, n);
}

/* ---- mixed sizes in a window of live blocks ------------------------------------- */

static size_t mixed_size(uint64_t r)
{
    unsigned pick = (unsigned)(r % 100);
    r >>= 8;
    if (pick < 70)
        return 16 + r % 113;
    if (pick < 95)
        return 129 + r % 896;
    return 1025 + r % 15360;
}

uint64_t ga_bench_mixed(int heap, uint64_t n, unsigned window, uint64_t seed)
{
    const heap_fns_t *h = heap_of(heap);
    if (h == NULL || window == 0 || window > 65536)
        return UINT64_MAX;
    /* The slot table itself comes from the system heap in both cases. */
    unsigned char **slot = calloc(window, sizeof *slot);
    if (slot == NULL)
        return UINT64_MAX;
    uint64_t sum = 0, rng = seed;
    for (uint64_t i = 0; i < n && sum != UINT64_MAX; i++) {
        uint64_t r = splitmix(&rng);
        unsigned s = (unsigned)((r >> 40) % window);
        if (slot[s] != NULL) {
            sum += slot[s][0];
            h->release(slot[s]);
        }
        slot[s] = h->alloc(mixed_size(r));
        if (slot[s] == NULL)
            sum = UINT64_MAX;
        else
            *(volatile unsigned char *)slot[s] = (unsigned char)i;
    }
    for (unsigned s = 0; s < window; s++)
        h->release(slot[s]);
    free(slot);
    return sum;
}

/* ---- cross-thread: one thread allocates, another frees --------------------------- */

enum { BATCH = 64, RING = 64 };

typedef struct {
    const heap_fns_t *h;
    _Alignas(64) _Atomic uint64_t head; /* batches pushed (producer) */
    _Alignas(64) _Atomic uint64_t tail; /* batches popped (consumer) */
    _Alignas(64) void *ring[RING][BATCH];
    uint64_t nbatches;
    uint64_t sum;
} xthread_t;

static void pause_or_yield(unsigned *spins)
{
    if (++*spins >= 64) {
        sched_yield();
        *spins = 0;
    }
}

static void *xthread_consumer(void *arg)
{
    xthread_t *q = arg;
    for (uint64_t b = 0; b < q->nbatches; b++) {
        unsigned spins = 0;
        while (atomic_load_explicit(&q->head, memory_order_acquire) == b)
            pause_or_yield(&spins);
        void **batch = q->ring[b % RING];
        for (unsigned i = 0; i < BATCH; i++) {
            if (batch[i] == NULL)
                continue;
            q->sum += *(volatile unsigned char *)batch[i];
            q->h->release(batch[i]);
        }
        atomic_store_explicit(&q->tail, b + 1, memory_order_release);
    }
    return NULL;
}

uint64_t ga_bench_cross_thread(int heap, size_t size, uint64_t n)
{
    const heap_fns_t *h = heap_of(heap);
    if (h == NULL || size == 0)
        return UINT64_MAX;
    xthread_t *q = aligned_alloc(64, sizeof *q);
    if (q == NULL)
        return UINT64_MAX;
    atomic_init(&q->head, 0);
    atomic_init(&q->tail, 0);
    q->h = h;
    q->nbatches = (n + BATCH - 1) / BATCH;
    q->sum = 0;
    pthread_t consumer;
    if (pthread_create(&consumer, NULL, xthread_consumer, q) != 0) {
        free(q);
        return UINT64_MAX;
    }
    int failed = 0;
    for (uint64_t b = 0; b < q->nbatches; b++) {
        unsigned spins = 0;
        while (b - atomic_load_explicit(&q->tail, memory_order_acquire) >= RING)
            pause_or_yield(&spins);
        void **batch = q->ring[b % RING];
        for (unsigned i = 0; i < BATCH; i++) {
            unsigned char *p = b * BATCH + i < n ? h->alloc(size) : NULL;
            if (p != NULL)
                *(volatile unsigned char *)p = (unsigned char)i;
            else if (b * BATCH + i < n)
                failed = 1;
            batch[i] = p;
        }
        atomic_store_explicit(&q->head, b + 1, memory_order_release);
    }
    pthread_join(consumer, NULL);
    uint64_t sum = failed ? UINT64_MAX : q->sum;
    free(q);
    return sum;
}

int ga_bench_debug_level(void)
{
    return GA_DEBUG;
}

#endif /* GA_TESTING */
