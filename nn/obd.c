/* nn/obd.c: Optimal Brain Damage: the Hessian diagonal, saliencies, and pruning masks. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static int eval_grad(tg_loss_fn fn, void *ctx, int n, tg_tensor *const *params)
{
    for (int i = 0; i < n; i++) {
        int rc = tg_zero_grad(params[i]);
        if (rc) return rc;
    }
    double loss;
    int rc = fn(ctx, &loss);
    return rc < 0 ? rc : rc ? TG_EARG : TG_OK;
}

int tg_hessian_diag(tg_loss_fn fn, void *ctx, int n, tg_tensor *const *params,
                    tg_tensor *const *diag)
{
    if (!fn || n < 1 || !params || !diag) return TG_EARG;
    for (int i = 0; i < n; i++)
        if (!params[i] || !diag[i] || tg_tensor_numel(diag[i]) != tg_tensor_numel(params[i]))
            return TG_ESHAPE;
    for (int i = 0; i < n; i++)
        for (int64_t k = 0; k < tg_tensor_numel(params[i]); k++) {
            double w = tg_get(params[i], k), h = 1e-4 * fmax(1, fabs(w));
            tg_set(params[i], k, w + h);
            double wp = tg_get(params[i], k); /* as stored: f32 rounds w ± h */
            int rc = eval_grad(fn, ctx, n, params);
            double gp = rc ? 0 : tg_get(tg_grad(params[i]), k), gm = 0, wm = w;
            if (!rc) {
                tg_set(params[i], k, w - h);
                wm = tg_get(params[i], k);
                rc = eval_grad(fn, ctx, n, params);
                gm = rc ? 0 : tg_get(tg_grad(params[i]), k);
            }
            tg_set(params[i], k, w);
            if (rc) return rc;
            tg_set(diag[i], k, (gp - gm) / (wp - wm));
        }
    return TG_OK;
}

int tg_saliency(int n, tg_tensor *const *params, tg_tensor *const *diag, tg_tensor *const *out)
{
    if (n < 1 || !params || !diag || !out) return TG_EARG;
    for (int i = 0; i < n; i++) {
        int64_t m = tg_tensor_numel(params[i]);
        if (!diag[i] || !out[i] || tg_tensor_numel(diag[i]) != m || tg_tensor_numel(out[i]) != m)
            return TG_ESHAPE;
        for (int64_t k = 0; k < m; k++) {
            double w = tg_get(params[i], k);
            tg_set(out[i], k, w * w * tg_get(diag[i], k));
        }
    }
    return TG_OK;
}

int tg_feature_saliency(const tg_tensor *s, double *out)
{
    if (!s || !out || tg_tensor_ndim(s) != 2) return TG_EARG;
    int64_t in = tg_tensor_dim(s, 0), o = tg_tensor_dim(s, 1);
    for (int64_t i = 0; i < in; i++) {
        out[i] = 0;
        for (int64_t j = 0; j < o; j++) out[i] += tg_get(s, i * o + j);
    }
    return TG_OK;
}

struct tg_pruner {
    int n;
    tg_tensor **params;
    unsigned char **mask; /* 1 alive, 0 pruned */
    int64_t alive;
    /* undo: the last prune's (param, index, value) */
    int64_t n_undo, *undo_idx;
    int *undo_p;
    double *undo_v;
};

tg_pruner *tg_pruner_new(int n, tg_tensor *const *params, tg_status *st)
{
    if (n < 1 || !params) {
        tg_status_set(st, TG_EARG, "tg_pruner_new: no parameters");
        return NULL;
    }
    tg_pruner *p = calloc(1, sizeof *p);
    if (!p) goto oom;
    p->n = n;
    p->params = malloc(sizeof *p->params * (size_t)n);
    p->mask = calloc((size_t)n, sizeof *p->mask);
    if (!p->params || !p->mask) goto oom;
    for (int i = 0; i < n; i++) {
        if (!params[i]) {
            tg_pruner_free(p);
            tg_status_set(st, TG_EARG, "tg_pruner_new: parameter %d is NULL", i);
            return NULL;
        }
        p->params[i] = params[i];
        int64_t m = tg_tensor_numel(params[i]);
        p->mask[i] = malloc((size_t)(m ? m : 1));
        if (!p->mask[i]) goto oom;
        memset(p->mask[i], 1, (size_t)m);
        p->alive += m;
    }
    return p;
oom:
    tg_pruner_free(p);
    tg_status_set(st, TG_ENOMEM, "tg_pruner_new: out of memory");
    return NULL;
}

void tg_pruner_free(tg_pruner *p)
{
    if (!p) return;
    for (int i = 0; p->mask && i < p->n; i++) free(p->mask[i]);
    free(p->mask), free(p->params), free(p->undo_idx), free(p->undo_p), free(p->undo_v);
    free(p);
}

typedef struct cand {
    double s;
    int p;
    int64_t k;
} cand;

static int by_saliency(const void *a, const void *b)
{
    double x = ((const cand *)a)->s, y = ((const cand *)b)->s;
    return (x > y) - (x < y);
}

int64_t tg_pruner_prune(tg_pruner *p, tg_tensor *const *saliency, int64_t count)
{
    if (!p || !saliency || count < 0) return TG_EARG;
    cand *c = malloc(sizeof *c * (size_t)(p->alive ? p->alive : 1));
    if (!c) return TG_ENOMEM;
    int64_t m = 0;
    for (int i = 0; i < p->n; i++) {
        if (!saliency[i] || tg_tensor_numel(saliency[i]) != tg_tensor_numel(p->params[i])) {
            free(c);
            return TG_ESHAPE;
        }
        for (int64_t k = 0; k < tg_tensor_numel(p->params[i]); k++)
            if (p->mask[i][k]) c[m++] = (cand){tg_get(saliency[i], k), i, k};
    }
    qsort(c, (size_t)m, sizeof *c, by_saliency);
    if (count > m) count = m;
    free(p->undo_idx), free(p->undo_p), free(p->undo_v);
    p->undo_idx = malloc(sizeof(int64_t) * (size_t)(count ? count : 1));
    p->undo_p = malloc(sizeof(int) * (size_t)(count ? count : 1));
    p->undo_v = malloc(sizeof(double) * (size_t)(count ? count : 1));
    if (!p->undo_idx || !p->undo_p || !p->undo_v) {
        free(c);
        p->n_undo = 0;
        return TG_ENOMEM;
    }
    for (int64_t j = 0; j < count; j++) {
        p->undo_p[j] = c[j].p, p->undo_idx[j] = c[j].k,
        p->undo_v[j] = tg_get(p->params[c[j].p], c[j].k);
        p->mask[c[j].p][c[j].k] = 0;
        tg_set(p->params[c[j].p], c[j].k, 0);
    }
    p->n_undo = count;
    p->alive -= count;
    free(c);
    return count;
}

int tg_pruner_undo(tg_pruner *p)
{
    if (!p) return TG_EARG;
    for (int64_t j = 0; j < p->n_undo; j++) {
        p->mask[p->undo_p[j]][p->undo_idx[j]] = 1;
        tg_set(p->params[p->undo_p[j]], p->undo_idx[j], p->undo_v[j]);
    }
    p->alive += p->n_undo;
    p->n_undo = 0;
    return TG_OK;
}

void tg_pruner_apply(tg_pruner *p)
{
    if (!p) return;
    for (int i = 0; i < p->n; i++) {
        tg_tensor *g = tg_grad(p->params[i]);
        for (int64_t k = 0; k < tg_tensor_numel(p->params[i]); k++)
            if (!p->mask[i][k]) {
                tg_set(p->params[i], k, 0);
                if (g) tg_set(g, k, 0);
            }
    }
}

int64_t tg_pruner_alive(const tg_pruner *p) { return p ? p->alive : 0; }

/* ---- the exact diagonal, by Hessian-vector products ---- */

/* The recorded gradient of f at params into g (TG_GRAD_RECORD); *flat when f does not
 * depend on the parameters at all (its value needs no gradient). */
static int record_grad(tg_tape *tp, tg_scalar_fn f, void *ctx, int n, tg_tensor *const *params,
                       tg_tensor **g, bool *flat, tg_status *st)
{
    tg_tape_reset(tp);
    tg_tensor *y = f(tp, params, ctx);
    if (!y || tg_tensor_numel(y) != 1) {
        int code = tg_tape_errcode(tp) ? tg_tape_errcode(tp) : y ? TG_ESHAPE : TG_EARG;
        return tg_status_set(st, code, "tg_hessian_diag_exact: %s",
                             tg_tape_errcode(tp) ? tg_tape_error(tp)
                             : y                 ? "the function's value is not a scalar"
                                                 : "the function returned NULL");
    }
    *flat = !tg_requires_grad(y);
    if (*flat) return TG_OK;
    if (tg_gradients(tp, y, NULL, n, params, g, TG_GRAD_RECORD))
        return tg_status_set(st, tg_tape_errcode(tp), "tg_hessian_diag_exact: %s",
                             tg_tape_error(tp));
    return TG_OK;
}

int tg_hessian_diag_exact(tg_scalar_fn f, void *ctx, int n, tg_tensor *const *params,
                          tg_tensor *const *diag, tg_status *st)
{
    if (!f || n < 1 || !params || !diag)
        return tg_status_set(st, TG_EARG, "tg_hessian_diag_exact: bad arguments");
    for (int i = 0; i < n; i++) {
        if (!params[i] || !tg_tensor_is_leaf(params[i]) || !tg_requires_grad(params[i]))
            return tg_status_set(st, TG_EARG,
                                 "tg_hessian_diag_exact: parameter %d is not a leaf that "
                                 "requires a gradient",
                                 i);
        if (!diag[i] || tg_tensor_numel(diag[i]) != tg_tensor_numel(params[i]))
            return tg_status_set(st, TG_ESHAPE,
                                 "tg_hessian_diag_exact: diag[%d] does not have the %lld "
                                 "elements of parameter %d",
                                 i, (long long)tg_tensor_numel(params[i]), i);
    }
    tg_tape *tp = tg_tape_new();
    tg_tensor **g = calloc((size_t)n, sizeof *g), **seed = calloc((size_t)n, sizeof *seed);
    int rc = tp && g && seed ? TG_OK : TG_ENOMEM;
    for (int i = 0; i < n && !rc; i++) { /* unit vectors, one element set at a time */
        seed[i] = tg_tensor_new(tg_tensor_dtype(params[i]), tg_tensor_ndim(params[i]),
                                tg_tensor_shape(params[i]));
        if (!seed[i]) rc = TG_ENOMEM;
    }
    if (rc) {
        tg_status_set(st, rc, "tg_hessian_diag_exact: out of memory");
        goto done;
    }
    bool flat = false;
    if ((rc = record_grad(tp, f, ctx, n, params, g, &flat, st))) goto done;
    tg_tape_stats s0;
    tg_tape_get_stats(tp, &s0);
    /* Every sweep leaves its intermediate gradients in the arena: past this, the tape is
     * reset and the gradient recorded again. */
    size_t budget = 2 * s0.arena_used + ((size_t)64 << 20);
    for (int i = 0; i < n && !rc; i++)
        for (int64_t k = 0; k < tg_tensor_numel(params[i]); k++) {
            if (flat || !tg_requires_grad(g[i])) { /* the gradient is constant in params */
                tg_set(diag[i], k, 0);
                continue;
            }
            tg_tensor *col = NULL;
            tg_set(seed[i], k, 1);
            rc = tg_gradients(tp, g[i], seed[i], 1, &params[i], &col, 0);
            tg_set(seed[i], k, 0);
            if (rc) {
                tg_status_set(st, rc, "tg_hessian_diag_exact: %s", tg_tape_error(tp));
                break;
            }
            tg_set(diag[i], k, tg_get(col, k));
            tg_tape_stats s;
            tg_tape_get_stats(tp, &s);
            if (s.arena_used > budget && (rc = record_grad(tp, f, ctx, n, params, g, &flat, st)))
                break;
        }
done:
    for (int i = 0; seed && i < n; i++) tg_tensor_free(seed[i]);
    free(seed), free(g);
    tg_tape_free(tp);
    if (!rc) tg_status_set(st, TG_OK, "%s", "");
    return rc;
}

/* ---- LeCun, Denker and Solla's diagonal: one extra backward sweep ---- */

static double rd(const tg_tensor *t, int64_t i)
{
    return tg_tensor_dtype(t) == TG_F64 ? ((const double *)tg_data_const(t))[i]
                                        : (double)((const float *)tg_data_const(t))[i];
}

static void wr(tg_tensor *t, int64_t i, double v)
{
    if (tg_tensor_dtype(t) == TG_F64) ((double *)tg_data(t))[i] = v;
    else ((float *)tg_data(t))[i] = (float)v;
}

/* The activations of tg_nn_activation the sweep knows, by slope. */
enum { S_IDENTITY, S_SIGMOID, S_TANH, S_RELU, S_LEAKY, S_ELU, S_SOFTPLUS, S_ZERO, N_SLOPES };
static const char *const slope_names[N_SLOPES + 1] = {
    "identity", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "softplus", "step", "sign"};

static int slope_kind(const tg_module *act)
{
    for (int k = 0; k <= N_SLOPES; k++)
        if (act->act == tg_nn_act_id(slope_names[k])) return k < N_SLOPES ? k : S_ZERO;
    return -1;
}

/* d ⊙= f'(a)², a the activation's input and y its output (d's shape). */
static void times_slope_squared(const tg_module *act, const tg_tensor *a, const tg_tensor *y,
                                tg_tensor *d)
{
    int kind = slope_kind(act);
    double al = act->alpha;
    int64_t m = tg_tensor_numel(d);
    for (int64_t i = 0; i < m; i++) {
        double x = rd(a, i), v = rd(y, i), s;
        switch (kind) {
        case S_IDENTITY: s = 1; break;
        case S_SIGMOID: s = v * (1 - v); break;
        case S_TANH: s = 1 - v * v; break;
        case S_RELU: s = x > 0; break;
        case S_LEAKY: s = x > 0 ? 1 : al; break;        /* slope α at 0, as tg_leaky_relu */
        case S_ELU: s = x > 0 ? 1 : al * exp(x); break; /* α eˣ at and below 0 */
        case S_SOFTPLUS: s = 1 / (1 + exp(-x)); break;  /* σ(x) */
        default: s = 0; break;                          /* step, sign */
        }
        wr(d, i, rd(d, i) * s * s);
    }
}

#define LECUN_MAX_LAYERS 256

/* Flattens the (nested) sequential m into its layers; a negative code with the reason on
 * tp for a layer the second-order sweep cannot go through. */
static int lecun_layers(tg_tape *tp, tg_module *m, tg_module **out, int *n)
{
    switch (m->kind) {
    case NN_SEQUENTIAL:
        for (int i = 0; i < m->n_children; i++) {
            int rc = lecun_layers(tp, m->children[i], out, n);
            if (rc) return rc;
        }
        return TG_OK;
    case NN_LINEAR: break;
    case NN_DROPOUT:
        if (m->training && m->alpha > 0)
            return tg_tape_fail(tp, TG_EARG,
                                "tg_hessian_diag_lecun: dropout in training mode (set the "
                                "model to eval mode: dropout is then the identity)");
        return TG_OK; /* the identity */
    case NN_ACT:
        if (slope_kind(m) < 0)
            return tg_tape_fail(tp, TG_EARG,
                                "tg_hessian_diag_lecun: %s is not an elementwise activation "
                                "(only linear layers, elementwise activations and dropout in "
                                "eval mode are supported)",
                                m->act == tg_nn_act_id("softmax") ? "softmax" : "log_softmax");
        break;
    default:
        return tg_tape_fail(tp, TG_EARG,
                            "tg_hessian_diag_lecun: a %s layer (only linear layers, "
                            "elementwise activations and dropout in eval mode are supported)",
                            m->kind == NN_BATCHNORM           ? "batch norm"
                            : m->kind == NN_PRELU             ? "prelu"
                            : m->kind == NN_CONV2D            ? "conv2d"
                            : m->kind == NN_MAX_POOL2D        ? "max pool"
                            : m->kind == NN_AVG_POOL2D        ? "average pool"
                            : m->kind == NN_GLOBAL_AVG_POOL2D ? "global average pool"
                                                              : "flatten");
    }
    if (*n == LECUN_MAX_LAYERS)
        return tg_tape_fail(tp, TG_EARG, "tg_hessian_diag_lecun: more than %d layers",
                            LECUN_MAX_LAYERS);
    out[(*n)++] = m;
    return TG_OK;
}

static tg_tensor *param_of(const tg_module *m, int i)
{
    return m->bound[i] ? m->bound[i] : m->p[i];
}

/* ∂²E/∂z² on the diagonal, z the network's output, for E the loss as ops.h defines it. */
static tg_tensor *output_curvature(tg_tape *tp, tg_tensor *z, tg_obd_loss loss)
{
    int64_t m = tg_tensor_numel(z);
    tg_tensor *d = NULL;
    switch (loss) {
    case TG_OBD_CROSS_ENTROPY: /* mean over N rows of -log softmax(z)[y]: p (1 - p) / N */
        if (tg_tensor_ndim(z) != 2) {
            tg_tape_fail(tp, TG_ESHAPE,
                         "tg_hessian_diag_lecun: cross-entropy wants logits [N,C], got %d "
                         "dimensions",
                         tg_tensor_ndim(z));
            return NULL;
        }
        if (!(d = tg_softmax(tp, z, -1))) return NULL;
        for (int64_t i = 0; i < m; i++) {
            double p = rd(d, i);
            wr(d, i, p * (1 - p) / (double)tg_tensor_dim(z, 0));
        }
        return d;
    case TG_OBD_BCE_WITH_LOGITS: /* mean of softplus-type terms: σ(z) (1 - σ(z)) / numel */
        if (!(d = tg_sigmoid(tp, z))) return NULL;
        for (int64_t i = 0; i < m; i++) {
            double p = rd(d, i);
            wr(d, i, p * (1 - p) / (double)m);
        }
        return d;
    case TG_OBD_MSE:      /* mean (z - t)²: 2 / numel */
    case TG_OBD_HALF_SSE: /* ½ Σ (z - t)²: 1 */
        if ((d = tg_mul_scalar(tp, z, 0)))
            tg_tensor_fill(d, loss == TG_OBD_MSE ? 2 / (double)m : 1);
        return d;
    }
    tg_tape_fail(tp, TG_EARG, "tg_hessian_diag_lecun: unknown loss %d", (int)loss);
    return NULL;
}

/* The forward pass, then the second-order sweep: layer[] and its inputs in[] and outputs
 * out[] of the forward; the diagonal into diag. */
static int lecun_sweep(tg_tape *tp, tg_module **layer, int nl, tg_tensor **in, tg_tensor **out,
                       tg_tensor *x, tg_obd_loss loss, tg_tensor *const *diag)
{
    int n_lin = 0;
    for (int l = 0; l < nl; l++) {
        in[l] = x;
        if (layer[l]->kind == NN_LINEAR) {
            tg_tensor *w = param_of(layer[l], 0), *b = param_of(layer[l], 1);
            for (int j = 0; j < 2; j++)
                if (!diag[2 * n_lin + j] ||
                    tg_tensor_numel(diag[2 * n_lin + j]) != tg_tensor_numel(j ? b : w))
                    return tg_tape_fail(tp, TG_ESHAPE,
                                        "tg_hessian_diag_lecun: diag[%d] does not have the %lld "
                                        "elements of parameter %d",
                                        2 * n_lin + j, (long long)tg_tensor_numel(j ? b : w),
                                        2 * n_lin + j);
            n_lin++;
            x = tg_linear(tp, x, w, b);
        } else {
            x = tg_nn_forward(layer[l], tp, x);
        }
        if (!(out[l] = x)) return tg_tape_errcode(tp);
    }
    tg_tensor *d = output_curvature(tp, x, loss); /* ∂²E/∂(layer output)², diagonal */
    for (int l = nl - 1; l >= 0 && d; l--) {
        if (layer[l]->kind == NN_ACT) { /* ∂²E/∂a² = f'(a)² ∂²E/∂y² (no f'' term) */
            times_slope_squared(layer[l], in[l], out[l], d);
            continue;
        }
        n_lin--;
        tg_tensor *w = param_of(layer[l], 0);
        /* ∂²E/∂w_ij² = Σ_n x_nj² ∂²E/∂a_ni², ∂²E/∂b_i² = Σ_n ∂²E/∂a_ni² */
        tg_tensor *dw = tg_matmul(tp, tg_transpose(tp, tg_square(tp, in[l]), 0, 1), d);
        tg_tensor *db = tg_sum(tp, d, 0, false);
        if (!dw || !db) return tg_tape_errcode(tp);
        tg_tensor_copy(diag[2 * n_lin], dw);
        tg_tensor_copy(diag[2 * n_lin + 1], db);
        /* ∂²E/∂x_nj² = Σ_i w_ji² ∂²E/∂a_ni², for the layers below */
        if (n_lin > 0) d = tg_matmul(tp, d, tg_transpose(tp, tg_square(tp, w), 0, 1));
    }
    return d ? TG_OK : tg_tape_errcode(tp);
}

int tg_hessian_diag_lecun(tg_module *m, tg_tape *tp, tg_tensor *x, tg_obd_loss loss,
                          tg_tensor *const *diag)
{
    if (!tp) return TG_EARG;
    if (!m || !x || !diag)
        return tg_tape_fail(tp, TG_EARG, "tg_hessian_diag_lecun: %s is NULL",
                            !m   ? "the module"
                            : !x ? "the input"
                                 : "diag");
    if (tg_tape_errcode(tp)) return tg_tape_errcode(tp);
    tg_module *layer[LECUN_MAX_LAYERS];
    tg_tensor *in[LECUN_MAX_LAYERS], *out[LECUN_MAX_LAYERS];
    int nl = 0, rc = lecun_layers(tp, m, layer, &nl);
    if (rc) return rc;
    bool mode = tg_tape_set_grad_mode(tp, false);
    rc = lecun_sweep(tp, layer, nl, in, out, x, loss, diag);
    tg_tape_set_grad_mode(tp, mode);
    return rc;
}
