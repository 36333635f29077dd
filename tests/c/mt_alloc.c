/*
 * mt_alloc: multithreaded allocator stress with pattern checks.
 *
 * Usage: mt_alloc [threads [iterations]]        (defaults: 8 threads, 100000)
 *
 * Wave 1: `threads` workers do random-size malloc/calloc/realloc/
 *         posix_memalign/aligned_alloc/free on private slots, filling every
 *         block with a pattern derived from a unique tag and checking it
 *         before each realloc and free.  Blocks are handed to other threads
 *         through a shared array of atomic slots and freed by whoever takes
 *         them out.  Each worker exits with its private blocks still live.
 * Wave 2: a deallocate-only thread frees wave 1's leftovers while a second
 *         set of workers runs (and takes over wave 1's shared blocks).
 * Main:   grows and shrinks one block by realloc meanwhile, then frees
 *         everything that is left.
 *
 * The printed summary only depends on the per-thread random streams, not on
 * scheduling, so it is identical from run to run and across allocators.
 * Exits 2 (with a message on stderr) on any pattern or bookkeeping mismatch.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testlib.h"

enum {
    LOCAL_SLOTS = 128,
    SHARED_SLOTS = 512,
    MAX_THREADS = 64,
    MAIN_ID = 1000,
};

/* Every block starts with this header; the rest is a tag-derived pattern. */
typedef struct {
    uint64_t tag;
    uint64_t size;
} block_hdr;

typedef struct {
    uint64_t allocs;   /* fresh allocations (malloc, calloc, memalign, ...) */
    uint64_t reallocs; /* successful realloc calls on live blocks */
    uint64_t frees;    /* free calls */
    uint64_t bytes;    /* bytes requested by fresh allocations and reallocs */
    uint64_t created;  /* sum of mix(tag, size) over every block created */
    uint64_t destroyed;/* same sum over every block freed or realloc'ed away */
} stats;

typedef struct {
    unsigned id;
    unsigned iterations;
    uint64_t rng;
    uint64_t next_tag;
    stats st;
    unsigned char *local[LOCAL_SLOTS];
} worker;

static _Atomic(unsigned char *) shared_slots[SHARED_SLOTS];
static worker workers[2 * MAX_THREADS + 1];

static void fail(const char *what, uint64_t tag, uint64_t size, uint64_t at) {
    fprintf(stderr, "mt_alloc: FAIL %s (tag=%016" PRIx64 " size=%" PRIu64
            " offset=%" PRIu64 ")\n", what, tag, size, at);
    _exit(2);
}

static uint64_t mix(uint64_t tag, uint64_t size) {
    uint64_t s = tag ^ (size << 1);
    return splitmix64(&s);
}

static unsigned char pattern_seed(uint64_t tag) {
    return (unsigned char)(tag * 0x2545F4914F6CDD1DULL >> 56);
}

static void fill(unsigned char *p, uint64_t tag, uint64_t size) {
    block_hdr h = {tag, size};
    memcpy(p, &h, sizeof h);
    unsigned char seed = pattern_seed(tag);
    for (uint64_t i = sizeof h; i < size; i++)
        p[i] = (unsigned char)(seed + i);
}

/* Check the first `len` bytes of a block against its own header. */
static block_hdr check_prefix(const unsigned char *p, uint64_t len) {
    block_hdr h;
    memcpy(&h, p, sizeof h);
    if (h.size < sizeof h || h.size > (64u << 20))
        fail("corrupt header", h.tag, h.size, 0);
    if (len > h.size)
        len = h.size;
    unsigned char seed = pattern_seed(h.tag);
    for (uint64_t i = sizeof h; i < len; i++)
        if (p[i] != (unsigned char)(seed + i))
            fail("pattern mismatch", h.tag, h.size, i);
    return h;
}

static void check_usable(const void *p, uint64_t size, uint64_t tag) {
    if (malloc_usable_size((void *)p) < size)
        fail("malloc_usable_size smaller than request", tag, size, 0);
}

/* Size distribution: mostly small, some medium, a few large. */
static uint64_t random_size(uint64_t *rng) {
    uint64_t r = splitmix64(rng);
    unsigned bucket = (unsigned)(r % 1000);
    r >>= 10;
    if (bucket < 900)
        return sizeof(block_hdr) + r % 241;          /* 16 .. 256 */
    if (bucket < 997)
        return 257 + r % (16384 - 257);              /* 257 .. 16 KiB */
    return 16384 + r % (512 * 1024);                 /* 16 KiB .. 528 KiB */
}

static unsigned char *new_block(worker *w) {
    uint64_t size = random_size(&w->rng);
    uint64_t r = splitmix64(&w->rng);
    uint64_t tag = ((uint64_t)w->id << 48) | w->next_tag++;
    unsigned char *p = NULL;

    switch (r % 16) {
    case 10:
    case 11:
    case 12:
        p = calloc(1, size);
        if (p)
            for (uint64_t i = 0; i < size; i++)
                if (p[i])
                    fail("calloc memory not zeroed", tag, size, i);
        break;
    case 13: {
        size_t align = (size_t)16 << ((r >> 8) % 9); /* 16 .. 4096 */
        void *q = NULL;
        if (posix_memalign(&q, align, size) != 0)
            q = NULL;
        if (q && ((uintptr_t)q & (align - 1)))
            fail("posix_memalign misaligned", tag, size, align);
        p = q;
        break;
    }
    case 14: {
        size_t align = 64;
        size = (size + align - 1) & ~(uint64_t)(align - 1);
        p = aligned_alloc(align, size);
        if (p && ((uintptr_t)p & (align - 1)))
            fail("aligned_alloc misaligned", tag, size, align);
        break;
    }
    case 15:
        p = realloc(NULL, size);
        break;
    default:
        p = malloc(size);
        break;
    }
    if (!p)
        fail("allocation returned NULL", tag, size, 0);
    check_usable(p, size, tag);
    fill(p, tag, size);
    w->st.allocs++;
    w->st.bytes += size;
    w->st.created += mix(tag, size);
    return p;
}

static void release(stats *st, unsigned char *p) {
    block_hdr h = check_prefix(p, UINT64_MAX);
    st->frees++;
    st->destroyed += mix(h.tag, h.size);
    free(p);
}

static unsigned char *resize(worker *w, unsigned char *p) {
    block_hdr old = check_prefix(p, UINT64_MAX);
    uint64_t size = random_size(&w->rng);
    unsigned char *q = realloc(p, size);
    if (!q)
        fail("realloc returned NULL", old.tag, size, 0);
    /* The header and the common prefix must have survived the move. */
    check_prefix(q, size < old.size ? size : old.size);
    check_usable(q, size, old.tag);
    uint64_t tag = ((uint64_t)w->id << 48) | w->next_tag++;
    fill(q, tag, size);
    w->st.reallocs++;
    w->st.bytes += size;
    w->st.destroyed += mix(old.tag, old.size);
    w->st.created += mix(tag, size);
    return q;
}

static void *churn(void *arg) {
    worker *w = arg;
    for (unsigned it = 0; it < w->iterations; it++) {
        uint64_t r = splitmix64(&w->rng);
        unsigned slot = (unsigned)(r % LOCAL_SLOTS);
        unsigned char *p = w->local[slot];
        if (!p) {
            w->local[slot] = new_block(w);
            continue;
        }
        switch ((r >> 16) % 8) {
        case 0:
        case 1:
        case 2:
            release(&w->st, p);
            w->local[slot] = NULL;
            break;
        case 3:
        case 4:
            w->local[slot] = resize(w, p);
            break;
        default: {
            /* Hand the block to whichever thread next takes this slot. */
            unsigned char *old =
                atomic_exchange(&shared_slots[(r >> 32) % SHARED_SLOTS], p);
            w->local[slot] = NULL;
            if (old)
                release(&w->st, old);
            break;
        }
        }
    }
    /* Exit with the private blocks still allocated: someone else frees them. */
    return NULL;
}

/* Deallocate-only thread: frees the blocks left by the workers [first, last). */
typedef struct {
    unsigned first, last;
    stats st;
} reaper;

static void *reap(void *arg) {
    reaper *rp = arg;
    for (unsigned t = rp->first; t < rp->last; t++)
        for (unsigned s = 0; s < LOCAL_SLOTS; s++)
            if (workers[t].local[s]) {
                release(&rp->st, workers[t].local[s]);
                workers[t].local[s] = NULL;
            }
    return NULL;
}

/* Main thread: grow one block by realloc to 8 MiB and back down. */
static void grow_shrink(stats *st) {
    uint64_t size = 64, tag = (uint64_t)MAIN_ID << 48;
    unsigned char *p = malloc(size);
    if (!p)
        fail("malloc returned NULL", tag, size, 0);
    fill(p, tag, size);
    st->allocs++;
    st->bytes += size;
    st->created += mix(tag, size);
    for (int step = 0; step < 34; step++) {
        uint64_t next = step < 17 ? size * 2 : size / 2;
        block_hdr old = check_prefix(p, UINT64_MAX);
        unsigned char *q = realloc(p, next);
        if (!q)
            fail("realloc returned NULL", old.tag, next, 0);
        check_prefix(q, next < old.size ? next : old.size);
        p = q;
        size = next;
        fill(p, ++tag, size);
        st->reallocs++;
        st->bytes += size;
        st->destroyed += mix(old.tag, old.size);
        st->created += mix(tag, size);
    }
    release(st, p);
}

static void add(stats *to, const stats *from) {
    to->allocs += from->allocs;
    to->reallocs += from->reallocs;
    to->frees += from->frees;
    to->bytes += from->bytes;
    to->created += from->created;
    to->destroyed += from->destroyed;
}

static void start(pthread_t *th, void *(*fn)(void *), void *arg) {
    if (pthread_create(th, NULL, fn, arg) != 0) {
        fprintf(stderr, "mt_alloc: pthread_create failed\n");
        _exit(2);
    }
}

static void run_wave(unsigned first, unsigned n, unsigned iterations,
                     reaper *rp, stats *main_st) {
    pthread_t th[MAX_THREADS], reaper_th;
    for (unsigned i = 0; i < n; i++) {
        worker *w = &workers[first + i];
        w->id = first + i;
        w->iterations = iterations;
        w->rng = 0x1234567ULL * (first + i + 1);
        start(&th[i], churn, w);
    }
    if (rp)
        start(&reaper_th, reap, rp);
    grow_shrink(main_st);
    for (unsigned i = 0; i < n; i++)
        pthread_join(th[i], NULL);
    if (rp)
        pthread_join(reaper_th, NULL);
}

int main(int argc, char **argv) {
    unsigned nthreads = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : 8;
    unsigned iterations =
        argc > 2 ? (unsigned)strtoul(argv[2], NULL, 10) : 100000;
    if (nthreads < 1 || nthreads > MAX_THREADS) {
        fprintf(stderr, "mt_alloc: threads must be 1..%d\n", MAX_THREADS);
        return 2;
    }

    stats main_st = {0};
    reaper rp = {0, nthreads, {0}};

    run_wave(0, nthreads, iterations, NULL, &main_st);
    run_wave(nthreads, nthreads, iterations, &rp, &main_st);

    /* Free what the (long gone) wave 2 threads and the shared array hold. */
    for (unsigned t = nthreads; t < 2 * nthreads; t++)
        for (unsigned s = 0; s < LOCAL_SLOTS; s++)
            if (workers[t].local[s])
                release(&main_st, workers[t].local[s]);
    for (unsigned s = 0; s < SHARED_SLOTS; s++) {
        unsigned char *p = atomic_exchange(&shared_slots[s], NULL);
        if (p)
            release(&main_st, p);
    }

    stats total = main_st;
    add(&total, &rp.st);
    for (unsigned t = 0; t < 2 * nthreads; t++)
        add(&total, &workers[t].st);

    if (total.allocs != total.frees || total.created != total.destroyed) {
        fprintf(stderr, "mt_alloc: FAIL bookkeeping: allocs=%" PRIu64
                " frees=%" PRIu64 " created=%016" PRIx64
                " destroyed=%016" PRIx64 "\n",
                total.allocs, total.frees, total.created, total.destroyed);
        return 2;
    }
    printf("mt_alloc: threads=%u iterations=%u allocs=%" PRIu64
           " reallocs=%" PRIu64 " frees=%" PRIu64 " bytes=%" PRIu64
           " checksum=%016" PRIx64 " ok\n",
           nthreads, iterations, total.allocs, total.reallocs, total.frees,
           total.bytes, total.created);
    return 0;
}
