/* ops/gemm.c: every call into BLIS (the only library file that includes blis.h): the thread
 * count, the choice of BLIS's GEMM path, and the two gradient GEMMs of a backward run side
 * by side. Op code calls tg_gemm and tg_gemm_pair (ops/internal.h) and meets none of it.
 * Built with -DTG_PLAIN (make PLAIN=1) every GEMM is one plain BLIS call on BLIS's own
 * path and thread count, one after the other: the reference the fast paths must match.
 * Measurements behind each choice: docs/performance.md. */
#include <blis.h>

#include "internal.h"

#ifdef _OPENMP
#include <omp.h>
#endif

const char *tg_blis_kernels(void) { return bli_arch_string(bli_arch_query_id()); }

/* Bounded by the CPUs: more threads than CPUs made a step of GEMMs hundreds of times slower
 * (docs/design.md, Threads). */
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

#ifndef TG_PLAIN
/* BLIS's packed path where its sup path is measured slower in BLIS 0.9.0 f32: a·bᵀ with
 * m, n >= 64 (up to 4x: 42 against 14 us), aᵀ·b with m, n >= 256 (2-25%). */
static bool packed_path(bool ta, bool tb, int64_t m, int64_t n, int64_t k)
{
    if (!ta && tb) return k > 1 && m >= 64 && n >= 64;
    return ta && !tb && m >= 256 && n >= 256;
}
#endif

/* The runtime object for g, or NULL for BLIS's defaults (its own path, the global thread
 * count). A rntm_t from bli_rntm_init_from_global has sup off (BLIS 0.9.0), unlike a call
 * without one, so it is switched back on wherever BLIS would take sup: a GEMM then takes
 * the same path on one thread or many. */
static rntm_t *gemm_rntm(rntm_t *rntm, tg_dtype dt, const tg_gemm_args *g, bool one_thread)
{
#ifdef TG_PLAIN
    (void)rntm, (void)dt, (void)g, (void)one_thread;
    return NULL;
#else
    bool packed = dt == TG_F32 && packed_path(g->ta, g->tb, g->m, g->n, g->k);
    if (!packed && !one_thread) return NULL;
    bli_rntm_init_from_global(rntm); /* the thread count of tg_set_num_threads */
    if (one_thread) bli_rntm_set_num_threads(1, rntm);
    if (packed) bli_rntm_disable_l3_sup(rntm);
    else bli_rntm_enable_l3_sup(rntm);
    return rntm;
#endif
}

/* C := beta C + op(A)·op(B), row-major operands as stored. BLIS handles empty products
 * itself, but some versions read alpha/beta only when all sizes are positive: with k == 0
 * the output must still be written (zeros). */
static void gemm_run(tg_dtype dt, const tg_gemm_args *g, bool one_thread)
{
    if (g->m == 0 || g->n == 0) return;
    if (g->k == 0) {
        if (g->beta == 0.0) memset(g->c, 0, (size_t)(g->m * g->n) * tg_dtype_size(dt));
        return;
    }
    rntm_t rntm;
    rntm_t *r = gemm_rntm(&rntm, dt, g, one_thread);
    trans_t ta = g->ta ? BLIS_TRANSPOSE : BLIS_NO_TRANSPOSE;
    trans_t tb = g->tb ? BLIS_TRANSPOSE : BLIS_NO_TRANSPOSE;
    inc_t lda = (inc_t)(g->ta ? g->m : g->k), ldb = (inc_t)(g->tb ? g->k : g->n);
    dim_t m = (dim_t)g->m, n = (dim_t)g->n, k = (dim_t)g->k;
    if (dt == TG_F32) {
        float one = 1.0f, beta = (float)g->beta;
        bli_sgemm_ex(ta, tb, m, n, k, &one, (float *)g->a, lda, 1, (float *)g->b, ldb, 1, &beta,
                     g->c, (inc_t)g->n, 1, NULL, r);
    } else {
        double one = 1.0, beta = g->beta;
        bli_dgemm_ex(ta, tb, m, n, k, &one, (double *)g->a, lda, 1, (double *)g->b, ldb, 1, &beta,
                     g->c, (inc_t)g->n, 1, NULL, r);
    }
}

void tg_gemm(tg_tape *tp, tg_dtype dt, const tg_gemm_args *g)
{
    double t0 = tg_profiling(tp) ? tg_clock() : 0;
    gemm_run(dt, g, false);
    if (tg_profiling(tp)) tg_profile_gemm(tp, t0, 1);
}

void tg_gemm_1t(tg_dtype dt, const tg_gemm_args *g) { gemm_run(dt, g, true); }

#if defined(_OPENMP) && !defined(TG_PLAIN)
/* Side by side at exactly 2 threads, one BLIS thread each, when each GEMM has m·n·k of at
 * least this (below, waking a thread costs more): a 256-wide layer's pair took 189 us
 * against 111 + 100 us in turn. Not in a running OpenMP region (a nested one gets one
 * thread), nor with more threads (each GEMM keeps them all). */
#define GEMM_PAIR_MIN 65536

/* m·n·k in double: m·n and k are at most TG_MAX_NUMEL each, their product is not */
static double gemm_size(const tg_gemm_args *g) { return (double)(g->m * g->n) * (double)g->k; }

static bool side_by_side(const tg_gemm_args *g0, const tg_gemm_args *g1)
{
    return g0 && g1 && g0->c != g1->c && tg_get_num_threads() == 2 && !omp_in_parallel() &&
           gemm_size(g0) >= GEMM_PAIR_MIN && gemm_size(g1) >= GEMM_PAIR_MIN;
}

void tg_gemm_pair(tg_tape *tp, tg_dtype dt, const tg_gemm_args *g0, const tg_gemm_args *g1)
{
    if (!side_by_side(g0, g1)) {
        if (g0) tg_gemm(tp, dt, g0);
        if (g1) tg_gemm(tp, dt, g1);
        return;
    }
    double t0 = tg_profiling(tp) ? tg_clock() : 0;
#pragma omp parallel num_threads(2)
    gemm_run(dt, omp_get_thread_num() == 0 ? g0 : g1, true);
    if (tg_profiling(tp)) tg_profile_gemm(tp, t0, 2);
}
#else
void tg_gemm_pair(tg_tape *tp, tg_dtype dt, const tg_gemm_args *g0, const tg_gemm_args *g1)
{
    if (g0) tg_gemm(tp, dt, g0);
    if (g1) tg_gemm(tp, dt, g1);
}
#endif
