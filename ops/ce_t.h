/* ops/ce_t.h: the kernels of cross_entropy and cross_entropy_soft for the element type T.
 * ops/loss.c includes this file twice: for float (FN(name) = name_f32, float libm: M(exp) =
 * expf) and for double (name_f64, exp). No include guard, on purpose. */

/* ---- cross-entropy from logits z [N,C]: fused log_softmax + NLL, mean over the N rows.
 * Per row, with m the row's maximum and ls = ln Σ e^(z_j - m), log softmax_j is
 * (z_j - m) - ls: no exponent overflows, and z_j - m is formed first so that logits near
 * ±1000 lose no digits to the sum m + ls. Hard labels k: L = 1/N Σ_r ((m - z_k) + ls).
 * Soft targets q: L = -1/N Σ_r Σ_j q_rj ((z_rj - m) - ls).
 * Saved: the label indices [N] (int64, checked by the forward, so a label changed after the
 * forward cannot send the backward out of bounds), then in the dtype the softmax [N,C] and
 * m and ls [N] each, so the backward does no exponentials: dz = (softmax - onehot) / N, or
 * (softmax Σ_j q_rj - q) / N for soft targets (Σ q need not be 1); dq = -log softmax / N.
 * The loss is summed in double, in ops/vecmath.h's fixed parts of rows from TG_PAR_MIN
 * logits on, over the threads; the backward runs by rows. ---- */
/* Rows [r0, r1) of the forward: their softmax, m and ls saved, their labels checked, and
 * their loss terms summed in double in row order. Returns the sum; *bad is the first row
 * whose label is not a class index (the scan stops there), or -1. */
static double FN(ce_rows)(tg_node *n, int64_t r0, int64_t r1, int64_t *bad)
{
    const int64_t N = n->in[0]->shape[0], C = n->in[0]->shape[1];
    const bool soft = n->op == TG_OP_cross_entropy_soft;
    const T *restrict z = n->in[0]->data, *restrict t = n->in[1]->data;
    int64_t *restrict idx = n->saved;
    T *restrict prob = (T *)(idx + N), *restrict mx = prob + N * C, *restrict lsv = mx + N;
    double total = 0;
    *bad = -1;
    for (int64_t r = r0; r < r1; r++) {
        const T *restrict zr = z + r * C;
        T *restrict pr = prob + r * C;
        T m = zr[0], s = 0;
        for (int64_t j = 1; j < C; j++) m = zr[j] > m ? zr[j] : m;
        for (int64_t j = 0; j < C; j++) s += (pr[j] = M(exp)(zr[j] - m));
        const T inv = 1 / s, ls = M(log)(s);
        for (int64_t j = 0; j < C; j++) pr[j] *= inv;
        mx[r] = m, lsv[r] = ls;
        if (soft) {
            const T *restrict qr = t + r * C;
            double row = 0;
            for (int64_t j = 0; j < C; j++)
                row += (double)qr[j] * ((double)(zr[j] - m) - (double)ls);
            total -= row;
            continue;
        }
        /* range first: converting a NaN or huge value to an integer is undefined */
        const T lab = t[r];
        if (!(lab >= 0 && lab < (T)C) || (T)(int64_t)lab != lab) {
            *bad = r;
            return total;
        }
        idx[r] = (int64_t)lab;
        total += (double)(m - zr[idx[r]]) + (double)ls;
    }
    return total;
}

/* The rows in ops/vecmath.h's fixed parts (one part below TG_PAR_MIN elements), run over
 * the threads, and the part sums added in order: the same loss at any thread count. */
typedef struct FN(ce_ctx) {
    tg_node *n;
    int count;
    double total[TG_SUM_PARTS];
    int64_t bad[TG_SUM_PARTS];
} FN(ce_ctx);
static void FN(ce_part)(void *ctx, int p)
{
    FN(ce_ctx) *c = ctx;
    const int64_t N = c->n->in[0]->shape[0];
    c->total[p] =
        FN(ce_rows)(c->n, tg_sum_cut(N, c->count, p), tg_sum_cut(N, c->count, p + 1), &c->bad[p]);
}
static void FN(ce_fwd)(tg_node *n)
{
    const int64_t N = n->in[0]->shape[0];
    FN(ce_ctx) c = {.n = n, .count = tg_sum_parts(n->in[0]->numel)};
    tg_par_parts(n->in[0]->numel, c.count, FN(ce_part), &c);
    double total = 0;
    for (int p = 0; p < c.count; p++) {
        if (c.bad[p] >= 0) { /* the first bad row: parts hold increasing rows */
            const int64_t r = c.bad[p];
            tg_fail(tg_node_out(n)->tape, TG_EARG,
                    "tg_cross_entropy: label %g of row %lld is not a class index in 0..%lld",
                    (double)((const T *)n->in[1]->data)[r], (long long)r,
                    (long long)(n->in[0]->shape[1] - 1));
            return;
        }
        total += c.total[p];
    }
    *(T *)tg_node_out(n)->data = (T)(total / (double)N);
}

/* Rows [r0, r1) of the backward. */
static void FN(ce_bwd_rows)(tg_node *n, int64_t r0, int64_t r1, int beta)
{
    (void)beta;
    const int64_t N = n->in[0]->shape[0], C = n->in[0]->shape[1];
    const bool soft = n->op == TG_OP_cross_entropy_soft;
    const T *z = n->in[0]->data, *t = n->in[1]->data;
    const int64_t *idx = n->saved;
    const T *prob = (const T *)(idx + N), *mx = prob + N * C, *lsv = mx + N;
    const T g = *(const T *)tg_node_out(n)->grad->data / (T)N;
    /* not restrict: cross_entropy_soft(x, x) makes dz and dq one buffer */
    if (n->in[0]->requires_grad) {
        T *dz = n->in[0]->grad->data;
        for (int64_t r = r0; r < r1; r++) {
            const T *pr = prob + r * C, *qr = t + r * C;
            T *dzr = dz + r * C;
            if (!soft) {
                for (int64_t j = 0; j < C; j++) dzr[j] += g * pr[j];
                dzr[idx[r]] -= g;
                continue;
            }
            T mass = 0;
            for (int64_t j = 0; j < C; j++) mass += qr[j];
            for (int64_t j = 0; j < C; j++) dzr[j] += g * (pr[j] * mass - qr[j]);
        }
    }
    if (soft && n->in[1]->requires_grad) {
        T *dq = n->in[1]->grad->data;
        for (int64_t r = r0; r < r1; r++)
            for (int64_t j = 0; j < C; j++) dq[r * C + j] -= g * ((z[r * C + j] - mx[r]) - lsv[r]);
    }
}
/* By rows over the threads: each row's gradient computed by one thread. */
static void FN(ce_bwd)(tg_node *n)
{
    tg_par_range(n, n->in[0]->shape[0], 1, tg_par_threads(n->in[0]->numel), FN(ce_bwd_rows), 0);
}
