/* st_listen.h - one listen as it arrives on listens.raw (JSON): parse, validate, normalise,
 * assign the deterministic event_id; and the reverse, a Last.fm TSV record formatted as that JSON.
 */
#ifndef ST_LISTEN_H
#define ST_LISTEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "st_buf.h"
#include "st_err.h"
#include "st_lastfm.h"

/* Limits: each string field at most ST_LISTEN_FIELD_MAX bytes as sent (before trimming); a whole
 * message at most ST_LISTEN_MESSAGE_MAX bytes. */
#define ST_LISTEN_FIELD_MAX   ST_LASTFM_FIELD_MAX
#define ST_LISTEN_MESSAGE_MAX (64 * 1024)
/* Valid timestamps: ST_LISTEN_MIN_TS_MS <= ts <= now_ms + ST_LISTEN_FUTURE_MS. now_ms is the
 * Kafka timestamp of the record that carries the listen (so a replay decides as the first pass
 * did); 10 minutes absorb clock skew. A listen further ahead is a client clock error, and one
 * such record would move a sessionizer partition's stream time hours ahead (closing every open
 * session early and making everyone else's listens late). */
#define ST_LISTEN_MIN_TS_MS ST_LASTFM_MIN_TS_MS
#define ST_LISTEN_FUTURE_MS (10LL * 60 * 1000)

/* Why a message was rejected; st_listen_reason_name gives the stable machine code. */
typedef enum {
    ST_LISTEN_OK = 0,
    ST_LISTEN_NOT_JSON,      /* "not_json": does not parse (also duplicate keys) */
    ST_LISTEN_NOT_OBJECT,    /* "not_object": valid JSON but not an object */
    ST_LISTEN_MISSING_FIELD, /* "missing_field": a required field absent/null, or user_id blank */
    ST_LISTEN_BAD_TYPE,      /* "bad_type": a field of the wrong JSON type */
    ST_LISTEN_BAD_TIMESTAMP, /* "bad_timestamp": unparseable, or outside 2000-01-01..now + 10 min */
    ST_LISTEN_TOO_LONG,      /* "too_long": user_id over ST_SESSION_USER_ID_MAX (128) bytes
                                after trimming, another field over 1 KB, or the message over
                                64 KB */
    ST_LISTEN_INVALID_UTF8,  /* "invalid_utf8": the message or a field is not valid UTF-8 */
    ST_LISTEN_BAD_ID,        /* "bad_id": a control character in user_id or an MBID */
    ST_LISTEN_REASON_COUNT
} st_listen_reason_t;

const char *st_listen_reason_name(st_listen_reason_t reason);

/* A validated, normalised listen. All strings NUL-terminated, owned by the struct (fixed arrays:
 * no allocation; the struct is ~7 KB, reuse one). */
typedef struct {
    char user_id[ST_LISTEN_FIELD_MAX + 1];     /* trimmed */
    int64_t timestamp_ms;                      /* epoch ms, UTC */
    char artist_name[ST_LISTEN_FIELD_MAX + 1]; /* trimmed, case kept */
    char track_name[ST_LISTEN_FIELD_MAX + 1];  /* trimmed, case kept */
    bool has_artist_mbid;                      /* false: absent, null or blank */
    char artist_mbid[ST_LISTEN_FIELD_MAX + 1]; /* trimmed; "" when !has_artist_mbid */
    bool has_track_mbid;
    char track_mbid[ST_LISTEN_FIELD_MAX + 1];
    /* st_trackmeta_key(artist_name, track_name): lower-case artist, a tab, lower-case track */
    char track_key[2 * ST_LISTEN_FIELD_MAX + 2];
    char event_id[17]; /* 16 lower-case hex digits, see st_listen_event_id */
} st_listen_t;

/* Parses and validates one listens.raw message (json[0..len), need not be NUL-terminated).
 * The message is a JSON object with "user_id", "timestamp" (ISO-8601 string, see
 * st_time_parse_iso8601, or an integer of epoch milliseconds), "artist_name", "track_name"
 * (strings, required; the names may be empty) and optional "artist_mbid", "track_mbid" (string or
 * null). Other keys are ignored. Whitespace (space, \t, \r, \n) is trimmed from every string.
 * now_ms is the current time, > 0 (the upper bound is now_ms + ST_LISTEN_FUTURE_MS).
 * Returns ST_LISTEN_OK and fills *out, or a reason and, if err is non-NULL, err with
 * ST_ERR_INVALID and a human text; *out is then undefined. */
st_listen_reason_t st_listen_parse(const char *json, size_t len, int64_t now_ms, st_listen_t *out,
                                   st_err_t *err);

/* st_listen_parse decodes the common shape of message (a flat object of at most 16 keys whose
 * keys and strings have no escapes or control characters and whose other values are null, true,
 * false or integers of at most 18 digits) with its own single-pass scanner, and hands anything
 * else to jansson; both give the same result, error text and *out for every input. */

/* The jansson path alone, for tests and the bench: st_listen_parse's contract and result. */
st_listen_reason_t st_listen_parse_reference(const char *json, size_t len, int64_t now_ms,
                                             st_listen_t *out, st_err_t *err);

/* For tests: true when st_listen_parse would decode json[0..len) with its scanner, false when it
 * would use jansson or reject the message before decoding (over 64 KB, invalid UTF-8). */
bool st_listen_parse_is_fast(const char *json, size_t len);

/* The same validation and normalisation applied to a parsed TSV record (what the ingest service
 * would compute for the JSON that st_listen_format_json makes of it). */
st_listen_reason_t st_listen_from_record(const st_lastfm_listen_t *rec, int64_t now_ms,
                                         st_listen_t *out, st_err_t *err);

/* The event id of a listen: st_hash64(bytes, n, 0) printed as 16 lower-case hex digits, where
 * bytes = user_id NUL decimal(timestamp_ms) NUL artist_name NUL track_name, using the trimmed
 * (normalised, case-kept) strings and the timestamp in epoch milliseconds as a base-10 integer
 * with a '-' sign if negative. Example: user "u", 1000 ms, "A", "T" -> hash of "u\0" "1000\0A\0T".
 * Writes 17 bytes (with NUL) into out. */
void st_listen_event_id(const char *user_id, int64_t timestamp_ms, const char *artist_name,
                        const char *track_name, char out[17]);

/* Appends to out the listens.raw JSON of a TSV record (one line, no newline):
 * {"user_id":..,"timestamp":"YYYY-MM-DDTHH:MM:SSZ","artist_name":..,"track_name":..
 *  [,"artist_mbid":..][,"track_mbid":..]} with the MBIDs left out when empty. Strings are copied
 * byte for byte (JSON-escaped). Returns 0, or -1 when out of memory. */
int st_listen_format_json(const st_lastfm_listen_t *rec, st_buf_t *out);

#endif
