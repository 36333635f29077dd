/* churn: single-thread churn of small objects with a sliding window.
 *
 * Usage: churn OBJECTS [WINDOW]
 *
 * Allocates OBJECTS small blocks (8..512 B, most under 128 B) one after
 * another; each stays alive while the next WINDOW (default 20000) are
 * allocated and is then checked and freed, oldest first, as in a program
 * that keeps recent requests, messages or parse nodes. Every 64th object
 * lives 16 windows instead of one, so spans never empty all at once.
 * Stresses reuse of partially freed spans and fragmentation at a steady
 * live size.
 */
#include "common.h"

static size_t pick_size(uint64_t *rng)
{
    uint32_t r = rng_below(rng, 16);
    if (r < 12)
        return rng_range(rng, 8, 128);
    if (r < 15)
        return rng_range(rng, 129, 256);
    return rng_range(rng, 257, 512);
}

static uint64_t retire(obj_t *o)
{
    uint64_t len = o->len;
    if (o->p != NULL) {
        check_block(o->p, o->len, o->tag);
        free(o->p);
        o->p = NULL;
    }
    return len;
}

int main(int argc, char **argv)
{
    unsigned long n = arg_or(argc, argv, 1, 4000000);
    unsigned long window = arg_or(argc, argv, 2, 20000);
    unsigned long lwin = window * 16;
    obj_t *win = calloc(window, sizeof *win);
    obj_t *longl = calloc(lwin / 64 + 1, sizeof *longl);
    if (win == NULL || longl == NULL || window == 0)
        die("bad window", window);
    uint64_t rng = 42, sum = 0;
    for (unsigned long i = 0; i < n; i++) {
        obj_t *slot = (i % 64 == 63) ? &longl[(i / 64) % (lwin / 64 + 1)] : &win[i % window];
        sum = mix(sum, retire(slot));
        slot->len = (uint32_t)pick_size(&rng);
        slot->tag = rng_next(&rng);
        slot->p = xmalloc(slot->len);
        tag_block(slot->p, slot->len, slot->tag);
    }
    for (unsigned long i = 0; i < window; i++)
        sum = mix(sum, retire(&win[i]));
    for (unsigned long i = 0; i < lwin / 64 + 1; i++)
        sum = mix(sum, retire(&longl[i]));
    free(win);
    free(longl);
    printf("churn ok objects=%lu window=%lu sum=%" PRIx64 "\n", n, window, sum);
    return 0;
}
