/* Integration: a consumer whose group session expires (the process is paused past
 * session.timeout.ms, as in a long broker outage or a GC-like stall) loses its partitions with
 * offsets stored but not committed. The pipeline must neither replay nor forget that work:
 *  - if the partitions come back, it resumes where it had got to (no record produced twice);
 *  - if it is stopped before they come back, SIGTERM still leaves the group's commit at the end.
 * Auto-commit is stretched to 10 minutes so that only those paths can commit. */
#include "st_itest.h"
#include "st_test.h"

#define N_FIRST 3000
#define N_MORE  1000

static bool wait_counter(redisContext **rc, const char *key, long long want, int timeout_ms)
{
    int64_t deadline = st_time_mono_ms() + timeout_ms;
    while (itest_redis_get_int(rc, key) < want && st_time_mono_ms() < deadline)
        itest_sleep_ms(20);
    return itest_redis_get_int(rc, key) == want;
}

/* Starts the pass-through on n, feeds it N_FIRST records, waits until all are counted, then
 * pauses it for longer than its session timeout so the broker expels it. */
static void start_and_expel(itest_pt_t *n, redisContext **rc, pid_t *pid)
{
    char errstr[512];
    st_kafka_opts_t ko = itest_kafka();
    const char *topics[] = {n->in, n->out, n->dlq};
    ST_REQUIRE(st_kafka_create_topics(&ko, topics, 3, 3, errstr, sizeof errstr) == 0);
    ST_REQUIRE(itest_produce_numbered(n->in, 0, N_FIRST, 300, "lost-test") == 0);
    char *extra[] = {"--batch.max", "200",
                     "-X",          "session.timeout.ms=6000",
                     "-X",          "auto.commit.interval.ms=600000",
                     NULL};
    *pid = itest_pt_spawn(n, extra);
    ST_REQUIRE(wait_counter(rc, n->counter, N_FIRST, 60000));
    ST_EQ_INT(kill(*pid, SIGSTOP), 0);
    itest_sleep_ms(9000);
    ST_EQ_INT(kill(*pid, SIGCONT), 0);
}

static void test_regained_partitions_resume_where_they_were(void)
{
    char errstr[512];
    itest_pt_t n;
    itest_pt_init(&n, "lost.back");
    redisContext *rc = itest_redis();
    st_kafka_opts_t ko = itest_kafka();
    pid_t pid;
    start_and_expel(&n, &rc, &pid);

    /* It rejoins and gets the partitions back; more input flows through. */
    ST_REQUIRE(itest_produce_numbered(n.in, N_FIRST, N_FIRST + N_MORE, 300, "lost-test") == 0);
    ST_CHECK(wait_counter(&rc, n.counter, N_FIRST + N_MORE, 60000));
    itest_sleep_ms(500);

    /* Every input record produced exactly once: nothing replayed from the stale commit. */
    ST_EQ_INT(st_kafka_topic_end_offsets(&ko, n.out, errstr, sizeof errstr), N_FIRST + N_MORE);
    ST_CHECK(itest_log_has(n.log, "partition_resumed"));

    kill(pid, SIGTERM);
    ST_EQ_INT(itest_wait(pid, 60000), 0);
    ST_EQ_INT(st_kafka_group_committed(&ko, n.group, n.in, errstr, sizeof errstr),
              N_FIRST + N_MORE);
    ST_EQ_INT(itest_redis_get_int(&rc, n.counter), N_FIRST + N_MORE);
    redisFree(rc);
    itest_pt_redis_cleanup(&n);
}

static void test_stopped_while_expelled_still_commits(void)
{
    char errstr[512];
    itest_pt_t n;
    itest_pt_init(&n, "lost.stop");
    redisContext *rc = itest_redis();
    st_kafka_opts_t ko = itest_kafka();
    pid_t pid;
    start_and_expel(&n, &rc, &pid);

    kill(pid, SIGTERM); /* at once: before it can rejoin */
    ST_EQ_INT(itest_wait(pid, 60000), 0);
    ST_EQ_INT(st_kafka_group_committed(&ko, n.group, n.in, errstr, sizeof errstr), N_FIRST);
    ST_EQ_INT(itest_redis_get_int(&rc, n.counter), N_FIRST);
    redisFree(rc);
    itest_pt_redis_cleanup(&n);
}

int main(void)
{
    ST_RUN(test_regained_partitions_resume_where_they_were);
    ST_RUN(test_stopped_while_expelled_still_commits);
    return st_test_summary();
}
