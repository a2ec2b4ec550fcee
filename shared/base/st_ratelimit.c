/* st_ratelimit.c - token bucket as a GCRA (one "theoretical arrival time", integer microseconds)
 * and jittered exponential backoff. */
#include "st_ratelimit.h"

#include "st_err.h"
#include "st_time.h"

#include <math.h>
#include <stdlib.h>

struct st_ratelimit {
    st_ratelimit_clock_fn clock;
    void *clock_ctx;
    int64_t interval_us;  /* between tokens */
    int64_t tolerance_us; /* (burst - 1) * interval: how early a token may be taken */
    int64_t tat_us;       /* theoretical arrival time of the next token when the bucket is empty */
};

static int64_t default_clock(void *ctx)
{
    (void)ctx;
    return st_time_mono_us();
}

st_ratelimit_t *st_ratelimit_new(double rate_per_s, int burst, st_ratelimit_clock_fn clock,
                                 void *clock_ctx, char *errstr, size_t errstr_size)
{
    st_ratelimit_t *rl;
    if (!(rate_per_s > 0.0 && rate_per_s <= 1e6)) {
        st_errstr(errstr, errstr_size, "rate limit: rate %g/s is not in (0, 1e6]", rate_per_s);
        return NULL;
    }
    if (burst < 1) {
        st_errstr(errstr, errstr_size, "rate limit: burst %d is < 1", burst);
        return NULL;
    }
    if (!(rl = calloc(1, sizeof *rl))) {
        st_errstr(errstr, errstr_size, "rate limit: out of memory");
        return NULL;
    }
    rl->clock = clock ? clock : default_clock;
    rl->clock_ctx = clock_ctx;
    rl->interval_us = (int64_t)ceil(1e6 / rate_per_s);
    rl->tolerance_us = (int64_t)(burst - 1) * rl->interval_us;
    rl->tat_us = rl->clock(rl->clock_ctx);
    return rl;
}

void st_ratelimit_destroy(st_ratelimit_t *rl)
{
    free(rl);
}

int64_t st_ratelimit_take(st_ratelimit_t *rl)
{
    int64_t now = rl->clock(rl->clock_ctx);
    int64_t earliest = rl->tat_us - rl->tolerance_us;
    if (now < earliest)
        return earliest - now;
    rl->tat_us = (rl->tat_us > now ? rl->tat_us : now) + rl->interval_us;
    return 0;
}

void st_ratelimit_pause(st_ratelimit_t *rl, int64_t pause_us)
{
    int64_t now = rl->clock(rl->clock_ctx);
    int64_t resume = now + (pause_us > 0 ? pause_us : 0);
    /* The next token comes at resume exactly, and the one after it a full interval later. */
    if (resume + rl->tolerance_us > rl->tat_us)
        rl->tat_us = resume + rl->tolerance_us;
}

int64_t st_ratelimit_interval_us(const st_ratelimit_t *rl)
{
    return rl->interval_us;
}

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

int64_t st_ratelimit_backoff_ms(int attempt, int64_t base_ms, int64_t cap_ms, uint64_t *rng)
{
    int64_t ceiling = base_ms > 0 ? base_ms : 0;
    if (cap_ms < 0)
        cap_ms = 0;
    for (int i = 0; i < attempt && ceiling < cap_ms; i++)
        ceiling = ceiling > cap_ms / 2 ? cap_ms : ceiling * 2;
    if (ceiling > cap_ms)
        ceiling = cap_ms;
    return (int64_t)(splitmix64(rng) % ((uint64_t)ceiling + 1));
}
