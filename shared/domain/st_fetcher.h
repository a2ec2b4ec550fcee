/* st_fetcher.h - the asynchronous track-metadata fetch queue: the caller enqueues (artist, track)
 * keys without ever waiting on HTTP; one worker thread deduplicates, rate-limits, calls Last.fm
 * with retries, and hands each result to a callback. Independent of any cache. */
#ifndef ST_FETCHER_H
#define ST_FETCHER_H

#include "st_lastfm_api.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Called on the worker thread once per fetched key, with the final result (after retries): OK,
 * NOT_FOUND, RETRY (attempts exhausted), OTHER, or FATAL_KEY (once; fetching then stops). artist,
 * track and result are borrowed for the duration of the call. The key stays "pending" (a new
 * enqueue of it is a duplicate) until the callback returns, so a cache write done here is visible
 * before the key can be queued again. */
typedef void (*st_fetcher_result_fn)(void *ctx, const char *artist, const char *track,
                                     const st_lastfm_api_result_t *result);

typedef struct {
    st_lastfm_api_config_t lastfm; /* client settings; its cancel hook is set by the fetcher */
    double rate_per_s;             /* default 5 */
    int burst;                     /* default 1: no one-second window exceeds rate_per_s */
    /* Arrival times at the server jitter by a few ms around send times, so requests are spaced
     * for rate_per_s per (1 s + rate_guard_ms): the server never sees more than rate_per_s in a
     * second unless the jitter exceeds this. Default 20 (5/s becomes 4.9/s). */
    int64_t rate_guard_ms;
    size_t queue_max;        /* pending keys at most (queued + in flight); default 10000 */
    int max_attempts;        /* per key, first try included; default 4 */
    int64_t backoff_base_ms; /* first retry waits up to this; default 500 */
    int64_t backoff_cap_ms;  /* no retry waits longer; default 30000 */
    int64_t
        rate_limited_pause_ms; /* error 29 / HTTP 429 pause the bucket this long; default 10000 */
    uint64_t jitter_seed;      /* PRNG seed of the backoff jitter; default 1 */
    st_fetcher_result_fn on_result; /* required */
    void *on_result_ctx;            /* borrowed */
} st_fetcher_config_t;

/* What st_fetcher_enqueue did with a key. */
typedef enum {
    ST_FETCHER_QUEUED = 0, /* new key, will be fetched */
    ST_FETCHER_DUPLICATE,  /* already queued or being fetched */
    ST_FETCHER_FULL,       /* queue full: dropped and counted */
    ST_FETCHER_STOPPED     /* fetching stopped (bad API key or shutting down): dropped, counted */
} st_fetcher_enqueue_t;

/* Counters since creation (a consistent snapshot). */
typedef struct {
    uint64_t enqueued;          /* keys accepted */
    uint64_t duplicates;        /* enqueues of a pending key */
    uint64_t dropped_full;      /* enqueues refused: queue full */
    uint64_t dropped_stopped;   /* enqueues refused or queued keys discarded after a stop */
    uint64_t requests;          /* HTTP requests sent, retries included */
    uint64_t fetches;           /* keys finished (callback called) */
    uint64_t ok;                /* keys with status OK */
    uint64_t not_found;         /* ... NOT_FOUND (error 6) */
    uint64_t gave_up;           /* ... RETRY after max_attempts */
    uint64_t other;             /* ... OTHER */
    uint64_t retries;           /* requests repeated after a RETRY answer */
    uint64_t rate_limit_waits;  /* requests that had to wait for a token */
    uint64_t rate_limited;      /* answers asking to slow down (error 29, HTTP 429) */
    uint64_t http_5xx;          /* answers with HTTP 500..599 */
    uint64_t transport_errors;  /* no HTTP answer (connect, timeout, ...) */
    uint64_t lastfm_errors[32]; /* answers by Last.fm error code (index 0 unused; >31 in [31]) */
    size_t queue_depth;         /* keys waiting (not counting the one in flight) */
    size_t pending;             /* keys queued or in flight */
    bool fatal_key;             /* a bad or suspended API key stopped fetching for good */
} st_fetcher_metrics_t;

typedef struct st_fetcher st_fetcher_t;

/* Fills conf with the defaults above (and the client's via st_lastfm_api_config_init); on_result
 * NULL. */
void st_fetcher_config_init(st_fetcher_config_t *conf);

/* Creates the fetcher and starts its worker thread. conf and its strings are copied. Returns a new
 * fetcher (st_fetcher_destroy), or NULL with errstr filled on a bad setting (no key, rate, ...). */
st_fetcher_t *st_fetcher_new(const st_fetcher_config_t *conf, char *errstr, size_t errstr_size);

/* Stops the worker (an HTTP request in flight is cancelled, queued keys are discarded without a
 * callback), joins it and frees everything. NULL is a no-op. */
void st_fetcher_destroy(st_fetcher_t *f);

/* Asks for (artist, track) to be fetched; never blocks on I/O (a mutex held for microseconds).
 * Keys are compared byte for byte: normalise them before. Both strings are copied. */
st_fetcher_enqueue_t st_fetcher_enqueue(st_fetcher_t *f, const char *artist, const char *track);

/* Waits until no key is pending, fetching has stopped, or budget_ms have passed (for demos and
 * evaluation runs that prefer waiting for their misses). Returns true when nothing is pending. */
bool st_fetcher_wait_idle(st_fetcher_t *f, int64_t budget_ms);

/* Copies the counters into *out. */
void st_fetcher_metrics(st_fetcher_t *f, st_fetcher_metrics_t *out);

/* A constant name, e.g. "queued". */
const char *st_fetcher_enqueue_name(st_fetcher_enqueue_t r);

#endif
