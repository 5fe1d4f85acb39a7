/* ops/activation.c: activation functions. Elementwise ones are one flat loop each; softmax
 * and log_softmax view the input as [outer, len, inner] around their axis. */
#include "internal.h"

/* ---- elementwise activations: y[i] = FWD, dx[i] += DX (dx[i] = DX if dx is unset) ----
 * FWD may use xi = x[i] and the scalar attribute a (alpha); DX may use g = dy[i], xi, yi = y[i]
 * and a. Each expression is written once per dtype (float math for f32). Values are loaded
 * before any branch, and branches only select (pos, neg below), never compute, so the
 * compiler can turn them into vector blends. */
#define ACT_FWD(NAME, T, SFX, FWD)                                                           \
    static void NAME##_fwd_##SFX(tg_node *n)                                                 \
    {                                                                                        \
        const T *restrict x = n->in[0]->data;                                                \
        T *restrict y = n->out->data;                                                        \
        const T a = (T)n->f[0];                                                              \
        (void)a;                                                                             \
        for (int64_t i = 0, len = n->out->numel; i < len; i++) {                             \
            const T xi = x[i];                                                               \
            y[i] = FWD;                                                                      \
        }                                                                                    \
    }
#define ACT_BWD(NAME, T, SFX, DX)                                                            \
    static void NAME##_bwd_##SFX(tg_node *n)                                                 \
    {                                                                                        \
        const T *restrict x = n->in[0]->data, *restrict y = n->out->data;                    \
        const T *restrict dy = n->out->grad->data;                                           \
        T *restrict dx = n->in[0]->grad->data;                                               \
        const T a = (T)n->f[0];                                                              \
        (void)a;                                                                             \
        const int64_t len = n->out->numel;                                                   \
        if (tg_grad_beta(n->in[0])) {                                                        \
            for (int64_t i = 0; i < len; i++) {                                              \
                const T g = dy[i], xi = x[i], yi = y[i];                                     \
                (void)xi, (void)yi;                                                          \
                dx[i] += DX;                                                                 \
            }                                                                                \
        } else { /* the first gradient to reach x: written, not added to zeros */            \
            for (int64_t i = 0; i < len; i++) {                                              \
                const T g = dy[i], xi = x[i], yi = y[i];                                     \
                (void)xi, (void)yi;                                                          \
                dx[i] = DX;                                                                  \
            }                                                                                \
        }                                                                                    \
    }

#define ACT(NAME, FWD32, DX32, FWD64, DX64)                                                  \
    ACT_FWD(NAME, float, f32, FWD32)                                                         \
    ACT_BWD(NAME, float, f32, DX32)                                                          \
    ACT_FWD(NAME, double, f64, FWD64)                                                        \
    ACT_BWD(NAME, double, f64, DX64)                                                         \
    void tg_##NAME##_fwd(tg_node *n) { TG_DISPATCH(n, NAME##_fwd); }                         \
    void tg_##NAME##_bwd(tg_node *n)                                                         \
    {                                                                                        \
        if (n->in[0]->requires_grad) TG_DISPATCH(n, NAME##_bwd);                             \
    }

/* posf_, negf_, sigmoidf_ and their f64 forms are in ops/internal.h (linear_act uses them
 * too). */
/* σ(x) = 1/(1+e^-x);  dx += dy σ(1-σ), from the output alone. */
ACT(sigmoid, sigmoidf_(xi), g * yi * (1.0f - yi), sigmoid_(xi), g * yi * (1.0 - yi))
/* y = tanh(x);  dx += dy (1 - y²). */
ACT(tanh, tanhf(xi), g * (1.0f - yi * yi), tanh(xi), g * (1.0 - yi * yi))
/* max(0, x), written so that a NaN passes through instead of being hidden as 0;
 * dx += dy [x > 0] (0 at the kink, as PyTorch). */
ACT(relu, xi < 0.0f ? 0.0f : xi, xi > 0.0f ? g : 0.0f, xi < 0.0 ? 0.0 : xi, xi > 0.0 ? g : 0.0)
/* max(0, x) + α min(0, x);  dx += dy (x > 0 ? 1 : α), so α dy at 0 (PyTorch's choice). */
ACT(leaky_relu, posf_(xi) + a * negf_(xi), g * (xi > 0.0f ? 1.0f : a), pos_(xi) + a * neg_(xi),
    g * (xi > 0.0 ? 1.0 : a))
/* x > 0 ? x : α(e^x - 1), with expm1 for accuracy near 0; dx += dy or dy α e^x. α e^x is
 * computed afresh rather than as y + α, which cancels badly for very negative x. */
ACT(elu, xi > 0.0f ? xi : a * expm1f(xi), g * (xi > 0.0f ? 1.0f : a * expf(xi)),
    xi > 0.0 ? xi : a * expm1(xi), g * (xi > 0.0 ? 1.0 : a * exp(xi)))
/* ln(1 + e^x) = max(x, 0) + ln(1 + e^-|x|): no overflow for large x, no loss for very
 * negative x. Its derivative is the sigmoid. */
ACT(softplus, posf_(xi) + log1pf(expf(-fabsf(xi))), g * sigmoidf_(xi),
    pos_(xi) + log1p(exp(-fabs(xi))), g * sigmoid_(xi))

/* [x > 0] and sign(x) (sign(0) = 0; a NaN passes through sign). Exact forwards. The true
 * derivative is 0 wherever it exists and is taken as 0 at the jump, so the backward has
 * nothing to add: the input's gradient stays exactly 0 (see tg_step in ops.h). */
ACT_FWD(step, float, f32, xi > 0.0f ? 1.0f : 0.0f)
ACT_FWD(step, double, f64, xi > 0.0 ? 1.0 : 0.0)
ACT_FWD(sign, float, f32, xi > 0.0f ? 1.0f : xi < 0.0f ? -1.0f : xi)
ACT_FWD(sign, double, f64, xi > 0.0 ? 1.0 : xi < 0.0 ? -1.0 : xi)
void tg_step_fwd(tg_node *n) { TG_DISPATCH(n, step_fwd); }
void tg_step_bwd(tg_node *n) { (void)n; }
void tg_sign_fwd(tg_node *n) { TG_DISPATCH(n, sign_fwd); }
void tg_sign_bwd(tg_node *n) { (void)n; }

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

/* ---- prelu: max(0, x) + α min(0, x), α [1] or [C] (C = x's last dimension); i[0] = C ----
 * dx += dy (x > 0 ? 1 : α); dα += Σ min(0, x) dy (over all of x for α [1], over every row
 * of channel j for α [C]). x is seen as [numel / C, C], so each loop is a flat one along
 * a row. pos and neg are defined with the elementwise activations above. */
#define PRELU_KERNELS(T, SFX, POS, NEG)                                                      \
    static void prelu_fwd_##SFX(tg_node *n)                                                  \
    {                                                                                        \
        const T *restrict x = n->in[0]->data, *restrict al = n->in[1]->data;                 \
        T *restrict y = n->out->data;                                                        \
        const int64_t c = n->i[0], len = n->out->numel;                                      \
        if (len == 0) return; /* α may be [0] too: read nothing */                           \
        if (c == 1) {                                                                        \
            const T a = al[0];                                                               \
            for (int64_t i = 0; i < len; i++) y[i] = POS(x[i]) + a * NEG(x[i]);              \
            return;                                                                          \
        }                                                                                    \
        for (int64_t r = 0; r < len; r += c)                                                 \
            for (int64_t j = 0; j < c; j++) y[r + j] = POS(x[r + j]) + al[j] * NEG(x[r + j]); \
    }                                                                                        \
    static void prelu_bwd_##SFX(tg_node *n)                                                  \
    {                                                                                        \
        const T *restrict x = n->in[0]->data, *restrict al = n->in[1]->data;                 \
        const T *restrict dy = n->out->grad->data;                                           \
        const int64_t c = n->i[0], len = n->out->numel;                                      \
        if (len == 0) return;                                                                \
        if (n->in[0]->requires_grad) {                                                       \
            T *restrict dx = n->in[0]->grad->data;                                           \
            if (c == 1) {                                                                    \
                const T a = al[0];                                                           \
                for (int64_t i = 0; i < len; i++) dx[i] += dy[i] * (x[i] > 0 ? (T)1 : a);    \
            } else {                                                                         \
                for (int64_t r = 0; r < len; r += c)                                         \
                    for (int64_t j = 0; j < c; j++)                                          \
                        dx[r + j] += dy[r + j] * (x[r + j] > 0 ? (T)1 : al[j]);              \
            }                                                                                \
        }                                                                                    \
        if (n->in[1]->requires_grad) {                                                       \
            /* not restrict: α and x may be one tensor, so da may be dx */                   \
            T *da = n->in[1]->grad->data;                                                    \
            if (c == 1) {                                                                    \
                T s = 0;                                                                     \
                for (int64_t i = 0; i < len; i++) s += NEG(x[i]) * dy[i];                    \
                da[0] += s;                                                                  \
            } else {                                                                         \
                for (int64_t r = 0; r < len; r += c)                                         \
                    for (int64_t j = 0; j < c; j++) da[j] += NEG(x[r + j]) * dy[r + j];      \
            }                                                                                \
        }                                                                                    \
    }
PRELU_KERNELS(float, f32, posf_, negf_)
PRELU_KERNELS(double, f64, pos_, neg_)
void tg_prelu_fwd(tg_node *n) { TG_DISPATCH(n, prelu_fwd); }
void tg_prelu_bwd(tg_node *n) { TG_DISPATCH(n, prelu_bwd); }

tg_tensor *tg_prelu(tg_tape *tp, tg_tensor *x, tg_tensor *alpha)
{
    tg_tensor *in[2] = {x, alpha};
    char buf[256];
    if (tg_op_check(tp, TG_OP_prelu, 2, in)) return NULL;
    int64_t last = x->ndim ? x->shape[x->ndim - 1] : 1;
    if (alpha->ndim != 1 || (alpha->shape[0] != 1 && alpha->shape[0] != last)) {
        tg_fail(tp, TG_ESHAPE, "tg_prelu: %s: alpha must be [1] or [%lld] (x's last dimension)",
                tg_shapes_str(buf, sizeof buf, 2, in), (long long)last);
        return NULL;
    }
    tg_node *n = tg_op_begin(tp, TG_OP_prelu, 2, in, x->ndim, x->shape);
    if (!n) return NULL;
    /* C = 0 only when x is empty: any positive row length then does nothing. */
    n->i[0] = alpha->shape[0] == 1 || last == 0 ? 1 : last;
    return tg_op_finish(tp, n);
}

/* ---- softmax and log_softmax along an axis: i[0] outer, i[1] len, i[2] inner ----
 * y = e^(x - m) / Σ e^(x - m) with m the slice's maximum, so no exponent overflows and
 * logits of ±1000 give exact 0 and 1; log_softmax = (x - m) - ln Σ e^(x - m), with x - m
 * formed first so that large logits lose no digits to m + ln Σ.
 * Backward: softmax dx += y (dy - Σ dy y); log_softmax dx += dy - e^y Σ dy.
 * Each [len, inner] block is swept with inner as the innermost, contiguous loop; the
 * per-column maxima and sums live in the saved scratch (2 inner values). inner == 1 (the
 * last axis) is plain contiguous rows and needs no scratch. */
#define SOFTMAX_KERNELS(T, SFX, EXP, LOG)                                                    \
    static void softmax_fwd_##SFX(tg_node *n)                                                \
    {                                                                                        \
        const int64_t outer = n->i[0], len = n->i[1], inner = n->i[2];                       \
        const bool lg = n->op == TG_OP_log_softmax;                                          \
        if (len == 0 || inner == 0) return; /* empty: no slice to read */                    \
        for (int64_t o = 0; o < outer; o++) {                                                \
            const T *restrict xb = (const T *)n->in[0]->data + o * len * inner;              \
            T *restrict yb = (T *)n->out->data + o * len * inner;                            \
            if (inner == 1) {                                                                \
                T m = xb[0], s = 0;                                                          \
                for (int64_t l = 1; l < len; l++) m = xb[l] > m ? xb[l] : m;                 \
                if (lg) {                                                                    \
                    for (int64_t l = 0; l < len; l++) s += EXP(xb[l] - m);                   \
                    const T ls = LOG(s);                                                     \
                    for (int64_t l = 0; l < len; l++) yb[l] = (xb[l] - m) - ls;              \
                } else {                                                                     \
                    for (int64_t l = 0; l < len; l++) s += (yb[l] = EXP(xb[l] - m));         \
                    const T r = 1 / s;                                                       \
                    for (int64_t l = 0; l < len; l++) yb[l] *= r;                            \
                }                                                                            \
                continue;                                                                    \
            }                                                                                \
            T *restrict m = n->saved, *restrict s = m + inner;                               \
            for (int64_t k = 0; k < inner; k++) m[k] = xb[k], s[k] = 0;                      \
            for (int64_t l = 1; l < len; l++)                                                \
                for (int64_t k = 0; k < inner; k++)                                          \
                    m[k] = xb[l * inner + k] > m[k] ? xb[l * inner + k] : m[k];              \
            if (lg) {                                                                        \
                for (int64_t l = 0; l < len; l++)                                            \
                    for (int64_t k = 0; k < inner; k++) s[k] += EXP(xb[l * inner + k] - m[k]); \
                for (int64_t k = 0; k < inner; k++) s[k] = LOG(s[k]);                        \
                for (int64_t l = 0; l < len; l++)                                            \
                    for (int64_t k = 0; k < inner; k++)                                      \
                        yb[l * inner + k] = (xb[l * inner + k] - m[k]) - s[k];               \
            } else {                                                                         \
                for (int64_t l = 0; l < len; l++)                                            \
                    for (int64_t k = 0; k < inner; k++)                                      \
                        s[k] += (yb[l * inner + k] = EXP(xb[l * inner + k] - m[k]));         \
                for (int64_t k = 0; k < inner; k++) s[k] = 1 / s[k];                         \
                for (int64_t l = 0; l < len; l++)                                            \
                    for (int64_t k = 0; k < inner; k++) yb[l * inner + k] *= s[k];           \
            }                                                                                \
        }                                                                                    \
    }                                                                                        \
    static void softmax_bwd_##SFX(tg_node *n)                                                \
    {                                                                                        \
        const int64_t outer = n->i[0], len = n->i[1], inner = n->i[2];                       \
        const bool lg = n->op == TG_OP_log_softmax;                                          \
        if (len == 0 || inner == 0) return;                                                  \
        for (int64_t o = 0; o < outer; o++) {                                                \
            const int64_t base = o * len * inner;                                            \
            const T *restrict yb = (const T *)n->out->data + base;                           \
            const T *restrict dyb = (const T *)n->out->grad->data + base;                    \
            T *restrict dxb = (T *)n->in[0]->grad->data + base;                              \
            if (inner == 1) {                                                                \
                T s = 0;                                                                     \
                if (lg) {                                                                    \
                    for (int64_t l = 0; l < len; l++) s += dyb[l];                           \
                    for (int64_t l = 0; l < len; l++) dxb[l] += dyb[l] - EXP(yb[l]) * s;     \
                } else {                                                                     \
                    for (int64_t l = 0; l < len; l++) s += dyb[l] * yb[l];                   \
                    for (int64_t l = 0; l < len; l++) dxb[l] += yb[l] * (dyb[l] - s);        \
                }                                                                            \
                continue;                                                                    \
            }                                                                                \
            T *restrict s = n->saved; /* the forward's scratch, free again */                \
            for (int64_t k = 0; k < inner; k++) s[k] = 0;                                    \
            if (lg) {                                                                        \
                for (int64_t l = 0; l < len; l++)                                            \
                    for (int64_t k = 0; k < inner; k++) s[k] += dyb[l * inner + k];          \
                for (int64_t l = 0; l < len; l++)                                            \
                    for (int64_t k = 0; k < inner; k++)                                      \
                        dxb[l * inner + k] += dyb[l * inner + k] - EXP(yb[l * inner + k]) * s[k]; \
            } else {                                                                         \
                for (int64_t l = 0; l < len; l++)                                            \
                    for (int64_t k = 0; k < inner; k++)                                      \
                        s[k] += dyb[l * inner + k] * yb[l * inner + k];                      \
                for (int64_t l = 0; l < len; l++)                                            \
                    for (int64_t k = 0; k < inner; k++)                                      \
                        dxb[l * inner + k] += yb[l * inner + k] * (dyb[l * inner + k] - s[k]); \
            }                                                                                \
        }                                                                                    \
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
    char buf[128];
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
    /* Column maxima and sums when the axis is not the last (see the kernels). */
    if (inner > 1 && x->numel > 0 &&
        !tg_op_save(tp, n, 2 * (size_t)inner * tg_dtype_size((tg_dtype)x->dtype)))
        return NULL;
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
