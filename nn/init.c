/* nn/init.c: weight initialisers of linear and convolution layers. */
#include <limits.h>
#include <stdlib.h>

#include "internal.h"

/* LAPACK (Fortran calling convention): Householder QR and the explicit Q. */
void dgeqrf_(const int *m, const int *n, double *a, const int *lda, double *tau, double *work,
             const int *lwork, int *info);
void dorgqr_(const int *m, const int *n, const int *k, double *a, const int *lda, const double *tau,
             double *work, const int *lwork, int *info);

/* w viewed as a row-major matrix [in,out] (a linear layer's weight; a convolution's
 * [O, C/groups·kh·kw]) with orthonormal columns (in >= out) or rows (in < out): Q of the
 * QR factorisation of a standard normal matrix, with the signs of R's diagonal folded in
 * so the result is uniformly distributed (Mezzadri 2007). */
static int orthogonal(tg_tensor *w, int64_t rows, tg_rng *rng)
{
    if (tg_tensor_numel(w) > INT_MAX) return TG_EARG; /* LAPACK's int indices */
    int in = (int)rows, out = (int)(tg_tensor_numel(w) / rows);
    int m = in >= out ? in : out, n = in >= out ? out : in; /* tall m×n, column-major */
    double *a = malloc(sizeof(double) * (size_t)m * (size_t)n),
           *tau = malloc(sizeof(double) * (size_t)n);
    double *sign = malloc(sizeof(double) * (size_t)n), q;
    int info = 0, lwork = -1, rc = TG_OK;
    if (!a || !tau || !sign) rc = TG_ENOMEM;
    for (size_t i = 0; !rc && i < (size_t)m * (size_t)n; i++) a[i] = tg_rng_normal(rng);
    if (!rc) dgeqrf_(&m, &n, a, &m, tau, &q, &lwork, &info);
    double *work = NULL;
    if (!rc && !info) {
        lwork = (int)q > n ? (int)q : n;
        work = malloc(sizeof(double) * (size_t)lwork);
        if (!work) rc = TG_ENOMEM;
    }
    if (!rc && !info) dgeqrf_(&m, &n, a, &m, tau, work, &lwork, &info);
    for (int j = 0; !rc && !info && j < n; j++) sign[j] = a[j + (size_t)j * m] < 0 ? -1 : 1;
    if (!rc && !info) dorgqr_(&m, &n, &n, a, &m, tau, work, &lwork, &info);
    if (!rc && info) rc = TG_EARG;
    /* Q is m×n column-major: Q[i + j m]. */
    for (int i = 0; !rc && i < in; i++)
        for (int j = 0; j < out; j++) {
            double v = in >= out ? a[i + (size_t)j * m] * sign[j] : a[j + (size_t)i * m] * sign[i];
            tg_set(w, (int64_t)i * out + j, v);
        }
    free(a), free(tau), free(sign), free(work);
    return rc;
}

/* Weights by kind with the given fans, biases 0 (value for TG_INIT_CONSTANT); the
 * orthogonal scheme views the weight as a matrix of its first dimension's rows. */
static int init_layer(tg_module *m, tg_init kind, double value, tg_rng *rng, double in, double out)
{
    tg_tensor *w = m->p[0];
    if (m->n_p > 1) tg_tensor_fill(m->p[1], kind == TG_INIT_CONSTANT ? value : 0);
    switch (kind) {
    case TG_INIT_CONSTANT: return tg_tensor_fill(w, value);
    case TG_INIT_UNIFORM: return tg_tensor_rand_uniform(w, -1 / sqrt(in), 1 / sqrt(in), rng);
    case TG_INIT_XAVIER_NORMAL: return tg_tensor_rand_normal(w, 0, sqrt(2 / (in + out)), rng);
    case TG_INIT_XAVIER_UNIFORM: {
        double a = sqrt(6 / (in + out));
        return tg_tensor_rand_uniform(w, -a, a, rng);
    }
    case TG_INIT_HE_NORMAL: return tg_tensor_rand_normal(w, 0, sqrt(2 / in), rng);
    case TG_INIT_HE_UNIFORM: return tg_tensor_rand_uniform(w, -sqrt(6 / in), sqrt(6 / in), rng);
    case TG_INIT_ORTHOGONAL: return orthogonal(w, tg_tensor_dim(w, 0), rng);
    }
    return TG_EARG;
}

/* Fans: a linear layer's W [in,out] has fan_in = in, fan_out = out; a convolution's
 * W [O, C/g, kh, kw] has fan_in = C/g·kh·kw (what one output sums over) and fan_out =
 * O/g·kh·kw (the outputs one input reaches), as in PyTorch. */
static int init_one(tg_module *m, tg_init kind, double value, tg_rng *rng)
{
    tg_tensor *w = m->p[0];
    if (m->kind == NN_LINEAR)
        return init_layer(m, kind, value, rng, (double)tg_tensor_dim(w, 0),
                          (double)tg_tensor_dim(w, 1));
    double k = (double)tg_tensor_dim(w, 2) * (double)tg_tensor_dim(w, 3),
           g = (double)(m->conv.groups ? m->conv.groups : 1);
    return init_layer(m, kind, value, rng, (double)tg_tensor_dim(w, 1) * k,
                      (double)tg_tensor_dim(w, 0) / g * k);
}

static int init(tg_module *m, tg_init kind, double value, tg_rng *rng)
{
    if (m->kind == NN_LINEAR || m->kind == NN_CONV2D) return init_one(m, kind, value, rng);
    for (int i = 0; i < m->n_children; i++) {
        int rc = init(m->children[i], kind, value, rng);
        if (rc) return rc;
    }
    return TG_OK;
}

int tg_nn_init(tg_module *m, tg_init kind, double value, tg_rng *rng)
{
    if (!m || !rng || (int)kind < TG_INIT_CONSTANT || kind > TG_INIT_ORTHOGONAL || !isfinite(value))
        return TG_EARG;
    return init(m, kind, value, rng);
}
