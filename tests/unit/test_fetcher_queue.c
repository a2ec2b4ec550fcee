/* Unit tests of st_fetcher's queue (no server: the client points at a local port that refuses
 * connections and the worker is held back by a very low rate): deduplication, the bound, stop,
 * wait_idle's budget, clean shutdown with keys pending. */
#include "st_fetcher.h"
#include "st_test.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

static int refusing_fd = -1;
static char refusing_url[64];

/* A bound, non-listening socket: connecting to its port is refused at once, and no one else can
 * take the port while it is held. */
static int make_refusing_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t len = sizeof a;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    refusing_fd = socket(AF_INET, SOCK_STREAM, 0);
    if (refusing_fd < 0 || bind(refusing_fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(refusing_fd, (struct sockaddr *)&a, &len) != 0)
        return -1;
    snprintf(refusing_url, sizeof refusing_url, "http://127.0.0.1:%d/2.0/", ntohs(a.sin_port));
    return 0;
}

static int callbacks;

static void on_result(void *ctx, const char *artist, const char *track,
                      const st_lastfm_api_result_t *r)
{
    (void)ctx, (void)artist, (void)track, (void)r;
    callbacks++;
}

static st_fetcher_t *held_fetcher(size_t queue_max)
{
    st_fetcher_config_t conf;
    char err[256];
    st_fetcher_config_init(&conf);
    conf.lastfm.base_url = refusing_url;
    conf.lastfm.api_key = "k";
    conf.rate_per_s = 0.001; /* one token, then the next in ~1000 s: the worker stays busy */
    conf.max_attempts = 3;
    conf.backoff_base_ms = 0;
    conf.queue_max = queue_max;
    conf.on_result = on_result;
    st_fetcher_t *f = st_fetcher_new(&conf, err, sizeof err);
    if (!f)
        fprintf(stderr, "st_fetcher_new: %s\n", err);
    return f;
}

static void test_dedup_bound_and_counts(void)
{
    st_fetcher_t *f = held_fetcher(4);
    ST_REQUIRE(f);
    ST_EQ_INT(st_fetcher_enqueue(f, "Radiohead", "Karma Police"), ST_FETCHER_QUEUED);
    ST_EQ_INT(st_fetcher_enqueue(f, "Radiohead", "Karma Police"), ST_FETCHER_DUPLICATE);
    /* Keys are byte-exact, and the artist/track split is part of the key. */
    ST_EQ_INT(st_fetcher_enqueue(f, "radiohead", "Karma Police"), ST_FETCHER_QUEUED);
    ST_EQ_INT(st_fetcher_enqueue(f, "ab", "c"), ST_FETCHER_QUEUED);
    ST_EQ_INT(st_fetcher_enqueue(f, "a", "bc"), ST_FETCHER_QUEUED);
    /* Four pending keys (one may be in flight): the bound is reached. */
    ST_EQ_INT(st_fetcher_enqueue(f, "Björk", "Jóga"), ST_FETCHER_FULL);
    ST_EQ_INT(st_fetcher_enqueue(f, "ab", "c"), ST_FETCHER_DUPLICATE);
    ST_EQ_INT(st_fetcher_enqueue(f, "Björk", "Jóga"), ST_FETCHER_FULL);

    st_fetcher_metrics_t m;
    st_fetcher_metrics(f, &m);
    ST_EQ_INT(m.enqueued, 4);
    ST_EQ_INT(m.duplicates, 2);
    ST_EQ_INT(m.dropped_full, 2);
    ST_EQ_INT(m.pending, 4);
    ST_CHECK(m.queue_depth == 3 || m.queue_depth == 4);
    ST_CHECK(!m.fatal_key);
    ST_EQ_INT(m.fetches, 0);
    /* Nothing can finish for ~1000 s: the budget runs out and says so. */
    ST_CHECK(!st_fetcher_wait_idle(f, 30));
    ST_CHECK(!st_fetcher_wait_idle(f, 0));
    st_fetcher_destroy(f); /* wakes the worker out of its rate-limit wait; frees 4 keys */
    ST_EQ_INT(callbacks, 0);
}

static void test_many_keys(void)
{
    char track[32];
    st_fetcher_t *f = held_fetcher(5000);
    ST_REQUIRE(f);
    int queued = 0, dup = 0;
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < 5000; i++) {
            snprintf(track, sizeof track, "Song %d", i);
            st_fetcher_enqueue_t r = st_fetcher_enqueue(f, "Band", track);
            queued += r == ST_FETCHER_QUEUED;
            dup += r == ST_FETCHER_DUPLICATE;
        }
    ST_EQ_INT(queued, 5000);
    ST_EQ_INT(dup, 5000);
    ST_EQ_INT(st_fetcher_enqueue(f, "Band", "Song 5000"), ST_FETCHER_FULL);
    st_fetcher_destroy(f);
}

static void test_null_and_empty_names(void)
{
    st_fetcher_t *f = held_fetcher(10);
    ST_REQUIRE(f);
    ST_EQ_INT(st_fetcher_enqueue(f, NULL, NULL), ST_FETCHER_QUEUED);
    ST_EQ_INT(st_fetcher_enqueue(f, "", ""), ST_FETCHER_DUPLICATE);
    st_fetcher_destroy(f);
}

static void test_names(void)
{
    ST_EQ_STR(st_fetcher_enqueue_name(ST_FETCHER_QUEUED), "queued");
    ST_EQ_STR(st_fetcher_enqueue_name(ST_FETCHER_DUPLICATE), "duplicate");
    ST_EQ_STR(st_fetcher_enqueue_name(ST_FETCHER_FULL), "full");
    ST_EQ_STR(st_fetcher_enqueue_name(ST_FETCHER_STOPPED), "stopped");
}

static void test_bad_settings(void)
{
    st_fetcher_config_t conf;
    char err[256];
    st_fetcher_config_init(&conf);
    conf.lastfm.api_key = "k";
    conf.on_result = on_result;
    static const struct {
        const char *what;
        size_t queue_max;
        int max_attempts, burst;
        int64_t guard_ms;
        double rate;
    } bad[] = {
        {"queue_max", 0, 4, 1, 20, 5.0}, {"max_attempts", 10, 0, 1, 20, 5.0},
        {"burst", 10, 4, 0, 20, 5.0},    {"rate_guard_ms", 10, 4, 1, -1, 5.0},
        {"rate_per_s", 10, 4, 1, 20, 0}, {"rate_per_s", 10, 4, 1, 20, -3},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        st_fetcher_config_t c = conf;
        c.queue_max = bad[i].queue_max;
        c.max_attempts = bad[i].max_attempts;
        c.burst = bad[i].burst;
        c.rate_guard_ms = bad[i].guard_ms;
        c.rate_per_s = bad[i].rate;
        err[0] = '\0';
        st_fetcher_t *f = st_fetcher_new(&c, err, sizeof err);
        if (f || !strstr(err, bad[i].what))
            ST_FAIL_AT("bad %s: fetcher %p, error \"%s\"", bad[i].what, (void *)f, err);
        st_fetcher_destroy(f);
    }
}

int main(void)
{
    if (make_refusing_port() != 0) {
        perror("socket");
        return 1;
    }
    ST_RUN(test_dedup_bound_and_counts);
    ST_RUN(test_many_keys);
    ST_RUN(test_null_and_empty_names);
    ST_RUN(test_names);
    ST_RUN(test_bad_settings);
    close(refusing_fd);
    return st_test_summary();
}
