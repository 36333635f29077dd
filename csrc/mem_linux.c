/* Linux implementation of mem.h: the only file that includes <sys/mman.h>.
 * See mem.h for the contract and malloc.c for the overview. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

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

size_t ga_sys_page_size(void)
{
    unsigned long ps = getauxval(AT_PAGESZ); /* sysconf may not be usable this early */
    return ps ? (size_t)ps : 4096;
}

int ga_sys_open(const char *path, int write)
{
    return write ? open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)
                 : open(path, O_RDONLY | O_CLOEXEC);
}

long ga_sys_read(int fd, char *buf, unsigned long n)
{
    return (long)read(fd, buf, n);
}

void ga_sys_close(int fd)
{
    close(fd);
}

int ga_sys_getpid(void)
{
    return (int)getpid();
}

void *ga_sys_map_shared_file(const char *path, size_t size)
{
    int saved = errno;
    void *p = NULL;
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd >= 0 && ftruncate(fd, (off_t)size) == 0) {
        p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED)
            p = NULL;
    }
    if (fd >= 0)
        close(fd);
    if (p == NULL && fd >= 0)
        unlink(path);
    errno = saved;
    return p;
}

int ga_sys_unlink(const char *path)
{
    int saved = errno, rc = unlink(path) == 0 ? 0 : errno;
    errno = saved;
    return rc;
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
