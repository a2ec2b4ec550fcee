/* st_listen.c - listens.raw JSON: validation, normalisation and event ids (a single-pass scanner
 * for the common shape, jansson for the rest), and the TSV-record-to-JSON formatter used by
 * replay. */
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
    if (ts_ms < ST_LISTEN_MIN_TS_MS || ts_ms - now_ms > ST_LISTEN_FUTURE_MS) { /* no overflow */
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

/* The six fields st_listen_parse reads, in the order their checks run. */
enum { F_USER_ID, F_TIMESTAMP, F_ARTIST_NAME, F_TRACK_NAME, F_ARTIST_MBID, F_TRACK_MBID, F_COUNT };

static const char *const field_keys[F_COUNT] = {"user_id",    "timestamp",   "artist_name",
                                                "track_name", "artist_mbid", "track_mbid"};

/* A field's value as the message carried it, whichever decoder (jansson or the scanner) read it,
 * so one function applies the checks and both paths fail with the same reason and text. */
typedef enum { VAL_ABSENT = 0, VAL_NULL, VAL_STRING, VAL_INTEGER, VAL_REAL, VAL_OTHER } val_kind_t;

typedef struct {
    val_kind_t kind;
    const char *ptr; /* VAL_STRING: the decoded bytes, not NUL-terminated */
    size_t len;
    int64_t integer; /* VAL_INTEGER */
} val_t;

/* A required string field. */
static st_listen_reason_t get_string(const val_t *v, const char *key, field_t *f, st_err_t *err)
{
    if (v->kind == VAL_ABSENT || v->kind == VAL_NULL)
        return fail(err, ST_LISTEN_MISSING_FIELD, "%s is missing", key);
    if (v->kind != VAL_STRING)
        return fail(err, ST_LISTEN_BAD_TYPE, "%s is not a string", key);
    f->ptr = v->ptr;
    f->len = v->len;
    return ST_LISTEN_OK;
}

/* An optional string field (absent or null -> ptr NULL). */
static st_listen_reason_t get_optional(const val_t *v, const char *key, field_t *f, st_err_t *err)
{
    f->ptr = NULL;
    f->len = 0;
    if (v->kind == VAL_ABSENT || v->kind == VAL_NULL)
        return ST_LISTEN_OK;
    if (v->kind != VAL_STRING)
        return fail(err, ST_LISTEN_BAD_TYPE, "%s is not a string", key);
    f->ptr = v->ptr;
    f->len = v->len;
    return ST_LISTEN_OK;
}

static st_listen_reason_t get_timestamp(const val_t *v, int64_t *ts_ms, st_err_t *err)
{
    if (v->kind == VAL_ABSENT || v->kind == VAL_NULL)
        return fail(err, ST_LISTEN_MISSING_FIELD, "%s is missing", "timestamp");
    if (v->kind == VAL_INTEGER) {
        *ts_ms = v->integer;
        return ST_LISTEN_OK;
    }
    if (v->kind == VAL_REAL)
        return fail(err, ST_LISTEN_BAD_TIMESTAMP, "%s is not an integer of epoch ms", "timestamp");
    if (v->kind != VAL_STRING)
        return fail(err, ST_LISTEN_BAD_TYPE, "%s is not a string or number", "timestamp");
    if (v->len > 64 || st_time_parse_iso8601(v->ptr, v->len, ts_ms) != 0)
        return fail(err, ST_LISTEN_BAD_TIMESTAMP, "%s is not ISO-8601", "timestamp");
    return ST_LISTEN_OK;
}

/* The checks of a decoded object, in their documented order, then normalise. */
static st_listen_reason_t check_fields(const val_t v[F_COUNT], int64_t now_ms, st_listen_t *out,
                                       st_err_t *err)
{
    st_listen_reason_t reason;
    field_t user, artist, track, artist_mbid, track_mbid;
    int64_t ts_ms = 0;
    if ((reason = get_string(&v[F_USER_ID], "user_id", &user, err)) != ST_LISTEN_OK ||
        (reason = get_timestamp(&v[F_TIMESTAMP], &ts_ms, err)) != ST_LISTEN_OK ||
        (reason = get_string(&v[F_ARTIST_NAME], "artist_name", &artist, err)) != ST_LISTEN_OK ||
        (reason = get_string(&v[F_TRACK_NAME], "track_name", &track, err)) != ST_LISTEN_OK ||
        (reason = get_optional(&v[F_ARTIST_MBID], "artist_mbid", &artist_mbid, err)) !=
            ST_LISTEN_OK ||
        (reason = get_optional(&v[F_TRACK_MBID], "track_mbid", &track_mbid, err)) != ST_LISTEN_OK)
        return reason;
    return normalise(user, ts_ms, artist, track, artist_mbid, track_mbid, now_ms, out, err);
}

/* Checks st_listen_parse makes before decoding anything; ST_LISTEN_OK when both pass. */
static st_listen_reason_t check_message(const char *json, size_t len, st_err_t *err)
{
    if (len > ST_LISTEN_MESSAGE_MAX)
        return fail(err, ST_LISTEN_TOO_LONG, "message is over %s bytes", "65536");
    if (!st_lastfm_utf8_valid(json, len))
        return fail(err, ST_LISTEN_INVALID_UTF8, "%s", "message is not valid UTF-8");
    return ST_LISTEN_OK;
}

/* The reference decoder: jansson, which also words every syntax error. */
static st_listen_reason_t parse_jansson(const char *json, size_t len, int64_t now_ms,
                                        st_listen_t *out, st_err_t *err)
{
    json_error_t jerr;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (!root)
        return fail(err, ST_LISTEN_NOT_JSON, "%s", jerr.text);
    st_listen_reason_t reason;
    if (!json_is_object(root)) {
        reason = fail(err, ST_LISTEN_NOT_OBJECT, "%s", "message is not a JSON object");
    } else {
        val_t v[F_COUNT];
        for (size_t i = 0; i < F_COUNT; i++) {
            json_t *j = json_object_get(root, field_keys[i]);
            v[i] = (val_t){.kind = VAL_ABSENT};
            if (!j)
                continue;
            if (json_is_null(j)) {
                v[i].kind = VAL_NULL;
            } else if (json_is_string(j)) {
                v[i].kind = VAL_STRING;
                v[i].ptr = json_string_value(j);
                v[i].len = json_string_length(j);
            } else if (json_is_integer(j)) {
                v[i].kind = VAL_INTEGER;
                v[i].integer = (int64_t)json_integer_value(j);
            } else {
                v[i].kind = json_is_real(j) ? VAL_REAL : VAL_OTHER;
            }
        }
        /* The strings are borrowed from root: check before releasing it. */
        reason = check_fields(v, now_ms, out, err);
    }
    json_decref(root);
    return reason;
}

/* The fast decoder covers what producers send: a flat object of at most FAST_MAX_KEYS keys whose
 * keys and string values have no escapes and no control characters, and whose other values are
 * null, true, false or integers of at most FAST_MAX_DIGITS digits (so strtoll cannot overflow).
 * In that subset the raw bytes between the quotes are exactly what jansson would decode, so the
 * values (and every check after) match. Anything else - including every syntax error - goes to
 * jansson, so odd input keeps its error text. The caller has already checked UTF-8, as strictly
 * as jansson does. */
#define FAST_MAX_KEYS   16
#define FAST_MAX_DIGITS 18

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && is_space(*p))
        p++;
    return p;
}

/* p is just past an opening quote; returns the closing quote, or NULL when the string has an
 * escape or a control character (jansson decides those) or is unterminated. */
static const char *scan_plain_string(const char *p, const char *end)
{
    for (; p < end; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '"')
            return p;
        if (c == '\\' || c < 0x20)
            return NULL;
    }
    return NULL;
}

/* Which known field a key names, or F_COUNT. */
static int field_index(const char *key, size_t len)
{
    /* key holds no NUL (the message passed the UTF-8 check), so strncmp stops at the known
     * name's end and the NUL test rejects a longer name. */
    for (int i = 0; i < F_COUNT; i++)
        if (strncmp(field_keys[i], key, len) == 0 && field_keys[i][len] == '\0')
            return i;
    return F_COUNT;
}

/* Decodes json into v when it is inside the subset above; false hands it to jansson. */
static bool scan_fast(const char *json, size_t len, val_t v[F_COUNT])
{
    const char *p = json, *end = json + len;
    struct {
        const char *ptr;
        size_t len;
    } keys[FAST_MAX_KEYS];
    size_t nkeys = 0;

    for (size_t i = 0; i < F_COUNT; i++)
        v[i] = (val_t){.kind = VAL_ABSENT};
    p = skip_ws(p, end);
    if (p == end || *p != '{')
        return false;
    p = skip_ws(p + 1, end);
    if (p < end && *p == '}')
        return skip_ws(p + 1, end) == end;
    for (;;) {
        if (p == end || *p != '"' || nkeys == FAST_MAX_KEYS)
            return false;
        const char *key = p + 1, *q = scan_plain_string(key, end);
        if (!q)
            return false;
        size_t key_len = (size_t)(q - key);
        /* JSON_REJECT_DUPLICATES compares decoded keys, which here are the raw bytes. */
        for (size_t i = 0; i < nkeys; i++)
            if (keys[i].len == key_len && memcmp(keys[i].ptr, key, key_len) == 0)
                return false;
        keys[nkeys].ptr = key;
        keys[nkeys].len = key_len;
        nkeys++;
        p = skip_ws(q + 1, end);
        if (p == end || *p != ':')
            return false;
        p = skip_ws(p + 1, end);
        if (p == end)
            return false;
        val_t val = {.kind = VAL_OTHER};
        if (*p == '"') {
            q = scan_plain_string(p + 1, end);
            if (!q)
                return false;
            val.kind = VAL_STRING;
            val.ptr = p + 1;
            val.len = (size_t)(q - val.ptr);
            p = q + 1;
        } else if (end - p >= 4 && memcmp(p, "null", 4) == 0) {
            val.kind = VAL_NULL;
            p += 4;
        } else if (end - p >= 4 && memcmp(p, "true", 4) == 0) {
            p += 4;
        } else if (end - p >= 5 && memcmp(p, "false", 5) == 0) {
            p += 5;
        } else {
            bool negative = *p == '-';
            p += negative;
            if (p == end || *p < '0' || *p > '9')
                return false;
            int64_t n = 0;
            if (*p == '0') {
                /* A leading 0 is the whole number: a digit after it fails the separator check
                 * below, as jansson rejects it. */
                p++;
            } else {
                for (int digits = 0; p < end && *p >= '0' && *p <= '9'; p++) {
                    if (++digits > FAST_MAX_DIGITS)
                        return false;
                    n = n * 10 + (*p - '0');
                }
            }
            val.kind = VAL_INTEGER;
            val.integer = negative ? -n : n;
        }
        /* Only a separator may follow a value: this is what rejects "truex", "01", "1.5", "1e3". */
        p = skip_ws(p, end);
        if (p == end)
            return false;
        int field = field_index(key, key_len);
        if (field < F_COUNT)
            v[field] = val;
        if (*p == '}')
            return skip_ws(p + 1, end) == end;
        if (*p != ',')
            return false;
        p = skip_ws(p + 1, end);
    }
}

bool st_listen_parse_is_fast(const char *json, size_t len)
{
    val_t v[F_COUNT];
    return check_message(json, len, NULL) == ST_LISTEN_OK && scan_fast(json, len, v);
}

st_listen_reason_t st_listen_parse_reference(const char *json, size_t len, int64_t now_ms,
                                             st_listen_t *out, st_err_t *err)
{
    st_listen_reason_t reason = check_message(json, len, err);
    if (reason != ST_LISTEN_OK)
        return reason;
    return parse_jansson(json, len, now_ms, out, err);
}

st_listen_reason_t st_listen_parse(const char *json, size_t len, int64_t now_ms, st_listen_t *out,
                                   st_err_t *err)
{
    st_listen_reason_t reason = check_message(json, len, err);
    if (reason != ST_LISTEN_OK)
        return reason;
    val_t v[F_COUNT];
    if (scan_fast(json, len, v))
        return check_fields(v, now_ms, out, err);
    return parse_jansson(json, len, now_ms, out, err);
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
