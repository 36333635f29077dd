/* C-side benchmark loops for pytest-benchmark (bench/bench_ffi.py): each
 * loop runs as one FFI call, on goalloc's private heap or on the system
 * malloc through the very same code, so that the figures compare
 * allocators, not the cost of crossing the FFI. Compiled only with
 * GA_TESTING (the cffi extension). See malloc.c for the overview. */
#ifndef GA_BENCHLOOPS_H
#define GA_BENCHLOOPS_H

#include <stddef.h>
#include <stdint.h>

/* The heap a loop runs on. */
enum { GA_BENCH_SYSTEM = 0, GA_BENCH_GOALLOC = 1 };

/* Every loop returns a checksum of bytes written into and read back from
 * its blocks (so that no compiler can drop a malloc/free pair), or
 * UINT64_MAX when heap is unknown or an allocation failed. */

/* n times: p = malloc(size), write and read a byte, free(p). */
uint64_t ga_bench_pairs(int heap, size_t size, uint64_t n);

/* n allocations of mixed sizes (70 % 16..128 B, 25 % up to 1 KiB, 5 % up
 * to 16 KiB), each replacing a random one of window live blocks (window
 * 1..65536); the blocks left at the end are freed. */
uint64_t ga_bench_mixed(int heap, uint64_t n, unsigned window, uint64_t seed);

/* The calling thread allocates n blocks of size bytes and hands them, 64 at
 * a time through a bounded queue, to a second thread that frees them:
 * every free is a cross-thread free. */
uint64_t ga_bench_cross_thread(int heap, size_t size, uint64_t n);

/* GA_DEBUG of this build: the loops on goalloc's heap include its
 * assertions unless the extension was built with GOALLOC_DEBUG=0. */
int ga_bench_debug_level(void);

#endif
