/* bench/predictor: the predictor against the local broker and Redis, with a small bundle (the
 * default spec: LSTM(32), W 16) trained here on synthetic sessions. Prints figures only.
 *   latency:    sessions at a steady rate (each one's OPENED, preceded by the CLOSED of the
 *               user's previous session, as the sessionizer emits them); per OPENED the time
 *               from handing it to the producer to receiving its Prediction from the broker;
 *               p50 / p99 / max.
 *   throughput: a backlog of sessions produced first, then a fresh predictor drains it;
 *               predictions/s between the first and the last Prediction's made_at_ms, and
 *               predictions per CPU second of the predictor process (/proc/<pid>/stat, all its
 *               threads: the one-core figure, independent of other load on the machine), and
 *               how many of them the model made (OPENED events carry the last 32 sessions with
 *               their details, as the sessionizer's; only a user's first session gets the
 *               baseline).
 *   bench-predictor [rate=5000] [seconds=10] [backlog_sessions=200000] [users=10000]
 *                   [batch_max=5000] [predictor_linger_ms=5] [members=1]
 * members: the bundle's networks per prediction (spec.members). */
#define _GNU_SOURCE
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>

#include "st_avro.h"
#include "st_bundle.h"
#include "st_dataset.h"
#include "st_itest.h"
#include "st_records.h"

#define BASE_MS      1200000000000LL
#define BENCH_RECENT 32 /* sessions an OPENED carries: the sessionizer's session.recent_n */

static long n_users = 10000;
static int n_members = 1;
static st_avro_registry_t *reg;

static double length_of(long user, long round)
{
    return 300.0 + (double)(st_hash64(&user, sizeof user, (uint64_t)round) % 3600);
}

/* Encodes session seq's CLOSED of the previous round (if any) and its OPENED into prod. */
static int send_session(st_producer_t *prod, st_avro_codec_t *codec, const char *topic, long seq,
                        st_buf_t *buf)
{
    long user = seq % n_users, round = seq / n_users;
    char uid[32], sid[64];
    snprintf(uid, sizeof uid, "bu%06ld", user);
    st_err_t err = {0};
    for (int kind = round > 0 ? 0 : 1; kind < 2; kind++) {
        long r = kind == 0 ? round - 1 : round;
        long s = r * n_users + user;
        int64_t start_ms = BASE_MS + (int64_t)s * 1000;
        snprintf(sid, sizeof sid, "%s:%lld", uid, (long long)start_ms);
        st_rec_session_event_t rec = {
            .session_id = st_str(sid),
            .user_id = st_str(uid),
            .kind = kind == 0 ? ST_SESSION_EVENT_CLOSED : ST_SESSION_EVENT_OPENED,
            .start_ms = start_ms,
            .session_index = (int32_t)r,
        };
        if (kind == 0) {
            double len = length_of(user, r);
            rec.length_s = (st_opt_f64_t){true, len};
            rec.end_ms = (st_opt_i64_t){true, start_ms + (int64_t)(len * 1000)};
            rec.track_count = 5;
            rec.unknown_duration_share = (st_opt_f64_t){true, 0};
        } else if (r > 0) {
            /* the last BENCH_RECENT sessions with their details, as the sessionizer's OPENED
             * carries them (session.recent_n): the model's full input, not the baseline's */
            double *recent = rec.recent_lengths_s, sum = 0;
            int n = r < BENCH_RECENT ? (int)r : BENCH_RECENT;
            for (int i = 0; i < n; i++) {
                long rr = r - n + i;
                recent[i] = length_of(user, rr);
                rec.recent_starts_ms[i] = BASE_MS + (int64_t)(rr * n_users + user) * 1000;
                rec.recent_track_counts[i] = 5;
                rec.recent_unknown_shares[i] = 0;
                sum += recent[i];
            }
            double mean = sum / n;
            rec.n_recent_lengths = rec.n_recent_starts = (uint32_t)n;
            rec.n_recent_track_counts = rec.n_recent_unknown_shares = (uint32_t)n;
            rec.prev_session_length_s = (st_opt_f64_t){true, recent[n - 1]};
            rec.mean_session_length_s = (st_opt_f64_t){true, mean};
            rec.median_session_length_s = (st_opt_f64_t){true, mean};
            rec.gap_since_prev_s = (st_opt_f64_t){true, 600};
        }
        if (st_rec_session_event_encode(codec, &rec, buf, &err) != 0 ||
            st_producer_send(prod, topic, -1, uid, strlen(uid), buf->data, buf->len, &err) != 0) {
            fprintf(stderr, "bench-predictor: %s\n", err.text);
            return -1;
        }
    }
    return 0;
}

static int train_bundle(const char *dir)
{
    char err[512];
    st_dataset_t *ds = st_dataset_new();
    for (long u = 0; u < 300; u++) {
        char uid[32];
        snprintf(uid, sizeof uid, "bu%06ld", u);
        for (long r = 0; r < 40; r++)
            st_dataset_add_session(ds, uid, 1200000000 + r * 86400 + u, length_of(u, r), 5, 0, err,
                                   sizeof err);
    }
    st_dataset_split_cfg_t sc;
    st_dataset_split_default(&sc);
    st_bundle_spec_t spec;
    st_bundle_spec_default(&spec);
    spec.epochs = 2;
    spec.members = n_members;
    st_bundle_t *b = NULL;
    int rc = -1;
    if (st_dataset_finalize(ds, err, sizeof err) == 0 &&
        st_dataset_split(ds, &sc, err, sizeof err) == 0 &&
        (b = st_bundle_train(ds, &spec, NULL, NULL, err, sizeof err)) &&
        st_bundle_save(b, dir, NULL, err, sizeof err) == 0)
        rc = 0;
    if (rc != 0)
        fprintf(stderr, "bench-predictor: training: %s\n", err);
    st_bundle_destroy(b);
    st_dataset_destroy(ds);
    return rc;
}

static char bin[PATH_MAX + 64], model_dir[256], logpath[256], prefix[128],
    batch_max[16] = "5000", linger[32] = "linger.ms=5";

static int pin_cpu = -1; /* the one core the predictor runs on */

static pid_t start_predictor(const char *in, const char *pred, const char *out, const char *group)
{
    char *argv[] = {bin,           "--in.topic",
                    (char *)in,    "--predictions.topic",
                    (char *)pred,  "--outcomes.topic",
                    (char *)out,   "--model.dir",
                    model_dir,     "--redis.prefix",
                    prefix,        "-G",
                    (char *)group, "--batch.timeout_ms",
                    "5",           "--batch.max",
                    batch_max,     "--log.level",
                    "warn",        "-X",
                    linger,        NULL};
    /* The child (and every thread it starts) inherits the affinity at fork. */
    cpu_set_t all, one;
    sched_getaffinity(0, sizeof all, &all);
    CPU_ZERO(&one);
    CPU_SET(pin_cpu, &one);
    sched_setaffinity(0, sizeof one, &one);
    pid_t pid = itest_spawn(argv, logpath);
    sched_setaffinity(0, sizeof all, &all);
    return pid;
}

/* CPU seconds (user + system, all threads) the process has used so far, or -1. */
static double cpu_s_of(pid_t pid)
{
    char path[64], buf[2048];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *fp = fopen(path, "r");
    if (!fp)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, fp);
    fclose(fp);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    unsigned long long ut, st;
    /* after the comm field: state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
     * utime stime */
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* A consumer of topic from the beginning. */
static rd_kafka_t *consumer_of(const char *topic, const char *group)
{
    char errstr[512];
    st_kafka_opts_t ko = itest_kafka();
    const char *const defaults[][2] = {{"group.id", group},
                                       {"enable.auto.commit", "false"},
                                       {"auto.offset.reset", "earliest"},
                                       {"fetch.wait.max.ms", "5"}};
    rd_kafka_conf_t *conf = st_kafka_conf_new(&ko, defaults, 4, errstr, sizeof errstr);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_subscribe(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    return rk;
}

static int64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

typedef struct {
    const char *topic;
    st_avro_codec_t *codec;
    double rate;
    long first, count;
    int64_t *sent_us;    /* by seq - first */
    st_producer_t *prod; /* shared by the warm-up and the run: a new idempotent producer needs
                            a while before its first send, which would count as latency */
} pacer_t;

static void *pace(void *arg)
{
    pacer_t *p = arg;
    st_producer_t *prod = p->prod;
    st_buf_t buf = {0};
    int64_t t0 = st_time_mono_us();
    /* Send whatever is due, then sleep 1 ms: a busy-waiting pacer would take a core from the
     * predictor and the broker on a small machine. */
    for (long i = 0; i < p->count;) {
        long due = (long)((double)(st_time_mono_us() - t0) * p->rate / 1e6) + 1;
        for (; i < p->count && i < due; i++) {
            p->sent_us[i] = wall_us();
            send_session(prod, p->codec, p->topic, p->first + i, &buf);
        }
        rd_kafka_poll(st_producer_handle(prod), 0);
        usleep(1000);
    }
    st_err_t err = {0};
    st_producer_wait(prod, 30000, &err);
    st_buf_free(&buf);
    return NULL;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Predictions the model made (the others: the baseline) in the throughput phase. */
static long n_by_model;

/* seq of a Prediction (decoded), or -1; counts it in n_by_model when the model made it. */
static long seq_of(st_avro_codec_t *pcodec, const rd_kafka_message_t *m, int64_t *made_at_ms)
{
    st_rec_prediction_t p;
    st_err_t err = {0};
    if (st_rec_prediction_decode(pcodec, m->payload, m->len, &p, &err) != 0)
        return -1;
    n_by_model += p.predictor == ST_REC_PREDICTOR_MODEL;
    if (made_at_ms)
        *made_at_ms = p.made_at_ms;
    return (long)((p.session_start_ms - BASE_MS) / 1000);
}

int main(int argc, char **argv)
{
    double rate = argc > 1 ? atof(argv[1]) : 5000;
    int seconds = argc > 2 ? atoi(argv[2]) : 10;
    long backlog = argc > 3 ? atol(argv[3]) : 200000;
    n_users = argc > 4 ? atol(argv[4]) : 10000;
    if (argc > 5)
        snprintf(batch_max, sizeof batch_max, "%s", argv[5]);
    if (argc > 6)
        snprintf(linger, sizeof linger, "linger.ms=%d", atoi(argv[6]));
    if (argc > 7)
        n_members = atoi(argv[7]);
    char exe[PATH_MAX], errstr[512], t_in[128], t_pred[128], t_out[128], t_in2[128], t_pred2[128],
        group[128], group2[128], rgroup[128];
    if (!realpath(argv[0], exe)) {
        perror("realpath");
        return 1;
    }
    snprintf(bin, sizeof bin, "%s/../bin/stint-predictor", dirname(exe));
    snprintf(model_dir, sizeof model_dir, "/tmp/bench-predictor-%d-model", (int)getpid());
    snprintf(logpath, sizeof logpath, "/tmp/bench-predictor-%d.log", (int)getpid());
    itest_unique(t_in, sizeof t_in, "bench.pred.sessions");
    itest_unique(t_pred, sizeof t_pred, "bench.pred.predictions");
    itest_unique(t_out, sizeof t_out, "bench.pred.outcomes");
    itest_unique(t_in2, sizeof t_in2, "bench.pred.sessions2");
    itest_unique(t_pred2, sizeof t_pred2, "bench.pred.predictions2");
    itest_unique(group, sizeof group, "bench-pred");
    itest_unique(group2, sizeof group2, "bench-pred2");
    itest_unique(rgroup, sizeof rgroup, "bench-pred-reader");
    itest_unique(prefix, sizeof prefix, "benchpred");
    if (train_bundle(model_dir) != 0)
        return 1;
    /* The last core the bench may use: "on one core" is then literal for the predictor, whose
     * librdkafka threads share it too (the broker and Redis are not pinned). */
    cpu_set_t cpus;
    sched_getaffinity(0, sizeof cpus, &cpus);
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &cpus))
            pin_cpu = c;
    printf("predictor bench: the predictor runs on CPU %d only; bundle of %d network(s) per "
           "prediction\n",
           pin_cpu, n_members);
    st_kafka_opts_t ko = itest_kafka();
    const char *topics[] = {t_in, t_pred, t_out, t_in2, t_pred2};
    if (st_kafka_create_topics(&ko, topics, 5, 3, errstr, sizeof errstr) != 0) {
        fprintf(stderr, "bench-predictor: %s (is the stack up? make up)\n", errstr);
        return 1;
    }
    /* the registry the predictor it starts uses (the local stack's, or STINT_SCHEMA_REGISTRY_URL)
     */
    reg = st_avro_registry_new(STINT_SOURCE_DIR "/schemas", itest_registry_url(), errstr,
                               sizeof errstr);
    st_avro_codec_t *scodec = st_avro_codec_new(reg, "SessionEvent", t_in, errstr, sizeof errstr);
    st_avro_codec_t *pcodec = st_avro_codec_new(reg, "Prediction", NULL, errstr, sizeof errstr);
    if (!scodec || !pcodec) {
        fprintf(stderr, "bench-predictor: %s\n", errstr);
        return 1;
    }

    /* Latency: warm up with one round of users, then the paced run. */
    pid_t pid = start_predictor(t_in, t_pred, t_out, group);
    rd_kafka_t *rk = consumer_of(t_pred, rgroup);
    st_producer_t *pace_prod = st_producer_new(&ko, errstr, sizeof errstr);
    if (!pace_prod) {
        fprintf(stderr, "bench-predictor: %s\n", errstr);
        return 1;
    }
    pacer_t warm = {t_in,     scodec, rate, 0, n_users, calloc((size_t)n_users, sizeof(int64_t)),
                    pace_prod};
    pace(&warm);
    long got = 0;
    int64_t deadline = st_time_mono_ms() + 60000;
    while (got < n_users && st_time_mono_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (m && !m->err)
            got++;
        if (m)
            rd_kafka_message_destroy(m);
    }
    if (got < n_users) {
        fprintf(stderr, "bench-predictor: warm-up got %ld of %ld predictions (log %s)\n", got,
                n_users, logpath);
        kill(pid, SIGKILL);
        return 1;
    }
    long count = (long)(rate * seconds);
    pacer_t run = {t_in,     scodec, rate, n_users, count, calloc((size_t)count, sizeof(int64_t)),
                   pace_prod};
    int64_t *lat_us = calloc((size_t)count, sizeof *lat_us);
    int64_t *made_us = calloc((size_t)count, sizeof *made_us); /* to made_at_ms (ms resolution) */
    for (long i = 0; i < count; i++)
        lat_us[i] = made_us[i] = -1;
    pthread_t th;
    pthread_create(&th, NULL, pace, &run);
    long n_lat = 0;
    deadline = st_time_mono_ms() + (int64_t)seconds * 1000 + 60000;
    while (n_lat < count && st_time_mono_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (!m)
            continue;
        int64_t now = wall_us(), made = 0;
        long seq = m->err ? -1 : seq_of(pcodec, m, &made) - n_users;
        if (seq >= 0 && seq < count && lat_us[seq] < 0 && run.sent_us[seq] > 0) {
            lat_us[seq] = now - run.sent_us[seq];
            made_us[seq] = made * 1000 - run.sent_us[seq];
            n_lat++;
        }
        rd_kafka_message_destroy(m);
    }
    pthread_join(th, NULL);
    st_producer_destroy(pace_prod);
    /* Where the slow ones are: the worst latency of each second of the run. */
    printf("predictor latency: worst per second of the run (ms):");
    for (long s0 = 0; s0 < count; s0 += (long)rate) {
        int64_t worst = 0;
        for (long i = s0; i < count && i < s0 + (long)rate; i++)
            worst = lat_us[i] > worst ? lat_us[i] : worst;
        printf(" %.0f", worst / 1000.0);
    }
    printf("\npredictor latency: first 2 s, worst per 100 ms (ms):");
    for (long s0 = 0; s0 < count && s0 < 2 * (long)rate; s0 += (long)rate / 10) {
        int64_t worst = 0;
        for (long i = s0; i < count && i < s0 + (long)rate / 10; i++)
            worst = lat_us[i] > worst ? lat_us[i] : worst;
        printf(" %.0f", worst / 1000.0);
    }
    printf("\n");
    /* The run after its first 2 s, apart from any start-up pause. */
    long skip = 2 * (long)rate, n_steady = 0;
    int64_t *steady = calloc((size_t)count, sizeof *steady);
    for (long i = skip; i < count; i++)
        if (lat_us[i] >= 0)
            steady[n_steady++] = lat_us[i];
    qsort(steady, (size_t)n_steady, sizeof *steady, cmp_i64);
    if (n_steady > 0)
        printf("predictor latency after the first 2 s: p50 %.1f ms, p99 %.1f ms, max %.1f ms\n",
               steady[n_steady / 2] / 1000.0, steady[(long)((double)n_steady * 0.99)] / 1000.0,
               steady[n_steady - 1] / 1000.0);
    free(steady);
    qsort(lat_us, (size_t)count, sizeof *lat_us, cmp_i64);
    qsort(made_us, (size_t)count, sizeof *made_us, cmp_i64);
    long lost = count - n_lat;
    int64_t *ok = lat_us + lost, *mk = made_us + lost; /* the -1s sort first */
    if (n_lat > 0) {
        printf(
            "predictor latency: %.0f sessions/s for %d s (%ld OPENED + CLOSED pairs, %ld users): "
            "OPENED sent -> Prediction received p50 %.1f ms, p99 %.1f ms, max %.1f ms; "
            "missing %ld\n",
            rate, seconds, count, n_users, ok[n_lat / 2] / 1000.0,
            ok[(long)((double)n_lat * 0.99)] / 1000.0, ok[n_lat - 1] / 1000.0, lost);
        printf("predictor latency: OPENED sent -> made_at_ms p50 %.1f ms, p99 %.1f ms\n",
               mk[n_lat / 2] / 1000.0, mk[(long)((double)n_lat * 0.99)] / 1000.0);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    kill(pid, SIGTERM);
    itest_wait(pid, 30000);

    /* Throughput: a backlog, then a fresh predictor on it. */
    st_producer_t *prod = st_producer_new(&ko, errstr, sizeof errstr);
    st_avro_codec_t *scodec2 = st_avro_codec_new(reg, "SessionEvent", t_in2, errstr, sizeof errstr);
    st_buf_t buf = {0};
    /* The sessions after the warm-up's and the latency run's (same users, same Redis state):
     * new sessions, not copies of ones the predictor has seen (it would skip those). */
    for (long i = 0; i < backlog; i++)
        if (send_session(prod, scodec2, t_in2, n_users + count + i, &buf) != 0)
            return 1;
    st_err_t err = {0};
    st_producer_wait(prod, 60000, &err);
    st_producer_destroy(prod);
    char rgroup2[160];
    snprintf(rgroup2, sizeof rgroup2, "%s-2", rgroup);
    pid = start_predictor(t_in2, t_pred2, t_out, group2);
    rk = consumer_of(t_pred2, rgroup2);
    double cpu0 = -1;
    int64_t first_made = INT64_MAX, last_made = 0;
    got = 0;
    n_by_model = 0;
    deadline = st_time_mono_ms() + 300000;
    while (got < backlog && st_time_mono_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (!m)
            continue;
        int64_t made;
        if (!m->err && seq_of(pcodec, m, &made) >= 0) {
            if (got++ == 0)
                cpu0 = cpu_s_of(pid);
            first_made = made < first_made ? made : first_made;
            last_made = made > last_made ? made : last_made;
        }
        rd_kafka_message_destroy(m);
    }
    double cpu1 = cpu_s_of(pid);
    if (got > 1 && last_made > first_made) {
        printf("predictor throughput: %ld predictions (+%ld CLOSED) in %.2f s wall = %.0f "
               "predictions/s, %.0f input events/s\n",
               got, got - n_users, (double)(last_made - first_made) / 1000.0,
               (double)got * 1000.0 / (double)(last_made - first_made),
               (double)(2 * got - n_users) * 1000.0 / (double)(last_made - first_made));
        printf("predictor throughput: %ld of the %ld predictions by the model (the others by the "
               "baseline: a user's first session)\n",
               n_by_model, got);
        if (cpu0 >= 0 && cpu1 > cpu0)
            printf("predictor throughput per core: %.2f CPU s (all its threads) = %.0f predictions "
                   "per CPU second\n",
                   cpu1 - cpu0, (double)got / (cpu1 - cpu0));
    } else
        printf("predictor throughput: only %ld of %ld predictions arrived (log %s)\n", got, backlog,
               logpath);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    kill(pid, SIGTERM);
    itest_wait(pid, 30000);
    /* Remove the bench's Redis keys (all under its unique prefix). */
    redisContext *rc = itest_redis();
    char cursor[32] = "0", pattern[160];
    snprintf(pattern, sizeof pattern, "%s:*", prefix);
    long removed = 0;
    do {
        redisReply *r = redisCommand(rc, "SCAN %s MATCH %s COUNT 1000", cursor, pattern);
        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
            if (r)
                freeReplyObject(r);
            break;
        }
        snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
        for (size_t i = 0; i < r->element[1]->elements; i++) {
            redisReply *d = redisCommand(rc, "UNLINK %s", r->element[1]->element[i]->str);
            if (d)
                freeReplyObject(d);
            removed++;
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    redisFree(rc);
    printf("predictor bench: removed %ld Redis keys under %s (its topics go at exit)\n", removed,
           prefix);
    /* Its topics go at exit (st_itest.h). */
    st_buf_free(&buf);
    free(warm.sent_us);
    free(run.sent_us);
    free(lat_us);
    free(made_us);
    st_avro_codec_destroy(scodec);
    st_avro_codec_destroy(scodec2);
    st_avro_codec_destroy(pcodec);
    st_avro_registry_destroy(reg);
    return 0;
}
