/*
 * api_conformance: the malloc API of a preloaded allocator, through the libc
 * names and through glibc's internal aliases (__libc_malloc & co.).
 *
 * Usage: api_conformance [--align-only]   (meant to run with LD_PRELOAD=libgoalloc.so)
 *
 * Every check runs twice, once per entry-point table: "libc" (malloc, free,
 * calloc, realloc, memalign, valloc, pvalloc, posix_memalign) and "__libc"
 * (__libc_malloc, ..., __posix_memalign). reallocarray, aligned_alloc,
 * malloc_usable_size, free_sized and free_aligned_sized have no such alias
 * and are the libc ones in both.
 *
 * Output: first one line per table "align <malloc>(3) = N", the lowest
 * alignment seen over 1000 malloc(3) calls interleaved with malloc(2) (2 under
 * goalloc's tiny allocator, 8 without it, 16 or more on glibc), then one line per
 * check, "ok <table>/<check>" or "FAIL <table>/<check>: detail", and a
 * summary. Exits 1 if any check failed. --align-only stops after the align
 * lines (a quick way to see which allocator a run is on).
 *
 * The rules checked are goalloc's (see tests/test_api.py, which checks the
 * same list through the FFI); glibc itself fails a few of them, e.g.
 * aligned_alloc's EINVAL before glibc 2.38.
 *
 * Build: cc -O0 -g -fno-builtin (all allocator calls go through function
 * pointers anyway, so the compiler neither elides nor warns about them).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern void *__libc_malloc(size_t);
extern void __libc_free(void *);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void *__libc_valloc(size_t);
extern void *__libc_pvalloc(size_t);
/* glibc 2.36 does not export this one: weak, so that the program links
 * there too; the preloaded library provides it at run time. */
extern int __posix_memalign(void **, size_t, size_t) __attribute__((weak));
/* C23, not in glibc 2.36 either: the same in both tables. */
extern void free_sized(void *, size_t) __attribute__((weak));
extern void free_aligned_sized(void *, size_t, size_t) __attribute__((weak));

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)
#define OS_PAGE ((size_t)4096)
#define TOP ((size_t)1 << 63) /* PTRDIFF_MAX + 1 */
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

typedef struct api {
    const char *label;  /* table name in the check lines */
    const char *prefix; /* of the malloc name in the align line */
    void *(*malloc)(size_t);
    void (*free)(void *);
    void *(*calloc)(size_t, size_t);
    void *(*realloc)(void *, size_t);
    void *(*memalign)(size_t, size_t);
    void *(*valloc)(size_t);
    void *(*pvalloc)(size_t);
    int (*posix_memalign)(void **, size_t, size_t);
    /* no __libc_ aliases: the libc functions in both tables */
    void *(*reallocarray)(void *, size_t, size_t);
    void *(*aligned_alloc)(size_t, size_t);
    size_t (*usable_size)(void *);
} api_t;

static api_t apis[] = {
    {"libc", "", malloc, free, calloc, realloc, memalign, valloc, pvalloc, posix_memalign,
     reallocarray, aligned_alloc, malloc_usable_size},
    {"__libc", "__libc_", __libc_malloc, __libc_free, __libc_calloc, __libc_realloc,
     __libc_memalign, __libc_valloc, __libc_pvalloc, __posix_memalign, reallocarray,
     aligned_alloc, malloc_usable_size},
};

/* ---- reporting ------------------------------------------------------------- */

static int check_failed;
static char check_detail[512];

/* Records the first failure of the running check; returns 0 for "if (!...)". */
static __attribute__((format(printf, 1, 2))) int fail(const char *fmt, ...)
{
    if (!check_failed) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(check_detail, sizeof check_detail, fmt, ap);
        va_end(ap);
        check_failed = 1;
    }
    return 0;
}

#define EXPECT(cond, ...) ((cond) ? 1 : fail(__VA_ARGS__))

/* ---- helpers --------------------------------------------------------------- */

static const size_t SIZES[] = {0, 1, 2, 3, 7, 8, 15, 16, 17, 100, 1024, 1025, 5000,
                               32768, 32769, 40000, 1 * MiB, 5 * MiB + 3};
/* Sizes no allocation can satisfy: above PTRDIFF_MAX, or beyond the address space. */
static const size_t IMPOSSIBLE[] = {TOP, TOP | TOP >> 1, SIZE_MAX - 4095, SIZE_MAX,
                                    TOP - 1, (size_t)1 << 62, (size_t)1 << 48};
static const size_t ALIGNED_SIZES[] = {0, 1, 100, 5000, 40000, 1 * MiB};

static uintptr_t addr(const void *p) { return (uintptr_t)p; }

/* What malloc(n) must guarantee (C23): the largest power of two <= n below
 * 16 bytes, 16 from there on; 1 for n = 0. */
static size_t c23_align(size_t n)
{
    size_t a = 1;
    while (a * 2 <= n && a < 16)
        a *= 2;
    return a;
}

static size_t next_pow2(size_t n)
{
    size_t a = 1;
    while (a < n)
        a *= 2;
    return a;
}

static size_t max_size(size_t a, size_t b) { return a > b ? a : b; }

static unsigned char pattern_byte(size_t i, unsigned seed)
{
    return (unsigned char)(i * 131u + (i >> 8) + seed * 29u + 1);
}

static void fill(void *p, size_t n, unsigned seed)
{
    unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        b[i] = pattern_byte(i, seed);
}

/* Index of the first byte of [0, n) that differs from the pattern, or n. */
static size_t mismatch(const void *p, size_t n, unsigned seed)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != pattern_byte(i, seed))
            return i;
    return n;
}

/* p (from `what`) is a live block of at least n bytes aligned to align, all
 * of whose usable bytes can be written and read back. */
static int usable_block(const api_t *a, void *p, size_t n, size_t align, const char *what)
{
    if (!EXPECT(p != NULL, "%s = NULL (errno %d)", what, errno))
        return 0;
    if (!EXPECT(addr(p) % align == 0, "%s = %p, not %zu-aligned", what, p, align))
        return 0;
    size_t u = a->usable_size(p);
    if (!EXPECT(u >= n, "%s: usable size %zu < %zu", what, u, n))
        return 0;
    fill(p, u, (unsigned)n);
    return EXPECT(mismatch(p, u, (unsigned)n) == u, "%s: byte %zu does not read back", what,
                  mismatch(p, u, (unsigned)n));
}

/* call returned NULL with errno err. */
static int failed_with(const void *p, int err, const char *what)
{
    int e = errno;
    return EXPECT(p == NULL, "%s = %p, expected NULL", what, p) &&
           EXPECT(e == err, "%s: errno %d, expected %d", what, e, err);
}

/* ---- malloc and free ------------------------------------------------------- */

static void check_malloc_usable(const api_t *a)
{
    char what[64];
    for (size_t i = 0; i < COUNT(SIZES); i++) {
        size_t n = SIZES[i];
        snprintf(what, sizeof what, "malloc(%zu)", n);
        void *p = a->malloc(n);
        if (!usable_block(a, p, n, c23_align(n), what))
            return;
        a->free(p);
    }
}

static void check_malloc_zero_unique(const api_t *a)
{
    void *p = a->malloc(0), *q = a->malloc(0);
    EXPECT(p != NULL && q != NULL, "malloc(0) = %p, %p", p, q);
    EXPECT(p != q, "two malloc(0) calls both gave %p", p);
    a->free(p);
    a->free(q);
}

enum { ALIGN_ROUNDS = 40 };

static void check_malloc_alignment(const api_t *a)
{
    static const size_t extra[] = {100, 1000, 1024, 1025, 4000, 32768, 32769, 100000};
    enum { NSIZES = 80 + COUNT(extra) };
    static void *blocks[ALIGN_ROUNDS * NSIZES];
    size_t nblocks = 0;
    for (unsigned r = 0; r < ALIGN_ROUNDS; r++) {
        for (size_t k = 0; k < NSIZES; k++) {
            /* sizes 1..80 in an order that changes from round to round */
            size_t n = k < 80 ? 1 + (k * 37 + r * 11) % 80 : extra[k - 80];
            void *p = blocks[nblocks++] = a->malloc(n);
            if (!EXPECT(p != NULL, "malloc(%zu) = NULL", n) ||
                !EXPECT(addr(p) % c23_align(n) == 0, "malloc(%zu) = %p, not %zu-aligned", n, p,
                        c23_align(n)))
                goto out;
        }
    }
out:
    while (nblocks > 0)
        a->free(blocks[--nblocks]);
}

/* The lowest alignment of malloc(3) when interleaved with malloc(2): a tiny
 * allocator with C23 alignment then places some at offsets 2 mod 4 of a
 * 16-byte block, whatever its carve cursor was at the start. */
static size_t lowest_malloc3_alignment(const api_t *a)
{
    enum { N = 1000 };
    static void *blocks[2 * N];
    size_t lowest = SIZE_MAX;
    for (size_t i = 0; i < N; i++) {
        blocks[2 * i] = a->malloc(2);
        void *p = blocks[2 * i + 1] = a->malloc(3);
        size_t align = addr(p) & -addr(p);
        if (p != NULL && align < lowest)
            lowest = align;
    }
    for (size_t i = 0; i < 2 * N; i++)
        a->free(blocks[i]);
    return lowest;
}

static void check_free_null(const api_t *a)
{
    errno = 4321;
    a->free(NULL);
    EXPECT(errno == 4321, "free(NULL) changed errno to %d", errno);
}

static void check_free_keeps_errno(const api_t *a)
{
    enum { N = 50 };
    void *blocks[N];
    for (size_t i = 0; i < COUNT(SIZES); i++) {
        for (size_t k = 0; k < N; k++)
            blocks[k] = a->malloc(SIZES[i]);
        for (size_t k = 0; k < N; k++) {
            errno = 12345;
            a->free(blocks[k]);
            EXPECT(errno == 12345, "free of a malloc(%zu) block set errno to %d", SIZES[i], errno);
        }
    }
}

/* ---- calloc ------------------------------------------------------------------ */

/* Dirty (0xAB) freed memory comes back zeroed; rounds go on until freed
 * blocks have been handed out again in two rounds. */
static void check_calloc_zeroes_reused(const api_t *a)
{
    enum { N = 600, MAX_ROUNDS = 50 };
    static void *blocks[N], *seen[N * MAX_ROUNDS];
    for (size_t i = 0; i < COUNT(SIZES); i++) {
        size_t n = SIZES[i], count = n <= 32768 ? N : 3, nseen = 0;
        unsigned rounds_reusing = 0;
        for (unsigned r = 0; r < MAX_ROUNDS && rounds_reusing < 2; r++) {
            int reused = 0;
            for (size_t k = 0; k < count; k++) {
                unsigned char *p = blocks[k] = a->calloc(1, n);
                if (!EXPECT(p != NULL, "calloc(1, %zu) = NULL", n))
                    return;
                for (size_t b = 0; b < n; b++)
                    if (!EXPECT(p[b] == 0, "calloc(1, %zu) = %p: byte %zu is %#x", n, (void *)p,
                                b, p[b]))
                        return;
                for (size_t s = 0; s < nseen && !reused; s++)
                    reused = seen[s] == p;
                seen[nseen++] = p;
                memset(p, 0xAB, a->usable_size(p));
            }
            for (size_t k = 0; k < count; k++)
                a->free(blocks[k]);
            rounds_reusing += reused;
        }
        EXPECT(rounds_reusing == 2, "calloc(1, %zu) never reused a freed block", n);
    }
}

static void check_calloc_sizes(const api_t *a)
{
    static const size_t pairs[][2] = {{4, 3}, {3, 4}, {1000, 1000}, {0, 7}, {7, 0}, {0, 0}};
    void *zero = NULL;
    char what[64];
    for (size_t i = 0; i < COUNT(pairs); i++) {
        size_t c = pairs[i][0], n = pairs[i][1];
        snprintf(what, sizeof what, "calloc(%zu, %zu)", c, n);
        void *p = a->calloc(c, n);
        if (!usable_block(a, p, c * n, 1, what))
            return;
        EXPECT(p != zero, "two zero-size callocs both gave %p", p);
        if (c * n == 0 && zero == NULL)
            zero = p; /* kept until the end: a second zero-size calloc must differ */
        else
            a->free(p);
    }
    a->free(zero);
}

static void check_calloc_overflow(const api_t *a)
{
    static const size_t pairs[][2] = {
        {(size_t)1 << 32, (size_t)1 << 32}, {TOP, 2}, {2, TOP}, {SIZE_MAX, SIZE_MAX},
        {3, TOP / 3 + 1}, {1, TOP}, {TOP, 1}, {SIZE_MAX, 1}};
    char what[80];
    for (size_t i = 0; i < COUNT(pairs); i++) {
        snprintf(what, sizeof what, "calloc(%#zx, %#zx)", pairs[i][0], pairs[i][1]);
        errno = 0;
        if (!failed_with(a->calloc(pairs[i][0], pairs[i][1]), ENOMEM, what))
            return;
    }
}

/* ---- realloc and reallocarray --------------------------------------------- */

static void check_realloc_null_is_malloc(const api_t *a)
{
    char what[64];
    for (size_t i = 0; i < COUNT(SIZES); i++) {
        snprintf(what, sizeof what, "realloc(NULL, %zu)", SIZES[i]);
        void *p = a->realloc(NULL, SIZES[i]);
        if (!usable_block(a, p, SIZES[i], c23_align(SIZES[i]), what))
            return;
        a->free(p);
    }
}

static void check_realloc_zero_frees(const api_t *a)
{
    for (size_t i = 0; i < COUNT(SIZES); i++) {
        void *p = a->malloc(SIZES[i]);
        void *q = a->realloc(p, 0);
        if (!EXPECT(q == NULL, "realloc(malloc(%zu), 0) = %p, expected NULL", SIZES[i], q)) {
            a->free(q);
            return;
        }
    }
}

/* Within the usable size the size class cannot change: realloc stays put. */
static void check_realloc_in_place_within_usable(const api_t *a)
{
    for (size_t i = 0; i < COUNT(SIZES); i++) {
        size_t n = max_size(SIZES[i], 1);
        void *p = a->malloc(n);
        size_t u = a->usable_size(p);
        fill(p, n, 7);
        const size_t to[] = {u, (n + u) / 2, n};
        for (size_t k = 0; k < COUNT(to); k++) {
            void *q = a->realloc(p, to[k]);
            if (!EXPECT(q == p, "realloc(malloc(%zu) = %p, %zu) moved to %p (usable %zu)", n, p,
                        to[k], q, u)) {
                a->free(q ? q : p);
                return;
            }
        }
        EXPECT(mismatch(p, n, 7) == n, "realloc in place of malloc(%zu) lost contents", n);
        a->free(p);
    }
}

static const size_t RESIZE_SIZES[] = {1, 7, 15, 16, 100, 1024, 1025, 20000,
                                      32768, 32769, 100000, 1 * MiB};

static void check_realloc_keeps_prefix(const api_t *a)
{
    char what[64];
    for (size_t i = 0; i < COUNT(RESIZE_SIZES); i++) {
        for (size_t k = 0; k < COUNT(RESIZE_SIZES); k++) {
            size_t old = RESIZE_SIZES[i], n = RESIZE_SIZES[k];
            unsigned seed = (unsigned)(i * 16 + k);
            void *p = a->malloc(old);
            fill(p, old, seed);
            void *q = a->realloc(p, n);
            snprintf(what, sizeof what, "realloc(malloc(%zu), %zu)", old, n);
            if (!EXPECT(q != NULL, "%s = NULL", what)) {
                a->free(p);
                return;
            }
            size_t common = old < n ? old : n;
            int ok = EXPECT(mismatch(q, common, seed) == common, "%s: byte %zu lost", what,
                            mismatch(q, common, seed)) &&
                     usable_block(a, q, n, c23_align(n), what);
            a->free(q);
            if (!ok)
                return;
        }
    }
}

/* Growth in place into free pages is allowed, not required: contents only. */
static void check_realloc_large_growth(const api_t *a)
{
    static const size_t steps[] = {64 * KiB, 100 * KiB, 1 * MiB, 3 * MiB + 1, 16 * MiB};
    void *p = a->malloc(steps[0]);
    fill(p, steps[0], 0);
    for (size_t i = 1; i < COUNT(steps); i++) {
        void *q = a->realloc(p, steps[i]);
        if (!EXPECT(q != NULL, "realloc(%p, %zu) = NULL", p, steps[i]))
            break;
        p = q;
        if (!EXPECT(mismatch(p, steps[i - 1], (unsigned)i - 1) == steps[i - 1],
                    "realloc to %zu: byte %zu lost", steps[i],
                    mismatch(p, steps[i - 1], (unsigned)i - 1)))
            break;
        fill(p, steps[i], (unsigned)i);
    }
    a->free(p);
}

/* p (old bytes, pattern seed) must have survived a failed resize: intact and
 * still resizable. */
static int block_survived(const api_t *a, void *p, size_t old, unsigned seed, const char *what)
{
    if (!EXPECT(mismatch(p, old, seed) == old, "%s: block changed", what))
        return 0;
    void *q = a->reallocarray(p, 2, old);
    if (!EXPECT(q != NULL && mismatch(q, old, seed) == old,
                "%s: block no longer resizable (%p)", what, q))
        return 0;
    a->free(q);
    return 1;
}

static void check_realloc_impossible_keeps_block(const api_t *a)
{
    static const size_t olds[] = {5, 100, 100000};
    char what[80];
    for (size_t i = 0; i < COUNT(olds); i++) {
        for (size_t k = 0; k < COUNT(IMPOSSIBLE); k++) {
            void *p = a->malloc(olds[i]);
            fill(p, olds[i], 3);
            snprintf(what, sizeof what, "realloc(malloc(%zu), %#zx)", olds[i], IMPOSSIBLE[k]);
            errno = 0;
            void *q = a->realloc(p, IMPOSSIBLE[k]);
            if (!failed_with(q, ENOMEM, what) || !block_survived(a, p, olds[i], 3, what))
                return;
        }
    }
}

static void check_reallocarray_resizes(const api_t *a)
{
    void *p = a->reallocarray(NULL, 3, 5);
    if (!usable_block(a, p, 15, 1, "reallocarray(NULL, 3, 5)"))
        return;
    fill(p, 15, 1);
    void *q = a->reallocarray(p, 1000, 100);
    if (!EXPECT(q != NULL && mismatch(q, 15, 1) == 15, "reallocarray(p, 1000, 100) = %p", q)) {
        a->free(q ? q : p);
        return;
    }
    if (!usable_block(a, q, 100000, 16, "reallocarray(p, 1000, 100)"))
        return;
    void *r = a->reallocarray(q, 0, 100);
    EXPECT(r == NULL, "reallocarray(p, 0, 100) = %p, expected NULL (p freed)", r);
}

static void check_reallocarray_overflow_keeps_block(const api_t *a)
{
    static const size_t pairs[][2] = {
        {(size_t)1 << 32, (size_t)1 << 32}, {TOP, 2}, {SIZE_MAX, SIZE_MAX},
        {3, TOP / 3 * 2}, {1, TOP}, {SIZE_MAX, 1}};
    char what[80];
    for (size_t i = 0; i < COUNT(pairs); i++) {
        void *p = a->malloc(100);
        fill(p, 100, 9);
        snprintf(what, sizeof what, "reallocarray(p, %#zx, %#zx)", pairs[i][0], pairs[i][1]);
        errno = 0;
        void *q = a->reallocarray(p, pairs[i][0], pairs[i][1]);
        if (!failed_with(q, ENOMEM, what) || !block_survived(a, p, 100, 9, what))
            return;
    }
}

/* ---- aligned allocation ------------------------------------------------------ */

/* 8 B .. 4 MiB, then arena-sized (64 MiB) and beyond */
static size_t posix_alignment(size_t i) { return i < 20 ? (size_t)8 << i : (size_t)64 * MiB << (i - 20); }
enum { NPOSIX_ALIGNMENTS = 22 };

static void check_posix_memalign_einval(const api_t *a)
{
    static const size_t aligns[] = {0, 1, 2, 4, 12, 24, 40, 100, 3 * MiB, TOP - 1, SIZE_MAX};
    for (size_t i = 0; i < COUNT(aligns); i++) {
        void *p = (void *)0x1234;
        errno = 777;
        int rc = a->posix_memalign(&p, aligns[i], 100);
        if (!EXPECT(rc == EINVAL, "posix_memalign(&p, %zu, 100) = %d, expected EINVAL", aligns[i],
                    rc) ||
            !EXPECT(p == (void *)0x1234, "posix_memalign(&p, %zu, 100) changed p to %p",
                    aligns[i], p) ||
            !EXPECT(errno == 777, "posix_memalign(&p, %zu, 100) set errno %d", aligns[i], errno))
            return;
    }
}

static void check_posix_memalign_enomem(const api_t *a)
{
    static const size_t cases[][2] = {{16, TOP}, {16, SIZE_MAX}, {4096, SIZE_MAX},
                                      {(size_t)1 << 62, 1}, {TOP, 1}, {TOP, SIZE_MAX}};
    for (size_t i = 0; i < COUNT(cases); i++) {
        void *p = (void *)0x1234;
        errno = 777;
        int rc = a->posix_memalign(&p, cases[i][0], cases[i][1]);
        if (!EXPECT(rc == ENOMEM, "posix_memalign(&p, %#zx, %#zx) = %d, expected ENOMEM",
                    cases[i][0], cases[i][1], rc) ||
            !EXPECT(p == (void *)0x1234, "posix_memalign(&p, %#zx, %#zx) changed p to %p",
                    cases[i][0], cases[i][1], p) ||
            !EXPECT(errno == ENOMEM, "posix_memalign(&p, %#zx, %#zx) left errno %d, expected "
                    "ENOMEM (as glibc)", cases[i][0], cases[i][1], errno))
            return;
    }
}

static void check_posix_memalign_aligned(const api_t *a)
{
    char what[80];
    for (size_t i = 0; i < NPOSIX_ALIGNMENTS; i++) {
        for (size_t k = 0; k < COUNT(ALIGNED_SIZES); k++) {
            size_t align = posix_alignment(i), n = ALIGNED_SIZES[k];
            void *p = NULL;
            int rc = a->posix_memalign(&p, align, n);
            snprintf(what, sizeof what, "posix_memalign(&p, %zu, %zu)", align, n);
            if (!EXPECT(rc == 0, "%s = %d", what, rc) || !usable_block(a, p, n, align, what))
                return;
            a->free(p);
        }
    }
}

static void check_aligned_alloc_einval(const api_t *a)
{
    static const size_t aligns[] = {0, 3, 6, 12, 24, 100, 3 * MiB, TOP - 1, SIZE_MAX};
    char what[64];
    for (size_t i = 0; i < COUNT(aligns); i++) {
        snprintf(what, sizeof what, "aligned_alloc(%zu, 64)", aligns[i]);
        errno = 0;
        void *p = a->aligned_alloc(aligns[i], 64);
        if (!failed_with(p, EINVAL, what)) {
            a->free(p);
            return;
        }
    }
}

static void check_aligned_alloc_aligned(const api_t *a)
{
    static const size_t odd_sizes[] = {3, 17, 4097}; /* any size, not only multiples */
    char what[64];
    for (size_t i = 0; i < 3 + NPOSIX_ALIGNMENTS; i++) {
        size_t align = i < 3 ? (size_t)1 << i : posix_alignment(i - 3);
        for (size_t k = 0; k < COUNT(ALIGNED_SIZES) + COUNT(odd_sizes); k++) {
            size_t n = k < COUNT(ALIGNED_SIZES) ? ALIGNED_SIZES[k]
                                                 : odd_sizes[k - COUNT(ALIGNED_SIZES)];
            snprintf(what, sizeof what, "aligned_alloc(%zu, %zu)", align, n);
            void *p = a->aligned_alloc(align, n);
            if (!usable_block(a, p, n, align, what))
                return;
            a->free(p);
        }
    }
}

/* As glibc's memalign: alignments up to 16 give 16, others round up to a
 * power of two; above SIZE_MAX/2+1 it is EINVAL. */
static void check_memalign(const api_t *a)
{
    static const size_t aligns[] = {0, 1, 2, 8, 16, 24, 48, 100, 4096, 5000, 1 * MiB, 64 * MiB};
    static const size_t sizes[] = {0, 1, 100, 5000, 40000};
    char what[64];
    for (size_t i = 0; i < COUNT(aligns); i++) {
        for (size_t k = 0; k < COUNT(sizes); k++) {
            snprintf(what, sizeof what, "memalign(%zu, %zu)", aligns[i], sizes[k]);
            void *p = a->memalign(aligns[i], sizes[k]);
            if (!usable_block(a, p, sizes[k], max_size(16, next_pow2(aligns[i])), what))
                return;
            a->free(p);
        }
    }
    static const size_t beyond[] = {TOP + 1, SIZE_MAX};
    for (size_t i = 0; i < COUNT(beyond); i++) {
        snprintf(what, sizeof what, "memalign(%#zx, 1)", beyond[i]);
        errno = 0;
        if (!failed_with(a->memalign(beyond[i], 1), EINVAL, what))
            return;
    }
}

static const size_t PAGE_SIZES[] = {0, 1, 100, OS_PAGE - 1, OS_PAGE, OS_PAGE + 1, 5000, 40000,
                                    1 * MiB + 1};

static void check_valloc(const api_t *a)
{
    char what[64];
    for (size_t i = 0; i < COUNT(PAGE_SIZES); i++) {
        snprintf(what, sizeof what, "valloc(%zu)", PAGE_SIZES[i]);
        void *p = a->valloc(PAGE_SIZES[i]);
        if (!usable_block(a, p, PAGE_SIZES[i], OS_PAGE, what))
            return;
        a->free(p);
    }
}

static void check_pvalloc(const api_t *a)
{
    char what[64];
    for (size_t i = 0; i < COUNT(PAGE_SIZES); i++) {
        size_t n = PAGE_SIZES[i];
        size_t rounded = (n + OS_PAGE - 1) / OS_PAGE * OS_PAGE;
        snprintf(what, sizeof what, "pvalloc(%zu)", n);
        void *p = a->pvalloc(n);
        if (!usable_block(a, p, rounded, OS_PAGE, what))
            return;
        a->free(p);
    }
}

/* ---- malloc_usable_size ------------------------------------------------------ */

static void check_usable_size(const api_t *a)
{
    EXPECT(a->usable_size(NULL) == 0, "malloc_usable_size(NULL) = %zu", a->usable_size(NULL));
    for (size_t n = 0; n < 34000; n += n < 4200 ? 1 : 13) {
        void *p = a->malloc(n);
        size_t u = p ? a->usable_size(p) : 0;
        a->free(p);
        if (!EXPECT(p != NULL && u >= n, "malloc(%zu) = %p, usable size %zu", n, p, u))
            return;
    }
}

/* ---- free_sized and free_aligned_sized ------------------------------------------ */

/* Freeing with the requested size (and alignment) works and keeps errno; a
 * wrong size would abort the program (tests/test_misuse.py). */
static void check_free_sized(const api_t *a)
{
    if (!EXPECT(free_sized != NULL, "free_sized is not defined"))
        return;
    errno = 4321;
    free_sized(NULL, 100);
    EXPECT(errno == 4321, "free_sized(NULL, 100) changed errno to %d", errno);
    for (size_t i = 0; i < COUNT(SIZES); i++) {
        size_t n = SIZES[i];
        void *p = a->malloc(n), *q = a->calloc(1, n);
        errno = 4321;
        free_sized(p, n);
        free_sized(q, n);
        if (!EXPECT(errno == 4321, "free_sized of malloc(%zu) set errno to %d", n, errno))
            return;
    }
}

static void check_free_aligned_sized(const api_t *a)
{
    (void)a;
    if (!EXPECT(free_aligned_sized != NULL, "free_aligned_sized is not defined"))
        return;
    for (size_t i = 0; i < 3 + NPOSIX_ALIGNMENTS; i++) {
        size_t align = i < 3 ? (size_t)1 << i : posix_alignment(i - 3);
        for (size_t k = 0; k < COUNT(ALIGNED_SIZES); k++) {
            void *p = aligned_alloc(align, ALIGNED_SIZES[k]);
            if (!EXPECT(p != NULL, "aligned_alloc(%zu, %zu) = NULL", align, ALIGNED_SIZES[k]))
                return;
            free_aligned_sized(p, align, ALIGNED_SIZES[k]);
        }
    }
}

/* ---- impossible requests ----------------------------------------------------- */

static void check_impossible_requests(const api_t *a)
{
    char what[80];
#define IMPOSSIBLE_CALL(call, ...)                                                          \
    do {                                                                                    \
        snprintf(what, sizeof what, __VA_ARGS__);                                           \
        errno = 0;                                                                          \
        void *p_ = (call);                                                                  \
        if (!failed_with(p_, ENOMEM, what)) {                                               \
            a->free(p_);                                                                    \
            return;                                                                         \
        }                                                                                   \
    } while (0)
    for (size_t i = 0; i < COUNT(IMPOSSIBLE); i++) {
        size_t n = IMPOSSIBLE[i];
        IMPOSSIBLE_CALL(a->malloc(n), "malloc(%#zx)", n);
        IMPOSSIBLE_CALL(a->calloc(1, n), "calloc(1, %#zx)", n);
        IMPOSSIBLE_CALL(a->realloc(NULL, n), "realloc(NULL, %#zx)", n);
        IMPOSSIBLE_CALL(a->reallocarray(NULL, 1, n), "reallocarray(NULL, 1, %#zx)", n);
        IMPOSSIBLE_CALL(a->aligned_alloc(64, n), "aligned_alloc(64, %#zx)", n);
        IMPOSSIBLE_CALL(a->memalign(4096, n), "memalign(4096, %#zx)", n);
        IMPOSSIBLE_CALL(a->valloc(n), "valloc(%#zx)", n);
        IMPOSSIBLE_CALL(a->pvalloc(n), "pvalloc(%#zx)", n);
    }
    static const size_t huge_aligns[] = {(size_t)1 << 62, TOP};
    for (size_t i = 0; i < COUNT(huge_aligns); i++) {
        IMPOSSIBLE_CALL(a->memalign(huge_aligns[i], 1), "memalign(%#zx, 1)", huge_aligns[i]);
        IMPOSSIBLE_CALL(a->aligned_alloc(huge_aligns[i], 1), "aligned_alloc(%#zx, 1)",
                        huge_aligns[i]);
    }
#undef IMPOSSIBLE_CALL
}

/* ---- driver ------------------------------------------------------------------ */

static const struct {
    const char *name;
    void (*run)(const api_t *);
} checks[] = {
    {"malloc_usable", check_malloc_usable},
    {"malloc_zero_unique", check_malloc_zero_unique},
    {"malloc_alignment", check_malloc_alignment},
    {"free_null", check_free_null},
    {"free_keeps_errno", check_free_keeps_errno},
    {"calloc_zeroes_reused", check_calloc_zeroes_reused},
    {"calloc_sizes", check_calloc_sizes},
    {"calloc_overflow", check_calloc_overflow},
    {"realloc_null_is_malloc", check_realloc_null_is_malloc},
    {"realloc_zero_frees", check_realloc_zero_frees},
    {"realloc_in_place_within_usable", check_realloc_in_place_within_usable},
    {"realloc_keeps_prefix", check_realloc_keeps_prefix},
    {"realloc_large_growth", check_realloc_large_growth},
    {"realloc_impossible_keeps_block", check_realloc_impossible_keeps_block},
    {"reallocarray_resizes", check_reallocarray_resizes},
    {"reallocarray_overflow_keeps_block", check_reallocarray_overflow_keeps_block},
    {"posix_memalign_einval", check_posix_memalign_einval},
    {"posix_memalign_enomem", check_posix_memalign_enomem},
    {"posix_memalign_aligned", check_posix_memalign_aligned},
    {"aligned_alloc_einval", check_aligned_alloc_einval},
    {"aligned_alloc_aligned", check_aligned_alloc_aligned},
    {"memalign", check_memalign},
    {"valloc", check_valloc},
    {"pvalloc", check_pvalloc},
    {"usable_size", check_usable_size},
    {"free_sized", check_free_sized},
    {"free_aligned_sized", check_free_aligned_sized},
    {"impossible_requests", check_impossible_requests},
};

int main(int argc, char **argv)
{
    unsigned nfailed = 0, nrun = 0;
    int align_only = argc == 2 && strcmp(argv[1], "--align-only") == 0;
    if (argc > 1 && !align_only) {
        fprintf(stderr, "usage: %s [--align-only]\n", argv[0]);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0); /* every line out before a crash */
    for (size_t i = 0; i < COUNT(apis); i++)
        printf("align %smalloc(3) = %zu\n", apis[i].prefix, lowest_malloc3_alignment(&apis[i]));
    if (align_only)
        return 0;
    if (__posix_memalign == NULL) {
        printf("FAIL __libc/__posix_memalign: not defined (glibc has no such symbol: "
               "not running under the preloaded allocator?); using posix_memalign\n");
        apis[1].posix_memalign = posix_memalign;
        nfailed++;
    }
    for (size_t i = 0; i < COUNT(apis); i++) {
        for (size_t k = 0; k < COUNT(checks); k++) {
            check_failed = 0;
            checks[k].run(&apis[i]);
            nrun++;
            if (check_failed) {
                printf("FAIL %s/%s: %s\n", apis[i].label, checks[k].name, check_detail);
                nfailed++;
            } else {
                printf("ok %s/%s\n", apis[i].label, checks[k].name);
            }
        }
    }
    printf("api_conformance: %u checks, %u failed\n", nrun, nfailed);
    return nfailed ? 1 : 0;
}
