/* test/test_node.c: the recorded node's layout (autograd/internal.h): each op's attributes
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

static const check_case cases[] = {TEST(test_attr_bytes), TEST(test_attr_overrun)};
TEST_MAIN("test_node", cases)
