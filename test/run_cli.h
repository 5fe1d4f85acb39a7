/* test/run_cli.h: what the tests of the tapegrad command share (test_cli, mpi_cli): a
 * shell command run with its output captured, a scratch directory, file comparison and
 * time. Header-only, like check.h; include it after check.h. */
#ifndef TAPEGRAD_TEST_RUN_CLI_H
#define TAPEGRAD_TEST_RUN_CLI_H

#include <stdbool.h>
#include <stdio.h>
#include <sys/wait.h>
#include <time.h>

static char out[1 << 16]; /* the output of the last command, stdout and stderr */
static char dir[64];      /* the test's scratch directory */

/* Runs the shell command with its output (stdout and stderr) in out; returns its exit
 * status (-1: a signal, -100: it could not start). */
static int sh(const char *cmd)
{
    char full[4200];
    snprintf(full, sizeof full, "%s 2>&1", cmd);
    FILE *p = popen(full, "r");
    if (!p) return -100;
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void sleep_us(long us)
{
    struct timespec ts = {us / 1000000, us % 1000000 * 1000};
    nanosleep(&ts, NULL);
}

/* buf = dir/name. */
static void path(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/%s", dir, name);
}

/* The bytes of file p equal those of q (both readable). */
static bool same_file(const char *p, const char *q)
{
    FILE *a = fopen(p, "rb"), *b = fopen(q, "rb");
    bool same = a && b;
    for (int ca = 0, cb = 0; same && ca != EOF;) {
        ca = fgetc(a), cb = fgetc(b);
        same = ca == cb;
    }
    if (a) fclose(a);
    if (b) fclose(b);
    return same;
}

#endif
