/* optim/adamw.c: AdamW (Loshchilov and Hutter 2019): Adam with decoupled weight decay. */
#include "internal.h"

/* The Adam update of adam.c with weight_decay on by default:
 * w := w (1 - lr lambda) - lr v^ / (sqrt(G^) + eps), lambda = opts.weight_decay = 0.01.
 * The decay multiplies the weights and never enters v or G, unlike l2 (rho w added to the
 * gradient, which Adam then rescales: what PyTorch's Adam calls weight_decay). */
static void adamw_defaults(tg_optim_opts *o)
{
    o->lr = 0.001;
    o->beta1 = 0.9;
    o->beta2 = 0.999;
    o->eps = 1e-8;
    o->weight_decay = 0.01; /* PyTorch's AdamW default */
}

const tg_optim_class tg_adamw_class = {
    .name = "adamw",
    .uses = TG_USES_EPS,
    .n_slots = 2,
    .defaults = adamw_defaults,
    .update_f32 = tg_adam_update_f32,
    .update_f64 = tg_adam_update_f64,
};
