/* cli/check.c: `tapegrad gradcheck` (every op's self-check cases and whole models) and
 * `tapegrad graph` (the DOT of a model's tape). */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* ---- whole-model gradient check ----
 * The model's parameters are the inputs: tg_gradcheck hands the function f64 copies, which
 * it binds into the module before the forward. */
typedef struct model_case {
    tg_module *net;
    tg_tensor *x, *y;
    bool classify;
    int n_params;
} model_case;

static tg_tensor *model_loss(tg_tape *tp, tg_tensor *const *in, void *ctx)
{
    model_case *c = ctx;
    if (tg_nn_bind_params(c->net, in, c->n_params)) return NULL;
    tg_tensor *out = tg_nn_forward(c->net, tp, c->x);
    return c->classify ? tg_cross_entropy(tp, out, c->y) : tg_mse_loss(tp, out, c->y);
}

/* A small MLP of the given activation and loss on random data, checked over every
 * parameter. Returns 0 when the check ran. */
static int check_model(const char *act, bool batchnorm, bool classify, double dropout, int order,
                       tg_gradcheck_result *res)
{
    int64_t sizes[4] = {5, 4, 3, classify ? 3 : 2};
    tg_status st = {0};
    model_case c = {0};
    c.classify = classify;
    c.net = tg_nn_mlp(4, sizes, act, dropout, batchnorm, TG_F64, &st);
    if (!c.net) {
        snprintf(res->msg, sizeof res->msg, "%s", st.msg);
        return -1;
    }
    tg_rng rng;
    tg_rng_seed(&rng, 7);
    tg_nn_init(c.net, TG_INIT_XAVIER_UNIFORM, 0, &rng);
    tg_tensor *params[64];
    c.n_params = tg_nn_params(c.net, params, 64);
    for (int i = 0; i < c.n_params; i++) /* biases and β away from 0: kinks stay rare */
        if (tg_tensor_ndim(params[i]) == 1) tg_tensor_rand_uniform(params[i], -0.5, 0.5, &rng);
    int64_t xs[2] = {6, 5}, ys[2] = {6, sizes[3]};
    c.x = tg_tensor_new(TG_F64, 2, xs);
    c.y = classify ? tg_tensor_new(TG_F64, 1, xs) : tg_tensor_new(TG_F64, 2, ys);
    tg_tensor_rand_normal(c.x, 0, 1, &rng);
    if (classify)
        for (int i = 0; i < 6; i++) tg_set(c.y, i, (double)(i % 3));
    else tg_tensor_rand_normal(c.y, 0, 1, &rng);
    tg_nn_set_training(c.net, true);
    tg_gradcheck_opts go = {.seed = 3};
    int rc = order == 2 ? tg_gradgradcheck(model_loss, c.n_params, params, &c, &go, res)
                        : tg_gradcheck(model_loss, c.n_params, params, &c, &go, res);
    tg_nn_bind_params(c.net, params, c.n_params); /* the module's own tensors again */
    tg_tensor_free(c.x);
    tg_tensor_free(c.y);
    tg_nn_free(c.net);
    return rc;
}

int cmd_gradcheck(int argc, char **argv)
{
    cli_opt o[] = {
        {"op", false, NULL, "only the cases of this op", NULL},
        {"order", false, "1", "1: gradients; 2: second derivatives (tg_gradgradcheck)", NULL},
        {"tol", false, "1e-6", "largest relative error that passes", NULL},
        {"verbose", true, NULL, "print the passing cases too", NULL},
        {"help", true, NULL, "this help", NULL},
    };
    int n = (int)(sizeof o / sizeof o[0]);
    if (cli_parse(argc, argv, o, n, NULL, 0, NULL)) return 2;
    if (cli_flag(o, n, "help")) {
        printf("usage: tapegrad gradcheck [options]\n"
               "Checks every op's self-check cases (f64 gradients against 4-point central\n"
               "differences, f32 against f64) and whole MLPs, and prints a table. With\n"
               "--order 2, the second derivatives instead: every entry of the Hessian\n"
               "against central differences of the gradient, and the gradient the recording\n"
               "sweep builds against tg_backward's (column 'rec err', 1e-10 passes).\n"
               "Exits 1 if a check fails.\n");
        cli_usage_opts(stdout, o, n);
        return 0;
    }
    double tol = 1e-6;
    long long order = 1;
    if (cli_double(o, n, "tol", 0, 1, &tol) || cli_int(o, n, "order", 1, 2, &order)) return 2;
    const char *only = cli_str(o, n, "op");
    bool verbose = cli_flag(o, n, "verbose") || only;
    if (only) {
        bool known = false;
        for (int i = 0; i < tg_op_count(); i++) known |= strcmp(tg_op_name(i), only) == 0;
        if (!known) {
            fprintf(stderr, "tapegrad: --op %s: no such op\n", only);
            return 2;
        }
    }
    printf("%-22s %-44s %8s %10s %10s %10s  %s\n", "op", "case", "checked", "max abs", "max rel",
           order == 2 ? "rec err" : "f32 err", "result");
    int failed = 0, ran = 0;
    const char *prev = "";
    int op_cases = 0, op_failed = 0;
    double op_worst = 0;
    for (int i = 0, nc = tg_selfcheck_count(); i <= nc; i++) {
        const char *op = i < nc ? tg_selfcheck_op(i, NULL) : "";
        if (!verbose && strcmp(op, prev) != 0 && op_cases) { /* one line per op */
            printf("%-22s %-44s %8s %10s %10.2e %10s  %s\n", prev, "(all cases)", "", "", op_worst,
                   "", op_failed ? "FAIL" : "ok");
            op_cases = op_failed = 0, op_worst = 0;
        }
        if (i == nc) break;
        prev = op;
        if (only && strcmp(op, only) != 0) continue;
        tg_selfcheck_result r;
        int rc = tg_selfcheck_run(i, &r);
        const tg_gradcheck_result *g = order == 2 ? &r.grad2 : &r.grad;
        double other = order == 2 ? r.grad2.first_order_err : r.f32_err;
        bool ok = !rc && r.grad.max_rel_err <= tol && r.f32_err <= 1e-4 &&
                  (order == 1 || (r.grad2.max_rel_err <= tol && other <= 1e-10));
        failed += !ok, ran++;
        op_cases++, op_failed += !ok;
        if (g->max_rel_err > op_worst) op_worst = g->max_rel_err;
        if (verbose || !ok)
            printf("%-22s %-44.44s %8lld %10.2e %10.2e %10.2e  %s%s%s\n", r.op, r.what,
                   (long long)g->n_checked, g->max_abs_err, g->max_rel_err, other,
                   ok ? "ok" : "FAIL", rc ? ": " : "", rc ? r.grad.msg : "");
    }
    if (!only) {
        static const struct {
            const char *act;
            bool bn, classify;
            double dropout;
        } models[] = {{"tanh", false, true, 0},      {"sigmoid", false, false, 0},
                      {"relu", false, true, 0},      {"elu", true, true, 0},
                      {"softplus", false, false, 0}, {"leaky_relu", false, true, 0.3}};
        printf("\nwhole models: MLP 5-4-3-k on 6 random examples, every parameter checked%s\n",
               order == 2 ? " (every entry of the Hessian)" : "");
        for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) {
            char what[96];
            snprintf(what, sizeof what, "%s%s%s, %s", models[i].act,
                     models[i].bn ? " + batchnorm" : "", models[i].dropout > 0 ? " + dropout" : "",
                     models[i].classify ? "cross-entropy" : "mse");
            tg_gradcheck_result r;
            int rc = check_model(models[i].act, models[i].bn, models[i].classify, models[i].dropout,
                                 (int)order, &r);
            bool ok = !rc && r.max_rel_err <= tol && (order == 1 || r.first_order_err <= 1e-10);
            failed += !ok, ran++;
            printf("%-22s %-44s %8lld %10.2e %10.2e %10s  %s%s%s\n", "mlp", what,
                   (long long)r.n_checked, r.max_abs_err, r.max_rel_err, "", ok ? "ok" : "FAIL",
                   rc ? ": " : "", rc ? r.msg : "");
        }
    }
    printf("\n%d checks, %d failed (tolerance %g)\n", ran, failed, tol);
    return failed ? 1 : 0;
}

/* ---- graph ---- */

int cmd_graph(int argc, char **argv)
{
    cli_opt o[] = {
        {"layers", false, "784,256,128,10", "MLP layer sizes (each <= 100000, 50M weights in all)",
         NULL},
        {"arch", false, NULL, "the network as a spec instead (as for train; docs/cli.md)", NULL},
        {"input-shape", false, NULL,
         "--arch: one example's shape, C,H,W or a width (default 1,28,28 for a spec starting "
         "with a conv or pool, else 784)",
         NULL},
        {"act", false, "relu", "hidden activation: relu tanh sigmoid leaky_relu elu softplus",
         NULL},
        {"dropout", false, "0", "dropout after each hidden activation", NULL},
        {"batchnorm", true, NULL, "batch normalisation after each hidden linear layer", NULL},
        {"batch", false, "32", "rows of the random input batch", NULL},
        {"out", false, "tapegrad-graph.dot", "DOT file to write (an SVG beside it with Graphviz)",
         NULL},
        {"help", true, NULL, "this help", NULL},
    };
    int n = (int)(sizeof o / sizeof o[0]);
    if (cli_parse(argc, argv, o, n, NULL, 0, NULL)) return 2;
    if (cli_flag(o, n, "help")) {
        printf("usage: tapegrad graph [options]\n"
               "Records one training step of an MLP (forward, cross-entropy, backward) and writes\n"
               "its tape as Graphviz DOT; nodes a gradient flowed through are bold.\n");
        cli_usage_opts(stdout, o, n);
        return 0;
    }
    long long sizes_ll[32] = {0}, batch = 32;
    int ns;
    double dropout = 0;
    const char *act = NULL;
    /* --arch: the spec and one example's shape; the input batch is [batch, features] */
    char spec[TG_NN_SPEC_MAX_LEN + 1];
    int in_nd = 0;
    int64_t in[3] = {0};
    if (cli_given(o, n, "arch")) {
        if (cli_arch_alone(o, n)) return 2;
        tg_nn_spec_info info;
        if (cli_arch(cli_str(o, n, "arch"), spec, &info) ||
            cli_int(o, n, "batch", 1, 1 << 20, &batch))
            return 2;
        const char *shape = cli_str(o, n, "input-shape");
        int64_t features = 784; /* Fashion-MNIST's width: [1,28,28] for images */
        if (shape) {            /* its own element count is the width */
            long long v[4];
            int k = 0;
            features = 1;
            if (!cli_int_list(shape, v, 4, &k))
                for (int i = 0; i < k; i++)
                    features = features > (1LL << 40) ? features : features * v[i];
        }
        if (cli_arch_input(spec, shape, true, features, 0, 1, &in_nd, in, &info)) return 2;
        ns = 2, sizes_ll[0] = features, sizes_ll[1] = info.out_shape[0];
    } else if (cli_given(o, n, "input-shape")) {
        fprintf(stderr, "tapegrad: --input-shape goes with --arch\n");
        return 2;
    } else if (cli_layers(o, n, "layers", sizes_ll, 32, &ns) || cli_act(o, n, "act", &act) ||
               cli_int(o, n, "batch", 1, 1 << 20, &batch) ||
               cli_double(o, n, "dropout", 0, 0.99, &dropout))
        return 2;
    if (batch * sizes_ll[0] > CLI_MAX_WEIGHTS) { /* the random input batch */
        fprintf(stderr,
                "tapegrad: --batch %lld: %lld inputs of %lld features, more than %lld "
                "numbers\n",
                batch, batch, sizes_ll[0], CLI_MAX_WEIGHTS);
        return 2;
    }
    int64_t sizes[32] = {0};
    for (int i = 0; i < ns; i++) sizes[i] = sizes_ll[i];
    tg_status st = {0};
    tg_module *net =
        in_nd ? tg_nn_from_spec(spec, in_nd, in, TG_F32, &st)
              : tg_nn_mlp(ns, sizes, act, dropout, cli_flag(o, n, "batchnorm"), TG_F32, &st);
    if (!net) { /* out of memory: the options were checked */
        fprintf(stderr, "tapegrad: %s\n", st.msg);
        return 1;
    }
    int64_t xs[2] = {batch, sizes[0]};
    tg_tensor *x = tg_tensor_new(TG_F32, 2, xs), *y = tg_tensor_new(TG_F32, 1, xs);
    tg_rng rng;
    tg_rng_seed(&rng, 1);
    tg_tensor_rand_uniform(x, 0, 1, &rng);
    for (int64_t i = 0; i < batch; i++)
        tg_set(y, i, (double)tg_rng_below(&rng, (uint64_t)sizes[ns - 1]));
    tg_tape *tp = tg_tape_new();
    int rc = 1;
    tg_nn_set_training(net, true);
    tg_tensor *xin = x;
    if (in_nd == 3) {
        int64_t s4[4] = {batch, in[0], in[1], in[2]};
        xin = tg_reshape(tp, x, 4, s4);
    }
    tg_tensor *loss = tg_cross_entropy(tp, tg_nn_forward(net, tp, xin), y);
    const char *out = cli_str(o, n, "out");
    if (!loss || tg_backward(tp, loss)) {
        fprintf(stderr, "tapegrad: %s\n", tg_tape_error(tp));
    } else if (tg_export_dot(tp, out)) {
        fprintf(stderr, "tapegrad: cannot write %s\n", out);
    } else {
        printf("%lld nodes: %s\n", (long long)tg_tape_n_nodes(tp), out);
        for (const tg_node *nd = tg_tape_first(tp); nd; nd = tg_node_next(nd)) {
            char s[64];
            printf("  %-14s -> %-12s%s\n", tg_node_op(nd),
                   tg_shape_str(tg_node_output(nd), s, sizeof s),
                   tg_node_has_grad(nd) ? "  (gradient)" : "");
        }
        rc = 0;
        if (cli_have_program("dot")) {
            char svg[1024], cmd[2200];
            size_t len = strlen(out);
            snprintf(svg, sizeof svg, "%.*s.svg",
                     (int)(len > 4 && !strcmp(out + len - 4, ".dot") ? len - 4 : len), out);
            snprintf(cmd, sizeof cmd, "dot -Tsvg '%s' -o '%s'", out, svg);
            if (!strchr(out, '\'') && system(cmd) == 0) printf("svg: %s\n", svg);
        } else {
            printf("note: Graphviz is not installed, so no SVG (apt-get install graphviz)\n");
        }
    }
    tg_tape_free(tp);
    tg_tensor_free(x);
    tg_tensor_free(y);
    tg_nn_free(net);
    return rc;
}
