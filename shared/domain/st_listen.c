/* st_listen.c - listens.raw JSON: validation, normalisation and event ids (jansson), and the
 * TSV-record-to-JSON formatter used by replay. */
#include "st_listen.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "st_session.h"
#include "st_time.h"
#include "st_trackmeta.h"

const char *st_listen_reason_name(st_listen_reason_t reason)
{
    switch (reason) {
    case ST_LISTEN_OK:
        return "ok";
    case ST_LISTEN_NOT_JSON:
        return "not_json";
    case ST_LISTEN_NOT_OBJECT:
        return "not_object";
    case ST_LISTEN_MISSING_FIELD:
        return "missing_field";
    case ST_LISTEN_BAD_TYPE:
        return "bad_type";
    case ST_LISTEN_BAD_TIMESTAMP:
        return "bad_timestamp";
    case ST_LISTEN_TOO_LONG:
        return "too_long";
    case ST_LISTEN_INVALID_UTF8:
        return "invalid_utf8";
    case ST_LISTEN_BAD_ID:
        return "bad_id";
    case ST_LISTEN_REASON_COUNT:
        break;
    }
    return "unknown";
}

/* Records the human text and returns the reason, so callers can `return fail(...)`. */
static st_listen_reason_t fail(st_err_t *err, st_listen_reason_t reason, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static st_listen_reason_t fail(st_err_t *err, st_listen_reason_t reason, const char *fmt, ...)
{
    char text[256];
    va_list ap;
    if (!err)
        return reason;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    st_err_set(err, ST_ERR_INVALID, ST_DISP_PERMANENT, "%s: %s", st_listen_reason_name(reason),
               text);
    return reason;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Copies the trimmed s[0..len) into dst (room for ST_LISTEN_FIELD_MAX + 1); returns its length. */
static size_t copy_trimmed(char *dst, const char *s, size_t len)
{
    while (len > 0 && is_space(*s))
        s++, len--;
    while (len > 0 && is_space(s[len - 1]))
        len--;
    memcpy(dst, s, len);
    dst[len] = '\0';
    return len;
}

static bool has_control(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    return false;
}

void st_listen_event_id(const char *user_id, int64_t timestamp_ms, const char *artist_name,
                        const char *track_name, char out[17])
{
    char bytes[3 * (ST_LISTEN_FIELD_MAX + 1) + 24];
    size_t n = 0, l;

    l = strnlen(user_id, ST_LISTEN_FIELD_MAX);
    memcpy(bytes + n, user_id, l), n += l;
    bytes[n++] = '\0';
    n += (size_t)snprintf(bytes + n, 22, "%" PRId64, timestamp_ms);
    bytes[n++] = '\0';
    l = strnlen(artist_name, ST_LISTEN_FIELD_MAX);
    memcpy(bytes + n, artist_name, l), n += l;
    bytes[n++] = '\0';
    l = strnlen(track_name, ST_LISTEN_FIELD_MAX);
    memcpy(bytes + n, track_name, l), n += l;
    snprintf(out, 17, "%016" PRIx64, st_hash64(bytes, n, 0));
}

/* The raw field values both entry points feed into the shared checks. mbid ptr NULL = absent. */
typedef struct {
    const char *ptr;
    size_t len;
} field_t;

static st_listen_reason_t normalise(field_t user, int64_t ts_ms, field_t artist, field_t track,
                                    field_t artist_mbid, field_t track_mbid, int64_t now_ms,
                                    st_listen_t *out, st_err_t *err)
{
    static const char *names[] = {"user_id", "artist_name", "track_name", "artist_mbid",
                                  "track_mbid"};
    const field_t fields[] = {user, artist, track, artist_mbid, track_mbid};

    for (size_t i = 0; i < 5; i++) {
        if (!fields[i].ptr)
            continue;
        if (fields[i].len > ST_LISTEN_FIELD_MAX)
            return fail(err, ST_LISTEN_TOO_LONG, "%s is over 1024 bytes", names[i]);
        if (!st_lastfm_utf8_valid(fields[i].ptr, fields[i].len))
            return fail(err, ST_LISTEN_INVALID_UTF8, "%s is not valid UTF-8", names[i]);
    }
    size_t user_len = copy_trimmed(out->user_id, user.ptr, user.len);
    if (user_len == 0)
        return fail(err, ST_LISTEN_MISSING_FIELD, "%s is empty", "user_id");
    /* The one user id contract: every later service keys its state by it within this bound. */
    if (user_len > ST_SESSION_USER_ID_MAX)
        return fail(err, ST_LISTEN_TOO_LONG, "user_id is over %d bytes", ST_SESSION_USER_ID_MAX);
    if (has_control(out->user_id))
        return fail(err, ST_LISTEN_BAD_ID, "%s has a control character", "user_id");
    out->has_artist_mbid =
        artist_mbid.ptr && copy_trimmed(out->artist_mbid, artist_mbid.ptr, artist_mbid.len) > 0;
    if (!out->has_artist_mbid)
        out->artist_mbid[0] = '\0';
    else if (has_control(out->artist_mbid))
        return fail(err, ST_LISTEN_BAD_ID, "%s has a control character", "artist_mbid");
    out->has_track_mbid =
        track_mbid.ptr && copy_trimmed(out->track_mbid, track_mbid.ptr, track_mbid.len) > 0;
    if (!out->has_track_mbid)
        out->track_mbid[0] = '\0';
    else if (has_control(out->track_mbid))
        return fail(err, ST_LISTEN_BAD_ID, "%s has a control character", "track_mbid");
    if (ts_ms < ST_LISTEN_MIN_TS_MS || ts_ms > now_ms + ST_LISTEN_FUTURE_MS) {
        char iso[40];
        st_time_format_iso8601(ts_ms, iso, sizeof iso);
        return fail(err, ST_LISTEN_BAD_TIMESTAMP,
                    "timestamp %s is outside 2000-01-01..(record time + 10 min)", iso);
    }
    out->timestamp_ms = ts_ms;
    size_t artist_len = copy_trimmed(out->artist_name, artist.ptr, artist.len);
    size_t track_len = copy_trimmed(out->track_name, track.ptr, track.len);
    st_trackmeta_key(out->artist_name, artist_len, out->track_name, track_len, out->track_key,
                     sizeof out->track_key);
    st_listen_event_id(out->user_id, ts_ms, out->artist_name, out->track_name, out->event_id);
    return ST_LISTEN_OK;
}

/* Fetches a required string field. */
static st_listen_reason_t get_string(json_t *obj, const char *key, field_t *f, st_err_t *err)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v))
        return fail(err, ST_LISTEN_MISSING_FIELD, "%s is missing", key);
    if (!json_is_string(v))
        return fail(err, ST_LISTEN_BAD_TYPE, "%s is not a string", key);
    f->ptr = json_string_value(v);
    f->len = json_string_length(v);
    return ST_LISTEN_OK;
}

/* Fetches an optional string field (absent or null -> ptr NULL). */
static st_listen_reason_t get_optional(json_t *obj, const char *key, field_t *f, st_err_t *err)
{
    json_t *v = json_object_get(obj, key);
    f->ptr = NULL;
    f->len = 0;
    if (!v || json_is_null(v))
        return ST_LISTEN_OK;
    if (!json_is_string(v))
        return fail(err, ST_LISTEN_BAD_TYPE, "%s is not a string", key);
    f->ptr = json_string_value(v);
    f->len = json_string_length(v);
    return ST_LISTEN_OK;
}

static st_listen_reason_t get_timestamp(json_t *obj, int64_t *ts_ms, st_err_t *err)
{
    json_t *v = json_object_get(obj, "timestamp");
    if (!v || json_is_null(v))
        return fail(err, ST_LISTEN_MISSING_FIELD, "%s is missing", "timestamp");
    if (json_is_integer(v)) {
        *ts_ms = (int64_t)json_integer_value(v);
        return ST_LISTEN_OK;
    }
    if (json_is_real(v))
        return fail(err, ST_LISTEN_BAD_TIMESTAMP, "%s is not an integer of epoch ms", "timestamp");
    if (!json_is_string(v))
        return fail(err, ST_LISTEN_BAD_TYPE, "%s is not a string or number", "timestamp");
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    if (len > 64 || st_time_parse_iso8601(s, len, ts_ms) != 0)
        return fail(err, ST_LISTEN_BAD_TIMESTAMP, "%s is not ISO-8601", "timestamp");
    return ST_LISTEN_OK;
}

st_listen_reason_t st_listen_parse(const char *json, size_t len, int64_t now_ms, st_listen_t *out,
                                   st_err_t *err)
{
    if (len > ST_LISTEN_MESSAGE_MAX)
        return fail(err, ST_LISTEN_TOO_LONG, "message is over %s bytes", "65536");
    if (!st_lastfm_utf8_valid(json, len))
        return fail(err, ST_LISTEN_INVALID_UTF8, "%s", "message is not valid UTF-8");

    json_error_t jerr;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (!root)
        return fail(err, ST_LISTEN_NOT_JSON, "%s", jerr.text);
    st_listen_reason_t reason;
    field_t user, artist, track, artist_mbid, track_mbid;
    int64_t ts_ms = 0;
    if (!json_is_object(root))
        reason = fail(err, ST_LISTEN_NOT_OBJECT, "%s", "message is not a JSON object");
    else if ((reason = get_string(root, "user_id", &user, err)) == ST_LISTEN_OK &&
             (reason = get_timestamp(root, &ts_ms, err)) == ST_LISTEN_OK &&
             (reason = get_string(root, "artist_name", &artist, err)) == ST_LISTEN_OK &&
             (reason = get_string(root, "track_name", &track, err)) == ST_LISTEN_OK &&
             (reason = get_optional(root, "artist_mbid", &artist_mbid, err)) == ST_LISTEN_OK &&
             (reason = get_optional(root, "track_mbid", &track_mbid, err)) == ST_LISTEN_OK)
        reason = normalise(user, ts_ms, artist, track, artist_mbid, track_mbid, now_ms, out, err);
    json_decref(root);
    return reason;
}

st_listen_reason_t st_listen_from_record(const st_lastfm_listen_t *rec, int64_t now_ms,
                                         st_listen_t *out, st_err_t *err)
{
    field_t user = {rec->user_id.ptr, rec->user_id.len};
    field_t artist = {rec->artist_name.ptr, rec->artist_name.len};
    field_t track = {rec->track_name.ptr, rec->track_name.len};
    field_t artist_mbid = {rec->artist_mbid.len ? rec->artist_mbid.ptr : NULL,
                           rec->artist_mbid.len};
    field_t track_mbid = {rec->track_mbid.len ? rec->track_mbid.ptr : NULL, rec->track_mbid.len};
    return normalise(user, rec->ts_ms, artist, track, artist_mbid, track_mbid, now_ms, out, err);
}

static int append_json_string(st_buf_t *b, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    if (st_buf_reserve(b, len * 6 + 2) != 0)
        return -1;
    char *p = b->data + b->len;
    *p++ = '"';
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            *p++ = '\\';
            *p++ = (char)c;
        } else if (c == '\n') {
            *p++ = '\\', *p++ = 'n';
        } else if (c == '\t') {
            *p++ = '\\', *p++ = 't';
        } else if (c == '\r') {
            *p++ = '\\', *p++ = 'r';
        } else if (c < 0x20) {
            *p++ = '\\', *p++ = 'u', *p++ = '0', *p++ = '0';
            *p++ = hex[c >> 4], *p++ = hex[c & 15];
        } else {
            *p++ = (char)c;
        }
    }
    *p++ = '"';
    b->len = (size_t)(p - b->data);
    b->data[b->len] = '\0';
    return 0;
}

int st_listen_format_json(const st_lastfm_listen_t *rec, st_buf_t *out)
{
    char iso[40];
    st_time_format_iso8601(rec->ts_ms, iso, sizeof iso);
    if (st_buf_append_str(out, "{\"user_id\":") != 0 ||
        append_json_string(out, rec->user_id.ptr, rec->user_id.len) != 0 ||
        st_buf_printf(out, ",\"timestamp\":\"%s\",\"artist_name\":", iso) != 0 ||
        append_json_string(out, rec->artist_name.ptr, rec->artist_name.len) != 0 ||
        st_buf_append_str(out, ",\"track_name\":") != 0 ||
        append_json_string(out, rec->track_name.ptr, rec->track_name.len) != 0)
        return -1;
    if (rec->artist_mbid.len > 0 &&
        (st_buf_append_str(out, ",\"artist_mbid\":") != 0 ||
         append_json_string(out, rec->artist_mbid.ptr, rec->artist_mbid.len) != 0))
        return -1;
    if (rec->track_mbid.len > 0 &&
        (st_buf_append_str(out, ",\"track_mbid\":") != 0 ||
         append_json_string(out, rec->track_mbid.ptr, rec->track_mbid.len) != 0))
        return -1;
    return st_buf_append_str(out, "}");
}
