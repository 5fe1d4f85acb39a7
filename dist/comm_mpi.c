/* dist/comm_mpi.c: the communicator over MPI (libtapegrad_mpi; comm.h, MPI section).
 *
 * Every operation is non-blocking underneath (MPI_Iallreduce, MPI_Ibcast, MPI_Ibarrier) and
 * finished by polling MPI_Test against a deadline: MPI's own blocking calls would wait for
 * a dead rank forever. Errors return (MPI_ERRORS_RETURN); each call's code is checked and
 * its MPI_Error_string reported. Counts above INT_MAX go in several operations.
 *
 * At 2 ranks an allreduce is an exchange: each rank sends its buffer to the other
 * (MPI_Isend, MPI_Irecv into a scratch buffer) and adds the two in rank order at the wait.
 * It moves what a ring would (n each way) in one step, where Open MPI's MPI_Iallreduce
 * (libnbc) took 1.3 to 4 times as long for the bench MLP's 1 MB of gradients on this
 * machine (measured alternately in one run), and both ranks get rank 0's + rank 1's bits.
 * At more ranks: MPI_Iallreduce. */
#include <limits.h>
#include <mpi.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "internal.h"

/* One outstanding operation: its requests and, for the 2-rank exchange, the buffer, the
 * count and the scratch the other rank's part arrives in (grown when too small, kept). */
typedef struct op_slot {
    MPI_Request r[2];
    int nr;
    void *buf, *scratch;
    int64_t n;
    tg_comm_type t;
    size_t cap;
} op_slot;

typedef struct mpi_state {
    MPI_Comm comm;
    int rank, size;
    double timeout;
    op_slot slot[TG_COMM_MAX_PENDING];
    op_slot block; /* the blocking allreduce's */
} mpi_state;

static bool any_failed; /* some communicator failed: finalize aborts instead */

static MPI_Datatype mpi_type(tg_comm_type t)
{
    return t == TG_COMM_F32 ? MPI_FLOAT : t == TG_COMM_F64 ? MPI_DOUBLE : MPI_INT64_T;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int mpi_fail(const mpi_state *s, const char *what, int code, char *err, size_t size)
{
    char es[MPI_MAX_ERROR_STRING] = "";
    int len = 0;
    MPI_Error_string(code, es, &len);
    if (err && size)
        snprintf(err, size, "%s: rank %d of %d: MPI error: %s", what, s->rank, s->size, es);
    any_failed = true;
    return TG_EIO;
}

/* Polls the nr requests r until they complete or the timeout passes: MPI_Testall back to
 * back, yielding the core after the first 256 tests, for 0.2 s (Open MPI moves a large
 * message on only inside its calls, so sleeping between tests would stall every
 * fragment), then with sleeps of 50 us. */
static int timed_waitall(const mpi_state *s, int nr, MPI_Request *r, const char *what, char *err,
                         size_t size)
{
    double t0 = now_s();
    for (long spin = 0;; spin++) {
        int done = 0, rc = MPI_Testall(nr, r, &done, MPI_STATUSES_IGNORE);
        if (rc != MPI_SUCCESS) return mpi_fail(s, what, rc, err, size);
        if (done) return TG_OK;
        if (spin >= 256) sched_yield(); /* the other rank may be waiting for this core */
        if (spin % 64 == 63 && now_s() - t0 > 0.2) {
            if (now_s() - t0 > s->timeout) {
                if (err && size)
                    snprintf(err, size,
                             "%s: rank %d of %d: timed out after %g s waiting for the other "
                             "ranks (one died, hangs, or calls another operation)",
                             what, s->rank, s->size, s->timeout);
                any_failed = true;
                return TG_EIO;
            }
            struct timespec ts = {0, 50000};
            nanosleep(&ts, NULL);
        }
    }
}

static int timed_wait(const mpi_state *s, MPI_Request *r, const char *what, char *err, size_t size)
{
    return timed_waitall(s, 1, r, what, err, size);
}

/* Starts the 2-rank exchange of buf (n <= INT_MAX elements) in o. */
static int exchange_start(mpi_state *s, op_slot *o, int64_t id, void *buf, int64_t n,
                          tg_comm_type t, const char *what, char *err, size_t size)
{
    size_t bytes = (size_t)n * tg_comm_type_size(t);
    if (bytes > o->cap) {
        void *p = realloc(o->scratch, bytes);
        if (!p) {
            if (err && size)
                snprintf(err, size, "%s: rank %d: out of memory for %zu bytes", what, s->rank,
                         bytes);
            return TG_ENOMEM;
        }
        o->scratch = p, o->cap = bytes;
    }
    o->buf = buf, o->n = n, o->t = t, o->nr = 2;
    int peer = 1 - s->rank, tag = (int)(id % 32768);
    int rc = MPI_Irecv(o->scratch, (int)n, mpi_type(t), peer, tag, s->comm, &o->r[0]);
    if (rc == MPI_SUCCESS) rc = MPI_Isend(buf, (int)n, mpi_type(t), peer, tag, s->comm, &o->r[1]);
    return rc == MPI_SUCCESS ? TG_OK : mpi_fail(s, what, rc, err, size);
}

/* Finishes the exchange: the sum rank 0's part + rank 1's part, on both ranks. */
static int exchange_finish(const mpi_state *s, op_slot *o, const char *what, char *err, size_t size)
{
    int rc = timed_waitall(s, 2, o->r, what, err, size);
    o->nr = 0;
    if (rc) return rc;
    int64_t n = o->n;
    if (o->t == TG_COMM_F32) {
        float *restrict b = o->buf;
        const float *restrict x = o->scratch;
        if (s->rank == 0)
            for (int64_t i = 0; i < n; i++) b[i] = b[i] + x[i];
        else
            for (int64_t i = 0; i < n; i++) b[i] = x[i] + b[i];
    } else if (o->t == TG_COMM_F64) {
        double *restrict b = o->buf;
        const double *restrict x = o->scratch;
        if (s->rank == 0)
            for (int64_t i = 0; i < n; i++) b[i] = b[i] + x[i];
        else
            for (int64_t i = 0; i < n; i++) b[i] = x[i] + b[i];
    } else {
        int64_t *restrict b = o->buf;
        const int64_t *restrict x = o->scratch;
        for (int64_t i = 0; i < n; i++) b[i] = (int64_t)((uint64_t)b[i] + (uint64_t)x[i]);
    }
    return TG_OK;
}

static int m_allreduce(void *self, void *buf, int64_t n, tg_comm_type t, char *err, size_t size)
{
    mpi_state *s = self;
    size_t es = tg_comm_type_size(t);
    do { /* n = 0 still synchronises */
        int k = n > INT_MAX ? INT_MAX : (int)n;
        int rc;
        if (s->size == 2) {
            rc = exchange_start(s, &s->block, 0, buf, k, t, "tg_comm_allreduce", err, size);
            if (!rc) rc = exchange_finish(s, &s->block, "tg_comm_allreduce", err, size);
            if (rc) return rc;
        } else if (s->size > 1) {
            MPI_Request r;
            rc = MPI_Iallreduce(MPI_IN_PLACE, buf, k, mpi_type(t), MPI_SUM, s->comm, &r);
            if (rc != MPI_SUCCESS) return mpi_fail(s, "tg_comm_allreduce", rc, err, size);
            if ((rc = timed_wait(s, &r, "tg_comm_allreduce", err, size))) return rc;
        }
        buf = (char *)buf + es * (size_t)k, n -= k;
    } while (n > 0);
    return TG_OK;
}

static int m_bcast(void *self, void *buf, int64_t n, tg_comm_type t, int root, char *err,
                   size_t size)
{
    mpi_state *s = self;
    size_t es = tg_comm_type_size(t);
    do {
        int k = n > INT_MAX ? INT_MAX : (int)n;
        MPI_Request r;
        int rc = MPI_Ibcast(buf, k, mpi_type(t), root, s->comm, &r);
        if (rc != MPI_SUCCESS) return mpi_fail(s, "tg_comm_bcast", rc, err, size);
        if ((rc = timed_wait(s, &r, "tg_comm_bcast", err, size))) return rc;
        buf = (char *)buf + es * (size_t)k, n -= k;
    } while (n > 0);
    return TG_OK;
}

static int m_barrier(void *self, char *err, size_t size)
{
    mpi_state *s = self;
    MPI_Request r;
    int rc = MPI_Ibarrier(s->comm, &r);
    if (rc != MPI_SUCCESS) return mpi_fail(s, "tg_comm_barrier", rc, err, size);
    return timed_wait(s, &r, "tg_comm_barrier", err, size);
}

static int m_istart(void *self, int64_t id, void *buf, int64_t n, tg_comm_type t, char *err,
                    size_t size)
{
    mpi_state *s = self;
    if (n > INT_MAX) {
        if (err && size)
            snprintf(err, size,
                     "tg_comm_iallreduce: rank %d: %lld elements: at most INT_MAX in one "
                     "non-blocking operation",
                     s->rank, (long long)n);
        return TG_EARG;
    }
    op_slot *o = &s->slot[id % TG_COMM_MAX_PENDING];
    if (s->size == 2) return exchange_start(s, o, id, buf, n, t, "tg_comm_iallreduce", err, size);
    o->nr = 1, o->buf = NULL;
    if (s->size == 1) return TG_OK; /* the sum of one: o->r[0] is MPI_REQUEST_NULL */
    int rc = MPI_Iallreduce(MPI_IN_PLACE, buf, (int)n, mpi_type(t), MPI_SUM, s->comm, &o->r[0]);
    if (rc != MPI_SUCCESS) return mpi_fail(s, "tg_comm_iallreduce", rc, err, size);
    return TG_OK;
}

static int m_wait(void *self, int64_t id, char *err, size_t size)
{
    mpi_state *s = self;
    op_slot *o = &s->slot[id % TG_COMM_MAX_PENDING];
    if (!err) { /* the communicator is broken: only forget the request */
        o->r[0] = o->r[1] = MPI_REQUEST_NULL, o->nr = 0;
        return TG_EIO;
    }
    int rc = o->nr == 2 ? exchange_finish(s, o, "tg_comm_wait", err, size)
                        : timed_wait(s, &o->r[0], "tg_comm_wait", err, size);
    if (rc) o->r[0] = o->r[1] = MPI_REQUEST_NULL;
    o->nr = 0;
    return rc;
}

/* MPI advances non-blocking operations only inside its calls: a test of each outstanding
 * request lets them move on while the sweep computes. */
static void m_progress(void *self)
{
    mpi_state *s = self;
    for (int i = 0; i < TG_COMM_MAX_PENDING; i++)
        if (s->slot[i].nr && s->slot[i].r[0] != MPI_REQUEST_NULL) {
            int done = 0;
            MPI_Test(&s->slot[i].r[0], &done, MPI_STATUS_IGNORE);
            break; /* one test drives Open MPI's whole progress engine */
        }
}

static void m_set_timeout(void *self, double seconds) { ((mpi_state *)self)->timeout = seconds; }

static void m_destroy(void *self)
{
    mpi_state *s = self;
    if (!s) return;
    int fin = 0;
    MPI_Finalized(&fin);
    if (!fin && !any_failed && s->comm != MPI_COMM_NULL) MPI_Comm_free(&s->comm);
    for (int i = 0; i < TG_COMM_MAX_PENDING; i++) free(s->slot[i].scratch);
    free(s->block.scratch);
    free(s);
}

static const tg_comm_ops mpi_ops = {
    .name = "mpi",
    .allreduce = m_allreduce,
    .bcast = m_bcast,
    .barrier = m_barrier,
    .istart = m_istart,
    .wait = m_wait,
    .progress = m_progress,
    .set_timeout = m_set_timeout,
    .destroy = m_destroy,
};

tg_comm *tg_comm_mpi_new(int *argc, char ***argv, tg_status *st)
{
    int init = 0, fin = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    if (fin) {
        tg_status_set(st, TG_ESTATE, "tg_comm_mpi_new: MPI is finalised already");
        return NULL;
    }
    if (!init && MPI_Init(argc, argv) != MPI_SUCCESS) {
        tg_status_set(st, TG_EIO, "tg_comm_mpi_new: MPI_Init failed");
        return NULL;
    }
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    mpi_state *s = calloc(1, sizeof *s);
    if (!s) {
        tg_status_set(st, TG_ENOMEM, "tg_comm_mpi_new: out of memory");
        return NULL;
    }
    s->comm = MPI_COMM_NULL, s->timeout = 60;
    for (int i = 0; i < TG_COMM_MAX_PENDING; i++)
        s->slot[i].r[0] = s->slot[i].r[1] = MPI_REQUEST_NULL;
    s->block.r[0] = s->block.r[1] = MPI_REQUEST_NULL;
    int rc = MPI_Comm_dup(MPI_COMM_WORLD, &s->comm);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_set_errhandler(s->comm, MPI_ERRORS_RETURN);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_rank(s->comm, &s->rank);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_size(s->comm, &s->size);
    if (rc != MPI_SUCCESS) {
        char msg[256];
        mpi_fail(s, "tg_comm_mpi_new", rc, msg, sizeof msg);
        tg_status_set(st, TG_EIO, "%s", msg);
        m_destroy(s);
        return NULL;
    }
    return tg_comm_new(&mpi_ops, s, s->rank, s->size, st);
}

int tg_comm_mpi_finalize(bool failed)
{
    int init = 0, fin = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    if (!init || fin) return TG_OK;
    if (failed || any_failed) MPI_Abort(MPI_COMM_WORLD, 1); /* does not return */
    return MPI_Finalize() == MPI_SUCCESS ? TG_OK : TG_EIO;
}
