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

#include "inline.h"

#define NSIZES (GA_MAX_SMALL_SIZE + 1) /* small requests 0..32768 */
#define LARGE NSIZES                  /* the slot of every large request */
#define NSLOTS (NSIZES + 1)

bool ga_profiling;

/* Everything below is under prof_lock. Invariants: live_bytes == sum of
 * size * live[size] over small sizes + large_live; peak >= live_bytes;
 * stamp[i] <= epoch; live[i] <= count[i]. */
static ga_lock_t prof_lock = GA_LOCK_INIT;
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

void ga_prof_lock(void) { ga_lock(&prof_lock); }
void ga_prof_unlock(void) { ga_unlock(&prof_lock); }
void ga_prof_fork_child(void) { ga_lock_init(&prof_lock); }

unsigned ga_profile_version(void) { return GA_PROFILE_VERSION; }

/* Clears the counts (REQUIRES: prof_lock); false if the arrays cannot be
 * mapped. */
static bool reset_locked(void)
{
    ga_assert_held(&prof_lock);
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
    ga_lock(&prof_lock);
    bool ok = reset_locked();
    ga_unlock(&prof_lock);
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
    ga_lock(&prof_lock);
    if (remember(s, (uintptr_t)ptr, n))
        count_new(n);
    ga_unlock(&prof_lock);
    return ptr;
}

void ga_prof_free(ga_span_t *s, uintptr_t p)
{
    size_t n;
    ga_lock(&prof_lock);
    if (forget(s, p, &n))
        count_gone(n);
    ga_unlock(&prof_lock);
}

void ga_prof_resize(ga_span_t *s, uintptr_t p, size_t n)
{
    size_t old;
    ga_lock(&prof_lock);
    if (forget(s, p, &old))
        count_gone(old);
    if (remember(s, p, n))
        count_new(n);
    ga_unlock(&prof_lock);
}

void ga_prof_span_free(ga_span_t *s)
{
    if (s->prof_table == NULL)
        return;
    ga_lock(&prof_lock);
    ga_fixalloc_free(s->spc == GA_TINY_SPC ? &prof.tiny_tables : &prof.small_tables, s->prof_table);
    s->prof_table = NULL;
    ga_unlock(&prof_lock);
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
    ga_lock(&prof_lock);
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
    ga_unlock(&prof_lock);
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

/* ---- sampled heap profile (Go's MemProfileRate: mProf_Malloc, mProf_Free) ------- */

/* GOALLOC=profile_rate=BYTES: the mean number of bytes handed out between
 * two samples, drawn per thread from an exponential distribution as Go's
 * nextSample does, so that every byte has the same chance 1/rate of being
 * the one that takes a sample (1: every object). A sample takes the stack
 * (ga_prof_stack, before any lock: ga_sys_backtrace) and counts the object in the bucket of
 * that stack; the object's address goes into a map so that its free, by
 * any thread, is counted there too: live (inuse) = allocated - freed.
 *
 * Cost when off: none on the inline paths (malloc_slow's one test of
 * ga_slow_special covers it). When on, the inline paths stay open:
 * tiny and large requests (always on the slow path) count bytes down, and
 * each small class counts objects down by cutting its span's window
 * (ga_prof_sample_due / _cut, see ga_mcache_t): the inline path hands out
 * the objects before the sampled one, the sampled one finds the window
 * empty and comes to the slow path. A span that holds a sampled object
 * closes its inline free path (free_owner NULL), and free_slow locks and
 * looks an object up only where its span's filter (span->prof_sampled,
 * one bit per (p >> 4) mod 64) says a sample may be (its owner's other
 * frees take the inline path's way there). A sample's record is a tail
 * call of malloc's where it can be, so that the walk starts at malloc's
 * caller instead of unwinding goalloc's frames. Memory: buckets of 600
 * bytes from a metadata pool, chain heads (one page at the first
 * bucket, doubled to stay above the number of buckets) and an
 * open-addressing map of sampled objects (32 bytes each, one page at
 * first, grown by doubling), all mmap'd and under prof_lock. GOALLOC_HEAP_PROFILE=PATH writes the profile as
 * pprof at exit (pprof.c). */

uint64_t ga_sample_rate;
static const char *heap_path; /* GOALLOC_HEAP_PROFILE (the environment's string) */

typedef struct sampled {
    uintptr_t addr;  /* 0: empty */
    ga_bucket_t *b;
    uint64_t req;    /* requested bytes */
    uint64_t size;   /* bytes handed out (realloc in place may change the span) */
} sampled_t;

/* Under prof_lock. */
static struct {
    ga_bucket_t **heads; /* chains by hash, made at the first bucket */
    size_t nheads, nbuckets; /* heads: a power of two, grown to stay above nbuckets */
    ga_bucket_t *all;
    ga_fixalloc_t buckets;
    sampled_t *map;
    size_t cap, used;    /* map: slots (a power of two), entries */
    uint64_t seed;
    uint64_t dropped;    /* samples not recorded: no memory */
} smp;

static _Atomic uint64_t rng_streams;

static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* ln x for 0 < x <= 1, without libm: x = m 2^e with m in [1, 2), ln m =
 * 2 atanh((m-1)/(m+1)) by its series (|t| < 1/3: 12 terms, < 1e-12). */
static double ln01(double x)
{
    int e = 0;
    while (x < 1.0) {
        x *= 2.0;
        e--;
    }
    double t = (x - 1) / (x + 1), t2 = t * t, term = t, sum = 0;
    for (int k = 1; k < 26; k += 2, term *= t2)
        sum += term / k;
    return 2 * sum + e * 0.69314718055994530942;
}

/* e^-x for x >= 0, without libm: 2^-k e^-r with r in [0, ln 2). */
static double exp_neg(double x)
{
    if (x > 700)
        return 0;
    int k = (int)(x / 0.69314718055994530942);
    double r = x - k * 0.69314718055994530942, term = 1, sum = 1;
    for (int i = 1; i < 20; i++) {
        term *= -r / i;
        sum += term;
    }
    while (k-- > 0)
        sum *= 0.5;
    return sum;
}

/* Go's nextSample: an exponential variate of mean rate, at least 1. */
static uint64_t next_sample(ga_mcache_t *mc)
{
    if (mc->sample_rng == 0)
        mc->sample_rng = smp.seed + atomic_fetch_add(&rng_streams, 1) * 0x2545F4914F6CDD1Dull + 1;
    uint64_t r = splitmix(&mc->sample_rng);
    double u = ((double)(r >> 11) + 1) * (1.0 / 9007199254740992.0); /* (0, 1] */
    double v = -ln01(u) * (double)ga_sample_rate;
    return v < 1 ? 1 : v > 1e18 ? (uint64_t)1e18 : (uint64_t)v;
}

double ga_prof_scale(uint64_t count, uint64_t bytes)
{
    if (count == 0 || bytes == 0 || ga_sample_rate <= 1)
        return 1;
    double avg = (double)bytes / (double)count;
    return 1 / (1 - exp_neg(avg / (double)ga_sample_rate));
}

/* Start-up: sampling is on when profile_rate > 0 (GOALLOC_HEAP_PROFILE
 * alone: Go's default, 512 KiB); path gets the profile at exit. */
void ga_prof_sample_init(const char *path)
{
    heap_path = path != NULL && *path != '\0' ? path : NULL;
    if (ga_opts.profile_rate == GA_PROFILE_RATE_UNSET)
        ga_opts.profile_rate = heap_path ? GA_PROFILE_RATE_DEFAULT : 0;
    if (ga_opts.profile_rate == 0)
        return;
    ga_fixalloc_init(&smp.buckets, sizeof(ga_bucket_t), ga_mheap_alloc_meta);
    ga_sys_random(&smp.seed, sizeof smp.seed);
    ga_sample_rate = ga_opts.profile_rate;
}

/* goalloc's own code, whose frames are skipped: the executable segments
 * of this object (the preload library or the test extension), read from
 * its program headers in memory (__ehdr_start, a hidden symbol the linker
 * defines), once; racing first calls compute the same. */
extern const char __ehdr_start[] __attribute__((visibility("hidden")));
static uintptr_t text_lo, text_hi;

static void find_text(void)
{
    typedef struct { unsigned char ident[16]; uint16_t type, machine; uint32_t version;
                     uint64_t entry, phoff, shoff; uint32_t flags; uint16_t ehsize, phentsize,
                     phnum, shentsize, shnum, shstrndx; } ehdr_t;
    typedef struct { uint32_t type, flags; uint64_t offset, vaddr, paddr, filesz, memsz, align; } phdr_t;
    const ehdr_t *e = (const ehdr_t *)__ehdr_start;
    const phdr_t *ph = (const phdr_t *)(__ehdr_start + e->phoff);
    uintptr_t bias = (uintptr_t)__ehdr_start, lo = UINTPTR_MAX, hi = 0;
    for (unsigned i = 0; i < e->phnum; i++)
        if (ph[i].type == 1 /* PT_LOAD */ && ph[i].offset == 0)
            bias -= (uintptr_t)ph[i].vaddr;
    for (unsigned i = 0; i < e->phnum; i++)
        if (ph[i].type == 1 && (ph[i].flags & 1 /* PF_X */)) {
            lo = bias + ph[i].vaddr < lo ? bias + ph[i].vaddr : lo;
            hi = bias + ph[i].vaddr + ph[i].memsz > hi ? bias + ph[i].vaddr + ph[i].memsz : hi;
        }
    __atomic_store_n(&text_lo, lo, __ATOMIC_RELAXED);
    __atomic_store_n(&text_hi, hi, __ATOMIC_RELEASE);
}

/* The stack below goalloc's frames into stk; inlined into record_sample,
 * so that the walk has one frame less to unwind. */
static inline __attribute__((always_inline)) unsigned prof_stack(uintptr_t *stk, unsigned max)
{
    void *raw[GA_PROF_MAX_STACK + 16];
    if (__atomic_load_n(&text_hi, __ATOMIC_ACQUIRE) == 0)
        find_text();
    uintptr_t lo = __atomic_load_n(&text_lo, __ATOMIC_RELAXED), hi = text_hi;
    int n = ga_sys_backtrace(raw, GA_PROF_MAX_STACK + 16);
    int i = 0;
    while (i < n && (uintptr_t)raw[i] >= lo && (uintptr_t)raw[i] < hi)
        i++;
    unsigned k = 0;
    for (; i < n && k < max; i++)
        stk[k++] = (uintptr_t)raw[i];
    return k;
}

unsigned ga_prof_stack(uintptr_t *stk, unsigned max)
{
    return prof_stack(stk, max);
}

static uint64_t hash_stack(const uintptr_t *stk, unsigned n)
{
    uint64_t h = 0x84222325CBF29CE4ull ^ n;
    for (unsigned i = 0; i < n; i++)
        h = (h ^ stk[i]) * 0x100000001B3ull, h ^= h >> 29;
    return h;
}

/* Room for one more bucket in the chains (REQUIRES: prof_lock): the
 * heads are made at the first bucket, one OS page of them, and doubled
 * (rehashed from the list of all buckets) when there are as many buckets
 * as heads, so a process with a few stacks does not hold 512 KiB of heads.
 * Without memory to grow, the chains get longer; false only without any. */
static bool heads_room(void)
{
    if (smp.nbuckets < smp.nheads)
        return true;
    size_t os = ga_sys_page_size();
    size_t bytes = smp.nheads ? 2 * smp.nheads * sizeof *smp.heads : os;
    ga_bucket_t **heads = ga_sys_reserve(0, bytes, os);
    if (heads == NULL)
        return smp.heads != NULL;
    size_t n = bytes / sizeof *heads;
    for (ga_bucket_t *b = smp.all; b != NULL; b = b->all) {
        b->next = heads[b->hash & (n - 1)];
        heads[b->hash & (n - 1)] = b;
    }
    if (smp.heads != NULL) {
        ga_sys_free(smp.heads, smp.nheads * sizeof *smp.heads);
        atomic_fetch_sub_explicit(&ga_metadata_bytes, smp.nheads * sizeof *smp.heads,
                                  memory_order_relaxed);
    }
    atomic_fetch_add_explicit(&ga_metadata_bytes, bytes, memory_order_relaxed);
    smp.heads = heads;
    smp.nheads = n;
    return true;
}

/* The bucket of stack stk (REQUIRES: prof_lock); NULL without memory. */
static ga_bucket_t *bucket_of(const uintptr_t *stk, unsigned n)
{
    uint64_t h = hash_stack(stk, n);
    if (smp.heads != NULL)
        for (ga_bucket_t *b = smp.heads[h & (smp.nheads - 1)]; b != NULL; b = b->next)
            if (b->hash == h && b->nstk == n && memcmp(b->stk, stk, n * sizeof *stk) == 0)
                return b;
    if (!heads_room())
        return NULL;
    ga_bucket_t *b = ga_fixalloc_alloc(&smp.buckets);
    if (b == NULL)
        return NULL;
    ga_bucket_t **head = &smp.heads[h & (smp.nheads - 1)];
    smp.nbuckets++;
    memset(b, 0, sizeof *b);
    b->hash = h;
    b->nstk = n;
    memcpy(b->stk, stk, n * sizeof *stk);
    b->next = *head;
    *head = b;
    b->all = smp.all;
    smp.all = b;
    return b;
}

static size_t slot_of(uintptr_t a, size_t cap)
{
    uint64_t h = (uint64_t)a * 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 20) & (cap - 1);
}

/* Room for one more entry in the object map (REQUIRES: prof_lock): grows
 * it to twice its size at half full. */
static bool map_room(void)
{
    if (2 * (smp.used + 1) <= smp.cap)
        return true;
    /* one OS page at first (a few samples live touch no more), then doubled */
    size_t cap = smp.cap ? 2 * smp.cap : ga_sys_page_size() / sizeof(sampled_t);
    size_t bytes = cap * sizeof(sampled_t);
    sampled_t *m = ga_sys_reserve(0, bytes, ga_sys_page_size());
    if (m == NULL)
        return false;
    for (size_t i = 0; i < smp.cap; i++) {
        if (smp.map[i].addr == 0)
            continue;
        size_t j = slot_of(smp.map[i].addr, cap);
        while (m[j].addr != 0)
            j = (j + 1) & (cap - 1);
        m[j] = smp.map[i];
    }
    if (smp.map != NULL) {
        ga_sys_free(smp.map, smp.cap * sizeof(sampled_t));
        atomic_fetch_sub_explicit(&ga_metadata_bytes, smp.cap * sizeof(sampled_t), memory_order_relaxed);
    }
    atomic_fetch_add_explicit(&ga_metadata_bytes, bytes, memory_order_relaxed);
    smp.map = m;
    smp.cap = cap;
    return true;
}

/* Removes the entry of a, if any, into *out (REQUIRES: prof_lock); linear
 * probing with backward-shift deletion, so no tombstones. */
static bool map_take(uintptr_t a, sampled_t *out)
{
    if (smp.cap == 0)
        return false;
    size_t mask = smp.cap - 1, i = slot_of(a, smp.cap);
    while (smp.map[i].addr != a) {
        if (smp.map[i].addr == 0)
            return false;
        i = (i + 1) & mask;
    }
    *out = smp.map[i];
    for (size_t j = (i + 1) & mask; smp.map[j].addr != 0; j = (j + 1) & mask) {
        size_t home = slot_of(smp.map[j].addr, smp.cap);
        /* j's entry may move to the hole at i unless its home lies in (i, j] */
        if (((j - home) & mask) >= ((j - i) & mask)) {
            smp.map[i] = smp.map[j];
            i = j;
        }
    }
    smp.map[i].addr = 0;
    smp.used--;
    return true;
}

/* Bytes a sampled object of n requested bytes was handed in span s. */
static size_t handed(const ga_span_t *s, size_t n)
{
    if (s->spc == 0)
        return s->npages << GA_PAGE_SHIFT;
    if (s->spc == GA_TINY_SPC)
        return n ? n : 1;
    return s->elemsize;
}

static GA_NOINLINE void *record_sample(void *p, size_t n, ga_span_t *s, size_t size)
{
    uintptr_t stk[GA_PROF_MAX_STACK];
    unsigned depth = prof_stack(stk, GA_PROF_MAX_STACK);
    ga_lock(&prof_lock);
    sampled_t old;
    if (map_take((uintptr_t)p, &old)) /* freed unseen (cannot happen): forget it */
        atomic_fetch_sub_explicit(&ga_span_of((uintptr_t)p)->prof_samples, 1, memory_order_relaxed);
    ga_bucket_t *b = map_room() ? bucket_of(stk, depth) : NULL;
    if (b == NULL) {
        smp.dropped++;
    } else {
        size_t i = slot_of((uintptr_t)p, smp.cap);
        while (smp.map[i].addr != 0)
            i = (i + 1) & (smp.cap - 1);
        smp.map[i] = (sampled_t){(uintptr_t)p, b, n, size};
        smp.used++;
        b->allocs++;
        b->alloc_bytes += size;
        b->alloc_req += n;
        atomic_fetch_add_explicit(&s->prof_samples, 1, memory_order_relaxed);
        atomic_fetch_or_explicit(&s->prof_sampled, 1ull << (((uintptr_t)p >> 4) & 63),
                                 memory_order_release);
        /* its frees take the slow path from now on (the allocating thread
         * owns s, or holds the shared cache that does: no owner change
         * races with this; ga_span_set_owner keeps it closed) */
        atomic_store_explicit(&s->free_owner, NULL, memory_order_relaxed);
    }
    ga_unlock(&prof_lock);
    return p;
}

/* Whether size bytes handed out by the calling thread take a sample (its
 * byte count down, in its cache). Apart, so that ga_prof_sample_bytes
 * takes no local's address and its record is a tail call. */
static GA_NOINLINE bool bytes_due(size_t size)
{
    bool locked;
    ga_mcache_t *mc = ga_mcache_get(&locked);
    if (mc->next_sample == 0)
        mc->next_sample = next_sample(mc);
    bool take = size >= mc->next_sample;
    mc->next_sample = take ? next_sample(mc) : mc->next_sample - size;
    if (locked)
        ga_mcache_put_shared();
    return take;
}

void *ga_prof_sample_bytes(void *p, size_t n)
{
    if (p == NULL || ga_sample_rate == 0 || ga_is_zero_object((uintptr_t)p))
        return p;
    ga_span_t *s = ga_span_of((uintptr_t)p);
    size_t size = handed(s, n);
    if (ga_sample_rate != 1 && !bytes_due(size))
        return p;
    return record_sample(p, n, s, size);
}

/* Objects of size bytes before the next sampled one: the bytes to the
 * next point of a Poisson process, in whole objects (memoryless, so this
 * is Go's chance 1 - e^(-size/rate) for every object). */
static uint32_t objects_left(ga_mcache_t *mc, uint32_t size)
{
    if (ga_sample_rate == 1)
        return 0;
    uint64_t k = next_sample(mc) / size;
    return k >= UINT32_MAX - 1 ? UINT32_MAX - 2 : (uint32_t)k;
}

/* Counts down the objects the inline path took from the cut window since
 * it was cut, window being what is left of it (all of it was taken when
 * the span is no longer current). */
static void account(ga_mcache_t *mc, unsigned spc, uint64_t window)
{
    ga_span_t *s = mc->alloc[spc];
    uint32_t left = mc->sample_left[spc] == 0 ? objects_left(mc, ga_classes.size[spc])
                                              : mc->sample_left[spc] - 1;
    uint32_t taken = mc->sample_granted[spc];
    if (s == mc->sample_span[spc] && s != &ga_emptyspan) {
        unsigned now = ga_popcount64(window);
        taken = now >= taken ? 0 : taken - now;
    }
    mc->sample_granted[spc] = 0;
    mc->sample_span[spc] = NULL;
    left -= taken < left ? taken : left;
    mc->sample_left[spc] = left + 1;
}

bool ga_prof_sample_due_slow(ga_mcache_t *mc, unsigned spc)
{
    ga_span_t *s = mc->alloc[spc];
    if (s != &ga_emptyspan && s->alloc_cache == 0) {
        /* the cut window ran out: give back the rest of its 64-slot word
         * (free slots at and past freeindex, as alloc_bits last folded) */
        uint32_t fi = s->freeindex;
        if ((fi & 63) != 0 && fi < s->nelems)
            s->alloc_cache = ~s->alloc_bits[fi >> 6] >> (fi & 63);
        mc->sample_span[spc] = NULL; /* all it granted was taken */
    }
    account(mc, spc, s->alloc_cache);
    uint32_t left = mc->sample_left[spc] - 1;
    if (left != 0) {
        mc->sample_left[spc] = left; /* left - 1 after this one, stored + 1 */
        return false;
    }
    mc->sample_left[spc] = objects_left(mc, ga_classes.size[spc]) + 1;
    return true;
}

void ga_prof_sample_cut_slow(ga_mcache_t *mc, unsigned spc)
{
    ga_span_t *s = mc->alloc[spc];
    uint64_t c = s->alloc_cache, rest = c;
    uint32_t left = mc->sample_left[spc] - 1;
    if (ga_popcount64(c) > left) {
        for (uint32_t i = 0; i < left; i++)
            rest &= rest - 1;
        c &= ~rest; /* the lowest `left` free slots */
        s->alloc_cache = c;
    }
    mc->sample_span[spc] = s;
    mc->sample_granted[spc] = (uint8_t)ga_popcount64(c);
    /* Its sampled objects all freed: the owner's frees take the inline
     * path again (only the owner samples into its current span, so none
     * can appear meanwhile). */
    if (s != &ga_emptyspan && atomic_load_explicit(&s->free_owner, memory_order_relaxed) == NULL &&
        atomic_load_explicit(&s->prof_samples, memory_order_acquire) == 0)
        ga_span_set_owner(s, mc);
}

void ga_prof_sample_recut(ga_mcache_t *mc, unsigned spc, uint64_t window)
{
    account(mc, spc, window);
    ga_prof_sample_cut_slow(mc, spc);
}

void *ga_prof_sample_record(void *p, size_t n)
{
    ga_span_t *s = ga_span_of((uintptr_t)p);
    return record_sample(p, n, s, s->elemsize); /* a tail call: no frame of its own */
}

void ga_prof_sample_free_slow(ga_span_t *s, uintptr_t p)
{
    sampled_t e;
    ga_lock(&prof_lock);
    if (map_take(p, &e)) {
        e.b->frees++;
        e.b->free_bytes += e.size;
        e.b->free_req += e.req;
        if (atomic_fetch_sub_explicit(&s->prof_samples, 1, memory_order_release) == 1)
            atomic_store_explicit(&s->prof_sampled, 0, memory_order_relaxed); /* under prof_lock */
    }
    ga_unlock(&prof_lock);
}

ga_bucket_t *ga_prof_buckets_locked(void)
{
    ga_assert_held(&prof_lock);
    return smp.all;
}

int ga_heap_profile_dump(const char *path)
{
    char full[GA_PATH_MAX];
    if (ga_sample_rate == 0)
        return -1;
    if (path == NULL || !ga_path_with_pid(path, full, sizeof full))
        return 36; /* ENAMETOOLONG */
    int fd = ga_sys_open_file(full, GA_FILE_WRITE);
    if (fd < 0)
        return -fd;
    int err = ga_heap_profile_write(fd);
    ga_sys_close(fd);
    return err;
}

/* A profile on demand, without a signal: `goalloc profile --pid PID`
 * creates PATH.request (PATH: GOALLOC_HEAP_PROFILE with %p the pid); the
 * process notices it on an allocation slow path at most a second later,
 * writes PATH as at exit and then removes the request. Only a regular file of the
 * process's own user counts as a request. One thread at a time (busy);
 * the paths live in static buffers, not on a small thread stack. */
void ga_heap_profile_tick(void)
{
    static _Atomic uint64_t next_check;
    static _Atomic bool busy;
    static char req[GA_PATH_MAX + 8];
    if (heap_path == NULL)
        return;
    uint64_t now = ga_sys_nanotime();
    if (now < atomic_load_explicit(&next_check, memory_order_relaxed) ||
        atomic_exchange_explicit(&busy, true, memory_order_acquire))
        return;
    atomic_store_explicit(&next_check, now + 1000000000ull, memory_order_relaxed);
    ga_file_info_t fi;
    if (ga_path_with_pid(heap_path, req, GA_PATH_MAX)) {
        size_t n = strlen(req);
        memcpy(req + n, ".request", 9);
        if (ga_sys_lstat(req, &fi) == 0 && fi.regular && fi.uid == ga_sys_geteuid()) {
            ga_write_file_at_exit("GOALLOC_HEAP_PROFILE", heap_path, ga_heap_profile_write);
            ga_sys_unlink(req); /* after: its going says the profile is complete */
        }
    }
    atomic_store_explicit(&busy, false, memory_order_release);
}

void ga_heap_profile_write_at_exit(void)
{
    if (ga_sample_rate != 0 && heap_path != NULL)
        ga_write_file_at_exit("GOALLOC_HEAP_PROFILE", heap_path, ga_heap_profile_write);
}
