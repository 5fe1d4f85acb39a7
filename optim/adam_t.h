/* optim/adam_t.h: Adam's kernel adam_f32 / adam_f64 and its exported tg_adam_update_f32 /
 * tg_adam_update_f64, for the element type T. optim/adam.c includes this file twice, as
 * ops/elem.h does ops/elem_t.h: T = float with FN(name) = name_f32 and float libm (M(sqrt) =
 * sqrtf), then T = double with name_f64 and sqrt. No include guard, on purpose. */

TG_VEC_CLONES
static void FN(adam)(const tg_optim *o, T *restrict w, const T *restrict g, T *const *s, int64_t n)
{
    const T lr = (T)o->lr, l2 = (T)o->opts.l2, keep = (T)o->keep, eps = (T)o->opts.eps;
    const T b1 = (T)o->opts.beta1, b2 = (T)o->opts.beta2;
    /* the bias corrections, as factors, once per step in double */
    const T c1 = (T)(1.0 / (1.0 - pow(o->opts.beta1, (double)o->t)));
    const T c2 = (T)(1.0 / (1.0 - pow(o->opts.beta2, (double)o->t)));
    T *restrict v = s[0], *restrict G = s[1];
    for (int64_t i = 0; i < n; i++) {
        T gi = g[i] + l2 * w[i];
        v[i] = b1 * v[i] + ((T)1 - b1) * gi;
        G[i] = b2 * G[i] + ((T)1 - b2) * gi * gi;
        w[i] = keep * w[i] - lr * (v[i] * c1) / (M(sqrt)(G[i] * c2) + eps);
    }
}
/* for AdamW's class: a multiversioned function is local to its file with clang */
void FN(tg_adam_update)(const tg_optim *o, T *restrict w, const T *restrict g, T *const *s,
                        int64_t n)
{
    FN(adam)(o, w, g, s, n);
}
