/* bench/bench.c: `make bench`. Measures tape overhead, training throughput, GEMM efficiency
 * and memory, runs the same workloads in PyTorch (bench/torch/bench.py) when it is
 * installed, and the 1-element chain in ADOL-C (bench/adolc_chain.cpp, --adolc) when that
 * was built, and prints one table with tapegrad/PyTorch and ADOL-C/tapegrad ratios plus a
 * JSON file with every figure. Each figure is the median (and range) of repeated runs. */
#define _DEFAULT_SOURCE /* wait4 */
#define _GNU_SOURCE     /* sched_setaffinity, sched_getcpu: the ADOL-C part pins itself */
#include <blis.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tapegrad.h"
#include "chain.h"
#include "../ops/vecmath.h" /* the raw chain's tanh is the ops' own array tanh */

#define MAX_FIG 256

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct stat3 {
    double med, lo, hi;
} stat3;

static stat3 summarise(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return (stat3){n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]), v[0], v[n - 1]};
}

/* ---- every figure, for the table and the JSON ---- */
typedef struct figure {
    char key[96]; /* e.g. "overhead.f32.n1.fwd_rec_ns" */
    char unit[16];
    stat3 v;
    double torch; /* (double)NAN when not measured */
    double ratio; /* tapegrad/PyTorch as the median of per-repetition ratios when the two
                     alternated (NAN: from the two medians); for adolc.* figures,
                     ADOL-C / tapegrad, the median of per-repetition ratios */
    bool higher_better;
    double tg;        /* adolc.* figures: tapegrad's figure measured alongside (NAN: none) */
    char tg_what[40]; /* and what it is */
} figure;

static figure figs[MAX_FIG];
static int n_figs;

static figure *fig(const char *key, const char *unit, stat3 v, bool higher_better)
{
    if (n_figs >= MAX_FIG) return NULL;
    figure *f = &figs[n_figs++];
    snprintf(f->key, sizeof f->key, "%s", key);
    snprintf(f->unit, sizeof f->unit, "%s", unit);
    f->v = v, f->torch = f->ratio = f->tg = (double)NAN, f->higher_better = higher_better;
    f->tg_what[0] = 0;
    return f;
}

static figure *find_fig(const char *key)
{
    for (int i = 0; i < n_figs; i++)
        if (strcmp(figs[i].key, key) == 0) return &figs[i];
    return NULL;
}

/* ---- 1. tape overhead: chains of K elementwise ops (bench/chain.h) ---- */

/* Op i of the chain as a plain loop, tanh by the array tanh the op uses (libmvec, or libm in
 * the plain build). */
#define RAW_OP(T, SFX, TANH)                                                                       \
    static inline void raw_op_##SFX(int64_t i, const T *restrict src, T *restrict dst,             \
                                    const T *restrict x, int64_t n)                                \
    {                                                                                              \
        switch (i & 3) {                                                                           \
        case 0:                                                                                    \
            for (int64_t j = 0; j < n; j++) dst[j] = (T)0.5 * src[j];                              \
            break;                                                                                 \
        case 1:                                                                                    \
            for (int64_t j = 0; j < n; j++) dst[j] = src[j] + (T)0.1;                              \
            break;                                                                                 \
        case 2: TANH(src, dst, n); break;                                                          \
        default:                                                                                   \
            for (int64_t j = 0; j < n; j++) dst[j] = src[j] + x[j];                                \
            break;                                                                                 \
        }                                                                                          \
    }
RAW_OP(float, f32, tg_vm_tanh_f32)
RAW_OP(double, f64, tg_vm_tanh_f64)

/* The same arithmetic over two preallocated buffers. */
#define RAW_CHAIN(T, SFX)                                                                          \
    static void raw_chain_##SFX(const T *restrict x, T *restrict a, T *restrict b, int64_t n,      \
                                int64_t k)                                                         \
    {                                                                                              \
        const T *src = x;                                                                          \
        for (int64_t i = 0; i < k; i++) {                                                          \
            T *dst = (i & 1) ? b : a;                                                              \
            raw_op_##SFX(i, src, dst, x, n);                                                       \
            src = dst;                                                                             \
        }                                                                                          \
        __asm__ volatile("" : : "r"(src) : "memory");                                              \
    }
RAW_CHAIN(float, f32)
RAW_CHAIN(double, f64)

/* The chain and its gradient as plain loops, each op's output in a slot of its own (v, k + 1
 * slots of n: v[0] is x) and the gradient of sum(y) swept back from slot k to x through
 * g (two buffers): what a replay and a sweep compute, with nothing else. The ops depend on
 * one another, so at small n this is the chain's latency, the limit of replay + sweep. */
#define RAW_CHAIN_BWD(T, SFX)                                                                      \
    static void raw_fwd_bwd_##SFX(T *restrict v, T *restrict ga, T *restrict gb, T *restrict gx,   \
                                  int64_t n, int64_t k)                                            \
    {                                                                                              \
        for (int64_t i = 0; i < k; i++) raw_op_##SFX(i, v + i * n, v + (i + 1) * n, v, n);         \
        T *g = ga, *h = gb;                                                                        \
        for (int64_t j = 0; j < n; j++) g[j] = 1, gx[j] = 0;                                       \
        for (int64_t i = k - 1; i >= 0; i--) {                                                     \
            const T *y = v + (i + 1) * n;                                                          \
            switch (i & 3) {                                                                       \
            case 0:                                                                                \
                for (int64_t j = 0; j < n; j++) h[j] = (T)0.5 * g[j];                              \
                break;                                                                             \
            case 1:                                                                                \
                for (int64_t j = 0; j < n; j++) h[j] = g[j];                                       \
                break;                                                                             \
            case 2:                                                                                \
                for (int64_t j = 0; j < n; j++) h[j] = g[j] * (1 - y[j] * y[j]);                   \
                break;                                                                             \
            default:                                                                               \
                for (int64_t j = 0; j < n; j++) h[j] = g[j], gx[j] += g[j];                        \
                break;                                                                             \
            }                                                                                      \
            T *t = g;                                                                              \
            g = h, h = t;                                                                          \
        }                                                                                          \
        for (int64_t j = 0; j < n; j++) gx[j] += g[j];                                             \
        __asm__ volatile("" : : "r"(gx) : "memory");                                               \
    }
RAW_CHAIN_BWD(float, f32)
RAW_CHAIN_BWD(double, f64)

static volatile double sink;

static void bench_overhead(tg_dtype dt, int64_t n, int64_t k, int reps, bool raw, const char *tag)
{
    int64_t shape[1] = {n};
    tg_tensor *x = tg_tensor_new(dt, 1, shape);
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    tg_tensor_rand_uniform(x, -1, 1, &rng);
    tg_set_requires_grad(x, true);
    tg_tape *tp = tg_tape_new();
    double *fwd = calloc((size_t)reps, sizeof *fwd), *bwd = calloc((size_t)reps, sizeof *bwd);
    double *nog = calloc((size_t)reps, sizeof *nog), *rw = calloc((size_t)reps, sizeof *rw);
    double *rpl = calloc((size_t)reps, sizeof *rpl), *rpb = calloc((size_t)reps, sizeof *rpb);
    double *rwb = calloc((size_t)reps, sizeof *rwb);
    for (int r = -1; r < reps; r++) { /* r = -1 warms the arena and the caches */
        tg_tape_reset(tp);
        double t0 = now();
        tg_tensor *y = chain(tp, x, k);
        tg_tensor *s = tg_sum(tp, y, TG_ALL_AXES, false);
        double t1 = now();
        tg_zero_grad(x);
        double t2 = now();
        if (tg_backward(tp, s)) fprintf(stderr, "bench: %s\n", tg_tape_error(tp));
        double t3 = now();
        /* the same tape replayed (tg_tape_replay) and swept again */
        if (tg_tape_replay(tp)) fprintf(stderr, "bench: %s\n", tg_tape_error(tp));
        double t3r = now();
        tg_zero_grad(x);
        double t3z = now();
        if (tg_backward(tp, s)) fprintf(stderr, "bench: %s\n", tg_tape_error(tp));
        double t3b = now();
        tg_tape_reset(tp);
        tg_tape_set_grad_mode(tp, false);
        double t4 = now();
        y = chain(tp, x, k);
        double t5 = now();
        tg_tape_set_grad_mode(tp, true);
        sink = y ? tg_get(y, 0) : 0;
        if (r >= 0) {
            fwd[r] = (t1 - t0) / (double)k * 1e9;
            bwd[r] = (t3 - t2) / (double)k * 1e9;
            nog[r] = (t5 - t4) / (double)k * 1e9;
            rpl[r] = (t3r - t3) / (double)k * 1e9;
            rpb[r] = (t3b - t3z) / (double)k * 1e9;
        }
    }
    if (raw) {
        size_t es = tg_dtype_size(dt);
        void *a = aligned_alloc(64, ((size_t)n * es + 63) / 64 * 64),
             *b = aligned_alloc(64, ((size_t)n * es + 63) / 64 * 64);
        for (int r = -1; r < reps; r++) {
            double t0 = now();
            if (dt == TG_F32) raw_chain_f32(tg_data(x), a, b, n, k);
            else raw_chain_f64(tg_data(x), a, b, n, k);
            double t1 = now();
            if (r >= 0) rw[r] = (t1 - t0) / (double)k * 1e9;
        }
        free(a), free(b);
        /* the chain and its gradient, plain (raw_fwd_bwd_*) */
        size_t slot = ((size_t)n * es + 63) / 64 * 64;
        void *v = aligned_alloc(64, slot * (size_t)(k + 1)), *g = aligned_alloc(64, 3 * slot);
        void *g1 = (char *)g + slot, *g2 = (char *)g + 2 * slot;
        for (int r = -1; r < reps; r++) {
            memcpy(v, tg_data(x), (size_t)n * es);
            double t0 = now();
            if (dt == TG_F32) raw_fwd_bwd_f32(v, g, g1, g2, n, k);
            else raw_fwd_bwd_f64(v, g, g1, g2, n, k);
            double t1 = now();
            if (r >= 0) rwb[r] = (t1 - t0) / (double)k * 1e9;
        }
        free(v), free(g);
    }
    char key[96];
    const char *d = tg_dtype_name(dt);
    snprintf(key, sizeof key, "overhead.%s.%s.fwd_recorded", d, tag);
    stat3 f = summarise(fwd, reps);
    fig(key, "ns/op", f, false);
    snprintf(key, sizeof key, "overhead.%s.%s.backward", d, tag);
    stat3 b = summarise(bwd, reps);
    fig(key, "ns/op", b, false);
    snprintf(key, sizeof key, "overhead.%s.%s.fwd_nograd", d, tag);
    fig(key, "ns/op", summarise(nog, reps), false);
    snprintf(key, sizeof key, "overhead.%s.%s.fwd_bwd", d, tag);
    fig(key, "ns/op", (stat3){f.med + b.med, f.lo + b.lo, f.hi + b.hi}, false);
    stat3 rp = summarise(rpl, reps), rb = summarise(rpb, reps);
    snprintf(key, sizeof key, "replay.%s.%s.fwd", d, tag);
    fig(key, "ns/op", rp, false);
    snprintf(key, sizeof key, "replay.%s.%s.fwd_bwd", d, tag);
    fig(key, "ns/op", (stat3){rp.med + rb.med, rp.lo + rb.lo, rp.hi + rb.hi}, false);
    if (raw) {
        stat3 rs = summarise(rw, reps);
        snprintf(key, sizeof key, "overhead.%s.%s.raw_kernels", d, tag);
        fig(key, "ns/op", rs, false);
        snprintf(key, sizeof key, "overhead.%s.%s.overhead", d, tag);
        fig(key, "ns/op", (stat3){f.med - rs.med, f.lo - rs.hi, f.hi - rs.lo}, false);
        snprintf(key, sizeof key, "overhead.%s.%s.raw_fwd_bwd", d, tag);
        fig(key, "ns/op", summarise(rwb, reps), false);
    }
    tg_tape_stats st;
    tg_tape_get_stats(tp, &st);
    if (n == 1 && dt == TG_F32 && strcmp(tag, "n1") == 0) {
        tg_tape_reset(tp);
        tg_tensor *y = chain(tp, x, k);
        (void)y;
        tg_tape_get_stats(tp, &st);
        fig("memory.tape_bytes_per_node_n1", "bytes",
            (stat3){(double)st.arena_used / (double)st.n_nodes, 0, 0}, false);
    }
    free(fwd), free(bwd), free(nog), free(rw), free(rpl), free(rpb), free(rwb);
    tg_tape_free(tp);
    tg_tensor_free(x);
}

/* ---- 2-3. MLP training step and raw GEMM limits ---- */
#define MLP_BATCH 128
#define MLP_NB 16 /* batches the step cycles through */
#define FASHION "/usr/share/datasets/fashion-mnist"

typedef struct mlp {
    tg_module *net;
    tg_tensor *x[MLP_NB], *y[MLP_NB];
    tg_tensor *xin, *yin; /* the step's input: the next batch is copied here before it */
    int next;             /* the batch of the next step */
    bool real;            /* Fashion-MNIST's first MLP_NB batches, else random data */
    tg_optim *opt;
} mlp;

static const int64_t MLP_SIZES[4] = {784, 256, 256, 10};
static const char *mlp_data = "random data"; /* what the MLP trained on, for the report */

/* The first MLP_NB·128 training images (scaled to [0, 1]) and labels of Fashion-MNIST into
 * x[0..MLP_NB-1] ([128, 784]) and y; false (nothing kept) if the data set is not installed
 * or does not load. */
static bool fashion_batches(tg_tensor **x, tg_tensor **y)
{
    tg_tensor *img = NULL, *lab = NULL;
    tg_status st;
    if (tg_idx_load(FASHION "/train-images-idx3-ubyte.gz", TG_F32, &img, &st) ||
        tg_idx_load(FASHION "/train-labels-idx1-ubyte.gz", TG_F32, &lab, &st) ||
        tg_tensor_numel(lab) < MLP_NB * MLP_BATCH) {
        tg_tensor_free(img), tg_tensor_free(lab);
        return false;
    }
    const float *pi = tg_data(img), *pl = tg_data(lab);
    for (int b = 0; b < MLP_NB; b++) {
        memcpy(tg_data(x[b]), pi + (size_t)b * MLP_BATCH * 784, MLP_BATCH * 784 * sizeof(float));
        memcpy(tg_data(y[b]), pl + (size_t)b * MLP_BATCH, MLP_BATCH * sizeof(float));
    }
    tg_tensor_free(img), tg_tensor_free(lab);
    return true;
}

/* The MLP as a user builds it: tg_nn_mlp (its linear + relu pairs run as linear_act
 * nodes), He-uniform weights, SGD with momentum; MLP_NB batches of Fashion-MNIST, or of
 * random data of its shapes when it is not installed (the same for PyTorch). */
static void mlp_new(mlp *m)
{
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    tg_status st;
    memset(m, 0, sizeof *m);
    m->net = tg_nn_mlp(4, MLP_SIZES, "relu", 0, false, TG_F32, &st);
    tg_nn_init(m->net, TG_INIT_HE_UNIFORM, 0, &rng);
    tg_tensor *params[6];
    int np = tg_nn_params(m->net, params, 6);
    int64_t xs[2] = {MLP_BATCH, 784}, ys[1] = {MLP_BATCH};
    for (int b = 0; b < MLP_NB; b++)
        m->x[b] = tg_tensor_new(TG_F32, 2, xs), m->y[b] = tg_tensor_new(TG_F32, 1, ys);
    m->xin = tg_tensor_new(TG_F32, 2, xs), m->yin = tg_tensor_new(TG_F32, 1, ys);
    m->real = fashion_batches(m->x, m->y);
    for (int b = 0; b < MLP_NB && !m->real; b++) {
        tg_tensor_rand_uniform(m->x[b], 0, 1, &rng);
        for (int i = 0; i < MLP_BATCH; i++) tg_set(m->y[b], i, (double)tg_rng_below(&rng, 10));
    }
    tg_optim_opts oo;
    tg_optim_defaults("momentum", &oo);
    oo.lr = 0.01, oo.momentum = 0.9;
    m->opt = tg_optim_new("momentum", np, params, &oo, &st);
}

static void mlp_free(mlp *m)
{
    tg_optim_free(m->opt);
    tg_nn_free(m->net);
    for (int b = 0; b < MLP_NB; b++) tg_tensor_free(m->x[b]), tg_tensor_free(m->y[b]);
    tg_tensor_free(m->xin), tg_tensor_free(m->yin);
}

/* One step on the next batch; phase[0..2] += seconds in the forward, the backward (with
 * zero_grad) and the optimiser step. The batch is first copied into the input tensor, as
 * a data loader hands over a batch it has just written (tapegrad train's batcher does);
 * that copy is not part of the step's time (PyTorch's side does the same). */
static int mlp_step(mlp *m, tg_tape *tp, double *phase)
{
    tg_tensor_copy(m->xin, m->x[m->next]);
    tg_tensor_copy(m->yin, m->y[m->next]);
    m->next = (m->next + 1) % MLP_NB;
    double t0 = now();
    tg_tape_reset(tp);
    tg_tensor *loss = tg_cross_entropy(tp, tg_nn_forward(m->net, tp, m->xin), m->yin);
    double t1 = now();
    tg_optim_zero_grad(m->opt);
    if (!loss || tg_backward(tp, loss)) return -1;
    double t2 = now();
    if (tg_optim_step(m->opt)) return -1;
    double t3 = now();
    phase[0] += t1 - t0, phase[1] += t2 - t1, phase[2] += t3 - t2;
    return 0;
}

/* The GEMMs of one step: forward x·W (3), backward dY·Wᵀ (2: no gradient for the input) and
 * Xᵀ·dY (3), as (transA, transB, m, n, k). */
static const struct {
    bool ta, tb;
    int64_t m, n, k;
} GEMMS[8] = {{0, 0, 128, 256, 784}, {0, 0, 128, 256, 256}, {0, 0, 128, 10, 256},
              {0, 1, 128, 256, 10},  {0, 1, 128, 256, 256}, {1, 0, 784, 256, 128},
              {1, 0, 256, 256, 128}, {1, 0, 256, 10, 128}};

static double step_flops(void)
{
    double f = 0;
    for (int i = 0; i < 8; i++) f += 2.0 * (double)(GEMMS[i].m * GEMMS[i].n * GEMMS[i].k);
    return f;
}

/* A higher-is-better figure whose key has the thread count in it. */
static void fig_t(const char *key_fmt, int threads, const char *unit, stat3 v)
{
    char key[96];
    snprintf(key, sizeof key, key_fmt, threads);
    fig(key, unit, v, true);
}

/* The step's GEMM FLOP/s for seconds per step (the slowest time gives the lowest rate). */
static stat3 gflops(stat3 secs)
{
    return (stat3){step_flops() / secs.med * 1e-9, step_flops() / secs.hi * 1e-9,
                   step_flops() / secs.lo * 1e-9};
}

/* The storage cases ops/gemm.c sends to BLIS's packed path (sup disabled); a copy of its
 * rule, for the raw GEMMs on tapegrad's own paths. */
static bool tapegrad_packed_path(bool ta, bool tb, int64_t m, int64_t n, int64_t k)
{
    if (!ta && tb) return k > 1 && m >= 64 && n >= 64;
    return ta && !tb && m >= 256 && n >= 256;
}

/* Seconds for the 8 GEMMs of one step as raw BLIS calls on shared buffers (a, b, c of
 * 784 x 256 floats), averaged over 20 back-to-back sets: as bli_sgemm calls (BLIS's own
 * path choice; same_path false), or on the paths tapegrad picks (same_path true). */
static double raw_gemm_once(float *a, float *b, float *c, bool same_path)
{
    float one = 1, zero = 0;
    double t0 = now();
    for (int rep = 0; rep < 20; rep++)
        for (int i = 0; i < 8; i++) {
            int64_t m = GEMMS[i].m, n = GEMMS[i].n, k = GEMMS[i].k;
            rntm_t r, *rp = NULL;
            if (same_path && tapegrad_packed_path(GEMMS[i].ta, GEMMS[i].tb, m, n, k)) {
                bli_rntm_init_from_global(&r);
                bli_rntm_disable_l3_sup(&r);
                rp = &r;
            }
            bli_sgemm_ex(GEMMS[i].ta ? BLIS_TRANSPOSE : BLIS_NO_TRANSPOSE,
                         GEMMS[i].tb ? BLIS_TRANSPOSE : BLIS_NO_TRANSPOSE, m, n, k, &one, a,
                         GEMMS[i].ta ? m : k, 1, b, GEMMS[i].tb ? k : n, 1, &zero, c, n, 1, NULL,
                         rp);
        }
    return (now() - t0) / 20;
}

/* Seconds of the step's input-gradient GEMM of the output layer (128x256 = 128x10 · 10x256ᵀ)
 * through BLIS's sup path (bli_sgemm's own choice) and through its packed path (sup
 * disabled, as ops/gemm.c calls it), averaged over 50 calls each, alternating. */
static void gemm_paths(float *a, float *b, float *c, double *sup, double *packed)
{
    float one = 1, zero = 0;
    rntm_t r;
    *sup = *packed = 0;
    for (int round = 0; round < 10; round++)
        for (int p = 0; p < 2; p++) {
            bli_rntm_init_from_global(&r);
            bli_rntm_disable_l3_sup(&r);
            double t0 = now();
            for (int i = 0; i < 5; i++)
                bli_sgemm_ex(BLIS_NO_TRANSPOSE, BLIS_TRANSPOSE, 128, 256, 10, &one, a, 10, 1, b, 10,
                             1, &zero, c, 256, 1, NULL, p ? &r : NULL);
            *(p ? packed : sup) += (now() - t0) / 50;
        }
}

/* The PyTorch MLP (and CNN) runs in a child process (bench/torch/bench.py --part mlp-serve,
 * cnn-serve) that answers one repetition per request, so that tapegrad's and PyTorch's repetitions
 * alternate and both see the same load on a shared machine. */
typedef struct torch_peer {
    pid_t pid;
    FILE *to, *from;
} torch_peer;

static const char *torch_script = "bench/torch/bench.py";
#ifndef PEER_QUIET_US
#define PEER_QUIET_US 100000
#endif

static void peer_stop(torch_peer *p)
{
    if (p->to) fclose(p->to); /* EOF: the child exits */
    if (p->from) fclose(p->from);
    if (p->pid > 0) waitpid(p->pid, NULL, 0);
    *p = (torch_peer){0};
}

static bool peer_start(torch_peer *p, int threads, const char *part)
{
    *p = (torch_peer){0};
    if (access("/usr/bin/python3", X_OK) != 0 || access(torch_script, R_OK) != 0) return false;
    int to[2], from[2];
    if (pipe(to) != 0) return false;
    if (pipe(from) != 0) {
        close(to[0]), close(to[1]);
        return false;
    }
    fflush(NULL);
    p->pid = fork();
    if (p->pid == 0) {
        char th[16];
        snprintf(th, sizeof th, "%d", threads);
        setenv("BLIS_NUM_THREADS", th, 1), setenv("OMP_NUM_THREADS", th, 1);
        dup2(to[0], 0), dup2(from[1], 1);
        close(to[0]), close(to[1]), close(from[0]), close(from[1]);
        if (!freopen("/dev/null", "w", stderr)) _exit(127);
        execl("/usr/bin/python3", "python3", torch_script, "--part", part, "--threads", th,
              (char *)NULL);
        _exit(127);
    }
    close(to[0]), close(from[1]);
    if (p->pid < 0) {
        close(to[1]), close(from[0]);
        *p = (torch_peer){0};
        return false;
    }
    p->to = fdopen(to[1], "w"), p->from = fdopen(from[0], "r");
    char line[64];
    if (!p->to || !p->from || !fgets(line, sizeof line, p->from) ||
        strncmp(line, "ready", 5) != 0) {
        peer_stop(p); /* no torch: the child printed nothing */
        return false;
    }
    return true;
}

/* samples/s of one PyTorch repetition, NAN if the child is gone */
static double peer_rep(torch_peer *p)
{
    double v;
    if (!p->to || fputs("rep\n", p->to) == EOF || fflush(p->to) != 0) return (double)NAN;
    /* NOLINTNEXTLINE(cert-err34-c): numbers our own helper printed; a bad read is NaN */
    return fscanf(p->from, "%lf", &v) == 1 ? v : (double)NAN;
}

static void bench_mlp(int threads, int reps)
{
    tg_set_num_threads(threads);
    mlp m;
    mlp_new(&m);
    mlp_data = m.real ? "Fashion-MNIST" : "random data";
    tg_tape *tp = tg_tape_new();
    tg_tape_set_profiling(tp, true); /* the time inside BLIS calls; ~16 clock reads a step */
    double *sps = calloc((size_t)reps, sizeof *sps), *st = calloc((size_t)reps, sizeof *st);
    double *gin = calloc((size_t)reps, sizeof *gin);
    double *tsps = calloc((size_t)reps, sizeof *tsps), *graw = calloc((size_t)reps, sizeof *graw);
    double *gpath = calloc((size_t)reps, sizeof *gpath),
           *gsame = calloc((size_t)reps, sizeof *gsame);
    float *ga = aligned_alloc(64, 784 * 256 * 4), *gb = aligned_alloc(64, 784 * 256 * 4);
    float *gc = aligned_alloc(64, 784 * 256 * 4);
    for (int i = 0; i < 784 * 256; i++) ga[i] = gb[i] = 0.001f * (float)(i % 97), gc[i] = 0;
    const int steps = 30;
    torch_peer peer;
    bool torch = peer_start(&peer, threads, "mlp-serve");
    double *ph[3];
    for (int i = 0; i < 3; i++) ph[i] = calloc((size_t)reps, sizeof *ph[i]);
    for (int r = -1; r < reps; r++) {
        double phase[3] = {0, 0, 0};
        tg_tape_profile_clear(tp);
        for (int s = 0; s < steps; s++)
            if (mlp_step(&m, tp, phase)) fprintf(stderr, "bench: %s\n", tg_tape_error(tp));
        double dt = (phase[0] + phase[1] + phase[2]) / steps; /* the steps without the copies */
        tg_profile_row gr;
        tg_tape_profile(tp, NULL, 0, &gr);
        if (r >= 0)
            sps[r] = MLP_BATCH / dt, st[r] = dt, gin[r] = (gr.forward_s + gr.backward_s) / steps;
        for (int i = 0; i < 3 && r >= 0; i++) ph[i][r] = 1e6 * phase[i] / steps;
        /* the raw GEMMs right after, so the step's share of them sees the same load */
        double g = raw_gemm_once(ga, gb, gc, false), gs = raw_gemm_once(ga, gb, gc, true);
        if (r >= 0) graw[r] = g, gsame[r] = gs;
        double t_sup, t_packed;
        gemm_paths(ga, gb, gc, &t_sup, &t_packed);
        if (r >= 0) gpath[r] = t_sup / t_packed;
        double tv = torch ? peer_rep(&peer) : (double)NAN;
        if (torch) usleep(PEER_QUIET_US);
        if (r >= 0) tsps[r] = tv;
        torch = torch && !isnan(tv);
    }
    peer_stop(&peer);
    tg_tape_stats ts;
    tg_tape_get_stats(tp, &ts);
    char key[96];
    /* per repetition, before summarise sorts the arrays: the measured share of the step
     * inside BLIS calls, and the GEMMs' speed there against the tight loop's */
    double *share = calloc((size_t)reps, sizeof *share), *eff = calloc((size_t)reps, sizeof *eff);
    double *frac = calloc((size_t)reps, sizeof *frac), *vs = calloc((size_t)reps, sizeof *vs);
    double *fsame = calloc((size_t)reps, sizeof *fsame);
    for (int i = 0; i < reps; i++) {
        share[i] = 100 * gin[i] / st[i], eff[i] = 100 * graw[i] / gin[i];
        frac[i] = 100 * graw[i] / st[i], vs[i] = sps[i] / tsps[i];
        fsame[i] = 100 * gsame[i] / st[i];
    }
    stat3 step = summarise(st, reps);
    snprintf(key, sizeof key, "mlp.t%d.samples_per_s", threads);
    fig(key, "samples/s", summarise(sps, reps), true);
    if (torch)
        find_fig(key)->torch = summarise(tsps, reps).med,
        find_fig(key)->ratio = summarise(vs, reps).med;
    const char *phase_name[3] = {"forward", "backward", "optimiser"};
    for (int i = 0; i < 3; i++) {
        snprintf(key, sizeof key, "mlp.t%d.%s_us", threads, phase_name[i]);
        fig(key, "us/step", summarise(ph[i], reps), false);
        free(ph[i]);
    }
    fig_t("mlp.t%d.gemm_time_share", threads, "%", summarise(share, reps));
    fig_t("gemm.t%d.in_step_gflops", threads, "GFLOP/s", gflops(summarise(gin, reps)));
    fig_t("gemm.t%d.in_step_speed_of_raw", threads, "%", summarise(eff, reps));
    fig_t("gemm.t%d.raw_sgemm_gflops", threads, "GFLOP/s", gflops(summarise(graw, reps)));
    fig_t("gemm.t%d.step_gflops", threads, "GFLOP/s", gflops(step));
    fig_t("gemm.t%d.step_fraction_of_raw", threads, "%", summarise(frac, reps));
    fig_t("gemm.t%d.raw_same_paths_gflops", threads, "GFLOP/s", gflops(summarise(gsame, reps)));
    fig_t("gemm.t%d.step_fraction_of_raw_same_paths", threads, "%", summarise(fsame, reps));
    snprintf(key, sizeof key, "gemm.t%d.path_sup_over_packed", threads);
    fig(key, "x", summarise(gpath, reps), false);
    if (threads == 1)
        fig("memory.arena_high_water_per_step", "bytes", (stat3){(double)ts.arena_high, 0, 0},
            false);
    free(sps), free(st), free(tsps), free(graw), free(gpath), free(gin), free(share), free(eff),
        free(frac), free(vs), free(fsame), free(gsame), free(ga), free(gb), free(gc);
    tg_tape_free(tp);
    mlp_free(&m);
}

/* The MLP's step replayed (tg_tape_replay on the tape of the first step, the new batch
 * copied into the same input tensors) against recorded again, alternating 30-step
 * repetitions of each: mlp.t<T>.replay_over_record is the median of their samples/s ratios
 * (above 1: the replay is faster), the figure by which tapegrad train records every step. */
static void bench_mlp_replay(int threads, int reps)
{
    tg_set_num_threads(threads);
    mlp m;
    mlp_new(&m);
    tg_tape *tp = tg_tape_new(), *rp = tg_tape_new();
    double *ratio = calloc((size_t)reps, sizeof *ratio);
    tg_tensor *loss = NULL;
    const int steps = 30;
    bool ok = ratio && tp && rp;
    for (int r = -1; r < reps && ok; r++) {
        double phase[3] = {0, 0, 0}, rec, rep = 0;
        for (int s = 0; s < steps && ok; s++) ok = mlp_step(&m, tp, phase) == 0;
        rec = phase[0] + phase[1] + phase[2];
        for (int s = 0; s < steps && ok; s++) {
            tg_tensor_copy(m.xin, m.x[m.next]);
            tg_tensor_copy(m.yin, m.y[m.next]);
            m.next = (m.next + 1) % MLP_NB;
            double t0 = now();
            if (!loss) loss = tg_cross_entropy(rp, tg_nn_forward(m.net, rp, m.xin), m.yin);
            else ok = tg_tape_replay(rp) == TG_OK;
            tg_optim_zero_grad(m.opt);
            ok = ok && loss && tg_backward(rp, loss) == TG_OK && tg_optim_step(m.opt) == TG_OK;
            rep += now() - t0;
        }
        if (r >= 0) ratio[r] = rec / rep;
    }
    if (!ok) fprintf(stderr, "bench: replayed MLP: %s\n", tg_tape_error(rp));
    else fig_t("mlp.t%d.replay_over_record", threads, "x", summarise(ratio, reps));
    free(ratio);
    tg_tape_free(tp), tg_tape_free(rp);
    mlp_free(&m);
}

/* ---- 2b. convolution layers and the CNN of `tapegrad demo cnn` ----
 * The two convolutions of examples/cnn.c at its batch of 128, f32, 3x3 kernels, padding 1:
 * l1 1→32 channels on 28x28 (its input needs no gradient: it is the data), l2 32→64 on
 * 14x14 (its input needs one). Per layer: the recorded forward (grad mode on, as in
 * training) and the forward + backward of the sum of its output (the seed of ones that
 * tg_sum's backward spreads) in milliseconds, the median over
 * repetitions of the mean of CONV_INNER calls; beside them BLIS alone on the GEMMs of
 * those calls (one per image: the forward w·cols, [O, 9C]·[9C, HW]; the backward dw +=
 * dy·colsᵀ and, for l2, dcols = wᵀ·dy), so that the rest (unfold, fold, bias, the tape)
 * shows. PyTorch runs the same layer in a child (bench.py --part conv-serve), one
 * repetition of CONV_INNER calls per request, alternating with tapegrad's repetitions as the
 * MLP does: the ratios are medians of the per-repetition ratios. */
#define CONV_INNER 10

typedef struct conv_layer {
    const char *name;
    int64_t C, H, O;
    bool dx; /* the input needs a gradient */
} conv_layer;

static const conv_layer CONV_LAYERS[2] = {{"l1", 1, 28, 32, false}, {"l2", 32, 14, 64, true}};

/* Seconds for one call's GEMMs (forward only, or forward and backward) as raw bli_sgemm
 * calls, BLIS choosing its path, on buffers of their sizes: b[0] w [O, 9C], b[1] cols
 * [9C, HW], b[2] y [O, HW], b[3] dw [O, 9C], b[4] dcols [9C, HW]. */
static double conv_raw_gemms(const conv_layer *l, bool bwd, float *const *b)
{
    float one = 1, zero = 0;
    int64_t O = l->O, K = 9 * l->C, L = l->H * l->H;
    double t0 = now();
    for (int n = 0; n < MLP_BATCH; n++) {
        bli_sgemm(BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, O, L, K, &one, b[0], K, 1, b[1], L, 1,
                  &zero, b[2], L, 1);
        if (!bwd) continue;
        bli_sgemm(BLIS_NO_TRANSPOSE, BLIS_TRANSPOSE, O, K, L, &one, b[2], L, 1, b[1], L, 1, &one,
                  b[3], K, 1);
        if (l->dx)
            bli_sgemm(BLIS_TRANSPOSE, BLIS_NO_TRANSPOSE, K, L, O, &one, b[0], K, 1, b[2], L, 1,
                      &zero, b[4], L, 1);
    }
    return now() - t0;
}

/* One PyTorch repetition of layer name: its forward and forward + backward ms into ms[2];
 * false if the child is gone. */
static bool conv_peer_rep(torch_peer *p, const char *name, double ms[2])
{
    if (!p->to || fprintf(p->to, "%s\n", name) < 0 || fflush(p->to) != 0) return false;
    /* NOLINTNEXTLINE(cert-err34-c): numbers our own helper printed */
    bool ok = fscanf(p->from, "%lf %lf", &ms[0], &ms[1]) == 2;
    usleep(PEER_QUIET_US);
    return ok;
}

static void bench_conv(int threads, int reps)
{
    tg_set_num_threads(threads);
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    tg_tape *tp = tg_tape_new();
    torch_peer peer;
    bool torch = peer_start(&peer, threads, "conv-serve");
    for (int li = 0; li < 2; li++) {
        const conv_layer *l = &CONV_LAYERS[li];
        int64_t xs[4] = {MLP_BATCH, l->C, l->H, l->H}, ws[4] = {l->O, l->C, 3, 3}, bs[1] = {l->O};
        tg_tensor *x = tg_tensor_new(TG_F32, 4, xs), *w = tg_tensor_new(TG_F32, 4, ws);
        tg_tensor *b = tg_tensor_new(TG_F32, 1, bs);
        tg_tensor_rand_uniform(x, 0, 1, &rng);
        tg_tensor_rand_uniform(w, -0.3, 0.3, &rng);
        tg_set_requires_grad(w, true), tg_set_requires_grad(b, true);
        if (l->dx) tg_set_requires_grad(x, true);
        int64_t K = 9 * l->C, L = l->H * l->H;
        int64_t sizes[5] = {l->O * K, K * L, l->O * L, l->O * K, K * L};
        float *rb[5];
        for (int k = 0; k < 5; k++) {
            rb[k] = aligned_alloc(64, (size_t)sizes[k] * 4);
            for (int64_t i = 0; i < sizes[k]; i++) rb[k][i] = 0.01f * (float)(i % (5 + k));
        }
        double *v[4], *tv[2], *ratio[2];
        for (int k = 0; k < 4; k++) v[k] = calloc((size_t)reps, sizeof *v[k]);
        for (int k = 0; k < 2; k++)
            tv[k] = calloc((size_t)reps, sizeof *tv[k]),
            ratio[k] = calloc((size_t)reps, sizeof *ratio[k]);
        const tg_conv2d_opts o = {.padding = {1, 1}};
        for (int r = -1; r < reps; r++) {
            double t[4] = {0, 0, 0, 0};
            for (int i = 0; i < CONV_INNER; i++) {
                double t0 = now();
                tg_tape_reset(tp);
                if (!tg_conv2d(tp, x, w, b, &o)) fprintf(stderr, "bench: %s\n", tg_tape_error(tp));
                double t1 = now();
                tg_tape_reset(tp);
                tg_tensor *y = tg_sum(tp, tg_conv2d(tp, x, w, b, &o), TG_ALL_AXES, false);
                if (!y || tg_backward(tp, y)) fprintf(stderr, "bench: %s\n", tg_tape_error(tp));
                double t2 = now();
                t[0] += t1 - t0, t[1] += t2 - t1;
                t[2] += conv_raw_gemms(l, false, rb);
                t[3] += conv_raw_gemms(l, true, rb);
            }
            double pt[2];
            torch = torch && conv_peer_rep(&peer, l->name, pt);
            for (int k = 0; k < 4 && r >= 0; k++) v[k][r] = 1e3 * t[k] / CONV_INNER;
            for (int k = 0; k < 2 && r >= 0 && torch; k++)
                tv[k][r] = pt[k], ratio[k][r] = pt[k] / v[k][r];
        }
        tg_tape_reset(tp);
        static const char *const what[4] = {"fwd_ms", "fwd_bwd_ms", "raw_gemm_fwd_ms",
                                            "raw_gemm_fwd_bwd_ms"};
        for (int k = 0; k < 4; k++) {
            char key[96];
            snprintf(key, sizeof key, "conv.%s.t%d.%s", l->name, threads, what[k]);
            figure *f = fig(key, "ms", summarise(v[k], reps), false);
            if (k < 2 && torch && f)
                f->torch = summarise(tv[k], reps).med, f->ratio = summarise(ratio[k], reps).med;
            free(v[k]);
        }
        for (int k = 0; k < 2; k++) free(tv[k]), free(ratio[k]);
        for (int k = 0; k < 5; k++) free(rb[k]);
        tg_tensor_free(x), tg_tensor_free(w), tg_tensor_free(b);
    }
    peer_stop(&peer);
    tg_tape_free(tp);
}

/* The CNN of examples/cnn.c as that demo builds it (tg_nn layers, He-uniform weights, Adam
 * lr 1e-3), one training step on each of the MLP's 16 batches in turn (Fashion-MNIST, or
 * random data of its shapes), timed like the MLP's step (the batch copied in first,
 * outside the time), alternating repetition by repetition with PyTorch's same model
 * (bench.py --part cnn-serve). Also the profile's share of the step spent in BLIS calls
 * and in the kernels of conv2d and max_pool2d (GEMMs included). */
#define CNN_STEPS 8

static tg_module *cnn_model(void)
{
    const tg_conv2d_opts conv = {.padding = {1, 1}};
    const tg_pool2d_opts pool = {.kernel = {2, 2}};
    tg_module *net = tg_nn_sequential();
    tg_nn_append(net, tg_nn_conv2d(1, 32, 3, 3, &conv, true, TG_F32));
    tg_nn_append(net, tg_nn_activation("relu", 0, TG_F32));
    tg_nn_append(net, tg_nn_max_pool2d(&pool));
    tg_nn_append(net, tg_nn_conv2d(32, 64, 3, 3, &conv, true, TG_F32));
    tg_nn_append(net, tg_nn_activation("relu", 0, TG_F32));
    tg_nn_append(net, tg_nn_max_pool2d(&pool));
    tg_nn_append(net, tg_nn_flatten());
    tg_nn_append(net, tg_nn_linear(64 * 7 * 7, 128, TG_F32));
    tg_nn_append(net, tg_nn_activation("relu", 0, TG_F32));
    if (tg_nn_append(net, tg_nn_linear(128, 10, TG_F32))) {
        fprintf(stderr, "bench: %s\n", tg_nn_last_status()->msg);
        tg_nn_free(net);
        return NULL;
    }
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    tg_nn_init(net, TG_INIT_HE_UNIFORM, 0, &rng);
    return net;
}

static void bench_cnn(int threads, int reps)
{
    tg_set_num_threads(threads);
    tg_module *net = cnn_model();
    if (!net) return;
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    tg_tensor *bx[MLP_NB], *by[MLP_NB], *params[8];
    int64_t xs[2] = {MLP_BATCH, 784}, ys[1] = {MLP_BATCH}, img[4] = {MLP_BATCH, 1, 28, 28};
    for (int b = 0; b < MLP_NB; b++)
        bx[b] = tg_tensor_new(TG_F32, 2, xs), by[b] = tg_tensor_new(TG_F32, 1, ys);
    tg_tensor *xin = tg_tensor_new(TG_F32, 4, img), *yin = tg_tensor_new(TG_F32, 1, ys);
    if (!fashion_batches(bx, by))
        for (int b = 0; b < MLP_NB; b++) {
            tg_tensor_rand_uniform(bx[b], 0, 1, &rng);
            for (int i = 0; i < MLP_BATCH; i++) tg_set(by[b], i, (double)tg_rng_below(&rng, 10));
        }
    int np = tg_nn_params(net, params, 8);
    tg_optim_opts oo;
    tg_optim_defaults("adam", &oo);
    oo.lr = 1e-3;
    tg_status st;
    tg_optim *opt = tg_optim_new("adam", np, params, &oo, &st);
    tg_tape *tp = tg_tape_new();
    tg_tape_set_profiling(tp, true);
    double *sps = calloc((size_t)reps, sizeof *sps), *tsps = calloc((size_t)reps, sizeof *tsps);
    double *vs = calloc((size_t)reps, sizeof *vs), *share[3];
    for (int k = 0; k < 3; k++) share[k] = calloc((size_t)reps, sizeof *share[k]);
    torch_peer peer;
    bool torch = peer_start(&peer, threads, "cnn-serve");
    int next = 0;
    for (int r = -1; r < reps; r++) {
        double t = 0;
        tg_tape_profile_clear(tp);
        for (int s = 0; s < CNN_STEPS; s++) {
            /* the batch's rows into the [128,1,28,28] input: the same bytes */
            memcpy(tg_data(xin), tg_data(bx[next]), MLP_BATCH * 784 * sizeof(float));
            tg_tensor_copy(yin, by[next]);
            next = (next + 1) % MLP_NB;
            double t0 = now();
            tg_tape_reset(tp);
            tg_optim_zero_grad(opt);
            tg_tensor *loss = tg_cross_entropy(tp, tg_nn_forward(net, tp, xin), yin);
            if (!loss || tg_backward(tp, loss) || tg_optim_step(opt))
                fprintf(stderr, "bench: %s\n", tg_tape_error(tp));
            t += now() - t0;
        }
        tg_profile_row rows[64], gr;
        int nr = tg_tape_profile(tp, rows, 64, &gr);
        double conv = 0, pool = 0;
        for (int i = 0; i < nr && i < 64; i++) {
            double k = rows[i].forward_s + rows[i].backward_s;
            if (strcmp(rows[i].op, "conv2d") == 0) conv += k;
            if (strcmp(rows[i].op, "max_pool2d") == 0) pool += k;
        }
        double tv = torch ? peer_rep(&peer) : (double)NAN;
        if (torch) usleep(PEER_QUIET_US);
        torch = torch && !isnan(tv);
        if (r < 0) continue;
        sps[r] = MLP_BATCH * CNN_STEPS / t, tsps[r] = tv, vs[r] = sps[r] / tv;
        share[0][r] = 100 * (gr.forward_s + gr.backward_s) / t;
        share[1][r] = 100 * conv / t, share[2][r] = 100 * pool / t;
    }
    peer_stop(&peer);
    char key[96];
    snprintf(key, sizeof key, "cnn.t%d.samples_per_s", threads);
    figure *f = fig(key, "samples/s", summarise(sps, reps), true);
    if (torch && f) f->torch = summarise(tsps, reps).med, f->ratio = summarise(vs, reps).med;
    fig_t("cnn.t%d.gemm_time_share", threads, "%", summarise(share[0], reps));
    fig_t("cnn.t%d.conv2d_time_share", threads, "%", summarise(share[1], reps));
    fig_t("cnn.t%d.max_pool2d_time_share", threads, "%", summarise(share[2], reps));
    for (int k = 0; k < 3; k++) free(share[k]);
    free(sps), free(tsps), free(vs);
    tg_tape_free(tp);
    tg_optim_free(opt);
    for (int b = 0; b < MLP_NB; b++) tg_tensor_free(bx[b]), tg_tensor_free(by[b]);
    tg_tensor_free(xin), tg_tensor_free(yin);
    tg_nn_free(net);
}

/* bench --only conv: parts 2b alone (both layers and the CNN at 1 and 2 threads, PyTorch
 * alternating), their figures printed as the full table prints them; no JSON. */
static int bench_only_conv(int reps)
{
    for (int th = 1; th <= 2; th++) bench_conv(th, reps), bench_cnn(th, reps);
    tg_set_num_threads(1);
    printf("%-44s %10s %10s %10s %9s %12s %8s\n", "figure", "unit", "median", "min", "max",
           "PyTorch", "ratio");
    for (int i = 0; i < n_figs; i++) {
        const figure *f = &figs[i];
        printf("%-44s %10s %10.4g %10.4g %9.4g", f->key, f->unit, f->v.med, f->v.lo, f->v.hi);
        if (!isnan(f->torch)) printf(" %12.4g %7.2fx", f->torch, f->ratio);
        printf("\n");
    }
    return 0;
}

/* ---- 1b. large elementwise ops on threads (ops/vecmath.h) ----
 * On 10^6-element f32 tensors, forward + backward of the sum of all elements of: tanh(x),
 * x * w (two tensors), and x itself (the sum alone), at 1 and at 2 threads, alternating one
 * repetition of each. Figures elem.n1000000.<op>.t1 and .t2 (µs), and .t2_speedup, the
 * median of the per-repetition ratios t1 / t2; .raw_<op>.t2_speedup the same for raw loops
 * doing the same passes (elem_raw_once), alternating with them, and .raw_copy a copy. */
static double elem_once(tg_tape *tp, int op, tg_tensor *x, tg_tensor *w)
{
    tg_tape_reset(tp);
    tg_zero_grad(x);
    double t0 = now();
    tg_tensor *y = op == 0 ? tg_tanh(tp, x) : op == 1 ? tg_mul(tp, x, w) : x;
    if (tg_backward(tp, tg_sum(tp, y, TG_ALL_AXES, false)) != TG_OK)
        fprintf(stderr, "bench: %s\n", tg_tape_error(tp));
    double t = now() - t0;
    sink += tg_get(tg_grad(x), 0);
    return t * 1e6;
}

/* The same passes as raw OpenMP loops over preallocated buffers, split in th equal parts:
 * the least memory traffic of tapegrad's fwd + bwd of each op (forward, the sum, the sum's
 * gradient filled with 1, the op's gradient), and (op 3) a plain copy y = x. Their 2-thread
 * speedup is the ceiling the machine sets for the elem figures. */
typedef struct elem_bufs {
    float *x, *w, *y, *gy, *gx;
} elem_bufs;
static float raw_sum(const float *a, int64_t n, int th)
{
    float s = 0;
#pragma omp parallel for num_threads(th) reduction(+ : s)
    for (int t = 0; t < th; t++) {
        const int64_t i0 = n * t / th, i1 = n * (t + 1) / th;
        float acc[8] = {0};
        int64_t i = i0;
        for (; i + 8 <= i1; i += 8)
            for (int k = 0; k < 8; k++) acc[k] += a[i + k];
        for (; i < i1; i++) acc[0] += a[i];
        for (int k = 0; k < 8; k++) s += acc[k];
    }
    return s;
}
static double elem_raw_once(int op, const elem_bufs *b, int64_t n, int th)
{
    float *restrict x = b->x, *restrict w = b->w, *restrict y = b->y, *restrict gy = b->gy,
                    *restrict gx = b->gx;
    double t0 = now();
    if (op == 3) {
#pragma omp parallel for num_threads(th)
        for (int64_t i = 0; i < n; i++) y[i] = x[i];
        return (now() - t0) * 1e6;
    }
    if (op == 0) {
#pragma omp parallel for num_threads(th)
        for (int t = 0; t < th; t++)
            tg_vm_tanh_f32(x + n * t / th, y + n * t / th, n * (t + 1) / th - n * t / th);
    } else if (op == 1) {
#pragma omp parallel for num_threads(th)
        for (int64_t i = 0; i < n; i++) y[i] = x[i] * w[i];
    }
    sink += (double)raw_sum(op == 2 ? x : y, n, th);
    float *g = op == 2 ? gx : gy;
#pragma omp parallel for num_threads(th)
    for (int64_t i = 0; i < n; i++) g[i] = 1;
    if (op == 0) {
#pragma omp parallel for num_threads(th)
        for (int64_t i = 0; i < n; i++) gx[i] = gy[i] * (1 - y[i] * y[i]);
    } else if (op == 1) {
#pragma omp parallel for num_threads(th)
        for (int64_t i = 0; i < n; i++) gx[i] = gy[i] * w[i];
    }
    sink += (double)gx[n / 2];
    return (now() - t0) * 1e6;
}

static void bench_elem(int reps)
{
    static const char *const names[4] = {"tanh", "mul", "sum", "copy"};
    const int64_t n = 1000000;
    tg_rng rng;
    tg_rng_seed(&rng, 3);
    tg_tensor *x = tg_tensor_new(TG_F32, 1, &n), *w = tg_tensor_new(TG_F32, 1, &n);
    tg_tensor_rand_uniform(x, -2, 2, &rng);
    tg_tensor_rand_uniform(w, -1, 1, &rng);
    tg_set_requires_grad(x, true);
    tg_tape *tp = tg_tape_new();
    elem_bufs rb = {NULL, NULL, NULL, NULL, NULL};
    float **bufs[5] = {&rb.x, &rb.w, &rb.y, &rb.gy, &rb.gx};
    for (int i = 0; i < 5; i++) {
        *bufs[i] = aligned_alloc(64, (size_t)n * sizeof(float));
        if (*bufs[i]) memcpy(*bufs[i], tg_data(i == 1 ? w : x), (size_t)n * sizeof(float));
    }
    double *t1 = calloc((size_t)reps, sizeof *t1), *t2 = calloc((size_t)reps, sizeof *t2);
    double *sp = calloc((size_t)reps, sizeof *sp), *rsp = calloc((size_t)reps, sizeof *rsp);
    for (int op = 0; op < 4; op++) {
        const bool raw = rb.x && rb.w && rb.y && rb.gy && rb.gx;
        if (op == 3 && !raw) break;
        for (int r = -1; r < reps; r++) { /* r = -1 warms up */
            double a = 0, b = 1, ra = 0, rbt = 1;
            if (op < 3) {
                tg_set_num_threads(1);
                a = elem_once(tp, op, x, w);
                tg_set_num_threads(2);
                b = elem_once(tp, op, x, w);
            }
            if (raw) ra = elem_raw_once(op, &rb, n, 1), rbt = elem_raw_once(op, &rb, n, 2);
            if (r >= 0) t1[r] = a, t2[r] = b, sp[r] = a / b, rsp[r] = ra / rbt;
        }
        char key[96];
        if (op < 3) {
            snprintf(key, sizeof key, "elem.n1000000.%s.t1", names[op]);
            fig(key, "us", summarise(t1, reps), false);
            snprintf(key, sizeof key, "elem.n1000000.%s.t2", names[op]);
            fig(key, "us", summarise(t2, reps), false);
            snprintf(key, sizeof key, "elem.n1000000.%s.t2_speedup", names[op]);
            fig(key, "x", summarise(sp, reps), true);
        }
        if (raw) {
            snprintf(key, sizeof key, "elem.n1000000.raw_%s.t2_speedup", names[op]);
            fig(key, "x", summarise(rsp, reps), true);
        }
    }
    tg_set_num_threads(1);
    for (int i = 0; i < 5; i++) free(*bufs[i]);
    free(t1), free(t2), free(sp), free(rsp);
    tg_tape_free(tp);
    tg_tensor_free(x), tg_tensor_free(w);
}

/* The figures so far, one a line (the --only runs: no JSON). */
static void print_figs(void)
{
    for (int i = 0; i < n_figs; i++) {
        const figure *f = &figs[i];
        printf("%-44s %10s %10.4g %10.4g %9.4g", f->key, f->unit, f->v.med, f->v.lo, f->v.hi);
        if (f->tg_what[0]) /* a side-by-side figure: tapegrad's, and the ratio */
            printf("   tapegrad %s %.4g, x%.3g", f->tg_what, f->tg, f->ratio);
        printf("\n");
    }
}

/* The chain recorded and swept untimed for secs before the first timed figures: a fresh
 * process's first tenths of a second ran the 1-element chain up to 1.8x slower here (f32
 * record + sweep 53-56 ns in two runs of three, against 30.6 in all three after 0.3 s of
 * this). */
#define WARM_UP_S 0.3
static void warm_up(double secs)
{
    int64_t one = 1;
    tg_tensor *x = tg_tensor_new(TG_F32, 1, &one);
    tg_set_requires_grad(x, true);
    tg_tape *tp = tg_tape_new();
    for (double t0 = now(); now() - t0 < secs;) {
        tg_tape_reset(tp);
        tg_backward(tp, tg_sum(tp, chain(tp, x, 1000), TG_ALL_AXES, false));
    }
    tg_tape_free(tp);
    tg_tensor_free(x);
}

/* bench --only elem: part 1b alone; --only overhead: the 1-, 64- and 4096-element chains of
 * part 1 alone (no PyTorch). Their figures printed as the full table prints them; no JSON. */
static int bench_only_elem(bool overhead, int reps)
{
    tg_set_num_threads(1);
    warm_up(WARM_UP_S);
    if (overhead)
        for (int d = 0; d < 2; d++)
            for (int64_t sz = 1; sz <= 4096; sz *= 64) {
                char tag[16];
                snprintf(tag, sizeof tag, "n%lld", (long long)sz);
                bench_overhead(d ? TG_F64 : TG_F32, sz, 1000, reps, true, tag);
            }
    else bench_elem(reps);
    print_figs();
    return 0;
}

/* ---- 3b. Hessian-vector product on the bench MLP ----
 * The MLP of part 2 (784-256-256-10 relu, batch 128, cross-entropy) in f32 and f64: one
 * gradient (forward + tg_backward) against one Hessian-vector product (forward, the
 * gradient recorded by tg_gradients, then the gradient of Σ g·v without recording), on the
 * same tape, alternating, 1 thread. PyTorch's figure is its double-backward HVP
 * (autograd.grad with create_graph=True, then autograd.grad of Σ g·v). */
typedef struct hvp_case {
    tg_module *net;
    tg_tensor *x, *y, *params[6], *v[6];
    int np;
} hvp_case;

static tg_tensor *hvp_loss(tg_tape *tp, hvp_case *c)
{
    return tg_cross_entropy(tp, tg_nn_forward(c->net, tp, c->x), c->y);
}

static double hvp_once(tg_tape *tp, hvp_case *c, bool hvp)
{
    double t0 = now();
    tg_tape_reset(tp);
    tg_tensor *loss = hvp_loss(tp, c);
    if (!hvp) {
        for (int i = 0; i < c->np; i++) tg_zero_grad(c->params[i]);
        if (tg_backward(tp, loss)) fprintf(stderr, "bench: %s\n", tg_tape_error(tp));
        return now() - t0;
    }
    tg_tensor *g[6], *hv[6], *s = NULL;
    if (tg_gradients(tp, loss, NULL, c->np, c->params, g, TG_GRAD_RECORD) == 0)
        for (int i = 0; i < c->np; i++) {
            tg_tensor *d = tg_sum(tp, tg_mul(tp, g[i], c->v[i]), TG_ALL_AXES, false);
            s = s ? tg_add(tp, s, d) : d;
        }
    if (!s || tg_gradients(tp, s, NULL, c->np, c->params, hv, 0))
        fprintf(stderr, "bench: %s\n", tg_tape_error(tp));
    else sink += tg_get(hv[0], 0);
    return now() - t0;
}

static void bench_hvp(tg_dtype dt, int reps)
{
    hvp_case c;
    tg_status st;
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    c.net = tg_nn_mlp(4, MLP_SIZES, "relu", 0, false, dt, &st);
    tg_nn_init(c.net, TG_INIT_HE_UNIFORM, 0, &rng);
    c.np = tg_nn_params(c.net, c.params, 6);
    int64_t xs[2] = {MLP_BATCH, 784};
    c.x = tg_tensor_new(dt, 2, xs), c.y = tg_tensor_new(dt, 1, xs);
    tg_tensor_rand_uniform(c.x, 0, 1, &rng);
    for (int i = 0; i < MLP_BATCH; i++) tg_set(c.y, i, (double)tg_rng_below(&rng, 10));
    for (int i = 0; i < c.np; i++) {
        c.v[i] = tg_tensor_new(dt, tg_tensor_ndim(c.params[i]), tg_tensor_shape(c.params[i]));
        tg_tensor_rand_normal(c.v[i], 0, 1, &rng);
    }
    tg_tape *tp = tg_tape_new();
    const int inner = 10;
    double *tg = calloc((size_t)reps, sizeof *tg), *th = calloc((size_t)reps, sizeof *th);
    double *ratio = calloc((size_t)reps, sizeof *ratio);
    for (int r = -1; r < reps; r++) {
        double a = 0, b = 0;
        for (int k = 0; k < inner; k++) a += hvp_once(tp, &c, false), b += hvp_once(tp, &c, true);
        if (r >= 0) tg[r] = 1e3 * a / inner, th[r] = 1e3 * b / inner, ratio[r] = b / a;
    }
    const char *d = dt == TG_F32 ? "f32" : "f64";
    char key[96];
    snprintf(key, sizeof key, "hvp.%s.gradient_ms", d);
    fig(key, "ms", summarise(tg, reps), false);
    snprintf(key, sizeof key, "hvp.%s.hvp_ms", d);
    fig(key, "ms", summarise(th, reps), false);
    snprintf(key, sizeof key, "hvp.%s.hvp_over_gradient", d);
    fig(key, "x", summarise(ratio, reps), false);
    free(tg), free(th), free(ratio);
    tg_tape_free(tp);
    for (int i = 0; i < c.np; i++) tg_tensor_free(c.v[i]);
    tg_tensor_free(c.x), tg_tensor_free(c.y);
    tg_nn_free(c.net);
}

/* ---- 1b. ADOL-C side by side on the 1-element chain (bench/adolc_chain.cpp) ----
 * The f64 chain of section 1 on 1-element tensors (K = 1000 ops) written with ADOL-C's
 * adoubles, in a child process (built from bench/adolc_chain.cpp when libadolc-dev is
 * installed) that answers one repetition per request, like the PyTorch MLP: a repetition of
 * tapegrad's (ADOLC_INNER chains recorded and swept) and one of ADOL-C's (ADOLC_INNER
 * records, reverses, replays at new inputs and replays + reverses) alternate, so that both
 * see the same load, and each ratio is the median of the per-repetition ratios. Within a
 * repetition each side reports the median over its chains (as section 1 takes the median
 * over single chains), so that a chain the scheduler interrupted does not count. */
#define ADOLC_K 1000
#define ADOLC_INNER 40

static const char *adolc_helper; /* --adolc PATH; NULL: not asked for */

typedef struct adolc_result {
    bool ran;      /* the helper answered and its figures are in figs[] */
    bool check_ok; /* its gradients equal tapegrad's within 1e-12 */
    char version[64];
    char note[320];  /* why it was skipped, or what went wrong */
    char check[512]; /* the check line */
    bool in_memory;  /* no part of ADOL-C's tape went to a file */
    int cpu;         /* the CPU both processes were pinned to, or -1 */
    double ops_kind[4], ops_fixed, ops_per_op;
    double max_diff;
} adolc_result;
static adolc_result adolc = {.version = "", .note = "", .cpu = -1};

/* the "key value" lines the helper prints before "ready" */
typedef struct adolc_kv {
    char key[32], val[64];
} adolc_kv;

static const char *kv_str(const adolc_kv *kv, int n, const char *key)
{
    for (int i = 0; i < n; i++)
        if (strcmp(kv[i].key, key) == 0) return kv[i].val;
    return NULL;
}

static double kv_num(const adolc_kv *kv, int n, const char *key)
{
    const char *v = kv_str(kv, n, key);
    /* NOLINTNEXTLINE(cert-err34-c): numbers our own helper printed; a bad read is NaN */
    return v ? atof(v) : (double)NAN;
}

/* Starts the helper in its own directory (any tape file ADOL-C writes, and the .adolcrc it
 * reads, are there: the build directory), reads its description into kv; false if it
 * could not be started or did not say "ready". */
static bool adolc_start(torch_peer *p, const char *helper, double x0, adolc_kv *kv, int *nkv)
{
    *p = (torch_peer){0}, *nkv = 0;
    char path[4096], dir[4096];
    if (!realpath(helper, path)) return false;
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0;
    int to[2], from[2];
    if (pipe(to) != 0) return false;
    if (pipe(from) != 0) {
        close(to[0]), close(to[1]);
        return false;
    }
    fflush(NULL);
    p->pid = fork();
    if (p->pid == 0) {
        char ks[32], xs[64];
        snprintf(ks, sizeof ks, "%d", ADOLC_K);
        snprintf(xs, sizeof xs, "%.17g", x0);
        dup2(to[0], 0), dup2(from[1], 1);
        close(to[0]), close(to[1]), close(from[0]), close(from[1]);
        if (chdir(dir) != 0) _exit(127);
        execl(path, "adolc_chain", "--k", ks, "--x0", xs, (char *)NULL);
        _exit(127);
    }
    close(to[0]), close(from[1]);
    if (p->pid < 0) {
        close(to[1]), close(from[0]);
        *p = (torch_peer){0};
        return false;
    }
    p->to = fdopen(to[1], "w"), p->from = fdopen(from[0], "r");
    char line[256];
    while (p->to && p->from && fgets(line, sizeof line, p->from)) {
        if (strncmp(line, "ready", 5) == 0) return true;
        if (*nkv < 64 && sscanf(line, "%31s %63s", kv[*nkv].key, kv[*nkv].val) == 2) (*nkv)++;
    }
    peer_stop(p);
    return false;
}

/* one request line to the helper, its answer's first n numbers into v; false if it is gone */
static bool adolc_ask(torch_peer *p, const char *req, double *v, int n)
{
    if (!p->to || fputs(req, p->to) == EOF || fflush(p->to) != 0) return false;
    for (int i = 0; i < n; i++)
        /* NOLINTNEXTLINE(cert-err34-c): numbers our own helper printed; a bad read is NaN */
        if (fscanf(p->from, "%lf", &v[i]) != 1) return false;
    return true;
}

/* tapegrad's f = sum(chain(x)) and df/dx at x = v */
static void tg_chain_grad(tg_tape *tp, tg_tensor *x, double v, double *f, double *g)
{
    tg_set(x, 0, v);
    tg_tape_reset(tp);
    tg_tensor *s = tg_sum(tp, chain(tp, x, ADOLC_K), TG_ALL_AXES, false);
    tg_zero_grad(x);
    if (!s || tg_backward(tp, s)) fprintf(stderr, "bench: %s\n", tg_tape_error(tp));
    *f = s ? tg_get(s, 0) : (double)NAN;
    *g = tg_grad(x) ? tg_get(tg_grad(x), 0) : (double)NAN;
}

/* One repetition of tapegrad's: ADOLC_INNER times, record (tape reset, chain, sum) and
 * sweep, then replay (tg_tape_replay) and sweep; the medians over the chains of the ns per
 * chain op of the record, the sweep, the two, the replay and replay + sweep into t[0..4]. */
static void tg_chain_rep(tg_tape *tp, tg_tensor *x, double t[5])
{
    double tr[ADOLC_INNER], tb[ADOLC_INNER], tt[ADOLC_INNER], per = 1e9 / ADOLC_K;
    double tp1[ADOLC_INNER], tpb[ADOLC_INNER];
    for (int j = 0; j < ADOLC_INNER; j++) {
        double t0 = now();
        tg_tape_reset(tp);
        tg_tensor *s = tg_sum(tp, chain(tp, x, ADOLC_K), TG_ALL_AXES, false);
        double t1 = now();
        tg_zero_grad(x);
        double t2 = now();
        if (!s || tg_backward(tp, s)) fprintf(stderr, "bench: %s\n", tg_tape_error(tp));
        double t3 = now();
        if (tg_tape_replay(tp)) fprintf(stderr, "bench: %s\n", tg_tape_error(tp));
        double t4 = now();
        tg_zero_grad(x);
        double t5 = now();
        if (tg_backward(tp, s)) fprintf(stderr, "bench: %s\n", tg_tape_error(tp));
        double t6 = now();
        tr[j] = (t1 - t0) * per, tb[j] = (t3 - t2) * per, tt[j] = tr[j] + tb[j];
        tp1[j] = (t4 - t3) * per, tpb[j] = tp1[j] + (t6 - t5) * per;
    }
    t[0] = summarise(tr, ADOLC_INNER).med, t[1] = summarise(tb, ADOLC_INNER).med;
    t[2] = summarise(tt, ADOLC_INNER).med, t[3] = summarise(tp1, ADOLC_INNER).med;
    t[4] = summarise(tpb, ADOLC_INNER).med;
}

/* an adolc.* figure: ADOL-C's value, tapegrad's alongside, the ratio */
static void adolc_fig(const char *key, const char *unit, stat3 v, double tg, const char *what,
                      double ratio)
{
    figure *f = fig(key, unit, v, false);
    if (!f) return;
    f->tg = tg, f->ratio = ratio;
    snprintf(f->tg_what, sizeof f->tg_what, "%s", what);
}

/* bench_adolc's part with the helper running. */
static void adolc_run(torch_peer *pp, tg_tape *tp, tg_tensor *x, double x0, double x1, adolc_kv *kv,
                      int nkv, int reps)
{
    torch_peer p = *pp; /* stopped here */
    snprintf(adolc.version, sizeof adolc.version, "%s",
             kv_str(kv, nkv, "version") ? kv_str(kv, nkv, "version") : "unknown");
    const char *kind[4] = {"ops_mul", "ops_add", "ops_tanh", "ops_addx"};
    for (int i = 0; i < 4; i++) adolc.ops_kind[i] = kv_num(kv, nkv, kind[i]);
    adolc.ops_fixed = kv_num(kv, nkv, "ops_fixed");
    double k = kv_num(kv, nkv, "k");
    adolc.ops_per_op = kv_num(kv, nkv, "num_operations") / k;
    double spilled = kv_num(kv, nkv, "op_file") + kv_num(kv, nkv, "loc_file") +
                     kv_num(kv, nkv, "val_file") + kv_num(kv, nkv, "tay_file");
    adolc.in_memory = spilled == 0;
    if (k != ADOLC_K || isnan(adolc.ops_per_op) || isnan(spilled)) {
        snprintf(adolc.note, sizeof adolc.note, "%s described its tape incompletely", adolc_helper);
        peer_stop(&p);
        return;
    }

    /* the check: ADOL-C's gradient after recording at x0, and after replaying at x1, against
     * tapegrad's at the same points */
    double ad[4], f0, g0, f1, g1;
    char req[128];
    snprintf(req, sizeof req, "check %.17g %.17g\n", x0, x1);
    tg_chain_grad(tp, x, x0, &f0, &g0);
    tg_chain_grad(tp, x, x1, &f1, &g1);
    tg_set(x, 0, x0);
    if (!adolc_ask(&p, req, ad, 4)) {
        snprintf(adolc.note, sizeof adolc.note, "%s stopped answering", adolc_helper);
        peer_stop(&p);
        return;
    }
    double d0 = fabs(ad[1] - g0), d1 = fabs(ad[3] - g1);
    adolc.max_diff = fmax(d0, d1);
    /* 1e-12 absolute for gradients of size up to 1, relative above */
    adolc.check_ok = d0 <= 1e-12 * fmax(1, fabs(g0)) && d1 <= 1e-12 * fmax(1, fabs(g1));
    snprintf(adolc.check, sizeof adolc.check,
             "ADOL-C check, d sum(chain(x))/dx in f64, recorded at x = %.6f: ADOL-C %.17g, "
             "tapegrad %.17g (|diff| %.1e); replayed at x = %.6f: ADOL-C %.17g, tapegrad %.17g "
             "(|diff| %.1e); values %.1e / %.1e apart: %s",
             x0, ad[1], g0, d0, x1, ad[3], g1, d1, fabs(ad[0] - f0), fabs(ad[2] - f1),
             adolc.check_ok ? "ok (within 1e-12)" : "FAILED (beyond 1e-12)");

    /* the paired repetitions (r = -1 warms both up) */
    double *v[16];
    for (int i = 0; i < 16; i++) v[i] = calloc((size_t)reps, sizeof *v[i]);
    /* v[0..4]: ADOL-C record, reverse, record+reverse, replay, replay+reverse;
     * v[5..6]: tapegrad record, sweep; v[7]: tapegrad record+sweep; v[8..12]: the ratios;
     * v[13..14]: tapegrad replay, replay+sweep */
    bool ok = true;
    for (int r = -1; r < reps && ok; r++) {
        double t[5], a[5];
        tg_chain_rep(tp, x, t);
        char rq[32];
        snprintf(rq, sizeof rq, "rep %d\n", ADOLC_INNER);
        ok = adolc_ask(&p, rq, a, 5);
        if (!ok || r < 0) continue;
        for (int i = 0; i < 5; i++) v[i][r] = a[i], v[8 + i][r] = a[i] / t[i];
        v[5][r] = t[0], v[6][r] = t[1], v[7][r] = t[2], v[13][r] = t[3], v[14][r] = t[4];
    }
    peer_stop(&p);
    if (!ok) {
        snprintf(adolc.note, sizeof adolc.note, "%s stopped answering", adolc_helper);
    } else {
        double tg_rec = summarise(v[5], reps).med, tg_rev = summarise(v[6], reps).med;
        double tg_rr = summarise(v[7], reps).med;
        adolc_fig("adolc.n1.record", "ns/op", summarise(v[0], reps), tg_rec, "record",
                  summarise(v[8], reps).med);
        adolc_fig("adolc.n1.reverse", "ns/op", summarise(v[1], reps), tg_rev, "sweep",
                  summarise(v[9], reps).med);
        adolc_fig("adolc.n1.record_reverse", "ns/op", summarise(v[2], reps), tg_rr,
                  "record + sweep", summarise(v[10], reps).med);
        adolc_fig("adolc.n1.replay", "ns/op", summarise(v[3], reps), summarise(v[13], reps).med,
                  "replay", summarise(v[11], reps).med);
        adolc_fig("adolc.n1.replay_reverse", "ns/op", summarise(v[4], reps),
                  summarise(v[14], reps).med, "replay + sweep", summarise(v[12], reps).med);
        /* bytes: ADOL-C's tape (operations, locations, values) against tapegrad's arena per
         * node, for the chain alone, as memory.tape_bytes_per_node_n1 but in f64 */
        tg_tape_reset(tp);
        (void)chain(tp, x, ADOLC_K);
        tg_tape_stats st;
        tg_tape_get_stats(tp, &st);
        double tg_bytes = (double)st.arena_used / (double)st.n_nodes;
        double ad_bytes = kv_num(kv, nkv, "tape_bytes") / k,
               tay = kv_num(kv, nkv, "taylor_bytes") / k;
        adolc_fig("adolc.n1.bytes_per_op", "bytes", (stat3){ad_bytes, ad_bytes, ad_bytes}, tg_bytes,
                  "arena bytes per node", ad_bytes / tg_bytes);
        adolc_fig("adolc.n1.taylor_bytes_per_op", "bytes", (stat3){tay, tay, tay}, (double)NAN, "",
                  (double)NAN);
        adolc_fig("adolc.n1.primitive_ops_per_op", "ops",
                  (stat3){adolc.ops_per_op, adolc.ops_per_op, adolc.ops_per_op}, 1, "node",
                  (double)NAN);
        adolc.ran = true;
    }
    for (int i = 0; i < 16; i++) free(v[i]);
}

static void bench_adolc(int reps)
{
    if (!adolc_helper) {
        snprintf(adolc.note, sizeof adolc.note,
                 "not asked for (bench --adolc PATH; make bench passes it)");
        return;
    }
    if (access(adolc_helper, X_OK) != 0) {
        snprintf(adolc.note, sizeof adolc.note,
                 "%s was not built: ADOL-C is not installed (make bench-deps as root, or "
                 "apt-get install libadolc-dev)",
                 adolc_helper);
        return;
    }
    int64_t shape[1] = {1};
    tg_tensor *x = tg_tensor_new(TG_F64, 1, shape); /* x as in section 1's f64 n1 chain */
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    tg_tensor_rand_uniform(x, -1, 1, &rng);
    tg_set_requires_grad(x, true);
    double x0 = tg_get(x, 0), x1 = x0 + 0.5; /* x1: the check's replay input */
    tg_tape *tp = tg_tape_new();
    torch_peer p;
    adolc_kv kv[64];
    int nkv;
    /* Both engines on one CPU: this machine's two CPUs are not always equally fast
     * (docs/performance.md, "Which CPU"), and the helper is a process of its own, which
     * inherits the mask. */
    cpu_set_t mask, one;
    adolc.cpu = -1;
    if (sched_getaffinity(0, sizeof mask, &mask) == 0 && (adolc.cpu = sched_getcpu()) >= 0) {
        CPU_ZERO(&one);
        CPU_SET(adolc.cpu, &one);
        if (sched_setaffinity(0, sizeof one, &one) != 0) adolc.cpu = -1;
    }
    if (adolc_start(&p, adolc_helper, x0, kv, &nkv)) adolc_run(&p, tp, x, x0, x1, kv, nkv, reps);
    else snprintf(adolc.note, sizeof adolc.note, "%s did not start", adolc_helper);
    if (adolc.cpu >= 0) sched_setaffinity(0, sizeof mask, &mask);
    tg_tape_free(tp), tg_tensor_free(x);
}

/* the ADOL-C part of the table */
static void print_adolc(int reps)
{
    if (!adolc.ran) {
        printf("ADOL-C comparison skipped: %s\n", adolc.note[0] ? adolc.note : "not run");
        return;
    }
    char cpu[48];
    if (adolc.cpu >= 0) snprintf(cpu, sizeof cpu, "both processes on CPU %d", adolc.cpu);
    else snprintf(cpu, sizeof cpu, "not pinned to one CPU");
    printf(
        "ADOL-C %s side by side (bench/adolc_chain.cpp): the 1-element f64 chain of %d ops, "
        "%d repetitions of %d chains alternating with tapegrad's, %s, the tape %s; per op of the "
        "chain, i.e. per tapegrad node; ADOL-C records %.2f primitive ops per chain op (mul "
        "%g, add %g, tanh %g, add x %g; %g more per tape)\n",
        adolc.version, ADOLC_K, reps, ADOLC_INNER, cpu,
        adolc.in_memory ? "in memory (no tape file written)" : "SPILLED TO FILES (see build/)",
        adolc.ops_per_op, adolc.ops_kind[0], adolc.ops_kind[1], adolc.ops_kind[2],
        adolc.ops_kind[3], adolc.ops_fixed);
    printf("%-32s %6s %9s %9s %9s %10s  %-22s %7s\n", "figure", "unit", "ADOL-C", "min", "max",
           "tapegrad", "(tapegrad figure)", "ratio");
    for (int i = 0; i < n_figs; i++) {
        figure *f = &figs[i];
        if (strncmp(f->key, "adolc.", 6) != 0) continue;
        printf("%-32s %6s %9.4g %9.4g %9.4g", f->key, f->unit, f->v.med, f->v.lo, f->v.hi);
        if (!isnan(f->tg)) printf(" %10.4g  %-22s", f->tg, f->tg_what);
        if (!isnan(f->ratio)) printf(" %6.2fx", f->ratio);
        printf("\n");
    }
    printf("ratio: ADOL-C / tapegrad, how many times faster (or smaller) tapegrad is; the time "
           "ratios are medians of per-repetition ratios. ADOL-C's record and replay keep the "
           "Taylor values a reverse needs (trace_on(tag, 1), zos_forward keep = 1); tapegrad "
           "replays its tape (tg_tape_replay)\n");
    printf("%s\n", adolc.check);
}

/* ---- 4. peak RSS of a training run of the tapegrad command ---- */
static double child_peak_rss_mb(char *const argv[])
{
    pid_t pid = fork();
    if (pid < 0) return (double)NAN;
    if (pid == 0) {
        if (!freopen("/dev/null", "w", stdout)) _exit(127);
        execv(argv[0], argv);
        _exit(127);
    }
    int status;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) < 0 || !WIFEXITED(status) || WEXITSTATUS(status))
        return (double)NAN;
    return (double)ru.ru_maxrss / 1024.0;
}

/* ---- PyTorch: bench/torch/bench.py prints "key value" lines ---- */
static bool run_torch(const char *script, int reps, bool quick)
{
    if (access("/usr/bin/python3", X_OK) != 0) return false;
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s --reps %d%s 2>/dev/null", script, reps,
             quick ? " --quick" : "");
    FILE *p = popen(cmd, "r");
    if (!p) return false;
    char key[128];
    double v;
    int got = 0;
    /* NOLINTNEXTLINE(cert-err34-c): numbers our own helper printed; a bad read is NaN */
    while (fscanf(p, "%127s %lf", key, &v) == 2) {
        figure *f = find_fig(key);
        if (f) f->torch = v, got++;
        else if (strncmp(key, "version", 7) == 0) continue;
    }
    pclose(p);
    return got > 0;
}

/* PyTorch's version string, or "" without it */
static void torch_version(char *buf, size_t size)
{
    buf[0] = 0;
    if (access("/usr/bin/python3", X_OK) != 0) return;
    FILE *p =
        popen("/usr/bin/python3 -c 'import torch; print(torch.__version__)' 2>/dev/null", "r");
    if (!p) return;
    if (!fgets(buf, (int)size, p)) buf[0] = 0;
    buf[strcspn(buf, "\n")] = 0;
    pclose(p);
}

#ifndef TG_GIT_REV
#define TG_GIT_REV "unknown"
#endif

static void cpu_model(char *buf, size_t size)
{
    snprintf(buf, size, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "model name", 10) == 0) {
            char *c = strchr(line, ':');
            if (c) snprintf(buf, size, "%s", c + 2);
            buf[strcspn(buf, "\n")] = 0;
            break;
        }
    fclose(f);
}

/* ---- distributed: data-parallel samples/s at 1 and 2 ranks, PyTorch DDP (gloo) beside ----
 * build/dist_bench (bench/dist_bench.c) under mpirun, alternating with bench/torch/ddp.py,
 * the same model, batch and step count; one thread per rank. Skipped without the binary. */
static const char *dist_bench = NULL;

static double dist_run(const char *cmd, const char *key, double *wait_share)
{
    FILE *p = popen(cmd, "r");
    if (!p) return (double)NAN;
    char line[512], k[96];
    double v = (double)NAN, x, w;
    while (fgets(line, sizeof line, p)) {
        /* NOLINTNEXTLINE(cert-err34-c): the line of our own program; a miss leaves NAN */
        int got = sscanf(line, "%95s %lf (wait share %lf", k, &x, &w);
        if (got >= 2 && strcmp(k, key) == 0) v = x;
        if (got == 3 && wait_share) *wait_share = w;
    }
    return pclose(p) == 0 ? v : (double)NAN;
}

static void bench_dist(int reps)
{
    if (!dist_bench || access(dist_bench, X_OK) != 0) return;
    for (int np = 1; np <= 2; np++) {
        double tg[16], th[16], ratio[16], wait[16];
        int n = 0;
        char cmd[512], key[64], tkey[64];
        for (int r = 0; r < reps && r < 16; r++) {
            snprintf(cmd, sizeof cmd,
                     "mpirun -np %d --oversubscribe --allow-run-as-root -x OMP_NUM_THREADS=1 "
                     "%s 200 256 2>/dev/null",
                     np, dist_bench);
            snprintf(key, sizeof key, "dist.np%d.samples_per_s", np);
            wait[n] = (double)NAN;
            tg[n] = dist_run(cmd, key, &wait[n]);
            snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/ddp.py --np %d 2>/dev/null",
                     "bench/torch", np);
            snprintf(tkey, sizeof tkey, "torch.dist.np%d.samples_per_s", np);
            th[n] = dist_run(cmd, tkey, NULL);
            if (isnan(tg[n])) break;
            ratio[n] = tg[n] / th[n];
            n++;
        }
        if (n == 0) continue;
        figure *f = fig(key, "samples/s", summarise(tg, n), true);
        if (f && !isnan(th[0])) f->torch = summarise(th, n).med, f->ratio = summarise(ratio, n).med;
        snprintf(key, sizeof key, "dist.np%d.wait_share", np);
        fig(key, "%", summarise(wait, n), false);
    }
    /* What two ranks could reach on this machine: two independent 1-rank runs at once (not
     * bound to a core, or mpirun would bind both to core 0), their samples/s summed,
     * alternating with a 2-rank run; the ratio of the two is the share the lock step and
     * the allreduce leave */
    double pair[16], over[16];
    int n = 0;
    for (int r = 0; r < reps && r < 16; r++) {
        char cmd[512];
        snprintf(cmd, sizeof cmd,
                 "mpirun -np 1 --bind-to none --oversubscribe --allow-run-as-root "
                 "-x OMP_NUM_THREADS=1 %s 200 256 2>/dev/null",
                 dist_bench);
        FILE *p[2] = {popen(cmd, "r"), popen(cmd, "r")};
        double v[2] = {(double)NAN, (double)NAN};
        for (int i = 0; i < 2; i++) {
            char line[512], k[96];
            double x;
            while (p[i] && fgets(line, sizeof line, p[i])) {
                /* NOLINTNEXTLINE(cert-err34-c): the line of our own program; a miss leaves NAN */
                if (sscanf(line, "%95s %lf", k, &x) == 2 && !strcmp(k, "dist.np1.samples_per_s"))
                    v[i] = x;
            }
            if (p[i] && pclose(p[i]) != 0) v[i] = (double)NAN;
        }
        snprintf(cmd, sizeof cmd,
                 "mpirun -np 2 --oversubscribe --allow-run-as-root -x OMP_NUM_THREADS=1 "
                 "%s 200 256 2>/dev/null",
                 dist_bench);
        double two = dist_run(cmd, "dist.np2.samples_per_s", NULL);
        if (isnan(v[0] + v[1] + two)) break;
        pair[n] = v[0] + v[1], over[n] = two / pair[n];
        n++;
    }
    if (n == 0) return;
    fig("dist.np1_pair.samples_per_s", "samples/s", summarise(pair, n), true);
    fig("dist.np2_over_np1_pair", "x", summarise(over, n), true);
}

int main(int argc, char **argv)
{
    bool quick = false, only_conv = false;
    const char *only_elem = NULL;
    const char *json = "build/bench.json", *cli = "build/tapegrad";
    signal(SIGPIPE, SIG_IGN); /* a PyTorch child that dies must not kill the bench */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) quick = true;
        else if (strcmp(argv[i], "--json") == 0 && i + 1 < argc) json = argv[++i];
        else if (strcmp(argv[i], "--cli") == 0 && i + 1 < argc) cli = argv[++i];
        else if (strcmp(argv[i], "--torch") == 0 && i + 1 < argc) torch_script = argv[++i];
        else if (strcmp(argv[i], "--adolc") == 0 && i + 1 < argc) adolc_helper = argv[++i];
        else if (strcmp(argv[i], "--dist") == 0 && i + 1 < argc) dist_bench = argv[++i];
        else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc && !strcmp(argv[i + 1], "conv"))
            only_conv = true, i++;
        else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc &&
                 (!strcmp(argv[i + 1], "elem") || !strcmp(argv[i + 1], "overhead") ||
                  !strcmp(argv[i + 1], "dist") || !strcmp(argv[i + 1], "replay") ||
                  !strcmp(argv[i + 1], "adolc")))
            only_elem = argv[++i];
        else {
            fprintf(stderr, "usage: bench [--quick] [--json FILE] [--cli PATH] [--torch SCRIPT] "
                            "[--adolc HELPER] [--dist DIST_BENCH] [--only "
                            "conv|elem|overhead|dist|replay|adolc]\n");
            return 2;
        }
    }
    int reps = quick ? 3 : 7;
    if (only_conv) return bench_only_conv(reps);
    if (only_elem && !strcmp(only_elem, "replay")) {
        for (int th = 1; th <= 2; th++) bench_mlp_replay(th, reps);
        print_figs();
        return 0;
    }
    if (only_elem && !strcmp(only_elem, "adolc")) {
        if (!adolc_helper) adolc_helper = "build/adolc_chain";
        warm_up(WARM_UP_S);
        bench_adolc(quick ? 11 : 61);
        if (adolc.ran && !adolc.check_ok) fprintf(stderr, "bench: %s\n", adolc.check);
        print_figs();
        return 0;
    }
    if (only_elem && !strcmp(only_elem, "dist")) {
        if (!dist_bench) dist_bench = "build/dist_bench";
        bench_dist(reps);
        print_figs();
        return 0;
    }
    if (only_elem) return bench_only_elem(!strcmp(only_elem, "overhead"), reps);
    fprintf(stderr, "bench: tape overhead...\n");
    tg_set_num_threads(1);
    warm_up(WARM_UP_S);
    int64_t sizes[3] = {1, 64, 4096};
    for (int d = 0; d < 2; d++)
        for (int s = 0; s < 3; s++) {
            char tag[16];
            snprintf(tag, sizeof tag, "n%lld", (long long)sizes[s]);
            bench_overhead(d ? TG_F64 : TG_F32, sizes[s], 1000, reps, true, tag);
        }
    for (int64_t k = 1000; k <= (quick ? 100000 : 1000000); k *= 10) {
        char tag[16];
        snprintf(tag, sizeof tag, "k%lld", (long long)k);
        bench_overhead(TG_F32, 1, k, k >= 100000 ? 3 : reps, false, tag);
    }
    figure *k3 = find_fig("overhead.f32.k1000.fwd_bwd");
    figure *k6 = find_fig(quick ? "overhead.f32.k100000.fwd_bwd" : "overhead.f32.k1000000.fwd_bwd");
    if (k3 && k6)
        fig("overhead.flatness_kmax_over_k1000", "x", (stat3){k6->v.med / k3->v.med, 0, 0}, false);

    fprintf(stderr, "bench: large elementwise ops on threads...\n");
    bench_elem(reps);
    fprintf(stderr, "bench: ADOL-C side by side...\n");
    int adolc_reps = quick ? 11 : 61;
    bench_adolc(adolc_reps);
    if (adolc.ran && !adolc.check_ok) fprintf(stderr, "bench: %s\n", adolc.check);

    fprintf(stderr, "bench: Hessian-vector product...\n");
    bench_hvp(TG_F32, reps);
    bench_hvp(TG_F64, reps);

    fprintf(stderr, "bench: MLP training step...\n");
    /* more repetitions than elsewhere: on a shared machine the MLP moves the most, and its
     * ratios are medians of pairs measured side by side */
    int mlp_reps = quick ? 5 : 15;
    bench_mlp(1, mlp_reps);
    bench_mlp(2, mlp_reps);
    for (int th = 1; th <= 2; th++) bench_mlp_replay(th, mlp_reps);
    fprintf(stderr, "bench: convolution layers and the CNN training step...\n");
    for (int th = 1; th <= 2; th++) bench_conv(th, reps), bench_cnn(th, reps);
    tg_set_num_threads(1);
    /* the machine's state during the MLP: on a quiet machine BLIS's 2-thread GEMMs run at
     * 1.9-2x its 1-thread speed (less: the second core was partly taken during the 2-thread
     * runs; more: the 1-thread runs were slowed), and the median repetition of the raw
     * GEMMs is within a few percent of the fastest */
    figure *r1 = find_fig("gemm.t1.raw_sgemm_gflops"), *r2 = find_fig("gemm.t2.raw_sgemm_gflops");
    double scaling = r1 && r2 ? r2->v.med / r1->v.med : (double)NAN;
    double steady = r1 && r2 ? fmin(r1->v.med / r1->v.hi, r2->v.med / r2->v.hi) : (double)NAN;
    if (!isnan(scaling)) {
        fig("machine.raw_sgemm_t2_over_t1", "x", (stat3){scaling, 0, 0}, true);
        fig("machine.raw_sgemm_median_over_best", "x", (stat3){steady, 0, 0}, true);
    }
    bool busy = scaling < 1.85 || scaling > 2.1 || steady < 0.92;

    double rss = (double)NAN;
    if (access(cli, X_OK) == 0 && access(FASHION, R_OK) == 0) {
        fprintf(stderr, "bench: peak RSS of 'tapegrad train --epochs 1'...\n");
        char *args[] = {(char *)cli, "train", "--epochs", "1", "--log", "", NULL};
        rss = child_peak_rss_mb(args);
        fig("memory.peak_rss_fashion_mnist_1_epoch", "MB", (stat3){rss, 0, 0}, false);
    }

    fprintf(stderr, "bench: data-parallel training at 1 and 2 ranks...\n");
    bench_dist(quick ? 1 : 3);
    fprintf(stderr, "bench: PyTorch...\n");
    bool have_torch = run_torch(torch_script, reps, quick);

    char cpu[256];
    cpu_model(cpu, sizeof cpu);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    time_t t = time(NULL);
    char date[32];
    strftime(date, sizeof date, "%Y-%m-%d", gmtime(&t));
    char tv[64];
    torch_version(tv, sizeof tv);
    printf("tapegrad benchmarks, %s, %s, %ld cores, BLIS %s (%s kernels), %s, tapegrad %s%s%s; "
           "MLP on %s\n",
           date, cpu, cores, bli_info_get_version_str(), tg_blis_kernels(), "cc " __VERSION__,
           TG_GIT_REV, have_torch && tv[0] ? ", PyTorch " : "", have_torch ? tv : "", mlp_data);
    printf("%-44s %10s %10s %10s %9s %12s %8s\n", "figure", "unit", "median", "min", "max",
           "PyTorch", "ratio");
    for (int i = 0; i < n_figs; i++) {
        figure *f = &figs[i];
        if (strncmp(f->key, "adolc.", 6) == 0) continue; /* their own part below */
        printf("%-44s %10s %10.4g %10.4g %9.4g", f->key, f->unit, f->v.med, f->v.lo, f->v.hi);
        if (!isnan(f->torch)) {
            /* ratio > 1 means tapegrad is better */
            double ratio = !isnan(f->ratio)   ? f->ratio
                           : f->higher_better ? f->v.med / f->torch
                                              : f->torch / f->v.med;
            printf(" %12.4g %7.2fx", f->torch, ratio);
        }
        printf("\n");
    }
    if (busy)
        printf("machine busy: BLIS's raw GEMMs ran %.2fx as fast on 2 threads as on 1 (1.9-2x "
               "when the cores are free), their median repetition at %.0f%% of the fastest "
               "(92%% or more when quiet), so the MLP figures are less reliable than usual; run "
               "again\n",
               scaling, 100 * steady);
    if (!have_torch)
        printf("PyTorch comparison skipped: /usr/bin/python3 with torch is not installed "
               "(apt-get install python3-torch)\n");
    else
        printf("ratio: how many times better tapegrad is (PyTorch time / tapegrad time, or "
               "tapegrad rate / PyTorch rate)\n");
    print_adolc(adolc_reps);

    FILE *jf = fopen(json, "w");
    if (jf) {
        fprintf(jf, "{\n  \"date\": \"%s\",\n  \"cpu\": \"%s\",\n  \"cores\": %ld,\n", date, cpu,
                cores);
        fprintf(jf, "  \"blis\": \"%s\",\n  \"blis_kernels\": \"%s\",\n",
                bli_info_get_version_str(), tg_blis_kernels());
        fprintf(jf, "  \"compiler\": \"%s\",\n  \"tapegrad_revision\": \"%s\",\n", __VERSION__,
                TG_GIT_REV);
        fprintf(jf, "  \"threads\": {\"overhead\": 1, \"mlp\": [1, 2], \"conv\": [1, 2], \"cnn\": "
                    "[1, 2], \"peak_rss\": 1},\n");
        fprintf(jf, "  \"mlp_data\": \"%s\",\n", mlp_data);
        fprintf(jf, "  \"pytorch\": %s,\n  \"pytorch_version\": \"%s\",\n",
                have_torch ? "true" : "false", have_torch ? tv : "");
        fprintf(jf, "  \"adolc\": %s,\n  \"adolc_version\": \"%s\",\n",
                adolc.ran ? "true" : "false", adolc.ran ? adolc.version : "");
        if (adolc.ran)
            fprintf(jf,
                    "  \"adolc_run\": {\"chain_ops\": %d, \"repetitions\": %d, "
                    "\"chains_per_repetition\": %d, "
                    "\"tape_in_memory\": %s, \"gradient_check\": \"%s\", "
                    "\"gradient_max_abs_diff\": %.3g, \"cpu\": %d},\n",
                    ADOLC_K, adolc_reps, ADOLC_INNER, adolc.in_memory ? "true" : "false",
                    adolc.check_ok ? "ok" : "failed", adolc.max_diff, adolc.cpu);
        fprintf(jf, "  \"figures\": {\n");
        for (int i = 0; i < n_figs; i++) {
            figure *f = &figs[i];
            fprintf(jf,
                    "    \"%s\": {\"unit\": \"%s\", \"median\": %.6g, \"min\": %.6g, \"max\": %.6g",
                    f->key, f->unit, f->v.med, f->v.lo, f->v.hi);
            if (!isnan(f->torch)) fprintf(jf, ", \"pytorch\": %.6g", f->torch);
            if (!isnan(f->tg))
                fprintf(jf, ", \"tapegrad\": %.6g, \"tapegrad_figure\": \"%s\"", f->tg, f->tg_what);
            if (!isnan(f->ratio)) fprintf(jf, ", \"ratio\": %.6g", f->ratio);
            fprintf(jf, "}%s\n", i + 1 < n_figs ? "," : "");
        }
        fprintf(jf, "  }\n}\n");
        fclose(jf);
        printf("json: %s\n", json);
    }
    if (adolc.ran && !adolc.check_ok) {
        fprintf(stderr, "bench: %s\n", adolc.check);
        return 1;
    }
    return 0;
}
