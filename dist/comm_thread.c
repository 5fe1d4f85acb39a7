/* dist/comm_thread.c: the communicator over threads of one process.
 *
 * The ranks of a group share a ring of slots, one per collective operation in flight:
 * operation number k (counted per rank, blocking and non-blocking alike) uses slot
 * k % SLOTS. Each rank arriving at an operation leaves its buffer pointer in the slot; the
 * last to arrive does the work for everyone, outside the lock: the sum in rank order 0, 1,
 * ..., size-1 into rank 0's buffer, then copied to every other rank's, so every rank gets
 * the same bits on every run. A start therefore never waits for the others, and a wait
 * waits only for the last arrival's work. The slot is free again when every rank has
 * waited on it. A wait that times out, or ranks that disagree on an operation, break the
 * group: every rank's next wait fails with the first message. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"

#define SLOTS (2 * TG_COMM_MAX_PENDING)

enum { OP_ALLREDUCE, OP_BCAST, OP_BARRIER };
static const char *const op_names[] = {"allreduce", "bcast", "barrier"};

typedef struct slot {
    int64_t seq; /* the operation using the slot, -1 when free */
    int op, root, first;
    tg_comm_type t;
    int64_t n;
    void **bufs; /* size pointers */
    int arrived, left;
    bool done;
} slot;

typedef struct group {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int size, refs;
    bool broken;
    char err[256];
    slot slots[SLOTS];
    void **bufs; /* SLOTS * size */
} group;

typedef struct member {
    group *g;
    int rank;
    int64_t seq;                       /* the next operation's number */
    int64_t pend[TG_COMM_MAX_PENDING]; /* the operation number of each outstanding request */
    double timeout;
} member;

static void deadline_after(struct timespec *ts, double seconds)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    double whole = (double)(int64_t)seconds;
    ts->tv_sec += (time_t)whole;
    ts->tv_nsec += (long)((seconds - whole) * 1e9);
    if (ts->tv_nsec >= 1000000000L) ts->tv_sec++, ts->tv_nsec -= 1000000000L;
}

/* Breaks the group with msg (the first message wins); wakes everyone. Lock held. */
static void group_break(group *g, const char *msg)
{
    if (!g->broken) {
        g->broken = true;
        snprintf(g->err, sizeof g->err, "%s", msg);
    }
    pthread_cond_broadcast(&g->cv);
}

static void copy_err(char *err, size_t size, const char *msg)
{
    if (err && size) snprintf(err, size, "%s", msg);
}

static void sum_into(void *restrict dst, const void *restrict src, int64_t n, tg_comm_type t)
{
    if (t == TG_COMM_F32) {
        float *restrict d = dst;
        const float *restrict s = src;
        for (int64_t i = 0; i < n; i++) d[i] += s[i];
    } else if (t == TG_COMM_F64) {
        double *restrict d = dst;
        const double *restrict s = src;
        for (int64_t i = 0; i < n; i++) d[i] += s[i];
    } else {
        int64_t *restrict d = dst;
        const int64_t *restrict s = src;
        /* wraps like two's complement instead of overflowing */
        for (int64_t i = 0; i < n; i++) d[i] = (int64_t)((uint64_t)d[i] + (uint64_t)s[i]);
    }
}

/* The work of a complete operation; every buffer is in place and no rank touches them. */
static void do_op(const group *g, const slot *s)
{
    size_t bytes = (size_t)s->n * tg_comm_type_size(s->t);
    if (s->op == OP_ALLREDUCE) {
        for (int r = 1; r < g->size; r++) sum_into(s->bufs[0], s->bufs[r], s->n, s->t);
        for (int r = 1; r < g->size; r++)
            if (bytes) memcpy(s->bufs[r], s->bufs[0], bytes);
    } else if (s->op == OP_BCAST) {
        for (int r = 0; r < g->size; r++)
            if (r != s->root && bytes) memcpy(s->bufs[r], s->bufs[s->root], bytes);
    }
}

/* Joins operation seq: waits (up to the timeout) for its slot to be free, checks it against
 * the others' call, leaves buf, and does the work when last. */
static int arrive(member *m, int64_t seq, int op, void *buf, int64_t n, tg_comm_type t, int root,
                  char *err, size_t size)
{
    group *g = m->g;
    slot *s = &g->slots[seq % SLOTS];
    char msg[256];
    struct timespec dl;
    deadline_after(&dl, m->timeout);
    pthread_mutex_lock(&g->mu);
    while (!g->broken && s->seq != -1 && s->seq != seq) {
        if (pthread_cond_timedwait(&g->cv, &g->mu, &dl) == ETIMEDOUT) {
            snprintf(msg, sizeof msg,
                     "tg_comm_%s: rank %d: timed out after %g s waiting for operation #%lld "
                     "to finish on every rank",
                     op_names[op], m->rank, m->timeout, (long long)s->seq);
            group_break(g, msg);
        }
    }
    if (g->broken) {
        copy_err(err, size, g->err);
        pthread_mutex_unlock(&g->mu);
        return TG_EIO;
    }
    if (s->seq == -1) {
        s->seq = seq, s->op = op, s->n = n, s->t = t, s->root = root, s->first = m->rank;
        s->arrived = 0, s->left = 0, s->done = false;
    } else if (s->op != op || s->n != n || s->t != t || s->root != root) {
        snprintf(msg, sizeof msg,
                 "tg_comm_%s: operation #%lld: rank %d calls %s of %lld %s (root %d) but rank "
                 "%d called %s of %lld %s (root %d)",
                 op_names[op], (long long)seq, m->rank, op_names[op], (long long)n,
                 tg_comm_type_name(t), root, s->first, op_names[s->op], (long long)s->n,
                 tg_comm_type_name(s->t), s->root);
        group_break(g, msg);
        copy_err(err, size, g->err);
        pthread_mutex_unlock(&g->mu);
        return TG_EARG;
    }
    s->bufs[m->rank] = buf;
    if (++s->arrived == g->size) {
        pthread_mutex_unlock(&g->mu);
        do_op(g, s);
        pthread_mutex_lock(&g->mu);
        s->done = true;
        pthread_cond_broadcast(&g->cv);
    }
    pthread_mutex_unlock(&g->mu);
    return TG_OK;
}

/* Waits for operation seq to be done (up to the timeout) and leaves its slot. */
static int finish(member *m, int64_t seq, char *err, size_t size)
{
    group *g = m->g;
    slot *s = &g->slots[seq % SLOTS];
    char msg[256];
    struct timespec dl;
    deadline_after(&dl, m->timeout);
    pthread_mutex_lock(&g->mu);
    while (s->seq == seq && !s->done && !g->broken) {
        if (pthread_cond_timedwait(&g->cv, &g->mu, &dl) == ETIMEDOUT && !s->done) {
            snprintf(msg, sizeof msg,
                     "tg_comm_%s: rank %d: timed out after %g s in operation #%lld: %d of %d "
                     "ranks arrived",
                     op_names[s->op], m->rank, m->timeout, (long long)seq, s->arrived, g->size);
            group_break(g, msg);
        }
    }
    int rc = TG_OK;
    if (s->seq == seq && s->done) {
        if (++s->left == g->size) {
            s->seq = -1;
            pthread_cond_broadcast(&g->cv);
        }
    } else {
        copy_err(err, size, g->err);
        rc = TG_EIO;
    }
    pthread_mutex_unlock(&g->mu);
    return rc;
}

static int th_blocking(member *m, int op, void *buf, int64_t n, tg_comm_type t, int root, char *err,
                       size_t size)
{
    int64_t seq = m->seq++;
    int rc = arrive(m, seq, op, buf, n, t, root, err, size);
    return rc ? rc : finish(m, seq, err, size);
}

static int th_allreduce(void *self, void *buf, int64_t n, tg_comm_type t, char *err, size_t size)
{
    return th_blocking(self, OP_ALLREDUCE, buf, n, t, 0, err, size);
}

static int th_bcast(void *self, void *buf, int64_t n, tg_comm_type t, int root, char *err,
                    size_t size)
{
    return th_blocking(self, OP_BCAST, buf, n, t, root, err, size);
}

static int th_barrier(void *self, char *err, size_t size)
{
    return th_blocking(self, OP_BARRIER, NULL, 0, TG_COMM_F64, 0, err, size);
}

static int th_istart(void *self, int64_t id, void *buf, int64_t n, tg_comm_type t, char *err,
                     size_t size)
{
    member *m = self;
    int64_t seq = m->seq++;
    m->pend[id % TG_COMM_MAX_PENDING] = seq;
    return arrive(m, seq, OP_ALLREDUCE, buf, n, t, 0, err, size);
}

static int th_wait(void *self, int64_t id, char *err, size_t size)
{
    member *m = self;
    return finish(m, m->pend[id % TG_COMM_MAX_PENDING], err, size);
}

static void th_set_timeout(void *self, double seconds) { ((member *)self)->timeout = seconds; }

static void group_release(group *g)
{
    pthread_mutex_lock(&g->mu);
    int left = --g->refs;
    pthread_mutex_unlock(&g->mu);
    if (left) return;
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
    free(g->bufs);
    free(g);
}

static void th_destroy(void *self)
{
    member *m = self;
    if (!m) return;
    group_release(m->g);
    free(m);
}

static const tg_comm_ops thread_ops = {
    .name = "thread",
    .allreduce = th_allreduce,
    .bcast = th_bcast,
    .barrier = th_barrier,
    .istart = th_istart,
    .wait = th_wait,
    .progress = NULL,
    .set_timeout = th_set_timeout,
    .destroy = th_destroy,
};

static group *group_new(int n)
{
    group *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    g->bufs = calloc((size_t)SLOTS * (size_t)n, sizeof *g->bufs);
    pthread_condattr_t ca;
    bool cv_ok = false, mu_ok = false;
    if (g->bufs && pthread_condattr_init(&ca) == 0) {
        cv_ok = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0 &&
                pthread_cond_init(&g->cv, &ca) == 0;
        pthread_condattr_destroy(&ca);
    }
    if (cv_ok) mu_ok = pthread_mutex_init(&g->mu, NULL) == 0;
    if (!mu_ok) {
        if (cv_ok) pthread_cond_destroy(&g->cv);
        free(g->bufs);
        free(g);
        return NULL;
    }
    g->size = n;
    for (int k = 0; k < SLOTS; k++) g->slots[k].seq = -1, g->slots[k].bufs = g->bufs + k * n;
    return g;
}

int tg_comm_thread_group_new(int n, tg_comm **out, tg_status *st)
{
    if (n < 1 || !out)
        return tg_status_set(st, TG_EARG, "tg_comm_thread_group_new: %d ranks%s: want n >= 1", n,
                             out ? "" : ", NULL output");
    if (n > 4096)
        return tg_status_set(st, TG_EARG, "tg_comm_thread_group_new: %d ranks: at most 4096", n);
    tg_comm **cs = calloc((size_t)n, sizeof *cs);
    group *g = cs ? group_new(n) : NULL;
    if (!g) {
        free(cs);
        return tg_status_set(st, TG_ENOMEM, "tg_comm_thread_group_new: out of memory");
    }
    g->refs = 1; /* held until every member exists */
    for (int r = 0; r < n; r++) {
        member *m = calloc(1, sizeof *m);
        if (m) {
            m->g = g, m->rank = r, m->timeout = 60;
            g->refs++;
            cs[r] = tg_comm_new(&thread_ops, m, r, n, st);
        }
        if (!cs[r]) {
            for (int q = 0; q < r; q++) tg_comm_free(cs[q]);
            group_release(g);
            free(cs);
            return tg_status_set(st, TG_ENOMEM, "tg_comm_thread_group_new: out of memory");
        }
    }
    group_release(g);
    memcpy(out, cs, sizeof *cs * (size_t)n);
    free(cs);
    return TG_OK;
}
