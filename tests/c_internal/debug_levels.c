/* The debug levels at work (tests/test_debug_levels.py). Like every
 * program of tests/c_internal it is linked with the allocator's own
 * sources, here built at one GA_DEBUG level, and not preloaded. Each case
 * breaks one rule on purpose; the level that checks the rule ends the
 * process with one line naming it, the others let the case run to its end.
 *
 *   debug_levels CASE   (CASE: unheld, foreign_unlock, bad_list, corrupt_fold)
 * prints "survived CASE" when nothing stopped it. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "inline.h"

static void *unlock_heap(void *arg)
{
    (void)arg;
    ga_mheap_unlock(); /* the main thread holds it */
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 2)
        return 2;
    const char *c = argv[1];
    ga_ensure_init();
    if (strcmp(c, "unheld") == 0) {
        /* level 3: a _locked function called without its lock */
        (void)ga_mheap_retained_locked();
    } else if (strcmp(c, "foreign_unlock") == 0) {
        /* level 3: a lock let go by a thread that does not hold it */
        ga_mheap_lock();
        pthread_t t;
        pthread_create(&t, NULL, unlock_heap, NULL);
        pthread_join(t, NULL);
    } else if (strcmp(c, "bad_list") == 0) {
        /* level 2: removing a span from a list that does not hold it */
        ga_span_list_t a = {0}, b = {0};
        ga_span_t x = {0}, y = {0};
        ga_span_list_push(&a, &x, false);
        ga_span_list_push(&b, &y, false);
        ga_span_list_remove(&b, &x);
    } else if (strcmp(c, "corrupt_fold") == 0) {
        /* level 3: a fold that leaves alloc_count wrong (as a lost count
         * would) is stopped at the fold, before anything reuses the span */
        void *p[8];
        for (int i = 0; i < 8; i++)
            p[i] = ga_malloc(32);
        ga_span_t *s = ga_span_of((uintptr_t)p[0]);
        s->alloc_count += 1;
        ga_free(p[1]);
        ga_span_fold(s);
    } else {
        return 2;
    }
    printf("survived %s\n", c);
    return 0;
}
