/* optim/rprop.c: RProp (Riedmiller and Braun 1993) in the lectures' form, and iRprop-
 * (Igel and Huesken 2000). Full-batch methods: each weight has its own step size, adapted
 * by the sign of S = g(t-1) g(t) alone:
 *     eta(t) = min(eta_max, a eta(t-1))  if S > 0,
 *              max(eta_min, b eta(t-1))  if S < 0,   eta(t-1) otherwise;
 *     w := w - eta(t) sign(g(t)).
 * iRprop- also forgets the gradient where its sign changed (S < 0): that weight does not
 * move this step, and the next step sees S = 0. Constants: eta_max 50, eta_min 1e-6,
 * a 1.2, b 0.5; the first step size eta(0) is lr (0.1). g is the gradient plus rho w.
 * Slots: 0 is g(t-1), 1 is eta (0 before the first step). */
#include "internal.h"

#define RPROP_KERNEL(T, SFX, NAME, IRPROP)                                                         \
    TG_VEC_CLONES                                                                                  \
    static void NAME##_##SFX(const tg_optim *o, T *restrict w, const T *restrict g, T *const *s,   \
                             int64_t n)                                                            \
    {                                                                                              \
        const T l2 = (T)o->opts.l2, keep = (T)o->keep, up = (T)o->opts.step_up;                    \
        const T down = (T)o->opts.step_down, lo = (T)o->opts.step_min;                             \
        const T hi = (T)o->opts.step_max, eta0 = (T)o->lr;                                         \
        T *restrict prev = s[0], *restrict eta = s[1];                                             \
        for (int64_t i = 0; i < n; i++) {                                                          \
            T gi = g[i] + l2 * w[i], e = eta[i] > 0 ? eta[i] : eta0, S = prev[i] * gi;             \
            if (S > 0) e = e * up < hi ? e * up : hi;                                              \
            else if (S < 0) e = e * down > lo ? e * down : lo;                                     \
            eta[i] = e;                                                                            \
            if (IRPROP && S < 0) gi = 0; /* forget it: no move, S = 0 next time */                 \
            w[i] = keep * w[i] - e * (T)((gi > 0) - (gi < 0));                                     \
            prev[i] = gi;                                                                          \
        }                                                                                          \
    }
RPROP_KERNEL(float, f32, rprop, 0)
RPROP_KERNEL(double, f64, rprop, 0)
RPROP_KERNEL(float, f32, irprop, 1)
RPROP_KERNEL(double, f64, irprop, 1)

static void rprop_defaults(tg_optim_opts *o)
{
    o->lr = 0.1; /* eta(0) */
    o->step_up = 1.2, o->step_down = 0.5, o->step_min = 1e-6, o->step_max = 50;
}

const tg_optim_class tg_rprop_class = {
    .name = "rprop",
    .uses = TG_USES_RPROP,
    .n_slots = 2,
    .defaults = rprop_defaults,
    .update_f32 = rprop_f32,
    .update_f64 = rprop_f64,
};

const tg_optim_class tg_irprop_class = {
    .name = "irprop",
    .uses = TG_USES_RPROP,
    .n_slots = 2,
    .defaults = rprop_defaults,
    .update_f32 = irprop_f32,
    .update_f64 = irprop_f64,
};
