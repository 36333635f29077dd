/* What the RSS programs of bench/memory share: a xorshift generator, the
 * resident set from /proc/self/statm, and one "STEP key=value..." line. */
#ifndef GA_BENCH_RSS_H
#define GA_BENCH_RSS_H

#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

static inline uint64_t xorshift64(uint64_t *r)
{
    *r ^= *r << 13;
    *r ^= *r >> 7;
    *r ^= *r << 17;
    return *r;
}

static inline long rss_kib(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f == NULL || fscanf(f, "%ld %ld", &pages, &resident) != 2)
        resident = -1;
    if (f != NULL)
        fclose(f);
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

/* One line: the step's name, RSS and what mallinfo2 says. */
static inline void report(const char *step)
{
    struct mallinfo2 m = mallinfo2();
    printf("%s rss_kib=%ld in_use_kib=%zu free_held_kib=%zu releasable_kib=%zu\n", step, rss_kib(),
           m.uordblks / 1024, m.fordblks / 1024, m.keepcost / 1024);
    fflush(stdout);
}

#endif
