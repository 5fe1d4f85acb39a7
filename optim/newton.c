/* optim/newton.c: Newton's method with a damped dense Hessian ("newton") and Hessian-free
 * Newton-CG ("newton_cg", Martens 2010), both through tg_optim_step_newton.
 *
 * A step records the objective f on the optimiser's own tape, then its gradient g with
 * tg_gradients(TG_GRAD_RECORD), so that g is itself on the tape; sweeping g again gives
 * second derivatives: one sweep of g_p seeded with a unit vector is one row of the Hessian,
 * one sweep of Σ_p g_p·v_p is the product H v. The parameters that require a gradient are
 * one vector of doubles whatever their dtype; the others are held fixed.
 *
 * The sweeps add their tensors to the tape's arena; when one step's sweeps have used
 * ARENA_BUDGET bytes, f and g are recorded afresh on a reset tape (the objective must give
 * the same function each call). A step that fails changes nothing: the parameters are only
 * moved, and lambda and the step count only changed, once every derivative is in. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define NEWTON_MAX_N 4096 /* dense n x n Hessian, as lm's JᵀJ */
#define NEWTON_TRIES 30
#define ARENA_BUDGET ((size_t)64 << 20)
#define CG_LAMBDA_MIN 1e-12

void dpotrf_(const char *uplo, const int *n, double *a, const int *lda, int *info);
void dpotrs_(const char *uplo, const int *n, const int *nrhs, const double *a, const int *lda,
             double *b, const int *ldb, int *info);

typedef struct newton {
    bool cg;                /* newton_cg */
    int64_t n;              /* weights of every parameter */
    int64_t na;             /* weights of the active ones, this step */
    int n_act;              /* parameters that require a gradient, this step */
    int *act;               /* their indices */
    int64_t *off;           /* where each active parameter starts in the vector */
    tg_tensor **xs;         /* the active parameters, for tg_gradients */
    tg_tensor **G;          /* the recorded gradient, per active parameter */
    tg_tensor **R;          /* a sweep's result, per active parameter */
    tg_tensor **V;          /* per parameter: a seed or direction shaped like it (heap, zeroed) */
    double *x0, *g;         /* the point and the gradient at it */
    double *H, *M;          /* newton: the Hessian and its damped factorisation */
    double *d, *r, *p, *Ap; /* newton_cg: the step and CG's vectors */
    double lambda;
    tg_tape *tp;
    size_t arena_base; /* arena in use once f and g were recorded */
} newton;

/* One step's context: the closure, where the messages go. */
typedef struct job {
    tg_optim *o;
    newton *s;
    tg_objective_fn fn;
    void *ctx;
    tg_status *st;
} job;

static void get_w(const newton *s, const tg_optim *o, double *w)
{
    for (int a = 0; a < s->n_act; a++) {
        const tg_tensor *t = o->params[s->act[a]];
        for (int64_t j = 0; j < tg_tensor_numel(t); j++) w[s->off[a] + j] = tg_get(t, j);
    }
}

static void set_w(const newton *s, tg_optim *o, const double *w)
{
    for (int a = 0; a < s->n_act; a++) {
        tg_tensor *t = o->params[s->act[a]];
        for (int64_t j = 0; j < tg_tensor_numel(t); j++) tg_set(t, j, w[s->off[a] + j]);
    }
}

/* Reads the per-parameter tensors ts (gradients or a sweep's result) into v; false if one
 * element is not finite. */
static bool read_vec(const newton *s, tg_tensor *const *ts, double *v)
{
    bool finite = true;
    for (int a = 0; a < s->n_act; a++)
        for (int64_t j = 0; j < tg_tensor_numel(ts[a]); j++) {
            v[s->off[a] + j] = tg_get(ts[a], j);
            finite = finite && isfinite(v[s->off[a] + j]);
        }
    return finite;
}

/* Records f and its gradient on a reset tape; f's value in *f. */
static int record(job *j, double *f)
{
    newton *s = j->s;
    tg_tape_reset(s->tp);
    tg_tensor *y = j->fn(s->tp, j->ctx);
    if (!y || tg_tape_errcode(s->tp))
        return tg_status_set(j->st, TG_EARG, "tg_optim_step_newton: %s: the objective failed: %s",
                             j->o->cls->name,
                             tg_tape_errcode(s->tp) ? tg_tape_error(s->tp) : "it returned NULL");
    if (tg_tensor_numel(y) != 1)
        return tg_status_set(j->st, TG_ESHAPE,
                             "tg_optim_step_newton: %s: the objective has %lld elements, not 1",
                             j->o->cls->name, (long long)tg_tensor_numel(y));
    *f = tg_get(y, 0);
    if (!isfinite(*f))
        return tg_status_set(j->st, TG_EARG,
                             "tg_optim_step_newton: %s: the objective is %g at the current point",
                             j->o->cls->name, *f);
    int rc = tg_gradients(s->tp, y, NULL, s->n_act, s->xs, s->G, TG_GRAD_RECORD);
    if (rc)
        return tg_status_set(j->st, rc, "tg_optim_step_newton: %s: %s", j->o->cls->name,
                             tg_tape_error(s->tp));
    tg_tape_stats ts;
    tg_tape_get_stats(s->tp, &ts);
    s->arena_base = ts.arena_used;
    return TG_OK;
}

/* Before a sweep: records f and g afresh if the sweeps so far used the budget. */
static int keep_tape_small(job *j)
{
    tg_tape_stats ts;
    tg_tape_get_stats(j->s->tp, &ts);
    if (ts.arena_used < j->s->arena_base + ARENA_BUDGET) return TG_OK;
    double f;
    return record(j, &f);
}

/* An op or sweep failed: its error, which is on the tape. */
static int sweep_failed(job *j)
{
    int rc = tg_tape_errcode(j->s->tp);
    return tg_status_set(j->st, rc ? rc : TG_ESTATE, "tg_optim_step_newton: %s: %s",
                         j->o->cls->name, tg_tape_error(j->s->tp));
}

/* Row k of H (k = off[a] + e): the sweep of g_a seeded with the unit vector e. A gradient
 * that depends on no parameter gives a zero row. False in *finite for a NaN or inf. */
static int hessian_row(job *j, int a, int64_t e, double *row, bool *finite)
{
    newton *s = j->s;
    int rc = keep_tape_small(j);
    if (rc) return rc;
    if (!tg_requires_grad(s->G[a])) {
        memset(row, 0, sizeof(double) * (size_t)s->na);
        return TG_OK;
    }
    tg_tensor *seed = s->V[s->act[a]];
    tg_set(seed, e, 1);
    rc = tg_gradients(s->tp, s->G[a], seed, s->n_act, s->xs, s->R, 0);
    tg_set(seed, e, 0);
    if (rc) return sweep_failed(j);
    *finite = read_vec(s, s->R, row) && *finite;
    return TG_OK;
}

/* hv = H v: the sweep of Σ_a sum(g_a * v_a). */
static int hessian_times(job *j, const double *v, double *hv, bool *finite)
{
    newton *s = j->s;
    int rc = keep_tape_small(j);
    if (rc) return rc;
    tg_tensor *y = NULL;
    for (int a = 0; a < s->n_act; a++) {
        if (!tg_requires_grad(s->G[a])) continue; /* a constant gradient: no curvature */
        tg_tensor *va = s->V[s->act[a]];
        for (int64_t e = 0; e < tg_tensor_numel(va); e++) tg_set(va, e, v[s->off[a] + e]);
        tg_tensor *t = tg_sum(s->tp, tg_mul(s->tp, s->G[a], va), TG_ALL_AXES, false);
        y = y && t ? tg_add(s->tp, y, t) : t;
        if (!y) return sweep_failed(j);
    }
    if (!y) {
        memset(hv, 0, sizeof(double) * (size_t)s->na);
        return TG_OK;
    }
    if (tg_gradients(s->tp, y, NULL, s->n_act, s->xs, s->R, 0)) return sweep_failed(j);
    *finite = read_vec(s, s->R, hv) && *finite;
    return TG_OK;
}

/* f at the parameters as they are, in no-grad mode; NAN if fn fails. */
static double value(job *j)
{
    tg_tape *tp = j->s->tp;
    tg_tape_reset(tp);
    bool mode = tg_tape_set_grad_mode(tp, false);
    tg_tensor *y = j->fn(tp, j->ctx);
    tg_tape_set_grad_mode(tp, mode);
    if (!y || tg_tape_errcode(tp) || tg_tensor_numel(y) != 1) return (double)NAN;
    return tg_get(y, 0);
}

static double dot(const double *a, const double *b, int64_t n)
{
    double t = 0;
    for (int64_t i = 0; i < n; i++) t += a[i] * b[i];
    return t;
}

static int not_finite(job *j, const char *what)
{
    return tg_status_set(j->st, TG_EARG,
                         "tg_optim_step_newton: %s: an element of %s is not finite (check_finite)",
                         j->o->cls->name, what);
}

/* The dense method: H, then damped Cholesky solves until f goes down. */
static int newton_step(job *j, double f0, double *loss)
{
    tg_optim *o = j->o;
    newton *s = j->s;
    int64_t n = s->na;
    bool finite = true;
    for (int a = 0; a < s->n_act; a++)
        for (int64_t e = 0; e < tg_tensor_numel(s->G[a]); e++) {
            int rc = hessian_row(j, a, e, s->H + (s->off[a] + e) * n, &finite);
            if (rc) return rc;
        }
    if (o->opts.check_finite && !finite) return not_finite(j, "the Hessian");
    double hmax = 0;
    for (int64_t a = 0; a < n; a++) {
        for (int64_t c = 0; c < a; c++) /* symmetric up to rounding */
            s->H[a * n + c] = s->H[c * n + a] = 0.5 * (s->H[a * n + c] + s->H[c * n + a]);
        hmax = fmax(hmax, fabs(s->H[a * n + a]));
    }
    const double lambda_min = hmax > 0 ? 1e-3 * hmax : 1e-3;
    o->t++;
    for (int t = 0; t < NEWTON_TRIES; t++) {
        memcpy(s->M, s->H, sizeof(double) * (size_t)(n * n));
        for (int64_t a = 0; a < n; a++) s->M[a * n + a] += s->lambda;
        memcpy(s->d, s->g, sizeof(double) * (size_t)n);
        int nn = (int)n, one = 1, info = 0;
        dpotrf_("L", &nn, s->M, &nn, &info);
        if (!info) dpotrs_("L", &nn, &one, s->M, &nn, s->d, &nn, &info);
        if (!info) {
            for (int64_t a = 0; a < n; a++) s->d[a] = s->x0[a] - s->d[a];
            set_w(s, o, s->d);
            double f = value(j);
            if (f < f0) {
                s->lambda /= 10;
                if (loss) *loss = f;
                return TG_OK;
            }
        }
        /* not positive definite at this damping, or no decrease */
        s->lambda = fmax(10 * s->lambda, lambda_min);
    }
    set_w(s, o, s->x0); /* no damping lowered f: stay */
    if (loss) *loss = f0;
    return TG_OK;
}

/* Hessian-free: CG on (H + lambda I) d = -g, one trial of w + d, lambda by the ratio. */
static int newton_cg_step(job *j, double f0, double gg, double *loss)
{
    tg_optim *o = j->o;
    newton *s = j->s;
    const int64_t n = s->na;
    const double lam = s->lambda, tol = o->opts.cg_tol * sqrt(gg);
    double *d = s->d, *r = s->r, *p = s->p, *Ap = s->Ap;
    double rr = gg, model = 0, pAp = 0; /* model: gᵀd + dᵀ(H + lambda I)d / 2 */
    bool finite = true, moved = false;
    for (int64_t i = 0; i < n; i++) d[i] = 0, r[i] = p[i] = -s->g[i];
    for (int64_t it = 0; it < o->opts.cg_iters; it++) {
        int rc = hessian_times(j, p, Ap, &finite);
        if (rc) return rc;
        if (o->opts.check_finite && !finite) return not_finite(j, "a Hessian-vector product");
        for (int64_t i = 0; i < n; i++) Ap[i] += lam * p[i];
        pAp = dot(p, Ap, n);
        if (!(pAp > 0)) break; /* negative curvature (or NaN): keep d as it is */
        double alpha = rr / pAp;
        for (int64_t i = 0; i < n; i++) d[i] += alpha * p[i], r[i] -= alpha * Ap[i];
        model -= 0.5 * alpha * rr; /* rᵀp = rᵀr along CG */
        moved = true;
        double rr_new = dot(r, r, n);
        if (sqrt(rr_new) <= tol) break;
        double beta = rr_new / rr;
        for (int64_t i = 0; i < n; i++) p[i] = r[i] + beta * p[i];
        rr = rr_new;
    }
    double q; /* the undamped model's change gᵀd + dᵀHd / 2 */
    if (moved) {
        q = model - 0.5 * lam * dot(d, d, n);
    } else { /* negative curvature along -g: the steepest-descent step -g / lambda */
        for (int64_t i = 0; i < n; i++) d[i] = -s->g[i] / lam;
        q = -gg / lam + 0.5 * (pAp - lam * gg) / (lam * lam); /* pAp = gᵀHg + lambda gᵀg */
    }
    o->t++;
    for (int64_t i = 0; i < n; i++) r[i] = s->x0[i] + d[i]; /* r: the trial point */
    set_w(s, o, r);
    double f = value(j);
    double rho = q < 0 ? (f - f0) / q : (f < f0 ? 1 : 0); /* NaN for a non-finite f */
    if (rho > 0.75) s->lambda = fmax(lam * 2 / 3, CG_LAMBDA_MIN);
    else if (!(rho >= 0.25)) s->lambda = lam * 1.5;
    if (f < f0) {
        if (loss) *loss = f;
        return TG_OK;
    }
    set_w(s, o, s->x0); /* f went up: stay */
    if (loss) *loss = f0;
    return TG_OK;
}

int tg_optim_step_newton(tg_optim *o, tg_objective_fn fn, void *ctx, double *loss, tg_status *st)
{
    if (!o || !fn)
        return tg_status_set(st, TG_EARG, "tg_optim_step_newton: NULL optimiser or function");
    if (o->cls != &tg_newton_class && o->cls != &tg_newton_cg_class)
        return tg_status_set(st, TG_ESTATE,
                             "tg_optim_step_newton: the optimiser is %s, not newton or newton_cg",
                             o->cls->name);
    newton *s = o->extra;
    job j = {o, s, fn, ctx, st};
    /* the parameters that take part in this step */
    s->n_act = 0, s->na = 0;
    for (int i = 0; i < o->n_params; i++) {
        if (!tg_requires_grad(o->params[i])) continue;
        s->act[s->n_act] = i, s->off[s->n_act] = s->na, s->xs[s->n_act] = o->params[i];
        s->na += tg_tensor_numel(o->params[i]);
        s->n_act++;
    }
    if (s->n_act == 0) { /* nothing to move */
        if (loss) *loss = value(&j);
        o->t++;
        return TG_OK;
    }
    double f0 = 0;
    int rc = record(&j, &f0);
    if (rc) return rc;
    bool finite = read_vec(s, s->G, s->g);
    if (o->opts.check_finite && !finite) return not_finite(&j, "the gradient");
    get_w(s, o, s->x0);
    double gg = dot(s->g, s->g, s->na);
    if (gg == 0) { /* a stationary point: Newton does not move */
        o->t++;
        if (loss) *loss = f0;
        return TG_OK;
    }
    return s->cg ? newton_cg_step(&j, f0, gg, loss) : newton_step(&j, f0, loss);
}

/* NOLINTNEXTLINE(readability-non-const-parameter): a tg_optim_class step writes *loss */
static int newton_refuse(tg_optim *o, tg_loss_fn fn, void *ctx, double *loss)
{
    (void)o, (void)fn, (void)ctx, (void)loss;
    return TG_ESTATE; /* the objective is recorded: tg_optim_step_newton */
}

static void newton_destroy(tg_optim *o)
{
    newton *s = o->extra;
    if (!s) return;
    if (s->V)
        for (int i = 0; i < o->n_params; i++) tg_tensor_free(s->V[i]);
    free(s->act), free(s->off), free(s->xs), free(s->G), free(s->R), free(s->V);
    free(s->x0), free(s->g), free(s->H), free(s->M);
    free(s->d), free(s->r), free(s->p), free(s->Ap);
    tg_tape_free(s->tp);
    free(s);
    o->extra = NULL;
}

static int newton_init(tg_optim *o, tg_status *st)
{
    bool cg = o->cls == &tg_newton_cg_class;
    int64_t n = 0;
    for (int i = 0; i < o->n_params; i++) n += tg_tensor_numel(o->params[i]);
    if (!cg && n > NEWTON_MAX_N)
        return tg_status_set(st, TG_EARG,
                             "tg_optim_new: newton: %lld weights: the Hessian would be too large "
                             "(at most %d; newton_cg needs none)",
                             (long long)n, NEWTON_MAX_N);
    newton *s = calloc(1, sizeof *s);
    if (!s) return tg_status_set(st, TG_ENOMEM, "tg_optim_new: %s: out of memory", o->cls->name);
    o->extra = s;
    s->cg = cg, s->n = n, s->lambda = o->opts.damping;
    size_t np = (size_t)o->n_params, v = sizeof(double) * (size_t)(n ? n : 1);
    s->act = malloc(np * sizeof *s->act), s->off = malloc(np * sizeof *s->off);
    s->xs = malloc(np * sizeof *s->xs), s->G = malloc(np * sizeof *s->G);
    s->R = malloc(np * sizeof *s->R), s->V = calloc(np, sizeof *s->V);
    s->x0 = malloc(v), s->g = malloc(v), s->d = malloc(v), s->tp = tg_tape_new();
    bool ok = s->act && s->off && s->xs && s->G && s->R && s->V && s->x0 && s->g && s->d && s->tp;
    if (cg) {
        s->r = malloc(v), s->p = malloc(v), s->Ap = malloc(v);
        ok = ok && s->r && s->p && s->Ap;
    } else {
        s->H = malloc(v * (size_t)(n ? n : 1)), s->M = malloc(v * (size_t)(n ? n : 1));
        ok = ok && s->H && s->M;
    }
    for (int i = 0; ok && i < o->n_params; i++) {
        const tg_tensor *w = o->params[i];
        int64_t shape[TG_MAX_DIMS];
        for (int k = 0; k < tg_tensor_ndim(w); k++) shape[k] = tg_tensor_dim(w, k);
        s->V[i] = tg_tensor_new(tg_tensor_dtype(w), tg_tensor_ndim(w), shape); /* zeroed */
        ok = s->V[i] != NULL;
    }
    if (!ok) return tg_status_set(st, TG_ENOMEM, "tg_optim_new: %s: out of memory", o->cls->name);
    return TG_OK;
}

static void newton_reset(tg_optim *o)
{
    newton *s = o->extra;
    s->lambda = o->opts.damping;
}

/* A checkpoint keeps lambda; the rest is scratch of one step. */
static size_t newton_state_size(const tg_optim *o)
{
    (void)o;
    return sizeof(double);
}
static void newton_state_save(const tg_optim *o, unsigned char *p)
{
    memcpy(p, &((const newton *)o->extra)->lambda, sizeof(double));
}
static int newton_state_check(const tg_optim *o, const unsigned char *p, char *why, size_t size)
{
    double lambda;
    memcpy(&lambda, p, sizeof lambda);
    if (lambda >= 0 && isfinite(lambda)) return TG_OK;
    snprintf(why, size, "%s's lambda is %g, want a finite lambda >= 0", o->cls->name, lambda);
    return TG_EFORMAT;
}
static void newton_state_load(tg_optim *o, const unsigned char *p)
{
    memcpy(&((newton *)o->extra)->lambda, p, sizeof(double));
}

static void newton_defaults(tg_optim_opts *o) { o->damping = 0; }

static void newton_cg_defaults(tg_optim_opts *o)
{
    o->damping = 1;
    o->cg_iters = 250;
    o->cg_tol = 1e-6;
}

const tg_optim_class tg_newton_class = {
    .name = "newton",
    .defaults = newton_defaults,
    .step = newton_refuse,
    .init = newton_init,
    .reset = newton_reset,
    .destroy = newton_destroy,
    .needs_closure = true,
    .state_size = newton_state_size,
    .state_save = newton_state_save,
    .state_check = newton_state_check,
    .state_load = newton_state_load,
};

const tg_optim_class tg_newton_cg_class = {
    .name = "newton_cg",
    .uses = TG_USES_DAMPING | TG_USES_CG,
    .defaults = newton_cg_defaults,
    .step = newton_refuse,
    .init = newton_init,
    .reset = newton_reset,
    .destroy = newton_destroy,
    .needs_closure = true,
    .state_size = newton_state_size,
    .state_save = newton_state_save,
    .state_check = newton_state_check,
    .state_load = newton_state_load,
};
