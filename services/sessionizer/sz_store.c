/* sz_store.c - the sessionizer's Redis state store, commit points and profile join. */
#include "sz_store.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "st_buf.h"
#include "st_rkey.h"

struct sz_store {
    st_sessionizer_store_t iface;
    st_redis_t *redis;
    st_redis_script_t *put;
    st_redis_script_t *drop; /* st_sessionizer_lua_drop */
    char *prefix;            /* "<p>" */
    st_buf_t keys;           /* keys of the current round, NUL-separated */
    size_t *key_off;
    size_t key_cap;
    size_t *key_rem; /* put_states: the writes whose deadline goes (round 3) */
    size_t rem_cap;
    sz_store_stats_t stats;
};

/* Appends a key (and its NUL) to s->keys, remembering its offset as key i. */
static int key_slot(sz_store_t *s, size_t i)
{
    if (i >= s->key_cap) {
        size_t cap = s->key_cap ? s->key_cap * 2 : 256;
        while (cap <= i)
            cap *= 2;
        size_t *k = realloc(s->key_off, cap * sizeof *k);
        if (!k)
            return -1;
        s->key_off = k;
        s->key_cap = cap;
    }
    s->key_off[i] = s->keys.len;
    return 0;
}

static int key_end(sz_store_t *s)
{
    return st_buf_append(&s->keys, "", 1);
}

static const char *key_at(const sz_store_t *s, size_t i)
{
    return s->keys.data + s->key_off[i];
}

static int nomem(st_err_t *err)
{
    st_err_set(err, ST_ERR_NOMEM, ST_DISP_FATAL, "sessionizer store: out of memory");
    return -1;
}

/* Queues one read per user of the round's keys, GET of the state or (legacy) HGET s. */
static int queue_reads(sz_store_t *s, const size_t *idx, size_t n, bool legacy)
{
    st_redis_pipe_reset(s->redis);
    for (size_t k = 0; k < n; k++) {
        const char *get[] = {"GET", key_at(s, 2 * idx[k])};
        const char *hget[] = {"HGET", key_at(s, 2 * idx[k] + 1), "s"};
        if (legacy ? st_redis_pipe_argv(s->redis, 3, hget, NULL)
                   : st_redis_pipe_argv(s->redis, 2, get, NULL))
            return -1;
    }
    return 0;
}

static int get_states(void *ctx, const st_sessionizer_user_t *users, size_t n, st_buf_t *out,
                      st_err_t *err)
{
    sz_store_t *s = ctx;
    st_buf_reset(&s->keys);
    size_t *idx = n ? malloc(n * sizeof *idx) : NULL;
    if (n && !idx)
        return nomem(err);
    for (size_t i = 0; i < n; i++) {
        idx[i] = i;
        if (key_slot(s, 2 * i) != 0 ||
            st_rkey_user(&s->keys, s->prefix, users[i].id, users[i].len, ST_RKEY_SZ, NULL) != 0 ||
            key_end(s) != 0 || key_slot(s, 2 * i + 1) != 0 ||
            st_rkey_user(&s->keys, s->prefix, users[i].id, users[i].len, ST_RKEY_SESS, NULL) != 0 ||
            key_end(s) != 0) {
            free(idx);
            return nomem(err);
        }
    }
    /* Round 1 reads every user's state string; round 2 the previous layout's hash of the users
     * without one (not yet written by this layout, or new). */
    for (int legacy = 0; legacy < 2 && n > 0; legacy++) {
        redisReply **rep;
        size_t nrep, miss = 0;
        if (queue_reads(s, idx, n, legacy) != 0) {
            free(idx);
            return nomem(err);
        }
        if (st_redis_exec(s->redis, &rep, &nrep, err) != 0) {
            free(idx);
            return -1;
        }
        for (size_t k = 0; k < n && k < nrep; k++) {
            size_t i = idx[k];
            if (rep[k]->type == REDIS_REPLY_STRING) {
                size_t at = legacy ? 0 : st_sessionizer_value_blob(rep[k]->str, rep[k]->len);
                if (st_buf_append(&out[i], rep[k]->str + at, rep[k]->len - at) != 0) {
                    free(idx);
                    return nomem(err);
                }
            } else if (rep[k]->type == REDIS_REPLY_NIL) {
                idx[miss++] = i;
            } else {
                st_err_set(err, ST_ERR_REDIS, ST_DISP_PERMANENT, "%s %s: %s",
                           legacy ? "HGET" : "GET", key_at(s, 2 * i + (size_t)legacy),
                           rep[k]->type == REDIS_REPLY_ERROR ? rep[k]->str : "unexpected reply");
                free(idx);
                return -1;
            }
        }
        n = miss;
    }
    free(idx);
    return 0;
}

/* Runs the queued round and checks that no reply is an error. */
static int exec_checked(sz_store_t *s, const char *what, redisReply ***rep, size_t *nrep,
                        st_err_t *err)
{
    if (st_redis_exec(s->redis, rep, nrep, err) != 0)
        return -1;
    for (size_t i = 0; i < *nrep; i++)
        if ((*rep)[i]->type == REDIS_REPLY_ERROR) {
            st_err_set(err, ST_ERR_REDIS, ST_DISP_PERMANENT, "%s: %s", what, (*rep)[i]->str);
            return -1;
        }
    return 0;
}

/* The states and the partitions' deadline sets, in three rounds of single-key commands (one
 * hash slot each, as Redis Cluster wants; the deadline set of a partition and a user's state are
 * in different slots, so no one command or transaction can hold both):
 *
 *   1. ZADD <dl:{p}> deadline user, for each write that leaves a session open;
 *   2. EVALSHA st_sessionizer_lua_put, for each write (the compare-and-set on the position);
 *   3. ZREM <dl:{p}> user, for each write of round 2 that was applied and leaves no session open.
 *
 * The rule to keep: every user whose stored state has an open session is in the set, with its
 * deadline. Extra entries are harmless: a deadline that fires reads the state and closes nothing
 * if the state says so (one read). The entry then goes (drop_deadlines, only while its score is
 * still the deadline that fired), or with the next write of that user, whichever comes first.
 * - A crash after 1, before 2: the set has the new deadline, the state is the old one. The batch
 *   was not committed, so it is replayed, from the old state, and makes the same writes.
 * - A crash during or after 2, before 3: the states are written (some or all), the set still has
 *   entries for sessions that closed: extra entries. The replay finds the new states (its
 *   records are at or below their positions), writes nothing for them; the entries stay until
 *   they fire (and are dropped) or the user's next write.
 * - Round 1 before round 2 is what keeps the rule: an open session is never stored without its
 *   deadline. (One transaction did both before; this order costs a round trip per batch.)
 * - A write refused by the compare-and-set (a replay, or an instance that lost the partition and
 *   has not noticed yet) still did its ZADD: an entry with an older deadline, harmless as above;
 *   it does no ZREM (round 3 only removes for applied writes), so it cannot take away the
 *   deadline of the instance that owns the partition now.
 * No round is a transaction (st_redis.h): within a round a crash can leave any subset applied,
 * which the cases above already allow. */
static int put_states(void *ctx, const st_sessionizer_write_t *w, size_t n, st_err_t *err)
{
    sz_store_t *s = ctx;
    st_buf_reset(&s->keys);
    for (size_t i = 0; i < n; i++)
        if (key_slot(s, 3 * i) != 0 ||
            st_rkey_user(&s->keys, s->prefix, w[i].user.id, w[i].user.len, ST_RKEY_SZ, NULL) != 0 ||
            key_end(s) != 0 || key_slot(s, 3 * i + 1) != 0 ||
            st_rkey_partition(&s->keys, s->prefix, ST_RKEY_DEADLINES, w[i].partition) != 0 ||
            key_end(s) != 0 || key_slot(s, 3 * i + 2) != 0 ||
            st_rkey_user(&s->keys, s->prefix, w[i].user.id, w[i].user.len, ST_RKEY_SESS, NULL) !=
                0 ||
            key_end(s) != 0)
            return nomem(err);
    redisReply **rep;
    size_t nrep;

    /* 1. the deadlines of the sessions left open */
    st_redis_pipe_reset(s->redis);
    for (size_t i = 0; i < n; i++) {
        if (!w[i].has_deadline)
            continue;
        char deadline[32];
        snprintf(deadline, sizeof deadline, "%" PRId64, w[i].deadline_ms);
        const char *argv[] = {"ZADD", key_at(s, 3 * i + 1), deadline, w[i].user.id};
        size_t lens[] = {4, strlen(argv[1]), strlen(deadline), w[i].user.len};
        if (st_redis_pipe_argv(s->redis, 4, argv, lens) != 0)
            return nomem(err);
    }
    if (st_redis_pipe_len(s->redis) > 0 && exec_checked(s, "deadline set", &rep, &nrep, err) != 0)
        return -1;

    /* 2. the states */
    st_redis_pipe_reset(s->redis);
    uint64_t bytes = 0;
    for (size_t i = 0; i < n; i++) {
        const char *argv[] = {key_at(s, 3 * i), key_at(s, 3 * i + 2), w[i].pos_text, w[i].blob};
        size_t lens[] = {strlen(argv[0]), strlen(argv[1]), strlen(w[i].pos_text), w[i].blob_len};
        if (st_redis_pipe_evalsha(s->redis, s->put, 2, 2, argv, lens) != 0)
            return nomem(err);
        bytes += w[i].blob_len;
    }
    if (n > 0 && exec_checked(s, "state write script", &rep, &nrep, err) != 0)
        return -1;
    for (size_t i = 0; i < nrep; i++) {
        if (rep[i]->type != REDIS_REPLY_INTEGER) {
            st_err_set(err, ST_ERR_REDIS, ST_DISP_PERMANENT,
                       "state write script: unexpected reply");
            return -1;
        }
    }
    /* 3. the deadlines of the sessions no longer open, for the writes that were applied (the
     * replies are gone with the next reset: note which first) */
    size_t nrem = 0;
    if (n > s->rem_cap) {
        size_t *k = realloc(s->key_rem, n * sizeof *k);
        if (!k)
            return nomem(err);
        s->key_rem = k;
        s->rem_cap = n;
    }
    for (size_t i = 0; i < n && i < nrep; i++) {
        rep[i]->integer ? s->stats.writes_applied++ : s->stats.writes_rejected++;
        if (rep[i]->integer && !w[i].has_deadline)
            s->key_rem[nrem++] = i;
    }
    s->stats.state_bytes += bytes;
    if (nrem == 0)
        return 0;
    st_redis_pipe_reset(s->redis);
    for (size_t k = 0; k < nrem; k++) {
        size_t i = s->key_rem[k];
        const char *argv[] = {"ZREM", key_at(s, 3 * i + 1), w[i].user.id};
        size_t lens[] = {4, strlen(argv[1]), w[i].user.len};
        if (st_redis_pipe_argv(s->redis, 3, argv, lens) != 0)
            return nomem(err);
    }
    return exec_checked(s, "deadline set", &rep, &nrep, err);
}

/* One pipelined round of EVALSHA st_sessionizer_lua_drop, one per entry: the compare and the
 * ZREM in one script, so that a deadline ZADDed since (by the partition's owner, whatever this
 * instance believes) is not removed. The compare is by score only: an owner's deadline in the
 * very millisecond of the stale one (a later session whose deadline equals an earlier one's)
 * would go too, which the session rule rules out short of identical listen times. */
static int drop_deadlines(void *ctx, const st_sessionizer_stale_t *d, size_t n, st_err_t *err)
{
    sz_store_t *s = ctx;
    st_buf_reset(&s->keys);
    for (size_t i = 0; i < n; i++)
        if (key_slot(s, i) != 0 ||
            st_rkey_partition(&s->keys, s->prefix, ST_RKEY_DEADLINES, d[i].partition) != 0 ||
            key_end(s) != 0)
            return nomem(err);
    st_redis_pipe_reset(s->redis);
    for (size_t i = 0; i < n; i++) {
        char deadline[32];
        snprintf(deadline, sizeof deadline, "%" PRId64, d[i].deadline_ms);
        const char *argv[] = {key_at(s, i), d[i].user.id, deadline};
        size_t lens[] = {strlen(argv[0]), d[i].user.len, strlen(deadline)};
        if (st_redis_pipe_evalsha(s->redis, s->drop, 1, 2, argv, lens) != 0)
            return nomem(err);
    }
    redisReply **rep;
    size_t nrep;
    return exec_checked(s, "stale deadline script", &rep, &nrep, err);
}

static int load_deadlines(void *ctx, int32_t partition,
                          int (*add)(void *arg, const char *user_id, size_t len,
                                     int64_t deadline_ms),
                          void *arg, st_err_t *err)
{
    sz_store_t *s = ctx;
    st_buf_reset(&s->keys);
    if (st_rkey_partition(&s->keys, s->prefix, ST_RKEY_DEADLINES, partition) != 0)
        return nomem(err);
    const char *argv[] = {"ZRANGE", s->keys.data, "0", "-1", "WITHSCORES"};
    redisReply *rep = st_redis_commandargv(s->redis, err, 5, argv, NULL);
    if (!rep)
        return -1;
    int rc = 0;
    if (rep->type != REDIS_REPLY_ARRAY) {
        st_err_set(err, ST_ERR_REDIS, ST_DISP_PERMANENT, "ZRANGE %s: unexpected reply",
                   s->keys.data);
        rc = -1;
    }
    for (size_t i = 0; rc == 0 && i + 1 < rep->elements; i += 2)
        if (add(arg, rep->element[i]->str, rep->element[i]->len,
                strtoll(rep->element[i + 1]->str, NULL, 10)) != 0)
            rc = nomem(err);
    freeReplyObject(rep);
    return rc;
}

sz_store_t *sz_store_new(st_redis_t *redis, const char *prefix)
{
    sz_store_t *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->prefix = strdup(prefix);
    if (!s->prefix) {
        sz_store_destroy(s);
        return NULL;
    }
    s->redis = redis;
    s->put = st_redis_script(redis, st_sessionizer_lua_put);
    s->drop = st_redis_script(redis, st_sessionizer_lua_drop);
    s->iface = (st_sessionizer_store_t){s, get_states, put_states, load_deadlines, drop_deadlines};
    return s;
}

void sz_store_destroy(sz_store_t *s)
{
    if (!s)
        return;
    free(s->prefix);
    st_buf_free(&s->keys);
    free(s->key_off);
    free(s->key_rem);
    free(s);
}

st_sessionizer_store_t *sz_store_iface(sz_store_t *s)
{
    return &s->iface;
}

static int commit_key(sz_store_t *s, size_t i, int32_t partition)
{
    if (key_slot(s, i) != 0 ||
        st_rkey_partition(&s->keys, s->prefix, ST_RKEY_COMMIT, partition) != 0 || key_end(s) != 0)
        return -1;
    return 0;
}

int sz_store_save_commit_points(sz_store_t *s, const char *topic, const sz_commit_point_t *pts,
                                size_t n, st_err_t *err)
{
    if (n == 0)
        return 0;
    st_buf_reset(&s->keys);
    for (size_t i = 0; i < n; i++)
        if (commit_key(s, 2 * i, pts[i].partition) != 0 || key_slot(s, 2 * i + 1) != 0 ||
            st_rkey_partition(&s->keys, s->prefix, ST_RKEY_READ, pts[i].partition) != 0 ||
            key_end(s) != 0)
            return nomem(err);
    st_redis_pipe_reset(s->redis);
    for (size_t i = 0; i < n; i++) {
        if (pts[i].read_next >= 0) {
            char read[32];
            snprintf(read, sizeof read, "%" PRId64, pts[i].read_next);
            const char *hset[] = {"HSET", key_at(s, 2 * i + 1), topic, read};
            if (st_redis_pipe_argv(s->redis, 4, hset, NULL) != 0)
                return nomem(err);
        }
        if (!pts[i].clock.has_time)
            continue;
        char score[32], member[32 + ST_SESSIONIZER_CLOCK_TEXT_MAX], trim[32];
        snprintf(score, sizeof score, "%" PRId64, pts[i].offset);
        int k = snprintf(member, sizeof member, "%" PRId64 ":", pts[i].offset);
        st_sessionizer_clock_format(&pts[i].clock, member + k, sizeof member - (size_t)k);
        snprintf(trim, sizeof trim, "%d", -(SZ_STORE_COMMIT_POINTS_KEPT + 1));
        const char *zadd[] = {"ZADD", key_at(s, 2 * i), score, member};
        const char *ztrim[] = {"ZREMRANGEBYRANK", key_at(s, 2 * i), "0", trim};
        if (st_redis_pipe_argv(s->redis, 4, zadd, NULL) != 0 ||
            st_redis_pipe_argv(s->redis, 4, ztrim, NULL) != 0)
            return nomem(err);
    }
    if (st_redis_pipe_len(s->redis) == 0)
        return 0;
    redisReply **rep;
    size_t nrep;
    if (st_redis_exec(s->redis, &rep, &nrep, err) != 0)
        return -1;
    for (size_t i = 0; i < nrep; i++) {
        if (rep[i]->type == REDIS_REPLY_ERROR) {
            st_err_set(err, ST_ERR_REDIS, ST_DISP_PERMANENT, "commit point: %s", rep[i]->str);
            return -1;
        }
    }
    return 0;
}

/* Parses "<offset>:<clock>". */
static bool parse_point(const redisReply *r, int64_t *offset, st_sessionizer_clock_t *clock)
{
    if (r->type != REDIS_REPLY_STRING)
        return false;
    const char *colon = memchr(r->str, ':', r->len);
    char *end;
    long long o = strtoll(r->str, &end, 10);
    if (!colon || end != colon || end == r->str)
        return false;
    size_t rest = r->len - (size_t)(colon + 1 - r->str);
    if (rest == 0 || st_sessionizer_clock_parse(colon + 1, rest, clock) != 0)
        return false;
    *offset = o;
    return true;
}

int sz_store_load_stream_times(sz_store_t *s, sz_commit_point_t *pts, size_t n, st_err_t *err)
{
    if (n == 0)
        return 0;
    st_buf_reset(&s->keys);
    for (size_t i = 0; i < n; i++)
        if (commit_key(s, i, pts[i].partition) != 0)
            return nomem(err);
    st_redis_pipe_reset(s->redis);
    /* Only the point stored at exactly the resume offset is the partition's stream time there.
     * Without one (nothing committed yet, or the point was trimmed), the stream time is rebuilt
     * from the replayed records, as in the first run; a later point would make replayed records
     * late that were not late the first time. */
    for (size_t i = 0; i < n; i++) {
        char exact[32];
        snprintf(exact, sizeof exact, "%" PRId64, pts[i].offset);
        const char *eq[] = {"ZRANGEBYSCORE", key_at(s, i), exact, exact};
        if (st_redis_pipe_argv(s->redis, 4, eq, NULL) != 0)
            return nomem(err);
    }
    redisReply **rep;
    size_t nrep;
    if (st_redis_exec(s->redis, &rep, &nrep, err) != 0)
        return -1;
    for (size_t i = 0; i < n && i < nrep; i++) {
        const redisReply *r = rep[i];
        memset(&pts[i].clock, 0, sizeof pts[i].clock);
        if (r->type != REDIS_REPLY_ARRAY) {
            st_err_set(err, ST_ERR_REDIS, ST_DISP_PERMANENT, "ZRANGEBYSCORE %s: %s", key_at(s, i),
                       r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
            return -1;
        }
        for (size_t k = 0; k < r->elements; k++) {
            int64_t off;
            st_sessionizer_clock_t c;
            if (!parse_point(r->element[k], &off, &c))
                continue;
            if (!pts[i].clock.has_time || c.stream_time_ms > pts[i].clock.stream_time_ms)
                pts[i].clock = c;
        }
    }
    return 0;
}

static void copy_text(char *dst, size_t size, const redisReply *v)
{
    size_t n = v->len < size - 1 ? v->len : size - 1;
    memcpy(dst, v->str, n);
    dst[n] = '\0';
}

int sz_store_get_profiles(sz_store_t *s, const st_sessionizer_user_t *users, size_t n,
                          sz_profile_t *out, st_err_t *err)
{
    if (n == 0)
        return 0;
    st_buf_reset(&s->keys);
    for (size_t i = 0; i < n; i++)
        if (key_slot(s, i) != 0 ||
            st_rkey_user(&s->keys, s->prefix, users[i].id, users[i].len, ST_RKEY_CLU_PROF, NULL) !=
                0 ||
            key_end(s) != 0)
            return nomem(err);
    st_redis_pipe_reset(s->redis);
    for (size_t i = 0; i < n; i++) {
        const char *argv[] = {"HMGET", key_at(s, i), "gender", "age", "country", "registered_s"};
        if (st_redis_pipe_argv(s->redis, 6, argv, NULL) != 0)
            return nomem(err);
    }
    redisReply **rep;
    size_t nrep;
    if (st_redis_exec(s->redis, &rep, &nrep, err) != 0)
        return -1;
    for (size_t i = 0; i < n && i < nrep; i++) {
        sz_profile_t *p = &out[i];
        memset(p, 0, sizeof *p);
        if (rep[i]->type != REDIS_REPLY_ARRAY || rep[i]->elements != 4)
            continue; /* a key of another type: treated as no profile */
        const redisReply *const *v = (const redisReply *const *)rep[i]->element;
        char num[32];
        char *end;
        if (v[0]->type == REDIS_REPLY_STRING && v[0]->len == 1 &&
            (v[0]->str[0] == 'm' || v[0]->str[0] == 'f'))
            copy_text(p->gender, sizeof p->gender, v[0]);
        if (v[1]->type == REDIS_REPLY_STRING) {
            copy_text(num, sizeof num, v[1]);
            long age = strtol(num, &end, 10);
            if (*end == '\0' && end != num && age >= 0 && age <= 150) {
                p->has_age = true;
                p->age = (int32_t)age;
            }
        }
        if (v[2]->type == REDIS_REPLY_STRING)
            copy_text(p->country, sizeof p->country, v[2]);
        if (v[3]->type == REDIS_REPLY_STRING) {
            copy_text(num, sizeof num, v[3]);
            errno = 0;
            long long sec = strtoll(num, &end, 10);
            /* 0 is the clusterer's "unknown" */
            if (*end == '\0' && end != num && errno == 0 && sec > 0 && sec <= INT64_MAX / 1000) {
                p->has_registered = true;
                p->registered_ms = sec * 1000;
            }
        }
        p->found = p->gender[0] || p->has_age || p->country[0] || p->has_registered;
    }
    return 0;
}

void sz_store_stats(const sz_store_t *s, sz_store_stats_t *out)
{
    *out = s->stats;
}
