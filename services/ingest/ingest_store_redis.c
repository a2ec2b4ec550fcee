/* ingest_store_redis.c - ingest's duplicate marks in Redis (layout in ingest_store.h): one MGET
 * per batch to read, one pipelined round of SET NX EX to write. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest_store.h"
#include "st_buf.h"
#include "st_rkey.h"

typedef struct {
    ingest_store_t iface;
    st_redis_t *redis;
    char *prefix;
    st_buf_t keys;     /* one round's keys, NUL-separated */
    size_t *key_offs;  /* their offsets in keys */
    const char **argv; /* one round's command */
    size_t cap;
    redisReply *reply; /* the last MGET's reply: the marks handed out point into it */
} redis_store_t;

static int reserve(redis_store_t *s, size_t n)
{
    if (n + 1 <= s->cap)
        return 0;
    size_t nc = s->cap ? s->cap : 256;
    while (nc < n + 1)
        nc *= 2;
    size_t *k = realloc(s->key_offs, nc * sizeof *k);
    if (!k)
        return -1;
    s->key_offs = k;
    const char **a = realloc(s->argv, nc * sizeof *a);
    if (!a)
        return -1;
    s->argv = a;
    s->cap = nc;
    return 0;
}

/* Builds the keys of event_ids[0..n) into s->keys. 0 or -1 (no memory). */
static int build_keys(redis_store_t *s, const char *const *event_ids, size_t n)
{
    if (reserve(s, n) != 0)
        return -1;
    st_buf_reset(&s->keys);
    for (size_t i = 0; i < n; i++) {
        s->key_offs[i] = s->keys.len;
        if (st_rkey_ingest_seen(&s->keys, s->prefix, event_ids[i]) != 0 ||
            st_buf_append(&s->keys, "", 1) != 0)
            return -1;
    }
    return 0;
}

static void drop_reply(redis_store_t *s)
{
    if (s->reply)
        freeReplyObject(s->reply);
    s->reply = NULL;
}

static int store_read(void *ctx, const char *const *event_ids, size_t n, const char **marks,
                      st_err_t *err)
{
    redis_store_t *s = ctx;
    drop_reply(s);
    for (size_t i = 0; i < n; i++)
        marks[i] = NULL;
    if (n == 0)
        return 0;
    if (build_keys(s, event_ids, n) != 0) {
        st_err_nomem(err);
        return -1;
    }
    s->argv[0] = "MGET";
    for (size_t i = 0; i < n; i++)
        s->argv[1 + i] = s->keys.data + s->key_offs[i];
    redisReply *r = st_redis_commandargv(s->redis, err, (int)(n + 1), s->argv, NULL);
    if (!r)
        return -1;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != n) {
        st_err_set(err, ST_ERR_REDIS, r->type == REDIS_REPLY_ERROR ? ST_DISP_FATAL : ST_DISP_RETRY,
                   "MGET: unexpected reply (type %d%s%s)", r->type,
                   r->type == REDIS_REPLY_ERROR ? ": " : "",
                   r->type == REDIS_REPLY_ERROR ? r->str : "");
        freeReplyObject(r);
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        if (r->element[i]->type == REDIS_REPLY_STRING)
            marks[i] = r->element[i]->str;
    s->reply = r;
    return 0;
}

static int store_write(void *ctx, const char *const *event_ids, const char *const *owners, size_t n,
                       int64_t ttl_s, st_err_t *err)
{
    redis_store_t *s = ctx;
    drop_reply(s);
    if (n == 0)
        return 0;
    if (build_keys(s, event_ids, n) != 0) {
        st_err_nomem(err);
        return -1;
    }
    char ttl[32];
    snprintf(ttl, sizeof ttl, "%lld", (long long)ttl_s);
    st_redis_pipe_reset(s->redis);
    for (size_t i = 0; i < n; i++) {
        const char *argv[] = {"SET", s->keys.data + s->key_offs[i], owners[i], "NX", "EX", ttl};
        if (st_redis_pipe_argv(s->redis, 6, argv, NULL) != 0) {
            st_err_nomem(err);
            return -1;
        }
    }
    redisReply **replies;
    size_t nreplies;
    if (st_redis_exec(s->redis, &replies, &nreplies, err) != 0)
        return -1;
    for (size_t i = 0; i < nreplies; i++)
        if (replies[i]->type == REDIS_REPLY_ERROR) {
            st_err_set(err, ST_ERR_REDIS, ST_DISP_FATAL, "SET: %s", replies[i]->str);
            return -1;
        }
    return 0;
}

ingest_store_t *ingest_store_redis_new(st_redis_t *redis, const char *prefix)
{
    redis_store_t *s = calloc(1, sizeof *s);
    if (!s || !(s->prefix = strdup(prefix))) {
        free(s);
        return NULL;
    }
    s->redis = redis;
    s->iface = (ingest_store_t){.ctx = s, .read = store_read, .write = store_write};
    return &s->iface;
}

void ingest_store_redis_destroy(ingest_store_t *iface)
{
    if (!iface)
        return;
    redis_store_t *s = iface->ctx;
    drop_reply(s);
    st_buf_free(&s->keys);
    free(s->key_offs);
    free(s->argv);
    free(s->prefix);
    free(s);
}
