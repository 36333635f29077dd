/* The size-class table at run time (Go's msize.go): the chosen generated
 * table is copied into ga_classes at start-up, with the tiny span class
 * appended. Nothing on an allocation path depends on a compiled-in table.
 * See malloc.c for the overview and sizeclasses.h for the table's rules. */
#include <string.h>

#include "internal.h"

ga_classes_t ga_classes; /* zero before start-up: every size maps to class 0 */

static uint32_t magic_of(uint32_t size)
{
    return (uint32_t)(UINT32_MAX / size + 1);
}

/* REQUIRES: start-up, before any allocation is served. */
void ga_classes_load(const ga_sizeclass_table_t *t)
{
    ga_classes_t c;
    memset(&c, 0, sizeof c);
    c.nclasses = t->nclasses;
    c.name = t->name;
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

size_t ga_page_size(void) { return GA_PAGE_SIZE; }
size_t ga_max_small_size(void) { return GA_MAX_SMALL_SIZE; }
size_t ga_tiny_size(void) { return GA_TINY_SIZE; }
