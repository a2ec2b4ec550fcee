/* pred_core.h - the predictor's batch logic: SessionEvents in, Predictions (on OPENED, and
 * retractions) and PredictionOutcomes (on CLOSED) out; per-user state (idempotency markers, open
 * predictions, the clusterer's assignment) behind pred_store.h, which also gives its Redis
 * layout. No I/O here: the daemon wires the Redis store, the unit tests the in-memory one.
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
 * One batch: a single read round of the store for the batch's users; then the records in order,
 * with the batch's own earlier records overlaid in memory (a CLOSED changes the open predictions
 * the next record sees). Records at or below a user's applied marker are skipped without output:
 * their outputs are already in Kafka (st_pipeline.h, st_applied.h). apply() writes each user's
 * changes with one atomic check-and-set of its markers, so replays never double-apply. A user's
 * records from more partitions in one batch than st_applied allows are dead-lettered
 * (ST_APPLIED_OVERFLOW_CODE, stint_predictor_applied_overflow_total).
 * Copies: after a crash the sessionizer re-emits events, byte-identical, at new offsets. An event
 * for a session starting at or before lc or closed_last_ms, the OPENED of a retracted session,
 * or an OPENED whose revision is at most the one applied for its session is such a copy: no
 * output, no state, only the marker moves.
 *
 * Features: exactly training's (st_bundle_input_from_row). The recent sessions (start, length,
 * tracks, unknown share) are the newest W + 1 the OPENED carries (the sessionizer keeps the one
 * session history; session.recent_n must be at least the model's W + 1). When the OPENED carries
 * fewer sessions than the user has had (up to W + 1), or lengths only (a sessionizer state from
 * before the details), a sequence model is not asked: the prediction is the BASELINE, with a
 * warning naming session.recent_n and source="lengths" in stint_predictor_recent_source_total.
 * Mean, median, session index, gap and profile come from the OPENED record. The cluster is the
 * bundle's training cluster of the user, else the clusterer's assignment when it was made with
 * the current bundle's clustering (version equal to the model_version, not cold), else none (the
 * global network). */
#ifndef PRED_CORE_H
#define PRED_CORE_H

#include <stddef.h>

#include "pred_mae.h"
#include "pred_store.h"
#include "st_avro.h"
#include "st_bwatch.h"
#include "st_err.h"
#include "st_pipeline.h"

typedef struct {
    const char *predictions_topic;
    const char *outcomes_topic;
    int prediction_ttl_s;      /* lifetime of a stored prediction waiting for its CLOSED */
    double baseline_default_s; /* baseline of a first session when the bundle gives none */
} pc_config_t;

typedef struct pc pc_t;

/* Everything is borrowed and must outlive the core; cfg strings too. Returns NULL with errstr
 * (codecs that cannot be built). */
pc_t *pc_new(const pc_config_t *cfg, pred_store_t *store, st_avro_registry_t *reg,
             st_bwatch_t *model, pred_mae_t *mae, char *errstr, size_t errstr_size);
void pc_destroy(pc_t *pc);

/* Calls fn(arg, session_id, bundle, input) with the model input of every OPENED the model is
 * asked about, before it is asked (tests compare it with training's row; NULL fn: none). */
typedef void (*pc_input_hook_fn)(void *arg, const char *session_id, const st_bundle_t *b,
                                 const st_bundle_input_t *in);
void pc_set_input_hook(pc_t *pc, pc_input_hook_fn fn, void *arg);

/* st_pipeline handler functions (ctx is the pc_t). process() first swaps in a newly loaded
 * bundle, so a swap happens between batches. */
int pc_process(void *ctx, const st_msg_t *msgs, size_t n, st_out_t *out, st_err_t *err);
int pc_apply(void *ctx, st_err_t *err);

#endif
