/* bench/replay_ingest.c - `stint replay` alone (events/s, peak RSS) and replay + stint-ingest end
 * to end (events/s until every raw record is processed and committed) on the local Kafka + Redis.
 * Usage: bench-replay_ingest [--users N --days D]    a generated dataset (default 200 x 300)
 *        bench-replay_ingest --rss-data DIR          replay only, over an existing dataset, for its
 *                                                    peak RSS (the child's ru_maxrss, as
 *                                                    /usr/bin/time -v reports it)
 * The ~19 M-line dataset: stint gen --users 1000 --days 1500 --out DIR (~15 s, 2.3 GB), then
 * bench-replay_ingest --rss-data DIR, or
 *   /usr/bin/time -v stint replay --data DIR --topic bench.rss --profiles-topic '' -q
 * Topics are unique per run and deleted afterwards; the generated dataset too. */
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "st_kafka.h"
#include "st_lastfm.h"
#include "st_log.h"
#include "st_time.h"

static char bin_dir[1024];
static const char *brokers = "127.0.0.1:19092";

static void find_bin_dir(void)
{
    char self[960];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    self[n > 0 ? n : 0] = '\0';
    char *slash = strrchr(self, '/');
    if (slash)
        *slash = '\0';
    snprintf(bin_dir, sizeof bin_dir, "%s/../bin", self); /* build/bench -> build/bin */
}

static pid_t spawn(char *const argv[], const char *log)
{
    pid_t pid = fork();
    if (pid == 0) {
        FILE *f = log ? fopen(log, "a") : NULL;
        if (f) {
            dup2(fileno(f), 1);
            dup2(fileno(f), 2);
        }
        execv(argv[0], argv);
        perror("execv");
        _exit(127);
    }
    return pid;
}

/* Waits for pid; returns its exit code (128+signal) and its peak RSS in KiB. */
static int wait_rss(pid_t pid, long *maxrss_kb)
{
    int status;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) != pid)
        return -1;
    if (maxrss_kb)
        *maxrss_kb = ru.ru_maxrss;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void delete_topics(const char *const *topics, int n)
{
    char errstr[512];
    st_kafka_opts_t ko = {brokers, "bench", NULL, 0};
    rd_kafka_conf_t *conf = st_kafka_conf_new(&ko, NULL, 0, errstr, sizeof errstr);
    rd_kafka_t *rk = conf ? rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr) : NULL;
    if (!rk)
        return;
    rd_kafka_DeleteTopic_t *dt[8];
    for (int i = 0; i < n; i++)
        dt[i] = rd_kafka_DeleteTopic_new(topics[i]);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_DeleteTopics(rk, dt, (size_t)n, NULL, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_DeleteTopic_destroy_array(dt, (size_t)n);
    rd_kafka_queue_destroy(q);
    rd_kafka_destroy(rk);
}

/* Replays data into topic; prints the figures; returns the listens sent, or -1. */
static long long replay_only(const char *data, const char *topic, const char *log)
{
    char stint[1100];
    snprintf(stint, sizeof stint, "%s/stint", bin_dir);
    char *argv[] = {
        stint,     "replay",      "--data",           (char *)data, "-b",         (char *)brokers,
        "--topic", (char *)topic, "--profiles-topic", "",           "--progress", "never",
        "-q",      NULL};
    int64_t t0 = st_time_mono_ms();
    long rss_kb = 0;
    int rc = wait_rss(spawn(argv, log), &rss_kb);
    double s = (double)(st_time_mono_ms() - t0) / 1000.0;
    char errstr[512];
    st_kafka_opts_t ko = {brokers, "bench", NULL, 0};
    long long n = st_kafka_topic_end_offsets(&ko, topic, errstr, sizeof errstr);
    printf("replay only:        %lld listens in %.2f s = %.0f events/s (index pass included), "
           "peak RSS %.1f MB, exit %d\n",
           n, s, s > 0 ? (double)n / s : 0.0, (double)rss_kb / 1024.0, rc);
    return rc == 0 ? n : -1;
}

static int end_to_end(const char *data, const char *suffix, const char *log)
{
    char raw[128], out[128], dlq[128], group[128], prefix[128], stint[1100], ingest[1100];
    char errstr[512];
    snprintf(raw, sizeof raw, "bench.e2e.raw.%s", suffix);
    snprintf(out, sizeof out, "bench.e2e.listens.%s", suffix);
    snprintf(dlq, sizeof dlq, "bench.e2e.dlq.%s", suffix);
    snprintf(group, sizeof group, "bench-e2e-%s", suffix);
    snprintf(prefix, sizeof prefix, "bench:%s", suffix);
    snprintf(stint, sizeof stint, "%s/stint", bin_dir);
    snprintf(ingest, sizeof ingest, "%s/stint-ingest", bin_dir);
    st_kafka_opts_t ko = {brokers, "bench", NULL, 0};
    const char *topics[] = {raw, out, dlq};
    if (st_kafka_create_topics(&ko, topics, 3, 6, errstr, sizeof errstr) != 0) {
        fprintf(stderr, "bench: %s\n", errstr);
        return -1;
    }
    char *ing_argv[] = {ingest,
                        "-b",
                        (char *)brokers,
                        "--in.topic",
                        raw,
                        "--out.topic",
                        out,
                        "--dlq.topic",
                        dlq,
                        "--redis.prefix",
                        prefix,
                        "-G",
                        group,
                        "--dedup.ttl_s",
                        "120",
                        "--log.level",
                        "warn",
                        "-X",
                        "auto.commit.interval.ms=100",
                        NULL};
    pid_t ing = spawn(ing_argv, log);
    sleep(3); /* join the group before the clock starts */
    char *rep_argv[] = {
        stint,     "replay", "--data",           (char *)data, "-b",         (char *)brokers,
        "--topic", raw,      "--profiles-topic", "",           "--progress", "never",
        "-q",      NULL};
    int64_t t0 = st_time_mono_ms();
    int rc = wait_rss(spawn(rep_argv, log), NULL);
    long long n = st_kafka_topic_end_offsets(&ko, raw, errstr, sizeof errstr), committed = -1;
    int64_t deadline = st_time_mono_ms() + 600000;
    while (rc == 0 && st_time_mono_ms() < deadline &&
           (committed = st_kafka_group_committed(&ko, group, raw, errstr, sizeof errstr)) < n)
        usleep(50000);
    double s = (double)(st_time_mono_ms() - t0) / 1000.0;
    kill(ing, SIGTERM);
    long ing_rss = 0;
    int irc = wait_rss(ing, &ing_rss);
    long long n_out = st_kafka_topic_end_offsets(&ko, out, errstr, sizeof errstr);
    printf("replay + ingest:    %lld listens in %.2f s = %.0f events/s end to end (until all "
           "committed; auto-commit every 0.1 s), %lld Listen records out, ingest peak RSS %.1f MB, "
           "exits %d/%d\n",
           committed, s, s > 0 ? (double)committed / s : 0.0, n_out, (double)ing_rss / 1024.0, rc,
           irc);
    delete_topics(topics, 3);
    return rc == 0 && irc == 0 && committed == n ? 0 : -1;
}

int main(int argc, char **argv)
{
    const char *users = "200", *days = "300", *rss_data = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--users"))
            users = argv[i + 1];
        else if (!strcmp(argv[i], "--days"))
            days = argv[i + 1];
        else if (!strcmp(argv[i], "--rss-data"))
            rss_data = argv[i + 1];
    }
    if (getenv("STINT_KAFKA_BROKERS"))
        brokers = getenv("STINT_KAFKA_BROKERS");
    st_log_init("bench");
    find_bin_dir();
    char suffix[64], log[256], topic[160], data[512];
    snprintf(suffix, sizeof suffix, "%d-%lld", (int)getpid(),
             (long long)st_time_wall_ms() % 100000000);
    snprintf(log, sizeof log, "%s/bench-replay-ingest-%d.log",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (int)getpid());
    snprintf(topic, sizeof topic, "bench.replay.%s", suffix);
    const char *topics[] = {topic};
    int rc = 0;

    if (rss_data) {
        rc = replay_only(rss_data, topic, log) < 0;
        delete_topics(topics, 1);
        printf("(logs: %s)\n", log);
        return rc;
    }
    snprintf(data, sizeof data, "%s/bench-replay-ingest-data-%d",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (int)getpid());
    char stint[1100];
    snprintf(stint, sizeof stint, "%s/stint", bin_dir);
    char *gen_argv[] = {stint,        "gen",   "--users", (char *)users, "--days",
                        (char *)days, "--out", data,      NULL};
    if (wait_rss(spawn(gen_argv, log), NULL) != 0) {
        fprintf(stderr, "bench: stint gen failed (see %s)\n", log);
        return 1;
    }
    printf("dataset: stint gen --users %s --days %s\n", users, days);
    if (replay_only(data, topic, log) < 0)
        rc = 1;
    delete_topics(topics, 1);
    if (end_to_end(data, suffix, log) != 0)
        rc = 1;
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", data);
    if (system(cmd) != 0)
        fprintf(stderr, "bench: could not remove %s\n", data);
    printf("(logs: %s)\n", log);
    return rc;
}
