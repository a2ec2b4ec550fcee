/* pred_open.c - one user's open predictions and retracted session ids (see pred_open.h). */
#include "pred_open.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void pred_open_reset(pred_open_t *p)
{
    p->n = 0;
    p->n_tomb = 0;
    p->closed_last_ms = -1;
}

int pred_open_format(const pred_open_t *p, st_buf_t *out)
{
    if (st_buf_printf(out, "%" PRId64 "\n", p->closed_last_ms) != 0)
        return -1;
    for (int i = 0; i < p->n; i++) {
        const pred_open_entry_t *e = &p->e[i];
        if (st_buf_printf(out, "L %" PRId64 " %" PRId64 " %" PRId32 " %zu:%s%s\n", e->made_s,
                          e->start_ms, e->revision, strlen(e->sid), e->sid, e->payload) != 0)
            return -1;
    }
    for (int i = 0; i < p->n_tomb; i++) {
        const pred_open_tomb_t *t = &p->tomb[i];
        if (t->start_ms <= p->closed_last_ms)
            continue;
        if (st_buf_printf(out, "R %" PRId64 " %zu:%s\n", t->start_ms, strlen(t->sid), t->sid) != 0)
            return -1;
    }
    return 0;
}

/* Reads "<len>:<sid>" at s (line end at end); *rest is what follows the id. 0 or -1. */
static int read_sid(const char *s, const char *end, char *sid, const char **rest)
{
    char *after;
    errno = 0;
    long len = strtol(s, &after, 10);
    if (errno || after == s || after >= end || *after != ':' || len <= 0 ||
        len > PRED_OPEN_SID_MAX || end - (after + 1) < len)
        return -1;
    memcpy(sid, after + 1, (size_t)len);
    sid[len] = 0;
    if (memchr(sid, 0, (size_t)len))
        return -1;
    *rest = after + 1 + len;
    return 0;
}

/* One "L ..." line (without its newline) into e. 0 or -1. */
static int parse_live(const char *s, const char *end, pred_open_entry_t *e)
{
    char *q;
    long long made = strtoll(s, &q, 10);
    if (q == s || *q != ' ')
        return -1;
    s = q + 1;
    long long start = strtoll(s, &q, 10);
    if (q == s || *q != ' ')
        return -1;
    s = q + 1;
    long rev = strtol(s, &q, 10);
    if (q == s || *q != ' ' || rev < 0 || rev > INT32_MAX)
        return -1;
    const char *rest;
    if (read_sid(q + 1, end, e->sid, &rest) != 0 || end - rest >= PRED_OPEN_PAYLOAD_MAX ||
        end == rest)
        return -1;
    memcpy(e->payload, rest, (size_t)(end - rest));
    e->payload[end - rest] = 0;
    e->made_s = made;
    e->start_ms = start;
    e->revision = (int32_t)rev;
    return 0;
}

int pred_open_parse(pred_open_t *p, const char *s, size_t len)
{
    pred_open_reset(p);
    const char *end = s + len;
    const char *nl = memchr(s, '\n', len);
    int bad = 0;
    if (!nl)
        return 1;
    char *q;
    long long last = strtoll(s, &q, 10);
    if (q == s || q != nl)
        bad++;
    else
        p->closed_last_ms = last;
    for (s = nl + 1; s < end; s = nl + 1) {
        nl = memchr(s, '\n', (size_t)(end - s));
        if (!nl)
            nl = end;
        if (nl - s > 2 && s[0] == 'L' && s[1] == ' ') {
            pred_open_entry_t e;
            if (parse_live(s + 2, nl, &e) == 0 && pred_open_find(p, e.sid) < 0)
                pred_open_put(p, &e, NULL);
            else
                bad++;
        } else if (nl - s > 2 && s[0] == 'R' && s[1] == ' ') {
            char sid[PRED_OPEN_SID_MAX + 1];
            const char *rest;
            long long start = strtoll(s + 2, &q, 10);
            if (q != s + 2 && *q == ' ' && read_sid(q + 1, nl, sid, &rest) == 0 && rest == nl)
                pred_open_retract(p, sid, start);
            else
                bad++;
        } else if (nl > s) {
            bad++;
        }
    }
    return bad;
}

int64_t pred_open_sid_start_ms(const char *sid)
{
    const char *c = strrchr(sid, ':');
    if (!c || !c[1])
        return -1;
    char *q;
    errno = 0;
    long long v = strtoll(c + 1, &q, 10);
    return errno || *q ? -1 : v;
}

int pred_open_parse_legacy(pred_open_t *p, const char *s, size_t len)
{
    pred_open_entry_t e;
    const char *end = s + len, *rest;
    char *q;
    long long made = strtoll(s, &q, 10);
    if (q == s || q >= end || *q != ' ' || read_sid(q + 1, end, e.sid, &rest) != 0 ||
        end - rest >= PRED_OPEN_PAYLOAD_MAX || rest == end)
        return -1;
    memcpy(e.payload, rest, (size_t)(end - rest));
    e.payload[end - rest] = 0;
    e.made_s = made;
    e.revision = 0;
    e.start_ms = pred_open_sid_start_ms(e.sid);
    pred_open_put(p, &e, NULL);
    return 0;
}

int pred_open_find(const pred_open_t *p, const char *sid)
{
    for (int i = 0; i < p->n; i++)
        if (strcmp(p->e[i].sid, sid) == 0)
            return i;
    return -1;
}

bool pred_open_is_retracted(const pred_open_t *p, const char *sid)
{
    for (int i = 0; i < p->n_tomb; i++)
        if (strcmp(p->tomb[i].sid, sid) == 0)
            return true;
    return false;
}

void pred_open_remove(pred_open_t *p, int i, pred_open_entry_t *out)
{
    if (out)
        *out = p->e[i];
    memmove(&p->e[i], &p->e[i + 1], (size_t)(p->n - i - 1) * sizeof *p->e);
    p->n--;
}

int pred_open_put(pred_open_t *p, const pred_open_entry_t *e, pred_open_entry_t *dropped)
{
    int i = pred_open_find(p, e->sid);
    if (i >= 0)
        pred_open_remove(p, i, NULL);
    /* Sorted by start; a new entry goes after those with an equal start. */
    int at = p->n;
    while (at > 0 && p->e[at - 1].start_ms > e->start_ms)
        at--;
    memmove(&p->e[at + 1], &p->e[at], (size_t)(p->n - at) * sizeof *p->e);
    p->e[at] = *e;
    p->n++;
    if (p->n <= PRED_OPEN_MAX)
        return 0;
    pred_open_remove(p, 0, dropped);
    return 1;
}

void pred_open_retract(pred_open_t *p, const char *sid, int64_t start_ms)
{
    if (pred_open_is_retracted(p, sid))
        return;
    int at = p->n_tomb;
    while (at > 0 && p->tomb[at - 1].start_ms > start_ms)
        at--;
    memmove(&p->tomb[at + 1], &p->tomb[at], (size_t)(p->n_tomb - at) * sizeof *p->tomb);
    snprintf(p->tomb[at].sid, sizeof p->tomb[at].sid, "%s", sid);
    p->tomb[at].start_ms = start_ms;
    if (++p->n_tomb > PRED_OPEN_TOMB_MAX) {
        memmove(&p->tomb[0], &p->tomb[1], (size_t)(p->n_tomb - 1) * sizeof *p->tomb);
        p->n_tomb--;
    }
}
