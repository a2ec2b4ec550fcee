/* st_sessions_offline.c - offline sessionizing of a Last.fm-format dataset: st_merge per user ->
 * st_listen validation -> catalog duration -> st_sessionizer (in-memory store, maximal grace,
 * one user per partition, flushed after each user). */
#include "st_sessions_offline.h"

#include <stdlib.h>
#include <string.h>

#include "st_listen.h"
#include "st_merge.h"
#include "st_time.h"

void st_sessions_offline_opts_default(st_sessions_offline_opts_t *opts)
{
    memset(opts, 0, sizeof *opts);
    st_session_rule_default(&opts->rule);
}

/* Counts the parser's bad lines (the merger's index pass sees each once). */
static void on_bad(void *ctx, const st_lastfm_listen_t *bad)
{
    (void)bad;
    (*(uint64_t *)ctx)++;
}

/* Hands the CLOSED events of the last prepare to cb, then writes the states. */
static int deliver(st_sessionizer_t *sz, st_sessions_offline_cb cb, void *arg,
                   st_sessions_offline_stats_t *stats, char *errstr, size_t errstr_size)
{
    size_t n;
    const st_session_event_t *ev = st_sessionizer_events(sz, &n);
    for (size_t i = 0; i < n; i++) {
        if (ev[i].kind != ST_SESSION_EVENT_CLOSED)
            continue;
        stats->sessions++;
        if (cb(arg, ev[i].user_id, &ev[i].summary) != 0) {
            st_errstr(errstr, errstr_size, "sessions: stopped by the callback");
            return -1;
        }
    }
    st_err_t err = {0};
    if (st_sessionizer_finish(sz, &err) != 0) {
        st_errstr(errstr, errstr_size, "sessions: %s", err.text);
        return -1;
    }
    return 0;
}

int st_sessions_offline_run(const st_sessions_offline_opts_t *opts, st_sessions_offline_cb cb,
                            void *arg, st_sessions_offline_stats_t *stats_out, char *errstr,
                            size_t errstr_size)
{
    st_sessions_offline_stats_t stats;
    memset(&stats, 0, sizeof stats);
    uint64_t bad_lines = 0;
    st_merge_opts_t mo = {.on_bad = on_bad, .on_bad_ctx = &bad_lines, .quiet = opts->quiet};
    st_merge_t *m = st_merge_open(opts->data_path, &mo, errstr, errstr_size);
    if (!m)
        return -1;
    st_sessionizer_config_t cfg;
    st_sessionizer_config_default(&cfg);
    cfg.rule = opts->rule;
    cfg.grace_ms = ST_SESSIONIZER_GRACE_MS_MAX;
    st_sessionizer_store_t *store = st_sessionizer_memstore_new();
    st_sessionizer_t *sz = store ? st_sessionizer_new(&cfg, store, errstr, errstr_size) : NULL;
    st_listen_t *l = malloc(sizeof *l);
    int rc = -1;
    if (!store || !l) {
        st_errstr(errstr, errstr_size, "sessions: out of memory");
        goto done;
    }
    if (!sz)
        goto done;
    int64_t now_ms = st_time_wall_ms();
    const char *user;
    st_err_t err = {0};
    int more;
    while ((more = st_merge_next_user(m, &user, &err)) == 1) {
        stats.users++;
        int64_t offset = 0;
        st_lastfm_listen_t rec;
        int got;
        while ((got = st_merge_next_in_user(m, &rec, &err)) == 1) {
            if (st_listen_from_record(&rec, now_ms, l, NULL) != ST_LISTEN_OK) {
                stats.rejected++;
                continue;
            }
            int64_t duration_ms = 0;
            if (!opts->catalog ||
                !st_catalog_lookup_key(opts->catalog, l->track_key, strlen(l->track_key),
                                       &duration_ms) ||
                duration_ms <= 0) {
                duration_ms = 0;
                stats.unknown_duration++;
            }
            st_sessionizer_record_t r = {
                0,
                offset++,
                l->user_id,
                strlen(l->user_id),
                l->timestamp_ms,
                duration_ms,
                st_session_identity_hash(l->artist_name, strlen(l->artist_name), l->track_name,
                                         strlen(l->track_name))};
            st_err_t perr = {0};
            if (st_sessionizer_push(sz, &r, &perr) < 0) {
                if (perr.code != ST_ERR_INVALID) {
                    st_errstr(errstr, errstr_size, "sessions: %s", perr.text);
                    goto done;
                }
                stats.rejected++;
                continue;
            }
            stats.listens++;
        }
        if (got < 0) {
            st_errstr(errstr, errstr_size, "sessions: %s", err.text);
            goto done;
        }
        if (st_sessionizer_prepare(sz, true, &err) != 0) {
            st_errstr(errstr, errstr_size, "sessions: %s", err.text);
            goto done;
        }
        if (deliver(sz, cb, arg, &stats, errstr, errstr_size) != 0)
            goto done;
        st_sessionizer_revoke(sz, 0);
    }
    if (more < 0) {
        st_errstr(errstr, errstr_size, "sessions: %s", err.text);
        goto done;
    }
    st_sessionizer_stats_t ss;
    st_sessionizer_stats(sz, &ss);
    stats.duplicates = ss.duplicates;
    rc = 0;
done:
    stats.lines = st_merge_stats(m)->lines.lines;
    stats.inversions = st_merge_stats(m)->inversions;
    stats.malformed = bad_lines;
    if (stats_out)
        *stats_out = stats;
    free(l);
    st_sessionizer_destroy(sz);
    st_sessionizer_memstore_destroy(store);
    st_merge_destroy(m);
    return rc;
}
