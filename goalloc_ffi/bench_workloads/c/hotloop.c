/* hotloop: the malloc+free pair that bench-instructions counts.
 *
 * Usage: hotloop PAIRS SIZE
 *
 * Warms up (1000 pairs), then runs PAIRS times p = malloc(SIZE); touch;
 * free(p) inside hot_loop(), which callgrind collects alone
 * (--toggle-collect=hot_loop). Two runs with different PAIRS give the
 * instructions of one pair as the difference quotient, so any one-off
 * cost inside the loop (the first span, a refill) drops out.
 */
#include "common.h"

__attribute__((noinline)) uint64_t hot_loop(unsigned long pairs, size_t size)
{
    uint64_t sum = 0;
    for (unsigned long i = 0; i < pairs; i++) {
        unsigned char *volatile p = malloc(size);
        if (p == NULL)
            die("malloc failed", size);
        p[0] = (unsigned char)i;
        sum += p[0];
        free(p);
    }
    return sum;
}

int main(int argc, char **argv)
{
    unsigned long pairs = arg_or(argc, argv, 1, 100000);
    size_t size = arg_or(argc, argv, 2, 32);
    uint64_t warm = hot_loop(1000, size);
    uint64_t sum = hot_loop(pairs, size);
    printf("hotloop ok pairs=%lu size=%zu sum=%" PRIu64 "\n", pairs, size, warm + sum);
    return 0;
}
