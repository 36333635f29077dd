/* The rules every size-class table obeys (the macros of sizeclasses.h),
 * exported so that tools building tables outside C (goalloc_ffi's fitted
 * tables, `goalloc sizeclasses --fit`) take them from the library instead
 * of restating them. Nothing here is on an allocation path.
 * See malloc.c for the overview and sizeclasses.h for the table's rules. */
#include "internal.h"

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
