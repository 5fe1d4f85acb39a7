/* examples/approx.c: universal approximation (Cybenko): one hidden layer of sigmoids fits
 * the lectures' f(x) = 0.2 + 0.4x² + 0.3x sin(15x) + 0.1 cos(50x) on [0,1]. Trains a
 * 1-64-1 network with Adam on 400 points and plots target and fit (approx.csv, approx.png). */
#include <math.h>

#include "demo.h"

#define N 400
#define H 64

static double f(double x) { return 0.2 + 0.4 * x * x + 0.3 * x * sin(15 * x) + 0.1 * cos(50 * x); }

int demo_approx(const char *outdir)
{
    int64_t sn[2] = {N, 1}, sizes[3] = {1, H, 1};
    tg_tensor *x = tg_tensor_new(TG_F64, 2, sn), *y = tg_tensor_new(TG_F64, 2, sn);
    double var = 0, mean = 0;
    for (int i = 0; i < N; i++) {
        double xi = (double)i / (N - 1);
        tg_set(x, i, xi), tg_set(y, i, f(xi));
        mean += f(xi) / N;
    }
    for (int i = 0; i < N; i++) var += (f(tg_get(x, i)) - mean) * (f(tg_get(x, i)) - mean) / N;
    tg_status st;
    tg_module *net = tg_nn_mlp(3, sizes, "sigmoid", 0, false, TG_F64, &st);
    tg_rng rng;
    tg_rng_seed(&rng, 11);
    tg_nn_init(net, TG_INIT_UNIFORM, 0, &rng);
    /* Spread the sigmoids over [0,1]: steep slopes and centres at random points, so the
     * layer starts with features at every scale the target has. */
    tg_tensor *p[4];
    tg_nn_params(net, p, 4);
    for (int j = 0; j < H; j++) {
        double slope = (tg_rng_uniform(&rng) < 0.5 ? -1 : 1) * (5 + 95 * tg_rng_uniform(&rng));
        tg_set(p[0], j, slope);
        tg_set(p[1], j, -slope * tg_rng_uniform(&rng));
    }
    tg_tensor *params[4];
    int np = tg_nn_params(net, params, 4);
    tg_optim_opts oo;
    tg_optim_defaults("adam", &oo);
    oo.lr = 0.01;
    oo.schedule = (tg_lr_schedule){.kind = TG_LR_COSINE, .t_max = 20000, .lr_min = 1e-4};
    tg_optim *opt = tg_optim_new("adam", np, params, &oo, &st);
    tg_tape *tp = tg_tape_new();
    double mse = (double)NAN;
    for (int s = 0; s < 20000; s++) {
        tg_tape_reset(tp);
        tg_tensor *l = tg_mse_loss(tp, tg_nn_forward(net, tp, x), y);
        tg_optim_zero_grad(opt);
        if (!l || tg_backward(tp, l) || tg_optim_step(opt)) {
            fprintf(stderr, "approx: %s\n", tg_tape_error(tp));
            break;
        }
        mse = tg_get(l, 0);
        if (s % 4000 == 0) printf("  step %5d: MSE %.6f\n", s, mse);
    }
    tg_tape_reset(tp);
    tg_tensor *fit = tg_nn_forward(net, tp, x);
    char csv[1024], png[1024];
    snprintf(csv, sizeof csv, "%s/approx.csv", outdir);
    snprintf(png, sizeof png, "%s/approx.png", outdir);
    FILE *out = fopen(csv, "w");
    if (out && fit) {
        fprintf(out, "x,target,fit\n");
        for (int i = 0; i < N; i++)
            fprintf(out, "%.6f,%.6f,%.6f\n", tg_get(x, i), tg_get(y, i), tg_get(fit, i));
        fclose(out);
        int cols[2] = {2, 3};
        if (cli_plot_csv(csv, png, "0.2 + 0.4x^2 + 0.3x sin(15x) + 0.1cos(50x), 1-64-1 sigmoid net",
                         "x", "f(x)", 1, cols, 2, false) == 0)
            printf("plot: %s\n", png);
        printf("data: %s\n", csv);
    } else {
        fprintf(stderr, "approx: cannot write %s\n", csv);
    }
    printf("final MSE %.6f, %.2f%% of the target's variance %.5f\n", mse, 100 * mse / var, var);
    int ok = mse < 0.05 * var;
    tg_optim_free(opt), tg_nn_free(net), tg_tape_free(tp);
    tg_tensor_free(x), tg_tensor_free(y);
    return !ok;
}

#ifdef TG_EXAMPLE_MAIN
DEMO_MAIN(approx)
#endif
