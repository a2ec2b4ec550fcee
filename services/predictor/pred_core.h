/* pred_core.h - the predictor's batch logic: SessionEvents in, Prediction (on OPENED) and
 * PredictionOutcome (on CLOSED) out, per-user history and stored predictions in Redis.
 *
 * Redis, per user (one hash tag, so Redis Cluster keeps a user on one shard):
 *   <prefix>:u:{<user>}:pred           hash: "a:<in_topic>:<partition>" -> last applied input
 *                                      offset; "o" -> the open session's prediction,
 *                                      "<made_at_s> <sid_len>:<sid><predicted_s> <baseline_s>
 *                                      <cluster> M|B <model_version>" (one at a time: the
 *                                      sessionizer closes a session before it opens the next);
 *                                      "lc" -> start_ms of the last CLOSED appended to the history
 *   <prefix>:u:{<user>}:pred:hist      list of the last history_max CLOSED sessions, oldest first,
 *                                      each "start_s length_s track_count unknown_share"
 *   <prefix>:u:{<user>}:cluster        read only: the clusterer's assignment (hash cluster,
 *                                      cold, version)
 *
 * One batch: a single pipelined read round (per user: the hash, the history, the cluster); then
 * the records in order, with the batch's own earlier records overlaid in memory (a CLOSED extends
 * the history an OPENED later in the batch sees and joins the prediction of an OPENED earlier in
 * it). A CLOSED joins the open prediction when the session ids match and it is not older than
 * prediction_ttl_s. Records at or below a user's applied marker are skipped without output: their
 * outputs are already in Kafka (st_pipeline.h). apply() runs one Lua call per user that checks
 * and moves the user's markers and writes the batch's changes, so replays never double-apply.
 * Copies: after a crash the sessionizer re-emits events, byte-identical, at new offsets. An event
 * for a session at or before lc, or the OPENED of the session already open, is such a copy: no
 * output, no state, only the marker moves (and the Lua appends no session at or before lc).
 *
 * Features. Recent sessions come from the Redis history (start, length, tracks, unknown share);
 * when it holds fewer than the session's index asks for (the predictor started after the user's
 * first sessions) the OPENED record's recent_lengths_s are used instead (lengths only). Mean,
 * median, session index, gap and profile come from the OPENED record. The cluster is the bundle's
 * training cluster of the user, else the clusterer's assignment when it was made with the
 * current bundle's clustering (version equal to the model_version, not cold), else none (the
 * global network). */
#ifndef PRED_CORE_H
#define PRED_CORE_H

#include <stddef.h>

#include "pred_mae.h"
#include "st_avro.h"
#include "st_bwatch.h"
#include "st_err.h"
#include "st_pipeline.h"
#include "st_redis.h"

typedef struct {
    const char *redis_prefix;
    const char *in_topic; /* names the idempotency markers: offsets are per topic */
    const char *predictions_topic;
    const char *outcomes_topic;
    int history_max;           /* CLOSED sessions kept per user (>= the bundle's W + 1) */
    int prediction_ttl_s;      /* lifetime of a stored prediction waiting for its CLOSED */
    double baseline_default_s; /* baseline of a first session when the bundle gives none */
} pc_config_t;

typedef struct pc pc_t;

/* Everything is borrowed and must outlive the core; cfg strings too. Returns NULL with errstr
 * (codecs that cannot be built). */
pc_t *pc_new(const pc_config_t *cfg, st_redis_t *redis, st_avro_registry_t *reg, st_bwatch_t *model,
             pred_mae_t *mae, char *errstr, size_t errstr_size);
void pc_destroy(pc_t *pc);

/* st_pipeline handler functions (ctx is the pc_t). process() first swaps in a newly loaded
 * bundle, so a swap happens between batches. */
int pc_process(void *ctx, const st_msg_t *msgs, size_t n, st_out_t *out, st_err_t *err);
int pc_apply(void *ctx, st_err_t *err);

#endif
