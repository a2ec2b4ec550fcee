/* st_service.c - start-up, run and clean stop shared by every stint service. */
#include "st_service.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "st_dlq.h"
#include "st_http.h"
#include "st_lifecycle.h"
#include "st_log.h"
#include "st_metrics.h"

#define OFF(f) offsetof(st_service_config_t, f)

static const st_config_entry_t base_table[] = {
    {"kafka.brokers", ST_CFG_STRING, "127.0.0.1:19092", ST_CFG_NOBOUNDS, OFF(kafka_brokers), false,
     'b', "Kafka bootstrap servers (host:port,...)"},
    {"kafka.group", ST_CFG_STRING, NULL, ST_CFG_NOBOUNDS, OFF(kafka_group), false, 'G',
     "consumer group id (default stint-<service>)"},
    {"redis.host", ST_CFG_STRING, "127.0.0.1", ST_CFG_NOBOUNDS, OFF(redis_host), false, 0,
     "Redis host"},
    {"redis.port", ST_CFG_INT, "16379", 1, 65535, OFF(redis_port), false, 0, "Redis port"},
    {"redis.username", ST_CFG_STRING, NULL, ST_CFG_NOBOUNDS, OFF(redis_username), false, 0,
     "Redis ACL user (Redis 6+: AUTH username password; unset = the default user)"},
    {"redis.password", ST_CFG_STRING, NULL, ST_CFG_NOBOUNDS, OFF(redis_password), true, 0,
     "Redis AUTH password"},
    {"redis.db", ST_CFG_INT, "0", 0, 15, OFF(redis_db), false, 0, "Redis database number"},
    {"redis.cluster", ST_CFG_BOOL, "false", ST_CFG_NOBOUNDS, OFF(redis_cluster), false, 0,
     "Redis Cluster: redis.host:redis.port is a seed node, the slot map is read from it"},
    {"redis.wait_replicas", ST_CFG_INT, "1", 0, 16, OFF(redis_wait_replicas), false, 0,
     "Redis Cluster: a batch counts as stored (and its input offsets are committed) once every "
     "primary it wrote to has it on this many replicas (WAIT; capped at the replicas the slot map "
     "lists for that primary), so a failover loses no acknowledged write; 0 = don't wait"},
    {"redis.prefix", ST_CFG_STRING, "stint", ST_CFG_NOBOUNDS, OFF(redis_prefix), false, 0,
     "prefix of every Redis key this service writes"},
    {"http.bind", ST_CFG_STRING, "127.0.0.1", ST_CFG_NOBOUNDS, OFF(http_bind), false, 0,
     "address of the /metrics, /healthz, /readyz endpoint"},
    {"http.port", ST_CFG_INT, "0", 0, 65535, OFF(http_port), false, 0,
     "port of that endpoint (0 = any free port, logged at start)"},
    {"http.ready_lag_max", ST_CFG_INT, "5000", 0, 1000000000000, OFF(http_ready_lag_max), false, 0,
     "/readyz is 200 once the group has assigned the service its partitions and their total lag "
     "(records not yet processed) is at most this"},
    {"batch.max", ST_CFG_INT, "5000", 1, 1000000, OFF(batch_max), false, 0, "records per batch"},
    {"batch.timeout_ms", ST_CFG_INT, "100", 1, 60000, OFF(batch_timeout_ms), false, 0,
     "longest wait for the first record of a batch (a batch takes what has arrived, never waits to "
     "fill)"},
    {"schemas.dir", ST_CFG_STRING, STINT_SOURCE_DIR "/schemas", ST_CFG_NOBOUNDS, OFF(schemas_dir),
     false, 0, "directory of the .avsc files and ids.conf"},
    {"schema.registry.url", ST_CFG_STRING, ST_SCHEMA_REGISTRY_URL_DEFAULT, ST_CFG_NOBOUNDS,
     OFF(schema_registry_url), false, 0, ST_SCHEMA_REGISTRY_URL_HELP},
    {"log.level", ST_CFG_STRING, "info", ST_CFG_NOBOUNDS, OFF(log_level), false, 0,
     "debug, info, warn or error"},
    {"log.format", ST_CFG_STRING, "text", ST_CFG_NOBOUNDS, OFF(log_format), false, 0,
     "text (key=value) or json"},
    {NULL, 0, NULL, 0, 0, 0, false, 0, NULL},
};

struct st_service_s {
    const st_service_def_t *def;
    st_service_config_t base;
    st_config_t *cfg;
    st_kafka_opts_t kafka;
    st_redis_t *redis;
    st_http_t *http;
    st_avro_registry_t *avro;
    st_avro_codec_t *dlq_codec;
    char group[256];
    char client_id[256];
};

const st_service_config_t *st_service_config(const st_service_t *svc)
{
    return &svc->base;
}

st_redis_t *st_service_redis(st_service_t *svc)
{
    return svc->redis;
}

st_http_t *st_service_http(st_service_t *svc)
{
    return svc->http;
}

st_avro_registry_t *st_service_avro(st_service_t *svc)
{
    return svc->avro;
}

const st_kafka_opts_t *st_service_kafka(const st_service_t *svc)
{
    return &svc->kafka;
}

static int run(st_service_t *svc, int argc, char **argv)
{
    const st_service_def_t *def = svc->def;
    char errstr[1024], program[128];
    st_log_level_t level;

    snprintf(program, sizeof program, "stint-%s", def->name);
    svc->cfg = st_config_new(program, def->summary);
    if (st_config_add_table(svc->cfg, base_table, &svc->base, errstr, sizeof errstr) != 0 ||
        (def->table &&
         st_config_add_table(svc->cfg, def->table, def->config, errstr, sizeof errstr) != 0)) {
        fprintf(stderr, "%s: %s\n", program, errstr);
        return 1;
    }
    switch (st_config_load(svc->cfg, argc, argv, NULL, errstr, sizeof errstr)) {
    case ST_CONFIG_EXIT:
        return 0;
    case ST_CONFIG_USAGE:
        fprintf(stderr, "%s: %s\n\n", program, errstr);
        st_config_usage(svc->cfg, stderr);
        return 2;
    case ST_CONFIG_OK:
        break;
    }
    if (st_log_parse_level(svc->base.log_level, &level) != 0) {
        fprintf(stderr, "%s: log.level: \"%s\" is not one of debug, info, warn, error\n", program,
                svc->base.log_level);
        return 2;
    }
    if (strcmp(svc->base.log_format, "text") != 0 && strcmp(svc->base.log_format, "json") != 0) {
        fprintf(stderr, "%s: log.format: \"%s\" is not text or json\n", program,
                svc->base.log_format);
        return 2;
    }
    if (svc->base.redis_cluster && strpbrk(svc->base.redis_prefix, "{}")) {
        /* on a cluster the user keys' hash tag must be the user's */
        fprintf(stderr, "%s: redis.prefix: \"%s\" must not contain '{' or '}' with redis.cluster\n",
                program, svc->base.redis_prefix);
        return 2;
    }
    st_log_init(program);
    st_log_set_level(level);
    st_log_set_json(strcmp(svc->base.log_format, "json") == 0);
    st_lifecycle_install();

    snprintf(svc->group, sizeof svc->group, "%s",
             svc->base.kafka_group && *svc->base.kafka_group ? svc->base.kafka_group : program);
    snprintf(svc->client_id, sizeof svc->client_id, "%s", program);
    svc->kafka.brokers = svc->base.kafka_brokers;
    svc->kafka.client_id = svc->client_id;
    svc->kafka.props = st_config_kafka_props(svc->cfg, &svc->kafka.nprops);

    /* Which program and version this target is: shared families (stint_records_in_total, ...)
     * are told apart by the scrape target's job/instance labels, and this series names them. */
    char info[256];
    snprintf(info, sizeof info, "service=\"%s\",version=\"%s\"", def->name, STINT_VERSION);
    st_metric_set(
        st_metrics_gauge("stint_build_info", info,
                         "A constant 1, labelled with the service and the stint version it runs."),
        1);
    svc->http = st_http_start(svc->base.http_bind, (int)svc->base.http_port, errstr, sizeof errstr);
    if (!svc->http) {
        st_log_error("http_failed", "error=\"%s\"", errstr);
        return 1;
    }
    st_log_info("starting", "version=%s brokers=%s group=%s redis=%s:%lld%s http=%s:%d",
                STINT_VERSION, svc->base.kafka_brokers, svc->group, svc->base.redis_host,
                (long long)svc->base.redis_port, svc->base.redis_cluster ? " redis_cluster=1" : "",
                svc->base.http_bind, st_http_port(svc->http));

    svc->avro = st_avro_registry_new(svc->base.schemas_dir, svc->base.schema_registry_url, errstr,
                                     sizeof errstr);
    if (!svc->avro) {
        st_log_error("schemas_failed", "error=\"%s\"", errstr);
        return 1;
    }

    st_redis_opts_t ro = {.host = svc->base.redis_host,
                          .port = (int)svc->base.redis_port,
                          .username = svc->base.redis_username,
                          .password = svc->base.redis_password,
                          .db = (int)svc->base.redis_db,
                          .timeout_ms = 5000,
                          .cluster = svc->base.redis_cluster,
                          .wait_replicas = (int)svc->base.redis_wait_replicas};
    svc->redis = st_redis_new(&ro);
    st_err_t err = {0};
    if (st_redis_ensure(svc->redis, -1, &err) != 0) {
        if (st_lifecycle_stopping())
            return 0;
        st_log_error("redis_failed", "error=\"%s\"", err.text);
        return 1;
    }
    st_http_set_redis_ok(svc->http, true);

    st_pipeline_handler_t h = {0};
    st_pipeline_opts_t po = {0};
    po.kafka = svc->kafka;
    po.group_id = svc->group;
    po.batch_max = (int)svc->base.batch_max;
    po.batch_timeout_ms = (int)svc->base.batch_timeout_ms;
    po.from_beginning = true;
    po.redis = svc->redis;
    po.http = svc->http;
    po.ready_lag_max = svc->base.http_ready_lag_max;
    if (def->setup(svc, def->ctx, &h, &po, errstr, sizeof errstr) != 0) {
        st_log_error("setup_failed", "error=\"%s\"", errstr);
        return 1;
    }
    if (po.dlq_topic && !po.dlq_encode) {
        svc->dlq_codec =
            st_avro_codec_new(svc->avro, "DeadLetter", po.dlq_topic, errstr, sizeof errstr);
        if (!svc->dlq_codec) {
            st_log_error("setup_failed", "error=\"dead-letter codec: %s\"", errstr);
            return 1;
        }
        po.dlq_encode = st_dlq_encode_avro;
        po.dlq_ctx = svc->dlq_codec;
    }
    st_pipeline_t *p = st_pipeline_new(&po, &h, errstr, sizeof errstr);
    if (!p) {
        st_log_error("pipeline_failed", "error=\"%s\"", errstr);
        return 1;
    }
    int rc = st_pipeline_run(p);
    if (rc == 0 && st_lifecycle_failed())
        rc = -1; /* stopped by a fatal error in a librdkafka thread, not by a signal */
    st_log_info("stopping", "reason=%s", rc == 0 ? "signal" : "fatal-error");
    st_pipeline_destroy(p);
    st_log_info("stopped", "exit=%d", rc == 0 ? 0 : 1);
    return rc == 0 ? 0 : 1;
}

int st_service_main(const st_service_def_t *def, int argc, char **argv)
{
    st_service_t *svc = calloc(1, sizeof *svc);
    if (!svc)
        return 1;
    svc->def = def;
    int rc = run(svc, argc, argv);
    if (def->teardown)
        def->teardown(def->ctx);
    st_avro_codec_destroy(svc->dlq_codec);
    st_avro_registry_destroy(svc->avro);
    st_redis_destroy(svc->redis);
    st_http_stop(svc->http);
    st_config_destroy(svc->cfg);
    free(svc);
    return rc;
}
