/* test/test_ops.c: every op's self-check cases (ops/cases_*.c): gradients against central
 * finite differences in f64 (max relative error <= 1e-6), f32 against f64, and coverage:
 * every op in the op table has at least one case that records it. Value and error tests of
 * each family are in test/test_ops_<family>.c. */
#include "check.h"
#include "tapegrad.h"

static void test_selfcheck_cases(void)
{
    int n = tg_selfcheck_count();
    CHECK(n > 0);
    for (int i = 0; i < n; i++) {
        tg_selfcheck_result r;
        int rc = tg_selfcheck_run(i, &r);
        CHECK(rc == TG_OK);
        CHECK(r.grad.n_checked > 0);
        if (rc || r.grad.max_rel_err > 1e-6 || r.f32_err > 1e-4 || r.grad.n_checked == 0)
            printf("  case %d %s (%s): rc %d, max rel err %.3g at input %d[%lld] "
                   "(analytic %.10g, numeric %.10g), f32 err %.3g %s\n",
                   i, r.op, r.what, rc, r.grad.max_rel_err, r.grad.worst_input,
                   (long long)r.grad.worst_index, r.grad.worst_analytic, r.grad.worst_numeric,
                   r.f32_err, r.grad.msg);
        if (!rc && (r.grad2.max_rel_err > 1e-6 || r.grad2.first_order_err > 1e-10))
            printf("  case %d %s (%s): second order: max rel err %.3g at d2/d%d[%lld]d%d[%lld] "
                   "(analytic %.10g, numeric %.10g), recorded gradient off by %.3g\n",
                   i, r.op, r.what, r.grad2.max_rel_err, r.grad2.worst_input,
                   (long long)r.grad2.worst_index, r.grad2.worst_wrt,
                   (long long)r.grad2.worst_wrt_index, r.grad2.worst_analytic,
                   r.grad2.worst_numeric, r.grad2.first_order_err);
        CHECK(r.grad.max_rel_err <= 1e-6);
        CHECK(r.grad2.max_rel_err <= 1e-6);
        CHECK(r.grad2.first_order_err <= 1e-10);
        CHECK(r.grad2.n_checked > 0);
        CHECK(r.f32_err <= 1e-4);
    }
    tg_selfcheck_result r;
    CHECK(tg_selfcheck_run(n, &r) == TG_EARG);
    CHECK(tg_selfcheck_run(-1, &r) == TG_EARG);
    CHECK(tg_selfcheck_op(n, NULL) == NULL && tg_selfcheck_op(-1, NULL) == NULL);
}

static void test_every_op_covered(void)
{
    int n_ops = tg_op_count(), n = tg_selfcheck_count();
    CHECK(n_ops > 40);
    CHECK(tg_op_name(-1) == NULL && tg_op_name(n_ops) == NULL);
    for (int k = 0; k < n_ops; k++) {
        const char *name = tg_op_name(k);
        if (strcmp(name, "custom") == 0) continue; /* user ops: test_autograd */
        int cases = 0;
        for (int i = 0; i < n; i++) cases += strcmp(tg_selfcheck_op(i, NULL), name) == 0;
        if (cases == 0) printf("  op %s has no self-check case\n", name);
        CHECK(cases > 0);
    }
}

static const check_case cases[] = {
    TEST(test_selfcheck_cases),
    TEST(test_every_op_covered),
};
TEST_MAIN("test_ops", cases)
