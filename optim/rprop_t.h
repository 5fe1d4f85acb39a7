/* optim/rprop_t.h: the kernel of RProp (IRPROP 0: rprop_f32, rprop_f64) or of iRprop-
 * (IRPROP 1: irprop_f32, irprop_f64), for the element type T. optim/rprop.c includes this
 * file four times, as ops/elem.h does ops/elem_t.h: T = float with FN(name) = name_f32, then
 * T = double with name_f64, for each IRPROP. No include guard, on purpose. */

#if IRPROP
#define RPROP_NAME FN(irprop)
#else
#define RPROP_NAME FN(rprop)
#endif

TG_VEC_CLONES
static void RPROP_NAME(const tg_optim *o, T *restrict w, const T *restrict g, T *const *s,
                       int64_t n)
{
    const T l2 = (T)o->opts.l2, keep = (T)o->keep, up = (T)o->opts.step_up;
    const T down = (T)o->opts.step_down, lo = (T)o->opts.step_min;
    const T hi = (T)o->opts.step_max, eta0 = (T)o->lr;
    T *restrict prev = s[0], *restrict eta = s[1];
    for (int64_t i = 0; i < n; i++) {
        T gi = g[i] + l2 * w[i], e = eta[i] > 0 ? eta[i] : eta0, S = prev[i] * gi;
        if (S > 0) e = e * up < hi ? e * up : hi;
        else if (S < 0) e = e * down > lo ? e * down : lo;
        eta[i] = e;
        if (IRPROP && S < 0) gi = 0; /* forget it: no move, S = 0 next time */
        w[i] = keep * w[i] - e * (T)((gi > 0) - (gi < 0));
        prev[i] = gi;
    }
}

#undef RPROP_NAME
