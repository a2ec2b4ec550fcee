/* ingest_store_redis.c - ingest's duplicate marks in Redis (layout and bounds in ingest_store.h):
 * one pipelined round of HMGET per user of the batch to read, one of EVALSHA per user to write. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest_store.h"
#include "st_buf.h"
#include "st_rkey.h"

typedef struct {
    ingest_store_t iface;
    st_redis_t *redis;
    st_redis_script_t *script;
    char *prefix;
    size_t *order, cap;          /* the batch's records sorted by user (then input order) */
    st_buf_t keys, vals;         /* one round's user keys / mark values or owners read */
    size_t *key_offs, *val_offs; /* per group / per record (SIZE_MAX: none) */
    const char **argv;
    size_t *lens;
} redis_store_t;

/* KEYS[1] the user's hash. ARGV: window_ms, max_per_user, ttl_s, then (event_id, value) pairs,
 * value = "<listened_at_ms> <owner>". Field "~h" holds the high-water mark (the newest listen time
 * marked); marks older than it minus the window are dropped, then the oldest beyond the cap. */
static const char write_lua[] =
    "local h = KEYS[1]\n"
    "local window, cap, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])\n"
    "local hwm = tonumber(redis.call('HGET', h, '~h') or '')\n"
    "for i = 4, #ARGV, 2 do\n"
    "  redis.call('HSETNX', h, ARGV[i], ARGV[i + 1])\n"
    "  local t = tonumber(string.match(ARGV[i + 1], '^(%-?%d+)'))\n"
    "  if not hwm or t > hwm then hwm = t end\n"
    "end\n"
    "redis.call('HSET', h, '~h', hwm)\n"
    "local all = redis.call('HGETALL', h)\n"
    "local keep = {}\n"
    "for j = 1, #all, 2 do\n"
    "  if all[j] ~= '~h' then\n"
    "    local t = tonumber(string.match(all[j + 1], '^(%-?%d+)')) or hwm - window - 1\n"
    "    if t < hwm - window then\n"
    "      redis.call('HDEL', h, all[j])\n"
    "    else\n"
    "      keep[#keep + 1] = {t, all[j]}\n"
    "    end\n"
    "  end\n"
    "end\n"
    "if #keep > cap then\n"
    "  table.sort(keep, function(a, b) return a[1] < b[1] or (a[1] == b[1] and a[2] < b[2]) end)\n"
    "  for j = 1, #keep - cap do redis.call('HDEL', h, keep[j][2]) end\n"
    "end\n"
    "redis.call('EXPIRE', h, ttl)\n"
    "return 1\n";

static int reserve(redis_store_t *s, size_t n)
{
    size_t need = n + 8; /* argv of one call: key + 3 bounds + 2 per record */
    if (2 * n + 8 > need)
        need = 2 * n + 8;
    if (need <= s->cap)
        return 0;
    size_t *o = realloc(s->order, need * sizeof *o);
    if (!o)
        return -1;
    s->order = o;
    size_t *k = realloc(s->key_offs, need * sizeof *k);
    if (!k)
        return -1;
    s->key_offs = k;
    size_t *v = realloc(s->val_offs, need * sizeof *v);
    if (!v)
        return -1;
    s->val_offs = v;
    const char **a = realloc(s->argv, need * sizeof *a);
    if (!a)
        return -1;
    s->argv = a;
    size_t *l = realloc(s->lens, need * sizeof *l);
    if (!l)
        return -1;
    s->lens = l;
    s->cap = need;
    return 0;
}

/* A record to sort: its user and its index (ties keep input order). */
typedef struct {
    const char *user;
    size_t len, i;
} by_user_t;

static int cmp_user(const void *pa, const void *pb)
{
    const by_user_t *a = pa, *b = pb;
    int c = memcmp(a->user, b->user, a->len < b->len ? a->len : b->len);
    if (c != 0)
        return c;
    if (a->len != b->len)
        return a->len < b->len ? -1 : 1;
    return a->i < b->i ? -1 : a->i > b->i;
}

/* order[0..n): the records sorted by user, then input order. 0 or -1 (no memory). */
static int sort_by_user(redis_store_t *s, const ingest_mark_t *m, size_t n)
{
    by_user_t *t = malloc(n * sizeof *t);
    if (!t)
        return -1;
    for (size_t i = 0; i < n; i++)
        t[i] = (by_user_t){m[i].user, m[i].user_len, i};
    qsort(t, n, sizeof *t, cmp_user);
    for (size_t i = 0; i < n; i++)
        s->order[i] = t[i].i;
    free(t);
    return 0;
}

/* The end (exclusive) of the group of order[] starting at i: the records of one user. */
static size_t group_end(const redis_store_t *s, const ingest_mark_t *m, size_t n, size_t i)
{
    size_t j = i + 1;
    const ingest_mark_t *a = &m[s->order[i]];
    while (j < n && m[s->order[j]].user_len == a->user_len &&
           memcmp(m[s->order[j]].user, a->user, a->user_len) == 0)
        j++;
    return j;
}

/* The user keys of every group into s->keys (key_offs indexed by the group's first position). */
static int build_keys(redis_store_t *s, const ingest_mark_t *m, size_t n)
{
    st_buf_reset(&s->keys);
    for (size_t i = 0; i < n; i = group_end(s, m, n, i)) {
        s->key_offs[i] = s->keys.len;
        const ingest_mark_t *u = &m[s->order[i]];
        if (st_rkey_user(&s->keys, s->prefix, u->user, u->user_len, ST_RKEY_INGEST_SEEN, NULL) !=
                0 ||
            st_buf_append(&s->keys, "", 1) != 0)
            return -1;
    }
    return 0;
}

static int store_read(void *ctx, const ingest_mark_t *m, size_t n, const char **found,
                      st_err_t *err)
{
    redis_store_t *s = ctx;
    for (size_t i = 0; i < n; i++)
        found[i] = NULL;
    if (n == 0)
        return 0;
    if (reserve(s, n) != 0)
        goto nomem;
    if (sort_by_user(s, m, n) != 0 || build_keys(s, m, n) != 0)
        goto nomem;
    st_redis_pipe_reset(s->redis);
    size_t groups = 0;
    for (size_t i = 0, e; i < n; i = e) {
        e = group_end(s, m, n, i);
        int argc = 0;
        s->argv[argc++] = "HMGET";
        s->argv[argc++] = s->keys.data + s->key_offs[i];
        for (size_t j = i; j < e; j++)
            s->argv[argc++] = m[s->order[j]].event_id;
        if (st_redis_pipe_argv(s->redis, argc, s->argv, NULL) != 0)
            goto nomem;
        groups++;
    }
    redisReply **r;
    size_t nr;
    if (st_redis_exec(s->redis, &r, &nr, err) != 0)
        return -1;
    if (nr != groups) {
        st_err_set(err, ST_ERR_REDIS, ST_DISP_RETRY, "HMGET: %zu replies for %zu users", nr,
                   groups);
        return -1;
    }
    /* The owners are copied into vals: the replies go with the next round. */
    st_buf_reset(&s->vals);
    size_t g = 0;
    for (size_t i = 0, e; i < n; i = e, g++) {
        e = group_end(s, m, n, i);
        redisReply *x = r[g];
        if (x->type == REDIS_REPLY_ERROR) {
            st_err_set(err, ST_ERR_REDIS, ST_DISP_FATAL, "HMGET %s: %s",
                       s->keys.data + s->key_offs[i], x->str);
            return -1;
        }
        if (x->type != REDIS_REPLY_ARRAY || x->elements != e - i) {
            st_err_set(err, ST_ERR_REDIS, ST_DISP_RETRY, "HMGET: unexpected reply (type %d)",
                       x->type);
            return -1;
        }
        for (size_t j = i; j < e; j++) {
            const redisReply *v = x->element[j - i];
            const char *sp = v->type == REDIS_REPLY_STRING ? strchr(v->str, ' ') : NULL;
            s->val_offs[s->order[j]] = sp ? s->vals.len : SIZE_MAX;
            if (sp && st_buf_append(&s->vals, sp + 1, strlen(sp + 1) + 1) != 0)
                goto nomem;
        }
    }
    for (size_t i = 0; i < n; i++)
        found[i] = s->val_offs[i] != SIZE_MAX ? s->vals.data + s->val_offs[i] : NULL;
    return 0;
nomem:
    st_err_nomem(err);
    return -1;
}

static int store_write(void *ctx, const ingest_mark_t *m, size_t n, const ingest_bounds_t *b,
                       st_err_t *err)
{
    redis_store_t *s = ctx;
    if (n == 0)
        return 0;
    if (reserve(s, n) != 0)
        goto nomem;
    if (sort_by_user(s, m, n) != 0 || build_keys(s, m, n) != 0)
        goto nomem;
    char window[24], cap[24], ttl[24];
    snprintf(window, sizeof window, "%lld", (long long)b->window_ms);
    snprintf(cap, sizeof cap, "%lld", (long long)b->max_per_user);
    snprintf(ttl, sizeof ttl, "%lld", (long long)b->ttl_s);
    st_buf_reset(&s->vals);
    for (size_t i = 0; i < n; i++) {
        s->val_offs[i] = s->vals.len;
        if (st_buf_printf(&s->vals, "%lld %s", (long long)m[i].listened_at_ms, m[i].owner) < 0 ||
            st_buf_append(&s->vals, "", 1) != 0)
            goto nomem;
    }
    st_redis_pipe_reset(s->redis);
    size_t groups = 0;
    for (size_t i = 0, e; i < n; i = e) {
        e = group_end(s, m, n, i);
        int argc = 0;
        s->argv[argc++] = s->keys.data + s->key_offs[i];
        s->argv[argc++] = window;
        s->argv[argc++] = cap;
        s->argv[argc++] = ttl;
        for (size_t j = i; j < e; j++) {
            s->argv[argc++] = m[s->order[j]].event_id;
            s->argv[argc++] = s->vals.data + s->val_offs[s->order[j]];
        }
        for (int k = 0; k < argc; k++)
            s->lens[k] = strlen(s->argv[k]);
        if (st_redis_pipe_evalsha(s->redis, s->script, 1, argc - 1, s->argv, s->lens) != 0)
            goto nomem;
        groups++;
    }
    redisReply **r;
    size_t nr;
    if (st_redis_exec(s->redis, &r, &nr, err) != 0)
        return -1;
    for (size_t i = 0; i < nr; i++)
        if (r[i]->type == REDIS_REPLY_ERROR) {
            st_err_set(err, ST_ERR_REDIS, ST_DISP_FATAL, "ingest marks script: %s", r[i]->str);
            return -1;
        }
    if (nr != groups) {
        st_err_set(err, ST_ERR_REDIS, ST_DISP_RETRY, "marks: %zu replies for %zu users", nr,
                   groups);
        return -1;
    }
    return 0;
nomem:
    st_err_nomem(err);
    return -1;
}

ingest_store_t *ingest_store_redis_new(st_redis_t *redis, const char *prefix)
{
    redis_store_t *s = calloc(1, sizeof *s);
    if (!s || !(s->prefix = strdup(prefix))) {
        free(s);
        return NULL;
    }
    s->redis = redis;
    s->script = st_redis_script(redis, write_lua);
    s->iface = (ingest_store_t){.ctx = s, .read = store_read, .write = store_write};
    return &s->iface;
}

void ingest_store_redis_destroy(ingest_store_t *iface)
{
    if (!iface)
        return;
    redis_store_t *s = iface->ctx;
    st_buf_free(&s->keys);
    st_buf_free(&s->vals);
    free(s->order);
    free(s->key_offs);
    free(s->val_offs);
    free(s->argv);
    free(s->lens);
    free(s->prefix);
    free(s);
}
