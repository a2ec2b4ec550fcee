/* st_redis.h - Redis access for services: connect with a timeout, AUTH/SELECT, reconnect with
 * backoff, pipelined rounds, and Lua scripts loaded once and called by SHA (the SHA-1 of the
 * source, known from the start; reloaded on NOSCRIPT and after every reconnect). hiredis 0.14,
 * RESP2, synchronous. One st_redis_t per thread.
 *
 * With opts.cluster the same calls work on a Redis Cluster: the client reads the slot map
 * (CLUSTER SLOTS) from the seed node, sends each command to the primary of its first key's hash
 * slot (one pipeline per node and round), follows MOVED and ASK, and loads the scripts on every
 * node it talks to. A round on a cluster is not a transaction (see st_redis_exec). */
#ifndef ST_REDIS_H
#define ST_REDIS_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>

#include "st_err.h"

typedef struct {
    const char *host;     /* default "127.0.0.1" */
    int port;             /* default 6379 */
    const char *password; /* NULL/"" = no AUTH */
    int db;               /* SELECT db when > 0 */
    int timeout_ms;       /* connect and command timeout; default 5000 */
    bool cluster;         /* Redis Cluster: host:port is a seed node (st_redis.c, "Cluster") */
    const char *username; /* Redis 6+ ACL user: AUTH username password; NULL/"" = AUTH password */
    int wait_replicas;    /* cluster: after each round, WAIT until this many replicas of every
                             primary it went to have it (capped at the replicas the slot map lists
                             for that primary); 0 = don't wait (st_redis.c, wait_replicas) */
} st_redis_opts_t;

typedef struct st_redis_s st_redis_t;
typedef struct st_redis_script_s st_redis_script_t;

/* Creates a client and tries to connect once. A failed first connection is not an error: the
 * client reconnects (with backoff) on the next call. opts strings are copied. */
st_redis_t *st_redis_new(const st_redis_opts_t *opts);
void st_redis_destroy(st_redis_t *r);

/* Connects if needed, retrying with exponential backoff (100 ms .. 5 s) until connected, the
 * process is asked to stop, or max_wait_ms passes (-1 = no limit). Returns 0 or -1 with err. */
int st_redis_ensure(st_redis_t *r, int max_wait_ms, st_err_t *err);
bool st_redis_connected(const st_redis_t *r);

/* Registers a Lua script with the client (source copied). It is loaded with SCRIPT LOAD on every
 * (re)connection; the returned handle is owned by r. */
st_redis_script_t *st_redis_script(st_redis_t *r, const char *lua_source);
const char *st_redis_script_sha(const st_redis_script_t *s);

/* One command, one round trip. Returns a reply owned by the caller (freeReplyObject), or NULL
 * with err filled: connection errors are retriable (the client reconnects next time), an error
 * reply is not. */
redisReply *st_redis_command(st_redis_t *r, st_err_t *err, const char *fmt, ...);
redisReply *st_redis_commandargv(st_redis_t *r, st_err_t *err, int argc, const char **argv,
                                 const size_t *argvlen);

/* What a cluster client has met since it was created (all 0 on a single node). */
typedef struct {
    unsigned long long map_reads; /* CLUSTER SLOTS answers taken */
    unsigned long long moved;     /* MOVED replies followed */
    unsigned long long ask;       /* ASK replies followed */
    unsigned long long noscript;  /* NOSCRIPT replies (scripts loaded on that node again) */
    unsigned long long waits;     /* WAITs answered with enough replicas (wait_replicas) */
} st_redis_cluster_stats_t;

st_redis_cluster_stats_t st_redis_cluster_stats(const st_redis_t *r);

/* The Redis Cluster hash slot of a key (CRC16 of the key, or of its {hash tag}, mod 16384). */
int st_redis_key_slot(const char *key, size_t len);

/* Pipelining: queue commands, then st_redis_exec sends them in one write and reads every reply
 * (on a Redis Cluster: one pipeline per node). A round is not a transaction: a round that failed
 * half-way is sent again whole, which the idempotent scripts allow (st_redis.c, send_round, says
 * why MULTI ... EXEC was taken out). Commands are kept until the next
 * st_redis_pipe_reset so the round can be resent when a script was missing (NOSCRIPT). Scripts must
 * therefore be idempotent. */
void st_redis_pipe_reset(st_redis_t *r);
int st_redis_pipe(st_redis_t *r, const char *fmt, ...);
int st_redis_pipe_argv(st_redis_t *r, int argc, const char **argv, const size_t *argvlen);
/* EVALSHA script nkeys keys... args... */
int st_redis_pipe_evalsha(st_redis_t *r, const st_redis_script_t *s, int nkeys, int nargs,
                          const char **argv, const size_t *argvlen);
size_t st_redis_pipe_len(const st_redis_t *r);

/* Sends the queued commands and reads their replies into an array owned by r (valid until the
 * next exec/reset). Error replies are returned in place (type REDIS_REPLY_ERROR) except NOSCRIPT,
 * which is handled. Returns 0, or -1 on a connection error (retriable; nothing is known about
 * how much of the round ran, so the caller retries the whole round, which idempotent scripts
 * allow) or when a reply is a transient refusal (OOM, READONLY, LOADING, BUSY, TRYAGAIN,
 * CLUSTERDOWN: retriable; the commands before it may have run, as above). */
int st_redis_exec(st_redis_t *r, redisReply ***replies, size_t *nreplies, st_err_t *err);

#endif
