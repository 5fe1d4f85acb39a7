/* optim/adadelta.c: AdaDelta (Zeiler 2012), in the lectures' form. */
#include "internal.h"

/* G := alpha G + (1 - alpha) g*g;
 * d := g (sqrt(D) + eps) / (sqrt(G) + eps);
 * D := alpha D + (1 - alpha) d*d;
 * w := w (1 - lr lambda) - lr d,
 * with g the gradient plus rho w and alpha = opts.beta2. eps is added after the roots, as
 * in the lectures (Zeiler and PyTorch write sqrt(D + eps) / sqrt(G + eps)). D starts at 0,
 * so the first steps are about lr eps: AdaDelta starts slowly. Slots: 0 is G, 1 is D. */
#define TG_TEMPLATE "adadelta_t.h"
#include "stamp.h"

static void adadelta_defaults(tg_optim_opts *o)
{
    o->lr = 1.0;     /* the lectures: eta = 1 works */
    o->beta2 = 0.95; /* Zeiler's rho */
    o->eps = 1e-3;
}

const tg_optim_class tg_adadelta_class = {
    .name = "adadelta",
    .uses = TG_USES_EPS,
    .n_slots = 2,
    .defaults = adadelta_defaults,
    .update_f32 = adadelta_f32,
    .update_f64 = adadelta_f64,
};
