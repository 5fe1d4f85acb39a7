/* cli/train.c: `tapegrad train` and `tapegrad eval`. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

#define MAX_LAYERS 32

/* ---- what train and eval share: the data and the model description ---- */

static cli_opt model_opts_template[] = {
    {"data", false, "fashion-mnist", "fashion-mnist, mnist:DIR (IDX files) or a CSV path", NULL},
    {"label-col", false, "-1", "CSV: label column (negative counts from the end)", NULL},
    {"regression", true, NULL, "CSV: real-valued targets (MSE) instead of classes", NULL},
    {"test-fraction", false, "0.2", "CSV: share of rows held out for testing", NULL},
    {"layers", false, "784,256,128,10", "layer sizes, input to output (CSV: inferred ends; each <= 100000, 50M weights in all)", NULL},
    {"act", false, "relu", "hidden activation: relu tanh sigmoid leaky_relu elu softplus", NULL},
    {"dropout", false, "0", "dropout probability after each hidden activation", NULL},
    {"batchnorm", true, NULL, "batch normalisation after each hidden linear layer", NULL},
    {"dtype", false, "f32", "f32 or f64", NULL},
    {"threads", false, "1", "BLIS threads", NULL},
    {"seed", false, "1", "seed of initialisation, shuffling and dropout", NULL},
};

typedef struct run_data {
    tg_dataset train, test;
    bool classify;
} run_data;

/* The CSV options, checked whatever the data, so that a bad value is refused up front. */
static int csv_opts(const cli_opt *o, int n, long long *label, double *frac)
{
    return cli_int(o, n, "label-col", -1000000, 1000000, label) ||
                   cli_double(o, n, "test-fraction", 0.01, 0.99, frac)
               ? 2
               : 0;
}

static int load_data(const char *spec, tg_dtype dt, const cli_opt *o, int n, uint64_t seed,
                     run_data *d)
{
    tg_status st = {0};
    memset(d, 0, sizeof *d);
    int rc;
    size_t len = strlen(spec);
    long long label = -1;
    double frac = 0.2;
    if (csv_opts(o, n, &label, &frac)) return 2;
    if (strcmp(spec, "fashion-mnist") == 0 || strncmp(spec, "mnist:", 6) == 0) {
        const char *dir = spec[0] == 'f' ? NULL : spec + 6;
        rc = tg_load_mnist_bytes(dir, dt, &d->train, &d->test, &st); /* 4x less memory */
        if (rc && !dir)
            fprintf(stderr, "tapegrad: %s\n(install Debian's dataset-fashion-mnist package, or "
                            "run 'make run' which installs it)\n", st.msg);
        else if (rc) fprintf(stderr, "tapegrad: %s\n", st.msg);
        d->classify = true;
        return rc ? 1 : 0;
    }
    if (len >= 4 && strcmp(spec + len - 4, ".csv") == 0) {
        tg_csv_opts co = {.header = -1, .label_col = (int)label,
                          .regression = cli_flag(o, n, "regression"), .delim = ','};
        tg_dataset all;
        if ((rc = tg_csv_load(spec, dt, &co, &all, &st))) {
            /* the only TG_EARG of a readable file: a label column it does not have */
            if (rc == TG_EARG) fprintf(stderr, "tapegrad: --label-col %lld: %s\n", label, st.msg);
            else fprintf(stderr, "tapegrad: %s\n", st.msg);
            return rc == TG_EARG ? 2 : 1;
        }
        rc = tg_dataset_split(&all, frac, seed, &d->train, &d->test, &st);
        tg_dataset_free(&all);
        if (rc) { /* too few rows for this share on one side */
            if (rc == TG_EARG) fprintf(stderr, "tapegrad: --test-fraction %g: %s\n", frac, st.msg);
            else fprintf(stderr, "tapegrad: %s\n", st.msg);
            return rc == TG_EARG ? 2 : 1;
        }
        tg_dataset_standardize(&d->train, &d->test);
        d->classify = d->train.n_classes > 0;
        return 0;
    }
    fprintf(stderr, "tapegrad: --data %s: want fashion-mnist, mnist:DIR or a .csv file\n", spec);
    return 2;
}

/* The model description saved with the parameters, so eval can rebuild the network. */
typedef struct model_desc {
    long long sizes[MAX_LAYERS];
    int n_sizes;
    char act[32];
    double dropout;
    bool batchnorm;
    tg_dtype dtype;
} model_desc;

static void desc_format(const model_desc *m, char *buf, size_t size)
{
    size_t k = (size_t)snprintf(buf, size, "mlp layers=");
    for (int i = 0; i < m->n_sizes && k < size; i++)
        k += (size_t)snprintf(buf + k, size - k, "%s%lld", i ? "," : "", m->sizes[i]);
    if (k < size)
        snprintf(buf + k, size - k, " act=%s dropout=%g batchnorm=%d dtype=%s", m->act,
                 m->dropout, m->batchnorm, tg_dtype_name(m->dtype));
}

static int desc_parse(const char *s, model_desc *m)
{
    char layers[512], act[32], dtype[8];
    int bn;
    memset(m, 0, sizeof *m);
    if (sscanf(s, "mlp layers=%511s act=%31s dropout=%lf batchnorm=%d dtype=%7s", layers, act,
               &m->dropout, &bn, dtype) != 5)
        return -1;
    if (cli_int_list(layers, m->sizes, MAX_LAYERS, &m->n_sizes) || m->n_sizes < 2) return -1;
    snprintf(m->act, sizeof m->act, "%s", act);
    m->batchnorm = bn != 0;
    m->dtype = strcmp(dtype, "f64") == 0 ? TG_F64 : TG_F32;
    return 0;
}

static tg_module *build_model(const model_desc *m)
{
    int64_t sizes[MAX_LAYERS];
    for (int i = 0; i < m->n_sizes; i++) sizes[i] = m->sizes[i];
    tg_status st = {0};
    tg_module *net = tg_nn_mlp(m->n_sizes, sizes, m->act, m->dropout, m->batchnorm, m->dtype, &st);
    if (!net) fprintf(stderr, "tapegrad: %s\n", st.msg);
    return net;
}

/* Reads the common model options into desc, before any data is read: every bad value is a
 * usage error found at once. */
static int model_opts(const cli_opt *o, int n, model_desc *m)
{
    memset(m, 0, sizeof *m);
    const char *act;
    if (cli_layers(o, n, "layers", m->sizes, MAX_LAYERS, &m->n_sizes) || cli_act(o, n, "act", &act) ||
        cli_double(o, n, "dropout", 0, 0.99, &m->dropout))
        return 2;
    snprintf(m->act, sizeof m->act, "%s", act);
    m->batchnorm = cli_flag(o, n, "batchnorm");
    const char *dt = cli_str(o, n, "dtype");
    if (strcmp(dt, "f32") && strcmp(dt, "f64")) {
        fprintf(stderr, "tapegrad: --dtype %s: want f32 or f64\n", dt);
        return 2;
    }
    m->dtype = strcmp(dt, "f64") == 0 ? TG_F64 : TG_F32;
    return 0;
}

/* Fits the ends of the sizes to the data: the default sizes adapt to its width and
 * outputs, given ones must match them. */
static int model_fit_data(const cli_opt *o, int n, const run_data *d, model_desc *m)
{
    const char *layers = cli_str(o, n, "layers");
    int64_t out = d->classify ? d->train.n_classes : (tg_tensor_ndim(d->train.y) > 1 ? tg_tensor_dim(d->train.y, 1) : 1);
    bool default_layers = strcmp(layers, "784,256,128,10") == 0;
    if (default_layers && (m->sizes[0] != d->train.d || m->sizes[m->n_sizes - 1] != out)) {
        /* The default sizes were meant for Fashion-MNIST: fit the ends to this data. */
        m->sizes[0] = d->train.d;
        m->sizes[m->n_sizes - 1] = out;
        char fitted[64];
        snprintf(fitted, sizeof fitted, "(%s fitted to the data)", layers);
        if (cli_layers_bounded("layers", fitted, m->sizes, m->n_sizes)) return 2;
    }
    if (m->sizes[0] != d->train.d || m->sizes[m->n_sizes - 1] != out) {
        fprintf(stderr,
                "tapegrad: --layers %s: the data has %lld features and %lld outputs\n", layers,
                (long long)d->train.d, (long long)out);
        return 2;
    }
    return 0;
}

/* Loss of a batch: cross-entropy for classes, MSE for regression. */
static tg_tensor *batch_loss(tg_tape *tp, tg_tensor *out, tg_tensor *y, bool classify)
{
    if (classify) return tg_cross_entropy(tp, out, y);
    if (tg_tensor_ndim(y) == 1) {
        int64_t s[2] = {tg_tensor_dim(y, 0), 1};
        y = tg_reshape(tp, y, 2, s);
    }
    return tg_mse_loss(tp, out, y);
}

typedef struct eval_result {
    double loss, metric; /* metric: accuracy for classes, MSE for regression */
} eval_result;

/* Loss and metric over a whole set, in no-grad mode, in batches of 1000. */
static int evaluate(tg_module *net, tg_tape *tp, const tg_dataset *ds, bool classify,
                    eval_result *r, int64_t *confusion)
{
    tg_status st = {0};
    tg_batcher *b = tg_batcher_new(ds, 1000, false, 0, &st);
    if (!b) {
        fprintf(stderr, "tapegrad: %s\n", st.msg);
        return 1;
    }
    tg_nn_set_training(net, false);
    tg_tape_set_grad_mode(tp, false);
    double loss = 0, metric = 0;
    int64_t seen = 0;
    tg_tensor *x, *y;
    int rc = 0;
    if (confusion) memset(confusion, 0, sizeof(int64_t) * (size_t)(ds->n_classes * ds->n_classes));
    while (tg_batcher_next(b, &x, &y)) {
        tg_tape_reset(tp);
        tg_tensor *out = tg_nn_forward(net, tp, x);
        tg_tensor *l = batch_loss(tp, out, y, classify);
        if (!l) {
            fprintf(stderr, "tapegrad: %s\n", tg_tape_error(tp));
            rc = 1;
            break;
        }
        int64_t rows = tg_tensor_dim(x, 0);
        loss += tg_get(l, 0) * (double)rows;
        if (classify) {
            metric += tg_accuracy(out, y) * (double)rows;
            if (confusion) {
                int64_t *m = calloc((size_t)(ds->n_classes * ds->n_classes), sizeof *m);
                if (m && tg_confusion_matrix(out, y, ds->n_classes, m) == 0)
                    for (int i = 0; i < ds->n_classes * ds->n_classes; i++) confusion[i] += m[i];
                free(m);
            }
        } else {
            metric += tg_get(l, 0) * (double)rows;
        }
        seen += rows;
    }
    tg_tape_reset(tp);
    tg_tape_set_grad_mode(tp, true);
    tg_batcher_free(b);
    r->loss = seen ? loss / (double)seen : (double)NAN;
    r->metric = seen ? metric / (double)seen : (double)NAN;
    return rc;
}

/* ---- train ---- */

/* The full-batch closure of line-search methods: loss and gradients over one batch. */
typedef struct closure_ctx {
    tg_module *net;
    tg_tape *tp;
    tg_tensor *x, *y;
    bool classify;
} closure_ctx;

static int train_closure(void *ctx, double *loss)
{
    closure_ctx *c = ctx;
    tg_tape_reset(c->tp);
    tg_tensor *l = batch_loss(c->tp, tg_nn_forward(c->net, c->tp, c->x), c->y, c->classify);
    if (!l || tg_backward(c->tp, l)) return TG_EARG;
    *loss = tg_get(l, 0);
    return TG_OK;
}

static void progress(bool tty, int epoch, int epochs, int64_t done, int64_t total, double loss,
                     double rate)
{
    if (!tty) return;
    int width = 30, fill = total ? (int)(width * done / total) : width;
    char bar[64];
    for (int i = 0; i < width; i++) bar[i] = i < fill ? '=' : i == fill ? '>' : ' ';
    bar[width] = '\0';
    fprintf(stderr, "\repoch %d/%d [%s] %lld/%lld loss %.4f %8.0f samples/s", epoch, epochs, bar,
            (long long)done, (long long)total, loss, rate);
    fflush(stderr);
}

static int init_kind(const char *s, const char *act, tg_init *k)
{
    static const struct {
        const char *name;
        tg_init kind;
    } kinds[] = {{"uniform", TG_INIT_UNIFORM},           {"xavier-normal", TG_INIT_XAVIER_NORMAL},
                 {"xavier-uniform", TG_INIT_XAVIER_UNIFORM}, {"he-normal", TG_INIT_HE_NORMAL},
                 {"he-uniform", TG_INIT_HE_UNIFORM},     {"orthogonal", TG_INIT_ORTHOGONAL}};
    if (strcmp(s, "auto") == 0) {
        bool rectifier = strstr(act, "relu") || strcmp(act, "elu") == 0;
        *k = rectifier ? TG_INIT_HE_UNIFORM : TG_INIT_XAVIER_UNIFORM;
        return 0;
    }
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (strcmp(s, kinds[i].name) == 0) return *k = kinds[i].kind, 0;
    fprintf(stderr, "tapegrad: --init %s: want auto, uniform, xavier-normal, xavier-uniform, "
                    "he-normal, he-uniform or orthogonal\n", s);
    return 2;
}

int cmd_train(int argc, char **argv)
{
    enum { N_COMMON = sizeof model_opts_template / sizeof model_opts_template[0] };
    cli_opt o[N_COMMON + 16];
    memcpy(o, model_opts_template, sizeof model_opts_template);
    cli_opt extra[] = {
        {"opt", false, "adam", "optimiser (sgd momentum nesterov adagrad rmsprop adadelta adam ...)", NULL},
        {"lr", false, NULL, "learning rate (default: the optimiser's)", NULL},
        {"momentum", false, NULL, "momentum of sgd-type optimisers", NULL},
        {"weight-decay", false, "0", "decoupled weight decay", NULL},
        {"l2", false, "0", "L2 regularisation added to the gradient", NULL},
        {"clip-norm", false, "0", "clip gradients to this global norm (0: off)", NULL},
        {"schedule", false, "cosine", "learning-rate schedule over the run: constant, step, exp, cosine", NULL},
        {"batch", false, "64", "mini-batch size (1: stochastic; 0: full batch; line-search methods: full)", NULL},
        {"epochs", false, "5", "passes over the training set", NULL},
        {"init", false, "auto", "weight init (auto: he-uniform for relu-like, else xavier-uniform)", NULL},
        {"save", false, NULL, "save the trained model to this file", NULL},
        {"log", false, "tapegrad-log.csv", "CSV log of the curves (a PNG plot beside it with gnuplot)", NULL},
        {"profile", true, NULL, "print the time of every op kind in the training steps", NULL},
        {"help", true, NULL, "this help", NULL},
    };
    int n = N_COMMON + (int)(sizeof extra / sizeof extra[0]);
    memcpy(o + N_COMMON, extra, sizeof extra);
    if (cli_parse(argc, argv, o, n, NULL, 0, NULL)) return 2;
    if (cli_flag(o, n, "help")) {
        printf("usage: tapegrad train [options]\n");
        cli_usage_opts(stdout, o, n);
        return 0;
    }
    /* Every option is checked before the data is read: a bad value is a usage error (2). */
    long long seed = 1, threads = 1, batch = 128, epochs = 5, label;
    double lr = -1, momentum = -1, wd = 0, l2 = 0, clip = 0, frac;
    if (cli_int(o, n, "seed", 0, (1LL << 62), &seed) || cli_int(o, n, "threads", 1, 256, &threads) ||
        cli_int(o, n, "batch", 0, 1LL << 40, &batch) || cli_int(o, n, "epochs", 1, 1000000, &epochs) ||
        cli_double(o, n, "lr", 0, 1e6, &lr) || cli_double(o, n, "momentum", 0, 0.999999, &momentum) ||
        cli_double(o, n, "weight-decay", 0, 1e6, &wd) || cli_double(o, n, "l2", 0, 1e6, &l2) ||
        cli_double(o, n, "clip-norm", 0, 1e12, &clip) || csv_opts(o, n, &label, &frac))
        return 2;
    const char *opt_name = cli_str(o, n, "opt"), *sched = cli_str(o, n, "schedule");
    tg_optim_opts oo;
    if (tg_optim_defaults(opt_name, &oo)) {
        fprintf(stderr, "tapegrad: --opt %s: unknown optimiser; one of:", opt_name);
        for (int i = 0; tg_optim_method(i); i++)
            if (strcmp(tg_optim_method(i), "lm")) fprintf(stderr, " %s", tg_optim_method(i));
        fprintf(stderr, "\n");
        return 2;
    }
    if (strcmp(opt_name, "lm") == 0) {
        fprintf(stderr, "tapegrad: --opt lm steps on residuals, not on the loss train "
                        "minimises; use it from C (tg_optim_step_lm) or in 'tapegrad demo "
                        "optimizers-classic'\n");
        return 2;
    }
    static const char *const schedules[] = {"constant", "step", "exp", "cosine"};
    int sk = 0;
    while (sk < 4 && strcmp(sched, schedules[sk])) sk++;
    if (sk == 4) {
        fprintf(stderr, "tapegrad: --schedule %s: want constant, step, exp or cosine\n", sched);
        return 2;
    }
    if (lr >= 0) oo.lr = lr;
    if (momentum >= 0) oo.momentum = momentum;
    oo.weight_decay = wd, oo.l2 = l2, oo.clip_norm = clip;
    model_desc md;
    tg_init ik;
    if (model_opts(o, n, &md) || init_kind(cli_str(o, n, "init"), md.act, &ik)) return 2;
    const char *save = cli_str(o, n, "save"), *log_path = cli_str(o, n, "log");
    if (save && !*save) {
        fprintf(stderr, "tapegrad: --save: the path is empty\n");
        return 2;
    }

    run_data d;
    int rc = load_data(cli_str(o, n, "data"), md.dtype, o, n, (uint64_t)seed, &d);
    if (rc) return rc;
    tg_module *net = NULL;
    tg_tape *tp = NULL;
    tg_optim *opt = NULL;
    tg_batcher *bt = NULL;
    FILE *log = NULL;
    bool log_new = false; /* made by this run: removed if the run fails before an epoch */
    int epochs_done = 0;
    tg_tensor *params[256];
    if ((rc = model_fit_data(o, n, &d, &md))) goto done;
    rc = 1;
    if (!(net = build_model(&md))) goto done;
    threads = tg_set_num_threads((int)threads); /* capped at the CPUs this process may use */
    tg_rng rng;
    tg_rng_seed(&rng, (uint64_t)seed);
    tg_nn_init(net, ik, 0, &rng);
    int np = tg_nn_params(net, params, 256);
    if (batch == 0 || batch > d.train.n) batch = d.train.n;
    int64_t steps_per_epoch = (d.train.n + batch - 1) / batch;
    if (sk == 0) oo.schedule.kind = TG_LR_CONSTANT;
    else if (sk == 1)
        oo.schedule = (tg_lr_schedule){.kind = TG_LR_STEP, .step_size = steps_per_epoch, .gamma = 0.5};
    else if (sk == 2)
        oo.schedule = (tg_lr_schedule){.kind = TG_LR_EXP, .gamma = pow(0.1, 1.0 / (double)(steps_per_epoch * epochs))};
    else
        oo.schedule = (tg_lr_schedule){.kind = TG_LR_COSINE, .t_max = steps_per_epoch * epochs, .lr_min = 0};
    tg_status st = {0};
    if (!(opt = tg_optim_new(opt_name, np, params, &oo, &st))) {
        /* an option (or bfgs's size limit) the method does not take */
        fprintf(stderr, "tapegrad: --opt %s: %s\n", opt_name, st.msg);
        rc = st.code == TG_EARG ? 2 : 1;
        goto done;
    }
    bool full = tg_optim_needs_closure(opt);
    if (full) batch = d.train.n; /* line searches compare values of one objective */
    if (!(bt = tg_batcher_new(&d.train, batch, true, (uint64_t)seed, &st))) {
        fprintf(stderr, "tapegrad: %s\n", st.msg);
        goto done;
    }
    if (!(tp = tg_tape_new())) goto done;
    tg_tape_seed(tp, (uint64_t)seed);
    /* The outputs are checked before training, not found unwritable after the last epoch:
     * --save where tg_nn_save will write (nothing is left behind), then the log is opened. */
    if (save && cli_check_writable("save", save)) goto done;
    if (log_path && *log_path) {
        log_new = access(log_path, F_OK) != 0;
        if (!(log = fopen(log_path, "w"))) {
            fprintf(stderr, "tapegrad: --log %s: cannot write it: %s\n", log_path, strerror(errno));
            log_new = false;
            goto done;
        }
        fprintf(log, "epoch,train_loss,test_loss,%s,seconds\n", d.classify ? "test_accuracy" : "test_mse");
    }

    char desc[512];
    desc_format(&md, desc, sizeof desc);
    printf("data: %lld training and %lld test examples, %lld features%s\n", (long long)d.train.n,
           (long long)d.test.n, (long long)d.train.d, d.classify ? "" : " (regression)");
    printf("model: %s, %lld weights\n", desc, (long long)tg_nn_n_weights(net));
    printf("training: %s lr %g, batch %lld, %lld epochs, %lld thread%s, seed %lld\n", opt_name,
           oo.lr, batch, epochs, threads, threads > 1 ? "s" : "", seed);
    bool tty = isatty(2), profile = cli_flag(o, n, "profile");
    double train_secs = 0, optim_secs = 0;
    eval_result ev = {(double)NAN, (double)NAN};
    for (int e = 1; e <= epochs; e++) {
        double t0 = cli_now(), sum = 0, last = t0;
        int64_t seen = 0, k = 0;
        tg_tensor *x, *y;
        tg_nn_set_training(net, true);
        tg_batcher_reset(bt);
        if (profile && tg_tape_set_profiling(tp, true)) {
            fprintf(stderr, "tapegrad: %s\n", tg_tape_error(tp));
            goto done;
        }
        while (tg_batcher_next(bt, &x, &y)) {
            double lv;
            if (full) { /* one iteration of the method over the whole training set */
                closure_ctx cc = {net, tp, x, y, d.classify};
                if (tg_optim_step_closure(opt, train_closure, &cc, &lv)) {
                    if (tty) fputc('\n', stderr);
                    if (tg_tape_errcode(tp)) fprintf(stderr, "tapegrad: %s\n", tg_tape_error(tp));
                    else fprintf(stderr, "tapegrad: epoch %d: the training loss is not finite: "
                                         "the run diverged\n", e);
                    goto done;
                }
            } else {
                tg_tape_reset(tp);
                tg_tensor *loss = batch_loss(tp, tg_nn_forward(net, tp, x), y, d.classify);
                tg_optim_zero_grad(opt);
                bool bad = !loss || tg_backward(tp, loss);
                double t_opt = cli_now();
                bad = bad || tg_optim_step(opt);
                optim_secs += cli_now() - t_opt;
                if (bad) {
                    if (tty) fputc('\n', stderr);
                    fprintf(stderr, "tapegrad: %s\n", tg_tape_error(tp));
                    goto done;
                }
                lv = tg_get(loss, 0);
            }
            int64_t rows = tg_tensor_dim(x, 0);
            sum += lv * (double)rows;
            seen += rows, k++;
            if (!isfinite(sum)) { /* every step: a diverging run stops at once */
                if (tty) fputc('\n', stderr);
                fprintf(stderr, "tapegrad: epoch %d, step %lld: the training loss is %g: the run "
                                "diverged (try a smaller --lr, --clip-norm or another --opt)\n",
                        e, (long long)k, isfinite(lv) ? sum : lv);
                goto done;
            }
            double now = cli_now();
            if (now - last > 0.1 || k == steps_per_epoch) {
                progress(tty, e, (int)epochs, k, steps_per_epoch, sum / (double)seen,
                         (double)seen / (now - t0));
                last = now;
            }
        }
        double train_time = cli_now() - t0;
        train_secs += train_time;
        if (profile) tg_tape_set_profiling(tp, false); /* not the evaluation */
        if (tty) fputc('\n', stderr);
        if (evaluate(net, tp, &d.test, d.classify, &ev, NULL)) goto done;
        double secs = cli_now() - t0;
        if (d.classify)
            printf("epoch %d: train loss %.4f, test loss %.4f, test accuracy %.2f%%, %.1f s (%.0f samples/s)\n",
                   e, sum / (double)seen, ev.loss, 100 * ev.metric, secs, (double)seen / train_time);
        else
            printf("epoch %d: train loss %.5g, test MSE %.5g, %.1f s (%.0f samples/s)\n", e,
                   sum / (double)seen, ev.metric, secs, (double)seen / train_time);
        fflush(stdout);
        if (log) {
            fprintf(log, "%d,%.6g,%.6g,%.6g,%.3f\n", e, sum / (double)seen, ev.loss, ev.metric, secs);
            if (fflush(log) || ferror(log)) {
                fprintf(stderr, "tapegrad: --log %s: cannot write it: %s\n", log_path, strerror(errno));
                goto done;
            }
        }
        epochs_done = e;
    }
    if (log) {
        int closed = fclose(log);
        log = NULL;
        if (closed) {
            fprintf(stderr, "tapegrad: --log %s: cannot write it: %s\n", log_path, strerror(errno));
            goto done;
        }
        char png[1024];
        size_t len = strlen(log_path);
        snprintf(png, sizeof png, "%.*s.png", (int)(len > 4 && !strcmp(log_path + len - 4, ".csv") ? len - 4 : len), log_path);
        int cols[3] = {2, 3, 4};
        if (epochs > 1 &&
            cli_plot_csv(log_path, png, "training curves", "epoch", "loss / accuracy", 1, cols, 3, false) == 0)
            printf("curves: %s and %s\n", log_path, png);
        else printf("curves: %s\n", log_path);
    }
    if (d.classify) printf("test accuracy: %.2f%%\n", 100 * ev.metric);
    else printf("test MSE: %.6g\n", ev.metric);
    if (profile) {
        printf("profile of the training steps (%.3f s, of which %.3f s in optimiser steps):\n",
               train_secs, optim_secs);
        tg_tape_profile_print(tp, stdout);
    }
    if (save) {
        if (tg_nn_save_meta(net, save, desc, &st)) {
            fprintf(stderr, "tapegrad: %s\n", st.msg);
            goto done;
        }
        printf("saved: %s\n", save);
    }
    rc = 0;
done:
    if (log) fclose(log);
    if (rc && log_new && epochs_done == 0) unlink(log_path); /* nothing to show: no file */
    tg_batcher_free(bt);
    tg_optim_free(opt);
    tg_tape_free(tp);
    tg_nn_free(net);
    tg_dataset_free(&d.train);
    tg_dataset_free(&d.test);
    return rc;
}

/* ---- eval ---- */

int cmd_eval(int argc, char **argv)
{
    cli_opt o[] = {
        {"model", false, NULL, "a model saved by 'tapegrad train --save'", NULL},
        {"data", false, "fashion-mnist", "fashion-mnist, mnist:DIR or a CSV path", NULL},
        {"label-col", false, "-1", "CSV: label column", NULL},
        {"regression", true, NULL, "CSV: real-valued targets", NULL},
        {"test-fraction", false, "0.2", "CSV: share of rows held out (same seed as training)", NULL},
        {"seed", false, "1", "CSV: the split's seed", NULL},
        {"threads", false, "1", "BLIS threads", NULL},
        {"help", true, NULL, "this help", NULL},
    };
    int n = (int)(sizeof o / sizeof o[0]);
    if (cli_parse(argc, argv, o, n, NULL, 0, NULL)) return 2;
    if (cli_flag(o, n, "help") || !cli_str(o, n, "model")) {
        FILE *f = cli_flag(o, n, "help") ? stdout : stderr;
        fprintf(f, "usage: tapegrad eval --model FILE [options]\n");
        cli_usage_opts(f, o, n);
        return cli_flag(o, n, "help") ? 0 : 2;
    }
    long long seed = 1, threads = 1, label;
    double frac;
    if (cli_int(o, n, "seed", 0, 1LL << 62, &seed) || cli_int(o, n, "threads", 1, 256, &threads) ||
        csv_opts(o, n, &label, &frac))
        return 2;
    const char *path = cli_str(o, n, "model");
    char meta[512];
    tg_status st = {0};
    model_desc md;
    if (tg_nn_read_meta(path, meta, sizeof meta, &st)) {
        fprintf(stderr, "tapegrad: %s\n", st.msg);
        return 1;
    }
    if (desc_parse(meta, &md)) {
        fprintf(stderr, "tapegrad: %s: not a model saved by 'tapegrad train' (description '%s')\n", path, meta);
        return 1;
    }
    run_data d;
    int rc = load_data(cli_str(o, n, "data"), md.dtype, o, n, (uint64_t)seed, &d);
    if (rc) return rc;
    tg_module *net = build_model(&md);
    tg_tape *tp = tg_tape_new();
    int64_t *conf = NULL;
    rc = 1;
    if (!net || !tp) goto done;
    if (tg_nn_load(net, path, &st)) {
        fprintf(stderr, "tapegrad: %s\n", st.msg);
        goto done;
    }
    if (md.sizes[0] != d.test.d) {
        fprintf(stderr, "tapegrad: --data %s: %s expects %lld features, the data has %lld\n",
                cli_str(o, n, "data"), path, md.sizes[0], (long long)d.test.d);
        rc = 2;
        goto done;
    }
    tg_set_num_threads((int)threads);
    printf("model: %s\n", meta);
    eval_result ev;
    if (d.classify && md.sizes[md.n_sizes - 1] < d.test.n_classes) {
        fprintf(stderr, "tapegrad: --data %s: %s has %lld outputs, the data has %d classes\n",
                cli_str(o, n, "data"), path, md.sizes[md.n_sizes - 1], d.test.n_classes);
        rc = 2;
        goto done;
    }
    if (d.classify) conf = calloc((size_t)(d.test.n_classes * d.test.n_classes), sizeof *conf);
    if (evaluate(net, tp, &d.test, d.classify, &ev, conf)) goto done;
    if (d.classify) {
        printf("test loss %.4f, test accuracy %.2f%% on %lld examples\n", ev.loss, 100 * ev.metric,
               (long long)d.test.n);
        bool fashion = strcmp(cli_str(o, n, "data"), "fashion-mnist") == 0;
        if (conf) tg_confusion_print(stdout, conf, d.test.n_classes, fashion ? tg_fashion_mnist_classes : NULL);
    } else {
        printf("test MSE %.6g on %lld examples\n", ev.metric, (long long)d.test.n);
    }
    rc = 0;
done:
    free(conf);
    tg_tape_free(tp);
    tg_nn_free(net);
    tg_dataset_free(&d.train);
    tg_dataset_free(&d.test);
    return rc;
}
