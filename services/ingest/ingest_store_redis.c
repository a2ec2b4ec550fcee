/* ingest_store_redis.c - ingest's duplicate marks in Redis (layout and bounds in ingest_store.h):
 * one pipelined round of GET per user of the batch to read, one of EVALSHA per user to write. */
#include <stdbool.h>
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
    st_buf_t keys, vals;         /* one round's user keys / packed marks or owners read */
    size_t *key_offs, *val_offs; /* per group / per record or group (SIZE_MAX: none) */
} redis_store_t;

/* The marks of one user, one Redis string (ingest_store.h): a 6-byte header, the high-water mark,
 * then MARK_SIZE bytes per mark. Every number is big-endian and unsigned, so Lua can read it
 * with string.byte and exact double arithmetic (all values < 2^53). */
#define HWM_SIZE  6
#define MARK_SIZE 22 /* event id 8, listened_at_ms 6, partition 2, offset 6 */
#define MAX_48    ((int64_t)1 << 48)

/* KEYS[1] the user's marks, KEYS[2] the previous layout's hash (deleted). ARGV: window_ms,
 * max_per_user, ttl_s, then the new marks packed as in the string. A new mark whose event id is
 * held already is not added (the first owner wins); the high-water mark moves to the newest
 * listen time of all; marks older than it minus the window are dropped, then the oldest (listen
 * time, then event id) beyond the cap; the string is written back with the ttl. */
static const char write_lua[] =
    "local window, cap, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])\n"
    "local function u48(s, p)\n"
    "  local a, b, c, d, e, f = string.byte(s, p, p + 5)\n"
    "  return ((((a * 256 + b) * 256 + c) * 256 + d) * 256 + e) * 256 + f\n"
    "end\n"
    "local v = redis.call('GET', KEYS[1]) or ''\n"
    "local hwm = #v >= 6 and u48(v, 1) or -1\n"
    "local marks, have = {}, {}\n"
    "local function add(s, p)\n"
    "  local id = string.sub(s, p, p + 7)\n"
    "  local t = u48(s, p + 8)\n"
    "  if t > hwm then hwm = t end\n"
    "  if not have[id] then\n"
    "    have[id] = true\n"
    "    marks[#marks + 1] = {t, id, string.sub(s, p, p + 21)}\n"
    "  end\n"
    "end\n"
    "for p = 7, #v - 21, 22 do add(v, p) end\n"
    "local new = ARGV[4]\n"
    "for p = 1, #new - 21, 22 do add(new, p) end\n"
    "local keep = {}\n"
    "for _, m in ipairs(marks) do\n"
    "  if m[1] >= hwm - window then keep[#keep + 1] = m end\n"
    "end\n"
    "local first = 1\n"
    "if #keep > cap then\n"
    "  table.sort(keep, function(a, b) return a[1] < b[1] or (a[1] == b[1] and a[2] < b[2]) end)\n"
    "  first = #keep - cap + 1\n"
    "end\n"
    "local out, h = {}, hwm\n"
    "local hb = {}\n"
    "for i = 6, 1, -1 do hb[i] = h % 256; h = (h - hb[i]) / 256 end\n"
    "out[1] = string.char(unpack(hb))\n"
    "for i = first, #keep do out[#out + 1] = keep[i][3] end\n"
    "redis.call('SET', KEYS[1], table.concat(out), 'EX', ttl)\n"
    "redis.call('DEL', KEYS[2])\n"
    "return 1\n";

static int reserve(redis_store_t *s, size_t n)
{
    if (n <= s->cap)
        return 0;
    size_t *o = realloc(s->order, n * sizeof *o);
    if (!o)
        return -1;
    s->order = o;
    size_t *k = realloc(s->key_offs, n * sizeof *k);
    if (!k)
        return -1;
    s->key_offs = k;
    size_t *v = realloc(s->val_offs, n * sizeof *v);
    if (!v)
        return -1;
    s->val_offs = v;
    s->cap = n;
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

/* The keys of every group into s->keys, key_offs indexed by the group's first position: the
 * user's marks, then (after its NUL) the previous layout's hash. */
static int build_keys(redis_store_t *s, const ingest_mark_t *m, size_t n)
{
    st_buf_reset(&s->keys);
    for (size_t i = 0; i < n; i = group_end(s, m, n, i)) {
        s->key_offs[i] = s->keys.len;
        const ingest_mark_t *u = &m[s->order[i]];
        if (st_rkey_user(&s->keys, s->prefix, u->user, u->user_len, ST_RKEY_INGEST_MARKS, NULL) !=
                0 ||
            st_buf_append(&s->keys, "", 1) != 0 ||
            st_rkey_user(&s->keys, s->prefix, u->user, u->user_len, ST_RKEY_INGEST_SEEN, NULL) !=
                0 ||
            st_buf_append(&s->keys, "", 1) != 0)
            return -1;
    }
    return 0;
}

static const char *old_key(const redis_store_t *s, size_t group)
{
    const char *k = s->keys.data + s->key_offs[group];
    return k + strlen(k) + 1;
}

static void put_be(unsigned char *p, uint64_t v, int bytes)
{
    for (int i = bytes - 1; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)(v & 0xff);
}

static uint64_t get_be(const unsigned char *p, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v = v << 8 | p[i];
    return v;
}

/* The 8 bytes of a 16-hex-digit event id; false when it is not one. */
static bool event_id_bytes(const char *hex, unsigned char out[8])
{
    uint64_t v = 0;
    for (int i = 0; i < 16; i++) {
        char c = hex[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0)
            return false;
        v = v << 4 | (uint64_t)d;
    }
    if (hex[16] != '\0')
        return false;
    put_be(out, v, 8);
    return true;
}

/* Packs a mark (MARK_SIZE bytes at out); false when it cannot be: an event id that is not 16 hex
 * digits, a listen time outside [0, 2^48) ms, a partition over 65535 or an offset at or past 2^48
 * (none happens: ids are made by st_listen_event_id, times are checked by st_listen_parse). Such
 * a mark is not kept, which only lets a later copy of its listen through. */
static bool pack_mark(const ingest_mark_t *m, unsigned char *out)
{
    char *end;
    long part = strtol(m->owner, &end, 10);
    if (*end != ':' || part < 0 || part > 65535)
        return false;
    long long off = strtoll(end + 1, &end, 10);
    if (*end != '\0' || off < 0 || off >= MAX_48 || m->listened_at_ms < 0 ||
        m->listened_at_ms >= MAX_48 || !event_id_bytes(m->event_id, out))
        return false;
    put_be(out + 8, (uint64_t)m->listened_at_ms, 6);
    put_be(out + 14, (uint64_t)part, 2);
    put_be(out + 16, (uint64_t)off, 6);
    return true;
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
    for (size_t i = 0; i < n; i = group_end(s, m, n, i)) {
        const char *argv[] = {"GET", s->keys.data + s->key_offs[i]};
        if (st_redis_pipe_argv(s->redis, 2, argv, NULL) != 0)
            goto nomem;
        groups++;
    }
    redisReply **r;
    size_t nr;
    if (st_redis_exec(s->redis, &r, &nr, err) != 0)
        return -1;
    if (nr != groups) {
        st_err_set(err, ST_ERR_REDIS, ST_DISP_RETRY, "GET: %zu replies for %zu users", nr, groups);
        return -1;
    }
    /* The owners are formatted into vals: the replies go with the next round. */
    st_buf_reset(&s->vals);
    size_t g = 0;
    for (size_t i = 0, e; i < n; i = e, g++) {
        e = group_end(s, m, n, i);
        const redisReply *x = r[g];
        if (x->type == REDIS_REPLY_ERROR) {
            st_err_set(err, ST_ERR_REDIS, ST_DISP_FATAL, "GET %s: %s",
                       s->keys.data + s->key_offs[i], x->str);
            return -1;
        }
        /* No value: no marks. A value of the wrong shape (not written by this store) is read as
         * far as it holds whole marks. */
        size_t len = x->type == REDIS_REPLY_STRING ? x->len : 0;
        const unsigned char *v = (const unsigned char *)x->str;
        for (size_t j = i; j < e; j++) {
            size_t k = s->order[j];
            unsigned char id[8];
            s->val_offs[k] = SIZE_MAX;
            if (!event_id_bytes(m[k].event_id, id))
                continue;
            for (size_t p = HWM_SIZE; p + MARK_SIZE <= len; p += MARK_SIZE) {
                if (memcmp(v + p, id, 8) != 0)
                    continue;
                s->val_offs[k] = s->vals.len;
                if (st_buf_printf(&s->vals, "%u:%llu", (unsigned)get_be(v + p + 14, 2),
                                  (unsigned long long)get_be(v + p + 16, 6)) < 0 ||
                    st_buf_append(&s->vals, "", 1) != 0)
                    goto nomem;
                break;
            }
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
    /* Every group's marks packed into vals, in sort order; val_offs[i] is where group i starts. */
    st_buf_reset(&s->vals);
    if (st_buf_reserve(&s->vals, n * MARK_SIZE) != 0)
        goto nomem;
    for (size_t i = 0, e; i < n; i = e) {
        e = group_end(s, m, n, i);
        s->val_offs[i] = s->vals.len;
        for (size_t j = i; j < e; j++)
            if (pack_mark(&m[s->order[j]], (unsigned char *)s->vals.data + s->vals.len))
                s->vals.len += MARK_SIZE;
    }
    st_redis_pipe_reset(s->redis);
    size_t groups = 0;
    for (size_t i = 0, e; i < n; i = e) {
        e = group_end(s, m, n, i);
        size_t end = e < n ? s->val_offs[e] : s->vals.len;
        if (end == s->val_offs[i])
            continue; /* no mark could be packed */
        const char *argv[] = {s->keys.data + s->key_offs[i], old_key(s, i), window, cap, ttl,
                              s->vals.data + s->val_offs[i]};
        size_t lens[] = {strlen(argv[0]), strlen(argv[1]), strlen(window),
                         strlen(cap),     strlen(ttl),     end - s->val_offs[i]};
        if (st_redis_pipe_evalsha(s->redis, s->script, 2, 4, argv, lens) != 0)
            goto nomem;
        groups++;
    }
    if (groups == 0)
        return 0;
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
    free(s->prefix);
    free(s);
}
