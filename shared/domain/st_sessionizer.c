/* st_sessionizer.c - streaming sessionizer core: partitions (reorder buffer, watermark, commit
 * queue, deadlines, buffered records per user), push, and the batch (release, state reads, the
 * rule step of st_sessionizer_apply.c, state writes, commit points). */
#include "st_sessionizer.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "st_log.h"
#include "st_sessionizer_impl.h"

void st_sessionizer_config_default(st_sessionizer_config_t *config)
{
    memset(config, 0, sizeof *config);
    st_session_rule_default(&config->rule);
    config->grace_ms = ST_SESSIONIZER_GRACE_MS_DEFAULT;
    config->recent_n = ST_SESSION_RECENT_DEFAULT;
    config->clock_quorum = ST_SESSIONIZER_CLOCK_QUORUM_DEFAULT;
    config->clock_recent = ST_SESSIONIZER_CLOCK_RECENT_DEFAULT;
    config->ahead_max_ms = ST_SESSIONIZER_AHEAD_MS_DEFAULT;
}

enum { OQ_BUFFERED = 0, OQ_INFLIGHT = 1, OQ_DONE = 2 };

/* The offsets of a partition's accepted records in arrival (= offset) order, with the clock
 * just before each, so the commit point is the first one not done. */
typedef struct {
    int64_t offset;
    st_sessionizer_clock_t before;
    uint8_t state;
} oq_t;

typedef struct st_sz_part {
    int32_t id;
    uint64_t generation;
    st_sessionizer_clock_t clock; /* clock.has_time, clock.stream_time_ms: the stream time */
    bool has_next;
    int64_t next_offset;
    st_sz_brec_t *heap; /* reorder buffer, min-heap by (t, identity, offset) */
    size_t heap_n, heap_cap;
    oq_t *oq;
    size_t oq_head, oq_len, oq_cap;
    uint64_t oq_base_seq; /* seq of oq[0] */
    st_sz_dlindex_t deadlines;
    st_sz_map_t pend; /* user -> st_sz_pend_t */
    st_sz_pend_t **dirty;
    size_t n_dirty, cap_dirty;
} part_t;

static int brec_less(const st_sz_brec_t *a, const st_sz_brec_t *b)
{
    if (a->t_ms != b->t_ms)
        return a->t_ms < b->t_ms;
    if (a->identity_hash != b->identity_hash)
        return a->identity_hash < b->identity_hash;
    return a->offset < b->offset;
}

static void rheap_push(part_t *p, const st_sz_brec_t *r)
{
    size_t i = p->heap_n++;
    p->heap[i] = *r;
    while (i > 0 && brec_less(&p->heap[i], &p->heap[(i - 1) / 2])) {
        st_sz_brec_t t = p->heap[i];
        p->heap[i] = p->heap[(i - 1) / 2];
        p->heap[(i - 1) / 2] = t;
        i = (i - 1) / 2;
    }
}

static st_sz_brec_t rheap_pop(part_t *p)
{
    st_sz_brec_t top = p->heap[0];
    p->heap[0] = p->heap[--p->heap_n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < p->heap_n && brec_less(&p->heap[l], &p->heap[m]))
            m = l;
        if (r < p->heap_n && brec_less(&p->heap[r], &p->heap[m]))
            m = r;
        if (m == i)
            break;
        st_sz_brec_t t = p->heap[i];
        p->heap[i] = p->heap[m];
        p->heap[m] = t;
        i = m;
    }
    return top;
}

static int grow_pend(st_sz_pend_t *e)
{
    uint32_t cap = e->cap ? e->cap * 2 : 4;
    st_sz_prec_t *v = realloc(e->v, cap * sizeof *v);
    if (!v)
        return -1;
    e->v = v;
    e->cap = cap;
    return 0;
}

static int grow_dirty(part_t *p)
{
    size_t cap = p->cap_dirty ? p->cap_dirty * 2 : 64;
    st_sz_pend_t **d = realloc(p->dirty, cap * sizeof *d);
    if (!d)
        return -1;
    p->dirty = d;
    p->cap_dirty = cap;
    return 0;
}

static void part_free(part_t *p)
{
    for (size_t i = 0; i < p->heap_n; i++)
        free(p->heap[i].user);
    free(p->heap);
    free(p->oq);
    st_sz_dl_free(&p->deadlines);
    for (size_t i = 0; i < p->pend.cap; i++) {
        st_sz_pend_t *e = (st_sz_pend_t *)p->pend.slots[i];
        if (e) {
            free(e->key.s);
            free(e->v);
            free(e);
        }
    }
    st_sz_map_free(&p->pend);
    free(p->dirty);
    memset(p, 0, sizeof *p);
}

static int prec_cmp(const st_sz_prec_t *a, const st_sz_brec_t *b)
{
    if (a->t_ms != b->t_ms)
        return a->t_ms < b->t_ms ? -1 : 1;
    if (a->identity_hash != b->identity_hash)
        return a->identity_hash < b->identity_hash ? -1 : 1;
    if (a->offset != b->offset)
        return a->offset < b->offset ? -1 : 1;
    return 0;
}

/* Adds a buffered record to its user's pending list and marks the user dirty. 0 or -1 (ENOMEM,
 * nothing changed). */
static int pend_add(part_t *p, const st_sz_brec_t *r)
{
    uint64_t h = st_sz_key_hash(r->user, r->user_len);
    st_sz_pend_t *e = (st_sz_pend_t *)st_sz_map_get(&p->pend, r->user, r->user_len, h);
    if (!e) {
        e = calloc(1, sizeof *e);
        if (!e || !(e->key.s = st_sz_dup_bytes(r->user, r->user_len))) {
            free(e);
            return -1;
        }
        e->key.len = r->user_len;
        e->key.hash = h;
        if (st_sz_map_put(&p->pend, &e->key) != 0) {
            free(e->key.s);
            free(e);
            return -1;
        }
    }
    if ((e->n == e->cap && grow_pend(e) != 0) ||
        (!e->dirty && p->n_dirty == p->cap_dirty && grow_dirty(p) != 0)) {
        if (e->n == 0 && !e->dirty) {
            st_sz_map_del(&p->pend, &e->key);
            free(e->key.s);
            free(e->v);
            free(e);
        }
        return -1;
    }
    /* Usually an append: records of one user mostly arrive in time order. */
    uint32_t i = e->n;
    while (i > 0 && prec_cmp(&e->v[i - 1], r) > 0)
        i--;
    memmove(e->v + i + 1, e->v + i, (e->n - i) * sizeof *e->v);
    e->v[i] = (st_sz_prec_t){r->t_ms, r->identity_hash, r->offset, r->duration_ms};
    e->n++;
    if (!e->dirty) {
        e->dirty = true;
        p->dirty[p->n_dirty++] = e;
    }
    return 0;
}

static void pend_drop_if_empty(part_t *p, st_sz_pend_t *e)
{
    if (e->n > 0 || e->dirty)
        return;
    st_sz_map_del(&p->pend, &e->key);
    free(e->key.s);
    free(e->v);
    free(e);
}

/* Removes a released record from its user's pending list (a user's records are released in
 * their order, so it is the first one). */
static void pend_remove(part_t *p, const st_sz_brec_t *r)
{
    st_sz_pend_t *e = (st_sz_pend_t *)st_sz_map_get(&p->pend, r->user, r->user_len,
                                                    st_sz_key_hash(r->user, r->user_len));
    if (!e)
        return;
    for (uint32_t i = 0; i < e->n; i++) {
        if (prec_cmp(&e->v[i], r) == 0) {
            memmove(e->v + i, e->v + i + 1, (e->n - i - 1) * sizeof *e->v);
            e->n--;
            break;
        }
    }
    pend_drop_if_empty(p, e);
}

/* Ends a prepare's use of the dirty lists. */
static void pend_clear_dirty(part_t *p)
{
    for (size_t i = 0; i < p->n_dirty; i++) {
        p->dirty[i]->dirty = false;
        pend_drop_if_empty(p, p->dirty[i]);
    }
    p->n_dirty = 0;
}

static part_t *part_find(const st_sessionizer_t *sz, int32_t id)
{
    for (size_t i = 0; i < sz->n_parts; i++)
        if (sz->parts[i].id == id)
            return &sz->parts[i];
    return NULL;
}

/* Watermark: records below it are released, deadlines below it close. Saturating. */
static bool part_watermark(const st_sessionizer_t *sz, const part_t *p, int64_t *wm)
{
    if (!p->clock.has_time)
        return false;
    *wm = p->clock.stream_time_ms - sz->config.grace_ms;
    return true;
}

st_sessionizer_t *st_sessionizer_new(const st_sessionizer_config_t *config,
                                     st_sessionizer_store_t *store, char *errstr,
                                     size_t errstr_size)
{
    if (!config || !store || !store->get_states || !store->put_states || !store->load_deadlines) {
        st_errstr(errstr, errstr_size, "sessionizer: config and a complete store are required");
        return NULL;
    }
    if (config->rule.gap_ms < 0 || config->rule.gap_ms > ST_SZ_DURATION_MAX_MS) {
        st_errstr(errstr, errstr_size, "sessionizer: gap_ms %" PRId64 " out of range 0..%" PRId64,
                  config->rule.gap_ms, ST_SZ_DURATION_MAX_MS);
        return NULL;
    }
    if (config->rule.ref != ST_SESSION_REF_END && config->rule.ref != ST_SESSION_REF_START) {
        st_errstr(errstr, errstr_size, "sessionizer: unknown reference point %d",
                  (int)config->rule.ref);
        return NULL;
    }
    if (config->grace_ms < 0 || config->grace_ms > ST_SESSIONIZER_GRACE_MS_MAX) {
        st_errstr(errstr, errstr_size, "sessionizer: grace_ms %" PRId64 " out of range 0..%" PRId64,
                  config->grace_ms, ST_SESSIONIZER_GRACE_MS_MAX);
        return NULL;
    }
    if (config->clock_quorum > ST_SESSIONIZER_CLOCK_MAX || config->clock_recent < 0 ||
        config->ahead_max_ms < 0) {
        st_errstr(errstr, errstr_size,
                  "sessionizer: clock_quorum %" PRIu32 " (0..%d), clock_recent %" PRId64
                  " or ahead_max_ms %" PRId64 " (>= 0) out of range",
                  config->clock_quorum, ST_SESSIONIZER_CLOCK_MAX, config->clock_recent,
                  config->ahead_max_ms);
        return NULL;
    }
    if (config->recent_n < 1 || config->recent_n > ST_SESSION_RECENT_MAX) {
        st_errstr(errstr, errstr_size, "sessionizer: recent_n %" PRIu32 " out of range 1..%d",
                  config->recent_n, ST_SESSION_RECENT_MAX);
        return NULL;
    }
    st_sessionizer_t *sz = calloc(1, sizeof *sz);
    if (!sz) {
        st_errstr(errstr, errstr_size, "sessionizer: out of memory");
        return NULL;
    }
    sz->config = *config;
    sz->store = store;
    sz->next_generation = 1;
    return sz;
}

static void batch_release_records(st_sessionizer_t *sz)
{
    for (size_t i = 0; i < sz->n_recs; i++)
        free(sz->recs[i].user);
    sz->n_recs = 0;
    for (size_t i = 0; i < sz->n_works; i++)
        free(sz->works[i].key.s);
    sz->n_works = 0;
    st_sz_map_clear(&sz->work_map);
    sz->pending = false;
}

void st_sessionizer_destroy(st_sessionizer_t *sz)
{
    if (!sz)
        return;
    batch_release_records(sz);
    for (size_t i = 0; i < sz->n_parts; i++)
        part_free(&sz->parts[i]);
    free(sz->parts);
    free(sz->recs);
    free(sz->rec_next);
    free(sz->works);
    st_sz_map_free(&sz->work_map);
    free(sz->users);
    for (size_t i = 0; i < sz->cap_per_work; i++)
        st_buf_free(&sz->blobs[i]);
    free(sz->blobs);
    free(sz->events);
    free(sz->writes);
    free(sz->stale);
    free(sz->due);
    free(sz->due_part);
    free(sz);
}

static int load_deadline_cb(void *arg, const char *user, size_t len, int64_t deadline_ms)
{
    return st_sz_dl_set(arg, user, len, deadline_ms);
}

static bool clock_valid(const st_sessionizer_clock_t *c)
{
    if (!c->has_time)
        return c->n == 0;
    if (c->stream_time_ms < -ST_SZ_TIME_ABS_MAX || c->stream_time_ms > ST_SZ_TIME_ABS_MAX ||
        c->n > ST_SESSIONIZER_CLOCK_MAX)
        return false;
    for (uint32_t i = 0; i < c->n; i++)
        if (c->slot[i].t_ms < -ST_SZ_TIME_ABS_MAX || c->slot[i].t_ms > ST_SZ_TIME_ABS_MAX ||
            c->slot[i].offset < 0 || c->slot[i].offset > ST_SZ_OFFSET_MAX)
            return false;
    return true;
}

int st_sessionizer_assign(st_sessionizer_t *sz, int32_t partition, bool has_stream_time,
                          int64_t stream_time_ms, st_err_t *err)
{
    st_sessionizer_clock_t c = {.has_time = has_stream_time,
                                .stream_time_ms = has_stream_time ? stream_time_ms : 0};
    return st_sessionizer_assign_clock(sz, partition, &c, err);
}

int st_sessionizer_assign_clock(st_sessionizer_t *sz, int32_t partition,
                                const st_sessionizer_clock_t *clock, st_err_t *err)
{
    if (clock && !clock_valid(clock)) {
        st_err_set(err, ST_ERR_INVALID, ST_DISP_PERMANENT,
                   "sessionizer: clock of partition %" PRId32 " out of range", partition);
        return -1;
    }
    part_t fresh;
    memset(&fresh, 0, sizeof fresh);
    fresh.id = partition;
    fresh.generation = sz->next_generation++;
    if (clock)
        fresh.clock = *clock;
    if (sz->store->load_deadlines(sz->store->ctx, partition, load_deadline_cb, &fresh.deadlines,
                                  err) != 0) {
        part_free(&fresh);
        st_err_set(err, ST_ERR_REDIS, ST_DISP_RETRY,
                   "sessionizer: loading deadlines of partition %" PRId32 " failed", partition);
        return -1;
    }
    part_t *p = part_find(sz, partition);
    if (p) {
        part_free(p);
        *p = fresh;
        return 0;
    }
    if (sz->n_parts == sz->cap_parts) {
        size_t cap = sz->cap_parts ? sz->cap_parts * 2 : 8;
        part_t *parts = realloc(sz->parts, cap * sizeof *parts);
        if (!parts) {
            part_free(&fresh);
            st_err_set(err, ST_ERR_NOMEM, ST_DISP_FATAL, "sessionizer: out of memory");
            return -1;
        }
        sz->parts = parts;
        sz->cap_parts = cap;
    }
    sz->parts[sz->n_parts++] = fresh;
    return 0;
}

void st_sessionizer_revoke(st_sessionizer_t *sz, int32_t partition)
{
    part_t *p = part_find(sz, partition);
    if (!p)
        return;
    part_free(p);
    *p = sz->parts[--sz->n_parts];
}

/* Counts a listen (user hash h, time t, offset) in the partition clock c and moves its stream
 * time (see "Stream time" in st_sessionizer.h): users not seen for clock_recent offsets drop out;
 * the user's slot takes the time of its last listen; a new user takes a free slot, or replaces
 * the smallest time when its own is larger; stream time moves up to the smallest time held. */
static void clock_add(const st_sessionizer_config_t *cfg, st_sessionizer_clock_t *c, uint64_t h,
                      int64_t t, int64_t offset)
{
    uint32_t k = 0;
    for (uint32_t i = 0; i < c->n; i++)
        if (offset - c->slot[i].offset <= cfg->clock_recent)
            c->slot[k++] = c->slot[i];
    c->n = k;
    uint32_t quorum = cfg->clock_quorum < 1                          ? 1
                      : cfg->clock_quorum > ST_SESSIONIZER_CLOCK_MAX ? ST_SESSIONIZER_CLOCK_MAX
                                                                     : cfg->clock_quorum;
    st_sessionizer_clock_slot_t *own = NULL, *low = NULL;
    for (uint32_t i = 0; i < c->n; i++) {
        if (c->slot[i].user_hash == h)
            own = &c->slot[i];
        if (!low || c->slot[i].t_ms < low->t_ms)
            low = &c->slot[i];
    }
    if (own) {
        own->t_ms = t; /* the user's last listen: a stray time is forgotten at its next one */
        own->offset = offset;
    } else if (c->n < quorum) {
        c->slot[c->n++] = (st_sessionizer_clock_slot_t){h, t, offset};
    } else if (low && t > low->t_ms) {
        *low = (st_sessionizer_clock_slot_t){h, t, offset};
    }
    int64_t min = INT64_MAX;
    for (uint32_t i = 0; i < c->n; i++)
        if (c->slot[i].t_ms < min)
            min = c->slot[i].t_ms;
    if (c->n > 0 && (!c->has_time || min > c->stream_time_ms)) {
        c->stream_time_ms = min;
        c->has_time = true;
    }
}

void st_sessionizer_clock_format(const st_sessionizer_clock_t *c, char *buf, size_t size)
{
    if (size == 0)
        return;
    buf[0] = '\0';
    if (!c->has_time)
        return;
    size_t n = (size_t)snprintf(buf, size, "%" PRId64, c->stream_time_ms);
    for (uint32_t i = 0; i < c->n && n < size; i++)
        n += (size_t)snprintf(buf + n, size - n, ",%016" PRIx64 "/%" PRId64 "/%" PRId64,
                              c->slot[i].user_hash, c->slot[i].t_ms, c->slot[i].offset);
}

int st_sessionizer_clock_parse(const char *s, size_t len, st_sessionizer_clock_t *out)
{
    char tmp[ST_SESSIONIZER_CLOCK_TEXT_MAX];
    memset(out, 0, sizeof *out);
    if (len == 0)
        return 0;
    if (len >= sizeof tmp)
        return -1;
    memcpy(tmp, s, len);
    tmp[len] = '\0';
    char *end;
    long long t = strtoll(tmp, &end, 10);
    if (end == tmp)
        return -1;
    out->has_time = true;
    out->stream_time_ms = t;
    while (*end == ',') {
        if (out->n == ST_SESSIONIZER_CLOCK_MAX)
            return -1;
        unsigned long long h;
        long long st, so;
        int used = -1;
        if (sscanf(end + 1, "%16llx/%lld/%lld%n", &h, &st, &so, &used) != 3 || used < 0)
            return -1;
        out->slot[out->n++] = (st_sessionizer_clock_slot_t){h, st, so};
        end += 1 + used;
    }
    if (*end != '\0' || !clock_valid(out))
        return -1;
    return 0;
}

int st_sessionizer_push(st_sessionizer_t *sz, const st_sessionizer_record_t *rec, st_err_t *err)
{
    if (sz->pending) {
        st_err_set(err, ST_ERR_INTERNAL, ST_DISP_FATAL,
                   "sessionizer: push between prepare and finish");
        return -1;
    }
    if (rec->offset < 0 || rec->offset > ST_SZ_OFFSET_MAX) {
        sz->stats.invalid++;
        st_err_set(err, ST_ERR_INVALID, ST_DISP_PERMANENT,
                   "sessionizer: partition %" PRId32 " offset %" PRId64 " out of range",
                   rec->partition, rec->offset);
        return -1;
    }
    part_t *p = part_find(sz, rec->partition);
    if (!p) {
        if (st_sessionizer_assign(sz, rec->partition, false, 0, err) != 0)
            return -1;
        p = part_find(sz, rec->partition);
    }
    if (p->has_next && rec->offset < p->next_offset) {
        sz->stats.invalid++;
        st_err_set(err, ST_ERR_INVALID, ST_DISP_PERMANENT,
                   "sessionizer: partition %" PRId32 " offset %" PRId64
                   " not above the previous one (%" PRId64 "); revoke and assign to seek back",
                   rec->partition, rec->offset, p->next_offset - 1);
        return -1;
    }
    const char *why = NULL;
    if (!rec->user_id || rec->user_id_len == 0 || rec->user_id_len > ST_SESSION_USER_ID_MAX)
        why = "user id empty or longer than the limit";
    else if (memchr(rec->user_id, '\0', rec->user_id_len))
        why = "user id holds a NUL byte";
    else if (rec->listened_at_ms < -ST_SZ_TIME_ABS_MAX || rec->listened_at_ms > ST_SZ_TIME_ABS_MAX)
        why = "listened_at out of range";
    else if (rec->duration_ms > ST_SZ_DURATION_MAX_MS)
        why = "duration out of range";
    if (why) {
        /* The caller sends it to the DLQ; the commit point may pass it. */
        p->has_next = true;
        p->next_offset = rec->offset + 1;
        sz->stats.invalid++;
        st_err_set(err, ST_ERR_INVALID, ST_DISP_PERMANENT,
                   "sessionizer: partition %" PRId32 " offset %" PRId64 ": %s", rec->partition,
                   rec->offset, why);
        return -1;
    }
    int64_t wm;
    if (part_watermark(sz, p, &wm) && rec->listened_at_ms < wm) {
        p->has_next = true;
        p->next_offset = rec->offset + 1;
        sz->stats.late++;
        return ST_SESSIONIZER_LATE;
    }
    st_sessionizer_clock_t before = p->clock;
    clock_add(&sz->config, &p->clock, st_hash64(rec->user_id, rec->user_id_len, 0),
              rec->listened_at_ms, rec->offset);
    if (sz->config.ahead_max_ms > 0 &&
        rec->listened_at_ms - p->clock.stream_time_ms > sz->config.ahead_max_ms) {
        p->has_next = true;
        p->next_offset = rec->offset + 1;
        sz->stats.ahead++;
        return ST_SESSIONIZER_AHEAD;
    }
    if (p->heap_n == p->heap_cap) {
        size_t cap = p->heap_cap ? p->heap_cap * 2 : 256;
        st_sz_brec_t *heap = realloc(p->heap, cap * sizeof *heap);
        if (!heap)
            goto nomem;
        p->heap = heap;
        p->heap_cap = cap;
    }
    if (p->oq_head > 0 && p->oq_len == p->oq_cap) {
        memmove(p->oq, p->oq + p->oq_head, (p->oq_len - p->oq_head) * sizeof *p->oq);
        p->oq_base_seq += p->oq_head;
        p->oq_len -= p->oq_head;
        p->oq_head = 0;
    }
    if (p->oq_len == p->oq_cap) {
        size_t cap = p->oq_cap ? p->oq_cap * 2 : 256;
        oq_t *oq = realloc(p->oq, cap * sizeof *oq);
        if (!oq)
            goto nomem;
        p->oq = oq;
        p->oq_cap = cap;
    }
    st_sz_brec_t r = {rec->listened_at_ms,
                      rec->identity_hash,
                      rec->offset,
                      rec->duration_ms > 0 ? rec->duration_ms : 0,
                      p->oq_base_seq + p->oq_len,
                      p->generation,
                      rec->partition,
                      (uint32_t)rec->user_id_len,
                      st_sz_dup_bytes(rec->user_id, rec->user_id_len)};
    if (!r.user)
        goto nomem;
    if (sz->config.announce && pend_add(p, &r) != 0) {
        free(r.user);
        goto nomem;
    }
    p->oq[p->oq_len++] = (oq_t){rec->offset, before, OQ_BUFFERED};
    rheap_push(p, &r);
    p->has_next = true;
    p->next_offset = rec->offset + 1;
    sz->stats.pushed++;
    return ST_SESSIONIZER_BUFFERED;
nomem:
    p->clock = before;
    st_err_set(err, ST_ERR_NOMEM, ST_DISP_FATAL, "sessionizer: out of memory");
    return -1;
}

void st_sessionizer_advance_time(st_sessionizer_t *sz, int32_t partition, int64_t now_ms)
{
    if (now_ms < -ST_SZ_TIME_ABS_MAX || now_ms > ST_SZ_TIME_ABS_MAX)
        return;
    for (size_t i = 0; i < sz->n_parts; i++) {
        part_t *p = &sz->parts[i];
        if (partition >= 0 && p->id != partition)
            continue;
        if (!p->clock.has_time || now_ms > p->clock.stream_time_ms)
            p->clock.stream_time_ms = now_ms;
        p->clock.has_time = true;
    }
}

int st_sessionizer_stream_time(const st_sessionizer_t *sz, int32_t partition, int64_t *out)
{
    const part_t *p = part_find(sz, partition);
    if (!p || !p->clock.has_time)
        return -1;
    *out = p->clock.stream_time_ms;
    return 0;
}
/* Finds or adds the work item of a user; NULL on ENOMEM. works has room (reserved). */
static st_sz_work_t *work_get(st_sessionizer_t *sz, const char *user, size_t len, const part_t *p,
                              bool flush)
{
    uint64_t h = st_sz_key_hash(user, len);
    st_sz_work_t *w = (st_sz_work_t *)st_sz_map_get(&sz->work_map, user, len, h);
    if (w)
        return w;
    w = &sz->works[sz->n_works];
    memset(w, 0, sizeof *w);
    if (!(w->key.s = st_sz_dup_bytes(user, len)))
        return NULL;
    w->key.len = len;
    w->key.hash = h;
    w->partition = p->id;
    w->flush = flush;
    w->has_wm = part_watermark(sz, p, &w->wm_ms);
    w->view_seen = p->has_next ? p->next_offset - 1 : -1;
    w->first_rec = w->last_rec = SIZE_MAX;
    if (st_sz_map_put(&sz->work_map, &w->key) != 0) {
        free(w->key.s);
        return NULL;
    }
    sz->n_works++;
    return w;
}

int st_sessionizer_prepare(st_sessionizer_t *sz, bool flush_all, st_err_t *err)
{
    if (sz->pending) {
        st_err_set(err, ST_ERR_INTERNAL, ST_DISP_FATAL,
                   "sessionizer: prepare before the previous batch finished");
        return -1;
    }
    sz->n_events = 0;
    sz->n_writes = 0;
    sz->n_stale = 0;
    /* Release: move due records into the batch and collect the passed deadlines. */
    sz->n_due = 0;
    for (size_t pi = 0; pi < sz->n_parts; pi++) {
        part_t *p = &sz->parts[pi];
        int64_t wm = 0;
        bool has_wm = part_watermark(sz, p, &wm);
        while (p->heap_n > 0 && (flush_all || (has_wm && p->heap[0].t_ms < wm))) {
            if (st_sz_grow((void **)&sz->recs, &sz->cap_recs, sz->n_recs + 1, sizeof *sz->recs) !=
                0)
                goto nomem;
            st_sz_brec_t r = rheap_pop(p);
            p->oq[r.seq - p->oq_base_seq].state = OQ_INFLIGHT;
            if (sz->config.announce)
                pend_remove(p, &r);
            sz->recs[sz->n_recs++] = r;
        }
        size_t before = sz->n_due;
        if ((flush_all || has_wm) && st_sz_dl_collect(&p->deadlines, 0, flush_all, wm, &sz->due,
                                                      &sz->n_due, &sz->cap_due) != 0)
            goto nomem;
        if (sz->n_due > before) {
            size_t *dp = realloc(sz->due_part, sz->cap_due * sizeof *dp);
            if (!dp)
                goto nomem;
            sz->due_part = dp;
            for (size_t k = before; k < sz->n_due; k++)
                dp[k] = pi;
        }
    }
    sz->pending = true;
    if (sz->n_recs > 0) {
        size_t *next = realloc(sz->rec_next, sz->n_recs * sizeof *next);
        if (!next)
            goto nomem;
        sz->rec_next = next;
    }
    size_t n_dirty = 0;
    for (size_t pi = 0; pi < sz->n_parts; pi++)
        n_dirty += sz->parts[pi].n_dirty;
    /* Reserve first: st_sz_work_t addresses must stay stable while the map points at them. */
    if (st_sz_grow((void **)&sz->works, &sz->cap_works, sz->n_recs + sz->n_due + n_dirty,
                   sizeof *sz->works) != 0)
        goto nomem;
    for (size_t i = 0; i < sz->n_recs; i++) {
        st_sz_brec_t *r = &sz->recs[i];
        st_sz_work_t *w =
            work_get(sz, r->user, r->user_len, part_find(sz, r->partition), flush_all);
        if (!w)
            goto nomem;
        sz->rec_next[i] = SIZE_MAX;
        if (w->last_rec == SIZE_MAX)
            w->first_rec = i;
        else
            sz->rec_next[w->last_rec] = i;
        w->last_rec = i;
    }
    /* Users whose deadline passed: their state decides (the index may be stale). */
    for (size_t k = 0; k < sz->n_due; k++) {
        const st_sz_dl_t *d = sz->due[k];
        st_sz_work_t *w =
            work_get(sz, d->key.s, d->key.len, &sz->parts[sz->due_part[k]], flush_all);
        if (!w)
            goto nomem;
        w->due = true;
        w->due_ms = d->deadline_ms;
    }
    /* Users with new records: their speculative view changed (early OPENED). */
    for (size_t pi = 0; pi < sz->n_parts; pi++) {
        part_t *p = &sz->parts[pi];
        for (size_t k = 0; k < p->n_dirty; k++)
            if (!work_get(sz, p->dirty[k]->key.s, p->dirty[k]->key.len, p, flush_all))
                goto nomem;
    }
    /* Read the states of every touched user in one store call. */
    if (sz->n_works > sz->cap_per_work) {
        size_t cap = sz->cap_per_work ? sz->cap_per_work : 64;
        while (cap < sz->n_works)
            cap *= 2;
        st_sessionizer_user_t *users = realloc(sz->users, cap * sizeof *users);
        if (!users)
            goto nomem;
        sz->users = users;
        st_sessionizer_write_t *writes = realloc(sz->writes, cap * sizeof *writes);
        if (!writes)
            goto nomem;
        sz->writes = writes;
        st_sessionizer_stale_t *stale = realloc(sz->stale, cap * sizeof *stale);
        if (!stale)
            goto nomem;
        sz->stale = stale;
        st_buf_t *blobs = realloc(sz->blobs, cap * sizeof *blobs);
        if (!blobs)
            goto nomem;
        for (size_t i = sz->cap_per_work; i < cap; i++)
            blobs[i] = (st_buf_t)ST_BUF_INIT;
        sz->blobs = blobs;
        sz->cap_per_work = cap;
    }
    for (size_t i = 0; i < sz->n_works; i++) {
        sz->users[i] = (st_sessionizer_user_t){sz->works[i].key.s, sz->works[i].key.len};
        st_buf_reset(&sz->blobs[i]);
    }
    if (sz->n_works > 0 &&
        sz->store->get_states(sz->store->ctx, sz->users, sz->n_works, sz->blobs, err) != 0) {
        st_err_set(err, ST_ERR_REDIS, ST_DISP_RETRY, "sessionizer: reading %zu states failed",
                   sz->n_works);
        goto abandon;
    }
    for (size_t i = 0; i < sz->n_works; i++) {
        st_sz_work_t *w = &sz->works[i];
        st_sessionizer_state_t st;
        memset(&st, 0, sizeof st);
        if (sz->blobs[i].len > 0) {
            st_err_t derr = {0};
            if (st_sessionizer_state_decode(sz->blobs[i].data, sz->blobs[i].len, &st, &derr) != 0) {
                char q[ST_SESSION_USER_ID_MAX + 8];
                sz->stats.corrupt_states++;
                st_log_error("session_state_corrupt", "user=%s error=\"%s\"",
                             st_log_quote(w->key.s, q, sizeof q), derr.text);
            }
        }
        bool changed, ann_changed;
        part_t *p = part_find(sz, w->partition);
        if (st_sz_apply_work(sz, w, &st, &changed) != 0 ||
            st_sz_apply_view(
                sz, w,
                (const st_sz_pend_t *)st_sz_map_get(&p->pend, w->key.s, w->key.len, w->key.hash),
                &st, &ann_changed) != 0)
            goto nomem;
        changed |= ann_changed;
        int rc = st.open.active ? st_sz_dl_set(&p->deadlines, w->key.s, w->key.len,
                                               st_session_deadline_ms(&sz->config.rule, &st.open))
                                : (st_sz_dl_remove(&p->deadlines, w->key.s, w->key.len), 0);
        if (rc != 0)
            goto nomem;
        if (!changed && w->due && !st.open.active) {
            /* A deadline with nothing to close and nothing to write: the stored entry is one a
             * refused write left (sz_store.c); it goes unless someone has set another since. */
            sz->stale[sz->n_stale++] =
                (st_sessionizer_stale_t){sz->users[i], w->partition, w->due_ms};
            sz->stats.stale_deadlines++;
        }
        if (!changed)
            continue;
        st_buf_t *blob = &sz->blobs[i]; /* the read blob is no longer needed */
        st_buf_reset(blob);
        if (st_sessionizer_state_encode(&st, blob) != 0)
            goto nomem;
        st_sessionizer_write_t *wr = &sz->writes[sz->n_writes++];
        memset(wr, 0, sizeof *wr);
        wr->user = sz->users[i];
        wr->partition = w->partition;
        st_sessionizer_pos_format(&st.pos, wr->pos_text, sizeof wr->pos_text);
        wr->blob = blob->data;
        wr->blob_len = blob->len;
        wr->has_deadline = st.open.active;
        wr->deadline_ms = st.open.active ? st_session_deadline_ms(&sz->config.rule, &st.open) : 0;
    }
    for (size_t pi = 0; pi < sz->n_parts; pi++)
        pend_clear_dirty(&sz->parts[pi]);
    return 0;
nomem:
    st_err_set(err, ST_ERR_NOMEM, ST_DISP_FATAL, "sessionizer: out of memory");
abandon:
    /* Put the released records back so nothing is lost if the caller retries after assign. */
    for (size_t i = 0; i < sz->n_recs; i++) {
        part_t *p = part_find(sz, sz->recs[i].partition);
        if (p && p->generation == sz->recs[i].generation && p->heap_n < p->heap_cap) {
            p->oq[sz->recs[i].seq - p->oq_base_seq].state = OQ_BUFFERED;
            /* Without memory for it the user's view lacks the record until it is released. */
            if (sz->config.announce)
                (void)pend_add(p, &sz->recs[i]);
            rheap_push(p, &sz->recs[i]);
            sz->recs[i].user = NULL;
        }
    }
    batch_release_records(sz);
    sz->n_events = 0;
    sz->n_writes = 0;
    sz->n_stale = 0;
    return -1;
}

const st_session_event_t *st_sessionizer_events(const st_sessionizer_t *sz, size_t *n)
{
    *n = sz->n_events;
    return sz->events;
}

const st_sessionizer_write_t *st_sessionizer_writes(const st_sessionizer_t *sz, size_t *n)
{
    *n = sz->n_writes;
    return sz->writes;
}

/* Advances a partition's commit point over the records that are done. */
static void oq_advance(part_t *p)
{
    while (p->oq_head < p->oq_len && p->oq[p->oq_head].state == OQ_DONE)
        p->oq_head++;
    if (p->oq_head == p->oq_len) {
        p->oq_base_seq += p->oq_len;
        p->oq_head = p->oq_len = 0;
    }
}

int st_sessionizer_finish(st_sessionizer_t *sz, st_err_t *err)
{
    if (!sz->pending)
        return 0;
    if (sz->n_writes > 0 &&
        sz->store->put_states(sz->store->ctx, sz->writes, sz->n_writes, err) != 0) {
        st_err_set(err, ST_ERR_REDIS, ST_DISP_RETRY, "sessionizer: writing %zu states failed",
                   sz->n_writes);
        return -1;
    }
    /* After the writes, like round 3 of put_states; a crash before it leaves the entries, which
     * fire again after the replay and are dropped then. A cleanup, so a failure does not fail
     * the batch: the entries stay, harmless, as before this existed (a Redis user without
     * +zscore would otherwise stop the sessionizer). Logged at the first failure and every
     * 1000th after. */
    st_err_t derr = {0};
    if (sz->n_stale > 0 && sz->store->drop_deadlines &&
        sz->store->drop_deadlines(sz->store->ctx, sz->stale, sz->n_stale, &derr) != 0 &&
        sz->stats.stale_drop_failures++ % 1000 == 0) {
        char q[sizeof derr.text + 8];
        st_log_warn("stale_deadlines_kept", "count=%zu failures=%" PRIu64 " error=%s", sz->n_stale,
                    sz->stats.stale_drop_failures, st_log_quote(derr.text, q, sizeof q));
    }
    for (size_t i = 0; i < sz->n_recs; i++) {
        const st_sz_brec_t *r = &sz->recs[i];
        part_t *p = part_find(sz, r->partition);
        /* A partition revoked or re-assigned meanwhile starts a new queue: leave it alone. */
        if (p && p->generation == r->generation)
            p->oq[r->seq - p->oq_base_seq].state = OQ_DONE;
    }
    for (size_t i = 0; i < sz->n_parts; i++)
        oq_advance(&sz->parts[i]);
    batch_release_records(sz);
    return 0;
}

int64_t st_sessionizer_lowest_unreleased_offset(const st_sessionizer_t *sz, int32_t partition)
{
    const part_t *p = part_find(sz, partition);
    if (!p || !p->has_next)
        return -1;
    for (size_t i = p->oq_head; i < p->oq_len; i++)
        if (p->oq[i].state != OQ_DONE)
            return p->oq[i].offset;
    return p->next_offset;
}

int st_sessionizer_commit_clock(const st_sessionizer_t *sz, int32_t partition, int64_t *offset,
                                st_sessionizer_clock_t *clock)
{
    const part_t *p = part_find(sz, partition);
    if (!p || !p->has_next)
        return -1;
    for (size_t i = p->oq_head; i < p->oq_len; i++) {
        if (p->oq[i].state != OQ_DONE) {
            *offset = p->oq[i].offset;
            *clock = p->oq[i].before;
            return 0;
        }
    }
    *offset = p->next_offset;
    *clock = p->clock;
    return 0;
}

int st_sessionizer_commit_point(const st_sessionizer_t *sz, int32_t partition, int64_t *offset,
                                int64_t *stream_time_ms, bool *has_stream_time)
{
    st_sessionizer_clock_t c;
    if (st_sessionizer_commit_clock(sz, partition, offset, &c) != 0)
        return -1;
    *stream_time_ms = c.stream_time_ms;
    *has_stream_time = c.has_time;
    return 0;
}

void st_sessionizer_stats(const st_sessionizer_t *sz, st_sessionizer_stats_t *out)
{
    *out = sz->stats;
    out->buffered = 0;
    out->open_sessions = 0;
    for (size_t i = 0; i < sz->n_parts; i++) {
        out->buffered += sz->parts[i].heap_n;
        out->open_sessions += sz->parts[i].deadlines.n;
    }
}
