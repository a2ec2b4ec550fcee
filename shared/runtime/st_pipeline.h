/* st_pipeline.h - the one consume-process-produce loop every stint service runs.
 *
 * Per batch: poll up to batch_max records or batch_timeout_ms -> handler.process() turns them
 * into output records (reading Redis as it needs) -> the outputs are produced and the loop waits
 * until the broker acknowledged all of them -> handler.apply() makes the batch's Redis mutations
 * (idempotent per input record) -> the input offsets are stored (committed by librdkafka's
 * auto-commit, synchronously on partition revoke and on close). Partitions lost with stored but
 * uncommitted offsets (the group session expired) resume from those offsets if they come back,
 * and are committed from outside the group at close if they do not.
 *
 * Why outputs before mutations: if the process dies after producing but before applying, the
 * replay recomputes the same outputs from the same Redis state (byte-identical duplicates that
 * consumers upsert); if it dies after applying but before storing offsets, the replayed records
 * are skipped by the idempotency markers and their outputs are already in Kafka. Nothing is lost
 * and nothing is counted twice.
 *
 * Failures: a retriable error (Redis or Kafka unreachable) retries the same batch with backoff
 * until it succeeds or a stop is requested; a fatal error stops the loop without storing the
 * batch's offsets. Records that cannot be decoded go to the dead-letter topic and do not stop the
 * batch. */
#ifndef ST_PIPELINE_H
#define ST_PIPELINE_H

#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "st_buf.h"
#include "st_err.h"
#include "st_http.h"
#include "st_kafka.h"
#include "st_redis.h"

/* One consumed record (borrowed views, valid during process()). */
typedef struct {
    const char *topic;
    int32_t partition;
    int64_t offset;
    int64_t timestamp_ms; /* Kafka record timestamp, -1 if none */
    const void *key;
    size_t key_len;
    const void *value;
    size_t value_len;
} st_msg_t;

/* The outputs of one batch, collected by process() and produced by the pipeline. */
typedef struct st_out_s st_out_t;

/* Queues an output record (copied). Returns 0 or -1 (out of memory). */
int st_out_produce(st_out_t *out, const char *topic, const void *key, size_t key_len,
                   const void *value, size_t value_len);
/* A dead letter keeps at most this much of the original key and value (the text then says how
 * long they were): a record near the broker's size limit would otherwise give a dead letter over
 * it, which the broker refuses. */
#define ST_DLQ_VALUE_MAX (256 * 1024)
#define ST_DLQ_KEY_MAX   (16 * 1024)

/* Sends msg to the dead-letter topic with a machine reason code and a text, counts it, logs it
 * (rate-limited). Returns 0 or -1. */
int st_out_dead_letter(st_out_t *out, const st_msg_t *msg, const char *code, const char *text);
/* Keeps the stored offset of topic/partition at or below offset (the first record still held in
 * memory, e.g. in a reorder buffer). A hold lasts for the current batch only: a service that
 * keeps records across batches calls it in every batch (ticks included) for every partition that
 * still holds some. It may be called from process() or, with the out of that batch, from apply():
 * holds are cleared before each process() attempt and read only when offsets are stored. */
void st_out_hold(st_out_t *out, const char *topic, int32_t partition, int64_t offset);

/* The records of topic/partition after the last one handed to process() (this batch's
 * included; with none since the assignment, after the consumer's position or the group's commit),
 * from the high watermark of the consumer's last fetch: 0 means caught up. Returns 0, or -1 when
 * either is not known yet (no fetch answered, the commit not known). */
int st_out_lag(st_out_t *out, const char *topic, int32_t partition, int64_t *lag);
/* For a partition with no record since its assignment (none in this batch either): the offset
 * it resumes from - where this consumer had got to for a partition regained after a lost
 * assignment, else the group's commit - when that is the partition's end as last fetched
 * (caught up: its next record will have that offset). 0 with *offset, or -1 (no commit, records
 * to come, a commit past the end that the consumer will reset, or not known yet). */
int st_out_resume_commit(st_out_t *out, const char *topic, int32_t partition, int64_t *offset);

/* An st_out_t outside a pipeline, for unit tests and benches of service cores: outputs are
 * collected in memory; a dead letter is an output on dlq_topic (NULL: dropped, only logged) in the
 * JSON encoding (source_topic, source_partition, source_offset, error_code, error,
 * original_value_hex, failed_at_ms). NULL on no memory. */
st_out_t *st_out_new(const char *dlq_topic);
void st_out_destroy(st_out_t *out);
/* Empties the collected outputs (a new batch). */
void st_out_reset(st_out_t *out);
size_t st_out_count(const st_out_t *out);
/* Output i (< st_out_count), in the order queued; views valid until the next reset or output. */
typedef struct {
    const char *topic;
    const void *key;
    size_t key_len;
    const void *value;
    size_t value_len;
} st_out_rec_t;
st_out_rec_t st_out_record(const st_out_t *out, size_t i);

/* Encodes a dead letter; the service supplies an Avro encoder, tests may use the JSON default. */
typedef int (*st_dlq_encode_fn)(void *ctx, const st_msg_t *msg, const char *code, const char *text,
                                st_buf_t *out);

typedef struct {
    void *ctx;
    /* Required. n may be 0 when tick_ms > 0 (a timer tick with no input). Return 0, or -1 with
     * err (retriable -> the batch is retried; otherwise the loop stops). */
    int (*process)(void *ctx, const st_msg_t *msgs, size_t n, st_out_t *out, st_err_t *err);
    /* Optional: Redis mutations of the batch, run once its outputs are acknowledged. Retried
     * alone on a retriable error. */
    int (*apply)(void *ctx, st_err_t *err);
    /* Optional: told about partitions gained and lost (after the revoked ones are committed). */
    void (*on_assign)(void *ctx, const rd_kafka_topic_partition_list_t *parts);
    void (*on_revoke)(void *ctx, const rd_kafka_topic_partition_list_t *parts);
} st_pipeline_handler_t;

typedef struct {
    st_kafka_opts_t kafka; /* its strings stay valid until st_pipeline_destroy (commit at close) */
    const char *group_id;
    const char *const *topics; /* input topics */
    size_t ntopics;
    const char *const *out_topics; /* the topics process() produces to, looked up at start */
    size_t nout_topics;
    const char *dlq_topic;       /* NULL = dead letters are logged and counted only */
    st_dlq_encode_fn dlq_encode; /* NULL = JSON */
    void *dlq_ctx;
    int batch_max;         /* records per batch, default 5000 */
    int batch_timeout_ms;  /* max wait to fill a batch, default 100 */
    int tick_ms;           /* > 0: call process with no records at least this often */
    bool from_beginning;   /* auto.offset.reset=earliest (default true) */
    st_http_t *http;       /* optional: health flags and readiness are updated */
    int64_t ready_lag_max; /* /readyz caught up: total lag over the assigned partitions at most
                              this many records (0 = none left) */
    st_redis_t *redis;     /* optional: the service's Redis (the loop's thread), PINGed for
                              /healthz when no batch has used it for ST_PIPELINE_PROBE_MS */
} st_pipeline_opts_t;

/* /healthz freshness: when neither a record nor a batch has shown Kafka (or Redis) reachable for
 * this long, the loop asks it (a metadata request bounded by 1 s, a PING bounded by the Redis
 * client's timeout), so /healthz turns within about two of these after a server stops. */
#define ST_PIPELINE_PROBE_MS 2000

/* A consumer whose probes have all failed for this long, holding no partitions (the session
 * expired long before), is replaced by a new one (st_pipeline.c, consumer_restart): a way out
 * of a librdkafka client that does not find its way back after a broker restart. Three session
 * timeouts; well past the ~10 s a healthy client takes to reconnect to a restarted broker. */
#define ST_PIPELINE_CONSUMER_RESTART_MS 30000

typedef struct st_pipeline_s st_pipeline_t;

/* Creates the consumer (subscribed) and the idempotent producer. Strings in opts are copied.
 * Returns NULL and fills errstr on failure. */
st_pipeline_t *st_pipeline_new(const st_pipeline_opts_t *opts, const st_pipeline_handler_t *h,
                               char *errstr, size_t errstr_size);
/* Runs until a stop is requested (returns 0 after finishing the batch) or a fatal error (-1). */
int st_pipeline_run(st_pipeline_t *p);
/* Closes the consumer (committing stored offsets), flushes the producer, frees. NULL is a no-op. */
void st_pipeline_destroy(st_pipeline_t *p);

/* The pipeline's producer, for services that also produce outside batches (rare). */
st_producer_t *st_pipeline_producer(st_pipeline_t *p);

/* Tell the pipeline whether Redis is currently reachable (for /healthz). */
void st_pipeline_set_redis_ok(st_pipeline_t *p, bool ok);

#endif
