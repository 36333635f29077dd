/* Giving memory back (Go's mgcscavenge.go, and mheap.reclaim of Go 1.12).
 *
 * Policy. goalloc keeps the pages of free runs resident for reuse up to a
 * goal and returns what exceeds it to the OS (madvise MADV_DONTNEED by
 * default, MADV_FREE on request):
 *  - the goal: GOALLOC=retain percent (default 110, Go's retainExtraPercent)
 *    of the pages in use now or of their peak over the goal window, this
 *    one and the last, whichever is more. The window is half of
 *    GOALLOC=scavenge_delay (default 500 ms), so the goal follows the
 *    in-use heap down within about the delay (Go: 110 % of a heap goal that
 *    follows the live heap after every GC). Hysteresis: released pages the
 *    heap hands out again within a window (REFAULT_PAGES or more) double
 *    the window, up to MAX_BACKOFF times; QUIET_WINDOWS quiet windows
 *    halve it again, so churn does not release and re-fault every cycle.
 *    Free runs idle for four windows go back even within the goal: the
 *    10 % slack is for reuse, not kept forever by a heap that stays put.
 *  - who checks it: slow paths (a span refill, one in 16; a span or large
 *    object going back to the page heap, ga_scavenge_freed), at most four
 *    times per delay, bounded per check, never waiting for the heap lock.
 *    A program that goes quiet makes no slow path: with scavenger=auto (the
 *    default) a free that leaves more than GA_SCAV_START_SURPLUS pages beyond
 *    retain% of the pages in use now asks for a thread, started by the next
 *    slow path that holds no lock (ga_scavenger_poll); it releases the
 *    surplus once the window has passed, unpaced, and ends when idle.
 *    scavenger=sync never starts it; scavenger=background starts it at
 *    start-up, paced at about 1 % of one CPU, as Go >= 1.13 does.
 *  - on growth, synchronously, Go 1.12's scheme: release as much as the
 *    growth (at most the overage), in 2 MiB steps, and keep what a step
 *    released beyond the need as credit (scavengeCredit) that pays for the
 *    next growth first.
 *  - the hard limit GOALLOC=limit=BYTES (Go's GOMEMLIMIT): before handing
 *    out pages that would take the retained heap over it, release free
 *    pages of any age; fail with ENOMEM only if that is not enough.
 *  - malloc_trim: everything, now.
 * Pages are released from the highest address down while the page heap
 * allocates lowest address first, so the two rarely meet; the heap lock is
 * held across madvise, so no range is released while being handed out.
 * Released pages are known (the arenas' scav bits): accounting is exact and
 * calloc skips clearing pages released with MADV_DONTNEED.
 * Partial spans: the slow-path checks, the thread and malloc_trim also
 * release the OS pages inside spans on the mcentral partial lists, idle
 * for the delay, that only free slots cover (random frees leave few spans
 * entirely empty); those count in ga_purged_os_pages until the span is
 * taken again. That purge is mcentral's (ga_mcentral_purge); this file
 * says when it is due, and the callers above mcentral do it.
 * Idle caches (Go's flushGen): ga_flush_gen advances every max(1 s, the
 * delay); a thread that enters a slow path after two epochs without one
 * first hands all its cached spans back (mcache.c).
 * Reclaim, the recovery policy of an allocation that finds no free pages,
 * and the background thread's body are mgcsweep.c's, above the caches
 * they walk. See malloc.c for the overview. */
#include "inline.h"

#define PAGE ((uintptr_t)GA_PAGE_SIZE)
#define MS 1000000ull
#define TICK_BUDGET 8192u       /* pages (64 MiB) per slow-path check */
#define REFAULT_PAGES 256u      /* pages re-used in a window that widen it (2 MiB) */
#define MAX_BACKOFF 2u          /* the window widens at most 4 times */
#define QUIET_WINDOWS 8u        /* windows without re-use before it narrows again */

_Atomic uint64_t ga_clock_offset;
_Atomic uint32_t ga_flush_gen;
static _Atomic uint64_t last_tick;

uint64_t ga_now_ns(void)
{
    return ga_sys_nanotime() + atomic_load_explicit(&ga_clock_offset, memory_order_relaxed);
}

static uint64_t delay_ns(void) { return ga_opts.scavenge_delay * MS; }

uint64_t ga_scavenge_interval_ns(void) { return delay_ns() / 4 > MS ? delay_ns() / 4 : MS; }

static size_t min_size(size_t a, size_t b) { return a < b ? a : b; }

static size_t max_size(size_t a, size_t b) { return a > b ? a : b; }

static size_t percent(size_t pages) { return (size_t)((unsigned __int128)pages * ga_opts.retain / 100); }

/* Goal for retained pages: retain% of the pages in use now, or of their
 * peak over the goal window (this one and the last), whichever is more:
 * the goal follows the in-use heap down within two windows. */
size_t ga_scavenge_goal_locked(void)
{
    ga_assert_held(&ga_heap.lock);
    return percent(max_size(ga_heap.pages_inuse, max_size(ga_heap.peak_cur, ga_heap.peak_prev)));
}

/* The goal window, (delay / 2) << backoff: pages the scavenger released and
 * the heap handed out again within a window (released too early: churn)
 * widen it, up to 4 times; QUIET_WINDOWS windows without narrow it again. */
static void window_locked(uint64_t now)
{
    ga_assert_held(&ga_heap.lock);
    uint64_t len = (delay_ns() / 2 > MS ? delay_ns() / 2 : MS) << ga_heap.backoff;
    if (now - ga_heap.flush_start >= (delay_ns() > 1000 * MS ? delay_ns() : 1000 * MS)) {
        ga_heap.flush_start = now;
        atomic_fetch_add_explicit(&ga_flush_gen, 1, memory_order_relaxed);
    }
    if (now - ga_heap.epoch_start < len)
        return;
    if (ga_heap.refault_window >= REFAULT_PAGES) {
        ga_heap.backoff += ga_heap.backoff < MAX_BACKOFF;
        ga_heap.quiet = 0;
    } else if (ga_heap.backoff > 0 && ++ga_heap.quiet >= QUIET_WINDOWS) {
        ga_heap.backoff--;
        ga_heap.quiet = 0;
    }
    ga_heap.refault_window = 0;
    /* A tick more than a window late: the last window is over too. */
    ga_heap.peak_prev = now - ga_heap.epoch_start >= 2 * len ? ga_heap.pages_inuse : ga_heap.peak_cur;
    ga_heap.peak_cur = ga_heap.pages_inuse;
    ga_heap.epoch_start = now;
}

/* Releases free runs idle for four windows (within the goal too: the
 * slack of a heap that stays put) and what exceeds the goal, at most
 * budget pages. */
static size_t goal_work_locked(uint64_t now, size_t budget)
{
    ga_assert_held(&ga_heap.lock);
    window_locked(now);
    uint64_t idle = (2 * delay_ns()) << ga_heap.backoff;
    size_t done = now > idle ? ga_mheap_scavenge_locked(budget, now - idle) : 0;
    size_t retained = ga_mheap_retained_locked(), goal = ga_scavenge_goal_locked();
    if (retained <= goal || done >= budget)
        return done;
    return done + ga_mheap_scavenge_locked(min_size(retained - goal, budget - done), UINT64_MAX);
}

/* Free pages not yet released beyond retain% of the pages in use now. */
static size_t surplus_now_locked(void)
{
    ga_assert_held(&ga_heap.lock);
    size_t retained = ga_mheap_retained_locked(), goal = percent(ga_heap.pages_inuse);
    return retained > goal ? retained - goal : 0;
}

size_t ga_scavenge_step(uint64_t now, size_t budget, size_t *surplus)
{
    ga_lock(&ga_heap.lock);
    size_t done = goal_work_locked(now, budget);
    *surplus = surplus_now_locked();
    ga_unlock(&ga_heap.lock);
    return done;
}

uint64_t ga_scavenge_purge_cutoff(uint64_t now) { return now > delay_ns() ? now - delay_ns() : 0; }

/* Bounded work of a slow path whose rate-limited turn it is: releases
 * what exceeds the goal; with scavenger=auto, asks for the thread when the
 * surplus over the pages in use now is large (it will be beyond the goal
 * once the window has passed, with no slow path left to see it). */
static void sync_work(uint64_t now)
{
    if (ga_trylock(&ga_heap.lock) != 0)
        return; /* busy: the next tick will do it */
    goal_work_locked(now, TICK_BUDGET);
    bool want = ga_opts.scavenger == GA_SCAVENGER_AUTO && surplus_now_locked() >= GA_SCAV_START_SURPLUS;
    ga_unlock(&ga_heap.lock);
    if (want && !atomic_load_explicit(&ga_scavenger_running, memory_order_relaxed))
        atomic_store_explicit(&ga_scavenger_wanted, true, memory_order_relaxed);
}

static bool tick_due(uint64_t now)
{
    uint64_t last = atomic_load_explicit(&last_tick, memory_order_relaxed);
    return now - last >= ga_scavenge_interval_ns() && atomic_compare_exchange_strong(&last_tick, &last, now);
}

uint64_t ga_scavenge_tick(void)
{
    if (ga_opts.scavenger == GA_SCAVENGER_OFF && !ga_opts.live)
        return 0;
    uint64_t now = ga_now_ns();
    if (ga_opts.live) /* the live statistics file (mlive.c) shares the clock reading */
        ga_live_tick(now);
    if (ga_opts.scavenger == GA_SCAVENGER_OFF || !tick_due(now))
        return 0;
    if (ga_opts.scavenger == GA_SCAVENGER_BACKGROUND) {
        /* not running (a fork child): the next poll starts it */
        if (!atomic_load_explicit(&ga_scavenger_running, memory_order_relaxed))
            atomic_store_explicit(&ga_scavenger_wanted, true, memory_order_relaxed);
        return 0;
    }
    sync_work(now);
    return ga_scavenge_purge_cutoff(now);
}

size_t ga_scavenge_surplus_locked(void) { return surplus_now_locked(); }

void ga_scavenge_freed(uint64_t now, size_t surplus)
{
    if (ga_opts.live)
        ga_live_tick(now);
    if (ga_opts.scavenger == GA_SCAVENGER_AUTO && surplus >= GA_SCAV_START_SURPLUS &&
        !atomic_load_explicit(&ga_scavenger_running, memory_order_relaxed) &&
        !atomic_load_explicit(&ga_scavenger_wanted, memory_order_relaxed))
        atomic_store_explicit(&ga_scavenger_wanted, true, memory_order_relaxed);
    if (ga_opts.scavenger == GA_SCAVENGER_OFF || ga_opts.scavenger == GA_SCAVENGER_BACKGROUND ||
        !tick_due(now))
        return;
    sync_work(now); /* no mcentral purge: the caller may hold an mcentral lock */
}

bool ga_scavenge_limit_locked(size_t npages)
{
    ga_assert_held(&ga_heap.lock);
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
    ga_assert_held(&ga_heap.lock);
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
