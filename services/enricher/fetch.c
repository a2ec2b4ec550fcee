/* fetch.c - the fetcher's result callback (cache writes on the worker thread) and its metrics. */
#include "fetch.h"

#include <stdlib.h>
#include <string.h>

#include "st_lastfm.h"
#include "st_log.h"
#include "st_metrics.h"
#include "st_time.h"
#include "st_trackmeta.h"

/* Last.fm error codes given their own label; every other code is counted as "other". */
static const int labelled_codes[] = {6, 8, 10, 11, 16, 26, 29};
#define NLABELLED (sizeof labelled_codes / sizeof labelled_codes[0])

static struct {
    st_metric_t *requests, *fetches_ok, *fetches_not_found, *fetches_gave_up, *fetches_other;
    st_metric_t *retries, *rate_limit_waits, *rate_limited, *http_5xx, *transport;
    st_metric_t *codes[NLABELLED], *code_other;
    st_metric_t *queue_depth, *pending, *fatal_key, *enabled, *dropped_full, *dropped_stopped;
    st_metric_t *cache_writes, *cache_write_errors;
} m;

struct fetch {
    fetch_config_t conf;
    char *prefix;
    st_fetcher_t *fetcher;
    st_redis_t *redis;
    st_redis_script_t *store;
    st_fetcher_metrics_t last; /* the snapshot already copied into the metrics */
};

void fetch_metrics_init(void)
{
    m.requests = st_metrics_counter("stint_enricher_lastfm_requests_total", NULL,
                                    "HTTP requests to Last.fm, retries included.");
#define FETCHES(st)                                                                                \
    st_metrics_counter("stint_enricher_fetches_total", "status=\"" st "\"",                        \
                       "Tracks fetched, by final status.")
    m.fetches_ok = FETCHES("ok");
    m.fetches_not_found = FETCHES("not_found");
    m.fetches_gave_up = FETCHES("gave_up");
    m.fetches_other = FETCHES("other");
#undef FETCHES
    m.retries = st_metrics_counter("stint_enricher_lastfm_retries_total", NULL,
                                   "Requests repeated after a temporary failure.");
    m.rate_limit_waits = st_metrics_counter("stint_enricher_rate_limit_waits_total", NULL,
                                            "Requests that waited for a rate-limit token.");
    m.rate_limited = st_metrics_counter("stint_enricher_lastfm_rate_limited_total", NULL,
                                        "Answers asking to slow down (error 29, HTTP 429).");
    for (size_t i = 0; i < NLABELLED; i++) {
        char labels[32];
        snprintf(labels, sizeof labels, "code=\"%d\"", labelled_codes[i]);
        m.codes[i] = st_metrics_counter("stint_enricher_lastfm_errors_total", labels,
                                        "Error answers, by Last.fm error code or kind.");
    }
    m.code_other = st_metrics_counter("stint_enricher_lastfm_errors_total", "code=\"other\"",
                                      "Error answers, by Last.fm error code or kind.");
    m.http_5xx = st_metrics_counter("stint_enricher_lastfm_errors_total", "code=\"http_5xx\"",
                                    "Error answers, by Last.fm error code or kind.");
    m.transport = st_metrics_counter("stint_enricher_lastfm_errors_total", "code=\"transport\"",
                                     "Error answers, by Last.fm error code or kind.");
    m.queue_depth =
        st_metrics_gauge("stint_enricher_fetch_queue_depth", NULL, "Tracks waiting to be fetched.");
    m.pending =
        st_metrics_gauge("stint_enricher_fetch_pending", NULL, "Tracks queued or being fetched.");
    m.fatal_key = st_metrics_gauge("stint_enricher_lastfm_key_rejected", NULL,
                                   "1 when Last.fm rejected the API key (error 10/26): fetching "
                                   "stopped, durations stay unknown.");
    m.enabled = st_metrics_gauge("stint_enricher_fetch_enabled", NULL,
                                 "1 when Last.fm fetching runs (an API key is configured).");
    m.dropped_full = st_metrics_counter("stint_enricher_fetch_dropped_total", "reason=\"full\"",
                                        "Fetch requests dropped.");
    m.dropped_stopped = st_metrics_counter("stint_enricher_fetch_dropped_total",
                                           "reason=\"stopped\"", "Fetch requests dropped.");
    m.cache_writes = st_metrics_counter("stint_enricher_cache_writes_total", NULL,
                                        "Fetch results written into the Redis cache.");
    m.cache_write_errors = st_metrics_counter("stint_enricher_cache_write_errors_total", NULL,
                                              "Fetch results that could not be written to Redis.");
}

/* The worker thread's callback: one cache write per answer. */
static void on_result(void *ctx, const char *artist, const char *track,
                      const st_lastfm_api_result_t *res)
{
    fetch_t *f = ctx;
    char key[2 * ST_LASTFM_FIELD_MAX + 2];
    st_trackmeta_t meta;
    int64_t ttl_ms = 0;
    st_err_t err = {0};
    redisReply **replies;
    size_t nreplies;

    if (res->status == ST_LASTFM_API_FATAL_KEY) {
        st_metric_set(m.fatal_key, 1);
        st_metric_set(m.enabled, 0);
        return;
    }
    int klen = st_trackmeta_key(artist, strlen(artist), track, strlen(track), key, sizeof key);
    if (klen < 0)
        return;
    memset(&meta, 0, sizeof meta);
    meta.duration_ms = -1;
    switch (res->status) {
    case ST_LASTFM_API_OK:
        meta.source = ST_TRACKMETA_LASTFM;
        meta.duration_ms = res->duration_ms;
        meta.ntags = res->n_tags > ST_TRACKMETA_MAX_TAGS ? ST_TRACKMETA_MAX_TAGS : res->n_tags;
        for (int i = 0; i < meta.ntags; i++)
            snprintf(meta.tags[i], sizeof meta.tags[i], "%s", res->tags[i]);
        break;
    case ST_LASTFM_API_NOT_FOUND:
        meta.source = ST_TRACKMETA_NOT_FOUND;
        ttl_ms = f->conf.not_found_ttl_ms;
        break;
    default:
        meta.source = ST_TRACKMETA_TRY_LATER;
        ttl_ms = f->conf.try_later_ttl_ms;
        break;
    }
    st_redis_pipe_reset(f->redis);
    if (st_trackmeta_pipe_store(f->redis, f->store, f->prefix, key, (size_t)klen, &meta, ttl_ms,
                                st_time_wall_ms()) != 0 ||
        st_redis_ensure(f->redis, 5000, &err) != 0 ||
        st_redis_exec(f->redis, &replies, &nreplies, &err) != 0 || nreplies != 1 ||
        replies[0]->type == REDIS_REPLY_ERROR) {
        st_metric_inc(m.cache_write_errors, 1);
        st_log_warn("cache_write_failed", "error=\"%s\"",
                    err.text[0] ? err.text : "store script failed");
        return;
    }
    st_metric_inc(m.cache_writes, 1);
}

fetch_t *fetch_new(const fetch_config_t *conf, char *errstr, size_t errstr_size)
{
    fetch_t *f = calloc(1, sizeof *f);
    if (!f) {
        st_errstr(errstr, errstr_size, "out of memory");
        return NULL;
    }
    f->conf = *conf;
    f->prefix = strdup(conf->redis_prefix);
    if (!f->prefix) {
        st_errstr(errstr, errstr_size, "out of memory");
        goto fail;
    }
    f->conf.redis_prefix = f->prefix;
    f->redis = st_redis_new(&conf->redis);
    if (!f->redis) {
        st_errstr(errstr, errstr_size, "cannot create a Redis client");
        goto fail;
    }
    f->store = st_trackmeta_store_script(f->redis);
    st_fetcher_config_t fc = conf->fetcher;
    fc.on_result = on_result;
    fc.on_result_ctx = f;
    f->fetcher = st_fetcher_new(&fc, errstr, errstr_size);
    if (!f->fetcher)
        goto fail;
    st_metric_set(m.enabled, 1);
    return f;
fail:
    fetch_destroy(f);
    return NULL;
}

void fetch_destroy(fetch_t *f)
{
    if (!f)
        return;
    st_fetcher_destroy(f->fetcher);
    st_redis_destroy(f->redis);
    free(f->prefix);
    free(f);
}

st_fetcher_t *fetch_fetcher(fetch_t *f)
{
    return f->fetcher;
}

static void add_delta(st_metric_t *metric, uint64_t now, uint64_t before)
{
    if (now > before)
        st_metric_inc(metric, now - before);
}

void fetch_sync_metrics(fetch_t *f)
{
    st_fetcher_metrics_t s;
    if (!f)
        return;
    st_fetcher_metrics(f->fetcher, &s);
    const st_fetcher_metrics_t *b = &f->last;
    add_delta(m.requests, s.requests, b->requests);
    add_delta(m.fetches_ok, s.ok, b->ok);
    add_delta(m.fetches_not_found, s.not_found, b->not_found);
    add_delta(m.fetches_gave_up, s.gave_up, b->gave_up);
    add_delta(m.fetches_other, s.other, b->other);
    add_delta(m.retries, s.retries, b->retries);
    add_delta(m.rate_limit_waits, s.rate_limit_waits, b->rate_limit_waits);
    add_delta(m.rate_limited, s.rate_limited, b->rate_limited);
    add_delta(m.http_5xx, s.http_5xx, b->http_5xx);
    add_delta(m.transport, s.transport_errors, b->transport_errors);
    add_delta(m.dropped_full, s.dropped_full, b->dropped_full);
    add_delta(m.dropped_stopped, s.dropped_stopped, b->dropped_stopped);
    for (int code = 1; code < 32; code++) {
        st_metric_t *metric = m.code_other;
        for (size_t i = 0; i < NLABELLED; i++)
            if (labelled_codes[i] == code)
                metric = m.codes[i];
        add_delta(metric, s.lastfm_errors[code], b->lastfm_errors[code]);
    }
    st_metric_set(m.queue_depth, (double)s.queue_depth);
    st_metric_set(m.pending, (double)s.pending);
    if (s.fatal_key) {
        st_metric_set(m.fatal_key, 1);
        st_metric_set(m.enabled, 0);
    }
    f->last = s;
}
