/* bench-sessionizer: listens/s through the stint-sessionizer service with the real local Kafka
 * and Redis, and Redis memory per active user. Produces N synthetic EnrichedListen records of U
 * users to a fresh topic, starts build/bin/stint-sessionizer on it and polls its /metrics until
 * every record is consumed; the rate is measured from the first to the last record processed
 * (group join excluded). Usage:
 *   bench-sessionizer [listens (default 1000000)] [users (default 10000)] [partitions (4)]
 * Needs Kafka (STINT_KAFKA_BROKERS or 127.0.0.1:19092) and Redis (STINT_REDIS_PORT or 16379);
 * prints "skipped" and exits 0 when they are not reachable. */
#include <arpa/inet.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "st_avro.h"
#include "st_buf.h"
#include "st_itest.h"
#include "st_kafka.h"
#include "st_records.h"
#include "st_time.h"

static uint64_t rng_state = 99;
static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* The value of a metric line "name value" from GET /metrics, or -1. */
static double metric(int port, const char *name)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    const char req[] = "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (write(fd, req, sizeof req - 1) < 0) {
        close(fd);
        return -1;
    }
    st_buf_t b = ST_BUF_INIT;
    char chunk[8192];
    ssize_t n;
    while ((n = read(fd, chunk, sizeof chunk)) > 0)
        st_buf_append(&b, chunk, (size_t)n);
    close(fd);
    double v = -1;
    char pat[200];
    snprintf(pat, sizeof pat, "\n%s ", name);
    const char *p = b.data ? strstr(b.data, pat) : NULL;
    if (p)
        v = strtod(p + strlen(pat), NULL);
    st_buf_free(&b);
    return v;
}

static long long redis_int(redisContext *c, const char *fmt, const char *arg)
{
    redisReply *r = redisCommand(c, fmt, arg);
    long long v = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    if (r)
        freeReplyObject(r);
    return v;
}

static long long used_memory(redisContext *c)
{
    redisReply *r = redisCommand(c, "INFO memory");
    long long v = -1;
    const char *p = r && r->type == REDIS_REPLY_STRING ? strstr(r->str, "used_memory:") : NULL;
    if (p)
        v = atoll(p + strlen("used_memory:"));
    if (r)
        freeReplyObject(r);
    return v;
}

int main(int argc, char **argv)
{
    long long n = argc > 1 ? atoll(argv[1]) : 1000000;
    int n_users = argc > 2 ? atoi(argv[2]) : 10000;
    int parts = argc > 3 ? atoi(argv[3]) : 4;
    if (n <= 0 || n_users <= 0 || parts <= 0) {
        fprintf(stderr, "usage: %s [listens] [users] [partitions]\n", argv[0]);
        return 2;
    }
    char bin[1024], self[1024], schemas[1024], errstr[512];
    snprintf(self, sizeof self, "%s", argv[0]);
    const char *bin_dir = getenv("STINT_BIN_DIR");
    if (bin_dir)
        snprintf(bin, sizeof bin, "%s/stint-sessionizer", bin_dir);
    else
        snprintf(bin, sizeof bin, "%s/../bin/stint-sessionizer", dirname(self));
    snprintf(schemas, sizeof schemas, "%s/schemas", STINT_SOURCE_DIR);
    const char *brokers =
        getenv("STINT_KAFKA_BROKERS") ? getenv("STINT_KAFKA_BROKERS") : "127.0.0.1:19092";
    const char *redis_port = getenv("STINT_REDIS_PORT") ? getenv("STINT_REDIS_PORT") : "16379";
    struct timeval tv = {2, 0};
    redisContext *rc = redisConnectWithTimeout("127.0.0.1", atoi(redis_port), tv);
    if (!rc || rc->err || access(bin, X_OK) != 0) {
        printf("bench-sessionizer: skipped (Redis on %s or %s not available)\n", redis_port, bin);
        return 0;
    }
    char tag[64], in[128], out[128], late[128], dlq[128], prefix[128], group[128], port[16];
    snprintf(tag, sizeof tag, "%d-%lld", (int)getpid(), (long long)(st_time_wall_ms() % 100000000));
    snprintf(in, sizeof in, "bench.sz.in-%s", tag);
    snprintf(out, sizeof out, "bench.sz.out-%s", tag);
    snprintf(late, sizeof late, "bench.sz.late-%s", tag);
    snprintf(dlq, sizeof dlq, "bench.sz.dlq-%s", tag);
    snprintf(prefix, sizeof prefix, "bench:sz:%s", tag);
    snprintf(group, sizeof group, "bench-sz-%s", tag);
    int http_port = 20000 + (int)(getpid() % 20000);
    snprintf(port, sizeof port, "%d", http_port);

    st_kafka_opts_t ko = {brokers, "bench-sessionizer", NULL, 0};
    const char *topics[] = {in, out, late, dlq};
    if (st_kafka_create_topics(&ko, topics, 4, parts, errstr, sizeof errstr) != 0) {
        printf("bench-sessionizer: skipped (Kafka at %s: %s)\n", brokers, errstr);
        return 0;
    }
    /* the registry the service it starts uses (the local stack's, or STINT_SCHEMA_REGISTRY_URL) */
    st_avro_registry_t *reg =
        st_avro_registry_new(schemas, itest_registry_url(), errstr, sizeof errstr);
    st_avro_codec_t *codec =
        reg ? st_avro_codec_new(reg, "EnrichedListen", in, errstr, sizeof errstr) : NULL;
    st_producer_t *prod = st_producer_new(&ko, errstr, sizeof errstr);
    if (!codec || !prod) {
        fprintf(stderr, "bench-sessionizer: %s\n", errstr);
        return 1;
    }
    /* Users in 5 blocks, one block active per hour of event time (sessions open and close); one
     * listen per active user every ~4 minutes on average; a ninth of tracks without duration. */
    int64_t t0 = st_time_mono_ms();
    int64_t now = 1200000000000LL;
    int block = n_users / 5 > 0 ? n_users / 5 : 1;
    int64_t step_ms = 240000 / block + 1;
    st_buf_t enc = ST_BUF_INIT;
    for (long long i = 0; i < n; i++) {
        char user[32], artist[32], track[32], key[80], eid[17];
        now += (int64_t)(rnd() % (uint64_t)(2 * step_ms));
        int u = (int)(rnd() % (uint64_t)block) + block * (int)((now / 3600000) % 5);
        snprintf(user, sizeof user, "user_%06d", u % n_users);
        uint64_t t = rnd() % 20000;
        snprintf(artist, sizeof artist, "artist-%" PRIu64, t / 10);
        snprintf(track, sizeof track, "track-%" PRIu64, t);
        snprintf(key, sizeof key, "%s\t%s", artist, track);
        snprintf(eid, sizeof eid, "%016llx", (unsigned long long)i);
        int64_t d = t % 9 ? (int64_t)(120000 + t * 13) : 0;
        st_rec_enriched_t rec = {
            .listen = {.event_id = st_str(eid),
                       .user_id = st_str(user),
                       .listened_at_ms = now,
                       .artist_name = st_str(artist),
                       .track_name = st_str(track),
                       .artist_mbid = st_str(NULL),
                       .track_mbid = st_str(NULL),
                       .track_key = st_str(key)},
            .duration_ms = {d > 0, d},
            .metadata_source = d > 0 ? ST_REC_SOURCE_CATALOG : ST_REC_SOURCE_UNKNOWN,
        };
        if (st_rec_enriched_encode(codec, &rec, &enc, NULL) != 0 ||
            st_producer_send(prod, in, -1, user, strlen(user), enc.data, enc.len, NULL) != 0) {
            fprintf(stderr, "bench-sessionizer: produce failed\n");
            return 1;
        }
    }
    if (st_producer_wait(prod, 120000, NULL) != 0) {
        fprintf(stderr, "bench-sessionizer: produce not acknowledged\n");
        return 1;
    }
    st_producer_destroy(prod);
    printf("produced %lld EnrichedListen records (%d users, %d partitions) in %.1f s\n", n, n_users,
           parts, (double)(st_time_mono_ms() - t0) / 1000.0);

    long long mem_before = used_memory(rc);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        FILE *f = freopen("/dev/null", "w", stdout);
        (void)f;
        char *args[] = {bin,
                        "--in.topic",
                        in,
                        "--out.topic",
                        out,
                        "--late.topic",
                        late,
                        "--dlq.topic",
                        dlq,
                        "-G",
                        group,
                        "--redis.prefix",
                        prefix,
                        "--redis.port",
                        (char *)redis_port,
                        "-b",
                        (char *)brokers,
                        "--http.port",
                        port,
                        "--log.level",
                        "warn",
                        NULL};
        execv(bin, args);
        _exit(127);
    }
    double first = -1, count = 0;
    int64_t t_first = 0, t_last = 0, deadline = st_time_mono_ms() + 600000;
    while (st_time_mono_ms() < deadline) {
        count = metric(http_port, "stint_sessionizer_listens_total");
        int64_t t = st_time_mono_ms();
        if (count > 0 && first < 0) {
            first = count;
            t_first = t;
        }
        if (count >= (double)n) {
            t_last = t;
            break;
        }
        sleep_ms(50);
    }
    double opened = metric(http_port, "stint_sessionizer_sessions_opened_total");
    double closed = metric(http_port, "stint_sessionizer_sessions_closed_total");
    double open_now = metric(http_port, "stint_sessionizer_open_sessions");
    double state_bytes = metric(http_port, "stint_sessionizer_state_bytes_written_total");
    long long mem_after = used_memory(rc);
    kill(pid, SIGTERM);
    int status = 0;
    waitpid(pid, &status, 0);
    if (t_last == 0) {
        printf("bench-sessionizer: did not finish (%.0f of %lld records)\n", count, n);
        itest_redis_unlink_prefix(prefix);
        return 1;
    }
    if (t_last <= t_first) { /* all of it between two polls: done, but no time to divide by */
        printf("sessionizer: %lld listens in one 50 ms poll, too few to time (give it more); %.0f "
               "OPENED + %.0f CLOSED events out, %.0f sessions open at the end\n",
               n, opened, closed, open_now);
    } else {
        double secs = (double)(t_last - t_first) / 1000.0;
        printf("sessionizer: %.0f listens in %.2f s = %.0f listens/s (first to last record, one "
               "instance, batch.max 5000); %.0f OPENED + %.0f CLOSED events out, %.0f sessions "
               "open at the end\n",
               (double)n - first, secs, ((double)n - first) / secs, opened, closed, open_now);
    }

    /* Redis memory per active user: the state hash, plus the deadline-set entry of an open
     * session (the users of the last active hour still have one) and a share of the small
     * commit-point sets. */
    long long sum = 0, sampled = 0, blob = 0;
    for (int u = 0; u < n_users; u += n_users / 200 + 1) {
        char k[200];
        snprintf(k, sizeof k, "%s:u:{user_%06d}:sess", prefix, u);
        long long m = redis_int(rc, "MEMORY USAGE %s", k);
        if (m > 0) {
            sum += m;
            sampled++;
            redisReply *r = redisCommand(rc, "HSTRLEN %s s", k);
            blob += r && r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
            if (r)
                freeReplyObject(r);
        }
    }
    long long dl = 0, st = 0, dl_entries = 0;
    for (int p = 0; p < parts; p++) {
        char k[200];
        snprintf(k, sizeof k, "%s:dl:{p%d}", prefix, p);
        long long m = redis_int(rc, "MEMORY USAGE %s", k);
        dl += m > 0 ? m : 0;
        m = redis_int(rc, "ZCARD %s", k);
        dl_entries += m > 0 ? m : 0;
        snprintf(k, sizeof k, "%s:st:{p%d}", prefix, p);
        m = redis_int(rc, "MEMORY USAGE %s", k);
        st += m > 0 ? m : 0;
    }
    if (sampled > 0)
        printf("redis memory per active user: %.0f bytes state hash (MEMORY USAGE, mean of %lld "
               "users) + %.0f bytes per open session in the deadline sets (%lld open) + %.1f "
               "bytes share of the commit-point sets = %.0f bytes with a session open; "
               "INFO used_memory delta / users = %.0f bytes (other clients add noise); state "
               "blob %.0f bytes on average; %.0f state bytes written in all\n",
               (double)sum / (double)sampled, sampled,
               dl_entries ? (double)dl / (double)dl_entries : 0.0, dl_entries, (double)st / n_users,
               (double)sum / (double)sampled +
                   (dl_entries ? (double)dl / (double)dl_entries : 0.0) + (double)st / n_users,
               (double)(mem_after - mem_before) / n_users, (double)blob / (double)sampled,
               state_bytes);
    itest_redis_unlink_prefix(prefix);
    redisFree(rc);
    st_buf_free(&enc);
    st_avro_codec_destroy(codec);
    st_avro_registry_destroy(reg);
    return 0;
}
