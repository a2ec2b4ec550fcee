/* st_applied.h - the idempotency of per-user state: "applied position per user and partition"
 * plus the rule for re-emitted copies, one way for every service that keeps per-user state in
 * Redis (predictor, clusterer). st_pipeline.h argues the batch protocol this serves.
 *
 * Markers. A user's state hash holds, per input topic and partition, the offset of the last
 * record applied to the user: field "a:<topic>:<partition>" -> offset. A service reads the
 * markers of the partitions in its batch (st_applied_read_field), skips records at or below them
 * (st_applied_done: their outputs are in Kafka already), and writes a user's changes with one
 * script call that first checks every marker it moves and then sets them (ST_APPLIED_LUA: when
 * any stored marker is at or past the batch's offset, the records were applied before by
 * another owner of the partition, and nothing is written).
 *
 * Limit and overflow. One batch may carry a user's records from at most ST_APPLIED_PARTS_MAX
 * partitions (records are keyed by user, so only a repartitioning spreads a user; 8 covers it).
 * A record beyond that is refused: the service sends it to its dead-letter topic with code
 * ST_APPLIED_OVERFLOW_CODE and counts it in stint_<service>_applied_overflow_total. No marker
 * is ever dropped silently.
 *
 * Copies. After a crash the sessionizer re-emits events, byte-identical, at new offsets
 * (docs/sessionizer.md). A user's sessions close in start order, so a CLOSED whose start is at or
 * before the last CLOSED start applied to the user (field "lc", ST_APPLIED_LC_FIELD) is such a
 * copy: only the markers move (st_applied_is_copy; ST_APPLIED_LUA's st_applied_lc moves lc).
 *
 * Clock: offsets only (no time). lc is record time of the user's own sessions, never compared
 * with another user's. */
#ifndef ST_APPLIED_H
#define ST_APPLIED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ST_APPLIED_PARTS_MAX     8
#define ST_APPLIED_FIELD_MAX     300 /* "a:<topic>:<partition>" with a topic up to 249 bytes */
#define ST_APPLIED_LC_FIELD      "lc"
#define ST_APPLIED_OVERFLOW_CODE "too_many_partitions"
#define ST_APPLIED_OVERFLOW_TEXT                                                                   \
    "the user's records span more than 8 partitions in one batch (ST_APPLIED_PARTS_MAX)"

/* One user's markers in a batch. */
typedef struct {
    int n;
    int32_t part[ST_APPLIED_PARTS_MAX];
    int64_t stored[ST_APPLIED_PARTS_MAX]; /* as read from the store, -1 none */
    int64_t last[ST_APPLIED_PARTS_MAX];   /* the batch's highest applied offset, -1 none */
    int64_t last_closed_ms;               /* lc: as read, then as the batch leaves it; -1 none */
} st_applied_t;

/* Empties a (no partitions, lc none). */
void st_applied_reset(st_applied_t *a);

/* The slot of partition; with add, a new slot when absent. -1 when absent (add false) or when all
 * ST_APPLIED_PARTS_MAX slots are taken (the overflow above). */
int st_applied_slot(st_applied_t *a, int32_t partition, bool add);

/* Writes "a:<topic>:" into buf; returns its length (>= size: truncated, an error). */
size_t st_applied_prefix(char *buf, size_t size, const char *topic);

/* Reads one field of the user's stored hash: a marker "<prefix><partition>" of a partition that
 * has a slot (others are not this batch's concern), or lc. Returns true when the field was one of
 * them (whether or not its partition has a slot). */
bool st_applied_read_field(st_applied_t *a, const char *prefix, size_t prefix_len,
                           const char *field, size_t field_len, const char *value);

/* Whether the record at offset in slot's partition was applied before (at or below the stored
 * marker). */
bool st_applied_done(const st_applied_t *a, int slot, int64_t offset);

/* Records that the batch applied offset in slot's partition. */
void st_applied_advance(st_applied_t *a, int slot, int64_t offset);

/* Whether a CLOSED starting at start_ms is a re-emitted copy (at or before lc). */
bool st_applied_is_copy(const st_applied_t *a, int64_t start_ms);

/* Records that the batch applied a CLOSED starting at start_ms (lc moves forward only). */
void st_applied_closed(st_applied_t *a, int64_t start_ms);

/* The script arguments of a's moved markers: *n (field, offset) pairs formatted into fields and
 * offs, and argv[0] = the count, argv[1..2n] the pairs (argv needs 1 + 2 * ST_APPLIED_PARTS_MAX
 * entries). Returns the number of argv entries written. */
typedef struct {
    char count[16];
    char fields[ST_APPLIED_PARTS_MAX][ST_APPLIED_FIELD_MAX];
    char offs[ST_APPLIED_PARTS_MAX][24];
} st_applied_args_t;
int st_applied_argv(const st_applied_t *a, const char *prefix, st_applied_args_t *buf,
                    const char **argv);

/* The same check-and-set on markers kept in memory (the in-memory stores of the services' unit
 * tests): stored holds n_stored (partition, offset) pairs of one user and topic, grown with
 * realloc. Returns 1 (set), 0 (some marker at or past its offset: nothing changed), -1 (no
 * memory). */
typedef struct {
    int32_t partition;
    int64_t offset;
} st_applied_mark_t;
int st_applied_mem_check_and_set(st_applied_mark_t **stored, size_t *n_stored,
                                 const st_applied_t *a);

/* Lua functions for the services' scripts (prepend to the script text):
 *   st_applied(h, i): ARGV[i] is the count n of (field, offset) pairs that follow. When any of
 *     those fields of hash h is at or past its offset, returns nil (nothing written); else sets
 *     them all and returns the index of the first argument after the pairs.
 *   st_applied_lc(h, start): true, and lc := start, when start is after h's lc (a new CLOSED);
 *     false for a copy. */
#define ST_APPLIED_LUA                                                                             \
    "local function st_applied(h, i)\n"                                                            \
    "  local n = tonumber(ARGV[i])\n"                                                              \
    "  for k = 0, n - 1 do\n"                                                                      \
    "    local last = tonumber(redis.call('HGET', h, ARGV[i + 1 + 2 * k]) or '-1')\n"              \
    "    if tonumber(ARGV[i + 2 + 2 * k]) <= last then return nil end\n"                           \
    "  end\n"                                                                                      \
    "  for k = 0, n - 1 do redis.call('HSET', h, ARGV[i + 1 + 2 * k], ARGV[i + 2 + 2 * k]) end\n"  \
    "  return i + 1 + 2 * n\n"                                                                     \
    "end\n"                                                                                        \
    "local function st_applied_lc(h, start)\n"                                                     \
    "  local lc = tonumber(redis.call('HGET', h, '" ST_APPLIED_LC_FIELD "') or '-1')\n"            \
    "  if tonumber(start) <= lc then return false end\n"                                           \
    "  redis.call('HSET', h, '" ST_APPLIED_LC_FIELD "', start)\n"                                  \
    "  return true\n"                                                                              \
    "end\n"

#endif
