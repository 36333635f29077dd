/* A known sequence of requests for the size-profile tests
 * (tests/test_size_profile.py computes the same sequence). Usage:
 *     size_profile N
 * Sizes s(i) = 1 + (i * 7919) % 40000 for i < N (tiny, small and large):
 *   A. p[i] = malloc(s(i)) for every i
 *   B. free p[i] for odd i
 *   C. p[i] = realloc(p[i], s(i) + 1) for i % 4 == 0
 *   D. q[j] = calloc(1, 24) for j < N/2, then r[j] = aligned_alloc(64, 100)
 *      for j < N/4
 *   E. free everything, in allocation order.
 * No stdio before the end, so that the C library allocates the same in
 * every run whatever N is. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static size_t s(size_t i) { return 1 + (i * 7919) % 40000; }

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 0;
    void **p = calloc(n + 1, sizeof *p), **q = calloc(n / 2 + 1, sizeof *q),
         **r = calloc(n / 4 + 1, sizeof *r);
    if (p == NULL || q == NULL || r == NULL)
        return 2;
    for (size_t i = 0; i < n; i++) {
        p[i] = malloc(s(i));
        if (p[i] == NULL)
            return 3;
        memset(p[i], 1, s(i));
    }
    for (size_t i = 1; i < n; i += 2) {
        free(p[i]);
        p[i] = NULL;
    }
    for (size_t i = 0; i < n; i += 4) {
        p[i] = realloc(p[i], s(i) + 1);
        if (p[i] == NULL)
            return 4;
    }
    for (size_t j = 0; j < n / 2; j++)
        if ((q[j] = calloc(1, 24)) == NULL)
            return 5;
    for (size_t j = 0; j < n / 4; j++)
        if ((r[j] = aligned_alloc(64, 100)) == NULL)
            return 6;
    for (size_t i = 0; i < n; i++)
        free(p[i]);
    for (size_t j = 0; j < n / 2; j++)
        free(q[j]);
    for (size_t j = 0; j < n / 4; j++)
        free(r[j]);
    free(p);
    free(q);
    free(r);
    static const char done[] = "size_profile: done\n";
    return write(1, done, sizeof done - 1) == (ssize_t)(sizeof done - 1) ? 0 : 7;
}
