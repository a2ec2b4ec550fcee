/* st_service.h - what every stint daemon shares around st_pipeline: the common configuration
 * table (Kafka, Redis, HTTP, batching, schemas, logging), start-up in a fixed order (config ->
 * log -> signals -> HTTP -> Redis -> pipeline), and one clean-stop path with the exit code.
 * A service's main.c supplies its own config table and a setup function that fills in the
 * pipeline handler. */
#ifndef ST_SERVICE_H
#define ST_SERVICE_H

#include <stdint.h>

#include "st_avro.h"
#include "st_config.h"
#include "st_pipeline.h"
#include "st_redis.h"

/* The settings every service has (keys in st_service.c; env STINT_<KEY>). */
typedef struct {
    char *kafka_brokers;
    char *kafka_group;
    char *redis_host;
    int64_t redis_port;
    char *redis_username;
    char *redis_password;
    int64_t redis_db;
    bool redis_cluster;
    int64_t redis_wait_replicas;
    char *redis_prefix;
    char *http_bind;
    int64_t http_port;
    int64_t http_ready_lag_max;
    int64_t batch_max;
    int64_t batch_timeout_ms;
    char *schemas_dir;
    char *schema_registry_url;
    char *log_level;
    char *log_format;
} st_service_config_t;

typedef struct st_service_s st_service_t;

typedef struct {
    const char *name;               /* "ingest": program stint-ingest, default group stint-ingest */
    const char *summary;            /* one line for -h */
    const st_config_entry_t *table; /* the service's own settings (may be NULL) */
    void *config;                   /* their struct */
    /* Called once everything is connected: fill h (required: process) and the topic fields of
     * po (topics, ntopics, dlq_topic, tick_ms); the rest of po is preset. When po->dlq_topic is
     * set and po->dlq_encode is not, dead letters are encoded as Avro DeadLetter records with the
     * service's registry. Return 0, or -1 with errstr (the service exits 1). */
    int (*setup)(st_service_t *svc, void *ctx, st_pipeline_handler_t *h, st_pipeline_opts_t *po,
                 char *errstr, size_t errstr_size);
    /* Called after the pipeline stopped and closed (may be NULL). */
    void (*teardown)(void *ctx);
    void *ctx;
} st_service_def_t;

/* Runs the service; returns the process exit code: 0 clean stop, 1 failure, 2 usage error. */
int st_service_main(const st_service_def_t *def, int argc, char **argv);

/* Accessors for setup and the handler (borrowed; valid while the service runs). */
const st_service_config_t *st_service_config(const st_service_t *svc);
st_redis_t *st_service_redis(st_service_t *svc);
st_http_t *st_service_http(st_service_t *svc);
/* The service's Avro registry (schemas.dir, schema.registry.url), loaded before setup. Codecs
 * made from it must be destroyed in teardown. */
st_avro_registry_t *st_service_avro(st_service_t *svc);
const st_kafka_opts_t *st_service_kafka(const st_service_t *svc);

#endif
