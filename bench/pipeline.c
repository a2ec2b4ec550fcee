/* bench/pipeline: records/s through the pass-through pipeline (topic A -> topic B, one Lua call
 * per record pipelined per batch) against the local broker and Redis. Prints figures only.
 *   bench-pipeline [records=300000] [value_bytes=100] */
#include <libgen.h>
#include <limits.h>

#include "st_itest.h"

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 300000;
    int value_bytes = argc > 2 ? atoi(argv[2]) : 100;
    char topic_in[128], topic_out[128], topic_dlq[128], group[128], counter[128], errstr[512];
    char exe[PATH_MAX], bin[PATH_MAX + 64], logpath[PATH_MAX + 64];

    itest_unique(topic_in, sizeof topic_in, "bench.pt.in");
    itest_unique(topic_out, sizeof topic_out, "bench.pt.out");
    itest_unique(topic_dlq, sizeof topic_dlq, "bench.pt.dlq");
    itest_unique(group, sizeof group, "bench-pt");
    itest_unique(counter, sizeof counter, "bench:pt:count");
    if (!realpath(argv[0], exe)) {
        perror("realpath");
        return 1;
    }
    snprintf(bin, sizeof bin, "%s/../bin/stint-passthrough", dirname(exe));
    snprintf(logpath, sizeof logpath, "/tmp/bench-pipeline-%d.log", (int)getpid());

    st_kafka_opts_t ko = itest_kafka();
    const char *topics[] = {topic_in, topic_out, topic_dlq};
    if (st_kafka_create_topics(&ko, topics, 3, 6, errstr, sizeof errstr) != 0) {
        fprintf(stderr, "bench-pipeline: %s (is the stack up? make up)\n", errstr);
        return 1;
    }
    st_producer_t *prod = st_producer_new(&ko, errstr, sizeof errstr);
    char *val = malloc((size_t)value_bytes + 1);
    memset(val, 'x', (size_t)value_bytes);
    int64_t t0 = st_time_mono_ms();
    for (long i = 0; i < n; i++) {
        char key[32];
        int klen = snprintf(key, sizeof key, "user-%04ld", i % 1000);
        int head = snprintf(val, (size_t)value_bytes, "rec-%07ld-", i);
        val[head] = 'x';
        st_producer_send(prod, topic_in, -1, key, (size_t)klen, val, (size_t)value_bytes, NULL);
    }
    if (st_producer_wait(prod, 120000, NULL) != 0) {
        fprintf(stderr, "bench-pipeline: producing the input failed\n");
        return 1;
    }
    double produce_s = (double)(st_time_mono_ms() - t0) / 1000.0;
    st_producer_destroy(prod);
    free(val);

    char *args[] = {bin,           "--in.topic",  topic_in,        "--out.topic", topic_out,
                    "--dlq.topic", topic_dlq,     "--counter.key", counter,       "-G",
                    group,         "--log.level", "warn",          NULL};
    redisContext *rc = itest_redis();
    pid_t pid = itest_spawn(args, logpath);
    /* Time from the first applied record to the last: start-up and group join excluded. */
    int64_t start = 0, deadline = st_time_mono_ms() + 300000;
    long long c;
    while ((c = itest_redis_get_int(&rc, counter)) < n && st_time_mono_ms() < deadline) {
        if (c > 0 && !start)
            start = st_time_mono_ms();
        itest_sleep_ms(1);
    }
    int64_t end = st_time_mono_ms();
    kill(pid, SIGTERM);
    int status = itest_wait(pid, 30000);
    if (c < n) {
        fprintf(stderr, "bench-pipeline: only %lld of %ld records processed (log %s)\n", c, n,
                logpath);
        return 1;
    }
    double secs = (double)(end - start) / 1000.0;
    printf(
        "pipeline: %ld records of %d bytes, 6 partitions, batch.max=5000, one EVALSHA per record\n",
        n, value_bytes);
    printf("pipeline: input produced at %.0f records/s\n", (double)n / produce_s);
    printf("pipeline: pass-through %.0f records/s (%.2f s, consume -> produce+ack -> Redis -> "
           "offsets; exit %d)\n",
           (double)(n - 1) / secs, secs, status);
    freeReplyObject(redisCommand(rc, "DEL %s %s:applied", counter, counter));
    redisFree(rc);
    unlink(logpath);
    return 0;
}
