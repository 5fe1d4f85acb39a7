/* autograd/replay.c: tg_tape_replay, the recorded nodes' forward kernels run again in
 * recording order on the leaves' current values, recording nothing. */
#include "internal.h"

/* Every input of every node is a leaf or a recorded output: anything else (an op output
 * that recorded no node, a constant) holds a value the replay cannot recompute. Checked
 * once per tail and generation: nodes never change once recorded. */
static int check_inputs(tg_tape *tp)
{
    if (tp->replay_ok_tail == tp->tail && tp->replay_ok_gen == tp->gen) return TG_OK;
    int64_t k = 0;
    for (const tg_node *n = tp->head; n; n = n->next, k++)
        for (int i = 0; i < n->n_in; i++) {
            const tg_tensor *x = n->in[i];
            if (x->leaf || x->recorded) continue;
            return tg_fail(tp, TG_ESTATE,
                           "tg_tape_replay: input %d of node %lld (%s) was computed by ops that "
                           "recorded no node (none of their inputs required a gradient, or grad "
                           "mode was off), so a replay cannot recompute it",
                           i, (long long)k, tg_op_table[n->op].name);
        }
    tp->replay_ok_tail = tp->tail, tp->replay_ok_gen = tp->gen;
    return TG_OK;
}

/* Every leaf the nodes read is the one they were recorded with. */
static int check_leaves(tg_tape *tp)
{
    char buf[96];
    for (int64_t k = 0; k < tp->n_leaves; k++) {
        const tg_tensor *x = tp->leaves[k].t;
        if (x->leaf && x->serial == tp->leaves[k].serial) continue;
        return tg_fail(tp, TG_ESTATE,
                       "tg_tape_replay: leaf %lld the nodes read was freed and replaced "
                       "since recording (that memory now holds %s %s %s); record the "
                       "step again",
                       (long long)k, x->leaf ? "a leaf" : "a non-leaf",
                       tg_shape_str(x, buf, sizeof buf), tg_dtype_name((tg_dtype)x->dtype));
    }
    return TG_OK;
}

/* Nodes and their outputs lie in the arena in recording order, so the replay walks memory
 * upwards; on a long tape it waits on each node's lines unless it asks for them a few
 * nodes ahead (as the sweep does below it, backward.c). A prefetch never faults. */
#define REPLAY_PREFETCH 2048 /* bytes ahead */
static inline void prefetch_above(const tg_node *n)
{
#if defined(__GNUC__)
    uintptr_t at = (uintptr_t)n + REPLAY_PREFETCH;
    for (int i = 0; i < 4; i++) __builtin_prefetch((const void *)(at + 64 * (uintptr_t)i));
#else
    (void)n;
#endif
}

int tg_tape_replay(tg_tape *tp)
{
    if (!tp) return TG_EARG;
    if (tp->err) return TG_ESTATE; /* the first error's message stays */
    if (!tp->head)
        return tg_fail(tp, TG_ESTATE,
                       "tg_tape_replay: no node recorded since the last reset (nothing that "
                       "requires a gradient was computed with grad mode on)");
    if (check_inputs(tp) || check_leaves(tp)) return tp->err;
    if (tg_profiling(tp)) {
        for (tg_node *n = tp->head; n && !tp->err; n = n->next) {
            double t0 = tg_clock();
            tg_op_table[n->op].forward(n);
            tg_profile_kernel(tp, n->op, t0);
        }
    } else {
        for (tg_node *n = tp->head; n && !tp->err; n = n->next) {
            prefetch_above(n);
            tg_op_table[n->op].forward(n);
        }
    }
    return tp->err;
}
