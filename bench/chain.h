/* bench/chain.h: the chain of the tape-overhead figures, shared by bench.c and
 * chain_phases.c so that both measure the same ops: K elementwise ops repeating (mul_scalar
 * 0.5, add_scalar 0.1, tanh, add x), whose values stay bounded. */
#ifndef TAPEGRAD_BENCH_CHAIN_H
#define TAPEGRAD_BENCH_CHAIN_H

#include <stdbool.h>
#include <stdint.h>

#include "tapegrad.h"

/* The chain's k ops on x; indep: each op reads x instead of the op before, so that no op
 * waits for another's result (chain_phases' indep phase). */
__attribute__((always_inline)) static inline tg_tensor *chain_ops(tg_tape *tp, tg_tensor *x,
                                                                  int64_t k, bool indep)
{
    tg_tensor *y = x;
    for (int64_t i = 0; i < k; i++) {
        tg_tensor *in = indep ? x : y;
        switch (i & 3) {
        case 0: y = tg_mul_scalar(tp, in, 0.5); break;
        case 1: y = tg_add_scalar(tp, in, 0.1); break;
        case 2: y = tg_tanh(tp, in); break;
        default: y = tg_add(tp, in, x); break;
        }
    }
    return y;
}

/* noinline: a phase of its own in callgrind's counts */
__attribute__((noinline)) static tg_tensor *chain(tg_tape *tp, tg_tensor *x, int64_t k)
{
    return chain_ops(tp, x, k, false);
}

#endif
