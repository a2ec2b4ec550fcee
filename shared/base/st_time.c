/* st_time.c - ISO-8601 and Last.fm profile date parsing, formatting, clocks. */
#include "st_time.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

/* Howard Hinnant's days_from_civil: exact for the proleptic Gregorian calendar. */
int64_t st_time_days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const unsigned doe = (unsigned)(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static int is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static unsigned days_in_month(int64_t y, unsigned m)
{
    static const unsigned dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : dim[m - 1];
}

/* Reads exactly n digits at *p (bounded by end) into *out. */
static int digits(const char **p, const char *end, int n, unsigned *out)
{
    unsigned v = 0;
    if (end - *p < n)
        return -1;
    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9')
            return -1;
        v = v * 10 + (unsigned)(c - '0');
    }
    *p += n;
    *out = v;
    return 0;
}

static int expect(const char **p, const char *end, char c)
{
    if (*p >= end || **p != c)
        return -1;
    (*p)++;
    return 0;
}

int st_time_parse_iso8601(const char *s, size_t len, int64_t *out_ms)
{
    const char *p = s, *end = s + len;
    unsigned year, mon, day, hour, min, sec, frac_ms = 0;

    if (digits(&p, end, 4, &year) || expect(&p, end, '-') || digits(&p, end, 2, &mon) ||
        expect(&p, end, '-') || digits(&p, end, 2, &day))
        return -1;
    if (p >= end || (*p != 'T' && *p != 't' && *p != ' '))
        return -1;
    p++;
    if (digits(&p, end, 2, &hour) || expect(&p, end, ':') || digits(&p, end, 2, &min) ||
        expect(&p, end, ':') || digits(&p, end, 2, &sec))
        return -1;
    if (mon < 1 || mon > 12 || day < 1 || day > days_in_month(year, mon) || hour > 23 || min > 59 ||
        sec > 60)
        return -1;
    if (p < end && *p == '.') {
        int n = 0;
        p++;
        while (p < end && *p >= '0' && *p <= '9') {
            if (n < 3)
                frac_ms = frac_ms * 10 + (unsigned)(*p - '0');
            n++;
            p++;
        }
        if (n == 0 || n > 9)
            return -1;
        for (; n < 3; n++)
            frac_ms *= 10;
    }
    int64_t offset_s = 0;
    if (p < end) {
        if (*p == 'Z' || *p == 'z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            int sign = *p == '-' ? -1 : 1;
            unsigned oh, om;
            p++;
            if (digits(&p, end, 2, &oh))
                return -1;
            if (p < end && *p == ':')
                p++;
            if (digits(&p, end, 2, &om) || oh > 23 || om > 59)
                return -1;
            offset_s = sign * (int64_t)(oh * 3600 + om * 60);
        } else {
            return -1;
        }
    }
    if (p != end)
        return -1;
    /* A leap second (:60) is folded into the next second, as POSIX time does. */
    int64_t days = st_time_days_from_civil(year, mon, day);
    int64_t secs = days * 86400 + hour * 3600 + min * 60 + sec - offset_s;
    *out_ms = secs * 1000 + frac_ms;
    return 0;
}

int st_time_parse_profile_date(const char *s, size_t len, int64_t *out_s)
{
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    const char *p = s, *end = s + len;
    unsigned mon = 0, day = 0, year;

    if (len < 10)
        return -1;
    for (unsigned i = 0; i < 12; i++) {
        if (memcmp(p, months[i], 3) == 0) {
            mon = i + 1;
            break;
        }
    }
    if (mon == 0)
        return -1;
    p += 3;
    if (expect(&p, end, ' '))
        return -1;
    if (digits(&p, end, 2, &day) != 0 && digits(&p, end, 1, &day) != 0)
        return -1;
    if (expect(&p, end, ',') || expect(&p, end, ' ') || digits(&p, end, 4, &year) || p != end)
        return -1;
    if (day < 1 || day > days_in_month(year, mon))
        return -1;
    *out_s = st_time_days_from_civil(year, mon, day) * 86400;
    return 0;
}

char *st_time_format_iso8601(int64_t ms, char *buf, size_t size)
{
    /* Floor divisions that cannot overflow (negating INT64_MIN would). */
    int64_t secs = ms / 1000 - (ms % 1000 < 0);
    int64_t rem_ms = ms % 1000 + (ms % 1000 < 0 ? 1000 : 0);
    int64_t days = secs / 86400 - (secs % 86400 < 0);
    int64_t sod = secs % 86400 + (secs % 86400 < 0 ? 86400 : 0);
    int64_t y;
    unsigned m, d;

    civil_from_days(days, &y, &m, &d);
    if (rem_ms)
        snprintf(buf, size, "%04lld-%02u-%02uT%02u:%02u:%02u.%03uZ", (long long)y, m, d,
                 (unsigned)(sod / 3600), (unsigned)(sod / 60 % 60), (unsigned)(sod % 60),
                 (unsigned)rem_ms);
    else
        snprintf(buf, size, "%04lld-%02u-%02uT%02u:%02u:%02uZ", (long long)y, m, d,
                 (unsigned)(sod / 3600), (unsigned)(sod / 60 % 60), (unsigned)(sod % 60));
    return buf;
}

int64_t st_time_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t st_time_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t st_time_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
