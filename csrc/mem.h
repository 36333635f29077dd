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

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <unwind.h>

/* Maps size bytes at an address aligned to align (a power of two >= the OS
 * page), trying hint first. */
void *ga_sys_reserve(uintptr_t hint, size_t size, size_t align);
int ga_sys_free(void *p, size_t size);
/* Releases the pages' memory: MADV_DONTNEED (they read back as zero) or,
 * with lazy set, MADV_FREE (contents undefined until rewritten; falls back
 * to MADV_DONTNEED where the kernel lacks it). */
int ga_sys_unused(void *p, size_t size, int lazy);
/* Hardening (GOALLOC=protect): makes pages inaccessible (access 0) or
 * read/write again (access 1), Go's sysFault and its reverse; 0 or an
 * errno value (ENOMEM when the process has run out of memory maps). */
int ga_sys_protect(void *p, size_t size, int access);
/* Maps size bytes of address space that can never be accessed (PROT_NONE,
 * no memory committed): the home of GOALLOC=protect's zero-size objects. */
void *ga_sys_reserve_noaccess(size_t size);
/* Monotonic clock in nanoseconds (vDSO, no system call). */
uint64_t ga_sys_nanotime(void);
void ga_sys_sleep_ns(uint64_t ns);
void ga_sys_yield(void); /* sched_yield: lets a lock's holder on this CPU run */
size_t ga_sys_page_size(void);
/* Files (statistics, profiles, the size-class table, /proc, the live
 * file). None of these is a cancellation point (raw system calls): the
 * library may call them while it holds a lock. ga_sys_open_file never
 * follows a symbolic link in the last component, never blocks on a FIFO or
 * a device, and returns a descriptor only for a regular file; otherwise
 * -err (an errno value, or GA_ENOTREG). GA_FILE_WRITE creates the file
 * (0644, less the umask) or truncates it once it is known to be regular;
 * GA_FILE_CREATE creates it, owner read/write only, and fails with EEXIST
 * if the name exists in any form. */
enum { GA_FILE_READ, GA_FILE_WRITE, GA_FILE_CREATE };
#define GA_ENOTREG 4096 /* not an errno: the path exists but is no regular file */
int ga_sys_open_file(const char *path, int how);
/* What the last component of path is, without following it. */
typedef struct ga_file_info {
    int regular;  /* a regular file (0: a symbolic link, FIFO, directory, ...) */
    uint32_t uid; /* owner */
} ga_file_info_t;
int ga_sys_lstat(const char *path, ga_file_info_t *fi); /* 0 or an errno value */
long ga_sys_read(int fd, char *buf, unsigned long n);   /* bytes, or -errno */
long ga_sys_write(int fd, const char *p, unsigned long n); /* bytes, or -errno */
void ga_sys_close(int fd);
/* A short description of an errno value (or GA_ENOTREG), without locale
 * or allocation. */
const char *ga_sys_error_text(int err);
int ga_sys_getpid(void);
uint32_t ga_sys_geteuid(void);
/* Nonzero in a process that runs with privileges its caller does not have
 * (set-user-ID, set-group-ID, file capabilities): getauxval(AT_SECURE). */
int ga_sys_secure(void);
/* n bytes from the kernel's random source (getrandom, never blocking);
 * where that fails, a mix of the clock, addresses and the auxiliary
 * vector's randomness, hashed so that none of it can be read back. */
void ga_sys_random(void *buf, size_t n);
/* Shared memory for the live statistics: sizes the open file fd to size
 * bytes and maps it shared, read and write; NULL on error. The caller
 * closes fd; ga_sys_free unmaps it. */
void *ga_sys_map_shared_fd(int fd, size_t size);
int ga_sys_unlink(const char *path);
/* Return addresses of the calling thread's stack, innermost first, up
 * to max: libgcc's DWARF unwinder (right without frame pointers), linked
 * in. No lock, no malloc, usable from the first allocation on. Inline,
 * so that the unwinder has one frame less to walk (each costs it about
 * 1 500 instructions); its step is mem_linux.c's. */
typedef struct ga_sys_bt {
    void **buf;
    int n, max;
} ga_sys_bt_t;
_Unwind_Reason_Code ga_sys_backtrace_step(struct _Unwind_Context *ctx, void *arg);
static inline int ga_sys_backtrace(void **buf, int max)
{
    ga_sys_bt_t b = {buf, 0, max};
    int saved = errno;
    _Unwind_Backtrace(ga_sys_backtrace_step, &b);
    errno = saved;
    return b.n;
}
/* /proc/self/maps into buf (NUL-terminated, cut at cap - 1): its length,
 * or -errno. */
long ga_sys_read_maps(char *buf, size_t cap);
/* The value of environment variable name, or NULL; never allocates. */
const char *ga_sys_getenv(const char *name);

#endif
