/* ops/pending.c: TEMPORARY while the op families are written in parallel: weak empty
 * kernels so the table links. Each family file's real kernels override these. This file is
 * deleted before the engine is called done. */
#include "internal.h"

#define TG_OP(nm, ar)                                                                      \
    __attribute__((weak)) void tg_##nm##_fwd(tg_node *n) { (void)n; }                      \
    __attribute__((weak)) void tg_##nm##_bwd(tg_node *n) { (void)n; }
#include "ops.def"
#undef TG_OP
