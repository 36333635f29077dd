/* Live statistics for other processes (no Go counterpart; Go exposes
 * runtime/metrics in-process only). With GOALLOC=live=1 a process publishes
 * its counters in the shared-memory file /dev/shm/goalloc-<pid>, which
 * `goalloc top PID` and `goalloc run --timeline` read from outside. The
 * layout (ga_live_header_t, then the names, then the values) is documented
 * in goalloc.h; the values are those of ga_stats_quick (mstats.c).
 *
 * Updates happen on slow paths (allocation refills, and a span or large
 * object going back to the page heap), from the scavenger thread while it
 * runs, and once more at exit, at most every LIVE_INTERVAL_MS, with the
 * clock reading the scavenger already took (mgcscavenge.c), and take
 * no lock: one thread wins the seqlock by a compare-and-swap that makes
 * seq odd, writes the values, and makes seq even again; a thread that
 * finds seq odd skips its update. Nothing is added to the fast paths.
 * The file is created by the library constructor, removed by the
 * destructor (a process killed or ending in _exit leaves it behind: readers
 * check the pid, `goalloc top` removes such files), and after fork the
 * child unmaps its parent's file and creates its own on its first update
 * once it has run for LIVE_CHILD_DELAY_MS, so that a child that only execs,
 * or does a little work and _exits (the common fork pattern), leaves none.
 *
 * Other users share /dev/shm: the file is created exclusively, owner read
 * and write only, never through a symbolic link, and the writer keeps the
 * layout (and the seqlock's count) in its own variables: nothing is read
 * back from the mapping. See malloc.c for the overview. */
#include <errno.h>
#include <string.h>

#include "internal.h"

#define LIVE_PREFIX "/dev/shm/goalloc-"
#define LIVE_INTERVAL_MS 10u
#define LIVE_CHILD_DELAY_MS 100u
#define MS 1000000ull

enum { LIVE_CLOSED, LIVE_OPENING, LIVE_OPEN, LIVE_OFF };

static ga_live_header_t *live; /* this process's mapping once LIVE_OPEN */
static size_t live_bytes;
/* The layout of the mapping, as live_open wrote it: only these are read. */
static uint64_t *live_totals, *live_classes;
static unsigned live_rows;
static int live_pid;
static _Atomic uint64_t live_seq; /* what the writer last stored in live->seq */
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

static void publish(void)
{
    uint64_t seq = atomic_load_explicit(&live_seq, memory_order_relaxed);
    if ((seq & 1) || !atomic_compare_exchange_strong_explicit(&live_seq, &seq, seq + 1,
                                                              memory_order_acquire,
                                                              memory_order_relaxed))
        return; /* another thread is updating */
    ga_live_header_t *h = live;
    /* Release fence after the odd seq: no value store moves above it. */
    __atomic_store_n(&h->seq, seq + 1, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE);
    ga_stats_quick(live_totals, live_classes, live_rows);
    h->updated_ns = ga_sys_nanotime();
    h->updates++;
    __atomic_store_n(&h->seq, seq + 2, __ATOMIC_RELEASE);
    atomic_store_explicit(&live_seq, seq + 2, memory_order_release);
}

/* Opens path for the live file, created exclusively. An existing regular
 * file of this user can only be a leftover of an earlier process with this
 * pid (killed, or this one before an exec): it is replaced. Anything else
 * (a symbolic link, a FIFO, another user's file) is refused: -err, with
 * *owner set to the owner of a file refused for it. */
static int live_create(const char *path, long *owner)
{
    int fd = ga_sys_open_file(path, GA_FILE_CREATE);
    ga_file_info_t fi;
    if (fd != -EEXIST || ga_sys_lstat(path, &fi) != 0)
        return fd;
    if (!fi.regular)
        return -GA_ENOTREG;
    if (fi.uid != ga_sys_geteuid()) {
        *owner = fi.uid;
        return -EEXIST;
    }
    ga_sys_unlink(path);
    return ga_sys_open_file(path, GA_FILE_CREATE);
}

static void live_refused(const char *path, int err, long owner)
{
    char line[256];
    ga_buf_t b = {line, 0, sizeof line};
    ga_buf_str(&b, "GOALLOC: live=1: cannot create ");
    ga_buf_str(&b, path);
    ga_buf_str(&b, ": ");
    if (owner >= 0) {
        ga_buf_str(&b, "it exists and belongs to uid ");
        ga_buf_uint(&b, (uint64_t)owner);
    } else {
        ga_buf_str(&b, ga_sys_error_text(err));
    }
    ga_warn(line, " (live statistics off)", NULL);
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
    long owner = -1;
    int fd = live_create(path, &owner);
    ga_live_header_t *h = fd >= 0 ? ga_sys_map_shared_fd(fd, size) : NULL;
    if (fd >= 0)
        ga_sys_close(fd);
    if (h == NULL) {
        if (fd >= 0)
            ga_sys_unlink(path);
        live_refused(path, fd >= 0 ? ENOMEM : -fd, owner);
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
    live = h;
    live_bytes = size;
    live_totals = (uint64_t *)((char *)h + totals_off);
    live_classes = (uint64_t *)((char *)h + classes_off);
    live_rows = rows;
    live_pid = pid;
    atomic_store(&live_seq, 0);
    publish();
    __atomic_store_n(&h->magic, GA_LIVE_MAGIC, __ATOMIC_RELEASE); /* the file is complete */
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
        publish();
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
    if (atomic_load(&live_state) == LIVE_OPEN)
        publish(); /* the figures at exit, for a reader that holds the file open */
    if (atomic_exchange(&live_state, LIVE_OFF) != LIVE_OPEN)
        return;
    /* Other threads may still update: the mapping stays until the end. */
    ga_live_path(live_pid, path, sizeof path);
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
