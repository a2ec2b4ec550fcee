/* enrich.h - the enricher's batch logic, testable without Kafka: decode Listens, look their
 * tracks up (in-process LRU, then one pipelined Redis round for all LRU misses), queue fetches
 * for tracks the cache does not know, and encode EnrichedListens in input order.
 *
 * metadata_source reports the origin recorded on the cache entry: LASTFM (fetched from
 * track.getInfo), CATALOG (loaded by `stint catalog import`), CACHE (an entry in the cache whose
 * origin is not recorded or not recognised), UNKNOWN (no entry yet, or a negative entry: not
 * found on Last.fm, or a failed fetch waiting to be retried). The same cache state therefore
 * always gives the same record, whichever cache level answered. */
#ifndef ENRICH_H
#define ENRICH_H

#include <stddef.h>
#include <stdint.h>

#include "st_avro.h"
#include "st_err.h"
#include "st_fetcher.h"
#include "st_pipeline.h"
#include "st_redis.h"

typedef struct {
    st_avro_registry_t *registry; /* borrowed, outlives the enricher */
    const char *out_topic;        /* listens.enriched (copied) */
    const char *redis_prefix;     /* copied */
    st_redis_t *redis;            /* the poll thread's connection, borrowed */
    st_fetcher_t *fetcher;        /* borrowed; NULL = fetching disabled */
    size_t lru_entries;           /* >= 1 */
    int64_t wait_budget_ms;       /* > 0: wait up to this per batch for the batch's misses */
} enrich_config_t;

/* Output callbacks: emit one EnrichedListen (key = user_id) for src, or reject src to the DLQ.
 * Return 0 or -1 (out of memory). */
typedef int (*enrich_emit_fn)(void *ctx, const st_msg_t *src, const void *key, size_t key_len,
                              const void *value, size_t value_len);
typedef int (*enrich_reject_fn)(void *ctx, const st_msg_t *src, const char *code, const char *text);

typedef struct enrich enrich_t;

/* Creates the enricher (codecs for Listen and EnrichedListen, the LRU, metrics). Returns a new
 * enricher (enrich_destroy), or NULL with errstr filled. */
enrich_t *enrich_new(const enrich_config_t *conf, char *errstr, size_t errstr_size);
/* Frees it; NULL is a no-op. */
void enrich_destroy(enrich_t *e);

/* Enriches msgs[0..n): every record is either emitted (in input order) or rejected (undecodable:
 * code "invalid" and the decoder's text). Returns 0, or -1 with err (a Redis error is retriable;
 * the caller reruns the whole batch, which is safe: lookups and fetch requests are idempotent). */
int enrich_batch(enrich_t *e, const st_msg_t *msgs, size_t n, enrich_emit_fn emit,
                 enrich_reject_fn reject, void *out_ctx, st_err_t *err);

#endif
