/* autograd/tape.c: tape lifetime, errors, grad mode, statistics, the CPU count. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "internal.h"

static void *default_alloc(void *ctx, void *ptr, size_t size)
{
    (void)ctx;
    if (size == 0) {
        free(ptr);
        return NULL;
    }
    return realloc(ptr, size);
}

tg_tape *tg_tape_new_with(tg_alloc_fn alloc, void *ctx)
{
    if (!alloc) return NULL;
    tg_tape *tp = alloc(ctx, NULL, sizeof *tp);
    if (!tp) return NULL;
    memset(tp, 0, sizeof *tp);
    tp->alloc = alloc;
    tp->alloc_ctx = ctx;
    tp->n_allocs = 1;
    tp->grad_mode = true;
    tp->gen = 1; /* the blocks made in this generation start TG_STAGGER(1) bytes in */
    tg_rng_seed(&tp->rng, 0);
    return tp;
}

tg_tape *tg_tape_new(void) { return tg_tape_new_with(default_alloc, NULL); }

void tg_tape_free(tg_tape *tp)
{
    if (!tp) return;
    tg_arena_release(tp);
    if (tp->prof) tp->alloc(tp->alloc_ctx, tp->prof, 0);
    if (tp->ready_map) tp->alloc(tp->alloc_ctx, tp->ready_map, 0);
    if (tp->leaves) tp->alloc(tp->alloc_ctx, tp->leaves, 0);
    tp->alloc(tp->alloc_ctx, tp, 0);
}

void tg_tape_reset(tg_tape *tp)
{
    if (!tp) return;
    tp->gen++;
    tg_arena_rewind(tp); /* at the new generation's stagger */
    tp->head = tp->tail = NULL;
    tp->n_leaves = 0;
    tp->leaves_last = NULL;
    tp->n_nodes = 0;
    tp->err = TG_OK;
    tp->msg[0] = '\0';
}

const char *tg_tape_error(const tg_tape *tp)
{
    if (!tp) return "no tape (NULL)";
    return tp->msg;
}

int tg_tape_errcode(const tg_tape *tp) { return tp ? tp->err : TG_EARG; }

/* The library's tg_fail (internal.h) is this function. */
int tg_tape_fail(tg_tape *tp, int code, const char *fmt, ...)
{
    if (!tp || tp->err != TG_OK) return code; /* keep the first error only */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tp->msg, sizeof tp->msg, fmt, ap);
    va_end(ap);
    tp->err = code;
    return code;
}

int tg_cpu_count(void)
{
#ifdef _OPENMP
    int n = omp_get_num_procs();
#else
    long n = sysconf(_SC_NPROCESSORS_ONLN);
#endif
    return n > 0 ? (int)n : 1;
}

bool tg_tape_set_grad_mode(tg_tape *tp, bool on)
{
    if (!tp) return false;
    bool old = tp->grad_mode;
    tp->grad_mode = on;
    return old;
}

bool tg_tape_grad_mode(const tg_tape *tp) { return tp && tp->grad_mode; }
tg_rng *tg_tape_rng(tg_tape *tp) { return tp ? &tp->rng : NULL; }

void tg_tape_seed(tg_tape *tp, uint64_t seed)
{
    if (tp) tg_rng_seed(&tp->rng, seed);
}

void tg_tape_get_stats(const tg_tape *tp, tg_tape_stats *st)
{
    if (!tp || !st) return;
    st->arena_used = tp->used;
    st->arena_high = tp->high;
    st->arena_reserved = tp->reserved;
    st->n_allocs = tp->n_allocs;
    st->n_nodes = tp->n_nodes;
}

tg_tensor *tg_arena_tensor(tg_tape *tp, const char *who, tg_dtype dt, int ndim,
                           const int64_t *shape)
{
    int64_t numel = tg_shape_numel(ndim, shape);
    if (numel < 0) { /* too large or negative: every op makes its output here */
        tg_shape_fail(tp, who, ndim, shape);
        return NULL;
    }
    size_t off, room = tg_tensor_room(dt, ndim, numel, 0, &off);
    unsigned char *p = tg_arena_alloc_align(tp, room, 16);
    if (!p) {
        tg_fail(tp, TG_ENOMEM, "tg_%s: out of memory (%zu bytes)", who, room);
        return NULL;
    }
    return tg_tensor_place(tp, p, off, dt, ndim, shape, numel);
}
