/* nn/internal.h: the module struct, shared by nn/. Not installed. */
#ifndef TAPEGRAD_NN_INTERNAL_H
#define TAPEGRAD_NN_INTERNAL_H

#include <math.h>

#include "tapegrad.h"

#define NN_MAX_P 2

enum {
    NN_LINEAR,
    NN_ACT,
    NN_PRELU,
    NN_DROPOUT,
    NN_BATCHNORM, /* batchnorm1d, or batchnorm2d when bn2d */
    NN_SEQUENTIAL,
    NN_CONV2D,
    NN_MAX_POOL2D,
    NN_AVG_POOL2D,
    NN_GLOBAL_AVG_POOL2D,
    NN_FLATTEN
};

struct tg_module {
    int kind;
    tg_dtype dtype;
    bool training;
    tg_tensor *p[NN_MAX_P];     /* owned parameters: weight, bias / alpha / gamma, beta */
    tg_tensor *bound[NN_MAX_P]; /* borrowed stand-ins from tg_nn_bind_params, or NULL */
    tg_tensor *buf[NN_MAX_P];   /* owned buffers: running mean, running variance */
    int n_p, n_buf;
    int act;              /* NN_ACT: index into the activation names */
    double alpha;         /* NN_ACT: leaky/elu alpha; NN_DROPOUT: p */
    double momentum, eps; /* NN_BATCHNORM */
    bool bn2d;            /* NN_BATCHNORM: made by tg_nn_batchnorm2d (x must be [N,C,H,W]) */
    tg_conv2d_opts conv;  /* NN_CONV2D: as given, zeros meaning their defaults */
    int64_t kernel[2];    /* NN_CONV2D: kh, kw */
    tg_pool2d_opts pool;  /* NN_MAX_POOL2D, NN_AVG_POOL2D: as given */
    tg_module **children; /* NN_SEQUENTIAL, owned */
    int n_children, cap;
    tg_module *parent; /* the container holding it, or NULL: a module is in one
                          tree at most, and a tree has no cycle */
    int levels;        /* a layer 1, a container one more than its deepest child:
                          the walks recurse, so tg_nn_append bounds it */
    bool has_tensors;  /* a container: some module inside it has tensors, which
                          fixes the tree's dtype */
};

/* autograd/internal.h: the element count of a shape, -1 past TG_MAX_NUMEL */
int64_t tg_shape_numel(int ndim, const int64_t *shape);

/* module.c */
int tg_nn_act_id(const char *name); /* -1 if unknown */
/* Depth-first over parameters (and buffers when with_buf); returns how many. */
int tg_nn_walk(const tg_module *m, bool with_buf, void (*fn)(tg_tensor *t, void *ctx), void *ctx);
int tg_nn_collect(const tg_module *m, bool with_buf, tg_tensor **out, int max);

/* io.c */
/* The bytes tg_nn_save_meta writes for m, new in *out (the caller frees them); who names the
 * caller in messages, path the file. */
int tg_nn_image(const tg_module *m, const char *meta, const char *who, const char *path,
                unsigned char **out, size_t *len, tg_status *st);
/* The checks of tg_nn_load on the image p (len bytes; messages start with what), then with
 * apply set the copy into m's tensors. Nothing changes on failure. */
int tg_nn_image_load(tg_module *m, const char *what, const unsigned char *p, size_t len, bool apply,
                     tg_status *st);
/* Writes n bytes to path as tg_nn_save does: a temporary file beside it, fsync, rename, fsync
 * of the directory; stale temporary files of path removed first. A failure leaves the old
 * file as it was and no temporary file. */
int tg_file_write_atomic(const char *who, const char *path, const unsigned char *p, size_t n,
                         tg_status *st);

#endif
