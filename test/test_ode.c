/* test/test_ode.c: a loss containing derivatives with respect to the input, the short
 * version of examples/ode.c (u'' + u = 0 on [0, π], u(0) = 0, u'(0) = 1). u' and u'' come
 * from tg_gradients with TG_GRAD_RECORD, and the parameters' gradients from tg_backward
 * through them (third-order paths). Checks: u', u'' against central differences of u in x;
 * the loss's parameter gradients against central differences of the loss; training lowers
 * the loss by a large factor. */
#include <math.h>
#include <stdlib.h>

#include "check.h"
#include "tapegrad.h"

#define N 16 /* collocation points on [0, π], x = 0 first */
#define H 8  /* hidden units per layer */
#define NP 6

static const double PI = 3.14159265358979323846;

typedef struct ode {
    tg_tensor *p[NP], *x;
} ode;

static void ode_new(ode *o, uint64_t seed)
{
    int64_t shapes[NP][2] = {{1, H}, {H, 0}, {H, H}, {H, 0}, {H, 1}, {1, 0}};
    tg_rng rng;
    tg_rng_seed(&rng, seed);
    for (int i = 0; i < NP; i++) {
        o->p[i] = tg_tensor_new(TG_F64, shapes[i][1] ? 2 : 1, shapes[i]);
        /* Xavier normal weights, small random biases (so no derivative is 0 by symmetry). */
        if (shapes[i][1])
            tg_tensor_rand_normal(o->p[i], 0, sqrt(2.0 / (double)(shapes[i][0] + shapes[i][1])),
                                  &rng);
        else tg_tensor_rand_normal(o->p[i], 0, 0.1, &rng);
        tg_set_requires_grad(o->p[i], true);
    }
    int64_t sn[2] = {N, 1};
    o->x = tg_tensor_new(TG_F64, 2, sn);
    for (int i = 0; i < N; i++) tg_set(o->x, i, PI * i / (N - 1));
    tg_set_requires_grad(o->x, true);
}

static void ode_free(ode *o)
{
    for (int i = 0; i < NP; i++) tg_tensor_free(o->p[i]);
    tg_tensor_free(o->x);
}

static tg_tensor *net(tg_tape *tp, tg_tensor *const *p, tg_tensor *x)
{
    tg_tensor *h = tg_tanh(tp, tg_add(tp, tg_matmul(tp, x, p[0]), p[1]));
    h = tg_tanh(tp, tg_add(tp, tg_matmul(tp, h, p[2]), p[3]));
    return tg_add(tp, tg_matmul(tp, h, p[4]), p[5]);
}

/* u, u' and u'' at x (recorded); 0 or the tape's error. */
static int derivs(tg_tape *tp, tg_tensor *const *p, tg_tensor *x, tg_tensor **u, tg_tensor **du,
                  tg_tensor **d2u)
{
    *u = net(tp, p, x);
    if (tg_gradients(tp, tg_sum(tp, *u, TG_ALL_AXES, false), NULL, 1, &x, du, TG_GRAD_RECORD))
        return tg_tape_errcode(tp);
    return tg_gradients(tp, tg_sum(tp, *du, TG_ALL_AXES, false), NULL, 1, &x, d2u, TG_GRAD_RECORD);
}

/* mean((u'' + u)²) + u(0)² + (u'(0) - 1)². */
static tg_tensor *ode_loss(tg_tape *tp, tg_tensor *const *p, tg_tensor *x)
{
    tg_tensor *u = NULL, *du = NULL, *d2u = NULL;
    if (derivs(tp, p, x, &u, &du, &d2u)) return NULL;
    tg_tensor *pde = tg_mean(tp, tg_square(tp, tg_add(tp, d2u, u)), TG_ALL_AXES, false);
    tg_tensor *u0 = tg_sum(tp, tg_square(tp, tg_slice(tp, u, 0, 0, 1)), TG_ALL_AXES, false);
    tg_tensor *du0 = tg_add_scalar(tp, tg_slice(tp, du, 0, 0, 1), -1);
    return tg_add(tp, tg_add(tp, pde, u0), tg_sum(tp, tg_square(tp, du0), TG_ALL_AXES, false));
}

/* u at every collocation point shifted by d, into out[N] (grad mode off). */
static void u_at(tg_tape *tp, ode *o, double d, double *out)
{
    int64_t sn[2] = {N, 1};
    tg_tensor *xs = tg_tensor_new(TG_F64, 2, sn);
    for (int i = 0; i < N; i++) tg_set(xs, i, tg_get(o->x, i) + d);
    tg_tape_reset(tp);
    bool mode = tg_tape_set_grad_mode(tp, false);
    tg_tensor *u = net(tp, o->p, xs);
    CHECK(u != NULL);
    for (int i = 0; i < N; i++) out[i] = u ? tg_get(u, i) : (double)NAN;
    tg_tape_set_grad_mode(tp, mode);
    tg_tensor_free(xs);
}

static double rel(double a, double b) { return fabs(a - b) / fmax(fmax(fabs(a), fabs(b)), 1e-3); }

/* u' and u'' from tg_gradients against 4-point central differences of u in x:
 * u' ≈ (u(x-2h) - 8u(x-h) + 8u(x+h) - u(x+2h)) / 12h and
 * u'' ≈ (-u(x-2h) + 16u(x-h) - 30u(x) + 16u(x+h) - u(x+2h)) / 12h², both O(h⁴). */
static double check_derivs(tg_tape *tp, ode *o)
{
    const double h = 1e-3;
    double um2[N] = {0}, um1[N] = {0}, u0[N] = {0}, up1[N] = {0}, up2[N] = {0};
    u_at(tp, o, -2 * h, um2), u_at(tp, o, -h, um1), u_at(tp, o, 0, u0);
    u_at(tp, o, h, up1), u_at(tp, o, 2 * h, up2);
    tg_tape_reset(tp);
    tg_tensor *u = NULL, *du = NULL, *d2u = NULL;
    CHECK(derivs(tp, o->p, o->x, &u, &du, &d2u) == 0);
    if (!d2u) return (double)INFINITY;
    CHECK(tg_requires_grad(d2u)); /* recorded: differentiable again */
    double worst = 0;
    for (int i = 0; i < N; i++) {
        double fd1 = (um2[i] - 8 * um1[i] + 8 * up1[i] - up2[i]) / (12 * h);
        double fd2 = (-um2[i] + 16 * um1[i] - 30 * u0[i] + 16 * up1[i] - up2[i]) / (12 * h * h);
        CHECK_NEAR(tg_get(u, i), u0[i], 1e-12);
        worst = fmax(worst, fmax(rel(tg_get(du, i), fd1), rel(tg_get(d2u, i), fd2)));
    }
    return worst;
}

static double loss_at(tg_tape *tp, ode *o)
{
    tg_tape_reset(tp);
    tg_tensor *l = ode_loss(tp, o->p, o->x);
    CHECK(l != NULL);
    return l ? tg_get(l, 0) : (double)NAN;
}

/* The loss's gradient from tg_backward (through u'', so third derivatives of the network)
 * against 4-point central differences of the loss, for every element of every parameter. */
static void test_param_grads(void)
{
    tg_tape *tp = tg_tape_new();
    ode o;
    ode_new(&o, 3);
    for (int i = 0; i < NP; i++) tg_zero_grad(o.p[i]);
    tg_tape_reset(tp);
    tg_tensor *l = ode_loss(tp, o.p, o.x);
    CHECK(l != NULL);
    CHECK(l && tg_backward(tp, l) == 0);
    double worst = 0;
    int64_t checked = 0;
    for (int i = 0; i < NP; i++) {
        tg_tensor *g = tg_grad(o.p[i]);
        CHECK(g != NULL);
        if (!g) continue;
        for (int64_t k = 0; k < tg_tensor_numel(o.p[i]); k++) {
            double w = tg_get(o.p[i], k), h = 1e-4 * fmax(1, fabs(w)), f[4];
            const double off[4] = {-2, -1, 1, 2};
            for (int j = 0; j < 4; j++) {
                tg_set(o.p[i], k, w + off[j] * h);
                f[j] = loss_at(tp, &o);
            }
            tg_set(o.p[i], k, w);
            double fd = (f[0] - 8 * f[1] + 8 * f[2] - f[3]) / (12 * h);
            worst = fmax(worst, rel(tg_get(g, k), fd));
            checked++;
        }
    }
    CHECK(checked == 1 * H + H + H * H + H + H + 1);
    CHECK(worst <= 1e-6);
    if (worst > 1e-6) printf("  parameter gradients: max rel err %.3g\n", worst);
    ode_free(&o);
    tg_tape_free(tp);
}

/* A short training run: the loss falls by a large factor, and u', u'' stay exact along. */
static void test_train(void)
{
    tg_tape *tp = tg_tape_new();
    ode o;
    ode_new(&o, 5);
    double e0 = check_derivs(tp, &o);
    CHECK(e0 <= 1e-6);
    if (e0 > 1e-6) printf("  u', u'' at the start: max rel err %.3g\n", e0);

    tg_optim_opts oo;
    tg_optim_defaults("adam", &oo);
    oo.lr = 1e-2;
    tg_status st;
    tg_optim *opt = tg_optim_new("adam", NP, o.p, &oo, &st);
    CHECK(opt != NULL);
    double first = (double)NAN, last = (double)NAN;
    for (int s = 0; s < 400 && opt; s++) {
        tg_tape_reset(tp);
        tg_optim_zero_grad(opt);
        tg_tensor *l = ode_loss(tp, o.p, o.x);
        if (!l || tg_backward(tp, l) || tg_optim_step(opt)) {
            printf("  step %d: %s\n", s, tg_tape_error(tp));
            CHECK(0);
            break;
        }
        last = tg_get(l, 0);
        if (s == 0) first = last;
    }
    CHECK(isfinite(first) && isfinite(last));
    CHECK(last < first / 100);
    if (!(last < first / 100)) printf("  loss %.3g -> %.3g\n", first, last);

    double e1 = check_derivs(tp, &o);
    CHECK(e1 <= 1e-6);
    if (e1 > 1e-6) printf("  u', u'' after training: max rel err %.3g\n", e1);
    tg_optim_free(opt);
    ode_free(&o);
    tg_tape_free(tp);
}

static const check_case cases[] = {TEST(test_param_grads), TEST(test_train)};
TEST_MAIN("test_ode", cases)
