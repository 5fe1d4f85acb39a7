/* ops/cases.h: the op self-check cases. Every op has cases here (one file per family,
 * ops/cases_<family>.c); tg_selfcheck_run gradchecks each in f64 and compares f32 with f64.
 * `make test` (test/test_ops.c) and `tapegrad gradcheck` run them all, and test_ops fails
 * when an op in ops.def has no case. Not installed. */
#ifndef TAPEGRAD_OPS_CASES_H
#define TAPEGRAD_OPS_CASES_H

#include "internal.h"

#define TG_CASE_MAX_IN 6

typedef struct tg_op_case {
    const char *op;   /* the op under test, as named in ops.def; its node must be recorded */
    const char *what; /* what the case covers: "broadcast [2,3] + [3]" */
    /* Builds a scalar from the inputs. ctx points at arg[]. Non-scalar results go through
     * tg_case_dot, so every output element gets a different weight. */
    tg_scalar_fn fn;
    int n_in;
    int ndim[TG_CASE_MAX_IN];
    int64_t shape[TG_CASE_MAX_IN][TG_MAX_DIMS];
    double lo, hi;    /* inputs uniform in [lo, hi); both 0 means [-1, 1) */
    unsigned no_grad; /* bit i set: input i needs no gradient (labels, running statistics) */
    /* Optional: overwrites inputs after the random fill (labels, ±1 targets, probabilities,
     * values kept away from kinks). Inputs are f64 here. */
    void (*init)(tg_tensor *const *in, const double *arg, tg_rng *rng);
    double arg[4]; /* the op's attributes (axis, alpha, p...), read by fn and init */
} tg_op_case;

/* Σ w_i y_i with fixed weights w_i = sin(1.3 i + 0.5) + 0.25 (all distinct, both signs):
 * reduces any output to a scalar without making gradients degenerate (a plain sum of a
 * softmax has gradient 0). Recorded as a custom op named "case_dot". */
tg_tensor *tg_case_dot(tg_tape *tp, tg_tensor *y);

/* One array per family, defined in ops/cases_<family>.c. */
#define TG_CASE_FAMILIES(X)                                                                        \
    X(matmul)                                                                                      \
    X(elementwise) X(unary) X(reduce) X(shape) X(activation) X(loss) X(norm) X(conv) X(pool)
#define X(fam)                                                                                     \
    extern const tg_op_case tg_cases_##fam[];                                                      \
    extern const int tg_n_cases_##fam;
TG_CASE_FAMILIES(X)
#undef X

#endif
