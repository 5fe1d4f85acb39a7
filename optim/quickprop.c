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

#define TG_TEMPLATE "quickprop_t.h"
#include "stamp.h"

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
