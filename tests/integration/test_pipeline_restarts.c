/* Integration: the pass-through pipeline survives a Redis restart and a Kafka restart mid-run
 * (no record lost, none counted twice), and SIGTERM stops it with exit 0 and every consumed
 * offset committed. Restarts go through deploy/local/stack, so state is kept as in production. */
#include "st_itest.h"
#include "st_test.h"

#define N_RECORDS 40000

static char topic_in[128], topic_out[128], topic_dlq[128], group[128], counter[128];
static char bin[512], logpath[512], stack[512];
/* restart() formats both paths into one command line. */

static void on_out(void *arg, int32_t partition, const void *key, size_t klen, const void *val,
                   size_t vlen)
{
    unsigned char *seen = arg;
    int i;
    (void)partition;
    (void)key;
    (void)klen;
    if (vlen > 11 && sscanf((const char *)val, "rec-%7d-", &i) == 1 && i >= 0 && i < N_RECORDS)
        seen[i] = 1;
}

static int restart(const char *server)
{
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "%s restart %s >>%s 2>&1", stack, server, logpath);
    return system(cmd);
}

static void test_restarts_and_sigterm(void)
{
    char errstr[512];
    st_kafka_opts_t ko = itest_kafka();
    const char *topics[] = {topic_in, topic_out, topic_dlq};
    ST_REQUIRE(st_kafka_create_topics(&ko, topics, 3, 3, errstr, sizeof errstr) == 0);
    ST_REQUIRE(itest_produce_numbered(topic_in, 0, N_RECORDS / 2, 500, "restart-test") == 0);

    char *argv[] = {bin, "--in.topic", topic_in, "--out.topic", topic_out, "--dlq.topic", topic_dlq,
                    "--counter.key", counter, "-G", group, "--batch.max", "500", NULL};
    pid_t pid = itest_spawn(argv, logpath);
    redisContext *rc = itest_redis();
    int64_t deadline = st_time_mono_ms() + 60000;
    while (itest_redis_get_int(&rc, counter) < 2000 && st_time_mono_ms() < deadline)
        itest_sleep_ms(5);
    ST_EQ_INT(restart("redis"), 0);
    long long after_redis = itest_redis_get_int(&rc, counter);
    printf("redis restarted at counter=%lld\n", after_redis);

    /* More input while Kafka goes down and comes back. */
    ST_EQ_INT(restart("kafka"), 0);
    ST_REQUIRE(itest_produce_numbered(topic_in, N_RECORDS / 2, N_RECORDS, 500, "restart-test") == 0);

    deadline = st_time_mono_ms() + 180000;
    while (itest_redis_get_int(&rc, counter) < N_RECORDS && st_time_mono_ms() < deadline)
        itest_sleep_ms(50);
    itest_sleep_ms(1000);
    ST_EQ_INT(itest_redis_get_int(&rc, counter), N_RECORDS);
    ST_CHECK(waitpid(pid, NULL, WNOHANG) == 0); /* still running: it survived both restarts */

    kill(pid, SIGTERM);
    ST_EQ_INT(itest_wait(pid, 60000), 0);
    ST_EQ_INT(st_kafka_group_committed(&ko, group, topic_in, errstr, sizeof errstr), N_RECORDS);

    unsigned char *seen = calloc(N_RECORDS, 1);
    ST_CHECK(itest_read_topic(topic_out, on_out, seen) >= N_RECORDS);
    long long missing = 0;
    for (int i = 0; i < N_RECORDS; i++)
        missing += !seen[i];
    ST_EQ_INT(missing, 0);
    free(seen);
    redisFree(rc);
    rc = itest_redis();
    freeReplyObject(redisCommand(rc, "DEL %s %s:applied", counter, counter));
    redisFree(rc);
}

int main(void)
{
    itest_unique(topic_in, sizeof topic_in, "it.restart.in");
    itest_unique(topic_out, sizeof topic_out, "it.restart.out");
    itest_unique(topic_dlq, sizeof topic_dlq, "it.restart.dlq");
    itest_unique(group, sizeof group, "it-restart");
    itest_unique(counter, sizeof counter, "it:restart:count");
    snprintf(bin, sizeof bin, "%s/stint-passthrough", itest_bin_dir());
    snprintf(logpath, sizeof logpath, "%s/it-restart.log", itest_bin_dir());
    snprintf(stack, sizeof stack, "%s/deploy/local/stack", getenv("STINT_SOURCE_DIR"));
    ST_RUN(test_restarts_and_sigterm);
    return st_test_summary();
}
