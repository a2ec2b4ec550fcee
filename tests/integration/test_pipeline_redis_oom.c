/* Integration: Redis at maxmemory (policy noeviction) answers writes with OOM. The pass-through
 * pipeline retries the batch with backoff instead of exiting (which would re-emit the batch's
 * outputs on every restart), and completes once memory is available again: the counter ends at
 * exactly N, SIGTERM exits 0 with every offset committed. The shared Redis's maxmemory and policy
 * are restored at exit, whatever happens. */
#include "st_itest.h"
#include "st_test.h"

#define N_RECORDS 500

static itest_pt_t pt;
static char old_max[64] = "", old_policy[64] = "";

static void config_get(redisContext *rc, const char *name, char *out, size_t size)
{
    redisReply *r = redisCommand(rc, "CONFIG GET %s", name);
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2)
        snprintf(out, size, "%s", r->element[1]->str);
    freeReplyObject(r);
}

static void restore_redis(void)
{
    if (!old_max[0])
        return;
    redisContext *rc = itest_redis();
    freeReplyObject(redisCommand(rc, "CONFIG SET maxmemory %s", old_max));
    freeReplyObject(redisCommand(rc, "CONFIG SET maxmemory-policy %s", old_policy));
    redisFree(rc);
    old_max[0] = 0;
}

static void test_oom_is_retried(void)
{
    char errstr[512];
    st_kafka_opts_t ko = itest_kafka();
    const char *topics[] = {pt.in, pt.out, pt.dlq};
    ST_REQUIRE(st_kafka_create_topics(&ko, topics, 3, 1, errstr, sizeof errstr) == 0);
    ST_REQUIRE(itest_produce_numbered(pt.in, 0, N_RECORDS, 50, "oom-test") == 0);

    redisContext *rc = itest_redis();
    config_get(rc, "maxmemory", old_max, sizeof old_max);
    config_get(rc, "maxmemory-policy", old_policy, sizeof old_policy);
    ST_REQUIRE(old_max[0] && old_policy[0]);
    atexit(restore_redis);
    freeReplyObject(redisCommand(rc, "CONFIG SET maxmemory-policy noeviction"));
    freeReplyObject(redisCommand(rc, "CONFIG SET maxmemory 1")); /* below what is used: full */
    redisReply *r = redisCommand(rc, "SET %s:probe x", pt.counter);
    ST_REQUIRE(r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "OOM", 3) == 0);
    freeReplyObject(r);

    pid_t pid = itest_pt_spawn(&pt, NULL);
    int64_t deadline = st_time_mono_ms() + 30000;
    while (!itest_log_has(pt.log, "OOM command not allowed") && st_time_mono_ms() < deadline &&
           waitpid(pid, NULL, WNOHANG) == 0)
        itest_sleep_ms(50);
    ST_CHECK(itest_log_has(pt.log, "OOM command not allowed"));
    itest_sleep_ms(1000);
    ST_CHECK(waitpid(pid, NULL, WNOHANG) == 0); /* still running, retrying */
    ST_EQ_INT(itest_redis_get_int(&rc, pt.counter), -1);

    restore_redis();
    deadline = st_time_mono_ms() + 60000;
    while (itest_redis_get_int(&rc, pt.counter) < N_RECORDS && st_time_mono_ms() < deadline)
        itest_sleep_ms(50);
    itest_sleep_ms(500);
    ST_EQ_INT(itest_redis_get_int(&rc, pt.counter), N_RECORDS);
    kill(pid, SIGTERM);
    ST_EQ_INT(itest_wait(pid, 30000), 0);
    ST_EQ_INT(st_kafka_group_committed(&ko, pt.group, pt.in, errstr, sizeof errstr), N_RECORDS);
    itest_pt_redis_cleanup(&pt);
    redisFree(rc);
}

int main(void)
{
    itest_pt_init(&pt, "oom");
    ST_RUN(test_oom_is_retried);
    restore_redis();
    return st_test_summary();
}
