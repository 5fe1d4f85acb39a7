/* optim/adagrad.c: AdaGrad (Duchi, Hazan and Singer 2011). */
#include "internal.h"

/* G := G + g*g;  w := w (1 - lr lambda) - lr g / (sqrt(G) + eps), with g the gradient plus
 * rho w. The lectures' g_t / sqrt(sum_i g_i^2) with eps after the root, as PyTorch's
 * Adagrad, so that a coordinate whose gradients were all zero does not divide 0 by 0.
 * Slot 0 is G. */
#define TG_TEMPLATE "adagrad_t.h"
#include "stamp.h"

static void adagrad_defaults(tg_optim_opts *o)
{
    o->lr = 0.01;
    o->eps = 1e-10;
}

const tg_optim_class tg_adagrad_class = {
    .name = "adagrad",
    .uses = TG_USES_EPS,
    .n_slots = 1,
    .defaults = adagrad_defaults,
    .update_f32 = adagrad_f32,
    .update_f64 = adagrad_f64,
};
