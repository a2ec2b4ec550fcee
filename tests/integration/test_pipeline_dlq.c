/* Integration: a bad record close to the broker's size limit (1,040,000 bytes: the broker takes up
 * to 1,048,588, a Java producer sends up to 1 MiB) goes to the dead-letter topic with its original
 * value cut to ST_DLQ_VALUE_MAX and the text saying so, and the service goes on. Before, the dead
 * letter was over librdkafka's 1,000,000-byte message.max.bytes, the produce failed and the service
 * stopped, again on every restart at that record. */
#define _GNU_SOURCE /* memmem */
#include "st_itest.h"
#include "st_pipeline.h"
#include "st_test.h"

#define N_GOOD 200
#define BIG    1040000

static itest_pt_t pt;

typedef struct {
    long long n;
    size_t vlen;
    bool says_cut;
} dlq_seen_t;

static void on_dlq(void *arg, int32_t partition, const void *key, size_t klen, const void *val,
                   size_t vlen)
{
    dlq_seen_t *d = arg;
    char want[128];
    (void)partition;
    (void)key;
    (void)klen;
    d->n++;
    d->vlen = vlen;
    snprintf(want, sizeof want, "value %d bytes: the first", BIG);
    d->says_cut = memmem(val, vlen, want, strlen(want)) != NULL;
}

static void test_big_bad_record(void)
{
    char errstr[512];
    st_kafka_opts_t ko = itest_kafka();
    const char *topics[] = {pt.in, pt.out, pt.dlq};
    ST_REQUIRE(st_kafka_create_topics(&ko, topics, 3, 1, errstr, sizeof errstr) == 0);
    ST_REQUIRE(itest_produce_numbered(pt.in, 0, N_GOOD / 2, 10, "dlq-test") == 0);
    st_config_prop_t max = {"message.max.bytes", "1048576"};
    st_kafka_opts_t big_ko = ko;
    big_ko.props = &max;
    big_ko.nprops = 1;
    st_producer_t *prod = st_producer_new(&big_ko, errstr, sizeof errstr);
    ST_REQUIRE(prod != NULL);
    char *big = malloc(BIG);
    memset(big, 'x', BIG);
    memcpy(big, "BAD", 3);
    ST_REQUIRE(st_producer_send(prod, pt.in, 0, "k", 1, big, BIG, NULL) == 0);
    ST_REQUIRE(st_producer_wait(prod, 30000, NULL) == 0);
    st_producer_destroy(prod);
    free(big);
    ST_REQUIRE(itest_produce_numbered(pt.in, N_GOOD / 2, N_GOOD, 10, "dlq-test") == 0);

    pid_t pid = itest_pt_spawn(&pt, NULL);
    redisContext *rc = itest_redis();
    int64_t deadline = st_time_mono_ms() + 60000;
    while (itest_redis_get_int(&rc, pt.counter) < N_GOOD + 1 && st_time_mono_ms() < deadline &&
           waitpid(pid, NULL, WNOHANG) == 0)
        itest_sleep_ms(20);
    ST_EQ_INT(itest_redis_get_int(&rc, pt.counter), N_GOOD + 1);
    ST_CHECK(waitpid(pid, NULL, WNOHANG) == 0); /* still running */
    kill(pid, SIGTERM);
    ST_EQ_INT(itest_wait(pid, 30000), 0);
    ST_EQ_INT(st_kafka_group_committed(&ko, pt.group, pt.in, errstr, sizeof errstr), N_GOOD + 1);

    dlq_seen_t d = {0};
    ST_EQ_INT(itest_read_topic(pt.dlq, on_dlq, &d), 1);
    printf("dead letter: %zu bytes\n", d.vlen);
    ST_CHECK(d.says_cut);
    /* The value kept, plus the other fields (Avro; the JSON encoder would double it as hex). */
    ST_CHECK(d.vlen > ST_DLQ_VALUE_MAX && d.vlen < ST_DLQ_VALUE_MAX + 4096);
    ST_EQ_INT(st_kafka_topic_end_offsets(&ko, pt.out, errstr, sizeof errstr), N_GOOD);
    itest_pt_redis_cleanup(&pt);
    redisFree(rc);
}

int main(void)
{
    itest_pt_init(&pt, "dlq");
    ST_RUN(test_big_bad_record);
    return st_test_summary();
}
