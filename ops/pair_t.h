/* ops/pair_t.h: the two kernels of an elementwise loss (ops/loss.c) for the element type T
 * of the prediction p and the target t: L = scale · Σ phi(p, t), dp += g dphi/dp, dt += g
 * dphi/dt, with g = dL · scale. The per-element terms are double functions of one element
 * (losses are not the hot path, and sums over many elements keep precision). ops/loss.c
 * includes this file twice, for float (FN(name) = name_f32) and double (name_f64). No include
 * guard, on purpose. Attributes: tg_node_attr(n)->loss (c, scale, eps). */

TG_INLINE void FN(pair_fwd)(tg_node *n, pair_fn phi)
{
    const T *restrict p = n->in[0]->data, *restrict t = n->in[1]->data;
    const double c = tg_node_attr(n)->loss.c, eps = tg_node_attr(n)->loss.eps;
    double s = 0;
    for (int64_t i = 0, len = n->in[0]->numel; i < len; i++)
        s += phi((double)p[i], (double)t[i], c, eps);
    *(T *)tg_node_out(n)->data = (T)(s * tg_node_attr(n)->loss.scale);
}

TG_INLINE void FN(pair_bwd)(tg_node *n, pair_fn dphi_dp, pair_fn dphi_dt)
{
    const T *restrict p = n->in[0]->data, *restrict t = n->in[1]->data;
    const double c = tg_node_attr(n)->loss.c, eps = tg_node_attr(n)->loss.eps;
    const double g = (double)*(const T *)tg_node_out(n)->grad->data * tg_node_attr(n)->loss.scale;
    const int64_t len = n->in[0]->numel;
    if (n->in[0]->requires_grad) {
        T *dp = n->in[0]->grad->data;
        for (int64_t i = 0; i < len; i++)
            dp[i] += (T)(g * dphi_dp((double)p[i], (double)t[i], c, eps));
    }
    if (n->in[1]->requires_grad) {
        T *dt = n->in[1]->grad->data;
        for (int64_t i = 0; i < len; i++)
            dt[i] += (T)(g * dphi_dt((double)p[i], (double)t[i], c, eps));
    }
}
