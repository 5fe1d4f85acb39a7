/* tapegrad/optim.h: optimisers behind one interface, gradient clipping and learning-rate
 * schedules.
 *
 * An optimiser updates a list of parameters from their gradients. The parameters are
 * caller-owned leaves (tg_tensor_new) of one dtype with requires_grad set; the optimiser
 * borrows them, so they must outlive it, and owns only its state (the moments), which it
 * allocates once in tg_optim_new: a step never allocates. A training step is
 *
 *     tg_optim *opt = tg_optim_new("adam", n, params, NULL, &st);   // defaults
 *     for (...) {
 *         tg_optim_zero_grad(opt);
 *         tg_tensor *loss = ...ops on params...;
 *         tg_backward(tp, loss);
 *         tg_optim_step(opt);
 *         tg_tape_reset(tp);
 *     }
 *     tg_optim_free(opt);
 *
 * A parameter whose gradient is NULL (no sweep reached it and it was never zeroed) or whose
 * requires_grad is off is skipped by a step: not moved, its moments unchanged, no weight
 * decay. Functions return 0 (TG_OK) or a negative TG_E... code; they never abort. The exact
 * update of every method is in docs/optim.md. */
#ifndef TAPEGRAD_OPTIM_H
#define TAPEGRAD_OPTIM_H

#include "core.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tg_optim tg_optim;

/* ---- learning-rate schedules ---- */

typedef enum {
    TG_LR_CONSTANT = 0, /* lr_k = lr */
    TG_LR_STEP,         /* lr_k = lr * gamma^floor(k / step_size) */
    TG_LR_EXP,          /* lr_k = lr * gamma^k */
    TG_LR_COSINE        /* lr_k = lr_min + (lr - lr_min) (1 + cos(pi k / t_max)) / 2, k <= t_max;
                           lr_min after t_max */
} tg_lr_kind;

typedef struct tg_lr_schedule {
    tg_lr_kind kind;
    int64_t step_size; /* TG_LR_STEP: steps between two decays (>= 1) */
    double gamma;      /* TG_LR_STEP, TG_LR_EXP: factor per decay (> 0) */
    int64_t t_max;     /* TG_LR_COSINE: steps from lr down to lr_min (>= 1) */
    double lr_min;     /* TG_LR_COSINE: the floor (>= 0) */
} tg_lr_schedule;

/* The learning rate at step k (k = 0 for the first step) of schedule s starting from lr.
 * s == NULL means constant. Returns a negative TG_EARG for a bad schedule, k < 0 or lr < 0. */
TG_API double tg_lr_at(const tg_lr_schedule *s, double lr, int64_t k);

/* ---- options ---- */

/* Hyper-parameters of every method; each method reads the fields it uses. Always start from
 * tg_optim_defaults(name, &opts), which fills the method's constants, then change fields.
 * tg_optim_new refuses (TG_EARG, the message naming the field and its range) a field that
 * is NaN, infinite or negative whatever the method, and a field the method reads that is
 * outside the range given here: a zero-filled struct is refused by the methods whose
 * constants cannot be 0 (eps, RProp's steps, mu_max, damping, history, cg_iters, cg_tol).
 * Symbols are the lectures'. */
typedef struct tg_optim_opts {
    double lr;           /* eta: base learning rate (>= 0); the schedule scales it */
    double momentum;     /* alpha of momentum/nesterov, gamma of momentum_ema, in [0, 1) */
    double beta1;        /* gamma of adam/nadam/adamw: first-moment decay, in [0, 1) */
    double beta2;        /* alpha of rmsprop/adadelta/adam/nadam/adamw: decay of the
                            squared-gradient average, in [0, 1) */
    double eps;          /* epsilon added to the denominator: > 0 for the methods that divide
                            by it (adagrad, rmsprop, adadelta, adam, nadam, adamw) */
    double l2;           /* rho: adds rho * w to the gradient (L2, coupled; Borisov) (>= 0) */
    double weight_decay; /* lambda: w := w (1 - lr lambda) before the update (decoupled) (>= 0) */
    double clip_norm;    /* theta > 0: rescale the gradients so their global L2 norm <= theta;
                            0: off */
    double clip_value;   /* c > 0: clamp every gradient element to [-c, c]; 0: off */
    double step_up;      /* a of RProp: step growth while the gradient keeps its sign (>= 1) */
    double step_down;    /* b of RProp: step shrink when it changes sign, in (0, 1] */
    double step_min;     /* eta_min of RProp (> 0) */
    double step_max;     /* eta_max of RProp (>= step_min) */
    double mu_max;       /* QuickProp's largest step growth factor (> 0) */
    double damping;      /* the initial damping: Levenberg-Marquardt's mu (> 0; default
                            1e-3), Newton's lambda (>= 0; default 0: the plain Newton step
                            first), Newton-CG's lambda (> 0; default 1) */
    int64_t history;     /* L-BFGS: pairs kept, 1 to 1000 (default 10) */
    int64_t restart;     /* CG: restart from steepest descent every this many steps (>= 0;
                            0, the default: the number of weights) */
    int64_t cg_iters;    /* Newton-CG: most conjugate-gradient iterations per step (>= 1;
                            default 250) */
    double cg_tol;       /* Newton-CG: CG stops when its residual norm is at most
                            cg_tol * |g|, in (0, 1) (default 1e-6) */
    tg_lr_schedule schedule; /* applied at each step; TG_LR_CONSTANT by default */
    bool check_finite;       /* refuse a step whose gradient holds a NaN or an infinity: the step
                                returns TG_EARG and changes nothing (weights, state, step count).
                                Costs one read of every gradient per step; off by default. */
} tg_optim_opts;

/* Fills opts with the defaults of method name. 0, or TG_EARG for an unknown name or NULL. */
TG_API int tg_optim_defaults(const char *name, tg_optim_opts *opts);
/* The i-th method name ("sgd", "momentum", ...), NULL past the last: for listings. */
TG_API const char *tg_optim_method(int i);

/* ---- the optimiser ---- */

/* A closure for methods that re-evaluate the objective (line searches, full-batch methods).
 * It must recompute the loss and ADD the gradients into the parameters' grads (run the
 * forward pass and tg_backward; over several batches to accumulate), store the loss in
 * *loss and return 0, or return a negative code to stop the step. The optimiser zeroes the
 * gradients before each call, so the closure must not. ctx is passed back unchanged. */
typedef int (*tg_loss_fn)(void *ctx, double *loss);

/* A new optimiser of method name over n_params parameters. First-order methods, for
 * tg_optim_step: "sgd", "momentum", "momentum_ema", "nesterov", "adagrad", "rmsprop",
 * "adadelta", "adam", "nadam", "adamw", and the full-batch "rprop", "irprop", "quickprop";
 * through tg_optim_step_closure only: "cg_fr", "cg_pr", "bfgs", "lbfgs"; through
 * tg_optim_step_lm only: "lm"; through tg_optim_step_newton only: "newton", "newton_cg".
 * tg_optim_method lists them. params are
 * borrowed: distinct leaves of one dtype (f32 or f64) with requires_grad on, alive while the
 * optimiser is. opts is copied; NULL means tg_optim_defaults(name). The state (moments) is
 * allocated here, zeroed, and owned by the optimiser.
 * Returns NULL on error, with the code and a message in *st if st is non-NULL: TG_EARG
 * (NULL, unknown name, n_params < 1, a NULL or non-leaf parameter, one given twice, no
 * requires_grad, a bad option value), TG_EDTYPE (parameters of different dtypes),
 * TG_ENOMEM. */
TG_API tg_optim *tg_optim_new(const char *name, int n_params, tg_tensor *const *params,
                              const tg_optim_opts *opts, tg_status *st);
/* Frees the optimiser and its state, not the parameters. NULL does nothing. */
TG_API void tg_optim_free(tg_optim *opt);

/* One update of every parameter from its current gradient: clip (value, then norm), then the
 * method's rule with the scheduled lr; the step count goes up by one. Returns 0, TG_EARG for
 * NULL, a scheduled lr that has overflowed to infinity (gamma > 1) or (with
 * opts.check_finite) a gradient holding NaN or inf, each checked before anything changes, or
 * TG_ESTATE for a method that needs a closure (use tg_optim_step_closure). */
TG_API int tg_optim_step(tg_optim *opt);
/* One update that may re-evaluate the objective through fn (see tg_loss_fn). First-order
 * methods zero the gradients, call fn once, then do tg_optim_step. *loss (if non-NULL)
 * gets the loss of the first evaluation, at the parameters before the step. Returns 0,
 * TG_EARG (NULL opt or fn; a non-finite loss at the starting point of a line-search
 * method; with opts.check_finite, a NaN or inf in a gradient the step would use), or fn's
 * negative code. On an error nothing was updated: the parameters, the state and the step
 * count are as before the call. A line search treats a point of non-finite loss as a step
 * too long, and only checks the gradient (check_finite) where the loss is finite. */
TG_API int tg_optim_step_closure(tg_optim *opt, tg_loss_fn fn, void *ctx, double *loss);
/* Residuals for Levenberg-Marquardt: records e(w) on tp from the optimiser's parameters
 * (any shape, m elements: every example and output) and returns it, or NULL with the error
 * on the tape. */
typedef tg_tensor *(*tg_residual_fn)(tg_tape *tp, void *ctx);
/* One Levenberg-Marquardt iteration of an "lm" optimiser: the Jacobian J = de/dw from m
 * reverse sweeps (one per residual, tg_backward_seed), then w := w - dw with
 * (JᵀJ + mu diag(JᵀJ)) dw = Jᵀe solved by Cholesky (LAPACK dpotrf/dpotrs); a step that
 * lowers Σe² is taken and mu divided by 10, otherwise mu is multiplied by 10 and the
 * system solved again (up to 30 times). *loss gets Σe² at the new point. Dense in the
 * number of weights n (n² doubles; refused above 4096). 0, TG_ESTATE for another method,
 * TG_EARG when fn fails or (with opts.check_finite) a residual or an element of J is NaN or
 * inf, before anything changes (the message in *st when st is not NULL). A trial point whose
 * Σe² is not finite counts as no decrease. */
TG_API int tg_optim_step_lm(tg_optim *opt, tg_residual_fn fn, void *ctx, double *loss,
                            tg_status *st);
/* The objective for Newton's methods: records the scalar loss (one element, any shape) on
 * tp from the optimiser's parameters and returns it, or NULL with the error on the tape. It
 * is called several times a step, so it must give the same function each time (no
 * dropout, the same data). The same signature as tg_residual_fn. */
typedef tg_tensor *(*tg_objective_fn)(tg_tape *tp, void *ctx);
/* One iteration of a "newton" or "newton_cg" optimiser on the objective f that fn records.
 * The step records f on the optimiser's own tape, then its gradient g with tg_gradients
 * (TG_GRAD_RECORD), and takes second derivatives by sweeping that recorded gradient again;
 * every op between the parameters and f needs a backward in ops (tape.h, Higher order).
 * The parameters are one vector w of doubles; a parameter whose requires_grad is off is
 * held fixed (left out of w).
 * "newton": the dense Hessian H, one sweep per weight (seeded with each unit vector), then
 *   w := w - dw with (H + lambda I) dw = g solved by Cholesky (LAPACK dpotrf/dpotrs); a
 *   step that lowers f is taken and lambda divided by 10; otherwise (or when H + lambda I
 *   is not positive definite) lambda := max(10 lambda, lambda_min), lambda_min =
 *   1e-3 max|H_ii| (1e-3 if the diagonal is 0), and the system solved again, up to 30
 *   times. lambda starts at opts.damping (default 0: the plain Newton step H^-1 g first).
 *   Dense in the number of weights n (2 n² doubles; refused above 4096 by tg_optim_new).
 * "newton_cg" (Hessian-free, Martens 2010): conjugate gradients from d = 0 on
 *   (H + lambda I) d = -g with exact Hessian-vector products (one sweep of the gradient of
 *   Σ g·v each), stopped after opts.cg_iters iterations, when the residual norm is at most
 *   opts.cg_tol |g|, or at a direction p with pᵀ(H + lambda I)p <= 0 (then d so far, or
 *   d = -g / lambda if there is none); then w + d is tried once. With the reduction ratio
 *   rho = (f(w + d) - f(w)) / (gᵀd + dᵀHd / 2): rho > 3/4 gives lambda := max(lambda 2/3,
 *   1e-12), rho < 1/4 (or a non-finite f(w + d)) lambda := lambda 3/2; the step is taken
 *   only if f(w + d) < f(w). lambda starts at opts.damping (default 1).
 * No step is taken when g = 0. *loss (if not NULL) gets f at the point the step ends on
 * (the old one if no trial lowered f). A trial point where fn fails or f is not finite
 * counts as no decrease. Returns 0, or with nothing changed (parameters, lambda, step
 * count; the message in *st when st is not NULL): TG_EARG (NULL opt or fn; fn failing or
 * f not finite at the current point; with opts.check_finite a NaN or inf in g, in H or in
 * a Hessian-vector product), TG_ESHAPE (f is not of one element), TG_ESTATE (another
 * method), or the error of tg_gradients (e.g. TG_ESTATE for an op with no backward in
 * ops). tg_optim_step and tg_optim_step_closure refuse these methods (TG_ESTATE). */
TG_API int tg_optim_step_newton(tg_optim *opt, tg_objective_fn fn, void *ctx, double *loss,
                                tg_status *st);
/* Zeroes every parameter's gradient (allocating it if absent). 0, TG_EARG or TG_ENOMEM. */
TG_API int tg_optim_zero_grad(tg_optim *opt);
/* Zeroes the state (moments) and the step count: the optimiser starts afresh. */
TG_API int tg_optim_reset(tg_optim *opt);

/* The learning rate the next step will use (the schedule applied to the base lr); -1 for
 * NULL. */
TG_API double tg_optim_lr(const tg_optim *opt);
/* Sets the base lr (>= 0) that the schedule scales. 0, or TG_EARG. */
TG_API int tg_optim_set_lr(tg_optim *opt, double lr);
/* Steps taken so far (drives the schedule and Adam's bias correction); -1 for NULL. */
TG_API int64_t tg_optim_step_count(const tg_optim *opt);
/* Sets the step count (>= 0), e.g. when resuming with restored moments. 0, or TG_EARG. */
TG_API int tg_optim_set_step_count(tg_optim *opt, int64_t k);
/* The method's name, and the options in use (base lr included); NULL for NULL. */
TG_API const char *tg_optim_name(const tg_optim *opt);
/* True for methods that need tg_optim_step_closure (line searches), tg_optim_step_lm or
 * tg_optim_step_newton. */
TG_API bool tg_optim_needs_closure(const tg_optim *opt);
TG_API const tg_optim_opts *tg_optim_options(const tg_optim *opt);

/* ---- state, for checkpoints (checkpoint.h saves it with the rest of a run) ---- */
/* Bytes of the optimiser's whole state: method, dtype, the element count of every
 * parameter, the step count (the schedule's position), the base lr, every slot (moments,
 * RProp's step sizes, QuickProp's last step...) and the method's extra state (the BFGS
 * matrix, the L-BFGS history and the line search's point, Levenberg-Marquardt's mu,
 * Newton's lambda). 0 for NULL. The other options are not saved: they come from the code
 * that makes the optimiser. */
TG_API size_t tg_optim_state_size(const tg_optim *opt);
/* Writes the state into buf (exactly tg_optim_state_size bytes, else TG_EARG). */
TG_API int tg_optim_state_save(const tg_optim *opt, void *buf, size_t size, tg_status *st);
/* Restores a state tg_optim_state_save wrote, after checking all of it: TG_EARG for another
 * method, TG_EDTYPE for another dtype, TG_ESHAPE for other parameter counts or sizes,
 * TG_EFORMAT for a malformed or truncated state or one of other options (an L-BFGS history
 * of another length); nothing changes then. A step after it does what the saved optimiser's
 * next step would have done, bit for bit. */
TG_API int tg_optim_state_load(tg_optim *opt, const void *buf, size_t size, tg_status *st);

/* ---- gradient clipping over a parameter list (parameters with a NULL grad are skipped) ---- */

/* The global L2 norm of the gradients, sqrt(sum over all elements of g^2); a negative
 * TG_EARG if params is NULL or holds NULL. */
TG_API double tg_grad_norm(int n_params, tg_tensor *const *params);
/* If the global norm exceeds max_norm (> 0), scales every gradient by max_norm / norm.
 * Returns the norm before clipping, or a negative TG_EARG. A non-finite norm is returned
 * as is and the gradients are left unchanged (check isfinite on the result). */
TG_API double tg_clip_grad_norm(int n_params, tg_tensor *const *params, double max_norm);
/* Clamps every gradient element to [-clip, clip] (clip > 0). Returns the global norm
 * before clipping, or a negative TG_EARG. */
TG_API double tg_clip_grad_value(int n_params, tg_tensor *const *params, double clip);

#ifdef __cplusplus
}
#endif
#endif
