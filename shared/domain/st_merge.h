/* st_merge.h - the listens of a Last.fm 1K file in ascending time order without loading it: one
 * index pass records each user block's byte range, then every block is read in small chunks
 * (backwards when newest-first) and the blocks are k-way merged with a heap (globally, or one user
 * at a time). */
#ifndef ST_MERGE_H
#define ST_MERGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "st_err.h"
#include "st_lastfm.h"

/* A block is a maximal run of valid lines with the same user id (bad lines in between do not end
 * it). A user may own several blocks; each is merged as its own cursor. A block is read in the
 * direction most of its lines follow: backwards when they are newest-first (the Last.fm 1K), from
 * its first line when oldest-first. Lines are yielded in that file order even where the block does
 * not follow it perfectly (counted as inversions), so the output is ascending wherever each block
 * is monotonic.
 * Order of the global stream: (ts_ms, user_id bytewise, line_no) of each cursor's head. */

typedef struct {
    size_t chunk_bytes; /* bytes read per step, per cursor (default 32 KiB; minimum 16) */
    /* Called once per bad line during the index pass (after it is counted and logged); the view
     * is valid during the call only. NULL: not called. */
    void (*on_bad)(void *ctx, const st_lastfm_listen_t *bad);
    void *on_bad_ctx;
    uint64_t log_max; /* bad lines logged individually (0 = default 20; UINT64_MAX = all) */
    bool quiet;       /* log no bad lines at all */
} st_merge_opts_t;

typedef struct {
    st_lastfm_stats_t lines;    /* the index pass over the whole file */
    uint64_t blocks;            /* user blocks found */
    uint64_t users;             /* distinct user ids */
    uint64_t inversions;        /* valid lines against their block's direction (of the previous
                                   valid line of the block) */
    uint64_t yielded;           /* listens returned so far */
    uint64_t buffer_bytes;      /* cursor buffer bytes allocated now */
    uint64_t buffer_bytes_peak; /* the most ever allocated at once */
} st_merge_stats_t;

typedef struct st_merge st_merge_t;

/* Opens path (a listens file, or a dataset directory) and runs the index pass (reads the file
 * once, sequentially). opts may be NULL for the defaults (copied). Returns a new merger (free with
 * st_merge_destroy) or NULL with errstr filled (open/read error, out of memory). Memory is
 * O(blocks), independent of the number of lines. */
st_merge_t *st_merge_open(const char *path, const st_merge_opts_t *opts, char *errstr,
                          size_t errstr_size);

/* The next valid listen of the whole file in global order. Returns 1, 0 (end) or -1 (I/O error,
 * or the merger is already in per-user mode; err filled). *out's views are valid until the next
 * call on m; out->line_no and out->offset are the line's place in the file. */
int st_merge_next(st_merge_t *m, st_lastfm_listen_t *out, st_err_t *err);

/* Per-user mode: moves to the next user (users in bytewise user-id order) and sets *user_id
 * (NUL-terminated, owned by m, valid until st_merge_destroy). Returns 1, 0 (no more users) or
 * -1 (already in global mode). The user's listens, ascending, come from st_merge_next_in_user. */
int st_merge_next_user(st_merge_t *m, const char **user_id, st_err_t *err);

/* The current user's next listen in ascending time (all of its blocks merged). Returns 1, 0 (this
 * user is done) or -1 (I/O error, or no current user). Views valid until the next call on m. */
int st_merge_next_in_user(st_merge_t *m, st_lastfm_listen_t *out, st_err_t *err);

/* Counters (borrowed; valid until destroy). */
const st_merge_stats_t *st_merge_stats(const st_merge_t *m);

/* Closes the file and frees everything. NULL is a no-op. */
void st_merge_destroy(st_merge_t *m);

#endif
