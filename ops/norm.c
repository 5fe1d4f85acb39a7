/* ops/norm.c: inverted dropout and batch normalisation. */
#include "internal.h"

/* ---- dropout: y = x · mask, mask_i = 0 with probability p, else 1/(1-p). The mask is
 * drawn from the tape's generator and kept in the arena (in the output's dtype). ---- */
#define DROPOUT_KERNELS(T, SFX)                                                              \
    static void dropout_fwd_##SFX(tg_node *n)                                                \
    {                                                                                        \
        const T *restrict x = n->in[0]->data;                                                \
        T *restrict y = n->out->data, *restrict mask = n->saved;                             \
        const double p = n->f[0];                                                            \
        const T keep = (T)(1.0 / (1.0 - p));                                                 \
        tg_rng *r = &n->out->tape->rng;                                                      \
        int64_t len = n->out->numel;                                                         \
        for (int64_t i = 0; i < len; i++) mask[i] = tg_rng_uniform(r) < p ? (T)0 : keep;     \
        for (int64_t i = 0; i < len; i++) y[i] = x[i] * mask[i];                             \
    }                                                                                        \
    static void dropout_bwd_##SFX(tg_node *n)                                                \
    {                                                                                        \
        const T *restrict dy = n->out->grad->data, *restrict mask = n->saved;                \
        T *restrict dx = n->in[0]->grad->data;                                               \
        for (int64_t i = 0, len = n->out->numel; i < len; i++) dx[i] += dy[i] * mask[i];     \
    }
DROPOUT_KERNELS(float, f32)
DROPOUT_KERNELS(double, f64)

void tg_dropout_fwd(tg_node *n) { TG_DISPATCH(n, dropout_fwd); }
void tg_dropout_bwd(tg_node *n)
{
    if (n->in[0]->requires_grad) TG_DISPATCH(n, dropout_bwd);
}

tg_tensor *tg_dropout(tg_tape *tp, tg_tensor *x, double p, bool training)
{
    if (tg_op_check(tp, TG_OP_dropout, 1, &x)) return NULL;
    if (!(p >= 0 && p < 1)) {
        tg_fail(tp, TG_EARG, "tg_dropout: p = %g, want 0 <= p < 1", p);
        return NULL;
    }
    if (!training || p == 0) return x; /* the identity: no node, no copy */
    tg_node *n = tg_op_begin(tp, TG_OP_dropout, 1, &x, x->ndim, x->shape);
    if (!n || !tg_op_save(tp, n, (size_t)x->numel * tg_dtype_size((tg_dtype)x->dtype) + 1))
        return NULL;
    n->f[0] = p;
    return tg_op_finish(tp, n);
}

/* ---- batch normalisation over axis 1 of x [N, C, R...] (R = product of the rest).
 * Saved: the running statistics (forward only), then per channel the mean and 1/std used
 * (doubles). Attributes: i[0] N, i[1] C, i[2] R; f[0] momentum, f[1] eps, f[2] training. */
typedef struct bn_saved {
    tg_tensor *running_mean, *running_var;
    double stats[]; /* mean[C], invstd[C] */
} bn_saved;

#define BN_KERNELS(T, SFX)                                                                   \
    static void bn_fwd_##SFX(tg_node *n)                                                     \
    {                                                                                        \
        int64_t N = n->i[0], C = n->i[1], R = n->i[2];                                       \
        bn_saved *s = n->saved;                                                              \
        double *mean = s->stats, *inv = s->stats + C, eps = n->f[1], mom = n->f[0];         \
        bool training = n->f[2] != 0;                                                        \
        const T *x = n->in[0]->data, *gamma = n->in[1]->data, *beta = n->in[2]->data;       \
        T *y = n->out->data;                                                                 \
        double M = (double)(N * R);                                                          \
        for (int64_t c = 0; c < C; c++) {                                                    \
            double mu, var;                                                                  \
            if (training) {                                                                  \
                double sum = 0, sq = 0;                                                      \
                for (int64_t b = 0; b < N; b++)                                              \
                    for (int64_t r = 0; r < R; r++) sum += (double)x[(b * C + c) * R + r];   \
                mu = sum / M;                                                                \
                for (int64_t b = 0; b < N; b++)                                              \
                    for (int64_t r = 0; r < R; r++) {                                        \
                        double d = (double)x[(b * C + c) * R + r] - mu;                      \
                        sq += d * d;                                                         \
                    }                                                                        \
                var = sq / M;                                                                \
                if (s->running_mean)                                                         \
                    tg_set(s->running_mean, c, (1 - mom) * tg_get(s->running_mean, c) + mom * mu); \
                if (s->running_var)                                                          \
                    tg_set(s->running_var, c,                                                \
                           (1 - mom) * tg_get(s->running_var, c) + mom * var * M / (M - 1)); \
            } else {                                                                         \
                mu = tg_get(s->running_mean, c), var = tg_get(s->running_var, c);            \
            }                                                                                \
            mean[c] = mu, inv[c] = 1.0 / sqrt(var + eps);                                    \
            const T a = (T)((double)gamma[c] * inv[c]), b0 = (T)((double)beta[c] - (double)a * mu);  \
            for (int64_t b = 0; b < N; b++)                                                  \
                for (int64_t r = 0; r < R; r++)                                              \
                    y[(b * C + c) * R + r] = a * x[(b * C + c) * R + r] + b0;                \
        }                                                                                    \
    }                                                                                        \
    static void bn_bwd_##SFX(tg_node *n)                                                     \
    {                                                                                        \
        int64_t N = n->i[0], C = n->i[1], R = n->i[2];                                       \
        const bn_saved *s = n->saved;                                                        \
        const double *mean = s->stats, *inv = s->stats + C;                                  \
        bool training = n->f[2] != 0;                                                        \
        const T *x = n->in[0]->data, *gamma = n->in[1]->data, *dy = n->out->grad->data;     \
        double M = (double)(N * R);                                                          \
        for (int64_t c = 0; c < C; c++) {                                                    \
            double sdy = 0, sdyx = 0;                                                        \
            for (int64_t b = 0; b < N; b++)                                                  \
                for (int64_t r = 0; r < R; r++) {                                            \
                    int64_t i = (b * C + c) * R + r;                                         \
                    double xh = ((double)x[i] - mean[c]) * inv[c];                           \
                    sdy += (double)dy[i], sdyx += (double)dy[i] * xh;                        \
                }                                                                            \
            if (n->in[1]->requires_grad) ((T *)n->in[1]->grad->data)[c] += (T)sdyx;          \
            if (n->in[2]->requires_grad) ((T *)n->in[2]->grad->data)[c] += (T)sdy;           \
            if (!n->in[0]->requires_grad) continue;                                          \
            T *dx = n->in[0]->grad->data;                                                    \
            double k = (double)gamma[c] * inv[c];                                            \
            for (int64_t b = 0; b < N; b++)                                                  \
                for (int64_t r = 0; r < R; r++) {                                            \
                    int64_t i = (b * C + c) * R + r;                                         \
                    double xh = ((double)x[i] - mean[c]) * inv[c];                           \
                    dx[i] += (T)(training ? k / M * (M * (double)dy[i] - sdy - xh * sdyx)    \
                                          : k * (double)dy[i]);                              \
                }                                                                            \
        }                                                                                    \
    }
BN_KERNELS(float, f32)
BN_KERNELS(double, f64)

void tg_batch_norm_fwd(tg_node *n) { TG_DISPATCH(n, bn_fwd); }
void tg_batch_norm_bwd(tg_node *n) { TG_DISPATCH(n, bn_bwd); }

static bool is_vec(const tg_tensor *t, int64_t c) { return t->ndim == 1 && t->shape[0] == c; }

tg_tensor *tg_batch_norm(tg_tape *tp, tg_tensor *x, tg_tensor *gamma, tg_tensor *beta,
                         tg_tensor *running_mean, tg_tensor *running_var, double momentum,
                         double eps, bool training)
{
    tg_tensor *in[3] = {x, gamma, beta};
    char buf[200];
    if (tg_op_check(tp, TG_OP_batch_norm, 3, in)) return NULL;
    if (x->ndim < 2 || !is_vec(gamma, x->shape[1]) || !is_vec(beta, x->shape[1])) {
        tg_fail(tp, TG_ESHAPE, "tg_batch_norm: %s: want x [N,C,...], gamma [C], beta [C]",
                tg_shapes_str(buf, sizeof buf, 3, in));
        return NULL;
    }
    int64_t N = x->shape[0], C = x->shape[1], R = N > 0 && C > 0 ? x->numel / (N * C) : 0;
    tg_tensor *rs[2] = {running_mean, running_var};
    for (int k = 0; k < 2; k++)
        if (rs[k] && (!is_vec(rs[k], C) || rs[k]->dtype != x->dtype)) {
            tg_fail(tp, TG_ESHAPE, "tg_batch_norm: running %s %s: want [%lld] of %s",
                    k ? "variance" : "mean", tg_shape_str(rs[k], buf, sizeof buf), (long long)C,
                    tg_dtype_name((tg_dtype)x->dtype));
            return NULL;
        }
    if (!(eps > 0) || !(momentum >= 0 && momentum <= 1)) {
        tg_fail(tp, TG_EARG, "tg_batch_norm: eps = %g, momentum = %g: want eps > 0 and "
                "0 <= momentum <= 1", eps, momentum);
        return NULL;
    }
    if (!training && (!running_mean || !running_var)) {
        tg_fail(tp, TG_EARG, "tg_batch_norm: eval mode needs the running mean and variance");
        return NULL;
    }
    if (training && N * R < 2) {
        tg_fail(tp, TG_ESHAPE, "tg_batch_norm: %s: training needs more than one value per "
                "channel", tg_shape_str(x, buf, sizeof buf));
        return NULL;
    }
    tg_node *n = tg_op_begin(tp, TG_OP_batch_norm, 3, in, x->ndim, x->shape);
    if (!n) return NULL;
    bn_saved *s = tg_op_save(tp, n, sizeof *s + 2 * (size_t)C * sizeof(double));
    if (!s) return NULL;
    s->running_mean = running_mean, s->running_var = running_var;
    n->i[0] = N, n->i[1] = C, n->i[2] = R;
    n->f[0] = momentum, n->f[1] = eps, n->f[2] = training;
    tg_tensor *y = tg_op_finish(tp, n);
    s->running_mean = s->running_var = NULL; /* the sweep may outlive them */
    return y;
}
