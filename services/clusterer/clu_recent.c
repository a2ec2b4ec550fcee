/* clu_recent.c - the recently active users for re-fits (see clu_recent.h). */
#include "clu_recent.h"

#include <stdlib.h>
#include <string.h>

#include "st_buf.h"

typedef struct {
    char *id;
    double x[CLU_RECENT_DIM];
} entry_t;

struct clu_recent {
    entry_t *entries; /* max entries; when full, entries[hand] is replaced next */
    size_t n, max, hand;
    size_t *slots; /* index in entries + 1, 0 empty; a power of two at least 2 * max */
    size_t n_slots;
};

clu_recent_t *clu_recent_new(int max_users)
{
    clu_recent_t *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->max = max_users > 0 ? (size_t)max_users : 1;
    r->n_slots = 16;
    while (r->n_slots < 2 * r->max)
        r->n_slots *= 2;
    r->entries = calloc(r->max, sizeof *r->entries);
    r->slots = calloc(r->n_slots, sizeof *r->slots);
    if (!r->entries || !r->slots) {
        clu_recent_destroy(r);
        return NULL;
    }
    return r;
}

void clu_recent_destroy(clu_recent_t *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++)
        free(r->entries[i].id);
    free(r->entries);
    free(r->slots);
    free(r);
}

static size_t home_of(const clu_recent_t *r, const char *id)
{
    return (size_t)st_hash64(id, strlen(id), 0) & (r->n_slots - 1);
}

/* The slot of id: where it is, or the empty slot where it would go. */
static size_t *slot_of(const clu_recent_t *r, const char *id)
{
    size_t mask = r->n_slots - 1, h = home_of(r, id);
    while (r->slots[h] && strcmp(r->entries[r->slots[h] - 1].id, id) != 0)
        h = (h + 1) & mask;
    return &r->slots[h];
}

/* Empties slot (linear probing: later entries of the run move back). */
static void unslot(clu_recent_t *r, size_t *slot)
{
    size_t mask = r->n_slots - 1, i = (size_t)(slot - r->slots), j = i;
    r->slots[i] = 0;
    for (;;) {
        j = (j + 1) & mask;
        if (!r->slots[j])
            return;
        size_t home = home_of(r, r->entries[r->slots[j] - 1].id);
        /* Move back unless home lies cyclically in (i, j]. */
        if (i <= j ? (home <= i || home > j) : (home <= i && home > j)) {
            r->slots[i] = r->slots[j];
            r->slots[j] = 0;
            i = j;
        }
    }
}

void clu_recent_remember(clu_recent_t *r, const char *id, const double *x)
{
    size_t *slot = slot_of(r, id);
    if (*slot) {
        memcpy(r->entries[*slot - 1].x, x, sizeof r->entries[0].x);
        return;
    }
    char *copy = strdup(id);
    if (!copy)
        return;
    size_t at;
    if (r->n < r->max) {
        at = r->n++;
    } else {
        at = r->hand;
        r->hand = (r->hand + 1) % r->n;
        unslot(r, slot_of(r, r->entries[at].id));
        free(r->entries[at].id);
        slot = slot_of(r, id); /* the run may have moved */
    }
    r->entries[at].id = copy;
    memcpy(r->entries[at].x, x, sizeof r->entries[0].x);
    *slot = at + 1;
}

void clu_recent_clear(clu_recent_t *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->entries[i].id);
    r->n = r->hand = 0;
    memset(r->slots, 0, r->n_slots * sizeof *r->slots);
}

size_t clu_recent_count(const clu_recent_t *r)
{
    return r->n;
}

const double *clu_recent_vector(const clu_recent_t *r, size_t i)
{
    return r->entries[i].x;
}

const double *clu_recent_find(const clu_recent_t *r, const char *id)
{
    size_t slot = *slot_of(r, id);
    return slot ? r->entries[slot - 1].x : NULL;
}
