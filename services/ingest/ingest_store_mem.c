/* ingest_store_mem.c - ingest's duplicate marks in memory, with the Redis store's semantics
 * (ingest_store.h: per user, window and cap) apart from the wall-clock ttl: for unit tests. */
#include <stdlib.h>
#include <string.h>

#include "ingest_store.h"

typedef struct {
    char event_id[17];
    char *owner;
    int64_t listened_at_ms;
} mem_mark_t;

typedef struct {
    char *user;
    size_t user_len;
    mem_mark_t *marks;
    size_t n, cap;
    int64_t hwm;
} mem_user_t;

typedef struct {
    ingest_store_t iface;
    mem_user_t *users;
    size_t n, cap;
    long fail_after; /* writes left before failing, -1 never */
} mem_store_t;

static mem_user_t *find_user(const mem_store_t *s, const char *user, size_t len)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->users[i].user_len == len && memcmp(s->users[i].user, user, len) == 0)
            return &s->users[i];
    return NULL;
}

static mem_mark_t *find_mark(const mem_user_t *u, const char *event_id)
{
    for (size_t i = 0; u && i < u->n; i++)
        if (strcmp(u->marks[i].event_id, event_id) == 0)
            return &u->marks[i];
    return NULL;
}

static int store_read(void *ctx, const ingest_mark_t *m, size_t n, const char **found,
                      st_err_t *err)
{
    (void)err;
    mem_store_t *s = ctx;
    for (size_t i = 0; i < n; i++) {
        const mem_mark_t *x = find_mark(find_user(s, m[i].user, m[i].user_len), m[i].event_id);
        found[i] = x ? x->owner : NULL;
    }
    return 0;
}

static mem_user_t *add_user(mem_store_t *s, const char *user, size_t len)
{
    if (s->n == s->cap) {
        size_t nc = s->cap ? 2 * s->cap : 16;
        mem_user_t *p = realloc(s->users, nc * sizeof *p);
        if (!p)
            return NULL;
        s->users = p;
        s->cap = nc;
    }
    mem_user_t *u = &s->users[s->n];
    memset(u, 0, sizeof *u);
    if (!(u->user = malloc(len + 1)))
        return NULL;
    memcpy(u->user, user, len);
    u->user[len] = '\0';
    u->user_len = len;
    u->hwm = INT64_MIN;
    s->n++;
    return u;
}

static int older(const mem_mark_t *a, const mem_mark_t *b)
{
    return a->listened_at_ms < b->listened_at_ms ||
           (a->listened_at_ms == b->listened_at_ms && strcmp(a->event_id, b->event_id) < 0);
}

/* Drops the marks outside the window, then the oldest beyond the cap (as the Redis script). */
static void bound(mem_user_t *u, const ingest_bounds_t *b)
{
    size_t k = 0;
    for (size_t i = 0; i < u->n; i++) {
        if (u->marks[i].listened_at_ms < u->hwm - b->window_ms)
            free(u->marks[i].owner);
        else
            u->marks[k++] = u->marks[i];
    }
    u->n = k;
    while ((int64_t)u->n > b->max_per_user) {
        size_t oldest = 0;
        for (size_t i = 1; i < u->n; i++)
            if (older(&u->marks[i], &u->marks[oldest]))
                oldest = i;
        free(u->marks[oldest].owner);
        u->marks[oldest] = u->marks[--u->n];
    }
}

static int store_write(void *ctx, const ingest_mark_t *m, size_t n, const ingest_bounds_t *b,
                       st_err_t *err)
{
    mem_store_t *s = ctx;
    if (s->fail_after == 0) {
        st_err_set(err, ST_ERR_REDIS, ST_DISP_RETRY, "in-memory store: write refused (test)");
        return -1;
    }
    if (s->fail_after > 0)
        s->fail_after--;
    for (size_t i = 0; i < n; i++) {
        mem_user_t *u = find_user(s, m[i].user, m[i].user_len);
        if (!u && !(u = add_user(s, m[i].user, m[i].user_len)))
            goto nomem;
        if (m[i].listened_at_ms > u->hwm)
            u->hwm = m[i].listened_at_ms;
        if (find_mark(u, m[i].event_id))
            continue; /* HSETNX */
        if (u->n == u->cap) {
            size_t nc = u->cap ? 2 * u->cap : 8;
            mem_mark_t *p = realloc(u->marks, nc * sizeof *p);
            if (!p)
                goto nomem;
            u->marks = p;
            u->cap = nc;
        }
        mem_mark_t x = {.listened_at_ms = m[i].listened_at_ms, .owner = strdup(m[i].owner)};
        if (!x.owner)
            goto nomem;
        memcpy(x.event_id, m[i].event_id, sizeof x.event_id - 1);
        x.event_id[sizeof x.event_id - 1] = '\0';
        u->marks[u->n++] = x;
    }
    for (size_t i = 0; i < s->n; i++)
        bound(&s->users[i], b);
    return 0;
nomem:
    st_err_nomem(err);
    return -1;
}

ingest_store_t *ingest_store_mem_new(void)
{
    mem_store_t *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->fail_after = -1;
    s->iface = (ingest_store_t){.ctx = s, .read = store_read, .write = store_write};
    return &s->iface;
}

void ingest_store_mem_destroy(ingest_store_t *iface)
{
    if (!iface)
        return;
    mem_store_t *s = iface->ctx;
    for (size_t i = 0; i < s->n; i++) {
        for (size_t j = 0; j < s->users[i].n; j++)
            free(s->users[i].marks[j].owner);
        free(s->users[i].marks);
        free(s->users[i].user);
    }
    free(s->users);
    free(s);
}

void ingest_store_mem_fail_after(ingest_store_t *iface, long n)
{
    ((mem_store_t *)iface->ctx)->fail_after = n;
}

const char *ingest_store_mem_mark(const ingest_store_t *iface, const char *user,
                                  const char *event_id)
{
    const mem_mark_t *x = find_mark(find_user(iface->ctx, user, strlen(user)), event_id);
    return x ? x->owner : NULL;
}

size_t ingest_store_mem_count(const ingest_store_t *iface)
{
    const mem_store_t *s = iface->ctx;
    size_t n = 0;
    for (size_t i = 0; i < s->n; i++)
        n += s->users[i].n;
    return n;
}
