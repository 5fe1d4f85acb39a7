/* dist/comm.c: the communicator boundary (comm.h): argument checks, requests and the
 * broken state, in front of a transport's function table. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static const char *type_name(tg_comm_type t)
{
    switch (t) {
    case TG_COMM_F32: return "f32";
    case TG_COMM_F64: return "f64";
    case TG_COMM_I64: return "i64";
    }
    return "?";
}

size_t tg_comm_type_size(tg_comm_type t)
{
    switch (t) {
    case TG_COMM_F32: return 4;
    case TG_COMM_F64:
    case TG_COMM_I64: return 8;
    }
    return 0;
}

const char *tg_comm_type_name(tg_comm_type t) { return type_name(t); }

tg_comm *tg_comm_new(const tg_comm_ops *ops, void *self, int rank, int size, tg_status *st)
{
    if (!ops || !ops->allreduce || !ops->bcast || !ops->barrier || !ops->istart || !ops->wait) {
        if (ops && ops->destroy) ops->destroy(self);
        tg_status_set(st, TG_EARG, "tg_comm_new: NULL transport or a required function missing");
        return NULL;
    }
    if (size < 1 || rank < 0 || rank >= size) {
        if (ops->destroy) ops->destroy(self);
        tg_status_set(st, TG_EARG, "tg_comm_new: rank %d of size %d: want 0 <= rank < size", rank,
                      size);
        return NULL;
    }
    tg_comm *c = calloc(1, sizeof *c);
    if (!c) {
        if (ops->destroy) ops->destroy(self);
        tg_status_set(st, TG_ENOMEM, "tg_comm_new: out of memory");
        return NULL;
    }
    c->ops = ops, c->self = self, c->rank = rank, c->size = size, c->timeout = 60;
    for (int i = 0; i < TG_COMM_MAX_PENDING; i++) c->active[i] = -1;
    if (ops->set_timeout) ops->set_timeout(self, c->timeout);
    return c;
}

void tg_comm_free(tg_comm *c)
{
    if (!c) return;
    if (c->ops->destroy) c->ops->destroy(c->self);
    free(c);
}

int tg_comm_rank(const tg_comm *c) { return c ? c->rank : -1; }
int tg_comm_size(const tg_comm *c) { return c ? c->size : -1; }
const char *tg_comm_name(const tg_comm *c) { return c && c->ops->name ? c->ops->name : ""; }
const char *tg_comm_error(const tg_comm *c) { return c ? c->err : ""; }

/* A local error (nothing was sent): the message, the communicator not broken. */
static int local_fail(tg_comm *c, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static int local_fail(tg_comm *c, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, sizeof c->err, fmt, ap);
    va_end(ap);
    return code;
}

/* The transport failed: the communicator is broken from now on, its message kept. */
static int transport_fail(tg_comm *c, int code, const char *msg)
{
    if (!c->broken) {
        c->broken = true;
        snprintf(c->err, sizeof c->err, "%s", msg[0] ? msg : tg_strerror(code));
    }
    return code < 0 ? code : TG_EIO;
}

static int check_buf(tg_comm *c, const char *fn, const void *buf, int64_t n, tg_comm_type t)
{
    if (c->broken) return TG_EIO; /* the first message stays */
    if (n < 0)
        return local_fail(c, TG_EARG, "%s: rank %d: count %lld < 0", fn, c->rank, (long long)n);
    if (tg_comm_type_size(t) == 0)
        return local_fail(c, TG_EARG, "%s: rank %d: unknown type %d", fn, c->rank, (int)t);
    if (n > 0 && !buf)
        return local_fail(c, TG_EARG, "%s: rank %d: NULL buffer of %lld %s", fn, c->rank,
                          (long long)n, type_name(t));
    if (n > TG_MAX_NUMEL)
        return local_fail(c, TG_EARG, "%s: rank %d: count %lld above TG_MAX_NUMEL", fn, c->rank,
                          (long long)n);
    return TG_OK;
}

int tg_comm_set_timeout(tg_comm *c, double seconds)
{
    if (!c) return TG_EARG;
    if (!(seconds > 0) || !isfinite(seconds))
        return local_fail(c, TG_EARG, "tg_comm_set_timeout: %g s: want a finite time > 0", seconds);
    c->timeout = seconds;
    if (c->ops->set_timeout) c->ops->set_timeout(c->self, seconds);
    return TG_OK;
}

double tg_comm_timeout(const tg_comm *c) { return c ? c->timeout : -1; }

int tg_comm_allreduce(tg_comm *c, void *buf, int64_t n, tg_comm_type t)
{
    if (!c) return TG_EARG;
    int rc = check_buf(c, "tg_comm_allreduce", buf, n, t);
    if (rc) return rc;
    char msg[256] = "";
    rc = c->ops->allreduce(c->self, buf, n, t, msg, sizeof msg);
    return rc ? transport_fail(c, rc, msg) : TG_OK;
}

int tg_comm_bcast(tg_comm *c, void *buf, int64_t n, tg_comm_type t, int root)
{
    if (!c) return TG_EARG;
    int rc = check_buf(c, "tg_comm_bcast", buf, n, t);
    if (rc) return rc;
    if (root < 0 || root >= c->size)
        return local_fail(c, TG_EARG, "tg_comm_bcast: rank %d: root %d outside 0..%d", c->rank,
                          root, c->size - 1);
    char msg[256] = "";
    rc = c->ops->bcast(c->self, buf, n, t, root, msg, sizeof msg);
    return rc ? transport_fail(c, rc, msg) : TG_OK;
}

int tg_comm_barrier(tg_comm *c)
{
    if (!c) return TG_EARG;
    if (c->broken) return TG_EIO;
    char msg[256] = "";
    int rc = c->ops->barrier(c->self, msg, sizeof msg);
    return rc ? transport_fail(c, rc, msg) : TG_OK;
}

int tg_comm_iallreduce(tg_comm *c, void *buf, int64_t n, tg_comm_type t, tg_comm_req *req)
{
    if (!c || !req) return c ? local_fail(c, TG_EARG, "tg_comm_iallreduce: NULL request") : TG_EARG;
    req->id = -1, req->comm = c;
    int rc = check_buf(c, "tg_comm_iallreduce", buf, n, t);
    if (rc) return rc;
    if (c->pending >= TG_COMM_MAX_PENDING)
        return local_fail(c, TG_ESTATE,
                          "tg_comm_iallreduce: rank %d: %d operations outstanding already "
                          "(TG_COMM_MAX_PENDING)",
                          c->rank, c->pending);
    int64_t id = c->next_id;
    if (c->active[id % TG_COMM_MAX_PENDING] >= 0)
        return local_fail(c, TG_ESTATE,
                          "tg_comm_iallreduce: rank %d: operation #%lld, %d before, is "
                          "still outstanding",
                          c->rank, (long long)c->active[id % TG_COMM_MAX_PENDING],
                          TG_COMM_MAX_PENDING);
    char msg[256] = "";
    rc = c->ops->istart(c->self, id, buf, n, t, msg, sizeof msg);
    if (rc) return transport_fail(c, rc, msg);
    c->next_id++, c->pending++;
    c->active[id % TG_COMM_MAX_PENDING] = id;
    req->id = id;
    return TG_OK;
}

int tg_comm_wait(tg_comm_req *req)
{
    if (!req || !req->comm) return TG_EARG;
    tg_comm *c = req->comm;
    int64_t id = req->id;
    if (id < 0 || c->active[id % TG_COMM_MAX_PENDING] != id)
        return local_fail(c, TG_EARG, "tg_comm_wait: rank %d: request #%lld is not outstanding",
                          c->rank, (long long)id);
    c->active[id % TG_COMM_MAX_PENDING] = -1, c->pending--;
    req->id = -1;
    if (c->broken) {
        c->ops->wait(c->self, id, NULL, 0); /* lets the transport forget it */
        return TG_EIO;
    }
    char msg[256] = "";
    int rc = c->ops->wait(c->self, id, msg, sizeof msg);
    return rc ? transport_fail(c, rc, msg) : TG_OK;
}

void tg_comm_progress(tg_comm *c)
{
    if (c && !c->broken && c->pending && c->ops->progress) c->ops->progress(c->self);
}
