/* Central lists (Go's mcentral.go): one per span class, each with its own
 * lock on its own cache line, holding the spans that no mcache owns —
 * partial (a free slot, maybe still to be folded) and full. mcaches take
 * spans from here and give them back; remote frees move full spans to
 * partial and return emptied spans to the page heap. See malloc.c for the
 * overview. */
#include <errno.h>
#include <string.h>

#include "inline.h"

ga_mcentral_t ga_central[GA_NUM_SPC];
_Atomic size_t ga_purged_os_pages;
static _Atomic uint64_t grow_clock; /* spans grown: the age of kept empty spans */

static bool central_used(unsigned spc)
{
    return spc == GA_TINY_SPC || (spc > 0 && spc < ga_classes.nclasses);
}

void ga_mcentral_init(void)
{
    for (unsigned i = 0; i < GA_NUM_SPC; i++) {
        ga_lock_init(&ga_central[i].lock);
        ga_central[i].spc = i;
    }
}

void ga_mcentral_lock_all(void)
{
    for (unsigned i = 0; i < GA_NUM_SPC; i++)
        if (central_used(i))
            ga_lock(&ga_central[i].lock);
}

void ga_mcentral_unlock_all(void)
{
    for (unsigned i = GA_NUM_SPC; i-- > 0;)
        if (central_used(i))
            ga_unlock(&ga_central[i].lock);
}

void ga_mcentral_fork_child(void)
{
    for (unsigned i = 0; i < GA_NUM_SPC; i++)
        ga_lock_init(&ga_central[i].lock);
}

/* A span going on a list: its free slots are resident again (taken) or
 * not yet released (new on the list). */
static void unpurge(ga_span_t *s)
{
    if (s->npurged != 0)
        atomic_fetch_sub_explicit(&ga_purged_os_pages, s->npurged, memory_order_relaxed);
    s->npurged = 0;
    s->purged = false;
}

/* Adds s at the front (handed out next) or at the back of l. */
static void list_push(ga_span_list_t *l, ga_span_t *s, bool back)
{
    unpurge(s);
    s->unused_since = ga_now_ns();
    ga_span_list_push(l, s, back);
}

/* Spans with few free slots go to the back of the partial list: handing
 * them out would trade spans every few allocations (a remote free makes a
 * FULL span partial with one free slot). */
static bool few_free(const ga_span_t *s, int32_t nremote)
{
    return (s->nelems - s->alloc_count) + (uint32_t)nremote < (s->nelems + 3) / 4;
}

/* Gives a span whose objects are all free back to the page heap.
 * REQUIRES: s is CLAIMED and on no list.
 * A remote free whose bit a fold took before the free counted it may be
 * what emptied s: its count must land before s can be made a new span
 * (ga_span_init_small zeroes nremote), where it would count a free that
 * never happened, and the new span would go back to the page heap with a
 * live object in it. */
void ga_mcentral_release_span(ga_span_t *s)
{
    ga_assert_internal(atomic_load(&s->state) == GA_SPAN_CLAIMED && !s->kept_empty);
    ga_span_wait_remote_counts(s);
    ga_span_flush_cross(s);
    uint64_t pending = (uint64_t)atomic_load(&s->nremote); /* frees never folded */
    if (pending != 0) {
        GA_STAT_ADD(ga_class_counters[s->spc].frees, pending);
        GA_STAT_ADD(ga_class_counters[s->spc].remote_frees, pending);
    }
    GA_STAT_ADD(ga_class_counters[s->spc].releases, 1);
    unpurge(s);
    ga_span_bits_free(s);
    ga_mheap_free(s);
}

/* Claims s, which is on no list and has no live object, unlocks c and
 * returns s to the page heap. REQUIRES: c->lock. */
static void release_unlock(ga_mcentral_t *c, ga_span_t *s)
{
    ga_assert_held(&c->lock);
    ga_assert_internal(!s->kept_empty && atomic_load(&s->owner) == NULL);
    atomic_store(&s->published, GA_UNPUBLISHED);
    atomic_store(&s->state, GA_SPAN_CLAIMED);
    ga_unlock(&c->lock);
    ga_mcentral_release_span(s);
}

/* Keeps s (no live object, on no list) as c's empty span if there is room.
 * REQUIRES: c->lock. */
static bool keep_empty_locked(ga_mcentral_t *c, ga_span_t *s)
{
    ga_assert_held(&c->lock);
    ga_assert_internal(!s->kept_empty && atomic_load(&s->owner) == NULL && s->spc == c->spc);
    if (c->nempty >= GA_KEEP_EMPTY)
        return false;
    c->nempty++;
    s->kept_empty = true;
    s->empty_since = atomic_load_explicit(&grow_clock, memory_order_relaxed);
    atomic_store(&s->published, s->alloc_count);
    atomic_store(&s->state, GA_SPAN_PARTIAL);
    list_push(&c->partial, s, false);
    return true;
}

/* Returns c's kept empty span to the page heap if it was kept at or
 * before clock `before`. Takes c->lock. */
static void release_empty(ga_mcentral_t *c, uint64_t before)
{
    ga_lock(&c->lock);
    ga_span_t *s = c->partial.first;
    while (s != NULL && !s->kept_empty)
        s = s->next;
    if (s == NULL || s->empty_since > before) {
        ga_unlock(&c->lock);
        return;
    }
    ga_span_list_remove(&c->partial, s);
    s->kept_empty = false;
    c->nempty--;
    release_unlock(c, s);
}

void ga_mcentral_release_empty(void)
{
    for (unsigned i = 1; i < GA_NUM_SPC; i++)
        if (central_used(i))
            release_empty(&ga_central[i], UINT64_MAX);
}

/* A new span of class c->spc from the page heap (Go mcentral.grow). */
ga_span_t *ga_mcentral_grow(ga_mcentral_t *c, ga_mcache_t *mc, ga_heap_how_t how)
{
    unsigned spc = c->spc;
    /* Age out another class's kept empty span (see GA_EMPTY_AGE). */
    uint64_t now = atomic_fetch_add_explicit(&grow_clock, 1, memory_order_relaxed) + 1;
    unsigned k = (unsigned)(now % GA_NUM_SPC);
    if (k != spc && central_used(k) && now >= GA_EMPTY_AGE &&
        __atomic_load_n(&ga_central[k].nempty, __ATOMIC_RELAXED) != 0)
        release_empty(&ga_central[k], now - GA_EMPTY_AGE);
    ga_span_t *s = ga_mheap_alloc(ga_classes.npages[spc], 1, GA_SPAN_CLAIMED, (uint16_t)spc, how);
    if (s == NULL)
        return NULL;
    if (!ga_span_bits_alloc(s, ga_classes.nelems[spc], spc == GA_TINY_SPC)) {
        ga_mheap_free(s);
        errno = ENOMEM;
        return NULL;
    }
    ga_span_init_small(s, spc);
    ga_assert_internal(s->alloc_count == 0 && s->alloc_cache != 0 && s->spc == spc);
    GA_STAT_ADD(ga_class_counters[spc].grows, 1);
    if (ga_opts.uafcheck) { /* every free slot holds the freed pattern */
        memset((void *)s->base, GA_FREED_BYTE, s->npages << GA_PAGE_SHIFT);
        s->needzero = 1;
    }
    ga_span_set_owner(s, mc);
    atomic_store_explicit(&s->state, GA_SPAN_CACHED, memory_order_release);
    return s;
}

/* Hands mc spans with a free slot (Go mcentral.cacheSpan, which takes one;
 * GOALLOC=refill=N takes N): partial spans first, folded, then new ones
 * from the page heap to make up want. The spans come back linked through
 * next, the one to allocate from first. NULL with errno = ENOMEM when not
 * even one can be had. Takes c->lock, then the heap lock when it grows. */
ga_span_t *ga_mcentral_cache_span(ga_mcentral_t *c, ga_mcache_t *mc, unsigned want,
                                  ga_heap_how_t how)
{
    ga_span_t *first = NULL, **tail = &first, *s;
    unsigned got = 0;
    ga_lock(&c->lock);
    while (got < want && (s = c->partial.first) != NULL) {
        ga_assert_internal(atomic_load(&s->state) == GA_SPAN_PARTIAL && s->spc == c->spc &&
                           atomic_load(&s->owner) == NULL);
        ga_span_list_remove(&c->partial, s);
        unpurge(s);
        if (s->kept_empty) {
            s->kept_empty = false;
            c->nempty--;
        }
        atomic_store(&s->published, GA_UNPUBLISHED);
        ga_span_set_owner(s, mc);
        atomic_store(&s->state, GA_SPAN_CACHED);
        *tail = s;
        tail = &s->next;
        got++;
    }
    ga_unlock(&c->lock);
    for (s = first; s != NULL; s = s->next) {
        ga_span_fold(s);
        ga_assert(s->alloc_count < s->nelems); /* partial: a free slot once folded */
    }
    int saved = errno; /* a batch cut short by ENOMEM still succeeds */
    while (got < want && (s = ga_mcentral_grow(c, mc, how)) != NULL) {
        s->next = NULL;
        *tail = s;
        tail = &s->next;
        got++;
    }
    if (first != NULL) { /* a try that found no pages is not a refill */
        errno = saved;
        GA_STAT_ADD(ga_class_counters[c->spc].refills, 1);
    }
    return first;
}

/* Takes back a span from its owner (Go mcentral.uncacheSpan): folds it and
 * files it as partial or full, or frees it if nothing in it is allocated.
 * Publishing the state and then reading nremote under the lock pairs with
 * ga_span_free_remote's count-then-read, so a remote free racing with this
 * is seen by one side or the other. */
void ga_mcentral_uncache_span(ga_mcentral_t *c, ga_span_t *s)
{
    ga_assert(atomic_load(&s->state) == GA_SPAN_CACHED && s->spc == c->spc);
    ga_assert_internal(s->cache_list == GA_LIST_CURRENT && s != &ga_emptyspan);
    ga_span_fold(s);
    ga_lock(&c->lock);
    ga_span_set_owner(s, NULL);
    uint32_t n = s->alloc_count;
    uint8_t st = n == s->nelems ? GA_SPAN_FULL : GA_SPAN_PARTIAL;
    if (n != 0) {
        atomic_store(&s->published, n);
        atomic_store(&s->state, st);
    }
    int32_t r = atomic_load(&s->nremote);
    if (n == 0 || (uint32_t)r == n) {
        if (keep_empty_locked(c, s))
            ga_unlock(&c->lock);
        else
            release_unlock(c, s);
        return;
    }
    if (st == GA_SPAN_FULL && r > 0) {
        st = GA_SPAN_PARTIAL;
        atomic_store(&s->state, st);
    }
    list_push(st == GA_SPAN_FULL ? &c->full : &c->partial, s, few_free(s, r));
    ga_unlock(&c->lock);
}

/* Called by a remote free that may have made an uncached span allocatable
 * (its first free while FULL) or empty (its last object). Rechecks under
 * the lock: the span may have changed hands, or even class, since. */
void ga_mcentral_remote_transition(ga_span_t *s)
{
    unsigned spc = s->spc;
    if (!central_used(spc))
        return;
    ga_mcentral_t *c = &ga_central[spc];
    ga_lock(&c->lock);
    uint8_t st = atomic_load(&s->state);
    if (s->spc == spc && (st == GA_SPAN_PARTIAL || st == GA_SPAN_FULL)) {
        ga_span_list_t *l = st == GA_SPAN_FULL ? &c->full : &c->partial;
        int32_t r = atomic_load(&s->nremote);
        if ((uint32_t)r == s->alloc_count && !s->kept_empty) {
            ga_assert_internal(atomic_load(&s->owner) == NULL);
            ga_span_list_remove(l, s);
            if (keep_empty_locked(c, s))
                ga_unlock(&c->lock);
            else
                release_unlock(c, s);
            return;
        }
        if (st == GA_SPAN_FULL && r > 0) {
            ga_span_list_remove(l, s);
            atomic_store(&s->state, GA_SPAN_PARTIAL);
            list_push(&c->partial, s, few_free(s, r));
        }
    }
    ga_unlock(&c->lock);
}

/* ---- releasing free slots of partial spans ---------------------------------- */

/* Whether every slot overlapping [lo, hi) (offsets in s) is free. An
 * uncached span's free slots are exact: alloc_bits since its last fold,
 * plus remote frees since. */
static bool range_free(const ga_span_t *s, uintptr_t lo, uintptr_t hi)
{
    uintptr_t objs = (uintptr_t)s->nelems * s->elemsize;
    if (lo >= objs)
        return true; /* the span's tail: never handed out */
    uint32_t first = (uint32_t)(lo / s->elemsize);
    uint32_t last = (uint32_t)(((hi < objs ? hi : objs) - 1) / s->elemsize);
    for (uint32_t i = first; i <= last; i++) {
        uint64_t m = 1ull << (i & 63);
        if ((s->alloc_bits[i >> 6] & m) &&
            !(atomic_load_explicit(&s->remote_free[i >> 6], memory_order_relaxed) & m))
            return false;
    }
    return true;
}

/* Releases the OS pages of s that only free slots cover. Nobody touches a
 * free slot of an uncached span: the caller holds its mcentral lock. */
static size_t purge_span(ga_span_t *s, size_t os)
{
    size_t n = 0;
    uintptr_t end = s->base + s->npages * GA_PAGE_SIZE, start = 0;
    int lazy = ga_opts.madvise == GA_MADV_FREE;
    for (uintptr_t p = s->base; p <= end; p += os) {
        bool free = p < end && range_free(s, p - s->base, p + os - s->base);
        if (free && start == 0)
            start = p;
        if (!free && start != 0) {
            if (ga_sys_unused((void *)start, p - start, lazy) == 0)
                n += (p - start) / os;
            start = 0;
        }
    }
    return n;
}

size_t ga_mcentral_purge(uint64_t cutoff, bool wait)
{
    size_t os = ga_sys_page_size(), total = 0;
    if (ga_opts.uafcheck)
        return 0; /* released slots would read back as zero, not the freed pattern */
    for (unsigned i = 1; i < GA_NUM_SPC; i++) {
        if (!central_used(i))
            continue;
        ga_mcentral_t *c = &ga_central[i];
        if (wait)
            ga_lock(&c->lock);
        else if (ga_trylock(&c->lock) != 0)
            continue;
        for (ga_span_t *s = c->partial.first; s != NULL; s = s->next) {
            if (s->purged || s->unused_since > cutoff)
                continue;
            size_t n = purge_span(s, os);
            s->purged = true;
            s->npurged += (uint32_t)n;
            total += n;
        }
        ga_unlock(&c->lock);
    }
    atomic_fetch_add_explicit(&ga_purged_os_pages, total, memory_order_relaxed);
    return total;
}

static int check_list(ga_mcentral_t *c, ga_span_list_t *l, uint8_t want, char *msg, size_t len)
{
    size_t n = 0;
    ga_span_t *prev = NULL;
    for (ga_span_t *s = l->first; s != NULL; prev = s, s = s->next) {
        if (s->next == NULL && l->last != s)
            return ga_fail(msg, len, "mcentral: list's last pointer is wrong", s->base, c->spc);
        if (atomic_load(&s->state) != want || s->spc != c->spc || s->prev != prev)
            return ga_fail(msg, len, "mcentral: list holds a span of another state or class",
                           s->base, c->spc);
        if (++n > l->n)
            break;
    }
    if (n != l->n || (n == 0 && l->last != NULL))
        return ga_fail(msg, len, "mcentral: list length disagrees with its count", c->spc, l->n);
    return 0;
}

static int check_empty(ga_mcentral_t *c, char *msg, size_t len)
{
    size_t kept = 0;
    for (ga_span_t *s = c->partial.first; s != NULL; s = s->next) {
        bool empty = (uint32_t)atomic_load(&s->nremote) == s->alloc_count;
        if (empty != s->kept_empty)
            return ga_fail(msg, len, "mcentral: an empty span is not the kept one", s->base,
                           s->alloc_count);
        kept += s->kept_empty;
    }
    if (kept != c->nempty || kept > GA_KEEP_EMPTY)
        return ga_fail(msg, len, "mcentral: kept empty spans disagree with nempty", c->spc, kept);
    return 0;
}

/* REQUIRES: c->lock. */
int ga_mcentral_check_locked(ga_mcentral_t *c, size_t *npartial, size_t *nfull, char *msg,
                             size_t len)
{
    ga_assert_held(&c->lock);
    if (check_list(c, &c->partial, GA_SPAN_PARTIAL, msg, len) ||
        check_list(c, &c->full, GA_SPAN_FULL, msg, len) || check_empty(c, msg, len))
        return 1;
    *npartial += c->partial.n;
    *nfull += c->full.n;
    return 0;
}
