/* clu_recent.h - the clusterer's recently active users for re-fits: the raw profile vectors of
 * the last max_users distinct users seen, a ring indexed by an open-addressing hash table (O(1)
 * per update; when full, the user inserted longest ago makes room). */
#ifndef CLU_RECENT_H
#define CLU_RECENT_H

#include <stddef.h>

#include "st_bundle.h"

#define CLU_RECENT_DIM ST_BUNDLE_MAX_PROFILE_FEATS /* values per vector */

typedef struct clu_recent clu_recent_t;

/* An empty set for at most max_users (>= 1) users. NULL on no memory. */
clu_recent_t *clu_recent_new(int max_users);
/* NULL is a no-op. */
void clu_recent_destroy(clu_recent_t *r);

/* Keeps x (CLU_RECENT_DIM values, copied) as id's vector (id copied): replaces it when id is kept,
 * else adds id. Out of memory: id is not added (re-fits are informational). */
void clu_recent_remember(clu_recent_t *r, const char *id, const double *x);
/* Forgets every user. */
void clu_recent_clear(clu_recent_t *r);

size_t clu_recent_count(const clu_recent_t *r);
/* Vector i (< clu_recent_count), in no particular order. Borrowed until the next change. */
const double *clu_recent_vector(const clu_recent_t *r, size_t i);
/* id's vector, NULL when id is not kept. Borrowed until the next change. */
const double *clu_recent_find(const clu_recent_t *r, const char *id);

#endif
