/* optim/optim.c: the optimiser interface: method table, creation and checks, the generic
 * first-order step, zeroing, getters and setters. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#define X(nm) &tg_##nm##_class,
static const tg_optim_class *const methods[] = {TG_OPTIM_LIST(X)};
#undef X
#define N_METHODS ((int)(sizeof methods / sizeof methods[0]))

static const tg_optim_class *find_method(const char *name)
{
    if (!name) return NULL;
    for (int i = 0; i < N_METHODS; i++)
        if (strcmp(methods[i]->name, name) == 0) return methods[i];
    return NULL;
}

const char *tg_optim_method(int i) { return i >= 0 && i < N_METHODS ? methods[i]->name : NULL; }

int tg_optim_defaults(const char *name, tg_optim_opts *opts)
{
    const tg_optim_class *m = find_method(name);
    if (!m || !opts) return TG_EARG;
    /* common defaults: every extra off, constant schedule; the method sets the rest */
    *opts = (tg_optim_opts){.lr = 0.01, .eps = 1e-8, .schedule = {.kind = TG_LR_CONSTANT}};
    m->defaults(opts);
    return TG_OK;
}

/* Option ranges. Every field must be finite and >= 0 whatever the method; the fields a
 * method reads with a range of their own (cls->uses) are checked against that range.
 * Messages name the field, its value and the range. */
typedef struct range {
    const char *field;
    double v, lo, hi;
    bool lo_open, hi_open; /* (lo rather than [lo, hi) rather than hi] */
    const char *lo_name;   /* the field lo comes from, if any */
} range;

static int check_opts(const tg_optim_class *cls, const tg_optim_opts *o, tg_status *st)
{
    const double inf = HUGE_VAL;
    const bool eps = cls->uses & TG_USES_EPS, rp = cls->uses & TG_USES_RPROP;
    const bool mu = cls->uses & TG_USES_MU_MAX, dm = cls->uses & TG_USES_DAMPING;
    const bool hist = cls->uses & TG_USES_HISTORY, cg = cls->uses & TG_USES_CG;
    const range r[] = {
        {"lr", o->lr, 0, inf, false, true, NULL},
        {"momentum", o->momentum, 0, 1, false, true, NULL},
        {"beta1", o->beta1, 0, 1, false, true, NULL},
        {"beta2", o->beta2, 0, 1, false, true, NULL},
        {"eps", o->eps, 0, inf, eps, true, NULL},
        {"l2", o->l2, 0, inf, false, true, NULL},
        {"weight_decay", o->weight_decay, 0, inf, false, true, NULL},
        {"clip_norm", o->clip_norm, 0, inf, false, true, NULL},
        {"clip_value", o->clip_value, 0, inf, false, true, NULL},
        {"step_up", o->step_up, rp ? 1 : 0, inf, false, true, NULL},
        {"step_down", o->step_down, 0, rp ? 1 : inf, rp, !rp, NULL},
        {"step_min", o->step_min, 0, inf, rp, true, NULL},
        /* after step_min, which is finite here */
        {"step_max", o->step_max, rp ? o->step_min : 0, inf, false, true, rp ? "step_min" : NULL},
        {"mu_max", o->mu_max, 0, inf, mu, true, NULL},
        {"damping", o->damping, 0, inf, dm, true, NULL},
        {"history", (double)o->history, hist ? 1 : 0, hist ? TG_LBFGS_MAX_HISTORY : inf, false,
         !hist, NULL},
        {"restart", (double)o->restart, 0, inf, false, true, NULL},
        {"cg_iters", (double)o->cg_iters, cg ? 1 : 0, inf, false, true, NULL},
        {"cg_tol", o->cg_tol, 0, cg ? 1 : inf, cg, true, NULL},
    };
    for (size_t i = 0; i < sizeof r / sizeof r[0]; i++) {
        const range *q = &r[i];
        bool above = q->lo_open ? q->v > q->lo : q->v >= q->lo; /* false for NaN */
        bool below = q->hi_open ? q->v < q->hi : q->v <= q->hi;
        if (above && below) continue;
        char lo[48];
        if (q->lo_name) snprintf(lo, sizeof lo, "%s = %g", q->lo_name, q->lo);
        else snprintf(lo, sizeof lo, "%g", q->lo);
        return tg_status_set(st, TG_EARG, "tg_optim_new: %s: %s = %g is outside %c%s, %g%c",
                             cls->name, q->field, q->v, q->lo_open ? '(' : '[', lo, q->hi,
                             q->hi_open ? ')' : ']');
    }
    char why[160];
    if (tg_lr_schedule_check(&o->schedule, why, sizeof why) != TG_OK)
        return tg_status_set(st, TG_EARG, "tg_optim_new: %s: schedule: %s", cls->name, why);
    return TG_OK;
}

static int check_params(const char *name, int n, tg_tensor *const *params, tg_status *st)
{
    if (n < 1 || !params)
        return tg_status_set(st, TG_EARG, "tg_optim_new: %s: no parameters (n_params = %d%s)", name,
                             n, params ? "" : ", params = NULL");
    for (int i = 0; i < n; i++) {
        const tg_tensor *p = params[i];
        if (!p)
            return tg_status_set(st, TG_EARG, "tg_optim_new: %s: parameter %d is NULL", name, i);
        if (!tg_tensor_is_leaf(p))
            return tg_status_set(
                st, TG_EARG, "tg_optim_new: %s: parameter %d is an op output, not a leaf", name, i);
        if (!tg_requires_grad(p))
            return tg_status_set(st, TG_EARG,
                                 "tg_optim_new: %s: parameter %d does not require grad "
                                 "(tg_set_requires_grad)",
                                 name, i);
        if (tg_tensor_dtype(p) != tg_tensor_dtype(params[0]))
            return tg_status_set(
                st, TG_EDTYPE, "tg_optim_new: %s: parameter %d is %s but parameter 0 is %s", name,
                i, tg_dtype_name(tg_tensor_dtype(p)), tg_dtype_name(tg_tensor_dtype(params[0])));
        for (int j = 0; j < i; j++) /* a parameter given twice would be updated twice */
            if (params[j] == p)
                return tg_status_set(st, TG_EARG,
                                     "tg_optim_new: %s: parameter %d is parameter %d again", name,
                                     i, j);
    }
    return TG_OK;
}

/* Bytes of one slot of parameter p, rounded up to a cache line so every slot is aligned. */
static size_t slot_bytes(const tg_optim *o, int p)
{
    size_t b = (size_t)tg_tensor_numel(o->params[p]) * tg_dtype_size(o->dtype);
    return (b + 63) / 64 * 64;
}

/* Allocates and zeroes every slot of every parameter in one block. */
static int alloc_state(tg_optim *o)
{
    int k = o->cls->n_slots;
    if (k == 0) return TG_OK;
    for (int p = 0; p < o->n_params; p++) o->state_bytes += (size_t)k * slot_bytes(o, p);
    size_t n_ptr = (size_t)o->n_params * (size_t)k;
    if (o->dtype == TG_F32) o->s32 = calloc(n_ptr, sizeof *o->s32);
    else o->s64 = calloc(n_ptr, sizeof *o->s64);
    o->state_mem = aligned_alloc(64, o->state_bytes ? o->state_bytes : 64);
    if ((!o->s32 && !o->s64) || !o->state_mem) return TG_ENOMEM;
    memset(o->state_mem, 0, o->state_bytes);
    unsigned char *at = o->state_mem;
    for (int p = 0; p < o->n_params; p++) {
        for (int s = 0; s < k; s++) {
            if (o->s32) o->s32[p * k + s] = (float *)(void *)at;
            else o->s64[p * k + s] = (double *)(void *)at;
            at += slot_bytes(o, p);
        }
    }
    return TG_OK;
}

tg_optim *tg_optim_new(const char *name, int n_params, tg_tensor *const *params,
                       const tg_optim_opts *opts, tg_status *st)
{
    if (st) *st = (tg_status){0};
    const tg_optim_class *cls = find_method(name);
    if (!cls) {
        char known[320] = "";
        for (int i = 0; i < N_METHODS; i++) {
            size_t len = strlen(known);
            snprintf(known + len, sizeof known - len, "%s%s", i ? ", " : "", methods[i]->name);
        }
        tg_status_set(st, TG_EARG, "tg_optim_new: unknown method \"%s\" (known: %s)",
                      name ? name : "(null)", known);
        return NULL;
    }
    tg_optim_opts o_def;
    if (!opts) {
        tg_optim_defaults(name, &o_def);
        opts = &o_def;
    }
    if (check_opts(cls, opts, st) != TG_OK) return NULL;
    if (check_params(cls->name, n_params, params, st) != TG_OK) return NULL;

    tg_optim *o = calloc(1, sizeof *o);
    if (!o) {
        tg_status_set(st, TG_ENOMEM, "tg_optim_new: %s: out of memory", cls->name);
        return NULL;
    }
    o->cls = cls;
    o->opts = *opts;
    o->dtype = tg_tensor_dtype(params[0]);
    o->n_params = n_params;
    o->params = malloc((size_t)n_params * sizeof *o->params);
    o->grads = calloc((size_t)n_params, sizeof *o->grads);
    if (o->params) memcpy(o->params, params, (size_t)n_params * sizeof *o->params);
    if (!o->params || !o->grads || alloc_state(o) != TG_OK) {
        tg_optim_free(o);
        tg_status_set(st, TG_ENOMEM, "tg_optim_new: %s: out of memory for the state", cls->name);
        return NULL;
    }
    if (cls->init) {
        int rc = cls->init(o, st);
        if (rc != TG_OK) {
            tg_optim_free(o);
            if (st && st->code == TG_OK)
                tg_status_set(st, rc, "tg_optim_new: %s: init failed", cls->name);
            return NULL;
        }
    }
    return o;
}

void tg_optim_free(tg_optim *o)
{
    if (!o) return;
    if (o->cls->destroy) o->cls->destroy(o);
    free(o->state_mem);
    free(o->s32);
    free(o->s64);
    free(o->params);
    free(o->grads);
    free(o);
}

tg_tensor *tg_optim_active_grad(const tg_tensor *p)
{
    return tg_requires_grad(p) ? tg_grad(p) : NULL;
}

void tg_optim_begin_step(tg_optim *o)
{
    /* the k-th step (k from 0) uses the schedule at k, so the first uses the base lr */
    o->lr = tg_lr_at(&o->opts.schedule, o->opts.lr, o->t);
    if (o->lr < 0) o->lr = 0; /* unreachable: the options were checked at creation */
    o->t++;
    o->keep = 1.0 - o->lr * o->opts.weight_decay;
    /* the library's own clip functions skip the same parameters as the step does */
    if (o->opts.clip_value > 0) tg_clip_grad_value(o->n_params, o->params, o->opts.clip_value);
    if (o->opts.clip_norm > 0) tg_clip_grad_norm(o->n_params, o->params, o->opts.clip_norm);
}

/* The generic step of per-element methods: one kernel call per parameter with a gradient. */
/* Subnormal numbers are flushed to zero while a step runs (x86's FTZ and DAZ bits, restored
 * after): the momentum of a weight whose gradient stopped (a dead ReLU unit) decays
 * geometrically into the subnormal range, where every multiply takes a microcode assist,
 * and the update pass became 10x slower after a few hundred steps. */
#if defined(__SSE2__)
#include <xmmintrin.h>
#define FTZ_BEGIN()                                                                                \
    unsigned ftz_csr_ = _mm_getcsr();                                                              \
    _mm_setcsr(ftz_csr_ | 0x8040u)
#define FTZ_END() _mm_setcsr(ftz_csr_)
#else
#define FTZ_BEGIN() (void)0
#define FTZ_END() (void)0
#endif

/* Writes n values from src to dst with streaming (non-temporal) stores where dst is
 * 16-byte aligned; the rest with plain ones. */
#if defined(__SSE2__)
#include <emmintrin.h>
static void stream_f32(float *restrict dst, const float *restrict src, int64_t n)
{
    int64_t i = 0;
    if (((uintptr_t)dst & 15) == 0)
        for (; i + 4 <= n; i += 4) _mm_stream_ps(dst + i, _mm_loadu_ps(src + i));
    for (; i < n; i++) dst[i] = src[i];
}
static void stream_f64(double *restrict dst, const double *restrict src, int64_t n)
{
    int64_t i = 0;
    if (((uintptr_t)dst & 15) == 0)
        for (; i + 2 <= n; i += 2) _mm_stream_pd(dst + i, _mm_loadu_pd(src + i));
    for (; i < n; i++) dst[i] = src[i];
}
#define STREAM_FENCE() _mm_sfence()
#else
static void stream_f32(float *restrict dst, const float *restrict src, int64_t n)
{
    memcpy(dst, src, (size_t)n * sizeof *dst);
}
static void stream_f64(double *restrict dst, const double *restrict src, int64_t n)
{
    memcpy(dst, src, (size_t)n * sizeof *dst);
}
#define STREAM_FENCE() (void)0
#endif

/* Elements per chunk of a streamed update: the weights are copied to a buffer in L1, the
 * method's kernel updates the copy, and the result is streamed back. */
#define STREAM_CHUNK 1024

/* Part t of nt of every parameter with a gradient (o->grads, set by the caller), updated by
 * the method's kernel. The kernels are per-element, so any split gives the same numbers as
 * one pass. Each parameter is split into nt contiguous parts (at 16 elements).
 * With stream set (the threaded step), the new weights go back with streaming stores: the
 * GEMMs have just read them on every core, and plain stores to those lines made the 2-thread
 * momentum step 166-395 against 60 us (docs/performance.md). */
static void update_part(tg_optim *o, int t, int nt, bool stream)
{
    int k = o->cls->n_slots;
    _Alignas(64) unsigned char buf[STREAM_CHUNK * sizeof(double)];
    for (int p = 0; p < o->n_params; p++) {
        tg_tensor *w = o->params[p], *g = o->grads[p];
        if (!g) continue; /* no gradient reached it: leave it and its moments alone */
        int64_t n = tg_tensor_numel(w);
        int64_t a = n * t / nt / 16 * 16, b = t + 1 == nt ? n : n * (t + 1) / nt / 16 * 16;
        for (int64_t c0 = a; c0 < b; c0 = stream ? c0 + STREAM_CHUNK : b) {
            int64_t len = stream && b - c0 > STREAM_CHUNK ? STREAM_CHUNK : b - c0;
            if (o->dtype == TG_F32) {
                float *s[TG_OPTIM_SLOTS_MAX], *wd = (float *)tg_data(w) + c0, *wk = wd;
                for (int j = 0; j < k; j++) s[j] = o->s32[p * k + j] + c0;
                if (stream) wk = memcpy(buf, wd, (size_t)len * sizeof(float));
                o->cls->update_f32(o, wk, (const float *)tg_data_const(g) + c0, s, len);
                if (stream) stream_f32(wd, wk, len);
            } else {
                double *s[TG_OPTIM_SLOTS_MAX], *wd = (double *)tg_data(w) + c0, *wk = wd;
                for (int j = 0; j < k; j++) s[j] = o->s64[p * k + j] + c0;
                if (stream) wk = memcpy(buf, wd, (size_t)len * sizeof(double));
                o->cls->update_f64(o, wk, (const double *)tg_data_const(g) + c0, s, len);
                if (stream) stream_f64(wd, wk, len);
            }
        }
    }
    if (stream) STREAM_FENCE(); /* the streamed weights are visible before the step returns */
}

/* Whether some element of g is NaN or infinite: its exponent bits are all ones, and adding
 * one to the lowest of them carries into the sign bit. An OR of integers, so the loop
 * vectorises (a float reduction could not be reordered). */
#define T float
#define FN(name) name##_f32
#define U uint32_t
#define EXP UINT32_C(0x7f800000)
#define ONE UINT32_C(0x00800000)
#define SIGN UINT32_C(0x80000000)
#include "nonfinite_t.h"
#undef T
#undef FN
#undef U
#undef EXP
#undef ONE
#undef SIGN

#define T double
#define FN(name) name##_f64
#define U uint64_t
#define EXP UINT64_C(0x7ff0000000000000)
#define ONE UINT64_C(0x0010000000000000)
#define SIGN UINT64_C(0x8000000000000000)
#include "nonfinite_t.h"
#undef T
#undef FN
#undef U
#undef EXP
#undef ONE
#undef SIGN

/* True when every gradient in o->grads is finite (opts.check_finite). */
static bool grads_finite(const tg_optim *o)
{
    for (int p = 0; p < o->n_params; p++) {
        const tg_tensor *g = o->grads[p];
        if (!g) continue;
        int64_t n = tg_tensor_numel(g);
        if (o->dtype == TG_F32 ? any_nonfinite_f32(tg_data_const(g), n)
                               : any_nonfinite_f64(tg_data_const(g), n))
            return false;
    }
    return true;
}

/* Below this many elements a step runs on one thread: waking the others costs more. */
#define PARALLEL_MIN_ELEMENTS 32768

/* The update on nt threads, each on its part of every parameter, streaming the weights.
 * Without OpenMP, and with -DTG_PLAIN (the reference path), one thread with plain stores. */
#if defined(_OPENMP) && !defined(TG_PLAIN)
static int threaded_update(tg_optim *o, int nt)
{
#pragma omp parallel num_threads(nt)
    {
        FTZ_BEGIN(); /* MXCSR is per thread */
        update_part(o, omp_get_thread_num(), omp_get_num_threads(), true);
        FTZ_END();
    }
    return TG_OK;
}
#else
static int threaded_update(tg_optim *o, int nt)
{
    (void)nt;
    FTZ_BEGIN();
    update_part(o, 0, 1, false);
    FTZ_END();
    return TG_OK;
}
#endif

/* The generic step of per-element methods. Large steps are split over the BLIS thread count
 * (the same OpenMP threads the GEMMs use). */
static int first_order_step(tg_optim *o)
{
    int64_t total = 0;
    for (int p = 0; p < o->n_params; p++) {
        o->grads[p] = tg_optim_active_grad(o->params[p]);
        if (o->grads[p]) total += tg_tensor_numel(o->params[p]);
    }
    /* before the clipping, which would hide an infinity, and before anything changes */
    if (o->opts.check_finite && !grads_finite(o)) return TG_EARG;
    /* a growing schedule (gamma > 1) whose lr has overflowed: refused, not an infinite step */
    if (!isfinite(tg_lr_at(&o->opts.schedule, o->opts.lr, o->t))) return TG_EARG;
    tg_optim_begin_step(o);
    int nt = tg_get_num_threads();
    if (nt > 1 && total >= PARALLEL_MIN_ELEMENTS) return threaded_update(o, nt);
    FTZ_BEGIN();
    update_part(o, 0, 1, false);
    FTZ_END();
    return TG_OK;
}

int tg_optim_step(tg_optim *o)
{
    if (!o) return TG_EARG;
    if (o->cls->needs_closure) return TG_ESTATE;
    if (o->cls->step) return o->cls->step(o, NULL, NULL, NULL);
    return first_order_step(o);
}

int tg_optim_eval(tg_optim *o, tg_loss_fn fn, void *ctx, double *loss)
{
    int rc = tg_optim_zero_grad(o);
    if (rc != TG_OK) return rc;
    double l = (double)NAN; /* stays NaN if fn forgets to set it */
    rc = fn(ctx, &l);
    if (rc != TG_OK) return rc < 0 ? rc : TG_EARG;
    if (loss) *loss = l;
    return TG_OK;
}

int tg_optim_step_closure(tg_optim *o, tg_loss_fn fn, void *ctx, double *loss)
{
    if (!o || !fn) return TG_EARG;
    if (o->cls->step) return o->cls->step(o, fn, ctx, loss);
    int rc = tg_optim_eval(o, fn, ctx, loss); /* first-order: one evaluation, one step */
    return rc != TG_OK ? rc : first_order_step(o);
}

int tg_optim_zero_grad(tg_optim *o)
{
    if (!o) return TG_EARG;
    for (int p = 0; p < o->n_params; p++) {
        int rc = tg_zero_grad(o->params[p]);
        if (rc != TG_OK) return rc;
    }
    return TG_OK;
}

int tg_optim_reset(tg_optim *o)
{
    if (!o) return TG_EARG;
    if (o->state_mem) memset(o->state_mem, 0, o->state_bytes);
    if (o->cls->reset) o->cls->reset(o);
    o->t = 0;
    return TG_OK;
}

double tg_optim_lr(const tg_optim *o)
{
    return o ? tg_lr_at(&o->opts.schedule, o->opts.lr, o->t) : -1;
}

int tg_optim_set_lr(tg_optim *o, double lr)
{
    if (!o || !(lr >= 0 && isfinite(lr))) return TG_EARG;
    o->opts.lr = lr;
    return TG_OK;
}

int64_t tg_optim_step_count(const tg_optim *o) { return o ? o->t : -1; }

int tg_optim_set_step_count(tg_optim *o, int64_t k)
{
    if (!o || k < 0) return TG_EARG;
    o->t = k;
    return TG_OK;
}

const char *tg_optim_name(const tg_optim *o) { return o ? o->cls->name : NULL; }
bool tg_optim_needs_closure(const tg_optim *o) { return o && o->cls->needs_closure; }
const tg_optim_opts *tg_optim_options(const tg_optim *o) { return o ? &o->opts : NULL; }

/* ---- state for checkpoints ----
 * name[16] (NUL-padded), u32 dtype (1 f32, 2 f64), u32 parameters, u32 slots, u32 0,
 * i64 step count, f64 base lr, u64 bytes of the method's extra state, u64 numel per
 * parameter, then slot k of parameter p for every p and k (numel elements each), then the
 * extra state. Host byte order: little-endian, the only order the file savers accept. */
#define STATE_HEAD 56

static size_t slots_bytes(const tg_optim *o)
{
    size_t b = 0;
    for (int p = 0; p < o->n_params; p++)
        b += (size_t)o->cls->n_slots * (size_t)tg_tensor_numel(o->params[p]) *
             tg_dtype_size(o->dtype);
    return b;
}

static size_t extra_bytes(const tg_optim *o)
{
    return o->cls->state_size ? o->cls->state_size(o) : 0;
}

size_t tg_optim_state_size(const tg_optim *o)
{
    return o ? STATE_HEAD + 8 * (size_t)o->n_params + slots_bytes(o) + extra_bytes(o) : 0;
}

static void put_u(unsigned char **at, uint64_t v, size_t bytes)
{
    for (size_t i = 0; i < bytes; i++) (*at)[i] = (unsigned char)(v >> (8 * i));
    *at += bytes;
}

static uint64_t get_u(const unsigned char **at, size_t bytes)
{
    uint64_t v = 0;
    for (size_t i = 0; i < bytes; i++) v |= (uint64_t)(*at)[i] << (8 * i);
    *at += bytes;
    return v;
}

int tg_optim_state_save(const tg_optim *o, void *out, size_t size, tg_status *st)
{
    if (!o || !out) return tg_status_set(st, TG_EARG, "tg_optim_state_save: NULL argument");
    if (size != tg_optim_state_size(o))
        return tg_status_set(st, TG_EARG, "tg_optim_state_save: %s: buffer of %zu bytes, want %zu",
                             o->cls->name, size, tg_optim_state_size(o));
    unsigned char *at = out;
    uint64_t lr_bits, es = tg_dtype_size(o->dtype);
    memcpy(&lr_bits, &o->opts.lr, 8);
    memset(at, 0, 16);
    memcpy(at, o->cls->name, strlen(o->cls->name) < 15 ? strlen(o->cls->name) : 15);
    at += 16;
    put_u(&at, o->dtype == TG_F32 ? 1 : 2, 4), put_u(&at, (uint64_t)o->n_params, 4);
    put_u(&at, (uint64_t)o->cls->n_slots, 4), put_u(&at, 0, 4);
    put_u(&at, (uint64_t)o->t, 8), put_u(&at, lr_bits, 8), put_u(&at, extra_bytes(o), 8);
    for (int p = 0; p < o->n_params; p++) put_u(&at, (uint64_t)tg_tensor_numel(o->params[p]), 8);
    int k = o->cls->n_slots;
    for (int p = 0; p < o->n_params; p++)
        for (int s = 0; s < k; s++) {
            size_t b = (size_t)tg_tensor_numel(o->params[p]) * es;
            memcpy(at, o->s32 ? (void *)o->s32[p * k + s] : (void *)o->s64[p * k + s], b);
            at += b;
        }
    if (o->cls->state_save) o->cls->state_save(o, at);
    return TG_OK;
}

int tg_optim_state_load(tg_optim *o, const void *in, size_t size, tg_status *st)
{
    if (!o || !in) return tg_status_set(st, TG_EARG, "tg_optim_state_load: NULL argument");
    const char *nm = o->cls->name;
    const unsigned char *at = in;
    if (size < STATE_HEAD)
        return tg_status_set(st, TG_EFORMAT, "optimiser state: %zu bytes, too short for a header",
                             size);
    char name[17] = {0};
    memcpy(name, at, 16), at += 16;
    if (strcmp(name, nm) != 0)
        return tg_status_set(st, TG_EARG, "optimiser state of method %.16s, the optimiser is %s",
                             name, nm);
    uint64_t dt = get_u(&at, 4), np = get_u(&at, 4), k = get_u(&at, 4), zero = get_u(&at, 4);
    uint64_t t = get_u(&at, 8), lr_bits = get_u(&at, 8), extra = get_u(&at, 8);
    double lr;
    memcpy(&lr, &lr_bits, 8);
    if (dt != (o->dtype == TG_F32 ? 1u : 2u))
        return tg_status_set(st, TG_EDTYPE, "optimiser state of %s parameters, %s's are %s",
                             dt == 1   ? "f32"
                             : dt == 2 ? "f64"
                                       : "unknown",
                             nm, tg_dtype_name(o->dtype));
    if (np != (uint64_t)o->n_params)
        return tg_status_set(st, TG_ESHAPE, "optimiser state of %llu parameters, %s has %d",
                             (unsigned long long)np, nm, o->n_params);
    if (k != (uint64_t)o->cls->n_slots || zero || t > (uint64_t)INT64_MAX || !(lr >= 0) ||
        !isfinite(lr))
        return tg_status_set(st, TG_EFORMAT, "optimiser state of %s: a malformed header", nm);
    if (size < STATE_HEAD + 8 * np)
        return tg_status_set(st, TG_EFORMAT, "optimiser state of %s: truncated", nm);
    for (int p = 0; p < o->n_params; p++) {
        uint64_t numel = get_u(&at, 8);
        if (numel != (uint64_t)tg_tensor_numel(o->params[p]))
            return tg_status_set(
                st, TG_ESHAPE, "optimiser state: parameter %d has %llu elements, %s's has %lld", p,
                (unsigned long long)numel, nm, (long long)tg_tensor_numel(o->params[p]));
    }
    if (extra != extra_bytes(o) || size != tg_optim_state_size(o))
        return tg_status_set(st, TG_EFORMAT,
                             "optimiser state of %s: %zu bytes (%llu of extra state), this "
                             "optimiser's is %zu (%zu of extra state: other options, such as "
                             "the history?)",
                             nm, size, (unsigned long long)extra, tg_optim_state_size(o),
                             extra_bytes(o));
    const unsigned char *ex = at + slots_bytes(o);
    char why[200] = "";
    if (o->cls->state_check && o->cls->state_check(o, ex, why, sizeof why))
        return tg_status_set(st, TG_EFORMAT, "optimiser state: %s", why);
    /* every check passed: apply */
    size_t es = tg_dtype_size(o->dtype);
    int nk = o->cls->n_slots;
    for (int p = 0; p < o->n_params; p++)
        for (int s = 0; s < nk; s++) {
            size_t b = (size_t)tg_tensor_numel(o->params[p]) * es;
            memcpy(o->s32 ? (void *)o->s32[p * nk + s] : (void *)o->s64[p * nk + s], at, b);
            at += b;
        }
    if (o->cls->state_load) o->cls->state_load(o, ex);
    o->t = (int64_t)t, o->opts.lr = lr;
    return TG_OK;
}
