/* dist/ddp.c: data-parallel training (dist.h): the parameter broadcast, bucketed gradient
 * averaging started from the tape's gradient-ready hook, the full-batch closure wrapper,
 * Levenberg-Marquardt's reduction and the sharded evaluation.
 *
 * The gradients of all parameters live in one flat buffer; bucket k is the slice of a run
 * of parameters, taken from the last parameter to the first. When the hook reports a
 * parameter's gradient final, the bucket's count goes up; a full bucket is packed (each
 * gradient times rows / global rows) and its allreduce started, buckets always in index
 * order, so every rank starts the same collectives in the same order whatever order its
 * sweep finishes them in. tg_ddp_finish starts the rest, waits, and copies the sums back. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"
#include "tapegrad/dist.h"

typedef struct bucket {
    int p0, p1;       /* parameters p0..p1-1 (in params order) */
    int64_t off, len; /* elements in the flat buffer */
    int ready;        /* parameters reported final in this sweep */
    tg_comm_req req;
    bool started;
} bucket;

struct tg_ddp {
    tg_comm *comm;
    int n;
    tg_tensor **params;
    int *bucket_of;  /* parameter -> bucket */
    bool *ready;     /* parameter reported in this sweep */
    int64_t *offset; /* parameter -> its first element in the flat buffer */
    tg_dtype dt;
    void *flat;
    bucket *b;
    int nb, next_start, hint;
    bool overlap, active, solo; /* solo: one rank, no communication */
    tg_tape *tp;
    double scale; /* rows / global rows of this step */
    int rc;       /* the first failure inside the hook */
    double wait_s;
    int64_t overlapped;
    char err[256];
};

void tg_ddp_defaults(tg_ddp_opts *o)
{
    if (!o) return;
    o->bucket_bytes = (int64_t)1 << 20;
    o->overlap = true;
    o->broadcast = true;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int ddp_fail(tg_ddp *d, int code, const char *what)
{
    if (!d->rc) {
        d->rc = code;
        snprintf(d->err, sizeof d->err, "%s: %s", what, tg_comm_error(d->comm));
    }
    return code;
}

static tg_comm_type comm_type(tg_dtype dt) { return dt == TG_F32 ? TG_COMM_F32 : TG_COMM_F64; }

/* Buckets over the parameters from the last, each closing at >= bytes. */
static int plan(tg_ddp *d, int64_t bytes, bucket *out)
{
    size_t es = tg_dtype_size(d->dt);
    int nb = 0;
    int64_t acc = 0;
    for (int p = d->n - 1; p >= 0; p--) {
        if (acc == 0) {
            if (out) out[nb].p1 = p + 1;
            nb++;
        }
        acc += tg_tensor_numel(d->params[p]) * (int64_t)es;
        if (out) out[nb - 1].p0 = p;
        if (acc >= bytes) acc = 0;
    }
    return nb;
}

int tg_ddp_broadcast(tg_ddp *d)
{
    if (!d) return TG_EARG;
    for (int p = 0; p < d->n; p++) {
        int rc = tg_comm_bcast(d->comm, tg_data(d->params[p]), tg_tensor_numel(d->params[p]),
                               comm_type(d->dt), 0);
        if (rc) {
            d->rc = 0;
            return ddp_fail(d, rc, "tg_ddp_broadcast");
        }
    }
    return TG_OK;
}

void tg_ddp_free(tg_ddp *d)
{
    if (!d) return;
    if (d->active && d->tp) tg_tape_on_grad_ready(d->tp, NULL, NULL);
    for (int k = 0; d->b && k < d->nb; k++) /* b is NULL when tg_ddp_new ran out of memory */
        if (d->b[k].started) tg_comm_wait(&d->b[k].req);
    free(d->params), free(d->bucket_of), free(d->ready), free(d->offset), free(d->flat);
    free(d->b);
    free(d);
}

tg_ddp *tg_ddp_new(tg_comm *c, int n_params, tg_tensor *const *params, const tg_ddp_opts *opts,
                   tg_status *st)
{
    tg_ddp_opts o;
    tg_ddp_defaults(&o);
    if (opts) o = *opts;
    if (!c || !params || n_params < 1) {
        tg_status_set(st, TG_EARG, "tg_ddp_new: %s",
                      !c        ? "NULL communicator"
                      : !params ? "NULL parameters"
                                : "n_params < 1");
        return NULL;
    }
    if (o.bucket_bytes < 1) {
        tg_status_set(st, TG_EARG, "tg_ddp_new: bucket_bytes %lld: want >= 1",
                      (long long)o.bucket_bytes);
        return NULL;
    }
    tg_dtype dt = tg_tensor_dtype(params[0]);
    for (int p = 0; p < n_params; p++) {
        if (!params[p] || !tg_tensor_is_leaf(params[p])) {
            tg_status_set(st, TG_EARG, "tg_ddp_new: parameter %d is %s", p,
                          params[p] ? "not a leaf" : "NULL");
            return NULL;
        }
        if (tg_tensor_dtype(params[p]) != dt) {
            tg_status_set(st, TG_EDTYPE, "tg_ddp_new: parameter %d is %s, parameter 0 %s", p,
                          tg_dtype_name(tg_tensor_dtype(params[p])), tg_dtype_name(dt));
            return NULL;
        }
    }
    tg_ddp *d = calloc(1, sizeof *d);
    if (!d) {
        tg_status_set(st, TG_ENOMEM, "tg_ddp_new: out of memory");
        return NULL;
    }
    d->comm = c, d->n = n_params, d->dt = dt, d->overlap = o.overlap;
    d->params = malloc(sizeof *d->params * (size_t)n_params);
    d->bucket_of = malloc(sizeof *d->bucket_of * (size_t)n_params);
    d->ready = calloc((size_t)n_params, sizeof *d->ready);
    d->offset = malloc(sizeof *d->offset * (size_t)n_params);
    int64_t total = 0;
    for (int p = 0; p < n_params; p++) total += tg_tensor_numel(params[p]);
    d->flat = malloc(tg_dtype_size(dt) * (size_t)(total ? total : 1));
    if (d->params) memcpy(d->params, params, sizeof *d->params * (size_t)n_params);
    int64_t bytes = o.bucket_bytes;
    if (d->params) { /* plan reads the parameters */
        while (plan(d, bytes, NULL) > TG_COMM_MAX_PENDING) bytes *= 2;
        d->nb = plan(d, bytes, NULL);
        d->b = calloc((size_t)d->nb, sizeof *d->b);
    }
    if (!d->params || !d->bucket_of || !d->ready || !d->offset || !d->flat || !d->b) {
        tg_ddp_free(d);
        tg_status_set(st, TG_ENOMEM, "tg_ddp_new: out of memory for %lld gradients",
                      (long long)total);
        return NULL;
    }
    plan(d, bytes, d->b);
    int64_t off = 0;
    for (int k = 0; k < d->nb; k++) {
        d->b[k].off = off;
        for (int p = d->b[k].p0; p < d->b[k].p1; p++) {
            d->bucket_of[p] = k, d->offset[p] = off;
            off += tg_tensor_numel(params[p]);
        }
        d->b[k].len = off - d->b[k].off;
        d->b[k].req.id = -1;
    }
    if (o.broadcast && tg_ddp_broadcast(d)) {
        tg_status_set(st, d->rc, "%s", d->err);
        tg_ddp_free(d);
        return NULL;
    }
    return d;
}

/* Copies bucket k's gradients, times the step's scale, into the flat buffer and starts its
 * allreduce. A missing gradient, or a rank without rows, adds zeros. */
static void start_bucket(tg_ddp *d, int k)
{
    bucket *bk = &d->b[k];
    for (int p = bk->p0; p < bk->p1; p++) {
        tg_tensor *g = tg_grad(d->params[p]);
        int64_t n = tg_tensor_numel(d->params[p]);
        bool zero = !g || d->scale == 0;
        if (d->dt == TG_F32) {
            float *restrict dst = (float *)d->flat + d->offset[p];
            const float *restrict src = zero ? NULL : tg_data_const(g);
            float s = (float)d->scale;
            if (zero) memset(dst, 0, sizeof *dst * (size_t)n);
            else
                for (int64_t i = 0; i < n; i++) dst[i] = src[i] * s;
        } else {
            double *restrict dst = (double *)d->flat + d->offset[p];
            const double *restrict src = zero ? NULL : tg_data_const(g);
            double s = d->scale;
            if (zero) memset(dst, 0, sizeof *dst * (size_t)n);
            else
                for (int64_t i = 0; i < n; i++) dst[i] = src[i] * s;
        }
    }
    void *buf = (char *)d->flat + (size_t)bk->off * tg_dtype_size(d->dt);
    int rc = tg_comm_iallreduce(d->comm, buf, bk->len, comm_type(d->dt), &bk->req);
    bk->started = rc == TG_OK;
    if (rc) ddp_fail(d, rc, "tg_ddp: starting a bucket's allreduce");
}

/* The parameter index of leaf, or -1; starts at the hint (the sweep's order repeats). */
static int find_param(tg_ddp *d, const tg_tensor *leaf)
{
    for (int i = 0; i < d->n; i++) {
        int p = (d->hint + i) % d->n;
        if (d->params[p] == leaf) {
            d->hint = p ? p - 1 : d->n - 1;
            return p;
        }
    }
    return -1;
}

static void on_ready(tg_tensor *leaf, void *ctx)
{
    tg_ddp *d = ctx;
    int p = find_param(d, leaf);
    if (p < 0 || d->ready[p] || d->rc) return;
    d->ready[p] = true;
    bucket *bk = &d->b[d->bucket_of[p]];
    bk->ready++;
    while (d->next_start < d->nb &&
           d->b[d->next_start].ready == d->b[d->next_start].p1 - d->b[d->next_start].p0) {
        start_bucket(d, d->next_start++);
        d->overlapped++;
    }
    tg_comm_progress(d->comm);
}

int tg_ddp_begin(tg_ddp *d, tg_tape *tp, int64_t rows, int64_t global_rows)
{
    if (!d) return TG_EARG;
    d->err[0] = 0, d->rc = 0;
    if (d->active) {
        snprintf(d->err, sizeof d->err, "tg_ddp_begin: the last begin had no tg_ddp_finish");
        return TG_EARG;
    }
    if (rows < 0 || global_rows < -1 || (global_rows >= 0 && rows > global_rows)) {
        snprintf(d->err, sizeof d->err,
                 "tg_ddp_begin: rows %lld, global rows %lld: want 0 <= rows <= global rows "
                 "(or global rows -1)",
                 (long long)rows, (long long)global_rows);
        return TG_EARG;
    }
    if (global_rows < 0) {
        int64_t sum = rows;
        int rc = tg_comm_allreduce(d->comm, &sum, 1, TG_COMM_I64);
        if (rc) return ddp_fail(d, rc, "tg_ddp_begin");
        global_rows = sum;
    }
    if (global_rows == 0) {
        snprintf(d->err, sizeof d->err, "tg_ddp_begin: the global batch has no rows");
        return TG_EARG;
    }
    d->scale = (double)rows / (double)global_rows;
    for (int p = 0; p < d->n; p++) d->ready[p] = false;
    for (int k = 0; k < d->nb; k++) d->b[k].ready = 0, d->b[k].started = false;
    d->next_start = 0, d->hint = d->n - 1;
    d->active = true, d->tp = tp;
    d->solo = tg_comm_size(d->comm) == 1; /* the mean of one rank: nothing to send */
    if (tp && d->overlap && !d->solo) tg_tape_on_grad_ready(tp, on_ready, d);
    return TG_OK;
}

static void unpack(tg_ddp *d, int k)
{
    const bucket *bk = &d->b[k];
    size_t es = tg_dtype_size(d->dt);
    for (int p = bk->p0; p < bk->p1; p++) {
        tg_tensor *g = tg_grad(d->params[p]);
        if (!g && tg_zero_grad(d->params[p]) == TG_OK) g = tg_grad(d->params[p]);
        if (!g) {
            d->rc = TG_ENOMEM;
            snprintf(d->err, sizeof d->err, "tg_ddp_finish: out of memory for a gradient");
            continue;
        }
        memcpy(tg_data(g), (char *)d->flat + (size_t)d->offset[p] * es,
               es * (size_t)tg_tensor_numel(d->params[p]));
    }
}

int tg_ddp_finish(tg_ddp *d)
{
    if (!d) return TG_EARG;
    if (!d->active) {
        snprintf(d->err, sizeof d->err, "tg_ddp_finish: no tg_ddp_begin before it");
        return TG_ESTATE;
    }
    if (d->tp && d->overlap && !d->solo) tg_tape_on_grad_ready(d->tp, NULL, NULL);
    d->active = false;
    if (d->solo) { /* rows == global rows: the gradients are the mean already */
        for (int p = 0; p < d->n; p++)
            if (!tg_grad(d->params[p]) && tg_zero_grad(d->params[p])) {
                snprintf(d->err, sizeof d->err, "tg_ddp_finish: out of memory for a gradient");
                return TG_ENOMEM;
            }
        return TG_OK;
    }
    while (!d->rc && d->next_start < d->nb) start_bucket(d, d->next_start++);
    double t0 = now_s();
    for (int k = 0; k < d->nb; k++) {
        if (!d->b[k].started) continue;
        d->b[k].started = false;
        int rc = tg_comm_wait(&d->b[k].req);
        if (rc) ddp_fail(d, rc, "tg_ddp_finish");
        else if (!d->rc) unpack(d, k);
    }
    d->wait_s += now_s() - t0;
    return d->rc;
}

int tg_ddp_n_buckets(const tg_ddp *d) { return d ? d->nb : -1; }
double tg_ddp_wait_seconds(const tg_ddp *d) { return d ? d->wait_s : -1; }
int64_t tg_ddp_overlapped(const tg_ddp *d) { return d ? d->overlapped : -1; }
const char *tg_ddp_error(const tg_ddp *d) { return d ? d->err : ""; }

/* ---- full-batch closures ---- */

struct tg_dist_closure {
    tg_comm *comm;
    int n;
    tg_tensor **params;
    tg_loss_fn fn;
    void *ctx;
    int64_t rows;
    double scale; /* rows / total rows */
    double *flat; /* every gradient, then the loss */
    int64_t total;
    char err[256];
};

tg_dist_closure *tg_dist_closure_new(tg_comm *c, int n_params, tg_tensor *const *params,
                                     tg_loss_fn fn, void *ctx, int64_t rows, tg_status *st)
{
    if (!c || !params || n_params < 1 || !fn || rows < 0) {
        tg_status_set(st, TG_EARG,
                      "tg_dist_closure_new: NULL communicator, parameters or function, "
                      "n_params %d < 1 or rows %lld < 0",
                      n_params, (long long)rows);
        return NULL;
    }
    int64_t total = 0;
    for (int p = 0; p < n_params; p++) {
        if (!params[p]) {
            tg_status_set(st, TG_EARG, "tg_dist_closure_new: parameter %d is NULL", p);
            return NULL;
        }
        total += tg_tensor_numel(params[p]);
    }
    tg_dist_closure *dc = calloc(1, sizeof *dc);
    if (dc) {
        dc->params = malloc(sizeof *dc->params * (size_t)n_params);
        dc->flat = malloc(sizeof *dc->flat * (size_t)(total + 1));
    }
    if (!dc || !dc->params || !dc->flat) {
        tg_dist_closure_free(dc);
        tg_status_set(st, TG_ENOMEM, "tg_dist_closure_new: out of memory");
        return NULL;
    }
    memcpy(dc->params, params, sizeof *dc->params * (size_t)n_params);
    dc->comm = c, dc->n = n_params, dc->fn = fn, dc->ctx = ctx, dc->rows = rows;
    dc->total = total;
    int64_t all = rows;
    int rc = tg_comm_allreduce(c, &all, 1, TG_COMM_I64);
    if (rc || all <= 0) {
        tg_status_set(st, rc ? rc : TG_EARG, "tg_dist_closure_new: %s",
                      rc ? tg_comm_error(c) : "no rank has rows");
        tg_dist_closure_free(dc);
        return NULL;
    }
    dc->scale = (double)rows / (double)all;
    return dc;
}

void tg_dist_closure_free(tg_dist_closure *dc)
{
    if (!dc) return;
    free(dc->params), free(dc->flat);
    free(dc);
}

const char *tg_dist_closure_error(const tg_dist_closure *dc) { return dc ? dc->err : ""; }

int tg_dist_closure_call(void *ctx, double *loss)
{
    tg_dist_closure *dc = ctx;
    if (!dc || !loss) return TG_EARG;
    double l = 0;
    if (dc->rows > 0) {
        int rc = dc->fn(dc->ctx, &l);
        /* A failing rank still joins the sum, so the others do not wait for it: its
         * loss is NaN, which stops the step on every rank. */
        if (rc) {
            snprintf(dc->err, sizeof dc->err, "tg_dist_closure_call: the closure failed (%d)", rc);
            l = (double)NAN;
        }
    }
    for (int p = 0, k = 0; p < dc->n; p++) {
        tg_tensor *g = tg_grad(dc->params[p]);
        int64_t n = tg_tensor_numel(dc->params[p]);
        for (int64_t j = 0; j < n; j++, k++)
            dc->flat[k] = g && dc->rows > 0 ? tg_get(g, j) * dc->scale : 0;
    }
    dc->flat[dc->total] = dc->rows > 0 ? l * dc->scale : 0;
    int rc = tg_comm_allreduce(dc->comm, dc->flat, dc->total + 1, TG_COMM_F64);
    if (rc) {
        snprintf(dc->err, sizeof dc->err, "tg_dist_closure_call: %s", tg_comm_error(dc->comm));
        return rc;
    }
    for (int p = 0, k = 0; p < dc->n; p++) {
        tg_tensor *g = tg_grad(dc->params[p]);
        if (!g && tg_zero_grad(dc->params[p]) == TG_OK) g = tg_grad(dc->params[p]);
        int64_t n = tg_tensor_numel(dc->params[p]);
        if (!g) return TG_ENOMEM;
        for (int64_t j = 0; j < n; j++, k++) tg_set(g, j, dc->flat[k]);
    }
    *loss = dc->flat[dc->total];
    return TG_OK;
}

/* ---- Levenberg-Marquardt ---- */

static int lm_reduce(void *ctx, double *buf, int64_t n)
{
    return tg_comm_allreduce(ctx, buf, n, TG_COMM_F64);
}

int tg_dist_lm(tg_optim *opt, tg_comm *c)
{
    return tg_optim_lm_set_reduce(opt, c ? lm_reduce : NULL, c);
}

/* ---- sharded evaluation ---- */

int tg_dist_evaluate(tg_comm *c, const tg_dataset *ds, int64_t batch, tg_tape *tp,
                     tg_dist_forward_fn fwd, void *ctx, double *loss, double *metric, tg_status *st)
{
    if (!c || !ds || !tp || !fwd || batch < 1)
        return tg_status_set(st, TG_EARG,
                             "tg_dist_evaluate: NULL communicator, data, tape or forward, or "
                             "batch %lld < 1",
                             (long long)batch);
    tg_batcher *b = tg_batcher_new_shard(ds, batch, false, 0, tg_comm_rank(c), tg_comm_size(c), st);
    if (!b) return st ? st->code : TG_EARG;
    bool classify = ds->n_classes > 0, mode = tg_tape_set_grad_mode(tp, false);
    double sums[3] = {0, 0, 0}; /* loss, metric, rows */
    int rc = TG_OK;
    tg_tensor *x, *y;
    while (tg_batcher_next(b, &x, &y)) {
        int64_t rows = tg_tensor_dim(x, 0);
        if (rows == 0 || rc) continue; /* every rank runs as many batches; none may stop */
        tg_tape_reset(tp);
        tg_tensor *out = fwd(tp, x, ctx), *l = NULL;
        if (out && classify) l = tg_cross_entropy(tp, out, y);
        else if (out) {
            tg_tensor *t = y;
            if (tg_tensor_ndim(y) == 1) {
                int64_t s[2] = {rows, 1};
                t = tg_reshape(tp, y, 2, s);
            }
            l = tg_mse_loss(tp, out, t);
        }
        if (!l) {
            rc = tg_status_set(st, tg_tape_errcode(tp) ? tg_tape_errcode(tp) : TG_EARG,
                               "tg_dist_evaluate: %s", tg_tape_error(tp));
            sums[0] = (double)NAN; /* the other ranks see the failure in the sum */
            continue;
        }
        sums[0] += tg_get(l, 0) * (double)rows;
        sums[1] += (classify ? tg_accuracy(out, y) : tg_get(l, 0)) * (double)rows;
        sums[2] += (double)rows;
    }
    tg_tape_reset(tp);
    tg_tape_set_grad_mode(tp, mode);
    tg_batcher_free(b);
    int crc = tg_comm_allreduce(c, sums, 3, TG_COMM_F64);
    if (crc) return tg_status_set(st, crc, "tg_dist_evaluate: %s", tg_comm_error(c));
    if (rc) return rc;
    if (sums[2] > 0 && (sums[0] != sums[0]))
        return tg_status_set(st, TG_EARG, "tg_dist_evaluate: the forward failed on another rank");
    if (loss) *loss = sums[2] > 0 ? sums[0] / sums[2] : (double)NAN;
    if (metric) *metric = sums[2] > 0 ? sums[1] / sums[2] : (double)NAN;
    return TG_OK;
}
