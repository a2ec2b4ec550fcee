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
     "window in which an exact duplicate (same event_id) is dropped; 0 = only within a batch"},
    {NULL, 0, NULL, 0, 0, 0, false, 0, NULL},
};

typedef struct {
    st_redis_t *redis;
    st_avro_codec_t *listen_codec;
    ingest_batch_t *batch;
    const char *prefix;
    /* Redis keys of the batch's valid records, and the marks read for them. */
    st_buf_t keys;
    size_t *key_offs;
    const char **marks;
    size_t cap;
    /* Counts of the batch, added to the metrics once its outputs are acknowledged (apply). */
    uint64_t n_valid, n_dup, n_invalid[ST_LISTEN_REASON_COUNT];
    st_metric_t *m_valid, *m_dup, *m_invalid[ST_LISTEN_REASON_COUNT];
} ingest_ctx_t;

static int grow(ingest_ctx_t *ctx, size_t n)
{
    if (n <= ctx->cap)
        return 0;
    size_t *k = realloc(ctx->key_offs, n * sizeof *k);
    if (!k)
        return -1;
    ctx->key_offs = k;
    const char **m = realloc(ctx->marks, n * sizeof *m);
    if (!m)
        return -1;
    ctx->marks = m;
    ctx->cap = n;
    return 0;
}

/* Reads the marks of the batch's valid records with one MGET. */
static int read_marks(ingest_ctx_t *ctx, redisReply **reply_out, st_err_t *err)
{
    size_t n = ingest_batch_size(ctx->batch), nkeys = 0;
    const char **argv = malloc((n + 1) * sizeof *argv);
    size_t *idx = malloc((n + 1) * sizeof *idx);
    int rc = -1;
    *reply_out = NULL;
    if (!argv || !idx) {
        st_err_nomem(err);
        goto done;
    }
    argv[0] = "MGET";
    for (size_t i = 0; i < n; i++) {
        ctx->marks[i] = NULL;
        if (ingest_batch_record(ctx->batch, i)->verdict != INGEST_INVALID) {
            argv[1 + nkeys] = ctx->keys.data + ctx->key_offs[i];
            idx[nkeys++] = i;
        }
    }
    if (nkeys == 0) {
        rc = 0;
        goto done;
    }
    redisReply *r = st_redis_commandargv(ctx->redis, err, (int)(nkeys + 1), argv, NULL);
    if (!r)
        goto done;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != nkeys) {
        st_err_set(err, ST_ERR_REDIS, ST_DISP_RETRY, "MGET: unexpected reply (type %d)", r->type);
        freeReplyObject(r);
        goto done;
    }
    for (size_t j = 0; j < nkeys; j++)
        if (r->element[j]->type == REDIS_REPLY_STRING)
            ctx->marks[idx[j]] = r->element[j]->str;
    *reply_out = r;
    rc = 0;
done:
    free(argv);
    free(idx);
    return rc;
}

static int process(void *vctx, const st_msg_t *msgs, size_t n, st_out_t *out, st_err_t *err)
{
    ingest_ctx_t *ctx = vctx;
    redisReply *reply = NULL;
    ctx->n_valid = ctx->n_dup = 0;
    memset(ctx->n_invalid, 0, sizeof ctx->n_invalid);
    if (grow(ctx, n) != 0) {
        st_err_nomem(err);
        return -1;
    }
    if (ingest_batch_parse(ctx->batch, msgs, n, st_time_wall_ms(), err) != 0)
        return -1;
    st_buf_reset(&ctx->keys);
    for (size_t i = 0; i < n; i++) {
        const ingest_record_t *r = ingest_batch_record(ctx->batch, i);
        ctx->key_offs[i] = ctx->keys.len;
        if (r->verdict != INGEST_INVALID &&
            (st_buf_printf(&ctx->keys, "%s:ingest:seen:%s", ctx->prefix, r->event_id) != 0 ||
             st_buf_append(&ctx->keys, "", 1) != 0)) {
            st_err_nomem(err);
            return -1;
        }
    }
    if (config.dedup_ttl_s > 0 && read_marks(ctx, &reply, err) != 0)
        return -1;
    int rc = ingest_batch_decide(ctx->batch, config.dedup_ttl_s > 0 ? ctx->marks : NULL);
    if (reply)
        freeReplyObject(reply); /* the marks are not used after decide */
    if (rc != 0) {
        st_err_nomem(err);
        return -1;
    }
    const char *data = ingest_batch_data(ctx->batch);
    for (size_t i = 0; i < n; i++) {
        const ingest_record_t *r = ingest_batch_record(ctx->batch, i);
        switch (r->verdict) {
        case INGEST_INVALID:
            ctx->n_invalid[r->reason]++;
            rc = st_out_dead_letter(out, &msgs[i], st_listen_reason_name(r->reason), r->error);
            break;
        case INGEST_NEW:
            ctx->n_valid++;
            rc = st_out_produce(out, config.out_topic, data + r->key_off, r->key_len,
                                data + r->value_off, r->value_len);
            break;
        case INGEST_DUPLICATE:
            ctx->n_dup++;
            break;
        }
        if (rc != 0) {
            st_err_set(err, ST_ERR_NOMEM, ST_DISP_FATAL, "cannot queue an output record");
            return -1;
        }
    }
    return 0;
}

static int apply(void *vctx, st_err_t *err)
{
    ingest_ctx_t *ctx = vctx;
    size_t n = ingest_batch_size(ctx->batch);
    char ttl[32];
    redisReply **replies;
    size_t nreplies;

    snprintf(ttl, sizeof ttl, "%lld", (long long)config.dedup_ttl_s);
    st_redis_pipe_reset(ctx->redis);
    for (size_t i = 0; i < n && config.dedup_ttl_s > 0; i++) {
        const ingest_record_t *r = ingest_batch_record(ctx->batch, i);
        if (r->verdict != INGEST_NEW)
            continue;
        const char *argv[] = {"SET", ctx->keys.data + ctx->key_offs[i], r->owner, "NX", "EX", ttl};
        if (st_redis_pipe_argv(ctx->redis, 6, argv, NULL) != 0) {
            st_err_nomem(err);
            return -1;
        }
    }
    if (st_redis_pipe_len(ctx->redis) > 0) {
        if (st_redis_exec(ctx->redis, &replies, &nreplies, err) != 0)
            return -1;
        for (size_t i = 0; i < nreplies; i++) {
            if (replies[i]->type == REDIS_REPLY_ERROR) {
                st_err_set(err, ST_ERR_REDIS, ST_DISP_FATAL, "SET: %s", replies[i]->str);
                return -1;
            }
        }
    }
    st_metric_inc(ctx->m_valid, ctx->n_valid);
    st_metric_inc(ctx->m_dup, ctx->n_dup);
    for (int k = 1; k < ST_LISTEN_REASON_COUNT; k++)
        st_metric_inc(ctx->m_invalid[k], ctx->n_invalid[k]);
    ctx->n_valid = ctx->n_dup = 0;
    memset(ctx->n_invalid, 0, sizeof ctx->n_invalid);
    return 0;
}

static int setup(st_service_t *svc, void *vctx, st_pipeline_handler_t *h, st_pipeline_opts_t *po,
                 char *errstr, size_t errstr_size)
{
    static const char *topics[1], *outs[1];
    ingest_ctx_t *ctx = vctx;
    const st_service_config_t *sc = st_service_config(svc);
    char labels[64];

    ctx->redis = st_service_redis(svc);
    ctx->prefix = sc->redis_prefix;
    ctx->listen_codec =
        st_avro_codec_new(st_service_avro(svc), "Listen", config.out_topic, errstr, errstr_size);
    if (!ctx->listen_codec)
        return -1;
    ctx->batch = ingest_batch_new(ctx->listen_codec);
    if (!ctx->batch)
        return st_errstr(errstr, errstr_size, "out of memory");

    ctx->m_valid = st_metrics_counter("stint_ingest_valid_total", NULL,
                                      "Valid listens produced to the output topic.");
    ctx->m_dup = st_metrics_counter("stint_ingest_duplicates_total", NULL,
                                    "Exact duplicates dropped (same event_id within the window).");
    for (int k = 1; k < ST_LISTEN_REASON_COUNT; k++) {
        snprintf(labels, sizeof labels, "reason=\"%s\"",
                 st_listen_reason_name((st_listen_reason_t)k));
        ctx->m_invalid[k] = st_metrics_counter("stint_ingest_invalid_total", labels,
                                               "Invalid messages sent to the dead-letter topic.");
    }
    st_log_info("ingest_config", "in=%s out=%s dlq=%s dedup_ttl_s=%lld prefix=%s", config.in_topic,
                config.out_topic, config.dlq_topic, (long long)config.dedup_ttl_s, ctx->prefix);

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
    ingest_batch_destroy(ctx->batch);
    st_avro_codec_destroy(ctx->listen_codec);
    st_buf_free(&ctx->keys);
    free(ctx->key_offs);
    free(ctx->marks);
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
