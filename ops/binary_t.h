/* ops/binary_t.h: the two kernels of a two-input elementwise op (add, sub, mul, div) for the
 * element type T, applying y = f(a, b) and its derivatives df(dy, a, b, y) in a and in b
 * (ops/elem_t.h) in the node's layout (ops/elementwise.c). ops/elementwise.c includes this
 * file twice, for float (FN(name) = name_f32) and double (name_f64). No include guard, on
 * purpose. Everything here is inlined into each op's kernels, so pass and the element
 * functions are constants and every loop below is a plain loop. */

/* What a pass does at output element i, with a's element ia and b's element ib: FWD writes
 * out[i] = y[i] = f(a[ia], b[ib]); DA adds df(dy[i], a[ia], b[ib], y[i]) into out[ia] = da[ia]
 * (or, beta 0, writes it: da holds no values yet, tg_grad_beta) and DB the same into
 * out[ib] = db[ib]. */
TG_INLINE void FN(ew_at)(int pass, int beta, T *restrict out, const T *restrict a,
                         const T *restrict b, const T *restrict y, const T *restrict dy,
                         T (*f)(T a, T b), T (*df)(T dy, T a, T b, T y), int64_t i, int64_t ia,
                         int64_t ib)
{
    if (pass == FWD) {
        out[i] = f(a[ia], b[ib]);
        return;
    }
    const int64_t k = pass == DA ? ia : ib;
    const T v = df(dy[i], a[ia], b[ib], y[i]);
    if (beta) out[k] += v;
    else out[k] = v;
}

/* The general layout on the lines [l0, l1) of the output, a line being a run along the last
 * (merged) dimension of c: the inner loop in a version per stride pair so that the common
 * ones are plain loops; an odometer, started at line l0, steps through the outer indices.
 * Adds (beta 1) to a gradient. */
TG_INLINE void FN(ew_bcast)(const bcast *c, int64_t l0, int64_t l1, int pass, T *restrict out,
                            const T *restrict a, const T *restrict b, const T *restrict y,
                            const T *restrict dy, T (*f)(T a, T b), T (*df)(T dy, T a, T b, T y))
{
    int64_t idx[TG_MAX_DIMS] = {0}, ia = 0, ib = 0;
    const int last = c->nd - 1;
    const int64_t w = c->shape[last], sa = c->sa[last], sb = c->sb[last];
    for (int64_t d = last - 1, rem = l0; d >= 0; d--) {
        idx[d] = rem % c->shape[d], rem /= c->shape[d];
        ia += idx[d] * c->sa[d], ib += idx[d] * c->sb[d];
    }
    for (int64_t i = l0 * w; i < l1 * w; i += w) {
        if (sa == 1 && sb == 0)
            for (int64_t j = 0; j < w; j++)
                FN(ew_at)(pass, 1, out, a, b, y, dy, f, df, i + j, ia + j, ib);
        else if (sa == 0 && sb == 1)
            for (int64_t j = 0; j < w; j++)
                FN(ew_at)(pass, 1, out, a, b, y, dy, f, df, i + j, ia, ib + j);
        else
            for (int64_t j = 0; j < w; j++)
                FN(ew_at)(pass, 1, out, a, b, y, dy, f, df, i + j, ia + j * sa, ib + j * sb);
        for (int d = last - 1; d >= 0; d--) {
            ia += c->sa[d], ib += c->sb[d];
            if (++idx[d] < c->shape[d]) break;
            ia -= c->sa[d] * c->shape[d], ib -= c->sb[d] * c->shape[d];
            idx[d] = 0;
        }
    }
}

/* The pass over output elements [i0, i1) of a flat layout (SAME, B_SCALAR or A_SCALAR),
 * with beta a constant once inlined. */
TG_INLINE void FN(ew_flat_beta)(int64_t layout, int pass, int beta, T *restrict out,
                                const T *restrict a, const T *restrict b, const T *restrict y,
                                const T *restrict dy, T (*f)(T a, T b),
                                T (*df)(T dy, T a, T b, T y), int64_t i0, int64_t i1)
{
    if (layout == SAME)
        for (int64_t i = i0; i < i1; i++) FN(ew_at)(pass, beta, out, a, b, y, dy, f, df, i, i, i);
    else if (layout == B_SCALAR)
        for (int64_t i = i0; i < i1; i++) FN(ew_at)(pass, beta, out, a, b, y, dy, f, df, i, i, 0);
    else
        for (int64_t i = i0; i < i1; i++) FN(ew_at)(pass, beta, out, a, b, y, dy, f, df, i, 0, i);
}
TG_INLINE void FN(ew_flat)(int64_t layout, int pass, int beta, T *restrict out, const T *restrict a,
                           const T *restrict b, const T *restrict y, const T *restrict dy,
                           T (*f)(T a, T b), T (*df)(T dy, T a, T b, T y), int64_t i0, int64_t i1)
{
    if (beta) FN(ew_flat_beta)(layout, pass, 1, out, a, b, y, dy, f, df, i0, i1);
    else FN(ew_flat_beta)(layout, pass, 0, out, a, b, y, dy, f, df, i0, i1);
}

/* A ROW layout (B_ROW: b is a row of m elements, a full; A_ROW the other way round) on rows
 * [r0, r1) of the output and columns [j0, j1) of each. beta as in ew_at, a constant once
 * inlined. */
TG_INLINE void FN(ew_rows_beta)(int64_t layout, int pass, int beta, int64_t m, T *restrict out,
                                const T *restrict a, const T *restrict b, const T *restrict y,
                                const T *restrict dy, T (*f)(T a, T b),
                                T (*df)(T dy, T a, T b, T y), int64_t r0, int64_t r1, int64_t j0,
                                int64_t j1)
{
    for (int64_t r = r0 * m; r < r1 * m; r += m)
        if (layout == B_ROW)
            for (int64_t j = j0; j < j1; j++)
                FN(ew_at)(pass, beta, out, a, b, y, dy, f, df, r + j, r + j, j);
        else
            for (int64_t j = j0; j < j1; j++)
                FN(ew_at)(pass, beta, out, a, b, y, dy, f, df, r + j, j, r + j);
}
TG_INLINE void FN(ew_rows)(int64_t layout, int pass, int beta, int64_t m, T *restrict out,
                           const T *restrict a, const T *restrict b, const T *restrict y,
                           const T *restrict dy, T (*f)(T a, T b), T (*df)(T dy, T a, T b, T y),
                           int64_t r0, int64_t r1, int64_t j0, int64_t j1)
{
    if (beta) FN(ew_rows_beta)(layout, pass, 1, m, out, a, b, y, dy, f, df, r0, r1, j0, j1);
    else FN(ew_rows_beta)(layout, pass, 0, m, out, a, b, y, dy, f, df, r0, r1, j0, j1);
}

/* One part of a pass of the non-flat layouts (ops/elementwise.c picks the split): rows
 * [i0, i1) (ROW layouts, split by rows), columns [i0, i1) of every row (ROW layouts, the row
 * operand's gradient, split by columns), or lines [i0, i1) (the general layout). */
TG_INLINE void FN(ew_part)(const tg_node *n, int pass, int beta, int by_cols, int64_t i0,
                           int64_t i1, T (*f)(T a, T b), T (*df)(T dy, T a, T b, T y))
{
    const T *a = n->in[0]->data, *b = n->in[1]->data;
    const T *y = pass == FWD ? NULL : tg_node_out(n)->data,
            *dy = pass == FWD ? NULL : tg_node_out(n)->grad->data;
    T *out = pass == FWD ? tg_node_out(n)->data : n->in[pass == DA ? 0 : 1]->grad->data;
    const int64_t layout = tg_node_attr(n)->binary.layout, m = tg_node_attr(n)->binary.row;
    if (layout == B_ROW || layout == A_ROW) {
        const int64_t rows = tg_node_out(n)->numel / m;
        if (by_cols) FN(ew_rows)(layout, pass, beta, m, out, a, b, y, dy, f, df, 0, rows, i0, i1);
        else FN(ew_rows)(layout, pass, beta, m, out, a, b, y, dy, f, df, i0, i1, 0, m);
        return;
    }
    bcast c;
    bcast_init(&c, n);
    FN(ew_bcast)(&c, i0, i1, pass, out, a, b, y, dy, f, df);
}

/* Σ_i df(...) over output elements [i0, i1): the gradient of a scalar operand s (a's if
 * pass is DA, b's if DB). Eight partial sums let the compiler keep them in one vector
 * register (a single running sum is a serial chain it may not reorder), and they lose less
 * precision over long f32 sums. */
TG_INLINE T FN(ew_sum_run)(int64_t i0, int64_t i1, int pass, const T *restrict a,
                           const T *restrict b, const T s, const T *restrict y,
                           const T *restrict dy, T (*df)(T dy, T a, T b, T y))
{
#define TERM(i) (pass == DA ? df(dy[i], s, b[i], y[i]) : df(dy[i], a[i], s, y[i]))
    T acc[8] = {0}, sum = 0;
    int64_t i = i0;
    for (; i + 8 <= i1; i += 8)
        for (int k = 0; k < 8; k++) acc[k] += TERM(i + k);
    for (; i < i1; i++) sum += TERM(i);
    for (int k = 0; k < 8; k++) sum += acc[k];
    return sum;
#undef TERM
}

/* Part p of count (ops/vecmath.h's fixed cuts) of the gradient sum of the scalar operand:
 * a's if pass is DA, b's if DB. */
TG_INLINE T FN(ew_sum_part)(const tg_node *n, int pass, int p, int count,
                            T (*df_da)(T dy, T a, T b, T y), T (*df_db)(T dy, T a, T b, T y))
{
    const T *a = n->in[0]->data, *b = n->in[1]->data;
    const T *y = tg_node_out(n)->data, *dy = tg_node_out(n)->grad->data;
    const int64_t len = tg_node_out(n)->numel;
    const int64_t i0 = tg_sum_cut(len, count, p), i1 = tg_sum_cut(len, count, p + 1);
    if (pass == DA) return FN(ew_sum_run)(i0, i1, DA, a, b, a[0], y, dy, df_da);
    return FN(ew_sum_run)(i0, i1, DB, a, b, b[0], y, dy, df_db);
}

/* The forward on output elements [i0, i1) of a flat layout. */
TG_INLINE void FN(binary_fwd_part)(tg_node *n, T (*f)(T a, T b), int64_t i0, int64_t i1)
{
    FN(ew_flat)
    (tg_node_attr(n)->binary.layout, FWD, 0, tg_node_out(n)->data, n->in[0]->data, n->in[1]->data,
     NULL, NULL, f, NULL, i0, i1);
}

/* The gradient of a SAME layout's operand (a's if pass is DA, b's if DB) on elements
 * [i0, i1): one plain loop, beta as in ew_at. For mul(x, x) both passes write x's gradient,
 * one after the other (the second with beta 1). */
TG_INLINE void FN(same_bwd)(const tg_node *n, int pass, int beta, T (*df)(T dy, T a, T b, T y),
                            int64_t i0, int64_t i1)
{
    const T *restrict a = n->in[0]->data, *restrict b = n->in[1]->data;
    const T *restrict y = tg_node_out(n)->data, *restrict dy = tg_node_out(n)->grad->data;
    T *restrict out = n->in[pass == DA ? 0 : 1]->grad->data;
    if (beta)
        for (int64_t i = i0; i < i1; i++) out[i] += df(dy[i], a[i], b[i], y[i]);
    else
        for (int64_t i = i0; i < i1; i++) out[i] = df(dy[i], a[i], b[i], y[i]);
}

/* The gradients of a scalar layout's (A_SCALAR, B_SCALAR) full-size operand on output
 * elements [i0, i1): a's unless a is the scalar, then b's unless b is, with beta_a and beta_b
 * as in ew_at (SAME takes same_bwd, which the compiler makes simpler loops of). */
TG_INLINE void FN(binary_bwd_part)(tg_node *n, T (*df_da)(T dy, T a, T b, T y),
                                   T (*df_db)(T dy, T a, T b, T y), int64_t i0, int64_t i1,
                                   int beta_a, int beta_b)
{
    const T *a = n->in[0]->data, *b = n->in[1]->data;
    const T *y = tg_node_out(n)->data, *dy = tg_node_out(n)->grad->data;
    const int64_t layout = tg_node_attr(n)->binary.layout;
    if (n->in[0]->requires_grad && layout != A_SCALAR)
        FN(ew_flat)(layout, DA, beta_a, n->in[0]->grad->data, a, b, y, dy, NULL, df_da, i0, i1);
    if (n->in[1]->requires_grad && layout != B_SCALAR)
        FN(ew_flat)(layout, DB, beta_b, n->in[1]->grad->data, a, b, y, dy, NULL, df_db, i0, i1);
}
