/* tapegrad/tape.h: the tape, the reverse sweep, grad mode, the graph API and gradcheck.
 *
 * A tape records one node per op call while some input requires a gradient. Op outputs,
 * intermediate gradients, nodes and saved context live in the tape's arena until
 * tg_tape_reset, which rewinds the arena and keeps its memory, so a training step in
 * steady state allocates nothing. The first error of a step stays on the tape
 * (tg_tape_error) until the reset.
 *
 * Threads: separate tapes may run on separate threads at once, with the same bits as run
 * one after another. A tape and everything made on it belong to one thread at a time, and
 * so does a leaf that requires a gradient or that anything writes; a leaf nothing writes
 * may be read by ops on several threads at once (docs/design.md, Threads). */
#ifndef TAPEGRAD_TAPE_H
#define TAPEGRAD_TAPE_H

#include <stdio.h>

#include "core.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tg_tape tg_tape;
typedef struct tg_node tg_node;

/* Allocation hook: behaves as realloc(ptr, size) when size > 0 and as free(ptr) when
 * size == 0 (returning NULL). Every tape allocation goes through it. Its memory need only
 * be 16-byte aligned: the tape aligns arena data to 64 itself. */
typedef void *(*tg_alloc_fn)(void *ctx, void *ptr, size_t size);

TG_API tg_tape *tg_tape_new(void);
/* A tape whose memory comes from alloc (ctx is passed back to it). */
TG_API tg_tape *tg_tape_new_with(tg_alloc_fn alloc, void *ctx);
/* Frees the tape and everything in its arena. NULL does nothing. */
TG_API void tg_tape_free(tg_tape *tp);
/* Forgets every node, output and intermediate gradient, clears the error, and rewinds the
 * arena, keeping its memory for the next step. Tensors from before the reset are invalid.
 * Given to an op or as a sweep's root, an op output or intermediate gradient of this tape
 * from 1, 2 or 3 resets back fails with TG_ESTATE and changes nothing, provided the steps
 * since have made the same allocations (the same ops on the same shapes, as a training
 * loop does). From further back, or after different steps, it is refused unless it falls
 * exactly on a tensor of the current step, and is then taken for that one: in a loop of
 * identical steps, a tensor from 4 resets back is the same tensor of the current step
 * (docs/design.md, Stale tensors). Copy what must outlive a step into a leaf. */
TG_API void tg_tape_reset(tg_tape *tp);

/* The first error since the last reset: its message ("" if none) and its code. */
TG_API const char *tg_tape_error(const tg_tape *tp);
TG_API int tg_tape_errcode(const tg_tape *tp);
/* Records an error on the tape (kept only if it is the first); returns code. For layers
 * and user ops built on the public API. */
TG_API int tg_tape_fail(tg_tape *tp, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Grad mode: while off, ops compute in the arena but record nothing (inference).
 * Returns the previous setting. */
TG_API bool tg_tape_set_grad_mode(tg_tape *tp, bool on);
TG_API bool tg_tape_grad_mode(const tg_tape *tp);

/* The generator used by random ops (dropout) on this tape. */
TG_API tg_rng *tg_tape_rng(tg_tape *tp);
TG_API void tg_tape_seed(tg_tape *tp, uint64_t seed);

/* Memory figures: bytes in use in the arena now, the most ever in use since the tape was
 * made, bytes reserved from the allocator, and the number of allocator calls so far. */
typedef struct tg_tape_stats {
    size_t arena_used, arena_high, arena_reserved;
    uint64_t n_allocs;
    int64_t n_nodes;
} tg_tape_stats;
TG_API void tg_tape_get_stats(const tg_tape *tp, tg_tape_stats *st);

/* The reverse sweep. loss must be a scalar (numel 1) recorded on this tape since its last
 * reset, or a scalar leaf. Seeds d loss/d loss = 1, walks the nodes from the loss's node
 * back to the first, and calls each node's backward, which adds into its inputs'
 * gradients. Nodes recorded after the loss are skipped. Gradients of tensors that do not
 * require one are never computed.
 * A second call on the same tape sweeps again from fresh intermediate gradients (each
 * sweep zeroes them on first use), while leaf gradients keep accumulating until
 * tg_zero_grad. Returns 0, or TG_ESHAPE (loss not scalar), TG_ESTATE (loss not on this
 * tape, or made before a reset: see tg_tape_reset for what is caught), TG_EARG (NULL),
 * TG_ENOMEM; the error is kept on the tape. */
TG_API int tg_backward(tg_tape *tp, tg_tensor *loss);
/* The sweep from any recorded output y with its gradient seeded by seed (same shape as y):
 * adds seedᵀ·∂y/∂x into every leaf x that requires a gradient (a vector-Jacobian product).
 * With a one-hot seed it gives one row of the Jacobian (Levenberg-Marquardt uses it). */
TG_API int tg_backward_seed(tg_tape *tp, tg_tensor *y, const tg_tensor *seed);

/* ---- Replay: the recorded tape again, on the leaves' current values ----
 * tg_tape_replay re-runs every recorded node's forward kernel in recording order, reading
 * the values the leaves hold now, without recording anything: no node, output or saved
 * buffer is allocated, so a step that only changes values (a new batch copied into the
 * same input leaf, weights updated in place) costs the kernels alone. Then tg_backward
 * sweeps as after a recording (zero the leaf gradients first as usual). Control flow is
 * frozen at recording, as in ADOL-C: a branch or loop of the caller's that looked at a
 * value is not taken again, and every op keeps the shapes, attributes (axes, scalars, p)
 * and leaves it was recorded with. A replay equals a fresh recording at the same values
 * bit for bit, outputs and gradients: dropout draws a fresh mask from the tape's
 * generator, in the order a recording would; batch_norm in training updates its running
 * statistics again. The caller keeps every leaf a recorded node reads alive (a freed leaf
 * cannot be detected), and a custom op's ctx too.
 * Returns 0, or TG_ESTATE and changes nothing: a tape holding an error (the first error's
 * message stays), no node recorded since the last reset, a leaf freed and replaced by
 * another since recording (a leaf's shape and dtype cannot change otherwise), or a node
 * input computed by ops that recorded no node (none of its inputs required a gradient, or
 * grad mode was off, or a constant of tg_gradients), whose value a replay cannot
 * recompute. A forward kernel may still fail on the new values (a label out of range):
 * its error goes on the tape, the nodes before it have run. TG_EARG for NULL. */
TG_API int tg_tape_replay(tg_tape *tp);

/* ---- The gradient-ready hook ----
 * While set, every sweep (tg_backward, tg_backward_seed, after a recording or a replay)
 * calls fn(leaf, ctx) once for each leaf that requires a gradient and that the sweep
 * reaches, as soon as that gradient is final: right after the backward of the last node,
 * in sweep order, that adds into it (for a leaf loss, after it is seeded). Calls come from
 * the sweeping thread, in sweep order, and by input position within a node, so the same
 * tape gives the same order every time. Unreached leaves get no call. fn may read the
 * gradient (tg_grad) and hand it on, but must not record on, replay, sweep or reset the
 * tape. fn NULL removes the hook. tg_tape_reset keeps it. With a hook set a sweep first
 * makes two passes over the nodes (to size and fill a table, which comes from the tape's
 * allocator and is kept between sweeps: TG_ENOMEM); without one the sweep costs one
 * branch per node more. */
typedef void (*tg_grad_ready_fn)(tg_tensor *leaf, void *ctx);
TG_API void tg_tape_on_grad_ready(tg_tape *tp, tg_grad_ready_fn fn, void *ctx);

/* ---- Higher order: gradients as tensors on the tape ----
 * tg_gradients is PyTorch's autograd.grad: the gradients of y with respect to the chosen
 * tensors xs, returned as tensors on tp instead of added into leaf gradients. Its sweep
 * calls each node's backward written in ops (docs/higher-order.md), so with
 * TG_GRAD_RECORD the gradients are recorded like any op output and can be differentiated
 * again, to any order. Only the nodes between xs and y are swept. */
#define TG_GRAD_RECORD 1u /* record the sweep: the gradients can be differentiated again */
/* Sets grads[i] (i < n) to seedᵀ·∂y/∂xs[i], a tensor on tp of xs[i]'s shape and dtype;
 * exact zeros when y does not depend on xs[i]. seed: y's shape and dtype, or NULL for a
 * scalar y (seed 1); a seed that requires a gradient makes the result differentiable in
 * it too (the double-VJP trick of tg_jvp). xs: tensors that require a gradient (leaves or
 * op outputs on tp; one may appear twice). Nothing else changes: leaf gradients are not
 * touched, and the tape's grad mode is as before. Without TG_GRAD_RECORD the sweep records
 * nothing and the gradients need none.
 * Returns 0, or with grads all NULL and the error on the tape: TG_EARG (NULL arguments,
 * n < 1, an x that needs no gradient, y that needs none, e.g. a gradient from a sweep
 * that did not record, unknown flags), TG_ESHAPE or TG_EDTYPE (a scalar y without a seed,
 * a seed that does not match y), TG_ESTATE (y, seed or an x from another tape or an
 * earlier reset; a custom op without a vjp between xs and y, found before anything is
 * built), TG_ENOMEM (ops already recorded by the sweep stay on the tape, unused). */
TG_API int tg_gradients(tg_tape *tp, tg_tensor *y, tg_tensor *seed, int n, tg_tensor *const *xs,
                        tg_tensor **grads, unsigned flags);

/* ---- Profiling: where a step's time goes, per op kind. ----
 * While profiling is on, every forward kernel (recorded or not) and every backward kernel
 * of a sweep is timed on a monotonic clock and summed per op kind, and so is every BLIS
 * GEMM call inside them (matmul, linear). The figures add up across steps (tg_tape_reset
 * keeps them) until tg_tape_profile_clear. A timed kernel costs two clock reads (about
 * 40 ns); with profiling off nothing is timed. */
typedef struct tg_profile_row {
    const char *op; /* op name; "custom" for every user-defined op */
    int64_t forward_calls, backward_calls;
    double forward_s, backward_s; /* seconds inside the kernels */
} tg_profile_row;
/* Turns profiling on (allocating its table the first time: TG_ENOMEM) or off (the figures
 * stay readable). TG_EARG for a NULL tape. */
TG_API int tg_tape_set_profiling(tg_tape *tp, bool on);
/* Zeroes the figures; profiling stays on or off. */
TG_API void tg_tape_profile_clear(tg_tape *tp);
/* Writes one row per op kind that ran (op-table order) into rows[0..max_rows-1] and returns
 * how many there are (rows past max_rows are counted but not written); gemm (if not NULL)
 * gets the BLIS calls, whose time is part of their ops' rows. TG_EARG for bad arguments. */
TG_API int tg_tape_profile(const tg_tape *tp, tg_profile_row *rows, int max_rows,
                           tg_profile_row *gemm);
/* Prints the rows as a table, largest total first, with each op's share of all kernel time
 * and the GEMM line. TG_EIO if writing fails. */
TG_API int tg_tape_profile_print(const tg_tape *tp, FILE *f);

/* ---- Graph API: walk the recorded nodes in recording order. ---- */
TG_API int64_t tg_tape_n_nodes(const tg_tape *tp);
TG_API const tg_node *tg_tape_first(const tg_tape *tp); /* NULL if none */
TG_API const tg_node *tg_node_next(const tg_node *n);   /* NULL after the last */
TG_API const char *tg_node_op(const tg_node *n);        /* op name, e.g. "matmul" */
TG_API int tg_node_n_inputs(const tg_node *n);
TG_API const tg_tensor *tg_node_input(const tg_node *n, int i);
TG_API const tg_tensor *tg_node_output(const tg_node *n);
/* True if a gradient reached this node's output in the last sweep. */
TG_API bool tg_node_has_grad(const tg_node *n);
/* Writes the tape as a Graphviz digraph: a box per op node, an ellipse per leaf, edges
 * labelled with shapes; nodes a gradient flowed through are drawn bold. */
TG_API int tg_export_dot_file(const tg_tape *tp, FILE *f);
/* Same, to path (written to a temporary file, then renamed). TG_EIO on failure. */
TG_API int tg_export_dot(const tg_tape *tp, const char *path);

/* ---- Gradient checking against central finite differences, in f64. ---- */
/* Builds a scalar from inputs on tp; returns NULL on error. */
typedef tg_tensor *(*tg_scalar_fn)(tg_tape *tp, tg_tensor *const *inputs, void *ctx);

typedef struct tg_gradcheck_opts {
    double step;      /* finite-difference step h, scaled by max(1,|x|) (default 1e-4) */
    double rel_floor; /* relative error is |a-n| / max(|a|, |n|, rel_floor) (default 1e-3) */
    uint64_t seed;    /* tape seed restored before every evaluation (random ops) */
} tg_gradcheck_opts;

typedef struct tg_gradcheck_result {
    double max_abs_err; /* largest |analytic - numeric| */
    double max_rel_err; /* largest relative error, as defined in the options */
    int worst_input;    /* which input and element gave max_rel_err (-1 if none) */
    int64_t worst_index;
    double worst_analytic, worst_numeric;
    int64_t n_checked; /* elements compared */
    char msg[256];     /* why the check failed ("" when it returned 0) */
    /* tg_gradgradcheck only: the worst entry ∂²f/∂a∂b has a = (worst_input, worst_index)
     * and b = (worst_wrt, worst_wrt_index); first_order_err is the largest relative
     * difference between the gradient tg_gradients builds and tg_backward's. */
    int worst_wrt;
    int64_t worst_wrt_index;
    double first_order_err;
} tg_gradcheck_result;

/* Compares every analytic gradient element of f with the 4-point central difference
 * (f(x-2h) - 8f(x-h) + 8f(x+h) - f(x+2h)) / 12h, computed in f64: inputs are copied to
 * f64 first (the caller's tensors are never modified). Only inputs with requires_grad set
 * are checked. opts may be NULL for the defaults, res NULL to get only the code. Returns
 * 0 and fills res, or a negative code with res->msg saying why, never empty: the tape's
 * code and message when f or the sweep failed; TG_EARG for bad arguments, for f returning
 * NULL with no error on the tape, and for f being NaN near an element; TG_ESHAPE when f
 * returns no scalar; TG_ENOMEM (nothing leaks). */
TG_API int tg_gradcheck(tg_scalar_fn f, int n_inputs, tg_tensor *const *inputs, void *ctx,
                        const tg_gradcheck_opts *opts, tg_gradcheck_result *res);

/* Second derivatives of f against central differences of its analytic gradient, in f64.
 * For every element b of every input that requires a gradient: the analytic column
 * ∂/∂x_b ∇f, one sweep of tg_gradients over the recorded gradient (seeded with the unit
 * vector of b, so by the symmetry of the Hessian it is the row ∂²f/∂x_b∂x_·), against
 * (∇f(x-2h e_b) - 8∇f(x-h e_b) + 8∇f(x+h e_b) - ∇f(x+2h e_b)) / 12h from tg_backward at
 * perturbed points. Errors and options as tg_gradcheck (n_checked counts Hessian
 * entries); also checks that the recorded gradient matches tg_backward's
 * (first_order_err). Cost: 4 first-order evaluations and one sweep per input element. */
TG_API int tg_gradgradcheck(tg_scalar_fn f, int n_inputs, tg_tensor *const *inputs, void *ctx,
                            const tg_gradcheck_opts *opts, tg_gradcheck_result *res);

/* ---- The built-in op self-check: every op at several shapes (broadcasting, non-square,
 * every axis), gradchecked in f64 to first and second order, and compared between f32 and
 * f64. `tapegrad gradcheck` prints it as a table (--order 2: the second-order one); the
 * test suite requires max_rel_err <= 1e-6 for every case at both orders. ---- */
typedef struct tg_selfcheck_result {
    const char *op;            /* the op under test */
    const char *what;          /* what the case covers */
    tg_gradcheck_result grad;  /* f64 analytic gradients against finite differences */
    tg_gradcheck_result grad2; /* f64 second derivatives (tg_gradgradcheck) */
    double f32_err;            /* largest |f32 - f64| over the value and every gradient
                                  element, relative to max(1, |f64|) */
} tg_selfcheck_result;

TG_API int tg_selfcheck_count(void);
/* Runs case i (0 <= i < tg_selfcheck_count()): 0, or a negative code with grad.msg. */
TG_API int tg_selfcheck_run(int i, tg_selfcheck_result *res);
/* The op case i tests (NULL if no such case); *what (if not NULL) gets its description. */
TG_API const char *tg_selfcheck_op(int i, const char **what);
/* The op table: tg_op_count() ops named tg_op_name(0..count-1) ("custom" stands for every
 * user-defined op). */
TG_API int tg_op_count(void);
TG_API const char *tg_op_name(int i);

#ifdef __cplusplus
}
#endif
#endif
