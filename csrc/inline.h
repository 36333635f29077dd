/* The inline functions: the lock wrappers, and the fast paths (what malloc
 * and free run without a call, and the small helpers they share: page map
 * look-up, slot index by multiply, the allocation window). Included by the files that run them; see
 * malloc.c for the overview. */
#ifndef GA_INLINE_H
#define GA_INLINE_H

#include "internal.h"

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

/* The same where the count is wanted once on a slow path of its own
 * (heap-profile sampling's window refills): the instruction when the CPU
 * has it, by inline assembly, which needs no -mpopcnt. */
static inline unsigned ga_popcount64_rt(uint64_t x)
{
#if defined(__x86_64__) && !defined(__POPCNT__)
    if (GA_LIKELY(ga_cpu_popcnt)) {
        uint64_t r;
        __asm__("popcntq %1, %0" : "=r"(r) : "rm"(x) : "cc");
        return (unsigned)r;
    }
#endif
    return ga_popcount64(x);
}

/* ---- locks (ga_lock_t, types.h) ---------------------------------------------- */

/* The calling thread, as lock owner: the address of one of its
 * thread-local variables. */
GA_INLINE uintptr_t ga_lock_self(void) { return (uintptr_t)&ga_tls_mcache; }

GA_INLINE void ga_lock_init(ga_lock_t *l)
{
    pthread_mutex_init(&l->m, NULL);
#if GA_DEBUG >= 3
    atomic_store_explicit(&l->owner, 0, memory_order_relaxed);
#endif
}

GA_INLINE void ga_lock(ga_lock_t *l)
{
    pthread_mutex_lock(&l->m);
#if GA_DEBUG >= 3
    atomic_store_explicit(&l->owner, ga_lock_self(), memory_order_relaxed);
#endif
}

/* 0 when taken, like pthread_mutex_trylock. */
GA_INLINE int ga_trylock(ga_lock_t *l)
{
    int e = pthread_mutex_trylock(&l->m);
#if GA_DEBUG >= 3
    if (e == 0)
        atomic_store_explicit(&l->owner, ga_lock_self(), memory_order_relaxed);
#endif
    return e;
}

GA_INLINE void ga_unlock(ga_lock_t *l)
{
#if GA_DEBUG >= 3
    if (atomic_load_explicit(&l->owner, memory_order_relaxed) != ga_lock_self())
        ga_throw("a lock let go by a thread that does not hold it");
    atomic_store_explicit(&l->owner, 0, memory_order_relaxed);
#endif
    pthread_mutex_unlock(&l->m);
}

/* Go's assertLockHeld: the first statement of a function that REQUIRES l
 * (the debug library checks it; elsewhere it compiles to nothing). */
#if GA_DEBUG >= 3
#define ga_assert_held(l)                                                                          \
    (atomic_load_explicit(&(l)->owner, memory_order_relaxed) == ga_lock_self()                     \
         ? (void)0                                                                                 \
         : ga_throw_at("lock not held", __func__))
#else
#define ga_assert_held(l) ((void)sizeof(l))
#endif

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

/* Frees slot idx of small span s from the calling thread (cache mc). */
GA_INLINE void ga_free_slot(ga_span_t *s, uint32_t idx, uintptr_t p, struct ga_mcache *mc,
                            const char *fn)
{
    if (atomic_load_explicit(&s->owner, memory_order_relaxed) == mc) {
        ga_span_free_local(s, idx, p, fn);
        if (s->cache_list == GA_LIST_FULL)
            ga_mcache_span_freed(mc, s);
    } else if (ga_span_free_remote(s, idx, p, fn)) {
        ga_mcentral_remote_transition(s);
    }
}

/* Hands s to mcache mc (NULL: to nobody); see free_owner. */
GA_INLINE void ga_span_set_owner(ga_span_t *s, struct ga_mcache *mc)
{
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

GA_INLINE unsigned ga_size_to_class(size_t n)
{
    if (n <= GA_SMALL_SIZE_MAX)
        return ga_classes.size_to_class8[(n + GA_SMALL_SIZE_DIV - 1) / GA_SMALL_SIZE_DIV];
    return ga_classes.size_to_class128[(n - GA_SMALL_SIZE_MAX + GA_LARGE_SIZE_DIV - 1) /
                                       GA_LARGE_SIZE_DIV];
}

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

static inline void ga_scavenger_poll(void)
{
    if (__builtin_expect(atomic_load_explicit(&ga_scavenger_wanted, memory_order_relaxed), 0))
        ga_scavenger_start_wanted();
}

/* free's hook, before s's slot is freed. */
GA_INLINE void ga_prof_sample_free(ga_span_t *s, uintptr_t p)
{
    if (GA_UNLIKELY(atomic_load_explicit(&s->prof_sampled, memory_order_acquire) &
                    (1ull << ((p >> 4) & 63))))
        ga_prof_sample_free_slow(s, p);
}

/* Heap-profile sampling of small class spc (mprof.c), before an object is
 * taken: whether it is the sampled one. The common case is a window that
 * ran out (the inline path took all granted of it) with more objects left
 * before the sampled one than it held: the count goes down by what it
 * held and by this object, in a few instructions. A cut window holds
 * exactly the objects left, so it never passes the test; everything else
 * (not drawn yet, a window not empty, a cut one) is
 * ga_prof_sample_due_slow's. */
GA_INLINE bool ga_prof_sample_due(ga_mcache_t *mc, unsigned spc)
{
    uint32_t left = mc->sample_left[spc], granted = mc->sample_granted[spc];
    if (GA_LIKELY(mc->alloc[spc]->alloc_cache == 0 && left > granted + 1)) {
        mc->sample_left[spc] = left - granted - 1; /* stored + 1 */
        mc->sample_granted[spc] = 0;
        mc->sample_span[spc] = NULL;
        return false;
    }
    return ga_prof_sample_due_slow(mc, spc);
}

/* After the object was taken: grants the inline path the current window,
 * which needs no cut when it holds fewer objects than are left before the
 * sampled one; a cut, or a span whose frees were sent to the slow path
 * (it held a sample), is ga_prof_sample_cut_slow's. */
GA_INLINE void ga_prof_sample_cut(ga_mcache_t *mc, unsigned spc)
{
    ga_span_t *s = mc->alloc[spc];
    unsigned n = ga_popcount64_rt(s->alloc_cache);
    if (GA_LIKELY(n < mc->sample_left[spc] &&
                  atomic_load_explicit(&s->free_owner, memory_order_relaxed) != NULL)) {
        mc->sample_span[spc] = s;
        mc->sample_granted[spc] = (uint8_t)n;
        return;
    }
    ga_prof_sample_cut_slow(mc, spc);
}

GA_INLINE void ga_ensure_init(void)
{
    if (GA_UNLIKELY(!atomic_load_explicit(&ga_initialized, memory_order_acquire)))
        ga_init_slow();
}

/* One attempt of the recovery policy (mgcsweep.c): the next slot of class
 * spc for mc, or (spc == 0) a large span of npages pages aligned to align
 * pages, from the heap's free runs only (GA_HEAP_TRY) or growing it. */
GA_INLINE void *ga_sweep_attempt(ga_mcache_t *mc, unsigned spc, size_t npages, size_t align,
                                 ga_heap_how_t how)
{
    if (spc != 0)
        return ga_mcache_next_free(mc, spc, how);
    return ga_mheap_alloc(npages, align, GA_SPAN_LARGE, 0, how);
}

/* Allocation past the inline path (small: the window is empty; large):
 * the policy's first step inline, the rest in ga_sweep_recover. Counts
 * mc's slow paths and does the periodic work on one in 16. NULL with
 * errno = ENOMEM. */
GA_INLINE void *ga_sweep_alloc(ga_mcache_t *mc, unsigned spc, size_t npages, size_t align)
{
    if (spc != 0 && GA_UNLIKELY((++mc->slow_paths & 15) == 0)) /* the clock: one in 16 */
        ga_sweep_tick(mc);
    void *p = ga_sweep_attempt(mc, spc, npages, align, GA_HEAP_TRY);
    return GA_LIKELY(p != NULL) ? p : ga_sweep_recover(mc, spc, npages, align);
}

#endif
