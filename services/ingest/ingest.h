/* ingest.h - the ingest service's core, free of Kafka and Redis so it can be unit tested:
 * validate and normalise each listens.raw message, encode the valid ones as Avro Listen, and
 * decide which are exact duplicates from the marks read through an ingest_store_t
 * (ingest_store.h: Redis in the daemon, memory in tests). main.c only wires config and setup.
 *
 * Duplicates: an exact duplicate is a second listen with the same event_id (same user, time,
 * artist and track). The first record that carries an event_id owns it: the service writes the
 * mark event_id -> "<partition>:<offset>" of that record under its user (ingest_store.h: kept
 * while its listen time is within dedup.window_s of the user's newest marked listen, at most
 * dedup.max_per_user per user, expiring dedup.ttl_s after the user's last write), after the
 * batch's outputs are acknowledged (st_pipeline's apply step). A record is a duplicate when an
 * earlier record of the same batch had its event_id, or when the mark exists and names another
 * record. A record that finds its own mark is not a duplicate: that is a replay of itself after a
 * crash between apply and the offset store, and it is produced again (a byte-identical copy).
 * A copy of a listen older than the window (relative to its user's newest listen), or sent after
 * the user was idle for ttl, is not caught here; the sessionizer still counts it once (an exact
 * duplicate of a session's listen is dropped by the session rule, or the copy is late).
 *
 * Crash cases (the pipeline produces outputs, waits for the acks, applies, stores offsets):
 * - after produce, before apply: no mark of this batch exists, the replayed batch makes the same
 *   decisions and the same bytes (Listen is a pure function of the input), so `listens` holds
 *   byte-identical copies that consumers upsert by event_id; nothing is lost.
 * - after apply, before the offset store: each owner finds its own mark and is produced again
 *   (identical bytes), each true duplicate finds another owner's mark and is dropped again. The
 *   decisions are the same as in the first run, so every event_id is produced and none twice
 *   under different decisions, and the counters (added only in apply) are not inflated by
 *   retried process() calls.
 * - during apply: SET NX is idempotent; the whole round is retried.
 * - a mark dropped by the window or the cap before a replay reaches its record: the record is
 *   produced again (identical bytes), as in the first case.
 * A mark is written only after its Listen is acknowledged, so a mark never hides a listen that is
 * not in Kafka. One limit: copies of a listen sent under different Kafka keys may sit on
 * partitions owned by two instances; both may read "no mark" before either writes one, and both
 * produce it (identical bytes, same event_id: consumers upsert). Copies keyed by user_id, as the
 * format asks, share a partition and never race. */
#ifndef INGEST_H
#define INGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ingest_store.h"
#include "st_avro.h"
#include "st_buf.h"
#include "st_err.h"
#include "st_listen.h"
#include "st_pipeline.h"

typedef enum {
    INGEST_INVALID = 0, /* goes to the DLQ with reason/error */
    INGEST_NEW,         /* produced to listens; its mark is written in apply */
    INGEST_DUPLICATE    /* dropped */
} ingest_verdict_t;

/* One input record of the batch. Strings are NUL-terminated and owned by the batch. */
typedef struct {
    ingest_verdict_t verdict;
    st_listen_reason_t reason;   /* INGEST_INVALID: why (st_listen_reason_name) */
    char error[512];             /* INGEST_INVALID: human text */
    char event_id[17];           /* valid records */
    char owner[40];              /* "<partition>:<offset>": the mark value this record writes */
    int64_t listened_at_ms;      /* valid records */
    size_t key_off, key_len;     /* user_id in ingest_batch_data() */
    size_t value_off, value_len; /* Avro Listen (wire format) in ingest_batch_data() */
} ingest_record_t;

typedef struct ingest_batch_s ingest_batch_t;

/* A batch holder; listen_codec (record Listen, with a topic) is borrowed and must outlive it.
 * Returns NULL when out of memory. */
ingest_batch_t *ingest_batch_new(st_avro_codec_t *listen_codec);
void ingest_batch_destroy(ingest_batch_t *b);

/* Replaces the batch with msgs[0..n): each message is parsed (st_listen_parse; "now" is the
 * record's Kafka timestamp, so a replay decides alike, or now_ms for a record without one) and a
 * valid one is encoded; valid records get verdict INGEST_NEW until ingest_batch_decide. Returns 0,
 * or -1 with err (out of memory, or an Avro encoding error: fatal, not retriable). */
int ingest_batch_parse(ingest_batch_t *b, const st_msg_t *msgs, size_t n, int64_t now_ms,
                       st_err_t *err);

size_t ingest_batch_size(const ingest_batch_t *b);
/* Record i (borrowed, valid until the next parse). */
const ingest_record_t *ingest_batch_record(const ingest_batch_t *b, size_t i);
/* Base of the key/value bytes (borrowed, valid until the next parse). */
const char *ingest_batch_data(const ingest_batch_t *b);

/* Decides duplicates. marks[i] is the mark read for record i (NULL when none, and for invalid
 * records); marks may be NULL when no mark exists at all (deduplication off: only duplicates
 * within the batch are dropped). Returns 0, or -1 when out of memory. */
int ingest_batch_decide(ingest_batch_t *b, const char *const *marks);

/* The core: a batch, its store and its counters. */
typedef struct {
    const char *out_topic;      /* Listens go there (copied) */
    int64_t dedup_ttl_s;        /* wall clock: a user's marks expire this long after its last write;
                                   0: no marks, duplicates are caught within a batch only */
    int64_t dedup_window_s;     /* record time: marks kept behind the user's newest listen */
    int64_t dedup_max_per_user; /* marks kept per user */
} ingest_opts_t;

typedef struct ingest ingest_t;

/* A core over listen_codec and store (both borrowed, outliving it); registers its metrics.
 * NULL when out of memory. */
ingest_t *ingest_new(st_avro_codec_t *listen_codec, ingest_store_t *store, const ingest_opts_t *o);
/* Frees it; NULL is a no-op. */
void ingest_destroy(ingest_t *g);

/* The pipeline's process step: parses msgs[0..n) (now_ms for records without a Kafka time),
 * reads the marks of the valid ones (when dedup_ttl_s > 0), decides, and queues each record to
 * out: a Listen, a dead letter (code = the reason's name), or nothing (a duplicate). Returns 0,
 * or -1 with err (the store's error, or out of memory); safe to run again on the same batch. */
int ingest_process(ingest_t *g, const st_msg_t *msgs, size_t n, int64_t now_ms, st_out_t *out,
                   st_err_t *err);
/* The pipeline's apply step, once the batch's outputs are acknowledged: writes the marks of the
 * records produced and adds the batch's counts to the metrics. 0, or -1 with err (the store's);
 * safe to run again. */
int ingest_apply(ingest_t *g, st_err_t *err);

#endif
