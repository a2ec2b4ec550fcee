/* bench/enricher.c - events/s through stint-enricher with a warm track cache, on the local Kafka
 * and Redis: loads the cache with every track, produces N Avro Listens, starts the service and
 * times its output from the first enriched record to the last.
 *
 *   build/bench/bench-enricher [listens (default 300000)] [distinct tracks (default 5000)]
 *
 * Environment: STINT_KAFKA_BROKERS (127.0.0.1:19092), STINT_REDIS_PORT (16379), STINT_BIN_DIR
 * (default: ../bin beside this program). Prints figures only; never fails on time. */
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "st_avro.h"
#include "st_itest.h"
#include "st_kafka.h"
#include "st_listen.h"
#include "st_records.h"
#include "st_redis.h"
#include "st_time.h"
#include "st_trackmeta.h"

static void die(const char *what, const char *why)
{
    fprintf(stderr, "bench-enricher: %s: %s\n", what, why);
    exit(1);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 300000;
    long ntracks = argc > 2 ? atol(argv[2]) : 5000;
    char errstr[512], in[128], out[128], group[128], prefix[128], bin[PATH_MAX], logpath[PATH_MAX];
    char exe[PATH_MAX], schemas[PATH_MAX], port_s[16];
    st_err_t err = {0};

    if (n < 1 || ntracks < 1)
        die("usage", "bench-enricher [listens] [distinct tracks]");
    const char *brokers = getenv("STINT_KAFKA_BROKERS");
    brokers = brokers && *brokers ? brokers : "127.0.0.1:19092";
    const char *rport = getenv("STINT_REDIS_PORT");
    int redis_port = rport && *rport ? atoi(rport) : 16379;
    const char *bindir = getenv("STINT_BIN_DIR");
    if (bindir && *bindir) {
        snprintf(bin, sizeof bin, "%s/stint-enricher", bindir);
    } else {
        snprintf(exe, sizeof exe, "%s", argv[0]);
        snprintf(bin, sizeof bin, "%s/../bin/stint-enricher", dirname(exe));
    }
    snprintf(schemas, sizeof schemas, "%s/schemas", STINT_SOURCE_DIR);
    long long tag = (long long)getpid() * 1000 + st_time_wall_ms() % 1000;
    snprintf(in, sizeof in, "bench.enr.in-%lld", tag);
    snprintf(out, sizeof out, "bench.enr.out-%lld", tag);
    snprintf(group, sizeof group, "bench-enr-%lld", tag);
    snprintf(prefix, sizeof prefix, "bench:enr:%lld", tag);
    snprintf(logpath, sizeof logpath, "/tmp/bench-enricher-%lld.log", tag);
    snprintf(port_s, sizeof port_s, "%d", redis_port);

    st_kafka_opts_t ko = {brokers, "bench-enricher", NULL, 0};
    const char *topics[] = {in, out};
    if (st_kafka_create_topics(&ko, topics, 2, 1, errstr, sizeof errstr) != 0)
        die("create topics", errstr);

    /* The warm cache: every track in Redis (source CATALOG). */
    st_redis_opts_t ro = {.host = "127.0.0.1", .port = redis_port, .timeout_ms = 5000};
    st_redis_t *r = st_redis_new(&ro);
    if (!r || st_redis_ensure(r, 5000, &err) != 0)
        die("redis", err.text);
    st_redis_script_t *store = st_trackmeta_store_script(r);
    char(*keys)[64] = calloc((size_t)ntracks, sizeof *keys);
    char(*names)[32] = calloc((size_t)ntracks, sizeof *names);
    st_redis_pipe_reset(r);
    for (long i = 0; i < ntracks; i++) {
        st_trackmeta_t m = {ST_TRACKMETA_CATALOG, 150000 + i, 2, {"rock", "indie"}, 0};
        snprintf(names[i], sizeof names[i], "Track %ld", i);
        int klen = st_trackmeta_key("Bench Artist", 12, names[i], strlen(names[i]), keys[i],
                                    sizeof keys[i]);
        st_trackmeta_pipe_store(r, store, prefix, keys[i], (size_t)klen, &m, 0, 0);
        if (st_redis_pipe_len(r) >= 1000 || i == ntracks - 1) {
            redisReply **replies;
            size_t nr;
            if (st_redis_exec(r, &replies, &nr, &err) != 0)
                die("redis", err.text);
            st_redis_pipe_reset(r);
        }
    }

    /* The input: n Listens of 1000 users over the tracks. */
    /* the registry the service it starts uses (the local stack's, or STINT_SCHEMA_REGISTRY_URL) */
    st_avro_registry_t *reg =
        st_avro_registry_new(schemas, itest_registry_url(), errstr, sizeof errstr);
    if (!reg)
        die("schemas", errstr);
    st_avro_codec_t *codec = st_avro_codec_new(reg, "Listen", in, errstr, sizeof errstr);
    st_producer_t *prod = st_producer_new(&ko, errstr, sizeof errstr);
    if (!codec || !prod)
        die("producer", errstr);
    st_buf_t buf = ST_BUF_INIT;
    int64_t t0 = st_time_mono_ms();
    for (long i = 0; i < n; i++) {
        char user[32], id[17];
        long t = (i * 7919) % ntracks;
        int64_t ts = 1230000000000LL + i * 1000;
        snprintf(user, sizeof user, "user_%06ld", i % 1000);
        st_listen_event_id(user, ts, "Bench Artist", names[t], id);
        st_rec_listen_t rec = {.event_id = st_str(id),
                               .user_id = st_str(user),
                               .listened_at_ms = ts,
                               .artist_name = st_str("Bench Artist"),
                               .track_name = st_str(names[t]),
                               .artist_mbid = st_str(NULL),
                               .track_mbid = st_str(NULL),
                               .track_key = st_str(keys[t])};
        if (st_rec_listen_encode(codec, &rec, &buf, &err) != 0 ||
            st_producer_send(prod, in, -1, user, strlen(user), buf.data, buf.len, &err) != 0)
            die("produce", err.text);
    }
    if (st_producer_wait(prod, 120000, &err) != 0)
        die("produce", err.text);
    printf("bench-enricher: produced %ld listens (%ld distinct tracks) in %.1f s\n", n, ntracks,
           (double)(st_time_mono_ms() - t0) / 1000.0);

    pid_t pid = fork();
    if (pid == 0) {
        FILE *f = fopen(logpath, "w");
        if (f) {
            dup2(fileno(f), 1);
            dup2(fileno(f), 2);
        }
        execl(bin, bin, "-b", brokers, "-G", group, "--in.topic", in, "--out.topic", out,
              "--dlq.topic", "bench.enr.dlq", "--redis.port", port_s, "--redis.prefix", prefix,
              "--schemas.dir", schemas, "--log.level", "warn", (char *)NULL);
        _exit(127);
    }
    int64_t first_ms = -1, last_ms = -1, first_count = 0, have = 0;
    int64_t deadline = st_time_mono_ms() + 300000;
    while (have < n && st_time_mono_ms() < deadline) {
        have = st_kafka_topic_end_offsets(&ko, out, errstr, sizeof errstr);
        if (have > 0 && first_ms < 0) {
            first_ms = st_time_mono_ms();
            first_count = have;
        }
        if (have >= n)
            last_ms = st_time_mono_ms();
        else
            sleep_ms(20);
    }
    kill(pid, SIGTERM);
    int status = 0;
    waitpid(pid, &status, 0);
    if (last_ms < 0) {
        fprintf(stderr, "bench-enricher: only %lld of %ld records came out (log: %s)\n",
                (long long)have, n, logpath);
        logpath[0] = '\0'; /* kept for a look */
    } else if (last_ms == first_ms) {
        /* All of it between two polls: done, but no time to divide by. */
        printf("bench-enricher: %ld records enriched within one 20 ms poll: too few to time (give "
               "it more listens); exit=%d\n",
               n, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    } else {
        double s = (double)(last_ms - first_ms) / 1000.0;
        printf("bench-enricher: %lld records enriched in %.2f s (first output to last) = %.0f "
               "events/s (warm cache, 1 partition, batch.max 5000); exit=%d\n",
               (long long)(n - first_count), s, (double)(n - first_count) / s,
               WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    }

    /* Clean up the cache keys. */
    st_redis_pipe_reset(r);
    for (long i = 0; i < ntracks; i++) {
        char rkey[ST_TRACKMETA_REDIS_KEY_SIZE];
        st_trackmeta_redis_key(prefix, keys[i], strlen(keys[i]), rkey, sizeof rkey);
        st_redis_pipe(r, "DEL %s", rkey);
    }
    redisReply **replies;
    size_t nr;
    st_redis_exec(r, &replies, &nr, &err);
    st_buf_free(&buf);
    st_producer_destroy(prod);
    st_avro_codec_destroy(codec);
    st_avro_registry_destroy(reg);
    st_redis_destroy(r);
    free(keys);
    free(names);
    if (logpath[0])
        unlink(logpath);
    return 0;
}
