/* pred_core.h - the predictor's batch logic: SessionEvents in, Predictions (on OPENED, and
 * retractions) and PredictionOutcomes (on CLOSED) out, per-user history and open predictions in
 * Redis.
 *
 * Redis, per user (one hash tag, so Redis Cluster keeps a user on one shard):
 *   <prefix>:u:{<user>}:pred           hash: "a:<in_topic>:<partition>" -> last applied input
 *                                      offset; "lc" -> start_ms of the last CLOSED appended to
 *                                      the history; "os" -> the open predictions (pred_open.h):
 *                                      "<closed_last_ms>\n" then per announced, not yet closed
 *                                      session "L <made_s> <start_ms> <revision> <sid_len>:<sid>
 *                                      <predicted_s> <baseline_s> <cluster> M|B <model_version>"
 *                                      (at most PRED_OPEN_MAX = 8, the oldest start dropped with
 *                                      stint_predictor_open_dropped_total), and per retracted
 *                                      session id "R <start_ms> <sid_len>:<sid>" (at most 8);
 *                                      closed_last_ms is the last listen (CLOSED last_start_ms)
 *                                      of the closed past. The previous layout's single "o"
 *                                      ("<made_s> <sid_len>:<sid><payload>") is still read, and
 *                                      removed at the user's next write.
 *   <prefix>:u:{<user>}:pred:hist      list of the last history_max CLOSED sessions, oldest first,
 *                                      each "start_s length_s track_count unknown_share"
 *   <prefix>:u:{<user>}:cluster        read only: the clusterer's assignment (hash cluster,
 *                                      cold, version)
 *
 * Several sessions of a user may be open at once: the sessionizer announces a session (OPENED)
 * at its first listen, before the previous one is CLOSED after the reorder grace. Per record:
 *   OPENED  first every open prediction named in retracted_session_ids is published again with
 *           retracted = true and revision + 1, and dropped (the id is remembered as retracted);
 *           then the session is predicted and published with the event's revision (a higher
 *           one replaces a lower one), replacing the session's open prediction.
 *   CLOSED  joins the session's open prediction (its latest revision; not older than
 *           prediction_ttl_s) into an outcome, and retracts every other open prediction whose
 *           start lies in [start_ms, last_start_ms]: those listens belong to this session.
 * One batch: a single pipelined read round (per user: the hash, the history, the cluster); then
 * the records in order, with the batch's own earlier records overlaid in memory (a CLOSED extends
 * the history an OPENED later in the batch sees, and changes the open predictions the next
 * record sees). Records at or below a user's applied marker are skipped without output: their
 * outputs are already in Kafka (st_pipeline.h). apply() runs one Lua call per user that checks
 * and moves the user's markers and writes the batch's changes, so replays never double-apply.
 * Copies: after a crash the sessionizer re-emits events, byte-identical, at new offsets. An event
 * for a session starting at or before lc or closed_last_ms, the OPENED of a retracted session,
 * or an OPENED whose revision is at most the one applied for its session is such a copy: no
 * output, no state, only the marker moves (and the Lua appends no session at or before lc).
 *
 * Features. Recent sessions (start, length, tracks, unknown share) come from the OPENED's
 * recent_* details when they are complete, preceded by older sessions of the Redis history when
 * the model wants more than the event carries and the history reaches the event's oldest one;
 * else from the Redis history when its newest sessions are the event's (with an early OPENED the
 * previous session may not be in it yet); else the event's recent_lengths_s only
 * (stint_predictor_recent_source_total says which). A sequence model is only shown complete
 * inputs, as in training: in the lengths-only case the prediction is the BASELINE (with a
 * warning naming session.recent_n), never a model fed zeros for the missing details. Mean, median,
 * session index, gap and profile come from the OPENED record. The cluster is the bundle's training
 * cluster of the user, else the clusterer's assignment when it was made with the current bundle's
 * clustering (version equal to the model_version, not cold), else none (the global network). */
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
