/* examples/collapse.c: without a nonlinearity a stack of layers is one linear map,
 * X W1 W2 W3 = X (W1 W2 W3). Shown twice: numerically on random matrices, and by training a
 * deep linear network on y = sin(2x), which ends no better than the least-squares line,
 * while the same network with tanh between the layers fits the curve. */
#include <math.h>

#include "demo.h"

#define N 128

/* Trains net on (x, y) with Adam, full batch; returns the final MSE. */
static double train(tg_module *net, tg_tape *tp, tg_tensor *x, tg_tensor *y, int steps)
{
    tg_tensor *params[16];
    int np = tg_nn_params(net, params, 16);
    tg_optim_opts oo;
    tg_optim_defaults("adam", &oo);
    oo.lr = 0.01;
    tg_status st;
    tg_optim *opt = tg_optim_new("adam", np, params, &oo, &st);
    double mse = (double)NAN;
    for (int s = 0; s < steps && opt; s++) {
        tg_tape_reset(tp);
        tg_tensor *l = tg_mse_loss(tp, tg_nn_forward(net, tp, x), y);
        tg_optim_zero_grad(opt);
        if (!l || tg_backward(tp, l) || tg_optim_step(opt)) break;
        mse = tg_get(l, 0);
    }
    tg_optim_free(opt);
    tg_tape_reset(tp);
    return mse;
}

static tg_module *stack(bool nonlinear, tg_rng *rng)
{
    tg_module *seq = tg_nn_sequential();
    int64_t sizes[4] = {1, 16, 16, 1};
    for (int i = 0; i < 3; i++) {
        tg_nn_append(seq, tg_nn_linear(sizes[i], sizes[i + 1], TG_F64));
        if (nonlinear && i < 2) tg_nn_append(seq, tg_nn_activation("tanh", 0, TG_F64));
    }
    tg_nn_init(seq, TG_INIT_XAVIER_UNIFORM, 0, rng);
    return seq;
}

int demo_collapse(const char *outdir)
{
    (void)outdir;
    tg_tape *tp = tg_tape_new();
    tg_rng rng;
    tg_rng_seed(&rng, 5);
    int64_t sx[2] = {6, 3}, s1[2] = {3, 5}, s2[2] = {5, 4}, s3[2] = {4, 2};
    tg_tensor *X = tg_tensor_new(TG_F64, 2, sx), *W1 = tg_tensor_new(TG_F64, 2, s1);
    tg_tensor *W2 = tg_tensor_new(TG_F64, 2, s2), *W3 = tg_tensor_new(TG_F64, 2, s3);
    tg_tensor *m[4] = {X, W1, W2, W3};
    for (int i = 0; i < 4; i++) tg_tensor_rand_normal(m[i], 0, 1, &rng);
    tg_tensor *deep = tg_matmul(tp, tg_matmul(tp, tg_matmul(tp, X, W1), W2), W3);
    tg_tensor *W = tg_matmul(tp, tg_matmul(tp, W1, W2), W3);
    tg_tensor *flat = tg_matmul(tp, X, W);
    double diff = 0, scale = 0;
    for (int64_t i = 0; deep && flat && i < tg_tensor_numel(deep); i++) {
        diff = fmax(diff, fabs(tg_get(deep, i) - tg_get(flat, i)));
        scale = fmax(scale, fabs(tg_get(flat, i)));
    }
    printf("X W1 W2 W3 against X W with W = W1 W2 W3 ([6,3]x[3,5]x[5,4]x[4,2] = [6,3]x[3,2]):\n"
           "  largest difference %.3g (entries up to %.3g): one linear map\n",
           diff, scale);

    int64_t sn[2] = {N, 1};
    tg_tensor *x = tg_tensor_new(TG_F64, 2, sn), *y = tg_tensor_new(TG_F64, 2, sn);
    double sx1 = 0, sy = 0, sxx = 0, sxy = 0;
    for (int i = 0; i < N; i++) {
        double xi = -2 + 4.0 * i / (N - 1), yi = sin(2 * xi);
        tg_set(x, i, xi), tg_set(y, i, yi);
        sx1 += xi, sy += yi, sxx += xi * xi, sxy += xi * yi;
    }
    double slope = (N * sxy - sx1 * sy) / (N * sxx - sx1 * sx1), icept = (sy - slope * sx1) / N,
           ls = 0;
    for (int i = 0; i < N; i++) {
        double e = icept + slope * tg_get(x, i) - tg_get(y, i);
        ls += e * e / N;
    }
    tg_module *lin = stack(false, &rng), *tanh_net = stack(true, &rng);
    double mse_lin = train(lin, tp, x, y, 3000), mse_tanh = train(tanh_net, tp, x, y, 3000);
    printf("fitting y = sin(2x) on [-2,2], 1-16-16-1 networks, Adam, 3000 full-batch steps:\n"
           "  least-squares line         MSE %.5f\n"
           "  three linear layers        MSE %.5f (no better than the line)\n"
           "  the same with tanh between MSE %.5f\n",
           ls, mse_lin, mse_tanh);
    int ok =
        diff < 1e-9 * (1 + scale) && fabs(mse_lin - ls) < 0.01 * ls + 1e-4 && mse_tanh < 0.1 * ls;
    tg_nn_free(lin), tg_nn_free(tanh_net);
    for (int i = 0; i < 4; i++) tg_tensor_free(m[i]);
    tg_tensor_free(x), tg_tensor_free(y);
    tg_tape_free(tp);
    return !ok;
}

#ifdef TG_EXAMPLE_MAIN
DEMO_MAIN(collapse)
#endif
