/* optim/rmsprop.c: RMSProp (Hinton, lecture 6e of Neural Networks for Machine Learning). */
#include "internal.h"

/* G := alpha G + (1 - alpha) g*g;  w := w (1 - lr lambda) - lr g / (sqrt(G) + eps), with
 * g the gradient plus rho w and alpha = opts.beta2. Slot 0 is G. */
#define TG_TEMPLATE "rmsprop_t.h"
#include "stamp.h"

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
