/* bench/chain.h: the chain of the tape-overhead figures, shared by bench.c and
 * chain_phases.c so that both measure the same ops: K elementwise ops repeating (mul_scalar
 * 0.5, add_scalar 0.1, tanh, add x), whose values stay bounded. */
#ifndef TAPEGRAD_BENCH_CHAIN_H
#define TAPEGRAD_BENCH_CHAIN_H

#include <stdint.h>

#include "tapegrad.h"

/* noinline: a phase of its own in callgrind's counts */
__attribute__((noinline)) static tg_tensor *chain(tg_tape *tp, tg_tensor *x, int64_t k)
{
    tg_tensor *y = x;
    for (int64_t i = 0; i < k; i++) {
        switch (i & 3) {
        case 0: y = tg_mul_scalar(tp, y, 0.5); break;
        case 1: y = tg_add_scalar(tp, y, 0.1); break;
        case 2: y = tg_tanh(tp, y); break;
        default: y = tg_add(tp, y, x); break;
        }
    }
    return y;
}

#endif
