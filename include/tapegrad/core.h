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

typedef enum { TG_F32 = 0, TG_F64 = 1 } tg_dtype;

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

/* Size in bytes of one element of dtype. */
TG_API size_t tg_dtype_size(tg_dtype dt);
/* "f32" or "f64". */
TG_API const char *tg_dtype_name(tg_dtype dt);

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

/* A small, fast, seeded generator (xoshiro256**). Same seed, same stream, on every machine. */
typedef struct tg_rng {
    uint64_t s[4];
} tg_rng;

TG_API void tg_rng_seed(tg_rng *r, uint64_t seed);
TG_API uint64_t tg_rng_next(tg_rng *r);          /* 64 random bits */
TG_API double tg_rng_uniform(tg_rng *r);         /* uniform in [0, 1) */
TG_API double tg_rng_normal(tg_rng *r);          /* standard normal (Box-Muller) */
TG_API uint64_t tg_rng_below(tg_rng *r, uint64_t n); /* uniform in [0, n), unbiased; 0 if n == 0 */

/* Number of threads BLIS uses for matrix products (process-wide; default 1). */
TG_API void tg_set_num_threads(int n);
TG_API int tg_get_num_threads(void);
/* The BLIS kernel set in use, e.g. "skx" or "haswell" (as BLIS detected it). */
TG_API const char *tg_blis_kernels(void);

#ifdef __cplusplus
}
#endif
#endif
