/* prodcons: producer -> consumer.
 *
 * Usage: prodcons PAIRS OBJECTS
 *
 * PAIRS producer/consumer pairs. Each producer allocates OBJECTS blocks of
 * 16..1024 B, tags them and hands them, in batches of 64 through a bounded
 * ring of 64 batches, to its consumer, which checks and frees them. Every
 * free is a remote free and the producer never gets its memory back
 * directly: the pattern of message queues and of xmalloc-test, hard on
 * thread caches that only fill from local frees (memory can pile up where
 * nobody allocates). Batches keep the hand-off itself cheap, so the time is
 * the allocator's, not the queue's.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#include "common.h"

enum { BATCH = 64, RING = 64 };

typedef struct {
    _Alignas(64) _Atomic unsigned long head; /* batches pushed (producer) */
    _Alignas(64) _Atomic unsigned long tail; /* batches popped (consumer) */
    _Alignas(64) unsigned char *slot[RING][BATCH];
    unsigned long objects;
    unsigned id;
    uint64_t sum;
} ring_t;

/* Spin a little, then yield: pairs may outnumber the cores. */
static void backoff(unsigned *spins)
{
    if (++*spins > 64) {
        sched_yield();
        *spins = 0;
    }
}

static void *producer(void *arg)
{
    ring_t *q = arg;
    uint64_t rng = 1000 + q->id;
    for (unsigned long i = 0; i < q->objects; i += BATCH) {
        unsigned spins = 0;
        unsigned long h = i / BATCH;
        while (h - atomic_load_explicit(&q->tail, memory_order_acquire) >= RING)
            backoff(&spins);
        unsigned char **batch = q->slot[h % RING];
        for (unsigned k = 0; k < BATCH; k++) {
            if (i + k >= q->objects) {
                batch[k] = NULL;
                continue;
            }
            size_t n = rng_range(&rng, 16, 1024);
            unsigned char *p = xmalloc(n);
            uint32_t len = (uint32_t)n;
            memcpy(p, &len, 4);
            p[n - 1] = (unsigned char)(i + k);
            batch[k] = p;
        }
        atomic_store_explicit(&q->head, h + 1, memory_order_release);
    }
    return NULL;
}

static void *consumer(void *arg)
{
    ring_t *q = arg;
    for (unsigned long i = 0; i < q->objects; i += BATCH) {
        unsigned spins = 0;
        unsigned long t = i / BATCH;
        while (atomic_load_explicit(&q->head, memory_order_acquire) == t)
            backoff(&spins);
        unsigned char **batch = q->slot[t % RING];
        for (unsigned k = 0; k < BATCH && i + k < q->objects; k++) {
            unsigned char *p = batch[k];
            uint32_t len;
            memcpy(&len, p, 4);
            if (len < 16 || len > 1024 || p[len - 1] != (unsigned char)(i + k))
                die("corrupted message", i + k);
            q->sum = mix(q->sum, len);
            free(p);
        }
        atomic_store_explicit(&q->tail, t + 1, memory_order_release);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    unsigned pairs = (unsigned)arg_or(argc, argv, 1, 1);
    unsigned long objects = arg_or(argc, argv, 2, 2000000);
    if (pairs < 1 || pairs > 64)
        die("bad arguments", 0);
    ring_t *q = aligned_alloc(64, pairs * sizeof(ring_t));
    pthread_t tid[128];
    if (q == NULL)
        die("aligned_alloc failed", pairs);
    for (unsigned i = 0; i < pairs; i++) {
        memset(&q[i], 0, sizeof q[i]);
        q[i].objects = objects;
        q[i].id = i;
        if (pthread_create(&tid[2 * i], NULL, producer, &q[i]) != 0 ||
            pthread_create(&tid[2 * i + 1], NULL, consumer, &q[i]) != 0)
            die("pthread_create failed", i);
    }
    uint64_t sum = 0;
    for (unsigned i = 0; i < 2 * pairs; i++)
        pthread_join(tid[i], NULL);
    for (unsigned i = 0; i < pairs; i++)
        sum += q[i].sum;
    free(q);
    printf("prodcons ok pairs=%u objects=%lu sum=%" PRIx64 "\n", pairs, objects, sum);
    return 0;
}
