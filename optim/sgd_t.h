/* optim/sgd_t.h: plain gradient descent's kernel, sgd_f32 / sgd_f64, for the element type T.
 * optim/sgd.c includes this file twice, as ops/elem.h does ops/elem_t.h: T = float with FN(name) =
 * name_f32, then T = double with name_f64. No include guard, on purpose. */

TG_VEC_CLONES
static void FN(sgd)(const tg_optim *o, T *restrict w, const T *restrict g, T *const *s, int64_t n)
{
    (void)s;
    const T lr = (T)o->lr, l2 = (T)o->opts.l2, keep = (T)o->keep;
    for (int64_t i = 0; i < n; i++) w[i] = keep * w[i] - lr * (g[i] + l2 * w[i]);
}
