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
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "st_avro.h"
#include "st_bundle.h"
#include "st_dataset.h"
#include "st_itest.h"
#include "st_kafka.h"
#include "st_records.h"
#include "st_session.h"
#include "st_time.h"

#define GAP_MS 1800000LL

/* Event kinds, in their order at equal times (a CLOSED first, as the sessionizer closes a
 * session before the listen that opens the next is applied). */
enum {
    EV_CLOSED = 0,
    EV_OPENED,            /* a session's OPENED, revision 0 */
    EV_OPENED_PERTURBED,  /* --scenario: revision 0 with the previous session 600 s too short */
    EV_OPENED_CORRECTED,  /* ... then revision 1 with the true features */
    EV_SPURIOUS_X,        /* --scenario: an announcement inside a session, later retracted by id */
    EV_OPENED_RETRACTING, /* ... by the session's OPENED, revision 1, retracted_session_ids [X] */
    EV_SPURIOUS_Y         /* --scenario: an announcement inside a session, voided by its CLOSED */
};

/* The --scenario role of a row. */
enum { ROLE_NONE = -1, ROLE_CORRECTED = 0, ROLE_RETRACTED = 1, ROLE_VOIDED = 2 };

typedef struct {
    int64_t at_ms;
    int user;
    int kind;
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

/* Fills an OPENED from features f (details only when details is set). */
/* The OPENED fields of row r with features f (details dropped unless asked for); the profile's
 * strings point into ds and g. */
static void set_opened(st_rec_session_event_t *rec, const st_dataset_t *ds,
                       const st_dataset_row_t *r, const st_session_features_t *f, bool details,
                       char g[2])
{
    const st_dataset_profile_t *p = st_dataset_profile(ds, r->user);
    st_rec_session_event_set_features(rec, f);
    if (!details)
        rec->n_recent_starts = rec->n_recent_track_counts = rec->n_recent_unknown_shares = 0;
    g[0] = p->gender;
    g[1] = 0;
    rec->gender = st_str(p->gender ? g : NULL);
    rec->age = (st_opt_i32_t){p->age >= 0, p->age};
    rec->country = st_str(p->country[0] ? p->country : NULL);
    rec->registered_ms = (st_opt_i64_t){p->registered_s > 0, p->registered_s * 1000};
}

static st_rec_session_event_t event; /* the record being produced (large: not on the stack) */

static int row_role(size_t i, const st_dataset_row_t *r, long scenario)
{
    if (scenario <= 0)
        return ROLE_NONE;
    int role = (int)(i % (size_t)scenario);
    if (role == ROLE_CORRECTED)
        return r->index >= 1 ? role : ROLE_NONE;
    if (role == ROLE_RETRACTED || role == ROLE_VOIDED)
        return r->length_s >= 10 ? role : ROLE_NONE;
    return ROLE_NONE;
}

/* Start of the spurious announcement inside row r's session (whole seconds, after its start). */
static int64_t spurious_ms(const st_dataset_row_t *r, int role)
{
    int64_t len_ms = (int64_t)llround(r->length_s * 1000);
    return r->start_s * 1000 + (len_ms / (role == ROLE_RETRACTED ? 2 : 3)) / 1000 * 1000;
}

static int produce(int argc, char **argv)
{
    const char *sessions = arg_of(argc, argv, "--sessions", NULL);
    const char *topic = arg_of(argc, argv, "--topic", NULL);
    const char *brokers = arg_of(argc, argv, "--brokers", "127.0.0.1:19092");
    const char *schemas = arg_of(argc, argv, "--schemas", STINT_SOURCE_DIR "/schemas");
    int recent_n = atoi(arg_of(argc, argv, "--recent", "32"));
    if (!sessions || !topic) {
        fprintf(stderr, "usage: session-events produce --sessions TSV [--profiles TSV] --topic T "
                        "[--brokers B] [--recent N] [--partitions P] "
                        "[--create T1,T2] [--rate EVENTS_PER_S] [--registry URL] [--copies N] "
                        "[--details 0|1] [--grace-ms MS] [--scenario K] [--manifest FILE] "
                        "[--repeat 0|1]\n");
        return 2;
    }
    st_dataset_t *ds = load(sessions, arg_of(argc, argv, "--profiles", NULL));
    if (!ds)
        return 1;
    char err[512];
    st_avro_registry_t *reg = st_avro_registry_new(
        schemas, arg_of(argc, argv, "--registry", itest_registry_url()), err, sizeof err);
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
    /* --details 0: OPENED without recent_starts_ms & co (as sessionizers before them).
     * --grace-ms G: a CLOSED is sent G ms (event time) after its session closed, as the
     * sessionizer's authoritative pass does, while the next session's OPENED is announced at
     * its first listen: with G > 0 an OPENED often comes before its predecessor's CLOSED.
     * --scenario K: row i of the data set, by i % K: 0 its OPENED is sent first with wrong
     * features (revision 0) and then corrected (revision 1); 1 a spurious session is announced
     * inside it and retracted by its OPENED, revision 1 (retracted_session_ids); 2 a spurious
     * session is announced inside it and voided by its CLOSED ([start_ms, last_start_ms]).
     * --manifest FILE: one line per announced session id, "<session_id>\t<role>", role one of
     * session, corrected, retract_host, retracted, void_host, voided.
     * --repeat 1: after the stream, every event again, byte-identical, at new offsets. */
    bool details = atoi(arg_of(argc, argv, "--details", "1")) != 0;
    int64_t grace_ms = atoll(arg_of(argc, argv, "--grace-ms", "0"));
    long scenario = atol(arg_of(argc, argv, "--scenario", "0"));
    bool repeat = atoi(arg_of(argc, argv, "--repeat", "0")) != 0;
    const char *manifest = arg_of(argc, argv, "--manifest", NULL);
    FILE *mf = manifest ? fopen(manifest, "w") : NULL;
    if (manifest && !mf) {
        fprintf(stderr, "session-events: cannot write %s\n", manifest);
        return 1;
    }
    size_t n_rows = st_dataset_n_rows(ds);
    const st_dataset_row_t *rows = st_dataset_rows(ds);
    ev_t *evs = malloc(4 * n_rows * sizeof *evs);
    size_t n_ev = 0;
    for (size_t i = 0; i < n_rows; i++) {
        const st_dataset_row_t *r = &rows[i];
        int64_t start_ms = r->start_s * 1000;
        int64_t close_ms = start_ms + (int64_t)llround(r->length_s * 1000) + GAP_MS;
        if (i + 1 < n_rows && rows[i + 1].user == r->user && rows[i + 1].start_s * 1000 < close_ms)
            close_ms = rows[i + 1].start_s * 1000;
        int role = row_role(i, r, scenario);
        if (role == ROLE_CORRECTED) {
            evs[n_ev++] = (ev_t){start_ms, r->user, EV_OPENED_PERTURBED, i};
            evs[n_ev++] = (ev_t){start_ms + 1, r->user, EV_OPENED_CORRECTED, i};
        } else {
            evs[n_ev++] = (ev_t){start_ms, r->user, EV_OPENED, i};
        }
        if (role == ROLE_RETRACTED) {
            int64_t x_ms = spurious_ms(r, role);
            evs[n_ev++] = (ev_t){x_ms, r->user, EV_SPURIOUS_X, i};
            evs[n_ev++] = (ev_t){x_ms + 1, r->user, EV_OPENED_RETRACTING, i};
        } else if (role == ROLE_VOIDED) {
            evs[n_ev++] = (ev_t){spurious_ms(r, role), r->user, EV_SPURIOUS_Y, i};
        }
        evs[n_ev++] = (ev_t){close_ms + grace_ms, r->user, EV_CLOSED, i};
        if (mf) {
            const char *user = st_dataset_user_id(ds, r->user);
            static const char *const names[] = {"corrected", "retract_host", "void_host"};
            fprintf(mf, "%s:%" PRId64 "\t%s\n", user, start_ms,
                    role >= 0 ? names[role] : "session");
            if (role == ROLE_RETRACTED || role == ROLE_VOIDED)
                fprintf(mf, "%s:%" PRId64 "\t%s\n", user, spurious_ms(r, role),
                        role == ROLE_RETRACTED ? "retracted" : "voided");
        }
    }
    if (mf)
        fclose(mf);
    qsort(evs, n_ev, sizeof *evs, cmp_ev);
    int n_users = st_dataset_n_users(ds);
    /* The history an OPENED of row i sees: the user's rows before i, all closed (as the
     * sessionizer's view has them), whether or not their CLOSED was sent yet. */
    st_session_history_t *hist = calloc((size_t)n_users, sizeof *hist);
    size_t *hist_rows = calloc((size_t)n_users, sizeof *hist_rows); /* rows added + 1, 0 none */
    st_buf_t buf = {0};
    st_buf_t sent = {0}; /* --repeat: every event, "<len:8 bytes><user\0><value>" */
    st_err_t e = {0};
    size_t opened = 0, closed = 0, corrections = 0, retracted = 0, voided = 0;
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
        int kind = evs[k].kind;
        int role = row_role(evs[k].row, r, scenario);
        char sid[ST_SESSION_ID_MAX];
        int64_t start_ms = r->start_s * 1000;
        int64_t at_ms =
            kind == EV_SPURIOUS_X || kind == EV_SPURIOUS_Y ? spurious_ms(r, role) : start_ms;
        st_session_id_format(user, strlen(user), at_ms, sid, sizeof sid);
        st_rec_session_event_t *rec = &event;
        memset(rec, 0, sizeof *rec);
        rec->session_id = st_str(sid);
        rec->user_id = st_str(user);
        char g[2], xid[ST_SESSION_ID_MAX];
        if (kind != EV_CLOSED) {
            st_session_history_t *h = &hist[r->user];
            size_t first = evs[k].row - (size_t)r->index;
            if (hist_rows[r->user] == 0)
                hist_rows[r->user] = first + 1;
            for (size_t j = hist_rows[r->user] - 1; j < evs[k].row; j++) {
                const st_dataset_row_t *q = &rows[j];
                st_session_summary_t sm = {0};
                sm.start_ms = q->start_s * 1000;
                sm.length_ms = (int64_t)llround(q->length_s * 1000);
                sm.end_ms = sm.start_ms + sm.length_ms;
                sm.last_start_ms = sm.end_ms;
                sm.length_s = q->length_s;
                sm.track_count = (uint32_t)q->track_count;
                sm.unknown_duration_share = q->unknown_share;
                sm.unknown_duration_count = (uint32_t)llround(q->unknown_share * q->track_count);
                st_session_history_add(h, &sm, (uint32_t)recent_n);
            }
            if (hist_rows[r->user] < evs[k].row + 1)
                hist_rows[r->user] = evs[k].row + 1;
            st_session_features_t f;
            st_session_features(h, at_ms, &f);
            if (kind == EV_OPENED_PERTURBED && f.has_prev) {
                /* As if the last listens of the previous session had not arrived yet. */
                f.prev_session_length_s = fmax(0, f.prev_session_length_s - 600);
                f.recent_lengths_s[f.n_recent - 1] = f.prev_session_length_s;
                f.gap_since_prev_s += 600;
                f.mean_session_length_s -= 600.0 / f.session_index;
            }
            rec->kind = ST_SESSION_EVENT_OPENED;
            set_opened(rec, ds, r, &f, details, g);
            if (kind == EV_OPENED_CORRECTED || kind == EV_OPENED_RETRACTING) {
                rec->revision = 1;
                corrections++;
            }
            if (kind == EV_OPENED_RETRACTING) {
                rec->n_retracted = 1;
                rec->retracted_session_ids[0] = st_str(st_session_id_format(
                    user, strlen(user), spurious_ms(r, role), xid, sizeof xid));
                retracted++;
            }
            voided += kind == EV_SPURIOUS_Y;
            opened += kind == EV_OPENED || kind == EV_OPENED_PERTURBED;
        } else {
            int hour, weekday;
            st_session_hour_weekday(start_ms, &hour, &weekday);
            int64_t len_ms = (int64_t)llround(r->length_s * 1000);
            int64_t end_ms = start_ms + len_ms;
            rec->kind = ST_SESSION_EVENT_CLOSED;
            rec->start_ms = start_ms;
            rec->session_index = r->index;
            rec->start_hour_utc = hour;
            rec->start_weekday = weekday;
            rec->end_ms = (st_opt_i64_t){true, end_ms};
            /* The start of the last listen is not in the data set: the end stands for it. */
            rec->last_start_ms = (st_opt_i64_t){true, end_ms};
            rec->length_s = (st_opt_f64_t){true, r->length_s};
            rec->track_count = r->track_count;
            rec->unknown_duration_share = (st_opt_f64_t){true, r->unknown_share};
            closed++;
        }
        if (st_rec_session_event_encode(codec, rec, &buf, &e) != 0 ||
            st_producer_send(prod, topic, -1, user, strlen(user), buf.data, buf.len, &e) != 0) {
            fprintf(stderr, "session-events: %s\n", e.text);
            return 1;
        }
        if (repeat) {
            uint64_t len = buf.len;
            if (st_buf_append(&sent, &len, sizeof len) != 0 ||
                st_buf_append(&sent, user, strlen(user) + 1) != 0 ||
                st_buf_append(&sent, buf.data, buf.len) != 0) {
                fprintf(stderr, "session-events: out of memory\n");
                return 1;
            }
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
    for (size_t at = 0; at < sent.len; copies++) {
        uint64_t len;
        memcpy(&len, sent.data + at, sizeof len);
        const char *user = (const char *)sent.data + at + sizeof len;
        const char *value = user + strlen(user) + 1;
        if (st_producer_send(prod, topic, -1, user, strlen(user), value, (size_t)len, &e) != 0) {
            fprintf(stderr, "session-events: %s\n", e.text);
            return 1;
        }
        at = (size_t)(value - sent.data) + (size_t)len;
    }
    if (st_producer_wait(prod, 60000, &e) != 0) {
        fprintf(stderr, "session-events: %s\n", e.text);
        return 1;
    }
    printf("opened=%zu closed=%zu copies=%zu corrections=%zu retracted=%zu voided=%zu\n", opened,
           closed, copies, corrections, retracted, voided);
    for (int u = 0; prev && u < n_users; u++)
        st_buf_free(&prev[u]);
    free(prev);
    st_buf_free(&buf);
    st_buf_free(&sent);
    free(hist);
    free(hist_rows);
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
        fprintf(stderr, "usage: session-events offline --sessions TSV [--profiles TSV] --model DIR "
                        "[--out FILE]\n");
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
    /* --out FILE: each session's prediction, "<session_id>\t<predicted_s>" (%.17g). */
    const char *out_path = arg_of(argc, argv, "--out", NULL);
    FILE *out = out_path ? fopen(out_path, "w") : NULL;
    for (size_t i = 0; i < st_dataset_n_rows(ds); i++) {
        st_bundle_input_t in;
        double p;
        st_bundle_input_from_row(b, ds, i, &in, rl, rs, rt, ru);
        if (st_bundle_predict(b, &in, &p) != 0) {
            bad++;
            continue;
        }
        if (out)
            fprintf(out, "%s:%" PRId64 "\t%.17g\n", st_dataset_user_id(ds, rows[i].user),
                    rows[i].start_s * 1000, p);
        sum += fabs(p - rows[i].length_s);
        n++;
    }
    if (out)
        fclose(out);
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
        st_avro_registry_new(STINT_SOURCE_DIR "/schemas", itest_registry_url(), err, sizeof err);
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
        char g[2] = {p->gender, 0};
        st_rec_profile_t rec = {
            .user_id = st_str(user),
            .gender = st_str(p->gender ? g : NULL),
            .age = {p->age >= 0, p->age},
            .country = st_str(p->country[0] ? p->country : NULL),
            .registered_ms = {p->registered_s > 0, p->registered_s * 1000},
        };
        if (st_rec_profile_encode(codec, &rec, &buf, &e) != 0 ||
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
