/* optim/quasi.c: full-batch methods with a line search, through the closure interface:
 * conjugate gradients (Fletcher-Reeves "cg_fr" and Polak-Ribiere "cg_pr"), BFGS with a
 * dense inverse-Hessian estimate ("bfgs") and L-BFGS with a history of m pairs ("lbfgs").
 *
 * One tg_optim_step_closure is one iteration: a search direction p from the gradient,
 * then a line search for a step a along p that satisfies the strong Wolfe conditions
 *     f(x + a p) <= f(x) + c1 a g'p,   |g(x + a p)'p| <= c2 |g'p|
 * (c1 = 1e-4; c2 = 0.9 for BFGS and L-BFGS, 0.1 for CG), by bracketing and zooming with
 * safeguarded cubic interpolation (Nocedal and Wright, algorithms 3.5 and 3.6). If no such
 * step is found in 25 evaluations the best point seen is taken when it lowers f, and the
 * method restarts from steepest descent. The parameters are worked on as one vector of
 * doubles whatever their dtype.
 *
 * A step that fails (the closure's error, a non-finite loss at the starting point, or with
 * check_finite a non-finite gradient where the loss is finite) changes nothing: the
 * parameters are put back, and the state is only written once the line search has
 * succeeded. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define LS_MAX_EVALS 25
#define BFGS_MAX_N 4096 /* a dense n x n estimate beyond this is the job of lbfgs */

enum { M_CG_FR, M_CG_PR, M_BFGS, M_LBFGS };

typedef struct quasi {
    int method;
    int64_t n, m;          /* weights; L-BFGS history */
    double *x, *g, *p;     /* point, gradient at it, CG's direction (kept between steps) */
    double *d;             /* this step's direction */
    double *xn, *gn;       /* trial point and its gradient */
    double *V;             /* BFGS: n x n inverse Hessian estimate */
    double *S, *Y, *rho;   /* L-BFGS: m pairs s = x' - x, y = g' - g */
    double f, alpha;       /* f(x), the last accepted step */
    double last_gp;        /* g'p of the last iteration (scales CG's first trial step) */
    int64_t k, hist, head; /* iterations since restart; pairs stored; next slot */
    bool have;             /* x, g, f hold the current point */
} quasi;

static int method_of(const tg_optim *o)
{
    const char *nm = o->cls->name;
    return strcmp(nm, "cg_fr") == 0   ? M_CG_FR
           : strcmp(nm, "cg_pr") == 0 ? M_CG_PR
           : strcmp(nm, "bfgs") == 0  ? M_BFGS
                                      : M_LBFGS;
}

static int64_t n_weights(const tg_optim *o)
{
    int64_t n = 0;
    for (int i = 0; i < o->n_params; i++) n += tg_tensor_numel(o->params[i]);
    return n;
}

static void get_x(const tg_optim *o, double *x)
{
    for (int i = 0, k = 0; i < o->n_params; i++)
        for (int64_t j = 0; j < tg_tensor_numel(o->params[i]); j++)
            x[k++] = tg_get(o->params[i], j);
}

static void set_x(tg_optim *o, const double *x)
{
    for (int i = 0, k = 0; i < o->n_params; i++)
        for (int64_t j = 0; j < tg_tensor_numel(o->params[i]); j++) tg_set(o->params[i], j, x[k++]);
}

/* f and g at x (the parameters are left at x). A parameter without gradient counts 0. The
 * closure's code; TG_EARG for a non-finite gradient at a finite f with check_finite. */
static int evaluate(tg_optim *o, tg_loss_fn fn, void *ctx, const double *x, double *f, double *g)
{
    set_x(o, x);
    int rc = tg_optim_eval(o, fn, ctx, f);
    if (rc) return rc;
    bool finite = true;
    for (int i = 0, k = 0; i < o->n_params; i++) {
        tg_tensor *gr = tg_optim_active_grad(o->params[i]);
        for (int64_t j = 0; j < tg_tensor_numel(o->params[i]); j++, k++) {
            g[k] = gr ? tg_get(gr, j) : 0;
            finite = finite && isfinite(g[k]);
        }
    }
    return o->opts.check_finite && isfinite(*f) && !finite ? TG_EARG : TG_OK;
}

static double dot(const double *a, const double *b, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* The minimiser of the cubic through (a, fa, da) and (b, fb, db), kept inside the
 * interval's middle 80%; bisection when the cubic has none. */
static double cubic_min(double a, double fa, double da, double b, double fb, double db)
{
    double d1 = da + db - 3 * (fa - fb) / (a - b), r = d1 * d1 - da * db, t;
    if (r >= 0) {
        double d2 = (b > a ? 1 : -1) * sqrt(r);
        t = b - (b - a) * (db + d2 - d1) / (db - da + 2 * d2);
    } else {
        t = 0.5 * (a + b);
    }
    double lo = fmin(a, b), hi = fmax(a, b), w = hi - lo;
    if (!isfinite(t) || t < lo + 0.1 * w || t > hi - 0.1 * w) t = 0.5 * (a + b);
    return t;
}

/* Strong Wolfe line search from q->x along q->d with first trial a0. On success xn, gn,
 * fn hold the accepted point; returns its step, or 0 when nothing lowered f. */
static double line_search(tg_optim *o, quasi *q, tg_loss_fn fn, void *ctx, double a0, double c2,
                          double *f_new, int *rc)
{
    const double c1 = 1e-4, f0 = q->f, d0 = dot(q->g, q->d, q->n);
    double a_prev = 0, f_prev = f0, d_prev = d0, a = a0, lo = 0, hi = 0, flo = f0, dlo = d0;
    double fhi = 0, dhi = 0, best_a = 0, best_f = f0;
    bool zoom = false;
    for (int it = 0; it < LS_MAX_EVALS; it++) {
        for (int64_t i = 0; i < q->n; i++) q->xn[i] = q->x[i] + a * q->d[i];
        double f;
        *rc = evaluate(o, fn, ctx, q->xn, &f, q->gn);
        if (*rc) return 0;
        if (!isfinite(f)) f = (double)INFINITY; /* non-finite loss: too long */
        double d = isfinite(f) ? dot(q->gn, q->d, q->n) : (double)INFINITY;
        if (f < best_f) best_f = f, best_a = a;
        if (!zoom) {
            if (f > f0 + c1 * a * d0 || (it > 0 && f >= f_prev)) {
                zoom = true, lo = a_prev, flo = f_prev, dlo = d_prev, hi = a, fhi = f, dhi = d;
            } else if (fabs(d) <= -c2 * d0) {
                *f_new = f;
                return a;
            } else if (d >= 0) {
                zoom = true, lo = a, flo = f, dlo = d, hi = a_prev, fhi = f_prev, dhi = d_prev;
            } else {
                a_prev = a, f_prev = f, d_prev = d;
                a = 2 * a;
                continue;
            }
        } else {
            if (f > f0 + c1 * a * d0 || f >= flo) {
                hi = a, fhi = f, dhi = d;
            } else {
                if (fabs(d) <= -c2 * d0) {
                    *f_new = f;
                    return a;
                }
                if (d * (hi - lo) >= 0) hi = lo, fhi = flo, dhi = dlo;
                lo = a, flo = f, dlo = d;
            }
        }
        a = isfinite(fhi) && isfinite(dhi) ? cubic_min(lo, flo, dlo, hi, fhi, dhi)
                                           : 0.5 * (lo + hi);
    }
    if (best_a <= 0) return 0;
    /* No Wolfe point: take the best decrease seen (re-evaluated for its gradient). */
    for (int64_t i = 0; i < q->n; i++) q->xn[i] = q->x[i] + best_a * q->d[i];
    *rc = evaluate(o, fn, ctx, q->xn, f_new, q->gn);
    return *rc ? 0 : best_a;
}

/* d = -H g for L-BFGS: the two-loop recursion, scaled by s'y / y'y of the newest pair. */
static void lbfgs_direction(quasi *q)
{
    int64_t n = q->n;
    double *a = q->rho + q->m, *d = q->d; /* scratch after rho */
    for (int64_t i = 0; i < n; i++) d[i] = -q->g[i];
    for (int64_t j = 0; j < q->hist; j++) {
        int64_t s = (q->head - 1 - j + q->m) % q->m;
        a[s] = q->rho[s] * dot(q->S + s * n, d, n);
        for (int64_t i = 0; i < n; i++) d[i] -= a[s] * q->Y[s * n + i];
    }
    if (q->hist) {
        int64_t s = (q->head - 1 + q->m) % q->m;
        double gamma = dot(q->S + s * n, q->Y + s * n, n) / dot(q->Y + s * n, q->Y + s * n, n);
        for (int64_t i = 0; i < n; i++) d[i] *= gamma;
    }
    for (int64_t j = q->hist - 1; j >= 0; j--) {
        int64_t s = (q->head - 1 - j + q->m) % q->m;
        double b = q->rho[s] * dot(q->Y + s * n, d, n);
        for (int64_t i = 0; i < n; i++) d[i] += (a[s] - b) * q->S[s * n + i];
    }
}

static void restart(quasi *q)
{
    q->k = 0, q->hist = 0, q->head = 0;
    if (q->V) {
        memset(q->V, 0, sizeof(double) * (size_t)(q->n * q->n));
        for (int64_t i = 0; i < q->n; i++) q->V[i * q->n + i] = 1;
    }
}

/* Updates the curvature information with s = xn - x, y = gn - g (skipped if y's < 1e-12
 * |s||y|, which keeps the estimate positive definite). */
static void update_curvature(quasi *q)
{
    int64_t n = q->n;
    double *s = q->xn, *y = q->gn; /* overwritten in place: xn, gn are rebuilt next step */
    for (int64_t i = 0; i < n; i++) s[i] -= q->x[i], y[i] -= q->g[i];
    double sy = dot(s, y, n);
    if (!(sy > 1e-12 * sqrt(dot(s, s, n) * dot(y, y, n)))) return;
    if (q->method == M_LBFGS) {
        memcpy(q->S + q->head * n, s, sizeof(double) * (size_t)n);
        memcpy(q->Y + q->head * n, y, sizeof(double) * (size_t)n);
        q->rho[q->head] = 1 / sy;
        q->head = (q->head + 1) % q->m;
        if (q->hist < q->m) q->hist++;
        return;
    }
    /* BFGS: V := (I - r s y') V (I - r y s') + r s s', first scaling V = I by s'y / y'y. */
    double r = 1 / sy, *Vy = q->p; /* p is CG's: free here */
    if (q->k == 1) {
        double gamma = sy / dot(y, y, n);
        for (int64_t i = 0; i < n; i++) q->V[i * n + i] = gamma;
    }
    for (int64_t i = 0; i < n; i++) Vy[i] = dot(q->V + i * n, y, n); /* V symmetric */
    double yVy = dot(y, Vy, n);
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++)
            q->V[i * n + j] += -r * (s[i] * Vy[j] + Vy[i] * s[j]) + (r * r * yVy + r) * s[i] * s[j];
}

static int quasi_step(tg_optim *o, tg_loss_fn fn, void *ctx, double *loss)
{
    if (!fn) return TG_ESTATE;
    quasi *q = o->extra;
    int rc;
    bool fresh = !q->have; /* a failure puts have back: the point is evaluated again */
    if (fresh) {
        get_x(o, q->x);
        rc = evaluate(o, fn, ctx, q->x, &q->f, q->g);
        if (!rc && !isfinite(q->f)) rc = TG_EARG;
        if (rc) {
            set_x(o, q->x);
            return rc;
        }
        q->have = true;
        restart(q);
    }
    int64_t n = q->n;
    double gg = dot(q->g, q->g, n);
    if (gg == 0) { /* at a stationary point: nothing to do */
        o->t++;
        if (loss) *loss = q->f;
        return TG_OK;
    }
    /* The direction, into d: the state is left alone until the line search succeeds. */
    int64_t every = o->opts.restart > 0 ? o->opts.restart : n;
    if (q->method == M_BFGS) {
        for (int64_t i = 0; i < n; i++) q->d[i] = -dot(q->V + i * n, q->g, n);
    } else if (q->method == M_LBFGS) {
        lbfgs_direction(q);
    } else if (q->k == 0 || q->k % every == 0) {
        for (int64_t i = 0; i < n; i++) q->d[i] = -q->g[i];
    } else { /* CG: p was updated at the end of the last step */
        memcpy(q->d, q->p, sizeof(double) * (size_t)n);
    }
    double gp = dot(q->g, q->d, n);
    bool restarting = !(gp < 0); /* not a descent direction: restart from steepest descent */
    if (restarting) {
        for (int64_t i = 0; i < n; i++) q->d[i] = -q->g[i];
        gp = -gg;
    }
    /* The first trial step: 1 for quasi-Newton after the first iteration; otherwise scaled
     * from the last step (CG) or to a unit move along -g. */
    int64_t k = restarting ? 0 : q->k;
    bool newton = q->method == M_BFGS || q->method == M_LBFGS;
    double a0 = k > 0 && newton ? 1
                : k > 0         ? fmin(1, 2 * q->alpha * fabs(q->last_gp) / fabs(gp))
                                : fmin(1, 1 / sqrt(gg));
    double c2 = newton ? 0.9 : 0.1, f_new = q->f;
    double a = line_search(o, q, fn, ctx, a0, c2, &f_new, &rc);
    if (rc) {
        set_x(o, q->x);
        q->have = !fresh;
        return rc;
    }
    o->t++;
    if (restarting || a == 0) restart(q);
    if (a == 0) { /* no decrease along d: restart; the point stays */
        set_x(o, q->x);
        if (loss) *loss = q->f;
        return TG_OK;
    }
    q->alpha = a, q->last_gp = gp, q->k++;
    double g_old_sq = gg, g_new_dot_old = dot(q->gn, q->g, n), g_new_sq = dot(q->gn, q->gn, n);
    if (newton) update_curvature(q);
    /* Accept: x := xn (recomputed, update_curvature reuses xn and gn), g := gn. */
    for (int64_t i = 0; i < n; i++) {
        double s = newton ? q->xn[i] : q->xn[i] - q->x[i];
        q->x[i] += s;
        q->g[i] = newton ? q->g[i] + q->gn[i] : q->gn[i];
    }
    q->f = f_new;
    if (!newton) {
        double beta = q->method == M_CG_FR ? g_new_sq / g_old_sq
                                           : fmax(0, (g_new_sq - g_new_dot_old) / g_old_sq);
        for (int64_t i = 0; i < n; i++) q->p[i] = -q->g[i] + beta * q->d[i];
    }
    set_x(o, q->x);
    if (loss) *loss = q->f;
    return TG_OK;
}

static int quasi_init(tg_optim *o, tg_status *st)
{
    quasi *q = calloc(1, sizeof *q);
    if (!q) return tg_status_set(st, TG_ENOMEM, "tg_optim_new: %s: out of memory", o->cls->name);
    o->extra = q;
    q->method = method_of(o);
    q->n = n_weights(o);
    q->m = q->method == M_LBFGS ? o->opts.history : 0; /* 1..1000, checked by tg_optim_new */
    int64_t n = q->n;
    if (q->method == M_BFGS && n > BFGS_MAX_N)
        return tg_status_set(st, TG_EARG,
                             "tg_optim_new: bfgs: %lld weights need a %lld x %lld "
                             "matrix; use lbfgs",
                             (long long)n, (long long)n, (long long)n);
    /* zeroed, so a checkpoint of history slots not yet used is the same in every run */
    size_t v = (size_t)(n ? n : 1), d = sizeof(double);
    q->x = calloc(v, d), q->g = calloc(v, d), q->p = calloc(v, d);
    q->d = calloc(v, d), q->xn = calloc(v, d), q->gn = calloc(v, d);
    if (q->method == M_BFGS) q->V = malloc(d * v * v);
    if (q->method == M_LBFGS) {
        q->S = calloc(v * (size_t)q->m, d), q->Y = calloc(v * (size_t)q->m, d);
        q->rho = calloc(2 * (size_t)q->m, d);
    }
    if (!q->x || !q->g || !q->p || !q->d || !q->xn || !q->gn || (q->method == M_BFGS && !q->V) ||
        (q->method == M_LBFGS && (!q->S || !q->Y || !q->rho)))
        return tg_status_set(st, TG_ENOMEM, "tg_optim_new: %s: out of memory for %lld weights",
                             o->cls->name, (long long)n);
    restart(q);
    return TG_OK;
}

static void quasi_reset(tg_optim *o)
{
    quasi *q = o->extra;
    q->have = false;
    restart(q);
}

static void quasi_destroy(tg_optim *o)
{
    quasi *q = o->extra;
    if (!q) return;
    free(q->x), free(q->g), free(q->p), free(q->d), free(q->xn), free(q->gn), free(q->V),
        free(q->S), free(q->Y), free(q->rho);
    free(q);
    o->extra = NULL;
}

/* A checkpoint keeps what carries from one step to the next: f, alpha, last_gp; k, hist,
 * head, have; x, g, p; V (bfgs); S, Y and rho (lbfgs). d, xn and gn are one step's scratch. */
#define QUASI_SCALARS 7
static size_t quasi_state_size(const tg_optim *o)
{
    const quasi *q = o->extra;
    size_t n = (size_t)q->n, m = (size_t)q->m;
    return sizeof(double) * (QUASI_SCALARS + 3 * n + (q->V ? n * n : 0) + 2 * m * n + m);
}

/* Copies count doubles between the state and *at, moving *at on. */
static void out_d(unsigned char **at, const double *v, size_t count)
{
    memcpy(*at, v, sizeof(double) * count), *at += sizeof(double) * count;
}
static void in_d(const unsigned char **at, double *v, size_t count)
{
    memcpy(v, *at, sizeof(double) * count), *at += sizeof(double) * count;
}

static void quasi_state_save(const tg_optim *o, unsigned char *p)
{
    const quasi *q = o->extra;
    size_t n = (size_t)q->n, m = (size_t)q->m;
    double sc[QUASI_SCALARS] = {q->f,           q->alpha,        q->last_gp,
                                (double)q->k,   (double)q->hist, (double)q->head,
                                (double)q->have};
    out_d(&p, sc, QUASI_SCALARS);
    out_d(&p, q->x, n), out_d(&p, q->g, n), out_d(&p, q->p, n);
    if (q->V) out_d(&p, q->V, n * n);
    if (m) out_d(&p, q->S, m * n), out_d(&p, q->Y, m * n), out_d(&p, q->rho, m);
}

static int quasi_state_check(const tg_optim *o, const unsigned char *p, char *why, size_t size)
{
    const quasi *q = o->extra;
    double sc[QUASI_SCALARS];
    memcpy(sc, p, sizeof sc);
    bool whole = true;
    for (int i = 3; i < QUASI_SCALARS; i++) whole = whole && sc[i] >= 0 && sc[i] == floor(sc[i]);
    if (!whole || sc[3] > 9e15 || sc[4] > (double)q->m ||
        (q->m ? sc[5] >= (double)q->m : sc[5] != 0) || sc[6] > 1) {
        snprintf(why, size,
                 "%s: iteration %g, history %g, head %g, have %g are not a state of "
                 "history %lld",
                 o->cls->name, sc[3], sc[4], sc[5], sc[6], (long long)q->m);
        return TG_EFORMAT;
    }
    return TG_OK;
}

static void quasi_state_load(tg_optim *o, const unsigned char *p)
{
    quasi *q = o->extra;
    size_t n = (size_t)q->n, m = (size_t)q->m;
    double sc[QUASI_SCALARS];
    const unsigned char *at = p;
    in_d(&at, sc, QUASI_SCALARS);
    q->f = sc[0], q->alpha = sc[1], q->last_gp = sc[2];
    q->k = (int64_t)sc[3], q->hist = (int64_t)sc[4], q->head = (int64_t)sc[5], q->have = sc[6] != 0;
    in_d(&at, q->x, n), in_d(&at, q->g, n), in_d(&at, q->p, n);
    if (q->V) in_d(&at, q->V, n * n);
    if (m) in_d(&at, q->S, m * n), in_d(&at, q->Y, m * n), in_d(&at, q->rho, m);
}

static void quasi_defaults(tg_optim_opts *o) { o->lr = 1; }
static void lbfgs_defaults(tg_optim_opts *o) { o->lr = 1, o->history = 10; }

#define QUASI_CLASS(NM, DEFAULTS, USES)                                                            \
    const tg_optim_class tg_##NM##_class = {                                                       \
        .name = #NM,                                                                               \
        .uses = USES,                                                                              \
        .defaults = DEFAULTS,                                                                      \
        .step = quasi_step,                                                                        \
        .init = quasi_init,                                                                        \
        .reset = quasi_reset,                                                                      \
        .destroy = quasi_destroy,                                                                  \
        .needs_closure = true,                                                                     \
        .state_size = quasi_state_size,                                                            \
        .state_save = quasi_state_save,                                                            \
        .state_check = quasi_state_check,                                                          \
        .state_load = quasi_state_load,                                                            \
    };
QUASI_CLASS(cg_fr, quasi_defaults, 0)
QUASI_CLASS(cg_pr, quasi_defaults, 0)
QUASI_CLASS(bfgs, quasi_defaults, 0)
QUASI_CLASS(lbfgs, lbfgs_defaults, TG_USES_HISTORY)
