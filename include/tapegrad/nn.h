/* tapegrad/nn.h: layers that only compose ops, a Sequential container, initialisers, and
 * saving and loading a model's parameters.
 *
 * A module owns its parameters (leaf tensors with requires_grad set) and buffers (batch
 * norm's running statistics). tg_nn_forward records ops on the tape like any other code,
 * so every gradient comes out of tg_backward. Functions returning int give 0 or a negative
 * TG_E... code; those taking a tg_status fill it with the reason. None aborts. */
#ifndef TAPEGRAD_NN_H
#define TAPEGRAD_NN_H

#include <stdio.h>

#include "core.h"
#include "ops.h"
#include "optim.h"
#include "tape.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tg_module tg_module;

typedef enum tg_init {
    TG_INIT_CONSTANT,       /* every weight and bias = value (wrong on purpose: symmetry) */
    TG_INIT_UNIFORM,        /* U(-1/sqrt(n_in), 1/sqrt(n_in)) */
    TG_INIT_XAVIER_NORMAL,  /* N(0, sqrt(2/(n_in + n_out))) */
    TG_INIT_XAVIER_UNIFORM, /* U(±sqrt(6/(n_in + n_out))) */
    TG_INIT_HE_NORMAL,      /* N(0, sqrt(2/n_in)) */
    TG_INIT_HE_UNIFORM,     /* U(±sqrt(6/n_in)) */
    TG_INIT_ORTHOGONAL      /* orthonormal columns (or rows, if n_in < n_out), from the QR
                               factorisation of a normal matrix (LAPACK) */
} tg_init;

/* ---- layers ----
 * A constructor returns NULL for an argument outside the range given here (TG_EARG), a
 * dtype other than TG_F32 and TG_F64 (TG_EDTYPE), or out of memory (TG_ENOMEM); then
 * tg_nn_last_status() holds the code and a message naming the constructor and the
 * argument: "tg_nn_batchnorm1d: eps = inf is outside (0, inf)". */
/* y = x·W + b; W [in,out], b [out] (in, out >= 1); initialised TG_INIT_UNIFORM, seed 0. */
TG_API tg_module *tg_nn_linear(int64_t in, int64_t out, tg_dtype dt);
/* An activation op as a layer: "sigmoid" "tanh" "relu" "leaky_relu" (alpha, default 0.01
 * when alpha is 0) "elu" (alpha, default 1) "softplus" "step" "sign" "softmax"
 * "log_softmax" (along the last axis) or "identity". alpha must be finite. */
TG_API tg_module *tg_nn_activation(const char *name, double alpha, tg_dtype dt);
/* PReLU with a learnable alpha of `channels` elements (>= 1: 1, or x's last dimension),
 * each starting at init (finite). */
TG_API tg_module *tg_nn_prelu(int64_t channels, double init, tg_dtype dt);
/* Inverted dropout with probability p (0 <= p < 1) while training; identity in eval. */
TG_API tg_module *tg_nn_dropout(double p);
/* Batch normalisation of x [N, features] (features >= 1): gamma 1, beta 0, running mean 0
 * and var 1; momentum in [0, 1] is the running statistics' update rate, eps > 0 (finite)
 * is added to the variance. */
TG_API tg_module *tg_nn_batchnorm1d(int64_t features, double momentum, double eps, tg_dtype dt);
/* Batch normalisation of x [N,C,H,W] (channels >= 1) over N, H and W: tg_batch_norm, with
 * gamma, beta, running statistics, momentum and eps as tg_nn_batchnorm1d's; another rank
 * is TG_ESHAPE at the forward. */
TG_API tg_module *tg_nn_batchnorm2d(int64_t channels, double momentum, double eps, tg_dtype dt);
/* tg_conv2d of x [N,in_ch,H,W] with weight [out_ch, in_ch/groups, kh, kw] and, if bias, a
 * bias [out_ch]; y [N,out_ch,Ho,Wo]. in_ch, out_ch >= 1; kh, kw in 1..2^40; o (NULL for
 * the defaults, copied) as ops.h's tg_conv2d_opts: stride, padding and dilation in 0..2^40,
 * groups >= 0 dividing in_ch and out_ch; the dilated kernel, dilation·(k - 1) + 1,
 * at most 2^40 on each axis. Initialised TG_INIT_UNIFORM with fan_in =
 * in_ch/groups·kh·kw, seed 0, bias 0. */
TG_API tg_module *tg_nn_conv2d(int64_t in_ch, int64_t out_ch, int64_t kh, int64_t kw,
                               const tg_conv2d_opts *o, bool bias, tg_dtype dt);
/* tg_max_pool2d / tg_avg_pool2d of x [N,C,H,W] over o's windows (o required, copied):
 * kernel in 1..2^40, stride in 0..2^40 (0: the kernel size), padding in 0..kernel/2. */
TG_API tg_module *tg_nn_max_pool2d(const tg_pool2d_opts *o);
TG_API tg_module *tg_nn_avg_pool2d(const tg_pool2d_opts *o);
/* tg_global_avg_pool2d: x [N,C,H,W] to [N,C]. */
TG_API tg_module *tg_nn_global_avg_pool2d(void);
/* x [N, ...] (2 or more dimensions, TG_ESHAPE otherwise) as [N, product of the rest], by
 * tg_reshape; a matrix is returned as it is (no node). */
TG_API tg_module *tg_nn_flatten(void);
TG_API tg_module *tg_nn_sequential(void);
/* Appends m to seq. A module belongs to one container and a tree is at most 64 levels deep
 * (a layer is one level, a container one more than its deepest child). TG_EARG, with seq
 * and m unchanged and m not freed, when m is already in a container (its own tree or
 * another) or m is seq or holds it (the tree would contain itself). Otherwise seq takes
 * ownership of m, also on failure, when m is freed: TG_EARG for a NULL seq, one that is not
 * a sequential or nesting too deep, TG_EDTYPE for a layer whose dtype is not the tree's
 * (the dtype of its first layer with tensors: one saved file has one dtype), TG_ENOMEM.
 * A NULL m is TG_EARG, or the code of the constructor that returned it (appending
 * tg_nn_linear(...) straight away keeps its reason in tg_nn_last_status). */
TG_API int tg_nn_append(tg_module *seq, tg_module *m);
/* An MLP: linear layers sizes[0]→sizes[1]→…→sizes[n-1] (n >= 2, every size >= 1), and
 * between them [batch norm (momentum 0.1, eps 1e-5)] → activation act (a name
 * tg_nn_activation takes) → [dropout p, 0 <= p < 1]; the last layer has none (logits). The
 * linear layers are initialised TG_INIT_UNIFORM from one generator seeded 0. NULL on
 * failure, with the reason in *st. */
TG_API tg_module *tg_nn_mlp(int n, const int64_t *sizes, const char *act, double dropout,
                            bool batchnorm, tg_dtype dt, tg_status *st);
/* Frees m and everything in it. NULL does nothing, and so does a module inside a container:
 * the container frees it. */
TG_API void tg_nn_free(tg_module *m);
/* Why the last layer constructor or tg_nn_append called on this thread failed: the code
 * and a message naming the call and the argument ({0, ""} after a call that succeeded). */
TG_API const tg_status *tg_nn_last_status(void);

/* ---- use ---- */
/* Records the module on the tape; NULL (the error on the tape) on failure. */
TG_API tg_tensor *tg_nn_forward(tg_module *m, tg_tape *tp, tg_tensor *x);
/* Training mode (dropout on, batch statistics) or eval mode; modules start in training. */
TG_API void tg_nn_set_training(tg_module *m, bool training);
TG_API bool tg_nn_training(const tg_module *m);
/* Learnable parameters in a stable order (depth first; weight before bias). Writes at most
 * max pointers and returns how many the module has. */
TG_API int tg_nn_params(tg_module *m, tg_tensor **out, int max);
TG_API int tg_nn_n_params(const tg_module *m);
TG_API int64_t tg_nn_n_weights(const tg_module *m); /* elements over all parameters */
/* Makes the module compute with the given tensors instead of its own parameters (same
 * order, shapes and dtype as tg_nn_params): for gradient checks of whole models, and for
 * sharing weights. Binding the module's own tensors undoes it. The tensors are borrowed. */
TG_API int tg_nn_bind_params(tg_module *m, tg_tensor *const *params, int n);
/* Initialises every linear and conv2d layer: weights by kind, biases 0 (value for
 * TG_INIT_CONSTANT). Fans: a linear layer's n_in = in, n_out = out; a conv2d's n_in =
 * in_ch/groups·kh·kw, n_out = out_ch/groups·kh·kw. TG_INIT_ORTHOGONAL makes a conv2d's
 * weight orthogonal as the matrix [out_ch, in_ch/groups·kh·kw]. Other layers are left. */
TG_API int tg_nn_init(tg_module *m, tg_init kind, double value, tg_rng *rng);
/* One line per layer: its kind and shapes. */
TG_API int tg_nn_describe(const tg_module *m, FILE *f);
/* As tg_nn_describe for an input of shape in_shape (ndim dimensions, batch included), after
 * a line "input [..]": each line ends with the layer's output shape and its parameter
 * count (": out [1,8,26,26], 80 params"; a container's line with its output and every
 * parameter inside it, "out ?" if a layer below does not fit). The shapes come from shape
 * arithmetic, the ops' rules applied without running anything (so it costs nothing and
 * works for any batch size, and batch norm's need of two values per channel in training
 * is not checked). Returns 0, TG_EARG (NULL m or f, a bad shape), or TG_ESHAPE when a
 * layer does not take its input: its line then ends with ": does not fit: " and the reason,
 * and nothing follows. */
TG_API int tg_nn_describe_shape(const tg_module *m, int ndim, const int64_t *in_shape, FILE *f);

/* ---- save and load (format: docs/nn.md) ---- */
/* Writes parameters and buffers to path through a temporary file in the same directory
 * (PATH.tmp.PID.XXXXXX), fsynced and renamed into place once complete, then syncs the
 * directory: a failure leaves any old file as it was. Temporary files that saves of path
 * killed before they could clean up left behind (their process is gone) are removed first.
 * meta (may be NULL, at most 4096 bytes) is a free-form description stored with them;
 * tapegrad train stores the layers ("mlp layers=... act=... dropout=... batchnorm=0|1
 * dtype=f32|f64"), and a description of that form must describe the tensors saved. */
TG_API int tg_nn_save(const tg_module *m, const char *path, tg_status *st);
TG_API int tg_nn_save_meta(const tg_module *m, const char *path, const char *meta, tg_status *st);
/* Reads path (a regular file of at most 16 GiB; anything else is TG_EIO at once) into the
 * module's parameters and buffers. Everything is checked first (magic, version, checksum,
 * dtype, count and shapes against the module, the whole file's structure, a description
 * in tapegrad train's form against the tensors), so a truncated, corrupted or mismatched
 * file changes nothing and names its problem in st. */
TG_API int tg_nn_load(tg_module *m, const char *path, tg_status *st);
/* The description stored by tg_nn_save_meta ("" if none; cut to size - 1 bytes), after the
 * checks of tg_nn_load that need no module: every tensor's header and size, the file's
 * length, and a description of the form "mlp layers=A,B,... act=... dropout=...
 * batchnorm=0|1 dtype=..." against the tensors (exactly those tg_nn_mlp makes for it). So
 * a network built from a description it returns asks for no more memory than the file
 * holds: call it before building one. buf is untouched on error. */
TG_API int tg_nn_read_meta(const char *path, char *buf, size_t size, tg_status *st);

/* ---- Optimal Brain Damage (LeCun, Denker and Solla 1989) ---- */
/* The diagonal of the loss's Hessian with respect to every parameter element, by central
 * differences of the analytic gradient: H_kk = (g_k(w + h e_k) - g_k(w - h e_k)) / 2h with
 * h = 1e-4 max(1, |w_k|). fn computes the loss and its gradients (tg_loss_fn: the
 * gradients are zeroed before each call). Cost: 2 evaluations of fn (a forward pass and a
 * sweep) per weight; error O(h²). diag[i] has params[i]'s shape and dtype (f64 advised).
 * The parameters are restored exactly. */
TG_API int tg_hessian_diag(tg_loss_fn fn, void *ctx, int n, tg_tensor *const *params,
                           tg_tensor *const *diag);
/* The exact diagonal by Hessian-vector products: one gradient of f recorded with
 * tg_gradients(TG_GRAD_RECORD), then for every parameter element k one sweep of
 * tg_gradients over that gradient seeded with the unit vector e_k (not recorded), keeping
 * entry k of the Hessian row it gives. f builds the loss on the tape it is given from the
 * tensors it is given, which are params themselves (a module uses its own, or binds them
 * with tg_nn_bind_params). It runs on a tape of this call's own: once, and again whenever
 * the sweeps' leftovers in the arena pass twice what the recorded gradient took plus
 * 64 MiB. params: leaves that require a gradient; the Hessian is computed in their dtype
 * (f64 for accuracy). diag[i]: params[i]'s element count, any dtype.
 * Cost: a forward pass and a recorded sweep, then one sweep of the recorded gradient graph
 * per weight (about 2.5 training steps each on a 20-16-3 MLP with 200 rows): W sweeps for
 * W weights, for models of up to some thousands of weights. Every op between params and
 * the loss needs its backward in ops (docs/higher-order.md). Returns 0, or TG_EARG (NULL
 * arguments, n < 1, a parameter that is no leaf requiring a gradient, f returning NULL
 * with no error on its tape), TG_ESHAPE (a diag of the wrong size, a value that is no
 * scalar), TG_ENOMEM, or the error of f's ops or of a sweep; st (may be NULL) gets the code
 * and the message. diag is then partly written. */
TG_API int tg_hessian_diag_exact(tg_scalar_fn f, void *ctx, int n, tg_tensor *const *params,
                                 tg_tensor *const *diag, tg_status *st);

/* The losses whose curvature tg_hessian_diag_lecun starts from: ∂²E/∂z_k² for the network
 * output z, exactly as ops.h defines them (none depends on the targets, so none is given). */
typedef enum tg_obd_loss {
    TG_OBD_CROSS_ENTROPY,  /* tg_cross_entropy, z [N,C]: p_k (1 - p_k) / N, p = softmax(z) */
    TG_OBD_MSE,            /* tg_mse_loss: 2 / numel(z) */
    TG_OBD_HALF_SSE,       /* tg_half_sse_loss: 1 */
    TG_OBD_BCE_WITH_LOGITS /* tg_bce_with_logits_loss: σ(z_k) (1 - σ(z_k)) / numel(z) */
} tg_obd_loss;
/* LeCun, Denker and Solla's (1990) diagonal in one extra backward sweep, for a Sequential
 * (nested ones too) of linear layers, elementwise activations (identity, sigmoid, tanh,
 * relu, leaky_relu, elu, softplus, step, sign) and dropout in eval mode (the identity);
 * softmax, log_softmax, batch norm, PReLU and dropout while training are refused (TG_EARG,
 * naming the layer). m may be a single linear layer. E is the loss over the batch x
 * [N, in] (a mean over it, or the sum for TG_OBD_HALF_SSE). A forward pass, then, from
 * the output curvature of loss, second derivatives propagate backwards in the Levenberg-
 * Marquardt (Gauss-Newton) form of the paper, which drops the f'' term and every
 * off-diagonal term:
 *     ∂²E/∂a_i² = f'(a_i)² ∂²E/∂y_i²      (through an activation y = f(a))
 *     ∂²E/∂x_j² = Σ_i w_ji² ∂²E/∂a_i²     (through a linear layer a = x·W + b)
 *     ∂²E/∂w_ji² = Σ_n x_nj² ∂²E/∂a_ni²,  ∂²E/∂b_i² = Σ_n ∂²E/∂a_ni²
 * So every entry is >= 0 (convex losses), and it is exact for a single linear layer (the
 * loss is a sum over examples, each w_ji moves one output); for deeper models it ranks
 * weights much as the exact diagonal does at a trained network (test/test_obd.c measures
 * it). Two GEMMs per linear layer (with squared inputs and weights; the first layer skips
 * the second) after the forward, whatever the number of weights: measured, 0.09 s for
 * 10000 images on a 784-128-10 MLP with 2 threads, where training on them takes 0.3 s,
 * and 2 training steps on a 20-16-3 MLP with 200 rows. It computes in the model's dtype,
 * with the parameters bound by tg_nn_bind_params if any. diag: one
 * tensor per parameter in tg_nn_params order (weight, bias per linear layer), each of its
 * element count, any dtype. The work is done on tp in no-grad mode (restored after) and
 * stays in its arena until the next tg_tape_reset. Returns 0 or the error, kept on tp
 * (also an error already on it): TG_EARG (NULL, unsupported layer, unknown loss),
 * TG_ESHAPE (a diag of the wrong size, x not fitting the model, cross-entropy on an
 * output that is no matrix), TG_ENOMEM. */
TG_API int tg_hessian_diag_lecun(tg_module *m, tg_tape *tp, tg_tensor *x, tg_obd_loss loss,
                                 tg_tensor *const *diag);
/* Saliency of each weight, the lectures' S = w² ∂²Q/∂w²: out[i] = params[i]² · diag[i].
 * (LeCun et al. write w² H_kk / 2, the loss's rise at a minimum when w_k is set to 0: the
 * same order.) */
TG_API int tg_saliency(int n, tg_tensor *const *params, tg_tensor *const *diag,
                       tg_tensor *const *out);
/* Saliency of each input feature: the sum over its outgoing weights, row sums of the
 * first layer's saliency [in, out] into out [in]. */
TG_API int tg_feature_saliency(const tg_tensor *first_layer, double *out);

/* A pruner keeps a mask per parameter: pruned weights stay 0 through retraining. */
typedef struct tg_pruner tg_pruner;
TG_API tg_pruner *tg_pruner_new(int n, tg_tensor *const *params, tg_status *st);
TG_API void tg_pruner_free(tg_pruner *p);
/* Prunes the count least salient weights still alive (saliency shaped like params): sets
 * them to 0 and masks them. Returns how many were pruned (fewer if fewer are alive). */
TG_API int64_t tg_pruner_prune(tg_pruner *p, tg_tensor *const *saliency, int64_t count);
/* Sets pruned weights (and their gradients) to 0 again: call after every optimiser step. */
TG_API void tg_pruner_apply(tg_pruner *p);
TG_API int64_t tg_pruner_alive(const tg_pruner *p);
/* Restores the values and mask saved by the last tg_pruner_prune (undo a prune). */
TG_API int tg_pruner_undo(tg_pruner *p);

/* ---- architecture specs (nn/spec.c) ----
 * A Sequential from a compact text, as tapegrad train --arch takes it:
 *     conv(32,3)-relu-maxpool(2)-conv(64,3,pad=1)-relu-maxpool(2)-flatten-linear(128)-relu-
 *     dropout(0.3)-linear(10)
 * Tokens are separated by '-' (outside parentheses); each is a layer name with optional
 * arguments in parentheses, positional in the order below, then name=value (spaces around
 * them are ignored). Defaults in brackets; sizes and geometry are integers of at most 2^24.
 *   conv(out, k, stride [1], pad [0], dilation [1], groups [1], bias [1])  k x k kernel;
 *       groups divides the input and output channels; bias 0 or 1
 *   maxpool(k, stride [k], pad [0]), avgpool(...)  k x k windows, pad at most k / 2
 *   gap  global average pool [N,C,H,W] -> [N,C];  flatten  [N,C,H,W] -> [N, C·H·W]
 *   linear(out)  needs [N, features]: after a conv or pool, flatten or gap first
 *   bn(momentum [0.1], eps [1e-5])  batchnorm2d on [N,C,H,W], batchnorm1d on [N,F]
 *   dropout(p [0.5]), 0 <= p < 1;  prelu(init [0.25]), one learnable alpha
 *   every activation of tg_nn_activation: relu tanh sigmoid softplus step sign softmax
 *       log_softmax identity, leaky_relu(alpha [0.01]) and elu(alpha [1]) (alpha 0 is the
 *       default, as there)
 * in_shape is one example's shape: [features] (ndim 1) or [C,H,W] (ndim 3); every layer's
 * input channels or features follow from it. At most TG_NN_SPEC_MAX_LEN characters and
 * TG_NN_SPEC_MAX_LAYERS tokens. Errors (TG_EARG for the syntax and the argument values,
 * groups that do not divide the channels and pool padding over half the kernel included;
 * TG_ESHAPE for shapes: a window larger than its padded input, a conv, pool or gap on
 * features, a linear layer after a 4-D output, more than 2^48 elements in a tensor, an
 * in_shape of another rank) name the token and its number, starting at 1:
 * "token 3 'maxpool(0)': k 0 is below 1". Layers are built by their constructors
 * (tg_nn_conv2d, ...), initialised as those are; a constructor's failure is reported with
 * the token too. NULL on failure, with the reason in *st. */
#define TG_NN_SPEC_MAX_LEN 1024
#define TG_NN_SPEC_MAX_LAYERS 64
TG_API tg_module *tg_nn_from_spec(const char *spec, int ndim, const int64_t *in_shape, tg_dtype dt,
                                  tg_status *st);
/* What tg_nn_from_spec would build, without allocating it. */
typedef struct tg_nn_spec_info {
    int n_layers;      /* tokens */
    int n_tensors;     /* parameters and buffers: what tg_nn_save writes */
    int64_t n_weights; /* elements of the parameters (saturated above 2^48) */
    int64_t n_elems;   /* elements of the parameters and buffers */
    bool image_input;  /* the first layer that fixes the input's rank is a conv, pool or gap */
    int out_ndim;      /* one example's output: [out] (1) or [C,H,W] (3) */
    int64_t out_shape[3];
} tg_nn_spec_info;
/* Checks spec for the input in_shape as tg_nn_from_spec does and fills *info (may be NULL);
 * ndim 0 checks the syntax only (then only n_layers and image_input are filled).
 * tapegrad train --arch saves the description "arch spec=SPEC input=C,H,W|F dtype=f32|f64"
 * (no spaces in SPEC); tg_nn_save_meta, tg_nn_load and tg_nn_read_meta check one of that
 * form against the file's tensors as they check the mlp form, from the spec's list of
 * tensors (nothing is built: no memory for the tensors it describes). */
TG_API int tg_nn_spec_check(const char *spec, int ndim, const int64_t *in_shape,
                            tg_nn_spec_info *info, tg_status *st);
/* ---- end of architecture specs ---- */

#ifdef __cplusplus
}
#endif
#endif
