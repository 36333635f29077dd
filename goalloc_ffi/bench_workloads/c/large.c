/* large: blocks of 64 KiB to 32 MiB, and realloc growth.
 *
 * Usage: large ITERATIONS GROWTHS
 *
 * Phase 1: ITERATIONS times, replace a random one of 16 slots with a block
 * of a random size (log-uniform in 64 KiB .. 32 MiB) and write one byte
 * per 4 KiB page of it, checking the previous block's pages before freeing
 * it. Phase 2: GROWTHS times, grow a buffer from 64 KiB to 32 MiB by
 * realloc in steps of 1/8 of its size, appending a pattern each step, and
 * check the whole pattern at the end (as a growing vector or string builder
 * does). The page heap, returning memory to the OS, and whether realloc can
 * grow in place or remap instead of copying.
 */
#include "common.h"

enum { SLOTS = 16, PAGE = 4096 };

static void touch(unsigned char *p, size_t n, unsigned char v)
{
    for (size_t i = 0; i < n; i += PAGE)
        p[i] = v;
    p[n - 1] = v;
}

static void verify(const unsigned char *p, size_t n, unsigned char v)
{
    for (size_t i = 0; i < n; i += PAGE)
        if (p[i] != v)
            die("corrupted large block of size", n);
    if (p[n - 1] != v)
        die("corrupted large block of size", n);
}

static size_t log_uniform(uint64_t *rng, size_t lo, size_t hi)
{
    /* 2^(16 + 9u) for u uniform in [0, 1), in 1/64 steps of the exponent */
    unsigned steps = 64;
    unsigned e = rng_below(rng, 9 * steps + 1);
    double f = 1.0;
    for (unsigned i = 0; i < e; i++)
        f *= 1.0108892860517005; /* 2^(1/64) */
    size_t n = (size_t)((double)lo * f);
    n += rng_below(rng, 4096);
    return n > hi ? hi : n;
}

int main(int argc, char **argv)
{
    unsigned long iters = arg_or(argc, argv, 1, 3000);
    unsigned long growths = arg_or(argc, argv, 2, 6);
    const size_t lo = 64 << 10, hi = 32 << 20;
    unsigned char *blk[SLOTS] = {0};
    size_t len[SLOTS] = {0};
    unsigned char val[SLOTS] = {0};
    uint64_t rng = 7, sum = 0;
    for (unsigned long i = 0; i < iters; i++) {
        unsigned s = rng_below(&rng, SLOTS);
        if (blk[s] != NULL) {
            verify(blk[s], len[s], val[s]);
            free(blk[s]);
        }
        len[s] = log_uniform(&rng, lo, hi);
        val[s] = (unsigned char)(i | 1);
        blk[s] = xmalloc(len[s]);
        touch(blk[s], len[s], val[s]);
        sum = mix(sum, len[s]);
    }
    for (unsigned s = 0; s < SLOTS; s++) {
        if (blk[s] != NULL) {
            verify(blk[s], len[s], val[s]);
            free(blk[s]);
        }
    }
    unsigned long steps = 0;
    for (unsigned long g = 0; g < growths; g++) {
        size_t n = lo, used = 0;
        unsigned char *buf = xmalloc(n);
        while (n < hi) {
            size_t m = n + n / 8;
            m = m > hi ? hi : m;
            unsigned char *nb = realloc(buf, m);
            if (nb == NULL)
                die("realloc failed", m);
            buf = nb;
            n = m;
            for (; used + PAGE <= n; used += PAGE)
                buf[used] = (unsigned char)((used / PAGE) * 31 + g);
            steps++;
        }
        for (size_t i = 0; i + PAGE <= used; i += PAGE)
            if (buf[i] != (unsigned char)((i / PAGE) * 31 + g))
                die("realloc lost data at offset", i);
        sum = mix(sum, n);
        free(buf);
    }
    printf("large ok iterations=%lu growth_steps=%lu sum=%" PRIx64 "\n", iters, steps, sum);
    return 0;
}
