/* track_cache.h - the enricher's in-process LRU of track metadata in front of the Redis cache:
 * key = Listen.track_key, value = source, duration and tags; negative entries expire. One thread
 * only (the poll loop). */
#ifndef TRACK_CACHE_H
#define TRACK_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "st_trackmeta.h"

typedef struct track_cache track_cache_t;

/* An entry as seen by a reader: strings borrowed from the cache, valid until the next
 * track_cache_put or track_cache_destroy. */
typedef struct {
    st_trackmeta_source_t source;
    int64_t duration_ms; /* -1 unknown */
    int ntags;
    const char *tags[ST_TRACKMETA_MAX_TAGS];
} track_cache_view_t;

/* Creates an LRU holding at most max_entries (>= 1). Returns NULL when out of memory. */
track_cache_t *track_cache_new(size_t max_entries);
/* Frees the cache and its entries; NULL is a no-op. */
void track_cache_destroy(track_cache_t *c);

/* The hash every call takes for key[0..len) (computed once per record by the caller). */
uint64_t track_cache_hash(const char *key, size_t len);

/* Looks key up; on a hit (an entry whose expires_at_ms is 0 or after now_ms) marks it most
 * recently used, fills *out and returns true. An expired entry is dropped (a miss). */
bool track_cache_get(track_cache_t *c, const char *key, size_t len, uint64_t hash, int64_t now_ms,
                     track_cache_view_t *out);

/* Inserts or replaces the entry of key with *m (copied), evicting the least recently used entry
 * when full. m->source NONE is ignored. Returns 0, or -1 when out of memory (the cache is then
 * unchanged apart from a possibly removed old entry of key). */
int track_cache_put(track_cache_t *c, const char *key, size_t len, uint64_t hash,
                    const st_trackmeta_t *m);

/* Number of entries held, and the number evicted since creation. */
size_t track_cache_size(const track_cache_t *c);
uint64_t track_cache_evictions(const track_cache_t *c);

#endif
