/* optim/quickprop_t.h: QuickProp's kernel, quickprop_f32 / quickprop_f64, for the element type T.
 * optim/quickprop.c includes this file twice, as ops/elem.h does ops/elem_t.h: T = float with
 * FN(name) = name_f32, then T = double with name_f64. No include guard, on purpose. */

TG_VEC_CLONES
static void FN(quickprop)(const tg_optim *o, T *restrict w, const T *restrict g, T *const *s,
                          int64_t n)
{
    const T l2 = (T)o->opts.l2, keep = (T)o->keep, eta0 = (T)o->lr;
    const T mu_max = (T)o->opts.mu_max;
    T *restrict prev = s[0], *restrict dw = s[1];
    for (int64_t i = 0; i < n; i++) {
        T S = g[i] + l2 * w[i], d = dw[i];
        T eta = d == 0 || -d * S > 0 ? eta0 : 0;
        T mu;
        if (prev[i] == S) {
            mu = S == 0 ? 0 : mu_max;
        } else {
            T beta = S / (prev[i] - S), gamma = S * -d * beta;
            mu = beta > mu_max || gamma < 0 ? mu_max : beta;
        }
        T step = -eta * S + mu * d;
        w[i] = keep * w[i] + step;
        prev[i] = S, dw[i] = step;
    }
}
