/* The libc names of the preload library, forwarding to the ga_ functions
 * (the glibc manual's "Replacing malloc" list plus the __libc_ aliases that
 * glibc uses internally). Linked only into libgoalloc.so. See malloc.c for
 * the overview. */
#if !defined(GA_OVERRIDE)
#error "override.c belongs to the preload library only (build with -DGA_OVERRIDE)"
#else
#include <errno.h>
#include <stddef.h>

#include "goalloc.h"

#define EXPORT __attribute__((visibility("default")))

EXPORT void *malloc(size_t n) { return ga_malloc(n); }
EXPORT void free(void *p) { ga_free(p); }
EXPORT void *calloc(size_t c, size_t n) { return ga_calloc(c, n); }
EXPORT void *realloc(void *p, size_t n) { return ga_realloc(p, n); }
EXPORT void *reallocarray(void *p, size_t c, size_t n) { return ga_reallocarray(p, c, n); }
EXPORT int posix_memalign(void **out, size_t a, size_t n) { return ga_posix_memalign(out, a, n); }
EXPORT void *aligned_alloc(size_t a, size_t n) { return ga_aligned_alloc(a, n); }
EXPORT void *memalign(size_t a, size_t n) { return ga_memalign(a, n); }
EXPORT void *valloc(size_t n) { return ga_valloc(n); }
EXPORT void *pvalloc(size_t n) { return ga_pvalloc(n); }
EXPORT size_t malloc_usable_size(void *p) { return ga_malloc_usable_size(p); }
EXPORT void cfree(void *p) { ga_free(p); }

EXPORT void *__libc_malloc(size_t n) { return ga_malloc(n); }
EXPORT void __libc_free(void *p) { ga_free(p); }
EXPORT void *__libc_calloc(size_t c, size_t n) { return ga_calloc(c, n); }
EXPORT void *__libc_realloc(void *p, size_t n) { return ga_realloc(p, n); }
EXPORT void *__libc_memalign(size_t a, size_t n) { return ga_memalign(a, n); }
EXPORT void *__libc_valloc(size_t n) { return ga_valloc(n); }
EXPORT void *__libc_pvalloc(size_t n) { return ga_pvalloc(n); }
EXPORT int __posix_memalign(void **out, size_t a, size_t n) { return ga_posix_memalign(out, a, n); }
#endif
