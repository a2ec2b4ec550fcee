/* st_records.c - the codecs of the records that cross services (see st_records.h). Field names
 * appear here and in schemas/ only. */
#include "st_records.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- reading and writing one record's fields; the first failing field is remembered ---- */

typedef struct {
    const avro_value_t *v;
    const char *bad;  /* first field that was missing or of the wrong type */
    const char *why;  /* first contract violation */
    char why_buf[96]; /* storage for a formatted why */
} rd_t;

static void rd_fail(rd_t *r, const char *field)
{
    if (!r->bad)
        r->bad = field;
}

static void rd_str(rd_t *r, const char *f, st_str_t *out)
{
    out->ptr = "";
    out->len = 0;
    if (st_avro_get_string(r->v, f, &out->ptr, &out->len) != 0)
        rd_fail(r, f);
}

static void rd_nstr(rd_t *r, const char *f, st_str_t *out)
{
    bool is_null;
    const char *p = NULL;
    size_t len = 0;
    if (st_avro_get_nullable_string(r->v, f, &p, &len, &is_null) != 0) {
        rd_fail(r, f);
        is_null = true;
    }
    out->ptr = is_null ? NULL : p;
    out->len = is_null ? 0 : len;
}

static void rd_bytes(rd_t *r, const char *f, st_str_t *out, bool nullable)
{
    bool is_null = false;
    const void *p = NULL;
    size_t len = 0;
    int rc = nullable ? st_avro_get_nullable_bytes(r->v, f, &p, &len, &is_null)
                      : st_avro_get_bytes(r->v, f, &p, &len);
    if (rc != 0) {
        rd_fail(r, f);
        is_null = nullable;
    }
    out->ptr = is_null ? NULL : (p ? (const char *)p : "");
    out->len = is_null ? 0 : len;
}

static void rd_long(rd_t *r, const char *f, int64_t *out)
{
    *out = 0;
    if (st_avro_get_long(r->v, f, out) != 0)
        rd_fail(r, f);
}

static void rd_nlong(rd_t *r, const char *f, st_opt_i64_t *out)
{
    bool is_null = true;
    out->v = 0;
    if (st_avro_get_nullable_long(r->v, f, &out->v, &is_null) != 0)
        rd_fail(r, f), is_null = true;
    out->set = !is_null;
}

static void rd_int(rd_t *r, const char *f, int32_t *out)
{
    *out = 0;
    if (st_avro_get_int(r->v, f, out) != 0)
        rd_fail(r, f);
}

static void rd_nint(rd_t *r, const char *f, st_opt_i32_t *out)
{
    bool is_null = true;
    out->v = 0;
    if (st_avro_get_nullable_int(r->v, f, &out->v, &is_null) != 0)
        rd_fail(r, f), is_null = true;
    out->set = !is_null;
}

static void rd_double(rd_t *r, const char *f, double *out)
{
    *out = 0;
    if (st_avro_get_double(r->v, f, out) != 0)
        rd_fail(r, f);
}

static void rd_ndouble(rd_t *r, const char *f, st_opt_f64_t *out)
{
    bool is_null = true;
    out->v = 0;
    if (st_avro_get_nullable_double(r->v, f, &out->v, &is_null) != 0)
        rd_fail(r, f), is_null = true;
    out->set = !is_null;
}

static void rd_bool(rd_t *r, const char *f, bool *out)
{
    *out = false;
    if (st_avro_get_boolean(r->v, f, out) != 0)
        rd_fail(r, f);
}

/* The index of the field's enum symbol in syms (n of them). */
static int rd_enum(rd_t *r, const char *f, const char *const *syms, int n)
{
    const char *s = NULL;
    if (st_avro_get_enum(r->v, f, &s) == 0) {
        for (int i = 0; i < n; i++)
            if (strcmp(s, syms[i]) == 0)
                return i;
    }
    rd_fail(r, f);
    return 0;
}

/* The array's size; its first index to keep so that at most max (the newest) remain. */
static size_t rd_array(rd_t *r, const char *f, uint32_t max, uint32_t *n_kept)
{
    size_t n = 0;
    if (st_avro_get_array_size(r->v, f, &n) != 0) {
        rd_fail(r, f);
        n = 0;
    }
    size_t first = n > max ? n - max : 0;
    *n_kept = (uint32_t)(n - first);
    return first;
}

static void rd_doubles(rd_t *r, const char *f, double *items, uint32_t *n, uint32_t max)
{
    size_t first = rd_array(r, f, max, n);
    for (uint32_t i = 0; i < *n; i++)
        if (st_avro_get_double_item(r->v, f, first + i, &items[i]) != 0)
            rd_fail(r, f);
}

static void rd_longs(rd_t *r, const char *f, int64_t *items, uint32_t *n, uint32_t max)
{
    size_t first = rd_array(r, f, max, n);
    for (uint32_t i = 0; i < *n; i++)
        if (st_avro_get_long_item(r->v, f, first + i, &items[i]) != 0)
            rd_fail(r, f);
}

static void rd_ints(rd_t *r, const char *f, int32_t *items, uint32_t *n, uint32_t max)
{
    size_t first = rd_array(r, f, max, n);
    for (uint32_t i = 0; i < *n; i++)
        if (st_avro_get_int_item(r->v, f, first + i, &items[i]) != 0)
            rd_fail(r, f);
}

/* The first max strings (all of them when there are at most max). */
static size_t rd_strs(rd_t *r, const char *f, st_str_t *items, uint32_t *n, uint32_t max)
{
    size_t total = 0;
    if (st_avro_get_array_size(r->v, f, &total) != 0) {
        rd_fail(r, f);
        total = 0;
    }
    *n = (uint32_t)(total < max ? total : max);
    for (uint32_t i = 0; i < *n; i++)
        if (st_avro_get_string_item(r->v, f, i, &items[i].ptr, &items[i].len) != 0)
            rd_fail(r, f);
    return total;
}

static void rd_contract(rd_t *r, bool ok, const char *why)
{
    if (!ok && !r->why)
        r->why = why;
}

/* Decodes with codec into r->v; 0, or -1 with err set. */
static int rd_begin(rd_t *r, st_avro_codec_t *codec, const void *data, size_t len, st_err_t *err)
{
    avro_value_t *v = NULL;
    memset(r, 0, sizeof *r);
    if (st_avro_codec_decode(codec, data, len, &v, err) != 0)
        return -1;
    r->v = v;
    return 0;
}

static int rd_end(rd_t *r, const char *record, st_err_t *err)
{
    if (r->bad) {
        st_err_set(err, ST_ERR_INVALID, ST_DISP_PERMANENT,
                   "%s: field %s is missing or of the wrong type (is the codec for %s?)", record,
                   r->bad, record);
        return -1;
    }
    if (r->why) {
        st_err_set(err, ST_ERR_INVALID, ST_DISP_PERMANENT, "%s: %s", record, r->why);
        return -1;
    }
    return 0;
}

typedef struct {
    avro_value_t *v;
    const char *bad;
    const char *why;
    char why_buf[96];
} wr_t;

static void wr_check(wr_t *w, int rc, const char *f)
{
    if (rc != 0 && !w->bad)
        w->bad = f;
}

static void wr_contract(wr_t *w, bool ok, const char *why);

/* A required string: a NULL view (a field left unset) is refused. */
static void wr_str(wr_t *w, const char *f, st_str_t s)
{
    if (!s.ptr) {
        if (!w->why) {
            snprintf(w->why_buf, sizeof w->why_buf, "%s is required (NULL)", f);
            wr_contract(w, false, w->why_buf);
        }
        return;
    }
    wr_check(w, st_avro_set_string_len(w->v, f, s.ptr, s.len), f);
}

static void wr_nstr(wr_t *w, const char *f, st_str_t s)
{
    wr_check(w, s.ptr ? st_avro_set_string_len(w->v, f, s.ptr, s.len) : st_avro_set_null(w->v, f),
             f);
}

static void wr_long(wr_t *w, const char *f, int64_t v)
{
    wr_check(w, st_avro_set_long(w->v, f, v), f);
}

static void wr_nlong(wr_t *w, const char *f, st_opt_i64_t v)
{
    wr_check(w, st_avro_set_nullable_long(w->v, f, v.set ? &v.v : NULL), f);
}

static void wr_int(wr_t *w, const char *f, int32_t v)
{
    wr_check(w, st_avro_set_int(w->v, f, v), f);
}

static void wr_nint(wr_t *w, const char *f, st_opt_i32_t v)
{
    wr_check(w, st_avro_set_nullable_int(w->v, f, v.set ? &v.v : NULL), f);
}

static void wr_double(wr_t *w, const char *f, double v)
{
    wr_check(w, st_avro_set_double(w->v, f, v), f);
}

static void wr_ndouble(wr_t *w, const char *f, st_opt_f64_t v)
{
    wr_check(w, st_avro_set_nullable_double(w->v, f, v.set ? &v.v : NULL), f);
}

/* String arrays: views are copied into NUL-terminated strings for avro-c. */
static void wr_strs(wr_t *w, const char *f, const st_str_t *items, uint32_t n)
{
    const char
        *ptrs[ST_REC_TAGS_MAX > ST_SESSION_RETRACT_MAX ? ST_REC_TAGS_MAX : ST_SESSION_RETRACT_MAX];
    char *copies[sizeof ptrs / sizeof ptrs[0]];
    memset(ptrs, 0, sizeof ptrs);
    if (n > sizeof ptrs / sizeof ptrs[0]) {
        wr_check(w, -1, f);
        return;
    }
    uint32_t made = 0;
    int rc = 0;
    for (; made < n; made++) {
        size_t len = items[made].ptr ? items[made].len : 0;
        if (!(copies[made] = malloc(len + 1))) {
            rc = -1;
            break;
        }
        if (len)
            memcpy(copies[made], items[made].ptr, len);
        copies[made][len] = '\0';
        ptrs[made] = copies[made];
    }
    if (rc == 0)
        rc = st_avro_set_string_array(w->v, f, ptrs, n);
    for (uint32_t i = 0; i < made; i++)
        free(copies[i]);
    wr_check(w, rc, f);
}

static void wr_contract(wr_t *w, bool ok, const char *why)
{
    if (!ok && !w->why)
        w->why = why;
}

static int wr_end(wr_t *w, st_avro_codec_t *codec, const char *record, st_buf_t *out, st_err_t *err)
{
    if (w->why) {
        st_err_set(err, ST_ERR_INVALID, ST_DISP_PERMANENT, "%s: %s", record, w->why);
        return -1;
    }
    if (w->bad) {
        st_err_set(err, ST_ERR_INTERNAL, ST_DISP_FATAL,
                   "%s: cannot set field %s (is the codec for %s?)", record, w->bad, record);
        return -1;
    }
    return st_avro_codec_encode(codec, w->v, out, err);
}

static bool str_len_ok(st_str_t s, size_t min, size_t max)
{
    return s.ptr && s.len >= min && s.len <= max;
}

/* An id: min..max bytes, no NUL inside (ids are C strings downstream). */
static bool id_ok(st_str_t s, size_t max)
{
    return str_len_ok(s, 1, max) && !memchr(s.ptr, 0, s.len);
}

/* ---- Listen ---- */

static void listen_write(wr_t *w, const st_rec_listen_t *r)
{
    wr_str(w, "event_id", r->event_id);
    wr_str(w, "user_id", r->user_id);
    wr_long(w, "listened_at_ms", r->listened_at_ms);
    wr_str(w, "artist_name", r->artist_name);
    wr_str(w, "track_name", r->track_name);
    wr_nstr(w, "artist_mbid", r->artist_mbid);
    wr_nstr(w, "track_mbid", r->track_mbid);
    wr_str(w, "track_key", r->track_key);
    wr_contract(w, str_len_ok(r->user_id, 1, SIZE_MAX), "user_id is empty");
}

static void listen_read(rd_t *r, st_rec_listen_t *l)
{
    rd_str(r, "event_id", &l->event_id);
    rd_str(r, "user_id", &l->user_id);
    rd_long(r, "listened_at_ms", &l->listened_at_ms);
    rd_str(r, "artist_name", &l->artist_name);
    rd_str(r, "track_name", &l->track_name);
    rd_nstr(r, "artist_mbid", &l->artist_mbid);
    rd_nstr(r, "track_mbid", &l->track_mbid);
    rd_str(r, "track_key", &l->track_key);
    rd_contract(r, id_ok(l->user_id, ST_SESSION_USER_ID_MAX),
                "user_id empty, longer than 128 bytes or with a NUL byte");
}

st_rec_listen_t st_rec_listen_from(const st_listen_t *l)
{
    return (st_rec_listen_t){
        .event_id = st_str(l->event_id),
        .user_id = st_str(l->user_id),
        .listened_at_ms = l->timestamp_ms,
        .artist_name = st_str(l->artist_name),
        .track_name = st_str(l->track_name),
        .artist_mbid = st_str(l->has_artist_mbid ? l->artist_mbid : NULL),
        .track_mbid = st_str(l->has_track_mbid ? l->track_mbid : NULL),
        .track_key = st_str(l->track_key),
    };
}

int st_rec_listen_encode(st_avro_codec_t *codec, const st_rec_listen_t *r, st_buf_t *out,
                         st_err_t *err)
{
    wr_t w = {.v = st_avro_codec_record(codec)};
    listen_write(&w, r);
    return wr_end(&w, codec, "Listen", out, err);
}

int st_rec_listen_decode(st_avro_codec_t *codec, const void *data, size_t len, st_rec_listen_t *r,
                         st_err_t *err)
{
    rd_t rd;
    if (rd_begin(&rd, codec, data, len, err) != 0)
        return -1;
    listen_read(&rd, r);
    return rd_end(&rd, "Listen", err);
}

/* ---- EnrichedListen ---- */

static const char *const source_names[ST_REC_SOURCE_COUNT] = {"CACHE", "CATALOG", "LASTFM",
                                                              "UNKNOWN"};

const char *st_rec_source_name(st_rec_source_t s)
{
    return (unsigned)s < ST_REC_SOURCE_COUNT ? source_names[s] : "UNKNOWN";
}

int st_rec_enriched_encode(st_avro_codec_t *codec, const st_rec_enriched_t *r, st_buf_t *out,
                           st_err_t *err)
{
    wr_t w = {.v = st_avro_codec_record(codec)};
    listen_write(&w, &r->listen);
    wr_nlong(&w, "duration_ms", r->duration_ms);
    wr_contract(&w, r->n_tags <= ST_REC_TAGS_MAX, "more tags than ST_REC_TAGS_MAX");
    wr_strs(&w, "tags", r->tags, r->n_tags <= ST_REC_TAGS_MAX ? r->n_tags : 0);
    wr_contract(&w, (unsigned)r->metadata_source < ST_REC_SOURCE_COUNT, "bad metadata_source");
    wr_check(&w, st_avro_set_enum(w.v, "metadata_source", st_rec_source_name(r->metadata_source)),
             "metadata_source");
    return wr_end(&w, codec, "EnrichedListen", out, err);
}

int st_rec_enriched_decode(st_avro_codec_t *codec, const void *data, size_t len,
                           st_rec_enriched_t *r, st_err_t *err)
{
    rd_t rd;
    if (rd_begin(&rd, codec, data, len, err) != 0)
        return -1;
    listen_read(&rd, &r->listen);
    rd_nlong(&rd, "duration_ms", &r->duration_ms);
    size_t total = rd_strs(&rd, "tags", r->tags, &r->n_tags, ST_REC_TAGS_MAX);
    r->tags_truncated = total > ST_REC_TAGS_MAX;
    r->metadata_source =
        (st_rec_source_t)rd_enum(&rd, "metadata_source", source_names, ST_REC_SOURCE_COUNT);
    return rd_end(&rd, "EnrichedListen", err);
}

/* ---- SessionEvent ---- */

static const char *const kind_names[] = {"OPENED", "CLOSED"};

void st_rec_session_event_set_features(st_rec_session_event_t *r, const st_session_features_t *f)
{
    r->start_ms = f->start_ms;
    r->session_index = (int32_t)f->session_index;
    r->start_hour_utc = f->hour_utc;
    r->start_weekday = f->weekday;
    r->prev_session_length_s = (st_opt_f64_t){f->has_prev, f->prev_session_length_s};
    r->mean_session_length_s = (st_opt_f64_t){f->has_prev, f->mean_session_length_s};
    r->median_session_length_s = (st_opt_f64_t){f->has_prev, f->median_session_length_s};
    r->gap_since_prev_s = (st_opt_f64_t){f->has_prev, f->gap_since_prev_s};
    r->n_recent_lengths = f->n_recent;
    memcpy(r->recent_lengths_s, f->recent_lengths_s, f->n_recent * sizeof(double));
    r->n_recent_starts = r->n_recent_track_counts = r->n_recent_unknown_shares = f->n_recent_detail;
    for (uint32_t i = 0; i < f->n_recent_detail; i++) {
        r->recent_starts_ms[i] = f->recent_start_ms[i];
        r->recent_track_counts[i] = (int32_t)f->recent_track_count[i];
        r->recent_unknown_shares[i] = f->recent_unknown_share[i];
    }
}

/* A CLOSED's length: set, 0..1e9 s (31 years; NaN fails too). Larger values would overflow the
 * consumers' sums into inf and freeze their users' statistics. */
static bool closed_length_ok(const st_rec_session_event_t *r)
{
    return r->kind != ST_SESSION_EVENT_CLOSED ||
           (r->length_s.set && r->length_s.v >= 0 && r->length_s.v <= 1e9);
}

int st_rec_session_event_encode(st_avro_codec_t *codec, const st_rec_session_event_t *r,
                                st_buf_t *out, st_err_t *err)
{
    wr_t w = {.v = st_avro_codec_record(codec)};
    wr_contract(&w, id_ok(r->user_id, ST_SESSION_USER_ID_MAX),
                "user_id empty, longer than 128 bytes or with a NUL byte");
    wr_contract(&w, id_ok(r->session_id, ST_SESSION_ID_MAX - 1),
                "session_id empty, too long or with a NUL byte");
    wr_contract(&w, r->session_index >= 0 && r->revision >= 0,
                "negative session_index or revision");
    wr_contract(&w,
                r->n_recent_lengths <= ST_SESSION_RECENT_MAX &&
                    r->n_recent_starts <= ST_SESSION_RECENT_MAX &&
                    r->n_recent_track_counts <= ST_SESSION_RECENT_MAX &&
                    r->n_recent_unknown_shares <= ST_SESSION_RECENT_MAX,
                "more recent sessions than ST_SESSION_RECENT_MAX");
    wr_contract(&w, r->n_retracted <= ST_SESSION_RETRACT_MAX,
                "more retracted ids than ST_SESSION_RETRACT_MAX");
    wr_contract(&w, r->kind == ST_SESSION_EVENT_OPENED || r->kind == ST_SESSION_EVENT_CLOSED,
                "kind is neither OPENED nor CLOSED");
    /* The bounds a consumer's decode adds (length_s <= 1e9 s, start_ms >= 0, revision below
     * INT32_MAX) are not refused here: a sessionizer whose inputs reach them must not stop on
     * its own output; such an event goes to the consumers' dead-letter topics instead. */
    wr_contract(&w,
                r->kind != ST_SESSION_EVENT_CLOSED ||
                    (r->length_s.set && isfinite(r->length_s.v) && r->length_s.v >= 0),
                "CLOSED without a valid length_s");
    if (w.why)
        return wr_end(&w, codec, "SessionEvent", out, err);
    wr_str(&w, "session_id", r->session_id);
    wr_str(&w, "user_id", r->user_id);
    wr_check(&w, st_avro_set_enum(w.v, "kind", kind_names[r->kind == ST_SESSION_EVENT_CLOSED]),
             "kind");
    wr_long(&w, "start_ms", r->start_ms);
    wr_int(&w, "session_index", r->session_index);
    wr_int(&w, "start_hour_utc", r->start_hour_utc);
    wr_int(&w, "start_weekday", r->start_weekday);
    wr_ndouble(&w, "prev_session_length_s", r->prev_session_length_s);
    wr_ndouble(&w, "mean_session_length_s", r->mean_session_length_s);
    wr_ndouble(&w, "median_session_length_s", r->median_session_length_s);
    wr_ndouble(&w, "gap_since_prev_s", r->gap_since_prev_s);
    wr_check(
        &w,
        st_avro_set_double_array(w.v, "recent_lengths_s", r->recent_lengths_s, r->n_recent_lengths),
        "recent_lengths_s");
    wr_nstr(&w, "gender", r->gender);
    wr_nint(&w, "age", r->age);
    wr_nstr(&w, "country", r->country);
    wr_nlong(&w, "registered_ms", r->registered_ms);
    wr_nlong(&w, "end_ms", r->end_ms);
    wr_ndouble(&w, "length_s", r->length_s);
    wr_int(&w, "track_count", r->track_count);
    wr_ndouble(&w, "unknown_duration_share", r->unknown_duration_share);
    wr_int(&w, "revision", r->revision);
    wr_strs(&w, "retracted_session_ids", r->retracted_session_ids, r->n_retracted);
    wr_nlong(&w, "last_start_ms", r->last_start_ms);
    wr_check(
        &w,
        st_avro_set_long_array(w.v, "recent_starts_ms", r->recent_starts_ms, r->n_recent_starts),
        "recent_starts_ms");
    wr_check(&w,
             st_avro_set_int_array(w.v, "recent_track_counts", r->recent_track_counts,
                                   r->n_recent_track_counts),
             "recent_track_counts");
    wr_check(&w,
             st_avro_set_double_array(w.v, "recent_unknown_shares", r->recent_unknown_shares,
                                      r->n_recent_unknown_shares),
             "recent_unknown_shares");
    return wr_end(&w, codec, "SessionEvent", out, err);
}

int st_rec_session_event_decode(st_avro_codec_t *codec, const void *data, size_t len,
                                st_rec_session_event_t *r, st_err_t *err)
{
    rd_t rd;
    if (rd_begin(&rd, codec, data, len, err) != 0)
        return -1;
    rd_str(&rd, "session_id", &r->session_id);
    rd_str(&rd, "user_id", &r->user_id);
    r->kind = rd_enum(&rd, "kind", kind_names, 2) == 1 ? ST_SESSION_EVENT_CLOSED
                                                       : ST_SESSION_EVENT_OPENED;
    rd_long(&rd, "start_ms", &r->start_ms);
    rd_int(&rd, "session_index", &r->session_index);
    rd_int(&rd, "start_hour_utc", &r->start_hour_utc);
    rd_int(&rd, "start_weekday", &r->start_weekday);
    rd_ndouble(&rd, "prev_session_length_s", &r->prev_session_length_s);
    rd_ndouble(&rd, "mean_session_length_s", &r->mean_session_length_s);
    rd_ndouble(&rd, "median_session_length_s", &r->median_session_length_s);
    rd_ndouble(&rd, "gap_since_prev_s", &r->gap_since_prev_s);
    rd_doubles(&rd, "recent_lengths_s", r->recent_lengths_s, &r->n_recent_lengths,
               ST_SESSION_RECENT_MAX);
    rd_nstr(&rd, "gender", &r->gender);
    rd_nint(&rd, "age", &r->age);
    rd_nstr(&rd, "country", &r->country);
    rd_nlong(&rd, "registered_ms", &r->registered_ms);
    rd_nlong(&rd, "end_ms", &r->end_ms);
    rd_ndouble(&rd, "length_s", &r->length_s);
    rd_int(&rd, "track_count", &r->track_count);
    rd_ndouble(&rd, "unknown_duration_share", &r->unknown_duration_share);
    rd_int(&rd, "revision", &r->revision);
    size_t n_ids = rd_strs(&rd, "retracted_session_ids", r->retracted_session_ids, &r->n_retracted,
                           ST_SESSION_RETRACT_MAX);
    rd_nlong(&rd, "last_start_ms", &r->last_start_ms);
    rd_longs(&rd, "recent_starts_ms", r->recent_starts_ms, &r->n_recent_starts,
             ST_SESSION_RECENT_MAX);
    rd_ints(&rd, "recent_track_counts", r->recent_track_counts, &r->n_recent_track_counts,
            ST_SESSION_RECENT_MAX);
    rd_doubles(&rd, "recent_unknown_shares", r->recent_unknown_shares, &r->n_recent_unknown_shares,
               ST_SESSION_RECENT_MAX);
    rd_contract(&rd, id_ok(r->user_id, ST_SESSION_USER_ID_MAX),
                "user_id empty, longer than 128 bytes or with a NUL byte");
    rd_contract(&rd, id_ok(r->session_id, ST_SESSION_ID_MAX - 1),
                "session_id empty, too long or with a NUL byte");
    rd_contract(&rd, r->session_index >= 0, "negative session_index");
    /* A retraction is the revision + 1 (the predictor's): INT32_MAX would leave it no room. */
    rd_contract(&rd, r->revision >= 0 && r->revision < INT32_MAX, "revision outside 0..2^31-2");
    if (n_ids > ST_SESSION_RETRACT_MAX) {
        snprintf(rd.why_buf, sizeof rd.why_buf, "%zu retracted_session_ids, at most %d", n_ids,
                 ST_SESSION_RETRACT_MAX);
        rd_contract(&rd, false, rd.why_buf);
    }
    rd_contract(&rd, closed_length_ok(r), "CLOSED without a valid length_s (0..1e9 s)");
    /* -1 is the consumers' "no CLOSED yet" mark (st_applied) */
    rd_contract(&rd, r->start_ms >= 0, "negative start_ms");
    return rd_end(&rd, "SessionEvent", err);
}

bool st_rec_session_event_time_ok(const st_rec_session_event_t *r, int64_t record_ms)
{
    return record_ms <= 0 || r->start_ms - record_ms <= 86400000LL; /* start_ms >= 0: no overflow */
}

/* ---- UserProfile ---- */

int st_rec_profile_encode(st_avro_codec_t *codec, const st_rec_profile_t *r, st_buf_t *out,
                          st_err_t *err)
{
    wr_t w = {.v = st_avro_codec_record(codec)};
    wr_contract(&w, str_len_ok(r->user_id, 1, SIZE_MAX), "user_id is empty");
    wr_str(&w, "user_id", r->user_id);
    wr_nstr(&w, "gender", r->gender);
    wr_nint(&w, "age", r->age);
    wr_nstr(&w, "country", r->country);
    wr_nlong(&w, "registered_ms", r->registered_ms);
    return wr_end(&w, codec, "UserProfile", out, err);
}

int st_rec_profile_decode(st_avro_codec_t *codec, const void *data, size_t len, st_rec_profile_t *r,
                          st_err_t *err)
{
    rd_t rd;
    if (rd_begin(&rd, codec, data, len, err) != 0)
        return -1;
    rd_str(&rd, "user_id", &r->user_id);
    rd_nstr(&rd, "gender", &r->gender);
    rd_nint(&rd, "age", &r->age);
    rd_nstr(&rd, "country", &r->country);
    rd_nlong(&rd, "registered_ms", &r->registered_ms);
    rd_contract(&rd, id_ok(r->user_id, ST_SESSION_USER_ID_MAX),
                "user_id empty, longer than 128 bytes or with a NUL byte");
    return rd_end(&rd, "UserProfile", err);
}

/* ---- ClusterAssignment ---- */

int st_rec_cluster_encode(st_avro_codec_t *codec, const st_rec_cluster_t *r, st_buf_t *out,
                          st_err_t *err)
{
    wr_t w = {.v = st_avro_codec_record(codec)};
    wr_contract(&w, str_len_ok(r->user_id, 1, SIZE_MAX), "user_id is empty");
    wr_str(&w, "user_id", r->user_id);
    wr_int(&w, "cluster", r->cluster);
    wr_check(&w, st_avro_set_boolean(w.v, "cold", r->cold), "cold");
    wr_str(&w, "clustering_version", r->clustering_version);
    return wr_end(&w, codec, "ClusterAssignment", out, err);
}

int st_rec_cluster_decode(st_avro_codec_t *codec, const void *data, size_t len, st_rec_cluster_t *r,
                          st_err_t *err)
{
    rd_t rd;
    if (rd_begin(&rd, codec, data, len, err) != 0)
        return -1;
    rd_str(&rd, "user_id", &r->user_id);
    rd_int(&rd, "cluster", &r->cluster);
    rd_bool(&rd, "cold", &r->cold);
    rd_str(&rd, "clustering_version", &r->clustering_version);
    rd_contract(&rd, r->user_id.len > 0, "user_id is empty");
    return rd_end(&rd, "ClusterAssignment", err);
}

/* ---- Prediction, PredictionOutcome ---- */

static const char *const predictor_names[] = {"MODEL", "BASELINE"};

const char *st_rec_predictor_name(st_rec_predictor_t p)
{
    return (unsigned)p <= ST_REC_PREDICTOR_BASELINE ? predictor_names[p] : "?";
}

static void wr_predictor(wr_t *w, st_rec_predictor_t p)
{
    wr_contract(w, (unsigned)p <= ST_REC_PREDICTOR_BASELINE,
                "predictor is neither MODEL nor BASELINE");
    if ((unsigned)p <= ST_REC_PREDICTOR_BASELINE)
        wr_check(w, st_avro_set_enum(w->v, "predictor", predictor_names[p]), "predictor");
}

int st_rec_prediction_encode(st_avro_codec_t *codec, const st_rec_prediction_t *r, st_buf_t *out,
                             st_err_t *err)
{
    wr_t w = {.v = st_avro_codec_record(codec)};
    wr_contract(&w, str_len_ok(r->user_id, 1, SIZE_MAX), "user_id is empty");
    wr_str(&w, "session_id", r->session_id);
    wr_str(&w, "user_id", r->user_id);
    wr_long(&w, "session_start_ms", r->session_start_ms);
    wr_double(&w, "predicted_length_s", r->predicted_length_s);
    wr_double(&w, "baseline_length_s", r->baseline_length_s);
    wr_nint(&w, "cluster", r->cluster);
    wr_str(&w, "model_version", r->model_version);
    wr_predictor(&w, r->predictor);
    wr_int(&w, "revision", r->revision);
    wr_check(&w, st_avro_set_boolean(w.v, "retracted", r->retracted), "retracted");
    wr_long(&w, "made_at_ms", r->made_at_ms);
    return wr_end(&w, codec, "Prediction", out, err);
}

int st_rec_prediction_decode(st_avro_codec_t *codec, const void *data, size_t len,
                             st_rec_prediction_t *r, st_err_t *err)
{
    rd_t rd;
    if (rd_begin(&rd, codec, data, len, err) != 0)
        return -1;
    rd_str(&rd, "session_id", &r->session_id);
    rd_str(&rd, "user_id", &r->user_id);
    rd_long(&rd, "session_start_ms", &r->session_start_ms);
    rd_double(&rd, "predicted_length_s", &r->predicted_length_s);
    rd_double(&rd, "baseline_length_s", &r->baseline_length_s);
    rd_nint(&rd, "cluster", &r->cluster);
    rd_str(&rd, "model_version", &r->model_version);
    r->predictor = (st_rec_predictor_t)rd_enum(&rd, "predictor", predictor_names, 2);
    rd_int(&rd, "revision", &r->revision);
    rd_bool(&rd, "retracted", &r->retracted);
    rd_long(&rd, "made_at_ms", &r->made_at_ms);
    rd_contract(&rd, r->user_id.len > 0, "user_id is empty");
    return rd_end(&rd, "Prediction", err);
}

int st_rec_outcome_encode(st_avro_codec_t *codec, const st_rec_outcome_t *r, st_buf_t *out,
                          st_err_t *err)
{
    wr_t w = {.v = st_avro_codec_record(codec)};
    wr_contract(&w, str_len_ok(r->user_id, 1, SIZE_MAX), "user_id is empty");
    wr_str(&w, "session_id", r->session_id);
    wr_str(&w, "user_id", r->user_id);
    wr_long(&w, "session_start_ms", r->session_start_ms);
    wr_double(&w, "predicted_length_s", r->predicted_length_s);
    wr_double(&w, "baseline_length_s", r->baseline_length_s);
    wr_double(&w, "actual_length_s", r->actual_length_s);
    wr_double(&w, "abs_error_s", r->abs_error_s);
    wr_double(&w, "baseline_abs_error_s", r->baseline_abs_error_s);
    wr_nint(&w, "cluster", r->cluster);
    wr_str(&w, "model_version", r->model_version);
    wr_predictor(&w, r->predictor);
    return wr_end(&w, codec, "PredictionOutcome", out, err);
}

int st_rec_outcome_decode(st_avro_codec_t *codec, const void *data, size_t len, st_rec_outcome_t *r,
                          st_err_t *err)
{
    rd_t rd;
    if (rd_begin(&rd, codec, data, len, err) != 0)
        return -1;
    rd_str(&rd, "session_id", &r->session_id);
    rd_str(&rd, "user_id", &r->user_id);
    rd_long(&rd, "session_start_ms", &r->session_start_ms);
    rd_double(&rd, "predicted_length_s", &r->predicted_length_s);
    rd_double(&rd, "baseline_length_s", &r->baseline_length_s);
    rd_double(&rd, "actual_length_s", &r->actual_length_s);
    rd_double(&rd, "abs_error_s", &r->abs_error_s);
    rd_double(&rd, "baseline_abs_error_s", &r->baseline_abs_error_s);
    rd_nint(&rd, "cluster", &r->cluster);
    rd_str(&rd, "model_version", &r->model_version);
    r->predictor = (st_rec_predictor_t)rd_enum(&rd, "predictor", predictor_names, 2);
    rd_contract(&rd, r->user_id.len > 0, "user_id is empty");
    return rd_end(&rd, "PredictionOutcome", err);
}

/* ---- DeadLetter ---- */

int st_rec_dead_letter_encode(st_avro_codec_t *codec, const st_rec_dead_letter_t *r, st_buf_t *out,
                              st_err_t *err)
{
    wr_t w = {.v = st_avro_codec_record(codec)};
    wr_str(&w, "source_topic", r->source_topic);
    wr_int(&w, "source_partition", r->source_partition);
    wr_long(&w, "source_offset", r->source_offset);
    wr_str(&w, "error_code", r->error_code);
    wr_str(&w, "error", r->error);
    wr_check(
        &w,
        st_avro_set_nullable_bytes(w.v, "original_key", r->original_key.ptr, r->original_key.len),
        "original_key");
    wr_check(&w,
             st_avro_set_bytes(w.v, "original_value",
                               r->original_value.ptr ? r->original_value.ptr : "",
                               r->original_value.ptr ? r->original_value.len : 0),
             "original_value");
    wr_long(&w, "failed_at_ms", r->failed_at_ms);
    return wr_end(&w, codec, "DeadLetter", out, err);
}

int st_rec_dead_letter_decode(st_avro_codec_t *codec, const void *data, size_t len,
                              st_rec_dead_letter_t *r, st_err_t *err)
{
    rd_t rd;
    if (rd_begin(&rd, codec, data, len, err) != 0)
        return -1;
    rd_str(&rd, "source_topic", &r->source_topic);
    rd_int(&rd, "source_partition", &r->source_partition);
    rd_long(&rd, "source_offset", &r->source_offset);
    rd_str(&rd, "error_code", &r->error_code);
    rd_str(&rd, "error", &r->error);
    rd_bytes(&rd, "original_key", &r->original_key, true);
    rd_bytes(&rd, "original_value", &r->original_value, false);
    rd_long(&rd, "failed_at_ms", &r->failed_at_ms);
    return rd_end(&rd, "DeadLetter", err);
}
