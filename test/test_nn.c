/* test/test_nn.c: layers (forward by hand, every activation, PReLU, dropout, train/eval),
 * every constructor's argument ranges, the tree rules of tg_nn_append (one container per
 * module, no cycle, bounded depth, one dtype), parameter listing order and binding,
 * describe, initialisers (statistics, orthogonality),
 * whole-model gradient checks, and save/load: round trip with buffers, truncated, corrupted
 * and mismatched files, failed saves leaving the old file intact. */
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "check.h"
#include "tapegrad.h"

static void test_mlp_forward_by_hand(void)
{
    int64_t sizes[3] = {2, 2, 1};
    tg_status st;
    tg_module *net = tg_nn_mlp(3, sizes, "relu", 0, false, TG_F64, &st);
    CHECK(net && tg_nn_n_params(net) == 4 && tg_nn_n_weights(net) == 4 + 2 + 2 + 1);
    tg_tensor *p[4];
    CHECK(tg_nn_params(net, p, 4) == 4);
    const double w1[4] = {1, -1, 2, 1}, b1[2] = {0.5, -3}, w2[2] = {2, -1}, b2[1] = {0.25};
    for (int i = 0; i < 4; i++) tg_set(p[0], i, w1[i]);
    for (int i = 0; i < 2; i++) tg_set(p[1], i, b1[i]), tg_set(p[2], i, w2[i]);
    tg_set(p[3], 0, b2[0]);
    int64_t xs[2] = {1, 2};
    tg_tensor *x = tg_tensor_from(TG_F64, 2, xs, (double[]){1, 2});
    tg_tape *tp = tg_tape_new();
    /* h = relu([1·1 + 2·2 + 0.5, 1·-1 + 2·1 - 3]) = relu([5.5, -2]) = [5.5, 0]; y = 11.25. */
    tg_tensor *y = tg_nn_forward(net, tp, x);
    CHECK(y && fabs(tg_get(y, 0) - 11.25) < 1e-12);
    CHECK(tg_backward(tp, tg_sum(tp, y, TG_ALL_AXES, false)) == TG_OK);
    CHECK(fabs(tg_get(tg_grad(p[2]), 0) - 5.5) < 1e-12 && tg_get(tg_grad(p[2]), 1) == 0);
    CHECK(tg_get(tg_grad(p[0]), 1) == 0);              /* the dead unit passes no gradient */
    CHECK(fabs(tg_get(tg_grad(p[0]), 2) - 4) < 1e-12); /* x2 · w2[0] = 2 · 2 */
    tg_tape_free(tp);
    tg_tensor_free(x);
    tg_nn_free(net);
}

/* Whole-model gradient check: the parameters are the inputs, bound into the module. */
typedef struct model {
    tg_module *net;
    tg_tensor *x, *y;
    int n;
} model;

static tg_tensor *model_loss(tg_tape *tp, tg_tensor *const *in, void *ctx)
{
    model *m = ctx;
    if (tg_nn_bind_params(m->net, in, m->n)) return NULL;
    return tg_cross_entropy(tp, tg_nn_forward(m->net, tp, m->x), m->y);
}

static void test_whole_model_gradcheck(void)
{
    int64_t sizes[4] = {4, 5, 3, 3};
    const char *acts[4] = {"tanh", "sigmoid", "elu", "softplus"};
    for (int a = 0; a < 4; a++) {
        tg_status st;
        model m = {0};
        m.net = tg_nn_mlp(4, sizes, acts[a], a == 0 ? 0.2 : 0, a == 2, TG_F64, &st);
        tg_rng r;
        tg_rng_seed(&r, 3);
        tg_nn_init(m.net, TG_INIT_XAVIER_NORMAL, 0, &r);
        tg_tensor *params[16];
        m.n = tg_nn_params(m.net, params, 16);
        int64_t xs[2] = {5, 4}, ys[1] = {5};
        m.x = tg_tensor_new(TG_F64, 2, xs);
        m.y = tg_tensor_from(TG_F64, 1, ys, (double[]){0, 2, 1, 1, 0});
        tg_tensor_rand_normal(m.x, 0, 1, &r);
        tg_gradcheck_result res;
        tg_gradcheck_opts go = {.seed = 9};
        CHECK(tg_gradcheck(model_loss, m.n, params, &m, &go, &res) == TG_OK);
        CHECK(res.n_checked == tg_nn_n_weights(m.net));
        if (res.max_rel_err > 1e-6) printf("  %s: max rel err %g\n", acts[a], res.max_rel_err);
        CHECK(res.max_rel_err <= 1e-6);
        CHECK(tg_nn_bind_params(m.net, params, m.n) == TG_OK);
        tg_tensor_free(m.x), tg_tensor_free(m.y);
        tg_nn_free(m.net);
    }
    /* Every layer with parameters at once: linear, batch norm, per-channel PReLU. */
    model m = {tg_nn_sequential(), NULL, NULL, 0};
    tg_nn_append(m.net, tg_nn_linear(4, 3, TG_F64));
    tg_nn_append(m.net, tg_nn_batchnorm1d(3, 0.1, 1e-5, TG_F64));
    tg_nn_append(m.net, tg_nn_prelu(3, 0.2, TG_F64));
    tg_nn_append(m.net, tg_nn_linear(3, 3, TG_F64));
    tg_nn_append(m.net, tg_nn_activation("log_softmax", 0, TG_F64));
    tg_rng r;
    tg_rng_seed(&r, 5);
    tg_nn_init(m.net, TG_INIT_ORTHOGONAL, 0, &r);
    tg_tensor *params[8];
    m.n = tg_nn_params(m.net, params, 8);
    CHECK(m.n == 7);
    tg_tensor_rand_uniform(params[1], -0.3, 0.3, &r);
    tg_tensor_rand_uniform(params[2], 0.5, 1.5, &r);  /* gamma */
    tg_tensor_rand_uniform(params[3], -0.3, 0.3, &r); /* beta */
    int64_t xs[2] = {6, 4}, ys[1] = {6};
    m.x = tg_tensor_new(TG_F64, 2, xs);
    m.y = tg_tensor_from(TG_F64, 1, ys, (double[]){0, 2, 1, 1, 0, 2});
    tg_tensor_rand_normal(m.x, 0, 1, &r);
    tg_gradcheck_result res;
    tg_gradcheck_opts go = {.seed = 4};
    CHECK(tg_gradcheck(model_loss, m.n, params, &m, &go, &res) == TG_OK);
    CHECK(res.n_checked == tg_nn_n_weights(m.net));
    if (res.max_rel_err > 1e-6)
        printf("  linear/batchnorm/prelu: max rel err %g\n", res.max_rel_err);
    CHECK(res.max_rel_err <= 1e-6);
    tg_nn_bind_params(m.net, params, m.n);
    tg_tensor_free(m.x), tg_tensor_free(m.y);
    tg_nn_free(m.net);
}

/* Sequential records a linear layer and a following relu, tanh, sigmoid or leaky_relu
 * (alpha >= 0) as one linear_act node, and every other pair as two; the fused forward and
 * gradients equal the composition. */
static void test_sequential_fuses(void)
{
    const struct {
        const char *act;
        double alpha;
        bool fused;
    } cases[] = {{"relu", 0, true},         {"tanh", 0, true},           {"sigmoid", 0, true},
                 {"leaky_relu", 0.2, true}, {"leaky_relu", -0.5, false}, {"elu", 0, false},
                 {"softplus", 0, false},    {"identity", 0, false}};
    tg_rng r;
    tg_rng_seed(&r, 4);
    int64_t xs[2] = {5, 3};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        tg_module *seq = tg_nn_sequential(), *lin = tg_nn_linear(3, 4, TG_F64);
        tg_nn_append(seq, lin);
        tg_nn_append(seq, tg_nn_activation(cases[c].act, cases[c].alpha, TG_F64));
        tg_tensor *p[2], *x = tg_tensor_new(TG_F64, 2, xs);
        tg_nn_params(seq, p, 2);
        tg_tensor_rand_uniform(x, -1, 1, &r), tg_tensor_rand_uniform(p[1], -1, 1, &r);
        tg_tape *tp = tg_tape_new();
        tg_tensor *y = tg_nn_forward(seq, tp, x);
        const tg_node *first = tg_tape_first(tp);
        bool one =
            tg_tape_n_nodes(tp) == 1 && first && strcmp(tg_node_op(first), "linear_act") == 0;
        CHECK(y && one == cases[c].fused);
        if (!(y && one == cases[c].fused))
            printf("  %s: %lld nodes\n", cases[c].act, (long long)tg_tape_n_nodes(tp));
        CHECK(tg_backward(tp, tg_sum(tp, tg_square(tp, y), TG_ALL_AXES, false)) == TG_OK);
        tg_tensor *gw = tg_tensor_clone(tg_grad(p[0])), *yv = tg_tensor_clone(y);
        /* the same function by hand: linear, then the activation op */
        tg_tape *t2 = tg_tape_new();
        tg_zero_grad(p[0]), tg_zero_grad(p[1]);
        tg_module *act = tg_nn_activation(cases[c].act, cases[c].alpha, TG_F64);
        tg_tensor *y2 = tg_nn_forward(act, t2, tg_linear(t2, x, p[0], p[1]));
        CHECK(tg_backward(t2, tg_sum(t2, tg_square(t2, y2), TG_ALL_AXES, false)) == TG_OK);
        double e = 0;
        for (int i = 0; i < 20; i++) e = fmax(e, fabs(tg_get(yv, i) - tg_get(y2, i)));
        for (int i = 0; i < 12; i++) e = fmax(e, fabs(tg_get(gw, i) - tg_get(tg_grad(p[0]), i)));
        CHECK(e < 1e-13);
        tg_nn_free(act);
        tg_tape_free(t2), tg_tape_free(tp);
        tg_tensor_free(gw), tg_tensor_free(yv), tg_tensor_free(x);
        tg_nn_free(seq);
    }
}

/* A training step of a tg_nn_mlp (linear_act nodes) in steady state takes nothing from the
 * allocator: the tape's block count and high-water mark stop moving after the first step. */
static void test_mlp_step_allocates_nothing(void)
{
    int64_t sizes[4] = {20, 32, 32, 5}, xs[2] = {16, 20}, ys[1] = {16};
    tg_status st;
    tg_module *net = tg_nn_mlp(4, sizes, "relu", 0, false, TG_F32, &st);
    tg_tensor *p[6], *x = tg_tensor_new(TG_F32, 2, xs), *y = tg_tensor_new(TG_F32, 1, ys);
    tg_rng r;
    tg_rng_seed(&r, 2);
    tg_tensor_rand_uniform(x, -1, 1, &r);
    for (int i = 0; i < 16; i++) tg_set(y, i, (double)(i % 5));
    int np = tg_nn_params(net, p, 6);
    tg_optim *o = tg_optim_new("momentum", np, p, NULL, &st);
    tg_tape *tp = tg_tape_new();
    tg_tape_stats s1 = {0}, s;
    int bad = 0;
    for (int step = 0; step < 100; step++) {
        tg_tape_reset(tp);
        tg_tensor *loss = tg_cross_entropy(tp, tg_nn_forward(net, tp, x), y);
        tg_optim_zero_grad(o);
        bad += !loss || tg_backward(tp, loss) || tg_optim_step(o);
        if (step == 1) tg_tape_get_stats(tp, &s1);
    }
    tg_tape_get_stats(tp, &s);
    CHECK(bad == 0 && s.n_nodes == 4); /* linear_act, linear_act, linear, cross_entropy */
    CHECK(s.n_allocs == s1.n_allocs && s.arena_high == s1.arena_high);
    tg_tape_free(tp);
    tg_optim_free(o);
    tg_tensor_free(x), tg_tensor_free(y);
    tg_nn_free(net);
}

static void test_train_eval_modes(void)
{
    tg_module *seq = tg_nn_sequential();
    CHECK(tg_nn_append(seq, tg_nn_batchnorm1d(2, 0.5, 1e-5, TG_F64)) == TG_OK);
    CHECK(tg_nn_append(seq, tg_nn_dropout(0.5)) == TG_OK);
    int64_t xs[2] = {4, 2};
    tg_tensor *x = tg_tensor_from(TG_F64, 2, xs, (double[]){1, 10, 2, 20, 3, 30, 4, 40});
    tg_tape *tp = tg_tape_new();
    tg_tensor *y = tg_nn_forward(seq, tp, x);
    int zeros = 0;
    for (int i = 0; y && i < 8; i++) zeros += tg_get(y, i) == 0;
    CHECK(zeros > 0); /* dropout is on in training (seeded tape: deterministic) */
    tg_nn_set_training(seq, false);
    CHECK(!tg_nn_training(seq));
    tg_tape_reset(tp);
    y = tg_nn_forward(seq, tp, x);
    /* eval: running mean = 0.5·2.5 = 1.25 and 0.5·25 = 12.5; running var = 0.5 + 0.5·(5/3)
     * and 0.5 + 0.5·(500/3); no dropout. */
    CHECK(y && fabs(tg_get(y, 0) - (1 - 1.25) / sqrt(0.5 + 0.5 * 5.0 / 3 + 1e-5)) < 1e-9);
    CHECK(y && fabs(tg_get(y, 1) - (10 - 12.5) / sqrt(0.5 + 0.5 * 500.0 / 3 + 1e-5)) < 1e-9);
    tg_tape_free(tp);
    tg_tensor_free(x);
    tg_nn_free(seq);
}

/* Every activation name as a layer gives what its op gives; PReLU with 1 or C channels. */
static void test_activation_layers(void)
{
    const char *names[] = {"sigmoid", "tanh", "relu",    "leaky_relu",  "elu",     "softplus",
                           "step",    "sign", "softmax", "log_softmax", "identity"};
    int64_t xs[2] = {2, 3};
    tg_tensor *x = tg_tensor_from(TG_F64, 2, xs, (double[]){-2, -0.5, 0.25, 1, 3, -1});
    tg_tape *tp = tg_tape_new();
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        double alpha = i == 3 ? 0.2 : i == 4 ? 0.5 : 0;
        tg_module *a = tg_nn_activation(names[i], alpha, TG_F64);
        CHECK(a != NULL && tg_nn_n_params(a) == 0);
        tg_tensor *y = tg_nn_forward(a, tp, x), *want;
        switch (i) {
        case 0: want = tg_sigmoid(tp, x); break;
        case 1: want = tg_tanh(tp, x); break;
        case 2: want = tg_relu(tp, x); break;
        case 3: want = tg_leaky_relu(tp, x, 0.2); break;
        case 4: want = tg_elu(tp, x, 0.5); break;
        case 5: want = tg_softplus(tp, x); break;
        case 6: want = tg_step(tp, x); break;
        case 7: want = tg_sign(tp, x); break;
        case 8: want = tg_softmax(tp, x, 1); break;
        case 9: want = tg_log_softmax(tp, x, 1); break;
        default: want = x;
        }
        bool eq = y && want;
        for (int k = 0; eq && k < 6; k++) eq = tg_get(y, k) == tg_get(want, k);
        if (!eq) printf("  activation layer %s differs from its op\n", names[i]);
        CHECK(eq);
        tg_nn_free(a);
    }
    /* Defaults when alpha is 0: leaky 0.01, elu 1. */
    tg_module *lk = tg_nn_activation("leaky_relu", 0, TG_F64),
              *el = tg_nn_activation("elu", 0, TG_F64);
    tg_tensor *yl = tg_nn_forward(lk, tp, x), *ye = tg_nn_forward(el, tp, x);
    CHECK(yl && fabs(tg_get(yl, 0) - -0.02) < 1e-15);
    CHECK(ye && fabs(tg_get(ye, 0) - expm1(-2.0)) < 1e-15);
    tg_nn_free(lk), tg_nn_free(el);
    CHECK(tg_nn_activation(NULL, 0, TG_F64) == NULL);
    CHECK(tg_nn_activation("Relu", 0, TG_F64) == NULL);
    CHECK(tg_nn_activation("relu", 0, (tg_dtype)42) == NULL);

    /* PReLU: one alpha, or one per channel (x's last dimension), learnable. */
    tg_module *p1 = tg_nn_prelu(1, 0.25, TG_F64), *p3 = tg_nn_prelu(3, 0.1, TG_F64);
    tg_tensor *pa[1];
    CHECK(tg_nn_params(p3, pa, 1) == 1 && tg_tensor_numel(pa[0]) == 3 && tg_get(pa[0], 2) == 0.1);
    tg_set(pa[0], 1, 0.5);
    tg_tensor *y1 = tg_nn_forward(p1, tp, x), *y3 = tg_nn_forward(p3, tp, x);
    CHECK(y1 && tg_get(y1, 0) == -0.5 && tg_get(y1, 2) == 0.25);
    CHECK(y3 && tg_get(y3, 1) == -0.25 && tg_get(y3, 5) == -0.1 && tg_get(y3, 4) == 3);
    CHECK(tg_backward(tp, tg_sum(tp, y3, TG_ALL_AXES, false)) == TG_OK);
    /* d/dalpha_c = sum of the negative inputs of channel c: -2, -0.5, -1. */
    CHECK(tg_get(tg_grad(pa[0]), 0) == -2 && tg_get(tg_grad(pa[0]), 1) == -0.5 &&
          tg_get(tg_grad(pa[0]), 2) == -1);
    CHECK(tg_nn_prelu(0, 0.25, TG_F64) == NULL && tg_nn_prelu(2, (double)NAN, TG_F64) == NULL);
    tg_nn_free(p1), tg_nn_free(p3);
    tg_tape_free(tp);
    tg_tensor_free(x);
}

/* Parameter order: depth first, weight before bias, gamma before beta; buffers excluded. */
static void test_param_order(void)
{
    tg_module *seq = tg_nn_sequential(), *inner = tg_nn_sequential();
    CHECK(tg_nn_append(seq, tg_nn_linear(3, 4, TG_F32)) == TG_OK);
    CHECK(tg_nn_append(seq, tg_nn_batchnorm1d(4, 0.1, 1e-5, TG_F32)) == TG_OK);
    CHECK(tg_nn_append(inner, tg_nn_prelu(4, 0.25, TG_F32)) == TG_OK);
    CHECK(tg_nn_append(inner, tg_nn_activation("relu", 0, TG_F32)) == TG_OK);
    CHECK(tg_nn_append(inner, tg_nn_dropout(0.5)) == TG_OK);
    CHECK(tg_nn_append(seq, inner) == TG_OK);
    CHECK(tg_nn_append(seq, tg_nn_linear(4, 2, TG_F32)) == TG_OK);
    const int64_t want[7][2] = {{3, 4}, {4, 0}, {4, 0}, {4, 0}, {4, 0}, {4, 2}, {2, 0}};
    const double first[7] = {(double)NAN, 0,           1, 0,
                             0.25,        (double)NAN, 0}; /* fill values where known */
    tg_tensor *p[8] = {0};
    CHECK(tg_nn_n_params(seq) == 7 && tg_nn_params(seq, p, 8) == 7 && p[7] == NULL);
    for (int i = 0; i < 7; i++) {
        bool ok = p[i] && tg_tensor_ndim(p[i]) == (want[i][1] ? 2 : 1) &&
                  tg_tensor_dim(p[i], 0) == want[i][0] &&
                  (!want[i][1] || tg_tensor_dim(p[i], 1) == want[i][1]) && tg_requires_grad(p[i]);
        if (ok && !isnan(first[i])) ok = tg_get(p[i], 0) == first[i];
        if (!ok) printf("  parameter %d is not the expected one\n", i);
        CHECK(ok);
    }
    /* gamma is 1, beta 0 (index 1 is the first linear's bias, 0) */
    CHECK(tg_get(p[2], 3) == 1 && tg_get(p[3], 3) == 0);
    CHECK(tg_nn_n_weights(seq) == 12 + 4 + 4 + 4 + 4 + 8 + 2);
    /* A short array gets the first max; the count is still the total. */
    tg_tensor *r[4] = {0, 0, 0, p[6]};
    CHECK(tg_nn_params(seq, r, 3) == 7 && r[0] == p[0] && r[2] == p[2] && r[3] == p[6]);
    CHECK(tg_nn_params(seq, NULL, 0) == 7);
    tg_tensor *again[8];
    tg_nn_params(seq, again, 8);
    CHECK(memcmp(again, p, 7 * sizeof p[0]) == 0); /* stable */

    /* Training mode reaches nested containers, also those appended later. */
    tg_nn_set_training(seq, false);
    tg_module *late = tg_nn_sequential();
    CHECK(tg_nn_append(late, tg_nn_dropout(0.5)) == TG_OK);
    CHECK(tg_nn_training(late));
    CHECK(tg_nn_append(seq, late) == TG_OK && !tg_nn_training(late));
    int64_t xs[2] = {2, 3};
    tg_tensor *x = tg_tensor_new(TG_F32, 2, xs);
    tg_tensor_fill(x, 1);
    tg_tape *tp = tg_tape_new();
    tg_tensor *y = tg_nn_forward(seq, tp, x), *y2 = tg_nn_forward(seq, tp, x);
    CHECK(y && y2 && tg_get(y, 1) == tg_get(y2, 1)); /* eval: no dropout anywhere */

    /* describe: one line per layer, nested containers indented. */
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    CHECK(tg_nn_describe(seq, f) == TG_OK);
    fclose(f);
    CHECK_STR_HAS(text, "sequential (5 layers)\n  linear 3 -> 4 (weight [3,4], bias [4])\n"
                        "  batchnorm1d 4 (momentum 0.1, eps 1e-05)\n  sequential (3 layers)\n"
                        "    prelu (alpha [4])\n    relu\n    dropout p=0.5\n"
                        "  linear 4 -> 2 (weight [4,2], bias [2])\n");
    free(text);
    CHECK(tg_nn_describe(NULL, stdout) == TG_EARG && tg_nn_describe(seq, NULL) == TG_EARG);
    tg_tape_free(tp);
    tg_tensor_free(x);
    tg_nn_free(seq);
}

/* tg_nn_mlp's layout, and the default initialisation: one generator for the whole model. */
static void test_mlp_layout(void)
{
    int64_t sizes[4] = {5, 5, 5, 2};
    tg_status st;
    tg_module *net = tg_nn_mlp(4, sizes, "elu", 0.25, true, TG_F32, &st);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    tg_nn_describe(net, f);
    fclose(f);
    CHECK_STR_HAS(
        text,
        "sequential (9 layers)\n  linear 5 -> 5 (weight [5,5], bias [5])\n"
        "  batchnorm1d 5 (momentum 0.1, eps 1e-05)\n  elu\n  dropout p=0.25\n"
        "  linear 5 -> 5 (weight [5,5], bias [5])\n  batchnorm1d 5 (momentum 0.1, eps 1e-05)\n"
        "  elu\n  dropout p=0.25\n  linear 5 -> 2 (weight [5,2], bias [2])\n");
    free(text);
    tg_tensor *p[10];
    CHECK(tg_nn_params(net, p, 10) == 10);
    /* The two [5,5] weights are different draws, within ±1/sqrt(5); biases 0. */
    CHECK(memcmp(tg_data(p[0]), tg_data(p[4]), 25 * sizeof(float)) != 0);
    double lim = 1 / sqrt(5.0), worst = 0;
    for (int k = 0; k < 25; k++) worst = fmax(worst, fabs(tg_get(p[4], k)));
    CHECK(worst > 0 && worst <= lim && tg_get(p[1], 4) == 0);
    /* Deterministic: the same model twice. */
    tg_module *again = tg_nn_mlp(4, sizes, "elu", 0.25, true, TG_F32, &st);
    tg_tensor *q[10];
    tg_nn_params(again, q, 10);
    CHECK(memcmp(tg_data(p[8]), tg_data(q[8]), 10 * sizeof(float)) == 0);
    tg_nn_free(again);
    tg_nn_free(net);
}

/* Dropout as a layer: about p of the elements zeroed, the rest scaled by 1/(1-p) while
 * training; exactly the input in eval. */
static void test_dropout_layer(void)
{
    tg_module *d = tg_nn_dropout(0.3);
    int64_t xs[2] = {200, 100};
    tg_tensor *x = tg_tensor_new(TG_F64, 2, xs);
    tg_tensor_fill(x, 2);
    tg_tape *tp = tg_tape_new();
    tg_tape_seed(tp, 11);
    tg_tensor *y = tg_nn_forward(d, tp, x);
    int64_t zeros = 0, scaled = 0;
    for (int64_t i = 0; y && i < 20000; i++) {
        zeros += tg_get(y, i) == 0;
        scaled += fabs(tg_get(y, i) - 2 / 0.7) < 1e-12;
    }
    /* Binomial(20000, 0.3): sd 64.8; 5 sd. */
    CHECK(y && llabs(zeros - 6000) < 325 && zeros + scaled == 20000);
    tg_nn_set_training(d, false);
    y = tg_nn_forward(d, tp, x);
    bool same_values = y != NULL;
    for (int64_t i = 0; same_values && i < 20000; i++) same_values = tg_get(y, i) == 2;
    CHECK(same_values);
    tg_nn_free(d);
    CHECK(tg_nn_dropout(1) == NULL && tg_nn_dropout((double)NAN) == NULL);
    tg_module *z = tg_nn_dropout(0); /* p = 0: identity even in training */
    y = tg_nn_forward(z, tp, x);
    CHECK(y && tg_get(y, 123) == 2);
    tg_nn_free(z);
    tg_tape_free(tp);
    tg_tensor_free(x);
}

static double mean_of(const tg_tensor *t, double *sd)
{
    double m = 0, v = 0;
    int64_t n = tg_tensor_numel(t);
    for (int64_t i = 0; i < n; i++) m += tg_get(t, i) / (double)n;
    for (int64_t i = 0; i < n; i++) v += (tg_get(t, i) - m) * (tg_get(t, i) - m) / (double)n;
    *sd = sqrt(v);
    return m;
}

static void test_initialisers(void)
{
    const int64_t in = 400, out = 300;
    const struct {
        tg_init kind;
        double sd;
    } k[] = {{TG_INIT_UNIFORM, 1 / sqrt(400.0) / sqrt(3.0)},
             {TG_INIT_XAVIER_NORMAL, sqrt(2.0 / 700)},
             {TG_INIT_XAVIER_UNIFORM, sqrt(6.0 / 700) / sqrt(3.0)},
             {TG_INIT_HE_NORMAL, sqrt(2.0 / 400)},
             {TG_INIT_HE_UNIFORM, sqrt(6.0 / 400) / sqrt(3.0)}};
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
        tg_module *l = tg_nn_linear(in, out, TG_F64);
        tg_rng r;
        tg_rng_seed(&r, 1 + i);
        CHECK(tg_nn_init(l, k[i].kind, 0, &r) == TG_OK);
        tg_tensor *p[2];
        tg_nn_params(l, p, 2);
        double sd, m = mean_of(p[0], &sd);
        /* 120000 draws: the mean is within 5 standard errors, the std within 2%. */
        CHECK(fabs(m) < 5 * k[i].sd / sqrt(120000.0));
        CHECK(fabs(sd / k[i].sd - 1) < 0.02);
        double bs;
        CHECK(mean_of(p[1], &bs) == 0 && bs == 0);
        tg_nn_free(l);
    }
    /* Orthogonal: WᵀW = I (tall), WWᵀ = I (wide), and square. */
    const int64_t shapes[3][2] = {{8, 5}, {5, 8}, {6, 6}};
    for (int s = 0; s < 3; s++) {
        tg_module *l = tg_nn_linear(shapes[s][0], shapes[s][1], TG_F64);
        tg_rng r;
        tg_rng_seed(&r, 4);
        CHECK(tg_nn_init(l, TG_INIT_ORTHOGONAL, 0, &r) == TG_OK);
        tg_tensor *p[2];
        tg_nn_params(l, p, 2);
        int64_t a = shapes[s][0], b = shapes[s][1];
        bool tall = a >= b;
        double worst = 0;
        int64_t n = tall ? b : a;
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < n; j++) {
                double d = 0;
                for (int64_t q = 0; q < (tall ? a : b); q++)
                    d += tall ? tg_get(p[0], q * b + i) * tg_get(p[0], q * b + j)
                              : tg_get(p[0], i * b + q) * tg_get(p[0], j * b + q);
                worst = fmax(worst, fabs(d - (i == j)));
            }
        CHECK(worst < 1e-12);
        tg_nn_free(l);
    }
    tg_module *c = tg_nn_linear(3, 2, TG_F32);
    tg_rng r;
    tg_rng_seed(&r, 1);
    CHECK(tg_nn_init(c, TG_INIT_CONSTANT, 0.5, &r) == TG_OK);
    tg_tensor *p[2];
    tg_nn_params(c, p, 2);
    CHECK(tg_get(p[0], 5) == 0.5 && tg_get(p[1], 1) == 0.5);
    CHECK(tg_nn_init(c, (tg_init)99, 0, &r) == TG_EARG);
    CHECK(tg_nn_init(c, TG_INIT_UNIFORM, 0, NULL) == TG_EARG);
    tg_nn_free(c);
}

static void test_errors(void)
{
    tg_status st;
    int64_t bad[2] = {3, 0};
    CHECK(tg_nn_mlp(2, bad, "relu", 0, false, TG_F32, &st) == NULL);
    CHECK_STR_HAS(st.msg, "layer size 1 is 0");
    int64_t ok[2] = {3, 2};
    CHECK(tg_nn_mlp(2, ok, "nosuch", 0, false, TG_F32, &st) == NULL);
    CHECK_STR_HAS(st.msg, "unknown activation 'nosuch'");
    CHECK(tg_nn_mlp(1, ok, "relu", 0, false, TG_F32, &st) == NULL);
    CHECK(tg_nn_mlp(2, ok, "relu", 1.0, false, TG_F32, &st) == NULL);
    CHECK(tg_nn_linear(0, 3, TG_F32) == NULL);
    CHECK(tg_nn_activation("nosuch", 0, TG_F32) == NULL);
    CHECK(tg_nn_dropout(-0.1) == NULL);
    CHECK(tg_nn_append(NULL, tg_nn_dropout(0.1)) == TG_EARG); /* frees the layer: valgrind */
    tg_module *net = tg_nn_mlp(2, ok, "relu", 0, false, TG_F32, &st);
    tg_tape *tp = tg_tape_new();
    int64_t xs[2] = {4, 5};
    tg_tensor *x = tg_tensor_new(TG_F32, 2, xs);
    CHECK(tg_nn_forward(net, tp, x) == NULL);
    CHECK_STR_HAS(tg_tape_error(tp), "tg_linear: [4,5], [3,2] and [2]");
    tg_tensor *p[2];
    tg_nn_params(net, p, 2);
    tg_tensor *swapped[2] = {p[1], p[0]};
    CHECK(tg_nn_bind_params(net, swapped, 2) == TG_ESHAPE);
    CHECK(tg_nn_bind_params(net, p, 1) == TG_EARG);
    tg_tape_free(tp);
    tg_tensor_free(x);
    tg_nn_free(net);
}

/* describe's text of m, or "(null)": what the tree looks like. */
static char *tree_text(const tg_module *m, char *buf, size_t size)
{
    FILE *f = fmemopen(buf, size, "w");
    if (!m || !f || tg_nn_describe(m, f) != TG_OK) snprintf(buf, size, "(null)");
    if (f) fclose(f);
    return buf;
}

/* A module belongs to one tree and a tree has no cycle: over a forest of two trees and a
 * free-standing container, every tg_nn_append of a module that is already in a container,
 * of a container into itself, or of an ancestor into its descendant is TG_EARG and
 * changes nothing (every tree's describe text stays the same, nothing is freed twice: ASan
 * and valgrind run this). The forest is modelled here: parent[i] is the index of module
 * i's container. */
static void test_append_tree_rules(void)
{
    enum { R1, S1, S2, L1, L2, L3, R2, L4, F, N };
    tg_module *m[N];
    int parent[N];
    for (int i = 0; i < N; i++) parent[i] = -1;
    m[R1] = tg_nn_sequential(), m[S1] = tg_nn_sequential(), m[S2] = tg_nn_sequential();
    m[R2] = tg_nn_sequential(), m[F] = tg_nn_sequential();
    m[L1] = tg_nn_linear(3, 4, TG_F32), m[L2] = tg_nn_activation("tanh", 0, TG_F32);
    m[L3] = tg_nn_linear(4, 2, TG_F32), m[L4] = tg_nn_dropout(0.5);
    const int edges[][2] = {{S2, L3}, {S1, L2}, {S1, S2}, {R1, L1}, {R1, S1}, {R2, L4}};
    for (size_t e = 0; e < sizeof edges / sizeof edges[0]; e++) {
        CHECK(tg_nn_append(m[edges[e][0]], m[edges[e][1]]) == TG_OK);
        parent[edges[e][1]] = edges[e][0];
    }
    const int roots[3] = {R1, R2, F};
    char before[3][1024], after[1024];
    for (int r = 0; r < 3; r++) tree_text(m[roots[r]], before[r], sizeof before[r]);
    int refused = 0;
    for (int c = 0; c < N; c++)
        for (int k = 0; k < N; k++) {
            bool container = c == R1 || c == S1 || c == S2 || c == R2 || c == F;
            bool ancestor = false; /* k is c or holds it */
            for (int a = c; a >= 0; a = parent[a]) ancestor |= a == k;
            if (!container || !(parent[k] >= 0 || ancestor)) continue;
            int rc = tg_nn_append(m[c], m[k]);
            const tg_status *why = tg_nn_last_status();
            bool same = rc == TG_EARG && why->code == TG_EARG;
            CHECK_STR_HAS(why->msg, parent[k] >= 0 ? "already in a container" : "contain itself");
            for (int r = 0; r < 3; r++)
                same &= strcmp(tree_text(m[roots[r]], after, sizeof after), before[r]) == 0;
            if (!same)
                printf("  appending module %d into %d: rc %d, the forest changed\n", k, c, rc);
            CHECK(same);
            refused++;
            /* a NULL or non-sequential container does not free a module that is in a tree */
            if (parent[k] >= 0) {
                CHECK(tg_nn_append(NULL, m[k]) == TG_EARG && tg_nn_append(m[L1], m[k]) == TG_EARG);
            }
        }
    CHECK(refused == 5 * 6 + 5); /* 6 modules in trees into each container; each container
                                    into itself or its descendants: R1 3, S1 2, S2 1, R2 1, F 1 */
    /* The cases by name: twice, and a cycle. */
    tg_module *a = tg_nn_sequential(), *b = tg_nn_sequential(), *lin = tg_nn_linear(2, 2, TG_F64);
    /* NOLINTNEXTLINE(misc-redundant-expression): two calls: the 2nd is refused */
    CHECK(tg_nn_append(a, lin) == TG_OK && tg_nn_append(a, lin) == TG_EARG);
    CHECK(tg_nn_n_params(a) == 2);
    CHECK(tg_nn_append(b, a) == TG_OK && tg_nn_append(a, b) == TG_EARG && tg_nn_n_params(b) == 2);
    CHECK(tg_nn_append(a, a) == TG_EARG);
    tg_nn_free(a);   /* in b: does nothing */
    tg_nn_free(lin); /* in a: does nothing */
    CHECK(tg_nn_n_params(b) == 2);
    tg_nn_free(b);
    /* Refusals that take ownership free the module (valgrind: no leak). */
    CHECK(tg_nn_append(m[L1], tg_nn_dropout(0.1)) == TG_EARG);
    CHECK_STR_HAS(tg_nn_last_status()->msg, "tg_nn_append: the container is not a sequential");
    CHECK(tg_nn_append(NULL, tg_nn_dropout(0.1)) == TG_EARG);
    CHECK(tg_nn_append(m[F], NULL) == TG_EARG);
    CHECK_STR_HAS(tg_nn_last_status()->msg, "tg_nn_append: the layer is NULL");
    /* A free-standing tree may go anywhere, and is then in a container. */
    CHECK(tg_nn_append(m[S2], m[R2]) == TG_OK && tg_nn_append(m[F], m[R2]) == TG_EARG);
    CHECK(tg_nn_n_params(m[R1]) == 4);
    tg_nn_free(m[R1]), tg_nn_free(m[F]);
}

/* Nesting is bounded, so the walks (which recurse) stay shallow: 64 levels, built from the
 * bottom (a container appended into a new one) or the top (into the deepest container). */
static void test_append_depth(void)
{
    tg_module *t = tg_nn_linear(2, 2, TG_F32);
    for (int levels = 1; levels < 64; levels++) {
        tg_module *up = tg_nn_sequential();
        CHECK(tg_nn_append(up, t) == TG_OK);
        t = up;
    }
    CHECK(tg_nn_n_params(t) == 2);
    tg_tensor *x = tg_tensor_new(TG_F32, 2, (int64_t[]){1, 2});
    tg_tape *tp = tg_tape_new();
    CHECK(tg_nn_forward(t, tp, x) != NULL);
    tg_module *up = tg_nn_sequential();
    CHECK(tg_nn_append(up, t) == TG_EARG); /* t is freed */
    CHECK_STR_HAS(tg_nn_last_status()->msg, "the tree would be 65 levels deep, more than 64");
    CHECK(tg_nn_n_params(up) == 0);
    tg_nn_free(up);
    tg_module *root = tg_nn_sequential(), *deepest = root;
    int depth = 1;
    for (; depth < 200; depth++) {
        tg_module *c = tg_nn_sequential();
        if (tg_nn_append(deepest, c) != TG_OK) break; /* c was freed */
        deepest = c;
    }
    CHECK(depth == 64);
    CHECK(tg_nn_append(deepest, tg_nn_dropout(0.5)) == TG_EARG); /* a 65th level */
    tg_nn_free(root);
    tg_tape_free(tp);
    tg_tensor_free(x);
}

/* A tree has one dtype, however deep the layer is appended: an empty inner container does
 * not make a hole. */
static void test_append_dtype(void)
{
    tg_module *outer = tg_nn_sequential(), *inner = tg_nn_sequential();
    CHECK(tg_nn_append(outer, tg_nn_linear(3, 3, TG_F32)) == TG_OK);
    CHECK(tg_nn_append(outer, inner) == TG_OK);
    CHECK(tg_nn_append(inner, tg_nn_linear(3, 3, TG_F64)) == TG_EDTYPE);
    CHECK_STR_HAS(tg_nn_last_status()->msg, "tg_nn_append: the layer is f64, the model f32");
    CHECK(tg_nn_append(inner, tg_nn_linear(3, 3, TG_F32)) == TG_OK);
    tg_module *other = tg_nn_sequential();
    CHECK(tg_nn_append(other, tg_nn_batchnorm1d(3, 0.1, 1e-5, TG_F64)) == TG_OK);
    CHECK(tg_nn_append(inner, other) == TG_EDTYPE); /* other is freed */
    CHECK(tg_nn_n_params(outer) == 4);
    tg_nn_free(outer);
    /* The first layer with tensors sets the dtype of every container above it. */
    outer = tg_nn_sequential(), inner = tg_nn_sequential();
    CHECK(tg_nn_append(outer, inner) == TG_OK && tg_nn_append(outer, tg_nn_dropout(0.2)) == TG_OK);
    CHECK(tg_nn_append(inner, tg_nn_prelu(1, 0.25, TG_F64)) == TG_OK);
    CHECK(tg_nn_append(outer, tg_nn_linear(2, 2, TG_F32)) == TG_EDTYPE);
    CHECK(tg_nn_append(outer, tg_nn_linear(2, 2, TG_F64)) == TG_OK);
    tg_nn_free(outer);
}

/* Every numeric argument of every layer constructor, set to each probe value: NULL with
 * TG_EARG and a message naming the constructor and the argument exactly when the value is
 * outside the range nn.h gives; a bad dtype is TG_EDTYPE. */
static void test_constructor_ranges(void)
{
    const double probes[] = {(double)NAN,
                             -(double)INFINITY,
                             (double)INFINITY,
                             -1,
                             -1e-300,
                             0,
                             1e-300,
                             1e-5,
                             0.5,
                             0.999,
                             1,
                             1.5,
                             3,
                             1e300};
    enum { LIN_IN, LIN_OUT, ACT_ALPHA, PRELU_CH, PRELU_INIT, DROP_P, BN_F, BN_MOM, BN_EPS, NARG };
    static const char *const prefix[NARG] = {"tg_nn_linear: in = ",
                                             "tg_nn_linear: out = ",
                                             "tg_nn_activation: leaky_relu: alpha = ",
                                             "tg_nn_prelu: channels = ",
                                             "tg_nn_prelu: init = ",
                                             "tg_nn_dropout: p = ",
                                             "tg_nn_batchnorm1d: features = ",
                                             "tg_nn_batchnorm1d: momentum = ",
                                             "tg_nn_batchnorm1d: eps = "};
    int refused = 0;
    for (int a = 0; a < NARG; a++)
        for (size_t k = 0; k < sizeof probes / sizeof probes[0]; k++) {
            double v = probes[k];
            bool integer = a == LIN_IN || a == LIN_OUT || a == PRELU_CH || a == BN_F;
            if (integer && !(fabs(v) < 1e18 && v == floor(v))) continue;
            int64_t iv = integer ? (int64_t)v : 0;
            bool want;
            tg_module *m;
            switch (a) {
            case LIN_IN: m = tg_nn_linear(iv, 2, TG_F32), want = iv >= 1; break;
            case LIN_OUT: m = tg_nn_linear(2, iv, TG_F32), want = iv >= 1; break;
            case ACT_ALPHA:
                m = tg_nn_activation("leaky_relu", v, TG_F32), want = isfinite(v);
                break;
            case PRELU_CH: m = tg_nn_prelu(iv, 0.25, TG_F32), want = iv >= 1; break;
            case PRELU_INIT: m = tg_nn_prelu(2, v, TG_F32), want = isfinite(v); break;
            case DROP_P: m = tg_nn_dropout(v), want = v >= 0 && v < 1; break;
            case BN_F: m = tg_nn_batchnorm1d(iv, 0.1, 1e-5, TG_F32), want = iv >= 1; break;
            case BN_MOM: m = tg_nn_batchnorm1d(2, v, 1e-5, TG_F32), want = v >= 0 && v <= 1; break;
            default: m = tg_nn_batchnorm1d(2, 0.1, v, TG_F32), want = v > 0 && isfinite(v); break;
            }
            const tg_status *why = tg_nn_last_status();
            bool ok = want ? m != NULL && why->code == TG_OK
                           : !m && why->code == TG_EARG && strstr(why->msg, prefix[a]) == why->msg;
            if (!ok)
                printf("  %s%g: %s (%s)\n", prefix[a], v, want ? "refused" : "accepted", why->msg);
            CHECK(ok);
            refused += !want;
            tg_nn_free(m);
        }
    CHECK(refused == 4 * 2 + 3 + 3 + 9 + 8 + 6); /* each argument's bad probes */
    CHECK(tg_nn_batchnorm1d(4, 0.1, (double)INFINITY, TG_F32) == NULL);
    CHECK_STR_HAS(tg_nn_last_status()->msg, "tg_nn_batchnorm1d: eps = inf is outside (0, inf)");
    /* A weight too big to count, and bad dtypes. */
    CHECK(tg_nn_linear(INT64_MAX, 2, TG_F32) == NULL && tg_nn_last_status()->code == TG_EARG);
    CHECK_STR_HAS(tg_nn_last_status()->msg, "weights do not fit in 64 bits");
    const tg_dtype bad = (tg_dtype)7;
    tg_module *made[5] = {tg_nn_linear(2, 2, bad), tg_nn_activation("relu", 0, bad),
                          tg_nn_prelu(1, 0.25, bad), tg_nn_batchnorm1d(2, 0.1, 1e-5, bad), NULL};
    for (int i = 0; i < 4; i++) CHECK(made[i] == NULL);
    CHECK(tg_nn_last_status()->code == TG_EDTYPE);
    CHECK_STR_HAS(tg_nn_last_status()->msg,
                  "tg_nn_batchnorm1d: dtype 7 is neither TG_F32 nor TG_F64");
    CHECK(tg_nn_activation("Relu", 0, TG_F32) == NULL);
    CHECK_STR_HAS(tg_nn_last_status()->msg, "tg_nn_activation: unknown activation 'Relu' (known:");
    /* tg_nn_mlp passes a layer's reason on. */
    tg_status st;
    int64_t huge[2] = {INT64_C(1) << 40, INT64_C(1) << 40};
    CHECK(tg_nn_mlp(2, huge, "relu", 0, false, TG_F32, &st) == NULL && st.code == TG_EARG);
    CHECK_STR_HAS(st.msg, "tg_nn_mlp: tg_nn_linear: 1099511627776 x 1099511627776 weights");
    int64_t ok[3] = {3, 4, 2};
    CHECK(tg_nn_mlp(3, ok, "relu", (double)NAN, false, TG_F32, &st) == NULL);
    CHECK_STR_HAS(st.msg, "tg_nn_mlp: dropout nan");
    CHECK(tg_nn_mlp(3, ok, "relu", 0, false, bad, &st) == NULL && st.code == TG_EDTYPE);
}

/* ---- save and load ---- */
static char dir[64];

static tg_module *small(tg_dtype dt, uint64_t seed)
{
    int64_t sizes[3] = {3, 4, 2};
    tg_status st;
    tg_module *m = tg_nn_mlp(3, sizes, "tanh", 0, true, dt, &st);
    tg_rng r;
    tg_rng_seed(&r, seed);
    tg_nn_init(m, TG_INIT_HE_NORMAL, 0, &r);
    return m;
}

/* True when every parameter and buffer of a and b is bitwise equal. */
static bool same(tg_module *a, tg_module *b)
{
    tg_tensor *pa[16], *pb[16];
    int n = tg_nn_params(a, pa, 16);
    if (tg_nn_params(b, pb, 16) != n) return false;
    for (int i = 0; i < n; i++)
        if (memcmp(tg_data(pa[i]), tg_data(pb[i]),
                   (size_t)tg_tensor_numel(pa[i]) * tg_dtype_size(tg_tensor_dtype(pa[i]))) != 0)
            return false;
    return true;
}

static long file_size(const char *p)
{
    struct stat sb;
    return stat(p, &sb) ? -1 : (long)sb.st_size;
}

static void test_save_load(void)
{
    snprintf(dir, sizeof dir, "/tmp/tg_nn_XXXXXX");
    CHECK(mkdtemp(dir) != NULL);
    char path[128], bad[128];
    snprintf(path, sizeof path, "%s/m.tg", dir);
    snprintf(bad, sizeof bad, "%s/bad.tg", dir);
    tg_module *a = small(TG_F32, 1), *b = small(TG_F32, 2);
    tg_status st;
    CHECK(!same(a, b));
    CHECK(tg_nn_save_meta(a, path, "hello model", &st) == TG_OK);
    char meta[64];
    CHECK(tg_nn_read_meta(path, meta, sizeof meta, &st) == TG_OK &&
          strcmp(meta, "hello model") == 0);
    CHECK(tg_nn_load(b, path, &st) == TG_OK);
    CHECK(same(a, b));
    long size = file_size(path);
    CHECK(size > 40);

    /* Truncated, corrupted and mismatched files: clear errors, the model untouched. */
    FILE *in = fopen(path, "rb");
    unsigned char *bytes = malloc((size_t)size);
    CHECK(fread(bytes, 1, (size_t)size, in) == (size_t)size);
    fclose(in);
    tg_module *c = small(TG_F32, 3), *c0 = small(TG_F32, 3);
    for (long cut = 0; cut < size; cut += 7) {
        FILE *o = fopen(bad, "wb");
        fwrite(bytes, 1, (size_t)cut, o);
        fclose(o);
        CHECK(tg_nn_load(c, bad, &st) < 0);
    }
    CHECK_STR_HAS(st.msg, bad);
    CHECK(same(c, c0));
    for (long at = 0; at < size; at += 5) {
        bytes[at] ^= 0x10;
        FILE *o = fopen(bad, "wb");
        fwrite(bytes, 1, (size_t)size, o);
        fclose(o);
        bytes[at] ^= 0x10;
        CHECK(tg_nn_load(c, bad, &st) < 0);
    }
    CHECK(same(c, c0));
    CHECK_STR_HAS(st.msg, "checksum");
    int64_t other_sizes[3] = {3, 5, 2};
    tg_module *d = tg_nn_mlp(3, other_sizes, "tanh", 0, true, TG_F32, &st);
    CHECK(tg_nn_load(d, path, &st) == TG_ESHAPE);
    CHECK_STR_HAS(st.msg, "dimension 1 is 4");
    tg_module *e = small(TG_F64, 1);
    CHECK(tg_nn_load(e, path, &st) == TG_EDTYPE);
    CHECK_STR_HAS(st.msg, "holds f32 tensors, the model is f64");
    CHECK(tg_nn_load(c, "/nonexistent/m.tg", &st) == TG_EIO);
    CHECK_STR_HAS(st.msg, "/nonexistent/m.tg: cannot open");

    /* Saving where it cannot: an error, no temporary file left, the old file intact. */
    CHECK(tg_nn_save(a, "/nonexistent/dir/m.tg", &st) == TG_EIO);
    char ro[128], ro_file[160];
    snprintf(ro, sizeof ro, "%s/ro", dir);
    mkdir(ro, 0555);
    snprintf(ro_file, sizeof ro_file, "%s/m.tg", ro);
    if (geteuid() != 0) { /* root writes anywhere */
        CHECK(tg_nn_save(a, ro_file, &st) == TG_EIO);
        CHECK(access(ro_file, F_OK) != 0);
    }
    CHECK(tg_nn_save_meta(b, path, "hello model", &st) == TG_OK && file_size(path) == size);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "ls %s | grep -c tmp > /dev/null", dir);
    CHECK(system(cmd) != 0); /* no m.tg.tmp.* left behind */

    free(bytes);
    tg_nn_free(a), tg_nn_free(b), tg_nn_free(c), tg_nn_free(c0), tg_nn_free(d), tg_nn_free(e);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
}

/* The whole file as bytes (NULL if unreadable). */
static unsigned char *slurp(const char *path, long *size)
{
    *size = file_size(path);
    FILE *in = fopen(path, "rb");
    if (!in || *size < 0) {
        if (in) fclose(in);
        return NULL;
    }
    unsigned char *b = malloc((size_t)*size + 1);
    if (b && fread(b, 1, (size_t)*size, in) != (size_t)*size) free(b), b = NULL;
    fclose(in);
    return b;
}

static void spill(const char *path, const unsigned char *b, size_t n)
{
    FILE *o = fopen(path, "wb");
    if (o) fwrite(b, 1, n, o), fclose(o);
}

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

/* A file with a valid checksum but a wrong field: the reason is named, not "checksum". */
static void check_patched(tg_module *m, tg_module *m0, const char *bad, const unsigned char *b,
                          long size, long at, uint32_t v, const char *want)
{
    unsigned char *c = malloc((size_t)size);
    CHECK(c != NULL);
    if (!c) return;
    memcpy(c, b, (size_t)size);
    put32(c + at, v);
    put32(c + size - 4, (uint32_t)crc32(0L, c, (uInt)(size - 4)));
    spill(bad, c, (size_t)size);
    tg_status st;
    CHECK(tg_nn_load(m, bad, &st) < 0);
    CHECK_STR_HAS(st.msg, want);
    CHECK_STR_HAS(st.msg, bad);
    CHECK(same(m, m0));
    free(c);
}

static bool no_temp_left(const char *d)
{
    char cmd[200];
    snprintf(cmd, sizeof cmd, "ls -a %s | grep -q tmp", d);
    return system(cmd) != 0;
}

/* Buffers travel with the parameters; f64 containers built by hand; every way a save can
 * fail leaves the old file as it was and no temporary file; fields with a valid checksum
 * but wrong values are named. */
static void test_save_load_more(void)
{
    char d[64], path[128], bad[128];
    snprintf(d, sizeof d, "/tmp/tg_nn2_XXXXXX");
    CHECK(mkdtemp(d) != NULL);
    snprintf(path, sizeof path, "%s/m.tg", d);
    snprintf(bad, sizeof bad, "%s/bad.tg", d);
    tg_status st;

    /* Running statistics: a training step moves them; the loaded model then evaluates
     * bitwise like the saved one. */
    tg_module *a = small(TG_F64, 1), *b = small(TG_F64, 1);
    int64_t xs[2] = {6, 3};
    tg_tensor *x = tg_tensor_new(TG_F64, 2, xs);
    tg_rng r;
    tg_rng_seed(&r, 8);
    tg_tensor_rand_normal(x, 1, 2, &r);
    tg_tape *tp = tg_tape_new();
    CHECK(tg_nn_forward(a, tp, x) != NULL);
    tg_nn_set_training(a, false), tg_nn_set_training(b, false);
    tg_tape_reset(tp);
    tg_tensor *ya = tg_nn_forward(a, tp, x), *yb = tg_nn_forward(b, tp, x);
    CHECK(ya && yb && tg_get(ya, 0) != tg_get(yb, 0)); /* same parameters, other statistics */
    CHECK(tg_nn_save(a, path, &st) == TG_OK && tg_nn_load(b, path, &st) == TG_OK);
    tg_tape_reset(tp);
    ya = tg_nn_forward(a, tp, x), yb = tg_nn_forward(b, tp, x);
    CHECK(ya && yb && memcmp(tg_data(ya), tg_data(yb), 12 * sizeof(double)) == 0);

    /* An f64 Sequential built by hand saves as f64; a layer of another dtype is refused. */
    tg_module *seq = tg_nn_sequential();
    CHECK(tg_nn_append(seq, tg_nn_dropout(0.1)) == TG_OK);
    CHECK(tg_nn_append(seq, tg_nn_linear(2, 3, TG_F64)) == TG_OK);
    CHECK(tg_nn_append(seq, tg_nn_linear(3, 1, TG_F32)) == TG_EDTYPE); /* and freed: valgrind */
    CHECK(tg_nn_append(seq, tg_nn_activation("tanh", 0, TG_F32)) == TG_OK); /* no tensors */
    char hand[160];
    snprintf(hand, sizeof hand, "%s/hand.tg", d);
    CHECK(tg_nn_save(seq, hand, &st) == TG_OK);
    tg_module *lin = tg_nn_linear(2, 3, TG_F64);
    tg_rng_seed(&r, 2);
    tg_nn_init(lin, TG_INIT_HE_UNIFORM, 0, &r);
    CHECK(tg_nn_load(lin, hand, &st) == TG_OK && same(lin, seq));
    tg_nn_free(lin), tg_nn_free(seq);

    /* Fields with a valid checksum but wrong values. */
    long size;
    unsigned char *bytes = slurp(path, &size);
    CHECK(bytes && size > 100);
    tg_module *c = small(TG_F64, 3), *c0 = small(TG_F64, 3);
    if (bytes && size > 100) { /* the checks below patch the file's bytes */
        check_patched(c, c0, bad, bytes, size, 8, 2, "format version 2, this tapegrad reads 1");
        check_patched(c, c0, bad, bytes, size, 12, 7, "unknown dtype code 7");
        check_patched(c, c0, bad, bytes, size, 16, 9, "holds 9 tensors, the model has 8");
        check_patched(c, c0, bad, bytes, size, 20, 100000, "bad description length");
        check_patched(c, c0, bad, bytes, size, 24, 1,
                      "tensor 0 has 1 dimensions, the model's has 2");
        memcpy(bytes, "TGMODEX", 8);
        spill(bad, bytes, (size_t)size);
        CHECK(tg_nn_load(c, bad, &st) == TG_EFORMAT);
        CHECK_STR_HAS(st.msg, "not a tapegrad model (bad magic)");
        memcpy(bytes, "TGMODEL", 8);
        spill(bad, bytes, 0);
        CHECK(tg_nn_load(c, bad, &st) == TG_EFORMAT); /* empty */
    }
    CHECK(tg_nn_load(c, d, &st) < 0); /* a directory */
    CHECK_STR_HAS(st.msg, d);
    CHECK(same(c, c0));
    tg_module *extra = tg_nn_mlp(3, (int64_t[]){3, 4, 2}, "tanh", 0, false, TG_F64, &st);
    CHECK(tg_nn_load(extra, path, &st) == TG_ESHAPE); /* no batch norm: fewer tensors */
    CHECK_STR_HAS(st.msg, "holds 8 tensors, the model has 4");
    tg_nn_free(extra);

    /* Failed saves: TG_EIO naming the path, the old file bitwise intact, no temp file. */
    const char *fails[3] = {"/proc/tg_nn_test.tg", NULL, NULL}; /* even root cannot create there */
    char under_file[200], onto_dir[200];
    snprintf(under_file, sizeof under_file, "%s/m.tg/x.tg", d); /* parent is a file */
    snprintf(onto_dir, sizeof onto_dir, "%s/full", d);          /* rename onto a directory */
    mkdir(onto_dir, 0755);
    char inside[260];
    snprintf(inside, sizeof inside, "%s/keep", onto_dir);
    spill(inside, (const unsigned char *)"x", 1);
    fails[1] = under_file, fails[2] = onto_dir;
    for (int i = 0; i < 3; i++) {
        CHECK(tg_nn_save(a, fails[i], &st) == TG_EIO);
        CHECK_STR_HAS(st.msg, fails[i]);
    }
    CHECK(no_temp_left(d) && access(inside, F_OK) == 0);
    /* A write that fails half way (a full disk, here a file size limit): the old file stays. */
    tg_module *big = tg_nn_mlp(2, (int64_t[]){64, 64}, "tanh", 0, false, TG_F64, &st);
    struct rlimit old_lim, lim;
    getrlimit(RLIMIT_FSIZE, &old_lim);
    lim = old_lim;
    lim.rlim_cur = 4096;
    void (*old_sig)(int) = signal(SIGXFSZ, SIG_IGN);
    CHECK(setrlimit(RLIMIT_FSIZE, &lim) == 0);
    int rc = tg_nn_save(big, path, &st);
    setrlimit(RLIMIT_FSIZE, &old_lim);
    signal(SIGXFSZ, old_sig);
    CHECK(rc == TG_EIO);
    CHECK_STR_HAS(st.msg, "cannot write");
    long size2;
    unsigned char *now = slurp(path, &size2);
    CHECK(now && bytes && size2 == size && memcmp(now, bytes, (size_t)size) == 0);
    CHECK(no_temp_left(d));
    CHECK(tg_nn_load(b, path, &st) == TG_OK); /* still a good model */
    free(now);
    tg_nn_free(big);

    /* NULL arguments. */
    CHECK(tg_nn_save(NULL, path, &st) == TG_EARG && tg_nn_save(a, NULL, &st) == TG_EARG);
    CHECK(tg_nn_save(a, "", &st) == TG_EARG);
    CHECK(tg_nn_load(NULL, path, &st) == TG_EARG && tg_nn_load(a, NULL, &st) == TG_EARG);
    CHECK(tg_nn_save(a, path, NULL) == TG_OK && tg_nn_load(a, bad, NULL) < 0); /* st optional */

    free(bytes);
    tg_nn_free(a), tg_nn_free(b), tg_nn_free(c), tg_nn_free(c0);
    tg_tape_free(tp);
    tg_tensor_free(x);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", d);
    CHECK(system(cmd) == 0);
}

/* ---- Optimal Brain Damage ---- */
typedef struct obd_ctx {
    tg_module *net;
    tg_tensor *x, *y;
    tg_tape *tp;
} obd_ctx;

static int obd_loss(void *ctx, double *loss)
{
    obd_ctx *c = ctx;
    tg_tape_reset(c->tp);
    tg_tensor *l = tg_mse_loss(c->tp, tg_nn_forward(c->net, c->tp, c->x), c->y);
    if (!l || tg_backward(c->tp, l)) return TG_EARG;
    *loss = tg_get(l, 0);
    return TG_OK;
}

static void test_obd(void)
{
    int64_t sizes[3] = {3, 4, 1};
    tg_status st;
    obd_ctx c = {tg_nn_mlp(3, sizes, "tanh", 0, false, TG_F64, &st), NULL, NULL, tg_tape_new()};
    tg_rng r;
    tg_rng_seed(&r, 5);
    tg_nn_init(c.net, TG_INIT_XAVIER_NORMAL, 0, &r);
    int64_t xs[2] = {8, 3}, ys[2] = {8, 1};
    c.x = tg_tensor_new(TG_F64, 2, xs), c.y = tg_tensor_new(TG_F64, 2, ys);
    tg_tensor_rand_normal(c.x, 0, 1, &r), tg_tensor_rand_normal(c.y, 0, 1, &r);
    tg_tensor *p[4], *h[4], *s[4];
    int n = tg_nn_params(c.net, p, 4);
    tg_tensor_rand_uniform(p[1], 0.1, 0.5, &r), tg_tensor_rand_uniform(p[3], 0.1, 0.5, &r);
    for (int i = 0; i < n; i++) {
        int64_t shape[2] = {tg_tensor_dim(p[i], 0),
                            tg_tensor_ndim(p[i]) > 1 ? tg_tensor_dim(p[i], 1) : 1};
        h[i] = tg_tensor_new(TG_F64, tg_tensor_ndim(p[i]), shape);
        s[i] = tg_tensor_new(TG_F64, tg_tensor_ndim(p[i]), shape);
    }
    double before = tg_get(p[0], 3);
    CHECK(tg_hessian_diag(obd_loss, &c, n, p, h) == TG_OK);
    CHECK(tg_get(p[0], 3) == before); /* restored exactly */
    /* Independent check: second differences of the loss itself. */
    double worst = 0;
    for (int i = 0; i < n; i++)
        for (int64_t k = 0; k < tg_tensor_numel(p[i]); k++) {
            double w = tg_get(p[i], k), e = 1e-3, fp = 0, f0 = 0, fm = 0;
            tg_set(p[i], k, w + e), obd_loss(&c, &fp);
            tg_set(p[i], k, w), obd_loss(&c, &f0);
            tg_set(p[i], k, w - e), obd_loss(&c, &fm);
            tg_set(p[i], k, w);
            double second = (fp - 2 * f0 + fm) / (e * e);
            worst = fmax(worst, fabs(second - tg_get(h[i], k)) / fmax(1e-2, fabs(second)));
        }
    if (worst > 1e-4) printf("  hessian diagonal: worst relative error %g\n", worst);
    CHECK(worst <= 1e-4);
    /* The last layer's bias: Q = mean (y - z)², so ∂²Q/∂b² = 2 exactly. */
    CHECK(fabs(tg_get(h[3], 0) - 2) < 1e-6);
    CHECK(tg_saliency(n, p, h, s) == TG_OK);
    CHECK(fabs(tg_get(s[0], 2) - tg_get(p[0], 2) * tg_get(p[0], 2) * tg_get(h[0], 2)) < 1e-15);
    double feat[3];
    CHECK(tg_feature_saliency(s[0], feat) == TG_OK);
    CHECK(fabs(feat[1] - (tg_get(s[0], 4) + tg_get(s[0], 5) + tg_get(s[0], 6) + tg_get(s[0], 7))) <
          1e-15);

    /* Prune the 5 least salient weights: zero, masked through a step, undoable. */
    tg_pruner *pr = tg_pruner_new(n, p, &st);
    int64_t total = tg_nn_n_weights(c.net);
    double min_alive = (double)INFINITY, max_pruned = -(double)INFINITY;
    CHECK(tg_pruner_prune(pr, s, 5) == 5 && tg_pruner_alive(pr) == total - 5);
    int zeros = 0;
    for (int i = 0; i < n; i++)
        for (int64_t k = 0; k < tg_tensor_numel(p[i]); k++) {
            bool z = tg_get(p[i], k) == 0;
            zeros += z;
            if (z) max_pruned = fmax(max_pruned, tg_get(s[i], k));
            else min_alive = fmin(min_alive, tg_get(s[i], k));
        }
    CHECK(zeros == 5 && max_pruned <= min_alive);
    tg_optim *o = tg_optim_new("sgd", n, p, NULL, &st);
    double loss;
    obd_loss(&c, &loss);
    tg_optim_step(o);
    tg_pruner_apply(pr);
    zeros = 0;
    for (int i = 0; i < n; i++)
        for (int64_t k = 0; k < tg_tensor_numel(p[i]); k++) zeros += tg_get(p[i], k) == 0;
    CHECK(zeros == 5);
    CHECK(tg_pruner_undo(pr) == TG_OK && tg_pruner_alive(pr) == total);
    CHECK(tg_pruner_prune(pr, s, 1000) == total); /* never more than are alive */
    CHECK(tg_pruner_new(0, p, &st) == NULL);
    tg_optim_free(o);
    tg_pruner_free(pr);
    for (int i = 0; i < n; i++) tg_tensor_free(h[i]), tg_tensor_free(s[i]);
    tg_tensor_free(c.x), tg_tensor_free(c.y);
    tg_tape_free(c.tp);
    tg_nn_free(c.net);
}

static const check_case cases[] = {
    TEST(test_obd),
    TEST(test_mlp_forward_by_hand),
    TEST(test_whole_model_gradcheck),
    TEST(test_sequential_fuses),
    TEST(test_mlp_step_allocates_nothing),
    TEST(test_train_eval_modes),
    TEST(test_activation_layers),
    TEST(test_param_order),
    TEST(test_mlp_layout),
    TEST(test_dropout_layer),
    TEST(test_initialisers),
    TEST(test_errors),
    TEST(test_append_tree_rules),
    TEST(test_append_depth),
    TEST(test_append_dtype),
    TEST(test_constructor_ranges),
    TEST(test_save_load),
    TEST(test_save_load_more),
};
TEST_MAIN("test_nn", cases)
