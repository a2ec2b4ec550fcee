/* Unit tests of the ingest service's batch logic (services/ingest/ingest.c, linked from
 * stint-ingest-core): verdicts and reasons of valid and invalid messages, the Avro Listen they
 * become, and the duplicate rules (within a batch, another record's mark, a record's own mark after
 * a crash). */
#include <stdlib.h>
#include <string.h>

#include "ingest.h"
#include "st_records.h"
#include "st_test.h"

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
    ingest_batch_destroy(NULL);
    st_avro_codec_destroy(codec);
    st_avro_registry_destroy(reg);
    return st_test_summary();
}
