/* Recorded size profiles (Go's mprof.go records sampled allocation sites;
 * this records every request's size instead): GOALLOC_PROFILE=PATH makes
 * the library count the requested sizes — each small size 0..32768 and the
 * large requests together — and, for each, how many were live when the
 * requested bytes live reached their peak, and write it as JSON at exit
 * (%p in PATH becomes the pid). The fitting of size-class tables to a
 * workload reads it (goalloc_ffi.profile).
 *
 * Cost when off: none on the fast paths. When on, ga_apply_options closes
 * the inline malloc and free paths (as the hardening options do), so every
 * call reaches malloc_slow / free_slow, which record here under one lock.
 *
 * The requested size of each live object is kept where free can find it:
 * a uint16_t per slot of a small span and a uint8_t per byte of a tiny span
 * (prof_table, from metadata pools, released with the span's bitmaps), and
 * prof_request of a large span.
 *
 * The peak is exact, at O(1) per call: epoch counts the times the live
 * requested bytes rose above their previous peak. Before a size's live
 * count changes for the first time since the last peak, its value then is
 * saved with the epoch's stamp; so at any time a size's live count at the
 * peak is its saved value if its stamp is the current epoch, else its
 * current count. See malloc.c for the overview. */
#include <string.h>

#include "internal.h"

#define NSIZES (GA_MAX_SMALL_SIZE + 1) /* small requests 0..32768 */
#define LARGE NSIZES                  /* the slot of every large request */
#define NSLOTS (NSIZES + 1)

bool ga_profiling;

/* Everything below is under prof_lock. Invariants: live_bytes == sum of
 * size * live[size] over small sizes + large_live; peak >= live_bytes;
 * stamp[i] <= epoch; live[i] <= count[i]. */
static pthread_mutex_t prof_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    uint64_t *count;       /* [NSLOTS] requests */
    uint64_t *live;        /* [NSLOTS] live now */
    uint64_t *snap;        /* [NSLOTS] live at the peak, when stamp[i] == epoch */
    uint64_t *stamp;       /* [NSLOTS] */
    size_t mapped;         /* bytes of the four arrays */
    uint64_t large_bytes, large_live, large_snap; /* large requests' bytes; large_snap as snap */
    uint64_t live_bytes, peak, epoch;
    ga_fixalloc_t small_tables, tiny_tables;
    const char *path;      /* GOALLOC_PROFILE (the environment's string) */
} prof;

void ga_prof_lock(void) { pthread_mutex_lock(&prof_lock); }
void ga_prof_unlock(void) { pthread_mutex_unlock(&prof_lock); }
void ga_prof_fork_child(void) { pthread_mutex_init(&prof_lock, NULL); }

unsigned ga_profile_version(void) { return GA_PROFILE_VERSION; }

/* Clears the counts (REQUIRES: prof_lock); false if the arrays cannot be
 * mapped. */
static bool reset_locked(void)
{
    size_t bytes = 4 * NSLOTS * sizeof(uint64_t), os = ga_sys_page_size();
    bytes = (bytes + os - 1) & ~(os - 1);
    if (prof.count == NULL) {
        uint64_t *a = ga_sys_reserve(0, bytes, os);
        if (a == NULL)
            return false;
        prof.count = a;
        prof.live = a + NSLOTS;
        prof.snap = a + 2 * NSLOTS;
        prof.stamp = a + 3 * NSLOTS;
        prof.mapped = bytes;
        atomic_fetch_add_explicit(&ga_metadata_bytes, bytes, memory_order_relaxed);
        ga_fixalloc_init(&prof.small_tables, GA_MAX_OBJS_PER_SPAN * sizeof(uint16_t),
                         ga_mheap_alloc_meta);
        ga_fixalloc_init(&prof.tiny_tables, GA_PAGE_SIZE, ga_mheap_alloc_meta);
    } else {
        memset(prof.count, 0, 4 * NSLOTS * sizeof(uint64_t));
    }
    prof.large_bytes = prof.large_live = prof.large_snap = 0;
    prof.live_bytes = prof.peak = 0;
    prof.epoch = 1;
    return true;
}

/* Start-up (before ga_apply_options): profiling is on when path is set. */
void ga_prof_init(const char *path)
{
    if (path == NULL || *path == '\0')
        return;
    prof.path = path;
    pthread_mutex_lock(&prof_lock);
    bool ok = reset_locked();
    pthread_mutex_unlock(&prof_lock);
    if (!ok) {
        ga_warn("GOALLOC_PROFILE: no memory for the profile; not profiling", NULL, NULL);
        return;
    }
    ga_profiling = true;
}

/* ---- counting (REQUIRES: prof_lock) --------------------------------------------- */

static void touch(unsigned i)
{
    if (prof.stamp[i] != prof.epoch) {
        prof.snap[i] = prof.live[i];
        if (i == LARGE)
            prof.large_snap = prof.large_live;
        prof.stamp[i] = prof.epoch;
    }
}

static void count_new(size_t n)
{
    unsigned i = n <= GA_MAX_SMALL_SIZE ? (unsigned)n : LARGE;
    touch(i);
    prof.count[i]++;
    prof.live[i]++;
    if (i == LARGE) {
        prof.large_bytes += n;
        prof.large_live += n;
    }
    prof.live_bytes += n;
    if (prof.live_bytes > prof.peak) {
        prof.peak = prof.live_bytes;
        prof.epoch++; /* every current count is now the peak's */
    }
}

static void count_gone(size_t n)
{
    unsigned i = n <= GA_MAX_SMALL_SIZE ? (unsigned)n : LARGE;
    touch(i);
    prof.live[i]--;
    if (i == LARGE)
        prof.large_live -= n;
    prof.live_bytes -= n;
}

/* ---- where each live object's request is kept ------------------------------------ */

/* The request table of small or tiny span s, made on first use. */
static void *table_of(ga_span_t *s)
{
    if (s->prof_table == NULL) {
        bool tiny = s->spc == GA_TINY_SPC;
        void *t = ga_fixalloc_alloc(tiny ? &prof.tiny_tables : &prof.small_tables);
        if (t == NULL)
            return NULL;
        memset(t, 0xFF, tiny ? GA_PAGE_SIZE : s->nelems * sizeof(uint16_t)); /* unknown */
        s->prof_table = t;
    }
    return s->prof_table;
}

/* Records that the object at p (in s) was requested with n bytes; false
 * when there is no room to remember it. */
static bool remember(ga_span_t *s, uintptr_t p, size_t n)
{
    if (s->spc == 0) {
        s->prof_request = n + 1;
        return true;
    }
    void *t = table_of(s);
    if (t == NULL)
        return false;
    if (s->spc == GA_TINY_SPC)
        ((uint8_t *)t)[p - s->base] = (uint8_t)n;
    else
        ((uint16_t *)t)[ga_span_index(s, p)] = (uint16_t)n;
    return true;
}

/* The request the object at p was made with, forgotten; false if unknown
 * (allocated before profiling started, or no room then). */
static bool forget(ga_span_t *s, uintptr_t p, size_t *n)
{
    if (s->spc == 0) {
        if (s->prof_request == 0)
            return false;
        *n = s->prof_request - 1;
        s->prof_request = 0;
        return true;
    }
    if (s->prof_table == NULL)
        return false;
    if (s->spc == GA_TINY_SPC) {
        uint8_t *t = (uint8_t *)s->prof_table + (p - s->base);
        if (*t == GA_PROF_UNKNOWN8)
            return false;
        *n = *t;
        *t = GA_PROF_UNKNOWN8;
    } else {
        uint16_t *t = (uint16_t *)s->prof_table + ga_span_index(s, p);
        if (*t == GA_PROF_UNKNOWN16)
            return false;
        *n = *t;
        *t = GA_PROF_UNKNOWN16;
    }
    return true;
}

/* ---- the hooks (malloc.c, mspan.c) ----------------------------------------------- */

void *ga_prof_new(void *ptr, size_t n)
{
    if (ptr == NULL || !ga_profiling)
        return ptr;
    ga_span_t *s = ga_span_of((uintptr_t)ptr);
    pthread_mutex_lock(&prof_lock);
    if (remember(s, (uintptr_t)ptr, n))
        count_new(n);
    pthread_mutex_unlock(&prof_lock);
    return ptr;
}

void ga_prof_free(ga_span_t *s, uintptr_t p)
{
    size_t n;
    pthread_mutex_lock(&prof_lock);
    if (forget(s, p, &n))
        count_gone(n);
    pthread_mutex_unlock(&prof_lock);
}

void ga_prof_resize(ga_span_t *s, uintptr_t p, size_t n)
{
    size_t old;
    pthread_mutex_lock(&prof_lock);
    if (forget(s, p, &old))
        count_gone(old);
    if (remember(s, p, n))
        count_new(n);
    pthread_mutex_unlock(&prof_lock);
}

void ga_prof_span_free(ga_span_t *s)
{
    if (s->prof_table == NULL)
        return;
    pthread_mutex_lock(&prof_lock);
    ga_fixalloc_free(s->spc == GA_TINY_SPC ? &prof.tiny_tables : &prof.small_tables, s->prof_table);
    s->prof_table = NULL;
    pthread_mutex_unlock(&prof_lock);
}

/* ---- JSON ---------------------------------------------------------------------- */

/* Writes b out unless a write failed before; *err keeps the first failure. */
static void flush(int fd, ga_buf_t *b, int *err)
{
    if (*err == 0)
        *err = ga_write_all(fd, b->p, b->len);
    b->len = 0;
}

static uint64_t at_peak(unsigned i)
{
    return prof.stamp[i] == prof.epoch ? prof.snap[i] : prof.live[i];
}

int ga_profile_write_json(int fd)
{
    char line[2048];
    ga_buf_t b = {line, 0, sizeof line};
    int err = 0;
    if (!ga_profiling)
        return -1;
    pthread_mutex_lock(&prof_lock);
    ga_buf_str(&b, "{\"goalloc_profile\": ");
    ga_buf_uint(&b, GA_PROFILE_VERSION);
    ga_buf_str(&b, ", \"pid\": ");
    ga_buf_uint(&b, (uint64_t)ga_sys_getpid());
    ga_buf_str(&b, ", \"sizeclasses\": \"");
    for (const char *s = ga_classes.name; *(s = ga_buf_json(&b, s)) != '\0';)
        flush(fd, &b, &err);
    ga_buf_str(&b, "\",\n \"peak_live_bytes\": ");
    ga_buf_uint(&b, prof.peak);
    ga_buf_str(&b, ",\n \"requests\": [");
    const char *sep = "";
    for (unsigned i = 0; i < NSIZES; i++) {
        if (prof.count[i] == 0)
            continue;
        if (b.len + 128 > b.cap)
            flush(fd, &b, &err);
        ga_buf_str(&b, sep);
        ga_buf_str(&b, "{\"size\": ");
        ga_buf_uint(&b, i);
        ga_buf_str(&b, ", \"count\": ");
        ga_buf_uint(&b, prof.count[i]);
        ga_buf_str(&b, ", \"live_at_peak\": ");
        ga_buf_uint(&b, at_peak(i));
        ga_buf_str(&b, "}");
        sep = ",\n  ";
    }
    ga_buf_str(&b, "],\n \"large\": {\"count\": ");
    ga_buf_uint(&b, prof.count[LARGE]);
    ga_buf_str(&b, ", \"bytes\": ");
    ga_buf_uint(&b, prof.large_bytes);
    ga_buf_str(&b, ", \"live_at_peak\": ");
    ga_buf_uint(&b, at_peak(LARGE));
    ga_buf_str(&b, ", \"live_bytes_at_peak\": ");
    ga_buf_uint(&b, prof.stamp[LARGE] == prof.epoch ? prof.large_snap : prof.large_live);
    ga_buf_str(&b, "}}\n");
    flush(fd, &b, &err);
    pthread_mutex_unlock(&prof_lock);
    return err;
}

void ga_prof_write_at_exit(void)
{
    if (ga_profiling)
        ga_write_file_at_exit("GOALLOC_PROFILE", prof.path, ga_profile_write_json);
}

/* ---- tests ----------------------------------------------------------------------- */

static void forget_span(ga_span_t *s, void *arg)
{
    (void)arg;
    if (s->prof_table != NULL)
        memset(s->prof_table, 0xFF, s->spc == GA_TINY_SPC ? GA_PAGE_SIZE : s->nelems * sizeof(uint16_t));
    s->prof_request = 0;
}

/* Starts (on) a new profile of this heap, or stops it, from any state:
 * what is live now is not in the new profile. Returns 0, -1 without memory. */
int ga_prof_restart(int on)
{
    ga_ensure_init();
    if (on) {
        ga_lock_all(); /* prof_lock among them */
        ga_mheap_for_each_span_locked(forget_span, NULL);
        bool ok = reset_locked();
        ga_unlock_all();
        if (!ok)
            return -1;
    }
    ga_lock_all();
    ga_profiling = on != 0;
    ga_apply_options_locked();
    ga_unlock_all();
    return 0;
}
