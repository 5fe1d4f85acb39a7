/* ops/linear_act_t.h: linear_act's passes over its output after the GEMM, for the element
 * type T, with the element functions of the standalone activations (ops/elem_t.h).
 * ops/matmul.c includes this file twice, for float (FN(name) = name_f32) and double
 * (name_f64). No include guard, on purpose. */

/* y = f(y + b, a) on rows [r0, r1) of y [rows, cols]: the bias, then the activation. Flat
 * over a row, so it vectorises. */
TG_INLINE void FN(bias_act)(T *restrict y, const T *restrict b, T a, int64_t r0, int64_t r1,
                            int64_t cols, T (*f)(T x, T a))
{
    for (int64_t r = r0; r < r1; r++) {
        T *restrict yr = y + r * cols;
        for (int64_t c = 0; c < cols; c++) yr[c] = f(yr[c] + b[c], a);
    }
}

/* The same for tanh and sigmoid with their libm calls made a block at a time by
 * ops/vecmath.h's array functions, as the standalone ops make them (ops/elem_t.h's
 * vm_part), so the values are theirs bit for bit. */
TG_INLINE void FN(bias_vm)(T *restrict y, const T *restrict b, int64_t r0, int64_t r1, int64_t cols,
                           bool sigmoid)
{
    T u[TG_VM_BLOCK];
    for (int64_t r = r0; r < r1; r++) {
        T *restrict yr = y + r * cols;
        for (int64_t c = 0; c < cols; c++) yr[c] += b[c];
        if (!sigmoid) {
            FN(tg_vm_tanh)(yr, yr, cols);
            continue;
        }
        for (int64_t c0 = 0; c0 < cols; c0 += TG_VM_BLOCK) {
            const int64_t m = cols - c0 < TG_VM_BLOCK ? cols - c0 : TG_VM_BLOCK;
            for (int64_t k = 0; k < m; k++) u[k] = FN(neg_abs)(yr[c0 + k]);
            FN(tg_vm_exp)(u, u, m);
            for (int64_t k = 0; k < m; k++) yr[c0 + k] = FN(sigmoid_e)(yr[c0 + k], u[k]);
        }
    }
}

/* dz = df(dy, x, y, a) on elements [i0, i1), the gradient at the pre-activation x. x is not
 * kept and y stands in for it: of linear_act's activations only relu and leaky_relu read x,
 * and only its sign, which y shares (y > 0 exactly when x > 0, for alpha >= 0, and a NaN
 * stays a NaN), so the derivative is the standalone op's, bit for bit. */
TG_INLINE void FN(act_dz)(T *restrict dz, const T *restrict y, const T *restrict dy, T a,
                          int64_t i0, int64_t i1, T (*df)(T dy, T x, T y, T a))
{
    for (int64_t i = i0; i < i1; i++) dz[i] = df(dy[i], y[i], y[i], a);
}

/* One thread's rows [r0, r1) of the forward pass (pass 0: y = act(y + b)) or of dz in the
 * backward (pass 1: dz = dy ⊙ act'(y)). */
TG_VEC_CLONES
static void FN(la_rows)(tg_node *n, int pass, int64_t r0, int64_t r1)
{
    const int64_t cols = tg_node_attr(n)->linear.cols, i0 = r0 * cols, i1 = r1 * cols;
    T *y = tg_node_out(n)->data, *dz = n->saved;
    const T *b = n->in[2]->data, *dy = pass ? tg_node_out(n)->grad->data : NULL;
    const T a = (T)tg_node_attr(n)->linear.alpha;
    switch (tg_node_attr(n)->linear.act * 2 + pass) {
    case TG_ACT_RELU * 2: FN(bias_act)(y, b, a, r0, r1, cols, FN(relu)); break;
    case TG_ACT_RELU * 2 + 1: FN(act_dz)(dz, y, dy, a, i0, i1, FN(relu_dx)); break;
    case TG_ACT_LEAKY_RELU * 2: FN(bias_act)(y, b, a, r0, r1, cols, FN(leaky_relu)); break;
    case TG_ACT_LEAKY_RELU * 2 + 1: FN(act_dz)(dz, y, dy, a, i0, i1, FN(leaky_relu_dx)); break;
    case TG_ACT_TANH * 2: FN(bias_vm)(y, b, r0, r1, cols, false); break;
    case TG_ACT_TANH * 2 + 1: FN(act_dz)(dz, y, dy, a, i0, i1, FN(tanh_dx)); break;
    case TG_ACT_SIGMOID * 2: FN(bias_vm)(y, b, r0, r1, cols, true); break;
    case TG_ACT_SIGMOID * 2 + 1: FN(act_dz)(dz, y, dy, a, i0, i1, FN(sigmoid_dx)); break;
    case TG_ACT_IDENTITY * 2: FN(bias_act)(y, b, a, r0, r1, cols, FN(identity)); break;
    default: FN(act_dz)(dz, y, dy, a, i0, i1, FN(identity_dx)); break;
    }
}

/* db[c0..c1) := (db_set ? db : 0) + the column sums of dz [rows, cols], in row order. */
TG_VEC_CLONES
static void FN(la_db)(T *restrict db, const T *restrict dz, int64_t rows, int64_t cols, int64_t c0,
                      int64_t c1, bool db_set)
{
    for (int64_t r = 0; r < rows; r++) {
        const T *restrict dzr = dz + r * cols;
        if (r == 0 && !db_set)
            for (int64_t c = c0; c < c1; c++) db[c] = dzr[c];
        else
            for (int64_t c = c0; c < c1; c++) db[c] += dzr[c];
    }
}
