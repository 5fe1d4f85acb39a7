/* nn/module.c: layers and the Sequential container. Every forward is a composition of ops;
 * nothing here computes a gradient. */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define MAX_LEVELS 64 /* of a tree: tg_nn_append refuses deeper nesting */

static bool has_tensors(const tg_module *m) { return m->n_p + m->n_buf > 0 || m->has_tensors; }

/* Why the last constructor or tg_nn_append called on this thread failed (tg_nn_last_status);
 * made_null: that was a constructor, and no tg_nn_append came after it. */
static _Thread_local tg_status last;
static _Thread_local bool made_null;

const tg_status *tg_nn_last_status(void) { return &last; }

/* Records code and the message as the reason of this failure; returns code. */
static int fail(int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static int fail(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    last.code = code;
    vsnprintf(last.msg, sizeof last.msg, fmt, ap);
    va_end(ap);
    made_null = true; /* tg_nn_append puts it back for its own failures */
    return code;
}

static void clear_status(void) { last.code = TG_OK, last.msg[0] = '\0', made_null = false; }

static bool dtype_ok(const char *fn, tg_dtype dt)
{
    if (dt == TG_F32 || dt == TG_F64) return true;
    fail(TG_EDTYPE, "%s: dtype %d is neither TG_F32 nor TG_F64", fn, (int)dt);
    return false;
}

static tg_module *module_new(const char *fn, int kind, tg_dtype dt)
{
    if (!dtype_ok(fn, dt)) return NULL;
    tg_module *m = calloc(1, sizeof *m);
    if (!m) {
        fail(TG_ENOMEM, "%s: out of memory", fn);
        return NULL;
    }
    m->levels = 1;
    m->kind = kind;
    m->dtype = dt;
    m->training = true;
    return m;
}

/* A parameter leaf of the given shape, requiring a gradient. */
static tg_tensor *param(tg_dtype dt, int ndim, const int64_t *shape, double fill)
{
    tg_tensor *t = tg_tensor_new(dt, ndim, shape);
    if (!t) return NULL;
    tg_tensor_fill(t, fill);
    tg_set_requires_grad(t, true);
    return t;
}

/* Frees m and everything in it, whatever its container. */
static void free_tree(tg_module *m)
{
    for (int i = 0; i < m->n_children; i++) free_tree(m->children[i]);
    free(m->children);
    for (int i = 0; i < NN_MAX_P; i++) tg_tensor_free(m->p[i]), tg_tensor_free(m->buf[i]);
    free(m);
}

/* A constructor's failure to allocate its tensors: frees the half-made module. */
static tg_module *no_memory(const char *fn, tg_module *m)
{
    free_tree(m);
    fail(TG_ENOMEM, "%s: cannot allocate its tensors (out of memory, or too large)", fn);
    return NULL;
}

tg_module *tg_nn_linear(int64_t in, int64_t out, tg_dtype dt)
{
    clear_status();
    if (in < 1 || out < 1) {
        fail(TG_EARG, "tg_nn_linear: %s = %lld, want >= 1", in < 1 ? "in" : "out",
             (long long)(in < 1 ? in : out));
        return NULL;
    }
    if (in > INT64_MAX / out) {
        fail(TG_EARG, "tg_nn_linear: %lld x %lld weights do not fit in 64 bits", (long long)in,
             (long long)out);
        return NULL;
    }
    tg_module *m = module_new("tg_nn_linear", NN_LINEAR, dt);
    if (!m) return NULL;
    int64_t ws[2] = {in, out}, bs[1] = {out};
    m->p[0] = param(dt, 2, ws, 0);
    m->p[1] = param(dt, 1, bs, 0);
    m->n_p = 2;
    if (!m->p[0] || !m->p[1]) return no_memory("tg_nn_linear", m);
    tg_rng rng;
    tg_rng_seed(&rng, 0);
    tg_nn_init(m, TG_INIT_UNIFORM, 0, &rng);
    return m;
}

static const char *const ACTS[] = {"identity", "sigmoid", "tanh", "relu",    "leaky_relu", "elu",
                                   "softplus", "step",    "sign", "softmax", "log_softmax"};
enum {
    A_IDENTITY,
    A_SIGMOID,
    A_TANH,
    A_RELU,
    A_LEAKY,
    A_ELU,
    A_SOFTPLUS,
    A_STEP,
    A_SIGN,
    A_SOFTMAX,
    A_LOG_SOFTMAX,
    N_ACTS
};

int tg_nn_act_id(const char *name)
{
    for (int i = 0; name && i < N_ACTS; i++)
        if (strcmp(name, ACTS[i]) == 0) return i;
    return -1;
}

tg_module *tg_nn_activation(const char *name, double alpha, tg_dtype dt)
{
    clear_status();
    int id = tg_nn_act_id(name);
    if (id < 0) {
        fail(TG_EARG,
             "tg_nn_activation: unknown activation '%s' (known: identity, sigmoid, "
             "tanh, relu, leaky_relu, elu, softplus, step, sign, softmax, log_softmax)",
             name ? name : "(null)");
        return NULL;
    }
    if (!isfinite(alpha)) {
        fail(TG_EARG, "tg_nn_activation: %s: alpha = %g, want a finite number", name, alpha);
        return NULL;
    }
    tg_module *m = module_new("tg_nn_activation", NN_ACT, dt);
    if (!m) return NULL;
    m->act = id;
    m->alpha = alpha != 0 ? alpha : id == A_LEAKY ? 0.01 : 1.0;
    return m;
}

tg_module *tg_nn_prelu(int64_t channels, double init, tg_dtype dt)
{
    clear_status();
    if (channels < 1) {
        fail(TG_EARG, "tg_nn_prelu: channels = %lld, want >= 1", (long long)channels);
        return NULL;
    }
    if (!isfinite(init)) {
        fail(TG_EARG, "tg_nn_prelu: init = %g, want a finite number", init);
        return NULL;
    }
    tg_module *m = module_new("tg_nn_prelu", NN_PRELU, dt);
    if (!m) return NULL;
    m->p[0] = param(dt, 1, &channels, init);
    m->n_p = 1;
    if (!m->p[0]) return no_memory("tg_nn_prelu", m);
    return m;
}

tg_module *tg_nn_dropout(double p)
{
    clear_status();
    if (!(p >= 0 && p < 1)) { /* also NaN */
        fail(TG_EARG, "tg_nn_dropout: p = %g is outside [0, 1)", p);
        return NULL;
    }
    tg_module *m = module_new("tg_nn_dropout", NN_DROPOUT, TG_F32);
    if (m) m->alpha = p;
    return m;
}

/* Batch norm over n channels (fn and arg name the constructor and its size argument):
 * gamma 1, beta 0, running mean 0 and variance 1. */
static tg_module *batchnorm(const char *fn, const char *arg, int64_t n, double momentum, double eps,
                            tg_dtype dt)
{
    clear_status();
    if (n < 1) {
        fail(TG_EARG, "%s: %s = %lld, want >= 1", fn, arg, (long long)n);
        return NULL;
    }
    if (!(momentum >= 0 && momentum <= 1)) {
        fail(TG_EARG, "%s: momentum = %g is outside [0, 1]", fn, momentum);
        return NULL;
    }
    if (!(eps > 0 && isfinite(eps))) {
        fail(TG_EARG, "%s: eps = %g is outside (0, inf)", fn, eps);
        return NULL;
    }
    tg_module *m = module_new(fn, NN_BATCHNORM, dt);
    if (!m) return NULL;
    m->p[0] = param(dt, 1, &n, 1);
    m->p[1] = param(dt, 1, &n, 0);
    m->n_p = 2;
    m->buf[0] = tg_tensor_new(dt, 1, &n);
    m->buf[1] = tg_tensor_new(dt, 1, &n);
    m->n_buf = 2;
    m->momentum = momentum, m->eps = eps;
    if (!m->p[0] || !m->p[1] || !m->buf[0] || !m->buf[1]) return no_memory(fn, m);
    tg_tensor_fill(m->buf[1], 1);
    return m;
}

tg_module *tg_nn_batchnorm1d(int64_t features, double momentum, double eps, tg_dtype dt)
{
    return batchnorm("tg_nn_batchnorm1d", "features", features, momentum, eps, dt);
}

tg_module *tg_nn_batchnorm2d(int64_t channels, double momentum, double eps, tg_dtype dt)
{
    tg_module *m = batchnorm("tg_nn_batchnorm2d", "channels", channels, momentum, eps, dt);
    if (m) m->bn2d = true;
    return m;
}

/* Window geometry limit: sizes past it would overflow the output size arithmetic. */
#define GEOM_MAX ((int64_t)1 << 40)

/* Checks one geometry value v (name[axis] of fn): lo <= v <= GEOM_MAX. */
static bool geom_ok(const char *fn, const char *name, int axis, int64_t v, int64_t lo,
                    const char *note)
{
    if (v >= lo && v <= GEOM_MAX) return true;
    if (axis < 0)
        fail(TG_EARG, "%s: %s = %lld, want %lld..2^40%s", fn, name, (long long)v, (long long)lo,
             note);
    else
        fail(TG_EARG, "%s: %s[%d] = %lld, want %lld..2^40%s", fn, name, axis, (long long)v,
             (long long)lo, note);
    return false;
}

tg_module *tg_nn_conv2d(int64_t in_ch, int64_t out_ch, int64_t kh, int64_t kw,
                        const tg_conv2d_opts *o, bool bias, tg_dtype dt)
{
    static const char fn[] = "tg_nn_conv2d";
    clear_status();
    tg_conv2d_opts c = {0};
    if (o) c = *o;
    if (in_ch < 1 || out_ch < 1) {
        fail(TG_EARG, "%s: %s = %lld, want >= 1", fn, in_ch < 1 ? "in_ch" : "out_ch",
             (long long)(in_ch < 1 ? in_ch : out_ch));
        return NULL;
    }
    if (!geom_ok(fn, "kh", -1, kh, 1, "") || !geom_ok(fn, "kw", -1, kw, 1, "")) return NULL;
    for (int a = 0; a < 2; a++)
        if (!geom_ok(fn, "stride", a, c.stride[a], 0, " (0 means 1)") ||
            !geom_ok(fn, "padding", a, c.padding[a], 0, "") ||
            !geom_ok(fn, "dilation", a, c.dilation[a], 0, " (0 means 1)"))
            return NULL;
    for (int a = 0; a < 2; a++) { /* both factors <= 2^40: no overflow */
        int64_t k = a ? kw : kh, ext = (c.dilation[a] ? c.dilation[a] : 1) * (k - 1) + 1;
        if (ext > GEOM_MAX) {
            fail(TG_EARG,
                 "%s: the dilated kernel on axis %d, dilation[%d] (k - 1) + 1 = %lld, "
                 "is more than 2^40",
                 fn, 2 + a, a, (long long)ext);
            return NULL;
        }
    }
    if (c.groups < 0) {
        fail(TG_EARG, "%s: groups = %lld, want >= 0 (0 means 1)", fn, (long long)c.groups);
        return NULL;
    }
    int64_t g = c.groups ? c.groups : 1;
    if (in_ch % g || out_ch % g) {
        fail(TG_EARG, "%s: groups = %lld does not divide %s = %lld", fn, (long long)g,
             in_ch % g ? "in_ch" : "out_ch", (long long)(in_ch % g ? in_ch : out_ch));
        return NULL;
    }
    int64_t ws[4] = {out_ch, in_ch / g, kh, kw}, numel = 1;
    for (int d = 0; d < 4; d++) {
        if (numel > TG_MAX_NUMEL / ws[d]) {
            fail(TG_EARG, "%s: %lld x %lld x %lld x %lld weights are more than 2^48", fn,
                 (long long)ws[0], (long long)ws[1], (long long)kh, (long long)kw);
            return NULL;
        }
        numel *= ws[d];
    }
    tg_module *m = module_new(fn, NN_CONV2D, dt);
    if (!m) return NULL;
    m->conv = c;
    m->kernel[0] = kh, m->kernel[1] = kw;
    m->p[0] = param(dt, 4, ws, 0);
    m->n_p = 1;
    if (bias) m->p[m->n_p++] = param(dt, 1, &out_ch, 0);
    if (!m->p[0] || (bias && !m->p[1])) return no_memory(fn, m);
    tg_rng rng;
    tg_rng_seed(&rng, 0);
    tg_nn_init(m, TG_INIT_UNIFORM, 0, &rng);
    return m;
}

/* A pooling layer of kind (max or average) over o's windows. */
static tg_module *pool(const char *fn, int kind, const tg_pool2d_opts *o)
{
    clear_status();
    if (!o) {
        fail(TG_EARG, "%s: the options are NULL (the kernel size is needed)", fn);
        return NULL;
    }
    for (int a = 0; a < 2; a++)
        if (!geom_ok(fn, "kernel", a, o->kernel[a], 1, "") ||
            !geom_ok(fn, "stride", a, o->stride[a], 0, " (0 means the kernel size)") ||
            !geom_ok(fn, "padding", a, o->padding[a], 0, ""))
            return NULL;
    for (int a = 0; a < 2; a++)
        if (o->padding[a] > o->kernel[a] / 2) {
            fail(TG_EARG, "%s: padding[%d] = %lld is more than half the kernel (%lld)", fn, a,
                 (long long)o->padding[a], (long long)o->kernel[a]);
            return NULL;
        }
    tg_module *m = module_new(fn, kind, TG_F32);
    if (m) m->pool = *o;
    return m;
}

tg_module *tg_nn_max_pool2d(const tg_pool2d_opts *o)
{
    return pool("tg_nn_max_pool2d", NN_MAX_POOL2D, o);
}

tg_module *tg_nn_avg_pool2d(const tg_pool2d_opts *o)
{
    return pool("tg_nn_avg_pool2d", NN_AVG_POOL2D, o);
}

tg_module *tg_nn_global_avg_pool2d(void)
{
    clear_status();
    return module_new("tg_nn_global_avg_pool2d", NN_GLOBAL_AVG_POOL2D, TG_F32);
}

tg_module *tg_nn_flatten(void)
{
    clear_status();
    return module_new("tg_nn_flatten", NN_FLATTEN, TG_F32);
}

tg_module *tg_nn_sequential(void)
{
    clear_status();
    return module_new("tg_nn_sequential", NN_SEQUENTIAL, TG_F32);
}

/* tg_nn_append's checks and work; fail() records the reason of a refusal. */
static int append(tg_module *seq, tg_module *m)
{
    if (!m) return fail(TG_EARG, "tg_nn_append: the layer is NULL");
    /* Refusals that leave m to whoever has it: its container, or the caller when m holds seq. */
    if (m->parent)
        return fail(TG_EARG, "tg_nn_append: the layer is already in a container (a module "
                             "belongs to one container)");
    int depth = 0; /* containers from seq's root down to seq */
    for (const tg_module *c = seq; c; c = c->parent, depth++)
        if (c == m)
            return fail(TG_EARG,
                        "tg_nn_append: the layer %s the container: the tree would "
                        "contain itself",
                        m == seq ? "is" : "holds");
    /* The other refusals take ownership of m: it is freed. A tree takes the dtype of its
     * first layer with tensors (dropout and activations have none), so one saved file has
     * one dtype; ops refuse mixed dtypes anyway. */
    tg_module *root = seq;
    while (root && root->parent) root = root->parent;
    bool m_has = has_tensors(m);
    int rc = TG_OK;
    if (!seq || seq->kind != NN_SEQUENTIAL)
        rc = fail(TG_EARG, "tg_nn_append: %s",
                  seq ? "the container is not a sequential" : "the container is NULL");
    else if (depth + m->levels > MAX_LEVELS)
        rc = fail(TG_EARG, "tg_nn_append: the tree would be %d levels deep, more than %d",
                  depth + m->levels, MAX_LEVELS);
    else if (m_has && has_tensors(root) && m->dtype != root->dtype)
        rc = fail(TG_EDTYPE, "tg_nn_append: the layer is %s, the model %s", tg_dtype_name(m->dtype),
                  tg_dtype_name(root->dtype));
    else if (seq->n_children == seq->cap) {
        int cap = seq->cap < INT_MAX / 2 ? (seq->cap ? 2 * seq->cap : 8) : 0;
        tg_module **c = cap ? realloc(seq->children, (size_t)cap * sizeof *c) : NULL;
        if (c) seq->children = c, seq->cap = cap;
        else rc = fail(TG_ENOMEM, "tg_nn_append: out of memory");
    }
    if (rc) {
        free_tree(m);
        return rc;
    }
    /* NOLINTNEXTLINE(clang-analyzer-core.NullDereference): NULL seq returned above */
    seq->children[seq->n_children++] = m;
    m->parent = seq;
    for (tg_module *c = seq, *child = m; c; child = c, c = c->parent) {
        if (c->levels < child->levels + 1) c->levels = child->levels + 1;
        if (m_has) c->has_tensors = true, c->dtype = m->dtype;
    }
    tg_nn_set_training(m, seq->training);
    return TG_OK;
}

int tg_nn_append(tg_module *seq, tg_module *m)
{
    /* tg_nn_append(seq, tg_nn_linear(...)) keeps the failed constructor's reason */
    if (!m && made_null) {
        made_null = false;
        return last.code;
    }
    clear_status();
    int rc = append(seq, m);
    made_null = false;
    return rc;
}

tg_module *tg_nn_mlp(int n, const int64_t *sizes, const char *act, double dropout, bool batchnorm,
                     tg_dtype dt, tg_status *st)
{
    if (n < 2 || !sizes) {
        tg_status_set(st, TG_EARG, "tg_nn_mlp: want at least 2 layer sizes, got %d", n);
        return NULL;
    }
    for (int i = 0; i < n; i++)
        if (sizes[i] <= 0) {
            tg_status_set(st, TG_EARG, "tg_nn_mlp: layer size %d is %lld, want > 0", i,
                          (long long)sizes[i]);
            return NULL;
        }
    if (tg_nn_act_id(act) < 0) {
        tg_status_set(st, TG_EARG, "tg_nn_mlp: unknown activation '%s'", act ? act : "(null)");
        return NULL;
    }
    if (!(dropout >= 0 && dropout < 1)) {
        tg_status_set(st, TG_EARG, "tg_nn_mlp: dropout %g, want 0 <= p < 1", dropout);
        return NULL;
    }
    if (dt != TG_F32 && dt != TG_F64) {
        tg_status_set(st, TG_EDTYPE, "tg_nn_mlp: unknown dtype %d", (int)dt);
        return NULL;
    }
    tg_module *seq = tg_nn_sequential();
    int rc = seq ? TG_OK : TG_ENOMEM;
    for (int i = 0; i + 1 < n && !rc; i++) {
        rc = tg_nn_append(seq, tg_nn_linear(sizes[i], sizes[i + 1], dt));
        if (i + 2 == n || rc) continue;
        if (batchnorm) rc = tg_nn_append(seq, tg_nn_batchnorm1d(sizes[i + 1], 0.1, 1e-5, dt));
        if (!rc) rc = tg_nn_append(seq, tg_nn_activation(act, 0, dt));
        if (!rc && dropout > 0) rc = tg_nn_append(seq, tg_nn_dropout(dropout));
    }
    if (rc) {
        /* the reason of the layer or the append that failed */
        tg_status why = last;
        tg_nn_free(seq);
        tg_status_set(st, why.code ? why.code : rc, "tg_nn_mlp: %s",
                      why.msg[0] ? why.msg : "out of memory");
        return NULL;
    }
    /* One generator for the whole model: layers of equal shape must not start equal. */
    tg_rng rng;
    tg_rng_seed(&rng, 0);
    tg_nn_init(seq, TG_INIT_UNIFORM, 0, &rng);
    return seq;
}

void tg_nn_free(tg_module *m)
{
    if (!m || m->parent) return; /* a module in a container goes with the container */
    free_tree(m);
}

/* The tensor the forward uses for parameter i: the bound one, if any. */
static tg_tensor *P(const tg_module *m, int i) { return m->bound[i] ? m->bound[i] : m->p[i]; }

/* A linear layer followed by one of the activations tg_linear_act takes: Sequential records
 * the pair as one linear_act node (same function, fewer passes over the output). */
static bool fused_act(const tg_module *lin, const tg_module *next, tg_act *act, double *alpha)
{
    if (lin->kind != NN_LINEAR || next->kind != NN_ACT) return false;
    *alpha = 0;
    switch (next->act) {
    case A_RELU: *act = TG_ACT_RELU; return true;
    case A_TANH: *act = TG_ACT_TANH; return true;
    case A_SIGMOID: *act = TG_ACT_SIGMOID; return true;
    case A_LEAKY:
        *act = TG_ACT_LEAKY_RELU, *alpha = next->alpha;
        return next->alpha >= 0; /* its gradient is read off the output */
    default: return false;
    }
}

/* x [N, ...] as [N, product of the rest]; a matrix is returned as it is. */
static tg_tensor *flatten(tg_tape *tp, tg_tensor *x)
{
    int nd = tg_tensor_ndim(x);
    if (nd < 2) {
        char a[64];
        tg_tape_fail(tp, TG_ESHAPE,
                     "tg_nn_forward: flatten: x is %s, want [N, ...] of 2 or more "
                     "dimensions",
                     tg_shape_str(x, a, sizeof a));
        return NULL;
    }
    if (nd == 2) return x;
    int64_t shape[2] = {tg_tensor_dim(x, 0), 1};
    for (int d = 1; d < nd; d++) shape[1] *= tg_tensor_dim(x, d);
    return tg_reshape(tp, x, 2, shape);
}

tg_tensor *tg_nn_forward(tg_module *m, tg_tape *tp, tg_tensor *x)
{
    if (!tp) return NULL;
    if (!m) {
        tg_tape_fail(tp, TG_EARG, "tg_nn_forward: module is NULL");
        return NULL;
    }
    if (!x) { /* an earlier failure in the caller's graph, or a NULL input */
        tg_tape_fail(tp, TG_EARG, "tg_nn_forward: input is NULL");
        return NULL;
    }
    switch (m->kind) {
    case NN_LINEAR: return tg_linear(tp, x, P(m, 0), P(m, 1));
    case NN_PRELU: return tg_prelu(tp, x, P(m, 0));
    case NN_DROPOUT: return tg_dropout(tp, x, m->alpha, m->training);
    case NN_CONV2D: return tg_conv2d(tp, x, P(m, 0), m->n_p > 1 ? P(m, 1) : NULL, &m->conv);
    case NN_MAX_POOL2D: return tg_max_pool2d(tp, x, &m->pool);
    case NN_AVG_POOL2D: return tg_avg_pool2d(tp, x, &m->pool);
    case NN_GLOBAL_AVG_POOL2D: return tg_global_avg_pool2d(tp, x);
    case NN_FLATTEN: return flatten(tp, x);
    case NN_BATCHNORM:
        if (m->bn2d && tg_tensor_ndim(x) != 4) {
            char a[64];
            tg_tape_fail(tp, TG_ESHAPE, "tg_nn_forward: batchnorm2d: x is %s, want [N,C,H,W]",
                         tg_shape_str(x, a, sizeof a));
            return NULL;
        }
        return tg_batch_norm(tp, x, P(m, 0), P(m, 1), m->buf[0], m->buf[1], m->momentum, m->eps,
                             m->training);
    case NN_SEQUENTIAL:
        for (int i = 0; i < m->n_children && x; i++) {
            tg_act act;
            double alpha;
            if (i + 1 < m->n_children &&
                fused_act(m->children[i], m->children[i + 1], &act, &alpha)) {
                const tg_module *lin = m->children[i++];
                x = tg_linear_act(tp, x, P(lin, 0), P(lin, 1), act, alpha);
            } else {
                x = tg_nn_forward(m->children[i], tp, x);
            }
        }
        return x;
    default: break;
    }
    switch (m->act) {
    case A_IDENTITY: return x;
    case A_SIGMOID: return tg_sigmoid(tp, x);
    case A_TANH: return tg_tanh(tp, x);
    case A_RELU: return tg_relu(tp, x);
    case A_LEAKY: return tg_leaky_relu(tp, x, m->alpha);
    case A_ELU: return tg_elu(tp, x, m->alpha);
    case A_SOFTPLUS: return tg_softplus(tp, x);
    case A_STEP: return tg_step(tp, x);
    case A_SIGN: return tg_sign(tp, x);
    case A_SOFTMAX: return tg_softmax(tp, x, -1);
    default: return tg_log_softmax(tp, x, -1);
    }
}

void tg_nn_set_training(tg_module *m, bool training)
{
    if (!m) return;
    m->training = training;
    for (int i = 0; i < m->n_children; i++) tg_nn_set_training(m->children[i], training);
}

bool tg_nn_training(const tg_module *m) { return m && m->training; }

/* Depth-first walk over the parameters (buffers too when with_buf); calls fn on each. */
int tg_nn_walk(const tg_module *m, bool with_buf, void (*fn)(tg_tensor *t, void *ctx), void *ctx)
{
    if (!m) return 0;
    int n = 0;
    for (int i = 0; i < m->n_p; i++, n++)
        if (fn) fn(m->p[i], ctx);
    for (int i = 0; with_buf && i < m->n_buf; i++, n++)
        if (fn) fn(m->buf[i], ctx);
    for (int i = 0; i < m->n_children; i++) n += tg_nn_walk(m->children[i], with_buf, fn, ctx);
    return n;
}

typedef struct collect {
    tg_tensor **out;
    int max, n;
} collect;

static void collect_one(tg_tensor *t, void *ctx)
{
    collect *c = ctx;
    if (c->n < c->max) c->out[c->n] = t;
    c->n++;
}

int tg_nn_collect(const tg_module *m, bool with_buf, tg_tensor **out, int max)
{
    collect c = {out, out ? max : 0, 0};
    tg_nn_walk(m, with_buf, collect_one, &c);
    return c.n;
}

int tg_nn_params(tg_module *m, tg_tensor **out, int max)
{
    return tg_nn_collect(m, false, out, max);
}
int tg_nn_n_params(const tg_module *m) { return tg_nn_walk(m, false, NULL, NULL); }

static void count_elems(tg_tensor *t, void *ctx) { *(int64_t *)ctx += tg_tensor_numel(t); }

int64_t tg_nn_n_weights(const tg_module *m)
{
    int64_t n = 0;
    tg_nn_walk(m, false, count_elems, &n);
    return n;
}

/* Binds params[*k...] into m and its children, in tg_nn_params order. */
static int bind(tg_module *m, tg_tensor *const *params, int n, int *k)
{
    for (int i = 0; i < m->n_p; i++, (*k)++) {
        if (*k >= n) return TG_EARG;
        tg_tensor *t = params[*k], *own = m->p[i];
        if (!t || tg_tensor_dtype(t) != tg_tensor_dtype(own) ||
            tg_tensor_ndim(t) != tg_tensor_ndim(own))
            return TG_ESHAPE;
        for (int d = 0; d < tg_tensor_ndim(own); d++)
            if (tg_tensor_dim(t, d) != tg_tensor_dim(own, d)) return TG_ESHAPE;
    }
    for (int i = 0; i < m->n_children; i++) {
        int rc = bind(m->children[i], params, n, k);
        if (rc) return rc;
    }
    return TG_OK;
}

static void bind_set(tg_module *m, tg_tensor *const *params, int *k)
{
    for (int i = 0; i < m->n_p; i++, (*k)++)
        m->bound[i] = params[*k] == m->p[i] ? NULL : params[*k];
    for (int i = 0; i < m->n_children; i++) bind_set(m->children[i], params, k);
}

int tg_nn_bind_params(tg_module *m, tg_tensor *const *params, int n)
{
    int k = 0;
    if (!m || (!params && n)) return TG_EARG;
    int rc = bind(m, params, n, &k);
    if (rc) return rc;
    if (k != n) return TG_EARG;
    k = 0;
    bind_set(m, params, &k); /* checked in full first: nothing changes on failure */
    return TG_OK;
}

/* "[1,8,26,26]" into buf. */
static const char *dims_str(int nd, const int64_t *s, char *buf, size_t size)
{
    size_t k = (size_t)snprintf(buf, size, "[");
    for (int d = 0; d < nd && k < size; d++)
        k += (size_t)snprintf(buf + k, size - k, "%s%lld", d ? "," : "", (long long)s[d]);
    if (k < size) snprintf(buf + k, size - k, "]");
    return buf;
}

static int64_t or1(int64_t v) { return v ? v : 1; }

/* A pooling layer's stride on axis a: 0 means the kernel size. */
static int64_t pool_stride(const tg_module *m, int a)
{
    return m->pool.stride[a] ? m->pool.stride[a] : m->pool.kernel[a];
}

/* The layer's kind and settings, one line without its newline (a container: its size). */
static void layer_text(const tg_module *m, char *t, size_t size)
{
    char a[64], b[64];
    const tg_conv2d_opts *c = &m->conv;
    const tg_pool2d_opts *o = &m->pool;
    int64_t in_ch = m->kind == NN_CONV2D ? tg_tensor_dim(m->p[0], 1) * or1(c->groups) : 0;
    switch (m->kind) {
    case NN_LINEAR:
        snprintf(t, size, "linear %lld -> %lld (weight %s, bias %s)",
                 (long long)tg_tensor_dim(m->p[0], 0), (long long)tg_tensor_dim(m->p[0], 1),
                 tg_shape_str(m->p[0], a, sizeof a), tg_shape_str(m->p[1], b, sizeof b));
        break;
    case NN_ACT: snprintf(t, size, "%s", ACTS[m->act]); break;
    case NN_PRELU: snprintf(t, size, "prelu (alpha %s)", tg_shape_str(m->p[0], a, sizeof a)); break;
    case NN_DROPOUT: snprintf(t, size, "dropout p=%g", m->alpha); break;
    case NN_BATCHNORM:
        snprintf(t, size, "batchnorm%s %lld (momentum %g, eps %g)", m->bn2d ? "2d" : "1d",
                 (long long)tg_tensor_dim(m->p[0], 0), m->momentum, m->eps);
        break;
    case NN_CONV2D:
        if (m->n_p > 1) snprintf(b, sizeof b, "bias %s", tg_shape_str(m->p[1], a, sizeof a));
        else snprintf(b, sizeof b, "no bias");
        snprintf(t, size,
                 "conv2d %lld -> %lld, kernel %lldx%lld, stride %lldx%lld, padding %lldx%lld, "
                 "dilation %lldx%lld, groups %lld (weight %s, %s)",
                 (long long)in_ch, (long long)tg_tensor_dim(m->p[0], 0), (long long)m->kernel[0],
                 (long long)m->kernel[1], (long long)or1(c->stride[0]),
                 (long long)or1(c->stride[1]), (long long)c->padding[0], (long long)c->padding[1],
                 (long long)or1(c->dilation[0]), (long long)or1(c->dilation[1]),
                 (long long)or1(c->groups), tg_shape_str(m->p[0], a, sizeof a), b);
        break;
    case NN_MAX_POOL2D:
    case NN_AVG_POOL2D:
        snprintf(t, size, "%s kernel %lldx%lld, stride %lldx%lld, padding %lldx%lld",
                 m->kind == NN_MAX_POOL2D ? "max_pool2d" : "avg_pool2d", (long long)o->kernel[0],
                 (long long)o->kernel[1], (long long)pool_stride(m, 0),
                 (long long)pool_stride(m, 1), (long long)o->padding[0], (long long)o->padding[1]);
        break;
    case NN_GLOBAL_AVG_POOL2D: snprintf(t, size, "global_avg_pool2d"); break;
    case NN_FLATTEN: snprintf(t, size, "flatten"); break;
    default: snprintf(t, size, "sequential (%d layers)", m->n_children);
    }
}

static int describe(const tg_module *m, FILE *f, int depth)
{
    char t[320];
    layer_text(m, t, sizeof t);
    fprintf(f, "%*s%s\n", 2 * depth, "", t);
    for (int i = 0; i < m->n_children; i++) describe(m->children[i], f, depth + 1);
    return TG_OK;
}

int tg_nn_describe(const tg_module *m, FILE *f)
{
    if (!m || !f) return TG_EARG;
    return describe(m, f, 0);
}

/* The output size of a window of extent ext (d (k - 1) + 1) sliding with stride st over n
 * elements padded by p on both sides, or -1 when the window is larger than that. */
static int64_t windows(int64_t n, int64_t p, int64_t ext, int64_t st)
{
    int64_t room = n + 2 * p - ext;
    return room < 0 ? -1 : room / st + 1;
}

/* m's output shape for an input of shape (*nd, s), in place: TG_OK, or TG_ESHAPE with the
 * reason in why. The ops' shape rules, without running them. */
static int out_shape(const tg_module *m, int *nd, int64_t *s, char *why, size_t size)
{
    char in[160];
    dims_str(*nd, s, in, sizeof in);
    int64_t c = m->n_p ? tg_tensor_dim(m->p[0], 0) : 0;
    switch (m->kind) {
    case NN_SEQUENTIAL:
        for (int i = 0; i < m->n_children; i++)
            if (out_shape(m->children[i], nd, s, why, size)) return TG_ESHAPE;
        return TG_OK;
    case NN_LINEAR:
        if (*nd < 1 || s[*nd - 1] != c) break;
        s[*nd - 1] = tg_tensor_dim(m->p[0], 1);
        return TG_OK;
    case NN_ACT:
        if (*nd < 1 && (m->act == A_SOFTMAX || m->act == A_LOG_SOFTMAX)) break;
        return TG_OK;
    case NN_PRELU:
        if (c != 1 && (*nd < 1 || s[*nd - 1] != c)) break;
        return TG_OK;
    case NN_DROPOUT: return TG_OK;
    case NN_BATCHNORM:
        if (*nd < 2 || s[1] != c || (m->bn2d && *nd != 4)) break;
        return TG_OK;
    case NN_CONV2D: {
        int64_t g = or1(m->conv.groups), ho[2];
        if (*nd != 4 || s[1] != tg_tensor_dim(m->p[0], 1) * g) break;
        for (int a = 0; a < 2; a++) {
            int64_t ext = or1(m->conv.dilation[a]) * (m->kernel[a] - 1) + 1;
            ho[a] = windows(s[2 + a], m->conv.padding[a], ext, or1(m->conv.stride[a]));
            int64_t padded = s[2 + a] + 2 * m->conv.padding[a];
            if (ho[a] < 1) {
                snprintf(why, size,
                         "input %s: the kernel (%lld wide with dilation) is larger "
                         "than the padded input (%lld) on axis %d",
                         in, (long long)ext, (long long)padded, 2 + a);
                return TG_ESHAPE;
            }
        }
        s[1] = c, s[2] = ho[0], s[3] = ho[1];
        return TG_OK;
    }
    case NN_MAX_POOL2D:
    case NN_AVG_POOL2D: {
        int64_t ho[2];
        if (*nd != 4) break;
        for (int a = 0; a < 2; a++) {
            ho[a] = windows(s[2 + a], m->pool.padding[a], m->pool.kernel[a], pool_stride(m, a));
            int64_t padded = s[2 + a] + 2 * m->pool.padding[a];
            if (ho[a] < 1) {
                snprintf(why, size,
                         "input %s: the kernel (%lld) is larger than the padded input "
                         "(%lld) on axis %d",
                         in, (long long)m->pool.kernel[a], (long long)padded, 2 + a);
                return TG_ESHAPE;
            }
        }
        s[2] = ho[0], s[3] = ho[1];
        return TG_OK;
    }
    case NN_GLOBAL_AVG_POOL2D:
        if (*nd != 4) break;
        *nd = 2;
        return TG_OK;
    case NN_FLATTEN:
        if (*nd < 2) break;
        for (int d = 2; d < *nd; d++) s[1] *= s[d];
        *nd = 2;
        return TG_OK;
    }
    /* a rank or size that does not fit: say what the layer takes */
    char want[64];
    switch (m->kind) {
    case NN_LINEAR: snprintf(want, sizeof want, "[...,%lld]", (long long)c); break;
    case NN_ACT: snprintf(want, sizeof want, "at least 1 dimension"); break;
    case NN_PRELU: snprintf(want, sizeof want, "[...,%lld]", (long long)c); break;
    case NN_BATCHNORM:
        snprintf(want, sizeof want, m->bn2d ? "[N,%lld,H,W]" : "[N,%lld,...]", (long long)c);
        break;
    case NN_CONV2D: {
        int64_t in_ch = tg_tensor_dim(m->p[0], 1) * or1(m->conv.groups);
        snprintf(want, sizeof want, "[N,%lld,H,W]", (long long)in_ch);
        break;
    }
    case NN_FLATTEN: snprintf(want, sizeof want, "[N, ...] of 2 or more dimensions"); break;
    default: snprintf(want, sizeof want, "[N,C,H,W]");
    }
    snprintf(why, size, "input %s, want %s", in, want);
    return TG_ESHAPE;
}

static int describe_shape(const tg_module *m, FILE *f, int depth, int *nd, int64_t *s)
{
    char t[320], why[320], out[160];
    layer_text(m, t, sizeof t);
    fprintf(f, "%*s%s", 2 * depth, "", t);
    long long np = (long long)tg_nn_n_weights(m);
    if (m->kind == NN_SEQUENTIAL) {
        int nd2 = *nd;
        int64_t s2[TG_MAX_DIMS];
        memcpy(s2, s, sizeof s2);
        if (out_shape(m, &nd2, s2, why, sizeof why)) fprintf(f, ": out ?, %lld params\n", np);
        else fprintf(f, ": out %s, %lld params\n", dims_str(nd2, s2, out, sizeof out), np);
        for (int i = 0; i < m->n_children; i++) {
            int rc = describe_shape(m->children[i], f, depth + 1, nd, s);
            if (rc) return rc;
        }
        return TG_OK;
    }
    if (out_shape(m, nd, s, why, sizeof why)) {
        fprintf(f, ": does not fit: %s\n", why);
        return TG_ESHAPE;
    }
    fprintf(f, ": out %s, %lld params\n", dims_str(*nd, s, out, sizeof out), np);
    return TG_OK;
}

int tg_nn_describe_shape(const tg_module *m, int ndim, const int64_t *in_shape, FILE *f)
{
    if (!m || !f || ndim < 0 || ndim > TG_MAX_DIMS || (ndim && !in_shape)) return TG_EARG;
    int64_t s[TG_MAX_DIMS] = {0};
    for (int d = 0; d < ndim; d++) {
        if (in_shape[d] < 0) return TG_EARG;
        s[d] = in_shape[d];
    }
    if (tg_shape_numel(ndim, s) < 0) return TG_EARG; /* more than TG_MAX_NUMEL */
    char in[160];
    fprintf(f, "input %s\n", dims_str(ndim, s, in, sizeof in));
    int nd = ndim;
    return describe_shape(m, f, 0, &nd, s);
}
