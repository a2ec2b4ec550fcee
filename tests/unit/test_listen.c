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
    /* A record time at the end of the range (a producer's own choice) does not overflow the
     * bound: the listen is valid, as any listen before it. */
    static const char in_range[] = "{\"user_id\":\"u\",\"timestamp\":1241478537000,\"artist_name\":"
                                   "\"A\",\"track_name\":\"T\"}";
    ST_EQ_INT(st_listen_parse(in_range, sizeof in_range - 1, INT64_MAX, &l, NULL), ST_LISTEN_OK);
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

/* The listens.raw JSON replay sends for a TSV line: 0, or -1 when the line does not parse. */
static int record_json(const char *line, size_t len, st_lastfm_listen_t *rec, st_buf_t *json)
{
    if (st_lastfm_parse_listen(line, len, rec) != ST_LASTFM_OK)
        return -1;
    return st_listen_format_json(rec, json);
}

static void test_format_json_round_trip(void)
{
    static const char line[] = "user_000002\t2009-05-03T15:44:00Z\t\t \"Weird Al\" Yankovic\t"
                               "9f1b\tWhite & Nerdy \\ \x01";
    st_lastfm_listen_t rec;
    st_buf_t json = ST_BUF_INIT;
    ST_REQUIRE(record_json(line, sizeof line - 1, &rec, &json) == 0);
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

/* Differential check of st_listen_parse (its scanner where the message fits, jansson otherwise)
 * against st_listen_parse_reference (jansson alone): the same reason, error text and fields. */
static int diff_printed;

static bool same_as_reference(const char *json, size_t len)
{
    static st_listen_t a, b;
    st_err_t ea = {0}, eb = {0};
    st_listen_reason_t ra = st_listen_parse(json, len, NOW_MS, &a, &ea);
    st_listen_reason_t rb = st_listen_parse_reference(json, len, NOW_MS, &b, &eb);
    const char *what = NULL;
    if (ra != rb)
        what = "reason";
    else if (ea.code != eb.code || strcmp(ea.text, eb.text) != 0)
        what = "error text";
    else if (ra == ST_LISTEN_OK &&
             (strcmp(a.user_id, b.user_id) != 0 || a.timestamp_ms != b.timestamp_ms ||
              strcmp(a.artist_name, b.artist_name) != 0 ||
              strcmp(a.track_name, b.track_name) != 0 || a.has_artist_mbid != b.has_artist_mbid ||
              strcmp(a.artist_mbid, b.artist_mbid) != 0 || a.has_track_mbid != b.has_track_mbid ||
              strcmp(a.track_mbid, b.track_mbid) != 0 || strcmp(a.track_key, b.track_key) != 0 ||
              strcmp(a.event_id, b.event_id) != 0))
        what = "fields";
    if (!what)
        return true;
    if (diff_printed++ < 10)
        ST_FAIL_AT("paths differ in %s for %.*s (fast path %d): %s [%s] vs reference %s [%s]", what,
                   (int)(len < 200 ? len : 200), json, st_listen_parse_is_fast(json, len),
                   st_listen_reason_name(ra), ea.text, st_listen_reason_name(rb), eb.text);
    else
        st_test_failed_checks++;
    return false;
}

#define OK_FIELDS "\"artist_name\":\"A\",\"track_name\":\"T\""

static const char *const edge_cases[] = {
    /* plain, the fast path's own shape */
    "{\"user_id\":\"u\",\"timestamp\":1241478537000," OK_FIELDS "}",
    "{\"user_id\":\"u\",\"timestamp\":\"2009-05-04T23:08:57Z\"," OK_FIELDS
    ",\"artist_mbid\":\"f1b1cf71-bd35-4e99-8624-24a6e15f133a\",\"track_mbid\":null}",
    "{\"user_id\":\"u\",\"timestamp\":\"2009-05-03T17:48:25+02:00\"," OK_FIELDS "}",
    "{\"user_id\":\" \\u00e9 \",\"timestamp\":1241478537000," OK_FIELDS "}",
    "{\"user_id\":\"  Sigur R\xc3\xb3s \",\"timestamp\":1241478537000,\"artist_name\":\" \","
    "\"track_name\":\"\"}",
    /* whitespace everywhere it is legal */
    " \t\r\n{ \"user_id\" :\t\"u\" ,\n\"timestamp\"\r: 1241478537000 , \"artist_name\" : \"A\" , "
    "\"track_name\" : \"T\" } \n\t\r ",
    "{\"user_id\":\"u\",\"timestamp\":1241478537000," OK_FIELDS "}\n",
    /* trailing garbage */
    "{\"user_id\":\"u\",\"timestamp\":1241478537000," OK_FIELDS "}x",
    "{\"user_id\":\"u\",\"timestamp\":1241478537000," OK_FIELDS "}}",
    "{\"user_id\":\"u\",\"timestamp\":1241478537000," OK_FIELDS "} {}",
    "{\"user_id\":\"u\",\"timestamp\":1241478537000," OK_FIELDS "},",
    "{\"user_id\":\"u\",\"timestamp\":1241478537000," OK_FIELDS ",}",
    "{\"user_id\":\"u\",,\"timestamp\":1241478537000," OK_FIELDS "}",
    /* duplicate keys, known and unknown, and ones that differ only by an escape */
    "{\"user_id\":\"u\",\"user_id\":\"v\",\"timestamp\":1241478537000," OK_FIELDS "}",
    "{\"user_id\":\"u\",\"x\":1,\"timestamp\":1241478537000,\"x\":2," OK_FIELDS "}",
    "{\"user_id\":\"u\",\"x\":1,\"timestamp\":1241478537000,\"X\":2," OK_FIELDS "}",
    "{\"user_id\":\"u\",\"ab\":1,\"a\\u0062\":2,\"timestamp\":1241478537000," OK_FIELDS "}",
    "{\"user_id\":\"u\",\"user\\u005fid\":\"v\",\"timestamp\":1241478537000," OK_FIELDS "}",
    "{\"user\\u005fid\":\"v\",\"timestamp\":1241478537000," OK_FIELDS "}",
    "{\"\":1,\"\":2}",
    "{\"\":1,\"user_id\":\"u\",\"timestamp\":1241478537000," OK_FIELDS "}",
    /* escapes in values */
    "{\"user_id\":\"u\\\"v\",\"timestamp\":1241478537000," OK_FIELDS "}",
    "{\"user_id\":\"u\\n\",\"timestamp\":1241478537000," OK_FIELDS "}",
    "{\"user_id\":\"u\\/\",\"timestamp\":1241478537000," OK_FIELDS "}",
    "{\"user_id\":\"u\\u0000\",\"timestamp\":1241478537000," OK_FIELDS "}",
    "{\"user_id\":\"u\\ud800\",\"timestamp\":1241478537000," OK_FIELDS "}",
    "{\"user_id\":\"u\\x\",\"timestamp\":1241478537000," OK_FIELDS "}",
    "{\"user_id\":\"u\",\"timestamp\":1241478537000," OK_FIELDS ",\"artist_mbid\":\"a\\u007fb\"}",
    /* nested values */
    "{\"user_id\":\"u\",\"timestamp\":1241478537000," OK_FIELDS ",\"extra\":[1,2]}",
    "{\"user_id\":\"u\",\"timestamp\":1241478537000," OK_FIELDS ",\"extra\":{\"a\":1}}",
    "{\"user_id\":{\"a\":1},\"timestamp\":1241478537000," OK_FIELDS "}",
    "{\"user_id\":\"u\",\"timestamp\":[1241478537000]," OK_FIELDS "}",
    "{\"user_id\":\"u\",\"timestamp\":{}," OK_FIELDS "}",
    /* numbers: reals, exponents, leading zeros, signs, -0, 18 and 19 digits, overflow */
    "{\"user_id\":\"u\",\"timestamp\":1241478537000.0," OK_FIELDS "}",
    "{\"user_id\":\"u\",\"timestamp\":1.241478537e12," OK_FIELDS "}",
    "{\"user_id\":\"u\",\"timestamp\":1241478537000E0," OK_FIELDS "}",
    "{\"user_id\":\"u\",\"timestamp\":-0.0," OK_FIELDS "}",
    "{\"user_id\":\"u\",\"timestamp\":01241478537000," OK_FIELDS "}",
    "{\"user_id\":\"u\",\"timestamp\":00," OK_FIELDS "}",
    "{\"user_id\":\"u\",\"timestamp\":-01," OK_FIELDS "}",
    "{\"user_id\":\"u\",\"timestamp\":0," OK_FIELDS "}",
    "{\"user_id\":\"u\",\"timestamp\":-0," OK_FIELDS "}",
    "{\"user_id\":\"u\",\"timestamp\":+1241478537000," OK_FIELDS "}",
    "{\"user_id\":\"u\",\"timestamp\":-," OK_FIELDS "}",
    "{\"user_id\":\"u\",\"timestamp\":-a," OK_FIELDS "}",
    "{\"user_id\":\"u\",\"timestamp\":.5," OK_FIELDS "}",
    "{\"user_id\":\"u\",\"timestamp\":1241478537000x," OK_FIELDS "}",
    "{\"user_id\":\"u\",\"timestamp\":999999999999999999," OK_FIELDS "}",
    "{\"user_id\":\"u\",\"timestamp\":-999999999999999999," OK_FIELDS "}",
    "{\"user_id\":\"u\",\"timestamp\":1000000000000000000," OK_FIELDS "}",
    "{\"user_id\":\"u\",\"timestamp\":9223372036854775807," OK_FIELDS "}",
    "{\"user_id\":\"u\",\"timestamp\":9223372036854775808," OK_FIELDS "}",
    "{\"user_id\":\"u\",\"timestamp\":-9223372036854775809," OK_FIELDS "}",
    "{\"user_id\":\"u\",\"timestamp\":0001241478537000," OK_FIELDS "}",
    "{\"user_id\":\"u\",\"timestamp\":1241478537000,\"x\":123456789012345678901234," OK_FIELDS "}",
    /* literals */
    "{\"user_id\":\"u\",\"timestamp\":true," OK_FIELDS "}",
    "{\"user_id\":\"u\",\"timestamp\":false," OK_FIELDS "}",
    "{\"user_id\":\"u\",\"timestamp\":null," OK_FIELDS "}",
    "{\"user_id\":\"u\",\"timestamp\":truex," OK_FIELDS "}",
    "{\"user_id\":\"u\",\"timestamp\":tru," OK_FIELDS "}",
    "{\"user_id\":\"u\",\"timestamp\":nul}",
    "{\"user_id\":\"u\",\"timestamp\":fals}",
    "{\"user_id\":\"u\",\"timestamp\":True," OK_FIELDS "}",
    "{\"user_id\":true,\"timestamp\":1241478537000," OK_FIELDS "}",
    "{\"user_id\":false,\"timestamp\":1241478537000," OK_FIELDS "}",
    "{\"user_id\":null,\"timestamp\":1241478537000," OK_FIELDS "}",
    "{\"user_id\":7,\"timestamp\":1241478537000," OK_FIELDS "}",
    "{\"user_id\":\"u\",\"timestamp\":1241478537000,\"artist_name\":null,\"track_name\":\"T\"}",
    "{\"user_id\":\"u\",\"timestamp\":1241478537000,\"artist_name\":1,\"track_name\":\"T\"}",
    "{\"user_id\":\"u\",\"timestamp\":1241478537000,\"artist_name\":\"A\",\"track_name\":false}",
    "{\"user_id\":\"u\",\"timestamp\":1241478537000,\"artist_name\":\"A\",\"track_name\":1.5}",
    /* missing fields */
    "{}",
    "{ }",
    "{\"timestamp\":1241478537000," OK_FIELDS "}",
    "{\"user_id\":\"u\"," OK_FIELDS "}",
    "{\"user_id\":\"u\",\"timestamp\":1241478537000,\"track_name\":\"T\"}",
    "{\"user_id\":\"u\",\"timestamp\":1241478537000,\"artist_name\":\"A\"}",
    "{\"User_id\":\"u\",\"timestamp\":1241478537000," OK_FIELDS "}",
    "{\"user_id \":\"u\",\"timestamp\":1241478537000," OK_FIELDS "}",
    "{\"user_i\":\"u\",\"timestamp\":1241478537000," OK_FIELDS "}",
    "{\"user_id\":\"   \",\"timestamp\":1241478537000," OK_FIELDS "}",
    /* mbids: blank, null, wrong type, control characters */
    "{\"user_id\":\"u\",\"timestamp\":1241478537000," OK_FIELDS
    ",\"artist_mbid\":\"\",\"track_mbid\":\" \"}",
    "{\"user_id\":\"u\",\"timestamp\":1241478537000," OK_FIELDS
    ",\"artist_mbid\":null,\"track_mbid\":null}",
    "{\"user_id\":\"u\",\"timestamp\":1241478537000," OK_FIELDS
    ",\"artist_mbid\":\" x \",\"track_mbid\":\"y\"}",
    "{\"user_id\":\"u\",\"timestamp\":1241478537000," OK_FIELDS ",\"artist_mbid\":true}",
    "{\"user_id\":\"u\",\"timestamp\":1241478537000," OK_FIELDS ",\"track_mbid\":0}",
    "{\"user_id\":\"u\",\"timestamp\":1241478537000," OK_FIELDS ",\"track_mbid\":[]}",
    "{\"user_id\":\"u\",\"timestamp\":1241478537000," OK_FIELDS ",\"artist_mbid\":\"a\x7f\"}",
    "{\"user_id\":\"u\x7f\",\"timestamp\":1241478537000," OK_FIELDS "}",
    /* raw control characters in strings and keys (jansson rejects them) */
    "{\"user_id\":\"u\tv\",\"timestamp\":1241478537000," OK_FIELDS "}",
    "{\"user_id\":\"u\x01\",\"timestamp\":1241478537000," OK_FIELDS "}",
    "{\"user_id\":\"u\",\"timestamp\":1241478537000," OK_FIELDS ",\"a\nb\":1}",
    "{\"user_id\":\"u\",\"timestamp\":1241478537000,\x01" OK_FIELDS "}",
    /* timestamps as strings */
    "{\"user_id\":\"u\",\"timestamp\":\"yesterday\"," OK_FIELDS "}",
    "{\"user_id\":\"u\",\"timestamp\":\"\"," OK_FIELDS "}",
    "{\"user_id\":\"u\",\"timestamp\":\"1999-12-31T23:59:59Z\"," OK_FIELDS "}",
    "{\"user_id\":\"u\",\"timestamp\":\"2009-05-04T23:08:57Z                                       "
    "                     \"," OK_FIELDS "}",
    "{\"user_id\":\"u\",\"timestamp\":1798762200000," OK_FIELDS "}",
    "{\"user_id\":\"u\",\"timestamp\":1798762200001," OK_FIELDS "}",
    /* syntax errors */
    "",
    "   ",
    "{",
    "}",
    "{\"user_id\"",
    "{\"user_id\":",
    "{\"user_id\":\"u",
    "{\"user_id\" \"u\"}",
    "{\"user_id\":\"u\" \"timestamp\":1}",
    "{user_id:\"u\"}",
    "{'user_id':'u'}",
    "{\"user_id\":\"u\",\"timestamp\":1241478537000," OK_FIELDS,
    "\xef\xbb\xbf{\"user_id\":\"u\",\"timestamp\":1241478537000," OK_FIELDS "}",
    /* tops that are not objects */
    "[]",
    "[{\"user_id\":\"u\"}]",
    "\"text\"",
    "1",
    "-0",
    "1.5",
    "true",
    "null",
    "{}{}",
    /* invalid UTF-8: overlong, surrogate, truncated, stray byte */
    "{\"user_id\":\"u\xc0\x80\",\"timestamp\":1241478537000," OK_FIELDS "}",
    "{\"user_id\":\"u\xed\xa0\x80\",\"timestamp\":1241478537000," OK_FIELDS "}",
    "{\"user_id\":\"u\xe2\x82\",\"timestamp\":1241478537000," OK_FIELDS "}",
    "{\"user_id\":\"u\",\"timestamp\":1241478537000," OK_FIELDS "}\xff",
    "{\"user_id\":\"u\",\"timestamp\":1241478537000," OK_FIELDS ",\"\xf4\x90\x80\x80\":1}",
    /* UTF-8 outside strings */
    "{\"user_id\":\"u\",\"timestamp\":1241478537000," OK_FIELDS "}\xc2\xa0",
    "{\"user_id\":\"\xe5\x9d\x82\xe6\x9c\xac\",\"timestamp\":1241478537000," OK_FIELDS "}",
};

/* A message with n unknown keys besides the four required ones. */
static size_t with_keys(char *buf, size_t size, int n)
{
    size_t len = (size_t)snprintf(buf, size,
                                  "{\"user_id\":\"u\",\"timestamp\":1241478537000,"
                                  "\"artist_name\":\"A\",\"track_name\":\"T\"");
    for (int i = 0; i < n; i++)
        len += (size_t)snprintf(buf + len, size - len, ",\"k%d\":%d", i, i);
    len += (size_t)snprintf(buf + len, size - len, "}");
    return len;
}

static void test_fast_path_matches_reference_edge_cases(void)
{
    int fast = 0;
    for (size_t i = 0; i < sizeof edge_cases / sizeof *edge_cases; i++) {
        same_as_reference(edge_cases[i], strlen(edge_cases[i]));
        fast += st_listen_parse_is_fast(edge_cases[i], strlen(edge_cases[i]));
    }
    /* Embedded NUL bytes, inside and outside strings. */
    static const char nul_in_string[] =
        "{\"user_id\":\"u\0\",\"timestamp\":1241478537000," OK_FIELDS "}";
    static const char nul_after[] =
        "{\"user_id\":\"u\",\"timestamp\":1241478537000," OK_FIELDS "}\0";
    same_as_reference(nul_in_string, sizeof nul_in_string - 1);
    same_as_reference(nul_after, sizeof nul_after - 1);
    /* Up to 16 keys the scanner decides; more go to jansson; both agree at and past the bound. */
    char buf[2048];
    for (int n = 0; n <= 20; n++) {
        size_t len = with_keys(buf, sizeof buf, n);
        same_as_reference(buf, len);
        ST_EQ_INT(st_listen_parse_is_fast(buf, len), n + 4 <= 16);
    }
    /* Strings at the 1 KB bound, user_id at 128 and 129 bytes, over the 64 KB bound. */
    static char big[70000];
    char name[1100];
    for (int n = 1023; n <= 1026; n++) {
        memset(name, 'n', (size_t)n);
        name[n] = '\0';
        int len = snprintf(big, sizeof big,
                           "{\"user_id\":\"u\",\"timestamp\":1241478537000,\"artist_name\":\"A\","
                           "\"track_name\":\"%s\"}",
                           name);
        same_as_reference(big, (size_t)len);
        len = snprintf(big, sizeof big,
                       "{\"user_id\":\"%.*s\",\"timestamp\":1241478537000," OK_FIELDS "}",
                       n - 1023 + 127, name);
        same_as_reference(big, (size_t)len);
    }
    memset(big, ' ', sizeof big);
    memcpy(big, edge_cases[0], strlen(edge_cases[0]));
    same_as_reference(big, ST_LISTEN_MESSAGE_MAX);
    same_as_reference(big, ST_LISTEN_MESSAGE_MAX + 1);
    /* Most plain cases must really have been decided by the scanner. */
    ST_CHECK(fast >= 40);
}

/* Deterministic PRNG (xorshift64*), so a failure reproduces. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint32_t rng(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545f4914f6cdd1dULL) >> 32);
}

/* A byte that often changes how the message parses: JSON punctuation, digits, literal letters,
 * whitespace, control characters, UTF-8 lead and continuation bytes, or any byte. */
static char mutation_byte(void)
{
    static const char interesting[] = "{}[]\":,\\ \t\r\n0123456789-+.eEtrufalsnu_\x01\x7f\xc3\xa9";
    if (rng() % 8 == 0)
        return (char)(rng() & 0xff);
    return interesting[rng() % (sizeof interesting - 1)];
}

/* One random edit of buf[0..*len) (capacity cap): replace, insert, delete, or copy a span. */
static void mutate(char *buf, size_t *len, size_t cap)
{
    size_t n = *len;
    size_t at = n ? rng() % n : 0;
    switch (rng() % 5) {
    case 0:
        if (n)
            buf[at] = mutation_byte();
        break;
    case 1:
        if (n + 1 < cap) {
            memmove(buf + at + 1, buf + at, n - at);
            buf[at] = mutation_byte();
            *len = n + 1;
        }
        break;
    case 2:
        if (n) {
            memmove(buf + at, buf + at + 1, n - at - 1);
            *len = n - 1;
        }
        break;
    case 3: {
        size_t span = 1 + rng() % 12, to = n ? rng() % n : 0;
        if (at + span > n)
            span = n - at;
        if (n + span < cap && span > 0) {
            memmove(buf + to + span, buf + to, n - to);
            memmove(buf + to, buf + (at >= to ? at + span : at), span);
            *len = n + span;
        }
        break;
    }
    default:
        if (n) /* truncate */
            *len = at;
        break;
    }
}

static void test_fast_path_matches_reference_mutations(void)
{
    static const char *const seeds[] = {
        "{\"user_id\":\"user_000001\",\"timestamp\":\"2009-05-04T23:08:57Z\",\"artist_name\":"
        "\"Deep Dish\",\"track_name\":\"Fuck Me Im Famous\",\"artist_mbid\":\"f1b1cf71-bd35-4e99-"
        "8624-24a6e15f133a\",\"track_mbid\":null}",
        "{\"user_id\":\"u\",\"timestamp\":1241478537000,\"artist_name\":\"Sigur R\xc3\xb3s\","
        "\"track_name\":\" Hopp\xc3\xadpolla \",\"track_mbid\":\" 0a3c1d4e \",\"x\":true}",
        "{ \"track_name\" : \"\", \"artist_name\" : \"A\" ,\n\"timestamp\" : -0, \"user_id\" : "
        "\"u\", \"n\": null, \"f\": false }",
        "{\"user_id\":\"u\\u00e9\",\"timestamp\":1241478537000.0,\"artist_name\":\"A\","
        "\"track_name\":\"T\",\"extra\":[1,{\"a\":2}]}",
    };
    char buf[1024];
    int runs = 0, fast = 0, fast_ok = 0, reference_only = 0;
    for (int round = 0; round < 20000; round++) {
        const char *seed = seeds[round % 4];
        size_t len = strlen(seed);
        memcpy(buf, seed, len);
        int edits = 1 + (int)(rng() % 3);
        for (int e = 0; e < edits; e++)
            mutate(buf, &len, sizeof buf);
        runs++;
        if (!same_as_reference(buf, len))
            continue;
        if (st_listen_parse_is_fast(buf, len)) {
            fast++;
            fast_ok += st_listen_parse(buf, len, NOW_MS, &l, NULL) == ST_LISTEN_OK;
        } else {
            reference_only++;
        }
    }
    printf("     %d mutated messages: %d decided by the scanner (%d of them ok), %d by jansson\n",
           runs, fast, fast_ok, reference_only);
    /* Both sides of the split must really have been exercised. */
    ST_CHECK(fast >= runs / 10);
    ST_CHECK(fast_ok >= 100);
    ST_CHECK(reference_only >= runs / 5);
}

/* The scanner is really what decodes an ordinary message, and escapes send it to jansson. */
static void test_fast_path_taken(void)
{
    static const char plain[] =
        "{\"user_id\":\"user_000001\",\"timestamp\":\"2009-05-04T23:08:57Z\","
        "\"artist_name\":\"Deep Dish\",\"track_name\":\"Fuck Me Im Famous "
        "(Pacha Ibiza)-09-28-2007\",\"artist_mbid\":\"f1b1cf71-bd35-4e99-"
        "8624-24a6e15f133a\",\"track_mbid\":null}";
    ST_CHECK(st_listen_parse_is_fast(plain, sizeof plain - 1));
    ST_EQ_INT(st_listen_parse(plain, sizeof plain - 1, NOW_MS, &l, NULL), ST_LISTEN_OK);
    ST_EQ_STR(l.event_id, "d272b3a1c682d1e1");
    static const char escaped[] = "{\"user_id\":\"user_00000\\u0031\",\"timestamp\":"
                                  "1241478537000,\"artist_name\":\"Deep Dish\",\"track_name\":"
                                  "\"Fuck Me Im Famous (Pacha Ibiza)-09-28-2007\"}";
    ST_CHECK(!st_listen_parse_is_fast(escaped, sizeof escaped - 1));
    ST_EQ_INT(st_listen_parse(escaped, sizeof escaped - 1, NOW_MS, &l, NULL), ST_LISTEN_OK);
    ST_EQ_STR(l.event_id, "d272b3a1c682d1e1");
    /* What the replay formatter writes for an ordinary record takes the fast path. */
    static const char line[] = "user_000002\t2009-05-03T15:44:00Z\tf1b1cf71-bd35-4e99-8624-"
                               "24a6e15f133a\tSigur R\xc3\xb3s\t\tHopp\xc3\xadpolla";
    st_lastfm_listen_t rec;
    st_buf_t json = ST_BUF_INIT;
    ST_REQUIRE(record_json(line, sizeof line - 1, &rec, &json) == 0);
    ST_CHECK(st_listen_parse_is_fast(json.data, json.len));
    st_buf_free(&json);
    /* Rejected before decoding: neither path. */
    ST_CHECK(!st_listen_parse_is_fast("{\"user_id\":\"\xff\"}", 15));
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
    ST_RUN(test_fast_path_taken);
    ST_RUN(test_fast_path_matches_reference_edge_cases);
    ST_RUN(test_fast_path_matches_reference_mutations);
    return st_test_summary();
}
