/* test/test_ops_activation.c: the activation ops (ops/activation.c). Values and gradients
 * against numbers from PyTorch 1.13 (float64) or from the formula in double, stability at
 * extreme inputs, the conventions at kinks and jumps, prelu's α gradient, softmax along
 * every axis, empty tensors, errors, and the family's self-check cases. */
#include <stdlib.h>

#include "check.h"
#include "ops_check.h"
#include "tapegrad.h"

static bool all_finite(const tg_tensor *t)
{
    if (!t) return false;
    for (int64_t i = 0; i < tg_tensor_numel(t); i++)
        if (!isfinite(tg_get(t, i))) return false;
    return true;
}

/* ---- values and gradients of the elementwise ops, against PyTorch ---- */
typedef struct {
    const char *name;
    tg_tensor *(*fn)(tg_tape *, tg_tensor *, double);
    double alpha;
    double y[5], dx[5]; /* at X below, with loss Σ (i+1) y_i */
} ref_case;

#define NO_ALPHA(op)                                                                               \
    static tg_tensor *do_##op(tg_tape *tp, tg_tensor *x, double a)                                 \
    {                                                                                              \
        (void)a;                                                                                   \
        return tg_##op(tp, x);                                                                     \
    }
NO_ALPHA(sigmoid)
NO_ALPHA(tanh)
NO_ALPHA(relu)
NO_ALPHA(softplus)

static const double X[5] = {-3.0, -0.7, 0.0, 0.4, 2.5};
static const ref_case refs[] = {
    {"sigmoid",
     do_sigmoid,
     0,
     {0.04742587317756678, 0.3318122278318339, 0.5, 0.598687660112452, 0.9241418199787566},
     {0.04517665973091214, 0.44342574658621814, 0.75, 0.9610429829661166, 0.3505185827255404}},
    {"tanh",
     do_tanh,
     0,
     {-0.9950547536867305, -0.6043677771171635, 0.0, 0.3799489622552249, 0.9866142981514303},
     {0.009866037165440166, 1.2694791799649172, 3.0, 3.422555144324711, 0.13296113341580285}},
    /* At 0: relu takes 0, leaky_relu and elu the left-hand slope (PyTorch's choice). */
    {"relu", do_relu, 0, {0.0, 0.0, 0.0, 0.4, 2.5}, {0.0, 0.0, 0.0, 4.0, 5.0}},
    {"leaky_relu", tg_leaky_relu, 0.2, {-0.6, -0.14, 0.0, 0.4, 2.5}, {0.2, 0.4, 0.6, 4.0, 5.0}},
    {"elu",
     tg_elu,
     1.5,
     {-1.4253193974482041, -0.7551220443128857, 0.0, 0.4, 2.5},
     {0.07468060255179591, 1.4897559113742287, 4.5, 4.0, 5.0}},
    {"softplus",
     do_softplus,
     0,
     {0.04858735157374206, 0.4031860488854579, 0.6931471805599453, 0.9130152523999526,
      2.5788897342925496},
     {0.04742587317756679, 0.6636244556636679, 1.5, 2.394750640449808, 4.620709099893783}},
};

static void test_elementwise_values(void)
{
    for (int d = 0; d < 2; d++) {
        tg_dtype dt = d ? TG_F32 : TG_F64;
        double tol = d ? 2e-6 : 1e-14;
        for (size_t k = 0; k < sizeof refs / sizeof refs[0]; k++) {
            int failed_before = check_failed;
            tg_tape *tp = tg_tape_new();
            tg_tensor *x = leaf(dt, 1, S(5), X, true);
            tg_tensor *y = refs[k].fn(tp, x, refs[k].alpha);
            CHECK(y && tg_tensor_dtype(y) == dt && tg_tensor_ndim(y) == 1);
            EXPECT(y, 5, refs[k].y, tol);
            CHECK(sweep(tp, y) == TG_OK);
            EXPECT(tg_grad(x), 5, refs[k].dx, tol);
            if (check_failed > failed_before)
                printf("  (op %s, %s)\n", refs[k].name, tg_dtype_name(dt));
            tg_tape_free(tp);
            drop_all();
        }
    }
}

/* Shapes are kept, of any rank (here [2,1,2] and a 0-d scalar). */
static void test_shapes_kept(void)
{
    tg_tape *tp = tg_tape_new();
    tg_tensor *x = leaf(TG_F64, 3, S(2, 1, 2), V(-1, 2, -3, 4), true);
    tg_tensor *y = tg_leaky_relu(tp, x, 0.5);
    CHECK(y && tg_tensor_ndim(y) == 3 && tg_tensor_dim(y, 0) == 2 && tg_tensor_dim(y, 1) == 1 &&
          tg_tensor_dim(y, 2) == 2);
    EXPECT(y, 4, V(-0.5, 2, -1.5, 4), 0);
    tg_tensor *s = leaf(TG_F64, 0, NULL, V(-2), true);
    tg_tensor *e = tg_elu(tp, s, 1);
    CHECK(e && tg_tensor_ndim(e) == 0);
    EXPECT(e, 1, V(expm1(-2.0)), 1e-15);
    CHECK(sweep(tp, e) == TG_OK);
    EXPECT(tg_grad(s), 1, V(exp(-2.0)), 1e-15);
    tg_tape_free(tp);
    drop_all();
}

/* ---- stability at extreme inputs ---- */
static void test_sigmoid_softplus_extremes(void)
{
    for (int d = 0; d < 2; d++) {
        tg_dtype dt = d ? TG_F32 : TG_F64;
        tg_tape *tp = tg_tape_new();
        tg_tensor *x = leaf(dt, 1, S(6), V(-1000, -100, -30, 30, 100, 1000), true);
        tg_tensor *sg = tg_sigmoid(tp, x), *sp = tg_softplus(tp, x), *th = tg_tanh(tp, x);
        CHECK(all_finite(sg) && all_finite(sp) && all_finite(th));
        /* σ(-30) = e^-30 / (1 + e^-30) to full relative precision: no 1 - (1 - ε). */
        double e30 = exp(-30.0);
        CHECK_NEAR(tg_get(sg, 2) / (e30 / (1 + e30)), 1, d ? 1e-6 : 1e-15);
        CHECK(tg_get(sg, 0) == 0 && tg_get(sg, 5) == 1);
        CHECK_NEAR(tg_get(sp, 2) / log1p(e30), 1, d ? 1e-6 : 1e-15);
        CHECK(tg_get(sp, 5) == 1000 && tg_get(sp, 0) == 0);
        CHECK_NEAR(tg_get(sp, 3), 30 + log1p(e30), d ? 1e-5 : 1e-14);
        CHECK(sweep(tp, tg_softplus(tp, x)) == TG_OK);
        CHECK(all_finite(tg_grad(x)));
        CHECK(tg_get(tg_grad(x), 0) == 0 && tg_get(tg_grad(x), 5) == 6);
        tg_tape_free(tp);
        drop_all();
    }
}

/* ---- step and sign: exact forward, gradient exactly 0 ---- */
static tg_tensor *f_step(tg_tape *tp, tg_tensor *const *in, void *ctx)
{
    (void)ctx;
    return tg_custom(tp, &wdot, NULL, 1, (tg_tensor *[]){tg_step(tp, in[0])}, 0, NULL);
}
static tg_tensor *f_sign(tg_tape *tp, tg_tensor *const *in, void *ctx)
{
    (void)ctx;
    return tg_custom(tp, &wdot, NULL, 1, (tg_tensor *[]){tg_sign(tp, in[0])}, 0, NULL);
}

static void test_step_sign(void)
{
    for (int d = 0; d < 2; d++) {
        tg_dtype dt = d ? TG_F32 : TG_F64;
        tg_tape *tp = tg_tape_new();
        tg_tensor *x = leaf(dt, 2, S(2, 3), V(-2, -0.0, 0, 1e-30, 3, -1e-30), true);
        tg_tensor *st = tg_step(tp, x), *sg = tg_sign(tp, x);
        EXPECT(st, 6, V(0, 0, 0, 1, 1, 0), 0);
        EXPECT(sg, 6, V(-1, 0, 0, 1, 1, -1), 0);
        CHECK(sweep(tp, st) == TG_OK && sweep(tp, sg) == TG_OK);
        CHECK(tg_grad(x) != NULL);
        for (int64_t i = 0; i < 6; i++) CHECK(tg_get(tg_grad(x), i) == 0.0);
        tg_tape_free(tp);
        drop_all();
    }
    /* Away from 0, central differences agree: the derivative there really is 0. */
    tg_tensor *x = leaf(TG_F64, 1, S(6), V(-3, -0.5, -0.01, 0.01, 0.5, 3), true);
    tg_gradcheck_result r;
    CHECK(tg_gradcheck(f_step, 1, &x, NULL, NULL, &r) == TG_OK);
    CHECK(r.n_checked == 6 && r.max_abs_err == 0);
    CHECK(tg_gradcheck(f_sign, 1, &x, NULL, NULL, &r) == TG_OK);
    CHECK(r.n_checked == 6 && r.max_abs_err == 0);
    drop_all();
}

/* NaN is never hidden: every activation but step passes it through. */
static void test_nan_passes(void)
{
    tg_tape *tp = tg_tape_new();
    tg_tensor *x = leaf(TG_F64, 1, S(2), V((double)NAN, 1), false);
    CHECK(isnan(tg_get(tg_relu(tp, x), 0)) && isnan(tg_get(tg_sign(tp, x), 0)));
    CHECK(isnan(tg_get(tg_sigmoid(tp, x), 0)) && isnan(tg_get(tg_tanh(tp, x), 0)));
    CHECK(isnan(tg_get(tg_elu(tp, x, 1), 0)) && isnan(tg_get(tg_leaky_relu(tp, x, 0.1), 0)));
    CHECK(isnan(tg_get(tg_softplus(tp, x), 0)) && isnan(tg_get(tg_prelu(tp, x, x), 0)));
    CHECK(tg_get(tg_relu(tp, x), 1) == 1 && tg_get(tg_step(tp, x), 0) == 0);
    /* softmax: a NaN spoils its own slice only. */
    tg_tensor *z = leaf(TG_F64, 2, S(2, 2), V((double)NAN, 0, 0, 0), false);
    tg_tensor *r = tg_softmax(tp, z, 1), *c = tg_softmax(tp, z, 0);
    CHECK(isnan(tg_get(r, 0)) && isnan(tg_get(r, 1)) && tg_get(r, 2) == 0.5 && tg_get(r, 3) == 0.5);
    CHECK(isnan(tg_get(c, 0)) && isnan(tg_get(c, 2)) && tg_get(c, 1) == 0.5 && tg_get(c, 3) == 0.5);
    tg_tape_free(tp);
    drop_all();
}

/* ---- prelu ---- */
static void test_prelu(void)
{
    static const double xv[6] = {-1.0, 2.0, -0.5, 3.0, -2.0, -4.0};
    for (int d = 0; d < 2; d++) {
        tg_dtype dt = d ? TG_F32 : TG_F64;
        double tol = d ? 1e-6 : 1e-15;
        tg_tape *tp = tg_tape_new();
        /* α [C]: PyTorch's prelu with weight [3] on x [2,3]; dα sums over the rows. */
        tg_tensor *x = leaf(dt, 2, S(2, 3), xv, true);
        tg_tensor *a = leaf(dt, 1, S(3), V(0.25, 0.5, 0.1), true);
        tg_tensor *y = tg_prelu(tp, x, a);
        EXPECT(y, 6, V(-0.25, 2.0, -0.05, 3.0, -1.0, -0.4), tol);
        CHECK(sweep(tp, y) == TG_OK);
        EXPECT(tg_grad(x), 6, V(0.25, 2.0, 0.3, 4.0, 2.5, 0.6), tol);
        EXPECT(tg_grad(a), 3, V(-1.0, -10.0, -25.5), tol);
        /* α [1]: one slope, dα sums over every element with x <= 0. */
        tg_tensor *x1 = leaf(dt, 2, S(2, 3), xv, true), *a1 = leaf(dt, 1, S(1), V(0.25), true);
        tg_tensor *y1 = tg_prelu(tp, x1, a1);
        EXPECT(y1, 6, V(-0.25, 2.0, -0.125, 3.0, -0.5, -1.0), tol);
        CHECK(sweep(tp, y1) == TG_OK);
        EXPECT(tg_grad(x1), 6, V(0.25, 2.0, 0.75, 4.0, 1.25, 1.5), tol);
        EXPECT(tg_grad(a1), 1, V(-36.5), tol);
        tg_tape_free(tp);
        drop_all();
    }
    tg_tape *tp = tg_tape_new();
    /* x [2,2,2] with α [2]: four rows per channel; at x = 0 the slope is α (as PyTorch). */
    tg_tensor *x = leaf(TG_F64, 3, S(2, 2, 2), V(-1, 1, -2, 0, -3, -1, 1, -2), true);
    tg_tensor *a = leaf(TG_F64, 1, S(2), V(0.5, 2), true);
    CHECK(sweep(tp, tg_prelu(tp, x, a)) == TG_OK);
    /* dα0 = 1·-1 + 3·-2 + 5·-3 (element 6, x = 1, is left out); dα1 = 4·0 + 6·-1 + 8·-2. */
    EXPECT(tg_grad(a), 2, V(-22, -22), 0);
    EXPECT(tg_grad(x), 8, V(0.5, 2, 1.5, 8, 2.5, 12, 7, 16), 0);
    /* x needs no gradient: only α gets one, x's stays unallocated. */
    tg_tensor *xc = leaf(TG_F64, 1, S(3), V(-1, 2, -3), false);
    tg_tensor *ac = leaf(TG_F64, 1, S(1), V(0.1), true);
    CHECK(sweep(tp, tg_prelu(tp, xc, ac)) == TG_OK);
    CHECK(tg_grad(xc) == NULL);
    EXPECT(tg_grad(ac), 1, V(1 * -1 + 3 * -3), 0);
    /* α fixed: x still gets α·dy where x <= 0. */
    tg_tensor *xd = leaf(TG_F64, 1, S(3), V(-1, 2, -3), true);
    tg_tensor *ad = leaf(TG_F64, 1, S(3), V(0.1, 0.2, 0.3), false);
    CHECK(sweep(tp, tg_prelu(tp, xd, ad)) == TG_OK);
    CHECK(tg_grad(ad) == NULL);
    EXPECT(tg_grad(xd), 3, V(0.1, 2, 0.9), 1e-15);
    /* The same tensor as x and α: y = a > 0 ? a : a², so dy/da = a > 0 ? 1 : 2a. */
    tg_tensor *s = leaf(TG_F64, 1, S(1), V(-0.5), true);
    tg_tensor *ys = tg_prelu(tp, s, s);
    EXPECT(ys, 1, V(0.25), 0);
    CHECK(sweep(tp, ys) == TG_OK);
    EXPECT(tg_grad(s), 1, V(-1), 0);
    /* A 0-d x takes α [1]. */
    tg_tensor *x0 = leaf(TG_F64, 0, NULL, V(-4), true);
    EXPECT(tg_prelu(tp, x0, ac), 1, V(-0.4), 1e-15);
    tg_tape_free(tp);
    drop_all();
}

/* ---- softmax and log_softmax ---- */
static void test_softmax_values(void)
{
    /* PyTorch: z [2,3] along each axis, values and d(Σ (i+1) y_i)/dz. */
    static const double zv[6] = {1.0, 2.0, 3.0, -1.0, 0.5, 4.0};
    static const struct {
        bool lg;
        int axis;
        double y[6], dz[6];
    } ref[] = {
        {false,
         0,
         {0.8807970779778823, 0.8175744761936437, 0.2689414213699951, 0.11920292202211755,
          0.18242552380635632, 0.7310585786300049},
         {-0.31498075621051935, -0.44743935621099856, -0.5898357997244456, 0.3149807562105196,
          0.4474393562109985, 0.5898357997244454}},
        {true,
         0,
         {-0.1269280110429726, -0.20141327798275246, -1.3132616875182228, -2.1269280110429727,
          -1.7014132779827524, -0.31326168751822286},
         {-3.4039853898894115, -3.7230213333555056, 0.5795272076700441, 3.4039853898894123,
          3.7230213333555056, -0.5795272076700441}},
        {false,
         1,
         {0.09003057317038045, 0.2447284710547976, 0.6652409557748218, 0.00649794331566194,
          0.0291217615374784, 0.9643802951468596},
         {-0.1418170936098121, -0.14077035746962996, 0.28258745107944266, -0.01272220854093401,
          -0.027895221430987126, 0.04061742997192122}},
        {true,
         1,
         {-2.4076059644443806, -1.4076059644443804, -0.4076059644443804, -5.036269565124779,
          -3.5362695651247793, -0.03626956512477912},
         {0.4598165609777174, 0.5316291736712142, -0.9914457346489307, 3.902530850265071,
          4.563173576937824, -8.465704427202894}},
    };
    for (int d = 0; d < 2; d++) {
        tg_dtype dt = d ? TG_F32 : TG_F64;
        double tol = d ? 2e-6 : 1e-14;
        for (size_t k = 0; k < sizeof ref / sizeof ref[0]; k++)
            for (int neg = 0; neg < 2; neg++) { /* axis and axis - ndim are the same axis */
                tg_tape *tp = tg_tape_new();
                tg_tensor *z = leaf(dt, 2, S(2, 3), zv, true);
                int ax = ref[k].axis - (neg ? 2 : 0);
                tg_tensor *y = ref[k].lg ? tg_log_softmax(tp, z, ax) : tg_softmax(tp, z, ax);
                EXPECT(y, 6, ref[k].y, tol);
                CHECK(sweep(tp, y) == TG_OK);
                EXPECT(tg_grad(z), 6, ref[k].dz, tol * 10);
                tg_tape_free(tp);
                drop_all();
            }
    }
}

/* Every axis of [2,3,4] (and its negative twin) against the definition computed here
 * slice by slice; the slices sum to 1, and softmax's input gradient sums to 0 along the
 * axis (its rows are orthogonal to the all-ones vector). */
static void test_softmax_every_axis(void)
{
    double zv[24];
    for (int i = 0; i < 24; i++) zv[i] = sin(0.9 * i + 0.3) * 3;
    const int64_t shape[3] = {2, 3, 4}, stride[3] = {12, 4, 1};
    for (int d = 0; d < 2; d++)
        for (int axis = -3; axis < 3; axis++) {
            tg_dtype dt = d ? TG_F32 : TG_F64;
            double tol = d ? 1e-6 : 1e-14;
            int ax = axis < 0 ? axis + 3 : axis;
            tg_tape *tp = tg_tape_new();
            tg_tensor *z = leaf(dt, 3, shape, zv, true), *z2 = leaf(dt, 3, shape, zv, true);
            tg_tensor *y = tg_softmax(tp, z, axis), *ly = tg_log_softmax(tp, z2, axis);
            double want[24], lwant[24];
            for (int i = 0; i < 24; i++) {
                /* first element of i's slice: clear i's coordinate along ax */
                int64_t first = i - (i / stride[ax] % shape[ax]) * stride[ax];
                double s = 0;
                for (int64_t l = 0; l < shape[ax]; l++) s += exp(zv[first + l * stride[ax]]);
                want[i] = exp(zv[i]) / s;
                /* cppcheck-suppress invalidFunctionArg ; s > 0: sum of exps */
                lwant[i] = zv[i] - log(s);
            }
            EXPECT(y, 24, want, tol);
            EXPECT(ly, 24, lwant, tol);
            CHECK(sweep(tp, y) == TG_OK && sweep(tp, ly) == TG_OK);
            for (int i = 0; i < 24; i++) {
                if (i / stride[ax] % shape[ax] != 0) continue;
                double sy = 0, sdz = 0;
                for (int64_t l = 0; l < shape[ax]; l++) {
                    sy += tg_get(y, i + l * stride[ax]);
                    sdz += tg_get(tg_grad(z), i + l * stride[ax]);
                }
                CHECK_NEAR(sy, 1, tol);
                CHECK_NEAR(sdz, 0, tol * 100);
            }
            tg_tape_free(tp);
            drop_all();
        }
}

/* Logits of ±1000: no inf and no NaN in values or gradients, along the last axis (contiguous
 * rows) and along the first (the strided path). */
static void test_softmax_huge_logits(void)
{
    double l1 = log1p(exp(-1.0));
    for (int d = 0; d < 2; d++)
        for (int axis = 0; axis < 2; axis++) {
            tg_dtype dt = d ? TG_F32 : TG_F64;
            double tol = d ? 1e-6 : 1e-14;
            tg_tape *tp = tg_tape_new();
            /* the same four logits laid out along the axis under test, twice */
            const double *v = axis ? V(1000, 999, -1000, 0, 1000, 1000, 1000, 1000)
                                   : V(1000, 1000, 999, 1000, -1000, 1000, 0, 1000);
            const int64_t *shape = axis ? S(2, 4) : S(4, 2);
            tg_tensor *z = leaf(dt, 2, shape, v, true), *z2 = leaf(dt, 2, shape, v, true);
            tg_tensor *y = tg_softmax(tp, z, axis - 2), *ly = tg_log_softmax(tp, z2, axis - 2);
            CHECK(all_finite(y) && all_finite(ly));
            double p = 1 / (1 + exp(-1.0));
            const double *want = axis ? V(p, 1 - p, 0, 0, 0.25, 0.25, 0.25, 0.25)
                                      : V(p, 0.25, 1 - p, 0.25, 0, 0.25, 0, 0.25);
            const double *lwant =
                axis ? V(-l1, -1 - l1, -2000 - l1, -1000 - l1, -log(4), -log(4), -log(4), -log(4))
                     : V(-l1, -log(4), -1 - l1, -log(4), -2000 - l1, -log(4), -1000 - l1, -log(4));
            EXPECT(y, 8, want, tol);
            EXPECT(ly, 8, lwant, tol);
            CHECK(sweep(tp, y) == TG_OK && sweep(tp, ly) == TG_OK);
            CHECK(all_finite(tg_grad(z)) && all_finite(tg_grad(z2)));
            tg_tape_free(tp);
            drop_all();
        }
}

/* ---- f32 against f64 on a larger, odd-sized input (vector loop remainders) ---- */
static tg_tensor *apply(tg_tape *tp, int op, tg_tensor *x)
{
    switch (op) {
    case 0: return tg_sigmoid(tp, x);
    case 1: return tg_tanh(tp, x);
    case 2: return tg_relu(tp, x);
    case 3: return tg_leaky_relu(tp, x, 0.05);
    case 4: return tg_elu(tp, x, 0.7);
    case 5: return tg_softplus(tp, x);
    case 6: return tg_softmax(tp, x, 0);
    case 7: return tg_softmax(tp, x, 1);
    case 8: return tg_log_softmax(tp, x, 0);
    default: return tg_log_softmax(tp, x, -1);
    }
}

static void test_f32_matches_f64(void)
{
    enum { R = 17, C = 33 };
    double v[R * C];
    tg_rng rng;
    tg_rng_seed(&rng, 7);
    for (int i = 0; i < R * C; i++) v[i] = 16 * tg_rng_uniform(&rng) - 8;
    for (int op = 0; op < 10; op++) {
        tg_tape *tp = tg_tape_new();
        tg_tensor *x32 = leaf(TG_F32, 2, S(R, C), v, true);
        tg_tensor *x64 = leaf(TG_F64, 2, S(R, C), v, true);
        tg_tensor *y32 = apply(tp, op, x32), *y64 = apply(tp, op, x64);
        CHECK(sweep(tp, y32) == TG_OK && sweep(tp, y64) == TG_OK);
        double err = 0, gerr = 0;
        for (int64_t i = 0; i < R * C; i++) {
            err = fmax(err, fabs(tg_get(y32, i) - tg_get(y64, i)) / fmax(1, fabs(tg_get(y64, i))));
            double g64 = tg_get(tg_grad(x64), i);
            /* relative to the incoming gradient i + 1 too: f32 rounding scales with it */
            double scale = fmax((double)(i + 1), fabs(g64));
            gerr = fmax(gerr, fabs(tg_get(tg_grad(x32), i) - g64) / scale);
        }
        if (err > 1e-6 || gerr > 5e-6)
            printf("  op %d: value err %g, grad err %g\n", op, err, gerr);
        CHECK(err <= 1e-6);
        CHECK(gerr <= 5e-6);
        tg_tape_free(tp);
        drop_all();
    }
}

/* ---- gradients add up: two consumers, and two sweeps into a leaf ---- */
static void test_gradients_accumulate(void)
{
    tg_tape *tp = tg_tape_new();
    tg_tensor *x = leaf(TG_F64, 1, S(2), V(-1, 2), true);
    tg_tensor *y = tg_relu(tp, x), *z = tg_leaky_relu(tp, x, 0.1);
    CHECK(sweep(tp, y) == TG_OK && sweep(tp, z) == TG_OK);
    /* relu: 0, 2; leaky: 0.1, 2 */
    EXPECT(tg_grad(x), 2, V(0.1, 4), 1e-15);
    /* A new step from a zeroed gradient: softmax's and sigmoid's sweeps add up. */
    tg_tape_reset(tp);
    tg_zero_grad(x);
    tg_tensor *sm = tg_softmax(tp, x, 0), *sg = tg_sigmoid(tp, x);
    CHECK(sweep(tp, sm) == TG_OK && sweep(tp, sg) == TG_OK);
    double p0 = exp(-1.0) / (exp(-1.0) + exp(2.0)), p1 = 1 - p0;
    double sm0 = p0 * (1 - (p0 + 2 * p1)), sm1 = p1 * (2 - (p0 + 2 * p1));
    double sg0 = 1 / (1 + exp(1.0)), sg1 = 1 / (1 + exp(-2.0));
    EXPECT(tg_grad(x), 2, V(sm0 + sg0 * (1 - sg0), sm1 + 2 * sg1 * (1 - sg1)), 1e-14);
    tg_tape_free(tp);
    drop_all();
}

/* ---- recording: nothing is recorded without a gradient to compute ---- */
static void test_recording(void)
{
    tg_tape *tp = tg_tape_new();
    tg_tensor *x = leaf(TG_F64, 1, S(3), V(-1, 0.5, 2), false);
    tg_tensor *a = leaf(TG_F64, 1, S(1), V(0.2), false);
    CHECK(tg_relu(tp, x) && tg_softmax(tp, x, 0) && tg_prelu(tp, x, a));
    CHECK(tg_tape_n_nodes(tp) == 0);
    tg_set_requires_grad(a, true);
    tg_tensor *y = tg_prelu(tp, x, a);
    CHECK(tg_tape_n_nodes(tp) == 1 && tg_requires_grad(y));
    CHECK(strcmp(tg_node_op(tg_tape_first(tp)), "prelu") == 0);
    tg_tape_set_grad_mode(tp, false);
    EXPECT(tg_log_softmax(tp, a, 0), 1, V(0), 0);
    CHECK(tg_tape_n_nodes(tp) == 1);
    tg_tape_free(tp);
    drop_all();
}

/* ---- empty tensors: no element read, no crash, gradients of size 0 ---- */
static void test_empty(void)
{
    tg_tape *tp = tg_tape_new();
    const int64_t *shapes[3] = {S(0, 3), S(3, 0), S(2, 0, 3)};
    const int nds[3] = {2, 2, 3};
    for (int k = 0; k < 3; k++) {
        tg_tensor *x = leaf(TG_F64, nds[k], shapes[k], NULL, true);
        for (int axis = -nds[k]; axis < nds[k]; axis++) {
            tg_tensor *y = tg_softmax(tp, x, axis), *ly = tg_log_softmax(tp, x, axis);
            CHECK(y && ly && tg_tensor_numel(y) == 0 && tg_tensor_numel(ly) == 0);
            CHECK(sweep(tp, y) == TG_OK && sweep(tp, ly) == TG_OK);
        }
        CHECK(sweep(tp, tg_sigmoid(tp, x)) == TG_OK);
        int64_t last = shapes[k][nds[k] - 1];
        CHECK(sweep(tp, tg_prelu(tp, x, leaf(TG_F64, 1, S(last), NULL, true))) == TG_OK);
        CHECK(sweep(tp, tg_prelu(tp, x, leaf(TG_F64, 1, S(1), V(0.1), true))) == TG_OK);
    }
    CHECK(tg_tape_errcode(tp) == TG_OK);
    tg_tape_free(tp);
    drop_all();
}

/* ---- errors ---- */
static void test_errors(void)
{
    tg_tape *tp = tg_tape_new();
    tg_tensor *x = leaf(TG_F64, 2, S(2, 3), V(1, 2, 3, 4, 5, 6), true);
    struct {
        tg_tensor *alpha;
        const char *msg;
    } bad_alpha[] = {
        {leaf(TG_F64, 1, S(2), NULL, true), "tg_prelu: [2,3] and [2]: alpha must be [1] or [3]"},
        {leaf(TG_F64, 2, S(1, 3), NULL, true),
         "tg_prelu: [2,3] and [1,3]: alpha must be [1] or [3]"},
        {leaf(TG_F64, 0, NULL, NULL, true), "tg_prelu: [2,3] and []: alpha must be [1] or [3]"},
    };
    for (size_t k = 0; k < sizeof bad_alpha / sizeof bad_alpha[0]; k++) {
        CHECK(tg_prelu(tp, x, bad_alpha[k].alpha) == NULL);
        CHECK(tg_tape_errcode(tp) == TG_ESHAPE);
        CHECK_STR_HAS(tg_tape_error(tp), bad_alpha[k].msg);
        tg_tape_reset(tp);
    }
    CHECK(tg_prelu(tp, x, leaf(TG_F32, 1, S(3), NULL, true)) == NULL);
    CHECK(tg_tape_errcode(tp) == TG_EDTYPE);
    CHECK_STR_HAS(tg_tape_error(tp), "tg_prelu: dtypes f64 and f32 differ");
    tg_tape_reset(tp);

    CHECK(tg_softmax(tp, x, 2) == NULL);
    CHECK(tg_tape_errcode(tp) == TG_EARG);
    CHECK_STR_HAS(tg_tape_error(tp), "tg_softmax: axis 2 out of range for [2,3]");
    tg_tape_reset(tp);
    CHECK(tg_log_softmax(tp, x, -3) == NULL);
    CHECK_STR_HAS(tg_tape_error(tp), "tg_log_softmax: axis -3 out of range for [2,3]");
    tg_tape_reset(tp);
    CHECK(tg_softmax(tp, leaf(TG_F64, 0, NULL, V(1), true), 0) == NULL);
    CHECK_STR_HAS(tg_tape_error(tp), "tg_softmax: axis 0 out of range for []");
    tg_tape_reset(tp);

    CHECK(tg_leaky_relu(tp, x, (double)NAN) == NULL);
    CHECK(tg_tape_errcode(tp) == TG_EARG);
    CHECK_STR_HAS(tg_tape_error(tp), "tg_leaky_relu: alpha nan is not finite");
    tg_tape_reset(tp);
    CHECK(tg_elu(tp, x, (double)INFINITY) == NULL);
    CHECK_STR_HAS(tg_tape_error(tp), "tg_elu: alpha inf is not finite");
    tg_tape_reset(tp);

    /* NULL inputs give NULL and name the op; a NULL tape too. */
    CHECK(tg_sigmoid(tp, NULL) == NULL);
    CHECK(tg_tape_errcode(tp) == TG_EARG);
    CHECK_STR_HAS(tg_tape_error(tp), "tg_sigmoid: input 0 is NULL");
    tg_tape_reset(tp);
    CHECK(tg_prelu(tp, x, NULL) == NULL);
    CHECK_STR_HAS(tg_tape_error(tp), "tg_prelu: input 1 is NULL");
    tg_tape_reset(tp);
    CHECK(tg_softmax(NULL, x, 0) == NULL && tg_relu(NULL, x) == NULL);
    tg_tensor *(*const unary[])(tg_tape *, tg_tensor *) = {tg_sigmoid,  tg_tanh, tg_relu,
                                                           tg_softplus, tg_step, tg_sign};
    for (size_t k = 0; k < sizeof unary / sizeof unary[0]; k++) {
        /* cppcheck-suppress uninitvar ; misparsed fn-pointer array */
        CHECK(unary[k](tp, NULL) == NULL);
        tg_tape_reset(tp);
    }
    CHECK(tg_leaky_relu(tp, NULL, 0.1) == NULL && tg_elu(tp, NULL, 1) == NULL);
    CHECK(tg_log_softmax(tp, NULL, 0) == NULL && tg_prelu(tp, NULL, x) == NULL);
    tg_tape_reset(tp);

    /* The first error is kept; later ops return NULL even on good inputs. */
    CHECK(tg_softmax(tp, x, 5) == NULL);
    CHECK(tg_prelu(tp, x, bad_alpha[0].alpha) == NULL);
    CHECK(tg_relu(tp, x) == NULL);
    CHECK_STR_HAS(tg_tape_error(tp), "tg_softmax: axis 5 out of range for [2,3]");
    tg_tape_reset(tp);
    CHECK(tg_relu(tp, x) != NULL && tg_tape_errcode(tp) == TG_OK);
    tg_tape_free(tp);
    drop_all();
}

/* ---- the family's self-check cases: gradients against finite differences, f32 vs f64 ---- */
static void test_selfcheck_activation(void)
{
    static const char *ops[] = {"sigmoid", "tanh", "relu", "leaky_relu", "elu",        "softplus",
                                "prelu",   "step", "sign", "softmax",    "log_softmax"};
    enum { N_OPS = sizeof ops / sizeof ops[0] };
    int count[N_OPS];
    check_family_cases(ops, N_OPS, count);
    for (int k = 0; k < N_OPS; k++) check_case_count(ops[k], count[k], 2);
}

static const check_case cases[] = {
    TEST(test_elementwise_values),
    TEST(test_shapes_kept),
    TEST(test_sigmoid_softplus_extremes),
    TEST(test_step_sign),
    TEST(test_nan_passes),
    TEST(test_prelu),
    TEST(test_softmax_values),
    TEST(test_softmax_every_axis),
    TEST(test_softmax_huge_logits),
    TEST(test_f32_matches_f64),
    TEST(test_gradients_accumulate),
    TEST(test_recording),
    TEST(test_empty),
    TEST(test_errors),
    TEST(test_selfcheck_activation),
};
TEST_MAIN("test_ops_activation", cases)
