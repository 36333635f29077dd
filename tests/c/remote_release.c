/*
 * remote_release: short-lived owner threads hand their last objects to
 * freer threads and exit at once, so that an owner's exit (which folds its
 * spans and returns the empty ones to the page heap) races with the
 * remote frees of the very objects that empty them, while new spans are
 * made from the structs just released.
 *
 * Usage: remote_release [-i generations] [-w owners] [-f freers] [-k objects]
 *                       [-l] [-S] [-u microseconds] [-p microseconds]
 *   -i  owner generations (default 20000); each generation starts `owners`
 *       threads at once and joins them
 *   -w  owner threads per generation (default 4)
 *   -f  freer threads (default 2)
 *   -k  objects each owner allocates and hands off (default 6)
 *   -l  hand over all objects but the last, wait until they are freed,
 *       then hand over the last one and exit at once
 *   -S  interrupt the freers with SIGUSR1 every -p microseconds (default
 *       100); the handler spins -u microseconds (default 50): a free is
 *       then sometimes held half-way for that long, as a preemption would
 *
 * Every object carries a cookie derived from its address, checked by the
 * freer before free.  Exit status 0 ok, 2 corruption, 1 usage or system
 * error; goalloc aborts on its own when it sees a free of a live object
 * whose span was already given back ("invalid pointer or double free").
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { MAX_OWNERS = 64, MAX_FREERS = 16, MAX_K = 64, RING = 1 << 12 };

static int owners = 4, freers = 2, k_objects = 6;
static long generations = 20000;
static int use_signals, last_alone;
static long spin_us = 50, period_us = 100;

/* One ring per freer: owners push (under a lock), the freer pops. */
typedef struct {
    pthread_mutex_t lock;
    void *slot[RING];
    size_t size[RING];
    _Atomic int *count[RING]; /* the owner's count of its objects freed */
    _Atomic unsigned head; /* next to pop (freer) */
    _Atomic unsigned tail; /* next to push (owners, under lock) */
} ring_t;

static ring_t rings[MAX_FREERS];
static _Atomic int done;
static _Atomic unsigned long n_freed, n_alloc;

static uint64_t cookie(const void *p, size_t k) { return (uint64_t)(uintptr_t)p * 0x9E3779B97F4A7C15ull + k; }

static void fill(void *p, size_t n)
{
    for (size_t k = 0; k + 8 <= n; k += 8) {
        uint64_t c = cookie(p, k);
        memcpy((char *)p + k, &c, 8);
    }
}

static void check(void *p, size_t n)
{
    for (size_t k = 0; k + 8 <= n; k += 8) {
        uint64_t c, want = cookie(p, k);
        memcpy(&c, (char *)p + k, 8);
        if (c != want) {
            fprintf(stderr, "remote_release: CORRUPTION: block %p of %zu B, offset %zu\n", p, n, k);
            fflush(stderr);
            _exit(2);
        }
    }
}

static void push(ring_t *r, void *p, size_t n, _Atomic int *count)
{
    pthread_mutex_lock(&r->lock);
    unsigned t = atomic_load_explicit(&r->tail, memory_order_relaxed);
    while (t - atomic_load_explicit(&r->head, memory_order_acquire) >= RING) {
        pthread_mutex_unlock(&r->lock);
        sched_yield();
        pthread_mutex_lock(&r->lock);
        t = atomic_load_explicit(&r->tail, memory_order_relaxed);
    }
    r->slot[t % RING] = p;
    r->size[t % RING] = n;
    r->count[t % RING] = count;
    atomic_store_explicit(&r->tail, t + 1, memory_order_release);
    pthread_mutex_unlock(&r->lock);
}

static void *freer(void *arg)
{
    ring_t *r = arg;
    unsigned h = 0;
    for (;;) {
        unsigned t = atomic_load_explicit(&r->tail, memory_order_acquire);
        if (h == t) {
            if (atomic_load(&done) && h == atomic_load(&r->tail))
                break;
            sched_yield();
            continue;
        }
        for (; h != t; h++) {
            void *p = r->slot[h % RING];
            check(p, r->size[h % RING]);
            _Atomic int *count = r->count[h % RING];
            free(p);
            atomic_fetch_add_explicit(&n_freed, 1, memory_order_relaxed);
            if (count != NULL)
                atomic_fetch_add_explicit(count, 1, memory_order_release);
        }
        atomic_store_explicit(&r->head, h, memory_order_release);
    }
    return NULL;
}

static const size_t sizes[] = {48, 64, 96, 128};

static void *owner(void *arg)
{
    unsigned long g = (unsigned long)(uintptr_t)arg;
    void *mine[MAX_K];
    size_t n = sizes[g % (sizeof sizes / sizeof sizes[0])];
    for (int i = 0; i < k_objects; i++) {
        mine[i] = malloc(n);
        if (mine[i] == NULL) {
            fprintf(stderr, "remote_release: malloc failed\n");
            _exit(1);
        }
        fill(mine[i], n);
    }
    atomic_fetch_add_explicit(&n_alloc, (unsigned long)k_objects, memory_order_relaxed);
    ring_t *r = &rings[g % (unsigned long)freers];
    if (!last_alone) {
        for (int i = 0; i < k_objects; i++)
            push(r, mine[i], n, NULL);
        return NULL; /* exit at once: the cache goes back while the frees run */
    }
    /* -l: all but the last object are freed first, then the last one is
     * handed over and the thread exits at once, so that its exit folds the
     * span while the free that empties it runs. */
    _Atomic int freed = 0;
    for (int i = 0; i < k_objects - 1; i++)
        push(r, mine[i], n, &freed);
    while (atomic_load_explicit(&freed, memory_order_acquire) < k_objects - 1)
        sched_yield();
    push(r, mine[k_objects - 1], n, NULL);
    return NULL;
}

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static void on_signal(int sig)
{
    (void)sig;
    double until = now_us() + (double)spin_us;
    while (now_us() < until)
        ;
}

static pthread_t freer_thread[MAX_FREERS];

static void *signaller(void *arg)
{
    (void)arg;
    struct timespec ts = {0, period_us * 1000};
    unsigned i = 0;
    while (!atomic_load(&done)) {
        pthread_kill(freer_thread[i++ % (unsigned)freers], SIGUSR1);
        nanosleep(&ts, NULL);
    }
    return NULL;
}

static void usage(void)
{
    fprintf(stderr, "usage: remote_release [-i generations] [-w owners] [-f freers] [-k objects] "
                    "[-l] [-S] [-u us] [-p us]\n");
    exit(1);
}

int main(int argc, char **argv)
{
    int c;
    while ((c = getopt(argc, argv, "i:w:f:k:Slu:p:")) != -1) {
        switch (c) {
        case 'i': generations = atol(optarg); break;
        case 'w': owners = atoi(optarg); break;
        case 'f': freers = atoi(optarg); break;
        case 'k': k_objects = atoi(optarg); break;
        case 'S': use_signals = 1; break;
        case 'l': last_alone = 1; break;
        case 'u': spin_us = atol(optarg); break;
        case 'p': period_us = atol(optarg); break;
        default: usage();
        }
    }
    if (owners < 1 || owners > MAX_OWNERS || freers < 1 || freers > MAX_FREERS ||
        k_objects < 1 || k_objects > MAX_K || generations < 1 || period_us < 1 ||
        period_us >= 1000000 || spin_us < 0)
        usage();
    if (use_signals) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_signal;
        sa.sa_flags = SA_RESTART;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGUSR1, &sa, NULL);
    }
    for (int i = 0; i < freers; i++) {
        pthread_mutex_init(&rings[i].lock, NULL);
        if (pthread_create(&freer_thread[i], NULL, freer, &rings[i]) != 0)
            return 1;
    }
    pthread_t sig;
    if (use_signals && pthread_create(&sig, NULL, signaller, NULL) != 0)
        return 1;
    double t0 = now_us();
    unsigned long g = 0;
    for (long gen = 0; gen < generations; gen++) {
        pthread_t th[MAX_OWNERS];
        for (int i = 0; i < owners; i++)
            if (pthread_create(&th[i], NULL, owner, (void *)(uintptr_t)g++) != 0) {
                fprintf(stderr, "remote_release: pthread_create failed\n");
                return 1;
            }
        for (int i = 0; i < owners; i++)
            pthread_join(th[i], NULL);
    }
    atomic_store(&done, 1);
    for (int i = 0; i < freers; i++)
        pthread_join(freer_thread[i], NULL);
    if (use_signals)
        pthread_join(sig, NULL);
    printf("remote_release: generations=%ld owners=%d freers=%d objects=%lu freed=%lu "
           "seconds=%.1f%s\n",
           generations, owners, freers, atomic_load(&n_alloc), atomic_load(&n_freed),
           (now_us() - t0) / 1e6, use_signals ? " (signals)" : "");
    if (atomic_load(&n_alloc) != atomic_load(&n_freed)) {
        printf("remote_release: FAIL allocs != frees\n");
        return 2;
    }
    printf("remote_release: ok\n");
    return 0;
}
