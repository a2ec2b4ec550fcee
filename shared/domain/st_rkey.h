/* st_rkey.h - every Redis key stint writes, built in one place. prefix is redis.prefix (e.g.
 * "stint", no trailing ':'). A user's keys carry the user id as the Redis Cluster hash tag, so
 * one script call may touch all of them; a partition's keys carry "p<partition>".
 *
 *   <p>:u:{<user>}:sz             string the sessionizer's state (st_sessionizer.h, sz_store.h)
 *   <p>:u:{<user>}:clu:prof       hash   the clusterer's per-user state (clu_store.h), with the
 *                                        profile the sessionizer reads and the cluster
 *                                        assignment the predictor reads
 *   <p>:u:{<user>}:clu:lens       string the clusterer's recent lengths, packed
 *   <p>:u:{<user>}:pred:s         string the predictor's per-user state (pred_store.h)
 *   <p>:u:{<user>}:ingest:marks   string ingest's duplicate marks, packed (ingest_store.h)
 *   <p>:dl:{p<n>}                 zset   the sessionizer's deadlines of partition n
 *   <p>:st:{p<n>}                 zset   the sessionizer's commit points of partition n
 *   <p>:rd:{p<n>}                 hash   the sessionizer's read position of partition n, by topic
 *   <p>:track:<16 hex digits>     hash   a track's metadata (st_trackmeta.h)
 *   <p>:clustering:refit          string the clusterer's last re-fit
 *   <p>:clustering:refit:seq      string the re-fits' counter (INCR), shared by every instance
 * A user id starting with '}' (which would leave the hash tag empty) has <p>:U:{~<user>}:<what>
 * instead, with the same <what>s (such users' state under the earlier <p>:u:{}...} keys is not
 * read). With redis.cluster, redis.prefix has no '{' or '}' (st_service checks).
 * Keys of earlier layouts, read or deleted during migrations: <p>:u:{<user>}:sess (a hash),
 * <p>:u:{<user>}:pred (a hash), <p>:u:{<user>}:pred:hist,
 * <p>:u:{<user>}:clu:applied:<topic>, <p>:u:{<user>}:clu:len (a list), <p>:u:{<user>}:profile,
 * <p>:u:{<user>}:cluster and <p>:u:{<user>}:ingest:seen (a hash of marks);
 * <p>:ingest:seen:<event_id> strings expire by their TTL.
 *
 * Every builder appends the key and a terminating NUL byte that is not counted in out->len
 * (st_buf keeps one), and returns 0, or -1 when out of memory. */
#ifndef ST_RKEY_H
#define ST_RKEY_H

#include <stddef.h>
#include <stdint.h>

#include "st_buf.h"

/* The <what> of a user's keys. */
#define ST_RKEY_SZ           "sz"
#define ST_RKEY_CLU_PROF     "clu:prof"
#define ST_RKEY_CLU_LENS     "clu:lens"
#define ST_RKEY_PRED         "pred"
#define ST_RKEY_PRED_STATE   "pred:s"
#define ST_RKEY_INGEST_MARKS "ingest:marks"
/* Earlier layouts. */
#define ST_RKEY_SESS            "sess"
#define ST_RKEY_PROFILE         "profile"
#define ST_RKEY_CLUSTER         "cluster"
#define ST_RKEY_CLU_LEN         "clu:len"
#define ST_RKEY_INGEST_SEEN     "ingest:seen"
#define ST_RKEY_PRED_HIST       "pred:hist"
#define ST_RKEY_CLU_APPLIED_PRE "clu:applied:" /* + topic */

/* The <what> of a partition's keys. */
#define ST_RKEY_DEADLINES "dl"
#define ST_RKEY_COMMIT    "st"
#define ST_RKEY_READ      "rd"

/* <prefix>:u:{<user[0..user_len)>}:<what><what2> (what2 may be NULL). */
int st_rkey_user(st_buf_t *out, const char *prefix, const char *user, size_t user_len,
                 const char *what, const char *what2);
/* <prefix>:<what>:{p<partition>} */
int st_rkey_partition(st_buf_t *out, const char *prefix, const char *what, int32_t partition);
/* <prefix>:track:<hash as 16 lower-case hex digits> */
int st_rkey_track(st_buf_t *out, const char *prefix, uint64_t hash);
/* The same into out[0..size) (NUL included), for callers on the per-record path that keep no
 * buffer: the key's length, or -1 when it does not fit. */
int st_rkey_track_to(char *out, size_t size, const char *prefix, uint64_t hash);
/* <prefix>:clustering:refit */
int st_rkey_refit(st_buf_t *out, const char *prefix);
/* <prefix>:clustering:refit:seq */
int st_rkey_refit_seq(st_buf_t *out, const char *prefix);

#endif
