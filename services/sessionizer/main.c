/* main.c - stint-sessionizer: listens.enriched (EnrichedListen) -> sessions (SessionEvent OPENED /
 * CLOSED), per DESIGN.md "Sessions" and the batch protocol of st_sessionizer.h, with the user
 * states in Redis (sz_store.h). Late records go to sessions.late, undecodable ones to the DLQ.
 *
 * One batch: decode -> push (late/invalid sorted out) -> prepare (one pipelined read round) ->
 * profile join for OPENED events (one pipelined HGETALL round) -> events produced and
 * acknowledged by the pipeline -> apply: finish (one pipelined EVALSHA round) -> commit points
 * (offset + stream time per partition) saved in Redis and held as the stored offsets. */
#include <math.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "st_avro.h"
#include "st_listen.h"
#include "st_log.h"
#include "st_metrics.h"
#include "st_records.h"
#include "st_service.h"
#include "st_session.h"
#include "st_sessionizer.h"
#include "st_time.h"
#include "sz_store.h"

typedef struct {
    char *in_topic;
    char *out_topic;
    char *late_topic;
    char *dlq_topic;
    int64_t gap_s;
    char *ref;
    int64_t grace_ms;
    int64_t recent_n;
    int64_t idle_flush_ms;
    int64_t idle_lag_ms;
    bool early_open;
    bool profile_lookup;
    int64_t fault_kill_before_apply;
    int64_t clock_quorum;
    int64_t clock_recent;
    int64_t ahead_max_s;
} sz_config_t;

static sz_config_t config;

#define OFF(f) offsetof(sz_config_t, f)
static const st_config_entry_t table[] = {
    {"in.topic", ST_CFG_STRING, "listens.enriched", ST_CFG_NOBOUNDS, OFF(in_topic), false, 0,
     "input topic (Avro EnrichedListen, keyed by user_id)"},
    {"out.topic", ST_CFG_STRING, "sessions", ST_CFG_NOBOUNDS, OFF(out_topic), false, 0,
     "output topic (Avro SessionEvent, keyed by user_id)"},
    {"late.topic", ST_CFG_STRING, "sessions.late", ST_CFG_NOBOUNDS, OFF(late_topic), false, 0,
     "records later than the grace (original bytes)"},
    {"dlq.topic", ST_CFG_STRING, "sessions.dlq", ST_CFG_NOBOUNDS, OFF(dlq_topic), false, 0,
     "dead-letter topic (Avro DeadLetter)"},
    {"session.gap_s", ST_CFG_INT, "1800", 0, 8640000, OFF(gap_s), false, 0,
     "idle gap that ends a session, seconds"},
    {"session.ref", ST_CFG_STRING, "end", ST_CFG_NOBOUNDS, OFF(ref), false, 0,
     "gap measured from the previous track's end or start (end|start)"},
    {"session.grace_ms", ST_CFG_INT, "60000", 0, 86400000, OFF(grace_ms), false, 0,
     "reorder grace in event time; records older than stream time - grace are late"},
    {"session.recent_n", ST_CFG_INT, "32", 1, ST_SESSION_RECENT_MAX, OFF(recent_n), false, 0,
     "past sessions carried in OPENED events; a sequence or gbt model of window W needs W + 1 "
     "(with "
     "fewer the predictor completes them from its history, or serves the baseline)"},
    {"idle.flush_ms", ST_CFG_INT, "1000", 0, 3600000, OFF(idle_flush_ms), false, 0,
     "live mode: every this many ms, the stream time of each caught-up partition advances by the "
     "time elapsed (monotonic clock) since its last record, so idle sessions close without new "
     "input; a partition with a backlog is not advanced, so replays are safe (0 = off)"},
    {"idle.lag_ms", ST_CFG_INT, "300000", 0, 86400000, OFF(idle_lag_ms), false, 0,
     "live mode: the wall clock moves an idle partition's stream time only after this long, so "
     "an upstream stall (ingest, enricher) shorter than this plus the grace makes no listen late; "
     "idle sessions close this much later"},
    {"clock.quorum", ST_CFG_INT, "3", 1, ST_SESSIONIZER_CLOCK_MAX, OFF(clock_quorum), false, 0,
     "a partition's stream time moves to a time only once this many of its recently seen users "
     "have listened up to it (1 = the largest listen time; see docs/sessionizer.md)"},
    {"clock.recent", ST_CFG_INT, "64", 0, 1000000, OFF(clock_recent), false, 0,
     "a user counts for its partition's clock while one of its listens is among the partition's "
     "last this many records"},
    {"clock.ahead_max_s", ST_CFG_INT, "604800", 0, 315360000, OFF(ahead_max_s), false, 0,
     "a listen more than this after its partition's stream time goes to the DLQ "
     "(ahead_of_stream_time) instead of waiting for the clock; 0 = no bound"},
    {"session.early_open", ST_CFG_BOOL, "true", ST_CFG_NOBOUNDS, OFF(early_open), false, 0,
     "emit OPENED at a session's first listen, with corrections if a listen within the grace "
     "changes it (false: OPENED once the grace has passed)"},
    {"profile.lookup", ST_CFG_BOOL, "true", ST_CFG_NOBOUNDS, OFF(profile_lookup), false, 0,
     "join OPENED events with the profile the clusterer keeps in "
     "<redis.prefix>:u:{<user>}:clu:prof "
     "(HMGET)"},
    {"fault.kill_before_apply", ST_CFG_INT, "0", 0, 1000000, OFF(fault_kill_before_apply), false, 0,
     "crash tests only: SIGKILL itself at the N-th batch with events, after they are delivered "
     "and before the states are written (0 = off)"},
    {NULL, 0, NULL, 0, 0, 0, false, 0, NULL},
};

enum { DISP_PUSHED = 0, DISP_LATE, DISP_DLQ };

/* One consumed record after decoding (user id in the batch arena). */
typedef struct {
    int disp;
    st_sessionizer_record_t rec;
    size_t user_off;
    size_t text_off; /* DLQ reason text in the arena */
    const char *code;
} item_t;

typedef struct {
    int32_t id;
    bool need_init; /* assigned, stream time not restored yet */
    bool saved;     /* last commit point written to Redis */
    sz_commit_point_t last;
    /* The offset after the partition's last record pushed, and the one last written to Redis
     * with a commit point (-1 = none), for `stint lag --sessionizer`. */
    int64_t read_next, read_saved;
    /* Live mode: the stream time after the partition's last record, and when (monotonic). */
    bool has_base;
    int64_t base_stream_ms, base_mono_ms;
    /* Late records since the last log line about them (one line per partition per 10 s). */
    uint64_t late_unlogged;
    int64_t late_logged_mono_ms;
    st_metric_t *m_stream; /* stint_sessionizer_stream_time_seconds{topic,partition} */
} part_t;

typedef struct {
    st_service_t *svc;
    st_avro_registry_t *reg; /* the service's (borrowed) */
    st_avro_codec_t *in_codec, *out_codec;
    sz_store_t *store;
    st_sessionizer_t *sz;
    part_t *parts;
    size_t n_parts, cap_parts;
    /* the current batch */
    bool in_batch, prepared;
    item_t *items;
    size_t cap_items;
    st_buf_t arena;
    st_out_t *out;
    st_sessionizer_user_t *prof_users;
    sz_profile_t *profiles;
    size_t cap_prof;
    sz_commit_point_t *points;
    size_t cap_points;
    st_buf_t enc;
    st_sessionizer_stats_t last_stats;
    int64_t batches_with_events;
    uint64_t last_state_bytes;
    st_metric_t *m_listens, *m_late, *m_invalid, *m_opened, *m_closed, *m_idle, *m_stale, *m_open,
        *m_state_bytes, *m_buffered, *m_dups, *m_skips, *m_announced, *m_corrections,
        *m_retractions;
} sz_ctx_t;

static int grow(void **arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap : 64;
    while (c < need)
        c *= 2;
    void *p = realloc(*arr, c * elem);
    if (!p)
        return -1;
    *arr = p;
    *cap = c;
    return 0;
}

static part_t *part_get(sz_ctx_t *ctx, int32_t id, bool create)
{
    for (size_t i = 0; i < ctx->n_parts; i++)
        if (ctx->parts[i].id == id)
            return &ctx->parts[i];
    if (!create ||
        grow((void **)&ctx->parts, &ctx->cap_parts, ctx->n_parts + 1, sizeof *ctx->parts) != 0)
        return NULL;
    part_t *p = &ctx->parts[ctx->n_parts++];
    memset(p, 0, sizeof *p);
    p->id = id;
    p->read_next = p->read_saved = -1;
    /* Topic names are [a-zA-Z0-9._-]: nothing to escape in the label value. */
    char labels[320];
    snprintf(labels, sizeof labels, "topic=\"%s\",partition=\"%d\"", config.in_topic, (int)id);
    p->m_stream = st_metrics_gauge(
        "stint_sessionizer_stream_time_seconds", labels,
        "The partition's stream time (event time, Unix seconds): listens older than it less the "
        "grace are late, and sessions close as it passes their deadline. NaN until known and "
        "once the partition is no longer assigned.");
    st_metric_set(p->m_stream, NAN);
    return p;
}

/* The stream time gauges of the partitions held, after a batch's records or a live advance. */
static void show_stream_times(sz_ctx_t *ctx)
{
    for (size_t i = 0; i < ctx->n_parts; i++) {
        int64_t t;
        part_t *p = &ctx->parts[i];
        st_metric_set(p->m_stream,
                      !p->need_init && st_sessionizer_stream_time(ctx->sz, p->id, &t) == 0
                          ? (double)t / 1000.0
                          : NAN);
    }
}

static void on_assign(void *vctx, const rd_kafka_topic_partition_list_t *parts)
{
    sz_ctx_t *ctx = vctx;
    for (int i = 0; i < parts->cnt; i++) {
        part_t *p = part_get(ctx, parts->elems[i].partition, true);
        if (!p) {
            st_log_error("assign_failed", "partition=%d error=\"out of memory\"",
                         (int)parts->elems[i].partition);
            continue;
        }
        p->need_init = true;
        p->saved = false;
        p->read_next = p->read_saved = -1; /* what an earlier assignment read is not ours */
    }
}

static void on_revoke(void *vctx, const rd_kafka_topic_partition_list_t *parts)
{
    sz_ctx_t *ctx = vctx;
    for (int i = 0; i < parts->cnt; i++) {
        int32_t id = parts->elems[i].partition;
        st_sessionizer_revoke(ctx->sz, id);
        part_t *p = part_get(ctx, id, false);
        if (p) {
            st_metric_set(p->m_stream, NAN); /* the new owner reports it */
            *p = ctx->parts[--ctx->n_parts];
        }
    }
}

/* Restores the clock of newly assigned partitions from the commit point at the offset the
 * consumer resumes from, loading their deadline sets. That offset is the partition's first record
 * in a batch. In live mode a partition without one is taken when it is caught up at the group's
 * commit (st_out_resume_commit: its next record will have that offset), with the point there, so
 * that the wall clock closes the sessions it had open (a quiet partition after a restart); any
 * other waits for its first record. Never with an empty clock in place of a saved one: its first
 * records would build a new clock from few users, whose stream time one early listen could set,
 * making the other users' replayed listens late (a first run that had the whole clock decided them
 * otherwise). */
static int init_partitions(sz_ctx_t *ctx, const st_msg_t *msgs, size_t n, st_out_t *out,
                           st_err_t *err)
{
    size_t np = 0;
    for (size_t i = 0; i < ctx->n_parts; i++) {
        part_t *p = &ctx->parts[i];
        if (!p->need_init)
            continue;
        const st_msg_t *first = NULL;
        for (size_t k = 0; k < n && !first; k++)
            if (msgs[k].partition == p->id)
                first = &msgs[k];
        int64_t at = first ? first->offset : -1;
        if (!first && config.idle_flush_ms > 0 &&
            st_out_resume_commit(out, config.in_topic, p->id, &at) != 0)
            at = -1;
        if (at < 0)
            continue;
        if (grow((void **)&ctx->points, &ctx->cap_points, np + 1, sizeof *ctx->points) != 0) {
            st_err_nomem(err);
            return -1;
        }
        ctx->points[np++] = (sz_commit_point_t){.partition = p->id, .offset = at};
    }
    size_t nq = np; /* every point has the offset its partition resumes from */
    if (nq > 0 && sz_store_load_stream_times(ctx->store, ctx->points, nq, err) != 0)
        return -1;
    for (size_t i = 0; i < ctx->n_parts; i++) {
        part_t *p = &ctx->parts[i];
        if (!p->need_init)
            continue;
        const sz_commit_point_t *pt = NULL;
        for (size_t k = 0; k < nq && !pt; k++)
            if (ctx->points[k].partition == p->id)
                pt = &ctx->points[k];
        if (!pt)
            continue;
        bool has = pt->clock.has_time;
        int64_t t = has ? pt->clock.stream_time_ms : 0;
        if (st_sessionizer_assign_clock(ctx->sz, p->id, &pt->clock, err) != 0)
            return -1;
        p->need_init = false;
        p->has_base = has;
        p->base_stream_ms = t;
        p->base_mono_ms = st_time_mono_ms();
        st_log_info("partition_resumed", "partition=%d offset=%lld stream_time_ms=%s%lld",
                    (int)p->id, (long long)pt->offset, has ? "" : "none:", (long long)t);
    }
    return 0;
}

/* Decodes every record of the batch into ctx->items (nothing is pushed yet, so a retriable
 * decode error, e.g. an unreachable schema registry, can simply retry the batch). */
static int decode_all(sz_ctx_t *ctx, const st_msg_t *msgs, size_t n, st_err_t *err)
{
    st_buf_reset(&ctx->arena);
    if (grow((void **)&ctx->items, &ctx->cap_items, n, sizeof *ctx->items) != 0)
        goto nomem;
    for (size_t i = 0; i < n; i++) {
        item_t *it = &ctx->items[i];
        memset(it, 0, sizeof *it);
        it->rec.partition = msgs[i].partition;
        it->rec.offset = msgs[i].offset;
        st_rec_enriched_t v;
        st_err_t derr = {0};
        if (st_rec_enriched_decode(ctx->in_codec, msgs[i].value, msgs[i].value_len, &v, &derr) !=
            0) {
            if (derr.retriable) {
                *err = derr;
                return -1;
            }
            it->disp = DISP_DLQ;
            it->code = "invalid";
            it->text_off = ctx->arena.len;
            if (st_buf_append(&ctx->arena, derr.text, strlen(derr.text) + 1) != 0)
                goto nomem;
            continue;
        }
        const st_rec_listen_t *l = &v.listen;
        int64_t t_ms = l->listened_at_ms;
        if (msgs[i].timestamp_ms > 0 && t_ms > msgs[i].timestamp_ms + ST_LISTEN_FUTURE_MS) {
            /* Ingest rejects these; this guards the stream time against other producers. */
            char why[160];
            snprintf(why, sizeof why,
                     "listened_at_ms %lld is more than 10 min after the record's time %lld",
                     (long long)t_ms, (long long)msgs[i].timestamp_ms);
            it->disp = DISP_DLQ;
            it->code = "future_timestamp";
            it->text_off = ctx->arena.len;
            if (st_buf_append(&ctx->arena, why, strlen(why) + 1) != 0)
                goto nomem;
            continue;
        }
        it->user_off = ctx->arena.len;
        if (st_buf_append(&ctx->arena, l->user_id.ptr, l->user_id.len) != 0 ||
            st_buf_append(&ctx->arena, "", 1))
            goto nomem;
        it->rec.user_id_len = l->user_id.len;
        it->rec.listened_at_ms = t_ms;
        it->rec.duration_ms = !v.duration_ms.set || v.duration_ms.v < 0 ? 0 : v.duration_ms.v;
        it->rec.identity_hash = st_session_identity_hash(l->artist_name.ptr, l->artist_name.len,
                                                         l->track_name.ptr, l->track_name.len);
    }
    return 0;
nomem:
    st_err_nomem(err);
    return -1;
}

/* Live mode. The clock of each partition is its stream time (event time); while the partition is
 * caught up (no records left behind the last fetch), the stream time also moves on with the time
 * elapsed since its last record, less idle.lag_ms, measured on the monotonic clock, so idle
 * sessions close in wall time. A partition with a backlog is never advanced: a restart or a
 * replay of old data keeps its event time, and no record of it turns late because of the wall
 * clock. The lag covers what the sessionizer cannot see: an upstream service that stalls makes
 * the partition look idle and caught up; its listens, delayed by the stall, are not late as long
 * as the stall is shorter than the lag plus the grace. A wall clock stepped by NTP moves nothing
 * (monotonic); a producer of old data slower than real time for longer than the lag would. */
static void live_advance(sz_ctx_t *ctx, st_out_t *out)
{
    int64_t now = st_time_mono_ms();
    for (size_t i = 0; i < ctx->n_parts; i++) {
        part_t *p = &ctx->parts[i];
        int64_t lag;
        if (p->need_init || !p->has_base || st_out_lag(out, config.in_topic, p->id, &lag) != 0 ||
            lag > 0)
            continue;
        int64_t idle = now - p->base_mono_ms - config.idle_lag_ms;
        if (idle > 0)
            st_sessionizer_advance_time(ctx->sz, p->id, p->base_stream_ms + idle);
    }
}

/* After a push: the new base of live mode for the partitions that had records. */
static void live_rebase(sz_ctx_t *ctx, const st_msg_t *msgs, size_t n)
{
    int64_t now = st_time_mono_ms();
    for (size_t i = 0; i < ctx->n_parts; i++) {
        part_t *p = &ctx->parts[i];
        bool had = false;
        for (size_t k = 0; k < n && !had; k++)
            had = msgs[k].partition == p->id;
        int64_t t;
        if (had && st_sessionizer_stream_time(ctx->sz, p->id, &t) == 0) {
            p->has_base = true;
            p->base_stream_ms = t;
            p->base_mono_ms = now;
        }
    }
}

static int push_all(sz_ctx_t *ctx, const st_msg_t *msgs, size_t n, st_err_t *err)
{
    for (size_t i = 0; i < n; i++) {
        item_t *it = &ctx->items[i];
        if (!part_get(ctx, msgs[i].partition, true)) {
            st_err_nomem(err);
            return -1;
        }
        part_t *part = part_get(ctx, msgs[i].partition, false);
        if (msgs[i].offset + 1 > part->read_next)
            part->read_next = msgs[i].offset + 1;
        st_sessionizer_record_t rec = it->rec;
        /* An undecodable record is pushed without a user: rejected, but the commit point may
         * pass its offset. */
        rec.user_id = it->disp == DISP_DLQ ? NULL : ctx->arena.data + it->user_off;
        if (it->disp == DISP_DLQ)
            rec.user_id_len = 0;
        st_err_t perr = {0};
        int rc = st_sessionizer_push(ctx->sz, &rec, &perr);
        if (rc == ST_SESSIONIZER_LATE) {
            it->disp = DISP_LATE;
        } else if (rc == ST_SESSIONIZER_AHEAD) {
            int64_t st = 0;
            st_sessionizer_stream_time(ctx->sz, msgs[i].partition, &st);
            it->disp = DISP_DLQ;
            it->code = "ahead_of_stream_time";
            it->text_off = ctx->arena.len;
            if (st_buf_printf(&ctx->arena,
                              "listened_at %lld ms is more than clock.ahead_max_s (%lld s) after "
                              "the partition's stream time %lld ms",
                              (long long)rec.listened_at_ms, (long long)config.ahead_max_s,
                              (long long)st) != 0 ||
                st_buf_append(&ctx->arena, "", 1) != 0) {
                st_err_nomem(err);
                return -1;
            }
        } else if (rc < 0 && it->disp != DISP_DLQ) {
            if (perr.code != ST_ERR_INVALID) {
                *err = perr;
                return -1;
            }
            it->disp = DISP_DLQ;
            it->code = "invalid";
            it->text_off = ctx->arena.len;
            if (st_buf_append(&ctx->arena, perr.text, strlen(perr.text) + 1) != 0) {
                st_err_nomem(err);
                return -1;
            }
        }
    }
    return 0;
}

static int encode_event(sz_ctx_t *ctx, const st_session_event_t *e, const sz_profile_t *prof,
                        st_err_t *err)
{
    st_rec_session_event_t r = {
        .session_id = st_str(e->session_id),
        .user_id = st_str(e->user_id),
        .kind = e->kind,
    };
    char ids[ST_SESSION_RETRACT_MAX][ST_SESSION_ID_MAX];
    if (e->kind == ST_SESSION_EVENT_OPENED)
        st_rec_session_event_set_features(&r, &e->features);
    /* The event's own start and index (equal to the features' for an OPENED). */
    int hour, weekday;
    st_session_hour_weekday(e->start_ms, &hour, &weekday);
    r.start_ms = e->start_ms;
    r.session_index = (int32_t)e->session_index;
    r.start_hour_utc = hour;
    r.start_weekday = weekday;
    if (e->kind == ST_SESSION_EVENT_OPENED) {
        r.revision = (int32_t)e->revision;
        r.n_retracted = e->n_retracted;
        for (uint32_t i = 0; i < e->n_retracted; i++)
            r.retracted_session_ids[i] = st_str(st_session_id_format(
                e->user_id, strlen(e->user_id), e->retracted_start_ms[i], ids[i], sizeof ids[i]));
        if (prof && prof->found) {
            r.gender = st_str(prof->gender[0] ? prof->gender : NULL);
            r.age = (st_opt_i32_t){prof->has_age, prof->age};
            r.country = st_str(prof->country[0] ? prof->country : NULL);
            r.registered_ms = (st_opt_i64_t){prof->has_registered, prof->registered_ms};
        }
    } else {
        const st_session_summary_t *s = &e->summary;
        r.end_ms = (st_opt_i64_t){true, s->end_ms};
        r.last_start_ms = (st_opt_i64_t){true, s->last_start_ms};
        r.length_s = (st_opt_f64_t){true, s->length_s};
        r.track_count = (int32_t)s->track_count;
        r.unknown_duration_share = (st_opt_f64_t){true, s->unknown_duration_share};
    }
    return st_rec_session_event_encode(ctx->out_codec, &r, &ctx->enc, err);
}

/* One log line per partition per 10 s about late records, with how many and why. */
static void log_late(sz_ctx_t *ctx, const st_msg_t *msg, const item_t *it)
{
    part_t *p = part_get(ctx, msg->partition, false);
    if (!p)
        return;
    p->late_unlogged++;
    int64_t now = st_time_mono_ms();
    if (p->late_logged_mono_ms != 0 && now - p->late_logged_mono_ms < 10000)
        return;
    int64_t st = 0;
    st_sessionizer_stream_time(ctx->sz, msg->partition, &st);
    char ts[40], sts[40];
    st_time_format_iso8601(it->rec.listened_at_ms, ts, sizeof ts);
    st_time_format_iso8601(st, sts, sizeof sts);
    st_log_warn("late_listens",
                "partition=%d count=%llu offset=%lld listened_at=%s stream_time=%s grace_ms=%lld "
                "topic=%s hint=\"older than the partition's stream time minus session.grace_ms: "
                "replay history in time order before live traffic (stint replay)\"",
                (int)msg->partition, (unsigned long long)p->late_unlogged, (long long)msg->offset,
                ts, sts, (long long)config.grace_ms, config.late_topic);
    p->late_unlogged = 0;
    p->late_logged_mono_ms = now;
}

static int emit_outputs(sz_ctx_t *ctx, const st_msg_t *msgs, size_t n, st_out_t *out, st_err_t *err)
{
    for (size_t i = 0; i < n; i++) {
        const item_t *it = &ctx->items[i];
        int rc = 0;
        if (it->disp == DISP_LATE) {
            rc = st_out_produce(out, config.late_topic, msgs[i].key, msgs[i].key_len, msgs[i].value,
                                msgs[i].value_len);
            log_late(ctx, &msgs[i], it);
        } else if (it->disp == DISP_DLQ)
            rc = st_out_dead_letter(out, &msgs[i], it->code, ctx->arena.data + it->text_off);
        if (rc != 0) {
            st_err_set(err, ST_ERR_NOMEM, ST_DISP_FATAL, "queueing an output failed");
            return -1;
        }
    }
    size_t ne;
    const st_session_event_t *ev = st_sessionizer_events(ctx->sz, &ne);
    size_t n_open = 0;
    if (config.profile_lookup) {
        for (size_t i = 0; i < ne; i++)
            n_open += ev[i].kind == ST_SESSION_EVENT_OPENED;
        size_t cap_users = ctx->cap_prof;
        if (grow((void **)&ctx->prof_users, &cap_users, n_open, sizeof *ctx->prof_users) != 0 ||
            grow((void **)&ctx->profiles, &ctx->cap_prof, n_open, sizeof *ctx->profiles) != 0) {
            st_err_nomem(err);
            return -1;
        }
        size_t k = 0;
        for (size_t i = 0; i < ne; i++)
            if (ev[i].kind == ST_SESSION_EVENT_OPENED)
                ctx->prof_users[k++] =
                    (st_sessionizer_user_t){ev[i].user_id, strlen(ev[i].user_id)};
        if (n_open > 0 &&
            sz_store_get_profiles(ctx->store, ctx->prof_users, n_open, ctx->profiles, err) != 0) {
            err->retriable = true;
            return -1;
        }
    }
    size_t k = 0;
    for (size_t i = 0; i < ne; i++) {
        const sz_profile_t *prof = NULL;
        if (ev[i].kind == ST_SESSION_EVENT_OPENED && config.profile_lookup)
            prof = &ctx->profiles[k++];
        if (encode_event(ctx, &ev[i], prof, err) != 0)
            return -1;
        if (st_out_produce(out, config.out_topic, ev[i].user_id, strlen(ev[i].user_id),
                           ctx->enc.data, ctx->enc.len) != 0) {
            st_err_set(err, ST_ERR_NOMEM, ST_DISP_FATAL, "queueing an output failed");
            return -1;
        }
    }
    return 0;
}

static int process(void *vctx, const st_msg_t *msgs, size_t n, st_out_t *out, st_err_t *err)
{
    sz_ctx_t *ctx = vctx;
    ctx->out = out;
    if (!ctx->in_batch) {
        /* First attempt of this batch (a retry after a failed produce or read skips to the
         * outputs: the records are in the sessionizer already). */
        if (decode_all(ctx, msgs, n, err) != 0 || init_partitions(ctx, msgs, n, out, err) != 0)
            return -1;
        if (config.idle_flush_ms > 0)
            live_advance(ctx, out);
        ctx->in_batch = true;
        if (push_all(ctx, msgs, n, err) != 0)
            return -1;
        live_rebase(ctx, msgs, n);
        show_stream_times(ctx);
    }
    if (!ctx->prepared) {
        if (st_sessionizer_prepare(ctx->sz, false, err) != 0)
            return -1;
        ctx->prepared = true;
    }
    return emit_outputs(ctx, msgs, n, out, err);
}

static void update_metrics(sz_ctx_t *ctx)
{
    st_sessionizer_stats_t s;
    st_sessionizer_stats(ctx->sz, &s);
    const st_sessionizer_stats_t *l = &ctx->last_stats;
    st_metric_inc(ctx->m_listens, (s.pushed + s.late) - (l->pushed + l->late));
    st_metric_inc(ctx->m_late, s.late - l->late);
    st_metric_inc(ctx->m_invalid, s.invalid - l->invalid);
    st_metric_inc(ctx->m_opened, s.opened - l->opened);
    st_metric_inc(ctx->m_closed, s.closed - l->closed);
    st_metric_inc(ctx->m_idle, s.idle_closed - l->idle_closed);
    st_metric_inc(ctx->m_stale, s.stale_deadlines - l->stale_deadlines);
    st_metric_inc(ctx->m_dups, s.duplicates - l->duplicates);
    st_metric_inc(ctx->m_skips, s.replay_skips - l->replay_skips);
    st_metric_inc(ctx->m_announced, s.announced - l->announced);
    st_metric_inc(ctx->m_corrections, s.corrections - l->corrections);
    st_metric_inc(ctx->m_retractions, s.retractions - l->retractions);
    st_metric_set(ctx->m_open, (double)s.open_sessions);
    st_metric_set(ctx->m_buffered, (double)s.buffered);
    sz_store_stats_t ss;
    sz_store_stats(ctx->store, &ss);
    st_metric_inc(ctx->m_state_bytes, ss.state_bytes - ctx->last_state_bytes);
    ctx->last_state_bytes = ss.state_bytes;
    ctx->last_stats = s;
}

static int apply(void *vctx, st_err_t *err)
{
    sz_ctx_t *ctx = vctx;
    size_t ne = 0;
    st_sessionizer_events(ctx->sz, &ne);
    if (ctx->prepared && ne > 0 && config.fault_kill_before_apply > 0 &&
        ++ctx->batches_with_events == config.fault_kill_before_apply) {
        /* The window a crash test cannot hit reliably: events out, states not written. */
        st_log_warn("fault_injected", "what=kill_before_apply events=%zu", ne);
        kill(getpid(), SIGKILL);
    }
    if (ctx->prepared && st_sessionizer_finish(ctx->sz, err) != 0)
        return -1;
    ctx->prepared = false;
    /* Commit points after the finish: recorded in Redis (stream time for a resume, and how far
     * the partition has been read), then held so the pipeline stores exactly these offsets. */
    size_t np = 0;
    for (size_t i = 0; i < ctx->n_parts; i++) {
        part_t *p = &ctx->parts[i];
        sz_commit_point_t pt = {.partition = p->id, .read_next = p->read_next};
        if (p->need_init || st_sessionizer_commit_clock(ctx->sz, p->id, &pt.offset, &pt.clock) != 0)
            continue;
        if (p->saved && p->last.offset == pt.offset &&
            memcmp(&p->last.clock, &pt.clock, sizeof pt.clock) == 0 &&
            p->read_saved == p->read_next)
            continue;
        if (grow((void **)&ctx->points, &ctx->cap_points, np + 1, sizeof *ctx->points) != 0) {
            st_err_nomem(err);
            return -1;
        }
        ctx->points[np++] = pt;
    }
    if (sz_store_save_commit_points(ctx->store, config.in_topic, ctx->points, np, err) != 0) {
        err->retriable = !err->fatal;
        return -1;
    }
    for (size_t i = 0; i < np; i++) {
        part_t *p = part_get(ctx, ctx->points[i].partition, false);
        p->saved = true;
        p->last = ctx->points[i];
        p->read_saved = ctx->points[i].read_next;
    }
    for (size_t i = 0; i < ctx->n_parts; i++) {
        int64_t off, t;
        bool has;
        if (!ctx->parts[i].need_init &&
            st_sessionizer_commit_point(ctx->sz, ctx->parts[i].id, &off, &t, &has) == 0)
            st_out_hold(ctx->out, config.in_topic, ctx->parts[i].id, off);
    }
    ctx->in_batch = false;
    update_metrics(ctx);
    return 0;
}

static int setup(st_service_t *svc, void *vctx, st_pipeline_handler_t *h, st_pipeline_opts_t *po,
                 char *errstr, size_t errstr_size)
{
    static const char *topics[1], *outs[2];
    sz_ctx_t *ctx = vctx;
    const st_service_config_t *base = st_service_config(svc);
    st_sessionizer_config_t sc;
    st_sessionizer_config_default(&sc);
    if (st_session_ref_parse(config.ref, &sc.rule.ref) != 0) {
        st_errstr(errstr, errstr_size, "session.ref: \"%s\" is not end or start", config.ref);
        return -1;
    }
    sc.rule.gap_ms = config.gap_s * 1000;
    sc.grace_ms = config.grace_ms;
    sc.recent_n = (uint32_t)config.recent_n;
    sc.announce = config.early_open;
    sc.clock_quorum = (uint32_t)config.clock_quorum;
    sc.clock_recent = config.clock_recent;
    sc.ahead_max_ms = config.ahead_max_s * 1000;
    ctx->svc = svc;
    ctx->reg = st_service_avro(svc);
    ctx->in_codec = st_avro_codec_new(ctx->reg, "EnrichedListen", NULL, errstr, errstr_size);
    if (!ctx->in_codec)
        return -1;
    ctx->out_codec =
        st_avro_codec_new(ctx->reg, "SessionEvent", config.out_topic, errstr, errstr_size);
    if (!ctx->out_codec)
        return -1;
    ctx->store = sz_store_new(st_service_redis(svc), base->redis_prefix);
    if (!ctx->store) {
        st_errstr(errstr, errstr_size, "out of memory");
        return -1;
    }
    ctx->sz = st_sessionizer_new(&sc, sz_store_iface(ctx->store), errstr, errstr_size);
    if (!ctx->sz)
        return -1;
    ctx->m_listens = st_metrics_counter("stint_sessionizer_listens_total", NULL,
                                        "Listens consumed and decoded (late ones included).");
    ctx->m_late = st_metrics_counter("stint_sessionizer_late_total", NULL,
                                     "Listens later than the grace, sent to the late topic.");
    ctx->m_invalid =
        st_metrics_counter("stint_sessionizer_invalid_total", NULL,
                           "Records rejected (undecodable or invalid), sent to the DLQ.");
    ctx->m_opened = st_metrics_counter("stint_sessionizer_sessions_opened_total", NULL,
                                       "OPENED events (replays of a batch included).");
    ctx->m_closed = st_metrics_counter("stint_sessionizer_sessions_closed_total", NULL,
                                       "CLOSED events (replays of a batch included).");
    ctx->m_idle =
        st_metrics_counter("stint_sessionizer_idle_closes_total", NULL,
                           "Sessions closed because the stream time passed their deadline.");
    ctx->m_stale = st_metrics_counter(
        "stint_sessionizer_stale_deadlines_total", NULL,
        "Stored deadlines that passed for a user with no open session (left by a write the "
        "compare-and-set refused); each is then removed unless its deadline changed since.");
    ctx->m_open = st_metrics_gauge("stint_sessionizer_open_sessions", NULL,
                                   "Open sessions tracked on the owned partitions.");
    ctx->m_buffered = st_metrics_gauge("stint_sessionizer_buffered_records", NULL,
                                       "Records waiting in the reorder buffers.");
    ctx->m_state_bytes = st_metrics_counter("stint_sessionizer_state_bytes_written_total", NULL,
                                            "Bytes of user state blobs written to Redis.");
    ctx->m_dups = st_metrics_counter("stint_sessionizer_duplicates_total", NULL,
                                     "Exact duplicate listens counted once.");
    ctx->m_skips = st_metrics_counter("stint_sessionizer_replay_skips_total", NULL,
                                      "Replayed listens skipped by the stored position.");
    ctx->m_announced =
        st_metrics_counter("stint_sessionizer_early_opened_total", NULL,
                           "OPENED events announced before the grace passed (early OPENED).");
    ctx->m_corrections =
        st_metrics_counter("stint_sessionizer_corrections_total", NULL,
                           "OPENED events re-sent with a higher revision (a late listen within "
                           "the grace changed the session).");
    ctx->m_retractions =
        st_metrics_counter("stint_sessionizer_retractions_total", NULL,
                           "Announced sessions that turned out not to be sessions (retracted, or "
                           "voided by the CLOSED that covers them).");
    topics[0] = config.in_topic;
    po->topics = topics;
    po->ntopics = 1;
    outs[0] = config.out_topic;
    outs[1] = config.late_topic;
    po->out_topics = outs;
    po->nout_topics = 2;
    po->dlq_topic = config.dlq_topic;
    po->tick_ms = (int)config.idle_flush_ms;
    h->ctx = ctx;
    h->process = process;
    h->apply = apply;
    h->on_assign = on_assign;
    h->on_revoke = on_revoke;
    st_log_info("sessionizer_config",
                "in=%s out=%s late=%s gap_s=%lld ref=%s grace_ms=%lld recent_n=%lld "
                "idle_flush_ms=%lld idle_lag_ms=%lld early_open=%d profile_lookup=%d",
                config.in_topic, config.out_topic, config.late_topic, (long long)config.gap_s,
                config.ref, (long long)config.grace_ms, (long long)config.recent_n,
                (long long)config.idle_flush_ms, (long long)config.idle_lag_ms,
                (int)config.early_open, (int)config.profile_lookup);
    return 0;
}

static void teardown(void *vctx)
{
    sz_ctx_t *ctx = vctx;
    st_sessionizer_destroy(ctx->sz);
    sz_store_destroy(ctx->store);
    st_avro_codec_destroy(ctx->in_codec);
    st_avro_codec_destroy(ctx->out_codec);
    free(ctx->parts);
    free(ctx->items);
    free(ctx->prof_users);
    free(ctx->profiles);
    free(ctx->points);
    st_buf_free(&ctx->arena);
    st_buf_free(&ctx->enc);
}

int main(int argc, char **argv)
{
    static sz_ctx_t ctx;
    st_service_def_t def = {
        "sessionizer", "listens.enriched -> sessions (OPENED/CLOSED), state in Redis",
        table,         &config,
        setup,         teardown,
        &ctx};
    return st_service_main(&def, argc, argv);
}
