/* optim/internal.h: the optimiser interface (a table of function pointers per method),
 * the optimiser struct, and the list of methods. Not installed.
 *
 * Adding a method: write optim/<name>.c defining `const tg_optim_class tg_<name>_class`
 * and add X(name) to TG_OPTIM_LIST below. A per-element method (one that needs only the
 * current gradient and some per-element state) fills n_slots, defaults and the two update
 * kernels; optim.c does the rest (schedule, clipping, decay, skipping, dispatch). A method
 * that needs more (a line search, a closure, a matrix of state) sets step, and init/destroy
 * for extra state. See docs/optim.md. */
#ifndef TAPEGRAD_OPTIM_INTERNAL_H
#define TAPEGRAD_OPTIM_INTERNAL_H

#include <math.h>

#include "tapegrad.h"
#include "../autograd/clones.h" /* TG_VEC_CLONES on every per-element kernel */

/* Every method, in listing order. X(name): "name" for tg_optim_new, tg_<name>_class. */
/* clang-format off */
#define TG_OPTIM_LIST(X)                                                                   \
    X(sgd) X(momentum) X(momentum_ema) X(nesterov) X(adagrad) X(rmsprop) X(adadelta)       \
    X(adam) X(nadam) X(adamw) X(rprop) X(irprop) X(quickprop) \
    X(cg_fr) X(cg_pr) X(bfgs) X(lbfgs) X(lm) X(newton) X(newton_cg)
/* clang-format on */

#define TG_OPTIM_SLOTS_MAX 4 /* state buffers per parameter a per-element method may ask for */

typedef struct tg_optim_class tg_optim_class;

/* Options with a range of their own, for tg_optim_class.uses: tg_optim_new checks them
 * against it only for the methods that read them (other methods only need them finite and
 * >= 0, which a zero-filled field is). The ranges are in optim.c's check_opts. */
enum {
    TG_USES_EPS = 1,      /* eps > 0: the method divides by it */
    TG_USES_RPROP = 2,    /* step_up >= 1, step_down in (0, 1], 0 < step_min <= step_max */
    TG_USES_MU_MAX = 4,   /* mu_max > 0 */
    TG_USES_DAMPING = 8,  /* damping > 0 */
    TG_USES_HISTORY = 16, /* history in [1, TG_LBFGS_MAX_HISTORY] */
    TG_USES_CG = 32       /* cg_iters >= 1, cg_tol in (0, 1) */
};
#define TG_LBFGS_MAX_HISTORY 1000

struct tg_optim {
    const tg_optim_class *cls;
    tg_optim_opts opts; /* a copy; opts.lr is the base lr the schedule scales */
    tg_dtype dtype;     /* of every parameter */
    int n_params;
    tg_tensor **params; /* borrowed parameters (the array is ours) */
    tg_tensor **grads;  /* inside a step: each parameter's gradient, NULL if it has none */
    float **s32;        /* f32: s32[p * n_slots + k] is slot k of parameter p (numel floats) */
    double **s64;       /* f64: likewise */
    void *state_mem;    /* one zeroed block holding every slot, freed with the optimiser */
    size_t state_bytes;
    int64_t t;   /* steps taken; inside a step, the number of this step (from 1) */
    double lr;   /* inside a step: the scheduled learning rate of this step */
    double keep; /* inside a step: 1 - lr * weight_decay (decoupled decay factor) */
    void *extra; /* state of methods with an init hook (e.g. a BFGS matrix) */
};

/* One parameter's update: w (n elements) from its gradient g, with the method's state slots
 * s[0..n_slots-1] (n elements each, zeroed at creation). Reads o->lr, o->keep, o->t and
 * o->opts. g is the clipped gradient; the kernel adds opts.l2 * w itself. */
typedef void (*tg_update_f32)(const tg_optim *o, float *restrict w, const float *restrict g,
                              float *const *s, int64_t n);
typedef void (*tg_update_f64)(const tg_optim *o, double *restrict w, const double *restrict g,
                              double *const *s, int64_t n);

struct tg_optim_class {
    const char *name;
    unsigned uses;                      /* TG_USES_...: options with a range to check */
    int n_slots;                        /* per-element state buffers, 0..TG_OPTIM_SLOTS_MAX */
    void (*defaults)(tg_optim_opts *o); /* writes the method's constants over the common ones */
    tg_update_f32 update_f32;           /* per-element methods: both kernels */
    tg_update_f64 update_f64;
    /* Optional hooks for methods that are not one kernel per parameter (NULL if unused):
     * step replaces the generic step (fn is NULL when called from tg_optim_step);
     * init allocates o->extra after the slots exist, reset zeroes it, destroy frees it. */
    int (*step)(tg_optim *o, tg_loss_fn fn, void *ctx, double *loss);
    int (*init)(tg_optim *o, tg_status *st);
    void (*reset)(tg_optim *o);
    void (*destroy)(tg_optim *o);
    bool needs_closure; /* tg_optim_step is refused (TG_ESTATE) */
    /* State beyond the slots and the step count that a checkpoint saves (NULL if none):
     * state_size bytes, written by state_save; state_check tells whether bytes saved by an
     * optimiser of the same method, dtype and weights can be loaded (0, or TG_EFORMAT with
     * the reason in why), and state_load applies bytes that passed it. */
    size_t (*state_size)(const tg_optim *o);
    void (*state_save)(const tg_optim *o, unsigned char *p);
    int (*state_check)(const tg_optim *o, const unsigned char *p, char *why, size_t size);
    void (*state_load)(tg_optim *o, const unsigned char *p);
};

#define X(nm) extern const tg_optim_class tg_##nm##_class;
TG_OPTIM_LIST(X)
#undef X

/* adam.c: Adam's kernels, shared with adamw.c. */
void tg_adam_update_f32(const tg_optim *o, float *restrict w, const float *restrict g,
                        float *const *s, int64_t n);
void tg_adam_update_f64(const tg_optim *o, double *restrict w, const double *restrict g,
                        double *const *s, int64_t n);

/* optim.c: helpers for methods that override step. */
/* The gradient a step uses: NULL if the parameter does not require grad or has none. */
tg_tensor *tg_optim_active_grad(const tg_tensor *p);
/* Starts a step: t += 1, sets o->lr and o->keep, clips the gradients as the options ask. */
void tg_optim_begin_step(tg_optim *o);
/* Zeroes the gradients and calls fn; fn's code (a positive one becomes TG_EARG). */
int tg_optim_eval(tg_optim *o, tg_loss_fn fn, void *ctx, double *loss);

/* schedule.c: 0 if s is a valid schedule, else TG_EARG with the reason in msg. */
int tg_lr_schedule_check(const tg_lr_schedule *s, char *msg, size_t size);

#endif
