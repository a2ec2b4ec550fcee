/* st_records.h - one C struct and one encode/decode pair per record type that crosses a service
 * (schemas/<name>.avsc). This is the only place that names a record's fields: services fill and
 * read these structs, never field-name strings.
 *
 * Encoding: st_rec_<type>_encode fills the codec's reusable record from the struct and writes one
 * wire-format message into out (emptied first). Decoding: st_rec_<type>_decode reads one
 * wire-format message (any writer version the codec can resolve: older versions under
 * schemas/history/ get the reader's defaults) into the struct. The codec must be one made for the
 * same record name (st_avro_codec_new(reg, "Listen", ...) for st_rec_listen_*).
 *
 * Strings are views (st_str_t). On encode they point at the caller's bytes; a nullable string is
 * null when ptr is NULL. On decode they point into the codec's decoded value: valid until the
 * codec's next decode, and NUL-terminated (avro-c stores the NUL; bytes fields too, but they
 * may hold NULs inside). A required string left NULL is refused on encode. Nullable numbers are
 * st_opt_*_t with .set false for null. Enum values out of range are refused on encode.
 *
 * Errors: decode returns -1 with err set to ST_ERR_INVALID and a text naming the record and the
 * field (bad wire bytes, a value outside the record's contract: e.g. an empty user_id) or to the
 * codec's retriable error (registry unreachable for a new schema id); encode returns -1 with
 * ST_ERR_INVALID when the struct breaks the contract (e.g. more array items than the limit) or
 * ST_ERR_AVRO/ST_ERR_INTERNAL when the codec is not of the record's type. */
#ifndef ST_RECORDS_H
#define ST_RECORDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "st_avro.h"
#include "st_buf.h"
#include "st_err.h"
#include "st_listen.h"
#include "st_session.h"

/* A view of bytes owned by someone else. ptr NULL means null (for nullable fields). */
typedef struct {
    const char *ptr;
    size_t len;
} st_str_t;

/* A view of a NUL-terminated string; NULL gives the null view. */
static inline st_str_t st_str(const char *s)
{
    st_str_t v = {s, 0};
    while (s && s[v.len])
        v.len++;
    return v;
}

typedef struct {
    bool set;
    int32_t v;
} st_opt_i32_t;

typedef struct {
    bool set;
    int64_t v;
} st_opt_i64_t;

typedef struct {
    bool set;
    double v;
} st_opt_f64_t;

/* ---- Listen (listens): what ingest accepted. ---- */
typedef struct {
    st_str_t event_id;
    st_str_t user_id;
    int64_t listened_at_ms;
    st_str_t artist_name;
    st_str_t track_name;
    st_str_t artist_mbid; /* nullable */
    st_str_t track_mbid;  /* nullable */
    st_str_t track_key;
} st_rec_listen_t;

/* The Listen of a parsed listen (views into l). */
st_rec_listen_t st_rec_listen_from(const st_listen_t *l);

int st_rec_listen_encode(st_avro_codec_t *codec, const st_rec_listen_t *r, st_buf_t *out,
                         st_err_t *err);
int st_rec_listen_decode(st_avro_codec_t *codec, const void *data, size_t len, st_rec_listen_t *r,
                         st_err_t *err);

/* ---- EnrichedListen (listens.enriched): a Listen with its track's metadata. ---- */
typedef enum {
    ST_REC_SOURCE_CACHE = 0,
    ST_REC_SOURCE_CATALOG,
    ST_REC_SOURCE_LASTFM,
    ST_REC_SOURCE_UNKNOWN,
    ST_REC_SOURCE_COUNT
} st_rec_source_t;

/* The schema's symbol of a source ("CACHE", ...). */
const char *st_rec_source_name(st_rec_source_t s);

#define ST_REC_TAGS_MAX 16 /* tags a decoded record keeps (the first ones); encode refuses more */

typedef struct {
    st_rec_listen_t listen;
    st_opt_i64_t duration_ms;
    uint32_t n_tags;
    bool tags_truncated; /* decode: the record had more than ST_REC_TAGS_MAX tags */
    st_str_t tags[ST_REC_TAGS_MAX];
    st_rec_source_t metadata_source;
} st_rec_enriched_t;

int st_rec_enriched_encode(st_avro_codec_t *codec, const st_rec_enriched_t *r, st_buf_t *out,
                           st_err_t *err);
int st_rec_enriched_decode(st_avro_codec_t *codec, const void *data, size_t len,
                           st_rec_enriched_t *r, st_err_t *err);

/* ---- SessionEvent (sessions): OPENED with the features known at the start, CLOSED with the
 * summary. Contract checked on decode (and encode): user_id 1..ST_SESSION_USER_ID_MAX bytes,
 * session_id 1..ST_SESSION_ID_MAX-1 bytes, session_index >= 0, revision >= 0, a CLOSED has a
 * finite length_s >= 0, at most ST_SESSION_RETRACT_MAX retracted ids; on decode only (a consumer's
 * bounds, which the writer must not stop on): revision < INT32_MAX, start_ms >= 0, a CLOSED's
 * length_s <= 1e9 s. The recent_* arrays keep
 * their newest ST_SESSION_RECENT_MAX items (decode); each array keeps its own count, so a reader
 * can tell whether the detail arrays are aligned with recent_lengths_s. ---- */
typedef struct {
    st_str_t session_id;
    st_str_t user_id;
    st_session_event_kind_t kind;
    int64_t start_ms;
    int32_t session_index;
    int32_t start_hour_utc;
    int32_t start_weekday;
    /* OPENED: features */
    st_opt_f64_t prev_session_length_s;
    st_opt_f64_t mean_session_length_s;
    st_opt_f64_t median_session_length_s;
    st_opt_f64_t gap_since_prev_s;
    uint32_t n_recent_lengths;
    double recent_lengths_s[ST_SESSION_RECENT_MAX];
    uint32_t n_recent_starts;
    int64_t recent_starts_ms[ST_SESSION_RECENT_MAX];
    uint32_t n_recent_track_counts;
    int32_t recent_track_counts[ST_SESSION_RECENT_MAX];
    uint32_t n_recent_unknown_shares;
    double recent_unknown_shares[ST_SESSION_RECENT_MAX];
    st_str_t gender;  /* nullable */
    st_opt_i32_t age; /* nullable */
    st_str_t country; /* nullable */
    st_opt_i64_t registered_ms;
    int32_t revision;
    uint32_t n_retracted;
    st_str_t retracted_session_ids[ST_SESSION_RETRACT_MAX];
    /* CLOSED: summary */
    st_opt_i64_t end_ms;
    st_opt_i64_t last_start_ms;
    st_opt_f64_t length_s;
    int32_t track_count;
    st_opt_f64_t unknown_duration_share;
} st_rec_session_event_t;

/* Sets an OPENED's start, index, hour, weekday and features from f (the sessionizer's features
 * of a session start; the details only when f knows them for every recent session). */
void st_rec_session_event_set_features(st_rec_session_event_t *r, const st_session_features_t *f);

int st_rec_session_event_encode(st_avro_codec_t *codec, const st_rec_session_event_t *r,
                                st_buf_t *out, st_err_t *err);
int st_rec_session_event_decode(st_avro_codec_t *codec, const void *data, size_t len,
                                st_rec_session_event_t *r, st_err_t *err);
/* Whether a decoded SessionEvent's start can be true of its Kafka record's time record_ms (0 or
 * less: unknown, then always): at most a day after it. A later start (a wrong clock, a foreign
 * producer) would move its user's last-CLOSED mark past every real session of the user, and the
 * consumers (clusterer, predictor) would take them all for copies. */
bool st_rec_session_event_time_ok(const st_rec_session_event_t *r, int64_t record_ms);
#define ST_REC_SESSION_TIME_TEXT "start_ms more than a day after the record's time"

/* ---- UserProfile (users.profiles). user_id 1..ST_SESSION_USER_ID_MAX bytes, no NUL byte. ---- */
typedef struct {
    st_str_t user_id;
    st_str_t gender;  /* nullable */
    st_opt_i32_t age; /* nullable */
    st_str_t country; /* nullable */
    st_opt_i64_t registered_ms;
} st_rec_profile_t;

int st_rec_profile_encode(st_avro_codec_t *codec, const st_rec_profile_t *r, st_buf_t *out,
                          st_err_t *err);
int st_rec_profile_decode(st_avro_codec_t *codec, const void *data, size_t len, st_rec_profile_t *r,
                          st_err_t *err);

/* ---- ClusterAssignment (users.clusters). ---- */
typedef struct {
    st_str_t user_id;
    int32_t cluster;
    bool cold;
    st_str_t clustering_version;
} st_rec_cluster_t;

int st_rec_cluster_encode(st_avro_codec_t *codec, const st_rec_cluster_t *r, st_buf_t *out,
                          st_err_t *err);
int st_rec_cluster_decode(st_avro_codec_t *codec, const void *data, size_t len, st_rec_cluster_t *r,
                          st_err_t *err);

/* ---- Prediction (predictions) and PredictionOutcome (predictions.outcomes). ---- */
typedef enum { ST_REC_PREDICTOR_MODEL = 0, ST_REC_PREDICTOR_BASELINE = 1 } st_rec_predictor_t;

/* "MODEL" or "BASELINE" ("?" out of range). */
const char *st_rec_predictor_name(st_rec_predictor_t p);

typedef struct {
    st_str_t session_id;
    st_str_t user_id;
    int64_t session_start_ms;
    double predicted_length_s;
    double baseline_length_s;
    st_opt_i32_t cluster;
    st_str_t model_version;
    st_rec_predictor_t predictor;
    int32_t revision;
    bool retracted;
    int64_t made_at_ms;
} st_rec_prediction_t;

int st_rec_prediction_encode(st_avro_codec_t *codec, const st_rec_prediction_t *r, st_buf_t *out,
                             st_err_t *err);
int st_rec_prediction_decode(st_avro_codec_t *codec, const void *data, size_t len,
                             st_rec_prediction_t *r, st_err_t *err);

typedef struct {
    st_str_t session_id;
    st_str_t user_id;
    int64_t session_start_ms;
    double predicted_length_s;
    double baseline_length_s;
    double actual_length_s;
    double abs_error_s;
    double baseline_abs_error_s;
    st_opt_i32_t cluster;
    st_str_t model_version;
    st_rec_predictor_t predictor;
} st_rec_outcome_t;

int st_rec_outcome_encode(st_avro_codec_t *codec, const st_rec_outcome_t *r, st_buf_t *out,
                          st_err_t *err);
int st_rec_outcome_decode(st_avro_codec_t *codec, const void *data, size_t len, st_rec_outcome_t *r,
                          st_err_t *err);

/* ---- DeadLetter (<topic>.dlq): a rejected record with the reason. ---- */
typedef struct {
    st_str_t source_topic;
    int32_t source_partition;
    int64_t source_offset;
    st_str_t error_code;
    st_str_t error;
    st_str_t original_key; /* nullable bytes */
    st_str_t original_value;
    int64_t failed_at_ms;
} st_rec_dead_letter_t;

int st_rec_dead_letter_encode(st_avro_codec_t *codec, const st_rec_dead_letter_t *r, st_buf_t *out,
                              st_err_t *err);
int st_rec_dead_letter_decode(st_avro_codec_t *codec, const void *data, size_t len,
                              st_rec_dead_letter_t *r, st_err_t *err);

#endif
