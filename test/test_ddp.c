/* test/test_ddp.c: data-parallel training (dist.h) over the thread communicator. N ranks x
 * batch b against 1 rank x batch N·b after 20 steps (SGD-momentum, Adam; L-BFGS and
 * Levenberg-Marquardt full batch over shards): the same weights to 1e-12 in f64. What
 * differs is only the rounding of the mean: one rank sums the N·b rows' gradients in one
 * pass and divides by N·b; N ranks each take the mean of their rows, scale it by rows /
 * N·b and the ranks' parts are added in rank order. Bucket sizes and overlap change no bit;
 * every rank ends with the same bits; sharded evaluation; batch norm statistics local. */
#include <pthread.h>
#include <stdlib.h>

#include "check.h"
#include "ddp_data.h"
#include "tapegrad.h"

#define MAXR 4
#define STEPS 20

/* The rows [lo, hi) of data as a data set of its own. */
static void sub_data(int64_t lo, int64_t hi, tg_dataset *out)
{
    int64_t sx[2] = {hi - lo, DIN}, sy[1] = {hi - lo};
    memset(out, 0, sizeof *out);
    out->x = tg_tensor_from(TG_F64, 2, sx, (const double *)tg_data(data.x) + lo * DIN);
    out->y = tg_tensor_from(TG_F64, 1, sy, (const double *)tg_data(data.y) + lo);
    out->n = hi - lo, out->d = DIN, out->n_classes = NCLS;
}

static tg_module *make_model(bool bn)
{
    int64_t sizes[3] = {DIN, 7, NCLS};
    tg_status st = {0};
    return tg_nn_mlp(3, sizes, "tanh", 0, bn, TG_F64, &st);
}

typedef struct run_cfg {
    const char *method;
    int ranks;
    int64_t batch; /* per rank */
    int64_t bucket_bytes;
    bool overlap, bn;
} run_cfg;

typedef struct rank_job {
    const run_cfg *cfg;
    tg_comm *c;
    tg_module *m;
    double w[256]; /* the weights after the run */
    int64_t nw;
    int rc, nb;
    int64_t overlapped;
    double eval_out[NCLS];
    char msg[256];
} rank_job;

static int64_t flat_weights(tg_module *m, double *w)
{
    tg_tensor *ps[16];
    int np = tg_nn_params(m, ps, 16);
    int64_t k = 0;
    for (int p = 0; p < np; p++)
        for (int64_t j = 0; j < tg_tensor_numel(ps[p]); j++) w[k++] = tg_get(ps[p], j);
    return k;
}

static tg_optim *make_optim(const char *method, int np, tg_tensor **ps)
{
    tg_optim_opts o;
    tg_optim_defaults(method, &o);
    o.lr = strcmp(method, "adam") == 0 ? 0.01 : 0.1;
    if (strcmp(method, "momentum") == 0) o.momentum = 0.9;
    return tg_optim_new(method, np, ps, &o, NULL);
}

/* SGD-style training: one rank of cfg->ranks (ranks == 0: the 1-rank reference without a
 * communicator, batch ranks x batch). */
static void *train_rank(void *p)
{
    rank_job *j = p;
    const run_cfg *cfg = j->cfg;
    tg_tensor *ps[16];
    int np = tg_nn_params(j->m, ps, 16);
    int r = j->c ? tg_comm_rank(j->c) : 0, size = j->c ? tg_comm_size(j->c) : 1;
    if (r != 0) /* only rank 0's start counts: the broadcast must replace these */
        for (int q = 0; q < np; q++) tg_tensor_fill(ps[q], 0.123 * r);
    tg_optim *opt = make_optim(cfg->method, np, ps);
    tg_tape *tp = tg_tape_new();
    tg_status st = {0};
    tg_batcher *b = j->c ? tg_batcher_new_shard(&data, cfg->batch, true, 11, r, size, &st)
                         : tg_batcher_new(&data, cfg->batch * cfg->ranks, true, 11, &st);
    tg_ddp *d = NULL;
    if (j->c) {
        tg_ddp_opts o;
        tg_ddp_defaults(&o);
        o.bucket_bytes = cfg->bucket_bytes, o.overlap = cfg->overlap;
        d = tg_ddp_new(j->c, np, ps, &o, &st);
        if (!d) j->rc = st.code, snprintf(j->msg, sizeof j->msg, "%s", st.msg);
    }
    for (int s = 0; s < STEPS && !j->rc && opt && b; s++) {
        tg_tensor *x, *y;
        if (!tg_batcher_next(b, &x, &y)) {
            tg_batcher_reset(b);
            tg_batcher_next(b, &x, &y);
        }
        tg_optim_zero_grad(opt);
        tg_tape_reset(tp);
        int64_t rows = tg_tensor_dim(x, 0);
        if (d && (j->rc = tg_ddp_begin(d, tp, rows, tg_batcher_global_rows(b)))) break;
        if (rows > 0) {
            tg_tensor *loss = tg_cross_entropy(tp, tg_nn_forward(j->m, tp, x), y);
            if (tg_backward(tp, loss)) j->rc = -100;
        }
        if (d && (j->rc = tg_ddp_finish(d))) snprintf(j->msg, sizeof j->msg, "%s", tg_ddp_error(d));
        if (!j->rc) j->rc = tg_optim_step(opt);
    }
    if (!opt || !b) j->rc = -101;
    j->nw = flat_weights(j->m, j->w);
    j->nb = tg_ddp_n_buckets(d);
    j->overlapped = tg_ddp_overlapped(d);
    if (cfg->bn) { /* eval-mode output of row 0: uses this rank's running statistics */
        tg_nn_set_training(j->m, false);
        tg_tape_reset(tp);
        int64_t s1[2] = {1, DIN};
        tg_tensor *x0 = tg_tensor_from(TG_F64, 2, s1, tg_data(data.x));
        tg_tensor *out = tg_nn_forward(j->m, tp, x0);
        for (int k = 0; k < NCLS; k++) j->eval_out[k] = tg_get(out, k);
        tg_tensor_free(x0);
    }
    tg_ddp_free(d);
    tg_batcher_free(b);
    tg_tape_free(tp);
    tg_optim_free(opt);
    return NULL;
}

/* Runs cfg on cfg->ranks threads (0: the reference) into jobs[0..]. */
static void run(const run_cfg *cfg, rank_job *jobs)
{
    make_data();
    int n = cfg->ranks ? cfg->ranks : 1;
    tg_comm *cs[MAXR] = {0};
    if (cfg->ranks) CHECK(tg_comm_thread_group_new(n, cs, NULL) == 0);
    pthread_t th[MAXR];
    for (int r = 0; r < n; r++) {
        memset(&jobs[r], 0, sizeof jobs[r]);
        jobs[r].cfg = cfg, jobs[r].c = cs[r], jobs[r].m = make_model(cfg->bn);
    }
    for (int r = 0; r < n; r++) pthread_create(&th[r], NULL, train_rank, &jobs[r]);
    for (int r = 0; r < n; r++) pthread_join(th[r], NULL);
    for (int r = 0; r < n; r++) tg_comm_free(cs[r]), tg_nn_free(jobs[r].m);
}

static double max_diff(const double *a, const double *b, int64_t n)
{
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = fmax(m, fabs(a[i] - b[i]));
    return m;
}

static rank_job ref[1], par[MAXR];

/* The reference: 1 process, batch ranks x batch, no communicator. */
static void run_reference(const char *method, int ranks, int64_t batch)
{
    static run_cfg cfg;
    cfg = (run_cfg){method, ranks, batch, 1 << 20, true, false};
    make_data();
    memset(ref, 0, sizeof ref);
    ref[0].cfg = &cfg, ref[0].m = make_model(false);
    train_rank(&ref[0]);
    tg_nn_free(ref[0].m);
}

static void test_equivalence(void)
{
    const char *methods[] = {"momentum", "adam"};
    int ranks[] = {1, 2, 3};
    for (int mi = 0; mi < 2; mi++)
        for (int ri = 0; ri < 3; ri++) {
            run_reference(methods[mi], ranks[ri], 8);
            CHECK(ref[0].rc == 0 && ref[0].nw == 5 * 7 + 7 + 7 * 3 + 3);
            run_cfg cfg = {methods[mi], ranks[ri], 8, 1 << 20, true, false};
            run(&cfg, par);
            for (int r = 0; r < ranks[ri]; r++) {
                CHECK(par[r].rc == 0);
                if (par[r].rc) printf("  rank %d: %s\n", r, par[r].msg);
                CHECK(par[r].nw == ref[0].nw);
                /* every rank the same bits */
                CHECK(memcmp(par[r].w, par[0].w, sizeof(double) * (size_t)par[0].nw) == 0);
            }
            if (ranks[ri] == 1) /* one rank: tg_ddp changes no bit */
                CHECK(memcmp(par[0].w, ref[0].w, sizeof(double) * (size_t)ref[0].nw) == 0);
            double dmax = max_diff(par[0].w, ref[0].w, ref[0].nw);
            CHECK(dmax <= 1e-12);
            CHECK(dmax > 0 || ranks[ri] == 1); /* not bit for bit: the mean is rounded apart */
            if (dmax > 1e-12) printf("  %s x %d: max diff %g\n", methods[mi], ranks[ri], dmax);
            /* and training moved the weights: the comparison is not of two starts */
            double moved = 0;
            tg_module *m0 = make_model(false);
            double w0[256];
            flat_weights(m0, w0);
            tg_nn_free(m0);
            moved = max_diff(w0, ref[0].w, ref[0].nw);
            CHECK(moved > 1e-3);
        }
}

static void test_buckets_and_overlap(void)
{
    run_cfg base = {"momentum", 3, 8, 1 << 20, true, false};
    run(&base, par);
    double w[256];
    int64_t nw = par[0].nw;
    memcpy(w, par[0].w, sizeof(double) * (size_t)nw);
    CHECK(par[0].nb == 1 && par[0].overlapped > 0);
    int64_t sizes[] = {1, 32, 64, 1 << 20};
    /* W1 40, b1 7, W2 21, b2 3 doubles, from the last: {b2} {W2} {b1} {W1}; {b2, W2} {b1}
     * {W1}; {b2, W2} {b1, W1}; all */
    int nbs[] = {4, 3, 2, 1};
    for (int i = 0; i < 4; i++)
        for (int ov = 0; ov < 2; ov++) {
            run_cfg cfg = {"momentum", 3, 8, sizes[i], ov == 1, false};
            run(&cfg, par);
            for (int r = 0; r < 3; r++) {
                CHECK(par[r].rc == 0);
                CHECK(memcmp(par[r].w, w, sizeof(double) * (size_t)nw) == 0);
                CHECK(ov ? par[r].overlapped > 0 : par[r].overlapped == 0);
            }
            CHECK(par[0].nb == nbs[i]);
            if (par[0].nb != nbs[i])
                printf("  %lld bytes: %d buckets\n", (long long)sizes[i], par[0].nb);
        }
}

/* ---- full batch: L-BFGS through the closure wrapper, LM through its reduction ---- */

typedef struct fb_ctx {
    tg_module *m;
    tg_tape *tp;
    const tg_dataset *ds;
    tg_tensor *onehot; /* [n, 3] */
} fb_ctx;

static int fb_loss(void *p, double *loss)
{
    fb_ctx *c = p;
    tg_tape_reset(c->tp);
    tg_tensor *l = tg_cross_entropy(c->tp, tg_nn_forward(c->m, c->tp, c->ds->x), c->ds->y);
    if (!l || tg_backward(c->tp, l)) return TG_EARG;
    *loss = tg_get(l, 0);
    return 0;
}

static tg_tensor *lm_residual(tg_tape *tp, void *p)
{
    fb_ctx *c = p; /* the outputs [n, 3] against one-hot targets */
    return tg_sub(tp, tg_nn_forward(c->m, tp, c->ds->x), c->onehot);
}

typedef struct fb_job {
    const char *method;
    tg_comm *c;
    int ranks; /* 0: reference over all rows */
    double w[256];
    int64_t nw;
    int rc;
    double loss;
    char msg[256];
} fb_job;

static void *fb_rank(void *p)
{
    fb_job *j = p;
    int r = j->c ? tg_comm_rank(j->c) : 0, size = j->c ? tg_comm_size(j->c) : 1;
    int64_t lo = NROWS * r / size, hi = NROWS * (r + 1) / size;
    tg_dataset part;
    sub_data(lo, hi, &part);
    int64_t s2[2] = {hi - lo, NCLS};
    /* LM: a model small enough for JᵀJ to be well conditioned (rounding differences of
     * the sum stay at rounding level); L-BFGS: the MLP */
    int64_t lin[3] = {DIN, 2, NCLS};
    tg_module *m = strcmp(j->method, "lm") == 0 ? tg_nn_mlp(3, lin, "tanh", 0, false, TG_F64, NULL)
                                                : make_model(false);
    fb_ctx ctx = {m, tg_tape_new(), &part, tg_tensor_new(TG_F64, 2, s2)};
    for (int64_t i = 0; i < hi - lo; i++)
        tg_set(ctx.onehot, i * NCLS + (int64_t)tg_get(part.y, i), 1);
    tg_tensor *ps[16];
    int np = tg_nn_params(ctx.m, ps, 16);
    tg_optim_opts o;
    tg_optim_defaults(j->method, &o);
    if (strcmp(j->method, "lbfgs") == 0) o.lr = 1;
    tg_optim *opt = tg_optim_new(j->method, np, ps, &o, NULL);
    tg_status st = {0};
    tg_dist_closure *dc = NULL;
    if (j->c && strcmp(j->method, "lm") != 0) {
        dc = tg_dist_closure_new(j->c, np, ps, fb_loss, &ctx, hi - lo, &st);
        if (!dc) j->rc = st.code;
    }
    if (j->c && strcmp(j->method, "lm") == 0) j->rc = tg_dist_lm(opt, j->c);
    for (int s = 0; s < STEPS && !j->rc; s++) {
        if (strcmp(j->method, "lm") == 0)
            j->rc = tg_optim_step_lm(opt, lm_residual, &ctx, &j->loss, &st);
        else if (dc) j->rc = tg_optim_step_closure(opt, tg_dist_closure_call, dc, &j->loss);
        else j->rc = tg_optim_step_closure(opt, fb_loss, &ctx, &j->loss);
    }
    if (j->rc) snprintf(j->msg, sizeof j->msg, "%.120s %.120s", st.msg, tg_dist_closure_error(dc));
    j->nw = flat_weights(ctx.m, j->w);
    tg_dist_closure_free(dc);
    tg_optim_free(opt);
    tg_tape_free(ctx.tp);
    tg_tensor_free(ctx.onehot);
    tg_nn_free(ctx.m);
    tg_dataset_free(&part);
    return NULL;
}

static void test_full_batch(void)
{
    make_data();
    const char *methods[] = {"lbfgs", "lm"};
    for (int mi = 0; mi < 2; mi++) {
        fb_job rj = {methods[mi], NULL, 0, {0}, 0, 0, 0, ""};
        fb_rank(&rj);
        CHECK(rj.rc == 0);
        if (rj.rc) printf("  reference %s: %s\n", methods[mi], rj.msg);
        for (int n = 1; n <= 3; n++) {
            fb_job jobs[MAXR];
            tg_comm *cs[MAXR];
            CHECK(tg_comm_thread_group_new(n, cs, NULL) == 0);
            pthread_t th[MAXR];
            for (int r = 0; r < n; r++) {
                jobs[r] = (fb_job){methods[mi], cs[r], n, {0}, 0, 0, 0, ""};
                pthread_create(&th[r], NULL, fb_rank, &jobs[r]);
            }
            for (int r = 0; r < n; r++) pthread_join(th[r], NULL);
            for (int r = 0; r < n; r++) {
                CHECK(jobs[r].rc == 0);
                if (jobs[r].rc) printf("  %s rank %d: %s\n", methods[mi], r, jobs[r].msg);
                CHECK(memcmp(jobs[r].w, jobs[0].w, sizeof(double) * (size_t)rj.nw) == 0);
                tg_comm_free(cs[r]);
            }
            /* 1 rank: the wrapper and the reduction change no bit. More: L-BFGS to 1e-12;
             * LM to 1e-9, since its Gauss-Newton solve (mu falls to 1e-12) magnifies the
             * sum's rounding by the condition number of JᵀJ */
            double dmax = max_diff(jobs[0].w, rj.w, rj.nw), tol = mi == 0 ? 1e-12 : 1e-9;
            if (n == 1) CHECK(memcmp(jobs[0].w, rj.w, sizeof(double) * (size_t)rj.nw) == 0);
            CHECK(dmax <= tol);
            CHECK_NEAR(jobs[0].loss, rj.loss, tol * fmax(1, fabs(rj.loss)));
            if (dmax > tol) printf("  %s x %d: max diff %g\n", methods[mi], n, dmax);
        }
    }
}

/* ---- evaluation, batch norm ---- */

static tg_tensor *eval_fwd(tg_tape *tp, tg_tensor *x, void *ctx)
{
    return tg_nn_forward(ctx, tp, x);
}

typedef struct ev_job {
    tg_comm *c;
    double loss, acc;
    int rc;
} ev_job;

static void *ev_rank(void *p)
{
    ev_job *j = p;
    tg_module *m = make_model(false);
    tg_tape *tp = tg_tape_new();
    j->rc = tg_dist_evaluate(j->c, &data, 7, tp, eval_fwd, m, &j->loss, &j->acc, NULL);
    tg_tape_free(tp);
    tg_nn_free(m);
    return NULL;
}

static void test_evaluate(void)
{
    make_data();
    tg_comm *one;
    CHECK(tg_comm_thread_group_new(1, &one, NULL) == 0);
    ev_job rj = {one, 0, 0, 0};
    ev_rank(&rj);
    CHECK(rj.rc == 0);
    /* against the plain computation over the whole set */
    tg_module *m = make_model(false);
    tg_tape *tp = tg_tape_new();
    tg_tensor *out = tg_nn_forward(m, tp, data.x);
    CHECK_NEAR(rj.loss, tg_get(tg_cross_entropy(tp, out, data.y), 0), 1e-12);
    CHECK_NEAR(rj.acc, tg_accuracy(out, data.y), 1e-12);
    tg_tape_free(tp);
    tg_nn_free(m);
    tg_comm_free(one);
    tg_comm *cs[MAXR];
    CHECK(tg_comm_thread_group_new(3, cs, NULL) == 0);
    ev_job jobs[3];
    pthread_t th[3];
    for (int r = 0; r < 3; r++) jobs[r] = (ev_job){cs[r], 0, 0, 0};
    for (int r = 0; r < 3; r++) pthread_create(&th[r], NULL, ev_rank, &jobs[r]);
    for (int r = 0; r < 3; r++) pthread_join(th[r], NULL);
    for (int r = 0; r < 3; r++) {
        CHECK(jobs[r].rc == 0);
        CHECK_NEAR(jobs[r].loss, rj.loss, 1e-12);
        CHECK_NEAR(jobs[r].acc, rj.acc, 1e-15);
        CHECK(jobs[r].loss == jobs[0].loss && jobs[r].acc == jobs[0].acc);
        tg_comm_free(cs[r]);
    }
    CHECK(tg_dist_evaluate(NULL, &data, 7, NULL, eval_fwd, NULL, NULL, NULL, NULL) == TG_EARG);
}

static void test_batchnorm_local(void)
{
    run_cfg cfg = {"momentum", 2, 8, 1 << 20, true, true};
    run(&cfg, par);
    CHECK(par[0].rc == 0 && par[1].rc == 0);
    /* the parameters agree, the running statistics (seen in eval mode) do not */
    CHECK(memcmp(par[0].w, par[1].w, sizeof(double) * (size_t)par[0].nw) == 0);
    CHECK(max_diff(par[0].eval_out, par[1].eval_out, NCLS) > 1e-9);
}

/* ---- errors ---- */

static void test_errors(void)
{
    tg_comm *c;
    tg_status st = {0};
    CHECK(tg_comm_thread_group_new(1, &c, NULL) == 0);
    int64_t s[1] = {3};
    tg_tensor *a = tg_tensor_new(TG_F64, 1, s), *b32 = tg_tensor_new(TG_F32, 1, s);
    tg_set_requires_grad(a, true), tg_set_requires_grad(b32, true);
    tg_tensor *ps[2] = {a, b32};
    CHECK(tg_ddp_new(NULL, 1, ps, NULL, &st) == NULL && st.code == TG_EARG);
    CHECK(tg_ddp_new(c, 0, ps, NULL, &st) == NULL && st.code == TG_EARG);
    CHECK(tg_ddp_new(c, 2, ps, NULL, &st) == NULL && st.code == TG_EDTYPE);
    CHECK_STR_HAS(st.msg, "parameter 1 is f32");
    tg_ddp_opts o;
    tg_ddp_defaults(&o);
    o.bucket_bytes = 0;
    CHECK(tg_ddp_new(c, 1, ps, &o, &st) == NULL && st.code == TG_EARG);
    CHECK_STR_HAS(st.msg, "bucket_bytes 0");
    tg_tensor *nul[1] = {NULL};
    CHECK(tg_ddp_new(c, 1, nul, NULL, &st) == NULL && st.code == TG_EARG);
    tg_ddp *d = tg_ddp_new(c, 1, ps, NULL, &st);
    CHECK(d != NULL);
    CHECK(tg_ddp_finish(d) == TG_ESTATE);
    CHECK_STR_HAS(tg_ddp_error(d), "no tg_ddp_begin");
    CHECK(tg_ddp_begin(d, NULL, 5, 4) == TG_EARG);
    CHECK_STR_HAS(tg_ddp_error(d), "rows 5, global rows 4");
    CHECK(tg_ddp_begin(d, NULL, -1, 4) == TG_EARG);
    CHECK(tg_ddp_begin(d, NULL, 0, 0) == TG_EARG);
    CHECK_STR_HAS(tg_ddp_error(d), "no rows");
    CHECK(tg_ddp_begin(d, NULL, 0, -1) == TG_EARG); /* summed: still no rows */
    /* a parameter that no sweep reached: its gradient is allocated, the mean of zeros */
    CHECK(tg_grad(a) == NULL);
    CHECK(tg_ddp_begin(d, NULL, 2, -1) == 0);
    CHECK(tg_ddp_begin(d, NULL, 2, -1) == TG_EARG);
    CHECK_STR_HAS(tg_ddp_error(d), "no tg_ddp_finish");
    CHECK(tg_ddp_finish(d) == 0);
    CHECK(tg_grad(a) != NULL && tg_get(tg_grad(a), 1) == 0);
    CHECK(tg_ddp_finish(d) == TG_ESTATE);
    CHECK(tg_ddp_wait_seconds(d) >= 0 && tg_ddp_n_buckets(d) == 1);
    tg_ddp_free(d);
    CHECK(tg_dist_closure_new(c, 1, ps, NULL, NULL, 3, &st) == NULL && st.code == TG_EARG);
    CHECK(tg_dist_closure_new(c, 1, ps, fb_loss, NULL, 0, &st) == NULL && st.code == TG_EARG);
    CHECK_STR_HAS(st.msg, "no rank has rows");
    tg_optim *sgd = tg_optim_new("sgd", 1, ps, NULL, NULL);
    CHECK(tg_dist_lm(sgd, c) == TG_EARG);
    CHECK(tg_dist_lm(NULL, c) == TG_EARG);
    tg_optim_free(sgd);
    /* more parameters than TG_COMM_MAX_PENDING at 1 byte a bucket: the size is raised */
    tg_tensor *many[300];
    for (int i = 0; i < 300; i++) many[i] = tg_tensor_new(TG_F64, 1, s);
    o.bucket_bytes = 1;
    d = tg_ddp_new(c, 300, many, &o, &st);
    CHECK(d && tg_ddp_n_buckets(d) <= TG_COMM_MAX_PENDING && tg_ddp_n_buckets(d) >= 100);
    tg_ddp_free(d);
    for (int i = 0; i < 300; i++) tg_tensor_free(many[i]);
    CHECK(tg_ddp_begin(NULL, NULL, 1, 1) == TG_EARG && tg_ddp_finish(NULL) == TG_EARG);
    CHECK(tg_ddp_n_buckets(NULL) == -1 && tg_ddp_error(NULL)[0] == 0);
    tg_tensor_free(a), tg_tensor_free(b32);
    tg_comm_free(c);
}

/* A rank that stops mid-run: the other's finish fails within the timeout, with a message. */
typedef struct dead_job {
    tg_comm *c;
    int rc;
    char msg[256];
} dead_job;

static void *dead_rank(void *p)
{
    dead_job *j = p;
    int64_t s[1] = {4};
    tg_tensor *w = tg_tensor_new(TG_F64, 1, s);
    tg_set_requires_grad(w, true);
    tg_comm_set_timeout(j->c, 0.3);
    tg_ddp *d = tg_ddp_new(j->c, 1, &w, NULL, NULL);
    for (int step = 0; step < 5 && d && !j->rc; step++) {
        if (tg_comm_rank(j->c) == 1 && step == 2) break; /* dies */
        tg_zero_grad(w);
        j->rc = tg_ddp_begin(d, NULL, 1, 2);
        if (!j->rc) j->rc = tg_ddp_finish(d);
    }
    snprintf(j->msg, sizeof j->msg, "%s", d ? tg_ddp_error(d) : "no ddp");
    tg_ddp_free(d);
    tg_tensor_free(w);
    return NULL;
}

static void test_dead_rank(void)
{
    tg_comm *cs[2];
    CHECK(tg_comm_thread_group_new(2, cs, NULL) == 0);
    dead_job jobs[2] = {{cs[0], 0, ""}, {cs[1], 0, ""}};
    pthread_t th[2];
    for (int r = 0; r < 2; r++) pthread_create(&th[r], NULL, dead_rank, &jobs[r]);
    for (int r = 0; r < 2; r++) pthread_join(th[r], NULL);
    CHECK(jobs[0].rc == TG_EIO && jobs[1].rc == 0);
    CHECK_STR_HAS(jobs[0].msg, "tg_ddp_finish: tg_comm_allreduce: rank 0");
    CHECK_STR_HAS(jobs[0].msg, "timed out");
    for (int r = 0; r < 2; r++) tg_comm_free(cs[r]);
}

/* Two sweeps between begin and finish: with overlap off both are averaged; with overlap on
 * only the first is (its buckets left during it). Rank r's sweeps give gradients r + 1 and
 * r + 2 per element. */
typedef struct acc_job {
    tg_comm *c;
    bool overlap;
    double g;
    int rc;
} acc_job;

static void *acc_rank(void *p)
{
    acc_job *j = p;
    int64_t s[1] = {3};
    tg_tensor *w = tg_tensor_new(TG_F64, 1, s);
    tg_set_requires_grad(w, true);
    tg_ddp_opts o;
    tg_ddp_defaults(&o);
    o.overlap = j->overlap;
    tg_ddp *d = tg_ddp_new(j->c, 1, &w, &o, NULL);
    tg_tape *tp = tg_tape_new();
    tg_zero_grad(w);
    j->rc = d ? tg_ddp_begin(d, tp, 1, 2) : -1;
    for (int k = 1; k <= 2 && !j->rc; k++) {
        tg_tape_reset(tp);
        double c = tg_comm_rank(j->c) + k;
        j->rc = tg_backward(tp, tg_sum(tp, tg_mul_scalar(tp, w, c), 0, false));
    }
    if (!j->rc) j->rc = tg_ddp_finish(d);
    j->g = tg_get(tg_grad(w), 2);
    tg_ddp_free(d);
    tg_tape_free(tp);
    tg_tensor_free(w);
    return NULL;
}

static void test_accumulate(void)
{
    for (int ov = 0; ov < 2; ov++) {
        tg_comm *cs[2];
        CHECK(tg_comm_thread_group_new(2, cs, NULL) == 0);
        acc_job jobs[2] = {{cs[0], ov == 1, 0, 0}, {cs[1], ov == 1, 0, 0}};
        pthread_t th[2];
        for (int r = 0; r < 2; r++) pthread_create(&th[r], NULL, acc_rank, &jobs[r]);
        for (int r = 0; r < 2; r++) pthread_join(th[r], NULL);
        for (int r = 0; r < 2; r++) {
            CHECK(jobs[r].rc == 0);
            /* off: ((1 + 2) + (2 + 3)) / 2; on: the first sweeps' (1 + 2) / 2 */
            CHECK(jobs[r].g == (ov ? 1.5 : 4));
            tg_comm_free(cs[r]);
        }
    }
}

static void test_cleanup(void) { tg_dataset_free(&data); }

static const check_case cases[] = {
    TEST(test_equivalence), TEST(test_buckets_and_overlap), TEST(test_full_batch),
    TEST(test_evaluate),    TEST(test_batchnorm_local),     TEST(test_errors),
    TEST(test_dead_rank),   TEST(test_accumulate),          TEST(test_cleanup),
};

TEST_MAIN("test_ddp", cases)
