/* Per-thread page caches (Go's mpagecache.go): a thread's freed large
 * objects, kept for its next large malloc of the same page count, so that
 * a loop of 64 KiB or 512 KiB blocks takes neither the page heap's lock
 * nor its treap. Bounded per thread (GOALLOC=pagecache bytes, objects of
 * up to GA_PCACHE_MAX_PAGES), emptied back into the page heap when the
 * thread exits, when it has not used the cache for a while (mgcsweep.c's
 * tick, the background thread), before the heap grows or fails, at
 * malloc_trim and in a fork child for the threads it lost. Types and
 * invariants in types.h; see malloc.c for the overview. */
#include "inline.h"

/* The owner's hold: false when busy is held already (then the caller goes
 * to the page heap: no wait on a path a signal handler may re-enter). */
bool ga_pagecache_try_hold(ga_pagecache_t *pc)
{
    return atomic_exchange_explicit(&pc->busy, 1, memory_order_acquire) == 0;
}

void ga_pagecache_let_go(ga_pagecache_t *pc)
{
    atomic_store_explicit(&pc->busy, 0, memory_order_release);
}

void ga_pagecache_hold(ga_pagecache_t *pc)
{
    while (!ga_pagecache_try_hold(pc))
        ga_sys_yield(); /* the owner holds it for a few instructions, never waiting */
}

/* pc's pages, and the process's figures for the statistics that read
 * no cache (one add: objects in the high bits, GA_PCACHE_HELD_SHIFT). */
static void add_pages(ga_pagecache_t *pc, ptrdiff_t d)
{
    atomic_store_explicit(&pc->pages, atomic_load_explicit(&pc->pages, memory_order_relaxed) + d,
                          memory_order_relaxed);
    GA_STAT_ADD(ga_pagecache_held, (uint64_t)d + (d > 0 ? 1ull << GA_PCACHE_HELD_SHIFT
                                                      : -(1ull << GA_PCACHE_HELD_SHIFT)));
}

/* Entry i out, the later ones moved down (oldest first stays true). */
static ga_span_t *take_held(ga_pagecache_t *pc, uint32_t i)
{
    ga_span_t *s = pc->span[i];
    ga_assert_internal(atomic_load(&pc->busy) != 0 && i < pc->n &&
                       atomic_load(&s->state) == GA_SPAN_PCACHED &&
                       s->npages == pc->npages[i]);
    pc->n--;
    for (uint32_t j = i; j < pc->n; j++) {
        pc->span[j] = pc->span[j + 1];
        pc->npages[j] = pc->npages[j + 1];
    }
    add_pages(pc, -(ptrdiff_t)s->npages);
    return s;
}

/* Spans taken out of a cache go back to the page heap after busy is let
 * go (the heap lock is not taken under it). */
static void free_spans(ga_span_t **out, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        atomic_store_explicit(&out[i]->state, GA_SPAN_CLAIMED, memory_order_relaxed);
        ga_mheap_free(out[i]);
    }
}

ga_span_t *ga_pagecache_get(ga_mcache_t *mc, size_t npages)
{
    ga_pagecache_t *pc = &mc->pcache;
    if (pc->n == 0 || !ga_pagecache_try_hold(pc)) /* n read early: only the owner adds */
        return NULL;
    ga_span_t *s = NULL;
    for (uint32_t i = pc->n; i-- > 0;) {
        if (pc->npages[i] == npages) {
            s = take_held(pc, i);
            atomic_store_explicit(&pc->hits, atomic_load_explicit(&pc->hits, memory_order_relaxed) + 1,
                                  memory_order_relaxed);
            s->prof_request = 0; /* as the heap hands it out (mprof.c) */
            atomic_store_explicit(&s->state, GA_SPAN_LARGE, memory_order_release);
            break;
        }
    }
    ga_pagecache_let_go(pc);
    return s;
}

bool ga_pagecache_put(ga_mcache_t *mc, ga_span_t *s)
{
    ga_pagecache_t *pc = &mc->pcache;
    size_t budget = ga_opts.pagecache >> GA_PAGE_SHIFT;
    ga_assert_internal(atomic_load(&s->state) == GA_SPAN_CLAIMED && s->spc == 0);
    if (s->npages > GA_PCACHE_MAX_PAGES || s->npages > budget || !ga_pagecache_try_hold(pc))
        return false;
    ga_span_t *out[GA_PCACHE_ENTRIES];
    uint32_t nout = 0;
    while (pc->n == GA_PCACHE_ENTRIES ||
           atomic_load_explicit(&pc->pages, memory_order_relaxed) + s->npages > budget)
        out[nout++] = take_held(pc, 0); /* the oldest */
    s->needzero = 1;
    pc->span[pc->n] = s;
    pc->npages[pc->n] = (uint32_t)s->npages;
    pc->n++;
    pc->puts++;
    add_pages(pc, (ptrdiff_t)s->npages);
    atomic_store_explicit(&s->state, GA_SPAN_PCACHED, memory_order_release);
    ga_pagecache_let_go(pc);
    free_spans(out, nout);
    return true;
}

size_t ga_pagecache_flush_held(ga_pagecache_t *pc)
{
    ga_span_t *out[GA_PCACHE_ENTRIES];
    uint32_t nout = 0;
    size_t pages = atomic_load_explicit(&pc->pages, memory_order_relaxed);
    while (pc->n != 0)
        out[nout++] = take_held(pc, pc->n - 1);
    ga_pagecache_let_go(pc);
    free_spans(out, nout);
    return pages;
}

size_t ga_pagecache_flush(ga_pagecache_t *pc)
{
    ga_pagecache_hold(pc);
    return ga_pagecache_flush_held(pc);
}

size_t ga_pagecache_flush_own(ga_mcache_t *mc)
{
    ga_pagecache_t *pc = &mc->pcache;
    if (pc->n == 0 || !ga_pagecache_try_hold(pc))
        return 0;
    return ga_pagecache_flush_held(pc);
}

size_t ga_pagecache_flush_idle(ga_pagecache_t *pc, bool own)
{
    if (__atomic_load_n(&pc->n, __ATOMIC_RELAXED) == 0)
        return 0;
    if (!own)
        ga_pagecache_hold(pc);
    else if (!ga_pagecache_try_hold(pc))
        return 0;
    uint64_t now = ga_now_ns();
    uint64_t uses = atomic_load_explicit(&pc->hits, memory_order_relaxed) + pc->puts;
    bool due = now - pc->checked_at >= ga_opts.scavenge_delay * 1000000ull;
    bool idle = due && uses == pc->uses_seen;
    if (due) {
        pc->uses_seen = uses;
        pc->checked_at = now;
    }
    if (!idle) {
        ga_pagecache_let_go(pc);
        return 0;
    }
    return ga_pagecache_flush_held(pc);
}

int ga_pagecache_check_held(const ga_pagecache_t *pc, size_t *nspans, char *msg, size_t len)
{
    size_t pages = 0;
    if (pc->n > GA_PCACHE_ENTRIES)
        return ga_fail(msg, len, "pagecache: more entries than it has room for", pc->n, 0);
    for (uint32_t i = 0; i < pc->n; i++) {
        const ga_span_t *s = pc->span[i];
        if (atomic_load(&s->state) != GA_SPAN_PCACHED || s->spc != 0 ||
            s->npages != pc->npages[i] || s->npages > GA_PCACHE_MAX_PAGES || !s->needzero ||
            ga_span_of(s->base) != s)
            return ga_fail(msg, len, "pagecache: an entry is not a cached large object", s->base,
                           i);
        pages += s->npages;
    }
    if (pages != atomic_load(&pc->pages))
        return ga_fail(msg, len, "pagecache: its pages disagree with its entries", pages,
                       atomic_load(&pc->pages));
    *nspans += pc->n;
    return 0;
}
