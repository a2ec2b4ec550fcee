/* Integration (real Kafka + Redis), issue "one wrong clock costs no one else anything": a
 * generated dataset is produced in time order with one extra listen of one user, dated a day
 * after the records around it, sent mid-stream (a client whose clock is a day fast, during a
 * replay of history). With the default partition clock (clock.quorum 3) no listen goes to
 * sessions.late or the DLQ, and every CLOSED session equals `stint sessions` offline on the same
 * listens (the early listen's own user's included, its listen then in its place in time). Under
 * the earlier rule (--clock.quorum 1) the same stream makes other users' listens late, so the
 * check can fail. See sz_itest.h for how the stream ends. */
#include "sz_itest.h"

#include "st_time.h"

#define PARTITIONS 3
#define DAY_MS     (86400LL * 1000)

/* A failed requirement of run(): counted, and the run gives up. */
#define RUN_REQUIRE(cond)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            ST_FAIL_AT("%s", #cond);                                                               \
            return -1;                                                                             \
        }                                                                                          \
    } while (0)

static char tmp_dir[256];
static st_avro_registry_t *reg;

/* The first and last listen times of the dataset's listens file and its first user. */
static int dataset_span(const char *dir, int64_t *first, int64_t *last, char *user, size_t size)
{
    char path[600], line[4096];
    snprintf(path, sizeof path, "%s/%s", dir, ST_LASTFM_LISTENS_FILE);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    *first = INT64_MAX;
    *last = INT64_MIN;
    user[0] = '\0';
    while (fgets(line, sizeof line, f)) {
        char *tab = strchr(line, '\t'), *tab2 = tab ? strchr(tab + 1, '\t') : NULL;
        int64_t t;
        if (!tab2 || st_time_parse_iso8601(tab + 1, (size_t)(tab2 - tab - 1), &t) != 0)
            continue;
        if (!user[0])
            snprintf(user, size, "%.*s", (int)(tab - line), line);
        *first = t < *first ? t : *first;
        *last = t > *last ? t : *last;
    }
    fclose(f);
    return *first <= *last ? 0 : -1;
}

/* A copy of the dataset with the extra listen appended to its listens file. */
static int dataset_with(const char *dir, const char *copy, const char *user, int64_t t_ms)
{
    char cmd[1400], path[600], iso[40];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -r '%s' '%s'", copy, dir, copy);
    if (system(cmd) != 0)
        return -1;
    snprintf(path, sizeof path, "%s/%s", copy, ST_LASTFM_LISTENS_FILE);
    FILE *f = fopen(path, "a");
    if (!f)
        return -1;
    st_time_format_iso8601(t_ms, iso, sizeof iso);
    fprintf(f, "%s\t%s\t\tEarly Artist\t\tEarly Track\n", user, iso);
    return fclose(f);
}

static long long run(const char *dataset, const szt_inject_t *inj, const char *quorum,
                     szt_result_t *res, long long *late, long long *dlq)
{
    szt_names_t nm;
    szt_names(&nm, quorum ? "clockq1" : "clock");
    RUN_REQUIRE(szt_create_topics(&nm, PARTITIONS) == 0);
    long long produced = szt_produce_inject(reg, dataset, nm.in, PARTITIONS, 0, 1, inj);
    RUN_REQUIRE(produced > PARTITIONS);
    pid_t pid = szt_start_opts(&nm, "500", "0", quorum);
    /* all but the sentinels, and under quorum 1 the late listens never committed as held */
    int done = szt_wait_done(&nm, produced, PARTITIONS, 120000);
    kill(pid, SIGTERM);
    ST_EQ_INT(itest_wait(pid, 60000), 0);
    ST_EQ_INT(done, 0);
    RUN_REQUIRE(szt_read_sessions(reg, nm.out, res) == 0);
    char errstr[256];
    st_kafka_opts_t ko = itest_kafka();
    *late = st_kafka_topic_end_offsets(&ko, nm.late, errstr, sizeof errstr);
    *dlq = st_kafka_topic_end_offsets(&ko, nm.dlq, errstr, sizeof errstr);
    szt_redis_cleanup(nm.prefix);
    return produced;
}

static void test_one_listen_a_day_ahead(void)
{
    char dataset[400], copy[400], tsv[450], tsv2[450], log[450], user[160];
    snprintf(dataset, sizeof dataset, "%s/gen", tmp_dir);
    snprintf(copy, sizeof copy, "%s/gen-early", tmp_dir);
    snprintf(tsv, sizeof tsv, "%s/sessions.tsv", tmp_dir);
    snprintf(tsv2, sizeof tsv2, "%s/sessions-early.tsv", tmp_dir);
    snprintf(log, sizeof log, "%s/tools.log", tmp_dir);
    ST_REQUIRE(szt_gen(dataset, 24, 20, 7, log) == 0);
    int64_t first, last;
    ST_REQUIRE(dataset_span(dataset, &first, &last, user, sizeof user) == 0);
    /* mid-replay; a whole second, as the listens file has them */
    szt_inject_t inj = {user, (first + last) / 2 / 1000 * 1000, 0};
    inj.listened_at_ms = inj.at_ms + DAY_MS;
    ST_REQUIRE(dataset_with(dataset, copy, user, inj.listened_at_ms) == 0);
    ST_REQUIRE(szt_offline(dataset, tsv, log) == 0);
    ST_REQUIRE(szt_offline(copy, tsv2, log) == 0);
    szt_lines_t ref = {0}, ref2 = {0};
    ST_REQUIRE(szt_load_lines(tsv, &ref) == 0);
    ST_REQUIRE(szt_load_lines(tsv2, &ref2) == 0);
    /* the early listen changes its user's sessions offline: the check below covers it */
    ST_CHECK(szt_compare(&ref, &ref2) > 0);

    szt_result_t res;
    long long late, dlq;
    ST_REQUIRE(run(dataset, &inj, NULL, &res, &late, &dlq) > 0);
    long long diffs = szt_compare(&ref2, &res.closed);
    printf("     %s's listen a day ahead at %lld: %zu sessions offline, %zu CLOSED streamed, "
           "%lld differences, %lld late, %lld to the DLQ\n",
           user, (long long)inj.at_ms, ref2.n, res.closed.n, diffs, late, dlq);
    ST_EQ_INT(diffs, 0);
    ST_EQ_INT(res.closed.n, ref2.n);
    ST_EQ_INT(late, 0);
    ST_EQ_INT(dlq, 0);
    szt_lines_free(&res.closed);

    /* The earlier rule, same stream: other users' listens are late. */
    szt_result_t res1;
    long long late1, dlq1;
    ST_REQUIRE(run(dataset, &inj, "1", &res1, &late1, &dlq1) > 0);
    long long diffs1 = szt_compare(&ref2, &res1.closed);
    printf("     the same under --clock.quorum 1: %lld late, %lld differences\n", late1, diffs1);
    ST_CHECK(late1 > 10);
    ST_CHECK(diffs1 > 0);
    szt_lines_free(&res1.closed);
    szt_lines_free(&ref);
    szt_lines_free(&ref2);
}

int main(void)
{
    if (szt_setup("szclock", tmp_dir, sizeof tmp_dir, &reg) != 0)
        return 1;
    ST_RUN(test_one_listen_a_day_ahead);
    szt_teardown(tmp_dir, reg);
    return st_test_summary();
}
