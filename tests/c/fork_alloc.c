/*
 * fork_alloc: fork while other threads are inside the allocator.
 *
 * Usage: fork_alloc [forks]                                (default: 200)
 *
 * WORKERS threads allocate, check and free continuously (and pass blocks to
 * each other through atomic slots) while the main thread forks `forks`
 * times and one extra worker thread forks forks/10 times.  Each child checks
 * a block allocated before the fork, takes over a few blocks that other
 * threads had published, does some malloc/calloc/realloc/free work of its own
 * (sometimes from a new thread) and _exit(0)s.  An allocator that is not
 * fork-safe makes children deadlock (caught by a per-child timeout, the child
 * is then killed) or crash.
 *
 * Prints a deterministic summary and exits 0 only if every child exited 0.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testlib.h"

enum {
    WORKERS = 3,
    LOCAL_SLOTS = 64,
    SHARED_SLOTS = 64,
    CHILD_OPS = 2000,
    CHILD_TIMEOUT_SECONDS = 30,
};

/* Exit codes of a child. */
enum { CHILD_OK = 0, CHILD_BAD_PATTERN = 3, CHILD_NO_MEMORY = 4, CHILD_THREAD = 5 };

typedef struct {
    uint64_t tag;
    uint64_t size;
} block_hdr;

static _Atomic(unsigned char *) shared_slots[SHARED_SLOTS];
static atomic_int stop_workers;
static unsigned char *anchor; /* allocated by main before any fork */

static uint64_t random_size(uint64_t *rng) {
    uint64_t r = splitmix64(rng);
    unsigned bucket = (unsigned)(r % 100);
    r >>= 8;
    if (bucket < 90)
        return sizeof(block_hdr) + r % 241;  /* 16 .. 256 */
    if (bucket < 99)
        return 257 + r % 8000;               /* medium */
    return 65536 + r % (256 * 1024);         /* large */
}

static void fill(unsigned char *p, uint64_t tag, uint64_t size) {
    block_hdr h = {tag, size};
    memcpy(p, &h, sizeof h);
    for (uint64_t i = sizeof h; i < size; i++)
        p[i] = (unsigned char)(tag + i);
}

/* Returns 1 when the first `len` bytes (at most the block) are intact. */
static int intact(const unsigned char *p, uint64_t len) {
    block_hdr h;
    memcpy(&h, p, sizeof h);
    if (h.size < sizeof h || h.size > (16u << 20))
        return 0;
    if (len > h.size)
        len = h.size;
    for (uint64_t i = sizeof h; i < len; i++)
        if (p[i] != (unsigned char)(h.tag + i))
            return 0;
    return 1;
}

/* ---- worker threads (parent) ---- */

static void worker_fail(const char *what) {
    fprintf(stderr, "fork_alloc: FAIL in worker: %s\n", what);
    _exit(2);
}

/* One random allocator operation on a set of private slots. */
static void step(unsigned char **local, uint64_t *rng, uint64_t *tag) {
    uint64_t r = splitmix64(rng);
    unsigned slot = (unsigned)(r % LOCAL_SLOTS);
    unsigned char *p = local[slot];
    if (!p) {
        uint64_t size = random_size(rng);
        p = (r >> 8) % 4 == 0 ? calloc(1, size) : malloc(size);
        if (!p)
            worker_fail("allocation returned NULL");
        fill(p, ++*tag, size);
        local[slot] = p;
        return;
    }
    if (!intact(p, UINT64_MAX))
        worker_fail("pattern mismatch");
    switch ((r >> 8) % 4) {
    case 0: {
        uint64_t size = random_size(rng), old;
        memcpy(&old, p + sizeof(uint64_t), sizeof old);
        unsigned char *q = realloc(p, size);
        if (!q)
            worker_fail("realloc returned NULL");
        if (!intact(q, size < old ? size : old))
            worker_fail("realloc lost data");
        fill(q, ++*tag, size);
        local[slot] = q;
        break;
    }
    case 1: {
        unsigned char *old =
            atomic_exchange(&shared_slots[(r >> 16) % SHARED_SLOTS], p);
        local[slot] = NULL;
        if (old) {
            if (!intact(old, UINT64_MAX))
                worker_fail("pattern mismatch in shared block");
            free(old);
        }
        break;
    }
    default:
        free(p);
        local[slot] = NULL;
    }
}

static void free_all(unsigned char **local, unsigned n) {
    for (unsigned s = 0; s < n; s++) {
        if (local[s] && !intact(local[s], UINT64_MAX))
            worker_fail("pattern mismatch at exit");
        free(local[s]);
        local[s] = NULL;
    }
}

static void *worker(void *arg) {
    uint64_t rng = (uint64_t)(uintptr_t)arg, tag = rng << 40;
    unsigned char *local[LOCAL_SLOTS] = {0};
    while (!atomic_load_explicit(&stop_workers, memory_order_relaxed))
        step(local, &rng, &tag);
    free_all(local, LOCAL_SLOTS);
    return NULL;
}

/* ---- children ---- */

static void child_say(const char *msg) {
    ssize_t ignored = write(2, msg, strlen(msg));
    (void)ignored;
}

static int child_churn(uint64_t seed) {
    unsigned char *local[LOCAL_SLOTS] = {0};
    uint64_t rng = seed, tag = seed << 32;
    for (unsigned i = 0; i < CHILD_OPS; i++) {
        uint64_t r = splitmix64(&rng);
        unsigned slot = (unsigned)(r % LOCAL_SLOTS);
        unsigned char *p = local[slot];
        if (p && !intact(p, UINT64_MAX))
            return CHILD_BAD_PATTERN;
        if (p && (r >> 8) % 3 == 0) {
            uint64_t size = random_size(&rng), old;
            memcpy(&old, p + sizeof(uint64_t), sizeof old);
            unsigned char *q = realloc(p, size);
            if (!q)
                return CHILD_NO_MEMORY;
            if (!intact(q, size < old ? size : old))
                return CHILD_BAD_PATTERN;
            fill(q, ++tag, size);
            local[slot] = q;
        } else if (p) {
            free(p);
            local[slot] = NULL;
        } else {
            uint64_t size = random_size(&rng);
            p = (r >> 8) % 2 ? calloc(1, size) : malloc(size);
            if (!p)
                return CHILD_NO_MEMORY;
            fill(p, ++tag, size);
            local[slot] = p;
        }
    }
    for (unsigned s = 0; s < LOCAL_SLOTS; s++) {
        if (local[s] && !intact(local[s], UINT64_MAX))
            return CHILD_BAD_PATTERN;
        free(local[s]);
    }
    return CHILD_OK;
}

static void *child_thread(void *arg) {
    return (void *)(intptr_t)child_churn((uint64_t)(uintptr_t)arg);
}

static int child_main(unsigned index) {
    /* The pre-fork block must be intact; grow it (moving it) and free it. */
    if (!intact(anchor, UINT64_MAX))
        return CHILD_BAD_PATTERN;
    unsigned char *a = realloc(anchor, 1 << 20);
    if (!a)
        return CHILD_NO_MEMORY;
    if (!intact(a, UINT64_MAX))
        return CHILD_BAD_PATTERN;
    free(a);

    /* Blocks published by the parent's threads: allocated by threads that
     * do not exist in the child. */
    for (unsigned s = index % 4; s < SHARED_SLOTS; s += 4) {
        unsigned char *p = atomic_exchange(&shared_slots[s], NULL);
        if (p && !intact(p, UINT64_MAX))
            return CHILD_BAD_PATTERN;
        free(p);
    }

    int rc = child_churn(index + 1);
    if (rc != CHILD_OK)
        return rc;

    if (index % 4 == 0) {
        pthread_t th;
        void *res;
        if (pthread_create(&th, NULL, child_thread, (void *)(uintptr_t)(index + 7)))
            return CHILD_THREAD;
        if (pthread_join(th, &res))
            return CHILD_THREAD;
        rc = (int)(intptr_t)res;
    }
    return rc;
}

/* ---- forking and waiting ---- */

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

typedef struct {
    atomic_int ok, failed, timeouts;
} tally;

/* Waits for `pid` without ever blocking past the deadline; a child that
 * does not finish in time (a deadlock after fork) is killed. */
static void await_child(pid_t pid, unsigned index, tally *t) {
    double deadline = now() + CHILD_TIMEOUT_SECONDS;
    long nap_ns = 20000;
    int status = 0;
    for (;;) {
        pid_t got = waitpid(pid, &status, WNOHANG);
        if (got == pid)
            break;
        if (got < 0 && errno != EINTR) {
            perror("fork_alloc: waitpid");
            atomic_fetch_add(&t->failed, 1);
            return;
        }
        if (now() > deadline) {
            fprintf(stderr, "fork_alloc: child %u (pid %d) hung; killing it\n",
                    index, (int)pid);
            kill(pid, SIGKILL);
            while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
            atomic_fetch_add(&t->timeouts, 1);
            return;
        }
        struct timespec nap = {0, nap_ns};
        nanosleep(&nap, NULL);
        if (nap_ns < 2000000)
            nap_ns *= 2;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        atomic_fetch_add(&t->ok, 1);
        return;
    }
    if (WIFSIGNALED(status))
        fprintf(stderr, "fork_alloc: child %u killed by signal %d\n", index,
                WTERMSIG(status));
    else
        fprintf(stderr, "fork_alloc: child %u exited with %d\n", index,
                WEXITSTATUS(status));
    atomic_fetch_add(&t->failed, 1);
}

static void fork_many(unsigned first, unsigned count, tally *t) {
    for (unsigned i = first; i < first + count; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            int rc = child_main(i);
            if (rc != CHILD_OK)
                child_say("fork_alloc: child failed its allocator checks\n");
            _exit(rc);
        }
        if (pid < 0) {
            perror("fork_alloc: fork");
            atomic_fetch_add(&t->failed, 1);
            continue;
        }
        await_child(pid, i, t);
    }
}

typedef struct {
    unsigned first, count;
    tally *t;
} fork_job;

static void *forking_worker(void *arg) {
    fork_job *job = arg;
    fork_many(job->first, job->count, job->t);
    return NULL;
}

int main(int argc, char **argv) {
    unsigned forks = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : 200;
    unsigned thread_forks = forks / 10;
    tally t = {0};

    anchor = malloc(4096);
    if (!anchor) {
        fprintf(stderr, "fork_alloc: malloc failed\n");
        return 2;
    }
    fill(anchor, 0xA5, 4096);

    pthread_t th[WORKERS + 1];
    for (uintptr_t w = 0; w < WORKERS; w++)
        if (pthread_create(&th[w], NULL, worker, (void *)(w + 1))) {
            fprintf(stderr, "fork_alloc: pthread_create failed\n");
            return 2;
        }
    fork_job job = {forks, thread_forks, &t};
    if (pthread_create(&th[WORKERS], NULL, forking_worker, &job)) {
        fprintf(stderr, "fork_alloc: pthread_create failed\n");
        return 2;
    }

    fork_many(0, forks, &t);

    pthread_join(th[WORKERS], NULL);
    atomic_store(&stop_workers, 1);
    for (unsigned w = 0; w < WORKERS; w++)
        pthread_join(th[w], NULL);

    for (unsigned s = 0; s < SHARED_SLOTS; s++) {
        unsigned char *p = atomic_exchange(&shared_slots[s], NULL);
        if (p && !intact(p, UINT64_MAX)) {
            fprintf(stderr, "fork_alloc: FAIL pattern mismatch in shared block\n");
            return 2;
        }
        free(p);
    }
    if (!intact(anchor, UINT64_MAX)) {
        fprintf(stderr, "fork_alloc: FAIL anchor block corrupted\n");
        return 2;
    }
    free(anchor);

    int ok = atomic_load(&t.ok), failed = atomic_load(&t.failed),
        timeouts = atomic_load(&t.timeouts);
    printf("fork_alloc: forks=%u (main thread %u, worker thread %u) ok=%d "
           "failed=%d hung=%d\n",
           forks + thread_forks, forks, thread_forks, ok, failed, timeouts);
    return ok == (int)(forks + thread_forks) ? 0 : 1;
}
