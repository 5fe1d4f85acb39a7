/* optim/adam.c: Adam (Kingma and Ba 2015); its kernels also serve AdamW. */
#include "internal.h"

/* v := gamma v + (1 - gamma) g;  G := alpha G + (1 - alpha) g*g;
 * v^ = v / (1 - gamma^t);  G^ = G / (1 - alpha^t);
 * w := w (1 - lr lambda) - lr v^ / (sqrt(G^) + eps),
 * with g the gradient plus rho w, gamma = opts.beta1, alpha = opts.beta2 and t the number
 * of this step (from 1). Slots: 0 is v, 1 is G. */
#define ADAM_KERNEL(T, SFX, SQRT)                                                                  \
    TG_VEC_CLONES                                                                                  \
    static void adam_##SFX(const tg_optim *o, T *restrict w, const T *restrict g, T *const *s,     \
                           int64_t n)                                                              \
    {                                                                                              \
        const T lr = (T)o->lr, l2 = (T)o->opts.l2, keep = (T)o->keep, eps = (T)o->opts.eps;        \
        const T b1 = (T)o->opts.beta1, b2 = (T)o->opts.beta2;                                      \
        /* the bias corrections, as factors, once per step in double */                            \
        const T c1 = (T)(1.0 / (1.0 - pow(o->opts.beta1, (double)o->t)));                          \
        const T c2 = (T)(1.0 / (1.0 - pow(o->opts.beta2, (double)o->t)));                          \
        T *restrict v = s[0], *restrict G = s[1];                                                  \
        for (int64_t i = 0; i < n; i++) {                                                          \
            T gi = g[i] + l2 * w[i];                                                               \
            v[i] = b1 * v[i] + ((T)1 - b1) * gi;                                                   \
            G[i] = b2 * G[i] + ((T)1 - b2) * gi * gi;                                              \
            w[i] = keep * w[i] - lr * (v[i] * c1) / (SQRT(G[i] * c2) + eps);                       \
        }                                                                                          \
    }                                                                                              \
    /* for AdamW's class: a multiversioned function is local to its file with clang */             \
    void tg_adam_update_##SFX(const tg_optim *o, T *restrict w, const T *restrict g, T *const *s,  \
                              int64_t n)                                                           \
    {                                                                                              \
        adam_##SFX(o, w, g, s, n);                                                                 \
    }
ADAM_KERNEL(float, f32, sqrtf)
ADAM_KERNEL(double, f64, sqrt)

static void adam_defaults(tg_optim_opts *o)
{
    o->lr = 0.001;
    o->beta1 = 0.9;
    o->beta2 = 0.999;
    o->eps = 1e-8;
}

const tg_optim_class tg_adam_class = {
    .name = "adam",
    .uses = TG_USES_EPS,
    .n_slots = 2,
    .defaults = adam_defaults,
    .update_f32 = adam_f32,
    .update_f64 = adam_f64,
};
