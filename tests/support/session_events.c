/* session_events.c - test and bench support for the predictor (stint-session-events):
 *   produce  turns a `stint sessions` TSV (+ profiles) into the SessionEvent stream the
 *            sessionizer emits (OPENED at each start, CLOSED when the next session opens or
 *            the idle gap passes; features from st_session, as the sessionizer computes them)
 *            and produces it to a topic in event-time order, keyed by user (creating that
 *            topic and the --create ones first);
 *   offline  the MAE of a bundle over every session of the TSV, through st_bundle_input_from_row
 *            (the `stint evaluate` feature path): the number the online MAE must match;
 *   profiles produces the dataset's user profiles as UserProfile records;
 *   train    trains a default-spec bundle (st_bundle_train, optionally with clustering) with
 *            metrics.global_median_s. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "st_avro.h"
#include "st_bundle.h"
#include "st_dataset.h"
#include "st_kafka.h"
#include "st_session.h"
#include "st_time.h"

#define GAP_MS 1800000LL

typedef struct {
    int64_t at_ms;
    int user;
    int kind; /* 0 CLOSED, 1 OPENED: CLOSED first at equal times */
    size_t row;
} ev_t;

static int cmp_ev(const void *a, const void *b)
{
    const ev_t *x = a, *y = b;
    if (x->at_ms != y->at_ms)
        return x->at_ms < y->at_ms ? -1 : 1;
    if (x->user != y->user)
        return x->user < y->user ? -1 : 1;
    return x->kind - y->kind;
}

static const char *arg_of(int argc, char **argv, const char *name, const char *def)
{
    for (int i = 2; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return argv[i + 1];
    return def;
}

static st_dataset_t *load(const char *sessions, const char *profiles)
{
    char err[512];
    st_dataset_t *ds = st_dataset_new();
    if (!ds || st_dataset_load_sessions(ds, sessions, NULL, err, sizeof err) != 0 ||
        (profiles && st_dataset_load_profiles(ds, profiles, NULL, err, sizeof err) != 0) ||
        st_dataset_finalize(ds, err, sizeof err) != 0) {
        fprintf(stderr, "session-events: %s\n", err);
        st_dataset_destroy(ds);
        return NULL;
    }
    return ds;
}

static void set_opened(avro_value_t *rec, const st_dataset_t *ds, const st_dataset_row_t *r,
                       const st_session_history_t *h)
{
    const st_dataset_profile_t *p = st_dataset_profile(ds, r->user);
    st_session_features_t f;
    int64_t start_ms = r->start_s * 1000;
    st_session_features(h, start_ms, &f);
    st_avro_set_long(rec, "start_ms", start_ms);
    st_avro_set_int(rec, "session_index", (int32_t)f.session_index);
    st_avro_set_int(rec, "start_hour_utc", f.hour_utc);
    st_avro_set_int(rec, "start_weekday", f.weekday);
    st_avro_set_nullable_double(rec, "prev_session_length_s",
                                f.has_prev ? &f.prev_session_length_s : NULL);
    st_avro_set_nullable_double(rec, "mean_session_length_s",
                                f.has_prev ? &f.mean_session_length_s : NULL);
    st_avro_set_nullable_double(rec, "median_session_length_s",
                                f.has_prev ? &f.median_session_length_s : NULL);
    st_avro_set_nullable_double(rec, "gap_since_prev_s", f.has_prev ? &f.gap_since_prev_s : NULL);
    st_avro_set_double_array(rec, "recent_lengths_s", f.recent_lengths_s, f.n_recent);
    char g[2] = {p->gender, 0};
    st_avro_set_nullable_string(rec, "gender", p->gender ? g : NULL);
    int32_t age = p->age;
    st_avro_set_nullable_int(rec, "age", p->age >= 0 ? &age : NULL);
    st_avro_set_nullable_string(rec, "country", p->country[0] ? p->country : NULL);
    int64_t reg_ms = p->registered_s * 1000;
    st_avro_set_nullable_long(rec, "registered_ms", p->registered_s > 0 ? &reg_ms : NULL);
}

static int produce(int argc, char **argv)
{
    const char *sessions = arg_of(argc, argv, "--sessions", NULL);
    const char *topic = arg_of(argc, argv, "--topic", NULL);
    const char *brokers = arg_of(argc, argv, "--brokers", "127.0.0.1:19092");
    const char *schemas = arg_of(argc, argv, "--schemas", STINT_SOURCE_DIR "/schemas");
    int recent_n = atoi(arg_of(argc, argv, "--recent", "16"));
    if (!sessions || !topic) {
        fprintf(stderr, "usage: session-events produce --sessions TSV [--profiles TSV] --topic T "
                        "[--brokers B] [--recent N] [--partitions P] "
                        "[--create T1,T2] [--rate EVENTS_PER_S] [--registry URL] [--copies N]\n");
        return 2;
    }
    st_dataset_t *ds = load(sessions, arg_of(argc, argv, "--profiles", NULL));
    if (!ds)
        return 1;
    char err[512];
    st_avro_registry_t *reg =
        st_avro_registry_new(schemas, arg_of(argc, argv, "--registry", NULL), err, sizeof err);
    st_avro_codec_t *codec =
        reg ? st_avro_codec_new(reg, "SessionEvent", topic, err, sizeof err) : NULL;
    st_kafka_opts_t ko = {brokers, "stint-session-events", NULL, 0};
    /* The input topic and --create a,b,c (outputs a test reads) with --partitions each. */
    int partitions = atoi(arg_of(argc, argv, "--partitions", "3"));
    char create[1024];
    const char *topics[16] = {topic};
    size_t ntopics = 1;
    snprintf(create, sizeof create, "%s", arg_of(argc, argv, "--create", ""));
    for (char *save = NULL, *t = strtok_r(create, ",", &save); t && ntopics < 16;
         t = strtok_r(NULL, ",", &save))
        topics[ntopics++] = t;
    st_producer_t *prod = NULL;
    if (codec && st_kafka_create_topics(&ko, topics, ntopics, partitions, err, sizeof err) == 0)
        prod = st_producer_new(&ko, err, sizeof err);
    if (!prod) {
        fprintf(stderr, "session-events: %s\n", err);
        return 1;
    }
    size_t n_rows = st_dataset_n_rows(ds);
    const st_dataset_row_t *rows = st_dataset_rows(ds);
    ev_t *evs = malloc(2 * n_rows * sizeof *evs);
    size_t n_ev = 0;
    for (size_t i = 0; i < n_rows; i++) {
        const st_dataset_row_t *r = &rows[i];
        int64_t start_ms = r->start_s * 1000;
        int64_t close_ms = start_ms + (int64_t)llround(r->length_s * 1000) + GAP_MS;
        if (i + 1 < n_rows && rows[i + 1].user == r->user && rows[i + 1].start_s * 1000 < close_ms)
            close_ms = rows[i + 1].start_s * 1000;
        evs[n_ev++] = (ev_t){start_ms, r->user, 1, i};
        evs[n_ev++] = (ev_t){close_ms, r->user, 0, i};
    }
    qsort(evs, n_ev, sizeof *evs, cmp_ev);
    int n_users = st_dataset_n_users(ds);
    st_session_history_t *hist = calloc((size_t)n_users, sizeof *hist);
    st_buf_t buf = {0};
    st_err_t e = {0};
    size_t opened = 0, closed = 0;
    double rate = atof(arg_of(argc, argv, "--rate", "0"));
    /* --copies N: after every N-th event, the user's previous event and this one are sent again,
     * byte-identical, as the sessionizer re-emits its last events after a crash. */
    long copy_every = atol(arg_of(argc, argv, "--copies", "0"));
    st_buf_t *prev = copy_every > 0 ? calloc((size_t)n_users, sizeof *prev) : NULL;
    size_t copies = 0;
    int64_t t0_us = st_time_mono_us();
    for (size_t k = 0; k < n_ev; k++) {
        if (rate > 0) {
            int64_t due_us = t0_us + (int64_t)((double)k * 1e6 / rate);
            int64_t now_us = st_time_mono_us();
            if (due_us > now_us)
                usleep((useconds_t)(due_us - now_us));
            if (k % 256 == 0)
                rd_kafka_poll(st_producer_handle(prod), 0);
        }
        const st_dataset_row_t *r = &rows[evs[k].row];
        const char *user = st_dataset_user_id(ds, r->user);
        char sid[ST_SESSION_ID_MAX];
        int64_t start_ms = r->start_s * 1000;
        st_session_id_format(user, strlen(user), start_ms, sid, sizeof sid);
        avro_value_t *rec = st_avro_codec_record(codec);
        st_avro_set_string(rec, "session_id", sid);
        st_avro_set_string(rec, "user_id", user);
        if (evs[k].kind == 1) {
            st_avro_set_enum(rec, "kind", "OPENED");
            set_opened(rec, ds, r, &hist[r->user]);
            opened++;
        } else {
            st_session_features_t f;
            st_session_features(&hist[r->user], start_ms, &f);
            st_session_summary_t s = {0};
            s.start_ms = start_ms;
            s.length_ms = (int64_t)llround(r->length_s * 1000);
            s.end_ms = start_ms + s.length_ms;
            s.last_start_ms = s.end_ms;
            s.length_s = r->length_s;
            s.track_count = (uint32_t)r->track_count;
            s.unknown_duration_share = r->unknown_share;
            s.unknown_duration_count = (uint32_t)llround(r->unknown_share * r->track_count);
            st_avro_set_enum(rec, "kind", "CLOSED");
            st_avro_set_long(rec, "start_ms", start_ms);
            st_avro_set_int(rec, "session_index", (int32_t)f.session_index);
            st_avro_set_int(rec, "start_hour_utc", f.hour_utc);
            st_avro_set_int(rec, "start_weekday", f.weekday);
            st_avro_set_nullable_long(rec, "end_ms", &s.end_ms);
            st_avro_set_nullable_double(rec, "length_s", &s.length_s);
            st_avro_set_int(rec, "track_count", (int32_t)s.track_count);
            st_avro_set_nullable_double(rec, "unknown_duration_share", &s.unknown_duration_share);
            st_session_history_add(&hist[r->user], &s, (uint32_t)recent_n);
            closed++;
        }
        if (st_avro_codec_encode(codec, rec, &buf, &e) != 0 ||
            st_producer_send(prod, topic, -1, user, strlen(user), buf.data, buf.len, &e) != 0) {
            fprintf(stderr, "session-events: %s\n", e.text);
            return 1;
        }
        if (!prev)
            continue;
        st_buf_t *pb = &prev[r->user];
        if ((long)(k % (size_t)copy_every) == copy_every - 1) {
            if ((pb->len > 0 && st_producer_send(prod, topic, -1, user, strlen(user), pb->data,
                                                 pb->len, &e) != 0) ||
                st_producer_send(prod, topic, -1, user, strlen(user), buf.data, buf.len, &e) != 0) {
                fprintf(stderr, "session-events: %s\n", e.text);
                return 1;
            }
            copies += 1 + (pb->len > 0);
        }
        st_buf_reset(pb);
        if (st_buf_append(pb, buf.data, buf.len) != 0) {
            fprintf(stderr, "session-events: out of memory\n");
            return 1;
        }
    }
    if (st_producer_wait(prod, 60000, &e) != 0) {
        fprintf(stderr, "session-events: %s\n", e.text);
        return 1;
    }
    printf("opened=%zu closed=%zu copies=%zu\n", opened, closed, copies);
    for (int u = 0; prev && u < n_users; u++)
        st_buf_free(&prev[u]);
    free(prev);
    st_buf_free(&buf);
    free(hist);
    free(evs);
    st_producer_destroy(prod);
    st_avro_codec_destroy(codec);
    st_avro_registry_destroy(reg);
    st_dataset_destroy(ds);
    return 0;
}

static int offline(int argc, char **argv)
{
    const char *sessions = arg_of(argc, argv, "--sessions", NULL);
    const char *model = arg_of(argc, argv, "--model", NULL);
    if (!sessions || !model) {
        fprintf(stderr,
                "usage: session-events offline --sessions TSV [--profiles TSV] --model DIR\n");
        return 2;
    }
    st_dataset_t *ds = load(sessions, arg_of(argc, argv, "--profiles", NULL));
    char err[512];
    st_bundle_t *b = ds ? st_bundle_load(model, err, sizeof err) : NULL;
    if (!b) {
        if (ds)
            fprintf(stderr, "session-events: %s\n", err);
        st_dataset_destroy(ds);
        return 1;
    }
    const st_dataset_row_t *rows = st_dataset_rows(ds);
    double rl[ST_BUNDLE_MAX_WINDOW + 1], ru[ST_BUNDLE_MAX_WINDOW + 1];
    int64_t rs[ST_BUNDLE_MAX_WINDOW + 1];
    int rt[ST_BUNDLE_MAX_WINDOW + 1];
    double sum = 0;
    size_t n = 0, bad = 0;
    for (size_t i = 0; i < st_dataset_n_rows(ds); i++) {
        st_bundle_input_t in;
        double p;
        st_bundle_input_from_row(b, ds, i, &in, rl, rs, rt, ru);
        if (st_bundle_predict(b, &in, &p) != 0) {
            bad++;
            continue;
        }
        sum += fabs(p - rows[i].length_s);
        n++;
    }
    printf("offline_mae_s=%.6f rows=%zu nonfinite=%zu\n", n ? sum / (double)n : 0.0, n, bad);
    st_bundle_destroy(b);
    st_dataset_destroy(ds);
    return 0;
}

static int train(int argc, char **argv)
{
    const char *sessions = arg_of(argc, argv, "--sessions", NULL);
    const char *out = arg_of(argc, argv, "--out", NULL);
    if (!sessions || !out) {
        fprintf(stderr, "usage: session-events train --sessions TSV [--profiles TSV] --out DIR "
                        "[--epochs N] [--seed S] [--cluster none|kmeans|spectral]\n");
        return 2;
    }
    st_dataset_t *ds = load(sessions, arg_of(argc, argv, "--profiles", NULL));
    if (!ds)
        return 1;
    char err[512];
    st_dataset_split_cfg_t sc;
    st_dataset_split_default(&sc);
    st_bundle_spec_t spec;
    st_bundle_spec_default(&spec);
    spec.epochs = atoi(arg_of(argc, argv, "--epochs", "5"));
    if (st_bundle_spec_set(&spec, "cluster", arg_of(argc, argv, "--cluster", "none"), err,
                           sizeof err) != 0) {
        fprintf(stderr, "session-events: %s\n", err);
        st_dataset_destroy(ds);
        return 2;
    }
    spec.seed = sc.seed = strtoull(arg_of(argc, argv, "--seed", "1"), NULL, 10);
    st_bundle_t *b = NULL;
    int rc = 1;
    if (st_dataset_split(ds, &sc, err, sizeof err) == 0 &&
        (b = st_bundle_train(ds, &spec, NULL, NULL, err, sizeof err))) {
        st_dataset_baselines_t bl;
        st_dataset_baselines(ds, 0, &bl);
        char metrics[128];
        snprintf(metrics, sizeof metrics, "{\"global_median_s\":%.17g}", bl.global_median_s);
        if (st_bundle_save(b, out, metrics, err, sizeof err) == 0)
            rc = 0;
    }
    if (rc != 0)
        fprintf(stderr, "session-events: %s\n", err);
    st_bundle_destroy(b);
    st_dataset_destroy(ds);
    return rc;
}

/* Produces every user's profile of the dataset as a UserProfile record (topic created). */
static int profiles(int argc, char **argv)
{
    const char *sessions = arg_of(argc, argv, "--sessions", NULL);
    const char *prof = arg_of(argc, argv, "--profiles", NULL);
    const char *topic = arg_of(argc, argv, "--topic", NULL);
    const char *brokers = arg_of(argc, argv, "--brokers", "127.0.0.1:19092");
    if (!sessions || !prof || !topic) {
        fprintf(stderr, "usage: session-events profiles --sessions TSV --profiles TSV --topic T "
                        "[--brokers B]\n");
        return 2;
    }
    st_dataset_t *ds = load(sessions, prof);
    if (!ds)
        return 1;
    char err[512];
    st_avro_registry_t *reg =
        st_avro_registry_new(STINT_SOURCE_DIR "/schemas", NULL, err, sizeof err);
    st_avro_codec_t *codec =
        reg ? st_avro_codec_new(reg, "UserProfile", topic, err, sizeof err) : NULL;
    st_kafka_opts_t ko = {brokers, "stint-session-events", NULL, 0};
    const char *topics[1] = {topic};
    st_producer_t *prod = NULL;
    if (codec && st_kafka_create_topics(&ko, topics, 1, 3, err, sizeof err) == 0)
        prod = st_producer_new(&ko, err, sizeof err);
    if (!prod) {
        fprintf(stderr, "session-events: %s\n", err);
        return 1;
    }
    st_buf_t buf = {0};
    st_err_t e = {0};
    int n = 0;
    for (int u = 0; u < st_dataset_n_users(ds); u++) {
        const st_dataset_profile_t *p = st_dataset_profile(ds, u);
        const char *user = st_dataset_user_id(ds, u);
        avro_value_t *rec = st_avro_codec_record(codec);
        st_avro_set_string(rec, "user_id", user);
        char g[2] = {p->gender, 0};
        st_avro_set_nullable_string(rec, "gender", p->gender ? g : NULL);
        int32_t age = p->age;
        st_avro_set_nullable_int(rec, "age", p->age >= 0 ? &age : NULL);
        st_avro_set_nullable_string(rec, "country", p->country[0] ? p->country : NULL);
        int64_t reg_ms = p->registered_s * 1000;
        st_avro_set_nullable_long(rec, "registered_ms", p->registered_s > 0 ? &reg_ms : NULL);
        if (st_avro_codec_encode(codec, rec, &buf, &e) != 0 ||
            st_producer_send(prod, topic, -1, user, strlen(user), buf.data, buf.len, &e) != 0) {
            fprintf(stderr, "session-events: %s\n", e.text);
            return 1;
        }
        n++;
    }
    if (st_producer_wait(prod, 60000, &e) != 0) {
        fprintf(stderr, "session-events: %s\n", e.text);
        return 1;
    }
    printf("profiles=%d\n", n);
    st_buf_free(&buf);
    st_producer_destroy(prod);
    st_avro_codec_destroy(codec);
    st_avro_registry_destroy(reg);
    st_dataset_destroy(ds);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "profiles") == 0)
        return profiles(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "produce") == 0)
        return produce(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "offline") == 0)
        return offline(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "train") == 0)
        return train(argc, argv);
    fprintf(stderr, "usage: session-events produce|profiles|offline|train ...\n");
    return 2;
}
