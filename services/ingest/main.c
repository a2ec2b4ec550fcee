/* main.c - stint-ingest: consumes listens.raw (JSON), validates and normalises each listen,
 * drops exact duplicates seen within a window (Redis marks with a TTL), produces Avro Listen to
 * listens and anything invalid as Avro DeadLetter to listens.dlq. The batch logic and the
 * crash-safety argument are in ingest.h. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest.h"
#include "st_avro.h"
#include "st_log.h"
#include "st_metrics.h"
#include "st_service.h"
#include "st_time.h"

typedef struct {
    char *in_topic;
    char *out_topic;
    char *dlq_topic;
    int64_t dedup_ttl_s;
    int64_t dedup_window_s;
    int64_t dedup_max_per_user;
} ingest_config_t;

static ingest_config_t config;

#define OFF(f) offsetof(ingest_config_t, f)
static const st_config_entry_t table[] = {
    {"in.topic", ST_CFG_STRING, "listens.raw", ST_CFG_NOBOUNDS, OFF(in_topic), false, 0,
     "input topic (JSON listens)"},
    {"out.topic", ST_CFG_STRING, "listens", ST_CFG_NOBOUNDS, OFF(out_topic), false, 0,
     "output topic (Avro Listen)"},
    {"dlq.topic", ST_CFG_STRING, "listens.dlq", ST_CFG_NOBOUNDS, OFF(dlq_topic), false, 0,
     "dead-letter topic (Avro DeadLetter)"},
    {"dedup.ttl_s", ST_CFG_INT, "3600", 0, 30 * 86400, OFF(dedup_ttl_s), false, 0,
     "a user's duplicate marks expire this long (wall clock) after its last listen; 0 = no "
     "marks, exact duplicates (same event_id) are dropped within a batch only"},
    {"dedup.window_s", ST_CFG_INT, "900", 1, 30 * 86400, OFF(dedup_window_s), false, 0,
     "an exact duplicate is dropped while its listen time is within this of its user's newest "
     "listen (record time)"},
    {"dedup.max_per_user", ST_CFG_INT, "64", 1, 100000, OFF(dedup_max_per_user), false, 0,
     "duplicate marks kept per user (the oldest go first)"},
    {NULL, 0, NULL, 0, 0, 0, false, 0, NULL},
};

typedef struct {
    st_avro_codec_t *listen_codec;
    ingest_store_t *store;
    ingest_t *core;
} ingest_ctx_t;

static int process(void *vctx, const st_msg_t *msgs, size_t n, st_out_t *out, st_err_t *err)
{
    ingest_ctx_t *ctx = vctx;
    return ingest_process(ctx->core, msgs, n, st_time_wall_ms(), out, err);
}

static int apply(void *vctx, st_err_t *err)
{
    ingest_ctx_t *ctx = vctx;
    return ingest_apply(ctx->core, err);
}

static int setup(st_service_t *svc, void *vctx, st_pipeline_handler_t *h, st_pipeline_opts_t *po,
                 char *errstr, size_t errstr_size)
{
    static const char *topics[1], *outs[1];
    ingest_ctx_t *ctx = vctx;
    const st_service_config_t *sc = st_service_config(svc);

    ctx->listen_codec =
        st_avro_codec_new(st_service_avro(svc), "Listen", config.out_topic, errstr, errstr_size);
    if (!ctx->listen_codec)
        return -1;
    ingest_opts_t o = {.out_topic = config.out_topic,
                       .dedup_ttl_s = config.dedup_ttl_s,
                       .dedup_window_s = config.dedup_window_s,
                       .dedup_max_per_user = config.dedup_max_per_user};
    if (!(ctx->store = ingest_store_redis_new(st_service_redis(svc), sc->redis_prefix)) ||
        !(ctx->core = ingest_new(ctx->listen_codec, ctx->store, &o)))
        return st_errstr(errstr, errstr_size, "out of memory");
    st_log_info("ingest_config",
                "in=%s out=%s dlq=%s dedup_ttl_s=%lld dedup_window_s=%lld dedup_max_per_user=%lld "
                "prefix=%s",
                config.in_topic, config.out_topic, config.dlq_topic, (long long)config.dedup_ttl_s,
                (long long)config.dedup_window_s, (long long)config.dedup_max_per_user,
                sc->redis_prefix);

    topics[0] = config.in_topic;
    po->topics = topics;
    po->ntopics = 1;
    outs[0] = config.out_topic;
    po->out_topics = outs;
    po->nout_topics = 1;
    po->dlq_topic = config.dlq_topic;
    h->ctx = ctx;
    h->process = process;
    h->apply = apply;
    return 0;
}

static void teardown(void *vctx)
{
    ingest_ctx_t *ctx = vctx;
    ingest_destroy(ctx->core);
    ingest_store_redis_destroy(ctx->store);
    st_avro_codec_destroy(ctx->listen_codec);
}

int main(int argc, char **argv)
{
    static ingest_ctx_t ctx;
    st_service_def_t def = {"ingest",
                            "validates listens.raw (JSON), drops exact duplicates, produces Avro "
                            "Listen to listens and invalid records to listens.dlq",
                            table,
                            &config,
                            setup,
                            teardown,
                            &ctx};
    return st_service_main(&def, argc, argv);
}
