/* enrich_store_redis.c - the enricher's reads of the Redis track cache: one pipelined round of
 * HMGETs (st_trackmeta_pipe_lookup) per batch. */
#include <stdlib.h>
#include <string.h>

#include "enrich_store.h"

typedef struct {
    enrich_store_t iface;
    st_redis_t *redis;
    char *prefix;
} redis_store_t;

static int store_lookup(void *ctx, const char *const *keys, const size_t *lens, size_t n,
                        int64_t now_ms, st_trackmeta_t *meta, enrich_store_res_t *res,
                        const char **why, st_err_t *err)
{
    redis_store_t *s = ctx;
    char rkey[ST_TRACKMETA_REDIS_KEY_SIZE + 256];
    if (n == 0)
        return 0;
    st_redis_pipe_reset(s->redis);
    for (size_t i = 0; i < n; i++)
        if (st_trackmeta_redis_key(s->prefix, keys[i], lens[i], rkey, sizeof rkey) < 0 ||
            st_trackmeta_pipe_lookup(s->redis, rkey) != 0) {
            st_err_set(err, ST_ERR_NOMEM, ST_DISP_FATAL, "cannot queue a Redis lookup");
            return -1;
        }
    redisReply **replies;
    size_t nreplies;
    if (st_redis_exec(s->redis, &replies, &nreplies, err) != 0)
        return -1;
    if (nreplies != n) {
        st_err_set(err, ST_ERR_REDIS, ST_DISP_RETRY, "expected %zu replies, got %zu", n, nreplies);
        return -1;
    }
    /* Transient error replies (LOADING, BUSY...) already failed the round as retriable in
     * st_redis_exec; an error reply here is permanent for its key (e.g. WRONGTYPE). */
    for (size_t i = 0; i < n; i++) {
        const redisReply *r = replies[i];
        int rc = r->type == REDIS_REPLY_ERROR
                     ? -1
                     : st_trackmeta_parse_lookup(r, keys[i], lens[i], now_ms, &meta[i]);
        res[i] = rc < 0 ? ENRICH_STORE_BROKEN : rc == 1 ? ENRICH_STORE_FOUND : ENRICH_STORE_ABSENT;
        why[i] = rc >= 0 ? NULL : r->type == REDIS_REPLY_ERROR ? r->str : "unexpected shape";
    }
    return 0;
}

enrich_store_t *enrich_store_redis_new(st_redis_t *redis, const char *prefix)
{
    redis_store_t *s = calloc(1, sizeof *s);
    if (!s || !(s->prefix = strdup(prefix))) {
        free(s);
        return NULL;
    }
    s->redis = redis;
    s->iface = (enrich_store_t){.ctx = s, .lookup = store_lookup};
    return &s->iface;
}

void enrich_store_redis_destroy(enrich_store_t *iface)
{
    if (!iface)
        return;
    redis_store_t *s = iface->ctx;
    free(s->prefix);
    free(s);
}
