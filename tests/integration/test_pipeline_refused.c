/* Integration: an output the broker refuses for good (here: larger than the output topic's
 * max.message.bytes) stops the service with exit 1 and the reason in its log, without storing
 * the batch's offsets. Before, the batch was retried every few seconds forever, re-sending all
 * of its other outputs each time. An incremental rebalance protocol is refused the same way. */
#include "st_itest.h"
#include "st_test.h"

static itest_pt_t pt;

/* The output topic, 1 partition, with max.message.bytes 2000. */
static int create_small_topic(const char *topic)
{
    char errstr[512];
    st_kafka_opts_t ko = itest_kafka();
    rd_kafka_conf_t *conf = st_kafka_conf_new(&ko, NULL, 0, errstr, sizeof errstr);
    rd_kafka_t *rk = conf ? rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr) : NULL;
    if (!rk)
        return -1;
    rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(topic, 1, 1, errstr, sizeof errstr);
    rd_kafka_NewTopic_set_config(nt, "max.message.bytes", "2000");
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_CreateTopics(rk, &nt, 1, NULL, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
    size_t n = 0;
    const rd_kafka_topic_result_t **res =
        ev ? rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n) : NULL;
    int rc =
        ev && !rd_kafka_event_error(ev) && n == 1 && !rd_kafka_topic_result_error(res[0]) ? 0 : -1;
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_NewTopic_destroy(nt);
    rd_kafka_destroy(rk);
    return rc;
}

static void test_refused_output_is_fatal(void)
{
    char errstr[512];
    st_kafka_opts_t ko = itest_kafka();
    const char *topics[] = {pt.in, pt.dlq};
    ST_REQUIRE(st_kafka_create_topics(&ko, topics, 2, 1, errstr, sizeof errstr) == 0);
    ST_REQUIRE(create_small_topic(pt.out) == 0);
    ST_REQUIRE(itest_produce_numbered(pt.in, 0, 20, 5, "refused-test") == 0);
    st_producer_t *prod = st_producer_new(&ko, errstr, sizeof errstr);
    ST_REQUIRE(prod != NULL);
    char big[5000];
    memset(big, 'y', sizeof big);
    memcpy(big, "rec-0000020-", 12);
    ST_REQUIRE(st_producer_send(prod, pt.in, 0, "k", 1, big, sizeof big, NULL) == 0);
    ST_REQUIRE(st_producer_wait(prod, 30000, NULL) == 0);
    st_producer_destroy(prod);

    pid_t pid = itest_pt_spawn(&pt, NULL);
    ST_EQ_INT(itest_wait(pid, 60000), 1);
    ST_CHECK(itest_log_has(pt.log, "permanently"));
    ST_CHECK(itest_log_has(pt.log, "reason=fatal-error"));
    /* Nothing applied or committed past the refused batch; its outputs went out once. */
    redisContext *rc = itest_redis();
    ST_CHECK(itest_redis_get_int(&rc, pt.counter) <= 0);
    ST_CHECK(st_kafka_group_committed(&ko, pt.group, pt.in, errstr, sizeof errstr) <= 0);
    ST_CHECK(st_kafka_topic_end_offsets(&ko, pt.out, errstr, sizeof errstr) <= 20);
    itest_pt_redis_cleanup(&pt);
    redisFree(rc);
}

/* An incremental rebalance protocol (set through -X) would leave the eager loop fetching nothing,
 * silently: the service stops with exit 1 and says what to remove. */
static void test_cooperative_protocol_is_refused(void)
{
    char errstr[512];
    itest_pt_t co;
    itest_pt_init(&co, "cooperative");
    st_kafka_opts_t ko = itest_kafka();
    const char *topics[] = {co.in, co.out, co.dlq};
    ST_REQUIRE(st_kafka_create_topics(&ko, topics, 3, 1, errstr, sizeof errstr) == 0);
    char *extra[] = {"-X", "partition.assignment.strategy=cooperative-sticky", NULL};
    pid_t pid = itest_pt_spawn(&co, extra);
    ST_EQ_INT(itest_wait(pid, 60000), 1);
    ST_CHECK(itest_log_has(co.log, "incremental rebalance protocol"));
    itest_pt_redis_cleanup(&co);
}

int main(void)
{
    itest_pt_init(&pt, "refused");
    ST_RUN(test_refused_output_is_fatal);
    ST_RUN(test_cooperative_protocol_is_refused);
    return st_test_summary();
}
