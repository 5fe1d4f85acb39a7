/* test/test_node.c: the recorded node's layout (autograd/internal.h): an op's output header,
 * its node and the output's data are one piece, so that each finds the other without a
 * pointer (tg_node_out, tg_tensor_node), over block boundaries too; each op's attributes
 * take only the bytes of its ops.def attr column, and with the self-checks on
 * (tp->poison_grads) an op that writes past them fails with TG_ESTATE instead of
 * overwriting its output. */
#include "../autograd/internal.h"
#include "check.h"

/* Every op's attr_bytes holds its member of tg_attr, a multiple of 8, at most the union. */
static void test_attr_bytes(void)
{
    CHECK(tg_op_table[TG_OP_tanh].attr_bytes == sizeof(double));
    CHECK(tg_op_table[TG_OP_add].attr_bytes == sizeof(((tg_attr *)0)->binary));
    CHECK(tg_op_table[TG_OP_matmul].attr_bytes == sizeof(((tg_attr *)0)->matmul));
    CHECK(tg_op_table[TG_OP_reshape].attr_bytes == 0);
    /* the sizes docs/design.md gives: a 48-byte header and a 32-byte node before its
     * inputs; 8 bytes of attributes for a scalar op, 16 for add, 40 for matmul */
    CHECK(sizeof(tg_tensor) == 48 && TG_TENSOR_BYTES(1) == 56 && sizeof(tg_node) == 32);
    CHECK(tg_op_table[TG_OP_mul_scalar].attr_bytes == 8);
    CHECK(tg_op_table[TG_OP_add].attr_bytes == 16 && tg_op_table[TG_OP_matmul].attr_bytes == 40);
    for (int op = 0; op < TG_OP_COUNT; op++) {
        CHECK(tg_op_table[op].attr_bytes % 8 == 0);
        CHECK(tg_op_table[op].attr_bytes <= sizeof(tg_attr));
    }
}

/* An op writing the scalar at offset off of its attributes, with the self-checks on: past
 * its column it fails, naming the op and the bytes; within it, it records. */
static tg_tensor *write_attr(tg_tape *tp, int op, tg_tensor *x, size_t off)
{
    if (tg_op_check(tp, op, 1, &x)) return NULL;
    tg_node *n = tg_op_begin(tp, op, 1, &x, x->ndim, x->shape);
    if (!n) return NULL;
    memcpy((unsigned char *)tg_node_attr(n) + off, &(double){2.5}, sizeof(double));
    return tg_op_finish(tp, n);
}

static void test_attr_overrun(void)
{
    tg_tensor *x = tg_tensor_new(TG_F64, 1, (int64_t[]){3});
    tg_set_requires_grad(x, true);
    tg_tape *tp = tg_tape_new();
    tp->poison_grads = true;
    tg_tensor *y = write_attr(tp, TG_OP_mul_scalar, x, 0); /* its own scalar */
    CHECK(y != NULL && tp->err == TG_OK);
    if (y) CHECK_NEAR(tg_get(y, 0), 2.5 * tg_get(x, 0), 0);
    CHECK(write_attr(tp, TG_OP_mul_scalar, x, 8) == NULL);
    CHECK(tp->err == TG_ESTATE);
    CHECK_STR_HAS(tg_tape_error(tp), "tg_mul_scalar");
    CHECK_STR_HAS(tg_tape_error(tp), "8 bytes");
    tg_tape_reset(tp);
    CHECK(write_attr(tp, TG_OP_reshape, x, 0) == NULL); /* no attributes at all */
    CHECK(tp->err == TG_ESTATE);
    CHECK_STR_HAS(tg_tape_error(tp), "tg_reshape");
    CHECK_STR_HAS(tg_tape_error(tp), "0 bytes");
    tg_tape_reset(tp);
    CHECK(write_attr(tp, TG_OP_add_scalar, x, sizeof(tg_attr) - 8) == NULL); /* the last */
    CHECK(tp->err == TG_ESTATE);
    tg_tape_free(tp);
    tg_tensor_free(x);
}

/* For every recorded node: its output's header right before it, the output's data right
 * after its inputs and attributes (on a cache line from 64 bytes), and back. */
static int bad_layout(tg_tape *tp)
{
    int bad = 0;
    for (const tg_node *n = tp->head; n; n = n->next) {
        const tg_tensor *y = tg_node_out(n);
        size_t bytes = (size_t)y->numel * tg_dtype_size((tg_dtype)y->dtype);
        const unsigned char *end =
            (const unsigned char *)tg_node_attr(n) + tg_op_table[n->op].attr_bytes;
        const unsigned char *d = y->data;
        bad += (const unsigned char *)n != (const unsigned char *)y + TG_TENSOR_BYTES(y->ndim);
        bad += tg_tensor_node(y) != n || !y->recorded || (uintptr_t)y % 16 || (uintptr_t)n % 8;
        bad += bytes < 64 ? d != end : d < end || d >= end + 64 || (uintptr_t)d % 64;
    }
    return bad;
}

static void test_layout(void)
{
    for (int dt = 0; dt < 2; dt++) {
        tg_dtype t = dt ? TG_F64 : TG_F32;
        tg_tensor *s = tg_tensor_new(t, 0, NULL), *v = tg_tensor_new(t, 1, (int64_t[]){40});
        tg_tensor *m = tg_tensor_new(t, 2, (int64_t[]){3, 40}),
                  *w = tg_tensor_new(t, 2, (int64_t[]){40, 5});
        tg_tensor *b = tg_tensor_new(t, 1, (int64_t[]){5});
        tg_tensor *leaves[5] = {s, v, m, w, b};
        for (int i = 0; i < 5; i++) {
            tg_tensor_fill(leaves[i], 0.25);
            tg_set_requires_grad(leaves[i], true);
        }
        tg_tape *tp = tg_tape_new();
        for (int gen = 0; gen < 4; gen++) { /* every stagger */
            tg_tape_reset(tp);
            tg_tensor *y = s;
            for (int i = 0; i < 3000; i++) /* 0-D nodes over several blocks */
                y = i % 2 ? tg_tanh(tp, y) : tg_mul_scalar(tp, y, 0.5);
            tg_tensor *h = tg_linear(tp, m, w, b); /* 3 inputs, [3,5] */
            tg_tensor *c = tg_concat(tp, 5, (tg_tensor *[]){v, v, v, v, v}, 0); /* 5 inputs */
            tg_tensor *r = tg_reshape(tp, tg_exp(tp, m), 4, (int64_t[]){3, 2, 4, 5});
            tg_tensor *loss = tg_add(
                tp, tg_add(tp, y, tg_sum(tp, h, TG_ALL_AXES, false)),
                tg_add(tp, tg_sum(tp, c, TG_ALL_AXES, false), tg_sum(tp, r, TG_ALL_AXES, false)));
            CHECK(loss && tp->n_nodes > 3000);
            CHECK(bad_layout(tp) == 0);
            CHECK(tg_backward(tp, loss) == TG_OK);
            CHECK(tg_tensor_node(s) == NULL && !s->recorded); /* a leaf */
        }
        /* An output that recorded no node says so. */
        tg_tape_reset(tp);
        tg_tape_set_grad_mode(tp, false);
        tg_tensor *y = tg_tanh(tp, v);
        CHECK(y && !y->recorded && tg_tensor_node(y) == NULL && tp->n_nodes == 0);
        tg_tape_free(tp);
        for (int i = 0; i < 5; i++) tg_tensor_free(leaves[i]);
    }
}

static const check_case cases[] = {TEST(test_attr_bytes), TEST(test_attr_overrun),
                                   TEST(test_layout)};
TEST_MAIN("test_node", cases)
