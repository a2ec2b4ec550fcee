/* Unit tests of st_listen: valid messages, each error reason, normalisation, event_id stability
 * (against an independently computed value) and the TSV record -> JSON formatter. */
#include "st_lastfm.h"
#include "st_listen.h"
#include "st_test.h"

#define NOW_MS 1798761600000LL /* 2027-01-01T00:00:00Z */

static st_listen_t l;

static st_listen_reason_t parse(const char *json)
{
    return st_listen_parse(json, strlen(json), NOW_MS, &l, NULL);
}

static void test_valid_iso(void)
{
    st_err_t err = {0};
    const char *json = "{\"user_id\":\"user_000001\",\"timestamp\":\"2009-05-04T23:08:57Z\","
                       "\"artist_name\":\"Deep Dish\",\"track_name\":\"Fuck Me Im Famous (Pacha "
                       "Ibiza)-09-28-2007\",\"artist_mbid\":\"f1b1cf71-bd35-4e99-8624-"
                       "24a6e15f133a\",\"track_mbid\":null,\"extra\":[1,2]}";
    ST_EQ_INT(st_listen_parse(json, strlen(json), NOW_MS, &l, &err), ST_LISTEN_OK);
    ST_EQ_INT(err.code, ST_ERR_NONE);
    ST_EQ_STR(l.user_id, "user_000001");
    ST_EQ_INT(l.timestamp_ms, 1241478537000);
    ST_CHECK(l.has_artist_mbid);
    ST_EQ_STR(l.artist_mbid, "f1b1cf71-bd35-4e99-8624-24a6e15f133a");
    ST_CHECK(!l.has_track_mbid);
    ST_EQ_STR(l.track_mbid, "");
    ST_EQ_STR(l.track_key, "deep dish\tfuck me im famous (pacha ibiza)-09-28-2007");
    /* Computed independently (Python) from the documented byte layout. */
    ST_EQ_STR(l.event_id, "d272b3a1c682d1e1");
}

static void test_valid_epoch_ms_same_event(void)
{
    ST_EQ_INT(parse("{\"user_id\":\"user_000001\",\"timestamp\":1241478537000,\"artist_name\":"
                    "\"Deep Dish\",\"track_name\":\"Fuck Me Im Famous (Pacha Ibiza)-09-28-2007\"}"),
              ST_LISTEN_OK);
    ST_EQ_INT(l.timestamp_ms, 1241478537000);
    ST_EQ_STR(l.event_id, "d272b3a1c682d1e1");
    ST_CHECK(!l.has_artist_mbid);
}

static void test_normalisation(void)
{
    ST_EQ_INT(parse("{\"user_id\":\"  user_000002\\n\",\"timestamp\":\"2009-05-03T17:48:25+02:00\","
                    "\"artist_name\":\"\\tSigur R\\u00f3s \",\"track_name\":\" Hopp\xc3\xadpolla\","
                    "\"artist_mbid\":\"   \",\"track_mbid\":\" 0a3c1d4e \"}"),
              ST_LISTEN_OK);
    ST_EQ_STR(l.user_id, "user_000002");
    ST_EQ_INT(l.timestamp_ms, 1241365705000);
    ST_EQ_STR(l.artist_name, "Sigur R\xc3\xb3s");
    ST_EQ_STR(l.track_name, "Hopp\xc3\xadpolla");
    ST_CHECK(!l.has_artist_mbid);
    ST_CHECK(l.has_track_mbid);
    ST_EQ_STR(l.track_mbid, "0a3c1d4e");
    /* ASCII lower-cased, UTF-8 bytes (Ó stays Ó) passed through. */
    ST_EQ_STR(l.track_key, "sigur r\xc3\xb3s\thopp\xc3\xadpolla");
    ST_EQ_STR(l.event_id, "b35e0a9affa9b790");
    ST_EQ_INT(parse("{\"user_id\":\"u\",\"timestamp\":1241365705000,\"artist_name\":\"\\u00d3LAFUR "
                    "Arnalds\",\"track_name\":\"\"}"),
              ST_LISTEN_OK);
    ST_EQ_STR(l.track_key, "\xc3\x93lafur arnalds\t");
}

static void test_event_id_sensitivity(void)
{
    char a[17], b[17], c[17], d[17];
    st_listen_event_id("u1", 1000, "A", "T", a);
    st_listen_event_id("u1", 1000, "A", "T", b);
    st_listen_event_id("u1", 1001, "A", "T", c);
    st_listen_event_id("u1", 1000, "AT", "", d);
    ST_EQ_STR(a, b);
    ST_CHECK(strcmp(a, c) != 0);
    ST_CHECK(strcmp(a, d) != 0); /* the separators matter */
    ST_EQ_INT(strlen(a), 16);
}

/* Each reason with a message that triggers it, and the human text names it. */
static void expect_reason(const char *json, size_t len, st_listen_reason_t reason)
{
    st_err_t err = {0};
    st_listen_reason_t got = st_listen_parse(json, len, NOW_MS, &l, &err);
    if (got != reason)
        ST_FAIL_AT("%.80s: %s, expected %s", json, st_listen_reason_name(got),
                   st_listen_reason_name(reason));
    ST_EQ_INT(err.code, ST_ERR_INVALID);
    ST_CHECK(strncmp(err.text, st_listen_reason_name(reason),
                     strlen(st_listen_reason_name(reason))) == 0);
}

#define EXPECT(json, reason) expect_reason((json), strlen(json), (reason))

static void test_not_json(void)
{
    EXPECT("{\"user_id\":", ST_LISTEN_NOT_JSON);
    EXPECT("", ST_LISTEN_NOT_JSON);
    EXPECT("{\"user_id\":\"a\",\"user_id\":\"b\"}", ST_LISTEN_NOT_JSON);
}

static void test_not_object(void)
{
    EXPECT("[1,2,3]", ST_LISTEN_NOT_OBJECT);
    EXPECT("\"text\"", ST_LISTEN_NOT_OBJECT);
}

static void test_missing_field(void)
{
    EXPECT("{\"timestamp\":1241478537000,\"artist_name\":\"A\",\"track_name\":\"T\"}",
           ST_LISTEN_MISSING_FIELD);
    EXPECT("{\"user_id\":\"u\",\"artist_name\":\"A\",\"track_name\":\"T\"}",
           ST_LISTEN_MISSING_FIELD);
    EXPECT("{\"user_id\":\"u\",\"timestamp\":1241478537000,\"track_name\":\"T\"}",
           ST_LISTEN_MISSING_FIELD);
    EXPECT("{\"user_id\":\"u\",\"timestamp\":1241478537000,\"artist_name\":\"A\","
           "\"track_name\":null}",
           ST_LISTEN_MISSING_FIELD);
    EXPECT("{\"user_id\":\"  \",\"timestamp\":1241478537000,\"artist_name\":\"A\","
           "\"track_name\":\"T\"}",
           ST_LISTEN_MISSING_FIELD);
}

static void test_bad_type(void)
{
    EXPECT(
        "{\"user_id\":42,\"timestamp\":1241478537000,\"artist_name\":\"A\",\"track_name\":\"T\"}",
        ST_LISTEN_BAD_TYPE);
    EXPECT("{\"user_id\":\"u\",\"timestamp\":true,\"artist_name\":\"A\",\"track_name\":\"T\"}",
           ST_LISTEN_BAD_TYPE);
    EXPECT("{\"user_id\":\"u\",\"timestamp\":1241478537000,\"artist_name\":\"A\",\"track_name\":"
           "\"T\",\"track_mbid\":7}",
           ST_LISTEN_BAD_TYPE);
}

static void test_bad_timestamp(void)
{
    EXPECT("{\"user_id\":\"u\",\"timestamp\":\"yesterday\",\"artist_name\":\"A\",\"track_name\":"
           "\"T\"}",
           ST_LISTEN_BAD_TIMESTAMP);
    EXPECT("{\"user_id\":\"u\",\"timestamp\":\"1999-12-31T23:59:59Z\",\"artist_name\":\"A\","
           "\"track_name\":\"T\"}",
           ST_LISTEN_BAD_TIMESTAMP);
    /* now + 10 min is the limit: now + 10 min + 1 ms is out. */
    EXPECT("{\"user_id\":\"u\",\"timestamp\":1798762200001,\"artist_name\":\"A\",\"track_name\":"
           "\"T\"}",
           ST_LISTEN_BAD_TIMESTAMP);
    ST_EQ_INT(parse("{\"user_id\":\"u\",\"timestamp\":1798762200000,\"artist_name\":\"A\","
                    "\"track_name\":\"T\"}"),
              ST_LISTEN_OK);
    EXPECT("{\"user_id\":\"u\",\"timestamp\":-9223372036854775808,\"artist_name\":\"A\","
           "\"track_name\":\"T\"}",
           ST_LISTEN_BAD_TIMESTAMP);
    EXPECT("{\"user_id\":\"u\",\"timestamp\":1241478537000.5,\"artist_name\":\"A\","
           "\"track_name\":\"T\"}",
           ST_LISTEN_BAD_TIMESTAMP);
    EXPECT("{\"user_id\":\"u\",\"timestamp\":-5,\"artist_name\":\"A\",\"track_name\":\"T\"}",
           ST_LISTEN_BAD_TIMESTAMP);
}

static void test_too_long(void)
{
    static char json[80000];
    char name[1100];
    memset(name, 'n', 1025);
    name[1025] = '\0';
    snprintf(json, sizeof json,
             "{\"user_id\":\"u\",\"timestamp\":1241478537000,\"artist_name\":\"A\","
             "\"track_name\":\"%s\"}",
             name);
    EXPECT(json, ST_LISTEN_TOO_LONG);
    name[1024] = '\0'; /* exactly 1 KB is fine */
    snprintf(json, sizeof json,
             "{\"user_id\":\"u\",\"timestamp\":1241478537000,\"artist_name\":\"A\","
             "\"track_name\":\"%s\"}",
             name);
    ST_EQ_INT(parse(json), ST_LISTEN_OK);
    memset(json, ' ', sizeof json - 1);
    json[sizeof json - 1] = '\0';
    json[0] = '{';
    json[sizeof json - 2] = '}';
    EXPECT(json, ST_LISTEN_TOO_LONG);
    /* user_id: the bound every service keys its state by (128 bytes after trimming). */
    char user[200];
    memset(user, 'u', 129);
    user[129] = '\0';
    snprintf(json, sizeof json,
             "{\"user_id\":\"%s\",\"timestamp\":1241478537000,\"artist_name\":\"A\","
             "\"track_name\":\"T\"}",
             user);
    EXPECT(json, ST_LISTEN_TOO_LONG);
    snprintf(json, sizeof json,
             "{\"user_id\":\"  %.128s  \",\"timestamp\":1241478537000,\"artist_name\":\"A\","
             "\"track_name\":\"T\"}",
             user);
    ST_EQ_INT(parse(json), ST_LISTEN_OK); /* 128 bytes once trimmed */
}

static void test_invalid_utf8(void)
{
    EXPECT("{\"user_id\":\"u\",\"timestamp\":1241478537000,\"artist_name\":\"A\xff\","
           "\"track_name\":\"T\"}",
           ST_LISTEN_INVALID_UTF8);
    expect_reason("{\"user_id\":\"u\0\"}", 16, ST_LISTEN_INVALID_UTF8);
}

static void test_bad_id(void)
{
    EXPECT("{\"user_id\":\"us\\u0001er\",\"timestamp\":1241478537000,\"artist_name\":\"A\","
           "\"track_name\":\"T\"}",
           ST_LISTEN_BAD_ID);
    EXPECT("{\"user_id\":\"u\",\"timestamp\":1241478537000,\"artist_name\":\"A\",\"track_name\":"
           "\"T\",\"artist_mbid\":\"ab\\u007fcd\"}",
           ST_LISTEN_BAD_ID);
}

static void test_format_json_round_trip(void)
{
    static const char line[] = "user_000002\t2009-05-03T15:44:00Z\t\t \"Weird Al\" Yankovic\t"
                               "9f1b\tWhite & Nerdy \\ \x01";
    st_lastfm_listen_t rec;
    ST_REQUIRE(st_lastfm_parse_listen(line, sizeof line - 1, &rec) == ST_LASTFM_OK);
    st_buf_t json = ST_BUF_INIT;
    ST_REQUIRE(st_listen_format_json(&rec, &json) == 0);
    ST_EQ_STR(json.data, "{\"user_id\":\"user_000002\",\"timestamp\":\"2009-05-03T15:44:00Z\","
                         "\"artist_name\":\" \\\"Weird Al\\\" Yankovic\",\"track_name\":\"White & "
                         "Nerdy \\\\ \\u0001\",\"track_mbid\":\"9f1b\"}");
    static st_listen_t direct;
    ST_EQ_INT(st_listen_parse(json.data, json.len, NOW_MS, &l, NULL), ST_LISTEN_OK);
    ST_EQ_INT(st_listen_from_record(&rec, NOW_MS, &direct, NULL), ST_LISTEN_OK);
    ST_EQ_STR(l.event_id, direct.event_id);
    ST_EQ_STR(l.track_key, direct.track_key);
    ST_EQ_STR(l.artist_name, "\"Weird Al\" Yankovic");
    ST_EQ_STR(l.track_name, "White & Nerdy \\ \x01");
    ST_EQ_STR(l.track_mbid, "9f1b");
    st_buf_free(&json);
}

int main(void)
{
    ST_RUN(test_valid_iso);
    ST_RUN(test_valid_epoch_ms_same_event);
    ST_RUN(test_normalisation);
    ST_RUN(test_event_id_sensitivity);
    ST_RUN(test_not_json);
    ST_RUN(test_not_object);
    ST_RUN(test_missing_field);
    ST_RUN(test_bad_type);
    ST_RUN(test_bad_timestamp);
    ST_RUN(test_too_long);
    ST_RUN(test_invalid_utf8);
    ST_RUN(test_bad_id);
    ST_RUN(test_format_json_round_trip);
    return st_test_summary();
}
