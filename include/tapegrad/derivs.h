/* tapegrad/derivs.h: derivative products built on tg_gradients (tape.h): Hessian-vector,
 * Jacobian-vector and vector-Jacobian products, dense Jacobians and Hessians
 * (docs/higher-order.md).
 *
 * Common rules. Every function takes the tape first, builds on it (its nodes, gradients
 * and scratch stay in the arena until tg_tape_reset) and returns 0 or a negative TG_E...
 * code, kept on the tape as its first error; a tape that already holds an error returns
 * that code and does nothing. Arguments are checked before anything is built or written:
 * a bad argument (NULL, a shape or dtype that does not fit, a tensor from another tape or
 * an earlier reset) changes nothing but the tape's error. Leaf gradients (tg_grad) are
 * never touched, and the tape's grad mode is as before the call. Cost is given in
 * forward passes (one evaluation of the function) and sweeps (one tg_gradients, each
 * about the cost of the function, a recorded one a little more). */
#ifndef TAPEGRAD_DERIVS_H
#define TAPEGRAD_DERIVS_H

#include "core.h"
#include "tape.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The most input elements (N) tg_jacobian and tg_hessian take: above it they return
 * TG_EARG. Each of their up to N sweeps keeps its tensors in the arena until the reset. */
#define TG_DERIVS_MAX_N 4096

/* A function of tensors for tg_jacobian: builds a tensor of any shape on tp from inputs,
 * or returns NULL with the error on the tape. The same type as tg_scalar_fn. */
typedef tg_tensor *(*tg_tensor_fn)(tg_tape *tp, tg_tensor *const *inputs, void *ctx);

/* Vector-Jacobian product: out[i] = uᵀ·∂y/∂xs[i], a tensor of xs[i]'s shape and dtype,
 * for i < n. It is tg_gradients(tp, y, u, n, xs, out, flags) under the name of
 * the product, with its arguments, results, errors and flags (u NULL only for a scalar
 * y, meaning 1). Cost: one sweep. */
TG_API int tg_vjp(tg_tape *tp, tg_tensor *y, tg_tensor *u, int n, tg_tensor *const *xs,
                  tg_tensor **out, unsigned flags);

/* Jacobian-vector product: *jv = Σ_i ∂y/∂xs[i]·v[i], a tensor on tp of y's shape and
 * dtype (the directional derivative of y along v), by the double-VJP trick: with a seed w
 * of y's shape that requires a gradient, the recorded sweep g = tg_gradients(y, w, xs,
 * TG_GRAD_RECORD) gives g_i = J_iᵀw, and the gradient of Σ_i sum(g_i·v_i) with respect
 * to w is J·v. y: recorded on tp, requiring a gradient; xs as for tg_gradients; v[i] of
 * xs[i]'s shape and dtype (a leaf or a tensor on tp; its values are read, and any
 * dependence of v on xs is not differentiated into the result). flags: 0, or
 * TG_GRAD_RECORD to record the second sweep too, so that *jv can be differentiated again
 * (in xs and in v). Exact zeros when y does not depend on xs. Cost: two sweeps over the
 * graph from xs to y (the first recorded), and no forward pass since y is recorded; the
 * forward pass that made y is the third part of a JVP's cost.
 * Errors: TG_EARG (tp, y, xs, v or jv NULL, n < 1, an x or y that needs no gradient,
 * unknown flags), TG_ESHAPE or TG_EDTYPE (v[i] does not match xs[i]), TG_ESTATE (y, an x
 * or a v[i] from another tape or an earlier reset; a custom op without a vjp between xs
 * and y), TG_ENOMEM. *jv is NULL on any error. */
TG_API int tg_jvp(tg_tape *tp, tg_tensor *y, int n, tg_tensor *const *xs, tg_tensor *const *v,
                  tg_tensor **jv, unsigned flags);

/* Hessian-vector product of a scalar function at its parameters: y = f(tp, params, ctx),
 * g = tg_gradients(y, params, TG_GRAD_RECORD), s = Σ_i sum(g_i·v_i) with the v_i copied
 * as constants, and hv = tg_gradients(s, params), so that
 * hv[i] = Σ_j ∂²y/∂params[i]∂params[j]·v[j]. f runs with grad mode on (restored after). params: n
 * >= 1 tensors that require a gradient (leaves, or tensors on tp), all of one dtype; v[i]:
 * params[i]'s shape and dtype (a leaf or a tensor on tp); hv[i]: a leaf of params[i]'s shape and
 * dtype that receives the product (it may be v[i]). loss (if not NULL) receives y's value, and grad
 * (if not NULL) grad[i], a leaf of params[i]'s shape and dtype, receives ∂y/∂params[i]. Results are
 * written only when the whole product succeeded. Exact zeros when the gradient does not depend on
 * the parameters (y linear in them, or not depending on them). Cost: one forward pass and two
 * sweeps (the first recorded), whatever the number of parameters. Errors: TG_EARG (tp, f, params, v
 * or hv NULL, or an entry of them; n < 1; a parameter that needs no gradient; hv[i] or grad[i] not
 * a leaf; f returned NULL with no error on the tape), TG_ESHAPE (v[i], hv[i] or grad[i] not of
 * params[i]'s shape; f's value not a scalar), TG_EDTYPE (their dtype not params[i]'s; params of
 * different dtypes), TG_ESTATE (a tensor from another tape or an earlier reset; a custom op without
 * a vjp in f), f's own error, TG_ENOMEM. On a bad argument f is not run; once it has run, its nodes
 * stay on the tape, and nothing is written on any error. */
TG_API int tg_hvp(tg_tape *tp, tg_scalar_fn f, void *ctx, int n, tg_tensor *const *params,
                  tg_tensor *const *v, tg_tensor *const *hv, double *loss, tg_tensor *const *grad);

/* Dense Jacobian of y = f(tp, inputs, ctx) (any shape, m elements) with respect to the
 * inputs that require a gradient (N elements in all, in input order, each input's
 * elements row-major): jac, a TG_F64 leaf of shape [m, N], receives jac[k][j] =
 * ∂y_k/∂x_j. Inputs that need no gradient are constants of f. f runs once, with grad
 * mode on (restored after). When m <= N, by rows: m sweeps of tg_gradients over the
 * graph of y, seeded with the unit vectors of y. When m > N, by columns: one recorded
 * sweep g = Jᵀw from a seed w that requires a gradient, then N sweeps over the graph of g,
 * each seeded with a unit vector of one g_i, giving ∂(Jᵀw)_j/∂w, column j of J: N JVPs
 * sharing their first sweep. Cost: one forward pass and min(m, N) sweeps (one more,
 * recorded, for columns). A y that depends on no input gives zeros.
 * Errors: TG_EARG (tp, f, inputs, an entry of inputs or jac NULL; n < 1; no input
 * requires a gradient; N > TG_DERIVS_MAX_N; jac not a leaf; f returned NULL with no error
 * on the tape), TG_EDTYPE (jac not TG_F64), TG_ESHAPE (jac not [m, N]), TG_ESTATE (an
 * input from another tape or an earlier reset; a custom op without a vjp in f), f's own
 * error, TG_ENOMEM. jac's shape is checked before f runs as far as it can be ([?, N]), and
 * its first size once f has given m: a wrong m leaves f's nodes on the tape and jac
 * unwritten. Errors in the arguments or in f leave jac untouched; it is written as the
 * sweeps go, so an error during them (TG_ENOMEM, a backward in ops that fails) may leave
 * it partly written. */
TG_API int tg_jacobian(tg_tape *tp, tg_tensor_fn f, void *ctx, int n, tg_tensor *const *inputs,
                       tg_tensor *jac);

/* Dense Hessian of the scalar y = f(tp, inputs, ctx) with respect to the inputs that
 * require a gradient (N elements, laid out as in tg_jacobian): hess, a TG_F64 leaf of
 * shape [N, N], receives hess[a][b] = ∂²y/∂x_a∂x_b. One recorded gradient g =
 * tg_gradients(y, inputs, TG_GRAD_RECORD), then for each a, one sweep over the graph of g
 * seeded with the unit vector of element a, giving row a (as tg_gradgradcheck does).
 * Rows are exactly what the backwards in ops give: symmetric up to rounding, not forced
 * to be. f runs once, with grad mode on (restored after). Cost: one forward pass, one
 * recorded sweep and N sweeps. Zeros when y is linear in those inputs (jointly) or does
 * not depend on them.
 * Errors as tg_jacobian, with TG_ESHAPE also for f's value not a scalar, and for hess not
 * [N, N] (checked before f runs). */
TG_API int tg_hessian(tg_tape *tp, tg_scalar_fn f, void *ctx, int n, tg_tensor *const *inputs,
                      tg_tensor *hess);

#ifdef __cplusplus
}
#endif
#endif
