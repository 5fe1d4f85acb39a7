/* optim/momentum_ema.c: momentum as an exponential moving average of the gradient. */
#include "internal.h"

/* v := gamma v + (1 - gamma)(g + rho w);  w := w (1 - lr lambda) - lr v. Slot 0 is v.
 * Unlike Polyak's form, v is an average, so lr keeps the scale it has in plain SGD. */
#define TG_TEMPLATE "momentum_ema_t.h"
#include "stamp.h"

static void momentum_ema_defaults(tg_optim_opts *o)
{
    o->lr = 0.01;
    o->momentum = 0.9;
}

const tg_optim_class tg_momentum_ema_class = {
    .name = "momentum_ema",
    .n_slots = 1,
    .defaults = momentum_ema_defaults,
    .update_f32 = momentum_ema_f32,
    .update_f64 = momentum_ema_f64,
};
