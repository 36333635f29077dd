/* ga-launch: run one benchmark command and measure it from a small parent.
 *
 * Usage: ga-launch [-o RESULT] [-p PIDFILE] [-t SECONDS] [-e NAME=VALUE]...
 *                  -- PROG ARGS...
 *
 * Forks, applies the -e assignments in the child only (LD_PRELOAD goes there,
 * so this process itself always runs on the system malloc), execs PROG and
 * waits for it with wait4. ru_maxrss of a child starts at its parent's size,
 * so measuring from this tiny process, not from the Python runner, is what
 * makes peak RSS mean the program's own. The child dies with this process
 * (PR_SET_PDEATHSIG) and is killed with SIGKILL after -t SECONDS.
 *
 * Writes one line to RESULT (default: stderr):
 *   pid=N status=RAW exit=N signal=N timeout=0|1 wall=S user=S sys=S
 *   maxrss_kib=N minflt=N majflt=N nvcsw=N nivcsw=N
 * Exits 0 when it measured the child (whatever the child did), 125 on its
 * own errors. -p writes the child's pid to PIDFILE once it is running.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t timed_out;
static volatile pid_t child;

static void on_alarm(int sig)
{
    (void)sig;
    timed_out = 1;
    if (child > 0)
        kill(child, SIGKILL);
}

static void on_term(int sig)
{
    /* Pass SIGINT/SIGTERM on to the child and keep waiting for it. */
    if (child > 0)
        kill(child, sig);
}

static double tv_seconds(struct timeval tv)
{
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

static int usage(void)
{
    fprintf(stderr, "usage: ga-launch [-o RESULT] [-p PIDFILE] [-t SECONDS] "
                    "[-e NAME=VALUE]... -- PROG ARGS...\n");
    return 125;
}

int main(int argc, char **argv)
{
    const char *result = NULL, *pidfile = NULL;
    unsigned timeout = 0;
    char **assign = calloc((size_t)argc, sizeof *assign);
    int nassign = 0, opt;
    if (assign == NULL)
        return 125;
    while ((opt = getopt(argc, argv, "+o:p:t:e:")) != -1) {
        switch (opt) {
        case 'o': result = optarg; break;
        case 'p': pidfile = optarg; break;
        case 't': timeout = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'e':
            if (strchr(optarg, '=') == NULL)
                return usage();
            assign[nassign++] = optarg;
            break;
        default: return usage();
        }
    }
    if (optind >= argc)
        return usage();

    struct sigaction sa = {0};
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, NULL);
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid_t pid = fork();
    if (pid < 0) {
        perror("ga-launch: fork");
        return 125;
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        for (int i = 0; i < nassign; i++) {
            char *eq = strchr(assign[i], '=');
            *eq = '\0';
            setenv(assign[i], eq + 1, 1);
        }
        execvp(argv[optind], &argv[optind]);
        fprintf(stderr, "ga-launch: %s: %s\n", argv[optind], strerror(errno));
        _exit(127);
    }
    child = pid;
    if (pidfile != NULL) {
        FILE *f = fopen(pidfile, "w");
        if (f == NULL || fprintf(f, "%d\n", (int)pid) < 0 || fclose(f) != 0) {
            perror("ga-launch: pid file");
            kill(pid, SIGKILL);
        }
    }
    if (timeout > 0)
        alarm(timeout);

    int status = 0;
    struct rusage ru;
    while (wait4(pid, &status, 0, &ru) < 0) {
        if (errno != EINTR) {
            perror("ga-launch: wait4");
            return 125;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    alarm(0);

    FILE *out = result ? fopen(result, "w") : stderr;
    if (out == NULL) {
        perror("ga-launch: result file");
        return 125;
    }
    double wall = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    fprintf(out,
            "pid=%d status=%d exit=%d signal=%d timeout=%d wall=%.6f user=%.6f sys=%.6f "
            "maxrss_kib=%ld minflt=%ld majflt=%ld nvcsw=%ld nivcsw=%ld\n",
            (int)pid, status, WIFEXITED(status) ? WEXITSTATUS(status) : -1,
            WIFSIGNALED(status) ? WTERMSIG(status) : 0, (int)timed_out, wall,
            tv_seconds(ru.ru_utime), tv_seconds(ru.ru_stime), ru.ru_maxrss, ru.ru_minflt,
            ru.ru_majflt, ru.ru_nvcsw, ru.ru_nivcsw);
    if (result && fclose(out) != 0) {
        perror("ga-launch: result file");
        return 125;
    }
    return 0;
}
