/* st_trackmeta.c - the track metadata cache format in Redis: key normalisation, entry layout,
 * lookup parsing, the atomic store script and the catalog line parser. */
#include "st_trackmeta.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "st_buf.h"
#include "st_err.h"
#include "st_rkey.h"

#define TAG_SEP '\x1f'

/* KEYS[1] the entry; ARGV[1] ttl_ms (0 = a positive entry), ARGV[2..] field/value pairs.
 * A negative never replaces a positive entry; DEL + HSET make the new entry the whole hash. */
static const char store_lua[] = "local ttl = tonumber(ARGV[1])\n"
                                "if ttl > 0 then\n"
                                "  local s = redis.call('HGET', KEYS[1], 'source')\n"
                                "  if s == 'LASTFM' or s == 'CATALOG' then return 0 end\n"
                                "end\n"
                                "redis.call('DEL', KEYS[1])\n"
                                "redis.call('HSET', KEYS[1], unpack(ARGV, 2))\n"
                                "if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end\n"
                                "return 1\n";

static const char *const source_names[] = {"",      "LASTFM",    "CATALOG",
                                           "OTHER", "NOT_FOUND", "TRY_LATER"};

bool st_trackmeta_is_negative(st_trackmeta_source_t source)
{
    return source == ST_TRACKMETA_NOT_FOUND || source == ST_TRACKMETA_TRY_LATER;
}

const char *st_trackmeta_source_name(st_trackmeta_source_t source)
{
    if ((size_t)source >= sizeof source_names / sizeof source_names[0])
        return "";
    return source_names[source];
}

st_trackmeta_source_t st_trackmeta_source_parse(const char *s, size_t len)
{
    for (size_t i = 1; i < sizeof source_names / sizeof source_names[0]; i++)
        if (strlen(source_names[i]) == len && memcmp(source_names[i], s, len) == 0)
            return (st_trackmeta_source_t)i;
    return ST_TRACKMETA_OTHER;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static void trim(const char **s, size_t *len)
{
    while (*len > 0 && is_space(**s))
        (*s)++, (*len)--;
    while (*len > 0 && is_space((*s)[*len - 1]))
        (*len)--;
}

/* Lower-cases A-Z; a tab, CR or LF inside a name becomes a space, so that the tab joining the
 * two names is the only one ("A\tB" + "C" and "A" + "B\tC" stay two keys). */
static void lower_copy(char *dst, const char *src, size_t len)
{
    for (size_t i = 0; i < len; i++)
        dst[i] = (src[i] >= 'A' && src[i] <= 'Z') ? (char)(src[i] + ('a' - 'A'))
                 : is_space(src[i])               ? ' '
                                                  : src[i];
}

int st_trackmeta_key(const char *artist, size_t artist_len, const char *track, size_t track_len,
                     char *out, size_t out_size)
{
    trim(&artist, &artist_len);
    trim(&track, &track_len);
    if (out_size == 0)
        return -1;
    if (artist_len + track_len + 2 > out_size) {
        out[0] = '\0';
        return -1;
    }
    lower_copy(out, artist, artist_len);
    out[artist_len] = '\t';
    lower_copy(out + artist_len + 1, track, track_len);
    out[artist_len + 1 + track_len] = '\0';
    return (int)(artist_len + 1 + track_len);
}

int st_trackmeta_redis_key(const char *prefix, const char *track_key, size_t len, char *out,
                           size_t out_size)
{
    return st_rkey_track_to(out, out_size, prefix, st_hash64(track_key, len, 0));
}

int st_trackmeta_pipe_lookup(st_redis_t *r, const char *redis_key)
{
    const char *argv[] = {"HMGET",       redis_key, "track_key",    "source",
                          "duration_ms", "tags",    "expires_at_ms"};
    return st_redis_pipe_argv(r, 7, argv, NULL);
}

static bool parse_i64(const char *s, size_t len, int64_t *out)
{
    char buf[32], *end;
    if (len == 0 || len >= sizeof buf)
        return false;
    memcpy(buf, s, len);
    buf[len] = '\0';
    long long v = strtoll(buf, &end, 10);
    if (*end != '\0')
        return false;
    *out = v;
    return true;
}

/* Copies at most size - 1 bytes of s[0..len), cut at a UTF-8 character boundary. */
static void copy_tag(char *dst, size_t size, const char *s, size_t len)
{
    if (len >= size) {
        len = size - 1;
        while (len > 0 && ((unsigned char)s[len] & 0xC0) == 0x80)
            len--;
    }
    memcpy(dst, s, len);
    dst[len] = '\0';
}

static void split_tags(const char *s, size_t len, st_trackmeta_t *out)
{
    size_t start = 0;
    out->ntags = 0;
    if (len == 0)
        return;
    for (size_t i = 0; i <= len && out->ntags < ST_TRACKMETA_MAX_TAGS; i++) {
        if (i == len || s[i] == TAG_SEP) {
            copy_tag(out->tags[out->ntags++], ST_TRACKMETA_TAG_SIZE, s + start, i - start);
            start = i + 1;
        }
    }
}

int st_trackmeta_parse_lookup(const redisReply *reply, const char *track_key, size_t len,
                              int64_t now_ms, st_trackmeta_t *out)
{
    memset(out, 0, sizeof *out);
    out->duration_ms = -1;
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != 5)
        return -1;
    for (size_t i = 0; i < 5; i++)
        if (reply->element[i]->type != REDIS_REPLY_STRING &&
            reply->element[i]->type != REDIS_REPLY_NIL)
            return -1;
    const redisReply *k = reply->element[0], *src = reply->element[1], *dur = reply->element[2],
                     *tags = reply->element[3], *exp = reply->element[4];
    if (k->type == REDIS_REPLY_NIL && src->type == REDIS_REPLY_NIL)
        return 0;
    if (k->type != REDIS_REPLY_STRING || (size_t)k->len != len || memcmp(k->str, track_key, len))
        return 0;
    out->source = src->type == REDIS_REPLY_STRING
                      ? st_trackmeta_source_parse(src->str, (size_t)src->len)
                      : ST_TRACKMETA_OTHER;
    int64_t v;
    if (dur->type == REDIS_REPLY_STRING && parse_i64(dur->str, (size_t)dur->len, &v) && v > 0)
        out->duration_ms = v;
    if (tags->type == REDIS_REPLY_STRING)
        split_tags(tags->str, (size_t)tags->len, out);
    if (exp->type == REDIS_REPLY_STRING && parse_i64(exp->str, (size_t)exp->len, &v) && v > 0)
        out->expires_at_ms = v;
    if (out->expires_at_ms > 0 && out->expires_at_ms <= now_ms) {
        out->source = ST_TRACKMETA_NONE;
        return 0;
    }
    return 1;
}

st_redis_script_t *st_trackmeta_store_script(st_redis_t *r)
{
    return st_redis_script(r, store_lua);
}

int st_trackmeta_pipe_store(st_redis_t *r, const st_redis_script_t *script, const char *prefix,
                            const char *track_key, size_t len, const st_trackmeta_t *m,
                            int64_t ttl_ms, int64_t now_ms)
{
    char rkey[ST_TRACKMETA_REDIS_KEY_SIZE + 256], ttl[24], dur[24], exp[24];
    char tags[ST_TRACKMETA_MAX_TAGS * ST_TRACKMETA_TAG_SIZE];
    const char *argv[16];
    size_t argvlen[16];
    int n = 0;
    bool negative = st_trackmeta_is_negative(m->source);

    int klen = st_trackmeta_redis_key(prefix, track_key, len, rkey, sizeof rkey);
    if (klen < 0 || (negative && ttl_ms <= 0))
        return -1;
#define ARG(p, l) (argv[n] = (p), argvlen[n] = (l), n++)
    ARG(rkey, (size_t)klen);
    snprintf(ttl, sizeof ttl, "%" PRId64, negative ? ttl_ms : (int64_t)0);
    ARG(ttl, strlen(ttl));
    ARG("track_key", 9);
    ARG(track_key, len);
    ARG("source", 6);
    const char *src = st_trackmeta_source_name(m->source);
    ARG(src, strlen(src));
    if (m->duration_ms > 0) {
        snprintf(dur, sizeof dur, "%" PRId64, m->duration_ms);
        ARG("duration_ms", 11);
        ARG(dur, strlen(dur));
    }
    size_t tlen = 0;
    for (int i = 0; i < m->ntags && i < ST_TRACKMETA_MAX_TAGS; i++) {
        if (i > 0)
            tags[tlen++] = TAG_SEP;
        for (const char *c = m->tags[i]; *c && tlen < sizeof tags - 1; c++)
            tags[tlen++] = (unsigned char)*c < 0x20 ? ' ' : *c;
    }
    if (tlen > 0) {
        ARG("tags", 4);
        ARG(tags, tlen);
    }
    if (negative) {
        snprintf(exp, sizeof exp, "%" PRId64, now_ms + ttl_ms);
        ARG("expires_at_ms", 13);
        ARG(exp, strlen(exp));
    }
#undef ARG
    return st_redis_pipe_evalsha(r, script, 1, n - 1, argv, argvlen);
}

int st_trackmeta_parse_catalog_line(const char *line, size_t len, char *out_key,
                                    size_t out_key_size, st_trackmeta_t *out, char *reason,
                                    size_t reason_size)
{
    json_error_t jerr;
    int rc = -1;
    memset(out, 0, sizeof *out);
    out->source = ST_TRACKMETA_CATALOG;
    out->duration_ms = -1;
    json_t *o = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!o) {
        st_errstr(reason, reason_size, "not JSON: %s", jerr.text);
        return -1;
    }
    json_t *artist = json_object_get(o, "artist"), *track = json_object_get(o, "track");
    json_t *dur = json_object_get(o, "duration_ms"), *tags = json_object_get(o, "tags");
    if (!json_is_object(o)) {
        st_errstr(reason, reason_size, "not a JSON object");
        goto done;
    }
    if (!json_is_string(artist) || !json_is_string(track)) {
        st_errstr(reason, reason_size, "artist and track must be strings");
        goto done;
    }
    if (dur && !json_is_null(dur)) {
        if (!json_is_integer(dur) || json_integer_value(dur) < 0) {
            st_errstr(reason, reason_size, "duration_ms must be an integer >= 0");
            goto done;
        }
        if (json_integer_value(dur) > 0)
            out->duration_ms = json_integer_value(dur);
    }
    if (tags && !json_is_null(tags)) {
        size_t i;
        json_t *t;
        if (!json_is_array(tags)) {
            st_errstr(reason, reason_size, "tags must be an array of strings");
            goto done;
        }
        json_array_foreach(tags, i, t)
        {
            if (!json_is_string(t)) {
                st_errstr(reason, reason_size, "tags must be an array of strings");
                goto done;
            }
            if (out->ntags < ST_TRACKMETA_MAX_TAGS)
                copy_tag(out->tags[out->ntags++], ST_TRACKMETA_TAG_SIZE, json_string_value(t),
                         json_string_length(t));
        }
    }
    const char *a = json_string_value(artist), *tr = json_string_value(track);
    if (memchr(a, '\0', json_string_length(artist)) ||
        memchr(tr, '\0', json_string_length(track))) {
        st_errstr(reason, reason_size, "a name holds a NUL character");
        goto done;
    }
    rc = st_trackmeta_key(a, json_string_length(artist), tr, json_string_length(track), out_key,
                          out_key_size);
    if (rc < 0)
        st_errstr(reason, reason_size, "artist and track are too long");
done:
    json_decref(o);
    return rc;
}
