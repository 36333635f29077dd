/* A library whose constructor allocates. Preloaded after goalloc
 * (LD_PRELOAD="libgoalloc.so libearly.so"), its constructor runs before
 * goalloc's, so goalloc serves its first allocations before its own
 * constructor ran. Reports by write(2) and _exit(3) on failure. */
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void fail(const char *what)
{
    write(2, what, strlen(what));
    _exit(3);
}

__attribute__((constructor)) static void early(void)
{
    char *p = malloc(10);
    void *q = NULL;
    if (p == NULL)
        fail("early: malloc failed\n");
    memcpy(p, "early ok\n", 10);
    p = realloc(p, 100000);
    if (p == NULL || memcmp(p, "early ok\n", 10) != 0)
        fail("early: realloc lost the contents\n");
    if (posix_memalign(&q, 4096, 100) != 0 || ((unsigned long)q & 4095) != 0)
        fail("early: posix_memalign failed\n");
    if (malloc_usable_size(q) < 100)
        fail("early: malloc_usable_size too small\n");
    char *z = calloc(1000, 10);
    for (int i = 0; z != NULL && i < 10000; i++)
        if (z[i] != 0)
            fail("early: calloc not zeroed\n");
    write(1, p, 9);
    free(p);
    free(q);
    free(z);
}
