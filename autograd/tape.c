/* autograd/tape.c: tape lifetime, errors, grad mode, statistics. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

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
    tp->gen = 1;
    tg_rng_seed(&tp->rng, 0);
    return tp;
}

tg_tape *tg_tape_new(void) { return tg_tape_new_with(default_alloc, NULL); }

void tg_tape_free(tg_tape *tp)
{
    if (!tp) return;
    tg_arena_release(tp);
    if (tp->prof) tp->alloc(tp->alloc_ctx, tp->prof, 0);
    tp->alloc(tp->alloc_ctx, tp, 0);
}

void tg_tape_reset(tg_tape *tp)
{
    if (!tp) return;
    tg_arena_rewind(tp);
    tp->head = tp->tail = NULL;
    tp->n_nodes = 0;
    tp->gen++;
    tp->err = TG_OK;
    tp->msg[0] = '\0';
}

const char *tg_tape_error(const tg_tape *tp)
{
    if (!tp) return "no tape (NULL)";
    return tp->msg;
}

int tg_tape_errcode(const tg_tape *tp) { return tp ? tp->err : TG_EARG; }

static int vfail(tg_tape *tp, int code, const char *fmt, va_list ap)
{
    if (!tp || tp->err != TG_OK) return code; /* keep the first error only */
    vsnprintf(tp->msg, sizeof tp->msg, fmt, ap);
    tp->err = code;
    return code;
}

int tg_fail(tg_tape *tp, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(tp, code, fmt, ap);
    va_end(ap);
    return code;
}

int tg_tape_fail(tg_tape *tp, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(tp, code, fmt, ap);
    va_end(ap);
    return code;
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
    size_t bytes = (size_t)numel * tg_dtype_size(dt);
    /* Small tensors pack at 16 bytes (a chain of scalar ops stays in cache); data of 64
     * bytes or more starts on a cache line, for vector loops and BLIS. */
    bool small = bytes < TG_ALIGN;
    size_t hdr = small ? (TG_TENSOR_BYTES(ndim) + 15) & ~(size_t)15
                       : (TG_TENSOR_BYTES(ndim) + TG_ALIGN - 1) & ~(size_t)(TG_ALIGN - 1);
    unsigned char *p = tg_arena_alloc_align(tp, hdr + bytes, small ? 16 : TG_ALIGN);
    if (!p) {
        tg_fail(tp, TG_ENOMEM, "tg_%s: out of memory (%zu bytes)", who, hdr + bytes);
        return NULL;
    }
    tg_tensor *t = (tg_tensor *)p;
    memset(t, 0, sizeof *t);
    t->data = p + hdr;
    t->tape = tp;
    t->gen = tp->gen;
    t->numel = numel;
    t->ndim = (int8_t)ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    t->dtype = (uint8_t)dt;
    return t;
}
