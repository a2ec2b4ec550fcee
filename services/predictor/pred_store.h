/* pred_store.h - the predictor's per-user state behind one interface: read a batch's users in one
 * round, write each user's changes with one atomic check-and-set. pred_core.c holds the logic;
 * pred_store_redis.c keeps the state in Redis, pred_store_mem.c in memory (unit tests, benches).
 *
 * State per user:
 *   markers   st_applied (st_applied.h): per input partition the last offset applied, and lc,
 *             the start of the last CLOSED applied
 *   open      the open predictions and retracted ids (pred_open.h), as text
 *   cluster   the clusterer's assignment (read only: the clusterer writes it)
 *
 * Redis layout (pred_store_redis.c; <p> = redis.prefix, {..} the Redis Cluster hash tag):
 *   <p>:u:{<user>}:pred:s   string: "<lc>" then " <topic>:<partition>=<offset>" per marker (the
 *                           st_applied fields "lc" and "a:<topic>:<partition>", markers of every
 *                           topic the user was read from), '\n', then the body: the open
 *                           predictions (pred_open.h text, which starts with a digit or '-'),
 *                           or 'o' and the single prediction of the layout before os (hash field
 *                           o), or nothing (none yet: the closed past ends at lc). One string
 *                           because the open predictions (~100 B with one entry) are over
 *                           hash-max-listpack-value (64): as a hash field they made the hash a
 *                           hashtable, which Redis never converts back (bench/full_pipeline
 *                           --users 100 --days 200, at the end: 310 B per user as a hash, 208 B
 *                           as a string; with one open prediction ~512 B and ~280 B).
 *   <p>:u:{<user>}:clu:prof fields cluster, cold, version of the clusterer's hash
 *                           (clu_store.h); for a user the clusterer has not written since it
 *                           moved them there, its previous layout's <p>:u:{<user>}:cluster hash
 *                           (the same fields), read in the same round
 *   <p>:u:{<user>}:pred:hist  the history of CLOSED sessions earlier versions kept: no longer
 *                           read (the OPENED carries the recent sessions), deleted by the
 *                           migration below.
 *
 * Migration from the hash <p>:u:{<user>}:pred (fields "a:<topic>:<partition>", lc, and os, or
 * the older single o). A read GETs pred:s and, for the users without one, HGETALLs the hash in a
 * second round and reads it as before (os, else o with the closed past ending at lc), so the core
 * sees the same state in either layout. The write script takes the stored state from pred:s, or
 * from the hash when pred:s is absent (every marker of every topic, lc, os or 'o' + o), so the
 * compare-and-set refuses the same replays against either layout; the write that creates pred:s
 * deletes the hash and pred:hist in the same script call, and a refused write changes nothing,
 * so a crash leaves a user wholly in one layout. A write that carries no new text keeps the
 * hash's, which is why the body may hold o's text. Users not written since the upgrade (and new
 * users until their first write) cost the second read round. Later writes touch pred:s alone
 * (its existence proves the hash and the list are gone). Upgrade with no old predictor running
 * alongside a new one (stop or scale the old instances to 0 first): an old instance would not
 * see pred:s, would take the user's markers as absent and apply records again into a new hash
 * that the new code ignores. Running a previous version again after this one wrote is not
 * covered, for the same reason.
 *
 * Write semantics (both stores): a user's write first checks every marker it moves; when any
 * stored marker is at or past the write's offset, the records were applied before (by another
 * owner of the partition, or by an attempt whose reply was lost) and nothing is written. Else the
 * markers move, lc moves forward to the write's lc, and the open predictions are replaced when
 * the write carries them. */
#ifndef PRED_STORE_H
#define PRED_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pred_open.h"
#include "st_applied.h"
#include "st_err.h"
#include "st_redis.h"

#define PRED_STORE_VERSION_MAX 80

/* One user of a read: the core fills user and the applied slots of the batch's partitions; the
 * store fills the stored markers, lc, open and the cluster. */
typedef struct {
    const char *user;
    st_applied_t *applied;
    pred_open_t *open; /* reset by the store, then parsed from the stored text */
    int cluster;       /* -1: none (or not asked) */
    bool cluster_cold;
    char cluster_version[PRED_STORE_VERSION_MAX];
} pred_store_user_t;

/* One user's write: the markers the batch moved (slots with last >= 0) and its lc, and the new
 * open-prediction text (NULL: unchanged). */
typedef struct {
    const char *user;
    const st_applied_t *applied;
    const char *open_text;
} pred_store_write_t;

typedef struct {
    void *ctx;
    /* Reads n users' state in one round (with the cluster assignment when want_cluster). 0, or
     * -1 with err (retriable on a connection error). */
    int (*read)(void *ctx, pred_store_user_t *users, size_t n, bool want_cluster, st_err_t *err);
    /* Writes n users' changes (each user atomically, as above). 0, or -1 with err. */
    int (*write)(void *ctx, const pred_store_write_t *w, size_t n, st_err_t *err);
} pred_store_t;

/* The Redis store over redis (borrowed; the script is registered with it). in_topic names the
 * markers. NULL on no memory. */
pred_store_t *pred_store_redis_new(st_redis_t *redis, const char *prefix, const char *in_topic);
void pred_store_redis_destroy(pred_store_t *s);

/* The in-memory store. */
pred_store_t *pred_store_mem_new(void);
void pred_store_mem_destroy(pred_store_t *s);
/* The next n writes succeed, the ones after fail (retriable) until n is set again (-1: never
 * fail): a crash between the outputs and the state, for tests. */
void pred_store_mem_fail_after(pred_store_t *s, long n);
/* Every read fails (retriable) while fail is true: Redis gone in the middle of a batch. */
void pred_store_mem_fail_reads(pred_store_t *s, bool fail);
/* Sets a user's cluster assignment (what the clusterer would write). */
int pred_store_mem_set_cluster(pred_store_t *s, const char *user, int cluster, bool cold,
                               const char *version);
/* A user's stored open-prediction text and lc (NULL / -1 when the user has none). */
const char *pred_store_mem_open_text(const pred_store_t *s, const char *user);
int64_t pred_store_mem_lc(const pred_store_t *s, const char *user);

#endif
