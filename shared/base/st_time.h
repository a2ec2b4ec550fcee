/* st_time.h - time parsing and formatting: ISO-8601 timestamps (the Last.fm 1K format and the
 * ingest JSON), Last.fm profile dates ("Aug 13, 2006"), and the monotonic/wall clocks. */
#ifndef ST_TIME_H
#define ST_TIME_H

#include <stddef.h>
#include <stdint.h>

/* Parses an ISO-8601 / RFC 3339 date-time into milliseconds since the Unix epoch, UTC.
 * Accepts "YYYY-MM-DDTHH:MM:SS" with an optional fraction (".sss", up to 9 digits, truncated to
 * ms), then "Z", "+HH:MM", "-HH:MM", "+HHMM" or nothing (taken as UTC). 't' and ' ' are accepted
 * as the separator. Field ranges are checked, including the day of the month in leap years.
 * len is the number of bytes of s to read (the whole of it must be consumed).
 * Returns 0 and sets *out_ms, or -1 for anything else (out untouched). */
int st_time_parse_iso8601(const char *s, size_t len, int64_t *out_ms);

/* Parses a Last.fm profile registration date "Mon D, YYYY" (English month abbreviation) into
 * epoch seconds at 00:00 UTC of that day. Returns 0, or -1 (out untouched). */
int st_time_parse_profile_date(const char *s, size_t len, int64_t *out_s);

/* Formats epoch milliseconds as "YYYY-MM-DDTHH:MM:SSZ" (or with ".mmm" when ms % 1000 != 0)
 * into buf (at least 25 bytes). Returns buf. */
char *st_time_format_iso8601(int64_t ms, char *buf, size_t size);

/* Days since 1970-01-01 of a proleptic Gregorian date (no range checks). */
int64_t st_time_days_from_civil(int64_t y, unsigned m, unsigned d);

/* Milliseconds from CLOCK_MONOTONIC and CLOCK_REALTIME. */
int64_t st_time_mono_ms(void);
int64_t st_time_mono_us(void);
int64_t st_time_wall_ms(void);

#endif
