/* main.c - stint-predictor: SessionEvents in, a Prediction per OPENED session (model bundle, or
 * the baseline until one is loaded) and a PredictionOutcome per CLOSED one, the live MAE on
 * /metrics. Config table and wiring; the logic is in pred_core and pred_mae, the bundle watch in
 * st_bwatch. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pred_core.h"
#include "pred_mae.h"
#include "st_avro.h"
#include "st_bwatch.h"
#include "st_log.h"
#include "st_service.h"
#include "st_time.h"

typedef struct {
    char *in_topic;
    char *predictions_topic;
    char *outcomes_topic;
    char *dlq_topic;
    char *model_dir;
    int64_t model_poll_ms;
    int64_t prediction_ttl_s;
    double baseline_default_s;
    int64_t mae_window;
} pr_config_t;

static pr_config_t config;

#define OFF(f) offsetof(pr_config_t, f)
static const st_config_entry_t table[] = {
    {"in.topic", ST_CFG_STRING, "sessions", ST_CFG_NOBOUNDS, OFF(in_topic), false, 0,
     "input topic of SessionEvents"},
    {"predictions.topic", ST_CFG_STRING, "predictions", ST_CFG_NOBOUNDS, OFF(predictions_topic),
     false, 0, "output topic of Predictions"},
    {"outcomes.topic", ST_CFG_STRING, "predictions.outcomes", ST_CFG_NOBOUNDS, OFF(outcomes_topic),
     false, 0, "output topic of PredictionOutcomes"},
    {"dlq.topic", ST_CFG_STRING, "predictions.dlq", ST_CFG_NOBOUNDS, OFF(dlq_topic), false, 0,
     "dead-letter topic of undecodable SessionEvents"},
    {"model.dir", ST_CFG_STRING, "model", ST_CFG_NOBOUNDS, OFF(model_dir), false, 0,
     "model bundle directory from `stint train` (watched; a newer bundle is swapped in)"},
    {"model.poll_ms", ST_CFG_INT, "2000", 0, 3600000, OFF(model_poll_ms), false, 0,
     "how often the bundle directory is checked for a new version (0 = never)"},
    {"prediction.ttl_s", ST_CFG_INT, "604800", 60, 31536000, OFF(prediction_ttl_s), false, 0,
     "lifetime of a stored prediction waiting for its CLOSED event"},
    {"baseline.default_s", ST_CFG_DOUBLE, "1800", 0, 1e9, OFF(baseline_default_s), false, 0,
     "baseline of a user's first session when the bundle has no metrics.global_median_s"},
    {"mae.window", ST_CFG_INT, "1000", 1, 10000000, OFF(mae_window), false, 0,
     "outcomes in the rolling MAE gauges"},
    {NULL, 0, NULL, 0, 0, 0, false, 0, NULL},
};

typedef struct {
    st_avro_registry_t *reg; /* the service's (borrowed) */
    st_bwatch_t *model;
    pred_mae_t *mae;
    pred_store_t *store;
    pc_t *core;
} pr_ctx_t;

static int setup(st_service_t *svc, void *vctx, st_pipeline_handler_t *h, st_pipeline_opts_t *po,
                 char *errstr, size_t errstr_size)
{
    static const char *topics[1], *outs[2];
    pr_ctx_t *ctx = vctx;
    const st_service_config_t *base = st_service_config(svc);
    ctx->reg = st_service_avro(svc);
    if (!(ctx->model =
              st_bwatch_new(config.model_dir, (int)config.model_poll_ms, errstr, errstr_size)))
        return -1;
    if (!(ctx->mae = pred_mae_new((size_t)config.mae_window)))
        return st_errstr(errstr, errstr_size, "out of memory");
    if (!(ctx->store =
              pred_store_redis_new(st_service_redis(svc), base->redis_prefix, config.in_topic)))
        return st_errstr(errstr, errstr_size, "out of memory");
    pc_config_t pcfg = {.predictions_topic = config.predictions_topic,
                        .outcomes_topic = config.outcomes_topic,
                        .prediction_ttl_s = (int)config.prediction_ttl_s,
                        .baseline_default_s = config.baseline_default_s};
    ctx->core = pc_new(&pcfg, ctx->store, ctx->reg, ctx->model, ctx->mae, errstr, errstr_size);
    if (!ctx->core)
        return -1;
    topics[0] = config.in_topic;
    po->topics = topics;
    po->ntopics = 1;
    outs[0] = config.predictions_topic;
    outs[1] = config.outcomes_topic;
    po->out_topics = outs;
    po->nout_topics = 2;
    po->dlq_topic = config.dlq_topic;
    /* Ticks give an idle predictor a chance to swap in a new bundle between batches. */
    po->tick_ms = 1000;
    h->ctx = ctx->core;
    h->process = pc_process;
    h->apply = pc_apply;
    st_log_info("predictor_ready", "model_dir=\"%s\" model_version=%s in=%s out=%s,%s",
                config.model_dir, st_bwatch_version(ctx->model), config.in_topic,
                config.predictions_topic, config.outcomes_topic);
    return 0;
}

static void teardown(void *vctx)
{
    pr_ctx_t *ctx = vctx;
    pc_destroy(ctx->core);
    pred_store_redis_destroy(ctx->store);
    pred_mae_destroy(ctx->mae);
    st_bwatch_destroy(ctx->model);
}

int main(int argc, char **argv)
{
    static pr_ctx_t ctx;
    st_service_def_t def = {"predictor",
                            "predicts each session's length when it opens; joins the outcome when "
                            "it closes",
                            table,
                            &config,
                            setup,
                            teardown,
                            &ctx};
    return st_service_main(&def, argc, argv);
}
