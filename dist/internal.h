/* dist/internal.h: the communicator struct and helpers shared by dist/. Not installed. */
#ifndef TAPEGRAD_DIST_INTERNAL_H
#define TAPEGRAD_DIST_INTERNAL_H

#include "tapegrad.h"
#include "tapegrad/comm.h"

struct tg_comm {
    const tg_comm_ops *ops;
    void *self; /* the transport's state */
    int rank, size;
    double timeout;
    int64_t next_id;                     /* of the next non-blocking operation */
    int pending;                         /* non-blocking operations outstanding */
    int64_t active[TG_COMM_MAX_PENDING]; /* active[id % MAX] = id while outstanding, else -1 */
    bool broken;                         /* a transport failure happened: all later calls fail */
    char err[256];
};

size_t tg_comm_type_size(tg_comm_type t); /* 4 or 8; 0 for an unknown type */
const char *tg_comm_type_name(tg_comm_type t);

#endif
