/* sweep: every size from 8 B to 32 KiB.
 *
 * Usage: sweep ROUNDS
 *
 * For each size (every 8 B up to 512, every 16 B up to 1 KiB, every 128 B up
 * to 8 KiB, every 1 KiB up to 32 KiB): allocate about 256 KiB worth of
 * blocks (at least 8), write each one's ends, then free them, the first
 * half in allocation order and the second half in reverse; ROUNDS times.
 * Touches every size class, with the switch from one class to the next on
 * each step: the cost of refilling caches and of starting spans, and how
 * well each allocator's classes fit the sizes (peak RSS).
 */
#include "common.h"

static size_t next_size(size_t s)
{
    if (s < 512)
        return s + 8;
    if (s < 1024)
        return s + 16;
    if (s < 8192)
        return s + 128;
    return s + 1024;
}

int main(int argc, char **argv)
{
    unsigned long rounds = arg_or(argc, argv, 1, 6);
    enum { BUDGET = 256 << 10, MAXN = BUDGET / 8 };
    void **blk = calloc(MAXN, sizeof *blk);
    if (blk == NULL)
        die("calloc failed", MAXN);
    uint64_t sum = 0, pairs = 0;
    for (unsigned long r = 0; r < rounds; r++) {
        for (size_t s = 8; s <= 32768; s = next_size(s)) {
            size_t n = BUDGET / s < 8 ? 8 : BUDGET / s;
            for (size_t i = 0; i < n; i++) {
                blk[i] = xmalloc(s);
                tag_block(blk[i], s, (uint64_t)i * 2654435761u + s);
            }
            for (size_t k = 0; k < n; k++) {
                size_t i = k < n / 2 ? k : n - 1 - (k - n / 2);
                check_block(blk[i], s, (uint64_t)i * 2654435761u + s);
                free(blk[i]);
            }
            sum = mix(sum, s * n);
            pairs += n;
        }
    }
    free(blk);
    printf("sweep ok pairs=%" PRIu64 " sum=%" PRIx64 "\n", pairs, sum);
    return 0;
}
