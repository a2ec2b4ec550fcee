/* st_lastfm.c - line parsers and a buffered, constant-memory line reader for the Last.fm 1K
 * listens and profiles files. Fields are views into the read buffer: no per-line allocation. */
#include "st_lastfm.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "st_log.h"
#include "st_time.h"

#define READ_BUF_BYTES  (1u << 20)
#define DEFAULT_LOG_MAX 20
#define LISTEN_FIELDS   6
#define PROFILE_FIELDS  5
#define PROFILE_AGE_MAX 150

struct st_lastfm_reader {
    FILE *fp;
    bool own_fp;
    st_lastfm_kind_t kind;
    char *name;
    char *buf;
    size_t cap;
    size_t start;     /* first unread byte in buf */
    size_t end;       /* end of valid data in buf */
    uint64_t buf_off; /* file offset of buf[0] */
    bool eof;
    bool yield_bad;
    uint64_t log_max;
    st_lastfm_stats_t stats;
};

const char *st_lastfm_reason_name(st_lastfm_reason_t reason)
{
    switch (reason) {
    case ST_LASTFM_OK:
        return "ok";
    case ST_LASTFM_FIELD_COUNT:
        return "field_count";
    case ST_LASTFM_TOO_LONG:
        return "too_long";
    case ST_LASTFM_EMPTY_USER:
        return "empty_user_id";
    case ST_LASTFM_BAD_ID:
        return "bad_id";
    case ST_LASTFM_INVALID_UTF8:
        return "invalid_utf8";
    case ST_LASTFM_BAD_TIMESTAMP:
        return "bad_timestamp";
    case ST_LASTFM_BAD_VALUE:
        return "bad_value";
    case ST_LASTFM_REASON_COUNT:
        break;
    }
    return "unknown";
}

bool st_lastfm_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + len;

    while (p < end) {
        /* Fast path: 8 ASCII bytes, none of them NUL. */
        if (end - p >= 8) {
            uint64_t v;
            memcpy(&v, p, 8);
            uint64_t has_zero = (v - 0x0101010101010101ULL) & ~v & 0x8080808080808080ULL;
            if (((v & 0x8080808080808080ULL) | has_zero) == 0) {
                p += 8;
                continue;
            }
        }
        unsigned c = *p;
        if (c == 0)
            return false;
        if (c < 0x80) {
            p++;
            continue;
        }
        size_t n;
        unsigned min_cp, cp;
        if (c >= 0xc2 && c <= 0xdf) {
            n = 1, cp = c & 0x1f, min_cp = 0x80;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2, cp = c & 0x0f, min_cp = 0x800;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3, cp = c & 0x07, min_cp = 0x10000;
        } else {
            return false;
        }
        if ((size_t)(end - p) <= n)
            return false;
        for (size_t i = 1; i <= n; i++) {
            if ((p[i] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (p[i] & 0x3f);
        }
        if (cp < min_cp || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        p += n + 1;
    }
    return true;
}

/* Splits line into exactly nfields tab-separated views; returns false on another count. */
static bool split_fields(const char *line, size_t len, st_lastfm_str_t *f, int nfields)
{
    const char *p = line, *end = line + len;
    for (int i = 0; i < nfields - 1; i++) {
        const char *tab = memchr(p, '\t', (size_t)(end - p));
        if (!tab)
            return false;
        f[i].ptr = p;
        f[i].len = (size_t)(tab - p);
        p = tab + 1;
    }
    if (memchr(p, '\t', (size_t)(end - p)))
        return false;
    f[nfields - 1].ptr = p;
    f[nfields - 1].len = (size_t)(end - p);
    return true;
}

static bool blank_only(st_lastfm_str_t s)
{
    for (size_t i = 0; i < s.len; i++)
        if (s.ptr[i] != ' ')
            return false;
    return true;
}

static bool has_control(st_lastfm_str_t s)
{
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        if (c < 0x20 || c == 0x7f)
            return true;
    }
    return false;
}

/* The checks both files share, in a fixed order: field count, length, user id, UTF-8. */
static st_lastfm_reason_t check_common(const char *line, size_t len, st_lastfm_str_t *f,
                                       int nfields)
{
    if (!split_fields(line, len, f, nfields))
        return ST_LASTFM_FIELD_COUNT;
    for (int i = 0; i < nfields; i++)
        if (f[i].len > ST_LASTFM_FIELD_MAX)
            return ST_LASTFM_TOO_LONG;
    if (blank_only(f[0]))
        return ST_LASTFM_EMPTY_USER;
    if (has_control(f[0]))
        return ST_LASTFM_BAD_ID;
    if (!st_lastfm_utf8_valid(line, len))
        return ST_LASTFM_INVALID_UTF8;
    return ST_LASTFM_OK;
}

static size_t strip_cr(const char *line, size_t len)
{
    return len > 0 && line[len - 1] == '\r' ? len - 1 : len;
}

st_lastfm_reason_t st_lastfm_parse_listen(const char *line, size_t len, st_lastfm_listen_t *out)
{
    st_lastfm_str_t f[LISTEN_FIELDS];

    out->raw.ptr = line;
    out->raw.len = len;
    len = strip_cr(line, len);
    st_lastfm_reason_t reason = check_common(line, len, f, LISTEN_FIELDS);
    if (reason != ST_LASTFM_OK)
        return reason;
    if (has_control(f[2]) || has_control(f[4]))
        return ST_LASTFM_BAD_ID;
    int64_t ts_ms;
    if (st_time_parse_iso8601(f[1].ptr, f[1].len, &ts_ms) != 0 || ts_ms < ST_LASTFM_MIN_TS_MS)
        return ST_LASTFM_BAD_TIMESTAMP;
    out->user_id = f[0];
    out->ts_ms = ts_ms;
    out->artist_mbid = f[2];
    out->artist_name = f[3];
    out->track_mbid = f[4];
    out->track_name = f[5];
    return ST_LASTFM_OK;
}

static bool parse_age(st_lastfm_str_t s, int *age)
{
    int v = 0;
    if (s.len == 0) {
        *age = -1;
        return true;
    }
    if (s.len > 3)
        return false;
    for (size_t i = 0; i < s.len; i++) {
        if (s.ptr[i] < '0' || s.ptr[i] > '9')
            return false;
        v = v * 10 + (s.ptr[i] - '0');
    }
    if (v > PROFILE_AGE_MAX)
        return false;
    *age = v;
    return true;
}

st_lastfm_reason_t st_lastfm_parse_profile(const char *line, size_t len, st_lastfm_profile_t *out)
{
    st_lastfm_str_t f[PROFILE_FIELDS];

    out->raw.ptr = line;
    out->raw.len = len;
    len = strip_cr(line, len);
    st_lastfm_reason_t reason = check_common(line, len, f, PROFILE_FIELDS);
    if (reason != ST_LASTFM_OK)
        return reason;
    char gender;
    if (f[1].len == 0)
        gender = 0;
    else if (f[1].len == 1 && (f[1].ptr[0] == 'm' || f[1].ptr[0] == 'f'))
        gender = f[1].ptr[0];
    else
        return ST_LASTFM_BAD_VALUE;
    int age;
    if (!parse_age(f[2], &age))
        return ST_LASTFM_BAD_VALUE;
    int64_t registered_s = 0;
    if (f[4].len > 0 && st_time_parse_profile_date(f[4].ptr, f[4].len, &registered_s) != 0)
        return ST_LASTFM_BAD_TIMESTAMP;
    out->user_id = f[0];
    out->gender = gender;
    out->age = age;
    out->country = f[3];
    out->registered_s = registered_s;
    return ST_LASTFM_OK;
}

int st_lastfm_path(const char *path, const char *file, char *buf, size_t size)
{
    struct stat st;
    int n;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        n = snprintf(buf, size, "%s/%s", path, file);
    else
        n = snprintf(buf, size, "%s", path);
    return n < 0 || (size_t)n >= size ? -1 : 0;
}

static st_lastfm_reader_t *reader_new(FILE *fp, bool own_fp, const char *name,
                                      st_lastfm_kind_t kind, char *errstr, size_t errstr_size)
{
    st_lastfm_reader_t *r = calloc(1, sizeof *r);
    if (!r) {
        st_errstr(errstr, errstr_size, "out of memory");
        return NULL;
    }
    r->name = strdup(name ? name : "(stream)");
    r->cap = READ_BUF_BYTES;
    if (!r->name) {
        free(r);
        st_errstr(errstr, errstr_size, "out of memory");
        return NULL;
    }
    r->fp = fp;
    r->own_fp = own_fp;
    r->kind = kind;
    r->log_max = DEFAULT_LOG_MAX;
    return r;
}

st_lastfm_reader_t *st_lastfm_reader_open(const char *path, st_lastfm_kind_t kind, char *errstr,
                                          size_t errstr_size)
{
    char full[4096];
    const char *file =
        kind == ST_LASTFM_PROFILES ? ST_LASTFM_PROFILES_FILE : ST_LASTFM_LISTENS_FILE;
    if (st_lastfm_path(path, file, full, sizeof full) != 0) {
        st_errstr(errstr, errstr_size, "path too long: %s", path);
        return NULL;
    }
    FILE *fp = fopen(full, "rb");
    if (!fp) {
        st_errstr(errstr, errstr_size, "cannot open %s: %s", full, strerror(errno));
        return NULL;
    }
    st_lastfm_reader_t *r = reader_new(fp, true, full, kind, errstr, errstr_size);
    if (!r)
        fclose(fp);
    return r;
}

st_lastfm_reader_t *st_lastfm_reader_open_fp(FILE *fp, const char *name, st_lastfm_kind_t kind,
                                             char *errstr, size_t errstr_size)
{
    if (!fp) {
        st_errstr(errstr, errstr_size, "no input stream");
        return NULL;
    }
    return reader_new(fp, false, name, kind, errstr, errstr_size);
}

int st_lastfm_reader_set_buffer_size(st_lastfm_reader_t *r, size_t bytes)
{
    if (r->buf || bytes < 64)
        return -1;
    r->cap = bytes;
    return 0;
}

void st_lastfm_reader_yield_bad(st_lastfm_reader_t *r, bool yield_bad)
{
    r->yield_bad = yield_bad;
}

void st_lastfm_reader_set_log_limit(st_lastfm_reader_t *r, uint64_t max_logged)
{
    r->log_max = max_logged;
}

const st_lastfm_stats_t *st_lastfm_reader_stats(const st_lastfm_reader_t *r)
{
    return &r->stats;
}

void st_lastfm_reader_destroy(st_lastfm_reader_t *r)
{
    if (!r)
        return;
    if (r->own_fp && r->fp)
        fclose(r->fp);
    free(r->buf);
    free(r->name);
    free(r);
}

/* Reads more bytes after compacting the buffer. Returns 0, or -1 on an I/O error. */
static int fill(st_lastfm_reader_t *r, st_err_t *err)
{
    if (!r->buf && !(r->buf = malloc(r->cap))) {
        st_err_set(err, ST_ERR_NOMEM, ST_DISP_FATAL, "read %s: out of memory", r->name);
        return -1;
    }
    if (r->start > 0) {
        memmove(r->buf, r->buf + r->start, r->end - r->start);
        r->buf_off += r->start;
        r->end -= r->start;
        r->start = 0;
    }
    size_t n = fread(r->buf + r->end, 1, r->cap - r->end, r->fp);
    if (n == 0) {
        if (ferror(r->fp)) {
            st_err_set(err, ST_ERR_IO, ST_DISP_FATAL, "read %s: %s", r->name, strerror(errno));
            return -1;
        }
        r->eof = true;
    }
    r->end += n;
    return 0;
}

/* Skips the rest of a line longer than the buffer. Returns 0 or -1 (I/O error). */
static int skip_long_line(st_lastfm_reader_t *r, st_err_t *err)
{
    for (;;) {
        r->buf_off += r->end;
        r->start = r->end = 0;
        if (fill(r, err) != 0)
            return -1;
        if (r->end == 0)
            return 0;
        const char *nl = memchr(r->buf, '\n', r->end);
        if (nl) {
            r->start = (size_t)(nl - r->buf) + 1;
            return 0;
        }
    }
}

/* A UTF-8 byte order mark at the start of the file (some editors and spreadsheet exports write
 * one) is not part of the first user id: the line, and its offset for st_merge, start after it. */
static void skip_bom(const char **line, size_t *len, uint64_t *offset)
{
    if (*offset == 0 && *len >= 3 && memcmp(*line, "\xEF\xBB\xBF", 3) == 0) {
        *line += 3;
        *len -= 3;
        *offset = 3;
    }
}

/* The next raw line. Returns 1, 0 (EOF) or -1. *too_long is set for a line over the buffer,
 * whose bytes are gone (*len = 0). */
static int next_line(st_lastfm_reader_t *r, const char **line, size_t *len, uint64_t *offset,
                     bool *too_long, st_err_t *err)
{
    *too_long = false;
    for (;;) {
        const char *p = r->buf ? r->buf + r->start : NULL;
        size_t avail = r->end - r->start;
        const char *nl = avail ? memchr(p, '\n', avail) : NULL;
        if (nl) {
            *line = p;
            *len = (size_t)(nl - p);
            *offset = r->buf_off + r->start;
            r->start += *len + 1;
            r->stats.bytes += *len + 1;
            skip_bom(line, len, offset);
            return 1;
        }
        if (r->eof) {
            if (avail == 0)
                return 0;
            *line = p;
            *len = avail;
            *offset = r->buf_off + r->start;
            r->start = r->end;
            r->stats.bytes += avail;
            skip_bom(line, len, offset);
            return 1;
        }
        if (r->start == 0 && r->end == r->cap) {
            uint64_t before = r->buf_off;
            *offset = r->buf_off;
            if (skip_long_line(r, err) != 0)
                return -1;
            r->stats.bytes += r->buf_off + r->start - before;
            *line = r->buf;
            *len = 0;
            *too_long = true;
            return 1;
        }
        if (fill(r, err) != 0)
            return -1;
    }
}

static void count_bad(st_lastfm_reader_t *r, st_lastfm_reason_t reason, uint64_t line_no)
{
    r->stats.bad++;
    r->stats.by_reason[reason]++;
    if (r->stats.bad <= r->log_max) {
        char q[512];
        st_log_warn(
            "lastfm_bad_line", "file=%s line=%llu reason=%s%s", st_log_quote(r->name, q, sizeof q),
            (unsigned long long)line_no, st_lastfm_reason_name(reason),
            r->stats.bad == r->log_max ? " note=\"further bad lines are only counted\"" : "");
    }
}

int st_lastfm_reader_next_listen(st_lastfm_reader_t *r, st_lastfm_listen_t *out, st_err_t *err)
{
    for (;;) {
        const char *line;
        size_t len;
        uint64_t offset;
        bool too_long;
        int rc = next_line(r, &line, &len, &offset, &too_long, err);
        if (rc <= 0)
            return rc;
        r->stats.lines++;
        st_lastfm_reason_t reason =
            too_long ? ST_LASTFM_TOO_LONG : st_lastfm_parse_listen(line, len, out);
        out->raw.ptr = line;
        out->raw.len = len;
        out->line_no = r->stats.lines;
        out->offset = offset;
        out->reason = reason;
        if (reason == ST_LASTFM_OK) {
            r->stats.good++;
            return 1;
        }
        count_bad(r, reason, out->line_no);
        if (r->yield_bad)
            return 1;
    }
}

int st_lastfm_reader_next_profile(st_lastfm_reader_t *r, st_lastfm_profile_t *out, st_err_t *err)
{
    for (;;) {
        const char *line;
        size_t len;
        uint64_t offset;
        bool too_long;
        int rc = next_line(r, &line, &len, &offset, &too_long, err);
        if (rc <= 0)
            return rc;
        r->stats.lines++;
        if (r->stats.lines == 1 && len > 0 && line[0] == '#')
            continue;
        st_lastfm_reason_t reason =
            too_long ? ST_LASTFM_TOO_LONG : st_lastfm_parse_profile(line, len, out);
        out->raw.ptr = line;
        out->raw.len = len;
        out->line_no = r->stats.lines;
        out->reason = reason;
        if (reason == ST_LASTFM_OK) {
            r->stats.good++;
            return 1;
        }
        count_bad(r, reason, out->line_no);
        if (r->yield_bad)
            return 1;
    }
}
