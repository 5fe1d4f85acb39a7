/* tapegrad/dist.h: data-parallel training over a communicator (comm.h).
 *
 * Every rank holds the whole model and trains on its own shard of each global batch
 * (tg_batcher_new_shard, data.h). A tg_ddp keeps the ranks' parameters equal: at creation
 * it broadcasts rank 0's parameters; in each step it averages the gradients over the ranks
 * with allreduce, in buckets of parameters, each bucket started as soon as the sweep has
 * finished its gradients (the tape's gradient-ready hook), so communication overlaps the
 * rest of the backward. A step on every rank is
 *
 *     tg_optim_zero_grad(opt);
 *     tg_batcher_next(b, &x, &y);                 // this rank's rows of the global batch
 *     loss = ...mean loss over x...;
 *     tg_ddp_begin(d, tp, tg_tensor_dim(x, 0), tg_batcher_global_rows(b));
 *     tg_backward(tp, loss);                      // buckets start during the sweep
 *     tg_ddp_finish(d);                           // waits: every grad is the global mean
 *     tg_optim_step(opt);                         // the same update on every rank
 *
 * The averaged gradient weights each rank's mean-loss gradient by its rows,
 * Σ n_r g_r / Σ n_r, so it is the gradient of the mean loss over the global batch whatever
 * way it was cut (a rank with 0 rows adds nothing; it must still call begin and finish,
 * skipping its forward and backward). Every rank gets the same bits, so the ranks'
 * optimisers stay in step. Batch norm's running statistics and batch statistics stay local
 * to each rank (as PyTorch's DDP without SyncBatchNorm): only gradients are averaged.
 * Functions return 0 or a negative TG_E... code with the message in tg_ddp_error; a
 * communication failure is TG_EIO (comm.h) and leaves the gradients undefined. */
#ifndef TAPEGRAD_DIST_H
#define TAPEGRAD_DIST_H

#include "comm.h"
#include "data.h"
#include "optim.h"
#include "tape.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tg_ddp tg_ddp;

typedef struct tg_ddp_opts {
    int64_t bucket_bytes; /* a bucket closes once its gradients hold at least this many bytes
                             (>= 1; default 1 MiB); raised as needed to keep at most
                             TG_COMM_MAX_PENDING buckets */
    bool overlap;         /* start buckets during the sweep (default); off: all after it */
    bool broadcast;       /* broadcast rank 0's parameters in tg_ddp_new (default on) */
} tg_ddp_opts;

TG_API void tg_ddp_defaults(tg_ddp_opts *o);

/* Data-parallel training of n_params parameters (borrowed leaves of one dtype, alive while
 * the tg_ddp is, the same shapes in the same order on every rank) over c (borrowed).
 * Collective: every rank calls it. Buckets take the parameters from the last to the first
 * (the order a sweep finishes them in). opts NULL means tg_ddp_defaults. NULL on error with
 * st: TG_EARG (NULL, n_params < 1, a non-leaf, a bad option), TG_EDTYPE, TG_ENOMEM, or the
 * broadcast's TG_EIO. */
TG_API tg_ddp *tg_ddp_new(tg_comm *c, int n_params, tg_tensor *const *params,
                          const tg_ddp_opts *opts, tg_status *st);
TG_API void tg_ddp_free(tg_ddp *d);

/* Before this rank's sweep: rows in its part of the global batch (>= 0) and global_rows,
 * the rows over all ranks (tg_batcher_global_rows), or -1 to have them summed here (one
 * more collective). Sets the gradient-ready hook on tp (the hook stays until
 * tg_ddp_finish). One sweep between begin and finish: a bucket is sent once its gradients
 * are final in the first sweep, so to accumulate several sweeps set overlap off (then
 * everything is sent in tg_ddp_finish). TG_EARG (bad counts, a begin without finish),
 * TG_EIO. */
TG_API int tg_ddp_begin(tg_ddp *d, tg_tape *tp, int64_t rows, int64_t global_rows);
/* After the sweep: starts the buckets not started yet, waits for every bucket, and writes
 * the averaged gradients into every parameter's grad (allocated if a parameter has none:
 * a parameter no sweep reached gets the others' average, zeros when none reached it).
 * Removes the hook. 0, TG_ESTATE (no begin), TG_EIO. */
TG_API int tg_ddp_finish(tg_ddp *d);
/* Copies rank 0's parameter values to every rank (collective). 0 or TG_EIO. */
TG_API int tg_ddp_broadcast(tg_ddp *d);

TG_API int tg_ddp_n_buckets(const tg_ddp *d);
/* Seconds tg_ddp_finish spent waiting for communication, summed since creation. */
TG_API double tg_ddp_wait_seconds(const tg_ddp *d);
/* Buckets started during the sweep (overlapped), summed since creation. */
TG_API int64_t tg_ddp_overlapped(const tg_ddp *d);
/* The message of the last failure ("" if none). Never NULL. */
TG_API const char *tg_ddp_error(const tg_ddp *d);

/* ---- full-batch methods: loss and gradient over all shards ---- */

/* A closure for tg_optim_step_closure (cg_fr, cg_pr, bfgs, lbfgs, and the first-order
 * methods) whose loss and gradient are the mean over every rank's shard: the wrapped fn
 * computes the mean loss over this rank's `rows` rows and adds its gradients (tg_loss_fn);
 * the wrapper calls it, then sums (rows / total rows) times loss and gradients over the
 * ranks. Every rank passes it to its own optimiser, with the same parameters as the
 * optimiser's; every rank then takes the same step. Collective in tg_dist_closure_new (the
 * rows are summed) and in every call. A rank with 0 rows does not call fn. */
typedef struct tg_dist_closure tg_dist_closure;
TG_API tg_dist_closure *tg_dist_closure_new(tg_comm *c, int n_params, tg_tensor *const *params,
                                            tg_loss_fn fn, void *ctx, int64_t rows, tg_status *st);
TG_API void tg_dist_closure_free(tg_dist_closure *dc);
/* The tg_loss_fn to hand to tg_optim_step_closure with dc as its ctx. */
TG_API int tg_dist_closure_call(void *dc, double *loss);
TG_API const char *tg_dist_closure_error(const tg_dist_closure *dc);

/* Levenberg-Marquardt over shards: makes an "lm" optimiser sum JᵀJ, Jᵀe and Σe² over the
 * ranks of c before each solve, so that every rank's residual function gives the residuals
 * of its shard and every rank takes the step of all residuals together. c NULL undoes it.
 * 0, TG_EARG (not lm). */
TG_API int tg_dist_lm(tg_optim *opt, tg_comm *c);

/* A reduction hook of "lm" (optim/lm.c): sums n doubles over the ranks in place. */
typedef int (*tg_lm_reduce_fn)(void *ctx, double *buf, int64_t n);
TG_API int tg_optim_lm_set_reduce(tg_optim *opt, tg_lm_reduce_fn fn, void *ctx);

/* ---- sharded evaluation ---- */

/* The model's output for a batch x (rows x features), recorded on tp. */
typedef tg_tensor *(*tg_dist_forward_fn)(tg_tape *tp, tg_tensor *x, void *ctx);
/* Loss and metric over the whole of ds, each rank evaluating its contiguous part (in
 * batches of `batch` rows, grad mode off, restored after), the sums added over the ranks:
 * every rank gets the same *loss (mean cross-entropy for classes, mean squared error
 * otherwise) and *metric (accuracy for classes, MSE otherwise). Collective. 0, TG_EARG,
 * the forward's error (TG_E... from the tape, message in st), TG_EIO. */
TG_API int tg_dist_evaluate(tg_comm *c, const tg_dataset *ds, int64_t batch, tg_tape *tp,
                            tg_dist_forward_fn fwd, void *ctx, double *loss, double *metric,
                            tg_status *st);

#ifdef __cplusplus
}
#endif
#endif
