/* The libc names of the preload library, forwarding to the ga_ functions
 * (the glibc manual's "Replacing malloc" list plus the __libc_ aliases that
 * glibc uses internally). Linked only into libgoalloc.so. See malloc.c for
 * the overview. */
#if !defined(GA_OVERRIDE)
#error "override.c belongs to the preload library only (build with -DGA_OVERRIDE)"
#else
#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <stddef.h>

#include "goalloc.h"

#define EXPORT __attribute__((visibility("default")))

/* malloc, free, cfree, __libc_malloc and __libc_free are aliases of the
 * inline paths, defined in malloc.c (no forwarding jump on the hot paths). */

EXPORT void *calloc(size_t c, size_t n) { return ga_calloc(c, n); }
EXPORT void *realloc(void *p, size_t n) { return ga_realloc(p, n); }
EXPORT void *reallocarray(void *p, size_t c, size_t n) { return ga_reallocarray(p, c, n); }
EXPORT int posix_memalign(void **out, size_t a, size_t n) { return ga_posix_memalign(out, a, n); }
EXPORT void *aligned_alloc(size_t a, size_t n) { return ga_aligned_alloc(a, n); }
EXPORT void *memalign(size_t a, size_t n) { return ga_memalign(a, n); }
EXPORT void *valloc(size_t n) { return ga_valloc(n); }
EXPORT void *pvalloc(size_t n) { return ga_pvalloc(n); }
EXPORT size_t malloc_usable_size(void *p) { return ga_malloc_usable_size(p); }

EXPORT int malloc_trim(size_t pad) { return ga_malloc_trim(pad); }
EXPORT int mallopt(int param, int value) { return ga_mallopt(param, value); }
EXPORT void malloc_stats(void) { ga_print_summary(2); }

EXPORT struct mallinfo2 mallinfo2(void)
{
    ga_mallinfo_t m;
    ga_mallinfo2(&m);
    return (struct mallinfo2){.arena = m.arena, .ordblks = m.ordblks, .smblks = m.smblks,
                              .hblks = m.hblks, .hblkhd = m.hblkhd, .usmblks = m.usmblks,
                              .fsmblks = m.fsmblks, .uordblks = m.uordblks,
                              .fordblks = m.fordblks, .keepcost = m.keepcost};
}

/* The old int fields, clamped (glibc lets them wrap). */
static int clamp(size_t v) { return v > INT_MAX ? INT_MAX : (int)v; }

EXPORT struct mallinfo mallinfo(void)
{
    struct mallinfo2 m = mallinfo2();
    return (struct mallinfo){.arena = clamp(m.arena), .ordblks = clamp(m.ordblks),
                             .smblks = clamp(m.smblks), .hblks = clamp(m.hblks),
                             .hblkhd = clamp(m.hblkhd), .usmblks = clamp(m.usmblks),
                             .fsmblks = clamp(m.fsmblks), .uordblks = clamp(m.uordblks),
                             .fordblks = clamp(m.fordblks), .keepcost = clamp(m.keepcost)};
}

EXPORT void *__libc_calloc(size_t c, size_t n) { return ga_calloc(c, n); }
EXPORT void *__libc_realloc(void *p, size_t n) { return ga_realloc(p, n); }
EXPORT void *__libc_memalign(size_t a, size_t n) { return ga_memalign(a, n); }
EXPORT void *__libc_valloc(size_t n) { return ga_valloc(n); }
EXPORT void *__libc_pvalloc(size_t n) { return ga_pvalloc(n); }
EXPORT int __posix_memalign(void **out, size_t a, size_t n) { return ga_posix_memalign(out, a, n); }
#endif
