/* threadlife: the cost of a thread's life in the allocator, warm heap.
 *
 * Usage: threadlife THREADS
 *
 * Starts THREADS threads one after the other; each allocates one block of
 * each of 8 sizes from 16 B to 1 KiB, writes them, frees them and exits,
 * and the next starts only after it was joined. What is measured is the
 * allocator's side of a thread's start and exit (its cache's set-up, the
 * first refill of each class, the hand-back at exit) on top of the
 * pthread_create/join that every allocator pays alike: programs that start
 * a thread per task or per connection.
 */
#include <pthread.h>

#include "common.h"

static const size_t sizes[8] = {16, 32, 48, 64, 128, 256, 512, 1024};

static void *worker(void *arg)
{
    uint64_t *sum = arg;
    void *p[8];
    for (unsigned i = 0; i < 8; i++) {
        p[i] = xmalloc(sizes[i]);
        tag_block(p[i], sizes[i], i);
    }
    for (unsigned i = 0; i < 8; i++) {
        *sum += ((unsigned char *)p[i])[0];
        free(p[i]);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    unsigned long n = arg_or(argc, argv, 1, 20000);
    uint64_t sum = 0;
    for (unsigned long i = 0; i < n; i++) {
        pthread_t t;
        if (pthread_create(&t, NULL, worker, &sum) != 0)
            die("pthread_create failed", i);
        pthread_join(t, NULL);
    }
    printf("threadlife threads=%lu sum=%llu ok\n", n, (unsigned long long)sum);
    return 0;
}
