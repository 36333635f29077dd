/* goalloc public API: the malloc family with a ga_ prefix, plus
 * introspection. The preload library (override.c) forwards the libc names
 * to these; the cffi module calls them directly on its own private heap.
 * See malloc.c for the design overview. */
#ifndef GOALLOC_H
#define GOALLOC_H

#include <stddef.h>
#include <stdint.h>

/* Exported from the preload library only; hidden everywhere else so that
 * the cffi module never binds to a preloaded copy: a program run with the
 * preload library and importing the extension would otherwise have the
 * extension's ga_ calls resolved to the preloaded library's heap. */
#if defined(GA_SHARED_LIB_EXPORT)
#define GA_API __attribute__((visibility("default")))
#else
#define GA_API
#endif

/* The version of goalloc (also the Python package's: setup.py reads it
 * from here), and the environment variables the library reads: i = 0
 * GOALLOC (the options), 1 GOALLOC_STATS, 2 GOALLOC_PROFILE; NULL past
 * the last. */
#define GA_VERSION "0.2.0"
GA_API const char *ga_version(void);
GA_API const char *ga_env_name(unsigned i);

GA_API void *ga_malloc(size_t n);
GA_API void ga_free(void *p);
GA_API void *ga_calloc(size_t count, size_t size);
GA_API void *ga_realloc(void *p, size_t n);
GA_API void *ga_reallocarray(void *p, size_t count, size_t size);
GA_API int ga_posix_memalign(void **out, size_t align, size_t n);
GA_API void *ga_aligned_alloc(size_t align, size_t n);
GA_API void *ga_memalign(size_t align, size_t n);
GA_API void *ga_valloc(size_t n);
GA_API void *ga_pvalloc(size_t n);
GA_API size_t ga_malloc_usable_size(void *p);
/* C23 free_sized and free_aligned_sized: free(p) after checking that n (and
 * align) are what p was allocated with: n must give the object's size class
 * (tiny objects: n < 16; large ones: as many pages), as malloc(n) (or
 * aligned_alloc(align, n)) would have served it. A size that does not fit
 * is misuse: reported, then abort (or, with GOALLOC=on_error=report, the
 * free is ignored). NULL does nothing. */
GA_API void ga_free_sized(void *p, size_t n);
GA_API void ga_free_aligned_sized(void *p, size_t align, size_t n);

/* glibc's memory calls, answered with goalloc's own figures (field meanings
 * as in glibc's struct mallinfo2): arena = bytes of mapped arenas; ordblks =
 * free page runs; hblks, hblkhd = large objects and their bytes; uordblks =
 * bytes of live objects (small objects count their size class, tiny ones
 * their 16-byte blocks); fordblks = free bytes held (free slots in spans and
 * free pages still resident); keepcost = free pages that malloc_trim would
 * release now; smblks, usmblks, fsmblks = 0. */
typedef struct ga_mallinfo {
    size_t arena, ordblks, smblks, hblks, hblkhd, usmblks, fsmblks, uordblks, fordblks, keepcost;
} ga_mallinfo_t;

GA_API void ga_mallinfo2(ga_mallinfo_t *out);
/* Releases every free page to the OS now; 1 if anything was released. */
GA_API int ga_malloc_trim(size_t pad);
/* glibc mallopt, with glibc's parameter numbers: M_TRIM_THRESHOLD (-1)
 * turns the scavenger off (value < 0) or on (>= 0); M_PERTURB (-6) turns
 * fillnew and clobberfree on with glibc's bytes (value != 0: new objects
 * get ~value, freed ones value) or back to the GOALLOC settings (0);
 * M_MXFAST (1) accepts 0..160 as glibc does and changes nothing; M_TOP_PAD,
 * M_MMAP_THRESHOLD, M_MMAP_MAX, M_CHECK_ACTION, M_ARENA_TEST, M_ARENA_MAX
 * (-2, -3, -4, -5, -7, -8) are accepted and mean nothing here. Returns 1
 * when accepted, 0 for an out-of-range M_MXFAST or an unknown parameter. */
GA_API int ga_mallopt(int param, int value);
/* glibc's malloc_info document (schema version 1: <malloc version="1">, one
 * <heap nr="0"> with a <size> per span class, fast/rest/mmap totals,
 * system and aspace sizes; the mapping is in mstats.c and the README) into
 * buf, NUL-terminated if it fits (else buf holds ""): returns its length
 * without the NUL, so a return value >= len asks for a larger buffer;
 * GA_MALLOC_INFO_MAX always suffices. Takes every allocator lock for the
 * census and formats after releasing them; never allocates. */
enum { GA_MALLOC_INFO_MAX = 16384 };
GA_API size_t ga_malloc_info_xml(char *buf, size_t len);
/* Released pages and other figures of the page heap. */
GA_API size_t ga_pages_released(void);

/* Statistics: the counters of csrc/mstats.h, named there once. Totals are
 * one array; per-class figures one row per size class 1..nclasses (row r
 * is class r+1), each row of nclass_fields values. A snapshot takes every
 * allocator lock; it is exact when no other thread is allocating. Returns
 * 0, -1 when the arrays are too small, -2 when statistics are compiled out
 * (ga_stats_enabled). */
GA_API unsigned ga_stats_version(void);
GA_API unsigned ga_stats_ntotals(void);
GA_API const char *ga_stats_total_name(unsigned i);
GA_API const char *ga_stats_total_doc(unsigned i);
GA_API unsigned ga_stats_nclass_fields(void);
GA_API const char *ga_stats_class_field_name(unsigned i);
GA_API const char *ga_stats_class_field_doc(unsigned i);
GA_API unsigned ga_stats_nclasses(void);
GA_API int ga_stats_snapshot(uint64_t *totals, unsigned ntotals, uint64_t *classes,
                             unsigned nrows, unsigned nfields);
/* The JSON document of GOALLOC_STATS (schema version ga_stats_version())
 * into fd: 0, -1 when there are no statistics, or the errno value of a
 * failed write (the rest of the document is then dropped). */
GA_API int ga_stats_write_json(int fd);
/* The same document into buf, NUL-terminated if it fits: returns its length
 * without the NUL, so a return value >= len asks for a larger buffer (the
 * figures move between calls: leave room). Never allocates. */
GA_API size_t ga_stats_json(char *buf, size_t len);
/* 1, or 0 in a library built with GA_STATS=0 (libgoalloc-nostats.so): its
 * counters are compiled out, ga_stats_snapshot returns -2 and the JSON
 * document says "stats": "compiled out". */
GA_API int ga_stats_enabled(void);

/* Live statistics (GOALLOC=live=1): each process publishes its counters in
 * the file ga_live_path(pid) (/dev/shm/goalloc-<pid>), updated on slow
 * paths at most every interval_ms without a lock, removed at exit. The file
 * is this header, then the names (NUL-terminated: ntotals names of totals,
 * then nclass_fields names of per-class fields, as in mstats.h and the
 * JSON), then uint64_t totals[ntotals], then uint64_t
 * classes[nrows][nclass_fields] (row r is size class r + 1). Offsets are
 * from the start of the file. A reader checks magic and layout, reads seq
 * (odd: an update is in progress; 0: none yet), copies the values, and
 * retries if seq changed meanwhile. Values follow the JSON definitions with
 * three differences: objects count when their span is folded (a lag of at
 * most one span per class and thread), tiny objects count by 16-byte block,
 * and figures that need a heap walk hold the value `unavailable`. */
enum { GA_LIVE_MAGIC = 0x474c5631, GA_LIVE_LAYOUT = 1 };
typedef struct ga_live_header {
    uint32_t magic;         /* GA_LIVE_MAGIC, stored last when the file is set up */
    uint32_t layout;        /* GA_LIVE_LAYOUT: this struct and the order of the parts */
    uint32_t stats_version; /* ga_stats_version(): what the names mean */
    uint32_t pid;           /* the publishing process */
    uint64_t seq;           /* seqlock: odd while the values are written */
    uint64_t updated_ns;    /* CLOCK_MONOTONIC of the last update */
    uint64_t updates;       /* updates so far */
    uint64_t unavailable;   /* the value of a figure the live view cannot give */
    uint32_t size;          /* bytes of the file */
    uint32_t interval_ms;   /* least time between two updates */
    uint32_t ntotals;
    uint32_t nclass_fields;
    uint32_t nrows;
    uint32_t names_off;
    uint32_t names_len;
    uint32_t totals_off;
    uint32_t classes_off;
    char size_classes[28];  /* the size-class table, NUL-terminated */
} ga_live_header_t;
/* The live file of process pid into buf; returns the path's length. */
GA_API size_t ga_live_path(int pid, char *buf, size_t len);

/* Walks every invariant of the heap (page map, free page runs, mcentral
 * lists, span bitmaps, tiny blocks, mcaches). Returns 0 when all hold;
 * otherwise 1 with a one-line description of the first broken invariant in
 * msg (NUL-terminated, truncated to len). Takes every allocator lock, so
 * other threads must not be inside the allocator for a meaningful answer
 * about their cached spans. */
GA_API int ga_check_heap(char *msg, size_t len);

/* The size-class table in use (chosen at start-up). Class 0 is the dummy
 * class of large objects; classes 1..count-1 are small. */
GA_API unsigned ga_sizeclass_count(void);
GA_API unsigned ga_sizeclass_size(unsigned cls);
GA_API unsigned ga_sizeclass_npages(unsigned cls);
GA_API unsigned ga_sizeclass_objects(unsigned cls);
GA_API const char *ga_sizeclass_table_name(void);
GA_API size_t ga_page_size(void);
GA_API size_t ga_max_small_size(void);
GA_API size_t ga_tiny_size(void);
/* The compiled maximum of classes in a table, class 0 included. */
GA_API unsigned ga_sizeclass_max(void);
/* The alignment malloc(n) guarantees for n >= 16: 16, or 8 when the table
 * in use has a class of 16 B or more that is not a multiple of 16 (which
 * GOALLOC=align=8 accepts). */
GA_API size_t ga_malloc_alignment(void);
/* Reads and checks a table without using it: spec is go1.12, go1.16 or the
 * path of a file in the generator's TSV format (see README), align 16 or 8
 * as GOALLOC=align. Fills size, npages and objects of classes 0..n-1 and
 * returns n; or returns -1 with the reason (a file's: "line N: ...") in
 * why. cap is the length of the arrays (ga_sizeclass_max() suffices). */
GA_API int ga_sizeclass_table_read(const char *spec, unsigned align, uint32_t *size,
                                   uint32_t *npages, uint32_t *objects, unsigned cap, char *why,
                                   size_t len);

/* Size profile (GOALLOC_PROFILE=PATH): the JSON document written at exit,
 * schema version ga_profile_version(); 0, -1 when not profiling, or the
 * errno value of a failed write. */
GA_API unsigned ga_profile_version(void);
GA_API int ga_profile_write_json(int fd);

/* Sampled heap profile (GOALLOC=profile_rate, GOALLOC_HEAP_PROFILE): the
 * gzipped pprof document as of now, into fd or into the file at path (%p:
 * the pid; opened as the exit's file is: no link, regular only). 0, -1
 * when not sampling, or an errno value. A program (or ctypes) calls it at
 * the moment it wants to look at, such as its peak. */
GA_API int ga_heap_profile_write(int fd);
GA_API int ga_heap_profile_dump(const char *path);

/* The rules every size-class table obeys (the macros of sizeclasses.h):
 * sizes up to small_size_max are multiples of small_size_div, larger ones
 * multiples of large_size_div; the last class is max_small_size; a table
 * has at most max_size_classes entries (class 0 included) and at most
 * max_objs_per_span objects per span of whole page_size pages. */
typedef struct ga_sizeclass_geometry {
    unsigned page_size, max_small_size, small_size_div, small_size_max, large_size_div;
    unsigned max_size_classes, max_objs_per_span;
} ga_sizeclass_geometry_t;
GA_API void ga_sizeclass_geometry(ga_sizeclass_geometry_t *out);

/* Writes a short human-readable census of the heap (arenas, pages, spans
 * and live objects per size class) to file descriptor fd, without
 * allocating. GOALLOC=summary=1 calls it at exit with fd 2. */
GA_API void ga_print_summary(int fd);
/* The totals of the statistics (ga_stats_snapshot), one per line, bytes
 * also in MiB, to fd without allocating: GOALLOC=stats=1 calls it at exit
 * with fd 2. A library built with GA_STATS=0 says they are compiled out. */
GA_API void ga_stats_print(int fd);
/* The options in effect (and where GOALLOC_STATS and GOALLOC_PROFILE
 * point), one line "goalloc <version>: options tiny=1,..." to fd:
 * GOALLOC=verbose=1 calls it once at start-up with fd 2. */
GA_API void ga_print_options(int fd);
/* The options in effect as GOALLOC spells them, "tiny=1,summary=0,...",
 * into buf (NUL-terminated, cut to len); returns the full length. */
GA_API size_t ga_options_string(char *buf, size_t len);

#endif
