/* lag_view.h - what `stint lag` shows: a consumer group's per-partition offsets as a table (like
 * kafka-consumer-groups --describe) or one JSON document, and the group's caught-up test. Pure:
 * no Kafka, no Redis, so the formats are unit-tested (tests/unit/test_lag_view.c). */
#ifndef LAG_VIEW_H
#define LAG_VIEW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* One partition. Strings borrowed. */
typedef struct {
    const char *topic;
    int32_t partition;
    int64_t committed; /* the group's committed offset, -1 = none */
    int64_t read;      /* where the consumer has read to (held records), -1 = unknown */
    int64_t log_start, log_end;
    const char *member; /* owning member, NULL = none */
} lag_row_t;

/* A group. Strings and rows borrowed. */
typedef struct {
    const char *group;
    const char *state;
    int members;
    bool show_read; /* the READ-OFFSET and UNREAD columns (`--sessionizer`) */
    const lag_row_t *rows;
    size_t nrows;
} lag_view_t;

/* log_end - committed (log_start when nothing is committed), at least 0. */
int64_t lag_row_lag(const lag_row_t *r);
/* Where the partition has been read to: read when it lies in [committed, log_end] (a read
 * position outside it is stale: a recreated topic, a commit from another member), else the
 * committed offset (log_start when none). */
int64_t lag_row_read_to(const lag_row_t *r);
/* log_end - lag_row_read_to, at least 0: records nobody has read yet. */
int64_t lag_row_unread(const lag_row_t *r);

int64_t lag_view_total_lag(const lag_view_t *v);
int64_t lag_view_total_unread(const lag_view_t *v);
/* No partition has unread records. False for a view without rows: a group with members but no
 * commits and no assignment yet (its first rebalance) has read nothing. */
bool lag_view_caught_up(const lag_view_t *v);

/* The table: a header line (group, state, members), one line per row, a TOTAL line whose last
 * field is the total unread (= the total lag without show_read). */
void lag_view_table(const lag_view_t *v, FILE *out);
/* One JSON document on one line: group, state, members, partitions (topic, partition,
 * current_offset (null when none), read_offset (null when unknown), log_start_offset,
 * log_end_offset, lag, unread, member (null when none)), total_lag, total_unread, caught_up.
 * 0, or -1 when out of memory. */
int lag_view_json(const lag_view_t *v, FILE *out);

#endif
