/* test/test_comm.c: the communicator boundary (comm.h) over threads: every operation on
 * 1 and several ranks, the rank-order sum and its bits, non-blocking operations, and the
 * errors: bad arguments, ranks that disagree, a rank that never comes (timeouts), a
 * broken group. */
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "check.h"
#include "tapegrad.h"

#define NR 4

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Runs fn(rank) on n threads, one per communicator of a new group; returns the group
 * (freed by the caller with free_group) or NULL. */
typedef struct job {
    tg_comm *c;
    void (*fn)(struct job *);
    int rc[8];
    double out[64];
    char msg[256];
    double secs;
} job;

static void *run_job(void *p)
{
    job *j = p;
    j->fn(j);
    return NULL;
}

static int run_group(int n, void (*fn)(job *), job *jobs)
{
    tg_comm *cs[NR];
    tg_status st = {0};
    if (tg_comm_thread_group_new(n, cs, &st)) return -1;
    pthread_t th[NR];
    for (int r = 0; r < n; r++) {
        memset(&jobs[r], 0, sizeof jobs[r]);
        jobs[r].c = cs[r], jobs[r].fn = fn;
        pthread_create(&th[r], NULL, run_job, &jobs[r]);
    }
    for (int r = 0; r < n; r++) pthread_join(th[r], NULL);
    for (int r = 0; r < n; r++) tg_comm_free(cs[r]);
    return 0;
}

static void test_size_one(void)
{
    tg_comm *c = NULL;
    tg_status st = {0};
    CHECK(tg_comm_thread_group_new(1, &c, &st) == 0);
    CHECK(tg_comm_rank(c) == 0 && tg_comm_size(c) == 1);
    CHECK(strcmp(tg_comm_name(c), "thread") == 0);
    double x[3] = {1.5, -2, 3};
    float f[2] = {0.25f, 7};
    int64_t k[2] = {-5, 9};
    CHECK(tg_comm_allreduce(c, x, 3, TG_COMM_F64) == 0);
    CHECK(x[0] == 1.5 && x[1] == -2 && x[2] == 3);
    CHECK(tg_comm_allreduce(c, f, 2, TG_COMM_F32) == 0 && f[0] == 0.25f && f[1] == 7);
    CHECK(tg_comm_allreduce(c, k, 2, TG_COMM_I64) == 0 && k[0] == -5 && k[1] == 9);
    CHECK(tg_comm_bcast(c, x, 3, TG_COMM_F64, 0) == 0 && x[1] == -2);
    CHECK(tg_comm_barrier(c) == 0);
    CHECK(tg_comm_allreduce(c, NULL, 0, TG_COMM_F64) == 0); /* n = 0 */
    tg_comm_req q;
    CHECK(tg_comm_iallreduce(c, x, 3, TG_COMM_F64, &q) == 0 && q.id >= 0);
    CHECK(tg_comm_wait(&q) == 0 && q.id == -1 && x[2] == 3);
    CHECK(tg_comm_error(c)[0] == 0);
    tg_comm_free(c);
}

/* Values whose sum depends on the order: rank r contributes v[r][i]. */
static double val(int r, int i) { return (r % 2 ? -1e16 : 1e16) * (i + 1) + (r + 1) * 0.3 + i; }

static void allreduce_job(job *j)
{
    int r = tg_comm_rank(j->c);
    double x[16];
    float f[16];
    int64_t k[16];
    for (int i = 0; i < 16; i++) x[i] = val(r, i), f[i] = (float)val(r, i), k[i] = r * 100 + i;
    j->rc[0] = tg_comm_allreduce(j->c, x, 16, TG_COMM_F64);
    j->rc[1] = tg_comm_allreduce(j->c, f, 16, TG_COMM_F32);
    j->rc[2] = tg_comm_allreduce(j->c, k, 16, TG_COMM_I64);
    for (int i = 0; i < 16; i++) j->out[i] = x[i], j->out[16 + i] = (double)f[i];
    for (int i = 0; i < 16; i++) j->out[32 + i] = (double)k[i];
}

static void test_allreduce_rank_order(void)
{
    job jobs[NR];
    for (int n = 2; n <= NR; n++) {
        CHECK(run_group(n, allreduce_job, jobs) == 0);
        for (int i = 0; i < 16; i++) {
            double s = val(0, i);
            float sf = (float)val(0, i);
            int64_t sk = i;
            for (int r = 1; r < n; r++) s += val(r, i), sf += (float)val(r, i), sk += r * 100 + i;
            for (int r = 0; r < n; r++) {
                CHECK(jobs[r].rc[0] == 0 && jobs[r].rc[1] == 0 && jobs[r].rc[2] == 0);
                /* the rank-order sum, bit for bit, on every rank */
                /* NOLINTNEXTLINE(bugprone-suspicious-memory-comparison): the bits, on purpose */
                CHECK(memcmp(&jobs[r].out[i], &s, sizeof s) == 0);
                CHECK((float)jobs[r].out[16 + i] == sf);
                CHECK(jobs[r].out[32 + i] == (double)sk);
            }
        }
    }
}

static void bcast_job(job *j)
{
    int r = tg_comm_rank(j->c);
    double x[5];
    int64_t k[3] = {r, r, r};
    for (int i = 0; i < 5; i++) x[i] = r * 10 + i;
    j->rc[0] = tg_comm_bcast(j->c, x, 5, TG_COMM_F64, 2);
    j->rc[1] = tg_comm_bcast(j->c, k, 3, TG_COMM_I64, 1);
    for (int i = 0; i < 5; i++) j->out[i] = x[i];
    for (int i = 0; i < 3; i++) j->out[5 + i] = (double)k[i];
}

static void test_bcast(void)
{
    job jobs[NR];
    CHECK(run_group(NR, bcast_job, jobs) == 0);
    for (int r = 0; r < NR; r++) {
        CHECK(jobs[r].rc[0] == 0 && jobs[r].rc[1] == 0);
        for (int i = 0; i < 5; i++) CHECK(jobs[r].out[i] == 20 + i);
        for (int i = 0; i < 3; i++) CHECK(jobs[r].out[5 + i] == 1);
    }
}

static int barrier_count;
static pthread_mutex_t barrier_mu = PTHREAD_MUTEX_INITIALIZER;

static void barrier_job(job *j)
{
    for (int round = 0; round < 3; round++) {
        struct timespec ts = {0, 2000000L * tg_comm_rank(j->c)}; /* later ranks come later */
        nanosleep(&ts, NULL);
        pthread_mutex_lock(&barrier_mu);
        barrier_count++;
        pthread_mutex_unlock(&barrier_mu);
        j->rc[round] = tg_comm_barrier(j->c);
        pthread_mutex_lock(&barrier_mu);
        j->out[round] = barrier_count; /* every rank has arrived at this round */
        pthread_mutex_unlock(&barrier_mu);
        j->rc[3 + round] = tg_comm_barrier(j->c);
    }
}

static void test_barrier(void)
{
    job jobs[NR];
    barrier_count = 0;
    CHECK(run_group(NR, barrier_job, jobs) == 0);
    for (int r = 0; r < NR; r++)
        for (int round = 0; round < 3; round++) {
            CHECK(jobs[r].rc[round] == 0 && jobs[r].rc[3 + round] == 0);
            CHECK(jobs[r].out[round] == NR * (round + 1));
        }
}

/* Three non-blocking sums outstanding, a blocking one between, waited in another order. */
static void nonblocking_job(job *j)
{
    int r = tg_comm_rank(j->c);
    double a[4], b[300], c[2], d = r;
    for (int i = 0; i < 4; i++) a[i] = r + i;
    for (int i = 0; i < 300; i++) b[i] = r * i;
    c[0] = 1, c[1] = r;
    tg_comm_req qa, qb, qc;
    j->rc[0] = tg_comm_iallreduce(j->c, a, 4, TG_COMM_F64, &qa);
    j->rc[1] = tg_comm_iallreduce(j->c, b, 300, TG_COMM_F64, &qb);
    j->rc[2] = tg_comm_allreduce(j->c, &d, 1, TG_COMM_F64);
    j->rc[3] = tg_comm_iallreduce(j->c, c, 2, TG_COMM_F64, &qc);
    tg_comm_progress(j->c);
    j->rc[4] = tg_comm_wait(&qc);
    j->rc[5] = tg_comm_wait(&qa);
    j->rc[6] = tg_comm_wait(&qb);
    j->rc[7] = tg_comm_wait(&qb); /* twice: not outstanding any more */
    j->out[0] = a[3], j->out[1] = b[299], j->out[2] = c[0], j->out[3] = c[1], j->out[4] = d;
    snprintf(j->msg, sizeof j->msg, "%s", tg_comm_error(j->c));
}

static void test_nonblocking(void)
{
    job jobs[NR];
    CHECK(run_group(3, nonblocking_job, jobs) == 0);
    for (int r = 0; r < 3; r++) {
        for (int i = 0; i < 7; i++) CHECK(jobs[r].rc[i] == 0);
        CHECK(jobs[r].rc[7] == TG_EARG);
        CHECK_STR_HAS(jobs[r].msg, "not outstanding");
        CHECK(jobs[r].out[0] == 3 * 3 + 3 && jobs[r].out[1] == 299 * 3);
        CHECK(jobs[r].out[2] == 3 && jobs[r].out[3] == 3 && jobs[r].out[4] == 3);
    }
}

static void test_bad_arguments(void)
{
    tg_comm *c = NULL;
    tg_status st = {0};
    CHECK(tg_comm_thread_group_new(0, &c, &st) == TG_EARG && c == NULL);
    CHECK_STR_HAS(st.msg, "0 ranks");
    CHECK(tg_comm_thread_group_new(2, NULL, &st) == TG_EARG);
    CHECK(tg_comm_new(NULL, NULL, 0, 1, &st) == NULL && st.code == TG_EARG);
    CHECK(tg_comm_thread_group_new(1, &c, &st) == 0);
    double x[2] = {1, 2};
    CHECK(tg_comm_allreduce(NULL, x, 2, TG_COMM_F64) == TG_EARG);
    CHECK(tg_comm_allreduce(c, x, -1, TG_COMM_F64) == TG_EARG);
    CHECK_STR_HAS(tg_comm_error(c), "count -1");
    CHECK(tg_comm_allreduce(c, NULL, 2, TG_COMM_F64) == TG_EARG);
    CHECK_STR_HAS(tg_comm_error(c), "NULL buffer");
    CHECK(tg_comm_allreduce(c, x, 2, (tg_comm_type)7) == TG_EARG);
    CHECK_STR_HAS(tg_comm_error(c), "unknown type 7");
    CHECK(tg_comm_bcast(c, x, 2, TG_COMM_F64, 1) == TG_EARG);
    CHECK_STR_HAS(tg_comm_error(c), "root 1 outside 0..0");
    CHECK(tg_comm_bcast(c, x, 2, TG_COMM_F64, -1) == TG_EARG);
    CHECK(tg_comm_set_timeout(c, 0) == TG_EARG && tg_comm_set_timeout(c, -1) == TG_EARG);
    CHECK(tg_comm_set_timeout(c, (double)INFINITY) == TG_EARG);
    CHECK(tg_comm_set_timeout(c, (double)NAN) == TG_EARG);
    CHECK(tg_comm_timeout(c) == 60);
    CHECK(tg_comm_set_timeout(c, 2.5) == 0 && tg_comm_timeout(c) == 2.5);
    CHECK(tg_comm_iallreduce(c, x, 2, TG_COMM_F64, NULL) == TG_EARG);
    tg_comm_req q = {-1, c};
    CHECK(tg_comm_wait(&q) == TG_EARG);
    CHECK(tg_comm_wait(NULL) == TG_EARG);
    /* bad arguments break nothing: the values are untouched and the next call works */
    CHECK(x[0] == 1 && x[1] == 2);
    CHECK(tg_comm_allreduce(c, x, 2, TG_COMM_F64) == 0 && x[1] == 2);
    /* too many outstanding */
    tg_comm_req *qs = malloc(sizeof *qs * (TG_COMM_MAX_PENDING + 1));
    int ok = 0;
    for (int i = 0; i < TG_COMM_MAX_PENDING; i++)
        ok += tg_comm_iallreduce(c, x, 2, TG_COMM_F64, &qs[i]) == 0;
    CHECK(ok == TG_COMM_MAX_PENDING);
    CHECK(tg_comm_iallreduce(c, x, 2, TG_COMM_F64, &qs[TG_COMM_MAX_PENDING]) == TG_ESTATE);
    CHECK_STR_HAS(tg_comm_error(c), "outstanding");
    ok = 0;
    for (int i = 0; i < TG_COMM_MAX_PENDING; i++) ok += tg_comm_wait(&qs[i]) == 0;
    CHECK(ok == TG_COMM_MAX_PENDING);
    CHECK(tg_comm_iallreduce(c, x, 2, TG_COMM_F64, &qs[0]) == 0 && tg_comm_wait(&qs[0]) == 0);
    free(qs);
    CHECK(tg_comm_rank(NULL) == -1 && tg_comm_size(NULL) == -1);
    CHECK(tg_comm_error(NULL)[0] == 0);
    tg_comm_free(c);
    tg_comm_free(NULL);
}

/* Rank 1 sums 3 elements where the others sum 4; then a second call. */
static void mismatch_job(job *j)
{
    double x[4] = {1, 2, 3, 4};
    tg_comm_set_timeout(j->c, 5);
    j->rc[0] = tg_comm_allreduce(j->c, x, tg_comm_rank(j->c) == 1 ? 3 : 4, TG_COMM_F64);
    j->rc[1] = tg_comm_barrier(j->c); /* broken: fails at once */
    snprintf(j->msg, sizeof j->msg, "%s", tg_comm_error(j->c));
}

static void root_mismatch_job(job *j)
{
    double x[2] = {1, 2};
    tg_comm_set_timeout(j->c, 5);
    j->rc[0] = tg_comm_bcast(j->c, x, 2, TG_COMM_F64, tg_comm_rank(j->c) == 0 ? 0 : 1);
    snprintf(j->msg, sizeof j->msg, "%s", tg_comm_error(j->c));
}

static void test_mismatch(void)
{
    job jobs[NR];
    double t0 = now_s();
    CHECK(run_group(3, mismatch_job, jobs) == 0);
    CHECK(now_s() - t0 < 4); /* found at once, not by the timeout */
    int failed = 0;
    for (int r = 0; r < 3; r++) {
        failed += jobs[r].rc[0] != 0;
        CHECK(jobs[r].rc[1] == TG_EIO); /* the group is broken for everyone */
        CHECK_STR_HAS(jobs[r].msg, "tg_comm_allreduce: operation #0: rank ");
        CHECK_STR_HAS(jobs[r].msg, " f64");
    }
    CHECK(failed >= 1);
    CHECK(run_group(2, root_mismatch_job, jobs) == 0);
    CHECK(jobs[0].rc[0] != 0 || jobs[1].rc[0] != 0);
    CHECK_STR_HAS(jobs[0].msg, "(root ");
    CHECK_STR_HAS(jobs[1].msg, "(root ");
}

/* Rank 1 "dies": it leaves without calling anything; the others time out. */
static void dead_rank_job(job *j)
{
    if (tg_comm_rank(j->c) == 1) return;
    tg_comm_set_timeout(j->c, 0.3);
    double x[2] = {1, 2}, t0 = now_s();
    tg_comm_req q;
    j->rc[0] = tg_comm_iallreduce(j->c, x, 2, TG_COMM_F64, &q); /* starting never waits */
    j->rc[1] = tg_comm_wait(&q);
    j->rc[2] = tg_comm_allreduce(j->c, x, 2, TG_COMM_F64);
    j->secs = now_s() - t0;
    snprintf(j->msg, sizeof j->msg, "%s", tg_comm_error(j->c));
    j->out[0] = x[0];
}

static void test_timeout(void)
{
    job jobs[NR];
    CHECK(run_group(3, dead_rank_job, jobs) == 0);
    for (int r = 0; r < 3; r += 2) {
        CHECK(jobs[r].rc[0] == 0);
        CHECK(jobs[r].rc[1] == TG_EIO && jobs[r].rc[2] == TG_EIO);
        CHECK(jobs[r].secs < 3); /* the timeout (0.3 s), plus scheduling */
        CHECK_STR_HAS(jobs[r].msg, "timed out after 0.3 s");
        CHECK_STR_HAS(jobs[r].msg, "of 3 ranks arrived");
    }
}

/* Rank 0 runs ahead by many operations; the slots make it wait, then all finish. */
static void ahead_job(job *j)
{
    double s = 0;
    for (int k = 0; k < 2000; k++) {
        double x = k + tg_comm_rank(j->c);
        if (tg_comm_allreduce(j->c, &x, 1, TG_COMM_F64)) j->rc[0]++;
        s += x;
    }
    j->out[0] = s;
}

static void test_many_operations(void)
{
    job jobs[NR];
    CHECK(run_group(NR, ahead_job, jobs) == 0);
    double want = 0;
    for (int k = 0; k < 2000; k++) want += NR * k + (0 + 1 + 2 + 3);
    for (int r = 0; r < NR; r++) CHECK(jobs[r].rc[0] == 0 && jobs[r].out[0] == want);
}

static const check_case cases[] = {
    TEST(test_size_one),        TEST(test_allreduce_rank_order),
    TEST(test_bcast),           TEST(test_barrier),
    TEST(test_nonblocking),     TEST(test_bad_arguments),
    TEST(test_mismatch),        TEST(test_timeout),
    TEST(test_many_operations),
};
TEST_MAIN("test_comm", cases)
