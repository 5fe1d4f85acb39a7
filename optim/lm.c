/* optim/lm.c: Levenberg-Marquardt for least-squares losses Σe² (tg_optim_step_lm). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define LM_MAX_N 4096
#define LM_TRIES 30

void dpotrf_(const char *uplo, const int *n, double *a, const int *lda, int *info);
void dpotrs_(const char *uplo, const int *n, const int *nrhs, const double *a, const int *lda,
             double *b, const int *ldb, int *info);

typedef struct lm {
    int64_t n, m; /* weights, residuals of the last call */
    double *J;    /* m x n, row i = de_i/dw */
    double *A, *M, *b, *x, *dx, *e;
    double mu;
    tg_tape *tp;
    tg_tensor *seed;        /* one-hot seed shaped like e */
    tg_lm_reduce_fn reduce; /* distributed (dist.h): sums over the ranks, or NULL */
    void *reduce_ctx;
} lm;

static void flat_get(const tg_optim *o, double *x)
{
    for (int i = 0, k = 0; i < o->n_params; i++)
        for (int64_t j = 0; j < tg_tensor_numel(o->params[i]); j++)
            x[k++] = tg_get(o->params[i], j);
}

static void flat_set(tg_optim *o, const double *x)
{
    for (int i = 0, k = 0; i < o->n_params; i++)
        for (int64_t j = 0; j < tg_tensor_numel(o->params[i]); j++) tg_set(o->params[i], j, x[k++]);
}

/* Σe² of fn at the current parameters, in no-grad mode; NAN on failure. */
static double sum_sq(lm *s, tg_residual_fn fn, void *ctx)
{
    tg_tape_reset(s->tp);
    tg_tape_set_grad_mode(s->tp, false);
    tg_tensor *e = fn(s->tp, ctx);
    tg_tape_set_grad_mode(s->tp, true);
    double f = e ? 0 : (double)NAN;
    for (int64_t i = 0; i < tg_tensor_numel(e); i++) f += tg_get(e, i) * tg_get(e, i);
    if (s->reduce && s->reduce(s->reduce_ctx, &f, 1)) return (double)NAN; /* every rank's Σe² */
    return f;
}

int tg_optim_step_lm(tg_optim *o, tg_residual_fn fn, void *ctx, double *loss, tg_status *st)
{
    if (!o || !fn)
        return tg_status_set(st, TG_EARG, "tg_optim_step_lm: NULL optimiser or function");
    if (o->cls != &tg_lm_class)
        return tg_status_set(st, TG_ESTATE, "tg_optim_step_lm: the optimiser is %s, not lm",
                             o->cls->name);
    lm *s = o->extra;
    int64_t n = s->n;
    tg_tape_reset(s->tp);
    tg_tensor *e = fn(s->tp, ctx);
    if (!e) return tg_status_set(st, TG_EARG, "tg_optim_step_lm: %s", tg_tape_error(s->tp));
    int64_t m = tg_tensor_numel(e);
    if (m != s->m || !s->seed || tg_tensor_dtype(s->seed) != tg_tensor_dtype(e)) {
        double *J = realloc(s->J, sizeof(double) * (size_t)(m > 0 && n > 0 ? m * n : 1));
        double *ev = realloc(s->e, sizeof(double) * (size_t)(m ? m : 1));
        int64_t shape[TG_MAX_DIMS];
        for (int d = 0; d < tg_tensor_ndim(e); d++) shape[d] = tg_tensor_dim(e, d);
        tg_tensor *seed = tg_tensor_new(tg_tensor_dtype(e), tg_tensor_ndim(e), shape);
        if (J) s->J = J;
        if (ev) s->e = ev;
        if (!J || !ev || !seed) {
            tg_tensor_free(seed);
            return tg_status_set(st, TG_ENOMEM, "tg_optim_step_lm: out of memory for %lld x %lld",
                                 (long long)m, (long long)n);
        }
        tg_tensor_free(s->seed);
        s->seed = seed, s->m = m;
    }
    double f = 0;
    bool finite = true;
    for (int64_t i = 0; i < m; i++) {
        s->e[i] = tg_get(e, i), f += s->e[i] * s->e[i];
        finite = finite && isfinite(s->e[i]);
    }
    /* J, one reverse sweep per residual. */
    tg_tensor_fill(s->seed, 0);
    for (int64_t i = 0; i < m; i++) {
        tg_optim_zero_grad(o);
        tg_set(s->seed, i, 1);
        int rc = tg_backward_seed(s->tp, e, s->seed);
        tg_set(s->seed, i, 0);
        if (rc) return tg_status_set(st, rc, "tg_optim_step_lm: %s", tg_tape_error(s->tp));
        for (int p = 0, k = 0; p < o->n_params; p++) {
            tg_tensor *g = tg_optim_active_grad(o->params[p]);
            for (int64_t j = 0; j < tg_tensor_numel(o->params[p]); j++, k++) {
                s->J[i * n + k] = g ? tg_get(g, j) : 0;
                finite = finite && isfinite(s->J[i * n + k]);
            }
        }
    }
    if (o->opts.check_finite && !finite && !s->reduce) /* nothing has changed yet */
        return tg_status_set(st, TG_EARG,
                             "tg_optim_step_lm: a residual or an element of its "
                             "Jacobian is not finite (check_finite)");
    /* A = JᵀJ, b = Jᵀe. */
    memset(s->A, 0, sizeof(double) * (size_t)(n * n));
    memset(s->b, 0, sizeof(double) * (size_t)n);
    for (int64_t i = 0; i < m; i++) {
        const double *r = s->J + i * n;
        for (int64_t a = 0; a < n; a++) {
            s->b[a] += r[a] * s->e[i];
            for (int64_t c = 0; c <= a; c++) s->A[a * n + c] += r[a] * r[c];
        }
    }
    for (int64_t a = 0; a < n; a++)
        for (int64_t c = 0; c < a; c++) s->A[c * n + a] = s->A[a * n + c];
    if (s->reduce) { /* distributed: JᵀJ, Jᵀe and Σe² over every rank's residuals */
        double fl[2] = {f, finite ? 0 : 1};
        int rc = s->reduce(s->reduce_ctx, s->A, n * n);
        if (!rc) rc = s->reduce(s->reduce_ctx, s->b, n);
        if (!rc) rc = s->reduce(s->reduce_ctx, fl, 2);
        if (rc) return tg_status_set(st, rc, "tg_optim_step_lm: the reduction over ranks failed");
        f = fl[0], finite = fl[1] == 0;
        if (o->opts.check_finite && !finite)
            return tg_status_set(st, TG_EARG,
                                 "tg_optim_step_lm: a residual or an element of its "
                                 "Jacobian is not finite on some rank (check_finite)");
    }
    flat_get(o, s->x);
    o->t++;
    for (int t = 0; t < LM_TRIES; t++) {
        memcpy(s->M, s->A, sizeof(double) * (size_t)(n * n));
        for (int64_t a = 0; a < n; a++) s->M[a * n + a] += s->mu * fmax(s->A[a * n + a], 1e-12);
        memcpy(s->dx, s->b, sizeof(double) * (size_t)n);
        int nn = (int)n, one = 1, info = 0;
        dpotrf_("L", &nn, s->M, &nn, &info);
        if (!info) dpotrs_("L", &nn, &one, s->M, &nn, s->dx, &nn, &info);
        if (info) { /* not positive definite at this damping */
            s->mu *= 10;
            continue;
        }
        for (int64_t a = 0; a < n; a++) s->dx[a] = s->x[a] - s->dx[a];
        flat_set(o, s->dx);
        double f_new = sum_sq(s, fn, ctx);
        if (f_new < f) {
            s->mu = fmax(s->mu / 10, 1e-12);
            if (loss) *loss = f_new;
            return TG_OK;
        }
        s->mu *= 10;
    }
    flat_set(o, s->x); /* no step lowered Σe²: stay */
    if (loss) *loss = f;
    return TG_OK;
}

int tg_optim_lm_set_reduce(tg_optim *o, tg_lm_reduce_fn fn, void *ctx)
{
    if (!o || o->cls != &tg_lm_class) return TG_EARG;
    lm *s = o->extra;
    s->reduce = fn, s->reduce_ctx = fn ? ctx : NULL;
    return TG_OK;
}

/* NOLINTNEXTLINE(readability-non-const-parameter): a tg_optim_class step writes *loss */
static int lm_refuse(tg_optim *o, tg_loss_fn fn, void *ctx, double *loss)
{
    (void)o, (void)fn, (void)ctx, (void)loss;
    return TG_ESTATE; /* lm needs residuals: tg_optim_step_lm */
}

static int lm_init(tg_optim *o, tg_status *st)
{
    int64_t n = 0;
    for (int i = 0; i < o->n_params; i++) n += tg_tensor_numel(o->params[i]);
    if (n > LM_MAX_N)
        return tg_status_set(st, TG_EARG, "tg_optim_new: lm: %lld weights: JᵀJ would be too large",
                             (long long)n);
    lm *s = calloc(1, sizeof *s);
    if (!s) return tg_status_set(st, TG_ENOMEM, "tg_optim_new: lm: out of memory");
    o->extra = s;
    s->n = n;
    s->mu = o->opts.damping; /* > 0, checked by tg_optim_new */
    size_t v = sizeof(double) * (size_t)(n ? n : 1);
    s->A = malloc(v * (size_t)(n ? n : 1)), s->M = malloc(v * (size_t)(n ? n : 1)),
    s->b = malloc(v);
    s->x = malloc(v), s->dx = malloc(v), s->tp = tg_tape_new();
    if (!s->A || !s->M || !s->b || !s->x || !s->dx || !s->tp)
        return tg_status_set(st, TG_ENOMEM, "tg_optim_new: lm: out of memory");
    return TG_OK;
}

static void lm_reset(tg_optim *o)
{
    lm *s = o->extra;
    s->mu = o->opts.damping;
}

static void lm_destroy(tg_optim *o)
{
    lm *s = o->extra;
    if (!s) return;
    free(s->J), free(s->A), free(s->M), free(s->b), free(s->x), free(s->dx), free(s->e);
    tg_tensor_free(s->seed);
    tg_tape_free(s->tp);
    free(s);
    o->extra = NULL;
}

static void lm_defaults(tg_optim_opts *o) { o->damping = 1e-3; }

/* A checkpoint keeps mu; the rest is scratch of one step. */
static size_t lm_state_size(const tg_optim *o)
{
    (void)o;
    return sizeof(double);
}
static void lm_state_save(const tg_optim *o, unsigned char *p)
{
    memcpy(p, &((const lm *)o->extra)->mu, sizeof(double));
}
static int lm_state_check(const tg_optim *o, const unsigned char *p, char *why, size_t size)
{
    double mu;
    (void)o, memcpy(&mu, p, sizeof mu);
    if (mu > 0 && isfinite(mu)) return TG_OK;
    snprintf(why, size, "lm's mu is %g, want a finite mu > 0", mu);
    return TG_EFORMAT;
}
static void lm_state_load(tg_optim *o, const unsigned char *p)
{
    memcpy(&((lm *)o->extra)->mu, p, sizeof(double));
}

const tg_optim_class tg_lm_class = {
    .name = "lm",
    .uses = TG_USES_DAMPING,
    .defaults = lm_defaults,
    .step = lm_refuse,
    .init = lm_init,
    .reset = lm_reset,
    .destroy = lm_destroy,
    .needs_closure = true,
    .state_size = lm_state_size,
    .state_save = lm_state_save,
    .state_check = lm_state_check,
    .state_load = lm_state_load,
};
