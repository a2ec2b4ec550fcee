/* st_sessionizer_index.c - the sessionizer's containers: a string-keyed open-addressing map, the
 * deadline index (map + indexed min-heap) and the allocation helpers its files share. */
#include <stdlib.h>
#include <string.h>

#include "st_sessionizer_impl.h"

static st_sz_key_t **map_slot(const st_sz_map_t *m, const char *s, size_t len, uint64_t hash)
{
    size_t mask = m->cap - 1;
    for (size_t i = hash & mask;; i = (i + 1) & mask) {
        st_sz_key_t *k = m->slots[i];
        if (!k || (k->hash == hash && k->len == len && memcmp(k->s, s, len) == 0))
            return &m->slots[i];
    }
}

st_sz_key_t *st_sz_map_get(const st_sz_map_t *m, const char *s, size_t len, uint64_t hash)
{
    return m->cap ? *map_slot(m, s, len, hash) : NULL;
}

/* Inserts k (absent). 0 or -1 (ENOMEM). */
int st_sz_map_put(st_sz_map_t *m, st_sz_key_t *k)
{
    if ((m->n + 1) * 4 > m->cap * 3) {
        size_t cap = m->cap ? m->cap * 2 : 64;
        st_sz_key_t **slots = calloc(cap, sizeof *slots);
        if (!slots)
            return -1;
        st_sz_map_t grown = {slots, cap, 0};
        for (size_t i = 0; i < m->cap; i++)
            if (m->slots[i])
                *map_slot(&grown, m->slots[i]->s, m->slots[i]->len, m->slots[i]->hash) =
                    m->slots[i];
        free(m->slots);
        m->slots = slots;
        m->cap = cap;
    }
    *map_slot(m, k->s, k->len, k->hash) = k;
    m->n++;
    return 0;
}

/* Removes k (present) with backward-shift deletion, so no tombstones accumulate. */
void st_sz_map_del(st_sz_map_t *m, const st_sz_key_t *k)
{
    size_t mask = m->cap - 1;
    size_t i = (size_t)(map_slot(m, k->s, k->len, k->hash) - m->slots);
    m->slots[i] = NULL;
    m->n--;
    for (size_t j = (i + 1) & mask; m->slots[j]; j = (j + 1) & mask) {
        size_t home = m->slots[j]->hash & mask;
        /* Move slots[j] into the hole when its home is not cyclically within (i, j]. */
        bool between = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!between) {
            m->slots[i] = m->slots[j];
            m->slots[j] = NULL;
            i = j;
        }
    }
}

void st_sz_map_clear(st_sz_map_t *m)
{
    if (m->cap)
        memset(m->slots, 0, m->cap * sizeof *m->slots);
    m->n = 0;
}

void st_sz_map_free(st_sz_map_t *m)
{
    free(m->slots);
    memset(m, 0, sizeof *m);
}

uint64_t st_sz_key_hash(const char *s, size_t len)
{
    return st_hash64(s, len, 0);
}

char *st_sz_dup_bytes(const char *s, size_t len)
{
    char *p = malloc(len + 1);
    if (p) {
        memcpy(p, s, len);
        p[len] = '\0';
    }
    return p;
}
static void dl_swap(st_sz_dlindex_t *x, size_t a, size_t b)
{
    st_sz_dl_t *t = x->heap[a];
    x->heap[a] = x->heap[b];
    x->heap[b] = t;
    x->heap[a]->heap_pos = a;
    x->heap[b]->heap_pos = b;
}

static void dl_sift(st_sz_dlindex_t *x, size_t i)
{
    while (i > 0 && x->heap[(i - 1) / 2]->deadline_ms > x->heap[i]->deadline_ms) {
        dl_swap(x, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < x->n && x->heap[l]->deadline_ms < x->heap[m]->deadline_ms)
            m = l;
        if (r < x->n && x->heap[r]->deadline_ms < x->heap[m]->deadline_ms)
            m = r;
        if (m == i)
            return;
        dl_swap(x, i, m);
        i = m;
    }
}

int st_sz_dl_set(st_sz_dlindex_t *x, const char *user, size_t len, int64_t deadline_ms)
{
    uint64_t h = st_sz_key_hash(user, len);
    st_sz_dl_t *d = (st_sz_dl_t *)st_sz_map_get(&x->map, user, len, h);
    if (d) {
        d->deadline_ms = deadline_ms;
        dl_sift(x, d->heap_pos);
        return 0;
    }
    if (x->n == x->cap) {
        size_t cap = x->cap ? x->cap * 2 : 64;
        st_sz_dl_t **heap = realloc(x->heap, cap * sizeof *heap);
        if (!heap)
            return -1;
        x->heap = heap;
        x->cap = cap;
    }
    d = calloc(1, sizeof *d);
    if (!d || !(d->key.s = st_sz_dup_bytes(user, len))) {
        free(d);
        return -1;
    }
    d->key.len = len;
    d->key.hash = h;
    d->deadline_ms = deadline_ms;
    if (st_sz_map_put(&x->map, &d->key) != 0) {
        free(d->key.s);
        free(d);
        return -1;
    }
    d->heap_pos = x->n;
    x->heap[x->n++] = d;
    dl_sift(x, d->heap_pos);
    return 0;
}

static void dl_remove_entry(st_sz_dlindex_t *x, st_sz_dl_t *d)
{
    size_t i = d->heap_pos;
    x->n--;
    if (i != x->n) {
        x->heap[i] = x->heap[x->n];
        x->heap[i]->heap_pos = i;
        dl_sift(x, i);
    }
    st_sz_map_del(&x->map, &d->key);
    free(d->key.s);
    free(d);
}

void st_sz_dl_remove(st_sz_dlindex_t *x, const char *user, size_t len)
{
    st_sz_dl_t *d = (st_sz_dl_t *)st_sz_map_get(&x->map, user, len, st_sz_key_hash(user, len));
    if (d)
        dl_remove_entry(x, d);
}

/* Appends every entry with a deadline below wm (all when flush) to *out, visiting only the part
 * of the heap that qualifies: a node at or above wm has no qualifying descendant. */
int st_sz_dl_collect(const st_sz_dlindex_t *x, size_t i, bool flush, int64_t wm, st_sz_dl_t ***out,
                     size_t *n, size_t *cap)
{
    if (i >= x->n || (!flush && x->heap[i]->deadline_ms >= wm))
        return 0;
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 64;
        st_sz_dl_t **o = realloc(*out, c * sizeof *o);
        if (!o)
            return -1;
        *out = o;
        *cap = c;
    }
    (*out)[(*n)++] = x->heap[i];
    if (st_sz_dl_collect(x, 2 * i + 1, flush, wm, out, n, cap) != 0)
        return -1;
    return st_sz_dl_collect(x, 2 * i + 2, flush, wm, out, n, cap);
}

void st_sz_dl_free(st_sz_dlindex_t *x)
{
    for (size_t i = 0; i < x->n; i++) {
        free(x->heap[i]->key.s);
        free(x->heap[i]);
    }
    free(x->heap);
    st_sz_map_free(&x->map);
    memset(x, 0, sizeof *x);
}

int st_sz_grow(void **arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t cap2 = *cap ? *cap : 64;
    while (cap2 < need)
        cap2 *= 2;
    void *p = realloc(*arr, cap2 * elem);
    if (!p)
        return -1;
    *arr = p;
    *cap = cap2;
    return 0;
}
