/* test/test_grad_hook.c: the gradient-ready hook (tg_tape_on_grad_ready): every reached
 * leaf once, unreached leaves never, the gradient final when passed, the call as soon as
 * the last node reading the leaf has run, in sweep order; after a replay, across resets,
 * removed with NULL, for tg_backward_seed and a leaf loss; out of memory for its table. */
#include <stdlib.h>

#include "check.h"
#include "tapegrad.h"

#define MAX_CALLS 16

typedef struct calls {
    int n;
    tg_tensor *leaf[MAX_CALLS];
    double grad[MAX_CALLS][4]; /* the gradient's values when passed */
    int probes[MAX_CALLS];     /* probe backwards run before the call */
} calls;

static int probe_bwd_runs; /* backwards of the probe op run so far */

static void on_ready(tg_tensor *leaf, void *ctx)
{
    calls *c = ctx;
    if (c->n == MAX_CALLS) return;
    const tg_tensor *g = tg_grad(leaf);
    for (int64_t i = 0; i < 4; i++)
        c->grad[c->n][i] = g && i < tg_tensor_numel(g) ? tg_get(g, i) : (double)NAN;
    c->probes[c->n] = probe_bwd_runs;
    c->leaf[c->n++] = leaf;
}

/* probe: the identity, whose backward counts its runs */
static void probe_fwd(void *ctx, int n_in, const tg_tensor *const *in, tg_tensor *out)
{
    (void)ctx, (void)n_in;
    tg_tensor_copy(out, in[0]);
}
static void probe_bwd(void *ctx, int n_in, const tg_tensor *const *in, const tg_tensor *out,
                      const tg_tensor *dout, tg_tensor *const *din)
{
    (void)ctx, (void)n_in, (void)in, (void)out;
    probe_bwd_runs++;
    if (din[0])
        for (int64_t i = 0; i < tg_tensor_numel(dout); i++)
            tg_set(din[0], i, tg_get(din[0], i) + tg_get(dout, i));
}
static const tg_custom_op probe_op = {"probe", probe_fwd, probe_bwd, NULL};
static tg_tensor *probe(tg_tape *tp, tg_tensor *x)
{
    return tg_custom(tp, &probe_op, NULL, 1, &x, tg_tensor_ndim(x), tg_tensor_shape(x));
}

typedef struct net {
    tg_tensor *x, *a, *b, *c, *u, *d; /* x needs no gradient; u and d are never reached */
} net;

static tg_tensor *leaf3(double v0, bool grad)
{
    int64_t s[1] = {3};
    tg_tensor *t = tg_tensor_from(TG_F64, 1, s, (double[]){v0, v0 + 0.5, v0 - 0.25});
    if (t && grad) tg_set_requires_grad(t, true);
    return t;
}

static void net_new(net *m)
{
    m->x = leaf3(0.5, false), m->a = leaf3(1.5, true), m->b = leaf3(-0.75, true);
    m->c = leaf3(2.0, true), m->u = leaf3(0.25, true), m->d = leaf3(3.0, true);
}
static void net_free(net *m)
{
    tg_tensor_free(m->x), tg_tensor_free(m->a), tg_tensor_free(m->b);
    tg_tensor_free(m->c), tg_tensor_free(m->u), tg_tensor_free(m->d);
}

/* Nodes in recording order: 0 a·x, 1 probe, 2 ·b, 3 probe, 4 ·c, 5 +b, 6 sum (the loss);
 * then u·x (not read by the loss) and loss·d (recorded after it). Sweep order 6..0: c is
 * final after node 4 (no probe run), b after node 2 (one), a after node 0 (two). */
static tg_tensor *net_loss(tg_tape *tp, const net *m)
{
    tg_tensor *h = probe(tp, tg_mul(tp, m->a, m->x));
    h = probe(tp, tg_mul(tp, h, m->b));
    tg_tensor *loss = tg_sum(tp, tg_add(tp, tg_mul(tp, h, m->c), m->b), TG_ALL_AXES, false);
    (void)tg_mul(tp, m->u, m->x);
    (void)tg_mul(tp, loss, m->d);
    return loss;
}

/* The calls are c, b, a, each once, after 0, 1 and 2 probe backwards, each with the final
 * gradient. */
static void check_calls(const calls *c, const net *m)
{
    CHECK(c->n == 3);
    if (c->n != 3) return;
    tg_tensor *want[3] = {m->c, m->b, m->a};
    for (int k = 0; k < 3; k++) {
        CHECK(c->leaf[k] == want[k]);
        CHECK(c->probes[k] == k);
        const tg_tensor *g = tg_grad(want[k]);
        CHECK(g != NULL);
        for (int64_t i = 0; g && i < 3; i++) CHECK(c->grad[k][i] == tg_get(g, i));
    }
}

static void zero_all(const net *m)
{
    tg_zero_grad(m->a), tg_zero_grad(m->b), tg_zero_grad(m->c);
    tg_zero_grad(m->u), tg_zero_grad(m->d);
}

static void test_hook_once_final_in_order(void)
{
    net m;
    net_new(&m);
    tg_tape *tp = tg_tape_new();
    calls c = {0};
    tg_tape_on_grad_ready(tp, on_ready, &c);
    tg_tensor *loss = net_loss(tp, &m);
    CHECK(loss != NULL);
    zero_all(&m);
    probe_bwd_runs = 0;
    CHECK(tg_backward(tp, loss) == TG_OK);
    check_calls(&c, &m);
    /* the unreached leaves got nothing */
    CHECK(tg_grad(m.u) == NULL || tg_get(tg_grad(m.u), 0) == 0);
    CHECK(tg_grad(m.d) == NULL || tg_get(tg_grad(m.d), 0) == 0);

    /* a second sweep of the same tape: the same calls again (gradients accumulate) */
    c.n = 0, probe_bwd_runs = 0;
    CHECK(tg_backward(tp, loss) == TG_OK);
    check_calls(&c, &m);

    /* kept across a reset */
    tg_tape_reset(tp);
    loss = net_loss(tp, &m);
    zero_all(&m);
    c.n = 0, probe_bwd_runs = 0;
    CHECK(tg_backward(tp, loss) == TG_OK);
    check_calls(&c, &m);

    /* after a replay on new values */
    tg_set(m.x, 1, -1.25), tg_set(m.a, 2, 0.125);
    CHECK(tg_tape_replay(tp) == TG_OK);
    zero_all(&m);
    c.n = 0, probe_bwd_runs = 0;
    CHECK(tg_backward(tp, loss) == TG_OK);
    check_calls(&c, &m);

    /* removed */
    tg_tape_on_grad_ready(tp, NULL, &c);
    c.n = 0;
    CHECK(tg_backward(tp, loss) == TG_OK);
    CHECK(c.n == 0);
    tg_tape_on_grad_ready(NULL, on_ready, &c); /* a NULL tape: nothing happens */
    tg_tape_free(tp);
    net_free(&m);
}

/* The hook changes no result: gradients with and without it are the same bits. */
static void test_hook_changes_nothing(void)
{
    net m;
    net_new(&m);
    tg_tape *tp = tg_tape_new();
    double ref[3][3];
    tg_tensor *ls[3] = {m.a, m.b, m.c};
    for (int pass = 0; pass < 2; pass++) {
        calls c = {0};
        tg_tape_reset(tp);
        tg_tape_on_grad_ready(tp, pass ? on_ready : NULL, &c);
        tg_tensor *loss = net_loss(tp, &m);
        zero_all(&m);
        CHECK(tg_backward(tp, loss) == TG_OK);
        for (int k = 0; k < 3; k++)
            for (int i = 0; i < 3; i++) {
                double g = tg_get(tg_grad(ls[k]), i);
                if (pass == 0) ref[k][i] = g;
                else CHECK(g == ref[k][i]);
            }
        CHECK(c.n == (pass ? 3 : 0));
    }
    tg_tape_free(tp);
    net_free(&m);
}

/* tg_backward_seed sweeps with the hook too; a leaf loss gets its call after the seed. */
static void test_hook_seed_and_leaf_loss(void)
{
    net m;
    net_new(&m);
    tg_tape *tp = tg_tape_new();
    calls c = {0};
    tg_tape_on_grad_ready(tp, on_ready, &c);
    tg_tensor *y = tg_mul(tp, tg_mul(tp, m.a, m.x), m.c); /* [3] */
    int64_t s[1] = {3};
    tg_tensor *seed = tg_tensor_from(TG_F64, 1, s, (double[]){1, -2, 0.5});
    zero_all(&m);
    CHECK(tg_backward_seed(tp, y, seed) == TG_OK);
    CHECK(c.n == 2 && c.leaf[0] == m.c && c.leaf[1] == m.a);
    for (int i = 0; i < 3 && c.n == 2; i++)
        CHECK(c.grad[1][i] == tg_get(tg_grad(m.a), i) && c.grad[0][i] == tg_get(tg_grad(m.c), i));

    /* a scalar leaf as the loss: one call, with gradient 1 */
    int64_t one[1] = {1};
    tg_tensor *l = tg_tensor_from(TG_F64, 1, one, (double[]){4});
    tg_set_requires_grad(l, true);
    c.n = 0;
    CHECK(tg_backward(tp, l) == TG_OK);
    CHECK(c.n == 1 && c.leaf[0] == l && c.grad[0][0] == 1);

    /* a leaf read twice by one node: one call */
    tg_tape_reset(tp);
    c.n = 0;
    tg_tensor *sq = tg_sum(tp, tg_mul(tp, m.a, m.a), TG_ALL_AXES, false);
    tg_zero_grad(m.a);
    CHECK(tg_backward(tp, sq) == TG_OK);
    CHECK(c.n == 1 && c.leaf[0] == m.a);
    for (int i = 0; i < 3 && c.n == 1; i++) CHECK(c.grad[0][i] == 2 * tg_get(m.a, i));

    /* a failing sweep makes no call */
    c.n = 0;
    CHECK(tg_backward(tp, y) == TG_ESTATE); /* y is from before the reset */
    CHECK(c.n == 0);
    tg_tensor_free(seed), tg_tensor_free(l);
    tg_tape_free(tp);
    net_free(&m);
}

/* An allocator that fails from a given call on. */
typedef struct failing {
    int calls, fail_from;
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

static void test_hook_out_of_memory(void)
{
    net m;
    net_new(&m);
    failing f = {0, -1};
    tg_tape *tp = tg_tape_new_with(failing_alloc, &f);
    calls c = {0};
    tg_tensor *loss = net_loss(tp, &m);
    zero_all(&m);
    CHECK(tg_backward(tp, loss) == TG_OK); /* intermediate gradients now in the arena */
    zero_all(&m);
    tg_tape_on_grad_ready(tp, on_ready, &c);
    f.fail_from = 0; /* the hook's table is the next allocation */
    CHECK(tg_backward(tp, loss) == TG_ENOMEM);
    CHECK_STR_HAS(tg_tape_error(tp), "tg_backward: out of memory for the gradient-ready hook");
    CHECK(c.n == 0);
    for (int i = 0; i < 3; i++) CHECK(tg_get(tg_grad(m.a), i) == 0); /* nothing swept */
    f.fail_from = -1;
    tg_tape_reset(tp);
    loss = net_loss(tp, &m);
    zero_all(&m);
    probe_bwd_runs = 0;
    CHECK(tg_backward(tp, loss) == TG_OK);
    check_calls(&c, &m);
    tg_tape_free(tp);
    net_free(&m);
}

static const check_case cases[] = {
    TEST(test_hook_once_final_in_order),
    TEST(test_hook_changes_nothing),
    TEST(test_hook_seed_and_leaf_loss),
    TEST(test_hook_out_of_memory),
};
TEST_MAIN("test_grad_hook", cases)
