/* track_cache.c - a hash table with chaining plus a doubly linked recency list; each entry is one
 * allocation holding its key and tags. */
#include "track_cache.h"

#include <stdlib.h>
#include <string.h>

#include "st_buf.h"

typedef struct entry {
    struct entry *prev, *next; /* recency list, most recent at head */
    struct entry *chain;       /* bucket chain */
    uint64_t hash;
    size_t key_len;
    st_trackmeta_source_t source;
    int64_t duration_ms;
    int64_t expires_at_ms;
    int ntags;
    size_t tag_off[ST_TRACKMETA_MAX_TAGS];
    char data[]; /* key NUL tag0 NUL tag1 NUL ... */
} entry_t;

struct track_cache {
    entry_t **buckets;
    size_t mask;
    size_t size, max_entries;
    uint64_t evictions;
    entry_t *head, *tail;
};

track_cache_t *track_cache_new(size_t max_entries)
{
    if (max_entries < 1)
        return NULL;
    track_cache_t *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    size_t nb = 16;
    while (nb < 2 * max_entries)
        nb *= 2;
    c->buckets = calloc(nb, sizeof *c->buckets);
    if (!c->buckets) {
        free(c);
        return NULL;
    }
    c->mask = nb - 1;
    c->max_entries = max_entries;
    return c;
}

void track_cache_destroy(track_cache_t *c)
{
    if (!c)
        return;
    for (entry_t *e = c->head, *next; e; e = next) {
        next = e->next;
        free(e);
    }
    free(c->buckets);
    free(c);
}

uint64_t track_cache_hash(const char *key, size_t len)
{
    return st_hash64(key, len, 0x7472616b);
}

static entry_t **find_slot(track_cache_t *c, const char *key, size_t len, uint64_t hash)
{
    entry_t **pp = &c->buckets[hash & c->mask];
    for (; *pp; pp = &(*pp)->chain) {
        entry_t *e = *pp;
        if (e->hash == hash && e->key_len == len && memcmp(e->data, key, len) == 0)
            return pp;
    }
    return pp;
}

static void list_unlink(track_cache_t *c, entry_t *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        c->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        c->tail = e->prev;
    e->prev = e->next = NULL;
}

static void list_push_front(track_cache_t *c, entry_t *e)
{
    e->prev = NULL;
    e->next = c->head;
    if (c->head)
        c->head->prev = e;
    c->head = e;
    if (!c->tail)
        c->tail = e;
}

/* Removes the entry that *pp points to (pp is its bucket link). */
static void remove_at(track_cache_t *c, entry_t **pp)
{
    entry_t *e = *pp;
    *pp = e->chain;
    list_unlink(c, e);
    free(e);
    c->size--;
}

bool track_cache_get(track_cache_t *c, const char *key, size_t len, uint64_t hash, int64_t now_ms,
                     track_cache_view_t *out)
{
    entry_t **pp = find_slot(c, key, len, hash);
    entry_t *e = *pp;
    if (!e)
        return false;
    if (e->expires_at_ms > 0 && e->expires_at_ms <= now_ms) {
        remove_at(c, pp);
        return false;
    }
    if (c->head != e) {
        list_unlink(c, e);
        list_push_front(c, e);
    }
    out->source = e->source;
    out->duration_ms = e->duration_ms;
    out->ntags = e->ntags;
    for (int i = 0; i < e->ntags; i++)
        out->tags[i] = e->data + e->tag_off[i];
    return true;
}

int track_cache_put(track_cache_t *c, const char *key, size_t len, uint64_t hash,
                    const st_trackmeta_t *m)
{
    if (m->source == ST_TRACKMETA_NONE)
        return 0;
    entry_t **pp = find_slot(c, key, len, hash);
    if (*pp)
        remove_at(c, pp);
    int ntags = m->ntags < 0                       ? 0
                : m->ntags > ST_TRACKMETA_MAX_TAGS ? ST_TRACKMETA_MAX_TAGS
                                                   : m->ntags;
    size_t tag_len[ST_TRACKMETA_MAX_TAGS], total = len + 1;
    for (int i = 0; i < ntags; i++) {
        tag_len[i] = strnlen(m->tags[i], ST_TRACKMETA_TAG_SIZE - 1);
        total += tag_len[i] + 1;
    }
    entry_t *e = malloc(sizeof *e + total);
    if (!e)
        return -1;
    e->hash = hash;
    e->key_len = len;
    e->source = m->source;
    e->duration_ms = m->duration_ms;
    e->expires_at_ms = m->expires_at_ms;
    e->ntags = ntags;
    memcpy(e->data, key, len);
    e->data[len] = '\0';
    size_t off = len + 1;
    for (int i = 0; i < ntags; i++) {
        e->tag_off[i] = off;
        memcpy(e->data + off, m->tags[i], tag_len[i]);
        e->data[off + tag_len[i]] = '\0';
        off += tag_len[i] + 1;
    }
    if (c->size >= c->max_entries) {
        entry_t *victim = c->tail;
        remove_at(c, find_slot(c, victim->data, victim->key_len, victim->hash));
        c->evictions++;
    }
    /* The end of the key's chain, looked up again: a removal above may have changed the chain
     * (the replaced entry's link now holds its successor, which must stay reachable). */
    pp = find_slot(c, key, len, hash);
    e->chain = NULL;
    *pp = e;
    list_push_front(c, e);
    c->size++;
    return 0;
}

size_t track_cache_size(const track_cache_t *c)
{
    return c->size;
}

uint64_t track_cache_evictions(const track_cache_t *c)
{
    return c->evictions;
}
