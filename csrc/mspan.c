/* Spans of small objects (Go's mspan in mheap.go and mbitmap.go): the
 * allocation bitmap with its 64-bit complement window (allocCache), the
 * in-span slow path (Go nextFreeIndex), and explicit free. Go finds free
 * slots by sweeping after a GC; goalloc instead records frees in two
 * bitmaps — local_free for the owning thread (plain stores) and remote_free
 * for every other thread (one atomic OR) — and folds them into alloc_bits
 * when the owner runs out of slots or when a span changes hands (the
 * "fold" replaces Go's sweep flip). See malloc.c for the overview and
 * types.h for the invariants. */
#include <sched.h>
#include <string.h>

#include "inline.h"

ga_span_t ga_emptyspan; /* all zero: no free slot, no owner, never folded */

/* Bitmap blocks: alloc_bits and local_free share the owner's cache lines,
 * remote_free starts on a line of its own; tiny spans add one word per
 * block. Blocks come in five word-count buckets (1, 2, 4, 8, 16 words) plus
 * one for tiny spans. */
#define NBUCKETS 6
#define TINY_BUCKET 5
static ga_lock_t bits_lock = GA_LOCK_INIT;
static ga_fixalloc_t bits_pool[NBUCKETS];
static bool bits_ready;

static size_t round_line(size_t n) { return (n + GA_CACHE_LINE - 1) & ~(size_t)(GA_CACHE_LINE - 1); }

static size_t bucket_bytes(unsigned b, unsigned *words)
{
    unsigned w = b == TINY_BUCKET ? GA_PAGE_SIZE / GA_TINY_SIZE / 64 : 1u << b;
    *words = w;
    size_t n = round_line(2 * 8 * w) + round_line(8 * w);
    if (b == TINY_BUCKET)
        n += (GA_PAGE_SIZE / GA_TINY_SIZE) * sizeof(uint32_t);
    return n;
}

bool ga_span_bits_alloc(ga_span_t *s, unsigned nelems, bool tiny)
{
    unsigned need = (nelems + 63) / 64, b = 0, words;
    while ((1u << b) < need)
        b++;
    if (tiny)
        b = TINY_BUCKET;
    ga_lock(&bits_lock);
    if (!bits_ready) {
        for (unsigned i = 0; i < NBUCKETS; i++)
            ga_fixalloc_init(&bits_pool[i], bucket_bytes(i, &words), ga_mheap_alloc_meta);
        bits_ready = true;
    }
    char *blk = ga_fixalloc_alloc(&bits_pool[b]);
    ga_unlock(&bits_lock);
    if (blk == NULL)
        return false;
    bucket_bytes(b, &words);
    s->bits_order = (uint8_t)b;
    s->alloc_bits = (uint64_t *)blk;
    s->local_free = (uint64_t *)blk + words;
    s->remote_free = (_Atomic uint64_t *)(blk + round_line(2 * 8 * words));
    s->tiny_meta = tiny ? (_Atomic uint32_t *)(blk + round_line(2 * 8 * words) + round_line(8 * words))
                        : NULL;
    return true;
}

void ga_span_bits_free(ga_span_t *s)
{
    ga_prof_span_free(s);
    ga_lock(&bits_lock);
    ga_fixalloc_free(&bits_pool[s->bits_order], s->alloc_bits);
    ga_unlock(&bits_lock);
    s->alloc_bits = s->local_free = NULL;
    s->remote_free = NULL;
    s->tiny_meta = NULL;
}

void ga_span_bits_lock(void) { ga_lock(&bits_lock); }
void ga_span_bits_unlock(void) { ga_unlock(&bits_lock); }
void ga_span_bits_fork_child(void) { ga_lock_init(&bits_lock); }

static uint64_t padding_mask(uint32_t nelems)
{
    return (nelems & 63) ? ~0ull << (nelems & 63) : 0;
}

/* Sets up a span fresh from the page heap for class spc; its bits block is
 * already attached and zero. */
void ga_span_init_small(ga_span_t *s, unsigned spc)
{
    ga_assert_internal(atomic_load(&s->state) == GA_SPAN_CLAIMED && s->alloc_bits != NULL);
    s->elemsize = ga_classes.size[spc];
    s->magic = ga_classes.magic[spc];
    s->magic64 = ga_magic64(ga_classes.size[spc]);
    s->nelems = ga_classes.nelems[spc];
    s->nwords = (uint8_t)((s->nelems + 63) / 64);
    s->alloc_bits[s->nwords - 1] |= padding_mask(s->nelems);
    s->freeindex = 0;
    s->alloc_cache = ~s->alloc_bits[0];
    s->nlocal = 0;
    s->alloc_count = 0;
#if GA_STATS
    s->requested = 0;
#endif
    atomic_store_explicit(&s->nremote, 0, memory_order_relaxed);
    atomic_store_explicit(&s->ncross, 0, memory_order_relaxed);
    atomic_store_explicit(&s->published, GA_UNPUBLISHED, memory_order_relaxed);
}

/* Go nextFreeIndex: moves freeindex and alloc_cache to the next 64-slot
 * window that holds a free slot. Returns the new freeindex, nelems when the
 * span is exhausted. REQUIRES: the caller owns s. */
uint32_t ga_span_next_free_index(ga_span_t *s)
{
    if (s->alloc_cache != 0)
        return s->freeindex;
    for (uint32_t fi = (s->freeindex + 63) & ~63u; fi < s->nelems; fi += 64) {
        uint64_t c = ~s->alloc_bits[fi >> 6];
        if (c != 0) {
            s->freeindex = fi;
            s->alloc_cache = c;
            return fi;
        }
    }
    s->freeindex = s->nelems;
    return s->nelems;
}

bool ga_span_has_pending_frees(ga_span_t *s)
{
    return s->nlocal != 0 || atomic_load_explicit(&s->nremote, memory_order_relaxed) > 0;
}

static GA_COLD void fold_misuse(ga_span_t *s, unsigned w, uint64_t bad)
{
    uintptr_t p = s->base + ((uintptr_t)w * 64 + (unsigned)__builtin_ctzll(bad)) * s->elemsize;
    ga_misuse("free", "double free (found when freed slots were folded) of", p, s);
}

/* Folds the frees recorded since the last fold into alloc_bits and restarts
 * the scan at slot 0 (Go's sweep flip, for explicit free). alloc_count
 * moves by the slots handed out below freeindex minus the slots freed, so
 * only words with news cost a popcount. Inlined into two copies below:
 * with the POPCNT instruction (hw) and with ga_popcount64. */
#define POPCOUNT(x) (hw ? (unsigned)__builtin_popcountll(x) : ga_popcount64(x))
GA_INLINE void fold(ga_span_t *s, bool hw)
{
    unsigned nw = s->nwords, fi = s->freeindex, handed = 0;
    for (unsigned w = 0; w < fi / 64; w++) {
        handed += (unsigned)POPCOUNT(~s->alloc_bits[w]);
        s->alloc_bits[w] = ~0ull;
    }
    if (fi & 63) {
        uint64_t below = GA_BELOW_FREEINDEX(fi, fi / 64);
        handed += (unsigned)POPCOUNT(~s->alloc_bits[fi / 64] & below);
        s->alloc_bits[fi / 64] |= below;
    }
    int32_t taken = 0;
    uint64_t any = 0;
    unsigned nfreed = 0;
    for (unsigned w = 0; w < nw; w++) {
        uint64_t r = atomic_load_explicit(&s->remote_free[w], memory_order_relaxed);
        if (r != 0)
            r = atomic_exchange_explicit(&s->remote_free[w], 0, memory_order_acquire);
        uint64_t l = s->local_free[w];
        uint64_t f = r | l;
        if (f != 0) {
            if (GA_UNLIKELY((f & ~s->alloc_bits[w]) != 0 || (r & l) != 0)) {
                fold_misuse(s, w, (f & ~s->alloc_bits[w]) | (r & l));
                f &= s->alloc_bits[w]; /* reported: fold only the valid frees */
            }
            s->alloc_bits[w] &= ~f;
            s->local_free[w] = 0;
            taken += POPCOUNT(r);
            nfreed += (unsigned)POPCOUNT(f);
            any |= f;
        }
    }
    if (taken != 0)
        atomic_fetch_sub_explicit(&s->nremote, taken, memory_order_relaxed);
    ga_class_counters_t *k = &ga_class_counters[s->spc];
    if (handed != 0) {
        GA_STAT_ADD(k->mallocs, handed);
#if GA_STATS
        GA_STAT_ADD(k->requested, s->requested);
        s->requested = 0;
#endif
    }
    if (any != 0) {
        GA_STAT_ADD(k->frees, nfreed);
        GA_STAT_ADD(k->remote_frees, (uint64_t)taken);
    }
    ga_span_flush_cross(s);
    s->nlocal = 0;
    s->alloc_count = s->alloc_count + handed - nfreed;
    ga_assert(s->alloc_count <= s->nelems);
    if (any != 0)
        s->needzero = 1;
    s->freeindex = 0;
    s->alloc_cache = ~s->alloc_bits[0];
}

static GA_NOINLINE void fold_generic(ga_span_t *s) { fold(s, false); }
static GA_NOINLINE __attribute__((target("popcnt"))) void fold_popcnt(ga_span_t *s) { fold(s, true); }

bool ga_cpu_popcnt; /* set at start-up (init.c) */

/* What a fold leaves, whatever other threads do meanwhile (their remote
 * frees only add bits after it): the owner's side of the invariants. */
static int check_folded(ga_span_t *s, char *msg, size_t len)
{
    unsigned nw = s->nwords, count = 0;
    uint64_t pad = padding_mask(s->nelems);
    if ((s->alloc_bits[nw - 1] & pad) != pad)
        return ga_fail(msg, len, "fold: padding bits past nelems lost", s->base, s->nelems);
    for (unsigned w = 0; w < nw; w++) {
        if (s->local_free[w] != 0)
            return ga_fail(msg, len, "fold: local frees left unfolded", s->base, w);
        count += ga_popcount64(s->alloc_bits[w] & ~(w == nw - 1 ? pad : 0));
    }
    if (count != s->alloc_count || s->nlocal != 0 || s->freeindex != 0)
        return ga_fail(msg, len, "fold: alloc_count disagrees with alloc_bits", s->base, count);
    if (s->alloc_cache != ~s->alloc_bits[0])
        return ga_fail(msg, len, "fold: window disagrees with alloc_bits", s->base, 0);
    return 0;
}

void ga_span_fold(ga_span_t *s)
{
    ga_assert_internal(GA_SMALL_IN_USE(atomic_load(&s->state)) ||
                       atomic_load(&s->state) == GA_SPAN_CLAIMED);
    if (GA_LIKELY(ga_cpu_popcnt))
        fold_popcnt(s);
    else
        fold_generic(s);
    ga_assert_valid(check_folded, s); /* the debug library stops at the first corrupt fold */
}

void ga_span_free_local_misuse(ga_span_t *s, uintptr_t p, const char *fn)
{
    ga_misuse(fn, "double free or free of unallocated memory", p, s);
}

#if defined(GA_TESTING)
void (*ga_test_remote_hook)(ga_span_t *s);
#endif

/* Free by any other thread: one atomic OR (which also catches a second
 * free of the same slot before the next fold) and one atomic count. The
 * first free into a FULL span, and the free that empties an uncached span,
 * return true: the caller hands the span to mcentral
 * (ga_mcentral_remote_transition) so that it becomes allocatable again or
 * goes back to the page heap without waiting for anyone.
 * Between the OR and the count, a fold may take the bit (nremote then
 * runs one short until the count lands) and find the span empty: the
 * count still goes to s, so s must not become another span before it
 * lands (ga_span_wait_remote_counts). */
bool ga_span_free_remote(ga_span_t *s, uint32_t idx, uintptr_t p, const char *fn)
{
    uint8_t st = atomic_load_explicit(&s->state, memory_order_acquire);
    if (GA_UNLIKELY(!GA_SMALL_IN_USE(st))) {
        ga_misuse(fn, "double free or invalid pointer", p, s);
        return false;
    }
    /* another thread's cache holds s (not this one's: ga_free_slot) */
    bool cross = GA_STATS && atomic_load_explicit(&s->owner, memory_order_relaxed) != NULL;
    uint64_t m = 1ull << (idx & 63);
    uint64_t old = atomic_fetch_or_explicit(&s->remote_free[idx >> 6], m, memory_order_acq_rel);
    if (GA_UNLIKELY(old & m)) {
        ga_misuse(fn, "double free of", p, s);
        return false;
    }
#if defined(GA_TESTING)
    if (ga_test_remote_hook != NULL)
        ga_test_remote_hook(s);
#endif
#if defined(GA_TEST_REMOTE_FREE_DELAY_NS)
    /* Test builds only (tests/test_stress.py): holds every remote free
     * this long between its bit and its count, as a preemption would. */
    for (uint64_t t0 = ga_sys_nanotime(); ga_sys_nanotime() - t0 < GA_TEST_REMOTE_FREE_DELAY_NS;)
        ;
#endif
    if (cross) /* before nremote: once that lands, s may become another span */
        atomic_fetch_add_explicit(&s->ncross, 1, memory_order_relaxed);
    int32_t n = atomic_fetch_add(&s->nremote, 1) + 1;
    return (n == 1 && atomic_load(&s->state) == GA_SPAN_FULL) ||
           (uint32_t)n == atomic_load(&s->published);
}

void ga_span_flush_cross(ga_span_t *s)
{
#if GA_STATS
    uint32_t x = atomic_load_explicit(&s->ncross, memory_order_relaxed);
    if (x != 0) {
        atomic_fetch_sub_explicit(&s->ncross, x, memory_order_relaxed);
        GA_STAT_ADD(ga_class_counters[s->spc].cross_frees, x);
    }
#else
    (void)s;
#endif
}

/* Remote frees of s that have set their bit but not yet counted it. */
static int32_t remote_uncounted(ga_span_t *s)
{
    int32_t bits = 0;
    for (unsigned w = 0; w < s->nwords; w++)
        bits += (int32_t)ga_popcount64(atomic_load_explicit(&s->remote_free[w], memory_order_relaxed));
    return bits - atomic_load_explicit(&s->nremote, memory_order_acquire);
}

/* Waits until every remote free into s, a span with no live object on its
 * way back to the page heap, has counted itself in nremote. No free of a
 * live object can start into s any more, and the bits stay (nobody folds
 * s), so the count only rises to them; a free is half-done for a few
 * instructions unless its thread was preempted there, hence the yield. */
void ga_span_wait_remote_counts(ga_span_t *s)
{
    while (remote_uncounted(s) > 0)
        sched_yield();
}

/* Fork child: the threads lost at the fork never complete their remote
 * frees, so their counts are made to land here (see ga_span_free_remote).
 * (A signal handler that forks after interrupting its own thread's remote
 * free, in a process with other threads, would have that free counted
 * twice if the child returned into it.) */
static void settle_remote_counts(ga_span_t *s, void *arg)
{
    (void)arg;
    uint8_t st = atomic_load_explicit(&s->state, memory_order_relaxed);
    if (s->spc != 0 && GA_SMALL_IN_USE(st)) {
        int32_t lost = remote_uncounted(s);
        if (lost > 0)
            atomic_fetch_add_explicit(&s->nremote, lost, memory_order_relaxed);
    }
}

void ga_span_fork_child_settle(void)
{
    ga_mheap_for_each_span_locked(settle_remote_counts, NULL);
}

/* ---- span lists ---------------------------------------------------------- */

void ga_span_list_push(ga_span_list_t *l, ga_span_t *s, bool back)
{
    ga_assert_internal(l->first != s && l->last != s);
    if (back) {
        s->next = NULL;
        s->prev = l->last;
        if (l->last != NULL)
            l->last->next = s;
        else
            l->first = s;
        l->last = s;
    } else {
        s->prev = NULL;
        s->next = l->first;
        if (l->first != NULL)
            l->first->prev = s;
        else
            l->last = s;
        l->first = s;
    }
    l->n++;
}

void ga_span_list_remove(ga_span_list_t *l, ga_span_t *s)
{
    ga_assert_internal(l->n != 0 && (s->prev != NULL || l->first == s) &&
                       (s->next != NULL || l->last == s));
    if (s->prev != NULL)
        s->prev->next = s->next;
    else
        l->first = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
    else
        l->last = s->prev;
    s->next = s->prev = NULL;
    l->n--;
}

/* ---- validation --------------------------------------------------------- */

static int check_tiny(ga_span_t *s, bool cached, char *msg, size_t len)
{
    for (uint32_t i = 0; i < s->nelems; i++) {
        unsigned w = i >> 6;
        uint64_t m = 1ull << (i & 63);
        bool pending = (s->local_free[w] & m) ||
                       (atomic_load_explicit(&s->remote_free[w], memory_order_relaxed) & m);
        bool allocated = ((cached && i < s->freeindex) || (s->alloc_bits[w] & m)) && !pending;
        uint32_t word = atomic_load_explicit(&s->tiny_meta[i], memory_order_relaxed);
        bool live = (word & (GA_TINY_STARTS | GA_TINY_HELD)) != 0;
        if (allocated != live)
            return ga_fail(msg, len, "tiny: block allocation disagrees with its sub-objects",
                           s->base + i * GA_TINY_SIZE, word);
    }
    return 0;
}

/* Checks the invariants of a small span (types.h). REQUIRES: its
 * mcentral lock, and no other thread inside the allocator for its mcache. */
int ga_span_check(ga_span_t *s, char *msg, size_t len)
{
    unsigned spc = s->spc;
    if (spc == 0 || (spc != GA_TINY_SPC && spc >= ga_classes.nclasses))
        return ga_fail(msg, len, "mspan: bad span class", s->base, spc);
    if (s->elemsize != ga_classes.size[spc] || s->nelems != ga_classes.nelems[spc] ||
        s->npages != ga_classes.npages[spc] || s->magic != ga_classes.magic[spc] ||
        s->nwords != (s->nelems + 63) / 64)
        return ga_fail(msg, len, "mspan: geometry disagrees with its size class", s->base, spc);
    unsigned nw = s->nwords;
    uint64_t pad = padding_mask(s->nelems);
    if ((s->alloc_bits[nw - 1] & pad) != pad)
        return ga_fail(msg, len, "mspan: padding bits past nelems not set", s->base, s->nelems);
    uint8_t st = atomic_load_explicit(&s->state, memory_order_relaxed);
    bool cached = st == GA_SPAN_CACHED;
    unsigned count = 0, nlocal = 0, nremote = 0;
    for (unsigned w = 0; w < nw; w++) {
        uint64_t a = s->alloc_bits[w] & ~(w == nw - 1 ? pad : 0);
        uint64_t below = GA_BELOW_FREEINDEX(s->freeindex, w);
        uint64_t l = s->local_free[w];
        uint64_t r = atomic_load_explicit(&s->remote_free[w], memory_order_relaxed);
        if (cached)
            a |= below;
        if ((l | r) & ~a)
            return ga_fail(msg, len, "mspan: freed slot not allocated", s->base, w);
        if (l & r)
            return ga_fail(msg, len, "mspan: slot freed locally and remotely", s->base, w);
        count += (unsigned)ga_popcount64(a);
        nlocal += (unsigned)ga_popcount64(l);
        nremote += (unsigned)ga_popcount64(r);
    }
    if (nlocal != s->nlocal)
        return ga_fail(msg, len, "mspan: nlocal disagrees with local_free", s->base, s->nlocal);
    if ((int32_t)nremote != atomic_load(&s->nremote))
        return ga_fail(msg, len, "mspan: nremote disagrees with remote_free", s->base, nremote);
    if (cached) {
        if (atomic_load(&s->owner) == NULL || atomic_load(&s->published) != GA_UNPUBLISHED ||
            s->kept_empty)
            return ga_fail(msg, len, "mspan: cached span without owner", s->base, spc);
        uint32_t fi = s->freeindex;
        uint64_t want = fi < s->nelems ? (~s->alloc_bits[fi >> 6]) >> (fi & 63) : 0, c = s->alloc_cache;
        /* heap-profile sampling cuts the window to its lowest free slots (mprof.c) */
        bool cut = ga_sample_rate != 0 &&
                   (c == 0 || c == (want & ((2ull << (63 - __builtin_clzll(c))) - 1)));
        if (fi > s->nelems || (c != want && !(c == 0 && (fi & 63) == 0) && !cut))
            return ga_fail(msg, len, "mspan: alloc_cache disagrees with alloc_bits", s->base, fi);
    } else {
        if (atomic_load(&s->owner) != NULL || s->freeindex != 0 || nlocal != 0)
            return ga_fail(msg, len, "mspan: uncached span has owner state", s->base, s->freeindex);
        if (count != s->alloc_count || atomic_load(&s->published) != count)
            return ga_fail(msg, len, "mspan: alloc_count disagrees with alloc_bits", s->base, count);
        if (nremote > count)
            return ga_fail(msg, len, "mspan: more remote frees than objects", s->base, count);
        if (st == GA_SPAN_FULL && (count != s->nelems || nremote != 0))
            return ga_fail(msg, len, "mspan: FULL span with a free slot", s->base, count);
        if (st == GA_SPAN_PARTIAL && count == s->nelems && nremote == 0)
            return ga_fail(msg, len, "mspan: PARTIAL span with no free slot", s->base, count);
    }
    return spc == GA_TINY_SPC ? check_tiny(s, cached, msg, len) : 0;
}
