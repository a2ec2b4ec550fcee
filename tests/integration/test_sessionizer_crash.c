/* Integration (real Kafka + Redis): a ~1.1 M-listen generated dataset is produced once as
 * EnrichedListen; stint-sessionizer is SIGKILLed 5 times at random moments of the replay and
 * restarted each time, then crashes twice more by fault injection right after its events were
 * acknowledged and before the states were written. The final set of CLOSED sessions equals the
 * offline `stint sessions` reference exactly (nothing lost), every user's session count in Redis
 * equals the reference's (nothing counted twice), and every duplicate event is byte-identical
 * (their number is printed).
 */
#include "st_rkey.h"
#include "st_sessionizer.h"
#include "sz_itest.h"

#define PARTITIONS 3
#define KILLS      5

static char tmp_dir[256];
static st_avro_registry_t *reg;

/* Checks each user's history in Redis against the reference's session count per user. */
static long long check_counts(const szt_names_t *nm, const szt_lines_t *ref, long long *users)
{
    redisContext *c = itest_redis();
    long long bad = 0;
    *users = 0;
    for (size_t i = 0; i < ref->n;) {
        const char *tab = strchr(ref->v[i], '\t');
        size_t ulen = (size_t)(tab - ref->v[i]);
        size_t j = i;
        while (j < ref->n && strncmp(ref->v[j], ref->v[i], ulen + 1) == 0)
            j++;
        char key[300];
        snprintf(key, sizeof key, "%s:u:{%.*s}:" ST_RKEY_SZ, nm->prefix, (int)ulen, ref->v[i]);
        redisReply *rep = redisCommand(c, "GET %s", key);
        st_sessionizer_state_t st;
        size_t at = rep && rep->type == REDIS_REPLY_STRING
                        ? st_sessionizer_value_blob(rep->str, rep->len)
                        : 0;
        if (!rep || rep->type != REDIS_REPLY_STRING ||
            st_sessionizer_state_decode(rep->str + at, rep->len - at, &st, NULL) != 0 ||
            st.history.session_count != (uint32_t)(j - i) || st.open.active) {
            if (bad++ < 3)
                printf("     %s: state does not hold %zu closed sessions\n", key, j - i);
        }
        if (rep)
            freeReplyObject(rep);
        (*users)++;
        i = j;
    }
    redisFree(c);
    return bad;
}

static void test_crash_replay(void)
{
    char dataset[400], tsv[450], log[450];
    snprintf(dataset, sizeof dataset, "%s/gen", tmp_dir);
    snprintf(tsv, sizeof tsv, "%s/sessions.tsv", tmp_dir);
    snprintf(log, sizeof log, "%s/tools.log", tmp_dir);
    ST_REQUIRE(szt_gen(dataset, 200, 400, 7, log) == 0);
    ST_REQUIRE(szt_offline(dataset, tsv, log) == 0);
    szt_lines_t ref = {0};
    ST_REQUIRE(szt_load_lines(tsv, &ref) == 0);

    szt_names_t nm;
    szt_names(&nm, "crash");
    ST_REQUIRE(szt_create_topics(&nm, PARTITIONS) == 0);
    int64_t t0 = st_time_mono_ms();
    long long produced = szt_produce(reg, dataset, nm.in, PARTITIONS, 0, 7);
    ST_REQUIRE(produced > 1000000);
    printf("     produced %lld EnrichedListen records in %.1f s\n", produced,
           (double)(st_time_mono_ms() - t0) / 1000.0);

    /* Random kills rarely land between "events acknowledged" and "states written" (the service
     * mostly waits for input there): two crashes exactly in that window, first, while most of the
     * input is still ahead (the N-th batch with events must come). */
    static const char *const nth_batch[2] = {"20", "3"};
    for (int k = 0; k < 2; k++) {
        pid_t pid = szt_start_fault(&nm, "5000", nth_batch[k]);
        int rc = itest_wait(pid, 60000);
        if (rc < 0) {
            kill(pid, SIGKILL);
            itest_wait(pid, 10000);
        }
        printf("     injected crash %d (SIGKILL before the state write): exit %d, %lld committed\n",
               k + 1, rc, szt_committed(&nm));
        ST_EQ_INT(rc, 128 + SIGKILL);
    }

    uint64_t rng = (uint64_t)getpid() * 2654435761u + (uint64_t)st_time_wall_ms();
    int mid_run = 0;
    for (int k = 0; k < KILLS; k++) {
        pid_t pid = szt_start(&nm, "5000");
        /* Kill somewhere after the group committed past a moving threshold, plus 0-700 ms. */
        long long threshold = produced * (k + 1) / (KILLS + 2);
        int64_t deadline = st_time_mono_ms() + 60000;
        long long c = 0;
        while ((c = szt_committed(&nm)) < threshold && st_time_mono_ms() < deadline)
            itest_sleep_ms(100);
        int extra_ms = (int)(szt_rnd(&rng) % 700);
        itest_sleep_ms(extra_ms);
        kill(pid, SIGKILL);
        itest_wait(pid, 10000);
        c = szt_committed(&nm);
        printf("     SIGKILL %d: %d ms after %lld committed; %lld committed at the kill\n", k + 1,
               extra_ms, threshold, c);
        if (c < produced - PARTITIONS)
            mid_run++;
    }
    ST_EQ_INT(mid_run, KILLS);
    t0 = st_time_mono_ms();
    int resumed = szt_log_count(nm.logpath, "partition_resumed");
    pid_t pid = szt_start(&nm, "5000");
    /* Running (signal handlers installed, partitions taken) before the done check can stop it. */
    while (szt_log_count(nm.logpath, "partition_resumed") == resumed &&
           st_time_mono_ms() - t0 < 30000)
        itest_sleep_ms(100);
    int done = szt_wait_done(&nm, produced, PARTITIONS, 120000);
    printf("     last run finished the replay in %.1f s\n",
           (double)(st_time_mono_ms() - t0) / 1000.0);
    kill(pid, SIGTERM);
    ST_EQ_INT(itest_wait(pid, 60000), 0);
    ST_EQ_INT(done, 0);

    szt_result_t res;
    ST_REQUIRE(szt_read_sessions(reg, nm.out, &res) == 0);
    long long diffs = szt_compare(&ref, &res.closed);
    long long users = 0, bad_counts = check_counts(&nm, &ref, &users);
    printf("     %zu sessions offline, %zu CLOSED streamed (distinct), %lld events read, "
           "%lld byte-identical duplicates, %lld differing duplicates, %lld differences; "
           "%lld of %lld users with a wrong count in Redis; early OPENED: %lld revised, %lld "
           "voided\n",
           ref.n, res.closed.n, res.events, res.duplicates - res.mismatched, res.mismatched, diffs,
           bad_counts, users, res.revised, res.voided);
    ST_EQ_INT(diffs, 0);
    ST_EQ_INT(res.closed.n, ref.n);
    ST_EQ_INT(res.opened, (long long)ref.n);
    ST_EQ_INT(res.mismatched, 0);
    ST_EQ_INT(res.unresolved, 0); /* every early OPENED closed, retracted or covered */
    ST_CHECK(res.duplicates > 0); /* the injected crashes replayed delivered events */
    ST_EQ_INT(res.undecodable, 0);
    ST_EQ_INT(bad_counts, 0);
    char errstr[256];
    st_kafka_opts_t ko = itest_kafka();
    ST_EQ_INT(st_kafka_topic_end_offsets(&ko, nm.late, errstr, sizeof errstr), 0);
    szt_lines_free(&res.closed);
    szt_lines_free(&ref);
    szt_redis_cleanup(nm.prefix);
}

int main(void)
{
    if (szt_setup("szcrash", tmp_dir, sizeof tmp_dir, &reg) != 0)
        return 1;
    ST_RUN(test_crash_replay);
    szt_teardown(tmp_dir, reg);
    return st_test_summary();
}
