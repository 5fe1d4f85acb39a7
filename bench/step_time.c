/* bench/step_time.c: the inputs of the scaling model (docs/distributed-scaling.md) for the
 * bench MLP (784-256-256-10 ReLU, cross-entropy, SGD with momentum 0.9, as bench/bench.c
 * builds it) and the demo CNN (examples/cnn.c's model, Adam): per training step, the time
 * in the forward, the backward (zero_grad + tg_backward) and the optimiser, and when in
 * the backward each parameter's gradient is final (the tape's gradient-ready hook, the
 * moment data-parallel training can start to reduce it), with the parameter counts.
 * Random data of Fashion-MNIST's shapes (the values barely change the step's time).
 *
 *     make build/libtapegrad.a
 *     cc -O2 -std=c11 -D_POSIX_C_SOURCE=200809L -fopenmp -Iinclude bench/step_time.c \
 *        build/libtapegrad.a -L/usr/lib/x86_64-linux-gnu/blis-openmp \
 *        -Wl,-rpath,/usr/lib/x86_64-linux-gnu/blis-openmp -lblis -llapack -lz -lm -lpthread \
 *        -o build/step_time
 *     build/step_time --threads 1 --batch 128 --reps 30 --json steps.json
 *
 * Each figure is the median over --reps steps (after 3 warm-up steps), MLP and CNN steps
 * alternating so that both see the same load. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tapegrad.h"

#define MAX_P 8 /* parameter tensors of either model */
#define MAX_REPS 1000
#define WARMUP 3

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct model {
    const char *name, *optim;
    tg_module *net;
    tg_tensor *params[MAX_P], *x, *y;
    int np;
    bool image; /* the input as [N,1,28,28] */
    tg_optim *opt;
    double t_bwd0;             /* the backward's start, for the hook */
    double ready[MAX_P];       /* this step's gradient-ready offsets, seconds */
    double *fwd, *bwd, *opt_s; /* per repetition */
    double *rdy[MAX_P];
} model;

static void on_ready(tg_tensor *leaf, void *ctx)
{
    model *m = ctx;
    double t = now() - m->t_bwd0;
    for (int i = 0; i < m->np; i++)
        if (m->params[i] == leaf) m->ready[i] = t;
}

/* The demo CNN (examples/cnn.c), from its spec as `tapegrad train --arch` takes it. */
static tg_module *cnn_new(void)
{
    static const char *spec = "conv(32,3,pad=1)-relu-maxpool(2)-conv(64,3,pad=1)-relu-"
                              "maxpool(2)-flatten-linear(128)-relu-linear(10)";
    static const int64_t in[3] = {1, 28, 28};
    tg_status st = {0};
    tg_module *net = tg_nn_from_spec(spec, 3, in, TG_F32, &st);
    if (!net) fprintf(stderr, "step_time: %s\n", st.msg);
    return net;
}

/* Builds the model, its data and optimiser; 0, or -1 with the reason printed. */
static int model_new(model *m, bool cnn, int64_t batch, int reps)
{
    static const int64_t sizes[4] = {784, 256, 256, 10};
    tg_status st = {0};
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    memset(m, 0, sizeof *m);
    m->name = cnn ? "cnn" : "mlp", m->optim = cnn ? "adam" : "momentum", m->image = cnn;
    m->net = cnn ? cnn_new() : tg_nn_mlp(4, sizes, "relu", 0, false, TG_F32, &st);
    if (!m->net) {
        if (!cnn) fprintf(stderr, "step_time: %s\n", st.msg);
        return -1;
    }
    if (tg_nn_init(m->net, TG_INIT_HE_UNIFORM, 0, &rng) ||
        (m->np = tg_nn_params(m->net, m->params, MAX_P)) < 1 || m->np > MAX_P) {
        fprintf(stderr, "step_time: %s: cannot initialise the parameters\n", m->name);
        return -1;
    }
    int64_t xs[2] = {batch, 784}, ys[1] = {batch};
    m->x = tg_tensor_new(TG_F32, 2, xs), m->y = tg_tensor_new(TG_F32, 1, ys);
    m->fwd = calloc((size_t)reps, sizeof(double));
    m->bwd = calloc((size_t)reps, sizeof(double));
    m->opt_s = calloc((size_t)reps, sizeof(double));
    bool ok = m->x && m->y && m->fwd && m->bwd && m->opt_s;
    for (int i = 0; i < m->np && ok; i++) ok = (m->rdy[i] = calloc((size_t)reps, sizeof(double)));
    if (!ok) {
        fprintf(stderr, "step_time: out of memory\n");
        return -1;
    }
    tg_tensor_rand_uniform(m->x, 0, 1, &rng);
    for (int64_t i = 0; i < batch; i++) tg_set(m->y, i, (double)tg_rng_below(&rng, 10));
    tg_optim_opts o;
    tg_optim_defaults(m->optim, &o);
    o.lr = cnn ? 1e-3 : 0.01;
    if (!cnn) o.momentum = 0.9;
    if (!(m->opt = tg_optim_new(m->optim, m->np, m->params, &o, &st))) {
        fprintf(stderr, "step_time: %s\n", st.msg);
        return -1;
    }
    return 0;
}

static void model_free(model *m)
{
    tg_optim_free(m->opt);
    tg_nn_free(m->net);
    tg_tensor_free(m->x), tg_tensor_free(m->y);
    free(m->fwd), free(m->bwd), free(m->opt_s);
    for (int i = 0; i < m->np; i++) free(m->rdy[i]);
}

/* One step, its times stored at repetition r (r < 0: a warm-up, not stored). */
static int model_step(model *m, tg_tape *tp, int r)
{
    tg_tape_on_grad_ready(tp, on_ready, m);
    double t0 = now();
    tg_tape_reset(tp);
    tg_tensor *x = m->x;
    if (m->image) {
        int64_t img[4] = {tg_tensor_dim(x, 0), 1, 28, 28};
        x = tg_reshape(tp, x, 4, img);
    }
    tg_tensor *loss = tg_cross_entropy(tp, tg_nn_forward(m->net, tp, x), m->y);
    double t1 = now();
    tg_optim_zero_grad(m->opt);
    m->t_bwd0 = now();
    for (int i = 0; i < m->np; i++) m->ready[i] = -1;
    if (!loss || tg_backward(tp, loss)) {
        fprintf(stderr, "step_time: %s: %s\n", m->name, tg_tape_error(tp));
        return -1;
    }
    double t2 = now();
    if (tg_optim_step(m->opt)) {
        fprintf(stderr, "step_time: %s: %s\n", m->name, tg_tape_error(tp));
        return -1;
    }
    double t3 = now();
    if (r < 0) return 0;
    m->fwd[r] = t1 - t0, m->bwd[r] = t2 - t1, m->opt_s[r] = t3 - t2;
    /* Offsets from the start of the backward as timed above (zero_grad included). */
    for (int i = 0; i < m->np; i++)
        m->rdy[i][r] = m->ready[i] < 0 ? -1 : m->ready[i] + (m->t_bwd0 - t1);
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void report(FILE *f, model *m, int reps, int64_t batch, bool last)
{
    double fw = median(m->fwd, reps), bw = median(m->bwd, reps), op = median(m->opt_s, reps);
    int64_t total = 0;
    for (int i = 0; i < m->np; i++) total += tg_tensor_numel(m->params[i]);
    printf("%s (batch %lld, %s): %lld parameters (%lld gradient bytes), forward %.1f us, "
           "backward %.1f us, optimiser %.1f us, step %.1f us (%.1f k samples/s), backward "
           "%.1f%% of the step\n",
           m->name, (long long)batch, m->optim, (long long)total, (long long)total * 4, fw * 1e6,
           bw * 1e6, op * 1e6, (fw + bw + op) * 1e6, (double)batch / (fw + bw + op) / 1e3,
           100 * bw / (fw + bw + op));
    if (f)
        fprintf(f,
                "  \"%s\": {\"batch\": %lld, \"optimiser\": \"%s\", \"params\": %lld, "
                "\"forward_us\": %.6g, \"backward_us\": %.6g, \"optimiser_us\": %.6g,\n"
                "    \"tensors\": [\n",
                m->name, (long long)batch, m->optim, (long long)total, fw * 1e6, bw * 1e6,
                op * 1e6);
    for (int i = 0; i < m->np; i++) {
        double rd = median(m->rdy[i], reps);
        int64_t n = tg_tensor_numel(m->params[i]);
        printf("  parameter %d: %lld elements, gradient final at %.1f us into the backward\n", i,
               (long long)n, rd * 1e6);
        if (f)
            fprintf(f, "      {\"index\": %d, \"numel\": %lld, \"ready_us\": %.6g}%s\n", i,
                    (long long)n, rd * 1e6, i + 1 < m->np ? "," : "");
    }
    if (f) fprintf(f, "    ]}%s\n", last ? "" : ",");
}

static int parse_int(const char *flag, const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "step_time: %s '%s': want an integer from %ld to %ld\n", flag, s, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

int main(int argc, char **argv)
{
    long threads = 1, batch = 128, reps = 30;
    const char *json = NULL;
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc) {
            fprintf(stderr,
                    "step_time: %s: missing value (options: --threads --batch --reps "
                    "--json)\n",
                    argv[i]);
            return 2;
        }
        const char *a = argv[i], *v = argv[++i];
        int rc = 0;
        if (!strcmp(a, "--threads")) rc = parse_int(a, v, 1, 256, &threads);
        else if (!strcmp(a, "--batch")) rc = parse_int(a, v, 1, 65536, &batch);
        else if (!strcmp(a, "--reps")) rc = parse_int(a, v, 3, MAX_REPS, &reps);
        else if (!strcmp(a, "--json")) json = v;
        else {
            fprintf(stderr,
                    "step_time: unknown option '%s' (options: --threads --batch --reps "
                    "--json)\n",
                    a);
            return 2;
        }
        if (rc) return 2;
    }
    if (tg_set_num_threads((int)threads) != (int)threads)
        fprintf(stderr, "step_time: running %d threads, not %ld\n",
                tg_set_num_threads((int)threads), threads);
    model m[2];
    tg_tape *tp = tg_tape_new();
    int rc = tp ? 0 : -1;
    /* NOLINTNEXTLINE(clang-analyzer-unix.Malloc): model_free below frees both, made or not */
    for (int k = 0; k < 2; k++) {
        memset(&m[k], 0, sizeof m[k]);
        if (!rc) rc = model_new(&m[k], k == 1, batch, (int)reps);
    }
    for (int r = -WARMUP; r < reps && !rc; r++)
        for (int k = 0; k < 2 && !rc; k++) rc = model_step(&m[k], tp, r);
    if (!rc) {
        char tmp[4096];
        FILE *f = NULL;
        if (json && (size_t)snprintf(tmp, sizeof tmp, "%s.tmp", json) >= sizeof tmp) {
            fprintf(stderr, "step_time: --json path too long\n");
            rc = -1;
        } else if (json && !(f = fopen(tmp, "w"))) {
            fprintf(stderr, "step_time: cannot write %s: %s\n", tmp, strerror(errno));
            rc = -1;
        }
        if (!rc) {
            printf("%d thread(s), batch %ld per step, medians of %ld steps\n",
                   tg_set_num_threads((int)threads), batch, reps);
            if (f) fprintf(f, "{\n  \"threads\": %ld,\n  \"reps\": %ld,\n", threads, reps);
            report(f, &m[0], (int)reps, batch, false);
            report(f, &m[1], (int)reps, batch, true);
            if (f) fprintf(f, "}\n");
        }
        if (f && (ferror(f) | fclose(f) || rename(tmp, json))) {
            fprintf(stderr, "step_time: cannot write %s\n", json);
            remove(tmp);
            rc = -1;
        }
    }
    for (int k = 0; k < 2; k++) model_free(&m[k]);
    tg_tape_free(tp);
    return rc ? 1 : 0;
}
