/* enrich_store.h - the shared track-metadata cache as the enricher's core reads it: one round of
 * lookups per batch. enrich.c holds the logic; enrich_store_redis.c reads the Redis cache
 * (st_trackmeta.h: <prefix>:track:<hash> hashes, written by the fetcher and `stint catalog
 * import`), enrich_store_mem.c a map in memory (unit tests). */
#ifndef ENRICH_STORE_H
#define ENRICH_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "st_err.h"
#include "st_redis.h"
#include "st_trackmeta.h"

/* What a lookup found for one key. */
typedef enum {
    ENRICH_STORE_BROKEN = -1, /* a permanent error for this key (e.g. a foreign value under our
                                 prefix): the track is reported UNKNOWN and not fetched */
    ENRICH_STORE_ABSENT = 0,  /* no entry (or an expired negative one) */
    ENRICH_STORE_FOUND = 1    /* meta holds the entry */
} enrich_store_res_t;

typedef struct {
    void *ctx;
    /* Looks keys[i][0..lens[i]) up for i < n in one round at now_ms (wall clock: negative
     * entries expire): res[i] and, when FOUND, meta[i]; why[i] names a BROKEN entry's error
     * (the store's text, valid until its next call). 0, or -1 with err for the whole round
     * (retriable on a connection or transient server error). */
    int (*lookup)(void *ctx, const char *const *keys, const size_t *lens, size_t n, int64_t now_ms,
                  st_trackmeta_t *meta, enrich_store_res_t *res, const char **why, st_err_t *err);
} enrich_store_t;

/* The Redis cache over redis (borrowed: the poll thread's connection). NULL on no memory. */
enrich_store_t *enrich_store_redis_new(st_redis_t *redis, const char *prefix);
void enrich_store_redis_destroy(enrich_store_t *s);

/* The in-memory cache. */
enrich_store_t *enrich_store_mem_new(void);
void enrich_store_mem_destroy(enrich_store_t *s);
/* Adds or replaces the entry of key (what the fetcher or a catalog import would write).
 * 0 or -1 (no memory). */
int enrich_store_mem_put(enrich_store_t *s, const char *key, const st_trackmeta_t *m);
/* Makes key's entry unreadable (BROKEN with text why). 0 or -1. */
int enrich_store_mem_break(enrich_store_t *s, const char *key, const char *why);
/* The next n lookups succeed, the ones after fail (retriable) until n is set again (-1: never). */
void enrich_store_mem_fail_after(enrich_store_t *s, long n);
/* Lookup rounds made so far. */
long enrich_store_mem_rounds(const enrich_store_t *s);

#endif
