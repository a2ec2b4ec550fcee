/* Unit tests of the ingest service's core (services/ingest/ingest.c, linked from
 * stint-ingest-core): verdicts and reasons of valid and invalid messages, the Avro Listen they
 * become, the duplicate rules (within a batch, another record's mark, a record's own mark after
 * a crash), and the process/apply steps on the in-memory store: outputs, marks written only in
 * apply, the crash cases of ingest.h and a failed mark write. */
#include <stdlib.h>
#include <string.h>

#include "ingest.h"
#include "ingest_store.h"
#include "st_metrics.h"
#include "st_records.h"
#include "st_test.h"
#include "st_test_out.h"

static st_avro_registry_t *reg;
static st_avro_codec_t *codec;

static const char *const listen_a =
    "{\"user_id\":\"  user_000001 \",\"timestamp\":\"2009-05-04T23:08:57Z\","
    "\"artist_name\":\"Deep Dish\",\"track_name\":\"Fuck Me Im Famous\","
    "\"artist_mbid\":\"f1b1cf71-bd35-4e99-8624-24a6e15f133a\"}";
static const char *const listen_b =
    "{\"user_id\":\"user_000002\",\"timestamp\":1241478537000,\"artist_name\":\"坂本龍一\","
    "\"track_name\":\"Composition 0919\",\"track_mbid\":null}";

static st_msg_t msg(const char *value, int32_t partition, int64_t offset)
{
    st_msg_t m = {"listens.raw", partition, offset, -1, "k", 1, value, strlen(value)};
    return m;
}

static int64_t now_ms(void)
{
    return 1700000000000LL;
}

static void test_verdicts_and_reasons(void)
{
    static const struct {
        const char *value;
        ingest_verdict_t verdict;
        st_listen_reason_t reason;
    } cases[] = {
        {NULL, INGEST_NEW, ST_LISTEN_OK}, /* listen_a */
        {"{\"user_id\":\"u\",\"timestamp\":\"2009-01-01T00:00:00Z\",\"artist_name\":\"A\"}",
         INGEST_INVALID, ST_LISTEN_MISSING_FIELD},
        {"{\"user_id\":\"u\",\"timestamp\":\"2009-13-45T00:00:00Z\",\"artist_name\":\"A\","
         "\"track_name\":\"T\"}",
         INGEST_INVALID, ST_LISTEN_BAD_TIMESTAMP},
        {"not json", INGEST_INVALID, ST_LISTEN_NOT_JSON},
        {"[1,2]", INGEST_INVALID, ST_LISTEN_NOT_OBJECT},
        {"{\"user_id\":\"u\",\"timestamp\":\"2009-01-01T00:00:00Z\",\"artist_name\":\"\xc3\x28\","
         "\"track_name\":\"T\"}",
         INGEST_INVALID, ST_LISTEN_INVALID_UTF8},
        {"", INGEST_INVALID, ST_LISTEN_NOT_JSON},
    };
    size_t n = sizeof cases / sizeof cases[0];
    st_msg_t msgs[sizeof cases / sizeof cases[0]];
    for (size_t i = 0; i < n; i++)
        msgs[i] = msg(cases[i].value ? cases[i].value : listen_a, 0, (int64_t)i);
    ingest_batch_t *b = ingest_batch_new(codec);
    ST_REQUIRE(b != NULL);
    ST_REQUIRE(ingest_batch_parse(b, msgs, n, now_ms(), NULL) == 0);
    ST_EQ_INT(ingest_batch_size(b), n);
    for (size_t i = 0; i < n; i++) {
        const ingest_record_t *r = ingest_batch_record(b, i);
        ST_EQ_INT(r->verdict, cases[i].verdict);
        ST_EQ_INT(r->reason, cases[i].reason);
        if (r->verdict == INGEST_INVALID)
            ST_CHECK(r->error[0] != '\0');
    }
    /* The valid one: key = trimmed user id, value = an Avro Listen of the normalised fields. */
    const ingest_record_t *r = ingest_batch_record(b, 0);
    const char *data = ingest_batch_data(b);
    ST_EQ_INT(r->key_len, 11);
    ST_CHECK(memcmp(data + r->key_off, "user_000001", 11) == 0);
    ST_EQ_STR(r->owner, "0:0");
    st_rec_listen_t l;
    st_err_t err = {0};
    ST_REQUIRE(st_rec_listen_decode(codec, data + r->value_off, r->value_len, &l, &err) == 0);
    ST_EQ_STR(l.event_id.ptr, r->event_id);
    char want_id[17];
    st_listen_event_id("user_000001", 1241478537000LL, "Deep Dish", "Fuck Me Im Famous", want_id);
    ST_EQ_STR(l.event_id.ptr, want_id);
    ST_EQ_STR(l.user_id.ptr, "user_000001");
    ST_EQ_INT(l.listened_at_ms, 1241478537000LL);
    ST_EQ_STR(l.track_key.ptr, "deep dish\tfuck me im famous");
    ST_CHECK(l.artist_mbid.ptr != NULL);
    ST_CHECK(l.track_mbid.ptr == NULL);
    ingest_batch_destroy(b);
}

/* One duplicate scenario: the batch's messages (A or B listens at partition 0, offsets given),
 * the marks read from Redis, the verdicts expected. */
typedef struct {
    const char *name;
    const char *which; /* one letter per record: 'a' listen_a, 'b' listen_b, 'x' invalid */
    const char *marks[4];
    bool no_marks; /* dedup off: decide(NULL) */
    ingest_verdict_t want[4];
} dup_case_t;

static void test_duplicates(void)
{
    static const dup_case_t cases[] = {
        {"fresh", "ab", {NULL, NULL}, false, {INGEST_NEW, INGEST_NEW}},
        {"within the batch",
         "aba",
         {NULL, NULL, NULL},
         false,
         {INGEST_NEW, INGEST_NEW, INGEST_DUPLICATE}},
        {"marked by another record", "ab", {"3:17", NULL}, false, {INGEST_DUPLICATE, INGEST_NEW}},
        {"own mark: a replay after a crash",
         "ab",
         {"0:100", "0:101"},
         false,
         {INGEST_NEW, INGEST_NEW}},
        {"own mark, then a copy in the batch",
         "aa",
         {"0:100", "0:100"},
         false,
         {INGEST_NEW, INGEST_DUPLICATE}},
        {"copy after another owner's mark",
         "aa",
         {"1:5", "1:5"},
         false,
         {INGEST_DUPLICATE, INGEST_DUPLICATE}},
        {"invalid records are left alone", "xa", {NULL, NULL}, false, {INGEST_INVALID, INGEST_NEW}},
        {"dedup off: only within the batch",
         "aa",
         {NULL, NULL},
         true,
         {INGEST_NEW, INGEST_DUPLICATE}},
    };
    ingest_batch_t *b = ingest_batch_new(codec);
    ST_REQUIRE(b != NULL);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const dup_case_t *dc = &cases[c];
        size_t n = strlen(dc->which);
        st_msg_t msgs[4];
        for (size_t i = 0; i < n; i++)
            msgs[i] = msg(dc->which[i] == 'a'   ? listen_a
                          : dc->which[i] == 'b' ? listen_b
                                                : "{",
                          0, 100 + (int64_t)i);
        ST_REQUIRE(ingest_batch_parse(b, msgs, n, now_ms(), NULL) == 0);
        ST_REQUIRE(ingest_batch_decide(b, dc->no_marks ? NULL : dc->marks) == 0);
        for (size_t i = 0; i < n; i++) {
            int got = (int)ingest_batch_record(b, i)->verdict;
            if (got != (int)dc->want[i])
                printf("case \"%s\", record %zu:\n", dc->name, i);
            ST_EQ_INT(got, dc->want[i]);
        }
    }
    ingest_batch_destroy(b);
}

/* A large batch of distinct listens and each one twice: the set grows and finds every copy. */
static void test_large_batch(void)
{
    enum { N = 3000 };
    static char values[N][160];
    static st_msg_t msgs[2 * N];
    for (int i = 0; i < N; i++) {
        snprintf(
            values[i], sizeof values[i],
            "{\"user_id\":\"u%d\",\"timestamp\":%lld,\"artist_name\":\"A\",\"track_name\":\"T%d\"}",
            i % 7, 1241478537000LL + i, i);
        msgs[i] = msg(values[i], 0, i);
        msgs[N + i] = msg(values[i], 0, N + i);
    }
    ingest_batch_t *b = ingest_batch_new(codec);
    ST_REQUIRE(ingest_batch_parse(b, msgs, 2 * N, now_ms(), NULL) == 0);
    ST_REQUIRE(ingest_batch_decide(b, NULL) == 0);
    int fresh = 0, dup = 0;
    for (size_t i = 0; i < 2 * N; i++) {
        ingest_verdict_t v = ingest_batch_record(b, i)->verdict;
        fresh += v == INGEST_NEW && i < N;
        dup += v == INGEST_DUPLICATE && i >= N;
    }
    ST_EQ_INT(fresh, N);
    ST_EQ_INT(dup, N);
    ingest_batch_destroy(b);
}

static double metric(const char *name, const char *labels)
{
    return st_metric_value(st_metrics_counter(name, labels, ""));
}

/* A batch: listen a, a copy of a, b, an invalid message; then the next batch: a again and a new
 * listen c. Marks are written in apply only; the duplicates of both batches are dropped. */
static void test_core_flow(void)
{
    static const char listen_c[] = "{\"user_id\":\"user_000003\",\"timestamp\":1241478537000,"
                                   "\"artist_name\":\"X\",\"track_name\":\"Y\"}";
    ingest_store_t *store = ingest_store_mem_new();
    ingest_opts_t o = {.out_topic = "listens",
                       .dedup_ttl_s = 3600,
                       .dedup_window_s = 900,
                       .dedup_max_per_user = 64};
    ingest_t *g = ingest_new(codec, store, &o);
    st_out_t *out = st_out_new("listens.dlq");
    ST_REQUIRE(store && g && out);
    double valid0 = metric("stint_ingest_valid_total", NULL),
           dup0 = metric("stint_ingest_duplicates_total", NULL),
           bad0 = metric("stint_ingest_invalid_total", "reason=\"not_json\"");

    st_msg_t b1[] = {msg(listen_a, 0, 10), msg(listen_a, 0, 11), msg(listen_b, 0, 12),
                     msg("{", 0, 13)};
    ST_REQUIRE(ingest_process(g, b1, 4, now_ms(), out, NULL) == 0);
    ST_EQ_INT(st_out_count(out), 3);
    ST_EQ_STR(st_out_record(out, 0).topic, "listens");
    ST_EQ_STR(st_out_record(out, 1).topic, "listens");
    ST_EQ_STR(st_out_record(out, 2).topic, "listens.dlq");
    ST_CHECK(strstr(st_out_record(out, 2).value, "\"error_code\":\"not_json\"") != NULL);
    ST_EQ_INT(ingest_store_mem_count(store), 0);                 /* nothing marked before apply */
    ST_EQ_INT(metric("stint_ingest_valid_total", NULL), valid0); /* counted in apply */
    ST_REQUIRE(ingest_apply(g, NULL) == 0);
    ST_EQ_INT(ingest_store_mem_count(store), 2);
    static st_listen_t la;
    ST_REQUIRE(st_listen_parse(listen_a, strlen(listen_a), now_ms(), &la, NULL) == ST_LISTEN_OK);
    ST_EQ_STR(ingest_store_mem_mark(store, "user_000001", la.event_id),
              "0:10"); /* the first owner's */
    ST_EQ_INT(metric("stint_ingest_valid_total", NULL) - valid0, 2);
    ST_EQ_INT(metric("stint_ingest_duplicates_total", NULL) - dup0, 1);
    ST_EQ_INT(metric("stint_ingest_invalid_total", "reason=\"not_json\"") - bad0, 1);

    st_out_reset(out);
    st_msg_t b2[] = {msg(listen_a, 1, 50), msg(listen_c, 1, 51)};
    ST_REQUIRE(ingest_process(g, b2, 2, now_ms(), out, NULL) == 0);
    ST_EQ_INT(st_out_count(out), 1); /* a was marked by 0:10 */
    ST_EQ_STR(st_out_record(out, 0).key, "user_000003");
    ST_REQUIRE(ingest_apply(g, NULL) == 0);
    ST_EQ_INT(ingest_store_mem_count(store), 3);

    st_out_destroy(out);
    ingest_destroy(g);
    ingest_store_mem_destroy(store);
}

/* The crash cases of ingest.h on one batch (a, b, a copy of a): a rerun before apply and a rerun
 * after apply (before the offsets were stored) both produce byte-identical outputs; a failed
 * mark write fails apply (retriable) and a rerun of apply completes it; another owner's batch
 * with the same listens then produces nothing. */
static void test_core_crashes(void)
{
    ingest_store_t *store = ingest_store_mem_new();
    ingest_opts_t o = {.out_topic = "listens",
                       .dedup_ttl_s = 3600,
                       .dedup_window_s = 900,
                       .dedup_max_per_user = 64};
    ingest_t *g = ingest_new(codec, store, &o);
    st_out_t *out = st_out_new("listens.dlq");
    ST_REQUIRE(store && g && out);
    st_msg_t b[] = {msg(listen_a, 2, 7), msg(listen_b, 2, 8), msg(listen_a, 2, 9)};

    ST_REQUIRE(ingest_process(g, b, 3, now_ms(), out, NULL) == 0);
    char *first = st_test_out_text(out, "listens.dlq");
    ST_EQ_INT(st_out_count(out), 2);
    /* Crash after produce, before apply: the rerun decides alike. */
    st_out_reset(out);
    ST_REQUIRE(ingest_process(g, b, 3, now_ms(), out, NULL) == 0);
    char *again = st_test_out_text(out, "listens.dlq");
    ST_EQ_STR(again, first);
    free(again);
    /* A failed mark write: apply fails retriably and writes nothing; its rerun writes. */
    ingest_store_mem_fail_after(store, 0);
    st_err_t err = {0};
    ST_EQ_INT(ingest_apply(g, &err), -1);
    ST_CHECK(st_err_disp(&err) == ST_DISP_RETRY);
    ST_EQ_INT(ingest_store_mem_count(store), 0);
    ingest_store_mem_fail_after(store, -1);
    ST_REQUIRE(ingest_apply(g, NULL) == 0);
    ST_EQ_INT(ingest_store_mem_count(store), 2);
    /* Crash after apply, before the offsets: each record finds its own mark and is produced
     * again, the copy finds the owner's mark and is dropped again. */
    st_out_reset(out);
    ST_REQUIRE(ingest_process(g, b, 3, now_ms(), out, NULL) == 0);
    again = st_test_out_text(out, "listens.dlq");
    ST_EQ_STR(again, first);
    free(again);
    ST_REQUIRE(ingest_apply(g, NULL) == 0);
    /* The same listens at other offsets (another producer's retry): all duplicates. */
    st_msg_t later[] = {msg(listen_b, 2, 30), msg(listen_a, 2, 31)};
    st_out_reset(out);
    ST_REQUIRE(ingest_process(g, later, 2, now_ms(), out, NULL) == 0);
    ST_EQ_INT(st_out_count(out), 0);
    free(first);

    /* Dedup off: the store is never asked, copies within a batch are still dropped. */
    ingest_store_t *none = ingest_store_mem_new();
    ingest_opts_t off = {
        .out_topic = "listens", .dedup_ttl_s = 0, .dedup_window_s = 900, .dedup_max_per_user = 64};
    ingest_t *g0 = ingest_new(codec, none, &off);
    ST_REQUIRE(none && g0);
    ingest_store_mem_fail_after(none, 0); /* a write would fail */
    st_out_reset(out);
    ST_REQUIRE(ingest_process(g0, b, 3, now_ms(), out, NULL) == 0);
    ST_EQ_INT(st_out_count(out), 2);
    ST_REQUIRE(ingest_apply(g0, NULL) == 0);
    ST_EQ_INT(ingest_store_mem_count(none), 0);
    ingest_destroy(g0);
    ingest_store_mem_destroy(none);

    st_out_destroy(out);
    ingest_destroy(g);
    ingest_store_mem_destroy(store);
}

/* The marks are per user and bounded by the user's own listening: a copy within the window of the
 * user's newest listen is dropped, one older than that passes (its mark was dropped), the cap
 * keeps the newest marks, and another user's listens do not push a user's marks out. */
static void test_core_bounds(void)
{
    ingest_store_t *store = ingest_store_mem_new();
    ingest_opts_t o = {.out_topic = "listens",
                       .dedup_ttl_s = 3600,
                       .dedup_window_s = 600,
                       .dedup_max_per_user = 3};
    ingest_t *g = ingest_new(codec, store, &o);
    st_out_t *out = st_out_new("listens.dlq");
    ST_REQUIRE(store && g && out);
    static char v[8][200];
    static const struct {
        const char *user;
        long long t_s; /* listen time, seconds after T0 */
    } l[] = {{"ann", 0}, {"ann", 300}, {"ann", 700}, {"bob", 100000}, {"ann", 1000}, {"ann", 1100}};
    const long long t0_ms = 1241478537000LL;
    st_msg_t m[6];
    for (int i = 0; i < 6; i++) {
        snprintf(v[i], sizeof v[i],
                 "{\"user_id\":\"%s\",\"timestamp\":%lld,\"artist_name\":\"A\","
                 "\"track_name\":\"T%d\"}",
                 l[i].user, t0_ms + l[i].t_s * 1000, i);
        m[i] = msg(v[i], 0, i);
    }
    /* One batch per listen, marks applied after each. */
    for (int i = 0; i < 6; i++) {
        st_out_reset(out);
        ST_REQUIRE(ingest_process(g, &m[i], 1, now_ms(), out, NULL) == 0);
        ST_EQ_INT(st_out_count(out), 1);
        ST_REQUIRE(ingest_apply(g, NULL) == 0);
    }
    /* ann's newest is at 1100 s: the window (600 s) keeps 700, 1000, 1100; 0 and 300 are gone;
     * bob's far later listen did not touch ann's marks. */
    ST_EQ_INT(ingest_store_mem_count(store), 4);
    /* Copies: at 0 s (outside the window: passes), 300 s (outside: passes), 700 s (inside:
     * dropped), bob's (dropped). */
    int want[] = {1, 1, 0, 0};
    int which[] = {0, 1, 2, 3};
    for (int k = 0; k < 4; k++) {
        st_msg_t copy = msg(v[which[k]], 1, 100 + k);
        st_out_reset(out);
        ST_REQUIRE(ingest_process(g, &copy, 1, now_ms(), out, NULL) == 0);
        if ((int)st_out_count(out) != want[k])
            printf("copy of listen %d\n", which[k]);
        ST_EQ_INT(st_out_count(out), want[k]);
    }
    /* The cap: a burst of 5 listens of carl within a second keeps the 3 newest marks. */
    static char w[5][200];
    st_msg_t burst[5];
    for (int i = 0; i < 5; i++) {
        snprintf(w[i], sizeof w[i],
                 "{\"user_id\":\"carl\",\"timestamp\":%lld,\"artist_name\":\"A\","
                 "\"track_name\":\"B%d\"}",
                 t0_ms + i, i);
        burst[i] = msg(w[i], 2, i);
    }
    st_out_reset(out);
    ST_REQUIRE(ingest_process(g, burst, 5, now_ms(), out, NULL) == 0);
    ST_EQ_INT(st_out_count(out), 5);
    ST_REQUIRE(ingest_apply(g, NULL) == 0);
    static st_listen_t lc;
    int kept = 0;
    for (int i = 0; i < 5; i++) {
        ST_REQUIRE(st_listen_parse(w[i], strlen(w[i]), now_ms(), &lc, NULL) == ST_LISTEN_OK);
        const char *mk = ingest_store_mem_mark(store, "carl", lc.event_id);
        kept += mk != NULL;
        if (i < 2)
            ST_CHECK(mk == NULL); /* the two oldest went */
    }
    ST_EQ_INT(kept, 3);
    st_out_destroy(out);
    ingest_destroy(g);
    ingest_store_mem_destroy(store);
}

int main(void)
{
    char errstr[512], dir[1024];
    const char *src = getenv("STINT_SOURCE_DIR");
    snprintf(dir, sizeof dir, "%s/schemas", src ? src : ".");
    reg = st_avro_registry_new(dir, NULL, errstr, sizeof errstr);
    if (!reg) {
        fprintf(stderr, "schemas: %s\n", errstr);
        return 1;
    }
    codec = st_avro_codec_new(reg, "Listen", "listens", errstr, sizeof errstr);
    if (!codec) {
        fprintf(stderr, "codec: %s\n", errstr);
        return 1;
    }
    ST_RUN(test_verdicts_and_reasons);
    ST_RUN(test_duplicates);
    ST_RUN(test_large_batch);
    ST_RUN(test_core_flow);
    ST_RUN(test_core_crashes);
    ST_RUN(test_core_bounds);
    ingest_batch_destroy(NULL);
    st_avro_codec_destroy(codec);
    st_avro_registry_destroy(reg);
    return st_test_summary();
}
