/* pred_store_redis.c - the predictor's state in Redis (layout and semantics in pred_store.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pred_store.h"
#include "st_buf.h"
#include "st_log.h"
#include "st_rkey.h"

typedef struct {
    pred_store_t iface;
    st_redis_t *redis;
    st_redis_script_t *script;
    char *prefix;
    st_buf_t kb[2];                         /* the keys of the call being built (key_of) */
    char mark_prefix[ST_APPLIED_FIELD_MAX]; /* "a:<in_topic>:" */
    size_t mark_prefix_len;
    const char **argv;
    size_t argv_cap;
} redis_store_t;

/* One user's write. KEYS[1] the user's hash, KEYS[2] the legacy history list (deleted).
 * ARGV[1] the marker count n, then n (field, offset) pairs (st_applied); then lc; then 'S' and
 * the open-prediction text (field os; the previous layout's o goes) or '-' (unchanged). Writes
 * nothing and returns 0 when a marker is already at or past its offset. */
static const char write_lua[] = ST_APPLIED_LUA "local j = st_applied(KEYS[1], 1)\n"
                                               "if not j then return 0 end\n"
                                               "st_applied_lc(KEYS[1], ARGV[j])\n"
                                               "if ARGV[j + 1] == 'S' then\n"
                                               "  redis.call('HSET', KEYS[1], 'os', ARGV[j + 2])\n"
                                               "  redis.call('HDEL', KEYS[1], 'o')\n"
                                               "end\n"
                                               "redis.call('DEL', KEYS[2])\n"
                                               "return 1\n";

/* Key i of the call being built (st_rkey.h), in the store's buffer i; NULL when out of memory. */
static const char *key_of(redis_store_t *s, int i, const char *user, const char *what,
                          const char *what2)
{
    st_buf_reset(&s->kb[i]);
    return st_rkey_user(&s->kb[i], s->prefix, user, strlen(user), what, what2) == 0 ? s->kb[i].data
                                                                                    : NULL;
}

/* An HMGET cluster cold version reply holding an assignment. */
static bool has_cluster(const redisReply *r)
{
    return r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
           r->element[0]->type == REDIS_REPLY_STRING && r->element[2]->type == REDIS_REPLY_STRING;
}

static int store_read(void *ctx, pred_store_user_t *users, size_t n, bool want_cluster,
                      st_err_t *err)
{
    redis_store_t *s = ctx;
    /* The assignment is in clu:prof; users the clusterer has not written since its upgrade still
     * have it in the previous layout's cluster key (clu_store.h), read in the same round. */
    size_t per_user = want_cluster ? 3 : 1;
    st_redis_pipe_reset(s->redis);
    for (size_t i = 0; i < n; i++) {
        const char *key = key_of(s, 0, users[i].user, ST_RKEY_PRED, NULL);
        const char *hgetall[] = {"HGETALL", key};
        if (!key || st_redis_pipe_argv(s->redis, 2, hgetall, NULL) != 0) {
            st_err_nomem(err);
            return -1;
        }
        for (int k = 0; want_cluster && k < 2; k++) {
            key = key_of(s, 0, users[i].user, k == 0 ? ST_RKEY_CLU_PROF : ST_RKEY_CLUSTER, NULL);
            const char *hmget[] = {"HMGET", key, "cluster", "cold", "version"};
            if (!key || st_redis_pipe_argv(s->redis, 5, hmget, NULL) != 0) {
                st_err_nomem(err);
                return -1;
            }
        }
    }
    if (n == 0)
        return 0;
    redisReply **r;
    size_t nr;
    if (st_redis_exec(s->redis, &r, &nr, err) != 0)
        return -1;
    if (nr != n * per_user) {
        st_err_set(err, ST_ERR_REDIS, ST_DISP_RETRY, "read round: %zu replies for %zu commands", nr,
                   n * per_user);
        return -1;
    }
    for (size_t i = 0; i < nr; i++) {
        if (r[i]->type == REDIS_REPLY_ERROR) {
            st_err_set(err, ST_ERR_REDIS, ST_DISP_FATAL, "read round: %s", r[i]->str);
            return -1;
        }
    }
    for (size_t i = 0; i < n; i++) {
        pred_store_user_t *u = &users[i];
        const redisReply *hs = r[i * per_user], *cl = NULL;
        for (size_t k = 1; k < per_user && !cl; k++)
            if (has_cluster(r[i * per_user + k]))
                cl = r[i * per_user + k];
        const redisReply *os = NULL, *legacy = NULL;
        pred_open_reset(u->open);
        u->cluster = -1;
        u->cluster_cold = false;
        u->cluster_version[0] = '\0';
        for (size_t j = 0; hs->type == REDIS_REPLY_ARRAY && j + 1 < hs->elements; j += 2) {
            const redisReply *f = hs->element[j], *v = hs->element[j + 1];
            if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
                continue;
            if (st_applied_read_field(u->applied, s->mark_prefix, s->mark_prefix_len, f->str,
                                      f->len, v->str))
                continue;
            if (f->len == 2 && memcmp(f->str, "os", 2) == 0)
                os = v;
            else if (f->len == 1 && f->str[0] == 'o')
                legacy = v;
        }
        if (os) {
            if (pred_open_parse(u->open, os->str, os->len) != 0)
                st_log_warn("open_state_malformed", "user=%s", u->user);
        } else {
            /* The previous layout: one open prediction, and lc as the end of the closed past. */
            u->open->closed_last_ms = u->applied->last_closed_ms;
            if (legacy && pred_open_parse_legacy(u->open, legacy->str, legacy->len) != 0)
                st_log_warn("open_state_malformed", "user=%s", u->user);
        }
        if (cl) {
            u->cluster = atoi(cl->element[0]->str);
            u->cluster_cold =
                cl->element[1]->type == REDIS_REPLY_STRING && atoi(cl->element[1]->str) != 0;
            snprintf(u->cluster_version, sizeof u->cluster_version, "%s", cl->element[2]->str);
        }
    }
    return 0;
}

static int store_write(void *ctx, const pred_store_write_t *w, size_t n, st_err_t *err)
{
    redis_store_t *s = ctx;
    /* KEYS (2), the markers (1 + 2 * max), lc, the open predictions (2). */
    enum { ARGC = 2 + 1 + 2 * ST_APPLIED_PARTS_MAX + 1 + 2 };
    if (s->argv_cap < ARGC) {
        const char **a = realloc(s->argv, ARGC * sizeof *a);
        if (!a) {
            st_err_nomem(err);
            return -1;
        }
        s->argv = a;
        s->argv_cap = ARGC;
    }
    char lc[24];
    st_applied_args_t marks;
    st_redis_pipe_reset(s->redis);
    for (size_t i = 0; i < n; i++) {
        const char **argv = s->argv;
        const char *hkey = key_of(s, 0, w[i].user, ST_RKEY_PRED, NULL),
                   *lkey = key_of(s, 1, w[i].user, ST_RKEY_PRED_HIST, NULL);
        if (!hkey || !lkey) {
            st_err_nomem(err);
            return -1;
        }
        int na = 0;
        argv[na++] = hkey;
        argv[na++] = lkey;
        na += st_applied_argv(w[i].applied, s->mark_prefix, &marks, argv + na);
        snprintf(lc, sizeof lc, "%lld", (long long)w[i].applied->last_closed_ms);
        argv[na++] = lc;
        if (w[i].open_text) {
            argv[na++] = "S";
            argv[na++] = w[i].open_text;
        } else {
            argv[na++] = "-";
        }
        if (st_redis_pipe_evalsha(s->redis, s->script, 2, na - 2, argv, NULL) != 0) {
            st_err_nomem(err);
            return -1;
        }
    }
    if (n == 0)
        return 0;
    redisReply **r;
    size_t nr;
    if (st_redis_exec(s->redis, &r, &nr, err) != 0)
        return -1;
    for (size_t i = 0; i < nr; i++) {
        if (r[i]->type == REDIS_REPLY_ERROR) {
            st_err_set(err, ST_ERR_REDIS, ST_DISP_FATAL, "write script: %s", r[i]->str);
            return -1;
        }
    }
    return 0;
}

pred_store_t *pred_store_redis_new(st_redis_t *redis, const char *prefix, const char *in_topic)
{
    redis_store_t *s = calloc(1, sizeof *s);
    if (!s || !(s->prefix = strdup(prefix))) {
        free(s);
        return NULL;
    }
    s->redis = redis;
    s->script = st_redis_script(redis, write_lua);
    s->mark_prefix_len = st_applied_prefix(s->mark_prefix, sizeof s->mark_prefix, in_topic);
    s->iface.ctx = s;
    s->iface.read = store_read;
    s->iface.write = store_write;
    return &s->iface;
}

void pred_store_redis_destroy(pred_store_t *iface)
{
    if (!iface)
        return;
    redis_store_t *s = iface->ctx;
    free(s->prefix);
    for (size_t i = 0; i < sizeof s->kb / sizeof s->kb[0]; i++)
        st_buf_free(&s->kb[i]);
    free(s->argv);
    free(s);
}
