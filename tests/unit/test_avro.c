/* Unit tests of st_avro in static-id mode: round trips of every schema in schemas/, the field
 * helpers, JSON rendering, schema resolution with reader defaults and promotions, and the wire
 * format's rejection of short, garbage and unknown-id payloads (fuzzed, must never crash). */
#include "st_avro.h"
#include "st_test.h"

#include <sys/stat.h>
#include <unistd.h>

static const char *const record_names[] = {
    "Listen",     "EnrichedListen",    "SessionEvent", "UserProfile", "ClusterAssignment",
    "Prediction", "PredictionOutcome", "DeadLetter"};
#define N_RECORDS (sizeof record_names / sizeof record_names[0])

static char schemas_dir[1024];
static char tmp_root[256];

static st_avro_registry_t *open_schemas(void)
{
    char err[512] = "";
    st_avro_registry_t *reg = st_avro_registry_new(schemas_dir, NULL, err, sizeof err);
    if (!reg)
        fprintf(stderr, "st_avro_registry_new(%s): %s\n", schemas_dir, err);
    return reg;
}

static void write_text(const char *dir, const char *name, const char *text)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static void make_dir(char *out, size_t size, const char *name)
{
    snprintf(out, size, "%s/%s", tmp_root, name);
    mkdir(out, 0700);
}

/* Fills every field of rec with a value derived from its index; nullable fields get their non-null
 * branch unless nulls is set. Works from the avro-c schema so that it covers every field. */
static int fill_record(avro_value_t *rec, bool nulls, int salt)
{
    size_t n;
    if (avro_value_get_size(rec, &n) != 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        avro_value_t f, leaf;
        const char *name;
        char text[128];
        if (avro_value_get_by_index(rec, i, &f, &name) != 0)
            return -1;
        leaf = f;
        if (avro_value_get_type(&f) == AVRO_UNION) {
            if (nulls) {
                if (avro_value_set_branch(&f, 0, &leaf) != 0 || avro_value_set_null(&leaf) != 0)
                    return -1;
                continue;
            }
            if (avro_value_set_branch(&f, 1, &leaf) != 0)
                return -1;
        }
        snprintf(text, sizeof text, "%s-%d \xc3\xa9\t\"x\"", name, salt);
        avro_value_t item;
        switch (avro_value_get_type(&leaf)) {
        case AVRO_STRING:
            if (avro_value_set_string(&leaf, text) != 0)
                return -1;
            break;
        case AVRO_BYTES:
            if (avro_value_set_bytes(&leaf, "\x00\xff\x01raw", 6) != 0)
                return -1;
            break;
        case AVRO_INT32:
            if (avro_value_set_int(&leaf, (int32_t)(i * 3 + (size_t)salt)) != 0)
                return -1;
            break;
        case AVRO_INT64:
            if (avro_value_set_long(&leaf, 1241478537000LL + (int64_t)i * 1000 + salt) != 0)
                return -1;
            break;
        case AVRO_DOUBLE:
            if (avro_value_set_double(&leaf, (double)i + 0.25 + salt) != 0)
                return -1;
            break;
        case AVRO_BOOLEAN:
            if (avro_value_set_boolean(&leaf, 1) != 0)
                return -1;
            break;
        case AVRO_ENUM: {
            int last = avro_schema_enum_number_of_symbols(avro_value_get_schema(&leaf)) - 1;
            if (avro_value_set_enum(&leaf, last) != 0)
                return -1;
            break;
        }
        case AVRO_ARRAY:
            avro_value_reset(&leaf);
            for (int k = 0; k < (nulls ? 0 : 3); k++) {
                if (avro_value_append(&leaf, &item, NULL) != 0)
                    return -1;
                if (avro_value_get_type(&item) == AVRO_STRING)
                    avro_value_set_string(&item, k == 1 ? "" : text);
                else if (avro_value_get_type(&item) == AVRO_DOUBLE)
                    avro_value_set_double(&item, k * 1.5);
                else if (avro_value_get_type(&item) == AVRO_INT64)
                    avro_value_set_long(&item, salt * 1000 + k);
                else if (avro_value_get_type(&item) == AVRO_INT32)
                    avro_value_set_int(&item, salt + k);
                else
                    return -1;
            }
            break;
        default:
            return -1;
        }
    }
    return 0;
}

static void test_registry_loads_every_schema(void)
{
    st_avro_registry_t *reg = open_schemas();
    ST_REQUIRE(reg != NULL);
    ST_CHECK(st_avro_registry_is_static(reg));
    for (size_t i = 0; i < N_RECORDS; i++) {
        const char *text = st_avro_registry_schema_text(reg, record_names[i]);
        ST_CHECK(text != NULL);
        /* The original text is kept: avro_schema_to_json would have dropped the defaults. */
        if (text && strcmp(record_names[i], "ClusterAssignment") != 0)
            ST_CHECK(strstr(text, "\"default\"") != NULL);
    }
    ST_CHECK(st_avro_registry_schema_text(reg, "io.stint.Listen") != NULL);
    ST_CHECK(st_avro_registry_schema_text(reg, "NoSuchRecord") == NULL);
    char err[256] = "";
    ST_CHECK(st_avro_codec_new(reg, "NoSuchRecord", "t", err, sizeof err) == NULL);
    ST_CHECK(strstr(err, "NoSuchRecord") != NULL);
    st_avro_registry_destroy(reg);
    st_avro_registry_destroy(NULL);
    st_avro_codec_destroy(NULL);
}

static void round_trip(st_avro_registry_t *reg, const char *name, bool nulls)
{
    char err[256] = "";
    st_err_t e = {0};
    st_buf_t buf = ST_BUF_INIT, again = ST_BUF_INIT;
    st_avro_codec_t *c = st_avro_codec_new(reg, name, "topic", err, sizeof err);
    if (!c)
        fprintf(stderr, "%s: %s\n", name, err);
    ST_REQUIRE(c != NULL);
    avro_value_t *rec = st_avro_codec_record(c);
    ST_EQ_INT(fill_record(rec, nulls, 7), 0);
    ST_EQ_INT(st_avro_codec_encode(c, rec, &buf, &e), 0);
    ST_CHECK(buf.len > ST_AVRO_HEADER_SIZE);
    ST_EQ_INT((unsigned char)buf.data[0], 0);
    int32_t id = st_avro_codec_schema_id(c);
    ST_EQ_INT(((unsigned char)buf.data[1] << 24 | (unsigned char)buf.data[2] << 16 |
               (unsigned char)buf.data[3] << 8 | (unsigned char)buf.data[4]),
              id);
    avro_value_t *out = NULL;
    ST_EQ_INT(st_avro_codec_decode(c, buf.data, buf.len, &out, &e), 0);
    if (e.code)
        fprintf(stderr, "%s: %s\n", name, e.text);
    ST_REQUIRE(out != NULL);
    ST_CHECK(avro_value_equal(rec, out));
    json_t *a = st_avro_value_to_json(rec), *b = st_avro_value_to_json(out);
    ST_REQUIRE(a && b);
    char *sa = json_dumps(a, JSON_SORT_KEYS), *sb = json_dumps(b, JSON_SORT_KEYS);
    ST_EQ_STR(sa, sb);
    json_t *direct = st_avro_registry_decode_json(reg, buf.data, buf.len, &e);
    char *sd = direct ? json_dumps(direct, JSON_SORT_KEYS) : NULL;
    ST_EQ_STR(sd, sa);
    /* Encoding the decoded value again gives the same bytes (replays are byte-identical). */
    ST_EQ_INT(st_avro_codec_encode(c, out, &again, &e), 0);
    ST_EQ_INT(again.len, buf.len);
    ST_CHECK(again.len == buf.len && memcmp(again.data, buf.data, buf.len) == 0);
    free(sa);
    free(sb);
    free(sd);
    json_decref(a);
    json_decref(b);
    json_decref(direct);
    st_buf_free(&buf);
    st_buf_free(&again);
    st_avro_codec_destroy(c);
}

static void test_round_trip_every_schema(void)
{
    st_avro_registry_t *reg = open_schemas();
    ST_REQUIRE(reg != NULL);
    for (size_t i = 0; i < N_RECORDS; i++) {
        round_trip(reg, record_names[i], false);
        round_trip(reg, record_names[i], true);
    }
    st_avro_registry_destroy(reg);
}

static void test_session_event_helpers(void)
{
    char err[256] = "";
    st_err_t e = {0};
    st_buf_t buf = ST_BUF_INIT;
    st_avro_registry_t *reg = open_schemas();
    ST_REQUIRE(reg != NULL);
    st_avro_codec_t *c = st_avro_codec_new(reg, "SessionEvent", "sessions", err, sizeof err);
    ST_REQUIRE(c != NULL);
    avro_value_t *rec = st_avro_codec_record(c);
    double lengths[] = {120.5, 3600.0, 42.0};
    int32_t age = 31;
    double mean = 1254.1666;
    ST_EQ_INT(st_avro_set_string(rec, "session_id", "u1:1241478537000"), 0);
    ST_EQ_INT(st_avro_set_string_len(rec, "user_id", "user_000001XXX", 11), 0);
    ST_EQ_INT(st_avro_set_enum(rec, "kind", "CLOSED"), 0);
    ST_EQ_INT(st_avro_set_long(rec, "start_ms", 1241478537000LL), 0);
    ST_EQ_INT(st_avro_set_int(rec, "session_index", 4), 0);
    ST_EQ_INT(st_avro_set_nullable_double(rec, "mean_session_length_s", &mean), 0);
    ST_EQ_INT(st_avro_set_double(rec, "prev_session_length_s", 42.0), 0);
    ST_EQ_INT(st_avro_set_double_array(rec, "recent_lengths_s", lengths, 3), 0);
    ST_EQ_INT(st_avro_set_nullable_int(rec, "age", &age), 0);
    ST_EQ_INT(st_avro_set_nullable_string(rec, "gender", "f"), 0);
    ST_EQ_INT(st_avro_set_nullable_string(rec, "country", NULL), 0);
    ST_EQ_INT(st_avro_set_long(rec, "end_ms", 1241482137000LL), 0);
    /* Wrong names, types and symbols fail and change nothing. */
    ST_EQ_INT(st_avro_set_string(rec, "no_such_field", "x"), -1);
    ST_EQ_INT(st_avro_set_string(rec, "start_ms", "x"), -1);
    ST_EQ_INT(st_avro_set_enum(rec, "kind", "REOPENED"), -1);
    ST_EQ_INT(st_avro_set_null(rec, "user_id"), -1);
    ST_EQ_INT(st_avro_set_string_array(rec, "recent_lengths_s", NULL, 0), -1);
    ST_EQ_INT(st_avro_codec_encode(c, rec, &buf, &e), 0);

    avro_value_t *out = NULL;
    ST_EQ_INT(st_avro_codec_decode(c, buf.data, buf.len, &out, &e), 0);
    ST_REQUIRE(out != NULL);
    const char *s = NULL, *sym = NULL;
    size_t len = 0, n = 0;
    int64_t l = 0;
    int32_t i32 = 0;
    double d = 0;
    bool is_null = false;
    ST_EQ_INT(st_avro_get_string(out, "user_id", &s, &len), 0);
    ST_EQ_STR(s, "user_000001");
    ST_EQ_INT(len, 11);
    ST_EQ_INT(st_avro_get_enum(out, "kind", &sym), 0);
    ST_EQ_STR(sym, "CLOSED");
    ST_EQ_INT(st_avro_get_long(out, "start_ms", &l), 0);
    ST_EQ_INT(l, 1241478537000LL);
    ST_EQ_INT(st_avro_get_int(out, "session_index", &i32), 0);
    ST_EQ_INT(i32, 4);
    ST_EQ_INT(st_avro_get_nullable_double(out, "mean_session_length_s", &d, &is_null), 0);
    ST_CHECK(!is_null);
    ST_NEAR(d, mean, 0);
    ST_EQ_INT(st_avro_get_nullable_double(out, "median_session_length_s", &d, &is_null), 0);
    ST_CHECK(is_null);
    ST_EQ_INT(st_avro_get_double(out, "median_session_length_s", &d), -1);
    ST_EQ_INT(st_avro_get_array_size(out, "recent_lengths_s", &n), 0);
    ST_EQ_INT(n, 3);
    ST_EQ_INT(st_avro_get_double_item(out, "recent_lengths_s", 2, &d), 0);
    ST_NEAR(d, 42.0, 0);
    ST_EQ_INT(st_avro_get_double_item(out, "recent_lengths_s", 3, &d), -1);
    ST_EQ_INT(st_avro_get_nullable_int(out, "age", &i32, &is_null), 0);
    ST_CHECK(!is_null);
    ST_EQ_INT(i32, 31);
    ST_EQ_INT(st_avro_get_nullable_string(out, "country", &s, NULL, &is_null), 0);
    ST_CHECK(is_null);
    ST_EQ_INT(st_avro_get_nullable_long(out, "end_ms", &l, &is_null), 0);
    ST_EQ_INT(l, 1241482137000LL);
    ST_EQ_INT(st_avro_get_int(out, "track_count", &i32), 0);
    ST_EQ_INT(i32, 0);
    ST_EQ_INT(st_avro_get_long(out, "user_id", &l), -1);

    json_t *j = st_avro_value_to_json(out);
    ST_REQUIRE(j != NULL);
    ST_EQ_STR(json_string_value(json_object_get(j, "gender")), "f");
    ST_CHECK(json_is_null(json_object_get(j, "country")));
    ST_EQ_INT(json_integer_value(json_object_get(j, "age")), 31);
    ST_EQ_STR(json_string_value(json_object_get(j, "kind")), "CLOSED");
    ST_EQ_INT(json_array_size(json_object_get(j, "recent_lengths_s")), 3);
    json_decref(j);

    /* The next record starts from the defaults again, not from the previous record. */
    rec = st_avro_codec_record(c);
    ST_EQ_INT(st_avro_get_nullable_string(rec, "gender", &s, NULL, &is_null), 0);
    ST_CHECK(is_null);
    ST_EQ_INT(st_avro_get_array_size(rec, "recent_lengths_s", &n), 0);
    ST_EQ_INT(n, 0);
    st_buf_free(&buf);
    st_avro_codec_destroy(c);
    st_avro_registry_destroy(reg);
}

static void test_dead_letter_bytes_and_copy(void)
{
    char err[256] = "";
    st_err_t e = {0};
    st_buf_t buf = ST_BUF_INIT;
    st_avro_registry_t *reg = open_schemas();
    ST_REQUIRE(reg != NULL);
    st_avro_codec_t *dl = st_avro_codec_new(reg, "DeadLetter", "x.dlq", err, sizeof err);
    st_avro_codec_t *li = st_avro_codec_new(reg, "Listen", "listens", err, sizeof err);
    st_avro_codec_t *en =
        st_avro_codec_new(reg, "EnrichedListen", "listens.enriched", err, sizeof err);
    ST_REQUIRE(dl && li && en);
    avro_value_t *rec = st_avro_codec_record(dl);
    ST_EQ_INT(st_avro_set_bytes(rec, "original_value", "\x00\x01\xfe", 3), 0);
    ST_EQ_INT(st_avro_set_nullable_bytes(rec, "original_key", NULL, 0), 0);
    ST_EQ_INT(st_avro_codec_encode(dl, rec, &buf, &e), 0);
    avro_value_t *out = NULL;
    ST_EQ_INT(st_avro_codec_decode(dl, buf.data, buf.len, &out, &e), 0);
    ST_REQUIRE(out != NULL);
    const void *p = NULL;
    size_t len = 0;
    bool is_null = false;
    ST_EQ_INT(st_avro_get_bytes(out, "original_value", &p, &len), 0);
    ST_EQ_INT(len, 3);
    ST_CHECK(p && memcmp(p, "\x00\x01\xfe", 3) == 0);
    ST_EQ_INT(st_avro_get_nullable_bytes(out, "original_key", &p, &len, &is_null), 0);
    ST_CHECK(is_null);
    json_t *j = st_avro_value_to_json(out);
    ST_EQ_STR(json_string_value(json_object_get(j, "original_value")), "\x00\x01\xc3\xbe");
    json_decref(j);

    /* A Listen decoded by one codec fills an EnrichedListen of another. */
    rec = st_avro_codec_record(li);
    ST_EQ_INT(st_avro_set_string(rec, "user_id", "user_000002"), 0);
    ST_EQ_INT(st_avro_set_nullable_string(rec, "track_mbid", "abc"), 0);
    ST_EQ_INT(st_avro_codec_encode(li, rec, &buf, &e), 0);
    ST_EQ_INT(st_avro_codec_decode(li, buf.data, buf.len, &out, &e), 0);
    avro_value_t *enr = st_avro_codec_record(en);
    ST_EQ_INT(st_avro_copy_common_fields(enr, out), 8);
    const char *s = NULL;
    ST_EQ_INT(st_avro_get_string(enr, "user_id", &s, NULL), 0);
    ST_EQ_STR(s, "user_000002");
    ST_EQ_INT(st_avro_get_nullable_string(enr, "track_mbid", &s, NULL, &is_null), 0);
    ST_EQ_STR(s, "abc");
    ST_EQ_INT(st_avro_get_enum(enr, "metadata_source", &s), 0);
    ST_EQ_STR(s, "UNKNOWN");
    /* A value of another schema is refused by encode. */
    ST_EQ_INT(st_avro_codec_encode(en, out, &buf, &e), -1);
    ST_EQ_INT(e.code, ST_ERR_AVRO);
    st_buf_free(&buf);
    st_avro_codec_destroy(dl);
    st_avro_codec_destroy(li);
    st_avro_codec_destroy(en);
    st_avro_registry_destroy(reg);
}

static void expect_invalid(st_avro_codec_t *c, const void *data, size_t len, const char *needle)
{
    st_err_t e = {0};
    avro_value_t *out = NULL;
    ST_EQ_INT(st_avro_codec_decode(c, data, len, &out, &e), -1);
    ST_EQ_INT(e.code, ST_ERR_INVALID);
    if (!strstr(e.text, needle))
        ST_FAIL_AT("error \"%s\" does not mention \"%s\"", e.text, needle);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint32_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}

static void test_wire_format_rejects_bad_payloads(void)
{
    char err[256] = "";
    st_err_t e = {0};
    st_buf_t good = ST_BUF_INIT;
    st_avro_registry_t *reg = open_schemas();
    ST_REQUIRE(reg != NULL);
    st_avro_codec_t *c = st_avro_codec_new(reg, "SessionEvent", "sessions", err, sizeof err);
    ST_REQUIRE(c != NULL);
    avro_value_t *rec = st_avro_codec_record(c);
    ST_EQ_INT(fill_record(rec, false, 3), 0);
    ST_EQ_INT(st_avro_codec_encode(c, rec, &good, &e), 0);

    expect_invalid(c, NULL, 0, "too short");
    expect_invalid(c, "", 0, "too short");
    expect_invalid(c, "\0\0\0\x03", 4, "too short");
    expect_invalid(c, "{\"user_id\":1}", 13, "magic byte");
    expect_invalid(c, "\0\0\0\x27\x0f", 5, "unknown schema id 9999");
    expect_invalid(c, "\0\xff\xff\xff\xff", 5, "unknown schema id");
    /* Another record type's id does not resolve to SessionEvent. */
    expect_invalid(c, "\0\0\0\0\x01\x02", 6, "schema id 1 as io.stint.SessionEvent");

    /* Every strict prefix of a valid message is an error, and so are trailing bytes. */
    for (size_t len = 0; len < good.len; len++)
        expect_invalid(c, good.data, len, len < 5 ? "too short" : "truncated");
    st_buf_t longer = ST_BUF_INIT;
    st_buf_append(&longer, good.data, good.len);
    st_buf_append(&longer, "\x00", 1);
    expect_invalid(c, longer.data, longer.len, "1 trailing bytes");
    st_buf_free(&longer);

    /* Garbage after a valid header, and single-byte mutations: errors or records, never a crash.
     * The mutation of a string length into a huge or negative one is the dangerous case that
     * avro-c's own reader does not survive. */
    int errors = 0, decoded = 0;
    /* Big enough for the valid message (SessionEvent v2 outgrew 256 bytes: ASan caught the copy
     * below writing past a 256-byte buffer). */
    unsigned char junk[4096];
    ST_REQUIRE(good.len <= sizeof junk);
    for (int round = 0; round < 3000; round++) {
        size_t len = 5 + rng() % 200;
        memcpy(junk, good.data, 5);
        for (size_t i = 5; i < len; i++)
            junk[i] = (unsigned char)rng();
        avro_value_t *out = NULL;
        st_err_clear(&e);
        if (st_avro_codec_decode(c, junk, len, &out, &e) == 0) {
            decoded++;
        } else {
            errors++;
            ST_EQ_INT(e.code, ST_ERR_INVALID);
        }
    }
    for (int round = 0; round < 3000; round++) {
        memcpy(junk, good.data, good.len);
        size_t at = 5 + rng() % (good.len - 5);
        junk[at] = (unsigned char)rng();
        if (round % 3 == 0)
            junk[5 + rng() % (good.len - 5)] = (unsigned char)(0x80 | rng());
        avro_value_t *out = NULL;
        st_err_clear(&e);
        if (st_avro_codec_decode(c, junk, good.len, &out, &e) == 0) {
            decoded++;
            json_t *j = st_avro_value_to_json(out);
            ST_CHECK(j != NULL);
            json_decref(j);
        } else {
            errors++;
            ST_EQ_INT(e.code, ST_ERR_INVALID);
        }
        json_t *j = st_avro_registry_decode_json(reg, junk, good.len, NULL);
        json_decref(j);
    }
    ST_CHECK(errors > 1000);
    printf("fuzz: %d errors, %d decoded\n", errors, decoded);
    /* The codec still works after all that. */
    avro_value_t *out = NULL;
    st_err_clear(&e);
    ST_EQ_INT(st_avro_codec_decode(c, good.data, good.len, &out, &e), 0);
    st_buf_free(&good);
    st_avro_codec_destroy(c);
    st_avro_registry_destroy(reg);
}

/* Resolution across versions, in static mode: an "old" schemas dir writes, a "new" one (holding
 * the old version under history/) reads. */
static const char *old_enriched =
    "{\"type\":\"record\",\"name\":\"EnrichedListen\",\"namespace\":\"io.stint\",\"fields\":["
    "{\"name\":\"event_id\",\"type\":\"string\"},{\"name\":\"user_id\",\"type\":\"string\"},"
    "{\"name\":\"listened_at_ms\",\"type\":{\"type\":\"long\",\"logicalType\":\"timestamp-millis\"}"
    "},"
    "{\"name\":\"artist_name\",\"type\":\"string\"},{\"name\":\"track_name\",\"type\":\"string\"},"
    "{\"name\":\"dropped_field\",\"type\":{\"type\":\"map\",\"values\":\"string\"}},"
    "{\"name\":\"artist_mbid\",\"type\":[\"null\",\"string\"],\"default\":null},"
    "{\"name\":\"track_mbid\",\"type\":[\"null\",\"string\"],\"default\":null},"
    "{\"name\":\"track_key\",\"type\":\"string\"}]}";

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    st_buf_t b = ST_BUF_INIT;
    char chunk[4096];
    size_t n;
    if (!f)
        return NULL;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        st_buf_append(&b, chunk, n);
    fclose(f);
    return b.data;
}

static void test_resolution_fills_reader_defaults(void)
{
    char old_dir[512], new_dir[512], hist[600], path[1200], err[512] = "";
    st_err_t e = {0};
    st_buf_t buf = ST_BUF_INIT;
    make_dir(old_dir, sizeof old_dir, "old");
    make_dir(new_dir, sizeof new_dir, "new");
    snprintf(hist, sizeof hist, "%s/history", new_dir);
    mkdir(hist, 0700);
    write_text(old_dir, "enriched_listen.avsc", old_enriched);
    write_text(old_dir, "ids.conf", "# old\n11 enriched_listen.avsc\n");
    write_text(hist, "enriched_listen.v1.avsc", old_enriched);
    snprintf(path, sizeof path, "%s/enriched_listen.avsc", schemas_dir);
    char *current = slurp(path);
    ST_REQUIRE(current != NULL);
    write_text(new_dir, "enriched_listen.avsc", current);
    free(current);
    write_text(new_dir, "ids.conf",
               "11 history/enriched_listen.v1.avsc\n12 enriched_listen.avsc\n");

    st_avro_registry_t *old_reg = st_avro_registry_new(old_dir, NULL, err, sizeof err);
    if (!old_reg)
        fprintf(stderr, "old: %s\n", err);
    st_avro_registry_t *new_reg = st_avro_registry_new(new_dir, NULL, err, sizeof err);
    if (!new_reg)
        fprintf(stderr, "new: %s\n", err);
    ST_REQUIRE(old_reg && new_reg);
    st_avro_codec_t *w = st_avro_codec_new(old_reg, "EnrichedListen", "t", err, sizeof err);
    st_avro_codec_t *r = st_avro_codec_new(new_reg, "EnrichedListen", NULL, err, sizeof err);
    ST_REQUIRE(w && r);
    ST_EQ_INT(st_avro_codec_schema_id(w), 11);
    ST_EQ_INT(st_avro_codec_schema_id(r), -1);

    avro_value_t *rec = st_avro_codec_record(w), map, item;
    ST_EQ_INT(st_avro_set_string(rec, "user_id", "user_000003"), 0);
    ST_EQ_INT(st_avro_set_string(rec, "track_key", "a\tb"), 0);
    ST_EQ_INT(st_avro_set_nullable_string(rec, "artist_mbid", "mbid-1"), 0);
    ST_EQ_INT(st_avro_set_long(rec, "listened_at_ms", 1000), 0);
    ST_REQUIRE(avro_value_get_by_name(rec, "dropped_field", &map, NULL) == 0);
    ST_REQUIRE(avro_value_add(&map, "k", &item, NULL, NULL) == 0);
    avro_value_set_string(&item, "skipped by the reader");
    ST_EQ_INT(st_avro_codec_encode(w, rec, &buf, &e), 0);
    ST_EQ_INT(st_avro_codec_encode(r, rec, &buf, &e) == 0 ? 0 : e.code, ST_ERR_CONFIG);
    st_err_clear(&e);
    ST_EQ_INT(st_avro_codec_encode(w, rec, &buf, &e), 0);

    for (int pass = 0; pass < 2; pass++) {
        avro_value_t *out = NULL;
        ST_EQ_INT(st_avro_codec_decode(r, buf.data, buf.len, &out, &e), 0);
        if (e.code)
            fprintf(stderr, "decode: %s\n", e.text);
        ST_REQUIRE(out != NULL);
        const char *s = NULL;
        bool is_null = false;
        int64_t l = 0;
        size_t n = 99;
        ST_EQ_INT(st_avro_get_string(out, "user_id", &s, NULL), 0);
        ST_EQ_STR(s, "user_000003");
        ST_EQ_INT(st_avro_get_string(out, "track_key", &s, NULL), 0);
        ST_EQ_STR(s, "a\tb");
        ST_EQ_INT(st_avro_get_nullable_string(out, "artist_mbid", &s, NULL, &is_null), 0);
        ST_EQ_STR(s, "mbid-1");
        ST_EQ_INT(st_avro_get_long(out, "listened_at_ms", &l), 0);
        ST_EQ_INT(l, 1000);
        /* The fields the writer lacks carry the reader's defaults. */
        ST_EQ_INT(st_avro_get_nullable_long(out, "duration_ms", &l, &is_null), 0);
        ST_CHECK(is_null);
        ST_EQ_INT(st_avro_get_array_size(out, "tags", &n), 0);
        ST_EQ_INT(n, 0);
        ST_EQ_INT(st_avro_get_enum(out, "metadata_source", &s), 0);
        ST_EQ_STR(s, "UNKNOWN");
    }
    st_buf_free(&buf);
    st_avro_codec_destroy(w);
    st_avro_codec_destroy(r);
    st_avro_registry_destroy(old_reg);
    st_avro_registry_destroy(new_reg);
}

static void test_resolution_promotions_and_failures(void)
{
    char wdir[512], rdir[512], err[512] = "";
    st_err_t e = {0};
    st_buf_t buf = ST_BUF_INIT;
    make_dir(wdir, sizeof wdir, "promo_w");
    make_dir(rdir, sizeof rdir, "promo_r");
    const char *writer =
        "{\"type\":\"record\",\"name\":\"P\",\"namespace\":\"t\",\"fields\":["
        "{\"name\":\"a\",\"type\":\"int\"},{\"name\":\"b\",\"type\":\"float\"},"
        "{\"name\":\"c\",\"type\":\"string\"},"
        "{\"name\":\"e\",\"type\":{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"X\",\"Y\",\"Z\"]"
        "}},"
        "{\"name\":\"u\",\"type\":[\"null\",\"int\"]},{\"name\":\"v\",\"type\":\"long\"},"
        "{\"name\":\"arr\",\"type\":{\"type\":\"array\",\"items\":\"int\"}},"
        "{\"name\":\"m\",\"type\":{\"type\":\"map\",\"values\":\"int\"}}]}";
    const char *reader =
        "{\"type\":\"record\",\"name\":\"P\",\"namespace\":\"other\",\"fields\":["
        "{\"name\":\"m\",\"type\":{\"type\":\"map\",\"values\":\"long\"}},"
        "{\"name\":\"a\",\"type\":\"long\"},{\"name\":\"b\",\"type\":\"double\"},"
        "{\"name\":\"c\",\"type\":\"bytes\"},"
        "{\"name\":\"e\",\"type\":{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"Y\",\"X\"],"
        "\"default\":\"X\"}},"
        "{\"name\":\"u\",\"type\":[\"null\",\"long\"]},{\"name\":\"v\",\"type\":[\"null\","
        "\"double\"]},"
        "{\"name\":\"arr\",\"type\":{\"type\":\"array\",\"items\":\"double\"}},"
        "{\"name\":\"rec\",\"type\":{\"type\":\"record\",\"name\":\"R\",\"fields\":["
        "{\"name\":\"x\",\"type\":\"int\"},{\"name\":\"y\",\"type\":\"string\",\"default\":\"why\"}"
        "]},"
        "\"default\":{\"x\":5}}]}";
    write_text(wdir, "p.avsc", writer);
    write_text(wdir, "ids.conf", "1 p.avsc\n");
    write_text(rdir, "p.avsc", reader);
    write_text(rdir, "w.avsc.old", writer);
    write_text(rdir, "ids.conf", "1 w.avsc.old\n2 p.avsc\n");
    st_avro_registry_t *wreg = st_avro_registry_new(wdir, NULL, err, sizeof err);
    st_avro_registry_t *rreg = st_avro_registry_new(rdir, NULL, err, sizeof err);
    if (!wreg || !rreg)
        fprintf(stderr, "%s\n", err);
    ST_REQUIRE(wreg && rreg);
    st_avro_codec_t *w = st_avro_codec_new(wreg, "P", "t", err, sizeof err);
    st_avro_codec_t *r = st_avro_codec_new(rreg, "P", NULL, err, sizeof err);
    ST_REQUIRE(w && r);
    avro_value_t *rec = st_avro_codec_record(w), f, item;
    ST_EQ_INT(st_avro_set_int(rec, "a", -7), 0);
    avro_value_get_by_name(rec, "b", &f, NULL);
    avro_value_set_float(&f, 1.5f);
    ST_EQ_INT(st_avro_set_string(rec, "c", "hi"), 0);
    ST_EQ_INT(st_avro_set_enum(rec, "e", "Z"), 0);
    ST_EQ_INT(st_avro_set_int(rec, "u", 9), 0);
    ST_EQ_INT(st_avro_set_long(rec, "v", 1LL << 40), 0);
    avro_value_get_by_name(rec, "arr", &f, NULL);
    avro_value_append(&f, &item, NULL);
    avro_value_set_int(&item, 3);
    avro_value_get_by_name(rec, "m", &f, NULL);
    avro_value_add(&f, "key", &item, NULL, NULL);
    avro_value_set_int(&item, 4);
    ST_EQ_INT(st_avro_codec_encode(w, rec, &buf, &e), 0);
    avro_value_t *out = NULL;
    ST_EQ_INT(st_avro_codec_decode(r, buf.data, buf.len, &out, &e), 0);
    if (e.code)
        fprintf(stderr, "%s\n", e.text);
    ST_REQUIRE(out != NULL);
    json_t *j = st_avro_value_to_json(out);
    char *s = json_dumps(j, JSON_SORT_KEYS);
    ST_EQ_STR(s, "{\"a\": -7, \"arr\": [3.0], \"b\": 1.5, \"c\": \"hi\", \"e\": \"X\", "
                 "\"m\": {\"key\": 4}, \"rec\": {\"x\": 5, \"y\": \"why\"}, \"u\": 9, "
                 "\"v\": 1099511627776.0}");
    free(s);
    json_decref(j);

    /* A reader field without a default that the writer lacks makes the writer unreadable. */
    char xdir[512];
    make_dir(xdir, sizeof xdir, "promo_x");
    write_text(xdir, "p.avsc",
               "{\"type\":\"record\",\"name\":\"P\",\"fields\":[{\"name\":\"needed\",\"type\":"
               "\"int\"}]}");
    write_text(xdir, "w.avsc.old", writer);
    write_text(xdir, "ids.conf", "1 w.avsc.old\n2 p.avsc\n");
    st_avro_registry_t *xreg = st_avro_registry_new(xdir, NULL, err, sizeof err);
    ST_REQUIRE(xreg != NULL);
    st_avro_codec_t *x = st_avro_codec_new(xreg, "P", NULL, err, sizeof err);
    ST_REQUIRE(x != NULL);
    expect_invalid(x, buf.data, buf.len, "P.needed is missing in the writer schema");
    st_buf_free(&buf);
    st_avro_codec_destroy(x);
    st_avro_registry_destroy(xreg);
    st_avro_codec_destroy(w);
    st_avro_codec_destroy(r);
    st_avro_registry_destroy(wreg);
    st_avro_registry_destroy(rreg);
}

static void test_registry_setup_errors(void)
{
    static const struct {
        const char *schema;
        const char *ids;
        const char *needle;
    } cases[] = {
        {"{\"type\":\"record\",\"name\":\"A\",\"fields\":[]}", "", "no id for a.avsc"},
        {"{\"type\":\"record\",\"name\":\"A\",\"fields\":[]}", "1 a.avsc\n1 a.avsc\n",
         "id 1 given twice"},
        {"{\"type\":\"record\",\"name\":\"A\",\"fields\":[]}", "1 missing.avsc\n", "missing.avsc"},
        {"{\"type\":\"record\",\"name\":\"A\",\"fields\":[]}", "one a.avsc\n", "expected"},
        {"{\"type\":\"record\",\"name\":\"A\",\"fields\":[", "1 a.avsc\n", "bad JSON"},
        {"{\"type\":\"record\",\"name\":\"A\",\"fields\":[{\"name\":\"x\",\"type\":\"int\","
         "\"default\":\"no\"}]}",
         "1 a.avsc\n", "default of field x"},
        {"{\"type\":\"record\",\"name\":\"A\",\"fields\":[{\"name\":\"x\",\"type\":\"Nope\"}]}",
         "1 a.avsc\n", "unknown type \"Nope\""},
        {"\"string\"", "1 a.avsc\n", "must be a record"},
        {"{\"type\":\"record\",\"name\":\"A\",\"fields\":[{\"name\":\"next\",\"type\":[\"null\","
         "\"A\"]}]}",
         "1 a.avsc\n", "recursive type A"},
    };
    char dir[512], err[512];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char name[32];
        snprintf(name, sizeof name, "bad%zu", i);
        make_dir(dir, sizeof dir, name);
        write_text(dir, "a.avsc", cases[i].schema);
        write_text(dir, "ids.conf", cases[i].ids);
        err[0] = '\0';
        st_avro_registry_t *reg = st_avro_registry_new(dir, NULL, err, sizeof err);
        ST_CHECK(reg == NULL);
        if (!strstr(err, cases[i].needle))
            ST_FAIL_AT("case %zu: error \"%s\" lacks \"%s\"", i, err, cases[i].needle);
        st_avro_registry_destroy(reg);
    }
    ST_CHECK(st_avro_registry_new("/nonexistent/schemas", NULL, err, sizeof err) == NULL);
    ST_CHECK(strstr(err, "/nonexistent/schemas") != NULL);
    ST_CHECK(st_avro_registry_new(schemas_dir, "ftp://x", err, sizeof err) == NULL);
    ST_CHECK(strstr(err, "http://") != NULL);
}

int main(void)
{
    const char *src = getenv("STINT_SOURCE_DIR");
    snprintf(schemas_dir, sizeof schemas_dir, "%s/schemas", src ? src : STINT_SOURCE_DIR);
    snprintf(tmp_root, sizeof tmp_root, "/tmp/st_avro_test.XXXXXX");
    if (!mkdtemp(tmp_root)) {
        perror("mkdtemp");
        return 1;
    }
    ST_RUN(test_registry_loads_every_schema);
    ST_RUN(test_round_trip_every_schema);
    ST_RUN(test_session_event_helpers);
    ST_RUN(test_dead_letter_bytes_and_copy);
    ST_RUN(test_wire_format_rejects_bad_payloads);
    ST_RUN(test_resolution_fills_reader_defaults);
    ST_RUN(test_resolution_promotions_and_failures);
    ST_RUN(test_registry_setup_errors);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_root);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmp_root);
    return st_test_summary();
}
