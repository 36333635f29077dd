/* libga-glibc-shim.so: route the malloc family to glibc's own malloc.
 *
 * Debian's redis-server links libjemalloc.so.2, so running it with no
 * preload measures jemalloc, not glibc. Preloaded, this shim defines the
 * malloc family ahead of jemalloc and forwards each call to glibc's
 * implementation (the __libc_* entry points, or the definition inside
 * libc.so.6 looked up by handle). jemalloc stays loaded for the few
 * non-standard calls redis makes (mallctl, nallocx, malloc_stats_print).
 * The runner checks with LD_DEBUG=bindings that malloc binds here.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#define EXPORT __attribute__((visibility("default")))

extern void *__libc_malloc(size_t);
extern void __libc_free(void *);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void *__libc_valloc(size_t);
extern void *__libc_pvalloc(size_t);

EXPORT void *malloc(size_t n) { return __libc_malloc(n); }
EXPORT void free(void *p) { __libc_free(p); }
EXPORT void *calloc(size_t c, size_t n) { return __libc_calloc(c, n); }
EXPORT void *realloc(void *p, size_t n) { return __libc_realloc(p, n); }
EXPORT void *memalign(size_t a, size_t n) { return __libc_memalign(a, n); }
EXPORT void *valloc(size_t n) { return __libc_valloc(n); }
EXPORT void *pvalloc(size_t n) { return __libc_pvalloc(n); }
EXPORT void cfree(void *p) { __libc_free(p); }

EXPORT void *aligned_alloc(size_t a, size_t n)
{
    if (a == 0 || (a & (a - 1)) != 0) {
        errno = EINVAL;
        return NULL;
    }
    return __libc_memalign(a, n);
}

EXPORT int posix_memalign(void **out, size_t a, size_t n)
{
    if (a < sizeof(void *) || (a & (a - 1)) != 0)
        return EINVAL;
    int saved = errno;
    void *p = __libc_memalign(a, n);
    if (p == NULL)
        return ENOMEM;
    errno = saved;
    *out = p;
    return 0;
}

EXPORT void *reallocarray(void *p, size_t c, size_t n)
{
    size_t total;
    if (__builtin_mul_overflow(c, n, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    return __libc_realloc(p, total);
}

/* glibc has no __libc_malloc_usable_size: take the definition in libc.so.6
 * itself (dlsym on its handle searches that object first, not jemalloc). */
EXPORT size_t malloc_usable_size(void *p)
{
    static size_t (*fn)(void *);
    if (fn == NULL) {
        void *libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
        if (libc != NULL)
            fn = (size_t (*)(void *))dlsym(libc, "malloc_usable_size");
        if (fn == NULL)
            return 0;
    }
    return p == NULL ? 0 : fn(p);
}
