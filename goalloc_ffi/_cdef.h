/* cffi declarations: csrc/goalloc.h and csrc/testing.h, declaration for
 * declaration (cdef cannot include headers or expand macros). */

/* goalloc.h */
void *ga_malloc(size_t n);
void ga_free(void *p);
void *ga_calloc(size_t count, size_t size);
void *ga_realloc(void *p, size_t n);
void *ga_reallocarray(void *p, size_t count, size_t size);
int ga_posix_memalign(void **out, size_t align, size_t n);
void *ga_aligned_alloc(size_t align, size_t n);
void *ga_memalign(size_t align, size_t n);
void *ga_valloc(size_t n);
void *ga_pvalloc(size_t n);
size_t ga_malloc_usable_size(void *p);
int ga_check_heap(char *msg, size_t len);
unsigned ga_sizeclass_count(void);
unsigned ga_sizeclass_size(unsigned cls);
unsigned ga_sizeclass_npages(unsigned cls);
unsigned ga_sizeclass_objects(unsigned cls);
const char *ga_sizeclass_table_name(void);
size_t ga_page_size(void);
size_t ga_max_small_size(void);
size_t ga_tiny_size(void);
void ga_print_summary(int fd);
typedef struct ga_mallinfo {
    size_t arena, ordblks, smblks, hblks, hblkhd, usmblks, fsmblks, uordblks, fordblks, keepcost;
} ga_mallinfo_t;
void ga_mallinfo2(ga_mallinfo_t *out);
int ga_malloc_trim(size_t pad);
int ga_mallopt(int param, int value);
size_t ga_pages_released(void);

/* testing.h */
typedef struct ga_test_ptr_info {
    int kind;
    unsigned spc;
    size_t elemsize;
    size_t npages;
    uintptr_t span_base;
    int state;
    unsigned nelems;
    unsigned alloc_count;
    unsigned freeindex;
    unsigned nlocal;
    int nremote;
    int owned_by_caller;
    int needzero;
    unsigned tiny_word;
} ga_test_ptr_info_t;

typedef struct ga_test_heap_info {
    size_t narenas;
    size_t pages_inuse;
    size_t pages_free;
    size_t free_runs;
    size_t largest_free_run; /* pages */
    size_t pages_released;   /* free pages returned to the OS */
    size_t retained;         /* pages in use + free pages not released */
    size_t scav_credit;      /* pages */
    size_t reclaim_credit;   /* pages */
    uint64_t scavenged_total;
    uint64_t reclaimed_total;
    size_t goal;             /* retained goal, pages */
} ga_test_heap_info_t;

int ga_test_ptr_info(void *p, ga_test_ptr_info_t *out);
const char *ga_test_state_name(int state);
void ga_test_heap_info(ga_test_heap_info_t *out);
unsigned ga_test_size_to_class(size_t n);
unsigned ga_test_tiny_class(void);
size_t ga_test_central_spans(unsigned spc, int which);
void ga_test_release_cache(void);
int ga_test_fresh_span(size_t n);
void ga_test_exit_cache(void);
void ga_test_corrupt(void *p, int what, int on);
void ga_test_repair_page(void *p, void *span_of);
void ga_test_set_tiny(int on);
void ga_test_advance_clock(uint64_t ns);
void ga_test_scavenge_tick(void);
void ga_test_scavenge_for_growth(size_t npages);
int ga_test_threads(int nthreads, int iters, unsigned seed);
void ga_test_parse_options(const char *s);
long long ga_test_option(const char *key);

/* benchloops.h */
enum { GA_BENCH_SYSTEM = 0, GA_BENCH_GOALLOC = 1 };
uint64_t ga_bench_pairs(int heap, size_t size, uint64_t n);
uint64_t ga_bench_mixed(int heap, uint64_t n, unsigned window, uint64_t seed);
uint64_t ga_bench_cross_thread(int heap, size_t size, uint64_t n);
int ga_bench_debug_level(void);
