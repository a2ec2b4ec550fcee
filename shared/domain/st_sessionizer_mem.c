/* st_sessionizer_mem.c - the sessionizer's in-memory state store (tests, the offline builder):
 * the Redis hash and deadline set in one map, with the compare-and-set of the Lua script. */
#include <stdlib.h>
#include <string.h>

#include "st_sessionizer.h"
#include "st_sessionizer_impl.h"

/* The in-memory store: one entry per user holding what the Redis hash and zset would. */
typedef struct {
    st_sz_key_t key;
    st_sessionizer_pos_t pos;
    st_buf_t blob;
    int32_t partition;
    bool has_deadline;
    int64_t deadline_ms;
} mem_entry_t;

typedef struct {
    st_sessionizer_store_t store;
    st_sz_map_t map;
    size_t n_deadlines; /* entries with a deadline: lets load_deadlines skip the scan when 0 */
    long fail_after;
} memstore_t;

static int mem_get(void *ctx, const st_sessionizer_user_t *users, size_t n, st_buf_t *out,
                   st_err_t *err)
{
    memstore_t *m = ctx;
    for (size_t i = 0; i < n; i++) {
        const mem_entry_t *e = (const mem_entry_t *)st_sz_map_get(
            &m->map, users[i].id, users[i].len, st_sz_key_hash(users[i].id, users[i].len));
        if (e && st_buf_append(&out[i], e->blob.data, e->blob.len) != 0) {
            st_err_set(err, ST_ERR_NOMEM, ST_DISP_FATAL, "memstore: out of memory");
            return -1;
        }
    }
    return 0;
}

static int mem_put(void *ctx, const st_sessionizer_write_t *writes, size_t n, st_err_t *err)
{
    memstore_t *m = ctx;
    for (size_t i = 0; i < n; i++) {
        if (m->fail_after >= 0 && (long)i >= m->fail_after) {
            m->fail_after = -1;
            st_err_set(err, ST_ERR_REDIS, ST_DISP_RETRY, "memstore: injected failure after %zu", i);
            return -1;
        }
        const st_sessionizer_write_t *w = &writes[i];
        st_sessionizer_pos_t pos;
        if (st_sessionizer_pos_parse(w->pos_text, &pos) != 0) {
            st_err_set(err, ST_ERR_INTERNAL, ST_DISP_FATAL, "memstore: bad position \"%s\"",
                       w->pos_text);
            return -1;
        }
        uint64_t h = st_sz_key_hash(w->user.id, w->user.len);
        mem_entry_t *e = (mem_entry_t *)st_sz_map_get(&m->map, w->user.id, w->user.len, h);
        if (e && st_sessionizer_pos_cmp(&pos, &e->pos) <= 0)
            continue; /* the script's "stored position at or above": no change */
        if (!e) {
            e = calloc(1, sizeof *e);
            if (!e || !(e->key.s = st_sz_dup_bytes(w->user.id, w->user.len))) {
                free(e);
                goto nomem;
            }
            e->key.len = w->user.len;
            e->key.hash = h;
            if (st_sz_map_put(&m->map, &e->key) != 0) {
                free(e->key.s);
                free(e);
                goto nomem;
            }
        }
        st_buf_reset(&e->blob);
        if (st_buf_append(&e->blob, w->blob, w->blob_len) != 0)
            goto nomem;
        e->pos = pos;
        e->partition = w->partition;
        m->n_deadlines += (size_t)w->has_deadline - (size_t)e->has_deadline;
        e->has_deadline = w->has_deadline;
        e->deadline_ms = w->deadline_ms;
    }
    return 0;
nomem:
    st_err_set(err, ST_ERR_NOMEM, ST_DISP_FATAL, "memstore: out of memory");
    return -1;
}

static int mem_load_deadlines(void *ctx, int32_t partition,
                              int (*add)(void *arg, const char *user_id, size_t user_id_len,
                                         int64_t deadline_ms),
                              void *arg, st_err_t *err)
{
    memstore_t *m = ctx;
    for (size_t i = 0; m->n_deadlines > 0 && i < m->map.cap; i++) {
        const mem_entry_t *e = (const mem_entry_t *)m->map.slots[i];
        if (e && e->has_deadline && e->partition == partition &&
            add(arg, e->key.s, e->key.len, e->deadline_ms) != 0) {
            st_err_set(err, ST_ERR_NOMEM, ST_DISP_FATAL, "memstore: out of memory");
            return -1;
        }
    }
    return 0;
}

/* The Lua script's compare: the entry goes only if it still has that deadline. */
static int mem_drop(void *ctx, const st_sessionizer_stale_t *d, size_t n, st_err_t *err)
{
    memstore_t *m = ctx;
    (void)err;
    for (size_t i = 0; i < n; i++) {
        uint64_t h = st_sz_key_hash(d[i].user.id, d[i].user.len);
        mem_entry_t *e = (mem_entry_t *)st_sz_map_get(&m->map, d[i].user.id, d[i].user.len, h);
        if (e && e->has_deadline && e->partition == d[i].partition &&
            e->deadline_ms == d[i].deadline_ms) {
            e->has_deadline = false;
            m->n_deadlines--;
        }
    }
    return 0;
}

st_sessionizer_store_t *st_sessionizer_memstore_new(void)
{
    memstore_t *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->fail_after = -1;
    m->store.ctx = m;
    m->store.get_states = mem_get;
    m->store.put_states = mem_put;
    m->store.load_deadlines = mem_load_deadlines;
    m->store.drop_deadlines = mem_drop;
    return &m->store;
}

void st_sessionizer_memstore_destroy(st_sessionizer_store_t *store)
{
    if (!store)
        return;
    memstore_t *m = store->ctx;
    for (size_t i = 0; i < m->map.cap; i++) {
        mem_entry_t *e = (mem_entry_t *)m->map.slots[i];
        if (e) {
            free(e->key.s);
            st_buf_free(&e->blob);
            free(e);
        }
    }
    st_sz_map_free(&m->map);
    free(m);
}

void st_sessionizer_memstore_fail_after(st_sessionizer_store_t *store, long n)
{
    ((memstore_t *)store->ctx)->fail_after = n < 0 ? -1 : n;
}

size_t st_sessionizer_memstore_count(const st_sessionizer_store_t *store)
{
    return ((const memstore_t *)store->ctx)->map.n;
}

int st_sessionizer_memstore_read(const st_sessionizer_store_t *store, const char *user_id,
                                 st_sessionizer_state_t *out)
{
    const memstore_t *m = store->ctx;
    size_t len = strlen(user_id);
    const mem_entry_t *e =
        (const mem_entry_t *)st_sz_map_get(&m->map, user_id, len, st_sz_key_hash(user_id, len));
    if (!e)
        return -1;
    return st_sessionizer_state_decode(e->blob.data, e->blob.len, out, NULL);
}
