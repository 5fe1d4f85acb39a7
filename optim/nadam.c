/* optim/nadam.c: Nadam (Dozat 2016): Adam with a Nesterov look-ahead on the first moment. */
#include "internal.h"

/* Dozat's Algorithm 2 with a constant momentum mu_t = gamma (no momentum schedule):
 * v := gamma v + (1 - gamma) g;  G := alpha G + (1 - alpha) g*g;
 * m = gamma v / (1 - gamma^(t+1)) + (1 - gamma) g / (1 - gamma^t);
 * G^ = G / (1 - alpha^t);
 * w := w (1 - lr lambda) - lr m / (sqrt(G^) + eps),
 * with g the gradient plus rho w, gamma = opts.beta1, alpha = opts.beta2, t from 1. The
 * first term is the next step's bias-corrected momentum (the look-ahead), the second the
 * current gradient's share. This is PyTorch's NAdam update with its mu_t and mu_{t+1} both
 * held at gamma; PyTorch and Keras by default let mu_t grow towards gamma over the first
 * thousands of steps (momentum_decay). Slots: 0 is v, 1 is G. */
#define TG_TEMPLATE "nadam_t.h"
#include "stamp.h"

static void nadam_defaults(tg_optim_opts *o)
{
    o->lr = 0.002; /* Dozat's, Keras's and PyTorch's default */
    o->beta1 = 0.9;
    o->beta2 = 0.999;
    o->eps = 1e-8;
}

const tg_optim_class tg_nadam_class = {
    .name = "nadam",
    .uses = TG_USES_EPS,
    .n_slots = 2,
    .defaults = nadam_defaults,
    .update_f32 = nadam_f32,
    .update_f64 = nadam_f64,
};
