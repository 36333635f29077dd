/* Statistics (Go's mstats.go): the census of the heap, snapshots of every
 * counter listed in mstats.h, and the JSON document written at exit
 * (GOALLOC_STATS=PATH, %p = pid). Nothing here runs on a fast path; a
 * snapshot takes every allocator lock. See malloc.c for the overview. */
#include <string.h>

#include "internal.h"
#include "mstats.h"

ga_class_counters_t ga_class_counters[GA_NUM_SPC];
_Atomic uint64_t ga_large_mallocs, ga_large_frees;
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
        uint64_t below = (w + 1) * 64u <= s->freeindex ? ~0ull : (1ull << (s->freeindex & 63)) - 1;
        n += (unsigned)__builtin_popcountll(~s->alloc_bits[w] & below);
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
        c->tiny_objects += (size_t)__builtin_popcount(starts);
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
    if (s->spc == 0) {
        c->large++;
        c->large_bytes += s->npages << GA_PAGE_SHIFT;
        return;
    }
    bool cached = st == GA_SPAN_CACHED;
    size_t live = 0;
    for (unsigned w = 0; w < s->nwords; w++) {
        uint64_t a = s->alloc_bits[w];
        if (cached && w * 64u < s->freeindex)
            a |= (w + 1) * 64u <= s->freeindex ? ~0ull : (1ull << (s->freeindex & 63)) - 1;
        a &= ~(s->local_free[w] | atomic_load(&s->remote_free[w]));
        live += (size_t)__builtin_popcountll(a);
    }
    uint64_t pad = (s->nelems & 63) ? ~0ull << (s->nelems & 63) : 0;
    unsigned spc = s->spc;
    int32_t nremote = atomic_load(&s->nremote);
    c->spans[spc][cached ? 0 : st == GA_SPAN_PARTIAL ? 1 : 2]++;
    c->objects[spc] += live - (size_t)__builtin_popcountll(pad);
    c->pending_mallocs[spc] += cached ? handed_since_fold(s) : 0;
    c->pending_frees[spc] += s->nlocal + (uint64_t)(nremote > 0 ? nremote : 0);
    c->pending_remote[spc] += (uint64_t)(nremote > 0 ? nremote : 0);
    if (spc == GA_TINY_SPC)
        census_tiny(s, c);
}

void ga_census_locked(ga_census_t *c)
{
    memset(c, 0, sizeof *c);
    ga_mheap_for_each_span_locked(census_span, c);
}

/* ---- snapshots ------------------------------------------------------------- */

/* The second number of a /proc file's "key value" line (or statm's 2nd). */
static uint64_t proc_value(const char *path, const char *key)
{
    char buf[4096];
    int fd = ga_sys_open(path, 0);
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

static ga_census_t snap_census; /* under every lock */

int ga_stats_snapshot(uint64_t *totals, unsigned ntotals, uint64_t *classes, unsigned nrows,
                      unsigned nfields)
{
    ga_ensure_init();
    unsigned rows = ga_classes.nclasses - 1;
    if (ntotals < GA_STAT_NTOTALS || (classes != NULL && (nrows < rows || nfields < GA_STAT_NCLASS)))
        return -1;
    ga_census_t *c = &snap_census;
    uint64_t t[GA_STAT_NTOTALS] = {0};
    ga_lock_all();
    ga_census_locked(c);
    uint64_t small_bytes = 0, small_objects = 0, mallocs = 0, frees = 0, remote = 0, refills = 0,
             grows = 0;
    for (unsigned spc = 1; spc < GA_NUM_SPC; spc++) {
        ga_class_counters_t *k = &ga_class_counters[spc];
        uint64_t m = atomic_load(&k->mallocs) + c->pending_mallocs[spc];
        uint64_t f = atomic_load(&k->frees) + c->pending_frees[spc];
        mallocs += m;
        frees += f;
        remote += atomic_load(&k->remote_frees) + c->pending_remote[spc];
        refills += atomic_load(&k->refills);
        grows += atomic_load(&k->grows);
        if (spc != GA_TINY_SPC) {
            small_objects += c->objects[spc];
            small_bytes += (uint64_t)c->objects[spc] * ga_classes.size[spc];
        }
        if (classes == NULL || spc >= ga_classes.nclasses)
            continue;
        uint64_t *row = classes + (size_t)(spc - 1) * nfields;
        row[GA_CSTAT_size] = ga_classes.size[spc];
        row[GA_CSTAT_mallocs] = m;
        row[GA_CSTAT_frees] = f;
        row[GA_CSTAT_objects_in_use] = c->objects[spc];
        row[GA_CSTAT_bytes_in_use] = (uint64_t)c->objects[spc] * ga_classes.size[spc];
        row[GA_CSTAT_spans_cached] = c->spans[spc][0];
        row[GA_CSTAT_spans_partial] = c->spans[spc][1];
        row[GA_CSTAT_spans_full] = c->spans[spc][2];
        row[GA_CSTAT_mcache_refills] = atomic_load(&k->refills);
        row[GA_CSTAT_mcentral_grows] = atomic_load(&k->grows);
    }
    t[GA_STAT_bytes_in_use] = small_bytes + c->tiny_bytes + c->large_bytes;
    t[GA_STAT_objects_in_use] = small_objects + c->tiny_objects + c->large;
    t[GA_STAT_bytes_mapped] = ga_heap.narenas * GA_ARENA_SIZE;
    t[GA_STAT_bytes_released] = (uint64_t)ga_heap.pages_released << GA_PAGE_SHIFT;
    t[GA_STAT_bytes_free_resident] = (uint64_t)(ga_heap.pages_free - ga_heap.pages_released)
                                     << GA_PAGE_SHIFT;
    t[GA_STAT_bytes_metadata] = atomic_load(&ga_metadata_bytes);
    t[GA_STAT_peak_heap_bytes] = (uint64_t)ga_heap.peak_inuse_ever << GA_PAGE_SHIFT;
    t[GA_STAT_heap_pages_in_use] = ga_heap.pages_inuse;
    t[GA_STAT_heap_pages_free] = ga_heap.pages_free;
    t[GA_STAT_heap_pages_released] = ga_heap.pages_released;
    t[GA_STAT_heap_free_runs] = ga_heap.nfree_runs;
    t[GA_STAT_arenas] = ga_heap.narenas;
    t[GA_STAT_reclaimed_pages] = ga_heap.reclaimed_total;
    t[GA_STAT_reclaim_credit_pages] = ga_heap.reclaim_credit;
    t[GA_STAT_scavenged_pages] = ga_heap.scavenged_total;
    t[GA_STAT_scavenge_credit_pages] = ga_heap.scav_credit;
    t[GA_STAT_purged_os_pages] = atomic_load(&ga_purged_os_pages);
    t[GA_STAT_small_mallocs] = mallocs;
    t[GA_STAT_small_frees] = frees;
    t[GA_STAT_large_objects] = c->large;
    t[GA_STAT_large_bytes] = c->large_bytes;
    t[GA_STAT_large_mallocs] = atomic_load(&ga_large_mallocs);
    t[GA_STAT_large_frees] = atomic_load(&ga_large_frees);
    t[GA_STAT_tiny_blocks] = c->objects[GA_TINY_SPC];
    t[GA_STAT_tiny_objects] = c->tiny_objects;
    t[GA_STAT_tiny_bytes_saved] = c->tiny_objects > c->objects[GA_TINY_SPC]
                                      ? (c->tiny_objects - c->objects[GA_TINY_SPC]) * GA_TINY_SIZE
                                      : 0;
    t[GA_STAT_remote_frees] = remote;
    t[GA_STAT_mcache_refills] = refills;
    t[GA_STAT_mcentral_grows] = grows;
    ga_unlock_all();
    t[GA_STAT_misuse_errors] = atomic_load(&ga_misuse_count);
    t[GA_STAT_rss_bytes] = proc_value("/proc/self/statm", NULL) * ga_sys_page_size();
    t[GA_STAT_peak_rss_bytes] = proc_value("/proc/self/status", "VmHWM:") << 10;
    memcpy(totals, t, sizeof t);
    return 0;
}

/* ---- JSON ------------------------------------------------------------------ */

static void json_flush(int fd, ga_buf_t *b)
{
    ga_write_all(fd, b->p, b->len);
    b->len = 0;
    b->p[0] = '\0';
}

static void json_field(int fd, ga_buf_t *b, const char *sep, const char *name, uint64_t v)
{
    if (b->len + 96 > b->cap)
        json_flush(fd, b);
    ga_buf_str(b, sep);
    ga_buf_str(b, "\"");
    ga_buf_str(b, name);
    ga_buf_str(b, "\": ");
    ga_buf_uint(b, v);
}

static uint64_t json_totals[GA_STAT_NTOTALS];
static uint64_t json_classes[GA_MAX_SIZE_CLASSES * GA_STAT_NCLASS];

int ga_stats_write_json(int fd)
{
    char line[1024];
    ga_buf_t b = {line, 0, sizeof line};
    if (ga_stats_snapshot(json_totals, GA_STAT_NTOTALS, json_classes, GA_MAX_SIZE_CLASSES,
                          GA_STAT_NCLASS) != 0)
        return -1;
    ga_buf_str(&b, "{\n  \"version\": ");
    ga_buf_uint(&b, GA_STATS_VERSION);
    ga_buf_str(&b, ",\n  \"pid\": ");
    ga_buf_uint(&b, (uint64_t)ga_sys_getpid());
    ga_buf_str(&b, ",\n  \"size_classes\": \"");
    ga_buf_str(&b, ga_classes.name);
    ga_buf_str(&b, "\",\n  \"totals\": {");
    for (unsigned i = 0; i < GA_STAT_NTOTALS; i++)
        json_field(fd, &b, i ? ", " : "", total_names[i], json_totals[i]);
    ga_buf_str(&b, "},\n  \"classes\": [");
    for (unsigned r = 0; r < ga_classes.nclasses - 1; r++) {
        json_field(fd, &b, r ? ",\n    {" : "\n    {", "class", r + 1);
        for (unsigned i = 0; i < GA_STAT_NCLASS; i++)
            json_field(fd, &b, ", ", class_names[i], json_classes[r * GA_STAT_NCLASS + i]);
        ga_buf_str(&b, "}");
    }
    ga_buf_str(&b, "\n  ]\n}\n");
    json_flush(fd, &b);
    return 0;
}

void ga_path_with_pid(const char *tmpl, char *out, size_t cap)
{
    ga_buf_t b = {out, 0, cap};
    out[0] = '\0';
    for (const char *p = tmpl; *p != '\0' && b.len + 24 < b.cap; p++) {
        if (p[0] == '%' && p[1] == 'p') {
            ga_buf_uint(&b, (uint64_t)ga_sys_getpid());
            p++;
        } else {
            out[b.len++] = *p;
            out[b.len] = '\0';
        }
    }
}

/* GOALLOC_STATS=PATH at exit; every %p in PATH becomes the pid. */
void ga_stats_write_at_exit(void)
{
    const char *tmpl = ga_opts.stats_path;
    char path[512];
    if (tmpl == NULL || *tmpl == '\0')
        return;
    ga_path_with_pid(tmpl, path, sizeof path);
    int fd = ga_sys_open(path, 1);
    if (fd < 0) {
        ga_warn("GOALLOC_STATS: cannot write ", path, NULL);
        return;
    }
    ga_stats_write_json(fd);
    ga_sys_close(fd);
}
