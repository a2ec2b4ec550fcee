/* ingest_store.h - ingest's duplicate marks behind one interface: read a batch's marks in one
 * round, write the marks of the records it produced in one round. ingest.c holds the logic;
 * ingest_store_redis.c keeps the marks in Redis, ingest_store_mem.c in memory (unit tests).
 *
 * A mark is "<partition>:<offset>" of the record that first carried an event_id (its owner),
 * kept for the dedup window (ttl_s). Redis layout: <prefix>:ingest:seen:<event_id>, a string
 * written with SET NX EX ttl_s, so a mark is never replaced while it lives: the first owner to
 * write wins and a rerun of the same write changes nothing. */
#ifndef INGEST_STORE_H
#define INGEST_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "st_err.h"
#include "st_redis.h"

typedef struct {
    void *ctx;
    /* Reads the marks of event_ids[0..n): marks[i] is the mark, or NULL when there is none. The
     * strings are the store's, valid until its next read or write. 0, or -1 with err (retriable
     * on a connection error, fatal on an error reply). */
    int (*read)(void *ctx, const char *const *event_ids, size_t n, const char **marks,
                st_err_t *err);
    /* Writes mark owners[i] for event_ids[i] where none exists, for ttl_s seconds, in one round.
     * 0, or -1 with err (as read); after an error some marks may be written, which a rerun of
     * the same write makes whole. */
    int (*write)(void *ctx, const char *const *event_ids, const char *const *owners, size_t n,
                 int64_t ttl_s, st_err_t *err);
} ingest_store_t;

/* The Redis store over redis (borrowed). NULL on no memory. */
ingest_store_t *ingest_store_redis_new(st_redis_t *redis, const char *prefix);
void ingest_store_redis_destroy(ingest_store_t *s);

/* The in-memory store: marks never expire (tests run within one window). */
ingest_store_t *ingest_store_mem_new(void);
void ingest_store_mem_destroy(ingest_store_t *s);
/* The next n writes succeed, the ones after fail (retriable) until n is set again (-1: never
 * fail): a crash between the outputs and the marks, for tests. */
void ingest_store_mem_fail_after(ingest_store_t *s, long n);
/* The mark of event_id, or NULL. */
const char *ingest_store_mem_mark(const ingest_store_t *s, const char *event_id);
/* Number of marks held. */
size_t ingest_store_mem_count(const ingest_store_t *s);

#endif
