/* Integration tests of the Last.fm client and the fetch queue against tests/fixtures/lastfm/
 * fake_lastfm.py (started here on a free port): answers and quirks over HTTP, warm-up, negative
 * results, the rate limit as seen by the server, retries, a slow server, a bad API key. */
#include "fake_lastfm.h"
#include "st_buf.h"
#include "st_fetcher.h"
#include "st_lastfm_api.h"
#include "st_test.h"
#include "st_time.h"

#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define API_KEY       "0123456789abcdef0123456789abcdef"
#define BAD_KEY       "badbadbadbadbadbadbadbadbadbad00"
#define SUSPENDED_KEY "5u5pended5u5pended5u5pended00000"

static fake_lastfm_t server;
static char base_url[128];

static int start_server(void)
{
    if (fake_lastfm_start(&server, BAD_KEY, SUSPENDED_KEY) != 0)
        return -1;
    snprintf(base_url, sizeof base_url, "%s", server.base_url);
    return 0;
}

static void stop_server(void)
{
    fake_lastfm_stop(&server);
}

static size_t collect(char *data, size_t size, size_t nmemb, void *userdata)
{
    st_buf_t *b = userdata;
    return st_buf_append(b, data, size * nmemb) == 0 ? size * nmemb : 0;
}

/* GETs a control path of the server; returns its JSON (new reference) or NULL. */
static json_t *server_get(const char *path)
{
    char url[256];
    st_buf_t body = ST_BUF_INIT;
    json_t *j = NULL;
    CURL *c = curl_easy_init();
    snprintf(url, sizeof url, "%.*s%s", (int)(strlen(base_url) - strlen("/2.0/")), base_url, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
    if (curl_easy_perform(c) == CURLE_OK)
        j = json_loadb(body.data, body.len, 0, NULL);
    curl_easy_cleanup(c);
    st_buf_free(&body);
    return j;
}

/* The requests the server received since the last reset (new reference, a JSON array). */
static json_t *server_requests(void)
{
    json_t *j = server_get("/_requests");
    json_t *reqs = j ? json_incref(json_object_get(j, "requests")) : NULL;
    json_decref(j);
    return reqs ? reqs : json_array();
}

static void server_reset(void)
{
    json_decref(server_get("/_reset"));
}

static int count_requests_for(json_t *reqs, const char *track)
{
    size_t i;
    json_t *r;
    int n = 0;
    json_array_foreach(reqs, i, r)
    {
        const char *t = json_string_value(json_object_get(r, "track"));
        n += t && strcmp(t, track) == 0;
    }
    return n;
}

static st_lastfm_api_t *client(const char *key, long total_timeout_ms)
{
    st_lastfm_api_config_t conf;
    char err[256];
    st_lastfm_api_config_init(&conf);
    conf.base_url = base_url;
    conf.api_key = key;
    if (total_timeout_ms > 0)
        conf.total_timeout_ms = total_timeout_ms;
    st_lastfm_api_t *c = st_lastfm_api_new(&conf, err, sizeof err);
    if (!c)
        fprintf(stderr, "st_lastfm_api_new: %s\n", err);
    return c;
}

static void test_client_answers(void)
{
    static const struct {
        const char *artist, *track;
        st_lastfm_api_status_t status;
        int64_t duration_ms;
        int n_tags;
        const char *first_tag;
    } cases[] = {
        {"Radiohead", "Karma Police", ST_LASTFM_API_OK, 264000, 5, "alternative"},
        {"radiohead", "karma police", ST_LASTFM_API_OK, 264000, 5, "alternative"},
        {"Sigur Rós", "Hoppípolla", ST_LASTFM_API_OK, 268000, 3, "post-rock"},
        {"AC/DC", "Rock & Roll Ain't Noise Pollution", ST_LASTFM_API_OK, 255000, 2, "hard rock"},
        {"Björk", "Jóga", ST_LASTFM_API_OK, 305000, 1, "electronic"},
        {"Boards of Canada", "Roygbiv", ST_LASTFM_API_OK, -1, 2, "idm"},
        {"Aphex Twin", "Avril 14th", ST_LASTFM_API_OK, 125000, 0, NULL},
        {"Autechre", "Gantz Graf", ST_LASTFM_API_OK, 237000, 0, NULL},
        {"Portishead", "Roads", ST_LASTFM_API_OK, -1, 1, "trip-hop"},
        {"Nobody", "Unknown Song", ST_LASTFM_API_NOT_FOUND, -1, 0, NULL},
        {"Odd Band", "Not Json", ST_LASTFM_API_OTHER, -1, 0, NULL},
        {"Odd Band", "No Track", ST_LASTFM_API_OTHER, -1, 0, NULL},
        {"Temp Band", "Always Down", ST_LASTFM_API_RETRY, -1, 0, NULL},
    };
    st_lastfm_api_t *c = client(API_KEY, 0);
    ST_REQUIRE(c);
    server_reset();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        st_lastfm_api_result_t r;
        st_lastfm_api_track_get_info(c, cases[i].artist, cases[i].track, &r);
        if (r.status != cases[i].status || r.duration_ms != cases[i].duration_ms ||
            r.n_tags != cases[i].n_tags ||
            (cases[i].first_tag && strcmp(r.tags[0], cases[i].first_tag) != 0))
            ST_FAIL_AT("%s / %s: %s duration %lld tags %d (%s) reason \"%s\"; expected %s %lld %d",
                       cases[i].artist, cases[i].track, st_lastfm_api_status_name(r.status),
                       (long long)r.duration_ms, r.n_tags, r.n_tags ? r.tags[0] : "", r.reason,
                       st_lastfm_api_status_name(cases[i].status), (long long)cases[i].duration_ms,
                       cases[i].n_tags);
    }
    /* The names arrive decoded and intact; the request carries key, UA, autocorrect, format. */
    json_t *reqs = server_requests();
    ST_EQ_INT(json_array_size(reqs), sizeof cases / sizeof cases[0]);
    size_t i;
    json_t *r;
    json_array_foreach(reqs, i, r)
    {
        if (i >= sizeof cases / sizeof cases[0])
            break;
        ST_EQ_STR(json_string_value(json_object_get(r, "artist")), cases[i].artist);
        ST_EQ_STR(json_string_value(json_object_get(r, "track")), cases[i].track);
        ST_EQ_STR(json_string_value(json_object_get(r, "method")), "track.getInfo");
        ST_EQ_STR(json_string_value(json_object_get(r, "api_key")), API_KEY);
        ST_EQ_STR(json_string_value(json_object_get(r, "autocorrect")), "1");
        ST_EQ_STR(json_string_value(json_object_get(r, "format")), "json");
        const char *ua = json_string_value(json_object_get(r, "user_agent"));
        if (!ua || strncmp(ua, "stint/", 6) != 0)
            ST_FAIL_AT("User-Agent \"%s\" does not identify stint", ua ? ua : "(none)");
    }
    json_decref(reqs);
    st_lastfm_api_destroy(c);
}

static void test_client_http_details(void)
{
    st_lastfm_api_result_t r;
    st_lastfm_api_t *c = client(API_KEY, 0);
    ST_REQUIRE(c);
    st_lastfm_api_track_get_info(c, "Nobody", "Unknown Song", &r);
    ST_EQ_INT(r.status, ST_LASTFM_API_NOT_FOUND);
    ST_EQ_INT(r.lastfm_error, 6);
    ST_EQ_INT(r.http_status, 200);
    st_lastfm_api_track_get_info(c, "Temp Band", "Always Down", &r);
    ST_EQ_INT(r.status, ST_LASTFM_API_RETRY);
    ST_EQ_INT(r.http_status, 500);
    ST_EQ_STR(r.reason, "HTTP 500");
    /* An error message echoing the key: the reason keeps the message but never the key. */
    st_lastfm_api_track_get_info(c, "Odd Band", "Echo Key", &r);
    ST_EQ_INT(r.status, ST_LASTFM_API_NOT_FOUND);
    ST_EQ_STR(r.reason, "lastfm error 6: Track not found (api_key=[redacted])");
    if (strstr(r.reason, API_KEY) || strstr(r.reason, "0123456789abcdef"))
        ST_FAIL_AT("reason leaks the API key: \"%s\"", r.reason);
    /* Temporary errors, then an answer. */
    server_reset();
    st_lastfm_api_track_get_info(c, "Temp Band", "Eleven", &r);
    ST_EQ_INT(r.status, ST_LASTFM_API_RETRY);
    ST_EQ_INT(r.lastfm_error, 11);
    st_lastfm_api_track_get_info(c, "Temp Band", "Twenty Nine", &r);
    ST_EQ_INT(r.status, ST_LASTFM_API_RETRY);
    ST_CHECK(r.rate_limited);
    st_lastfm_api_destroy(c);

    c = client(BAD_KEY, 0);
    ST_REQUIRE(c);
    st_lastfm_api_track_get_info(c, "Radiohead", "Karma Police", &r);
    ST_EQ_INT(r.status, ST_LASTFM_API_FATAL_KEY);
    ST_EQ_INT(r.lastfm_error, 10);
    ST_CHECK(!strstr(r.reason, BAD_KEY));
    st_lastfm_api_destroy(c);
    c = client(SUSPENDED_KEY, 0);
    ST_REQUIRE(c);
    st_lastfm_api_track_get_info(c, "Radiohead", "Karma Police", &r);
    ST_EQ_INT(r.status, ST_LASTFM_API_FATAL_KEY);
    ST_EQ_INT(r.lastfm_error, 26);
    st_lastfm_api_destroy(c);

    /* A one-letter key also found in the text and in the mark itself. */
    c = client("d", 0);
    ST_REQUIRE(c);
    st_lastfm_api_track_get_info(c, "Odd Band", "Echo Key", &r);
    ST_EQ_STR(r.reason, "lastfm error 6: Track not foun[redacted] (api_key=[redacted])");
    st_lastfm_api_destroy(c);
}

static bool always_cancel(void *ctx)
{
    (void)ctx;
    return true;
}

static void test_client_timeout_cancel_and_limits(void)
{
    st_lastfm_api_result_t r;
    st_lastfm_api_t *c = client(API_KEY, 300);
    ST_REQUIRE(c);
    st_lastfm_api_track_get_info(c, "Slow Band", "Two Seconds", &r);
    ST_EQ_INT(r.status, ST_LASTFM_API_RETRY);
    ST_EQ_INT(r.http_status, 0);
    ST_CHECK(strncmp(r.reason, "timeout", 7) == 0);
    st_lastfm_api_destroy(c);

    /* A cancel hook that says "stop": the slow request ends as cancelled, not with its answer. */
    st_lastfm_api_config_t conf;
    st_lastfm_api_config_init(&conf);
    conf.base_url = base_url;
    conf.api_key = API_KEY;
    conf.cancel = always_cancel;
    c = st_lastfm_api_new(&conf, NULL, 0);
    ST_REQUIRE(c);
    st_lastfm_api_track_get_info(c, "Slow Band", "Two Seconds", &r);
    ST_EQ_INT(r.status, ST_LASTFM_API_RETRY);
    ST_EQ_STR(r.reason, "cancelled");
    st_lastfm_api_destroy(c);

    /* An answer larger than the limit is refused. */
    st_lastfm_api_config_init(&conf);
    conf.base_url = base_url;
    conf.api_key = API_KEY;
    conf.max_body_bytes = 100;
    c = st_lastfm_api_new(&conf, NULL, 0);
    ST_REQUIRE(c);
    st_lastfm_api_track_get_info(c, "Radiohead", "Karma Police", &r);
    ST_EQ_INT(r.status, ST_LASTFM_API_OTHER);
    ST_EQ_STR(r.reason, "answer larger than 100 bytes");
    st_lastfm_api_destroy(c);

    st_lastfm_api_config_init(&conf);
    conf.base_url = "http://127.0.0.1:1/2.0/"; /* nothing listens on port 1 */
    conf.api_key = API_KEY;
    c = st_lastfm_api_new(&conf, NULL, 0);
    ST_REQUIRE(c);
    st_lastfm_api_track_get_info(c, "Radiohead", "Karma Police", &r);
    ST_EQ_INT(r.status, ST_LASTFM_API_RETRY);
    ST_EQ_INT(r.http_status, 0);
    ST_CHECK(strncmp(r.reason, "network", 7) == 0);
    ST_CHECK(!strstr(r.reason, API_KEY));
    st_lastfm_api_destroy(c);
}

/* Results handed to the fetcher callback; while gate_closed the callback waits (its key stays
 * pending), which lets a test act while a key is known to be in flight. */
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t gate;
    bool gate_closed;
    int n;
    struct {
        char artist[64], track[64];
        st_lastfm_api_result_t r;
    } got[64];
} collector_t;

static collector_t results = {.mu = PTHREAD_MUTEX_INITIALIZER, .gate = PTHREAD_COND_INITIALIZER};

static void gate_set(bool closed)
{
    pthread_mutex_lock(&results.mu);
    results.gate_closed = closed;
    pthread_cond_broadcast(&results.gate);
    pthread_mutex_unlock(&results.mu);
}

static void on_result(void *ctx, const char *artist, const char *track,
                      const st_lastfm_api_result_t *r)
{
    collector_t *col = ctx;
    pthread_mutex_lock(&col->mu);
    while (col->gate_closed)
        pthread_cond_wait(&col->gate, &col->mu);
    if (col->n < 64) {
        snprintf(col->got[col->n].artist, 64, "%s", artist);
        snprintf(col->got[col->n].track, 64, "%s", track);
        col->got[col->n].r = *r;
        col->n++;
    }
    pthread_mutex_unlock(&col->mu);
}

static const st_lastfm_api_result_t *result_for(const char *track)
{
    for (int i = 0; i < results.n; i++)
        if (strcmp(results.got[i].track, track) == 0)
            return &results.got[i].r;
    return NULL;
}

static st_fetcher_t *fetcher(const char *key, double rate, size_t queue_max)
{
    st_fetcher_config_t conf;
    char err[256];
    st_fetcher_config_init(&conf);
    conf.lastfm.base_url = base_url;
    conf.lastfm.api_key = key;
    conf.rate_per_s = rate;
    conf.queue_max = queue_max;
    conf.backoff_base_ms = 20;
    conf.backoff_cap_ms = 100;
    conf.rate_limited_pause_ms = 300;
    conf.max_attempts = 4;
    conf.jitter_seed = 12345;
    conf.on_result = on_result;
    conf.on_result_ctx = &results;
    results.n = 0;
    server_reset();
    st_fetcher_t *f = st_fetcher_new(&conf, err, sizeof err);
    if (!f)
        fprintf(stderr, "st_fetcher_new: %s\n", err);
    return f;
}

static void test_fetcher_warmup_and_negative(void)
{
    static const char *tracks[][2] = {{"Radiohead", "Karma Police"},
                                      {"Sigur Rós", "Hoppípolla"},
                                      {"Björk", "Jóga"},
                                      {"Aphex Twin", "Avril 14th"},
                                      {"Nobody", "Unknown Song"}};
    st_fetcher_t *f = fetcher(API_KEY, 50.0, 100);
    ST_REQUIRE(f);
    gate_set(true);
    for (size_t i = 0; i < 5; i++)
        ST_EQ_INT(st_fetcher_enqueue(f, tracks[i][0], tracks[i][1]), ST_FETCHER_QUEUED);
    /* A pending key is not queued twice (the gate holds the first result back). */
    ST_EQ_INT(st_fetcher_enqueue(f, "Radiohead", "Karma Police"), ST_FETCHER_DUPLICATE);
    gate_set(false);
    ST_CHECK(st_fetcher_wait_idle(f, 10000));

    st_fetcher_metrics_t m;
    st_fetcher_metrics(f, &m);
    ST_EQ_INT(m.enqueued, 5);
    ST_EQ_INT(m.duplicates, 1);
    ST_EQ_INT(m.fetches, 5);
    ST_EQ_INT(m.ok, 4);
    ST_EQ_INT(m.not_found, 1);
    ST_EQ_INT(m.requests, 5);
    ST_EQ_INT(m.lastfm_errors[6], 1);
    ST_EQ_INT(m.pending, 0);
    ST_EQ_INT(m.queue_depth, 0);
    ST_CHECK(!m.fatal_key);
    ST_EQ_INT(results.n, 5);
    const st_lastfm_api_result_t *r = result_for("Karma Police");
    ST_REQUIRE(r);
    ST_EQ_INT(r->status, ST_LASTFM_API_OK);
    ST_EQ_INT(r->duration_ms, 264000);
    ST_EQ_INT(r->n_tags, 5);
    ST_REQUIRE((r = result_for("Avril 14th")));
    ST_EQ_INT(r->duration_ms, 125000);
    ST_REQUIRE((r = result_for("Unknown Song")));
    ST_EQ_INT(r->status, ST_LASTFM_API_NOT_FOUND); /* the signal to cache a negative */
    ST_EQ_INT(r->lastfm_error, 6);

    /* Finished keys may be queued again (e.g. after a cache expiry). */
    ST_EQ_INT(st_fetcher_enqueue(f, "Radiohead", "Karma Police"), ST_FETCHER_QUEUED);
    ST_CHECK(st_fetcher_wait_idle(f, 10000));
    json_t *reqs = server_requests();
    ST_EQ_INT(count_requests_for(reqs, "Karma Police"), 2);
    json_decref(reqs);
    st_fetcher_destroy(f);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void test_fetcher_rate_limit_holds(void)
{
    enum { N = 25, RATE = 10 };
    char track[32];
    st_fetcher_t *f = fetcher(API_KEY, RATE, 100);
    ST_REQUIRE(f);
    for (int i = 0; i < N; i++) {
        snprintf(track, sizeof track, "Song %d", i);
        ST_EQ_INT(st_fetcher_enqueue(f, "Rate Band", track), ST_FETCHER_QUEUED);
    }
    ST_CHECK(st_fetcher_wait_idle(f, 20000));
    st_fetcher_metrics_t m;
    st_fetcher_metrics(f, &m);
    ST_EQ_INT(m.ok, N);
    ST_CHECK(m.rate_limit_waits >= N - 1);

    json_t *reqs = server_requests();
    ST_EQ_INT(json_array_size(reqs), N);
    double t[N];
    size_t n = json_array_size(reqs) < N ? json_array_size(reqs) : N;
    for (size_t i = 0; i < n; i++)
        t[i] = json_real_value(json_object_get(json_array_get(reqs, i), "t"));
    json_decref(reqs);
    qsort(t, n, sizeof t[0], cmp_double);
    /* Every window [t_i, t_i + 0.95 s) starting at a request holds at most RATE requests: as
     * the server saw them, so 50 ms are left for its own delays (one request more per second
     * would still put RATE + 1 in such a window). */
    size_t worst = 0, worst_at = 0;
    double min_gap = 1e9;
    for (size_t i = 0, j = 0; i < n; i++) {
        while (j < n && t[j] < t[i] + 0.95)
            j++;
        if (j - i > worst)
            worst = j - i, worst_at = i;
        if (i > 0 && t[i] - t[i - 1] < min_gap)
            min_gap = t[i] - t[i - 1];
    }
    printf("rate limit: %zu requests over %.3f s, most in a 0.95 s window %zu (limit %d), "
           "smallest gap %.1f ms\n",
           n, n ? t[n - 1] - t[0] : 0.0, worst, RATE, min_gap * 1000);
    if (worst > RATE)
        ST_FAIL_AT("%zu requests within 0.95 s from t=%.3f (limit %d/s)", worst, t[worst_at], RATE);
    /* And the limiter was what spaced them: 24 intervals of at least ~0.1 s. */
    ST_CHECK(n == N && t[N - 1] - t[0] >= (N - 1) / (double)RATE * 0.95);
    st_fetcher_destroy(f);
}

static void test_fetcher_retries(void)
{
    st_fetcher_t *f = fetcher(API_KEY, 100.0, 100);
    ST_REQUIRE(f);
    ST_EQ_INT(st_fetcher_enqueue(f, "Temp Band", "Twenty Nine"), ST_FETCHER_QUEUED);
    ST_EQ_INT(st_fetcher_enqueue(f, "Temp Band", "Five Oh Three"), ST_FETCHER_QUEUED);
    ST_EQ_INT(st_fetcher_enqueue(f, "Temp Band", "Eleven"), ST_FETCHER_QUEUED);
    ST_EQ_INT(st_fetcher_enqueue(f, "Temp Band", "Sixteen"), ST_FETCHER_QUEUED);
    ST_EQ_INT(st_fetcher_enqueue(f, "Temp Band", "Always Down"), ST_FETCHER_QUEUED);
    ST_CHECK(st_fetcher_wait_idle(f, 20000));

    static const struct {
        const char *track;
        int requests;
        st_lastfm_api_status_t status;
        int64_t duration_ms;
    } want[] = {
        {"Twenty Nine", 3, ST_LASTFM_API_OK, 202000},
        {"Five Oh Three", 3, ST_LASTFM_API_OK, 203000},
        {"Eleven", 3, ST_LASTFM_API_OK, 200000},
        {"Sixteen", 2, ST_LASTFM_API_OK, 201000},
        {"Always Down", 4, ST_LASTFM_API_RETRY, -1},
    };
    json_t *reqs = server_requests();
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const st_lastfm_api_result_t *r = result_for(want[i].track);
        int n = count_requests_for(reqs, want[i].track);
        if (!r || r->status != want[i].status || r->duration_ms != want[i].duration_ms ||
            n != want[i].requests)
            ST_FAIL_AT("%s: %s duration %lld after %d requests; expected %s %lld after %d",
                       want[i].track, r ? st_lastfm_api_status_name(r->status) : "no result",
                       r ? (long long)r->duration_ms : 0LL, n,
                       st_lastfm_api_status_name(want[i].status), (long long)want[i].duration_ms,
                       want[i].requests);
    }
    /* After each "rate limit exceeded" the next request waits out the pause (300 ms). */
    size_t i;
    json_t *q;
    double last_29 = -1;
    int n29 = 0;
    json_array_foreach(reqs, i, q)
    {
        double t = json_real_value(json_object_get(q, "t"));
        if (last_29 >= 0 && t - last_29 < 0.3)
            ST_FAIL_AT("request %zu came %.3f s after an error 29 (pause 0.3 s)", i, t - last_29);
        last_29 = -1;
        if (strcmp(json_string_value(json_object_get(q, "track")), "Twenty Nine") == 0 && n29++ < 2)
            last_29 = t;
    }
    json_decref(reqs);

    st_fetcher_metrics_t m;
    st_fetcher_metrics(f, &m);
    ST_EQ_INT(m.fetches, 5);
    ST_EQ_INT(m.ok, 4);
    ST_EQ_INT(m.gave_up, 1);
    ST_EQ_INT(m.requests, 15);
    ST_EQ_INT(m.retries, 2 + 2 + 2 + 1 + 3);
    ST_EQ_INT(m.rate_limited, 2);
    ST_EQ_INT(m.http_5xx, 2 + 4);
    ST_EQ_INT(m.lastfm_errors[29], 2);
    ST_EQ_INT(m.lastfm_errors[11], 2);
    ST_EQ_INT(m.lastfm_errors[16], 1);
    st_fetcher_destroy(f);
}

static void test_fetcher_slow_server_never_blocks_enqueue(void)
{
    enum { KEYS = 2000 };
    char track[32];
    st_fetcher_t *f = fetcher(API_KEY, 100.0, KEYS + 10);
    ST_REQUIRE(f);
    ST_EQ_INT(st_fetcher_enqueue(f, "Slow Band", "Two Seconds"), ST_FETCHER_QUEUED);
    /* Wait until the slow request has reached the server (it answers 2 s later). */
    json_t *reqs = NULL;
    for (int tries = 0; tries < 500; tries++) {
        json_decref(reqs);
        reqs = server_requests();
        if (json_array_size(reqs) >= 1)
            break;
        usleep(10000);
    }
    ST_EQ_INT(json_array_size(reqs), 1);
    json_decref(reqs);

    int64_t t0 = st_time_mono_us();
    int queued = 0;
    for (int i = 0; i < KEYS; i++) {
        snprintf(track, sizeof track, "Song %d", i);
        queued += st_fetcher_enqueue(f, "Rate Band", track) == ST_FETCHER_QUEUED;
    }
    int64_t elapsed_us = st_time_mono_us() - t0;
    st_fetcher_metrics_t m;
    st_fetcher_metrics(f, &m);
    printf("slow server: %d enqueues in %lld us (%.2f us each) while a request was in flight\n",
           KEYS, (long long)elapsed_us, (double)elapsed_us / KEYS);
    ST_EQ_INT(queued, KEYS);
    /* Every enqueue returned while the first request was still in flight: nothing has finished. */
    ST_EQ_INT(m.fetches, 0);
    ST_EQ_INT(m.requests, 1);
    ST_EQ_INT(m.queue_depth, KEYS);
    ST_EQ_INT(m.pending, KEYS + 1);
    /* Shutting down with a request in flight and a full queue: prompt, nothing leaks. */
    st_fetcher_destroy(f);
    ST_EQ_INT(results.n, 0);
}

static void test_fetcher_bad_key_stops(void)
{
    st_fetcher_t *f = fetcher(BAD_KEY, 100.0, 100);
    ST_REQUIRE(f);
    ST_EQ_INT(st_fetcher_enqueue(f, "Radiohead", "Karma Police"), ST_FETCHER_QUEUED);
    /* These two are either discarded when the key is rejected or refused if that came first. */
    st_fetcher_enqueue_t r2 = st_fetcher_enqueue(f, "Björk", "Jóga");
    st_fetcher_enqueue_t r3 = st_fetcher_enqueue(f, "Portishead", "Roads");
    ST_CHECK(r2 == ST_FETCHER_QUEUED || r2 == ST_FETCHER_STOPPED);
    ST_CHECK(r3 == ST_FETCHER_QUEUED || r3 == ST_FETCHER_STOPPED);
    ST_CHECK(st_fetcher_wait_idle(f, 10000));
    st_fetcher_metrics_t m;
    st_fetcher_metrics(f, &m);
    ST_CHECK(m.fatal_key);
    ST_EQ_INT(m.requests, 1);
    ST_EQ_INT(m.lastfm_errors[10], 1);
    ST_EQ_INT(m.pending, 0);
    ST_EQ_INT(results.n, 1);
    ST_EQ_INT(results.got[0].r.status, ST_LASTFM_API_FATAL_KEY);
    /* Later keys are refused at once and counted; nothing more reaches the server. */
    ST_EQ_INT(st_fetcher_enqueue(f, "Sigur Rós", "Hoppípolla"), ST_FETCHER_STOPPED);
    ST_CHECK(st_fetcher_wait_idle(f, 100));
    st_fetcher_metrics(f, &m);
    ST_EQ_INT(m.dropped_stopped, 2 + 1);
    st_fetcher_destroy(f);
    json_t *reqs = server_requests();
    ST_EQ_INT(json_array_size(reqs), 1);
    json_decref(reqs);
}

static void test_fetcher_bad_settings(void)
{
    st_fetcher_config_t conf;
    char err[256] = "";
    st_fetcher_config_init(&conf);
    ST_EQ_INT(conf.rate_per_s, 5);
    ST_EQ_INT(conf.burst, 1);
    conf.lastfm.api_key = API_KEY;
    ST_CHECK(st_fetcher_new(&conf, err, sizeof err) == NULL); /* no callback */
    ST_CHECK(strstr(err, "callback") != NULL);
    conf.on_result = on_result;
    conf.rate_per_s = 0;
    ST_CHECK(st_fetcher_new(&conf, err, sizeof err) == NULL);
    ST_CHECK(strstr(err, "rate") != NULL);
    conf.rate_per_s = 5;
    conf.lastfm.api_key = NULL;
    ST_CHECK(st_fetcher_new(&conf, err, sizeof err) == NULL);
    ST_CHECK(strstr(err, "API key") != NULL);
    st_fetcher_destroy(NULL);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (start_server() != 0) {
        printf("FAIL fake server\n");
        stop_server();
        return 1;
    }
    ST_RUN(test_client_answers);
    ST_RUN(test_client_http_details);
    ST_RUN(test_client_timeout_cancel_and_limits);
    ST_RUN(test_fetcher_warmup_and_negative);
    ST_RUN(test_fetcher_rate_limit_holds);
    ST_RUN(test_fetcher_retries);
    ST_RUN(test_fetcher_slow_server_never_blocks_enqueue);
    ST_RUN(test_fetcher_bad_key_stops);
    ST_RUN(test_fetcher_bad_settings);
    stop_server();
    curl_global_cleanup();
    return st_test_summary();
}
