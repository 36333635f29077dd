/*
 * stress: multithreaded allocator stress with address-derived cookies,
 * cross-thread frees, thread churn and an RSS bound.
 *
 * Usage: stress [-s seconds] [-r rounds] [-t threads] [-o ops] [-q] [-l]
 *        (defaults: 3 seconds, at least 8 rounds, 8 threads, 20000 ops per
 *        thread and round; -q prints only every 10th round line; -l leaks
 *        every 4th block handed to another thread instead of freeing it: a
 *        check that the RSS bound catches a leak)
 *
 * Runs rounds until both the time and the round count are reached.  Every
 * round creates `threads` threads and joins them all: no thread lives longer
 * than one round.  Each thread does `ops` random operations on its private
 * slots:
 *   - allocation (malloc, calloc, posix_memalign, aligned_alloc) of a random
 *     size weighted to small: 1..256 B (75 %), 257 B..4 KiB (15 %), 4..32 KiB
 *     (9 %) and rare large ones of 32 KiB..2 MiB (1 %);
 *   - realloc to a new random size (the common prefix is checked against the
 *     old address's cookie, then the block is filled with the new one);
 *   - free.
 * Every block is filled with a cookie derived from its address and its size
 * (so a block handed out twice, or written by someone else, is caught) and
 * checked before each realloc and free.  A quarter of all allocations are
 * passed to other threads through a shared array of slots: the block that
 * was in the slot is checked and freed by the thread that displaced it.  At
 * the end of a round each thread leaves some of its private blocks in the
 * shared array (objects outliving the thread that allocated them, freed by
 * the next round's threads) and frees the others.
 *
 * After every round the main thread reads RSS from /proc/self/statm and
 * prints one line.  RSS is bounded when the largest RSS of the last
 * WINDOW rounds is at most 1.5 x the largest RSS of the first WINDOW rounds
 * (after one warm-up round) plus 32 MiB, WINDOW = min(5, rounds / 4).  The
 * live set is bounded by construction (fixed slot counts), so an allocator
 * that leaks, or fragments without bound, fails this.
 *
 * Exit status: 0 ok; 1 usage or system error; 2 corruption (a line on
 * stderr names the block, its size, the offset, the expected and the found
 * byte); 3 RSS not bounded.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
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
    MAX_THREADS = 64,
    LOCAL_SLOTS = 512,
    SHARED_SLOTS = 4096,
    SHARED_LOCKS = 64,
    MAX_ROUNDS = 100000,
    MAX_WINDOW = 5,
};

#define MiB (1024.0 * 1024.0)
#define SLACK_BYTES (32u << 20)
#define GROWTH 1.5

typedef struct {
    unsigned char *p;
    size_t size;
    int owner; /* thread index that allocated it (for the shared slots) */
} block;

static block shared[SHARED_SLOTS];
static pthread_mutex_t shared_lock[SHARED_LOCKS];

static atomic_ulong n_allocs, n_frees, n_reallocs, n_cross_frees, n_handoffs, n_large,
    n_bytes_checked;

static int nthreads = 8;
static int leak;
static unsigned long ops_per_round = 20000;

/* ---- random numbers and cookies --------------------------------------- */

static size_t random_size(uint64_t *rng)
{
    uint64_t r = splitmix64(rng);
    unsigned bucket = (unsigned)(r % 100);
    r >>= 8;
    if (bucket < 75)
        return 1 + r % 256;
    if (bucket < 90)
        return 257 + r % (4096 - 256);
    if (bucket < 99)
        return 4097 + r % (32768 - 4096);
    return 32769 + r % ((2u << 20) - 32768);
}

/* The cookie word for the 8-byte word k of the block at p of `size` bytes. */
static uint64_t cookie_seed(uintptr_t p, size_t size)
{
    uint64_t s = (uint64_t)p * 0x9E3779B97F4A7C15ULL ^ (uint64_t)size << 40;
    return s ^ (s >> 29) ^ 0xC0FFEE;
}

static inline uint64_t cookie_word(uint64_t seed, size_t k)
{
    uint64_t z = seed + k * 0xD1B54A32D192ED03ULL;
    return z ^ (z >> 31);
}

static void fill(unsigned char *p, size_t size)
{
    uint64_t seed = cookie_seed((uintptr_t)p, size);
    size_t words = size / 8;
    for (size_t k = 0; k < words; k++) {
        uint64_t w = cookie_word(seed, k);
        memcpy(p + 8 * k, &w, 8);
    }
    uint64_t w = cookie_word(seed, words);
    memcpy(p + 8 * words, &w, size % 8);
}

static void corruption(const char *what, const unsigned char *p, size_t size, size_t off,
                       unsigned expected, unsigned found, int thread)
{
    fprintf(stderr,
            "stress: CORRUPTION (%s) in thread %d: block %p of %zu B, byte %zu: expected "
            "%#04x, found %#04x\n",
            what, thread, (const void *)p, size, off, expected, found);
    fflush(stderr);
    _exit(2);
}

/* Checks the first `len` bytes of a block filled by fill(cookie_of, size),
 * now at p. */
static void check_at(const unsigned char *p, uintptr_t cookie_of, size_t size, size_t len,
                     const char *what, int thread)
{
    uint64_t seed = cookie_seed(cookie_of, size);
    size_t words = len / 8;
    for (size_t k = 0; k < words; k++) {
        uint64_t w = cookie_word(seed, k), got;
        memcpy(&got, p + 8 * k, 8);
        if (got != w) {
            size_t i = 0;
            while (((w >> (8 * i)) & 0xff) == ((got >> (8 * i)) & 0xff))
                i++;
            corruption(what, p, size, 8 * k + i, (unsigned)(w >> (8 * i)) & 0xff,
                       (unsigned)(got >> (8 * i)) & 0xff, thread);
        }
    }
    uint64_t w = cookie_word(seed, words);
    for (size_t i = 0; i < len % 8; i++)
        if (p[8 * words + i] != ((w >> (8 * i)) & 0xff))
            corruption(what, p, size, 8 * words + i, (unsigned)(w >> (8 * i)) & 0xff,
                       p[8 * words + i], thread);
    atomic_fetch_add_explicit(&n_bytes_checked, len, memory_order_relaxed);
}

static void check(const block *b, const char *what, int thread)
{
    check_at(b->p, (uintptr_t)b->p, b->size, b->size, what, thread);
}

/* ---- the per-thread work ---------------------------------------------- */

static void die(const char *msg, size_t size, int thread)
{
    fprintf(stderr, "stress: FAIL in thread %d: %s (size %zu, errno %d)\n", thread, msg, size,
            errno);
    fflush(stderr);
    _exit(2);
}

static unsigned char *allocate(size_t size, uint64_t *rng, int thread)
{
    uint64_t r = splitmix64(rng) % 16;
    unsigned char *p;
    if (r < 10) {
        p = malloc(size);
    } else if (r < 13) {
        p = calloc(1, size);
        if (p)
            for (size_t i = 0; i < size; i++)
                if (p[i] != 0)
                    corruption("calloc not zeroed", p, size, i, 0, p[i], thread);
    } else if (r < 15) {
        void *q = NULL;
        size_t align = (size_t)16 << (splitmix64(rng) % 9); /* 16 .. 4096 */
        int rc = posix_memalign(&q, align, size);
        if (rc != 0)
            errno = rc;
        if (rc == 0 && ((uintptr_t)q & (align - 1)))
            die("posix_memalign misaligned", size, thread);
        p = q;
    } else {
        size_t align = (size_t)64 << (splitmix64(rng) % 4); /* 64 .. 512 */
        size_t n = (size + align - 1) / align * align;
        p = aligned_alloc(align, n);
        if (p && ((uintptr_t)p & (align - 1)))
            die("aligned_alloc misaligned", size, thread);
    }
    if (p == NULL)
        die("allocation returned NULL", size, thread);
    atomic_fetch_add_explicit(&n_allocs, 1, memory_order_relaxed);
    if (size > 32768)
        atomic_fetch_add_explicit(&n_large, 1, memory_order_relaxed);
    fill(p, size);
    return p;
}

static void release(block *b, const char *what, int thread)
{
    check(b, what, thread);
    if (!leak || atomic_load_explicit(&n_frees, memory_order_relaxed) % 4 != 0 ||
        strcmp(what, "shared block") != 0)
        free(b->p);
    atomic_fetch_add_explicit(&n_frees, 1, memory_order_relaxed);
    if (b->owner != thread)
        atomic_fetch_add_explicit(&n_cross_frees, 1, memory_order_relaxed);
    b->p = NULL;
}

/* Puts b into a shared slot; frees the block that was there. */
static void hand_off(block b, uint64_t *rng, int thread)
{
    unsigned slot = (unsigned)(splitmix64(rng) % SHARED_SLOTS);
    pthread_mutex_t *lock = &shared_lock[slot % SHARED_LOCKS];
    pthread_mutex_lock(lock);
    block old = shared[slot];
    shared[slot] = b;
    pthread_mutex_unlock(lock);
    atomic_fetch_add_explicit(&n_handoffs, 1, memory_order_relaxed);
    if (old.p)
        release(&old, "shared block", thread);
}

typedef struct {
    int index;
    unsigned round;
    uint64_t seed;
} worker_arg;

static void *worker(void *argp)
{
    worker_arg *arg = argp;
    int me = arg->index;
    uint64_t rng = arg->seed;
    block local[LOCAL_SLOTS];
    memset(local, 0, sizeof local);

    for (unsigned long i = 0; i < ops_per_round; i++) {
        uint64_t r = splitmix64(&rng);
        block *b = &local[r % LOCAL_SLOTS];
        unsigned op = (unsigned)((r >> 16) % 8);
        if (b->p == NULL) {
            size_t size = random_size(&rng);
            block nb = {allocate(size, &rng, me), size, me};
            if ((r >> 32) % 4 == 0)
                hand_off(nb, &rng, me); /* a quarter of the blocks */
            else
                *b = nb;
        } else if (op < 2) {
            size_t size = random_size(&rng);
            check(b, "before realloc", me);
            uintptr_t old = (uintptr_t)b->p;
            unsigned char *q = realloc(b->p, size);
            if (q == NULL)
                die("realloc returned NULL", size, me);
            size_t keep = size < b->size ? size : b->size;
            check_at(q, old, b->size, keep, "after realloc", me);
            atomic_fetch_add_explicit(&n_reallocs, 1, memory_order_relaxed);
            fill(q, size);
            /* the block now belongs to this thread's realloc */
            *b = (block){q, size, me};
        } else {
            release(b, "before free", me);
        }
    }
    /* Tear-down: one block in eight outlives this thread in the shared
     * array; the rest is freed here. */
    for (unsigned s = 0; s < LOCAL_SLOTS; s++) {
        if (local[s].p == NULL)
            continue;
        if (s % 8 == arg->round % 8)
            hand_off(local[s], &rng, me);
        else
            release(&local[s], "at thread exit", me);
        local[s].p = NULL;
    }
    return NULL;
}

/* ---- main --------------------------------------------------------------- */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, resident = 0;
    if (f == NULL)
        return 0;
    if (fscanf(f, "%lu %lu", &size, &resident) != 2)
        resident = 0;
    fclose(f);
    return (double)resident * (double)sysconf(_SC_PAGESIZE);
}

static double rss_hist[MAX_ROUNDS];

static double max_of(const double *v, unsigned n)
{
    double m = 0;
    for (unsigned i = 0; i < n; i++)
        if (v[i] > m)
            m = v[i];
    return m;
}

static void usage(void)
{
    fprintf(stderr, "usage: stress [-s seconds] [-r rounds] [-t threads] [-o ops] [-q]\n");
    exit(1);
}

int main(int argc, char **argv)
{
    double seconds = 3;
    unsigned min_rounds = 8;
    int quiet = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-q") == 0 || strcmp(a, "-l") == 0) {
            quiet |= a[1] == 'q';
            leak |= a[1] == 'l';
            continue;
        }
        if (i + 1 >= argc || a[0] != '-' || a[2] != '\0')
            usage();
        const char *v = argv[++i];
        switch (a[1]) {
        case 's': seconds = atof(v); break;
        case 'r': min_rounds = (unsigned)strtoul(v, NULL, 10); break;
        case 't': nthreads = atoi(v); break;
        case 'o': ops_per_round = strtoul(v, NULL, 10); break;
        default: usage();
        }
    }
    if (nthreads < 1 || nthreads > MAX_THREADS || min_rounds < 1 || min_rounds >= MAX_ROUNDS)
        usage();
    for (int i = 0; i < SHARED_LOCKS; i++)
        pthread_mutex_init(&shared_lock[i], NULL);

    printf("stress: threads=%d ops/thread/round=%lu seconds>=%.0f rounds>=%u%s\n", nthreads,
           ops_per_round, seconds, min_rounds, leak ? " (leaking on purpose)" : "");
    fflush(stdout);

    double start = now();
    unsigned rounds = 0;
    uint64_t seed_rng = 0x5EED;
    while (rounds < MAX_ROUNDS && (rounds < min_rounds || now() - start < seconds)) {
        pthread_t th[MAX_THREADS];
        worker_arg args[MAX_THREADS];
        double t0 = now();
        for (int t = 0; t < nthreads; t++) {
            args[t] = (worker_arg){t, rounds, splitmix64(&seed_rng)};
            int rc = pthread_create(&th[t], NULL, worker, &args[t]);
            if (rc != 0) {
                fprintf(stderr, "stress: pthread_create: %s\n", strerror(rc));
                return 1;
            }
        }
        for (int t = 0; t < nthreads; t++)
            pthread_join(th[t], NULL);
        rss_hist[rounds] = rss_bytes();
        if (!quiet || rounds % 10 == 0)
            printf("stress: round %u: %.2f s, rss %.1f MiB\n", rounds, now() - t0,
                   rss_hist[rounds] / MiB);
        fflush(stdout);
        rounds++;
    }
    double elapsed = now() - start;

    /* Drain the shared array: blocks of threads that are all gone now. */
    for (unsigned s = 0; s < SHARED_SLOTS; s++)
        if (shared[s].p)
            release(&shared[s], "drained at exit", -1);

    unsigned window = rounds / 4 < MAX_WINDOW ? rounds / 4 : MAX_WINDOW;
    if (window < 1)
        window = 1;
    unsigned first_from = rounds > window + 1 ? 1 : 0; /* round 0 warms up */
    double first = max_of(rss_hist + first_from, window);
    double last = max_of(rss_hist + rounds - window, window);
    double bound = GROWTH * first + SLACK_BYTES;
    double peak = max_of(rss_hist, rounds);
    int bounded = last <= bound;

    printf("stress: rounds=%u seconds=%.1f threads_created=%lu allocs=%lu frees=%lu "
           "reallocs=%lu large=%lu handoffs=%lu cross_thread_frees=%lu checked=%.0f MiB\n",
           rounds, elapsed, (unsigned long)rounds * (unsigned long)nthreads,
           atomic_load(&n_allocs), atomic_load(&n_frees), atomic_load(&n_reallocs),
           atomic_load(&n_large), atomic_load(&n_handoffs), atomic_load(&n_cross_frees),
           (double)atomic_load(&n_bytes_checked) / MiB);
    printf("stress: rss first %u rounds max %.1f MiB, last %u rounds max %.1f MiB, peak %.1f "
           "MiB, bound %.1f MiB (%.1f x first + %u MiB): %s\n",
           window, first / MiB, window, last / MiB, peak / MiB, bound / MiB, GROWTH,
           SLACK_BYTES >> 20, bounded ? "bounded" : "NOT BOUNDED");
    if (atomic_load(&n_allocs) != atomic_load(&n_frees)) {
        printf("stress: FAIL allocs != frees\n");
        return 2;
    }
    if (!bounded) {
        printf("stress: FAIL rss grew\n");
        return 3;
    }
    printf("stress: corruptions=0 ok\n");
    return 0;
}
