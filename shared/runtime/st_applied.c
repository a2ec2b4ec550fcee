/* st_applied.c - idempotency markers and the copy rule (see st_applied.h). */
#include "st_applied.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void st_applied_reset(st_applied_t *a)
{
    a->n = 0;
    a->last_closed_ms = -1;
}

int st_applied_slot(st_applied_t *a, int32_t partition, bool add)
{
    for (int i = 0; i < a->n; i++)
        if (a->part[i] == partition)
            return i;
    if (!add || a->n == ST_APPLIED_PARTS_MAX)
        return -1;
    a->part[a->n] = partition;
    a->stored[a->n] = a->last[a->n] = -1;
    return a->n++;
}

size_t st_applied_prefix(char *buf, size_t size, const char *topic)
{
    int n = snprintf(buf, size, "a:%s:", topic);
    return n < 0 ? size : (size_t)n;
}

/* A decimal int64 of exactly len bytes; false when it is not one. */
static bool parse_i64(const char *s, size_t len, int64_t *out)
{
    char buf[24];
    if (len == 0 || len >= sizeof buf)
        return false;
    memcpy(buf, s, len);
    buf[len] = '\0';
    char *end;
    long long v = strtoll(buf, &end, 10);
    if (*end != '\0')
        return false;
    *out = v;
    return true;
}

bool st_applied_read_field(st_applied_t *a, const char *prefix, size_t prefix_len,
                           const char *field, size_t field_len, const char *value)
{
    int64_t v;
    if (field_len == sizeof ST_APPLIED_LC_FIELD - 1 &&
        memcmp(field, ST_APPLIED_LC_FIELD, field_len) == 0) {
        if (value && parse_i64(value, strlen(value), &v))
            a->last_closed_ms = v;
        return true;
    }
    if (field_len <= prefix_len || memcmp(field, prefix, prefix_len) != 0)
        return false;
    int64_t partition;
    if (!parse_i64(field + prefix_len, field_len - prefix_len, &partition) || partition < 0 ||
        partition > INT32_MAX)
        return true; /* under our prefix but not a partition: nothing of this batch */
    int slot = st_applied_slot(a, (int32_t)partition, false);
    if (slot >= 0 && value && parse_i64(value, strlen(value), &v))
        a->stored[slot] = v;
    return true;
}

bool st_applied_done(const st_applied_t *a, int slot, int64_t offset)
{
    return offset <= a->stored[slot];
}

void st_applied_advance(st_applied_t *a, int slot, int64_t offset)
{
    if (offset > a->last[slot])
        a->last[slot] = offset;
}

bool st_applied_is_copy(const st_applied_t *a, int64_t start_ms)
{
    return start_ms <= a->last_closed_ms;
}

void st_applied_closed(st_applied_t *a, int64_t start_ms)
{
    if (start_ms > a->last_closed_ms)
        a->last_closed_ms = start_ms;
}

int st_applied_argv(const st_applied_t *a, const char *prefix, st_applied_args_t *buf,
                    const char **argv)
{
    int na = 1, n = 0;
    for (int k = 0; k < a->n; k++) {
        if (a->last[k] < 0)
            continue;
        snprintf(buf->fields[n], sizeof buf->fields[n], "%s%d", prefix, (int)a->part[k]);
        snprintf(buf->offs[n], sizeof buf->offs[n], "%lld", (long long)a->last[k]);
        argv[na++] = buf->fields[n];
        argv[na++] = buf->offs[n];
        n++;
    }
    snprintf(buf->count, sizeof buf->count, "%d", n);
    argv[0] = buf->count;
    return na;
}

int st_applied_mem_check_and_set(st_applied_mark_t **stored, size_t *n_stored,
                                 const st_applied_t *a)
{
    for (int k = 0; k < a->n; k++) {
        if (a->last[k] < 0)
            continue;
        for (size_t j = 0; j < *n_stored; j++)
            if ((*stored)[j].partition == a->part[k] && a->last[k] <= (*stored)[j].offset)
                return 0;
    }
    for (int k = 0; k < a->n; k++) {
        if (a->last[k] < 0)
            continue;
        size_t j = 0;
        while (j < *n_stored && (*stored)[j].partition != a->part[k])
            j++;
        if (j == *n_stored) {
            st_applied_mark_t *p = realloc(*stored, (*n_stored + 1) * sizeof *p);
            if (!p)
                return -1;
            *stored = p;
            (*n_stored)++;
            p[j].partition = a->part[k];
        }
        (*stored)[j].offset = a->last[k];
    }
    return 1;
}
