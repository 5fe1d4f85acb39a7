/* autograd/internal.h: the structures behind tensors, nodes and tapes, shared by autograd/
 * and ops/. Not installed. */
#ifndef TAPEGRAD_AUTOGRAD_INTERNAL_H
#define TAPEGRAD_AUTOGRAD_INTERNAL_H

#include <math.h> /* isfinite, for tg_op_scalar_k */
#include <stdint.h>
#include <string.h>

#include "tapegrad.h"
#include "../ops/vecmath.h" /* tg_par_zero, for tg_grad_settle */

#define TG_ALIGN 64 /* arena and leaf data alignment: a cache line, and room for AVX-512 */

struct tg_tensor {
    void *data;      /* numel elements of dtype, contiguous, row-major */
    tg_tensor *grad; /* same shape and dtype; NULL until a sweep reaches it */
    tg_tape *tape;   /* owning tape for arena tensors, NULL for leaves */
    int64_t numel;
    union {
        uint64_t grad_sweep; /* arena tensors: the sweep in which grad was last made ready */
        uint64_t serial;     /* leaves: a number no other leaf of the process has, so that
                                tg_tape_replay can tell a leaf freed and replaced since
                                recording (tensor.c) */
    };
    uint32_t gen; /* arena tensors: the tape generation they were made in (the
                     staleness check, tg_tensor_usable) */
    int8_t ndim;
    uint8_t dtype;          /* tg_dtype */
    bool requires_grad : 1; /* leaves: set by the caller; outputs: some input requires it */
    bool leaf : 1;          /* owned by the caller (heap), not by a tape */
    bool grad_unset : 1;    /* grad holds no values yet and reads as zeros: the first backward
                               kernel to reach it writes it (GEMM beta = 0, dx = ... instead
                               of dx += ...), or it is zeroed on first use (tg_grad_settle) */
    bool recorded : 1;      /* an op output whose node is on the tape: right after this
                               header (tg_tensor_node) */
    int64_t shape[];        /* ndim sizes: the header is TG_TENSOR_BYTES(ndim) bytes (48 +
                               8 ndim: a long tape is memory-bound, every line counts) */
};
#define TG_TENSOR_BYTES(ndim) (sizeof(tg_tensor) + (size_t)(ndim) * sizeof(int64_t))

/* The scalar attributes of a node, by op family: the wrapper fills the member of its op,
 * the kernels read it. Members overlap, so each op reads only its own; a node starts
 * zeroed (tg_op_begin), so an op that sets nothing reads zeros. */
typedef union tg_attr {
    /* unary.c's scalar ops (the c of add_scalar, mul_scalar, pow_scalar) and the alpha of
     * leaky_relu and elu: the a of the element functions (ops/elem_t.h's loop); pad's
     * value */
    double scalar;
    /* matmul: a [batch,] m x k times b [batch,] k x n; which operands have the batch;
     * matmul_t: op(a) m x k times op(b) k x n, and whether op transposes (ta, tb) */
    struct {
        int64_t batch, m, k, n;
        bool a_batched, b_batched, ta, tb;
    } matmul;
    /* linear and linear_act: x [rows, k] · w [k, cols]; linear_act's tg_act and the
     * leaky_relu alpha (0 for the other activations) */
    struct {
        int64_t rows, k, cols;
        int act;
        double alpha;
    } linear;
    /* add, sub, mul, div: elementwise.c's layout and the row length of a ROW operand */
    struct {
        int64_t layout, row;
    } binary;
    /* prelu: the row length alpha repeats over (1 for a shared alpha) */
    struct {
        int64_t channels;
    } prelu;
    /* an input viewed as [outer, len, inner] around an axis: sum, mean, max (len the
     * reduced length), softmax, log_softmax, slice (len the input's, start the first
     * index kept, axis the sliced one) and concat (len the output's, axis the
     * concatenated one) */
    struct {
        int64_t outer, len, inner, start;
        int axis;
    } view;
    /* transpose: viewed as [A, n0, B, n1, C] -> [A, n1, B, n0, C] */
    struct {
        int64_t A, n0, B, n1, C;
    } transpose;
    /* loss.c's pair losses: the loss's parameter, the scale of the sum (1/numel, 1/batch
     * or 0.5) and bce's clamp */
    struct {
        double c, scale, eps;
    } loss;
    /* dropout: the probability of dropping an element */
    struct {
        double p;
    } dropout;
    /* batch_norm: x viewed as [N, C, R]; eps, and whether the batch statistics are used */
    struct {
        int64_t N, C, R;
        double eps;
        bool training;
    } batch_norm;
} tg_attr;

/* An op's output header, then its node, then the output's data: one piece of the arena
 * (record.c), so that neither points at the other (tg_node_out, tg_tensor_node). */
struct tg_node {
    uint16_t op; /* index into tg_op_table */
    uint16_t n_in;
    uint16_t mark;        /* scratch of the gradient-ready hook's pass (backward.c): 0 between
                             calls */
    uint16_t out_back;    /* the output's header is the TG_TENSOR_BYTES(ndim) before n; not a
                             char type, so that stores to float data need not reload it */
    tg_node *prev, *next; /* recording order */
    void *saved;          /* op context in the arena (masks, statistics), or NULL */
    tg_tensor *in[];      /* n_in inputs, borrowed; then the op's attributes (tg_node_attr) */
};
/* The op's scalar attributes, by name: tg_node_attr(n)->matmul.k. They follow the inputs and
 * take only the bytes of the op's member of tg_attr (ops.def's attr column, tg_op.attr_bytes),
 * so that a node of a scalar op is 48 bytes and not 88: one node is recorded per op. */
static inline tg_attr *tg_node_attr(const tg_node *n)
{
    return (tg_attr *)(void *)(n->in + n->n_in);
}
/* The node's output: the header right before it. */
static inline tg_tensor *tg_node_out(const tg_node *n)
{
    return (tg_tensor *)(void *)((uintptr_t)n - n->out_back);
}
/* The node that produced t if it was recorded, else NULL. */
static inline tg_node *tg_tensor_node(const tg_tensor *t)
{
    return t->recorded ? (tg_node *)(void *)((uintptr_t)t + TG_TENSOR_BYTES(t->ndim)) : NULL;
}
_Static_assert(sizeof(tg_attr) <= 5 * sizeof(int64_t), "tg_attr: keep the node small");

/* An arena block: this header at the start of one allocation from the tape's hook, then
 * size + TG_STAGGER_MAX bytes from base, the first cache line past the header (however the
 * hook aligns), then one spare line. Generation g's allocations start at base +
 * TG_STAGGER(g) and take the same offsets from there in every generation. */
typedef struct tg_block {
    struct tg_block *next;
    unsigned char *base;      /* 64-aligned */
    unsigned char *top, *end; /* the next free byte, and the generation's start + size */
    size_t size;              /* bytes usable in a generation */
} tg_block;
/* Generation g's allocations start 16 (g mod 4) bytes into every block: an arena tensor
 * of the last 3 generations of a step that repeats is then never where a tensor header
 * of the current one is (a header takes at least 64 bytes; docs/design.md). */
#define TG_STAGGER(gen) ((size_t)((gen) % 4u) * 16u)
#define TG_STAGGER_MAX 48

struct tg_tape {
    tg_alloc_fn alloc;
    void *alloc_ctx;
    tg_block *first, *cur; /* blocks kept across resets; cur serves allocations */
    size_t used, high, reserved;
    uint64_t n_allocs;
    tg_node *head, *tail;
    int64_t n_nodes;
    uint64_t sweep; /* incremented by every tg_backward */
    uint32_t gen;   /* incremented by every tg_tape_reset */
    bool grad_mode;
    bool poison_grads; /* self-checks: an unset gradient holds NaN, not stale bytes, so
                          a kernel that adds to it instead of writing it shows */
    bool profiling;    /* tg_tape_set_profiling on (prof is then non-NULL); read by every op */
    int err;
    struct tg_profile *prof; /* NULL until profiling is first turned on (profile.c) */
    char msg[256];
    tg_rng rng;
    uintptr_t lo, hi; /* every block lies in [lo, hi): most leaves need no block walk */
    /* The leaves the recorded nodes read, in recording order, for tg_tape_replay's check
     * (record.c appends them; from the tape's allocator, kept across tg_tape_reset, which
     * empties the list, so a loop of identical steps allocates nothing here either). */
    struct tg_leaf_ref *leaves;
    int64_t n_leaves, cap_leaves;
    const tg_tensor *leaves_last; /* the last leaf noted: a leaf read again is not */
    /* tg_tape_replay's structural check passed for this tail and generation */
    const tg_node *replay_ok_tail;
    uint32_t replay_ok_gen;
    /* The gradient-ready hook (tg_tape_on_grad_ready; kept across resets) and its table,
     * from the tape's allocator, kept between sweeps (backward.c). */
    tg_grad_ready_fn ready_fn;
    void *ready_ctx;
    struct tg_ready_slot *ready_map;
    size_t ready_cap; /* slots in ready_map: 0 or a power of two */
};

/* A leaf a recorded node reads, and its serial when recorded. */
typedef struct tg_leaf_ref {
    const tg_tensor *t;
    uint64_t serial;
} tg_leaf_ref;
/* record.c: appends the leaves among n's inputs to tp->leaves, but for a leaf noted just
 * before (read again); TG_ENOMEM with an error. */
int tg_leaf_refs_add(tg_tape *tp, const tg_node *n);

/* One row of the op table (ops/ops.def generates it). */
typedef struct tg_op {
    const char *name;            /* "tanh": for errors, DOT export, profiles */
    int arity;                   /* number of tensor inputs; -1 for variadic (concat) */
    void (*forward)(tg_node *);  /* writes tg_node_out(n) from n->in[] and the attributes */
    void (*backward)(tg_node *); /* adds into n->in[i]->grad from tg_node_out(n)->grad */
    /* The same backward written in public ops, for sweeps that record (autograd/higher.c):
     * sets dx[i], a tensor of n->in[i]'s shape on tp, to dyᵀ·∂out/∂in[i] for every i with
     * want[i], from dy (tg_node_out(n)'s shape) and the node's inputs and output, so that the
     * gradient it builds can be differentiated again. Errors go on the tape. */
    void (*vjp)(tg_tape *tp, const tg_node *n, tg_tensor *dy, const bool *want, tg_tensor **dx);
    bool sets;                /* backward writes unset input gradients (tg_grad_beta) */
    unsigned char attr_bytes; /* of the node's attributes: its member of tg_attr, rounded to 8 */
} tg_op;

#define TG_OP(nm, ar, sets, at) TG_OP_##nm,
typedef enum {
#include "../ops/ops.def"
    TG_OP_COUNT
} tg_op_id;
#undef TG_OP
extern const tg_op tg_op_table[TG_OP_COUNT];

/* The bytes of each tg_attr member (ops.def's attr column), rounded to 8, and each op's as a
 * constant, TG_OP_ATTR_tanh: the op table's attr_bytes, for the wrappers that pass it to
 * tg_op_begin_k at compile time. */
#define TG_ATTR_BYTES(m) ((sizeof(((tg_attr *)0)->m) + 7) & ~(size_t)7)
#define TG_ATTR_none 0
#define TG_ATTR_scalar TG_ATTR_BYTES(scalar)
#define TG_ATTR_matmul TG_ATTR_BYTES(matmul)
#define TG_ATTR_linear TG_ATTR_BYTES(linear)
#define TG_ATTR_binary TG_ATTR_BYTES(binary)
#define TG_ATTR_prelu TG_ATTR_BYTES(prelu)
#define TG_ATTR_view TG_ATTR_BYTES(view)
#define TG_ATTR_transpose TG_ATTR_BYTES(transpose)
#define TG_ATTR_loss TG_ATTR_BYTES(loss)
#define TG_ATTR_dropout TG_ATTR_BYTES(dropout)
#define TG_ATTR_batch_norm TG_ATTR_BYTES(batch_norm)
#define TG_OP(nm, ar, sets, at) TG_OP_ATTR_##nm = TG_ATTR_##at,
enum tg_op_attr {
#include "../ops/ops.def"
};
#undef TG_OP

/* profile.c: time per op kind while profiling is on (tg_tape_set_profiling), owned by the
 * tape. phase is 1 while a sweep runs, so GEMM time splits into forward and backward. */
typedef struct tg_profile {
    int64_t calls[2][TG_OP_COUNT];
    double secs[2][TG_OP_COUNT];
    int64_t gemm_calls[2];
    double gemm_secs[2];
    int phase;
} tg_profile;
double tg_clock(void); /* seconds, monotonic */
static inline bool tg_profiling(const tg_tape *tp) { return tp->profiling; }
static inline void tg_profile_kernel(tg_tape *tp, int op, double t0)
{
    tp->prof->calls[tp->prof->phase][op]++;
    tp->prof->secs[tp->prof->phase][op] += tg_clock() - t0;
}
/* calls GEMMs ran from t0 to now (two when side by side) */
static inline void tg_profile_gemm(tg_tape *tp, double t0, int calls)
{
    tp->prof->gemm_calls[tp->prof->phase] += calls;
    tp->prof->gemm_secs[tp->prof->phase] += tg_clock() - t0;
}

/* record.c: what every op does. An op wrapper calls tg_op_check on its inputs, then checks
 * its own shape rule, then tg_op_begin to get a node with its output allocated, fills
 * attributes and saved context, and returns tg_op_finish(tp, n), which runs the forward
 * kernel and links the node onto the tape if recording. */
/* 0 if every input is usable: tp non-NULL without an error, inputs non-NULL, one dtype,
 * arena inputs from this tape and generation. Otherwise records the error (unless one is
 * already there) and returns nonzero. tg_op_check (below, inline) is its fast path. */
int tg_op_check_full(tg_tape *tp, int op, int n_in, tg_tensor *const *in);
/* A node for op with its output (dtype of in[0]) allocated; NULL when out of memory. */
tg_node *tg_op_begin(tg_tape *tp, int op, int n_in, tg_tensor *const *in, int ndim,
                     const int64_t *shape);
/* saved context of bytes (zeroed), in the arena; NULL with an error when out of memory. */
void *tg_op_save(tg_tape *tp, tg_node *n, size_t bytes);
tg_tensor *tg_op_finish(tg_tape *tp, tg_node *n);
/* Whether tg_op_finish will record a node with these inputs: grad mode is on and some input
 * requires a gradient. For ops that keep context only a recorded node needs. */
bool tg_op_records(const tg_tape *tp, int n_in, tg_tensor *const *in);
/* Formats the shapes of n tensors as "[2,3] and [4]" for messages. */
const char *tg_shapes_str(char *buf, size_t size, int n, tg_tensor *const *t);

/* ops/custom.c: the user's name for a custom node, and whether it has a backward in ops. */
const char *tg_custom_name(const tg_node *n);
bool tg_custom_has_vjp(const tg_node *n);

/* arena.c */
#define TG_WRITE_AHEAD 1024 /* bytes; best of 1, 2 and 4 KB on a chain of 10^6 scalar ops */
/* The allocators' fast path: room bytes (a multiple of 16) from the current block, or NULL
 * when it has no room left (without calling the hook: tg_arena_alloc_align then takes the
 * next block). Ops take arena memory in order, so it asks for the line a few nodes ahead
 * for writing, so that a long tape does not wait on each new line (a prefetch past the
 * block never faults). */
static inline void *tg_arena_bump(tg_tape *tp, size_t room)
{
    tg_block *b = tp->cur;
    if (!b || (size_t)(b->end - b->top) < room) return NULL;
    unsigned char *p = b->top;
    b->top += room;
#if defined(__GNUC__)
    __builtin_prefetch((const void *)((uintptr_t)p + TG_WRITE_AHEAD), 1);
#endif
    tp->used += room;
    if (tp->used > tp->high) tp->high = tp->used;
    return p;
}
void *tg_arena_alloc(tg_tape *tp, size_t bytes); /* TG_ALIGN-aligned; NULL when out of memory */
/* align 16 or 64. A 64-aligned allocation takes 48 bytes more of the arena, so that it
 * takes the same room whatever the generation's stagger. */
void *tg_arena_alloc_align(tg_tape *tp, size_t bytes, size_t align);
void tg_arena_rewind(tg_tape *tp); /* for generation tp->gen */
void tg_arena_release(tg_tape *tp);
/* Whether p lies in one of tp's blocks. */
bool tg_arena_owns(const tg_tape *tp, const void *p);

/* Whether t may be an op input or a sweep's root on tp: an arena tensor made on tp in its
 * current generation, or a leaf. The first test is the hot path; a pointer that fails it
 * is a leaf only if it says so and is not inside tp's arena, where the bytes under a stale
 * pointer may read as anything (docs/design.md). */
static inline bool tg_tensor_usable(const tg_tape *tp, const tg_tensor *t)
{
    if (t->tape == tp && t->gen == tp->gen && !t->leaf) return true;
    if (!t->leaf || t->tape) return false;
    /* tg_arena_owns's first test, inline: most leaves lie outside the arena's span */
    if ((uintptr_t)t < tp->lo || (uintptr_t)t >= tp->hi) return true;
    return !tg_arena_owns(tp, t);
}

/* tg_op_check_full's checks in the order it makes them; the first that fails hands over
 * to it, which records the error. */
static inline int tg_op_check(tg_tape *tp, int op, int n_in, tg_tensor *const *in)
{
    if (!tp || tp->err) return tg_op_check_full(tp, op, n_in, in);
    for (int i = 0; i < n_in; i++)
        if (!in[i] || !tg_tensor_usable(tp, in[i]) || in[i]->dtype != in[0]->dtype)
            return tg_op_check_full(tp, op, n_in, in);
    return TG_OK;
}

/* tape.c */
/* Records an error on the tape (the first only) and returns code: the public
 * tg_tape_fail, under the short name the library uses. */
#define tg_fail tg_tape_fail
/* The CPUs this process may run on: OpenMP's count, which follows the affinity mask, or
 * the online CPUs without OpenMP; at least 1. */
int tg_cpu_count(void);
/* A new arena tensor of the given dtype and shape, uninitialised. NULL (and an error naming
 * "tg_<who>") when out of memory. */
tg_tensor *tg_arena_tensor(tg_tape *tp, const char *who, tg_dtype dt, int ndim,
                           const int64_t *shape);
/* How a tensor of numel elements (valid) of dtype dt (TG_F32 or TG_F64) is laid out in the
 * arena: its header, then mid bytes (its node, for an op output: a multiple of 8; 0 for
 * others), then its data. Small data follows at once (8-aligned: a chain of scalar ops
 * stays in cache); data of 64 bytes or more starts on a cache line, for vector loops and
 * BLIS, in 48 bytes of slack whatever the stagger. The header is first either way, at an
 * offset that is the same in every generation (arena.c). Returns the room to allocate at
 * 16 bytes, a multiple of 16 and at least 64; *off the data's offset from the header
 * before that alignment. */
static inline size_t tg_tensor_room(tg_dtype dt, int ndim, int64_t numel, size_t mid, size_t *off)
{
    size_t bytes = (size_t)numel * (dt == TG_F64 ? sizeof(double) : sizeof(float));
    size_t head = TG_TENSOR_BYTES(ndim) + mid, room;
    if (bytes < TG_ALIGN) {
        *off = head;
        room = head + bytes;
    } else {
        *off = (head + 15) & ~(size_t)15;
        room = *off + (TG_ALIGN - 16) + bytes;
    }
    return (room + 15) & ~(size_t)15;
}
/* Writes the header of that tensor at p, off tg_tensor_room's; returns it. */
static inline tg_tensor *tg_tensor_place(tg_tape *tp, unsigned char *p, size_t off, tg_dtype dt,
                                         int ndim, const int64_t *shape, int64_t numel)
{
    tg_tensor *t = (tg_tensor *)p;
    unsigned char *d = p + off;
    if ((size_t)numel * (dt == TG_F64 ? sizeof(double) : sizeof(float)) >= TG_ALIGN)
        d += (TG_ALIGN - (uintptr_t)d % TG_ALIGN) % TG_ALIGN;
    *t = (tg_tensor){.data = d,
                     .tape = tp,
                     .numel = numel,
                     .gen = tp->gen,
                     .ndim = (int8_t)ndim,
                     .dtype = (uint8_t)dt};
    if (ndim > 0) t->shape[0] = shape[0]; /* most tensors: no loop set-up */
    for (int i = 1; i < ndim; i++) t->shape[i] = shape[i];
    return t;
}

/* ---- what every op does, inline (record.c has the calls) ----
 * tg_op_begin_k and tg_op_finish_k are tg_op_begin's and tg_op_finish's bodies, for
 * wrappers that know their op at compile time (TG_OP_K): its attribute bytes, arity and
 * forward kernel are then constants, the kernel is a direct call, and the whole op is one
 * function instead of four calls deep (docs/performance.md). */
#if defined(__GNUC__)
#define TG_ALWAYS_INLINE static inline __attribute__((always_inline))
#else
#define TG_ALWAYS_INLINE static inline
#endif
/* The constants of op nm, for the _k functions: id, attribute bytes, forward kernel. */
#define TG_OP_K(nm) TG_OP_##nm, TG_OP_ATTR_##nm, tg_##nm##_fwd

/* record.c: the cold ends of tg_op_begin_k (the piece from another block; NULL with the
 * error when out of memory or the shape is refused) and of tg_op_finish_k (with the
 * self-checks on, whether an op wrote past its attributes; then the error). */
unsigned char *tg_op_begin_next(tg_tape *tp, int op, int ndim, const int64_t *shape, size_t room);
bool tg_op_attr_overrun(tg_tape *tp, const tg_node *n);
#define TG_ATTR_FILL 0xa5

/* A node's bytes: its inputs, then its attributes (tg_node_attr), attr of them (its op's
 * tg_op.attr_bytes); a multiple of 8. With the self-checks on (tp->poison_grads) every node
 * has the whole union, and the bytes past its op's member hold a pattern that tg_op_finish
 * checks, so that an op writing beyond its ops.def column fails instead of overwriting its
 * output's data. */
TG_ALWAYS_INLINE size_t tg_node_bytes(const tg_tape *tp, int n_in, size_t attr)
{
    return sizeof(tg_node) + (size_t)n_in * sizeof(tg_tensor *) +
           (tp->poison_grads ? sizeof(tg_attr) : attr);
}

/* Fills the node at n, tg_node_bytes long, for an output of ndim dimensions. */
TG_ALWAYS_INLINE void tg_node_init(tg_tape *tp, tg_node *n, int op, int n_in, tg_tensor *const *in,
                                   int ndim, size_t attr)
{
    *n = (tg_node){
        .op = (uint16_t)op, .n_in = (uint16_t)n_in, .out_back = (uint16_t)TG_TENSOR_BYTES(ndim)};
    n->in[0] = in[0]; /* most ops have one or two inputs: no loop set-up for them */
    if (n_in > 1) {
        n->in[1] = in[1];
        for (int i = 2; i < n_in; i++) n->in[i] = in[i];
    }
    unsigned char *a = (unsigned char *)tg_node_attr(n);
    if (attr) memset(a, 0, 8); /* stores of constant size: most ops have 8 or 16 bytes */
    if (attr > 8) memset(a + 8, 0, 8);
    if (attr > 16) memset(a + 16, 0, attr - 16);
    if (tp->poison_grads) memset(a + attr, TG_ATTR_FILL, sizeof(tg_attr) - attr);
}

/* tg_op_begin once numel (valid) is known, with the op's attribute bytes: the output's
 * header, then the node, then the output's data, one bump of the current block when it has
 * room. */
TG_ALWAYS_INLINE tg_node *tg_op_begin_k(tg_tape *tp, int op, size_t attr, int n_in,
                                        tg_tensor *const *in, int ndim, const int64_t *shape,
                                        int64_t numel)
{
    tg_dtype dt = (tg_dtype)in[0]->dtype;
    size_t node = tg_node_bytes(tp, n_in, attr);
    size_t off, room = tg_tensor_room(dt, ndim, numel, node, &off);
    unsigned char *p = tg_arena_bump(tp, room);
    if (!p && !(p = tg_op_begin_next(tp, op, ndim, shape, room))) return NULL;
    tg_tensor_place(tp, p, off, dt, ndim, shape, numel);
    tg_node *n = (tg_node *)(void *)(p + TG_TENSOR_BYTES(ndim));
    tg_node_init(tp, n, op, n_in, in, ndim, attr);
    return n;
}

/* tg_op_finish with the node's arity and forward kernel known. */
TG_ALWAYS_INLINE tg_tensor *tg_op_finish_k(tg_tape *tp, tg_node *n, int n_in,
                                           void (*forward)(tg_node *))
{
    bool record = false, leafy = false; /* tg_op_records; a leaf not noted last is read */
    if (tp->grad_mode)
        for (int i = 0; i < n_in; i++)
            record |= n->in[i]->requires_grad,
                leafy |= n->in[i]->leaf && n->in[i] != tp->leaves_last;
    leafy &= record;
    /* Before the forward, which may write leaves (batch_norm's running statistics), so
     * that running out of memory here changes nothing. A failing forward leaves the list
     * longer than the nodes need, harmlessly: the tape holds its error until a reset. */
    if (leafy && tg_leaf_refs_add(tp, n)) return NULL;
    if (tg_profiling(tp)) {
        double t0 = tg_clock();
        forward(n);
        tg_profile_kernel(tp, n->op, t0);
    } else {
        forward(n);
    }
    if (tp->err) return NULL; /* a forward kernel may reject values (e.g. bad labels) */
    if (tp->poison_grads && tg_op_attr_overrun(tp, n)) return NULL;
    tg_tensor *out = tg_node_out(n);
    if (record) {
        n->prev = tp->tail;
        if (tp->tail) tp->tail->next = n;
        else tp->head = n;
        tp->tail = n;
        tp->n_nodes++;
        out->recorded = true;
        out->requires_grad = true;
    }
    return out;
}

/* A one-input op whose output is shaped like its input, with the op's constants
 * (TG_OP_K(tanh)): check, begin, finish. */
TG_ALWAYS_INLINE tg_tensor *tg_op_unary_k(tg_tape *tp, int op, size_t attr,
                                          void (*forward)(tg_node *), tg_tensor *x)
{
    if (tg_op_check(tp, op, 1, &x)) return NULL;
    tg_node *n = tg_op_begin_k(tp, op, attr, 1, &x, x->ndim, x->shape, x->numel);
    return n ? tg_op_finish_k(tp, n, 1, forward) : NULL;
}

/* The same for ops with one scalar attribute c (add_scalar's c, leaky_relu's alpha, ...),
 * refused when not finite: "tg_<op>: <what> <c> is not finite". */
TG_ALWAYS_INLINE tg_tensor *tg_op_scalar_k(tg_tape *tp, int op, size_t attr,
                                           void (*forward)(tg_node *), tg_tensor *x, double c,
                                           const char *what)
{
    if (tg_op_check(tp, op, 1, &x)) return NULL;
    if (!isfinite(c)) {
        tg_fail(tp, TG_EARG, "tg_%s: %s %g is not finite", tg_op_table[op].name, what, c);
        return NULL;
    }
    tg_node *n = tg_op_begin_k(tp, op, attr, 1, &x, x->ndim, x->shape, x->numel);
    if (!n) return NULL;
    tg_node_attr(n)->scalar = c;
    return tg_op_finish_k(tp, n, 1, forward);
}

/* A tensor on tp of the given shape with every element value, recorded nowhere and needing
 * no gradient: the ones, zeros and masks the backwards in ops use as constants. NULL (and
 * an error naming "tg_<who>") when out of memory. */
tg_tensor *tg_const(tg_tape *tp, const char *who, tg_dtype dt, int ndim, const int64_t *shape,
                    double value);

/* tensor.c */
int tg_leaf_grad_alloc(tg_tensor *t); /* allocates t->grad zeroed; TG_ENOMEM */
/* Zeroes t->grad if it is unset, so that it can be read or added to. */
static inline void tg_grad_settle(tg_tensor *t)
{
    if (!t->grad_unset) return;
    /* over the threads for a large gradient (ops/vecmath.h: one memset below TG_PAR_MIN) */
    tg_par_zero(t->grad->data, t->numel, tg_dtype_size((tg_dtype)t->dtype));
    t->grad_unset = false;
}
/* For a backward kernel about to accumulate into t->grad: 0 if the gradient is unset (write
 * it: GEMM beta = 0, dx = v), 1 if it holds values (add: beta = 1, dx += v). Either way the
 * gradient counts as written afterwards, so call it once, right before the write. Only ops
 * marked sets = 1 in ops.def may leave an input unset until their kernel runs. */
static inline int tg_grad_beta(tg_tensor *t)
{
    int beta = t->grad_unset ? 0 : 1;
    t->grad_unset = false;
    return beta;
}
/* The element count of a shape, or -1 if it is not a valid tensor shape: ndim outside
 * 0..TG_MAX_DIMS, shape NULL with ndim > 0, a negative size, or non-zero sizes whose
 * product exceeds TG_MAX_NUMEL. Every partial product of a valid shape's sizes is then at
 * most TG_MAX_NUMEL too. */
int64_t tg_shape_numel(int ndim, const int64_t *shape);
/* Records TG_ESHAPE for a shape tg_shape_numel refuses, saying why: "tg_<who>: shape [..]
 * has more than 281474976710656 elements (TG_MAX_NUMEL)". Returns TG_ESHAPE. */
int tg_shape_fail(tg_tape *tp, const char *who, int ndim, const int64_t *shape);
/* Writes "[2,3]" of a raw shape into buf. */
char *tg_shape_fmt(int ndim, const int64_t *shape, char *buf, size_t size);

static inline float *tg_f32(const tg_tensor *t) { return (float *)t->data; }
static inline double *tg_f64(const tg_tensor *t) { return (double *)t->data; }

#endif
