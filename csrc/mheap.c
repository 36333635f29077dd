/* The page heap (Go's mheap.go): 64 MiB arenas reserved from the OS, the
 * page map from address to span, and a page allocator for runs of 8 KiB
 * pages. Free runs live in a treap ordered by address and augmented with
 * the largest run of each subtree, which gives address-ordered first fit in
 * O(log n) (Go 1.12 kept free spans in treaps too; later Go uses bitmaps
 * with radix summaries for the same policy). Freed runs coalesce with their
 * neighbours at once. See malloc.c for the overview. */
#include <errno.h>
#include <string.h>

#include "inline.h"

#define GA_ARENA_HINT ((uintptr_t)0x00c0 << 32) /* Go's first arena hint */
/* The random first arena lies in [1 TiB, 96 TiB): above where programs and
 * small mmaps go, below the kernel's top-down mmap area and the stack
 * (near 128 TiB), with room to grow upward; 64 MiB-aligned, that is about
 * 2^20.6 places. */
#define HINT_LO ((uintptr_t)1 << 40)
#define HINT_HI ((uintptr_t)96 << 40)
#define PAGE ((uintptr_t)GA_PAGE_SIZE)

ga_mheap_t ga_heap = {.lock = GA_LOCK_INIT};
/* Go's arenas L2 map with L1 = 0: one entry per 64 MiB of the 47-bit user
 * address space (16 MiB of zero pages, touched only where arenas exist). */
_Atomic(ga_heap_arena_t *) ga_arena_map[GA_ARENA_L2_ENTRIES];

/* GOALLOC=protect: a freed large object's pages are inaccessible until the
 * heap hands them out again, and every run it hands out is made read/write
 * first (a no-op for pages that were never protected, and what the
 * scavenger's madvise leaves alone). Protecting can fail only when the
 * process runs out of memory maps (vm.max_map_count): the pages then stay
 * accessible, said once. Making them accessible again cannot be skipped. */
static void set_access(uintptr_t base, size_t npages, int access)
{
    static _Atomic bool warned;
    int err = ga_sys_protect((void *)base, npages * PAGE, access);
    if (err == 0)
        return;
    if (access)
        ga_throw("GOALLOC=protect: mprotect cannot make free pages accessible again "
                 "(out of memory maps? see vm.max_map_count)");
    if (!atomic_exchange(&warned, true))
        ga_warn("GOALLOC=protect: mprotect failed: ", ga_sys_error_text(err),
                "; freed large objects from now on may stay accessible");
}

void ga_mheap_lock(void) { ga_lock(&ga_heap.lock); }
void ga_mheap_unlock(void) { ga_unlock(&ga_heap.lock); }

void ga_mheap_init(void)
{
    ga_fixalloc_init(&ga_heap.spanalloc, sizeof(ga_span_t), ga_mheap_alloc_meta_locked);
    ga_heap.hint = GA_ARENA_HINT;
    if (!ga_opts.arena_hint_go) {
        uint64_t r;
        ga_sys_random(&r, sizeof r);
        ga_heap.hint = HINT_LO + (uintptr_t)(r % ((HINT_HI - HINT_LO) >> GA_ARENA_SHIFT))
                                     * GA_ARENA_SIZE;
    }
    ga_heap.seed = 0x9e3779b9u;
    ga_heap.epoch_start = ga_heap.flush_start = ga_now_ns();
}

void ga_mheap_fork_child(void)
{
    ga_lock_init(&ga_heap.lock);
}

static ga_heap_arena_t *arena_of(uintptr_t p)
{
    return atomic_load_explicit(&ga_arena_map[p >> GA_ARENA_SHIFT], memory_order_relaxed);
}

static void map_page(uintptr_t p, ga_span_t *s)
{
    atomic_store_explicit(&arena_of(p)->spans[(p >> GA_PAGE_SHIFT) & (GA_PAGES_PER_ARENA - 1)], s,
                          memory_order_release);
}

static void map_all_pages(ga_span_t *s)
{
    for (size_t i = 0; i < s->npages; i++)
        map_page(s->base + i * PAGE, s);
}

/* ---- treap of free runs ------------------------------------------------ */

static int check_treap(ga_span_t *t, uintptr_t lo, uintptr_t hi, size_t *runs, size_t *pages,
                       size_t *released, char *msg, size_t len);

/* The treap's invariants in the subtree of t. */
static int check_merged(ga_span_t *t, char *msg, size_t len)
{
    size_t runs = 0, pages = 0, released = 0;
    return check_treap(t, 0, UINTPTR_MAX, &runs, &pages, &released, msg, len);
}

static uint64_t own_oldest(const ga_span_t *t)
{
    return t->nscav < t->npages ? t->unused_since : UINT64_MAX;
}

/* Recomputes t's subtree summaries from its children. */
static void update(ga_span_t *t)
{
    size_t m = t->npages;
    uint64_t o = own_oldest(t);
    ga_span_t *kids[2] = {t->left, t->right};
    for (int i = 0; i < 2; i++) {
        if (kids[i] != NULL && kids[i]->max_pages > m)
            m = kids[i]->max_pages;
        if (kids[i] != NULL && kids[i]->sub_oldest < o)
            o = kids[i]->sub_oldest;
    }
    t->max_pages = m;
    t->sub_oldest = o;
}

static ga_span_t *rotate_right(ga_span_t *t)
{
    ga_span_t *l = t->left;
    t->left = l->right;
    l->right = t;
    update(t);
    update(l);
    return l;
}

static ga_span_t *rotate_left(ga_span_t *t)
{
    ga_span_t *r = t->right;
    t->right = r->left;
    r->left = t;
    update(t);
    update(r);
    return r;
}

static ga_span_t *treap_insert(ga_span_t *t, ga_span_t *s)
{
    if (t == NULL) {
        s->left = s->right = NULL;
        update(s);
        return s;
    }
    if (s->base < t->base) {
        t->left = treap_insert(t->left, s);
        if (t->left->prio > t->prio)
            return rotate_right(t);
    } else {
        t->right = treap_insert(t->right, s);
        if (t->right->prio > t->prio)
            return rotate_left(t);
    }
    update(t);
    return t;
}

static ga_span_t *treap_join(ga_span_t *a, ga_span_t *b) /* every key of a < every key of b */
{
    if (a == NULL)
        return b;
    if (b == NULL)
        return a;
    if (a->prio > b->prio) {
        a->right = treap_join(a->right, b);
        update(a);
        return a;
    }
    b->left = treap_join(a, b->left);
    update(b);
    return b;
}

static ga_span_t *treap_remove(ga_span_t *t, ga_span_t *s)
{
    if (t == s)
        return treap_join(t->left, t->right);
    if (s->base < t->base)
        t->left = treap_remove(t->left, s);
    else
        t->right = treap_remove(t->right, s);
    update(t);
    return t;
}

/* Lowest-address free run of at least k pages. */
static ga_span_t *treap_first_fit(ga_span_t *t, size_t k)
{
    while (t != NULL) {
        if (t->left && t->left->max_pages >= k)
            t = t->left;
        else if (t->npages >= k)
            return t;
        else if (t->right && t->right->max_pages >= k)
            t = t->right;
        else
            return NULL;
    }
    return NULL;
}

/* Highest-address free run with pages not yet released whose
 * unused_since <= cutoff. */
static ga_span_t *treap_last_idle(ga_span_t *t, uint64_t cutoff)
{
    while (t != NULL) {
        if (t->right && t->right->sub_oldest <= cutoff)
            t = t->right;
        else if (own_oldest(t) <= cutoff)
            return t;
        else if (t->left && t->left->sub_oldest <= cutoff)
            t = t->left;
        else
            return NULL;
    }
    return NULL;
}

/* ---- span structs ------------------------------------------------------- */

static ga_span_t *span_new_locked(void)
{
    ga_assert_held(&ga_heap.lock);
    ga_span_t *s = ga_fixalloc_alloc(&ga_heap.spanalloc);
    if (s != NULL) {
        uint32_t x = ga_heap.seed; /* xorshift32 treap priority */
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        ga_heap.seed = x;
        s->prio = x;
    }
    return s;
}

static void span_dispose_locked(ga_span_t *s)
{
    ga_assert_held(&ga_heap.lock);
    ga_assert_internal(atomic_load_explicit(&s->state, memory_order_relaxed) == GA_SPAN_FREE ||
                       atomic_load_explicit(&s->state, memory_order_relaxed) == GA_SPAN_CLAIMED);
    s->spc = 0;
    atomic_store_explicit(&s->state, GA_SPAN_DEAD, memory_order_release);
    ga_fixalloc_free(&ga_heap.spanalloc, s);
}

static void remove_free_locked(ga_span_t *r)
{
    ga_assert_held(&ga_heap.lock);
    ga_heap.free_root = treap_remove(ga_heap.free_root, r);
    ga_heap.nfree_runs--;
    ga_heap.pages_free -= r->npages;
}

/* Makes s (base, npages, nscav and unused_since set) a free run, merging it
 * with free neighbours. REQUIRES: heap lock. */
static void free_run_locked(ga_span_t *s)
{
    ga_assert_held(&ga_heap.lock);
    ga_assert_internal(s->npages != 0 && s->nscav <= s->npages && ga_heap.free_root != s);
    uintptr_t end = s->base + s->npages * PAGE;
    ga_span_t *p = s->base >= PAGE ? ga_span_of(s->base - PAGE) : NULL;
    if (p != NULL && p != s && atomic_load_explicit(&p->state, memory_order_relaxed) == GA_SPAN_FREE &&
        p->base + p->npages * PAGE == s->base) {
        remove_free_locked(p);
        s->base = p->base;
        s->npages += p->npages;
        s->nscav += p->nscav;
        s->unused_since = p->unused_since > s->unused_since ? p->unused_since : s->unused_since;
        span_dispose_locked(p);
    }
    ga_span_t *n = ga_span_of(end);
    if (n != NULL && n != s && atomic_load_explicit(&n->state, memory_order_relaxed) == GA_SPAN_FREE &&
        n->base == end) {
        remove_free_locked(n);
        s->npages += n->npages;
        s->nscav += n->nscav;
        s->unused_since = n->unused_since > s->unused_since ? n->unused_since : s->unused_since;
        span_dispose_locked(n);
    }
    s->spc = 0;
    s->elemsize = 0;
    ga_span_set_owner(s, NULL);
    atomic_store_explicit(&s->state, GA_SPAN_FREE, memory_order_release);
    map_page(s->base, s);
    map_page(s->base + (s->npages - 1) * PAGE, s);
    ga_heap.free_root = treap_insert(ga_heap.free_root, s);
    ga_heap.nfree_runs++;
    ga_assert_valid(check_merged, s); /* the treap under the merged run: O(log n) runs expected */
    ga_heap.pages_free += s->npages;
}

size_t ga_mheap_page_bits(uintptr_t base, size_t npages, int which, int op)
{
    size_t count = 0;
    uintptr_t end = base + npages * PAGE;
    for (uintptr_t a = base; a < end;) {
        ga_heap_arena_t *ha = arena_of(a);
        uint64_t *bits = which == GA_BITS_SCAV ? ha->scav : ha->dirty;
        size_t i = (a - ha->base) >> GA_PAGE_SHIFT;
        uintptr_t aend = ha->base + GA_ARENA_SIZE < end ? ha->base + GA_ARENA_SIZE : end;
        size_t n = (aend - a) >> GA_PAGE_SHIFT;
        while (n > 0) {
            unsigned b = i & 63, k = n < 64 - b ? (unsigned)n : 64 - b;
            uint64_t mask = (k == 64 ? ~0ull : ((1ull << k) - 1)) << b;
            count += (size_t)ga_popcount64(bits[i / 64] & mask);
            if (op == GA_BITS_SET)
                bits[i / 64] |= mask;
            else if (op == GA_BITS_CLEAR)
                bits[i / 64] &= ~mask;
            i += k;
            n -= k;
        }
        a = aend;
    }
    return count;
}

/* ---- growth ---------------------------------------------------------------- */

static void arena_link_locked(ga_heap_arena_t *ha)
{
    ga_assert_held(&ga_heap.lock);
    ga_heap_arena_t **pp = &ga_heap.arenas;
    while (*pp != NULL && (*pp)->base < ha->base)
        pp = &(*pp)->next;
    ha->next = *pp;
    *pp = ha;
    ga_heap.narenas++;
}

/* Maps enough whole arenas for npages and adds them as a free run. */
static bool grow_locked(size_t npages)
{
    ga_assert_held(&ga_heap.lock);
    if (npages > (GA_MAX_ALLOC >> GA_PAGE_SHIFT))
        return false;
    size_t bytes = (npages * PAGE + GA_ARENA_SIZE - 1) & ~(GA_ARENA_SIZE - 1);
    ga_span_t *s = span_new_locked();
    if (s == NULL)
        return false;
    char *p = ga_sys_reserve(ga_heap.hint, bytes, GA_ARENA_SIZE);
    if (p == NULL || ((uintptr_t)p + bytes - 1) >> GA_ADDR_BITS) {
        if (p != NULL)
            ga_sys_free(p, bytes);
        ga_fixalloc_free(&ga_heap.spanalloc, s);
        return false;
    }
    for (size_t off = 0; off < bytes; off += GA_ARENA_SIZE) {
        ga_heap_arena_t *ha = ga_persistent_alloc(sizeof(ga_heap_arena_t));
        if (ha == NULL) {
            /* Arenas already published stay (their pages are simply unused). */
            ga_sys_free(p + off, bytes - off);
            bytes = off;
            break;
        }
        ha->base = (uintptr_t)p + off;
        arena_link_locked(ha);
        atomic_store_explicit(&ga_arena_map[ha->base >> GA_ARENA_SHIFT], ha, memory_order_release);
    }
    if (bytes == 0) {
        ga_fixalloc_free(&ga_heap.spanalloc, s);
        return false;
    }
    ga_heap.hint = (uintptr_t)p + bytes;
    s->base = (uintptr_t)p;
    s->npages = bytes / PAGE;
    ga_mheap_page_bits(s->base, s->npages, GA_BITS_SCAV, GA_BITS_SET); /* fresh: not resident */
    s->nscav = s->npages;
    s->unused_since = 0;
    ga_heap.pages_released += s->npages;
    free_run_locked(s);
    return bytes / PAGE >= npages;
}

/* ---- allocation ------------------------------------------------------------ */

/* Keeps two span structs in reserve, so that splitting a run never has to
 * allocate one after the run was chosen (a metadata fallback could take
 * pages from that very run). */
static bool reserve_spans_locked(void)
{
    ga_assert_held(&ga_heap.lock);
    while (ga_heap.nspare < 2) {
        ga_span_t *s = span_new_locked();
        if (s == NULL)
            return false;
        ga_heap.spare[ga_heap.nspare++] = s;
    }
    return true;
}

static size_t min_pages(size_t a, size_t b) { return a < b ? a : b; }

/* npages more pages in use: the one place that moves the recent peak
 * (the scavenger's goal) and the all-time peak (peak_heap_bytes). */
static void inuse_add_locked(size_t npages)
{
    ga_assert_held(&ga_heap.lock);
    ga_heap.pages_inuse += npages;
    if (ga_heap.pages_inuse > ga_heap.peak_cur)
        ga_heap.peak_cur = ga_heap.pages_inuse;
    if (ga_heap.pages_inuse > ga_heap.peak_inuse_ever)
        ga_heap.peak_inuse_ever = ga_heap.pages_inuse;
}

static ga_span_t *alloc_locked(size_t npages, size_t align_pages)
{
    ga_assert_held(&ga_heap.lock);
    size_t need = npages + align_pages - 1;
    if (!reserve_spans_locked())
        return NULL;
    ga_span_t *r = treap_first_fit(ga_heap.free_root, need);
    if (r == NULL)
        return NULL;
    ga_assert(r->npages >= need && atomic_load(&r->state) == GA_SPAN_FREE);
    uintptr_t abase = (r->base + align_pages * PAGE - 1) & ~(align_pages * PAGE - 1);
    size_t head = (abase - r->base) / PAGE;
    size_t tail = r->npages - head - npages;
    ga_span_t *h = head ? ga_heap.spare[--ga_heap.nspare] : NULL;
    ga_span_t *t = tail ? ga_heap.spare[--ga_heap.nspare] : NULL;
    remove_free_locked(r);
    uintptr_t run_base = r->base;
    /* Page bits are touched only for the head (an alignment gap) and the
     * pages handed out; the tail's released count follows from the run's. */
    size_t released = ga_mheap_page_bits(abase, npages, GA_BITS_SCAV, GA_BITS_CLEAR);
    size_t head_released = head ? ga_mheap_page_bits(run_base, head, GA_BITS_SCAV, GA_BITS_COUNT) : 0;
    size_t tail_released = r->nscav - released - head_released;
    ga_heap.pages_released -= released;
    size_t refault = min_pages(released, ga_heap.scav_outstanding); /* released too early? */
    ga_heap.scav_outstanding -= refault;
    ga_heap.refault_window += refault;
    /* Claim r before its leftovers become free runs, so they cannot merge
     * back into it. */
    atomic_store_explicit(&r->state, GA_SPAN_CLAIMED, memory_order_relaxed);
    r->base = abase;
    r->npages = npages;
    r->left = r->right = NULL;
    map_all_pages(r);
    if (h != NULL) {
        h->base = run_base;
        h->npages = head;
        h->nscav = head_released;
        h->unused_since = r->unused_since;
        free_run_locked(h);
    }
    if (t != NULL) {
        t->base = abase + npages * PAGE;
        t->npages = tail;
        t->nscav = tail_released;
        t->unused_since = r->unused_since;
        free_run_locked(t);
    }
    r->needzero = ga_mheap_page_bits(abase, npages, GA_BITS_DIRTY, GA_BITS_SET) != 0;
    inuse_add_locked(npages);
    return r;
}

ga_span_t *ga_mheap_alloc(size_t npages, size_t align_pages, uint8_t state, uint16_t spc,
                          ga_heap_how_t how)
{
    if (npages == 0 || align_pages == 0 || npages > (GA_MAX_ALLOC >> GA_PAGE_SHIFT) ||
        align_pages > (GA_MAX_ALLOC >> GA_PAGE_SHIFT) - npages) {
        errno = ENOMEM;
        return NULL;
    }
    ga_lock(&ga_heap.lock);
    ga_span_t *s = NULL;
    if (ga_scavenge_limit_locked(npages)) {
        s = alloc_locked(npages, align_pages);
        if (s == NULL && how == GA_HEAP_GROW && ga_scavenge_before_growth_locked(npages) &&
            grow_locked(npages + align_pages - 1))
            s = alloc_locked(npages, align_pages);
    }
    if (s == NULL) {
        ga_unlock(&ga_heap.lock);
        errno = ENOMEM;
        return NULL;
    }
    ga_assert_internal(s->npages == npages && atomic_load(&s->state) == GA_SPAN_CLAIMED &&
                       (s->base & ((align_pages << GA_PAGE_SHIFT) - 1)) == 0);
    s->spc = spc;
    ga_stats_span_alloc_locked(spc, npages);
    s->prof_request = 0; /* no request recorded (mprof.c) */
    ga_span_set_owner(s, NULL);
    atomic_store_explicit(&s->state, state, memory_order_release);
    ga_unlock(&ga_heap.lock);
    if (ga_protect)
        set_access(s->base, s->npages, 1);
    return s;
}

size_t ga_mheap_reclaim_need(size_t npages)
{
    ga_lock(&ga_heap.lock);
    size_t need = 0;
    if (ga_heap.reclaim_credit >= npages) {
        ga_heap.reclaim_credit -= npages;
    } else {
        need = npages - ga_heap.reclaim_credit;
        ga_heap.reclaim_credit = 0;
    }
    ga_unlock(&ga_heap.lock);
    return need;
}

void ga_mheap_reclaimed(size_t got, size_t need)
{
    ga_lock(&ga_heap.lock);
    ga_heap.reclaimed_total += got;
    if (got > need)
        ga_heap.reclaim_credit += got - need;
    ga_unlock(&ga_heap.lock);
}

/* malloc(0) hands out addresses, 16 bytes apart, in a region that can
 * never be read or written (PROT_NONE, no memory behind it), so any use of
 * such an object faults at once. Addresses are never reused; when the
 * region is used up (2^28 objects) malloc(0) returns ordinary objects.
 * Freeing one does nothing: a double free of one goes unseen. */
#define ZERO_REGION ((uintptr_t)1 << 32)
static _Atomic uintptr_t zero_base, zero_next;

void *ga_mheap_zero_alloc(void)
{
    uintptr_t base = atomic_load_explicit(&zero_base, memory_order_acquire);
    if (base == 0) {
        void *m = ga_sys_reserve_noaccess(ZERO_REGION);
        if (m == NULL)
            return NULL;
        if (atomic_compare_exchange_strong(&zero_base, &base, (uintptr_t)m))
            base = (uintptr_t)m;
        else
            ga_sys_free(m, ZERO_REGION); /* another thread's won; base is it */
    }
    uintptr_t off = atomic_fetch_add_explicit(&zero_next, 16, memory_order_relaxed);
    return off < ZERO_REGION ? (void *)(base + off) : NULL;
}

bool ga_is_zero_object(uintptr_t p)
{
    uintptr_t base = atomic_load_explicit(&zero_base, memory_order_relaxed);
    return base != 0 && p - base < ZERO_REGION;
}

#define META_HEADER ((sizeof(ga_span_t) + GA_CACHE_LINE - 1) & ~(size_t)(GA_CACHE_LINE - 1))

void *ga_mheap_alloc_meta_locked(size_t bytes)
{
    ga_assert_held(&ga_heap.lock);
    size_t npages = (bytes + META_HEADER + PAGE - 1) / PAGE;
    ga_span_t *r = treap_first_fit(ga_heap.free_root, npages);
    if (r == NULL)
        return NULL;
    remove_free_locked(r);
    uintptr_t base = r->base + (r->npages - npages) * PAGE; /* the run's top pages */
    size_t released = ga_mheap_page_bits(base, npages, GA_BITS_SCAV, GA_BITS_CLEAR);
    ga_heap.pages_released -= released;
    bool dirty = ga_mheap_page_bits(base, npages, GA_BITS_DIRTY, GA_BITS_SET) != 0;
    if (r->npages == npages) {
        span_dispose_locked(r);
    } else {
        r->npages -= npages;
        r->nscav -= released;
        free_run_locked(r);
    }
    if (ga_protect)
        set_access(base, npages, 1);
    ga_span_t *m = (ga_span_t *)base;
    memset(m, 0, dirty ? npages * PAGE : sizeof *m); /* fixalloc hands out zeroed memory */
    m->base = base;
    m->npages = npages;
    atomic_store_explicit(&m->state, GA_SPAN_META, memory_order_relaxed);
    map_all_pages(m);
    inuse_add_locked(npages);
    return (char *)base + META_HEADER;
}

void *ga_mheap_alloc_meta(size_t bytes)
{
    ga_lock(&ga_heap.lock);
    void *p = ga_mheap_alloc_meta_locked(bytes);
    ga_unlock(&ga_heap.lock);
    return p;
}

void ga_mheap_free(ga_span_t *s)
{
    ga_assert(atomic_load(&s->state) == GA_SPAN_CLAIMED);
    if (ga_protect && s->spc == 0) /* still the caller's alone: not yet free */
        set_access(s->base, s->npages, 0);
    uint64_t now = ga_now_ns();
    ga_lock(&ga_heap.lock);
    ga_heap.pages_inuse -= s->npages;
    ga_stats_span_free_locked(s->spc, s->npages);
    s->nscav = 0;
    s->unused_since = now;
    free_run_locked(s);
    size_t surplus = ga_scavenge_surplus_locked();
    ga_unlock(&ga_heap.lock);
    ga_scavenge_freed(now, surplus);
}

bool ga_mheap_resize(ga_span_t *s, size_t npages)
{
    bool ok = false;
    ga_lock(&ga_heap.lock);
    uintptr_t end = s->base + s->npages * PAGE;
    if (npages < s->npages) {
        ga_span_t *t = span_new_locked();
        if (t != NULL) {
            t->base = s->base + npages * PAGE;
            t->npages = s->npages - npages;
            t->nscav = 0;
            t->unused_since = ga_now_ns();
            s->npages = npages;
            ga_heap.pages_inuse -= t->npages;
            if (ga_protect)
                set_access(t->base, t->npages, 0);
            free_run_locked(t);
            ok = true;
        }
    } else if (npages > s->npages) {
        size_t extra = npages - s->npages;
        ga_span_t *n = ga_span_of(end);
        if (n != NULL && atomic_load_explicit(&n->state, memory_order_relaxed) == GA_SPAN_FREE &&
            n->base == end && n->npages >= extra) {
            remove_free_locked(n);
            s->npages = npages;
            for (size_t i = 0; i < extra; i++)
                map_page(end + i * PAGE, s);
            size_t released = ga_mheap_page_bits(end, extra, GA_BITS_SCAV, GA_BITS_CLEAR);
            ga_heap.pages_released -= released;
            if (n->npages > extra) {
                n->base += extra * PAGE;
                n->npages -= extra;
                n->nscav -= released;
                free_run_locked(n);
            } else {
                span_dispose_locked(n);
            }
            s->needzero |= ga_mheap_page_bits(end, extra, GA_BITS_DIRTY, GA_BITS_SET) != 0;
            if (ga_protect)
                set_access(end, extra, 1);
            inuse_add_locked(extra);
            ok = true;
        }
    } else {
        ok = true;
    }
    ga_unlock(&ga_heap.lock);
    return ok;
}

/* ---- releasing pages to the OS ------------------------------------------------ */

/* Releases up to budget not-yet-released pages of free run r, from its top
 * down. The heap lock is held across madvise, so no page is handed out
 * while it is being released. */
static size_t scavenge_run_locked(ga_span_t *r, size_t budget)
{
    ga_assert_held(&ga_heap.lock);
    size_t released = 0;
    uintptr_t p = r->base + r->npages * PAGE;
    int lazy = ga_opts.madvise == GA_MADV_FREE;
    while (p > r->base && released < budget) {
        while (p > r->base && ga_mheap_page_bits(p - PAGE, 1, GA_BITS_SCAV, GA_BITS_COUNT))
            p -= PAGE;
        uintptr_t hi = p;
        while (p > r->base && released + (hi - p) / PAGE < budget &&
               !ga_mheap_page_bits(p - PAGE, 1, GA_BITS_SCAV, GA_BITS_COUNT))
            p -= PAGE;
        if (hi == p)
            break;
        size_t n = (hi - p) / PAGE;
        if (ga_sys_unused((void *)p, hi - p, lazy) != 0)
            break; /* the kernel refused: keep the pages */
        ga_mheap_page_bits(p, n, GA_BITS_SCAV, GA_BITS_SET);
        if (!lazy)
            ga_mheap_page_bits(p, n, GA_BITS_DIRTY, GA_BITS_CLEAR); /* reads back as zero */
        released += n;
    }
    return released;
}

#define SCAVENGE_STEP 256 /* pages: release in 2 MiB steps (huge-page sized) */

size_t ga_mheap_scavenge_locked(size_t pages, uint64_t cutoff)
{
    ga_assert_held(&ga_heap.lock);
    size_t done = 0;
    if (cutoff == UINT64_MAX)
        cutoff--; /* UINT64_MAX marks runs with nothing left to release */
    while (done < pages) {
        ga_span_t *r = treap_last_idle(ga_heap.free_root, cutoff);
        if (r == NULL)
            break;
        size_t want = pages - done;
        if (want < SIZE_MAX - SCAVENGE_STEP)
            want = (want + SCAVENGE_STEP - 1) / SCAVENGE_STEP * SCAVENGE_STEP;
        ga_heap.free_root = treap_remove(ga_heap.free_root, r);
        size_t n = scavenge_run_locked(r, want);
        r->nscav += n;
        ga_heap.free_root = treap_insert(ga_heap.free_root, r);
        if (n == 0)
            break;
        done += n;
    }
    ga_heap.pages_released += done;
    ga_heap.scavenged_total += done;
    ga_heap.scav_outstanding += done;
    return done;
}

size_t ga_mheap_retained_locked(void)
{
    ga_assert_held(&ga_heap.lock);
    return ga_heap.pages_inuse + ga_heap.pages_free - ga_heap.pages_released;
}

/* ---- validation --------------------------------------------------------- */

static int check_treap(ga_span_t *t, uintptr_t lo, uintptr_t hi, size_t *runs, size_t *pages,
                       size_t *released, char *msg, size_t len)
{
    if (t == NULL)
        return 0;
    if (atomic_load_explicit(&t->state, memory_order_relaxed) != GA_SPAN_FREE)
        return ga_fail(msg, len, "mheap: treap holds a span that is not free", t->base, t->npages);
    if (t->base < lo || t->base + t->npages * PAGE > hi)
        return ga_fail(msg, len, "mheap: treap not ordered by address", t->base, t->npages);
    if ((t->left && t->left->prio > t->prio) || (t->right && t->right->prio > t->prio))
        return ga_fail(msg, len, "mheap: treap heap order broken", t->base, t->prio);
    size_t m = t->npages;
    if (t->left && t->left->max_pages > m)
        m = t->left->max_pages;
    if (t->right && t->right->max_pages > m)
        m = t->right->max_pages;
    if (m != t->max_pages)
        return ga_fail(msg, len, "mheap: treap max_pages wrong", t->base, t->max_pages);
    uint64_t o = own_oldest(t);
    if (t->left && t->left->sub_oldest < o)
        o = t->left->sub_oldest;
    if (t->right && t->right->sub_oldest < o)
        o = t->right->sub_oldest;
    if (o != t->sub_oldest)
        return ga_fail(msg, len, "mheap: treap sub_oldest wrong", t->base, t->sub_oldest);
    if (t->nscav != ga_mheap_page_bits(t->base, t->npages, GA_BITS_SCAV, GA_BITS_COUNT))
        return ga_fail(msg, len, "mheap: free run's nscav disagrees with the scav bits", t->base,
                       t->nscav);
    *released += t->nscav;
    (*runs)++;
    *pages += t->npages;
    return check_treap(t->left, lo, t->base, runs, pages, released, msg, len) ||
           check_treap(t->right, t->base + t->npages * PAGE, hi, runs, pages, released, msg, len);
}

static ga_span_t *page_entry(uintptr_t a)
{
    return atomic_load_explicit(&arena_of(a)->spans[(a >> GA_PAGE_SHIFT) & (GA_PAGES_PER_ARENA - 1)],
                                memory_order_relaxed);
}

/* Walks every page of every arena: each belongs to exactly one span or free
 * run that starts where the walk is, in-use spans map all their pages, free
 * runs their first and last page, and no two free runs touch.
 * REQUIRES: heap lock (and central locks for span contents). */
int ga_mheap_check_locked(size_t *state_spans, char *msg, size_t len)
{
    ga_assert_held(&ga_heap.lock);
    size_t runs = 0, pages = 0, inuse = 0, free_walk = 0, released = 0;
    if (check_treap(ga_heap.free_root, 0, UINTPTR_MAX, &runs, &pages, &released, msg, len))
        return 1;
    if (released != ga_heap.pages_released)
        return ga_fail(msg, len, "mheap: released page count disagrees with the free runs",
                       released, ga_heap.pages_released);
    if (runs != ga_heap.nfree_runs || pages != ga_heap.pages_free)
        return ga_fail(msg, len, "mheap: free run counts disagree with the treap", runs, pages);
    uintptr_t a = 0;
    bool prev_free = false;
    for (ga_heap_arena_t *ha = ga_heap.arenas; ha != NULL; ha = ha->next) {
        if (a < ha->base) { /* a gap in the address space between arenas */
            a = ha->base;
            prev_free = false;
        }
        uintptr_t aend = ha->base + GA_ARENA_SIZE;
        while (a < aend) {
            ga_span_t *s = page_entry(a);
            if (s == NULL || s->base != a || s->npages == 0)
                return ga_fail(msg, len, "mheap: page map entry does not start a span here", a,
                               s ? s->npages : 0);
            uintptr_t send = a + s->npages * PAGE;
            for (uintptr_t q = aend; q < send; q += GA_ARENA_SIZE)
                if (arena_of(q) == NULL)
                    return ga_fail(msg, len, "mheap: span extends past its arenas", a, s->npages);
            uint8_t st = atomic_load_explicit(&s->state, memory_order_relaxed);
            if (st == GA_SPAN_FREE) {
                if (prev_free)
                    return ga_fail(msg, len, "mheap: adjacent free runs not coalesced", a, s->npages);
                if (page_entry(send - PAGE) != s)
                    return ga_fail(msg, len, "mheap: free run's last page not mapped", a, s->npages);
                free_walk += s->npages;
                prev_free = true;
            } else if (GA_SMALL_IN_USE(st) || GA_WHOLE_PAGES(st)) {
                for (uintptr_t q = a; q < send; q += PAGE)
                    if (page_entry(q) != s)
                        return ga_fail(msg, len, "mheap: in-use span page not mapped to it", q,
                                       s->npages);
                if (ga_mheap_page_bits(a, s->npages, GA_BITS_SCAV, GA_BITS_COUNT) != 0)
                    return ga_fail(msg, len, "mheap: in-use span has released pages", a, s->npages);
                if (GA_WHOLE_PAGES(st) != (s->spc == 0))
                    return ga_fail(msg, len, "mheap: span class disagrees with state", a, s->spc);
                if (!GA_WHOLE_PAGES(st) && ga_span_check(s, msg, len))
                    return 1;
                state_spans[st]++;
                inuse += s->npages;
                prev_free = false;
            } else {
                return ga_fail(msg, len, "mheap: page maps to a span in a bad state", a, st);
            }
            a = send;
        }
    }
    if (free_walk != ga_heap.pages_free || inuse != ga_heap.pages_inuse)
        return ga_fail(msg, len, "mheap: page counts disagree with the page map", free_walk, inuse);
    return 0;
}

void ga_mheap_for_each_span_locked(void (*fn)(ga_span_t *s, void *arg), void *arg)
{
    ga_assert_held(&ga_heap.lock);
    uintptr_t a = 0;
    for (ga_heap_arena_t *ha = ga_heap.arenas; ha != NULL; ha = ha->next) {
        if (a < ha->base)
            a = ha->base;
        while (a < ha->base + GA_ARENA_SIZE) {
            ga_span_t *s = page_entry(a);
            if (s == NULL || s->base != a || s->npages == 0)
                return; /* a broken map; ga_check_heap says where */
            if (atomic_load_explicit(&s->state, memory_order_relaxed) != GA_SPAN_FREE)
                fn(s, arg);
            a += s->npages * PAGE;
        }
    }
}
