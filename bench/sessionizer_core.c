/* bench-sessionizer_core: listens/s through the sessionizer core with the in-memory store (no
 * Kafka, no Redis): reorder buffer, state decode/apply/encode, events. Usage:
 *   bench-sessionizer_core [records (default 1000000)] [users (default 1000)] [batch (500)] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "st_session.h"
#include "st_sessionizer.h"
#include "st_time.h"

static uint64_t rng_state = 7;
static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000000;
    size_t n_users = argc > 2 ? strtoul(argv[2], NULL, 10) : 1000;
    size_t batch = argc > 3 ? strtoul(argv[3], NULL, 10) : 500;
    if (n == 0 || n_users == 0 || batch == 0) {
        fprintf(stderr, "usage: %s [records] [users] [batch]\n", argv[0]);
        return 2;
    }
    char(*names)[32] = calloc(n_users, sizeof *names);
    st_sessionizer_record_t *recs = calloc(n, sizeof *recs);
    if (!names || !recs)
        return 1;
    for (size_t u = 0; u < n_users; u++)
        snprintf(names[u], sizeof names[u], "user_%06zu", u);
    int64_t now = 1200000000000LL;
    int64_t offsets[4] = {0};
    /* About one listen per user every 4 minutes of event time, jittered within the grace. */
    int64_t step_ms = (int64_t)(240000 / n_users) + 1;
    for (size_t i = 0; i < n; i++) {
        now += (int64_t)(rnd() % (uint64_t)(2 * step_ms));
        size_t u = rnd() % n_users;
        int32_t p = (int32_t)(u % 4);
        uint64_t track = rnd() % 5000;
        recs[i] = (st_sessionizer_record_t){p,
                                            offsets[p]++,
                                            names[u],
                                            strlen(names[u]),
                                            now - (int64_t)(rnd() % 50000),
                                            track % 9 ? (int64_t)(120000 + track * 37) : 0,
                                            track};
    }
    st_sessionizer_config_t cfg;
    st_sessionizer_config_default(&cfg);
    st_sessionizer_store_t *store = st_sessionizer_memstore_new();
    char errstr[128];
    st_sessionizer_t *sz = st_sessionizer_new(&cfg, store, errstr, sizeof errstr);
    if (!sz) {
        fprintf(stderr, "%s\n", errstr);
        return 1;
    }
    size_t events = 0;
    int64_t t0 = st_time_mono_us();
    for (size_t i = 0; i < n;) {
        st_err_t err = {0};
        for (size_t k = 0; k < batch && i < n; k++, i++)
            st_sessionizer_push(sz, &recs[i], &err);
        bool flush = i == n;
        size_t ne;
        if (st_sessionizer_prepare(sz, flush, &err) != 0 || st_sessionizer_finish(sz, &err) != 0) {
            fprintf(stderr, "%s\n", err.text);
            return 1;
        }
        st_sessionizer_events(sz, &ne);
        events += ne;
    }
    double secs = (double)(st_time_mono_us() - t0) / 1e6;
    st_sessionizer_stats_t stats;
    st_sessionizer_stats(sz, &stats);
    printf("sessionizer core (in-memory store): %zu listens, %zu users, batch %zu: %.2f s, "
           "%.0f listens/s; %zu events (%llu sessions), %llu late\n",
           n, n_users, batch, secs, n / secs, events, (unsigned long long)stats.closed,
           (unsigned long long)stats.late);
    st_sessionizer_destroy(sz);
    st_sessionizer_memstore_destroy(store);
    free(recs);
    free(names);
    return 0;
}
