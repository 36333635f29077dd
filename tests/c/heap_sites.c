/* Two allocating call sites, one allocating three times the bytes of the
 * other, for the sampled heap profile (tests/test_heap_profile.py).
 *   heap_sites ROUNDS [free]   each round: small_site 1x, big_site 3x
 * (4 KiB objects); "free" frees big_site's objects at the end, keeping
 * small_site's live. Prints a checksum so runs can be compared.
 *   heap_sites threads N       8 threads allocate N objects of every size
 * class range (tiny, small, large), each freed by another thread half of
 * the time, then the preloaded library's ga_check_heap (dlsym) must pass:
 * "threads ok" and the checksum.
 *   heap_sites doublefree      bad_free frees an object twice (a misuse
 * report with the stack of the second call).
 *   heap_sites serve SECONDS   keeps 2000 of small_site's objects live and
 * replaces them one at a time for SECONDS (a running process to ask for
 * its profile); says "serving" once they are.
 *   heap_sites pairs N         hot loops of malloc+free pairs: N of 64
 * bytes (pairs_64), N/4 of 512 (pairs_512), N/16 of 2000 (pairs_2000), and
 * N/4 of 512 with 100 objects live (window_512, frees behind the window),
 * for the sampling count-down of small classes: every window refill.
 *   heap_sites stacks          2048 distinct stacks (stack_tree: 11 levels,
 * each through one of two call sites), each allocating once at stack_leaf
 * (freed), in two passes: the second finds the buckets the first made
 * before the chain heads of the profile's buckets grew. */
#include <time.h>
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <string.h>

#define OBJ 4096

__attribute__((noinline)) static void *small_site(void)
{
    void *p = malloc(OBJ);
    memset(p, 1, OBJ);
    return p;
}

__attribute__((noinline)) static void *big_site(void)
{
    void *p = malloc(OBJ);
    memset(p, 3, OBJ);
    return p;
}

#define THREADS 8
static int per_thread;
static void *_Atomic handoff[THREADS][64];
static unsigned long sums[THREADS];

static void *worker(void *arg)
{
    int t = (int)(intptr_t)arg;
    uint64_t x = 0x9E3779B97F4A7C15ull * (uint64_t)(t + 1);
    for (int i = 0; i < per_thread; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        size_t n = x % 5 == 0 ? 40000 + x % 100000 : x % 3 == 0 ? 1 + x % 15 : 16 + x % 4000;
        unsigned char *p = malloc(n);
        p[0] = (unsigned char)i;
        p[n - 1] = (unsigned char)(i >> 8);
        sums[t] += n;
        if (x & 1) { /* to another thread, which frees it */
            void *old = atomic_exchange(&handoff[(t + 1) % THREADS][x % 64], p);
            free(old);
        } else if (x & 2) {
            p = realloc(p, n + x % 300);
            free(p);
        } else {
            free(p);
        }
    }
    return NULL;
}

static int threads(int n)
{
    pthread_t th[THREADS];
    per_thread = n;
    for (int t = 0; t < THREADS; t++)
        pthread_create(&th[t], NULL, worker, (void *)(intptr_t)t);
    for (int t = 0; t < THREADS; t++)
        pthread_join(th[t], NULL);
    unsigned long sum = 0;
    for (int t = 0; t < THREADS; t++) {
        sum += sums[t];
        for (int k = 0; k < 64; k++)
            free(atomic_exchange(&handoff[t][k], NULL));
    }
    int (*check)(char *, size_t) = (int (*)(char *, size_t))dlsym(RTLD_DEFAULT, "ga_check_heap");
    char msg[512];
    if (check != NULL && check(msg, sizeof msg) != 0) {
        fprintf(stderr, "ga_check_heap: %s\n", msg);
        return 2;
    }
    printf("threads ok %lu%s\n", sum, check ? " checked" : "");
    return 0;
}

__attribute__((noinline)) static void bad_free(void *p)
{
    free(p);
    __asm__ volatile("" ::: "memory"); /* no tail call: bad_free stays on the stack */
}

#define PAIRS(name, size)                                                \
    __attribute__((noinline)) static unsigned long name(long n)          \
    {                                                                    \
        unsigned long sum = 0;                                           \
        for (long i = 0; i < n; i++) {                                   \
            unsigned char *volatile p = malloc(size);                    \
            p[0] = (unsigned char)i;                                     \
            sum += p[0];                                                 \
            free(p);                                                     \
        }                                                                \
        return sum;                                                      \
    }
PAIRS(pairs_64, 64)
PAIRS(pairs_512, 512)
PAIRS(pairs_2000, 2000)

__attribute__((noinline)) static unsigned long window_512(long n)
{
    static unsigned char *ring[100];
    unsigned long sum = 0;
    for (long i = 0; i < n; i++) {
        free(ring[i % 100]);
        ring[i % 100] = malloc(512);
        ring[i % 100][0] = (unsigned char)i;
        sum += ring[i % 100][0];
    }
    for (int k = 0; k < 100; k++)
        free(ring[k]);
    return sum;
}

__attribute__((noinline)) static void stack_leaf(void)
{
    unsigned char *volatile p = malloc(48);
    p[0] = 1;
    free(p);
}

__attribute__((noinline)) static void stack_tree(int depth, unsigned path);

__attribute__((noinline)) static void stack_left(int depth, unsigned path)
{
    stack_tree(depth, path << 1);
    __asm__ volatile("" ::: "memory"); /* no tail call: a frame of its own */
}

__attribute__((noinline)) static void stack_right(int depth, unsigned path)
{
    stack_tree(depth, path << 1 | 1);
    __asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) static void stack_tree(int depth, unsigned path)
{
    if (depth == 0) {
        stack_leaf();
    } else {
        stack_left(depth - 1, path);
        stack_right(depth - 1, path);
    }
    __asm__ volatile("" ::: "memory");
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "stacks") == 0) {
        static volatile int passes = 2; /* volatile: a loop, one call site */
        for (int r = 0; r < passes; r++)
            stack_tree(11, 0);
        printf("stacks ok\n");
        return 0;
    }
    if (argc > 2 && strcmp(argv[1], "pairs") == 0) {
        long n = atol(argv[2]);
        printf("%lu\n", pairs_64(n) + pairs_512(n / 4) + pairs_2000(n / 16) + window_512(n / 4));
        return 0;
    }
    if (argc > 2 && strcmp(argv[1], "serve") == 0) {
        static void *ring[2000];
        time_t end = time(NULL) + atoi(argv[2]);
        for (int i = 0; i < 2000; i++)
            ring[i] = small_site();
        printf("serving\n"); /* the ring full: what a profile should see from now on */
        fflush(stdout);
        for (unsigned long i = 0; time(NULL) < end; i++) {
            free(ring[i % 2000]);
            ring[i % 2000] = small_site();
        }
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "doublefree") == 0) {
        void *p = malloc(100);
        bad_free(p);
        bad_free(p);
        return 0;
    }
    if (argc > 2 && strcmp(argv[1], "threads") == 0)
        return threads(atoi(argv[2]));
    int rounds = argc > 1 ? atoi(argv[1]) : 1000;
    int do_free = argc > 2 && strcmp(argv[2], "free") == 0;
    void **small = calloc((size_t)rounds, sizeof *small);
    void **big = calloc((size_t)rounds * 3, sizeof *big);
    unsigned long sum = 0;
    for (int i = 0; i < rounds; i++) {
        small[i] = small_site();
        for (int k = 0; k < 3; k++)
            big[3 * i + k] = big_site();
        sum += ((unsigned char *)small[i])[i % OBJ] + ((unsigned char *)big[3 * i])[i % OBJ];
    }
    if (do_free)
        for (int i = 0; i < 3 * rounds; i++)
            free(big[i]);
    printf("%lu\n", sum);
    return 0;
}
