/* Integration: the pass-through pipeline under load survives hard crashes of its servers:
 * redis-server SIGKILLed three times and the Kafka broker twice (deploy/local/stack kill, then
 * restart: no clean shutdown, state as the crash left it). The counter ends at exactly N, every
 * input is in the output (duplicates only byte-identical), the service never exits, and SIGTERM
 * exits 0 with every offset committed. A write Redis acknowledged and then lost with the crash
 * would show as a counter below N (its offset was committed, so it is never replayed).
 *
 * Redis runs as the stack ships it, with appendfsync always (a Redis still running with an
 * older redis.conf is restarted first): with everysec, Redis answers while a write waits behind
 * a background fsync (aof.c, flushAppendOnlyFile postpones it up to 2 s), and a SIGKILL then
 * loses acknowledged writes. One run of six here ended at 39,617 of 40,000 that way;
 * docs/deployment.md has the details. */
#include "st_itest.h"
#include "st_test.h"

#define N_RECORDS 40000
#define N_KEYS    500
#define BACKLOG   4000 /* input kept ahead of the counter: every kill lands mid-run */
#define STEP      5000 /* records the service counts after a restart before the next kill */

static itest_pt_t pt;
static char stack[512];
static st_producer_t *prod;
static int produced;

/* The running Redis's appendfsync setting into buf ("" when it does not answer). */
static void get_appendfsync(redisContext *rc, char *buf, size_t size)
{
    redisReply *r = redisCommand(rc, "CONFIG GET appendfsync");
    snprintf(buf, size, "%s",
             r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 ? r->element[1]->str : "");
    if (r)
        freeReplyObject(r);
}

static int stack_cmd(const char *verb, const char *server)
{
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "%s %s %s >>%s 2>&1", stack, verb, server, pt.log);
    return system(cmd);
}

static int make_value(int i, char *buf, size_t size)
{
    return snprintf(buf, size, "rec-%07d-hardkill-payload-payload-payload-payload", i);
}

/* Produces more input so that BACKLOG records wait ahead of counter (none while Redis is down and
 * the counter unknown). Returns 0, or -1 when a record could not be queued. */
static int feed(long long counter)
{
    long long target = counter < 0 ? produced : counter + BACKLOG;
    if (target > N_RECORDS)
        target = N_RECORDS;
    for (; produced < target; produced++) {
        char key[32], val[96];
        int klen = snprintf(key, sizeof key, "user-%04d", produced % N_KEYS);
        int vlen = make_value(produced, val, sizeof val);
        if (st_producer_send(prod, pt.in, -1, key, (size_t)klen, val, (size_t)vlen, NULL) != 0)
            return -1;
    }
    rd_kafka_poll(st_producer_handle(prod), 0);
    return 0;
}

/* Feeds and waits until the counter reaches at least `at` or timeout_ms pass. Returns the
 * counter. */
static long long run_until(redisContext **rc, long long at, int timeout_ms)
{
    int64_t deadline = st_time_mono_ms() + timeout_ms;
    long long c;
    while ((c = itest_redis_get_int(rc, pt.counter)) < at && st_time_mono_ms() < deadline) {
        if (feed(c) != 0)
            break;
        itest_sleep_ms(2);
    }
    return c;
}

/* The counter, asking again while the first GETs after a restart fail (-1 after timeout_ms). */
static long long counter_now(redisContext **rc, int timeout_ms)
{
    int64_t deadline = st_time_mono_ms() + timeout_ms;
    long long c;
    while ((c = itest_redis_get_int(rc, pt.counter)) < 0 && st_time_mono_ms() < deadline)
        itest_sleep_ms(20);
    return c;
}

typedef struct {
    unsigned char *seen; /* times each index was read */
    uint64_t *key_hash;  /* key+value hash of the first copy */
    long long duplicates, mismatched, unknown;
} readback_t;

static void on_out(void *arg, int32_t partition, const void *key, size_t klen, const void *val,
                   size_t vlen)
{
    readback_t *rb = arg;
    (void)partition;
    int i;
    if (vlen < 11 || sscanf((const char *)val, "rec-%7d-", &i) != 1 || i < 0 || i >= N_RECORDS) {
        rb->unknown++;
        return;
    }
    uint64_t h = st_hash64(key, klen, st_hash64(val, vlen, 0));
    if (rb->seen[i]++ == 0) {
        rb->key_hash[i] = h;
    } else {
        rb->duplicates++;
        if (rb->key_hash[i] != h)
            rb->mismatched++;
    }
}

static void test_hard_kills(void)
{
    char errstr[512];
    st_kafka_opts_t ko = itest_kafka();
    const char *topics[] = {pt.in, pt.out, pt.dlq};
    ST_REQUIRE(st_kafka_create_topics(&ko, topics, 3, 3, errstr, sizeof errstr) == 0);
    prod = st_producer_new(&ko, errstr, sizeof errstr);
    ST_REQUIRE(prod != NULL);
    ST_REQUIRE(feed(0) == 0);

    char *extra[] = {"--batch.max", "500", NULL};
    pid_t pid = itest_pt_spawn(&pt, extra);
    redisContext *rc = itest_redis();
    char fsync[32];
    get_appendfsync(rc, fsync, sizeof fsync);
    if (strcmp(fsync, "always") != 0) { /* started before the stack shipped always */
        ST_EQ_INT(stack_cmd("restart", "redis"), 0);
        redisFree(rc);
        rc = itest_redis();
        get_appendfsync(rc, fsync, sizeof fsync);
    }
    ST_REQUIRE(strcmp(fsync, "always") == 0);

    /* Redis, Kafka, Redis, Kafka, Redis: each after the service has counted STEP more records
     * since the previous server came back, so it has recovered from one crash before the next. */
    static const char *const victims[] = {"redis", "kafka", "redis", "kafka", "redis"};
    long long base = 0;
    int kills[2] = {0, 0}, mid_run = 0;
    for (size_t k = 0; k < sizeof victims / sizeof victims[0]; k++) {
        long long c = run_until(&rc, base + STEP, 90000);
        ST_CHECK(c >= base + STEP);
        ST_EQ_INT(stack_cmd("kill", victims[k]), 0);
        int64_t t0 = st_time_mono_ms();
        printf("kill %zu: %s SIGKILLed at counter=%lld produced=%d\n", k + 1, victims[k], c,
               produced);
        kills[victims[k][0] == 'k']++;
        if (c < produced)
            mid_run++;
        ST_CHECK(waitpid(pid, NULL, WNOHANG) == 0);
        ST_EQ_INT(stack_cmd("restart", victims[k]), 0);
        base = counter_now(&rc, 10000);
        printf("  %s back after %lld ms, counter=%lld\n", victims[k],
               (long long)(st_time_mono_ms() - t0), base);
        /* A counter below the one before the kill would be an acknowledged write lost. */
        ST_CHECK(base >= c);
    }
    ST_EQ_INT(kills[0], 3);
    ST_EQ_INT(kills[1], 2);
    ST_EQ_INT(mid_run, 5); /* input was waiting at every kill */
    /* The crashes hit the service's Redis writes (a batch's apply failed and was tried again). */
    ST_CHECK(itest_log_has(pt.log, "batch_retry step=apply code=redis"));

    long long c = run_until(&rc, N_RECORDS, 120000);
    ST_EQ_INT(produced, N_RECORDS);
    ST_EQ_INT(st_producer_wait(prod, 60000, NULL), 0);
    st_producer_destroy(prod);
    prod = NULL;
    ST_EQ_INT(st_kafka_topic_end_offsets(&ko, pt.in, errstr, sizeof errstr), N_RECORDS);
    itest_sleep_ms(1500); /* let any (wrong) extra increments show */
    c = counter_now(&rc, 10000);
    printf("final counter=%lld of %d\n", c, N_RECORDS);
    ST_EQ_INT(c, N_RECORDS);
    ST_CHECK(waitpid(pid, NULL, WNOHANG) == 0); /* still running: it survived every crash */

    kill(pid, SIGTERM);
    ST_EQ_INT(itest_wait(pid, 60000), 0);
    ST_EQ_INT(st_kafka_group_committed(&ko, pt.group, pt.in, errstr, sizeof errstr), N_RECORDS);

    readback_t rb = {calloc(N_RECORDS, 1), calloc(N_RECORDS, sizeof(uint64_t)), 0, 0, 0};
    long long n_out = itest_read_topic(pt.out, on_out, &rb);
    long long missing = 0;
    for (int i = 0; i < N_RECORDS; i++)
        missing += rb.seen[i] == 0;
    printf("output records=%lld duplicates=%lld (byte-identical) missing=%lld\n", n_out,
           rb.duplicates, missing);
    ST_CHECK(n_out >= N_RECORDS);
    ST_EQ_INT(missing, 0);
    ST_EQ_INT(rb.mismatched, 0);
    ST_EQ_INT(rb.unknown, 0);
    free(rb.seen);
    free(rb.key_hash);
    redisFree(rc);
    itest_pt_redis_cleanup(&pt);
}

int main(void)
{
    itest_pt_init(&pt, "hardkill");
    snprintf(stack, sizeof stack, "%s/deploy/local/stack", getenv("STINT_SOURCE_DIR"));
    ST_RUN(test_hard_kills);
    return st_test_summary();
}
