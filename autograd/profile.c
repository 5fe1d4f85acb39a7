/* autograd/profile.c: time per op kind. While profiling is on, tg_op_finish times every
 * forward kernel, the sweep every backward kernel, and ops/gemm.c every BLIS call, each
 * summed per op kind and phase in a table the tape owns. Off, each of those places costs
 * one predictable branch. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

double tg_clock(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int tg_tape_set_profiling(tg_tape *tp, bool on)
{
    if (!tp) return TG_EARG;
    if (on && !tp->prof) {
        tg_profile *p = tp->alloc(tp->alloc_ctx, NULL, sizeof *p);
        if (!p) return tg_fail(tp, TG_ENOMEM, "tg_tape_set_profiling: out of memory");
        memset(p, 0, sizeof *p);
        tp->n_allocs++;
        tp->prof = p;
    }
    tp->profiling = on && tp->prof;
    return TG_OK;
}

void tg_tape_profile_clear(tg_tape *tp)
{
    if (!tp || !tp->prof) return;
    memset(tp->prof, 0, sizeof *tp->prof);
}

int tg_tape_profile(const tg_tape *tp, tg_profile_row *rows, int max_rows, tg_profile_row *gemm)
{
    if (!tp || max_rows < 0 || (max_rows > 0 && !rows)) return TG_EARG;
    const tg_profile *p = tp->prof;
    int n = 0;
    for (int op = 0; p && op < TG_OP_COUNT; op++) {
        if (!p->calls[0][op] && !p->calls[1][op]) continue;
        if (n < max_rows)
            rows[n] = (tg_profile_row){tg_op_table[op].name, p->calls[0][op], p->calls[1][op],
                                       p->secs[0][op], p->secs[1][op]};
        n++;
    }
    if (gemm)
        *gemm = p ? (tg_profile_row){"BLIS GEMM", p->gemm_calls[0], p->gemm_calls[1],
                                     p->gemm_secs[0], p->gemm_secs[1]}
                  : (tg_profile_row){"BLIS GEMM", 0, 0, 0, 0};
    return n;
}

static int by_total(const void *a, const void *b)
{
    const tg_profile_row *x = a, *y = b;
    double tx = x->forward_s + x->backward_s, ty = y->forward_s + y->backward_s;
    return (tx < ty) - (tx > ty);
}

int tg_tape_profile_print(const tg_tape *tp, FILE *f)
{
    if (!tp || !f) return TG_EARG;
    tg_profile_row rows[TG_OP_COUNT], gemm;
    int n = tg_tape_profile(tp, rows, TG_OP_COUNT, &gemm);
    qsort(rows, (size_t)n, sizeof rows[0], by_total);
    double total = 0;
    for (int i = 0; i < n; i++) total += rows[i].forward_s + rows[i].backward_s;
    int w = fprintf(f, "%-22s %10s %10s %10s %10s %10s %7s\n", "op", "fwd calls", "fwd ms",
                    "bwd calls", "bwd ms", "total ms", "share");
    for (int i = 0; i <= n && w > 0; i++) {
        const tg_profile_row *r = i < n ? &rows[i] : &gemm;
        double t = r->forward_s + r->backward_s;
        w = fprintf(f, "%-22s %10lld %10.3f %10lld %10.3f %10.3f %6.1f%%\n",
                    i < n ? r->op : "  of which BLIS GEMM", (long long)r->forward_calls,
                    1e3 * r->forward_s, (long long)r->backward_calls, 1e3 * r->backward_s, 1e3 * t,
                    total > 0 ? 100 * t / total : 0.0);
    }
    if (w > 0) w = fprintf(f, "%-22s %54.3f\n", "all kernels", 1e3 * total);
    return w > 0 ? TG_OK : TG_EIO;
}
