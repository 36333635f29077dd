/* The scavenger thread under LD_PRELOAD (tests/test_preload_memory.py).
 * Prints "threads=N" (from /proc/self/status) at the points below.
 *   small: allocates and frees a few MiB, sleeps: no thread is started.
 *   burst: frees 96 MiB of large blocks, sleeps PAUSE ms (the thread
 *          releases them and, idle, ends), prints RSS and threads; then
 *          forks: the child makes and frees another burst and prints its
 *          RSS after the pause (its own thread, started anew). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long status(const char *key)
{
    char line[256];
    long v = -1;
    FILE *f = fopen("/proc/self/status", "r");
    while (f != NULL && fgets(line, sizeof line, f) != NULL)
        if (strncmp(line, key, strlen(key)) == 0)
            v = atol(line + strlen(key));
    if (f != NULL)
        fclose(f);
    return v;
}

static void ms(long m)
{
    struct timespec ts = {m / 1000, (m % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void burst(size_t n, size_t size)
{
    void **p = malloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++)
        memset(p[i] = malloc(size), 7, size);
    for (size_t i = 0; i < n; i++)
        free(p[i]);
    free(p);
}

int main(int argc, char **argv)
{
    long pause = argc > 2 ? atol(argv[2]) : 1500;
    if (argc > 1 && strcmp(argv[1], "small") == 0) {
        for (int k = 0; k < 20; k++)
            burst(1000, 1000 + k * 100); /* about 1 MiB at a time */
        burst(16, 256 << 10);             /* 4 MiB of large blocks */
        ms(pause);
        printf("small threads=%ld\n", status("Threads:"));
        return 0;
    }
    burst(96, 1 << 20);
    long during = status("Threads:");
    ms(pause);
    printf("parent rss_kib=%ld threads_after_free=%ld threads=%ld\n", status("VmRSS:"), during,
           status("Threads:"));
    fflush(stdout);
    pid_t c = fork();
    if (c == 0) {
        burst(96, 1 << 20);
        ms(pause);
        printf("child rss_kib=%ld threads=%ld\n", status("VmRSS:"), status("Threads:"));
        fflush(stdout);
        _exit(0);
    }
    int st;
    waitpid(c, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 3;
}
