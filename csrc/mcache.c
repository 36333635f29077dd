/* Per-thread caches (Go's mcache.go): one span per span class, the tiny
 * block, and the thread's life cycle — created on the first allocation,
 * returned to mcentral by a pthread key destructor when the thread exits.
 * A thread that allocates after its destructor ran (glibc frees TLS late)
 * uses one shared cache under a lock. Each cache holds its thread's page
 * cache (mpagecache.c); the walks over every cache's are here. See
 * malloc.c for the overview. */
#include <errno.h>
#include <string.h>

#include "inline.h"

#define EMPTY_MCACHE_INIT                                                                          \
    {.alloc = {[0 ... GA_NUM_SPC - 1] = &ga_emptyspan}, .tiny = 0, .tiny_off = GA_TINY_SIZE,     \
     .lock = GA_LOCK_INIT, .pcache = {.busy = 1}}

ga_mcache_t ga_empty_mcache = EMPTY_MCACHE_INIT;
ga_mcache_t ga_dead_mcache = EMPTY_MCACHE_INIT;
static ga_mcache_t shared_mcache = EMPTY_MCACHE_INIT;

#if defined(GA_OVERRIDE)
__thread ga_mcache_t *ga_tls_mcache __attribute__((tls_model("initial-exec"))) = &ga_empty_mcache;
#else
__thread ga_mcache_t *ga_tls_mcache = &ga_empty_mcache;
#endif

static ga_lock_t shared_lock = GA_LOCK_INIT;  /* the shared cache */
static ga_lock_t mcaches_lock = GA_LOCK_INIT; /* the list and the pool */
static ga_mcache_t *all_mcaches;
static ga_fixalloc_t mcache_pool;
static pthread_key_t mcache_key;

/* The owner's hold on its cache across a slow-path change (see lock in
 * types.h); nested holds count. */
static void cache_lock(ga_mcache_t *mc)
{
    if (mc->lock_depth++ == 0)
        ga_lock(&mc->lock);
}

static void cache_unlock(ga_mcache_t *mc)
{
    if (--mc->lock_depth == 0)
        ga_unlock(&mc->lock);
}

static void link_locked(ga_mcache_t *mc)
{
    ga_assert_held(&mcaches_lock);
    mc->prev_all = NULL;
    mc->next_all = all_mcaches;
    if (all_mcaches != NULL)
        all_mcaches->prev_all = mc;
    all_mcaches = mc;
}

static void unlink_locked(ga_mcache_t *mc)
{
    ga_assert_held(&mcaches_lock);
    if (mc->prev_all != NULL)
        mc->prev_all->next_all = mc->next_all;
    else
        all_mcaches = mc->next_all;
    if (mc->next_all != NULL)
        mc->next_all->prev_all = mc->prev_all;
}

/* Caches of exited threads, released: every class's current span the
 * sentinel, no kept or stashed span. The next new thread takes one and
 * resets its other fields (mcache_reuse) instead of clearing a fresh 10 KB
 * cache and setting all its classes. Linked through next_all; under
 * mcaches_lock. Bounded by the most threads that ever lived at once. */
static ga_mcache_t *clean_caches;

static void keep_clean_locked(ga_mcache_t *mc)
{
    ga_assert_held(&mcaches_lock);
    mc->next_all = clean_caches;
    clean_caches = mc;
}

/* A released cache's lists are empty: what mcache_reuse relies on. */
static bool released_clean(const ga_mcache_t *mc)
{
    for (unsigned i = 0; i < GA_NUM_SPC; i++)
        if (mc->alloc[i] != &ga_emptyspan || mc->full[i].first != NULL ||
            mc->avail[i].first != NULL || mc->stash[i] != NULL || mc->nstash[i] != 0)
            return false;
    return true;
}

/* Resets what a released cache keeps besides its empty lists: every field
 * from kept_pages to the stash, and from the lock to the end. */
static void mcache_reuse(ga_mcache_t *mc)
{
    ga_assert_internal(released_clean(mc));
    char *base = (char *)mc;
    size_t a = offsetof(ga_mcache_t, kept_pages), b = offsetof(ga_mcache_t, stash);
    size_t c = offsetof(ga_mcache_t, lock);
    memset(base + a, 0, b - a);
    memset(base + c, 0, sizeof *mc - c);
}

void ga_mcache_destroy(void *arg)
{
    ga_mcache_t *mc = arg;
    ga_assert_internal(mc != &ga_empty_mcache && mc != &ga_dead_mcache && mc->lock_depth == 0);
    ga_mcache_release_all(mc);
    ga_tls_mcache = &ga_dead_mcache;
    ga_lock(&mcaches_lock);
    unlink_locked(mc);
    keep_clean_locked(mc);
    ga_unlock(&mcaches_lock);
}

/* What the key destructor does at thread exit, now (for tests). */
void ga_mcache_exit_thread(void)
{
    ga_mcache_t *mc = ga_tls_mcache;
    if (mc == &ga_empty_mcache || mc == &ga_dead_mcache)
        return;
    pthread_setspecific(mcache_key, NULL);
    ga_mcache_destroy(mc);
}

void ga_mcache_init(void)
{
    ga_fixalloc_init(&mcache_pool, sizeof(ga_mcache_t), ga_mheap_alloc_meta);
    pthread_key_create(&mcache_key, ga_mcache_destroy);
    ga_lock(&mcaches_lock);
    link_locked(&shared_mcache);
    ga_unlock(&mcaches_lock);
}

static ga_mcache_t *mcache_create(void)
{
    ga_lock(&mcaches_lock);
    ga_mcache_t *mc = clean_caches;
    if (mc != NULL) {
        clean_caches = mc->next_all;
        mcache_reuse(mc);
    } else if ((mc = ga_fixalloc_alloc(&mcache_pool)) != NULL) {
        for (unsigned i = 0; i < GA_NUM_SPC; i++)
            mc->alloc[i] = &ga_emptyspan;
    }
    if (mc != NULL) {
        mc->tiny_off = GA_TINY_SIZE;
        mc->gen = atomic_load_explicit(&ga_flush_gen, memory_order_relaxed);
        ga_lock_init(&mc->lock);
        mc->lock_depth = 0;
        link_locked(mc);
    }
    ga_unlock(&mcaches_lock);
    if (mc != NULL) {
        /* Publish before pthread_setspecific, which may itself allocate. */
        ga_tls_mcache = mc;
        pthread_setspecific(mcache_key, mc);
    }
    return mc;
}

ga_mcache_t *ga_mcache_get_slow(bool *locked)
{
    ga_mcache_t *mc = ga_tls_mcache;
    ga_ensure_init();
    if (mc == &ga_empty_mcache && (mc = mcache_create()) != NULL)
        return mc;
    ga_lock(&shared_lock);
    *locked = true;
    return &shared_mcache;
}

void ga_mcache_put_shared(void)
{
    ga_unlock(&shared_lock);
}

/* ---- kept spans (GOALLOC=mcache_keep) --------------------------------------
 * Go hands an exhausted span back to mcentral at once; its sweeper finds
 * the slots the GC freed. With explicit free, the thread that filled a
 * span is usually the one that frees into it, so goalloc keeps exhausted
 * spans on the cache's full list: the owner's frees stay plain stores
 * instead of remote atomics, and a span the owner has freed into moves to
 * the avail list, which the next refill takes before asking mcentral.
 * Bounded by mcache_keep pages per cache (avail: half of that, as its
 * free slots serve this thread only); the oldest spans go to mcentral. */

static void unkeep(ga_mcache_t *mc, ga_span_t *s)
{
    ga_assert_internal(s->cache_list != GA_LIST_CURRENT && atomic_load(&s->owner) == mc &&
                       atomic_load(&s->state) == GA_SPAN_CACHED);
    ga_span_list_t *l = s->cache_list == GA_LIST_FULL ? &mc->full[s->spc] : &mc->avail[s->spc];
    ga_span_list_remove(l, s);
    mc->kept_pages -= s->npages;
    if (s->cache_list == GA_LIST_AVAIL)
        mc->avail_pages -= s->npages;
    s->cache_list = GA_LIST_CURRENT;
}

static void keep(ga_mcache_t *mc, ga_span_t *s, int which)
{
    ga_assert_internal(s->cache_list == GA_LIST_CURRENT && atomic_load(&s->owner) == mc &&
                       atomic_load(&s->state) == GA_SPAN_CACHED && mc->alloc[s->spc] != s);
    s->cache_list = (uint8_t)which;
    ga_span_list_push(which == GA_LIST_FULL ? &mc->full[s->spc] : &mc->avail[s->spc], s, false);
    mc->kept_pages += s->npages;
    if (which == GA_LIST_AVAIL)
        mc->avail_pages += s->npages;
}

/* Hands the oldest kept span (avail first when only_avail) of class spc,
 * or of the next class that has one, back to mcentral. */
static void evict_one(ga_mcache_t *mc, unsigned spc, bool only_avail)
{
    for (unsigned k = 0; k <= GA_NUM_SPC; k++) {
        unsigned i = k == 0 ? spc : (mc->evict_next + k - 1) % GA_NUM_SPC;
        ga_span_t *s = mc->avail[i].last;
        if (s == NULL && !only_avail)
            s = mc->full[i].last;
        if (s != NULL) {
            if (k != 0)
                mc->evict_next = (i + 1) % GA_NUM_SPC;
            unkeep(mc, s);
            ga_mcentral_uncache_span(&ga_central[i], s);
            return;
        }
    }
}

static size_t avail_budget(void)
{
    size_t b = ga_opts.mcache_keep / 2;
    return b ? b : 1;
}

/* Frees a span must have pending before it is worth folding and taking:
 * a quarter of its slots. Taking a span for one or two slots would trade
 * spans every few allocations when frees are scattered. */
static uint32_t worth(const ga_span_t *s)
{
    uint32_t pending = s->nlocal + (uint32_t)atomic_load_explicit(&s->nremote, memory_order_relaxed);
    return pending >= (s->nelems + 3) / 4 ? pending : 0;
}

/* The owner freed into s, a span on its full list (ga_free_slot). */
#if defined(GA_TESTING)
void (*ga_test_cache_hook)(void);
#endif

void ga_mcache_span_freed(ga_mcache_t *mc, ga_span_t *s)
{
    cache_lock(mc);
    ga_assert_internal(s->cache_list == GA_LIST_FULL);
    unkeep(mc, s);
#if defined(GA_TESTING)
    if (ga_test_cache_hook != NULL)
        ga_test_cache_hook();
#endif
    keep(mc, s, GA_LIST_AVAIL);
    ga_span_set_owner(s, mc); /* later owner frees take the inline path */
    while (mc->avail_pages > avail_budget())
        evict_one(mc, s->spc, true);
    cache_unlock(mc);
}

/* Every slot of kept span s is freed: kept spans are exhausted (all slots
 * handed out), so the pending frees tell. */
static bool kept_empty(const ga_span_t *s)
{
    return s->nlocal + (uint32_t)atomic_load_explicit(&s->nremote, memory_order_relaxed) == s->nelems;
}

/* Folds s if frees are pending; true if it then holds no object (nothing
 * handed out since the fold either: freeindex is back at 0). */
static bool fold_empty(ga_span_t *s)
{
    if (ga_span_has_pending_frees(s))
        ga_span_fold(s);
    return s->alloc_count == 0 && s->freeindex == 0;
}

/* The current span s of a class holds no object: every slot handed out
 * was freed (folded here, by its owner, when the pending frees can tell). */
static bool current_empty(ga_span_t *s)
{
    uint32_t pending = s->nlocal + (uint32_t)atomic_load_explicit(&s->nremote, memory_order_relaxed);
    if (pending < s->alloc_count || (pending == 0 && s->freeindex != 0))
        return false;
    return fold_empty(s);
}

/* The span class after i in a round robin over the table's classes and
 * the tiny class (not over every slot of the compiled maximum). */
static unsigned next_used_class(unsigned i)
{
    if (i == GA_TINY_SPC || i + 1 >= ga_classes.nclasses)
        return i == GA_TINY_SPC ? 1 : GA_TINY_SPC;
    return i + 1;
}

/* Visits the next nclasses classes, round robin, and hands back to
 * mcentral their oldest kept spans and their current span when these hold
 * no object, so that a class the thread stopped using does not keep pages
 * another class could use (the thread's own next refill of that class goes
 * to mcentral, which keeps one empty span a while). Called for 1 class
 * whenever a span is exhausted and for 4 before each refill from mcentral,
 * when pages are about to be needed. */
static void trim_empty(ga_mcache_t *mc, unsigned nclasses)
{
    for (unsigned k = 0; k < nclasses; k++) {
        unsigned i = mc->trim_next;
        mc->trim_next = next_used_class(i);
        for (int which = 0; which < 2; which++) {
            ga_span_t *s = which == 0 ? mc->avail[i].last : mc->full[i].last;
            if (s != NULL && kept_empty(s)) {
                unkeep(mc, s);
                ga_mcentral_uncache_span(&ga_central[i], s);
            }
        }
        ga_span_t *s = mc->alloc[i];
        uint64_t window = s->alloc_cache; /* a fold resets what heap-profile sampling cut */
        if (s != &ga_emptyspan && i != GA_TINY_SPC && current_empty(s)) {
            mc->alloc[i] = &ga_emptyspan;
            ga_mcentral_uncache_span(&ga_central[i], s);
        } else if (ga_sample_rate != 0 && i != GA_TINY_SPC && s != &ga_emptyspan &&
                   s->alloc_cache != window) {
            ga_prof_sample_recut(mc, i, window);
        }
    }
}

/* An exhausted span leaves mc->alloc: kept (on the avail list if frees
 * into it are already pending), or back to mcentral. */
static void retire(ga_mcache_t *mc, unsigned spc, ga_span_t *s)
{
    ga_assert_internal(s != &ga_emptyspan && s->spc == spc && mc->alloc[spc] != s &&
                       atomic_load(&s->owner) == mc);
    if (ga_opts.mcache_keep == 0) {
        ga_mcentral_uncache_span(&ga_central[spc], s);
    } else if (s->nlocal != 0) {
        keep(mc, s, GA_LIST_AVAIL);
        while (mc->avail_pages > avail_budget())
            evict_one(mc, spc, true);
    } else {
        keep(mc, s, GA_LIST_FULL);
        atomic_store_explicit(&s->free_owner, NULL, memory_order_relaxed);
    }
    while (mc->kept_pages > ga_opts.mcache_keep)
        evict_one(mc, spc, false);
    trim_empty(mc, 1);
}

/* A kept span of class spc worth taking (see worth), folded: among the
 * four oldest the owner freed into, else among the four oldest exhausted
 * ones, which only other threads can have freed into. NULL if none. */
static ga_span_t *take_kept(ga_mcache_t *mc, unsigned spc)
{
    ga_span_t *s = NULL;
    for (int which = 0; which < 2 && s == NULL; which++) {
        ga_span_t *t = which == 0 ? mc->avail[spc].last : mc->full[spc].last;
        for (unsigned looked = 0; t != NULL && looked < 4; t = t->prev, looked++)
            if (worth(t)) {
                s = t;
                break;
            }
    }
    if (s == NULL)
        return NULL;
    unkeep(mc, s);
    ga_span_set_owner(s, mc);
    ga_span_fold(s);
    return s;
}

static ga_span_t *stash_pop(ga_mcache_t *mc, unsigned spc)
{
    ga_span_t *s = mc->stash[spc];
    ga_assert_internal(atomic_load(&s->owner) == mc && atomic_load(&s->state) == GA_SPAN_CACHED &&
                       s->spc == spc && mc->nstash[spc] != 0);
    mc->stash[spc] = s->next;
    mc->nstash[spc]--;
    s->next = NULL;
    if (ga_span_has_pending_frees(s))
        ga_span_fold(s);
    return s;
}

/* Go mcache.refill: GOALLOC=refill spans from mcentral, the first to
 * allocate from, the others stashed. */
static ga_span_t *refill(ga_mcache_t *mc, unsigned spc, ga_heap_how_t how)
{
    ga_span_t *s = ga_mcentral_cache_span(&ga_central[spc], mc, (unsigned)ga_opts.refill, how);
    if (s == NULL)
        return NULL;
    for (ga_span_t *x = s->next, *next; x != NULL; x = next) {
        next = x->next;
        x->next = mc->stash[spc];
        mc->stash[spc] = x;
        mc->nstash[spc]++;
    }
    s->next = NULL;
    return s;
}

void ga_mcache_flush_tiny_requested(ga_mcache_t *mc)
{
#if GA_STATS
    if (mc->tiny_requested != 0) {
        GA_STAT_ADD(ga_class_counters[GA_TINY_SPC].requested, mc->tiny_requested);
        mc->tiny_requested = 0;
    }
#else
    (void)mc;
#endif
}

uint64_t ga_mcache_tiny_requested_locked(void)
{
    ga_assert_held(&mcaches_lock);
    uint64_t n = 0;
#if GA_STATS
    for (ga_mcache_t *mc = all_mcaches; mc != NULL; mc = mc->next_all)
        n += mc->tiny_requested;
#endif
    return n;
}

/* ga_mcache_next_free past the current span's next window. REQUIRES:
 * cache_lock(mc). */
static void *next_free_locked(ga_mcache_t *mc, unsigned spc, uint32_t gen, ga_heap_how_t how)
{
    ga_assert_held(&mc->lock);
    if (GA_UNLIKELY(mc->gen != gen)) {
        /* Idle for two epochs or more (Go's flushGen): hand everything back
         * before going on, so that what this thread held becomes usable. */
        if (gen - mc->gen >= 2)
            ga_mcache_release_all(mc);
        mc->gen = gen;
    }
    ga_span_t *s = mc->alloc[spc];
    if (s != &ga_emptyspan) {
        if (ga_span_next_free_index(s) < s->nelems)
            return ga_span_next_free_fast(s);
        if (ga_opts.mcache_keep == 0 ? ga_span_has_pending_frees(s) : worth(s) != 0) {
            ga_span_fold(s);
            if (ga_span_next_free_index(s) < s->nelems)
                return ga_span_next_free_fast(s);
        }
        mc->alloc[spc] = &ga_emptyspan;
        retire(mc, spc, s);
    }
    s = take_kept(mc, spc);
    if (s == NULL || ga_span_next_free_index(s) >= s->nelems) {
        if (s != NULL) /* counted remote frees whose bits were not yet set: keep it */
            retire(mc, spc, s);
        trim_empty(mc, 4); /* other classes' empty spans first: pages are needed */
        s = mc->stash[spc] != NULL ? stash_pop(mc, spc) : refill(mc, spc, how);
    }
    if (s == NULL)
        return NULL;
    ga_assert(atomic_load(&s->owner) == mc && s->spc == spc);
    ga_assert_internal(s->cache_list == GA_LIST_CURRENT && atomic_load(&s->state) == GA_SPAN_CACHED);
    ga_mcache_set_current(mc, spc, s);
    if (ga_span_next_free_index(s) >= s->nelems)
        ga_throw("mcentral handed out a span without a free slot");
    return ga_span_next_free_fast(s);
}

/* Go mcache.nextFree + refill: the next slot of span class spc when the
 * fast path found none. Folds pending frees into an exhausted span before
 * trading it in. NULL with errno = ENOMEM when memory is exhausted. The
 * next window of the current span needs no lock (a fork at any point of it
 * leaves the span as consistent as the inline path does); the rest does. */
void *ga_mcache_next_free(ga_mcache_t *mc, unsigned spc, ga_heap_how_t how)
{
    uint32_t gen = atomic_load_explicit(&ga_flush_gen, memory_order_relaxed);
    ga_span_t *s = mc->alloc[spc];
    if (GA_LIKELY(mc->gen == gen) && s != &ga_emptyspan && ga_span_next_free_index(s) < s->nelems)
        return ga_span_next_free_fast(s);
    cache_lock(mc);
    void *p = next_free_locked(mc, spc, gen, how);
    cache_unlock(mc);
    return p;
}

/* Lets go of the current tiny block; frees it if all its sub-objects are
 * already freed. */
void ga_mcache_release_tiny(ga_mcache_t *mc)
{
    if (mc->tiny == 0)
        return;
    uint32_t old = atomic_fetch_and_explicit(mc->tiny_meta, ~GA_TINY_HELD, memory_order_acq_rel);
    uintptr_t blk = mc->tiny;
    mc->tiny = 0;
    atomic_signal_fence(memory_order_seq_cst); /* before tiny_meta: see tiny_new_block */
    mc->tiny_off = GA_TINY_SIZE;
    mc->tiny_meta = NULL;
    if ((old & GA_TINY_STARTS) == 0) {
        ga_span_t *s = ga_span_of(blk);
        ga_free_slot(s, ga_span_index(s, blk), blk, mc, "free");
    }
}


size_t ga_mcache_reclaim_own(void)
{
    ga_mcache_t *mc = ga_tls_mcache;
    size_t pages = 0;
    if (mc == &ga_empty_mcache || mc == &ga_dead_mcache)
        return 0;
    cache_lock(mc);
    for (unsigned i = 0; i < GA_NUM_SPC; i++) {
        ga_span_t *s = mc->alloc[i];
        uint64_t window = s->alloc_cache; /* a fold resets what heap-profile sampling cut */
        if (s != &ga_emptyspan && fold_empty(s)) {
            mc->alloc[i] = &ga_emptyspan;
            pages += s->npages;
            ga_mcentral_uncache_span(&ga_central[i], s);
        } else if (ga_sample_rate != 0 && i != GA_TINY_SPC && s != &ga_emptyspan &&
                   s->alloc_cache != window) {
            ga_prof_sample_recut(mc, i, window);
        }
        for (int which = 0; which < 2; which++) {
            ga_span_t *next;
            for (s = which ? mc->avail[i].first : mc->full[i].first; s != NULL; s = next) {
                next = s->next;
                if (fold_empty(s)) {
                    unkeep(mc, s);
                    pages += s->npages;
                    ga_mcentral_uncache_span(&ga_central[i], s);
                }
            }
        }
    }
    /* Stashed spans with no live object, fresh ones included. */
    for (unsigned i = 0; i < GA_NUM_SPC; i++) {
        for (ga_span_t **link = &mc->stash[i], *s; (s = *link) != NULL;) {
            if (ga_span_has_pending_frees(s))
                ga_span_fold(s);
            if (s->alloc_count != 0) {
                link = &s->next;
                continue;
            }
            *link = s->next;
            s->next = NULL;
            mc->nstash[i]--;
            pages += s->npages;
            ga_mcentral_uncache_span(&ga_central[i], s);
        }
    }
    pages += ga_pagecache_flush_own(mc);
    cache_unlock(mc);
    return pages;
}

static void release_class(ga_mcache_t *mc, unsigned i);

/* The page cache's objects back to the heap, its hits to the total of
 * released caches (the shared cache has none). */
static void release_pagecache(ga_mcache_t *mc)
{
    if (mc == &shared_mcache)
        return;
    ga_pagecache_hold(&mc->pcache);
    GA_STAT_ADD(ga_pagecache_hits_released, atomic_load(&mc->pcache.hits));
    atomic_store(&mc->pcache.hits, 0);
    ga_pagecache_flush_held(&mc->pcache);
}

void ga_mcache_set_current(ga_mcache_t *mc, unsigned spc, ga_span_t *s)
{
    mc->alloc[spc] = s;
    mc->used[spc / 64] |= 1ull << (spc % 64);
}

/* Returns every cached span to mcentral (Go releaseAll). */
void ga_mcache_release_all(ga_mcache_t *mc)
{
    cache_lock(mc);
    ga_mcache_release_tiny(mc);
    ga_mcache_flush_tiny_requested(mc);
    release_pagecache(mc);
    for (unsigned w = 0; w < sizeof mc->used / sizeof mc->used[0]; w++)
        for (uint64_t bits = mc->used[w]; bits != 0; bits &= bits - 1)
            release_class(mc, w * 64 + (unsigned)__builtin_ctzll(bits));
    memset(mc->used, 0, sizeof mc->used);
    cache_unlock(mc);
}

/* Hands class i's current, kept and stashed spans back to mcentral. */
static void release_class(ga_mcache_t *mc, unsigned i)
{
    ga_span_t *s = mc->alloc[i];
    if (s != &ga_emptyspan) {
        mc->alloc[i] = &ga_emptyspan;
        ga_mcentral_uncache_span(&ga_central[i], s);
    }
    while ((s = mc->full[i].first) != NULL || (s = mc->avail[i].first) != NULL) {
        unkeep(mc, s);
        ga_mcentral_uncache_span(&ga_central[i], s);
    }
    while (mc->stash[i] != NULL) {
        s = mc->stash[i];
        mc->stash[i] = s->next;
        s->next = NULL;
        ga_mcentral_uncache_span(&ga_central[i], s);
    }
    mc->nstash[i] = 0;
}

/* ---- every cache's page cache ----------------------------------------------- */

/* The page cache ga_mcache_lock_all left alone: the calling thread's own,
 * busy because a signal handler interrupted it (its owner finishes it). */
static ga_pagecache_t *pcache_skipped;
static bool pcaches_held; /* ga_mcache_lock_all holds every other busy */

static void hold_pagecaches_locked(void)
{
    ga_assert_held(&mcaches_lock);
    pcache_skipped = NULL;
    for (ga_mcache_t *mc = all_mcaches; mc != NULL; mc = mc->next_all) {
        if (mc == &shared_mcache)
            continue;
        if (mc == ga_tls_mcache) {
            if (!ga_pagecache_try_hold(&mc->pcache))
                pcache_skipped = &mc->pcache;
        } else {
            ga_pagecache_hold(&mc->pcache);
        }
    }
    pcaches_held = true;
}

/* Lets go of what hold_pagecaches_locked holds; in a fork child (lost:
 * every thread but the caller is gone) nothing can be waiting for it. */
static void let_go_pagecaches_locked(void)
{
    ga_assert_held(&mcaches_lock);
    for (ga_mcache_t *mc = all_mcaches; mc != NULL; mc = mc->next_all)
        if (mc != &shared_mcache && &mc->pcache != pcache_skipped)
            ga_pagecache_let_go(&mc->pcache);
    pcaches_held = false;
}

/* Every thread's page cache back to the heap (malloc_trim, and before
 * the heap gives up); returns the pages. */
size_t ga_mcache_flush_pagecaches(void)
{
    size_t pages = 0;
    ga_lock(&mcaches_lock);
    for (ga_mcache_t *mc = all_mcaches; mc != NULL; mc = mc->next_all)
        if (mc != &shared_mcache)
            pages += mc == ga_tls_mcache ? ga_pagecache_flush_own(mc)
                                         : ga_pagecache_flush(&mc->pcache);
    ga_unlock(&mcaches_lock);
    return pages;
}

/* The page caches of threads that used them neither since the last check
 * nor for scavenge_delay (the background thread's round). */
size_t ga_mcache_flush_idle_pagecaches(void)
{
    size_t pages = 0;
    ga_lock(&mcaches_lock);
    for (ga_mcache_t *mc = all_mcaches; mc != NULL; mc = mc->next_all)
        if (mc != &shared_mcache)
            pages += ga_pagecache_flush_idle(&mc->pcache, mc == ga_tls_mcache);
    ga_unlock(&mcaches_lock);
    return pages;
}

uint64_t ga_mcache_pagecache_hits_locked(void)
{
    ga_assert_held(&mcaches_lock);
    uint64_t n = atomic_load(&ga_pagecache_hits_released);
    for (ga_mcache_t *mc = all_mcaches; mc != NULL; mc = mc->next_all)
        n += atomic_load_explicit(&mc->pcache.hits, memory_order_relaxed);
    return n;
}

/* ---- locks for fork and check_heap ---------------------------------------------- */

/* The shared cache's lock, the list's, then every cache's own, then every
 * page cache's busy: a thread holding its cache's lock takes neither of
 * the first two. */
void ga_mcache_lock_all(void)
{
    ga_lock(&shared_lock);
    ga_lock(&mcaches_lock);
    for (ga_mcache_t *mc = all_mcaches; mc != NULL; mc = mc->next_all)
        ga_lock(&mc->lock);
    hold_pagecaches_locked();
}

void ga_mcache_unlock_all(void)
{
    let_go_pagecaches_locked();
    for (ga_mcache_t *mc = all_mcaches; mc != NULL; mc = mc->next_all)
        ga_unlock(&mc->lock);
    ga_unlock(&mcaches_lock);
    ga_unlock(&shared_lock);
}

/* In a fork child only the forking thread exists: every other thread's
 * cache is orphaned, so hand its spans back. REQUIRES: all locks
 * reinitialised. */
void ga_mcache_fork_child(void)
{
    ga_lock_init(&shared_lock);
    ga_lock_init(&mcaches_lock);
    ga_mcache_t *self = ga_tls_mcache;
    /* A lost thread may have been waiting for its cache's lock (its
     * lock_depth already counted). */
    for (ga_mcache_t *mc = all_mcaches; mc != NULL; mc = mc->next_all) {
        ga_lock_init(&mc->lock);
        mc->lock_depth = 0;
    }
    if (pcaches_held) { /* fork_prepare held them: no lost thread was inside one */
        ga_lock(&mcaches_lock);
        let_go_pagecaches_locked();
        ga_unlock(&mcaches_lock);
    }
    for (ga_mcache_t *mc = all_mcaches, *next; mc != NULL; mc = next) {
        next = mc->next_all;
        if (mc == self)
            continue;
        ga_mcache_release_all(mc);
        if (mc != &shared_mcache) {
            ga_lock(&mcaches_lock); /* alone in the child, but the rule holds */
            unlink_locked(mc);
            keep_clean_locked(mc);
            ga_unlock(&mcaches_lock);
        }
    }
}

/* The kept lists of mc: every span CACHED, owned by mc, of the list's
 * class, tagged with its list, free_owner as the list says, and the page
 * sums right. */
static int check_kept(ga_mcache_t *mc, size_t *ncached, char *msg, size_t len)
{
    size_t kept = 0, avail = 0;
    for (unsigned i = 0; i < GA_NUM_SPC; i++) {
        for (int which = GA_LIST_FULL; which <= GA_LIST_AVAIL; which++) {
            ga_span_list_t *l = which == GA_LIST_FULL ? &mc->full[i] : &mc->avail[i];
            size_t n = 0;
            for (ga_span_t *s = l->first; s != NULL; s = s->next, n++) {
                ga_mcache_t *fo = atomic_load(&s->free_owner);
                bool fo_ok = which == GA_LIST_FULL
                                 ? fo == NULL
                                 : fo == (s->spc == GA_TINY_SPC || ga_hardened ? NULL : mc) ||
                                       (fo == NULL && ga_sample_rate != 0); /* held a sample */
                if (atomic_load(&s->state) != GA_SPAN_CACHED || atomic_load(&s->owner) != mc ||
                    s->spc != i || s->cache_list != which || !fo_ok)
                    return ga_fail(msg, len, "mcache: kept span not owned by its cache's list",
                                   s->base, i);
                kept += s->npages;
                avail += which == GA_LIST_AVAIL ? s->npages : 0;
                (*ncached)++;
            }
            if (n != l->n)
                return ga_fail(msg, len, "mcache: kept list length disagrees", n, l->n);
        }
    }
    if (kept != mc->kept_pages || avail != mc->avail_pages)
        return ga_fail(msg, len, "mcache: kept pages disagree with the lists", kept,
                       mc->kept_pages);
    return 0;
}

/* REQUIRES: the mcache locks and every mcentral lock. */
int ga_mcache_check_all(size_t *ncached, size_t *npcached, char *msg, size_t len)
{
    for (ga_mcache_t *mc = all_mcaches; mc != NULL; mc = mc->next_all) {
        if (mc != &shared_mcache && &mc->pcache != pcache_skipped) {
            int rc = ga_pagecache_check_held(&mc->pcache, npcached, msg, len);
            if (rc != 0)
                return rc;
        }
        for (unsigned i = 0; i < GA_NUM_SPC; i++) {
            ga_span_t *s = mc->alloc[i];
            if (s == &ga_emptyspan)
                continue;
            if (atomic_load(&s->state) != GA_SPAN_CACHED || atomic_load(&s->owner) != mc ||
                s->spc != i || s->cache_list != GA_LIST_CURRENT)
                return ga_fail(msg, len, "mcache: cached span not owned by its cache", s->base, i);
            (*ncached)++;
        }
        int rc = check_kept(mc, ncached, msg, len);
        if (rc != 0)
            return rc;
        for (unsigned i = 0; i < GA_NUM_SPC; i++) {
            unsigned n = 0;
            for (ga_span_t *s = mc->stash[i]; s != NULL && n <= GA_MAX_REFILL; s = s->next, n++)
                if (atomic_load(&s->state) != GA_SPAN_CACHED || atomic_load(&s->owner) != mc ||
                    s->spc != i || s == mc->alloc[i])
                    return ga_fail(msg, len, "mcache: stashed span not owned by its cache",
                                   s->base, i);
            if (n != mc->nstash[i])
                return ga_fail(msg, len, "mcache: stash length disagrees with nstash", i, n);
            *ncached += n;
        }
        if (mc->tiny != 0) {
            ga_span_t *s = ga_span_of(mc->tiny);
            if (s == NULL || s->spc != GA_TINY_SPC || (mc->tiny - s->base) % GA_TINY_SIZE != 0)
                return ga_fail(msg, len, "mcache: tiny block outside a tiny span", mc->tiny, 0);
            uint32_t w = atomic_load(mc->tiny_meta);
            if (mc->tiny_meta != &s->tiny_meta[(mc->tiny - s->base) / GA_TINY_SIZE] ||
                !(w & GA_TINY_HELD) ||
                ((w & GA_TINY_CURSOR_MASK) >> GA_TINY_CURSOR_SHIFT) != mc->tiny_off)
                return ga_fail(msg, len, "mcache: tiny block word disagrees with the cache",
                               mc->tiny, w);
        }
    }
    return 0;
}
