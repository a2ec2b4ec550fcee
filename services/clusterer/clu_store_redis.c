/* clu_store_redis.c - the clusterer's state in Redis (layout, semantics and migration in
 * clu_store.h). */
#include "clu_store_redis.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "st_buf.h"
#include "st_rkey.h"

typedef struct {
    clu_store_t iface;
    st_redis_t *redis;
    st_redis_script_t *script;
    char *prefix;
    st_buf_t kb[7];                        /* the keys of the call being built (key_of) */
    char *sessions_topic, *profiles_topic; /* the previous layout's marker hashes were
                                              clu:applied:<topic> */
    char mark_s[ST_APPLIED_FIELD_MAX], mark_p[ST_APPLIED_FIELD_MAX]; /* "a:<topic>:" */
    size_t mark_s_len, mark_p_len;
    int median_window;
    char median_window_text[16], lens_from[16]; /* median_window, -median_window */
    st_buf_t nums;     /* one call's CLOSED values, each NUL-terminated (see queue_write) */
    const char **argv; /* one call's keys and arguments */
    size_t *argvlen;
    size_t argv_cap;
    bool *legacy; /* per user of a read: its hash has no "v", read the previous layout too */
    size_t legacy_cap;
} redis_store_t;

#define KEYS 7

/* The Lua side of clu_lens_*: one length as LEB128 of its whole milliseconds (old list entries
 * are the length_s text), and the script that keeps the last mw of them. */
#define LENS_LUA                                                                                   \
    "local function leb(x)\n"                                                                      \
    "  if not (x > 0) then x = 0 end\n"                                                            \
    "  if x > 9007199254740992 then x = 9007199254740992 end\n"                                    \
    "  local b = {}\n"                                                                             \
    "  while x >= 128 do\n"                                                                        \
    "    local r = x % 128\n"                                                                      \
    "    b[#b + 1] = string.char(128 + r)\n"                                                       \
    "    x = (x - r) / 128\n"                                                                      \
    "  end\n"                                                                                      \
    "  b[#b + 1] = string.char(x)\n"                                                               \
    "  return table.concat(b)\n"                                                                   \
    "end\n"                                                                                        \
    "local function last_lens(l, mw)\n"                                                            \
    "  local _, n = string.gsub(l, '[%z\\1-\\127]', '')\n"                                         \
    "  local pos = 1\n"                                                                            \
    "  for d = 1, n - mw do pos = string.find(l, '[%z\\1-\\127]', pos) + 1 end\n"                  \
    "  return string.sub(l, pos)\n"                                                                \
    "end\n"

/* One user's write. KEYS: clu:prof, clu:lens, and the previous layouts' keys: clu:len, cluster,
 * profile, the marker hashes of both topics. ARGV: the sessions markers (st_applied: count, then
 * the (field, offset) pairs), the profiles markers (the same), median_window, the count c of
 * CLOSED and c quadruples (start_ms, length_s, tracks, the length as clu:lens stores it); then
 * 'P', gender, age, country, registered_s, or '-'; then '1', cluster, cold, version, or '0'.
 * A user's first write by this layout (HSETNX of "v") moves the earlier layouts' state into it
 * first: ls becomes lc, clu:len becomes clu:lens, cluster's fields join clu:prof, and the old
 * keys go. */
static const char write_lua[] = ST_APPLIED_LUA LENS_LUA
    "local h = KEYS[1]\n"
    "local ns = tonumber(ARGV[1])\n"
    "local jp = 2 + 2 * ns\n"
    "local np = tonumber(ARGV[jp])\n"
    "local i = jp + 1 + 2 * np\n"
    "local mw = tonumber(ARGV[i])\n"
    "if redis.call('HSETNX', h, 'v', '2') == 1 then\n"
    "  if redis.call('HEXISTS', h, 'lc') == 0 then\n"
    "    local ls = redis.call('HGET', h, 'ls')\n"
    "    if ls then redis.call('HSET', h, 'lc', ls) end\n"
    "  end\n"
    "  redis.call('HDEL', h, 'ls')\n"
    "  if redis.call('EXISTS', KEYS[2]) == 0 then\n"
    "    local old = redis.call('LRANGE', KEYS[3], -mw, -1)\n"
    "    if #old > 0 then\n"
    "      local b = {}\n"
    "      for _, t in ipairs(old) do b[#b + 1] = leb(math.floor(tonumber(t) * 1000 + 0.5)) end\n"
    "      redis.call('SET', KEYS[2], table.concat(b))\n"
    "    end\n"
    "  end\n"
    "  if redis.call('HEXISTS', h, 'cluster') == 0 then\n"
    "    local c = redis.call('HMGET', KEYS[4], 'cluster', 'cold', 'version')\n"
    "    if c[1] and c[3] then\n"
    "      redis.call('HSET', h, 'cluster', c[1], 'cold', c[2] or '0', 'version', c[3])\n"
    "    end\n"
    "  end\n"
    "  redis.call('DEL', KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7])\n"
    "end\n"
    "local s = ns > 0 and st_applied(h, 1)\n"
    "local p = np > 0 and st_applied(h, jp)\n"
    "local nc = tonumber(ARGV[i + 1])\n"
    "i = i + 2\n"
    "if s and nc > 0 then\n"
    "  local add = {}\n"
    "  for k = i, i + 4 * (nc - 1), 4 do\n"
    "    if st_applied_lc(h, ARGV[k]) then\n"
    "      local len = tonumber(ARGV[k + 1])\n"
    "      redis.call('HINCRBY', h, 'n', 1)\n"
    "      redis.call('HINCRBYFLOAT', h, 'sum_s', ARGV[k + 1])\n"
    "      redis.call('HINCRBY', h, 'tracks', ARGV[k + 2])\n"
    "      if len > tonumber(redis.call('HGET', h, 'max_s') or '0') then\n"
    "        redis.call('HSET', h, 'max_s', ARGV[k + 1])\n"
    "      end\n"
    "      add[#add + 1] = ARGV[k + 3]\n"
    "    end\n"
    "  end\n"
    "  if #add > 0 then\n"
    "    local l = (redis.call('GET', KEYS[2]) or '') .. table.concat(add)\n"
    "    redis.call('SET', KEYS[2], last_lens(l, mw))\n"
    "  end\n"
    "end\n"
    "i = i + 4 * nc\n"
    "if ARGV[i] == 'P' then\n"
    "  if p then\n"
    "    redis.call('HSET', h, 'gender', ARGV[i + 1], 'age', ARGV[i + 2], 'country', ARGV[i + 3],\n"
    "               'registered_s', ARGV[i + 4])\n"
    "  end\n"
    "  i = i + 5\n"
    "else\n"
    "  i = i + 1\n"
    "end\n"
    "if ARGV[i] == '1' and (s or p) then\n"
    "  redis.call('HSET', h, 'cluster', ARGV[i + 1], 'cold', ARGV[i + 2], 'version', ARGV[i + 3])\n"
    "end\n"
    "return 1\n";

/* A length as clu:lens stores it: LEB128 (7 bits a byte, low first, the high bit set on every
 * byte but the last) of its whole milliseconds, rounded, clamped to [0, 2^53]. out has room for
 * CLU_LENS_ENTRY_MAX bytes; returns the count. */
#define CLU_LENS_ENTRY_MAX 10
static size_t lens_encode(double length_s, unsigned char *out)
{
    double ms = length_s * 1000.0;
    uint64_t v = !(ms > 0) ? 0 : ms >= 9007199254740992.0 ? (1ULL << 53) : (uint64_t)llround(ms);
    size_t n = 0;
    while (v >= 128) {
        out[n++] = (unsigned char)(128 | (v & 127));
        v >>= 7;
    }
    out[n++] = (unsigned char)v;
    return n;
}

/* Decodes clu:lens into lens (its last max entries, oldest first); returns the count. */
static int lens_decode(const unsigned char *b, size_t len, double *lens, int max)
{
    int total = 0;
    for (size_t i = 0; i < len; i++)
        total += b[i] < 128;
    int skip = total > max ? total - max : 0, n = 0;
    uint64_t v = 0;
    unsigned shift = 0;
    for (size_t i = 0; i < len; i++) {
        if (shift < 64)
            v |= (uint64_t)(b[i] & 127) << shift;
        shift += 7;
        if (b[i] < 128) {
            if (skip > 0)
                skip--;
            else
                lens[n++] = (double)v / 1000.0;
            v = 0;
            shift = 0;
        }
    }
    return n;
}

/* Key i of the call being built (st_rkey.h), in the store's buffer i; NULL when out of memory. */
static const char *key_of(redis_store_t *s, int i, const char *user, const char *what,
                          const char *what2)
{
    st_buf_reset(&s->kb[i]);
    return st_rkey_user(&s->kb[i], s->prefix, user, strlen(user), what, what2) == 0 ? s->kb[i].data
                                                                                    : NULL;
}

static bool field_is(const redisReply *f, const char *name)
{
    return f->len == strlen(name) && memcmp(f->str, name, f->len) == 0;
}

/* Fills u from its clu:prof hash; returns whether the hash is of this layout (has "v"). */
static bool read_prof(const redis_store_t *s, clu_store_user_t *u, const redisReply *hs)
{
    clu_store_prof_t *p = u->prof;
    clu_store_cluster_t *c = u->cluster;
    const char *ls = NULL, *cluster = NULL, *cold = NULL, *version = NULL;
    bool current = false;
    for (size_t j = 0; hs->type == REDIS_REPLY_ARRAY && j + 1 < hs->elements; j += 2) {
        const redisReply *f = hs->element[j], *v = hs->element[j + 1];
        if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
            continue;
        if (st_applied_read_field(u->sessions, s->mark_s, s->mark_s_len, f->str, f->len, v->str) ||
            st_applied_read_field(u->profiles, s->mark_p, s->mark_p_len, f->str, f->len, v->str))
            continue;
        if (field_is(f, "n"))
            p->n = atof(v->str);
        else if (field_is(f, "sum_s"))
            p->sum_s = atof(v->str);
        else if (field_is(f, "max_s"))
            p->max_s = atof(v->str);
        else if (field_is(f, "tracks"))
            p->tracks = atof(v->str);
        else if (field_is(f, "gender"))
            p->demo.gender = v->str[0] == 'm' || v->str[0] == 'f' ? v->str[0] : 0;
        else if (field_is(f, "age"))
            p->demo.age = atoi(v->str);
        else if (field_is(f, "country"))
            snprintf(p->demo.country, sizeof p->demo.country, "%s", v->str);
        else if (field_is(f, "registered_s"))
            p->demo.registered_s = atoll(v->str);
        else if (field_is(f, "cluster"))
            cluster = v->str;
        else if (field_is(f, "cold"))
            cold = v->str;
        else if (field_is(f, "version"))
            version = v->str;
        else if (field_is(f, "v"))
            current = true;
        else if (field_is(f, "ls"))
            ls = v->str;
    }
    /* The previous layout's last CLOSED start, until the user's next write makes it lc. */
    if (ls && u->sessions->last_closed_ms < 0)
        u->sessions->last_closed_ms = atoll(ls);
    if (cluster && version) {
        c->cluster = atoi(cluster);
        c->cold = cold && atoi(cold);
        snprintf(c->version, sizeof c->version, "%s", version);
    }
    return current;
}

/* Queues the commands of one user's read: HGETALL clu:prof and GET clu:lens, or (legacy) LRANGE
 * clu:len and HMGET cluster. 0 or -1 (no memory). */
static int queue_read(redis_store_t *s, const char *user, bool legacy)
{
    if (!legacy) {
        const char *kp = key_of(s, 0, user, ST_RKEY_CLU_PROF, NULL),
                   *kl = key_of(s, 1, user, ST_RKEY_CLU_LENS, NULL);
        const char *hgetall[] = {"HGETALL", kp}, *get[] = {"GET", kl};
        return kp && kl && st_redis_pipe_argv(s->redis, 2, hgetall, NULL) == 0 &&
                       st_redis_pipe_argv(s->redis, 2, get, NULL) == 0
                   ? 0
                   : -1;
    }
    const char *kl = key_of(s, 0, user, ST_RKEY_CLU_LEN, NULL),
               *kc = key_of(s, 1, user, ST_RKEY_CLUSTER, NULL);
    const char *lrange[] = {"LRANGE", kl, s->lens_from, "-1"};
    const char *hmget[] = {"HMGET", kc, "cluster", "cold", "version"};
    return kl && kc && st_redis_pipe_argv(s->redis, 4, lrange, NULL) == 0 &&
                   st_redis_pipe_argv(s->redis, 5, hmget, NULL) == 0
               ? 0
               : -1;
}

/* Sends the queued reads: the replies, 2 per user queued, or NULL with err. */
static redisReply **exec_reads(redis_store_t *s, size_t users, st_err_t *err)
{
    redisReply **r;
    size_t nr;
    if (st_redis_exec(s->redis, &r, &nr, err) != 0)
        return NULL;
    if (nr != 2 * users) {
        st_err_set(err, ST_ERR_REDIS, ST_DISP_RETRY, "clusterer read: %zu replies for %zu commands",
                   nr, 2 * users);
        return NULL;
    }
    for (size_t i = 0; i < nr; i++)
        if (r[i]->type == REDIS_REPLY_ERROR) {
            st_err_set(err, ST_ERR_REDIS, ST_DISP_FATAL, "clusterer read: %s", r[i]->str);
            return NULL;
        }
    return r;
}

/* One round for every user; a second one, of the previous layout's keys, for the users whose
 * hash is not of this layout yet (not written since the upgrade, or new). */
static int store_read(void *ctx, clu_store_user_t *users, size_t n, st_err_t *err)
{
    redis_store_t *s = ctx;
    if (n == 0)
        return 0;
    if (n > s->legacy_cap) {
        bool *l = realloc(s->legacy, n * sizeof *l);
        if (!l) {
            st_err_nomem(err);
            return -1;
        }
        s->legacy = l;
        s->legacy_cap = n;
    }
    st_redis_pipe_reset(s->redis);
    for (size_t i = 0; i < n; i++)
        if (queue_read(s, users[i].user, false) != 0) {
            st_err_nomem(err);
            return -1;
        }
    redisReply **r = exec_reads(s, n, err);
    if (!r)
        return -1;
    size_t n_legacy = 0;
    for (size_t i = 0; i < n; i++) {
        clu_store_user_t *u = &users[i];
        const redisReply *lens = r[2 * i + 1];
        clu_store_prof_t *p = u->prof;
        double *buf = p->lens;
        *p = (clu_store_prof_t){.demo = {.age = -1}, .lens = buf};
        *u->cluster = (clu_store_cluster_t){.cluster = -1};
        s->legacy[i] = !read_prof(s, u, r[2 * i]);
        if (lens->type == REDIS_REPLY_STRING) {
            p->n_lens =
                lens_decode((const unsigned char *)lens->str, lens->len, p->lens, s->median_window);
            s->legacy[i] = false; /* written by this layout (v is set first) */
        }
        n_legacy += s->legacy[i];
    }
    if (n_legacy == 0)
        return 0;
    st_redis_pipe_reset(s->redis);
    for (size_t i = 0; i < n; i++)
        if (s->legacy[i] && queue_read(s, users[i].user, true) != 0) {
            st_err_nomem(err);
            return -1;
        }
    if (!(r = exec_reads(s, n_legacy, err)))
        return -1;
    for (size_t i = 0, k = 0; i < n; i++) {
        if (!s->legacy[i])
            continue;
        clu_store_user_t *u = &users[i];
        clu_store_prof_t *p = u->prof;
        const redisReply *lr = r[2 * k], *cr = r[2 * k + 1];
        k++;
        for (size_t j = 0;
             lr->type == REDIS_REPLY_ARRAY && j < lr->elements && p->n_lens < s->median_window; j++)
            if (lr->element[j]->type == REDIS_REPLY_STRING)
                p->lens[p->n_lens++] = atof(lr->element[j]->str);
        clu_store_cluster_t *c = u->cluster;
        if (c->cluster < 0 && cr->type == REDIS_REPLY_ARRAY && cr->elements == 3 &&
            cr->element[0]->type == REDIS_REPLY_STRING &&
            cr->element[2]->type == REDIS_REPLY_STRING) {
            c->cluster = atoi(cr->element[0]->str);
            c->cold = cr->element[1]->type == REDIS_REPLY_STRING && atoi(cr->element[1]->str);
            snprintf(c->version, sizeof c->version, "%s", cr->element[2]->str);
        }
    }
    return 0;
}

/* Room for one call of w's arguments in s->argv and s->argvlen. */
static int argv_reserve(redis_store_t *s, const clu_store_write_t *w)
{
    size_t need = KEYS + 2 * (1 + 2 * ST_APPLIED_PARTS_MAX) + 2 + 4 * w->n_closed + 5 + 4;
    if (need <= s->argv_cap)
        return 0;
    const char **a = realloc(s->argv, need * sizeof *a);
    if (!a)
        return -1;
    s->argv = a;
    size_t *l = realloc(s->argvlen, need * sizeof *l);
    if (!l)
        return -1;
    s->argvlen = l;
    s->argv_cap = need;
    return 0;
}

/* Queues one user's EVALSHA. 0 or -1 (no memory). */
static int queue_write(redis_store_t *s, const clu_store_write_t *w)
{
    char n_closed[16], age[16], registered[24], gender[2] = {0, 0}, cluster[16];
    st_applied_args_t marks_s, marks_p;
    if (argv_reserve(s, w) != 0)
        return -1;
    /* The CLOSED values first, each a length byte and its bytes (the encoded length may hold NUL
     * bytes): the pointers into nums are taken once it stops growing. */
    st_buf_reset(&s->nums);
    for (size_t k = 0; k < w->n_closed; k++) {
        char v[4][32];
        size_t vl[4];
        snprintf(v[0], sizeof v[0], "%lld", (long long)w->closed[k].start_ms);
        snprintf(v[1], sizeof v[1], "%.17g", w->closed[k].length_s);
        snprintf(v[2], sizeof v[2], "%d", w->closed[k].tracks);
        for (int j = 0; j < 3; j++)
            vl[j] = strlen(v[j]);
        vl[3] = lens_encode(w->closed[k].length_s, (unsigned char *)v[3]);
        for (int j = 0; j < 4; j++) {
            unsigned char len = (unsigned char)vl[j];
            if (st_buf_append(&s->nums, &len, 1) != 0 || st_buf_append(&s->nums, v[j], vl[j]) != 0)
                return -1;
        }
    }
    const char **argv = s->argv;
    size_t *argvlen = s->argvlen;
    int na = 0;
    static const char *const what[KEYS] = {
        ST_RKEY_CLU_PROF, ST_RKEY_CLU_LENS,        ST_RKEY_CLU_LEN,        ST_RKEY_CLUSTER,
        ST_RKEY_PROFILE,  ST_RKEY_CLU_APPLIED_PRE, ST_RKEY_CLU_APPLIED_PRE};
    const char *what2[KEYS] = {NULL, NULL, NULL, NULL, NULL, s->sessions_topic, s->profiles_topic};
    for (int k = 0; k < KEYS; k++)
        if (!(argv[na++] = key_of(s, k, w->user, what[k], what2[k])))
            return -1;
    na += st_applied_argv(w->sessions, s->mark_s, &marks_s, argv + na);
    na += st_applied_argv(w->profiles, s->mark_p, &marks_p, argv + na);
    argv[na++] = s->median_window_text;
    snprintf(n_closed, sizeof n_closed, "%zu", w->n_closed);
    argv[na++] = n_closed;
    /* Every argument so far is text; the CLOSED values carry their lengths. */
    for (int k = 0; k < na; k++)
        argvlen[k] = strlen(argv[k]);
    const char *num = s->nums.data;
    for (size_t k = 0; k < 4 * w->n_closed; k++) {
        size_t len = (unsigned char)*num++;
        argvlen[na] = len;
        argv[na++] = num;
        num += len;
    }
    int first_text = na;
    if (w->demo) {
        gender[0] = w->demo->gender;
        snprintf(age, sizeof age, "%d", w->demo->age);
        snprintf(registered, sizeof registered, "%lld", (long long)w->demo->registered_s);
        argv[na++] = "P";
        argv[na++] = gender;
        argv[na++] = age;
        argv[na++] = w->demo->country;
        argv[na++] = registered;
    } else {
        argv[na++] = "-";
    }
    if (w->cluster) {
        snprintf(cluster, sizeof cluster, "%d", w->cluster->cluster);
        argv[na++] = "1";
        argv[na++] = cluster;
        argv[na++] = w->cluster->cold ? "1" : "0";
        argv[na++] = w->cluster->version;
    } else {
        argv[na++] = "0";
    }
    for (int k = first_text; k < na; k++)
        argvlen[k] = strlen(argv[k]);
    return st_redis_pipe_evalsha(s->redis, s->script, KEYS, na - KEYS, argv, argvlen);
}

static int store_write(void *ctx, const clu_store_write_t *w, size_t n, st_err_t *err)
{
    redis_store_t *s = ctx;
    if (n == 0)
        return 0;
    st_redis_pipe_reset(s->redis);
    for (size_t i = 0; i < n; i++)
        if (queue_write(s, &w[i]) != 0) {
            st_err_nomem(err);
            return -1;
        }
    redisReply **r;
    size_t nr;
    if (st_redis_exec(s->redis, &r, &nr, err) != 0)
        return -1;
    for (size_t i = 0; i < nr; i++)
        if (r[i]->type == REDIS_REPLY_ERROR) {
            st_err_set(err, ST_ERR_REDIS, ST_DISP_FATAL, "clusterer write script: %s", r[i]->str);
            return -1;
        }
    return 0;
}

static int store_next_refit_seq(void *ctx, int64_t *seq, st_err_t *err)
{
    redis_store_t *s = ctx;
    st_buf_reset(&s->kb[0]);
    if (st_rkey_refit_seq(&s->kb[0], s->prefix) != 0) {
        st_err_nomem(err);
        return -1;
    }
    const char *key = s->kb[0].data;
    const char *argv[] = {"INCR", key};
    redisReply *r = st_redis_commandargv(s->redis, err, 2, argv, NULL);
    if (!r)
        return -1;
    int rc = 0;
    if (r->type == REDIS_REPLY_INTEGER) {
        *seq = r->integer;
    } else {
        st_err_set(err, ST_ERR_REDIS, ST_DISP_FATAL, "INCR %s: %s", key,
                   r->type == REDIS_REPLY_ERROR ? r->str : "not an integer reply");
        rc = -1;
    }
    freeReplyObject(r);
    return rc;
}

static int store_put_refit(void *ctx, const char *json, st_err_t *err)
{
    redis_store_t *s = ctx;
    st_buf_reset(&s->kb[0]);
    if (st_rkey_refit(&s->kb[0], s->prefix) != 0) {
        st_err_nomem(err);
        return -1;
    }
    const char *key = s->kb[0].data;
    const char *argv[] = {"SET", key, json};
    redisReply *r = st_redis_commandargv(s->redis, err, 3, argv, NULL);
    if (!r)
        return -1;
    int rc = 0;
    if (r->type == REDIS_REPLY_ERROR) {
        st_err_set(err, ST_ERR_REDIS, ST_DISP_FATAL, "SET %s: %s", key, r->str);
        rc = -1;
    }
    freeReplyObject(r);
    return rc;
}

clu_store_t *clu_store_redis_new(st_redis_t *redis, const char *prefix, const char *sessions_topic,
                                 const char *profiles_topic, int median_window)
{
    redis_store_t *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->iface = (clu_store_t){s, store_read, store_write, store_next_refit_seq, store_put_refit};
    if (!(s->prefix = strdup(prefix)) || !(s->sessions_topic = strdup(sessions_topic)) ||
        !(s->profiles_topic = strdup(profiles_topic))) {
        clu_store_redis_destroy(&s->iface);
        return NULL;
    }
    s->mark_s_len = st_applied_prefix(s->mark_s, sizeof s->mark_s, sessions_topic);
    s->mark_p_len = st_applied_prefix(s->mark_p, sizeof s->mark_p, profiles_topic);
    s->median_window = median_window;
    snprintf(s->median_window_text, sizeof s->median_window_text, "%d", median_window);
    snprintf(s->lens_from, sizeof s->lens_from, "%d", -median_window);
    s->redis = redis;
    s->script = st_redis_script(redis, write_lua);
    return &s->iface;
}

void clu_store_redis_destroy(clu_store_t *iface)
{
    if (!iface)
        return;
    redis_store_t *s = iface->ctx;
    free(s->prefix);
    free(s->sessions_topic);
    free(s->profiles_topic);
    for (size_t i = 0; i < sizeof s->kb / sizeof s->kb[0]; i++)
        st_buf_free(&s->kb[i]);
    st_buf_free(&s->nums);
    free(s->argv);
    free(s->argvlen);
    free(s->legacy);
    free(s);
}
