/* Unit tests of st_time: ISO-8601 and profile-date parsing, formatting round trips. */
#include "st_test.h"
#include "st_time.h"

static int64_t parse(const char *s, int *rc)
{
    int64_t ms = -12345;
    *rc = st_time_parse_iso8601(s, strlen(s), &ms);
    return ms;
}

static void test_iso_valid(void)
{
    static const struct {
        const char *in;
        int64_t ms;
    } cases[] = {
        {"1970-01-01T00:00:00Z", 0},
        {"2009-05-04T23:08:57Z", 1241478537000},
        {"2009-05-04t23:08:57z", 1241478537000},
        {"2009-05-04 23:08:57Z", 1241478537000},
        {"2009-05-04T23:08:57", 1241478537000},
        {"2009-05-04T23:08:57.5Z", 1241478537500},
        {"2009-05-04T23:08:57.123456789Z", 1241478537123},
        {"2009-05-05T01:08:57+02:00", 1241478537000},
        {"2009-05-04T18:08:57-0500", 1241478537000},
        {"2008-02-29T12:00:00Z", 1204286400000},
        {"2000-02-29T00:00:00Z", 951782400000},
        {"1969-12-31T23:59:59Z", -1000},
        {"2016-12-31T23:59:60Z", 1483228800000},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc;
        int64_t ms = parse(cases[i].in, &rc);
        ST_EQ_INT(rc, 0);
        ST_EQ_INT(ms, cases[i].ms);
    }
}

static void test_iso_invalid(void)
{
    static const char *bad[] = {
        "",
        "2009",
        "2009-05-04",
        "2009-05-04T23:08",
        "2009-13-04T23:08:57Z",
        "2009-00-04T23:08:57Z",
        "2009-02-29T00:00:00Z",
        "1900-02-29T00:00:00Z",
        "2009-04-31T00:00:00Z",
        "2009-05-04T24:00:00Z",
        "2009-05-04T23:60:00Z",
        "2009-05-04T23:08:61Z",
        "2009-05-04T23:08:57ZZ",
        "2009-05-04T23:08:57.Z",
        "2009-05-04T23:08:57+2:00",
        "2009-05-04T23:08:57+24:00",
        "2009-05-04X23:08:57Z",
        "09-05-04T23:08:57Z",
        "2009-5-04T23:08:57Z",
        " 2009-05-04T23:08:57Z",
        "2009-05-04T23:08:57Z ",
        "2009-05-04T23:08:57.1234567890Z",
        "abcd-ef-ghTij:kl:mnZ",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc;
        int64_t ms = parse(bad[i], &rc);
        if (rc != -1)
            ST_FAIL_AT("accepted \"%s\" as %lld", bad[i], (long long)ms);
        ST_EQ_INT(ms, -12345); /* untouched on failure */
    }
}

static void test_iso_length_bound(void)
{
    /* Only len bytes are read: a valid prefix followed by garbage parses, a cut one does not. */
    const char *s = "2009-05-04T23:08:57Zjunk";
    int64_t ms = 0;
    ST_EQ_INT(st_time_parse_iso8601(s, 20, &ms), 0);
    ST_EQ_INT(ms, 1241478537000);
    ST_EQ_INT(st_time_parse_iso8601(s, 18, &ms), -1);
}

static void test_format_roundtrip(void)
{
    static const int64_t values[] = {0,     1241478537000, 1241478537123,
                                     -1000, 951782400000,  4102444799999};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        char buf[40];
        int64_t back = 0;
        st_time_format_iso8601(values[i], buf, sizeof buf);
        ST_EQ_INT(st_time_parse_iso8601(buf, strlen(buf), &back), 0);
        ST_EQ_INT(back, values[i]);
    }
    char buf[40];
    ST_EQ_STR(st_time_format_iso8601(1241478537000, buf, sizeof buf), "2009-05-04T23:08:57Z");
    ST_EQ_STR(st_time_format_iso8601(-1, buf, sizeof buf), "1969-12-31T23:59:59.999Z");
    /* The extremes format without overflow (a listen's timestamp can be any int64). */
    ST_CHECK(strlen(st_time_format_iso8601(INT64_MIN, buf, sizeof buf)) > 0);
    ST_CHECK(strlen(st_time_format_iso8601(INT64_MAX, buf, sizeof buf)) > 0);
}

static void test_profile_date(void)
{
    int64_t s = 0;
    ST_EQ_INT(st_time_parse_profile_date("Aug 13, 2006", 12, &s), 0);
    ST_EQ_INT(s, 1155427200);
    ST_EQ_INT(st_time_parse_profile_date("Feb 1, 2007", 11, &s), 0);
    ST_EQ_INT(s, 1170288000);
    s = 7;
    ST_EQ_INT(st_time_parse_profile_date("Feb 30, 2007", 12, &s), -1);
    ST_EQ_INT(st_time_parse_profile_date("Foo 1, 2007", 11, &s), -1);
    ST_EQ_INT(st_time_parse_profile_date("Aug 13 2006", 11, &s), -1);
    ST_EQ_INT(st_time_parse_profile_date("", 0, &s), -1);
    ST_EQ_INT(s, 7);
}

int main(void)
{
    ST_RUN(test_iso_valid);
    ST_RUN(test_iso_invalid);
    ST_RUN(test_iso_length_bound);
    ST_RUN(test_format_roundtrip);
    ST_RUN(test_profile_date);
    return st_test_summary();
}
