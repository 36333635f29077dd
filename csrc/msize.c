/* The size-class table at run time (Go's msize.go): the table chosen at
 * start-up (GOALLOC=sizeclasses=go1.12 | go1.16 | a file read by
 * sizeclass_file.c) is checked against the rules below, its divide magics
 * and lookup tables are derived from sizes and page counts alone, and it is
 * copied into ga_classes with the tiny span class appended. Nothing on an
 * allocation path depends on a compiled-in table. See malloc.c for the
 * overview and sizeclasses.h for the table's layout.
 *
 * The rules (every table, built-in or read from a file):
 *  - 2 <= nclasses <= GA_MAX_SIZE_CLASSES, class 0 the dummy (size 0);
 *  - sizes strictly increase and the last is GA_MAX_SMALL_SIZE: aligned
 *    allocations take the first class whose size is a multiple of the
 *    alignment, and 32768 is a multiple of every alignment up to a page;
 *  - sizes <= GA_SMALL_SIZE_MAX are multiples of GA_SMALL_SIZE_DIV (8) and
 *    larger ones multiples of GA_LARGE_SIZE_DIV (128): a request n looks up
 *    the first class >= n rounded up to that step, so a class off the grid
 *    would never be the best fit of any request (and 8 is malloc's minimum
 *    alignment);
 *  - with align=16 (the default), every size >= 16 is a multiple of 16, so
 *    that malloc(n >= 16) is 16-byte aligned as the x86-64 ABI expects;
 *    align=8 accepts Go 1.16's 24-byte class and its likes;
 *  - 1 <= npages <= GA_MAX_SPAN_PAGES; 1 <= objects <= GA_MAX_OBJS_PER_SPAN
 *    (the span bitmaps' capacity); tail waste <= 1/8 of the span (Go's
 *    mksizeclasses limit);
 *  - the divide magic floor((2^32-1)/size)+1 gives the exact object index of
 *    every byte offset of the span (checked in closed form below). */
#include <string.h>

#include "inline.h"

ga_classes_t ga_classes; /* zero before start-up: every size maps to class 0 */

static uint32_t magic_of(uint32_t size)
{
    return (uint32_t)(UINT32_MAX / size + 1);
}

/* Writes "reason" or "reason (a after b)"-style text into why. */
static int refuse(char *why, size_t len, const char *reason, const char *more, uint64_t v)
{
    if (why != NULL && len > 0) {
        ga_buf_t b = {why, 0, len};
        why[0] = '\0';
        ga_buf_str(&b, reason);
        if (more != NULL) {
            ga_buf_str(&b, more);
            ga_buf_uint(&b, v);
        }
    }
    return -1;
}

/* With magic = ceil(2^32/size) = (2^32 + e)/size, (o*magic) >> 32 is
 * o/size + floor((r*2^32 + o*e) / (size*2^32)) for o = q*size + r; it is
 * exact for every o <= span bytes iff that floor is 0 for the worst r
 * (size - 1), i.e. when o*e < 2^32. */
static bool magic_exact(uint32_t size, uint32_t magic, uint64_t span)
{
    uint64_t e = (uint64_t)magic * size - ((uint64_t)1 << 32);
    return span * e < ((uint64_t)1 << 32);
}

int ga_sizeclass_table_complete(ga_sizeclass_table_t *t, unsigned align, unsigned *bad, char *why,
                                size_t len)
{
    *bad = 0;
    if (t->nclasses < 2)
        return refuse(why, len, "no size classes", NULL, 0);
    if (t->nclasses > GA_MAX_SIZE_CLASSES)
        return refuse(why, len, "too many classes: the maximum is (class 0 included) ", "",
                      GA_MAX_SIZE_CLASSES);
    if (t->size[0] != 0 || t->npages[0] != 0)
        return refuse(why, len, "class 0 must be the dummy class (size 0, 0 pages)", NULL, 0);
    for (unsigned c = 1; c < t->nclasses; c++) {
        uint32_t size = t->size[c], npages = t->npages[c], prev = t->size[c - 1];
        *bad = c;
        if (size <= prev)
            return refuse(why, len, "sizes must strictly increase: this one follows ", "", prev);
        if (size % GA_SMALL_SIZE_DIV != 0)
            return refuse(why, len, "size is not a multiple of ", "", GA_SMALL_SIZE_DIV);
        if (size > GA_MAX_SMALL_SIZE)
            return refuse(why, len, "size larger than the largest small size ", "",
                          GA_MAX_SMALL_SIZE);
        if (size > GA_SMALL_SIZE_MAX && size % GA_LARGE_SIZE_DIV != 0)
            return refuse(why, len,
                          "sizes above 1024 must be multiples of 128 (the size_to_class128 step; "
                          "no request would ever use this class)",
                          NULL, 0);
        if (align >= 16 && size >= 16 && size % 16 != 0)
            return refuse(why, len,
                          "only 8-byte aligned (sizes of 16 B or more must be multiples of 16 "
                          "for malloc's 16-byte alignment; add align=8 to accept it)",
                          NULL, 0);
        if (npages < 1 || npages > GA_MAX_SPAN_PAGES)
            return refuse(why, len, "npages must be 1 to ", "", GA_MAX_SPAN_PAGES);
        uint64_t span = (uint64_t)npages << GA_PAGE_SHIFT;
        uint64_t objects = span / size, tail = span - objects * size;
        if (objects < 1)
            return refuse(why, len, "the span holds no object", NULL, 0);
        if (objects > GA_MAX_OBJS_PER_SPAN)
            return refuse(why, len, "more objects per span than the bitmaps hold: ",
                          "the maximum is ", GA_MAX_OBJS_PER_SPAN);
        if (tail > span / 8)
            return refuse(why, len, "tail waste above 1/8 of the span (Go's limit): ", "bytes ",
                          tail);
        t->magic[c] = magic_of(size);
        if (!magic_exact(size, t->magic[c], span))
            return refuse(why, len, "span too long for an exact 32-bit divide magic", NULL, 0);
    }
    *bad = t->nclasses - 1;
    if (t->size[t->nclasses - 1] != GA_MAX_SMALL_SIZE)
        return refuse(why, len, "the last class must be ", "", GA_MAX_SMALL_SIZE);
    *bad = 0;
    t->magic[0] = 0;
    /* size_to_class8[i]: first class >= 8*i; size_to_class128[i]: first
     * class >= 1024 + 128*i (the last class, 32768, ends both searches). */
    unsigned c = 0;
    for (unsigned i = 0; i < GA_SIZE_TO_CLASS8_LEN; i++) {
        while (t->size[c] < i * GA_SMALL_SIZE_DIV)
            c++;
        t->size_to_class8[i] = (uint8_t)c;
    }
    for (unsigned i = 0; i < GA_SIZE_TO_CLASS128_LEN; i++) {
        while (t->size[c] < GA_SMALL_SIZE_MAX + i * GA_LARGE_SIZE_DIV)
            c++;
        t->size_to_class128[i] = (uint8_t)c;
    }
    return 0;
}

/* The alignment malloc(n >= 16) gets from table t: 16 if every class of
 * 16 B or more is a multiple of 16, else 8. */
static unsigned table_align(const ga_sizeclass_table_t *t)
{
    for (unsigned c = 1; c < t->nclasses; c++)
        if (t->size[c] >= 16 && t->size[c] % 16 != 0)
            return 8;
    return 16;
}

static const ga_sizeclass_table_t *const builtin[] = {&ga_sizeclasses_go1_12,
                                                      &ga_sizeclasses_go1_16};

int ga_sizeclass_resolve(const char *spec, unsigned align, ga_sizeclass_table_t *t, char *why,
                         size_t len)
{
    for (unsigned i = 0; i < sizeof builtin / sizeof builtin[0]; i++) {
        if (strcmp(spec, builtin[i]->name) != 0)
            continue;
        unsigned bad;
        *t = *builtin[i];
        if (ga_sizeclass_table_complete(t, align, &bad, why, len) == 0)
            return 0;
        /* "class 3 (24 B): reason" */
        char reason[160];
        ga_buf_t b = {reason, 0, sizeof reason};
        ga_buf_str(&b, why);
        ga_buf_t w = {why, 0, len};
        ga_buf_str(&w, "class ");
        ga_buf_uint(&w, bad);
        ga_buf_str(&w, " (");
        ga_buf_uint(&w, t->size[bad]);
        ga_buf_str(&w, " B): ");
        ga_buf_str(&w, reason);
        return -1;
    }
    if (ga_sizeclass_file_read(spec, align, t, why, len) != 0)
        return -1;
    t->name = spec;
    return 0;
}

/* REQUIRES: start-up, before any allocation is served. */
void ga_classes_load(const ga_sizeclass_table_t *t)
{
    static char name[sizeof ga_opts.sizeclasses];
    ga_classes_t c;
    memset(&c, 0, sizeof c);
    c.nclasses = t->nclasses;
    ga_buf_t b = {name, 0, sizeof name};
    ga_buf_str(&b, t->name);
    c.name = name;
    c.align = table_align(t);
    for (unsigned i = 1; i < t->nclasses; i++) {
        c.size[i] = t->size[i];
        c.npages[i] = t->npages[i];
        c.nelems[i] = (t->npages[i] << GA_PAGE_SHIFT) / t->size[i];
        c.magic[i] = t->magic[i];
    }
    c.size[GA_TINY_SPC] = GA_TINY_SIZE;
    c.npages[GA_TINY_SPC] = 1;
    c.nelems[GA_TINY_SPC] = GA_PAGE_SIZE / GA_TINY_SIZE;
    c.magic[GA_TINY_SPC] = magic_of(GA_TINY_SIZE);
    memcpy(c.size_to_class8, t->size_to_class8, sizeof c.size_to_class8);
    memcpy(c.size_to_class128, t->size_to_class128, sizeof c.size_to_class128);
    ga_classes = c;
}

/* Start-up: the table GOALLOC names, or go1.12 after a message naming the
 * option and the reason. */
void ga_classes_init(void)
{
    static ga_sizeclass_table_t t; /* static: too big for small stacks */
    char why[200];
    const char *spec = ga_opts.sizeclasses[0] != '\0' ? ga_opts.sizeclasses : GA_DEFAULT_SIZECLASSES;
    unsigned align = ga_opts.align8 ? 8 : 16;
    if (ga_sizeclass_resolve(spec, align, &t, why, sizeof why) != 0) {
        ga_option_refused("sizeclasses", spec, why, "using " GA_DEFAULT_SIZECLASSES);
        if (ga_sizeclass_resolve(GA_DEFAULT_SIZECLASSES, 16, &t, why, sizeof why) != 0)
            ga_throw("the default size-class table is invalid");
    }
    ga_classes_load(&t);
}

int ga_sizeclass_table_read(const char *spec, unsigned align, uint32_t *size, uint32_t *npages,
                            uint32_t *objects, unsigned cap, char *why, size_t len)
{
    ga_sizeclass_table_t t_, *t = &t_; /* about 2 KiB */
    int n = -1;
    if (why != NULL && len > 0)
        why[0] = '\0';
    if (align != 8 && align != 16) {
        refuse(why, len, "align must be 8 or 16", NULL, 0);
    } else if (ga_sizeclass_resolve(spec, align, t, why, len) != 0) {
        /* why says it */
    } else if (t->nclasses > cap) {
        refuse(why, len, "arrays too small: the table has classes: ", "", t->nclasses);
    } else {
        for (unsigned c = 0; c < t->nclasses; c++) {
            size[c] = t->size[c];
            npages[c] = t->npages[c];
            objects[c] = c ? (t->npages[c] << GA_PAGE_SHIFT) / t->size[c] : 0;
        }
        n = (int)t->nclasses;
    }
    return n;
}

unsigned ga_sizeclass_count(void)
{
    ga_ensure_init();
    return ga_classes.nclasses;
}

unsigned ga_sizeclass_size(unsigned cls)
{
    ga_ensure_init();
    return cls < ga_classes.nclasses ? ga_classes.size[cls] : 0;
}

unsigned ga_sizeclass_npages(unsigned cls)
{
    ga_ensure_init();
    return cls < ga_classes.nclasses ? ga_classes.npages[cls] : 0;
}

unsigned ga_sizeclass_objects(unsigned cls)
{
    ga_ensure_init();
    return cls < ga_classes.nclasses ? ga_classes.nelems[cls] : 0;
}

const char *ga_sizeclass_table_name(void)
{
    ga_ensure_init();
    return ga_classes.name;
}

size_t ga_malloc_alignment(void)
{
    ga_ensure_init();
    return ga_classes.align;
}

unsigned ga_sizeclass_max(void) { return GA_MAX_SIZE_CLASSES; }
size_t ga_page_size(void) { return GA_PAGE_SIZE; }
size_t ga_max_small_size(void) { return GA_MAX_SMALL_SIZE; }
size_t ga_tiny_size(void) { return GA_TINY_SIZE; }

/* The rules every table obeys (sizeclasses.h), for tools that build
 * tables outside C (`goalloc sizeclasses --fit`), so that they take them
 * from here instead of restating them. */
void ga_sizeclass_geometry(ga_sizeclass_geometry_t *out)
{
    out->page_size = GA_PAGE_SIZE;
    out->max_small_size = GA_MAX_SMALL_SIZE;
    out->small_size_div = GA_SMALL_SIZE_DIV;
    out->small_size_max = GA_SMALL_SIZE_MAX;
    out->large_size_div = GA_LARGE_SIZE_DIV;
    out->max_size_classes = GA_MAX_SIZE_CLASSES;
    out->max_objs_per_span = GA_MAX_OBJS_PER_SPAN;
}
