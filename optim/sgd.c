/* optim/sgd.c: plain gradient descent. */
#include "internal.h"

/* w := w (1 - lr lambda) - lr (g + rho w): the lectures' step with L2 / weight decay. */
#define TG_TEMPLATE "sgd_t.h"
#include "stamp.h"

static void sgd_defaults(tg_optim_opts *o) { o->lr = 0.01; }

const tg_optim_class tg_sgd_class = {
    .name = "sgd",
    .n_slots = 0,
    .defaults = sgd_defaults,
    .update_f32 = sgd_f32,
    .update_f64 = sgd_f64,
};
