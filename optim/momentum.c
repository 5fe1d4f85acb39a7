/* optim/momentum.c: Polyak's heavy-ball momentum, in the lectures' form. */
#include "internal.h"

/* h := alpha h + lr (g + rho w);  w := w (1 - lr lambda) - h.
 * With L2 this is Borisov's dW_t = eta (dE + rho W_{t-1}) + mu dW_{t-1}. Slot 0 is h. */
#define MOMENTUM_KERNEL(T, SFX)                                                                    \
    TG_VEC_CLONES                                                                                  \
    static void momentum_##SFX(const tg_optim *o, T *restrict w, const T *restrict g, T *const *s, \
                               int64_t n)                                                          \
    {                                                                                              \
        const T lr = (T)o->lr, l2 = (T)o->opts.l2, keep = (T)o->keep;                              \
        const T a = (T)o->opts.momentum;                                                           \
        T *restrict h = s[0];                                                                      \
        for (int64_t i = 0; i < n; i++) {                                                          \
            h[i] = a * h[i] + lr * (g[i] + l2 * w[i]);                                             \
            w[i] = keep * w[i] - h[i];                                                             \
        }                                                                                          \
    }
MOMENTUM_KERNEL(float, f32)
MOMENTUM_KERNEL(double, f64)

static void momentum_defaults(tg_optim_opts *o)
{
    o->lr = 0.01;
    o->momentum = 0.9;
}

const tg_optim_class tg_momentum_class = {
    .name = "momentum",
    .n_slots = 1,
    .defaults = momentum_defaults,
    .update_f32 = momentum_f32,
    .update_f64 = momentum_f64,
};
