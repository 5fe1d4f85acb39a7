/* optim/nesterov_t.h: Nesterov's kernel, nesterov_f32 / nesterov_f64, for the element type T.
 * optim/nesterov.c includes this file twice, as ops/elem.h does ops/elem_t.h: T = float with
 * FN(name) = name_f32, then T = double with name_f64. No include guard, on purpose. */

TG_VEC_CLONES
static void FN(nesterov)(const tg_optim *o, T *restrict w, const T *restrict g, T *const *s,
                         int64_t n)
{
    const T lr = (T)o->lr, l2 = (T)o->opts.l2, keep = (T)o->keep;
    const T a = (T)o->opts.momentum;
    T *restrict h = s[0];
    for (int64_t i = 0; i < n; i++) {
        T step = lr * (g[i] + l2 * w[i]);
        h[i] = a * h[i] + step;
        w[i] = keep * w[i] - (a * h[i] + step);
    }
}
