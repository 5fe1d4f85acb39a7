/* tapegrad/comm.h: the communicator boundary for distributed training.
 *
 * A communicator joins `size` ranks (processes or threads), each knowing its `rank`
 * (0..size-1), for collective operations: every rank calls the same operations in the same
 * order with the same counts and types. Distributed training (dist.h) talks only to this
 * interface, so the core library never links MPI. Two implementations:
 *   - over threads in one process (tg_comm_thread_group_new, in libtapegrad): for tests
 *     and for several ranks sharing one machine's memory;
 *   - over MPI (tg_comm_mpi_new, in libtapegrad_mpi with its own header comm_mpi.h and
 *     pkg-config file tapegrad_mpi).
 * Another transport is a tg_comm_ops table handed to tg_comm_new.
 *
 * Every operation returns 0 or a negative TG_E... code and never aborts: TG_EARG for bad
 * arguments (checked on the calling rank before anything is sent), TG_EIO when the
 * communication failed: a wait timed out (a rank died, hangs or calls other operations), or
 * the ranks disagree on an operation (different counts, types or roots are caught by the
 * thread communicator; MPI may not see them). tg_comm_error gives the message, naming the
 * function, the rank and the values. After a failure the communicator is broken: every
 * later operation fails at once with TG_EIO and the first message.
 *
 * Determinism: the thread communicator sums in rank order 0, 1, ..., size-1 and writes the
 * same bits to every rank, on every run. Over MPI every rank gets the same bits at 2 ranks
 * (a + b = b + a); at more ranks Open MPI's sum is repeatable for a fixed rank count and
 * message size but the standard does not promise the same bits on every rank
 * (docs/distributed.md). */
#ifndef TAPEGRAD_COMM_H
#define TAPEGRAD_COMM_H

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Element types of a buffer. */
typedef enum { TG_COMM_F32 = 0, TG_COMM_F64 = 1, TG_COMM_I64 = 2 } tg_comm_type;

/* Non-blocking operations outstanding at once on one communicator, at most. */
#define TG_COMM_MAX_PENDING 256

typedef struct tg_comm tg_comm;

/* A started non-blocking operation; filled by tg_comm_iallreduce, finished by
 * tg_comm_wait. Plain data owned by the caller (no allocation per operation). */
typedef struct tg_comm_req {
    int64_t id; /* the operation's sequence number on its communicator; -1 when idle */
    tg_comm *comm;
} tg_comm_req;

/* A transport: functions on its own state (self). The library checks the arguments first,
 * so a transport sees n >= 0, a known type, a valid root and a non-NULL buffer when n > 0.
 * Each returns 0, or a negative code with the message written to err (size bytes). */
typedef struct tg_comm_ops {
    const char *name; /* "thread", "mpi", ... */
    /* Sums buf (n elements of type t) over the ranks, in place, every rank getting the sum. */
    int (*allreduce)(void *self, void *buf, int64_t n, tg_comm_type t, char *err, size_t size);
    /* Copies root's buf to every rank's buf. */
    int (*bcast)(void *self, void *buf, int64_t n, tg_comm_type t, int root, char *err,
                 size_t size);
    int (*barrier)(void *self, char *err, size_t size);
    /* Starts an allreduce of buf (which must stay put until the wait) numbered id (0, 1, 2,
     * ... per communicator, at most TG_COMM_MAX_PENDING outstanding); wait finishes it. */
    int (*istart)(void *self, int64_t id, void *buf, int64_t n, tg_comm_type t, char *err,
                  size_t size);
    int (*wait)(void *self, int64_t id, char *err, size_t size);
    /* Lets started operations advance (MPI makes progress only inside its calls); may be
     * NULL. Never fails: a failure shows at the wait. */
    void (*progress)(void *self);
    /* Sets the longest time a wait may take, in seconds. */
    void (*set_timeout)(void *self, double seconds);
    void (*destroy)(void *self);
} tg_comm_ops;

/* A communicator over a transport: rank and size of this rank, ops and self owned by the
 * new communicator from now on (self is destroyed with it, also when this fails). NULL
 * with TG_EARG or TG_ENOMEM in st. */
TG_API tg_comm *tg_comm_new(const tg_comm_ops *ops, void *self, int rank, int size, tg_status *st);
/* Frees the communicator (and its transport state). NULL does nothing. For the thread
 * communicator, free each rank's communicator once its thread is done with it. */
TG_API void tg_comm_free(tg_comm *c);

TG_API int tg_comm_rank(const tg_comm *c); /* -1 for NULL */
TG_API int tg_comm_size(const tg_comm *c); /* -1 for NULL */
TG_API const char *tg_comm_name(const tg_comm *c);
/* The message of the first failure ("" if none). Never NULL. */
TG_API const char *tg_comm_error(const tg_comm *c);

/* The longest a wait may take before it fails with TG_EIO, in seconds (> 0, finite);
 * default 60. Each rank sets its own. TG_EARG for a bad value. */
TG_API int tg_comm_set_timeout(tg_comm *c, double seconds);
TG_API double tg_comm_timeout(const tg_comm *c);

/* Collective operations. n >= 0 elements of type t (n = 0 still synchronises). */
TG_API int tg_comm_allreduce(tg_comm *c, void *buf, int64_t n, tg_comm_type t);
TG_API int tg_comm_bcast(tg_comm *c, void *buf, int64_t n, tg_comm_type t, int root);
TG_API int tg_comm_barrier(tg_comm *c);
/* Non-blocking allreduce: starts the sum of buf and returns at once, filling *req; buf
 * must not be read or written until tg_comm_wait(req) returns. Operations started are
 * collective in the order they are started, like the blocking ones (which may be called
 * while some are outstanding). TG_ESTATE when TG_COMM_MAX_PENDING are outstanding. */
TG_API int tg_comm_iallreduce(tg_comm *c, void *buf, int64_t n, tg_comm_type t, tg_comm_req *req);
/* Waits for a started operation, at most the timeout. The request is idle afterwards,
 * whatever the result. TG_EARG for an idle or foreign request. */
TG_API int tg_comm_wait(tg_comm_req *req);
/* Lets outstanding operations advance while the caller computes. */
TG_API void tg_comm_progress(tg_comm *c);

/* n communicators joined as ranks 0..n-1 of one group (n >= 1), written to out[0..n-1], for
 * n threads to use, one each: a rank's communicator belongs to one thread at a time. The
 * group lives until the last of them is freed. TG_EARG, TG_ENOMEM (out untouched). */
TG_API int tg_comm_thread_group_new(int n, tg_comm **out, tg_status *st);

/* ---- MPI (libtapegrad_mpi: link -ltapegrad_mpi -ltapegrad, pkg-config tapegrad_mpi) ----
 * A communicator over MPI_COMM_WORLD (a duplicate of it, so that the library's operations
 * never match the caller's own). Calls MPI_Init(argc, argv) when MPI is not initialised
 * yet (argc, argv may be NULL). Errors return (MPI_ERRORS_RETURN, set on the duplicate and
 * on MPI_COMM_WORLD): every MPI call is checked and its error string goes into
 * tg_comm_error. Waits poll MPI_Test until the timeout, so a rank that died or hangs makes
 * the others fail with TG_EIO within the timeout instead of hanging. NULL with st on
 * failure. */
TG_API tg_comm *tg_comm_mpi_new(int *argc, char ***argv, tg_status *st);
/* Calls MPI_Finalize if MPI is initialised and not finalised; after a failure (a broken
 * communicator), calls MPI_Abort instead, since a finalize would wait for the dead rank.
 * Free the communicators first. 0 or TG_EIO. */
TG_API int tg_comm_mpi_finalize(bool failed);

#ifdef __cplusplus
}
#endif
#endif
