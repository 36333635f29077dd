/* Alignment of every allocation entry point under a size-class table
 * (tests/test_sizeclass_startup.py runs it with each table). Usage:
 *     align_check ALIGN      ALIGN: what malloc(n >= 16) must give, 16 or 8
 * malloc(n) must be aligned to the largest power of two <= n, up to ALIGN;
 * posix_memalign, aligned_alloc and memalign to what they are asked for,
 * for alignments 8 .. 64 KiB and sizes across every size class. Each block
 * is written whole and its usable size checked. Prints one summary line;
 * exits 1 on any failure. */
#define _GNU_SOURCE
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static unsigned long checked, bad;

static void check(const char *fn, void *p, size_t n, size_t align)
{
    checked++;
    if (p == NULL || (uintptr_t)p % align != 0 || malloc_usable_size(p) < n) {
        if (bad++ < 10)
            fprintf(stderr, "%s(%zu) with alignment %zu: %p usable %zu\n", fn, n, align, p,
                    p ? malloc_usable_size(p) : 0);
    }
    if (p != NULL)
        memset(p, 0xA5, n);
}

static size_t pow2_floor(size_t n)
{
    size_t a = 1;
    while (a * 2 <= n)
        a *= 2;
    return a;
}

int main(int argc, char **argv)
{
    size_t want = argc > 1 ? strtoul(argv[1], NULL, 10) : 16;
    enum { KEEP = 64 };
    void *keep[KEEP] = {0};
    unsigned k = 0;
    for (size_t n = 0; n <= 33000; n += n < 2048 ? 1 : 8) {
        size_t a = pow2_floor(n ? n : 1);
        void *p = malloc(n);
        check("malloc", p, n, a < want ? a : want);
        /* keep a few live so that later ones come from the same spans */
        free(keep[k]);
        keep[k] = p;
        k = (k + 1) % KEEP;
    }
    static const size_t sizes[] = {1, 7, 8, 9, 15, 16, 17, 24, 25, 31, 33, 40, 48, 100, 129, 500,
                                   1000, 1025, 2000, 4095, 4097, 8192, 10000, 20000, 32768, 32769,
                                   70000};
    for (size_t align = 8; align <= 65536; align *= 2) {
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            size_t n = sizes[i];
            void *p = NULL;
            if (posix_memalign(&p, align, n) != 0)
                p = NULL;
            check("posix_memalign", p, n, align);
            void *q = aligned_alloc(align, n);
            check("aligned_alloc", q, n, align);
            void *r = memalign(align, n);
            check("memalign", r, n, align);
            free(p);
            free(q);
            free(r);
        }
    }
    for (unsigned i = 0; i < KEEP; i++)
        free(keep[i]);
    printf("align_check: %lu allocations checked, %lu bad\n", checked, bad);
    return bad != 0;
}
