/* tapegrad/ops.h: every differentiable op. Each takes the tape first, returns a tensor
 * owned by the tape (valid until tg_tape_reset), and returns NULL on error with the first
 * error kept on the tape (tg_tape_error). An op given a NULL input returns NULL. Inputs of
 * one op share one dtype (TG_EDTYPE otherwise). The op reference with formulas and
 * gradients is docs/ops.md. Axes may be negative (counting from the end). An output whose
 * shape passes TG_MAX_NUMEL (core.h: its element count, or the product of its non-zero
 * sizes) is refused with TG_ESHAPE, recording nothing. Empty tensors with huge other sizes
 * ([2^40,0]) go through every op, forward and backward, with no loop over those sizes. */
#ifndef TAPEGRAD_OPS_H
#define TAPEGRAD_OPS_H

#include "core.h"
#include "tape.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TG_ALL_AXES (-1000) /* reduce over every element */

/* ---- matrix products (BLIS) ---- */
/* y = a · b. a [m,k] or [B,m,k]; b [k,n] or [B,k,n]; y [m,n] or [B,m,n].
 * da += dy · bᵀ, db += aᵀ · dy: in tg_backward, GEMMs with transposition flags, no copies
 * (the backward in ops of tg_gradients takes them through tg_matmul_t's flags, and copies
 * a transposed operand only for products batched on both sides). */
TG_API tg_tensor *tg_matmul(tg_tape *tp, tg_tensor *a, tg_tensor *b);
/* y = op(a) · op(b) for 2-D a and b, where op(t) is tᵀ if its flag (ta, tb) is set and t
 * otherwise: the product of transposed operands without copying them (the flags go to
 * the GEMM). op(a) [m,k], op(b) [k,n], y [m,n]; TG_ESHAPE for other ranks or inner sizes.
 * Its gradients are matmul_t products too: da = dy·op(b)ᵀ (ta: op(b)·dyᵀ), db = op(a)ᵀ·dy
 * (tb: dyᵀ·op(a)). The backwards in ops of matmul and linear use it. */
TG_API tg_tensor *tg_matmul_t(tg_tape *tp, tg_tensor *a, tg_tensor *b, bool ta, bool tb);
/* y = x · w + b (a fully connected layer in one op). x [m,k], w [k,n], b [n]; y [m,n].
 * dx += dy · wᵀ, dw += xᵀ · dy, db += column sums of dy. */
TG_API tg_tensor *tg_linear(tg_tape *tp, tg_tensor *x, tg_tensor *w, tg_tensor *b);
/* act(x·w + b) as one node, the same function as tg_<act>(tg_linear(x, w, b)) with fewer
 * passes over the output: the bias and the activation are applied in one pass after the
 * GEMM, and the backward forms the gradient at the pre-activation and the bias gradient
 * before its two GEMMs (split over the BLIS threads when the output is large, with the same
 * bits as one thread; the GEMMs' bits across thread counts are BLIS's, docs/design.md).
 * Values agree with the composition up to rounding (the bias is added after the product).
 * alpha is leaky_relu's slope; it must be >= 0, since the derivative is read off the
 * output. tg_nn's Sequential uses it for a linear layer followed by one of these. */
typedef enum tg_act {
    TG_ACT_IDENTITY,
    TG_ACT_RELU,
    TG_ACT_LEAKY_RELU,
    TG_ACT_TANH,
    TG_ACT_SIGMOID
} tg_act;
TG_API tg_tensor *tg_linear_act(tg_tape *tp, tg_tensor *x, tg_tensor *w, tg_tensor *b, tg_act act,
                                double alpha);

/* ---- elementwise, with NumPy broadcasting; gradients are summed over broadcast axes ----
 * Shapes align from the right; each dimension pair is equal or has a 1 (either operand
 * may broadcast, up to TG_MAX_DIMS); y has the broadcast shape. TG_ESHAPE otherwise:
 * "tg_add: [2,3] and [4]: shapes do not broadcast". Division: da += dy/b, db -= dy a/b². */
TG_API tg_tensor *tg_add(tg_tape *tp, tg_tensor *a, tg_tensor *b); /* a + b */
TG_API tg_tensor *tg_sub(tg_tape *tp, tg_tensor *a, tg_tensor *b); /* a - b */
TG_API tg_tensor *tg_mul(tg_tape *tp, tg_tensor *a, tg_tensor *b); /* a * b */
TG_API tg_tensor *tg_div(tg_tape *tp, tg_tensor *a, tg_tensor *b); /* a / b */

/* Broadcasting as an op and its adjoint, each the other's gradient. broadcast_to repeats x
 * to shape: x's shape must broadcast to it (aligned from the right, each size of x equal or
 * 1, at most ndim dimensions). sum_to sums x over the axes where shape is 1 or missing,
 * giving shape: shape must broadcast to x's shape. It is the gradient of a broadcast
 * operand. A bad target rank (outside 0..TG_MAX_DIMS, or shape NULL with ndim > 0) or a
 * negative size is TG_EARG; a target past TG_MAX_NUMEL, or one that does not broadcast,
 * TG_ESHAPE. */
TG_API tg_tensor *tg_broadcast_to(tg_tape *tp, tg_tensor *x, int ndim, const int64_t *shape);
TG_API tg_tensor *tg_sum_to(tg_tape *tp, tg_tensor *x, int ndim, const int64_t *shape);

/* ---- unary math, same shape as x; the scalar c or p must be finite (TG_EARG) ---- */
TG_API tg_tensor *tg_neg(tg_tape *tp, tg_tensor *x);                  /* -x */
TG_API tg_tensor *tg_add_scalar(tg_tape *tp, tg_tensor *x, double c); /* x + c */
TG_API tg_tensor *tg_mul_scalar(tg_tape *tp, tg_tensor *x, double c); /* c * x */
/* x^p with C's pow: NaN for x < 0 and a non-integer p. dx = p x^(p-1), and 0 for p = 0. */
TG_API tg_tensor *tg_pow_scalar(tg_tape *tp, tg_tensor *x, double p);
TG_API tg_tensor *tg_exp(tg_tape *tp, tg_tensor *x);
TG_API tg_tensor *tg_log(tg_tape *tp, tg_tensor *x); /* natural log */
TG_API tg_tensor *tg_sqrt(tg_tape *tp, tg_tensor *x);
TG_API tg_tensor *tg_abs(tg_tape *tp, tg_tensor *x);    /* dx = sign(x), 0 at 0 */
TG_API tg_tensor *tg_square(tg_tape *tp, tg_tensor *x); /* x*x */

/* ---- reductions: along one axis (removed unless keepdim) or over all (TG_ALL_AXES,
 * giving a scalar of shape [] or all-ones dims with keepdim) ---- */
TG_API tg_tensor *tg_sum(tg_tape *tp, tg_tensor *x, int axis, bool keepdim);
TG_API tg_tensor *tg_mean(tg_tape *tp, tg_tensor *x, int axis, bool keepdim);
/* The gradient goes to the first maximal element of each reduced slice. NaN propagates, as
 * in torch.max(x, dim): a slice holding a NaN has the maximum NaN, and its gradient goes to
 * the slice's first NaN. Over TG_ALL_AXES too (torch.max(x) splits the gradient among tied
 * maxima instead). */
TG_API tg_tensor *tg_max(tg_tape *tp, tg_tensor *x, int axis, bool keepdim);

/* ---- shape ops (outputs are contiguous copies) ---- */
/* Same elements, new shape; one entry may be -1 (inferred). Other negative sizes: TG_EARG.
 * A -1 next to a 0 is ambiguous, and sizes multiplying past TG_MAX_NUMEL are refused:
 * TG_ESHAPE. */
TG_API tg_tensor *tg_reshape(tg_tape *tp, tg_tensor *x, int ndim, const int64_t *shape);
/* Swaps axes a0 and a1. */
TG_API tg_tensor *tg_transpose(tg_tape *tp, tg_tensor *x, int a0, int a1);
/* Elements start..end-1 (step 1) along axis; negative start/end count from the end. */
TG_API tg_tensor *tg_slice(tg_tape *tp, tg_tensor *x, int axis, int64_t start, int64_t end);
/* Joins n tensors along axis (1 <= n <= 65535, TG_EARG otherwise); all other dimensions must
 * agree, and the sizes along axis add up to at most TG_MAX_NUMEL (TG_ESHAPE otherwise). */
TG_API tg_tensor *tg_concat(tg_tape *tp, int n, tg_tensor *const *xs, int axis);
/* Constant padding: x inside a border of value, before[d] elements ahead of it and after[d]
 * behind it along each axis d, so axis d has before[d] + x's size + after[d] elements.
 * before and after hold x's ndim sizes, each >= 0 (TG_EARG otherwise; either may be NULL
 * for a 0-d x, which is copied); value must be finite as a double (TG_EARG) and is
 * converted to x's dtype. An output past TG_MAX_NUMEL is TG_ESHAPE. dx is the interior of
 * dy: tg_pad and tg_slice are each other's adjoints (the gradient of a slice is its dy
 * padded with zeros). */
TG_API tg_tensor *tg_pad(tg_tape *tp, tg_tensor *x, const int64_t *before, const int64_t *after,
                         double value);

/* ---- activations: same shape as x; NaN inputs stay NaN (step excepted) ---- */
TG_API tg_tensor *tg_sigmoid(tg_tape *tp, tg_tensor *x); /* 1/(1+e^-x), stable for any x */
TG_API tg_tensor *tg_tanh(tg_tape *tp, tg_tensor *x);
TG_API tg_tensor *tg_relu(tg_tape *tp, tg_tensor *x); /* max(0,x); dx = [x > 0] */
/* x>0 ? x : αx and x>0 ? x : α(e^x-1); at x = 0 the slope is α. α finite (TG_EARG). */
TG_API tg_tensor *tg_leaky_relu(tg_tape *tp, tg_tensor *x, double alpha);
TG_API tg_tensor *tg_elu(tg_tape *tp, tg_tensor *x, double alpha);
TG_API tg_tensor *tg_softplus(tg_tape *tp, tg_tensor *x); /* ln(1+e^x), stable */
/* x>0 ? x : α·x with a learnable α broadcast against x ([1] or the last dimension,
 * TG_ESHAPE otherwise). dα sums min(0,x)·dy over the elements each α entry covers. */
TG_API tg_tensor *tg_prelu(tg_tape *tp, tg_tensor *x, tg_tensor *alpha);
/* [x > 0] and sign(x) (sign(0) = 0), exact forward. Backward is their true derivative, 0
 * everywhere (taken as 0 at the jump too, as PyTorch does), so gradients stay honest and a
 * finite-difference check agrees; to train through a threshold, use sigmoid or tanh as a
 * smooth surrogate (docs/ops.md). */
TG_API tg_tensor *tg_step(tg_tape *tp, tg_tensor *x);
TG_API tg_tensor *tg_sign(tg_tape *tp, tg_tensor *x);
/* exp(x - max) / sum exp(x - max) along axis; log_softmax = (x - max) - log sum exp.
 * The max shift keeps logits of any size finite. Axis out of range (or 0-d x): TG_EARG. */
TG_API tg_tensor *tg_softmax(tg_tape *tp, tg_tensor *x, int axis);
TG_API tg_tensor *tg_log_softmax(tg_tape *tp, tg_tensor *x, int axis);

/* ---- losses: scalar results (shape []), mean over elements unless said otherwise.
 * Prediction and target have the same shape, with at least one element (TG_ESHAPE
 * otherwise), except for the cross-entropies. Targets get gradients where the loss is
 * differentiable in them. ---- */
TG_API tg_tensor *tg_mse_loss(tg_tape *tp, tg_tensor *pred, tg_tensor *target);
/* ½ Σ (pred - target)²: the lectures' squared error, whose output error is pred - target. */
TG_API tg_tensor *tg_half_sse_loss(tg_tape *tp, tg_tensor *pred, tg_tensor *target);
TG_API tg_tensor *tg_l1_loss(tg_tape *tp, tg_tensor *pred, tg_tensor *target);
/* mean (|pred - target| - c)₊, the ε-insensitive loss. */
TG_API tg_tensor *tg_eps_insensitive_loss(tg_tape *tp, tg_tensor *pred, tg_tensor *target,
                                          double c);
/* Binary cross-entropy on probabilities p in (0,1): -mean(y log p + (1-y) log(1-p)).
 * p is clamped to [1e-12, 1-1e-12] inside the logs (f32: [1e-7, 1-1e-7]). */
TG_API tg_tensor *tg_bce_loss(tg_tape *tp, tg_tensor *p, tg_tensor *y);
/* The same from logits z, stable: mean(max(z,0) - z y + log(1 + e^-|z|)). */
TG_API tg_tensor *tg_bce_with_logits_loss(tg_tape *tp, tg_tensor *z, tg_tensor *y);
/* Fused log_softmax + negative log-likelihood, mean over the batch. logits [N,C]; labels
 * [N] holding class indices 0..C-1 as values of the logits' dtype (TG_EARG otherwise).
 * Labels get no gradient. */
TG_API tg_tensor *tg_cross_entropy(tg_tape *tp, tg_tensor *logits, tg_tensor *labels);
/* Cross-entropy with probability targets q [N,C]: -1/N Σ q log softmax(logits). */
TG_API tg_tensor *tg_cross_entropy_soft(tg_tape *tp, tg_tensor *logits, tg_tensor *q);
/* KL(p ‖ q) from log q and p, as PyTorch's kl_div(log_q, p, 'batchmean'):
 * 1/N Σ p (log p - log q), with 0 log 0 = 0; N is the first dimension (1 for scalars). */
TG_API tg_tensor *tg_kl_div_loss(tg_tape *tp, tg_tensor *log_q, tg_tensor *p);
/* Margin losses for labels y in {-1,+1} and scores g, margin M = g y:
 * hinge mean (1 - M)₊ and logistic mean ln(1 + e^-M) (stable). */
TG_API tg_tensor *tg_hinge_loss(tg_tape *tp, tg_tensor *score, tg_tensor *y);
TG_API tg_tensor *tg_logistic_loss(tg_tape *tp, tg_tensor *score, tg_tensor *y);

/* ---- regularisation and normalisation ---- */
/* Inverted dropout: while training, each element is zeroed with probability p and the rest
 * scaled by 1/(1-p); dx += dy · mask/(1-p), so gradients pass only through kept elements.
 * The mask is drawn from the tape's generator (tg_tape_seed fixes it, for f32 and f64
 * alike) and kept in the arena (1 byte per element). When not training, or p == 0, returns
 * x itself: no node, no copy, no draw. 0 <= p < 1, checked in eval too (TG_EARG). */
TG_API tg_tensor *tg_dropout(tg_tape *tp, tg_tensor *x, double p, bool training);
/* Batch normalisation over every axis but 1 of x [N,C] (or [N,C,...] with features on
 * axis 1): x̂ = (x - μ)/sqrt(σ² + eps), y = γ x̂ + β, γ and β [C]. Training uses the
 * batch statistics (biased variance; the backward goes through them) and, when
 * running_mean/running_var ([C] leaves of x's dtype, either may be NULL) are given,
 * updates them in place: r = (1-momentum) r + momentum · stat, with the unbiased
 * variance, as PyTorch does (also in no-grad mode: call it once per step). Training needs
 * at least two values per channel (N · trailing sizes >= 2, else TG_ESHAPE; PyTorch
 * refuses N = 1 too). Eval uses the running statistics (required then, TG_EARG; a
 * negative variance is TG_EARG) and leaves them alone; the backward is the affine map.
 * eps > 0 finite, 0 <= momentum <= 1 (TG_EARG). The statistics used are saved in the
 * arena. */
TG_API tg_tensor *tg_batch_norm(tg_tape *tp, tg_tensor *x, tg_tensor *gamma, tg_tensor *beta,
                                tg_tensor *running_mean, tg_tensor *running_var, double momentum,
                                double eps, bool training);

/* ---- convolution and pooling, on NCHW tensors ---- */
/* The geometry of a 2-D window sliding over [H, W]: per axis (0 = H, 1 = W) the stride
 * (0 means 1), the zero padding on both sides, and the dilation (0 means 1); groups (0
 * means 1) splits the channels for conv2d. A zeroed struct, or NULL, is stride 1, no
 * padding, dilation 1, one group. Output size per axis: (in + 2 pad - dil (k - 1) - 1) /
 * stride + 1, which must be >= 1 (TG_ESHAPE: the kernel is larger than the padded
 * input). Negative values, and values past 2^48 (TG_MAX_NUMEL), are TG_EARG. */
typedef struct tg_conv2d_opts {
    int64_t stride[2], padding[2], dilation[2];
    int64_t groups;
} tg_conv2d_opts;
/* y[n,o] = b[o] + Σ_{c in o's group, i, j} w[o,c,i,j] · x[n, c, s h + d i - p, s w + d j - p]:
 * x [N,C,H,W], w [O, C/groups, kh, kw], b [O] or NULL; y [N,O,Ho,Wo]. C and O divisible by
 * groups (depthwise: groups = C). As an unfolded input (im2col, in the tape's arena) times
 * w viewed as [O, C/groups·kh·kw], one GEMM per group and image (a 1x1 kernel with stride 1
 * and no padding multiplies x itself); the gradients are GEMMs with transposition flags and
 * the fold of the input gradient. An empty kernel (kh or kw 0) is TG_ESHAPE. */
TG_API tg_tensor *tg_conv2d(tg_tape *tp, tg_tensor *x, tg_tensor *w, tg_tensor *b,
                            const tg_conv2d_opts *o);
/* The 1-D case: x [N,C,L], w [O, C/groups, k], b [O] or NULL; y [N,O,Lo]. Recorded as
 * conv2d on [N,C,1,L]. */
TG_API tg_tensor *tg_conv1d(tg_tape *tp, tg_tensor *x, tg_tensor *w, tg_tensor *b, int64_t stride,
                            int64_t padding, int64_t dilation, int64_t groups);
/* im2col, as PyTorch's unfold: x [N,C,H,W] into [N, C·kh·kw, Ho·Wo], every window's
 * elements as a column (zeros where it reaches into the padding; o->groups is ignored).
 * fold is its adjoint (col2im): cols [N, C·kh·kw, L] summed back into [N,C,H,W], where L
 * must be the window count of that geometry and cols' rows a multiple of kh·kw (TG_ESHAPE
 * otherwise). Kernel sizes from 1, and fold's H and W from 0, up to 2^48 (else TG_EARG). */
TG_API tg_tensor *tg_unfold(tg_tape *tp, tg_tensor *x, int64_t kh, int64_t kw,
                            const tg_conv2d_opts *o);
TG_API tg_tensor *tg_fold(tg_tape *tp, tg_tensor *cols, int64_t H, int64_t W, int64_t kh,
                          int64_t kw, const tg_conv2d_opts *o);
/* Pooling windows: kernel [kh, kw] (>= 1), stride (0 means the kernel size), padding (at
 * most half the kernel, as in PyTorch). There is no default kernel: NULL options are
 * TG_EARG. */
typedef struct tg_pool2d_opts {
    int64_t kernel[2], stride[2], padding[2];
} tg_pool2d_opts;
/* The maximum of each window of x [N,C,H,W] ([N,C,Ho,Wo]); padding counts as -inf, NaN
 * propagates, the gradient goes to the first maximal element of the window. */
TG_API tg_tensor *tg_max_pool2d(tg_tape *tp, tg_tensor *x, const tg_pool2d_opts *o);
/* The mean of each window, padding counted as zeros in the divisor kh·kw (PyTorch's
 * count_include_pad = true). */
TG_API tg_tensor *tg_avg_pool2d(tg_tape *tp, tg_tensor *x, const tg_pool2d_opts *o);
/* The mean over H and W of x [N,C,H,W]: [N,C]. (A mean over the flattened H·W.) */
TG_API tg_tensor *tg_global_avg_pool2d(tg_tape *tp, tg_tensor *x);

/* ---- user-defined ops ---- */
/* An op written outside the library: a forward and a backward over plain tensors. Inputs
 * and the output are contiguous, of one dtype. backward must ADD into din[i] (zeroed or
 * holding other contributions) for every i where din[i] is not NULL; din[i] is NULL for
 * inputs that need no gradient. The descriptor must outlive the tape's use of it. */
typedef struct tg_custom_op {
    const char *name; /* shown in errors, tg_node_op and DOT export */
    void (*forward)(void *ctx, int n_in, const tg_tensor *const *in, tg_tensor *out);
    void (*backward)(void *ctx, int n_in, const tg_tensor *const *in, const tg_tensor *out,
                     const tg_tensor *dout, tg_tensor *const *din);
    /* Optional (NULL: none): the same backward written in ops on tp, for the sweeps of
     * tg_gradients. Returns input i's gradient dyᵀ·∂out/∂in[i], a tensor of in[i]'s shape
     * built with tapegrad ops from in[], out and dout (so that, recorded, it can be
     * differentiated again), or NULL with the error on the tape. Called only for inputs
     * that need a gradient. Without it, tg_gradients through this op fails with
     * TG_ESTATE and builds nothing; tg_backward needs only backward. */
    tg_tensor *(*vjp)(void *ctx, tg_tape *tp, int n_in, tg_tensor *const *in, tg_tensor *out,
                      tg_tensor *dout, int i);
} tg_custom_op;

/* Runs op on n_in inputs (1..16) into a new output of the given shape, recording it like any
 * built-in op. ctx is passed to both callbacks. A negative size is TG_EARG, a shape past
 * TG_MAX_NUMEL TG_ESHAPE ("tg_custom(<name>): shape [..] has more than ..."). */
TG_API tg_tensor *tg_custom(tg_tape *tp, const tg_custom_op *op, void *ctx, int n_in,
                            tg_tensor *const *in, int ndim, const int64_t *shape);

#ifdef __cplusplus
}
#endif
#endif
