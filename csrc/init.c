/* Start-up, options and fork (Go's runtime1.go parsedebugvars and the
 * malloc init in malloc.go). Start-up runs on the first allocation or from
 * the library constructor, whichever comes first; options come from the
 * GOALLOC environment variable, comma-separated key=value pairs as in Go's
 * GODEBUG, read without allocating. See malloc.c for the overview. */
#include <string.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include "inline.h"

ga_options_t ga_opts = {
    .tiny = false,
    .summary = false,
    .reclaim = true,
    .scavenger = GA_SCAVENGER_AUTO,
    .madvise = GA_MADV_DONTNEED,
    .scavenge_delay = 500,
    .retain = 110,
    .limit = 0,
    .on_error_report = false,
    .clobberfree = false,
    .fillnew = false,
    .uafcheck = 0,
    .harden = false,
    .canary = false,
    .protect = false,
    .mcache_keep = 512,
    .pagecache = 0, /* off until it passes the memory-pressure tests: see README */
    .sizeclasses = "",
    .align8 = false,
    .refill = 1,
    .arena_hint_go = false,
    .profile_rate = GA_PROFILE_RATE_UNSET,
};
size_t ga_fast_lo, ga_fast_span; /* 0, 0 until start-up: only malloc(0) tries the inline path */
size_t ga_fast_medium;          /* 0 until start-up */
bool ga_hardened;
bool ga_slow_special;
size_t ga_canary;
bool ga_protect;
_Atomic int ga_initialized;
size_t ga_tiny_limit; /* 0 until start-up: no request takes the tiny path */
static ga_lock_t init_lock = GA_LOCK_INIT;

/* ---- options ---------------------------------------------------------------- */

typedef enum { OPT_BOOL, OPT_UINT, OPT_BYTES, OPT_ENUM, OPT_ENUM_BOOL, OPT_STRING } opt_kind_t;

static const char *const scavenger_names[] = {"off", "sync", "background", "auto", NULL};
static const char *const madvise_names[] = {"dontneed", "free", NULL};
static const char *const on_error_names[] = {"abort", "report", NULL};
static const char *const align_names[] = {"16", "8", NULL};
static const char *const arena_hint_names[] = {"random", "go", NULL};

typedef struct option {
    const char *key;
    opt_kind_t kind;
    void *value;                /* bool * for OPT_BOOL, uint64_t * or unsigned * (enum), char[] */
    uint64_t min, max;          /* OPT_UINT and OPT_BYTES; OPT_STRING: max = longest value */
    const char *const *names;   /* OPT_ENUM */
    const char *expect;         /* said when a value is refused */
} option_t;

static const option_t options[] = {
    {"tiny", OPT_BOOL, &ga_opts.tiny, 0, 1, NULL, "0 or 1"},
    {"summary", OPT_BOOL, &ga_opts.summary, 0, 1, NULL, "0 or 1"},
    {"stats", OPT_BOOL, &ga_opts.stats, 0, 1, NULL, "0 or 1"},
    {"verbose", OPT_BOOL, &ga_opts.verbose, 0, 1, NULL, "0 or 1"},
    {"reclaim", OPT_BOOL, &ga_opts.reclaim, 0, 1, NULL, "0 or 1"},
    {"scavenger", OPT_ENUM, &ga_opts.scavenger, 0, 0, scavenger_names, "off, sync, background or auto"},
    {"madvise", OPT_ENUM, &ga_opts.madvise, 0, 0, madvise_names, "dontneed or free"},
    {"scavenge_delay", OPT_UINT, &ga_opts.scavenge_delay, 0, 3600000, NULL, "milliseconds, 0..3600000"},
    {"retain", OPT_UINT, &ga_opts.retain, 100, 100000, NULL, "a percentage, 100..100000"},
    {"limit", OPT_BYTES, &ga_opts.limit, 0, (uint64_t)1 << 47, NULL, "bytes, with an optional k, m or g"},
    {"on_error", OPT_ENUM_BOOL, &ga_opts.on_error_report, 0, 0, on_error_names, "abort or report"},
    {"clobberfree", OPT_BOOL, &ga_opts.clobberfree, 0, 1, NULL, "0 or 1"},
    {"fillnew", OPT_BOOL, &ga_opts.fillnew, 0, 1, NULL, "0 or 1"},
    {"uafcheck", OPT_UINT, &ga_opts.uafcheck, 0, 1000000000, NULL, "N: check 1 in N reused slots, 0 = off"},
    {"harden", OPT_BOOL, &ga_opts.harden, 0, 1, NULL, "0 or 1"},
    {"canary", OPT_BOOL, &ga_opts.canary, 0, 1, NULL, "0 or 1"},
    {"protect", OPT_BOOL, &ga_opts.protect, 0, 1, NULL, "0 or 1"},
    {"mcache_keep", OPT_UINT, &ga_opts.mcache_keep, 0, 1u << 20, NULL, "pages, 0..1048576 (0 = Go: none)"},
    {"pagecache", OPT_BYTES, &ga_opts.pagecache, 0, 1u << 30, NULL,
     "bytes of freed large objects a thread keeps, with an optional k, m or g (0 = none)"},
    {"sizeclasses", OPT_STRING, ga_opts.sizeclasses, 1, sizeof ga_opts.sizeclasses - 1, NULL,
     "go1.12, go1.16 or the path of a table file"},
    {"align", OPT_ENUM_BOOL, &ga_opts.align8, 0, 0, align_names, "16 or 8"},
    {"refill", OPT_UINT, &ga_opts.refill, 1, GA_MAX_REFILL, NULL, "spans per refill, 1..16"},
    {"live", OPT_BOOL, &ga_opts.live, 0, 1, NULL, "0 or 1"},
    {"arena_hint", OPT_ENUM_BOOL, &ga_opts.arena_hint_go, 0, 0, arena_hint_names,
     "random or go (Go's fixed 0xc000000000)"},
    {"profile_rate", OPT_BYTES, &ga_opts.profile_rate, 0, (uint64_t)1 << 40, NULL,
     "bytes between heap-profile samples, with an optional k, m or g (0 = off, 1 = every object)"},
};

static void option_message(const char *what, const char *item, size_t n, const char *tail1,
                           const char *tail2)
{
    char line[256];
    ga_buf_t b = {line, 0, sizeof line};
    ga_buf_str(&b, "GOALLOC: ");
    ga_buf_str(&b, what);
    ga_buf_str(&b, " '");
    size_t i = 0;
    while (i < n && b.len + 2 < b.cap)
        line[b.len++] = item[i++];
    line[b.len] = '\0';
    ga_buf_str(&b, "'");
    ga_buf_str(&b, tail1);
    ga_warn(line, tail2, tail2 ? ")" : NULL);
}

/* Parses a decimal number with an optional k/m/g suffix (bytes only);
 * false for anything else, including a value that does not fit 64 bits. */
static bool parse_number(const char *v, size_t n, bool bytes, uint64_t *out)
{
    uint64_t x = 0, mult = 1;
    if (n > 0 && bytes) {
        char c = v[n - 1];
        mult = c == 'k' || c == 'K' ? 1u << 10 : c == 'm' || c == 'M' ? 1u << 20
             : c == 'g' || c == 'G' ? 1u << 30 : 1;
        if (mult != 1)
            n--;
    }
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9' || __builtin_mul_overflow(x, 10, &x) ||
            __builtin_add_overflow(x, (uint64_t)(v[i] - '0'), &x))
            return false;
    }
    return !__builtin_mul_overflow(x, mult, out);
}

static bool set_option(const option_t *o, const char *v, size_t n)
{
    uint64_t x;
    switch (o->kind) {
    case OPT_BOOL:
        if (!parse_number(v, n, false, &x) || x > 1)
            return false;
        *(bool *)o->value = x == 1;
        return true;
    case OPT_UINT:
    case OPT_BYTES:
        if (!parse_number(v, n, o->kind == OPT_BYTES, &x) || x < o->min || x > o->max)
            return false;
        *(uint64_t *)o->value = x;
        return true;
    case OPT_ENUM:
    case OPT_ENUM_BOOL: /* a two-name enum stored as a bool */
        for (unsigned i = 0; o->names[i] != NULL; i++)
            if (strlen(o->names[i]) == n && memcmp(o->names[i], v, n) == 0) {
                if (o->kind == OPT_ENUM)
                    *(unsigned *)o->value = i;
                else
                    *(bool *)o->value = i == 1;
                return true;
            }
        return false;
    case OPT_STRING:
        if (n < o->min || n > o->max)
            return false;
        memcpy(o->value, v, n);
        ((char *)o->value)[n] = '\0';
        return true;
    }
    return false;
}

/* harden=1 (or 0) sets the options it stands for at that point of the
 * string, so that later items can still change one of them. */
static void harden_preset(bool on)
{
    ga_opts.canary = on;
    ga_opts.protect = on;
    ga_opts.clobberfree = on;
    ga_opts.uafcheck = on;
}

/* Edit distance (insertions, deletions, substitutions, transpositions of
 * neighbours) between a[0..n) and b, at most 64 characters each. */
static unsigned edit_distance(const char *a, size_t n, const char *b)
{
    size_t m = strlen(b);
    unsigned d[3][65]; /* rows i-2, i-1, i, cyclically */
    if (n > 64 || m > 64)
        return 64;
    for (size_t j = 0; j <= m; j++)
        d[0][j] = (unsigned)j;
    for (size_t i = 1; i <= n; i++) {
        unsigned *cur = d[i % 3], *prev = d[(i - 1) % 3], *pp = d[(i + 1) % 3];
        cur[0] = (unsigned)i;
        for (size_t j = 1; j <= m; j++) {
            unsigned v = prev[j - 1] + (a[i - 1] != b[j - 1]);
            v = prev[j] + 1 < v ? prev[j] + 1 : v;
            v = cur[j - 1] + 1 < v ? cur[j - 1] + 1 : v;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && pp[j - 2] + 1 < v)
                v = pp[j - 2] + 1;
            cur[j] = v;
        }
    }
    return d[n % 3][m];
}

/* The option key nearest to key[0..n) (a typo: at most 2 edits, and
 * fewer than half its letters), or NULL. */
static const char *closest_option(const char *key, size_t n)
{
    const char *best = NULL;
    unsigned best_d = 3;
    for (size_t i = 0; i < sizeof options / sizeof options[0]; i++) {
        unsigned d = edit_distance(key, n, options[i].key);
        if (d < best_d && 2 * d < strlen(options[i].key)) {
            best_d = d;
            best = options[i].key;
        }
    }
    return best;
}

/* Parses one "key=value" item of length n; reports and ignores bad ones. */
static void parse_item(const char *item, size_t n)
{
    const char *eq = memchr(item, '=', n);
    if (eq == NULL) {
        option_message("option without a value", item, n, " (ignored; expected key=value", "");
        return;
    }
    size_t klen = (size_t)(eq - item), vlen = n - klen - 1;
    for (size_t i = 0; i < sizeof options / sizeof options[0]; i++) {
        if (strlen(options[i].key) != klen || memcmp(options[i].key, item, klen) != 0)
            continue;
        if (!set_option(&options[i], eq + 1, vlen))
            option_message("bad value in", item, n, " (ignored; expected ", options[i].expect);
        else if (options[i].value == &ga_opts.harden)
            harden_preset(ga_opts.harden);
        return;
    }
    const char *near = closest_option(item, klen);
    if (near != NULL) {
        char hint[80];
        ga_buf_t h = {hint, 0, sizeof hint};
        ga_buf_str(&h, near);
        ga_buf_str(&h, "?");
        option_message("unknown option", item, klen, " (ignored; did you mean ", hint);
    } else
        option_message("unknown option", item, klen, " (ignored", "");
}

void ga_parse_options(const char *s)
{
    while (s != NULL && *s != '\0') {
        const char *end = strchr(s, ',');
        size_t n = end ? (size_t)(end - s) : strlen(s);
        if (n > 0)
            parse_item(s, n);
        s = end ? end + 1 : NULL;
    }
}

/* A value of option key that start-up could not use: one line naming it,
 * the reason and what is done instead. */
void ga_option_refused(const char *key, const char *value, const char *why, const char *instead)
{
    char line[512];
    ga_buf_t b = {line, 0, sizeof line};
    ga_buf_str(&b, "goalloc: GOALLOC: ");
    ga_buf_str(&b, key);
    ga_buf_str(&b, "=");
    ga_buf_str(&b, value);
    ga_buf_str(&b, ": ");
    ga_buf_str(&b, why);
    ga_buf_str(&b, " (");
    ga_buf_str(&b, instead);
    ga_buf_str(&b, ")\n");
    ga_write_all(2, line, b.len);
}

/* The value of option key (enums as their index, strings as their
 * length), or -1 when there is no such option. */
long long ga_option_value(const char *key)
{
    for (size_t i = 0; i < sizeof options / sizeof options[0]; i++) {
        const option_t *o = &options[i];
        if (strcmp(o->key, key) != 0)
            continue;
        switch (o->kind) {
        case OPT_BOOL:
        case OPT_ENUM_BOOL:
            return *(bool *)o->value;
        case OPT_ENUM:
            return *(unsigned *)o->value;
        case OPT_STRING:
            return (long long)strlen((const char *)o->value);
        default:
            return (long long)*(uint64_t *)o->value;
        }
    }
    return -1;
}

/* The options in effect, for the statistics JSON and verbose=1: their
 * number, each key, and each value as GOALLOC would spell it. */
unsigned ga_option_count(void) { return sizeof options / sizeof options[0]; }
const char *ga_option_key(unsigned i) { return i < ga_option_count() ? options[i].key : NULL; }

void ga_option_format(unsigned i, ga_buf_t *b)
{
    const option_t *o = &options[i];
    switch (o->kind) {
    case OPT_BOOL:
        ga_buf_uint(b, *(bool *)o->value);
        return;
    case OPT_ENUM:
        ga_buf_str(b, o->names[*(unsigned *)o->value]);
        return;
    case OPT_ENUM_BOOL:
        ga_buf_str(b, o->names[*(bool *)o->value]);
        return;
    case OPT_STRING:
        ga_buf_str(b, (const char *)o->value);
        return;
    default:
        ga_buf_uint(b, *(uint64_t *)o->value);
    }
}

/* The environment variables the library reads, NULL-terminated (also for
 * the Python layer: ga_env_name). */
static const char *const env_names[] = {"GOALLOC", "GOALLOC_STATS", "GOALLOC_PROFILE",
                                        "GOALLOC_HEAP_PROFILE", NULL};
const char *ga_env_name(unsigned i) { return i < 4 ? env_names[i] : NULL; }
const char *ga_version(void) { return GA_VERSION; }

/* Derives what the fast paths read from the options. uafcheck implies
 * clobberfree; any hardening option and the size profile close the
 * inline malloc and free paths; heap-profile sampling leaves them open
 * (mprof.c) and only sends malloc_slow its own way. */
void ga_apply_options(void)
{
    if (ga_opts.uafcheck)
        ga_opts.clobberfree = true;
    ga_hardened = ga_opts.clobberfree || ga_opts.fillnew || ga_opts.uafcheck || ga_profiling ||
                  ga_canary || ga_protect;
    ga_slow_special = ga_hardened || ga_sample_rate != 0;
    /* a canary needs the object's end in a slot of its own: no tiny blocks */
    ga_tiny_limit = ga_opts.tiny && !ga_canary ? GA_TINY_SIZE : 0;
    ga_fast_lo = ga_hardened ? SIZE_MAX : ga_tiny_limit;
    ga_fast_span = ga_hardened ? 0 : GA_SMALL_SIZE_MAX - ga_tiny_limit;
    ga_fast_medium = ga_hardened ? 0 : GA_MAX_SMALL_SIZE - GA_SMALL_SIZE_MAX;
}

/* ga_hardened changed: the inline free path of cached spans opens or
 * closes with it (ga_span_set_owner); kept exhausted spans stay closed. */
static void refresh_free_owner(ga_span_t *s, void *arg)
{
    (void)arg;
    if (atomic_load(&s->state) == GA_SPAN_CACHED && s->cache_list != GA_LIST_FULL)
        ga_span_set_owner(s, atomic_load(&s->owner));
}

void ga_apply_options_locked(void)
{
    ga_assert_held(&ga_heap.lock);
    ga_apply_options();
    ga_mheap_for_each_span_locked(refresh_free_owner, NULL);
}

/* ---- fork ------------------------------------------------------------------- */

/* Lock order, everywhere: shared mcache, mcache list, each mcache's own
 * (its owner holds it across slow-path span moves), mcentral[1..] and
 * the tiny mcentral, span bitmaps, profiles (size profile and heap-profile
 * samples share prof_lock), page heap, persistent
 * chunks. (The
 * bitmap and mcache pools fall back to heap pages when mmap fails.) */
static void lock_all(void)
{
    ga_mcache_lock_all();
    ga_mcentral_lock_all();
    ga_span_bits_lock();
    ga_prof_lock();
    ga_mheap_lock();
    ga_persistent_lock();
}

static void unlock_all(void)
{
    ga_persistent_unlock();
    ga_mheap_unlock();
    ga_prof_unlock();
    ga_span_bits_unlock();
    ga_mcentral_unlock_all();
    ga_mcache_unlock_all();
}

/* glibc's: true until the process first creates a thread (glibc >= 2.32);
 * its stdio list lock, which its fork takes after the atfork handlers. */
extern char __libc_single_threaded __attribute__((weak));
extern void _IO_list_lock(void) __attribute__((weak));
extern void _IO_list_unlock(void) __attribute__((weak));

static bool fork_locked; /* fork_prepare took the locks */

/* Two ways fork could hang, and what glibc's own malloc does about them:
 * - A process with one thread cannot find a lock held by another thread,
 *   but a signal handler that forks may have interrupted malloc holding
 *   one: then no lock is taken (glibc skips its malloc locks too). The
 *   child still gets fresh locks (fork_child), so that it can allocate.
 * - A thread holding a FILE lock may be in malloc (getline's realloc)
 *   while another holds stdio's list lock waiting for that FILE (fflush
 *   of every stream): taking goalloc's locks here, before glibc's fork
 *   takes the list lock, would close the cycle. So the list lock (a
 *   recursive lock, which fork then takes again) comes first: the order
 *   stdio list < goalloc, as in glibc, where malloc's locks come last. */
static void fork_prepare(void)
{
    fork_locked = !(&__libc_single_threaded != NULL && __libc_single_threaded);
    if (!fork_locked)
        return;
    if (_IO_list_lock != NULL)
        _IO_list_lock();
    lock_all();
}

static void fork_parent(void)
{
    if (!fork_locked)
        return;
    unlock_all();
    if (_IO_list_unlock != NULL)
        _IO_list_unlock();
}

static void fork_child(void)
{
    if (fork_locked)
        ga_span_fork_child_settle(); /* before any span can go back to the heap */
    ga_scavenger_fork_child();
    ga_persistent_fork_child();
    ga_span_bits_fork_child();
    ga_prof_fork_child();
    ga_mheap_fork_child();
    ga_mcentral_fork_child();
    ga_mcache_fork_child();
    ga_stats_fork_child();
    ga_live_fork_child();
}

/* ---- start-up ----------------------------------------------------------------- */

/* CPUID leaf 1, ECX bit 23 (no libc, no allocation). */
static bool cpu_has_popcnt(void)
{
#if defined(__x86_64__) || defined(__i386__)
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & bit_POPCNT);
#else
    return false;
#endif
}

void ga_init_slow(void)
{
    ga_lock(&init_lock);
    if (atomic_load_explicit(&ga_initialized, memory_order_relaxed)) {
        ga_unlock(&init_lock);
        return;
    }
    bool secure = ga_sys_secure();
    if (!secure) {
        ga_parse_options(ga_sys_getenv(env_names[0]));
        ga_opts.stats_path = ga_sys_getenv(env_names[1]);
    } else if (ga_sys_getenv(env_names[0]) || ga_sys_getenv(env_names[1]) ||
               ga_sys_getenv(env_names[2]) || ga_sys_getenv(env_names[3])) {
        ga_warn("GOALLOC, GOALLOC_STATS, GOALLOC_PROFILE and GOALLOC_HEAP_PROFILE are ignored "
                "in a privileged (AT_SECURE) process", NULL, NULL);
    }
    ga_canary = ga_opts.canary ? GA_CANARY_TAIL : 0;
    ga_protect = ga_opts.protect;
    if (ga_protect) /* a freed large object must fault at once */
        ga_opts.pagecache = 0;
    if (ga_canary)
        ga_canary_init();
    ga_classes_init();
    ga_cpu_popcnt = cpu_has_popcnt();
    ga_mheap_init();
    if (!secure)
        ga_prof_init(ga_sys_getenv(env_names[2]));
    ga_prof_sample_init(secure ? NULL : ga_sys_getenv(env_names[3]));
    ga_mcentral_init();
    ga_mcache_init();
    ga_apply_options();
    atomic_store_explicit(&ga_initialized, 1, memory_order_release);
    ga_unlock(&init_lock);
    /* After start-up: pthread_atfork may allocate, which now works. */
    pthread_atfork(fork_prepare, fork_parent, fork_child);
}

__attribute__((constructor)) static void ga_constructor(void)
{
    ga_ensure_init();
    ga_scavenger_start(); /* here, not at start-up: threads need libc up */
    ga_live_start();
    if (ga_opts.verbose)
        ga_print_options(2);
}

__attribute__((destructor)) static void ga_destructor(void)
{
    if (!atomic_load(&ga_initialized))
        return;
    if (ga_opts.summary)
        ga_print_summary(2);
    if (ga_opts.stats)
        ga_stats_print(2);
    ga_stats_write_at_exit();
    ga_prof_write_at_exit();
    ga_heap_profile_write_at_exit();
    ga_live_exit();
}

/* Locks taken by ga_check_heap and ga_print_summary: the fork order. */
void ga_lock_all(void) { lock_all(); }
void ga_unlock_all(void) { unlock_all(); }
