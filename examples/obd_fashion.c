/* examples/obd_fashion.c: Optimal Brain Damage at real size. A 784-128-10 ReLU network is
 * trained on Fashion-MNIST (5 epochs of Adam), then pruned in rounds to 95% of its weights
 * removed: each round takes the Hessian diagonal on 10000 training images by LeCun, Denker
 * and Solla's one-sweep approximation (tg_hessian_diag_lecun: the exact diagonal would
 * need one sweep per weight, 100000 of them), ranks the surviving weights by saliency
 * w² H_kk / 2, removes the least salient, and retrains for an epoch with the pruned
 * weights held at 0. Magnitude pruning (saliency w²) runs the same schedule from the same
 * trained network beside it. Test accuracy is measured after each prune (before
 * retraining: how well the saliency chose) and after retraining. Biases are not pruned;
 * shares are of the 101632 weights. Succeeds when OBD at 50% removed and retrained stays
 * within 1 point of the unpruned network's test accuracy. */
#include <math.h>
#include <string.h>

#include "demo.h"

#define HIDDEN 128
#define EPOCHS 5
#define BATCH 128
#define HESS_ROWS 10000
#define RETRAIN_STEPS 469 /* an epoch of 60000 images in batches of 128 */
#define N_ROUNDS 10

static const double shares[N_ROUNDS] = {0.2, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.93, 0.95};

typedef struct run {
    tg_dataset train, test;
    tg_module *net;
    tg_tensor *p[4]; /* W1, b1, W2, b2 */
    tg_tape *tp;
    tg_batcher *bt, *hess;
} run;

static double test_accuracy(run *r)
{
    tg_status st;
    tg_batcher *b = tg_batcher_new(&r->test, 1000, false, 0, &st);
    if (!b) return (double)NAN;
    bool mode = tg_tape_set_grad_mode(r->tp, false);
    double right = 0;
    int64_t seen = 0;
    tg_tensor *x, *y;
    while (tg_batcher_next(b, &x, &y)) {
        tg_tape_reset(r->tp);
        tg_tensor *z = tg_nn_forward(r->net, r->tp, x);
        if (!z) break;
        right += tg_accuracy(z, y) * (double)tg_tensor_dim(x, 0);
        seen += tg_tensor_dim(x, 0);
    }
    tg_tape_reset(r->tp);
    tg_tape_set_grad_mode(r->tp, mode);
    tg_batcher_free(b);
    return seen == r->test.n ? right / (double)seen : (double)NAN;
}

/* steps Adam steps on shuffled mini-batches (epochs wrap around), the pruned weights put
 * back to 0 after each when pr is given. 0, or -1 with the tape's message printed. */
static int train(run *r, int64_t steps, tg_pruner *pr)
{
    tg_optim_opts o;
    tg_optim_defaults("adam", &o);
    o.lr = 1e-3;
    tg_status st;
    tg_optim *opt = tg_optim_new("adam", 4, r->p, &o, &st);
    if (!opt) {
        fprintf(stderr, "obd_fashion: %s\n", st.msg);
        return -1;
    }
    int rc = 0;
    for (int64_t s = 0; s < steps && !rc; s++) {
        tg_tensor *x, *y;
        if (!tg_batcher_next(r->bt, &x, &y)) {
            tg_batcher_reset(r->bt);
            tg_batcher_next(r->bt, &x, &y);
        }
        tg_tape_reset(r->tp);
        tg_optim_zero_grad(opt);
        tg_tensor *loss = tg_cross_entropy(r->tp, tg_nn_forward(r->net, r->tp, x), y);
        if (!loss || tg_backward(r->tp, loss) || tg_optim_step(opt)) rc = -1;
        if (pr) tg_pruner_apply(pr);
    }
    if (rc) fprintf(stderr, "obd_fashion: %s\n", tg_tape_error(r->tp));
    tg_tape_reset(r->tp);
    tg_optim_free(opt);
    return rc;
}

/* Saliencies of W1 and W2 into s[0], s[1]: w² H_kk / 2 with LeCun's diagonal on the next
 * HESS_ROWS training images (obd), or w² (magnitude). */
static int saliency(run *r, bool obd, tg_tensor **h, tg_tensor **s)
{
    tg_tensor *w[2] = {r->p[0], r->p[2]};
    if (!obd) {
        for (int i = 0; i < 2; i++)
            for (int64_t k = 0; k < tg_tensor_numel(w[i]); k++)
                tg_set(s[i], k, tg_get(w[i], k) * tg_get(w[i], k));
        return 0;
    }
    tg_tensor *x, *y;
    if (!tg_batcher_next(r->hess, &x, &y)) {
        tg_batcher_reset(r->hess);
        tg_batcher_next(r->hess, &x, &y);
    }
    tg_tape_reset(r->tp);
    tg_nn_set_training(r->net, false);
    int rc = tg_hessian_diag_lecun(r->net, r->tp, x, TG_OBD_CROSS_ENTROPY, h);
    tg_nn_set_training(r->net, true);
    if (rc) {
        fprintf(stderr, "obd_fashion: %s\n", tg_tape_error(r->tp));
        return -1;
    }
    tg_tape_reset(r->tp);
    tg_tensor *hw[2] = {h[0], h[2]};
    if (tg_saliency(2, w, hw, s)) return -1;
    for (int i = 0; i < 2; i++)
        for (int64_t k = 0; k < tg_tensor_numel(s[i]); k++) tg_set(s[i], k, tg_get(s[i], k) / 2);
    return 0;
}

/* The rounds from the trained weights saved in start: accuracy after each prune (acc[i][0])
 * and after its retraining (acc[i][1]). */
static int prune_rounds(run *r, bool obd, tg_tensor *const *start, double acc[][2])
{
    for (int i = 0; i < 4; i++) tg_tensor_copy(r->p[i], start[i]);
    tg_status st;
    tg_tensor *w[2] = {r->p[0], r->p[2]}, *h[4] = {0}, *s[2] = {0};
    tg_pruner *pr = tg_pruner_new(2, w, &st);
    int rc = pr ? 0 : -1;
    for (int i = 0; i < 4 && !rc; i++)
        if (!(h[i] = tg_tensor_new(TG_F32, tg_tensor_ndim(r->p[i]), tg_tensor_shape(r->p[i]))))
            rc = -1;
    for (int i = 0; i < 2 && !rc; i++)
        if (!(s[i] = tg_tensor_new(TG_F32, tg_tensor_ndim(w[i]), tg_tensor_shape(w[i])))) rc = -1;
    int64_t total = rc ? 0 : tg_pruner_alive(pr);
    double t0 = cli_now();
    for (int k = 0; k < N_ROUNDS && !rc; k++) {
        int64_t target = (int64_t)llround(shares[k] * (double)total);
        if ((rc = saliency(r, obd, h, s))) break;
        if (tg_pruner_prune(pr, s, target - (total - tg_pruner_alive(pr))) < 0) rc = -1;
        acc[k][0] = test_accuracy(r);
        if (!rc) rc = train(r, RETRAIN_STEPS, pr);
        acc[k][1] = test_accuracy(r);
        printf("  %s: %4.0f%% removed: %.2f%% pruned, %.2f%% retrained (%.0f s)\n",
               obd ? "OBD      " : "magnitude", 100 * shares[k], 100 * acc[k][0], 100 * acc[k][1],
               cli_now() - t0);
        fflush(stdout);
    }
    tg_pruner_free(pr);
    for (int i = 0; i < 4; i++) tg_tensor_free(h[i]);
    tg_tensor_free(s[0]), tg_tensor_free(s[1]);
    return rc;
}

static void write_results(const char *outdir, double base, double obd[][2], double mag[][2])
{
    char csv[1024], png[1024];
    snprintf(csv, sizeof csv, "%s/obd_fashion.csv", outdir);
    snprintf(png, sizeof png, "%s/obd_fashion.png", outdir);
    FILE *f = fopen(csv, "w");
    if (!f) {
        fprintf(stderr, "obd_fashion: cannot write %s\n", csv);
        return;
    }
    fprintf(f, "removed_percent,obd_pruned,obd_retrained,magnitude_pruned,magnitude_retrained\n");
    fprintf(f, "0,%.4f,%.4f,%.4f,%.4f\n", 100 * base, 100 * base, 100 * base, 100 * base);
    for (int k = 0; k < N_ROUNDS; k++)
        fprintf(f, "%g,%.4f,%.4f,%.4f,%.4f\n", 100 * shares[k], 100 * obd[k][0], 100 * obd[k][1],
                100 * mag[k][0], 100 * mag[k][1]);
    if (fclose(f)) {
        fprintf(stderr, "obd_fashion: cannot write %s\n", csv);
        return;
    }
    int cols[4] = {2, 3, 4, 5};
    if (cli_plot_csv(csv, png, "Fashion-MNIST 784-128-10: pruning", "weights removed (%)",
                     "test accuracy (%)", 1, cols, 4, false) == 0)
        printf("plot: %s\n", png);
    printf("data: %s\n", csv);
}

int demo_obd_fashion(const char *outdir)
{
    run r = {0};
    tg_status st = {0};
    if (tg_load_mnist_bytes(NULL, TG_F32, &r.train, &r.test, &st)) {
        fprintf(stderr,
                "obd_fashion: %s\n(install Debian's dataset-fashion-mnist package, or run "
                "'make run' which installs it)\n",
                st.msg);
        return 1;
    }
    tg_set_num_threads(2);
    int64_t sizes[3] = {784, HIDDEN, 10};
    r.net = tg_nn_mlp(3, sizes, "relu", 0, false, TG_F32, &st);
    r.tp = tg_tape_new();
    r.bt = tg_batcher_new(&r.train, BATCH, true, 1, &st);
    r.hess = tg_batcher_new(&r.train, HESS_ROWS, true, 2, &st);
    tg_tensor *start[4] = {0};
    double obd[N_ROUNDS][2] = {{0}}, mag[N_ROUNDS][2] = {{0}}, base = (double)NAN;
    int rc = r.net && r.tp && r.bt && r.hess ? 0 : -1;
    if (rc) fprintf(stderr, "obd_fashion: %s\n", st.msg[0] ? st.msg : "out of memory");
    if (!rc) {
        tg_rng rng;
        tg_rng_seed(&rng, 1);
        tg_nn_init(r.net, TG_INIT_HE_UNIFORM, 0, &rng);
        tg_nn_params(r.net, r.p, 4);
        int64_t n_w = tg_tensor_numel(r.p[0]) + tg_tensor_numel(r.p[2]);
        printf("784-%d-10 ReLU network, %lld weights (%lld without biases), %lld training "
               "and %lld test images\n",
               HIDDEN, (long long)tg_nn_n_weights(r.net), (long long)n_w, (long long)r.train.n,
               (long long)r.test.n);
        double t0 = cli_now();
        rc = train(&r, EPOCHS * tg_batcher_count(r.bt), NULL);
        base = test_accuracy(&r);
        printf("trained %d epochs (Adam, batch %d) in %.0f s: test accuracy %.2f%%\n", EPOCHS,
               BATCH, cli_now() - t0, 100 * base);
        printf("pruning in %d rounds, each followed by %d retraining steps (an epoch):\n", N_ROUNDS,
               RETRAIN_STEPS);
    }
    for (int i = 0; i < 4 && !rc; i++)
        if (!(start[i] = tg_tensor_clone(r.p[i]))) rc = -1;
    if (!rc) rc = prune_rounds(&r, true, start, obd);
    if (!rc) rc = prune_rounds(&r, false, start, mag);
    int k50 = 2; /* shares[2] = 0.5 */
    bool ok = !rc && obd[k50][1] >= base - 0.01;
    if (!rc) {
        printf("\n  %8s  %21s  %21s\n", "", "OBD (w^2 H/2, LeCun)", "magnitude (w^2)");
        printf("  %8s  %10s %10s  %10s %10s\n", "removed", "pruned", "retrained", "pruned",
               "retrained");
        printf("  %7.0f%%  %9.2f%% %9.2f%%  %9.2f%% %9.2f%%\n", 0.0, 100 * base, 100 * base,
               100 * base, 100 * base);
        for (int k = 0; k < N_ROUNDS; k++)
            printf("  %7.0f%%  %9.2f%% %9.2f%%  %9.2f%% %9.2f%%\n", 100 * shares[k],
                   100 * obd[k][0], 100 * obd[k][1], 100 * mag[k][0], 100 * mag[k][1]);
        write_results(outdir, base, obd, mag);
        printf("%s\n", ok ? "OBD at 50% removed, retrained, is within 1 point of the unpruned "
                            "network"
                          : "OBD at 50% removed lost more than 1 point of test accuracy");
    }
    for (int i = 0; i < 4; i++) tg_tensor_free(start[i]);
    tg_batcher_free(r.bt), tg_batcher_free(r.hess);
    tg_tape_free(r.tp);
    tg_nn_free(r.net);
    tg_dataset_free(&r.train), tg_dataset_free(&r.test);
    return !ok;
}

#ifdef TG_EXAMPLE_MAIN
DEMO_MAIN(obd_fashion)
#endif
