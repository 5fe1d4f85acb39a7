/* test/check.h: a tiny test harness. Each test file defines its tests as functions, lists
 * them in TESTS, and ends with TEST_MAIN("test_x"). A failure prints file:line: test: what.
 * The last line is "test_x: N passed, M failed"; the exit status is nonzero on failure. */
#ifndef TAPEGRAD_TEST_CHECK_H
#define TAPEGRAD_TEST_CHECK_H

#include <math.h>
#include <stdio.h>
#include <string.h>

static int check_passed, check_failed;
static const char *check_test = "";

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (cond) check_passed++;                                                                  \
        else {                                                                                     \
            check_failed++;                                                                        \
            printf("%s:%d: %s: CHECK(%s) failed\n", __FILE__, __LINE__, check_test, #cond);        \
        }                                                                                          \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                                      \
    do {                                                                                           \
        double check_a_ = (double)(a), check_b_ = (double)(b);                                     \
        if (fabs(check_a_ - check_b_) <= (double)(tol)) check_passed++;                            \
        else {                                                                                     \
            check_failed++;                                                                        \
            printf("%s:%d: %s: %s = %.17g, expected %s = %.17g (tol %g)\n", __FILE__, __LINE__,    \
                   check_test, #a, check_a_, #b, check_b_, (double)(tol));                         \
        }                                                                                          \
    } while (0)

#define CHECK_STR_HAS(s, sub)                                                                      \
    do {                                                                                           \
        const char *check_s_ = (s);                                                                \
        if (check_s_ && strstr(check_s_, (sub))) check_passed++;                                   \
        else {                                                                                     \
            check_failed++;                                                                        \
            printf("%s:%d: %s: \"%s\" does not contain \"%s\"\n", __FILE__, __LINE__, check_test,  \
                   check_s_ ? check_s_ : "(null)", (sub));                                         \
        }                                                                                          \
    } while (0)

typedef struct {
    const char *name;
    void (*fn)(void);
} check_case;

/* clang-format off */
#define TEST(name) {#name, name}
/* clang-format on */

/* Runs the tests whose name contains argv[1] (all without it). */
#define TEST_MAIN(binary, cases)                                                                   \
    int main(int argc, char **argv)                                                                \
    {                                                                                              \
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {                            \
            if (argc > 1 && !strstr(cases[i].name, argv[1])) continue;                             \
            check_test = cases[i].name;                                                            \
            cases[i].fn();                                                                         \
        }                                                                                          \
        printf("%s: %d passed, %d failed\n", binary, check_passed, check_failed);                  \
        return check_failed ? 1 : 0;                                                               \
    }

#endif
