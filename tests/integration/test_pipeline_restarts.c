/* Integration: the pass-through pipeline survives a Redis restart and a Kafka restart mid-run
 * (no record lost, none counted twice), and SIGTERM stops it with exit 0 and every consumed
 * offset committed. Restarts go through deploy/local/stack, so state is kept as in production. */
#include "st_itest.h"
#include "st_test.h"

#define N_RECORDS 40000

static itest_pt_t pt;
static char stack[512];
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

/* deploy/local/stack ACTION SERVER, its output appended to the service's log. */
static int stack_do(const char *action, const char *server)
{
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "%s %s %s >>%s 2>&1", stack, action, server, pt.log);
    return system(cmd);
}

static int restart(const char *server)
{
    return stack_do("restart", server);
}

static void test_restarts_and_sigterm(void)
{
    char errstr[512];
    st_kafka_opts_t ko = itest_kafka();
    const char *topics[] = {pt.in, pt.out, pt.dlq};
    ST_REQUIRE(st_kafka_create_topics(&ko, topics, 3, 3, errstr, sizeof errstr) == 0);
    ST_REQUIRE(itest_produce_numbered(pt.in, 0, N_RECORDS / 2, 500, "restart-test") == 0);

    char *extra[] = {"--batch.max", "500", NULL};
    pid_t pid = itest_pt_spawn(&pt, extra);
    redisContext *rc = itest_redis();
    int64_t deadline = st_time_mono_ms() + 60000;
    while (itest_redis_get_int(&rc, pt.counter) < 2000 && st_time_mono_ms() < deadline)
        itest_sleep_ms(5);
    ST_EQ_INT(restart("redis"), 0);
    long long after_redis = itest_redis_get_int(&rc, pt.counter);
    printf("redis restarted at counter=%lld\n", after_redis);

    /* More input while Kafka goes down and comes back. */
    ST_EQ_INT(restart("kafka"), 0);
    ST_REQUIRE(itest_produce_numbered(pt.in, N_RECORDS / 2, N_RECORDS, 500, "restart-test") == 0);

    deadline = st_time_mono_ms() + 180000;
    while (itest_redis_get_int(&rc, pt.counter) < N_RECORDS && st_time_mono_ms() < deadline)
        itest_sleep_ms(50);
    itest_sleep_ms(1000);
    ST_EQ_INT(itest_redis_get_int(&rc, pt.counter), N_RECORDS);
    ST_CHECK(waitpid(pid, NULL, WNOHANG) == 0); /* still running: it survived both restarts */

    kill(pid, SIGTERM);
    ST_EQ_INT(itest_wait(pid, 60000), 0);
    ST_EQ_INT(st_kafka_group_committed(&ko, pt.group, pt.in, errstr, sizeof errstr), N_RECORDS);

    unsigned char *seen = calloc(N_RECORDS, 1);
    ST_CHECK(itest_read_topic(pt.out, on_out, seen) >= N_RECORDS);
    long long missing = 0;
    for (int i = 0; i < N_RECORDS; i++)
        missing += !seen[i];
    ST_EQ_INT(missing, 0);
    free(seen);
    redisFree(rc);
    itest_pt_redis_cleanup(&pt);
}

/* SIGTERM a second after a Kafka outage cost the consumer its assignment: the broker still
 * holds the old member until its session times out and refuses the commit from outside the group
 * ("Unknown member") for that long; the service waits it out, so every processed record's offset
 * is committed. (CI once saw 6,500 of 40,000 committed in the test above, by chance of timing;
 * without the wait this test failed in 2 of 3 runs here, when the close finished before the old
 * member expired.) The broker stays down until the client has declared its assignment lost
 * (its session timeout passes without a heartbeat answered): a plain restart can be quicker than
 * the session timeout, and then nothing is lost (CI saw that once). */
static void test_sigterm_after_lost_assignment(void)
{
    char errstr[512];
    itest_pt_init(&pt, "restart-lost");
    st_kafka_opts_t ko = itest_kafka();
    const char *topics[] = {pt.in, pt.out, pt.dlq};
    ST_REQUIRE(st_kafka_create_topics(&ko, topics, 3, 3, errstr, sizeof errstr) == 0);
    ST_REQUIRE(itest_produce_numbered(pt.in, 0, N_RECORDS / 4, 500, "restart-lost") == 0);
    /* A session timeout shorter than the broker's restart, so the assignment is lost. */
    char *extra[] = {"--batch.max", "500", "-X", "session.timeout.ms=6000", NULL};
    pid_t pid = itest_pt_spawn(&pt, extra);
    redisContext *rc = itest_redis();
    int64_t deadline = st_time_mono_ms() + 60000;
    while (itest_redis_get_int(&rc, pt.counter) < N_RECORDS / 4 && st_time_mono_ms() < deadline)
        itest_sleep_ms(20);
    ST_EQ_INT(itest_redis_get_int(&rc, pt.counter), N_RECORDS / 4);
    ST_EQ_INT(stack_do("stop", "kafka"), 0);
    deadline = st_time_mono_ms() + 60000;
    while (!itest_log_has(pt.log, "commit=_ASSIGNMENT_LOST") && st_time_mono_ms() < deadline)
        itest_sleep_ms(20);
    bool lost = itest_log_has(pt.log, "commit=_ASSIGNMENT_LOST");
    ST_EQ_INT(stack_do("start", "kafka"), 0); /* before any REQUIRE: later tests need it */
    ST_REQUIRE(lost);
    kill(pid, SIGTERM);
    ST_EQ_INT(itest_wait(pid, 60000), 0);
    ST_EQ_INT(st_kafka_group_committed(&ko, pt.group, pt.in, errstr, sizeof errstr), N_RECORDS / 4);
    ST_CHECK(itest_log_has(pt.log, "how=outside-group"));
    redisFree(rc);
    itest_pt_redis_cleanup(&pt);
}

int main(void)
{
    itest_pt_init(&pt, "restart");
    snprintf(stack, sizeof stack, "%s/deploy/local/stack", getenv("STINT_SOURCE_DIR"));
    ST_RUN(test_restarts_and_sigterm);
    ST_RUN(test_sigterm_after_lost_assignment);
    return st_test_summary();
}
