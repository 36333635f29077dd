/*
 * malloc_info: glibc's malloc_info under the preloaded allocator.
 *
 * Usage: malloc_info K   (meant to run with LD_PRELOAD=libgoalloc.so)
 *
 * Allocates K objects of 3000 bytes (a size class nothing else in the
 * program uses) and frees every other one, holds four large objects
 * (3 x 100000 B, 1 MiB), then prints
 *   mallinfo2 arena=A hblks=H hblkhd=B       (taken right before the XML)
 *   usable3000=U                             (malloc_usable_size of one)
 *   the XML of malloc_info(0, stdout)
 *   einval rc=R errno=E                      (malloc_info(1, stdout))
 * and exits 0. tests/test_malloc_info.py parses the output.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    int k = argc > 1 ? atoi(argv[1]) : 50;
    void **small = calloc((size_t)k, sizeof *small);
    void *large[4] = {malloc(100000), malloc(100000), malloc(100000), malloc(1 << 20)};
    if (small == NULL || !large[0] || !large[1] || !large[2] || !large[3])
        return 1;
    for (int i = 0; i < k; i++)
        if ((small[i] = malloc(3000)) == NULL)
            return 1;
    for (int i = 0; i < k; i += 2)
        free(small[i]);
    setvbuf(stdout, NULL, _IOFBF, 1 << 16); /* the stream's buffer, before the figures */
    printf("usable3000=%zu\n", malloc_usable_size(small[1]));
    struct mallinfo2 m = mallinfo2();
    printf("mallinfo2 arena=%zu hblks=%zu hblkhd=%zu\n", m.arena, m.hblks, m.hblkhd);
    if (malloc_info(0, stdout) != 0)
        return 2;
    errno = 0;
    int rc = malloc_info(1, stdout);
    printf("einval rc=%d errno=%d\n", rc, errno == EINVAL ? 22 : errno);
    return 0;
}
