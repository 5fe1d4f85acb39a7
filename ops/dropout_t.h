/* ops/dropout_t.h: the forward and backward kernels of inverted dropout (ops/norm.c states
 * the math and the mask), for the element type T. ops/norm.c includes this file twice:
 * T = float with FN(name) = name_f32, then T = double with name_f64. No include guard, on
 * purpose. */

static void FN(dropout_fwd)(tg_node *n)
{
    const T *restrict x = n->in[0]->data;
    T *restrict y = tg_node_out(n)->data;
    uint8_t *restrict keep = n->saved;
    const double p = tg_node_attr(n)->dropout.p;
    const T scale = (T)(1.0 / (1.0 - p));
    tg_rng *r = &tg_node_out(n)->tape->rng;
    const int64_t len = tg_node_out(n)->numel;
    for (int64_t i = 0; i < len; i++) keep[i] = tg_rng_uniform(r) >= p;
    for (int64_t i = 0; i < len; i++) y[i] = keep[i] ? x[i] * scale : (T)0;
}
static void FN(dropout_bwd)(tg_node *n)
{
    const T *restrict dy = tg_node_out(n)->grad->data;
    const uint8_t *restrict keep = n->saved;
    T *restrict dx = n->in[0]->grad->data;
    const T scale = (T)(1.0 / (1.0 - tg_node_attr(n)->dropout.p));
    for (int64_t i = 0, len = tg_node_out(n)->numel; i < len; i++)
        dx[i] += keep[i] ? dy[i] * scale : (T)0;
}
