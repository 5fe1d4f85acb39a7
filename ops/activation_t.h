/* ops/activation_t.h: the kernels of prelu, softmax and log_softmax for the element type T.
 * ops/activation.c includes this file twice: for float (FN(name) = name_f32, float libm:
 * M(exp) = expf) and for double (name_f64, exp). No include guard, on purpose. */

/* ---- prelu: max(0, x) + α min(0, x), α [1] or [C] (C = x's last dimension);
 * tg_node_attr(n)->prelu.channels = C ----
 * dx += dy (x > 0 ? 1 : α); dα += Σ min(0, x) dy (over all of x for α [1], over every row
 * of channel j for α [C]). x is seen as [numel / C, C], so each loop is a flat one along
 * a row. Per element it is
 * leaky_relu with a per-channel α. */
static void FN(prelu_fwd)(tg_node *n)
{
    const T *restrict x = n->in[0]->data, *restrict al = n->in[1]->data;
    T *restrict y = tg_node_out(n)->data;
    const int64_t c = tg_node_attr(n)->prelu.channels, len = tg_node_out(n)->numel;
    if (len == 0) return; /* α may be [0] too: read nothing */
    if (c == 1) {
        const T a = al[0];
        for (int64_t i = 0; i < len; i++) y[i] = FN(leaky_relu)(x[i], a);
        return;
    }
    for (int64_t r = 0; r < len; r += c)
        for (int64_t j = 0; j < c; j++) y[r + j] = FN(leaky_relu)(x[r + j], al[j]);
}
static void FN(prelu_bwd)(tg_node *n)
{
    const T *restrict x = n->in[0]->data, *restrict al = n->in[1]->data;
    const T *restrict y = tg_node_out(n)->data, *restrict dy = tg_node_out(n)->grad->data;
    const int64_t c = tg_node_attr(n)->prelu.channels, len = tg_node_out(n)->numel;
    if (len == 0) return;
    if (n->in[0]->requires_grad) {
        T *restrict dx = n->in[0]->grad->data;
        if (c == 1) {
            const T a = al[0];
            for (int64_t i = 0; i < len; i++) dx[i] += FN(leaky_relu_dx)(dy[i], x[i], y[i], a);
        } else {
            for (int64_t r = 0; r < len; r += c)
                for (int64_t j = 0; j < c; j++)
                    dx[r + j] += FN(leaky_relu_dx)(dy[r + j], x[r + j], y[r + j], al[j]);
        }
    }
    if (n->in[1]->requires_grad) {
        /* not restrict: α and x may be one tensor, so da may be dx */
        T *da = n->in[1]->grad->data;
        if (c == 1) {
            T s = 0;
            for (int64_t i = 0; i < len; i++) s += FN(neg_part)(x[i]) * dy[i];
            da[0] += s;
        } else {
            for (int64_t r = 0; r < len; r += c)
                for (int64_t j = 0; j < c; j++) da[j] += FN(neg_part)(x[r + j]) * dy[r + j];
        }
    }
}

/* ---- softmax and log_softmax along an axis: tg_node_attr(n)->view (outer, len, inner) ----
 * y = e^(x - m) / Σ e^(x - m) with m the slice's maximum, so no exponent overflows and
 * logits of ±1000 give exact 0 and 1; log_softmax = (x - m) - ln Σ e^(x - m), with x - m
 * formed first so that large logits lose no digits to m + ln Σ.
 * Backward: softmax dx += y (dy - Σ dy y); log_softmax dx += dy - e^y Σ dy.
 * Each [len, inner] block is swept with inner as the innermost, contiguous loop; the
 * per-column maxima and sums live in the saved scratch (2 inner values). inner == 1 (the
 * last axis) is plain contiguous rows and needs no scratch. */
/* Slices [o0, o1) of the outer dimension; several threads may each take some when inner
 * is 1 (the scratch is only used for inner > 1). The exponentials of a row are taken by
 * ops/vecmath.h's array function (libmvec's vector code), over the output row as the
 * buffer, and summed in order as before. */
static void FN(softmax_fwd)(tg_node *n, int64_t o0, int64_t o1)
{
    const int64_t len = tg_node_attr(n)->view.len, inner = tg_node_attr(n)->view.inner;
    const bool lg = n->op == TG_OP_log_softmax;
    if (len == 0 || inner == 0) return; /* empty: no slice to read */
    for (int64_t o = o0; o < o1; o++) {
        const T *restrict xb = (const T *)n->in[0]->data + o * len * inner;
        T *restrict yb = (T *)tg_node_out(n)->data + o * len * inner;
        if (inner == 1) {
            T m = xb[0], s = 0;
            for (int64_t l = 1; l < len; l++) m = xb[l] > m ? xb[l] : m;
            for (int64_t l = 0; l < len; l++) yb[l] = xb[l] - m;
            FN(tg_vm_exp)(yb, yb, len);
            for (int64_t l = 0; l < len; l++) s += yb[l];
            if (lg) {
                const T ls = M(log)(s);
                for (int64_t l = 0; l < len; l++) yb[l] = (xb[l] - m) - ls;
            } else {
                const T r = 1 / s;
                for (int64_t l = 0; l < len; l++) yb[l] *= r;
            }
            continue;
        }
        T *restrict m = n->saved, *restrict s = m + inner;
        for (int64_t k = 0; k < inner; k++) m[k] = xb[k], s[k] = 0;
        for (int64_t l = 1; l < len; l++)
            for (int64_t k = 0; k < inner; k++)
                m[k] = xb[l * inner + k] > m[k] ? xb[l * inner + k] : m[k];
        if (lg) {
            for (int64_t l = 0; l < len; l++)
                for (int64_t k = 0; k < inner; k++) s[k] += M(exp)(xb[l * inner + k] - m[k]);
            for (int64_t k = 0; k < inner; k++) s[k] = M(log)(s[k]);
            for (int64_t l = 0; l < len; l++)
                for (int64_t k = 0; k < inner; k++)
                    yb[l * inner + k] = (xb[l * inner + k] - m[k]) - s[k];
        } else {
            for (int64_t l = 0; l < len; l++)
                for (int64_t k = 0; k < inner; k++)
                    s[k] += (yb[l * inner + k] = M(exp)(xb[l * inner + k] - m[k]));
            for (int64_t k = 0; k < inner; k++) s[k] = 1 / s[k];
            for (int64_t l = 0; l < len; l++)
                for (int64_t k = 0; k < inner; k++) yb[l * inner + k] *= s[k];
        }
    }
}
static void FN(softmax_bwd)(tg_node *n, int64_t o0, int64_t o1)
{
    const int64_t len = tg_node_attr(n)->view.len, inner = tg_node_attr(n)->view.inner;
    const bool lg = n->op == TG_OP_log_softmax;
    if (len == 0 || inner == 0) return;
    for (int64_t o = o0; o < o1; o++) {
        const int64_t base = o * len * inner;
        const T *restrict yb = (const T *)tg_node_out(n)->data + base;
        const T *restrict dyb = (const T *)tg_node_out(n)->grad->data + base;
        T *restrict dxb = (T *)n->in[0]->grad->data + base;
        if (inner == 1) {
            T s = 0;
            if (lg) {
                for (int64_t l = 0; l < len; l++) s += dyb[l];
                T e[256]; /* e^y a block at a time */
                for (int64_t b = 0; b < len; b += 256) {
                    const int64_t w = len - b < 256 ? len - b : 256;
                    FN(tg_vm_exp)(yb + b, e, w);
                    for (int64_t l = 0; l < w; l++) dxb[b + l] += dyb[b + l] - e[l] * s;
                }
            } else {
                for (int64_t l = 0; l < len; l++) s += dyb[l] * yb[l];
                for (int64_t l = 0; l < len; l++) dxb[l] += yb[l] * (dyb[l] - s);
            }
            continue;
        }
        T *restrict s = n->saved; /* the forward's scratch, free again */
        for (int64_t k = 0; k < inner; k++) s[k] = 0;
        if (lg) {
            for (int64_t l = 0; l < len; l++)
                for (int64_t k = 0; k < inner; k++) s[k] += dyb[l * inner + k];
            for (int64_t l = 0; l < len; l++)
                for (int64_t k = 0; k < inner; k++)
                    dxb[l * inner + k] += dyb[l * inner + k] - M(exp)(yb[l * inner + k]) * s[k];
        } else {
            for (int64_t l = 0; l < len; l++)
                for (int64_t k = 0; k < inner; k++) s[k] += dyb[l * inner + k] * yb[l * inner + k];
            for (int64_t l = 0; l < len; l++)
                for (int64_t k = 0; k < inner; k++)
                    dxb[l * inner + k] += yb[l * inner + k] * (dyb[l * inner + k] - s[k]);
        }
    }
}
