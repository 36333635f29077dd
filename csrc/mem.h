/* The OS contract: the only way goalloc gets or returns memory, and the only
 * OS services it uses on allocator paths (see malloc.c for the overview).
 *
 * Address-space states, after Go's mem.go:
 *   None     -> Reserved  ga_sys_reserve: read/write, MAP_NORESERVE mapping
 *                         that holds no RAM until touched (Linux commits
 *                         lazily, so Go's Reserved and Prepared coincide);
 *   Reserved -> Ready     first touch by the program;
 *   Ready    -> Reserved  ga_sys_unused: pages dropped (MADV_DONTNEED reads
 *                         back zero) — used by the scavenger;
 *   any      -> None      ga_sys_free.
 * Preconditions: addresses and sizes are multiples of the OS page size and
 * sizes are non-zero. Return convention: pointers are NULL on failure with
 * errno set by the kernel; ints are 0 or an errno value. */
#ifndef GA_MEM_H
#define GA_MEM_H

#include <stddef.h>
#include <stdint.h>

/* Maps size bytes at an address aligned to align (a power of two >= the OS
 * page), trying hint first. */
void *ga_sys_reserve(uintptr_t hint, size_t size, size_t align);
int ga_sys_free(void *p, size_t size);
/* Releases the pages' memory: MADV_DONTNEED (they read back as zero) or,
 * with lazy set, MADV_FREE (contents undefined until rewritten; falls back
 * to MADV_DONTNEED where the kernel lacks it). */
int ga_sys_unused(void *p, size_t size, int lazy);
/* Monotonic clock in nanoseconds (vDSO, no system call). */
uint64_t ga_sys_nanotime(void);
void ga_sys_sleep_ns(uint64_t ns);
size_t ga_sys_page_size(void);
/* Files, for statistics (/proc reads, the JSON written at exit): open for
 * reading, or for writing (created or truncated, 0644); -1 on error. */
int ga_sys_open(const char *path, int write);
long ga_sys_read(int fd, char *buf, unsigned long n);
void ga_sys_close(int fd);
int ga_sys_getpid(void);
/* Shared memory for the live statistics: creates (or truncates) the file
 * path with mode 0644, sizes it to size bytes and maps it shared, read and
 * write; NULL on error. ga_sys_free unmaps it. */
void *ga_sys_map_shared_file(const char *path, size_t size);
int ga_sys_unlink(const char *path);
/* The value of environment variable name, or NULL; never allocates. */
const char *ga_sys_getenv(const char *name);

#endif
