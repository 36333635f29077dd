/* Internal types, invariants and cross-file declarations of goalloc.
 * See malloc.c for the overview; declarations are grouped by defining file. */
#ifndef GA_INTERNAL_H
#define GA_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "goalloc.h"
#include "mstats.h"
#include "sizeclasses.h"

/* Everything declared below is internal to the library: telling the
 * compiler so lets it reach globals PC-relatively instead of through the
 * GOT (one load less per access on the fast paths). */
#pragma GCC visibility push(hidden)

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
/* Population count without libgcc's table-driven __popcountdi2: the
 * instruction where the build targets it (-mpopcnt), else a SWAR count
 * (Hacker's Delight 5-2). The one loop that counts much, fold (mspan.c),
 * also has a copy compiled for the instruction, chosen at start-up when
 * the CPU has it (ga_cpu_popcnt): that is the whole mechanism. */
static inline unsigned ga_popcount64(uint64_t x)
{
#ifdef __POPCNT__
    return (unsigned)__builtin_popcountll(x);
#else
    x -= (x >> 1) & 0x5555555555555555ull;
    x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
    x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0full;
    return (unsigned)((x * 0x0101010101010101ull) >> 56);
#endif
}

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
} ga_span_state_t;

/* A small span in use: cached by a thread, or on mcentral's lists. */
#define GA_SMALL_IN_USE(st) ((st) == GA_SPAN_CACHED || (st) == GA_SPAN_PARTIAL || (st) == GA_SPAN_FULL)

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

extern ga_span_t ga_emptyspan; /* sentinel: no free slot, never owned */

void ga_span_init_small(ga_span_t *s, unsigned spc);
uint32_t ga_span_next_free_index(ga_span_t *s);
void ga_span_fold(ga_span_t *s);
extern bool ga_cpu_popcnt; /* the CPU has POPCNT (fold's fast copy) */
bool ga_span_has_pending_frees(ga_span_t *s);
void ga_span_free_remote(ga_span_t *s, uint32_t idx, uintptr_t p, const char *fn);
/* Waits until the remote frees into s that a fold already took have
 * counted themselves (ga_span_free_remote). REQUIRES: s has no live object
 * and nobody folds it (CLAIMED). */
void ga_span_wait_remote_counts(ga_span_t *s);
/* Adds s's ncross to its class's cross_frees (any thread; fold, release). */
void ga_span_flush_cross(ga_span_t *s);
/* Fork child of a multi-threaded parent: counts the remote frees the lost
 * threads left half-done. */
void ga_span_fork_child_settle(void);
#if defined(GA_TESTING)
/* testing.c: called by ga_span_free_remote between its bit and its count
 * (NULL: nothing). */
extern void (*ga_test_remote_hook)(ga_span_t *s);
#endif
GA_COLD void ga_span_free_local_misuse(ga_span_t *s, uintptr_t p, const char *fn);

/* Free by the owning thread: a plain store into local_free. Exact double
 * free detection: the slot must be allocated and not already freed. */
GA_INLINE void ga_span_free_local(ga_span_t *s, uint32_t idx, uintptr_t p, const char *fn)
{
    unsigned w = idx >> 6;
    uint64_t m = 1ull << (idx & 63);
    uint64_t freed = s->local_free[w] | atomic_load_explicit(&s->remote_free[w], memory_order_relaxed);
    if (GA_UNLIKELY((freed & m) || (idx >= s->freeindex && !(s->alloc_bits[w] & m)))) {
        ga_span_free_local_misuse(s, p, fn);
        return; /* GOALLOC=on_error=report: reported, the free is ignored */
    }
    s->local_free[w] |= m;
    s->nlocal++;
}
int ga_span_check(ga_span_t *s, char *msg, size_t len);
bool ga_span_bits_alloc(ga_span_t *s, unsigned nelems, bool tiny);
void ga_span_bits_free(ga_span_t *s);
void ga_span_bits_lock(void);
void ga_span_bits_unlock(void);
void ga_span_bits_fork_child(void);

void ga_mcache_span_freed(struct ga_mcache *mc, ga_span_t *s);
#if defined(GA_TESTING)
/* testing.c: called by ga_mcache_span_freed in the middle of its move of a
 * span from the full to the avail list (NULL: nothing). */
extern void (*ga_test_cache_hook)(void);
#endif

/* Frees slot idx of small span s from the calling thread (cache mc). */
GA_INLINE void ga_free_slot(ga_span_t *s, uint32_t idx, uintptr_t p, struct ga_mcache *mc,
                            const char *fn)
{
    if (atomic_load_explicit(&s->owner, memory_order_relaxed) == mc) {
        ga_span_free_local(s, idx, p, fn);
        if (s->cache_list == GA_LIST_FULL)
            ga_mcache_span_freed(mc, s);
    } else
        ga_span_free_remote(s, idx, p, fn);
}

/* Hands s to mcache mc (NULL: to nobody); see free_owner. */
GA_INLINE void ga_span_set_owner(ga_span_t *s, struct ga_mcache *mc)
{
    extern bool ga_hardened;
    atomic_store_explicit(&s->owner, mc, memory_order_relaxed);
    /* a span holding a sampled object sends its frees to the slow path,
     * which records them (mprof.c) */
    atomic_store_explicit(&s->free_owner,
                          s->spc == GA_TINY_SPC || ga_hardened ||
                                  atomic_load_explicit(&s->prof_samples, memory_order_relaxed) != 0
                              ? NULL : mc,
                          memory_order_relaxed);
}

/* ceil(2^64 / size) for size >= 2 (Lemire, Kaser and Kurz, "Faster
 * remainder by direct computation", 2019). */
GA_INLINE uint64_t ga_magic64(uint32_t size)
{
    return UINT64_MAX / size + 1;
}

/* The slot of small span s that starts exactly at p, in one 64x64->128
 * multiply: the high half of off * ceil(2^64/elemsize) is off / elemsize
 * and the low half is below the magic iff elemsize divides off (exact for
 * every 32-bit off). False for interior pointers and the tail past the
 * last object. REQUIRES: s->base <= p < s->base + 4 GiB. */
GA_INLINE bool ga_span_slot_of(const ga_span_t *s, uintptr_t p, uint32_t *idx)
{
    unsigned __int128 q = (unsigned __int128)(uint32_t)(p - s->base) * s->magic64;
    *idx = (uint32_t)(q >> 64);
    return (uint64_t)q < s->magic64 && (uint64_t)(q >> 64) < s->nelems;
}

/* Object index of address p in small span s, by magic multiply. */
GA_INLINE uint32_t ga_span_index(const ga_span_t *s, uintptr_t p)
{
    return (uint32_t)(((uint64_t)(uint32_t)(p - s->base) * s->magic) >> 32);
}

/* Takes the first free slot of s's window c = s->alloc_cache != 0. */
GA_INLINE void *ga_span_take(ga_span_t *s, uint64_t c)
{
    unsigned bit = (unsigned)__builtin_ctzll(c);
    uint32_t idx = s->freeindex + bit;
    s->alloc_cache = (c >> bit) >> 1;
    s->freeindex = idx + 1;
    return (void *)(s->base + (uintptr_t)idx * s->elemsize);
}

/* Go's nextFreeFast: take the next free slot of the current window. */
GA_INLINE void *ga_span_next_free_fast(ga_span_t *s)
{
    uint64_t c = s->alloc_cache;
    return GA_LIKELY(c != 0) ? ga_span_take(s, c) : NULL;
}

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

extern ga_classes_t ga_classes;
void ga_classes_load(const ga_sizeclass_table_t *t);
/* Start-up: loads the table GOALLOC chose, or the default after a message. */
void ga_classes_init(void);
/* Checks t's sizes and page counts against the rules of msize.c for
 * malloc alignment align (8 or 16), then derives its magics and lookup
 * tables. Returns 0, or -1 with the reason in why and the offending class
 * in *bad (0 when the reason concerns the whole table). */
int ga_sizeclass_table_complete(ga_sizeclass_table_t *t, unsigned align, unsigned *bad, char *why,
                                size_t len);
/* A checked table from a name (go1.12, go1.16) or a file path; 0, or -1
 * with the reason in why. t->name points to spec. */
int ga_sizeclass_resolve(const char *spec, unsigned align, ga_sizeclass_table_t *t, char *why,
                         size_t len);
/* sizeclass_file.c: a checked table from a TSV file; why: "line N: ...". */
int ga_sizeclass_file_read(const char *path, unsigned align, ga_sizeclass_table_t *t, char *why,
                           size_t len);

GA_INLINE unsigned ga_size_to_class(size_t n)
{
    if (n <= GA_SMALL_SIZE_MAX)
        return ga_classes.size_to_class8[(n + GA_SMALL_SIZE_DIV - 1) / GA_SMALL_SIZE_DIV];
    return ga_classes.size_to_class128[(n - GA_SMALL_SIZE_MAX + GA_LARGE_SIZE_DIV - 1) /
                                       GA_LARGE_SIZE_DIV];
}

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

void ga_fixalloc_init(ga_fixalloc_t *f, size_t size, void *(*fallback)(size_t bytes));
void *ga_fixalloc_alloc(ga_fixalloc_t *f); /* zeroed; caller serialises */
void ga_fixalloc_free(ga_fixalloc_t *f, void *p);
void *ga_persistent_alloc(size_t size);    /* never freed; takes its own lock */
void ga_persistent_lock(void);
void ga_persistent_unlock(void);
void ga_persistent_fork_child(void);

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
    pthread_mutex_t lock;        /* guards everything below and span structs' links */
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

extern ga_mheap_t ga_heap;
extern _Atomic(ga_heap_arena_t *) ga_arena_map[GA_ARENA_L2_ENTRIES];

/* Go spanOf: O(1), two dependent loads; NULL outside every arena. */
GA_INLINE ga_span_t *ga_span_of(uintptr_t p)
{
    uintptr_t ai = p >> GA_ARENA_SHIFT;
    if (GA_UNLIKELY(ai >= GA_ARENA_L2_ENTRIES))
        return NULL;
    ga_heap_arena_t *ha = atomic_load_explicit(&ga_arena_map[ai], memory_order_acquire);
    if (GA_UNLIKELY(ha == NULL))
        return NULL;
    return atomic_load_explicit(&ha->spans[(p >> GA_PAGE_SHIFT) & (GA_PAGES_PER_ARENA - 1)],
                                memory_order_relaxed);
}

void ga_mheap_init(void);
/* Page-bit operations over [base, base + npages pages) across arenas:
 * which = GA_BITS_SCAV or GA_BITS_DIRTY; returns how many were set before. */
enum { GA_BITS_SCAV, GA_BITS_DIRTY };
enum { GA_BITS_COUNT, GA_BITS_SET, GA_BITS_CLEAR };
size_t ga_mheap_page_bits(uintptr_t base, size_t npages, int which, int op);
/* Releases free pages to the OS from the highest address down: whole runs
 * whose unused_since <= cutoff, at least `pages` pages if there are that
 * many, in 2 MiB steps. Returns pages released. REQUIRES: heap lock. */
size_t ga_mheap_scavenge_locked(size_t pages, uint64_t cutoff);
/* Pages in use + free pages not released: what the heap keeps resident. */
size_t ga_mheap_retained_locked(void);
size_t ga_scavenge_goal_locked(void); /* retained goal in pages */
/* Allocates npages pages aligned to align_pages pages; NULL when out of
 * memory. The span comes back with state, spc and map entries set; when
 * needzero is false its bytes are known to be zero. Takes the heap lock. */
ga_span_t *ga_mheap_alloc(size_t npages, size_t align_pages, uint8_t state, uint16_t spc);
/* Returns an in-use span's pages to the page heap. Takes the heap lock. */
void ga_mheap_free(ga_span_t *s);
/* Memory for metadata carved from free heap pages, for when mmap fails
 * (RLIMIT_AS): never returned. The _locked form REQUIRES the heap lock;
 * the other takes it. NULL when no free run is large enough. */
void *ga_mheap_alloc_meta_locked(size_t bytes);
void *ga_mheap_alloc_meta(size_t bytes);
/* Large realloc in place: shrink to npages or grow into the following free
 * run. Returns true on success. Takes the heap lock. */
bool ga_mheap_resize(ga_span_t *s, size_t npages);
/* Fills state_spans[state] with the number of in-use spans per state. */
int ga_mheap_check_locked(size_t *state_spans, char *msg, size_t len);
void ga_mheap_lock(void);
void ga_mheap_unlock(void);
void ga_mheap_fork_child(void);
/* Calls fn on every in-use span, in address order. REQUIRES: heap lock. */
void ga_mheap_for_each_span_locked(void (*fn)(ga_span_t *s, void *arg), void *arg);

/* ------------------------------------------------------------------------
 * Reclaim and scavenging policy (mgcscavenge.c)
 * ---------------------------------------------------------------------- */
uint64_t ga_now_ns(void);                 /* monotonic clock (+ test offset) */
extern _Atomic uint64_t ga_clock_offset;  /* tests move time forward */
extern _Atomic uint32_t ga_flush_gen;     /* advances once per scavenge delay */
/* Bounded idle work, called on slow paths; rate-limited, never blocks on
 * the heap lock. */
void ga_scavenge_tick(void);
/* Before the heap maps npages more: honour the hard limit and the
 * retained goal (REQUIRES: heap lock). Returns false when the limit cannot
 * be kept. */
bool ga_scavenge_before_growth_locked(size_t npages);
/* Hard limit check before handing out npages (REQUIRES: heap lock). */
bool ga_scavenge_limit_locked(size_t npages);
/* Releases every free page now (malloc_trim); returns pages released. */
size_t ga_scavenge_all(void);
/* Go mheap.reclaim with reclaimCredit: before growing the heap, recover the
 * calling thread's cached spans whose objects are all freed. */
void ga_reclaim(size_t npages);
void ga_scavenger_fork_child(void);
void ga_scavenger_start(void);
/* A span or large object went back to the page heap (ga_mheap_free, after
 * the heap lock is released; other locks may be held): publishes the live
 * file, releases what exceeds the goal (bounded, rate-limited) and, with
 * scavenger=auto, asks for the thread when the surplus is large. */
void ga_scavenge_freed(uint64_t now, size_t surplus);
/* Free pages not yet released beyond retain% of the pages in use now
 * (REQUIRES: heap lock). */
size_t ga_scavenge_surplus_locked(void);
/* With scavenger=auto, starts the thread ga_scavenge_freed asked for.
 * Called only where the calling thread holds no goalloc lock. */
extern _Atomic bool ga_scavenger_wanted;
void ga_scavenger_start_wanted(void);
static inline void ga_scavenger_poll(void)
{
    if (__builtin_expect(atomic_load_explicit(&ga_scavenger_wanted, memory_order_relaxed), 0))
        ga_scavenger_start_wanted();
}

/* ------------------------------------------------------------------------
 * Central lists (mcentral.c)
 * ---------------------------------------------------------------------- */
typedef struct ga_span_list {
    ga_span_t *first, *last;
    size_t n;
} ga_span_list_t;

/* Doubly linked span lists through next/prev (mspan.c). */
void ga_span_list_push(ga_span_list_t *l, ga_span_t *s, bool back);
void ga_span_list_remove(ga_span_list_t *l, ga_span_t *s);

typedef struct ga_mcentral {
    pthread_mutex_t lock;        /* guards both lists and state moves of their spans */
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

extern ga_mcentral_t ga_central[GA_NUM_SPC];
void ga_mcentral_init(void);
/* Hands mc up to want spans with a free slot, linked through next; NULL
 * with errno = ENOMEM when there is none. */
ga_span_t *ga_mcentral_cache_span(ga_mcentral_t *c, struct ga_mcache *mc, unsigned want);
ga_span_t *ga_mcentral_grow(ga_mcentral_t *c, struct ga_mcache *mc);
void ga_mcentral_uncache_span(ga_mcentral_t *c, ga_span_t *s);
void ga_mcentral_remote_transition(ga_span_t *s);
/* Checks both lists; adds their lengths to *npartial and *nfull. */
int ga_mcentral_check_locked(ga_mcentral_t *c, size_t *npartial, size_t *nfull, char *msg,
                             size_t len);
void ga_mcentral_release_span(ga_span_t *s);
/* Releases to the OS the OS pages of partial spans that hold no live object
 * (spans on the list since cutoff or earlier; wait: block on the locks
 * instead of skipping busy ones). Returns OS pages released. */
size_t ga_mcentral_purge(uint64_t cutoff, bool wait);
/* Returns the kept empty spans to the page heap (malloc_trim). */
void ga_mcentral_release_empty(void);
extern _Atomic size_t ga_purged_os_pages; /* OS pages released inside partial spans */
void ga_mcentral_lock_all(void);
void ga_mcentral_unlock_all(void);
void ga_mcentral_fork_child(void);

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
    uint8_t sample_granted[GA_NUM_SPC]; /* slots the cut window held when it was cut */
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
    pthread_mutex_t lock;
    uint32_t lock_depth;
#if GA_STATS
    /* Bytes requested by this thread's tiny mallocs not yet added to
     * ga_class_counters[GA_TINY_SPC].requested: plain adds by the owner,
     * flushed on its next span slow path and when the cache is released. A
     * snapshot adds what is still here. (Small classes count in the span.) */
    uint64_t tiny_requested;
#endif
} ga_mcache_t;

extern ga_mcache_t ga_empty_mcache; /* threads that have not allocated yet */
extern ga_mcache_t ga_dead_mcache;  /* threads whose cache was released at exit */
#if defined(GA_OVERRIDE)
extern __thread ga_mcache_t *ga_tls_mcache __attribute__((tls_model("initial-exec")));
#else
extern __thread ga_mcache_t *ga_tls_mcache;
#endif

void ga_mcache_init(void);
/* The calling thread's mcache, creating it on first use; the shared
 * locked cache (with *locked set) for threads past their exit destructor. */
ga_mcache_t *ga_mcache_get_slow(bool *locked);
/* The calling thread's cache (created on first use); after the thread's
 * exit destructor ran, the shared cache, locked (*locked = true: release
 * it with ga_mcache_put_shared). */
GA_INLINE ga_mcache_t *ga_mcache_get(bool *locked)
{
    ga_mcache_t *mc = ga_tls_mcache;
    *locked = false;
    if (GA_LIKELY(mc != &ga_empty_mcache && mc != &ga_dead_mcache))
        return mc;
    return ga_mcache_get_slow(locked);
}
void ga_mcache_put_shared(void);
void *ga_mcache_next_free(ga_mcache_t *mc, unsigned spc);
void ga_mcache_release_all(ga_mcache_t *mc);
/* The thread-exit destructor: releases mc and marks the thread dead. */
void ga_mcache_destroy(void *mc);
void ga_mcache_exit_thread(void);
/* Folds the calling thread's cached spans and returns those with no live
 * object to the page heap; returns the pages recovered. */
size_t ga_mcache_reclaim_own(void);
void ga_mcache_release_tiny(ga_mcache_t *mc);
/* Checks every mcache; adds the number of spans they hold to *ncached. */
int ga_mcache_check_all(size_t *ncached, char *msg, size_t len);
void ga_mcache_lock_all(void);
void ga_mcache_unlock_all(void);
void ga_mcache_fork_child(void);
/* Every mcache's unflushed tiny requested bytes. REQUIRES: the mcache locks. */
uint64_t ga_mcache_tiny_requested_locked(void);

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

extern ga_class_counters_t ga_class_counters[GA_NUM_SPC];
extern _Atomic uint64_t ga_large_mallocs, ga_large_frees;
extern _Atomic size_t ga_metadata_bytes;

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
} ga_census_t;
void ga_census_locked(ga_census_t *c);
void ga_stats_write_at_exit(void);
/* tmpl with every %p replaced by the pid, into out; false (out holds a
 * prefix) when the path does not fit in cap bytes. */
#define GA_PATH_MAX 4096
bool ga_path_with_pid(const char *tmpl, char *out, size_t cap);
/* At exit, for variable var (GOALLOC_STATS, GOALLOC_PROFILE): writes
 * write_doc's document (it returns 0 or a failed write's errno value, -1
 * when it has none) into the file of template tmpl, opened by
 * ga_sys_open_file; a path too long, a file that cannot be opened or a
 * failed write are each reported in one line on stderr. */
void ga_write_file_at_exit(const char *var, const char *tmpl, int (*write_doc)(int fd));

/* ------------------------------------------------------------------------
 * Size profile (mprof.c): GOALLOC_PROFILE
 * ---------------------------------------------------------------------- */
#define GA_PROFILE_VERSION 1     /* of the JSON document */
#define GA_PROF_UNKNOWN8 0xFFu   /* tiny table entry: no request recorded */
#define GA_PROF_UNKNOWN16 0xFFFFu /* small table entry: no request recorded */
extern bool ga_profiling;        /* set at start-up (tests: ga_prof_restart) */
void ga_prof_init(const char *path);
/* Records a new object of n requested bytes; returns ptr. */
void *ga_prof_new(void *ptr, size_t n);
/* Records the end of live object p of span s (before it is freed). */
void ga_prof_free(ga_span_t *s, uintptr_t p);
/* realloc in place: p now holds a request of n bytes. */
void ga_prof_resize(ga_span_t *s, uintptr_t p, size_t n);
/* Releases s's request table (with its bitmaps). */
void ga_prof_span_free(ga_span_t *s);
void ga_prof_write_at_exit(void);
int ga_prof_restart(int on);

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
extern uint64_t ga_sample_rate;   /* 0: off (set at start-up) */
void ga_prof_sample_init(const char *path);
/* Tiny and large allocations (the slow path): counts n's bytes down and
 * records p when the count crosses zero. */
void ga_prof_sample_bytes(void *p, size_t n);
/* Small class spc (REQUIRES: mc is this thread's, or the shared cache
 * held): before taking an object, whether it is to be sampled; after,
 * ga_prof_sample_cut cuts the window for the next one. */
bool ga_prof_sample_due(ga_mcache_t *mc, unsigned spc);
/* Something else folded mc's current span of class spc, which reset its
 * window (it was window before): counts what the cut window handed out
 * and cuts the new one. */
void ga_prof_sample_recut(ga_mcache_t *mc, unsigned spc, uint64_t window);
void ga_prof_sample_cut(ga_mcache_t *mc, unsigned spc);
/* Records small object p of n requested bytes as a sample. */
void ga_prof_sample_record(void *p, size_t n);
/* free's hook, before s's slot is freed. */
GA_INLINE void ga_prof_sample_free(ga_span_t *s, uintptr_t p)
{
    extern void ga_prof_sample_free_slow(ga_span_t *s, uintptr_t p);
    if (GA_UNLIKELY(atomic_load_explicit(&s->prof_sampled, memory_order_acquire) &
                    (1ull << ((p >> 4) & 63))))
        ga_prof_sample_free_slow(s, p);
}
/* The buckets (REQUIRES: prof_lock), newest first. */
ga_bucket_t *ga_prof_buckets_locked(void);
/* Go's scaleHeapSample: the factor by which count sampled objects of
 * bytes in all stand for the allocations they were drawn from. */
double ga_prof_scale(uint64_t count, uint64_t bytes);
/* The stack of the caller (goalloc's own frames skipped), up to max
 * return addresses: their number. */
unsigned ga_prof_stack(uintptr_t *stk, unsigned max);
/* pprof.c: ga_heap_profile_write (goalloc.h), the profile.proto document. */
void ga_heap_profile_write_at_exit(void);
/* At most once a second (slow paths): writes the profile now if another
 * process asked for it with the file GOALLOC_HEAP_PROFILE's path +
 * ".request" (goalloc profile --pid). */
void ga_heap_profile_tick(void);
/* pprof.c: "  #i 0xADDR path+0xOFF" lines for stack stk (misuse reports). */
void ga_print_stack(int fd, const uintptr_t *stk, unsigned n);
void ga_prof_lock(void);
void ga_prof_unlock(void);
void ga_prof_fork_child(void);
void ga_stats_fork_child(void);
/* The figures of ga_stats_snapshot as far as they can be had without a
 * lock or a heap walk (the live view, mlive.c): objects count when their
 * span is folded, tiny objects by 16-byte block, and figures that need the
 * census are GA_LIVE_UNAVAILABLE. classes: nrows x GA_STAT_NCLASS. */
void ga_stats_quick(uint64_t *totals, uint64_t *classes, unsigned nrows);

/* ------------------------------------------------------------------------
 * Live statistics in shared memory (mlive.c)
 * ---------------------------------------------------------------------- */
/* Publishes the counters if live=1 and the last update is older than the
 * interval; now is a clock reading the caller already has. No lock. */
#define GA_LIVE_UNAVAILABLE UINT64_MAX /* the header's `unavailable` */
void ga_live_tick(uint64_t now);
void ga_live_start(void);      /* library constructor: the file of this process */
void ga_live_exit(void);       /* destructor: removes it */
void ga_live_fork_child(void); /* the child publishes in a file of its own */

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

/* Derived from the options by ga_apply_options: the fast paths' bounds.
 * malloc's inline path serves n with n - ga_fast_lo <= ga_fast_span; the
 * hardening options close it (everything then goes through malloc_slow). */
extern size_t ga_fast_lo, ga_fast_span;
/* ... and 1 KiB < n <= 32 KiB with n - GA_SMALL_SIZE_MAX - 1 < ga_fast_medium
 * (0 when hardened or before start-up). */
extern size_t ga_fast_medium;
extern bool ga_hardened;
/* ga_hardened or heap-profile sampling: malloc_slow's one test for both */
extern bool ga_slow_special;
/* Start-up only (ga_init_slow), never changed after: GOALLOC=canary's
 * bytes after each object (GA_CANARY_TAIL, or 0 when off) and
 * GOALLOC=protect. Objects made with either must be freed with it. */
extern size_t ga_canary;
extern bool ga_protect;
#define GA_CANARY_TAIL 8
void ga_canary_init(void); /* malloc.c: the process's random canary key */
/* malloc.c: whether p is one of GOALLOC=protect's zero-size objects. */
bool ga_is_zero_object(uintptr_t p);
void ga_apply_options(void);
/* free after checking that n (and align, 0 = malloc's) fit the object; fn
 * names the call in a misuse report (malloc.c; free_sized, sized delete). */
void ga_free_sized_checked(void *p, size_t align, size_t n, const char *fn);
/* The same, at run time (mallopt, profile restart): also opens or closes
 * the inline free path of the cached spans. REQUIRES: every allocator lock. */
void ga_apply_options_locked(void);

extern ga_options_t ga_opts;
extern _Atomic int ga_initialized;
extern size_t ga_tiny_limit; /* requests below it take the tiny path: 16 or 0 */
void ga_init_slow(void);
void ga_parse_options(const char *s); /* reports bad items on stderr */
void ga_option_refused(const char *key, const char *value, const char *why, const char *instead);
long long ga_option_value(const char *key);
/* Per-class peaks (mstats.c): a span of class spc left or re-entered the
 * page heap (heap lock held). */
void ga_stats_span_alloc_locked(unsigned spc, size_t npages);
void ga_stats_span_free_locked(unsigned spc, size_t npages);
unsigned ga_option_count(void);
const char *ga_option_key(unsigned i);
void ga_lock_all(void);   /* every allocator lock, in the documented order */
void ga_unlock_all(void);
GA_INLINE void ga_ensure_init(void)
{
    if (GA_UNLIKELY(!atomic_load_explicit(&ga_initialized, memory_order_acquire)))
        ga_init_slow();
}

/* ------------------------------------------------------------------------
 * Errors and diagnostics (print.c); all output by write(2), no allocation.
 * ---------------------------------------------------------------------- */
typedef struct ga_buf {
    char *p;
    size_t len, cap;
} ga_buf_t;

void ga_buf_str(ga_buf_t *b, const char *s);
void ga_buf_uint(ga_buf_t *b, uint64_t v);
void ga_buf_hex(ga_buf_t *b, uint64_t v);
/* Writes the n bytes: 0, or the errno value of the failure (EIO when the
 * file took nothing more). Never a cancellation point. */
int ga_write_all(int fd, const char *p, size_t n);
/* Appends s JSON-escaped (no quotes) as far as b has room; returns the
 * rest of s (at its NUL when all of it went in). Control characters are
 * escaped, valid UTF-8 copied, other bytes become U+FFFD: the one escaping
 * function of every string the library writes into JSON. */
const char *ga_buf_json(ga_buf_t *b, const char *s);
/* Heap misuse: one line "goalloc: fn(): what 0x... (detail)", then abort —
 * or, with GOALLOC=on_error=report, count it and return (the caller then
 * ignores the offending call). */
GA_COLD void ga_misuse(const char *fn, const char *what, uintptr_t p, const ga_span_t *s);
extern _Atomic uint64_t ga_misuse_count;
#if defined(GA_TESTING)
void ga_test_misuse_seen(const char *line, size_t len); /* testing.c: the last report */
#endif
__attribute__((noreturn)) GA_COLD void ga_throw(const char *msg);
void ga_warn(const char *msg1, const char *msg2, const char *msg3);
int ga_fail(char *msg, size_t len, const char *what, uint64_t a, uint64_t b);
/* Option i's value as GOALLOC spells it (init.c, which owns the table). */
void ga_option_format(unsigned i, ga_buf_t *b);

#if GA_DEBUG >= 1
#define ga_assert(e) ((e) ? (void)0 : ga_throw("assertion failed: " #e))
#else
#define ga_assert(e) ((void)sizeof(e))
#endif

/* ------------------------------------------------------------------------
 * OS interface (mem_linux.c)
 * ---------------------------------------------------------------------- */
#include "mem.h"

#pragma GCC visibility pop

#endif
