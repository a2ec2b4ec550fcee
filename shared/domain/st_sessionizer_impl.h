/* st_sessionizer_impl.h - private to the st_sessionizer*.c files (not for use elsewhere): their
 * shared bounds, the key map and deadline index, and the batch's types. The API is
 * st_sessionizer.h. */
#ifndef ST_SESSIONIZER_IMPL_H
#define ST_SESSIONIZER_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "st_sessionizer.h"

/* Bounds that keep every sum below 2^53 (exact in Lua numbers and zset scores). */
#define ST_SZ_TIME_ABS_MAX    (INT64_C(1) << 50)
#define ST_SZ_DURATION_MAX_MS (INT64_C(1) << 40)
#define ST_SZ_OFFSET_MAX      (INT64_C(1) << 52)

/* The key map and the deadline index: st_sessionizer_index.c. */

/* A string-keyed open-addressing map of pointers to structs that start with st_sz_key_t. */
typedef struct {
    char *s; /* owned by the struct that embeds the key */
    size_t len;
    uint64_t hash;
} st_sz_key_t;

typedef struct {
    st_sz_key_t **slots;
    size_t cap; /* power of two or 0 */
    size_t n;
} st_sz_map_t;

/* NULL when absent. */
st_sz_key_t *st_sz_map_get(const st_sz_map_t *m, const char *s, size_t len, uint64_t hash);
/* Inserts k (absent). 0 or -1 (ENOMEM). */
int st_sz_map_put(st_sz_map_t *m, st_sz_key_t *k);
/* Removes k (present). */
void st_sz_map_del(st_sz_map_t *m, const st_sz_key_t *k);
/* Empties the map (keeps its slots; the entries are the caller's). */
void st_sz_map_clear(st_sz_map_t *m);
/* Frees the slots (not the entries) and zeroes the map. */
void st_sz_map_free(st_sz_map_t *m);
/* The hash a key is stored under. */
uint64_t st_sz_key_hash(const char *s, size_t len);
/* A NUL-terminated copy of len bytes; NULL on ENOMEM. */
char *st_sz_dup_bytes(const char *s, size_t len);
/* Grows *arr (elements of elem bytes) to hold at least need. 0 or -1 (ENOMEM, unchanged). */
int st_sz_grow(void **arr, size_t *cap, size_t need, size_t elem);

/* A tracked deadline: one per user with an open session, in a map and an indexed min-heap. */
typedef struct {
    st_sz_key_t key;
    int64_t deadline_ms;
    size_t heap_pos;
} st_sz_dl_t;

typedef struct {
    st_sz_map_t map;
    st_sz_dl_t **heap;
    size_t n, cap;
} st_sz_dlindex_t;

/* Sets a user's deadline (adds or moves it). 0 or -1 (ENOMEM). */
int st_sz_dl_set(st_sz_dlindex_t *x, const char *user, size_t len, int64_t deadline_ms);
/* Removes a user's deadline; no-op when absent. */
void st_sz_dl_remove(st_sz_dlindex_t *x, const char *user, size_t len);
/* Appends the entries of the subtree at heap index i with a deadline below wm (all when flush)
 * to *out (*n used, *cap allocated). 0 or -1 (ENOMEM). */
int st_sz_dl_collect(const st_sz_dlindex_t *x, size_t i, bool flush, int64_t wm, st_sz_dl_t ***out,
                     size_t *n, size_t *cap);
/* Frees every entry and the index, and zeroes it. */
void st_sz_dl_free(st_sz_dlindex_t *x);

/* The batch: the buffers (st_sessionizer.c) and the rule step (st_sessionizer_apply.c). */

/* A buffered record (owns its user id). */
typedef struct {
    int64_t t_ms;
    uint64_t identity_hash;
    int64_t offset;
    int64_t duration_ms;
    uint64_t seq; /* position in the partition's offset queue */
    uint64_t generation;
    int32_t partition;
    uint32_t user_len;
    char *user;
} st_sz_brec_t;

/* A user's buffered records in (t, identity, offset) order, for the speculative view of early
 * OPENED (config.announce only). */
typedef struct {
    int64_t t_ms;
    uint64_t identity_hash;
    int64_t offset;
    int64_t duration_ms;
} st_sz_prec_t;

typedef struct {
    st_sz_key_t key;
    st_sz_prec_t *v;
    uint32_t n, cap;
    bool dirty; /* in the partition's dirty list: records pushed since the last prepare */
} st_sz_pend_t;

/* A user touched by the current batch. */
typedef struct {
    st_sz_key_t key;
    int32_t partition;
    bool has_wm;
    int64_t wm_ms; /* watermark of the partition at prepare */
    bool flush;
    int64_t view_seen;          /* highest offset pushed on the partition at prepare, -1 if none */
    size_t first_rec, last_rec; /* chain through batch rec_next; SIZE_MAX when none */
    bool due;                   /* its tracked deadline passed: due_ms */
    int64_t due_ms;
} st_sz_work_t;

/* A session of a user's speculative view (early OPENED). */
typedef struct {
    int64_t start_ms, last_start_ms, offset;
    st_session_features_t features;
    uint64_t hash;
    int ann; /* index into the new announcement list, -1 when not announced */
    bool emit;
    uint32_t n_retract;
    int64_t retract[ST_SESSION_RETRACT_MAX];
} st_sz_view_t;

struct st_sz_part; /* a partition: its reorder buffer, commit queue, deadlines (st_sessionizer.c) */

struct st_sessionizer {
    st_sessionizer_config_t config;
    st_sessionizer_store_t *store;
    struct st_sz_part *parts;
    size_t n_parts, cap_parts;
    uint64_t next_generation;
    st_sessionizer_stats_t stats;

    bool pending; /* prepared, not finished */
    st_sz_brec_t *recs;
    size_t *rec_next;
    size_t n_recs, cap_recs;
    st_sz_work_t *works;
    size_t n_works, cap_works;
    st_sz_map_t work_map;
    st_sessionizer_user_t *users;
    st_buf_t *blobs; /* read blobs, then new blobs, one per work */
    st_sessionizer_write_t *writes;
    size_t cap_per_work; /* capacity of users, blobs and writes */
    size_t n_writes;
    st_sessionizer_stale_t *stale; /* capacity cap_per_work */
    size_t n_stale;
    st_sz_dl_t **due; /* deadlines passed at prepare, and the index of their partition */
    size_t *due_part;
    size_t n_due, cap_due;
    st_session_event_t *events;
    size_t n_events, cap_events;
    st_sz_view_t views[ST_SESSIONIZER_ANN_MAX];
};

/* Applies one user's released records (the chain w->first_rec through sz->rec_next) and a due
 * deadline to its state st, appending the events to sz->events. Sets *changed when st must be
 * written. 0 or -1 (ENOMEM). */
int st_sz_apply_work(st_sessionizer_t *sz, const st_sz_work_t *w, st_sessionizer_state_t *st,
                     bool *changed);
/* Early OPENED (config.announce): the user's speculative view (st + its buffered records pend,
 * NULL when none) against the announcements stored in st; emits what differs and updates them.
 * Sets *changed when st must be written. 0 or -1 (ENOMEM). */
int st_sz_apply_view(st_sessionizer_t *sz, const st_sz_work_t *w, const st_sz_pend_t *pend,
                     st_sessionizer_state_t *st, bool *changed);

#endif
