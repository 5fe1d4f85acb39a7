/* tapegrad/tensor.h: n-dimensional arrays of f32 or f64, contiguous and row-major.
 *
 * Leaves (inputs, targets, parameters) are made by tg_tensor_new / tg_tensor_from and owned
 * by the caller, who frees them with tg_tensor_free. A leaf owns its gradient buffer:
 * allocated on first need, zeroed by tg_zero_grad, freed with the leaf. Tensors returned
 * by ops belong to the tape's arena; tg_tensor_free on one of them is refused (TG_EARG). */
#ifndef TAPEGRAD_TENSOR_H
#define TAPEGRAD_TENSOR_H

#include <stdio.h>

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tg_tensor tg_tensor;

/* A zero-filled leaf of the given shape (ndim 0..TG_MAX_DIMS, every size >= 0, the product
 * of the non-zero sizes at most TG_MAX_NUMEL). Returns NULL on a bad shape or out of memory. */
TG_API tg_tensor *tg_tensor_new(tg_dtype dt, int ndim, const int64_t *shape);
/* A leaf holding a copy of data (numel elements of dt). NULL on bad arguments. */
TG_API tg_tensor *tg_tensor_from(tg_dtype dt, int ndim, const int64_t *shape, const void *data);
/* A leaf with the same dtype and shape as t, and a copy of its values (no gradient). */
TG_API tg_tensor *tg_tensor_clone(const tg_tensor *t);
/* Frees a leaf and its gradient. NULL does nothing. Returns TG_EARG for an arena tensor. */
TG_API int tg_tensor_free(tg_tensor *t);

TG_API tg_dtype tg_tensor_dtype(const tg_tensor *t);
TG_API int tg_tensor_ndim(const tg_tensor *t);
TG_API const int64_t *tg_tensor_shape(const tg_tensor *t);  /* ndim entries */
TG_API int64_t tg_tensor_dim(const tg_tensor *t, int axis); /* negative axis counts from the end */
TG_API int64_t tg_tensor_numel(const tg_tensor *t);
TG_API bool tg_tensor_is_leaf(const tg_tensor *t);
/* "[2,3,4]" written into buf (always NUL-terminated); returns buf. */
TG_API char *tg_shape_str(const tg_tensor *t, char *buf, size_t size);

/* The raw, contiguous, row-major values: float* for TG_F32, double* for TG_F64. */
TG_API void *tg_data(tg_tensor *t);
TG_API const void *tg_data_const(const tg_tensor *t);
/* Element i (flat index) as double, and its setter. tg_get is NaN and tg_set does nothing
 * when t is NULL or i is outside [0, numel) (core.h states every accessor's NULL rule). */
TG_API double tg_get(const tg_tensor *t, int64_t i);
TG_API void tg_set(tg_tensor *t, int64_t i, double v);

/* The gradient of t from the last sweep(s), or NULL if none reached it yet. */
TG_API tg_tensor *tg_grad(const tg_tensor *t);
/* Marks a leaf as needing a gradient. Refused (TG_EARG) for arena tensors. */
TG_API int tg_set_requires_grad(tg_tensor *t, bool on);
TG_API bool tg_requires_grad(const tg_tensor *t);
/* Zeroes a leaf's gradient, allocating it if absent. TG_ENOMEM, or TG_EARG for NULL.
 * The zeroing is lazy: the next sweep's first write overwrites the buffer (no memset before
 * a GEMM with beta = 1), and tg_grad zeroes it if it is read first. So read the gradient
 * through tg_grad after tg_zero_grad, not through a data pointer kept from before. */
TG_API int tg_zero_grad(tg_tensor *t);

/* Fill helpers for leaves (and arena tensors outside a sweep). Return 0 or TG_EARG. */
TG_API int tg_tensor_fill(tg_tensor *t, double v);
/* Copies values from src into dst (same numel), converting between f32 and f64. */
TG_API int tg_tensor_copy(tg_tensor *dst, const tg_tensor *src);
/* Seeded random fills: uniform on [lo, hi), normal with mean and std. The same seed gives
 * the same values for f32 and f64 (up to rounding). */
TG_API int tg_tensor_rand_uniform(tg_tensor *t, double lo, double hi, tg_rng *r);
TG_API int tg_tensor_rand_normal(tg_tensor *t, double mean, double std, tg_rng *r);

/* Prints shape, dtype and values (at most max_elems, 0 = all) to f. */
TG_API void tg_tensor_print(const tg_tensor *t, FILE *f, int64_t max_elems);

#ifdef __cplusplus
}
#endif
#endif
