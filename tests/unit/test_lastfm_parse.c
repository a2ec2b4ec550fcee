/* Unit tests of the Last.fm track.getInfo JSON parsing (no server): every quirk of the answers and
 * every error class. */
#include "st_lastfm_api.h"
#include "st_test.h"

static st_lastfm_api_result_t parse(const char *json)
{
    st_lastfm_api_result_t r;
    memset(&r, 0x5a, sizeof r); /* the parser must fill everything */
    st_lastfm_api_parse_track_info(json, strlen(json), &r);
    return r;
}

static void test_found_tags_array(void)
{
    st_lastfm_api_result_t r =
        parse("{\"track\":{\"name\":\"Karma Police\",\"duration\":\"264000\",\"listeners\":\"12\","
              "\"playcount\":\"34\",\"artist\":{\"name\":\"Radiohead\"},\"toptags\":{\"tag\":["
              "{\"name\":\"alternative\",\"url\":\"u\"},{\"name\":\"rock\"},{\"name\":\"90s\"},"
              "{\"name\":\"britpop\"},{\"name\":\"indie\"},{\"name\":\"sixth\"}]}}}");
    ST_EQ_INT(r.status, ST_LASTFM_API_OK);
    ST_EQ_INT(r.lastfm_error, 0);
    ST_EQ_INT(r.http_status, 0);
    ST_CHECK(!r.rate_limited);
    ST_EQ_INT(r.duration_ms, 264000);
    ST_EQ_INT(r.n_tags, 5); /* capped at 5, in the order given */
    ST_EQ_STR(r.tags[0], "alternative");
    ST_EQ_STR(r.tags[1], "rock");
    ST_EQ_STR(r.tags[2], "90s");
    ST_EQ_STR(r.tags[4], "indie");
}

static void test_tag_single_object(void)
{
    st_lastfm_api_result_t r = parse("{\"track\":{\"duration\":\"305000\",\"toptags\":{\"tag\":"
                                     "{\"name\":\"electronic\",\"url\":\"u\"}}}}");
    ST_EQ_INT(r.status, ST_LASTFM_API_OK);
    ST_EQ_INT(r.duration_ms, 305000);
    ST_EQ_INT(r.n_tags, 1);
    ST_EQ_STR(r.tags[0], "electronic");
}

static void test_numbers_as_numbers_or_strings(void)
{
    static const struct {
        const char *json;
        int64_t duration_ms;
    } cases[] = {
        {"{\"track\":{\"duration\":\"215000\"}}", 215000},
        {"{\"track\":{\"duration\":215000}}", 215000},
        {"{\"track\":{\"duration\":215000.0}}", 215000},
        {"{\"track\":{\"duration\":\" 215000 \"}}", 215000},
        {"{\"track\":{\"duration\":\"0\"}}", -1},
        {"{\"track\":{\"duration\":0}}", -1},
        {"{\"track\":{\"duration\":\"\"}}", -1},
        {"{\"track\":{\"duration\":\"abc\"}}", -1},
        {"{\"track\":{\"duration\":\"12abc\"}}", -1},
        {"{\"track\":{\"duration\":\"-5\"}}", -1},
        {"{\"track\":{\"duration\":null}}", -1},
        {"{\"track\":{\"duration\":\"99999999999999999999999\"}}", -1},
        {"{\"track\":{}}", -1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        st_lastfm_api_result_t r = parse(cases[i].json);
        if (r.status != ST_LASTFM_API_OK || r.duration_ms != cases[i].duration_ms)
            ST_FAIL_AT("%s: status %s duration %lld, expected ok %lld", cases[i].json,
                       st_lastfm_api_status_name(r.status), (long long)r.duration_ms,
                       (long long)cases[i].duration_ms);
        ST_EQ_INT(r.n_tags, 0);
    }
}

static void test_duration_zero_keeps_tags(void)
{
    st_lastfm_api_result_t r = parse("{\"track\":{\"duration\":\"0\",\"toptags\":{\"tag\":[{"
                                     "\"name\":\"idm\"},{\"name\":\"ambient\"}]}}}");
    ST_EQ_INT(r.status, ST_LASTFM_API_OK);
    ST_EQ_INT(r.duration_ms, -1);
    ST_EQ_INT(r.n_tags, 2);
    ST_EQ_STR(r.tags[1], "ambient");
}

static void test_missing_toptags_keeps_duration(void)
{
    static const char *cases[] = {
        "{\"track\":{\"duration\":\"125000\"}}",
        "{\"track\":{\"duration\":\"125000\",\"toptags\":\"\\n      \"}}",
        "{\"track\":{\"duration\":\"125000\",\"toptags\":{}}}",
        "{\"track\":{\"duration\":\"125000\",\"toptags\":{\"tag\":[]}}}",
        "{\"track\":{\"duration\":\"125000\",\"toptags\":{\"tag\":\"rock\"}}}",
        "{\"track\":{\"duration\":\"125000\",\"toptags\":null}}",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        st_lastfm_api_result_t r = parse(cases[i]);
        if (r.status != ST_LASTFM_API_OK || r.duration_ms != 125000 || r.n_tags != 0)
            ST_FAIL_AT("%s: status %s duration %lld tags %d", cases[i],
                       st_lastfm_api_status_name(r.status), (long long)r.duration_ms, r.n_tags);
    }
}

static void test_odd_tags_skipped(void)
{
    st_lastfm_api_result_t r =
        parse("{\"track\":{\"duration\":\"1000\",\"toptags\":{\"tag\":[{\"name\":\"\"},42,"
              "{\"url\":\"x\"},{\"name\":7},\"str\",{\"name\":\"kept\"}]}}}");
    ST_EQ_INT(r.status, ST_LASTFM_API_OK);
    ST_EQ_INT(r.n_tags, 1);
    ST_EQ_STR(r.tags[0], "kept");
}

static void test_long_tag_cut_on_utf8_boundary(void)
{
    char json[1024], name[400];
    size_t o = 0;
    while (o + 2 < 300) { /* "é" is 2 bytes: 150 of them, so the cut at 127 falls mid-character */
        name[o++] = (char)0xC3;
        name[o++] = (char)0xA9;
    }
    name[o] = '\0';
    snprintf(json, sizeof json, "{\"track\":{\"toptags\":{\"tag\":{\"name\":\"%s\"}}}}", name);
    st_lastfm_api_result_t r = parse(json);
    ST_EQ_INT(r.status, ST_LASTFM_API_OK);
    ST_EQ_INT(r.n_tags, 1);
    ST_EQ_INT(strlen(r.tags[0]), 126);
    ST_CHECK(memcmp(r.tags[0], name, 126) == 0);
}

static void test_errors(void)
{
    static const struct {
        const char *json;
        st_lastfm_api_status_t status;
        int code;
        bool rate_limited;
    } cases[] = {
        {"{\"error\":6,\"message\":\"Track not found\",\"links\":[]}", ST_LASTFM_API_NOT_FOUND, 6,
         false},
        {"{\"error\":\"6\",\"message\":\"Track not found\"}", ST_LASTFM_API_NOT_FOUND, 6, false},
        {"{\"error\":11,\"message\":\"Service Offline\"}", ST_LASTFM_API_RETRY, 11, false},
        {"{\"error\":16,\"message\":\"temporary\"}", ST_LASTFM_API_RETRY, 16, false},
        {"{\"error\":8,\"message\":\"Operation failed\"}", ST_LASTFM_API_RETRY, 8, false},
        {"{\"error\":29,\"message\":\"Rate limit exceeded\"}", ST_LASTFM_API_RETRY, 29, true},
        {"{\"error\":10,\"message\":\"Invalid API key\"}", ST_LASTFM_API_FATAL_KEY, 10, false},
        {"{\"error\":26,\"message\":\"Suspended API key\"}", ST_LASTFM_API_FATAL_KEY, 26, false},
        {"{\"error\":3,\"message\":\"Invalid Method\"}", ST_LASTFM_API_OTHER, 3, false},
        {"{\"error\":6}", ST_LASTFM_API_NOT_FOUND, 6, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        st_lastfm_api_result_t r = parse(cases[i].json);
        if (r.status != cases[i].status || r.lastfm_error != cases[i].code ||
            r.rate_limited != cases[i].rate_limited)
            ST_FAIL_AT("%s: status %s error %d rate_limited %d, expected %s %d %d", cases[i].json,
                       st_lastfm_api_status_name(r.status), r.lastfm_error, r.rate_limited,
                       st_lastfm_api_status_name(cases[i].status), cases[i].code,
                       cases[i].rate_limited);
        ST_EQ_INT(r.duration_ms, -1);
        ST_EQ_INT(r.n_tags, 0);
        ST_CHECK(r.reason[0] != '\0');
    }
    st_lastfm_api_result_t r = parse("{\"error\":6,\"message\":\"Track not found\"}");
    ST_EQ_STR(r.reason, "lastfm error 6: Track not found");
}

static void test_malformed(void)
{
    static const struct {
        const char *json;
        const char *reason_part;
    } cases[] = {
        {"", "empty"},
        {"<html>Service Unavailable</html>", "malformed JSON"},
        {"{\"track\":", "malformed JSON"},
        {"[1,2]", "not a JSON object"},
        {"{\"results\":{}}", "no track object"},
        {"{\"track\":\"Karma Police\"}", "no track object"},
        {"{\"track\":null}", "no track object"},
        {"{\"error\":\"x\",\"message\":\"m\"}", "not a valid code"},
        {"{\"error\":-3}", "not a valid code"},
        {"{\"error\":{}}", "not a valid code"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        st_lastfm_api_result_t r = parse(cases[i].json);
        if (r.status != ST_LASTFM_API_OTHER || !strstr(r.reason, cases[i].reason_part))
            ST_FAIL_AT("\"%s\": status %s reason \"%s\", expected other with \"%s\"", cases[i].json,
                       st_lastfm_api_status_name(r.status), r.reason, cases[i].reason_part);
        ST_EQ_INT(r.duration_ms, -1);
        ST_EQ_INT(r.lastfm_error, 0);
    }
    /* Not NUL-terminated, and NULL. */
    const char buf[] = {'{', '}', 'x'};
    st_lastfm_api_result_t r;
    st_lastfm_api_parse_track_info(buf, 2, &r);
    ST_EQ_INT(r.status, ST_LASTFM_API_OTHER);
    ST_EQ_STR(r.reason, "answer has no track object");
    st_lastfm_api_parse_track_info(NULL, 0, &r);
    ST_EQ_INT(r.status, ST_LASTFM_API_OTHER);
}

static void test_classify_and_names(void)
{
    ST_EQ_INT(st_lastfm_api_classify_error(6), ST_LASTFM_API_NOT_FOUND);
    ST_EQ_INT(st_lastfm_api_classify_error(29), ST_LASTFM_API_RETRY);
    ST_EQ_INT(st_lastfm_api_classify_error(26), ST_LASTFM_API_FATAL_KEY);
    ST_EQ_INT(st_lastfm_api_classify_error(0), ST_LASTFM_API_OTHER);
    ST_EQ_STR(st_lastfm_api_status_name(ST_LASTFM_API_NOT_FOUND), "not_found");
    ST_EQ_STR(st_lastfm_api_status_name(ST_LASTFM_API_FATAL_KEY), "fatal_key");
}

static void test_config_defaults(void)
{
    st_lastfm_api_config_t c;
    st_lastfm_api_config_init(&c);
    ST_EQ_STR(c.base_url, "https://ws.audioscrobbler.com/2.0/");
    ST_CHECK(strncmp(c.user_agent, "stint/", 6) == 0);
    ST_CHECK(c.api_key == NULL);
    ST_CHECK(c.connect_timeout_ms > 0 && c.total_timeout_ms >= c.connect_timeout_ms);
    char err[128] = "";
    ST_CHECK(st_lastfm_api_new(&c, err, sizeof err) == NULL);
    ST_CHECK(strstr(err, "no API key") != NULL);
    st_lastfm_api_destroy(NULL);
}

static void test_load_key(void)
{
    char key[64], err[256];
    char path[] = "/tmp/stint_lfm_key_XXXXXX";
    int fd = mkstemp(path);
    ST_REQUIRE(fd >= 0);
    FILE *f = fdopen(fd, "w");
    ST_REQUIRE(f);
    fputs("  0123456789abcdef0123456789abcdef \n second line\n", f);
    fclose(f);
    unsetenv(ST_LASTFM_API_KEY_ENV);
    unsetenv(ST_LASTFM_API_KEY_FILE_ENV);

    ST_EQ_INT(st_lastfm_api_load_key(path, key, sizeof key, err, sizeof err), 0);
    ST_EQ_STR(key, "0123456789abcdef0123456789abcdef");
    /* The environment wins over the file. */
    setenv(ST_LASTFM_API_KEY_ENV, "fromenv", 1);
    ST_EQ_INT(st_lastfm_api_load_key(path, key, sizeof key, err, sizeof err), 0);
    ST_EQ_STR(key, "fromenv");
    unsetenv(ST_LASTFM_API_KEY_ENV);
    /* Too small a buffer: an error that does not show the key. */
    err[0] = '\0';
    ST_EQ_INT(st_lastfm_api_load_key(path, key, 8, err, sizeof err), -1);
    ST_CHECK(err[0] && !strstr(err, "0123456789abcdef"));
    remove(path);
    ST_EQ_INT(st_lastfm_api_load_key(path, key, sizeof key, err, sizeof err), -1);
    ST_CHECK(strstr(err, "cannot open") != NULL);
    ST_EQ_INT(st_lastfm_api_load_key(NULL, key, sizeof key, err, sizeof err), -1);
    ST_CHECK(strstr(err, ST_LASTFM_API_KEY_ENV) != NULL);
}

/* The same rule for a key given as a value (lastfm.api_key, whose STINT_LASTFM_API_KEY_FILE secret
 * keeps the file's blank lines and spaces): the first line, trimmed; inner spaces are an error. */
static void test_key_from(void)
{
    char key[64], err[256];
    ST_EQ_INT(st_lastfm_api_key_from("abc123 \n\n", "x", key, sizeof key, err, sizeof err), 0);
    ST_EQ_STR(key, "abc123");
    ST_EQ_INT(st_lastfm_api_key_from("\t abc123\r\nsecond", "x", key, sizeof key, err, sizeof err),
              0);
    ST_EQ_STR(key, "abc123");
    ST_EQ_INT(st_lastfm_api_key_from("abc 123", "lastfm.api_key", key, sizeof key, err, sizeof err),
              -1);
    ST_CHECK(strstr(err, "lastfm.api_key") && strstr(err, "space") && !strstr(err, "abc"));
    ST_EQ_INT(st_lastfm_api_key_from(" \n", "x", key, sizeof key, err, sizeof err), -1);
    ST_CHECK(strstr(err, "empty") != NULL);
    ST_EQ_INT(st_lastfm_api_key_from("abcdefgh", "x", key, 8, err, sizeof err), -1);
}

int main(void)
{
    ST_RUN(test_found_tags_array);
    ST_RUN(test_tag_single_object);
    ST_RUN(test_numbers_as_numbers_or_strings);
    ST_RUN(test_duration_zero_keeps_tags);
    ST_RUN(test_missing_toptags_keeps_duration);
    ST_RUN(test_odd_tags_skipped);
    ST_RUN(test_long_tag_cut_on_utf8_boundary);
    ST_RUN(test_errors);
    ST_RUN(test_malformed);
    ST_RUN(test_classify_and_names);
    ST_RUN(test_config_defaults);
    ST_RUN(test_load_key);
    ST_RUN(test_key_from);
    return st_test_summary();
}
