/* st_sessions_offline.h - sessionizes a Last.fm-format dataset offline through the streaming
 * sessionizer core (st_sessionizer with its in-memory store, one user at a time), so the offline
 * sessions are by construction the ones the streaming service closes. Used by `stint sessions`,
 * and by `stint train/evaluate --data DIR --catalog FILE`. */
#ifndef ST_SESSIONS_OFFLINE_H
#define ST_SESSIONS_OFFLINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "st_catalog.h"
#include "st_session.h"
#include "st_sessionizer.h"

typedef struct {
    const char *data_path;       /* dataset directory or the listens file itself */
    const st_catalog_t *catalog; /* borrowed; NULL: every duration unknown */
    st_session_rule_t rule;      /* gap and reference point (st_session_rule_default) */
    bool quiet;                  /* do not log malformed lines individually */
} st_sessions_offline_opts_t;

typedef struct {
    uint64_t lines;            /* lines of the listens file */
    uint64_t malformed;        /* lines the Last.fm parser rejected (skipped) */
    uint64_t rejected;         /* parsed lines the ingest validation rejects (st_listen; skipped) */
    uint64_t listens;          /* listens sessionized (exact duplicates included) */
    uint64_t duplicates;       /* exact duplicates (same user, time, artist, track): counted once */
    uint64_t unknown_duration; /* listens without a catalog duration */
    uint64_t users;
    uint64_t sessions;
    uint64_t inversions; /* listens against their user block's order (st_merge.h) */
} st_sessions_offline_stats_t;

/* Called once per closed session, users in bytewise user-id order and each user's sessions in
 * start order. user_id is NUL-terminated and borrowed for the call. Return 0 to go on, non-zero
 * to stop (st_sessions_offline_run then returns -1 with "stopped by the callback"). */
typedef int (*st_sessions_offline_cb)(void *arg, const char *user_id,
                                      const st_session_summary_t *session);

/* Fills opts with the defaults (rule defaults, no catalog, not quiet); data_path stays NULL. */
void st_sessions_offline_opts_default(st_sessions_offline_opts_t *opts);

/* Reads the dataset and calls cb per closed session. Each listen is validated and normalised as
 * the ingest service does (st_listen_from_record: trimmed names, timestamps from 2000-01-01 to
 * now + 1 day), its duration is the catalog's for its track key (st_trackmeta_key), and its
 * identity is st_session_identity_hash of the normalised artist and track names, as the streaming
 * service computes it from EnrichedListen. stats may be NULL. Returns 0, or -1 with errstr
 * (open/read error, out of memory, stopped by the callback). */
int st_sessions_offline_run(const st_sessions_offline_opts_t *opts, st_sessions_offline_cb cb,
                            void *arg, st_sessions_offline_stats_t *stats, char *errstr,
                            size_t errstr_size);

#endif
