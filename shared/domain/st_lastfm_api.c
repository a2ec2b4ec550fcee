/* st_lastfm_api.c - track.getInfo over libcurl, and the classification of its answers. */
#include "st_lastfm_api.h"

#include "st_buf.h"
#include "st_err.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_USER_AGENT "stint/" STINT_VERSION " (+https://github.com/stint)"

struct st_lastfm_api {
    CURL *curl;
    char *base_url;
    char *api_key;
    char *api_key_escaped;
    size_t max_body_bytes;
    bool (*cancel)(void *ctx);
    void *cancel_ctx;
    st_buf_t body;
    bool body_too_large;
    char curl_errbuf[CURL_ERROR_SIZE];
};

void st_lastfm_api_config_init(st_lastfm_api_config_t *conf)
{
    memset(conf, 0, sizeof *conf);
    conf->base_url = ST_LASTFM_API_DEFAULT_BASE_URL;
    conf->user_agent = DEFAULT_USER_AGENT;
    conf->connect_timeout_ms = 3000;
    conf->total_timeout_ms = 10000;
    conf->max_body_bytes = 1 << 20;
}

const char *st_lastfm_api_status_name(st_lastfm_api_status_t status)
{
    switch (status) {
    case ST_LASTFM_API_OK:
        return "ok";
    case ST_LASTFM_API_NOT_FOUND:
        return "not_found";
    case ST_LASTFM_API_RETRY:
        return "retry";
    case ST_LASTFM_API_FATAL_KEY:
        return "fatal_key";
    case ST_LASTFM_API_OTHER:
        return "other";
    }
    return "unknown";
}

st_lastfm_api_status_t st_lastfm_api_classify_error(int lastfm_error)
{
    switch (lastfm_error) {
    case 6:
        return ST_LASTFM_API_NOT_FOUND;
    case 8:  /* operation failed: backend error, try again */
    case 11: /* service offline */
    case 16: /* temporary error processing the request */
    case 29: /* rate limit exceeded */
        return ST_LASTFM_API_RETRY;
    case 10: /* invalid API key */
    case 26: /* suspended API key */
        return ST_LASTFM_API_FATAL_KEY;
    default:
        return ST_LASTFM_API_OTHER;
    }
}

static void result_reset(st_lastfm_api_result_t *out)
{
    memset(out, 0, sizeof *out);
    out->status = ST_LASTFM_API_OTHER;
    out->duration_ms = -1;
}

static void set_reason(st_lastfm_api_result_t *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void set_reason(st_lastfm_api_result_t *out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out->reason, sizeof out->reason, fmt, ap);
    va_end(ap);
}

/* Reads a JSON integer, or a string of decimal digits (Last.fm sends numbers as strings). */
static bool json_to_int64(const json_t *v, int64_t *out)
{
    if (json_is_integer(v)) {
        *out = (int64_t)json_integer_value(v);
        return true;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (!(d > -9e18 && d < 9e18))
            return false;
        *out = (int64_t)d;
        return true;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        char *end;
        long long n;
        while (isspace((unsigned char)*s))
            s++;
        if (!*s || !(isdigit((unsigned char)*s) || *s == '-'))
            return false;
        errno = 0;
        n = strtoll(s, &end, 10);
        while (isspace((unsigned char)*end))
            end++;
        if (errno || *end)
            return false;
        *out = n;
        return true;
    }
    return false;
}

/* Copies src into dst (size bytes), cutting at a UTF-8 character boundary when it does not fit. */
static void copy_utf8(char *dst, size_t size, const char *src)
{
    size_t n = strlen(src);
    if (n >= size) {
        n = size - 1;
        while (n > 0 && ((unsigned char)src[n] & 0xC0) == 0x80)
            n--;
    }
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static void add_tag(st_lastfm_api_result_t *out, const json_t *tag)
{
    const char *name;
    if (out->n_tags >= ST_LASTFM_API_MAX_TAGS || !json_is_object(tag))
        return;
    name = json_string_value(json_object_get(tag, "name"));
    if (!name || !*name)
        return;
    copy_utf8(out->tags[out->n_tags++], ST_LASTFM_API_TAG_SIZE, name);
}

static void parse_root(const json_t *root, st_lastfm_api_result_t *out)
{
    const json_t *err = json_object_get(root, "error");
    const json_t *track, *toptags, *tag;
    int64_t n;

    if (err) {
        const char *msg = json_string_value(json_object_get(root, "message"));
        if (!json_to_int64(err, &n) || n <= 0 || n > 1000000) {
            set_reason(out, "error member is not a valid code");
            return;
        }
        out->lastfm_error = (int)n;
        out->status = st_lastfm_api_classify_error(out->lastfm_error);
        out->rate_limited = out->lastfm_error == 29;
        set_reason(out, "lastfm error %d: %s", out->lastfm_error, msg ? msg : "(no message)");
        return;
    }
    track = json_object_get(root, "track");
    if (!json_is_object(track)) {
        set_reason(out, "answer has no track object");
        return;
    }
    out->status = ST_LASTFM_API_OK;
    if (json_to_int64(json_object_get(track, "duration"), &n) && n > 0)
        out->duration_ms = n;
    /* Missing or odd toptags (Last.fm sometimes sends a string) only means no tags. */
    toptags = json_object_get(track, "toptags");
    tag = json_is_object(toptags) ? json_object_get(toptags, "tag") : NULL;
    if (json_is_array(tag)) {
        size_t i;
        const json_t *t;
        json_array_foreach(tag, i, t) add_tag(out, t);
    } else if (json_is_object(tag)) {
        add_tag(out, tag);
    }
}

void st_lastfm_api_parse_track_info(const char *body, size_t len, st_lastfm_api_result_t *out)
{
    json_error_t jerr;
    json_t *root;

    result_reset(out);
    if (!body || len == 0) {
        set_reason(out, "empty answer");
        return;
    }
    root = json_loadb(body, len, 0, &jerr);
    if (!root) {
        set_reason(out, "malformed JSON at line %d column %d: %s", jerr.line, jerr.column,
                   jerr.text);
        return;
    }
    if (!json_is_object(root))
        set_reason(out, "answer is not a JSON object");
    else
        parse_root(root, out);
    json_decref(root);
}

/* Replaces every occurrence of secret in s (a NUL-terminated buffer of size bytes) with a mark,
 * cutting the tail if the mark is longer and the buffer full. */
static void redact(char *s, size_t size, const char *secret)
{
    static const char mark[] = "[redacted]";
    size_t slen = secret ? strlen(secret) : 0;
    char *p = s;
    if (slen == 0)
        return;
    while ((p = strstr(p, secret))) {
        size_t room = size - (size_t)(p - s) - 1; /* bytes usable from p, the NUL excluded */
        size_t mlen = sizeof mark - 1 < room ? sizeof mark - 1 : room;
        size_t tail = strlen(p + slen);
        if (mlen + tail > room)
            tail = room - mlen;
        memmove(p + mlen, p + slen, tail);
        memcpy(p, mark, mlen);
        p[mlen + tail] = '\0';
        p += mlen; /* the mark itself may contain the secret */
    }
}

int st_lastfm_api_key_from(const char *text, const char *source, char *out, size_t out_size,
                           char *errstr, size_t errstr_size)
{
    const char *s = text, *e;
    while (isspace((unsigned char)*s))
        s++;
    for (e = s; *e && *e != '\n' && *e != '\r'; e++)
        ;
    while (e > s && isspace((unsigned char)e[-1]))
        e--;
    if (e == s)
        return st_errstr(errstr, errstr_size, "the API key in %s is empty", source);
    if ((size_t)(e - s) >= out_size)
        return st_errstr(errstr, errstr_size, "the API key in %s is too long", source);
    for (const char *p = s; p < e; p++)
        if (isspace((unsigned char)*p) || iscntrl((unsigned char)*p))
            return st_errstr(errstr, errstr_size,
                             "the API key in %s has a space or control character in it", source);
    memcpy(out, s, (size_t)(e - s));
    out[e - s] = '\0';
    return 0;
}

int st_lastfm_api_load_key(const char *key_file, char *out, size_t out_size, char *errstr,
                           size_t errstr_size)
{
    const char *env = getenv(ST_LASTFM_API_KEY_ENV);
    const char *path = getenv(ST_LASTFM_API_KEY_FILE_ENV);
    char line[512], source[300];

    if (env && *env)
        return st_lastfm_api_key_from(env, ST_LASTFM_API_KEY_ENV, out, out_size, errstr,
                                      errstr_size);
    if (!path || !*path)
        path = key_file;
    if (!path || !*path)
        return st_errstr(errstr, errstr_size, "no Last.fm API key: set %s or %s",
                         ST_LASTFM_API_KEY_ENV, ST_LASTFM_API_KEY_FILE_ENV);
    FILE *f = fopen(path, "r");
    if (!f)
        return st_errstr(errstr, errstr_size, "cannot open API key file %s: %s", path,
                         strerror(errno));
    char *s = fgets(line, sizeof line, f);
    fclose(f);
    if (!s)
        return st_errstr(errstr, errstr_size, "API key file %s is empty", path);
    snprintf(source, sizeof source, "file %s", path);
    return st_lastfm_api_key_from(line, source, out, out_size, errstr, errstr_size);
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *userdata)
{
    st_lastfm_api_t *c = userdata;
    size_t n = size * nmemb;
    if (c->body.len + n > c->max_body_bytes) {
        c->body_too_large = true;
        return 0;
    }
    if (st_buf_append(&c->body, data, n) != 0)
        return 0;
    return n;
}

static int on_progress(void *userdata, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    st_lastfm_api_t *c = userdata;
    (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    return c->cancel(c->cancel_ctx) ? 1 : 0;
}

void st_lastfm_api_destroy(st_lastfm_api_t *c)
{
    if (!c)
        return;
    if (c->curl)
        curl_easy_cleanup(c->curl);
    if (c->api_key_escaped)
        curl_free(c->api_key_escaped);
    if (c->api_key) {
        memset(c->api_key, 0, strlen(c->api_key));
        free(c->api_key);
    }
    free(c->base_url);
    st_buf_free(&c->body);
    free(c);
    curl_global_cleanup();
}

st_lastfm_api_t *st_lastfm_api_new(const st_lastfm_api_config_t *conf, char *errstr,
                                   size_t errstr_size)
{
    st_lastfm_api_t *c;
    const char *ua;

    if (!conf->api_key || !*conf->api_key) {
        st_errstr(errstr, errstr_size, "Last.fm client: no API key");
        return NULL;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        st_errstr(errstr, errstr_size, "Last.fm client: libcurl global init failed");
        return NULL;
    }
    if (!(c = calloc(1, sizeof *c))) {
        curl_global_cleanup();
        st_errstr(errstr, errstr_size, "Last.fm client: out of memory");
        return NULL;
    }
    c->max_body_bytes = conf->max_body_bytes ? conf->max_body_bytes : (size_t)1 << 20;
    c->cancel = conf->cancel;
    c->cancel_ctx = conf->cancel_ctx;
    c->base_url =
        strdup(conf->base_url && *conf->base_url ? conf->base_url : ST_LASTFM_API_DEFAULT_BASE_URL);
    c->api_key = strdup(conf->api_key);
    c->curl = curl_easy_init();
    if (!c->base_url || !c->api_key || !c->curl ||
        !(c->api_key_escaped = curl_easy_escape(c->curl, c->api_key, 0))) {
        st_lastfm_api_destroy(c);
        st_errstr(errstr, errstr_size, "Last.fm client: out of memory or libcurl init failed");
        return NULL;
    }
    ua = conf->user_agent && *conf->user_agent ? conf->user_agent : DEFAULT_USER_AGENT;
    curl_easy_setopt(c->curl, CURLOPT_USERAGENT, ua);
    curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L); /* timeouts without SIGALRM: thread-safe */
    curl_easy_setopt(c->curl, CURLOPT_CONNECTTIMEOUT_MS,
                     conf->connect_timeout_ms > 0 ? conf->connect_timeout_ms : 3000L);
    curl_easy_setopt(c->curl, CURLOPT_TIMEOUT_MS,
                     conf->total_timeout_ms > 0 ? conf->total_timeout_ms : 10000L);
    curl_easy_setopt(c->curl, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(c->curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, c->curl_errbuf);
    if (c->cancel) {
        curl_easy_setopt(c->curl, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(c->curl, CURLOPT_XFERINFODATA, c);
        curl_easy_setopt(c->curl, CURLOPT_NOPROGRESS, 0L);
    }
    return c;
}

static bool transport_retriable(CURLcode rc)
{
    switch (rc) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_ABORTED_BY_CALLBACK:
        return true;
    default:
        return false;
    }
}

/* Turns an HTTP answer into a result: a Last.fm error body wins over the status code, because
 * Last.fm sends its errors with 200 and sometimes with 4xx. */
static void classify_http(st_lastfm_api_t *c, long http, st_lastfm_api_result_t *out)
{
    st_lastfm_api_parse_track_info(c->body.data, c->body.len, out);
    out->http_status = (int)http;
    if (http == 200 || out->lastfm_error != 0)
        return;
    result_reset(out);
    out->http_status = (int)http;
    if (http >= 500 && http <= 599) {
        out->status = ST_LASTFM_API_RETRY;
        set_reason(out, "HTTP %ld", http);
    } else if (http == 429) {
        out->status = ST_LASTFM_API_RETRY;
        out->rate_limited = true;
        set_reason(out, "HTTP 429 too many requests");
    } else {
        set_reason(out, "HTTP %ld", http);
    }
}

void st_lastfm_api_track_get_info(st_lastfm_api_t *c, const char *artist, const char *track,
                                  st_lastfm_api_result_t *out)
{
    st_buf_t url = ST_BUF_INIT;
    char *artist_esc = NULL, *track_esc = NULL;
    CURLcode rc;
    long http = 0;

    result_reset(out);
    artist_esc = curl_easy_escape(c->curl, artist ? artist : "", 0);
    track_esc = curl_easy_escape(c->curl, track ? track : "", 0);
    if (!artist_esc || !track_esc ||
        st_buf_printf(&url,
                      "%s%smethod=track.getInfo&api_key=%s&artist=%s&track=%s"
                      "&autocorrect=1&format=json",
                      c->base_url, strchr(c->base_url, '?') ? "&" : "?", c->api_key_escaped,
                      artist_esc, track_esc) != 0) {
        set_reason(out, "out of memory building the request");
        goto done;
    }
    st_buf_reset(&c->body);
    c->body_too_large = false;
    c->curl_errbuf[0] = '\0';
    curl_easy_setopt(c->curl, CURLOPT_URL, url.data);
    rc = curl_easy_perform(c->curl);
    curl_easy_setopt(c->curl, CURLOPT_URL, ""); /* do not keep the key-bearing URL around */
    if (rc == CURLE_OK) {
        curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &http);
        classify_http(c, http, out);
    } else if (rc == CURLE_WRITE_ERROR && c->body_too_large) {
        set_reason(out, "answer larger than %zu bytes", c->max_body_bytes);
    } else {
        out->status = transport_retriable(rc) ? ST_LASTFM_API_RETRY : ST_LASTFM_API_OTHER;
        if (rc == CURLE_ABORTED_BY_CALLBACK)
            set_reason(out, "cancelled");
        else
            set_reason(out, "%s: %s", rc == CURLE_OPERATION_TIMEDOUT ? "timeout" : "network",
                       c->curl_errbuf[0] ? c->curl_errbuf : curl_easy_strerror(rc));
    }
done:
    redact(out->reason, sizeof out->reason, c->api_key);
    if (strcmp(c->api_key, c->api_key_escaped) != 0)
        redact(out->reason, sizeof out->reason, c->api_key_escaped);
    if (url.data)
        memset(url.data, 0, url.len);
    st_buf_free(&url);
    curl_free(artist_esc);
    curl_free(track_esc);
}
