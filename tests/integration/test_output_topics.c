/* Integration: output topics are looked up before the first batch. st_producer_prepare_topic
 * accepts an existing topic and names a missing one (and says why: an ACL's refusal is told
 * apart by its code, test_secure_stack); a service whose output topic is missing
 * says so at start (not only as delivery timeouts later) and still stops cleanly, and logs the
 * consumer prefetch it chose for its librdkafka (a 20 ms full-queue backoff and 4 MB queues
 * where librdkafka >= 2.2 offers the backoff, else 12 MB). */
#include "st_itest.h"
#include "st_test.h"

static char topic_in[128], topic_out[128], topic_missing[128], group[128], counter[128];
static char bin[512], logpath[512];

static void test_prepare_topic(void)
{
    char errstr[512];
    st_kafka_opts_t ko = itest_kafka();
    const char *topics[] = {topic_in, topic_out};
    ST_REQUIRE(st_kafka_create_topics(&ko, topics, 2, 1, errstr, sizeof errstr) == 0);
    st_producer_t *prod = st_producer_new(&ko, errstr, sizeof errstr);
    ST_REQUIRE(prod != NULL);
    ST_EQ_INT(st_producer_prepare_topic(prod, topic_out, 10000, errstr, sizeof errstr), 0);
    /* Preparing twice reuses the handle. */
    ST_EQ_INT(st_producer_prepare_topic(prod, topic_out, 10000, errstr, sizeof errstr), 0);
    errstr[0] = 0;
    ST_EQ_INT(st_producer_prepare_topic(prod, topic_missing, 10000, errstr, sizeof errstr),
              RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART);
    ST_CHECK(strstr(errstr, topic_missing) != NULL);
    printf("missing topic: %s\n", errstr);
    /* The producer still works for the prepared topic. */
    ST_EQ_INT(st_producer_send(prod, topic_out, -1, "k", 1, "v", 1, NULL), 0);
    ST_EQ_INT(st_producer_wait(prod, 30000, NULL), 0);
    st_producer_destroy(prod);
}

static void test_service_reports_missing_output(void)
{
    char *argv[] = {bin,     "--in.topic", topic_in, "--out.topic", topic_missing, "--counter.key",
                    counter, "-G",         group,    NULL};
    unlink(logpath);
    pid_t pid = itest_spawn(argv, logpath);
    int64_t deadline = st_time_mono_ms() + 30000;
    while (!itest_log_has(logpath, "output_topic") && st_time_mono_ms() < deadline)
        itest_sleep_ms(50);
    ST_CHECK(itest_log_has(logpath, "output_topic"));
    ST_CHECK(itest_log_has(logpath, topic_missing));
    ST_CHECK(waitpid(pid, NULL, WNOHANG) == 0); /* reported, not fatal */
    /* The prefetch it chose for the librdkafka it runs, said at start. */
    ST_CHECK(st_kafka_conf_known("queued.max.messages.kbytes"));
    ST_CHECK(!st_kafka_conf_known("queued.max.messages.kilobytes"));
    bool short_backoff = st_kafka_conf_known("fetch.queue.backoff.ms");
    ST_CHECK(itest_log_has(logpath,
                           short_backoff ? "queued_max_kbytes=4096 " : "queued_max_kbytes=12288 "));
    ST_CHECK(itest_log_has(logpath, short_backoff ? "fetch_queue_backoff_ms=\"20\""
                                                  : "fetch_queue_backoff_ms=\"none"));
    kill(pid, SIGTERM);
    ST_EQ_INT(itest_wait(pid, 30000), 0);
}

int main(void)
{
    itest_unique(topic_in, sizeof topic_in, "it.outtopics.in");
    itest_unique(topic_out, sizeof topic_out, "it.outtopics.out");
    itest_unique(topic_missing, sizeof topic_missing, "it.outtopics.never-created");
    itest_unique(group, sizeof group, "it-outtopics");
    itest_unique(counter, sizeof counter, "it:outtopics:count");
    snprintf(bin, sizeof bin, "%s/stint-passthrough", itest_bin_dir());
    snprintf(logpath, sizeof logpath, "%s/it-outtopics.log", itest_bin_dir());
    ST_RUN(test_prepare_topic);
    ST_RUN(test_service_reports_missing_output);
    return st_test_summary();
}
