/* st_ratelimit.h - a token bucket (rate + burst, with a pause for "slow down" answers) and the
 * exponential backoff with full jitter used between retries. The clock is injectable for tests. */
#ifndef ST_RATELIMIT_H
#define ST_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

/* A monotonic clock in microseconds; ctx is the pointer given to st_ratelimit_new. */
typedef int64_t (*st_ratelimit_clock_fn)(void *ctx);

typedef struct st_ratelimit st_ratelimit_t;

/* Creates a bucket granting rate_per_s tokens a second, at most burst at once (burst 1: tokens are
 * at least 1/rate apart, so no window of one second holds more than rate of them). The bucket
 * starts full. clock NULL uses st_time_mono_us; clock_ctx is borrowed.
 * Returns a new bucket (free with st_ratelimit_destroy), or NULL with errstr filled when
 * rate_per_s is not in (0, 1e6] or burst < 1. Not thread-safe: one user at a time. */
st_ratelimit_t *st_ratelimit_new(double rate_per_s, int burst, st_ratelimit_clock_fn clock,
                                 void *clock_ctx, char *errstr, size_t errstr_size);

/* Frees the bucket; NULL is a no-op. */
void st_ratelimit_destroy(st_ratelimit_t *rl);

/* Takes one token if one is available now and returns 0; otherwise takes nothing and returns the
 * wait in microseconds (> 0) until one will be. */
int64_t st_ratelimit_take(st_ratelimit_t *rl);

/* Grants no token before now + pause_us (used when the server says "rate limit exceeded"). After
 * the pause the bucket holds a single token, so no burst follows it. */
void st_ratelimit_pause(st_ratelimit_t *rl, int64_t pause_us);

/* The microseconds between tokens (1 / rate, rounded up so the rate is never exceeded). */
int64_t st_ratelimit_interval_us(const st_ratelimit_t *rl);

/* Delay before retry number attempt (0 for the first retry): uniform in
 * [0, min(cap_ms, base_ms * 2^attempt)] ("full jitter"), drawn from the PRNG state *rng (a seeded
 * splitmix64, advanced by the call; the same seed gives the same delays). Never overflows. */
int64_t st_ratelimit_backoff_ms(int attempt, int64_t base_ms, int64_t cap_ms, uint64_t *rng);

#endif
