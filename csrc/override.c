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
#include <stdio.h>
#include <stdlib.h>

#include "internal.h" /* goalloc.h, and ga_write_all */

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
/* C23 (glibc >= 2.41 has them, without a size check). */
EXPORT void free_sized(void *p, size_t n) { ga_free_sized(p, n); }
EXPORT void free_aligned_sized(void *p, size_t a, size_t n) { ga_free_aligned_sized(p, a, n); }

EXPORT int malloc_trim(size_t pad) { return ga_malloc_trim(pad); }
EXPORT int mallopt(int param, int value) { return ga_mallopt(param, value); }
EXPORT void malloc_stats(void) { ga_print_summary(2); }

/* glibc's malloc_info with goalloc's figures (ga_malloc_info_xml). Not an
 * allocator path: stdio may allocate here (a stream's buffer), which is
 * safe because the document is complete, and every goalloc lock released,
 * before fputs runs. As glibc: options other than 0 are EINVAL, and the
 * result of writing is not checked. */
EXPORT int malloc_info(int options, FILE *fp)
{
    char xml[GA_MALLOC_INFO_MAX];
    if (options != 0) {
        errno = EINVAL;
        return -1;
    }
    if (ga_malloc_info_xml(xml, sizeof xml) >= sizeof xml)
        return -1; /* cannot happen: GA_MALLOC_INFO_MAX covers every table */
    fputs(xml, fp);
    return 0;
}

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

/* ---- C++ operator new and delete ------------------------------------------------ */

/* The replaceable global operators of <new> under their Itanium C++ ABI
 * names (size_t is m, std::align_val_t a size_t, std::nothrow_t const&
 * a pointer), so that C++ programs reach goalloc without libstdc++'s
 * forwarding, and the sized deletes have their size checked. */

/* libstdc++'s std::get_new_handler() and std::__throw_bad_alloc(), when
 * the program has libstdc++ (weak: the library links against libc only,
 * -z defs, and C programs never load libstdc++). */
typedef void (*new_handler_t)(void);
extern new_handler_t _ZSt15get_new_handlerv(void) __attribute__((weak));
extern void _ZSt17__throw_bad_allocv(void) __attribute__((weak, noreturn));

/* The throwing forms out of memory: the new-handler loop of
 * [new.delete.single], then std::bad_alloc, thrown by libstdc++ through
 * these C frames (x86-64 code always has unwind tables). Without libstdc++
 * there is nobody to catch it: one line, then abort. */
static __attribute__((noinline, cold)) void *new_failed(size_t n, size_t align)
{
    for (;;) {
        new_handler_t h = _ZSt15get_new_handlerv != NULL ? _ZSt15get_new_handlerv() : NULL;
        if (h == NULL) {
            if (_ZSt17__throw_bad_allocv != NULL)
                _ZSt17__throw_bad_allocv();
            static const char msg[] = "goalloc: operator new: out of memory, and no C++ runtime "
                                      "to throw std::bad_alloc\n";
            ga_write_all(2, msg, sizeof msg - 1);
            abort();
        }
        h();
        void *p = align ? ga_aligned_alloc(align, n) : ga_malloc(n);
        if (p != NULL)
            return p;
    }
}

static inline void *new_or_throw(size_t n)
{
    void *p = ga_malloc(n);
    return __builtin_expect(p != NULL, 1) ? p : new_failed(n, 0);
}

static inline void *new_aligned_or_throw(size_t n, size_t align)
{
    void *p = ga_aligned_alloc(align, n);
    return __builtin_expect(p != NULL, 1) ? p : new_failed(n, align);
}

/* The nothrow forms return NULL at once, without the new-handler: a
 * handler's std::bad_alloc could not be caught here. */
EXPORT void *_Znwm(size_t n) { return new_or_throw(n); }
EXPORT void *_Znam(size_t n) { return new_or_throw(n); }
EXPORT void *_ZnwmRKSt9nothrow_t(size_t n, const void *nt) { (void)nt; return ga_malloc(n); }
EXPORT void *_ZnamRKSt9nothrow_t(size_t n, const void *nt) { (void)nt; return ga_malloc(n); }
EXPORT void *_ZnwmSt11align_val_t(size_t n, size_t a) { return new_aligned_or_throw(n, a); }
EXPORT void *_ZnamSt11align_val_t(size_t n, size_t a) { return new_aligned_or_throw(n, a); }
EXPORT void *_ZnwmSt11align_val_tRKSt9nothrow_t(size_t n, size_t a, const void *nt)
{
    (void)nt;
    return ga_aligned_alloc(a, n);
}
EXPORT void *_ZnamSt11align_val_tRKSt9nothrow_t(size_t n, size_t a, const void *nt)
{
    (void)nt;
    return ga_aligned_alloc(a, n);
}

EXPORT void _ZdlPv(void *p) { ga_free(p); }
EXPORT void _ZdaPv(void *p) { ga_free(p); }
EXPORT void _ZdlPvRKSt9nothrow_t(void *p, const void *nt) { (void)nt; ga_free(p); }
EXPORT void _ZdaPvRKSt9nothrow_t(void *p, const void *nt) { (void)nt; ga_free(p); }
EXPORT void _ZdlPvSt11align_val_t(void *p, size_t a) { (void)a; ga_free(p); }
EXPORT void _ZdaPvSt11align_val_t(void *p, size_t a) { (void)a; ga_free(p); }
EXPORT void _ZdlPvSt11align_val_tRKSt9nothrow_t(void *p, size_t a, const void *nt)
{
    (void)a, (void)nt;
    ga_free(p);
}
EXPORT void _ZdaPvSt11align_val_tRKSt9nothrow_t(void *p, size_t a, const void *nt)
{
    (void)a, (void)nt;
    ga_free(p);
}
/* Sized: n is what new was asked for (new[]: with the array cookie). */
EXPORT void _ZdlPvm(void *p, size_t n) { ga_free_sized_checked(p, 0, n, "operator delete"); }
EXPORT void _ZdaPvm(void *p, size_t n) { ga_free_sized_checked(p, 0, n, "operator delete[]"); }
EXPORT void _ZdlPvmSt11align_val_t(void *p, size_t n, size_t a)
{
    ga_free_sized_checked(p, a, n, "operator delete");
}
EXPORT void _ZdaPvmSt11align_val_t(void *p, size_t n, size_t a)
{
    ga_free_sized_checked(p, a, n, "operator delete[]");
}

/* ---- glibc's internal aliases --------------------------------------------------- */

EXPORT void *__libc_calloc(size_t c, size_t n) { return ga_calloc(c, n); }
EXPORT void *__libc_realloc(void *p, size_t n) { return ga_realloc(p, n); }
EXPORT void *__libc_memalign(size_t a, size_t n) { return ga_memalign(a, n); }
EXPORT void *__libc_valloc(size_t n) { return ga_valloc(n); }
EXPORT void *__libc_pvalloc(size_t n) { return ga_pvalloc(n); }
EXPORT int __posix_memalign(void **out, size_t a, size_t n) { return ga_posix_memalign(out, a, n); }
#endif
