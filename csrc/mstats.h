/* The statistics, defined once (Go's mstats.go): each X-macro below yields
 * the snapshot struct's fields, their names (which are also the JSON keys
 * and the Python dataclass fields) and a one-line description. Counting
 * costs the free fast path nothing and the malloc fast path one add (the
 * requested size, into the cached span: GA_STAT_REQUESTED): allocations are
 * counted when a span's handed-out slots are folded, frees from the folded
 * bits, and the rest is read off the heap when a snapshot is taken. See
 * malloc.c for the overview. */
#ifndef GA_MSTATS_H
#define GA_MSTATS_H

/* Version of the JSON schema (and of the live file's names); bump when a
 * field is added, removed or changes meaning.
 *   1  the first schema.
 *   2  requested_bytes, frag_cumulative_bytes, frag_live_estimate_bytes (totals and
 *      per class) and bytes_free_in_spans; a library built with GA_STATS=0 writes
 *      {"version", "pid", "stats": "compiled out"} and nothing else.
 *   3  provenance after "pid": "goalloc_version", "comm", "argv", "argv_truncated" and
 *      "options" (every option in effect, as GOALLOC spells it; the compiled-out form
 *      has them too); per class peak_span_bytes (bytes of the class's spans when the heap
 *      peaked) and peak_class_span_bytes (the class's own peak). */
#define GA_STATS_VERSION 3

/* GA_STATS=0 compiles the counters out (libgoalloc-nostats.so): the macros
 * below become no-ops, the per-thread requested-bytes array disappears, and
 * the statistics API reports that nothing was counted. */
#ifndef GA_STATS
#define GA_STATS 1
#endif
#if GA_STATS
/* counter += v (relaxed atomic; slow paths only). */
#define GA_STAT_ADD(counter, v) atomic_fetch_add_explicit(&(counter), (v), memory_order_relaxed)
/* n bytes requested of an object of the cached span s: one plain add, the
 * only statistics work on the malloc fast path (folded into
 * ga_class_counters with the span's mallocs, mspan.c). */
#define GA_STAT_REQUESTED(s, n) ((s)->requested += (uint32_t)(n))
/* n bytes requested of a tiny object by mcache mc (mcache.c flushes). */
#define GA_STAT_TINY_REQUESTED(mc, n) ((mc)->tiny_requested += (n))
#else
#define GA_STAT_ADD(counter, v) ((void)sizeof(counter), (void)sizeof(v))
#define GA_STAT_REQUESTED(s, n) ((void)sizeof(s), (void)sizeof(n))
#define GA_STAT_TINY_REQUESTED(mc, n) ((void)sizeof(mc), (void)sizeof(n))
#endif

/* Process-wide figures. */
#define GA_STAT_TOTALS(X)                                                                          \
    X(bytes_in_use, "bytes of live objects: small ones count their size class, tiny ones their "   \
                    "sub-objects' bytes, large ones their pages")                                  \
    X(objects_in_use, "live objects (tiny sub-objects one each)")                                  \
    X(bytes_mapped, "bytes of arenas mapped from the OS")                                          \
    X(bytes_released, "bytes of free pages returned to the OS")                                    \
    X(bytes_free_resident, "bytes of free pages still resident (what malloc_trim would release)")  \
    X(bytes_metadata, "bytes mapped for the allocator's own metadata")                            \
    X(rss_bytes, "resident set size of the process (/proc/self/statm)")                           \
    X(peak_rss_bytes, "peak resident set size of the process (/proc/self/status VmHWM)")          \
    X(peak_heap_bytes, "peak of bytes in in-use spans and large objects")                         \
    X(heap_pages_in_use, "8 KiB pages in spans and large objects")                                 \
    X(heap_pages_free, "8 KiB pages in free runs")                                                 \
    X(heap_pages_released, "free pages returned to the OS")                                        \
    X(heap_free_runs, "free page runs (after coalescing)")                                         \
    X(arenas, "64 MiB arenas mapped")                                                              \
    X(reclaimed_pages, "pages recovered by reclaim before the heap grew (Go mheap.reclaim)")       \
    X(reclaim_credit_pages, "pages reclaimed beyond a request, kept as credit")                    \
    X(scavenged_pages, "pages released to the OS so far, all causes")                              \
    X(scavenge_credit_pages, "pages released beyond a growth's need (Go scavengeCredit)")          \
    X(purged_os_pages, "OS pages of free slots in partial spans released now")                     \
    X(small_mallocs, "allocations from size-class spans (tiny blocks included)")                   \
    X(small_frees, "frees into size-class spans (tiny blocks included)")                           \
    X(large_objects, "live large objects (> 32 KiB)")                                              \
    X(large_bytes, "bytes of live large objects (whole pages)")                                    \
    X(large_mallocs, "large objects allocated so far")                                             \
    X(large_frees, "large objects freed so far")                                                   \
    X(pagecache_bytes, "bytes of freed large objects threads keep for their next large mallocs "   \
                       "(GOALLOC=pagecache)")                                                      \
    X(pagecache_objects, "freed large objects threads keep in their page caches")                  \
    X(pagecache_hits, "large mallocs served from the thread's page cache, without the heap lock") \
    X(tiny_blocks, "16-byte tiny blocks in use")                                                   \
    X(tiny_objects, "live tiny sub-objects")                                                       \
    X(tiny_bytes_saved, "bytes saved by packing tiny objects, against one 16-byte slot each")      \
    X(atomic_frees, "frees that took the atomic path: into a span another thread's cache holds, or "  \
                    "one no cache holds (given back to mcentral, or its thread exited)")        \
    X(cross_thread_frees, "frees into a span another thread's cache held at the time: true "        \
                          "cross-thread frees (a subset of atomic_frees)")                     \
    X(mcache_refills, "thread-cache refills from mcentral (each takes GOALLOC=refill spans)")     \
    X(mcentral_grows, "spans taken from the page heap by mcentral")                                \
    X(misuse_errors, "heap misuse reported (double free, invalid pointer, ...)")                  \
    X(bytes_free_in_spans, "bytes of free slots and span tails in in-use spans, still resident")  \
    X(requested_bytes, "bytes requested by small and tiny mallocs so far (their malloc argument)") \
    X(frag_cumulative_bytes, "internal fragmentation of all small and tiny mallocs so far, exact: " \
                             "bytes handed out (class size; tiny: 16-byte blocks) - bytes requested") \
    X(frag_live_estimate_bytes, "ESTIMATE of the internal fragmentation in live small and tiny "  \
                                "objects: per class, live objects x average waste per malloc "  \
                                "(free does not know the requested size)")

/* Per size class (rows 1 .. nclasses-1). */
#define GA_STAT_CLASS(X)                                                                           \
    X(size, "bytes per object")                                                                    \
    X(mallocs, "objects allocated so far")                                                         \
    X(frees, "objects freed so far")                                                               \
    X(objects_in_use, "live objects")                                                              \
    X(bytes_in_use, "bytes of live objects (counted at the class size)")                           \
    X(spans_cached, "spans held by thread caches")                                                 \
    X(spans_partial, "spans on the mcentral partial list")                                         \
    X(spans_full, "spans on the mcentral full list")                                               \
    X(mcache_refills, "thread-cache refills of this class from mcentral")                         \
    X(mcentral_grows, "spans of this class taken from the page heap")                              \
    X(requested_bytes, "bytes requested by the mallocs of this class so far (malloc's argument)")  \
    X(frag_cumulative_bytes, "internal fragmentation over all mallocs of this class so far, exact: " \
                             "mallocs x size - requested_bytes")                                 \
    X(frag_live_estimate_bytes, "ESTIMATE of the bytes lost to rounding in the live objects: "    \
                                "objects_in_use x frag_cumulative_bytes / mallocs")                \
    X(peak_span_bytes, "bytes of this class's spans when the heap's pages in use first reached " \
                       "their peak (peak_heap_bytes)")                                           \
    X(peak_class_span_bytes, "the most bytes this class's spans ever held at one time")

#define GA_STAT_ENUM(name, doc) GA_STAT_##name,
enum { GA_STAT_TOTALS(GA_STAT_ENUM) GA_STAT_NTOTALS };
#define GA_CSTAT_ENUM(name, doc) GA_CSTAT_##name,
enum { GA_STAT_CLASS(GA_CSTAT_ENUM) GA_STAT_NCLASS };
#undef GA_STAT_ENUM
#undef GA_CSTAT_ENUM

#endif
