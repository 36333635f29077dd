/* Walking memory back (Go's mgcsweep.go and mheap.reclaim, without a GC):
 * the one place that decides what to recover when pages run short, and
 * the periodic and background work that gives memory back. It sits above
 * the caches it walks (malloc.c -> mgcsweep.c -> mcache.c -> mcentral.c ->
 * mheap.c), so no lower layer calls up to recover pages: the page heap
 * only says it has none (ga_mheap_alloc with GA_HEAP_TRY).
 *
 * Recovery policy (ga_sweep_alloc, inline.h, then ga_sweep_recover), for
 * a new span of a class and for a large object alike:
 *  1. try: the heap's free runs, no growth (inline: nothing is saved for
 *     what follows until it fails);
 *  2. reclaim (GOALLOC=reclaim, Go 1.12's mheap.reclaim with
 *     reclaimCredit): the calling thread's cached spans whose objects are
 *     all freed, and the one empty span per class mcentral keeps, go back;
 *     pages recovered beyond the request are credit that pays for the next
 *     requests first; then try again;
 *  3. grow the heap (after the scavenger's release before growth);
 *  4. last resort before ENOMEM: every empty span this thread and mcentral
 *     hold, and every thread's page cache, whatever the credit says; then
 *     try again.
 * (Step 2's spans include the thread's page cache; a large malloc looks
 * there before step 1: malloc.c.)
 * Periodic work (ga_sweep_tick, one slow path in 16): a heap profile asked
 * for from outside, the cache's tiny byte count, its page cache if idle
 * for scavenge_delay, and the scavenger's
 * rate-limited tick with mcentral's purge of idle partial spans.
 * The background thread (scavenger=auto or background, mgcscavenge.c's
 * policy): the same purge and the scavenger's goal work, off the program's
 * threads. See malloc.c for the overview. */
#include <errno.h>
#include <signal.h>

#include "inline.h"

#define MS 1000000ull
#define BACKGROUND_QUANTUM 256u /* pages (2 MiB) per background step */
#define BACKGROUND_PERCENT 1u   /* of one CPU (scavenger=background) */
#define IDLE_WAKES 16u          /* auto: idle intervals (4 delays) before the thread ends */
#define LIVE_NAP (10 * MS)      /* with live=1 the thread wakes this often */

_Atomic bool ga_scavenger_wanted;
_Atomic bool ga_scavenger_running;
static _Atomic bool start_failed; /* pthread_create failed once (limits, seccomp) */

/* ---- recovery ------------------------------------------------------------------ */

/* Every span the calling thread caches and mcentral keeps with no live
 * object goes back to the page heap; returns the pages. */
static size_t reclaim_empty(void)
{
    size_t got = ga_mcache_reclaim_own();
    ga_mcentral_release_empty();
    return got;
}

/* Step 2: reclaims unless earlier reclaims' credit covers npages. */
static void reclaim(size_t npages)
{
    size_t need = ga_mheap_reclaim_need(npages);
    if (need != 0)
        ga_mheap_reclaimed(reclaim_empty(), need);
}

void *ga_sweep_recover(ga_mcache_t *mc, unsigned spc, size_t npages, size_t align)
{
    void *p;
    if (errno != ENOMEM)
        return NULL;
    size_t want = spc != 0 ? ga_classes.npages[spc] : npages;
    if (ga_opts.reclaim) {
        reclaim(want);
        if ((p = ga_sweep_attempt(mc, spc, npages, align, GA_HEAP_TRY)) != NULL)
            return p;
    }
    if ((p = ga_sweep_attempt(mc, spc, npages, align, GA_HEAP_GROW)) != NULL)
        return p;
    ga_mheap_reclaimed(reclaim_empty() + ga_mcache_flush_pagecaches(), SIZE_MAX);
    return ga_sweep_attempt(mc, spc, npages, align, GA_HEAP_TRY);
}

size_t ga_scavenge_all(void)
{
    ga_ensure_init();
    reclaim_empty();
    ga_mcache_flush_pagecaches();
    size_t n = ga_mcentral_purge(UINT64_MAX, true) * ga_sys_page_size() / GA_PAGE_SIZE;
    ga_mheap_lock();
    n += ga_mheap_scavenge_locked(SIZE_MAX, UINT64_MAX);
    ga_mheap_unlock();
    return n;
}

/* ---- periodic work -------------------------------------------------------------- */

void ga_sweep_tick(ga_mcache_t *mc)
{
    if (GA_UNLIKELY(ga_sample_rate != 0))
        ga_heap_profile_tick(); /* a profile asked for from outside (mprof.c) */
    if (mc != NULL) {
        ga_mcache_flush_tiny_requested(mc);
        ga_pagecache_flush_idle(&mc->pcache, true);
    }
    uint64_t cutoff = ga_scavenge_tick();
    if (cutoff != 0)
        ga_mcentral_purge(cutoff, false);
}

/* ---- the background thread -------------------------------------------------------- */

/* Every delay / 4 it releases the free slots of partial spans idle for the
 * delay and whatever exceeds the goal, in 2 MiB quanta with the heap lock
 * dropped between them; with live=1 it wakes every 10 ms to publish the
 * live file too, so that the file trails the last free by at most that.
 * With scavenger=background paced at about 1 % of one CPU and never ending
 * (Go >= 1.13); with scavenger=auto unpaced (the same kernel work glibc's
 * free does inline in munmap, on another core) and ending after IDLE_WAKES
 * intervals with nothing to do, to be started again when there is. */
static void *background_main(void *arg)
{
    (void)arg;
    bool paced = ga_opts.scavenger == GA_SCAVENGER_BACKGROUND;
    uint64_t sleep = 0, last_work = 0, idle_since = ga_sys_nanotime();
    for (;;) {
        uint64_t interval = ga_scavenge_interval_ns(), nap = sleep > interval ? sleep : interval;
        if (ga_opts.live && nap > LIVE_NAP) /* the live file trails the frees by at most that */
            nap = LIVE_NAP;
        ga_sys_sleep_ns(nap);
        uint64_t t0 = ga_sys_nanotime(), now = ga_now_ns();
        if (ga_opts.live)
            ga_live_tick(now);
        ga_mcache_flush_idle_pagecaches(); /* each waits for scavenge_delay itself */
        if (t0 - last_work < (sleep > interval ? sleep : interval))
            continue;
        last_work = t0;
        size_t work = 0, done, surplus;
        uint64_t cutoff = ga_scavenge_purge_cutoff(now);
        if (cutoff != 0)
            work += ga_mcentral_purge(cutoff, true);
        do {
            done = ga_scavenge_step(ga_now_ns(), BACKGROUND_QUANTUM, &surplus);
            work += done;
        } while (done >= BACKGROUND_QUANTUM && (!paced || ga_sys_nanotime() - t0 < MS));
        if (paced) { /* work w, then sleep w * 99: about 1 % of one CPU */
            sleep = (ga_sys_nanotime() - t0) * (100 - BACKGROUND_PERCENT) / BACKGROUND_PERCENT;
            continue;
        }
        if (work != 0 || surplus >= GA_SCAV_START_SURPLUS)
            idle_since = ga_sys_nanotime();
        if (ga_sys_nanotime() - idle_since >= IDLE_WAKES * interval ||
            ga_opts.scavenger != GA_SCAVENGER_AUTO) {
            atomic_store(&ga_scavenger_running, false);
            return NULL;
        }
    }
}

/* Starts the thread unless it runs. */
static void start_thread(void)
{
    bool no = false;
    if (!atomic_compare_exchange_strong(&ga_scavenger_running, &no, true))
        return;
    pthread_t t;
    pthread_attr_t attr;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old); /* the thread takes no signal */
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 64 << 10);
    if (pthread_create(&t, &attr, background_main, NULL) != 0) {
        atomic_store(&ga_scavenger_running, false);
        atomic_store(&start_failed, true); /* no retry on every free: slow paths only */
    }
    pthread_attr_destroy(&attr);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

void ga_scavenger_start(void)
{
    if (ga_opts.scavenger == GA_SCAVENGER_BACKGROUND)
        start_thread();
}

void ga_scavenger_start_wanted(void)
{
    /* Not while GOALLOC_PROFILE records every request: pthread_create's own
     * allocation (the new thread's TLS) would join the program's. */
    if (!atomic_exchange(&ga_scavenger_wanted, false) || atomic_load(&start_failed))
        return;
    if ((ga_opts.scavenger == GA_SCAVENGER_AUTO && !ga_profiling) ||
        ga_opts.scavenger == GA_SCAVENGER_BACKGROUND)
        start_thread();
}

void ga_scavenger_fork_child(void)
{
    atomic_store(&ga_scavenger_running, false); /* threads do not survive fork */
    atomic_store(&ga_scavenger_wanted, false);
    atomic_store(&start_failed, false);
}
