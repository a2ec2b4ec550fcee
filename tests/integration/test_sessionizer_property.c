/* Integration (real Kafka + Redis): for several generated datasets, in time order and shuffled
 * within the grace, the CLOSED sessions of stint-sessionizer equal the offline `stint sessions`
 * output line for line (user, start, length, track count, unknown-duration share); no record is
 * late, none goes to the DLQ, and SIGTERM exits 0. See sz_itest.h for how the streams end. */
#include "sz_itest.h"

#define PARTITIONS 3
#define GRACE_MS   60000

static char tmp_dir[256];
static st_avro_registry_t *reg;

static void run_variant(const char *dataset, const szt_lines_t *ref, int seed, int64_t jitter_ms)
{
    char base[64];
    snprintf(base, sizeof base, "prop%d%s", seed, jitter_ms ? "s" : "o");
    szt_names_t nm;
    szt_names(&nm, base);
    ST_REQUIRE(szt_create_topics(&nm, PARTITIONS) == 0);
    long long produced = szt_produce(reg, dataset, nm.in, PARTITIONS, jitter_ms, (uint64_t)seed);
    ST_REQUIRE(produced > PARTITIONS);
    pid_t pid = szt_start(&nm, "500");
    int done = szt_wait_done(&nm, produced, PARTITIONS, 120000);
    kill(pid, SIGTERM);
    ST_EQ_INT(itest_wait(pid, 60000), 0);
    ST_EQ_INT(done, 0);

    szt_result_t res;
    ST_REQUIRE(szt_read_sessions(reg, nm.out, &res) == 0);
    long long diffs = szt_compare(ref, &res.closed);
    printf("     seed %d %s: %lld listens, %zu sessions offline, %zu CLOSED streamed, %lld OPENED, "
           "%lld differences, %lld duplicates, %lld revised and %lld voided announcements\n",
           seed, jitter_ms ? "shuffled within the grace" : "in time order", produced - PARTITIONS,
           ref->n, res.closed.n, res.opened, diffs, res.duplicates, res.revised, res.voided);
    ST_EQ_INT(diffs, 0);
    ST_EQ_INT(res.closed.n, ref->n);
    ST_EQ_INT(res.opened, (long long)ref->n); /* every session announced and closed */
    ST_EQ_INT(res.mismatched, 0);
    ST_EQ_INT(res.unresolved, 0); /* every early OPENED closed, retracted or covered */
    ST_EQ_INT(res.undecodable, 0);
    char errstr[256];
    st_kafka_opts_t ko = itest_kafka();
    ST_EQ_INT(st_kafka_topic_end_offsets(&ko, nm.late, errstr, sizeof errstr), 0);
    ST_EQ_INT(st_kafka_topic_end_offsets(&ko, nm.dlq, errstr, sizeof errstr), 0);
    szt_lines_free(&res.closed);
    szt_redis_cleanup(nm.prefix);
}

static void test_streaming_equals_offline(void)
{
    for (int seed = 1; seed <= 3; seed++) {
        char dataset[400], tsv[450], log[450];
        snprintf(dataset, sizeof dataset, "%s/gen%d", tmp_dir, seed);
        snprintf(tsv, sizeof tsv, "%s/sessions%d.tsv", tmp_dir, seed);
        snprintf(log, sizeof log, "%s/tools.log", tmp_dir);
        ST_REQUIRE(szt_gen(dataset, 20, 20, seed, log) == 0);
        ST_REQUIRE(szt_offline(dataset, tsv, log) == 0);
        szt_lines_t ref = {0};
        ST_REQUIRE(szt_load_lines(tsv, &ref) == 0);
        ST_CHECK(ref.n > 100);
        run_variant(dataset, &ref, seed, 0);
        run_variant(dataset, &ref, seed, GRACE_MS - 10000);
        szt_lines_free(&ref);
    }
}

int main(void)
{
    if (szt_setup("szprop", tmp_dir, sizeof tmp_dir, &reg) != 0)
        return 1;
    ST_RUN(test_streaming_equals_offline);
    szt_teardown(tmp_dir, reg);
    return st_test_summary();
}
