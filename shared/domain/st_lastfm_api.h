/* st_lastfm_api.h - the Last.fm track.getInfo client (libcurl + jansson): one blocking call that
 * returns a classified result (OK / NOT_FOUND / RETRY / FATAL_KEY / OTHER), and the pure parser of
 * its JSON answer with Last.fm's quirks (numbers as strings, duration "0", `tag` object or array).
 */
#ifndef ST_LASTFM_API_H
#define ST_LASTFM_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ST_LASTFM_API_DEFAULT_BASE_URL "https://ws.audioscrobbler.com/2.0/"
#define ST_LASTFM_API_MAX_TAGS         5
#define ST_LASTFM_API_TAG_SIZE         128 /* bytes per tag name, NUL included (UTF-8 safe cut) */
#define ST_LASTFM_API_KEY_ENV          "STINT_LASTFM_API_KEY"
#define ST_LASTFM_API_KEY_FILE_ENV     "STINT_LASTFM_API_KEY_FILE"

typedef enum {
    ST_LASTFM_API_OK = 0,    /* track found: duration_ms (or -1 = unknown) and tags */
    ST_LASTFM_API_NOT_FOUND, /* error 6: cache as a negative, with a TTL */
    ST_LASTFM_API_RETRY,     /* HTTP 5xx/429, network error or timeout, errors 8/11/16/29 */
    ST_LASTFM_API_FATAL_KEY, /* errors 10 (invalid key) and 26 (suspended key): stop fetching */
    ST_LASTFM_API_OTHER      /* anything else (malformed JSON, other errors): see reason */
} st_lastfm_api_status_t;

/* One answer, owned by the caller (no heap memory inside: copy it freely). */
typedef struct {
    st_lastfm_api_status_t status;
    int lastfm_error;    /* the Last.fm "error" code, 0 when the body had none */
    int http_status;     /* 0 when no HTTP answer arrived */
    bool rate_limited;   /* error 29 or HTTP 429: the caller should slow down */
    int64_t duration_ms; /* OK only: >= 1, or -1 when unknown ("0", missing, not a number) */
    int n_tags;          /* OK only: 0..ST_LASTFM_API_MAX_TAGS, in the order Last.fm gave */
    char tags[ST_LASTFM_API_MAX_TAGS][ST_LASTFM_API_TAG_SIZE];
    char reason[256]; /* why, for every status but OK; never holds the API key */
} st_lastfm_api_result_t;

/* Client settings. Strings are borrowed by st_lastfm_api_new (it copies them). */
typedef struct {
    const char *base_url;    /* default ST_LASTFM_API_DEFAULT_BASE_URL */
    const char *api_key;     /* required; a secret: never logged, redacted from every reason */
    const char *user_agent;  /* default "stint/<version> (+https://github.com/stint)" */
    long connect_timeout_ms; /* default 3000 */
    long total_timeout_ms;   /* default 10000 */
    size_t max_body_bytes;   /* answers larger than this are OTHER; default 1 MiB */
    /* Optional: polled during a transfer; returning true aborts it (the result is RETRY with
     * reason "cancelled"). Lets an owner thread stop promptly. */
    bool (*cancel)(void *ctx);
    void *cancel_ctx;
} st_lastfm_api_config_t;

typedef struct st_lastfm_api st_lastfm_api_t;

/* Fills conf with the defaults above (api_key NULL). */
void st_lastfm_api_config_init(st_lastfm_api_config_t *conf);

/* The key in text: its first line without surrounding whitespace (as a key file or a *_FILE
 * secret holds it), written into out. Returns 0, or -1 with errstr naming source (never with the
 * key in it) when it is empty, does not fit, or has a space or control character inside. */
int st_lastfm_api_key_from(const char *text, const char *source, char *out, size_t out_size,
                           char *errstr, size_t errstr_size);

/* Finds the API key: the environment variable ST_LASTFM_API_KEY_ENV if set and non-empty, else the
 * file named by ST_LASTFM_API_KEY_FILE_ENV, else key_file (may be NULL). A file holds the key on
 * its first line (surrounding whitespace is ignored). Writes the key into out (out_size bytes).
 * Returns 0, or -1 with errstr filled (never with the key in it) when no key is found, the file
 * cannot be read or the key does not fit. */
int st_lastfm_api_load_key(const char *key_file, char *out, size_t out_size, char *errstr,
                           size_t errstr_size);

/* Creates a client (one libcurl handle, connection kept alive between calls). Returns a new client
 * (free with st_lastfm_api_destroy), or NULL with errstr filled when api_key is missing or libcurl
 * cannot start. A client is used by one thread at a time. */
st_lastfm_api_t *st_lastfm_api_new(const st_lastfm_api_config_t *conf, char *errstr,
                                   size_t errstr_size);

/* Frees the client; NULL is a no-op. */
void st_lastfm_api_destroy(st_lastfm_api_t *c);

/* Calls track.getInfo(artist, track, autocorrect=1) and blocks until the answer, the timeout or a
 * cancel. Both names are borrowed (any bytes; they are URL-encoded). Fills *out (always). */
void st_lastfm_api_track_get_info(st_lastfm_api_t *c, const char *artist, const char *track,
                                  st_lastfm_api_result_t *out);

/* Parses a track.getInfo JSON body (len bytes, need not be NUL-terminated) into *out (always
 * filled; http_status is left 0). Pure: no I/O, usable without a client. */
void st_lastfm_api_parse_track_info(const char *body, size_t len, st_lastfm_api_result_t *out);

/* Classifies a Last.fm error code: 6 NOT_FOUND; 8, 11, 16, 29 RETRY; 10, 26 FATAL_KEY; others
 * OTHER. */
st_lastfm_api_status_t st_lastfm_api_classify_error(int lastfm_error);

/* A constant name for a status, e.g. "not_found". */
const char *st_lastfm_api_status_name(st_lastfm_api_status_t status);

#endif
