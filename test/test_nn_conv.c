/* test/test_nn_conv.c: the layers for CNNs (conv2d, max/avg/global pooling, flatten,
 * batchnorm2d): each forward against the op it wraps, two whole CNNs gradchecked over every
 * parameter to first and second order, initialisation fans and statistics, save and load,
 * bad arguments, tg_nn_describe_shape, and tg_hessian_diag_lecun's refusal. */
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "tapegrad.h"

static tg_tensor *randn(tg_dtype dt, int nd, const int64_t *s, tg_rng *r)
{
    tg_tensor *t = tg_tensor_new(dt, nd, s);
    tg_tensor_rand_normal(t, 0, 1, r);
    return t;
}

/* Same shape, dtype and bits. */
static bool same(const tg_tensor *a, const tg_tensor *b)
{
    if (!a || !b || tg_tensor_dtype(a) != tg_tensor_dtype(b) ||
        tg_tensor_ndim(a) != tg_tensor_ndim(b))
        return false;
    for (int d = 0; d < tg_tensor_ndim(a); d++)
        if (tg_tensor_dim(a, d) != tg_tensor_dim(b, d)) return false;
    return memcmp(tg_data_const(a), tg_data_const(b),
                  (size_t)tg_tensor_numel(a) * tg_dtype_size(tg_tensor_dtype(a))) == 0;
}

/* ---- each layer's forward is the op it wraps ---- */
static void test_forward_is_op(void)
{
    tg_rng r;
    tg_rng_seed(&r, 1);
    for (int k = 0; k < 2; k++) {
        tg_dtype dt = k ? TG_F64 : TG_F32;
        int64_t xs[4] = {2, 4, 7, 6};
        tg_tensor *x = randn(dt, 4, xs, &r);
        tg_tape *tp = tg_tape_new();
        /* conv2d with every option, with and without bias */
        tg_conv2d_opts co = {{2, 1}, {1, 2}, {1, 2}, 2};
        for (int bias = 0; bias < 2; bias++) {
            tg_module *c = tg_nn_conv2d(4, 6, 3, 2, &co, bias, dt);
            CHECK(c && tg_nn_n_params(c) == 1 + bias);
            tg_tensor *p[2] = {0};
            tg_nn_params(c, p, 2);
            int64_t ws[4] = {6, 2, 3, 2};
            CHECK(tg_tensor_ndim(p[0]) == 4);
            for (int d = 0; d < 4; d++) CHECK(tg_tensor_dim(p[0], d) == ws[d]);
            CHECK(!bias || (tg_tensor_ndim(p[1]) == 1 && tg_tensor_dim(p[1], 0) == 6));
            if (bias) tg_tensor_rand_normal(p[1], 0, 1, &r);
            tg_tensor *y = tg_nn_forward(c, tp, x), *want = tg_conv2d(tp, x, p[0], p[1], &co);
            CHECK(y && same(y, want));
            tg_tape_reset(tp);
            tg_nn_free(c);
        }
        /* NULL options: the defaults */
        tg_module *c = tg_nn_conv2d(4, 3, 1, 1, NULL, true, dt);
        tg_tensor *p[2];
        tg_nn_params(c, p, 2);
        tg_tensor *y = tg_nn_forward(c, tp, x), *want = tg_conv2d(tp, x, p[0], p[1], NULL);
        CHECK(y && same(y, want) && tg_tensor_dim(y, 1) == 3);
        tg_tape_reset(tp);
        tg_nn_free(c);
        /* pooling */
        tg_pool2d_opts po = {{3, 2}, {2, 0}, {1, 1}};
        tg_module *mp = tg_nn_max_pool2d(&po), *ap = tg_nn_avg_pool2d(&po),
                  *gp = tg_nn_global_avg_pool2d();
        y = tg_nn_forward(mp, tp, x), want = tg_max_pool2d(tp, x, &po);
        CHECK(y && same(y, want));
        tg_tape_reset(tp);
        y = tg_nn_forward(ap, tp, x), want = tg_avg_pool2d(tp, x, &po);
        CHECK(y && same(y, want));
        tg_tape_reset(tp);
        y = tg_nn_forward(gp, tp, x), want = tg_global_avg_pool2d(tp, x);
        CHECK(y && same(y, want) && tg_tensor_ndim(y) == 2);
        tg_tape_reset(tp);
        tg_nn_free(mp), tg_nn_free(ap), tg_nn_free(gp);
        /* flatten: tg_reshape to [N, rest]; a matrix is returned as it is */
        tg_module *fl = tg_nn_flatten();
        y = tg_nn_forward(fl, tp, x);
        want = tg_reshape(tp, x, 2, (int64_t[]){2, 4 * 7 * 6});
        CHECK(y && same(y, want));
        CHECK(tg_nn_forward(fl, tp, want) == want);
        int64_t one = 5;
        tg_tensor *v = tg_tensor_new(dt, 1, &one);
        CHECK(!tg_nn_forward(fl, tp, v) && tg_tape_errcode(tp) == TG_ESHAPE);
        CHECK_STR_HAS(tg_tape_error(tp), "flatten: x is [5]");
        tg_tape_reset(tp);
        tg_tensor_free(v);
        tg_nn_free(fl);
        /* batchnorm2d: tg_batch_norm in training (running statistics updated alike) and eval */
        tg_module *bn = tg_nn_batchnorm2d(4, 0.3, 1e-3, dt);
        tg_tensor *bp[2], *rm = tg_tensor_new(dt, 1, (int64_t[]){4}),
                          *rv = tg_tensor_new(dt, 1, (int64_t[]){4});
        tg_tensor_fill(rm, 0), tg_tensor_fill(rv, 1);
        tg_nn_params(bn, bp, 2);
        tg_tensor_rand_normal(bp[0], 1, 0.2, &r), tg_tensor_rand_normal(bp[1], 0, 0.2, &r);
        for (int train = 1; train >= 0; train--) { /* the statistics are updated once */
            tg_nn_set_training(bn, train);
            y = tg_nn_forward(bn, tp, x);
            want = tg_batch_norm(tp, x, bp[0], bp[1], rm, rv, 0.3, 1e-3, train);
            CHECK(y && same(y, want));
            tg_tape_reset(tp);
        }
        /* eval again: the module's running statistics are rm and rv, bit for bit */
        tg_nn_set_training(bn, false);
        y = tg_nn_forward(bn, tp, x);
        want = tg_batch_norm(tp, x, bp[0], bp[1], rm, rv, 0.3, 1e-3, false);
        CHECK(y && same(y, want) && tg_get(rv, 0) != 1);
        tg_tape_reset(tp);
        /* another rank is refused, naming the layer */
        tg_tensor *x2 = randn(dt, 2, (int64_t[]){3, 4}, &r);
        CHECK(!tg_nn_forward(bn, tp, x2) && tg_tape_errcode(tp) == TG_ESHAPE);
        CHECK_STR_HAS(tg_tape_error(tp), "batchnorm2d: x is [3,4], want [N,C,H,W]");
        tg_tape_reset(tp);
        tg_tensor_free(x2), tg_tensor_free(rm), tg_tensor_free(rv);
        tg_nn_free(bn);
        tg_tape_free(tp);
        tg_tensor_free(x);
    }
}

/* ---- a whole CNN, gradchecked over every parameter through tg_nn_bind_params ---- */
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

static void check_model(model *m, const char *what, uint64_t seed, bool second)
{
    tg_rng r;
    tg_rng_seed(&r, seed);
    tg_tensor *params[16];
    m->n = tg_nn_params(m->net, params, 16);
    tg_nn_init(m->net, TG_INIT_HE_NORMAL, 0, &r);
    for (int i = 0; i < m->n; i++) /* biases, gamma and beta away from 0 */
        if (tg_tensor_ndim(params[i]) == 1) tg_tensor_rand_uniform(params[i], 0.3, 0.8, &r);
    tg_tensor_rand_normal(m->x, 0, 1, &r);
    tg_gradcheck_result res;
    tg_gradcheck_opts go = {.seed = 2};
    int rc = tg_gradcheck(model_loss, m->n, params, m, &go, &res);
    tg_nn_bind_params(m->net, params, m->n);
    if (rc || res.max_rel_err > 1e-6)
        printf("  %s: rc %d, max rel err %g (%s)\n", what, rc, res.max_rel_err, res.msg);
    CHECK(rc == TG_OK && res.max_rel_err <= 1e-6);
    CHECK(res.n_checked == tg_nn_n_weights(m->net));
    if (!second) return;
    rc = tg_gradgradcheck(model_loss, m->n, params, m, &go, &res);
    tg_nn_bind_params(m->net, params, m->n);
    if (rc || res.max_rel_err > 1e-6 || res.first_order_err > 1e-6)
        printf("  %s: second order: rc %d, max rel err %g, first order %g (%s)\n", what, rc,
               res.max_rel_err, res.first_order_err, res.msg);
    CHECK(rc == TG_OK && res.max_rel_err <= 1e-6 && res.first_order_err <= 1e-6);
}

static void test_cnn_gradcheck(void)
{
    /* conv-relu-maxpool-flatten-linear on [3,2,6,6] */
    model m = {tg_nn_sequential(), NULL, NULL, 0};
    tg_conv2d_opts co = {.padding = {1, 1}};
    tg_pool2d_opts po = {{2, 2}, {0, 0}, {0, 0}};
    CHECK(tg_nn_append(m.net, tg_nn_conv2d(2, 4, 3, 3, &co, true, TG_F64)) == TG_OK);
    CHECK(tg_nn_append(m.net, tg_nn_activation("relu", 0, TG_F64)) == TG_OK);
    CHECK(tg_nn_append(m.net, tg_nn_max_pool2d(&po)) == TG_OK);
    CHECK(tg_nn_append(m.net, tg_nn_flatten()) == TG_OK);
    CHECK(tg_nn_append(m.net, tg_nn_linear(4 * 3 * 3, 3, TG_F64)) == TG_OK);
    m.x = tg_tensor_new(TG_F64, 4, (int64_t[]){3, 2, 6, 6});
    m.y = tg_tensor_from(TG_F64, 1, (int64_t[]){3}, (double[]){0, 2, 1});
    check_model(&m, "conv-relu-maxpool-flatten-linear", 11, true);
    tg_nn_free(m.net);
    /* grouped, strided, dilated conv (no bias), batchnorm2d, tanh, avg pool with padding,
     * a second conv, global average pooling, linear */
    m.net = tg_nn_sequential();
    tg_conv2d_opts g = {{2, 1}, {1, 0}, {1, 2}, 2};
    tg_pool2d_opts ap = {{3, 3}, {1, 1}, {1, 1}};
    CHECK(tg_nn_append(m.net, tg_nn_conv2d(2, 4, 3, 2, &g, false, TG_F64)) == TG_OK);
    CHECK(tg_nn_append(m.net, tg_nn_batchnorm2d(4, 0.1, 1e-5, TG_F64)) == TG_OK);
    CHECK(tg_nn_append(m.net, tg_nn_activation("tanh", 0, TG_F64)) == TG_OK);
    CHECK(tg_nn_append(m.net, tg_nn_avg_pool2d(&ap)) == TG_OK);
    CHECK(tg_nn_append(m.net, tg_nn_conv2d(4, 3, 2, 2, NULL, true, TG_F64)) == TG_OK);
    CHECK(tg_nn_append(m.net, tg_nn_global_avg_pool2d()) == TG_OK);
    CHECK(tg_nn_append(m.net, tg_nn_linear(3, 3, TG_F64)) == TG_OK);
    check_model(&m, "conv-bn2d-tanh-avgpool-conv-gap-linear", 12, true);
    tg_tensor_free(m.x), tg_tensor_free(m.y);
    tg_nn_free(m.net);
}

/* ---- initialisation: fans of conv2d ---- */
static void moments(const tg_tensor *w, double *mean, double *var)
{
    int64_t n = tg_tensor_numel(w);
    double s = 0, q = 0;
    for (int64_t i = 0; i < n; i++) s += tg_get(w, i);
    *mean = s / (double)n;
    for (int64_t i = 0; i < n; i++) q += (tg_get(w, i) - *mean) * (tg_get(w, i) - *mean);
    *var = q / (double)(n - 1);
}

static void test_init(void)
{
    /* 128 x 64 x 3 x 3 = 73728 weights: the sample variance is within 0.6% (one standard
     * error, sqrt(2/n) for a normal, less for a uniform) of the true one; 3% is 5 of them. */
    const struct {
        int64_t groups;
        tg_init kind;
    } cases[] = {{1, TG_INIT_HE_NORMAL},     {4, TG_INIT_HE_NORMAL},      {1, TG_INIT_HE_UNIFORM},
                 {4, TG_INIT_XAVIER_NORMAL}, {4, TG_INIT_XAVIER_UNIFORM}, {2, TG_INIT_UNIFORM}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        tg_conv2d_opts o = {.groups = cases[c].groups};
        tg_module *m = tg_nn_conv2d(64, 128, 3, 3, &o, true, TG_F64);
        tg_tensor *p[2];
        tg_nn_params(m, p, 2);
        tg_tensor_fill(p[1], 5);
        tg_rng r;
        tg_rng_seed(&r, 3 + c);
        CHECK(tg_nn_init(m, cases[c].kind, 0, &r) == TG_OK);
        double fin = 64.0 / (double)cases[c].groups * 9, fout = 128.0 / (double)cases[c].groups * 9;
        double want = cases[c].kind == TG_INIT_UNIFORM ? 1 / (3 * fin)
                      : cases[c].kind == TG_INIT_HE_NORMAL || cases[c].kind == TG_INIT_HE_UNIFORM
                          ? 2 / fin
                          : 2 / (fin + fout);
        double mean, var;
        moments(p[0], &mean, &var);
        CHECK_NEAR(var / want, 1, 0.03);
        CHECK_NEAR(mean, 0, 5 * sqrt(want / 73728.0));
        CHECK(tg_get(p[1], 0) == 0 && tg_get(p[1], 127) == 0);
        tg_nn_free(m);
    }
    /* the constructor's default: TG_INIT_UNIFORM, seed 0, fan_in = in_ch/groups·kh·kw */
    tg_conv2d_opts o = {.groups = 2};
    tg_module *m = tg_nn_conv2d(8, 6, 2, 3, &o, true, TG_F64),
              *m2 = tg_nn_conv2d(8, 6, 2, 3, &o, true, TG_F64);
    tg_tensor *p[2], *p2[2];
    tg_nn_params(m, p, 2), tg_nn_params(m2, p2, 2);
    double bound = 1 / sqrt(4.0 * 6), big = 0;
    for (int64_t i = 0; i < tg_tensor_numel(p[0]); i++) big = fmax(big, fabs(tg_get(p[0], i)));
    CHECK(big <= bound && big > 0.9 * bound && same(p[0], p2[0]) && tg_get(p[1], 0) == 0);
    /* constant: weights and bias */
    tg_rng r;
    tg_rng_seed(&r, 9);
    CHECK(tg_nn_init(m, TG_INIT_CONSTANT, 0.5, &r) == TG_OK);
    CHECK(tg_get(p[0], 17) == 0.5 && tg_get(p[1], 5) == 0.5);
    tg_nn_free(m), tg_nn_free(m2);
    /* orthogonal: W as [out, in/groups·kh·kw] has orthonormal rows (out <= fan_in) or
     * columns (out > fan_in) */
    for (int k = 0; k < 2; k++) {
        int64_t out = k ? 40 : 6, in = 4;
        m = tg_nn_conv2d(in, out, 2, 3, NULL, false, TG_F64);
        tg_nn_params(m, p, 1);
        CHECK(tg_nn_init(m, TG_INIT_ORTHOGONAL, 0, &r) == TG_OK);
        int64_t rows = out, cols = in * 6, n = k ? cols : rows;
        double worst = 0;
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < n; j++) {
                double s = 0;
                for (int64_t l = 0; l < (k ? rows : cols); l++)
                    s += k ? tg_get(p[0], l * cols + i) * tg_get(p[0], l * cols + j)
                           : tg_get(p[0], i * cols + l) * tg_get(p[0], j * cols + l);
                worst = fmax(worst, fabs(s - (i == j)));
            }
        CHECK(worst < 1e-12);
        tg_nn_free(m);
    }
}

/* ---- save and load ---- */
/* conv-bn2d-relu-maxpool-flatten-linear for [N,1,8,8]; *bn (if not NULL) its batch norm. */
static tg_module *cnn(tg_dtype dt, int64_t c2, bool bias, tg_module **bn)
{
    tg_module *s = tg_nn_sequential(), *b = tg_nn_batchnorm2d(c2, 0.1, 1e-5, dt);
    tg_conv2d_opts co = {.padding = {1, 1}};
    tg_pool2d_opts po = {{2, 2}, {0, 0}, {0, 0}};
    if (bn) *bn = b;
    tg_nn_append(s, tg_nn_conv2d(1, c2, 3, 3, &co, bias, dt));
    tg_nn_append(s, b);
    tg_nn_append(s, tg_nn_activation("relu", 0, dt));
    tg_nn_append(s, tg_nn_max_pool2d(&po));
    tg_nn_append(s, tg_nn_flatten());
    tg_nn_append(s, tg_nn_linear(c2 * 4 * 4, 10, dt));
    return s;
}

/* The bytes of path (malloc'd) and their count. */
static unsigned char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    unsigned char *b = NULL;
    *n = 0;
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    if (len > 0 && (b = malloc((size_t)len)) && fread(b, 1, (size_t)len, f) == (size_t)len)
        *n = (size_t)len;
    fclose(f);
    return b;
}

/* True if m saved to path and to path2 gives the same bytes (path2 is removed). */
static bool saves_as(const tg_module *m, const char *path, const char *path2)
{
    tg_status st;
    size_t n1, n2;
    if (tg_nn_save_meta(m, path2, "cnn test", &st)) return false;
    unsigned char *a = slurp(path, &n1), *b = slurp(path2, &n2);
    bool eq = a && b && n1 == n2 && memcmp(a, b, n1) == 0;
    free(a), free(b);
    unlink(path2);
    return eq;
}

static void test_save_load(void)
{
    char path[64], path2[64], path3[64];
    snprintf(path, sizeof path, "/tmp/test_nn_conv.%d.tg", (int)getpid());
    snprintf(path2, sizeof path2, "/tmp/test_nn_conv.%d.b.tg", (int)getpid());
    snprintf(path3, sizeof path3, "/tmp/test_nn_conv.%d.c.tg", (int)getpid());
    for (int k = 0; k < 2; k++) {
        tg_dtype dt = k ? TG_F64 : TG_F32;
        tg_module *bn_a, *a = cnn(dt, 3, true, &bn_a), *b = cnn(dt, 3, true, NULL);
        tg_tensor *ta[16] = {0}, *tb[16] = {0};
        int n = tg_nn_params(a, ta, 16), nb = tg_nn_params(b, tb, 16);
        CHECK(n == 6 && nb == 6);
        /* running statistics made random by a training step of a lone batch norm, saved and
         * loaded into a's (a layer inside a tree loads like any module); then every parameter
         * random */
        tg_rng r;
        tg_rng_seed(&r, 20 + k);
        tg_module *bn = tg_nn_batchnorm2d(3, 0.5, 1e-5, dt);
        tg_tensor *x = randn(dt, 4, (int64_t[]){2, 3, 4, 4}, &r);
        tg_tape *tp = tg_tape_new();
        CHECK(tg_nn_forward(bn, tp, x) != NULL);
        tg_tape_free(tp);
        tg_tensor_free(x);
        tg_status st = {0};
        CHECK(tg_nn_save(bn, path, &st) == TG_OK && tg_nn_load(bn_a, path, &st) == TG_OK);
        tg_nn_free(bn);
        for (int i = 0; i < n; i++) tg_tensor_rand_uniform(ta[i], 0.1, 2, &r);
        tg_nn_set_training(a, false), tg_nn_set_training(b, false);
        CHECK(tg_nn_save_meta(a, path, "cnn test", &st) == TG_OK);
        CHECK(tg_nn_load(b, path, &st) == TG_OK);
        bool all = true;
        for (int i = 0; i < n; i++) all = all && same(ta[i], tb[i]);
        CHECK(all);
        CHECK(saves_as(b, path, path2)); /* parameters and buffers, bit for bit */
        char meta[32];
        CHECK(tg_nn_read_meta(path, meta, sizeof meta, &st) == TG_OK && !strcmp(meta, "cnn test"));
        /* mismatched architectures: another channel count, no conv bias, another dtype */
        tg_module *bad[3] = {cnn(dt, 4, true, NULL), cnn(dt, 3, false, NULL),
                             cnn(k ? TG_F32 : TG_F64, 3, true, NULL)};
        int codes[3] = {TG_ESHAPE, TG_ESHAPE, TG_EDTYPE};
        for (int j = 0; j < 3; j++) {
            CHECK(tg_nn_save_meta(bad[j], path3, "cnn test", &st) == TG_OK);
            st = (tg_status){0};
            CHECK(tg_nn_load(bad[j], path, &st) == codes[j] && st.code == codes[j]);
            CHECK_STR_HAS(st.msg, path);
            CHECK(saves_as(bad[j], path3, path2)); /* nothing changed */
            tg_nn_free(bad[j]);
        }
        tg_nn_free(a), tg_nn_free(b);
    }
    unlink(path), unlink(path3);
}

/* ---- bad arguments of every constructor ---- */
static void refused(tg_module *m, int code, const char *msg)
{
    CHECK(m == NULL && tg_nn_last_status()->code == code);
    CHECK_STR_HAS(tg_nn_last_status()->msg, msg);
}

static void test_bad_args(void)
{
    tg_conv2d_opts o = {0};
    tg_module *ok;
    refused(tg_nn_conv2d(0, 4, 3, 3, NULL, true, TG_F32), TG_EARG,
            "tg_nn_conv2d: in_ch = 0, want >= 1");
    refused(tg_nn_conv2d(2, -1, 3, 3, NULL, true, TG_F32), TG_EARG, "tg_nn_conv2d: out_ch = -1");
    refused(tg_nn_conv2d(2, 4, 0, 3, NULL, true, TG_F32), TG_EARG,
            "tg_nn_conv2d: kh = 0, want 1..2^40");
    refused(tg_nn_conv2d(2, 4, 3, -2, NULL, true, TG_F32), TG_EARG, "tg_nn_conv2d: kw = -2");
    refused(tg_nn_conv2d(2, 4, (int64_t)1 << 41, 3, NULL, true, TG_F32), TG_EARG,
            "kh = 2199023255552");
    o = (tg_conv2d_opts){.stride = {1, -1}};
    refused(tg_nn_conv2d(2, 4, 3, 3, &o, true, TG_F32), TG_EARG,
            "tg_nn_conv2d: stride[1] = -1, want 0..2^40 (0 means 1)");
    o = (tg_conv2d_opts){.padding = {-3, 0}};
    refused(tg_nn_conv2d(2, 4, 3, 3, &o, true, TG_F32), TG_EARG, "tg_nn_conv2d: padding[0] = -3");
    o = (tg_conv2d_opts){.dilation = {0, -1}};
    refused(tg_nn_conv2d(2, 4, 3, 3, &o, true, TG_F32), TG_EARG, "tg_nn_conv2d: dilation[1] = -1");
    o = (tg_conv2d_opts){.dilation = {INT64_MAX, 1}};
    refused(tg_nn_conv2d(2, 4, 3, 3, &o, true, TG_F32), TG_EARG,
            "dilation[0] = 9223372036854775807");
    o = (tg_conv2d_opts){.dilation = {1, (int64_t)1 << 39}};
    refused(tg_nn_conv2d(2, 4, 3, 3, &o, true, TG_F32), TG_EARG,
            "tg_nn_conv2d: the dilated kernel on axis 3, dilation[1] (k - 1) + 1 = 1099511627777, "
            "is more than 2^40");
    o = (tg_conv2d_opts){.dilation = {1, (int64_t)1 << 39}};
    ok = tg_nn_conv2d(2, 4, 3, 2, &o, true, TG_F32); /* 2^39 + 1: fine */
    CHECK(ok != NULL);
    tg_nn_free(ok);
    o = (tg_conv2d_opts){.stride = {(int64_t)1 << 40, 1}, .padding = {(int64_t)1 << 40, 0}};
    ok = tg_nn_conv2d(1, 1, 1, 1, &o, true, TG_F32); /* the bounds themselves are fine */
    CHECK(ok != NULL);
    tg_nn_free(ok);
    o = (tg_conv2d_opts){.padding = {0, ((int64_t)1 << 40) + 1}};
    refused(tg_nn_conv2d(2, 4, 3, 3, &o, true, TG_F32), TG_EARG,
            "tg_nn_conv2d: padding[1] = 1099511627777, want 0..2^40");
    o = (tg_conv2d_opts){.groups = -2};
    refused(tg_nn_conv2d(2, 4, 3, 3, &o, true, TG_F32), TG_EARG,
            "tg_nn_conv2d: groups = -2, want >= 0");
    o = (tg_conv2d_opts){.groups = 3};
    refused(tg_nn_conv2d(3, 4, 3, 3, &o, true, TG_F32), TG_EARG,
            "tg_nn_conv2d: groups = 3 does not divide out_ch = 4");
    refused(tg_nn_conv2d(4, 3, 3, 3, &o, true, TG_F32), TG_EARG,
            "tg_nn_conv2d: groups = 3 does not divide in_ch = 4");
    refused(tg_nn_conv2d(1 << 20, 1 << 20, 1 << 10, 1 << 10, NULL, true, TG_F32), TG_EARG,
            "are more than 2^48");
    refused(tg_nn_conv2d(2, 4, 3, 3, NULL, true, (tg_dtype)99), TG_EDTYPE, "tg_nn_conv2d: dtype");
    o = (tg_conv2d_opts){{0, 0}, {0, 0}, {0, 0}, 4}; /* depthwise-like: fine */
    ok = tg_nn_conv2d(4, 8, 3, 3, &o, false, TG_F64);
    CHECK(ok && tg_nn_last_status()->code == TG_OK && tg_nn_n_params(ok) == 1);
    tg_nn_free(ok);

    const char *pools[2] = {"tg_nn_max_pool2d", "tg_nn_avg_pool2d"};
    for (int k = 0; k < 2; k++) {
        tg_module *(*mk)(const tg_pool2d_opts *) = k ? tg_nn_avg_pool2d : tg_nn_max_pool2d;
        char want[128];
        snprintf(want, sizeof want, "%s: the options are NULL", pools[k]);
        refused(mk(NULL), TG_EARG, want);
        tg_pool2d_opts p = {{0, 2}, {0, 0}, {0, 0}};
        snprintf(want, sizeof want, "%s: kernel[0] = 0, want 1..2^40", pools[k]);
        refused(mk(&p), TG_EARG, want);
        p = (tg_pool2d_opts){{2, 2}, {0, -1}, {0, 0}};
        snprintf(want, sizeof want, "%s: stride[1] = -1, want 0..2^40 (0 means the kernel size)",
                 pools[k]);
        refused(mk(&p), TG_EARG, want);
        p = (tg_pool2d_opts){{2, ((int64_t)1 << 40) + 1}, {0, 0}, {0, 0}};
        snprintf(want, sizeof want, "%s: kernel[1] = 1099511627777, want 1..2^40", pools[k]);
        refused(mk(&p), TG_EARG, want);
        p = (tg_pool2d_opts){{2, 2}, {(int64_t)1 << 41, 0}, {0, 0}};
        snprintf(want, sizeof want, "%s: stride[0] = 2199023255552", pools[k]);
        refused(mk(&p), TG_EARG, want);
        p = (tg_pool2d_opts){{(int64_t)1 << 40, 2}, {(int64_t)1 << 40, 0}, {(int64_t)1 << 39, 1}};
        ok = mk(&p); /* every bound itself is fine */
        CHECK(ok != NULL);
        tg_nn_free(ok);
        p = (tg_pool2d_opts){{2, 2}, {0, 0}, {-1, 0}};
        snprintf(want, sizeof want, "%s: padding[0] = -1", pools[k]);
        refused(mk(&p), TG_EARG, want);
        p = (tg_pool2d_opts){{3, 5}, {0, 0}, {1, 3}};
        snprintf(want, sizeof want, "%s: padding[1] = 3 is more than half the kernel (5)",
                 pools[k]);
        refused(mk(&p), TG_EARG, want);
        p = (tg_pool2d_opts){{3, 5}, {1, 7}, {1, 2}};
        ok = mk(&p);
        CHECK(ok && tg_nn_last_status()->code == TG_OK);
        tg_nn_free(ok);
    }
    const double bad_eps[4] = {0, -1, (double)INFINITY, (double)NAN},
                 bad_mom[4] = {-0.1, 1.5, (double)NAN, -(double)INFINITY};
    for (int i = 0; i < 4; i++) {
        refused(tg_nn_batchnorm2d(4, 0.1, bad_eps[i], TG_F32), TG_EARG,
                "tg_nn_batchnorm2d: eps = ");
        refused(tg_nn_batchnorm2d(4, bad_mom[i], 1e-5, TG_F32), TG_EARG,
                "tg_nn_batchnorm2d: momentum = ");
    }
    refused(tg_nn_batchnorm2d(0, 0.1, 1e-5, TG_F32), TG_EARG,
            "tg_nn_batchnorm2d: channels = 0, want >= 1");
    refused(tg_nn_batchnorm2d(2, 0.1, 1e-5, (tg_dtype)99), TG_EDTYPE, "tg_nn_batchnorm2d: dtype");
    /* batchnorm1d keeps its own name and argument */
    refused(tg_nn_batchnorm1d(0, 0.1, 1e-5, TG_F32), TG_EARG, "tg_nn_batchnorm1d: features = 0");
    refused(tg_nn_batchnorm1d(3, 0.1, (double)INFINITY, TG_F32), TG_EARG,
            "tg_nn_batchnorm1d: eps = inf is outside (0, inf)");
    /* no arguments: they always succeed, and clear the status */
    ok = tg_nn_flatten();
    CHECK(ok && tg_nn_last_status()->code == TG_OK && tg_nn_last_status()->msg[0] == '\0');
    tg_nn_free(ok);
    refused(tg_nn_batchnorm2d(0, 0.1, 1e-5, TG_F32), TG_EARG, "channels");
    ok = tg_nn_global_avg_pool2d();
    CHECK(ok && tg_nn_last_status()->code == TG_OK);
    tg_nn_free(ok);
    /* appending a failed constructor keeps its reason */
    tg_module *s = tg_nn_sequential();
    CHECK(tg_nn_append(s, tg_nn_conv2d(3, 4, 3, 3, &(tg_conv2d_opts){.groups = 2}, true, TG_F32)) ==
          TG_EARG);
    CHECK_STR_HAS(tg_nn_last_status()->msg, "tg_nn_conv2d: groups = 2 does not divide in_ch = 3");
    tg_nn_free(s);
}

/* ---- describe ---- */
static char *text_of(const tg_module *m, int nd, const int64_t *shape, int *rc)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    *rc = nd < 0 ? tg_nn_describe(m, f) : tg_nn_describe_shape(m, nd, shape, f);
    fclose(f);
    return text;
}

static void test_describe(void)
{
    tg_module *s = tg_nn_sequential(), *inner = tg_nn_sequential();
    tg_conv2d_opts co = {{1, 2}, {1, 0}, {0, 2}, 2};
    tg_pool2d_opts po = {{2, 2}, {0, 0}, {0, 1}};
    tg_nn_append(s, tg_nn_conv2d(2, 4, 3, 2, &co, true, TG_F32));
    tg_nn_append(s, tg_nn_batchnorm2d(4, 0.1, 1e-5, TG_F32));
    tg_nn_append(inner, tg_nn_activation("relu", 0, TG_F32));
    tg_nn_append(inner, tg_nn_max_pool2d(&po));
    tg_nn_append(s, inner);
    tg_nn_append(s, tg_nn_avg_pool2d(&(tg_pool2d_opts){{2, 1}, {1, 1}, {0, 0}}));
    tg_nn_append(s, tg_nn_conv2d(4, 3, 1, 1, NULL, false, TG_F32));
    tg_nn_append(s, tg_nn_flatten());
    tg_nn_append(s, tg_nn_linear(3 * 3 * 2, 5, TG_F32));
    int rc;
    char *t = text_of(s, -1, NULL, &rc);
    CHECK(rc == TG_OK);
    CHECK_STR_HAS(t, "sequential (7 layers)\n"
                     "  conv2d 2 -> 4, kernel 3x2, stride 1x2, padding 1x0, dilation 1x2, "
                     "groups 2 (weight [4,1,3,2], bias [4])\n"
                     "  batchnorm2d 4 (momentum 0.1, eps 1e-05)\n"
                     "  sequential (2 layers)\n"
                     "    relu\n"
                     "    max_pool2d kernel 2x2, stride 2x2, padding 0x1\n"
                     "  avg_pool2d kernel 2x1, stride 1x1, padding 0x0\n"
                     "  conv2d 4 -> 3, kernel 1x1, stride 1x1, padding 0x0, dilation 1x1, "
                     "groups 1 (weight [3,4,1,1], no bias)\n"
                     "  flatten\n"
                     "  linear 18 -> 5 (weight [18,5], bias [5])\n");
    free(t);
    /* [2,2,7,9]: conv (7+2-3)/1+1 = 7, (9-2·1-1)/2+1 = 4; max pool 3, 3 (padding 1: (4+2-2)/2+1);
     * avg pool 2, 3; flatten 3·2·3 = 18 */
    t = text_of(s, 4, (int64_t[]){2, 2, 7, 9}, &rc);
    CHECK(rc == TG_OK);
    CHECK_STR_HAS(t, "input [2,2,7,9]\n"
                     "sequential (7 layers): out [2,5], 143 params\n"
                     "  conv2d 2 -> 4, kernel 3x2, stride 1x2, padding 1x0, dilation 1x2, "
                     "groups 2 (weight [4,1,3,2], bias [4]): out [2,4,7,4], 28 params\n"
                     "  batchnorm2d 4 (momentum 0.1, eps 1e-05): out [2,4,7,4], 8 params\n"
                     "  sequential (2 layers): out [2,4,3,3], 0 params\n"
                     "    relu: out [2,4,7,4], 0 params\n"
                     "    max_pool2d kernel 2x2, stride 2x2, padding 0x1: out [2,4,3,3], 0 params\n"
                     "  avg_pool2d kernel 2x1, stride 1x1, padding 0x0: out [2,4,2,3], 0 params\n"
                     "  conv2d 4 -> 3, kernel 1x1, stride 1x1, padding 0x0, dilation 1x1, "
                     "groups 1 (weight [3,4,1,1], no bias): out [2,3,2,3], 12 params\n"
                     "  flatten: out [2,18], 0 params\n"
                     "  linear 18 -> 5 (weight [18,5], bias [5]): out [2,5], 95 params\n");
    CHECK(tg_nn_n_weights(s) == 143);
    free(t);
    /* the shapes are those of the real forward */
    tg_tape *tp = tg_tape_new();
    tg_rng r;
    tg_rng_seed(&r, 4);
    tg_tensor *x = randn(TG_F32, 4, (int64_t[]){2, 2, 7, 9}, &r);
    tg_tensor *y = tg_nn_forward(s, tp, x);
    CHECK(y && tg_tensor_ndim(y) == 2 && tg_tensor_dim(y, 0) == 2 && tg_tensor_dim(y, 1) == 5);
    tg_tape_free(tp);
    tg_tensor_free(x);
    /* a layer that does not fit: its line says why, and nothing follows */
    t = text_of(s, 4, (int64_t[]){1, 3, 7, 9}, &rc);
    CHECK(rc == TG_ESHAPE);
    CHECK_STR_HAS(t, "sequential (7 layers): out ?, 143 params\n  conv2d 2 -> 4");
    CHECK_STR_HAS(t,
                  "(weight [4,1,3,2], bias [4]): does not fit: input [1,3,7,9], want [N,2,H,W]\n");
    CHECK(!strstr(t, "batchnorm2d"));
    free(t);
    t = text_of(s, 4, (int64_t[]){1, 2, 7, 2}, &rc); /* width 2 < dilated kernel 3 */
    CHECK(rc == TG_ESHAPE);
    CHECK_STR_HAS(t, "does not fit: input [1,2,7,2]: the kernel (3 wide with dilation) is larger "
                     "than the padded input (2) on axis 3\n");
    free(t);
    t = text_of(s, 4, (int64_t[]){1, 2, 2, 9}, &rc); /* max pool: 2 rows, avg pool then 1 */
    CHECK(rc == TG_ESHAPE);
    CHECK_STR_HAS(t, "avg_pool2d kernel 2x1, stride 1x1, padding 0x0: does not fit: input "
                     "[1,4,1,3]: the kernel (2) is larger than the padded input (1) on axis 2\n");
    free(t);
    t = text_of(s, 3, (int64_t[]){2, 7, 9}, &rc);
    CHECK(rc == TG_ESHAPE);
    CHECK_STR_HAS(t, "does not fit: input [2,7,9], want [N,2,H,W]\n");
    free(t);
    /* layers elsewhere: linear on [..., in], flatten of a matrix, global pooling */
    tg_module *s2 = tg_nn_sequential();
    tg_nn_append(s2, tg_nn_global_avg_pool2d());
    tg_nn_append(s2, tg_nn_flatten());
    tg_nn_append(s2, tg_nn_linear(6, 2, TG_F64));
    tg_nn_append(s2, tg_nn_batchnorm1d(2, 0.1, 1e-5, TG_F64));
    t = text_of(s2, 4, (int64_t[]){0, 6, 3, 3}, &rc);
    CHECK(rc == TG_OK);
    CHECK_STR_HAS(t, "  global_avg_pool2d: out [0,6], 0 params\n  flatten: out [0,6], 0 params\n"
                     "  linear 6 -> 2 (weight [6,2], bias [2]): out [0,2], 14 params\n"
                     "  batchnorm1d 2 (momentum 0.1, eps 1e-05): out [0,2], 4 params\n");
    free(t);
    t = text_of(s2, 2, (int64_t[]){4, 6}, &rc);
    CHECK(rc == TG_ESHAPE);
    CHECK_STR_HAS(t, "global_avg_pool2d: does not fit: input [4,6], want [N,C,H,W]\n");
    free(t);
    /* bad calls */
    FILE *devnull = fopen("/dev/null", "w");
    CHECK(tg_nn_describe_shape(NULL, 2, (int64_t[]){1, 2}, devnull) == TG_EARG);
    CHECK(tg_nn_describe_shape(s2, 2, (int64_t[]){1, 2}, NULL) == TG_EARG);
    CHECK(tg_nn_describe_shape(s2, 2, NULL, devnull) == TG_EARG);
    CHECK(tg_nn_describe_shape(s2, 7, (int64_t[]){1, 1, 1, 1, 1, 1, 1}, devnull) == TG_EARG);
    CHECK(tg_nn_describe_shape(s2, -1, NULL, devnull) == TG_EARG);
    CHECK(tg_nn_describe_shape(s2, 2, (int64_t[]){-1, 2}, devnull) == TG_EARG);
    CHECK(tg_nn_describe_shape(s2, 4, (int64_t[]){1 << 20, 1 << 20, 1 << 20, 2}, devnull) ==
          TG_EARG);
    fclose(devnull);
    tg_nn_free(s2);
    tg_nn_free(s);
}

/* LeCun's diagonal goes through none of the CNN layers: refused, not miscomputed. */
static void test_lecun_refuses(void)
{
    tg_pool2d_opts po = {{2, 2}, {0, 0}, {0, 0}};
    tg_module *layers[4] = {tg_nn_conv2d(1, 2, 3, 3, NULL, true, TG_F64), tg_nn_max_pool2d(&po),
                            tg_nn_global_avg_pool2d(), tg_nn_flatten()};
    const char *names[4] = {"a conv2d layer", "a max pool layer", "a global average pool layer",
                            "a flatten layer"};
    for (int i = 0; i < 4; i++) {
        tg_module *s = tg_nn_sequential();
        tg_nn_append(s, layers[i]);
        tg_nn_append(s, tg_nn_linear(i == 0 ? 2 * 2 * 2 : i == 1 ? 2 : i == 2 ? 1 : 16, 2, TG_F64));
        tg_tensor *params[4], *diag[4];
        int n = tg_nn_params(s, params, 4);
        for (int k = 0; k < n; k++) diag[k] = tg_tensor_clone(params[k]);
        tg_rng r;
        tg_rng_seed(&r, 8);
        tg_tensor *x = randn(TG_F64, 4, (int64_t[]){2, 1, 4, 4}, &r);
        tg_tape *tp = tg_tape_new();
        CHECK(tg_hessian_diag_lecun(s, tp, x, TG_OBD_MSE, diag) == TG_EARG);
        CHECK_STR_HAS(tg_tape_error(tp), names[i]);
        tg_tape_free(tp);
        tg_tensor_free(x);
        for (int k = 0; k < n; k++) tg_tensor_free(diag[k]);
        tg_nn_free(s);
    }
}

static const check_case TESTS[] = {TEST(test_forward_is_op), TEST(test_cnn_gradcheck),
                                   TEST(test_init),          TEST(test_save_load),
                                   TEST(test_bad_args),      TEST(test_describe),
                                   TEST(test_lecun_refuses)};

TEST_MAIN("test_nn_conv", TESTS)
