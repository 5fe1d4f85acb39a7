/* ops/cases.c: runs the op self-check cases (ops/cases.h). */
#include <stdlib.h>

#include "cases.h"

/* ---- tg_case_dot: a fixed weighted sum ---- */
static double case_w(int64_t i) { return sin(1.3 * (double)i + 0.5) + 0.25; }

static void dot_fwd(void *ctx, int n_in, const tg_tensor *const *in, tg_tensor *out)
{
    (void)ctx, (void)n_in;
    double s = 0;
    for (int64_t i = 0; i < in[0]->numel; i++) s += case_w(i) * tg_get(in[0], i);
    tg_set(out, 0, s);
}

static void dot_bwd(void *ctx, int n_in, const tg_tensor *const *in, const tg_tensor *out,
                    const tg_tensor *dout, tg_tensor *const *din)
{
    (void)ctx, (void)n_in, (void)out;
    double g = tg_get(dout, 0);
    if (din[0])
        for (int64_t i = 0; i < in[0]->numel; i++)
            tg_set(din[0], i, tg_get(din[0], i) + g * case_w(i));
}

/* dy · w, with w a constant: the second derivative of a linear map is 0. */
static tg_tensor *dot_vjp(void *ctx, tg_tape *tp, int n_in, tg_tensor *const *in, tg_tensor *out,
                          tg_tensor *dout, int i)
{
    (void)ctx, (void)n_in, (void)out, (void)i;
    tg_tensor *w = tg_const_like(tp, in[0], 0);
    if (!w) return NULL;
    for (int64_t j = 0; j < w->numel; j++) tg_set(w, j, case_w(j));
    return tg_mul(tp, dout, w);
}

static const tg_custom_op case_dot_op = {"case_dot", dot_fwd, dot_bwd, dot_vjp};

tg_tensor *tg_case_dot(tg_tape *tp, tg_tensor *y)
{
    return tg_custom(tp, &case_dot_op, NULL, 1, &y, 0, NULL);
}

/* ---- the case list ---- */
typedef struct family {
    const tg_op_case *cases;
    const int *n;
} family;

#define X(fam) {tg_cases_##fam, &tg_n_cases_##fam},
static const family families[] = {TG_CASE_FAMILIES(X)};
#undef X

static const tg_op_case *case_at(int i)
{
    if (i < 0) return NULL;
    for (size_t f = 0; f < sizeof families / sizeof families[0]; f++) {
        if (i < *families[f].n) return &families[f].cases[i];
        i -= *families[f].n;
    }
    return NULL;
}

int tg_selfcheck_count(void)
{
    int n = 0;
    for (size_t f = 0; f < sizeof families / sizeof families[0]; f++) n += *families[f].n;
    return n;
}

const char *tg_selfcheck_op(int i, const char **what)
{
    const tg_op_case *c = case_at(i);
    if (what) *what = c ? c->what : NULL;
    return c ? c->op : NULL;
}

int tg_op_count(void) { return TG_OP_COUNT; }
const char *tg_op_name(int i) { return i >= 0 && i < TG_OP_COUNT ? tg_op_table[i].name : NULL; }

/* Inputs of case c in dtype dt, filled from a generator seeded by the case number. */
static int make_inputs(const tg_op_case *c, int idx, tg_dtype dt, tg_tensor **in)
{
    tg_rng rng;
    tg_rng_seed(&rng, 1000 + (uint64_t)idx);
    double lo = c->lo, hi = c->hi;
    if (lo == 0 && hi == 0) lo = -1, hi = 1;
    tg_tensor *f64[TG_CASE_MAX_IN] = {0};
    int rc = TG_OK;
    for (int i = 0; i < c->n_in && !rc; i++) {
        f64[i] = tg_tensor_new(TG_F64, c->ndim[i], c->shape[i]);
        if (!f64[i]) rc = TG_ENOMEM;
        else tg_tensor_rand_uniform(f64[i], lo, hi, &rng);
    }
    if (!rc && c->init) c->init(f64, c->arg, &rng);
    for (int i = 0; i < c->n_in; i++) {
        in[i] = NULL;
        if (rc) continue;
        in[i] = dt == TG_F64 ? tg_tensor_clone(f64[i]) : tg_tensor_new(dt, c->ndim[i], c->shape[i]);
        if (!in[i]) {
            rc = TG_ENOMEM;
            continue;
        }
        if (dt != TG_F64) tg_tensor_copy(in[i], f64[i]);
        if (!(c->no_grad & (1u << i))) tg_set_requires_grad(in[i], true);
    }
    for (int i = 0; i < c->n_in; i++) tg_tensor_free(f64[i]);
    return rc;
}

static void free_inputs(int n, tg_tensor **in)
{
    for (int i = 0; i < n; i++) tg_tensor_free(in[i]), in[i] = NULL;
}

static bool records(const tg_tape *tp, const char *op)
{
    for (const tg_node *n = tg_tape_first(tp); n; n = tg_node_next(n))
        if (strcmp(tg_node_op(n), op) == 0) return true;
    return false;
}

/* |a - b| relative to max(1, |b|). */
static double rel1(double a, double b) { return fabs(a - b) / fmax(1.0, fabs(b)); }

int tg_selfcheck_run(int idx, tg_selfcheck_result *res)
{
    const tg_op_case *c = case_at(idx);
    if (!res) return TG_EARG;
    memset(res, 0, sizeof *res);
    if (!c) {
        snprintf(res->grad.msg, sizeof res->grad.msg, "tg_selfcheck_run: no case %d", idx);
        return TG_EARG;
    }
    res->op = c->op, res->what = c->what;
    tg_tensor *x64[TG_CASE_MAX_IN] = {0}, *x32[TG_CASE_MAX_IN] = {0};
    int rc = make_inputs(c, idx, TG_F64, x64);
    if (!rc) rc = make_inputs(c, idx, TG_F32, x32);
    if (rc) {
        free_inputs(c->n_in, x64), free_inputs(c->n_in, x32);
        snprintf(res->grad.msg, sizeof res->grad.msg, "tg_selfcheck_run: out of memory");
        return rc;
    }
    rc = tg_gradcheck(c->fn, c->n_in, x64, (void *)c->arg, NULL, &res->grad);
    if (!rc) {
        rc = tg_gradgradcheck(c->fn, c->n_in, x64, (void *)c->arg, NULL, &res->grad2);
        if (rc)
            snprintf(res->grad.msg, sizeof res->grad.msg, "second order: %.240s", res->grad2.msg);
    }

    /* f32 against f64: the value and every gradient, from one recorded pass each. */
    tg_tape *t64 = tg_tape_new(), *t32 = tg_tape_new();
    if (!rc && (!t64 || !t32)) rc = TG_ENOMEM;
    if (!rc) {
        /* Unset gradients hold NaN on these tapes, and the inputs' gradients start unset: a
         * backward that adds into a gradient it should write (forgetting tg_grad_beta)
         * makes NaN, where stale bytes could have passed unseen. */
        t64->poison_grads = t32->poison_grads = true;
        for (int i = 0; i < c->n_in && !rc; i++) {
            if (!tg_requires_grad(x64[i])) continue;
            if (tg_zero_grad(x64[i]) || tg_zero_grad(x32[i])) rc = TG_ENOMEM; /* allocates */
            tg_zero_grad(x64[i]), tg_zero_grad(x32[i]);                       /* marks unset */
        }
    }
    if (!rc) {
        tg_tensor *y64 = c->fn(t64, x64, (void *)c->arg), *y32 = c->fn(t32, x32, (void *)c->arg);
        if (!y64 || !y32) {
            rc = TG_EARG;
            snprintf(res->grad.msg, sizeof res->grad.msg, "%s",
                     y64 ? tg_tape_error(t32) : tg_tape_error(t64));
        } else if (!records(t64, c->op)) {
            rc = TG_ESTATE;
            snprintf(res->grad.msg, sizeof res->grad.msg,
                     "tg_selfcheck_run: case '%s' does not record op %s", c->what, c->op);
        } else if (tg_backward(t64, y64) || tg_backward(t32, y32)) {
            rc = TG_EARG;
            snprintf(res->grad.msg, sizeof res->grad.msg, "%s %s", tg_tape_error(t64),
                     tg_tape_error(t32));
        } else {
            double e = rel1(tg_get(y32, 0), tg_get(y64, 0));
            for (int i = 0; i < c->n_in && !rc; i++) {
                const tg_tensor *g64 = tg_grad(x64[i]), *g32 = tg_grad(x32[i]);
                if (!g64 || !g32) continue;
                for (int64_t j = 0; j < tg_tensor_numel(g64) && !rc; j++) {
                    double a = tg_get(g32, j), b = tg_get(g64, j);
                    if (!isfinite(a) || !isfinite(b)) {
                        rc = TG_ESTATE;
                        snprintf(res->grad.msg, sizeof res->grad.msg,
                                 "tg_selfcheck_run: case '%s': gradient %d of input %d is %g "
                                 "(%s) with unset gradients holding NaN: a backward adds "
                                 "where it should write (tg_grad_beta)",
                                 c->what, (int)j, i, isfinite(a) ? b : a,
                                 isfinite(a) ? "f64" : "f32");
                    }
                    e = fmax(e, rel1(a, b));
                }
            }
            res->f32_err = rc ? (double)INFINITY : e;
        }
    }
    tg_tape_free(t64);
    tg_tape_free(t32);
    free_inputs(c->n_in, x64);
    free_inputs(c->n_in, x32);
    return rc;
}
