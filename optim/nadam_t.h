/* optim/nadam_t.h: Nadam's kernel, nadam_f32 / nadam_f64, for the element type T. optim/nadam.c
 * includes this file twice, as ops/elem.h does ops/elem_t.h: T = float with FN(name) = name_f32 and
 * float libm (M(sqrt) = sqrtf), then T = double with name_f64 and sqrt. No include guard, on
 * purpose. */

TG_VEC_CLONES
static void FN(nadam)(const tg_optim *o, T *restrict w, const T *restrict g, T *const *s, int64_t n)
{
    const T lr = (T)o->lr, l2 = (T)o->opts.l2, keep = (T)o->keep, eps = (T)o->opts.eps;
    const double gam = o->opts.beta1, t = (double)o->t;
    const T b1 = (T)gam, b2 = (T)o->opts.beta2;
    const T cv = (T)(gam / (1.0 - pow(gam, t + 1.0)));   /* on the new moment */
    const T cg = (T)((1.0 - gam) / (1.0 - pow(gam, t))); /* on the gradient */
    const T c2 = (T)(1.0 / (1.0 - pow(o->opts.beta2, t)));
    T *restrict v = s[0], *restrict G = s[1];
    for (int64_t i = 0; i < n; i++) {
        T gi = g[i] + l2 * w[i];
        v[i] = b1 * v[i] + ((T)1 - b1) * gi;
        G[i] = b2 * G[i] + ((T)1 - b2) * gi * gi;
        w[i] = keep * w[i] - lr * (cv * v[i] + cg * gi) / (M(sqrt)(G[i] * c2) + eps);
    }
}
