/* clu_core.h - the clusterer's batch logic: SessionEvents (CLOSED) and UserProfiles in, each
 * user's profile features kept in Redis (updated incrementally, idempotent per record), the
 * user's cluster under the current bundle's clustering written to Redis and, when it changes,
 * to users.clusters (ClusterAssignment); and, on a schedule, a re-fit of k-means on the profiles
 * of recently active users, published as a new clustering version.
 *
 * Assignment (the same rule the predictor applies, so both agree): a user the bundle was trained
 * on keeps its training cluster; a user with fewer than cold_min_sessions closed sessions is
 * "cold" (cluster = k, cold = true: the predictor uses the global network); anyone else gets the
 * nearest cluster of the bundle's cluster model for its profile features (in the bundle's
 * profile feature order). clustering_version is the bundle's model_version. Without a bundle, or
 * with a bundle without clustering, nothing is assigned. A newly swapped-in bundle re-assigns a
 * user at its next record.
 *
 * Re-fit versions. The bundle's per-cluster networks were trained on the bundle's clusters, so a
 * re-fit clustering cannot drive them: a re-fit is informational (drift monitoring, input to the
 * next `stint train`). It is published as "<model_version>+refit-<n>" in Redis
 * (<prefix>:clustering:refit: version, k, users, inertia, features, centroids as JSON) and in
 * gauges; assignments and the predictor stay on the bundle's clustering until a new bundle comes.
 *
 * Redis, per user (hash tag {<user>}):
 *   <prefix>:u:{<user>}:clu:applied:<topic>  hash partition -> last applied offset
 *   <prefix>:u:{<user>}:clu:prof              hash n, sum_s, max_s, tracks, gender, age, country,
 *                                             registered_s
 *   <prefix>:u:{<user>}:clu:len               list of the last median_window lengths (the median
 *                                             feature is the median of these)
 *   <prefix>:u:{<user>}:cluster               hash cluster, cold (0/1), version (read by the
 *                                             predictor) */
#ifndef CLU_CORE_H
#define CLU_CORE_H

#include <stddef.h>

#include "st_avro.h"
#include "st_bwatch.h"
#include "st_pipeline.h"
#include "st_redis.h"

typedef struct {
    const char *redis_prefix;
    const char *sessions_topic;
    const char *profiles_topic;
    const char *clusters_topic;
    const char *model_dir; /* for countries.txt (the country feature) */
    int cold_min_sessions;
    int median_window;
    int refit_interval_s; /* 0: no re-fits */
    int refit_max_users;  /* profiles kept in memory for re-fits */
    int refit_min_users;  /* fewer: no re-fit */
} clu_config_t;

typedef struct clu clu_t;

/* Everything is borrowed and must outlive the core. NULL with errstr on failure. */
clu_t *clu_new(const clu_config_t *cfg, st_redis_t *redis, st_avro_registry_t *reg,
               st_bwatch_t *model, char *errstr, size_t errstr_size);
void clu_destroy(clu_t *c);

/* st_pipeline handler functions (ctx is the clu_t). process() swaps in a new bundle first and
 * runs a due re-fit (ticks included). */
int clu_process(void *ctx, const st_msg_t *msgs, size_t n, st_out_t *out, st_err_t *err);
int clu_apply(void *ctx, st_err_t *err);

#endif
