/* clu_store.h - the clusterer's per-user state behind one interface: read a batch's users in one
 * round, write each user's changes with one atomic call. clu_core.c holds the logic;
 * clu_store_redis.h keeps the state in Redis, clu_store_mem.h in memory (unit tests).
 *
 * State per user:
 *   markers   st_applied (st_applied.h): per partition of both input topics the last offset
 *             applied to the user, and lc, the start of the last CLOSED counted
 *   stats     from the CLOSED sessions: count n, sum_s, max_s, tracks, and the last median_window
 *             lengths (the median feature)
 *   demo      from the last UserProfile: gender, age, country, registered_s
 *   cluster   the current assignment: cluster, cold, version
 *
 * Redis layout (clu_store_redis.c; <p> = redis.prefix, {..} the Redis Cluster hash tag, so one
 * script call may touch all of a user's keys). Two keys per user, sized to stay small: every
 * field of clu:prof is short, so Redis keeps it as one listpack (hash-max-listpack-value 64),
 * and the lengths, the one long value, are a string of their own.
 *   <p>:u:{<user>}:clu:prof  hash: "v" -> 2 (this layout; see Migration); "a:<sessions
 *                            topic>:<partition>" and "a:<profiles topic>:<partition>" -> offset,
 *                            "lc" -> start_ms (the st_applied fields, both topics in this one
 *                            hash); n, sum_s, max_s, tracks; gender (m|f|""), age (-1 unknown),
 *                            country, registered_s (0 unknown): read by the sessionizer too (its
 *                            OPENED events carry them); cluster, cold (0/1), version: the
 *                            assignment, read by the predictor
 *   <p>:u:{<user>}:clu:lens  string: the last median_window CLOSED lengths, oldest first, each
 *                            the LEB128 of its whole milliseconds (7 bits a byte, low group first,
 *                            the high bit on every byte but an entry's last: 3 bytes up to 35 min,
 *                            4 up to 74 h). Exact: the sessionizer's lengths are length_ms/1000
 *                            and training's are 3-decimal TSV values, so ms/1000.0 gives back the
 *                            same double and the median feature is the one training computes. A
 *                            length of another producer with a fraction of a millisecond would
 *                            be rounded to the millisecond (clamped to [0, 2^53] ms). The write
 *                            script appends and drops entries from the front, finding their
 *                            ends by the high bit, without decoding them.
 *   <p>:clustering:refit     string: the last re-fit of any instance (JSON, see clu_core.h)
 *   <p>:clustering:refit:seq string: the re-fits' counter (INCR), so that N in a re-fit's version
 *                            never repeats, across restarts and instances
 *
 * Write semantics (both stores): one atomic call per user, in two independent parts, one per
 * input topic. Each part first checks every marker of its topic the write moves: when any stored
 * marker is at or past the write's offset, that topic's records were applied before (by another
 * owner of the partition, or by an attempt whose reply was lost) and the part writes nothing.
 * Else its markers move and:
 *   sessions: each CLOSED of the write, in order, is counted (n, sum_s, max_s, tracks, a length
 *             appended to clu:lens, which keeps the last median_window) only when its start is
 *             after the stored lc, which then moves to it (st_applied_lc): the check is made
 *             again here, against the stored lc, not only by the core against the lc it read;
 *   profiles: gender, age, country, registered_s are replaced.
 * The assignment is written when the write carries one and either part was applied.
 *
 * Why per user, and per topic within it. The core reads each user once per batch, so it has one
 * set of moved markers per user (st_applied's unit); one call per user keeps one pipelined write
 * round. The two parts touch disjoint fields and are checked separately because a user's sessions
 * and profiles partitions may be owned by different consumers: refusing the whole user because
 * another owner applied its sessions would lose profile records nobody applied. A record is
 * applied at most once: a second owner applying the same batch is refused by the markers; one
 * applying an overlapping but different batch (it passes the check, its last offset being beyond
 * the stored one) counts none of the CLOSED the first one counted, since their starts are at or
 * before the stored lc, and leaves the profile of its last record, the newest of the partition.
 * A re-emitted copy of a CLOSED (the sessionizer's, at a new offset) is never counted twice, for
 * the same reason.
 *
 * Migration from the layout before "v" 2: the lengths in <p>:u:{<user>}:clu:len (a list of
 * length_s texts), the assignment in <p>:u:{<user>}:cluster (hash cluster, cold, version) and a
 * copy of the profile in <p>:u:{<user>}:profile (hash, known fields only, registered_ms). A read
 * whose clu:prof has no "v" (and no clu:lens) reads clu:len and cluster in a second round, so
 * the core sees the same state as before; the user's first write of this layout (the script's
 * HSETNX of "v", so each user's migration runs once and later writes pay one HSETNX) packs the
 * list into clu:lens (rounded to the millisecond, the rule above), copies cluster's fields into
 * clu:prof unless it has an assignment already, and deletes clu:len, cluster and profile. All in
 * the one script call, so a crash leaves a user wholly in one layout or the other. The readers
 * read both layouts: the predictor pipelines clu:prof's and cluster's fields and takes
 * clu:prof's when present; the sessionizer reads the profile from clu:prof only, where every
 * clusterer that wrote a profile hash wrote the same values in the same call. Upgrade the
 * sessionizer and the predictor before the clusterer: older ones read the keys this layout
 * deletes (they would see no profile / no assignment until upgraded).
 *
 * Migration from the layout before that (markers per record in
 * <p>:u:{<user>}:clu:applied:<topic>, hash partition -> offset; the last CLOSED start in clu:prof
 * field "ls"). ls is read as lc when lc is absent, and the user's first write of this layout
 * moves it to lc and deletes the old marker hashes (with the migration above). The old
 * markers are not read: a clusterer upgraded in place resumes at the committed offsets, so the
 * only records it sees again that the old one applied are those between the committed offset
 * and the old markers (applied, not yet committed when it stopped). Each kind is harmless:
 *   CLOSED   the old script counted a CLOSED only when its start was after ls and then set ls to
 *            it, so every counted CLOSED starts at or before ls = lc: a copy, not counted again;
 *   OPENED   the clusterer only moves markers for it;
 *   profile  applying a user's profile records again, in offset order, ends with the state they
 *            ended with before (the last one's) and the assignment stored; a user with several
 *            of them in that range may have intermediate assignments published again, as after
 *            any replay.
 * Not covered: running a previous version again after this one wrote (it finds neither ls nor
 * its markers and would count CLOSED copies again; it finds no clu:len and would start the
 * median window empty). */
#ifndef CLU_STORE_H
#define CLU_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "st_applied.h"
#include "st_bwatch.h"
#include "st_err.h"

#define CLU_STORE_COUNTRY_MAX 64

/* What the last UserProfile said. */
typedef struct {
    char gender;                         /* 'm', 'f', 0 unknown */
    int age;                             /* -1 unknown */
    char country[CLU_STORE_COUNTRY_MAX]; /* "" unknown */
    int64_t registered_s;                /* 0 unknown */
} clu_store_demo_t;

/* A user's profile features as stored. */
typedef struct {
    double n, sum_s, max_s, tracks; /* over the CLOSED sessions counted */
    clu_store_demo_t demo;
    double *lens; /* the last median_window lengths, oldest first (the caller's buffer) */
    int n_lens;
} clu_store_prof_t;

typedef struct {
    int cluster; /* -1: no assignment */
    bool cold;
    char version[ST_BWATCH_VERSION_MAX];
} clu_store_cluster_t;

/* One CLOSED session to count. */
typedef struct {
    int64_t start_ms;
    double length_s;
    int tracks;
} clu_store_closed_t;

/* One user of a read. The core fills user and the slots of the batch's partitions in sessions
 * and profiles; the store fills their stored markers, lc (in sessions), prof (prof->lens holds the
 * store's median_window values) and cluster. */
typedef struct {
    const char *user;
    st_applied_t *sessions, *profiles;
    clu_store_prof_t *prof;
    clu_store_cluster_t *cluster;
} clu_store_user_t;

/* One user's write (semantics above). */
typedef struct {
    const char *user;
    const st_applied_t *sessions, *profiles; /* the markers moved: slots with last >= 0 */
    const clu_store_closed_t *closed;        /* the CLOSED to count, in order */
    size_t n_closed;
    const clu_store_demo_t *demo;       /* the profile to store; NULL: none applied */
    const clu_store_cluster_t *cluster; /* the new assignment; NULL: unchanged */
} clu_store_write_t;

typedef struct {
    void *ctx;
    /* Reads n users' state in one round. 0, or -1 with err (retriable on a connection error,
     * fatal on an error reply). */
    int (*read)(void *ctx, clu_store_user_t *users, size_t n, st_err_t *err);
    /* Writes n users' changes in one round, each user atomically. 0, or -1 with err (as read);
     * after an error some of the users may have been written, which the markers make harmless
     * when the batch is processed and written again. */
    int (*write)(void *ctx, const clu_store_write_t *w, size_t n, st_err_t *err);
    /* The next re-fit number (1, 2, ...: one counter for every instance and restart). 0 with
     * *seq, or -1 with err. */
    int (*next_refit_seq)(void *ctx, int64_t *seq, st_err_t *err);
    /* Stores the last re-fit (JSON text, replacing the previous one). 0, or -1 with err. */
    int (*put_refit)(void *ctx, const char *json, st_err_t *err);
} clu_store_t;

#endif
