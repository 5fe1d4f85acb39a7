/* ops/activation.c: activation functions. Elementwise ones are one flat loop each; softmax
 * and log_softmax view the input as [outer, len, inner] around their axis. */
#include "internal.h"

/* ACT(name, forward of x[i] with alpha a, dx of (dy, x, y, a)) for both dtypes. */
#define ACT_KERNELS(NAME, T, SFX, FWD, DX)                                                   \
    static void NAME##_fwd_##SFX(tg_node *n)                                                 \
    {                                                                                        \
        const T *restrict x = n->in[0]->data;                                                \
        T *restrict y = n->out->data;                                                        \
        const T a = (T)n->f[0];                                                              \
        (void)a;                                                                             \
        for (int64_t i = 0, len = n->out->numel; i < len; i++) y[i] = FWD;                   \
    }                                                                                        \
    static void NAME##_bwd_##SFX(tg_node *n)                                                 \
    {                                                                                        \
        const T *restrict x = n->in[0]->data, *restrict y = n->out->data;                    \
        const T *restrict dy = n->out->grad->data;                                           \
        T *restrict dx = n->in[0]->grad->data;                                               \
        const T a = (T)n->f[0];                                                              \
        (void)a, (void)x, (void)y, (void)dy;                                                 \
        for (int64_t i = 0, len = n->out->numel; i < len; i++) dx[i] += DX;                  \
    }

#define ACT(NAME, FWD32, DX32, FWD64, DX64)                                                  \
    ACT_KERNELS(NAME, float, f32, FWD32, DX32)                                               \
    ACT_KERNELS(NAME, double, f64, FWD64, DX64)                                              \
    void tg_##NAME##_fwd(tg_node *n) { TG_DISPATCH(n, NAME##_fwd); }                         \
    void tg_##NAME##_bwd(tg_node *n)                                                         \
    {                                                                                        \
        if (n->in[0]->requires_grad) TG_DISPATCH(n, NAME##_bwd);                             \
    }

/* Stable for large |x|: e^-|x| never overflows. */
static inline float sigmoidf_(float x)
{
    float e = expf(-fabsf(x));
    return x >= 0 ? 1.0f / (1.0f + e) : e / (1.0f + e);
}
static inline double sigmoid_(double x)
{
    double e = exp(-fabs(x));
    return x >= 0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
}

ACT(sigmoid, sigmoidf_(x[i]), dy[i] * y[i] * (1.0f - y[i]), sigmoid_(x[i]),
    dy[i] * y[i] * (1.0 - y[i]))
ACT(tanh, tanhf(x[i]), dy[i] * (1.0f - y[i] * y[i]), tanh(x[i]), dy[i] * (1.0 - y[i] * y[i]))
ACT(relu, x[i] > 0.0f ? x[i] : 0.0f, x[i] > 0.0f ? dy[i] : 0.0f, x[i] > 0.0 ? x[i] : 0.0,
    x[i] > 0.0 ? dy[i] : 0.0)
ACT(leaky_relu, x[i] > 0.0f ? x[i] : a * x[i], x[i] > 0.0f ? dy[i] : a * dy[i],
    x[i] > 0.0 ? x[i] : a * x[i], x[i] > 0.0 ? dy[i] : a * dy[i])
/* For x <= 0: y = a(e^x - 1), dy/dx = a e^x = y + a. */
ACT(elu, x[i] > 0.0f ? x[i] : a * expm1f(x[i]), x[i] > 0.0f ? dy[i] : dy[i] * (y[i] + a),
    x[i] > 0.0 ? x[i] : a * expm1(x[i]), x[i] > 0.0 ? dy[i] : dy[i] * (y[i] + a))
/* ln(1 + e^x) = max(x, 0) + ln(1 + e^-|x|); its derivative is the sigmoid. */
ACT(softplus, fmaxf(x[i], 0.0f) + log1pf(expf(-fabsf(x[i]))), dy[i] * sigmoidf_(x[i]),
    fmax(x[i], 0.0) + log1p(exp(-fabs(x[i]))), dy[i] * sigmoid_(x[i]))
/* Exact forwards; the derivative is 0 wherever it exists, and taken as 0 at the jump. */
ACT(step, x[i] > 0.0f ? 1.0f : 0.0f, 0.0f, x[i] > 0.0 ? 1.0 : 0.0, 0.0)
ACT(sign, (float)((x[i] > 0.0f) - (x[i] < 0.0f)), 0.0f, (double)((x[i] > 0.0) - (x[i] < 0.0)),
    0.0)

static tg_tensor *with_alpha(tg_tape *tp, int op, tg_tensor *x, double alpha)
{
    if (tg_op_check(tp, op, 1, &x)) return NULL;
    if (!isfinite(alpha)) {
        tg_fail(tp, TG_EARG, "tg_%s: alpha %g is not finite", tg_op_table[op].name, alpha);
        return NULL;
    }
    tg_node *n = tg_op_begin(tp, op, 1, &x, x->ndim, x->shape);
    if (!n) return NULL;
    n->f[0] = alpha;
    return tg_op_finish(tp, n);
}

tg_tensor *tg_sigmoid(tg_tape *tp, tg_tensor *x) { return tg_op_unary(tp, TG_OP_sigmoid, x); }
tg_tensor *tg_tanh(tg_tape *tp, tg_tensor *x) { return tg_op_unary(tp, TG_OP_tanh, x); }
tg_tensor *tg_relu(tg_tape *tp, tg_tensor *x) { return tg_op_unary(tp, TG_OP_relu, x); }
tg_tensor *tg_softplus(tg_tape *tp, tg_tensor *x) { return tg_op_unary(tp, TG_OP_softplus, x); }
tg_tensor *tg_step(tg_tape *tp, tg_tensor *x) { return tg_op_unary(tp, TG_OP_step, x); }
tg_tensor *tg_sign(tg_tape *tp, tg_tensor *x) { return tg_op_unary(tp, TG_OP_sign, x); }
tg_tensor *tg_leaky_relu(tg_tape *tp, tg_tensor *x, double alpha)
{
    return with_alpha(tp, TG_OP_leaky_relu, x, alpha);
}
tg_tensor *tg_elu(tg_tape *tp, tg_tensor *x, double alpha)
{
    return with_alpha(tp, TG_OP_elu, x, alpha);
}

/* ---- prelu: x > 0 ? x : α x, with α [1] or [C] (C = x's last dimension). i[0] = C. ---- */
#define PRELU_KERNELS(T, SFX)                                                                \
    static void prelu_fwd_##SFX(tg_node *n)                                                  \
    {                                                                                        \
        const T *restrict x = n->in[0]->data, *restrict al = n->in[1]->data;                 \
        T *restrict y = n->out->data;                                                        \
        int64_t c = n->i[0], len = n->out->numel;                                            \
        for (int64_t r = 0; r < len; r += c)                                                 \
            for (int64_t j = 0; j < c; j++)                                                  \
                y[r + j] = x[r + j] > 0 ? x[r + j] : al[c == 1 ? 0 : j] * x[r + j];          \
    }                                                                                        \
    static void prelu_bwd_##SFX(tg_node *n)                                                  \
    {                                                                                        \
        const T *restrict x = n->in[0]->data, *restrict al = n->in[1]->data;                 \
        const T *restrict dy = n->out->grad->data;                                           \
        int64_t c = n->i[0], len = n->out->numel;                                            \
        if (n->in[0]->requires_grad) {                                                       \
            T *dx = n->in[0]->grad->data;                                                    \
            for (int64_t r = 0; r < len; r += c)                                             \
                for (int64_t j = 0; j < c; j++)                                              \
                    dx[r + j] += x[r + j] > 0 ? dy[r + j] : al[c == 1 ? 0 : j] * dy[r + j];  \
        }                                                                                    \
        if (n->in[1]->requires_grad) {                                                       \
            T *da = n->in[1]->grad->data;                                                    \
            for (int64_t r = 0; r < len; r += c)                                             \
                for (int64_t j = 0; j < c; j++)                                              \
                    if (!(x[r + j] > 0)) da[c == 1 ? 0 : j] += x[r + j] * dy[r + j];         \
        }                                                                                    \
    }
PRELU_KERNELS(float, f32)
PRELU_KERNELS(double, f64)
void tg_prelu_fwd(tg_node *n) { TG_DISPATCH(n, prelu_fwd); }
void tg_prelu_bwd(tg_node *n) { TG_DISPATCH(n, prelu_bwd); }

tg_tensor *tg_prelu(tg_tape *tp, tg_tensor *x, tg_tensor *alpha)
{
    tg_tensor *in[2] = {x, alpha};
    char buf[160];
    if (tg_op_check(tp, TG_OP_prelu, 2, in)) return NULL;
    int64_t last = x->ndim ? x->shape[x->ndim - 1] : 1;
    if (alpha->ndim != 1 || (alpha->shape[0] != 1 && alpha->shape[0] != last)) {
        tg_fail(tp, TG_ESHAPE, "tg_prelu: %s: alpha must be [1] or [%lld] (x's last dimension)",
                tg_shapes_str(buf, sizeof buf, 2, in), (long long)last);
        return NULL;
    }
    tg_node *n = tg_op_begin(tp, TG_OP_prelu, 2, in, x->ndim, x->shape);
    if (!n) return NULL;
    n->i[0] = alpha->shape[0] == 1 ? 1 : last;
    if (n->i[0] == 0) n->i[0] = 1;
    return tg_op_finish(tp, n);
}

/* ---- softmax and log_softmax along an axis: i[0] outer, i[1] len, i[2] inner ----
 * Shifted by the slice's maximum, so no exponent overflows. */
#define SOFTMAX_KERNELS(T, SFX, EXP, LOG)                                                    \
    static void softmax_fwd_##SFX(tg_node *n)                                                \
    {                                                                                        \
        int64_t outer = n->i[0], len = n->i[1], inner = n->i[2];                             \
        bool lg = n->op == TG_OP_log_softmax;                                                \
        const T *x = n->in[0]->data;                                                         \
        T *y = n->out->data;                                                                 \
        for (int64_t o = 0; o < outer; o++)                                                  \
            for (int64_t k = 0; k < inner; k++) {                                            \
                const T *xs = x + o * len * inner + k;                                       \
                T *ys = y + o * len * inner + k;                                             \
                T m = xs[0], s = 0;                                                          \
                for (int64_t l = 1; l < len; l++) m = xs[l * inner] > m ? xs[l * inner] : m; \
                for (int64_t l = 0; l < len; l++) s += EXP(xs[l * inner] - m);               \
                if (lg) {                                                                    \
                    T lse = m + LOG(s);                                                      \
                    for (int64_t l = 0; l < len; l++) ys[l * inner] = xs[l * inner] - lse;   \
                } else {                                                                     \
                    for (int64_t l = 0; l < len; l++)                                        \
                        ys[l * inner] = EXP(xs[l * inner] - m) / s;                          \
                }                                                                            \
            }                                                                                \
    }                                                                                        \
    /* softmax: dx = y (dy - Σ dy y); log_softmax: dx = dy - e^y Σ dy. */                    \
    static void softmax_bwd_##SFX(tg_node *n)                                                \
    {                                                                                        \
        int64_t outer = n->i[0], len = n->i[1], inner = n->i[2];                             \
        bool lg = n->op == TG_OP_log_softmax;                                                \
        const T *y = n->out->data, *dy = n->out->grad->data;                                 \
        T *dx = n->in[0]->grad->data;                                                        \
        for (int64_t o = 0; o < outer; o++)                                                  \
            for (int64_t k = 0; k < inner; k++) {                                            \
                int64_t base = o * len * inner + k;                                          \
                T s = 0;                                                                     \
                if (lg) {                                                                    \
                    for (int64_t l = 0; l < len; l++) s += dy[base + l * inner];             \
                    for (int64_t l = 0; l < len; l++)                                        \
                        dx[base + l * inner] += dy[base + l * inner] - EXP(y[base + l * inner]) * s; \
                } else {                                                                     \
                    for (int64_t l = 0; l < len; l++)                                        \
                        s += dy[base + l * inner] * y[base + l * inner];                     \
                    for (int64_t l = 0; l < len; l++)                                        \
                        dx[base + l * inner] += y[base + l * inner] * (dy[base + l * inner] - s); \
                }                                                                            \
            }                                                                                \
    }
SOFTMAX_KERNELS(float, f32, expf, logf)
SOFTMAX_KERNELS(double, f64, exp, log)

void tg_softmax_fwd(tg_node *n) { TG_DISPATCH(n, softmax_fwd); }
void tg_softmax_bwd(tg_node *n)
{
    if (n->in[0]->requires_grad) TG_DISPATCH(n, softmax_bwd);
}
void tg_log_softmax_fwd(tg_node *n) { TG_DISPATCH(n, softmax_fwd); }
void tg_log_softmax_bwd(tg_node *n)
{
    if (n->in[0]->requires_grad) TG_DISPATCH(n, softmax_bwd);
}

static tg_tensor *softmax(tg_tape *tp, int op, tg_tensor *x, int axis)
{
    char buf[64];
    if (tg_op_check(tp, op, 1, &x)) return NULL;
    int ax = tg_axis(axis, x->ndim);
    if (ax < 0) {
        tg_fail(tp, TG_EARG, "tg_%s: axis %d out of range for %s", tg_op_table[op].name, axis,
                tg_shape_str(x, buf, sizeof buf));
        return NULL;
    }
    int64_t outer = 1, inner = 1;
    for (int i = 0; i < x->ndim; i++) {
        if (i < ax) outer *= x->shape[i];
        if (i > ax) inner *= x->shape[i];
    }
    tg_node *n = tg_op_begin(tp, op, 1, &x, x->ndim, x->shape);
    if (!n) return NULL;
    n->i[0] = outer, n->i[1] = x->shape[ax], n->i[2] = inner;
    return tg_op_finish(tp, n);
}

tg_tensor *tg_softmax(tg_tape *tp, tg_tensor *x, int axis)
{
    return softmax(tp, TG_OP_softmax, x, axis);
}
tg_tensor *tg_log_softmax(tg_tape *tp, tg_tensor *x, int axis)
{
    return softmax(tp, TG_OP_log_softmax, x, axis);
}
