/* passthrough.c - a minimal stint service for tests and bench/pipeline: copies every record of
 * in.topic to out.topic and counts it in Redis with one idempotent Lua call per record
 * (pipelined per batch). Records whose value starts with "BAD" go to the DLQ instead. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "st_service.h"

typedef struct {
    char *in_topic;
    char *out_topic;
    char *dlq_topic;
    char *counter_key;
} pt_config_t;

static pt_config_t config;

#define OFF(f) offsetof(pt_config_t, f)
static const st_config_entry_t table[] = {
    {"in.topic", ST_CFG_STRING, "pt.in", ST_CFG_NOBOUNDS, OFF(in_topic), false, 0, "input topic"},
    {"out.topic", ST_CFG_STRING, "pt.out", ST_CFG_NOBOUNDS, OFF(out_topic), false, 0,
     "output topic"},
    {"dlq.topic", ST_CFG_STRING, "pt.dlq", ST_CFG_NOBOUNDS, OFF(dlq_topic), false, 0,
     "dead-letter topic"},
    {"counter.key", ST_CFG_STRING, "pt:count", ST_CFG_NOBOUNDS, OFF(counter_key), false, 0,
     "Redis counter; its idempotency markers live in <key>:applied"},
    {NULL, 0, NULL, 0, 0, 0, false, 0, NULL},
};

/* KEYS[1] counter, KEYS[2] hash partition -> last applied offset; ARGV[1] partition, ARGV[2]
 * offset. Applies at most once per (partition, offset): a replay after a crash is skipped. */
static const char count_lua[] =
    "local last = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '-1')\n"
    "if tonumber(ARGV[2]) <= last then return 0 end\n"
    "redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])\n"
    "redis.call('INCR', KEYS[1])\n"
    "return 1\n";

typedef struct {
    st_redis_t *redis;
    st_redis_script_t *script;
    char applied_key[512];
    struct {
        int32_t partition;
        int64_t offset;
    } * pending;
    size_t npending, cap;
} pt_ctx_t;

static int process(void *vctx, const st_msg_t *msgs, size_t n, st_out_t *out, st_err_t *err)
{
    pt_ctx_t *ctx = vctx;
    if (n > ctx->cap) {
        void *p = realloc(ctx->pending, n * sizeof *ctx->pending);
        if (!p) {
            st_err_nomem(err);
            return -1;
        }
        ctx->pending = p;
        ctx->cap = n;
    }
    ctx->npending = 0;
    for (size_t i = 0; i < n; i++) {
        const st_msg_t *m = &msgs[i];
        int rc;
        if (m->value_len >= 3 && memcmp(m->value, "BAD", 3) == 0)
            rc = st_out_dead_letter(out, m, "bad_record", "value starts with BAD");
        else
            rc = st_out_produce(out, config.out_topic, m->key, m->key_len, m->value, m->value_len);
        if (rc != 0) {
            st_err_nomem(err);
            return -1;
        }
        ctx->pending[ctx->npending].partition = m->partition;
        ctx->pending[ctx->npending].offset = m->offset;
        ctx->npending++;
    }
    return 0;
}

static int apply(void *vctx, st_err_t *err)
{
    pt_ctx_t *ctx = vctx;
    char part[16], off[32];
    const char *argv[4];
    redisReply **replies;
    size_t nreplies;

    if (ctx->npending == 0)
        return 0;
    st_redis_pipe_reset(ctx->redis);
    for (size_t i = 0; i < ctx->npending; i++) {
        snprintf(part, sizeof part, "%d", (int)ctx->pending[i].partition);
        snprintf(off, sizeof off, "%lld", (long long)ctx->pending[i].offset);
        argv[0] = config.counter_key;
        argv[1] = ctx->applied_key;
        argv[2] = part;
        argv[3] = off;
        st_redis_pipe_evalsha(ctx->redis, ctx->script, 2, 2, argv, NULL);
    }
    if (st_redis_exec(ctx->redis, &replies, &nreplies, err) != 0)
        return -1;
    for (size_t i = 0; i < nreplies; i++) {
        if (replies[i]->type == REDIS_REPLY_ERROR) {
            st_err_set(err, ST_ERR_REDIS, ST_DISP_FATAL, "count script: %s", replies[i]->str);
            return -1;
        }
    }
    return 0;
}

static int setup(st_service_t *svc, void *vctx, st_pipeline_handler_t *h, st_pipeline_opts_t *po,
                 char *errstr, size_t errstr_size)
{
    static const char *topics[1], *outs[1];
    pt_ctx_t *ctx = vctx;
    (void)errstr;
    (void)errstr_size;
    ctx->redis = st_service_redis(svc);
    ctx->script = st_redis_script(ctx->redis, count_lua);
    snprintf(ctx->applied_key, sizeof ctx->applied_key, "%s:applied", config.counter_key);
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
    pt_ctx_t *ctx = vctx;
    free(ctx->pending);
}

int main(int argc, char **argv)
{
    static pt_ctx_t ctx;
    st_service_def_t def = {"passthrough", "copies in.topic to out.topic, counting in Redis",
                            table,         &config,
                            setup,         teardown,
                            &ctx};
    return st_service_main(&def, argc, argv);
}
