/* fetch.h - the enricher's Last.fm side: the st_fetcher worker and its result callback, which
 * writes every answer into the Redis track cache over its own connection (OK -> a LASTFM entry;
 * not found -> a negative entry with a long TTL; retries exhausted or other failures -> a short
 * "try later" negative), and the fetcher's counters mirrored into /metrics. */
#ifndef FETCH_H
#define FETCH_H

#include <stddef.h>
#include <stdint.h>

#include "st_fetcher.h"
#include "st_redis.h"

typedef struct {
    st_fetcher_config_t fetcher; /* lastfm.api_key must be set; on_result is ours */
    st_redis_opts_t redis;       /* a second connection, used by the worker thread only */
    const char *redis_prefix;
    int64_t not_found_ttl_ms;
    int64_t try_later_ttl_ms;
} fetch_config_t;

typedef struct fetch fetch_t;

/* Registers the metrics (fetching shown as disabled) without starting anything: call once at
 * start, also when no API key is configured. */
void fetch_metrics_init(void);

/* Starts the fetcher worker. Strings are copied. Returns a new fetch_t (fetch_destroy), or NULL
 * with errstr filled (a bad setting). */
fetch_t *fetch_new(const fetch_config_t *conf, char *errstr, size_t errstr_size);
/* Stops the worker (an in-flight request is cancelled) and frees everything; NULL is a no-op. */
void fetch_destroy(fetch_t *f);

/* The fetch queue (borrowed) for the enricher's enqueues. */
st_fetcher_t *fetch_fetcher(fetch_t *f);

/* Copies the fetcher's counters into /metrics (call from the poll thread now and then). NULL is
 * allowed (nothing to copy). */
void fetch_sync_metrics(fetch_t *f);

#endif
