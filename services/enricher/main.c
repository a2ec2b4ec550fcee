/* main.c - stint-enricher: consumes listens (Avro Listen), adds Last.fm track metadata from the
 * Redis track cache (LRU in front), and produces listens.enriched (Avro EnrichedListen); misses go
 * out at once as UNKNOWN and are fetched in the background (never blocking the poll loop). */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "enrich.h"
#include "fetch.h"
#include "st_avro.h"
#include "st_lastfm_api.h"
#include "st_log.h"
#include "st_metrics.h"
#include "st_service.h"

typedef struct {
    char *in_topic, *out_topic, *dlq_topic;
    char *api_key, *api_key_file, *base_url;
    double rate_per_s;
    int64_t timeout_ms, max_attempts, backoff_base_ms, backoff_cap_ms, rate_limited_pause_ms;
    int64_t queue_max, wait_budget_ms;
    int64_t lru_entries, not_found_ttl_s, try_later_ttl_s;
} enricher_config_t;

static enricher_config_t config;

#define OFF(f) offsetof(enricher_config_t, f)
static const st_config_entry_t table[] = {
    {"in.topic", ST_CFG_STRING, "listens", ST_CFG_NOBOUNDS, OFF(in_topic), false, 0,
     "input topic (Avro Listen)"},
    {"out.topic", ST_CFG_STRING, "listens.enriched", ST_CFG_NOBOUNDS, OFF(out_topic), false, 0,
     "output topic (Avro EnrichedListen)"},
    {"dlq.topic", ST_CFG_STRING, "listens.enriched.dlq", ST_CFG_NOBOUNDS, OFF(dlq_topic), false, 0,
     "dead-letter topic (Avro DeadLetter) for undecodable input"},
    {"lastfm.api_key", ST_CFG_STRING, NULL, ST_CFG_NOBOUNDS, OFF(api_key), true, 0,
     "Last.fm API key (prefer the environment or a key file); none = fetching disabled"},
    {"lastfm.api_key_file", ST_CFG_STRING, NULL, ST_CFG_NOBOUNDS, OFF(api_key_file), false, 0,
     "file whose first line is the Last.fm API key"},
    {"lastfm.base_url", ST_CFG_STRING, ST_LASTFM_API_DEFAULT_BASE_URL, ST_CFG_NOBOUNDS,
     OFF(base_url), false, 0, "Last.fm API endpoint"},
    {"lastfm.rate_per_s", ST_CFG_DOUBLE, "5", 0.01, 50, OFF(rate_per_s), false, 0,
     "requests per second at most (Last.fm asks for <= 5)"},
    {"lastfm.timeout_ms", ST_CFG_INT, "10000", 100, 120000, OFF(timeout_ms), false, 0,
     "timeout of one request"},
    {"lastfm.max_attempts", ST_CFG_INT, "4", 1, 20, OFF(max_attempts), false, 0,
     "attempts per track (HTTP 5xx, errors 11/16/29 are retried)"},
    {"lastfm.backoff_base_ms", ST_CFG_INT, "500", 1, 600000, OFF(backoff_base_ms), false, 0,
     "first retry waits up to this (exponential, full jitter)"},
    {"lastfm.backoff_cap_ms", ST_CFG_INT, "30000", 1, 3600000, OFF(backoff_cap_ms), false, 0,
     "no retry waits longer"},
    {"lastfm.rate_limited_pause_ms", ST_CFG_INT, "10000", 0, 3600000, OFF(rate_limited_pause_ms),
     false, 0, "pause of all requests after error 29 / HTTP 429"},
    {"lastfm.queue_max", ST_CFG_INT, "10000", 1, 10000000, OFF(queue_max), false, 0,
     "tracks waiting to be fetched at most (more are dropped and fetched on a later miss)"},
    {"lastfm.wait_budget_ms", ST_CFG_INT, "0", 0, 120000, OFF(wait_budget_ms), false, 0,
     "per batch, wait up to this for the batch's fetches (demos, evaluation); 0 = never wait; at "
     "most 2 min, well under the consumer's max.poll.interval.ms (5 min)"},
    {"cache.lru_entries", ST_CFG_INT, "100000", 1, 100000000, OFF(lru_entries), false, 0,
     "tracks held in the in-process LRU"},
    {"cache.not_found_ttl_s", ST_CFG_INT, "604800", 1, 31536000, OFF(not_found_ttl_s), false, 0,
     "how long a track Last.fm does not know (error 6) is not asked again"},
    {"cache.try_later_ttl_s", ST_CFG_INT, "300", 1, 31536000, OFF(try_later_ttl_s), false, 0,
     "how long a track whose fetch failed is not asked again"},
    {NULL, 0, NULL, 0, 0, 0, false, 0, NULL},
};

typedef struct {
    st_avro_registry_t *registry; /* the service's (borrowed) */
    fetch_t *fetch;
    enrich_store_t *store;
    enrich_t *enrich;
} enricher_t;

static int process(void *vctx, const st_msg_t *msgs, size_t n, st_out_t *out, st_err_t *err)
{
    enricher_t *ctx = vctx;
    int rc = enrich_batch(ctx->enrich, msgs, n, out, err);
    fetch_sync_metrics(ctx->fetch);
    return rc;
}

/* Starts the Last.fm fetcher when an API key is configured. Returns 0 (also when fetching is
 * disabled) or -1 with errstr. */
static int start_fetching(st_service_t *svc, enricher_t *ctx, char *errstr, size_t errstr_size)
{
    const st_service_config_t *base = st_service_config(svc);
    char key[512];
    fetch_metrics_init();
    if (config.api_key && *config.api_key) {
        if (st_lastfm_api_key_from(config.api_key, "lastfm.api_key", key, sizeof key, errstr,
                                   errstr_size) != 0)
            return -1;
    } else if (config.api_key_file && *config.api_key_file) {
        if (st_lastfm_api_load_key(config.api_key_file, key, sizeof key, errstr, errstr_size) != 0)
            return -1;
    } else {
        st_log_warn("lastfm_disabled",
                    "reason=\"no API key (set STINT_LASTFM_API_KEY or lastfm.api_key_file)\" "
                    "effect=\"tracks the cache does not know stay UNKNOWN\"");
        return 0;
    }
    fetch_config_t fc;
    memset(&fc, 0, sizeof fc);
    st_fetcher_config_init(&fc.fetcher);
    fc.fetcher.lastfm.base_url = config.base_url;
    fc.fetcher.lastfm.api_key = key;
    fc.fetcher.lastfm.total_timeout_ms = (long)config.timeout_ms;
    fc.fetcher.rate_per_s = config.rate_per_s;
    fc.fetcher.max_attempts = (int)config.max_attempts;
    fc.fetcher.backoff_base_ms = config.backoff_base_ms;
    fc.fetcher.backoff_cap_ms = config.backoff_cap_ms;
    fc.fetcher.rate_limited_pause_ms = config.rate_limited_pause_ms;
    fc.fetcher.queue_max = (size_t)config.queue_max;
    fc.redis.host = base->redis_host;
    fc.redis.port = (int)base->redis_port;
    fc.redis.username = base->redis_username;
    fc.redis.password = base->redis_password;
    fc.redis.db = (int)base->redis_db;
    fc.redis.timeout_ms = 5000;
    fc.redis_prefix = base->redis_prefix;
    fc.not_found_ttl_ms = config.not_found_ttl_s * 1000;
    fc.try_later_ttl_ms = config.try_later_ttl_s * 1000;
    ctx->fetch = fetch_new(&fc, errstr, errstr_size);
    memset(key, 0, sizeof key);
    if (!ctx->fetch)
        return -1;
    st_log_info("lastfm_enabled", "base_url=%s rate_per_s=%.2f max_attempts=%d wait_budget_ms=%lld",
                config.base_url, config.rate_per_s, (int)config.max_attempts,
                (long long)config.wait_budget_ms);
    return 0;
}

static int setup(st_service_t *svc, void *vctx, st_pipeline_handler_t *h, st_pipeline_opts_t *po,
                 char *errstr, size_t errstr_size)
{
    static const char *topics[1], *outs[1];
    enricher_t *ctx = vctx;
    const st_service_config_t *base = st_service_config(svc);

    ctx->registry = st_service_avro(svc);
    if (start_fetching(svc, ctx, errstr, errstr_size) != 0)
        return -1;
    ctx->store = enrich_store_redis_new(st_service_redis(svc), base->redis_prefix);
    if (!ctx->store)
        return st_errstr(errstr, errstr_size, "out of memory");
    enrich_config_t ec = {.registry = ctx->registry,
                          .out_topic = config.out_topic,
                          .store = ctx->store,
                          .fetcher = ctx->fetch ? fetch_fetcher(ctx->fetch) : NULL,
                          .lru_entries = (size_t)config.lru_entries,
                          .wait_budget_ms = config.wait_budget_ms};
    ctx->enrich = enrich_new(&ec, errstr, errstr_size);
    if (!ctx->enrich)
        return -1;
    topics[0] = config.in_topic;
    po->topics = topics;
    po->ntopics = 1;
    outs[0] = config.out_topic;
    po->out_topics = outs;
    po->nout_topics = 1;
    po->dlq_topic = config.dlq_topic;
    po->tick_ms = 1000; /* keeps the fetch metrics fresh while idle */
    h->ctx = ctx;
    h->process = process;
    return 0;
}

static void teardown(void *vctx)
{
    enricher_t *ctx = vctx;
    fetch_destroy(ctx->fetch);
    enrich_destroy(ctx->enrich);
    enrich_store_redis_destroy(ctx->store);
    memset(ctx, 0, sizeof *ctx);
}

int main(int argc, char **argv)
{
    static enricher_t ctx;
    st_service_def_t def = {"enricher", "adds Last.fm track metadata (duration, tags) to listens",
                            table,      &config,
                            setup,      teardown,
                            &ctx};
    return st_service_main(&def, argc, argv);
}
