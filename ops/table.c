/* ops/table.c: the op table, generated from ops.def. */
#include "internal.h"

#define TG_OP(nm, ar, sets, at)                                                                    \
    [TG_OP_##nm] = {#nm, ar, tg_##nm##_fwd, tg_##nm##_bwd, tg_##nm##_vjp, sets, TG_OP_ATTR_##nm},
const tg_op tg_op_table[TG_OP_COUNT] = {
#include "ops.def"
};
#undef TG_OP
