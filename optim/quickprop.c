/* optim/quickprop.c: QuickProp (Fahlman 1988) with the lectures' per-weight rules. With
 * S = g + rho w the current gradient, S' and dW' the previous gradient and step:
 *     eta = eta0  if dW' = 0 or -dW' S > 0,  else 0;
 *     beta = S / (S' - S);  gamma = S (-dW') beta;
 *     mu = mu_max  if beta > mu_max or gamma < 0,  else beta;
 *     dW = -eta S + mu dW';   w := w + dW.
 * eta0 is lr (0.1, the lectures take it in (0.01, 0.6)), mu_max 1.75. When S' = S the
 * parabola through the two slopes has no minimum: beta is taken as +infinity (mu = mu_max),
 * or 0 when both slopes are 0. Slots: 0 is S', 1 is dW'. */
#include "internal.h"

#define QUICKPROP_KERNEL(T, SFX)                                                                   \
    TG_VEC_CLONES                                                                                  \
    static void quickprop_##SFX(const tg_optim *o, T *restrict w, const T *restrict g,             \
                                T *const *s, int64_t n)                                            \
    {                                                                                              \
        const T l2 = (T)o->opts.l2, keep = (T)o->keep, eta0 = (T)o->lr;                            \
        const T mu_max = (T)o->opts.mu_max;                                                        \
        T *restrict prev = s[0], *restrict dw = s[1];                                              \
        for (int64_t i = 0; i < n; i++) {                                                          \
            T S = g[i] + l2 * w[i], d = dw[i];                                                     \
            T eta = d == 0 || -d * S > 0 ? eta0 : 0;                                               \
            T mu;                                                                                  \
            if (prev[i] == S) {                                                                    \
                mu = S == 0 ? 0 : mu_max;                                                          \
            } else {                                                                               \
                T beta = S / (prev[i] - S), gamma = S * -d * beta;                                 \
                mu = beta > mu_max || gamma < 0 ? mu_max : beta;                                   \
            }                                                                                      \
            T step = -eta * S + mu * d;                                                            \
            w[i] = keep * w[i] + step;                                                             \
            prev[i] = S, dw[i] = step;                                                             \
        }                                                                                          \
    }
QUICKPROP_KERNEL(float, f32)
QUICKPROP_KERNEL(double, f64)

static void quickprop_defaults(tg_optim_opts *o)
{
    o->lr = 0.1;
    o->mu_max = 1.75;
}

const tg_optim_class tg_quickprop_class = {
    .name = "quickprop",
    .uses = TG_USES_MU_MAX,
    .n_slots = 2,
    .defaults = quickprop_defaults,
    .update_f32 = quickprop_f32,
    .update_f64 = quickprop_f64,
};
