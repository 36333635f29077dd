/* Statistics (Go's mstats.go): the census of the heap, snapshots of every
 * counter listed in mstats.h, the lock-free quick view the live file
 * publishes (mlive.c), and the JSON document written at exit
 * (GOALLOC_STATS=PATH, %p = pid) or into a caller's buffer. Nothing here
 * runs on a fast path; a snapshot takes every allocator lock. With
 * GA_STATS=0 the API stays and says that nothing was counted. See malloc.c
 * for the overview. */
#include <string.h>

#include "inline.h"
#include "mstats.h"

ga_class_counters_t ga_class_counters[GA_NUM_SPC];
_Atomic uint64_t ga_large_mallocs, ga_large_frees;
_Atomic uint64_t ga_pagecache_hits_released;
_Atomic uint64_t ga_pagecache_held;
_Atomic size_t ga_metadata_bytes;

#define NAME(name, doc) #name,
#define DOC(name, doc) doc,
static const char *const total_names[] = {GA_STAT_TOTALS(NAME)};
static const char *const total_docs[] = {GA_STAT_TOTALS(DOC)};
static const char *const class_names[] = {GA_STAT_CLASS(NAME)};
static const char *const class_docs[] = {GA_STAT_CLASS(DOC)};
#undef NAME
#undef DOC

unsigned ga_stats_version(void) { return GA_STATS_VERSION; }
int ga_stats_enabled(void) { return GA_STATS; }
unsigned ga_stats_ntotals(void) { return GA_STAT_NTOTALS; }
unsigned ga_stats_nclass_fields(void) { return GA_STAT_NCLASS; }
const char *ga_stats_total_name(unsigned i) { return i < GA_STAT_NTOTALS ? total_names[i] : NULL; }
const char *ga_stats_total_doc(unsigned i) { return i < GA_STAT_NTOTALS ? total_docs[i] : NULL; }
const char *ga_stats_class_field_name(unsigned i) { return i < GA_STAT_NCLASS ? class_names[i] : NULL; }
const char *ga_stats_class_field_doc(unsigned i) { return i < GA_STAT_NCLASS ? class_docs[i] : NULL; }

unsigned ga_stats_nclasses(void)
{
    ga_ensure_init();
    return ga_classes.nclasses - 1; /* rows: classes 1 .. nclasses-1 */
}

/* ---- the census ------------------------------------------------------------ */

/* Slots of s handed out since its last fold: every slot below freeindex
 * that alloc_bits does not have (REQUIRES: s cached). */
static unsigned handed_since_fold(const ga_span_t *s)
{
    unsigned n = 0;
    for (unsigned w = 0; w * 64 < s->freeindex; w++) {
        n += (unsigned)ga_popcount64(~s->alloc_bits[w] & GA_BELOW_FREEINDEX(s->freeindex, w));
    }
    return n;
}

static void census_tiny(const ga_span_t *s, ga_census_t *c)
{
    for (uint32_t i = 0; i < s->nelems; i++) {
        uint32_t word = atomic_load_explicit(&s->tiny_meta[i], memory_order_relaxed);
        uint32_t starts = word & GA_TINY_STARTS;
        if (starts == 0)
            continue;
        c->tiny_objects += (size_t)ga_popcount64(starts);
        unsigned end = (word & GA_TINY_HELD) ? (word & GA_TINY_CURSOR_MASK) >> GA_TINY_CURSOR_SHIFT
                                             : GA_TINY_SIZE;
        c->tiny_bytes += end - (unsigned)__builtin_ctz(starts); /* the block's used bytes */
    }
}

static void census_span(ga_span_t *s, void *arg)
{
    ga_census_t *c = arg;
    uint8_t st = atomic_load(&s->state);
    if (st == GA_SPAN_META)
        return;
    if (st == GA_SPAN_PCACHED) {
        c->pagecache_spans++;
        c->pagecache_bytes += s->npages << GA_PAGE_SHIFT;
        return;
    }
    if (s->spc == 0) {
        c->large++;
        c->large_bytes += s->npages << GA_PAGE_SHIFT;
        return;
    }
    bool cached = st == GA_SPAN_CACHED;
    size_t live = 0;
    for (unsigned w = 0; w < s->nwords; w++) {
        uint64_t a = s->alloc_bits[w];
        if (cached)
            a |= GA_BELOW_FREEINDEX(s->freeindex, w);
        a &= ~(s->local_free[w] | atomic_load(&s->remote_free[w]));
        live += (size_t)ga_popcount64(a);
    }
    uint64_t pad = (s->nelems & 63) ? ~0ull << (s->nelems & 63) : 0;
    unsigned spc = s->spc;
    int32_t nremote = atomic_load(&s->nremote);
    c->spans[spc][cached ? 0 : st == GA_SPAN_PARTIAL ? 1 : 2]++;
    c->objects[spc] += live - (size_t)ga_popcount64(pad);
    c->pending_mallocs[spc] += cached ? handed_since_fold(s) : 0;
    c->pending_frees[spc] += s->nlocal + (uint64_t)(nremote > 0 ? nremote : 0);
    c->pending_remote[spc] += (uint64_t)(nremote > 0 ? nremote : 0);
    c->pending_cross[spc] += atomic_load_explicit(&s->ncross, memory_order_relaxed);
#if GA_STATS
    c->pending_requested[spc] += cached ? s->requested : 0;
#endif
    if (spc == GA_TINY_SPC)
        census_tiny(s, c);
}

void ga_census_locked(ga_census_t *c)
{
    ga_assert_held(&ga_heap.lock);
    memset(c, 0, sizeof *c);
    ga_mheap_for_each_span_locked(census_span, c);
}

/* ---- snapshots ------------------------------------------------------------- */

/* The second number of a /proc file's "key value" line (or statm's 2nd). */
static uint64_t proc_value(const char *path, const char *key)
{
    char buf[4096];
    int fd = ga_sys_open_file(path, GA_FILE_READ);
    if (fd < 0)
        return 0;
    long n = ga_sys_read(fd, buf, sizeof buf - 1);
    ga_sys_close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    const char *p = buf;
    if (key != NULL) {
        p = strstr(buf, key);
        if (p == NULL)
            return 0;
        p += strlen(key);
    } else {
        while (*p && *p != ' ')
            p++; /* statm: skip the size field */
    }
    while (*p == ' ' || *p == '\t')
        p++;
    uint64_t v = 0;
    while (*p >= '0' && *p <= '9')
        v = v * 10 + (uint64_t)(*p++ - '0');
    return v;
}

/* ---- per-class peaks (the heap lock; mheap.c calls the hooks) --------------- */

static size_t class_pages[GA_NUM_SPC];         /* pages of each class's spans now */
static size_t class_pages_max[GA_NUM_SPC];     /* ... the most at one time */
static size_t class_pages_at_peak[GA_NUM_SPC]; /* ... when pages_inuse last reached its peak */
static size_t peak_noted;                      /* that peak */

/* A span of npages pages of class spc (0: a large object) left the page
 * heap; a new peak of the heap's pages in use saves every class's pages. */
void ga_stats_span_alloc_locked(unsigned spc, size_t npages)
{
    ga_assert_held(&ga_heap.lock);
    if (!GA_STATS || spc >= GA_NUM_SPC)
        return;
    class_pages[spc] += npages;
    if (class_pages[spc] > class_pages_max[spc])
        class_pages_max[spc] = class_pages[spc];
    if (ga_heap.pages_inuse > peak_noted) { /* a new peak only: a loop at the peak copies nothing */
        peak_noted = ga_heap.pages_inuse;
        memcpy(class_pages_at_peak, class_pages, sizeof class_pages);
    }
}

void ga_stats_span_free_locked(unsigned spc, size_t npages)
{
    ga_assert_held(&ga_heap.lock);
    if (GA_STATS && spc < GA_NUM_SPC)
        class_pages[spc] -= npages < class_pages[spc] ? npages : class_pages[spc];
}

/* The per-class figures every view derives the same way. */
static void class_row(uint64_t *row, unsigned spc, uint64_t mallocs, uint64_t frees,
                      uint64_t objects, uint64_t requested)
{
    uint64_t size = ga_classes.size[spc];
    uint64_t waste = mallocs * size > requested ? mallocs * size - requested : 0;
    row[GA_CSTAT_size] = size;
    row[GA_CSTAT_mallocs] = mallocs;
    row[GA_CSTAT_frees] = frees;
    row[GA_CSTAT_objects_in_use] = objects;
    row[GA_CSTAT_bytes_in_use] = objects * size;
    row[GA_CSTAT_requested_bytes] = requested;
    row[GA_CSTAT_frag_cumulative_bytes] = waste;
    row[GA_CSTAT_frag_live_estimate_bytes] =
        mallocs ? (uint64_t)((unsigned __int128)objects * waste / mallocs) : 0;
    row[GA_CSTAT_peak_span_bytes] = (uint64_t)class_pages_at_peak[spc] << GA_PAGE_SHIFT;
    row[GA_CSTAT_peak_class_span_bytes] = (uint64_t)class_pages_max[spc] << GA_PAGE_SHIFT;
}

/* The tiny class's internal fragmentation: 16-byte blocks handed out
 * against the bytes requested, and its live share (live blocks). */
static void tiny_frag(uint64_t blocks, uint64_t live_blocks, uint64_t requested, uint64_t *waste,
                      uint64_t *live_estimate)
{
    uint64_t handed = blocks * GA_TINY_SIZE;
    *waste = handed > requested ? handed - requested : 0;
    *live_estimate = blocks ? (uint64_t)((unsigned __int128)live_blocks * *waste / blocks) : 0;
}

/* Figures read off the page heap; the quick view reads them without the
 * lock, one word at a time (x86-64 loads of aligned words do not tear). */
#define HEAP(field) __atomic_load_n(&ga_heap.field, __ATOMIC_RELAXED)
#define CENTRAL_LIST(spc, list) __atomic_load_n(&ga_central[spc].list.n, __ATOMIC_RELAXED)

static void heap_totals(uint64_t *t)
{
    size_t nfree = HEAP(pages_free), released = HEAP(pages_released);
    t[GA_STAT_bytes_mapped] = HEAP(narenas) * GA_ARENA_SIZE;
    t[GA_STAT_bytes_released] = (uint64_t)released << GA_PAGE_SHIFT;
    t[GA_STAT_bytes_free_resident] =
        nfree > released ? (uint64_t)(nfree - released) << GA_PAGE_SHIFT : 0;
    t[GA_STAT_bytes_metadata] = atomic_load(&ga_metadata_bytes);
    t[GA_STAT_peak_heap_bytes] = (uint64_t)HEAP(peak_inuse_ever) << GA_PAGE_SHIFT;
    t[GA_STAT_heap_pages_in_use] = HEAP(pages_inuse);
    t[GA_STAT_heap_pages_free] = nfree;
    t[GA_STAT_heap_pages_released] = released;
    t[GA_STAT_heap_free_runs] = HEAP(nfree_runs);
    t[GA_STAT_arenas] = HEAP(narenas);
    t[GA_STAT_reclaimed_pages] = HEAP(reclaimed_total);
    t[GA_STAT_reclaim_credit_pages] = HEAP(reclaim_credit);
    t[GA_STAT_scavenged_pages] = HEAP(scavenged_total);
    t[GA_STAT_scavenge_credit_pages] = HEAP(scav_credit);
    t[GA_STAT_purged_os_pages] = atomic_load(&ga_purged_os_pages);
    t[GA_STAT_large_mallocs] = atomic_load(&ga_large_mallocs);
    t[GA_STAT_large_frees] = atomic_load(&ga_large_frees);
    t[GA_STAT_misuse_errors] = atomic_load(&ga_misuse_count);
}

static uint64_t rss_bytes(void)
{
    return proc_value("/proc/self/statm", NULL) * ga_sys_page_size();
}

/* Resident bytes of in-use spans not covered by live objects (tiny
 * blocks count whole): slot_bytes are the bytes of the live slots. */
static uint64_t free_in_spans(uint64_t span_pages, uint64_t slot_bytes)
{
    uint64_t held = span_pages << GA_PAGE_SHIFT;
    uint64_t purged = atomic_load(&ga_purged_os_pages) * ga_sys_page_size();
    return held > slot_bytes + purged ? held - slot_bytes - purged : 0;
}

/* What the snapshot and the quick view add up over the classes. */
typedef struct sums {
    uint64_t small_bytes, small_objects, mallocs, frees, remote, cross, refills, grows, requested, waste,
        live_waste, span_pages, blocks;
} sums_t;

/* One class's figures: m mallocs, f frees, objects live, req requested
 * bytes, remote frees, spans in use and on mcentral's lists (lists: cached,
 * partial, full). Adds them to u; for a small class, writes its row to
 * classes (row spc - 1) when classes is not NULL. */
static void add_class(sums_t *u, unsigned spc, uint64_t m, uint64_t f, uint64_t objects, uint64_t req,
                      uint64_t remote, uint64_t spans, const uint64_t lists[3], uint64_t *classes,
                      unsigned nfields)
{
    ga_class_counters_t *k = &ga_class_counters[spc];
    uint64_t refills = atomic_load_explicit(&k->refills, memory_order_relaxed);
    uint64_t grows = atomic_load_explicit(&k->grows, memory_order_relaxed);
    u->mallocs += m;
    u->frees += f;
    u->requested += req;
    u->remote += remote;
    u->refills += refills;
    u->grows += grows;
    u->span_pages += spans * ga_classes.npages[spc];
    if (spc == GA_TINY_SPC) {
        uint64_t w, lw;
        tiny_frag(m, objects, req, &w, &lw);
        u->waste += w;
        u->live_waste += lw;
        u->blocks = objects;
        return;
    }
    uint64_t row[GA_STAT_NCLASS];
    class_row(row, spc, m, f, objects, req);
    u->small_objects += objects;
    u->small_bytes += row[GA_CSTAT_bytes_in_use];
    u->waste += row[GA_CSTAT_frag_cumulative_bytes];
    u->live_waste += row[GA_CSTAT_frag_live_estimate_bytes];
    if (classes == NULL)
        return;
    row[GA_CSTAT_spans_cached] = lists[0];
    row[GA_CSTAT_spans_partial] = lists[1];
    row[GA_CSTAT_spans_full] = lists[2];
    row[GA_CSTAT_mcache_refills] = refills;
    row[GA_CSTAT_mcentral_grows] = grows;
    memcpy(classes + (size_t)(spc - 1) * nfields, row, sizeof row);
}

/* The totals both views take from the sums as they are. */
static void put_sums(uint64_t *t, const sums_t *u)
{
    t[GA_STAT_small_mallocs] = u->mallocs;
    t[GA_STAT_small_frees] = u->frees;
    t[GA_STAT_atomic_frees] = u->remote;
    t[GA_STAT_cross_thread_frees] = u->cross;
    t[GA_STAT_mcache_refills] = u->refills;
    t[GA_STAT_mcentral_grows] = u->grows;
    t[GA_STAT_requested_bytes] = u->requested;
    t[GA_STAT_frag_cumulative_bytes] = u->waste;
    t[GA_STAT_frag_live_estimate_bytes] = u->live_waste;
}

static ga_census_t snap_census; /* under every lock */

int ga_stats_snapshot(uint64_t *totals, unsigned ntotals, uint64_t *classes, unsigned nrows,
                      unsigned nfields)
{
    ga_ensure_init();
    if (!GA_STATS)
        return -2;
    unsigned rows = ga_classes.nclasses - 1;
    if (ntotals < GA_STAT_NTOTALS || (classes != NULL && (nrows < rows || nfields < GA_STAT_NCLASS)))
        return -1;
    ga_census_t *c = &snap_census;
    uint64_t t[GA_STAT_NTOTALS] = {0};
    ga_lock_all();
    ga_census_locked(c);
    c->pending_requested[GA_TINY_SPC] += ga_mcache_tiny_requested_locked();
    sums_t u = {0};
    for (unsigned spc = 1; spc < GA_NUM_SPC; spc++) {
        if (spc >= ga_classes.nclasses && spc != GA_TINY_SPC)
            continue;
        ga_class_counters_t *k = &ga_class_counters[spc];
        const uint64_t lists[3] = {c->spans[spc][0], c->spans[spc][1], c->spans[spc][2]};
        add_class(&u, spc, atomic_load(&k->mallocs) + c->pending_mallocs[spc],
                  atomic_load(&k->frees) + c->pending_frees[spc], c->objects[spc],
                  atomic_load(&k->requested) + c->pending_requested[spc],
                  atomic_load(&k->remote_frees) + c->pending_remote[spc], lists[0] + lists[1] + lists[2],
                  lists, classes, nfields);
        u.cross += atomic_load(&k->cross_frees) + c->pending_cross[spc];
    }
    heap_totals(t);
    t[GA_STAT_bytes_in_use] = u.small_bytes + c->tiny_bytes + c->large_bytes;
    t[GA_STAT_objects_in_use] = u.small_objects + c->tiny_objects + c->large;
    t[GA_STAT_bytes_free_in_spans] =
        free_in_spans(u.span_pages, u.small_bytes + (uint64_t)c->objects[GA_TINY_SPC] * GA_TINY_SIZE);
    put_sums(t, &u);
    t[GA_STAT_large_objects] = c->large;
    t[GA_STAT_large_bytes] = c->large_bytes;
    t[GA_STAT_pagecache_bytes] = c->pagecache_bytes;
    t[GA_STAT_pagecache_objects] = c->pagecache_spans;
    t[GA_STAT_pagecache_hits] = ga_mcache_pagecache_hits_locked();
    t[GA_STAT_tiny_blocks] = c->objects[GA_TINY_SPC];
    t[GA_STAT_tiny_objects] = c->tiny_objects;
    t[GA_STAT_tiny_bytes_saved] = c->tiny_objects > c->objects[GA_TINY_SPC]
                                      ? (c->tiny_objects - c->objects[GA_TINY_SPC]) * GA_TINY_SIZE
                                      : 0;
    ga_unlock_all();
    t[GA_STAT_rss_bytes] = rss_bytes();
    t[GA_STAT_peak_rss_bytes] = proc_value("/proc/self/status", "VmHWM:") << 10;
    memcpy(totals, t, sizeof t);
    return 0;
}

/* No lock, no heap walk: the counters as folded and flushed so far. */
void ga_stats_quick(uint64_t *t, uint64_t *classes, unsigned nrows)
{
    sums_t u = {0};
    for (unsigned spc = 1; spc < GA_NUM_SPC; spc++) {
        if (spc >= ga_classes.nclasses && spc != GA_TINY_SPC)
            continue;
        ga_class_counters_t *k = &ga_class_counters[spc];
        uint64_t m = atomic_load_explicit(&k->mallocs, memory_order_relaxed);
        uint64_t f = atomic_load_explicit(&k->frees, memory_order_relaxed);
        uint64_t spans = atomic_load_explicit(&k->grows, memory_order_relaxed) -
                         atomic_load_explicit(&k->releases, memory_order_relaxed);
        uint64_t partial = CENTRAL_LIST(spc, partial), full = CENTRAL_LIST(spc, full);
        const uint64_t lists[3] = {spans > partial + full ? spans - partial - full : 0, partial, full};
        add_class(&u, spc, m, f, m > f ? m - f : 0,
                  atomic_load_explicit(&k->requested, memory_order_relaxed),
                  atomic_load_explicit(&k->remote_frees, memory_order_relaxed), spans, lists,
                  spc <= nrows ? classes : NULL, GA_STAT_NCLASS);
        u.cross += atomic_load_explicit(&k->cross_frees, memory_order_relaxed);
    }
    heap_totals(t);
    uint64_t held = atomic_load_explicit(&ga_pagecache_held, memory_order_relaxed);
    uint64_t pc_pages = held & ((1ull << GA_PCACHE_HELD_SHIFT) - 1);
    uint64_t large_pages = HEAP(pages_inuse);
    large_pages = large_pages > u.span_pages + pc_pages ? large_pages - u.span_pages - pc_pages : 0;
    uint64_t large_objects = t[GA_STAT_large_mallocs] > t[GA_STAT_large_frees]
                                 ? t[GA_STAT_large_mallocs] - t[GA_STAT_large_frees]
                                 : 0;
    t[GA_STAT_bytes_in_use] = u.small_bytes + u.blocks * GA_TINY_SIZE + (large_pages << GA_PAGE_SHIFT);
    t[GA_STAT_objects_in_use] = u.small_objects + u.blocks + large_objects;
    t[GA_STAT_bytes_free_in_spans] = free_in_spans(u.span_pages, u.small_bytes + u.blocks * GA_TINY_SIZE);
    t[GA_STAT_rss_bytes] = rss_bytes();
    t[GA_STAT_peak_rss_bytes] = GA_LIVE_UNAVAILABLE;
    put_sums(t, &u);
    t[GA_STAT_large_objects] = large_objects;
    t[GA_STAT_large_bytes] = large_pages << GA_PAGE_SHIFT;
    t[GA_STAT_pagecache_bytes] = pc_pages << GA_PAGE_SHIFT;
    t[GA_STAT_pagecache_objects] = held >> GA_PCACHE_HELD_SHIFT;
    t[GA_STAT_pagecache_hits] = GA_LIVE_UNAVAILABLE; /* counted per cache */
    t[GA_STAT_tiny_blocks] = u.blocks;
    t[GA_STAT_tiny_objects] = GA_LIVE_UNAVAILABLE;
    t[GA_STAT_tiny_bytes_saved] = GA_LIVE_UNAVAILABLE;
}

/* ---- JSON ------------------------------------------------------------------ */

/* Where the document goes: a file descriptor (fd >= 0), or a caller's
 * buffer (dst, cap), whose part past the end is dropped but counted. err
 * keeps the first failed write's errno value. */
typedef struct json_out {
    int fd, err;
    char *dst;
    size_t cap, total;
    ga_buf_t b; /* the line being formatted */
} json_out_t;

static void json_flush(json_out_t *o)
{
    if (o->fd >= 0) {
        if (o->err == 0)
            o->err = ga_write_all(o->fd, o->b.p, o->b.len);
    } else if (o->total < o->cap) {
        size_t n = o->cap - o->total < o->b.len ? o->cap - o->total : o->b.len;
        memcpy(o->dst + o->total, o->b.p, n);
    }
    o->total += o->b.len;
    o->b.len = 0;
    o->b.p[0] = '\0';
}

/* JSON text the library itself spells (punctuation, numbers). */
static void json_str(json_out_t *o, const char *s)
{
    if (o->b.len + strlen(s) + 1 >= o->b.cap)
        json_flush(o);
    ga_buf_str(&o->b, s);
}

/* A string value or key, escaped, in quotes. */
static void json_quoted(json_out_t *o, const char *s)
{
    json_str(o, "\"");
    while (*(s = ga_buf_json(&o->b, s)) != '\0')
        json_flush(o);
    json_str(o, "\"");
}

static void json_field(json_out_t *o, const char *sep, const char *name, uint64_t v)
{
    json_str(o, sep);
    json_quoted(o, name);
    json_str(o, ": ");
    if (o->b.len + 24 >= o->b.cap)
        json_flush(o);
    ga_buf_uint(&o->b, v);
}

/* Up to cap - 1 bytes of a /proc file into buf, NUL-terminated; the
 * number read (0 if it cannot be read). */
static size_t read_proc(const char *path, char *buf, size_t cap)
{
    int fd = ga_sys_open_file(path, GA_FILE_READ);
    size_t n = 0;
    buf[0] = '\0';
    if (fd < 0)
        return 0;
    while (n + 1 < cap) {
        long r = ga_sys_read(fd, buf + n, cap - 1 - n);
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    ga_sys_close(fd);
    buf[n] = '\0';
    return n;
}

static char proc_text[8192]; /* under json_lock: the command line being written */

/* How the file was made: goalloc's version, the process's name and
 * command line (/proc/self/comm, cmdline; argv_truncated when it is longer
 * than 8 KiB: the arguments that fit in whole are listed), and every
 * option in effect as GOALLOC spells it. */
static void json_provenance(json_out_t *o)
{
    json_str(o, ",\n  \"goalloc_version\": ");
    json_quoted(o, GA_VERSION);
    size_t n = read_proc("/proc/self/comm", proc_text, 64);
    while (n > 0 && proc_text[n - 1] == '\n')
        proc_text[--n] = '\0';
    json_str(o, ",\n  \"comm\": ");
    json_quoted(o, proc_text);
    n = read_proc("/proc/self/cmdline", proc_text, sizeof proc_text);
    bool cut = n + 1 >= sizeof proc_text;
    json_str(o, ",\n  \"argv\": [");
    size_t end = n;
    if (cut) /* the last argument may be cut: drop it */
        while (end > 0 && proc_text[end - 1] != '\0')
            end--;
    for (size_t i = 0; i < end; i += strlen(proc_text + i) + 1) {
        json_str(o, i ? ", " : "");
        json_quoted(o, proc_text + i);
    }
    json_str(o, cut ? "], \"argv_truncated\": true" : "], \"argv_truncated\": false");
    json_str(o, ",\n  \"options\": {");
    char value[1100];
    for (unsigned i = 0; i < ga_option_count(); i++) {
        ga_buf_t v = {value, 0, sizeof value};
        value[0] = '\0';
        ga_option_format(i, &v);
        json_str(o, i ? ", " : "");
        json_quoted(o, ga_option_key(i));
        json_str(o, ": ");
        json_quoted(o, value);
    }
    json_str(o, "}");
}

static ga_lock_t json_lock = GA_LOCK_INIT; /* the arrays below */
static uint64_t json_totals[GA_STAT_NTOTALS];
static uint64_t json_classes[GA_MAX_SIZE_CLASSES * GA_STAT_NCLASS];

void ga_stats_fork_child(void) { ga_lock_init(&json_lock); }

static int json_write(json_out_t *o)
{
    ga_lock(&json_lock);
    int rc = ga_stats_snapshot(json_totals, GA_STAT_NTOTALS, json_classes, GA_MAX_SIZE_CLASSES,
                               GA_STAT_NCLASS);
    if (rc == -1) {
        ga_unlock(&json_lock);
        return -1;
    }
    json_field(o, "{\n  ", "version", GA_STATS_VERSION);
    json_field(o, ",\n  ", "pid", (uint64_t)ga_sys_getpid());
    json_provenance(o);
    if (rc == -2) { /* GA_STATS=0 */
        json_str(o, ",\n  \"stats\": \"compiled out\"\n}\n");
        json_flush(o);
        ga_unlock(&json_lock);
        return o->err;
    }
    json_str(o, ",\n  \"size_classes\": ");
    json_quoted(o, ga_classes.name);
    json_str(o, ",\n  \"totals\": {");
    for (unsigned i = 0; i < GA_STAT_NTOTALS; i++)
        json_field(o, i ? ", " : "", total_names[i], json_totals[i]);
    json_str(o, "},\n  \"classes\": [");
    for (unsigned r = 0; r < ga_classes.nclasses - 1; r++) {
        json_field(o, r ? ",\n    {" : "\n    {", "class", r + 1);
        for (unsigned i = 0; i < GA_STAT_NCLASS; i++)
            json_field(o, ", ", class_names[i], json_classes[r * GA_STAT_NCLASS + i]);
        json_str(o, "}");
    }
    json_str(o, "\n  ]\n}\n");
    json_flush(o);
    ga_unlock(&json_lock);
    return o->err;
}

int ga_stats_write_json(int fd)
{
    char line[1024];
    json_out_t o = {fd, 0, NULL, 0, 0, {line, 0, sizeof line}};
    line[0] = '\0';
    return json_write(&o);
}

size_t ga_stats_json(char *buf, size_t len)
{
    char line[1024];
    json_out_t o = {-1, 0, buf, len, 0, {line, 0, sizeof line}};
    line[0] = '\0';
    if (json_write(&o) != 0)
        return 0;
    if (buf != NULL && len > 0)
        buf[o.total < len ? o.total : len - 1] = '\0';
    return o.total;
}

/* GOALLOC=stats=1: the totals, one per line, bytes also in MiB. */
void ga_stats_print(int fd)
{
    char line[256];
    ga_lock(&json_lock);
    int rc = ga_stats_snapshot(json_totals, GA_STAT_NTOTALS, json_classes, GA_MAX_SIZE_CLASSES,
                               GA_STAT_NCLASS);
    ga_buf_t b = {line, 0, sizeof line};
    ga_buf_str(&b, "goalloc " GA_VERSION ": statistics of pid ");
    ga_buf_uint(&b, (uint64_t)ga_sys_getpid());
    ga_buf_str(&b, " (");
    size_t n = read_proc("/proc/self/comm", proc_text, 64);
    while (n > 0 && proc_text[n - 1] == '\n')
        proc_text[--n] = '\0';
    for (char *c = proc_text; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            *c = '?'; /* the name is the process's to choose: no terminal escapes */
    ga_buf_str(&b, proc_text);
    ga_buf_str(&b, rc == -2 ? "): compiled out (GA_STATS=0)\n" : "), size classes ");
    if (rc == 0) {
        ga_buf_str(&b, ga_classes.name);
        ga_buf_str(&b, "\n");
    }
    ga_write_all(fd, line, b.len);
    for (unsigned i = 0; rc == 0 && i < GA_STAT_NTOTALS; i++) {
        b.len = 0;
        ga_buf_str(&b, "goalloc:   ");
        ga_buf_str(&b, total_names[i]);
        while (b.len < 40)
            ga_buf_str(&b, " ");
        uint64_t v = json_totals[i];
        ga_buf_uint(&b, v);
        if (strstr(total_names[i], "bytes") != NULL && v >= (1u << 20)) {
            ga_buf_str(&b, " (");
            ga_buf_uint(&b, v >> 20);
            ga_buf_str(&b, ".");
            ga_buf_uint(&b, ((v & ((1u << 20) - 1)) * 10) >> 20);
            ga_buf_str(&b, " MiB)");
        }
        ga_buf_str(&b, "\n");
        ga_write_all(fd, line, b.len);
    }
    ga_unlock(&json_lock);
}

bool ga_path_with_pid(const char *tmpl, char *out, size_t cap)
{
    ga_buf_t b = {out, 0, cap};
    out[0] = '\0';
    for (const char *p = tmpl; *p != '\0'; p++) {
        if (p[0] == '%' && p[1] == 'p') {
            if (b.len + 21 >= b.cap)
                return false;
            ga_buf_uint(&b, (uint64_t)ga_sys_getpid());
            p++;
        } else {
            if (b.len + 1 >= b.cap)
                return false;
            out[b.len++] = *p;
            out[b.len] = '\0';
        }
    }
    return true;
}

void ga_write_file_at_exit(const char *var, const char *tmpl, int (*write_doc)(int fd))
{
    char path[GA_PATH_MAX];
    if (tmpl == NULL || *tmpl == '\0')
        return;
    if (!ga_path_with_pid(tmpl, path, sizeof path)) {
        ga_warn(var, ": the path is longer than 4095 bytes (nothing written)", NULL);
        return;
    }
    int fd = ga_sys_open_file(path, GA_FILE_WRITE);
    int err = fd < 0 ? -fd : write_doc(fd);
    if (fd >= 0)
        ga_sys_close(fd);
    if (err > 0) {
        char line[GA_PATH_MAX + 160];
        ga_buf_t b = {line, 0, sizeof line};
        ga_buf_str(&b, "goalloc: ");
        ga_buf_str(&b, var);
        ga_buf_str(&b, fd < 0 ? ": cannot open " : ": cannot write ");
        ga_buf_str(&b, path);
        ga_buf_str(&b, ": ");
        ga_buf_str(&b, ga_sys_error_text(err));
        ga_buf_str(&b, "\n");
        ga_write_all(2, line, b.len);
    }
}

/* GOALLOC_STATS=PATH at exit; every %p in PATH becomes the pid. */
void ga_stats_write_at_exit(void)
{
    ga_write_file_at_exit("GOALLOC_STATS", ga_opts.stats_path, ga_stats_write_json);
}

/* ---- glibc's malloc_info ------------------------------------------------------ */

/* Appends s to buf while it fits; total counts every byte regardless. */
typedef struct xml_out {
    char *buf;
    size_t len, total;
    bool full;
} xml_out_t;

static void xml_put(xml_out_t *o, const ga_buf_t *line)
{
    if (!o->full && o->total + line->len < o->len)
        memcpy(o->buf + o->total, line->p, line->len);
    else
        o->full = true;
    o->total += line->len;
}

static void xml_attr(ga_buf_t *b, const char *name, uint64_t v)
{
    ga_buf_str(b, " ");
    ga_buf_str(b, name);
    ga_buf_str(b, "=\"");
    ga_buf_uint(b, v);
    ga_buf_str(b, "\"");
}

/* One element <tag type="type" count=".." size=".."/> (count < 0: none). */
static void xml_total(xml_out_t *o, const char *tag, const char *type, int64_t count,
                      uint64_t size)
{
    char line[128];
    ga_buf_t b = {line, 0, sizeof line};
    ga_buf_str(&b, "<");
    ga_buf_str(&b, tag);
    ga_buf_str(&b, " type=\"");
    ga_buf_str(&b, type);
    ga_buf_str(&b, "\"");
    if (count >= 0)
        xml_attr(&b, "count", (uint64_t)count);
    xml_attr(&b, "size", size);
    ga_buf_str(&b, "/>\n");
    xml_put(o, &b);
}

static void xml_str(xml_out_t *o, const char *s)
{
    ga_buf_t b = {(char *)s, strlen(s), strlen(s) + 1};
    xml_put(o, &b);
}

/* glibc's malloc_info schema (version 1) with goalloc's figures:
 *   <heap nr="0">       goalloc has one heap (glibc: one per arena)
 *   <size from to total count>  one per span class that has spans: tiny
 *                       blocks first (from 1 to 16), then the size
 *                       classes (from the previous class's size + 1 to its
 *                       size); count = free slots in its spans, total =
 *                       their bytes (glibc: the free chunks of a bin)
 *   <total type="fast"> the free slots of all classes and their bytes
 *                       (glibc: the fastbins, ready for reuse)
 *   <total type="rest"> the free page runs of the page heap and their
 *                       bytes, released pages included (glibc: the other
 *                       bins and the top chunk)
 *   <system type="current|max">, <aspace type="total|mprotect">: bytes of
 *                       the mapped arenas (mapped read-write whole, never
 *                       unmapped: max = current = address space)
 * After the heap, the process totals: fast and rest as the heap's,
 * <total type="mmap"> the large objects (> 32 KiB, whole pages) and their
 * bytes (glibc: the chunks it mmapped), system and aspace as the heap's.
 * The figures are one census taken under every lock; the XML is formatted
 * after the locks are released. */
size_t ga_malloc_info_xml(char *buf, size_t len)
{
    uint64_t free_slots[GA_NUM_SPC];
    ga_ensure_init();
    ga_lock_all();
    ga_census_t *c = &snap_census;
    ga_census_locked(c);
    for (unsigned spc = 1; spc < GA_NUM_SPC; spc++) {
        uint64_t spans = c->spans[spc][0] + c->spans[spc][1] + c->spans[spc][2];
        uint64_t slots = spans * ga_classes.nelems[spc];
        free_slots[spc] = slots > c->objects[spc] ? slots - c->objects[spc] : 0;
        if (spans == 0)
            free_slots[spc] = UINT64_MAX; /* no line */
    }
    size_t large = c->large, large_bytes = c->large_bytes;
    uint64_t runs = ga_heap.nfree_runs, free_bytes = (uint64_t)ga_heap.pages_free << GA_PAGE_SHIFT;
    uint64_t mapped = (uint64_t)ga_heap.narenas * GA_ARENA_SIZE;
    ga_unlock_all();

    xml_out_t o = {buf, len, 0, len == 0};
    uint64_t nfast = 0, fast_bytes = 0;
    xml_str(&o, "<malloc version=\"1\">\n<heap nr=\"0\">\n<sizes>\n");
    for (unsigned i = 0; i < ga_classes.nclasses; i++) {
        unsigned spc = i == 0 ? GA_TINY_SPC : i; /* tiny first */
        if (free_slots[spc] == UINT64_MAX)
            continue;
        uint64_t size = spc == GA_TINY_SPC ? GA_TINY_SIZE : ga_classes.size[spc];
        char line[160];
        ga_buf_t b = {line, 0, sizeof line};
        ga_buf_str(&b, "  <size");
        xml_attr(&b, "from", spc == GA_TINY_SPC || spc == 1 ? 1 : ga_classes.size[spc - 1] + 1);
        xml_attr(&b, "to", size);
        xml_attr(&b, "total", free_slots[spc] * size);
        xml_attr(&b, "count", free_slots[spc]);
        ga_buf_str(&b, "/>\n");
        xml_put(&o, &b);
        nfast += free_slots[spc];
        fast_bytes += free_slots[spc] * size;
    }
    xml_str(&o, "</sizes>\n");
    for (int whole = 0; whole < 2; whole++) {
        xml_total(&o, "total", "fast", (int64_t)nfast, fast_bytes);
        xml_total(&o, "total", "rest", (int64_t)runs, free_bytes);
        if (whole)
            xml_total(&o, "total", "mmap", (int64_t)large, large_bytes);
        xml_total(&o, "system", "current", -1, mapped);
        xml_total(&o, "system", "max", -1, mapped);
        xml_total(&o, "aspace", "total", -1, mapped);
        xml_total(&o, "aspace", "mprotect", -1, mapped);
        if (!whole)
            xml_str(&o, "</heap>\n");
    }
    xml_str(&o, "</malloc>\n");
    if (len > 0)
        buf[o.total < len ? o.total : 0] = '\0';
    return o.total;
}
