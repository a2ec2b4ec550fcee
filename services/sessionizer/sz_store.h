/* sz_store.h - the sessionizer's Redis: the st_sessionizer state store (one pipelined round of
 * GET per read, plus one of HGET for users not yet in this layout; per write, a round of ZADD to
 * the deadline sets, one of EVALSHA st_sessionizer_lua_put and one of ZREM; per batch with stale
 * deadlines, a round of EVALSHA st_sessionizer_lua_drop: sz_store.c), the
 * per-partition stream time at each commit point, and the profile join. Every command touches
 * one hash slot, so the store runs on Redis Cluster as on a single Redis.
 *
 * Keys (<p> = redis.prefix, e.g. "stint"; {..} is the Redis Cluster hash tag):
 *   <p>:u:{<user_id>}:sz       string: the idempotency position (text), '\n', the state blob
 *                              (st_sessionizer). A string because the blob (~400 B) is over
 *                              hash-max-listpack-value (64): as a hash field it made the hash
 *                              a hashtable (bench/full_pipeline --users 100 --days 200: 744 B
 *                              per user as a hash, 596 B as a string).
 *   <p>:dl:{p<partition>}      zset: user_id -> deadline_ms of the user's open session
 *   <p>:st:{p<partition>}      zset: score = commit offset, member "<offset>:<clock>" (the
 *                              clock's text form, st_sessionizer_clock_format: stream time, then
 *                              its users; a bare "<stream_time_ms>" from earlier versions is read
 *                              as a clock without users); the last SZ_STORE_COMMIT_POINTS_KEPT
 *                              commit points of a partition
 *   <p>:rd:{p<partition>}      hash: input topic -> the offset after the last record of the
 *                              partition the sessionizer has read and applied (saved with the
 *                              commit points): its read position, ahead of the commit point by
 *                              the records it holds; `stint lag --sessionizer` reads it
 *   <p>:u:{<user_id>}:clu:prof hash, the clusterer's (clu_store.h), of which the profile join
 *                              reads gender (m|f, else unknown), age (< 0 unknown), country
 *                              ("" unknown), registered_s (0 unknown); unknown or missing
 *                              fields are null in SessionEvent.
 * The profile was a key of its own (<p>:u:{<user_id>}:profile, registered_ms) up to the layout
 * of clu_store.h's "v" 2; the clusterer that wrote it wrote the same values into clu:prof in the
 * same script call, so clu:prof alone serves users of either layout.
 *
 * Migration from the hash <p>:u:{<user_id>}:sess (p position, s blob; the same position text and
 * blob). A read GETs sz and, for the users without one, HGETs sess's s in a second round, so the
 * core sees the same state as before. The write script compares against sz's position, or sess's
 * p when sz is absent, so the compare-and-set and replay rejection are unchanged; the write that
 * creates sz deletes sess in the same script call, so a crash leaves a user wholly in one layout
 * (a refused write changes neither). Only users not written since the upgrade (and new users,
 * until their first write) cost the second read round.
 * Upgrade with no old sessionizer running alongside a new one (stop the old instances, or scale
 * to 0, before starting the new): an old instance given a partition back would not see sz, take
 * its users for new ones and write sess again, which the new code would then not read. Running a
 * previous version again after this one wrote is not covered, for the same reason. */
#ifndef SZ_STORE_H
#define SZ_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "st_err.h"
#include "st_redis.h"
#include "st_sessionizer.h"

#define SZ_STORE_COMMIT_POINTS_KEPT 1000
#define SZ_PROFILE_TEXT_MAX         128

typedef struct sz_store sz_store_t;

/* One commit point of a partition: the offset the consumer resumes from and the clock (stream
 * time and the users it is made of) the partition had just before that offset
 * (clock.has_time false: none yet). */
typedef struct {
    int32_t partition;
    int64_t offset;
    st_sessionizer_clock_t clock;
    int64_t read_next; /* the read position saved with it (-1 = none; ignored by loads) */
} sz_commit_point_t;

/* A user's profile as far as it is known. Strings NUL-terminated ("" = unknown). */
typedef struct {
    bool found; /* some field is known */
    char gender[8];
    bool has_age;
    int32_t age;
    char country[SZ_PROFILE_TEXT_MAX];
    bool has_registered;
    int64_t registered_ms;
} sz_profile_t;

typedef struct {
    uint64_t writes_applied;  /* EVALSHA calls that wrote a state */
    uint64_t writes_rejected; /* at or below the stored position (replays) */
    uint64_t state_bytes;     /* bytes of state blobs written */
} sz_store_stats_t;

/* Creates the store over redis (borrowed, must outlive it; the Lua script is registered with it).
 * prefix is copied. NULL on ENOMEM. */
sz_store_t *sz_store_new(st_redis_t *redis, const char *prefix);
void sz_store_destroy(sz_store_t *s);

/* The st_sessionizer_store_t view (owned by s). */
st_sessionizer_store_t *sz_store_iface(sz_store_t *s);

/* Records commit points (one pipelined round: ZADD + trim per point with a clock, HSET of
 * read_next under topic per point with one). 0 or -1 (err, retriable on a connection error). */
int sz_store_save_commit_points(sz_store_t *s, const char *topic, const sz_commit_point_t *pts,
                                size_t n, st_err_t *err);

/* The clock of each point's partition at its offset (pts[i].partition, pts[i].offset in;
 * pts[i].clock out): the one recorded at exactly that offset (the largest stream time if
 * several), else none (the replayed records then rebuild it, as docs/sessionizer.md says; a point
 * recorded further on would make records late that were not late the first time). One
 * pipelined round. 0 or -1 (err). */
int sz_store_load_stream_times(sz_store_t *s, sz_commit_point_t *pts, size_t n, st_err_t *err);

/* Reads the profiles of n users (one pipelined round of HMGET). 0 or -1 (err). */
int sz_store_get_profiles(sz_store_t *s, const st_sessionizer_user_t *users, size_t n,
                          sz_profile_t *out, st_err_t *err);

void sz_store_stats(const sz_store_t *s, sz_store_stats_t *out);

#endif
