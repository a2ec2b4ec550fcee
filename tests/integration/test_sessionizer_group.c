/* Integration (real Kafka + Redis): two stint-sessionizer instances in one consumer group share
 * the input's partitions; one is stopped with SIGTERM mid-run (exit 0, its partitions committed
 * and handed over); the survivor finishes. The CLOSED sessions equal the offline reference. */
#include "sz_itest.h"

#define PARTITIONS 4

static char tmp_dir[256];
static st_avro_registry_t *reg;

/* Number of "partitions_assigned" log lines with a count > 0. */
static int assigned_lines(const char *logpath)
{
    FILE *fp = fopen(logpath, "r");
    if (!fp)
        return 0;
    char line[1024];
    int n = 0;
    while (fgets(line, sizeof line, fp)) {
        const char *p = strstr(line, "partitions_assigned count=");
        if (p && atoi(p + strlen("partitions_assigned count=")) > 0)
            n++;
    }
    fclose(fp);
    return n;
}

static void test_two_instances_one_stops(void)
{
    char dataset[400], tsv[450], log[450];
    snprintf(dataset, sizeof dataset, "%s/gen", tmp_dir);
    snprintf(tsv, sizeof tsv, "%s/sessions.tsv", tmp_dir);
    snprintf(log, sizeof log, "%s/tools.log", tmp_dir);
    ST_REQUIRE(szt_gen(dataset, 120, 200, 11, log) == 0);
    ST_REQUIRE(szt_offline(dataset, tsv, log) == 0);
    szt_lines_t ref = {0};
    ST_REQUIRE(szt_load_lines(tsv, &ref) == 0);

    szt_names_t a, b;
    szt_names(&a, "group");
    b = a;
    snprintf(a.logpath, sizeof a.logpath, "%s/a.log", tmp_dir);
    snprintf(b.logpath, sizeof b.logpath, "%s/b.log", tmp_dir);
    ST_REQUIRE(szt_create_topics(&a, PARTITIONS) == 0);
    long long produced = szt_produce(reg, dataset, a.in, PARTITIONS, 0, 11);
    ST_REQUIRE(produced > 100000);

    /* Small batches so that the run lasts long enough to stop B in the middle. */
    pid_t pa = szt_start(&a, "200");
    pid_t pb = szt_start(&b, "200");
    int64_t deadline = st_time_mono_ms() + 60000;
    long long c = 0;
    while ((assigned_lines(b.logpath) == 0 || (c = szt_committed(&a)) < produced / 4) &&
           st_time_mono_ms() < deadline)
        itest_sleep_ms(100);
    kill(pb, SIGTERM);
    int rc_b = itest_wait(pb, 60000);
    long long at_stop = szt_committed(&a);
    printf(
        "     B stopped (SIGTERM) with %lld of %lld committed, exit %d; B owned partitions: %s\n",
        at_stop, produced, rc_b, assigned_lines(b.logpath) > 0 ? "yes" : "no");
    ST_EQ_INT(rc_b, 0);
    ST_CHECK(assigned_lines(b.logpath) > 0);
    ST_CHECK(at_stop < produced - PARTITIONS);

    int done = szt_wait_done(&a, produced, PARTITIONS, 120000);
    kill(pa, SIGTERM);
    ST_EQ_INT(itest_wait(pa, 60000), 0);
    ST_EQ_INT(done, 0);

    szt_result_t res;
    ST_REQUIRE(szt_read_sessions(reg, a.out, &res) == 0);
    long long diffs = szt_compare(&ref, &res.closed);
    printf("     %zu sessions offline, %zu CLOSED streamed, %lld byte-identical duplicates, "
           "%lld differences\n",
           ref.n, res.closed.n, res.duplicates, diffs);
    ST_EQ_INT(diffs, 0);
    ST_EQ_INT(res.closed.n, ref.n);
    ST_EQ_INT(res.opened, (long long)ref.n);
    ST_EQ_INT(res.mismatched, 0);
    ST_EQ_INT(res.unresolved, 0); /* every early OPENED closed, retracted or covered */
    szt_lines_free(&res.closed);
    szt_lines_free(&ref);
    szt_redis_cleanup(a.prefix);
}

int main(void)
{
    if (szt_setup("szgroup", tmp_dir, sizeof tmp_dir, &reg) != 0)
        return 1;
    ST_RUN(test_two_instances_one_stops);
    szt_teardown(tmp_dir, reg);
    return st_test_summary();
}
