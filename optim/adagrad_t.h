/* optim/adagrad_t.h: AdaGrad's kernel, adagrad_f32 / adagrad_f64, for the element type T.
 * optim/adagrad.c includes this file twice, as ops/elem.h does ops/elem_t.h: T = float with
 * FN(name) = name_f32 and float libm (M(sqrt) = sqrtf), then T = double with name_f64 and sqrt. No
 * include guard, on purpose. */

TG_VEC_CLONES
static void FN(adagrad)(const tg_optim *o, T *restrict w, const T *restrict g, T *const *s,
                        int64_t n)
{
    const T lr = (T)o->lr, l2 = (T)o->opts.l2, keep = (T)o->keep, eps = (T)o->opts.eps;
    T *restrict G = s[0];
    for (int64_t i = 0; i < n; i++) {
        T gi = g[i] + l2 * w[i];
        G[i] += gi * gi;
        w[i] = keep * w[i] - lr * gi / (M(sqrt)(G[i]) + eps);
    }
}
