/* st_redis.c - hiredis wrapper: reconnects, pipelined rounds, Lua scripts by SHA, and Redis
 * Cluster routing (slot map, one pipeline per node, MOVED/ASK). */
#include "st_redis.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>

#include "st_buf.h"
#include "st_lifecycle.h"
#include "st_log.h"
#include "st_sha1.h"
#include "st_time.h"

struct st_redis_script_s {
    char *source;
    char sha[41];
    st_redis_script_t *next;
};

#define NSLOTS  16384
#define NO_NODE UINT16_MAX
/* The slot map is read again at least this often (besides after MOVED or a failed node): it is
 * also where the client learns which primaries have a replica to WAIT for, and a replica that
 * attached or rejoined later (after a failover) is only seen there. */
#define MAP_MAX_AGE_MS 5000

/* Grows *arr (elements of elem bytes) to hold at least need. 0 or -1 (ENOMEM, unchanged). */
static int grow(void **arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : 64;
    while (n < need)
        n *= 2;
    void *p = realloc(*arr, n * elem);
    if (!p)
        return -1;
    *arr = p;
    *cap = n;
    return 0;
}

/* One server connection: the single node, or one node of a cluster. */
typedef struct {
    char *host;
    int port;
    redisContext *c;
    bool logged_down;
    int replicas; /* cluster: replicas the slot map lists for this primary */
    bool sent;    /* cluster: sent keyed commands in the current round (WAIT goes to it after;
                     keyless ones, a PING or a SCRIPT LOAD, store nothing to wait for) */
    bool keyed;   /* cluster: the current pass queued a keyed command on this node */
    char down_text[sizeof(((st_err_t *)0)->text)]; /* the failure last logged: one line each */
    /* cluster rounds: what this node is sent in the current pass */
    st_buf_t out;
    size_t *cmds; /* the round's command indices, in the order sent */
    bool *asking; /* whether an ASKING went before each */
    size_t ncmds, cmds_cap;
} rconn_t;

/* The commands queued for a round and their replies. */
typedef struct {
    st_buf_t pipe;   /* formatted RESP commands */
    size_t npipe;    /* commands queued */
    size_t *cmd_off; /* where each starts in pipe */
    size_t cmd_cap;
    redisReply **replies;
    size_t nreplies, reply_cap;
} round_t;

struct st_redis_s {
    char *username;
    char *password;
    int db;
    int timeout_ms;
    bool cluster;
    int wait_replicas; /* cluster: WAIT for this many replicas after a round (capped per node) */
    rconn_t *conns;    /* single node: conns[0]; cluster: the seed, then nodes as learnt */
    size_t nconns;
    uint16_t *slots;     /* cluster: the node of each hash slot, NO_NODE when not known */
    bool map_ok;         /* cluster: slots is the last CLUSTER SLOTS answer, no redirect since */
    int64_t map_read_ms; /* cluster: when it was read (st_time_mono_ms) */
    st_redis_cluster_stats_t stats;
    st_redis_script_t *scripts;
    round_t rd;
};

static size_t conn_add(st_redis_t *r, const char *host, int port)
{
    for (size_t i = 0; i < r->nconns; i++)
        if (r->conns[i].port == port && strcmp(r->conns[i].host, host) == 0)
            return i;
    rconn_t *c = realloc(r->conns, (r->nconns + 1) * sizeof *c);
    if (!c)
        st_oom_abort("st_redis conn");
    r->conns = c;
    c = &r->conns[r->nconns];
    memset(c, 0, sizeof *c);
    c->host = strdup(host);
    if (!c->host)
        st_oom_abort("st_redis conn");
    c->port = port;
    return r->nconns++;
}

st_redis_t *st_redis_new(const st_redis_opts_t *opts)
{
    st_redis_t *r = calloc(1, sizeof *r);
    if (!r)
        st_oom_abort("st_redis_new");
    conn_add(r, opts->host && *opts->host ? opts->host : "127.0.0.1",
             opts->port > 0 ? opts->port : 6379);
    r->username = opts->username && *opts->username ? strdup(opts->username) : NULL;
    r->password = opts->password && *opts->password ? strdup(opts->password) : NULL;
    r->db = opts->db;
    r->timeout_ms = opts->timeout_ms > 0 ? opts->timeout_ms : 5000;
    r->cluster = opts->cluster;
    r->wait_replicas = opts->wait_replicas > 0 ? opts->wait_replicas : 0;
    if (r->cluster) {
        r->slots = malloc(NSLOTS * sizeof *r->slots);
        if (!r->slots)
            st_oom_abort("st_redis_new");
        for (size_t i = 0; i < NSLOTS; i++)
            r->slots[i] = NO_NODE;
    }
    st_redis_ensure(r, 0, NULL);
    return r;
}

static void free_replies(round_t *rd)
{
    for (size_t i = 0; i < rd->nreplies; i++)
        if (rd->replies[i])
            freeReplyObject(rd->replies[i]);
    rd->nreplies = 0;
}

static void conn_close(rconn_t *c)
{
    if (c->c)
        redisFree(c->c);
    c->c = NULL;
}

static void round_free(round_t *rd)
{
    free_replies(rd);
    free(rd->replies);
    free(rd->cmd_off);
    st_buf_free(&rd->pipe);
}

void st_redis_destroy(st_redis_t *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->nconns; i++) {
        conn_close(&r->conns[i]);
        free(r->conns[i].host);
        st_buf_free(&r->conns[i].out);
        free(r->conns[i].cmds);
        free(r->conns[i].asking);
    }
    free(r->conns);
    free(r->slots);
    round_free(&r->rd);
    for (st_redis_script_t *s = r->scripts, *next; s; s = next) {
        next = s->next;
        free(s->source);
        free(s);
    }
    free(r->username);
    free(r->password);
    free(r);
}

bool st_redis_connected(const st_redis_t *r)
{
    if (r->cluster && !r->map_ok)
        return false;
    for (size_t i = 0; i < r->nconns; i++)
        if (r->conns[i].c)
            return true;
    return false;
}

/* Error replies that mean "not now" rather than "wrong": Redis is loading its AOF after a
 * restart, a script is busy, a cluster is failing over, memory is at maxmemory (with a
 * noeviction policy: retried until an operator frees some, rather than exiting and re-emitting
 * the batch on every restart). A script is refused OOM before its first write, never half-way. */
static bool transient_error(const char *msg)
{
    static const char *prefixes[] = {"LOADING",     "BUSY",     "TRYAGAIN", "MASTERDOWN",
                                     "CLUSTERDOWN", "READONLY", "OOM"};
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++)
        if (strncmp(msg, prefixes[i], strlen(prefixes[i])) == 0)
            return true;
    return false;
}

/* A refusal by the server's access control (Redis 6+ ACL, or requirepass): the user or password
 * is wrong, or missing, or the user's ACL forbids a command or key. Filled into err as one line
 * naming the setting or ACL rule to fix. It is retriable: the server's ACL can be fixed while the
 * service waits, not ready, retrying with backoff (one log line per distinct failure). Returns
 * whether msg was such a refusal. */
static bool acl_refusal(const st_redis_t *r, const rconn_t *c, const char *what, const char *msg,
                        st_err_t *err)
{
    const char *fix;
    if (strncmp(msg, "WRONGPASS", 9) == 0 || strstr(msg, "invalid password") ||
        strstr(msg, "invalid username-password"))
        fix = r->username ? "check redis.username and redis.password, and that the user is on"
                          : "check redis.password (and set redis.username for an ACL user)";
    else if (strstr(msg, "without any password configured"))
        fix = "the server has no password for the default user: unset redis.password, or set "
              "redis.username to an ACL user";
    else if (strstr(msg, "wrong number of arguments for 'auth'"))
        fix = "redis.username needs Redis 6 or later (ACL users)";
    else if (strncmp(msg, "NOAUTH", 6) == 0)
        fix = "the server requires a password: set redis.password (and redis.username for an ACL "
              "user)";
    else if (strncmp(msg, "NOPERM", 6) == 0)
        fix = "allow the command (+<command>) or the keys (~<redis.prefix>:*) in the user's ACL "
              "rule; docs/deployment.md, Secrets, lists what stint needs";
    else
        return false;
    char addr[300] = "cluster";
    if (c)
        snprintf(addr, sizeof addr, "%s:%d", c->host, c->port);
    st_err_set(err, ST_ERR_REDIS, ST_DISP_RETRY, "redis %s refuses %s as user \"%s\": %s (%s)",
               addr, what, r->username ? r->username : "default", msg, fix);
    return true;
}

static int load_script(const st_redis_t *r, rconn_t *c, st_redis_script_t *s, st_err_t *err)
{
    redisReply *rep = redisCommand(c->c, "SCRIPT LOAD %s", s->source);
    if (!rep) {
        st_err_set(err, ST_ERR_REDIS, ST_DISP_RETRY, "redis %s:%d: %s", c->host, c->port,
                   c->c->errstr);
        conn_close(c);
        return -1;
    }
    int rc = 0;
    if (rep->type == REDIS_REPLY_STRING && rep->len == 40) {
        if (memcmp(s->sha, rep->str, 40) != 0) {
            st_log_warn("redis_script_sha", "local=%s server=%.40s (using the server's)", s->sha,
                        rep->str);
            memcpy(s->sha, rep->str, 40);
        }
    } else {
        bool transient = rep->type == REDIS_REPLY_ERROR && transient_error(rep->str);
        if (rep->type != REDIS_REPLY_ERROR || !acl_refusal(r, c, "SCRIPT LOAD", rep->str, err))
            st_err_set(err, ST_ERR_REDIS, transient ? ST_DISP_RETRY : ST_DISP_FATAL,
                       "SCRIPT LOAD failed: %s",
                       rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply");
        rc = -1;
    }
    freeReplyObject(rep);
    return rc;
}

static int load_scripts(st_redis_t *r, rconn_t *c, st_err_t *err)
{
    for (st_redis_script_t *s = r->scripts; s; s = s->next)
        if (load_script(r, c, s, err) != 0) {
            conn_close(c);
            return -1;
        }
    return 0;
}

/* Notes that node c is down with e; returns whether to log it: the first failure, and each one
 * that differs from the last logged (a server refusing connections, then the password), so a
 * retry loop writes one line per distinct failure. */
static bool note_down(rconn_t *c, const st_err_t *e)
{
    bool log = !c->logged_down || strcmp(c->down_text, e->text) != 0;
    c->logged_down = true;
    snprintf(c->down_text, sizeof c->down_text, "%s", e->text);
    return log;
}

/* One connection attempt to one node: connect, AUTH, SELECT, load scripts. */
static int connect_once(st_redis_t *r, rconn_t *conn, st_err_t *err)
{
    if (r->cluster && r->db > 0) {
        st_err_set(err, ST_ERR_REDIS, ST_DISP_FATAL,
                   "redis.db must be 0 with redis.cluster (a cluster has database 0 only)");
        return -1;
    }
    struct timeval tv = {r->timeout_ms / 1000, (r->timeout_ms % 1000) * 1000};
    redisContext *c = redisConnectWithTimeout(conn->host, conn->port, tv);
    if (!c || c->err) {
        st_err_set(err, ST_ERR_REDIS, ST_DISP_RETRY, "redis %s:%d: %s", conn->host, conn->port,
                   c ? c->errstr : "cannot allocate context");
        if (c)
            redisFree(c);
        return -1;
    }
    redisSetTimeout(c, tv);
    conn->c = c;
    if (r->password || r->username) {
        /* AUTH username password is Redis 6's ACL form; AUTH password is the default user. */
        redisReply *rep =
            r->username ? redisCommand(c, "AUTH %s %s", r->username, r->password ? r->password : "")
                        : redisCommand(c, "AUTH %s", r->password);
        bool ok = rep && rep->type != REDIS_REPLY_ERROR;
        /* Refusals name the setting to fix; no answer, or "max number of clients", is retried. */
        if (!ok && (!rep || !acl_refusal(r, conn, "AUTH", rep->str, err)))
            st_err_set(err, ST_ERR_REDIS, ST_DISP_RETRY, "redis AUTH failed: %s",
                       rep ? rep->str : c->errstr);
        if (rep)
            freeReplyObject(rep);
        if (!ok) {
            conn_close(conn);
            return -1;
        }
    }
    if (r->db > 0) {
        redisReply *rep = redisCommand(c, "SELECT %d", r->db);
        bool ok = rep && rep->type != REDIS_REPLY_ERROR;
        if (!ok && (!rep || !acl_refusal(r, conn, "SELECT", rep->str, err))) {
            bool transient = !rep || transient_error(rep->str);
            st_err_set(err, ST_ERR_REDIS, transient ? ST_DISP_RETRY : ST_DISP_FATAL,
                       "redis SELECT %d failed", r->db);
        }
        if (rep)
            freeReplyObject(rep);
        if (!ok) {
            conn_close(conn);
            return -1;
        }
    }
    if (load_scripts(r, conn, err) != 0)
        return -1;
    if (conn->logged_down)
        st_log_info("redis_reconnected", "addr=%s:%d", conn->host, conn->port);
    conn->logged_down = false;
    return 0;
}

static int conn_ensure(st_redis_t *r, size_t i, st_err_t *err)
{
    rconn_t *c = &r->conns[i];
    if (c->c)
        return 0;
    st_err_t e = {0};
    if (connect_once(r, c, &e) == 0)
        return 0;
    char q[600];
    if (note_down(c, &e))
        st_log_warn("redis_down", "addr=%s:%d error=%s", c->host, c->port,
                    st_log_quote(e.text, q, sizeof q));
    if (err && err->code == ST_ERR_NONE)
        *err = e;
    return -1;
}

/* ---- Redis Cluster: the slot map ---- */

/* CRC16-CCITT (XModem), the hash of Redis Cluster's key slots. */
static uint16_t crc16(const char *p, size_t n)
{
    uint16_t crc = 0;
    for (size_t i = 0; i < n; i++) {
        crc ^= (uint16_t)((unsigned char)p[i] << 8);
        for (int b = 0; b < 8; b++)
            crc = (uint16_t)(crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1);
    }
    return crc;
}

int st_redis_key_slot(const char *key, size_t len)
{
    const char *open = memchr(key, '{', len);
    if (open) {
        size_t rest = len - (size_t)(open - key) - 1;
        const char *close = memchr(open + 1, '}', rest);
        if (close && close > open + 1)
            return crc16(open + 1, (size_t)(close - open - 1)) & (NSLOTS - 1);
    }
    return crc16(key, len) & (NSLOTS - 1);
}

/* Parses "$<len>\r\n<bytes>\r\n" at *p (end e): the bytes, or NULL. */
static const char *bulk_at(const char **p, const char *e, size_t *len)
{
    const char *q = *p;
    if (q >= e || *q != '$')
        return NULL;
    char *nl;
    unsigned long long n = strtoull(q + 1, &nl, 10);
    if (nl + 2 > e || nl[0] != '\r' || nl[1] != '\n' || (size_t)(e - (nl + 2)) < n + 2)
        return NULL;
    *len = (size_t)n;
    *p = nl + 2 + n + 2;
    return nl + 2;
}

/* The hash slot a formatted command goes to: its first key's, or -1 for a command without keys
 * (sent to any node). The first key is the first argument, or EVAL/EVALSHA's first KEYS entry,
 * or the second argument of MEMORY and OBJECT. */
static int cmd_slot(const char *p, const char *e)
{
    char *nl;
    if (p >= e || *p != '*')
        return -1;
    long n = strtol(p + 1, &nl, 10);
    p = nl + 2;
    const char *arg[4] = {0};
    size_t len[4] = {0};
    for (long i = 0; i < n && i < 4; i++)
        if (!(arg[i] = bulk_at(&p, e, &len[i])))
            return -1;
    static const char *const keyless[] = {"PING",    "INFO",   "SCRIPT", "CLUSTER", "DBSIZE",
                                          "TIME",    "ECHO",   "CONFIG", "CLIENT",  "COMMAND",
                                          "WAIT",    "MULTI",  "EXEC",   "ASKING",  "FLUSHALL",
                                          "FLUSHDB", "SELECT", "AUTH",   "HELLO",   "READONLY"};
    if (!arg[0])
        return -1;
    for (size_t i = 0; i < sizeof keyless / sizeof keyless[0]; i++)
        if (len[0] == strlen(keyless[i]) && strncasecmp(arg[0], keyless[i], len[0]) == 0)
            return -1;
    int k = 1;
    if ((len[0] == 4 && strncasecmp(arg[0], "EVAL", 4) == 0) ||
        (len[0] == 7 && strncasecmp(arg[0], "EVALSHA", 7) == 0)) {
        if (!arg[2] || atoi(arg[2]) <= 0)
            return -1;
        k = 3;
    } else if ((len[0] == 6 && strncasecmp(arg[0], "MEMORY", 6) == 0) ||
               (len[0] == 6 && strncasecmp(arg[0], "OBJECT", 6) == 0)) {
        k = 2;
    }
    return arg[k] ? st_redis_key_slot(arg[k], len[k]) : -1;
}

/* CLUSTER SLOTS from the first node that answers: the slot map, and a connection entry for every
 * primary. Nodes already connected are asked first, so that a seed that is gone (or a host that
 * does not answer, each costing a connect timeout) is not in the way of the periodic re-read.
 * 0, or -1 (retriable) when no known node answers with a map. */
static int refresh_map_once(st_redis_t *r, st_err_t *err)
{
    for (size_t t = 0; t < 2 * r->nconns; t++) {
        size_t i = t % r->nconns;
        if ((t < r->nconns) != (r->conns[i].c != NULL) || conn_ensure(r, i, err) != 0)
            continue;
        redisReply *rep = redisCommand(r->conns[i].c, "CLUSTER SLOTS");
        if (!rep) {
            st_err_set(err, ST_ERR_REDIS, ST_DISP_RETRY, "redis %s:%d: %s", r->conns[i].host,
                       r->conns[i].port, r->conns[i].c->errstr);
            conn_close(&r->conns[i]);
            continue;
        }
        if (rep->type == REDIS_REPLY_ERROR && !transient_error(rep->str)) {
            st_err_set(err, ST_ERR_REDIS, ST_DISP_FATAL,
                       "redis %s:%d: CLUSTER SLOTS: %s (is it a cluster? redis.cluster is on)",
                       r->conns[i].host, r->conns[i].port, rep->str);
            freeReplyObject(rep);
            return -1;
        }
        if (rep->type != REDIS_REPLY_ARRAY || rep->elements == 0) {
            st_err_set(err, ST_ERR_REDIS, ST_DISP_RETRY, "redis %s:%d: CLUSTER SLOTS: %s",
                       r->conns[i].host, r->conns[i].port,
                       rep->type == REDIS_REPLY_ERROR ? rep->str : "no slots assigned");
            freeReplyObject(rep);
            continue;
        }
        char asked[256];
        snprintf(asked, sizeof asked, "%s", r->conns[i].host);
        for (size_t s = 0; s < NSLOTS; s++)
            r->slots[s] = NO_NODE;
        for (size_t n = 0; n < r->nconns; n++)
            r->conns[n].replicas = 0;
        for (size_t k = 0; k < rep->elements; k++) {
            redisReply *e = rep->element[k];
            if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
                e->element[0]->type != REDIS_REPLY_INTEGER ||
                e->element[1]->type != REDIS_REPLY_INTEGER ||
                e->element[2]->type != REDIS_REPLY_ARRAY || e->element[2]->elements < 2)
                continue;
            redisReply *h = e->element[2]->element[0], *pt = e->element[2]->element[1];
            /* An empty or "?" host means "the address you reached me at". */
            const char *host =
                h->type == REDIS_REPLY_STRING && h->len > 0 && strcmp(h->str, "?") ? h->str : asked;
            size_t node = conn_add(r, host, (int)pt->integer);
            /* elements 3.. are the range's replicas */
            int nrep = (int)e->elements - 3;
            if (nrep > r->conns[node].replicas)
                r->conns[node].replicas = nrep;
            long long lo = e->element[0]->integer, hi = e->element[1]->integer;
            for (long long s = lo < 0 ? 0 : lo; s <= hi && s < NSLOTS; s++)
                r->slots[s] = (uint16_t)node;
        }
        freeReplyObject(rep);
        r->map_ok = true;
        r->map_read_ms = st_time_mono_ms();
        r->stats.map_reads++;
        return 0;
    }
    if (err && err->code == ST_ERR_NONE)
        st_err_set(err, ST_ERR_REDIS, ST_DISP_RETRY, "redis cluster: no node answers");
    return -1;
}

/* refresh_map_once with the errors of the nodes tried before one answered dropped: left in err
 * they would stand for a later error of the same round (st_err_set keeps the first), a permanent
 * one then read as retriable and retried forever. */
static int refresh_map(st_redis_t *r, st_err_t *err)
{
    st_err_t local = {0};
    if (refresh_map_once(r, &local) == 0)
        return 0;
    if (err && err->code == ST_ERR_NONE)
        *err = local;
    return -1;
}

int st_redis_ensure(st_redis_t *r, int max_wait_ms, st_err_t *err)
{
    int backoff_ms = 100;
    int64_t deadline = st_time_mono_ms() + max_wait_ms;
    rconn_t *c0 = &r->conns[0];
    for (;;) {
        st_err_t e = {0};
        if (r->cluster ? r->map_ok || refresh_map(r, &e) == 0
                       : c0->c || connect_once(r, c0, &e) == 0) {
            if (c0->logged_down && r->cluster)
                st_log_info("redis_reconnected", "addr=%s:%d cluster=1", c0->host, c0->port);
            c0->logged_down = false;
            return 0;
        }
        bool last = !e.retriable || max_wait_ms == 0 || st_lifecycle_stopping() ||
                    (max_wait_ms > 0 && st_time_mono_ms() >= deadline);
        char q[600];
        if (note_down(c0, &e))
            st_log_warn("redis_down", "addr=%s:%d error=%s%s", c0->host, c0->port,
                        st_log_quote(e.text, q, sizeof q), last ? "" : " retrying=1");
        if (last) {
            if (err && err->code == ST_ERR_NONE)
                *err = e;
            return -1;
        }
        st_lifecycle_sleep_ms(backoff_ms);
        backoff_ms = backoff_ms * 2 > 5000 ? 5000 : backoff_ms * 2;
    }
}

st_redis_script_t *st_redis_script(st_redis_t *r, const char *lua_source)
{
    st_redis_script_t *s = calloc(1, sizeof *s);
    if (!s)
        st_oom_abort("st_redis_script");
    s->source = strdup(lua_source);
    /* Redis names a script by the SHA-1 of its source: known now, so EVALSHA can be queued
     * before the script was ever loaded (NOSCRIPT then loads it). */
    st_sha1_hex(lua_source, strlen(lua_source), s->sha);
    s->next = r->scripts;
    r->scripts = s;
    for (size_t i = 0; i < r->nconns; i++)
        if (r->conns[i].c && load_script(r, &r->conns[i], s, NULL) != 0)
            conn_close(&r->conns[i]);
    return s;
}

const char *st_redis_script_sha(const st_redis_script_t *s)
{
    return s->sha;
}

static redisReply *check_reply(const st_redis_t *r, rconn_t *c, redisReply *rep, st_err_t *err)
{
    if (!rep) {
        st_err_set(err, ST_ERR_REDIS, ST_DISP_RETRY, "redis %s:%d: %s", c->host, c->port,
                   c->c ? c->c->errstr : "not connected");
        conn_close(c);
        return NULL;
    }
    if (rep->type == REDIS_REPLY_ERROR) {
        if (!acl_refusal(r, c, "a command", rep->str, err))
            st_err_set(err, ST_ERR_REDIS,
                       transient_error(rep->str) ? ST_DISP_RETRY : ST_DISP_PERMANENT,
                       "redis error: %s", rep->str);
        freeReplyObject(rep);
        return NULL;
    }
    return rep;
}

static int cluster_exec(st_redis_t *r, st_err_t *err);

/* A single command on a cluster, formatted by hiredis into cmd (len < 0: it could not be;
 * freed here): a round of one, on a round of its own (a round being queued by the caller is left
 * as it is). */
static redisReply *cluster_command(st_redis_t *r, st_err_t *err, char *cmd, long long len)
{
    if (len < 0) {
        st_err_nomem(err);
        return NULL;
    }
    round_t saved = r->rd;
    memset(&r->rd, 0, sizeof r->rd);
    redisReply *rep = NULL;
    if (st_buf_append(&r->rd.pipe, cmd, (size_t)len) == 0 &&
        grow((void **)&r->rd.cmd_off, &r->rd.cmd_cap, 1, sizeof *r->rd.cmd_off) == 0) {
        r->rd.cmd_off[0] = 0;
        r->rd.npipe = 1;
        if (cluster_exec(r, err) == 0 && r->rd.nreplies == 1) {
            rep = r->rd.replies[0];
            r->rd.replies[0] = NULL;
            if (rep->type == REDIS_REPLY_ERROR) {
                st_err_set(err, ST_ERR_REDIS,
                           transient_error(rep->str) ? ST_DISP_RETRY : ST_DISP_PERMANENT,
                           "redis error: %s", rep->str);
                freeReplyObject(rep);
                rep = NULL;
            }
        }
    } else {
        st_err_nomem(err);
    }
    round_free(&r->rd);
    r->rd = saved;
    free(cmd);
    return rep;
}

redisReply *st_redis_command(st_redis_t *r, st_err_t *err, const char *fmt, ...)
{
    va_list ap;
    if (st_redis_ensure(r, 0, err) != 0)
        return NULL;
    if (r->cluster) {
        char *cmd = NULL;
        va_start(ap, fmt);
        int len = redisvFormatCommand(&cmd, fmt, ap);
        va_end(ap);
        return cluster_command(r, err, cmd, len);
    }
    va_start(ap, fmt);
    redisReply *rep = redisvCommand(r->conns[0].c, fmt, ap);
    va_end(ap);
    return check_reply(r, &r->conns[0], rep, err);
}

redisReply *st_redis_commandargv(st_redis_t *r, st_err_t *err, int argc, const char **argv,
                                 const size_t *argvlen)
{
    if (st_redis_ensure(r, 0, err) != 0)
        return NULL;
    if (r->cluster) {
        char *cmd = NULL;
        long long len = redisFormatCommandArgv(&cmd, argc, argv, argvlen);
        return cluster_command(r, err, cmd, len);
    }
    return check_reply(r, &r->conns[0], redisCommandArgv(r->conns[0].c, argc, argv, argvlen), err);
}

void st_redis_pipe_reset(st_redis_t *r)
{
    st_buf_reset(&r->rd.pipe);
    r->rd.npipe = 0;
    free_replies(&r->rd);
}

/* Notes where the next command starts (before it is appended). */
static int cmd_begin(round_t *rd)
{
    if (grow((void **)&rd->cmd_off, &rd->cmd_cap, rd->npipe + 1, sizeof *rd->cmd_off) != 0)
        return -1;
    rd->cmd_off[rd->npipe] = rd->pipe.len;
    return 0;
}

int st_redis_pipe(st_redis_t *r, const char *fmt, ...)
{
    va_list ap;
    char *cmd = NULL;
    va_start(ap, fmt);
    int len = redisvFormatCommand(&cmd, fmt, ap);
    va_end(ap);
    if (len < 0)
        return -1;
    int rc = cmd_begin(&r->rd) == 0 ? st_buf_append(&r->rd.pipe, cmd, (size_t)len) : -1;
    free(cmd);
    if (rc == 0)
        r->rd.npipe++;
    return rc;
}

int st_redis_pipe_argv(st_redis_t *r, int argc, const char **argv, const size_t *argvlen)
{
    st_buf_t *b = &r->rd.pipe;
    /* RESP written directly: avoids hiredis' allocation per command. */
    if (cmd_begin(&r->rd) != 0 || st_buf_printf(b, "*%d\r\n", argc) != 0)
        return -1;
    for (int i = 0; i < argc; i++) {
        size_t len = argvlen ? argvlen[i] : strlen(argv[i]);
        if (st_buf_printf(b, "$%zu\r\n", len) != 0 || st_buf_append(b, argv[i], len) != 0 ||
            st_buf_append(b, "\r\n", 2) != 0)
            return -1;
    }
    r->rd.npipe++;
    return 0;
}

int st_redis_pipe_evalsha(st_redis_t *r, const st_redis_script_t *s, int nkeys, int nargs,
                          const char **argv, const size_t *argvlen)
{
    st_buf_t *b = &r->rd.pipe;
    char nk[16];
    int total = nkeys + nargs;
    size_t nklen = (size_t)snprintf(nk, sizeof nk, "%d", nkeys);
    if (cmd_begin(&r->rd) != 0 ||
        st_buf_printf(b, "*%d\r\n$7\r\nEVALSHA\r\n$40\r\n", total + 3) != 0 ||
        st_buf_append(b, s->sha, 40) != 0 || st_buf_printf(b, "\r\n$%zu\r\n%s\r\n", nklen, nk) != 0)
        return -1;
    for (int i = 0; i < total; i++) {
        size_t len = argvlen ? argvlen[i] : strlen(argv[i]);
        if (st_buf_printf(b, "$%zu\r\n", len) != 0 || st_buf_append(b, argv[i], len) != 0 ||
            st_buf_append(b, "\r\n", 2) != 0)
            return -1;
    }
    r->rd.npipe++;
    return 0;
}

size_t st_redis_pipe_len(const st_redis_t *r)
{
    return r->rd.npipe;
}

/* Reads one reply; on a connection error fills err and disconnects. */
static redisReply *read_reply(rconn_t *c, st_err_t *err)
{
    void *rep = NULL;
    if (redisGetReply(c->c, &rep) != REDIS_OK || !rep) {
        st_err_set(err, ST_ERR_REDIS, ST_DISP_RETRY, "redis %s:%d: %s", c->host, c->port,
                   c->c->errstr);
        if (rep)
            freeReplyObject(rep);
        conn_close(c);
        return NULL;
    }
    return rep;
}

static int replies_fit(round_t *rd, st_err_t *err)
{
    if (grow((void **)&rd->replies, &rd->reply_cap, rd->npipe, sizeof *rd->replies) != 0) {
        st_err_nomem(err);
        return -1;
    }
    return 0;
}

/* After a round's replies are in: a transient error reply (the server busy, loading, a cluster
 * failing over) or an ACL refusal (NOPERM: fixed on the server, see acl_refusal) fails the round
 * as retriable. */
static int check_transient(const st_redis_t *r, const round_t *rd, st_err_t *err)
{
    for (size_t i = 0; i < rd->nreplies; i++) {
        redisReply *x = rd->replies[i];
        if (x->type != REDIS_REPLY_ERROR)
            continue;
        if (transient_error(x->str)) {
            st_err_set(err, ST_ERR_REDIS, ST_DISP_RETRY, "redis refuses for now: %s", x->str);
            return -1;
        }
        if (acl_refusal(r, r->cluster ? NULL : &r->conns[0], "a command", x->str, err))
            return -1;
    }
    return 0;
}

/* A round is a plain pipeline, not a MULTI ... EXEC transaction. Transactions were tried
 * (4816183, one fsync per round under appendfsync always) and taken out again: Redis 7.0.15,
 * SIGKILLed while appending a transaction to its AOF, truncates the file at the last whole
 * command on restart ("short read ... Truncating the AOF", aof-load-truncated), which can leave a
 * MULTI without its EXEC in the file; the next transaction appended after it then loads, on the
 * restart after that, as part of the first ("MULTI calls can not be nested"), so commands never
 * acknowledged are applied. test_pipeline_hardkill caught it in CI (counter 40,407 of 40,000).
 * A round that fails half-way is sent again whole, which the idempotent scripts and
 * compare-and-sets allow; nothing relies on a round being atomic.
 *
 * The SHA of an EVALSHA is fixed at queue time, so after a reload (same source, same SHA) the
 * queued round is still valid and can simply be resent. */
static int send_round(st_redis_t *r, st_err_t *err, bool *noscript)
{
    rconn_t *c = &r->conns[0];
    round_t *rd = &r->rd;
    *noscript = false;
    free_replies(rd);
    if (rd->npipe == 0)
        return 0;
    if (redisAppendFormattedCommand(c->c, rd->pipe.data, rd->pipe.len) != REDIS_OK) {
        st_err_set(err, ST_ERR_REDIS, ST_DISP_RETRY, "redis append: %s", c->c->errstr);
        conn_close(c);
        return -1;
    }
    if (replies_fit(rd, err) != 0) {
        conn_close(c);
        return -1;
    }
    for (size_t i = 0; i < rd->npipe; i++) {
        if (!(rd->replies[i] = read_reply(c, err)))
            return -1;
        rd->nreplies = i + 1;
        if (rd->replies[i]->type == REDIS_REPLY_ERROR &&
            strncmp(rd->replies[i]->str, "NOSCRIPT", 8) == 0)
            *noscript = true;
    }
    return check_transient(r, rd, err);
}

/* ---- Redis Cluster: a round over the nodes ----
 *
 * Each command goes to the primary of its first key's hash slot: one pipeline per node, all sent
 * before any is read, so the nodes work in parallel. As on a single node, a round is not atomic
 * (see send_round): each command is idempotent (a state script writes the state a batch leads
 * to, whatever was there), so a round that failed half-way is simply sent again. Commands on one
 * key keep their order (one slot, one node, one pipeline).
 *
 * Replies MOVED (the slot lives elsewhere now: resharding, a failover) and ASK (the slot is being
 * migrated and this key has gone) send the command again, to the node named, after an ASKING for
 * ASK; a MOVED also has the slot map read again. NOSCRIPT loads the scripts on that node and sends
 * the command again. Up to 5 passes; a node that does not answer fails the round as retriable and
 * has the map read again on the next one (its replica may have been promoted meanwhile). */

/* "MOVED 3999 127.0.0.1:6381" / "ASK ...": the node named, added if new; NO_NODE if unparsable. */
static size_t redirect_node(st_redis_t *r, const char *msg)
{
    const char *sp = strchr(msg, ' ');
    const char *addr = sp ? strchr(sp + 1, ' ') : NULL;
    const char *colon = addr ? strrchr(addr + 1, ':') : NULL;
    if (!colon)
        return NO_NODE;
    char host[256];
    size_t hl = (size_t)(colon - (addr + 1));
    if (hl >= sizeof host)
        return NO_NODE;
    memcpy(host, addr + 1, hl);
    host[hl] = '\0';
    int port = atoi(colon + 1);
    if (port <= 0)
        return NO_NODE;
    return conn_add(r, hl ? host : r->conns[0].host, port);
}

static int conn_queue(rconn_t *c, size_t cmd, bool asking)
{
    if (c->ncmds == c->cmds_cap) {
        size_t cap = c->cmds_cap ? c->cmds_cap * 2 : 64;
        size_t *cmds = realloc(c->cmds, cap * sizeof *cmds);
        if (!cmds)
            return -1;
        c->cmds = cmds;
        bool *ask = realloc(c->asking, cap * sizeof *ask);
        if (!ask)
            return -1;
        c->asking = ask;
        c->cmds_cap = cap;
    }
    c->cmds[c->ncmds] = cmd;
    c->asking[c->ncmds++] = asking;
    return 0;
}

/* The replicas a WAIT on c's node asks for. */
static int wait_want(const st_redis_t *r, const rconn_t *c)
{
    return r->wait_replicas < c->replicas ? r->wait_replicas : c->replicas;
}

/* After a round on a cluster: WAIT on every primary the round was sent to, for
 * min(redis.wait_replicas, the replicas the slot map lists for it), so that what the caller is
 * about to treat as stored (and commit the input offsets of) is on a replica too. Replication is
 * asynchronous: without this, a primary that dies right after answering can take writes its
 * replica never got, the replica is promoted, and those writes are gone with their offsets
 * committed. All WAITs are sent before any is read; each waits at most half the command timeout.
 * A primary that falls short fails the round as retriable (the map is read again: a replica may
 * be gone, or the primary too). A primary with no replica listed is not waited for (nothing to
 * wait for; a failover there loses the node's keys anyway). */
static int wait_replicas(st_redis_t *r, st_err_t *err)
{
    if (r->wait_replicas <= 0)
        return 0;
    int wait_ms = r->timeout_ms / 2, rc = 0;
    for (size_t n = 0; n < r->nconns; n++) {
        rconn_t *c = &r->conns[n];
        c->sent = c->sent && c->replicas > 0 && c->c;
        if (!c->sent)
            continue;
        if (redisAppendCommand(c->c, "WAIT %d %d", wait_want(r, c), wait_ms) != REDIS_OK) {
            st_err_set(err, ST_ERR_REDIS, ST_DISP_RETRY, "redis append: %s", c->c->errstr);
            rc = -1;
            goto out;
        }
    }
    for (size_t n = 0; n < r->nconns && rc == 0; n++) {
        rconn_t *c = &r->conns[n];
        if (!c->sent)
            continue;
        int want = wait_want(r, c);
        redisReply *rep = read_reply(c, err);
        c->sent = false; /* its reply is read (or the connection is closed) */
        if (!rep) {
            rc = -1;
            break;
        }
        long long got = rep->type == REDIS_REPLY_INTEGER ? rep->integer : -1;
        if (got < want) {
            st_err_set(err, ST_ERR_REDIS, ST_DISP_RETRY,
                       "redis %s:%d: WAIT: %lld of %d replicas have the round after %d ms (a "
                       "replica down or behind? redis.wait_replicas=%d)%s%s",
                       c->host, c->port, got < 0 ? 0 : got, want, wait_ms, r->wait_replicas,
                       rep->type == REDIS_REPLY_ERROR ? ": " : "",
                       rep->type == REDIS_REPLY_ERROR ? rep->str : "");
            rc = -1;
        } else {
            r->stats.waits++;
        }
        freeReplyObject(rep);
    }
out:
    /* A WAIT whose reply was not read would be read by the next round: close those. */
    for (size_t n = 0; n < r->nconns; n++)
        if (r->conns[n].sent) {
            r->conns[n].sent = false;
            if (rc != 0)
                conn_close(&r->conns[n]);
        }
    if (rc != 0)
        r->map_ok = false;
    return rc;
}

static int cluster_exec(st_redis_t *r, st_err_t *err)
{
    static const char asking_cmd[] = "*1\r\n$6\r\nASKING\r\n";
    round_t *rd = &r->rd;
    free_replies(rd);
    if (rd->npipe == 0)
        return 0;
    if (replies_fit(rd, err) != 0)
        return -1;
    for (size_t i = 0; i < rd->npipe; i++)
        rd->replies[i] = NULL;
    size_t *pending = malloc(2 * rd->npipe * sizeof *pending);
    uint16_t *ask_to = malloc(rd->npipe * sizeof *ask_to);
    if (!pending || !ask_to) {
        free(pending);
        free(ask_to);
        st_err_nomem(err);
        return -1;
    }
    size_t *next = pending + rd->npipe, npend = rd->npipe;
    for (size_t n = 0; n < r->nconns; n++)
        r->conns[n].sent = false;
    for (size_t i = 0; i < rd->npipe; i++) {
        pending[i] = i;
        ask_to[i] = NO_NODE;
    }
    int rc = -1;
    for (int pass = 0; pass < 5 && npend > 0; pass++) {
        if (pass == 0 && r->map_ok && st_time_mono_ms() - r->map_read_ms > MAP_MAX_AGE_MS)
            r->map_ok = false;
        if (!r->map_ok && refresh_map(r, err) != 0)
            goto out;
        for (size_t n = 0; n < r->nconns; n++) {
            st_buf_reset(&r->conns[n].out);
            r->conns[n].ncmds = 0;
            r->conns[n].keyed = false;
        }
        for (size_t k = 0; k < npend; k++) {
            size_t i = pending[k];
            const char *p = rd->pipe.data + rd->cmd_off[i];
            const char *e = rd->pipe.data + (i + 1 < rd->npipe ? rd->cmd_off[i + 1] : rd->pipe.len);
            int slot = cmd_slot(p, e);
            size_t node = ask_to[i] != NO_NODE ? ask_to[i] : r->slots[slot < 0 ? 0 : slot];
            if (node == NO_NODE) {
                r->map_ok = false;
                st_err_set(err, ST_ERR_REDIS, ST_DISP_RETRY,
                           "redis cluster: no node serves slot %d", slot);
                goto out;
            }
            rconn_t *c = &r->conns[node];
            c->keyed = c->keyed || slot >= 0;
            if ((ask_to[i] != NO_NODE &&
                 st_buf_append(&c->out, asking_cmd, sizeof asking_cmd - 1)) ||
                st_buf_append(&c->out, p, (size_t)(e - p)) != 0 ||
                conn_queue(c, i, ask_to[i] != NO_NODE) != 0) {
                st_err_nomem(err);
                goto out;
            }
        }
        for (size_t n = 0; n < r->nconns; n++) {
            rconn_t *c = &r->conns[n];
            if (c->ncmds == 0)
                continue;
            if (conn_ensure(r, n, err) != 0 ||
                redisAppendFormattedCommand(c->c, c->out.data, c->out.len) != REDIS_OK) {
                if (c->c)
                    st_err_set(err, ST_ERR_REDIS, ST_DISP_RETRY, "redis append: %s", c->c->errstr);
                goto down;
            }
            c->sent = c->sent || c->keyed;
        }
        /* Everything written before anything is read, so the nodes work at once (reading a
         * node's replies would otherwise be what sends the next node its commands). Redis keeps
         * reading while its replies wait for us, so the writes cannot block each other. */
        for (size_t n = 0; n < r->nconns; n++) {
            rconn_t *c = &r->conns[n];
            for (int done = c->ncmds == 0; !done;)
                if (redisBufferWrite(c->c, &done) != REDIS_OK) {
                    st_err_set(err, ST_ERR_REDIS, ST_DISP_RETRY, "redis %s:%d: %s", c->host,
                               c->port, c->c->errstr);
                    goto down;
                }
        }
        size_t nnext = 0;
        for (size_t n = 0; n < r->nconns; n++) {
            rconn_t *c = &r->conns[n];
            bool reload = false;
            for (size_t k = 0; k < c->ncmds; k++) {
                size_t i = c->cmds[k];
                redisReply *rep;
                if (c->asking[k]) {
                    if (!(rep = read_reply(c, err)))
                        goto down;
                    freeReplyObject(rep);
                }
                if (!(rep = read_reply(c, err)))
                    goto down;
                ask_to[i] = NO_NODE;
                bool moved = rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "MOVED ", 6) == 0;
                bool ask = rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "ASK ", 4) == 0;
                bool noscript =
                    rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "NOSCRIPT", 8) == 0;
                if (moved || ask || noscript) {
                    r->stats.moved += moved;
                    r->stats.ask += ask;
                    r->stats.noscript += noscript;
                    if (moved) {
                        r->map_ok = false;
                    } else if (ask) {
                        size_t to = redirect_node(r, rep->str);
                        if (to == NO_NODE) {
                            st_err_set(err, ST_ERR_REDIS, ST_DISP_RETRY, "redis: %s", rep->str);
                            freeReplyObject(rep);
                            goto down;
                        }
                        c = &r->conns[n]; /* redirect_node may have moved the array */
                        ask_to[i] = (uint16_t)to;
                    } else {
                        reload = true;
                    }
                    next[nnext++] = i;
                    freeReplyObject(rep);
                } else {
                    rd->replies[i] = rep;
                }
            }
            if (reload) {
                st_log_info("redis_noscript", "action=reload scripts=all addr=%s:%d", c->host,
                            c->port);
                if (load_scripts(r, c, err) != 0)
                    goto down;
            }
        }
        memcpy(pending, next, nnext * sizeof *pending);
        npend = nnext;
    }
    if (npend > 0) {
        st_err_set(err, ST_ERR_REDIS, ST_DISP_RETRY,
                   "redis cluster: %zu commands still redirected after 5 passes", npend);
        goto out;
    }
    rd->nreplies = rd->npipe;
    rc = check_transient(r, rd, err);
    if (rc == 0 && wait_replicas(r, err) != 0)
        rc = -1;
    goto out;
down:
    /* A node failed mid-round: the replies still on the other connections would be read by the
     * next round, so those connections go too; the map is read again (a failover?). */
    for (size_t n = 0; n < r->nconns; n++)
        if (r->conns[n].ncmds > 0)
            conn_close(&r->conns[n]);
    r->map_ok = false;
out:
    if (rc != 0) {
        rd->nreplies = rd->npipe;
        free_replies(rd);
    }
    free(pending);
    free(ask_to);
    return rc;
}

st_redis_cluster_stats_t st_redis_cluster_stats(const st_redis_t *r)
{
    return r->stats;
}

int st_redis_exec(st_redis_t *r, redisReply ***replies, size_t *nreplies, st_err_t *err)
{
    if (r->cluster) {
        if (st_redis_ensure(r, 0, err) != 0 || cluster_exec(r, err) != 0)
            return -1;
        *replies = r->rd.replies;
        *nreplies = r->rd.nreplies;
        return 0;
    }
    for (int attempt = 0; attempt < 3; attempt++) {
        bool noscript;
        if (st_redis_ensure(r, 0, err) != 0)
            return -1;
        if (send_round(r, err, &noscript) != 0)
            return -1;
        if (!noscript) {
            *replies = r->rd.replies;
            *nreplies = r->rd.nreplies;
            return 0;
        }
        st_log_info("redis_noscript", "action=reload scripts=all");
        if (load_scripts(r, &r->conns[0], err) != 0)
            return -1;
    }
    st_err_set(err, ST_ERR_REDIS, ST_DISP_FATAL, "NOSCRIPT persisted after reloading the scripts");
    return -1;
}
