/* optim/momentum.c: Polyak's heavy-ball momentum, in the lectures' form. */
#include "internal.h"

/* h := alpha h + lr (g + rho w);  w := w (1 - lr lambda) - h.
 * With L2 this is Borisov's dW_t = eta (dE + rho W_{t-1}) + mu dW_{t-1}. Slot 0 is h. */
#define TG_TEMPLATE "momentum_t.h"
#include "stamp.h"

static void momentum_defaults(tg_optim_opts *o)
{
    o->lr = 0.01;
    o->momentum = 0.9;
}

const tg_optim_class tg_momentum_class = {
    .name = "momentum",
    .n_slots = 1,
    .defaults = momentum_defaults,
    .update_f32 = momentum_f32,
    .update_f64 = momentum_f64,
};
