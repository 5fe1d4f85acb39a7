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
