/* autograd/derivs.c: derivative products built on tg_gradients (include/tapegrad/derivs.h):
 * Hessian-vector, Jacobian-vector and vector-Jacobian products, dense Jacobians and
 * Hessians. Each checks its arguments before building anything, then composes recorded and
 * plain sweeps of tg_gradients on the caller's tape. */
#include <stdio.h>
#include <string.h>

#include "internal.h"

static bool same_shape(const tg_tensor *a, const tg_tensor *b)
{
    return a->ndim == b->ndim && memcmp(a->shape, b->shape, sizeof(int64_t) * (size_t)a->ndim) == 0;
}

/* A zero tensor on tp of like's shape and dtype that requires a gradient but has no node:
 * the seed w of the double-VJP trick. tg_gradients takes it as a seed and as an x (an
 * arena tensor of the current generation that requires a gradient). */
static tg_tensor *grad_seed(tg_tape *tp, const char *who, const tg_tensor *like)
{
    tg_tensor *t = tg_const(tp, who, (tg_dtype)like->dtype, like->ndim, like->shape, 0);
    if (t) t->requires_grad = true;
    return t;
}

/* "what i", or "what" alone for i < 0: how messages name a tensor. */
static const char *name(char *buf, size_t size, const char *what, int i)
{
    if (i < 0) snprintf(buf, size, "%s", what);
    else snprintf(buf, size, "%s %d", what, i);
    return buf;
}

/* t (the what of index i) must be non-NULL and usable on tp; 0 or the error (recorded). */
static int check_usable(tg_tape *tp, const char *who, const char *what, int i, const tg_tensor *t)
{
    char nm[64];
    if (!t) return tg_fail(tp, TG_EARG, "tg_%s: %s is NULL", who, name(nm, sizeof nm, what, i));
    if (!tg_tensor_usable(tp, t))
        return tg_fail(tp, TG_ESTATE,
                       "tg_%s: %s belongs to another tape or was made before tg_tape_reset", who,
                       name(nm, sizeof nm, what, i));
    return TG_OK;
}

/* t must have like's shape and dtype (like is the what of index i's reference, named
 * ref); 0 or the error. */
static int check_like(tg_tape *tp, const char *who, const char *what, int i, const tg_tensor *t,
                      const char *ref, const tg_tensor *like)
{
    char a[96], b[96];
    if (t->dtype != like->dtype)
        return tg_fail(tp, TG_EDTYPE, "tg_%s: %s %d is %s, %s %d is %s: they must match", who, what,
                       i, tg_dtype_name((tg_dtype)t->dtype), ref, i,
                       tg_dtype_name((tg_dtype)like->dtype));
    if (!same_shape(t, like))
        return tg_fail(tp, TG_ESHAPE, "tg_%s: %s %d has shape %s, %s %d has %s: they must match",
                       who, what, i, tg_shape_str(t, a, sizeof a), ref, i,
                       tg_shape_str(like, b, sizeof b));
    return TG_OK;
}

/* A caller's output tensor: non-NULL, usable, a leaf; 0 or the error. */
static int check_leaf(tg_tape *tp, const char *who, const char *what, int i, const tg_tensor *t)
{
    char nm[64];
    int rc = check_usable(tp, who, what, i, t);
    if (rc) return rc;
    if (!t->leaf)
        return tg_fail(tp, TG_EARG,
                       "tg_%s: %s is not a leaf (results go into caller-owned "
                       "tensors from tg_tensor_new)",
                       who, name(nm, sizeof nm, what, i));
    return TG_OK;
}

/* An x of tg_gradients: usable and requiring a gradient; 0 or the error. */
static int check_x(tg_tape *tp, const char *who, const char *what, int i, const tg_tensor *t)
{
    char nm[64];
    int rc = check_usable(tp, who, what, i, t);
    if (rc) return rc;
    if (!t->requires_grad)
        return tg_fail(tp, TG_EARG, "tg_%s: %s does not require a gradient", who,
                       name(nm, sizeof nm, what, i));
    return TG_OK;
}

/* Σ_i sum(g_i·v_i) over the g_i that require a gradient: NULL when there is none (the sum
 * is then a constant) or on an error (tp->err says which). */
static tg_tensor *dot_sum(tg_tape *tp, int n, tg_tensor *const *g, tg_tensor *const *v)
{
    tg_tensor *s = NULL;
    for (int i = 0; i < n && !tp->err; i++) {
        if (!g[i]->requires_grad) continue;
        tg_tensor *t = tg_sum(tp, tg_mul(tp, g[i], v[i]), TG_ALL_AXES, false);
        s = s ? tg_add(tp, s, t) : t;
    }
    return tp->err ? NULL : s;
}

/* Writes t's elements as doubles to dst[0], dst[stride], ... */
static void put(double *dst, int64_t stride, const tg_tensor *t)
{
    if (t->dtype == TG_F32)
        for (int64_t i = 0; i < t->numel; i++) dst[i * stride] = (double)tg_f32(t)[i];
    else
        for (int64_t i = 0; i < t->numel; i++) dst[i * stride] = tg_f64(t)[i];
}

/* Sets element i of a seed (0 or 1). */
static void set_unit(tg_tensor *e, int64_t i, double v)
{
    if (e->dtype == TG_F32) tg_f32(e)[i] = (float)v;
    else tg_f64(e)[i] = v;
}

/* The error for f returning NULL, or a y that is not usable; 0 for a usable y. */
static int check_y(tg_tape *tp, const char *who, const tg_tensor *y)
{
    if (tp->err) return tp->err;
    if (!y)
        return tg_fail(tp, TG_EARG,
                       "tg_%s: the function returned NULL with no error on "
                       "the tape",
                       who);
    if (!tg_tensor_usable(tp, y))
        return tg_fail(tp, TG_ESTATE,
                       "tg_%s: the function returned a tensor of another tape or "
                       "from before tg_tape_reset",
                       who);
    return TG_OK;
}

int tg_vjp(tg_tape *tp, tg_tensor *y, tg_tensor *u, int n, tg_tensor *const *xs, tg_tensor **out,
           unsigned flags)
{
    return tg_gradients(tp, y, u, n, xs, out, flags);
}

int tg_jvp(tg_tape *tp, tg_tensor *y, int n, tg_tensor *const *xs, tg_tensor *const *v,
           tg_tensor **jv, unsigned flags)
{
    if (jv) *jv = NULL;
    if (!tp) return TG_EARG;
    if (tp->err) return tp->err;
    if (flags & ~(unsigned)TG_GRAD_RECORD)
        return tg_fail(tp, TG_EARG, "tg_jvp: unknown flags 0x%x", flags);
    if (!y || n < 1 || !xs || !v || !jv)
        return tg_fail(tp, TG_EARG, "tg_jvp: bad arguments (y %s, n = %d, xs %s, v %s, jv %s)",
                       y ? "set" : "NULL", n, xs ? "set" : "NULL", v ? "set" : "NULL",
                       jv ? "set" : "NULL");
    int rc = check_x(tp, "jvp", "y", -1, y);
    for (int i = 0; i < n && !rc; i++)
        if (!(rc = check_x(tp, "jvp", "input", i, xs[i])) &&
            !(rc = check_usable(tp, "jvp", "v", i, v[i])))
            rc = check_like(tp, "jvp", "v", i, v[i], "input", xs[i]);
    if (rc) return rc;

    tg_tensor **g = tg_arena_alloc(tp, sizeof *g * (size_t)n);
    tg_tensor *w = g ? grad_seed(tp, "jvp", y) : NULL;
    if (!w) return tg_fail(tp, TG_ENOMEM, "tg_jvp: out of memory");
    bool mode = tp->grad_mode;
    tp->grad_mode = true; /* Σ g_i·v_i is recorded, to be differentiated in w */
    if (!tg_gradients(tp, y, w, n, xs, g, TG_GRAD_RECORD)) {
        tg_tensor *s = dot_sum(tp, n, g, v);
        if (s) tg_gradients(tp, s, NULL, 1, &w, jv, flags);
        else if (!tp->err) /* J·v does not depend on w: y does not depend on xs */
            *jv = tg_const(tp, "jvp", (tg_dtype)y->dtype, y->ndim, y->shape, 0);
    }
    tp->grad_mode = mode;
    if (tp->err) *jv = NULL;
    return tp->err;
}

int tg_hvp(tg_tape *tp, tg_scalar_fn f, void *ctx, int n, tg_tensor *const *params,
           tg_tensor *const *v, tg_tensor *const *hv, double *loss, tg_tensor *const *grad)
{
    if (!tp) return TG_EARG;
    if (tp->err) return tp->err;
    if (!f || n < 1 || !params || !v || !hv)
        return tg_fail(tp, TG_EARG, "tg_hvp: bad arguments (f %s, n = %d, params %s, v %s, hv %s)",
                       f ? "set" : "NULL", n, params ? "set" : "NULL", v ? "set" : "NULL",
                       hv ? "set" : "NULL");
    int rc = TG_OK;
    for (int i = 0; i < n && !rc; i++) {
        if ((rc = check_x(tp, "hvp", "parameter", i, params[i]))) break;
        if (params[i]->dtype != params[0]->dtype) {
            rc = tg_fail(tp, TG_EDTYPE,
                         "tg_hvp: parameter %d is %s, parameter 0 %s: they must "
                         "share one dtype",
                         i, tg_dtype_name((tg_dtype)params[i]->dtype),
                         tg_dtype_name((tg_dtype)params[0]->dtype));
            break;
        }
        if ((rc = check_usable(tp, "hvp", "v", i, v[i])) ||
            (rc = check_like(tp, "hvp", "v", i, v[i], "parameter", params[i])) ||
            (rc = check_leaf(tp, "hvp", "hv", i, hv[i])) ||
            (rc = check_like(tp, "hvp", "hv", i, hv[i], "parameter", params[i])))
            break;
        if (grad && ((rc = check_leaf(tp, "hvp", "grad", i, grad[i])) ||
                     (rc = check_like(tp, "hvp", "grad", i, grad[i], "parameter", params[i]))))
            break;
    }
    if (rc) return rc;

    /* v as constants, g the recorded gradient, h the product (NULL entries: zeros) */
    tg_tensor **vc = tg_arena_alloc(tp, sizeof *vc * 3 * (size_t)n);
    if (!vc) return tg_fail(tp, TG_ENOMEM, "tg_hvp: out of memory");
    tg_tensor **g = vc + n, **h = g + n;
    for (int i = 0; i < n; i++) {
        g[i] = h[i] = NULL;
        vc[i] = tg_const(tp, "hvp", (tg_dtype)v[i]->dtype, v[i]->ndim, v[i]->shape, 0);
        if (!vc[i]) return tp->err;
        memcpy(vc[i]->data, v[i]->data, (size_t)v[i]->numel * tg_dtype_size((tg_dtype)v[i]->dtype));
    }
    bool mode = tp->grad_mode;
    tp->grad_mode = true;
    tg_tensor *y = f(tp, params, ctx);
    rc = check_y(tp, "hvp", y);
    if (!rc && y->numel != 1) {
        char a[96];
        rc = tg_fail(tp, TG_ESHAPE, "tg_hvp: the function returned %s, not a scalar",
                     tg_shape_str(y, a, sizeof a));
    }
    /* A y that needs no gradient does not depend on the parameters: g and h are zeros. */
    if (!rc && y->requires_grad && !tg_gradients(tp, y, NULL, n, params, g, TG_GRAD_RECORD)) {
        tg_tensor *s = dot_sum(tp, n, g, vc);
        if (s) tg_gradients(tp, s, NULL, n, params, h, 0);
    }
    tp->grad_mode = mode;
    if (tp->err) return tp->err;

    if (loss) *loss = tg_get(y, 0);
    for (int i = 0; i < n; i++) {
        size_t bytes = (size_t)params[i]->numel * tg_dtype_size((tg_dtype)params[i]->dtype);
        if (h[i]) memcpy(hv[i]->data, h[i]->data, bytes);
        else memset(hv[i]->data, 0, bytes);
        if (!grad) continue;
        if (g[i]) memcpy(grad[i]->data, g[i]->data, bytes);
        else memset(grad[i]->data, 0, bytes);
    }
    return TG_OK;
}

/* ---- dense Jacobians and Hessians ---- */

/* What tg_jacobian and tg_hessian share: the inputs that require a gradient. */
typedef struct dense {
    int nx;         /* how many */
    int64_t N;      /* their elements */
    tg_tensor **xs; /* nx of them, then room for two arrays of nx gradients */
    int64_t *off;   /* where each one's elements start in a row */
} dense;

/* Checks the arguments (out must be [rows, N], rows < 0 for any) and fills d; 0 or the
 * error. */
static int dense_args(tg_tape *tp, const char *who, bool f, int n, tg_tensor *const *inputs,
                      const tg_tensor *out, bool square, dense *d)
{
    if (!f || n < 1 || !inputs || !out)
        return tg_fail(tp, TG_EARG, "tg_%s: bad arguments (f %s, n = %d, inputs %s, %s %s)", who,
                       f ? "set" : "NULL", n, inputs ? "set" : "NULL", square ? "hess" : "jac",
                       out ? "set" : "NULL");
    d->nx = 0, d->N = 0;
    for (int i = 0; i < n; i++) {
        int rc = check_usable(tp, who, "input", i, inputs[i]);
        if (rc) return rc;
        if (inputs[i]->requires_grad) d->nx++, d->N += inputs[i]->numel;
    }
    if (!d->nx) return tg_fail(tp, TG_EARG, "tg_%s: no input requires a gradient", who);
    if (d->N > TG_DERIVS_MAX_N)
        return tg_fail(tp, TG_EARG,
                       "tg_%s: the inputs have %lld elements, more than "
                       "TG_DERIVS_MAX_N (%d)",
                       who, (long long)d->N, TG_DERIVS_MAX_N);
    const char *nm = square ? "hess" : "jac";
    int rc = check_leaf(tp, who, nm, -1, out);
    if (rc) return rc;
    char a[96];
    if (out->dtype != TG_F64)
        return tg_fail(tp, TG_EDTYPE, "tg_%s: %s must be f64, got %s", who, nm,
                       tg_dtype_name((tg_dtype)out->dtype));
    if (out->ndim != 2 || out->shape[1] != d->N || (square && out->shape[0] != d->N))
        return square ? tg_fail(tp, TG_ESHAPE,
                                "tg_hessian: hess has shape %s, it must be "
                                "[%lld,%lld]",
                                tg_shape_str(out, a, sizeof a), (long long)d->N, (long long)d->N)
                      : tg_fail(tp, TG_ESHAPE,
                                "tg_jacobian: jac has shape %s, it must be "
                                "[m,%lld] (m: the elements of f's value)",
                                tg_shape_str(out, a, sizeof a), (long long)d->N);
    d->xs = tg_arena_alloc(tp, sizeof *d->xs * 3 * (size_t)d->nx);
    d->off = tg_arena_alloc(tp, sizeof *d->off * (size_t)d->nx);
    if (!d->xs || !d->off) return tg_fail(tp, TG_ENOMEM, "tg_%s: out of memory", who);
    memset(d->off, 0, sizeof *d->off * (size_t)d->nx);
    int k = 0;
    int64_t at = 0;
    for (int i = 0; i < n; i++)
        if (inputs[i]->requires_grad)
            d->off[k] = at, at += inputs[i]->numel, d->xs[k++] = inputs[i];
    return TG_OK;
}

/* By rows: row k is the gradient seeded with the unit vector e_k of y. */
static void jac_rows(tg_tape *tp, tg_tensor *y, const dense *d, double *J)
{
    tg_tensor **g = d->xs + d->nx;
    tg_tensor *e = tg_const(tp, "jacobian", (tg_dtype)y->dtype, y->ndim, y->shape, 0);
    for (int64_t k = 0; e && k < y->numel; k++) {
        set_unit(e, k, 1);
        if (tg_gradients(tp, y, e, d->nx, d->xs, g, 0)) return;
        for (int i = 0; i < d->nx; i++) put(J + k * d->N + d->off[i], 1, g[i]);
        set_unit(e, k, 0); /* after reading: a gradient may be the seed itself (y an x) */
    }
}

/* By columns: g = Jᵀw recorded once; column j is the gradient of g_j in w. */
static void jac_cols(tg_tape *tp, tg_tensor *y, const dense *d, double *J)
{
    if (!d->xs || d->nx < 1) return; /* dense_args made them */
    tg_tensor **g = d->xs + d->nx, *w = grad_seed(tp, "jacobian", y), *col;
    if (!w || tg_gradients(tp, y, w, d->nx, d->xs, g, TG_GRAD_RECORD)) return;
    int64_t m = y->numel;
    for (int b = 0; b < d->nx; b++) {
        tg_tensor *e = NULL;
        if (g[b]->requires_grad &&
            !(e = tg_const(tp, "jacobian", (tg_dtype)g[b]->dtype, g[b]->ndim, g[b]->shape, 0)))
            return;
        for (int64_t q = 0; q < g[b]->numel; q++) {
            double *c = J + d->off[b] + q;
            if (!e) { /* g_b does not depend on w: these columns of J are zero */
                for (int64_t k = 0; k < m; k++) c[k * d->N] = 0;
                continue;
            }
            set_unit(e, q, 1);
            if (tg_gradients(tp, g[b], e, 1, &w, &col, 0)) return;
            put(c, d->N, col);
            set_unit(e, q, 0);
        }
    }
}

int tg_jacobian(tg_tape *tp, tg_tensor_fn f, void *ctx, int n, tg_tensor *const *inputs,
                tg_tensor *jac)
{
    if (!tp) return TG_EARG;
    if (tp->err) return tp->err;
    dense d = {0};
    int rc = dense_args(tp, "jacobian", f != NULL, n, inputs, jac, false, &d);
    if (rc || !f) return rc ? rc : TG_EARG;
    bool mode = tp->grad_mode;
    tp->grad_mode = true;
    tg_tensor *y = f(tp, inputs, ctx);
    rc = check_y(tp, "jacobian", y);
    if (!rc && jac->shape[0] != y->numel) {
        char a[96], b[96];
        rc = tg_fail(tp, TG_ESHAPE,
                     "tg_jacobian: jac has shape %s, the function's value %s "
                     "has %lld elements: it must be [%lld,%lld]",
                     tg_shape_str(jac, a, sizeof a), tg_shape_str(y, b, sizeof b),
                     (long long)y->numel, (long long)y->numel, (long long)d.N);
    }
    if (!rc) {
        if (!y->requires_grad) memset(jac->data, 0, sizeof(double) * (size_t)jac->numel);
        else if (y->numel <= d.N) jac_rows(tp, y, &d, tg_f64(jac));
        else jac_cols(tp, y, &d, tg_f64(jac));
    }
    tp->grad_mode = mode;
    return tp->err;
}

int tg_hessian(tg_tape *tp, tg_scalar_fn f, void *ctx, int n, tg_tensor *const *inputs,
               tg_tensor *hess)
{
    if (!tp) return TG_EARG;
    if (tp->err) return tp->err;
    dense d = {0};
    int rc = dense_args(tp, "hessian", f != NULL, n, inputs, hess, true, &d);
    if (rc || !f) return rc ? rc : TG_EARG;
    bool mode = tp->grad_mode;
    tp->grad_mode = true;
    tg_tensor *y = f(tp, inputs, ctx);
    rc = check_y(tp, "hessian", y);
    if (!rc && y->numel != 1) {
        char a[96];
        rc = tg_fail(tp, TG_ESHAPE, "tg_hessian: the function returned %s, not a scalar",
                     tg_shape_str(y, a, sizeof a));
    }
    double *H = tg_f64(hess);
    if (!rc && (!d.xs || d.nx < 1)) rc = TG_EARG; /* dense_args made them */
    tg_tensor **g = d.xs + d.nx, **r = g + d.nx;
    if (!rc && !y->requires_grad) memset(H, 0, sizeof(double) * (size_t)hess->numel);
    else if (!rc && !tg_gradients(tp, y, NULL, d.nx, d.xs, g, TG_GRAD_RECORD)) {
        /* row a = off[b] + q: the gradient of g_b[q], seeded by a unit vector of g_b */
        for (int b = 0; b < d.nx && !tp->err; b++) {
            tg_tensor *e = NULL;
            if (g[b]->requires_grad &&
                !(e = tg_const(tp, "hessian", (tg_dtype)g[b]->dtype, g[b]->ndim, g[b]->shape, 0)))
                break;
            for (int64_t q = 0; q < g[b]->numel; q++) {
                double *row = H + (d.off[b] + q) * d.N;
                if (!e) { /* g_b is constant: the rows are zero */
                    memset(row, 0, sizeof(double) * (size_t)d.N);
                    continue;
                }
                set_unit(e, q, 1);
                if (tg_gradients(tp, g[b], e, d.nx, d.xs, r, 0)) break;
                for (int i = 0; i < d.nx; i++) put(row + d.off[i], 1, r[i]);
                set_unit(e, q, 0);
            }
        }
    }
    tp->grad_mode = mode;
    return tp->err;
}
