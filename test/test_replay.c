/* test/test_replay.c: tg_tape_replay. For every op self-check case (ops/cases_*.c), in f64
 * and f32: record at one set of values, write new values into the same leaves, replay and
 * sweep, and compare every node output, the gradients and the leaves (running statistics)
 * bit for bit with a fresh recording at the new values. Then dropout's masks across
 * replays, an MLP (batch norm, dropout, Adam) trained 20 steps by replay against 20
 * recordings, tg_gradients after a replay, profiling, no allocation, and the refusals. */
#include <stdlib.h>

#include "../ops/cases.h"
#include "check.h"
#include "tapegrad.h"

/* ---- the op cases ---- */
typedef struct fam {
    const tg_op_case *cases;
    const int *n;
} fam;
#define X(f) {tg_cases_##f, &tg_n_cases_##f},
static const fam fams[] = {TG_CASE_FAMILIES(X)};
#undef X

static const tg_op_case *case_at(int i)
{
    for (size_t f = 0; f < sizeof fams / sizeof fams[0]; f++) {
        if (i < *fams[f].n) return &fams[f].cases[i];
        i -= *fams[f].n;
    }
    return NULL;
}

/* Case c's inputs in dtype dt from a generator seeded seed, as tg_selfcheck_run makes them
 * (uniform in [lo, hi), then the case's init, in f64). */
static bool make_inputs(const tg_op_case *c, uint64_t seed, tg_dtype dt, tg_tensor **in)
{
    tg_rng rng;
    tg_rng_seed(&rng, seed);
    double lo = c->lo, hi = c->hi;
    if (lo == 0 && hi == 0) lo = -1, hi = 1;
    tg_tensor *f64[TG_CASE_MAX_IN] = {0};
    bool ok = true;
    for (int i = 0; i < c->n_in; i++) {
        f64[i] = tg_tensor_new(TG_F64, c->ndim[i], c->shape[i]);
        ok = ok && f64[i];
        if (f64[i]) tg_tensor_rand_uniform(f64[i], lo, hi, &rng);
    }
    if (ok && c->init) c->init(f64, c->arg, &rng);
    for (int i = 0; i < c->n_in; i++) {
        in[i] = ok ? tg_tensor_new(dt, c->ndim[i], c->shape[i]) : NULL;
        ok = ok && in[i];
        if (in[i]) {
            tg_tensor_copy(in[i], f64[i]);
            if (!(c->no_grad & (1u << i))) tg_set_requires_grad(in[i], true);
        }
    }
    for (int i = 0; i < c->n_in; i++) tg_tensor_free(f64[i]);
    return ok;
}

static bool same_bits(const tg_tensor *a, const tg_tensor *b)
{
    if (!a || !b) return a == b;
    if (tg_tensor_dtype(a) != tg_tensor_dtype(b) || tg_tensor_numel(a) != tg_tensor_numel(b))
        return false;
    size_t bytes = (size_t)tg_tensor_numel(a) * tg_dtype_size(tg_tensor_dtype(a));
    return bytes == 0 || memcmp(tg_data_const(a), tg_data_const(b), bytes) == 0;
}

static void zero_grads(int n, tg_tensor **in)
{
    for (int i = 0; i < n; i++)
        if (tg_requires_grad(in[i])) tg_zero_grad(in[i]);
}

/* Replayed and re-recorded: 0 if every output, gradient and leaf has the same bits. */
static int n_moved; /* cases whose replayed output differs from the first recording's */

static int compare_case(int idx, tg_dtype dt, char *why, size_t size)
{
    const tg_op_case *c = case_at(idx);
    tg_tensor *a[TG_CASE_MAX_IN] = {0}, *b[TG_CASE_MAX_IN] = {0}, *fresh[TG_CASE_MAX_IN] = {0};
    tg_tape *tp = tg_tape_new(), *t2 = tg_tape_new();
    int bad = 1;
    snprintf(why, size, "out of memory");
    if (!tp || !t2 || !make_inputs(c, 1000 + (uint64_t)idx, dt, a) ||
        !make_inputs(c, 5000 + (uint64_t)idx, dt, b) ||
        !make_inputs(c, 5000 + (uint64_t)idx, dt, fresh))
        goto done;
    tp->poison_grads = t2->poison_grads = true;
    /* record at a, and sweep once, as a training step would */
    tg_tape_seed(tp, 11);
    tg_tensor *y = c->fn(tp, a, (void *)c->arg);
    zero_grads(c->n_in, a);
    if (!y || tg_backward(tp, y)) {
        snprintf(why, size, "recording failed: %s", tg_tape_error(tp));
        goto done;
    }
    double y_first = tg_get(y, 0);
    /* the new values into the same leaves, then replay and sweep */
    for (int i = 0; i < c->n_in; i++) tg_tensor_copy(a[i], b[i]);
    tg_tape_seed(tp, 77);
    zero_grads(c->n_in, a);
    int rc = tg_tape_replay(tp);
    if (rc || tg_backward(tp, y)) {
        snprintf(why, size, "replay: rc %d: %s", rc, tg_tape_error(tp));
        goto done;
    }
    /* a fresh recording at the new values, with the same seed */
    tg_tape_seed(t2, 77);
    zero_grads(c->n_in, fresh);
    tg_tensor *y2 = c->fn(t2, fresh, (void *)c->arg);
    if (!y2 || tg_backward(t2, y2)) {
        snprintf(why, size, "fresh recording failed: %s", tg_tape_error(t2));
        goto done;
    }
    const tg_node *n1 = tg_tape_first(tp), *n2 = tg_tape_first(t2);
    for (int k = 0; n1 && n2; n1 = tg_node_next(n1), n2 = tg_node_next(n2), k++) {
        if (strcmp(tg_node_op(n1), tg_node_op(n2)) != 0 ||
            !same_bits(tg_node_output(n1), tg_node_output(n2))) {
            snprintf(why, size, "node %d (%s) output differs", k, tg_node_op(n1));
            goto done;
        }
    }
    if (n1 || n2 || tg_tape_n_nodes(tp) != tg_tape_n_nodes(t2)) {
        snprintf(why, size, "node counts differ");
        goto done;
    }
    if (!same_bits(y, y2)) {
        snprintf(why, size, "outputs differ");
        goto done;
    }
    for (int i = 0; i < c->n_in; i++) {
        if (!same_bits(tg_grad(a[i]), tg_grad(fresh[i]))) {
            snprintf(why, size, "gradient of input %d differs", i);
            goto done;
        }
        if (!same_bits(a[i], fresh[i])) { /* running statistics, updated by both */
            snprintf(why, size, "input %d's values differ afterwards", i);
            goto done;
        }
    }
    n_moved += tg_get(y, 0) != y_first;
    bad = 0;
done:
    for (int i = 0; i < TG_CASE_MAX_IN; i++)
        tg_tensor_free(a[i]), tg_tensor_free(b[i]), tg_tensor_free(fresh[i]);
    tg_tape_free(tp), tg_tape_free(t2);
    return bad;
}

static void test_replay_every_case(void)
{
    int n = tg_selfcheck_count(), failed = 0;
    CHECK(n > 50);
    for (int i = 0; i < n; i++)
        for (int d = 0; d < 2; d++) {
            char why[300];
            if (compare_case(i, d ? TG_F32 : TG_F64, why, sizeof why)) {
                const char *what;
                const char *op = tg_selfcheck_op(i, &what);
                printf("  case %d %s (%s) %s: %s\n", i, op, what, d ? "f32" : "f64", why);
                failed++;
            }
        }
    CHECK(failed == 0);
    /* the new values changed the results: all but the few cases whose value does not depend
     * on the inputs (a softmax over one class, x - x, the max of values kept apart) */
    CHECK(n_moved >= 2 * n - 2 * n / 10);
}

/* ---- dropout: each replay draws a fresh mask, in the order recordings would ---- */
static tg_tensor *drop_loss(tg_tape *tp, tg_tensor *x)
{
    return tg_sum(tp, tg_dropout(tp, tg_dropout(tp, x, 0.5, true), 0.3, true), TG_ALL_AXES, false);
}

static void test_dropout_masks(void)
{
    int64_t s[1] = {64};
    tg_tensor *x = tg_tensor_new(TG_F32, 1, s);
    tg_tensor_fill(x, 1.0);
    tg_set_requires_grad(x, true);
    tg_tape *tp = tg_tape_new(), *t2 = tg_tape_new();
    tg_tape_seed(tp, 3), tg_tape_seed(t2, 3);
    tg_tensor *y = drop_loss(tp, x);
    tg_tensor *prev = tg_tensor_clone(tg_node_output(tg_node_next(tg_tape_first(tp))));
    int changed = 0;
    for (int step = 0; step < 4; step++) {
        if (step > 0) CHECK(tg_tape_replay(tp) == TG_OK);
        tg_tape_reset(t2);
        tg_tensor *y2 = drop_loss(t2, x);
        const tg_tensor *d1 = tg_node_output(tg_node_next(tg_tape_first(tp)));
        const tg_tensor *d2 = tg_node_output(tg_node_next(tg_tape_first(t2)));
        CHECK(same_bits(d1, d2) && same_bits(y, y2));
        changed += step > 0 && !same_bits(d1, prev);
        tg_tensor_copy(prev, d1);
        tg_zero_grad(x);
        CHECK(tg_backward(tp, y) == TG_OK);
        tg_tensor *g1 = tg_tensor_clone(tg_grad(x));
        tg_zero_grad(x);
        CHECK(tg_backward(t2, y2) == TG_OK);
        CHECK(same_bits(g1, tg_grad(x)));
        tg_tensor_free(g1);
    }
    CHECK(changed == 3); /* every replay drew a new mask */
    tg_tensor_free(prev), tg_tensor_free(x);
    tg_tape_free(tp), tg_tape_free(t2);
}

/* ---- an MLP trained 20 steps: replayed against recorded ---- */
#define MLP_STEPS 20
#define MLP_BATCH 16

typedef struct trainer {
    tg_module *net;
    tg_optim *opt;
    tg_tensor *params[16];
    int n_params;
    tg_tape *tp;
    tg_tensor *x, *labels, *loss;
} trainer;

static void trainer_new(trainer *t)
{
    const int64_t sizes[4] = {8, 12, 10, 3}, xs[2] = {MLP_BATCH, 8}, ls[1] = {MLP_BATCH};
    t->net = tg_nn_mlp(4, sizes, "tanh", 0.2, true, TG_F32, NULL);
    t->n_params = t->net ? tg_nn_params(t->net, t->params, 16) : 0;
    t->opt = t->net ? tg_optim_new("adam", t->n_params, t->params, NULL, NULL) : NULL;
    t->tp = tg_tape_new();
    tg_tape_seed(t->tp, 5);
    t->x = tg_tensor_new(TG_F32, 2, xs), t->labels = tg_tensor_new(TG_F32, 1, ls);
    t->loss = NULL;
}

static void trainer_free(trainer *t)
{
    tg_optim_free(t->opt), tg_nn_free(t->net), tg_tape_free(t->tp);
    tg_tensor_free(t->x), tg_tensor_free(t->labels);
}

/* batch k of a fixed random data set */
static void batch(int k, tg_tensor *x, tg_tensor *labels)
{
    tg_rng r;
    tg_rng_seed(&r, 100 + (uint64_t)(k % 4));
    tg_tensor_rand_uniform(x, -2, 2, &r);
    for (int64_t i = 0; i < MLP_BATCH; i++) tg_set(labels, i, (double)tg_rng_below(&r, 3));
}

/* One step; replay: re-run the tape recorded at step 0 instead of recording. */
static int train_step(trainer *t, int k, bool replay, double *loss)
{
    batch(k, t->x, t->labels);
    if (replay && t->loss) {
        if (tg_tape_replay(t->tp)) return -1;
    } else {
        tg_tape_reset(t->tp);
        t->loss = tg_cross_entropy(t->tp, tg_nn_forward(t->net, t->tp, t->x), t->labels);
        if (!t->loss) return -1;
    }
    tg_optim_zero_grad(t->opt);
    if (tg_backward(t->tp, t->loss) || tg_optim_step(t->opt)) return -1;
    *loss = tg_get(t->loss, 0);
    return 0;
}

static void test_mlp_replayed_as_recorded(void)
{
    trainer a, b;
    trainer_new(&a), trainer_new(&b);
    CHECK(a.opt && b.opt && a.n_params == b.n_params && a.n_params > 6);
    if (!a.opt || !b.opt) goto done;
    tg_tape_stats s0 = {0}, s1;
    int differ = 0;
    for (int k = 0; k < MLP_STEPS; k++) {
        double la = 0, lb = 0;
        CHECK(train_step(&a, k, false, &la) == 0);
        CHECK(train_step(&b, k, true, &lb) == 0);
        /* NOLINTNEXTLINE(bugprone-suspicious-memory-comparison): the bits, on purpose */
        differ += memcmp(&la, &lb, sizeof la) != 0;
        if (k == 1) tg_tape_get_stats(b.tp, &s0);
    }
    CHECK(differ == 0);
    for (int i = 0; i < a.n_params; i++) CHECK(same_bits(a.params[i], b.params[i]));
    /* the replays allocated nothing, and the loss moved */
    tg_tape_get_stats(b.tp, &s1);
    CHECK(s1.arena_used == s0.arena_used && s1.n_allocs == s0.n_allocs);
    CHECK(s1.n_nodes == s0.n_nodes && s1.n_nodes > 8);
    /* the running statistics (not parameters) too: eval gives the same bits */
    tg_nn_set_training(a.net, false), tg_nn_set_training(b.net, false);
    tg_tape_reset(a.tp), tg_tape_reset(b.tp);
    tg_tensor *ya = tg_nn_forward(a.net, a.tp, a.x), *yb = tg_nn_forward(b.net, b.tp, a.x);
    CHECK(ya && yb && same_bits(ya, yb));
done:
    trainer_free(&a), trainer_free(&b);
}

/* ---- tg_gradients after a replay: as after a recording at the new values ---- */
static tg_tensor *smooth(tg_tape *tp, tg_tensor *x, tg_tensor *w)
{
    return tg_sum(tp, tg_tanh(tp, tg_mul(tp, tg_exp(tp, x), w)), TG_ALL_AXES, false);
}

static void test_gradients_after_replay(void)
{
    int64_t s[1] = {5};
    tg_tensor *x = tg_tensor_from(TG_F64, 1, s, (double[]){0.1, -0.2, 0.3, 0.4, -0.5});
    tg_tensor *w = tg_tensor_from(TG_F64, 1, s, (double[]){1, 2, -1, 0.5, 0.25});
    tg_set_requires_grad(x, true), tg_set_requires_grad(w, true);
    tg_tape *tp = tg_tape_new(), *t2 = tg_tape_new();
    tg_tensor *y = smooth(tp, x, w);
    tg_set(x, 2, 0.9), tg_set(w, 0, -0.75);
    CHECK(tg_tape_replay(tp) == TG_OK);
    tg_tensor *xs[2] = {x, w}, *g1[2], *g2[2];
    CHECK(tg_gradients(tp, y, NULL, 2, xs, g1, 0) == TG_OK);
    tg_tensor *y2 = smooth(t2, x, w);
    CHECK(same_bits(y, y2));
    CHECK(tg_gradients(t2, y2, NULL, 2, xs, g2, 0) == TG_OK);
    CHECK(same_bits(g1[0], g2[0]) && same_bits(g1[1], g2[1]));
    /* recorded gradients are built on constants (the seed): a replay refuses them */
    CHECK(tg_gradients(tp, y, NULL, 2, xs, g1, TG_GRAD_RECORD) == TG_OK);
    CHECK(tg_tape_replay(tp) == TG_ESTATE);
    CHECK_STR_HAS(tg_tape_error(tp), "tg_tape_replay: input");
    CHECK_STR_HAS(tg_tape_error(tp), "recorded no node");
    tg_tensor_free(x), tg_tensor_free(w);
    tg_tape_free(tp), tg_tape_free(t2);
}

/* ---- profiling counts the replayed kernels ---- */
static void test_replay_profiled(void)
{
    int64_t s[1] = {3};
    tg_tensor *x = tg_tensor_from(TG_F32, 1, s, (float[]){1, 2, 3});
    tg_set_requires_grad(x, true);
    tg_tape *tp = tg_tape_new();
    CHECK(tg_tape_set_profiling(tp, true) == TG_OK);
    (void)tg_sum(tp, tg_tanh(tp, x), TG_ALL_AXES, false);
    CHECK(tg_tape_replay(tp) == TG_OK && tg_tape_replay(tp) == TG_OK);
    tg_profile_row rows[TG_OP_COUNT];
    int n = tg_tape_profile(tp, rows, TG_OP_COUNT, NULL), found = 0;
    for (int i = 0; i < n; i++)
        if (strcmp(rows[i].op, "tanh") == 0 || strcmp(rows[i].op, "sum") == 0) {
            found++;
            CHECK(rows[i].forward_calls == 3);
        }
    CHECK(found == 2);
    tg_tensor_free(x);
    tg_tape_free(tp);
}

/* ---- refusals: TG_ESTATE (TG_EARG for NULL), and nothing changes ---- */
static void test_replay_refused(void)
{
    CHECK(tg_tape_replay(NULL) == TG_EARG);
    int64_t s[1] = {4}, one[1] = {1};
    tg_tensor *x = tg_tensor_from(TG_F64, 1, s, (double[]){1, 2, 3, 4});
    tg_tensor *w = tg_tensor_from(TG_F64, 1, s, (double[]){0.5, -1, 2, 0.25});
    tg_tensor *lab = tg_tensor_from(TG_F64, 1, one, (double[]){1});
    tg_set_requires_grad(w, true);
    tg_tape *tp = tg_tape_new();

    /* an empty tape; one where nothing required a gradient is empty too */
    CHECK(tg_tape_replay(tp) == TG_ESTATE);
    CHECK_STR_HAS(tg_tape_error(tp), "tg_tape_replay: no node recorded since the last reset");
    tg_tape_reset(tp);
    CHECK(tg_mul(tp, x, x) != NULL);
    CHECK(tg_tape_replay(tp) == TG_ESTATE);
    CHECK_STR_HAS(tg_tape_error(tp), "tg_tape_replay: no node recorded");

    /* a tape holding an error: refused, the first message stays */
    tg_tape_reset(tp);
    CHECK(tg_mul(tp, x, w) != NULL);
    CHECK(tg_matmul(tp, x, w) == NULL);
    char msg[256];
    snprintf(msg, sizeof msg, "%s", tg_tape_error(tp));
    CHECK(tg_tape_replay(tp) == TG_ESTATE);
    CHECK(strcmp(tg_tape_error(tp), msg) == 0);

    /* an input computed without a node: its value would be stale */
    tg_tape_reset(tp);
    tg_tensor *x2 = tg_mul_scalar(tp, x, 2); /* x needs no gradient: no node */
    tg_tensor *y = tg_mul(tp, tg_exp(tp, w), x2);
    CHECK(y && tg_tape_n_nodes(tp) == 2);
    tg_tensor *before = tg_tensor_clone(y);
    tg_set(w, 0, 3.0);
    CHECK(tg_tape_replay(tp) == TG_ESTATE);
    CHECK_STR_HAS(tg_tape_error(tp), "tg_tape_replay: input 1 of node 1 (mul) was computed by "
                                     "ops that recorded no node");
    CHECK(same_bits(y, before)); /* nothing ran */
    tg_tensor_free(before);

    /* a leaf freed and replaced since recording: simulated by giving the leaf another
     * serial, as a new leaf at the same address would have (the test cannot free it and
     * still read it) */
    tg_tape_reset(tp);
    y = tg_sum(tp, tg_mul(tp, w, x), TG_ALL_AXES, false);
    CHECK(y && tg_tape_replay(tp) == TG_OK);
    uint64_t serial = x->serial;
    x->serial = serial + 1000000;
    CHECK(tg_tape_replay(tp) == TG_ESTATE);
    CHECK_STR_HAS(tg_tape_error(tp), "tg_tape_replay: leaf 1 the nodes read was freed and "
                                     "replaced since recording (that memory now holds a leaf "
                                     "[4] f64)");
    x->serial = serial;
    /* a leaf's serial is its own */
    tg_tensor *c = tg_tensor_clone(x);
    CHECK(c && c->serial != x->serial);
    tg_tensor_free(c);

    /* a forward kernel refusing the new values: its error, and a replay after it refused */
    tg_tape_reset(tp);
    int64_t zs[2] = {1, 3};
    tg_tensor *z = tg_tensor_from(TG_F64, 2, zs, (double[]){0.1, 0.2, 0.3});
    tg_set_requires_grad(z, true);
    CHECK(tg_cross_entropy(tp, tg_tanh(tp, z), lab) != NULL);
    tg_set(lab, 0, 7);
    CHECK(tg_tape_replay(tp) == TG_EARG || tg_tape_errcode(tp) != TG_OK);
    CHECK_STR_HAS(tg_tape_error(tp), "tg_cross_entropy");
    CHECK(tg_tape_replay(tp) == TG_ESTATE);
    tg_tensor_free(z);

    /* batch_norm in eval: a negative running variance, refused by the replay as by a
     * recording, before it touches anything */
    tg_tape_reset(tp);
    int64_t bs[2] = {2, 2}, cs[1] = {2};
    tg_tensor *bx = tg_tensor_from(TG_F64, 2, bs, (double[]){1, 2, 3, 5});
    tg_tensor *g = tg_tensor_from(TG_F64, 1, cs, (double[]){1, 1});
    tg_tensor *bb = tg_tensor_from(TG_F64, 1, cs, (double[]){0, 0});
    tg_tensor *rm = tg_tensor_from(TG_F64, 1, cs, (double[]){0.5, 1});
    tg_tensor *rv = tg_tensor_from(TG_F64, 1, cs, (double[]){1, 2});
    tg_set_requires_grad(g, true);
    CHECK(tg_batch_norm(tp, bx, g, bb, rm, rv, 0.1, 1e-5, false) != NULL);
    tg_set(rv, 1, -0.5);
    CHECK(tg_tape_replay(tp) == TG_EARG);
    CHECK_STR_HAS(tg_tape_error(tp), "tg_batch_norm: running variance[1] = -0.5 is negative");
    tg_tensor_free(bx), tg_tensor_free(g), tg_tensor_free(bb), tg_tensor_free(rm),
        tg_tensor_free(rv);

    tg_tensor_free(x), tg_tensor_free(w), tg_tensor_free(lab);
    tg_tape_free(tp);
}

/* ---- the list of leaves a recording keeps: out of memory for it ---- */
typedef struct failing {
    int calls, fail_from; /* fail_from < 0: never */
} failing;
static void *failing_alloc(void *ctx, void *ptr, size_t size)
{
    failing *f = ctx;
    if (size == 0) {
        free(ptr);
        return NULL;
    }
    if (f->fail_from >= 0 && f->calls++ >= f->fail_from) return NULL;
    return realloc(ptr, size);
}

static void test_leaf_list_out_of_memory(void)
{
    enum { N = 100 };
    int64_t s[1] = {2};
    tg_tensor *w = tg_tensor_from(TG_F64, 1, s, (double[]){1, 2}), *x[N];
    tg_set_requires_grad(w, true);
    for (int i = 0; i < N; i++) x[i] = tg_tensor_from(TG_F64, 1, s, (double[]){i, -i});
    failing f = {0, -1};
    tg_tape *tp = tg_tape_new_with(failing_alloc, &f);
    /* every node reads two leaves: w (read again is noted again, as x[i] came between) */
    tg_tensor *acc = NULL;
    int i = 0, rc = TG_OK;
    for (; i < N && !rc; i++) {
        if (i == 40) f.fail_from = 0; /* past 64 references the list grows: fails */
        tg_tensor *t = tg_mul(tp, x[i], w);
        if (!t) rc = tg_tape_errcode(tp);
        else acc = acc ? tg_add(tp, acc, t) : t;
    }
    CHECK(rc == TG_ENOMEM && i < N);
    CHECK_STR_HAS(tg_tape_error(tp), "tg_mul: out of memory for the tape's leaf list");
    CHECK(tg_tape_n_nodes(tp) == 2 * (i - 1) - 1); /* the failing op recorded nothing */
    CHECK(tg_tape_replay(tp) == TG_ESTATE);
    f.fail_from = -1;
    tg_tape_reset(tp);
    acc = NULL;
    for (i = 0; i < N; i++) {
        tg_tensor *t = tg_mul(tp, x[i], w);
        acc = acc ? tg_add(tp, acc, t) : t;
    }
    tg_tensor *y = tg_sum(tp, acc, TG_ALL_AXES, false);
    CHECK(y && tg_tape_replay(tp) == TG_OK);
    tg_zero_grad(w);
    CHECK(tg_backward(tp, y) == TG_OK);
    CHECK(tg_get(tg_grad(w), 0) == 0.5 * N * (N - 1) &&
          tg_get(tg_grad(w), 1) == -0.5 * N * (N - 1));
    tg_tape_free(tp);
    for (i = 0; i < N; i++) tg_tensor_free(x[i]);
    tg_tensor_free(w);
}

static const check_case cases[] = {
    TEST(test_leaf_list_out_of_memory), TEST(test_replay_every_case),
    TEST(test_dropout_masks),           TEST(test_mlp_replayed_as_recorded),
    TEST(test_gradients_after_replay),  TEST(test_replay_profiled),
    TEST(test_replay_refused),
};
TEST_MAIN("test_replay", cases)
