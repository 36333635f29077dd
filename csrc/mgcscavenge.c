/* Giving memory back (Go's mgcscavenge.go, and mheap.reclaim of Go 1.12).
 *
 * Policy. goalloc keeps the pages of free runs resident for reuse and
 * returns them to the OS (madvise MADV_DONTNEED by default, MADV_FREE on
 * request) when one of these holds:
 *  - idle: a free run has not grown for longer than GOALLOC=scavenge_delay
 *    (default 500 ms). Checked on slow paths (a span refill, a page-heap
 *    free) at most four times per delay, bounded per check, without a
 *    background thread; GOALLOC=scavenger=background moves this work to a
 *    thread paced at about 1 % of one CPU, as Go >= 1.13 does.
 *  - over the goal: retained memory (pages in use plus free pages not yet
 *    released) above GOALLOC=retain percent (default 110, Go's
 *    retainExtraPercent) of the recent peak of pages in use, the peak of
 *    this epoch and the last (an epoch is max(1 s, the delay); Go uses GC
 *    cycles). Checked on the same slow paths and, synchronously, whenever
 *    the heap is about to grow: then Go 1.12's scheme applies — release as
 *    much as the growth (at most the overage), in 2 MiB steps, and keep what
 *    a step released beyond the need as credit (scavengeCredit) that pays
 *    for the next growth first.
 *  - the hard limit GOALLOC=limit=BYTES (Go's GOMEMLIMIT): before handing
 *    out pages that would take the retained heap over it, release free
 *    pages of any age; fail with ENOMEM only if that is not enough.
 *  - malloc_trim: everything, now.
 * Pages are released from the highest address down while the page heap
 * allocates lowest address first, so the two rarely meet; the heap lock is
 * held across madvise, so no range is released while being handed out.
 * Released pages are known (the arenas' scav bits): accounting is exact and
 * calloc skips clearing pages released with MADV_DONTNEED.
 * Partial spans: the same idle rule and malloc_trim also release the OS
 * pages inside spans on the mcentral partial lists that only free slots
 * cover (random frees leave few spans entirely empty); those count in
 * ga_purged_os_pages until the span is taken again.
 *
 * Reclaim (Go 1.12 mheap.reclaim with reclaimCredit): before mapping more,
 * the page heap recovers the calling thread's cached spans whose objects
 * are all freed, and the one empty span per class mcentral keeps (other
 * uncached spans go back as soon as their last object is freed, see
 * mcentral.c); pages recovered beyond the request are credit.
 * Idle caches (Go's flushGen): ga_flush_gen advances each epoch; a thread
 * that enters a slow path after two epochs without one first hands all its
 * cached spans back. See malloc.c for the overview. */
#include <signal.h>

#include "internal.h"

#define PAGE ((uintptr_t)GA_PAGE_SIZE)
#define MS 1000000ull
#define TICK_BUDGET 8192u       /* pages (64 MiB) per slow-path check */
#define BACKGROUND_QUANTUM 256u /* pages (2 MiB) per background step */
#define BACKGROUND_PERCENT 1u   /* of one CPU */

_Atomic uint64_t ga_clock_offset;
_Atomic uint32_t ga_flush_gen;
static _Atomic uint64_t last_tick;
static _Atomic bool background_running;

uint64_t ga_now_ns(void)
{
    return ga_sys_nanotime() + atomic_load_explicit(&ga_clock_offset, memory_order_relaxed);
}

static uint64_t delay_ns(void) { return ga_opts.scavenge_delay * MS; }

static size_t min_size(size_t a, size_t b) { return a < b ? a : b; }

/* Goal for retained pages: retain% of the recent in-use peak. */
size_t ga_scavenge_goal_locked(void)
{
    size_t peak = ga_heap.peak_cur > ga_heap.peak_prev ? ga_heap.peak_cur : ga_heap.peak_prev;
    return (size_t)((unsigned __int128)peak * ga_opts.retain / 100);
}

static void epoch_locked(uint64_t now)
{
    uint64_t len = delay_ns() > 1000 * MS ? delay_ns() : 1000 * MS;
    if (now - ga_heap.epoch_start < len)
        return;
    ga_heap.peak_prev = ga_heap.peak_cur;
    ga_heap.peak_cur = ga_heap.pages_inuse;
    ga_heap.epoch_start = now;
    atomic_fetch_add_explicit(&ga_flush_gen, 1, memory_order_relaxed);
}

/* Releases idle runs and whatever exceeds the goal, at most budget pages. */
static size_t idle_work_locked(uint64_t now, size_t budget)
{
    epoch_locked(now);
    size_t done = 0;
    if (now > delay_ns())
        done = ga_mheap_scavenge_locked(budget, now - delay_ns());
    size_t retained = ga_mheap_retained_locked(), goal = ga_scavenge_goal_locked();
    if (retained > goal && done < budget)
        done += ga_mheap_scavenge_locked(min_size(retained - goal, budget - done), UINT64_MAX);
    return done;
}

static void *background_main(void *arg)
{
    (void)arg;
    uint64_t sleep = 0;
    for (;;) {
        uint64_t interval = delay_ns() / 4 > MS ? delay_ns() / 4 : MS;
        ga_sys_sleep_ns(sleep > interval ? sleep : interval);
        uint64_t t0 = ga_sys_nanotime(), now = ga_now_ns();
        if (ga_opts.live)
            ga_live_tick(now);
        if (now > delay_ns())
            ga_mcentral_purge(now - delay_ns(), true);
        size_t done;
        do { /* quanta until there is nothing idle, at the pace below */
            pthread_mutex_lock(&ga_heap.lock);
            done = idle_work_locked(ga_now_ns(), BACKGROUND_QUANTUM);
            pthread_mutex_unlock(&ga_heap.lock);
        } while (done == BACKGROUND_QUANTUM && ga_sys_nanotime() - t0 < MS);
        /* Work w, then sleep w * 99: about 1 % of one CPU. */
        sleep = (ga_sys_nanotime() - t0) * (100 - BACKGROUND_PERCENT) / BACKGROUND_PERCENT;
    }
    return NULL;
}

/* Starts the background scavenger if it is configured and not running.
 * Called from the library constructor and, after fork, from a tick. */
void ga_scavenger_start(void)
{
    bool no = false;
    if (ga_opts.scavenger != GA_SCAVENGER_BACKGROUND ||
        !atomic_compare_exchange_strong(&background_running, &no, true))
        return;
    pthread_t t;
    pthread_attr_t attr;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old); /* the thread takes no signal */
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &attr, background_main, NULL) != 0)
        atomic_store(&background_running, false);
    pthread_attr_destroy(&attr);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

void ga_scavenger_fork_child(void)
{
    atomic_store(&background_running, false); /* threads do not survive fork */
}

void ga_scavenge_tick(void)
{
    if (ga_opts.scavenger == GA_SCAVENGER_OFF && !ga_opts.live)
        return;
    uint64_t now = ga_now_ns(), last = atomic_load_explicit(&last_tick, memory_order_relaxed);
    if (ga_opts.live) /* the live statistics file (mlive.c) shares the clock reading */
        ga_live_tick(now);
    if (ga_opts.scavenger == GA_SCAVENGER_OFF)
        return;
    uint64_t interval = delay_ns() / 4 > MS ? delay_ns() / 4 : MS;
    if (now - last < interval || !atomic_compare_exchange_strong(&last_tick, &last, now))
        return;
    if (ga_opts.scavenger == GA_SCAVENGER_BACKGROUND) {
        ga_scavenger_start();
        return;
    }
    if (now > delay_ns())
        ga_mcentral_purge(now - delay_ns(), false);
    if (pthread_mutex_trylock(&ga_heap.lock) != 0)
        return; /* busy: the next tick will do it */
    idle_work_locked(now, TICK_BUDGET);
    pthread_mutex_unlock(&ga_heap.lock);
}

bool ga_scavenge_limit_locked(size_t npages)
{
    if (ga_opts.limit == 0)
        return true;
    size_t limit = ga_opts.limit / PAGE, retained = ga_mheap_retained_locked();
    if (retained + npages <= limit)
        return true;
    ga_mheap_scavenge_locked(retained + npages - limit, UINT64_MAX);
    return ga_mheap_retained_locked() + npages <= limit;
}

bool ga_scavenge_before_growth_locked(size_t npages)
{
    if (ga_opts.scavenger == GA_SCAVENGER_OFF)
        return true;
    size_t retained = ga_mheap_retained_locked(), goal = ga_scavenge_goal_locked();
    if (retained + npages <= goal)
        return true;
    size_t need = min_size(npages, retained + npages - goal);
    if (ga_heap.scav_credit >= need) {
        ga_heap.scav_credit -= need;
        return true;
    }
    need -= ga_heap.scav_credit;
    ga_heap.scav_credit = 0;
    size_t got = ga_mheap_scavenge_locked(need, UINT64_MAX);
    if (got > need)
        ga_heap.scav_credit = got - need;
    return true;
}

size_t ga_scavenge_all(void)
{
    ga_ensure_init();
    ga_mcache_reclaim_own();
    ga_mcentral_release_empty();
    size_t n = ga_mcentral_purge(UINT64_MAX, true) * ga_sys_page_size() / GA_PAGE_SIZE;
    pthread_mutex_lock(&ga_heap.lock);
    n += ga_mheap_scavenge_locked(SIZE_MAX, UINT64_MAX);
    pthread_mutex_unlock(&ga_heap.lock);
    return n;
}

void ga_reclaim(size_t npages)
{
    pthread_mutex_lock(&ga_heap.lock);
    if (ga_heap.reclaim_credit >= npages) {
        ga_heap.reclaim_credit -= npages;
        pthread_mutex_unlock(&ga_heap.lock);
        return;
    }
    size_t need = npages - ga_heap.reclaim_credit;
    ga_heap.reclaim_credit = 0;
    pthread_mutex_unlock(&ga_heap.lock);
    size_t got = ga_mcache_reclaim_own();
    ga_mcentral_release_empty(); /* mcentral's kept empty spans too: pages are needed */
    pthread_mutex_lock(&ga_heap.lock);
    ga_heap.reclaimed_total += got;
    if (got > need)
        ga_heap.reclaim_credit += got - need;
    pthread_mutex_unlock(&ga_heap.lock);
}
