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

/* rprop_f32, rprop_f64 (IRPROP 0), irprop_f32 and irprop_f64 (IRPROP 1), from the template
 * optim/rprop_t.h. */
#define T float
#define FN(name) name##_f32
#define IRPROP 0
#include "rprop_t.h"
#undef T
#undef FN
#undef IRPROP

#define T double
#define FN(name) name##_f64
#define IRPROP 0
#include "rprop_t.h"
#undef T
#undef FN
#undef IRPROP

#define T float
#define FN(name) name##_f32
#define IRPROP 1
#include "rprop_t.h"
#undef T
#undef FN
#undef IRPROP

#define T double
#define FN(name) name##_f64
#define IRPROP 1
#include "rprop_t.h"
#undef T
#undef FN
#undef IRPROP

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
