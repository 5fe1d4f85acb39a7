/* test/test_ops_shape.c: broadcast_to and sum_to (ops/broadcast.c), pad (ops/shape.c), and
 * the backwards in ops of slice, concat and pad. Values and gradients against numbers
 * worked out by hand in every layout the kernels tell apart (same shape, scalar, suffix,
 * leading block, middle axis, general), in f32 and f64; empty tensors; the gradients that
 * tg_gradients builds from the adjoints; and every class of bad input, each recording
 * nothing and keeping the first error. The gradient checks (first and second order) are
 * the self-check cases of ops/cases_shape.c, run here too. */
#include <limits.h>
#include <stdint.h>

#include "check.h"
#include "ops_check.h"
#include "tapegrad.h"

#define P(k) ((int64_t)1 << (k))

static bool same_shape(const tg_tensor *t, int ndim, const int64_t *shape)
{
    if (!t || tg_tensor_ndim(t) != ndim) return false;
    for (int i = 0; i < ndim; i++)
        if (tg_tensor_shape(t)[i] != shape[i]) return false;
    return true;
}

/* ---- broadcast_to and sum_to: values, and gradients of Σ (i+1) y_i ---- */
typedef struct bcase {
    const char *what;
    int nx;
    int64_t sx[4];
    int ny;
    int64_t sy[4];
    const double *y;  /* broadcast_to of x = 1, 2, ...: y; its dx */
    const double *dx; /* (sum_to of x = 1, 2, ... to sx: the weights 1, 2, ... of sx
                         broadcast, by the adjoint's symmetry; checked separately) */
} bcase;

static const bcase BCASES[] = {
    {"same", 2, {2, 2}, 2, {2, 2}, V(1, 2, 3, 4), V(1, 2, 3, 4)},
    {"scalar []", 0, {0}, 2, {2, 2}, V(1, 1, 1, 1), V(10)},
    {"scalar [1,1]", 2, {1, 1}, 3, {2, 1, 2}, V(1, 1, 1, 1), V(10)},
    {"suffix [3] to [2,3]", 1, {3}, 2, {2, 3}, V(1, 2, 3, 1, 2, 3), V(5, 7, 9)},
    {"suffix [1,3] to [2,2,3]",
     2,
     {1, 3},
     3,
     {2, 2, 3},
     V(1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3),
     V(22, 26, 30)},
    {"leading block [2,1] to [2,3]", 2, {2, 1}, 2, {2, 3}, V(1, 1, 1, 2, 2, 2), V(6, 15)},
    {"middle axis [2,1,2] to [2,3,2]",
     3,
     {2, 1, 2},
     3,
     {2, 3, 2},
     V(1, 2, 1, 2, 1, 2, 3, 4, 3, 4, 3, 4),
     V(9, 12, 27, 30)},
    {"general [3,1] to [2,3,2]",
     2,
     {3, 1},
     3,
     {2, 3, 2},
     V(1, 1, 2, 2, 3, 3, 1, 1, 2, 2, 3, 3),
     V(18, 26, 34)},
};

static void test_broadcast_to_values(void)
{
    for (int d = 0; d < 2; d++) {
        tg_dtype dt = d ? TG_F32 : TG_F64;
        for (size_t c = 0; c < sizeof BCASES / sizeof BCASES[0]; c++) {
            const bcase *b = &BCASES[c];
            int failed_before = check_failed;
            tg_tape *tp = tg_tape_new();
            double xv[12];
            int64_t nx = 1, ny = 1;
            for (int i = 0; i < b->nx; i++) nx *= b->sx[i];
            for (int i = 0; i < b->ny; i++) ny *= b->sy[i];
            for (int i = 0; i < 12; i++) xv[i] = i + 1;
            tg_tensor *x = leaf(dt, b->nx, b->sx, xv, true);
            tg_tensor *y = tg_broadcast_to(tp, x, b->ny, b->sy);
            CHECK(same_shape(y, b->ny, b->sy) && tg_tensor_dtype(y) == dt);
            EXPECT(y, ny, b->y, 0);
            CHECK(tg_tape_n_nodes(tp) == 1);
            CHECK(sweep(tp, y) == TG_OK);
            EXPECT(tg_grad(x), nx, b->dx, 0);
            /* sum_to is the adjoint: summing y's weights down gives the same dx, and its
             * gradient is the broadcast the other way */
            tg_tape_reset(tp);
            tg_tensor *big = leaf(dt, b->ny, b->sy, NULL, true);
            for (int64_t i = 0; i < ny; i++) tg_set(big, i, (double)(i + 1));
            tg_tensor *s = tg_sum_to(tp, big, b->nx, b->sx);
            CHECK(same_shape(s, b->nx, b->sx));
            EXPECT(s, nx, b->dx, 0);
            CHECK(sweep(tp, s) == TG_OK);
            EXPECT(tg_grad(big), ny, b->y, 0);
            tg_tape_free(tp);
            if (check_failed > failed_before) printf("  in %s, %s\n", b->what, tg_dtype_name(dt));
            drop_all();
        }
    }
}

/* Long sums: the eight partial sums of a scalar target and their remainder, and rows of a
 * suffix summed over many rows; integers, so exact in f32 too. */
static void test_sum_to_long(void)
{
    for (int d = 0; d < 2; d++) {
        tg_dtype dt = d ? TG_F32 : TG_F64;
        tg_tape *tp = tg_tape_new();
        tg_tensor *x = leaf(dt, 1, S(1003), NULL, true);
        for (int64_t i = 0; i < 1003; i++) tg_set(x, i, (double)(i + 1));
        tg_tensor *s = tg_sum_to(tp, x, 0, NULL);
        EXPECT(s, 1, V(503506), 0);
        tg_tensor *m = leaf(dt, 2, S(101, 5), NULL, false);
        for (int64_t i = 0; i < 505; i++) tg_set(m, i, (double)(i % 5 + 1));
        tg_tensor *r = tg_sum_to(tp, m, 2, S(1, 5));
        EXPECT(r, 5, V(101, 202, 303, 404, 505), 0);
        tg_tensor *c = tg_sum_to(tp, m, 2, S(101, 1));
        bool ok = same_shape(c, 2, S(101, 1));
        for (int64_t i = 0; ok && i < 101; i++) ok = tg_get(c, i) == 15;
        CHECK(ok);
        CHECK(tg_tape_n_nodes(tp) == 1); /* m needs no gradient: not recorded */
        tg_tape_free(tp);
        drop_all();
    }
}

/* Empty tensors: a sum over an empty axis is zeros, a broadcast to an empty shape gives x a
 * zero gradient, and either way nothing loops over the huge sizes. */
static void test_broadcast_empty(void)
{
    for (int d = 0; d < 2; d++) {
        tg_dtype dt = d ? TG_F32 : TG_F64;
        tg_tape *tp = tg_tape_new();
        tg_tensor *e = leaf(dt, 2, S(0, 3), NULL, true);
        tg_tensor *s = tg_sum_to(tp, e, 1, S(3));
        EXPECT(s, 3, V(0, 0, 0), 0);
        CHECK(sweep(tp, s) == TG_OK && tg_tensor_numel(tg_grad(e)) == 0);
        tg_tape_reset(tp);
        tg_tensor *x = leaf(dt, 1, S(3), V(1, 2, 3), true);
        tg_tensor *y = tg_broadcast_to(tp, x, 2, S(0, 3));
        CHECK(same_shape(y, 2, S(0, 3)));
        CHECK(sweep(tp, y) == TG_OK);
        EXPECT(tg_grad(x), 3, V(0, 0, 0), 0);
        tg_tape_reset(tp);
        /* twice into one gradient: the second adds to the first's zeros */
        tg_zero_grad(x);
        tg_tensor *y2 =
            tg_add(tp, tg_broadcast_to(tp, x, 2, S(0, 3)), tg_broadcast_to(tp, x, 1, S(3)));
        CHECK(same_shape(y2, 2, S(0, 3)));
        CHECK(sweep(tp, y2) == TG_OK);
        EXPECT(tg_grad(x), 3, V(0, 0, 0), 0);
        tg_tape_reset(tp);
        tg_tensor *h = leaf(dt, 3, S(P(40), 1, 0), NULL, true);
        tg_tensor *hy = tg_broadcast_to(tp, h, 3, S(P(40), P(8), 0));
        CHECK(same_shape(hy, 3, S(P(40), P(8), 0)));
        CHECK(tg_backward(tp, tg_sum(tp, hy, TG_ALL_AXES, false)) == TG_OK);
        tg_tensor *hs = tg_sum_to(tp, hy, 2, S(1, 0));
        CHECK(same_shape(hs, 2, S(1, 0)));
        tg_tape_free(tp);
        drop_all();
    }
}

/* ---- pad ---- */
static void test_pad_values(void)
{
    for (int d = 0; d < 2; d++) {
        tg_dtype dt = d ? TG_F32 : TG_F64;
        int failed_before = check_failed;
        tg_tape *tp = tg_tape_new();
        /* [2,2] with a row before and a column after, value 9 */
        tg_tensor *x = leaf(dt, 2, S(2, 2), V(1, 2, 3, 4), true);
        tg_tensor *y = tg_pad(tp, x, S(1, 0), S(0, 1), 9);
        CHECK(same_shape(y, 2, S(3, 3)) && tg_tensor_dtype(y) == dt);
        EXPECT(y, 9, V(9, 9, 9, 1, 2, 9, 3, 4, 9), 0);
        CHECK(sweep(tp, y) == TG_OK);
        EXPECT(tg_grad(x), 4, V(4, 5, 7, 8), 0);
        tg_tape_reset(tp);
        /* every axis of [1,2,1], both sides: [3,3,2] */
        tg_tensor *z = leaf(dt, 3, S(1, 2, 1), V(5, 6), true);
        tg_tensor *yz = tg_pad(tp, z, S(1, 0, 1), S(1, 1, 0), -1);
        CHECK(same_shape(yz, 3, S(3, 3, 2)));
        EXPECT(yz, 18, V(-1, -1, -1, -1, -1, -1, -1, 5, -1, 6, -1, -1, -1, -1, -1, -1, -1, -1), 0);
        CHECK(sweep(tp, yz) == TG_OK);
        EXPECT(tg_grad(z), 2, V(8, 10), 0);
        tg_tape_reset(tp);
        /* only the middle axis: rows of inner elements */
        tg_tensor *m = leaf(dt, 3, S(2, 1, 2), V(1, 2, 3, 4), true);
        tg_tensor *ym = tg_pad(tp, m, S(0, 1, 0), S(0, 0, 0), 0);
        EXPECT(ym, 8, V(0, 0, 1, 2, 0, 0, 3, 4), 0);
        CHECK(sweep(tp, ym) == TG_OK);
        EXPECT(tg_grad(m), 4, V(3, 4, 7, 8), 0);
        tg_tape_reset(tp);
        /* no padding: a copy, still a node */
        tg_tensor *c = tg_pad(tp, x, S(0, 0), S(0, 0), 3);
        CHECK(same_shape(c, 2, S(2, 2)) && c != x && tg_tape_n_nodes(tp) == 1);
        EXPECT(c, 4, V(1, 2, 3, 4), 0);
        tg_tape_reset(tp);
        /* a 0-d x, NULL sizes */
        tg_tensor *s = leaf(dt, 0, NULL, V(7), true);
        tg_tensor *ys = tg_pad(tp, s, NULL, NULL, 1);
        CHECK(same_shape(ys, 0, NULL));
        EXPECT(ys, 1, V(7), 0);
        CHECK(sweep(tp, ys) == TG_OK);
        EXPECT(tg_grad(s), 1, V(1), 0);
        tg_tape_reset(tp);
        /* an empty x padded along its empty axis: only the border; its gradient is empty */
        tg_tensor *e = leaf(dt, 2, S(0, 2), NULL, true);
        tg_tensor *ye = tg_pad(tp, e, S(1, 0), S(1, 1), 2.5);
        CHECK(same_shape(ye, 2, S(2, 3)));
        EXPECT(ye, 6, V(2.5, 2.5, 2.5, 2.5, 2.5, 2.5), 0);
        CHECK(sweep(tp, ye) == TG_OK && tg_tensor_numel(tg_grad(e)) == 0);
        tg_tape_reset(tp);
        /* huge empty: no loop */
        tg_tensor *h = leaf(dt, 3, S(P(40), 2, 0), NULL, true);
        tg_tensor *yh = tg_pad(tp, h, S(0, 1, 0), S(0, 2, 0), 1);
        CHECK(same_shape(yh, 3, S(P(40), 5, 0)));
        CHECK(tg_backward(tp, tg_sum(tp, yh, TG_ALL_AXES, false)) == TG_OK);
        tg_tape_free(tp);
        if (check_failed > failed_before) printf("  in %s\n", tg_dtype_name(dt));
        drop_all();
    }
}

/* ---- the backwards in ops: tg_gradients through slice, concat, pad, broadcast_to and
 * sum_to, recorded and differentiated again ---- */
static void test_adjoint_gradients(void)
{
    for (int d = 0; d < 2; d++) {
        tg_dtype dt = d ? TG_F32 : TG_F64;
        int failed_before = check_failed;
        tg_tape *tp = tg_tape_new();
        tg_tensor *x = leaf(dt, 2, S(2, 3), V(1, 2, 3, 4, 5, 6), true), *g[2];
        /* slice: the window of the weights, zeros around it (a pad of dy) */
        CHECK(tg_gradients(tp, weighted(tp, tg_slice(tp, x, 1, 1, 3)), NULL, 1, &x, g, 0) == TG_OK);
        EXPECT(g[0], 6, V(0, 1, 2, 0, 3, 4), 0);
        /* concat: each input's window (slices of dy) */
        tg_tensor *b = leaf(dt, 2, S(1, 3), V(7, 8, 9), true), *xs[2] = {x, b};
        CHECK(tg_gradients(tp, weighted(tp, tg_concat(tp, 2, xs, 0)), NULL, 2, xs, g, 0) == TG_OK);
        EXPECT(g[0], 6, V(1, 2, 3, 4, 5, 6), 0);
        EXPECT(g[1], 3, V(7, 8, 9), 0);
        /* pad: the interior of the weights (slices of dy) */
        CHECK(tg_gradients(tp, weighted(tp, tg_pad(tp, x, S(1, 0), S(0, 1), 5)), NULL, 1, &x, g,
                           0) == TG_OK);
        EXPECT(g[0], 6, V(5, 6, 7, 9, 10, 11), 0);
        /* broadcast_to and sum_to: each the other's gradient */
        tg_tensor *r = leaf(dt, 1, S(3), V(1, 2, 3), true);
        CHECK(tg_gradients(tp, weighted(tp, tg_broadcast_to(tp, r, 2, S(2, 3))), NULL, 1, &r, g,
                           0) == TG_OK);
        EXPECT(g[0], 3, V(5, 7, 9), 0);
        CHECK(tg_gradients(tp, weighted(tp, tg_sum_to(tp, x, 2, S(2, 1))), NULL, 1, &x, g, 0) ==
              TG_OK);
        EXPECT(g[0], 6, V(1, 1, 1, 2, 2, 2), 0);
        /* second order: f = Σ (i+1) pad(x)_i² over a broadcast, its Hessian-vector product
         * with v = 1 is 2 Σ of the weights each x element meets, per element of r */
        tg_tape_reset(tp);
        tg_tensor *q = tg_pad(tp, tg_broadcast_to(tp, r, 2, S(2, 3)), S(0, 1), S(0, 0), 0);
        tg_tensor *f = weighted(tp, tg_square(tp, q));
        CHECK(tg_gradients(tp, f, NULL, 1, &r, g, TG_GRAD_RECORD) == TG_OK);
        /* df/dr_j = Σ_rows 2 w r_j: w of q [2,4] at columns j+1: rows 0 and 1 */
        EXPECT(g[0], 3, V(2 * (2 + 6) * 1, 2 * (3 + 7) * 2, 2 * (4 + 8) * 3), 0);
        tg_tensor *s = tg_sum(tp, g[0], TG_ALL_AXES, false);
        CHECK(tg_gradients(tp, s, NULL, 1, &r, g, 0) == TG_OK);
        EXPECT(g[0], 3, V(16, 20, 24), 0);
        tg_tape_free(tp);
        if (check_failed > failed_before) printf("  in %s\n", tg_dtype_name(dt));
        drop_all();
    }
}

/* The allocator of the tape that runs out of memory: nothing above 4 MB. */
static void *capped(void *ctx, void *ptr, size_t size)
{
    (void)ctx;
    if (size == 0) {
        free(ptr);
        return NULL;
    }
    return size > ((size_t)4 << 20) ? NULL : realloc(ptr, size);
}

/* ---- bad inputs: the predicted error, the op named, nothing recorded, the error kept ---- */
static void expect_fail(tg_tape *tp, tg_tensor *y, int code, const char *has, tg_tensor *ok)
{
    CHECK(y == NULL);
    CHECK(tg_tape_errcode(tp) == code);
    CHECK_STR_HAS(tg_tape_error(tp), has);
    CHECK(tg_tape_n_nodes(tp) == 0);
    char first[256];
    snprintf(first, sizeof first, "%s", tg_tape_error(tp));
    CHECK(tg_broadcast_to(tp, ok, 1, S(3)) == NULL && tg_pad(tp, ok, S(0), S(0), 0) == NULL);
    CHECK(tg_sum_to(tp, ok, 1, S(3)) == NULL);
    CHECK(tg_tape_errcode(tp) == code && strcmp(tg_tape_error(tp), first) == 0);
    CHECK(tg_tape_n_nodes(tp) == 0);
    tg_tape_reset(tp);
}

static void test_bad_inputs(void)
{
    tg_tape *tp = tg_tape_new(), *other = tg_tape_new();
    tg_tensor *ok = leaf(TG_F64, 1, S(3), V(1, 2, 3), true);
    tg_tensor *x = leaf(TG_F64, 2, S(2, 3), NULL, true);
    /* NULL tape and NULL input */
    CHECK(tg_broadcast_to(NULL, x, 2, S(2, 3)) == NULL && tg_sum_to(NULL, x, 1, S(3)) == NULL);
    CHECK(tg_pad(NULL, x, S(0, 0), S(0, 0), 0) == NULL);
    expect_fail(tp, tg_broadcast_to(tp, NULL, 1, S(3)), TG_EARG, "tg_broadcast_to: input 0 is NULL",
                ok);
    expect_fail(tp, tg_sum_to(tp, NULL, 1, S(3)), TG_EARG, "tg_sum_to: input 0 is NULL", ok);
    expect_fail(tp, tg_pad(tp, NULL, S(0), S(0), 0), TG_EARG, "tg_pad: input 0 is NULL", ok);
    /* mixed tapes: an output of another tape */
    tg_tensor *o = tg_neg(other, x);
    expect_fail(tp, tg_broadcast_to(tp, o, 2, S(2, 3)), TG_ESTATE,
                "tg_broadcast_to: input 0 belongs to another tape", ok);
    expect_fail(tp, tg_sum_to(tp, o, 1, S(3)), TG_ESTATE,
                "tg_sum_to: input 0 belongs to another tape", ok);
    expect_fail(tp, tg_pad(tp, o, S(0, 0), S(0, 0), 0), TG_ESTATE,
                "tg_pad: input 0 belongs to another tape", ok);
    /* target ranks out of range, NULL shapes, negative sizes */
    expect_fail(tp, tg_broadcast_to(tp, x, -1, S(3)), TG_EARG,
                "tg_broadcast_to: [2,3]: bad target rank -1", ok);
    expect_fail(tp, tg_broadcast_to(tp, x, 7, S(1, 1, 1, 1, 1, 2, 3)), TG_EARG, "bad target rank 7",
                ok);
    expect_fail(tp, tg_broadcast_to(tp, x, 2, NULL), TG_EARG, "bad target rank 2 (shape NULL)", ok);
    expect_fail(tp, tg_sum_to(tp, x, INT_MIN, S(3)), TG_EARG, "tg_sum_to: [2,3]: bad target rank",
                ok);
    expect_fail(tp, tg_sum_to(tp, x, 1, NULL), TG_EARG, "tg_sum_to", ok);
    expect_fail(tp, tg_broadcast_to(tp, x, 2, S(-2, 3)), TG_EARG,
                "tg_broadcast_to: [2,3]: negative target size -2", ok);
    expect_fail(tp, tg_sum_to(tp, x, 1, S(INT64_MIN)), TG_EARG, "tg_sum_to: [2,3]: negative", ok);
    /* shapes that do not broadcast */
    expect_fail(tp, tg_broadcast_to(tp, x, 2, S(4, 3)), TG_ESHAPE,
                "tg_broadcast_to: [2,3] does not broadcast to [4,3]", ok);
    expect_fail(tp, tg_broadcast_to(tp, x, 1, S(3)), TG_ESHAPE,
                "tg_broadcast_to: [2,3] does not broadcast to [3]", ok);
    expect_fail(tp, tg_broadcast_to(tp, x, 0, NULL), TG_ESHAPE, "does not broadcast to []", ok);
    expect_fail(tp, tg_sum_to(tp, x, 1, S(2)), TG_ESHAPE,
                "tg_sum_to: [2,3] to [2]: the target does not broadcast to [2,3]", ok);
    expect_fail(tp, tg_sum_to(tp, x, 3, S(1, 2, 3)), TG_ESHAPE, "tg_sum_to: [2,3] to [1,2,3]", ok);
    expect_fail(tp, tg_sum_to(tp, x, 2, S(2, 0)), TG_ESHAPE, "the target does not broadcast", ok);
    /* past TG_MAX_NUMEL */
    expect_fail(tp, tg_broadcast_to(tp, x, 3, S(P(40), P(40), 3)), TG_ESHAPE,
                "tg_broadcast_to: shape [1099511627776,1099511627776,3] has more than "
                "281474976710656 elements (TG_MAX_NUMEL)",
                ok);
    expect_fail(tp, tg_broadcast_to(tp, x, 3, S(P(49), 0, 3)), TG_ESHAPE, "(TG_MAX_NUMEL)", ok);
    expect_fail(tp, tg_sum_to(tp, x, 2, S(INT64_MAX, 3)), TG_ESHAPE,
                "tg_sum_to: shape [9223372036854775807,3] has more than", ok);
    /* pad: NULL sizes, negative sizes, non-finite values, too large */
    expect_fail(tp, tg_pad(tp, x, NULL, S(0, 0), 0), TG_EARG,
                "tg_pad: [2,3]: the before sizes are NULL", ok);
    expect_fail(tp, tg_pad(tp, x, S(0, 0), NULL, 0), TG_EARG, "the after sizes are NULL", ok);
    expect_fail(tp, tg_pad(tp, x, S(0, -1), S(0, 0), 0), TG_EARG,
                "tg_pad: [2,3]: negative padding -1 before, 0 after axis 1", ok);
    expect_fail(tp, tg_pad(tp, x, S(0, 0), S(INT64_MIN, 0), 0), TG_EARG, "negative padding", ok);
    expect_fail(tp, tg_pad(tp, x, S(0, 0), S(0, 0), (double)NAN), TG_EARG,
                "tg_pad: [2,3]: the padding value nan is not finite", ok);
    expect_fail(tp, tg_pad(tp, x, S(1, 0), S(0, 0), (double)INFINITY), TG_EARG, "not finite", ok);
    expect_fail(tp, tg_pad(tp, x, S(1, 0), S(0, 0), -(double)INFINITY), TG_EARG, "not finite", ok);
    expect_fail(tp, tg_pad(tp, x, S(P(30), 0), S(0, P(30)), 0), TG_ESHAPE,
                "tg_pad: shape [1073741826,1073741827] has more than 281474976710656 elements "
                "(TG_MAX_NUMEL)",
                ok);
    expect_fail(tp, tg_pad(tp, x, S(INT64_MAX, 0), S(INT64_MAX, 0), 0), TG_ESHAPE,
                "tg_pad: shape [9223372036854775807,3] has more than", ok);
    tg_tensor *e = leaf(TG_F64, 2, S(0, 3), NULL, true);
    expect_fail(tp, tg_pad(tp, e, S(0, TG_MAX_NUMEL), S(0, 1), 0), TG_ESHAPE,
                "tg_pad: shape [0,281474976710660]: its non-zero sizes multiply to more than", ok);
    CHECK(tg_pad(tp, e, S(0, P(45)), S(0, 0), 0) != NULL); /* [0, 2^45 + 3]: valid and empty */
    tg_tape_free(tp), tg_tape_free(other);
    /* a valid output too large for memory is TG_ENOMEM naming the op, recording nothing */
    tp = tg_tape_new_with(capped, NULL);
    CHECK(tg_pad(tp, x, S(0, P(40)), S(0, 0), 0) == NULL && tg_tape_errcode(tp) == TG_ENOMEM);
    CHECK_STR_HAS(tg_tape_error(tp), "tg_pad: out of memory");
    CHECK(tg_tape_n_nodes(tp) == 0);
    tg_tape_reset(tp);
    CHECK(tg_broadcast_to(tp, x, 3, S(P(30), 2, 3)) == NULL && tg_tape_errcode(tp) == TG_ENOMEM);
    CHECK_STR_HAS(tg_tape_error(tp), "tg_broadcast_to: out of memory");
    tg_tape_reset(tp);
    CHECK(tg_sum_to(tp, leaf(TG_F64, 2, S(P(30), 0), NULL, true), 2, S(P(30), 1)) == NULL &&
          tg_tape_errcode(tp) == TG_ENOMEM);
    CHECK_STR_HAS(tg_tape_error(tp), "tg_sum_to: out of memory");
    tg_tape_free(tp);
    drop_all();
}

/* The self-check cases of the three ops, and slice and concat (whose backwards in ops are
 * pad and slice), pass first and second order. */
static void test_selfcheck_cases(void)
{
    static const char *const ops[] = {"broadcast_to", "sum_to", "pad", "slice", "concat"};
    int count[5] = {0};
    for (int i = 0; i < tg_selfcheck_count(); i++) {
        const char *what, *op = tg_selfcheck_op(i, &what);
        int k = 0;
        while (k < 5 && strcmp(op, ops[k]) != 0) k++;
        if (k == 5) continue;
        count[k]++;
        tg_selfcheck_result r;
        int rc = tg_selfcheck_run(i, &r);
        bool ok = rc == TG_OK && r.grad.max_rel_err <= 1e-6 && r.grad2.max_rel_err <= 1e-6 &&
                  r.f32_err <= 1e-4;
        if (!ok)
            printf("  case %s (%s): rc %d, %.3g, second order %.3g: %s\n", op, what, rc,
                   r.grad.max_rel_err, r.grad2.max_rel_err, r.grad.msg);
        CHECK(ok);
    }
    for (int k = 0; k < 5; k++) check_case_count(ops[k], count[k], k < 3 ? 7 : 3);
}

static const check_case cases[] = {
    TEST(test_broadcast_to_values), TEST(test_sum_to_long),       TEST(test_broadcast_empty),
    TEST(test_pad_values),          TEST(test_adjoint_gradients), TEST(test_bad_inputs),
    TEST(test_selfcheck_cases),
};
TEST_MAIN("test_ops_shape", cases)
