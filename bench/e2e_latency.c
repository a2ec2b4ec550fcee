/* bench/e2e_latency.c - end-to-end latency of the live pipeline on the local Kafka + Redis: JSON
 * listens published at a steady rate (timestamps = the wall clock, so they look live) through
 * stint-ingest -> stint-enricher -> stint-sessionizer -> stint-predictor, all four started here on
 * topics, groups and a Redis prefix of their own. Prints figures only; never fails on time.
 *
 * Latency of a session = arrival of its first Prediction at this program's consumer - the moment
 * the listen that opens it was handed to the producer. The same consumer reads the ingest,
 * enricher and sessionizer outputs too, and each of their records' CreateTime (set when the
 * service produced it) gives the time spent up to that stage.
 *
 * Load: `users` active users listen in turn, so one user's listens are users/rate seconds apart.
 * After `listens-per-user` listens a user stops and a new user takes the slot (staggered), so one
 * listen in listens-per-user opens a session, at a steady rate. The warm-up lasts at least one
 * round of the users (every slot's first listen opens a session) and its sessions are not measured.
 * No Last.fm key: the enricher passes unknown durations. No model bundle: BASELINE predictions.
 *
 *   bench-e2e_latency [--rates 1000,5000] [--seconds 30] [--warmup 5] [--drain 10]
 *                     [--users 20000] [--listens-per-user 5] [--partitions 6]
 *                     [--idle-flush-ms 1000] [--arg SERVICE:ARG]...
 * --arg passes ARG to one service (ingest, enricher, sessionizer, predictor) or to all, e.g.
 * --arg all:--batch.timeout_ms=20 --arg sessionizer:--session.grace_ms=0. Logs stay in /tmp. */
#define _GNU_SOURCE
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>

#include "st_avro.h"
#include "st_itest.h"
#include "st_log.h"
#include "st_records.h"

#define MAX_RATES 5
#define MAX_ARGS  32
#define N_SVC     4

static const char *const svc_names[N_SVC] = {"ingest", "enricher", "sessionizer", "predictor"};

static struct {
    double rates[MAX_RATES];
    int nrates;
    double seconds, warmup_s, drain_s;
    long users;
    int per_user;
    int partitions;
    long idle_flush_ms;
    const char *extra[MAX_ARGS]; /* "service:arg" */
    int nextra;
} opt = {{1000, 5000}, 2, 30, 5, 10, 20000, 5, 6, 1000, {0}, 0};

static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
    (void)sig;
    if (stopping)
        _exit(130);
    stopping = 1;
}

static int64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* One session this program opened: what it sent, and when each stage's record of it was seen. */
typedef struct {
    char sid[48];    /* "<user_id>:<start_ms>", the session_id the sessionizer gives it */
    int64_t sent_us; /* wall clock when the opening listen went to the producer */
    int64_t
        stage_ms[4]; /* CreateTime of its Listen, EnrichedListen, OPENED, Prediction; 0 = unseen */
    int64_t made_ms; /* the first Prediction's made_at_ms */
    int64_t got_us;  /* arrival of the first Prediction; 0 = none */
    int n_pred, n_opened; /* Predictions and OPENED events received for it */
    bool measured;        /* opened in the measured window (not the warm-up) */
} sess_t;

enum { ST_LISTEN, ST_ENRICHED, ST_OPENED, ST_PREDICTION };

/* One run at one rate: names, the session table (shared by the pacer and the consumer under mu),
 * counters. */
typedef struct {
    double rate;
    char suffix[64], prefix[96], model_dir[160], logs[N_SVC][192], groups[N_SVC][128],
        reader_group[128];
    char raw[128], listens[128], listens_dlq[128], enriched[128], enriched_dlq[128], sessions[128],
        late[128], sessions_dlq[128], predictions[128], outcomes[128], predictions_dlq[128];
    pid_t pids[N_SVC];
    long n_warm, n_meas;            /* listens to send in the warm-up and in the measured window */
    long sent_warm, sent_meas;      /* listens sent */
    int64_t meas_t0_us, meas_t1_us; /* monotonic: first and after the last measured send */
    atomic_bool pacer_done;
    bool pacer_failed;

    pthread_mutex_t mu;
    sess_t *sess;
    size_t nsess, cap;
    uint32_t *index; /* open addressing: 0 = empty, else sess index + 1 */
    size_t index_size;
    long n_meas_sess, n_meas_with_pred;
    long n_pred_total, n_pred_unmatched, n_corrected, n_retracted, n_opened_total, n_closed,
        n_opened_repeats;
} run_t;

static size_t sess_slot(const run_t *r, const char *sid, size_t len, bool *found)
{
    size_t mask = r->index_size - 1, i = (size_t)st_hash64(sid, len, 7) & mask;
    while (r->index[i] != 0) {
        const sess_t *s = &r->sess[r->index[i] - 1];
        if (strlen(s->sid) == len && memcmp(s->sid, sid, len) == 0) {
            *found = true;
            return i;
        }
        i = (i + 1) & mask;
    }
    *found = false;
    return i;
}

/* The session of sid, or NULL. Caller holds r->mu. */
static sess_t *sess_find(run_t *r, const char *sid, size_t len)
{
    bool found;
    size_t i = sess_slot(r, sid, len, &found);
    return found ? &r->sess[r->index[i] - 1] : NULL;
}

/* Adds a session (the table is sized for the whole run; a full table drops it). Takes r->mu. */
static void sess_add(run_t *r, const char *sid, int64_t sent_us, bool measured)
{
    pthread_mutex_lock(&r->mu);
    bool found;
    size_t i = sess_slot(r, sid, strlen(sid), &found);
    if (!found && r->nsess < r->cap) {
        sess_t *s = &r->sess[r->nsess];
        memset(s, 0, sizeof *s);
        snprintf(s->sid, sizeof s->sid, "%s", sid);
        s->sent_us = sent_us;
        s->measured = measured;
        r->index[i] = (uint32_t)++r->nsess;
        r->n_meas_sess += measured;
    }
    pthread_mutex_unlock(&r->mu);
}

/* Listen s of the load: the user slot, the user's generation in it, and whether it opens a
 * session (a user's first listen). Slots are staggered so that each round renews users/k slots. */
static bool listen_of(long s, long *slot, long *gen)
{
    long sl = s % opt.users, round = s / opt.users, off = sl % opt.per_user;
    *slot = sl;
    *gen = (round + off) / opt.per_user;
    return round == 0 || (round + off) % opt.per_user == 0;
}

static void *pace(void *arg)
{
    run_t *r = arg;
    char errstr[512], uid[48], sid[96], json[256];
    st_kafka_opts_t ko = itest_kafka();
    st_producer_t *prod = st_producer_new(&ko, errstr, sizeof errstr);
    if (!prod || st_producer_prepare_topic(prod, r->raw, 10000, errstr, sizeof errstr) != 0) {
        fprintf(stderr, "bench-e2e_latency: producer: %s\n", errstr);
        st_producer_destroy(prod);
        r->pacer_failed = true;
        r->pacer_done = true;
        return NULL;
    }
    long total = r->n_warm + r->n_meas, i = 0;
    int64_t t0 = st_time_mono_us();
    st_err_t err = {0};
    /* Send whatever is due, then sleep 1 ms: a busy-waiting pacer would take a core from the
     * services and the broker on a small machine. */
    while (i < total && !stopping) {
        long due = (long)((double)(st_time_mono_us() - t0) * r->rate / 1e6) + 1;
        for (; i < total && i < due; i++) {
            long slot, gen;
            bool opens = listen_of(i, &slot, &gen);
            int klen = snprintf(uid, sizeof uid, "u%06ldg%ld", slot, gen);
            if (i == r->n_warm)
                r->meas_t0_us = st_time_mono_us();
            int64_t now_us = wall_us(), ts_ms = now_us / 1000;
            uint64_t h = st_hash64(&i, sizeof i, 3);
            int jlen =
                snprintf(json, sizeof json,
                         "{\"user_id\":\"%s\",\"timestamp\":%lld,\"artist_name\":\"Artist "
                         "%u\",\"track_name\":\"Track %u\"}",
                         uid, (long long)ts_ms, (unsigned)(h % 500), (unsigned)(h >> 32) % 5000);
            if (opens) {
                snprintf(sid, sizeof sid, "%s:%lld", uid, (long long)ts_ms);
                sess_add(r, sid, now_us, i >= r->n_warm);
            }
            if (st_producer_send(prod, r->raw, -1, uid, (size_t)klen, json, (size_t)jlen, &err) !=
                0) {
                fprintf(stderr, "bench-e2e_latency: send: %s\n", err.text);
                r->pacer_failed = true;
                goto out;
            }
            if (i >= r->n_warm)
                r->sent_meas++;
            else
                r->sent_warm++;
        }
        if (i > r->n_warm)
            r->meas_t1_us = st_time_mono_us();
        rd_kafka_poll(st_producer_handle(prod), 0);
        usleep(1000);
    }
out:
    if (st_producer_wait(prod, 30000, &err) != 0) {
        fprintf(stderr, "bench-e2e_latency: delivery: %s\n", err.text);
        r->pacer_failed = true;
    }
    st_producer_destroy(prod);
    r->pacer_done = true;
    return NULL;
}

/* argv of service k: its topics and names, then --arg extras for it. Strings are static or r's;
 * the array is NULL-terminated. */
static int svc_argv(run_t *r, int k, char *bin, char **argv)
{
    int n = 0;
    argv[n++] = bin;
#define A(x) (argv[n++] = (char *)(x))
    switch (k) {
    case 0:
        A("--in.topic"), A(r->raw), A("--out.topic"), A(r->listens), A("--dlq.topic"),
            A(r->listens_dlq);
        break;
    case 1:
        A("--in.topic"), A(r->listens), A("--out.topic"), A(r->enriched), A("--dlq.topic"),
            A(r->enriched_dlq);
        break;
    case 2:
        A("--in.topic"), A(r->enriched), A("--out.topic"), A(r->sessions), A("--late.topic"),
            A(r->late), A("--dlq.topic"), A(r->sessions_dlq);
        break;
    default:
        A("--in.topic"), A(r->sessions), A("--predictions.topic"), A(r->predictions),
            A("--outcomes.topic"), A(r->outcomes), A("--dlq.topic"), A(r->predictions_dlq),
            A("--model.dir"), A(r->model_dir), A("--model.poll_ms"), A("0");
    }
    A("-G"), A(r->groups[k]), A("--redis.prefix"), A(r->prefix);
    static char idle[48];
    if (k == 2) {
        snprintf(idle, sizeof idle, "--idle.flush_ms=%ld", opt.idle_flush_ms);
        A(idle);
    }
    size_t nl = strlen(svc_names[k]);
    for (int i = 0; i < opt.nextra && n < MAX_ARGS + 30; i++) {
        const char *e = opt.extra[i];
        if (!strncmp(e, "all:", 4))
            A(e + 4);
        else if (!strncmp(e, svc_names[k], nl) && e[nl] == ':')
            A(e + nl + 1);
    }
#undef A
    argv[n] = NULL;
    return n;
}

/* Prints the settings service k runs with that are not defaults or that bear on latency, from its
 * own --dump-config. Returns 0, or -1 when the service rejects its arguments. */
static int print_settings(run_t *r, int k, char *bin)
{
    char *argv[MAX_ARGS + 40], path[224], line[1024];
    int n = svc_argv(r, k, bin, argv);
    argv[n++] = "--dump-config";
    argv[n] = NULL;
    snprintf(path, sizeof path, "%s.config", r->logs[k]);
    remove(path);
    int rc = itest_wait(itest_spawn(argv, path), 10000);
    FILE *fp = fopen(path, "r");
    printf("  stint-%s:", svc_names[k]);
    while (fp && fgets(line, sizeof line, fp)) {
        line[strcspn(line, "\n")] = '\0';
        char *hash = strstr(line, "  # ");
        if (!hash)
            continue;
        *hash = '\0';
        bool dflt = !strcmp(hash + 4, "default");
        bool topic_or_name = strstr(line, "topic=") || !strncmp(line, "kafka.group=", 12) ||
                             !strncmp(line, "redis.prefix=", 13) ||
                             !strncmp(line, "model.dir=", 10);
        bool latency = !strncmp(line, "batch.", 6) || !strncmp(line, "session.", 8) ||
                       !strncmp(line, "idle.", 5) || !strncmp(line, "lastfm.api_key", 14);
        if ((!dflt && !topic_or_name) || latency)
            printf(" %s", line);
    }
    printf("\n");
    if (fp)
        fclose(fp);
    remove(path);
    if (rc != 0) {
        fprintf(stderr, "bench-e2e_latency: stint-%s --dump-config exited %d\n", svc_names[k], rc);
        return -1;
    }
    return 0;
}

static rd_kafka_t *reader_of(run_t *r)
{
    char errstr[512];
    st_kafka_opts_t ko = itest_kafka();
    const char *const defaults[][2] = {{"group.id", r->reader_group},
                                       {"enable.auto.commit", "false"},
                                       {"auto.offset.reset", "earliest"},
                                       {"fetch.wait.max.ms", "5"}};
    rd_kafka_conf_t *conf = st_kafka_conf_new(&ko, defaults, 4, errstr, sizeof errstr);
    rd_kafka_t *rk = conf ? rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr) : NULL;
    if (!rk) {
        fprintf(stderr, "bench-e2e_latency: consumer: %s\n", errstr);
        return NULL;
    }
    rd_kafka_poll_set_consumer(rk);
    const char *topics[] = {r->listens, r->enriched, r->sessions, r->predictions};
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(4);
    for (int i = 0; i < 4; i++)
        rd_kafka_topic_partition_list_add(l, topics[i], RD_KAFKA_PARTITION_UA);
    rd_kafka_subscribe(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    return rk;
}

typedef struct {
    st_avro_codec_t *listen, *enriched, *session, *prediction;
} codecs_t;

/* Files one record of the reader's topics under its session. */
static void take(run_t *r, codecs_t *c, const rd_kafka_message_t *m)
{
    const char *topic = rd_kafka_topic_name(m->rkt);
    int64_t got_us = wall_us(), created_ms = rd_kafka_message_timestamp(m, NULL);
    st_err_t err = {0};
    st_str_t sid_view;
    char sid[96];
    int stage = !strcmp(topic, r->listens)    ? ST_LISTEN
                : !strcmp(topic, r->enriched) ? ST_ENRICHED
                : !strcmp(topic, r->sessions) ? ST_OPENED
                                              : ST_PREDICTION;
    if (stage == ST_LISTEN || stage == ST_ENRICHED) {
        st_rec_enriched_t en;
        st_rec_listen_t *l = &en.listen;
        int rc = stage == ST_LISTEN
                     ? st_rec_listen_decode(c->listen, m->payload, m->len, l, &err)
                     : st_rec_enriched_decode(c->enriched, m->payload, m->len, &en, &err);
        if (rc != 0)
            return;
        int n = snprintf(sid, sizeof sid, "%.*s:%lld", (int)l->user_id.len, l->user_id.ptr,
                         (long long)l->listened_at_ms);
        pthread_mutex_lock(&r->mu);
        sess_t *x = sess_find(r, sid, (size_t)n);
        if (x && !x->stage_ms[stage])
            x->stage_ms[stage] = created_ms;
        pthread_mutex_unlock(&r->mu);
        return;
    }
    st_rec_prediction_t p = {0};
    if (stage == ST_OPENED) {
        st_rec_session_event_t ev;
        if (st_rec_session_event_decode(c->session, m->payload, m->len, &ev, &err) != 0)
            return;
        if (ev.kind != ST_SESSION_EVENT_OPENED) {
            r->n_closed++;
            return;
        }
        r->n_opened_total++;
        sid_view = ev.session_id;
    } else {
        if (st_rec_prediction_decode(c->prediction, m->payload, m->len, &p, &err) != 0)
            return;
        sid_view = p.session_id;
    }
    pthread_mutex_lock(&r->mu);
    sess_t *x = sess_find(r, sid_view.ptr, sid_view.len);
    if (stage == ST_OPENED) {
        if (x && x->n_opened++ == 0)
            x->stage_ms[ST_OPENED] = created_ms;
        else if (x)
            r->n_opened_repeats++;
    } else {
        r->n_pred_total++;
        /* retracted: older versions of Prediction lack it; the decoder gives its default, false. */
        if (p.retracted)
            r->n_retracted++;
        if (!x)
            r->n_pred_unmatched++;
        else if (x->n_pred++ > 0)
            r->n_corrected++;
        else {
            x->got_us = got_us;
            x->stage_ms[ST_PREDICTION] = created_ms;
            x->made_ms = p.made_at_ms;
            r->n_meas_with_pred += x->measured;
        }
    }
    pthread_mutex_unlock(&r->mu);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* "p50 X ms, p99 Y ms, max Z ms" of v (n values in µs, INT64_MAX = never arrived; sorted here). */
static void print_pcts(int64_t *v, long n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_i64);
    const char *names[] = {"p50", "p99", "max"};
    long at[] = {n / 2, (long)((double)n * 0.99), n - 1};
    for (int i = 0; i < 3; i++) {
        int64_t x = v[at[i] < n ? at[i] : n - 1];
        if (x == INT64_MAX)
            printf("%s%s none yet", i ? ", " : "", names[i]);
        else
            printf("%s%s %.1f ms", i ? ", " : "", names[i], (double)x / 1000.0);
    }
}

/* Stops the services that are still running; returns -1 when any had exited by itself or exits
 * non-zero now. */
static int stop_services(run_t *r)
{
    int rc = 0;
    for (int k = 0; k < N_SVC; k++)
        if (r->pids[k] > 0)
            kill(r->pids[k], SIGTERM);
    for (int k = 0; k < N_SVC; k++) {
        if (r->pids[k] <= 0)
            continue;
        int st = itest_wait(r->pids[k], 30000);
        if (st < 0) {
            kill(r->pids[k], SIGKILL);
            itest_wait(r->pids[k], 5000);
        }
        if (st != 0) {
            fprintf(stderr, "bench-e2e_latency: stint-%s exit %d at stop (log %s)\n", svc_names[k],
                    st, r->logs[k]);
            rc = -1;
        }
        r->pids[k] = 0;
    }
    return rc;
}

/* A service that exited during the run, or -1. */
static int dead_service(run_t *r)
{
    for (int k = 0; k < N_SVC; k++) {
        int st;
        if (r->pids[k] > 0 && waitpid(r->pids[k], &st, WNOHANG) == r->pids[k]) {
            fprintf(stderr,
                    "bench-e2e_latency: stint-%s exited during the run (status %d, log %s)\n",
                    svc_names[k], st, r->logs[k]);
            r->pids[k] = 0;
            return k;
        }
    }
    return -1;
}

static void report(run_t *r, int64_t drained_ms)
{
    st_kafka_opts_t ko = itest_kafka();
    char errstr[256];
    double meas_s = (double)(r->meas_t1_us - r->meas_t0_us) / 1e6;
    printf("e2e %.0f/s: published %ld listens in the measured %.1f s = %.0f listens/s achieved "
           "(target %.0f), after %ld warm-up listens\n",
           r->rate, r->sent_meas, meas_s, meas_s > 0 ? (double)r->sent_meas / meas_s : 0.0, r->rate,
           r->sent_warm);
    long n = 0, nw = 0, nw_pred = 0;
    int64_t *lat = calloc(r->nsess + 1, sizeof *lat), *stage = calloc(r->nsess + 1, sizeof *stage);
    for (size_t i = 0; i < r->nsess; i++) {
        const sess_t *s = &r->sess[i];
        if (!s->measured) {
            nw++;
            nw_pred += s->n_pred > 0;
            continue;
        }
        lat[n++] = s->n_pred > 0 ? s->got_us - s->sent_us : INT64_MAX;
    }
    printf("e2e %.0f/s: sessions measured %ld (opened in the window), of which with a Prediction "
           "%ld, missing %ld after a drain of %.1f s; warm-up sessions %ld (not measured), %ld "
           "with a Prediction\n",
           r->rate, n, r->n_meas_with_pred, n - r->n_meas_with_pred, (double)drained_ms / 1000.0,
           nw, nw_pred);
    printf("e2e %.0f/s: predictions received %ld, corrected (a session_id seen before) %ld, "
           "retracted %ld, not of a session sent here %ld; OPENED events %ld (repeats %ld), CLOSED "
           "%ld\n",
           r->rate, r->n_pred_total, r->n_corrected, r->n_retracted, r->n_pred_unmatched,
           r->n_opened_total, r->n_opened_repeats, r->n_closed);
    if (n > 0) {
        printf("e2e %.0f/s: latency listen produced -> Prediction received, over all %ld measured "
               "sessions (missing = none yet): ",
               r->rate, n);
        print_pcts(lat, n);
        printf("\n");
    }
    /* Where the time goes: each stage's CreateTime (ms) since the opening listen was sent. */
    const char *stage_names[] = {"ingest out (Listen)", "enricher out (EnrichedListen)",
                                 "sessionizer out (OPENED)", "predictor out (Prediction)"};
    for (int st = 0; st < 4 && n > 0; st++) {
        long m = 0;
        for (size_t i = 0; i < r->nsess; i++) {
            const sess_t *s = &r->sess[i];
            if (s->measured && s->stage_ms[st])
                stage[m++] = s->stage_ms[st] * 1000 - s->sent_us;
        }
        printf("e2e %.0f/s:   to %-30s %6ld sessions: ", r->rate, stage_names[st], m);
        if (m > 0)
            print_pcts(stage, m);
        printf("\n");
    }
    const char *dlqs[][2] = {{"ingest dlq", r->listens_dlq},
                             {"enricher dlq", r->enriched_dlq},
                             {"sessions.late", r->late},
                             {"sessionizer dlq", r->sessions_dlq},
                             {"predictor dlq", r->predictions_dlq}};
    printf("e2e %.0f/s: records in", r->rate);
    for (int i = 0; i < 5; i++)
        printf("%s %s %lld", i ? "," : "", dlqs[i][0],
               (long long)st_kafka_topic_end_offsets(&ko, dlqs[i][1], errstr, sizeof errstr));
    printf("\n");
    free(lat);
    free(stage);
}

/* One run at rate. Returns 0, or -1 when something broke. */
static int run_at(double rate, const char *bin_dir)
{
    run_t *r = calloc(1, sizeof *r);
    int rc = -1;
    rd_kafka_t *rk = NULL;
    st_avro_registry_t *reg = NULL;
    codecs_t c = {0};
    char bins[N_SVC][PATH_MAX + 32], errstr[512];
    pthread_t th;
    bool pacer_started = false;
    r->rate = rate;
    pthread_mutex_init(&r->mu, NULL);
    snprintf(r->suffix, sizeof r->suffix, "%d-%lld-r%.0f", (int)getpid(),
             (long long)st_time_wall_ms() % 100000000, rate);
    snprintf(r->prefix, sizeof r->prefix, "benchlat-%s", r->suffix);
    snprintf(r->model_dir, sizeof r->model_dir, "/tmp/bench-e2e-%s-no-model", r->suffix);
    snprintf(r->reader_group, sizeof r->reader_group, "bench-lat-reader-%s", r->suffix);
    for (int k = 0; k < N_SVC; k++) {
        snprintf(r->groups[k], sizeof r->groups[k], "bench-lat-%s-%s", svc_names[k], r->suffix);
        snprintf(r->logs[k], sizeof r->logs[k], "/tmp/bench-e2e-%s-%s.log", r->suffix,
                 svc_names[k]);
        snprintf(bins[k], sizeof bins[k], "%s/stint-%s", bin_dir, svc_names[k]);
    }
    struct {
        char *buf;
        const char *base;
    } names[] = {{r->raw, "bench.lat.raw"},
                 {r->listens, "bench.lat.listens"},
                 {r->listens_dlq, "bench.lat.listens.dlq"},
                 {r->enriched, "bench.lat.enriched"},
                 {r->enriched_dlq, "bench.lat.enriched.dlq"},
                 {r->sessions, "bench.lat.sessions"},
                 {r->late, "bench.lat.sessions.late"},
                 {r->sessions_dlq, "bench.lat.sessions.dlq"},
                 {r->predictions, "bench.lat.predictions"},
                 {r->outcomes, "bench.lat.outcomes"},
                 {r->predictions_dlq, "bench.lat.predictions.dlq"}};
    const char *topics[11];
    for (int i = 0; i < 11; i++) {
        itest_unique(names[i].buf, 128, names[i].base);
        topics[i] = names[i].buf;
    }
    /* The warm-up covers one round of the users: every slot's first listen opens a session, after
     * that one listen in per_user does. */
    double warm_s =
        opt.warmup_s > (double)opt.users / rate ? opt.warmup_s : (double)opt.users / rate;
    r->n_warm = (long)(warm_s * rate);
    if (r->n_warm < opt.users)
        r->n_warm = opt.users;
    r->n_meas = (long)(opt.seconds * rate);
    long total = r->n_warm + r->n_meas;
    r->cap = (size_t)(opt.users + total / opt.per_user + 16);
    for (r->index_size = 1024; r->index_size < 2 * r->cap; r->index_size *= 2)
        ;
    r->sess = calloc(r->cap, sizeof *r->sess);
    r->index = calloc(r->index_size, sizeof *r->index);
    if (!r->sess || !r->index) {
        fprintf(stderr, "bench-e2e_latency: out of memory\n");
        goto out;
    }

    printf(
        "e2e %.0f/s: settings: %.0f listens/s, warm-up %.1f s (%ld listens), measured %.1f s "
        "(%ld listens), drain up to %.1f s; %ld users listening in turn (a user's listens %.1f s "
        "apart), %d listens per user (= per session: one listen in %d opens one); timestamps = "
        "wall clock; %d partitions; Redis prefix %s; no Last.fm key (unknown durations), no model "
        "bundle (BASELINE)\n",
        rate, rate, warm_s, r->n_warm, opt.seconds, r->n_meas, opt.drain_s, opt.users,
        (double)opt.users / rate, opt.per_user, opt.per_user, opt.partitions, r->prefix);
    for (int k = 0; k < N_SVC; k++)
        if (print_settings(r, k, bins[k]) != 0)
            goto out;

    st_kafka_opts_t ko = itest_kafka();
    if (st_kafka_create_topics(&ko, topics, 11, opt.partitions, errstr, sizeof errstr) != 0) {
        fprintf(stderr, "bench-e2e_latency: %s (is the stack up? deploy/local/stack up)\n", errstr);
        goto out;
    }
    reg = st_avro_registry_new(STINT_SOURCE_DIR "/schemas", itest_registry_url(), errstr,
                               sizeof errstr);
    if (!reg || !(c.listen = st_avro_codec_new(reg, "Listen", NULL, errstr, sizeof errstr)) ||
        !(c.enriched = st_avro_codec_new(reg, "EnrichedListen", NULL, errstr, sizeof errstr)) ||
        !(c.session = st_avro_codec_new(reg, "SessionEvent", NULL, errstr, sizeof errstr)) ||
        !(c.prediction = st_avro_codec_new(reg, "Prediction", NULL, errstr, sizeof errstr))) {
        fprintf(stderr, "bench-e2e_latency: %s\n", errstr);
        goto out;
    }

    for (int k = 0; k < N_SVC; k++) {
        char *argv[MAX_ARGS + 40];
        svc_argv(r, k, bins[k], argv);
        remove(r->logs[k]);
        r->pids[k] = itest_spawn(argv, r->logs[k]);
    }
    if (!(rk = reader_of(r)))
        goto out;
    /* Start publishing once every service and the reader have their partitions. */
    int64_t deadline = st_time_mono_ms() + 60000;
    bool ready = false;
    while (!ready && !stopping && st_time_mono_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (m)
            rd_kafka_message_destroy(m);
        rd_kafka_topic_partition_list_t *a = NULL;
        ready = rd_kafka_assignment(rk, &a) == 0 && a->cnt > 0;
        if (a)
            rd_kafka_topic_partition_list_destroy(a);
        for (int k = 0; k < N_SVC; k++)
            ready = ready && itest_log_has(r->logs[k], "partitions_assigned");
        if (dead_service(r) >= 0)
            goto out;
    }
    if (!ready) {
        fprintf(stderr,
                "bench-e2e_latency: the services or the reader got no partitions in 60 s "
                "(logs /tmp/bench-e2e-%s-*.log)\n",
                r->suffix);
        goto out;
    }

    pthread_create(&th, NULL, pace, r);
    pacer_started = true;
    int64_t drain_t0 = 0, drained_ms = 0, next_check = 0;
    for (;;) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 50);
        if (m) {
            if (!m->err)
                take(r, &c, m);
            rd_kafka_message_destroy(m);
        }
        int64_t now = st_time_mono_ms();
        if (now >= next_check) {
            next_check = now + 500;
            if (dead_service(r) >= 0) {
                stopping = 1;
                goto out;
            }
        }
        if (stopping)
            goto out;
        if (!r->pacer_done)
            continue;
        if (!drain_t0)
            drain_t0 = now;
        drained_ms = now - drain_t0;
        pthread_mutex_lock(&r->mu);
        bool all = r->n_meas_with_pred >= r->n_meas_sess;
        pthread_mutex_unlock(&r->mu);
        if (all || drained_ms >= (int64_t)(opt.drain_s * 1000))
            break;
    }
    pthread_join(th, NULL);
    pacer_started = false;
    rc = r->pacer_failed ? -1 : 0;
    report(r, drained_ms);
out:
    if (pacer_started) {
        stopping = 1;
        pthread_join(th, NULL);
    }
    if (rk) {
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
    }
    if (stop_services(r) != 0)
        rc = -1;
    long removed = itest_redis_unlink_prefix(r->prefix);
    printf("e2e %.0f/s: %s; removed %ld Redis keys under %s; logs /tmp/bench-e2e-%s-*.log (topics "
           "go at exit)\n",
           rate, rc == 0 ? "done" : "FAILED", removed, r->prefix, r->suffix);
    st_avro_codec_destroy(c.listen);
    st_avro_codec_destroy(c.enriched);
    st_avro_codec_destroy(c.session);
    st_avro_codec_destroy(c.prediction);
    st_avro_registry_destroy(reg);
    pthread_mutex_destroy(&r->mu);
    free(r->sess);
    free(r->index);
    free(r);
    return rc;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: bench-e2e_latency [--rates 1000,5000] [--seconds 30] [--warmup 5] "
               "[--drain 10]\n"
               "                         [--users 20000] [--listens-per-user 5] [--partitions 6]\n"
               "                         [--idle-flush-ms 1000] [--arg SERVICE:ARG]...\n"
               "SERVICE is ingest, enricher, sessionizer, predictor or all; ARG is passed to it,\n"
               "e.g. --arg all:--batch.timeout_ms=20 --arg sessionizer:--session.grace_ms=0\n");
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (!v) {
            fprintf(stderr, "bench-e2e_latency: %s needs a value\n", a);
            usage(stderr);
            return 2;
        }
        i++;
        if (!strcmp(a, "--rates")) {
            char *dup = strdup(v), *save = NULL;
            opt.nrates = 0;
            for (char *t = strtok_r(dup, ",", &save); t && opt.nrates < MAX_RATES;
                 t = strtok_r(NULL, ",", &save))
                opt.rates[opt.nrates++] = atof(t);
            free(dup);
        } else if (!strcmp(a, "--seconds"))
            opt.seconds = atof(v);
        else if (!strcmp(a, "--warmup"))
            opt.warmup_s = atof(v);
        else if (!strcmp(a, "--drain"))
            opt.drain_s = atof(v);
        else if (!strcmp(a, "--users"))
            opt.users = atol(v);
        else if (!strcmp(a, "--listens-per-user"))
            opt.per_user = atoi(v);
        else if (!strcmp(a, "--partitions"))
            opt.partitions = atoi(v);
        else if (!strcmp(a, "--idle-flush-ms"))
            opt.idle_flush_ms = atol(v);
        else if (!strcmp(a, "--arg") && opt.nextra < MAX_ARGS)
            opt.extra[opt.nextra++] = v;
        else {
            fprintf(stderr, "bench-e2e_latency: unknown option %s\n", a);
            usage(stderr);
            return 2;
        }
    }
    bool bad = opt.nrates == 0 || opt.seconds <= 0 || opt.warmup_s < 0 || opt.drain_s < 0 ||
               opt.users < 1 || opt.per_user < 1 || opt.partitions < 1 || opt.idle_flush_ms < 0;
    for (int i = 0; i < opt.nrates; i++)
        bad = bad || opt.rates[i] <= 0;
    if (bad) {
        fprintf(stderr, "bench-e2e_latency: a value out of range\n");
        usage(stderr);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0); /* figures appear as they come, also through a pipe */
    st_log_init("bench");
    char exe[PATH_MAX], bin_dir[PATH_MAX];
    if (!realpath("/proc/self/exe", exe)) {
        perror("realpath");
        return 1;
    }
    snprintf(bin_dir, sizeof bin_dir, "%s/../bin", dirname(exe)); /* build/bench -> build/bin */
    /* The enricher must not call Last.fm: no key, whatever the environment says. */
    unsetenv("STINT_LASTFM_API_KEY");
    unsetenv("STINT_LASTFM_API_KEY_FILE");
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    int rc = 0;
    for (int i = 0; i < opt.nrates && !stopping; i++)
        if (run_at(opt.rates[i], bin_dir) != 0)
            rc = 1;
    return rc;
}
