/* optim/nadam.c: Nadam (Dozat 2016): Adam with a Nesterov look-ahead on the first moment. */
#include "internal.h"

/* Dozat's Algorithm 2 with a constant momentum mu_t = gamma (no momentum schedule):
 * v := gamma v + (1 - gamma) g;  G := alpha G + (1 - alpha) g*g;
 * m = gamma v / (1 - gamma^(t+1)) + (1 - gamma) g / (1 - gamma^t);
 * G^ = G / (1 - alpha^t);
 * w := w (1 - lr lambda) - lr m / (sqrt(G^) + eps),
 * with g the gradient plus rho w, gamma = opts.beta1, alpha = opts.beta2, t from 1. The
 * first term is the next step's bias-corrected momentum (the look-ahead), the second the
 * current gradient's share. This is PyTorch's NAdam update with its mu_t and mu_{t+1} both
 * held at gamma; PyTorch and Keras by default let mu_t grow towards gamma over the first
 * thousands of steps (momentum_decay). Slots: 0 is v, 1 is G. */
#define NADAM_KERNEL(T, SFX, SQRT)                                                                 \
    TG_VEC_CLONES                                                                                  \
    static void nadam_##SFX(const tg_optim *o, T *restrict w, const T *restrict g, T *const *s,    \
                            int64_t n)                                                             \
    {                                                                                              \
        const T lr = (T)o->lr, l2 = (T)o->opts.l2, keep = (T)o->keep, eps = (T)o->opts.eps;        \
        const double gam = o->opts.beta1, t = (double)o->t;                                        \
        const T b1 = (T)gam, b2 = (T)o->opts.beta2;                                                \
        const T cv = (T)(gam / (1.0 - pow(gam, t + 1.0)));   /* on the new moment */               \
        const T cg = (T)((1.0 - gam) / (1.0 - pow(gam, t))); /* on the gradient */                 \
        const T c2 = (T)(1.0 / (1.0 - pow(o->opts.beta2, t)));                                     \
        T *restrict v = s[0], *restrict G = s[1];                                                  \
        for (int64_t i = 0; i < n; i++) {                                                          \
            T gi = g[i] + l2 * w[i];                                                               \
            v[i] = b1 * v[i] + ((T)1 - b1) * gi;                                                   \
            G[i] = b2 * G[i] + ((T)1 - b2) * gi * gi;                                              \
            w[i] = keep * w[i] - lr * (cv * v[i] + cg * gi) / (SQRT(G[i] * c2) + eps);             \
        }                                                                                          \
    }
NADAM_KERNEL(float, f32, sqrtf)
NADAM_KERNEL(double, f64, sqrt)

static void nadam_defaults(tg_optim_opts *o)
{
    o->lr = 0.002; /* Dozat's, Keras's and PyTorch's default */
    o->beta1 = 0.9;
    o->beta2 = 0.999;
    o->eps = 1e-8;
}

const tg_optim_class tg_nadam_class = {
    .name = "nadam",
    .uses = TG_USES_EPS,
    .n_slots = 2,
    .defaults = nadam_defaults,
    .update_f32 = nadam_f32,
    .update_f64 = nadam_f64,
};
