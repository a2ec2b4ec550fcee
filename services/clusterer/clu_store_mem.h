/* clu_store_mem.h - the clusterer's state in memory, with the Redis store's semantics
 * (clu_store.h): for the core's unit tests. */
#ifndef CLU_STORE_MEM_H
#define CLU_STORE_MEM_H

#include "clu_store.h"

/* An empty store; median_window >= 1 is the length of a user's list of lengths. NULL on no
 * memory. */
clu_store_t *clu_store_mem_new(int median_window);
/* NULL is a no-op. */
void clu_store_mem_destroy(clu_store_t *s);
/* A crash in the middle of a write: the next write applies only its first n users and then fails
 * (retriable); n < 0: no fault. */
void clu_store_mem_fail_after(clu_store_t *s, long n);
/* While fail is set, every read fails (retriable), as with Redis down. */
void clu_store_mem_fail_reads(clu_store_t *s, bool fail);
/* The last re-fit stored (borrowed until the next one), NULL when none. */
const char *clu_store_mem_refit(const clu_store_t *s);

#endif
