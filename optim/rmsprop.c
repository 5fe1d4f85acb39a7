/* optim/rmsprop.c: RMSProp (Hinton, lecture 6e of Neural Networks for Machine Learning). */
#include "internal.h"

/* G := alpha G + (1 - alpha) g*g;  w := w (1 - lr lambda) - lr g / (sqrt(G) + eps), with
 * g the gradient plus rho w and alpha = opts.beta2. Slot 0 is G. */
#define RMSPROP_KERNEL(T, SFX, SQRT)                                                               \
    TG_VEC_CLONES                                                                                  \
    static void rmsprop_##SFX(const tg_optim *o, T *restrict w, const T *restrict g, T *const *s,  \
                              int64_t n)                                                           \
    {                                                                                              \
        const T lr = (T)o->lr, l2 = (T)o->opts.l2, keep = (T)o->keep, eps = (T)o->opts.eps;        \
        const T a = (T)o->opts.beta2;                                                              \
        T *restrict G = s[0];                                                                      \
        for (int64_t i = 0; i < n; i++) {                                                          \
            T gi = g[i] + l2 * w[i];                                                               \
            G[i] = a * G[i] + ((T)1 - a) * gi * gi;                                                \
            w[i] = keep * w[i] - lr * gi / (SQRT(G[i]) + eps);                                     \
        }                                                                                          \
    }
RMSPROP_KERNEL(float, f32, sqrtf)
RMSPROP_KERNEL(double, f64, sqrt)

static void rmsprop_defaults(tg_optim_opts *o)
{
    o->lr = 0.001;
    o->beta2 = 0.9; /* the lectures list 0.9, 0.99 and 0.999; Hinton's value */
    o->eps = 1e-8;
}

const tg_optim_class tg_rmsprop_class = {
    .name = "rmsprop",
    .uses = TG_USES_EPS,
    .n_slots = 1,
    .defaults = rmsprop_defaults,
    .update_f32 = rmsprop_f32,
    .update_f64 = rmsprop_f64,
};
