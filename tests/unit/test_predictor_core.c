/* Unit tests of the predictor's core (services/predictor/pred_core.c) on the in-memory store: the
 * baseline flow (OPENED -> Prediction, CLOSED -> Outcome), a batch redone after its write failed
 * (same outputs, applied once), a second owner of the partition applying the same batch (refused
 * by the markers), re-emitted copies and corrections, a user spread over more partitions than
 * st_applied allows (dead letter), a restart on the same store, a bundle swap between batches
 * only, and the model's input for every session of a replay equal to training's row. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "pred_core.h"
#include "pred_store.h"
#include "st_bundle.h"
#include "st_dataset.h"
#include "st_records.h"
#include "st_test.h"
#include "st_time.h"

static st_avro_registry_t *reg;
static st_avro_codec_t *ev_codec, *pred_codec, *out_codec;
static char tmp_root[] = "/tmp/stint-test-pred-XXXXXX";

/* ---- a rig: one core over a store, and the batch's messages ---- */

typedef struct {
    pred_store_t *store;
    st_bwatch_t *model;
    pred_mae_t *mae;
    pc_t *pc;
    st_out_t *out;
    st_buf_t bytes; /* the encoded events of the batch, back to back */
    size_t off[64], len[64];
    int32_t part[64];
    int64_t offset[64];
    size_t n;
    int64_t next_offset[16];
} rig_t;

static const pc_config_t pcfg = {.predictions_topic = "predictions",
                                 .outcomes_topic = "predictions.outcomes",
                                 .prediction_ttl_s = 604800,
                                 .baseline_default_s = 1800};

static pc_t *core_new(rig_t *r)
{
    char err[256] = "";
    pc_t *pc = pc_new(&pcfg, r->store, reg, r->model, r->mae, err, sizeof err);
    if (!pc)
        fprintf(stderr, "pc_new: %s\n", err);
    return pc;
}

static int rig_init(rig_t *r, pred_store_t *store, const char *model_dir)
{
    memset(r, 0, sizeof *r);
    char err[256] = "";
    r->store = store;
    r->model = st_bwatch_new(model_dir, 0, err, sizeof err);
    r->mae = pred_mae_new(100);
    r->out = st_out_new("predictions.dlq");
    if (!r->model || !r->mae || !r->out)
        return -1;
    r->pc = core_new(r);
    return r->pc ? 0 : -1;
}

static void rig_free(rig_t *r)
{
    pc_destroy(r->pc);
    pred_mae_destroy(r->mae);
    st_bwatch_destroy(r->model);
    st_out_destroy(r->out);
    st_buf_free(&r->bytes);
}

/* Queues one event of the next batch (partition p, the partition's next offset). */
static void add(rig_t *r, int32_t p, const st_rec_session_event_t *ev)
{
    st_buf_t enc = ST_BUF_INIT;
    st_err_t e = {0};
    if (st_rec_session_event_encode(ev_codec, ev, &enc, &e) != 0) {
        ST_FAIL_AT("encode: %s", e.text);
        return;
    }
    r->off[r->n] = r->bytes.len;
    r->len[r->n] = enc.len;
    r->part[r->n] = p;
    r->offset[r->n] = r->next_offset[p]++;
    st_buf_append(&r->bytes, enc.data, enc.len);
    r->n++;
    st_buf_free(&enc);
}

static void batch_msgs(const rig_t *r, st_msg_t *msgs)
{
    for (size_t i = 0; i < r->n; i++)
        msgs[i] = (st_msg_t){.topic = "sessions",
                             .partition = r->part[i],
                             .offset = r->offset[i],
                             .key = "k",
                             .key_len = 1,
                             .value = r->bytes.data + r->off[i],
                             .value_len = r->len[i]};
}

/* process() of the queued batch on core pc (outputs in r->out); the batch stays queued. */
static int process(rig_t *r, pc_t *pc)
{
    st_msg_t msgs[64];
    batch_msgs(r, msgs);
    st_out_reset(r->out);
    st_err_t e = {0};
    int rc = pc_process(pc, msgs, r->n, r->out, &e);
    if (rc != 0)
        fprintf(stderr, "process: %s\n", e.text);
    return rc;
}

static int apply(pc_t *pc)
{
    st_err_t e = {0};
    return pc_apply(pc, &e);
}

/* process + apply, then the next batch starts empty. */
static int run(rig_t *r)
{
    int rc = process(r, r->pc) == 0 && apply(r->pc) == 0 ? 0 : -1;
    r->n = 0;
    st_buf_reset(&r->bytes);
    return rc;
}

static st_rec_session_event_t opened(const char *user, char *sid, size_t sid_size, int64_t start_ms,
                                     int index)
{
    st_session_id_format(user, strlen(user), start_ms, sid, sid_size);
    st_rec_session_event_t ev = {.session_id = st_str(sid),
                                 .user_id = st_str(user),
                                 .kind = ST_SESSION_EVENT_OPENED,
                                 .start_ms = start_ms,
                                 .session_index = index};
    return ev;
}

static st_rec_session_event_t closed(const char *user, char *sid, size_t sid_size, int64_t start_ms,
                                     int index, double length_s)
{
    st_rec_session_event_t ev = opened(user, sid, sid_size, start_ms, index);
    ev.kind = ST_SESSION_EVENT_CLOSED;
    ev.length_s = (st_opt_f64_t){true, length_s};
    ev.end_ms = (st_opt_i64_t){true, start_ms + (int64_t)(length_s * 1000)};
    ev.last_start_ms = ev.end_ms;
    ev.track_count = 3;
    return ev;
}

/* Counts the outputs by topic; decodes the i-th prediction / outcome on request. */
static size_t count_topic(const st_out_t *out, const char *topic)
{
    size_t n = 0;
    for (size_t i = 0; i < st_out_count(out); i++)
        n += strcmp(st_out_record(out, i).topic, topic) == 0;
    return n;
}

static bool nth_prediction(const st_out_t *out, size_t k, st_rec_prediction_t *p)
{
    for (size_t i = 0; i < st_out_count(out); i++) {
        st_out_rec_t r = st_out_record(out, i);
        if (strcmp(r.topic, "predictions") != 0 || k--)
            continue;
        st_err_t e = {0};
        return st_rec_prediction_decode(pred_codec, r.value, r.value_len, p, &e) == 0;
    }
    return false;
}

static bool nth_outcome(const st_out_t *out, size_t k, st_rec_outcome_t *o)
{
    for (size_t i = 0; i < st_out_count(out); i++) {
        st_out_rec_t r = st_out_record(out, i);
        if (strcmp(r.topic, "predictions.outcomes") != 0 || k--)
            continue;
        st_err_t e = {0};
        return st_rec_outcome_decode(out_codec, r.value, r.value_len, o, &e) == 0;
    }
    return false;
}

static char no_model[300];

/* ---- tests ---- */

static void test_baseline_flow(void)
{
    rig_t r;
    pred_store_t *store = pred_store_mem_new();
    ST_REQUIRE(rig_init(&r, store, no_model) == 0);
    char sid[160], sid2[160];
    st_rec_session_event_t ev = opened("u1", sid, sizeof sid, 1000000, 0);
    add(&r, 0, &ev);
    ST_REQUIRE(run(&r) == 0);
    st_out_reset(r.out);
    ev = closed("u1", sid, sizeof sid, 1000000, 0, 1000);
    add(&r, 0, &ev);
    ev = opened("u1", sid2, sizeof sid2, 5000000, 1);
    ev.mean_session_length_s = (st_opt_f64_t){true, 1000};
    add(&r, 0, &ev);
    ST_REQUIRE(process(&r, r.pc) == 0);
    ST_EQ_INT(count_topic(r.out, "predictions.outcomes"), 1);
    ST_EQ_INT(count_topic(r.out, "predictions"), 1);
    st_rec_outcome_t o;
    ST_REQUIRE(nth_outcome(r.out, 0, &o));
    ST_EQ_STR(o.session_id.ptr, "u1:1000000");
    ST_NEAR(o.predicted_length_s, 1800, 1e-9); /* the first session: the default baseline */
    ST_NEAR(o.actual_length_s, 1000, 1e-9);
    ST_NEAR(o.abs_error_s, 800, 1e-9);
    ST_EQ_INT(o.predictor, ST_REC_PREDICTOR_BASELINE);
    st_rec_prediction_t p;
    ST_REQUIRE(nth_prediction(r.out, 0, &p));
    ST_EQ_STR(p.session_id.ptr, "u1:5000000");
    ST_NEAR(p.predicted_length_s, 1000, 1e-9); /* later sessions: the user's mean */
    ST_EQ_STR(p.model_version.ptr, "none");
    ST_EQ_INT(apply(r.pc), 0);
    ST_EQ_INT(pred_store_mem_lc(store, "u1"), 1000000);
    rig_free(&r);
    pred_store_mem_destroy(store);
}

static void test_redo_after_failed_write(void)
{
    rig_t r;
    pred_store_t *store = pred_store_mem_new();
    ST_REQUIRE(rig_init(&r, store, no_model) == 0);
    char sid[160];
    st_rec_session_event_t ev = opened("u2", sid, sizeof sid, 2000000, 0);
    add(&r, 3, &ev);
    /* The write fails (Redis away): the pipeline processes the batch again. */
    pred_store_mem_fail_after(store, 0);
    ST_REQUIRE(process(&r, r.pc) == 0);
    st_rec_prediction_t first;
    ST_REQUIRE(nth_prediction(r.out, 0, &first));
    double first_s = first.predicted_length_s;
    ST_EQ_INT(apply(r.pc), -1);
    ST_CHECK(pred_store_mem_open_text(store, "u2") == NULL);
    ST_REQUIRE(process(&r, r.pc) == 0);
    ST_EQ_INT(count_topic(r.out, "predictions"), 1);
    st_rec_prediction_t again;
    ST_REQUIRE(nth_prediction(r.out, 0, &again));
    ST_EQ_STR(again.session_id.ptr, "u2:2000000");
    ST_NEAR(again.predicted_length_s, first_s, 0);
    ST_EQ_INT(again.revision, 0);
    pred_store_mem_fail_after(store, -1);
    ST_EQ_INT(apply(r.pc), 0);
    const char *text = pred_store_mem_open_text(store, "u2");
    ST_REQUIRE(text != NULL);
    char *kept = strdup(text);
    /* The same batch once more (a consumer that resumed before the commit): skipped, no output. */
    ST_REQUIRE(process(&r, r.pc) == 0);
    ST_EQ_INT(st_out_count(r.out), 0);
    ST_EQ_INT(apply(r.pc), 0);
    ST_EQ_STR(pred_store_mem_open_text(store, "u2"), kept);
    free(kept);
    rig_free(&r);
    pred_store_mem_destroy(store);
}

static void test_refused_write(void)
{
    /* Two cores read the same state, both predict, the first writes, the second's write finds
     * the marker moved and writes nothing: the state is the first's. */
    pred_store_t *store = pred_store_mem_new();
    rig_t a, b;
    ST_REQUIRE(rig_init(&a, store, no_model) == 0 && rig_init(&b, store, no_model) == 0);
    char sid[160];
    st_rec_session_event_t ev = opened("u3", sid, sizeof sid, 3000000, 0);
    add(&a, 1, &ev);
    ev.revision = 1; /* b saw a different copy of the batch: the outcome of a race */
    add(&b, 1, &ev);
    ST_REQUIRE(process(&a, a.pc) == 0 && process(&b, b.pc) == 0);
    ST_EQ_INT(apply(a.pc), 0);
    char *after_a = strdup(pred_store_mem_open_text(store, "u3"));
    ST_EQ_INT(apply(b.pc), 0);
    ST_EQ_STR(pred_store_mem_open_text(store, "u3"), after_a);
    free(after_a);
    rig_free(&a);
    rig_free(&b);
    pred_store_mem_destroy(store);
}

static void test_copies_and_corrections(void)
{
    rig_t r;
    pred_store_t *store = pred_store_mem_new();
    ST_REQUIRE(rig_init(&r, store, no_model) == 0);
    char sid[160];
    st_rec_session_event_t op = opened("u4", sid, sizeof sid, 4000000, 0);
    add(&r, 0, &op);
    ST_REQUIRE(run(&r) == 0);
    /* A copy of the OPENED at a new offset: nothing. A correction (revision 1): a new
     * prediction with revision 1. */
    add(&r, 0, &op);
    st_rec_session_event_t corr = op;
    corr.revision = 1;
    add(&r, 0, &corr);
    ST_REQUIRE(process(&r, r.pc) == 0);
    ST_EQ_INT(count_topic(r.out, "predictions"), 1);
    st_rec_prediction_t p;
    ST_REQUIRE(nth_prediction(r.out, 0, &p));
    ST_EQ_INT(p.revision, 1);
    ST_EQ_INT(apply(r.pc), 0);
    r.n = 0;
    st_buf_reset(&r.bytes);
    st_rec_session_event_t cl = closed("u4", sid, sizeof sid, 4000000, 0, 600);
    add(&r, 0, &cl);
    ST_REQUIRE(process(&r, r.pc) == 0);
    ST_EQ_INT(count_topic(r.out, "predictions.outcomes"), 1);
    ST_EQ_INT(apply(r.pc), 0);
    r.n = 0;
    st_buf_reset(&r.bytes);
    /* The sessionizer re-emits the CLOSED after a crash, at a new offset: no second outcome. */
    add(&r, 0, &cl);
    ST_REQUIRE(process(&r, r.pc) == 0);
    ST_EQ_INT(st_out_count(r.out), 0);
    ST_EQ_INT(apply(r.pc), 0);
    rig_free(&r);
    pred_store_mem_destroy(store);
}

static void test_partition_overflow(void)
{
    rig_t r;
    pred_store_t *store = pred_store_mem_new();
    ST_REQUIRE(rig_init(&r, store, no_model) == 0);
    char sid[ST_APPLIED_PARTS_MAX + 1][160];
    for (int p = 0; p <= ST_APPLIED_PARTS_MAX; p++) {
        st_rec_session_event_t ev = opened("u5", sid[p], sizeof sid[p], 1000000 * (p + 1), p);
        add(&r, p, &ev);
    }
    ST_REQUIRE(process(&r, r.pc) == 0);
    ST_EQ_INT(count_topic(r.out, "predictions"), ST_APPLIED_PARTS_MAX);
    ST_EQ_INT(count_topic(r.out, "predictions.dlq"), 1);
    for (size_t i = 0; i < st_out_count(r.out); i++) {
        st_out_rec_t o = st_out_record(r.out, i);
        if (strcmp(o.topic, "predictions.dlq") != 0)
            continue;
        json_t *j = json_loadb(o.value, o.value_len, 0, NULL);
        ST_REQUIRE(j != NULL);
        ST_EQ_STR(json_string_value(json_object_get(j, "error_code")), ST_APPLIED_OVERFLOW_CODE);
        ST_EQ_INT(json_integer_value(json_object_get(j, "source_partition")), ST_APPLIED_PARTS_MAX);
        json_decref(j);
    }
    ST_EQ_INT(apply(r.pc), 0);
    rig_free(&r);
    pred_store_mem_destroy(store);
}

static void test_restart(void)
{
    pred_store_t *store = pred_store_mem_new();
    rig_t r;
    ST_REQUIRE(rig_init(&r, store, no_model) == 0);
    char sid[160];
    st_rec_session_event_t ev = opened("u6", sid, sizeof sid, 6000000, 0);
    add(&r, 2, &ev);
    ST_REQUIRE(run(&r) == 0);
    int64_t next = r.next_offset[2];
    rig_free(&r);
    /* A new process on the same state: the CLOSED joins the prediction made before. */
    ST_REQUIRE(rig_init(&r, store, no_model) == 0);
    r.next_offset[2] = next;
    ev = closed("u6", sid, sizeof sid, 6000000, 0, 2400);
    add(&r, 2, &ev);
    ST_REQUIRE(process(&r, r.pc) == 0);
    st_rec_outcome_t o;
    ST_REQUIRE(nth_outcome(r.out, 0, &o));
    ST_EQ_STR(o.session_id.ptr, "u6:6000000");
    ST_NEAR(o.abs_error_s, 600, 1e-9);
    ST_EQ_INT(apply(r.pc), 0);
    rig_free(&r);
    pred_store_mem_destroy(store);
}

/* ---- serving = training: the model's input for every session of a replay ---- */

typedef struct {
    const st_dataset_t *ds;
    const st_bundle_t *b;
    size_t compared, differ;
    char first_diff[200];
} cmp_t;

/* The row of session_id "<user>:<start_ms>" in ds. */
static long row_of(const st_dataset_t *ds, const char *sid)
{
    const char *colon = strrchr(sid, ':');
    int64_t start_s = st_dataset_start_s_of_ms(atoll(colon + 1));
    for (int u = 0; u < st_dataset_n_users(ds); u++) {
        const char *id = st_dataset_user_id(ds, u);
        if (strlen(id) != (size_t)(colon - sid) || memcmp(id, sid, strlen(id)) != 0)
            continue;
        size_t first = st_dataset_user_first(ds, u), n = st_dataset_user_rows(ds, u);
        for (size_t k = first; k < first + n; k++)
            if (st_dataset_rows(ds)[k].start_s == start_s)
                return (long)k;
    }
    return -1;
}

static void on_input(void *arg, const char *sid, const st_bundle_t *b, const st_bundle_input_t *in)
{
    cmp_t *c = arg;
    long row = row_of(c->ds, sid);
    if (row < 0) {
        c->differ++;
        return;
    }
    static float xs[4096], xt[4096];
    double rl[64], ru[64];
    int64_t rs[64];
    int rt[64];
    st_bundle_input_t t;
    st_bundle_input_from_row(b, c->ds, (size_t)row, &t, rl, rs, rt, ru);
    t.cluster = in->cluster;
    int ls = 0, lt = 0;
    int ns = st_bundle_features(b, in, xs, 4096, &ls),
        nt = st_bundle_features(b, &t, xt, 4096, &lt);
    c->compared++;
    if (ns < 0 || ns != nt || ls != lt || memcmp(xs, xt, (size_t)ns * sizeof *xs) != 0) {
        if (!c->differ++) {
            int k = 0;
            while (k < ns && xs[k] == xt[k])
                k++;
            snprintf(c->first_diff, sizeof c->first_diff,
                     "%s: steps %d vs %d, first difference at float %d: %.9g vs %.9g", sid, ls, lt,
                     k, k < ns ? xs[k] : 0, k < ns ? xt[k] : 0);
        }
    }
}

static void count_input(void *arg, const char *sid, const st_bundle_t *b,
                        const st_bundle_input_t *in)
{
    (void)sid;
    (void)b;
    (void)in;
    (*(size_t *)arg)++;
}

static void test_features_equal_training(void)
{
    /* A data set as `stint sessions` gives it: lengths in quarter seconds, shares in quarters. */
    char err[512] = "", dir[400];
    snprintf(dir, sizeof dir, "%s/bundle", tmp_root);
    st_dataset_t *ds = st_dataset_new();
    ST_REQUIRE(ds != NULL);
    for (int u = 0; u < 12; u++) {
        char uid[32];
        snprintf(uid, sizeof uid, "user_%03d", u);
        st_dataset_profile_t prof = {.gender = u % 3 == 0   ? 0
                                               : u % 3 == 1 ? 'm'
                                                            : 'f',
                                     .age = u % 4 == 0 ? -1 : 20 + u,
                                     .registered_s = u % 5 == 0 ? 0 : 1100000000 + u * 1000};
        snprintf(prof.country, sizeof prof.country, "%s", u % 2 ? "Japan" : "");
        ST_REQUIRE(st_dataset_add_profile(ds, uid, &prof, err, sizeof err) == 0);
        int64_t t = 1200000000 + u * 37;
        for (int k = 0; k < 14; k++) {
            double len = 60 + 0.25 * ((u * 31 + k * 17) % 4000);
            int tracks = 4 + (u + k) % 5;
            double share = (double)((u * k) % tracks) / tracks;
            share = round(share * 4) / 4; /* quarters: exact through the sessionizer's counts */
            int unknown = (int)llround(share * tracks);
            share = (double)unknown / tracks;
            ST_REQUIRE(st_dataset_add_session(ds, uid, t, len, tracks, share, err, sizeof err) ==
                       0);
            t += (int64_t)len + 3600 + 977 * ((u + 3 * k) % 50);
        }
    }
    st_dataset_split_cfg_t sc;
    st_dataset_split_default(&sc);
    ST_REQUIRE(st_dataset_finalize(ds, err, sizeof err) == 0);
    ST_REQUIRE(st_dataset_split(ds, &sc, err, sizeof err) == 0);
    st_bundle_spec_t spec;
    st_bundle_spec_default(&spec);
    spec.epochs = 1;
    spec.window = 6;
    spec.units[0] = 4;
    st_bundle_t *trained = st_bundle_train(ds, &spec, NULL, NULL, err, sizeof err);
    if (!trained)
        fprintf(stderr, "train: %s\n", err);
    ST_REQUIRE(trained != NULL);
    ST_REQUIRE(st_bundle_save(trained, dir, "{\"global_median_s\":900}", err, sizeof err) == 0);
    st_bundle_destroy(trained);
    /* A gbt bundle of the same rows and window, for test_short_history_serves_baseline. */
    char gbt_dir[400];
    snprintf(gbt_dir, sizeof gbt_dir, "%s/gbt", tmp_root);
    st_bundle_spec_gbt(&spec);
    spec.window = 6;
    spec.trees = 20;
    st_bundle_t *gbt = st_bundle_train(ds, &spec, NULL, NULL, err, sizeof err);
    if (!gbt)
        fprintf(stderr, "train gbt: %s\n", err);
    ST_REQUIRE(gbt != NULL);
    ST_REQUIRE(st_bundle_save(gbt, gbt_dir, "{\"global_median_s\":900}", err, sizeof err) == 0);
    st_bundle_destroy(gbt);

    pred_store_t *store = pred_store_mem_new();
    rig_t r;
    ST_REQUIRE(rig_init(&r, store, dir) == 0);
    st_bundle_t *b = st_bwatch_bundle(r.model);
    ST_REQUIRE(b != NULL);
    cmp_t c = {.ds = ds, .b = b};
    pc_set_input_hook(r.pc, on_input, &c);
    /* The sessionizer's view: per user a session history, each session's OPENED with the
     * features st_session_features gives (recent_n 32), then its CLOSED. */
    const st_dataset_row_t *rows = st_dataset_rows(ds);
    size_t opened_n = 0;
    for (int u = 0; u < st_dataset_n_users(ds); u++) {
        const char *uid = st_dataset_user_id(ds, u);
        const st_dataset_profile_t *p = st_dataset_profile(ds, u);
        st_session_history_t h;
        memset(&h, 0, sizeof h);
        size_t first = st_dataset_user_first(ds, u), n = st_dataset_user_rows(ds, u);
        for (size_t k = first; k < first + n; k++) {
            const st_dataset_row_t *q = &rows[k];
            /* Live listens carry milliseconds; training's rows see whole seconds. */
            int64_t start_ms = q->start_s * 1000 + (int64_t)((k * 373 + (size_t)u * 59) % 1000);
            char sid[160], g[2] = {p->gender, 0};
            st_session_features_t f;
            st_session_features(&h, start_ms, &f);
            st_rec_session_event_t ev = opened(uid, sid, sizeof sid, start_ms, q->index);
            st_rec_session_event_set_features(&ev, &f);
            ev.gender = st_str(p->gender ? g : NULL);
            ev.age = (st_opt_i32_t){p->age >= 0, p->age};
            ev.country = st_str(p->country[0] ? p->country : NULL);
            ev.registered_ms = (st_opt_i64_t){p->registered_s > 0, p->registered_s * 1000};
            add(&r, 0, &ev);
            opened_n++;
            st_session_summary_t sm = {0};
            sm.start_ms = start_ms;
            sm.length_ms = (int64_t)llround(q->length_s * 1000);
            sm.end_ms = sm.start_ms + sm.length_ms;
            sm.last_start_ms = sm.end_ms;
            sm.length_s = q->length_s;
            sm.track_count = (uint32_t)q->track_count;
            sm.unknown_duration_share = q->unknown_share;
            sm.unknown_duration_count = (uint32_t)llround(q->unknown_share * q->track_count);
            st_session_history_add(&h, &sm, 32);
            st_rec_session_event_t cl =
                closed(uid, sid, sizeof sid, start_ms, q->index, q->length_s);
            add(&r, 0, &cl);
            if (r.n >= 60)
                ST_REQUIRE(run(&r) == 0);
        }
    }
    ST_REQUIRE(run(&r) == 0);
    if (c.differ)
        fprintf(stderr, "first: %s\n", c.first_diff);
    ST_EQ_INT(c.compared, opened_n);
    ST_EQ_INT(c.differ, 0);
    printf("  model inputs equal to training's rows: %zu of %zu sessions\n", c.compared - c.differ,
           opened_n);
    rig_free(&r);
    pred_store_mem_destroy(store);
    st_dataset_destroy(ds);
}

/* An OPENED carrying fewer sessions than the model reads (a sessionizer with session.recent_n 3
 * under a W = 6 model): the model is not asked, the baseline answers. */
static void short_history_serves_baseline(const char *kind_dir)
{
    char dir[400];
    snprintf(dir, sizeof dir, "%s/%s", tmp_root, kind_dir); /* trained by the test above */
    pred_store_t *store = pred_store_mem_new();
    rig_t r;
    ST_REQUIRE(rig_init(&r, store, dir) == 0);
    ST_REQUIRE(st_bwatch_bundle(r.model) != NULL);
    size_t asked = 0;
    pc_set_input_hook(r.pc, count_input, &asked);
    st_session_history_t h;
    memset(&h, 0, sizeof h);
    char sid[10][160];
    for (int k = 0; k < 10; k++) {
        int64_t start_ms = 1300000000000LL + k * 86400000LL;
        st_session_features_t f;
        st_session_features(&h, start_ms, &f);
        st_rec_session_event_t ev = opened("short", sid[k], sizeof sid[k], start_ms, k);
        st_rec_session_event_set_features(&ev, &f);
        add(&r, 0, &ev);
        st_session_summary_t sm = {.start_ms = start_ms,
                                   .length_ms = 600000,
                                   .end_ms = start_ms + 600000,
                                   .last_start_ms = start_ms + 600000,
                                   .length_s = 600,
                                   .track_count = 4};
        st_session_history_add(&h, &sm, 3);
        st_rec_session_event_t cl = closed("short", sid[k], sizeof sid[k], start_ms, k, 600);
        add(&r, 0, &cl);
    }
    ST_REQUIRE(process(&r, r.pc) == 0);
    ST_EQ_INT(count_topic(r.out, "predictions"), 10);
    for (int k = 0; k < 10; k++) {
        st_rec_prediction_t p;
        ST_REQUIRE(nth_prediction(r.out, (size_t)k, &p));
        /* Sessions 0..3 need at most 3 earlier ones: the model; later ones need more. */
        ST_EQ_INT(p.predictor, k <= 3 ? ST_REC_PREDICTOR_MODEL : ST_REC_PREDICTOR_BASELINE);
    }
    ST_EQ_INT(asked, 4);
    ST_EQ_INT(apply(r.pc), 0);
    rig_free(&r);
    pred_store_mem_destroy(store);
}

/* An OPENED without the history's mean or median (an older sessionizer's) is not shown to the
 * model, which always had them in training: the baseline answers. */
static void test_no_history_stats_serves_baseline(void)
{
    char dir[400];
    snprintf(dir, sizeof dir, "%s/bundle", tmp_root); /* trained by test_features_equal_training */
    pred_store_t *store = pred_store_mem_new();
    rig_t r;
    ST_REQUIRE(rig_init(&r, store, dir) == 0);
    ST_REQUIRE(st_bwatch_bundle(r.model) != NULL);
    size_t asked = 0;
    pc_set_input_hook(r.pc, count_input, &asked);
    st_session_history_t h;
    memset(&h, 0, sizeof h);
    char sid[4][160];
    for (int k = 0; k < 4; k++) {
        int64_t start_ms = 1300000000000LL + k * 86400000LL;
        st_session_features_t f;
        st_session_features(&h, start_ms, &f);
        st_rec_session_event_t ev = opened("nostats", sid[k], sizeof sid[k], start_ms, k);
        st_rec_session_event_set_features(&ev, &f);
        if (k == 2)
            ev.mean_session_length_s.set = false;
        if (k == 3)
            ev.median_session_length_s.set = false;
        add(&r, 0, &ev);
        st_session_summary_t sm = {.start_ms = start_ms,
                                   .length_ms = 600000,
                                   .end_ms = start_ms + 600000,
                                   .last_start_ms = start_ms + 600000,
                                   .length_s = 600,
                                   .track_count = 4};
        st_session_history_add(&h, &sm, 3);
        st_rec_session_event_t cl = closed("nostats", sid[k], sizeof sid[k], start_ms, k, 600);
        add(&r, 0, &cl);
    }
    ST_REQUIRE(process(&r, r.pc) == 0);
    ST_EQ_INT(count_topic(r.out, "predictions"), 4);
    for (int k = 0; k < 4; k++) {
        st_rec_prediction_t p;
        ST_REQUIRE(nth_prediction(r.out, (size_t)k, &p));
        ST_EQ_INT(p.predictor, k < 2 ? ST_REC_PREDICTOR_MODEL : ST_REC_PREDICTOR_BASELINE);
    }
    ST_EQ_INT(asked, 2);
    ST_EQ_INT(apply(r.pc), 0);
    rig_free(&r);
    pred_store_mem_destroy(store);
}

/* A bundle that appears while a batch is retried (its store read failed) is taken only after
 * that batch is applied: the retry gives the outputs the first attempt would have. */
static void test_no_swap_inside_a_retried_batch(void)
{
    char dir[400], link[400], err[256] = "";
    snprintf(dir, sizeof dir, "%s/bundle", tmp_root); /* trained by test_features_equal_training */
    snprintf(link, sizeof link, "%s/swap-model", tmp_root);
    pred_store_t *store = pred_store_mem_new();
    rig_t r;
    ST_REQUIRE(rig_init(&r, store, no_model) == 0);
    st_bwatch_destroy(r.model); /* a watcher thread, polling a path with no bundle yet */
    r.model = st_bwatch_new(link, 10, err, sizeof err);
    ST_REQUIRE(r.model != NULL);
    pc_destroy(r.pc);
    r.pc = core_new(&r);
    ST_REQUIRE(r.pc != NULL);
    char sid[160];
    st_rec_session_event_t ev = opened("w", sid, sizeof sid, 1000000, 0);
    add(&r, 0, &ev);
    pred_store_mem_fail_reads(store, true);
    ST_EQ_INT(process(&r, r.pc), -1);
    ST_REQUIRE(symlink(dir, link) == 0);
    /* the watcher (10 ms polls) loads it; only pc_process swaps it in */
    for (int i = 0; i < 3000 && !st_bwatch_pending(r.model); i++)
        usleep(10 * 1000);
    ST_REQUIRE(st_bwatch_pending(r.model));
    pred_store_mem_fail_reads(store, false);
    ST_REQUIRE(process(&r, r.pc) == 0);
    st_rec_prediction_t p;
    ST_REQUIRE(nth_prediction(r.out, 0, &p));
    ST_EQ_STR(p.model_version.ptr, "none");
    ST_EQ_INT(apply(r.pc), 0);
    r.n = 0;
    st_buf_reset(&r.bytes);
    bool swapped = false; /* a later batch takes it */
    for (int i = 0; i < 100 && !swapped; i++) {
        char sid2[160];
        ev = opened("w2", sid2, sizeof sid2, 2000000 + i * 1000000LL, i);
        add(&r, 0, &ev);
        ST_REQUIRE(process(&r, r.pc) == 0);
        ST_REQUIRE(nth_prediction(r.out, 0, &p));
        swapped = strcmp(p.model_version.ptr, "none") != 0;
        ST_EQ_INT(apply(r.pc), 0);
        r.n = 0;
        st_buf_reset(&r.bytes);
        if (!swapped)
            usleep(50 * 1000);
    }
    ST_CHECK(swapped);
    rig_free(&r);
    pred_store_mem_destroy(store);
}

/* One huge error in the rolling window (a CLOSED of 1e300 s passes the contract) leaves the
 * window's mean exact once it has left. */
static void test_rolling_mae_after_a_huge_error(void)
{
    pred_mae_t *m = pred_mae_new(100);
    ST_REQUIRE(m != NULL);
    pred_mae_add(m, true, 1e300, 1e300);
    for (int i = 0; i < 100; i++)
        pred_mae_add(m, true, 10, 20);
    pred_mae_stats_t st;
    pred_mae_stats(m, true, &st);
    ST_NEAR(st.rolling_mae_s, 10, 1e-9);
    ST_NEAR(st.rolling_baseline_mae_s, 20, 1e-9);
    pred_mae_destroy(m);
}

/* A sequence model and a gbt model (whose row has the same W + 1 steps) alike. */
static void test_short_history_serves_baseline(void)
{
    short_history_serves_baseline("bundle");
    short_history_serves_baseline("gbt");
}

int main(void)
{
    if (!mkdtemp(tmp_root))
        return 1;
    snprintf(no_model, sizeof no_model, "%s/none", tmp_root);
    const char *src = getenv("STINT_SOURCE_DIR");
    char schemas[1024], err[512] = "";
    snprintf(schemas, sizeof schemas, "%s/schemas", src ? src : STINT_SOURCE_DIR);
    reg = st_avro_registry_new(schemas, NULL, err, sizeof err);
    ev_codec = reg ? st_avro_codec_new(reg, "SessionEvent", "sessions", err, sizeof err) : NULL;
    pred_codec = reg ? st_avro_codec_new(reg, "Prediction", NULL, err, sizeof err) : NULL;
    out_codec = reg ? st_avro_codec_new(reg, "PredictionOutcome", NULL, err, sizeof err) : NULL;
    if (!ev_codec || !pred_codec || !out_codec) {
        fprintf(stderr, "setup: %s\n", err);
        return 1;
    }
    ST_RUN(test_baseline_flow);
    ST_RUN(test_redo_after_failed_write);
    ST_RUN(test_refused_write);
    ST_RUN(test_copies_and_corrections);
    ST_RUN(test_partition_overflow);
    ST_RUN(test_restart);
    ST_RUN(test_features_equal_training);
    ST_RUN(test_short_history_serves_baseline);
    ST_RUN(test_no_history_stats_serves_baseline);
    ST_RUN(test_no_swap_inside_a_retried_batch);
    ST_RUN(test_rolling_mae_after_a_huge_error);
    st_avro_codec_destroy(ev_codec);
    st_avro_codec_destroy(pred_codec);
    st_avro_codec_destroy(out_codec);
    st_avro_registry_destroy(reg);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_root);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup failed\n");
    return st_test_summary();
}
