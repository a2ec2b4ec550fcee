/* Integration test of `stint lag` against the local Kafka + Redis: a group with known committed
 * offsets gives the right per-partition rows and totals (table, --total, --json, with and without
 * topics), an unknown group and an unknown topic exit 2 naming them, --wait exits 1 at its
 * timeout while records are unread, no broker exits 3; and a running stint-sessionizer, whose
 * committed offset stays behind the records of its reorder buffer, is caught up with --sessionizer
 * once it has read everything, and is not while it is stopped behind unread records. */
#include <fcntl.h>
#include <jansson.h>

#include "sz_itest.h"

static char out_path[256], err_path[256];

/* Runs `stint lag <args...>`; stdout/stderr to out_path/err_path. Returns the exit code. */
static int lag(const char *const *args)
{
    char bin[512];
    char *argv[32];
    int n = 0;
    snprintf(bin, sizeof bin, "%s/stint", itest_bin_dir());
    argv[n++] = bin;
    argv[n++] = "lag";
    argv[n++] = "-b";
    argv[n++] = (char *)itest_brokers();
    for (; *args && n < 31; args++)
        argv[n++] = (char *)*args;
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid == 0) {
        int o = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int e = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(o, 1);
        dup2(e, 2);
        execv(argv[0], argv);
        _exit(127);
    }
    return itest_wait(pid, 120000);
}

static char *slurp(const char *path)
{
    static char buf[1 << 16];
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    buf[n] = 0;
    if (f)
        fclose(f);
    return buf;
}

/* The output's lines, spaces collapsed ("a  b   c" -> "a b c"), so rows compare whatever the
 * column widths. */
static char *squeezed(const char *path)
{
    static char buf[1 << 16];
    const char *s = slurp(path);
    size_t k = 0;
    for (; *s && k < sizeof buf - 1; s++)
        if (!(*s == ' ' && k > 0 && buf[k - 1] == ' '))
            buf[k++] = *s;
    buf[k] = 0;
    return buf;
}

static json_t *json_out(void)
{
    json_error_t e;
    json_t *j = json_loads(slurp(out_path), 0, &e);
    if (!j)
        printf("     not JSON (%s): %s\n", e.text, slurp(out_path));
    return j;
}

static int produce_to(const char *topic, int32_t partition, int n)
{
    char errstr[256];
    st_kafka_opts_t ko = itest_kafka();
    st_producer_t *prod = st_producer_new(&ko, errstr, sizeof errstr);
    int rc = prod ? 0 : -1;
    for (int i = 0; i < n && rc == 0; i++)
        rc = st_producer_send(prod, topic, partition, "k", 1, "v", 1, NULL);
    if (prod && st_producer_wait(prod, 60000, NULL) != 0)
        rc = -1;
    st_producer_destroy(prod);
    return rc;
}

static void test_known_offsets(void)
{
    char topic[128], other[128], group[128];
    itest_unique(topic, sizeof topic, "it.lag.in");
    itest_unique(other, sizeof other, "it.lag.other");
    itest_unique(group, sizeof group, "it-lag-group");
    char errstr[512];
    st_kafka_opts_t ko = itest_kafka();
    const char *topics[] = {topic, other};
    ST_REQUIRE(st_kafka_create_topics(&ko, topics, 2, 3, errstr, sizeof errstr) == 0);
    ST_REQUIRE(produce_to(topic, 0, 10) == 0);
    ST_REQUIRE(produce_to(topic, 1, 20) == 0);
    ST_REQUIRE(produce_to(other, 2, 7) == 0);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(2);
    rd_kafka_topic_partition_list_add(l, topic, 0)->offset = 4;
    rd_kafka_topic_partition_list_add(l, topic, 1)->offset = 20;
    ST_REQUIRE(st_kafka_commit_outside_group(&ko, group, l, errstr, sizeof errstr) == 0);
    rd_kafka_topic_partition_list_destroy(l);

    char row0[200], row1[200], row2[200], total[200];
    snprintf(row0, sizeof row0, "\n%s 0 4 10 6 -\n", topic);
    snprintf(row1, sizeof row1, "\n%s 1 20 20 0 -\n", topic);
    snprintf(row2, sizeof row2, "\n%s 2 - 0 0 -\n", topic);
    snprintf(total, sizeof total, "\nTOTAL 24 30 6\n");
    /* Without topics: the one the group committed on. */
    ST_EQ_INT(lag((const char *[]){"-G", group, NULL}), 0);
    const char *t = squeezed(out_path);
    ST_CHECK(strstr(t, "TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG MEMBER\n") != NULL);
    ST_CHECK(strstr(t, row0) && strstr(t, row1) && strstr(t, row2) && strstr(t, total));
    ST_CHECK(strstr(t, "STATE Empty") != NULL);
    ST_CHECK(strstr(t, other) == NULL);
    if (!strstr(t, row0))
        printf("     got:\n%s\n", slurp(out_path));
    /* A topic named but never read: its records count as lag. */
    ST_EQ_INT(lag((const char *[]){"-G", group, topic, other, NULL}), 0);
    t = squeezed(out_path);
    char orow[200];
    snprintf(orow, sizeof orow, "\n%s 2 - 7 7 -\n", other);
    ST_CHECK(strstr(t, orow) != NULL && strstr(t, "\nTOTAL 24 37 13\n") != NULL);
    ST_EQ_INT(lag((const char *[]){"-G", group, topic, "--total", NULL}), 0);
    ST_EQ_STR(slurp(out_path), "6\n");
    ST_EQ_INT(lag((const char *[]){"-G", group, "--json", NULL}), 0);
    json_t *j = json_out();
    ST_REQUIRE(j != NULL);
    ST_EQ_STR(json_string_value(json_object_get(j, "group")), group);
    ST_EQ_INT(json_integer_value(json_object_get(j, "total_lag")), 6);
    ST_CHECK(json_is_false(json_object_get(j, "caught_up")));
    json_t *parts = json_object_get(j, "partitions");
    ST_EQ_INT(json_array_size(parts), 3);
    json_t *p0 = json_array_get(parts, 0);
    ST_EQ_INT(json_integer_value(json_object_get(p0, "current_offset")), 4);
    ST_EQ_INT(json_integer_value(json_object_get(p0, "log_end_offset")), 10);
    ST_EQ_INT(json_integer_value(json_object_get(p0, "lag")), 6);
    ST_CHECK(json_is_null(json_object_get(json_array_get(parts, 2), "current_offset")));
    json_decref(j);
    /* --wait: behind, so exit 1 at the timeout; caught up at once on partition 1 alone is not
     * expressible by topic, so catch the group up and wait again. */
    ST_EQ_INT(lag((const char *[]){"-G", group, topic, "--wait", "--timeout", "2", NULL}), 1);
    l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, 0)->offset = 10;
    ST_REQUIRE(st_kafka_commit_outside_group(&ko, group, l, errstr, sizeof errstr) == 0);
    rd_kafka_topic_partition_list_destroy(l);
    ST_EQ_INT(
        lag((const char *[]){"-G", group, topic, "--wait", "--timeout", "20", "--total", NULL}), 0);
    ST_EQ_STR(slurp(out_path), "0\n");

    /* Unknown group, unknown topic: exit 2, named. */
    char nogroup[160];
    snprintf(nogroup, sizeof nogroup, "%s-never", group);
    ST_EQ_INT(lag((const char *[]){"-G", nogroup, topic, NULL}), 2);
    ST_CHECK(strstr(slurp(err_path), nogroup) != NULL && strstr(slurp(err_path), "unknown group"));
    ST_EQ_INT(lag((const char *[]){"-G", nogroup, "--wait", "--timeout", "2", NULL}), 2);
    char notopic[160];
    snprintf(notopic, sizeof notopic, "%s-never", topic);
    ST_EQ_INT(lag((const char *[]){"-G", group, notopic, NULL}), 2);
    ST_CHECK(strstr(slurp(err_path), notopic) != NULL && strstr(slurp(err_path), "unknown topic"));
    /* No broker there: exit 3 (after librdkafka's 10 s metadata timeout). */
    ST_EQ_INT(lag((const char *[]){"-G", group, "-b", "127.0.0.1:1", NULL}), 3);
}

/* Produces n listens of user at listened_at_ms + i s to partition. */
static int produce_listens(st_avro_registry_t *reg, const char *topic, int32_t partition,
                           const char *user, int64_t listened_at_ms, int n)
{
    char errstr[512];
    st_avro_codec_t *codec = st_avro_codec_new(reg, "EnrichedListen", topic, errstr, sizeof errstr);
    st_kafka_opts_t ko = itest_kafka();
    st_producer_t *prod = st_producer_new(&ko, errstr, sizeof errstr);
    st_listen_t *l = calloc(1, sizeof *l);
    st_buf_t enc = ST_BUF_INIT;
    int rc = codec && prod && l ? 0 : -1;
    for (int i = 0; i < n && rc == 0; i++) {
        memset(l, 0, sizeof *l);
        snprintf(l->user_id, sizeof l->user_id, "%s", user);
        l->timestamp_ms = listened_at_ms + i * 1000LL;
        strcpy(l->artist_name, "a");
        snprintf(l->track_name, sizeof l->track_name, "t%d", i);
        st_trackmeta_key(l->artist_name, 1, l->track_name, strlen(l->track_name), l->track_key,
                         sizeof l->track_key);
        st_listen_event_id(l->user_id, l->timestamp_ms, l->artist_name, l->track_name, l->event_id);
        rc = szt_encode(codec, l, 0, &enc) == 0 &&
                     st_producer_send(prod, topic, partition, user, strlen(user), enc.data, enc.len,
                                      NULL) == 0
                 ? 0
                 : -1;
    }
    if (prod && st_producer_wait(prod, 60000, NULL) != 0)
        rc = -1;
    st_producer_destroy(prod);
    st_buf_free(&enc);
    free(l);
    st_avro_codec_destroy(codec);
    return rc;
}

static void test_sessionizer(void)
{
    char tmp[256];
    st_avro_registry_t *reg;
    ST_REQUIRE(szt_setup("lag", tmp, sizeof tmp, &reg) == 0);
    szt_names_t nm;
    szt_names(&nm, "lag");
    ST_REQUIRE(szt_create_topics(&nm, 2) == 0);
    char data[300];
    snprintf(data, sizeof data, "%s/data", tmp);
    ST_REQUIRE(szt_gen(data, 12, 4, 7, nm.logpath) == 0);
    pid_t pid = szt_start(&nm, "500");
    long long produced = szt_produce(reg, data, nm.in, 2, 0, 1);
    ST_REQUIRE(produced > 0);
    ST_REQUIRE(szt_wait_done(&nm, produced, 2, 120000) == 0);
    const char *port = getenv("STINT_REDIS_PORT") ? getenv("STINT_REDIS_PORT") : "16379";
    const char *const sz[] = {
        "-G", nm.group, "--sessionizer", "--redis.prefix", nm.prefix,   "--redis.port",
        port, nm.in,    "--json",        "--wait",         "--timeout", "60",
        NULL};
    /* Read to the end, the sentinels (at least) held: caught up, though lag > 0. */
    ST_EQ_INT(lag(sz), 0);
    json_t *j = json_out();
    ST_REQUIRE(j != NULL);
    ST_CHECK(json_is_true(json_object_get(j, "caught_up")));
    ST_EQ_INT(json_integer_value(json_object_get(j, "total_unread")), 0);
    long long held = json_integer_value(json_object_get(j, "total_lag"));
    ST_CHECK(held >= 2 * SZT_SENTINELS);
    ST_EQ_INT(json_integer_value(json_object_get(j, "members")), 1);
    const char *member = json_string_value(
        json_object_get(json_array_get(json_object_get(j, "partitions"), 0), "member"));
    ST_CHECK(member && *member);
    json_decref(j);
    /* Without --sessionizer the held records are lag and --wait times out. */
    ST_EQ_INT(
        lag((const char *[]){"-G", nm.group, nm.in, "--wait", "--timeout", "2", "--total", NULL}),
        1);
    ST_CHECK(atoll(slurp(out_path)) >= 2 * SZT_SENTINELS);
    /* Stuck: stopped behind 5 unread records; --wait must not return 0. */
    ST_REQUIRE(kill(pid, SIGSTOP) == 0);
    ST_REQUIRE(produce_listens(reg, nm.in, 1, "late-comer", 1262304000000LL, 5) == 0);
    ST_EQ_INT(lag((const char *[]){"-G", nm.group, "--sessionizer", "--redis.prefix", nm.prefix,
                                   "--redis.port", port, nm.in, "--json", "--wait", "--timeout",
                                   "3", NULL}),
              1);
    j = json_out();
    ST_REQUIRE(j != NULL);
    ST_CHECK(json_is_false(json_object_get(j, "caught_up")));
    ST_EQ_INT(json_integer_value(json_object_get(j, "total_unread")), 5);
    json_decref(j);
    kill(pid, SIGCONT);
    ST_EQ_INT(lag(sz), 0);
    kill(pid, SIGTERM);
    ST_EQ_INT(itest_wait(pid, 60000), 0);
    szt_redis_cleanup(nm.prefix);
    szt_teardown(tmp, reg);
}

int main(void)
{
    snprintf(out_path, sizeof out_path, "/tmp/stint-it-lag-%d.out", (int)getpid());
    snprintf(err_path, sizeof err_path, "/tmp/stint-it-lag-%d.err", (int)getpid());
    ST_RUN(test_known_offsets);
    ST_RUN(test_sessionizer);
    unlink(out_path);
    unlink(err_path);
    return st_test_summary();
}
