/* Unit tests of the clusterer's core (services/clusterer/clu_core.c) on the in-memory store:
 * profile statistics from a stream of CLOSED sessions; a batch processed again after its write
 * failed (nothing written, or only some users) gives the same outputs and counts once; a second
 * owner of the partitions applying the same batch, or an overlapping one, counts nothing twice;
 * re-emitted CLOSED copies at new offsets count once; a user's records from more partitions than
 * st_applied allows (the extra one dead-lettered, never dropped); profile records; and, with a
 * small k-means bundle, cold and assigned users, a training user's cluster, re-fits (numbered
 * on across a restart) and no bundle swap inside a retried batch. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "clu_core.h"
#include "clu_store_mem.h"
#include "st_bundle.h"
#include "st_dataset.h"
#include "st_metrics.h"
#include "st_records.h"
#include "st_test.h"

#define SESSIONS "sessions"
#define PROFILES "users.profiles"
#define CLUSTERS "users.clusters"
#define DLQ      "users.clusters.dlq"
#define WINDOW   3 /* median_window: short, so the list is trimmed */
#define COLD_MIN 3 /* cold_min_sessions */

static st_avro_registry_t *reg;
static st_avro_codec_t *ev_codec, *prof_codec, *clu_codec;
static char tmp_root[] = "/tmp/stint-test-clu-XXXXXX";
static char bundle_dir[300], no_bundle_dir[300];

/* ---- batches of encoded records ---- */

#define BATCH_MAX 64

typedef struct {
    st_buf_t bytes; /* the encoded records, back to back */
    size_t off[BATCH_MAX], len[BATCH_MAX];
    const char *topic[BATCH_MAX];
    int32_t part[BATCH_MAX];
    int64_t offset[BATCH_MAX];
    int64_t record_ms[BATCH_MAX]; /* the Kafka timestamp; 0: none (-1) */
    size_t n;
} batch_t;

static void add_encoded(batch_t *b, const char *topic, int32_t p, int64_t offset,
                        const st_buf_t *enc)
{
    if (b->n == BATCH_MAX) {
        ST_FAIL_AT("batch full");
        return;
    }
    b->off[b->n] = b->bytes.len;
    b->len[b->n] = enc->len;
    b->topic[b->n] = topic;
    b->part[b->n] = p;
    b->offset[b->n] = offset;
    st_buf_append(&b->bytes, enc->data, enc->len);
    b->n++;
}

static void add_event(batch_t *b, int32_t p, int64_t offset, const char *user, bool closed,
                      int64_t start_ms, double length_s, int tracks)
{
    char sid[ST_SESSION_ID_MAX];
    st_session_id_format(user, strlen(user), start_ms, sid, sizeof sid);
    st_rec_session_event_t ev = {.session_id = st_str(sid),
                                 .user_id = st_str(user),
                                 .kind = closed ? ST_SESSION_EVENT_CLOSED : ST_SESSION_EVENT_OPENED,
                                 .start_ms = start_ms};
    if (closed) {
        ev.length_s = (st_opt_f64_t){true, length_s};
        ev.end_ms = (st_opt_i64_t){true, start_ms + (int64_t)(length_s * 1000)};
        ev.last_start_ms = ev.end_ms;
        ev.track_count = tracks;
    }
    st_buf_t enc = ST_BUF_INIT;
    st_err_t e = {0};
    if (st_rec_session_event_encode(ev_codec, &ev, &enc, &e) != 0)
        ST_FAIL_AT("encode: %s", e.text);
    else
        add_encoded(b, SESSIONS, p, offset, &enc);
    st_buf_free(&enc);
}

static void add_closed(batch_t *b, int32_t p, int64_t offset, const char *user, int64_t start_ms,
                       double length_s, int tracks)
{
    add_event(b, p, offset, user, true, start_ms, length_s, tracks);
}

static void add_opened(batch_t *b, int32_t p, int64_t offset, const char *user, int64_t start_ms)
{
    add_event(b, p, offset, user, false, start_ms, 0, 0);
}

/* A profile; gender/country NULL and age/registered_ms < 0 are unknown. */
static void add_profile(batch_t *b, int32_t p, int64_t offset, const char *user, const char *gender,
                        int age, const char *country, int64_t registered_ms)
{
    st_rec_profile_t pr = {.user_id = st_str(user),
                           .gender = st_str(gender),
                           .age = {age >= 0, age},
                           .country = st_str(country),
                           .registered_ms = {registered_ms >= 0, registered_ms}};
    st_buf_t enc = ST_BUF_INIT;
    st_err_t e = {0};
    if (st_rec_profile_encode(prof_codec, &pr, &enc, &e) != 0)
        ST_FAIL_AT("encode: %s", e.text);
    else
        add_encoded(b, PROFILES, p, offset, &enc);
    st_buf_free(&enc);
}

static void batch_clear(batch_t *b)
{
    st_buf_free(&b->bytes);
    memset(b, 0, sizeof *b);
}

/* ---- a core over a store ---- */

typedef struct {
    st_bwatch_t *model;
    clu_t *core;
    st_out_t *out;
} rig_t;

/* A core over store with the bundle at model_dir, polled every poll_ms (0: loaded once). */
static int rig_init_polled(rig_t *r, clu_store_t *store, const char *model_dir, int poll_ms,
                           int refit_interval_s)
{
    char err[256] = "";
    clu_config_t cfg = {.instance = "test:1",
                        .sessions_topic = SESSIONS,
                        .profiles_topic = PROFILES,
                        .clusters_topic = CLUSTERS,
                        .cold_min_sessions = COLD_MIN,
                        .median_window = WINDOW,
                        .refit_interval_s = refit_interval_s,
                        .refit_max_users = 100,
                        .refit_min_users = 2};
    memset(r, 0, sizeof *r);
    r->out = st_out_new(DLQ);
    r->model = st_bwatch_new(model_dir, poll_ms, err, sizeof err);
    r->core = r->model ? clu_new(&cfg, store, reg, r->model, err, sizeof err) : NULL;
    if (!r->out || !r->core) {
        fprintf(stderr, "rig: %s\n", err);
        return -1;
    }
    return 0;
}

static int rig_init(rig_t *r, clu_store_t *store, const char *model_dir, int refit_interval_s)
{
    return rig_init_polled(r, store, model_dir, 0, refit_interval_s);
}

static void rig_free(rig_t *r)
{
    clu_destroy(r->core);
    st_bwatch_destroy(r->model);
    st_out_destroy(r->out);
}

/* process() of b (outputs in r->out, emptied first). */
static int process(rig_t *r, const batch_t *b)
{
    st_msg_t msgs[BATCH_MAX];
    for (size_t i = 0; i < b->n; i++)
        msgs[i] = (st_msg_t){.topic = b->topic[i],
                             .partition = b->part[i],
                             .offset = b->offset[i],
                             .timestamp_ms = b->record_ms[i] ? b->record_ms[i] : -1,
                             .key = "k",
                             .key_len = 1,
                             .value = b->bytes.data + b->off[i],
                             .value_len = b->len[i]};
    st_out_reset(r->out);
    st_err_t e = {0};
    int rc = clu_process(r->core, msgs, b->n, r->out, &e);
    if (rc != 0)
        fprintf(stderr, "process: %s\n", e.text);
    return rc;
}

static int apply(rig_t *r)
{
    st_err_t e = {0};
    return clu_apply(r->core, &e);
}

static int run(rig_t *r, const batch_t *b)
{
    return process(r, b) == 0 && apply(r) == 0 ? 0 : -1;
}

/* ---- what the store holds ---- */

typedef struct {
    st_applied_t s, p; /* markers of partition 0 of both topics, lc */
    double lens[WINDOW];
    clu_store_prof_t prof;
    clu_store_cluster_t cluster;
} view_t;

static void view(clu_store_t *store, const char *user, view_t *v)
{
    memset(v, 0, sizeof *v);
    st_applied_reset(&v->s);
    st_applied_reset(&v->p);
    st_applied_slot(&v->s, 0, true);
    st_applied_slot(&v->p, 0, true);
    v->prof.lens = v->lens;
    clu_store_user_t u = {.user = user,
                          .sessions = &v->s,
                          .profiles = &v->p,
                          .prof = &v->prof,
                          .cluster = &v->cluster};
    st_err_t e = {0};
    if (store->read(store->ctx, &u, 1, &e) != 0)
        ST_FAIL_AT("read: %s", e.text);
}

static double counter(const char *name)
{
    return st_metric_value(st_metrics_counter(name, NULL, NULL));
}

static size_t count_topic(const st_out_t *out, const char *topic)
{
    size_t n = 0;
    for (size_t i = 0; i < st_out_count(out); i++)
        n += strcmp(st_out_record(out, i).topic, topic) == 0;
    return n;
}

/* The k-th ClusterAssignment of out. */
static bool nth_assignment(const st_out_t *out, size_t k, st_rec_cluster_t *a)
{
    for (size_t i = 0; i < st_out_count(out); i++) {
        st_out_rec_t r = st_out_record(out, i);
        if (strcmp(r.topic, CLUSTERS) != 0 || k--)
            continue;
        st_err_t e = {0};
        return st_rec_cluster_decode(clu_codec, r.value, r.value_len, a, &e) == 0;
    }
    return false;
}

/* Whether an output's value holds text. */
static bool holds(const st_out_rec_t *r, const char *text)
{
    size_t n = strlen(text);
    for (size_t i = 0; i + n <= r->value_len; i++)
        if (memcmp((const char *)r->value + i, text, n) == 0)
            return true;
    return false;
}

/* Whether two outputs are the same records, byte for byte. */
static bool same_outputs(const st_out_t *a, const st_out_t *b)
{
    if (st_out_count(a) != st_out_count(b))
        return false;
    for (size_t i = 0; i < st_out_count(a); i++) {
        st_out_rec_t x = st_out_record(a, i), y = st_out_record(b, i);
        if (strcmp(x.topic, y.topic) != 0 || x.key_len != y.key_len ||
            memcmp(x.key, y.key, x.key_len) != 0 || x.value_len != y.value_len ||
            memcmp(x.value, y.value, x.value_len) != 0)
            return false;
    }
    return true;
}

#define T0   1300000000000LL /* a session start, ms */
#define HOUR 3600000LL

/* ---- tests ---- */

static void test_stats_from_closed(void)
{
    clu_store_t *store = clu_store_mem_new(WINDOW);
    rig_t r;
    ST_REQUIRE(store && rig_init(&r, store, no_bundle_dir, 0) == 0);
    const double lens[] = {600, 1800, 300, 1200, 900};
    batch_t b = {0};
    for (int k = 0; k < 5; k++) {
        add_opened(&b, 0, 2 * k, "alice", T0 + k * HOUR);
        add_closed(&b, 0, 2 * k + 1, "alice", T0 + k * HOUR, lens[k], k + 1);
        if (k == 2) { /* two batches */
            ST_REQUIRE(run(&r, &b) == 0);
            batch_clear(&b);
        }
    }
    add_closed(&b, 1, 0, "bob", T0, 42, 2);
    ST_REQUIRE(run(&r, &b) == 0);
    ST_EQ_INT(st_out_count(r.out), 0); /* no bundle: no assignments */
    view_t v;
    view(store, "alice", &v);
    ST_EQ_INT(v.prof.n, 5);
    ST_NEAR(v.prof.sum_s, 4800, 1e-9);
    ST_NEAR(v.prof.max_s, 1800, 1e-9);
    ST_EQ_INT(v.prof.tracks, 15);
    ST_EQ_INT(v.prof.n_lens, WINDOW); /* the last three, oldest first */
    ST_NEAR(v.prof.lens[0], 300, 1e-9);
    ST_NEAR(v.prof.lens[1], 1200, 1e-9);
    ST_NEAR(v.prof.lens[2], 900, 1e-9);
    ST_EQ_INT(v.s.last_closed_ms, T0 + 4 * HOUR);
    ST_EQ_INT(v.s.stored[0], 9);
    ST_EQ_INT(v.p.stored[0], -1);
    ST_EQ_INT(v.cluster.cluster, -1);
    view(store, "bob", &v);
    ST_EQ_INT(v.prof.n, 1);
    ST_NEAR(v.prof.sum_s, 42, 1e-9);
    ST_EQ_INT(v.s.stored[0], -1); /* bob's marker is on partition 1 */
    batch_clear(&b);
    rig_free(&r);
    clu_store_mem_destroy(store);
}

/* Two users' CLOSED, enough for bob to leave the cold cluster: outputs with a bundle. */
static void fill_two_users(batch_t *b)
{
    for (int k = 0; k < COLD_MIN + 1; k++) {
        add_closed(b, 0, k, "new_ann", T0 + k * HOUR, 600 + 60 * k, 3);
        add_closed(b, 1, k, "new_bob", T0 + k * HOUR, 1200 + 60 * k, 5);
    }
}

static void test_redo_after_failed_write(void)
{
    batch_t b = {0};
    fill_two_users(&b);
    /* The reference: one clean run. */
    clu_store_t *ref_store = clu_store_mem_new(WINDOW);
    rig_t ref;
    ST_REQUIRE(ref_store && rig_init(&ref, ref_store, bundle_dir, 0) == 0);
    ST_REQUIRE(run(&ref, &b) == 0);
    ST_CHECK(count_topic(ref.out, CLUSTERS) >= 4); /* each user: cold, then assigned */
    view_t want_ann, want_bob;
    view(ref_store, "new_ann", &want_ann);
    view(ref_store, "new_bob", &want_bob);

    for (long written = 0; written <= 1; written++) {
        double changes = counter("stint_clusterer_assignments_changed_total");
        clu_store_t *store = clu_store_mem_new(WINDOW);
        rig_t a, b2;
        ST_REQUIRE(store && rig_init(&a, store, bundle_dir, 0) == 0);
        ST_REQUIRE(process(&a, &b) == 0);
        ST_CHECK(same_outputs(a.out, ref.out));
        clu_store_mem_fail_after(store, written); /* a crash during the write */
        ST_EQ_INT(apply(&a), -1);
        /* After a restart the batch is processed again: what was written is skipped (its
         * outputs are in Kafka already), the rest gives the same outputs as the first time. */
        ST_REQUIRE(rig_init(&b2, store, bundle_dir, 0) == 0);
        ST_REQUIRE(process(&b2, &b) == 0);
        if (written == 0) {
            ST_CHECK(same_outputs(b2.out, ref.out));
        } else {
            st_rec_cluster_t x;
            size_t bob = 0;
            for (size_t i = 0; nth_assignment(b2.out, i, &x); i++)
                bob += x.user_id.len == 7 && memcmp(x.user_id.ptr, "new_bob", 7) == 0;
            ST_EQ_INT(bob, count_topic(b2.out, CLUSTERS));
            ST_CHECK(bob > 0);
        }
        ST_EQ_INT(apply(&b2), 0);
        /* Counted by the attempt that applied the batch only. */
        ST_EQ_INT(counter("stint_clusterer_assignments_changed_total") - changes,
                  count_topic(b2.out, CLUSTERS));
        view_t ann, bob;
        view(store, "new_ann", &ann);
        view(store, "new_bob", &bob);
        ST_EQ_INT(ann.prof.n, want_ann.prof.n);
        ST_NEAR(ann.prof.sum_s, want_ann.prof.sum_s, 1e-9);
        ST_EQ_INT(bob.prof.n, want_bob.prof.n);
        ST_NEAR(bob.prof.sum_s, want_bob.prof.sum_s, 1e-9);
        ST_EQ_INT(ann.cluster.cluster, want_ann.cluster.cluster);
        ST_EQ_INT(bob.cluster.cluster, want_bob.cluster.cluster);
        ST_EQ_INT(bob.cluster.cold, want_bob.cluster.cold);
        rig_free(&a);
        rig_free(&b2);
        clu_store_mem_destroy(store);
    }
    rig_free(&ref);
    clu_store_mem_destroy(ref_store);
    batch_clear(&b);
}

static void test_second_owner(void)
{
    clu_store_t *store = clu_store_mem_new(WINDOW);
    rig_t first, late, racing, stale, overlap;
    ST_REQUIRE(store && rig_init(&first, store, bundle_dir, 0) == 0 &&
               rig_init(&late, store, bundle_dir, 0) == 0 &&
               rig_init(&racing, store, bundle_dir, 0) == 0 &&
               rig_init(&stale, store, bundle_dir, 0) == 0 &&
               rig_init(&overlap, store, bundle_dir, 0) == 0);
    /* The batch: four sessions and two profiles; a prefix of it; and a longer batch. */
    batch_t b = {0}, prefix = {0}, longer = {0};
    for (int k = 0; k < 6; k++) {
        if (k < 2)
            add_closed(&prefix, 0, k, "carol", T0 + k * HOUR, 100 * (k + 1), 1);
        if (k < 4)
            add_closed(&b, 0, k, "carol", T0 + k * HOUR, 100 * (k + 1), 1);
        add_closed(&longer, 0, k, "carol", T0 + k * HOUR, 100 * (k + 1), 1);
    }
    add_profile(&prefix, 0, 0, "carol", "f", 30, "Peru", 1100000000000LL);
    for (int k = 0; k < 2; k++) {
        add_profile(&b, 0, k, "carol", "f", 30 + k, "Peru", 1100000000000LL);
        add_profile(&longer, 0, k, "carol", "f", 30 + k, "Peru", 1100000000000LL);
    }
    /* Other owners read the user before the first one writes. */
    ST_REQUIRE(process(&racing, &b) == 0);
    ST_REQUIRE(process(&stale, &prefix) == 0);
    ST_REQUIRE(process(&overlap, &longer) == 0);
    ST_REQUIRE(run(&first, &b) == 0);
    view_t v;
    view(store, "carol", &v);
    ST_EQ_INT(v.prof.n, 4);
    ST_NEAR(v.prof.sum_s, 1000, 1e-9);
    ST_EQ_INT(v.prof.demo.age, 31);
    /* The same batch, processed after the first owner applied it: every record is skipped. */
    double replayed = counter("stint_clusterer_replayed_total");
    ST_REQUIRE(run(&late, &b) == 0);
    ST_EQ_INT(st_out_count(late.out), 0);
    ST_EQ_INT(counter("stint_clusterer_replayed_total") - replayed, 6);
    /* The same batch and a prefix of it, read before the first owner wrote: the markers refuse
     * their writes (the prefix's older profile does not come back). */
    ST_EQ_INT(apply(&racing), 0);
    ST_EQ_INT(apply(&stale), 0);
    view(store, "carol", &v);
    ST_EQ_INT(v.prof.n, 4);
    ST_NEAR(v.prof.sum_s, 1000, 1e-9);
    ST_EQ_INT(v.prof.demo.age, 31);
    ST_EQ_INT(v.s.stored[0], 3);
    ST_EQ_INT(v.p.stored[0], 1);
    /* A longer batch read before the first write passes the markers (its last offset is beyond
     * them) but counts only the CLOSED after the stored lc. */
    ST_EQ_INT(apply(&overlap), 0);
    view(store, "carol", &v);
    ST_EQ_INT(v.prof.n, 6);
    ST_NEAR(v.prof.sum_s, 2100, 1e-9);
    ST_NEAR(v.prof.max_s, 600, 1e-9);
    ST_EQ_INT(v.prof.n_lens, WINDOW);
    ST_NEAR(v.prof.lens[0], 400, 1e-9);
    ST_EQ_INT(v.s.stored[0], 5);
    ST_EQ_INT(v.s.last_closed_ms, T0 + 5 * HOUR);
    ST_EQ_INT(v.prof.demo.age, 31);
    rig_free(&first);
    rig_free(&late);
    rig_free(&racing);
    rig_free(&stale);
    rig_free(&overlap);
    clu_store_mem_destroy(store);
    batch_clear(&b);
    batch_clear(&prefix);
    batch_clear(&longer);
}

static void test_copies(void)
{
    clu_store_t *store = clu_store_mem_new(WINDOW);
    rig_t r;
    ST_REQUIRE(store && rig_init(&r, store, no_bundle_dir, 0) == 0);
    batch_t b = {0};
    add_opened(&b, 0, 0, "dave", T0);
    add_closed(&b, 0, 1, "dave", T0, 500, 2);
    add_opened(&b, 0, 2, "dave", T0 + HOUR);
    add_closed(&b, 0, 3, "dave", T0 + HOUR, 700, 2);
    ST_REQUIRE(run(&r, &b) == 0);
    batch_clear(&b);
    /* The sessionizer re-emits both sessions after a crash, byte-identical, at new offsets, then
     * goes on with a new one; one copy even lands in the same batch as its original. */
    double copies = counter("stint_clusterer_copies_total");
    add_opened(&b, 0, 4, "dave", T0);
    add_closed(&b, 0, 5, "dave", T0, 500, 2);
    add_opened(&b, 0, 6, "dave", T0 + HOUR);
    add_closed(&b, 0, 7, "dave", T0 + HOUR, 700, 2);
    add_closed(&b, 0, 8, "dave", T0 + 2 * HOUR, 900, 2);
    add_closed(&b, 0, 9, "dave", T0 + 2 * HOUR, 900, 2);
    ST_REQUIRE(process(&r, &b) == 0); /* its outputs failed: processed again, counted once */
    ST_REQUIRE(run(&r, &b) == 0);
    ST_EQ_INT(counter("stint_clusterer_copies_total") - copies, 3);
    view_t v;
    view(store, "dave", &v);
    ST_EQ_INT(v.prof.n, 3);
    ST_NEAR(v.prof.sum_s, 2100, 1e-9);
    ST_EQ_INT(v.prof.tracks, 6);
    ST_EQ_INT(v.s.stored[0], 9);
    ST_EQ_INT(v.s.last_closed_ms, T0 + 2 * HOUR);
    batch_clear(&b);
    rig_free(&r);
    clu_store_mem_destroy(store);
}

static void test_partition_overflow(void)
{
    clu_store_t *store = clu_store_mem_new(WINDOW);
    rig_t r;
    ST_REQUIRE(store && rig_init(&r, store, no_bundle_dir, 0) == 0);
    batch_t b = {0};
    /* One user's sessions from nine partitions (a repartitioning), and a profile. */
    for (int p = 0; p < ST_APPLIED_PARTS_MAX + 1; p++)
        add_closed(&b, p, 100 + p, "erin", T0 + p * HOUR, 60, 1);
    add_profile(&b, 3, 7, "erin", "m", 40, NULL, -1);
    double overflow = counter("stint_clusterer_applied_overflow_total");
    ST_REQUIRE(process(&r, &b) == 0);
    ST_EQ_INT(count_topic(r.out, DLQ), 1);
    ST_REQUIRE(st_out_count(r.out) == 1);
    st_out_rec_t dl = st_out_record(r.out, 0);
    ST_EQ_STR(dl.topic, DLQ);
    ST_CHECK(holds(&dl, "\"error_code\":\"" ST_APPLIED_OVERFLOW_CODE "\""));
    ST_CHECK(holds(&dl, "\"source_partition\":8,"));
    ST_EQ_INT(counter("stint_clusterer_applied_overflow_total") - overflow, 0); /* at apply */
    ST_EQ_INT(apply(&r), 0);
    ST_EQ_INT(counter("stint_clusterer_applied_overflow_total") - overflow, 1);
    view_t v;
    view(store, "erin", &v);
    ST_EQ_INT(v.prof.n, ST_APPLIED_PARTS_MAX);
    ST_EQ_INT(v.s.stored[0], 100);
    ST_EQ_INT(v.prof.demo.gender, 'm');
    ST_EQ_INT(v.prof.demo.age, 40);
    batch_clear(&b);
    rig_free(&r);
    clu_store_mem_destroy(store);
}

/* A CLOSED starting years after its record's time (a wrong clock, a foreign producer) goes to the
 * dead-letter topic: counted, it would have made every later real session of the user a copy. */
static void test_start_after_record_time(void)
{
    clu_store_t *store = clu_store_mem_new(WINDOW);
    rig_t r;
    ST_REQUIRE(store && rig_init(&r, store, no_bundle_dir, 0) == 0);
    batch_t b = {0};
    add_closed(&b, 0, 0, "fay", T0 + 3000LL * 86400000, 60, 1); /* 8 years later */
    b.record_ms[0] = T0 + HOUR;
    add_closed(&b, 0, 1, "fay", T0, 100, 2);
    b.record_ms[1] = T0 + HOUR;
    add_closed(&b, 0, 2, "fay", T0 + 2 * HOUR, 200, 2); /* within a day of its record: counted */
    b.record_ms[2] = T0 + HOUR;
    ST_REQUIRE(run(&r, &b) == 0);
    ST_EQ_INT(count_topic(r.out, DLQ), 1);
    st_out_rec_t dl = st_out_record(r.out, 0);
    ST_CHECK(holds(&dl, "more than a day after"));
    view_t v;
    view(store, "fay", &v);
    ST_EQ_INT(v.prof.n, 2);
    ST_NEAR(v.prof.sum_s, 300, 1e-9);
    batch_clear(&b);
    rig_free(&r);
    clu_store_mem_destroy(store);
}

static void test_profiles(void)
{
    clu_store_t *store = clu_store_mem_new(WINDOW);
    rig_t r;
    ST_REQUIRE(store && rig_init(&r, store, no_bundle_dir, 0) == 0);
    batch_t b = {0};
    add_profile(&b, 0, 0, "fay", "f", 27, "Japan", 1100000000123LL);
    ST_REQUIRE(run(&r, &b) == 0);
    view_t v;
    view(store, "fay", &v);
    ST_EQ_INT(v.prof.demo.gender, 'f');
    ST_EQ_INT(v.prof.demo.age, 27);
    ST_EQ_STR(v.prof.demo.country, "Japan");
    ST_EQ_INT(v.prof.demo.registered_s, 1100000000);
    ST_EQ_INT(v.p.stored[0], 0);
    ST_EQ_INT(v.prof.n, 0);
    batch_clear(&b);
    /* A newer profile replaces every field, unknown ones included; the last of a batch wins. */
    add_profile(&b, 0, 1, "fay", "x", 28, "Chile", -1);
    add_profile(&b, 0, 2, "fay", NULL, -1, NULL, -1);
    ST_REQUIRE(run(&r, &b) == 0);
    view(store, "fay", &v);
    ST_EQ_INT(v.prof.demo.gender, 0);
    ST_EQ_INT(v.prof.demo.age, -1);
    ST_EQ_STR(v.prof.demo.country, "");
    ST_EQ_INT(v.prof.demo.registered_s, 0);
    ST_EQ_INT(v.p.stored[0], 2);
    /* Replayed: skipped, the profile stays. */
    batch_clear(&b);
    add_profile(&b, 0, 0, "fay", "f", 27, "Japan", 1100000000123LL);
    ST_REQUIRE(run(&r, &b) == 0);
    view(store, "fay", &v);
    ST_EQ_STR(v.prof.demo.country, "");
    batch_clear(&b);
    rig_free(&r);
    clu_store_mem_destroy(store);
}

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The cluster the bundle's model gives a user with these n lengths (features mean, median of the
 * last WINDOW, sessions); -2 when the bundle has other features. */
static int expected_cluster(st_bundle_t *bundle, const double *lens, int n)
{
    int nf = 0, m = n < WINDOW ? n : WINDOW;
    const char *const *names = st_bundle_profile_feature_names(bundle, &nf);
    double last[WINDOW], sum = 0, x[ST_BUNDLE_MAX_PROFILE_FEATS] = {0};
    for (int i = 0; i < n; i++)
        sum += lens[i];
    memcpy(last, lens + n - m, (size_t)m * sizeof *last);
    qsort(last, (size_t)m, sizeof *last, cmp_dbl);
    for (int f = 0; f < nf; f++) {
        if (strcmp(names[f], "mean") == 0)
            x[f] = sum / n;
        else if (strcmp(names[f], "median") == 0)
            x[f] = m % 2 ? last[m / 2] : 0.5 * (last[m / 2 - 1] + last[m / 2]);
        else if (strcmp(names[f], "sessions") == 0)
            x[f] = n;
        else
            return -2;
    }
    return st_bundle_assign_cluster(bundle, x);
}

static void test_assignments(void)
{
    clu_store_t *store = clu_store_mem_new(WINDOW);
    rig_t r;
    ST_REQUIRE(store && rig_init(&r, store, bundle_dir, 1) == 0);
    st_bundle_t *bundle = st_bwatch_bundle(r.model);
    ST_REQUIRE(bundle != NULL && st_bundle_k(bundle) > 0);
    int k = st_bundle_k(bundle);
    char version[ST_BWATCH_VERSION_MAX + 1];
    snprintf(version, sizeof version, "%s", st_bwatch_version(r.model));
    double changes = counter("stint_clusterer_assignments_changed_total"),
           cold = counter("stint_clusterer_cold_assignments_total");
    /* A new user: cold below COLD_MIN sessions (published once), then a cluster of the model. */
    const double lens[] = {300, 420, 3600, 5000};
    batch_t b = {0};
    add_opened(&b, 0, 0, "new_gus", T0);
    ST_REQUIRE(run(&r, &b) == 0);
    ST_EQ_INT(st_out_count(r.out), 0); /* an OPENED assigns nothing */
    batch_clear(&b);
    for (int i = 0; i < COLD_MIN - 1; i++)
        add_closed(&b, 0, 1 + i, "new_gus", T0 + i * HOUR, lens[i], 2);
    ST_REQUIRE(run(&r, &b) == 0);
    ST_EQ_INT(count_topic(r.out, CLUSTERS), 1);
    st_rec_cluster_t a;
    ST_REQUIRE(nth_assignment(r.out, 0, &a));
    ST_EQ_INT(a.cluster, k);
    ST_CHECK(a.cold);
    ST_CHECK(a.clustering_version.len == strlen(version) &&
             memcmp(a.clustering_version.ptr, version, a.clustering_version.len) == 0);
    view_t v;
    view(store, "new_gus", &v);
    ST_EQ_INT(v.cluster.cluster, k);
    ST_CHECK(v.cluster.cold);
    ST_EQ_STR(v.cluster.version, version);
    batch_clear(&b);
    for (int i = COLD_MIN - 1; i < 4; i++)
        add_closed(&b, 0, 1 + i, "new_gus", T0 + i * HOUR, lens[i], 2);
    ST_REQUIRE(run(&r, &b) == 0);
    int want_cluster = expected_cluster(bundle, lens, 4);
    ST_REQUIRE(want_cluster != -2);
    ST_CHECK(want_cluster >= 0 && want_cluster < k);
    ST_REQUIRE(count_topic(r.out, CLUSTERS) >= 1);
    ST_REQUIRE(nth_assignment(r.out, count_topic(r.out, CLUSTERS) - 1, &a));
    ST_EQ_INT(a.cluster, want_cluster);
    ST_CHECK(!a.cold);
    view(store, "new_gus", &v);
    ST_EQ_INT(v.cluster.cluster, a.cluster);
    ST_CHECK(!v.cluster.cold);
    /* A training user keeps its bundle cluster from its first record. */
    const char *trained = "user_000";
    int bundle_cluster = st_bundle_user_cluster(bundle, trained);
    ST_REQUIRE(bundle_cluster >= 0);
    batch_clear(&b);
    add_closed(&b, 1, 0, trained, T0, 60, 1);
    ST_REQUIRE(run(&r, &b) == 0);
    ST_EQ_INT(count_topic(r.out, CLUSTERS), 1);
    ST_REQUIRE(nth_assignment(r.out, 0, &a));
    ST_EQ_INT(a.cluster, bundle_cluster);
    ST_CHECK(!a.cold);
    ST_CHECK(counter("stint_clusterer_assignments_changed_total") - changes >= 3);
    ST_EQ_INT(counter("stint_clusterer_cold_assignments_total") - cold, 1);
    /* The re-fit (every second here) over the users seen: published through the store. */
    usleep(1100 * 1000);
    ST_REQUIRE(process(&r, &(batch_t){0}) == 0);
    ST_REQUIRE(apply(&r) == 0);
    const char *refit = clu_store_mem_refit(store);
    ST_REQUIRE(refit != NULL);
    json_t *doc = json_loads(refit, 0, NULL);
    ST_REQUIRE(doc != NULL);
    char want_version[ST_BWATCH_VERSION_MAX + 32];
    snprintf(want_version, sizeof want_version, "%s+refit-1", version);
    ST_EQ_STR(json_string_value(json_object_get(doc, "version")), want_version);
    ST_EQ_INT(json_integer_value(json_object_get(doc, "users")), 2);
    /* The features' means over both users: new_gus (4 sessions, the median of its last WINDOW
     * lengths) and the training user (one of 60 s). */
    json_t *feats = json_object_get(doc, "features"), *mean = json_object_get(doc, "mean");
    size_t checked = 0;
    for (size_t f = 0; f < json_array_size(feats); f++) {
        const char *name = json_string_value(json_array_get(feats, f));
        double got = json_real_value(json_array_get(mean, f)), want = NAN;
        if (strcmp(name, "mean") == 0)
            want = ((300 + 420 + 3600 + 5000) / 4.0 + 60) / 2;
        else if (strcmp(name, "median") == 0)
            want = (3600 + 60) / 2.0;
        else if (strcmp(name, "sessions") == 0)
            want = (4 + 1) / 2.0;
        ST_NEAR(got, want, 1e-9);
        checked++;
    }
    ST_EQ_INT(checked, 3);
    ST_EQ_STR(json_string_value(json_object_get(doc, "instance")), "test:1");
    json_decref(doc);
    /* A restarted instance (a new core over the same store) goes on counting: its first re-fit
     * is the store's second, never a second "+refit-1". */
    rig_free(&r);
    ST_REQUIRE(rig_init(&r, store, bundle_dir, 1) == 0);
    batch_clear(&b);
    add_closed(&b, 0, 10, "new_gus", T0 + 10 * HOUR, 700, 2);
    add_closed(&b, 1, 1, trained, T0 + HOUR, 90, 1);
    ST_REQUIRE(run(&r, &b) == 0);
    usleep(1100 * 1000);
    ST_REQUIRE(process(&r, &(batch_t){0}) == 0);
    ST_REQUIRE(apply(&r) == 0);
    doc = json_loads(clu_store_mem_refit(store), 0, NULL);
    ST_REQUIRE(doc != NULL);
    snprintf(want_version, sizeof want_version, "%s+refit-2", version);
    ST_EQ_STR(json_string_value(json_object_get(doc, "version")), want_version);
    json_decref(doc);
    batch_clear(&b);
    rig_free(&r);
    clu_store_mem_destroy(store);
}

/* A bundle that appears while a batch is retried (its store read failed) is taken only after
 * that batch is applied: the retry assigns nothing, as the first attempt would have, and a later
 * batch assigns with it. */
static void test_no_swap_inside_a_retried_batch(void)
{
    char link[400];
    snprintf(link, sizeof link, "%s/swap-model", tmp_root);
    clu_store_t *store = clu_store_mem_new(WINDOW);
    rig_t r;
    ST_REQUIRE(store && rig_init_polled(&r, store, link, 10, 0) == 0);
    const char *trained = "user_000"; /* a training user: assigned from its first record */
    batch_t b = {0};
    add_closed(&b, 0, 0, trained, T0, 60, 1);
    clu_store_mem_fail_reads(store, true);
    ST_EQ_INT(process(&r, &b), -1);
    ST_REQUIRE(symlink(bundle_dir, link) == 0);
    /* the watcher (10 ms polls) loads it; only clu_process swaps it in */
    for (int i = 0; i < 3000 && !st_bwatch_pending(r.model); i++)
        usleep(10 * 1000);
    ST_REQUIRE(st_bwatch_pending(r.model));
    clu_store_mem_fail_reads(store, false);
    ST_REQUIRE(run(&r, &b) == 0);
    ST_EQ_INT(count_topic(r.out, CLUSTERS), 0);
    bool assigned = false;
    for (int i = 1; i <= 100 && !assigned; i++) {
        batch_clear(&b);
        add_closed(&b, 0, i, trained, T0 + i * HOUR, 60, 1);
        ST_REQUIRE(run(&r, &b) == 0);
        assigned = count_topic(r.out, CLUSTERS) == 1;
        if (!assigned)
            usleep(50 * 1000);
    }
    ST_CHECK(assigned);
    batch_clear(&b);
    rig_free(&r);
    clu_store_mem_destroy(store);
}

/* ---- a small k-means bundle ---- */

static int train_bundle(const char *dir)
{
    char err[512] = "";
    st_dataset_t *ds = st_dataset_new();
    if (!ds)
        return -1;
    int rc = -1;
    for (int u = 0; u < 12; u++) {
        char uid[32];
        snprintf(uid, sizeof uid, "user_%03d", u);
        st_dataset_profile_t prof = {.gender = u % 2 ? 'm' : 'f', .age = 20 + u};
        if (st_dataset_add_profile(ds, uid, &prof, err, sizeof err) != 0)
            goto out;
        int64_t t = 1200000000 + u * 37;
        for (int k = 0; k < 14; k++) {
            /* Two kinds of listeners: short sessions and long ones. */
            double len = (u % 2 ? 300 : 4000) + 10 * ((u * 31 + k * 17) % 40);
            if (st_dataset_add_session(ds, uid, t, len, 4, 0, err, sizeof err) != 0)
                goto out;
            t += (int64_t)len + 3600 + 977 * ((u + 3 * k) % 50);
        }
    }
    st_dataset_split_cfg_t sc;
    st_dataset_split_default(&sc);
    if (st_dataset_finalize(ds, err, sizeof err) != 0 || st_dataset_split(ds, &sc, err, sizeof err))
        goto out;
    st_bundle_spec_t spec;
    st_bundle_spec_default(&spec);
    spec.epochs = 1;
    spec.window = 4;
    spec.units[0] = 4;
    spec.cluster = ST_BUNDLE_CLUSTER_KMEANS;
    spec.k = 2;
    spec.min_cluster_users = 100; /* no per-cluster networks: only the clustering matters */
    st_bundle_t *b = st_bundle_train(ds, &spec, NULL, NULL, err, sizeof err);
    if (b && st_bundle_save(b, dir, NULL, err, sizeof err) == 0)
        rc = 0;
    st_bundle_destroy(b);
out:
    if (rc != 0)
        fprintf(stderr, "bundle: %s\n", err);
    st_dataset_destroy(ds);
    return rc;
}

int main(void)
{
    if (!mkdtemp(tmp_root))
        return 1;
    snprintf(bundle_dir, sizeof bundle_dir, "%s/bundle", tmp_root);
    snprintf(no_bundle_dir, sizeof no_bundle_dir, "%s/none", tmp_root);
    const char *src = getenv("STINT_SOURCE_DIR");
    char schemas[1024], err[512] = "";
    snprintf(schemas, sizeof schemas, "%s/schemas", src ? src : STINT_SOURCE_DIR);
    reg = st_avro_registry_new(schemas, NULL, err, sizeof err);
    ev_codec = reg ? st_avro_codec_new(reg, "SessionEvent", SESSIONS, err, sizeof err) : NULL;
    prof_codec = reg ? st_avro_codec_new(reg, "UserProfile", PROFILES, err, sizeof err) : NULL;
    clu_codec = reg ? st_avro_codec_new(reg, "ClusterAssignment", NULL, err, sizeof err) : NULL;
    if (!ev_codec || !prof_codec || !clu_codec) {
        fprintf(stderr, "setup: %s\n", err);
        return 1;
    }
    if (train_bundle(bundle_dir) != 0)
        return 1;
    ST_RUN(test_stats_from_closed);
    ST_RUN(test_redo_after_failed_write);
    ST_RUN(test_second_owner);
    ST_RUN(test_copies);
    ST_RUN(test_partition_overflow);
    ST_RUN(test_start_after_record_time);
    ST_RUN(test_profiles);
    ST_RUN(test_assignments);
    ST_RUN(test_no_swap_inside_a_retried_batch);
    st_avro_codec_destroy(ev_codec);
    st_avro_codec_destroy(prof_codec);
    st_avro_codec_destroy(clu_codec);
    st_avro_registry_destroy(reg);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_root);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup failed\n");
    return st_test_summary();
}
