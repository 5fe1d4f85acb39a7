/* ops/loss.c: losses. Each returns a scalar (shape []) and saves what its backward needs.
 * pred and target have the same shape, except cross_entropy (logits [N,C], labels [N]). */
#include "internal.h"

/* Elementwise losses: scale · Σ φ(P, Q) over elements, P the prediction and Q the target
 * (as doubles: losses are not the hot path, and sums over many elements keep precision),
 * with dφ/dP and dφ/dQ. f[0] is the loss's parameter c, f[1] the scale (1/n for a mean). */
#define PAIR_KERNELS(NAME, T, SFX, PHI, DP, DQ)                                              \
    static void NAME##_fwd_##SFX(tg_node *n)                                                 \
    {                                                                                        \
        const T *restrict p = n->in[0]->data, *restrict t = n->in[1]->data;                  \
        const double c = n->f[0];                                                            \
        double s = 0;                                                                        \
        (void)c;                                                                             \
        for (int64_t i = 0, len = n->in[0]->numel; i < len; i++) {                           \
            const double P = (double)p[i], Q = (double)t[i];                                 \
            s += PHI;                                                                        \
        }                                                                                    \
        *(T *)n->out->data = (T)(s * n->f[1]);                                               \
    }                                                                                        \
    static void NAME##_bwd_##SFX(tg_node *n)                                                 \
    {                                                                                        \
        const T *restrict p = n->in[0]->data, *restrict t = n->in[1]->data;                  \
        const double c = n->f[0], g = (double)*(const T *)n->out->grad->data * n->f[1];      \
        int64_t len = n->in[0]->numel;                                                       \
        (void)c;                                                                             \
        if (n->in[0]->requires_grad) {                                                       \
            T *dp = n->in[0]->grad->data;                                                    \
            for (int64_t i = 0; i < len; i++) {                                              \
                const double P = (double)p[i], Q = (double)t[i];                             \
                (void)P, (void)Q;                                                            \
                dp[i] += (T)(g * (DP));                                                      \
            }                                                                                \
        }                                                                                    \
        if (n->in[1]->requires_grad) {                                                       \
            T *dt = n->in[1]->grad->data;                                                    \
            for (int64_t i = 0; i < len; i++) {                                              \
                const double P = (double)p[i], Q = (double)t[i];                             \
                (void)P, (void)Q;                                                            \
                dt[i] += (T)(g * (DQ));                                                      \
            }                                                                                \
        }                                                                                    \
    }

#define PAIR(NAME, PHI, DP, DQ)                                                              \
    PAIR_KERNELS(NAME, float, f32, PHI, DP, DQ)                                              \
    PAIR_KERNELS(NAME, double, f64, PHI, DP, DQ)                                             \
    void tg_##NAME##_fwd(tg_node *n) { TG_DISPATCH(n, NAME##_fwd); }                         \
    void tg_##NAME##_bwd(tg_node *n) { TG_DISPATCH(n, NAME##_bwd); }

static inline double sgn(double v) { return (double)((v > 0) - (v < 0)); }
/* bce clamps p into [eps, 1-eps] inside the logs (1e-12 in f64, 1e-7 in f32; f[2] = eps). */
static inline double clampp(double v, double eps)
{
    return v < eps ? eps : v > 1 - eps ? 1 - eps : v;
}
/* Stable pieces: ln(1 + e^-|z|) and σ(z). */
static inline double log1p_exp_neg_abs(double z) { return log1p(exp(-fabs(z))); }
static inline double sigm(double z)
{
    return z >= 0 ? 1.0 / (1.0 + exp(-z)) : exp(z) / (1.0 + exp(z));
}

#define BCE_EPS (n->f[2])
PAIR(mse_loss, (P - Q) * (P - Q), 2 * (P - Q), -2 * (P - Q))
PAIR(half_sse_loss, (P - Q) * (P - Q), 2 * (P - Q), -2 * (P - Q))
PAIR(l1_loss, fabs(P - Q), sgn(P - Q), -sgn(P - Q))
PAIR(eps_insensitive_loss, fabs(P - Q) > c ? fabs(P - Q) - c : 0.0,
     fabs(P - Q) > c ? sgn(P - Q) : 0.0, fabs(P - Q) > c ? -sgn(P - Q) : 0.0)
/* Inside the clamp: d/dp = (p - y) / (p (1 - p)); outside, the clamped logs are constant. */
PAIR(bce_loss, -(Q * log(clampp(P, BCE_EPS)) + (1 - Q) * log(1 - clampp(P, BCE_EPS))),
     P > BCE_EPS && P < 1 - BCE_EPS ? (P - Q) / (P * (1 - P)) : 0.0,
     log(1 - clampp(P, BCE_EPS)) - log(clampp(P, BCE_EPS)))
PAIR(bce_with_logits_loss, fmax(P, 0.0) - P * Q + log1p_exp_neg_abs(P), sigm(P) - Q, -P)
/* Margin losses, M = g y. */
PAIR(hinge_loss, 1 - P * Q > 0 ? 1 - P * Q : 0.0, 1 - P * Q > 0 ? -Q : 0.0,
     1 - P * Q > 0 ? -P : 0.0)
PAIR(logistic_loss, fmax(-P * Q, 0.0) + log1p_exp_neg_abs(P * Q), -Q * sigm(-P * Q),
     -P * sigm(-P * Q))
/* KL(p ‖ q) from log q (P) and p (Q): Q (log Q - P), 0 where Q = 0. */
PAIR(kl_div_loss, Q > 0 ? Q * (log(Q) - P) : 0.0, -Q, Q > 0 ? log(Q) + 1 - P : 0.0)

/* The shared wrapper: same shapes, at least one element. The scale is chosen here, after
 * the inputs are known to be valid: 1/numel for a mean, ½ for half_sse_loss, 1/N (the first
 * dimension, 1 for a 0-d input) for kl_div_loss's batchmean. */
static tg_tensor *pair(tg_tape *tp, int op, tg_tensor *p, tg_tensor *t, double c)
{
    tg_tensor *in[2] = {p, t};
    char buf[256];
    if (tg_op_check(tp, op, 2, in)) return NULL;
    bool same = p->ndim == t->ndim;
    for (int i = 0; same && i < p->ndim; i++) same = p->shape[i] == t->shape[i];
    if (!same) {
        tg_fail(tp, TG_ESHAPE, "tg_%s: %s: prediction and target shapes differ",
                tg_op_table[op].name, tg_shapes_str(buf, sizeof buf, 2, in));
        return NULL;
    }
    if (p->numel == 0) {
        tg_fail(tp, TG_ESHAPE, "tg_%s: %s: no elements", tg_op_table[op].name,
                tg_shapes_str(buf, sizeof buf, 2, in));
        return NULL;
    }
    if (op == TG_OP_eps_insensitive_loss && !(c >= 0 && isfinite(c))) {
        tg_fail(tp, TG_EARG, "tg_eps_insensitive_loss: c = %g, want a finite c >= 0", c);
        return NULL;
    }
    tg_node *n = tg_op_begin(tp, op, 2, in, 0, NULL);
    if (!n) return NULL;
    n->f[0] = c;
    n->f[1] = op == TG_OP_half_sse_loss ? 0.5
              : op == TG_OP_kl_div_loss ? 1.0 / (double)(p->ndim ? p->shape[0] : 1)
                                        : 1.0 / (double)p->numel;
    n->f[2] = p->dtype == TG_F32 ? 1e-7 : 1e-12;
    return tg_op_finish(tp, n);
}

tg_tensor *tg_mse_loss(tg_tape *tp, tg_tensor *p, tg_tensor *t)
{
    return pair(tp, TG_OP_mse_loss, p, t, 0);
}
tg_tensor *tg_half_sse_loss(tg_tape *tp, tg_tensor *p, tg_tensor *t)
{
    return pair(tp, TG_OP_half_sse_loss, p, t, 0);
}
tg_tensor *tg_l1_loss(tg_tape *tp, tg_tensor *p, tg_tensor *t)
{
    return pair(tp, TG_OP_l1_loss, p, t, 0);
}
tg_tensor *tg_eps_insensitive_loss(tg_tape *tp, tg_tensor *p, tg_tensor *t, double c)
{
    return pair(tp, TG_OP_eps_insensitive_loss, p, t, c);
}
tg_tensor *tg_bce_loss(tg_tape *tp, tg_tensor *p, tg_tensor *y)
{
    return pair(tp, TG_OP_bce_loss, p, y, 0);
}
tg_tensor *tg_bce_with_logits_loss(tg_tape *tp, tg_tensor *z, tg_tensor *y)
{
    return pair(tp, TG_OP_bce_with_logits_loss, z, y, 0);
}
tg_tensor *tg_hinge_loss(tg_tape *tp, tg_tensor *g, tg_tensor *y)
{
    return pair(tp, TG_OP_hinge_loss, g, y, 0);
}
tg_tensor *tg_logistic_loss(tg_tape *tp, tg_tensor *g, tg_tensor *y)
{
    return pair(tp, TG_OP_logistic_loss, g, y, 0);
}
tg_tensor *tg_kl_div_loss(tg_tape *tp, tg_tensor *log_q, tg_tensor *p)
{
    return pair(tp, TG_OP_kl_div_loss, log_q, p, 0);
}

/* ---- cross-entropy from logits z [N,C]: fused log_softmax + NLL, mean over the N rows.
 * Per row, with m the row's maximum and ls = ln Σ e^(z_j - m), log softmax_j is
 * (z_j - m) - ls: no exponent overflows, and z_j - m is formed first so that logits near
 * ±1000 lose no digits to the sum m + ls. Hard labels k: L = 1/N Σ_r ((m - z_k) + ls).
 * Soft targets q: L = -1/N Σ_r Σ_j q_rj ((z_rj - m) - ls).
 * Saved: the label indices [N] (int64, checked by the forward, so a label changed after the
 * forward cannot send the backward out of bounds), then in the dtype the softmax [N,C] and
 * m and ls [N] each, so the backward does no exponentials: dz = (softmax - onehot) / N, or
 * (softmax Σ_j q_rj - q) / N for soft targets (Σ q need not be 1); dq = -log softmax / N.
 * The loss is summed in double. ---- */
#define CE_KERNELS(T, SFX, EXP, LOG)                                                         \
    static void ce_fwd_##SFX(tg_node *n)                                                     \
    {                                                                                        \
        const int64_t N = n->in[0]->shape[0], C = n->in[0]->shape[1];                        \
        const bool soft = n->op == TG_OP_cross_entropy_soft;                                 \
        const T *restrict z = n->in[0]->data, *restrict t = n->in[1]->data;                  \
        int64_t *restrict idx = n->saved;                                                    \
        T *restrict prob = (T *)(idx + N), *restrict mx = prob + N * C, *restrict lsv = mx + N; \
        double total = 0;                                                                    \
        for (int64_t r = 0; r < N; r++) {                                                    \
            const T *restrict zr = z + r * C;                                                \
            T *restrict pr = prob + r * C;                                                   \
            T m = zr[0], s = 0;                                                              \
            for (int64_t j = 1; j < C; j++) m = zr[j] > m ? zr[j] : m;                       \
            for (int64_t j = 0; j < C; j++) s += (pr[j] = EXP(zr[j] - m));                   \
            const T inv = 1 / s, ls = LOG(s);                                                \
            for (int64_t j = 0; j < C; j++) pr[j] *= inv;                                    \
            mx[r] = m, lsv[r] = ls;                                                          \
            if (soft) {                                                                      \
                const T *restrict qr = t + r * C;                                            \
                double row = 0;                                                              \
                for (int64_t j = 0; j < C; j++)                                              \
                    row += (double)qr[j] * ((double)(zr[j] - m) - (double)ls);               \
                total -= row;                                                                \
                continue;                                                                    \
            }                                                                                \
            /* range first: converting a NaN or huge value to an integer is undefined */    \
            const T lab = t[r];                                                              \
            if (!(lab >= 0 && lab < (T)C) || (T)(int64_t)lab != lab) {                       \
                tg_fail(n->out->tape, TG_EARG,                                               \
                        "tg_cross_entropy: label %g of row %lld is not a class index in "    \
                        "0..%lld",                                                           \
                        (double)lab, (long long)r, (long long)(C - 1));                      \
                return;                                                                      \
            }                                                                                \
            idx[r] = (int64_t)lab;                                                           \
            total += (double)(m - zr[idx[r]]) + (double)ls;                                  \
        }                                                                                    \
        *(T *)n->out->data = (T)(total / (double)N);                                         \
    }                                                                                        \
    static void ce_bwd_##SFX(tg_node *n)                                                     \
    {                                                                                        \
        const int64_t N = n->in[0]->shape[0], C = n->in[0]->shape[1];                        \
        const bool soft = n->op == TG_OP_cross_entropy_soft;                                 \
        const T *z = n->in[0]->data, *t = n->in[1]->data;                                    \
        const int64_t *idx = n->saved;                                                       \
        const T *prob = (const T *)(idx + N), *mx = prob + N * C, *lsv = mx + N;             \
        const T g = *(const T *)n->out->grad->data / (T)N;                                   \
        /* not restrict: cross_entropy_soft(x, x) makes dz and dq one buffer */              \
        if (n->in[0]->requires_grad) {                                                       \
            T *dz = n->in[0]->grad->data;                                                    \
            for (int64_t r = 0; r < N; r++) {                                                \
                const T *pr = prob + r * C, *qr = t + r * C;                                 \
                T *dzr = dz + r * C;                                                         \
                if (!soft) {                                                                 \
                    for (int64_t j = 0; j < C; j++) dzr[j] += g * pr[j];                     \
                    dzr[idx[r]] -= g;                                                        \
                    continue;                                                                \
                }                                                                            \
                T mass = 0;                                                                  \
                for (int64_t j = 0; j < C; j++) mass += qr[j];                               \
                for (int64_t j = 0; j < C; j++) dzr[j] += g * (pr[j] * mass - qr[j]);        \
            }                                                                                \
        }                                                                                    \
        if (soft && n->in[1]->requires_grad) {                                               \
            T *dq = n->in[1]->grad->data;                                                    \
            for (int64_t r = 0; r < N; r++)                                                  \
                for (int64_t j = 0; j < C; j++)                                              \
                    dq[r * C + j] -= g * ((z[r * C + j] - mx[r]) - lsv[r]);                  \
        }                                                                                    \
    }
CE_KERNELS(float, f32, expf, logf)
CE_KERNELS(double, f64, exp, log)

void tg_cross_entropy_fwd(tg_node *n) { TG_DISPATCH(n, ce_fwd); }
void tg_cross_entropy_bwd(tg_node *n) { TG_DISPATCH(n, ce_bwd); }
void tg_cross_entropy_soft_fwd(tg_node *n) { TG_DISPATCH(n, ce_fwd); }
void tg_cross_entropy_soft_bwd(tg_node *n) { TG_DISPATCH(n, ce_bwd); }

static tg_tensor *cross_entropy(tg_tape *tp, int op, tg_tensor *z, tg_tensor *t)
{
    tg_tensor *in[2] = {z, t};
    char buf[256];
    if (tg_op_check(tp, op, 2, in)) return NULL;
    const bool hard = op == TG_OP_cross_entropy;
    bool ok = z->ndim == 2 && z->shape[0] > 0 && z->shape[1] > 0;
    if (hard) ok = ok && t->ndim == 1 && t->shape[0] == z->shape[0];
    else ok = ok && t->ndim == 2 && t->shape[0] == z->shape[0] && t->shape[1] == z->shape[1];
    if (!ok) {
        tg_fail(tp, TG_ESHAPE, "tg_%s: %s: want logits [N,C] (N, C > 0) and %s",
                tg_op_table[op].name, tg_shapes_str(buf, sizeof buf, 2, in),
                hard ? "labels [N]" : "targets [N,C]");
        return NULL;
    }
    tg_node *n = tg_op_begin(tp, op, 2, in, 0, NULL);
    size_t bytes = (size_t)z->shape[0] * sizeof(int64_t) +
                   (size_t)(z->numel + 2 * z->shape[0]) * tg_dtype_size((tg_dtype)z->dtype);
    if (!n || !tg_op_save(tp, n, bytes)) return NULL;
    return tg_op_finish(tp, n);
}

tg_tensor *tg_cross_entropy(tg_tape *tp, tg_tensor *logits, tg_tensor *labels)
{
    return cross_entropy(tp, TG_OP_cross_entropy, logits, labels);
}
tg_tensor *tg_cross_entropy_soft(tg_tape *tp, tg_tensor *logits, tg_tensor *q)
{
    return cross_entropy(tp, TG_OP_cross_entropy_soft, logits, q);
}
