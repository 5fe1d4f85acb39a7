/* autograd/gradcheck.c: analytic gradients against central finite differences, in f64. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* f64 copies of the inputs, with the caller's requires_grad flags. */
static tg_tensor **copy_inputs(int n, tg_tensor *const *in)
{
    tg_tensor **c = calloc((size_t)(n ? n : 1), sizeof *c);
    if (!c) return NULL;
    for (int i = 0; i < n; i++) {
        if (!in[i]) continue; /* the function sees NULL, as it would have */
        c[i] = tg_tensor_new(TG_F64, in[i]->ndim, in[i]->shape);
        if (!c[i]) goto fail;
        for (int64_t j = 0; j < in[i]->numel; j++) tg_set(c[i], j, tg_get(in[i], j));
        c[i]->requires_grad = in[i]->requires_grad;
    }
    return c;
fail:
    for (int i = 0; i < n; i++) tg_tensor_free(c[i]);
    free(c);
    return NULL;
}

/* Evaluates f once in no-grad mode; NaN (and the message in res) on failure. */
static double eval(tg_tape *tp, tg_scalar_fn f, tg_tensor *const *in, void *ctx, uint64_t seed,
                   tg_gradcheck_result *res)
{
    tg_tape_reset(tp);
    tg_tape_seed(tp, seed);
    tg_tape_set_grad_mode(tp, false);
    tg_tensor *y = f(tp, in, ctx);
    tg_tape_set_grad_mode(tp, true);
    if (!y || y->numel != 1) {
        snprintf(res->msg, sizeof res->msg, "%s", y ? "function did not return a scalar"
                                                    : tg_tape_error(tp));
        return (double)NAN;
    }
    return tg_get(y, 0);
}

int tg_gradcheck(tg_scalar_fn f, int n_inputs, tg_tensor *const *inputs, void *ctx,
                 const tg_gradcheck_opts *opts, tg_gradcheck_result *res)
{
    tg_gradcheck_result dummy;
    if (!res) res = &dummy;
    memset(res, 0, sizeof *res);
    res->worst_input = -1;
    if (!f || n_inputs < 0 || (n_inputs > 0 && !inputs)) {
        snprintf(res->msg, sizeof res->msg, "tg_gradcheck: bad arguments");
        return TG_EARG;
    }
    double h0 = opts && opts->step > 0 ? opts->step : 1e-4;
    double rel_floor = opts && opts->rel_floor > 0 ? opts->rel_floor : 1e-3;
    uint64_t seed = opts ? opts->seed : 0;

    int rc = TG_OK;
    tg_tape *tp = tg_tape_new();
    tg_tensor **x = copy_inputs(n_inputs, inputs);
    if (!tp || !x) {
        snprintf(res->msg, sizeof res->msg, "tg_gradcheck: out of memory");
        tg_tape_free(tp);
        free(x);
        return TG_ENOMEM;
    }
    /* Analytic gradients: one recorded evaluation and one sweep. */
    for (int i = 0; i < n_inputs; i++)
        if (x[i] && x[i]->requires_grad && (rc = tg_zero_grad(x[i]))) goto done;
    tg_tape_seed(tp, seed);
    tg_tensor *y = f(tp, x, ctx);
    if (!y) {
        rc = tg_tape_errcode(tp) ? tg_tape_errcode(tp) : TG_EARG;
        snprintf(res->msg, sizeof res->msg, "%s", tg_tape_error(tp));
        goto done;
    }
    if (y->numel != 1) {
        rc = TG_ESHAPE;
        snprintf(res->msg, sizeof res->msg, "tg_gradcheck: function did not return a scalar");
        goto done;
    }
    if (y->requires_grad && (rc = tg_backward(tp, y))) {
        snprintf(res->msg, sizeof res->msg, "%s", tg_tape_error(tp));
        goto done;
    }
    /* Numeric gradients, element by element. */
    for (int i = 0; i < n_inputs; i++) {
        if (!x[i] || !x[i]->requires_grad) continue;
        double *v = tg_f64(x[i]);
        for (int64_t j = 0; j < x[i]->numel; j++) {
            double v0 = v[j], h = h0 * fmax(1.0, fabs(v0)), fv[4];
            const double k[4] = {-2, -1, 1, 2};
            for (int s = 0; s < 4; s++) {
                v[j] = v0 + k[s] * h;
                fv[s] = eval(tp, f, x, ctx, seed, res);
            }
            v[j] = v0;
            double num = (fv[0] - 8 * fv[1] + 8 * fv[2] - fv[3]) / (12 * h);
            const tg_tensor *gi = tg_grad(x[i]);
            double ana = gi ? tg_get(gi, j) : 0.0;
            if (isnan(num)) {
                rc = TG_EARG;
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
    for (int i = 0; i < n_inputs; i++) tg_tensor_free(x[i]);
    free(x);
    tg_tape_free(tp);
    return rc;
}
