/* test/test_ops_norm.c: dropout and batch_norm (ops/norm.c). Dropout: the mask follows the
 * tape seed, drops a fraction near p, scales what it keeps by 1/(1-p), passes gradients
 * only through kept elements, and is the identity in eval; gradcheck sees one mask because
 * it restores the seed. Batch norm: values, gradients and running statistics against
 * PyTorch 1.13 (F.batch_norm, float64), eval mode, N = 1, constant channels, f32 accuracy
 * with a large offset, errors, and the family's self-check cases. */
#include <stdlib.h>

#include "check.h"
#include "ops_check.h"
#include "tapegrad.h"

/* ================================ dropout ================================ */

/* Kept elements are x/(1-p) exactly (as the multiplication rounds), dropped ones 0; the
 * fraction dropped is Binomial(n, p)/n, so it lies within 6 standard deviations of p. */
static void check_fraction(tg_dtype dt, double p, uint64_t seed)
{
    const int64_t n = 200000;
    tg_tape *tp = tg_tape_new();
    tg_tensor *x = leaf(dt, 1, &n, NULL, false);
    for (int64_t i = 0; i < n; i++) tg_set(x, i, 0.5 + (double)(i % 7));
    tg_tape_seed(tp, seed);
    tg_tensor *y = tg_dropout(tp, x, p, true);
    CHECK(y != NULL);
    int64_t dropped = 0, bad = 0;
    for (int64_t i = 0; y && i < n; i++) {
        double v = tg_get(y, i);
        if (v == 0) dropped++;
        else if (dt == TG_F64) bad += v != tg_get(x, i) * (1.0 / (1.0 - p));
        else bad += (float)v != (float)tg_get(x, i) * (float)(1.0 / (1.0 - p));
    }
    CHECK(bad == 0);
    double sd = sqrt((double)n * p * (1 - p));
    if (fabs((double)dropped - (double)n * p) > 6 * sd)
        printf("  dropout p %g: %lld of %lld dropped\n", p, (long long)dropped, (long long)n);
    CHECK(fabs((double)dropped - (double)n * p) <= 6 * sd);
    tg_tape_free(tp);
    drop_all();
}

static void test_dropout_fraction_and_scale(void)
{
    check_fraction(TG_F64, 0.3, 1);
    check_fraction(TG_F64, 0.5, 2);
    check_fraction(TG_F64, 0.9, 3);
    check_fraction(TG_F64, 0.01, 4);
    check_fraction(TG_F32, 0.3, 5);
    check_fraction(TG_F32, 0.75, 6);
}

/* Zero-pattern of y as a bit string, for comparing masks. */
static int64_t mask_diff(const tg_tensor *a, const tg_tensor *b)
{
    int64_t d = 0;
    for (int64_t i = 0; i < tg_tensor_numel(a); i++)
        d += (tg_get(a, i) == 0) != (tg_get(b, i) == 0);
    return d;
}

static void test_dropout_seed(void)
{
    const int64_t n = 1000;
    tg_tape *tp = tg_tape_new();
    tg_tensor *x = leaf(TG_F64, 1, &n, NULL, false), *x32 = leaf(TG_F32, 1, &n, NULL, false);
    tg_tensor_fill(x, 1), tg_tensor_fill(x32, 1);
    tg_tape_seed(tp, 42);
    tg_tensor *a = tg_dropout(tp, x, 0.5, true);
    tg_tensor *a2 = tg_dropout(tp, x, 0.5, true); /* the generator moved on */
    tg_tape_seed(tp, 42);
    tg_tensor *b = tg_dropout(tp, x, 0.5, true);
    tg_tape_seed(tp, 42);
    tg_tensor *c = tg_dropout(tp, x32, 0.5, true); /* one draw per element, any dtype */
    tg_tape_seed(tp, 43);
    tg_tensor *d = tg_dropout(tp, x, 0.5, true);
    CHECK(a && a2 && b && c && d);
    CHECK(mask_diff(a, b) == 0);
    CHECK(mask_diff(a, c) == 0);
    CHECK(mask_diff(a, a2) > 100);
    CHECK(mask_diff(a, d) > 100);
    /* The same holds across a reset, and on another tape with the same seed. */
    tg_tape_reset(tp);
    tg_tape *tp2 = tg_tape_new();
    tg_tape_seed(tp, 43), tg_tape_seed(tp2, 43);
    tg_tensor *e = tg_dropout(tp, x, 0.5, true), *f = tg_dropout(tp2, x, 0.5, true);
    CHECK(e && f && mask_diff(e, f) == 0);
    tg_tape_free(tp2);
    /* Masks follow the tape: a fresh tape starts from seed 0. */
    tg_tape *t0 = tg_tape_new(), *t1 = tg_tape_new();
    tg_tape_seed(t1, 0);
    tg_tensor *g = tg_dropout(t0, x, 0.5, true), *h = tg_dropout(t1, x, 0.5, true);
    CHECK(g && h && mask_diff(g, h) == 0);
    tg_tape_free(t0), tg_tape_free(t1);
    tg_tape_free(tp);
    drop_all();
}

/* dx = dy · mask/(1-p): zero exactly where y was dropped; checked by hand on a small x. */
static void test_dropout_gradient(void)
{
    tg_dtype dts[2] = {TG_F64, TG_F32};
    for (int k = 0; k < 2; k++) {
        const int64_t n = 64;
        const double p = 0.4;
        tg_tape *tp = tg_tape_new();
        tg_tensor *x = leaf(dts[k], 1, &n, NULL, true);
        for (int64_t i = 0; i < n; i++) tg_set(x, i, 0.25 * (double)(i - 30));
        tg_tape_seed(tp, 9);
        tg_tensor *y = tg_dropout(tp, x, p, true);
        CHECK(y != NULL && tg_requires_grad(y) && tg_tape_n_nodes(tp) == 1);
        CHECK(sweep(tp, y) == TG_OK);
        const tg_tensor *dx = tg_grad(x);
        int64_t kept = 0, bad = 0;
        for (int64_t i = 0; dx && y && i < n; i++) {
            /* x is 0 at i = 30: its mask shows only in the gradient */
            bool keep = tg_get(dx, i) != 0;
            kept += keep;
            double want = keep ? (double)(i + 1) / (1 - p) : 0.0;
            bad += fabs(tg_get(dx, i) - want) > 1e-6 * want;
            if (i != 30) bad += keep != (tg_get(y, i) != 0);
        }
        CHECK(dx != NULL && bad == 0);
        CHECK(kept > 10 && kept < n - 10);
        /* A second sweep adds the same again (leaf gradients accumulate). */
        tg_tensor *once = tg_tensor_clone(dx);
        CHECK(sweep(tp, y) == TG_OK);
        bad = 0;
        for (int64_t i = 0; once && i < n; i++) bad += tg_get(dx, i) != 2 * tg_get(once, i);
        CHECK(once && bad == 0);
        tg_tensor_free(once);
        tg_tape_free(tp);
        drop_all();
    }
}

/* Eval or p == 0: x itself comes back, nothing is recorded, no number is drawn. */
static void test_dropout_identity(void)
{
    tg_tape *tp = tg_tape_new();
    tg_tensor *x = leaf(TG_F64, 2, S(2, 3), V(1, 2, 3, 4, 5, 6), true);
    tg_tape_seed(tp, 3);
    CHECK(tg_dropout(tp, x, 0.5, false) == x);
    CHECK(tg_dropout(tp, x, 0.0, true) == x);
    CHECK(tg_dropout(tp, x, 0.0, false) == x);
    CHECK(tg_tape_n_nodes(tp) == 0);
    tg_rng r;
    tg_rng_seed(&r, 3);
    CHECK(tg_rng_next(tg_tape_rng(tp)) == tg_rng_next(&r));
    /* Gradients reach x straight through the identity. */
    CHECK(sweep(tp, tg_dropout(tp, x, 0.3, false)) == TG_OK);
    EXPECT(tg_grad(x), 6, V(1, 2, 3, 4, 5, 6), 0);
    /* Eval still checks p. */
    CHECK(tg_dropout(tp, x, 1.5, false) == NULL && tg_tape_errcode(tp) == TG_EARG);
    tg_tape_free(tp);
    drop_all();
}

static void test_dropout_recording(void)
{
    tg_tape *tp = tg_tape_new();
    tg_tensor *x = leaf(TG_F64, 2, S(3, 4), NULL, false);
    tg_tensor_fill(x, 2);
    /* No input needs a gradient: computed, not recorded. */
    tg_tensor *y = tg_dropout(tp, x, 0.5, true);
    CHECK(y && y != x && !tg_requires_grad(y) && tg_tape_n_nodes(tp) == 0);
    tg_set_requires_grad(x, true);
    tg_tape_set_grad_mode(tp, false);
    y = tg_dropout(tp, x, 0.5, true);
    CHECK(y && !tg_requires_grad(y) && tg_tape_n_nodes(tp) == 0);
    tg_tape_set_grad_mode(tp, true);
    y = tg_dropout(tp, x, 0.5, true);
    CHECK(y && tg_requires_grad(y) && tg_tape_n_nodes(tp) == 1);
    CHECK(tg_tape_first(tp) && strcmp(tg_node_op(tg_tape_first(tp)), "dropout") == 0);
    /* Empty and 0-d tensors. */
    tg_tensor *e = leaf(TG_F32, 2, S(0, 3), NULL, true), *s = leaf(TG_F64, 0, NULL, V(5), true);
    tg_tensor *ye = tg_dropout(tp, e, 0.5, true), *ys = tg_dropout(tp, s, 0.5, true);
    CHECK(ye && tg_tensor_numel(ye) == 0 && tg_tensor_ndim(ye) == 2);
    CHECK(ys && tg_tensor_ndim(ys) == 0 && (tg_get(ys, 0) == 0 || tg_get(ys, 0) == 10));
    tg_tape_free(tp);
    drop_all();
}

/* ---- gradcheck through dropout: it restores the seed before every evaluation ---- */
static tg_tensor *f_drop(tg_tape *tp, tg_tensor *const *in, void *ctx)
{
    (void)ctx;
    return weighted(tp, tg_dropout(tp, in[0], 0.5, true));
}

/* Counts evaluations whose generator did not start at the expected seed's state. */
typedef struct {
    uint64_t seed;
    int calls, off_seed;
} seed_probe;

static tg_tensor *f_drop_probe(tg_tape *tp, tg_tensor *const *in, void *ctx)
{
    seed_probe *sp = ctx;
    tg_rng want, got = *tg_tape_rng(tp);
    tg_rng_seed(&want, sp->seed);
    sp->calls++;
    sp->off_seed += tg_rng_next(&want) != tg_rng_next(&got);
    return weighted(tp, tg_dropout(tp, in[0], 0.5, true));
}

static tg_tensor *f_drop_moving(tg_tape *tp, tg_tensor *const *in, void *ctx)
{
    seed_probe *sp = ctx;
    tg_tape_seed(tp, sp->seed++);
    return weighted(tp, tg_dropout(tp, in[0], 0.5, true));
}

static void test_dropout_gradcheck_seed(void)
{
    tg_tensor *x = leaf(TG_F64, 2, S(4, 5), NULL, true);
    for (int64_t i = 0; i < 20; i++) tg_set(x, i, sin((double)i));
    seed_probe sp = {77, 0, 0};
    tg_gradcheck_opts o = {0, 0, 77};
    tg_gradcheck_result r;
    CHECK(tg_gradcheck(f_drop_probe, 1, &x, &sp, &o, &r) == TG_OK);
    CHECK(sp.calls == 1 + 4 * 20 && sp.off_seed == 0);
    CHECK(r.n_checked == 20 && r.max_rel_err <= 1e-6);
    /* Another seed, another mask, and still a match. */
    tg_gradcheck_opts o2 = {0, 0, 78};
    CHECK(tg_gradcheck(f_drop, 1, &x, NULL, &o2, &r) == TG_OK && r.max_rel_err <= 1e-6);
    /* The control: a function that moves the seed on every call sees a new mask in each
     * evaluation, and the finite differences no longer match. */
    seed_probe moving = {0, 0, 0};
    CHECK(tg_gradcheck(f_drop_moving, 1, &x, &moving, &o, &r) == TG_OK);
    CHECK(r.max_rel_err > 1e-2);
    drop_all();
}

static void test_dropout_errors(void)
{
    tg_tape *tp = tg_tape_new();
    tg_tensor *x = leaf(TG_F64, 2, S(2, 2), NULL, true);
    const double bad[] = {1.0, -0.1, 2.0, (double)NAN, (double)INFINITY};
    for (int k = 0; k < 5; k++) {
        CHECK(tg_dropout(tp, x, bad[k], true) == NULL);
        CHECK(tg_tape_errcode(tp) == TG_EARG);
        CHECK_STR_HAS(tg_tape_error(tp), "tg_dropout: p = ");
        CHECK_STR_HAS(tg_tape_error(tp), "want 0 <= p < 1");
        tg_tape_reset(tp);
    }
    CHECK(tg_dropout(tp, x, 1.0, true) == NULL);
    CHECK_STR_HAS(tg_tape_error(tp), "tg_dropout: p = 1, want 0 <= p < 1");
    /* The first error is kept; later calls return NULL. */
    CHECK(tg_dropout(tp, x, 0.5, true) == NULL);
    CHECK(tg_dropout(tp, NULL, 0.5, true) == NULL);
    CHECK_STR_HAS(tg_tape_error(tp), "p = 1");
    tg_tape_reset(tp);
    CHECK(tg_dropout(tp, NULL, 0.5, true) == NULL);
    CHECK_STR_HAS(tg_tape_error(tp), "tg_dropout: input 0 is NULL");
    CHECK(tg_dropout(NULL, x, 0.5, true) == NULL);
    /* A tensor from before a reset is refused. */
    tg_tape_reset(tp);
    tg_tensor *y = tg_dropout(tp, x, 0.5, true);
    tg_tape_reset(tp);
    CHECK(tg_dropout(tp, y, 0.5, true) == NULL && tg_tape_errcode(tp) == TG_ESTATE);
    tg_tape_free(tp);
    drop_all();
}

/* ============================== batch norm ============================== */

/* x [4,3], γ, β, running statistics, momentum 0.1, eps 1e-5, training; loss Σ (i+1) y_i.
 * Every number from PyTorch 1.13, F.batch_norm in float64. */
static const double BX[12] = {0.5, -1.2, 3.0, 1.5, 0.3, -2.0, -0.7, 2.2, 1.0, 2.1, -0.4, 0.25};
static const double BG[3] = {1.5, -0.5, 2.0}, BB[3] = {0.1, 0.2, -0.3};
static const double BRM[3] = {0.2, -0.1, 0.5}, BRV[3] = {1.0, 2.0, 0.5};
static const double BY[12] = {-0.39442349725487535, 0.76649673964332099,  2.4255363157898593,
                              1.0182150663304821,   0.17018438212403575,  -3.1653074089072879,
                              -2.0895897735573046,  -0.58514460406705893, 0.18919882591100046,
                              1.8657982044816968,   0.44846348229970218,  -0.64942773279357169};
static const double BDX[12] = {-5.929327075505376,  1.2114766423275578,  -3.3545114774978475,
                               -2.9129727008313981, 0.62670501174193249, -3.4405137036633238,
                               4.0123778853052841,  0.20402753701042586, 1.9782976077452235,
                               4.8299218910314909,  -2.0422091910799161, 4.8167275734159469};
static const double BDG[3] = {3.672860265321928, 5.128286274665852, -4.4027894331990041};
static const double BDB[3] = {22, 26, 30};
static const double BRM1[3] = {0.265, -0.0675, 0.50625};
static const double BRV1[3] = {1.0503333333333333, 2.0109166666666667, 0.8765625};

static void test_batch_norm_training_2d(void)
{
    tg_dtype dts[2] = {TG_F64, TG_F32};
    for (int k = 0; k < 2; k++) {
        double tol = dts[k] == TG_F64 ? 1e-13 : 2e-6;
        tg_tape *tp = tg_tape_new();
        tg_tensor *x = leaf(dts[k], 2, S(4, 3), BX, true), *g = leaf(dts[k], 1, S(3), BG, true);
        tg_tensor *b = leaf(dts[k], 1, S(3), BB, true);
        tg_tensor *rm = leaf(dts[k], 1, S(3), BRM, false), *rv = leaf(dts[k], 1, S(3), BRV, false);
        tg_tensor *y = tg_batch_norm(tp, x, g, b, rm, rv, 0.1, 1e-5, true);
        EXPECT(y, 12, BY, tol);
        EXPECT(rm, 3, BRM1, tol);
        EXPECT(rv, 3, BRV1, tol);
        CHECK(sweep(tp, y) == TG_OK);
        EXPECT(tg_grad(x), 12, BDX, tol);
        EXPECT(tg_grad(g), 3, BDG, tol);
        EXPECT(tg_grad(b), 3, BDB, tol);
        /* Through the batch statistics, dx sums to 0 over each channel. */
        for (int c = 0; c < 3 && tg_grad(x); c++) {
            double s = 0;
            for (int i = 0; i < 4; i++) s += tg_get(tg_grad(x), i * 3 + c);
            CHECK(fabs(s) < 1e-4);
        }
        tg_tape_free(tp);
        drop_all();
    }
}

/* x [2,2,3]: features on axis 1, statistics over N and the trailing axis (M = 6);
 * momentum 0.2, eps 1e-3. PyTorch 1.13, float64. */
static void test_batch_norm_training_3d(void)
{
    tg_tape *tp = tg_tape_new();
    tg_tensor *x = leaf(TG_F64, 3, S(2, 2, 3),
                        V(0.1, 0.9, -0.4, 1.0, 2.0, 4.0, 0.6, -1.1, 0.3, -3.0, 0.5, 1.5), true);
    tg_tensor *g = leaf(TG_F64, 1, S(2), V(0.7, 1.3), true),
              *b = leaf(TG_F64, 1, S(2), V(-0.2, 0.4), true);
    tg_tensor *rm = leaf(TG_F64, 1, S(2), V(0, 1), false),
              *rv = leaf(TG_F64, 1, S(2), V(1, 0.25), false);
    tg_tensor *y = tg_batch_norm(tp, x, g, b, rm, rv, 0.2, 1e-3, true);
    EXPECT(y, 12,
           V(-0.16468517767283855, 0.68287055817903652, -0.69440751258026046, 0.40000000000000002,
             1.0185102207981054, 2.2555306623943161, 0.36503715723458335, -1.4360187814506513,
             0.047203756290130218, -2.0740408831924215, 0.090744889600947343, 0.70925511039905276),
           1e-13);
    EXPECT(rm, 2, V(0.013333333333333329, 1), 1e-13);
    EXPECT(rv, 2, V(0.90453333333333341, 1.26), 1e-13);
    CHECK(sweep(tp, y) == TG_OK);
    EXPECT(tg_grad(x), 12,
           V(-4.1946350938253278, -2.099744373593329, -2.722899535706361, -2.4740408831924214,
             -1.4705076999266207, -0.081951554193124512, 2.8091867065744571, 1.6683085192528475,
             4.5397837772977114, -0.30307140827457085, 1.6630191811604684, 2.666552364426269),
           1e-12);
    EXPECT(tg_grad(g), 2, V(-4.8431756334392873, -7.8503220332067212), 1e-13);
    EXPECT(tg_grad(b), 2, V(30, 48), 1e-13);
    tg_tape_free(tp);
    drop_all();
}

/* N = 1 with spatial values, x [1,2,3]: allowed (M = 3); PyTorch 1.13, float64. */
static void test_batch_norm_single_sample_spatial(void)
{
    tg_tape *tp = tg_tape_new();
    tg_tensor *x = leaf(TG_F64, 3, S(1, 2, 3), V(1, 2, 4, -1, 0, 3), true);
    tg_tensor *g = leaf(TG_F64, 1, S(2), V(1, 2), true),
              *b = leaf(TG_F64, 1, S(2), V(0, 0.5), true);
    tg_tensor *rm = leaf(TG_F64, 1, S(2), V(0, 0), false),
              *rv = leaf(TG_F64, 1, S(2), V(1, 1), false);
    tg_tensor *y = tg_batch_norm(tp, x, g, b, rm, rv, 0.1, 1e-5, true);
    EXPECT(y, 6,
           V(-1.0690415314502977, -0.26726038286257459, 1.3363019143128716, -1.4611579570729287,
             -0.28446318282917143, 3.2456211399021004),
           1e-13);
    EXPECT(rm, 2, V(0.23333333333333336, 0.066666666666666666), 1e-13);
    EXPECT(rv, 2, V(1.1333333333333333, 1.3333333333333335), 1e-13);
    CHECK(sweep(tp, y) == TG_OK);
    EXPECT(tg_grad(x), 6,
           V(-0.11454458203331698, 0.17180914163860159, -0.057264559605284371, -0.27154808110249734,
             0.36205867725650398, -0.090510596154006792),
           1e-12);
    EXPECT(tg_grad(g), 2, V(2.4053434457631688, 2.3533895484875145), 1e-13);
    EXPECT(tg_grad(b), 2, V(6, 15), 0);
    tg_tape_free(tp);
    drop_all();
}

/* Eval: y = γ (x - r_mean)/sqrt(r_var + eps) + β, an affine map; dx = γ dy/sqrt(r_var + eps)
 * (by hand: with r_var + eps = 0.64 + 1e-5, γ_0 = 2, dx_0 = 2·1/0.8000062...). PyTorch 1.13. */
static void test_batch_norm_eval(void)
{
    tg_dtype dts[2] = {TG_F64, TG_F32};
    for (int k = 0; k < 2; k++) {
        double tol = dts[k] == TG_F64 ? 1e-13 : 2e-6;
        tg_tape *tp = tg_tape_new();
        tg_tensor *x = leaf(dts[k], 2, S(3, 2), V(0.5, -1.0, 2.0, 3.0, -1.5, 0.25), true);
        tg_tensor *g = leaf(dts[k], 1, S(2), V(2, -1.5), true),
                  *b = leaf(dts[k], 1, S(2), V(0.5, 1), true);
        tg_tensor *rm = leaf(dts[k], 1, S(2), V(0.3, -0.2), false);
        tg_tensor *rv = leaf(dts[k], 1, S(2), V(0.64, 1.5), false);
        tg_tensor *y = tg_batch_norm(tp, x, g, b, rm, rv, 0.1, 1e-5, false);
        EXPECT(y, 6,
               V(0.99999609379577581, 1.9797926311432774, 4.7499667972640935, -2.9191705245731092,
                 -3.9999648441619815, 0.44886664498190648),
               tol);
        /* eval leaves the running statistics alone (f32: 0.3 as rounded to float) */
        EXPECT(rm, 2, V(0.3, -0.2), 1e-7);
        EXPECT(rv, 2, V(0.64, 1.5), 1e-7);
        CHECK(sweep(tp, y) == TG_OK);
        double s0 = 2 / sqrt(0.64 + 1e-5), s1 = -1.5 / sqrt(1.5 + 1e-5);
        EXPECT(tg_grad(x), 6, V(1 * s0, 2 * s1, 3 * s0, 4 * s1, 5 * s0, 6 * s1), tol);
        EXPECT(tg_grad(x), 6,
               V(2.4999804689788787, -2.4494815778581933, 7.4999414069366361, -4.8989631557163866,
                 12.499902344894394, -7.3484447335745795),
               tol);
        EXPECT(tg_grad(g), 2, V(-4.6249638676109255, 11.349264644076296), tol);
        EXPECT(tg_grad(b), 2, V(9, 12), tol);
        tg_tape_free(tp);
        drop_all();
    }
}

/* Running statistics: momentum 0 keeps them, 1 replaces them by the batch mean and the
 * unbiased variance; either may be passed alone; the update happens in no-grad mode too,
 * and on every call (two calls apply it twice). */
static void test_batch_norm_running_update(void)
{
    tg_tape *tp = tg_tape_new();
    /* one channel, values 1, 2, 3, 6: mean 3, biased variance 3.5, unbiased 14/3 */
    tg_tensor *x = leaf(TG_F64, 2, S(4, 1), V(1, 2, 3, 6), false);
    tg_tensor *g = leaf(TG_F64, 1, S(1), V(1), false), *b = leaf(TG_F64, 1, S(1), V(0), false);
    tg_tensor *rm = leaf(TG_F64, 1, S(1), V(10), false), *rv = leaf(TG_F64, 1, S(1), V(20), false);
    CHECK(tg_batch_norm(tp, x, g, b, rm, rv, 0.0, 1e-5, true) != NULL);
    EXPECT(rm, 1, V(10), 0);
    EXPECT(rv, 1, V(20), 0);
    CHECK(tg_batch_norm(tp, x, g, b, rm, rv, 1.0, 1e-5, true) != NULL);
    EXPECT(rm, 1, V(3), 1e-15);
    EXPECT(rv, 1, V(14.0 / 3), 1e-15);
    tg_tensor_fill(rm, 0), tg_tensor_fill(rv, 1);
    tg_tape_set_grad_mode(tp, false);
    CHECK(tg_batch_norm(tp, x, g, b, rm, NULL, 0.5, 1e-5, true) != NULL);
    CHECK(tg_batch_norm(tp, x, g, b, NULL, rv, 0.5, 1e-5, true) != NULL);
    CHECK(tg_batch_norm(tp, x, g, b, rm, rv, 0.5, 1e-5, true) != NULL);
    tg_tape_set_grad_mode(tp, true);
    EXPECT(rm, 1, V(2.25), 1e-15);                   /* 0 → 1.5 → 2.25 */
    EXPECT(rv, 1, V(0.25 + 0.75 * 14.0 / 3), 1e-15); /* 1 → ½+7/3 → ... */
    /* Eval with the statistics just learned: the batch mean 3 maps to β. */
    tg_tensor *y = tg_batch_norm(tp, x, g, b, rm, rv, 0.5, 1e-5, false);
    double s = 1 / sqrt(0.25 + 0.75 * 14.0 / 3 + 1e-5);
    EXPECT(y, 4, V((1 - 2.25) * s, (2 - 2.25) * s, (3 - 2.25) * s, (6 - 2.25) * s), 1e-14);
    /* f32 running statistics with an f32 x. */
    tg_tensor *x32 = leaf(TG_F32, 2, S(4, 1), V(1, 2, 3, 6), false);
    tg_tensor *g32 = leaf(TG_F32, 1, S(1), V(1), false), *b32 = leaf(TG_F32, 1, S(1), V(0), false);
    tg_tensor *rm32 = leaf(TG_F32, 1, S(1), V(0), false),
              *rv32 = leaf(TG_F32, 1, S(1), V(1), false);
    CHECK(tg_batch_norm(tp, x32, g32, b32, rm32, rv32, 0.1, 1e-5, true) != NULL);
    EXPECT(rm32, 1, V(0.3), 1e-7);
    EXPECT(rv32, 1, V(0.9 + 0.1 * 14.0 / 3), 1e-7);
    tg_tape_free(tp);
    drop_all();
}

/* A constant channel has variance 0: x̂ = 0, so y = β; dβ is still Σ dy, dγ = 0, and dx is
 * γ/sqrt(eps)·(dy - mean dy) (what PyTorch gives too). */
static void test_batch_norm_constant_channel(void)
{
    tg_tape *tp = tg_tape_new();
    tg_tensor *x = leaf(TG_F64, 2, S(3, 2), V(2, 1, 2, 5, 2, 0), true);
    tg_tensor *g = leaf(TG_F64, 1, S(2), V(3, 1), true),
              *b = leaf(TG_F64, 1, S(2), V(0.5, 0), true);
    tg_tensor *y = tg_batch_norm(tp, x, g, b, NULL, NULL, 0.1, 1e-2, true);
    CHECK(y && tg_get(y, 0) == 0.5 && tg_get(y, 2) == 0.5 && tg_get(y, 4) == 0.5);
    CHECK(sweep(tp, y) == TG_OK);
    double k = 3 / sqrt(1e-2); /* dy of channel 0: 1, 3, 5, mean 3 */
    CHECK(tg_grad(x) != NULL);
    CHECK_NEAR(tg_get(tg_grad(x), 0), k * (1 - 3), 1e-10);
    CHECK_NEAR(tg_get(tg_grad(x), 2), 0, 1e-10);
    CHECK_NEAR(tg_get(tg_grad(x), 4), k * (5 - 3), 1e-10);
    CHECK(tg_grad(g) && tg_get(tg_grad(g), 0) == 0);
    EXPECT(tg_grad(b), 2, V(9, 12), 0);
    tg_tape_free(tp);
    drop_all();
}

/* f32 with a large common offset: x̂ is formed as (x - μ)·s in double, so the f32 output is
 * as good as f32 rounding of the result allows (the form γ s x + (β - γ s μ) in float
 * would lose about three digits here). */
static void test_batch_norm_f32_offset(void)
{
    tg_tape *tp = tg_tape_new();
    const double v[8] = {10000, -3, 10000.5, -2, 10001, -1, 10001.5, -2.5};
    tg_tensor *x32 = leaf(TG_F32, 2, S(4, 2), v, true), *x64 = leaf(TG_F64, 2, S(4, 2), v, true);
    tg_tensor *g32 = leaf(TG_F32, 1, S(2), V(1, 1), true),
              *b32 = leaf(TG_F32, 1, S(2), V(0, 0), true);
    tg_tensor *g64 = leaf(TG_F64, 1, S(2), V(1, 1), true),
              *b64 = leaf(TG_F64, 1, S(2), V(0, 0), true);
    tg_tensor *y32 = tg_batch_norm(tp, x32, g32, b32, NULL, NULL, 0.1, 1e-5, true);
    tg_tensor *y64 = tg_batch_norm(tp, x64, g64, b64, NULL, NULL, 0.1, 1e-5, true);
    double s = 1 / sqrt(0.3125 + 1e-5);
    CHECK(y64 && fabs(tg_get(y64, 0) - -0.75 * s) < 1e-12);
    double worst = 0;
    for (int i = 0; y32 && y64 && i < 8; i++)
        worst = fmax(worst, fabs(tg_get(y32, i) - tg_get(y64, i)));
    CHECK(y32 && worst < 2e-7);
    CHECK(sweep(tp, y32) == TG_OK && sweep(tp, y64) == TG_OK);
    worst = 0;
    for (int i = 0; i < 8; i++)
        worst = fmax(worst, fabs(tg_get(tg_grad(x32), i) - tg_get(tg_grad(x64), i)) /
                                fmax(1, fabs(tg_get(tg_grad(x64), i))));
    CHECK(worst < 1e-6);
    tg_tape_free(tp);
    drop_all();
}

/* Gradients only where asked, accumulation across sweeps, and recording rules. */
static void test_batch_norm_grads_and_recording(void)
{
    tg_tape *tp = tg_tape_new();
    tg_tensor *x = leaf(TG_F64, 2, S(4, 3), BX, false), *g = leaf(TG_F64, 1, S(3), BG, false);
    tg_tensor *b = leaf(TG_F64, 1, S(3), BB, true);
    tg_tensor *y = tg_batch_norm(tp, x, g, b, NULL, NULL, 0.1, 1e-5, true);
    CHECK(y && tg_requires_grad(y) && tg_tape_n_nodes(tp) == 1);
    CHECK(sweep(tp, y) == TG_OK);
    CHECK(tg_grad(x) == NULL && tg_grad(g) == NULL);
    EXPECT(tg_grad(b), 3, BDB, 0);
    CHECK(sweep(tp, y) == TG_OK); /* a second sweep adds again */
    EXPECT(tg_grad(b), 3, V(44, 52, 60), 0);
    tg_tape_reset(tp);
    tg_set_requires_grad(b, false);
    y = tg_batch_norm(tp, x, g, b, NULL, NULL, 0.1, 1e-5, true);
    CHECK(y && !tg_requires_grad(y) && tg_tape_n_nodes(tp) == 0);
    EXPECT(y, 12, BY, 1e-13);
    /* Only x needs a gradient: dx as with all three. */
    tg_tape_reset(tp);
    tg_set_requires_grad(x, true);
    y = tg_batch_norm(tp, x, g, b, NULL, NULL, 0.1, 1e-5, true);
    CHECK(sweep(tp, y) == TG_OK);
    EXPECT(tg_grad(x), 12, BDX, 1e-13);
    /* Empty batch in eval, zero channels in training. */
    tg_tape_reset(tp);
    tg_tensor *e = leaf(TG_F64, 2, S(0, 3), NULL, true);
    tg_tensor *rm = leaf(TG_F64, 1, S(3), NULL, false),
              *rv = leaf(TG_F64, 1, S(3), V(1, 1, 1), false);
    tg_tensor *ye = tg_batch_norm(tp, e, g, b, rm, rv, 0.1, 1e-5, false);
    CHECK(ye && tg_tensor_numel(ye) == 0);
    tg_tensor *z = leaf(TG_F64, 2, S(5, 0), NULL, true), *g0 = leaf(TG_F64, 1, S(0), NULL, true);
    tg_tensor *yz = tg_batch_norm(tp, z, g0, g0, NULL, NULL, 0.1, 1e-5, true);
    CHECK(yz && tg_tensor_numel(yz) == 0);
    CHECK(sweep(tp, yz) == TG_OK);
    tg_tape_free(tp);
    drop_all();
}

static void test_batch_norm_errors(void)
{
    tg_tape *tp = tg_tape_new();
    tg_tensor *x = leaf(TG_F64, 2, S(4, 2), NULL, true), *g = leaf(TG_F64, 1, S(2), V(1, 1), true);
    tg_tensor *b = leaf(TG_F64, 1, S(2), NULL, true), *g1 = leaf(TG_F64, 1, S(1), V(1), true);
    tg_tensor *rm = leaf(TG_F64, 1, S(2), NULL, false), *rv = leaf(TG_F64, 1, S(2), V(1, 1), false);
    tg_tensor *x1 = leaf(TG_F64, 1, S(4), NULL, true), *r3 = leaf(TG_F64, 1, S(3), NULL, false);
    tg_tensor *r32 = leaf(TG_F32, 1, S(2), NULL, false),
              *x32 = leaf(TG_F32, 2, S(4, 2), NULL, true);
    tg_tensor *one = leaf(TG_F64, 2, S(1, 2), V(3, 4), true),
              *neg = leaf(TG_F64, 1, S(2), V(1, -0.5), false);
    tg_tensor *one3 = leaf(TG_F64, 3, S(1, 2, 1), V(3, 4), true);

    CHECK(tg_batch_norm(tp, x, g1, g1, NULL, NULL, 0.1, 1e-5, true) == NULL);
    CHECK(tg_tape_errcode(tp) == TG_ESHAPE);
    CHECK_STR_HAS(tg_tape_error(tp),
                  "tg_batch_norm: [4,2], [1] and [1]: want x [N,C,...], gamma [C], beta [C]");
    tg_tape_reset(tp);
    CHECK(tg_batch_norm(tp, x1, g, b, NULL, NULL, 0.1, 1e-5, true) == NULL);
    CHECK_STR_HAS(tg_tape_error(tp), "tg_batch_norm: [4], [2] and [2]: want x [N,C,...]");
    tg_tape_reset(tp);
    CHECK(tg_batch_norm(tp, x, g, b, r3, rv, 0.1, 1e-5, true) == NULL);
    CHECK(tg_tape_errcode(tp) == TG_ESHAPE);
    CHECK_STR_HAS(tg_tape_error(tp), "tg_batch_norm: running mean [3]: want [2] (x is [4,2])");
    tg_tape_reset(tp);
    CHECK(tg_batch_norm(tp, x, g, b, rm, r32, 0.1, 1e-5, false) == NULL);
    CHECK(tg_tape_errcode(tp) == TG_EDTYPE);
    CHECK_STR_HAS(tg_tape_error(tp), "tg_batch_norm: running variance is f32, x is f64");
    tg_tape_reset(tp);
    CHECK(tg_batch_norm(tp, x32, g, b, NULL, NULL, 0.1, 1e-5, true) == NULL);
    CHECK(tg_tape_errcode(tp) == TG_EDTYPE);
    tg_tape_reset(tp);
    const double eps_bad[] = {0, -1, (double)NAN, (double)INFINITY},
                 mom_bad[] = {-0.1, 1.5, (double)NAN};
    for (int k = 0; k < 4; k++) {
        CHECK(tg_batch_norm(tp, x, g, b, NULL, NULL, 0.1, eps_bad[k], true) == NULL);
        CHECK(tg_tape_errcode(tp) == TG_EARG);
        CHECK_STR_HAS(tg_tape_error(tp), "want eps > 0");
        tg_tape_reset(tp);
    }
    for (int k = 0; k < 3; k++) {
        CHECK(tg_batch_norm(tp, x, g, b, NULL, NULL, mom_bad[k], 1e-5, true) == NULL);
        CHECK_STR_HAS(tg_tape_error(tp), "0 <= momentum <= 1");
        tg_tape_reset(tp);
    }
    CHECK(tg_batch_norm(tp, x, g, b, NULL, rv, 0.1, 1e-5, false) == NULL);
    CHECK(tg_tape_errcode(tp) == TG_EARG);
    CHECK_STR_HAS(tg_tape_error(tp),
                  "tg_batch_norm: eval mode needs the running mean and variance");
    tg_tape_reset(tp);
    CHECK(tg_batch_norm(tp, x, g, b, rm, neg, 0.1, 1e-5, false) == NULL);
    CHECK_STR_HAS(tg_tape_error(tp), "tg_batch_norm: running variance[1] = -0.5 is negative");
    tg_tape_reset(tp);
    /* N = 1 in training: one value per channel, no variance (PyTorch refuses it too). */
    CHECK(tg_batch_norm(tp, one, g, b, rm, rv, 0.1, 1e-5, true) == NULL);
    CHECK(tg_tape_errcode(tp) == TG_ESHAPE);
    CHECK_STR_HAS(tg_tape_error(tp),
                  "tg_batch_norm: [1,2]: training needs more than one value per channel");
    tg_tape_reset(tp);
    CHECK(tg_batch_norm(tp, one3, g, b, NULL, NULL, 0.1, 1e-5, true) == NULL);
    CHECK_STR_HAS(tg_tape_error(tp), "[1,2,1]: training needs more than one value");
    tg_tape_reset(tp);
    /* ... but fine in eval, with the running statistics. */
    CHECK(tg_batch_norm(tp, one, g, b, rm, rv, 0.1, 1e-5, false) != NULL);
    EXPECT(rm, 2, V(0, 0), 0); /* the failed training calls updated nothing */
    EXPECT(rv, 2, V(1, 1), 0);
    /* An op output as running statistic: readable in eval, refused in training. */
    tg_tensor *rvec = tg_dropout(tp, rv, 0.5, true); /* an op output of shape [2] */
    CHECK(rvec != NULL);
    for (int i = 0; rvec && i < 2; i++) tg_set(rvec, i, 1);
    CHECK(tg_batch_norm(tp, x, g, b, rm, rvec, 0.1, 1e-5, false) != NULL);
    CHECK(tg_batch_norm(tp, x, g, b, rm, rvec, 0.1, 1e-5, true) == NULL);
    CHECK(tg_tape_errcode(tp) == TG_EARG);
    CHECK_STR_HAS(tg_tape_error(tp), "running variance is an op output");
    tg_tape_reset(tp);
    rvec = tg_dropout(tp, rv, 0.5, true);
    tg_tape_reset(tp);
    CHECK(tg_batch_norm(tp, x, g, b, rm, rvec, 0.1, 1e-5, false) == NULL);
    CHECK(tg_tape_errcode(tp) == TG_ESTATE);
    tg_tape_reset(tp);
    /* NULL inputs give NULL; the first error is kept. */
    CHECK(tg_batch_norm(tp, x, NULL, b, NULL, NULL, 0.1, 1e-5, true) == NULL);
    CHECK_STR_HAS(tg_tape_error(tp), "tg_batch_norm: input 1 is NULL");
    CHECK(tg_batch_norm(tp, x1, g, b, NULL, NULL, 0.1, 1e-5, true) == NULL);
    CHECK(tg_batch_norm(tp, x, g, b, NULL, NULL, 0.1, 1e-5, true) == NULL);
    CHECK_STR_HAS(tg_tape_error(tp), "input 1 is NULL");
    CHECK(tg_batch_norm(NULL, x, g, b, NULL, NULL, 0.1, 1e-5, true) == NULL);
    tg_tape_reset(tp);
    CHECK(tg_batch_norm(tp, x, g, b, NULL, NULL, 0.1, 1e-5, true) != NULL);
    CHECK(tg_tape_errcode(tp) == TG_OK);
    tg_tape_free(tp);
    drop_all();
}

/* ---- the family's self-check cases: gradients against finite differences, f32 vs f64 ---- */
static void test_selfcheck_norm(void)
{
    static const char *ops[] = {"dropout", "batch_norm"};
    int count[2];
    check_family_cases(ops, 2, count);
    CHECK(count[0] >= 4 && count[1] >= 10);
}

static const check_case cases[] = {
    TEST(test_dropout_fraction_and_scale),
    TEST(test_dropout_seed),
    TEST(test_dropout_gradient),
    TEST(test_dropout_identity),
    TEST(test_dropout_recording),
    TEST(test_dropout_gradcheck_seed),
    TEST(test_dropout_errors),
    TEST(test_batch_norm_training_2d),
    TEST(test_batch_norm_training_3d),
    TEST(test_batch_norm_single_sample_spatial),
    TEST(test_batch_norm_eval),
    TEST(test_batch_norm_running_update),
    TEST(test_batch_norm_constant_channel),
    TEST(test_batch_norm_f32_offset),
    TEST(test_batch_norm_grads_and_recording),
    TEST(test_batch_norm_errors),
    TEST(test_selfcheck_norm),
};
TEST_MAIN("test_ops_norm", cases)
