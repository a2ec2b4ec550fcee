/* ingest_store_mem.c - ingest's duplicate marks in memory, with the Redis store's semantics
 * (ingest_store.h) apart from expiry: for the core's unit tests. */
#include <stdlib.h>
#include <string.h>

#include "ingest_store.h"

typedef struct {
    char *event_id, *owner;
} mem_mark_t;

typedef struct {
    ingest_store_t iface;
    mem_mark_t *marks;
    size_t n, cap;
    long fail_after; /* writes left before failing, -1 never */
} mem_store_t;

static mem_mark_t *find(const mem_store_t *s, const char *event_id)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->marks[i].event_id, event_id) == 0)
            return &s->marks[i];
    return NULL;
}

static int store_read(void *ctx, const char *const *event_ids, size_t n, const char **marks,
                      st_err_t *err)
{
    (void)err;
    mem_store_t *s = ctx;
    for (size_t i = 0; i < n; i++) {
        const mem_mark_t *m = find(s, event_ids[i]);
        marks[i] = m ? m->owner : NULL;
    }
    return 0;
}

static int store_write(void *ctx, const char *const *event_ids, const char *const *owners, size_t n,
                       int64_t ttl_s, st_err_t *err)
{
    (void)ttl_s;
    mem_store_t *s = ctx;
    if (s->fail_after == 0) {
        st_err_set(err, ST_ERR_REDIS, ST_DISP_RETRY, "in-memory store: write refused (test)");
        return -1;
    }
    if (s->fail_after > 0)
        s->fail_after--;
    for (size_t i = 0; i < n; i++) {
        if (find(s, event_ids[i]))
            continue; /* NX */
        if (s->n == s->cap) {
            size_t nc = s->cap ? 2 * s->cap : 64;
            mem_mark_t *p = realloc(s->marks, nc * sizeof *p);
            if (!p) {
                st_err_nomem(err);
                return -1;
            }
            s->marks = p;
            s->cap = nc;
        }
        mem_mark_t m = {strdup(event_ids[i]), strdup(owners[i])};
        if (!m.event_id || !m.owner) {
            free(m.event_id);
            free(m.owner);
            st_err_nomem(err);
            return -1;
        }
        s->marks[s->n++] = m;
    }
    return 0;
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
        free(s->marks[i].event_id);
        free(s->marks[i].owner);
    }
    free(s->marks);
    free(s);
}

void ingest_store_mem_fail_after(ingest_store_t *iface, long n)
{
    ((mem_store_t *)iface->ctx)->fail_after = n;
}

const char *ingest_store_mem_mark(const ingest_store_t *iface, const char *event_id)
{
    const mem_mark_t *m = find(iface->ctx, event_id);
    return m ? m->owner : NULL;
}

size_t ingest_store_mem_count(const ingest_store_t *iface)
{
    return ((const mem_store_t *)iface->ctx)->n;
}
