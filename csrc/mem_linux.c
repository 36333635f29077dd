/* Linux implementation of mem.h: the only file that includes <sys/mman.h>.
 * See mem.h for the contract and malloc.c for the overview. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sched.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <unwind.h>

#include "mem.h"

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000 /* Linux >= 4.17; older kernels treat it as a hint */
#endif

extern char **environ;

/* MAP_NORESERVE keeps the reservation out of commit accounting when
 * vm.overcommit_memory is heuristic (0): only touched pages count. */
static void *map_rw(void *addr, size_t size, int extra)
{
    void *p = mmap(addr, size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | extra, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

void *ga_sys_reserve(uintptr_t hint, size_t size, size_t align)
{
    if (hint != 0 && (hint & (align - 1)) == 0) {
        void *p = map_rw((void *)hint, size, MAP_FIXED_NOREPLACE);
        if (p != NULL && ((uintptr_t)p & (align - 1)) == 0)
            return p;
        if (p != NULL)
            munmap(p, size);
    }
    /* Over-allocate by one alignment unit and trim both ends (Go
     * sysReserveAligned). */
    if (size + align < size) {
        errno = ENOMEM;
        return NULL;
    }
    char *raw = map_rw(NULL, size + align, 0);
    if (raw == NULL)
        return NULL;
    uintptr_t start = ((uintptr_t)raw + align - 1) & ~(uintptr_t)(align - 1);
    size_t head = start - (uintptr_t)raw, tail = align - head;
    if (head)
        munmap(raw, head);
    if (tail)
        munmap((char *)start + size, tail);
    return (void *)start;
}

int ga_sys_protect(void *p, size_t size, int access)
{
    return mprotect(p, size, access ? PROT_READ | PROT_WRITE : PROT_NONE) == 0 ? 0 : errno;
}

void *ga_sys_reserve_noaccess(size_t size)
{
    void *p = mmap(NULL, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

int ga_sys_free(void *p, size_t size)
{
    return munmap(p, size) == 0 ? 0 : errno;
}

int ga_sys_unused(void *p, size_t size, int lazy)
{
    int saved = errno, rc = 0;
    if (lazy && madvise(p, size, MADV_FREE) == 0)
        goto out;
    if (madvise(p, size, MADV_DONTNEED) != 0)
        rc = errno;
out:
    errno = saved;
    return rc;
}

uint64_t ga_sys_nanotime(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void ga_sys_sleep_ns(uint64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

void ga_sys_yield(void) { sched_yield(); }

size_t ga_sys_page_size(void)
{
    unsigned long ps = getauxval(AT_PAGESZ); /* sysconf may not be usable this early */
    return ps ? (size_t)ps : 4096;
}

/* open, read, write and close go through syscall(2), which is never a
 * cancellation point, unlike glibc's wrappers (fstat, lstat, ftruncate and
 * unlink are none). raw returns -errno and leaves errno as it was. */
static long raw(long nr, long a, long b, long c, long d)
{
    int saved = errno;
    long r = syscall(nr, a, b, c, d);
    if (r < 0)
        r = -errno;
    errno = saved;
    return r;
}

/* The result of a libc call that returns 0 or -1 with errno, as 0 or
 * -errno; errno goes back to saved, read before the call. */
static long checked(int rc, int saved)
{
    long r = rc == 0 ? 0 : -errno;
    errno = saved;
    return r;
}

int ga_sys_open_file(const char *path, int how)
{
    static const int flags[] = {
        [GA_FILE_READ] = O_RDONLY,
        [GA_FILE_WRITE] = O_WRONLY | O_CREAT,
        [GA_FILE_CREATE] = O_RDWR | O_CREAT | O_EXCL,
    };
    int mode = how == GA_FILE_CREATE ? 0600 : 0644;
    long fd = raw(SYS_openat, AT_FDCWD, (long)path,
                  flags[how] | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, mode);
    if (fd < 0)
        return (int)fd;
    struct stat st;
    int saved = errno;
    long rc = checked(fstat((int)fd, &st), saved);
    if (rc == 0 && !S_ISREG(st.st_mode))
        rc = -GA_ENOTREG;
    if (rc == 0 && how == GA_FILE_WRITE)
        rc = checked(ftruncate((int)fd, 0), saved);
    if (rc != 0) {
        ga_sys_close((int)fd);
        return (int)rc;
    }
    return (int)fd;
}

int ga_sys_lstat(const char *path, ga_file_info_t *fi)
{
    struct stat st;
    int saved = errno;
    long rc = checked(lstat(path, &st), saved);
    if (rc != 0)
        return (int)-rc;
    fi->regular = S_ISREG(st.st_mode);
    fi->uid = st.st_uid;
    return 0;
}

long ga_sys_read(int fd, char *buf, unsigned long n)
{
    long r;
    while ((r = raw(SYS_read, fd, (long)buf, (long)n, 0)) == -EINTR)
        ;
    return r;
}

long ga_sys_write(int fd, const char *p, unsigned long n)
{
    long r;
    while ((r = raw(SYS_write, fd, (long)p, (long)n, 0)) == -EINTR)
        ;
    return r;
}

void ga_sys_close(int fd)
{
    raw(SYS_close, fd, 0, 0, 0);
}

const char *ga_sys_error_text(int err)
{
    switch (err) {
    case GA_ENOTREG: return "not a regular file (refused)";
    case ELOOP: return "a symbolic link (refused)";
    case ENOENT: return "no such file or directory";
    case EACCES: return "permission denied";
    case EPERM: return "operation not permitted";
    case EEXIST: return "the file exists";
    case EISDIR: return "a directory";
    case ENOTDIR: return "a component of the path is not a directory";
    case ENAMETOOLONG: return "file name too long";
    case ENOSPC: return "no space left on device";
    case EDQUOT: return "disk quota exceeded";
    case EFBIG: return "file too large";
    case EROFS: return "read-only file system";
    case EIO: return "input/output error";
    case EPIPE: return "broken pipe";
    case EAGAIN: return "would block";
    case EBADF: return "bad file descriptor";
    case ENXIO: return "no such device or address";
    case EMFILE: case ENFILE: return "too many open files";
    case ENOMEM: return "out of memory";
    default: return "system error";
    }
}

int ga_sys_getpid(void)
{
    return (int)getpid();
}

uint32_t ga_sys_geteuid(void)
{
    return (uint32_t)geteuid();
}

int ga_sys_secure(void)
{
    return getauxval(AT_SECURE) != 0;
}

/* splitmix64's finalizer: a bijection that spreads every input bit. */
static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

void ga_sys_random(void *buf, size_t n)
{
    long got = raw(SYS_getrandom, (long)buf, (long)n, GRND_NONBLOCK, 0);
    if (got == (long)n)
        return;
    /* No getrandom (before Linux 3.17, or seccomp): hash what differs from
     * run to run. AT_RANDOM also seeds the stack protector, so only a
     * hash of it may show in an address. */
    const uint64_t *at = (const uint64_t *)getauxval(AT_RANDOM);
    uint64_t x = ga_sys_nanotime() ^ (uint64_t)(uintptr_t)&n ^ ((uint64_t)getpid() << 32);
    if (at != NULL)
        x ^= mix64(at[0] ^ mix64(at[1]));
    for (size_t i = 0; i < n; i++) {
        if (i % 8 == 0)
            x = mix64(x + 0x9e3779b97f4a7c15ull);
        ((unsigned char *)buf)[i] = (unsigned char)(x >> (8 * (i % 8)));
    }
}

void *ga_sys_map_shared_fd(int fd, size_t size)
{
    int saved = errno;
    void *p = NULL;
    if (ftruncate(fd, (off_t)size) == 0) {
        p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED)
            p = NULL;
    }
    errno = saved;
    return p;
}

int ga_sys_unlink(const char *path)
{
    int saved = errno;
    return (int)-checked(unlink(path), saved);
}

const char *ga_sys_getenv(const char *name)
{
    size_t n = strlen(name);
    if (environ == NULL)
        return NULL;
    for (char **e = environ; *e != NULL; e++)
        if (strncmp(*e, name, n) == 0 && (*e)[n] == '=')
            return *e + n + 1;
    return NULL;
}

/* Stacks by libgcc's DWARF unwinder, linked in (libgcc_s.so.1, which
 * ld.so maps with the library: no dlopen, so no malloc, at any time, even
 * before libc is initialized). glibc 2.36's backtrace is the same walk
 * but dlopens libgcc_s on its first call, which mallocs. _Unwind_Find_FDE
 * finds each frame's CFI through glibc's _dl_find_object (>= 2.35), which
 * takes no lock. Frame pointers would be 100 times cheaper but Debian
 * builds libc and most libraries without them: the walk stops at the
 * first such frame (README "Heap profiles" has the measurements). The
 * walk itself is ga_sys_backtrace, inline (mem.h). */
_Unwind_Reason_Code ga_sys_backtrace_step(struct _Unwind_Context *ctx, void *arg)
{
    ga_sys_bt_t *b = arg;
    uintptr_t ip = _Unwind_GetIP(ctx);
    if (b->n >= b->max || ip == 0)
        return _URC_END_OF_STACK;
    b->buf[b->n++] = (void *)ip;
    return _URC_NO_REASON;
}

long ga_sys_read_maps(char *buf, size_t cap)
{
    int fd = ga_sys_open_file("/proc/self/maps", GA_FILE_READ);
    if (fd < 0)
        return fd;
    size_t len = 0;
    long r = 1;
    while (len + 1 < cap && (r = ga_sys_read(fd, buf + len, cap - 1 - len)) > 0)
        len += (size_t)r;
    ga_sys_close(fd);
    buf[len] = '\0';
    return r < 0 ? r : (long)len;
}
