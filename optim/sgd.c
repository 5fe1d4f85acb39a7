/* optim/sgd.c: plain gradient descent. */
#include "internal.h"

/* w := w (1 - lr lambda) - lr (g + rho w): the lectures' step with L2 / weight decay. */
#define SGD_KERNEL(T, SFX)                                                                         \
    TG_VEC_CLONES                                                                                  \
    static void sgd_##SFX(const tg_optim *o, T *restrict w, const T *restrict g, T *const *s,      \
                          int64_t n)                                                               \
    {                                                                                              \
        (void)s;                                                                                   \
        const T lr = (T)o->lr, l2 = (T)o->opts.l2, keep = (T)o->keep;                              \
        for (int64_t i = 0; i < n; i++) w[i] = keep * w[i] - lr * (g[i] + l2 * w[i]);              \
    }
SGD_KERNEL(float, f32)
SGD_KERNEL(double, f64)

static void sgd_defaults(tg_optim_opts *o) { o->lr = 0.01; }

const tg_optim_class tg_sgd_class = {
    .name = "sgd",
    .n_slots = 0,
    .defaults = sgd_defaults,
    .update_f32 = sgd_f32,
    .update_f64 = sgd_f64,
};
