/* examples/xor.c: XOR is not linearly separable, so one threshold neuron cannot compute it.
 * Two ways out, as in the lectures: (a) add the feature x1*x2 and use
 * [x1 + x2 - 2 x1 x2 - 0.5 > 0]; (b) two layers, [OR - AND - 0.5 > 0], first with the fixed
 * weights, then learned: a 2-4-1 tanh network trained with Adam on binary cross-entropy. */
#include <math.h>

#include "demo.h"

static const double X4[8] = {0, 0, 0, 1, 1, 0, 1, 1}, XOR[4] = {0, 1, 1, 0};

static int check(const char *what, const tg_tensor *y, double threshold)
{
    int wrong = 0;
    printf("%s:\n", what);
    for (int r = 0; r < 4; r++) {
        printf("  x1=%g x2=%g -> %.4f\n", X4[2 * r], X4[2 * r + 1], tg_get(y, r));
        wrong += (tg_get(y, r) > threshold) != (XOR[r] > 0.5);
    }
    return wrong;
}

int demo_xor(const char *outdir)
{
    (void)outdir;
    tg_tape *tp = tg_tape_new();
    int64_t s42[2] = {4, 2}, s43[2] = {4, 3}, s31[2] = {3, 1}, s22[2] = {2, 2}, s21[2] = {2, 1};
    int64_t s1[1] = {1}, s2[1] = {2}, s41[2] = {4, 1};
    int wrong = 0;

    /* (a) the extra feature x1*x2 */
    tg_tensor *x3 = tg_tensor_new(TG_F64, 2, s43);
    for (int r = 0; r < 4; r++) {
        tg_set(x3, 3 * r, X4[2 * r]), tg_set(x3, 3 * r + 1, X4[2 * r + 1]);
        tg_set(x3, 3 * r + 2, X4[2 * r] * X4[2 * r + 1]);
    }
    tg_tensor *wa = tg_tensor_from(TG_F64, 2, s31, (double[]){1, 1, -2});
    tg_tensor *ba = tg_tensor_from(TG_F64, 1, s1, (double[]){-0.5});
    wrong += check("(a) one neuron on (x1, x2, x1*x2): [x1 + x2 - 2 x1 x2 - 0.5 > 0]",
                   tg_step(tp, tg_linear(tp, x3, wa, ba)), 0.5);

    /* (b) two layers with fixed weights: hidden OR and AND, output OR - AND - 0.5 */
    tg_tensor *x = tg_tensor_from(TG_F64, 2, s42, X4);
    tg_tensor *w1 = tg_tensor_from(TG_F64, 2, s22, (double[]){1, 1, 1, 1});
    tg_tensor *b1 = tg_tensor_from(TG_F64, 1, s2, (double[]){-0.5, -1.5});
    tg_tensor *w2 = tg_tensor_from(TG_F64, 2, s21, (double[]){1, -1});
    tg_tensor *b2 = tg_tensor_from(TG_F64, 1, s1, (double[]){-0.5});
    tg_tensor *h = tg_step(tp, tg_linear(tp, x, w1, b1));
    wrong += check("(b) two threshold layers: [OR(x) - AND(x) - 0.5 > 0]",
                   tg_step(tp, tg_linear(tp, h, w2, b2)), 0.5);

    /* (c) learned: 2-4-1, tanh hidden, sigmoid output, BCE, Adam, full batch */
    int64_t sizes[3] = {2, 4, 1};
    tg_status st;
    tg_module *net = tg_nn_mlp(3, sizes, "tanh", 0, false, TG_F64, &st);
    tg_rng rng;
    tg_rng_seed(&rng, 3);
    tg_nn_init(net, TG_INIT_XAVIER_UNIFORM, 0, &rng);
    tg_tensor *params[8];
    int np = tg_nn_params(net, params, 8);
    tg_optim_opts oo;
    tg_optim_defaults("adam", &oo);
    oo.lr = 0.05;
    tg_optim *opt = tg_optim_new("adam", np, params, &oo, &st);
    tg_tensor *y = tg_tensor_from(TG_F64, 2, s41, XOR);
    double loss = (double)NAN;
    for (int step = 0; step < 500; step++) {
        tg_tape_reset(tp);
        tg_tensor *l = tg_bce_with_logits_loss(tp, tg_nn_forward(net, tp, x), y);
        tg_optim_zero_grad(opt);
        if (!l || tg_backward(tp, l) || tg_optim_step(opt)) {
            fprintf(stderr, "xor: %s\n", tg_tape_error(tp));
            wrong++;
            break;
        }
        loss = tg_get(l, 0);
        if (step % 100 == 0) printf("  step %3d: loss %.4f\n", step, loss);
    }
    tg_tape_reset(tp);
    tg_tensor *p = tg_sigmoid(tp, tg_nn_forward(net, tp, x));
    wrong += check("(c) a trained 2-4-1 tanh network, sigmoid output", p, 0.5);
    printf("final loss %.5f; %s\n", loss,
           wrong ? "XOR NOT reproduced" : "XOR computed all three ways");

    tg_optim_free(opt);
    tg_nn_free(net);
    tg_tensor *all[] = {x3, wa, ba, x, w1, b1, w2, b2, y};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) tg_tensor_free(all[i]);
    tg_tape_free(tp);
    return wrong != 0;
}

#ifdef TG_EXAMPLE_MAIN
DEMO_MAIN(xor)
#endif
