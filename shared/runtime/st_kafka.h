/* st_kafka.h - librdkafka plumbing shared by services and tools: client configuration (with
 * librdkafka's logs and errors routed into st_log), an idempotent producer that tracks
 * deliveries, topic administration and offset queries. The consume-process-produce loop itself
 * is st_pipeline. */
#ifndef ST_KAFKA_H
#define ST_KAFKA_H

#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "st_config.h"
#include "st_err.h"

typedef struct {
    const char *brokers;           /* bootstrap.servers */
    const char *client_id;         /* client.id; NULL = "stint" */
    const st_config_prop_t *props; /* extra librdkafka properties (-X ...), applied last */
    size_t nprops;
} st_kafka_opts_t;

/* Whether the linked librdkafka knows the configuration property name (settings that only some
 * versions have, e.g. fetch.queue.backoff.ms from 2.2). */
bool st_kafka_conf_known(const char *name);

/* A new librdkafka configuration: brokers, client id, log/error callbacks routed to st_log, then
 * the caller's defaults (name/value pairs, may be NULL), then opts->props, so that -X overrides
 * everything. Returns NULL and fills errstr when a property is rejected. Caller owns it until it
 * is handed to rd_kafka_new. */
rd_kafka_conf_t *st_kafka_conf_new(const st_kafka_opts_t *opts, const char *const (*defaults)[2],
                                   size_t ndefaults, char *errstr, size_t errstr_size);

/* Health as last seen by the error callback: false after "all brokers down" until a broker
 * answers again. Process-wide. */
bool st_kafka_reachable(void);
/* Also ends an "auth" refusal (st_kafka_deny): a broker answered, so the login is accepted. */
void st_kafka_mark_reachable(void);

/* Refusals by the brokers, process-wide: a login (TLS certificate, SASL) refused, or an ACL that
 * denies a topic or the group. key names the refusal ("auth", "group", "read:<topic>",
 * "write:<topic>"): each distinct one is logged once as an error line (event, then fmt's text,
 * which names the setting to fix), again at most every 10 minutes while it lasts, and
 * st_kafka_denied() is true (the service's /healthz unhealthy) until st_kafka_allowed() ends it
 * when access is shown (key: that refusal; one ending in ':' every key it begins, NULL all). The
 * error callback reports refused logins, the producer refused writes; the consumer loop the
 * rest. */
void st_kafka_deny(const char *key, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void st_kafka_deny_write(const char *topic, const char *detail);
bool st_kafka_denied(void);
void st_kafka_allowed(const char *key);

typedef struct st_producer_s st_producer_t;

/* An idempotent producer (enable.idempotence=true, acks=all) with linger tuned for batches.
 * Returns NULL and fills errstr on failure. */
st_producer_t *st_producer_new(const st_kafka_opts_t *opts, char *errstr, size_t errstr_size);
/* Flushes (up to 30 s, reporting anything left in the queue) and destroys. NULL is a no-op. */
void st_producer_destroy(st_producer_t *p);
rd_kafka_t *st_producer_handle(st_producer_t *p);

/* Queues one record (key and value copied; partition by key hash when partition < 0). When the
 * local queue is full it serves delivery reports until there is room. Returns 0, or -1 with err. */
int st_producer_send(st_producer_t *p, const char *topic, int32_t partition, const void *key,
                     size_t key_len, const void *value, size_t value_len, st_err_t *err);
/* Waits until every record sent so far is acknowledged or failed. Returns 0 when all were
 * delivered, -1 when any failed since the previous wait or timeout_ms passed (err says which;
 * retriable). timeout_ms < 0 waits without limit (still returning on a stop request). */
int st_producer_wait(st_producer_t *p, int timeout_ms, st_err_t *err);
/* Records sent and not yet acknowledged. */
uint64_t st_producer_in_flight(const st_producer_t *p);
/* Deliveries that failed so far (without waiting; st_producer_wait says why). */
uint64_t st_producer_failed(st_producer_t *p);
/* Records dropped from the local queue by rd_kafka_purge (RD_KAFKA_PURGE_F_QUEUE): not sent,
 * not counted as failed. */
uint64_t st_producer_purged(st_producer_t *p);
/* Looks up topic's metadata now and keeps a handle to it for the producer's life, so that the
 * first record to it is sent at once: librdkafka (2.0) otherwise holds a topic's first record
 * about 1 s for a metadata round of its own. Returns RD_KAFKA_RESP_ERR_NO_ERROR, or the reason
 * with errstr (RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC or the topic's own error when it does not exist,
 * RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED when an ACL refuses it, a timeout when no broker
 * answered within timeout_ms); the producer is usable either way. */
rd_kafka_resp_err_t st_producer_prepare_topic(st_producer_t *p, const char *topic, int timeout_ms,
                                              char *errstr, size_t errstr_size);

/* Deletes topics; names that do not exist are skipped. Returns the number deleted, or -1 with
 * errstr. */
int st_kafka_delete_topics(const st_kafka_opts_t *opts, const char *const *topics, size_t ntopics,
                           char *errstr, size_t errstr_size);
/* Commits offsets for group from outside it (a consumer of the group that does not join it).
 * Partitions the group has already committed at or past the given offset are left alone; the
 * broker accepts the rest only while the group has no members. Returns 0 or -1 with errstr. */
int st_kafka_commit_outside_group(const st_kafka_opts_t *opts, const char *group,
                                  const rd_kafka_topic_partition_list_t *offsets, char *errstr,
                                  size_t errstr_size);
/* Creates topics (idempotent: existing ones are fine) with the given partition count and the
 * broker's default replication factor; a name ending in ":compact" (as in deploy/topics.conf) is
 * created compacted. Returns 0 or -1 with errstr. */
int st_kafka_create_topics(const st_kafka_opts_t *opts, const char *const *topics, size_t ntopics,
                           int partitions, char *errstr, size_t errstr_size);
/* Sum over partitions of the high watermark of topic (records ever written, for a topic without
 * deletions), or -1 with errstr. */
int64_t st_kafka_topic_end_offsets(const st_kafka_opts_t *opts, const char *topic, char *errstr,
                                   size_t errstr_size);
/* Sum over partitions of the committed offsets of group on topic (partitions without a commit
 * count as 0), or -1 with errstr. */
int64_t st_kafka_group_committed(const st_kafka_opts_t *opts, const char *group, const char *topic,
                                 char *errstr, size_t errstr_size);

/* One partition in a consumer group's view. */
typedef struct {
    char *topic; /* owned by the st_kafka_group_t */
    int32_t partition;
    int64_t committed; /* the group's committed offset, -1 = none */
    int64_t log_start; /* low watermark */
    int64_t log_end;   /* high watermark */
    char *member;      /* "<consumer id>/<host>" of the member it is assigned to, NULL = none */
} st_kafka_group_part_t;

/* A consumer group as `kafka-consumer-groups --describe` shows it. */
typedef struct {
    char state[32];   /* the coordinator's: Stable, Empty, PreparingRebalance, Dead, ... */
    int members;      /* active members */
    bool has_commits; /* a committed offset on some partition of some topic */
    st_kafka_group_part_t *parts; /* sorted by topic, then partition */
    size_t nparts;
} st_kafka_group_t;

/* Error classes of st_kafka_group_describe (besides -1: anything else). */
#define ST_KAFKA_E_UNREACHABLE (-2) /* no broker answered */
#define ST_KAFKA_E_NO_TOPIC    (-3) /* a topic asked for does not exist */

/* Describes group on topics[0..ntopics) (every partition of each), or, when ntopics is 0, on the
 * topics the group has committed offsets for or has a member assigned to: committed offsets,
 * watermarks, owning member, state. Reads the group from outside (a consumer that never joins,
 * as st_kafka_commit_outside_group). Fills *out (free with st_kafka_group_clear) and returns 0,
 * or returns -1, ST_KAFKA_E_UNREACHABLE or ST_KAFKA_E_NO_TOPIC with errstr (*out then empty).
 * An unknown group is not an error: state Dead (or Empty), no members, has_commits false. */
int st_kafka_group_describe(const st_kafka_opts_t *opts, const char *group,
                            const char *const *topics, size_t ntopics, st_kafka_group_t *out,
                            char *errstr, size_t errstr_size);
/* Frees what st_kafka_group_describe filled in and empties g. */
void st_kafka_group_clear(st_kafka_group_t *g);

#endif
