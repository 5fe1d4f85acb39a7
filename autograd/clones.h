/* autograd/clones.h: TG_VEC_CLONES marks a hot loop kernel to be compiled twice, for
 * x86-64-v3 (AVX2, FMA) and for the baseline (SSE2); the dynamic loader picks one for the
 * CPU (function multiversioning, an ifunc). The library itself stays built for the
 * baseline. The C11 mode the library is built in keeps FP contraction off, so both clones
 * give the same bits. Only for kernels doing enough work per call to pay for the indirect
 * call (optimiser steps, linear_act's passes): measured on the momentum step of the bench
 * MLP at 1 thread, 77-89 us -> 65-82 us. GCC only: clang 14 exports each clone's resolver
 * from the shared library whatever the visibility. -DTG_NO_CLONES turns them off: make
 * tsan needs it, since the loader runs the resolvers before ThreadSanitizer is set up and
 * they crash. Not installed. */
#ifndef TAPEGRAD_CLONES_H
#define TAPEGRAD_CLONES_H

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(TG_NO_CLONES)
#define TG_VEC_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define TG_VEC_CLONES
#endif

#endif
