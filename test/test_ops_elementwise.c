/* test/test_ops_elementwise.c: add, sub, mul, div with broadcasting (ops/elementwise.c) and
 * the unary math ops (ops/unary.c). Values and gradients against PyTorch 1.13 (float64),
 * every broadcast layout against a naive multi-index reference written here, gradients by
 * hand where the rule has a subtlety (sums over broadcast axes, x op x, 1/b² for huge b),
 * the conventions at 0 and for NaN, errors, and the two families' self-check cases. */
#include <stdlib.h>

#include "check.h"
#include "ops_check.h"
#include "tapegrad.h"

/* Internal to the library (ops/internal.h); the tests link its objects directly. */
bool tg_broadcast_shape(int na, const int64_t *a, int nb, const int64_t *b, int *nd, int64_t *out);

static bool same_shape(const tg_tensor *t, int ndim, const int64_t *shape)
{
    if (!t || tg_tensor_ndim(t) != ndim) return false;
    for (int i = 0; i < ndim; i++)
        if (tg_tensor_shape(t)[i] != shape[i]) return false;
    return true;
}

/* ---- binary ops: values and gradients against PyTorch ---- */
typedef tg_tensor *(*binary_fn)(tg_tape *, tg_tensor *, tg_tensor *);
static const binary_fn binaries[4] = {tg_add, tg_sub, tg_mul, tg_div};
static const char *const binary_names[4] = {"add", "sub", "mul", "div"};

/* a [2,3] op row b [3], loss Σ (i+1) y_i. */
static const double A23[6] = {1, -2, 3, 0.5, 5, -6}, B3[3] = {2, -4, 8};
static const double ROW_Y[4][6] = {{3, -6, 11, 2.5, 1, 2},
                                   {-1, 2, -5, -1.5, 9, -14},
                                   {2, 8, 24, 1, -20, -48},
                                   {0.5, 0.5, 0.375, 0.25, -1.25, -0.75}};
static const double ROW_DA[4][6] = {{1, 2, 3, 4, 5, 6},
                                    {1, 2, 3, 4, 5, 6},
                                    {2, -8, 24, 8, -20, 48},
                                    {0.5, -0.5, 0.375, 2, -1.25, 0.75}};
/* b's gradient is summed over the two rows it was broadcast to. */
static const double ROW_DB[4][3] = {
    {5, 7, 9}, {-5, -7, -9}, {3, 21, -27}, {-0.75, -1.3125, 0.421875}};

static void test_binary_values(void)
{
    for (int d = 0; d < 2; d++) {
        tg_dtype dt = d ? TG_F32 : TG_F64;
        double tol = d ? 1e-6 : 1e-15;
        for (int k = 0; k < 4; k++) {
            int failed_before = check_failed;
            tg_tape *tp = tg_tape_new();
            tg_tensor *a = leaf(dt, 2, S(2, 3), A23, true), *b = leaf(dt, 1, S(3), B3, true);
            tg_tensor *y = binaries[k](tp, a, b);
            CHECK(same_shape(y, 2, S(2, 3)) && tg_tensor_dtype(y) == dt);
            EXPECT(y, 6, ROW_Y[k], tol);
            CHECK(sweep(tp, y) == TG_OK);
            EXPECT(tg_grad(a), 6, ROW_DA[k], tol);
            EXPECT(tg_grad(b), 3, ROW_DB[k], tol);
            if (k == 0) { /* b + a: the row on the left gives the same */
                tg_tape_reset(tp);
                tg_zero_grad(a), tg_zero_grad(b);
                y = tg_add(tp, b, a);
                EXPECT(y, 6, ROW_Y[0], tol);
                CHECK(sweep(tp, y) == TG_OK);
                EXPECT(tg_grad(b), 3, ROW_DB[0], tol);
                EXPECT(tg_grad(a), 6, ROW_DA[0], tol);
            }
            tg_tape_free(tp);
            if (check_failed > failed_before)
                printf("  in %s, %s\n", binary_names[k], tg_dtype_name(dt));
            drop_all();
        }
    }
}

/* Outer product layout: a column [2,1] by a row [1,3], both broadcast. */
static void test_div_outer(void)
{
    tg_tape *tp = tg_tape_new();
    tg_tensor *a = leaf(TG_F64, 2, S(2, 1), V(3, -0.5), true);
    tg_tensor *b = leaf(TG_F64, 2, S(1, 3), V(1, 2, -4), true);
    tg_tensor *y = tg_div(tp, a, b);
    CHECK(same_shape(y, 2, S(2, 3)));
    EXPECT(y, 6, V(3, 1.5, -0.75, -0.5, -0.25, 0.125), 1e-15);
    CHECK(sweep(tp, y) == TG_OK);
    EXPECT(tg_grad(a), 2, V(1.25, 5), 1e-15);
    EXPECT(tg_grad(b), 3, V(-1, -0.875, -0.375), 1e-15);
    tg_tape_free(tp);
    drop_all();
}

/* ---- every layout against a naive reference ----
 * The reference walks the output by multi-index and maps it into each input by NumPy's
 * rule, in double: nothing shared with the library's layouts, strides or merging. */
typedef struct {
    int na, nb;
    int64_t sa[6], sb[6];
} shape_pair;

static const shape_pair pairs[] = {
    {2, 2, {3, 4}, {3, 4}},                      /* same shape */
    {0, 0, {0}, {0}},                            /* two scalars */
    {3, 0, {2, 3, 5}, {0}},                      /* b scalar [] */
    {3, 2, {2, 3, 5}, {1, 1}},                   /* b [1,1] */
    {1, 2, {1}, {4, 5}},                         /* a scalar [1] */
    {2, 1, {4, 7}, {7}},                         /* b a row */
    {2, 2, {4, 7}, {1, 7}},                      /* b a row [1,7] */
    {1, 3, {5}, {2, 3, 5}},                      /* a a row */
    {4, 2, {2, 2, 3, 4}, {3, 4}},                /* b a suffix of two dims */
    {3, 4, {1, 3, 4}, {2, 2, 3, 4}},             /* a a suffix [1,3,4] */
    {2, 2, {5, 1}, {5, 3}},                      /* a a column */
    {2, 2, {5, 3}, {5, 1}},                      /* b a column */
    {2, 2, {3, 1}, {1, 4}},                      /* outer product */
    {3, 2, {2, 1, 3}, {4, 1}},                   /* both broadcast */
    {3, 3, {2, 3, 4}, {1, 3, 1}},                /* middle axis */
    {3, 3, {2, 1, 4}, {2, 3, 1}},                /* mixed */
    {4, 4, {2, 3, 1, 5}, {2, 3, 4, 1}},          /* merged leading dims */
    {6, 5, {2, 1, 2, 1, 1, 3}, {2, 1, 3, 1, 3}}, /* 6-D */
    {6, 6, {1, 2, 1, 2, 1, 2}, {2, 1, 2, 1, 2, 1}},
    {2, 2, {0, 3}, {1, 3}}, /* empty output */
    {2, 1, {2, 1}, {0}},    /* empty output, both broadcast */
};

/* The flat index in t (shape ndim, dims) of output multi-index idx (nd dims). */
static int64_t ref_index(int ndim, const int64_t *dims, int nd, const int64_t *idx)
{
    int64_t k = 0;
    for (int j = 0; j < ndim; j++) k = k * dims[j] + (dims[j] == 1 ? 0 : idx[j + nd - ndim]);
    return k;
}

static double ref_f(int op, double a, double b)
{
    return op == 0 ? a + b : op == 1 ? a - b : op == 2 ? a * b : a / b;
}
static double ref_da(int op, double a, double b)
{
    (void)a;
    return op <= 1 ? 1 : op == 2 ? b : 1 / b;
}
static double ref_db(int op, double a, double b)
{
    return op == 0 ? 1 : op == 1 ? -1 : op == 2 ? a : -a / (b * b);
}

static void check_pair(const shape_pair *p, int op, tg_dtype dt, tg_rng *rng)
{
    int nd;
    int64_t out[6];
    CHECK(tg_broadcast_shape(p->na, p->sa, p->nb, p->sb, &nd, out));
    tg_tape *tp = tg_tape_new();
    tg_tensor *a = leaf(dt, p->na, p->sa, NULL, true), *b = leaf(dt, p->nb, p->sb, NULL, true);
    tg_tensor_rand_uniform(a, -2, 2, rng);
    tg_tensor_rand_uniform(b, 0.5, 2, rng); /* a divisor away from 0 ... */
    for (int64_t i = 0; i < tg_tensor_numel(b); i += 2) tg_set(b, i, -tg_get(b, i)); /* ±b */
    tg_tensor *y = binaries[op](tp, a, b);
    CHECK(same_shape(y, nd, out));
    CHECK(sweep(tp, y) == TG_OK);

    int64_t n = 1;
    for (int i = 0; i < nd; i++) n *= out[i];
    double *want_y = calloc((size_t)n + 1, sizeof(double));
    double *want_da = calloc((size_t)tg_tensor_numel(a) + 1, sizeof(double));
    double *want_db = calloc((size_t)tg_tensor_numel(b) + 1, sizeof(double));
    int64_t idx[6] = {0};
    for (int64_t i = 0; i < n; i++) {
        int64_t ia = ref_index(p->na, p->sa, nd, idx), ib = ref_index(p->nb, p->sb, nd, idx);
        double av = tg_get(a, ia), bv = tg_get(b, ib), w = (double)(i + 1);
        want_y[i] = ref_f(op, av, bv);
        want_da[ia] += w * ref_da(op, av, bv);
        want_db[ib] += w * ref_db(op, av, bv);
        for (int d = nd - 1; d >= 0 && ++idx[d] == out[d]; d--) idx[d] = 0;
    }
    int failed_before = check_failed;
    /* f32 sums up to 72 terms of size ~100: relative 1e-5 of the largest. */
    double tol = dt == TG_F32 ? 2e-5 * (double)n : 1e-12;
    EXPECT(y, n, want_y, tol);
    if (n > 0) { /* with an empty output no gradient flows and none is made */
        EXPECT(tg_grad(a), tg_tensor_numel(a), want_da, tol);
        EXPECT(tg_grad(b), tg_tensor_numel(b), want_db, tol);
    }
    if (check_failed > failed_before) {
        char sa[96], sb[96];
        printf("  in %s(%s, %s), %s\n", binary_names[op], tg_shape_str(a, sa, sizeof sa),
               tg_shape_str(b, sb, sizeof sb), tg_dtype_name(dt));
    }
    free(want_y), free(want_da), free(want_db);
    tg_tape_free(tp);
    drop_all();
}

static void test_every_layout(void)
{
    tg_rng rng;
    tg_rng_seed(&rng, 7);
    for (size_t k = 0; k < sizeof pairs / sizeof pairs[0]; k++)
        for (int op = 0; op < 4; op++)
            for (int d = 0; d < 2; d++) {
                check_pair(&pairs[k], op, d ? TG_F32 : TG_F64, &rng);
                /* and with the operands swapped, so every layout is seen from both sides */
                shape_pair q = {pairs[k].nb, pairs[k].na, {0}, {0}};
                memcpy(q.sa, pairs[k].sb, sizeof q.sa), memcpy(q.sb, pairs[k].sa, sizeof q.sb);
                check_pair(&q, op, d ? TG_F32 : TG_F64, &rng);
            }
}

static void test_broadcast_shape(void)
{
    int nd = -1;
    int64_t out[6];
    CHECK(tg_broadcast_shape(2, S(2, 3), 1, S(3), &nd, out) && nd == 2);
    CHECK(out[0] == 2 && out[1] == 3);
    CHECK(tg_broadcast_shape(0, NULL, 0, NULL, &nd, out) && nd == 0);
    CHECK(tg_broadcast_shape(3, S(2, 1, 3), 2, S(4, 1), &nd, out) && nd == 3);
    CHECK(out[0] == 2 && out[1] == 4 && out[2] == 3);
    CHECK(tg_broadcast_shape(1, S(1), 2, S(0, 3), &nd, out) && nd == 2);
    CHECK(out[0] == 0 && out[1] == 3);
    CHECK(tg_broadcast_shape(2, S(2, 1), 2, S(1, 0), &nd, out) && out[0] == 2 && out[1] == 0);
    CHECK(!tg_broadcast_shape(2, S(2, 3), 1, S(4), &nd, out));
    CHECK(!tg_broadcast_shape(1, S(3), 1, S(0), &nd, out)); /* 0 is not 1 */
    CHECK(!tg_broadcast_shape(3, S(2, 3, 4), 2, S(2, 4), &nd, out));
}

/* ---- gradients by hand where the rule has a subtlety ---- */
static void test_gradients_by_hand(void)
{
    tg_tape *tp = tg_tape_new();
    /* x op x: the node has one tensor as both inputs and adds both contributions:
     * add 2, sub 0, mul 2x, div 1/x - x/x² = 0, weighted by i+1. */
    tg_tensor *x = leaf(TG_F64, 1, S(3), V(1.5, -2, 4), true);
    static const double want[4][3] = {{2, 4, 6}, {0, 0, 0}, {3, -8, 24}, {0, 0, 0}};
    for (int k = 0; k < 4; k++) {
        tg_zero_grad(x);
        CHECK(sweep(tp, binaries[k](tp, x, x)) == TG_OK);
        EXPECT(tg_grad(x), 3, want[k], 1e-15);
        tg_tape_reset(tp);
    }
    /* A scalar operand's gradient is the sum over every element: a [] + b [n] gives
     * da = Σ (i+1) = n(n+1)/2, for lengths around the 8-lane sum's blocks. */
    for (int d = 0; d < 2; d++)
        for (int64_t n = 0; n <= 19; n++) {
            tg_tensor *a = leaf(d ? TG_F32 : TG_F64, 0, NULL, V(0.5), true);
            tg_tensor *b = leaf(d ? TG_F32 : TG_F64, 1, S(n), NULL, true);
            tg_tensor_fill(b, 1);
            CHECK(tg_zero_grad(a) == TG_OK);
            tg_tensor *y = tg_mul(tp, b, a); /* scalar on the right */
            CHECK(sweep(tp, tg_add(tp, a, y)) == TG_OK);
            /* d/da of Σ (i+1)(a + b_i a) with b = 1: 2 Σ (i+1) = n(n+1) */
            CHECK_NEAR(tg_get(tg_grad(a), 0), (double)(n * (n + 1)), 1e-9);
            if (n > 0) CHECK_NEAR(tg_get(tg_grad(b), n - 1), 0.5 * (double)n, 0); /* (i+1) a */
            tg_tape_reset(tp);
            drop_all();
        }
    /* div's d/db = -dy a / b² without forming b²: 1 / 1e20 in f32, where b² overflows. */
    tg_tensor *a = leaf(TG_F32, 1, S(1), V(1), true), *b = leaf(TG_F32, 1, S(1), V(1e20), true);
    CHECK(sweep(tp, tg_div(tp, a, b)) == TG_OK);
    CHECK(tg_get(tg_grad(b), 0) < 0 && fabs(tg_get(tg_grad(b), 0) / -1e-40 - 1) < 1e-2);
    CHECK_NEAR(tg_get(tg_grad(a), 0) * 1e20, 1, 1e-6);
    tg_tape_free(tp);
    drop_all();
}

/* Gradients add: into a leaf used twice in one graph, and across two sweeps. */
static void test_gradients_accumulate(void)
{
    tg_tape *tp = tg_tape_new();
    tg_tensor *x = leaf(TG_F64, 1, S(2), V(3, -1), true);
    tg_tensor *w = leaf(TG_F64, 1, S(2), V(2, 5), false);
    /* y = x w + x²: dy/dx = w + 2x = (8, 3), weighted (1, 2) */
    tg_tensor *y = tg_add(tp, tg_mul(tp, x, w), tg_square(tp, x));
    CHECK(sweep(tp, y) == TG_OK);
    EXPECT(tg_grad(x), 2, V(8, 6), 1e-15);
    CHECK(tg_grad(w) == NULL); /* w needs no gradient: none is made */
    tg_tape_reset(tp);
    y = tg_sub(tp, tg_exp(tp, tg_neg(tp, x)), tg_mul_scalar(tp, x, 4));
    CHECK(sweep(tp, y) == TG_OK); /* adds (-e^-x - 4)(1, 2) to (8, 6) */
    EXPECT(tg_grad(x), 2, V(8 - exp(-3) - 4, 6 - 2 * exp(1) - 8), 1e-14);
    tg_tape_free(tp);
    drop_all();
}

/* Nothing is recorded when no input needs a gradient, or in grad mode off. */
static void test_recording(void)
{
    tg_tape *tp = tg_tape_new();
    tg_tensor *a = leaf(TG_F32, 2, S(2, 2), V(1, 2, 3, 4), false);
    tg_tensor *b = leaf(TG_F32, 1, S(2), V(1, 2), true);
    tg_tensor *y = tg_add(tp, a, tg_sqrt(tp, a));
    CHECK(y && !tg_requires_grad(y) && tg_tape_n_nodes(tp) == 0);
    y = tg_div(tp, a, b);
    CHECK(y && tg_requires_grad(y) && tg_tape_n_nodes(tp) == 1);
    CHECK(strcmp(tg_node_op(tg_tape_first(tp)), "div") == 0);
    tg_tape_set_grad_mode(tp, false);
    y = tg_mul(tp, tg_log(tp, b), b);
    CHECK(y && !tg_requires_grad(y) && tg_tape_n_nodes(tp) == 1);
    EXPECT(y, 2, V(0, 2 * log(2)), 1e-6);
    tg_tape_free(tp);
    drop_all();
}

/* Empty tensors: outputs of the broadcast shape, nothing read, zero gradients. */
static void test_empty(void)
{
    tg_tape *tp = tg_tape_new();
    tg_tensor *a = leaf(TG_F64, 2, S(0, 3), NULL, true);
    tg_tensor *b = leaf(TG_F64, 1, S(3), V(1, 2, 3), true);
    tg_tensor *y = tg_mul(tp, a, b);
    CHECK(same_shape(y, 2, S(0, 3)));
    CHECK(sweep(tp, tg_add(tp, y, tg_abs(tp, a))) == TG_OK);
    EXPECT(tg_grad(b), 3, V(0, 0, 0), 0);
    CHECK(same_shape(tg_pow_scalar(tp, a, 2.5), 2, S(0, 3)));
    tg_tensor *c = leaf(TG_F64, 2, S(2, 1), V(1, 2), true);
    CHECK(same_shape(tg_sub(tp, c, leaf(TG_F64, 1, S(0), NULL, false)), 2, S(2, 0)));
    tg_tape_free(tp);
    drop_all();
}

/* ---- unary ops: values and gradients against PyTorch ---- */
typedef struct {
    const char *name;
    tg_tensor *(*fn)(tg_tape *, tg_tensor *, double);
    double c;
    bool positive; /* on P (x > 0) rather than X */
    double y[4], dx[4];
} unary_ref;

#define NO_SCALAR(op)                                                                              \
    static tg_tensor *do_##op(tg_tape *tp, tg_tensor *x, double c)                                 \
    {                                                                                              \
        (void)c;                                                                                   \
        return tg_##op(tp, x);                                                                     \
    }
NO_SCALAR(neg)
NO_SCALAR(exp)
NO_SCALAR(log)
NO_SCALAR(sqrt)
NO_SCALAR(abs)
NO_SCALAR(square)

static const double X[4] = {-2, -0.5, 0.25, 4}, P[4] = {0.5, 3, 9, 0.25};
/* clang-format off */
static const unary_ref urefs[] = {
    {"neg", do_neg, 0, false, {2, 0.5, -0.25, -4}, {-1, -2, -3, -4}},
    {"add_scalar", tg_add_scalar, 1.5, false, {-0.5, 1, 1.75, 5.5}, {1, 2, 3, 4}},
    {"mul_scalar", tg_mul_scalar, -2.5, false, {5, 1.25, -0.625, -10}, {-2.5, -5, -7.5, -10}},
    {"pow_scalar", tg_pow_scalar, 3, false, {-8, -0.125, 0.015625, 64},
     {12, 1.5, 0.5625, 192}},
    {"pow_scalar", tg_pow_scalar, -2, false, {0.25, 4, 16, 0.0625}, {0.25, 32, -384, -0.125}},
    {"pow_scalar", tg_pow_scalar, -1.5, true,
     {2.8284271247461903, 0.19245008972987526, 0.037037037037037035, 8},
     {-8.485281374238571, -0.19245008972987523, -0.01851851851851852, -192}},
    {"pow_scalar", tg_pow_scalar, 0.5, true, {0.7071067811865476, 1.7320508075688772, 3, 0.5},
     {0.7071067811865475, 0.5773502691896258, 0.5, 4}},
    {"exp", do_exp, 0, false,
     {0.1353352832366127, 0.6065306597126334, 1.2840254166877414, 54.598150033144236},
     {0.1353352832366127, 1.2130613194252668, 3.852076250063224, 218.39260013257694}},
    {"log", do_log, 0, true, {-0.6931471805599453, 1.0986122886681098, 2.1972245773362196,
                              -1.3862943611198906},
     {2, 0.6666666666666666, 0.3333333333333333, 16}},
    {"sqrt", do_sqrt, 0, true, {0.7071067811865476, 1.7320508075688772, 3, 0.5},
     {0.7071067811865475, 0.5773502691896258, 0.5, 4}},
    {"abs", do_abs, 0, false, {2, 0.5, 0.25, 4}, {-1, -2, 3, 4}},
    {"square", do_square, 0, false, {4, 0.25, 0.0625, 16}, {-4, -2, 1.5, 32}},
};
/* clang-format on */

static void test_unary_values(void)
{
    for (int d = 0; d < 2; d++) {
        tg_dtype dt = d ? TG_F32 : TG_F64;
        double tol = d ? 2e-6 : 1e-14;
        for (size_t k = 0; k < sizeof urefs / sizeof urefs[0]; k++) {
            int failed_before = check_failed;
            tg_tape *tp = tg_tape_new();
            tg_tensor *x = leaf(dt, 2, S(2, 2), urefs[k].positive ? P : X, true);
            tg_tensor *y = urefs[k].fn(tp, x, urefs[k].c);
            CHECK(same_shape(y, 2, S(2, 2)) && tg_tensor_dtype(y) == dt);
            EXPECT(y, 4, urefs[k].y, tol);
            CHECK(sweep(tp, y) == TG_OK);
            EXPECT(tg_grad(x), 4, urefs[k].dx, tol);
            if (check_failed > failed_before)
                printf("  in %s(%g), %s\n", urefs[k].name, urefs[k].c, tg_dtype_name(dt));
            tg_tape_free(tp);
            drop_all();
        }
    }
}

/* 0-d and 4-D inputs keep their shape. */
static void test_unary_shapes(void)
{
    tg_tape *tp = tg_tape_new();
    tg_tensor *s = leaf(TG_F32, 0, NULL, V(2.25), true);
    tg_tensor *y = tg_sqrt(tp, s);
    CHECK(same_shape(y, 0, NULL));
    CHECK_NEAR(tg_get(y, 0), 1.5, 0);
    tg_tensor *t = leaf(TG_F64, 4, S(2, 1, 3, 2), NULL, true);
    CHECK(same_shape(tg_exp(tp, tg_abs(tp, t)), 4, S(2, 1, 3, 2)));
    tg_tape_free(tp);
    drop_all();
}

/* The conventions at 0, for negative x, for NaN and at infinity. */
static void test_unary_conventions(void)
{
    tg_tape *tp = tg_tape_new();
    const double inf = (double)INFINITY, nan = (double)NAN;
    /* abs: gradient sign(x) with 0 at ±0 and, as PyTorch, at NaN */
    tg_tensor *x = leaf(TG_F64, 1, S(4), V(0, -0.0, nan, -3), true);
    tg_tensor *y = tg_abs(tp, x);
    EXPECT(y, 4, V(0, 0, nan, 3), 0);
    CHECK(sweep(tp, y) == TG_OK);
    EXPECT(tg_grad(x), 4, V(0, 0, 0, -4), 0);
    tg_tape_reset(tp);
    /* pow: x^0 = 1 with gradient 0 everywhere, 0 included; 0^0.5 has slope inf; a
     * negative x with a non-integer p is NaN, with an integer p it is fine */
    tg_tensor *z = leaf(TG_F64, 1, S(3), V(0, -2, 4), true);
    y = tg_pow_scalar(tp, z, 0);
    EXPECT(y, 3, V(1, 1, 1), 0);
    CHECK(sweep(tp, y) == TG_OK);
    EXPECT(tg_grad(z), 3, V(0, 0, 0), 0);
    tg_tape_reset(tp), tg_zero_grad(z);
    y = tg_pow_scalar(tp, z, 0.5);
    EXPECT(y, 3, V(0, nan, 2), 0);
    CHECK(sweep(tp, y) == TG_OK);
    EXPECT(tg_grad(z), 3, V(inf, nan, 0.75), 1e-15);
    tg_tape_reset(tp), tg_zero_grad(z);
    y = tg_pow_scalar(tp, z, -1);
    EXPECT(y, 3, V(inf, -0.5, 0.25), 0);
    CHECK(sweep(tp, y) == TG_OK);
    EXPECT(tg_grad(z), 3, V(-inf, -0.5, -0.1875), 1e-15);
    tg_tape_reset(tp), tg_zero_grad(z);
    /* sqrt and log at 0 and below, as C and PyTorch: slopes inf, NaN for x < 0 */
    y = tg_sqrt(tp, z);
    EXPECT(y, 3, V(0, nan, 2), 0);
    CHECK(sweep(tp, y) == TG_OK);
    EXPECT(tg_grad(z), 3, V(inf, nan, 0.75), 1e-15);
    tg_tape_reset(tp), tg_zero_grad(z);
    y = tg_log(tp, z);
    EXPECT(y, 3, V(-inf, nan, log(4)), 1e-15);
    CHECK(sweep(tp, y) == TG_OK);
    EXPECT(tg_grad(z), 3, V(inf, -1, 0.75), 1e-15);
    tg_tape_reset(tp);
    /* exp overflows to inf and underflows to 0 without NaN */
    tg_tensor *e = leaf(TG_F32, 1, S(2), V(100, -200), false);
    EXPECT(tg_exp(tp, e), 2, V(inf, 0), 0);
    tg_tape_free(tp);
    drop_all();
}

/* ---- errors ---- */
static void test_errors(void)
{
    tg_tape *tp = tg_tape_new();
    tg_tensor *a = leaf(TG_F64, 2, S(2, 3), NULL, true), *e = leaf(TG_F64, 1, S(4), NULL, true);
    tg_tensor *c = leaf(TG_F64, 3, S(2, 3, 4), NULL, true);
    tg_tensor *f = leaf(TG_F64, 2, S(2, 4), NULL, true);
    tg_tensor *f32 = leaf(TG_F32, 1, S(3), NULL, true);
    static const char *const msgs[4] = {
        "tg_add: [2,3] and [4]: shapes do not broadcast",
        "tg_sub: [4] and [2,3]: shapes do not broadcast",
        "tg_mul: [2,3,4] and [2,4]: shapes do not broadcast",
        "tg_div: [2,4] and [2,3,4]: shapes do not broadcast",
    };
    tg_tensor *lhs[4] = {a, e, c, f}, *rhs[4] = {e, a, f, c};
    for (int k = 0; k < 4; k++) {
        CHECK(binaries[k](tp, lhs[k], rhs[k]) == NULL);
        CHECK(tg_tape_errcode(tp) == TG_ESHAPE);
        CHECK_STR_HAS(tg_tape_error(tp), msgs[k]);
        tg_tape_reset(tp);
    }
    CHECK(tg_mul(tp, a, f32) == NULL);
    CHECK(tg_tape_errcode(tp) == TG_EDTYPE);
    CHECK_STR_HAS(tg_tape_error(tp), "tg_mul: dtypes f64 and f32 differ");
    tg_tape_reset(tp);
    /* NULL inputs give NULL and name the op; a NULL tape too */
    CHECK(tg_div(tp, a, NULL) == NULL);
    CHECK(tg_tape_errcode(tp) == TG_EARG);
    CHECK_STR_HAS(tg_tape_error(tp), "tg_div: input 1 is NULL");
    tg_tape_reset(tp);
    CHECK(tg_sqrt(tp, NULL) == NULL);
    CHECK_STR_HAS(tg_tape_error(tp), "tg_sqrt: input 0 is NULL");
    tg_tape_reset(tp);
    for (int k = 0; k < 4; k++) CHECK(binaries[k](NULL, a, a) == NULL);
    CHECK(tg_neg(NULL, a) == NULL && tg_pow_scalar(NULL, a, 2) == NULL);
    tg_tensor *(*const unary[])(tg_tape *, tg_tensor *) = {tg_neg,  tg_exp, tg_log,
                                                           tg_sqrt, tg_abs, tg_square};
    for (size_t k = 0; k < sizeof unary / sizeof unary[0]; k++) {
        /* cppcheck-suppress uninitvar ; misparsed fn-pointer array */
        CHECK(unary[k](tp, NULL) == NULL);
        tg_tape_reset(tp);
    }
    CHECK(tg_add_scalar(tp, NULL, 1) == NULL && tg_mul_scalar(tp, NULL, 1) == NULL);
    tg_tape_reset(tp);
    /* the scalar must be finite */
    CHECK(tg_pow_scalar(tp, a, (double)NAN) == NULL);
    CHECK(tg_tape_errcode(tp) == TG_EARG);
    CHECK_STR_HAS(tg_tape_error(tp), "tg_pow_scalar: the scalar nan is not finite");
    tg_tape_reset(tp);
    CHECK(tg_add_scalar(tp, a, (double)INFINITY) == NULL);
    CHECK_STR_HAS(tg_tape_error(tp), "tg_add_scalar: the scalar inf is not finite");
    tg_tape_reset(tp);
    CHECK(tg_mul_scalar(tp, a, -(double)INFINITY) == NULL);
    CHECK_STR_HAS(tg_tape_error(tp), "tg_mul_scalar: the scalar -inf is not finite");
    tg_tape_reset(tp);
    /* a tensor from before the reset is refused */
    tg_tensor *old = tg_exp(tp, a);
    CHECK(old != NULL);
    tg_tape_reset(tp);
    CHECK(tg_add(tp, a, old) == NULL);
    CHECK(tg_tape_errcode(tp) == TG_ESTATE);
    CHECK_STR_HAS(tg_tape_error(tp), "tg_add: input 1 belongs to another tape");
    tg_tape_reset(tp);
    /* the first error is kept; later ops return NULL even on good inputs */
    CHECK(tg_sub(tp, c, f) == NULL);
    CHECK(tg_add(tp, a, a) == NULL && tg_exp(tp, a) == NULL);
    CHECK(tg_mul(tp, a, e) == NULL);
    CHECK_STR_HAS(tg_tape_error(tp), "tg_sub: [2,3,4] and [2,4]: shapes do not broadcast");
    tg_tape_reset(tp);
    CHECK(tg_add(tp, a, a) != NULL && tg_tape_errcode(tp) == TG_OK);
    tg_tape_free(tp);
    drop_all();
}

/* ---- the families' self-check cases: gradients against finite differences, f32 vs f64 ---- */
static void test_selfcheck_elementwise_unary(void)
{
    static const char *ops[] = {"add",        "sub",        "mul",        "div", "neg",
                                "add_scalar", "mul_scalar", "pow_scalar", "exp", "log",
                                "sqrt",       "abs",        "square"};
    enum { N_OPS = sizeof ops / sizeof ops[0] };
    int count[N_OPS];
    check_family_cases(ops, N_OPS, count);
    for (int k = 0; k < N_OPS; k++)
        check_case_count(ops[k], count[k], k < 4 ? 10 : 2); /* the binary ops: every layout */
}

static const check_case cases[] = {
    TEST(test_binary_values),
    TEST(test_div_outer),
    TEST(test_every_layout),
    TEST(test_broadcast_shape),
    TEST(test_gradients_by_hand),
    TEST(test_gradients_accumulate),
    TEST(test_recording),
    TEST(test_empty),
    TEST(test_unary_values),
    TEST(test_unary_shapes),
    TEST(test_unary_conventions),
    TEST(test_errors),
    TEST(test_selfcheck_elementwise_unary),
};
TEST_MAIN("test_ops_elementwise", cases)
