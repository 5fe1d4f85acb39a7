/* optim/momentum_ema.c: momentum as an exponential moving average of the gradient. */
#include "internal.h"

/* v := gamma v + (1 - gamma)(g + rho w);  w := w (1 - lr lambda) - lr v. Slot 0 is v.
 * Unlike Polyak's form, v is an average, so lr keeps the scale it has in plain SGD. */
#define MOMENTUM_EMA_KERNEL(T, SFX)                                                                \
    TG_VEC_CLONES                                                                                  \
    static void momentum_ema_##SFX(const tg_optim *o, T *restrict w, const T *restrict g,          \
                                   T *const *s, int64_t n)                                         \
    {                                                                                              \
        const T lr = (T)o->lr, l2 = (T)o->opts.l2, keep = (T)o->keep;                              \
        const T c = (T)o->opts.momentum;                                                           \
        T *restrict v = s[0];                                                                      \
        for (int64_t i = 0; i < n; i++) {                                                          \
            v[i] = c * v[i] + ((T)1 - c) * (g[i] + l2 * w[i]);                                     \
            w[i] = keep * w[i] - lr * v[i];                                                        \
        }                                                                                          \
    }
MOMENTUM_EMA_KERNEL(float, f32)
MOMENTUM_EMA_KERNEL(double, f64)

static void momentum_ema_defaults(tg_optim_opts *o)
{
    o->lr = 0.01;
    o->momentum = 0.9;
}

const tg_optim_class tg_momentum_ema_class = {
    .name = "momentum_ema",
    .n_slots = 1,
    .defaults = momentum_ema_defaults,
    .update_f32 = momentum_ema_f32,
    .update_f64 = momentum_ema_f64,
};
