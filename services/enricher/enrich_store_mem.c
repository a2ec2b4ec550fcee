/* enrich_store_mem.c - the track cache in memory, read with the Redis store's semantics
 * (enrich_store.h; negative entries expire at expires_at_ms): for the core's unit tests. */
#include <stdlib.h>
#include <string.h>

#include "enrich_store.h"

typedef struct {
    char *key;
    st_trackmeta_t meta;
    char *broken; /* non-NULL: unreadable, with this text */
} mem_entry_t;

typedef struct {
    enrich_store_t iface;
    mem_entry_t *entries;
    size_t n, cap;
    long fail_after, rounds;
} mem_store_t;

static mem_entry_t *find(const mem_store_t *s, const char *key, size_t len)
{
    for (size_t i = 0; i < s->n; i++)
        if (strlen(s->entries[i].key) == len && memcmp(s->entries[i].key, key, len) == 0)
            return &s->entries[i];
    return NULL;
}

static mem_entry_t *find_or_add(mem_store_t *s, const char *key)
{
    mem_entry_t *e = find(s, key, strlen(key));
    if (e)
        return e;
    if (s->n == s->cap) {
        size_t nc = s->cap ? 2 * s->cap : 32;
        mem_entry_t *p = realloc(s->entries, nc * sizeof *p);
        if (!p)
            return NULL;
        s->entries = p;
        s->cap = nc;
    }
    e = &s->entries[s->n];
    memset(e, 0, sizeof *e);
    if (!(e->key = strdup(key)))
        return NULL;
    s->n++;
    return e;
}

static int store_lookup(void *ctx, const char *const *keys, const size_t *lens, size_t n,
                        int64_t now_ms, st_trackmeta_t *meta, enrich_store_res_t *res,
                        const char **why, st_err_t *err)
{
    mem_store_t *s = ctx;
    if (s->fail_after == 0) {
        st_err_set(err, ST_ERR_REDIS, ST_DISP_RETRY, "in-memory store: lookup refused (test)");
        return -1;
    }
    if (s->fail_after > 0)
        s->fail_after--;
    s->rounds++;
    for (size_t i = 0; i < n; i++) {
        const mem_entry_t *e = find(s, keys[i], lens[i]);
        why[i] = NULL;
        /* meta[i] is the caller's only when FOUND: poison it otherwise, so a core that reads it
         * anyway fails its tests. */
        memset(&meta[i], 0xA5, sizeof meta[i]);
        if (e && e->broken) {
            res[i] = ENRICH_STORE_BROKEN;
            why[i] = e->broken;
        } else if (e && (e->meta.expires_at_ms == 0 || e->meta.expires_at_ms > now_ms)) {
            res[i] = ENRICH_STORE_FOUND;
            meta[i] = e->meta;
        } else {
            res[i] = ENRICH_STORE_ABSENT;
        }
    }
    return 0;
}

enrich_store_t *enrich_store_mem_new(void)
{
    mem_store_t *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->fail_after = -1;
    s->iface = (enrich_store_t){.ctx = s, .lookup = store_lookup};
    return &s->iface;
}

void enrich_store_mem_destroy(enrich_store_t *iface)
{
    if (!iface)
        return;
    mem_store_t *s = iface->ctx;
    for (size_t i = 0; i < s->n; i++) {
        free(s->entries[i].key);
        free(s->entries[i].broken);
    }
    free(s->entries);
    free(s);
}

int enrich_store_mem_put(enrich_store_t *iface, const char *key, const st_trackmeta_t *m)
{
    mem_entry_t *e = find_or_add(iface->ctx, key);
    if (!e)
        return -1;
    e->meta = *m;
    free(e->broken);
    e->broken = NULL;
    return 0;
}

int enrich_store_mem_break(enrich_store_t *iface, const char *key, const char *why)
{
    mem_entry_t *e = find_or_add(iface->ctx, key);
    char *w = strdup(why);
    if (!e || !w) {
        free(w);
        return -1;
    }
    free(e->broken);
    e->broken = w;
    return 0;
}

void enrich_store_mem_fail_after(enrich_store_t *iface, long n)
{
    ((mem_store_t *)iface->ctx)->fail_after = n;
}

long enrich_store_mem_rounds(const enrich_store_t *iface)
{
    return ((const mem_store_t *)iface->ctx)->rounds;
}
