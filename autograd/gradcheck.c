/* autograd/gradcheck.c: analytic gradients against central finite differences, in f64. */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static void free_inputs(int n, tg_tensor **c)
{
    if (!c) return;
    for (int i = 0; i < n; i++) tg_tensor_free(c[i]);
    free(c);
}

/* f64 copies of the inputs, with the caller's requires_grad flags. */
static tg_tensor **copy_inputs(int n, tg_tensor *const *in)
{
    tg_tensor **c = calloc((size_t)(n ? n : 1), sizeof *c);
    if (!c) return NULL;
    for (int i = 0; i < n; i++) {
        if (!in[i]) continue; /* the function sees NULL, as it would have */
        c[i] = tg_tensor_new(TG_F64, in[i]->ndim, in[i]->shape);
        if (!c[i]) {
            free_inputs(n, c);
            return NULL;
        }
        for (int64_t j = 0; j < in[i]->numel; j++) tg_set(c[i], j, tg_get(in[i], j));
        c[i]->requires_grad = in[i]->requires_grad;
    }
    return c;
}

/* Every error return goes through here and leaves a message in res->msg: returns code. */
static int failed(tg_gradcheck_result *res, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(res->msg, sizeof res->msg, fmt, ap);
    va_end(ap);
    if (!res->msg[0]) /* a tape error recorded with an empty message */
        snprintf(res->msg, sizeof res->msg, "tg_gradcheck: %s", tg_strerror(code));
    return code;
}

/* The tape's error, or what went wrong without one: f returned NULL, or no scalar. */
static int f_failed(tg_gradcheck_result *res, tg_tape *tp, const tg_tensor *y, const char *when)
{
    if (y) return failed(res, TG_ESHAPE, "tg_gradcheck: function did not return a scalar%s", when);
    if (tg_tape_errcode(tp) && tg_tape_error(tp)[0])
        return failed(res, tg_tape_errcode(tp), "%s", tg_tape_error(tp));
    return failed(res, tg_tape_errcode(tp) ? tg_tape_errcode(tp) : TG_EARG,
                  "tg_gradcheck: function returned NULL%s%s", when,
                  tg_tape_errcode(tp) ? "" : " with no error on the tape");
}

/* Evaluates f once in no-grad mode into *v; 0, or the error (with res->msg). */
static int eval(tg_tape *tp, tg_scalar_fn f, tg_tensor *const *in, void *ctx, uint64_t seed,
                tg_gradcheck_result *res, double *v)
{
    tg_tape_reset(tp);
    tg_tape_seed(tp, seed);
    tg_tape_set_grad_mode(tp, false);
    tg_tensor *y = f(tp, in, ctx);
    tg_tape_set_grad_mode(tp, true);
    if (!y || y->numel != 1) return f_failed(res, tp, y, " at a perturbed point");
    *v = tg_get(y, 0);
    return TG_OK;
}

int tg_gradcheck(tg_scalar_fn f, int n_inputs, tg_tensor *const *inputs, void *ctx,
                 const tg_gradcheck_opts *opts, tg_gradcheck_result *res)
{
    tg_gradcheck_result dummy;
    if (!res) res = &dummy;
    memset(res, 0, sizeof *res);
    res->worst_input = -1;
    if (!f || n_inputs < 0 || (n_inputs > 0 && !inputs))
        return failed(res, TG_EARG, "tg_gradcheck: bad arguments");
    double h0 = opts && opts->step > 0 ? opts->step : 1e-4;
    double rel_floor = opts && opts->rel_floor > 0 ? opts->rel_floor : 1e-3;
    uint64_t seed = opts ? opts->seed : 0;

    int rc = TG_OK;
    tg_tensor **x = copy_inputs(n_inputs, inputs);
    tg_tape *tp = x ? tg_tape_new() : NULL;
    if (!tp) {
        free_inputs(n_inputs, x);
        return failed(res, TG_ENOMEM, "tg_gradcheck: out of memory for %s",
                      x ? "its tape" : "the f64 copies of the inputs");
    }
    /* Analytic gradients: one recorded evaluation and one sweep. */
    for (int i = 0; i < n_inputs; i++)
        if (x[i] && x[i]->requires_grad && (rc = tg_zero_grad(x[i]))) {
            rc = failed(res, rc, "tg_gradcheck: out of memory for the gradient of input %d", i);
            goto done;
        }
    tg_tape_seed(tp, seed);
    tg_tensor *y = f(tp, x, ctx);
    if (!y || y->numel != 1) {
        rc = f_failed(res, tp, y, "");
        goto done;
    }
    if (y->requires_grad && (rc = tg_backward(tp, y))) {
        rc = failed(res, rc, "%s", tg_tape_error(tp));
        goto done;
    }
    /* Numeric gradients, element by element. */
    for (int i = 0; i < n_inputs; i++) {
        if (!x[i] || !x[i]->requires_grad) continue;
        double *v = tg_f64(x[i]);
        for (int64_t j = 0; j < x[i]->numel; j++) {
            double v0 = v[j], h = h0 * fmax(1.0, fabs(v0)), fv[4];
            const double k[4] = {-2, -1, 1, 2};
            for (int s = 0; s < 4 && !rc; s++) {
                v[j] = v0 + k[s] * h;
                rc = eval(tp, f, x, ctx, seed, res, &fv[s]);
            }
            v[j] = v0;
            if (rc) goto done;
            double num = (fv[0] - 8 * fv[1] + 8 * fv[2] - fv[3]) / (12 * h);
            const tg_tensor *gi = tg_grad(x[i]);
            double ana = gi ? tg_get(gi, j) : 0.0;
            if (isnan(num)) {
                rc = failed(res, TG_EARG,
                            "tg_gradcheck: input %d element %lld: the function is NaN near it "
                            "(f(x-2h), f(x-h), f(x+h), f(x+2h) = %g, %g, %g, %g with h = %g)",
                            i, (long long)j, fv[0], fv[1], fv[2], fv[3], h);
                goto done;
            }
            double abs_err = fabs(ana - num);
            double rel = abs_err / fmax(fmax(fabs(ana), fabs(num)), rel_floor);
            if (!(abs_err <= res->max_abs_err)) res->max_abs_err = abs_err; /* NaN sticks */
            if (!(rel <= res->max_rel_err) || res->worst_input < 0) {
                res->max_rel_err = isnan(rel) ? (double)INFINITY : fmax(rel, res->max_rel_err);
                res->worst_input = i;
                res->worst_index = j;
                res->worst_analytic = ana;
                res->worst_numeric = num;
            }
            res->n_checked++;
        }
    }
done:
    free_inputs(n_inputs, x);
    tg_tape_free(tp);
    return rc;
}

/* ---- second order ---- */

/* f's gradient at the inputs' current values by one recorded evaluation and tg_backward on
 * tp, written flat into g (the inputs that require a gradient, in order). */
static int eval_grad(tg_tape *tp, tg_scalar_fn f, int n, tg_tensor *const *x, void *ctx,
                     uint64_t seed, tg_gradcheck_result *res, double *g)
{
    tg_tape_reset(tp);
    tg_tape_seed(tp, seed);
    for (int i = 0; i < n; i++)
        if (x[i] && x[i]->requires_grad && tg_zero_grad(x[i]))
            return failed(res, TG_ENOMEM, "tg_gradgradcheck: out of memory for a gradient");
    tg_tensor *y = f(tp, x, ctx);
    if (!y || y->numel != 1) return f_failed(res, tp, y, " at a perturbed point");
    if (y->requires_grad && tg_backward(tp, y))
        return failed(res, tg_tape_errcode(tp), "%s", tg_tape_error(tp));
    for (int i = 0; i < n; i++) {
        if (!x[i] || !x[i]->requires_grad) continue;
        const tg_tensor *gi = tg_grad(x[i]);
        for (int64_t j = 0; j < x[i]->numel; j++) *g++ = gi ? tg_get(gi, j) : 0.0;
    }
    return TG_OK;
}

/* Records one comparison of an analytic and a numeric value into res. */
static void compare(tg_gradcheck_result *res, double ana, double num, double rel_floor, int a,
                    int64_t p, int b, int64_t q)
{
    double abs_err = fabs(ana - num);
    double rel = abs_err / fmax(fmax(fabs(ana), fabs(num)), rel_floor);
    if (!(abs_err <= res->max_abs_err)) res->max_abs_err = abs_err;
    if (!(rel <= res->max_rel_err) || res->worst_input < 0) {
        res->max_rel_err = isnan(rel) ? (double)INFINITY : fmax(rel, res->max_rel_err);
        res->worst_input = a, res->worst_index = p;
        res->worst_wrt = b, res->worst_wrt_index = q;
        res->worst_analytic = ana, res->worst_numeric = num;
    }
    res->n_checked++;
}

int tg_gradgradcheck(tg_scalar_fn f, int n_inputs, tg_tensor *const *inputs, void *ctx,
                     const tg_gradcheck_opts *opts, tg_gradcheck_result *res)
{
    tg_gradcheck_result dummy;
    if (!res) res = &dummy;
    memset(res, 0, sizeof *res);
    res->worst_input = res->worst_wrt = -1;
    if (!f || n_inputs < 0 || (n_inputs > 0 && !inputs))
        return failed(res, TG_EARG, "tg_gradgradcheck: bad arguments");
    double h0 = opts && opts->step > 0 ? opts->step : 1e-4;
    double rel_floor = opts && opts->rel_floor > 0 ? opts->rel_floor : 1e-3;
    uint64_t seed = opts ? opts->seed : 0;

    int rc = TG_OK, nx = 0;
    int64_t total = 0;
    tg_tensor **x = copy_inputs(n_inputs, inputs);
    tg_tensor **xr = calloc((size_t)n_inputs + 1, sizeof *xr);   /* inputs that require one */
    tg_tensor **g = calloc((size_t)n_inputs + 1, sizeof *g);     /* their recorded gradients */
    tg_tensor **col = calloc((size_t)n_inputs + 1, sizeof *col); /* one analytic column */
    int *which = calloc((size_t)n_inputs + 1, sizeof *which);
    double *fv = NULL;
    tg_tape *ta = tg_tape_new(), *tb = tg_tape_new();
    if (!x || !xr || !g || !col || !which || !ta || !tb) {
        rc = failed(res, TG_ENOMEM, "tg_gradgradcheck: out of memory");
        goto done;
    }
    for (int i = 0; i < n_inputs; i++)
        if (x[i] && x[i]->requires_grad) which[nx] = i, xr[nx++] = x[i], total += x[i]->numel;
    if (!(fv = malloc(sizeof *fv * (size_t)(4 * total + 1)))) {
        rc = failed(res, TG_ENOMEM, "tg_gradgradcheck: out of memory");
        goto done;
    }
    /* The gradient recorded on ta, and tg_backward's beside it. */
    for (int i = 0; i < nx; i++)
        if (tg_zero_grad(xr[i])) {
            rc = failed(res, TG_ENOMEM, "tg_gradgradcheck: out of memory for a gradient");
            goto done;
        }
    tg_tape_seed(ta, seed);
    tg_tensor *y = f(ta, x, ctx);
    if (!y || y->numel != 1) {
        rc = f_failed(res, ta, y, "");
        goto done;
    }
    if (nx == 0) goto done;
    if (!y->requires_grad) {
        rc = failed(res, TG_EARG, "tg_gradgradcheck: the function's value needs no gradient");
        goto done;
    }
    if (tg_gradients(ta, y, NULL, nx, xr, g, TG_GRAD_RECORD) || tg_backward(ta, y)) {
        rc = failed(res, tg_tape_errcode(ta), "%s", tg_tape_error(ta));
        goto done;
    }
    for (int i = 0; i < nx; i++)
        for (int64_t j = 0; j < xr[i]->numel; j++) {
            double a = tg_get(g[i], j), b = tg_get(tg_grad(xr[i]), j);
            double e = fabs(a - b) / fmax(fmax(fabs(a), fabs(b)), rel_floor);
            res->first_order_err = fmax(res->first_order_err, isnan(e) ? (double)INFINITY : e);
        }
    /* Column by column: the analytic one at x, then the numeric one around it. */
    for (int b = 0; b < nx; b++) {
        double *v = tg_f64(xr[b]);
        for (int64_t q = 0; q < xr[b]->numel; q++) {
            if (g[b]->requires_grad) {
                tg_tensor *e = tg_const(ta, "gradgradcheck", TG_F64, g[b]->ndim, g[b]->shape, 0);
                if (e) tg_f64(e)[q] = 1;
                if (!e || tg_gradients(ta, g[b], e, nx, xr, col, 0)) {
                    rc = failed(res, tg_tape_errcode(ta), "%s", tg_tape_error(ta));
                    goto done;
                }
            }
            double v0 = v[q], h = h0 * fmax(1.0, fabs(v0));
            const double k[4] = {-2, -1, 1, 2};
            for (int s = 0; s < 4 && !rc; s++) {
                v[q] = v0 + k[s] * h;
                rc = eval_grad(tb, f, n_inputs, x, ctx, seed, res, fv + s * total);
            }
            v[q] = v0;
            if (rc) goto done;
            int64_t at = 0;
            for (int a = 0; a < nx; a++)
                for (int64_t p = 0; p < xr[a]->numel; p++, at++) {
                    double num = (fv[at] - 8 * fv[total + at] + 8 * fv[2 * total + at] -
                                  fv[3 * total + at]) /
                                 (12 * h);
                    if (isnan(num)) {
                        rc = failed(res, TG_EARG,
                                    "tg_gradgradcheck: the gradient is NaN near input %d "
                                    "element %lld",
                                    which[b], (long long)q);
                        goto done;
                    }
                    double ana = g[b]->requires_grad ? tg_get(col[a], p) : 0.0;
                    compare(res, ana, num, rel_floor, which[a], p, which[b], q);
                }
        }
    }
done:
    free_inputs(n_inputs, x);
    free(xr), free(g), free(col), free(which), free(fv);
    tg_tape_free(ta);
    tg_tape_free(tb);
    return rc;
}
