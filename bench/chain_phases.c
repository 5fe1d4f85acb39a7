/* bench/chain_phases.c: bench_overhead's 1-element f32 chain, phase by phase, for callgrind
 * (inclusive Ir of the phase_* functions / (reps K)) and for alternating timing runs.
 * usage: chain_phases [reps] [k]  -> prints ns/op of record, sweep, nograd, replay, replay
 * sweep, and indep: the no-grad chain's ops all reading x instead of the op before, so that
 * none waits for another's result (the same time as nograd: the chain is not bound by its
 * ops' latency). Build: make build/chain_phases. Count: valgrind --tool=callgrind
 * build/chain_phases 21 1000, then callgrind_annotate --inclusive=yes callgrind.out.PID. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "chain.h"
#include "tapegrad.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

__attribute__((noinline)) tg_tensor *phase_record(tg_tape *tp, tg_tensor *x, long k)
{
    return tg_sum(tp, chain(tp, x, k), TG_ALL_AXES, false);
}
__attribute__((noinline)) void phase_sweep(tg_tape *tp, tg_tensor *s)
{
    if (tg_backward(tp, s)) fprintf(stderr, "%s\n", tg_tape_error(tp));
}
__attribute__((noinline)) void phase_replay(tg_tape *tp)
{
    if (tg_tape_replay(tp)) fprintf(stderr, "%s\n", tg_tape_error(tp));
}
__attribute__((noinline)) void phase_rsweep(tg_tape *tp, tg_tensor *s)
{
    if (tg_backward(tp, s)) fprintf(stderr, "%s\n", tg_tape_error(tp));
}
__attribute__((noinline)) tg_tensor *phase_nograd(tg_tape *tp, tg_tensor *x, long k)
{
    return chain(tp, x, k);
}
/* chain's ops, each on x */
__attribute__((noinline)) tg_tensor *phase_indep(tg_tape *tp, tg_tensor *x, long k)
{
    return chain_ops(tp, x, k, true);
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    int reps = argc > 1 ? atoi(argv[1]) : 200;
    long k = argc > 2 ? atol(argv[2]) : 1000;
    int64_t shape[1] = {1};
    tg_tensor *x = tg_tensor_new(TG_F32, 1, shape);
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    tg_tensor_rand_uniform(x, -1, 1, &rng);
    tg_set_requires_grad(x, true);
    tg_tape *tp = tg_tape_new();
    double *t[6];
    for (int j = 0; j < 6; j++) t[j] = calloc((size_t)reps, sizeof(double));
    double g = 0, v = 0;
    for (int r = -1; r < reps; r++) {
        tg_tape_reset(tp);
        double t0 = now();
        tg_tensor *s = phase_record(tp, x, k);
        double t1 = now();
        tg_zero_grad(x);
        double t2 = now();
        phase_sweep(tp, s);
        double t3 = now();
        phase_replay(tp);
        double t4 = now();
        tg_zero_grad(x);
        double t5 = now();
        phase_rsweep(tp, s);
        double t6 = now();
        g += tg_get(tg_grad(x), 0);
        tg_tape_reset(tp);
        tg_tape_set_grad_mode(tp, false);
        double t7 = now();
        tg_tensor *y = phase_nograd(tp, x, k);
        double t8 = now();
        tg_tape_reset(tp);
        double t9 = now();
        y = phase_indep(tp, x, k);
        double t10 = now();
        tg_tape_set_grad_mode(tp, true);
        v += tg_get(y, 0);
        if (r >= 0) {
            t[0][r] = (t1 - t0) / (double)k * 1e9;
            t[1][r] = (t3 - t2) / (double)k * 1e9;
            t[2][r] = (t8 - t7) / (double)k * 1e9;
            t[3][r] = (t4 - t3) / (double)k * 1e9;
            t[4][r] = (t6 - t5) / (double)k * 1e9;
            t[5][r] = (t10 - t9) / (double)k * 1e9;
        }
    }
    printf("record sweep nograd replay rsweep indep (median ns/op)  g=%.9g v=%.9g\n", g, v);
    for (int j = 0; j < 6; j++) {
        qsort(t[j], (size_t)reps, sizeof(double), cmp);
        printf("%.2f ", t[j][reps / 2]);
    }
    printf("\n");
    for (int j = 0; j < 6; j++) free(t[j]);
    tg_tape_free(tp);
    tg_tensor_free(x);
    return 0;
}
