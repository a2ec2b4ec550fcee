/* enrich.h - the enricher's core, testable without Kafka and Redis: decode Listens, look their
 * tracks up (in-process LRU, then one round of the track cache, enrich_store.h, for all LRU
 * misses), queue fetches for tracks the cache does not know, and queue EnrichedListens in input
 * order to the pipeline's st_out_t (undecodable records as dead letters). main.c only wires.
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

#include "enrich_store.h"
#include "st_avro.h"
#include "st_err.h"
#include "st_fetcher.h"
#include "st_pipeline.h"

typedef struct {
    st_avro_registry_t *registry; /* borrowed, outlives the enricher */
    const char *out_topic;        /* listens.enriched (copied) */
    enrich_store_t *store;        /* the track cache (borrowed, outlives the enricher) */
    st_fetcher_t *fetcher;        /* borrowed; NULL = fetching disabled */
    size_t lru_entries;           /* >= 1 */
    int64_t wait_budget_ms;       /* > 0: wait up to this per batch for the batch's misses */
} enrich_config_t;

typedef struct enrich enrich_t;

/* Creates the enricher (codecs for Listen and EnrichedListen, the LRU, metrics). Returns a new
 * enricher (enrich_destroy), or NULL with errstr filled. */
enrich_t *enrich_new(const enrich_config_t *conf, char *errstr, size_t errstr_size);
/* Frees it; NULL is a no-op. */
void enrich_destroy(enrich_t *e);

/* Enriches msgs[0..n): every record is either queued to out on out_topic (key = user_id, in
 * input order) or a dead letter (undecodable: code "invalid" and the decoder's text). Returns 0,
 * or -1 with err (a store error is retriable; the caller reruns the whole batch, which is safe:
 * lookups and fetch requests are idempotent). */
int enrich_batch(enrich_t *e, const st_msg_t *msgs, size_t n, st_out_t *out, st_err_t *err);

#endif
