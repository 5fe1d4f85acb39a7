/* ops/pool_t.h: the kernels of max_pool2d and avg_pool2d (ops/pool.c describes the
 * geometry, pool_geom), for the element type T, over the planes [p0, p1) of x viewed as
 * [planes, H, W]. ops/pool.c includes this file twice: T = float with FN(name) = name_f32,
 * then T = double with name_f64. No include guard, on purpose. */

/* The first maximal element of a window, as its plane index, and its value in *m: the
 * comparison v > m keeps the first of equal values, and a NaN ends the search (the first
 * NaN). The loops below compare with v > m ? v : m, a max instruction and a conditional
 * move, not a branch that random data mispredicts, and leave a window holding a NaN to
 * this function. */
static int64_t FN(window_max)(const T *xp, int64_t W, int64_t hs, int64_t he, int64_t ws,
                              int64_t we, T *m)
{
    int64_t best = hs * W + ws;
    T mv = xp[best];
    for (int64_t h = hs; h < he; h++)
        for (int64_t w = ws; w < we; w++) {
            const T v = xp[h * W + w];
            if (v != v) {
                *m = v;
                return h * W + w;
            }
            if (v > mv) mv = v, best = h * W + w;
        }
    *m = mv;
    return best;
}

static void FN(maxpool_fwd)(const pool_geom *g, const T *restrict x, T *restrict y, int64_t p0,
                            int64_t p1)
{
    const int64_t H = g->H, W = g->W, Ho = g->Ho, Wo = g->Wo;
    int64_t *restrict arg = g->arg;
    if (g->kh == 2 && g->kw == 2 && g->sh == 2 && g->sw == 2 && g->ph == 0 && g->pw == 0) {
        for (int64_t p = p0; p < p1; p++)
            for (int64_t oh = 0; oh < Ho; oh++) {
                const T *r0 = x + (p * H + 2 * oh) * W, *r1 = r0 + W;
                T *yr = y + (p * Ho + oh) * Wo;
                if (!arg) { /* the value alone: a NaN anywhere wins; vectorised */
                    for (int64_t ow = 0; ow < Wo; ow++) {
                        T m = r0[2 * ow], v = r0[2 * ow + 1];
                        m = m != m || v <= m ? m : v;
                        v = r1[2 * ow], m = m != m || v <= m ? m : v;
                        v = r1[2 * ow + 1], m = m != m || v <= m ? m : v;
                        yr[ow] = m;
                    }
                    continue;
                }
                int64_t *ar = arg + (p * Ho + oh) * Wo, top = 2 * oh * W;
                for (int64_t ow = 0; ow < Wo; ow++) {
                    const T a = r0[2 * ow], b = r0[2 * ow + 1], c = r1[2 * ow], d = r1[2 * ow + 1];
                    if ((a != a) | (b != b) | (c != c) | (d != d)) {
                        T m;
                        int64_t at = FN(window_max)(x + p * H * W, W, 2 * oh, 2 * oh + 2, 2 * ow,
                                                    2 * ow + 2, &m);
                        yr[ow] = m, ar[ow] = at;
                        continue;
                    }
                    T m = a;
                    int64_t best = 0;
                    best = b > m ? 1 : best, m = b > m ? b : m;
                    best = c > m ? W : best, m = c > m ? c : m;
                    best = d > m ? W + 1 : best, m = d > m ? d : m;
                    yr[ow] = m, ar[ow] = top + 2 * ow + best;
                }
            }
        return;
    }
    /* The window of output (oh, ow), clipped to the plane: padding is -inf, so it never
     * wins, and every window holds an element of the plane (padding <= kernel / 2). */
    for (int64_t p = p0; p < p1; p++) {
        const T *xp = x + p * H * W;
        for (int64_t oh = 0; oh < Ho; oh++) {
            const int64_t h0 = oh * g->sh - g->ph, hs = h0 > 0 ? h0 : 0;
            const int64_t he = h0 + g->kh < H ? h0 + g->kh : H;
            for (int64_t ow = 0; ow < Wo; ow++) {
                const int64_t w0 = ow * g->sw - g->pw, ws = w0 > 0 ? w0 : 0;
                const int64_t we = w0 + g->kw < W ? w0 + g->kw : W;
                int64_t best = hs * W + ws;
                T m = xp[best];
                bool nan = false;
                for (int64_t h = hs; h < he; h++)
                    for (int64_t w = ws; w < we; w++) {
                        const T v = xp[h * W + w];
                        nan |= v != v;
                        best = v > m ? h * W + w : best, m = v > m ? v : m;
                    }
                if (nan) best = FN(window_max)(xp, W, hs, he, ws, we, &m);
                const int64_t o = (p * Ho + oh) * Wo + ow;
                y[o] = m;
                if (arg) arg[o] = best;
            }
        }
    }
}

/* dx[window's maximum] += dy. Each plane's outputs write only that plane of dx. */
static void FN(maxpool_bwd)(const pool_geom *g, const T *restrict dy, T *restrict dx, int64_t p0,
                            int64_t p1)
{
    const int64_t HW = g->H * g->W, L = g->Ho * g->Wo;
    const int64_t *restrict arg = g->arg;
    for (int64_t p = p0; p < p1; p++) {
        T *dxp = dx + p * HW;
        for (int64_t l = p * L; l < (p + 1) * L; l++) dxp[arg[l]] += dy[l];
    }
}

/* y = (Σ of the window's elements of the plane) / (kh·kw): the padding adds zeros. */
static void FN(avgpool_fwd)(const pool_geom *g, const T *restrict x, T *restrict y, int64_t p0,
                            int64_t p1)
{
    const int64_t H = g->H, W = g->W, Ho = g->Ho, Wo = g->Wo;
    if (g->kh == 2 && g->kw == 2 && g->sh == 2 && g->sw == 2 && g->ph == 0 && g->pw == 0) {
        for (int64_t p = p0; p < p1; p++)
            for (int64_t oh = 0; oh < Ho; oh++) {
                const T *r0 = x + (p * H + 2 * oh) * W, *r1 = r0 + W;
                T *yr = y + (p * Ho + oh) * Wo;
                for (int64_t ow = 0; ow < Wo; ow++)
                    yr[ow] = (r0[2 * ow] + r0[2 * ow + 1] + r1[2 * ow] + r1[2 * ow + 1]) * (T)0.25;
            }
        return;
    }
    const T div = (T)((double)g->kh * (double)g->kw);
    for (int64_t p = p0; p < p1; p++) {
        const T *xp = x + p * H * W;
        for (int64_t oh = 0; oh < Ho; oh++) {
            const int64_t h0 = oh * g->sh - g->ph, hs = h0 > 0 ? h0 : 0;
            const int64_t he = h0 + g->kh < H ? h0 + g->kh : H;
            T *yr = y + (p * Ho + oh) * Wo;
            for (int64_t ow = 0; ow < Wo; ow++) {
                const int64_t w0 = ow * g->sw - g->pw, ws = w0 > 0 ? w0 : 0;
                const int64_t we = w0 + g->kw < W ? w0 + g->kw : W;
                T s = 0;
                for (int64_t h = hs; h < he; h++)
                    for (int64_t w = ws; w < we; w++) s += xp[h * W + w];
                yr[ow] = s / div;
            }
        }
    }
}

/* dx[each element of the window in the plane] += dy / (kh·kw). */
static void FN(avgpool_bwd)(const pool_geom *g, const T *restrict dy, T *restrict dx, int64_t p0,
                            int64_t p1)
{
    const int64_t H = g->H, W = g->W, Ho = g->Ho, Wo = g->Wo;
    if (g->kh == 2 && g->kw == 2 && g->sh == 2 && g->sw == 2 && g->ph == 0 && g->pw == 0) {
        for (int64_t p = p0; p < p1; p++)
            for (int64_t oh = 0; oh < Ho; oh++) {
                T *r0 = dx + (p * H + 2 * oh) * W, *r1 = r0 + W;
                const T *dyr = dy + (p * Ho + oh) * Wo;
                for (int64_t ow = 0; ow < Wo; ow++) {
                    const T d = dyr[ow] * (T)0.25;
                    r0[2 * ow] += d, r0[2 * ow + 1] += d, r1[2 * ow] += d, r1[2 * ow + 1] += d;
                }
            }
        return;
    }
    const T div = (T)((double)g->kh * (double)g->kw);
    for (int64_t p = p0; p < p1; p++) {
        T *dxp = dx + p * H * W;
        for (int64_t oh = 0; oh < Ho; oh++) {
            const int64_t h0 = oh * g->sh - g->ph, hs = h0 > 0 ? h0 : 0;
            const int64_t he = h0 + g->kh < H ? h0 + g->kh : H;
            const T *dyr = dy + (p * Ho + oh) * Wo;
            for (int64_t ow = 0; ow < Wo; ow++) {
                const int64_t w0 = ow * g->sw - g->pw, ws = w0 > 0 ? w0 : 0;
                const int64_t we = w0 + g->kw < W ? w0 + g->kw : W;
                const T d = dyr[ow] / div;
                for (int64_t h = hs; h < he; h++)
                    for (int64_t w = ws; w < we; w++) dxp[h * W + w] += d;
            }
        }
    }
}
