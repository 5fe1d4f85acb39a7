/* optim/adam.c: Adam (Kingma and Ba 2015); its kernels also serve AdamW. */
#include "internal.h"

/* v := gamma v + (1 - gamma) g;  G := alpha G + (1 - alpha) g*g;
 * v^ = v / (1 - gamma^t);  G^ = G / (1 - alpha^t);
 * w := w (1 - lr lambda) - lr v^ / (sqrt(G^) + eps),
 * with g the gradient plus rho w, gamma = opts.beta1, alpha = opts.beta2 and t the number
 * of this step (from 1). Slots: 0 is v, 1 is G. */
#define TG_TEMPLATE "adam_t.h"
#include "stamp.h"

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
