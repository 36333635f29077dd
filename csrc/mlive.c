/* Live statistics for other processes (no Go counterpart; Go exposes
 * runtime/metrics in-process only). With GOALLOC=live=1 a process publishes
 * its counters in the shared-memory file /dev/shm/goalloc-<pid>, which
 * `goalloc top PID` and `goalloc run --timeline` read from outside. The
 * layout (ga_live_header_t, then the names, then the values) is documented
 * in goalloc.h; the values are those of ga_stats_quick (mstats.c).
 *
 * Updates happen on slow paths, at most every LIVE_INTERVAL_MS, with the
 * clock reading the scavenger tick already took (mgcscavenge.c), and take
 * no lock: one thread wins the seqlock by a compare-and-swap that makes
 * seq odd, writes the values, and makes seq even again; a thread that
 * finds seq odd skips its update. Nothing is added to the fast paths.
 * The file is created by the library constructor, removed by the
 * destructor (a process killed or ending in _exit leaves it behind: readers
 * check the pid, `goalloc top` removes such files), and after fork the
 * child unmaps its parent's file and creates its own on its first update
 * once it has run for LIVE_CHILD_DELAY_MS, so that a child that only execs,
 * or does a little work and _exits (the common fork pattern), leaves none.
 * See malloc.c for the overview. */
#include <string.h>

#include "internal.h"

#define LIVE_PREFIX "/dev/shm/goalloc-"
#define LIVE_INTERVAL_MS 10u
#define LIVE_CHILD_DELAY_MS 100u
#define MS 1000000ull

enum { LIVE_CLOSED, LIVE_OPENING, LIVE_OPEN, LIVE_OFF };

static ga_live_header_t *live; /* this process's mapping once LIVE_OPEN */
static size_t live_bytes;
static _Atomic int live_state; /* LIVE_*; LIVE_OFF: failed or exited */
static _Atomic uint64_t last_update; /* ga_now_ns of the last update */
static uint64_t forked_at;           /* ga_now_ns of the fork that made this process, or 0 */

size_t ga_live_path(int pid, char *buf, size_t len)
{
    char tmp[64];
    ga_buf_t b = {tmp, 0, sizeof tmp};
    ga_buf_str(&b, LIVE_PREFIX);
    ga_buf_uint(&b, (uint64_t)pid);
    if (buf != NULL && len > 0) {
        size_t n = b.len < len ? b.len : len - 1;
        memcpy(buf, tmp, n);
        buf[n] = '\0';
    }
    return b.len;
}

static size_t align8(size_t n) { return (n + 7) & ~(size_t)7; }

/* Copies the NUL-terminated names after the header; returns their bytes. */
static size_t put_names(char *dst)
{
    size_t n = 0;
    for (unsigned i = 0; i < ga_stats_ntotals(); i++) {
        const char *s = ga_stats_total_name(i);
        size_t k = strlen(s) + 1;
        if (dst != NULL)
            memcpy(dst + n, s, k);
        n += k;
    }
    for (unsigned i = 0; i < ga_stats_nclass_fields(); i++) {
        const char *s = ga_stats_class_field_name(i);
        size_t k = strlen(s) + 1;
        if (dst != NULL)
            memcpy(dst + n, s, k);
        n += k;
    }
    return n;
}

static void publish(ga_live_header_t *h)
{
    uint64_t seq = __atomic_load_n(&h->seq, __ATOMIC_RELAXED);
    /* Acquire: no value store moves above the odd seq. */
    if ((seq & 1) || !__atomic_compare_exchange_n(&h->seq, &seq, seq + 1, false, __ATOMIC_ACQUIRE,
                                                  __ATOMIC_RELAXED))
        return; /* another thread is updating */
    ga_stats_quick((uint64_t *)((char *)h + h->totals_off),
                   (uint64_t *)((char *)h + h->classes_off), h->nrows);
    h->updated_ns = ga_sys_nanotime();
    h->updates++;
    __atomic_store_n(&h->seq, seq + 2, __ATOMIC_RELEASE);
}

/* Creates and fills this process's file. REQUIRES: live_state OPENING. */
static void live_open(void)
{
    char path[64];
    int pid = ga_sys_getpid();
    unsigned rows = ga_classes.nclasses - 1;
    size_t names_off = align8(sizeof(ga_live_header_t)), names_len = put_names(NULL);
    size_t totals_off = align8(names_off + names_len);
    size_t classes_off = totals_off + GA_STAT_NTOTALS * sizeof(uint64_t);
    size_t page = ga_sys_page_size();
    size_t size = classes_off + (size_t)rows * GA_STAT_NCLASS * sizeof(uint64_t);
    size = (size + page - 1) & ~(page - 1);
    ga_live_path(pid, path, sizeof path);
    ga_live_header_t *h = ga_sys_map_shared_file(path, size);
    if (h == NULL) {
        ga_warn("GOALLOC: live=1: cannot create ", path, " (live statistics off)");
        atomic_store(&live_state, LIVE_OFF);
        return;
    }
    h->layout = GA_LIVE_LAYOUT;
    h->stats_version = ga_stats_version();
    h->pid = (uint32_t)pid;
    h->unavailable = GA_LIVE_UNAVAILABLE;
    h->size = (uint32_t)size;
    h->interval_ms = LIVE_INTERVAL_MS;
    h->ntotals = GA_STAT_NTOTALS;
    h->nclass_fields = GA_STAT_NCLASS;
    h->nrows = rows;
    h->names_off = (uint32_t)names_off;
    h->names_len = (uint32_t)names_len;
    h->totals_off = (uint32_t)totals_off;
    h->classes_off = (uint32_t)classes_off;
    ga_buf_t b = {h->size_classes, 0, sizeof h->size_classes};
    ga_buf_str(&b, ga_classes.name);
    put_names((char *)h + names_off);
    publish(h);
    __atomic_store_n(&h->magic, GA_LIVE_MAGIC, __ATOMIC_RELEASE); /* the file is complete */
    live = h;
    live_bytes = size;
    atomic_store(&live_state, LIVE_OPEN);
}

void ga_live_tick(uint64_t now)
{
    uint64_t last = atomic_load_explicit(&last_update, memory_order_relaxed);
    if (now - last < LIVE_INTERVAL_MS * MS ||
        !atomic_compare_exchange_strong(&last_update, &last, now))
        return;
    int st = atomic_load(&live_state);
    if (st == LIVE_OPEN) {
        publish(live);
    } else if (st == LIVE_CLOSED && now - forked_at >= LIVE_CHILD_DELAY_MS * MS) {
        if (atomic_compare_exchange_strong(&live_state, &st, LIVE_OPENING))
            live_open();
    }
}

void ga_live_start(void)
{
    if (!ga_opts.live)
        return;
    if (!GA_STATS) {
        ga_warn("GOALLOC: live=1: statistics are compiled out of this library", "", "");
        ga_opts.live = false;
        return;
    }
    int st = LIVE_CLOSED;
    if (atomic_compare_exchange_strong(&live_state, &st, LIVE_OPENING))
        live_open();
}

void ga_live_exit(void)
{
    char path[64];
    if (atomic_exchange(&live_state, LIVE_OFF) != LIVE_OPEN)
        return;
    /* Other threads may still update: the mapping stays until the end. */
    ga_live_path((int)live->pid, path, sizeof path);
    ga_sys_unlink(path);
}

void ga_live_fork_child(void)
{
    if (atomic_load(&live_state) == LIVE_OPEN)
        ga_sys_free(live, live_bytes); /* the parent's file, which the parent keeps */
    live = NULL;
    live_bytes = 0;
    atomic_store(&last_update, 0);
    forked_at = ga_now_ns();
    if (ga_opts.live && atomic_load(&live_state) != LIVE_OFF)
        atomic_store(&live_state, LIVE_CLOSED);
}
