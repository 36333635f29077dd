/* Memory given back: allocate about TOTAL MiB (small objects of 16..1024 B
 * plus some large blocks of 64 KiB..4 MiB, all written), free 90 % of it in
 * random order, wait PAUSE ms doing a little allocation, then call
 * malloc_trim(0). Prints RSS (from /proc/self/statm) and mallinfo2 after
 * each step as key=value lines. Runs the same on any malloc.
 * Usage: rss_return [TOTAL_MIB [PAUSE_MS [SEED]]] */
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rss.h"

static uint64_t rng = 88172645463325252ull;
static uint64_t next(void) { return xorshift64(&rng); }

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int main(int argc, char **argv)
{
    size_t total = (size_t)(argc > 1 ? atol(argv[1]) : 1024) << 20;
    long pause = argc > 2 ? atol(argv[2]) : 2000;
    if (argc > 3)
        rng += (uint64_t)atol(argv[3]);
    size_t cap = total / 256 + 1024, n = 0, bytes = 0;
    void **blocks = calloc(cap, sizeof *blocks);
    if (blocks == NULL)
        return 2;
    while (bytes < total && n < cap) {
        size_t size = next() % 5000 == 0 ? (64u << 10) + next() % (1u << 20) : 16 + next() % 1009;
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
    for (long t = 0; t < pause; t += 10) { /* a little allocation activity */
        void *tmp[100];
        for (int k = 0; k < 100; k++)
            tmp[k] = malloc(64 + next() % 448);
        for (int k = 0; k < 100; k++)
            free(tmp[k]);
        sleep_ms(10);
    }
    report("after_pause");
    malloc_trim(0);
    report("after_trim");
    for (size_t i = n / 10 * 9; i < n; i++)
        free(blocks[i]);
    free(blocks);
    return 0;
}
