/*
 * mem_pressure: allocation under RLIMIT_AS fails cleanly and recovers.
 *
 * Usage: mem_pressure [headroom_mib [cycles]]          (defaults: 256, 3)
 *        mem_pressure reuse [headroom_mib]
 *
 * Before anything else the program maps (with mmap, not malloc) the arrays
 * that hold its pointers and runs its helper threads once (so that glibc
 * caches their stacks for the later cycles).  It then lowers the soft
 * RLIMIT_AS to the current VM size plus `headroom_mib` MiB, and in each of
 * `cycles` cycles:
 *   large   malloc(1 MiB) until it fails; then calloc, realloc (growing a
 *           live block), posix_memalign, aligned_alloc, memalign and valloc
 *           of 1 MiB or more must all fail with NULL / ENOMEM (posix_memalign
 *           returns ENOMEM, also in errno, and leaves *memptr alone),
 *           leaving the live blocks intact; free everything.
 *   small   malloc(100) until it fails, then malloc of 1..15 B (tiny) until
 *           that fails too, then calloc(1, 100) and malloc(2000); free all.
 *   grow    realloc one block to twice its size until realloc fails: NULL,
 *           ENOMEM, the block intact and still usable; free it.
 *   threads THREADS new threads fill the heap at the same time with random
 *           sizes until each has seen NULL 64 times (ENOMEM every time),
 *           while the main thread takes 1 MiB blocks until NULL; then all
 *           free their blocks and the threads exit.
 *   again   after the frees, malloc(1 MiB) until it fails again: at least 90 %
 *           of the first cycle's count must succeed (freed memory is reused,
 *           not lost on the failure paths).
 * Every live block carries a cookie derived from its address in its first
 * and last 8 bytes, checked before it is freed.  Finally the limit is
 * restored and a last round of allocations and a new thread must work.
 *
 * "reuse" checks instead that memory the heap holds serves any size: under
 * the limit, malloc(1 MiB) until NULL, then the rest of the address space is
 * taken with PROT_NONE mappings (as a program near its limit would map
 * files), and the 1 MiB blocks are freed.  malloc(100), then malloc(1000),
 * until NULL must each get back at least half of the freed bytes, and
 * malloc(1 MiB) at least 90 % of the first count.
 *
 * Prints one line per phase and "mem_pressure: ok"; exit 0 only if every
 * check passed, 2 on a failed check (the line says which).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

enum {
    MAX_BLOCKS = 4 << 20, /* pointers per array (32 MiB of address space) */
    THREADS = 4,
};

#define MiB ((size_t)1 << 20)

static int failures;

#define CHECK(cond, ...)                                                                   \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            printf("mem_pressure: FAIL %s:%d: ", __func__, __LINE__);                      \
            printf(__VA_ARGS__);                                                           \
            printf("\n");                                                                  \
            fflush(stdout);                                                                \
            failures++;                                                                    \
        }                                                                                  \
    } while (0)

typedef struct {
    void **p;
    size_t *size;
    size_t n;
} blocks;

static blocks new_blocks(void)
{
    blocks b = {0};
    b.p = mmap(NULL, MAX_BLOCKS * sizeof(void *), PROT_READ | PROT_WRITE,
               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    b.size = mmap(NULL, MAX_BLOCKS * sizeof(size_t), PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (b.p == MAP_FAILED || b.size == MAP_FAILED) {
        perror("mem_pressure: mmap");
        exit(1);
    }
    return b;
}

static uint64_t cookie(const void *p, size_t size)
{
    uint64_t z = (uint64_t)(uintptr_t)p * 0x9E3779B97F4A7C15ULL ^ size;
    return z ^ (z >> 29);
}

static void mark(void *p, size_t size)
{
    uint64_t c = cookie(p, size);
    memcpy(p, &c, size < 8 ? size : 8);
    if (size >= 16)
        memcpy((char *)p + size - 8, &c, 8);
}

static int marked(const void *p, size_t size)
{
    uint64_t c = cookie(p, size), head = 0, tail = 0;
    memcpy(&head, p, size < 8 ? size : 8);
    if (size < 8)
        return memcmp(&head, &c, size) == 0;
    if (head != c)
        return 0;
    if (size >= 16) {
        memcpy(&tail, (const char *)p + size - 8, 8);
        return tail == c;
    }
    return 1;
}

/* Adds p (of size bytes) to b; returns 0 when b is full. */
static int keep(blocks *b, void *p, size_t size)
{
    if (b->n == MAX_BLOCKS)
        return 0;
    mark(p, size);
    b->p[b->n] = p;
    b->size[b->n] = size;
    b->n++;
    return 1;
}

static void free_all(blocks *b, const char *phase)
{
    size_t bad = 0;
    for (size_t i = 0; i < b->n; i++) {
        if (!marked(b->p[i], b->size[i]))
            bad++;
        free(b->p[i]);
    }
    CHECK(bad == 0, "%s: %zu of %zu blocks lost their cookie", phase, bad, b->n);
    b->n = 0;
}

/* malloc(size) until NULL; returns the count; checks errno. */
static size_t fill_until_null(blocks *b, size_t size, const char *phase)
{
    size_t count = 0;
    for (;;) {
        errno = 0;
        void *p = malloc(size);
        if (p == NULL) {
            CHECK(errno == ENOMEM, "%s: malloc(%zu) = NULL with errno %d, not ENOMEM", phase,
                  size, errno);
            return count;
        }
        if (!keep(b, p, size)) {
            free(p);
            CHECK(0, "%s: %zu blocks of %zu B and malloc still succeeds: is RLIMIT_AS in force?",
                  phase, count, size);
            return count;
        }
        count++;
    }
}

#define EXPECT_ENOMEM(call, what)                                                          \
    do {                                                                                   \
        errno = 0;                                                                         \
        void *q_ = (call);                                                                 \
        int e_ = errno;                                                                    \
        CHECK(q_ == NULL && e_ == ENOMEM, "%s = %p, errno %d: expected NULL and ENOMEM",    \
              what, q_, e_);                                                               \
        free(q_);                                                                          \
    } while (0)

static size_t vm_mib(void)
{
    unsigned long pages = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%lu", &pages) != 1)
            pages = 0;
        fclose(f);
    }
    return pages * (size_t)sysconf(_SC_PAGESIZE) / MiB;
}

static size_t phase_large(blocks *b, unsigned cycle)
{
    size_t count = fill_until_null(b, MiB, "large");
    CHECK(count > 0, "large: not even one 1 MiB block fits");
    EXPECT_ENOMEM(calloc(1, MiB), "calloc(1, 1 MiB)");
    EXPECT_ENOMEM(calloc(MiB, 1), "calloc(1 MiB, 1)");
    EXPECT_ENOMEM(aligned_alloc(4096, 2 * MiB), "aligned_alloc(4096, 2 MiB)");
    EXPECT_ENOMEM(memalign(MiB, MiB), "memalign(1 MiB, 1 MiB)");
    EXPECT_ENOMEM(valloc(2 * MiB), "valloc(2 MiB)");
    EXPECT_ENOMEM(malloc(64 * MiB), "malloc(64 MiB)");

    void *out = (void *)0x1234;
    /* Through a volatile pointer: GCC's builtin posix_memalign is assumed
     * to leave errno alone, so a direct call's errno would be folded. */
    int (*volatile pm)(void **, size_t, size_t) = posix_memalign;
    errno = 777;
    int rc = pm(&out, 4096, 2 * MiB);
    int perr = errno;
    CHECK(rc == ENOMEM, "posix_memalign(&p, 4096, 2 MiB) = %d, expected ENOMEM", rc);
    CHECK(out == (void *)0x1234, "posix_memalign changed *memptr to %p on failure", out);
    CHECK(perr == ENOMEM, "posix_memalign left errno %d, expected ENOMEM (as glibc)", perr);

    if (b->n > 0) {
        /* growing a live block: NULL, ENOMEM, the block untouched */
        size_t last = b->n - 1;
        errno = 0;
        void *q = realloc(b->p[last], 16 * MiB);
        int e = errno;
        CHECK(q == NULL && e == ENOMEM, "realloc(1 MiB block, 16 MiB) = %p, errno %d", q, e);
        if (q != NULL) {
            b->p[last] = q;
            b->size[last] = 16 * MiB;
            mark(q, 16 * MiB);
        }
        CHECK(marked(b->p[last], b->size[last]), "realloc failure damaged the block");
    }
    printf("mem_pressure: cycle %u large: %zu x 1 MiB, then NULL/ENOMEM from malloc, calloc, "
           "realloc, posix_memalign, aligned_alloc, memalign, valloc\n",
           cycle, count);
    free_all(b, "large");
    return count;
}

static void phase_small(blocks *b, unsigned cycle)
{
    size_t small = fill_until_null(b, 100, "small");
    size_t tiny = 0;
    for (size_t size = 1; size < 16; size++)
        tiny += fill_until_null(b, size, "tiny");
    EXPECT_ENOMEM(calloc(1, 100), "calloc(1, 100)");
    EXPECT_ENOMEM(malloc(2000), "malloc(2000)");
    EXPECT_ENOMEM(malloc(MiB), "malloc(1 MiB)");
    printf("mem_pressure: cycle %u small: %zu x 100 B and %zu tiny blocks, then NULL/ENOMEM\n",
           cycle, small, tiny);
    free_all(b, "small");
    void *p = malloc(MiB);
    CHECK(p != NULL, "small: malloc(1 MiB) after freeing every small block = NULL (errno %d)",
          errno);
    free(p);
}

static void phase_grow(unsigned cycle)
{
    size_t size = MiB;
    unsigned char *p = malloc(size);
    CHECK(p != NULL, "grow: malloc(1 MiB) = NULL");
    if (p == NULL)
        return;
    memset(p, 0x5A, size);
    for (;;) {
        errno = 0;
        unsigned char *q = realloc(p, 2 * size);
        if (q == NULL) {
            CHECK(errno == ENOMEM, "grow: realloc to %zu MiB: errno %d", 2 * size / MiB, errno);
            break;
        }
        p = q;
        CHECK(p[0] == 0x5A && p[size - 1] == 0x5A && p[size / 2] == 0x5A,
              "grow: realloc to %zu MiB lost the contents", 2 * size / MiB);
        memset(p + size, 0x5A, size);
        size *= 2;
    }
    size_t bad = 0;
    for (size_t i = 0; i < size; i += 4096)
        bad += p[i] != 0x5A;
    CHECK(bad == 0 && p[size - 1] == 0x5A, "grow: the block changed after the failed realloc");
    unsigned char *q = realloc(p, size / 2); /* shrinking still works */
    CHECK(q != NULL, "grow: shrinking realloc after the failure = NULL");
    if (q)
        p = q;
    printf("mem_pressure: cycle %u grow: realloc doubled up to %zu MiB, then NULL/ENOMEM with "
           "the block intact\n",
           cycle, size / MiB);
    free(p);
}

/* ---- threads filling the heap at once ---- */

/* Created anew in every cycle (glibc reuses the stacks of joined threads,
 * so pthread_create needs no new memory) and exiting at its end, so that
 * their caches go back to the heap. */
static pthread_barrier_t start_barrier, full_barrier, looked_barrier;
static blocks thread_blocks[THREADS];
static size_t thread_count[THREADS];
static int thread_bad_errno[THREADS];
static size_t thread_max_blocks; /* per thread: a few before the limit, else MAX_BLOCKS */

static void *filler(void *arg)
{
    unsigned t = (unsigned)(uintptr_t)arg;
    uint64_t rng = t + 1;
    blocks *b = &thread_blocks[t];
    size_t count = 0;
    int misses = 0;
    thread_bad_errno[t] = 0;
    pthread_barrier_wait(&start_barrier);
    while (misses < 64 && count < thread_max_blocks) {
        rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
        unsigned r = (unsigned)(rng >> 33);
        size_t size = r % 8 == 0 ? 40000 + r % 300000 : 1 + r % 3000;
        errno = 0;
        void *p = r % 5 == 0 ? calloc(1, size) : malloc(size);
        if (p == NULL) {
            if (errno != ENOMEM)
                thread_bad_errno[t] = errno ? errno : -1;
            misses++; /* other sizes may still fit: stop after 64 misses */
            continue;
        }
        if (!keep(b, p, size)) {
            free(p);
            break;
        }
        count++;
    }
    thread_count[t] = count;
    pthread_barrier_wait(&full_barrier);   /* all threads at the limit */
    pthread_barrier_wait(&looked_barrier); /* main has looked */
    free_all(b, "threads");
    return NULL;
}

static void phase_threads(unsigned cycle, blocks *mine)
{
    pthread_t th[THREADS];
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    for (unsigned t = 0; t < THREADS; t++) {
        int rc = pthread_create(&th[t], &attr, filler, (void *)(uintptr_t)t);
        if (rc != 0) {
            fprintf(stderr, "mem_pressure: pthread_create: %s\n", strerror(rc));
            exit(1);
        }
    }
    pthread_attr_destroy(&attr);
    pthread_barrier_wait(&start_barrier);
    pthread_barrier_wait(&full_barrier);
    size_t total = 0;
    for (unsigned t = 0; t < THREADS; t++) {
        total += thread_count[t];
        CHECK(thread_bad_errno[t] == 0, "threads: thread %u saw NULL with errno %d", t,
              thread_bad_errno[t]);
    }
    CHECK(total > 0, "threads: no thread got a block");
    /* the main thread meanwhile: 1 MiB blocks until ENOMEM */
    size_t main_count = 0;
    if (thread_max_blocks == MAX_BLOCKS) {
        main_count = fill_until_null(mine, MiB, "threads (main)");
        free_all(mine, "threads (main)");
    }
    pthread_barrier_wait(&looked_barrier);
    for (unsigned t = 0; t < THREADS; t++)
        pthread_join(th[t], NULL);
    if (cycle == -1u)
        return;
    printf("mem_pressure: cycle %u threads: %u threads filled the heap with %zu blocks "
           "(%zu, %zu, %zu, %zu) and main %zu x 1 MiB, then NULL/ENOMEM; all freed\n",
           cycle, THREADS, total, thread_count[0], thread_count[1], thread_count[2],
           thread_count[3], main_count);
}

static void *late_thread(void *arg)
{
    (void)arg;
    void *blocks_[64];
    for (unsigned i = 0; i < 64; i++)
        if ((blocks_[i] = malloc(1 + i * 997)) == NULL)
            return NULL;
    for (unsigned i = 0; i < 64; i++)
        free(blocks_[i]);
    return (void *)1;
}

/* ---- reuse: the heap's free memory serves small requests too ---- */

enum { MAX_BALLOON = 4096 };
static void *balloon[MAX_BALLOON];
static size_t balloon_size[MAX_BALLOON];

static void phase_reuse(blocks *b)
{
    size_t large = fill_until_null(b, MiB, "reuse (1 MiB)");
    size_t taken = 0, n = 0;
    for (size_t chunk = 64 * MiB; chunk >= 4096; chunk /= 2) {
        while (n < MAX_BALLOON) {
            void *p = mmap(NULL, chunk, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                           -1, 0);
            if (p == MAP_FAILED)
                break;
            balloon[n] = p;
            balloon_size[n++] = chunk;
            taken += chunk;
        }
    }
    free_all(b, "reuse (1 MiB)");
    printf("mem_pressure: reuse: %zu x 1 MiB, then the rest of the address space (%zu KiB) "
           "mapped PROT_NONE, the 1 MiB blocks freed\n",
           large, taken >> 10);
    static const size_t sizes[] = {100, 1000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t count = fill_until_null(b, sizes[i], "reuse (small)");
        size_t bytes = count * sizes[i];
        printf("mem_pressure: reuse: %zu x %zu B = %zu MiB of the %zu MiB freed\n", count,
               sizes[i], bytes / MiB, large);
        CHECK(bytes >= large * MiB / 2,
              "reuse: malloc(%zu) returned NULL after %zu MiB, with %zu MiB freed in the heap",
              sizes[i], bytes / MiB, large);
        free_all(b, "reuse (small)");
    }
    size_t again = fill_until_null(b, MiB, "reuse (1 MiB again)");
    printf("mem_pressure: reuse: %zu x 1 MiB again\n", again);
    CHECK(again * 10 >= large * 9, "reuse: only %zu x 1 MiB fit again, %zu at first", again,
          large);
    free_all(b, "reuse (1 MiB again)");
    while (n > 0) {
        n--;
        munmap(balloon[n], balloon_size[n]);
    }
}

int main(int argc, char **argv)
{
    int reuse = argc > 1 && strcmp(argv[1], "reuse") == 0;
    if (reuse) {
        argv++;
        argc--;
    }
    size_t headroom = (argc > 1 ? strtoul(argv[1], NULL, 10) : 256) * MiB;
    unsigned cycles = argc > 2 ? (unsigned)strtoul(argv[2], NULL, 10) : 3;
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("mem_pressure: %sheadroom %zu MiB, %u cycles\n", reuse ? "reuse, " : "",
           headroom / MiB, reuse ? 0 : cycles);

    /* Everything that must not depend on the allocator under the limit. */
    blocks b = new_blocks();
    for (unsigned t = 0; t < THREADS; t++)
        thread_blocks[t] = new_blocks();
    pthread_barrier_init(&start_barrier, NULL, THREADS + 1);
    pthread_barrier_init(&full_barrier, NULL, THREADS + 1);
    pthread_barrier_init(&looked_barrier, NULL, THREADS + 1);
    /* Once before the limit, with a few blocks each: the thread stacks
     * that later cycles reuse. */
    thread_max_blocks = 16;
    phase_threads(-1u, &b);
    thread_max_blocks = MAX_BLOCKS;
    free(malloc(100)); /* the allocator is initialised */

    unsigned long vm_pages = 0, rss_pages = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f == NULL || fscanf(f, "%lu %lu", &vm_pages, &rss_pages) != 2) {
        fprintf(stderr, "mem_pressure: cannot read /proc/self/statm\n");
        return 1;
    }
    fclose(f);
    size_t vm = vm_pages * (size_t)sysconf(_SC_PAGESIZE);

    struct rlimit old, lim;
    getrlimit(RLIMIT_AS, &old);
    lim = old;
    lim.rlim_cur = vm + headroom;
    if (setrlimit(RLIMIT_AS, &lim) != 0) {
        perror("mem_pressure: setrlimit");
        return 1;
    }
    printf("mem_pressure: RLIMIT_AS = VM size %zu MiB + %zu MiB\n", vm / MiB, headroom / MiB);

    if (reuse) {
        phase_reuse(&b);
        cycles = 0;
    }
    size_t first = 0;
    for (unsigned c = 0; c < cycles; c++) {
        size_t count = phase_large(&b, c);
        if (c == 0)
            first = count;
        phase_small(&b, c);
        phase_grow(c);
        phase_threads(c, &b);
        size_t again = fill_until_null(&b, MiB, "again");
        CHECK(again * 10 >= first * 9, "again: only %zu x 1 MiB fit after the frees, %zu at first",
              again, first);
        printf("mem_pressure: cycle %u again: %zu x 1 MiB (first cycle: %zu), VM %zu MiB\n", c,
               again, first, vm_mib());
        free_all(&b, "again");
    }

    if (setrlimit(RLIMIT_AS, &old) != 0) {
        perror("mem_pressure: setrlimit");
        return 1;
    }
    /* Limit lifted: more than the headroom fits now, and a new thread works. */
    size_t want = 2 * headroom / MiB;
    for (size_t i = 0; i < want; i++) {
        void *p = malloc(MiB);
        CHECK(p != NULL, "unlimited: malloc(1 MiB) number %zu = NULL (errno %d)", i, errno);
        if (p == NULL || !keep(&b, p, MiB))
            break;
    }
    CHECK(b.n == want, "unlimited: %zu of %zu blocks", b.n, want);
    free_all(&b, "unlimited");
    pthread_t late;
    int rc = pthread_create(&late, NULL, late_thread, NULL);
    CHECK(rc == 0, "unlimited: pthread_create = %d", rc);
    if (rc == 0) {
        void *res = NULL;
        pthread_join(late, &res);
        CHECK(res == (void *)1, "unlimited: the new thread could not allocate");
    }
    printf("mem_pressure: limit lifted: %zu x 1 MiB and a new thread allocate again\n", want);
    if (failures) {
        printf("mem_pressure: %d checks FAILED\n", failures);
        return 2;
    }
    printf("mem_pressure: ok\n");
    return 0;
}
