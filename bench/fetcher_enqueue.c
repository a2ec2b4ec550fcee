/* Benchmark of st_fetcher_enqueue, the only fetcher call on the enricher's poll loop: new keys and
 * duplicates of pending keys, with the worker held back (no server, rate ~0) so nothing drains. */
#include "st_fetcher.h"
#include "st_log.h"
#include "st_time.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

enum { KEYS = 100000, ROUNDS = 10 };

static void on_result(void *ctx, const char *artist, const char *track,
                      const st_lastfm_api_result_t *r)
{
    (void)ctx, (void)artist, (void)track, (void)r;
}

int main(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t len = sizeof a;
    char url[64], err[256], artist[32], track[48];
    st_fetcher_config_t conf;
    st_fetcher_metrics_t m;

    /* A bound but not listening port: the one request the worker makes is refused at once. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        perror("socket");
        return 1;
    }
    snprintf(url, sizeof url, "http://127.0.0.1:%d/2.0/", ntohs(a.sin_port));
    st_log_set_level(ST_LOG_WARN);
    st_fetcher_config_init(&conf);
    conf.lastfm.base_url = url;
    conf.lastfm.api_key = "bench";
    conf.rate_per_s = 0.001;
    conf.queue_max = KEYS;
    conf.on_result = on_result;
    st_fetcher_t *f = st_fetcher_new(&conf, err, sizeof err);
    if (!f) {
        fprintf(stderr, "st_fetcher_new: %s\n", err);
        return 1;
    }
    int64_t t0 = st_time_mono_us();
    for (int i = 0; i < KEYS; i++) {
        snprintf(artist, sizeof artist, "Artist %d", i % 5000);
        snprintf(track, sizeof track, "A fairly ordinary track title %d", i);
        st_fetcher_enqueue(f, artist, track);
    }
    int64_t t1 = st_time_mono_us();
    for (int r = 0; r < ROUNDS; r++)
        for (int i = 0; i < KEYS; i++) {
            snprintf(artist, sizeof artist, "Artist %d", i % 5000);
            snprintf(track, sizeof track, "A fairly ordinary track title %d", i);
            st_fetcher_enqueue(f, artist, track);
        }
    int64_t t2 = st_time_mono_us();
    /* The same formatting alone, to subtract it. */
    size_t sink = 0;
    for (int r = 0; r < ROUNDS; r++)
        for (int i = 0; i < KEYS; i++) {
            snprintf(artist, sizeof artist, "Artist %d", i % 5000);
            sink += (size_t)snprintf(track, sizeof track, "A fairly ordinary track title %d", i);
        }
    int64_t t3 = st_time_mono_us();
    st_fetcher_metrics(f, &m);
    double fmt_ns = (double)(t3 - t2) * 1000.0 / ((double)KEYS * ROUNDS);
    double new_ns = (double)(t1 - t0) * 1000.0 / KEYS - fmt_ns;
    double dup_ns = (double)(t2 - t1) * 1000.0 / ((double)KEYS * ROUNDS) - fmt_ns;
    printf("fetcher enqueue: new key %.0f ns (%.2f M/s), duplicate of a pending key %.0f ns "
           "(%.2f M/s); enqueued=%llu duplicates=%llu (formatting %.0f ns/key subtracted, %zu)\n",
           new_ns, 1e3 / new_ns, dup_ns, 1e3 / dup_ns, (unsigned long long)m.enqueued,
           (unsigned long long)m.duplicates, fmt_ns, sink % 10);
    st_fetcher_destroy(f);
    close(fd);
    return 0;
}
