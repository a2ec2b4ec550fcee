/* Unit tests of st_ratelimit: the token bucket on a fake clock (spacing, burst, pause, the
 * one-second-window guarantee) and the jittered exponential backoff. */
#include "st_ratelimit.h"
#include "st_test.h"

static int64_t fake_now_us;

static int64_t fake_clock(void *ctx)
{
    (void)ctx;
    return fake_now_us;
}

static st_ratelimit_t *bucket(double rate, int burst)
{
    char err[128] = "";
    fake_now_us = 1000000;
    st_ratelimit_t *rl = st_ratelimit_new(rate, burst, fake_clock, NULL, err, sizeof err);
    if (!rl)
        fprintf(stderr, "st_ratelimit_new: %s\n", err);
    return rl;
}

static void test_spacing_burst_one(void)
{
    st_ratelimit_t *rl = bucket(5.0, 1);
    ST_REQUIRE(rl);
    ST_EQ_INT(st_ratelimit_interval_us(rl), 200000);
    ST_EQ_INT(st_ratelimit_take(rl), 0);
    ST_EQ_INT(st_ratelimit_take(rl), 200000);
    fake_now_us += 199999;
    ST_EQ_INT(st_ratelimit_take(rl), 1);
    fake_now_us += 1;
    ST_EQ_INT(st_ratelimit_take(rl), 0);
    /* An idle second does not bank tokens beyond the burst of one. */
    fake_now_us += 1000000;
    ST_EQ_INT(st_ratelimit_take(rl), 0);
    ST_EQ_INT(st_ratelimit_take(rl), 200000);
    st_ratelimit_destroy(rl);
}

static void test_burst(void)
{
    st_ratelimit_t *rl = bucket(10.0, 3);
    ST_REQUIRE(rl);
    ST_EQ_INT(st_ratelimit_take(rl), 0);
    ST_EQ_INT(st_ratelimit_take(rl), 0);
    ST_EQ_INT(st_ratelimit_take(rl), 0);
    ST_EQ_INT(st_ratelimit_take(rl), 100000);
    fake_now_us += 100000;
    ST_EQ_INT(st_ratelimit_take(rl), 0);
    ST_EQ_INT(st_ratelimit_take(rl), 100000);
    /* Refill up to the burst only. */
    fake_now_us += 10000000;
    for (int i = 0; i < 3; i++)
        ST_EQ_INT(st_ratelimit_take(rl), 0);
    ST_CHECK(st_ratelimit_take(rl) > 0);
    st_ratelimit_destroy(rl);
}

/* Takes tokens as early as the bucket allows for sim_s seconds; returns how many, and the most
 * found in any window [t, t + 1 s) starting at a grant. */
static int greedy_max_per_second(double rate, int burst, int sim_s, int *total)
{
    static int64_t grants[100000];
    int n = 0, worst = 0;
    st_ratelimit_t *rl = bucket(rate, burst);
    if (!rl)
        return -1;
    int64_t end = fake_now_us + (int64_t)sim_s * 1000000;
    while (fake_now_us < end && n < 100000) {
        int64_t w = st_ratelimit_take(rl);
        if (w == 0)
            grants[n++] = fake_now_us;
        else
            fake_now_us += w;
    }
    for (int i = 0, j = 0; i < n; i++) {
        while (j < n && grants[j] < grants[i] + 1000000)
            j++;
        if (j - i > worst)
            worst = j - i;
    }
    st_ratelimit_destroy(rl);
    *total = n;
    return worst;
}

static void test_window_never_exceeds_rate(void)
{
    static const double rates[] = {5.0, 10.0, 3.0, 7.0, 0.5};
    for (size_t i = 0; i < sizeof rates / sizeof rates[0]; i++) {
        int total = 0;
        int worst = greedy_max_per_second(rates[i], 1, 20, &total);
        int limit = rates[i] < 1.0 ? 1 : (int)rates[i];
        if (worst > limit)
            ST_FAIL_AT("rate %g: %d tokens in one second (limit %d)", rates[i], worst, limit);
        /* ...and the bucket is not needlessly slow: about rate * 20 s tokens. */
        ST_NEAR(total, rates[i] * 20, 1.0);
    }
    /* A burst of 3 lets 3 more than the rate into the first second only. */
    int total = 0;
    ST_EQ_INT(greedy_max_per_second(5.0, 3, 10, &total), 7);
}

static void test_pause(void)
{
    st_ratelimit_t *rl = bucket(5.0, 2);
    ST_REQUIRE(rl);
    st_ratelimit_pause(rl, 3000000);
    ST_EQ_INT(st_ratelimit_take(rl), 3000000);
    fake_now_us += 3000000;
    ST_EQ_INT(st_ratelimit_take(rl), 0);
    /* No burst right after a pause. */
    ST_EQ_INT(st_ratelimit_take(rl), 200000);
    /* A pause shorter than the current wait changes nothing. */
    st_ratelimit_pause(rl, 1000);
    ST_EQ_INT(st_ratelimit_take(rl), 200000);
    st_ratelimit_destroy(rl);
}

static void test_rounding_never_faster(void)
{
    st_ratelimit_t *rl = bucket(3.0, 1);
    ST_REQUIRE(rl);
    ST_EQ_INT(st_ratelimit_interval_us(rl), 333334);
    st_ratelimit_destroy(rl);
}

static void test_bad_settings(void)
{
    char err[128] = "";
    ST_CHECK(st_ratelimit_new(0.0, 1, NULL, NULL, err, sizeof err) == NULL);
    ST_CHECK(strstr(err, "rate") != NULL);
    err[0] = '\0';
    ST_CHECK(st_ratelimit_new(-1.0, 1, NULL, NULL, err, sizeof err) == NULL);
    ST_CHECK(st_ratelimit_new(NAN, 1, NULL, NULL, err, sizeof err) == NULL);
    err[0] = '\0';
    ST_CHECK(st_ratelimit_new(5.0, 0, NULL, NULL, err, sizeof err) == NULL);
    ST_CHECK(strstr(err, "burst") != NULL);
    st_ratelimit_destroy(NULL);
}

static void test_real_clock(void)
{
    st_ratelimit_t *rl = st_ratelimit_new(1.0, 1, NULL, NULL, NULL, 0);
    ST_REQUIRE(rl);
    ST_EQ_INT(st_ratelimit_take(rl), 0);
    int64_t w = st_ratelimit_take(rl);
    ST_CHECK(w > 0 && w <= 1000000);
    st_ratelimit_destroy(rl);
}

static void test_backoff_bounds(void)
{
    uint64_t rng = 42;
    for (int attempt = 0; attempt < 70; attempt++) {
        int64_t ceiling = attempt < 10 ? 100LL << attempt : 30000;
        if (ceiling > 30000)
            ceiling = 30000;
        int64_t max_seen = 0;
        for (int k = 0; k < 200; k++) {
            int64_t d = st_ratelimit_backoff_ms(attempt, 100, 30000, &rng);
            if (d < 0 || d > ceiling)
                ST_FAIL_AT("attempt %d: delay %lld outside [0, %lld]", attempt, (long long)d,
                           (long long)ceiling);
            if (d > max_seen)
                max_seen = d;
        }
        /* Full jitter spreads over the whole range, not a fixed delay. */
        if (max_seen < ceiling / 2)
            ST_FAIL_AT("attempt %d: max delay %lld < half of %lld", attempt, (long long)max_seen,
                       (long long)ceiling);
    }
    ST_EQ_INT(st_ratelimit_backoff_ms(3, 0, 1000, &rng), 0);
    ST_EQ_INT(st_ratelimit_backoff_ms(3, 100, 0, &rng), 0);
    int64_t huge = st_ratelimit_backoff_ms(1000, INT64_MAX / 2, INT64_MAX - 1, &rng);
    ST_CHECK(huge >= 0);
}

static void test_backoff_seeded(void)
{
    uint64_t a = 7, b = 7, c = 8;
    int same = 0, differ = 0;
    for (int i = 0; i < 20; i++) {
        int64_t x = st_ratelimit_backoff_ms(5, 1000, 60000, &a);
        int64_t y = st_ratelimit_backoff_ms(5, 1000, 60000, &b);
        int64_t z = st_ratelimit_backoff_ms(5, 1000, 60000, &c);
        same += x == y;
        differ += x != z;
    }
    ST_EQ_INT(same, 20);
    ST_CHECK(differ >= 15);
}

int main(void)
{
    ST_RUN(test_spacing_burst_one);
    ST_RUN(test_burst);
    ST_RUN(test_window_never_exceeds_rate);
    ST_RUN(test_pause);
    ST_RUN(test_rounding_never_faster);
    ST_RUN(test_bad_settings);
    ST_RUN(test_real_clock);
    ST_RUN(test_backoff_bounds);
    ST_RUN(test_backoff_seeded);
    return st_test_summary();
}
