/* cli/train.c: `tapegrad train` and `tapegrad eval`. */
#include <errno.h>
#include <limits.h>
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
    {"layers", false, "784,256,128,10",
     "layer sizes, input to output (CSV: inferred ends; each <= 100000, 50M weights in all)", NULL},
    {"arch", false, NULL,
     "the network as a spec, e.g. conv(32,3)-relu-maxpool(2)-flatten-linear(10) (docs/cli.md)",
     NULL},
    {"input-shape", false, NULL,
     "--arch: one example's shape, C,H,W or a width (default: docs/cli.md)", NULL},
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
    bool images; /* IDX images: a square width is [1,s,s] for a spec starting with a conv */
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
            cli_err("%s\n(install Debian's dataset-fashion-mnist package, or "
                    "run 'make run' which installs it)\n",
                    st.msg);
        else if (rc) cli_err("%s\n", st.msg);
        d->classify = true;
        d->images = true;
        return rc ? 1 : 0;
    }
    if (len >= 4 && strcmp(spec + len - 4, ".csv") == 0) {
        tg_csv_opts co = {.header = -1,
                          .label_col = (int)label,
                          .regression = cli_flag(o, n, "regression"),
                          .delim = ','};
        tg_dataset all;
        if ((rc = tg_csv_load(spec, dt, &co, &all, &st))) {
            /* the only TG_EARG of a readable file: a label column it does not have */
            if (rc == TG_EARG) cli_err("--label-col %lld: %s\n", label, st.msg);
            else cli_err("%s\n", st.msg);
            return rc == TG_EARG ? 2 : 1;
        }
        rc = tg_dataset_split(&all, frac, seed, &d->train, &d->test, &st);
        tg_dataset_free(&all);
        if (rc) { /* too few rows for this share on one side */
            if (rc == TG_EARG) cli_err("--test-fraction %g: %s\n", frac, st.msg);
            else cli_err("%s\n", st.msg);
            return rc == TG_EARG ? 2 : 1;
        }
        tg_dataset_standardize(&d->train, &d->test);
        d->classify = d->train.n_classes > 0;
        return 0;
    }
    cli_err("--data %s: want fashion-mnist, mnist:DIR or a .csv file\n", spec);
    return 2;
}

/* The model description saved with the parameters, so eval can rebuild the network. */
typedef struct model_desc {
    bool arch; /* a --arch spec instead of the MLP's layers */
    char spec[TG_NN_SPEC_MAX_LEN + 1];
    int in_nd; /* --arch: one example's shape */
    int64_t in[3];
    long long sizes[MAX_LAYERS];
    int n_sizes;
    char act[32];
    double dropout;
    bool batchnorm;
    tg_dtype dtype;
} model_desc;

#define DESC_SIZE (TG_NN_SPEC_MAX_LEN + 128)

static void desc_format(const model_desc *m, char *buf, size_t size)
{
    if (m->arch) {
        size_t k = (size_t)snprintf(buf, size, "arch spec=%s input=", m->spec);
        for (int i = 0; i < m->in_nd && k < size; i++)
            k += (size_t)snprintf(buf + k, size - k, "%s%lld", i ? "," : "", (long long)m->in[i]);
        if (k < size) snprintf(buf + k, size - k, " dtype=%s", tg_dtype_name(m->dtype));
        return;
    }
    size_t k = (size_t)snprintf(buf, size, "mlp layers=");
    for (int i = 0; i < m->n_sizes && k < size; i++)
        k += (size_t)snprintf(buf + k, size - k, "%s%lld", i ? "," : "", m->sizes[i]);
    if (k < size)
        snprintf(buf + k, size - k, " act=%s dropout=%g batchnorm=%d dtype=%s", m->act, m->dropout,
                 m->batchnorm, tg_dtype_name(m->dtype));
}

/* desc_format's line back into m; -1 when s is not one (a number out of range included). */
static int desc_parse(const char *s, model_desc *m)
{
    char layers[512], act[32], dtype[8], *end;
    int at = -1, at_bn = -1;
    memset(m, 0, sizeof *m);
    if (strncmp(s, "arch ", 5) == 0) { /* checked against the tensors by tg_nn_read_meta */
        char input[64];
        long long v[4];
        if (sscanf(s, "arch spec=%1024s input=%63s dtype=%7s", m->spec, input, dtype) != 3 ||
            cli_int_list(input, v, 4, &m->in_nd) || (m->in_nd != 1 && m->in_nd != 3))
            return -1;
        for (int i = 0; i < m->in_nd; i++) m->in[i] = v[i];
        m->arch = true;
        m->dtype = strcmp(dtype, "f64") == 0 ? TG_F64 : TG_F32;
        return 0;
    }
    /* The numbers are read by strtod and strtol, range-checked, between the words. */
    if (sscanf(s, "mlp layers=%511s act=%31s dropout=%n", layers, act, &at) != 2 || at < 0)
        return -1;
    errno = 0;
    m->dropout = strtod(s + at, &end);
    if (end == s + at || errno == ERANGE || !(m->dropout >= 0 && m->dropout < 1)) return -1;
    s = end;
    if (sscanf(s, " batchnorm=%n", &at_bn) != 0 || at_bn < 0) return -1;
    errno = 0;
    long bn = strtol(s + at_bn, &end, 10);
    if (end == s + at_bn || errno == ERANGE || bn < INT_MIN || bn > INT_MAX) return -1;
    if (sscanf(end, " dtype=%7s", dtype) != 1) return -1;
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
    tg_module *net =
        m->arch ? tg_nn_from_spec(m->spec, m->in_nd, m->in, m->dtype, &st)
                : tg_nn_mlp(m->n_sizes, sizes, m->act, m->dropout, m->batchnorm, m->dtype, &st);
    if (!net) cli_err("%s%s\n", m->arch ? "--arch: " : "", st.msg);
    return net;
}

/* Reads the common model options into desc, before any data is read: every bad value is a
 * usage error found at once. */
static int model_opts(const cli_opt *o, int n, model_desc *m)
{
    memset(m, 0, sizeof *m);
    const char *act;
    if (cli_given(o, n, "arch")) {
        if (cli_arch_alone(o, n)) return 2;
        tg_nn_spec_info info;
        if (cli_arch(cli_str(o, n, "arch"), m->spec, &info)) return 2;
        m->arch = true;
        snprintf(m->act, sizeof m->act, "%s",
                 strstr(m->spec, "relu") || strstr(m->spec, "elu") ? "relu" : "tanh");
    } else if (cli_given(o, n, "input-shape")) {
        cli_err("--input-shape goes with --arch\n");
        return 2;
    } else if (cli_layers(o, n, "layers", m->sizes, MAX_LAYERS, &m->n_sizes) ||
               cli_act(o, n, "act", &act) || cli_double(o, n, "dropout", 0, 0.99, &m->dropout))
        return 2;
    else {
        snprintf(m->act, sizeof m->act, "%s", act);
        m->batchnorm = cli_flag(o, n, "batchnorm");
    }
    const char *dt = cli_str(o, n, "dtype");
    if (strcmp(dt, "f32") != 0 && strcmp(dt, "f64") != 0) {
        cli_err("--dtype %s: want f32 or f64\n", dt);
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
    int64_t out = d->classify ? d->train.n_classes
                              : (tg_tensor_ndim(d->train.y) > 1 ? tg_tensor_dim(d->train.y, 1) : 1);
    if (m->arch) {
        tg_nn_spec_info info;
        return cli_arch_input(m->spec, cli_str(o, n, "input-shape"), d->images, d->train.d, out, 0,
                              &m->in_nd, m->in, &info);
    }
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
        cli_err("--layers %s: the data has %lld features and %lld outputs\n", layers,
                (long long)d->train.d, (long long)out);
        return 2;
    }
    return 0;
}

/* The model's output for a batch x [B, features]: reshaped to [B, C, H, W] first for a spec
 * on images (tg_reshape on the tape: one copy of the batch, small next to a convolution). */
static tg_tensor *model_forward(tg_module *net, tg_tape *tp, tg_tensor *x, const model_desc *m)
{
    if (m->arch && m->in_nd == 3) {
        int64_t s[4] = {tg_tensor_dim(x, 0), m->in[0], m->in[1], m->in[2]};
        x = tg_reshape(tp, x, 4, s);
    }
    return tg_nn_forward(net, tp, x);
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
static int evaluate(tg_module *net, const model_desc *md, tg_tape *tp, const tg_dataset *ds,
                    bool classify, eval_result *r, int64_t *confusion)
{
    tg_status st = {0};
    tg_batcher *b = tg_batcher_new(ds, 1000, false, 0, &st);
    if (!b) {
        cli_err("%s\n", st.msg);
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
        tg_tensor *out = model_forward(net, tp, x, md);
        tg_tensor *l = batch_loss(tp, out, y, classify);
        if (!l) {
            cli_err("%s\n", tg_tape_error(tp));
            rc = 1;
            break;
        }
        int64_t rows = tg_tensor_dim(x, 0);
        loss += tg_get(l, 0) * (double)rows;
        if (classify) {
            metric += tg_accuracy(out, y) * (double)rows;
            if (confusion) {
                int64_t *m = calloc((size_t)ds->n_classes * (size_t)ds->n_classes, sizeof *m);
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
    const model_desc *md;
    tg_module *net;
    tg_tape *tp;
    tg_tensor *x, *y;
    bool classify;
} closure_ctx;

static int train_closure(void *ctx, double *loss)
{
    closure_ctx *c = ctx;
    tg_tape_reset(c->tp);
    tg_tensor *l = batch_loss(c->tp, model_forward(c->net, c->tp, c->x, c->md), c->y, c->classify);
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
    for (int i = 0; i < width; i++) bar[i] = (char)(i < fill ? '=' : i == fill ? '>' : ' ');
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
    } kinds[] = {{"uniform", TG_INIT_UNIFORM},
                 {"xavier-normal", TG_INIT_XAVIER_NORMAL},
                 {"xavier-uniform", TG_INIT_XAVIER_UNIFORM},
                 {"he-normal", TG_INIT_HE_NORMAL},
                 {"he-uniform", TG_INIT_HE_UNIFORM},
                 {"orthogonal", TG_INIT_ORTHOGONAL}};
    if (strcmp(s, "auto") == 0) {
        bool rectifier = strstr(act, "relu") || strcmp(act, "elu") == 0;
        *k = rectifier ? TG_INIT_HE_UNIFORM : TG_INIT_XAVIER_UNIFORM;
        return 0;
    }
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (strcmp(s, kinds[i].name) == 0) return *k = kinds[i].kind, 0;
    cli_err("--init %s: want auto, uniform, xavier-normal, xavier-uniform, "
            "he-normal, he-uniform or orthogonal\n",
            s);
    return 2;
}

/* The options of train beyond the data, checked before any data is read. */
typedef struct train_cfg {
    long long seed, threads, batch, epochs;
    const char *opt_name, *save, *log_path;
    const char *ckpt, *resume; /* --checkpoint, --resume */
    long long ckpt_every;      /* steps between checkpoints; 0: every epoch */
    tg_optim_opts oo;
    int schedule; /* an index into schedules[] */
    model_desc md;
    tg_init init;
    bool profile;
    bool dist;           /* --distributed */
    long long bucket_kb; /* --bucket-kb */
    double timeout;      /* --timeout */
} train_cfg;

/* What a run holds; train_cleanup frees it whatever happened. */
typedef struct train_run {
    run_data d;
    tg_module *net;
    tg_tape *tp;
    tg_optim *opt;
    tg_batcher *bt;
    tg_tensor *params[256];
    int np;
    /* --distributed: the communicator, this rank of size, the gradient averaging */
    tg_comm *comm;
    tg_ddp *ddp;
    int rank, size;
    int64_t global_batch; /* rows of a whole global batch (at most the training set's) */
    FILE *log;
    bool log_new;      /* made by this run: removed if the run fails before an epoch */
    bool log_reported; /* a write error of the log was reported */
    bool full;         /* a line-search method: one step over the whole training set */
    bool tty;
    int epochs_done;
    int64_t steps_per_epoch;
    /* --resume: the epochs done and the steps into the next, with its loss so far */
    int64_t start_epoch, start_step, start_seen;
    double start_sum;
    bool resumed;
    double train_secs, optim_secs;
    eval_result ev;
    const model_desc *md;
    char desc[DESC_SIZE];
} train_run;

static const char *const schedules[] = {"constant", "step", "exp", "cosine"};
enum { N_SCHEDULES = sizeof schedules / sizeof schedules[0] };
enum { N_COMMON = sizeof model_opts_template / sizeof model_opts_template[0] };
#define TRAIN_MAX_OPTS (N_COMMON + 20)

/* Fills o (TRAIN_MAX_OPTS long) with train's options; returns how many. */
static int train_opt_table(cli_opt *o)
{
    static const cli_opt extra[] = {
        {"opt", false, "adam",
         "optimiser (sgd momentum nesterov adagrad rmsprop adadelta adam ...)", NULL},
        {"lr", false, NULL, "learning rate (default: the optimiser's)", NULL},
        {"momentum", false, NULL, "momentum of --opt momentum, nesterov and momentum_ema", NULL},
        {"weight-decay", false, "0", "decoupled weight decay", NULL},
        {"l2", false, "0", "L2 regularisation added to the gradient", NULL},
        {"clip-norm", false, "0", "clip gradients to this global norm (0: off)", NULL},
        {"schedule", false, "cosine",
         "learning-rate schedule over the run: constant, step, exp, cosine", NULL},
        {"batch", false, "64",
         "mini-batch size (1: stochastic; 0: full batch; line-search methods: full)", NULL},
        {"epochs", false, "5", "passes over the training set", NULL},
        {"init", false, "auto", "weight init (auto: he-uniform for relu-like, else xavier-uniform)",
         NULL},
        {"save", false, NULL, "save the trained model to this file", NULL},
        {"checkpoint", false, NULL,
         "save the whole run's state to this file after every epoch (docs/cli.md)", NULL},
        {"checkpoint-every", false, "0",
         "--checkpoint every this many steps instead (0: after every epoch)", NULL},
        {"resume", false, NULL, "continue the run of this --checkpoint file", NULL},
        {"log", false, "tapegrad-log.csv",
         "CSV log of the curves (a PNG plot beside it with gnuplot)", NULL},
        {"profile", true, NULL, "print the time of every op kind in the training steps", NULL},
        {"distributed", true, NULL,
         "data-parallel over the ranks of 'mpirun -np N' (--batch per rank; docs/distributed.md)",
         NULL},
        {"bucket-kb", false, "1024", "--distributed: gradient allreduce bucket size in KiB", NULL},
        {"timeout", false, "60",
         "--distributed: seconds a rank waits for the others before the job is ended", NULL},
        {"help", true, NULL, "this help", NULL},
    };
    _Static_assert(N_COMMON + sizeof extra / sizeof extra[0] <= TRAIN_MAX_OPTS, "option table");
    memcpy(o, model_opts_template, sizeof model_opts_template);
    memcpy(o + N_COMMON, extra, sizeof extra);
    return N_COMMON + (int)(sizeof extra / sizeof extra[0]);
}

/* The numbers, the optimiser and its schedule into c; 2 and a message on a bad value. */
/* Methods train cannot step: lm (residuals), newton and newton_cg (a recorded objective). */
static bool c_api_only(const char *m)
{
    return !strcmp(m, "lm") || !strcmp(m, "newton") || !strcmp(m, "newton_cg");
}

static int train_optim_config(const cli_opt *o, int n, train_cfg *c)
{
    long long label;
    double lr = -1, momentum = -1, wd = 0, l2 = 0, clip = 0, frac;
    c->seed = 1, c->threads = 1, c->batch = 128, c->epochs = 5;
    if (cli_int(o, n, "seed", 0, (1LL << 62), &c->seed) ||
        cli_int(o, n, "threads", 1, 256, &c->threads) ||
        cli_int(o, n, "batch", 0, 1LL << 40, &c->batch) ||
        cli_int(o, n, "epochs", 1, 1000000, &c->epochs) || cli_double(o, n, "lr", 0, 1e6, &lr) ||
        cli_double(o, n, "momentum", 0, 0.999999, &momentum) ||
        cli_double(o, n, "weight-decay", 0, 1e6, &wd) || cli_double(o, n, "l2", 0, 1e6, &l2) ||
        cli_double(o, n, "clip-norm", 0, 1e12, &clip) || csv_opts(o, n, &label, &frac))
        return 2;
    const char *opt_name = cli_str(o, n, "opt"), *sched = cli_str(o, n, "schedule");
    c->opt_name = opt_name;
    if (tg_optim_defaults(opt_name, &c->oo)) {
        cli_err("--opt %s: unknown optimiser; one of:", opt_name);
        for (int i = 0; tg_optim_method(i); i++)
            if (!c_api_only(tg_optim_method(i))) fprintf(stderr, " %s", tg_optim_method(i));
        fprintf(stderr, "\n");
        return 2;
    }
    if (strcmp(opt_name, "newton") == 0 || strcmp(opt_name, "newton_cg") == 0) {
        cli_err("--opt %s steps on an objective recorded for second "
                "derivatives, which train does not build; use it from C "
                "(tg_optim_step_newton) or in 'tapegrad demo optimizers-classic'\n",
                opt_name);
        return 2;
    }
    if (strcmp(opt_name, "lm") == 0) {
        cli_err("--opt lm steps on residuals, not on the loss train "
                "minimises; use it from C (tg_optim_step_lm) or in 'tapegrad demo "
                "optimizers-classic'\n");
        return 2;
    }
    c->schedule = 0;
    while (c->schedule < N_SCHEDULES && strcmp(sched, schedules[c->schedule]) != 0) c->schedule++;
    if (c->schedule == N_SCHEDULES) {
        cli_err("--schedule %s: want constant, step, exp or cosine\n", sched);
        return 2;
    }
    if (momentum >= 0 && strcmp(opt_name, "momentum") != 0 && strcmp(opt_name, "nesterov") != 0 &&
        strcmp(opt_name, "momentum_ema") != 0) {
        cli_err("--momentum: --opt %s has no momentum term; it goes with --opt momentum, "
                "nesterov or momentum_ema\n",
                opt_name);
        return 2;
    }
    if (lr >= 0) c->oo.lr = lr;
    if (momentum >= 0) c->oo.momentum = momentum;
    c->oo.weight_decay = wd, c->oo.l2 = l2, c->oo.clip_norm = clip;
    return 0;
}

/* Every option of train into c, before the data is read: a bad value is a usage error (2). */
static int train_config(const cli_opt *o, int n, train_cfg *c)
{
    memset(c, 0, sizeof *c);
    if (train_optim_config(o, n, c)) return 2;
    if (model_opts(o, n, &c->md) || init_kind(cli_str(o, n, "init"), c->md.act, &c->init)) return 2;
    c->save = cli_str(o, n, "save"), c->log_path = cli_str(o, n, "log");
    if (c->save && !*c->save) {
        cli_err("--save: the path is empty\n");
        return 2;
    }
    c->profile = cli_flag(o, n, "profile");
    c->ckpt = cli_str(o, n, "checkpoint"), c->resume = cli_str(o, n, "resume");
    if (cli_int(o, n, "checkpoint-every", 0, 1LL << 40, &c->ckpt_every)) return 2;
    if ((c->ckpt && !*c->ckpt) || (c->resume && !*c->resume)) {
        cli_err("--%s: the path is empty\n", c->ckpt && !*c->ckpt ? "checkpoint" : "resume");
        return 2;
    }
    if (cli_given(o, n, "checkpoint-every") && !c->ckpt) {
        cli_err("--checkpoint-every: needs --checkpoint PATH\n");
        return 2;
    }
    c->dist = cli_flag(o, n, "distributed");
    if (cli_int(o, n, "bucket-kb", 1, 1LL << 30, &c->bucket_kb) ||
        cli_double(o, n, "timeout", 0.1, 1e6, &c->timeout))
        return 2;
    if ((cli_given(o, n, "bucket-kb") || cli_given(o, n, "timeout")) && !c->dist) {
        cli_err("--%s: goes with --distributed\n",
                cli_given(o, n, "bucket-kb") ? "bucket-kb" : "timeout");
        return 2;
    }
#ifndef TG_HAVE_MPI
    if (c->dist) {
        cli_err("--distributed: this tapegrad was built without MPI (install Debian's "
                "libopenmpi-dev and openmpi-bin, then rebuild)\n");
        return 2;
    }
#endif
    return 0;
}

/* The learning-rate schedule of kind (an index into schedules[]) over the whole run. */
static void set_schedule(tg_optim_opts *oo, int kind, int64_t steps_per_epoch, long long epochs)
{
    if (kind == 0) oo->schedule.kind = TG_LR_CONSTANT;
    else if (kind == 1)
        oo->schedule =
            (tg_lr_schedule){.kind = TG_LR_STEP, .step_size = steps_per_epoch, .gamma = 0.5};
    else if (kind == 2)
        oo->schedule = (tg_lr_schedule){
            .kind = TG_LR_EXP, .gamma = pow(0.1, 1.0 / (double)(steps_per_epoch * epochs))};
    else
        oo->schedule =
            (tg_lr_schedule){.kind = TG_LR_COSINE, .t_max = steps_per_epoch * epochs, .lr_min = 0};
}

/* The initialised network, its optimiser, the batcher and the tape; 1 with a message on a
 * failure, 2 for an option the optimiser does not take. */
static int train_setup(train_cfg *c, train_run *r)
{
    if (!(r->net = build_model(&c->md))) return 1;
    c->threads = tg_set_num_threads((int)c->threads); /* capped at the CPUs this process may use */
    tg_rng rng;
    tg_rng_seed(&rng, (uint64_t)c->seed);
    tg_nn_init(r->net, c->init, 0, &rng);
    int np = r->np = tg_nn_params(r->net, r->params, 256);
    int64_t n = r->d.train.n, size = r->comm ? r->size : 1;
    /* --batch is per rank; a global batch beyond the set is the whole set, cut in parts */
    if (c->batch == 0 || c->batch * size > n) c->batch = (n + size - 1) / size;
    r->global_batch = c->batch * size < n ? c->batch * size : n;
    r->steps_per_epoch = (n + r->global_batch - 1) / r->global_batch;
    set_schedule(&c->oo, c->schedule, r->steps_per_epoch, c->epochs);
    tg_status st = {0};
    if (!(r->opt = tg_optim_new(c->opt_name, np, r->params, &c->oo, &st))) {
        /* an option (or bfgs's size limit) the method does not take */
        cli_err("--opt %s: %s\n", c->opt_name, st.msg);
        return st.code == TG_EARG ? 2 : 1;
    }
    r->full = tg_optim_needs_closure(r->opt);
    if (r->full) { /* line searches compare values of one objective */
        c->batch = (n + size - 1) / size;
        r->global_batch = n;
    }
    r->bt = r->comm ? tg_batcher_new_shard(&r->d.train, c->batch, true, (uint64_t)c->seed, r->rank,
                                           r->size, &st)
                    : tg_batcher_new(&r->d.train, c->batch, true, (uint64_t)c->seed, &st);
    if (!r->bt) {
        cli_err("%s\n", st.msg);
        return 1;
    }
    if (r->comm) { /* broadcasts rank 0's initial parameters (collective) */
        tg_ddp_opts dop;
        tg_ddp_defaults(&dop);
        dop.bucket_bytes = c->bucket_kb * 1024;
        if (!(r->ddp = tg_ddp_new(r->comm, np, r->params, &dop, &st))) {
            cli_err("%s\n", st.msg);
            return 1;
        }
    }
    /* a line-search method takes one step an epoch (its schedule was set from the batch) */
    r->steps_per_epoch = tg_batcher_count(r->bt);
    if (!(r->tp = tg_tape_new())) return 1;
    tg_tape_seed(r->tp, (uint64_t)c->seed);
    return 0;
}

/* Reports that the log cannot be written (errno says why). */
static void log_error(train_run *r, const char *log_path)
{
    cli_err("--log %s: cannot write it: %s\n", log_path, strerror(errno));
    r->log_reported = true;
}

/* The outputs are checked before training, not found unwritable after the last epoch:
 * --save where tg_nn_save will write (nothing is left behind), then the log is opened. */
static int train_open_outputs(const train_cfg *c, train_run *r)
{
    if (r->rank != 0) return 0; /* rank 0 alone logs and saves */
    if (c->save && cli_check_writable("save", c->save)) return 1;
    if (c->ckpt && cli_check_writable("checkpoint", c->ckpt)) return 1;
    if (!c->log_path || !*c->log_path) return 0;
    r->log_new = access(c->log_path, F_OK) != 0;
    bool append = r->resumed && !r->log_new; /* a resumed run goes on with its log */
    if (!(r->log = fopen(c->log_path, append ? "a" : "w"))) {
        log_error(r, c->log_path);
        r->log_new = false;
        return 1;
    }
    if (!append)
        fprintf(r->log, "epoch,train_loss,test_loss,%s,seconds\n",
                r->d.classify ? "test_accuracy" : "test_mse");
    return 0;
}

/* Prints what is trained, on what and how; the model description into r->desc. */
static void train_banner(const train_cfg *c, train_run *r)
{
    desc_format(&c->md, r->desc, sizeof r->desc);
    printf("data: %lld training and %lld test examples, %lld features%s\n", (long long)r->d.train.n,
           (long long)r->d.test.n, (long long)r->d.train.d, r->d.classify ? "" : " (regression)");
    printf("model: %s, %lld weights\n", r->desc, (long long)tg_nn_n_weights(r->net));
    if (r->comm)
        printf("training: %s lr %g, batch %d x %lld = %lld over %d rank%s, %lld epochs, %lld "
               "thread%s per rank, seed %lld\n",
               c->opt_name, c->oo.lr, r->size, c->batch, (long long)r->global_batch, r->size,
               r->size > 1 ? "s" : "", c->epochs, c->threads, c->threads > 1 ? "s" : "", c->seed);
    else
        printf("training: %s lr %g, batch %lld, %lld epochs, %lld thread%s, seed %lld\n",
               c->opt_name, c->oo.lr, c->batch, c->epochs, c->threads, c->threads > 1 ? "s" : "",
               c->seed);
}

/* ---- checkpoints (--checkpoint, --resume) ----
 * The library's checkpoint holds the model, the optimiser, the batcher and the tape's
 * generator, with the epochs done and the steps into the next; its caller's blob holds the
 * loss summed so far in that epoch and the options that shape the run, which a resume must
 * give again (all but --epochs, which may grow). */
#define CKPT_TAG "tapegrad train checkpoint 1"

/* The options a resumed run must share with the checkpointed one, as text. */
static void run_signature(const train_cfg *c, const train_run *r, char *buf, size_t size)
{
    const tg_optim_opts *o = &c->oo;
    snprintf(buf, size,
             "opt=%s lr=%.17g momentum=%.17g weight-decay=%.17g l2=%.17g clip-norm=%.17g "
             "schedule=%s batch=%lld seed=%lld init=%d model=%s",
             c->opt_name, o->lr, o->momentum, o->weight_decay, o->l2, o->clip_norm,
             schedules[c->schedule], (long long)r->global_batch, c->seed, (int)c->init, r->desc);
}

/* Saves the run after `epochs` whole epochs and `step` steps of the next (the loss summed
 * over its seen rows so far); 1 with a message on a failure (the old checkpoint stays). */
static int save_checkpoint(const train_cfg *c, train_run *r, int64_t epochs, int64_t step,
                           double sum, int64_t seen)
{
    if (r->comm) { /* the epoch's loss so far over every rank; rank 0 writes */
        double v[2] = {sum, (double)seen};
        if (tg_comm_allreduce(r->comm, v, 2, TG_COMM_F64)) {
            cli_err("--checkpoint: %s\n", tg_comm_error(r->comm));
            return 1;
        }
        if (r->rank != 0) return 0;
        sum = v[0], seen = (int64_t)v[1];
    }
    char blob[DESC_SIZE + 512], sig[DESC_SIZE + 300];
    run_signature(c, r, sig, sizeof sig);
    int len = snprintf(blob, sizeof blob, "%s\nsum %a\nseen %lld\nepochs %lld\n%s", CKPT_TAG, sum,
                       (long long)seen, c->epochs, sig);
    tg_checkpoint ck = {.model = r->net,
                        .optim = r->opt,
                        .batcher = r->bt,
                        .tape = r->tp,
                        .epoch = epochs,
                        .step = step,
                        .meta = r->desc,
                        .user = blob,
                        .user_len = len < (int)sizeof blob ? (size_t)len : sizeof blob - 1};
    tg_status st = {0};
    if (tg_checkpoint_save(c->ckpt, &ck, &st)) {
        if (r->tty) fputc('\n', stderr);
        cli_err("--checkpoint: %s\n", st.msg);
        return 1;
    }
    return 0;
}

/* --resume: the run's state from the file, checked against this run's options; 1 (a bad or
 * mismatched file) or 2 (other options than the checkpointed run's) with a message. */
static int load_checkpoint(const train_cfg *c, train_run *r)
{
    char blob[DESC_SIZE + 513], sig[DESC_SIZE + 300];
    tg_checkpoint ck = {.model = r->net,
                        .optim = r->opt,
                        .batcher = r->bt,
                        .tape = r->tp,
                        .user = blob,
                        .user_cap = sizeof blob - 1};
    tg_status st = {0};
    desc_format(r->md, r->desc, sizeof r->desc);
    if (tg_checkpoint_load(c->resume, &ck, &st)) {
        cli_err("--resume: %s\n", st.msg);
        return 1;
    }
    blob[ck.user_len] = '\0';
    /* CKPT_TAG, "sum %a", "seen N", "epochs N", then the signature, one a line */
    char *at = strchr(blob, '\n'), *end = NULL;
    long long seen = -1, epochs = 0;
    double sum = (double)NAN;
    bool ok = at && (size_t)(at - blob) == strlen(CKPT_TAG) &&
              !strncmp(blob, CKPT_TAG, at - blob) && !strncmp(at + 1, "sum ", 4);
    if (ok) sum = strtod(at + 5, &end);
    errno = 0; /* the numbers by strtoll, which says when one is out of range */
    ok = ok && !strncmp(end, "\nseen ", 6);
    if (ok) seen = strtoll(end + 6, &end, 10);
    ok = ok && !strncmp(end, "\nepochs ", 8);
    if (ok) epochs = strtoll(end + 8, &end, 10);
    at = ok && *end == '\n' && seen >= 0 && errno != ERANGE ? end : NULL; /* the signature's \n */
    if (!at || !isfinite(sum) || ck.epoch < 0 || ck.epoch > 1000000 || ck.step < 0 ||
        ck.step > r->steps_per_epoch) {
        cli_err("--resume %s: not a checkpoint of 'tapegrad train'\n", c->resume);
        return 1;
    }
    run_signature(c, r, sig, sizeof sig);
    if (strcmp(at + 1, sig) != 0) {
        /* the first option that differs */
        const char *a = at + 1, *b = sig;
        while (*a && *a == *b) a++, b++;
        while (a > at + 1 && a[-1] != ' ') a--, b--;
        cli_err("--resume %s: the checkpointed run had %.*s, this one has %.*s "
                "(give the options of that run)\n",
                c->resume, (int)strcspn(a, " "), a, (int)strcspn(b, " "), b);
        return 2;
    }
    if (epochs != c->epochs && c->schedule >= 2)
        cli_err("note: the checkpointed run had --epochs %lld; the %s schedule now "
                "spans %lld\n",
                epochs, schedules[c->schedule], c->epochs);
    r->resumed = true;
    r->start_epoch = ck.epoch, r->start_step = ck.step;
    r->start_sum = sum, r->start_seen = seen;
    r->epochs_done = (int)ck.epoch;
    printf("resumed: %s after %lld epoch%s and %lld step%s\n", c->resume, (long long)ck.epoch,
           ck.epoch == 1 ? "" : "s", (long long)ck.step, ck.step == 1 ? "" : "s");
    return 0;
}

/* --distributed, full batch: one iteration of the method with the loss and gradient over
 * every rank's part; the loss in *lv. */
static int dist_full_step(train_run *r, closure_ctx *cc, double *lv)
{
    tg_status st = {0};
    tg_dist_closure *dc = tg_dist_closure_new(r->comm, r->np, r->params, train_closure, cc,
                                              tg_tensor_dim(cc->x, 0), &st);
    if (!dc) {
        cli_err("%s\n", st.msg);
        return -1;
    }
    int rc = tg_optim_step_closure(r->opt, tg_dist_closure_call, dc, lv);
    if (rc && *tg_dist_closure_error(dc) && !tg_tape_errcode(r->tp))
        cli_err("%s\n", tg_dist_closure_error(dc)), rc = -1;
    tg_dist_closure_free(dc);
    return rc;
}

/* --distributed: this rank's part of the global batch; the gradients averaged over the ranks
 * (a rank with no rows only takes part in the averaging); its mean loss in *lv. */
static int dist_step(train_run *r, tg_tensor *x, tg_tensor *y, double *lv)
{
    int64_t rows = tg_tensor_dim(x, 0);
    tg_optim_zero_grad(r->opt);
    tg_tape_reset(r->tp);
    *lv = 0;
    if (tg_ddp_begin(r->ddp, r->tp, rows, tg_batcher_global_rows(r->bt))) goto comm_failed;
    if (rows > 0) {
        tg_tensor *loss =
            batch_loss(r->tp, model_forward(r->net, r->tp, x, r->md), y, r->d.classify);
        if (!loss || tg_backward(r->tp, loss)) {
            if (r->tty) fputc('\n', stderr);
            cli_err("%s\n", tg_tape_error(r->tp));
            return 1;
        }
        *lv = tg_get(loss, 0);
    }
    if (tg_ddp_finish(r->ddp)) goto comm_failed;
    double t_opt = cli_now();
    int bad = tg_optim_step(r->opt);
    r->optim_secs += cli_now() - t_opt;
    if (bad) cli_err("%s\n", tg_tape_error(r->tp));
    return bad ? 1 : 0;
comm_failed:
    if (r->tty) fputc('\n', stderr);
    cli_err("%s\n", tg_ddp_error(r->ddp));
    return 1;
}

/* One optimiser step on the batch (x, y), its loss in *lv; 1 with a message on a failure. */
static int train_step(train_run *r, int epoch, tg_tensor *x, tg_tensor *y, double *lv)
{
    if (r->full) { /* one iteration of the method over the whole training set */
        closure_ctx cc = {r->md, r->net, r->tp, x, y, r->d.classify};
        int rc = r->comm ? dist_full_step(r, &cc, lv)
                         : tg_optim_step_closure(r->opt, train_closure, &cc, lv);
        if (rc == 0) return 0;
        if (r->tty) fputc('\n', stderr);
        if (rc == -1) return 1; /* reported */
        if (tg_tape_errcode(r->tp)) cli_err("%s\n", tg_tape_error(r->tp));
        else
            cli_err("epoch %d: the training loss is not finite: "
                    "the run diverged\n",
                    epoch);
        return 1;
    }
    if (r->comm) return dist_step(r, x, y, lv);
    tg_tape_reset(r->tp);
    tg_tensor *loss = batch_loss(r->tp, model_forward(r->net, r->tp, x, r->md), y, r->d.classify);
    tg_optim_zero_grad(r->opt);
    bool bad = !loss || tg_backward(r->tp, loss);
    double t_opt = cli_now();
    bad = bad || tg_optim_step(r->opt);
    r->optim_secs += cli_now() - t_opt;
    if (bad) {
        if (r->tty) fputc('\n', stderr);
        cli_err("%s\n", tg_tape_error(r->tp));
        return 1;
    }
    *lv = tg_get(loss, 0);
    return 0;
}

/* --distributed over several ranks: the seed of the tape's generator (dropout) for a step of
 * a rank, so that the masks depend on the step and the rank only and a resumed run draws
 * the uninterrupted run's (splitmix64's finaliser). */
static uint64_t step_seed(long long seed, int rank, int64_t step)
{
    uint64_t z = (uint64_t)seed ^ ((uint64_t)rank << 48) ^ ((uint64_t)step * 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

/* One pass over the training set (started at time t0) with a progress bar: the summed loss
 * in *sum over *seen rows (over every rank with --distributed); 1 with a message on a
 * failure or a diverging loss. */
static int train_epoch(const train_cfg *c, train_run *r, int e, double t0, double *sum_out,
                       int64_t *seen_out)
{
    double sum = 0, last = t0;
    int64_t seen = 0, k = 0, gseen = 0; /* gseen: rows of the global batches, for the rate */
    tg_tensor *x, *y;
    tg_nn_set_training(r->net, true);
    if (r->resumed && e == r->start_epoch + 1 && r->start_step > 0) { /* in the batcher's place */
        k = r->start_step;
        if (r->rank == 0) sum = r->start_sum, seen = r->start_seen; /* every rank's so far */
    } else tg_batcher_reset(r->bt);
    if (c->profile && tg_tape_set_profiling(r->tp, true)) {
        cli_err("%s\n", tg_tape_error(r->tp));
        return 1;
    }
    while (tg_batcher_next(r->bt, &x, &y)) {
        double lv;
        if (r->comm && r->size > 1)
            tg_tape_seed(r->tp,
                         step_seed(c->seed, r->rank, (int64_t)(e - 1) * r->steps_per_epoch + k));
        if (train_step(r, e, x, y, &lv)) return 1;
        int64_t rows = tg_tensor_dim(x, 0);
        sum += lv * (double)rows;
        seen += rows, k++;
        gseen += r->comm ? tg_batcher_global_rows(r->bt) : rows;
        if (!isfinite(sum)) { /* every step: a diverging run stops at once */
            if (r->tty) fputc('\n', stderr);
            cli_err("epoch %d, step %lld: the training loss is %g: the run "
                    "diverged (try a smaller --lr, --clip-norm or another --opt)\n",
                    e, (long long)k, isfinite(lv) ? sum : lv);
            return 1;
        }
        int64_t global = (int64_t)(e - 1) * r->steps_per_epoch + k;
        if (c->ckpt && c->ckpt_every > 0 && global % c->ckpt_every == 0 &&
            save_checkpoint(c, r, e - 1, k, sum, seen))
            return 1;
        double now = cli_now();
        if (now - last > 0.1 || k == r->steps_per_epoch) {
            progress(r->tty, e, (int)c->epochs, k, r->steps_per_epoch, sum / (double)seen,
                     (double)gseen / (now - t0));
            last = now;
        }
    }
    if (r->comm) { /* the loss over every rank's rows */
        double v[2] = {sum, (double)seen};
        if (tg_comm_allreduce(r->comm, v, 2, TG_COMM_F64)) {
            cli_err("%s\n", tg_comm_error(r->comm));
            return 1;
        }
        sum = v[0], seen = (int64_t)v[1];
    }
    *sum_out = sum, *seen_out = seen;
    return 0;
}

/* Prints epoch e's line and appends it to the log; 1 when the log cannot be written. */
static int epoch_report(const train_cfg *c, train_run *r, int e, double train_loss, double secs,
                        double rate)
{
    if (r->d.classify)
        printf("epoch %d: train loss %.4f, test loss %.4f, test accuracy %.2f%%, %.1f s (%.0f "
               "samples/s)\n",
               e, train_loss, r->ev.loss, 100 * r->ev.metric, secs, rate);
    else
        printf("epoch %d: train loss %.5g, test MSE %.5g, %.1f s (%.0f samples/s)\n", e, train_loss,
               r->ev.metric, secs, rate);
    fflush(stdout);
    if (!r->log) return 0;
    fprintf(r->log, "%d,%.6g,%.6g,%.6g,%.3f\n", e, train_loss, r->ev.loss, r->ev.metric, secs);
    if (fflush(r->log) || ferror(r->log)) {
        log_error(r, c->log_path);
        return 1;
    }
    return 0;
}

typedef struct fwd_ctx {
    tg_module *net;
    const model_desc *md;
} fwd_ctx;

static tg_tensor *dist_forward(tg_tape *tp, tg_tensor *x, void *ctx)
{
    fwd_ctx *f = ctx;
    return model_forward(f->net, tp, x, f->md);
}

/* The test set's loss and metric into r->ev: with --distributed each rank evaluates a part
 * and the sums are added over the ranks (every rank gets the whole set's figures). */
static int run_evaluate(train_run *r)
{
    if (!r->comm) return evaluate(r->net, r->md, r->tp, &r->d.test, r->d.classify, &r->ev, NULL);
    tg_status st = {0};
    fwd_ctx f = {r->net, r->md};
    tg_nn_set_training(r->net, false);
    int rc = tg_dist_evaluate(r->comm, &r->d.test, 1000, r->tp, dist_forward, &f, &r->ev.loss,
                              &r->ev.metric, &st);
    tg_tape_reset(r->tp);
    if (rc) cli_err("%s\n", st.msg);
    return rc ? 1 : 0;
}

/* Every epoch: a pass over the training set, then the test set's loss, printed and logged. */
static int train_loop(const train_cfg *c, train_run *r)
{
    for (int e = (int)r->start_epoch + 1; e <= c->epochs; e++) {
        double t0 = cli_now(), sum;
        int64_t seen;
        if (train_epoch(c, r, e, t0, &sum, &seen)) return 1;
        double train_time = cli_now() - t0;
        r->train_secs += train_time;
        if (c->profile) tg_tape_set_profiling(r->tp, false); /* not the evaluation */
        if (r->tty) fputc('\n', stderr);
        if (run_evaluate(r)) return 1;
        double secs = cli_now() - t0;
        if (epoch_report(c, r, e, sum / (double)seen, secs, (double)seen / train_time)) return 1;
        r->epochs_done = e;
        if (c->ckpt && c->ckpt_every == 0 && save_checkpoint(c, r, e, 0, 0, 0)) return 1;
    }
    /* resumed after the last epoch: the result is the evaluation of the model as it is */
    if (r->start_epoch >= c->epochs) return run_evaluate(r);
    return 0;
}

/* Closes the log and plots it beside itself (a PNG) when gnuplot is there. */
static int train_close_log(const train_cfg *c, train_run *r)
{
    int closed = fclose(r->log);
    r->log = NULL;
    if (closed) {
        log_error(r, c->log_path);
        return 1;
    }
    const char *log_path = c->log_path;
    char png[1024];
    size_t len = strlen(log_path);
    snprintf(png, sizeof png, "%.*s.png",
             (int)(len > 4 && !strcmp(log_path + len - 4, ".csv") ? len - 4 : len), log_path);
    int cols[3] = {2, 3, 4};
    if (c->epochs > 1 && cli_plot_csv(log_path, png, "training curves", "epoch", "loss / accuracy",
                                      1, cols, 3, false) == 0)
        printf("curves: %s and %s\n", log_path, png);
    else printf("curves: %s\n", log_path);
    return 0;
}

/* After the last epoch: the log closed, the result and the profile printed, the model saved. */
static int train_finish(const train_cfg *c, train_run *r)
{
    if (r->log && train_close_log(c, r)) return 1;
    if (r->d.classify) printf("test accuracy: %.2f%%\n", 100 * r->ev.metric);
    else printf("test MSE: %.6g\n", r->ev.metric);
    if (c->profile) {
        printf("profile of the training steps (%.3f s, of which %.3f s in optimiser steps):\n",
               r->train_secs, r->optim_secs);
        tg_tape_profile_print(r->tp, stdout);
    }
    if (c->save && r->rank == 0) {
        tg_status st = {0};
        if (tg_nn_save_meta(r->net, c->save, r->desc, &st)) {
            cli_err("%s\n", st.msg);
            return 1;
        }
        printf("saved: %s\n", c->save);
    }
    return 0;
}

/* Frees what the run holds; a log the run made is removed when it failed before an epoch. */
static void train_cleanup(const train_cfg *c, train_run *r, int rc)
{
    if (r->log && fclose(r->log) && !r->log_reported) log_error(r, c->log_path);
    if (rc && r->log_new && r->epochs_done == 0) unlink(c->log_path); /* nothing to show: no file */
    tg_ddp_free(r->ddp);
    tg_comm_free(r->comm);
    tg_batcher_free(r->bt);
    tg_optim_free(r->opt);
    tg_tape_free(r->tp);
    tg_nn_free(r->net);
    tg_dataset_free(&r->d.train);
    tg_dataset_free(&r->d.test);
}

#ifdef TG_HAVE_MPI
/* --distributed: joins the ranks of mpirun (one rank when started alone). Errors are
 * prefixed with the rank when there are several; rank 0 alone writes to stdout. */
static int dist_start(const train_cfg *c, train_run *r)
{
    tg_status st = {0};
    if (!(r->comm = tg_comm_mpi_new(NULL, NULL, &st))) {
        cli_err("--distributed: %s\n", st.msg);
        return 1;
    }
    r->rank = tg_comm_rank(r->comm), r->size = tg_comm_size(r->comm);
    if (r->size > 1) cli_set_rank(r->rank);
    tg_comm_set_timeout(r->comm, c->timeout); /* in range: checked by train_config */
    if (r->rank != 0 && !freopen("/dev/null", "w", stdout)) {
        cli_err("--distributed: cannot silence the output: %s\n", strerror(errno));
        return 1;
    }
    return 0;
}
#endif

/* --distributed over several ranks: the ranks compare the status of a setup stage (one
 * sum of small integers), so that a stage that failed on some of them ends all of them with
 * a clean MPI_Finalize instead of leaving the others in the next collective until their
 * timeout. A rank that failed keeps its status (2 for a usage error) and has printed its
 * message; the others return 1, rank 0 saying which ranks failed. *agreed turns false when
 * the comparison itself fails. */
static int dist_agree(const train_run *r, int rc, bool *agreed)
{
    if (!r->comm || r->size < 2) return rc;
    int64_t v[2] = {rc != 0, rc != 0 ? (int64_t)1 << (r->rank < 62 ? r->rank : 62) : 0};
    if (tg_comm_allreduce(r->comm, v, 2, TG_COMM_I64)) {
        cli_err("%s\n", tg_comm_error(r->comm));
        *agreed = false; /* a rank is gone or stuck: MPI_Abort ends them all */
        return rc ? rc : 1;
    }
    if (rc || !v[0]) return rc;
    if (r->rank == 0) {
        char who[128] = "";
        size_t k = 0;
        for (int i = 0; i < 62 && i < r->size && k + 8 < sizeof who; i++)
            if (v[1] >> i & 1) k += (size_t)snprintf(who + k, sizeof who - k, " %d", i);
        cli_err("stopping: %lld rank%s failed (rank%s%s; see above)\n", (long long)v[0],
                v[0] == 1 ? "" : "s", v[0] == 1 ? "" : "s", who);
    }
    return 1;
}

/* With --distributed, ends MPI (after the communicator is freed): a clean finalize after a
 * run that worked on this rank or a failure every rank agreed on (dist_agree), else
 * MPI_Abort, which ends every rank at once (a rank waiting for this one would wait for its
 * timeout). Returns the exit status. */
static int dist_end(const train_cfg *c, int rc, bool agreed)
{
#ifdef TG_HAVE_MPI
    if (!c->dist) return rc;
    fflush(stdout);
    fflush(stderr);
    if (tg_comm_mpi_finalize(rc != 0 && !agreed) && !rc) rc = 1;
#else
    (void)c, (void)agreed;
#endif
    return rc;
}

int cmd_train(int argc, char **argv)
{
    cli_opt o[TRAIN_MAX_OPTS];
    int n = train_opt_table(o);
    if (cli_parse(argc, argv, o, n, NULL, 0, NULL)) return 2;
    if (cli_flag(o, n, "help")) {
        printf("usage: tapegrad train [options]\n");
        cli_usage_opts(stdout, o, n);
        return 0;
    }
    train_cfg c;
    int rc = train_config(o, n, &c);
    if (rc) return rc;
    train_run r;
    memset(&r, 0, sizeof r);
    r.md = &c.md;
    r.ev = (eval_result){(double)NAN, (double)NAN};
#ifdef TG_HAVE_MPI
    if (c.dist && (rc = dist_start(&c, &r))) return dist_end(&c, rc, false);
#endif
    rc = load_data(cli_str(o, n, "data"), c.md.dtype, o, n, (uint64_t)c.seed, &r.d);
    if (!rc) rc = model_fit_data(o, n, &r.d, &c.md);
    bool agreed = true; /* every rank knows of the failure, if any: a clean finalize */
    if (!(rc = dist_agree(&r, rc,
                          &agreed))) { /* before the first collective, tg_ddp_new's broadcast */
        rc = train_setup(&c, &r);
        agreed = rc == 0; /* a rank that failed there left the others in that broadcast */
        if (!rc && c.resume) rc = load_checkpoint(&c, &r);
        if (!rc) rc = train_open_outputs(&c, &r);
        if (agreed) rc = dist_agree(&r, rc, &agreed);
    }
    if (!rc) {
        train_banner(&c, &r);
        r.tty = isatty(2) && r.rank == 0;
        rc = train_loop(&c, &r);
        if (!rc) rc = train_finish(&c, &r);
        agreed = rc == 0; /* a failure in training is this rank's alone */
    }
    train_cleanup(&c, &r, rc);
    return dist_end(&c, rc, agreed);
}

/* ---- eval ---- */

/* The description saved in the model file at path into meta and md; 1 with a message if
 * the file cannot be read or is not a model saved by train. */
static int eval_read_desc(const char *path, char *meta, size_t size, model_desc *md)
{
    tg_status st = {0};
    if (tg_nn_read_meta(path, meta, size, &st)) {
        cli_err("%s\n", st.msg);
        return 1;
    }
    if (desc_parse(meta, md)) {
        cli_err("%s: not a model saved by 'tapegrad train' (description '%s')\n", path, meta);
        return 1;
    }
    return 0;
}

/* The test set's loss and metric, and a confusion matrix for classes, printed. */
static int eval_report(tg_module *net, const model_desc *md, tg_tape *tp, const run_data *d,
                       bool fashion)
{
    eval_result ev;
    int64_t *conf = NULL;
    if (d->classify)
        conf = calloc((size_t)d->test.n_classes * (size_t)d->test.n_classes, sizeof *conf);
    if (evaluate(net, md, tp, &d->test, d->classify, &ev, conf)) {
        free(conf);
        return 1;
    }
    if (d->classify) {
        printf("test loss %.4f, test accuracy %.2f%% on %lld examples\n", ev.loss, 100 * ev.metric,
               (long long)d->test.n);
        if (conf)
            tg_confusion_print(stdout, conf, d->test.n_classes,
                               fashion ? tg_fashion_mnist_classes : NULL);
    } else {
        printf("test MSE %.6g on %lld examples\n", ev.metric, (long long)d->test.n);
    }
    free(conf);
    return 0;
}

/* Loads the parameters of the model file at path into net, checks that they fit the data
 * (named data in messages) and reports the evaluation. */
static int eval_model(tg_module *net, tg_tape *tp, const char *path, const char *meta,
                      const model_desc *md, const run_data *d, const char *data, long long threads)
{
    tg_status st = {0};
    if (tg_nn_load(net, path, &st)) {
        cli_err("%s\n", st.msg);
        return 1;
    }
    long long in = md->sizes[0], outs = md->sizes[md->n_sizes > 0 ? md->n_sizes - 1 : 0];
    if (md->arch) { /* the spec's shapes, checked against the file by tg_nn_read_meta */
        tg_nn_spec_info info;
        in = 1;
        for (int i = 0; i < md->in_nd; i++) in *= md->in[i];
        if (tg_nn_spec_check(md->spec, md->in_nd, md->in, &info, &st) || info.out_ndim != 1) {
            cli_err("%s: the model's output is not [N, classes]\n", path);
            return 1;
        }
        outs = info.out_shape[0];
    }
    if (in != d->test.d) {
        cli_err("--data %s: %s expects %lld features, the data has %lld\n", data, path, in,
                (long long)d->test.d);
        return 2;
    }
    tg_set_num_threads((int)threads);
    printf("model: %s\n", meta);
    if (d->classify && outs < d->test.n_classes) {
        cli_err("--data %s: %s has %lld outputs, the data has %d classes\n", data, path, outs,
                d->test.n_classes);
        return 2;
    }
    return eval_report(net, md, tp, d, strcmp(data, "fashion-mnist") == 0);
}

int cmd_eval(int argc, char **argv)
{
    cli_opt o[] = {
        {"model", false, NULL, "a model saved by 'tapegrad train --save'", NULL},
        {"data", false, "fashion-mnist", "fashion-mnist, mnist:DIR or a CSV path", NULL},
        {"label-col", false, "-1", "CSV: label column", NULL},
        {"regression", true, NULL, "CSV: real-valued targets", NULL},
        {"test-fraction", false, "0.2", "CSV: share of rows held out (same seed as training)",
         NULL},
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
    const char *path = cli_str(o, n, "model"), *data = cli_str(o, n, "data");
    char meta[DESC_SIZE];
    model_desc md;
    if (eval_read_desc(path, meta, sizeof meta, &md)) return 1;
    run_data d;
    int rc = load_data(data, md.dtype, o, n, (uint64_t)seed, &d);
    if (rc) return rc;
    tg_module *net = build_model(&md);
    tg_tape *tp = tg_tape_new();
    rc = net && tp ? eval_model(net, tp, path, meta, &md, &d, data, threads) : 1;
    tg_tape_free(tp);
    tg_nn_free(net);
    tg_dataset_free(&d.train);
    tg_dataset_free(&d.test);
    return rc;
}
