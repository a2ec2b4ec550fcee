/* st_lastfm.h - streaming, constant-memory readers of the Last.fm 1K dataset files:
 * userid-timestamp-artid-artname-traid-traname.tsv (listens) and userid-profile.tsv (profiles). */
#ifndef ST_LASTFM_H
#define ST_LASTFM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "st_err.h"

#define ST_LASTFM_LISTENS_FILE  "userid-timestamp-artid-artname-traid-traname.tsv"
#define ST_LASTFM_PROFILES_FILE "userid-profile.tsv"

/* The largest field, in bytes, a valid line may carry. */
#define ST_LASTFM_FIELD_MAX 1024
/* Listens before 2000-01-01T00:00:00Z are invalid (the ingest service uses the same bound). */
#define ST_LASTFM_MIN_TS_MS 946684800000LL

/* Why a line was rejected. The names (st_lastfm_reason_name) are stable machine codes. */
typedef enum {
    ST_LASTFM_OK = 0,
    ST_LASTFM_FIELD_COUNT,   /* "field_count": not exactly 6 (listens) / 5 (profiles) fields */
    ST_LASTFM_TOO_LONG,      /* "too_long": a field over ST_LASTFM_FIELD_MAX bytes */
    ST_LASTFM_EMPTY_USER,    /* "empty_user_id": user id empty or only blanks */
    ST_LASTFM_BAD_ID,        /* "bad_id": a control character in the user id or an MBID */
    ST_LASTFM_INVALID_UTF8,  /* "invalid_utf8": not UTF-8, or a NUL byte */
    ST_LASTFM_BAD_TIMESTAMP, /* "bad_timestamp": not ISO-8601, before 2000, or a bad profile date */
    ST_LASTFM_BAD_VALUE,     /* "bad_value": profile gender not m/f/empty, age not 0..150/empty */
    ST_LASTFM_REASON_COUNT
} st_lastfm_reason_t;

/* A constant machine code for a reason, e.g. "field_count". */
const char *st_lastfm_reason_name(st_lastfm_reason_t reason);

/* A view of bytes owned by someone else (not NUL-terminated). */
typedef struct {
    const char *ptr;
    size_t len;
} st_lastfm_str_t;

/* One line of the listens file. Views point into the reader's buffer and stay valid until the
 * reader's next call. Empty MBIDs (unknown) have len 0. */
typedef struct {
    st_lastfm_str_t user_id;
    int64_t ts_ms; /* epoch milliseconds, UTC */
    st_lastfm_str_t artist_mbid;
    st_lastfm_str_t artist_name;
    st_lastfm_str_t track_mbid;
    st_lastfm_str_t track_name;
    uint64_t line_no;          /* 1-based line number in the file */
    uint64_t offset;           /* byte offset of the line's first byte */
    st_lastfm_str_t raw;       /* the whole line without its '\n' */
    st_lastfm_reason_t reason; /* ST_LASTFM_OK unless the reader yields bad lines */
} st_lastfm_listen_t;

/* One line of the profiles file. gender is 'm', 'f' or 0 (unknown); age -1 = unknown;
 * country len 0 = unknown; registered_s 0 = unknown (epoch seconds of the day, 00:00 UTC). */
typedef struct {
    st_lastfm_str_t user_id;
    char gender;
    int age;
    st_lastfm_str_t country;
    int64_t registered_s;
    uint64_t line_no;
    st_lastfm_str_t raw;
    st_lastfm_reason_t reason;
} st_lastfm_profile_t;

/* Good/bad line counters of a reader. */
typedef struct {
    uint64_t lines;                             /* every line read, header included */
    uint64_t good;                              /* lines yielded as valid records */
    uint64_t bad;                               /* lines rejected (sum of by_reason) */
    uint64_t by_reason[ST_LASTFM_REASON_COUNT]; /* index ST_LASTFM_OK unused */
    uint64_t bytes;                             /* bytes consumed */
} st_lastfm_stats_t;

/* Parses one listens line (without its '\n'; one trailing '\r' is ignored) into out.
 * Returns ST_LASTFM_OK or the reason the line is invalid; on error out's fields are undefined
 * except raw. line_no/offset are left to the caller. Pure function, no allocation. */
st_lastfm_reason_t st_lastfm_parse_listen(const char *line, size_t len, st_lastfm_listen_t *out);

/* Parses one profiles data line (not the header) the same way. */
st_lastfm_reason_t st_lastfm_parse_profile(const char *line, size_t len, st_lastfm_profile_t *out);

/* True when s[0..len) is valid UTF-8 without NUL bytes (no overlongs, surrogates, > U+10FFFF). */
bool st_lastfm_utf8_valid(const char *s, size_t len);

/* Writes "<dir>/<file>" into buf. If path is not a directory it is copied unchanged (a file path
 * given directly). Returns 0, or -1 when buf is too small. */
int st_lastfm_path(const char *path, const char *file, char *buf, size_t size);

/* The line reader of either file. Bad lines are counted, logged (st_log_warn "lastfm_bad_line"
 * with file, line and reason; the first 20 per reader by default) and skipped. */
typedef struct st_lastfm_reader st_lastfm_reader_t;

typedef enum { ST_LASTFM_LISTENS = 0, ST_LASTFM_PROFILES } st_lastfm_kind_t;

/* Opens path (a file, or a dataset directory: the kind's file name is appended) for reading.
 * Returns a new reader (free with st_lastfm_reader_destroy) or NULL with errstr filled. */
st_lastfm_reader_t *st_lastfm_reader_open(const char *path, st_lastfm_kind_t kind, char *errstr,
                                          size_t errstr_size);

/* Reads from fp (borrowed: not closed by the reader). name is used in messages (copied). */
st_lastfm_reader_t *st_lastfm_reader_open_fp(FILE *fp, const char *name, st_lastfm_kind_t kind,
                                             char *errstr, size_t errstr_size);

/* Reads the next valid listen into *out. Returns 1 (record), 0 (end of file) or -1 (I/O error,
 * err filled). Views in *out stay valid until the next call on this reader. With
 * st_lastfm_reader_yield_bad(r, true) bad lines are returned too, with out->reason set and only
 * raw/line_no/offset meaningful (they are still counted and logged). */
int st_lastfm_reader_next_listen(st_lastfm_reader_t *r, st_lastfm_listen_t *out, st_err_t *err);

/* The same for the profiles file; a first line starting with '#' is the header and is skipped. */
int st_lastfm_reader_next_profile(st_lastfm_reader_t *r, st_lastfm_profile_t *out, st_err_t *err);

/* Sets the read buffer size (default 1 MiB, minimum 64) before the first read; a line longer than
 * the buffer is reported as too_long. Returns 0, or -1 after the first read or below 64. */
int st_lastfm_reader_set_buffer_size(st_lastfm_reader_t *r, size_t bytes);

void st_lastfm_reader_yield_bad(st_lastfm_reader_t *r, bool yield_bad);
/* How many bad lines are logged individually (default 20; 0 = none). */
void st_lastfm_reader_set_log_limit(st_lastfm_reader_t *r, uint64_t max_logged);
/* Counters so far (borrowed; valid until destroy). */
const st_lastfm_stats_t *st_lastfm_reader_stats(const st_lastfm_reader_t *r);

/* Closes the file (unless borrowed) and frees the reader. NULL is a no-op. */
void st_lastfm_reader_destroy(st_lastfm_reader_t *r);

#endif
