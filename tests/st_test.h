/* st_test.h - a small assertion header for stint's C tests: failures print file:line and both
 * values, each test runs in order, and the run ends with "N passed, N failed". */
#ifndef ST_TEST_H
#define ST_TEST_H

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int st_test_failed_checks;
static int st_test_passed;
static int st_test_failed;

#define ST_FAIL_AT(...)                                                                            \
    do {                                                                                           \
        fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                                            \
        fprintf(stderr, __VA_ARGS__);                                                              \
        fputc('\n', stderr);                                                                       \
        st_test_failed_checks++;                                                                   \
    } while (0)

#define ST_CHECK(cond)                                                                             \
    do {                                                                                           \
        if (!(cond))                                                                               \
            ST_FAIL_AT("check failed: %s", #cond);                                                 \
    } while (0)

/* Stop the current test function when a check fails (for preconditions). */
#define ST_REQUIRE(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            ST_FAIL_AT("requirement failed: %s", #cond);                                           \
            return;                                                                                \
        }                                                                                          \
    } while (0)

#define ST_EQ_INT(a, b)                                                                            \
    do {                                                                                           \
        long long st_a_ = (long long)(a), st_b_ = (long long)(b);                                  \
        if (st_a_ != st_b_)                                                                        \
            ST_FAIL_AT("%s == %s: %lld != %lld", #a, #b, st_a_, st_b_);                            \
    } while (0)

#define ST_EQ_U64(a, b)                                                                            \
    do {                                                                                           \
        uint64_t st_a_ = (uint64_t)(a), st_b_ = (uint64_t)(b);                                     \
        if (st_a_ != st_b_)                                                                        \
            ST_FAIL_AT("%s == %s: %" PRIu64 " != %" PRIu64, #a, #b, st_a_, st_b_);                 \
    } while (0)

#define ST_EQ_STR(a, b)                                                                            \
    do {                                                                                           \
        const char *st_a_ = (a), *st_b_ = (b);                                                     \
        if (!st_a_ || !st_b_ || strcmp(st_a_, st_b_) != 0)                                         \
            ST_FAIL_AT("%s == %s: \"%s\" != \"%s\"", #a, #b, st_a_ ? st_a_ : "(null)",             \
                       st_b_ ? st_b_ : "(null)");                                                  \
    } while (0)

#define ST_NEAR(a, b, tol)                                                                         \
    do {                                                                                           \
        double st_a_ = (double)(a), st_b_ = (double)(b);                                           \
        if (!(fabs(st_a_ - st_b_) <= (double)(tol)))                                               \
            ST_FAIL_AT("%s ~= %s: %.9g vs %.9g (tolerance %g)", #a, #b, st_a_, st_b_,              \
                       (double)(tol));                                                             \
    } while (0)

#define ST_RUN(fn)                                                                                 \
    do {                                                                                           \
        int st_before_ = st_test_failed_checks;                                                    \
        fn();                                                                                      \
        if (st_test_failed_checks == st_before_) {                                                 \
            st_test_passed++;                                                                      \
            printf("ok   %s\n", #fn);                                                              \
        } else {                                                                                   \
            st_test_failed++;                                                                      \
            printf("FAIL %s\n", #fn);                                                              \
        }                                                                                          \
        fflush(stdout);                                                                            \
    } while (0)

/* Prints the summary line and returns the process exit code. */
static inline int st_test_summary(void)
{
    printf("%d passed, %d failed\n", st_test_passed, st_test_failed);
    return st_test_failed == 0 ? 0 : 1;
}

#endif
