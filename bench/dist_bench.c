/* bench/dist_bench.c: data-parallel throughput and the allreduce cost over MPI.
 * Run under mpirun, one BLIS thread per rank:
 *     mpirun -np 2 --oversubscribe --allow-run-as-root -x OMP_NUM_THREADS=1 build/dist_bench
 * Arguments: steps (200), bucket size in KiB (1024), overlap (1). Rank 0 prints, for the bench MLP
 * (784-256-256-10, ReLU, f32, batch 128 per rank, SGD-momentum, Fashion-MNIST-shaped random data):
 * samples/s over all ranks and the share of the step spent waiting in tg_ddp_finish; each rank's
 * median and 90th percentile of a step's forward + backward, tg_ddp_finish and optimiser step; then
 * allreduce times of 8 B to 4 MiB and the alpha-beta fit t = alpha + beta * bytes. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "tapegrad.h"

#define MAX_STEPS 100000

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
    tg_status st = {0};
    tg_comm *c = tg_comm_mpi_new(&argc, &argv, &st);
    if (!c) return fprintf(stderr, "dist_bench: %s\n", st.msg), 1;
    int r = tg_comm_rank(c), n = tg_comm_size(c);
    int steps = argc > 1 ? atoi(argv[1]) : 200;
    tg_set_num_threads(1);
    int64_t sizes[4] = {784, 256, 256, 10}, B = 128;
    tg_module *m = tg_nn_mlp(4, sizes, "relu", 0, false, TG_F32, &st);
    tg_tensor *ps[16];
    int np = tg_nn_params(m, ps, 16);
    tg_optim_opts o;
    tg_optim_defaults("momentum", &o);
    o.lr = 0.01, o.momentum = 0.9;
    tg_optim *opt = tg_optim_new("momentum", np, ps, &o, &st);
    tg_ddp_opts dop;
    tg_ddp_defaults(&dop);
    if (argc > 2) dop.bucket_bytes = 1024 * atoll(argv[2]); /* KiB */
    if (argc > 3) dop.overlap = atoi(argv[3]) != 0;
    tg_ddp *d = tg_ddp_new(c, np, ps, &dop, &st);
    int64_t sx[2] = {B, 784}, sy[1] = {B};
    tg_tensor *x = tg_tensor_new(TG_F32, 2, sx), *y = tg_tensor_new(TG_F32, 1, sy);
    tg_rng g;
    tg_rng_seed(&g, 1 + (uint64_t)r);
    tg_tensor_rand_uniform(x, 0, 1, &g);
    for (int64_t i = 0; i < B; i++) tg_set(y, i, (double)tg_rng_below(&g, 10));
    tg_tape *tp = tg_tape_new();
    static double phase[3][MAX_STEPS]; /* per step: forward + backward, finish, optimiser */
    int rc = 0;
    double t0 = 0, w0 = 0;
    for (int s = 0; s < steps + 20 && !rc; s++) {
        if (s == 20) { /* warm-up done */
            tg_comm_barrier(c);
            t0 = now_s(), w0 = tg_ddp_wait_seconds(d);
        }
        tg_optim_zero_grad(opt);
        tg_tape_reset(tp);
        double ta = now_s();
        rc = tg_ddp_begin(d, tp, B, B * n);
        if (!rc) rc = tg_backward(tp, tg_cross_entropy(tp, tg_nn_forward(m, tp, x), y));
        double tb = now_s();
        if (!rc) rc = tg_ddp_finish(d);
        double tc = now_s();
        if (!rc) rc = tg_optim_step(opt);
        if (s >= 20 && s - 20 < MAX_STEPS) {
            phase[0][s - 20] = tb - ta, phase[1][s - 20] = tc - tb;
            phase[2][s - 20] = now_s() - tc;
        }
    }
    double secs = now_s() - t0, wait = tg_ddp_wait_seconds(d) - w0;
    if (rc) fprintf(stderr, "dist_bench: rank %d: %s %s\n", r, tg_ddp_error(d), tg_tape_error(tp));
    double sps = (double)(steps * B * n) / secs;
    if (r == 0 && !rc)
        printf("dist.np%d.samples_per_s %.0f  (wait share %.1f%%, %d buckets)\n", n, sps,
               100 * wait / secs, tg_ddp_n_buckets(d));
    /* each rank's median and 90th percentile of the three phases of a step, in us */
    double q[3 * 2 * 64] = {0};
    int kept = steps < MAX_STEPS ? steps : MAX_STEPS;
    for (int k = 0; k < 3 && r < 64 && kept > 0; k++) {
        qsort(phase[k], (size_t)kept, sizeof(double), cmp_double);
        q[(k * 2) * 64 + r] = 1e6 * phase[k][kept / 2];
        q[(k * 2 + 1) * 64 + r] = 1e6 * phase[k][kept * 9 / 10];
    }
    if (!rc) rc = tg_comm_allreduce(c, q, 3 * 2 * 64, TG_COMM_F64);
    const char *names[3] = {"forward+backward", "tg_ddp_finish", "optimiser step"};
    for (int k = 0; k < 3 && r == 0 && !rc; k++) {
        printf("  %-16s median / p90 us:", names[k]);
        for (int i = 0; i < n && i < 64; i++)
            printf("  rank %d %.0f / %.0f", i, q[(k * 2) * 64 + i], q[(k * 2 + 1) * 64 + i]);
        printf("\n");
    }
    /* alpha-beta: alpha the fastest small sum (<= 2 KiB: latency only), beta the slope of
     * the larger ones above it (median over 32 KiB to 4 MiB) */
    if (n > 1 && !rc) {
        static float buf[1 << 20];
        double alpha = 1e9, slopes[8];
        int k = 0;
        for (int pass = 0; pass < 2; pass++) /* a warm-up pass first */
            for (int64_t len = 2; len <= (1 << 20); len *= 4) {
                int reps = len < 65536 ? 200 : 20;
                tg_comm_barrier(c);
                double a = now_s();
                for (int i = 0; i < reps; i++) tg_comm_allreduce(c, buf, len, TG_COMM_F32);
                double t = (now_s() - a) / reps, bytes = 4.0 * (double)len;
                if (!pass) continue;
                if (r == 0) printf("allreduce %8.0f B: %8.1f us\n", bytes, 1e6 * t);
                if (bytes <= 2048) alpha = t < alpha ? t : alpha;
                if (bytes >= 32768 && k < 8) slopes[k++] = (t - alpha) / bytes;
            }
        for (int i = 1; i < k; i++) /* insertion sort for the median */
            for (int j = i; j > 0 && slopes[j] < slopes[j - 1]; j--) {
                double t = slopes[j];
                slopes[j] = slopes[j - 1], slopes[j - 1] = t;
            }
        double beta = k ? slopes[k / 2] : 0;
        if (r == 0)
            printf("alpha-beta fit (%d ranks): alpha %.1f us, beta %.3f ns/B (%.2f GB/s)\n", n,
                   1e6 * alpha, 1e9 * beta, 1e-9 / beta);
    }
    tg_tape_free(tp);
    tg_tensor_free(x), tg_tensor_free(y);
    tg_ddp_free(d);
    tg_optim_free(opt);
    tg_nn_free(m);
    tg_comm_free(c);
    tg_comm_mpi_finalize(rc != 0);
    return rc ? 1 : 0;
}
