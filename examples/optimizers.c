/* examples/optimizers.c: every first-order optimiser of the lectures on one task, the same
 * network, the same initial weights and the same mini-batches: two interleaved spirals,
 * a 2-32-32-2 tanh network, cross-entropy, batch 32. Writes the training loss after every
 * epoch of every method to optimizers.csv and plots all curves in optimizers.png. */
#include <math.h>
#include <string.h>

#include "demo.h"

#define N 400
#define EPOCHS 200
#define MAX_METHODS 16

/* Learning rates that suit each method on this task (the rest of their options are the
 * methods' defaults). */
static double lr_for(const char *m)
{
    static const struct {
        const char *name;
        double lr;
    } t[] = {{"sgd", 0.1},      {"momentum", 0.02}, {"momentum_ema", 0.1}, {"nesterov", 0.02},
             {"adagrad", 0.05}, {"rmsprop", 0.003}, {"adadelta", 1.0},     {"adam", 0.005},
             {"nadam", 0.005},  {"adamw", 0.005}};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (strcmp(t[i].name, m) == 0) return t[i].lr;
    return -1; /* not a first-order method: keep its default */
}

static void spirals(tg_tensor *x, tg_tensor *y)
{
    for (int i = 0; i < N; i++) {
        int c = i % 2;
        /* NOLINTNEXTLINE(bugprone-integer-division): whole points per arm, on purpose */
        double t = 0.25 + 3.0 * (double)(i / 2) / (N / 2), r = t / 3.25;
        double a = t * 2.2 + c * 3.14159265358979323846;
        tg_set(x, 2 * i, r * cos(a)), tg_set(x, 2 * i + 1, r * sin(a)), tg_set(y, i, c);
    }
}

int demo_optimizers(const char *outdir)
{
    int64_t sx[2] = {N, 2}, sy[1] = {N}, sizes[4] = {2, 32, 32, 2};
    tg_tensor *x = tg_tensor_new(TG_F64, 2, sx), *y = tg_tensor_new(TG_F64, 1, sy);
    spirals(x, y);
    tg_dataset ds = {.x = x, .y = y, .n = N, .d = 2, .n_classes = 2};
    const char *names[MAX_METHODS];
    double curve[MAX_METHODS][EPOCHS + 1], acc[MAX_METHODS];
    int nm = 0;
    tg_tape *tp = tg_tape_new();
    for (int k = 0; tg_optim_method(k) && nm < MAX_METHODS; k++) {
        const char *m = tg_optim_method(k);
        double lr = lr_for(m);
        if (lr < 0) continue;
        tg_status st;
        tg_module *net = tg_nn_mlp(4, sizes, "tanh", 0, false, TG_F64, &st);
        tg_rng rng;
        tg_rng_seed(&rng, 4); /* the same initial weights for every method */
        tg_nn_init(net, TG_INIT_XAVIER_UNIFORM, 0, &rng);
        tg_tensor *params[8];
        int np = tg_nn_params(net, params, 8);
        tg_optim_opts oo;
        tg_optim_defaults(m, &oo);
        oo.lr = lr;
        tg_optim *opt = tg_optim_new(m, np, params, &oo, &st);
        tg_batcher *b = tg_batcher_new(&ds, 32, true, 8, &st); /* the same batches too */
        if (!net || !opt || !b) {
            fprintf(stderr, "optimizers: %s: %s\n", m, st.msg);
            tg_optim_free(opt), tg_nn_free(net), tg_batcher_free(b);
            continue;
        }
        for (int e = 0; e <= EPOCHS; e++) {
            tg_tensor *bx, *by;
            if (e > 0) {
                tg_batcher_reset(b);
                while (tg_batcher_next(b, &bx, &by)) {
                    tg_tape_reset(tp);
                    tg_tensor *l = tg_cross_entropy(tp, tg_nn_forward(net, tp, bx), by);
                    tg_optim_zero_grad(opt);
                    if (!l || tg_backward(tp, l) || tg_optim_step(opt)) break;
                }
            }
            tg_tape_reset(tp);
            tg_tape_set_grad_mode(tp, false);
            tg_tensor *out = tg_nn_forward(net, tp, x);
            tg_tensor *l = tg_cross_entropy(tp, out, y);
            curve[nm][e] = l ? tg_get(l, 0) : (double)NAN;
            acc[nm] = out ? tg_accuracy(out, y) : 0;
            tg_tape_set_grad_mode(tp, true);
        }
        names[nm++] = m;
        tg_batcher_free(b), tg_optim_free(opt), tg_nn_free(net);
    }
    tg_tape_reset(tp);
    printf("two spirals (%d points), 2-32-32-2 tanh, batch 32, %d epochs, same start:\n", N,
           EPOCHS);
    printf("  %-14s %8s %14s %12s\n", "method", "lr", "final loss", "accuracy");
    int learned = 0;
    for (int k = 0; k < nm; k++) {
        printf("  %-14s %8g %14.4f %11.1f%%\n", names[k], lr_for(names[k]), curve[k][EPOCHS],
               100 * acc[k]);
        learned += curve[k][EPOCHS] < 0.9 * curve[k][0];
    }
    char csv[1024], png[1024];
    snprintf(csv, sizeof csv, "%s/optimizers.csv", outdir);
    snprintf(png, sizeof png, "%s/optimizers.png", outdir);
    FILE *f = fopen(csv, "w");
    if (f) {
        fprintf(f, "epoch");
        for (int k = 0; k < nm; k++) fprintf(f, ",%s", names[k]);
        fprintf(f, "\n");
        for (int e = 0; e <= EPOCHS; e++) {
            fprintf(f, "%d", e);
            for (int k = 0; k < nm; k++) fprintf(f, ",%.6g", curve[k][e]);
            fprintf(f, "\n");
        }
        fclose(f);
        int cols[MAX_METHODS];
        for (int k = 0; k < nm; k++) cols[k] = k + 2;
        if (cli_plot_csv(csv, png, "training loss on two spirals", "epoch", "cross-entropy", 1,
                         cols, nm, true) == 0)
            printf("plot: %s\n", png);
        printf("data: %s\n", csv);
    } else {
        fprintf(stderr, "optimizers: cannot write %s\n", csv);
    }
    tg_tape_free(tp), tg_tensor_free(x), tg_tensor_free(y);
    return !(nm >= 10 && learned == nm);
}

#ifdef TG_EXAMPLE_MAIN
DEMO_MAIN(optimizers)
#endif
