/* ops/elem_t.h: the scalar math of every elementwise op and activation, one element at a
 * time, written once for the element type T, and the loop that applies it. ops/elem.h
 * includes this file twice: T = float with FN(name) = name_f32 and float libm (M(tanh) =
 * tanhf), then T = double with name_f64 and tanh. No include guard, on purpose.
 *
 * One vocabulary: x an input element, y the output element, dy the output's gradient, a the
 * op's scalar attribute (c of add_scalar and the like, alpha of an activation). A forward is
 * T f(T x, T a), a derivative T f_dx(T dy, T x, T y, T a) = dy · ∂y/∂x, so one loop applies
 * any of them; the arguments a formula does not read cost nothing once inlined. Values are
 * loaded before any branch and branches only select, never compute, so the compiler can
 * turn them into vector blends. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"

/* ---- helpers ---- */
/* The positive and the non-positive part: x = pos(x) + neg(x), and a NaN goes to neg. */
static inline T FN(pos_part)(T x) { return x > 0 ? x : 0; }
static inline T FN(neg_part)(T x) { return x > 0 ? 0 : x; }

/* ---- unary.c ---- */
/* y = -x;  dx -= dy. */
static inline T FN(neg)(T x, T a) { return -x; }
static inline T FN(neg_dx)(T dy, T x, T y, T a) { return -dy; }
/* y = x + c;  dx += dy. */
static inline T FN(add_scalar)(T x, T a) { return x + a; }
static inline T FN(add_scalar_dx)(T dy, T x, T y, T a) { return dy; }
/* y = c x;  dx += c dy. */
static inline T FN(mul_scalar)(T x, T a) { return a * x; }
static inline T FN(mul_scalar_dx)(T dy, T x, T y, T a) { return a * dy; }
/* y = x^p;  dx += dy p x^(p-1). For p = 0 the derivative is 0 even at x = 0 (where C's pow
 * would give 0 · 0^-1 = NaN). C's pow throughout: x < 0 with a non-integer p gives NaN, 0 to
 * a negative p gives inf, as in PyTorch. */
static inline T FN(pow_scalar)(T x, T a) { return M(pow)(x, a); }
static inline T FN(pow_scalar_dx)(T dy, T x, T y, T a)
{
    return a == 0 ? 0 : dy * a * M(pow)(x, a - 1);
}
/* y = e^x;  dx += dy y (the output, no second exp). */
static inline T FN(exp)(T x, T a) { return M(exp)(x); }
static inline T FN(exp_dx)(T dy, T x, T y, T a) { return dy * y; }
/* y = ln x;  dx += dy / x. ln 0 = -inf with dx = ±inf, ln of x < 0 is NaN. */
static inline T FN(log)(T x, T a) { return M(log)(x); }
static inline T FN(log_dx)(T dy, T x, T y, T a) { return dy / x; }
/* y = √x;  dx += dy / (2y), inf at x = 0 (the true slope), NaN for x < 0. */
static inline T FN(sqrt)(T x, T a) { return M(sqrt)(x); }
static inline T FN(sqrt_dx)(T dy, T x, T y, T a) { return dy * (T)0.5 / y; }
/* y = |x|;  dx += dy sign(x), with sign(0) = 0 and, as PyTorch, sign(NaN) = 0. A product with
 * a selected constant (rather than selecting dy or -dy) keeps the loop branch-free. */
static inline T FN(abs)(T x, T a) { return M(fabs)(x); }
static inline T FN(abs_dx)(T dy, T x, T y, T a) { return dy * (x > 0 ? (T)1 : x < 0 ? (T)-1 : 0); }
/* y = x²;  dx += 2x dy. */
static inline T FN(square)(T x, T a) { return x * x; }
static inline T FN(square_dx)(T dy, T x, T y, T a) { return 2 * x * dy; }

/* ---- activation.c (linear_act in matmul.c applies the same functions) ---- */
/* σ(x) = 1/(1+e^-x);  dx += dy σ(1-σ), from the output alone. Stable for large |x|: e^-|x|
 * never overflows, and for x < 0 the result e^x / (1 + e^x) keeps its relative precision
 * (no 1 - (1 - ε)). */
static inline T FN(neg_abs)(T x) { return -M(fabs)(x); }
/* σ(x) from e = e^-|x| (the array forms below compute e apart). */
static inline T FN(sigmoid_e)(T x, T e) { return (x >= 0 ? 1 : e) / (1 + e); }
static inline T FN(sigmoid)(T x, T a) { return FN(sigmoid_e)(x, M(exp)(FN(neg_abs)(x))); }
static inline T FN(sigmoid_dx)(T dy, T x, T y, T a) { return dy * y * (1 - y); }
/* y = tanh(x);  dx += dy (1 - y²). */
static inline T FN(tanh)(T x, T a) { return M(tanh)(x); }
static inline T FN(tanh_dx)(T dy, T x, T y, T a) { return dy * (1 - y * y); }
/* max(0, x), written so that a NaN passes through instead of being hidden as 0;
 * dx += dy [x > 0] (0 at the kink, as PyTorch). */
static inline T FN(relu)(T x, T a) { return x < 0 ? 0 : x; }
static inline T FN(relu_dx)(T dy, T x, T y, T a) { return x > 0 ? dy : 0; }
/* max(0, x) + α min(0, x);  dx += dy (x > 0 ? 1 : α), so α dy at 0 (PyTorch's choice). */
static inline T FN(leaky_relu)(T x, T a) { return FN(pos_part)(x) + a * FN(neg_part)(x); }
static inline T FN(leaky_relu_dx)(T dy, T x, T y, T a) { return dy * (x > 0 ? 1 : a); }
/* x > 0 ? x : α(e^x - 1), with expm1 for accuracy near 0; dx += dy or dy α e^x. α e^x is
 * computed afresh rather than as y + α, which cancels badly for very negative x. */
static inline T FN(elu_m)(T x, T m, T a) { return x > 0 ? x : a * m; } /* m = e^x - 1 */
static inline T FN(elu_dx_e)(T dy, T x, T e, T a) { return dy * (x > 0 ? 1 : a * e); } /* e^x */
static inline T FN(elu)(T x, T a) { return FN(elu_m)(x, M(expm1)(x), a); }
static inline T FN(elu_dx)(T dy, T x, T y, T a) { return FN(elu_dx_e)(dy, x, M(exp)(x), a); }
/* ln(1 + e^x) = max(x, 0) + ln(1 + e^-|x|): no overflow for large x, no loss for very
 * negative x. Its derivative is the sigmoid. */
static inline T FN(softplus)(T x, T a)
{
    return FN(pos_part)(x) + M(log1p)(M(exp)(FN(neg_abs)(x)));
}
static inline T FN(softplus_dx)(T dy, T x, T y, T a) { return dy * FN(sigmoid)(x, a); }
/* [x > 0] and sign(x) (sign(0) = 0; a NaN passes through sign): exact, with no derivative to
 * add (tg_step in ops.h). */
static inline T FN(step)(T x, T a) { return x > 0 ? (T)1 : 0; }
static inline T FN(sign)(T x, T a) { return x > 0 ? (T)1 : x < 0 ? (T)-1 : x; }
/* linear_act without an activation. */
static inline T FN(identity)(T x, T a) { return x; }
static inline T FN(identity_dx)(T dy, T x, T y, T a) { return dy; }

/* ---- elementwise.c: y = f(a, b) of two inputs, and the derivatives in a and in b ---- */
static inline T FN(add)(T a, T b) { return a + b; }
static inline T FN(add_da)(T dy, T a, T b, T y) { return dy; }
static inline T FN(add_db)(T dy, T a, T b, T y) { return dy; }
static inline T FN(sub)(T a, T b) { return a - b; }
static inline T FN(sub_da)(T dy, T a, T b, T y) { return dy; }
static inline T FN(sub_db)(T dy, T a, T b, T y) { return -dy; }
static inline T FN(mul)(T a, T b) { return a * b; }
static inline T FN(mul_da)(T dy, T a, T b, T y) { return dy * b; }
static inline T FN(mul_db)(T dy, T a, T b, T y) { return dy * a; }
static inline T FN(div)(T a, T b) { return a / b; }
static inline T FN(div_da)(T dy, T a, T b, T y) { return dy / b; }
/* -dy a / b², as -dy y / b: b² would overflow for |b| > ~1e19 in f32 and y is at hand. */
static inline T FN(div_db)(T dy, T a, T b, T y) { return -dy * y / b; }

#pragma GCC diagnostic pop

/* ---- the loops of every one-input elementwise op, over elements [i0, i1) (a part of
 * ops/vecmath.h's thread split) ---- */
/* y = f(x, a). */
TG_INLINE void FN(unary_fwd)(tg_node *n, T (*f)(T x, T a), int64_t i0, int64_t i1)
{
    const T *restrict x = n->in[0]->data;
    T *restrict y = tg_node_out(n)->data;
    const T a = (T)tg_node_attr(n)->scalar;
    for (int64_t i = i0; i < i1; i++) y[i] = f(x[i], a);
}
/* dx += df(dy, x, y, a), or dx = df(...) when beta is 0 (dx holds no values yet,
 * tg_grad_beta), rather than adding to zeros. */
TG_INLINE void FN(unary_bwd)(tg_node *n, T (*df)(T dy, T x, T y, T a), int64_t i0, int64_t i1,
                             int beta)
{
    const T *restrict x = n->in[0]->data, *restrict y = tg_node_out(n)->data;
    const T *restrict dy = tg_node_out(n)->grad->data;
    T *restrict dx = n->in[0]->grad->data;
    const T a = (T)tg_node_attr(n)->scalar;
    if (beta)
        for (int64_t i = i0; i < i1; i++) dx[i] += df(dy[i], x[i], y[i], a);
    else
        for (int64_t i = i0; i < i1; i++) dx[i] = df(dy[i], x[i], y[i], a);
}

/* ---- the array forms of the transcendental ops: the same formulas with the libm call
 * made on a whole block by ops/vecmath.h's array function g (g2 after it, if not NULL):
 * u = g(pre(x)), then y = post(0, x, u, a) (forward) or dx (+)= post(dy, x, u, a)
 * (backward, bwd true). With the scalar array functions of the plain build these give the
 * element functions' bits above. ---- */
TG_INLINE void FN(vm_part)(tg_node *n, int64_t i0, int64_t i1, bool bwd, int beta, T (*pre)(T x),
                           void (*g)(const T *, T *, int64_t), void (*g2)(const T *, T *, int64_t),
                           T (*post)(T dy, T x, T u, T a))
{
    const T *restrict x = n->in[0]->data;
    const T *restrict dy = bwd ? tg_node_out(n)->grad->data : NULL;
    T *restrict out = bwd ? n->in[0]->grad->data : tg_node_out(n)->data;
    const T a = (T)tg_node_attr(n)->scalar;
    T u[TG_VM_BLOCK];
    for (int64_t b = i0; b < i1; b += TG_VM_BLOCK) {
        const int64_t m = i1 - b < TG_VM_BLOCK ? i1 - b : TG_VM_BLOCK;
        const T *restrict xb = x + b;
        T *restrict ob = out + b;
        for (int64_t k = 0; k < m; k++) u[k] = pre(xb[k]);
        g(u, u, m);
        if (g2) g2(u, u, m);
        if (!bwd)
            for (int64_t k = 0; k < m; k++) ob[k] = post(0, xb[k], u[k], a);
        else if (beta)
            for (int64_t k = 0; k < m; k++) ob[k] += post(dy[b + k], xb[k], u[k], a);
        else
            for (int64_t k = 0; k < m; k++) ob[k] = post(dy[b + k], xb[k], u[k], a);
    }
}
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
static inline T FN(vm_id)(T x) { return x; }
static inline T FN(vm_u)(T dy, T x, T u, T a) { return u; }
static inline T FN(vm_sigmoid)(T dy, T x, T u, T a) { return FN(sigmoid_e)(x, u); }
static inline T FN(vm_softplus)(T dy, T x, T u, T a) { return FN(pos_part)(x) + u; }
static inline T FN(vm_softplus_dx)(T dy, T x, T u, T a) { return dy * FN(sigmoid_e)(x, u); }
static inline T FN(vm_elu)(T dy, T x, T u, T a) { return FN(elu_m)(x, u, a); }
static inline T FN(vm_elu_dx)(T dy, T x, T u, T a) { return FN(elu_dx_e)(dy, x, u, a); }
#pragma GCC diagnostic pop
