/* ops/norm.c: inverted dropout and batch normalisation. */
#include "internal.h"

/* ---- dropout: y = x · m / (1-p), m_i = 0 with probability p, else 1 ----
 * dx += dy · m / (1-p): the gradient flows only through the kept elements, scaled like
 * them. The mask is drawn from the tape's generator (one uniform draw per element, in
 * order, so a seed fixes it whatever the dtype) and saved as one byte per element in the
 * arena. tg_node_attr(n)->dropout.p = p. */
/* dropout_fwd_f32, dropout_bwd_f32, dropout_fwd_f64 and dropout_bwd_f64, from the template
 * ops/dropout_t.h. */
#define TG_TEMPLATE "dropout_t.h"
#include "stamp.h"

void tg_dropout_fwd(tg_node *n) { TG_DISPATCH(n, dropout_fwd); }
void tg_dropout_bwd(tg_node *n)
{
    if (n->in[0]->requires_grad) TG_DISPATCH(n, dropout_bwd);
}

tg_tensor *tg_dropout(tg_tape *tp, tg_tensor *x, double p, bool training)
{
    if (tg_op_check(tp, TG_OP_dropout, 1, &x)) return NULL;
    if (!(p >= 0 && p < 1)) { /* also refuses NaN */
        tg_fail(tp, TG_EARG, "tg_dropout: p = %g, want 0 <= p < 1", p);
        return NULL;
    }
    /* Eval, or nothing to drop: x itself, with no node and no copy (and no draw from the
     * generator), so the gradient reaches x directly. */
    if (!training || p == 0) return x;
    tg_node *n = tg_op_begin(tp, TG_OP_dropout, 1, &x, x->ndim, x->shape);
    if (!n || !tg_op_save(tp, n, (size_t)x->numel)) return NULL;
    tg_node_attr(n)->dropout.p = p;
    return tg_op_finish(tp, n);
}

/* ---- batch normalisation over axis 1 of x, seen as [N, C, R] (R = product of the dims
 * after the features; 1 for x [N,C]). Per channel c, over its M = N·R values:
 *   x̂ = (x - μ_c) · s_c,  s_c = 1/sqrt(σ²_c + eps),  y = γ_c x̂ + β_c.
 * Training: μ, σ² are the batch mean and biased variance, so they depend on x, and
 *   dx = γ s / M · (M dy - Σ dy - x̂ Σ dy x̂)     (sums over the channel's M values).
 * Eval: μ, σ² are the running statistics (constants), and dx = γ s dy.
 * Both: dγ += Σ dy x̂, dβ += Σ dy.
 * Saved (doubles, in the arena): μ[C], σ²[C], s[C], and a scratch of 2C for the backward's
 * sums. The forward fills μ, σ² from the running statistics in eval and updates those
 * from μ, σ² after a training forward (tg_batch_norm_fwd), so a replay does both again.
 * Attributes: tg_node_attr(n)->batch_norm (N, C, R, eps, training). Sums are in double for
 * both dtypes; the variance is two-pass (no E[x²] - μ² cancellation). */
/* bn_fwd_f32, bn_bwd_f32, bn_fwd_f64 and bn_bwd_f64, from the template ops/batch_norm_t.h. */
#define TG_TEMPLATE "batch_norm_t.h"
#include "stamp.h"

/* What the forward does besides the template's kernel, kept in the saved context after the
 * 5C doubles so that a replay (tg_tape_replay) does it again: in eval, load μ, σ² from the
 * running statistics (refusing a negative variance); after a training forward, update
 * them. */
typedef struct bn_running {
    tg_tensor *mean, *var; /* NULL: not tracked (training only) */
    double momentum;
} bn_running;
static bn_running *bn_run(const tg_node *n)
{
    return (bn_running *)((double *)n->saved + 5 * tg_node_attr(n)->batch_norm.C);
}

void tg_batch_norm_fwd(tg_node *n)
{
    const int64_t C = tg_node_attr(n)->batch_norm.C;
    const bn_running *run = bn_run(n);
    double *mean = n->saved, *var = mean + C;
    if (!tg_node_attr(n)->batch_norm.training) {
        for (int64_t c = 0; c < C; c++) {
            mean[c] = tg_get(run->mean, c), var[c] = tg_get(run->var, c);
            if (var[c] < 0) {
                tg_fail(tg_node_out(n)->tape, TG_EARG,
                        "tg_batch_norm: running variance[%lld] = %g is negative", (long long)c,
                        var[c]);
                return;
            }
        }
        TG_DISPATCH(n, bn_fwd);
        return;
    }
    TG_DISPATCH(n, bn_fwd);
    /* r = (1-momentum) r + momentum · stat, with the unbiased variance (PyTorch's rule). */
    const double M = (double)(tg_node_attr(n)->batch_norm.N * tg_node_attr(n)->batch_norm.R),
                 k = run->momentum;
    for (int64_t c = 0; c < C; c++) {
        if (run->mean) tg_set(run->mean, c, (1 - k) * tg_get(run->mean, c) + k * mean[c]);
        if (run->var) tg_set(run->var, c, (1 - k) * tg_get(run->var, c) + k * var[c] * M / (M - 1));
    }
}
void tg_batch_norm_bwd(tg_node *n) { TG_DISPATCH(n, bn_bwd); }

static bool is_vec(const tg_tensor *t, int64_t c) { return t->ndim == 1 && t->shape[0] == c; }

/* Checks a running statistic (NULL is fine here): shape [C], x's dtype, usable on tp, and a
 * leaf when training writes into it. Records the error and returns false otherwise. */
static bool running_ok(tg_tape *tp, const tg_tensor *x, tg_tensor *r, const char *what,
                       bool training)
{
    char sr[128], sx[128];
    int64_t C = x->shape[1];
    if (!r) return true;
    if (!is_vec(r, C)) {
        tg_fail(tp, TG_ESHAPE, "tg_batch_norm: running %s %s: want [%lld] (x is %s)", what,
                tg_shape_str(r, sr, sizeof sr), (long long)C, tg_shape_str(x, sx, sizeof sx));
        return false;
    }
    if (r->dtype != x->dtype) {
        tg_fail(tp, TG_EDTYPE, "tg_batch_norm: running %s is %s, x is %s", what,
                tg_dtype_name((tg_dtype)r->dtype), tg_dtype_name((tg_dtype)x->dtype));
        return false;
    }
    if (!tg_tensor_usable(tp, r)) {
        tg_fail(tp, TG_ESTATE,
                "tg_batch_norm: running %s belongs to another tape or was made "
                "before tg_tape_reset",
                what);
        return false;
    }
    if (training && !r->leaf) {
        tg_fail(tp, TG_EARG,
                "tg_batch_norm: running %s is an op output; training updates it "
                "in place, so it must be a leaf",
                what);
        return false;
    }
    return true;
}

tg_tensor *tg_batch_norm(tg_tape *tp, tg_tensor *x, tg_tensor *gamma, tg_tensor *beta,
                         tg_tensor *running_mean, tg_tensor *running_var, double momentum,
                         double eps, bool training)
{
    tg_tensor *in[3] = {x, gamma, beta};
    char buf[384];
    if (tg_op_check(tp, TG_OP_batch_norm, 3, in)) return NULL;
    if (x->ndim < 2 || !is_vec(gamma, x->shape[1]) || !is_vec(beta, x->shape[1])) {
        tg_fail(tp, TG_ESHAPE, "tg_batch_norm: %s: want x [N,C,...], gamma [C], beta [C]",
                tg_shapes_str(buf, sizeof buf, 3, in));
        return NULL;
    }
    if (!running_ok(tp, x, running_mean, "mean", training) ||
        !running_ok(tp, x, running_var, "variance", training))
        return NULL;
    if (!(eps > 0 && isfinite(eps)) || !(momentum >= 0 && momentum <= 1)) {
        tg_fail(tp, TG_EARG,
                "tg_batch_norm: eps = %g, momentum = %g: want eps > 0 (finite) and "
                "0 <= momentum <= 1",
                eps, momentum);
        return NULL;
    }
    if (!training && (!running_mean || !running_var)) {
        tg_fail(tp, TG_EARG, "tg_batch_norm: eval mode needs the running mean and variance");
        return NULL;
    }
    int64_t N = x->shape[0], C = x->shape[1], R = 1;
    for (int d = 2; d < x->ndim; d++) R *= x->shape[d];
    /* One value per channel has no spread: the unbiased variance would divide by 0 (and
     * PyTorch refuses it too), so training needs M = N·R >= 2. */
    if (training && C > 0 && N * R < 2) {
        tg_fail(tp, TG_ESHAPE,
                "tg_batch_norm: %s: training needs more than one value per "
                "channel (N times the trailing sizes >= 2)",
                tg_shape_str(x, buf, sizeof buf));
        return NULL;
    }
    tg_node *n = tg_op_begin(tp, TG_OP_batch_norm, 3, in, x->ndim, x->shape);
    if (!n) return NULL;
    if (!tg_op_save(tp, n, 5 * (size_t)C * sizeof(double) + sizeof(bn_running))) return NULL;
    tg_node_attr(n)->batch_norm.N = N, tg_node_attr(n)->batch_norm.C = C,
    tg_node_attr(n)->batch_norm.R = R;
    tg_node_attr(n)->batch_norm.eps = eps, tg_node_attr(n)->batch_norm.training = training;
    *bn_run(n) = (bn_running){running_mean, running_var, momentum};
    return tg_op_finish(tp, n); /* the forward loads or updates the running statistics */
}

/* ---- the same backwards in ops (tg_op.vjp) ---- */

/* dx = dy · (m / (1-p)), with the saved mask as a constant (the map is linear in x). */
void tg_dropout_vjp(tg_tape *tp, const tg_node *n, tg_tensor *dy, const bool *want, tg_tensor **dx)
{
    (void)want;
    tg_tensor *x = n->in[0], *m = tg_const_like(tp, x, 0);
    if (!m) return;
    const uint8_t *keep = n->saved;
    const double scale = 1.0 / (1.0 - tg_node_attr(n)->dropout.p);
    for (int64_t i = 0; i < x->numel; i++)
        if (keep[i]) tg_set(m, i, scale);
    dx[0] = tg_mul(tp, dy, m);
}

/* A constant shaped like s (a per-channel view) holding v[0..C). */
static tg_tensor *channel_const(tg_tape *tp, const tg_tensor *like, int nd, const int64_t *s,
                                const double *v, int64_t C)
{
    tg_tensor *t = tg_const(tp, "gradients", (tg_dtype)like->dtype, nd, s, 0);
    for (int64_t c = 0; t && c < C; c++) tg_set(t, c, v[c]);
    return t;
}

/* x and dy viewed as [N, C, R] ([N, C] when x is 2-D), with the channel statistics of shape
 * [1, C, 1] ([1, C]). Training: the statistics are ops of x, so second derivatives go
 * through them:
 *   μ = Σ x / M, σ = sqrt(Σ (x - μ)² / M + eps), x̂ = (x - μ) / σ,
 *   dx = γ/σ · (dy - Σ dy / M - x̂ Σ dy x̂ / M).
 * Eval: μ and s = 1/sqrt(σ² + eps) are the saved constants, x̂ = (x - μ) s, dx = dy · γ s.
 * Both: dγ = Σ dy x̂, dβ = Σ dy (sums over N and R). */
void tg_batch_norm_vjp(tg_tape *tp, const tg_node *n, tg_tensor *dy, const bool *want,
                       tg_tensor **dx)
{
    const int64_t N = tg_node_attr(n)->batch_norm.N, C = tg_node_attr(n)->batch_norm.C;
    const int64_t R = tg_node_attr(n)->batch_norm.R;
    const double M = (double)(N * R),
                 im = M > 0 ? 1.0 / M : 1.0; /* training: M = 0 only if C = 0 */
    tg_tensor *x = n->in[0], *gamma = n->in[1];
    const double *mean = n->saved, *inv = mean + 2 * C;
    const int nd = x->ndim == 2 ? 2 : 3;
    const int64_t v[3] = {N, C, R}, cs[3] = {1, C, 1};
    tg_tensor *xv = x->ndim == nd ? x : tg_reshape(tp, x, nd, v);
    tg_tensor *dyv = dy->ndim == nd ? dy : tg_reshape(tp, dy, nd, v);
    tg_tensor *gc = tg_reshape(tp, gamma, nd, cs);
    tg_tensor *xh = NULL, *g = NULL;
    if (tg_node_attr(n)->batch_norm.training) {
        tg_tensor *mu = tg_mul_scalar(tp, tg_sum_to(tp, xv, nd, cs), im);
        tg_tensor *d = tg_sub(tp, xv, mu);
        tg_tensor *var = tg_mul_scalar(tp, tg_sum_to(tp, tg_square(tp, d), nd, cs), im);
        tg_tensor *sig = tg_sqrt(tp, tg_add_scalar(tp, var, tg_node_attr(n)->batch_norm.eps));
        xh = tg_div(tp, d, sig);
        tg_tensor *sdy = tg_sum_to(tp, dyv, nd, cs);
        tg_tensor *sdyx = tg_sum_to(tp, tg_mul(tp, dyv, xh), nd, cs);
        if (want[0]) {
            tg_tensor *in = tg_sub(tp, tg_sub(tp, dyv, tg_mul_scalar(tp, sdy, im)),
                                   tg_mul(tp, xh, tg_mul_scalar(tp, sdyx, im)));
            g = tg_mul(tp, tg_div(tp, gc, sig), in);
        }
        if (want[1]) dx[1] = tg_reshape(tp, sdyx, 1, &C);
        if (want[2]) dx[2] = tg_reshape(tp, sdy, 1, &C);
    } else {
        tg_tensor *s = channel_const(tp, x, nd, cs, inv, C);
        if (want[0]) g = tg_mul(tp, dyv, tg_mul(tp, gc, s));
        if (want[1]) {
            xh = tg_mul(tp, tg_sub(tp, xv, channel_const(tp, x, nd, cs, mean, C)), s);
            dx[1] = tg_reshape(tp, tg_sum_to(tp, tg_mul(tp, dyv, xh), nd, cs), 1, &C);
        }
        if (want[2]) dx[2] = tg_reshape(tp, tg_sum_to(tp, dyv, nd, cs), 1, &C);
    }
    if (want[0]) dx[0] = g && g->ndim != x->ndim ? tg_reshape(tp, g, x->ndim, x->shape) : g;
}
