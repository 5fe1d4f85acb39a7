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

/* ---- layers (NULL on bad arguments or out of memory) ---- */
/* y = x·W + b; W [in,out], b [out]; initialised TG_INIT_UNIFORM with seed 0. */
TG_API tg_module *tg_nn_linear(int64_t in, int64_t out, tg_dtype dt);
/* An activation op as a layer: "sigmoid" "tanh" "relu" "leaky_relu" (alpha, default 0.01
 * when alpha is 0) "elu" (alpha, default 1) "softplus" "step" "sign" "softmax"
 * "log_softmax" (along the last axis) or "identity". */
TG_API tg_module *tg_nn_activation(const char *name, double alpha, tg_dtype dt);
/* PReLU with a learnable alpha of `channels` elements (1, or x's last dimension). */
TG_API tg_module *tg_nn_prelu(int64_t channels, double init, tg_dtype dt);
/* Inverted dropout with probability p (0 <= p < 1) while training; identity in eval. */
TG_API tg_module *tg_nn_dropout(double p);
/* Batch normalisation of x [N, features]: gamma 1, beta 0, running mean 0 and var 1. */
TG_API tg_module *tg_nn_batchnorm1d(int64_t features, double momentum, double eps,
                                    tg_dtype dt);
TG_API tg_module *tg_nn_sequential(void);
/* Appends m to seq and takes ownership of m (also on failure, when m is freed). */
TG_API int tg_nn_append(tg_module *seq, tg_module *m);
/* An MLP: linear layers sizes[0]→sizes[1]→…→sizes[n-1] (n >= 2), and between them
 * [batch norm] → activation act → [dropout p]; the last layer has none (logits). */
TG_API tg_module *tg_nn_mlp(int n, const int64_t *sizes, const char *act, double dropout,
                            bool batchnorm, tg_dtype dt, tg_status *st);
TG_API void tg_nn_free(tg_module *m);

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
/* Initialises every linear layer: weights by kind, biases 0 (value for TG_INIT_CONSTANT). */
TG_API int tg_nn_init(tg_module *m, tg_init kind, double value, tg_rng *rng);
/* One line per layer: its kind and shapes. */
TG_API int tg_nn_describe(const tg_module *m, FILE *f);

/* ---- save and load (format: docs/nn.md) ---- */
/* Writes parameters and buffers to path through a temporary file in the same directory,
 * renamed into place once complete: a failure leaves any old file as it was. meta (may be
 * NULL) is a free-form description stored with them (tapegrad train stores the layers). */
TG_API int tg_nn_save(const tg_module *m, const char *path, tg_status *st);
TG_API int tg_nn_save_meta(const tg_module *m, const char *path, const char *meta,
                           tg_status *st);
/* Reads path into the module's parameters and buffers. Everything is checked first (magic,
 * version, checksum, dtype, count and shapes against the module), so a truncated,
 * corrupted or mismatched file changes nothing and names its problem in st. */
TG_API int tg_nn_load(tg_module *m, const char *path, tg_status *st);
/* The description stored by tg_nn_save_meta ("" if none), after the same checks. */
TG_API int tg_nn_read_meta(const char *path, char *buf, size_t size, tg_status *st);

#ifdef __cplusplus
}
#endif
#endif
