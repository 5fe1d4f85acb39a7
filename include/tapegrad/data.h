/* tapegrad/data.h: data sets in, batches out. IDX files (plain or gzip; MNIST and
 * Fashion-MNIST), numeric CSV files, seeded shuffling and splits, standardisation,
 * mini-batch iteration without allocation per batch, and metrics.
 *
 * Readers reject malformed files with the file name, the line and column or byte offset
 * and the reason in the tg_status, return a negative TG_E... code, and leave their outputs
 * untouched. They read regular files only: a FIFO, a device or a directory is TG_EIO before
 * a byte is read (no reader blocks on one). Values must be finite and fit the dtype asked
 * for (1e39 is refused for f32, accepted for f64); values too small for it become 0 or
 * subnormal, as the conversion rounds them. Nothing here aborts. */
#ifndef TAPEGRAD_DATA_H
#define TAPEGRAD_DATA_H

#include <stdio.h>

#include "core.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tg_dataset {
    tg_tensor *x; /* [n, d] features */
    tg_tensor *y; /* [n] class indices stored as numbers, or [n, k] regression targets */
    int64_t n, d;
    int n_classes; /* 0 for regression targets */
    /* Instead of x (then NULL): features stored as bytes, [n, d] row-major, each feature
     * worth byte / 255 (tg_load_mnist_bytes). The batcher converts rows as it copies them;
     * split and standardisation need x. */
    unsigned char *x_bytes;
} tg_dataset;

/* Frees x and y and zeroes the struct; NULL-safe. */
TG_API void tg_dataset_free(tg_dataset *ds);

/* An IDX file (plain, or gzip detected by its magic): any of the format's element types
 * (ubyte, byte, short, int, float, double; big-endian). A file of ndim >= 2 gives [n, rest]
 * flattened; ndim 1 gives [n]. Unsigned bytes of ndim >= 2 (images) are scaled to [0, 1].
 * On success *out is a new leaf owned by the caller. Errors: TG_EIO (missing, unreadable,
 * not a regular file), TG_EFORMAT (bad magic, truncated, trailing data, sizes the file
 * cannot hold; a gzip stream cut anywhere, corrupt (CRC-32 or length), or followed by bytes
 * that are not another gzip member; a float or double element that is NaN, infinite or
 * beyond f32's range for f32: the message names its offset), TG_ENOMEM; *out is then
 * untouched. The header's sizes are checked against the file size before anything is
 * allocated. */
TG_API int tg_idx_load(const char *path, tg_dtype dt, tg_tensor **out, tg_status *st);
/* MNIST-style directory: train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images...,
 * t10k-labels... (each plain or with .gz). dir NULL means /usr/share/datasets/fashion-mnist,
 * where Debian's dataset-fashion-mnist package puts Fashion-MNIST. */
TG_API int tg_load_mnist_dir(const char *dir, tg_dtype dt, tg_dataset *train, tg_dataset *test,
                             tg_status *st);
/* The same with the images kept as bytes in x_bytes (a quarter of f32's memory: 55 MB
 * instead of 219 MB for Fashion-MNIST); batches are converted to dt as they are drawn. */
TG_API int tg_load_mnist_bytes(const char *dir, tg_dtype dt, tg_dataset *train, tg_dataset *test,
                               tg_status *st);
/* Class names of Fashion-MNIST, in label order. */
TG_API extern const char *const tg_fashion_mnist_classes[10];

typedef struct tg_csv_opts {
    int header;      /* -1: detect (a first line with no numeric field), 0: none, 1: yes */
    int label_col;   /* label column; negative counts from the end (-1: the last) */
    bool regression; /* real-valued target; otherwise integer labels 0..K-1 (K = max + 1) */
    char delim;      /* field separator (',' when 0): a space, a tab or ASCII punctuation
                        other than . + - _ ( ) " ' */
} tg_csv_opts;

/* A numeric CSV file: every row the same number of fields; one label column, the rest are
 * features. A field is a number as strtod reads it, spaces and tabs around it ignored; NaN
 * and infinities ("nan", "inf") are refused, and so are values beyond the dtype's range.
 * Blank lines, spaces around fields, a UTF-8 byte order mark and LF, CRLF or CR line ends
 * (mixed too) are accepted; quoted fields are not. Class labels must be integers 0..9999
 * (n_classes = largest + 1, y is [n]); regression targets give y [n, 1]. opts NULL means
 * {-1, -1, false, ','}. Errors (st names the file, the line, the column (a byte count from
 * 1) and the reason; *out untouched): TG_EIO (missing, unreadable, not a regular file),
 * TG_EFORMAT (ragged rows, non-numeric or non-finite fields, values beyond the dtype, bad
 * labels, no data rows, a NUL byte, more than 2 GiB), TG_EARG (label column out of range,
 * a delimiter that can be part of a number, a quoted field or a line end: a letter, a
 * digit, . + - _ ( ) " ', a control character or a non-ASCII byte), TG_ENOMEM. */
TG_API int tg_csv_load(const char *path, tg_dtype dt, const tg_csv_opts *opts, tg_dataset *out,
                       tg_status *st);

/* Shuffles the rows with a generator seeded by seed and copies n - round(n · test_fraction)
 * of them into train and the rest into test (new tensors owned by the caller; all is not
 * changed). 0 < test_fraction < 1 and both parts non-empty, else TG_EARG. */
TG_API int tg_dataset_split(const tg_dataset *all, double test_fraction, uint64_t seed,
                            tg_dataset *train, tg_dataset *test, tg_status *st);
/* Standardises every feature column with the mean and (population) standard deviation of
 * fit (the training set), applied in place to fit and to other (may be NULL). Constant
 * columns are only centred. TG_EARG for a malformed or empty set or a different width or
 * dtype, TG_ENOMEM. */
TG_API int tg_dataset_standardize(tg_dataset *fit, tg_dataset *other);

/* ---- batches: full (batch = n), mini-batch, or stochastic (batch = 1) ---- */
typedef struct tg_batcher tg_batcher;
/* Iterates over ds in batches of `batch` rows (clamped to n), reshuffled each epoch when
 * shuffle is set (a generator seeded by seed; otherwise in order). The batch tensors are
 * allocated here, once: the last, shorter batch of an epoch has its own pair, so iterating
 * allocates nothing. ds must outlive the batcher. NULL (TG_EARG, TG_ENOMEM in st) on error. */
TG_API tg_batcher *tg_batcher_new(const tg_dataset *ds, int64_t batch, bool shuffle, uint64_t seed,
                                  tg_status *st);
TG_API void tg_batcher_free(tg_batcher *b);
/* Starts a new epoch (reshuffling if asked). A new batcher starts at an epoch's start. */
TG_API void tg_batcher_reset(tg_batcher *b);
/* The next batch of the epoch in *x, *y (owned by the batcher, overwritten by the next
 * call); false at the end of the epoch. */
TG_API bool tg_batcher_next(tg_batcher *b, tg_tensor **x, tg_tensor **y);
TG_API int64_t tg_batcher_count(const tg_batcher *b); /* batches per epoch */

/* Rank `rank` of `size` processes (data-parallel training): every epoch the same
 * permutation of the rows as tg_batcher_new's for that seed, whatever size is (so
 * tg_batcher_new(ds, b, sh, seed, st) is tg_batcher_new_shard(ds, b, sh, seed, 0, 1, st)),
 * cut into global batches of size · batch rows; rank r gets rows [r · batch, (r + 1) · batch)
 * of each. The last, shorter global batch (m rows; the only one when size · batch >= n) is
 * cut into size contiguous parts in rank order, the first m mod size one row longer. A part
 * may be empty: tg_batcher_next then returns true with 0-row tensors, so every rank makes
 * the same number of steps (tg_batcher_count, the same on every rank). Errors (NULL, st):
 * TG_EARG also for size < 1 or a rank outside [0, size). */
TG_API tg_batcher *tg_batcher_new_shard(const tg_dataset *ds, int64_t batch, bool shuffle,
                                        uint64_t seed, int rank, int size, tg_status *st);
/* Rows of the global batch (all ranks' parts) that the last tg_batcher_next returned: what a
 * sum of per-row losses over all ranks is divided by. 0 before an epoch's first batch, after
 * its end and for NULL. */
TG_API int64_t tg_batcher_global_rows(const tg_batcher *b);
/* The batcher's state, for checkpoints (checkpoint.h): the shuffle generator, this epoch's
 * order of the rows and the position in it (8 · (7 + n) bytes; 0 for NULL). A batcher over
 * the same rows with the same shuffle flag, given a saved state, goes on with the batches
 * the saved one would have given next, and with the same orders in the epochs after. The
 * state is global: a shard of any size and rank may load it when the position is the start
 * of one of its global batches. Save wants exactly tg_batcher_state_size bytes (TG_EARG).
 * Load checks everything first: TG_ESHAPE for another row count, TG_EARG for another
 * shuffle flag, TG_EFORMAT for a position that starts no global batch or an order that is no
 * permutation; nothing changes then. */
TG_API size_t tg_batcher_state_size(const tg_batcher *b);
TG_API int tg_batcher_state_save(const tg_batcher *b, void *buf, size_t size, tg_status *st);
TG_API int tg_batcher_state_load(tg_batcher *b, const void *buf, size_t size, tg_status *st);

/* ---- metrics ---- */
/* Labels are class indices: integers 0..C-1 stored as numbers. A fractional, negative, NaN
 * or too large label is a bad argument, never counted as a miss. */
/* Share of rows of scores [n, C] whose largest score is at the label's index; NAN on bad
 * shapes or a label that is not a class index 0..C-1. */
TG_API double tg_accuracy(const tg_tensor *scores, const tg_tensor *labels);
/* Mean squared difference of two tensors with the same number of elements; NAN otherwise. */
TG_API double tg_mse(const tg_tensor *pred, const tg_tensor *target);
/* Counts into out[true * n_classes + predicted] (n_classes² entries, zeroed first), the
 * prediction being each row's argmax. TG_EARG on bad shapes or a label that is not an
 * integer 0..n_classes-1 (out untouched). */
TG_API int tg_confusion_matrix(const tg_tensor *scores, const tg_tensor *labels, int n_classes,
                               int64_t *out);
/* Prints the matrix with per-class recall; names (n_classes entries) may be NULL. */
TG_API int tg_confusion_print(FILE *f, const int64_t *m, int n_classes, const char *const *names);

#ifdef __cplusplus
}
#endif
#endif
