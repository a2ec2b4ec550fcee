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
    st_buf_t kb[3];                         /* the keys of the call being built (key_of) */
    char mark_prefix[ST_APPLIED_FIELD_MAX]; /* "a:<in_topic>:" */
    size_t mark_prefix_len;
    const char **argv;
    size_t argv_cap;
    bool *old; /* read: which users have no state string (read from the previous layout) */
    size_t old_cap;
} redis_store_t;

/* One user's write. KEYS[1] the user's state string (pred_store.h), KEYS[2] the previous
 * layout's hash, KEYS[3] the legacy history list. ARGV[1] the marker count n, then n (field,
 * offset) pairs (st_applied, fields "a:<topic>:<partition>"); then lc; then 'S' and the
 * open-prediction text or '-' (unchanged). The state comes from the string, or from the hash when
 * the string is absent; the check-and-set is ST_APPLIED_LUA's on it (nothing written, 0, when a
 * stored marker is at or past its offset; lc forward only). The string is written whole; the
 * write that creates it deletes the hash and the list in the same call. Numbers stay the texts
 * they came as: Lua's tostring would print large ones in exponent form. */
static const char write_lua[] =
    "local cur = redis.call('GET', KEYS[1])\n"
    "local lc, body, marks, order = '-1', '', {}, {}\n"
    "local function mark(f, o)\n"
    "  if not marks[f] then order[#order + 1] = f end\n"
    "  marks[f] = o\n"
    "end\n"
    "if cur then\n"
    "  local nl = string.find(cur, '\\n', 1, true) or (#cur + 1)\n"
    "  body = string.sub(cur, nl + 1)\n"
    "  local first = true\n"
    "  for tok in string.gmatch(string.sub(cur, 1, nl - 1), '%S+') do\n"
    "    if first then lc, first = tok, false else\n"
    "      local f, o = string.match(tok, '^(.+)=(%d+)$')\n"
    "      if f then mark(f, o) end\n"
    "    end\n"
    "  end\n"
    "else\n"
    "  local h, legacy = redis.call('HGETALL', KEYS[2]), nil\n"
    "  for k = 1, #h, 2 do\n"
    "    local f, v = h[k], h[k + 1]\n"
    "    if f == 'lc' then lc = v\n"
    "    elseif f == 'os' then body = v\n"
    "    elseif f == 'o' then legacy = v\n"
    "    elseif string.sub(f, 1, 2) == 'a:' then mark(string.sub(f, 3), v) end\n"
    "  end\n"
    "  if body == '' and legacy then body = 'o' .. legacy end\n"
    "end\n"
    "local n = tonumber(ARGV[1])\n"
    "for k = 0, n - 1 do\n"
    "  local last = tonumber(marks[string.sub(ARGV[2 + 2 * k], 3)] or '-1') or -1\n"
    "  if tonumber(ARGV[3 + 2 * k]) <= last then return 0 end\n"
    "end\n"
    "for k = 0, n - 1 do mark(string.sub(ARGV[2 + 2 * k], 3), ARGV[3 + 2 * k]) end\n"
    "local j = 2 + 2 * n\n"
    "if tonumber(ARGV[j]) > (tonumber(lc) or -1) then lc = ARGV[j] end\n"
    "if ARGV[j + 1] == 'S' then body = ARGV[j + 2] end\n"
    "local out = {lc}\n"
    "for _, f in ipairs(order) do out[#out + 1] = f .. '=' .. marks[f] end\n"
    "redis.call('SET', KEYS[1], table.concat(out, ' ') .. '\\n' .. body)\n"
    "if not cur then redis.call('DEL', KEYS[2], KEYS[3]) end\n"
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

/* The open predictions of a state whose body is body (the string's, or the hash's os): the
 * pred_open_format text; "o" and the previous layout's single prediction (hash field o); or
 * nothing. Without a text of this layout the closed past ends at lc, as that layout had it. */
static void read_open(pred_store_user_t *u, const char *body, size_t len, bool legacy)
{
    if (len > 0 && !legacy) {
        if (pred_open_parse(u->open, body, len) != 0)
            st_log_warn("open_state_malformed", "user=%s", u->user);
        return;
    }
    u->open->closed_last_ms = u->applied->last_closed_ms;
    if (len > 0 && pred_open_parse_legacy(u->open, body, len) != 0)
        st_log_warn("open_state_malformed", "user=%s", u->user);
}

/* One "<name>=<value>" of a state string's first line (name "lc" for the first token) as the
 * hash field it was: "lc" or "a:<topic>:<partition>" (st_applied_read_field). */
static void read_token(redis_store_t *s, pred_store_user_t *u, const char *name, size_t name_len,
                       const char *val, size_t val_len)
{
    char field[2 + ST_APPLIED_FIELD_MAX] = "a:", value[24];
    if (name_len >= sizeof field - 2 || val_len >= sizeof value)
        return;
    memcpy(value, val, val_len);
    value[val_len] = '\0';
    memcpy(field + 2, name, name_len);
    field[2 + name_len] = '\0';
    bool lc = name_len == sizeof ST_APPLIED_LC_FIELD - 1 &&
              memcmp(name, ST_APPLIED_LC_FIELD, name_len) == 0;
    st_applied_read_field(u->applied, s->mark_prefix, s->mark_prefix_len, lc ? field + 2 : field,
                          lc ? name_len : name_len + 2, value);
}

/* A state string (layout in pred_store.h): "<lc>[ <topic>:<partition>=<offset>]...\n<body>". */
static void read_string(redis_store_t *s, pred_store_user_t *u, const char *v, size_t len)
{
    const char *nl = memchr(v, '\n', len), *end = nl ? nl : v + len;
    bool first = true;
    for (const char *p = v; p < end; first = false) {
        const char *tok = p;
        while (p < end && *p != ' ')
            p++;
        size_t tlen = (size_t)(p - tok);
        if (p < end)
            p++;
        const char *eq = first ? NULL : memchr(tok, '=', tlen);
        if (first)
            read_token(s, u, ST_APPLIED_LC_FIELD, sizeof ST_APPLIED_LC_FIELD - 1, tok, tlen);
        else if (eq)
            read_token(s, u, tok, (size_t)(eq - tok), eq + 1, tlen - (size_t)(eq - tok) - 1);
    }
    const char *body = nl ? nl + 1 : v + len;
    size_t blen = (size_t)(v + len - body);
    bool legacy = blen > 0 && body[0] == 'o';
    read_open(u, body + legacy, blen - legacy, legacy);
}

/* The previous layout's hash (HGETALL reply). */
static void read_hash(redis_store_t *s, pred_store_user_t *u, const redisReply *hs)
{
    const redisReply *os = NULL, *legacy = NULL;
    for (size_t j = 0; hs->type == REDIS_REPLY_ARRAY && j + 1 < hs->elements; j += 2) {
        const redisReply *f = hs->element[j], *v = hs->element[j + 1];
        if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
            continue;
        if (st_applied_read_field(u->applied, s->mark_prefix, s->mark_prefix_len, f->str, f->len,
                                  v->str))
            continue;
        if (f->len == 2 && memcmp(f->str, "os", 2) == 0)
            os = v;
        else if (f->len == 1 && f->str[0] == 'o')
            legacy = v;
    }
    if (os)
        read_open(u, os->str, os->len, false);
    else
        read_open(u, legacy ? legacy->str : "", legacy ? legacy->len : 0, true);
}

/* Checks a round's replies: 0, or -1 with err. */
static int round_ok(redisReply **r, size_t nr, size_t want, const char *what, st_err_t *err)
{
    if (nr != want) {
        st_err_set(err, ST_ERR_REDIS, ST_DISP_RETRY, "%s: %zu replies for %zu commands", what, nr,
                   want);
        return -1;
    }
    for (size_t i = 0; i < nr; i++) {
        if (r[i]->type == REDIS_REPLY_ERROR) {
            st_err_set(err, ST_ERR_REDIS, ST_DISP_FATAL, "%s: %s", what, r[i]->str);
            return -1;
        }
    }
    return 0;
}

static int store_read(void *ctx, pred_store_user_t *users, size_t n, bool want_cluster,
                      st_err_t *err)
{
    redis_store_t *s = ctx;
    if (n == 0)
        return 0;
    /* The assignment is in clu:prof; users the clusterer has not written since its upgrade still
     * have it in the previous layout's cluster key (clu_store.h), read in the same round. */
    size_t per_user = want_cluster ? 3 : 1;
    if (s->old_cap < n) {
        bool *o = realloc(s->old, n * sizeof *o);
        if (!o) {
            st_err_nomem(err);
            return -1;
        }
        s->old = o;
        s->old_cap = n;
    }
    st_redis_pipe_reset(s->redis);
    for (size_t i = 0; i < n; i++) {
        const char *key = key_of(s, 0, users[i].user, ST_RKEY_PRED_STATE, NULL);
        const char *get[] = {"GET", key};
        if (!key || st_redis_pipe_argv(s->redis, 2, get, NULL) != 0) {
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
    redisReply **r;
    size_t nr;
    if (st_redis_exec(s->redis, &r, &nr, err) != 0 ||
        round_ok(r, nr, n * per_user, "read round", err) != 0)
        return -1;
    size_t n_old = 0;
    for (size_t i = 0; i < n; i++) {
        pred_store_user_t *u = &users[i];
        const redisReply *st = r[i * per_user], *cl = NULL;
        for (size_t k = 1; k < per_user && !cl; k++)
            if (has_cluster(r[i * per_user + k]))
                cl = r[i * per_user + k];
        pred_open_reset(u->open);
        u->cluster = -1;
        u->cluster_cold = false;
        u->cluster_version[0] = '\0';
        if (st->type == REDIS_REPLY_STRING)
            read_string(s, u, st->str, st->len);
        else
            n_old++;
        if (cl) {
            u->cluster = atoi(cl->element[0]->str);
            u->cluster_cold =
                cl->element[1]->type == REDIS_REPLY_STRING && atoi(cl->element[1]->str) != 0;
            snprintf(u->cluster_version, sizeof u->cluster_version, "%s", cl->element[2]->str);
        }
        s->old[i] = st->type != REDIS_REPLY_STRING;
    }
    if (n_old == 0)
        return 0;
    /* Users without a state string: the previous layout's hash (Migration in pred_store.h), or
     * nothing for a new user. */
    st_redis_pipe_reset(s->redis);
    for (size_t i = 0; i < n; i++) {
        if (!s->old[i])
            continue;
        const char *key = key_of(s, 0, users[i].user, ST_RKEY_PRED, NULL);
        const char *hgetall[] = {"HGETALL", key};
        if (!key || st_redis_pipe_argv(s->redis, 2, hgetall, NULL) != 0) {
            st_err_nomem(err);
            return -1;
        }
    }
    if (st_redis_exec(s->redis, &r, &nr, err) != 0 ||
        round_ok(r, nr, n_old, "read round (previous layout)", err) != 0)
        return -1;
    for (size_t i = 0, k = 0; i < n; i++) {
        if (s->old[i])
            read_hash(s, &users[i], r[k++]);
    }
    return 0;
}

static int store_write(void *ctx, const pred_store_write_t *w, size_t n, st_err_t *err)
{
    redis_store_t *s = ctx;
    /* KEYS (3), the markers (1 + 2 * max), lc, the open predictions (2). */
    enum { ARGC = 3 + 1 + 2 * ST_APPLIED_PARTS_MAX + 1 + 2 };
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
        const char *skey = key_of(s, 0, w[i].user, ST_RKEY_PRED_STATE, NULL),
                   *hkey = key_of(s, 1, w[i].user, ST_RKEY_PRED, NULL),
                   *lkey = key_of(s, 2, w[i].user, ST_RKEY_PRED_HIST, NULL);
        if (!skey || !hkey || !lkey) {
            st_err_nomem(err);
            return -1;
        }
        int na = 0;
        argv[na++] = skey;
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
        if (st_redis_pipe_evalsha(s->redis, s->script, 3, na - 3, argv, NULL) != 0) {
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
    free(s->old);
    free(s);
}
