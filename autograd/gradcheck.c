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
