/* tapegrad/checkpoint.h: one file holding everything a training run needs to go on where it
 * stopped: the model's parameters and buffers, the optimiser's state, the batcher's
 * generator and position, the tape's generator (dropout), epoch and step counters, and a
 * small blob of the caller's. Format and guarantees: docs/nn.md, Checkpoints. */
#ifndef TAPEGRAD_CHECKPOINT_H
#define TAPEGRAD_CHECKPOINT_H

#include "core.h"
#include "data.h"
#include "nn.h"
#include "optim.h"
#include "tape.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TG_CHECKPOINT_MAX_USER 65536 /* bytes of the caller's blob */

/* What a checkpoint saves and restores. model is required; optim, batcher and tape may be
 * NULL (then they are neither saved nor restored). */
typedef struct tg_checkpoint {
    tg_module *model;    /* parameters and buffers (batch norm's running statistics) */
    tg_optim *optim;     /* slots, step count (the schedule's position), base lr, extra state */
    tg_batcher *batcher; /* shuffle generator, this epoch's order, position in it */
    tg_tape *tape;       /* the generator of random ops (dropout) */
    int64_t epoch, step; /* the caller's counters, saved and restored as they are */
    const char *meta;    /* save: the model's description, as tg_nn_save_meta's (may be NULL) */
    void *user;          /* save: user_len bytes to keep; load: a buffer of user_cap bytes */
    size_t user_len;     /* save: at most TG_CHECKPOINT_MAX_USER; load: the stored length */
    size_t user_cap;
} tg_checkpoint;

/* Writes c's objects to path atomically: the whole file goes to a temporary file beside it
 * (PATH.tmp.PID.XXXXXX), is fsynced and renamed over path, then the directory is synced. A
 * failure (or the process killed at any point) leaves an old checkpoint at path as it was,
 * and no temporary file behind (one left by a killed process is removed by the next save to
 * path). Errors: TG_EARG (NULL model or path, user_len too large, a description that does not
 * fit the model), TG_EIO (the write, with the file named and the reason), TG_ENOMEM. */
TG_API int tg_checkpoint_save(const char *path, const tg_checkpoint *c, tg_status *st);
/* Restores c's objects from path. Everything is checked before anything changes: the magic,
 * the version, a CRC-32 of the whole file (a truncation or a flipped bit anywhere), its
 * structure, the model's tensors against c->model (dtype, count, shapes), the optimiser's
 * method, dtype, sizes and options that size its state (L-BFGS's history), the batcher's
 * row count and shuffle flag, and that the file holds every object c names (a section the
 * file holds for an object c leaves NULL is skipped). Errors, with st naming the file and
 * what is wrong and nothing changed: TG_EIO (missing, not a regular file), TG_EFORMAT
 * (malformed, truncated, corrupted, a missing section), TG_EDTYPE, TG_ESHAPE, TG_EARG (another
 * optimiser method or shuffle flag, a stored blob larger than user_cap), TG_ENOMEM. On
 * success the next step of the restored objects is the one the saved run took next, bit for
 * bit (the same data and code given). */
TG_API int tg_checkpoint_load(const char *path, tg_checkpoint *c, tg_status *st);

#ifdef __cplusplus
}
#endif
#endif
