/* st_session.c - the session rule, the per-user session history and the OPENED features. */
#include "st_session.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "st_buf.h"

#define MS_PER_HOUR 3600000LL
#define MS_PER_DAY  86400000LL

void st_session_rule_default(st_session_rule_t *rule)
{
    rule->gap_ms = ST_SESSION_GAP_MS_DEFAULT;
    rule->ref = ST_SESSION_REF_END;
}

int st_session_ref_parse(const char *s, st_session_ref_t *out)
{
    if (strcmp(s, "end") == 0) {
        *out = ST_SESSION_REF_END;
        return 0;
    }
    if (strcmp(s, "start") == 0) {
        *out = ST_SESSION_REF_START;
        return 0;
    }
    return -1;
}

const char *st_session_ref_name(st_session_ref_t ref)
{
    return ref == ST_SESSION_REF_START ? "start" : "end";
}

uint64_t st_session_identity_hash(const char *artist, size_t artist_len, const char *track,
                                  size_t track_len)
{
    /* Hash the two fields with a separator that cannot occur in either (TSV fields hold no tab),
     * so ("ab", "c") and ("a", "bc") differ. */
    uint64_t h = st_hash64(artist, artist_len, 0);
    h = st_hash64("\t", 1, h);
    return st_hash64(track, track_len, h);
}

int64_t st_session_deadline_ms(const st_session_rule_t *rule, const st_session_open_t *open)
{
    int64_t d = rule->ref == ST_SESSION_REF_END ? open->last_duration_ms : 0;
    return open->last_start_ms + d + rule->gap_ms;
}

static void open_start(st_session_open_t *open, const st_session_listen_t *l)
{
    bool known = l->duration_ms > 0;
    open->active = true;
    open->first_start_ms = l->listened_at_ms;
    open->last_start_ms = l->listened_at_ms;
    open->last_duration_ms = known ? l->duration_ms : 0;
    open->last_identity_hash = l->identity_hash;
    open->track_count = 1;
    open->unknown_duration_count = known ? 0 : 1;
}

void st_session_summarize(const st_session_open_t *open, st_session_summary_t *s)
{
    memset(s, 0, sizeof *s);
    s->start_ms = open->first_start_ms;
    s->last_start_ms = open->last_start_ms;
    s->end_ms = open->last_start_ms + open->last_duration_ms;
    s->length_ms = s->end_ms - s->start_ms;
    s->length_s = (double)s->length_ms / 1000.0;
    s->track_count = open->track_count;
    s->unknown_duration_count = open->unknown_duration_count;
    s->unknown_duration_share =
        open->track_count ? (double)open->unknown_duration_count / open->track_count : 0.0;
}

st_session_step_t st_session_step(const st_session_rule_t *rule, st_session_open_t *open,
                                  const st_session_listen_t *listen, st_session_summary_t *closed)
{
    if (!open->active) {
        open_start(open, listen);
        return ST_SESSION_STARTED;
    }
    if (listen->listened_at_ms == open->last_start_ms &&
        listen->identity_hash == open->last_identity_hash)
        return ST_SESSION_DUPLICATE;
    /* gap <= d || gap - d <= gap_ms is gap <= d + gap_ms for gap_ms >= 0: one comparison with the
     * deadline keeps the rule and the idle-close deadline identical by construction. */
    if (listen->listened_at_ms <= st_session_deadline_ms(rule, open)) {
        bool known = listen->duration_ms > 0;
        open->last_start_ms = listen->listened_at_ms;
        open->last_duration_ms = known ? listen->duration_ms : 0;
        open->last_identity_hash = listen->identity_hash;
        open->track_count++;
        if (!known)
            open->unknown_duration_count++;
        return ST_SESSION_CONTINUED;
    }
    st_session_summary_t tmp;
    st_session_summarize(open, closed ? closed : &tmp);
    open_start(open, listen);
    return ST_SESSION_SPLIT;
}

int st_session_close(st_session_open_t *open, st_session_summary_t *summary)
{
    if (!open->active)
        return -1;
    st_session_summarize(open, summary);
    memset(open, 0, sizeof *open);
    return 0;
}

void st_session_history_add(st_session_history_t *h, const st_session_summary_t *s,
                            uint32_t recent_n)
{
    if (recent_n < 1)
        recent_n = 1;
    if (recent_n > ST_SESSION_RECENT_MAX)
        recent_n = ST_SESSION_RECENT_MAX;
    h->session_count++;
    h->sum_length_ms += s->length_ms;
    h->last_end_ms = s->end_ms;
    h->last_length_ms = s->length_ms;
    while (h->n_recent >= recent_n) {
        size_t keep = h->n_recent - 1;
        memmove(h->recent_length_ms, h->recent_length_ms + 1, keep * sizeof h->recent_length_ms[0]);
        memmove(h->recent_start_ms, h->recent_start_ms + 1, keep * sizeof h->recent_start_ms[0]);
        memmove(h->recent_track_count, h->recent_track_count + 1,
                keep * sizeof h->recent_track_count[0]);
        memmove(h->recent_unknown_count, h->recent_unknown_count + 1,
                keep * sizeof h->recent_unknown_count[0]);
        h->n_recent--;
        if (h->n_detail > h->n_recent)
            h->n_detail = h->n_recent;
    }
    h->recent_length_ms[h->n_recent] = s->length_ms;
    h->recent_start_ms[h->n_recent] = s->start_ms;
    h->recent_track_count[h->n_recent] = s->track_count;
    h->recent_unknown_count[h->n_recent] = s->unknown_duration_count;
    h->n_recent++;
    h->n_detail++;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

void st_session_hour_weekday(int64_t ms, int *hour_utc, int *weekday)
{
    int64_t days = ms / MS_PER_DAY;
    int64_t rem = ms % MS_PER_DAY;
    if (rem < 0) {
        rem += MS_PER_DAY;
        days--;
    }
    *hour_utc = (int)(rem / MS_PER_HOUR);
    /* 1970-01-01 was a Thursday: weekday 3 with Monday = 0. */
    int64_t wd = (days + 3) % 7;
    *weekday = (int)(wd < 0 ? wd + 7 : wd);
}

double st_session_tsv_precision(double v, int decimals)
{
    if (!(fabs(v) < 1e15))
        return v;
    char text[64];
    snprintf(text, sizeof text, "%.*f", decimals, v);
    return strtod(text, NULL);
}

void st_session_features(const st_session_history_t *h, int64_t start_ms,
                         st_session_features_t *out)
{
    memset(out, 0, sizeof *out);
    out->start_ms = start_ms;
    st_session_hour_weekday(start_ms, &out->hour_utc, &out->weekday);
    out->session_index = h->session_count;
    if (h->session_count == 0)
        return;
    out->has_prev = true;
    out->prev_session_length_s = (double)h->last_length_ms / 1000.0;
    out->mean_session_length_s = (double)h->sum_length_ms / 1000.0 / h->session_count;
    out->gap_since_prev_s = (double)(start_ms - h->last_end_ms) / 1000.0;
    uint32_t n = h->n_recent;
    if (n > ST_SESSION_RECENT_MAX)
        n = ST_SESSION_RECENT_MAX;
    out->n_recent = n;
    int64_t sorted[ST_SESSION_RECENT_MAX];
    for (uint32_t i = 0; i < n; i++) {
        out->recent_lengths_s[i] = (double)h->recent_length_ms[i] / 1000.0;
        sorted[i] = h->recent_length_ms[i];
    }
    if (h->n_detail >= n) {
        out->n_recent_detail = n;
        for (uint32_t i = 0; i < n; i++) {
            out->recent_start_ms[i] = h->recent_start_ms[i];
            out->recent_track_count[i] = h->recent_track_count[i];
            out->recent_unknown_share[i] = st_session_tsv_precision(
                h->recent_track_count[i]
                    ? (double)h->recent_unknown_count[i] / h->recent_track_count[i]
                    : 0.0,
                ST_SESSION_SHARE_DECIMALS);
        }
    }
    uint32_t m = n < ST_SESSION_MEDIAN_WINDOW ? n : ST_SESSION_MEDIAN_WINDOW;
    if (m > 0) {
        int64_t *last = sorted + (n - m);
        qsort(last, m, sizeof last[0], cmp_i64);
        out->median_session_length_s =
            m % 2 ? (double)last[m / 2] / 1000.0
                  : ((double)last[m / 2 - 1] + (double)last[m / 2]) / 2000.0;
    }
}

char *st_session_id_format(const char *user_id, size_t user_id_len, int64_t start_ms, char *buf,
                           size_t size)
{
    snprintf(buf, size, "%.*s:%lld", (int)user_id_len, user_id, (long long)start_ms);
    return buf;
}
