/* examples/obd.c: Optimal Brain Damage on a trained MLP. The data have two informative
 * features (a point inside or outside a circle) and two features of pure noise; a 4-8-1
 * tanh network is trained, then repeatedly: the Hessian diagonal of the training loss
 * (tg_hessian_diag), saliencies S = w² H, the 10% least salient weights pruned, the rest
 * retrained with the pruned ones held at 0 — until validation accuracy falls more than 2
 * points below the unpruned network's, when the last prune is undone. Feature saliencies
 * then show which inputs matter. */
#include <math.h>

#include "demo.h"

#define N 400

typedef struct task {
    tg_module *net;
    tg_tensor *x, *y;
    tg_tape *tp;
} task;

static void make(tg_tensor *x, tg_tensor *y, tg_rng *r)
{
    for (int i = 0; i < N; i++) {
        double a = 2 * tg_rng_uniform(r) - 1, b = 2 * tg_rng_uniform(r) - 1;
        tg_set(x, 4 * i, a), tg_set(x, 4 * i + 1, tg_rng_normal(r));
        tg_set(x, 4 * i + 2, b), tg_set(x, 4 * i + 3, tg_rng_normal(r));
        tg_set(y, i, a * a + b * b < 0.5);
    }
}

static int loss_fn(void *ctx, double *loss)
{
    task *t = ctx;
    tg_tape_reset(t->tp);
    tg_tensor *l = tg_bce_with_logits_loss(t->tp, tg_nn_forward(t->net, t->tp, t->x), t->y);
    if (!l || tg_backward(t->tp, l)) return TG_EARG;
    *loss = tg_get(l, 0);
    return TG_OK;
}

static double accuracy(task *t, tg_tensor *x, tg_tensor *y)
{
    tg_tape_reset(t->tp);
    tg_tensor *z = tg_nn_forward(t->net, t->tp, x);
    int right = 0;
    for (int i = 0; z && i < N; i++) right += (tg_get(z, i) > 0) == (tg_get(y, i) > 0.5);
    return (double)right / N;
}

/* Full-batch Adam steps, re-zeroing the pruned weights after each. */
static double train(task *t, tg_tensor **p, int np, tg_pruner *pr, int steps)
{
    tg_optim_opts o;
    tg_optim_defaults("adam", &o);
    o.lr = 0.01;
    tg_status st;
    tg_optim *opt = tg_optim_new("adam", np, p, &o, &st);
    double loss = 0;
    for (int s = 0; s < steps; s++) {
        tg_optim_step_closure(opt, loss_fn, t, &loss);
        if (pr) tg_pruner_apply(pr);
    }
    tg_optim_free(opt);
    return loss;
}

int demo_obd(const char *outdir)
{
    (void)outdir;
    int64_t xs[2] = {N, 4}, ys[2] = {N, 1}, sizes[3] = {4, 8, 1};
    tg_tensor *x = tg_tensor_new(TG_F64, 2, xs), *y = tg_tensor_new(TG_F64, 2, ys);
    tg_tensor *vx = tg_tensor_new(TG_F64, 2, xs), *vy = tg_tensor_new(TG_F64, 2, ys);
    tg_rng r;
    tg_rng_seed(&r, 21);
    make(x, y, &r), make(vx, vy, &r);
    tg_status st;
    task t = {tg_nn_mlp(3, sizes, "tanh", 0, false, TG_F64, &st), x, y, tg_tape_new()};
    tg_nn_init(t.net, TG_INIT_XAVIER_NORMAL, 0, &r);
    tg_tensor *p[4], *h[4], *s[4];
    int np = tg_nn_params(t.net, p, 4);
    for (int i = 0; i < np; i++) {
        int64_t shape[2] = {tg_tensor_dim(p[i], 0),
                            tg_tensor_ndim(p[i]) > 1 ? tg_tensor_dim(p[i], 1) : 1};
        h[i] = tg_tensor_new(TG_F64, tg_tensor_ndim(p[i]), shape);
        s[i] = tg_tensor_new(TG_F64, tg_tensor_ndim(p[i]), shape);
    }
    double loss = train(&t, p, np, NULL, 2000), base = accuracy(&t, vx, vy);
    tg_pruner *pr = tg_pruner_new(np, p, &st);
    int64_t total = tg_pruner_alive(pr);
    printf("4-8-1 tanh network (%lld weights), 2 informative + 2 noise features, %d points:\n",
           (long long)total, N);
    printf("  %8s %12s %14s\n", "weights", "train loss", "val accuracy");
    printf("  %8lld %12.4f %13.1f%%\n", (long long)total, loss, 100 * base);
    double acc = base;
    while (tg_pruner_alive(pr) > 2) {
        tg_hessian_diag(loss_fn, &t, np, p, h);
        tg_saliency(np, p, h, s);
        int64_t k = tg_pruner_alive(pr) / 10 > 0 ? tg_pruner_alive(pr) / 10 : 1;
        tg_pruner_prune(pr, s, k);
        loss = train(&t, p, np, pr, 500);
        acc = accuracy(&t, vx, vy);
        printf("  %8lld %12.4f %13.1f%%\n", (long long)tg_pruner_alive(pr), loss, 100 * acc);
        if (acc < base - 0.02) {
            tg_pruner_undo(pr);
            train(&t, p, np, pr, 500); /* recover; only the accuracy is reported */
            acc = accuracy(&t, vx, vy);
            printf("  validation fell more than 2 points: the last prune is undone; %lld weights, "
                   "%.1f%%\n",
                   (long long)tg_pruner_alive(pr), 100 * acc);
            break;
        }
    }
    /* Feature saliency on the final network. */
    double feat[4];
    tg_hessian_diag(loss_fn, &t, np, p, h);
    tg_saliency(np, p, h, s);
    tg_feature_saliency(s[0], feat);
    const char *names[4] = {"x1 (circle)", "noise 1", "x2 (circle)", "noise 2"};
    printf("feature saliency (sum over each input's outgoing weights):\n");
    for (int i = 0; i < 4; i++) printf("  %-12s %12.5g\n", names[i], feat[i]);
    bool ok = tg_pruner_alive(pr) <= total / 2 && acc >= base - 0.02 &&
              fmin(feat[0], feat[2]) > fmax(feat[1], feat[3]);
    printf("%s\n",
           ok ? "half the weights or more pruned, accuracy kept, the noise features are the "
                "least salient"
              : "OBD did NOT show what it should");
    tg_pruner_free(pr);
    for (int i = 0; i < np; i++) tg_tensor_free(h[i]), tg_tensor_free(s[i]);
    tg_nn_free(t.net), tg_tape_free(t.tp);
    tg_tensor_free(x), tg_tensor_free(y), tg_tensor_free(vx), tg_tensor_free(vy);
    return !ok;
}

#ifdef TG_EXAMPLE_MAIN
DEMO_MAIN(obd)
#endif
