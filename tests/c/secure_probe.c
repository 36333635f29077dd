/* The program of tests/test_security.py: one mode per case, run under
 * LD_PRELOAD of the library (also set-user-ID root, by an unprivileged
 * user). Prints "key=value" lines on stdout; exits 0 unless a mode says
 * otherwise.
 *
 *   probe        secure=<AT_SECURE> euid=<uid> goalloc=<1 if the library is
 *                loaded> live=<1 if /dev/shm/goalloc-<pid> exists>
 *   doublefree   probe, then frees a block twice (the library aborts)
 *   addr         addr=<address of malloc(100)>
 *   spawn ARGS   forks; prints "pid=<child>"; the child waits for a byte on
 *                stdin and then execs this program with ARGS; exits with
 *                the child's status
 *   live         prints "ready" with /dev/shm/goalloc-<pid> in place, then
 *                allocates until a line arrives on stdin
 *   cancel       cancels a thread that only mallocs and frees (live=1 makes
 *                those publish): survived=<1 if the cancel waited for the
 *                thread's own cancellation point> seq_even=<1 if the live
 *                file's seqlock is not left odd>
 *   stats_cancel a thread with a cancel pending calls malloc_stats():
 *                survived=<1 if it returned>
 *   json_cancel  a thread blocked writing ga_stats_write_json into a full
 *                pipe is cancelled; then ga_stats_json in the main thread:
 *                stats_after=<1 if it returned> */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char live_path[64];

static int live_exists(void)
{
    snprintf(live_path, sizeof live_path, "/dev/shm/goalloc-%d", (int)getpid());
    return access(live_path, F_OK) == 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void churn(int n)
{
    for (int i = 0; i < n; i++) {
        char *p = malloc(300000 + (size_t)i);
        p[0] = 1;
        free(p);
    }
}

/* Small blocks of many classes: mcache slow paths, which take the
 * scavenger's and the live file's tick. */
static void churn_small(int n)
{
    static void *ptrs[1024];
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < 1024; j++)
            ptrs[j] = malloc(16 + (size_t)(j * 37 + i) % 3000);
        for (int j = 0; j < 1024; j++)
            free(ptrs[j]);
    }
}

static int probe(void)
{
    churn(100);
    printf("secure=%lu euid=%d goalloc=%d live=%d\n", getauxval(AT_SECURE), (int)geteuid(),
           dlsym(RTLD_DEFAULT, "ga_stats_version") != NULL, live_exists());
    fflush(stdout);
    return 0;
}

static volatile int survived;
static volatile double until;

static void *cancel_worker(void *arg)
{
    (void)arg;
    while (now_s() < until) /* no cancellation point but what malloc might have */
        churn_small(1);
    survived = 1;
    pthread_testcancel();
    return NULL;
}

/* The seq field of the live file (its offset from the layout of goalloc.h:
 * four uint32_t, then seq). */
static int live_seq_even(void)
{
    if (!live_exists())
        return -1;
    int fd = open(live_path, O_RDONLY);
    uint64_t seq = 1;
    if (fd < 0 || pread(fd, &seq, sizeof seq, 16) != (ssize_t)sizeof seq)
        return -1;
    close(fd);
    return (seq & 1) == 0;
}

static int cancel_mode(void)
{
    pthread_t t;
    until = now_s() + 0.5;
    pthread_create(&t, NULL, cancel_worker, NULL);
    usleep(100000);
    pthread_cancel(t);
    pthread_join(t, NULL);
    churn(10);
    printf("survived=%d seq_even=%d\n", survived, live_seq_even());
    return 0;
}

static void *stats_worker(void *arg)
{
    (void)arg;
    pthread_cancel(pthread_self());
    malloc_stats();
    survived = 1;
    pthread_testcancel();
    return NULL;
}

static int stats_cancel_mode(void)
{
    pthread_t t;
    pthread_create(&t, NULL, stats_worker, NULL);
    pthread_join(t, NULL);
    printf("survived=%d\n", survived);
    return 0;
}

static int pipe_fds[2];

static void *json_worker(void *arg)
{
    int (*write_json)(int) = (int (*)(int))arg;
    write_json(pipe_fds[1]);
    survived = 1;
    pthread_testcancel();
    return NULL;
}

static int json_cancel_mode(void)
{
    int (*write_json)(int) = (int (*)(int))dlsym(RTLD_DEFAULT, "ga_stats_write_json");
    size_t (*json)(char *, size_t) = (size_t(*)(char *, size_t))dlsym(RTLD_DEFAULT, "ga_stats_json");
    if (write_json == NULL || json == NULL) {
        printf("no goalloc\n");
        return 1;
    }
    pthread_t t;
    if (pipe(pipe_fds) != 0)
        return 1;
    fcntl(pipe_fds[1], F_SETPIPE_SZ, 4096); /* the document is larger */
    pthread_create(&t, NULL, json_worker, (void *)write_json);
    usleep(100000); /* now blocked in write */
    pthread_cancel(t);
    usleep(50000);
    fcntl(pipe_fds[0], F_SETFL, O_NONBLOCK);
    char buf[4096];
    for (double end = now_s() + 10; now_s() < end && pthread_tryjoin_np(t, NULL) != 0;)
        if (read(pipe_fds[0], buf, sizeof buf) <= 0)
            usleep(1000);
    alarm(10); /* a deadlock shows as SIGALRM */
    json(NULL, 0);
    printf("survived=%d stats_after=1\n", survived);
    return 0;
}

static int live_mode(void)
{
    churn(10);
    printf("ready live=%d\n", live_exists());
    fflush(stdout);
    char line[16];
    if (fgets(line, sizeof line, stdin) == NULL)
        return 1;
    churn(10);
    return 0;
}

static int spawn_mode(char **argv)
{
    pid_t pid = fork();
    if (pid == 0) {
        char c;
        if (read(0, &c, 1) != 1)
            _exit(126);
        execv("/proc/self/exe", argv);
        _exit(127);
    }
    printf("pid=%d\n", (int)pid);
    fflush(stdout);
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "probe";
    if (strcmp(mode, "probe") == 0)
        return probe();
    if (strcmp(mode, "doublefree") == 0) {
        probe();
        char *volatile p = malloc(64);
        free(p);
        free(p);
        printf("after=1\n");
        return 0;
    }
    if (strcmp(mode, "addr") == 0) {
        printf("addr=%p\n", malloc(100));
        return 0;
    }
    if (strcmp(mode, "spawn") == 0 && argc > 2) {
        argv[1] = argv[0];
        return spawn_mode(argv + 1);
    }
    if (strcmp(mode, "live") == 0)
        return live_mode();
    if (strcmp(mode, "cancel") == 0)
        return cancel_mode();
    if (strcmp(mode, "stats_cancel") == 0)
        return stats_cancel_mode();
    if (strcmp(mode, "json_cancel") == 0)
        return json_cancel_mode();
    fprintf(stderr, "unknown mode %s\n", mode);
    return 2;
}
