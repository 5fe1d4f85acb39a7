/* test/ddp_data.h: the data set of the data-parallel tests (test_ddp over threads, mpi_ddp
 * over MPI), so that both check the same problem: NROWS rows of DIN normal features, NCLS
 * classes cut from the first two. Header-only, like check.h. */
#ifndef TAPEGRAD_TEST_DDP_DATA_H
#define TAPEGRAD_TEST_DDP_DATA_H

#include "tapegrad.h"

#define NROWS 98 /* 98 = 4 x 24 + 2: with 3 ranks x 8 the last global batch is 1, 1, 0 rows */
#define DIN 5
#define NCLS 3

static tg_dataset data;

/* Fills data once (seed 7). */
static void make_data(void)
{
    if (data.x) return;
    int64_t sx[2] = {NROWS, DIN}, sy[1] = {NROWS};
    data.x = tg_tensor_new(TG_F64, 2, sx);
    data.y = tg_tensor_new(TG_F64, 1, sy);
    data.n = NROWS, data.d = DIN, data.n_classes = NCLS;
    tg_rng g;
    tg_rng_seed(&g, 7);
    tg_tensor_rand_normal(data.x, 0, 1, &g);
    for (int64_t i = 0; i < NROWS; i++) {
        double s = tg_get(data.x, i * DIN) + 0.5 * tg_get(data.x, i * DIN + 1);
        tg_set(data.y, i, s > 0.4 ? 2 : s > -0.4 ? 1 : 0);
    }
}

#endif
