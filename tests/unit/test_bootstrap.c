/* Unit tests of st_bootstrap: cases with known answers (identical errors give exactly 1 with a
 * zero-width interval; a model better on every user gives an interval below 1; a hand-computed
 * two-user case), determinism for a fixed seed, independence of the row order, and bad input. */
#include "st_bootstrap.h"
#include "st_test.h"

static void test_identical_errors(void)
{
    double a[6] = {10, 20, 30, 5, 7, 100};
    int u[6] = {1, 1, 2, 2, 3, 3};
    st_bootstrap_ratio_t r;
    char err[128];
    ST_REQUIRE(st_bootstrap_ratio(a, a, u, 6, 2000, 0.95, 42, &r, err, sizeof err) == 0);
    ST_NEAR(r.ratio, 1.0, 0);
    ST_NEAR(r.lo, 1.0, 0);
    ST_NEAR(r.hi, 1.0, 0);
    ST_EQ_INT(r.groups, 3);
    ST_EQ_INT(st_bootstrap_verdict(&r), ST_BOOTSTRAP_NOT_SIG);
}

static void test_better_on_every_user(void)
{
    /* a's error is 60-90 % of b's on every user: every draw is below 1 */
    enum { N = 200 };
    double a[N], b[N];
    int u[N];
    for (int i = 0; i < N; i++) {
        u[i] = i % 20;
        b[i] = 100.0 + 37.0 * (i % 7);
        a[i] = b[i] * (0.6 + 0.3 * (double)(u[i] % 4) / 3.0);
    }
    st_bootstrap_ratio_t r;
    char err[128];
    ST_REQUIRE(st_bootstrap_ratio(a, b, u, N, 2000, 0.95, 7, &r, err, sizeof err) == 0);
    ST_CHECK(r.hi < 1.0);
    ST_CHECK(r.lo >= 0.6 && r.lo <= r.ratio && r.ratio <= r.hi);
    ST_EQ_INT(r.groups, 20);
    ST_EQ_INT(st_bootstrap_verdict(&r), ST_BOOTSTRAP_BETTER);
    /* and the other way round: worse on every user */
    ST_REQUIRE(st_bootstrap_ratio(b, a, u, N, 2000, 0.95, 7, &r, err, sizeof err) == 0);
    ST_CHECK(r.lo > 1.0);
    ST_EQ_INT(st_bootstrap_verdict(&r), ST_BOOTSTRAP_WORSE);
}

static void test_two_users_known(void)
{
    /* user 0: a = 1, b = 2; user 1: a = 3, b = 2. The draws can only be {0,0}: 0.5, {0,1}: 1,
     * {1,1}: 1.5, with probabilities 1/4, 1/2, 1/4; the 95 % interval is [0.5, 1.5], the point
     * ratio (1 + 3) / (2 + 2) = 1, and a mixed result is not significant */
    double a[2] = {1, 3}, b[2] = {2, 2};
    int u[2] = {5, 9};
    st_bootstrap_ratio_t r;
    char err[128];
    ST_REQUIRE(st_bootstrap_ratio(a, b, u, 2, 4000, 0.95, 1, &r, err, sizeof err) == 0);
    ST_NEAR(r.ratio, 1.0, 1e-12);
    ST_NEAR(r.lo, 0.5, 1e-12);
    ST_NEAR(r.hi, 1.5, 1e-12);
    ST_EQ_INT(st_bootstrap_verdict(&r), ST_BOOTSTRAP_NOT_SIG);
}

static void test_deterministic_and_order_free(void)
{
    enum { N = 120 };
    double a[N], b[N], a2[N], b2[N];
    int u[N], u2[N];
    for (int i = 0; i < N; i++) {
        u[i] = (i * 7) % 15;
        a[i] = 50.0 + (i * 13) % 97;
        b[i] = 60.0 + (i * 29) % 83;
    }
    for (int i = 0; i < N; i++) { /* the same rows, reversed */
        u2[i] = u[N - 1 - i];
        a2[i] = a[N - 1 - i];
        b2[i] = b[N - 1 - i];
    }
    st_bootstrap_ratio_t r1, r2, r3, r4;
    char err[128];
    ST_REQUIRE(st_bootstrap_ratio(a, b, u, N, 2000, 0.95, 11, &r1, err, sizeof err) == 0);
    ST_REQUIRE(st_bootstrap_ratio(a, b, u, N, 2000, 0.95, 11, &r2, err, sizeof err) == 0);
    ST_REQUIRE(st_bootstrap_ratio(a2, b2, u2, N, 2000, 0.95, 11, &r3, err, sizeof err) == 0);
    ST_REQUIRE(st_bootstrap_ratio(a, b, u, N, 2000, 0.95, 12, &r4, err, sizeof err) == 0);
    ST_CHECK(r1.lo == r2.lo && r1.hi == r2.hi && r1.ratio == r2.ratio);
    ST_CHECK(r1.lo == r3.lo && r1.hi == r3.hi);
    ST_NEAR(r1.ratio, r3.ratio, 1e-12);
    ST_CHECK(r1.lo != r4.lo || r1.hi != r4.hi); /* the seed matters */
    ST_CHECK(r1.lo < r1.ratio && r1.ratio < r1.hi);
    /* a wider level gives a wider interval */
    st_bootstrap_ratio_t r5;
    ST_REQUIRE(st_bootstrap_ratio(a, b, u, N, 2000, 0.5, 11, &r5, err, sizeof err) == 0);
    ST_CHECK(r5.lo >= r1.lo && r5.hi <= r1.hi && r5.hi - r5.lo < r1.hi - r1.lo);
}

static void test_bad_input(void)
{
    double a[1] = {1};
    int u[1] = {0};
    st_bootstrap_ratio_t r;
    char err[128];
    ST_CHECK(st_bootstrap_ratio(a, a, u, 0, 10, 0.95, 1, &r, err, sizeof err) == -1);
    ST_CHECK(st_bootstrap_ratio(a, a, u, 1, 0, 0.95, 1, &r, err, sizeof err) == -1);
    ST_CHECK(st_bootstrap_ratio(a, a, u, 1, 10, 1.0, 1, &r, err, sizeof err) == -1);
    /* zero baseline error: 0/0 counts as 1, x/0 as +inf */
    double z[1] = {0};
    ST_REQUIRE(st_bootstrap_ratio(z, z, u, 1, 10, 0.95, 1, &r, err, sizeof err) == 0);
    ST_NEAR(r.ratio, 1.0, 0);
    ST_REQUIRE(st_bootstrap_ratio(a, z, u, 1, 10, 0.95, 1, &r, err, sizeof err) == 0);
    ST_CHECK(isinf(r.ratio) && isinf(r.lo));
    ST_EQ_INT(st_bootstrap_verdict(&r), ST_BOOTSTRAP_WORSE);
}

int main(void)
{
    ST_RUN(test_identical_errors);
    ST_RUN(test_better_on_every_user);
    ST_RUN(test_two_users_known);
    ST_RUN(test_deterministic_and_order_free);
    ST_RUN(test_bad_input);
    return st_test_summary();
}
