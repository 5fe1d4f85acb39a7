/* bench/adolc_chain.cpp: the ADOL-C side of `make bench`. The 1-element chain of bench.c's
 * tape-overhead figures (mul 0.5, add 0.1, tanh, add x, repeating; K ops) written with
 * ADOL-C's adoubles, run as a child of bench.c that answers one request per line on
 * stdin, so that its repetitions alternate with tapegrad's and both see the same load:
 *
 *   (at start)   "key value" lines describing the tape, then "ready"
 *   check X0 X1  record at X0 and reverse; replay at X1 and reverse:
 *                "f(X0) f'(X0) f(X1) f'(X1)"
 *   rep INNER    one repetition, INNER times each: record at X0 (trace_on, the chain in
 *                adoubles, trace_off, with the Taylor values kept for a reverse), then
 *                fos_reverse; then INNER times zos_forward at new inputs (keep = 1), then
 *                fos_reverse. Prints the median over the INNER chains of the ns per chain
 *                op of each: "record reverse record_reverse replay replay_reverse" (the
 *                median, as bench.c takes for tapegrad, so that a chain the scheduler
 *                interrupted on a shared machine does not count)
 *
 * Usage: adolc_chain [--k K] [--x0 X]. The tape's buffers are sized so that the tape
 * stays in memory (the "*_file" keys say whether a file was written anyway); any file
 * ADOL-C writes goes to the directory the helper is started in (bench.c starts it in its
 * own build directory). Built by the Makefile with plain -ladolc. */
#include <adolc/adolc.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <vector>

#ifndef ADOLC_PKG_VERSION
#define ADOLC_PKG_VERSION "unknown" /* the Makefile passes Debian's package version */
#endif

static const short TAG = 1;
static long K = 1000;
static uint BUF; /* elements per buffer, for each of ADOL-C's four buffers */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The chain as a user writes it with adoubles: each op makes a new value, as each
 * tapegrad op makes a new node. kinds < 0: the whole chain of K ops; else only the ops of
 * kind `kinds` (0-3) once, for counting ADOL-C's primitive ops per kind (kinds = 4: none). */
static double record(short tag, double x0, int kinds)
{
    double f = 0;
    trace_on(tag, 1, BUF, BUF, BUF, BUF);
    {
        adouble x, y;
        x <<= x0;
        y = x;
        long n = kinds < 0 ? K : (kinds < 4 ? 1 : 0);
        for (long i = 0; i < n; i++) {
            switch (kinds < 0 ? (int)(i & 3) : kinds) {
            case 0: y = y * 0.5; break;
            case 1: y = y + 0.1; break;
            case 2: y = tanh(y); break;
            default: y = y + x; break;
            }
        }
        y >>= f;
    }
    trace_off();
    return f;
}

static double reverse(short tag)
{
    double u = 1, z = 0;
    if (fos_reverse(tag, 1, 1, &u, &z) < 0) {
        fprintf(stderr, "adolc_chain: fos_reverse failed\n");
        exit(1);
    }
    return z;
}

static double replay(short tag, double x)
{
    double y = 0;
    if (zos_forward(tag, 1, 1, 1, &x, &y) < 0) { /* < 0: the tape needs retaping */
        fprintf(stderr, "adolc_chain: zos_forward failed (retaping needed)\n");
        exit(1);
    }
    return y;
}

static size_t n_ops(short tag)
{
    size_t st[STAT_SIZE];
    tapestats(tag, st);
    return st[NUM_OPERATIONS];
}

static volatile double sink;

static double median(std::vector<double> &v)
{
    std::sort(v.begin(), v.end());
    size_t n = v.size();
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int main(int argc, char **argv)
{
    double x0 = 0.25;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--k") == 0 && i + 1 < argc) K = atol(argv[++i]);
        else if (strcmp(argv[i], "--x0") == 0 && i + 1 < argc) x0 = atof(argv[++i]);
        else {
            fprintf(stderr, "usage: adolc_chain [--k K] [--x0 X]\n");
            return 2;
        }
    }
    if (K < 4) K = 4;
    /* ADOL-C's default buffers (usrparms.h) hold 524288 elements each; a chain records
     * under 8 operations, 24 locations and 8 values or Taylors per op */
    BUF = (uint)(K * 32 > 524288 ? K * 32 : 524288);

    /* primitive ops per kind of chain op: a tape with one op of that kind, less the tape
     * with none (which has the independent, the copy y = x, the dependent and the tape's
     * start and end markers) */
    const char *kind_name[4] = {"mul", "add", "tanh", "addx"};
    size_t base = (record(TAG, x0, 4), n_ops(TAG));
    for (int kd = 0; kd < 4; kd++) {
        record(TAG, x0, kd);
        printf("ops_%s %zu\n", kind_name[kd], n_ops(TAG) - base);
    }
    printf("ops_fixed %zu\n", base);
    printf("version %s\n", ADOLC_PKG_VERSION);

    record(TAG, x0, -1);
    size_t st[STAT_SIZE];
    tapestats(TAG, st);
    printf("k %ld\n", K);
    printf("num_operations %zu\nnum_locations %zu\nnum_values %zu\ntay_stack_size %zu\n",
           st[NUM_OPERATIONS], st[NUM_LOCATIONS], st[NUM_VALUES], st[TAY_STACK_SIZE]);
    printf("num_max_lives %zu\n", st[NUM_MAX_LIVES]);
    printf("op_buffer_size %zu\nloc_buffer_size %zu\nval_buffer_size %zu\ntay_buffer_size %zu\n",
           st[OP_BUFFER_SIZE], st[LOC_BUFFER_SIZE], st[VAL_BUFFER_SIZE], st[TAY_BUFFER_SIZE]);
    /* file access flags: 1 when that part of the tape went to a file */
    printf("op_file %zu\nloc_file %zu\nval_file %zu\n", st[OP_FILE_ACCESS], st[LOC_FILE_ACCESS],
           st[VAL_FILE_ACCESS]);
    printf("tay_file %d\n", st[TAY_STACK_SIZE] > st[TAY_BUFFER_SIZE] ? 1 : 0);
    /* bytes of the tape: one byte per operation code, a locint per location, a double per
     * value (constant); the Taylor buffer (a double per value the reverse needs) apart */
    printf("tape_bytes %zu\ntaylor_bytes %zu\n",
           st[NUM_OPERATIONS] * sizeof(unsigned char) + st[NUM_LOCATIONS] * sizeof(locint) +
               st[NUM_VALUES] * sizeof(double),
           st[TAY_STACK_SIZE] * sizeof(double));
    printf("sizeof_locint %zu\n", sizeof(locint));
    printf("ready\n");
    fflush(stdout);

    char line[256];
    while (fgets(line, sizeof line, stdin)) {
        double a, b;
        int inner;
        if (sscanf(line, "check %lf %lf", &a, &b) == 2) {
            double f0 = record(TAG, a, -1), g0 = reverse(TAG);
            double f1 = replay(TAG, b), g1 = reverse(TAG);
            printf("%.17g %.17g %.17g %.17g\n", f0, g0, f1, g1);
        } else if (sscanf(line, "rep %d", &inner) == 1 && inner > 0) {
            std::vector<double> t[5]; /* record, reverse, both, replay, replay + reverse */
            double s = 0, per = 1e9 / (double)K;
            for (int j = 0; j < inner; j++) {
                double t0 = now();
                s += record(TAG, x0, -1);
                double t1 = now();
                s += reverse(TAG);
                double t2 = now();
                t[0].push_back((t1 - t0) * per), t[1].push_back((t2 - t1) * per);
                t[2].push_back((t2 - t0) * per);
            }
            for (int j = 0; j < inner; j++) {
                double xj = x0 + 1e-3 * (j + 1); /* a new input each time */
                double t0 = now();
                s += replay(TAG, xj);
                double t1 = now();
                s += reverse(TAG);
                double t2 = now();
                t[3].push_back((t1 - t0) * per), t[4].push_back((t2 - t0) * per);
            }
            sink = s;
            printf("%.6g %.6g %.6g %.6g %.6g\n", median(t[0]), median(t[1]), median(t[2]),
                   median(t[3]), median(t[4]));
        } else {
            printf("error\n");
        }
        fflush(stdout);
    }
    return 0;
}
