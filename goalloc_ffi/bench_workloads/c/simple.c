/* simple: the pattern of glibc's bench-malloc-simple, written anew.
 *
 * Usage: simple ROUNDS
 *
 * One thread; for each size of a fixed small set (16 .. 4096 B) and each
 * batch length (25, 100, 400, 1600 blocks): allocate the batch, write each
 * block, free the batch in allocation order, ROUNDS times. Nothing but the
 * allocator's single-thread fast paths; batches of 1600 also walk through
 * several spans per size. A second pass repeats it after a helper thread
 * has started and ended, because glibc takes cheaper paths while a process
 * has only ever had one thread.
 */
#include <pthread.h>

#include "common.h"

static const size_t sizes[] = {16, 32, 64, 128, 256, 512, 1024, 4096};
static const unsigned batches[] = {25, 100, 400, 1600};

static uint64_t pass(unsigned long rounds)
{
    static void *blk[1600];
    uint64_t sum = 0;
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        for (size_t bi = 0; bi < sizeof batches / sizeof batches[0]; bi++) {
            unsigned n = batches[bi];
            /* the same number of malloc/free pairs for every batch length */
            unsigned long reps = rounds * 1600 / n;
            for (unsigned long r = 0; r < reps; r++) {
                for (unsigned i = 0; i < n; i++) {
                    blk[i] = xmalloc(sizes[si]);
                    *(volatile unsigned char *)blk[i] = (unsigned char)i;
                }
                for (unsigned i = 0; i < n; i++) {
                    sum += *(unsigned char *)blk[i];
                    free(blk[i]);
                }
            }
        }
    }
    return sum;
}

static void *idle(void *arg)
{
    return arg;
}

int main(int argc, char **argv)
{
    unsigned long rounds = arg_or(argc, argv, 1, 100);
    uint64_t single = pass(rounds);
    pthread_t t;
    if (pthread_create(&t, NULL, idle, NULL) != 0 || pthread_join(t, NULL) != 0)
        die("pthread_create failed", 0);
    uint64_t multi = pass(rounds);
    printf("simple ok pairs=%lu sum=%" PRIu64 "\n",
           2 * rounds * 1600 * (unsigned long)(sizeof sizes / sizeof sizes[0]) *
               (unsigned long)(sizeof batches / sizeof batches[0]),
           single + multi);
    return 0;
}
