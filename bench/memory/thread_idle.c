/* Many threads that go quiet (issue 19's second program): THREADS threads
 * each allocate about KIB KiB in objects of 16..512 B (written), free 90 %
 * of them in random order and wait; once all have, the main thread sleeps
 * IDLE ms and reads RSS (every thread alive and idle); then the threads
 * exit, the main thread frees what they left, sleeps IDLE ms again and
 * reads RSS; then malloc_trim(0). key=value lines as burst_idle.c.
 * Usage: thread_idle [THREADS [KIB [IDLE_MS]]] */
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rss.h"

static size_t per_thread;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int done, go_exit;

typedef struct {
    uint64_t rng;
    void **left;
    size_t nleft;
} job_t;

static uint64_t next(uint64_t *r) { return xorshift64(r); }

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void *worker(void *arg)
{
    job_t *j = arg;
    size_t cap = per_thread / 16 + 16, n = 0, bytes = 0;
    void **objs = malloc(cap * sizeof *objs);
    while (bytes < per_thread && n < cap) {
        size_t size = 16 + next(&j->rng) % 497;
        objs[n] = malloc(size);
        memset(objs[n++], 0x3c, size);
        bytes += size;
    }
    for (size_t i = n; i > 1; i--) {
        size_t k = next(&j->rng) % i;
        void *t = objs[i - 1];
        objs[i - 1] = objs[k];
        objs[k] = t;
    }
    for (size_t i = 0; i < n / 10 * 9; i++)
        free(objs[i]);
    j->left = objs + n / 10 * 9;
    j->nleft = n - n / 10 * 9;
    memmove(objs, j->left, j->nleft * sizeof *objs); /* objs stays the block to free */
    j->left = objs;
    pthread_mutex_lock(&mu);
    done++;
    pthread_cond_broadcast(&cv);
    while (!go_exit)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    return NULL;
}

int main(int argc, char **argv)
{
    int nthreads = argc > 1 ? atoi(argv[1]) : 1000;
    per_thread = (size_t)(argc > 2 ? atol(argv[2]) : 2048) << 10;
    long idle = argc > 3 ? atol(argv[3]) : 2000;
    pthread_t *t = calloc((size_t)nthreads, sizeof *t);
    job_t *jobs = calloc((size_t)nthreads, sizeof *jobs);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 128 << 10);
    for (int i = 0; i < nthreads; i++) {
        jobs[i].rng = 0x9e3779b97f4a7c15ull * (uint64_t)(i + 1);
        if (pthread_create(&t[i], &attr, worker, &jobs[i]) != 0)
            return 2;
    }
    pthread_mutex_lock(&mu);
    while (done < nthreads)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    sleep_ms(idle);
    report("idle");
    pthread_mutex_lock(&mu);
    go_exit = 1;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    for (int i = 0; i < nthreads; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < nthreads; i++) {
        for (size_t k = 0; k < jobs[i].nleft; k++)
            free(jobs[i].left[k]);
        free(jobs[i].left);
    }
    report("freed");
    sleep_ms(idle);
    report("freed_idle");
    malloc_trim(0);
    report("after_trim");
    return 0;
}
