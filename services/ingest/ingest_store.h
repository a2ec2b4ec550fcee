/* ingest_store.h - ingest's duplicate marks behind one interface: read a batch's marks in one
 * round, write the marks of the records it produced in one round. ingest.c holds the logic;
 * ingest_store_redis.c keeps the marks in Redis, ingest_store_mem.c in memory (unit tests).
 *
 * A mark says which record first carried an event_id: its owner "<partition>:<offset>". Marks
 * are kept per user, bounded by the user's own listening, not by the listen rate:
 *   - window (record time): a user keeps the marks of listens whose time is within window_ms of
 *     the newest listen time marked for that user (its high-water mark); older marks are dropped
 *     at the next write, and a listen older than that is not looked up (it passes as new);
 *   - at most max_per_user marks, the oldest (by listen time, then event id) dropped first;
 *   - ttl (wall clock): a user's marks expire ttl_s after the user's last write, so a user who
 *     stopped listening costs nothing.
 * A mark is never replaced while it lives: the first owner to write wins, and a rerun of the same
 * write changes nothing (crash cases in ingest.h).
 *
 * Redis layout: one string per user, <prefix>:u:{<user>}:ingest:marks (st_rkey.h), packed so a
 * user costs ~60 bytes of key plus 22 bytes per mark (a hash of text fields cost ~3x that): the
 * high-water mark (6 bytes), then per mark the event id (8 bytes), the listen time in ms (6), the
 * owner's partition (2) and offset (6), all big-endian. Read with one GET per user; written by one
 * script call per user that merges, prunes and SETs it back with the ttl (the whole string is
 * rewritten, at most (max_per_user + the batch's new marks) x 22 bytes). A mark that cannot be
 * packed (partition over 65535, offset at or past 2^48) is not kept.
 * Earlier layouts are not read. Upgrading from either only lets through, for one window, copies
 * of listens marked before the upgrade, which the sessionizer still counts once (ingest.h), and a
 * replay of the old version's last batch is produced again (identical bytes), as when a mark is
 * dropped by the window: the previous hash per user (<prefix>:u:{<user>}:ingest:seen) is
 * deleted by the user's next write, the one string per listen (<prefix>:ingest:seen:<event_id>)
 * expires by its TTL. */
#ifndef INGEST_STORE_H
#define INGEST_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "st_err.h"
#include "st_redis.h"

/* One record's mark (strings borrowed from the batch). */
typedef struct {
    const char *user; /* user_id[0..user_len), not NUL-terminated */
    size_t user_len;
    const char *event_id; /* 16 hex digits */
    const char *owner;    /* "<partition>:<offset>" */
    int64_t listened_at_ms;
} ingest_mark_t;

/* How long marks live (see above). */
typedef struct {
    int64_t window_ms;    /* record time, > 0 */
    int64_t ttl_s;        /* wall clock, > 0 */
    int64_t max_per_user; /* >= 1 */
} ingest_bounds_t;

typedef struct {
    void *ctx;
    /* Reads the marks of m[0..n): found[i] is the owner stored for m[i].event_id under m[i].user,
     * or NULL when there is none. The strings are the store's, valid until its next read or
     * write. 0, or -1 with err (retriable on a connection error, fatal on an error reply). */
    int (*read)(void *ctx, const ingest_mark_t *m, size_t n, const char **found, st_err_t *err);
    /* Writes the marks m[0..n) where none exists, then bounds each user's marks by b, in one
     * round. 0, or -1 with err (as read); after an error some users may be written, which a
     * rerun of the same write makes whole. */
    int (*write)(void *ctx, const ingest_mark_t *m, size_t n, const ingest_bounds_t *b,
                 st_err_t *err);
} ingest_store_t;

/* The Redis store over redis (borrowed; the script is registered with it). NULL on no memory. */
ingest_store_t *ingest_store_redis_new(st_redis_t *redis, const char *prefix);
void ingest_store_redis_destroy(ingest_store_t *s);

/* The in-memory store: the same bounds, except ttl (marks do not expire). */
ingest_store_t *ingest_store_mem_new(void);
void ingest_store_mem_destroy(ingest_store_t *s);
/* The next n writes succeed, the ones after fail (retriable) until n is set again (-1: never
 * fail): a crash between the outputs and the marks, for tests. */
void ingest_store_mem_fail_after(ingest_store_t *s, long n);
/* The owner marked for (user, event_id), or NULL. */
const char *ingest_store_mem_mark(const ingest_store_t *s, const char *user, const char *event_id);
/* Number of marks held (all users). */
size_t ingest_store_mem_count(const ingest_store_t *s);

#endif
