/* Two ways a fork can hang in a malloc, as other projects' malloc test
 * suites provoke them (tests/test_fork.py runs this under LD_PRELOAD):
 *
 *   fork_hazards signal N   one thread allocates blocks of 8 KiB..1 MiB
 *                           (page-heap allocations, which take its lock)
 *                           while SIGALRM fires every 200 us; the handler
 *                           forks and the child _exits. Ends after N forks.
 *   fork_hazards stdio N    three threads: one forks N times (the child
 *                           _exits), one calls fflush(NULL) in a loop (it
 *                           holds stdio's list lock and waits for each
 *                           FILE's), one reads lines with getline from a
 *                           memory stream (it holds the FILE's lock and
 *                           allocates).
 *
 * Prints "forks=N" and exits 0 when done; a hang is the failure. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testlib.h"

static atomic_int forks, stop;
static int target;

static void fork_once(void)
{
    pid_t pid = fork();
    if (pid == 0)
        _exit(0);
    if (pid > 0) {
        int st;
        while (waitpid(pid, &st, 0) < 0)
            ;
        atomic_fetch_add(&forks, 1);
    }
}

static void on_alarm(int sig)
{
    (void)sig;
    int saved = errno;
    if (atomic_load(&forks) < target)
        fork_once();
    errno = saved;
}

static int signal_mode(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval it = {{0, 200}, {0, 200}};
    setitimer(ITIMER_REAL, &it, NULL);
    uint64_t seed = 1;
    void *keep[16] = {0};
    while (atomic_load(&forks) < target) {
        unsigned i = (unsigned)(splitmix64(&seed) % 16);
        free(keep[i]);
        keep[i] = malloc(8192 + (size_t)(splitmix64(&seed) % (1 << 20)));
        if (keep[i] != NULL)
            ((char *)keep[i])[0] = 1;
    }
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    for (unsigned i = 0; i < 16; i++)
        free(keep[i]);
    return 0;
}

static void *flusher(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop))
        fflush(NULL);
    return NULL;
}

static void *reader(void *arg)
{
    FILE *f = arg;
    while (!atomic_load(&stop)) {
        char *line = NULL; /* a new buffer each time: getline allocates under the FILE's lock */
        size_t cap = 0;
        if (getline(&line, &cap, f) < 0)
            rewind(f);
        free(line);
    }
    return NULL;
}

static int stdio_mode(void)
{
    /* Lines of 1..40000 bytes: small classes, and page-heap blocks. */
    static char text[1 << 20];
    size_t n = 0;
    uint64_t seed = 7;
    while (n + 40002 < sizeof text) {
        size_t len = 1 + (size_t)(splitmix64(&seed) % 40000);
        memset(text + n, 'x', len);
        n += len;
        text[n++] = '\n';
    }
    FILE *f = fmemopen(text, n, "r");
    if (f == NULL)
        return 1;
    pthread_t a, b;
    pthread_create(&a, NULL, flusher, NULL);
    pthread_create(&b, NULL, reader, f);
    while (atomic_load(&forks) < target)
        fork_once();
    atomic_store(&stop, 1);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    fclose(f);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: fork_hazards signal|stdio N\n");
        return 2;
    }
    target = atoi(argv[2]);
    int rc = strcmp(argv[1], "signal") == 0 ? signal_mode() : stdio_mode();
    printf("forks=%d\n", atomic_load(&forks));
    return rc;
}
