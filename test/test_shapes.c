/* test/test_shapes.c: extreme shapes through every op, and the tensor functions' NULL and
 * range rules (core.h).
 *
 * The generated test draws shapes from sizes 0, 1, 2, 3, 2^31, 2^40, 2^47, 2^48
 * (TG_MAX_NUMEL), 2^48 + 1, 2^62 and INT64_MAX, axes, bounds and target shapes from
 * extreme and negative values, for every op in ops.def, in f32 and f64, and compares each
 * call with a reference of the op's shape rule written here: a tensor of the predicted
 * shape, or NULL with TG_ESHAPE / TG_EARG and a message naming the op (naming TG_MAX_NUMEL
 * when the limit is the reason), nothing recorded, the first error kept. An output that
 * requires a gradient is swept through a sum: every input gets a gradient of its shape,
 * all zeros when the output is empty. Huge sizes need no memory: a leaf holds at most 32
 * elements (a huge size sits next to a 0), and the tapes' allocator refuses more than 4 MB,
 * so a valid but huge output is a clean TG_ENOMEM. An alarm ends a run that hangs. */
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "tapegrad.h"

#define P(k) ((int64_t)1 << (k))
#define NaN ((double)NAN) /* NAN and INFINITY are floats */
#define INF ((double)INFINITY)
#define S(...) ((const int64_t[]){__VA_ARGS__})

/* ---- the allocator of every tape here: nothing above 4 MB ---- */
#define CAP ((size_t)4 << 20)
#define SMALL ((int64_t)256 << 10) /* output bytes that must succeed under CAP */

static void *capped(void *ctx, void *ptr, size_t size)
{
    (void)ctx;
    if (size == 0) {
        free(ptr);
        return NULL;
    }
    return size > CAP ? NULL : realloc(ptr, size);
}

/* ---- the reference shape rule ---- */
/* numel of a valid shape, -1 for an invalid one (the library's rule, computed another way:
 * in double, exact up to 2^53, and anything above that is above TG_MAX_NUMEL anyway). */
static int64_t ref_numel(int nd, const int64_t *s)
{
    if (nd < 0 || nd > TG_MAX_DIMS) return -1;
    double p = 1;
    bool empty = false;
    for (int i = 0; i < nd; i++) {
        if (s[i] < 0) return -1;
        if (s[i] == 0) empty = true;
        else p *= (double)s[i];
    }
    if (p > (double)TG_MAX_NUMEL) return -1;
    return empty ? 0 : (int64_t)p;
}

static int ref_axis(int axis, int nd)
{
    if (axis < 0) axis += nd;
    return axis >= 0 && axis < nd ? axis : -1;
}

static bool same_dims(int na, const int64_t *a, int nb, const int64_t *b)
{
    if (na != nb) return false;
    for (int i = 0; i < na; i++)
        if (a[i] != b[i]) return false;
    return true;
}

/* ---- random sizes and shapes ---- */
static tg_rng rng;

static const int64_t HUGE_SIZES[] = {P(31), P(40),    P(47), TG_MAX_NUMEL, TG_MAX_NUMEL + 1,
                                     P(62), INT64_MAX};
#define N_HUGE (int)(sizeof HUGE_SIZES / sizeof HUGE_SIZES[0])

static int64_t below(int64_t n) { return (int64_t)tg_rng_below(&rng, (uint64_t)n); }
static bool chance(int percent) { return below(100) < percent; }

static int64_t rand_size(void)
{
    int64_t u = below(20);
    if (u < 8) return 1 + below(3);
    if (u < 12) return 0;
    return HUGE_SIZES[below(N_HUGE)];
}

/* A size for a target shape or a bound: the above, negative ones and INT64_MIN too. */
static int64_t wild_size(void)
{
    static const int64_t more[] = {-1, -1, -2, -P(40), INT64_MIN, 6, 4};
    return chance(75) ? rand_size() : more[below(7)];
}

/* A shape a leaf can have: valid, with at most 32 elements. */
#define LEAF_MAX 32
static bool leafable(int nd, const int64_t *s)
{
    int64_t n = ref_numel(nd, s);
    return n >= 0 && n <= LEAF_MAX;
}

static int rand_leaf_shape(int nd_min, int nd_max, int64_t *s)
{
    for (;;) {
        int nd = nd_min + (int)below(nd_max - nd_min + 1);
        for (int i = 0; i < nd; i++) s[i] = rand_size();
        if (leafable(nd, s)) return nd;
    }
}

/* A shape like s (nd dims): sizes kept, made 1 (to broadcast) or 0, or redrawn; sometimes
 * a leading dimension more or less. Always leafable. */
static int related_shape(int nd, const int64_t *s, int64_t *o)
{
    for (int tries = 0; tries < 100; tries++) {
        int d = nd;
        int64_t u = below(10);
        if (u == 0 && d > 0) d--;
        else if (u == 1 && d < TG_MAX_DIMS) d++;
        for (int i = 0; i < d; i++) {
            int j = i - (d - nd); /* aligned from the right */
            int64_t base = j >= 0 ? s[j] : 1, v = below(10);
            o[i] = v < 6 ? base : v < 8 ? 1 : v < 9 ? 0 : rand_size();
        }
        if (leafable(d, o)) return d;
    }
    return 0;
}

/* Sizes 0, 1 and huge ones, at least one 0: an empty leaf whose other sizes are far beyond
 * any memory. */
static int rand_empty_huge(int nd_min, int nd_max, int64_t *s)
{
    for (;;) {
        int nd = nd_min + (int)below(nd_max - nd_min + 1);
        for (int i = 0; i < nd; i++) s[i] = chance(40) ? 1 : HUGE_SIZES[below(4)];
        if (nd > 0) s[below(nd)] = 0;
        if (leafable(nd, s)) return nd;
    }
}

/* s with its 1s made huge and its huge sizes made 1, some of each: an operand that
 * broadcasts against s into something too large. */
static int cross_shape(int nd, const int64_t *s, int64_t *o)
{
    for (int tries = 0; tries < 100; tries++) {
        for (int i = 0; i < nd; i++)
            o[i] = s[i] == 1 && chance(60)  ? HUGE_SIZES[below(4)]
                   : s[i] > 3 && chance(60) ? 1
                                            : s[i];
        if (leafable(nd, o)) return nd;
    }
    for (int i = 0; i < nd; i++) o[i] = s[i];
    return nd;
}

/* An axis: mostly in range for nd dims, else one of the extremes. */
static int rand_axis(int nd)
{
    static const int wild[] = {INT_MIN, INT_MAX, -7, 7, 6, -1000, TG_ALL_AXES};
    if (nd > 0 && chance(88)) return (int)below(2 * nd) - nd;
    return wild[below(7)];
}

static double pick(const double *v, int n) { return v[below(n)]; }
static const double SCALARS[] = {0, 0.5, 2, -1, 1e308, NaN, INF, -INF};

/* ---- ops, grouped by how they are called ---- */
enum kind {
    K_UNARY,
    K_SCALAR,
    K_DROPOUT,
    K_BINARY,
    K_REDUCE,
    K_RESHAPE,
    K_TRANSPOSE,
    K_SLICE,
    K_CONCAT,
    K_BCAST,
    K_SUM_TO,
    K_PAD,
    K_MATMUL,
    K_MATMUL_T,
    K_LINEAR,
    K_LINEAR_ACT,
    K_PRELU,
    K_SOFTMAX,
    K_PAIR,
    K_EPS,
    K_CE,
    K_CE_SOFT,
    K_BN,
    K_CONV2D,
    K_UNFOLD,
    K_FOLD,
    K_POOL,
    K_CUSTOM
};

typedef tg_tensor *(*fn1)(tg_tape *, tg_tensor *);
typedef tg_tensor *(*fn_s)(tg_tape *, tg_tensor *, double);
typedef tg_tensor *(*fn2)(tg_tape *, tg_tensor *, tg_tensor *);
typedef tg_tensor *(*fn_r)(tg_tape *, tg_tensor *, int, bool);
typedef tg_tensor *(*fn_a)(tg_tape *, tg_tensor *, int);
typedef tg_tensor *(*fn_pool)(tg_tape *, tg_tensor *, const tg_pool2d_opts *);

enum { F_BIG = 1, F_EMPTY = 2, F_NOMEM = 4 }; /* outcomes the generator must reach */

typedef struct driver {
    const char *name; /* tg_op_name's */
    int kind;
    void (*fn)(void); /* cast to the kind's type */
    unsigned want;
} driver;

#define D(name, kind, want)                                                                        \
    {                                                                                              \
#name, kind, (void (*)(void))tg_##name, want                                               \
    }
static const driver drivers[] = {
    D(matmul, K_MATMUL, F_BIG | F_EMPTY | F_NOMEM),
    D(matmul_t, K_MATMUL_T, F_BIG | F_EMPTY | F_NOMEM),
    D(linear, K_LINEAR, F_BIG | F_EMPTY | F_NOMEM),
    D(linear_act, K_LINEAR_ACT, F_BIG | F_EMPTY | F_NOMEM),
    D(add, K_BINARY, F_BIG | F_EMPTY),
    D(sub, K_BINARY, F_BIG | F_EMPTY),
    D(mul, K_BINARY, F_BIG | F_EMPTY),
    D(div, K_BINARY, F_BIG | F_EMPTY),
    D(neg, K_UNARY, F_EMPTY),
    D(add_scalar, K_SCALAR, F_EMPTY),
    D(mul_scalar, K_SCALAR, F_EMPTY),
    D(pow_scalar, K_SCALAR, F_EMPTY),
    D(exp, K_UNARY, F_EMPTY),
    D(log, K_UNARY, F_EMPTY),
    D(sqrt, K_UNARY, F_EMPTY),
    D(abs, K_UNARY, F_EMPTY),
    D(square, K_UNARY, F_EMPTY),
    D(sum, K_REDUCE, F_EMPTY | F_NOMEM),
    D(mean, K_REDUCE, F_EMPTY),
    D(max, K_REDUCE, F_EMPTY),
    D(reshape, K_RESHAPE, F_BIG | F_EMPTY),
    D(transpose, K_TRANSPOSE, F_EMPTY),
    D(slice, K_SLICE, F_EMPTY),
    D(concat, K_CONCAT, F_BIG | F_EMPTY),
    D(pad, K_PAD, F_BIG | F_EMPTY | F_NOMEM),
    D(broadcast_to, K_BCAST, F_BIG | F_EMPTY | F_NOMEM),
    D(sum_to, K_SUM_TO, F_BIG | F_EMPTY | F_NOMEM),
    D(sigmoid, K_UNARY, F_EMPTY),
    D(tanh, K_UNARY, F_EMPTY),
    D(relu, K_UNARY, F_EMPTY),
    D(leaky_relu, K_SCALAR, F_EMPTY),
    D(elu, K_SCALAR, F_EMPTY),
    D(softplus, K_UNARY, F_EMPTY),
    D(prelu, K_PRELU, F_EMPTY),
    D(step, K_UNARY, F_EMPTY),
    D(sign, K_UNARY, F_EMPTY),
    D(softmax, K_SOFTMAX, F_EMPTY),
    D(log_softmax, K_SOFTMAX, F_EMPTY),
    D(mse_loss, K_PAIR, 0),
    D(half_sse_loss, K_PAIR, 0),
    D(l1_loss, K_PAIR, 0),
    D(eps_insensitive_loss, K_EPS, 0),
    D(bce_loss, K_PAIR, 0),
    D(bce_with_logits_loss, K_PAIR, 0),
    D(cross_entropy, K_CE, 0),
    D(cross_entropy_soft, K_CE_SOFT, 0),
    D(kl_div_loss, K_PAIR, 0),
    D(hinge_loss, K_PAIR, 0),
    D(logistic_loss, K_PAIR, 0),
    D(dropout, K_DROPOUT, F_EMPTY),
    D(batch_norm, K_BN, F_EMPTY),
    D(conv2d, K_CONV2D, F_BIG | F_EMPTY | F_NOMEM),
    D(unfold, K_UNFOLD, F_BIG | F_EMPTY | F_NOMEM),
    D(fold, K_FOLD, F_BIG | F_EMPTY | F_NOMEM),
    D(max_pool2d, K_POOL, F_BIG | F_EMPTY),
    D(avg_pool2d, K_POOL, F_BIG | F_EMPTY),
    D(custom, K_CUSTOM, F_BIG | F_EMPTY | F_NOMEM),
};
#define N_DRIVERS (int)(sizeof drivers / sizeof drivers[0])

/* One call: the leaves (in[0..n_op) are the op's tensor inputs; batch_norm's running
 * statistics follow), the scalar arguments, and a target shape. */
typedef struct trial {
    const driver *d;
    tg_dtype dt;
    bool grad_mode;
    int n, n_op;
    tg_tensor *in[8];
    int ia, ib;        /* axes, act, custom's n_in */
    int64_t ja, jb;    /* slice bounds */
    double fa, fb;     /* scalars: c, alpha, p, momentum; eps */
    bool flag;         /* keepdim, training */
    bool null_shape;   /* pass NULL for the target shape */
    bool no_rm, no_rv; /* batch_norm without running statistics */
    int nd;            /* target shape of reshape, broadcast_to, sum_to and custom */
    int64_t s[8];
    int64_t pb[8], pa[8]; /* pad's sizes before and after */
    bool null_pb, null_pa;
} trial;

static tg_tensor *add_leaf(trial *t, int nd, const int64_t *s)
{
    tg_tensor *x = tg_tensor_new(t->dt, nd, s);
    if (!x) {
        printf("  cannot make a leaf of %d dims\n", nd);
        exit(1);
    }
    tg_set_requires_grad(x, chance(50));
    return t->in[t->n++] = x;
}

static tg_tensor *rand_leaf(trial *t, int nd_min, int nd_max)
{
    int64_t s[TG_MAX_DIMS];
    int nd = rand_leaf_shape(nd_min, nd_max, s);
    return add_leaf(t, nd, s);
}

/* A leaf of shape s, or else of a random leafable shape. */
static tg_tensor *leaf_or_rand(trial *t, int nd, const int64_t *s)
{
    return leafable(nd, s) ? add_leaf(t, nd, s) : rand_leaf(t, 1, 3);
}

static const int64_t *shape_of(const tg_tensor *x) { return tg_tensor_shape(x); }
static int nd_of(const tg_tensor *x) { return tg_tensor_ndim(x); }

/* ---- conv2d, unfold, fold: a trial's window options in pb (stride, padding and dilation
 * per axis, then groups; NULL options if null_pb), the kernel in pa[0..1] and fold's output
 * size in pa[2..3]; conv2d passes b if flag ---- */
static const int64_t CONV_WILD[] = {-1,    1 << 17,   P(31),     P(40),
                                    P(48), P(48) + 1, INT64_MAX, INT64_MIN};
static int64_t conv_value(void) { return chance(93) ? below(3) : CONV_WILD[below(8)]; }
static void gen_conv_opts(trial *t)
{
    for (int i = 0; i < 6; i++) t->pb[i] = conv_value();
    t->null_pb = chance(4);
}
static void gen_kernel(trial *t)
{
    for (int i = 0; i < 2; i++) t->pa[i] = chance(92) ? 1 + below(3) : CONV_WILD[below(8)];
}
static const tg_conv2d_opts *conv_opts(const trial *t, tg_conv2d_opts *o)
{
    *o = (tg_conv2d_opts){
        {t->pb[0], t->pb[1]}, {t->pb[2], t->pb[3]}, {t->pb[4], t->pb[5]}, t->pb[6]};
    return t->null_pb ? NULL : o;
}
/* A negative option or one past 2^48 (groups too, for conv2d); the resolved stride,
 * padding and dilation into r[0..5]. */
static bool conv_opts_bad(const trial *t, bool groups, int64_t *r)
{
    for (int i = 0; i < 6; i++) {
        int64_t v = t->null_pb ? 0 : t->pb[i];
        if (v < 0 || v > P(48)) return true;
        r[i] = v == 0 && (i < 2 || i >= 4) ? 1 : v;
    }
    return groups && !t->null_pb && (t->pb[6] < 0 || t->pb[6] > P(48));
}
static bool kernel_bad(int64_t kh, int64_t kw)
{
    return kh < 1 || kw < 1 || kh > P(48) || kw > P(48);
}
/* The window count along an axis, every argument in range: (in + 2p - d(k-1) - 1)/s + 1, or
 * 0 if the window is wider than the padded input. In double first (exact below 2^53, and
 * anything above is wider than the padded input). */
static int64_t windows(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d)
{
    double padded = (double)in + 2.0 * (double)p, span = (double)d * (double)(k - 1) + 1;
    if (span > padded) return 0;
    return (in + 2 * p - (d * (k - 1) + 1)) / s + 1;
}

/* ---- max_pool2d, avg_pool2d: the kernel, stride and padding per axis in pa[0..5] (NULL
 * options if null_pa) ---- */
static const int64_t POOL_WILD[] = {-1, 0, 2, P(31), P(40), P(48), INT64_MAX, INT64_MIN};
static void gen_pool(trial *t)
{
    int64_t s[TG_MAX_DIMS];
    bool grow = chance(20); /* [0,2^47,1,1] with kernel 2, padding 1: an output too large */
    if (grow) add_leaf(t, 4, (rand_empty_huge(4, 4, s), s));
    else if (chance(92)) rand_leaf(t, 4, 4);
    else rand_leaf(t, 3, 5);
    for (int i = 0; i < 2; i++) {
        int64_t k = grow && chance(70) ? 2 : 1 + below(3);
        t->pa[i] = chance(94) ? k : POOL_WILD[below(8)];
        t->pa[2 + i] = chance(94) ? below(3) : POOL_WILD[below(8)];
        t->pa[4 + i] = chance(94) ? below(k / 2 + 1) : POOL_WILD[below(8)];
    }
    t->null_pa = chance(3);
}
static const tg_pool2d_opts *pool_opts(const trial *t, tg_pool2d_opts *o)
{
    *o = (tg_pool2d_opts){{t->pa[0], t->pa[1]}, {t->pa[2], t->pa[3]}, {t->pa[4], t->pa[5]}};
    return t->null_pa ? NULL : o;
}

static void gen(trial *t)
{
    tg_tensor *x;
    int64_t s[TG_MAX_DIMS + 1];
    int nd;
    switch (t->d->kind) {
    case K_UNARY: rand_leaf(t, 0, 4); break;
    case K_SCALAR: rand_leaf(t, 0, 4), t->fa = pick(SCALARS, 8); break;
    case K_DROPOUT: {
        static const double ps[] = {0, 0.25, 0.999, 1, -0.5, NaN, 2};
        rand_leaf(t, 0, 4), t->fa = pick(ps, 7), t->flag = chance(60);
        break;
    }
    case K_BINARY:
    case K_PAIR:
    case K_EPS: {
        bool pair = t->d->kind != K_BINARY;
        if (!pair && chance(25)) { /* [2^40,1,0] and [1,2^40,0] */
            nd = rand_empty_huge(1, 4, s);
            add_leaf(t, nd, s);
            int64_t o[TG_MAX_DIMS];
            add_leaf(t, cross_shape(nd, s, o), o);
            break;
        }
        x = rand_leaf(t, 0, 4);
        if (chance(15)) rand_leaf(t, 0, 4);
        else if (pair && chance(70)) add_leaf(t, nd_of(x), shape_of(x));
        else nd = related_shape(nd_of(x), shape_of(x), s), add_leaf(t, nd, s);
        if (chance(50)) { /* either side may be the broadcast one */
            tg_tensor *tmp = t->in[0];
            t->in[0] = t->in[1], t->in[1] = tmp;
        }
        static const double cs[] = {0, 0.5, -1, NaN, INF};
        t->fa = pick(cs, 5);
        break;
    }
    case K_REDUCE:
        x = rand_leaf(t, 0, 4);
        t->ia = chance(20) ? TG_ALL_AXES : rand_axis(nd_of(x)), t->flag = chance(50);
        break;
    case K_SOFTMAX: x = rand_leaf(t, 0, 4), t->ia = rand_axis(nd_of(x)); break;
    case K_TRANSPOSE:
        x = rand_leaf(t, 0, 5), t->ia = rand_axis(nd_of(x)), t->ib = rand_axis(nd_of(x));
        break;
    case K_RESHAPE: {
        x = rand_leaf(t, 0, 4);
        if (chance(50)) { /* x's sizes shuffled, maybe one -1, maybe a 1 more */
            t->nd = nd_of(x);
            for (int i = 0; i < t->nd; i++) t->s[i] = shape_of(x)[i];
            for (int i = t->nd - 1; i > 0; i--) {
                int j = (int)below(i + 1);
                int64_t v = t->s[i];
                t->s[i] = t->s[j], t->s[j] = v;
            }
            if (t->nd < TG_MAX_DIMS && chance(30)) t->s[t->nd++] = 1;
            if (t->nd > 0 && chance(40)) t->s[below(t->nd)] = -1;
        } else {
            t->nd = chance(90) ? (int)below(5) : chance(50) ? -1 : 7;
            for (int i = 0; i < 8; i++) t->s[i] = wild_size();
        }
        t->null_shape = t->nd > 0 && chance(3);
        break;
    }
    case K_SLICE: {
        x = rand_leaf(t, 0, 4);
        t->ia = rand_axis(nd_of(x));
        int ax = ref_axis(t->ia, nd_of(x));
        int64_t len = ax >= 0 ? shape_of(x)[ax] : 3;
        const int64_t b[] = {len + 1, INT64_MIN, INT64_MAX, P(40), -P(40), -1,
                             -2,      0,         1,         2,     len,    -len};
        /* mostly within [-len, len], where start <= end decides */
        t->ja = chance(80) ? b[5 + below(7)] : b[below(12)];
        t->jb = chance(80) ? b[5 + below(7)] : b[below(12)];
        break;
    }
    case K_CONCAT: {
        int n = chance(4) ? 0 : 1 + (int)below(4);
        x = rand_leaf(t, chance(5) ? 0 : 1, 4);
        t->ia = rand_axis(nd_of(x));
        int ax = ref_axis(t->ia, nd_of(x));
        for (int k = 1; k < n; k++) {
            nd = nd_of(x);
            for (int i = 0; i < nd; i++) s[i] = shape_of(x)[i];
            if (ax >= 0) s[ax] = chance(50) ? rand_size() : HUGE_SIZES[below(4)];
            if (chance(15)) {
                int64_t r[TG_MAX_DIMS];
                nd = related_shape(nd, s, r);
                memcpy(s, r, sizeof r);
            }
            leaf_or_rand(t, nd, s);
        }
        t->ib = n; /* n = 0 passes x all the same */
        break;
    }
    case K_BCAST:
    case K_SUM_TO: {
        x = rand_leaf(t, 0, 4);
        int na = nd_of(x);
        const int64_t *a = shape_of(x);
        if (chance(15)) { /* anything */
            t->nd = chance(90) ? (int)below(5) : chance(50) ? -1 : 7;
            for (int i = 0; i < 8; i++) t->s[i] = wild_size();
        } else if (t->d->kind == K_BCAST) { /* x's 1s grown, leading sizes added */
            t->nd = na + (int)below(TG_MAX_DIMS - na + 1);
            for (int i = 0; i < t->nd; i++) {
                int j = i - (t->nd - na);
                int64_t base = j >= 0 ? a[j] : rand_size();
                t->s[i] = chance(8) ? rand_size() : base == 1 && chance(60) ? rand_size() : base;
            }
        } else { /* leading sizes dropped, others made 1 */
            int drop = (int)below(na + 1);
            t->nd = na - drop;
            for (int i = 0; i < t->nd; i++)
                t->s[i] = chance(8) ? wild_size() : chance(40) ? 1 : a[i + drop];
        }
        t->null_shape = t->nd > 0 && chance(3);
        break;
    }
    case K_PAD: {
        x = rand_leaf(t, 0, 4);
        static const int64_t wild[] = {-1,           -P(40), INT64_MIN, P(31),    P(40),
                                       TG_MAX_NUMEL, P(47),  P(62),     INT64_MAX};
        for (int i = 0; i < nd_of(x); i++) {
            t->pb[i] = chance(92) ? below(3) : wild[below(9)];
            t->pa[i] = chance(92) ? below(3) : wild[below(9)];
        }
        t->null_pb = chance(3), t->null_pa = chance(3);
        t->fa = chance(80) ? 0.5 : pick(SCALARS, 8);
        break;
    }
    case K_MATMUL: {
        x = rand_leaf(t, chance(10) ? 1 : 2, chance(10) ? 4 : 3);
        int na = nd_of(x);
        const int64_t *a = shape_of(x);
        int64_t k = na >= 1 ? a[na - 1] : 1;
        bool batched = chance(50);
        nd = 0;
        if (batched) s[nd++] = na == 3 && chance(80) ? a[0] : rand_size();
        s[nd++] = chance(80) ? k : rand_size();
        s[nd++] = rand_size();
        if (!leafable(nd, s)) s[nd - 1] = 1 + below(2);
        leaf_or_rand(t, nd, s);
        break;
    }
    case K_MATMUL_T: { /* ia: bit 0 ta, bit 1 tb */
        t->ia = (int)below(4);
        bool ta = t->ia & 1, tb = t->ia & 2;
        x = rand_leaf(t, chance(10) ? 1 : 2, chance(10) ? 3 : 2);
        int na = nd_of(x);
        const int64_t *a = shape_of(x);
        int64_t k = na == 2 ? a[ta ? 0 : 1] : 1;
        nd = chance(10) ? 3 : 2;
        for (int i = 0; i < nd; i++) s[i] = rand_size();
        if (nd == 2) s[tb ? 1 : 0] = chance(80) ? k : rand_size();
        if (!leafable(nd, s)) s[tb ? 0 : nd - 1] = 1 + below(2);
        leaf_or_rand(t, nd, s);
        break;
    }
    case K_LINEAR:
    case K_LINEAR_ACT: {
        x = rand_leaf(t, chance(5) ? 0 : 1, 4);
        int nx = nd_of(x);
        int64_t k = nx ? shape_of(x)[nx - 1] : 1, n = rand_size();
        if (!leafable(1, &n)) n = 1 + below(3);
        if (chance(95)) leaf_or_rand(t, 2, S(chance(85) ? k : rand_size(), n));
        else rand_leaf(t, 1, 3);
        leaf_or_rand(t, 1, chance(85) ? S(n) : S(rand_size()));
        static const double alphas[] = {0, 0.1, -0.1, NaN, INF};
        t->ia = chance(90) ? (int)below(5) : chance(50) ? 5 : -1, t->fa = pick(alphas, 5);
        break;
    }
    case K_PRELU: {
        x = rand_leaf(t, 0, 4);
        int64_t last = nd_of(x) ? shape_of(x)[nd_of(x) - 1] : 1;
        int64_t u = below(10);
        if (u < 4) add_leaf(t, 1, S(1));
        else if (u < 8) leaf_or_rand(t, 1, S(last));
        else rand_leaf(t, 0, 2);
        break;
    }
    case K_CE:
    case K_CE_SOFT: {
        x = rand_leaf(t, chance(90) ? 2 : 1, chance(90) ? 2 : 3);
        const int64_t *z = shape_of(x);
        int64_t N = nd_of(x) ? z[0] : 1;
        if (chance(15)) rand_leaf(t, 0, 3);
        else if (t->d->kind == K_CE) leaf_or_rand(t, 1, S(N));
        else add_leaf(t, nd_of(x), z);
        break;
    }
    case K_BN: {
        x = rand_leaf(t, chance(5) ? 1 : 2, 4);
        int64_t C = nd_of(x) >= 2 ? shape_of(x)[1] : 1;
        for (int i = 0; i < 4; i++) { /* gamma, beta, running mean and variance */
            if (chance(88)) leaf_or_rand(t, 1, S(C));
            else rand_leaf(t, 0, 2);
        }
        tg_set_requires_grad(t->in[3], false), tg_set_requires_grad(t->in[4], false);
        t->n_op = 3;
        t->no_rm = chance(25), t->no_rv = chance(25);
        static const double ms[] = {0.1, 0, 1, 1.5, -0.1, NaN}, es[] = {1e-5, 1, 0, -1, NaN, INF};
        t->fa = chance(80) ? 0.1 : pick(ms, 6), t->fb = chance(80) ? 1e-5 : pick(es, 6);
        t->flag = chance(60);
        break;
    }
    case K_CONV2D: {
        x = chance(92) ? rand_leaf(t, 4, 4) : rand_leaf(t, 3, 5);
        gen_conv_opts(t);
        int64_t C = nd_of(x) == 4 ? shape_of(x)[1] : 1, u = below(10);
        int64_t G = u < 5 ? u % 2 : u < 7 ? C : u < 8 ? 2 : u < 9 ? 3 : CONV_WILD[below(8)];
        t->pb[6] = G;
        if (G < 1 || G > 3) G = 1;
        int64_t O = G * (1 + below(2)), Cg = C % G ? C : C / G;
        s[0] = chance(95) ? O : rand_size(), s[1] = chance(95) ? Cg : rand_size();
        s[2] = chance(95) ? 1 + below(3) : 0, s[3] = chance(95) ? 1 + below(3) : 0;
        for (int i = 3; i >= 0 && !leafable(4, s); i--) s[i] = i == 0 ? G : 1;
        if (chance(95)) leaf_or_rand(t, 4, s);
        else rand_leaf(t, 0, 5);
        t->flag = chance(75);
        if (t->flag) leaf_or_rand(t, 1, chance(90) ? S(s[0]) : S(rand_size()));
        break;
    }
    case K_UNFOLD:
        if (chance(92)) rand_leaf(t, 4, 4);
        else rand_leaf(t, 3, 5);
        gen_conv_opts(t), gen_kernel(t);
        t->pb[6] = chance(50) ? below(3) : -5; /* ignored */
        break;
    case K_FOLD: { /* cols of a geometry, sometimes off by one, or anything */
        gen_conv_opts(t), gen_kernel(t);
        for (int i = 2; i < 4; i++) t->pa[i] = chance(90) ? below(5) : CONV_WILD[below(8)];
        if (chance(15)) { /* a huge output from few windows: strides as large as the sizes */
            static const int64_t big[] = {1 << 17, P(31), P(40)};
            for (int i = 0; i < 2; i++) {
                t->pa[2 + i] = chance(70) ? big[below(3)] : 1 + below(3);
                t->pb[i] = t->pa[2 + i], t->pb[2 + i] = 0, t->pa[i] = 1;
            }
            t->null_pb = false;
        }
        int64_t r[6], Ho = 0, Wo = 0;
        if (!conv_opts_bad(t, false, r) && !kernel_bad(t->pa[0], t->pa[1]) && t->pa[2] >= 0 &&
            t->pa[3] >= 0 && t->pa[2] <= P(48) && t->pa[3] <= P(48)) {
            Ho = windows(t->pa[2], t->pa[0], r[0], r[2], r[4]);
            Wo = windows(t->pa[3], t->pa[1], r[1], r[3], r[5]);
        }
        s[0] = rand_size(), s[1] = chance(50) ? 1 : rand_size();
        bool small = Ho > 0 && Wo > 0 && Ho <= 32 && Wo <= 32 && t->pa[0] <= 32 && t->pa[1] <= 32 &&
                     s[1] <= P(48);
        if (small) {
            s[1] *= t->pa[0] * t->pa[1], s[2] = Ho * Wo;
            if (chance(10)) s[1 + below(2)] += chance(50) ? 1 : -1;
        }
        if (small && chance(92) && leafable(3, s)) add_leaf(t, 3, s);
        else rand_leaf(t, chance(90) ? 3 : 2, chance(90) ? 3 : 4);
        break;
    }
    case K_POOL: gen_pool(t); break;
    case K_CUSTOM: {
        int n = 1 + (int)below(3);
        for (int k = 0; k < n; k++) rand_leaf(t, 0, 3);
        t->ia = chance(95) ? n : chance(50) ? 0 : 17;
        t->nd = chance(92) ? (int)below(5) : chance(50) ? -1 : 7;
        for (int i = 0; i < 8; i++) t->s[i] = chance(85) ? rand_size() : wild_size();
        t->null_shape = t->nd > 0 && chance(3);
        break;
    }
    }
    if (t->n_op == 0) t->n_op = t->n;
}

/* The user op of the custom trials: the output is zeros, the backward adds nothing. */
static void zero_fwd(void *ctx, int n_in, const tg_tensor *const *in, tg_tensor *out)
{
    (void)ctx, (void)n_in, (void)in;
    tg_tensor_fill(out, 0);
}
static void zero_bwd(void *ctx, int n_in, const tg_tensor *const *in, const tg_tensor *out,
                     const tg_tensor *dout, tg_tensor *const *din)
{
    (void)ctx, (void)n_in, (void)in, (void)out, (void)dout, (void)din;
}
static const tg_custom_op probe = {"probe", zero_fwd, zero_bwd, NULL};

static tg_tensor *run(tg_tape *tp, const trial *t)
{
    tg_tensor *const *in = t->in;
    const int64_t *target = t->null_shape ? NULL : t->s;
    switch (t->d->kind) {
    case K_UNARY: return ((fn1)t->d->fn)(tp, in[0]);
    case K_SCALAR: return ((fn_s)t->d->fn)(tp, in[0], t->fa);
    case K_DROPOUT: return tg_dropout(tp, in[0], t->fa, t->flag);
    case K_BINARY:
    case K_PAIR: return ((fn2)t->d->fn)(tp, in[0], in[1]);
    case K_EPS: return tg_eps_insensitive_loss(tp, in[0], in[1], t->fa);
    case K_REDUCE: return ((fn_r)t->d->fn)(tp, in[0], t->ia, t->flag);
    case K_SOFTMAX: return ((fn_a)t->d->fn)(tp, in[0], t->ia);
    case K_TRANSPOSE: return tg_transpose(tp, in[0], t->ia, t->ib);
    case K_RESHAPE: return tg_reshape(tp, in[0], t->nd, target);
    case K_SLICE: return tg_slice(tp, in[0], t->ia, t->ja, t->jb);
    case K_CONCAT: return tg_concat(tp, t->ib, in, t->ia);
    case K_BCAST: return tg_broadcast_to(tp, in[0], t->nd, target);
    case K_SUM_TO: return tg_sum_to(tp, in[0], t->nd, target);
    case K_PAD:
        return tg_pad(tp, in[0], t->null_pb ? NULL : t->pb, t->null_pa ? NULL : t->pa, t->fa);
    case K_MATMUL: return tg_matmul(tp, in[0], in[1]);
    case K_MATMUL_T: return tg_matmul_t(tp, in[0], in[1], t->ia & 1, t->ia & 2);
    case K_LINEAR: return tg_linear(tp, in[0], in[1], in[2]);
    case K_LINEAR_ACT: return tg_linear_act(tp, in[0], in[1], in[2], (tg_act)t->ia, t->fa);
    case K_PRELU: return tg_prelu(tp, in[0], in[1]);
    case K_CE:
    case K_CE_SOFT: return ((fn2)t->d->fn)(tp, in[0], in[1]);
    case K_BN:
        return tg_batch_norm(tp, in[0], in[1], in[2], t->no_rm ? NULL : in[3],
                             t->no_rv ? NULL : in[4], t->fa, t->fb, t->flag);
    case K_CONV2D: {
        tg_conv2d_opts o;
        return tg_conv2d(tp, in[0], in[1], t->flag ? in[2] : NULL, conv_opts(t, &o));
    }
    case K_UNFOLD: {
        tg_conv2d_opts o;
        return tg_unfold(tp, in[0], t->pa[0], t->pa[1], conv_opts(t, &o));
    }
    case K_FOLD: {
        tg_conv2d_opts o;
        return tg_fold(tp, in[0], t->pa[2], t->pa[3], t->pa[0], t->pa[1], conv_opts(t, &o));
    }
    case K_POOL: {
        tg_pool2d_opts o;
        return ((fn_pool)t->d->fn)(tp, in[0], pool_opts(t, &o));
    }
    default: {
        tg_tensor *many[17];
        for (int i = 0; i < 17; i++) many[i] = in[i < t->n ? i : 0];
        return tg_custom(tp, &probe, NULL, t->ia, many, t->nd, target);
    }
    }
}

/* What the reference predicts. */
typedef struct expect {
    int code;     /* TG_OK, TG_ESHAPE or TG_EARG */
    bool too_big; /* TG_ESHAPE because of TG_MAX_NUMEL */
    bool same;    /* the op returns in[0] itself */
    int nd;
    int64_t s[TG_MAX_DIMS];
} expect;

static int fail_with(expect *e, int code) { return e->code = code; }
static int out(expect *e, int nd, const int64_t *s)
{
    e->nd = nd;
    for (int i = 0; i < nd; i++) e->s[i] = s[i];
    if (ref_numel(nd, s) < 0) e->code = TG_ESHAPE, e->too_big = true;
    return e->code;
}

/* The reference: fills *e (and returns its code). */
static int ref(const trial *t, expect *e)
{
    tg_tensor *const *in = t->in;
    const int64_t *a = shape_of(in[0]), *b = t->n > 1 ? shape_of(in[1]) : NULL;
    int na = nd_of(in[0]), nb = t->n > 1 ? nd_of(in[1]) : 0;
    int64_t s[TG_MAX_DIMS], numel = tg_tensor_numel(in[0]);
    memset(e, 0, sizeof *e);
    switch (t->d->kind) {
    case K_UNARY: return out(e, na, a);
    case K_SCALAR:
        if (!isfinite(t->fa)) return fail_with(e, TG_EARG);
        return out(e, na, a);
    case K_DROPOUT:
        if (!(t->fa >= 0 && t->fa < 1)) return fail_with(e, TG_EARG);
        e->same = !t->flag || t->fa == 0;
        return out(e, na, a);
    case K_BINARY: {
        int n = na > nb ? na : nb;
        for (int i = 0; i < n; i++) {
            int64_t da = i < n - na ? 1 : a[i - (n - na)], db = i < n - nb ? 1 : b[i - (n - nb)];
            if (da != db && da != 1 && db != 1) return fail_with(e, TG_ESHAPE);
            s[i] = da == 1 ? db : da;
        }
        return out(e, n, s);
    }
    case K_PAIR:
    case K_EPS:
        if (!same_dims(na, a, nb, b) || numel == 0) return fail_with(e, TG_ESHAPE);
        if (t->d->kind == K_EPS && !(t->fa >= 0 && isfinite(t->fa))) return fail_with(e, TG_EARG);
        return out(e, 0, NULL);
    case K_REDUCE: {
        int64_t len;
        int n = 0;
        if (t->ia == TG_ALL_AXES) {
            len = numel;
            for (int i = 0; t->flag && i < na; i++) s[n++] = 1;
        } else {
            int ax = ref_axis(t->ia, na);
            if (ax < 0) return fail_with(e, TG_EARG);
            len = a[ax];
            for (int i = 0; i < na; i++)
                if (i != ax) s[n++] = a[i];
                else if (t->flag) s[n++] = 1;
        }
        if (len == 0 && strcmp(t->d->name, "sum") != 0) return fail_with(e, TG_ESHAPE);
        return out(e, n, s);
    }
    case K_SOFTMAX:
        if (ref_axis(t->ia, na) < 0) return fail_with(e, TG_EARG);
        return out(e, na, a);
    case K_TRANSPOSE: {
        int p = ref_axis(t->ia, na), q = ref_axis(t->ib, na);
        if (p < 0 || q < 0) return fail_with(e, TG_EARG);
        for (int i = 0; i < na; i++) s[i] = a[i];
        s[p] = a[q], s[q] = a[p];
        return out(e, na, s);
    }
    case K_RESHAPE: {
        if (t->nd < 0 || t->nd > TG_MAX_DIMS || (t->nd > 0 && t->null_shape))
            return fail_with(e, TG_EARG);
        int infer = -1;
        for (int i = 0; i < t->nd; i++) {
            s[i] = t->s[i];
            if (s[i] == -1 && infer < 0) infer = i, s[i] = 1;
            else if (s[i] < 0) return fail_with(e, TG_EARG);
        }
        int64_t known = ref_numel(t->nd, s);
        if (known < 0) return e->too_big = true, fail_with(e, TG_ESHAPE);
        if (infer >= 0 && known == 0) return fail_with(e, TG_ESHAPE);
        if (infer < 0 ? known != numel : numel % known != 0) return fail_with(e, TG_ESHAPE);
        if (infer >= 0) s[infer] = numel / known;
        return out(e, t->nd, s);
    }
    case K_SLICE: {
        int ax = ref_axis(t->ia, na);
        if (ax < 0) return fail_with(e, TG_EARG);
        int64_t len = a[ax];
        int64_t st = t->ja < 0 ? t->ja + len : t->ja, en = t->jb < 0 ? t->jb + len : t->jb;
        if (st < 0 || en > len || st > en) return fail_with(e, TG_EARG);
        for (int i = 0; i < na; i++) s[i] = i == ax ? en - st : a[i];
        return out(e, na, s);
    }
    case K_CONCAT: {
        if (t->ib < 1) return fail_with(e, TG_EARG);
        int ax = ref_axis(t->ia, na);
        if (ax < 0) return fail_with(e, TG_EARG);
        int64_t total = 0;
        for (int k = 0; k < t->ib; k++) {
            const int64_t *sk = shape_of(in[k]);
            bool ok = nd_of(in[k]) == na;
            for (int i = 0; ok && i < na; i++) ok = i == ax || sk[i] == a[i];
            if (!ok) return fail_with(e, TG_ESHAPE);
            if ((total += sk[ax]) > TG_MAX_NUMEL) return e->too_big = true, fail_with(e, TG_ESHAPE);
        }
        for (int i = 0; i < na; i++) s[i] = i == ax ? total : a[i];
        return out(e, na, s);
    }
    case K_BCAST:
    case K_SUM_TO: {
        if (t->nd < 0 || t->nd > TG_MAX_DIMS || (t->nd > 0 && t->null_shape))
            return fail_with(e, TG_EARG);
        for (int i = 0; i < t->nd; i++)
            if (t->s[i] < 0) return fail_with(e, TG_EARG);
        if (ref_numel(t->nd, t->s) < 0) return e->too_big = true, fail_with(e, TG_ESHAPE);
        /* the small shape, aligned from the right, has each size equal to the big one's or 1 */
        bool up = t->d->kind == K_BCAST;
        int ns = up ? na : t->nd, nbig = up ? t->nd : na;
        const int64_t *small = up ? a : t->s, *big = up ? t->s : a;
        if (ns > nbig) return fail_with(e, TG_ESHAPE);
        for (int i = 0; i < ns; i++)
            if (small[i] != 1 && small[i] != big[i + nbig - ns]) return fail_with(e, TG_ESHAPE);
        return out(e, t->nd, t->s);
    }
    case K_PAD:
        if (na > 0 && (t->null_pb || t->null_pa)) return fail_with(e, TG_EARG);
        for (int i = 0; i < na; i++) {
            if (t->pb[i] < 0 || t->pa[i] < 0) return fail_with(e, TG_EARG);
            /* in double: anything past 2^63 is far past TG_MAX_NUMEL */
            double v = (double)a[i] + (double)t->pb[i] + (double)t->pa[i];
            s[i] = v >= 0x1p63 ? INT64_MAX : a[i] + t->pb[i] + t->pa[i];
        }
        if (!isfinite(t->fa)) return fail_with(e, TG_EARG);
        return out(e, na, s);
    case K_MATMUL: {
        if (na < 2 || na > 3 || nb < 2 || nb > 3) return fail_with(e, TG_ESHAPE);
        if (a[na - 1] != b[nb - 2]) return fail_with(e, TG_ESHAPE);
        if (na == 3 && nb == 3 && a[0] != b[0]) return fail_with(e, TG_ESHAPE);
        int n = 0;
        if (na == 3 || nb == 3) s[n++] = na == 3 ? a[0] : b[0];
        s[n++] = a[na - 2], s[n++] = b[nb - 1];
        return out(e, n, s);
    }
    case K_MATMUL_T: {
        bool ta = t->ia & 1, tb = t->ia & 2;
        if (na != 2 || nb != 2 || a[ta ? 0 : 1] != b[tb ? 1 : 0]) return fail_with(e, TG_ESHAPE);
        s[0] = a[ta ? 1 : 0], s[1] = b[tb ? 0 : 1];
        return out(e, 2, s);
    }
    case K_LINEAR:
    case K_LINEAR_ACT: {
        if (t->d->kind == K_LINEAR_ACT) {
            if (t->ia < 0 || t->ia > TG_ACT_SIGMOID) return fail_with(e, TG_EARG);
            if (t->ia == TG_ACT_LEAKY_RELU && !(t->fa >= 0 && isfinite(t->fa)))
                return fail_with(e, TG_EARG);
        }
        const int64_t *c = shape_of(in[2]);
        if (na < 1 || nb != 2 || nd_of(in[2]) != 1 || a[na - 1] != b[0] || c[0] != b[1])
            return fail_with(e, TG_ESHAPE);
        for (int i = 0; i < na - 1; i++) s[i] = a[i];
        s[na - 1] = b[1];
        return out(e, na, s);
    }
    case K_PRELU: {
        int64_t last = na ? a[na - 1] : 1;
        if (nb != 1 || (b[0] != 1 && b[0] != last)) return fail_with(e, TG_ESHAPE);
        return out(e, na, a);
    }
    case K_CE:
    case K_CE_SOFT: {
        bool ok = na == 2 && a[0] > 0 && a[1] > 0;
        if (t->d->kind == K_CE) ok = ok && nb == 1 && b[0] == a[0];
        else ok = ok && same_dims(na, a, nb, b);
        if (!ok) return fail_with(e, TG_ESHAPE);
        return out(e, 0, NULL);
    }
    case K_BN: {
        int64_t C = na >= 2 ? a[1] : 0;
        bool vec[4];
        for (int i = 0; i < 4; i++) vec[i] = nd_of(in[i + 1]) == 1 && shape_of(in[i + 1])[0] == C;
        if (na < 2 || !vec[0] || !vec[1]) return fail_with(e, TG_ESHAPE);
        if ((!t->no_rm && !vec[2]) || (!t->no_rv && !vec[3])) return fail_with(e, TG_ESHAPE);
        if (!(t->fb > 0 && isfinite(t->fb)) || !(t->fa >= 0 && t->fa <= 1))
            return fail_with(e, TG_EARG);
        if (!t->flag && (t->no_rm || t->no_rv)) return fail_with(e, TG_EARG);
        int64_t MR = a[0]; /* N times the trailing sizes */
        for (int i = 2; i < na; i++) MR *= a[i];
        if (t->flag && C > 0 && MR < 2) return fail_with(e, TG_ESHAPE);
        return out(e, na, a); /* running variances are zeros: never negative */
    }
    case K_CONV2D: {
        int64_t r[6];
        if (na != 4 || nb != 4 || (t->flag && nd_of(in[2]) != 1)) return fail_with(e, TG_ESHAPE);
        if (conv_opts_bad(t, true, r)) return fail_with(e, TG_EARG);
        int64_t G = t->null_pb || t->pb[6] == 0 ? 1 : t->pb[6], C = a[1], O = b[0];
        if (b[2] < 1 || b[3] < 1 || C % G || O % G || b[1] != C / G) return fail_with(e, TG_ESHAPE);
        if (t->flag && shape_of(in[2])[0] != O) return fail_with(e, TG_ESHAPE);
        int64_t Ho = windows(a[2], b[2], r[0], r[2], r[4]),
                Wo = windows(a[3], b[3], r[1], r[3], r[5]);
        if (!Ho || !Wo) return fail_with(e, TG_ESHAPE);
        s[0] = a[0], s[1] = O, s[2] = Ho, s[3] = Wo;
        return out(e, 4, s);
    }
    case K_UNFOLD: {
        int64_t r[6], kh = t->pa[0], kw = t->pa[1];
        if (na != 4) return fail_with(e, TG_ESHAPE);
        if (conv_opts_bad(t, false, r) || kernel_bad(kh, kw)) return fail_with(e, TG_EARG);
        int64_t Ho = windows(a[2], kh, r[0], r[2], r[4]), Wo = windows(a[3], kw, r[1], r[3], r[5]);
        if (!Ho || !Wo) return fail_with(e, TG_ESHAPE);
        const int64_t all[6] = {a[0], a[1], kh, kw, Ho, Wo};
        if (ref_numel(6, all) < 0) return e->too_big = true, fail_with(e, TG_ESHAPE);
        s[0] = a[0], s[1] = a[1] * kh * kw, s[2] = Ho * Wo;
        return out(e, 3, s);
    }
    case K_FOLD: {
        int64_t r[6], kh = t->pa[0], kw = t->pa[1], H = t->pa[2], W = t->pa[3];
        if (na != 3) return fail_with(e, TG_ESHAPE);
        if (conv_opts_bad(t, false, r) || kernel_bad(kh, kw)) return fail_with(e, TG_EARG);
        if (H < 0 || W < 0 || H > P(48) || W > P(48)) return fail_with(e, TG_EARG);
        int64_t CK = a[1];
        if (CK > 0 && ((double)kh * (double)kw > (double)CK || CK % (kh * kw)))
            return fail_with(e, TG_ESHAPE);
        int64_t Ho = windows(H, kh, r[0], r[2], r[4]), Wo = windows(W, kw, r[1], r[3], r[5]);
        if (!Ho || !Wo || (double)Ho * (double)Wo != (double)a[2]) return fail_with(e, TG_ESHAPE);
        s[0] = a[0], s[1] = CK ? CK / (kh * kw) : 0, s[2] = H, s[3] = W;
        return out(e, 4, s);
    }
    case K_POOL: {
        if (na != 4) return fail_with(e, TG_ESHAPE);
        if (t->null_pa) return fail_with(e, TG_EARG);
        for (int i = 0; i < 2; i++) {
            int64_t k = t->pa[i], st = t->pa[2 + i], p = t->pa[4 + i];
            if (k < 1 || st < 0 || p < 0 || p > k / 2) return fail_with(e, TG_EARG);
        }
        if (a[2] == 0 || a[3] == 0) return fail_with(e, TG_ESHAPE);
        s[0] = a[0], s[1] = a[1];
        for (int i = 0; i < 2; i++) { /* (in + 2p - k) / stride + 1, at least 1 */
            int64_t k = t->pa[i], st = t->pa[2 + i] ? t->pa[2 + i] : k, p = t->pa[4 + i];
            if (a[2 + i] < k - 2 * p) return fail_with(e, TG_ESHAPE);
            s[2 + i] = (a[2 + i] - (k - 2 * p)) / st + 1;
        }
        return out(e, 4, s);
    }
    default: /* custom */
        if (t->ia < 1 || t->ia > 16 || t->nd < 0 || t->nd > TG_MAX_DIMS ||
            (t->nd > 0 && t->null_shape))
            return fail_with(e, TG_EARG);
        for (int i = 0; i < t->nd; i++)
            if (t->s[i] < 0) return fail_with(e, TG_EARG);
        return out(e, t->nd, t->s);
    }
}

/* ---- running and judging one trial ---- */
typedef struct tally {
    int trials, ok, ok_empty, too_big, eshape, earg, enomem, bad;
} tally;

static void describe(const trial *t, const char *why, const char *msg)
{
    char buf[160];
    printf("  %s (%s): %s\n    inputs", t->d->name, tg_dtype_name(t->dt), why);
    for (int i = 0; i < t->n; i++) printf(" %s", tg_shape_str(t->in[i], buf, sizeof buf));
    printf("\n    ia %d ib %d ja %lld jb %lld fa %g fb %g flag %d nd %d s [", t->ia, t->ib,
           (long long)t->ja, (long long)t->jb, t->fa, t->fb, t->flag, t->nd);
    for (int i = 0; i < (t->nd > 0 && t->nd <= 8 ? t->nd : 0); i++)
        printf("%s%lld", i ? "," : "", (long long)t->s[i]);
    printf("]%s; tape: \"%s\"\n", t->null_shape ? " (NULL)" : "", msg ? msg : "");
}

/* The message names the op: "tg_<name>:" or "tg_<name>(". */
static bool names_op(const char *msg, const char *name)
{
    size_t n = strlen(name);
    return strncmp(msg, "tg_", 3) == 0 && strncmp(msg + 3, name, n) == 0 &&
           (msg[3 + n] == ':' || msg[3 + n] == '(');
}

static bool all_zero(const tg_tensor *g)
{
    for (int64_t i = 0; i < tg_tensor_numel(g); i++)
        if (tg_get(g, i) != 0) return false;
    return true;
}

#define BAD(why)                                                                                   \
    do {                                                                                           \
        if (ty->bad++ < 5) describe(t, why, tg_tape_error(tp));                                    \
        goto done;                                                                                 \
    } while (0)

static void judge(trial *t, tally *ty)
{
    expect e;
    ref(t, &e);
    tg_tape *tp = tg_tape_new_with(capped, NULL);
    tg_tape_set_grad_mode(tp, t->grad_mode);
    tg_tensor *y = run(tp, t);
    int code = tg_tape_errcode(tp);
    const char *msg = tg_tape_error(tp);
    double bytes = e.code ? 0 : (double)ref_numel(e.nd, e.s) * (double)tg_dtype_size(t->dt);
    bool records = false;
    for (int i = 0; i < t->n_op; i++) records |= t->grad_mode && tg_requires_grad(t->in[i]);
    ty->trials++;
    if (e.code == TG_OK && !y) {
        if (code != TG_ENOMEM || bytes <= (double)SMALL) BAD("want a tensor");
        if (!names_op(msg, t->d->name) || !strstr(msg, "out of memory")) BAD("ENOMEM message");
        ty->enomem++;
        goto done;
    }
    if (e.code == TG_OK) {
        if (code != TG_OK) BAD("an error with a tensor");
        if (e.same && y != t->in[0]) BAD("want the input itself");
        if (!same_dims(nd_of(y), shape_of(y), e.nd, e.s)) BAD("wrong output shape");
        if (tg_tensor_numel(y) != ref_numel(e.nd, e.s) || tg_tensor_dtype(y) != t->dt)
            BAD("wrong numel or dtype");
        if (tg_tape_n_nodes(tp) != (records && !e.same)) BAD("wrong node count");
        bool empty = tg_tensor_numel(y) == 0;
        ty->ok++, ty->ok_empty += empty;
        /* sum over an empty axis, or a product with inner size 0: zeros */
        bool zeros = !empty && tg_tensor_numel(t->in[0]) == 0 &&
                     (t->d->kind == K_REDUCE || t->d->kind == K_MATMUL ||
                      t->d->kind == K_MATMUL_T || t->d->kind == K_SUM_TO);
        if (zeros && !all_zero(y)) BAD("want zeros");
        if (!t->grad_mode || !tg_requires_grad(y)) goto done;
        int rc = tg_backward(tp, tg_sum(tp, y, TG_ALL_AXES, false));
        if (rc == TG_ENOMEM && bytes > (double)SMALL) goto done;
        if (rc != TG_OK) BAD("backward failed");
        for (int i = 0; i < t->n_op; i++) {
            if (!tg_requires_grad(t->in[i])) continue;
            tg_tensor *g = tg_grad(t->in[i]);
            if (!g || tg_tensor_numel(g) != tg_tensor_numel(t->in[i])) BAD("no input gradient");
            if (empty && !all_zero(g)) BAD("an empty output gave a non-zero gradient");
        }
        goto done;
    }
    /* an error: the predicted code, the op named, nothing recorded, and it sticks */
    if (y || code != e.code) BAD("want the predicted error");
    if (!names_op(msg, t->d->name)) BAD("the message does not name the op");
    if (e.too_big != (strstr(msg, "TG_MAX_NUMEL") != NULL)) BAD("TG_MAX_NUMEL named or not");
    if (tg_tape_n_nodes(tp) != 0) BAD("a failed op recorded a node");
    char first[256];
    snprintf(first, sizeof first, "%s", msg);
    if (tg_neg(tp, t->in[0]) != NULL || tg_tape_errcode(tp) != code ||
        strcmp(tg_tape_error(tp), first) != 0 || tg_backward(tp, t->in[0]) != code)
        BAD("the first error did not stick");
    if (e.too_big) ty->too_big++;
    else if (code == TG_ESHAPE) ty->eshape++;
    else ty->earg++;
done:
    tg_tape_free(tp);
    for (int i = 0; i < t->n; i++) tg_tensor_free(t->in[i]);
}

#define TRIALS 2000 /* per op and dtype */

static void test_generated_shapes(void)
{
    alarm(900); /* a hang (2^40 iterations of nothing) fails the run instead of blocking it */
    tg_rng_seed(&rng, 20261130);
    for (int k = 0; k < N_DRIVERS; k++) {
        const driver *d = &drivers[k];
        for (int dt = TG_F32; dt <= TG_F64; dt++) {
            tally ty = {0};
            for (int i = 0; i < TRIALS; i++) {
                trial t = {.d = d, .dt = (tg_dtype)dt, .grad_mode = chance(90)};
                gen(&t);
                judge(&t, &ty);
            }
            bool reached = ty.ok > 0 && (!(d->want & F_EMPTY) || ty.ok_empty > 0) &&
                           (!(d->want & F_BIG) || ty.too_big > 0) &&
                           (!(d->want & F_NOMEM) || ty.enomem > 0);
            if (ty.bad || !reached || getenv("TG_SHAPES_VERBOSE"))
                printf("  %-21s %s: %d trials: %d ok (%d empty), %d too big, %d other ESHAPE, "
                       "%d EARG, %d ENOMEM, %d wrong\n",
                       d->name, tg_dtype_name((tg_dtype)dt), ty.trials, ty.ok, ty.ok_empty,
                       ty.too_big, ty.eshape, ty.earg, ty.enomem, ty.bad);
            CHECK(ty.bad == 0);
            CHECK(reached);
        }
    }
}

/* Every op of the table has a driver above. */
static void test_every_op_generated(void)
{
    int n = tg_op_count();
    CHECK(n == N_DRIVERS);
    for (int k = 0; k < n; k++) {
        bool found = false;
        for (int i = 0; i < N_DRIVERS; i++) found |= strcmp(drivers[i].name, tg_op_name(k)) == 0;
        if (!found) printf("  op %s has no shape driver\n", tg_op_name(k));
        CHECK(found);
    }
}

/* ---- leaves: tg_tensor_new against the reference, exhaustively over 0..3 dimensions ---- */
static void test_leaf_shapes(void)
{
    static const int64_t pool[] = {
        0,     1,         2,  3,      P(24),    P(31), P(40), P(47), TG_MAX_NUMEL, TG_MAX_NUMEL + 1,
        P(62), INT64_MAX, -1, -P(40), INT64_MIN};
    const int np = (int)(sizeof pool / sizeof pool[0]);
    int wrong = 0, made = 0, refused = 0;
    for (int nd = 0; nd <= 4; nd++) {
        int total = 1;
        for (int i = 0; i < nd; i++) total *= np;
        for (int c = 0; c < total; c++) {
            int64_t s[4];
            for (int i = 0, r = c; i < nd; i++, r /= np) s[i] = pool[r % np];
            int64_t want = ref_numel(nd, s);
            if (want > 64) continue; /* valid, but it would take memory */
            for (int dt = TG_F32; dt <= TG_F64; dt++) {
                double data[64] = {0};
                tg_tensor *a = tg_tensor_new((tg_dtype)dt, nd, s);
                tg_tensor *b = tg_tensor_from((tg_dtype)dt, nd, s, data);
                bool ok = want < 0 ? !a && !b
                                   : a && b && tg_tensor_numel(a) == want &&
                                         same_dims(tg_tensor_ndim(a), tg_tensor_shape(a), nd, s);
                if (!ok && wrong++ < 5)
                    printf("  leaf of %d dims, #%d: want numel %lld\n", nd, c, (long long)want);
                made += a != NULL, refused += a == NULL;
                tg_tensor_free(a), tg_tensor_free(b);
            }
        }
    }
    CHECK(wrong == 0);
    CHECK(made > 1000 && refused > 1000);
    /* the limit itself, and one past it */
    tg_tensor *t = tg_tensor_new(TG_F32, 3, S(P(24), P(24), 0));
    CHECK(t && tg_tensor_numel(t) == 0);
    tg_tensor_free(t);
    CHECK(tg_tensor_new(TG_F32, 3, S(P(24), P(24) + 1, 0)) == NULL);
    t = tg_tensor_new(TG_F64, 2, S(0, TG_MAX_NUMEL));
    CHECK(t != NULL);
    tg_tensor_free(t);
    CHECK(tg_tensor_new(TG_F64, 2, S(0, TG_MAX_NUMEL + 1)) == NULL);
    CHECK(tg_tensor_new(TG_F32, 3, S(P(40), P(40), 0)) == NULL); /* the issue's [2^40,2^40,0] */
    CHECK(tg_tensor_new(TG_F32, 7, S(1, 1, 1, 1, 1, 1, 1)) == NULL);
    CHECK(tg_tensor_new(TG_F32, -1, S(1)) == NULL);
    CHECK(tg_tensor_new(TG_F32, 2, NULL) == NULL);
}

/* ---- the issue's cases, and loops over empty tensors with huge sizes ---- */
static tg_tape *capped_tape(void) { return tg_tape_new_with(capped, NULL); }

static tg_tensor *gleaf(tg_dtype dt, int nd, const int64_t *s)
{
    tg_tensor *t = tg_tensor_new(dt, nd, s);
    tg_set_requires_grad(t, true);
    return t;
}

static void test_issue_cases(void)
{
    for (int dt = TG_F32; dt <= TG_F64; dt++) {
        tg_tape *tp = capped_tape();
        tg_tensor *a = gleaf((tg_dtype)dt, 3, S(P(40), 1, 0));
        tg_tensor *b = gleaf((tg_dtype)dt, 3, S(1, P(40), 0));
        CHECK(a && b && tg_add(tp, a, b) == NULL && tg_tape_errcode(tp) == TG_ESHAPE);
        CHECK_STR_HAS(tg_tape_error(tp), "tg_add: shape [1099511627776,1099511627776,0]: its "
                                         "non-zero sizes multiply to more than 281474976710656 "
                                         "(TG_MAX_NUMEL)");
        CHECK(tg_tape_n_nodes(tp) == 0);
        tg_tape_reset(tp);

        tg_tensor *x = gleaf((tg_dtype)dt, 1, S(2));
        CHECK(tg_reshape(tp, x, 2, S(3, 6148914691236517206)) == NULL);
        CHECK(tg_tape_errcode(tp) == TG_ESHAPE);
        CHECK_STR_HAS(tg_tape_error(tp), "tg_reshape: [2] to [3,6148914691236517206]: the "
                                         "target's non-zero sizes multiply to more than");
        tg_tape_reset(tp);
        CHECK(tg_reshape(tp, x, 2, S(0, -1)) == NULL && tg_tape_errcode(tp) == TG_ESHAPE);
        tg_tape_reset(tp);
        CHECK(tg_custom(tp, &probe, NULL, 1, &x, 2, S(P(32), P(32))) == NULL);
        CHECK_STR_HAS(tg_tape_error(tp), "tg_custom(probe): shape [4294967296,4294967296] has "
                                         "more than 281474976710656 elements (TG_MAX_NUMEL)");
        tg_tape_reset(tp);
        CHECK(tg_custom(tp, NULL, NULL, 1, &x, 0, NULL) == NULL && tg_tape_errcode(tp) == TG_EARG);
        tg_tape_reset(tp);

        /* concat: the sizes along the axis add up past the limit, also over 65535 inputs */
        tg_tensor *c = gleaf((tg_dtype)dt, 2, S(P(47), 0));
        tg_tensor *cs[3] = {c, c, c};
        CHECK(tg_concat(tp, 2, cs, 0) != NULL); /* 2^48: at the limit */
        CHECK(tg_concat(tp, 3, cs, 0) == NULL && tg_tape_errcode(tp) == TG_ESHAPE);
        CHECK_STR_HAS(tg_tape_error(tp), "tg_concat: [140737488355328,0], [140737488355328,0] "
                                         "and [140737488355328,0]: the sizes along axis 0 add up "
                                         "to more than 281474976710656 (TG_MAX_NUMEL)");
        tg_tape_reset(tp);
        tg_tensor **many = malloc(70000 * sizeof *many);
        for (int i = 0; i < 70000; i++) many[i] = c;
        CHECK(tg_concat(tp, 65535, many, 0) == NULL && tg_tape_errcode(tp) == TG_ESHAPE);
        tg_tape_reset(tp);
        CHECK(tg_concat(tp, 70000, many, 0) == NULL && tg_tape_errcode(tp) == TG_EARG);
        free(many);
        tg_tape_free(tp);
        tg_tensor_free(a), tg_tensor_free(b), tg_tensor_free(x), tg_tensor_free(c);
    }
}

/* Ops over empty tensors with huge other sizes, forward and backward: each of these looped
 * over its outer sizes (2^40 and more) before, or wrote out of bounds. Every one must finish
 * with the right shape, and the gradients must be zeros. */
typedef tg_tensor *(*empty_case)(tg_tape *tp, tg_tensor *const *x);
static tg_tensor *e_transpose(tg_tape *tp, tg_tensor *const *x)
{
    return tg_transpose(tp, x[0], 0, 2);
}
static tg_tensor *e_sum(tg_tape *tp, tg_tensor *const *x) { return tg_sum(tp, x[0], 1, false); }
static tg_tensor *e_mean(tg_tape *tp, tg_tensor *const *x) { return tg_mean(tp, x[0], 1, true); }
static tg_tensor *e_max(tg_tape *tp, tg_tensor *const *x) { return tg_max(tp, x[0], 0, false); }
static tg_tensor *e_slice(tg_tape *tp, tg_tensor *const *x) { return tg_slice(tp, x[0], 1, 1, 3); }
static tg_tensor *e_softmax(tg_tape *tp, tg_tensor *const *x) { return tg_softmax(tp, x[0], 1); }
static tg_tensor *e_concat(tg_tape *tp, tg_tensor *const *x) { return tg_concat(tp, 2, x, 1); }
static tg_tensor *e_matmul(tg_tape *tp, tg_tensor *const *x) { return tg_matmul(tp, x[0], x[1]); }
static tg_tensor *e_add(tg_tape *tp, tg_tensor *const *x) { return tg_add(tp, x[0], x[1]); }
static tg_tensor *e_broadcast_to(tg_tape *tp, tg_tensor *const *x)
{
    return tg_broadcast_to(tp, x[0], 4, S(3, P(36), P(8), 0));
}
static tg_tensor *e_sum_to(tg_tape *tp, tg_tensor *const *x)
{
    return tg_sum_to(tp, x[0], 2, S(1, 0));
}
static tg_tensor *e_pad(tg_tape *tp, tg_tensor *const *x)
{
    return tg_pad(tp, x[0], S(0, 1, 0), S(0, 2, 0), 1.5);
}
static tg_tensor *e_reshape(tg_tape *tp, tg_tensor *const *x)
{
    return tg_reshape(tp, x[0], 3, S(0, P(20), P(20)));
}
static tg_tensor *e_linear(tg_tape *tp, tg_tensor *const *x)
{
    return tg_linear(tp, x[0], x[1], x[2]);
}
static tg_tensor *e_linear_act(tg_tape *tp, tg_tensor *const *x)
{
    return tg_linear_act(tp, x[0], x[1], x[2], TG_ACT_SIGMOID, 0);
}
static tg_tensor *e_bn_train(tg_tape *tp, tg_tensor *const *x)
{
    return tg_batch_norm(tp, x[0], x[1], x[2], NULL, NULL, 0.1, 1e-5, true);
}
static tg_tensor *e_bn_eval(tg_tape *tp, tg_tensor *const *x)
{
    return tg_batch_norm(tp, x[0], x[1], x[2], x[3], x[4], 0.1, 1e-5, false);
}

static void test_empty_huge_no_loop(void)
{
    alarm(300);
    struct {
        const char *what;
        empty_case f;
        int n;
        int nd[5];
        int64_t s[5][4];
        int out_nd;
        int64_t out[4];
    } cases[] = {
        {"transpose", e_transpose, 1, {3}, {{P(40), P(8), 0}}, 3, {0, P(8), P(40)}},
        {"sum", e_sum, 1, {3}, {{P(40), P(8), 0}}, 2, {P(40), 0}},
        {"mean", e_mean, 1, {3}, {{P(40), P(8), 0}}, 3, {P(40), 1, 0}},
        {"max", e_max, 1, {3}, {{P(8), P(40), 0}}, 2, {P(40), 0}},
        {"slice", e_slice, 1, {3}, {{P(40), 4, 0}}, 3, {P(40), 2, 0}},
        {"softmax", e_softmax, 1, {3}, {{P(40), 3, 0}}, 3, {P(40), 3, 0}},
        {"concat", e_concat, 2, {3, 3}, {{P(40), 2, 0}, {P(40), 1, 0}}, 3, {P(40), 3, 0}},
        {"pad", e_pad, 1, {3}, {{P(40), 2, 0}}, 3, {P(40), 5, 0}},
        /* [2^36,1,0] repeated 3 times along a new axis and 2^8 times along its 1 */
        {"broadcast_to", e_broadcast_to, 1, {3}, {{P(36), 1, 0}}, 4, {3, P(36), P(8), 0}},
        {"sum_to", e_sum_to, 1, {3}, {{P(40), P(8), 0}}, 2, {1, 0}},
        /* a batch of 2^40 empty products, and its backward into a non-empty a */
        {"matmul", e_matmul, 2, {2, 3}, {{2, 3}, {P(40), 3, 0}}, 3, {P(40), 2, 0}},
        {"matmul batched", e_matmul, 2, {3, 3}, {{P(40), 0, 3}, {P(40), 3, 0}}, 3, {P(40), 0, 0}},
        {"add", e_add, 2, {3, 2}, {{P(40), 1, 0}, {P(8), 1}}, 3, {P(40), P(8), 0}},
        {"reshape", e_reshape, 1, {2}, {{P(40), 0}}, 3, {0, P(20), P(20)}},
        /* 2^40 rows of no columns: the bias loops */
        {"linear", e_linear, 3, {2, 2, 1}, {{P(40), 0}, {0, 0}, {0}}, 2, {P(40), 0}},
        {"linear_act", e_linear_act, 3, {2, 2, 1}, {{P(40), 0}, {0, 0}, {0}}, 2, {P(40), 0}},
        /* 2^40 samples of no channel */
        {"batch_norm train", e_bn_train, 3, {2, 1, 1}, {{P(40), 0}, {0}, {0}}, 2, {P(40), 0}},
        {"batch_norm eval",
         e_bn_eval,
         5,
         {3, 1, 1, 1, 1},
         {{P(20), 2, 0}, {2}, {2}, {2}, {2}},
         3,
         {P(20), 2, 0}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        for (int dt = TG_F32; dt <= TG_F64; dt++) {
            tg_tape *tp = capped_tape();
            tg_tensor *x[5];
            for (int i = 0; i < cases[c].n; i++)
                x[i] = gleaf((tg_dtype)dt, cases[c].nd[i], cases[c].s[i]);
            if (cases[c].n == 5) /* the running statistics */
                tg_set_requires_grad(x[3], false), tg_set_requires_grad(x[4], false);
            tg_tensor *y = cases[c].f(tp, x);
            bool ok = y && same_dims(tg_tensor_ndim(y), tg_tensor_shape(y), cases[c].out_nd,
                                     cases[c].out);
            ok = ok && tg_backward(tp, tg_sum(tp, y, TG_ALL_AXES, false)) == TG_OK;
            for (int i = 0; ok && i < cases[c].n; i++)
                if (tg_requires_grad(x[i])) ok = tg_grad(x[i]) && all_zero(tg_grad(x[i]));
            if (!ok)
                printf("  %s (%s): %s\n", cases[c].what, tg_dtype_name((tg_dtype)dt),
                       tg_tape_error(tp));
            CHECK(ok);
            tg_tape_free(tp);
            for (int i = 0; i < cases[c].n; i++) tg_tensor_free(x[i]);
        }
    /* a valid output too large for memory is TG_ENOMEM, not a crash: 2^48 elements */
    tg_tape *tp = capped_tape();
    tg_tensor *x = tg_tensor_new(TG_F32, 3, S(P(24), 0, P(24)));
    CHECK(tg_sum(tp, x, 1, false) == NULL && tg_tape_errcode(tp) == TG_ENOMEM);
    CHECK_STR_HAS(tg_tape_error(tp), "tg_sum: out of memory");
    tg_tape_free(tp);
    tg_tensor_free(x);
}

/* A refused shape is an ordinary first error: later ops return NULL and keep it, nothing is
 * recorded, and tg_tape_reset clears it. */
static void test_sticky_shape_error(void)
{
    tg_tape *tp = capped_tape();
    tg_tensor *a = gleaf(TG_F64, 3, S(P(40), 1, 0)), *b = gleaf(TG_F64, 3, S(1, P(40), 0));
    tg_tensor *v = gleaf(TG_F64, 1, S(3));
    tg_tensor *ok = tg_tanh(tp, v);
    CHECK(ok && tg_tape_n_nodes(tp) == 1);
    CHECK(tg_mul(tp, a, b) == NULL && tg_tape_errcode(tp) == TG_ESHAPE);
    char first[256];
    snprintf(first, sizeof first, "%s", tg_tape_error(tp));
    CHECK(tg_tanh(tp, v) == NULL && tg_reshape(tp, v, 1, S(-5)) == NULL);
    CHECK(strcmp(tg_tape_error(tp), first) == 0 && tg_tape_errcode(tp) == TG_ESHAPE);
    CHECK(tg_tape_n_nodes(tp) == 1);
    CHECK(tg_backward(tp, tg_sum(tp, ok, TG_ALL_AXES, false)) == TG_ESHAPE);
    tg_tape_reset(tp);
    CHECK(tg_tape_errcode(tp) == TG_OK && tg_tanh(tp, v) != NULL);
    tg_tape_free(tp);
    tg_tensor_free(a), tg_tensor_free(b), tg_tensor_free(v);
}

/* ---- NULL and out-of-range arguments of the tensor functions (core.h) ---- */
static void test_null_tensor_functions(void)
{
    char buf[32];
    tg_rng r;
    tg_rng_seed(&r, 1);
    CHECK(tg_tensor_dtype(NULL) == TG_DTYPE_NONE);
    CHECK(tg_tensor_ndim(NULL) == 0 && tg_tensor_numel(NULL) == 0);
    CHECK(tg_tensor_shape(NULL) == NULL && tg_data(NULL) == NULL && tg_data_const(NULL) == NULL);
    CHECK(tg_grad(NULL) == NULL && tg_tensor_clone(NULL) == NULL);
    CHECK(!tg_tensor_is_leaf(NULL) && !tg_requires_grad(NULL));
    CHECK(tg_tensor_dim(NULL, 0) == -1);
    CHECK(tg_tensor_free(NULL) == TG_OK);
    CHECK(tg_set_requires_grad(NULL, true) == TG_EARG && tg_zero_grad(NULL) == TG_EARG);
    CHECK(tg_tensor_fill(NULL, 1) == TG_EARG);
    CHECK(isnan(tg_get(NULL, 0)));
    tg_set(NULL, 0, 1); /* nothing */
    CHECK(strcmp(tg_shape_str(NULL, buf, sizeof buf), "NULL") == 0);
    CHECK(tg_shape_str(NULL, NULL, 10) == NULL);

    tg_tensor *t = tg_tensor_from(TG_F32, 2, S(2, 3), (float[]){1, 2, 3, 4, 5, 6});
    CHECK(tg_tensor_copy(NULL, t) == TG_EARG && tg_tensor_copy(t, NULL) == TG_EARG);
    CHECK(tg_tensor_copy(t, t) == TG_OK && tg_get(t, 5) == 6);
    CHECK(tg_tensor_rand_uniform(NULL, 0, 1, &r) == TG_EARG);
    CHECK(tg_tensor_rand_uniform(t, 0, 1, NULL) == TG_EARG);
    CHECK(tg_tensor_rand_normal(NULL, 0, 1, &r) == TG_EARG);
    CHECK(tg_tensor_rand_normal(t, 0, 1, NULL) == TG_EARG);
    /* indices out of range: NaN, and tg_set writes nothing */
    const int64_t out_of_range[] = {-1, 6, 7, INT64_MAX, INT64_MIN, P(40)};
    for (int i = 0; i < 6; i++) {
        CHECK(isnan(tg_get(t, out_of_range[i])));
        tg_set(t, out_of_range[i], 99);
    }
    for (int64_t i = 0; i < 6; i++) CHECK(tg_get(t, i) == (double)(i + 1));
    CHECK(tg_tensor_dim(t, INT_MIN) == -1 && tg_tensor_dim(t, INT_MAX) == -1);
    CHECK(tg_tensor_dim(t, 2) == -1 && tg_tensor_dim(t, -3) == -1 && tg_tensor_dim(t, -1) == 3);
    /* shape strings: size 0 writes nothing, a small buffer stays terminated */
    buf[0] = 'x';
    CHECK(tg_shape_str(t, buf, 0) == buf && buf[0] == 'x');
    CHECK(tg_shape_str(t, buf, 1) == buf && buf[0] == '\0');
    CHECK(strcmp(tg_shape_str(t, buf, 4), "[2,") == 0);
    tg_tensor *wide = tg_tensor_new(TG_F64, 6, S(P(47), 0, 2, 1, 1, 1));
    char ws[128];
    CHECK(wide && strcmp(tg_shape_str(wide, ws, sizeof ws), "[140737488355328,0,2,1,1,1]") == 0);
    CHECK(strcmp(tg_shape_str(wide, ws, 10), "[14073748") == 0);
    tg_tensor_free(wide);
    /* dtypes: "none" and 0 bytes outside f32 and f64 */
    CHECK(tg_dtype_size(TG_DTYPE_NONE) == 0 && tg_dtype_size((tg_dtype)7) == 0);
    CHECK(strcmp(tg_dtype_name(TG_DTYPE_NONE), "none") == 0 &&
          strcmp(tg_dtype_name((tg_dtype)7), "none") == 0);
    CHECK(tg_dtype_size(TG_F32) == 4 && tg_dtype_size(TG_F64) == 8);
    CHECK(tg_tensor_new(TG_DTYPE_NONE, 1, S(1)) == NULL);
    CHECK(tg_tensor_new(tg_tensor_dtype(NULL), 1, S(1)) == NULL);
    CHECK(strcmp(tg_strerror(-99), "unknown error") == 0);
    /* status: NULL status, NULL format */
    tg_status st;
    CHECK(tg_status_set(NULL, TG_EIO, "x %d", 1) == TG_EIO);
    CHECK(tg_status_set(&st, TG_EARG, NULL) == TG_EARG && st.code == TG_EARG && st.msg[0] == '\0');
    /* generators: NULL is a no-op returning 0 */
    tg_rng_seed(NULL, 1);
    CHECK(tg_rng_next(NULL) == 0 && tg_rng_uniform(NULL) == 0 && tg_rng_normal(NULL) == 0);
    CHECK(tg_rng_below(NULL, 10) == 0 && tg_rng_below(&r, 0) == 0);
    /* an arena tensor and a leaf's gradient are not the caller's to free */
    tg_tape *tp = tg_tape_new();
    tg_set_requires_grad(t, true);
    tg_tensor *y = tg_sum(tp, t, TG_ALL_AXES, false);
    CHECK(tg_tensor_free(y) == TG_EARG);
    CHECK(tg_backward(tp, y) == TG_OK && tg_tensor_free(tg_grad(t)) == TG_EARG);
    CHECK(tg_set_requires_grad(y, true) == TG_EARG && tg_zero_grad(y) == TG_EARG);
    tg_tape_free(tp);
    tg_tensor_free(t);
}

static void test_print_arguments(void)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    tg_tensor *t = tg_tensor_from(TG_F64, 2, S(2, 2), (double[]){1, 2, 3, 4.5});
    tg_tensor_print(NULL, f, 0);
    tg_tensor_print(t, f, -5); /* <= 0: all */
    tg_tensor_print(t, f, 2);
    tg_tensor *e = tg_tensor_new(TG_F32, 3, S(P(40), 0, 2));
    tg_tensor_print(e, f, 0);
    fclose(f);
    CHECK_STR_HAS(out, "tensor(NULL)");
    CHECK_STR_HAS(out, "tensor(f64, [2,2])\n   1  2\n   3  4.5\n");
    CHECK_STR_HAS(out, " ... (2 more)");
    CHECK_STR_HAS(out, "tensor(f32, [1099511627776,0,2])");
    free(out);
    tg_tensor_print(t, NULL, 0); /* nothing, no crash */
    tg_tensor_print(NULL, NULL, 0);
    tg_tensor_free(t), tg_tensor_free(e);
}

/* Random fills refuse ranges whose values would not be finite in the tensor's dtype, and
 * leave the tensor unchanged. */
static void test_rand_fill_ranges(void)
{
    tg_rng r;
    tg_rng_seed(&r, 7);
    for (int dt = TG_F32; dt <= TG_F64; dt++) {
        tg_tensor *t = tg_tensor_new((tg_dtype)dt, 1, S(100));
        tg_tensor_fill(t, 5);
        double m = dt == TG_F32 ? 3.4e38 : 1.7e308;
        /* f64's [-m, m] is infinitely wide; f32's fits in double */
        const double bad_uniform[][2] = {{1, 0},
                                         {NaN, 1},
                                         {0, NaN},
                                         {-INF, 0},
                                         {0, INF},
                                         {0, 2 * m},
                                         {-m, dt == TG_F64 ? m : 2 * m}};
        for (int i = 0; i < 7; i++)
            CHECK(tg_tensor_rand_uniform(t, bad_uniform[i][0], bad_uniform[i][1], &r) == TG_EARG);
        const double bad_normal[][2] = {{0, -1},  {0, NaN},    {NaN, 1},  {INF, 0},
                                        {0, INF}, {m, m / 16}, {0, m / 8}};
        for (int i = 0; i < 7; i++)
            CHECK(tg_tensor_rand_normal(t, bad_normal[i][0], bad_normal[i][1], &r) == TG_EARG);
        bool untouched = true;
        for (int64_t i = 0; i < 100; i++) untouched &= tg_get(t, i) == 5;
        CHECK(untouched);
        /* the extremes that are allowed give finite values */
        CHECK(tg_tensor_rand_uniform(t, -m / 2, m / 2, &r) == TG_OK);
        bool finite = true;
        for (int64_t i = 0; i < 100; i++) finite &= isfinite(tg_get(t, i));
        CHECK(tg_tensor_rand_normal(t, 0, m / 10, &r) == TG_OK);
        for (int64_t i = 0; i < 100; i++) finite &= isfinite(tg_get(t, i));
        CHECK(finite);
        tg_tensor_free(t);
    }
    /* tg_rng_normal's largest magnitude, from its smallest uniform 2^-53, is below 8.58 */
    CHECK(sqrt(-2.0 * log(0x1p-53)) < 8.58);
    double most = 0;
    for (int i = 0; i < 100000; i++) most = fmax(most, fabs(tg_rng_normal(&r)));
    CHECK(most > 3 && most < 8.58);
    /* a range fine in f64 is too wide for f32 */
    tg_tensor *a = tg_tensor_new(TG_F64, 1, S(4)), *b = tg_tensor_new(TG_F32, 1, S(4));
    CHECK(tg_tensor_rand_uniform(a, 0, 1e39, &r) == TG_OK);
    CHECK(tg_tensor_rand_uniform(b, 0, 1e39, &r) == TG_EARG);
    tg_tensor_free(a), tg_tensor_free(b);
}

/* ---- max propagates NaN (torch.max(x, dim)): the maximum of a slice holding a NaN is NaN,
 * and its gradient goes to the slice's first NaN ---- */
static void check_max(tg_dtype dt, int nd, const int64_t *s, const double *x, int axis,
                      bool keepdim, int64_t n_out, const double *want, const double *want_grad)
{
    tg_tape *tp = tg_tape_new();
    tg_tensor *t = tg_tensor_new(dt, nd, s);
    /* NOLINTNEXTLINE(clang-analyzer-core.CallAndMessage): x has numel(t) values */
    for (int64_t i = 0; i < tg_tensor_numel(t); i++) tg_set(t, i, x[i]);
    tg_set_requires_grad(t, true);
    tg_tensor *y = tg_max(tp, t, axis, keepdim);
    bool ok = y && tg_tensor_numel(y) == n_out;
    for (int64_t i = 0; ok && i < n_out; i++)
        ok = isnan(want[i]) ? isnan(tg_get(y, i)) : tg_get(y, i) == want[i];
    /* a weighted sum, so each output's gradient is told apart: dy_i = i + 1 */
    tg_tensor *w = tg_tensor_new(dt, tg_tensor_ndim(y), tg_tensor_shape(y));
    for (int64_t i = 0; i < n_out; i++) tg_set(w, i, (double)(i + 1));
    ok = ok && tg_backward_seed(tp, y, w) == TG_OK;
    for (int64_t i = 0; ok && i < tg_tensor_numel(t); i++)
        /* NOLINTNEXTLINE(clang-analyzer-core.UndefinedBinaryOperatorResult): numel(t) values */
        ok = tg_get(tg_grad(t), i) == want_grad[i];
    if (!ok) printf("  max over axis %d (%s): %s\n", axis, tg_dtype_name(dt), tg_tape_error(tp));
    CHECK(ok);
    tg_tape_free(tp);
    tg_tensor_free(t), tg_tensor_free(w);
}

static void test_max_nan(void)
{
    const double nan = NaN, inf = INF;
    for (int dt = TG_F32; dt <= TG_F64; dt++) {
        tg_dtype d = (tg_dtype)dt;
        check_max(d, 1, S(3), (double[]){1, nan, 3}, TG_ALL_AXES, false, 1, (double[]){nan},
                  (double[]){0, 1, 0});
        check_max(d, 1, S(3), (double[]){nan, 5, nan}, 0, false, 1, (double[]){nan},
                  (double[]){1, 0, 0});
        check_max(d, 1, S(3), (double[]){-inf, -inf, nan}, 0, true, 1, (double[]){nan},
                  (double[]){0, 0, 1});
        /* no NaN: the first maximal element, as before */
        check_max(d, 1, S(4), (double[]){2, 7, 7, -inf}, 0, false, 1, (double[]){7},
                  (double[]){0, 1, 0, 0});
        check_max(d, 1, S(2), (double[]){-inf, -inf}, 0, false, 1, (double[]){-inf},
                  (double[]){1, 0});
        check_max(d, 1, S(2), (double[]){inf, nan}, 0, false, 1, (double[]){nan}, (double[]){0, 1});
        /* rows [1 NaN 3] and [4 5 6] along the last axis */
        check_max(d, 2, S(2, 3), (double[]){1, nan, 3, 4, 5, 6}, 1, false, 2, (double[]){nan, 6},
                  (double[]){0, 1, 0, 0, 0, 2});
        /* columns, a strided slice (inner 3): [1 4], [NaN NaN], [3 6] */
        check_max(d, 2, S(2, 3), (double[]){1, nan, 3, 4, nan, 6}, 0, true, 3,
                  (double[]){4, nan, 6}, (double[]){0, 2, 0, 1, 0, 3});
        /* [2,2,2] along the middle axis */
        check_max(d, 3, S(2, 2, 2), (double[]){0, 1, nan, 2, 5, 6, 7, nan}, 1, false, 4,
                  (double[]){nan, 2, 7, nan}, (double[]){0, 0, 1, 2, 0, 0, 3, 4});
        check_max(d, 0, NULL, (double[]){nan}, TG_ALL_AXES, false, 1, (double[]){nan},
                  (double[]){1});
    }
}

static const check_case cases[] = {
    TEST(test_generated_shapes),      TEST(test_every_op_generated),
    TEST(test_leaf_shapes),           TEST(test_issue_cases),
    TEST(test_empty_huge_no_loop),    TEST(test_sticky_shape_error),
    TEST(test_null_tensor_functions), TEST(test_print_arguments),
    TEST(test_rand_fill_ranges),      TEST(test_max_nan),
};
TEST_MAIN("test_shapes", cases)
