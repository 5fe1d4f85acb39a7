/* test/test_optim.c: every optimiser against its lecture formula computed here
 * independently for the first three steps, and against PyTorch's numbers where the forms
 * agree; convergence on a convex quadratic and on Rosenbrock; the options (L2, weight
 * decay, clipping, schedules); bad arguments and every option range; check_finite (a
 * refused step changes nothing, for every method); the closure interface; no allocation
 * in a step. First-order tests write gradients straight into the parameters' gradient buffers:
 * no tape, no ops. The line-search and Levenberg-Marquardt tests (issue 5) use ops. */
#include <stdlib.h>

#include "check.h"
#include "tapegrad.h"

/* Allocation counting for test_step_never_allocates: this binary replaces the allocation
 * functions and forwards them to glibc's. Not under AddressSanitizer or ThreadSanitizer
 * (they own malloc). */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define TG_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define TG_TEST_ASAN 1
#endif
#endif
/* volatile: compilers know malloc's semantics and would otherwise assume that no call
 * changes a counter only the allocation functions write */
static volatile long n_allocs;
#if defined(__GLIBC__) && !defined(TG_TEST_ASAN)
#define COUNTS_ALLOCS 1
extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *ptr, size_t size);
extern void *__libc_memalign(size_t align, size_t size);
void *malloc(size_t size)
{
    n_allocs++;
    return __libc_malloc(size);
}
void *calloc(size_t n, size_t size)
{
    n_allocs++;
    return __libc_calloc(n, size);
}
void *realloc(void *ptr, size_t size)
{
    n_allocs++;
    return __libc_realloc(ptr, size);
}
void *aligned_alloc(size_t align, size_t size)
{
    n_allocs++;
    return __libc_memalign(align, size);
}
#else
#define COUNTS_ALLOCS 0
#endif

/* True when the replacement is the malloc actually called: valgrind, for one, redirects
 * malloc in the program too, and then nothing is counted. */
static bool allocs_counted(void)
{
    long before = n_allocs;
    void *(*volatile alloc)(size_t) = malloc; /* called through a pointer: not elided */
    free(alloc(16));
    return COUNTS_ALLOCS && n_allocs > before;
}

static const double W0[2] = {0.5, -1.5};
static const double G[3][2] = {{0.2, -0.4}, {0.1, 0.3}, {-0.5, 0.05}};

/* Three steps of method m (lr and momentum given; other options the defaults) in f64 and
 * f32; returns the f64 parameters in w and the f32 ones in w32. */
static void run3(const char *m, const tg_optim_opts *opts, double *w, double *w32)
{
    for (int d = 0; d < 2; d++) {
        int64_t s[1] = {2};
        tg_tensor *p = tg_tensor_from(TG_F64, 1, s, W0);
        if (d) {
            tg_tensor *q = tg_tensor_new(TG_F32, 1, s);
            tg_tensor_copy(q, p);
            tg_tensor_free(p);
            p = q;
        }
        tg_set_requires_grad(p, true);
        tg_status st;
        tg_optim *o = tg_optim_new(m, 1, &p, opts, &st);
        CHECK(o != NULL);
        for (int t = 0; o && t < 3; t++) {
            tg_optim_zero_grad(o);
            for (int i = 0; i < 2; i++) tg_set(tg_grad(p), i, G[t][i]);
            CHECK(tg_optim_step(o) == TG_OK);
        }
        for (int i = 0; i < 2; i++) (d ? w32 : w)[i] = tg_get(p, i);
        tg_optim_free(o);
        tg_tensor_free(p);
    }
}

static void expect3(const char *m, const tg_optim_opts *o, const double *want, int line)
{
    double w[2], w32[2];
    run3(m, o, w, w32);
    for (int i = 0; i < 2; i++) {
        if (fabs(w[i] - want[i]) > 1e-12 || fabs(w32[i] - want[i]) > 1e-5) {
            printf("test_optim.c:%d: %s: w[%d] = %.15g (f32 %.9g), want %.15g\n", line, m, i, w[i],
                   w32[i], want[i]);
            check_failed++;
            return;
        }
    }
    check_passed++;
}

static tg_optim_opts defaults(const char *m)
{
    tg_optim_opts o;
    CHECK(tg_optim_defaults(m, &o) == TG_OK);
    return o;
}

/* The lecture formulas, written out per method over the three gradients. */
static void test_first_steps(void)
{
    double w[2], h[2] = {0}, v[2] = {0}, S[2] = {0}, D[2] = {0};
    tg_optim_opts o;

    o = defaults("sgd"), o.lr = 0.1;
    for (int i = 0; i < 2; i++) w[i] = W0[i] - 0.1 * (G[0][i] + G[1][i] + G[2][i]);
    expect3("sgd", &o, w, __LINE__);

    /* Polyak: h = a h + lr g; w -= h. */
    o = defaults("momentum"), o.lr = 0.1, o.momentum = 0.9;
    for (int i = 0; i < 2; i++) {
        w[i] = W0[i], h[i] = 0;
        for (int t = 0; t < 3; t++) h[i] = 0.9 * h[i] + 0.1 * G[t][i], w[i] -= h[i];
    }
    expect3("momentum", &o, w, __LINE__);

    /* EMA form: v = g v + (1-g) grad; w -= lr v. */
    o = defaults("momentum_ema"), o.lr = 0.1, o.momentum = 0.8;
    for (int i = 0; i < 2; i++) {
        w[i] = W0[i], v[i] = 0;
        for (int t = 0; t < 3; t++) v[i] = 0.8 * v[i] + 0.2 * G[t][i], w[i] -= 0.1 * v[i];
    }
    expect3("momentum_ema", &o, w, __LINE__);

    /* Nesterov: the parameters hold the look-ahead point u = w - a h; with the given
     * gradients taken there: h = a h + lr g; w -= h; u = w - a h. */
    o = defaults("nesterov"), o.lr = 0.1, o.momentum = 0.9;
    for (int i = 0; i < 2; i++) {
        double ww = W0[i];
        h[i] = 0;
        for (int t = 0; t < 3; t++) h[i] = 0.9 * h[i] + 0.1 * G[t][i], ww -= h[i];
        w[i] = ww - 0.9 * h[i];
    }
    expect3("nesterov", &o, w, __LINE__);

    /* AdaGrad: S += g²; w -= lr g / (sqrt(S) + eps). */
    o = defaults("adagrad"), o.lr = 0.1;
    for (int i = 0; i < 2; i++) {
        w[i] = W0[i], S[i] = 0;
        for (int t = 0; t < 3; t++)
            S[i] += G[t][i] * G[t][i], w[i] -= 0.1 * G[t][i] / (sqrt(S[i]) + o.eps);
    }
    expect3("adagrad", &o, w, __LINE__);

    /* RMSProp: S = a S + (1-a) g²; w -= lr g / (sqrt(S) + eps). */
    o = defaults("rmsprop"), o.lr = 0.01, o.beta2 = 0.9;
    for (int i = 0; i < 2; i++) {
        w[i] = W0[i], S[i] = 0;
        for (int t = 0; t < 3; t++)
            S[i] = 0.9 * S[i] + 0.1 * G[t][i] * G[t][i],
            w[i] -= 0.01 * G[t][i] / (sqrt(S[i]) + o.eps);
    }
    expect3("rmsprop", &o, w, __LINE__);

    /* AdaDelta: S = a S + (1-a) g²; d = g (sqrt(D)+eps)/(sqrt(S)+eps);
     * D = a D + (1-a) d²; w -= lr d. */
    o = defaults("adadelta"), o.lr = 1, o.beta2 = 0.95, o.eps = 1e-3;
    for (int i = 0; i < 2; i++) {
        w[i] = W0[i], S[i] = D[i] = 0;
        for (int t = 0; t < 3; t++) {
            S[i] = 0.95 * S[i] + 0.05 * G[t][i] * G[t][i];
            double d = G[t][i] * (sqrt(D[i]) + 1e-3) / (sqrt(S[i]) + 1e-3);
            D[i] = 0.95 * D[i] + 0.05 * d * d;
            w[i] -= d;
        }
    }
    expect3("adadelta", &o, w, __LINE__);

    /* Adam: v = g1 v + (1-g1) g; S = a S + (1-a) g²; w -= lr v̂ / (sqrt(Ŝ) + eps). */
    o = defaults("adam"), o.lr = 0.01;
    for (int i = 0; i < 2; i++) {
        w[i] = W0[i], v[i] = S[i] = 0;
        for (int t = 1; t <= 3; t++) {
            double g = G[t - 1][i];
            v[i] = 0.9 * v[i] + 0.1 * g, S[i] = 0.999 * S[i] + 0.001 * g * g;
            w[i] -= 0.01 * (v[i] / (1 - pow(0.9, t))) / (sqrt(S[i] / (1 - pow(0.999, t))) + 1e-8);
        }
    }
    expect3("adam", &o, w, __LINE__);

    /* AdamW: Adam plus w *= (1 - lr λ) before the update, λ = 0.01. */
    o = defaults("adamw"), o.lr = 0.01;
    for (int i = 0; i < 2; i++) {
        w[i] = W0[i], v[i] = S[i] = 0;
        for (int t = 1; t <= 3; t++) {
            double g = G[t - 1][i];
            v[i] = 0.9 * v[i] + 0.1 * g, S[i] = 0.999 * S[i] + 0.001 * g * g;
            w[i] = w[i] * (1 - 0.01 * 0.01) -
                   0.01 * (v[i] / (1 - pow(0.9, t))) / (sqrt(S[i] / (1 - pow(0.999, t))) + 1e-8);
        }
    }
    expect3("adamw", &o, w, __LINE__);

    /* Nadam (Dozat, constant μ): m = μ v/(1-μ^(t+1)) + (1-μ) g/(1-μ^t). */
    o = defaults("nadam"), o.lr = 0.01;
    for (int i = 0; i < 2; i++) {
        w[i] = W0[i], v[i] = S[i] = 0;
        for (int t = 1; t <= 3; t++) {
            double g = G[t - 1][i];
            v[i] = 0.9 * v[i] + 0.1 * g, S[i] = 0.999 * S[i] + 0.001 * g * g;
            double m = 0.9 * v[i] / (1 - pow(0.9, t + 1)) + 0.1 * g / (1 - pow(0.9, t));
            w[i] -= 0.01 * m / (sqrt(S[i] / (1 - pow(0.999, t))) + 1e-8);
        }
    }
    expect3("nadam", &o, w, __LINE__);

    /* RProp: η(t) = min(50, 1.2η) if g(t-1)g(t) > 0, max(1e-6, 0.5η) if < 0; w -= η sign(g).
     * iRprop-: where the sign changed, the weight stays and the gradient is forgotten. */
    for (int irp = 0; irp < 2; irp++) {
        o = defaults(irp ? "irprop" : "rprop"), o.lr = 0.1;
        for (int i = 0; i < 2; i++) {
            double eta = 0.1, prev = 0;
            w[i] = W0[i];
            for (int t = 0; t < 3; t++) {
                double g = G[t][i], sg = prev * g;
                if (sg > 0) eta = fmin(50, 1.2 * eta);
                else if (sg < 0) eta = fmax(1e-6, 0.5 * eta);
                if (irp && sg < 0) g = 0;
                w[i] -= eta * ((g > 0) - (g < 0));
                prev = g;
            }
        }
        expect3(irp ? "irprop" : "rprop", &o, w, __LINE__);
    }

    /* QuickProp, the lectures' rules with η0 = 0.1, μmax = 1.75. */
    o = defaults("quickprop"), o.lr = 0.1;
    for (int i = 0; i < 2; i++) {
        double prev = 0, dw = 0;
        w[i] = W0[i];
        for (int t = 0; t < 3; t++) {
            double sl = G[t][i], eta = (dw == 0 || -dw * sl > 0) ? 0.1 : 0;
            double beta = sl / (prev - sl), gamma = sl * -dw * beta;
            double mu = (beta > 1.75 || gamma < 0) ? 1.75 : beta;
            double step = -eta * sl + mu * dw;
            w[i] += step;
            prev = sl, dw = step;
        }
    }
    expect3("quickprop", &o, w, __LINE__);

    /* Borisov's momentum with L2: ΔW_t = η(∇E + ρW_{t-1}) + μΔW_{t-1}. */
    o = defaults("momentum"), o.lr = 0.1, o.momentum = 0.5, o.l2 = 0.2;
    for (int i = 0; i < 2; i++) {
        w[i] = W0[i], h[i] = 0;
        for (int t = 0; t < 3; t++) h[i] = 0.1 * (G[t][i] + 0.2 * w[i]) + 0.5 * h[i], w[i] -= h[i];
    }
    expect3("momentum", &o, w, __LINE__);

    /* Weight decay: w := w(1 - ηλ) - η∇L. */
    o = defaults("sgd"), o.lr = 0.1, o.weight_decay = 0.5;
    for (int i = 0; i < 2; i++) {
        w[i] = W0[i];
        for (int t = 0; t < 3; t++) w[i] = w[i] * (1 - 0.05) - 0.1 * G[t][i];
    }
    expect3("sgd", &o, w, __LINE__);

    /* Clipping by value, then by global norm (θ = 0.1). */
    o = defaults("sgd"), o.lr = 1, o.clip_value = 0.15;
    for (int i = 0; i < 2; i++) {
        w[i] = W0[i];
        for (int t = 0; t < 3; t++) w[i] -= fmax(-0.15, fmin(0.15, G[t][i]));
    }
    expect3("sgd", &o, w, __LINE__);
    o = defaults("sgd"), o.lr = 1, o.clip_norm = 0.1;
    for (int i = 0; i < 2; i++) w[i] = W0[i];
    for (int t = 0; t < 3; t++) {
        double nrm = hypot(G[t][0], G[t][1]), k = nrm > 0.1 ? 0.1 / nrm : 1;
        for (int i = 0; i < 2; i++) w[i] -= k * G[t][i];
    }
    expect3("sgd", &o, w, __LINE__);

    /* A step schedule: lr 0.1 for steps 0 and 1, then 0.05. */
    o = defaults("sgd"), o.lr = 0.1;
    o.schedule = (tg_lr_schedule){.kind = TG_LR_STEP, .step_size = 2, .gamma = 0.5};
    for (int i = 0; i < 2; i++) w[i] = W0[i] - 0.1 * (G[0][i] + G[1][i]) - 0.05 * G[2][i];
    expect3("sgd", &o, w, __LINE__);
}

/* ---- the same first steps against PyTorch 1.13's torch.optim (float64), printed while
 * developing with /usr/bin/python3 and written in here; the test does not need torch.
 * Where the lectures' form differs from PyTorch's, the lectures win and the PyTorch
 * arguments below are chosen to reach the same form (see docs/optim.md):
 *   nesterov   the parameters hold the look-ahead point, as SGD(nesterov=True) does;
 *   nadam      constant momentum: NAdam(momentum_decay=1e12) makes PyTorch's mu_t = gamma
 *              (numbers from foreach=True: 1.13's single-tensor path multiplies mu into
 *              mu_product_next twice, a PyTorch bug fixed in 2.0);
 *   l2         PyTorch's SGD/Adam weight_decay is our coupled l2 (rho w added to g);
 *   adamw      AdamW(weight_decay) is our decoupled weight_decay.
 * AdaDelta is not here: PyTorch puts eps inside the roots, the lectures outside. ---- */
typedef struct torch_case {
    const char *m;
    double lr, momentum, beta2, eps, l2, weight_decay; /* < 0: the method's default */
    double want[3][2];                                 /* w after steps 1, 2, 3 */
} torch_case;

/* clang-format off */
static const torch_case torch_cases[] = {
    {"sgd", 0.1, -1, -1, -1, 0, 0,
     {{0.47999999999999998, -1.46}, {0.46999999999999997, -1.49},
      {0.52000000000000002, -1.4949999999999999}}},
    {"sgd", 0.1, -1, -1, -1, 0.2, 0, /* SGD(weight_decay=0.2) */
     {{0.46999999999999997, -1.4299999999999999}, {0.45059999999999995, -1.4314},
      {0.49158799999999997, -1.407772}}},
    {"momentum", 0.1, 0.9, -1, -1, 0, 0,
     {{0.47999999999999998, -1.46}, {0.45199999999999996, -1.454}, {0.47679999999999995, -1.4536}}},
    {"momentum", 0.1, 0.5, -1, -1, 0.2, 0, /* Borisov's momentum with L2 */
     {{0.46999999999999997, -1.4299999999999999}, {0.43559999999999999, -1.3963999999999999},
      {0.45968799999999999, -1.3566719999999999}}},
    {"nesterov", 0.1, 0.9, -1, -1, 0, 0,
     {{0.46200000000000002, -1.4239999999999999}, {0.42680000000000001, -1.4485999999999999},
      {0.49912000000000001, -1.4532399999999999}}},
    {"adagrad", 0.1, -1, -1, 1e-10, 0, 0,
     {{0.40000000004999997, -1.4000000000249999}, {0.35527864052000419, -1.460000000013},
      {0.4465657334208652, -1.4699503719131197}}},
    {"rmsprop", 0.01, -1, 0.9, 1e-8, 0, 0, /* RMSprop(alpha=0.9) */
     {{0.46837722839831541, -1.4683772258983161}, {0.4536330349567384, -1.4879888381300832},
      {0.48292342838621088, -1.491413977515551}}},
    {"adam", 0.01, -1, -1, -1, 0, 0,
     {{0.49000000049999998, -1.49000000025}, {0.4806782047015366, -1.4891067502012136},
      {0.4835710840273641, -1.4890558574203054}}},
    {"adam", 0.01, -1, -1, -1, 0.1, 0, /* Adam(weight_decay=0.1): coupled */
     {{0.49000000039999997, -1.4900000001818181}, {0.48043377965467221, -1.4855097498910073},
      {0.48180498990941534, -1.4810008450722554}}},
    {"adamw", 0.01, -1, -1, -1, 0, 0.01,
     {{0.48995000049999998, -1.4898500002499999}, {0.4805792097014866, -1.4888077652011886},
      {0.48342403110634397, -1.4886079916437602}}},
    {"nadam", 0.01, -1, -1, -1, 0, 0,
     {{0.48526315863157893, -1.4852631582631579}, {0.47605192709535349, -1.4891657710224315},
      {0.48393602659015722, -1.4897658367178832}}},
};
/* clang-format on */

static void test_against_pytorch(void)
{
    for (size_t c = 0; c < sizeof torch_cases / sizeof torch_cases[0]; c++) {
        const torch_case *tc = &torch_cases[c];
        tg_optim_opts o = defaults(tc->m);
        o.lr = tc->lr, o.l2 = tc->l2, o.weight_decay = tc->weight_decay;
        if (tc->momentum >= 0) o.momentum = tc->momentum;
        if (tc->beta2 >= 0) o.beta2 = tc->beta2;
        if (tc->eps >= 0) o.eps = tc->eps;
        for (int d = 0; d < 2; d++) { /* f64, then f32 */
            int64_t s[1] = {2};
            tg_tensor *p = tg_tensor_new(d ? TG_F32 : TG_F64, 1, s);
            for (int i = 0; i < 2; i++) tg_set(p, i, W0[i]);
            tg_set_requires_grad(p, true);
            tg_optim *opt = tg_optim_new(tc->m, 1, &p, &o, NULL);
            CHECK(opt != NULL);
            for (int t = 0; opt && t < 3; t++) {
                tg_optim_zero_grad(opt);
                for (int i = 0; i < 2; i++) tg_set(tg_grad(p), i, G[t][i]);
                tg_optim_step(opt);
                for (int i = 0; i < 2; i++) {
                    double got = tg_get(p, i), want = tc->want[t][i];
                    if (fabs(got - want) > (d ? 2e-6 : 1e-14)) {
                        printf("test_optim.c: case %zu (%s, %s): step %d, w[%d] = %.17g, "
                               "PyTorch %.17g\n",
                               c, tc->m, d ? "f32" : "f64", t + 1, i, got, want);
                        check_failed++;
                    } else {
                        check_passed++;
                    }
                }
            }
            tg_optim_free(opt);
            tg_tensor_free(p);
        }
    }
}

/* Nesterov as the lectures write it, with the gradient of f(w) = sum c_i (w_i - a_i)^2
 * taken at the look-ahead point w - alpha h, against the optimiser, whose parameters hold
 * that look-ahead point u = w - alpha h after every step. */
static void test_nesterov_lookahead(void)
{
    const double c[2] = {1, 10}, a[2] = {3, -2}, lr = 0.02, al = 0.9;
    double w[2] = {0.5, -1.5}, h[2] = {0, 0};
    int64_t s[1] = {2};
    tg_tensor *p = tg_tensor_from(TG_F64, 1, s, w);
    tg_set_requires_grad(p, true);
    tg_optim_opts o = defaults("nesterov");
    o.lr = lr, o.momentum = al;
    tg_optim *opt = tg_optim_new("nesterov", 1, &p, &o, NULL);
    tg_optim_zero_grad(opt);
    for (int t = 0; t < 20; t++) {
        for (int i = 0; i < 2; i++) {
            double look = w[i] - al * h[i]; /* the lectures: grad at w - alpha h */
            h[i] = al * h[i] + lr * 2 * c[i] * (look - a[i]);
            w[i] -= h[i];
            /* the optimiser sees the gradient at the point it holds */
            tg_set(tg_grad(p), i, 2 * c[i] * (tg_get(p, i) - a[i]));
        }
        tg_optim_step(opt);
        for (int i = 0; i < 2; i++) CHECK_NEAR(tg_get(p, i), w[i] - al * h[i], 1e-13);
    }
    tg_optim_free(opt);
    tg_tensor_free(p);
}

/* Two parameters of different sizes: the norm is global, over both. Numbers by hand:
 * ||(3, 4, 12)|| = 13, theta = 6.5 halves every element. (PyTorch's clip_grad_norm_
 * divides by norm + 1e-6 and gives 1.4999998846...; the lectures' rule is exact.) */
static void test_clipping(void)
{
    for (int d = 0; d < 2; d++) {
        tg_dtype dt = d ? TG_F32 : TG_F64;
        double tol = d ? 1e-6 : 1e-15;
        tg_tensor *a = tg_tensor_new(dt, 1, (int64_t[]){2});
        tg_tensor *b = tg_tensor_new(dt, 2, (int64_t[]){1, 1});
        tg_tensor *ps[2] = {a, b};
        tg_set_requires_grad(a, true), tg_set_requires_grad(b, true);
        tg_zero_grad(a), tg_zero_grad(b);
        tg_set(tg_grad(a), 0, 3), tg_set(tg_grad(a), 1, 4), tg_set(tg_grad(b), 0, 12);
        CHECK_NEAR(tg_grad_norm(2, ps), 13, tol);
        CHECK_NEAR(tg_clip_grad_norm(2, ps, 20), 13, tol); /* under the limit: unchanged */
        CHECK_NEAR(tg_get(tg_grad(b), 0), 12, 0);
        CHECK_NEAR(tg_clip_grad_norm(2, ps, 6.5), 13, tol);
        CHECK_NEAR(tg_get(tg_grad(a), 0), 1.5, tol);
        CHECK_NEAR(tg_get(tg_grad(a), 1), 2, tol);
        CHECK_NEAR(tg_get(tg_grad(b), 0), 6, tol);
        CHECK_NEAR(tg_grad_norm(2, ps), 6.5, tol);
        /* by value: clamp to [-1.75, 1.75]; returns the norm before */
        tg_set(tg_grad(a), 1, -2);
        CHECK_NEAR(tg_clip_grad_value(2, ps, 1.75), 6.5, tol);
        CHECK_NEAR(tg_get(tg_grad(a), 0), 1.5, tol);
        CHECK_NEAR(tg_get(tg_grad(a), 1), -1.75, tol);
        CHECK_NEAR(tg_get(tg_grad(b), 0), 1.75, tol);
        /* a parameter without requires_grad is neither counted nor clipped */
        tg_set_requires_grad(b, false);
        CHECK_NEAR(tg_grad_norm(2, ps), hypot(1.5, 1.75), tol);
        /* bad arguments: a negative TG_EARG, nothing touched */
        CHECK(tg_clip_grad_norm(2, ps, 0) == TG_EARG && tg_clip_grad_norm(2, ps, -1) == TG_EARG);
        CHECK(tg_clip_grad_norm(2, ps, (double)NAN) == TG_EARG);
        CHECK(tg_clip_grad_value(2, ps, 0) == TG_EARG && tg_grad_norm(1, NULL) == TG_EARG);
        tg_tensor *holes[2] = {a, NULL};
        CHECK(tg_grad_norm(2, holes) == TG_EARG && tg_clip_grad_norm(-1, ps, 1) == TG_EARG);
        CHECK_NEAR(tg_get(tg_grad(a), 1), -1.75, tol);

        /* Both options in one step of SGD with lr 1, over both parameters: value first
         * (3, -5, 12 -> 3, -4, 4; norm sqrt(41)), then norm (theta 3.2). */
        tg_set_requires_grad(b, true);
        tg_optim_opts o = defaults("sgd");
        o.lr = 1, o.clip_value = 4, o.clip_norm = 3.2;
        tg_optim *opt = tg_optim_new("sgd", 2, ps, &o, NULL);
        tg_tensor_fill(a, 0), tg_tensor_fill(b, 0);
        tg_set(tg_grad(a), 0, 3), tg_set(tg_grad(a), 1, -5), tg_set(tg_grad(b), 0, 12);
        CHECK(tg_optim_step(opt) == TG_OK);
        double k = 3.2 / sqrt(41);
        CHECK_NEAR(tg_get(a, 0), -3 * k, tol);
        CHECK_NEAR(tg_get(a, 1), 4 * k, tol);
        CHECK_NEAR(tg_get(b, 0), -4 * k, tol);
        tg_optim_free(opt);
        tg_tensor_free(a), tg_tensor_free(b);
    }
}

/* Schedules through the optimiser: SGD with a constant gradient 1 moves w by -lr_k at step
 * k, so every step shows the lr it used. Expected lrs from PyTorch's StepLR(3, 0.5),
 * ExponentialLR(0.9) and CosineAnnealingLR(T_max=4, eta_min=0.01), base lr 0.1. PyTorch's
 * cosine goes back up after T_max (0.02318 at k = 5); ours stays at lr_min. */
static void test_schedule_steps(void)
{
    static const struct {
        tg_lr_schedule s;
        double lr[6];
    } t[] = {
        {{.kind = TG_LR_STEP, .step_size = 3, .gamma = 0.5}, {0.1, 0.1, 0.1, 0.05, 0.05, 0.05}},
        {{.kind = TG_LR_EXP, .gamma = 0.9},
         {0.1, 0.090000000000000011, 0.081000000000000016, 0.07290000000000002,
          0.065610000000000016, 0.059049000000000018}},
        {{.kind = TG_LR_COSINE, .t_max = 4, .lr_min = 0.01},
         {0.1, 0.086819805153394644, 0.055000000000000007, 0.023180194846605363, 0.01, 0.01}},
    };
    for (size_t c = 0; c < sizeof t / sizeof t[0]; c++) {
        for (int d = 0; d < 2; d++) {
            tg_tensor *p = tg_tensor_new(d ? TG_F32 : TG_F64, 1, (int64_t[]){1});
            tg_set_requires_grad(p, true);
            tg_zero_grad(p);
            tg_optim_opts o = defaults("sgd");
            o.lr = 0.1, o.schedule = t[c].s;
            tg_optim *opt = tg_optim_new("sgd", 1, &p, &o, NULL);
            for (int k = 0; k < 6; k++) {
                CHECK_NEAR(tg_optim_lr(opt), t[c].lr[k], 1e-15);
                double before = tg_get(p, 0);
                tg_set(tg_grad(p), 0, 1);
                tg_optim_step(opt);
                CHECK_NEAR(before - tg_get(p, 0), t[c].lr[k], d ? 1e-7 : 1e-15);
            }
            CHECK(tg_optim_step_count(opt) == 6);
            /* set_lr rescales the whole schedule; reset starts it again */
            CHECK(tg_optim_set_lr(opt, 0.2) == TG_OK && tg_optim_reset(opt) == TG_OK);
            CHECK(tg_optim_step_count(opt) == 0);
            CHECK_NEAR(tg_optim_lr(opt), 0.2, 1e-15);
            CHECK(tg_optim_set_step_count(opt, 1) == TG_OK);
            double lo = t[c].s.lr_min; /* 0 but for cosine: lr - lo scales with lr */
            CHECK_NEAR(tg_optim_lr(opt), lo + (0.2 - lo) * (t[c].lr[1] - lo) / (0.1 - lo), 1e-15);
            tg_optim_free(opt);
            tg_tensor_free(p);
        }
    }
}

/* L2 is coupled (rho w joins the gradient, so Adam rescales it), weight decay decoupled:
 * with Adam they differ; with SGD they are the same step. */
static void test_l2_vs_weight_decay(void)
{
    double ws[4];
    const char *ms[2] = {"sgd", "adam"};
    for (int m = 0; m < 2; m++) {
        for (int k = 0; k < 2; k++) {
            tg_tensor *p = tg_tensor_from(TG_F64, 1, (int64_t[]){2}, W0);
            tg_set_requires_grad(p, true);
            tg_optim_opts o = defaults(ms[m]);
            o.lr = 0.1;
            if (k) o.weight_decay = 0.3;
            else o.l2 = 0.3;
            tg_optim *opt = tg_optim_new(ms[m], 1, &p, &o, NULL);
            for (int t = 0; t < 3; t++) {
                tg_optim_zero_grad(opt);
                for (int i = 0; i < 2; i++) tg_set(tg_grad(p), i, G[t][i]);
                tg_optim_step(opt);
            }
            ws[2 * m + k] = tg_get(p, 0);
            tg_optim_free(opt);
            tg_tensor_free(p);
        }
    }
    CHECK_NEAR(ws[0], ws[1], 1e-15);   /* SGD: w(1 - lr rho) - lr g either way */
    CHECK(fabs(ws[2] - ws[3]) > 1e-3); /* Adam: not the same */
    /* Adam with decoupled decay, by hand, first step: w(1 - 0.03) - 0.1 sign(g) (v^/sqrt(G^)
     * = g/|g| at t = 1, eps aside). */
    tg_tensor *p = tg_tensor_from(TG_F64, 1, (int64_t[]){2}, W0);
    tg_set_requires_grad(p, true);
    tg_optim_opts o = defaults("adam");
    o.lr = 0.1, o.weight_decay = 0.3;
    tg_optim *opt = tg_optim_new("adam", 1, &p, &o, NULL);
    tg_optim_zero_grad(opt);
    for (int i = 0; i < 2; i++) tg_set(tg_grad(p), i, G[0][i]);
    tg_optim_step(opt);
    CHECK_NEAR(tg_get(p, 0), 0.5 * 0.97 - 0.1 * 0.2 / (0.2 + 1e-8), 1e-15);
    CHECK_NEAR(tg_get(p, 1), -1.5 * 0.97 + 0.1 * 0.4 / (0.4 + 1e-8), 1e-15);
    tg_optim_free(opt);
    tg_tensor_free(p);
}

/* Bad arguments: a NULL result, a nonzero code and a message naming the call, the method
 * and what is wrong; never a crash, with or without a status to fill. */
static void test_bad_arguments(void)
{
    int64_t s[1] = {2};
    tg_tensor *a = tg_tensor_new(TG_F64, 1, s), *b = tg_tensor_new(TG_F32, 1, s);
    tg_set_requires_grad(a, true), tg_set_requires_grad(b, true);
    tg_tensor *ab[2] = {a, b}, *an[2] = {a, NULL};
    tg_status st;
    CHECK(tg_optim_new(NULL, 1, &a, NULL, &st) == NULL && st.code == TG_EARG);
    CHECK_STR_HAS(st.msg, "unknown method \"(null)\" (known: sgd, momentum");
    CHECK(tg_optim_new("Adam", 1, &a, NULL, &st) == NULL && st.code == TG_EARG);
    CHECK_STR_HAS(st.msg, "tg_optim_new: unknown method \"Adam\"");
    CHECK(tg_optim_new("nosuch", 1, &a, NULL, NULL) == NULL); /* no status: still no crash */
    CHECK(tg_optim_new("sgd", 1, NULL, NULL, &st) == NULL && st.code == TG_EARG);
    CHECK_STR_HAS(st.msg, "tg_optim_new: sgd: no parameters (n_params = 1, params = NULL)");
    CHECK(tg_optim_new("sgd", -3, &a, NULL, &st) == NULL && st.code == TG_EARG);
    CHECK_STR_HAS(st.msg, "no parameters (n_params = -3)");
    CHECK(tg_optim_new("adam", 2, an, NULL, &st) == NULL && st.code == TG_EARG);
    CHECK_STR_HAS(st.msg, "tg_optim_new: adam: parameter 1 is NULL");
    CHECK(tg_optim_new("rmsprop", 2, ab, NULL, &st) == NULL && st.code == TG_EDTYPE);
    CHECK_STR_HAS(st.msg, "tg_optim_new: rmsprop: parameter 1 is f32 but parameter 0 is f64");
    CHECK(tg_optim_new("sgd", 2, ab, NULL, NULL) == NULL);

    tg_optim_opts o = defaults("sgd");
    o.lr = -0.1;
    CHECK(tg_optim_new("sgd", 1, &a, &o, &st) == NULL && st.code == TG_EARG);
    CHECK_STR_HAS(st.msg, "tg_optim_new: sgd: lr = -0.1 is outside [0, inf)");
    o.lr = (double)NAN;
    CHECK(tg_optim_new("sgd", 1, &a, &o, &st) == NULL);
    CHECK_STR_HAS(st.msg, "lr = nan");
    o = defaults("momentum"), o.momentum = 1;
    CHECK(tg_optim_new("momentum", 1, &a, &o, &st) == NULL);
    CHECK_STR_HAS(st.msg, "momentum = 1 is outside [0, 1)");
    o = defaults("adam"), o.beta2 = -0.5;
    CHECK(tg_optim_new("adam", 1, &a, &o, &st) == NULL);
    CHECK_STR_HAS(st.msg, "beta2 = -0.5");
    o = defaults("adam"), o.eps = -1e-8;
    CHECK(tg_optim_new("adam", 1, &a, &o, &st) == NULL);
    CHECK_STR_HAS(st.msg, "eps = -1e-08");

    /* bad schedules */
    o = defaults("sgd");
    o.schedule = (tg_lr_schedule){.kind = TG_LR_STEP, .step_size = 0, .gamma = 0.5};
    CHECK(tg_optim_new("sgd", 1, &a, &o, &st) == NULL && st.code == TG_EARG);
    CHECK_STR_HAS(st.msg, "tg_optim_new: sgd: schedule: step_size = 0 must be >= 1");
    o.schedule = (tg_lr_schedule){.kind = TG_LR_EXP, .gamma = 0};
    CHECK(tg_optim_new("sgd", 1, &a, &o, &st) == NULL);
    CHECK_STR_HAS(st.msg, "schedule: gamma = 0 must be > 0");
    o.schedule = (tg_lr_schedule){.kind = TG_LR_COSINE, .t_max = 10, .lr_min = -1};
    CHECK(tg_optim_new("sgd", 1, &a, &o, &st) == NULL);
    CHECK_STR_HAS(st.msg, "schedule: lr_min = -1 must be >= 0");
    o.schedule = (tg_lr_schedule){.kind = TG_LR_COSINE, .t_max = 0};
    CHECK(tg_optim_new("sgd", 1, &a, &o, &st) == NULL);
    CHECK_STR_HAS(st.msg, "schedule: t_max = 0 must be >= 1");
    o.schedule = (tg_lr_schedule){.kind = (tg_lr_kind)42};
    CHECK(tg_optim_new("sgd", 1, &a, &o, &st) == NULL);
    CHECK_STR_HAS(st.msg, "schedule: unknown kind 42");
    CHECK(tg_lr_at(&o.schedule, 0.1, 0) == TG_EARG);
    CHECK(tg_lr_at(NULL, -0.1, 0) == TG_EARG && tg_lr_at(NULL, (double)INFINITY, 0) == TG_EARG);

    /* calls on NULL and bad values on a live optimiser */
    tg_optim_opts dummy;
    CHECK(tg_optim_defaults("nosuch", &dummy) == TG_EARG);
    CHECK(tg_optim_defaults("sgd", NULL) == TG_EARG);
    CHECK(tg_optim_step(NULL) == TG_EARG && tg_optim_zero_grad(NULL) == TG_EARG);
    CHECK(tg_optim_reset(NULL) == TG_EARG && tg_optim_set_lr(NULL, 1) == TG_EARG);
    CHECK(tg_optim_step_closure(NULL, NULL, NULL, NULL) == TG_EARG);
    CHECK(tg_optim_lr(NULL) == -1 && tg_optim_step_count(NULL) == -1);
    CHECK(tg_optim_name(NULL) == NULL && tg_optim_options(NULL) == NULL);
    CHECK(!tg_optim_needs_closure(NULL) && tg_optim_method(-1) == NULL);
    tg_optim_free(NULL);
    tg_optim *opt = tg_optim_new("adam", 1, &a, NULL, &st);
    CHECK(opt != NULL && st.code == TG_OK);
    CHECK(tg_optim_set_lr(opt, -1) == TG_EARG && tg_optim_set_lr(opt, (double)NAN) == TG_EARG);
    CHECK(tg_optim_set_step_count(opt, -1) == TG_EARG);
    CHECK(tg_optim_step_closure(opt, NULL, NULL, NULL) == TG_EARG);
    CHECK(strcmp(tg_optim_name(opt), "adam") == 0 && !tg_optim_needs_closure(opt));
    CHECK_NEAR(tg_optim_options(opt)->beta2, 0.999, 0);
    CHECK_NEAR(tg_optim_lr(opt), 0.001, 0);
    tg_optim_free(opt);
    tg_tensor_free(a), tg_tensor_free(b);
}

/* Every option range of optim.h, for every method: each field of the options set in turn
 * to each probe value, over the method's defaults. The expected answer comes from the
 * ranges as optim.h states them, written out here: every field finite and >= 0 whatever
 * the method, and the method's own fields in their ranges. A refusal is TG_EARG with a
 * message naming the method and the field. */
static bool in_list(const char *name, const char *const *list)
{
    for (; *list; list++)
        if (strcmp(name, *list) == 0) return true;
    return false;
}

static bool option_ok(const char *m, const char *field, double v, const tg_optim_opts *o)
{
    static const char *const uses_eps[] = {"adagrad", "rmsprop", "adadelta", "adam",
                                           "nadam",   "adamw",   NULL};
    static const char *const rprops[] = {"rprop", "irprop", NULL};
    if (!(v >= 0 && isfinite(v))) return false; /* any method, any field */
    bool rp = in_list(m, rprops);
    if (!strcmp(field, "momentum") || !strcmp(field, "beta1") || !strcmp(field, "beta2"))
        return v < 1;
    if (!strcmp(field, "eps")) return !in_list(m, uses_eps) || v > 0;
    if (!strcmp(field, "step_up")) return !rp || v >= 1;
    if (!strcmp(field, "step_down")) return !rp || (v > 0 && v <= 1);
    if (!strcmp(field, "step_min")) return !rp || (v > 0 && v <= o->step_max);
    if (!strcmp(field, "step_max")) return !rp || v >= o->step_min;
    if (!strcmp(field, "mu_max")) return strcmp(m, "quickprop") != 0 || v > 0;
    if (!strcmp(field, "damping")) return strcmp(m, "lm") != 0 || v > 0;
    if (!strcmp(field, "history")) return strcmp(m, "lbfgs") != 0 || (v >= 1 && v <= 1000);
    return true; /* lr, l2, weight_decay, clip_norm, clip_value, restart */
}

static void test_option_ranges(void)
{
    const double probes[] = {(double)NAN,
                             -(double)INFINITY,
                             (double)INFINITY,
                             -1,
                             -1e-300,
                             0,
                             1e-300,
                             1e-7,
                             0.5,
                             0.999,
                             1,
                             1.5,
                             50,
                             1e300};
    const double int_probes[] = {-1, 0, 1, 10, 1000, 1001, 9e18};
    static const char *const fields[] = {
        "lr",           "momentum",  "beta1",      "beta2",   "eps",       "l2",
        "weight_decay", "clip_norm", "clip_value", "step_up", "step_down", "step_min",
        "step_max",     "mu_max",    "damping",    "history", "restart"};
    tg_tensor *a = tg_tensor_new(TG_F64, 1, (int64_t[]){2});
    tg_set_requires_grad(a, true);
    int refused = 0, accepted = 0;
    for (int m = 0; tg_optim_method(m); m++) {
        const char *name = tg_optim_method(m);
        tg_status st;
        tg_optim_opts o = defaults(name);
        tg_optim *opt = tg_optim_new(name, 1, &a, &o, &st); /* the defaults are in range */
        CHECK(opt != NULL);
        tg_optim_free(opt);
        for (size_t f = 0; f < sizeof fields / sizeof fields[0]; f++) {
            bool is_int = !strcmp(fields[f], "history") || !strcmp(fields[f], "restart");
            const double *pv = is_int ? int_probes : probes;
            size_t np = is_int ? sizeof int_probes / sizeof int_probes[0]
                               : sizeof probes / sizeof probes[0];
            for (size_t k = 0; k < np; k++) {
                if (is_int && !(pv[k] >= -1)) continue;
                o = defaults(name);
                double *slot[] = {&o.lr,         &o.momentum, &o.beta1,        &o.beta2,
                                  &o.eps,        &o.l2,       &o.weight_decay, &o.clip_norm,
                                  &o.clip_value, &o.step_up,  &o.step_down,    &o.step_min,
                                  &o.step_max,   &o.mu_max,   &o.damping,      NULL,
                                  NULL};
                if (!strcmp(fields[f], "history")) o.history = (int64_t)pv[k];
                else if (!strcmp(fields[f], "restart")) o.restart = (int64_t)pv[k];
                else *slot[f] = pv[k];
                bool want = option_ok(name, fields[f], pv[k], &o);
                st.code = 0, st.msg[0] = '\0';
                opt = tg_optim_new(name, 1, &a, &o, &st);
                char method[64], field[64]; /* step_min > step_max names both */
                snprintf(method, sizeof method, "tg_optim_new: %s: ", name);
                snprintf(field, sizeof field, "%s = ", fields[f]);
                bool ok = want ? opt != NULL && st.code == TG_OK
                               : !opt && st.code == TG_EARG && strstr(st.msg, method) == st.msg &&
                                     strstr(st.msg, field) && strstr(st.msg, " is outside ");
                if (!ok)
                    printf("  %s: %s = %g: %s (%s)\n", name, fields[f], pv[k],
                           want ? "refused" : "accepted", st.msg);
                CHECK(ok);
                want ? accepted++ : refused++;
                tg_optim_free(opt);
            }
        }
    }
    CHECK(refused > 500 && accepted > 1000); /* the table did cover both sides */
    /* The cases, with the whole message. */
    static const struct {
        const char *m, *field;
        double v;
        const char *msg;
    } cases[] = {
        {"rprop", "step_up", 0.5, "tg_optim_new: rprop: step_up = 0.5 is outside [1, inf)"},
        {"irprop", "step_down", 0, "tg_optim_new: irprop: step_down = 0 is outside (0, 1]"},
        {"rprop", "step_max", 1e-7, "step_max = 1e-07 is outside [step_min = 1e-06, inf)"},
        {"quickprop", "mu_max", 0, "tg_optim_new: quickprop: mu_max = 0 is outside (0, inf)"},
        {"lbfgs", "history", 0, "tg_optim_new: lbfgs: history = 0 is outside [1, 1000]"},
        {"lm", "damping", 0, "tg_optim_new: lm: damping = 0 is outside (0, inf)"},
        {"adam", "eps", 0, "tg_optim_new: adam: eps = 0 is outside (0, inf)"},
        {"sgd", "clip_norm", (double)INFINITY, "sgd: clip_norm = inf is outside [0, inf)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tg_optim_opts o = defaults(cases[i].m);
        if (!strcmp(cases[i].field, "step_up")) o.step_up = cases[i].v;
        if (!strcmp(cases[i].field, "step_down")) o.step_down = cases[i].v;
        if (!strcmp(cases[i].field, "step_max")) o.step_max = cases[i].v;
        if (!strcmp(cases[i].field, "mu_max")) o.mu_max = cases[i].v;
        if (!strcmp(cases[i].field, "history")) o.history = (int64_t)cases[i].v;
        if (!strcmp(cases[i].field, "damping")) o.damping = cases[i].v;
        if (!strcmp(cases[i].field, "eps")) o.eps = cases[i].v;
        if (!strcmp(cases[i].field, "clip_norm")) o.clip_norm = cases[i].v;
        tg_status st;
        CHECK(tg_optim_new(cases[i].m, 1, &a, &o, &st) == NULL && st.code == TG_EARG);
        CHECK_STR_HAS(st.msg, cases[i].msg);
    }
    /* A zero-filled struct: fine for sgd, refused where a constant cannot be 0. */
    tg_optim_opts z = {0};
    tg_optim *zs = tg_optim_new("sgd", 1, &a, &z, NULL);
    CHECK(zs != NULL);
    tg_optim_free(zs);
    static const char *const nonzero[] = {"adam", "adagrad", "rprop", "quickprop", "lbfgs", "lm"};
    for (int i = 0; i < 6; i++) CHECK(tg_optim_new(nonzero[i], 1, &a, &z, NULL) == NULL);
    tg_tensor_free(a);
}

/* Every schedule kind's fields, each set to each probe value; a field the kind does not read
 * is not checked. tg_optim_new and tg_lr_at agree. */
static void test_schedule_ranges(void)
{
    const double probes[] = {
        (double)NAN, -(double)INFINITY, (double)INFINITY, -1, 0, 1e-300, 0.5, 1, 2, 1e300};
    tg_tensor *a = tg_tensor_new(TG_F64, 1, (int64_t[]){2});
    tg_set_requires_grad(a, true);
    const tg_lr_kind kinds[4] = {TG_LR_CONSTANT, TG_LR_STEP, TG_LR_EXP, TG_LR_COSINE};
    static const char *const fields[4] = {"step_size", "gamma", "t_max", "lr_min"};
    for (int k = 0; k < 4; k++)
        for (int f = 0; f < 4; f++)
            for (size_t i = 0; i < sizeof probes / sizeof probes[0]; i++) {
                double v = probes[i];
                bool integer = f == 0 || f == 2;
                if (integer && !(fabs(v) < 1e18 && v == floor(v))) continue;
                tg_lr_schedule s = {
                    .kind = kinds[k], .step_size = 10, .gamma = 0.5, .t_max = 100, .lr_min = 0};
                if (f == 0) s.step_size = (int64_t)v;
                if (f == 1) s.gamma = v;
                if (f == 2) s.t_max = (int64_t)v;
                if (f == 3) s.lr_min = v;
                bool reads = (f == 0 && kinds[k] == TG_LR_STEP) ||
                             (f == 1 && (kinds[k] == TG_LR_STEP || kinds[k] == TG_LR_EXP)) ||
                             (f >= 2 && kinds[k] == TG_LR_COSINE);
                bool want = !reads || (integer  ? v >= 1
                                       : f == 1 ? v > 0 && isfinite(v)
                                                : v >= 0 && isfinite(v));
                tg_optim_opts o = defaults("sgd");
                o.schedule = s;
                tg_status st;
                tg_optim *opt = tg_optim_new("sgd", 1, &a, &o, &st);
                char prefix[64];
                snprintf(prefix, sizeof prefix, "tg_optim_new: sgd: schedule: %s = ", fields[f]);
                bool ok = want ? opt != NULL && tg_lr_at(&s, 0.1, 3) >= 0
                               : !opt && st.code == TG_EARG && strstr(st.msg, prefix) &&
                                     tg_lr_at(&s, 0.1, 3) == TG_EARG;
                if (!ok)
                    printf("  kind %d: %s = %g: %s\n", k, fields[f], v, want ? "refused" : st.msg);
                CHECK(ok);
                tg_optim_free(opt);
            }
    tg_tensor_free(a);
}

/* Every first-order method through the closure interface: one evaluation and the same
 * update as tg_optim_step after the gradient was written by hand. */
static int quad_closure(void *ctx, double *loss)
{
    tg_tensor *p = ctx;
    double f = 0;
    for (int i = 0; i < 2; i++) {
        double d = tg_get(p, i) - 1;
        f += d * d;
        tg_set(tg_grad(p), i, tg_get(tg_grad(p), i) + 2 * d); /* adds, as a sweep does */
    }
    *loss = f;
    return TG_OK;
}

/* NOLINTNEXTLINE(readability-non-const-parameter): a tg_loss_fn writes *loss */
static int failing_closure(void *ctx, double *loss)
{
    (void)ctx, (void)loss;
    return TG_EIO;
}

static void test_closure_first_order(void)
{
    for (int m = 0; m < 10; m++) { /* sgd .. adamw: the per-element methods of issue 3 */
        const char *name = tg_optim_method(m);
        tg_tensor *p = tg_tensor_from(TG_F64, 1, (int64_t[]){2}, W0);
        tg_tensor *q = tg_tensor_from(TG_F64, 1, (int64_t[]){2}, W0);
        tg_set_requires_grad(p, true), tg_set_requires_grad(q, true);
        tg_optim *op = tg_optim_new(name, 1, &p, NULL, NULL);
        tg_optim *oq = tg_optim_new(name, 1, &q, NULL, NULL);
        CHECK(op && oq && !tg_optim_needs_closure(op));
        for (int t = 0; op && oq && t < 3; t++) {
            double loss = -1, want = 0;
            CHECK(tg_optim_step_closure(op, quad_closure, p, &loss) == TG_OK);
            tg_optim_zero_grad(oq);
            quad_closure(q, &want);
            tg_optim_step(oq);
            CHECK_NEAR(loss, want, 0);
            for (int i = 0; i < 2; i++) CHECK_NEAR(tg_get(p, i), tg_get(q, i), 0);
        }
        /* a failing closure: its code back, nothing moved, no step counted */
        double w0 = tg_get(p, 0);
        int64_t k = tg_optim_step_count(op);
        CHECK(tg_optim_step_closure(op, failing_closure, NULL, NULL) == TG_EIO);
        CHECK(tg_get(p, 0) == w0 && tg_optim_step_count(op) == k);
        tg_optim_free(op), tg_optim_free(oq);
        tg_tensor_free(p), tg_tensor_free(q);
    }
}

/* A step never allocates: every per-element method, both dtypes, every option on. The
 * count comes from malloc/calloc/realloc/aligned_alloc defined in this binary (glibc
 * lets a program replace them); under AddressSanitizer or valgrind, which own malloc, the
 * count is not available and only the steps run. */
static void test_step_never_allocates(void)
{
    bool counting = allocs_counted();
    for (int m = 0; tg_optim_method(m); m++) {
        tg_optim_opts o;
        tg_optim_defaults(tg_optim_method(m), &o);
        for (int d = 0; d < 2; d++) {
            tg_tensor *p[3];
            for (int i = 0; i < 3; i++) {
                p[i] = tg_tensor_new(d ? TG_F32 : TG_F64, 2, (int64_t[]){3, 5 + i});
                tg_tensor_fill(p[i], 0.5);
                tg_set_requires_grad(p[i], true);
            }
            o.l2 = 1e-3, o.weight_decay = 1e-3, o.clip_value = 0.5, o.clip_norm = 1;
            o.schedule = (tg_lr_schedule){.kind = TG_LR_COSINE, .t_max = 50, .lr_min = 1e-4};
            o.check_finite = true;
            long at_new = n_allocs;
            tg_optim *opt = tg_optim_new(tg_optim_method(m), 3, p, &o, NULL);
            CHECK(opt != NULL);
            if (counting) CHECK(n_allocs > at_new); /* the counter sees the state */
            if (opt && !tg_optim_needs_closure(opt)) {
                tg_optim_zero_grad(opt); /* allocates the gradients, once */
                long before = n_allocs;
                for (int t = 0; t < 100; t++) {
                    tg_optim_zero_grad(opt);
                    for (int i = 0; i < 3; i++) tg_tensor_fill(tg_grad(p[i]), 0.3 - 0.01 * t);
                    CHECK(tg_optim_step(opt) == TG_OK);
                }
                if (counting && n_allocs != before) {
                    printf("test_optim.c: %s: %ld allocations in 100 steps\n", tg_optim_method(m),
                           n_allocs - before);
                    check_failed++;
                }
            }
            tg_optim_free(opt);
            for (int i = 0; i < 3; i++) tg_tensor_free(p[i]);
        }
    }
}

/* A large step is split over the BLIS threads (OpenMP). The kernels are per-element, so two
 * threads must give the very same bits as one, for every per-element method and both dtypes,
 * with parameters of odd sizes (parts that do not fall on 16 elements) and one parameter
 * that no gradient reached. */
static void test_parallel_step_matches_serial(void)
{
    const int64_t sizes[4] = {40000, 37, 30011, 5};
    int threads = tg_get_num_threads();
    for (int m = 0; tg_optim_method(m); m++) {
        tg_optim_opts o;
        tg_optim_defaults(tg_optim_method(m), &o);
        o.l2 = 1e-3, o.weight_decay = 1e-3;
        for (int d = 0; d < 2; d++) {
            tg_tensor *p[2][4];
            tg_optim *opt[2];
            for (int c = 0; c < 2; c++) {
                tg_rng r;
                tg_rng_seed(&r, 11);
                for (int i = 0; i < 4; i++) {
                    p[c][i] = tg_tensor_new(d ? TG_F32 : TG_F64, 1, &sizes[i]);
                    tg_tensor_rand_uniform(p[c][i], -1, 1, &r);
                    tg_set_requires_grad(p[c][i], true);
                }
                opt[c] = tg_optim_new(tg_optim_method(m), 4, p[c], &o, NULL);
            }
            if (opt[0] && !tg_optim_needs_closure(opt[0])) {
                for (int c = 0; c < 2; c++) {
                    tg_set_num_threads(c + 1);
                    tg_rng r;
                    tg_rng_seed(&r, 12);
                    for (int t = 0; t < 3; t++) {
                        for (int i = 0; i < 3; i++) { /* p[c][3] gets no gradient */
                            tg_zero_grad(p[c][i]);
                            tg_tensor_rand_uniform(tg_grad(p[c][i]), -1, 1, &r);
                        }
                        CHECK(tg_optim_step(opt[c]) == TG_OK);
                    }
                }
                bool same = true;
                for (int i = 0; i < 4; i++)
                    same &= memcmp(tg_data(p[0][i]), tg_data(p[1][i]),
                                   (size_t)sizes[i] * (d ? 4 : 8)) == 0;
                if (!same)
                    printf("test_optim.c: %s: 2 threads differ from 1\n", tg_optim_method(m));
                CHECK(same);
            }
            for (int c = 0; c < 2; c++) {
                tg_optim_free(opt[c]);
                for (int i = 0; i < 4; i++) tg_tensor_free(p[c][i]);
            }
        }
    }
    tg_set_num_threads(threads);
}

static void test_schedules(void)
{
    tg_lr_schedule st = {.kind = TG_LR_STEP, .step_size = 10, .gamma = 0.1};
    CHECK_NEAR(tg_lr_at(&st, 1, 9), 1, 1e-15);
    CHECK_NEAR(tg_lr_at(&st, 1, 10), 0.1, 1e-15);
    CHECK_NEAR(tg_lr_at(&st, 1, 25), 0.01, 1e-15);
    tg_lr_schedule ex = {.kind = TG_LR_EXP, .gamma = 0.9};
    CHECK_NEAR(tg_lr_at(&ex, 2, 3), 2 * 0.729, 1e-15);
    tg_lr_schedule co = {.kind = TG_LR_COSINE, .t_max = 100, .lr_min = 0.1};
    CHECK_NEAR(tg_lr_at(&co, 1, 0), 1, 1e-15);
    CHECK_NEAR(tg_lr_at(&co, 1, 50), 0.55, 1e-15);
    CHECK_NEAR(tg_lr_at(&co, 1, 100), 0.1, 1e-15);
    CHECK_NEAR(tg_lr_at(&co, 1, 500), 0.1, 1e-15);
    CHECK_NEAR(tg_lr_at(NULL, 0.3, 7), 0.3, 0);
    tg_lr_schedule bad = {.kind = TG_LR_STEP, .step_size = 0, .gamma = 0.5};
    CHECK(tg_lr_at(&bad, 1, 1) < 0);
    CHECK(tg_lr_at(&st, 1, -1) < 0);
}

/* f(w) and its gradient written into the parameter's gradient. */
static double quadratic(tg_tensor *p)
{
    static const double c[2] = {1, 10}, a[2] = {3, -2};
    double f = 0;
    for (int i = 0; i < 2; i++) {
        double d = tg_get(p, i) - a[i];
        f += c[i] * d * d;
        tg_set(tg_grad(p), i, 2 * c[i] * d);
    }
    return f;
}

static double rosenbrock(tg_tensor *p)
{
    double x = tg_get(p, 0), y = tg_get(p, 1);
    tg_set(tg_grad(p), 0, -2 * (1 - x) - 400 * x * (y - x * x));
    tg_set(tg_grad(p), 1, 200 * (y - x * x));
    return (1 - x) * (1 - x) + 100 * (y - x * x) * (y - x * x);
}

/* Runs steps of m with learning rate lr on f from start; returns the final f. */
static double minimise(const char *m, tg_dtype dt, double lr, double eps, double (*f)(tg_tensor *),
                       const double *start, int steps)
{
    int64_t s[1] = {2};
    tg_tensor *p = tg_tensor_new(dt, 1, s);
    for (int i = 0; i < 2; i++) tg_set(p, i, start[i]);
    tg_set_requires_grad(p, true);
    tg_zero_grad(p);
    tg_optim_opts o = defaults(m);
    o.lr = lr;
    if (eps > 0) o.eps = eps;
    tg_status st;
    tg_optim *opt = tg_optim_new(m, 1, &p, &o, &st);
    double v = f(p);
    for (int k = 0; k < steps && opt; k++) {
        tg_optim_step(opt);
        v = f(p);
    }
    tg_optim_free(opt);
    tg_tensor_free(p);
    return v;
}

static void test_convergence(void)
{
    static const struct {
        const char *m;
        double lr_quad, lr_rosen, eps_rosen; /* eps 0: the method's default */
    } t[] = {
        {"sgd", 0.04, 1e-3, 0},      {"momentum", 0.01, 2e-4, 0}, {"momentum_ema", 0.04, 1e-3, 0},
        {"nesterov", 0.01, 2e-4, 0}, {"adagrad", 0.5, 0.3, 0},    {"rmsprop", 0.01, 1e-3, 0},
        {"adadelta", 1, 0.3, 1e-6},  {"adam", 0.05, 0.02, 0},     {"nadam", 0.05, 0.02, 0},
        {"adamw", 0.05, 0.02, 0},    {"rprop", 0.1, 0.01, 0},     {"irprop", 0.1, 0.01, 0},
        {"quickprop", 0.05, 0, 0}};
    const double q0[2] = {0, 0}, r0[2] = {-1.2, 1};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        double fq = minimise(t[i].m, TG_F64, t[i].lr_quad, 0, quadratic, q0, 3000);
        double fq32 = minimise(t[i].m, TG_F32, t[i].lr_quad, 0, quadratic, q0, 3000);
        /* QuickProp's parabola steps are for convex valleys: checked on the quadratic. */
        double fr = t[i].lr_rosen > 0 ? minimise(t[i].m, TG_F64, t[i].lr_rosen, t[i].eps_rosen,
                                                 rosenbrock, r0, 30000)
                                      : 0;
        bool adamw = strcmp(t[i].m, "adamw") == 0; /* decays towards 0, so ends off the optimum */
        bool ok = fq < (adamw ? 1e-2 : 1e-6) && fq32 < (adamw ? 1e-2 : 1e-5) &&
                  fr < (adamw ? 1e-1 : 1e-3);
        if (!ok)
            printf("  %s: quadratic %.3g (f32 %.3g), rosenbrock %.3g (from 24.2)\n", t[i].m, fq,
                   fq32, fr);
        CHECK(ok);
    }
}

static void test_errors(void)
{
    int64_t s[1] = {2};
    tg_tensor *a = tg_tensor_new(TG_F64, 1, s), *b = tg_tensor_new(TG_F32, 1, s);
    tg_set_requires_grad(a, true), tg_set_requires_grad(b, true);
    tg_tensor *ab[2] = {a, b}, *aa[2] = {a, a};
    tg_status st;
    CHECK(tg_optim_new("nosuch", 1, &a, NULL, &st) == NULL);
    CHECK_STR_HAS(st.msg, "unknown method \"nosuch\"");
    CHECK(tg_optim_new("adam", 2, ab, NULL, &st) == NULL && st.code == TG_EDTYPE);
    CHECK_STR_HAS(st.msg, "parameter 1 is f32 but parameter 0 is f64");
    CHECK(tg_optim_new("adam", 2, aa, NULL, &st) == NULL);
    CHECK_STR_HAS(st.msg, "parameter 1 is parameter 0 again");
    CHECK(tg_optim_new("adam", 0, NULL, NULL, &st) == NULL && st.code == TG_EARG);
    tg_optim_opts o = defaults("sgd");
    o.lr = -1;
    CHECK(tg_optim_new("sgd", 1, &a, &o, &st) == NULL && st.code == TG_EARG);
    o = defaults("sgd");
    o.schedule = (tg_lr_schedule){.kind = TG_LR_COSINE, .t_max = 0};
    CHECK(tg_optim_new("sgd", 1, &a, &o, &st) == NULL && st.code == TG_EARG);
    tg_tensor *c = tg_tensor_new(TG_F64, 1, s);
    CHECK(tg_optim_new("sgd", 1, &c, NULL, &st) == NULL);
    CHECK_STR_HAS(st.msg, "does not require grad");
    CHECK(tg_optim_step(NULL) == TG_EARG);
    /* A parameter no gradient reached is left alone. */
    tg_optim *opt = tg_optim_new("sgd", 1, &a, NULL, &st);
    tg_tensor_fill(a, 1);
    CHECK(opt && tg_optim_step(opt) == TG_OK && tg_get(a, 0) == 1);
    tg_optim_free(opt);
    tg_tensor_free(a), tg_tensor_free(b), tg_tensor_free(c);
}

/* ---- full-batch methods with a line search, through the closure ---- */
typedef struct problem {
    tg_tensor *p;
    double (*f)(tg_tensor *);
    int evals;
} problem;

static int closure(void *ctx, double *loss)
{
    problem *pb = ctx;
    pb->evals++;
    *loss = pb->f(pb->p); /* writes the gradient into the (zeroed) gradient buffer */
    return TG_OK;
}

/* ---- check_finite: a gradient holding NaN or inf is refused and changes nothing ---- */

/* The gradient of step t, element i of parameter p: smooth, of both signs. */
static double grad_at(int t, int p, int64_t i)
{
    return sin(0.7 * (double)t + 1.3 * p + 0.37 * (double)i);
}

static bool bits_equal(tg_tensor *a, tg_tensor *b)
{
    size_t bytes = (size_t)tg_tensor_numel(a) * tg_dtype_size(tg_tensor_dtype(a));
    return tg_tensor_numel(a) == tg_tensor_numel(b) && memcmp(tg_data(a), tg_data(b), bytes) == 0;
}

/* Every first-order method, both dtypes, every option on (clipping by value would turn an
 * infinity into c, so the check must come first): a NaN, inf or -inf in either parameter's
 * gradient, at its first, a middle or its last element, is refused with TG_EARG; the
 * weights, the gradients and the step count stay as they were, and the optimiser then goes
 * on bit for bit like one that never saw the refused step (its state did not change). */
static void test_check_finite(void)
{
    const double bad[3] = {(double)NAN, (double)INFINITY, -(double)INFINITY};
    const int64_t sizes[2] = {37, 5};
    const struct {
        int p;
        int64_t i;
    } at[3] = {{0, 0}, {1, 2}, {1, 4}};
    int refused = 0;
    for (int m = 0; tg_optim_method(m); m++) {
        const char *name = tg_optim_method(m);
        tg_optim_opts o = defaults(name);
        o.check_finite = true;
        o.l2 = 1e-3, o.weight_decay = 1e-3, o.clip_value = 0.5, o.clip_norm = 1;
        o.schedule = (tg_lr_schedule){.kind = TG_LR_COSINE, .t_max = 50, .lr_min = 1e-4};
        for (int d = 0; d < 2; d++)
            for (int b = 0; b < 3; b++)
                for (int w = 0; w < 3; w++) {
                    tg_tensor *pa[2], *pb[2];
                    for (int p = 0; p < 2; p++) {
                        pa[p] = tg_tensor_new(d ? TG_F32 : TG_F64, 1, &sizes[p]);
                        pb[p] = tg_tensor_new(d ? TG_F32 : TG_F64, 1, &sizes[p]);
                        for (int64_t i = 0; i < sizes[p]; i++)
                            tg_set(pa[p], i, cos((double)i)), tg_set(pb[p], i, cos((double)i));
                        tg_set_requires_grad(pa[p], true), tg_set_requires_grad(pb[p], true);
                    }
                    tg_optim *A = tg_optim_new(name, 2, pa, &o, NULL);
                    tg_optim *B = tg_optim_new(name, 2, pb, &o, NULL);
                    CHECK(A && B);
                    bool ok = true;
                    for (int t = 0; A && B && !tg_optim_needs_closure(A) && t < 6; t++) {
                        tg_optim_zero_grad(A), tg_optim_zero_grad(B);
                        for (int p = 0; p < 2; p++)
                            for (int64_t i = 0; i < sizes[p]; i++) {
                                tg_set(tg_grad(pa[p]), i, grad_at(t, p, i));
                                tg_set(tg_grad(pb[p]), i, grad_at(t, p, i));
                            }
                        if (t == 3) {
                            tg_tensor *g = tg_grad(pa[at[w].p]), *keep = tg_tensor_clone(g);
                            tg_set(g, at[w].i, bad[b]);
                            tg_tensor_copy(keep, g);
                            int64_t k = tg_optim_step_count(A);
                            ok &= tg_optim_step(A) == TG_EARG && tg_optim_step_count(A) == k;
                            ok &= bits_equal(pa[0], pb[0]) && bits_equal(pa[1], pb[1]);
                            ok &= bits_equal(g, keep); /* not clipped either */
                            tg_tensor_free(keep);
                            tg_set(g, at[w].i, grad_at(t, at[w].p, at[w].i));
                            refused++;
                        }
                        ok &= tg_optim_step(A) == TG_OK && tg_optim_step(B) == TG_OK;
                    }
                    ok &= bits_equal(pa[0], pb[0]) && bits_equal(pa[1], pb[1]);
                    ok &= tg_optim_step_count(A) == tg_optim_step_count(B);
                    if (!ok)
                        printf("  %s %s: bad %g at %d: not refused cleanly\n", name,
                               d ? "f32" : "f64", bad[b], w);
                    CHECK(ok);
                    tg_optim_free(A), tg_optim_free(B);
                    for (int p = 0; p < 2; p++) tg_tensor_free(pa[p]), tg_tensor_free(pb[p]);
                }
    }
    CHECK(refused == 13 * 2 * 3 * 3); /* every first-order method */

    /* Off by default: the step is taken, and writes the NaN. */
    tg_tensor *w = tg_tensor_from(TG_F64, 1, (int64_t[]){2}, W0);
    tg_set_requires_grad(w, true);
    tg_optim *opt = tg_optim_new("sgd", 1, &w, NULL, NULL);
    CHECK(!tg_optim_options(opt)->check_finite);
    tg_optim_zero_grad(opt);
    tg_set(tg_grad(w), 1, (double)NAN);
    CHECK(tg_optim_step(opt) == TG_OK && isnan(tg_get(w, 1)) && tg_get(w, 0) == W0[0]);
    tg_optim_free(opt);
    /* Through the closure: refused after the one evaluation, nothing moved. */
    tg_tensor_fill(w, 0.25);
    tg_optim_opts o = defaults("adam");
    o.check_finite = true;
    opt = tg_optim_new("adam", 1, &w, &o, NULL);
    tg_set(w, 0, (double)INFINITY); /* quad_closure's gradient 2(w - 1) is inf there */
    double loss = 0;
    CHECK(tg_optim_step_closure(opt, quad_closure, w, &loss) == TG_EARG);
    CHECK(tg_get(w, 0) == (double)INFINITY && tg_get(w, 1) == 0.25);
    CHECK(tg_optim_step_count(opt) == 0);
    tg_optim_free(opt);
    tg_tensor_free(w);

    /* The threaded step (2 threads, 40000 elements): refused before the split. */
    int threads = tg_get_num_threads();
    tg_set_num_threads(2);
    const int64_t big = 40000;
    tg_tensor *p = tg_tensor_new(TG_F32, 1, &big), *q = tg_tensor_new(TG_F32, 1, &big);
    tg_tensor_fill(p, 0.5);
    tg_set_requires_grad(p, true);
    opt = tg_optim_new("adam", 1, &p, &o, NULL);
    tg_optim_zero_grad(opt);
    tg_tensor_fill(tg_grad(p), 0.1);
    CHECK(tg_optim_step(opt) == TG_OK);
    tg_tensor_copy(q, p);
    tg_set(tg_grad(p), big - 1, (double)NAN);
    CHECK(tg_optim_step(opt) == TG_EARG && bits_equal(p, q) && tg_optim_step_count(opt) == 1);
    tg_optim_free(opt);
    tg_tensor_free(p), tg_tensor_free(q);
    tg_set_num_threads(threads);
}

/* Rosenbrock's closure, spoilt at its poison-th call (counting from 1): a NaN in the
 * gradient (loss finite), or an error code. */
typedef struct spoilt {
    tg_tensor *p;
    int calls, poison;
    bool fail; /* return TG_EIO instead */
} spoilt;

static int spoilt_closure(void *ctx, double *loss)
{
    spoilt *s = ctx;
    *loss = rosenbrock(s->p);
    if (++s->calls != s->poison) return TG_OK;
    if (s->fail) return TG_EIO;
    tg_set(tg_grad(s->p), 1, (double)NAN);
    return TG_OK;
}

/* The line-search methods: whichever evaluation of a step is spoilt (the first, one in the
 * line search, the final one), the step fails with the parameters as they were and the
 * state untouched: retried, it gives bit for bit what an unspoilt run gives. With
 * check_finite a NaN gradient is refused (TG_EARG); a failing closure is refused with its
 * code, with or without the option. A NaN loss at the starting point is TG_EARG. */
static void test_check_finite_line_search(void)
{
    const double r0[2] = {-1.2, 1};
    static const char *const ms[4] = {"cg_fr", "cg_pr", "bfgs", "lbfgs"};
    for (int m = 0; m < 4; m++)
        for (int fail = 0; fail < 2; fail++)
            for (int poison = 1; poison <= 14; poison++) {
                tg_optim_opts o = defaults(ms[m]);
                o.check_finite = !fail || poison % 2;
                spoilt a = {tg_tensor_from(TG_F64, 1, (int64_t[]){2}, r0), 0, poison, fail};
                problem b = {tg_tensor_from(TG_F64, 1, (int64_t[]){2}, r0), rosenbrock, 0};
                tg_set_requires_grad(a.p, true), tg_set_requires_grad(b.p, true);
                tg_optim *A = tg_optim_new(ms[m], 1, &a.p, &o, NULL);
                tg_optim *B = tg_optim_new(ms[m], 1, &b.p, &o, NULL);
                int refused = 0;
                bool ok = A && B;
                for (int t = 0; ok && t < 6; t++) {
                    double before[2] = {tg_get(a.p, 0), tg_get(a.p, 1)}, la = 0, lb = 0;
                    int64_t k = tg_optim_step_count(A);
                    int rc = tg_optim_step_closure(A, spoilt_closure, &a, &la);
                    if (rc != TG_OK) {
                        ok &= rc == (fail ? TG_EIO : TG_EARG) && tg_optim_step_count(A) == k;
                        ok &= tg_get(a.p, 0) == before[0] && tg_get(a.p, 1) == before[1];
                        refused++;
                        rc = tg_optim_step_closure(A, spoilt_closure, &a, &la);
                    }
                    ok &= rc == TG_OK && tg_optim_step_closure(B, closure, &b, &lb) == TG_OK;
                    ok &= bits_equal(a.p, b.p) && la == lb;
                    ok &= tg_optim_step_count(A) == tg_optim_step_count(B);
                }
                ok &= refused == (poison <= b.evals); /* a's poison came while b ran as far */
                if (!ok)
                    printf("  %s: %s at call %d: not refused cleanly\n", ms[m],
                           fail ? "TG_EIO" : "NaN gradient", poison);
                CHECK(ok);
                tg_optim_free(A), tg_optim_free(B);
                tg_tensor_free(a.p), tg_tensor_free(b.p);
            }
    /* A NaN loss where the line search starts. */
    tg_tensor *w = tg_tensor_from(TG_F64, 1, (int64_t[]){2}, (double[]){(double)NAN, 1});
    tg_set_requires_grad(w, true);
    problem pb = {w, rosenbrock, 0};
    tg_optim *q = tg_optim_new("bfgs", 1, &w, NULL, NULL);
    CHECK(tg_optim_step_closure(q, closure, &pb, NULL) == TG_EARG && tg_optim_step_count(q) == 0);
    CHECK(isnan(tg_get(w, 0)) && tg_get(w, 1) == 1);
    tg_optim_free(q);
    tg_tensor_free(w);
}

/* Iterations of method m from start until f < tol (at most max); -1 if never. */
static int iterations(const char *m, double (*f)(tg_tensor *), const double *start, double tol,
                      int max, int *evals)
{
    int64_t s[1] = {2};
    problem pb = {tg_tensor_from(TG_F64, 1, s, start), f, 0};
    tg_set_requires_grad(pb.p, true);
    tg_status st;
    tg_optim *o = tg_optim_new(m, 1, &pb.p, NULL, &st);
    int k = -1;
    double loss = 0;
    CHECK(o && tg_optim_step(o) == TG_ESTATE); /* needs the closure */
    for (int i = 1; o && i <= max; i++) {
        if (tg_optim_step_closure(o, closure, &pb, &loss) != TG_OK) break;
        if (loss < tol) {
            k = i;
            break;
        }
    }
    *evals = pb.evals;
    tg_optim_free(o);
    tg_tensor_free(pb.p);
    return k;
}

static void test_line_search_methods(void)
{
    const double r0[2] = {-1.2, 1}, q0[2] = {0, 0};
    static const struct {
        const char *m;
        int max_rosen, max_quad;
    } t[] = {{"bfgs", 60, 20}, {"lbfgs", 60, 20}, {"cg_pr", 200, 20}, {"cg_fr", 2000, 40}};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        int er, eq;
        int kr = iterations(t[i].m, rosenbrock, r0, 1e-10, t[i].max_rosen, &er);
        int kq = iterations(t[i].m, quadratic, q0, 1e-12, t[i].max_quad, &eq);
        if (kr < 0 || kq < 0)
            printf("  %s: rosenbrock %d iterations (%d evaluations), quadratic %d\n", t[i].m, kr,
                   er, kq);
        CHECK(kr > 0 && kq > 0);
    }
    /* Far fewer iterations than gradient descent: SGD at its best rate above needed 30000
     * steps for Rosenbrock to 1e-3. */
    int e;
    CHECK(iterations("bfgs", rosenbrock, r0, 1e-3, 100, &e) < 60);
}

/* ---- Levenberg-Marquardt on a least-squares fit: y = a e^(b x), 20 points ---- */
typedef struct fit {
    tg_tensor *a, *b, *x, *y;
} fit;

static tg_tensor *residuals(tg_tape *tp, void *ctx)
{
    fit *d = ctx;
    return tg_sub(tp, tg_mul(tp, d->a, tg_exp(tp, tg_mul(tp, d->b, d->x))), d->y);
}

static double sse(tg_tape *tp, fit *d)
{
    tg_tape_reset(tp);
    tg_tensor *e = residuals(tp, d);
    double s = 0;
    for (int64_t i = 0; e && i < tg_tensor_numel(e); i++) s += tg_get(e, i) * tg_get(e, i);
    return s;
}

static void fit_init(fit *d)
{
    int64_t one[1] = {1}, n[1] = {20};
    d->a = tg_tensor_from(TG_F64, 1, one, (double[]){1});
    d->b = tg_tensor_from(TG_F64, 1, one, (double[]){0});
    d->x = tg_tensor_new(TG_F64, 1, n), d->y = tg_tensor_new(TG_F64, 1, n);
    for (int i = 0; i < 20; i++) {
        double x = 0.1 * i;
        tg_set(d->x, i, x), tg_set(d->y, i, 2 * exp(-1.5 * x) + 0.01 * sin(7.0 * i));
    }
    tg_set_requires_grad(d->a, true), tg_set_requires_grad(d->b, true);
}

static void fit_free(fit *d)
{
    tg_tensor_free(d->a), tg_tensor_free(d->b), tg_tensor_free(d->x), tg_tensor_free(d->y);
}

static void test_levenberg_marquardt(void)
{
    fit d;
    fit_init(&d);
    tg_tensor *p[2] = {d.a, d.b};
    tg_status st;
    tg_optim *o = tg_optim_new("lm", 2, p, NULL, &st);
    CHECK(o != NULL && tg_optim_step(o) == TG_ESTATE);
    double loss = 0, best = 0;
    int k_lm = -1;
    for (int k = 1; k <= 100; k++) {
        CHECK(tg_optim_step_lm(o, residuals, &d, &loss, &st) == TG_OK);
        if (k == 100) best = loss;
    }
    CHECK(fabs(tg_get(d.a, 0) - 2) < 0.02 && fabs(tg_get(d.b, 0) + 1.5) < 0.02);
    tg_optim_free(o);
    /* Iterations to reach the optimum's Σe² within 1e-9 (relative): LM against gradient
     * descent at a good fixed rate. */
    fit_free(&d);
    fit_init(&d);
    p[0] = d.a, p[1] = d.b;
    o = tg_optim_new("lm", 2, p, NULL, &st);
    for (int k = 1; k <= 100 && k_lm < 0; k++) {
        tg_optim_step_lm(o, residuals, &d, &loss, &st);
        if (loss <= best * (1 + 1e-9)) k_lm = k;
    }
    tg_optim_free(o);
    fit_free(&d);
    fit_init(&d);
    p[0] = d.a, p[1] = d.b;
    tg_optim_opts so;
    tg_optim_defaults("sgd", &so);
    so.lr = 0.01;
    o = tg_optim_new("sgd", 2, p, &so, &st);
    tg_tape *tp = tg_tape_new();
    int k_gd = -1;
    for (int k = 1; k <= 20000 && k_gd < 0; k++) {
        tg_tape_reset(tp);
        tg_tensor *e = residuals(tp, &d);
        tg_optim_zero_grad(o);
        tg_backward(tp, tg_sum(tp, tg_square(tp, e), TG_ALL_AXES, false));
        tg_optim_step(o);
        if (sse(tp, &d) <= best * (1 + 1e-9)) k_gd = k;
    }
    if (k_lm < 0 || k_lm > 20) printf("  lm: %d iterations, gradient descent %d\n", k_lm, k_gd);
    CHECK(k_lm > 0 && k_lm <= 20);
    CHECK(k_gd < 0 || k_gd > 50 * k_lm); /* far fewer: GD needs thousands or never gets there */
    tg_tape_free(tp);
    tg_optim_free(o);
    fit_free(&d);
    /* Errors: a first-order optimiser refuses; a failing residual function is reported. */
    tg_tensor *w = tg_tensor_new(TG_F64, 1, (int64_t[]){1});
    tg_set_requires_grad(w, true);
    o = tg_optim_new("adam", 1, &w, NULL, &st);
    CHECK(tg_optim_step_lm(o, residuals, &d, &loss, &st) == TG_ESTATE);
    tg_optim_free(o);
    tg_tensor_free(w);
}

/* Levenberg-Marquardt with check_finite: a spoilt input x[3] makes a residual NaN (x = NaN)
 * or, at b < 0, only the Jacobian (x = inf: e^(b x) = 0, but x e^(b x) is NaN). Either is
 * refused before anything changes, mu included: retried, the run goes on bit for bit as
 * one that was never spoilt. */
static void test_check_finite_lm(void)
{
    fit a, b;
    fit_init(&a), fit_init(&b);
    tg_tensor *pa[2] = {a.a, a.b}, *pb[2] = {b.a, b.b};
    tg_optim_opts o = defaults("lm");
    o.check_finite = true;
    tg_optim *A = tg_optim_new("lm", 2, pa, &o, NULL), *B = tg_optim_new("lm", 2, pb, &o, NULL);
    tg_status st;
    int refused = 0;
    for (int t = 0; A && B && t < 6; t++) {
        double la = 0, lb = 0;
        if (t == 2 || t == 3) {
            double x3 = tg_get(a.x, 3), a0 = tg_get(a.a, 0), b0 = tg_get(a.b, 0);
            tg_set(a.x, 3, t == 2 ? (double)NAN : (double)INFINITY);
            int64_t k = tg_optim_step_count(A);
            CHECK(tg_optim_step_lm(A, residuals, &a, &la, &st) == TG_EARG);
            CHECK_STR_HAS(st.msg, "tg_optim_step_lm: a residual or an element of its Jacobian "
                                  "is not finite");
            CHECK(tg_get(a.a, 0) == a0 && tg_get(a.b, 0) == b0 && tg_optim_step_count(A) == k);
            tg_set(a.x, 3, x3);
            refused += b0 < 0 || t == 2;
        }
        CHECK(tg_optim_step_lm(A, residuals, &a, &la, &st) == TG_OK);
        CHECK(tg_optim_step_lm(B, residuals, &b, &lb, &st) == TG_OK);
        CHECK(bits_equal(a.a, b.a) && bits_equal(a.b, b.b) && la == lb);
    }
    CHECK(refused == 2);
    tg_optim_free(A), tg_optim_free(B);
    fit_free(&a), fit_free(&b);
}

/* First steps by hand. LM on linear residuals e = A w - t (J = A): one step is
 * w - (AᵀA + μ diag(AᵀA))⁻¹ Aᵀe, a 2 x 2 solve written out here. */
typedef struct linres {
    tg_tensor *w, *A, *t;
} linres;

static tg_tensor *lin_residuals(tg_tape *tp, void *ctx)
{
    linres *l = ctx;
    int64_t s[2] = {2, 1};
    tg_tensor *aw = tg_matmul(tp, l->A, tg_reshape(tp, l->w, 2, s));
    return tg_sub(tp, tg_reshape(tp, aw, 1, (int64_t[]){3}), l->t);
}

static void test_first_step_lm_and_line_search(void)
{
    linres l;
    l.w = tg_tensor_from(TG_F64, 1, (int64_t[]){2}, (double[]){0.5, -1});
    l.A = tg_tensor_from(TG_F64, 2, (int64_t[]){3, 2}, (double[]){1, 2, 0, 1, 3, -1});
    l.t = tg_tensor_from(TG_F64, 1, (int64_t[]){3}, (double[]){1, 2, 0.5});
    tg_set_requires_grad(l.w, true);
    double A[3][2] = {{1, 2}, {0, 1}, {3, -1}}, w[2] = {0.5, -1}, t[3] = {1, 2, 0.5}, e[3];
    double M[2][2] = {{0}}, b[2] = {0}, mu = 1e-3;
    for (int i = 0; i < 3; i++) e[i] = A[i][0] * w[0] + A[i][1] * w[1] - t[i];
    for (int i = 0; i < 3; i++)
        for (int a = 0; a < 2; a++) {
            b[a] += A[i][a] * e[i];
            for (int c = 0; c < 2; c++) M[a][c] += A[i][a] * A[i][c];
        }
    M[0][0] *= 1 + mu, M[1][1] *= 1 + mu;
    double det = M[0][0] * M[1][1] - M[0][1] * M[1][0];
    double d0 = (M[1][1] * b[0] - M[0][1] * b[1]) / det;
    double d1 = (M[0][0] * b[1] - M[1][0] * b[0]) / det;
    tg_status st;
    tg_optim *o = tg_optim_new("lm", 1, &l.w, NULL, &st);
    double sse;
    CHECK(tg_optim_step_lm(o, lin_residuals, &l, &sse, &st) == TG_OK);
    CHECK_NEAR(tg_get(l.w, 0), w[0] - d0, 1e-12);
    CHECK_NEAR(tg_get(l.w, 1), w[1] - d1, 1e-12);
    tg_optim_free(o);
    tg_tensor_free(l.w), tg_tensor_free(l.A), tg_tensor_free(l.t);

    /* The first iteration of CG and BFGS: a step along -g that satisfies the strong Wolfe
     * conditions (c1 = 1e-4; c2 = 0.1 for CG, 0.9 for BFGS). */
    const char *ms[2] = {"cg_pr", "bfgs"};
    double c2s[2] = {0.1, 0.9};
    for (int k = 0; k < 2; k++) {
        int64_t s2[1] = {2};
        problem pb = {tg_tensor_from(TG_F64, 1, s2, (double[]){-1.2, 1}), rosenbrock, 0};
        tg_set_requires_grad(pb.p, true);
        tg_zero_grad(pb.p);
        double f0 = rosenbrock(pb.p), g0[2] = {tg_get(tg_grad(pb.p), 0), tg_get(tg_grad(pb.p), 1)};
        tg_optim *q = tg_optim_new(ms[k], 1, &pb.p, NULL, &st);
        double f1;
        CHECK(tg_optim_step_closure(q, closure, &pb, &f1) == TG_OK);
        double d[2] = {tg_get(pb.p, 0) + 1.2, tg_get(pb.p, 1) - 1};
        double a = -d[0] / g0[0]; /* w1 = w0 - a g0 */
        CHECK(a > 0 && fabs(d[1] + a * g0[1]) < 1e-12 * (1 + fabs(d[1])));
        tg_zero_grad(pb.p);
        double f = rosenbrock(pb.p), g1[2] = {tg_get(tg_grad(pb.p), 0), tg_get(tg_grad(pb.p), 1)};
        double gp0 = -(g0[0] * g0[0] + g0[1] * g0[1]), gp1 = -(g1[0] * g0[0] + g1[1] * g0[1]);
        CHECK(f <= f0 + 1e-4 * a * gp0 && fabs(f - f1) < 1e-12);
        CHECK(fabs(gp1) <= c2s[k] * fabs(gp0));
        tg_optim_free(q);
        tg_tensor_free(pb.p);
    }
}

static const check_case cases[] = {
    TEST(test_first_step_lm_and_line_search),
    TEST(test_levenberg_marquardt),
    TEST(test_check_finite_lm),
    TEST(test_line_search_methods),
    TEST(test_first_steps),
    TEST(test_against_pytorch),
    TEST(test_nesterov_lookahead),
    TEST(test_clipping),
    TEST(test_schedules),
    TEST(test_schedule_steps),
    TEST(test_l2_vs_weight_decay),
    TEST(test_convergence),
    TEST(test_errors),
    TEST(test_bad_arguments),
    TEST(test_option_ranges),
    TEST(test_schedule_ranges),
    TEST(test_check_finite),
    TEST(test_check_finite_line_search),
    TEST(test_closure_first_order),
    TEST(test_step_never_allocates),
    TEST(test_parallel_step_matches_serial),
};
TEST_MAIN("test_optim", cases)
