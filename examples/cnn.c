/* examples/cnn.c: a small convolutional network on Fashion-MNIST. Two 3x3 convolutions
 * (32 and 64 channels, zero padding 1) each followed by ReLU and 2x2 max pooling, then a
 * 3136-128-10 ReLU classifier: conv(1→32) relu maxpool conv(32→64) relu maxpool flatten
 * linear(128) relu linear(10), 421642 parameters, built from tg_nn layers. Trained with
 * Adam (lr 2e-3, cosine schedule to 0 over the run) on shuffled batches of 128 with 2 BLIS
 * threads; prints each epoch's time, training loss and test accuracy, and writes the
 * curves to OUTDIR/cnn.csv (and cnn_loss.png, cnn_accuracy.png when gnuplot is
 * installed). Succeeds when the final test accuracy is at least 91.5%. */
#include <math.h>
#include <string.h>

#include "demo.h"

#define EPOCHS 7
#define BATCH 128
#define TARGET 0.915
#define N_PARAMS 8 /* a weight and a bias per conv and linear layer */

/* The network as tg_nn layers; NULL with the reason printed. */
static tg_module *cnn_new(uint64_t seed)
{
    const tg_conv2d_opts conv = {.padding = {1, 1}};
    const tg_pool2d_opts pool = {.kernel = {2, 2}};
    tg_module *net = tg_nn_sequential();
    int rc = net ? 0 : TG_ENOMEM;
    if (!rc) rc = tg_nn_append(net, tg_nn_conv2d(1, 32, 3, 3, &conv, true, TG_F32));
    if (!rc) rc = tg_nn_append(net, tg_nn_activation("relu", 0, TG_F32));
    if (!rc) rc = tg_nn_append(net, tg_nn_max_pool2d(&pool));
    if (!rc) rc = tg_nn_append(net, tg_nn_conv2d(32, 64, 3, 3, &conv, true, TG_F32));
    if (!rc) rc = tg_nn_append(net, tg_nn_activation("relu", 0, TG_F32));
    if (!rc) rc = tg_nn_append(net, tg_nn_max_pool2d(&pool));
    if (!rc) rc = tg_nn_append(net, tg_nn_flatten());
    if (!rc) rc = tg_nn_append(net, tg_nn_linear(64 * 7 * 7, 128, TG_F32));
    if (!rc) rc = tg_nn_append(net, tg_nn_activation("relu", 0, TG_F32));
    if (!rc) rc = tg_nn_append(net, tg_nn_linear(128, 10, TG_F32));
    tg_rng rng;
    tg_rng_seed(&rng, seed);
    if (!rc) rc = tg_nn_init(net, TG_INIT_HE_UNIFORM, 0, &rng);
    if (rc) {
        fprintf(stderr, "cnn: %s\n", net ? tg_nn_last_status()->msg : "out of memory");
        tg_nn_free(net);
        return NULL;
    }
    return net;
}

/* x [N, 784] (the batcher's rows) as images [N,1,28,28] through the network: the logits. */
static tg_tensor *cnn_forward(tg_module *net, tg_tape *tp, tg_tensor *x)
{
    int64_t img[4] = {tg_tensor_dim(x, 0), 1, 28, 28};
    return tg_nn_forward(net, tp, tg_reshape(tp, x, 4, img));
}

/* Share of the test set classified right, NAN on failure (the tape's message printed). */
static double test_accuracy(tg_module *m, tg_tape *tp, const tg_dataset *test)
{
    tg_status st;
    tg_batcher *b = tg_batcher_new(test, 1000, false, 0, &st);
    if (!b) return (double)NAN;
    bool mode = tg_tape_set_grad_mode(tp, false);
    double right = 0;
    int64_t seen = 0;
    tg_tensor *x, *y;
    while (tg_batcher_next(b, &x, &y)) {
        tg_tape_reset(tp);
        tg_tensor *z = cnn_forward(m, tp, x);
        if (!z) {
            fprintf(stderr, "cnn: %s\n", tg_tape_error(tp));
            break;
        }
        right += tg_accuracy(z, y) * (double)tg_tensor_dim(x, 0);
        seen += tg_tensor_dim(x, 0);
    }
    tg_tape_reset(tp);
    tg_tape_set_grad_mode(tp, mode);
    tg_batcher_free(b);
    return seen == test->n ? right / (double)seen : (double)NAN;
}

/* One epoch of Adam steps; the mean training loss, or NAN with the message printed. */
static double train_epoch(tg_module *m, tg_tape *tp, tg_batcher *bt, tg_optim *opt)
{
    double sum = 0;
    int64_t seen = 0;
    tg_tensor *x, *y;
    tg_batcher_reset(bt);
    while (tg_batcher_next(bt, &x, &y)) {
        tg_tape_reset(tp);
        tg_optim_zero_grad(opt);
        tg_tensor *loss = tg_cross_entropy(tp, cnn_forward(m, tp, x), y);
        if (!loss || tg_backward(tp, loss) || tg_optim_step(opt)) {
            fprintf(stderr, "cnn: %s\n", tg_tape_error(tp));
            return (double)NAN;
        }
        sum += tg_get(loss, 0) * (double)tg_tensor_dim(x, 0);
        seen += tg_tensor_dim(x, 0);
    }
    tg_tape_reset(tp);
    return sum / (double)seen;
}

static void write_curves(const char *outdir, int epochs, const double (*row)[3])
{
    char csv[1024], png[1024];
    snprintf(csv, sizeof csv, "%s/cnn.csv", outdir);
    FILE *f = fopen(csv, "w");
    if (!f) {
        fprintf(stderr, "cnn: cannot write %s\n", csv);
        return;
    }
    fprintf(f, "epoch,train_loss,test_accuracy_percent,seconds\n");
    for (int e = 0; e < epochs; e++)
        fprintf(f, "%d,%.6f,%.4f,%.3f\n", e + 1, row[e][0], 100 * row[e][1], row[e][2]);
    if (fclose(f)) {
        fprintf(stderr, "cnn: cannot write %s\n", csv);
        return;
    }
    int loss_col[1] = {2}, acc_col[1] = {3};
    snprintf(png, sizeof png, "%s/cnn_loss.png", outdir);
    if (cli_plot_csv(csv, png, "Fashion-MNIST CNN: training loss", "epoch", "cross-entropy", 1,
                     loss_col, 1, true) == 0)
        printf("plot: %s\n", png);
    snprintf(png, sizeof png, "%s/cnn_accuracy.png", outdir);
    if (cli_have_program("gnuplot") &&
        cli_plot_csv(csv, png, "Fashion-MNIST CNN: test accuracy", "epoch", "test accuracy (%)", 1,
                     acc_col, 1, false) == 0)
        printf("plot: %s\n", png);
    printf("data: %s\n", csv);
}

int demo_cnn(const char *outdir)
{
    tg_dataset train = {0}, test = {0};
    tg_status st = {0};
    if (tg_load_mnist_bytes(NULL, TG_F32, &train, &test, &st)) {
        fprintf(stderr,
                "cnn: %s\n(install Debian's dataset-fashion-mnist package, or run 'make run' "
                "which installs it)\n",
                st.msg);
        return 1;
    }
    tg_set_num_threads(2);
    tg_module *net = cnn_new(1);
    tg_tape *tp = tg_tape_new();
    tg_batcher *bt = tg_batcher_new(&train, BATCH, true, 1, &st);
    tg_optim *opt = NULL;
    tg_tensor *params[N_PARAMS];
    int rc = net && tp && bt && tg_nn_params(net, params, N_PARAMS) == N_PARAMS ? 0 : -1;
    if (!rc) {
        tg_optim_opts o;
        tg_optim_defaults("adam", &o);
        o.lr = 2e-3;
        o.schedule = (tg_lr_schedule){
            .kind = TG_LR_COSINE, .t_max = EPOCHS * tg_batcher_count(bt), .lr_min = 0};
        if (!(opt = tg_optim_new("adam", N_PARAMS, params, &o, &st))) rc = -1;
    }
    if (rc) fprintf(stderr, "cnn: %s\n", st.msg[0] ? st.msg : "out of memory");
    double row[EPOCHS][3] = {{0}}, acc = (double)NAN, t0 = cli_now();
    int done = 0;
    if (!rc)
        printf("conv(1->32, 3x3, pad 1) relu maxpool(2) conv(32->64, 3x3, pad 1) relu maxpool(2) "
               "linear(3136->128) relu linear(128->10): Adam lr 2e-3, cosine schedule, batch %d, "
               "%d epochs, 2 threads, %lld training and %lld test images\n",
               BATCH, EPOCHS, (long long)train.n, (long long)test.n);
    for (int e = 0; e < EPOCHS && !rc; e++) {
        double t = cli_now();
        row[e][0] = train_epoch(net, tp, bt, opt);
        row[e][2] = cli_now() - t;
        if (!isnan(row[e][0])) row[e][1] = acc = test_accuracy(net, tp, &test);
        if (isnan(row[e][0]) || isnan(acc)) rc = -1;
        else {
            done = e + 1;
            printf("epoch %d/%d: %.1f s, train loss %.4f, test accuracy %.2f%% (%.1f s with the "
                   "test)\n",
                   e + 1, EPOCHS, row[e][2], row[e][0], 100 * acc, cli_now() - t);
            fflush(stdout);
        }
    }
    bool ok = !rc && acc >= TARGET;
    if (done) {
        write_curves(outdir, done, (const double(*)[3])row);
        printf("trained in %.0f s\n", cli_now() - t0);
    }
    if (!rc) printf("test accuracy: %.2f%%\n", 100 * acc);
    tg_optim_free(opt);
    tg_batcher_free(bt);
    tg_tape_free(tp);
    tg_nn_free(net);
    tg_dataset_free(&train), tg_dataset_free(&test);
    return !ok;
}

#ifdef TG_EXAMPLE_MAIN
DEMO_MAIN(cnn)
#endif
