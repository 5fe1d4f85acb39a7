/* ops/table.c: the op table, generated from ops.def. */
#include "internal.h"

/* The bytes of each tg_attr member (ops.def's attr column), rounded to 8. */
#define ATTR_BYTES(m) ((sizeof(((tg_attr *)0)->m) + 7) & ~(size_t)7)
#define ATTR_none 0
#define ATTR_scalar ATTR_BYTES(scalar)
#define ATTR_matmul ATTR_BYTES(matmul)
#define ATTR_linear ATTR_BYTES(linear)
#define ATTR_binary ATTR_BYTES(binary)
#define ATTR_prelu ATTR_BYTES(prelu)
#define ATTR_view ATTR_BYTES(view)
#define ATTR_transpose ATTR_BYTES(transpose)
#define ATTR_loss ATTR_BYTES(loss)
#define ATTR_dropout ATTR_BYTES(dropout)
#define ATTR_batch_norm ATTR_BYTES(batch_norm)

#define TG_OP(nm, ar, sets, at)                                                                    \
    [TG_OP_##nm] = {#nm, ar, tg_##nm##_fwd, tg_##nm##_bwd, tg_##nm##_vjp, sets, ATTR_##at},
const tg_op tg_op_table[TG_OP_COUNT] = {
#include "ops.def"
};
#undef TG_OP
