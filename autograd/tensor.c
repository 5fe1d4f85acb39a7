/* autograd/tensor.c: leaves (caller-owned tensors), accessors, fills, printing, the RNG. */
#include <float.h>
#include <stdatomic.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <stdarg.h>
#include <stdio.h>

#include "internal.h"

int tg_status_set(tg_status *st, int code, const char *fmt, ...)
{
    if (!st) return code;
    st->msg[0] = '\0';
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(st->msg, sizeof st->msg, fmt, ap);
        va_end(ap);
    }
    st->code = code;
    return code;
}

const char *tg_strerror(int code)
{
    switch (code) {
    case TG_OK: return "ok";
    case TG_ENOMEM: return "out of memory";
    case TG_ESHAPE: return "shape mismatch";
    case TG_EDTYPE: return "dtype mismatch";
    case TG_EARG: return "bad argument";
    case TG_EIO: return "input/output error";
    case TG_EFORMAT: return "malformed file";
    case TG_ESTATE: return "bad state";
    default: return "unknown error";
    }
}

size_t tg_dtype_size(tg_dtype dt)
{
    return dt == TG_F64 ? sizeof(double) : dt == TG_F32 ? sizeof(float) : 0;
}
const char *tg_dtype_name(tg_dtype dt)
{
    return dt == TG_F64 ? "f64" : dt == TG_F32 ? "f32" : "none";
}

/* Byte counts of TG_MAX_NUMEL elements, and a few times that for saved context, fit. */
_Static_assert(SIZE_MAX / 64 >= (uint64_t)TG_MAX_NUMEL, "size_t is too small for TG_MAX_NUMEL");

/* *r = a b for a, b > 0; true if that overflows. */
static inline bool mul_overflows(int64_t a, int64_t b, int64_t *r)
{
#if defined(__GNUC__)
    return __builtin_mul_overflow(a, b, r);
#else
    if (a > INT64_MAX / b) return true;
    *r = a * b;
    return false;
#endif
}

int64_t tg_shape_numel(int ndim, const int64_t *shape)
{
    if ((unsigned)ndim > TG_MAX_DIMS) return -1;
    if (ndim == 0) return 1; /* a scalar (a loss, a chain of scalar ops): no more tests */
    if (!shape) return -1;
    int64_t n = 1; /* the product of the non-zero sizes */
    bool empty = false;
    for (int i = 0; i < ndim; i++) {
        int64_t s = shape[i];
        if (s > 0) {
            if (mul_overflows(n, s, &n) || n > TG_MAX_NUMEL) return -1;
        } else if (s == 0) {
            empty = true;
        } else {
            return -1;
        }
    }
    return empty ? 0 : n;
}

int tg_shape_fail(tg_tape *tp, const char *who, int ndim, const int64_t *shape)
{
    char buf[160];
    if (ndim < 0 || ndim > TG_MAX_DIMS)
        return tg_fail(tp, TG_ESHAPE, "tg_%s: %d dimensions, want 0..%d", who, ndim, TG_MAX_DIMS);
    if (ndim > 0 && !shape) return tg_fail(tp, TG_ESHAPE, "tg_%s: the shape is NULL", who);
    bool empty = false;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return tg_fail(tp, TG_ESHAPE, "tg_%s: shape %s has a negative size", who,
                           tg_shape_fmt(ndim, shape, buf, sizeof buf));
        empty |= shape[i] == 0;
    }
    if (empty)
        return tg_fail(tp, TG_ESHAPE,
                       "tg_%s: shape %s: its non-zero sizes multiply to more than %lld "
                       "(TG_MAX_NUMEL)",
                       who, tg_shape_fmt(ndim, shape, buf, sizeof buf), (long long)TG_MAX_NUMEL);
    return tg_fail(tp, TG_ESHAPE, "tg_%s: shape %s has more than %lld elements (TG_MAX_NUMEL)", who,
                   tg_shape_fmt(ndim, shape, buf, sizeof buf), (long long)TG_MAX_NUMEL);
}

char *tg_shape_fmt(int ndim, const int64_t *shape, char *buf, size_t size)
{
    size_t k = 0;
    if (size == 0) return buf;
    buf[0] = '\0';
    k += (size_t)snprintf(buf + k, size - k, "[");
    for (int i = 0; i < ndim && k < size; i++)
        k += (size_t)snprintf(buf + k, size - k, i ? ",%lld" : "%lld", (long long)shape[i]);
    if (k < size) snprintf(buf + k, size - k, "]");
    return buf;
}

char *tg_shape_str(const tg_tensor *t, char *buf, size_t size)
{
    if (!buf || size == 0) return buf;
    if (!t) {
        snprintf(buf, size, "NULL");
        return buf;
    }
    return tg_shape_fmt(t->ndim, t->shape, buf, size);
}

/* Leaf serials (tg_tensor.serial): from 1 up, never reused. */
static _Atomic uint64_t leaf_serials;

static tg_tensor *leaf_new(tg_dtype dt, int ndim, const int64_t *shape)
{
    int64_t numel = tg_shape_numel(ndim, shape); /* -1 for a bad shape */
    if ((dt != TG_F32 && dt != TG_F64) || numel < 0) return NULL;
    tg_tensor *t = calloc(1, TG_TENSOR_BYTES(ndim));
    if (!t) return NULL;
    t->numel = numel;
    size_t bytes = (size_t)t->numel * tg_dtype_size(dt);
    /* aligned_alloc wants a multiple of the alignment. One spare line at the end: BLIS's
     * AVX2 kernels may read a few bytes past the end of a small C operand. */
    bytes = (bytes + TG_ALIGN - 1) / TG_ALIGN * TG_ALIGN + TG_ALIGN;
    t->data = aligned_alloc(TG_ALIGN, bytes);
    if (!t->data) {
        free(t);
        return NULL;
    }
    memset(t->data, 0, bytes);
    t->ndim = (int8_t)ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    t->dtype = (uint8_t)dt;
    t->leaf = true;
    t->serial = atomic_fetch_add_explicit(&leaf_serials, 1, memory_order_relaxed) + 1;
    return t;
}

tg_tensor *tg_tensor_new(tg_dtype dt, int ndim, const int64_t *shape)
{
    return leaf_new(dt, ndim, shape);
}

tg_tensor *tg_tensor_from(tg_dtype dt, int ndim, const int64_t *shape, const void *data)
{
    if (!data) return NULL;
    tg_tensor *t = leaf_new(dt, ndim, shape);
    if (t && t->numel) memcpy(t->data, data, (size_t)t->numel * tg_dtype_size(dt));
    return t;
}

tg_tensor *tg_tensor_clone(const tg_tensor *src)
{
    if (!src) return NULL;
    return tg_tensor_from((tg_dtype)src->dtype, src->ndim, src->shape, src->data);
}

int tg_tensor_free(tg_tensor *t)
{
    if (!t) return TG_OK;
    if (!t->leaf) return TG_EARG; /* arena tensors die with tg_tape_reset */
    if (t->grad) {
        free(t->grad->data);
        free(t->grad);
    }
    free(t->data);
    free(t);
    return TG_OK;
}

tg_dtype tg_tensor_dtype(const tg_tensor *t) { return t ? (tg_dtype)t->dtype : TG_DTYPE_NONE; }
int tg_tensor_ndim(const tg_tensor *t) { return t ? t->ndim : 0; }
const int64_t *tg_tensor_shape(const tg_tensor *t) { return t ? t->shape : NULL; }
int64_t tg_tensor_numel(const tg_tensor *t) { return t ? t->numel : 0; }
bool tg_tensor_is_leaf(const tg_tensor *t) { return t && t->leaf; }
void *tg_data(tg_tensor *t) { return t ? t->data : NULL; }
const void *tg_data_const(const tg_tensor *t) { return t ? t->data : NULL; }

int64_t tg_tensor_dim(const tg_tensor *t, int axis)
{
    if (!t) return -1;
    if (axis < 0) axis += t->ndim;
    if (axis < 0 || axis >= t->ndim) return -1;
    return t->shape[axis];
}

/* One unsigned compare covers i < 0 and i >= numel. */
static inline bool in_range(const tg_tensor *t, int64_t i)
{
    return t && (uint64_t)i < (uint64_t)t->numel;
}

double tg_get(const tg_tensor *t, int64_t i)
{
    if (!in_range(t, i)) return (double)NAN;
    return t->dtype == TG_F32 ? (double)tg_f32(t)[i] : tg_f64(t)[i];
}

void tg_set(tg_tensor *t, int64_t i, double v)
{
    if (!in_range(t, i)) return;
    if (t->dtype == TG_F32) tg_f32(t)[i] = (float)v;
    else tg_f64(t)[i] = v;
}

tg_tensor *tg_grad(const tg_tensor *t)
{
    if (!t || !t->grad) return NULL;
    /* an intermediate's grad is only meaningful in the sweep that zeroed it */
    if (!t->leaf && (!t->tape || t->grad_sweep != t->tape->sweep)) return NULL;
    tg_grad_settle((tg_tensor *)t); /* t is never a const object: leaves and arena tensors */
    return t->grad;
}

int tg_set_requires_grad(tg_tensor *t, bool on)
{
    if (!t || !t->leaf) return TG_EARG;
    t->requires_grad = on;
    return TG_OK;
}

bool tg_requires_grad(const tg_tensor *t) { return t && t->requires_grad; }

/* A leaf's gradient is a zeroed tensor owned by the leaf; it is marked non-leaf so that
 * tg_tensor_free refuses it and tg_set_requires_grad cannot be set on it. */
int tg_leaf_grad_alloc(tg_tensor *t)
{
    t->grad = leaf_new((tg_dtype)t->dtype, t->ndim, t->shape);
    if (!t->grad) return TG_ENOMEM;
    t->grad->leaf = false;
    return TG_OK;
}

int tg_zero_grad(tg_tensor *t)
{
    if (!t) return TG_EARG;
    if (!t->leaf) return TG_EARG;
    if (!t->grad) return tg_leaf_grad_alloc(t);
    /* zeroed lazily: the next sweep's first write sets it, or tg_grad zeroes it */
    t->grad_unset = true;
    return TG_OK;
}

int tg_tensor_fill(tg_tensor *t, double v)
{
    if (!t) return TG_EARG;
    if (t->dtype == TG_F32)
        for (int64_t i = 0; i < t->numel; i++) tg_f32(t)[i] = (float)v;
    else
        for (int64_t i = 0; i < t->numel; i++) tg_f64(t)[i] = v;
    return TG_OK;
}

int tg_tensor_copy(tg_tensor *dst, const tg_tensor *src)
{
    if (!dst || !src || dst->numel != src->numel) return TG_EARG;
    if (dst == src) return TG_OK; /* memcpy onto itself is undefined */
    if (dst->dtype == src->dtype) {
        if (dst->numel)
            memcpy(dst->data, src->data, (size_t)src->numel * tg_dtype_size(src->dtype));
    } else if (dst->dtype == TG_F32) {
        for (int64_t i = 0; i < src->numel; i++) tg_f32(dst)[i] = (float)tg_f64(src)[i];
    } else {
        for (int64_t i = 0; i < src->numel; i++) tg_f64(dst)[i] = (double)tg_f32(src)[i];
    }
    return TG_OK;
}

/* The largest finite magnitude of t's dtype. */
static double dtype_max(const tg_tensor *t)
{
    return t->dtype == TG_F32 ? (double)FLT_MAX : DBL_MAX;
}

/* Every value lies in [lo, hi], so the range must be finite in t's dtype, and so must its
 * width (DBL_MAX - -DBL_MAX is infinite). */
int tg_tensor_rand_uniform(tg_tensor *t, double lo, double hi, tg_rng *r)
{
    if (!t || !r || !(lo <= hi) || !(fabs(lo) <= dtype_max(t) && fabs(hi) <= dtype_max(t)) ||
        !isfinite(hi - lo))
        return TG_EARG;
    for (int64_t i = 0; i < t->numel; i++) tg_set(t, i, lo + (hi - lo) * tg_rng_uniform(r));
    return TG_OK;
}

/* tg_rng_normal never exceeds 8.58 in magnitude (its uniform is at least 2^-53), so every
 * value stays finite when |mean| + 9 std does. */
int tg_tensor_rand_normal(tg_tensor *t, double mean, double std, tg_rng *r)
{
    if (!t || !r || !(std >= 0) || !(fabs(mean) + 9 * std <= dtype_max(t))) return TG_EARG;
    for (int64_t i = 0; i < t->numel; i++) tg_set(t, i, mean + std * tg_rng_normal(r));
    return TG_OK;
}

void tg_tensor_print(const tg_tensor *t, FILE *f, int64_t max_elems)
{
    char buf[128];
    if (!f) return;
    if (!t) {
        fprintf(f, "tensor(NULL)\n");
        return;
    }
    fprintf(f, "tensor(%s, %s", tg_dtype_name((tg_dtype)t->dtype),
            tg_shape_str(t, buf, sizeof buf));
    int64_t n = max_elems > 0 && max_elems < t->numel ? max_elems : t->numel;
    int64_t row = t->ndim ? t->shape[t->ndim - 1] : 1;
    fprintf(f, ")\n");
    for (int64_t i = 0; i < n; i++) {
        fprintf(f, "%s% .6g", i % (row ? row : 1) == 0 ? (i ? "\n  " : "  ") : " ", tg_get(t, i));
    }
    if (n < t->numel) fprintf(f, " ... (%lld more)", (long long)(t->numel - n));
    fprintf(f, "\n");
}

/* ---- xoshiro256** seeded through splitmix64 (Vigna and Blackman). ---- */
static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void tg_rng_seed(tg_rng *r, uint64_t seed)
{
    if (!r) return;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t tg_rng_next(tg_rng *r)
{
    if (!r) return 0;
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double tg_rng_uniform(tg_rng *r) { return (double)(tg_rng_next(r) >> 11) * 0x1.0p-53; }

double tg_rng_normal(tg_rng *r)
{
    /* Box-Muller; 1 - u keeps the log argument in (0, 1]. Uses one pair per value so the
     * stream does not depend on hidden state. */
    if (!r) return 0;
    double u = 1.0 - tg_rng_uniform(r), v = tg_rng_uniform(r);
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

uint64_t tg_rng_below(tg_rng *r, uint64_t n)
{
    if (!r || n == 0) return 0;
    uint64_t limit = UINT64_MAX - UINT64_MAX % n; /* reject the short last bucket */
    uint64_t x;
    do x = tg_rng_next(r);
    while (x >= limit);
    return x % n;
}
