/* ops/loss.c: losses. Each returns a scalar (shape []) and saves what its backward needs.
 * pred and target have the same shape, except cross_entropy (logits [N,C], labels [N]). */
#include "elem.h"

/* ---- elementwise losses: scale · Σ phi(p, t) over the elements, p the prediction and t
 * the target, with dphi/dp and dphi/dt. Each term is a double function of one element,
 * double phi(double p, double t, double c, double eps), c the loss's parameter (attr.loss.c)
 * and eps bce's clamp (attr.loss.eps); the loops are ops/pair_t.h. ---- */
typedef double (*pair_fn)(double p, double t, double c, double eps);

#define TG_TEMPLATE "pair_t.h"
#include "stamp.h"

TG_INLINE void pair_fwd(tg_node *n, pair_fn phi)
{
    if (tg_node_out(n)->dtype == TG_F32) pair_fwd_f32(n, phi);
    else pair_fwd_f64(n, phi);
}
TG_INLINE void pair_bwd(tg_node *n, pair_fn dphi_dp, pair_fn dphi_dt)
{
    if (tg_node_out(n)->dtype == TG_F32) pair_bwd_f32(n, dphi_dp, dphi_dt);
    else pair_bwd_f64(n, dphi_dp, dphi_dt);
}

static inline double sgn(double v) { return (double)((v > 0) - (v < 0)); }
/* bce clamps p into [eps, 1-eps] inside the logs (1e-12 in f64, 1e-7 in f32; attr.loss.eps). */
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

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
/* (p - t)²: mse_loss (scale 1/n) and half_sse_loss (scale ½). */
static inline double sq_err(double p, double t, double c, double eps) { return (p - t) * (p - t); }
static inline double sq_err_dp(double p, double t, double c, double eps) { return 2 * (p - t); }
static inline double sq_err_dt(double p, double t, double c, double eps) { return -2 * (p - t); }
/* |p - t|, with sign(0) = 0. */
static inline double abs_err(double p, double t, double c, double eps) { return fabs(p - t); }
static inline double abs_err_dp(double p, double t, double c, double eps) { return sgn(p - t); }
static inline double abs_err_dt(double p, double t, double c, double eps) { return -sgn(p - t); }
/* max(|p - t| - c, 0). */
static inline double eps_ins(double p, double t, double c, double eps)
{
    return fabs(p - t) > c ? fabs(p - t) - c : 0.0;
}
static inline double eps_ins_dp(double p, double t, double c, double eps)
{
    return fabs(p - t) > c ? sgn(p - t) : 0.0;
}
static inline double eps_ins_dt(double p, double t, double c, double eps)
{
    return fabs(p - t) > c ? -sgn(p - t) : 0.0;
}
/* -(t ln p + (1 - t) ln(1 - p)) with p clamped. Inside the clamp d/dp = (p - t) / (p (1 - p));
 * outside, the clamped logs are constant. */
static inline double bce(double p, double t, double c, double eps)
{
    return -(t * log(clampp(p, eps)) + (1 - t) * log(1 - clampp(p, eps)));
}
static inline double bce_dp(double p, double t, double c, double eps)
{
    return p > eps && p < 1 - eps ? (p - t) / (p * (1 - p)) : 0.0;
}
static inline double bce_dt(double p, double t, double c, double eps)
{
    return log(1 - clampp(p, eps)) - log(clampp(p, eps));
}
/* bce of σ(z), z = p: max(z, 0) - z t + ln(1 + e^-|z|). */
static inline double bce_logits(double p, double t, double c, double eps)
{
    return fmax(p, 0.0) - p * t + log1p_exp_neg_abs(p);
}
static inline double bce_logits_dp(double p, double t, double c, double eps) { return sigm(p) - t; }
static inline double bce_logits_dt(double p, double t, double c, double eps) { return -p; }
/* Margin losses of the score p and the label t (±1), margin p t: max(0, 1 - p t). */
static inline double hinge(double p, double t, double c, double eps)
{
    return 1 - p * t > 0 ? 1 - p * t : 0.0;
}
static inline double hinge_dp(double p, double t, double c, double eps)
{
    return 1 - p * t > 0 ? -t : 0.0;
}
static inline double hinge_dt(double p, double t, double c, double eps)
{
    return 1 - p * t > 0 ? -p : 0.0;
}
/* ln(1 + e^-p t), stable. */
static inline double logistic(double p, double t, double c, double eps)
{
    return fmax(-p * t, 0.0) + log1p_exp_neg_abs(p * t);
}
static inline double logistic_dp(double p, double t, double c, double eps)
{
    return -t * sigm(-p * t);
}
static inline double logistic_dt(double p, double t, double c, double eps)
{
    return -p * sigm(-p * t);
}
/* KL(t ‖ q) from p = log q and t: t (log t - p), 0 where t = 0. */
static inline double kl_div(double p, double t, double c, double eps)
{
    return t > 0 ? t * (log(t) - p) : 0.0;
}
static inline double kl_div_dp(double p, double t, double c, double eps)
{
    return t > 0 ? -t : 0.0;
}
static inline double kl_div_dt(double p, double t, double c, double eps)
{
    return t > 0 ? log(t) + 1 - p : 0.0;
}
#pragma GCC diagnostic pop

void tg_mse_loss_fwd(tg_node *n) { pair_fwd(n, sq_err); }
void tg_mse_loss_bwd(tg_node *n) { pair_bwd(n, sq_err_dp, sq_err_dt); }
void tg_half_sse_loss_fwd(tg_node *n) { pair_fwd(n, sq_err); }
void tg_half_sse_loss_bwd(tg_node *n) { pair_bwd(n, sq_err_dp, sq_err_dt); }
void tg_l1_loss_fwd(tg_node *n) { pair_fwd(n, abs_err); }
void tg_l1_loss_bwd(tg_node *n) { pair_bwd(n, abs_err_dp, abs_err_dt); }
void tg_eps_insensitive_loss_fwd(tg_node *n) { pair_fwd(n, eps_ins); }
void tg_eps_insensitive_loss_bwd(tg_node *n) { pair_bwd(n, eps_ins_dp, eps_ins_dt); }
void tg_bce_loss_fwd(tg_node *n) { pair_fwd(n, bce); }
void tg_bce_loss_bwd(tg_node *n) { pair_bwd(n, bce_dp, bce_dt); }
void tg_bce_with_logits_loss_fwd(tg_node *n) { pair_fwd(n, bce_logits); }
void tg_bce_with_logits_loss_bwd(tg_node *n) { pair_bwd(n, bce_logits_dp, bce_logits_dt); }
void tg_hinge_loss_fwd(tg_node *n) { pair_fwd(n, hinge); }
void tg_hinge_loss_bwd(tg_node *n) { pair_bwd(n, hinge_dp, hinge_dt); }
void tg_logistic_loss_fwd(tg_node *n) { pair_fwd(n, logistic); }
void tg_logistic_loss_bwd(tg_node *n) { pair_bwd(n, logistic_dp, logistic_dt); }
void tg_kl_div_loss_fwd(tg_node *n) { pair_fwd(n, kl_div); }
void tg_kl_div_loss_bwd(tg_node *n) { pair_bwd(n, kl_div_dp, kl_div_dt); }

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
    tg_node_attr(n)->loss.c = c;
    tg_node_attr(n)->loss.scale = op == TG_OP_half_sse_loss ? 0.5
                                  : op == TG_OP_kl_div_loss
                                      ? 1.0 / (double)(p->ndim ? p->shape[0] : 1)
                                      : 1.0 / (double)p->numel;
    tg_node_attr(n)->loss.eps = p->dtype == TG_F32 ? 1e-7 : 1e-12;
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

/* ---- cross-entropy from logits: ce_fwd_f32 ... ce_bwd_f64, from the template ops/ce_t.h,
 * where the comment gives the math and what is saved ---- */
#define TG_TEMPLATE "ce_t.h"
#include "stamp.h"

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

/* ---- the same backwards in ops (tg_op.vjp). dy is the loss's [] gradient, g = dy scale
 * broadcasts against the inputs. Where a derivative is piecewise constant (l1, the ε tube,
 * the margin of hinge, the bce clamp, kl's t > 0) it is a constant read off the inputs: its
 * own derivative is 0, and kinks get the numeric backward's choice. ---- */
/* A constant shaped like p: f(p_i, t_i, c, eps) at each element. */
static tg_tensor *coef(tg_tape *tp, const tg_node *n, pair_fn f)
{
    const tg_tensor *p = n->in[0], *t = n->in[1];
    tg_tensor *k = tg_const_like(tp, p, 0);
    if (!k) return NULL;
    for (int64_t i = 0; i < k->numel; i++)
        tg_set(k, i,
               f(tg_get(p, i), tg_get(t, i), tg_node_attr(n)->loss.c, tg_node_attr(n)->loss.eps));
    return k;
}
static tg_tensor *scaled(tg_tape *tp, const tg_node *n, tg_tensor *dy)
{
    return tg_mul_scalar(tp, dy, tg_node_attr(n)->loss.scale);
}
/* dp = g dphi/dp and dt = g dphi/dt with both derivatives constants (l1, ε-insensitive). */
static void const_vjp(tg_tape *tp, const tg_node *n, tg_tensor *dy, const bool *want,
                      tg_tensor **dx, pair_fn dp, pair_fn dt)
{
    tg_tensor *g = scaled(tp, n, dy);
    if (want[0]) dx[0] = tg_mul(tp, g, coef(tp, n, dp));
    if (want[1]) dx[1] = tg_mul(tp, g, coef(tp, n, dt));
}

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
/* The masks and the clamp's constant part: bce's p strictly inside [eps, 1-eps], its
 * clamped p and 1 - that where outside (0 inside; in double, then rounded, as 1 - eps
 * may not exist in f32), hinge's M = p t < 1, kl's t > 0. */
static double bce_in(double p, double t, double c, double eps) { return p > eps && p < 1 - eps; }
static double bce_out(double p, double t, double c, double eps)
{
    return p > eps && p < 1 - eps ? 0.0 : clampp(p, eps);
}
static double bce_out_q(double p, double t, double c, double eps)
{
    return p > eps && p < 1 - eps ? 0.0 : 1 - clampp(p, eps);
}
static double hinge_on(double p, double t, double c, double eps) { return 1 - p * t > 0; }
static double kl_on(double p, double t, double c, double eps) { return t > 0; }
static double kl_off(double p, double t, double c, double eps) { return !(t > 0); }
#pragma GCC diagnostic pop

/* g 2(p - t) and its negative. */
static void sq_err_vjp(tg_tape *tp, const tg_node *n, tg_tensor *dy, const bool *want,
                       tg_tensor **dx)
{
    tg_tensor *d =
        tg_mul(tp, scaled(tp, n, dy), tg_mul_scalar(tp, tg_sub(tp, n->in[0], n->in[1]), 2));
    if (want[0]) dx[0] = d;
    if (want[1]) dx[1] = tg_neg(tp, d);
}
void tg_mse_loss_vjp(tg_tape *tp, const tg_node *n, tg_tensor *dy, const bool *want, tg_tensor **dx)
{
    sq_err_vjp(tp, n, dy, want, dx);
}
void tg_half_sse_loss_vjp(tg_tape *tp, const tg_node *n, tg_tensor *dy, const bool *want,
                          tg_tensor **dx)
{
    sq_err_vjp(tp, n, dy, want, dx);
}
/* ±g sign(p - t): the second derivative is 0. */
void tg_l1_loss_vjp(tg_tape *tp, const tg_node *n, tg_tensor *dy, const bool *want, tg_tensor **dx)
{
    const_vjp(tp, n, dy, want, dx, abs_err_dp, abs_err_dt);
}
void tg_eps_insensitive_loss_vjp(tg_tape *tp, const tg_node *n, tg_tensor *dy, const bool *want,
                                 tg_tensor **dx)
{
    const_vjp(tp, n, dy, want, dx, eps_ins_dp, eps_ins_dt);
}
/* With m = [eps < p < 1-eps], the clamp as ops: p̂ = p m + (p clamped)(1 - m) and
 * q̂ = (1 - p) m + (1 - p clamped)(1 - m), so that dp = g m (p - t) / (p̂ q̂) (p̂ = p and
 * q̂ = 1 - p inside; finite outside, where m = 0) and dt = g (ln q̂ - ln p̂). Outside the
 * clamp p̂ and q̂ are constants. */
void tg_bce_loss_vjp(tg_tape *tp, const tg_node *n, tg_tensor *dy, const bool *want, tg_tensor **dx)
{
    tg_tensor *p = n->in[0], *t = n->in[1], *g = scaled(tp, n, dy), *m = coef(tp, n, bce_in);
    tg_tensor *pc = tg_add(tp, tg_mul(tp, p, m), coef(tp, n, bce_out));
    tg_tensor *qc =
        tg_add(tp, tg_mul(tp, tg_add_scalar(tp, tg_neg(tp, p), 1), m), coef(tp, n, bce_out_q));
    if (want[0])
        dx[0] = tg_mul(tp, tg_mul(tp, g, tg_div(tp, tg_sub(tp, p, t), tg_mul(tp, pc, qc))), m);
    if (want[1]) dx[1] = tg_mul(tp, g, tg_sub(tp, tg_log(tp, qc), tg_log(tp, pc)));
}
/* dz = g (σ(z) - t), dt = -g z. */
void tg_bce_with_logits_loss_vjp(tg_tape *tp, const tg_node *n, tg_tensor *dy, const bool *want,
                                 tg_tensor **dx)
{
    tg_tensor *g = scaled(tp, n, dy);
    if (want[0]) dx[0] = tg_mul(tp, g, tg_sub(tp, tg_sigmoid(tp, n->in[0]), n->in[1]));
    if (want[1]) dx[1] = tg_neg(tp, tg_mul(tp, g, n->in[0]));
}
/* dg = -g t [M < 1], dt = -g p [M < 1]: the second derivative in p alone is 0, the mixed one
 * -g [M < 1]. */
void tg_hinge_loss_vjp(tg_tape *tp, const tg_node *n, tg_tensor *dy, const bool *want,
                       tg_tensor **dx)
{
    tg_tensor *g = tg_mul(tp, scaled(tp, n, dy), coef(tp, n, hinge_on));
    if (want[0]) dx[0] = tg_neg(tp, tg_mul(tp, g, n->in[1]));
    if (want[1]) dx[1] = tg_neg(tp, tg_mul(tp, g, n->in[0]));
}
/* dp = -g t σ(-p t), dt = -g p σ(-p t). */
void tg_logistic_loss_vjp(tg_tape *tp, const tg_node *n, tg_tensor *dy, const bool *want,
                          tg_tensor **dx)
{
    tg_tensor *p = n->in[0], *t = n->in[1], *g = scaled(tp, n, dy);
    tg_tensor *s = tg_sigmoid(tp, tg_neg(tp, tg_mul(tp, p, t)));
    if (want[0]) dx[0] = tg_neg(tp, tg_mul(tp, g, tg_mul(tp, t, s)));
    if (want[1]) dx[1] = tg_neg(tp, tg_mul(tp, g, tg_mul(tp, p, s)));
}
/* dp = -g t [t > 0]; dt = g [t > 0] (ln t + 1 - p), the log taken of t [t > 0] + [t <= 0]
 * (1 where t <= 0, so no -inf there). */
void tg_kl_div_loss_vjp(tg_tape *tp, const tg_node *n, tg_tensor *dy, const bool *want,
                        tg_tensor **dx)
{
    tg_tensor *p = n->in[0], *t = n->in[1], *g = scaled(tp, n, dy);
    tg_tensor *on = coef(tp, n, kl_on);
    if (want[0]) dx[0] = tg_neg(tp, tg_mul(tp, g, tg_mul(tp, t, on)));
    if (want[1]) {
        tg_tensor *lt = tg_log(tp, tg_add(tp, tg_mul(tp, t, on), coef(tp, n, kl_off)));
        dx[1] = tg_mul(tp, tg_mul(tp, g, tg_sub(tp, tg_add_scalar(tp, lt, 1), p)), on);
    }
}
/* dz = g (softmax(z) - onehot(k)), g = dy / N, with the one-hot a constant from the
 * checked labels the forward saved; the labels get zeros. */
void tg_cross_entropy_vjp(tg_tape *tp, const tg_node *n, tg_tensor *dy, const bool *want,
                          tg_tensor **dx)
{
    tg_tensor *z = n->in[0];
    const int64_t N = z->shape[0], C = z->shape[1], *idx = n->saved;
    if (want[0]) {
        tg_tensor *oh = tg_const_like(tp, z, 0);
        if (!oh) return;
        for (int64_t r = 0; r < N; r++) tg_set(oh, r * C + idx[r], 1);
        tg_tensor *g = tg_mul_scalar(tp, dy, 1.0 / (double)N);
        dx[0] = tg_mul(tp, g, tg_sub(tp, tg_softmax(tp, z, 1), oh));
    }
    if (want[1]) dx[1] = tg_const_like(tp, n->in[1], 0);
}
/* dz = g (softmax(z) Σ_j q_j - q), dq = -g log_softmax(z), g = dy / N. */
void tg_cross_entropy_soft_vjp(tg_tape *tp, const tg_node *n, tg_tensor *dy, const bool *want,
                               tg_tensor **dx)
{
    tg_tensor *z = n->in[0], *q = n->in[1];
    tg_tensor *g = tg_mul_scalar(tp, dy, 1.0 / (double)z->shape[0]);
    if (want[0]) {
        tg_tensor *mass = tg_sum(tp, q, 1, true);
        dx[0] = tg_mul(tp, g, tg_sub(tp, tg_mul(tp, tg_softmax(tp, z, 1), mass), q));
    }
    if (want[1]) dx[1] = tg_neg(tp, tg_mul(tp, g, tg_log_softmax(tp, z, 1)));
}
