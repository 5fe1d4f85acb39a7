/* examples/optimizers_classic.c: the lecture's comparison of classical and second-order
 * methods on one task. Two interleaved half-moons in 2-D with noise; a 2-8-1 tanh network
 * fitting ±1 targets by least squares (the same objective for every method, so
 * Levenberg-Marquardt takes part, and Newton's methods with the Hessian of the same MSE,
 * dense or through Hessian-vector products); full batch, the same initial weights;
 * trained on 300 points and tested on 1399. Every method's training error per iteration goes to
 * optimizers_classic.csv and one plot; the final test error to a table. */
#include <math.h>
#include <string.h>

#include "demo.h"

#define N_TRAIN 300
#define N_TEST 1399
#define ITERS 150

typedef struct task {
    tg_module *net;
    tg_tensor *x, *y;
    tg_tape *tp;
} task;

static void moons(tg_tensor *x, tg_tensor *y, int n, tg_rng *r)
{
    for (int i = 0; i < n; i++) {
        int c = (int)tg_rng_below(r, 2);
        double t = 3.14159265358979 * tg_rng_uniform(r);
        double a = c ? 1 - cos(t) : cos(t), b = c ? 0.5 - sin(t) : sin(t);
        tg_set(x, 2 * i, a + 0.2 * tg_rng_normal(r));
        tg_set(x, 2 * i + 1, b + 0.2 * tg_rng_normal(r));
        tg_set(y, i, c ? 1 : -1);
    }
}

static int loss_fn(void *ctx, double *loss)
{
    task *t = ctx;
    tg_tape_reset(t->tp);
    tg_tensor *l = tg_mse_loss(t->tp, tg_nn_forward(t->net, t->tp, t->x), t->y);
    if (!l || tg_backward(t->tp, l)) return TG_EARG;
    *loss = tg_get(l, 0);
    return TG_OK;
}

static tg_tensor *residual_fn(tg_tape *tp, void *ctx)
{
    task *t = ctx;
    return tg_sub(tp, tg_nn_forward(t->net, tp, t->x), t->y);
}

/* The same objective recorded for Newton's methods, which differentiate its gradient. */
static tg_tensor *objective_fn(tg_tape *tp, void *ctx)
{
    task *t = ctx;
    return tg_mse_loss(tp, tg_nn_forward(t->net, tp, t->x), t->y);
}

/* Share of points whose output has the wrong sign. */
static double error_rate(task *t, tg_tensor *x, tg_tensor *y)
{
    tg_tape_reset(t->tp);
    tg_tape_set_grad_mode(t->tp, false);
    tg_tensor *out = tg_nn_forward(t->net, t->tp, x);
    int wrong = 0, n = (int)tg_tensor_dim(y, 0);
    for (int i = 0; out && i < n; i++) wrong += (tg_get(out, i) > 0) != (tg_get(y, i) > 0);
    tg_tape_set_grad_mode(t->tp, true);
    return (double)wrong / n;
}

static double mse_of(task *t)
{
    double l = 0;
    loss_fn(t, &l);
    return l;
}

int demo_optimizers_classic(const char *outdir)
{
    static const struct {
        const char *name, *method;
        double lr;
    } m[] = {{"gradient descent", "sgd", 0.2}, {"momentum", "momentum", 0.05},
             {"rprop", "rprop", 0.01},         {"irprop-", "irprop", 0.01},
             {"quickprop", "quickprop", 0.05}, {"cg fletcher-reeves", "cg_fr", 1},
             {"cg polak-ribiere", "cg_pr", 1}, {"bfgs", "bfgs", 1},
             {"l-bfgs", "lbfgs", 1},           {"levenberg-marquardt", "lm", 1},
             {"newton", "newton", 1},          {"hessian-free newton-cg", "newton_cg", 1}};
    enum { NM = sizeof m / sizeof m[0] };
    int64_t s_tr[2] = {N_TRAIN, 2}, s_te[2] = {N_TEST, 2}, y_tr[2] = {N_TRAIN, 1},
            y_te[2] = {N_TEST, 1};
    tg_tensor *xtr = tg_tensor_new(TG_F64, 2, s_tr), *ytr = tg_tensor_new(TG_F64, 2, y_tr);
    tg_tensor *xte = tg_tensor_new(TG_F64, 2, s_te), *yte = tg_tensor_new(TG_F64, 2, y_te);
    tg_rng r;
    tg_rng_seed(&r, 17);
    moons(xtr, ytr, N_TRAIN, &r);
    moons(xte, yte, N_TEST, &r);
    static double curve[NM][ITERS + 1];
    double test_err[NM], train_err[NM];
    int64_t sizes[3] = {2, 8, 1};
    task t = {NULL, xtr, ytr, tg_tape_new()};
    for (int k = 0; k < NM; k++) {
        tg_status st;
        t.net = tg_nn_mlp(3, sizes, "tanh", 0, false, TG_F64, &st);
        tg_rng ri;
        tg_rng_seed(&ri, 3); /* the same start for every method */
        tg_nn_init(t.net, TG_INIT_XAVIER_NORMAL, 0, &ri);
        tg_tensor *p[4];
        int np = tg_nn_params(t.net, p, 4);
        tg_optim_opts o;
        tg_optim_defaults(m[k].method, &o);
        o.lr = m[k].lr;
        tg_optim *opt = tg_optim_new(m[k].method, np, p, &o, &st);
        curve[k][0] = mse_of(&t);
        for (int it = 1; it <= ITERS; it++) {
            double loss = curve[k][it - 1];
            int rc = strcmp(m[k].method, "lm") == 0
                         ? tg_optim_step_lm(opt, residual_fn, &t, &loss, &st)
                     : strncmp(m[k].method, "newton", 6) == 0
                         ? tg_optim_step_newton(opt, objective_fn, &t, &loss, &st)
                         : tg_optim_step_closure(opt, loss_fn, &t, &loss);
            curve[k][it] = rc ? curve[k][it - 1] : mse_of(&t);
        }
        train_err[k] = error_rate(&t, xtr, ytr);
        test_err[k] = error_rate(&t, xte, yte);
        tg_optim_free(opt);
        tg_nn_free(t.net);
    }
    printf("two noisy half-moons, 2-8-1 tanh, least squares on ±1 targets, full batch,\n"
           "%d iterations, %d training and %d test points, the same start:\n",
           ITERS, N_TRAIN, N_TEST);
    printf("  %-22s %12s %12s %12s\n", "method", "train MSE", "train error", "test error");
    int learned = 0;
    for (int k = 0; k < NM; k++) {
        printf("  %-22s %12.5f %11.2f%% %11.2f%%\n", m[k].name, curve[k][ITERS], 100 * train_err[k],
               100 * test_err[k]);
        learned += test_err[k] < 0.2;
    }
    char csv[1024], png[1024];
    snprintf(csv, sizeof csv, "%s/optimizers_classic.csv", outdir);
    snprintf(png, sizeof png, "%s/optimizers_classic.png", outdir);
    FILE *f = fopen(csv, "w");
    if (f) {
        fprintf(f, "iteration");
        for (int k = 0; k < NM; k++) fprintf(f, ",%s", m[k].name);
        fprintf(f, "\n");
        for (int it = 0; it <= ITERS; it++) {
            fprintf(f, "%d", it);
            for (int k = 0; k < NM; k++) fprintf(f, ",%.8g", curve[k][it]);
            fprintf(f, "\n");
        }
        fclose(f);
        int cols[NM];
        for (int k = 0; k < NM; k++) cols[k] = k + 2;
        if (cli_plot_csv(csv, png, "training MSE: classical and second-order methods", "iteration",
                         "mean squared error", 1, cols, NM, true) == 0)
            printf("plot: %s\n", png);
        printf("data: %s\n", csv);
    }
    tg_tape_free(t.tp);
    tg_tensor_free(xtr), tg_tensor_free(ytr), tg_tensor_free(xte), tg_tensor_free(yte);
    return learned < NM - 2; /* gradient descent and momentum may still be slow */
}

#ifdef TG_EXAMPLE_MAIN
DEMO_MAIN(optimizers_classic)
#endif
