/* st_redis.c - hiredis wrapper: reconnects, pipelined rounds, Lua scripts by SHA. */
#include "st_redis.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
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

struct st_redis_s {
    char *host;
    int port;
    char *password;
    int db;
    int timeout_ms;
    redisContext *c;
    st_redis_script_t *scripts;
    st_buf_t pipe; /* formatted RESP commands of the current round */
    size_t npipe;
    redisReply **replies;
    size_t nreplies;
    bool logged_down;
};

st_redis_t *st_redis_new(const st_redis_opts_t *opts)
{
    st_redis_t *r = calloc(1, sizeof *r);
    if (!r)
        st_oom_abort("st_redis_new");
    r->host = strdup(opts->host && *opts->host ? opts->host : "127.0.0.1");
    r->port = opts->port > 0 ? opts->port : 6379;
    r->password = opts->password && *opts->password ? strdup(opts->password) : NULL;
    r->db = opts->db;
    r->timeout_ms = opts->timeout_ms > 0 ? opts->timeout_ms : 5000;
    st_redis_ensure(r, 0, NULL);
    return r;
}

static void free_replies(st_redis_t *r)
{
    for (size_t i = 0; i < r->nreplies; i++)
        if (r->replies[i])
            freeReplyObject(r->replies[i]);
    r->nreplies = 0;
}

static void disconnect(st_redis_t *r)
{
    if (r->c)
        redisFree(r->c);
    r->c = NULL;
}

void st_redis_destroy(st_redis_t *r)
{
    if (!r)
        return;
    disconnect(r);
    free_replies(r);
    free(r->replies);
    st_buf_free(&r->pipe);
    for (st_redis_script_t *s = r->scripts, *next; s; s = next) {
        next = s->next;
        free(s->source);
        free(s);
    }
    free(r->host);
    free(r->password);
    free(r);
}

bool st_redis_connected(const st_redis_t *r)
{
    return r->c != NULL;
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

static int load_script(st_redis_t *r, st_redis_script_t *s, st_err_t *err)
{
    redisReply *rep = redisCommand(r->c, "SCRIPT LOAD %s", s->source);
    if (!rep) {
        st_err_set(err, ST_ERR_REDIS, ST_DISP_RETRY, "redis %s:%d: %s", r->host, r->port,
                   r->c->errstr);
        disconnect(r);
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
        st_err_set(err, ST_ERR_REDIS, transient ? ST_DISP_RETRY : ST_DISP_FATAL,
                   "SCRIPT LOAD failed: %s",
                   rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply");
        rc = -1;
    }
    freeReplyObject(rep);
    return rc;
}

/* One connection attempt: connect, AUTH, SELECT, load scripts. */
static int connect_once(st_redis_t *r, st_err_t *err)
{
    struct timeval tv = {r->timeout_ms / 1000, (r->timeout_ms % 1000) * 1000};
    redisContext *c = redisConnectWithTimeout(r->host, r->port, tv);
    if (!c || c->err) {
        st_err_set(err, ST_ERR_REDIS, ST_DISP_RETRY, "redis %s:%d: %s", r->host, r->port,
                   c ? c->errstr : "cannot allocate context");
        if (c)
            redisFree(c);
        return -1;
    }
    redisSetTimeout(c, tv);
    r->c = c;
    if (r->password) {
        redisReply *rep = redisCommand(c, "AUTH %s", r->password);
        bool ok = rep && rep->type != REDIS_REPLY_ERROR;
        /* Only a refused password is fatal; no answer, or "max number of clients", is retried. */
        bool refused = rep && rep->type == REDIS_REPLY_ERROR &&
                       (strncmp(rep->str, "WRONGPASS", 9) == 0 || strstr(rep->str, "password") ||
                        strncmp(rep->str, "NOAUTH", 6) == 0);
        if (!ok)
            st_err_set(err, ST_ERR_REDIS, refused ? ST_DISP_FATAL : ST_DISP_RETRY,
                       "redis AUTH failed: %s", rep ? rep->str : c->errstr);
        if (rep)
            freeReplyObject(rep);
        if (!ok) {
            disconnect(r);
            return -1;
        }
    }
    if (r->db > 0) {
        redisReply *rep = redisCommand(c, "SELECT %d", r->db);
        bool ok = rep && rep->type != REDIS_REPLY_ERROR;
        if (!ok) {
            bool transient = !rep || transient_error(rep->str);
            st_err_set(err, ST_ERR_REDIS, transient ? ST_DISP_RETRY : ST_DISP_FATAL,
                       "redis SELECT %d failed", r->db);
        }
        if (rep)
            freeReplyObject(rep);
        if (!ok) {
            disconnect(r);
            return -1;
        }
    }
    for (st_redis_script_t *s = r->scripts; s; s = s->next) {
        if (load_script(r, s, err) != 0) {
            disconnect(r);
            return -1;
        }
    }
    if (r->logged_down)
        st_log_info("redis_reconnected", "addr=%s:%d", r->host, r->port);
    r->logged_down = false;
    return 0;
}

int st_redis_ensure(st_redis_t *r, int max_wait_ms, st_err_t *err)
{
    int backoff_ms = 100;
    int64_t deadline = st_time_mono_ms() + max_wait_ms;
    for (;;) {
        if (r->c)
            return 0;
        st_err_t e = {0};
        if (connect_once(r, &e) == 0)
            return 0;
        if (!e.retriable || max_wait_ms == 0 || st_lifecycle_stopping() ||
            (max_wait_ms > 0 && st_time_mono_ms() >= deadline)) {
            if (!r->logged_down)
                st_log_warn("redis_down", "addr=%s:%d error=\"%s\"", r->host, r->port, e.text);
            r->logged_down = true;
            if (err && err->code == ST_ERR_NONE)
                *err = e;
            return -1;
        }
        if (!r->logged_down)
            st_log_warn("redis_down", "addr=%s:%d error=\"%s\" retrying=1", r->host, r->port,
                        e.text);
        r->logged_down = true;
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
    if (r->c && load_script(r, s, NULL) != 0)
        disconnect(r);
    return s;
}

const char *st_redis_script_sha(const st_redis_script_t *s)
{
    return s->sha;
}

static redisReply *check_reply(st_redis_t *r, redisReply *rep, st_err_t *err)
{
    if (!rep) {
        st_err_set(err, ST_ERR_REDIS, ST_DISP_RETRY, "redis %s:%d: %s", r->host, r->port,
                   r->c ? r->c->errstr : "not connected");
        disconnect(r);
        return NULL;
    }
    if (rep->type == REDIS_REPLY_ERROR) {
        st_err_set(err, ST_ERR_REDIS, transient_error(rep->str) ? ST_DISP_RETRY : ST_DISP_PERMANENT,
                   "redis error: %s", rep->str);
        freeReplyObject(rep);
        return NULL;
    }
    return rep;
}

redisReply *st_redis_command(st_redis_t *r, st_err_t *err, const char *fmt, ...)
{
    va_list ap;
    if (st_redis_ensure(r, 0, err) != 0)
        return NULL;
    va_start(ap, fmt);
    redisReply *rep = redisvCommand(r->c, fmt, ap);
    va_end(ap);
    return check_reply(r, rep, err);
}

redisReply *st_redis_commandargv(st_redis_t *r, st_err_t *err, int argc, const char **argv,
                                 const size_t *argvlen)
{
    if (st_redis_ensure(r, 0, err) != 0)
        return NULL;
    return check_reply(r, redisCommandArgv(r->c, argc, argv, argvlen), err);
}

void st_redis_pipe_reset(st_redis_t *r)
{
    st_buf_reset(&r->pipe);
    r->npipe = 0;
    free_replies(r);
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
    int rc = st_buf_append(&r->pipe, cmd, (size_t)len);
    free(cmd);
    if (rc == 0)
        r->npipe++;
    return rc;
}

int st_redis_pipe_argv(st_redis_t *r, int argc, const char **argv, const size_t *argvlen)
{
    /* RESP written directly: avoids hiredis' allocation per command. */
    if (st_buf_printf(&r->pipe, "*%d\r\n", argc) != 0)
        return -1;
    for (int i = 0; i < argc; i++) {
        size_t len = argvlen ? argvlen[i] : strlen(argv[i]);
        if (st_buf_printf(&r->pipe, "$%zu\r\n", len) != 0 ||
            st_buf_append(&r->pipe, argv[i], len) != 0 || st_buf_append(&r->pipe, "\r\n", 2) != 0)
            return -1;
    }
    r->npipe++;
    return 0;
}

int st_redis_pipe_evalsha(st_redis_t *r, const st_redis_script_t *s, int nkeys, int nargs,
                          const char **argv, const size_t *argvlen)
{
    char nk[16];
    int total = nkeys + nargs;
    size_t nklen = (size_t)snprintf(nk, sizeof nk, "%d", nkeys);
    if (st_buf_printf(&r->pipe, "*%d\r\n$7\r\nEVALSHA\r\n$40\r\n", total + 3) != 0 ||
        st_buf_append(&r->pipe, s->sha, 40) != 0 ||
        st_buf_printf(&r->pipe, "\r\n$%zu\r\n%s\r\n", nklen, nk) != 0)
        return -1;
    for (int i = 0; i < total; i++) {
        size_t len = argvlen ? argvlen[i] : strlen(argv[i]);
        if (st_buf_printf(&r->pipe, "$%zu\r\n", len) != 0 ||
            st_buf_append(&r->pipe, argv[i], len) != 0 || st_buf_append(&r->pipe, "\r\n", 2) != 0)
            return -1;
    }
    r->npipe++;
    return 0;
}

size_t st_redis_pipe_len(const st_redis_t *r)
{
    return r->npipe;
}

/* Reads one reply; on a connection error fills err and disconnects. */
static redisReply *read_reply(st_redis_t *r, st_err_t *err)
{
    void *rep = NULL;
    if (redisGetReply(r->c, &rep) != REDIS_OK || !rep) {
        st_err_set(err, ST_ERR_REDIS, ST_DISP_RETRY, "redis %s:%d: %s", r->host, r->port,
                   r->c->errstr);
        if (rep)
            freeReplyObject(rep);
        disconnect(r);
        return NULL;
    }
    return rep;
}

/* A round of two or more commands is sent as one transaction, MULTI ... EXEC. Redis writes a
 * transaction to its AOF in one piece, so with appendfsync always a round costs one fsync instead
 * of one per 16 KB the server reads (ingest's and the sessionizer's apply phase 4-29 % shorter in
 * two A/B pairs of bench/full_pipeline), and a crash of Redis keeps all of a round or none of it.
 * Commands the server refuses at queue time (OOM, a replica's READONLY, a wrong arity) abort the
 * whole transaction (EXECABORT): nothing ran, and the round fails with the first refusal, retriable
 * when that one is. Errors at run time (a script's error, NOSCRIPT) come back in place as before.
 */
static int read_transaction(st_redis_t *r, st_err_t *err)
{
    redisReply *rep = read_reply(r, err); /* +OK to MULTI */
    if (!rep)
        return -1;
    bool multi_ok = rep->type == REDIS_REPLY_STATUS;
    freeReplyObject(rep);
    char refusal[256] = "";
    for (size_t i = 0; i < r->npipe; i++) { /* +QUEUED, or the reason it was refused */
        if (!(rep = read_reply(r, err)))
            return -1;
        if (rep->type == REDIS_REPLY_ERROR && !refusal[0])
            snprintf(refusal, sizeof refusal, "%s", rep->str);
        freeReplyObject(rep);
    }
    if (!(rep = read_reply(r, err)))
        return -1;
    if (!multi_ok || rep->type != REDIS_REPLY_ARRAY || rep->elements != r->npipe) {
        const char *why = refusal[0]                       ? refusal
                          : rep->type == REDIS_REPLY_ERROR ? rep->str
                                                           : "unexpected reply to EXEC";
        bool transient = transient_error(why);
        st_err_set(err, ST_ERR_REDIS, transient ? ST_DISP_RETRY : ST_DISP_FATAL,
                   transient ? "redis refuses for now: %s" : "redis refused the round: %s", why);
        freeReplyObject(rep);
        return -1;
    }
    for (size_t i = 0; i < r->npipe; i++) {
        r->replies[i] = rep->element[i]; /* taken over; freeReplyObject skips NULL */
        rep->element[i] = NULL;
        r->nreplies = i + 1;
    }
    freeReplyObject(rep);
    return 0;
}

/* The SHA of an EVALSHA is fixed at queue time, so after a reload (same source, same SHA) the
 * queued round is still valid and can simply be resent. */
static int send_round(st_redis_t *r, st_err_t *err, bool *noscript)
{
    static const char multi[] = "*1\r\n$5\r\nMULTI\r\n", exec[] = "*1\r\n$4\r\nEXEC\r\n";
    *noscript = false;
    free_replies(r);
    if (r->npipe == 0)
        return 0;
    bool tx = r->npipe >= 2;
    if ((tx && redisAppendFormattedCommand(r->c, multi, sizeof multi - 1) != REDIS_OK) ||
        redisAppendFormattedCommand(r->c, r->pipe.data, r->pipe.len) != REDIS_OK ||
        (tx && redisAppendFormattedCommand(r->c, exec, sizeof exec - 1) != REDIS_OK)) {
        st_err_set(err, ST_ERR_REDIS, ST_DISP_RETRY, "redis append: %s", r->c->errstr);
        disconnect(r);
        return -1;
    }
    if (r->nreplies < r->npipe) {
        redisReply **p = realloc(r->replies, r->npipe * sizeof *p);
        if (!p) {
            st_err_nomem(err);
            disconnect(r);
            return -1;
        }
        r->replies = p;
    }
    if (tx) {
        if (read_transaction(r, err) != 0)
            return -1;
    } else {
        if (!(r->replies[0] = read_reply(r, err)))
            return -1;
        r->nreplies = 1;
    }
    for (size_t i = 0; i < r->nreplies; i++) {
        redisReply *x = r->replies[i];
        if (x->type == REDIS_REPLY_ERROR && strncmp(x->str, "NOSCRIPT", 8) == 0)
            *noscript = true;
    }
    for (size_t i = 0; i < r->nreplies; i++) {
        redisReply *x = r->replies[i];
        if (x->type == REDIS_REPLY_ERROR && transient_error(x->str)) {
            st_err_set(err, ST_ERR_REDIS, ST_DISP_RETRY, "redis refuses for now: %s", x->str);
            return -1;
        }
    }
    return 0;
}

int st_redis_exec(st_redis_t *r, redisReply ***replies, size_t *nreplies, st_err_t *err)
{
    for (int attempt = 0; attempt < 3; attempt++) {
        bool noscript;
        if (st_redis_ensure(r, 0, err) != 0)
            return -1;
        if (send_round(r, err, &noscript) != 0)
            return -1;
        if (!noscript) {
            *replies = r->replies;
            *nreplies = r->nreplies;
            return 0;
        }
        st_log_info("redis_noscript", "action=reload scripts=all");
        for (st_redis_script_t *s = r->scripts; s; s = s->next)
            if (load_script(r, s, err) != 0)
                return -1;
    }
    st_err_set(err, ST_ERR_REDIS, ST_DISP_FATAL, "NOSCRIPT persisted after reloading the scripts");
    return -1;
}
