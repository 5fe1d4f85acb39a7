/* tapegrad/core.h: dtypes, error codes, export macro and the seeded random generator.
 *
 * Shared contract of the public API: every op takes the tape first; tensors made by
 * tg_tensor_new/tg_tensor_from are owned by the caller; tensors returned by ops live in
 * the tape's arena until tg_tape_reset. Errors are sticky and never fatal: the first one
 * is kept on the tape, the op returns NULL, and ops given NULL return NULL. Functions
 * that return no tensor return 0 (TG_OK) or a negative TG_E... code. */
#ifndef TAPEGRAD_CORE_H
#define TAPEGRAD_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define TG_API __attribute__((visibility("default")))
#else
#define TG_API
#endif

#define TG_MAX_DIMS 6 /* tensors have 0..TG_MAX_DIMS dimensions */

/* The most elements a tensor may have, 2^48 (281474976710656), which also bounds the
 * product of its non-zero sizes: an empty [2^40,2^40,0] cannot exist, since reducing or
 * slicing away its 0 would give 2^80 elements. Every size count, byte count and index an op
 * derives from a valid shape then fits in 64 bits with room to spare (and 2^48 bytes is a
 * whole x86-64 address space with 4-level paging). tg_tensor_new returns NULL for a larger
 * shape, and an op whose output would be larger fails with TG_ESHAPE, recording nothing:
 * "tg_add: shape [1099511627776,1099511627776,0]: its non-zero sizes multiply to more
 * than 281474976710656 (TG_MAX_NUMEL)". */
#define TG_MAX_NUMEL ((int64_t)1 << 48)

/* TG_DTYPE_NONE is what tg_tensor_dtype(NULL) returns: no tensor has it, tg_dtype_size
 * gives 0 for it, tg_dtype_name "none", and tg_tensor_new refuses it. */
typedef enum { TG_DTYPE_NONE = -1, TG_F32 = 0, TG_F64 = 1 } tg_dtype;

enum {
    TG_OK = 0,
    TG_ENOMEM = -1,  /* an allocation failed */
    TG_ESHAPE = -2,  /* shapes do not fit the op */
    TG_EDTYPE = -3,  /* dtypes differ or are not supported */
    TG_EARG = -4,    /* a bad argument: NULL, axis out of range, bad value */
    TG_EIO = -5,     /* a file could not be read or written */
    TG_EFORMAT = -6, /* a file is malformed, truncated or corrupted */
    TG_ESTATE = -7   /* the call does not fit the object's state (e.g. a reset tape) */
};

/* Name of an error code, e.g. "shape mismatch". Never NULL. */
TG_API const char *tg_strerror(int code);

/* Size in bytes of one element of dtype; 0 for anything but TG_F32 and TG_F64. */
TG_API size_t tg_dtype_size(tg_dtype dt);
/* "f32" or "f64"; "none" for anything else. Never NULL. */
TG_API const char *tg_dtype_name(tg_dtype dt);

/* The tensor functions of tensor.h never crash on a NULL tensor or an index out of range.
 * Given NULL, tg_tensor_dtype returns TG_DTYPE_NONE; tg_tensor_ndim and tg_tensor_numel 0;
 * tg_tensor_shape, tg_data, tg_data_const, tg_grad and tg_tensor_clone NULL;
 * tg_tensor_is_leaf and tg_requires_grad false; tg_tensor_dim -1 (also for an axis out of
 * range); tg_tensor_free does nothing; tg_set_requires_grad, tg_zero_grad, tg_tensor_fill,
 * tg_tensor_copy and the random fills return TG_EARG. tg_get(t, i) is NaN when t is NULL
 * or i is outside [0, numel), and tg_set does nothing then. tg_shape_str writes "NULL" for
 * a NULL tensor and nothing when buf is NULL or size is 0. tg_tensor_print writes
 * "tensor(NULL)" for a NULL tensor, and nothing to a NULL file; max_elems <= 0 prints all.
 * The random fills refuse (TG_EARG, the tensor unchanged) a range whose values could be
 * infinite in the tensor's dtype: tg_tensor_rand_uniform wants lo <= hi, both finite in the
 * dtype, and a finite hi - lo; tg_tensor_rand_normal wants std >= 0 and |mean| + 9 std
 * finite in the dtype (no draw of tg_rng_normal exceeds 8.58 in magnitude). */

/* Status for calls that have no tape (file readers, model save/load): code and a message
 * naming the file and what is wrong. Pass NULL where the details are not wanted. */
typedef struct tg_status {
    int code;
    char msg[256];
} tg_status;

/* Fills *st (when st is not NULL) with code and the formatted message; returns code, so a
 * function can `return tg_status_set(st, TG_EARG, "...", ...)`. */
TG_API int tg_status_set(tg_status *st, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* A small, fast, seeded generator (xoshiro256**). Same seed, same stream, on every machine.
 * Given a NULL generator, tg_rng_seed does nothing and the others return 0. */
typedef struct tg_rng {
    uint64_t s[4];
} tg_rng;

TG_API void tg_rng_seed(tg_rng *r, uint64_t seed);
TG_API uint64_t tg_rng_next(tg_rng *r);              /* 64 random bits */
TG_API double tg_rng_uniform(tg_rng *r);             /* uniform in [0, 1) */
TG_API double tg_rng_normal(tg_rng *r);              /* standard normal (Box-Muller) */
TG_API uint64_t tg_rng_below(tg_rng *r, uint64_t n); /* uniform in [0, n), unbiased; 0 if n == 0 */

/* Number of threads BLIS uses for matrix products, and the library's own parallel loops
 * (process-wide; default 1, or what BLIS read from BLIS_NUM_THREADS or OMP_NUM_THREADS at
 * start, which is not checked). tg_set_num_threads bounds n by the CPUs the process may run
 * on (OpenMP's omp_get_num_procs, which follows the affinity mask; the online CPUs without
 * OpenMP), since more threads than CPUs only slow a GEMM down, by hundreds of times, and
 * 100000 crashed libgomp. It returns the count applied (1 to that bound), or TG_EARG for
 * n < 1, which changes nothing. Set it before starting threads of your own: every
 * thread's GEMMs use it (docs/design.md, Threads). */
TG_API int tg_set_num_threads(int n);
TG_API int tg_get_num_threads(void);
/* The BLIS kernel set in use, e.g. "skx" or "haswell" (as BLIS detected it). */
TG_API const char *tg_blis_kernels(void);

#ifdef __cplusplus
}
#endif
#endif
