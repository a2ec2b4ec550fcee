/* clu_core.h - the clusterer's batch logic: SessionEvents (CLOSED) and UserProfiles in, each
 * user's profile features kept in the store (updated incrementally, idempotent per record), the
 * user's cluster under the current bundle's clustering written to the store and, when it changes,
 * to users.clusters (ClusterAssignment); and, on a schedule, a re-fit of k-means on the profiles
 * of recently active users, published as a new clustering version. No Redis here: the state is
 * behind clu_store_t (clu_store.h: the Redis layout, the write semantics and the migration from
 * the previous layout).
 *
 * Assignment (the same rule the predictor applies, so both agree): a user the bundle was trained
 * on keeps its training cluster; a user with fewer than cold_min_sessions closed sessions is
 * "cold" (cluster = k, cold = true: the predictor uses the global network); anyone else gets the
 * nearest cluster of the bundle's cluster model for its profile features (in the bundle's
 * profile feature order). clustering_version is the bundle's model_version. Without a bundle, or
 * with a bundle without clustering, nothing is assigned. A newly swapped-in bundle re-assigns a
 * user at its next CLOSED or profile.
 *
 * Idempotency (st_pipeline.h, st_applied.h). process() reads the batch's users in one round and
 * skips records at or below their markers (applied before: their outputs are in Kafka already,
 * stint_clusterer_replayed_total); a CLOSED at or before lc, the start of the last CLOSED counted,
 * is a copy the sessionizer re-emitted after a crash and only moves the marker
 * (stint_clusterer_copies_total); OPENED records only move the marker. A user's records of one
 * topic from more than ST_APPLIED_PARTS_MAX partitions in one batch go to the dead-letter topic
 * with code ST_APPLIED_OVERFLOW_CODE (stint_clusterer_applied_overflow_total), never dropped.
 * apply() writes each user's changes with one store call. The counters above and the assignment
 * counters are added once the batch is applied, so a batch processed again counts once.
 *
 * Re-fit versions. The bundle's per-cluster networks were trained on the bundle's clusters, so a
 * re-fit clustering cannot drive them: a re-fit is informational (drift monitoring, input to the
 * next `stint train`). It is published as "<model_version>+refit-<n>" through the store
 * (store->put_refit: version, instance, k, users, inertia, features, centroids as JSON) and in
 * gauges; n comes from the store's counter (store->next_refit_seq), so no two re-fits share a
 * version across restarts and instances (a re-fit whose number cannot be had is not stored);
 * assignments and the predictor stay on the bundle's clustering until a new bundle comes. */
#ifndef CLU_CORE_H
#define CLU_CORE_H

#include <stddef.h>

#include "clu_store.h"
#include "st_avro.h"
#include "st_bwatch.h"
#include "st_pipeline.h"

typedef struct {
    const char *instance; /* names this instance in its re-fits ("host:pid"); NULL: "" */
    const char *sessions_topic;
    const char *profiles_topic;
    const char *clusters_topic;
    int cold_min_sessions;
    int median_window;    /* the store's too (clu_store_*_new) */
    int refit_interval_s; /* 0: no re-fits */
    int refit_max_users;  /* profiles kept in memory for re-fits */
    int refit_min_users;  /* fewer: no re-fit */
} clu_config_t;

typedef struct clu clu_t;

/* cfg is copied (its strings are borrowed); store, reg and model are borrowed and must outlive
 * the core. NULL with errstr on failure. */
clu_t *clu_new(const clu_config_t *cfg, clu_store_t *store, st_avro_registry_t *reg,
               st_bwatch_t *model, char *errstr, size_t errstr_size);
void clu_destroy(clu_t *c);

/* st_pipeline handler functions (ctx is the clu_t). process() swaps in a new bundle first (not
 * while a processed batch waits for its apply) and runs a due re-fit (ticks included); it fails
 * with the store's read error. apply() fails with the store's write error and may then be called
 * again, or the batch processed again. */
int clu_process(void *ctx, const st_msg_t *msgs, size_t n, st_out_t *out, st_err_t *err);
int clu_apply(void *ctx, st_err_t *err);

#endif
