/* A burst, then quiet (issue 19's first program): allocate about TOTAL MiB,
 * 97 % of the objects small (8..488 B) and 3 % blocks of 40..440 KB, all
 * written; free 90 % of them in random order; sleep PAUSE ms; make 1000
 * malloc(64)/free pairs (fast paths only); then call malloc_trim(0).
 * Prints RSS (/proc/self/statm) and mallinfo2 after each step as key=value
 * lines. Runs the same on any malloc.
 * Usage: burst_idle [TOTAL_MIB [PAUSE_MS [SEED]]] */
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rss.h"

static uint64_t rng = 0x2545f4914f6cdd1dull;
static uint64_t next(void) { return xorshift64(&rng); }

int main(int argc, char **argv)
{
    size_t total = (size_t)(argc > 1 ? atol(argv[1]) : 1024) << 20;
    long pause = argc > 2 ? atol(argv[2]) : 2000;
    if (argc > 3)
        rng += (uint64_t)atol(argv[3]);
    size_t cap = total / 64 + 1024, n = 0, bytes = 0;
    void **blocks = calloc(cap, sizeof *blocks);
    if (blocks == NULL)
        return 2;
    while (bytes < total && n < cap) {
        size_t size = next() % 100 < 3 ? 40000 + next() % 400001 : 8 + next() % 481;
        if ((blocks[n] = malloc(size)) == NULL)
            return 2;
        memset(blocks[n++], 0x5a, size);
        bytes += size;
    }
    report("peak");
    for (size_t i = n; i > 1; i--) { /* shuffle, then free the first 90 % */
        size_t j = next() % i;
        void *t = blocks[i - 1];
        blocks[i - 1] = blocks[j];
        blocks[j] = t;
    }
    for (size_t i = 0; i < n / 10 * 9; i++)
        free(blocks[i]);
    report("after_free");
    struct timespec ts = {pause / 1000, (pause % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    for (int k = 0; k < 1000; k++) {
        void *volatile p = malloc(64);
        free(p);
    }
    report("after_pause");
    malloc_trim(0);
    report("after_trim");
    for (size_t i = n / 10 * 9; i < n; i++)
        free(blocks[i]);
    free(blocks);
    return 0;
}
