/* st_dataset_topic.h - fills an st_dataset from the `sessions` Kafka topic: every CLOSED
 * SessionEvent (Avro, st_avro codec "SessionEvent") from the beginning of each partition up to its
 * end offset at the start, deduplicated by session_id, in a deterministic order. The profiles are
 * not on the topic: load them separately (st_dataset_load_profiles). */
#ifndef ST_DATASET_TOPIC_H
#define ST_DATASET_TOPIC_H

#include <stddef.h>
#include <stdint.h>

#include "st_config.h"
#include "st_dataset.h"

typedef struct {
    const char *brokers;           /* bootstrap servers */
    const char *topic;             /* e.g. "sessions" */
    const char *schemas_dir;       /* the .avsc files and ids.conf */
    const char *registry_url;      /* NULL or "": static schema ids (ids.conf) */
    const st_config_prop_t *props; /* extra librdkafka properties (-X), may be NULL */
    size_t nprops;
    int idle_timeout_ms; /* fail when no record arrives for this long before the end (30000) */
} st_dataset_topic_opts_t;

typedef struct {
    int partitions;
    uint64_t records;    /* records read (below the end offsets) */
    uint64_t opened;     /* OPENED events (ignored) */
    uint64_t closed;     /* CLOSED events */
    uint64_t duplicates; /* CLOSED events whose session_id was seen with the same bytes (replays) */
    uint64_t conflicts;  /* ... seen with different bytes: the lowest (partition, offset) is kept */
    uint64_t invalid;    /* undecodable or invalid records (skipped, counted, logged) */
    uint64_t sessions;   /* distinct sessions handed to st_dataset_add_session_ms */
} st_dataset_topic_stats_t;

/* Fills o with the defaults (idle timeout 30 s); the strings stay NULL. */
void st_dataset_topic_opts_default(st_dataset_topic_opts_t *o);

/* Reads the topic and adds one session per distinct session_id (user_id, start_ms, length_s,
 * track_count, unknown_duration_share) to ds, which must not be finalized; the data set sorts each
 * user's sessions by start (a user's sessions may come from several partitions in any order) and
 * applies its until limit. Records produced after the start are not read. stats may be NULL.
 * Returns 0, or -1 with errstr (schemas, Kafka setup, unknown topic, no progress within the idle
 * timeout, the schema registry unreachable, out of memory). */
int st_dataset_topic_load(st_dataset_t *ds, const st_dataset_topic_opts_t *o,
                          st_dataset_topic_stats_t *stats, char *errstr, size_t errstr_size);

#endif
