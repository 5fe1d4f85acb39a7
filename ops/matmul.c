/* ops/matmul.c: matrix products on BLIS (the only file that includes blis.h). Transposed
 * operands are read through BLIS's transposition flags, never copied. */
#include <blis.h>

#include "internal.h"

#ifdef _OPENMP
#include <omp.h>
#endif

const char *tg_blis_kernels(void) { return bli_arch_string(bli_arch_query_id()); }

/* Bounded by the CPUs: BLIS hands any count to OpenMP. More threads than CPUs made a step
 * of GEMMs hundreds of times slower (4 threads on 2 CPUs: 377 against 0.5 ms), 32 could
 * not run 30 steps in 60 s, and 100000 crashed inside libgomp (docs/design.md). */
int tg_set_num_threads(int n)
{
    if (n < 1) return TG_EARG;
    int cpus = tg_cpu_count();
    if (n > cpus) n = cpus;
    bli_thread_set_num_threads((dim_t)n);
    return n;
}

int tg_get_num_threads(void)
{
    dim_t n = bli_thread_get_num_threads();
    return n > 0 ? (int)n : 1;
}

/* BLIS has two paths to a GEMM: the packed one (operands copied into blocks its
 * micro-kernel streams) and, for problems with a small dimension, the "sup" one, which
 * reads them in place. bli_sgemm picks sup whenever a dimension is below its thresholds
 * (every GEMM of a batch-128 MLP). In Debian's BLIS 0.9.0 (zen3 kernels) the packed path
 * is the faster for two storage cases, measured with the two alternating 30 times:
 *  - A as stored times B transposed (an input gradient dy·wᵀ) with m, n >= 64: sup is up
 *    to 4x slower for small inner sizes (128x256 with inner size 10: 42 against 14 us) and
 *    still 3-12% slower at 128;
 *  - A transposed times B as stored (a weight gradient xᵀ·dy) with m, n >= 256: sup is
 *    2-17% slower (784x256 with inner size 128, the first layer's), 23-25% at 512x512;
 *    for a narrow output (n = 10) or 300x100 it is sup that is 10-45% faster.
 * f64 shows no such gaps. Those cases go to the packed path; every other choice is BLIS's
 * own. bench: gemm.t<T>.path_sup_over_packed measures the first case. */
static bool packed_path(bool ta, bool tb, int64_t m, int64_t n, int64_t k)
{
    if (!ta && tb) return k > 1 && m >= 64 && n >= 64;
    return ta && !tb && m >= 256 && n >= 256;
}

/* One GEMM, C := beta C + A·B with op flags, row-major operands as stored: A is
 * (ta ? k×m : m×k), B is (tb ? n×k : k×n), C is m×n. */
typedef struct gemm_args {
    bool ta, tb;
    int64_t m, n, k;
    const void *a, *b;
    double beta;
    void *c;
} gemm_args;

/* Runs g on BLIS's global thread count, or on one thread when one_thread is set. A rntm_t
 * from bli_rntm_init_from_global has the sup path off (BLIS 0.9.0), unlike a call without
 * one: it is switched back on for every case that bli_sgemm would send there, so a GEMM
 * takes the same path, with the same bits, on one thread or many. */
static void gemm_f32(const gemm_args *g, bool one_thread)
{
    float one = 1.0f, beta = (float)g->beta;
    rntm_t rntm, *r = NULL;
    bool packed = packed_path(g->ta, g->tb, g->m, g->n, g->k);
    if (packed || one_thread) {
        bli_rntm_init_from_global(&rntm); /* the thread count of tg_set_num_threads */
        if (one_thread) bli_rntm_set_num_threads(1, &rntm);
        if (packed) bli_rntm_disable_l3_sup(&rntm);
        else bli_rntm_enable_l3_sup(&rntm);
        r = &rntm;
    }
    bli_sgemm_ex(g->ta ? BLIS_TRANSPOSE : BLIS_NO_TRANSPOSE,
                 g->tb ? BLIS_TRANSPOSE : BLIS_NO_TRANSPOSE, (dim_t)g->m, (dim_t)g->n,
                 (dim_t)g->k, &one, (float *)g->a, (inc_t)(g->ta ? g->m : g->k), 1,
                 (float *)g->b, (inc_t)(g->tb ? g->k : g->n), 1, &beta, g->c, (inc_t)g->n, 1,
                 NULL, r);
}

static void gemm_f64(const gemm_args *g, bool one_thread)
{
    double one = 1.0, beta = g->beta;
    rntm_t rntm, *r = NULL;
    if (one_thread) {
        bli_rntm_init_from_global(&rntm);
        bli_rntm_set_num_threads(1, &rntm);
        bli_rntm_enable_l3_sup(&rntm);
        r = &rntm;
    }
    bli_dgemm_ex(g->ta ? BLIS_TRANSPOSE : BLIS_NO_TRANSPOSE,
                 g->tb ? BLIS_TRANSPOSE : BLIS_NO_TRANSPOSE, (dim_t)g->m, (dim_t)g->n,
                 (dim_t)g->k, &one, (double *)g->a, (inc_t)(g->ta ? g->m : g->k), 1,
                 (double *)g->b, (inc_t)(g->tb ? g->k : g->n), 1, &beta, g->c, (inc_t)g->n,
                 1, NULL, r);
}

/* BLIS handles empty products itself, but some versions read alpha/beta only when all
 * sizes are positive: with k == 0 the output must still be written (zeros). */
static void gemm_run(tg_dtype dt, const gemm_args *g, bool one_thread)
{
    if (g->m == 0 || g->n == 0) return;
    if (g->k == 0) {
        if (g->beta == 0.0) memset(g->c, 0, (size_t)(g->m * g->n) * tg_dtype_size(dt));
        return;
    }
    if (dt == TG_F32) gemm_f32(g, one_thread);
    else gemm_f64(g, one_thread);
}

/* g on the global thread count, timed for the profile of tp, the tape of the node being
 * run. */
static void gemm_timed(tg_tape *tp, tg_dtype dt, const gemm_args *g)
{
    double t0 = tg_profiling(tp) ? tg_clock() : 0;
    gemm_run(dt, g, false);
    if (tg_profiling(tp)) tg_profile_gemm(tp, t0, 1);
}

static void gemm(tg_tape *tp, tg_dtype dt, bool ta, bool tb, int64_t m, int64_t n, int64_t k,
                 const void *a, const void *b, double beta, void *c)
{
    gemm_args g = {ta, tb, m, n, k, a, b, beta, c};
    gemm_timed(tp, dt, &g);
}

/* The two gradient GEMMs of a backward (g0: the input's, g1: the weight's; either may be
 * NULL). At exactly two threads, when both are large enough and write different buffers,
 * they run side by side, one BLIS thread each, instead of one after the other on both:
 * in the MLP step (docs/performance.md) a 256-wide layer's two took 189 us side by side
 * against 111 + 100 us in turn. Each C element is computed the same way on any thread count (BLIS splits
 * a GEMM's output, never its inner dimension), so the results do not change. With more
 * threads each GEMM keeps them all (a nested OpenMP region would get one). */
#define GEMM_PAIR_MIN 65536 /* m·n·k of each GEMM; below, waking a thread costs more */

/* Two threads to run one-thread GEMMs on: the thread count is exactly 2 and no OpenMP
 * region is running (inside one, a nested region gets a single thread). */
static bool two_threads(void)
{
#ifdef _OPENMP
    return tg_get_num_threads() == 2 && !omp_in_parallel();
#else
    return false;
#endif
}
/* m·n·k in double: m·n and k are at most TG_MAX_NUMEL each, their product is not */
static double gemm_size(const gemm_args *g) { return (double)(g->m * g->n) * (double)g->k; }

static void gemm_pair(tg_tape *tp, tg_dtype dt, const gemm_args *g0, const gemm_args *g1)
{
    bool pair = g0 && g1 && g0->c != g1->c && two_threads() && gemm_size(g0) >= GEMM_PAIR_MIN &&
                gemm_size(g1) >= GEMM_PAIR_MIN;
    if (!pair) {
        if (g0) gemm_timed(tp, dt, g0);
        if (g1) gemm_timed(tp, dt, g1);
        return;
    }
    double t0 = tg_profiling(tp) ? tg_clock() : 0;
#ifdef _OPENMP
#pragma omp parallel num_threads(2)
    gemm_run(dt, omp_get_thread_num() == 0 ? g0 : g1, true);
#endif
    if (tg_profiling(tp)) tg_profile_gemm(tp, t0, 2);
}

/* ---- matmul: y = a · b, batched over a leading dimension ----
 * Saved in attributes: i[0]=B, i[1]=m, i[2]=k, i[3]=n; f[0] = 1 if a is batched,
 * f[1] = 1 if b is batched. A batched a with a shared b is one GEMM of B·m rows. */
static void mm_dims(const tg_node *n, int64_t *B, int64_t *m, int64_t *k, int64_t *nn,
                    bool *ab, bool *bb)
{
    *B = n->i[0], *m = n->i[1], *k = n->i[2], *nn = n->i[3];
    *ab = n->f[0] != 0, *bb = n->f[1] != 0;
}

void tg_matmul_fwd(tg_node *n)
{
    tg_tape *tp = n->out->tape;
    int64_t B, m, k, nn;
    bool ab, bb;
    mm_dims(n, &B, &m, &k, &nn, &ab, &bb);
    tg_dtype dt = (tg_dtype)n->out->dtype;
    size_t es = tg_dtype_size(dt);
    const char *a = n->in[0]->data, *b = n->in[1]->data;
    char *y = n->out->data;
    if (n->out->numel == 0) return; /* else B <= numel: the loop below is bounded */
    if (!bb) { /* shared b: fold the batch into the rows */
        gemm(tp, dt, false, false, (ab ? B : 1) * m, nn, k, a, b, 0.0, y);
        return;
    }
    for (int64_t t = 0; t < B; t++)
        gemm(tp, dt, false, false, m, nn, k, a + (ab ? (size_t)(t * m * k) * es : 0),
             b + (size_t)(t * k * nn) * es, 0.0, y + (size_t)(t * m * nn) * es);
}

void tg_matmul_bwd(tg_node *n)
{
    tg_tape *tp = n->out->tape;
    int64_t B, m, k, nn;
    bool ab, bb;
    mm_dims(n, &B, &m, &k, &nn, &ab, &bb);
    tg_tensor *A = n->in[0], *Bt = n->in[1];
    tg_dtype dt = (tg_dtype)n->out->dtype;
    size_t es = tg_dtype_size(dt);
    const char *dy = n->out->grad->data;
    /* beta 0 writes a gradient nothing has reached yet (tg_grad_beta), 1 adds to it. Each
     * beta is taken right before the first write, so matmul(a, a) adds its second part. */
    if (n->out->numel == 0) { /* dy is empty: the gradients get zeros, B may be 2^40 */
        if (A->requires_grad && !tg_grad_beta(A)) memset(A->grad->data, 0, (size_t)A->numel * es);
        if (Bt->requires_grad && !tg_grad_beta(Bt))
            memset(Bt->grad->data, 0, (size_t)Bt->numel * es);
        return;
    }
    if (!bb) {
        int64_t rows = (ab ? B : 1) * m;
        gemm_args ga, gb; /* da += dy · bᵀ;  db += aᵀ · dy, summed over the batch by the GEMM */
        if (A->requires_grad)
            ga = (gemm_args){false, true, rows, k, nn, dy, Bt->data, tg_grad_beta(A), A->grad->data};
        if (Bt->requires_grad)
            gb = (gemm_args){true, false, k, nn, rows, A->data, dy, tg_grad_beta(Bt), Bt->grad->data};
        gemm_pair(tp, dt, A->requires_grad ? &ga : NULL, Bt->requires_grad ? &gb : NULL);
        return;
    }
    double beta_a = 1, beta_b = 1; /* a shared a (not batched) is added to after t = 0 */
    for (int64_t t = 0; t < B; t++) {
        size_t oa = ab ? (size_t)(t * m * k) * es : 0, ob = (size_t)(t * k * nn) * es;
        const char *dyt = dy + (size_t)(t * m * nn) * es;
        if (A->requires_grad) {
            if (t == 0) beta_a = tg_grad_beta(A);
            gemm(tp, dt, false, true, m, k, nn, dyt, (char *)Bt->data + ob, ab || t == 0 ? beta_a : 1,
                 (char *)A->grad->data + oa);
        }
        if (Bt->requires_grad) {
            if (t == 0) beta_b = tg_grad_beta(Bt);
            gemm(tp, dt, true, false, k, nn, m, (char *)A->data + oa, dyt, beta_b,
                 (char *)Bt->grad->data + ob);
        }
    }
}

tg_tensor *tg_matmul(tg_tape *tp, tg_tensor *a, tg_tensor *b)
{
    tg_tensor *in[2] = {a, b};
    char buf[256];
    if (tg_op_check(tp, TG_OP_matmul, 2, in)) return NULL;
    if (a->ndim < 2 || a->ndim > 3 || b->ndim < 2 || b->ndim > 3) {
        tg_fail(tp, TG_ESHAPE, "tg_matmul: %s: operands must be 2-D or 3-D (batched)",
                tg_shapes_str(buf, sizeof buf, 2, in));
        return NULL;
    }
    bool ab = a->ndim == 3, bb = b->ndim == 3;
    int64_t m = a->shape[a->ndim - 2], k = a->shape[a->ndim - 1];
    int64_t kb = b->shape[b->ndim - 2], nn = b->shape[b->ndim - 1];
    int64_t B = ab ? a->shape[0] : bb ? b->shape[0] : 1;
    if (k != kb) {
        char sa[128], sb[128];
        tg_fail(tp, TG_ESHAPE, "tg_matmul: %s x %s: inner dimensions %lld and %lld differ",
                tg_shape_str(a, sa, sizeof sa), tg_shape_str(b, sb, sizeof sb), (long long)k,
                (long long)kb);
        return NULL;
    }
    if (ab && bb && a->shape[0] != b->shape[0]) {
        char sa[128], sb[128];
        tg_fail(tp, TG_ESHAPE, "tg_matmul: %s x %s: batch sizes %lld and %lld differ",
                tg_shape_str(a, sa, sizeof sa), tg_shape_str(b, sb, sizeof sb),
                (long long)a->shape[0], (long long)b->shape[0]);
        return NULL;
    }
    int64_t shape3[3] = {B, m, nn};
    bool batched = ab || bb;
    tg_node *n = tg_op_begin(tp, TG_OP_matmul, 2, in, batched ? 3 : 2, batched ? shape3 : shape3 + 1);
    if (!n) return NULL;
    n->i[0] = B, n->i[1] = m, n->i[2] = k, n->i[3] = nn;
    n->f[0] = ab, n->f[1] = bb;
    return tg_op_finish(tp, n);
}

/* ---- linear: y = x · w + b, x [..., k] (leading dimensions folded into rows) ----
 * The bias is copied into every row of y, then one GEMM adds x · w (beta = 1). */
#define LINEAR_KERNELS(T, SFX)                                                              \
    static void linear_bias_##SFX(tg_node *n, int64_t rows, int64_t cols)                  \
    {                                                                                       \
        const T *b = n->in[2]->data;                                                        \
        T *y = n->out->data;                                                                \
        for (int64_t r = 0; r < rows; r++) memcpy(y + r * cols, b, (size_t)cols * sizeof(T)); \
    }                                                                                       \
    static void linear_dbias_##SFX(tg_node *n, int64_t rows, int64_t cols, bool add)       \
    {                                                                                       \
        const T *dy = n->out->grad->data;                                                   \
        T *db = n->in[2]->grad->data;                                                       \
        if (!add) memset(db, 0, (size_t)cols * sizeof(T));                                  \
        if (cols == 0) return; /* rows may be 2^48 */                                       \
        for (int64_t r = 0; r < rows; r++)                                                  \
            for (int64_t c = 0; c < cols; c++) db[c] += dy[r * cols + c];                   \
    }
LINEAR_KERNELS(float, f32)
LINEAR_KERNELS(double, f64)

void tg_linear_fwd(tg_node *n)
{
    tg_tape *tp = n->out->tape;
    int64_t rows = n->i[0], k = n->i[1], cols = n->i[2];
    tg_dtype dt = (tg_dtype)n->out->dtype;
    if (n->out->numel == 0) return; /* rows may be 2^48 with cols = 0 */
    if (dt == TG_F32) linear_bias_f32(n, rows, cols);
    else linear_bias_f64(n, rows, cols);
    gemm(tp, dt, false, false, rows, cols, k, n->in[0]->data, n->in[1]->data, 1.0, n->out->data);
}

void tg_linear_bwd(tg_node *n)
{
    tg_tape *tp = n->out->tape;
    int64_t rows = n->i[0], k = n->i[1], cols = n->i[2];
    tg_tensor *x = n->in[0], *w = n->in[1], *b = n->in[2];
    tg_dtype dt = (tg_dtype)n->out->dtype;
    const void *dy = n->out->grad->data;
    /* beta 0 writes a gradient nothing has reached yet (tg_grad_beta), 1 adds to it */
    gemm_args gx, gw;
    if (x->requires_grad)
        gx = (gemm_args){false, true, rows, k, cols, dy, w->data, tg_grad_beta(x), x->grad->data};
    if (w->requires_grad)
        gw = (gemm_args){true, false, k, cols, rows, x->data, dy, tg_grad_beta(w), w->grad->data};
    gemm_pair(tp, dt, x->requires_grad ? &gx : NULL, w->requires_grad ? &gw : NULL);
    if (b->requires_grad) {
        bool add = tg_grad_beta(b);
        if (dt == TG_F32) linear_dbias_f32(n, rows, cols, add);
        else linear_dbias_f64(n, rows, cols, add);
    }
}

/* The node of linear or linear_act (op) with its output and i[0..2] = rows, k, cols, after
 * checking the inputs and their shapes (messages name tg_<op>); NULL on failure. */
static tg_node *linear_node(tg_tape *tp, int op, tg_tensor *const *in)
{
    tg_tensor *x = in[0], *w = in[1], *b = in[2];
    char buf[384];
    if (tg_op_check(tp, op, 3, in)) return NULL;
    if (x->ndim < 1 || w->ndim != 2 || b->ndim != 1 || x->shape[x->ndim - 1] != w->shape[0] ||
        b->shape[0] != w->shape[1]) {
        tg_fail(tp, TG_ESHAPE, "tg_%s: %s: want x [...,k], w [k,n], b [n]",
                tg_op_table[op].name, tg_shapes_str(buf, sizeof buf, 3, in));
        return NULL;
    }
    int64_t k = w->shape[0], cols = w->shape[1], rows = k ? x->numel / k : 0;
    if (k == 0) rows = tg_shape_numel(x->ndim - 1, x->shape);
    int64_t shape[TG_MAX_DIMS];
    for (int i = 0; i < x->ndim - 1; i++) shape[i] = x->shape[i];
    shape[x->ndim - 1] = cols;
    tg_node *n = tg_op_begin(tp, op, 3, in, x->ndim, shape);
    if (!n) return NULL;
    n->i[0] = rows, n->i[1] = k, n->i[2] = cols;
    return n;
}

tg_tensor *tg_linear(tg_tape *tp, tg_tensor *x, tg_tensor *w, tg_tensor *b)
{
    tg_tensor *in[3] = {x, w, b};
    tg_node *n = linear_node(tp, TG_OP_linear, in);
    return n ? tg_op_finish(tp, n) : NULL;
}

/* ---- linear_act: y = act(x·w + b) as one node ----
 * The forward writes x·w with beta = 0, then adds the bias and applies the activation in
 * one pass over y. The backward makes dz = dy ⊙ act'(y) and the bias gradient in one pass,
 * then the two GEMMs read dz. Every supported activation's derivative follows from its
 * output (leaky_relu needs alpha >= 0 for that), so the pre-activation is never stored.
 * Attributes: i[0] rows, i[1] k, i[2] cols, i[3] the tg_act; f[0] alpha. saved: dz, rows x
 * cols, allocated when the node is recorded.
 * Large passes are split over the BLIS threads by rows, as BLIS splits this GEMM's output
 * (measured after a 2-thread 128x256 GEMM: a row split of the forward pass 5.6 us, a column
 * split 10.4 us, one thread 8.8 us). The bias gradient, a sum over rows, is then split by
 * columns (at 16 elements, a cache line of f32) and summed in row order, so every thread
 * count gives the same bits. */
#define LINEAR_ACT_PARALLEL_MIN 32768 /* elements of y; below, one thread */

static int act_threads(int64_t rows, int64_t cols)
{
    int nt = tg_get_num_threads();
    return nt > 1 && rows * cols >= LINEAR_ACT_PARALLEL_MIN && rows >= 2 * nt ? nt : 1;
}

/* FWD(v) is the activation of v = (x·w)[r][c] + b[c]; DZ(g, y) the gradient at the
 * pre-activation from dy = g and the output y. Written once per activation and dtype, for
 * rows [r0, r1), each loop flat over a row so it vectorises. */
#define LINEAR_ACT_KERNELS(NAME, T, SFX, FWD, DZ)                                          \
    TG_VEC_CLONES                                                                           \
    static void la_fwd_##NAME##_##SFX(T *restrict y, const T *restrict b, T a, int64_t r0,  \
                                      int64_t r1, int64_t cols)                             \
    {                                                                                       \
        (void)a;                                                                            \
        for (int64_t r = r0; r < r1; r++) {                                                 \
            T *restrict yr = y + r * cols;                                                  \
            for (int64_t c = 0; c < cols; c++) {                                            \
                const T v = yr[c] + b[c];                                                   \
                yr[c] = FWD;                                                                \
            }                                                                               \
        }                                                                                   \
    }                                                                                       \
    TG_VEC_CLONES                                                                           \
    static void la_bwd_##NAME##_##SFX(T *restrict dz, const T *restrict y,                  \
                                      const T *restrict dy, T a, int64_t r0, int64_t r1,    \
                                      int64_t cols)                                         \
    {                                                                                       \
        (void)a;                                                                            \
        for (int64_t i = r0 * cols, e = r1 * cols; i < e; i++) {                            \
            const T g = dy[i], yv = y[i];                                                   \
            (void)yv;                                                                       \
            dz[i] = DZ;                                                                     \
        }                                                                                   \
    }
#define LINEAR_ACT(NAME, F32, D32, F64, D64)                                               \
    LINEAR_ACT_KERNELS(NAME, float, f32, F32, D32)                                          \
    LINEAR_ACT_KERNELS(NAME, double, f64, F64, D64)
/* the forwards and derivatives of the standalone activation ops (ops/activation.c) */
LINEAR_ACT(identity, v, g, v, g)
LINEAR_ACT(relu, v < 0.0f ? 0.0f : v, yv > 0.0f ? g : 0.0f, v < 0.0 ? 0.0 : v, yv > 0.0 ? g : 0.0)
LINEAR_ACT(leaky_relu, posf_(v) + a * negf_(v), g * (yv > 0.0f ? 1.0f : a),
           pos_(v) + a * neg_(v), g * (yv > 0.0 ? 1.0 : a))
LINEAR_ACT(tanh, tanhf(v), g * (1.0f - yv * yv), tanh(v), g * (1.0 - yv * yv))
LINEAR_ACT(sigmoid, sigmoidf_(v), g * yv * (1.0f - yv), sigmoid_(v), g * yv * (1.0 - yv))

/* db[c0..c1) := (db_set ? db : 0) + the column sums of dz [rows, cols], in row order. */
#define LINEAR_ACT_DB(T, SFX)                                                               \
    TG_VEC_CLONES                                                                           \
    static void la_db_##SFX(T *restrict db, const T *restrict dz, int64_t rows,             \
                            int64_t cols, int64_t c0, int64_t c1, bool db_set)              \
    {                                                                                       \
        for (int64_t r = 0; r < rows; r++) {                                                \
            const T *restrict zr = dz + r * cols;                                           \
            if (r == 0 && !db_set)                                                          \
                for (int64_t c = c0; c < c1; c++) db[c] = zr[c];                            \
            else                                                                            \
                for (int64_t c = c0; c < c1; c++) db[c] += zr[c];                           \
        }                                                                                   \
    }
LINEAR_ACT_DB(float, f32)
LINEAR_ACT_DB(double, f64)

/* One thread's rows [r0, r1) of the forward pass, or of dz in the backward. */
#define LINEAR_ACT_ROWS(T, SFX)                                                             \
    static void la_rows_##SFX(tg_node *n, int pass, int64_t r0, int64_t r1)                 \
    {                                                                                       \
        int64_t cols = n->i[2];                                                             \
        T *y = n->out->data, a = (T)n->f[0];                                                \
        const T *b = n->in[2]->data, *dy = pass ? n->out->grad->data : NULL;                \
        T *dz = n->saved;                                                                   \
        switch (n->i[3] * 2 + pass) {                                                       \
        case TG_ACT_RELU * 2: la_fwd_relu_##SFX(y, b, a, r0, r1, cols); break;             \
        case TG_ACT_RELU * 2 + 1: la_bwd_relu_##SFX(dz, y, dy, a, r0, r1, cols); break;    \
        case TG_ACT_LEAKY_RELU * 2: la_fwd_leaky_relu_##SFX(y, b, a, r0, r1, cols); break; \
        case TG_ACT_LEAKY_RELU * 2 + 1:                                                     \
            la_bwd_leaky_relu_##SFX(dz, y, dy, a, r0, r1, cols);                            \
            break;                                                                          \
        case TG_ACT_TANH * 2: la_fwd_tanh_##SFX(y, b, a, r0, r1, cols); break;             \
        case TG_ACT_TANH * 2 + 1: la_bwd_tanh_##SFX(dz, y, dy, a, r0, r1, cols); break;    \
        case TG_ACT_SIGMOID * 2: la_fwd_sigmoid_##SFX(y, b, a, r0, r1, cols); break;       \
        case TG_ACT_SIGMOID * 2 + 1: la_bwd_sigmoid_##SFX(dz, y, dy, a, r0, r1, cols); break; \
        case TG_ACT_IDENTITY * 2: la_fwd_identity_##SFX(y, b, a, r0, r1, cols); break;     \
        default: la_bwd_identity_##SFX(dz, y, dy, a, r0, r1, cols); break;                 \
        }                                                                                   \
    }
LINEAR_ACT_ROWS(float, f32)
LINEAR_ACT_ROWS(double, f64)

/* Runs pass (0 forward, 1 backward) over rows, split over the threads when large; the
 * backward then sums the bias gradient (if b needs one) split by columns. */
static void la_pass(tg_node *n, int pass, bool db_set)
{
    int64_t rows = n->i[0], cols = n->i[2];
    int nt = act_threads(rows, cols);
    bool f32 = n->out->dtype == TG_F32, db = pass && n->in[2]->requires_grad;
#ifdef _OPENMP
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        int t = omp_get_thread_num(), tn = omp_get_num_threads();
#else
    {
        int t = 0, tn = 1;
        (void)nt;
#endif
        int64_t r0 = rows * t / tn, r1 = rows * (t + 1) / tn;
        if (f32) la_rows_f32(n, pass, r0, r1);
        else la_rows_f64(n, pass, r0, r1);
        if (db) {
#ifdef _OPENMP
#pragma omp barrier
#endif
            int64_t c0 = t == 0 ? 0 : cols * t / tn / 16 * 16;
            int64_t c1 = t + 1 == tn ? cols : cols * (t + 1) / tn / 16 * 16;
            if (c0 < c1 && f32)
                la_db_f32(n->in[2]->grad->data, n->saved, rows, cols, c0, c1, db_set);
            else if (c0 < c1)
                la_db_f64(n->in[2]->grad->data, n->saved, rows, cols, c0, c1, db_set);
        }
    }
}

/* At exactly two threads and from LINEAR_ACT_SPLIT_MIN multiply-adds, the forward runs as
 * two halves of the rows side by side, each thread doing its GEMM on one BLIS thread and
 * then its bias and activation pass on the rows it has just written, with no barrier in
 * between (the same bits: BLIS computes each output element the same way whatever the
 * split). In the bench MLP's step that took 0.6-4.0% off the 2-thread step (six runs,
 * alternating every 20 steps) against BLIS's 2-thread GEMM followed by the split pass. */
#define LINEAR_ACT_SPLIT_MIN (1 << 20)

void tg_linear_act_fwd(tg_node *n)
{
    tg_tape *tp = n->out->tape;
    int64_t rows = n->i[0], k = n->i[1], cols = n->i[2];
    tg_dtype dt = (tg_dtype)n->out->dtype;
#ifdef _OPENMP
    if (rows >= 2 * 16 && k > 0 && (double)(rows * cols) * (double)k >= LINEAR_ACT_SPLIT_MIN &&
        two_threads()) {
        size_t es = tg_dtype_size(dt);
        double t0 = tg_profiling(tp) ? tg_clock() : 0;
#pragma omp parallel num_threads(2)
        {
            int t = omp_get_thread_num();
            int64_t r0 = t ? rows / 2 : 0, r1 = t ? rows : rows / 2;
            gemm_args g = {false, false, r1 - r0, cols, k,
                           (const char *)n->in[0]->data + (size_t)(r0 * k) * es,
                           n->in[1]->data, 0.0, (char *)n->out->data + (size_t)(r0 * cols) * es};
            gemm_run(dt, &g, true);
            /* the profile's GEMM time is thread 0's half; only thread 0 writes it */
            if (t == 0 && tg_profiling(tp)) tg_profile_gemm(tp, t0, 1);
            if (dt == TG_F32) la_rows_f32(n, 0, r0, r1);
            else la_rows_f64(n, 0, r0, r1);
        }
        return;
    }
#endif
    gemm(tp, dt, false, false, rows, cols, k, n->in[0]->data, n->in[1]->data, 0.0, n->out->data);
    if (rows > 0 && cols > 0) la_pass(n, 0, false);
}

void tg_linear_act_bwd(tg_node *n)
{
    tg_tape *tp = n->out->tape;
    int64_t rows = n->i[0], k = n->i[1], cols = n->i[2];
    tg_tensor *x = n->in[0], *w = n->in[1], *b = n->in[2];
    tg_dtype dt = (tg_dtype)n->out->dtype;
    bool db_set = b->requires_grad && tg_grad_beta(b); /* db holds values: add to them */
    if (b->requires_grad && rows == 0 && !db_set) /* no rows: db is a sum of nothing */
        memset(b->grad->data, 0, (size_t)cols * tg_dtype_size(dt));
    if (rows > 0 && cols > 0) la_pass(n, 1, db_set);
    gemm_args gx, gw; /* dx = dz · wᵀ, dw = xᵀ · dz */
    if (x->requires_grad)
        gx = (gemm_args){false, true, rows, k, cols, n->saved, w->data, tg_grad_beta(x), x->grad->data};
    if (w->requires_grad)
        gw = (gemm_args){true, false, k, cols, rows, x->data, n->saved, tg_grad_beta(w), w->grad->data};
    gemm_pair(tp, dt, x->requires_grad ? &gx : NULL, w->requires_grad ? &gw : NULL);
}

tg_tensor *tg_linear_act(tg_tape *tp, tg_tensor *x, tg_tensor *w, tg_tensor *b, tg_act act,
                         double alpha)
{
    tg_tensor *in[3] = {x, w, b};
    if (tp && !tp->err && (unsigned)act > TG_ACT_SIGMOID) {
        tg_fail(tp, TG_EARG, "tg_linear_act: unknown activation %d", (int)act);
        return NULL;
    }
    if (tp && !tp->err && act == TG_ACT_LEAKY_RELU && !(alpha >= 0 && isfinite(alpha))) {
        tg_fail(tp, TG_EARG,
                "tg_linear_act: leaky_relu alpha %g must be finite and >= 0 (its gradient is "
                "taken from the output)", alpha);
        return NULL;
    }
    tg_node *n = linear_node(tp, TG_OP_linear_act, in);
    if (!n) return NULL;
    n->i[3] = act;
    n->f[0] = act == TG_ACT_LEAKY_RELU ? alpha : 0;
    if (tg_op_records(tp, 3, in)) { /* dz for the backward, written there: not zeroed */
        size_t bytes = (size_t)(n->i[0] * n->i[2]) * tg_dtype_size((tg_dtype)x->dtype);
        if (!(n->saved = tg_arena_alloc(tp, bytes ? bytes : 1))) {
            tg_fail(tp, TG_ENOMEM, "tg_linear_act: out of memory for dz (%zu bytes)", bytes);
            return NULL;
        }
    }
    return tg_op_finish(tp, n);
}
