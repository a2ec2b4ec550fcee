/* clu_store_redis.h - the clusterer's state in Redis: the clu_store_t of clu_store.h (layout,
 * semantics and migration there). One pipelined round per read (HGETALL clu:prof, GET clu:lens
 * per user; a second one, LRANGE clu:len and HMGET cluster, only for users not yet written by this
 * layout) and one per write (one EVALSHA per user). */
#ifndef CLU_STORE_REDIS_H
#define CLU_STORE_REDIS_H

#include "clu_store.h"
#include "st_redis.h"

/* The store over redis (borrowed, must outlive it; the script is registered with it). prefix and
 * the topic names (they name the markers) are copied; median_window >= 1 is the number of
 * lengths kept. NULL on no memory. */
clu_store_t *clu_store_redis_new(st_redis_t *redis, const char *prefix, const char *sessions_topic,
                                 const char *profiles_topic, int median_window);
/* NULL is a no-op. */
void clu_store_redis_destroy(clu_store_t *s);

#endif
