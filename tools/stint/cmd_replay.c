/* cmd_replay.c - `stint replay`: publishes a Last.fm 1K directory to Kafka, the listens as JSON to
 * listens.raw in global event-time order (st_merge, constant memory), optionally paced by event
 * time, and the profiles as Avro UserProfile to users.profiles. Exit: 0 when every listen was sent
 * and acknowledged, 1 on a failure (a delivery failed, a file or the broker cannot be used), 2 on
 * a usage error, 130 when interrupted (what was sent is acknowledged first). Malformed lines are
 * skipped, reported with file:line (st_merge / st_lastfm) and counted in the summary. */
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "commands.h"
#include "st_avro.h"
#include "st_buf.h"
#include "st_config.h"
#include "st_kafka.h"
#include "st_lastfm.h"
#include "st_lifecycle.h"
#include "st_listen.h"
#include "st_log.h"
#include "st_merge.h"
#include "st_records.h"
#include "st_time.h"

#define PROGRESS_EVERY_MS 250
/* The producer's local queue: small enough to bound memory (records are ~200 bytes), large
 * enough to keep the broker busy. */
#define REPLAY_QUEUE_MESSAGES "100000"
#define REPLAY_QUEUE_KBYTES   "65536"

typedef struct {
    char *data;
    double speed;
    bool max;
    int64_t limit;
    char *from;
    char *until;
    char *topic;
    char *profiles_topic;
    char *kafka_brokers;
    char *schemas_dir;
    char *schema_registry_url;
    char *log_level;
    int64_t bad_lines_logged;
    char *progress;
    int64_t partitions;
} replay_config_t;

#define OFF(f) offsetof(replay_config_t, f)
static const st_config_entry_t replay_table[] = {
    {"data", ST_CFG_STRING, NULL, ST_CFG_NOBOUNDS, OFF(data), false, 'd',
     "Last.fm 1K directory (or the listens .tsv itself, then no profiles are published); "
     "required"},
    {"speed", ST_CFG_DOUBLE, "0", 0, 1e12, OFF(speed), false, 0,
     "pace by event time, X times faster than real time (0 = as fast as possible)"},
    {"max", ST_CFG_BOOL, "false", ST_CFG_NOBOUNDS, OFF(max), false, 0,
     "as fast as possible (the default; overrides --speed)"},
    {"limit", ST_CFG_INT, "0", 0, 9e18, OFF(limit), false, 'n', "stop after N listens (0 = all)"},
    {"from", ST_CFG_STRING, NULL, ST_CFG_NOBOUNDS, OFF(from), false, 0,
     "skip listens before this ISO-8601 time"},
    {"until", ST_CFG_STRING, NULL, ST_CFG_NOBOUNDS, OFF(until), false, 0,
     "stop at the first listen at or after this ISO-8601 time"},
    {"topic", ST_CFG_STRING, "listens.raw", ST_CFG_NOBOUNDS, OFF(topic), false, 't',
     "topic of the listens (JSON)"},
    {"profiles-topic", ST_CFG_STRING, "users.profiles", ST_CFG_NOBOUNDS, OFF(profiles_topic), false,
     0, "topic of the profiles (Avro UserProfile); empty = do not publish profiles"},
    {"kafka.brokers", ST_CFG_STRING, "127.0.0.1:19092", ST_CFG_NOBOUNDS, OFF(kafka_brokers), false,
     'b', "Kafka bootstrap servers (host:port,...)"},
    {"schemas.dir", ST_CFG_STRING, STINT_SOURCE_DIR "/schemas", ST_CFG_NOBOUNDS, OFF(schemas_dir),
     false, 0, "directory of the .avsc files and ids.conf"},
    {"schema.registry.url", ST_CFG_STRING, ST_SCHEMA_REGISTRY_URL_DEFAULT, ST_CFG_NOBOUNDS,
     OFF(schema_registry_url), false, 0, ST_SCHEMA_REGISTRY_URL_HELP},
    {"log.level", ST_CFG_STRING, "info", ST_CFG_NOBOUNDS, OFF(log_level), false, 0,
     "debug, info, warn or error"},
    {"bad-lines-logged", ST_CFG_INT, "20", -1, 1e15, OFF(bad_lines_logged), false, 0,
     "malformed lines reported individually with file:line per file (-1 = all)"},
    {"progress", ST_CFG_STRING, "auto", ST_CFG_NOBOUNDS, OFF(progress), false, 0,
     "auto (a bar when stderr is a terminal), always or never"},
    {"partitions", ST_CFG_INT, "6", 1, 10000, OFF(partitions), false, 0,
     "partitions of a topic that does not exist yet (it is created; existing ones are kept)"},
    {NULL, 0, NULL, 0, 0, 0, false, 0, NULL},
};

typedef struct {
    replay_config_t cfg;
    st_producer_t *producer;
    rd_kafka_t *rk;
    int64_t from_ms, until_ms; /* INT64_MIN / INT64_MAX when unset */
    bool bar;
    /* progress */
    uint64_t total;   /* valid listens in the file (the bar's 100 %) */
    uint64_t read;    /* listens taken from the merger */
    uint64_t sent;    /* listens queued to the producer */
    uint64_t skipped; /* before --from */
    uint64_t profiles_sent;
    uint64_t profile_bad;
    int64_t start_mono_ms;
    int64_t last_bar_ms;
} replay_t;

static void print_bar(replay_t *r, bool final)
{
    int64_t now = st_time_mono_ms();
    if (!final && now - r->last_bar_ms < PROGRESS_EVERY_MS)
        return;
    r->last_bar_ms = now;
    double elapsed_s = (double)(now - r->start_mono_ms) / 1000.0;
    double rate = elapsed_s > 0 ? (double)r->sent / elapsed_s : 0.0;
    uint64_t goal = r->total, progress = r->read;
    if (r->cfg.limit > 0 && (uint64_t)r->cfg.limit < goal) {
        goal = (uint64_t)r->cfg.limit;
        progress = r->sent;
    }
    double done = goal ? (double)progress / (double)goal : 1.0;
    if (done > 1.0)
        done = 1.0;
    char bar[31];
    int filled = (int)(done * 30.0);
    for (int i = 0; i < 30; i++)
        bar[i] = i < filled ? '#' : '.';
    bar[30] = '\0';
    double progress_rate = elapsed_s > 0 ? (double)progress / elapsed_s : 0.0;
    long eta_s = !final && progress_rate > 0 && goal > progress
                     ? (long)((double)(goal - progress) / progress_rate)
                     : 0;
    fprintf(stderr,
            "\r[%s] %5.1f%%  %" PRIu64 " sent  %.0f ev/s  in flight %" PRIu64
            "  ETA %ld:%02ld:%02ld ",
            bar, done * 100.0, r->sent, rate, r->producer ? st_producer_in_flight(r->producer) : 0,
            eta_s / 3600, eta_s / 60 % 60, eta_s % 60);
    if (final)
        fputc('\n', stderr);
    fflush(stderr);
}

/* Waits, serving delivery reports, until the monotonic clock reaches target_mono_ms. */
static void pace_until(replay_t *r, int64_t target_mono_ms)
{
    for (;;) {
        int64_t left = target_mono_ms - st_time_mono_ms();
        if (left <= 0 || st_lifecycle_stopping())
            return;
        rd_kafka_poll(r->rk, (int)(left > 100 ? 100 : left));
        if (r->bar)
            print_bar(r, false);
    }
}

/* After a failed send: a stop request while the local queue was full is an interruption
 * (0, err cleared: the caller reports "interrupted"), anything else a failure (-1). */
static int stopped_while_full(st_err_t *err)
{
    if (!st_lifecycle_stopping())
        return -1;
    st_err_clear(err);
    return 0;
}

static int send_profiles(replay_t *r, st_avro_registry_t *reg, st_err_t *err)
{
    char errstr[512];
    struct stat sb;
    if (stat(r->cfg.data, &sb) == 0 && !S_ISDIR(sb.st_mode)) { /* the listens file itself */
        st_log_info("profiles_skipped", "reason=\"--data is a file, not the dataset's directory\"");
        return 0;
    }
    st_lastfm_reader_t *rd =
        st_lastfm_reader_open(r->cfg.data, ST_LASTFM_PROFILES, errstr, sizeof errstr);
    if (!rd) {
        st_log_warn("profiles_skipped", "error=\"%s\"", errstr);
        return 0;
    }
    st_lastfm_reader_set_log_limit(
        rd, r->cfg.bad_lines_logged < 0 ? UINT64_MAX : (uint64_t)r->cfg.bad_lines_logged);
    st_avro_codec_t *codec =
        st_avro_codec_new(reg, "UserProfile", r->cfg.profiles_topic, errstr, sizeof errstr);
    if (!codec) {
        st_lastfm_reader_destroy(rd);
        st_err_set(err, ST_ERR_AVRO, ST_DISP_FATAL, "UserProfile codec: %s", errstr);
        return -1;
    }
    st_buf_t buf = ST_BUF_INIT;
    st_lastfm_profile_t p;
    int rc = 0;
    while (!st_lifecycle_stopping() && (rc = st_lastfm_reader_next_profile(rd, &p, err)) == 1) {
        char gender[2] = {p.gender, '\0'};
        st_rec_profile_t rec = {
            .user_id = {p.user_id.ptr, p.user_id.len},
            .gender = st_str(p.gender ? gender : NULL),
            .age = {p.age >= 0, p.age},
            .country = {p.country.len ? p.country.ptr : NULL, p.country.len},
            .registered_ms = {p.registered_s != 0, p.registered_s * 1000},
        };
        if (st_rec_profile_encode(codec, &rec, &buf, err) != 0 ||
            st_producer_send(r->producer, r->cfg.profiles_topic, -1, p.user_id.ptr, p.user_id.len,
                             buf.data, buf.len, err) != 0) {
            rc = stopped_while_full(err);
            break;
        }
        r->profiles_sent++;
    }
    r->profile_bad = st_lastfm_reader_stats(rd)->bad;
    st_buf_free(&buf);
    st_avro_codec_destroy(codec);
    st_lastfm_reader_destroy(rd);
    return rc < 0 ? -1 : 0;
}

static int send_listens(replay_t *r, st_merge_t *m, st_err_t *err)
{
    st_buf_t json = ST_BUF_INIT;
    st_lastfm_listen_t rec;
    int64_t first_ts = INT64_MIN, base_mono_ms = 0;
    int rc = 0;
    while (!st_lifecycle_stopping() && (rc = st_merge_next(m, &rec, err)) == 1) {
        r->read++;
        if (rec.ts_ms < r->from_ms) {
            r->skipped++;
            continue;
        }
        if (rec.ts_ms >= r->until_ms) {
            rc = 0;
            break;
        }
        if (r->cfg.speed > 0 && !r->cfg.max) {
            if (first_ts == INT64_MIN) {
                first_ts = rec.ts_ms;
                base_mono_ms = st_time_mono_ms();
            }
            double wait_ms = (double)(rec.ts_ms - first_ts) / r->cfg.speed;
            pace_until(r, base_mono_ms + (int64_t)(wait_ms < 1e15 ? wait_ms : 1e15));
        }
        st_buf_reset(&json);
        if (st_listen_format_json(&rec, &json) != 0) {
            st_err_nomem(err);
            rc = -1;
            break;
        }
        if (st_producer_send(r->producer, r->cfg.topic, -1, rec.user_id.ptr, rec.user_id.len,
                             json.data, json.len, err) != 0) {
            rc = stopped_while_full(err);
            break;
        }
        r->sent++;
        /* A failed delivery stops the replay (the final wait says why) and drops what is still
         * queued locally: going on would publish the rest after a hole, whose listens a re-run
         * would then make late. */
        if (st_producer_failed(r->producer) > 0) {
            rd_kafka_purge(r->rk, RD_KAFKA_PURGE_F_QUEUE);
            rc = -1;
            break;
        }
        if ((r->sent & 1023) == 0) {
            rd_kafka_poll(r->rk, 0);
            if (r->bar)
                print_bar(r, false);
        }
        if (r->cfg.limit > 0 && r->sent >= (uint64_t)r->cfg.limit) {
            rc = 0;
            break;
        }
    }
    st_buf_free(&json);
    return rc < 0 ? -1 : 0;
}

static int parse_time(const char *key, const char *s, int64_t unset, int64_t *out)
{
    if (!s || !*s) {
        *out = unset;
        return 0;
    }
    if (st_time_parse_iso8601(s, strlen(s), out) != 0) {
        fprintf(stderr,
                "stint replay: --%s: \"%s\" is not an ISO-8601 time (e.g. 2009-01-01T00:00:00Z)\n",
                key, s);
        return -1;
    }
    return 0;
}

/* Prints the one summary line (stdout; status ok, interrupted or FAILED) and the bad lines by
 * reason (stderr, if any). */
static void print_summary(const replay_t *r, const st_merge_t *m, const char *status)
{
    const st_merge_stats_t *ms = m ? st_merge_stats(m) : NULL;
    double elapsed_s = (double)(st_time_mono_ms() - r->start_mono_ms) / 1000.0;
    printf("replay: %s listens_sent=%" PRIu64 " profiles_sent=%" PRIu64
           " skipped_before_from=%" PRIu64 " bad_lines=%" PRIu64 " bad_profile_lines=%" PRIu64
           " users=%" PRIu64 " inversions=%" PRIu64 " elapsed_s=%.1f events_per_s=%.0f topic=%s\n",
           status, r->sent, r->profiles_sent, r->skipped, ms ? ms->lines.bad : 0, r->profile_bad,
           ms ? ms->users : 0, ms ? ms->inversions : 0, elapsed_s,
           elapsed_s > 0 ? (double)r->sent / elapsed_s : 0.0, r->cfg.topic);
    if (ms && ms->lines.bad > 0) {
        fprintf(stderr, "stint replay: %" PRIu64 " malformed listen lines skipped:", ms->lines.bad);
        for (int k = 1; k < ST_LASTFM_REASON_COUNT; k++)
            if (ms->lines.by_reason[k])
                fprintf(stderr, " %s=%" PRIu64, st_lastfm_reason_name((st_lastfm_reason_t)k),
                        ms->lines.by_reason[k]);
        fprintf(stderr, " (each reported above with file:line%s)\n",
                r->cfg.bad_lines_logged >= 0 && ms->lines.bad > (uint64_t)r->cfg.bad_lines_logged
                    ? " up to --bad-lines-logged; -1 lists all"
                    : "");
    }
}

static int run(replay_t *r, st_config_t *cfg)
{
    char errstr[512];
    st_err_t err = {0};
    st_merge_t *m = NULL;
    st_avro_registry_t *reg = NULL;
    int rc = 1;

    size_t nuser;
    const st_config_prop_t *user_props = st_config_kafka_props(cfg, &nuser);
    st_config_prop_t *props = calloc(nuser + 2, sizeof *props);
    if (!props)
        return 1;
    props[0] = (st_config_prop_t){"queue.buffering.max.messages", REPLAY_QUEUE_MESSAGES};
    props[1] = (st_config_prop_t){"queue.buffering.max.kbytes", REPLAY_QUEUE_KBYTES};
    for (size_t i = 0; i < nuser; i++)
        props[i + 2] = user_props[i]; /* -X comes last, so it overrides ours */
    st_kafka_opts_t ko = {r->cfg.kafka_brokers, "stint-replay", props, nuser + 2};

    r->start_mono_ms = st_time_mono_ms();
    if (r->bar)
        fprintf(stderr, "indexing %s ...\n", r->cfg.data);
    st_merge_opts_t mo = {0};
    mo.log_max = r->cfg.bad_lines_logged < 0 ? UINT64_MAX : (uint64_t)r->cfg.bad_lines_logged;
    mo.quiet = r->cfg.bad_lines_logged == 0;
    m = st_merge_open(r->cfg.data, &mo, errstr, sizeof errstr);
    if (!m) {
        fprintf(stderr, "stint replay: %s\n", errstr);
        goto done;
    }
    r->total = st_merge_stats(m)->lines.good;

    char profiles[300]; /* users.profiles is compacted (deploy/topics.conf) */
    snprintf(profiles, sizeof profiles, "%s:compact",
             r->cfg.profiles_topic ? r->cfg.profiles_topic : "");
    const char *topics[2] = {r->cfg.topic, profiles};
    size_t ntopics = r->cfg.profiles_topic && *r->cfg.profiles_topic ? 2 : 1;
    if (st_kafka_create_topics(&ko, topics, ntopics, (int)r->cfg.partitions, errstr,
                               sizeof errstr) != 0) {
        fprintf(stderr, "stint replay: %s\n", errstr);
        goto done;
    }
    r->producer = st_producer_new(&ko, errstr, sizeof errstr);
    if (!r->producer) {
        fprintf(stderr, "stint replay: %s\n", errstr);
        goto done;
    }
    r->rk = st_producer_handle(r->producer);

    if (r->cfg.profiles_topic && *r->cfg.profiles_topic) {
        reg = st_avro_registry_new(r->cfg.schemas_dir, r->cfg.schema_registry_url, errstr,
                                   sizeof errstr);
        if (!reg) {
            fprintf(stderr, "stint replay: schemas: %s\n", errstr);
            goto done;
        }
        if (send_profiles(r, reg, &err) != 0)
            goto done;
    }
    if (send_listens(r, m, &err) != 0)
        goto done;
    rc = 0;
done:
    if (r->producer) {
        /* Wait for every acknowledgement; after a stop request, 10 s at most (a second signal
         * exits at once). */
        st_err_t werr = {0};
        int64_t stop_deadline_ms = -1;
        for (;;) {
            if (r->bar)
                print_bar(r, false);
            /* Failures are reported once, by the call that sees them: keep the first. */
            if (st_producer_wait(r->producer, 200, &werr) == 0)
                break;
            if (werr.code != ST_ERR_TIMEOUT)
                break;
            if (st_lifecycle_stopping()) {
                if (stop_deadline_ms < 0)
                    stop_deadline_ms = st_time_mono_ms() + 10000;
                else if (st_time_mono_ms() > stop_deadline_ms)
                    break;
            }
            st_err_clear(&werr);
        }
        if (werr.code != ST_ERR_NONE) {
            st_err_set(&err, werr.code, st_err_disp(&werr), "%s", werr.text);
            rc = 1;
        }
    }
    if (r->bar && r->producer)
        print_bar(r, true);
    if (err.code != ST_ERR_NONE)
        fprintf(stderr, "stint replay: %s\n", err.text);
    const char *status = rc != 0 ? "FAILED" : "ok";
    if (rc == 0 && st_lifecycle_stopping()) {
        /* Everything sent was acknowledged, but not everything was sent. */
        status = "interrupted";
        rc = 130;
    }
    if (r->producer) { /* listens dropped from the queue after a failure were never sent */
        uint64_t purged = st_producer_purged(r->producer);
        r->sent -= purged < r->sent ? purged : r->sent;
    }
    if (m)
        print_summary(r, m, status);
    st_producer_destroy(r->producer); /* flushes what is left (bounded) */
    st_avro_registry_destroy(reg);
    st_merge_destroy(m);
    free(props);
    return rc;
}

int cmd_replay(int argc, char **argv)
{
    static replay_t r;
    char errstr[512];
    st_log_level_t level;
    int rc = 2;

    memset(&r, 0, sizeof r);
    st_config_t *cfg = st_config_new(
        "stint replay", "Publishes a Last.fm 1K dataset: listens as JSON in event-time "
                        "order, profiles as Avro.");
    if (st_config_add_table(cfg, replay_table, &r.cfg, errstr, sizeof errstr) != 0) {
        fprintf(stderr, "stint replay: %s\n", errstr);
        st_config_destroy(cfg);
        return 1;
    }
    switch (st_config_load(cfg, argc, argv, NULL, errstr, sizeof errstr)) {
    case ST_CONFIG_EXIT:
        rc = 0;
        goto out;
    case ST_CONFIG_USAGE:
        fprintf(stderr, "stint replay: %s\n\n", errstr);
        st_config_usage(cfg, stderr);
        goto out;
    case ST_CONFIG_OK:
        break;
    }
    if (!r.cfg.data || !*r.cfg.data) {
        fprintf(stderr, "stint replay: --data DIR is required\n\n");
        st_config_usage(cfg, stderr);
        goto out;
    }
    if (st_log_parse_level(r.cfg.log_level, &level) != 0) {
        fprintf(stderr, "stint replay: log.level: \"%s\" is not debug, info, warn or error\n",
                r.cfg.log_level);
        goto out;
    }
    if (parse_time("from", r.cfg.from, INT64_MIN, &r.from_ms) != 0 ||
        parse_time("until", r.cfg.until, INT64_MAX, &r.until_ms) != 0)
        goto out;
    if (r.from_ms >= r.until_ms) {
        fprintf(stderr, "stint replay: --from (%s) is not before --until (%s): nothing to send\n",
                r.cfg.from, r.cfg.until);
        goto out;
    }
    if (strcmp(r.cfg.progress, "auto") == 0)
        r.bar = isatty(STDERR_FILENO);
    else if (strcmp(r.cfg.progress, "always") == 0 || strcmp(r.cfg.progress, "never") == 0)
        r.bar = r.cfg.progress[0] == 'a';
    else {
        fprintf(stderr, "stint replay: --progress: \"%s\" is not auto, always or never\n",
                r.cfg.progress);
        goto out;
    }
    st_log_set_level(level);
    st_lifecycle_install();
    rc = run(&r, cfg);
out:
    st_config_destroy(cfg);
    return rc;
}
