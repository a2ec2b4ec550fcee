/* st_sessionizer.h - the streaming sessionizer core: per-partition event-time reorder buffer,
 * idle-close deadlines, per-user state (open session + history + idempotency position) kept in a
 * pluggable state store (Redis in the service, in memory for tests and the offline builder).
 * No Kafka or Redis code here: the caller feeds records and runs the store.
 *
 * Per batch (see DESIGN.md "Delivery semantics"):
 *   for each consumed message: st_sessionizer_push()       (LATE -> produce to sessions.late)
 *   st_sessionizer_prepare()      releases due records, reads the touched users' states through
 *                                 store->get_states (one round), applies the rule, builds events
 *                                 and new states
 *   produce st_sessionizer_events(), wait for delivery
 *   st_sessionizer_finish()       writes the states through store->put_states (one CAS per user)
 *   st_sessionizer_commit_point() per partition -> commit offset (+ stream time as metadata)
 *
 * Events are delivered before the states are written: a crash in between replays the batch and
 * re-emits byte-identical events (deterministic session ids), never loses one. Writing first and
 * crashing before delivery would lose them, since the replay is skipped by the stored position.
 *
 * Order and lateness. A partition's stream time only moves forward (raised by accepted records
 * and by st_sessionizer_advance_time); its watermark is stream time - grace. A record is LATE
 * when its time is below the watermark on arrival; every other record is released once the
 * watermark passes its time, in (listened_at_ms, identity_hash, offset) order. Hence a
 * partition's released sequence is exactly its non-late records sorted by that key, whatever the
 * batch boundaries, and exact duplicates (same time and identity) are adjacent.
 *
 * Stream time (the partition clock, record time). One user's clock must not move everyone's: a
 * single listen dated a day ahead would otherwise make every other user's listens on the
 * partition late for a day. The clock keeps the newest listen time of up to clock_quorum (K)
 * distinct users seen among the partition's last clock_recent offsets (the K largest such times;
 * a user not seen for clock_recent offsets drops out), and stream time moves to the smallest of
 * them: the K-th largest newest time of the recently active users, or the smallest one when fewer
 * are active. So fewer than K users far ahead of the others cannot move it; their listens wait in
 * the reorder buffer until the others' times reach them, and are then released in order (that
 * user's sessions are what offline gives for the same input). A partition with one active user
 * follows that user. A listen more than ahead_max_ms beyond the stream time (counting itself) is
 * refused as AHEAD (to the DLQ): the bound on how long a listen may be held, and so on the commit
 * point's lag. The cost: after a partition-wide silence longer than ahead_max_ms, the first
 * listens of up to K - 1 users are refused before the clock has its quorum. K = 1 is the largest
 * accepted time (the earlier rule). The clock is a function of the partition's records in offset
 * order (and of advance_time), and its state just before each accepted record is kept, so a
 * commit point restores it exactly.
 *
 * Idempotency. A user's state records the position (time, identity, offset, closed flag) of the
 * last thing applied, increasing along that order; a released record at or below it is a replay
 * and is skipped; the store writes a state only if its position is above the stored one. After a
 * crash the input is re-read from the committed offset (the lowest one not yet written) with the
 * committed stream time restored: the same records are late and the same are released in the same
 * order, and each user's stored state is the result of a prefix of that user's sequence, so the
 * replay applies exactly the rest, once. (Without wall-clock advances the replayed records rebuild
 * the stream time by themselves: the record with the largest time is never released before a
 * larger one arrives, so it is always replayed. The stored stream time matters after idle
 * flushes.) A record held for the clock (above) holds the commit point back with it, at most
 * ahead_max_ms of stream time.
 *
 * Early OPENED (config.announce). A session is announced when its first listen is pushed, not
 * when the grace has passed: at every prepare, each user whose records arrived since the last one
 * gets a speculative view - the stored state, then the user's still-buffered records in order
 * through the same rule - and every session start of that view not announced yet is emitted as
 * OPENED (features from the view's history, in which the sessions before it are closed as the
 * buffered records say). The announced sessions (start, features hash, revision, offset of the
 * record that announced them) are kept in the user's state. When the authoritative pass (records
 * released after the grace) or a later view disagrees with an announcement, the difference is
 * emitted: a session start that no longer is one is retracted (its start goes in
 * retracted_start_ms of the OPENED of the view's session that holds its listens, sent anew with
 * a higher revision; when the authoritative pass closes a session, the CLOSED voids every
 * announcement within [start, last start] by itself - consumers apply that rule - so CLOSED events
 * carry no retractions and stay a function of the input alone); an announced session whose features
 * changed (a late listen changed the previous session's length) is re-sent with a higher revision;
 * an authoritative OPENED equal to its announcement is not sent again. CLOSED events come only from
 * the authoritative pass, as before: they are final, and equal the offline sessions exactly.
 * Revisions order the announcements of one session: the revision is how far past the session's
 * first record the partition had been read when its view was computed (view seen - that offset),
 * and at least one more than the stored one. So a later view always wins, also when a crash lost
 * the state write that counted an earlier announcement (a counter would then be reused with
 * other features).
 * Replays: a view is applied only when it covers more of the partition than the one stored (the
 * position's `seen` = the highest offset of the partition pushed when it was computed); an older
 * view (a replay after a crash) announces nothing and retracts nothing. A replay with other batch
 * boundaries may announce a session another batching would not have (and retract it later), so
 * early OPENED events, unlike CLOSED ones, are not guaranteed byte-identical across a crash; each
 * announcement is retracted or confirmed by the time its session closes, except when a crash
 * falls between delivering an announcement and writing the state that records it and the replay
 * never computes that view again: the CLOSED covering it voids it then.
 *
 * Idle close. An open session closes when the watermark passes st_session_deadline_ms(), i.e.
 * the stream time passes deadline + grace (or, in live mode, the wall clock via
 * st_sessionizer_advance_time). Closing by deadline or by the next listen gives the same session;
 * only the moment differs.
 *
 * Offline use (same code path): the in-memory store, push the listens in time order on one
 * partition with offsets 0, 1, ... and grace 0, prepare + finish every few thousand records, and
 * prepare(flush_all) + finish at the end; or grace ST_SESSIONIZER_GRACE_MS_MAX and one partition
 * per user (any order within the user), prepare(flush_all) + finish + revoke after each user. The
 * CLOSED events are the sessions. */
#ifndef ST_SESSIONIZER_H
#define ST_SESSIONIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "st_buf.h"
#include "st_err.h"
#include "st_session.h"

#define ST_SESSIONIZER_GRACE_MS_DEFAULT 60000
#define ST_SESSIONIZER_GRACE_MS_MAX     (INT64_C(1) << 40) /* about 35 years */
#define ST_SESSIONIZER_POS_TEXT_MAX     80

#define ST_SESSIONIZER_CLOCK_MAX            4
#define ST_SESSIONIZER_CLOCK_QUORUM_DEFAULT 3
#define ST_SESSIONIZER_CLOCK_RECENT_DEFAULT 64
#define ST_SESSIONIZER_AHEAD_MS_DEFAULT     (INT64_C(7) * 86400 * 1000)

typedef struct {
    st_session_rule_t rule;
    int64_t grace_ms;  /* reorder grace in event time, 0..GRACE_MS_MAX (default 60 s) */
    uint32_t recent_n; /* history lengths kept, 1..ST_SESSION_RECENT_MAX (default 32) */
    bool announce;     /* early OPENED (see above); default false: the offline builder and the
                          ordering tests want the authoritative events only */
    /* The partition clock (see "Stream time" above): the number of distinct recently seen users
     * whose last listens must reach a time before stream time moves there, 1..CLOCK_MAX (default
     * 3; 1 = the largest time accepted); a user counts while one of its listens is among the
     * partition's last clock_recent offsets (default 64). */
    uint32_t clock_quorum;
    int64_t clock_recent;
    /* A listen more than this ahead of its partition's stream time is refused (AHEAD; 0 = no
     * bound; default 7 days): the bound on how long one listen may be held for the clock. */
    int64_t ahead_max_ms;
} st_sessionizer_config_t;

/* A partition's clock: its stream time and the users it is made of (newest listen time, offset
 * of that user's last listen on the partition, user id hash). Stored with each commit point. */
typedef struct {
    uint64_t user_hash;
    int64_t t_ms;
    int64_t offset;
} st_sessionizer_clock_slot_t;

typedef struct {
    bool has_time;
    int64_t stream_time_ms;
    uint32_t n;
    st_sessionizer_clock_slot_t slot[ST_SESSIONIZER_CLOCK_MAX];
} st_sessionizer_clock_t;

/* Text form: "<stream_time_ms>" then ",<user hash, 16 hex digits>/<t_ms>/<offset>" per slot;
 * "" when there is no stream time. */
#define ST_SESSIONIZER_CLOCK_TEXT_MAX (24 + ST_SESSIONIZER_CLOCK_MAX * 64)
void st_sessionizer_clock_format(const st_sessionizer_clock_t *clock, char *buf, size_t size);
/* Parses s[0..len) (a bare "<stream_time_ms>" gives a clock without users). 0, or -1. */
int st_sessionizer_clock_parse(const char *s, size_t len, st_sessionizer_clock_t *out);

#define ST_SESSIONIZER_ANN_MAX 8 /* announced, not yet closed sessions kept per user */

/* A session announced by an OPENED and not closed yet. */
typedef struct {
    int64_t start_ms;
    uint64_t features_hash;
    uint32_t revision;
    int64_t offset; /* of the record whose view announced it */
} st_sessionizer_ann_t;

/* The idempotency position of a user's state: the last record applied, whether the open session
 * was closed by its deadline after it, and the highest offset of the partition the stored
 * announcements were computed with (-1: none). Ordered lexicographically. A user with
 * announcements but nothing applied yet has listened_at_ms ST_SESSIONIZER_POS_NONE_MS. */
typedef struct {
    int64_t listened_at_ms;
    uint64_t identity_hash;
    int64_t offset;
    uint8_t closed;
    int64_t seen;
} st_sessionizer_pos_t;

#define ST_SESSIONIZER_POS_NONE_MS (-(INT64_C(1) << 51))

/* Everything stored per user. */
typedef struct {
    bool has_pos;
    st_sessionizer_pos_t pos;
    st_session_open_t open;
    st_session_history_t history;
    uint32_t n_ann; /* sorted by start_ms */
    st_sessionizer_ann_t ann[ST_SESSIONIZER_ANN_MAX];
} st_sessionizer_state_t;

/* One consumed listens.enriched record. Strings are borrowed (copied by push). */
typedef struct {
    int32_t partition;
    int64_t offset;
    const char *user_id;
    size_t user_id_len; /* 1..ST_SESSION_USER_ID_MAX */
    int64_t listened_at_ms;
    int64_t duration_ms;    /* <= 0: unknown */
    uint64_t identity_hash; /* st_session_identity_hash(artist, track) */
} st_sessionizer_record_t;

typedef struct {
    const char *id; /* not NUL-terminated necessarily */
    size_t len;
} st_sessionizer_user_t;

/* A new state for one user, to be written with the compare-and-set of st_sessionizer_lua_put.
 * Pointers are owned by the sessionizer, valid until the next prepare or destroy. */
typedef struct {
    st_sessionizer_user_t user;
    int32_t partition;
    char pos_text[ST_SESSIONIZER_POS_TEXT_MAX]; /* ARGV[1] of the script */
    const char *blob;                           /* ARGV[2] */
    size_t blob_len;
    bool has_deadline;   /* an open session remains (its deadline goes in the partition's set) */
    int64_t deadline_ms; /* when has_deadline */
} st_sessionizer_write_t;

/* An entry of a partition's deadline set that fired for a user whose state has no open session
 * (a write refused by the compare-and-set still adds its deadline: sz_store.c). It goes only if
 * its deadline is still deadline_ms, so a deadline another instance set since is kept. Pointers
 * as in st_sessionizer_write_t. */
typedef struct {
    st_sessionizer_user_t user;
    int32_t partition;
    int64_t deadline_ms;
} st_sessionizer_stale_t;

/* The state store. The service implements it over Redis; st_sessionizer_memstore_new() gives the
 * in-memory one. Every function returns 0 or -1 with err filled (then the batch is abandoned:
 * see st_sessionizer_finish). */
typedef struct st_sessionizer_store {
    void *ctx;
    /* Reads the states of n users into out[i] (reset by the caller; left empty when the user has
     * no state). Redis: one pipelined round of GET <state key>, and HGET <previous key> s for the
     * users without one. */
    int (*get_states)(void *ctx, const st_sessionizer_user_t *users, size_t n, st_buf_t *out,
                      st_err_t *err);
    /* Writes n states, each only if its position is above the stored one, and keeps the
     * partition's deadline set up to date: it must hold every user whose stored state has an
     * open session, with that session's deadline (entries of users without one are allowed: a
     * deadline is always checked against the state before it closes anything). Redis, three
     * rounds of single-key commands, so that it works on Redis Cluster too: ZADD of the writes
     * with a deadline, then EVALSHA st_sessionizer_lua_put of every write, then ZREM of the
     * written ones without a deadline (sz_store.c argues the crash cases). */
    int (*put_states)(void *ctx, const st_sessionizer_write_t *writes, size_t n, st_err_t *err);
    /* Calls add(arg, user, len, deadline_ms) for each entry of the partition's deadline set
     * (an add returning -1 stops with -1). Redis: ZRANGE <deadline key> 0 -1 WITHSCORES. */
    int (*load_deadlines)(void *ctx, int32_t partition,
                          int (*add)(void *arg, const char *user_id, size_t user_id_len,
                                     int64_t deadline_ms),
                          void *arg, st_err_t *err);
    /* Optional (NULL: such entries stay until the user's next write): removes each stale entry
     * whose deadline is still the given one. Redis: EVALSHA st_sessionizer_lua_drop per entry.
     * A failure does not fail the batch (st_sessionizer_finish logs it; the entries stay). */
    int (*drop_deadlines)(void *ctx, const st_sessionizer_stale_t *stale, size_t n, st_err_t *err);
} st_sessionizer_store_t;

typedef struct {
    uint64_t pushed;              /* records accepted into the reorder buffer */
    uint64_t late;                /* records returned as LATE */
    uint64_t ahead;               /* records returned as AHEAD */
    uint64_t invalid;             /* records rejected by push (bad user id, offset order) */
    uint64_t released;            /* records handed to the rule */
    uint64_t applied;             /* released records that changed a state (duplicates included) */
    uint64_t duplicates;          /* exact duplicates counted once */
    uint64_t replay_skips;        /* released records at or below the stored position */
    uint64_t opened;              /* OPENED events (early ones and corrections included) */
    uint64_t announced;           /* of which early (from a speculative view) */
    uint64_t corrections;         /* of which re-sent with a higher revision */
    uint64_t retractions;         /* announced sessions retracted */
    uint64_t closed;              /* CLOSED events */
    uint64_t idle_closed;         /* of which by deadline */
    uint64_t stale_deadlines;     /* stored deadlines that fired on a state with no open session */
    uint64_t stale_drop_failures; /* store calls that failed to remove them (they stay) */
    uint64_t corrupt_states;      /* undecodable stored states (replaced by an empty state) */
    uint64_t buffered;            /* records currently in reorder buffers */
    uint64_t open_sessions;       /* deadlines currently tracked */
} st_sessionizer_stats_t;

typedef struct st_sessionizer st_sessionizer_t;

typedef enum {
    ST_SESSIONIZER_BUFFERED = 0,
    ST_SESSIONIZER_LATE = 1,
    ST_SESSIONIZER_AHEAD = 2
} st_sessionizer_push_t;

/* The Lua script that writes one user's state (EVALSHA it after SCRIPT LOAD):
 *   KEYS[1] the user's state (st_rkey_user ST_RKEY_SZ): a string, position text, '\n', blob
 *   KEYS[2] the previous layout's hash (ST_RKEY_SESS: p position, s blob): its p is compared when
 *           KEYS[1] is absent, and it is deleted by the write that creates KEYS[1]
 *   ARGV[1] new position (write->pos_text), ARGV[2] state blob
 * Returns 1 when written, 0 when the stored position is at or above ARGV[1] (nothing changed).
 * Both keys carry the user's hash tag: one slot, as Redis Cluster requires of a script. The
 * partition's deadline set is written around it (st_sessionizer_store_t.put_states). */
extern const char st_sessionizer_lua_put[];
/* The Lua script that removes a stale deadline (st_sessionizer_stale_t):
 *   KEYS[1] the partition's deadline set, ARGV[1] the user, ARGV[2] the deadline (ms, decimal)
 * Returns 1 when removed, 0 when the user's deadline is another or absent. */
extern const char st_sessionizer_lua_drop[];
/* Where the blob starts in a stored KEYS[1] value: after its first '\n' (0 when it has none). */
size_t st_sessionizer_value_blob(const char *value, size_t len);

/* Fills config with the defaults (rule defaults, grace 60 s, recent_n 32). */
void st_sessionizer_config_default(st_sessionizer_config_t *config);

/* Position order (-1, 0, 1) and its text form
 * "<ms> <hash hi32> <hash lo32> <offset> <closed> <seen>" (decimal fields, exact as Lua numbers;
 * parse also takes the five-field form of older states, as seen = -1). parse returns 0 or -1. */
int st_sessionizer_pos_cmp(const st_sessionizer_pos_t *a, const st_sessionizer_pos_t *b);
void st_sessionizer_pos_format(const st_sessionizer_pos_t *pos, char *buf, size_t size);
int st_sessionizer_pos_parse(const char *s, st_sessionizer_pos_t *out);

/* Serialises a state (versioned, varint-packed) by appending to out. 0 or -1 (ENOMEM). */
int st_sessionizer_state_encode(const st_sessionizer_state_t *state, st_buf_t *out);
/* Parses a blob from st_sessionizer_state_encode. 0, or -1 with err (ST_ERR_INVALID) and *out
 * zeroed. */
int st_sessionizer_state_decode(const void *data, size_t len, st_sessionizer_state_t *out,
                                st_err_t *err);

/* Creates a sessionizer. config is copied; store is borrowed and must outlive it.
 * Returns NULL with errstr filled on a bad config or ENOMEM. */
st_sessionizer_t *st_sessionizer_new(const st_sessionizer_config_t *config,
                                     st_sessionizer_store_t *store, char *errstr,
                                     size_t errstr_size);
/* Frees everything, dropping buffered records and an unfinished batch. NULL is a no-op. */
void st_sessionizer_destroy(st_sessionizer_t *sz);

/* Takes a partition: loads its deadline set from the store and sets its stream time to the one
 * committed with the offset the consumer resumes from (has_stream_time false on a first start or
 * when none was stored: then late records of the replayed range may be classified differently
 * than before the crash, still never counted twice). Re-assigning an owned partition resets it.
 * push() auto-assigns an unknown partition without stream time. 0 or -1 (err). */
int st_sessionizer_assign(st_sessionizer_t *sz, int32_t partition, bool has_stream_time,
                          int64_t stream_time_ms, st_err_t *err);
/* The same with the whole clock committed with the offset (NULL: none). */
int st_sessionizer_assign_clock(st_sessionizer_t *sz, int32_t partition,
                                const st_sessionizer_clock_t *clock, st_err_t *err);
/* Releases a partition: drops its buffer and deadlines (commit first). No-op if unknown. */
void st_sessionizer_revoke(st_sessionizer_t *sz, int32_t partition);

/* Adds one record. Returns ST_SESSIONIZER_BUFFERED, ST_SESSIONIZER_LATE (the caller sends the
 * original message to sessions.late; nothing is kept), ST_SESSIONIZER_AHEAD (more than
 * ahead_max_ms after the stream time, even counting this listen in the clock: the caller sends it
 * to the DLQ; nothing is kept, the clock counts it), or -1 with err: ST_ERR_INVALID for a bad
 * user id (empty, over ST_SESSION_USER_ID_MAX bytes, holding NUL), a time beyond +-2^50 ms or a
 * duration over 2^40 ms (the record is not kept and the commit point may pass it: count it and
 * send it to the DLQ), or for an offset out of range or not above the previous one of the
 * partition (a seek back: revoke and assign first); ST_ERR_NOMEM. Not allowed between prepare and
 * finish (ST_ERR_INTERNAL). */
int st_sessionizer_push(st_sessionizer_t *sz, const st_sessionizer_record_t *rec, st_err_t *err);

/* Advances a partition's stream time to at least now_ms (partition < 0: all owned partitions):
 * the live-mode idle flush, called with the wall clock. Records older than now - grace that
 * arrive afterwards are late. */
void st_sessionizer_advance_time(st_sessionizer_t *sz, int32_t partition, int64_t now_ms);

/* A partition's stream time: 0, or -1 when the partition is unknown or has none yet. */
int st_sessionizer_stream_time(const st_sessionizer_t *sz, int32_t partition, int64_t *out);

/* Releases every buffered record below its partition's watermark (all of them when flush_all,
 * which also closes every open session: end of the offline input), reads the touched users'
 * states (one store->get_states call), applies the rule and builds the events and new states.
 * Returns 0, or -1 with err: on a store read error (ST_ERR_REDIS, retriable) nothing was applied
 * and the records are back in the buffer, so prepare may simply be called again later; on
 * ST_ERR_NOMEM (fatal) stop and replay from the commit point. A user must live on one partition
 * (the topic is keyed by user_id and its partition count does not change). */
int st_sessionizer_prepare(st_sessionizer_t *sz, bool flush_all, st_err_t *err);

/* The events built by the last prepare, in order per user (borrowed until the next prepare). */
const st_session_event_t *st_sessionizer_events(const st_sessionizer_t *sz, size_t *n);
/* The state writes of the last prepare (borrowed until the next prepare). */
const st_sessionizer_write_t *st_sessionizer_writes(const st_sessionizer_t *sz, size_t *n);

/* Writes the states of the last prepare (one store->put_states call) and marks its records done.
 * Call after the events are delivered. 0, or -1 with err: the batch stays unfinished and may be
 * retried (the writes are idempotent); without success do not commit. */
int st_sessionizer_finish(st_sessionizer_t *sz, st_err_t *err);

/* The lowest offset of the partition still held (buffered or in an unfinished batch), or the
 * next offset after the last pushed one when none is held; -1 if nothing was pushed. */
int64_t st_sessionizer_lowest_unreleased_offset(const st_sessionizer_t *sz, int32_t partition);

/* The commit point of a partition: the offset to commit (lowest unreleased) and the stream time
 * the partition had just before that offset was read (*has_stream_time false if none). Store the
 * stream time with the commit (Kafka commit metadata, decimal) and pass it to assign on resume.
 * Returns 0, or -1 when nothing was pushed on the partition (nothing to commit). */
int st_sessionizer_commit_point(const st_sessionizer_t *sz, int32_t partition, int64_t *offset,
                                int64_t *stream_time_ms, bool *has_stream_time);
/* The same with the whole clock the partition had just before that offset: store its text form
 * with the commit and pass it to assign_clock on resume. */
int st_sessionizer_commit_clock(const st_sessionizer_t *sz, int32_t partition, int64_t *offset,
                                st_sessionizer_clock_t *clock);

void st_sessionizer_stats(const st_sessionizer_t *sz, st_sessionizer_stats_t *out);

/* The in-memory store: same compare-and-set semantics as the Lua script. Owned by the caller;
 * st_sessionizer_memstore_destroy(NULL) is a no-op. Returns NULL on ENOMEM. */
st_sessionizer_store_t *st_sessionizer_memstore_new(void);
void st_sessionizer_memstore_destroy(st_sessionizer_store_t *store);
/* Fault injection for crash tests: the next put_states applies only its first n writes and then
 * fails (n < 0: no fault). */
void st_sessionizer_memstore_fail_after(st_sessionizer_store_t *store, long n);
/* Number of user states stored; and a read of one (0, or -1 if absent/corrupt). */
size_t st_sessionizer_memstore_count(const st_sessionizer_store_t *store);
int st_sessionizer_memstore_read(const st_sessionizer_store_t *store, const char *user_id,
                                 st_sessionizer_state_t *out);

#endif
