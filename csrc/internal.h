/* Declarations of goalloc's files for one another, grouped by the file
 * that defines them: first the allocation ladder from the API down to the
 * OS (malloc.c -> mgcsweep.c -> mcache.c -> mcentral.c / mpagecache.c ->
 * mspan.c / mheap.c / mgcscavenge.c -> mfixalloc.c -> mem_linux.c; a file
 * calls only its own rung and lower ones, tests/test_layering.py checks
 * it), then start-up,
 * statistics and diagnostics, which reach across. Types are in types.h,
 * the inline fast paths in inline.h. See malloc.c for the overview. */
#ifndef GA_INTERNAL_H
#define GA_INTERNAL_H

#include <errno.h>  /* what mem.h's inline functions use, declared with */
#include <unwind.h> /* default visibility: they are libc's and libgcc's */

#include "mstats.h"
#include "types.h"

/* Everything declared below is internal to the library: telling the
 * compiler so lets it reach globals PC-relatively instead of through the
 * GOT (one load less per access on the fast paths). */
#pragma GCC visibility push(hidden)

#include "mem.h" /* the OS interface, the ladder's lowest rung */

/* ------------------------------------------------------------------------
 * The API (malloc.c)
 * ---------------------------------------------------------------------- */
void ga_canary_init(void); /* malloc.c: the process's random canary key */
/* free after checking that n (and align, 0 = malloc's) fit the object; fn
 * names the call in a misuse report (malloc.c; free_sized, sized delete). */
void ga_free_sized_checked(void *p, size_t align, size_t n, const char *fn);

/* ------------------------------------------------------------------------
 * Walking memory back: recovery, periodic and background work (mgcsweep.c)
 * ---------------------------------------------------------------------- */
/* The allocator's recovery policy (try, reclaim, grow, last resort) after
 * its first step, the try of ga_sweep_alloc (inline.h), failed: the next
 * slot of class spc for mc, or (spc == 0) a large span of npages pages
 * aligned to align pages. NULL with errno = ENOMEM. */
void *ga_sweep_recover(struct ga_mcache *mc, unsigned spc, size_t npages, size_t align);
/* The periodic work (mc NULL: none of a cache's). */
void ga_sweep_tick(struct ga_mcache *mc);
/* Releases every free page now (malloc_trim); returns pages released. */
size_t ga_scavenge_all(void);
void ga_scavenger_fork_child(void);
void ga_scavenger_start(void); /* scavenger=background: the constructor starts it */
/* The thread runs / a free or a tick asked for it (mgcscavenge.c sets it;
 * the next slow path that holds no lock starts it: ga_scavenger_poll). */
extern _Atomic bool ga_scavenger_running;
extern _Atomic bool ga_scavenger_wanted;
void ga_scavenger_start_wanted(void);

/* ------------------------------------------------------------------------
 * Per-thread caches (mcache.c)
 * ---------------------------------------------------------------------- */
void ga_mcache_span_freed(struct ga_mcache *mc, ga_span_t *s);
#if defined(GA_TESTING)
/* testing.c: called by ga_mcache_span_freed in the middle of its move of a
 * span from the full to the avail list (NULL: nothing). */
extern void (*ga_test_cache_hook)(void);
#endif
extern ga_mcache_t ga_empty_mcache; /* threads that have not allocated yet */
extern ga_mcache_t ga_dead_mcache;  /* threads whose cache was released at exit */
#if defined(GA_OVERRIDE)
extern __thread ga_mcache_t *ga_tls_mcache __attribute__((tls_model("initial-exec")));
#else
extern __thread ga_mcache_t *ga_tls_mcache;
#endif

void ga_mcache_init(void);
/* The calling thread's mcache, creating it on first use; the shared
 * locked cache (with *locked set) for threads past their exit destructor. */
ga_mcache_t *ga_mcache_get_slow(bool *locked);
void ga_mcache_put_shared(void);
void *ga_mcache_next_free(ga_mcache_t *mc, unsigned spc, ga_heap_how_t how);
/* Adds mc's tiny requested bytes to the class counter. REQUIRES: mc is
 * the caller's own (or the shared one, locked). */
void ga_mcache_flush_tiny_requested(ga_mcache_t *mc);
void ga_mcache_release_all(ga_mcache_t *mc);
/* Makes s the current span of class spc in mc (owned, CACHED). */
void ga_mcache_set_current(ga_mcache_t *mc, unsigned spc, ga_span_t *s);
/* The thread-exit destructor: releases mc and marks the thread dead. */
void ga_mcache_destroy(void *mc);
void ga_mcache_exit_thread(void);
/* Folds the calling thread's cached spans and returns those with no live
 * object to the page heap; returns the pages recovered. */
size_t ga_mcache_reclaim_own(void);
void ga_mcache_release_tiny(ga_mcache_t *mc);
/* Checks every mcache; adds the number of spans they hold to *ncached,
 * and of their page caches' to *npcached. */
int ga_mcache_check_all(size_t *ncached, size_t *npcached, char *msg, size_t len);
void ga_mcache_lock_all(void);
void ga_mcache_unlock_all(void);
void ga_mcache_fork_child(void);
/* Every mcache's unflushed tiny requested bytes. REQUIRES: the mcache locks. */
uint64_t ga_mcache_tiny_requested_locked(void);
/* Every thread's page cache back to the heap (malloc_trim, before ENOMEM);
 * those idle for scavenge_delay (the background thread); returns pages. */
size_t ga_mcache_flush_pagecaches(void);
size_t ga_mcache_flush_idle_pagecaches(void);
/* Large mallocs the page caches served. REQUIRES: the mcache locks. */
uint64_t ga_mcache_pagecache_hits_locked(void);

/* ------------------------------------------------------------------------
 * Central lists (mcentral.c)
 * ---------------------------------------------------------------------- */
extern ga_mcentral_t ga_central[GA_NUM_SPC];
void ga_mcentral_init(void);
/* Hands mc up to want spans with a free slot, linked through next; NULL
 * with errno = ENOMEM when there is none. */
ga_span_t *ga_mcentral_cache_span(ga_mcentral_t *c, struct ga_mcache *mc, unsigned want,
                                  ga_heap_how_t how);
ga_span_t *ga_mcentral_grow(ga_mcentral_t *c, struct ga_mcache *mc, ga_heap_how_t how);
void ga_mcentral_uncache_span(ga_mcentral_t *c, ga_span_t *s);
void ga_mcentral_remote_transition(ga_span_t *s);
/* Checks both lists; adds their lengths to *npartial and *nfull. */
int ga_mcentral_check_locked(ga_mcentral_t *c, size_t *npartial, size_t *nfull, char *msg,
                             size_t len);
void ga_mcentral_release_span(ga_span_t *s);
/* Releases to the OS the OS pages of partial spans that hold no live object
 * (spans on the list since cutoff or earlier; wait: block on the locks
 * instead of skipping busy ones). Returns OS pages released. */
size_t ga_mcentral_purge(uint64_t cutoff, bool wait);
/* Returns the kept empty spans to the page heap (malloc_trim). */
void ga_mcentral_release_empty(void);
extern _Atomic size_t ga_purged_os_pages; /* OS pages released inside partial spans */
void ga_mcentral_lock_all(void);
void ga_mcentral_unlock_all(void);
void ga_mcentral_fork_child(void);

/* ------------------------------------------------------------------------
 * Per-thread page caches (mpagecache.c), beside mcentral: above the heap
 * ---------------------------------------------------------------------- */
/* A span of npages pages from mc's page cache, LARGE, or NULL (none of
 * that size, or the cache busy). REQUIRES: mc is the caller's own. */
ga_span_t *ga_pagecache_get(ga_mcache_t *mc, size_t npages);
/* Keeps large span s (CLAIMED by the caller's free) in mc's page cache,
 * the oldest entries going back to the heap to make room; false (s
 * untouched) when s is too large for it or the cache is busy.
 * REQUIRES: mc is the caller's own. */
bool ga_pagecache_put(ga_mcache_t *mc, ga_span_t *s);
/* busy for the all-caches walks: waits for it / lets it go. */
void ga_pagecache_hold(ga_pagecache_t *pc);
bool ga_pagecache_try_hold(ga_pagecache_t *pc);
void ga_pagecache_let_go(ga_pagecache_t *pc);
/* Every entry back to the page heap; returns the pages. _held: busy is
 * held and let go here; flush waits for busy; flush_own tries it (the
 * caller's own cache: nothing when it is busy). */
size_t ga_pagecache_flush_held(ga_pagecache_t *pc);
size_t ga_pagecache_flush(ga_pagecache_t *pc);
size_t ga_pagecache_flush_own(ga_mcache_t *mc);
/* Flushes pc if no malloc or free used it between the last check, at
 * least scavenge_delay ago, and now (own: the caller's cache, tried). */
size_t ga_pagecache_flush_idle(ga_pagecache_t *pc, bool own);
/* Checks pc's invariants (types.h); adds its entries to *nspans.
 * REQUIRES: busy held. */
int ga_pagecache_check_held(const ga_pagecache_t *pc, size_t *nspans, char *msg, size_t len);

/* ------------------------------------------------------------------------
 * Spans (mspan.c)
 * ---------------------------------------------------------------------- */
extern ga_span_t ga_emptyspan; /* sentinel: no free slot, never owned */

void ga_span_init_small(ga_span_t *s, unsigned spc);
uint32_t ga_span_next_free_index(ga_span_t *s);
void ga_span_fold(ga_span_t *s);
extern bool ga_cpu_popcnt; /* the CPU has POPCNT (fold's fast copy) */
bool ga_span_has_pending_frees(ga_span_t *s);
/* Another thread's free of slot idx; true when mcentral must look at s
 * now (ga_mcentral_remote_transition). */
bool ga_span_free_remote(ga_span_t *s, uint32_t idx, uintptr_t p, const char *fn);
/* Waits until the remote frees into s that a fold already took have
 * counted themselves (ga_span_free_remote). REQUIRES: s has no live object
 * and nobody folds it (CLAIMED). */
void ga_span_wait_remote_counts(ga_span_t *s);
/* Adds s's ncross to its class's cross_frees (any thread; fold, release). */
void ga_span_flush_cross(ga_span_t *s);
/* Fork child of a multi-threaded parent: counts the remote frees the lost
 * threads left half-done. */
void ga_span_fork_child_settle(void);
#if defined(GA_TESTING)
/* testing.c: called by ga_span_free_remote between its bit and its count
 * (NULL: nothing). */
extern void (*ga_test_remote_hook)(ga_span_t *s);
#endif
GA_COLD void ga_span_free_local_misuse(ga_span_t *s, uintptr_t p, const char *fn);
int ga_span_check(ga_span_t *s, char *msg, size_t len);
bool ga_span_bits_alloc(ga_span_t *s, unsigned nelems, bool tiny);
void ga_span_bits_free(ga_span_t *s);
void ga_span_bits_lock(void);
void ga_span_bits_unlock(void);
void ga_span_bits_fork_child(void);
/* Doubly linked span lists through next/prev (mspan.c). */
void ga_span_list_push(ga_span_list_t *l, ga_span_t *s, bool back);
void ga_span_list_remove(ga_span_list_t *l, ga_span_t *s);

/* ------------------------------------------------------------------------
 * Page heap (mheap.c)
 * ---------------------------------------------------------------------- */
extern ga_mheap_t ga_heap;
extern _Atomic(ga_heap_arena_t *) ga_arena_map[GA_ARENA_L2_ENTRIES];
void ga_mheap_init(void);
/* Page-bit operations over [base, base + npages pages) across arenas:
 * which = GA_BITS_SCAV or GA_BITS_DIRTY; returns how many were set before. */
enum { GA_BITS_SCAV, GA_BITS_DIRTY };
enum { GA_BITS_COUNT, GA_BITS_SET, GA_BITS_CLEAR };
size_t ga_mheap_page_bits(uintptr_t base, size_t npages, int which, int op);
/* Releases free pages to the OS from the highest address down: whole runs
 * whose unused_since <= cutoff, at least `pages` pages if there are that
 * many, in 2 MiB steps. Returns pages released. REQUIRES: heap lock. */
size_t ga_mheap_scavenge_locked(size_t pages, uint64_t cutoff);
/* Pages in use + free pages not released: what the heap keeps resident. */
size_t ga_mheap_retained_locked(void);
/* Allocates npages pages aligned to align_pages pages; NULL with errno =
 * ENOMEM when out of memory. The span comes back with state, spc and map
 * entries set; when needzero is false its bytes are known to be zero.
 * Takes the heap lock. */
ga_span_t *ga_mheap_alloc(size_t npages, size_t align_pages, uint8_t state, uint16_t spc,
                          ga_heap_how_t how);
/* Reclaim credit (Go's reclaimCredit): pages still to recover for a
 * request of npages after what earlier reclaims recovered beyond theirs;
 * then ga_mheap_reclaimed(got, need) books what a reclaim recovered. Take
 * the heap lock. */
size_t ga_mheap_reclaim_need(size_t npages);
void ga_mheap_reclaimed(size_t got, size_t need);
/* Returns an in-use span's pages to the page heap. Takes the heap lock. */
void ga_mheap_free(ga_span_t *s);
/* Memory for metadata carved from free heap pages, for when mmap fails
 * (RLIMIT_AS): never returned. The _locked form REQUIRES the heap lock;
 * the other takes it. NULL when no free run is large enough. */
void *ga_mheap_alloc_meta_locked(size_t bytes);
void *ga_mheap_alloc_meta(size_t bytes);
/* Large realloc in place: shrink to npages or grow into the following free
 * run. Returns true on success. Takes the heap lock. */
bool ga_mheap_resize(ga_span_t *s, size_t npages);
/* Fills state_spans[state] with the number of in-use spans per state. */
int ga_mheap_check_locked(size_t *state_spans, char *msg, size_t len);
void ga_mheap_lock(void);
void ga_mheap_unlock(void);
void ga_mheap_fork_child(void);
/* GOALLOC=protect's malloc(0): a distinct address in a reserved region
 * that faults on any access (NULL once the region is used up), and
 * whether p is one. */
void *ga_mheap_zero_alloc(void);
bool ga_is_zero_object(uintptr_t p);
/* Calls fn on every in-use span, in address order. REQUIRES: heap lock. */
void ga_mheap_for_each_span_locked(void (*fn)(ga_span_t *s, void *arg), void *arg);

/* ------------------------------------------------------------------------
 * Scavenging policy (mgcscavenge.c)
 * ---------------------------------------------------------------------- */
size_t ga_scavenge_goal_locked(void); /* retained goal in pages */
uint64_t ga_now_ns(void);                 /* monotonic clock (+ test offset) */
extern _Atomic uint64_t ga_clock_offset;  /* tests move time forward */
extern _Atomic uint32_t ga_flush_gen;     /* advances once per scavenge delay */
/* Pages (32 MiB) beyond retain% of the pages in use that start the auto
 * thread. */
#define GA_SCAV_START_SURPLUS 4096u
/* Bounded idle work of a slow path, rate-limited, never blocking on the
 * heap lock. Returns the cutoff (nonzero) when mcentral's purge of partial
 * spans idle since then is due too: the caller, above mcentral, does it. */
uint64_t ga_scavenge_tick(void);
/* The cutoff of that purge at time now (0: none yet). */
uint64_t ga_scavenge_purge_cutoff(uint64_t now);
uint64_t ga_scavenge_interval_ns(void); /* between two ticks: delay / 4, >= 1 ms */
/* One step of the thread's work: releases idle runs and what exceeds the
 * goal, at most budget pages; *surplus = ga_scavenge_surplus_locked()
 * after. Takes the heap lock. Returns pages released. */
size_t ga_scavenge_step(uint64_t now, size_t budget, size_t *surplus);
/* Before the heap maps npages more: honour the hard limit and the
 * retained goal (REQUIRES: heap lock). Returns false when the limit cannot
 * be kept. */
bool ga_scavenge_before_growth_locked(size_t npages);
/* Hard limit check before handing out npages (REQUIRES: heap lock). */
bool ga_scavenge_limit_locked(size_t npages);
/* A span or large object went back to the page heap (ga_mheap_free, after
 * the heap lock is released; other locks may be held): publishes the live
 * file, releases what exceeds the goal (bounded, rate-limited) and, with
 * scavenger=auto, asks for the thread when the surplus is large. */
void ga_scavenge_freed(uint64_t now, size_t surplus);
/* Free pages not yet released beyond retain% of the pages in use now
 * (REQUIRES: heap lock). */
size_t ga_scavenge_surplus_locked(void);

/* ------------------------------------------------------------------------
 * Fixed-size allocators for metadata (mfixalloc.c)
 * ---------------------------------------------------------------------- */
void ga_fixalloc_init(ga_fixalloc_t *f, size_t size, void *(*fallback)(size_t bytes));
void *ga_fixalloc_alloc(ga_fixalloc_t *f); /* zeroed; caller serialises */
void ga_fixalloc_free(ga_fixalloc_t *f, void *p);
void *ga_persistent_alloc(size_t size);    /* never freed; takes its own lock */
void ga_persistent_lock(void);
void ga_persistent_unlock(void);
void ga_persistent_fork_child(void);

/* The OS (mem_linux.c): mem.h, included above. */

/* ------------------------------------------------------------------------
 * Size classes at run time (msize.c, sizeclass_file.c)
 * ---------------------------------------------------------------------- */
extern ga_classes_t ga_classes;
void ga_classes_load(const ga_sizeclass_table_t *t);
/* Start-up: loads the table GOALLOC chose, or the default after a message. */
void ga_classes_init(void);
/* Checks t's sizes and page counts against the rules of msize.c for
 * malloc alignment align (8 or 16), then derives its magics and lookup
 * tables. Returns 0, or -1 with the reason in why and the offending class
 * in *bad (0 when the reason concerns the whole table). */
int ga_sizeclass_table_complete(ga_sizeclass_table_t *t, unsigned align, unsigned *bad, char *why,
                                size_t len);
/* A checked table from a name (go1.12, go1.16) or a file path; 0, or -1
 * with the reason in why. t->name points to spec. */
int ga_sizeclass_resolve(const char *spec, unsigned align, ga_sizeclass_table_t *t, char *why,
                         size_t len);
/* sizeclass_file.c: a checked table from a TSV file; why: "line N: ...". */
int ga_sizeclass_file_read(const char *path, unsigned align, ga_sizeclass_table_t *t, char *why,
                           size_t len);

/* ------------------------------------------------------------------------
 * Options, start-up and fork (init.c)
 * ---------------------------------------------------------------------- */
/* Derived from the options by ga_apply_options: the fast paths' bounds.
 * malloc's inline path serves n with n - ga_fast_lo <= ga_fast_span; the
 * hardening options close it (everything then goes through malloc_slow). */
extern size_t ga_fast_lo, ga_fast_span;
/* ... and 1 KiB < n <= 32 KiB with n - GA_SMALL_SIZE_MAX - 1 < ga_fast_medium
 * (0 when hardened or before start-up). */
extern size_t ga_fast_medium;
extern bool ga_hardened;
/* ga_hardened or heap-profile sampling: malloc_slow's one test for both */
extern bool ga_slow_special;
/* Start-up only (ga_init_slow), never changed after: GOALLOC=canary's
 * bytes after each object (GA_CANARY_TAIL, or 0 when off) and
 * GOALLOC=protect. Objects made with either must be freed with it. */
extern size_t ga_canary;
extern bool ga_protect;
void ga_apply_options(void);
/* The same, at run time (mallopt, profile restart): also opens or closes
 * the inline free path of the cached spans. REQUIRES: every allocator lock. */
void ga_apply_options_locked(void);

extern ga_options_t ga_opts;
extern _Atomic int ga_initialized;
extern size_t ga_tiny_limit; /* requests below it take the tiny path: 16 or 0 */
void ga_init_slow(void);
void ga_parse_options(const char *s); /* reports bad items on stderr */
void ga_option_refused(const char *key, const char *value, const char *why, const char *instead);
long long ga_option_value(const char *key);
unsigned ga_option_count(void);
const char *ga_option_key(unsigned i);
void ga_lock_all(void);   /* every allocator lock, in the documented order */
void ga_unlock_all(void);

/* ------------------------------------------------------------------------
 * Statistics (mstats.c; the list of counters is in mstats.h)
 * ---------------------------------------------------------------------- */
extern ga_class_counters_t ga_class_counters[GA_NUM_SPC];
extern _Atomic uint64_t ga_large_mallocs, ga_large_frees;
extern _Atomic uint64_t ga_pagecache_hits_released; /* by caches released since */
/* Every page cache's pages (low bits) and objects (from bit
 * GA_PCACHE_HELD_SHIFT), for the statistics that read no cache. */
extern _Atomic uint64_t ga_pagecache_held;
#define GA_PCACHE_HELD_SHIFT 40
extern _Atomic size_t ga_metadata_bytes;
void ga_census_locked(ga_census_t *c);
void ga_stats_write_at_exit(void);
/* tmpl with every %p replaced by the pid, into out; false (out holds a
 * prefix) when the path does not fit in cap bytes. */
bool ga_path_with_pid(const char *tmpl, char *out, size_t cap);
/* At exit, for variable var (GOALLOC_STATS, GOALLOC_PROFILE): writes
 * write_doc's document (it returns 0 or a failed write's errno value, -1
 * when it has none) into the file of template tmpl, opened by
 * ga_sys_open_file; a path too long, a file that cannot be opened or a
 * failed write are each reported in one line on stderr. */
void ga_write_file_at_exit(const char *var, const char *tmpl, int (*write_doc)(int fd));
void ga_stats_fork_child(void);
/* The figures of ga_stats_snapshot as far as they can be had without a
 * lock or a heap walk (the live view, mlive.c): objects count when their
 * span is folded, tiny objects by 16-byte block, and figures that need the
 * census are GA_LIVE_UNAVAILABLE. classes: nrows x GA_STAT_NCLASS. */
void ga_stats_quick(uint64_t *totals, uint64_t *classes, unsigned nrows);
/* Per-class peaks (mstats.c): a span of class spc left or re-entered the
 * page heap (heap lock held). */
void ga_stats_span_alloc_locked(unsigned spc, size_t npages);
void ga_stats_span_free_locked(unsigned spc, size_t npages);

/* ------------------------------------------------------------------------
 * Size profile and sampled heap profile (mprof.c, pprof.c)
 * ---------------------------------------------------------------------- */
extern bool ga_profiling;        /* set at start-up (tests: ga_prof_restart) */
void ga_prof_init(const char *path);
/* Records a new object of n requested bytes; returns ptr. */
void *ga_prof_new(void *ptr, size_t n);
/* Records the end of live object p of span s (before it is freed). */
void ga_prof_free(ga_span_t *s, uintptr_t p);
/* realloc in place: p now holds a request of n bytes. */
void ga_prof_resize(ga_span_t *s, uintptr_t p, size_t n);
/* Releases s's request table (with its bitmaps). */
void ga_prof_span_free(ga_span_t *s);
void ga_prof_write_at_exit(void);
int ga_prof_restart(int on);
extern uint64_t ga_sample_rate;   /* 0: off (set at start-up) */
void ga_prof_sample_init(const char *path);
/* Tiny and large allocations (the slow path): counts n's bytes down and
 * records p when the count crosses zero; returns p (in tail position, the
 * walk has malloc's frames less to unwind). */
void *ga_prof_sample_bytes(void *p, size_t n);
/* Small class spc (REQUIRES: mc is this thread's, or the shared cache
 * held): before taking an object, whether it is to be sampled; after,
 * the window is cut for the next one. The refill's common case is
 * inline (ga_prof_sample_due and _cut, inline.h); these do the rest. */
bool ga_prof_sample_due_slow(ga_mcache_t *mc, unsigned spc);
void ga_prof_sample_cut_slow(ga_mcache_t *mc, unsigned spc);
/* Something else folded mc's current span of class spc, which reset its
 * window (it was window before): counts what the cut window handed out
 * and cuts the new one. */
void ga_prof_sample_recut(ga_mcache_t *mc, unsigned spc, uint64_t window);
/* Records small object p of n requested bytes as a sample; returns p. */
void *ga_prof_sample_record(void *p, size_t n);
/* The free of an object whose span holds a sample (ga_prof_sample_free). */
void ga_prof_sample_free_slow(ga_span_t *s, uintptr_t p);
/* The buckets (REQUIRES: prof_lock), newest first. */
ga_bucket_t *ga_prof_buckets_locked(void);
/* Go's scaleHeapSample: the factor by which count sampled objects of
 * bytes in all stand for the allocations they were drawn from. */
double ga_prof_scale(uint64_t count, uint64_t bytes);
/* The stack of the caller (goalloc's own frames skipped), up to max
 * return addresses: their number. */
unsigned ga_prof_stack(uintptr_t *stk, unsigned max);
/* pprof.c: ga_heap_profile_write (goalloc.h), the profile.proto document. */
void ga_heap_profile_write_at_exit(void);
/* At most once a second (slow paths): writes the profile now if another
 * process asked for it with the file GOALLOC_HEAP_PROFILE's path +
 * ".request" (goalloc profile --pid). */
void ga_heap_profile_tick(void);
/* pprof.c: "  #i 0xADDR path+0xOFF" lines for stack stk (misuse reports). */
void ga_print_stack(int fd, const uintptr_t *stk, unsigned n);
void ga_prof_lock(void);
void ga_prof_unlock(void);
void ga_prof_fork_child(void);

/* ------------------------------------------------------------------------
 * Live statistics in shared memory (mlive.c)
 * ---------------------------------------------------------------------- */
/* Publishes the counters if live=1 and the last update is older than the
 * interval; now is a clock reading the caller already has. No lock. */
#define GA_LIVE_UNAVAILABLE UINT64_MAX /* the header's `unavailable` */
void ga_live_tick(uint64_t now);
void ga_live_start(void);      /* library constructor: the file of this process */
void ga_live_exit(void);       /* destructor: removes it */
void ga_live_fork_child(void); /* the child publishes in a file of its own */

/* ------------------------------------------------------------------------
 * Errors and diagnostics (print.c); all output by write(2), no allocation
 * ---------------------------------------------------------------------- */
void ga_buf_str(ga_buf_t *b, const char *s);
void ga_buf_uint(ga_buf_t *b, uint64_t v);
void ga_buf_hex(ga_buf_t *b, uint64_t v);
/* Writes the n bytes: 0, or the errno value of the failure (EIO when the
 * file took nothing more). Never a cancellation point. */
int ga_write_all(int fd, const char *p, size_t n);
/* Appends s JSON-escaped (no quotes) as far as b has room; returns the
 * rest of s (at its NUL when all of it went in). Control characters are
 * escaped, valid UTF-8 copied, other bytes become U+FFFD: the one escaping
 * function of every string the library writes into JSON. */
const char *ga_buf_json(ga_buf_t *b, const char *s);
/* Heap misuse: one line "goalloc: fn(): what 0x... (detail)", then abort —
 * or, with GOALLOC=on_error=report, count it and return (the caller then
 * ignores the offending call). */
GA_COLD void ga_misuse(const char *fn, const char *what, uintptr_t p, const ga_span_t *s);
extern _Atomic uint64_t ga_misuse_count;
#if defined(GA_TESTING)
void ga_test_misuse_seen(const char *line, size_t len); /* testing.c: the last report */
#endif
__attribute__((noreturn)) GA_COLD void ga_throw(const char *msg);
/* "goalloc: fatal error: msg in fn()" (assertions name their function). */
__attribute__((noreturn)) GA_COLD void ga_throw_at(const char *msg, const char *fn);
void ga_warn(const char *msg1, const char *msg2, const char *msg3);
int ga_fail(char *msg, size_t len, const char *what, uint64_t a, uint64_t b);
/* Option i's value as GOALLOC spells it (init.c, which owns the table). */
void ga_option_format(unsigned i, ga_buf_t *b);

/* Assertions in three tiers (GA_DEBUG, types.h): ga_assert (>= 1) cheap
 * checks of a caller's promise; ga_assert_internal (>= 2) the allocator's
 * own state at every transition of spans and caches; ga_assert_valid
 * (>= 3, the debug library) whole validators (ga_span_check after a fold,
 * the treap under a merged run) and lock ownership (ga_assert_held,
 * inline.h). A failed one ends the process with one line naming it. */
#define GA_ASSERT_TIER(e) ((e) ? (void)0 : ga_throw_at("assertion failed: " #e, __func__))
#if GA_DEBUG >= 1
#define ga_assert(e) GA_ASSERT_TIER(e)
#else
#define ga_assert(e) ((void)sizeof(e))
#endif
#if GA_DEBUG >= 2
#define ga_assert_internal(e) GA_ASSERT_TIER(e)
#else
#define ga_assert_internal(e) ((void)sizeof(e))
#endif
/* Level 3: a validator int check(x, msg, len) (0: valid) must pass. */
#if GA_DEBUG >= 3
#define ga_assert_valid(check, x)                                                                  \
    do {                                                                                           \
        char msg_[192];                                                                            \
        if (check(x, msg_, sizeof msg_))                                                           \
            ga_throw_at(msg_, __func__);                                                           \
    } while (0)
#else
#define ga_assert_valid(check, x) ((void)(check))
#endif

#pragma GCC visibility pop

#endif
