/* The allocator's data: every type with its invariants, the constants of
 * the geometry and the build levels. The place to learn the design's data
 * (the algorithms are described at the top of malloc.c); declarations are
 * in internal.h, the inline fast paths in inline.h. Compiles on its own. */
#ifndef GA_TYPES_H
#define GA_TYPES_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "goalloc.h"
#include "sizeclasses.h"

/* ------------------------------------------------------------------------
 * Build levels and helpers
 * ---------------------------------------------------------------------- */
#ifndef GA_DEBUG
#define GA_DEBUG 0 /* 0 release, 1 cheap asserts, 2 internal asserts, 3 expensive validators */
#endif

#define GA_LIKELY(x) __builtin_expect(!!(x), 1)
#define GA_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define GA_NOINLINE __attribute__((noinline))
#define GA_COLD __attribute__((cold))
#define GA_INLINE static inline __attribute__((always_inline))
#define GA_CACHE_LINE 64

/* Every lock of the allocator: a pthread mutex and, in the debug library
 * (GA_DEBUG >= 3), the thread that holds it, so that a function that needs
 * a lock can check that its caller holds it (ga_assert_held, Go's
 * assertLockHeld) and an unlock by another thread is caught. Taken and
 * let go by ga_lock / ga_unlock (inline.h). */
typedef struct ga_lock {
    pthread_mutex_t m;
#if GA_DEBUG >= 3
    _Atomic uintptr_t owner; /* ga_lock_self() of the holder, 0 when free */
#endif
} ga_lock_t;
#define GA_LOCK_INIT {.m = PTHREAD_MUTEX_INITIALIZER}

/* ------------------------------------------------------------------------
 * Geometry (Go's constants; the size classes themselves are runtime data)
 * ---------------------------------------------------------------------- */
#define GA_ARENA_SHIFT 26                               /* Go logHeapArenaBytes: 64 MiB arenas */
#define GA_ARENA_SIZE ((uintptr_t)1 << GA_ARENA_SHIFT)
#define GA_PAGES_PER_ARENA (GA_ARENA_SIZE >> GA_PAGE_SHIFT) /* 8192 */
#define GA_ADDR_BITS 47                                 /* x86-64 user space without 5-level hints */
#define GA_ARENA_L2_ENTRIES ((uintptr_t)1 << (GA_ADDR_BITS - GA_ARENA_SHIFT))
#define GA_TINY_SIZE 16u                                /* Go maxTinySize: tiny block bytes */
#define GA_TINY_SPC GA_MAX_SIZE_CLASSES                 /* span class of tiny blocks, never shared */
#define GA_NUM_SPC (GA_MAX_SIZE_CLASSES + 1)            /* mcache/mcentral slots */
#define GA_MAX_BITMAP_WORDS (GA_MAX_OBJS_PER_SPAN / 64) /* 16 */

/* Larger requests fail at once with ENOMEM: they cannot fit in the user
 * address space, so nothing (scavenging the heap, growing it) is tried. */
#define GA_MAX_ALLOC (((size_t)1 << GA_ADDR_BITS) - GA_ARENA_SIZE)

/* ------------------------------------------------------------------------
 * Spans (mspan.c)
 * ---------------------------------------------------------------------- */
typedef enum ga_span_state {
    GA_SPAN_DEAD = 0,  /* struct in the fixalloc pool or merged away */
    GA_SPAN_FREE,      /* a free page run, in the page heap's treap */
    GA_SPAN_CACHED,    /* small span owned by one mcache (owner != NULL) */
    GA_SPAN_PARTIAL,   /* small span on its mcentral's partial list */
    GA_SPAN_FULL,      /* small span on its mcentral's full list */
    GA_SPAN_CLAIMED,   /* small span being returned to the page heap */
    GA_SPAN_LARGE,     /* one large object */
    GA_SPAN_META,      /* the allocator's own metadata, taken from the heap when the
                          OS refuses new mappings; its struct is in its first bytes */
    GA_SPAN_PCACHED,   /* a freed large object kept in one thread's page cache */
    GA_SPAN_NSTATES
} ga_span_state_t;

/* A small span in use: cached by a thread, or on mcentral's lists. */
#define GA_SMALL_IN_USE(st) ((st) == GA_SPAN_CACHED || (st) == GA_SPAN_PARTIAL || (st) == GA_SPAN_FULL)
/* An in-use span of whole pages, no slots (spc 0): a large object, live or
 * in a page cache, or metadata. */
#define GA_WHOLE_PAGES(st) ((st) == GA_SPAN_LARGE || (st) == GA_SPAN_PCACHED || (st) == GA_SPAN_META)

/* The bits of word w of a span's bitmaps for the slots below freeindex fi,
 * handed out since the last fold whatever alloc_bits say. */
#define GA_BELOW_FREEINDEX(fi, w)                                                                  \
    ((w) < (fi) / 64 ? ~0ull : (w) == (fi) / 64 ? (1ull << ((fi) & 63)) - 1 : 0)

struct ga_mcache;

/* A run of pages: a small span (objects of one class), a large object, or a
 * free page run. Structs come from a type-stable pool that is never
 * unmapped, so a racy read of a stale page-map entry is memory safe; readers
 * validate state and bounds after loading.
 *
 * Small-span invariants (the "explicit free" adaptation of Go's sweep):
 *  - slot i is allocated iff (i < freeindex || alloc_bits[i]) and neither
 *    local_free[i] nor remote_free[i] is set;
 *  - alloc_bits bits at and past nelems are 1 (padding), so alloc_cache
 *    never offers a slot past the end;
 *  - alloc_cache bit k == !alloc_bits[freeindex + k] for the rest of the
 *    64-slot window holding freeindex (bits past the window are 0);
 *  - local_free is written only by the owner; remote_free only by atomic OR
 *    from other threads and atomic exchange by the folder;
 *  - nremote == popcount(remote_free) once no free is in flight;
 *  - uncached (PARTIAL/FULL): alloc_count == popcount(alloc_bits & valid),
 *    local_free == 0, freeindex == 0, and 0 <= nremote <= alloc_count, with
 *    equality (no live object) only for the span mcentral keeps empty;
 *    FULL implies alloc_count == nelems and nremote == 0.
 * Free runs map their first and last page in the page map; in-use spans map
 * every page. */
typedef struct ga_span {
    /* The first cache line holds everything the inline malloc and free
     * paths touch (and, with GA_STATS, malloc adds to requested below). */
    uint64_t alloc_cache;        /* complement window of alloc_bits at freeindex */
    uint32_t freeindex;          /* every slot below it is allocated */
    uint32_t nelems;             /* objects in the span (1 for large) */
    uintptr_t base;              /* first byte */
    uint32_t elemsize;           /* bytes per object (small); 0 for large/free */
    uint32_t nlocal;             /* popcount(local_free) */
    /* What ga_free's inline path compares with the caller's mcache: owner,
     * except NULL for tiny spans and in hardened mode, whose frees take
     * the slow path. Set together with owner (ga_span_set_owner) only. */
    _Atomic(struct ga_mcache *) free_owner;
    uint64_t magic64;            /* ceil(2^64 / elemsize): index and exactness in one multiply */
    uint64_t *local_free;        /* nwords; owner's frees since the last fold */
    _Atomic uint64_t *remote_free; /* nwords; other threads' frees (own cache line) */
    /* Second cache line onwards. */
    _Atomic(struct ga_mcache *) owner; /* mcache holding it, or NULL */
    uint8_t cache_list;          /* CACHED: GA_LIST_CURRENT, GA_LIST_FULL or GA_LIST_AVAIL */
    uint16_t spc;                /* 0 large/free, 1..n-1 small class, GA_TINY_SPC */
    uint8_t nwords;              /* 64-bit words per bitmap */
    uint8_t needzero;            /* some byte may be non-zero (calloc must clear) */
    uint32_t magic;              /* 32-bit divide magic of elemsize */
    uint64_t *alloc_bits;        /* nwords; state at the last fold */
    _Atomic uint32_t *tiny_meta; /* tiny spans: one word per 16-byte block */
    uint32_t alloc_count;        /* allocated slots as of the last fold */
    _Atomic uint8_t state;       /* ga_span_state_t */
    uint8_t bits_order;          /* size bucket of the bits block (mspan.c) */
    size_t npages;
    /* Links: mcentral lists (next/prev) or the page heap treap (left/right). */
    struct ga_span *next, *prev;
    struct ga_span *left, *right;
    size_t max_pages;            /* treap: largest run in this subtree */
    uint32_t prio;               /* treap priority */
#if GA_STATS
    /* Bytes requested of the slots handed out since the last fold (owner
     * only, the one statistics add of the malloc fast path; at most nelems *
     * elemsize), added to ga_class_counters[spc].requested by the fold. On
     * a line that other threads do not read while the span is cached (remote
     * frees read state and the bitmaps' pointers), so no false sharing. */
    uint32_t requested;
#endif
    size_t nscav;                /* free run: pages released to the OS */
    uint64_t unused_since;       /* free run: when it last grew by a free; partial span:
                                    when it went on the partial list (ns) */
    uint32_t npurged;            /* partial span: OS pages of free slots released */
    bool purged;                 /* partial span: its free slots were released */
    bool kept_empty;             /* partial span kept with no live object (mcentral.nempty) */
    uint64_t empty_since;        /* kept_empty: ga_mcentral_grow's clock when it was kept */
    uint64_t sub_oldest;         /* treap: oldest unused_since of a run with unreleased
                                    pages in this subtree (UINT64_MAX: none) */
    /* Size profile (mprof.c), under its lock: the requested size of each
     * slot (uint16_t per slot; tiny spans: uint8_t per byte), GA_PROF_UNKNOWN
     * where not recorded; NULL until profiling records into the span, freed
     * with the bitmaps. Large objects: requested bytes + 1, 0 = unknown. */
    void *prof_table;
    size_t prof_request;
    /* Sampled heap profile (mprof.c): how many of its objects are sampled;
     * changed under the profile's lock, read by free without it (0: no
     * object of this span needs a look-up). Back to 0 before the span is. */
    _Atomic uint32_t prof_samples;
    /* bit (p >> 4) & 63 set for every sampled object p (and maybe others:
     * a filter, cleared with prof_samples back to 0), so that free locks
     * and looks up only where a sample may be */
    _Atomic uint64_t prof_sampled;
    /* Written by remote frees; kept off the owner's cache line. */
    _Alignas(GA_CACHE_LINE) _Atomic int32_t nremote;
    _Atomic uint32_t published;  /* alloc_count while uncached, else GA_UNPUBLISHED */
    /* Statistics: remote frees made while another thread's cache held the
     * span (cross_thread_frees), not yet added to the class counters by a
     * fold or the release. Counted before nremote, on the same line. */
    _Atomic uint32_t ncross;
} ga_span_t;
_Static_assert(__builtin_offsetof(ga_span_t, owner) == GA_CACHE_LINE,
               "the inline paths' span fields fill the first cache line");

#define GA_UNPUBLISHED UINT32_MAX

/* Where a CACHED span sits in its mcache (mcache.c): the class's current
 * span (mc->alloc), the list of exhausted spans it keeps (free_owner NULL,
 * so the owner's first free takes the slow path and moves the span), or
 * the list of kept spans the owner has freed into since (free_owner set,
 * taken before mcentral at the next refill). */
enum { GA_LIST_CURRENT = 0, GA_LIST_FULL, GA_LIST_AVAIL };

/* Tiny block word (one per 16-byte block of a tiny span):
 * bits 0..15 a live sub-object starts at that byte; bits 16..20 the carve
 * cursor (end of the last object) while held; bit 21 HELD: the block is an
 * mcache's current tiny block. The block goes back to its span when the
 * word has no start bit and no HELD bit. */
#define GA_TINY_STARTS 0xFFFFu
#define GA_TINY_CURSOR_SHIFT 16
#define GA_TINY_CURSOR_MASK (0x1Fu << GA_TINY_CURSOR_SHIFT)
#define GA_TINY_HELD (1u << 21)

/* ------------------------------------------------------------------------
 * Size classes at run time (msize.c)
 * ---------------------------------------------------------------------- */
typedef struct ga_classes {
    uint32_t nclasses;                      /* table entries, class 0 included */
    uint32_t align;                         /* malloc(n >= 16) alignment: 16, or 8 (align=8) */
    uint32_t size[GA_NUM_SPC];              /* by span class; GA_TINY_SPC = 16 */
    uint32_t npages[GA_NUM_SPC];
    uint32_t nelems[GA_NUM_SPC];
    uint32_t magic[GA_NUM_SPC];
    uint8_t size_to_class8[GA_SIZE_TO_CLASS8_LEN];
    uint8_t size_to_class128[GA_SIZE_TO_CLASS128_LEN];
    const char *name;
} ga_classes_t;

/* ------------------------------------------------------------------------
 * Fixed-size allocators for metadata (mfixalloc.c)
 * ---------------------------------------------------------------------- */
typedef struct ga_fixalloc {
    size_t size;          /* bytes per object */
    void *(*fallback)(size_t bytes); /* chunks when the OS refuses: from the page heap */
    void *list;           /* free objects, linked through their first word */
    uintptr_t chunk;      /* bump region */
    size_t nchunk;        /* bytes left in it */
    size_t inuse;         /* objects handed out */
    size_t mapped;        /* bytes taken from the OS */
} ga_fixalloc_t;

/* ------------------------------------------------------------------------
 * Page heap (mheap.c)
 * ---------------------------------------------------------------------- */
/* Per-page state bits of an arena, under the heap lock. Invariants:
 * pages of in-use spans have scav == 0; a free run's nscav is the number of
 * its pages with scav == 1; with MADV_DONTNEED, scav implies !dirty. */
#define GA_ARENA_WORDS (GA_PAGES_PER_ARENA / 64)
typedef struct ga_heap_arena {
    _Atomic(ga_span_t *) spans[GA_PAGES_PER_ARENA]; /* page -> span */
    uintptr_t base;
    uint64_t scav[GA_ARENA_WORDS];  /* page released to the OS; fresh pages count as released */
    uint64_t dirty[GA_ARENA_WORDS]; /* page may hold non-zero bytes (calloc must clear it) */
    struct ga_heap_arena *next;     /* all arenas, ascending address */
} ga_heap_arena_t;

typedef struct ga_mheap {
    ga_lock_t lock;        /* guards everything below and span structs' links */
    ga_span_t *free_root;        /* treap of free runs by base, max_pages augmented */
    ga_heap_arena_t *arenas;     /* ascending address */
    size_t narenas;
    size_t pages_inuse;          /* pages in in-use spans */
    size_t pages_free;           /* pages in free runs */
    size_t nfree_runs;
    size_t pages_released;       /* free pages returned to the OS (scav bits set) */
    uintptr_t hint;              /* where the next arena is asked for */
    uint32_t seed;               /* treap priorities */
    ga_fixalloc_t spanalloc;
    ga_span_t *spare[2];         /* structs kept for splitting runs (alloc_locked) */
    unsigned nspare;
    /* Scavenger and reclaim state (mgcscavenge.c), under the lock too. */
    size_t scav_credit;          /* pages released beyond a growth's need (Go scavengeCredit) */
    size_t reclaim_credit;       /* pages reclaimed beyond a request (Go reclaimCredit) */
    size_t peak_cur, peak_prev;  /* in-use pages peak of this and the last goal window */
    uint64_t epoch_start;        /* ns: start of this goal window (mgcscavenge.c) */
    uint64_t flush_start;        /* ns: start of this flush epoch (ga_flush_gen) */
    size_t scav_outstanding;     /* pages the scavenger released, not handed out since */
    size_t refault_window;       /* of those, pages handed out again in this window */
    unsigned backoff, quiet;     /* the goal window is (delay / 2) << backoff */
    uint64_t scavenged_total;    /* pages ever released */
    uint64_t reclaimed_total;    /* pages ever recovered by reclaim */
    size_t peak_inuse_ever;      /* largest pages_inuse so far */
} ga_mheap_t;


/* How far ga_mheap_alloc may go: the free runs only, or the OS too (after
 * the scavenger's release before growth). The policy that chooses is
 * ga_sweep_alloc's (mgcsweep.c). */
typedef enum { GA_HEAP_TRY, GA_HEAP_GROW } ga_heap_how_t;

/* ------------------------------------------------------------------------
 * Central lists (mcentral.c)
 * ---------------------------------------------------------------------- */
typedef struct ga_span_list {
    ga_span_t *first, *last;
    size_t n;
} ga_span_list_t;

typedef struct ga_mcentral {
    ga_lock_t lock;        /* guards both lists and state moves of their spans */
    unsigned spc;
    ga_span_list_t partial;      /* uncached spans with a free slot (maybe unfolded); those
                                    with many free slots first, as cacheSpan takes the first */
    ga_span_list_t full;         /* uncached spans with no free slot */
    size_t nempty;               /* partial spans kept with no live object (<= GA_KEEP_EMPTY) */
} __attribute__((aligned(GA_CACHE_LINE))) ga_mcentral_t;

/* Empty spans an mcentral keeps instead of returning them to the page heap,
 * so that a class that drains and refills does not go through the heap
 * lock each time (Go keeps none: its sweeper frees them in bulk). Their
 * pages are released when idle like any free slot, and the span itself
 * goes back to the heap once GA_EMPTY_AGE spans of other classes have been
 * grown since it was kept: a class the program stopped using then holds
 * no pages that another class could use (checked round robin, one class
 * per grow). */
#define GA_KEEP_EMPTY 1
#define GA_EMPTY_AGE 64

/* ------------------------------------------------------------------------
 * Per-thread page caches (mpagecache.c)
 * ---------------------------------------------------------------------- */
/* Go gives each P a pageCache so that small page runs come without the
 * heap lock; with explicit free the run a thread wants next is most often
 * the one it just freed, so goalloc's page cache holds a thread's freed
 * large objects (up to GA_PCACHE_MAX_PAGES each, GOALLOC=pagecache bytes
 * in all) for its next large malloc of the same page count.
 * Invariants (while busy is not held):
 *  - n <= GA_PCACHE_ENTRIES; span[0..n) oldest first, each PCACHED, spc 0,
 *    needzero set, span[i]->npages == npages[i] <= GA_PCACHE_MAX_PAGES;
 *  - pages == the sum of npages[0..n) <= ga_opts.pagecache / GA_PAGE_SIZE.
 * busy is held by the owner across each change (taken with one exchange;
 * when it is held already the owner goes to the page heap instead, so it
 * never waits: a signal handler's malloc, or check_heap or fork holding
 * it) and by the all-caches walks (mcache.c), which wait for it. The
 * sentinel and shared caches hold it for ever: they cache no pages. */
#define GA_PCACHE_ENTRIES 32
#define GA_PCACHE_MAX_PAGES 128 /* 1 MiB */
typedef struct ga_pagecache {
    _Atomic uint32_t busy;
    uint32_t n;
    uint32_t npages[GA_PCACHE_ENTRIES];
    ga_span_t *span[GA_PCACHE_ENTRIES];
    _Atomic size_t pages;   /* written by the holder of busy, read by statistics */
    _Atomic uint64_t hits;  /* large mallocs served here */
    uint64_t puts;          /* large frees kept here */
    uint64_t uses_seen;     /* hits + puts at the last idle check ... */
    uint64_t checked_at;    /* ... made then (ga_now_ns) */
} ga_pagecache_t;

/* ------------------------------------------------------------------------
 * Per-thread caches (mcache.c)
 * ---------------------------------------------------------------------- */
typedef struct ga_mcache {
    ga_span_t *alloc[GA_NUM_SPC];  /* one span per span class; &ga_emptyspan when none */
    /* Spans kept after they were exhausted instead of going back to
     * mcentral at once (GOALLOC=mcache_keep), newest first. Every span on
     * them is CACHED with owner == this cache and cache_list telling
     * which; kept_pages is the sum of their pages. */
    ga_span_list_t full[GA_NUM_SPC];  /* no free noticed since; free_owner == NULL */
    ga_span_list_t avail[GA_NUM_SPC]; /* the owner freed into them; free_owner as ga_span_set_owner */
    /* Below: reset when a cache is reused (mcache.c: mcache_reuse); the
     * per-class lists above and the stash below are empty then. */
    size_t kept_pages, avail_pages;
    unsigned evict_next;           /* where the next eviction search starts */
    unsigned trim_next;            /* the next class whose oldest kept spans are checked */
    uint32_t gen;                  /* ga_flush_gen at its last slow path */
    uint32_t slow_paths;           /* count of ga_mcache_next_free calls */
    uint32_t uaf_countdown;        /* allocations until the next uafcheck sample */
    /* Heap-profile sampling (mprof.c; Go's nextSample), one Poisson
     * stream of rate 1/profile_rate per byte for each class, which is
     * Go's one stream split: tiny and large requests count bytes down on
     * the slow path; each small class counts objects, and its current
     * span's window (alloc_cache) is cut to the objects left before the
     * sampled one, so that the inline path stays as it is and the
     * sampled allocation is the one that finds the window empty. */
    uint64_t next_sample;          /* tiny and large: bytes until the next sample; 0: not drawn */
    uint64_t sample_rng;           /* the random state of the streams */
    uint32_t sample_left[GA_NUM_SPC]; /* objects before the sampled one + 1; 0: not drawn */
    uint8_t sample_granted[GA_NUM_SPC]; /* slots the window held when granted (cut or not) */
    ga_span_t *sample_span[GA_NUM_SPC]; /* the span it was cut in */
    uintptr_t tiny;                /* current tiny block, or 0 */
    uint32_t tiny_off;             /* carve cursor in it (GA_TINY_SIZE when none) */
    _Atomic uint32_t *tiny_meta;   /* its block word */
    struct ga_mcache *next_all, *prev_all; /* every live mcache */
    /* Spans taken at a refill beyond the one allocated from (GOALLOC=refill
     * > 1), linked through next: CACHED, owned by this cache, folded when
     * taken and not allocated from since; nstash[i] < GA_MAX_REFILL. */
    ga_span_t *stash[GA_NUM_SPC];
    uint8_t nstash[GA_NUM_SPC];
    /* Taken by the owner across every slow-path change of its lists:
     * alloc[] exchanges, the kept lists, the stash, and the folds of its
     * spans (mcache.c: cache_lock; never on the inline paths). fork_prepare
     * takes every cache's lock, so the fork child, which hands back the
     * caches of the threads it lost, never sees one half-way through a
     * move. lock_depth: the owner's nesting (reclaim and the tiny block's
     * release re-enter); the shared cache's are under shared_lock too. */
    ga_lock_t lock;
    uint32_t lock_depth;
    /* Bit i: class i may hold a span here (set when a span becomes the
     * class's current one, cleared by the release), so that a release
     * visits the classes the thread used, not every slot. */
    uint64_t used[(GA_NUM_SPC + 63) / 64];
#if GA_STATS
    /* Bytes requested by this thread's tiny mallocs not yet added to
     * ga_class_counters[GA_TINY_SPC].requested: plain adds by the owner,
     * flushed on its next span slow path and when the cache is released. A
     * snapshot adds what is still here. (Small classes count in the span.) */
    uint64_t tiny_requested;
#endif
    ga_pagecache_t pcache;         /* freed large objects (mpagecache.c) */
} ga_mcache_t;

/* ------------------------------------------------------------------------
 * Statistics (mstats.c; the list of counters is in mstats.h)
 * ---------------------------------------------------------------------- */
/* Per span class, updated on slow paths only. */
typedef struct ga_class_counters {
    _Atomic uint64_t mallocs;       /* slots handed out, counted when folded */
    _Atomic uint64_t frees;         /* frees folded, or pending when a span went back */
    _Atomic uint64_t remote_frees;  /* of those, through the atomic path (atomic_frees) */
    _Atomic uint64_t cross_frees;   /* of those, while another thread's cache held the span */
    _Atomic uint64_t refills;       /* thread-cache refills (GOALLOC=refill spans each) */
    _Atomic uint64_t grows;         /* spans taken from the page heap */
    _Atomic uint64_t releases;      /* spans given back to the page heap (grows - releases
                                       spans of the class exist) */
    _Atomic uint64_t requested;     /* bytes requested, flushed from the mcaches */
} ga_class_counters_t;

/* What a walk of the heap finds (REQUIRES: every allocator lock). */
typedef struct ga_census {
    size_t spans[GA_NUM_SPC][3];      /* cached, partial, full */
    size_t objects[GA_NUM_SPC];       /* live objects (tiny: blocks) */
    uint64_t pending_mallocs[GA_NUM_SPC]; /* handed out since the last fold */
    uint64_t pending_frees[GA_NUM_SPC];   /* recorded, not yet folded */
    uint64_t pending_remote[GA_NUM_SPC];
    uint64_t pending_cross[GA_NUM_SPC];
    uint64_t pending_requested[GA_NUM_SPC]; /* cached spans' requested bytes */
    size_t tiny_objects;              /* live tiny sub-objects */
    size_t tiny_bytes;                /* their bytes (up to the next start) */
    size_t large, large_bytes;
    size_t pagecache_spans, pagecache_bytes; /* freed large objects in page caches */
} ga_census_t;

#define GA_PATH_MAX 4096

/* ------------------------------------------------------------------------
 * Size profile (mprof.c): GOALLOC_PROFILE
 * ---------------------------------------------------------------------- */
#define GA_PROFILE_VERSION 1     /* of the JSON document */
#define GA_PROF_UNKNOWN8 0xFFu   /* tiny table entry: no request recorded */
#define GA_PROF_UNKNOWN16 0xFFFFu /* small table entry: no request recorded */

/* Sampled heap profile (mprof.c; the pprof file: pprof.c). Go's
 * MemProfileRate, mProf_Malloc and mProf_Free: about once per
 * ga_sample_rate bytes (exponential intervals) an allocation records its
 * stack in a bucket; the free of a sampled object is recorded in it too. */
#define GA_PROF_MAX_STACK 64
typedef struct ga_bucket {
    struct ga_bucket *next;      /* hash chain */
    struct ga_bucket *all;       /* every bucket, newest first */
    uint64_t hash;
    uint32_t nstk;
    uint64_t allocs, alloc_bytes, alloc_req; /* sampled: objects, bytes handed out, requested */
    uint64_t frees, free_bytes, free_req;    /* of those, freed since */
    uintptr_t stk[GA_PROF_MAX_STACK];        /* return addresses, innermost first */
} ga_bucket_t;

/* ------------------------------------------------------------------------
 * Options, start-up and fork (init.c)
 * ---------------------------------------------------------------------- */
enum { GA_SCAVENGER_OFF, GA_SCAVENGER_SYNC, GA_SCAVENGER_BACKGROUND, GA_SCAVENGER_AUTO };
enum { GA_MADV_DONTNEED, GA_MADV_FREE };
typedef struct ga_options {
    bool tiny;               /* tiny: pack 1..15-byte requests into 16-byte blocks */
    bool summary;            /* summary: print a heap census at exit */
    bool stats;              /* stats: print the statistics' totals at exit (mstats.c) */
    bool verbose;            /* verbose: print the options in effect at start (print.c) */
    bool reclaim;            /* reclaim: recover empty cached spans before growing */
    unsigned scavenger;      /* scavenger: off | sync | background | auto */
    unsigned madvise;        /* madvise: dontneed | free */
    uint64_t scavenge_delay; /* scavenge_delay: ms a free run stays resident */
    uint64_t retain;         /* retain: retained goal, percent of the recent in-use peak */
    uint64_t limit;          /* limit: bytes the heap may keep resident, 0 = none */
    bool on_error_report;    /* on_error: abort (default) | report */
    bool clobberfree;        /* clobberfree: fill freed objects with GA_FREED_BYTE */
    bool fillnew;            /* fillnew: fill new objects with GA_NEW_BYTE */
    uint64_t uafcheck;       /* uafcheck: check 1 in N reused slots for writes after free */
    bool harden;             /* harden: canary + protect + clobberfree + uafcheck=1 at once */
    bool canary;             /* canary: a checked canary after every object (start-up only) */
    bool protect;            /* protect: freed large objects and malloc(0) inaccessible
                                (start-up only) */
    uint64_t mcache_keep;    /* mcache_keep: pages of exhausted spans a thread keeps, 0 = Go */
    uint64_t pagecache;      /* pagecache: bytes of freed large objects a thread keeps, 0 = none */
    bool live;               /* live: publish counters in /dev/shm/goalloc-<pid> (mlive.c) */
    const char *stats_path;  /* GOALLOC_STATS: JSON written at exit; %p = pid */
    char sizeclasses[1024];  /* sizeclasses: go1.12 | go1.16 | a file path ("" = default);
                                read at start-up only */
    bool align8;             /* align: 16 (default) | 8: accept classes only 8-byte aligned */
    uint64_t refill;         /* refill: spans an mcache takes from mcentral at a refill
                                (1 = Go; 1..GA_MAX_REFILL) */
    bool arena_hint_go;      /* arena_hint: random (default) | go: the first arena at
                                Go's fixed 0xc000000000 instead of a random address */
    uint64_t profile_rate;   /* profile_rate: mean bytes between heap-profile samples
                                (Go's MemProfileRate), 0 = off, 1 = every object;
                                GA_PROFILE_RATE_UNSET until start-up resolves it */
} ga_options_t;
#define GA_PROFILE_RATE_UNSET UINT64_MAX
#define GA_PROFILE_RATE_DEFAULT (512u << 10) /* with GOALLOC_HEAP_PROFILE alone: Go's */

#define GA_MAX_REFILL 16

#define GA_FREED_BYTE 0xDF /* Go clobberfree fills with 0xdeadbeef; one byte suffices */
#define GA_NEW_BYTE 0xD0

#define GA_CANARY_TAIL 8

/* ------------------------------------------------------------------------
 * Errors and diagnostics (print.c); all output by write(2), no allocation.
 * ---------------------------------------------------------------------- */
typedef struct ga_buf {
    char *p;
    size_t len, cap;
} ga_buf_t;

#endif
