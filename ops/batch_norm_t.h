/* ops/batch_norm_t.h: the forward and backward kernels of batch normalisation (ops/norm.c
 * states the math), for the element type T; sums and statistics are in double for both
 * types. ops/norm.c includes this file twice: T = float with FN(name) = name_f32, then
 * T = double with name_f64. No include guard, on purpose. */

static void FN(bn_fwd)(tg_node *n)
{
    const int64_t N = tg_node_attr(n)->batch_norm.N, C = tg_node_attr(n)->batch_norm.C;
    const int64_t R = tg_node_attr(n)->batch_norm.R;
    double *mean = n->saved, *var = mean + C, *inv = var + C;
    const T *restrict x = n->in[0]->data, *restrict gamma = n->in[1]->data;
    const T *restrict beta = n->in[2]->data;
    T *restrict y = tg_node_out(n)->data;
    /* empty x: no value to touch (and N · C may be 2^48 with R = 0) */
    const bool empty = n->in[0]->numel == 0;
    if (tg_node_attr(n)->batch_norm.training && !empty) {
        const double M = (double)(N * R);
        for (int64_t c = 0; c < C; c++) mean[c] = var[c] = 0;
        for (int64_t b = 0; b < N; b++)
            for (int64_t c = 0; c < C; c++) {
                const T *xr = x + (b * C + c) * R;
                double s = 0;
                for (int64_t r = 0; r < R; r++) s += (double)xr[r];
                mean[c] += s;
            }
        for (int64_t c = 0; c < C; c++) mean[c] /= M;
        for (int64_t b = 0; b < N; b++)
            for (int64_t c = 0; c < C; c++) {
                const T *xr = x + (b * C + c) * R;
                const double m = mean[c];
                double s = 0;
                for (int64_t r = 0; r < R; r++) {
                    const double d = (double)xr[r] - m;
                    s += d * d;
                }
                var[c] += s;
            }
        for (int64_t c = 0; c < C; c++) var[c] /= M;
    }
    const double eps = tg_node_attr(n)->batch_norm.eps;
    for (int64_t c = 0; c < C; c++) inv[c] = 1.0 / sqrt(var[c] + eps);
    if (empty) return;
    for (int64_t b = 0; b < N; b++)
        for (int64_t c = 0; c < C; c++) {
            const T *xr = x + (b * C + c) * R;
            T *yr = y + (b * C + c) * R;
            const double m = mean[c], k = (double)gamma[c] * inv[c];
            const double b0 = (double)beta[c];
            for (int64_t r = 0; r < R; r++) yr[r] = (T)(((double)xr[r] - m) * k + b0);
        }
}
static void FN(bn_bwd)(tg_node *n)
{
    const int64_t N = tg_node_attr(n)->batch_norm.N, C = tg_node_attr(n)->batch_norm.C;
    const int64_t R = tg_node_attr(n)->batch_norm.R;
    const double M = (double)(N * R);
    double *saved = n->saved, *sdy = saved + 3 * C, *sdyx = saved + 4 * C;
    const double *mean = saved, *inv = saved + 2 * C;
    const bool training = tg_node_attr(n)->batch_norm.training;
    const T *restrict x = n->in[0]->data, *restrict gamma = n->in[1]->data;
    const T *restrict dy = tg_node_out(n)->grad->data;
    const bool empty = n->in[0]->numel == 0;
    for (int64_t c = 0; c < C; c++) sdy[c] = sdyx[c] = 0;
    for (int64_t b = 0; b < (empty ? 0 : N); b++)
        for (int64_t c = 0; c < C; c++) {
            const T *xr = x + (b * C + c) * R, *dyr = dy + (b * C + c) * R;
            const double m = mean[c], s = inv[c];
            double s1 = 0, s2 = 0;
            for (int64_t r = 0; r < R; r++) {
                s1 += (double)dyr[r];
                s2 += (double)dyr[r] * (((double)xr[r] - m) * s);
            }
            sdy[c] += s1, sdyx[c] += s2;
        }
    if (n->in[1]->requires_grad) {
        T *dgamma = n->in[1]->grad->data;
        for (int64_t c = 0; c < C; c++) dgamma[c] += (T)sdyx[c];
    }
    if (n->in[2]->requires_grad) {
        T *dbeta = n->in[2]->grad->data;
        for (int64_t c = 0; c < C; c++) dbeta[c] += (T)sdy[c];
    }
    if (!n->in[0]->requires_grad || empty) return;
    T *restrict dx = n->in[0]->grad->data;
    for (int64_t b = 0; b < N; b++)
        for (int64_t c = 0; c < C; c++) {
            const int64_t o = (b * C + c) * R;
            const double m = mean[c], s = inv[c], k = (double)gamma[c] * s;
            /* eval: the statistics are constants, so only the direct term is left */
            const double my = training ? sdy[c] / M : 0.0;
            const double mx = training ? sdyx[c] / M : 0.0;
            for (int64_t r = 0; r < R; r++) {
                const double xh = ((double)x[o + r] - m) * s;
                dx[o + r] += (T)(k * ((double)dy[o + r] - my - xh * mx));
            }
        }
}
