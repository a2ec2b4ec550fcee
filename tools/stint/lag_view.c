/* lag_view.c - `stint lag`'s table and JSON, and the caught-up test. */
#include "lag_view.h"

#include <inttypes.h>
#include <jansson.h>
#include <string.h>

int64_t lag_row_lag(const lag_row_t *r)
{
    int64_t done = r->committed >= 0 ? r->committed : r->log_start;
    return r->log_end > done ? r->log_end - done : 0;
}

int64_t lag_row_read_to(const lag_row_t *r)
{
    int64_t done = r->committed >= 0 ? r->committed : r->log_start;
    return r->read >= done && r->read <= r->log_end ? r->read : done;
}

int64_t lag_row_unread(const lag_row_t *r)
{
    int64_t to = lag_row_read_to(r);
    return r->log_end > to ? r->log_end - to : 0;
}

int64_t lag_view_total_lag(const lag_view_t *v)
{
    int64_t t = 0;
    for (size_t i = 0; i < v->nrows; i++)
        t += lag_row_lag(&v->rows[i]);
    return t;
}

int64_t lag_view_total_unread(const lag_view_t *v)
{
    int64_t t = 0;
    for (size_t i = 0; i < v->nrows; i++)
        t += lag_row_unread(&v->rows[i]);
    return t;
}

bool lag_view_caught_up(const lag_view_t *v)
{
    return v->nrows > 0 && lag_view_total_unread(v) == 0;
}

enum { C_TOPIC, C_PART, C_CUR, C_READ, C_END, C_LAG, C_UNREAD, C_MEMBER, NCOLS };

static const char *const headers[NCOLS] = {"TOPIC",       "PARTITION",      "CURRENT-OFFSET",
                                           "READ-OFFSET", "LOG-END-OFFSET", "LAG",
                                           "UNREAD",      "MEMBER"};

static void cells(const lag_row_t *r, char c[NCOLS][32])
{
    snprintf(c[C_PART], 32, "%" PRId32, r->partition);
    if (r->committed >= 0)
        snprintf(c[C_CUR], 32, "%" PRId64, r->committed);
    else
        snprintf(c[C_CUR], 32, "-");
    if (r->read >= 0)
        snprintf(c[C_READ], 32, "%" PRId64, r->read);
    else
        snprintf(c[C_READ], 32, "-");
    snprintf(c[C_END], 32, "%" PRId64, r->log_end);
    snprintf(c[C_LAG], 32, "%" PRId64, lag_row_lag(r));
    snprintf(c[C_UNREAD], 32, "%" PRId64, lag_row_unread(r));
}

static bool shown(const lag_view_t *v, int col)
{
    return v->show_read || (col != C_READ && col != C_UNREAD);
}

/* One line: the columns shown, left-aligned to width, the last one unpadded. */
static void line(const lag_view_t *v, FILE *out, const size_t *width, const char *const *text)
{
    int last = C_MEMBER;
    while (last > 0 && (!*text[last] || !shown(v, last)))
        last--;
    for (int k = 0; k <= last; k++) {
        if (!shown(v, k))
            continue;
        if (k == last)
            fprintf(out, "%s\n", text[k]);
        else
            fprintf(out, "%-*s  ", (int)width[k], text[k]);
    }
}

void lag_view_table(const lag_view_t *v, FILE *out)
{
    size_t width[NCOLS];
    char c[NCOLS][32];
    for (int k = 0; k < NCOLS; k++)
        width[k] = strlen(headers[k]);
    int64_t cur = 0, read = 0, end = 0;
    for (size_t i = 0; i < v->nrows; i++) {
        const lag_row_t *r = &v->rows[i];
        cells(r, c);
        const size_t len[NCOLS] = {strlen(r->topic),    strlen(c[C_PART]),
                                   strlen(c[C_CUR]),    strlen(c[C_READ]),
                                   strlen(c[C_END]),    strlen(c[C_LAG]),
                                   strlen(c[C_UNREAD]), r->member ? strlen(r->member) : 1};
        for (int k = 0; k < NCOLS; k++)
            if (len[k] > width[k])
                width[k] = len[k];
        cur += r->committed >= 0 ? r->committed : 0;
        read += lag_row_read_to(r);
        end += r->log_end;
    }
    fprintf(out, "GROUP %s  STATE %s  MEMBERS %d\n", v->group, v->state, v->members);
    line(v, out, width, headers);
    for (size_t i = 0; i < v->nrows; i++) {
        const lag_row_t *r = &v->rows[i];
        cells(r, c);
        const char *text[NCOLS] = {r->topic, c[C_PART], c[C_CUR],    c[C_READ],
                                   c[C_END], c[C_LAG],  c[C_UNREAD], r->member ? r->member : "-"};
        line(v, out, width, text);
    }
    char t[NCOLS][32];
    snprintf(t[C_CUR], 32, "%" PRId64, cur);
    snprintf(t[C_READ], 32, "%" PRId64, read);
    snprintf(t[C_END], 32, "%" PRId64, end);
    snprintf(t[C_LAG], 32, "%" PRId64, lag_view_total_lag(v));
    snprintf(t[C_UNREAD], 32, "%" PRId64, lag_view_total_unread(v));
    const char *text[NCOLS] = {
        "TOTAL", "", t[C_CUR], t[C_READ], t[C_END], t[C_LAG], v->show_read ? t[C_UNREAD] : "", ""};
    line(v, out, width, text);
}

static json_t *offset_or_null(int64_t o)
{
    return o >= 0 ? json_integer(o) : json_null();
}

int lag_view_json(const lag_view_t *v, FILE *out)
{
    json_t *parts = json_array();
    json_t *doc = json_pack(
        "{s:s, s:s, s:i, s:o, s:I, s:I, s:b}", "group", v->group, "state", v->state, "members",
        v->members, "partitions", parts, "total_lag", (json_int_t)lag_view_total_lag(v),
        "total_unread", (json_int_t)lag_view_total_unread(v), "caught_up", lag_view_caught_up(v));
    if (!doc)
        return -1;
    for (size_t i = 0; i < v->nrows; i++) {
        const lag_row_t *r = &v->rows[i];
        json_t *row = json_pack(
            "{s:s, s:i, s:o, s:o, s:I, s:I, s:I, s:I, s:o}", "topic", r->topic, "partition",
            (int)r->partition, "current_offset", offset_or_null(r->committed), "read_offset",
            offset_or_null(r->read), "log_start_offset", (json_int_t)r->log_start, "log_end_offset",
            (json_int_t)r->log_end, "lag", (json_int_t)lag_row_lag(r), "unread",
            (json_int_t)lag_row_unread(r), "member",
            r->member ? json_string(r->member) : json_null());
        if (!row || json_array_append_new(parts, row) != 0) {
            json_decref(doc);
            return -1;
        }
    }
    int rc = json_dumpf(doc, out, JSON_COMPACT) == 0 && fputc('\n', out) != EOF ? 0 : -1;
    json_decref(doc);
    return rc;
}
