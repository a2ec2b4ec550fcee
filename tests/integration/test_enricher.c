/* Integration tests of stint-enricher on the real Kafka + Redis with the fake Last.fm server
 * (tests/fixtures/lastfm/fake_lastfm.py, started here): cache warm-up, negative caching, the rate
 * limit as the server saw it, retries on error 29 and HTTP 503, a slow API that never slows the
 * stream, a bad API key, `stint catalog import` then enrichment, the Avro DLQ, SIGTERM -> 0. */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "fake_lastfm.h"
#include "st_avro.h"
#include "st_itest.h"
#include "st_listen.h"
#include "st_records.h"
#include "st_test.h"
#include "st_trackmeta.h"

#define API_KEY "0123456789abcdef0123456789abcdef"
#define BAD_KEY "badbadbadbadbadbadbadbadbadbad00"

static fake_lastfm_t server;
static char server_root[128], base_url[160];
static st_avro_registry_t *registry;
static char schemas_dir[1024];

static int start_server(void)
{
    if (fake_lastfm_start(&server, BAD_KEY, NULL) != 0)
        return -1;
    snprintf(server_root, sizeof server_root, "%s", server.root);
    snprintf(base_url, sizeof base_url, "%s", server.base_url);
    return 0;
}

static void stop_server(void)
{
    fake_lastfm_stop(&server);
}

static size_t collect(char *data, size_t size, size_t nmemb, void *userdata)
{
    return st_buf_append(userdata, data, size * nmemb) == 0 ? size * nmemb : 0;
}

/* GETs url into body (emptied first). Returns 0 or -1. */
static int http_get(const char *url, st_buf_t *body)
{
    st_buf_reset(body);
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, body);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
    CURLcode rc = curl_easy_perform(c);
    curl_easy_cleanup(c);
    return rc == CURLE_OK && body->data ? 0 : -1;
}

static json_t *server_get(const char *path)
{
    char url[256];
    st_buf_t body = ST_BUF_INIT;
    json_t *j = NULL;
    snprintf(url, sizeof url, "%s%s", server_root, path);
    if (http_get(url, &body) == 0)
        j = json_loadb(body.data, body.len, 0, NULL);
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

static int count_requests_for(json_t *reqs, const char *track)
{
    size_t i;
    json_t *r;
    int n = 0;
    json_array_foreach(reqs, i, r)
    {
        const char *t = json_string_value(json_object_get(r, "track"));
        n += t && strcasecmp(t, track) == 0;
    }
    return n;
}

/* ---- Kafka, Redis and the service ---- */

typedef struct {
    const char *artist, *track;
} track_t;

typedef struct {
    char in[128], out[128], dlq[128], group[128], prefix[128], log[512];
    int http_port;
    pid_t pid;
} run_t;

static void run_init(run_t *r, const char *name)
{
    itest_unique_tag(r->in, sizeof r->in, "it.enr.", name, ".in");
    itest_unique_tag(r->out, sizeof r->out, "it.enr.", name, ".out");
    itest_unique_tag(r->dlq, sizeof r->dlq, "it.enr.", name, ".dlq");
    itest_unique_tag(r->group, sizeof r->group, "it-enr-", name, "");
    itest_unique_tag(r->prefix, sizeof r->prefix, "it:enr:", name, "");
    snprintf(r->log, sizeof r->log, "%s/it-enricher-%s.log", itest_bin_dir(), name);
    unlink(r->log);
    r->http_port = itest_free_port();
    r->pid = -1;
    char errstr[512];
    st_kafka_opts_t ko = itest_kafka();
    const char *topics[] = {r->in, r->out, r->dlq};
    if (st_kafka_create_topics(&ko, topics, 3, 1, errstr, sizeof errstr) != 0)
        fprintf(stderr, "create topics: %s\n", errstr);
}

/* Starts stint-enricher for r with extra flags (NULL-terminated). */
static void run_start(run_t *r, const char *const *extra)
{
    static char bin[512], port[16];
    char *argv[64];
    int n = 0;
    snprintf(bin, sizeof bin, "%s/stint-enricher", itest_bin_dir());
    snprintf(port, sizeof port, "%d", r->http_port);
    const char *fixed[] = {bin,
                           "-b",
                           itest_brokers(),
                           "-G",
                           r->group,
                           "--in.topic",
                           r->in,
                           "--out.topic",
                           r->out,
                           "--dlq.topic",
                           r->dlq,
                           "--redis.prefix",
                           r->prefix,
                           "--http.port",
                           port,
                           "--lastfm.base_url",
                           base_url,
                           "--schemas.dir",
                           schemas_dir,
                           "-X",
                           "session.timeout.ms=6000"};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        argv[n++] = (char *)fixed[i];
    for (size_t i = 0; extra && extra[i] && n < 62; i++)
        argv[n++] = (char *)extra[i];
    argv[n] = NULL;
    r->pid = itest_spawn(argv, r->log);
}

/* SIGTERM; returns the exit status. */
static int run_stop(run_t *r)
{
    if (r->pid <= 0)
        return -1;
    kill(r->pid, SIGTERM);
    int rc = itest_wait(r->pid, 30000);
    if (rc < 0) {
        kill(r->pid, SIGKILL);
        itest_wait(r->pid, 5000);
    }
    r->pid = -1;
    return rc;
}

/* Deletes every Redis key of r's prefix. */
static void run_cleanup(run_t *r)
{
    redisContext *c = itest_redis();
    redisReply *rep = redisCommand(c, "EVAL %s 0 %s",
                                   "for _, k in ipairs(redis.call('KEYS', ARGV[1] .. ':*')) do "
                                   "redis.call('DEL', k) end return 0",
                                   r->prefix);
    if (rep)
        freeReplyObject(rep);
    redisFree(c);
}

/* Produces one Listen per track (user u, one minute apart from t0_ms); raw values are sent as is
 * (NULL artist = a raw garbage record with track as the bytes). */
static void produce(const char *topic, const track_t *tracks, size_t n, int64_t t0_ms)
{
    char errstr[512];
    st_kafka_opts_t ko = itest_kafka();
    st_producer_t *p = st_producer_new(&ko, errstr, sizeof errstr);
    st_avro_codec_t *c = st_avro_codec_new(registry, "Listen", topic, errstr, sizeof errstr);
    st_buf_t buf = ST_BUF_INIT;
    st_err_t err = {0};
    if (!p || !c) {
        fprintf(stderr, "produce: %s\n", errstr);
        exit(1);
    }
    for (size_t i = 0; i < n; i++) {
        const char *user = "user_000001";
        if (!tracks[i].artist) {
            st_producer_send(p, topic, -1, user, strlen(user), tracks[i].track,
                             strlen(tracks[i].track), NULL);
            continue;
        }
        char key[2 * ST_LISTEN_FIELD_MAX + 2], id[17];
        int64_t ts = t0_ms + (int64_t)i * 60000;
        st_trackmeta_key(tracks[i].artist, strlen(tracks[i].artist), tracks[i].track,
                         strlen(tracks[i].track), key, sizeof key);
        st_listen_event_id(user, ts, tracks[i].artist, tracks[i].track, id);
        st_rec_listen_t rec = {.event_id = st_str(id),
                               .user_id = st_str(user),
                               .listened_at_ms = ts,
                               .artist_name = st_str(tracks[i].artist),
                               .track_name = st_str(tracks[i].track),
                               .artist_mbid = st_str(NULL),
                               .track_mbid = st_str(NULL),
                               .track_key = st_str(key)};
        if (st_rec_listen_encode(c, &rec, &buf, &err) != 0 ||
            st_producer_send(p, topic, -1, user, strlen(user), buf.data, buf.len, &err) != 0) {
            fprintf(stderr, "produce: %s\n", err.text);
            exit(1);
        }
    }
    st_producer_wait(p, 30000, NULL);
    st_buf_free(&buf);
    st_avro_codec_destroy(c);
    st_producer_destroy(p);
}

/* Waits until topic holds at least n records; returns the count seen. */
static int64_t wait_records(const char *topic, int64_t n, int timeout_ms)
{
    char errstr[512];
    st_kafka_opts_t ko = itest_kafka();
    int64_t deadline = st_time_mono_ms() + timeout_ms, have = 0;
    while ((have = st_kafka_topic_end_offsets(&ko, topic, errstr, sizeof errstr)) < n &&
           st_time_mono_ms() < deadline)
        itest_sleep_ms(100);
    return have;
}

/* One EnrichedListen as read back. */
typedef struct {
    char track[128];
    int64_t listened_at_ms;
    int64_t duration_ms; /* -1 = null */
    char source[16];
    int ntags;
    char tags[5][64];
    char key[64];
} out_t;

typedef struct {
    st_avro_codec_t *codec;
    out_t *recs;
    size_t n, cap;
    size_t bad;
} readback_t;

static void on_out(void *arg, int32_t partition, const void *key, size_t klen, const void *val,
                   size_t vlen)
{
    readback_t *rb = arg;
    st_rec_enriched_t v;
    st_err_t err = {0};
    (void)partition;
    if (st_rec_enriched_decode(rb->codec, val, vlen, &v, &err) != 0) {
        rb->bad++;
        return;
    }
    if (rb->n == rb->cap) {
        rb->cap = rb->cap ? 2 * rb->cap : 256;
        rb->recs = realloc(rb->recs, rb->cap * sizeof *rb->recs);
    }
    out_t *o = &rb->recs[rb->n++];
    memset(o, 0, sizeof *o);
    snprintf(o->key, sizeof o->key, "%.*s", (int)klen, (const char *)key);
    snprintf(o->track, sizeof o->track, "%s", v.listen.track_name.ptr);
    o->listened_at_ms = v.listen.listened_at_ms;
    o->duration_ms = v.duration_ms.set ? v.duration_ms.v : -1;
    snprintf(o->source, sizeof o->source, "%s", st_rec_source_name(v.metadata_source));
    o->ntags = (int)v.n_tags; /* the enricher never writes more than ST_REC_TAGS_MAX */
    for (uint32_t i = 0; i < v.n_tags && i < 5; i++)
        snprintf(o->tags[i], sizeof o->tags[i], "%s", v.tags[i].ptr);
}

static readback_t read_out(const char *topic)
{
    char errstr[512];
    readback_t rb = {0};
    rb.codec = st_avro_codec_new(registry, "EnrichedListen", NULL, errstr, sizeof errstr);
    itest_read_topic(topic, on_out, &rb);
    return rb;
}

static void readback_free(readback_t *rb)
{
    st_avro_codec_destroy(rb->codec);
    free(rb->recs);
}

/* The last record of track (case-sensitive name) at or after index from, or NULL. */
static const out_t *find(const readback_t *rb, const char *track, size_t from)
{
    const out_t *found = NULL;
    for (size_t i = from; i < rb->n; i++)
        if (strcmp(rb->recs[i].track, track) == 0)
            found = &rb->recs[i];
    return found;
}

/* The value of one metric line "name value" on the service's /metrics, or -1. */
static double scrape(const run_t *r, const char *series)
{
    char url[128];
    st_buf_t body = ST_BUF_INIT;
    double v = -1;
    snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics", r->http_port);
    if (http_get(url, &body) == 0) {
        size_t sl = strlen(series);
        for (const char *p = body.data; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
            if (strncmp(p, series, sl) == 0 && p[sl] == ' ') {
                v = atof(p + sl + 1);
                break;
            }
    }
    st_buf_free(&body);
    return v;
}

/* True when r's cache holds an entry for (artist, track). */
static bool cached(const run_t *r, const char *artist, const char *track)
{
    char key[512], rkey[ST_TRACKMETA_REDIS_KEY_SIZE];
    int klen = st_trackmeta_key(artist, strlen(artist), track, strlen(track), key, sizeof key);
    st_trackmeta_redis_key(r->prefix, key, (size_t)klen, rkey, sizeof rkey);
    redisContext *c = itest_redis();
    redisReply *rep = redisCommand(c, "EXISTS %s", rkey);
    bool yes = rep && rep->type == REDIS_REPLY_INTEGER && rep->integer == 1;
    if (rep)
        freeReplyObject(rep);
    redisFree(c);
    return yes;
}

/* ---- tests ---- */

static const track_t warm_tracks[] = {
    {"Radiohead", "Karma Police"},   {"Sigur Rós", "Hoppípolla"},    {"Björk", "Jóga"},
    {"Boards of Canada", "Roygbiv"}, {"Aphex Twin", "Avril 14th"},   {"Nobody Knows", "This Track"},
    {"Temp Band", "Twenty Nine"},    {"Temp Band", "Five Oh Three"}, {"Rate Band", "Song 1"},
    {"Rate Band", "Song 2"},         {"Rate Band", "Song 3"},        {"Rate Band", "Song 4"},
    {"Rate Band", "Song 5"},         {"Rate Band", "Song 6"},        {"Rate Band", "Song 7"},
    {"Rate Band", "Song 8"},
};
#define N_WARM (sizeof warm_tracks / sizeof warm_tracks[0])

static void test_warmup_negative_rate_retries(void)
{
    run_t r;
    run_init(&r, "warm");
    json_decref(server_get("/_reset"));
    setenv("STINT_LASTFM_API_KEY", API_KEY, 1);
    const char *extra[] = {"--lastfm.rate_per_s",
                           "5",
                           "--lastfm.backoff_base_ms",
                           "100",
                           "--lastfm.rate_limited_pause_ms",
                           "300",
                           "--cache.not_found_ttl_s",
                           "600",
                           NULL};
    produce(r.in, warm_tracks, N_WARM, 1230000000000LL);
    run_start(&r, extra);
    ST_EQ_INT(wait_records(r.out, (int64_t)N_WARM, 30000), (int64_t)N_WARM);

    /* Every track ends up in the cache (the API answers within its rate). */
    int64_t deadline = st_time_mono_ms() + 30000;
    size_t n_cached = 0;
    while (st_time_mono_ms() < deadline) {
        n_cached = 0;
        for (size_t i = 0; i < N_WARM; i++)
            n_cached += cached(&r, warm_tracks[i].artist, warm_tracks[i].track);
        if (n_cached == N_WARM)
            break;
        itest_sleep_ms(200);
    }
    ST_EQ_INT(n_cached, N_WARM);

    /* Second pass: the same tracks again, answered from the cache. */
    produce(r.in, warm_tracks, N_WARM, 1230000000000LL + 3600000);
    ST_EQ_INT(wait_records(r.out, 2 * (int64_t)N_WARM, 30000), 2 * (int64_t)N_WARM);
    readback_t rb = read_out(r.out);
    ST_EQ_INT(rb.n, 2 * N_WARM);
    ST_EQ_INT(rb.bad, 0);
    if (rb.n == 2 * N_WARM) {
        /* The first record met an empty cache. */
        ST_EQ_STR(rb.recs[0].source, "UNKNOWN");
        ST_EQ_INT(rb.recs[0].duration_ms, -1);
        /* Input order is kept. */
        size_t in_order = 0;
        for (size_t i = 0; i < rb.n; i++)
            in_order += strcmp(rb.recs[i].track, warm_tracks[i % N_WARM].track) == 0;
        ST_EQ_INT(in_order, rb.n);
        const out_t *o = find(&rb, "Karma Police", N_WARM);
        ST_EQ_STR(o->source, "LASTFM");
        ST_EQ_INT(o->duration_ms, 264000);
        ST_EQ_INT(o->ntags, 5);
        ST_EQ_STR(o->tags[0], "alternative");
        ST_EQ_STR(o->tags[4], "britpop");
        ST_EQ_STR(o->key, "user_000001");
        o = find(&rb, "Jóga", N_WARM); /* tag as an object */
        ST_EQ_INT(o->duration_ms, 305000);
        ST_EQ_INT(o->ntags, 1);
        o = find(&rb, "Roygbiv", N_WARM); /* duration "0": unknown, tags kept */
        ST_EQ_STR(o->source, "LASTFM");
        ST_EQ_INT(o->duration_ms, -1);
        ST_EQ_INT(o->ntags, 2);
        o = find(&rb, "Avril 14th", N_WARM); /* no toptags: duration kept */
        ST_EQ_INT(o->duration_ms, 125000);
        ST_EQ_INT(o->ntags, 0);
        o = find(&rb, "This Track", N_WARM); /* error 6: negative */
        ST_EQ_STR(o->source, "UNKNOWN");
        ST_EQ_INT(o->duration_ms, -1);
        o = find(&rb, "Twenty Nine", N_WARM); /* error 29 twice, then the track */
        ST_EQ_STR(o->source, "LASTFM");
        ST_EQ_INT(o->duration_ms, 202000);
        o = find(&rb, "Five Oh Three", N_WARM); /* HTTP 503 twice, then the track */
        ST_EQ_INT(o->duration_ms, 203000);
        o = find(&rb, "Song 8", N_WARM);
        ST_EQ_INT(o->duration_ms, 108000);
    }
    readback_free(&rb);

    json_t *reqs = server_requests();
    ST_EQ_INT(count_requests_for(reqs, "This Track"), 1); /* negative cached: asked once */
    ST_EQ_INT(count_requests_for(reqs, "Karma Police"), 1);
    ST_EQ_INT(count_requests_for(reqs, "Twenty Nine"), 3);
    ST_EQ_INT(count_requests_for(reqs, "Five Oh Three"), 3);
    /* The rate limit as the server saw it: no window of 0.95 s holds more than 5 requests (50 ms
     * left for the server's own delays; a sixth request a second would still be caught). */
    size_t nreq = json_array_size(reqs), worst = 0;
    for (size_t i = 0; i < nreq; i++) {
        double ti = json_real_value(json_object_get(json_array_get(reqs, i), "t"));
        size_t in_window = 0;
        for (size_t j = 0; j < nreq; j++) {
            double tj = json_real_value(json_object_get(json_array_get(reqs, j), "t"));
            in_window += tj >= ti && tj < ti + 0.95;
        }
        if (in_window > worst)
            worst = in_window;
    }
    printf("requests=%zu busiest_0.95s_window=%zu\n", nreq, worst);
    ST_CHECK(nreq >= N_WARM + 4);
    ST_CHECK(worst <= 5);
    ST_CHECK(worst >= 4); /* the window check can fail: the fetcher did run at its rate */
    json_decref(reqs);

    ST_CHECK(scrape(&r, "stint_enricher_cache_hits_total{level=\"lru\"}") >= 0);
    ST_CHECK(scrape(&r, "stint_enricher_fetches_total{status=\"not_found\"}") == 1);
    ST_CHECK(scrape(&r, "stint_enricher_lastfm_errors_total{code=\"29\"}") == 2);
    ST_CHECK(scrape(&r, "stint_enricher_lastfm_errors_total{code=\"http_5xx\"}") == 2);
    ST_CHECK(scrape(&r, "stint_enricher_fetch_enabled") == 1);
    ST_EQ_INT(run_stop(&r), 0);
    ST_CHECK(!itest_log_has(r.log, API_KEY)); /* the key is never logged */
    run_cleanup(&r);
}

#define N_SLOW      20000
#define SLOW_TRACKS 2000

static void test_slow_api_never_stalls(void)
{
    run_t r;
    run_init(&r, "slow");
    json_decref(server_get("/_reset"));
    json_decref(server_get("/_config?delay_s=2"));
    setenv("STINT_LASTFM_API_KEY", API_KEY, 1);
    track_t *tracks = malloc(N_SLOW * sizeof *tracks);
    static char names[SLOW_TRACKS][24];
    for (int i = 0; i < SLOW_TRACKS; i++)
        snprintf(names[i], sizeof names[i], "Song %d", 1000 + i);
    for (int i = 0; i < N_SLOW; i++)
        tracks[i] = (track_t){"Rate Band", names[i % SLOW_TRACKS]};
    produce(r.in, tracks, N_SLOW, 1230000000000LL);
    const char *extra[] = {"--batch.max", "2000", NULL};
    run_start(&r, extra);
    ST_EQ_INT(wait_records(r.out, N_SLOW, 45000), N_SLOW);
    /* All 20,000 records are out while the API has answered at most a handful of requests:
     * waiting on HTTP would have taken 2,000 tracks x 2 s. */
    json_t *reqs = server_requests();
    size_t answered_by_now = json_array_size(reqs);
    json_decref(reqs);
    printf("records out=%d, requests the slow server had received by then=%zu\n", N_SLOW,
           answered_by_now);
    ST_CHECK(answered_by_now < 40);
    readback_t rb = read_out(r.out);
    ST_EQ_INT(rb.n, N_SLOW);
    size_t in_order = 0, unknown = 0;
    for (size_t i = 0; i < rb.n; i++) {
        in_order += strcmp(rb.recs[i].track, names[i % SLOW_TRACKS]) == 0 &&
                    rb.recs[i].listened_at_ms == 1230000000000LL + (int64_t)i * 60000;
        unknown += strcmp(rb.recs[i].source, "UNKNOWN") == 0;
    }
    ST_EQ_INT(in_order, N_SLOW);
    ST_CHECK(unknown >= N_SLOW - 200);
    ST_CHECK(scrape(&r, "stint_enricher_fetch_pending") > 100); /* a backlog, not a stall */
    readback_free(&rb);
    free(tracks);
    ST_EQ_INT(run_stop(&r), 0);
    json_decref(server_get("/_config?delay_s=0"));
    run_cleanup(&r);
}

static void test_bad_key(void)
{
    run_t r;
    run_init(&r, "badkey");
    json_decref(server_get("/_reset"));
    /* The key comes from a file this time (lastfm.api_key_file). */
    unsetenv("STINT_LASTFM_API_KEY");
    char keyfile[600];
    snprintf(keyfile, sizeof keyfile, "%s/it-enricher-badkey.key", itest_bin_dir());
    FILE *kf = fopen(keyfile, "w");
    fprintf(kf, "  %s  \n", BAD_KEY);
    fclose(kf);
    static const track_t t[] = {{"Radiohead", "Karma Police"}, {"Björk", "Jóga"}};
    produce(r.in, t, 2, 1230000000000LL);
    const char *extra[] = {"--lastfm.api_key_file", keyfile, NULL};
    run_start(&r, extra);
    ST_EQ_INT(wait_records(r.out, 2, 30000), 2);
    int64_t deadline = st_time_mono_ms() + 15000;
    while (scrape(&r, "stint_enricher_lastfm_key_rejected") != 1 && st_time_mono_ms() < deadline)
        itest_sleep_ms(100);
    ST_CHECK(scrape(&r, "stint_enricher_lastfm_key_rejected") == 1);
    ST_CHECK(scrape(&r, "stint_enricher_fetch_enabled") == 0);
    ST_CHECK(itest_log_has(r.log, "lastfm_api_key_rejected"));
    ST_CHECK(!itest_log_has(r.log, BAD_KEY));
    /* The stream goes on, with unknown durations, and no more requests are sent. */
    produce(r.in, t, 2, 1230000000000LL + 3600000);
    ST_EQ_INT(wait_records(r.out, 4, 30000), 4);
    readback_t rb = read_out(r.out);
    ST_EQ_INT(rb.n, 4);
    for (size_t i = 0; i < rb.n; i++) {
        ST_EQ_STR(rb.recs[i].source, "UNKNOWN");
        ST_EQ_INT(rb.recs[i].duration_ms, -1);
    }
    readback_free(&rb);
    json_t *reqs = server_requests();
    ST_EQ_INT(json_array_size(reqs), 1);
    if (json_array_size(reqs) == 1)
        ST_EQ_STR(json_string_value(json_object_get(json_array_get(reqs, 0), "api_key")), BAD_KEY);
    json_decref(reqs);
    ST_EQ_INT(run_stop(&r), 0);
    run_cleanup(&r);
    unlink(keyfile);
}

typedef struct {
    st_avro_codec_t *codec;
    int n;
    char code[32], error[256], value[64];
    int64_t offset;
} dlq_rb_t;

static void on_dlq(void *arg, int32_t partition, const void *key, size_t klen, const void *val,
                   size_t vlen)
{
    dlq_rb_t *d = arg;
    st_rec_dead_letter_t v;
    st_err_t err = {0};
    (void)partition, (void)key, (void)klen;
    if (st_rec_dead_letter_decode(d->codec, val, vlen, &v, &err) != 0)
        return;
    d->n++;
    snprintf(d->code, sizeof d->code, "%s", v.error_code.ptr);
    snprintf(d->error, sizeof d->error, "%s", v.error.ptr);
    snprintf(d->value, sizeof d->value, "%.*s", (int)v.original_value.len, v.original_value.ptr);
    d->offset = v.source_offset;
}

static void test_catalog_then_enrich(void)
{
    run_t r;
    run_init(&r, "catalog");
    json_decref(server_get("/_reset"));
    unsetenv("STINT_LASTFM_API_KEY");
    char path[600], cmd[2048];
    snprintf(path, sizeof path, "%s/it-enricher-catalog.jsonl", itest_bin_dir());
    FILE *f = fopen(path, "w");
    fprintf(f, "{\"artist\": \"  The Beba Baba \", \"track\": \"Zofu Lá\", \"duration_ms\": "
               "221304, \"tags\": [\"rock\", \"indie\"]}\n");
    fprintf(f, "not json\n");
    fprintf(f, "{\"artist\": \"Gifá Segö\", \"track\": \"Minö Ti\", \"duration_ms\": 0, "
               "\"tags\": [\"jazz\"]}\n");
    fprintf(f, "{\"artist\": \"X\", \"track\": 5}\n");
    fprintf(f, "{\"artist\": \"Radiohead\", \"track\": \"Karma Police\", \"duration_ms\": "
               "264001, \"tags\": []}\n");
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s/stint catalog import --redis.port %d --redis.prefix %s %s 2>&1",
             itest_bin_dir(), itest_redis_port(), r.prefix, path);
    FILE *p = popen(cmd, "r");
    char out[4096] = "", line[1024];
    while (p && fgets(line, sizeof line, p))
        strncat(out, line, sizeof out - strlen(out) - 1);
    int rc = p ? pclose(p) : -1;
    printf("%s", out);
    ST_EQ_INT(rc, 0);
    ST_CHECK(strstr(out, "tracks=3 bad_lines=2 bad_line_numbers=2,4") != NULL);

    static const track_t t[] = {
        {"the beba baba", "ZOFU Lá"}, /* case differs from the catalog: same key */
        {"Gifá Segö", "Minö Ti"},      {NULL, "garbage, not Avro"},
        {"Radiohead", "Karma Police"}, {"Unknown Artist", "Unknown Track"},
        {"Wrong Type", "Foreign Key"}, /* a string where the cache expects a hash */
        {"Radiohead", "Karma Police"},
    };
    char tk[128], rkey[ST_TRACKMETA_REDIS_KEY_SIZE];
    int tklen = st_trackmeta_key("Wrong Type", 10, "Foreign Key", 11, tk, sizeof tk);
    st_trackmeta_redis_key(r.prefix, tk, (size_t)tklen, rkey, sizeof rkey);
    redisContext *rc_ = itest_redis();
    freeReplyObject(redisCommand(rc_, "SET %s not-a-hash", rkey));
    redisFree(rc_);
    produce(r.in, t, 7, 1230000000000LL);
    run_start(&r, NULL); /* no API key: fetching disabled */
    ST_EQ_INT(wait_records(r.out, 6, 30000), 6);
    readback_t rb = read_out(r.out);
    ST_EQ_INT(rb.n, 6);
    if (rb.n == 6) {
        ST_EQ_STR(rb.recs[0].source, "CATALOG");
        ST_EQ_INT(rb.recs[0].duration_ms, 221304);
        ST_EQ_INT(rb.recs[0].ntags, 2);
        ST_EQ_STR(rb.recs[0].tags[1], "indie");
        ST_EQ_STR(rb.recs[1].source, "CATALOG"); /* in the catalog, duration unknown there */
        ST_EQ_INT(rb.recs[1].duration_ms, -1);
        ST_EQ_STR(rb.recs[2].source, "CATALOG");
        ST_EQ_INT(rb.recs[2].duration_ms, 264001);
        ST_EQ_STR(rb.recs[3].source, "UNKNOWN");
        ST_EQ_INT(rb.recs[3].duration_ms, -1);
        ST_EQ_STR(rb.recs[4].source, "UNKNOWN"); /* WRONGTYPE: reported, not a stall */
        ST_EQ_STR(rb.recs[5].source, "CATALOG");
    }
    ST_CHECK(scrape(&r, "stint_enricher_cache_read_errors_total") == 1);
    ST_CHECK(itest_log_has(r.log, "cache_read_error"));
    readback_free(&rb);

    char errstr[512];
    dlq_rb_t d = {0};
    d.codec = st_avro_codec_new(registry, "DeadLetter", NULL, errstr, sizeof errstr);
    ST_EQ_INT(wait_records(r.dlq, 1, 10000), 1);
    itest_read_topic(r.dlq, on_dlq, &d);
    ST_EQ_INT(d.n, 1);
    ST_EQ_STR(d.code, "invalid");
    ST_EQ_STR(d.value, "garbage, not Avro");
    ST_EQ_INT(d.offset, 2);
    ST_CHECK(d.error[0] != '\0');
    printf("dead letter: code=%s error=\"%s\"\n", d.code, d.error);
    st_avro_codec_destroy(d.codec);

    ST_CHECK(scrape(&r, "stint_enricher_fetch_enabled") == 0);
    ST_CHECK(itest_log_has(r.log, "lastfm_disabled"));
    json_t *reqs = server_requests();
    ST_EQ_INT(json_array_size(reqs), 0);
    json_decref(reqs);
    ST_EQ_INT(run_stop(&r), 0);
    run_cleanup(&r);
    unlink(path);
}

/* lastfm.wait_budget_ms: the batch waits for its fetches, so a first listen is already enriched. */
static void test_wait_budget(void)
{
    run_t r;
    run_init(&r, "wait");
    json_decref(server_get("/_reset"));
    setenv("STINT_LASTFM_API_KEY", API_KEY, 1);
    static const track_t t[] = {{"Sigur Rós", "Hoppípolla"}, {"Nobody Knows", "This Track"}};
    produce(r.in, t, 2, 1230000000000LL);
    const char *extra[] = {"--lastfm.wait_budget_ms", "5000", NULL};
    run_start(&r, extra);
    ST_EQ_INT(wait_records(r.out, 2, 30000), 2);
    readback_t rb = read_out(r.out);
    ST_EQ_INT(rb.n, 2);
    if (rb.n == 2) {
        ST_EQ_STR(rb.recs[0].source, "LASTFM");
        ST_EQ_INT(rb.recs[0].duration_ms, 268000);
        ST_EQ_INT(rb.recs[0].ntags, 3);
        ST_EQ_STR(rb.recs[1].source, "UNKNOWN");
    }
    readback_free(&rb);
    ST_CHECK(scrape(&r, "stint_enricher_wait_budget_waits_total") >= 1);
    ST_EQ_INT(run_stop(&r), 0);
    run_cleanup(&r);
}

/* A stop request ends a batch's wait for its fetches (here 120 s against an API answering after
 * 60 s): the service exits 0 within run_stop's 30 s, the listen out with what was known. */
static void test_stop_during_wait_budget(void)
{
    run_t r;
    run_init(&r, "waitstop");
    json_decref(server_get("/_reset"));
    json_decref(server_get("/_config?delay_s=60"));
    setenv("STINT_LASTFM_API_KEY", API_KEY, 1);
    static const track_t t[] = {{"Nobody Knows", "The Long Wait"}};
    produce(r.in, t, 1, 1230000000000LL);
    const char *extra[] = {"--lastfm.wait_budget_ms", "120000", NULL};
    run_start(&r, extra);
    for (int i = 0; i < 300 && scrape(&r, "stint_enricher_wait_budget_waits_total") < 1; i++)
        itest_sleep_ms(100);
    ST_REQUIRE(scrape(&r, "stint_enricher_wait_budget_waits_total") >= 1);
    ST_EQ_INT(run_stop(&r), 0);
    ST_EQ_INT(wait_records(r.out, 1, 10000), 1);
    readback_t rb = read_out(r.out);
    ST_EQ_INT(rb.n, 1);
    if (rb.n == 1)
        ST_EQ_STR(rb.recs[0].source, "UNKNOWN");
    readback_free(&rb);
    json_decref(server_get("/_config?delay_s=0"));
    run_cleanup(&r);
}

int main(void)
{
    char errstr[512];
    const char *src = getenv("STINT_SOURCE_DIR");
    snprintf(schemas_dir, sizeof schemas_dir, "%s/schemas", src ? src : STINT_SOURCE_DIR);
    registry = st_avro_registry_new(schemas_dir, itest_registry_url(), errstr, sizeof errstr);
    if (!registry) {
        fprintf(stderr, "schemas: %s\n", errstr);
        return 1;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    signal(SIGPIPE, SIG_IGN);
    if (start_server() != 0)
        return 1;
    ST_RUN(test_warmup_negative_rate_retries);
    ST_RUN(test_wait_budget);
    ST_RUN(test_stop_during_wait_budget);
    ST_RUN(test_bad_key);
    ST_RUN(test_catalog_then_enrich);
    ST_RUN(test_slow_api_never_stalls);
    stop_server();
    st_avro_registry_destroy(registry);
    curl_global_cleanup();
    return st_test_summary();
}
