/* Test-only entry points of the cffi build (Go's export_test.go): read the
 * allocator's internal state for one pointer or for the heap, and drive
 * situations that are hard to reach from outside. Compiled only with
 * GA_TESTING. See malloc.c for the overview. */
#ifndef GA_TESTING_H
#define GA_TESTING_H

#include <stddef.h>
#include <stdint.h>

typedef struct ga_test_ptr_info {
    int kind;             /* 0 not goalloc's, 1 tiny, 2 small, 3 large */
    unsigned spc;         /* span class */
    size_t elemsize;      /* bytes per object (16 for tiny blocks, 0 large) */
    size_t npages;
    uintptr_t span_base;
    int state;            /* see ga_test_state_name */
    unsigned nelems;
    unsigned alloc_count; /* as of the last fold */
    unsigned freeindex;
    unsigned nlocal;
    int nremote;
    int owned_by_caller;  /* the calling thread's mcache holds the span */
    int needzero;
    unsigned tiny_word;   /* tiny: the block's word */
    int cache_list;       /* cached: 0 the current span, 1 kept full, 2 kept avail */
} ga_test_ptr_info_t;

typedef struct ga_test_heap_info {
    size_t narenas;
    size_t pages_inuse;
    size_t pages_free;
    size_t free_runs;
    size_t largest_free_run; /* pages */
    size_t pages_released;   /* free pages returned to the OS */
    size_t retained;         /* pages in use + free pages not released */
    size_t scav_credit;      /* pages */
    size_t reclaim_credit;   /* pages */
    uint64_t scavenged_total;
    uint64_t reclaimed_total;
    size_t goal;             /* retained goal, pages */
} ga_test_heap_info_t;

int ga_test_ptr_info(void *p, ga_test_ptr_info_t *out);
const char *ga_test_state_name(int state);
void ga_test_heap_info(ga_test_heap_info_t *out);
unsigned ga_test_size_to_class(size_t n);
unsigned ga_test_tiny_class(void);
/* Spans of class spc on its mcentral lists: which = 0 partial, 1 full. */
size_t ga_test_central_spans(unsigned spc, int which);
/* Returns the calling thread's cached spans and tiny block to mcentral. */
void ga_test_release_cache(void);
/* Gives the calling thread a span of n's class fresh from the page heap
 * (its current one goes back to mcentral). Returns the class, -1 on error. */
int ga_test_fresh_span(size_t n);
/* Runs the exit destructor of the calling thread's cache now: the thread
 * then allocates through the shared cache, as after pthread exit. */
void ga_test_exit_cache(void);
/* The calling thread's cache, as an address (0: none yet or exited). */
uintptr_t ga_test_thread_cache(void);
/* Breaks (on = 1) or repairs (on = 0) one invariant, for testing
 * ga_check_heap: what = 0 nlocal of p's span, 1 max_pages at the treap
 * root, 2 the page-map entry of p's page (repair: ga_test_repair_page with
 * a pointer into the right span), 3 the calling thread's count of kept
 * pages (mcache_keep). */
void ga_test_corrupt(void *p, int what, int on);
void ga_test_repair_page(void *p, void *span_of);
/* Turns the tiny allocator on or off (the GOALLOC=tiny option). */
void ga_test_set_tiny(int on);
/* Moves goalloc's clock forward (the scavenger's delays and epochs). */
void ga_test_advance_clock(uint64_t ns);
/* Runs the slow-path scavenger check now (as a span refill would). */
void ga_test_scavenge_tick(void);
/* The synchronous check the heap makes before growing by npages. */
void ga_test_scavenge_for_growth(size_t npages);
/* nthreads threads, iters operations each: random sizes, pattern-checked,
 * half of the frees done by another thread through a shared ring, threads
 * exiting with objects still live. Returns the number of corruptions. */
int ga_test_threads(int nthreads, int iters, unsigned seed);
/* Parses s as the GOALLOC variable would be (messages go to stderr). */
void ga_test_parse_options(const char *s);
long long ga_test_option(const char *key);
/* Misuse reports so far, and the last one's line (without its newline):
 * goalloc_ffi raises them as HeapMisuse. */
uint64_t ga_test_misuse_count(void);
void ga_test_last_misuse(char *out, size_t n);
/* Checks ga_span_slot_of (the inline free path's index) against division
 * for every byte offset of a span of class spc; returns the mismatches. */
unsigned long ga_test_check_slot_index(unsigned spc);
/* The inline paths' bounds (ga_fast_lo, ga_fast_span) and ga_hardened:
 * malloc's inline path serves n when n - lo <= span. */
void ga_test_fast_paths(size_t *lo, size_t *span, int *hardened);
/* The inline path's bound for 1 KiB < n <= 32 KiB (ga_fast_medium). */
size_t ga_test_fast_medium(void);
/* Starts a new size profile of the private heap (on = 1; objects live now
 * are not in it) or stops profiling (on = 0). 0, or -1 without memory. */
int ga_test_profile(int on);
/* Spans the calling thread's cache holds for span class spc beyond the
 * one it allocates from (refill > 1). */
unsigned ga_test_cache_stash(unsigned spc);
/* Fork against a cache in the middle of a slow path: the calling thread
 * fills a span of n's class until its cache keeps it as exhausted
 * (mcache_keep > 0), then frees one of its objects, which moves the span
 * to the avail list; half-way through that move it stops until another
 * thread calls ga_test_cache_move_resume or timeout_ms pass. Returns 0
 * when resumed, 1 when the timeout ended the wait, -1 when no span could
 * be set up. ga_test_cache_move_wait blocks until the move has stopped
 * (0) or timeout_ms pass (-1). */
int ga_test_cache_move_paused(size_t n, unsigned timeout_ms);
int ga_test_cache_move_wait(unsigned timeout_ms);
void ga_test_cache_move_resume(void);
/* A remote free half-done while its span goes back to the page heap:
 * ga_test_remote_free_hold has the calling thread take a fresh span of n's
 * class and allocate one object, which another thread frees; a hook stops
 * that free between its bit and its count until ..._finish or pause_ms
 * (0 when it stopped, -1 on a setup failure). ..._release then has the
 * calling thread fold the span, find it empty and give it back to the page
 * heap: 1 if the free was still half-done when that returned, 0 if not,
 * -1 without a held free. ..._finish lets the free go on and joins it.
 * ga_test_remote_free_race does all three and, between release and
 * finish, makes a new span of the class: 0 when the span went back only
 * after the free had counted itself, 1 when it went back with the free
 * half-done, 2 when moreover the late count landed in the new span made
 * from the same struct (repaired before returning), -1 on a failure. */
int ga_test_remote_free_hold(size_t n, unsigned pause_ms);
int ga_test_remote_free_release(void);
void ga_test_remote_free_finish(void);
int ga_test_remote_free_race(size_t n, unsigned pause_ms);

#endif
