/* Test-only entry points (see testing.h). See malloc.c for the overview. */
#if defined(GA_TESTING)
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "inline.h"
#include "testing.h"

int ga_test_ptr_info(void *ptr, ga_test_ptr_info_t *out)
{
    memset(out, 0, sizeof *out);
    ga_span_t *s = ga_span_of((uintptr_t)ptr);
    if (s == NULL)
        return 0;
    out->spc = s->spc;
    out->state = atomic_load(&s->state);
    out->kind = s->spc == 0 ? (out->state == GA_SPAN_LARGE ? 3 : 0) : s->spc == GA_TINY_SPC ? 1 : 2;
    out->elemsize = s->elemsize;
    out->npages = s->npages;
    out->span_base = s->base;
    out->nelems = s->nelems;
    out->alloc_count = s->alloc_count;
    out->freeindex = s->freeindex;
    out->nlocal = s->nlocal;
    out->nremote = atomic_load(&s->nremote);
    out->owned_by_caller = atomic_load(&s->owner) == ga_tls_mcache;
    out->needzero = s->needzero;
    out->cache_list = s->cache_list;
    if (out->kind == 1)
        out->tiny_word = atomic_load(&s->tiny_meta[((uintptr_t)ptr - s->base) / GA_TINY_SIZE]);
    return out->kind;
}

const char *ga_test_state_name(int state)
{
    static const char *const names[] = {"dead", "free", "cached", "partial", "full", "claimed", "large"};
    return state >= 0 && state < (int)(sizeof names / sizeof names[0]) ? names[state] : "?";
}

static void largest_run(ga_span_t *t, size_t *m)
{
    if (t != NULL && t->max_pages > *m)
        *m = t->max_pages;
}

void ga_test_heap_info(ga_test_heap_info_t *out)
{
    ga_ensure_init();
    ga_mheap_lock();
    out->narenas = ga_heap.narenas;
    out->pages_inuse = ga_heap.pages_inuse;
    out->pages_free = ga_heap.pages_free;
    out->free_runs = ga_heap.nfree_runs;
    out->largest_free_run = 0;
    largest_run(ga_heap.free_root, &out->largest_free_run);
    out->pages_released = ga_heap.pages_released;
    out->retained = ga_mheap_retained_locked();
    out->scav_credit = ga_heap.scav_credit;
    out->reclaim_credit = ga_heap.reclaim_credit;
    out->scavenged_total = ga_heap.scavenged_total;
    out->reclaimed_total = ga_heap.reclaimed_total;
    out->goal = ga_scavenge_goal_locked();
    ga_mheap_unlock();
}

unsigned ga_test_size_to_class(size_t n)
{
    ga_ensure_init();
    return n <= GA_MAX_SMALL_SIZE ? ga_size_to_class(n) : 0;
}

unsigned ga_test_tiny_class(void) { return GA_TINY_SPC; }

size_t ga_test_central_spans(unsigned spc, int which)
{
    if (spc >= GA_NUM_SPC)
        return 0;
    ga_mcentral_t *c = &ga_central[spc];
    ga_lock(&c->lock);
    size_t n = which ? c->full.n : c->partial.n;
    ga_unlock(&c->lock);
    return n;
}

void ga_test_release_cache(void)
{
    bool locked;
    ga_mcache_t *mc = ga_mcache_get(&locked);
    ga_mcache_release_all(mc);
    if (locked)
        ga_mcache_put_shared();
}

int ga_test_fresh_span(size_t n)
{
    ga_ensure_init();
    if (n == 0 || n > GA_MAX_SMALL_SIZE)
        return -1;
    unsigned spc = ga_size_to_class(n);
    bool locked;
    ga_mcache_t *mc = ga_mcache_get(&locked);
    ga_span_t *s = mc->alloc[spc];
    if (s != &ga_emptyspan) {
        mc->alloc[spc] = &ga_emptyspan;
        ga_mcentral_uncache_span(&ga_central[spc], s);
    }
    s = ga_mcentral_grow(&ga_central[spc], mc, GA_HEAP_GROW);
    if (s != NULL)
        ga_mcache_set_current(mc, spc, s);
    if (locked)
        ga_mcache_put_shared();
    return s != NULL ? (int)spc : -1;
}

void ga_test_exit_cache(void)
{
    ga_mcache_exit_thread();
}

uintptr_t ga_test_thread_cache(void)
{
    ga_mcache_t *mc = ga_tls_mcache;
    return mc == &ga_empty_mcache || mc == &ga_dead_mcache ? 0 : (uintptr_t)mc;
}

void ga_test_corrupt(void *p, int what, int on)
{
    int delta = on ? 1 : -1;
    ga_span_t *s = ga_span_of((uintptr_t)p);
    switch (what) {
    case 0: /* the owner's count of local frees */
        s->nlocal += (uint32_t)delta;
        break;
    case 1: /* the largest-run summary at the treap's root */
        ga_mheap_lock();
        ga_heap.free_root->max_pages += (size_t)(ptrdiff_t)delta;
        ga_mheap_unlock();
        break;
    case 3: /* the calling thread's kept pages */
        ga_tls_mcache->kept_pages += (size_t)(ptrdiff_t)delta;
        break;
    case 2: /* a page-map entry: p's page maps to the sentinel span */
        if (on) {
            ga_heap_arena_t *ha = ga_arena_map[(uintptr_t)p >> GA_ARENA_SHIFT];
            atomic_store(&ha->spans[((uintptr_t)p >> GA_PAGE_SHIFT) & (GA_PAGES_PER_ARENA - 1)],
                         &ga_emptyspan);
        }
        break;
    }
}

void ga_test_repair_page(void *p, void *span_of)
{
    ga_span_t *s = ga_span_of((uintptr_t)span_of);
    ga_heap_arena_t *ha = ga_arena_map[(uintptr_t)p >> GA_ARENA_SHIFT];
    atomic_store(&ha->spans[((uintptr_t)p >> GA_PAGE_SHIFT) & (GA_PAGES_PER_ARENA - 1)], s);
}

void ga_test_set_tiny(int on)
{
    ga_ensure_init();
    ga_opts.tiny = on != 0;
    ga_apply_options();
}

void ga_test_parse_options(const char *s)
{
    ga_ensure_init();
    ga_parse_options(s);
    ga_apply_options();
}
long long ga_test_option(const char *key) { return ga_option_value(key); }

static char last_misuse[256];
static pthread_mutex_t last_misuse_lock = PTHREAD_MUTEX_INITIALIZER;

void ga_test_misuse_seen(const char *line, size_t len)
{
    pthread_mutex_lock(&last_misuse_lock);
    len = len < sizeof last_misuse ? len : sizeof last_misuse - 1;
    memcpy(last_misuse, line, len);
    last_misuse[len && line[len - 1] == '\n' ? len - 1 : len] = '\0';
    pthread_mutex_unlock(&last_misuse_lock);
}

uint64_t ga_test_misuse_count(void) { return atomic_load(&ga_misuse_count); }

void ga_test_last_misuse(char *out, size_t n)
{
    if (n == 0)
        return;
    pthread_mutex_lock(&last_misuse_lock);
    size_t len = strlen(last_misuse);
    len = len < n ? len : n - 1;
    memcpy(out, last_misuse, len);
    out[len] = '\0';
    pthread_mutex_unlock(&last_misuse_lock);
}

size_t ga_test_fast_medium(void) { return ga_fast_medium; }

void ga_test_fast_paths(size_t *lo, size_t *span, int *hardened)
{
    ga_ensure_init();
    *lo = ga_fast_lo;
    *span = ga_fast_span;
    *hardened = ga_hardened;
}

int ga_test_profile(int on) { return ga_prof_restart(on); }

unsigned ga_test_cache_stash(unsigned spc)
{
    ga_mcache_t *mc = ga_tls_mcache;
    return spc < GA_NUM_SPC ? mc->nstash[spc] : 0;
}

/* ---- a cache stopped in the middle of a move (fork tests) ---------------------- */

static pthread_mutex_t move_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t move_cond = PTHREAD_COND_INITIALIZER;
static int move_state;        /* 0 idle, 1 stopped in the move, 2 resume */
static unsigned move_timeout; /* ms */
static int move_timed_out;

static void deadline_in(struct timespec *ts, unsigned ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static void move_hook(void)
{
    struct timespec ts;
    ga_test_cache_hook = NULL;
    deadline_in(&ts, move_timeout);
    pthread_mutex_lock(&move_lock);
    move_state = 1;
    pthread_cond_broadcast(&move_cond);
    while (move_state != 2 && !move_timed_out)
        move_timed_out = pthread_cond_timedwait(&move_cond, &move_lock, &ts) == ETIMEDOUT;
    move_state = 0;
    pthread_mutex_unlock(&move_lock);
}

int ga_test_cache_move_paused(size_t n, unsigned timeout_ms)
{
    enum { MAX = 256 };
    void *objs[MAX];
    unsigned k = 0;
    ga_ensure_init();
    if (ga_opts.mcache_keep == 0 || n < GA_TINY_SIZE || n > GA_MAX_SMALL_SIZE)
        return -1;
    /* Until the span of the first object is kept as exhausted. */
    while (k < MAX && (objs[k] = ga_malloc(n)) != NULL) {
        k++;
        if (ga_span_of((uintptr_t)objs[0])->cache_list == GA_LIST_FULL)
            break;
    }
    int rc = -1;
    if (k > 0 && ga_span_of((uintptr_t)objs[0])->cache_list == GA_LIST_FULL) {
        pthread_mutex_lock(&move_lock);
        move_state = 0;
        move_timed_out = 0;
        move_timeout = timeout_ms;
        pthread_mutex_unlock(&move_lock);
        ga_test_cache_hook = move_hook;
        ga_free(objs[0]); /* the owner's first free into it: the move */
        ga_test_cache_hook = NULL;
        rc = move_timed_out;
    } else if (k > 0) {
        ga_free(objs[0]);
    }
    for (unsigned i = 1; i < k; i++)
        ga_free(objs[i]);
    return rc;
}

int ga_test_cache_move_wait(unsigned timeout_ms)
{
    struct timespec ts;
    int rc = 0;
    deadline_in(&ts, timeout_ms);
    pthread_mutex_lock(&move_lock);
    while (move_state != 1 && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&move_cond, &move_lock, &ts);
    int stopped = move_state == 1;
    pthread_mutex_unlock(&move_lock);
    return stopped ? 0 : -1;
}

void ga_test_cache_move_resume(void)
{
    pthread_mutex_lock(&move_lock);
    if (move_state == 1)
        move_state = 2;
    pthread_cond_broadcast(&move_cond);
    pthread_mutex_unlock(&move_lock);
}

/* ---- a remote free half-done while its span goes back -------------------------- */

static pthread_mutex_t race_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t race_cond = PTHREAD_COND_INITIALIZER;
static ga_span_t *race_span;
static unsigned race_spc;
static pthread_t race_thread;
/* 0 before the free, 1 stopped in it, 2 told to go on, 3 gone on; read
 * without the lock by a fork child (release_held). */
static _Atomic int race_state;
static unsigned race_pause_ms;

static void race_hook(ga_span_t *s)
{
    struct timespec ts;
    if (s != race_span)
        return;
    deadline_in(&ts, race_pause_ms);
    pthread_mutex_lock(&race_lock);
    race_state = 1;
    pthread_cond_broadcast(&race_cond);
    int rc = 0;
    while (race_state != 2 && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&race_cond, &race_lock, &ts);
    race_state = 3;
    pthread_cond_broadcast(&race_cond);
    pthread_mutex_unlock(&race_lock);
}

static void *race_free(void *p)
{
    ga_free(p); /* not this thread's span: ga_span_free_remote */
    return NULL;
}

int ga_test_remote_free_hold(size_t n, unsigned pause_ms)
{
    ga_ensure_init();
    if (n < GA_TINY_SIZE || n > GA_MAX_SMALL_SIZE || ga_tls_mcache == &ga_dead_mcache ||
        race_span != NULL)
        return -1;
    /* Twice: the first fresh span goes back empty, which fills the class's
     * kept empty slot (or it was full), so the one under test is released. */
    int spc = ga_test_fresh_span(n);
    if (spc < 0 || ga_test_fresh_span(n) != spc)
        return -1;
    ga_mcache_t *mc = ga_tls_mcache;
    void *x = ga_malloc(n);
    ga_span_t *s = x != NULL ? ga_span_of((uintptr_t)x) : NULL;
    if (s == NULL || s != mc->alloc[spc] || s->alloc_count != 0 || s->freeindex != 1) {
        ga_free(x);
        return -1;
    }
    pthread_mutex_lock(&race_lock);
    race_span = s;
    race_spc = (unsigned)spc;
    race_state = 0;
    race_pause_ms = pause_ms;
    pthread_mutex_unlock(&race_lock);
    ga_test_remote_hook = race_hook;
    if (pthread_create(&race_thread, NULL, race_free, x) != 0) {
        ga_test_remote_hook = NULL;
        race_span = NULL;
        ga_free(x);
        return -1;
    }
    struct timespec ts;
    deadline_in(&ts, 60000);
    int rc = 0;
    pthread_mutex_lock(&race_lock);
    while (race_state == 0 && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&race_cond, &race_lock, &ts);
    int stopped = race_state == 1;
    pthread_mutex_unlock(&race_lock);
    if (!stopped) { /* the free never reached its count */
        ga_test_remote_free_finish();
        return -1;
    }
    return 0;
}

int ga_test_remote_free_release(void)
{
    ga_span_t *s = race_span;
    ga_mcache_t *mc = ga_tls_mcache;
    if (s == NULL || mc->alloc[race_spc] != s)
        return -1;
    /* This thread's fold takes the free's bit and finds the span empty:
     * it goes back (past the kept empty slot: release_empty). */
    mc->alloc[race_spc] = &ga_emptyspan;
    ga_mcentral_uncache_span(&ga_central[race_spc], s);
    if (atomic_load(&s->state) == GA_SPAN_PARTIAL)
        ga_mcentral_release_empty();
    return race_state == 1; /* back in the page heap, the free still half-done */
}

void ga_test_remote_free_finish(void)
{
    if (race_span == NULL)
        return;
    pthread_mutex_lock(&race_lock);
    if (race_state == 1)
        race_state = 2;
    pthread_cond_broadcast(&race_cond);
    pthread_mutex_unlock(&race_lock);
    pthread_join(race_thread, NULL);
    ga_test_remote_hook = NULL;
    race_span = NULL;
}

static int32_t remote_bits(const ga_span_t *s)
{
    int32_t n = 0;
    for (unsigned w = 0; w < s->nwords; w++)
        n += (int32_t)ga_popcount64(atomic_load(&s->remote_free[w]));
    return n;
}

int ga_test_remote_free_race(size_t n, unsigned pause_ms)
{
    if (ga_test_remote_free_hold(n, pause_ms) != 0)
        return -1;
    ga_mcache_t *mc = ga_tls_mcache;
    ga_mcentral_t *c = &ga_central[race_spc];
    int early = ga_test_remote_free_release();
    /* A new span of the class: first fit makes it from the run just freed. */
    ga_span_t *fresh = ga_mcentral_grow(c, mc, GA_HEAP_GROW);
    ga_test_remote_free_finish();
    int phantom = 0;
    if (fresh != NULL) {
        int32_t extra = atomic_load(&fresh->nremote) - remote_bits(fresh);
        if (extra != 0) { /* the late count landed in the new span: repair it */
            phantom = 1;
            atomic_fetch_sub(&fresh->nremote, extra);
        }
        ga_mcentral_uncache_span(c, fresh);
    }
    return early < 0 ? -1 : phantom ? 2 : early;
}

void ga_test_advance_clock(uint64_t ns) { atomic_fetch_add(&ga_clock_offset, ns); }

void ga_test_scavenge_for_growth(size_t npages)
{
    ga_ensure_init();
    ga_mheap_lock();
    ga_scavenge_before_growth_locked(npages);
    ga_mheap_unlock();
}

void ga_test_scavenge_tick(void)
{
    ga_ensure_init();
    ga_sweep_tick(NULL);
}

/* ---- multi-thread exercise ---------------------------------------------------- */

#define RING 4096
typedef struct shared_ring {
    pthread_mutex_t lock;
    void *slot[RING];
    size_t size[RING];
    unsigned n;
} shared_ring_t;

typedef struct worker {
    pthread_t tid;
    int iters;
    uint64_t rng;
    int corrupt;
    shared_ring_t *ring;
} worker_t;

static uint64_t next_rand(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

static unsigned char pattern(void *p) { return (unsigned char)(((uintptr_t)p >> 4) * 31u + 7u); }

static int check_and_free(void *p, size_t n)
{
    unsigned char want = pattern(p), *b = p;
    int bad = 0;
    for (size_t i = 0; i < n; i++)
        bad |= b[i] != want;
    ga_free(p);
    return bad;
}

static size_t random_size(uint64_t *rng)
{
    uint64_t r = next_rand(rng) % 1000;
    if (r < 300)
        return (size_t)(next_rand(rng) % 16);
    if (r < 900)
        return 16 + (size_t)(next_rand(rng) % 1024);
    if (r < 995)
        return 1024 + (size_t)(next_rand(rng) % 31744);
    return 32768 + (size_t)(next_rand(rng) % (512 << 10));
}

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    enum { LOCAL = 256 };
    void *mine[LOCAL] = {0};
    size_t sizes[LOCAL] = {0};
    for (int i = 0; i < w->iters; i++) {
        unsigned k = (unsigned)(next_rand(&w->rng) % LOCAL);
        if (mine[k] != NULL) {
            if (next_rand(&w->rng) & 1) {
                w->corrupt += check_and_free(mine[k], sizes[k]);
            } else { /* hand it to whichever thread pops it */
                pthread_mutex_lock(&w->ring->lock);
                if (w->ring->n < RING) {
                    w->ring->slot[w->ring->n] = mine[k];
                    w->ring->size[w->ring->n++] = sizes[k];
                    mine[k] = NULL;
                }
                pthread_mutex_unlock(&w->ring->lock);
                if (mine[k] != NULL)
                    w->corrupt += check_and_free(mine[k], sizes[k]);
            }
            mine[k] = NULL;
        }
        size_t n = random_size(&w->rng);
        void *p = (next_rand(&w->rng) % 8 == 0) ? ga_calloc(1, n) : ga_malloc(n);
        if (p == NULL) {
            w->corrupt++;
            continue;
        }
        memset(p, pattern(p), n);
        mine[k] = p;
        sizes[k] = n;
        pthread_mutex_lock(&w->ring->lock);
        void *q = NULL;
        size_t qn = 0;
        if (w->ring->n > 0 && next_rand(&w->rng) % 2 == 0) {
            q = w->ring->slot[--w->ring->n];
            qn = w->ring->size[w->ring->n];
        }
        pthread_mutex_unlock(&w->ring->lock);
        if (q != NULL)
            w->corrupt += check_and_free(q, qn);
    }
    /* Leave a quarter of the objects behind for the main thread. */
    for (unsigned k = 0; k < LOCAL; k++) {
        if (mine[k] == NULL)
            continue;
        pthread_mutex_lock(&w->ring->lock);
        bool handed = k % 4 == 0 && w->ring->n < RING;
        if (handed) {
            w->ring->slot[w->ring->n] = mine[k];
            w->ring->size[w->ring->n++] = sizes[k];
        }
        pthread_mutex_unlock(&w->ring->lock);
        if (!handed)
            w->corrupt += check_and_free(mine[k], sizes[k]);
    }
    return NULL;
}

int ga_test_threads(int nthreads, int iters, unsigned seed)
{
    static shared_ring_t ring = {.lock = PTHREAD_MUTEX_INITIALIZER};
    worker_t w[64];
    int corrupt = 0;
    if (nthreads > 64)
        nthreads = 64;
    ring.n = 0;
    for (int i = 0; i < nthreads; i++) {
        w[i] = (worker_t){.iters = iters, .rng = seed * 2654435761u + (uint64_t)i * 40503u + 1,
                          .ring = &ring};
        if (pthread_create(&w[i].tid, NULL, worker_main, &w[i]) != 0)
            return -1;
    }
    for (int i = 0; i < nthreads; i++) {
        pthread_join(w[i].tid, NULL);
        corrupt += w[i].corrupt;
    }
    while (ring.n > 0) {
        ring.n--;
        corrupt += check_and_free(ring.slot[ring.n], ring.size[ring.n]);
    }
    return corrupt;
}

unsigned long ga_test_check_slot_index(unsigned spc)
{
    ga_ensure_init();
    if (spc == 0 || spc >= ga_classes.nclasses)
        return 1;
    ga_span_t s;
    memset(&s, 0, sizeof s);
    s.base = (uintptr_t)1 << 30;
    s.elemsize = ga_classes.size[spc];
    s.nelems = ga_classes.nelems[spc];
    s.magic64 = ga_magic64(s.elemsize);
    unsigned long bad = 0;
    uint32_t bytes = ga_classes.npages[spc] << GA_PAGE_SHIFT;
    for (uint32_t off = 0; off < bytes; off++) {
        uint32_t idx;
        bool ok = ga_span_slot_of(&s, s.base + off, &idx);
        bool want = off % s.elemsize == 0 && off / s.elemsize < s.nelems;
        bad += ok != want || (ok && idx != off / s.elemsize);
    }
    return bad;
}

#endif
