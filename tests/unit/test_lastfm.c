/* Unit tests of st_lastfm: the listens and profiles parsers on real-format fixture lines
 * (tests/fixtures/lastfm1k), one test per malformed case, and the buffered reader's edges. */
#include <stdbool.h>
#include <unistd.h>

#include "st_lastfm.h"
#include "st_log.h"
#include "st_test.h"

static char fixture_dir[2048];

static void fixture(const char *name, char *buf, size_t size)
{
    snprintf(buf, size, "%s/%s", fixture_dir, name);
}

static bool view_eq(st_lastfm_str_t v, const char *s)
{
    return v.len == strlen(s) && memcmp(v.ptr, s, v.len) == 0;
}

#define ST_EQ_VIEW(v, s)                                                                           \
    do {                                                                                           \
        if (!view_eq((v), (s)))                                                                    \
            ST_FAIL_AT("%s == \"%s\": got \"%.*s\"", #v, (s), (int)(v).len, (v).ptr);              \
    } while (0)

static void test_reader_real_lines(void)
{
    char err[256] = "";
    st_lastfm_reader_t *r = st_lastfm_reader_open(fixture_dir, ST_LASTFM_LISTENS, err, sizeof err);
    ST_REQUIRE(r != NULL);
    st_lastfm_listen_t l;
    ST_EQ_INT(st_lastfm_reader_next_listen(r, &l, NULL), 1);
    ST_EQ_VIEW(l.user_id, "user_000001");
    ST_EQ_INT(l.ts_ms, 1241478537000);
    ST_EQ_VIEW(l.artist_mbid, "f1b1cf71-bd35-4e99-8624-24a6e15f133a");
    ST_EQ_VIEW(l.artist_name, "Deep Dish");
    ST_EQ_INT(l.track_mbid.len, 0);
    ST_EQ_VIEW(l.track_name, "Fuck Me Im Famous (Pacha Ibiza)-09-28-2007");
    ST_EQ_INT(l.line_no, 1);
    ST_EQ_INT(l.offset, 0);
    ST_EQ_INT(l.reason, ST_LASTFM_OK);
    ST_EQ_INT(st_lastfm_reader_next_listen(r, &l, NULL), 1);
    ST_EQ_VIEW(l.artist_name, "坂本龍一");
    ST_EQ_INT(l.line_no, 2);
    int n = 2;
    while (st_lastfm_reader_next_listen(r, &l, NULL) == 1)
        n++;
    ST_EQ_INT(n, 10);
    ST_EQ_VIEW(l.track_name, "1,000,000");
    ST_EQ_VIEW(l.track_mbid, "");
    const st_lastfm_stats_t *st = st_lastfm_reader_stats(r);
    ST_EQ_INT(st->lines, 10);
    ST_EQ_INT(st->good, 10);
    ST_EQ_INT(st->bad, 0);
    st_lastfm_reader_destroy(r);
}

static void test_reader_missing_file(void)
{
    char err[256] = "";
    st_lastfm_reader_t *r =
        st_lastfm_reader_open("/nonexistent/stint", ST_LASTFM_LISTENS, err, sizeof err);
    ST_CHECK(r == NULL);
    ST_CHECK(strstr(err, "/nonexistent/stint") != NULL);
    st_lastfm_reader_destroy(NULL);
}

/* Line n (1-based) of the malformed fixture must be rejected with reason. */
static void expect_malformed_line(int n, st_lastfm_reason_t reason)
{
    char path[2300], err[256];
    fixture("malformed-listens.tsv", path, sizeof path);
    st_lastfm_reader_t *r = st_lastfm_reader_open(path, ST_LASTFM_LISTENS, err, sizeof err);
    ST_REQUIRE(r != NULL);
    st_lastfm_reader_yield_bad(r, true);
    st_lastfm_reader_set_log_limit(r, 0);
    st_lastfm_listen_t l;
    bool found = false;
    while (st_lastfm_reader_next_listen(r, &l, NULL) == 1) {
        if ((int)l.line_no == n) {
            found = true;
            if (l.reason != reason)
                ST_FAIL_AT("line %d: reason %s, expected %s", n, st_lastfm_reason_name(l.reason),
                           st_lastfm_reason_name(reason));
            /* The pure parser agrees with the reader. */
            st_lastfm_listen_t again;
            ST_EQ_INT(st_lastfm_parse_listen(l.raw.ptr, l.raw.len, &again), reason);
        }
    }
    ST_CHECK(found);
    st_lastfm_reader_destroy(r);
}

static void test_bad_embedded_tab(void)
{
    expect_malformed_line(1, ST_LASTFM_FIELD_COUNT);
}
static void test_bad_too_few_fields(void)
{
    expect_malformed_line(2, ST_LASTFM_FIELD_COUNT);
}
static void test_bad_timestamp_format(void)
{
    expect_malformed_line(3, ST_LASTFM_BAD_TIMESTAMP);
}
static void test_bad_timestamp_feb30(void)
{
    expect_malformed_line(4, ST_LASTFM_BAD_TIMESTAMP);
}
static void test_bad_timestamp_before_2000(void)
{
    expect_malformed_line(5, ST_LASTFM_BAD_TIMESTAMP);
}
static void test_bad_utf8_bytes(void)
{
    expect_malformed_line(6, ST_LASTFM_INVALID_UTF8);
}
static void test_bad_utf8_surrogate(void)
{
    expect_malformed_line(7, ST_LASTFM_INVALID_UTF8);
}
static void test_bad_field_too_long(void)
{
    expect_malformed_line(8, ST_LASTFM_TOO_LONG);
}
static void test_bad_empty_user(void)
{
    expect_malformed_line(9, ST_LASTFM_EMPTY_USER);
}
static void test_bad_blank_user(void)
{
    expect_malformed_line(10, ST_LASTFM_EMPTY_USER);
}
static void test_bad_control_in_mbid(void)
{
    expect_malformed_line(11, ST_LASTFM_BAD_ID);
}
static void test_bad_empty_line(void)
{
    expect_malformed_line(12, ST_LASTFM_FIELD_COUNT);
}

static void test_malformed_counted_and_skipped(void)
{
    char path[2300], err[256];
    fixture("malformed-listens.tsv", path, sizeof path);
    st_lastfm_reader_t *r = st_lastfm_reader_open(path, ST_LASTFM_LISTENS, err, sizeof err);
    ST_REQUIRE(r != NULL);
    st_lastfm_reader_set_log_limit(r, 3);
    st_lastfm_listen_t l;
    ST_EQ_INT(st_lastfm_reader_next_listen(r, &l, NULL), 0);
    const st_lastfm_stats_t *st = st_lastfm_reader_stats(r);
    ST_EQ_INT(st->lines, 12);
    ST_EQ_INT(st->good, 0);
    ST_EQ_INT(st->bad, 12);
    ST_EQ_INT(st->by_reason[ST_LASTFM_FIELD_COUNT], 3);
    ST_EQ_INT(st->by_reason[ST_LASTFM_BAD_TIMESTAMP], 3);
    ST_EQ_INT(st->by_reason[ST_LASTFM_INVALID_UTF8], 2);
    ST_EQ_INT(st->by_reason[ST_LASTFM_TOO_LONG], 1);
    ST_EQ_INT(st->by_reason[ST_LASTFM_EMPTY_USER], 2);
    ST_EQ_INT(st->by_reason[ST_LASTFM_BAD_ID], 1);
    st_lastfm_reader_destroy(r);
}

static void test_crlf_and_last_line_without_newline(void)
{
    static const char data[] = "u1\t2009-05-04T23:08:57Z\t\tA\t\tT\r\n"
                               "u1\t2009-05-04T23:00:00Z\t\tA\t\tLast";
    FILE *fp = fmemopen((void *)data, sizeof data - 1, "rb");
    ST_REQUIRE(fp != NULL);
    st_lastfm_reader_t *r = st_lastfm_reader_open_fp(fp, "mem", ST_LASTFM_LISTENS, NULL, 0);
    st_lastfm_listen_t l;
    ST_EQ_INT(st_lastfm_reader_next_listen(r, &l, NULL), 1);
    ST_EQ_VIEW(l.track_name, "T");
    ST_EQ_INT(st_lastfm_reader_next_listen(r, &l, NULL), 1);
    ST_EQ_VIEW(l.track_name, "Last");
    ST_EQ_INT(l.offset, 31);
    ST_EQ_INT(st_lastfm_reader_next_listen(r, &l, NULL), 0);
    ST_EQ_INT(st_lastfm_reader_stats(r)->bytes, sizeof data - 1);
    st_lastfm_reader_destroy(r);
    fclose(fp);
}

/* A UTF-8 byte order mark before the first line is not part of its user id (listens) nor of the
 * "#id" header (profiles); its line's offset is after it, where st_merge's block starts. */
static void test_bom(void)
{
    static const char listens[] = "\xEF\xBB\xBFu1\t2009-05-04T23:08:57Z\t\tA\t\tT\n"
                                  "u1\t2009-05-04T23:00:00Z\t\tA\t\tU\n";
    FILE *fp = fmemopen((void *)listens, sizeof listens - 1, "rb");
    ST_REQUIRE(fp != NULL);
    st_lastfm_reader_t *r = st_lastfm_reader_open_fp(fp, "mem", ST_LASTFM_LISTENS, NULL, 0);
    st_lastfm_listen_t l;
    ST_EQ_INT(st_lastfm_reader_next_listen(r, &l, NULL), 1);
    ST_EQ_VIEW(l.user_id, "u1");
    ST_EQ_INT(l.offset, 3);
    ST_EQ_INT(st_lastfm_reader_next_listen(r, &l, NULL), 1);
    ST_EQ_VIEW(l.user_id, "u1");
    ST_EQ_INT(st_lastfm_reader_next_listen(r, &l, NULL), 0);
    ST_EQ_INT(st_lastfm_reader_stats(r)->bad, 0);
    ST_EQ_INT(st_lastfm_reader_stats(r)->bytes, sizeof listens - 1);
    st_lastfm_reader_destroy(r);
    fclose(fp);

    static const char profiles[] = "\xEF\xBB\xBF#id\tgender\tage\tcountry\tregistered\n"
                                   "u1\tm\t22\tJapan\tAug 13, 2006\n";
    fp = fmemopen((void *)profiles, sizeof profiles - 1, "rb");
    ST_REQUIRE(fp != NULL);
    r = st_lastfm_reader_open_fp(fp, "mem", ST_LASTFM_PROFILES, NULL, 0);
    st_lastfm_profile_t p;
    ST_EQ_INT(st_lastfm_reader_next_profile(r, &p, NULL), 1);
    ST_EQ_VIEW(p.user_id, "u1");
    ST_EQ_INT(st_lastfm_reader_next_profile(r, &p, NULL), 0);
    ST_EQ_INT(st_lastfm_reader_stats(r)->bad, 0);
    st_lastfm_reader_destroy(r);
    fclose(fp);
}

/* A tiny buffer: refills at every line, and a line longer than the buffer is reported as
 * too_long without losing the lines around it. */
static void test_small_buffer_and_overlong_line(void)
{
    char data[4096];
    int n = snprintf(data, sizeof data,
                     "u1\t2009-05-04T23:08:57Z\t\tA\t\tFirst\nu1\t2009-05-04T23:"
                     "08:56Z\t\tA\t\t");
    memset(data + n, 'y', 300);
    n += 300;
    n += snprintf(data + n, sizeof data - (size_t)n, "\nu1\t2009-05-04T23:08:55Z\t\tA\t\tThird\n");
    FILE *fp = fmemopen(data, (size_t)n, "rb");
    ST_REQUIRE(fp != NULL);
    st_lastfm_reader_t *r = st_lastfm_reader_open_fp(fp, "mem", ST_LASTFM_LISTENS, NULL, 0);
    ST_EQ_INT(st_lastfm_reader_set_buffer_size(r, 10), -1);
    ST_EQ_INT(st_lastfm_reader_set_buffer_size(r, 64), 0);
    st_lastfm_reader_yield_bad(r, true);
    st_lastfm_reader_set_log_limit(r, 0);
    st_lastfm_listen_t l;
    ST_EQ_INT(st_lastfm_reader_next_listen(r, &l, NULL), 1);
    ST_EQ_VIEW(l.track_name, "First");
    ST_EQ_INT(st_lastfm_reader_next_listen(r, &l, NULL), 1);
    ST_EQ_INT(l.reason, ST_LASTFM_TOO_LONG);
    ST_EQ_INT(l.line_no, 2);
    ST_EQ_INT(st_lastfm_reader_next_listen(r, &l, NULL), 1);
    ST_EQ_INT(l.reason, ST_LASTFM_OK);
    ST_EQ_VIEW(l.track_name, "Third");
    ST_EQ_INT(l.line_no, 3);
    ST_EQ_INT(st_lastfm_reader_next_listen(r, &l, NULL), 0);
    ST_EQ_INT(st_lastfm_reader_stats(r)->bytes, n);
    ST_EQ_INT(st_lastfm_reader_set_buffer_size(r, 128), -1);
    st_lastfm_reader_destroy(r);
    fclose(fp);
}

static void test_profiles_real_lines(void)
{
    char err[256] = "";
    st_lastfm_reader_t *r = st_lastfm_reader_open(fixture_dir, ST_LASTFM_PROFILES, err, sizeof err);
    ST_REQUIRE(r != NULL);
    st_lastfm_profile_t p;
    ST_EQ_INT(st_lastfm_reader_next_profile(r, &p, NULL), 1);
    ST_EQ_VIEW(p.user_id, "user_000001");
    ST_EQ_INT(p.gender, 'm');
    ST_EQ_INT(p.age, -1);
    ST_EQ_VIEW(p.country, "Japan");
    ST_EQ_INT(p.registered_s, 1155427200); /* 2006-08-13 */
    ST_EQ_INT(p.line_no, 2);
    ST_EQ_INT(st_lastfm_reader_next_profile(r, &p, NULL), 1);
    ST_EQ_INT(p.gender, 'f');
    ST_EQ_INT(st_lastfm_reader_next_profile(r, &p, NULL), 1);
    ST_EQ_INT(p.age, 22);
    ST_EQ_VIEW(p.country, "United States");
    ST_EQ_INT(st_lastfm_reader_next_profile(r, &p, NULL), 1);
    ST_EQ_INT(p.country.len, 0);
    ST_EQ_INT(st_lastfm_reader_next_profile(r, &p, NULL), 1);
    ST_EQ_INT(p.registered_s, 0);
    ST_EQ_INT(st_lastfm_reader_next_profile(r, &p, NULL), 1);
    ST_EQ_INT(p.gender, 0);
    ST_EQ_INT(p.age, 24);
    ST_EQ_INT(st_lastfm_reader_next_profile(r, &p, NULL), 1);
    ST_EQ_VIEW(p.country, "Côte D'Ivoire");
    ST_EQ_INT(p.registered_s, 1167696000); /* 2007-01-02 */
    ST_EQ_INT(st_lastfm_reader_next_profile(r, &p, NULL), 0);
    const st_lastfm_stats_t *st = st_lastfm_reader_stats(r);
    ST_EQ_INT(st->lines, 8);
    ST_EQ_INT(st->good, 7);
    ST_EQ_INT(st->bad, 0);
    st_lastfm_reader_destroy(r);
}

static void test_profiles_malformed(void)
{
    static const st_lastfm_reason_t expected[] = {ST_LASTFM_FIELD_COUNT,   ST_LASTFM_BAD_VALUE,
                                                  ST_LASTFM_BAD_VALUE,     ST_LASTFM_BAD_TIMESTAMP,
                                                  ST_LASTFM_BAD_TIMESTAMP, ST_LASTFM_EMPTY_USER,
                                                  ST_LASTFM_INVALID_UTF8};
    char path[2300], err[256];
    fixture("malformed-profiles.tsv", path, sizeof path);
    st_lastfm_reader_t *r = st_lastfm_reader_open(path, ST_LASTFM_PROFILES, err, sizeof err);
    ST_REQUIRE(r != NULL);
    st_lastfm_reader_yield_bad(r, true);
    st_lastfm_reader_set_log_limit(r, 0);
    st_lastfm_profile_t p;
    size_t i = 0;
    while (st_lastfm_reader_next_profile(r, &p, NULL) == 1) {
        ST_REQUIRE(i < sizeof expected / sizeof expected[0]);
        if (p.reason != expected[i])
            ST_FAIL_AT("profile line %llu: %s, expected %s", (unsigned long long)p.line_no,
                       st_lastfm_reason_name(p.reason), st_lastfm_reason_name(expected[i]));
        ST_EQ_INT(p.line_no, i + 2);
        i++;
    }
    ST_EQ_INT(i, 7);
    ST_EQ_INT(st_lastfm_reader_stats(r)->bad, 7);
    st_lastfm_reader_destroy(r);
}

static void test_utf8_validator(void)
{
    static const struct {
        const char *s;
        size_t len;
        bool ok;
    } cases[] = {
        {"plain ascii, longer than eight bytes", 36, true},
        {"Sigur R\xc3\xb3s", 10, true},
        {"\xe5\x9d\x82\xe6\x9c\xac", 6, true},
        {"\xf0\x9f\x8e\xb5 note", 9, true},
        {"\xc0\xaf", 2, false},         /* overlong '/' */
        {"\xe0\x80\xaf", 3, false},     /* overlong */
        {"\xed\xa0\x80", 3, false},     /* surrogate */
        {"\xf4\x90\x80\x80", 4, false}, /* > U+10FFFF */
        {"abc\xc3", 4, false},          /* truncated */
        {"abcdefgh\0ijk", 12, false},   /* NUL */
        {"\x80", 1, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (st_lastfm_utf8_valid(cases[i].s, cases[i].len) != cases[i].ok)
            ST_FAIL_AT("utf8 case %zu: expected %d", i, cases[i].ok);
}

int main(void)
{
    const char *src = getenv("STINT_SOURCE_DIR");
    snprintf(fixture_dir, sizeof fixture_dir, "%s/tests/fixtures/lastfm1k",
             src ? src : STINT_SOURCE_DIR);
    st_log_set_level(ST_LOG_ERROR);
    ST_RUN(test_reader_real_lines);
    ST_RUN(test_reader_missing_file);
    ST_RUN(test_bad_embedded_tab);
    ST_RUN(test_bad_too_few_fields);
    ST_RUN(test_bad_timestamp_format);
    ST_RUN(test_bad_timestamp_feb30);
    ST_RUN(test_bad_timestamp_before_2000);
    ST_RUN(test_bad_utf8_bytes);
    ST_RUN(test_bad_utf8_surrogate);
    ST_RUN(test_bad_field_too_long);
    ST_RUN(test_bad_empty_user);
    ST_RUN(test_bad_blank_user);
    ST_RUN(test_bad_control_in_mbid);
    ST_RUN(test_bad_empty_line);
    ST_RUN(test_malformed_counted_and_skipped);
    ST_RUN(test_crlf_and_last_line_without_newline);
    ST_RUN(test_small_buffer_and_overlong_line);
    ST_RUN(test_bom);
    ST_RUN(test_profiles_real_lines);
    ST_RUN(test_profiles_malformed);
    ST_RUN(test_utf8_validator);
    return st_test_summary();
}
