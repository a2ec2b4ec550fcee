/* main.c - stint-clusterer: keeps each user's profile features in Redis from CLOSED sessions
 * and users.profiles, assigns behaviour clusters with the current bundle's cluster model (to
 * Redis, for the predictor, and to users.clusters when they change) and re-fits k-means on a
 * schedule as an informational clustering version. Config and wiring; the logic is clu_core. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "clu_core.h"
#include "clu_store_redis.h"
#include "st_avro.h"
#include "st_bwatch.h"
#include "st_log.h"
#include "st_service.h"
#include "st_time.h"

typedef struct {
    char *sessions_topic;
    char *profiles_topic;
    char *clusters_topic;
    char *dlq_topic;
    char *model_dir;
    int64_t model_poll_ms;
    int64_t cold_min_sessions;
    int64_t median_window;
    int64_t refit_interval_s;
    int64_t refit_max_users;
    int64_t refit_min_users;
} cl_config_t;

static cl_config_t config;

#define OFF(f) offsetof(cl_config_t, f)
static const st_config_entry_t table[] = {
    {"sessions.topic", ST_CFG_STRING, "sessions", ST_CFG_NOBOUNDS, OFF(sessions_topic), false, 0,
     "input topic of SessionEvents (CLOSED ones update the profile)"},
    {"profiles.topic", ST_CFG_STRING, "users.profiles", ST_CFG_NOBOUNDS, OFF(profiles_topic), false,
     0, "input topic of UserProfiles"},
    {"clusters.topic", ST_CFG_STRING, "users.clusters", ST_CFG_NOBOUNDS, OFF(clusters_topic), false,
     0, "output topic of ClusterAssignments (on change)"},
    {"dlq.topic", ST_CFG_STRING, "users.clusters.dlq", ST_CFG_NOBOUNDS, OFF(dlq_topic), false, 0,
     "dead-letter topic of undecodable records"},
    {"model.dir", ST_CFG_STRING, "model", ST_CFG_NOBOUNDS, OFF(model_dir), false, 0,
     "model bundle directory (its cluster model assigns users; watched for new versions)"},
    {"model.poll_ms", ST_CFG_INT, "2000", 0, 3600000, OFF(model_poll_ms), false, 0,
     "how often the bundle directory is checked (0 = never)"},
    {"cold.min_sessions", ST_CFG_INT, "5", 0, 1000000, OFF(cold_min_sessions), false, 0,
     "users with fewer closed sessions go to the cold cluster (unless the bundle knows them)"},
    {"median.window", ST_CFG_INT, "101", 1, 1024, OFF(median_window), false, 0,
     "the median feature is the median of the user's last N session lengths"},
    {"refit.interval_s", ST_CFG_INT, "3600", 0, 604800, OFF(refit_interval_s), false, 0,
     "re-fit k-means on recent profiles this often (0 = never)"},
    {"refit.max_users", ST_CFG_INT, "100000", 1, 10000000, OFF(refit_max_users), false, 0,
     "recently active users' profiles kept in memory for re-fits"},
    {"refit.min_users", ST_CFG_INT, "50", 2, 10000000, OFF(refit_min_users), false, 0,
     "no re-fit with fewer profiles"},
    {NULL, 0, NULL, 0, 0, 0, false, 0, NULL},
};

typedef struct {
    st_avro_registry_t *reg; /* the service's (borrowed) */
    st_bwatch_t *model;
    clu_store_t *store;
    clu_t *core;
} cl_ctx_t;

static int setup(st_service_t *svc, void *vctx, st_pipeline_handler_t *h, st_pipeline_opts_t *po,
                 char *errstr, size_t errstr_size)
{
    static const char *topics[2], *outs[1];
    cl_ctx_t *ctx = vctx;
    const st_service_config_t *base = st_service_config(svc);
    ctx->reg = st_service_avro(svc);
    if (!(ctx->model =
              st_bwatch_new(config.model_dir, (int)config.model_poll_ms, errstr, errstr_size)))
        return -1;
    if (!(ctx->store =
              clu_store_redis_new(st_service_redis(svc), base->redis_prefix, config.sessions_topic,
                                  config.profiles_topic, (int)config.median_window))) {
        st_errstr(errstr, errstr_size, "out of memory");
        return -1;
    }
    static char instance[300]; /* "<host name>:<pid>": which instance published a re-fit */
    char host[256] = "";
    if (gethostname(host, sizeof host - 1) != 0)
        snprintf(host, sizeof host, "unknown");
    snprintf(instance, sizeof instance, "%s:%ld", host, (long)getpid());
    clu_config_t cc = {.instance = instance,
                       .sessions_topic = config.sessions_topic,
                       .profiles_topic = config.profiles_topic,
                       .clusters_topic = config.clusters_topic,
                       .cold_min_sessions = (int)config.cold_min_sessions,
                       .median_window = (int)config.median_window,
                       .refit_interval_s = (int)config.refit_interval_s,
                       .refit_max_users = (int)config.refit_max_users,
                       .refit_min_users = (int)config.refit_min_users};
    if (!(ctx->core = clu_new(&cc, ctx->store, ctx->reg, ctx->model, errstr, errstr_size)))
        return -1;
    topics[0] = config.sessions_topic;
    topics[1] = config.profiles_topic;
    po->topics = topics;
    po->ntopics = 2;
    outs[0] = config.clusters_topic;
    po->out_topics = outs;
    po->nout_topics = 1;
    po->dlq_topic = config.dlq_topic;
    po->tick_ms = 1000; /* bundle swaps and scheduled re-fits also when idle */
    h->ctx = ctx->core;
    h->process = clu_process;
    h->apply = clu_apply;
    st_log_info("clusterer_ready", "model_dir=\"%s\" model_version=%s k=%d", config.model_dir,
                st_bwatch_version(ctx->model),
                st_bwatch_bundle(ctx->model) ? st_bundle_k(st_bwatch_bundle(ctx->model)) : 0);
    return 0;
}

static void teardown(void *vctx)
{
    cl_ctx_t *ctx = vctx;
    clu_destroy(ctx->core);
    clu_store_redis_destroy(ctx->store);
    st_bwatch_destroy(ctx->model);
}

int main(int argc, char **argv)
{
    static cl_ctx_t ctx;
    st_service_def_t def = {
        "clusterer", "assigns users to behaviour clusters from their profile features",
        table,       &config,
        setup,       teardown,
        &ctx};
    return st_service_main(&def, argc, argv);
}
