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

tg_module *tg_nn_batchnorm1d(int64_t features, double momentum, double eps, tg_dtype dt)
{
    clear_status();
    if (features < 1) {
        fail(TG_EARG, "tg_nn_batchnorm1d: features = %lld, want >= 1", (long long)features);
        return NULL;
    }
    if (!(momentum >= 0 && momentum <= 1)) {
        fail(TG_EARG, "tg_nn_batchnorm1d: momentum = %g is outside [0, 1]", momentum);
        return NULL;
    }
    if (!(eps > 0 && isfinite(eps))) {
        fail(TG_EARG, "tg_nn_batchnorm1d: eps = %g is outside (0, inf)", eps);
        return NULL;
    }
    tg_module *m = module_new("tg_nn_batchnorm1d", NN_BATCHNORM, dt);
    if (!m) return NULL;
    m->p[0] = param(dt, 1, &features, 1);
    m->p[1] = param(dt, 1, &features, 0);
    m->n_p = 2;
    m->buf[0] = tg_tensor_new(dt, 1, &features);
    m->buf[1] = tg_tensor_new(dt, 1, &features);
    m->n_buf = 2;
    m->momentum = momentum, m->eps = eps;
    if (!m->p[0] || !m->p[1] || !m->buf[0] || !m->buf[1]) return no_memory("tg_nn_batchnorm1d", m);
    tg_tensor_fill(m->buf[1], 1);
    return m;
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
    case NN_BATCHNORM:
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

static int describe(const tg_module *m, FILE *f, int depth)
{
    char a[64], b[64];
    fprintf(f, "%*s", 2 * depth, "");
    switch (m->kind) {
    case NN_LINEAR:
        fprintf(f, "linear %lld -> %lld (weight %s, bias %s)\n",
                (long long)tg_tensor_dim(m->p[0], 0), (long long)tg_tensor_dim(m->p[0], 1),
                tg_shape_str(m->p[0], a, sizeof a), tg_shape_str(m->p[1], b, sizeof b));
        break;
    case NN_ACT: fprintf(f, "%s\n", ACTS[m->act]); break;
    case NN_PRELU: fprintf(f, "prelu (alpha %s)\n", tg_shape_str(m->p[0], a, sizeof a)); break;
    case NN_DROPOUT: fprintf(f, "dropout p=%g\n", m->alpha); break;
    case NN_BATCHNORM:
        fprintf(f, "batchnorm1d %lld (momentum %g, eps %g)\n", (long long)tg_tensor_dim(m->p[0], 0),
                m->momentum, m->eps);
        break;
    default:
        fprintf(f, "sequential (%d layers)\n", m->n_children);
        for (int i = 0; i < m->n_children; i++) describe(m->children[i], f, depth + 1);
    }
    return TG_OK;
}

int tg_nn_describe(const tg_module *m, FILE *f)
{
    if (!m || !f) return TG_EARG;
    return describe(m, f, 0);
}
