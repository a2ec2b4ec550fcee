/* st_sessionizer.c - streaming sessionizer core: reorder buffer, deadline index, per-user state
 * serialisation, the batch apply step, the Redis write script and the in-memory state store. */
#include "st_sessionizer.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "st_log.h"

/* Bounds that keep every sum below 2^53 (exact in Lua numbers and zset scores). */
#define TIME_ABS_MAX     (INT64_C(1) << 50)
#define DURATION_MAX_MS  (INT64_C(1) << 40)
#define OFFSET_MAX       (INT64_C(1) << 52)
#define STATE_VERSION    2 /* 2: + seen, history details, announcements; 1 is still read */
#define FLAG_HAS_POS     1
#define FLAG_POS_CLOSED  2
#define FLAG_OPEN_ACTIVE 4

const char st_sessionizer_lua_put[] =
    "local function pos(s)\n"
    "  local t, hh, hl, o, c, v = string.match(s, '^(%-?%d+) (%d+) (%d+) (%-?%d+) (%d) "
    "?(%-?%d*)$')\n"
    "  if not t then return nil end\n"
    "  return {tonumber(t), tonumber(hh), tonumber(hl), tonumber(o), tonumber(c), tonumber(v) or "
    "-1}\n"
    "end\n"
    "local new = pos(ARGV[1])\n"
    "if not new then return redis.error_reply('st_sessionizer: bad position') end\n"
    "local cur = redis.call('HGET', KEYS[1], 'p')\n"
    "if cur then\n"
    "  local old = pos(cur)\n"
    "  if old then\n"
    "    local above = false\n"
    "    for i = 1, 6 do\n"
    "      if new[i] > old[i] then above = true break end\n"
    "      if new[i] < old[i] then return 0 end\n"
    "    end\n"
    "    if not above then return 0 end\n"
    "  end\n"
    "end\n"
    "redis.call('HSET', KEYS[1], 'p', ARGV[1], 's', ARGV[2])\n"
    "if ARGV[4] == '' then\n"
    "  redis.call('ZREM', KEYS[2], ARGV[3])\n"
    "else\n"
    "  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3])\n"
    "end\n"
    "return 1\n";

void st_sessionizer_config_default(st_sessionizer_config_t *config)
{
    memset(config, 0, sizeof *config);
    st_session_rule_default(&config->rule);
    config->grace_ms = ST_SESSIONIZER_GRACE_MS_DEFAULT;
    config->recent_n = ST_SESSION_RECENT_DEFAULT;
}

int st_sessionizer_state_key(const char *prefix, const char *user_id, size_t user_id_len,
                             st_buf_t *out)
{
    if (st_buf_append_str(out, prefix ? prefix : "") != 0 || st_buf_append_str(out, "u:{") != 0 ||
        st_buf_append(out, user_id, user_id_len) != 0 || st_buf_append_str(out, "}:sess") != 0)
        return -1;
    return 0;
}

int st_sessionizer_deadline_key(const char *prefix, int32_t partition, st_buf_t *out)
{
    return st_buf_printf(out, "%sdl:{p%" PRId32 "}", prefix ? prefix : "", partition) < 0 ? -1 : 0;
}

int st_sessionizer_pos_cmp(const st_sessionizer_pos_t *a, const st_sessionizer_pos_t *b)
{
    if (a->listened_at_ms != b->listened_at_ms)
        return a->listened_at_ms < b->listened_at_ms ? -1 : 1;
    if (a->identity_hash != b->identity_hash)
        return a->identity_hash < b->identity_hash ? -1 : 1;
    if (a->offset != b->offset)
        return a->offset < b->offset ? -1 : 1;
    if (a->closed != b->closed)
        return a->closed < b->closed ? -1 : 1;
    if (a->seen != b->seen)
        return a->seen < b->seen ? -1 : 1;
    return 0;
}

void st_sessionizer_pos_format(const st_sessionizer_pos_t *pos, char *buf, size_t size)
{
    snprintf(buf, size, "%" PRId64 " %" PRIu32 " %" PRIu32 " %" PRId64 " %u %" PRId64,
             pos->listened_at_ms, (uint32_t)(pos->identity_hash >> 32),
             (uint32_t)(pos->identity_hash & 0xffffffffu), pos->offset, (unsigned)pos->closed,
             pos->seen);
}

int st_sessionizer_pos_parse(const char *s, st_sessionizer_pos_t *out)
{
    long long t, off, seen = -1;
    unsigned long hi, lo;
    unsigned closed;
    int used = -1, used6 = -1;
    if (sscanf(s, "%lld %lu %lu %lld %u%n", &t, &hi, &lo, &off, &closed, &used) != 5 || used < 0 ||
        hi > 0xffffffffUL || lo > 0xffffffffUL || closed > 1)
        return -1;
    if (s[used] != '\0' &&
        (sscanf(s + used, " %lld%n", &seen, &used6) != 1 || used6 < 0 || s[used + used6] != '\0'))
        return -1;
    out->seen = seen;
    out->listened_at_ms = t;
    out->identity_hash = ((uint64_t)hi << 32) | lo;
    out->offset = off;
    out->closed = (uint8_t)closed;
    return 0;
}

static uint64_t zigzag(int64_t v)
{
    return v < 0 ? ~((uint64_t)v << 1) : (uint64_t)v << 1;
}

static int64_t unzigzag(uint64_t u)
{
    return (u & 1) ? -(int64_t)(u >> 1) - 1 : (int64_t)(u >> 1);
}

static int put_uv(st_buf_t *b, uint64_t v)
{
    uint8_t tmp[10];
    size_t n = 0;
    do {
        uint8_t c = v & 0x7f;
        v >>= 7;
        if (v)
            c |= 0x80;
        tmp[n++] = c;
    } while (v);
    return st_buf_append(b, tmp, n);
}

static int put_zz(st_buf_t *b, int64_t v)
{
    return put_uv(b, zigzag(v));
}

static int put_u64(st_buf_t *b, uint64_t v)
{
    uint8_t tmp[8];
    for (int i = 0; i < 8; i++)
        tmp[i] = (uint8_t)(v >> (8 * i));
    return st_buf_append(b, tmp, 8);
}

typedef struct {
    const uint8_t *p;
    const uint8_t *end;
    bool bad;
} reader_t;

static uint64_t get_uv(reader_t *r)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 64 && r->p < r->end; shift += 7) {
        uint8_t c = *r->p++;
        v |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80))
            return v;
    }
    r->bad = true;
    return 0;
}

static int64_t get_zz(reader_t *r)
{
    return unzigzag(get_uv(r));
}

/* The decoder takes only times and lengths the sessionizer can have written (push bounds times to
 * +-TIME_ABS_MAX and durations to DURATION_MAX_MS): anything else is a corrupt state, and the
 * arithmetic on it (deadlines, lengths, gaps, sums) could overflow. */
#define LENGTH_ABS_MAX (INT64_C(1) << 52) /* > 2 * TIME_ABS_MAX + DURATION_MAX_MS */
#define SUM_ABS_MAX    (INT64_C(1) << 62) /* far above any real sum; leaves room to add lengths */

static int64_t get_zz_in(reader_t *r, int64_t lo, int64_t hi)
{
    int64_t v = get_zz(r);
    if (v < lo || v > hi)
        r->bad = true;
    return v;
}

static uint64_t get_u64(reader_t *r)
{
    if (r->end - r->p < 8) {
        r->bad = true;
        return 0;
    }
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)r->p[i] << (8 * i);
    r->p += 8;
    return v;
}

int st_sessionizer_state_encode(const st_sessionizer_state_t *st, st_buf_t *out)
{
    uint8_t head[2] = {STATE_VERSION, 0};
    if (st->has_pos)
        head[1] |= FLAG_HAS_POS;
    if (st->has_pos && st->pos.closed)
        head[1] |= FLAG_POS_CLOSED;
    if (st->open.active)
        head[1] |= FLAG_OPEN_ACTIVE;
    int rc = st_buf_append(out, head, 2);
    if (st->has_pos) {
        rc |= put_zz(out, st->pos.listened_at_ms);
        rc |= put_u64(out, st->pos.identity_hash);
        rc |= put_zz(out, st->pos.offset);
    }
    if (st->open.active) {
        const st_session_open_t *o = &st->open;
        rc |= put_zz(out, o->first_start_ms);
        rc |= put_zz(out, o->last_start_ms - o->first_start_ms);
        rc |= put_zz(out, o->last_duration_ms);
        rc |= put_u64(out, o->last_identity_hash);
        rc |= put_uv(out, o->track_count);
        rc |= put_uv(out, o->unknown_duration_count);
    }
    const st_session_history_t *h = &st->history;
    rc |= put_uv(out, h->session_count);
    rc |= put_zz(out, h->sum_length_ms);
    rc |= put_zz(out, h->last_end_ms);
    rc |= put_zz(out, h->last_length_ms);
    uint32_t n = h->n_recent > ST_SESSION_RECENT_MAX ? ST_SESSION_RECENT_MAX : h->n_recent;
    rc |= put_uv(out, n);
    for (uint32_t i = 0; i < n; i++)
        rc |= put_zz(out, h->recent_length_ms[i]);
    /* Version 2 additions. */
    if (st->has_pos)
        rc |= put_zz(out, st->pos.seen);
    uint32_t nd = h->n_detail < n ? h->n_detail : n;
    rc |= put_uv(out, nd);
    for (uint32_t i = n - nd; i < n; i++) {
        rc |= put_zz(out, h->recent_start_ms[i]);
        rc |= put_uv(out, h->recent_track_count[i]);
        rc |= put_uv(out, h->recent_unknown_count[i]);
    }
    uint32_t na = st->n_ann < ST_SESSIONIZER_ANN_MAX ? st->n_ann : ST_SESSIONIZER_ANN_MAX;
    rc |= put_uv(out, na);
    for (uint32_t i = 0; i < na; i++) {
        rc |= put_zz(out, st->ann[i].start_ms);
        rc |= put_u64(out, st->ann[i].features_hash);
        rc |= put_uv(out, st->ann[i].revision);
        rc |= put_zz(out, st->ann[i].offset);
    }
    return rc ? -1 : 0;
}

int st_sessionizer_state_decode(const void *data, size_t len, st_sessionizer_state_t *out,
                                st_err_t *err)
{
    memset(out, 0, sizeof *out);
    reader_t r = {data, (const uint8_t *)data + len, false};
    if (len < 2 || r.p[0] < 1 || r.p[0] > STATE_VERSION || (r.p[1] & ~7) != 0) {
        st_err_set(err, ST_ERR_INVALID, ST_DISP_PERMANENT,
                   "session state: bad header (%zu bytes, version %d)", len,
                   len ? (int)r.p[0] : -1);
        return -1;
    }
    uint8_t version = r.p[0], flags = r.p[1];
    r.p += 2;
    st_sessionizer_state_t st;
    memset(&st, 0, sizeof st);
    if (flags & FLAG_HAS_POS) {
        st.has_pos = true;
        st.pos.listened_at_ms = get_zz(&r);
        st.pos.identity_hash = get_u64(&r);
        st.pos.offset = get_zz(&r);
        st.pos.closed = (flags & FLAG_POS_CLOSED) ? 1 : 0;
        st.pos.seen = -1;
    }
    if (flags & FLAG_OPEN_ACTIVE) {
        st_session_open_t *o = &st.open;
        o->active = true;
        o->first_start_ms = get_zz_in(&r, -TIME_ABS_MAX, TIME_ABS_MAX);
        /* last start as an offset from the first: a sum out of range is corrupt, not UB */
        if (__builtin_add_overflow(o->first_start_ms, get_zz(&r), &o->last_start_ms) ||
            o->last_start_ms < -TIME_ABS_MAX || o->last_start_ms > TIME_ABS_MAX)
            r.bad = true;
        o->last_duration_ms = get_zz_in(&r, 0, DURATION_MAX_MS);
        o->last_identity_hash = get_u64(&r);
        uint64_t tc = get_uv(&r), uc = get_uv(&r);
        if (tc == 0 || tc > UINT32_MAX || uc > tc)
            r.bad = true;
        o->track_count = (uint32_t)tc;
        o->unknown_duration_count = (uint32_t)uc;
    }
    st_session_history_t *h = &st.history;
    uint64_t sc = get_uv(&r);
    if (sc > UINT32_MAX)
        r.bad = true;
    h->session_count = (uint32_t)sc;
    h->sum_length_ms = get_zz_in(&r, -SUM_ABS_MAX, SUM_ABS_MAX);
    h->last_end_ms = get_zz_in(&r, -TIME_ABS_MAX - DURATION_MAX_MS, TIME_ABS_MAX + DURATION_MAX_MS);
    h->last_length_ms = get_zz_in(&r, -LENGTH_ABS_MAX, LENGTH_ABS_MAX);
    uint64_t n = get_uv(&r);
    if (n > ST_SESSION_RECENT_MAX || n > sc)
        r.bad = true;
    for (uint64_t i = 0; !r.bad && i < n; i++)
        h->recent_length_ms[i] = get_zz_in(&r, -LENGTH_ABS_MAX, LENGTH_ABS_MAX);
    h->n_recent = r.bad ? 0 : (uint32_t)n;
    if (version >= 2 && !r.bad) {
        if (st.has_pos)
            st.pos.seen = get_zz(&r);
        uint64_t nd = get_uv(&r);
        if (nd > h->n_recent)
            r.bad = true;
        for (uint64_t i = h->n_recent - (r.bad ? 0 : nd); !r.bad && i < h->n_recent; i++) {
            h->recent_start_ms[i] = get_zz_in(&r, -TIME_ABS_MAX, TIME_ABS_MAX);
            uint64_t tc = get_uv(&r), uc = get_uv(&r);
            if (tc > UINT32_MAX || uc > tc)
                r.bad = true;
            h->recent_track_count[i] = (uint32_t)tc;
            h->recent_unknown_count[i] = (uint32_t)uc;
        }
        h->n_detail = r.bad ? 0 : (uint32_t)nd;
        uint64_t na = get_uv(&r);
        if (na > ST_SESSIONIZER_ANN_MAX)
            r.bad = true;
        for (uint64_t i = 0; !r.bad && i < na; i++) {
            st.ann[i].start_ms = get_zz_in(&r, -TIME_ABS_MAX, TIME_ABS_MAX);
            st.ann[i].features_hash = get_u64(&r);
            uint64_t rev = get_uv(&r);
            if (rev > UINT32_MAX)
                r.bad = true;
            st.ann[i].revision = (uint32_t)rev;
            st.ann[i].offset = get_zz_in(&r, -1, OFFSET_MAX);
        }
        st.n_ann = r.bad ? 0 : (uint32_t)na;
    }
    if (r.bad || r.p != r.end) {
        st_err_set(err, ST_ERR_INVALID, ST_DISP_PERMANENT, "session state: %s (%zu bytes)",
                   r.bad ? "truncated or out of range" : "trailing bytes", len);
        return -1;
    }
    *out = st;
    return 0;
}

/* A string-keyed open-addressing map of pointers to structs that start with skey_t. */
typedef struct {
    char *s; /* owned by the struct that embeds the key */
    size_t len;
    uint64_t hash;
} skey_t;

typedef struct {
    skey_t **slots;
    size_t cap; /* power of two or 0 */
    size_t n;
} smap_t;

static skey_t **smap_slot(const smap_t *m, const char *s, size_t len, uint64_t hash)
{
    size_t mask = m->cap - 1;
    for (size_t i = hash & mask;; i = (i + 1) & mask) {
        skey_t *k = m->slots[i];
        if (!k || (k->hash == hash && k->len == len && memcmp(k->s, s, len) == 0))
            return &m->slots[i];
    }
}

static skey_t *smap_get(const smap_t *m, const char *s, size_t len, uint64_t hash)
{
    return m->cap ? *smap_slot(m, s, len, hash) : NULL;
}

/* Inserts k (absent). 0 or -1 (ENOMEM). */
static int smap_put(smap_t *m, skey_t *k)
{
    if ((m->n + 1) * 4 > m->cap * 3) {
        size_t cap = m->cap ? m->cap * 2 : 64;
        skey_t **slots = calloc(cap, sizeof *slots);
        if (!slots)
            return -1;
        smap_t grown = {slots, cap, 0};
        for (size_t i = 0; i < m->cap; i++)
            if (m->slots[i])
                *smap_slot(&grown, m->slots[i]->s, m->slots[i]->len, m->slots[i]->hash) =
                    m->slots[i];
        free(m->slots);
        m->slots = slots;
        m->cap = cap;
    }
    *smap_slot(m, k->s, k->len, k->hash) = k;
    m->n++;
    return 0;
}

/* Removes k (present) with backward-shift deletion, so no tombstones accumulate. */
static void smap_del(smap_t *m, const skey_t *k)
{
    size_t mask = m->cap - 1;
    size_t i = (size_t)(smap_slot(m, k->s, k->len, k->hash) - m->slots);
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

static void smap_clear(smap_t *m)
{
    if (m->cap)
        memset(m->slots, 0, m->cap * sizeof *m->slots);
    m->n = 0;
}

static void smap_free(smap_t *m)
{
    free(m->slots);
    memset(m, 0, sizeof *m);
}

static uint64_t key_hash(const char *s, size_t len)
{
    return st_hash64(s, len, 0);
}

static char *dup_bytes(const char *s, size_t len)
{
    char *p = malloc(len + 1);
    if (p) {
        memcpy(p, s, len);
        p[len] = '\0';
    }
    return p;
}

/* A tracked deadline: one per user with an open session, in a map and an indexed min-heap. */
typedef struct {
    skey_t key;
    int64_t deadline_ms;
    size_t heap_pos;
} dl_t;

typedef struct {
    smap_t map;
    dl_t **heap;
    size_t n, cap;
} dlindex_t;

static void dl_swap(dlindex_t *x, size_t a, size_t b)
{
    dl_t *t = x->heap[a];
    x->heap[a] = x->heap[b];
    x->heap[b] = t;
    x->heap[a]->heap_pos = a;
    x->heap[b]->heap_pos = b;
}

static void dl_sift(dlindex_t *x, size_t i)
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

static int dl_set(dlindex_t *x, const char *user, size_t len, int64_t deadline_ms)
{
    uint64_t h = key_hash(user, len);
    dl_t *d = (dl_t *)smap_get(&x->map, user, len, h);
    if (d) {
        d->deadline_ms = deadline_ms;
        dl_sift(x, d->heap_pos);
        return 0;
    }
    if (x->n == x->cap) {
        size_t cap = x->cap ? x->cap * 2 : 64;
        dl_t **heap = realloc(x->heap, cap * sizeof *heap);
        if (!heap)
            return -1;
        x->heap = heap;
        x->cap = cap;
    }
    d = calloc(1, sizeof *d);
    if (!d || !(d->key.s = dup_bytes(user, len))) {
        free(d);
        return -1;
    }
    d->key.len = len;
    d->key.hash = h;
    d->deadline_ms = deadline_ms;
    if (smap_put(&x->map, &d->key) != 0) {
        free(d->key.s);
        free(d);
        return -1;
    }
    d->heap_pos = x->n;
    x->heap[x->n++] = d;
    dl_sift(x, d->heap_pos);
    return 0;
}

static void dl_remove_entry(dlindex_t *x, dl_t *d)
{
    size_t i = d->heap_pos;
    x->n--;
    if (i != x->n) {
        x->heap[i] = x->heap[x->n];
        x->heap[i]->heap_pos = i;
        dl_sift(x, i);
    }
    smap_del(&x->map, &d->key);
    free(d->key.s);
    free(d);
}

static void dl_remove(dlindex_t *x, const char *user, size_t len)
{
    dl_t *d = (dl_t *)smap_get(&x->map, user, len, key_hash(user, len));
    if (d)
        dl_remove_entry(x, d);
}

/* Appends every entry with a deadline below wm (all when flush) to *out, visiting only the part
 * of the heap that qualifies: a node at or above wm has no qualifying descendant. */
static int dl_collect(const dlindex_t *x, size_t i, bool flush, int64_t wm, dl_t ***out, size_t *n,
                      size_t *cap)
{
    if (i >= x->n || (!flush && x->heap[i]->deadline_ms >= wm))
        return 0;
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 64;
        dl_t **o = realloc(*out, c * sizeof *o);
        if (!o)
            return -1;
        *out = o;
        *cap = c;
    }
    (*out)[(*n)++] = x->heap[i];
    if (dl_collect(x, 2 * i + 1, flush, wm, out, n, cap) != 0)
        return -1;
    return dl_collect(x, 2 * i + 2, flush, wm, out, n, cap);
}

static void dl_free(dlindex_t *x)
{
    for (size_t i = 0; i < x->n; i++) {
        free(x->heap[i]->key.s);
        free(x->heap[i]);
    }
    free(x->heap);
    smap_free(&x->map);
    memset(x, 0, sizeof *x);
}

/* A buffered record (owns its user id). */
typedef struct {
    int64_t t_ms;
    uint64_t identity_hash;
    int64_t offset;
    int64_t duration_ms;
    uint64_t seq; /* position in the partition's offset queue */
    uint64_t generation;
    int32_t partition;
    uint32_t user_len;
    char *user;
} brec_t;

enum { OQ_BUFFERED = 0, OQ_INFLIGHT = 1, OQ_DONE = 2 };

/* The offsets of a partition's accepted records in arrival (= offset) order, with the stream
 * time just before each, so the commit point is the first one not done. */
typedef struct {
    int64_t offset;
    int64_t stream_before_ms;
    bool has_before;
    uint8_t state;
} oq_t;

/* A user's buffered records in (t, identity, offset) order, for the speculative view of early
 * OPENED (config.announce only). */
typedef struct {
    int64_t t_ms;
    uint64_t identity_hash;
    int64_t offset;
    int64_t duration_ms;
} prec_t;

typedef struct {
    skey_t key;
    prec_t *v;
    uint32_t n, cap;
    bool dirty; /* in the partition's dirty list: records pushed since the last prepare */
} pend_t;

typedef struct {
    int32_t id;
    uint64_t generation;
    bool has_time;
    int64_t stream_time_ms;
    bool has_next;
    int64_t next_offset;
    brec_t *heap; /* reorder buffer, min-heap by (t, identity, offset) */
    size_t heap_n, heap_cap;
    oq_t *oq;
    size_t oq_head, oq_len, oq_cap;
    uint64_t oq_base_seq; /* seq of oq[0] */
    dlindex_t deadlines;
    smap_t pend; /* user -> pend_t */
    pend_t **dirty;
    size_t n_dirty, cap_dirty;
} part_t;

/* A user touched by the current batch. */
typedef struct {
    skey_t key;
    int32_t partition;
    bool has_wm;
    int64_t wm_ms; /* watermark of the partition at prepare */
    bool flush;
    int64_t view_seen;          /* highest offset pushed on the partition at prepare, -1 if none */
    size_t first_rec, last_rec; /* chain through batch rec_next; SIZE_MAX when none */
} work_t;

/* A session of a user's speculative view (early OPENED). */
typedef struct {
    int64_t start_ms, last_start_ms, offset;
    st_session_features_t features;
    uint64_t hash;
    int ann; /* index into the new announcement list, -1 when not announced */
    bool emit;
    uint32_t n_retract;
    int64_t retract[ST_SESSION_RETRACT_MAX];
} view_t;

struct st_sessionizer {
    st_sessionizer_config_t config;
    st_sessionizer_store_t *store;
    part_t *parts;
    size_t n_parts, cap_parts;
    uint64_t next_generation;
    st_sessionizer_stats_t stats;

    bool pending; /* prepared, not finished */
    brec_t *recs;
    size_t *rec_next;
    size_t n_recs, cap_recs;
    work_t *works;
    size_t n_works, cap_works;
    smap_t work_map;
    st_sessionizer_user_t *users;
    st_buf_t *blobs; /* read blobs, then new blobs, one per work */
    st_sessionizer_write_t *writes;
    size_t cap_per_work; /* capacity of users, blobs and writes */
    size_t n_writes;
    dl_t **due; /* deadlines passed at prepare, and the index of their partition */
    size_t *due_part;
    size_t n_due, cap_due;
    st_session_event_t *events;
    size_t n_events, cap_events;
    view_t views[ST_SESSIONIZER_ANN_MAX];
};

static int brec_less(const brec_t *a, const brec_t *b)
{
    if (a->t_ms != b->t_ms)
        return a->t_ms < b->t_ms;
    if (a->identity_hash != b->identity_hash)
        return a->identity_hash < b->identity_hash;
    return a->offset < b->offset;
}

static void rheap_push(part_t *p, const brec_t *r)
{
    size_t i = p->heap_n++;
    p->heap[i] = *r;
    while (i > 0 && brec_less(&p->heap[i], &p->heap[(i - 1) / 2])) {
        brec_t t = p->heap[i];
        p->heap[i] = p->heap[(i - 1) / 2];
        p->heap[(i - 1) / 2] = t;
        i = (i - 1) / 2;
    }
}

static brec_t rheap_pop(part_t *p)
{
    brec_t top = p->heap[0];
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
        brec_t t = p->heap[i];
        p->heap[i] = p->heap[m];
        p->heap[m] = t;
        i = m;
    }
    return top;
}

static int grow_pend(pend_t *e)
{
    uint32_t cap = e->cap ? e->cap * 2 : 4;
    prec_t *v = realloc(e->v, cap * sizeof *v);
    if (!v)
        return -1;
    e->v = v;
    e->cap = cap;
    return 0;
}

static int grow_dirty(part_t *p)
{
    size_t cap = p->cap_dirty ? p->cap_dirty * 2 : 64;
    pend_t **d = realloc(p->dirty, cap * sizeof *d);
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
    dl_free(&p->deadlines);
    for (size_t i = 0; i < p->pend.cap; i++) {
        pend_t *e = (pend_t *)p->pend.slots[i];
        if (e) {
            free(e->key.s);
            free(e->v);
            free(e);
        }
    }
    smap_free(&p->pend);
    free(p->dirty);
    memset(p, 0, sizeof *p);
}

static int prec_cmp(const prec_t *a, const brec_t *b)
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
static int pend_add(part_t *p, const brec_t *r)
{
    uint64_t h = key_hash(r->user, r->user_len);
    pend_t *e = (pend_t *)smap_get(&p->pend, r->user, r->user_len, h);
    if (!e) {
        e = calloc(1, sizeof *e);
        if (!e || !(e->key.s = dup_bytes(r->user, r->user_len))) {
            free(e);
            return -1;
        }
        e->key.len = r->user_len;
        e->key.hash = h;
        if (smap_put(&p->pend, &e->key) != 0) {
            free(e->key.s);
            free(e);
            return -1;
        }
    }
    if ((e->n == e->cap && grow_pend(e) != 0) ||
        (!e->dirty && p->n_dirty == p->cap_dirty && grow_dirty(p) != 0)) {
        if (e->n == 0 && !e->dirty) {
            smap_del(&p->pend, &e->key);
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
    e->v[i] = (prec_t){r->t_ms, r->identity_hash, r->offset, r->duration_ms};
    e->n++;
    if (!e->dirty) {
        e->dirty = true;
        p->dirty[p->n_dirty++] = e;
    }
    return 0;
}

static void pend_drop_if_empty(part_t *p, pend_t *e)
{
    if (e->n > 0 || e->dirty)
        return;
    smap_del(&p->pend, &e->key);
    free(e->key.s);
    free(e->v);
    free(e);
}

/* Removes a released record from its user's pending list (a user's records are released in
 * their order, so it is the first one). */
static void pend_remove(part_t *p, const brec_t *r)
{
    pend_t *e = (pend_t *)smap_get(&p->pend, r->user, r->user_len, key_hash(r->user, r->user_len));
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
    if (!p->has_time)
        return false;
    *wm = p->stream_time_ms - sz->config.grace_ms;
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
    if (config->rule.gap_ms < 0 || config->rule.gap_ms > DURATION_MAX_MS) {
        st_errstr(errstr, errstr_size, "sessionizer: gap_ms %" PRId64 " out of range 0..%" PRId64,
                  config->rule.gap_ms, DURATION_MAX_MS);
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
    smap_clear(&sz->work_map);
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
    smap_free(&sz->work_map);
    free(sz->users);
    for (size_t i = 0; i < sz->cap_per_work; i++)
        st_buf_free(&sz->blobs[i]);
    free(sz->blobs);
    free(sz->events);
    free(sz->writes);
    free(sz->due);
    free(sz->due_part);
    free(sz);
}

static int load_deadline_cb(void *arg, const char *user, size_t len, int64_t deadline_ms)
{
    return dl_set(arg, user, len, deadline_ms);
}

int st_sessionizer_assign(st_sessionizer_t *sz, int32_t partition, bool has_stream_time,
                          int64_t stream_time_ms, st_err_t *err)
{
    if (has_stream_time && (stream_time_ms < -TIME_ABS_MAX || stream_time_ms > TIME_ABS_MAX)) {
        st_err_set(err, ST_ERR_INVALID, ST_DISP_PERMANENT,
                   "sessionizer: stream time %" PRId64 " out of range", stream_time_ms);
        return -1;
    }
    part_t fresh;
    memset(&fresh, 0, sizeof fresh);
    fresh.id = partition;
    fresh.generation = sz->next_generation++;
    fresh.has_time = has_stream_time;
    fresh.stream_time_ms = has_stream_time ? stream_time_ms : 0;
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

int st_sessionizer_push(st_sessionizer_t *sz, const st_sessionizer_record_t *rec, st_err_t *err)
{
    if (sz->pending) {
        st_err_set(err, ST_ERR_INTERNAL, ST_DISP_FATAL,
                   "sessionizer: push between prepare and finish");
        return -1;
    }
    if (rec->offset < 0 || rec->offset > OFFSET_MAX) {
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
    else if (rec->listened_at_ms < -TIME_ABS_MAX || rec->listened_at_ms > TIME_ABS_MAX)
        why = "listened_at out of range";
    else if (rec->duration_ms > DURATION_MAX_MS)
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
    if (p->heap_n == p->heap_cap) {
        size_t cap = p->heap_cap ? p->heap_cap * 2 : 256;
        brec_t *heap = realloc(p->heap, cap * sizeof *heap);
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
    brec_t r = {rec->listened_at_ms,
                rec->identity_hash,
                rec->offset,
                rec->duration_ms > 0 ? rec->duration_ms : 0,
                p->oq_base_seq + p->oq_len,
                p->generation,
                rec->partition,
                (uint32_t)rec->user_id_len,
                dup_bytes(rec->user_id, rec->user_id_len)};
    if (!r.user)
        goto nomem;
    if (sz->config.announce && pend_add(p, &r) != 0) {
        free(r.user);
        goto nomem;
    }
    p->oq[p->oq_len++] = (oq_t){rec->offset, p->stream_time_ms, p->has_time, OQ_BUFFERED};
    rheap_push(p, &r);
    if (!p->has_time || rec->listened_at_ms > p->stream_time_ms)
        p->stream_time_ms = rec->listened_at_ms;
    p->has_time = true;
    p->has_next = true;
    p->next_offset = rec->offset + 1;
    sz->stats.pushed++;
    return ST_SESSIONIZER_BUFFERED;
nomem:
    st_err_set(err, ST_ERR_NOMEM, ST_DISP_FATAL, "sessionizer: out of memory");
    return -1;
}

void st_sessionizer_advance_time(st_sessionizer_t *sz, int32_t partition, int64_t now_ms)
{
    if (now_ms < -TIME_ABS_MAX || now_ms > TIME_ABS_MAX)
        return;
    for (size_t i = 0; i < sz->n_parts; i++) {
        part_t *p = &sz->parts[i];
        if (partition >= 0 && p->id != partition)
            continue;
        if (!p->has_time || now_ms > p->stream_time_ms)
            p->stream_time_ms = now_ms;
        p->has_time = true;
    }
}

int st_sessionizer_stream_time(const st_sessionizer_t *sz, int32_t partition, int64_t *out)
{
    const part_t *p = part_find(sz, partition);
    if (!p || !p->has_time)
        return -1;
    *out = p->stream_time_ms;
    return 0;
}

static int grow(void **arr, size_t *cap, size_t need, size_t elem)
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

/* Finds or adds the work item of a user; NULL on ENOMEM. works has room (reserved). */
static work_t *work_get(st_sessionizer_t *sz, const char *user, size_t len, const part_t *p,
                        bool flush)
{
    uint64_t h = key_hash(user, len);
    work_t *w = (work_t *)smap_get(&sz->work_map, user, len, h);
    if (w)
        return w;
    w = &sz->works[sz->n_works];
    memset(w, 0, sizeof *w);
    if (!(w->key.s = dup_bytes(user, len)))
        return NULL;
    w->key.len = len;
    w->key.hash = h;
    w->partition = p->id;
    w->flush = flush;
    w->has_wm = part_watermark(sz, p, &w->wm_ms);
    w->view_seen = p->has_next ? p->next_offset - 1 : -1;
    w->first_rec = w->last_rec = SIZE_MAX;
    if (smap_put(&sz->work_map, &w->key) != 0) {
        free(w->key.s);
        return NULL;
    }
    sz->n_works++;
    return w;
}

static st_session_event_t *event_add(st_sessionizer_t *sz, st_session_event_kind_t kind,
                                     const work_t *w, int64_t start_ms, uint32_t session_index)
{
    if (grow((void **)&sz->events, &sz->cap_events, sz->n_events + 1, sizeof *sz->events) != 0)
        return NULL;
    st_session_event_t *e = &sz->events[sz->n_events++];
    memset(e, 0, sizeof *e);
    e->kind = kind;
    memcpy(e->user_id, w->key.s, w->key.len);
    st_session_id_format(w->key.s, w->key.len, start_ms, e->session_id, sizeof e->session_id);
    e->start_ms = start_ms;
    e->session_index = session_index;
    e->partition = w->partition;
    return e;
}

static uint64_t features_hash(const st_session_features_t *f)
{
    /* st_session_features zeroes the struct first, so padding and unused slots are zero. */
    return st_hash64(f, sizeof *f, 0x0bed);
}

/* A revision is a function of the input (how far past the session's first record the partition
 * had been read), not only a counter kept in the state: a crash between delivering an OPENED and
 * writing the state that counts it must not let the replay reuse its number with other features. */
static uint32_t rev_next(const st_sessionizer_ann_t *a, int64_t seen, int64_t start_offset)
{
    int64_t r = seen - start_offset;
    if (r > INT32_MAX - 1)
        r = INT32_MAX - 1;
    if (a && r <= (int64_t)a->revision)
        r = a->revision < INT32_MAX ? (int64_t)a->revision + 1 : INT32_MAX;
    return r < 0 ? 0 : (uint32_t)r;
}

static st_sessionizer_ann_t *ann_find(st_sessionizer_state_t *st, int64_t start_ms)
{
    for (uint32_t i = 0; i < st->n_ann; i++)
        if (st->ann[i].start_ms == start_ms)
            return &st->ann[i];
    return NULL;
}

/* Adds an announcement in start order; when full, the oldest one is forgotten (at worst the
 * session is announced again, with a higher revision, or a retraction is missed: the CLOSED that
 * covers it voids it). */
static void ann_insert(st_sessionizer_state_t *st, const st_sessionizer_ann_t *a)
{
    if (st->n_ann == ST_SESSIONIZER_ANN_MAX) {
        memmove(st->ann, st->ann + 1, (st->n_ann - 1) * sizeof st->ann[0]);
        st->n_ann--;
    }
    uint32_t i = st->n_ann;
    while (i > 0 && st->ann[i - 1].start_ms > a->start_ms)
        i--;
    memmove(st->ann + i + 1, st->ann + i, (st->n_ann - i) * sizeof st->ann[0]);
    st->ann[i] = *a;
    st->n_ann++;
}

/* resend: the session was announced before (a correction). */
static st_session_event_t *emit_opened(st_sessionizer_t *sz, const work_t *w,
                                       const st_session_features_t *f, uint32_t revision,
                                       bool resend)
{
    st_session_event_t *e =
        event_add(sz, ST_SESSION_EVENT_OPENED, w, f->start_ms, f->session_index);
    if (!e)
        return NULL;
    e->features = *f;
    e->revision = revision;
    sz->stats.opened++;
    if (resend)
        sz->stats.corrections++;
    return e;
}

/* The authoritative OPENED of the state's open session: not sent again when it was announced
 * with these features, re-sent with the next revision when the features differ. */
static int auth_opened(st_sessionizer_t *sz, const work_t *w, st_sessionizer_state_t *st,
                       int64_t offset)
{
    st_session_features_t f;
    st_session_features(&st->history, st->open.first_start_ms, &f);
    uint32_t revision = 0;
    bool resend = false;
    if (sz->config.announce) {
        uint64_t h = features_hash(&f);
        st_sessionizer_ann_t *a = ann_find(st, f.start_ms);
        if (a && a->features_hash == h)
            return 0;
        revision = rev_next(a, w->view_seen, a ? a->offset : offset);
        if (a) {
            a->revision = revision;
            a->features_hash = h;
            resend = true;
        } else {
            ann_insert(st, &(st_sessionizer_ann_t){f.start_ms, h, revision, offset});
        }
    }
    return emit_opened(sz, w, &f, revision, resend) ? 0 : -1;
}

/* CLOSED of s; announcements at or before its last listen end here: its own is done, any other
 * is void, which the CLOSED itself says (consumers void every announcement of the user that
 * starts within [start_ms, last_start_ms] of a CLOSED). Nothing of them goes into the event: it
 * must stay a function of the input alone, and the announcements are not. */
static int emit_closed(st_sessionizer_t *sz, const work_t *w, st_sessionizer_state_t *st,
                       const st_session_summary_t *s)
{
    st_session_event_t *e =
        event_add(sz, ST_SESSION_EVENT_CLOSED, w, s->start_ms, st->history.session_count);
    if (!e)
        return -1;
    e->summary = *s;
    uint32_t keep = 0;
    for (uint32_t i = 0; i < st->n_ann; i++) {
        const st_sessionizer_ann_t *a = &st->ann[i];
        if (a->start_ms > s->last_start_ms)
            st->ann[keep++] = *a;
        else if (a->start_ms != s->start_ms)
            sz->stats.retractions++;
    }
    st->n_ann = keep;
    st_session_history_add(&st->history, s, sz->config.recent_n);
    sz->stats.closed++;
    return 0;
}

/* The position of a record, below any state position with the same record (closed, seen). */
static st_sessionizer_pos_t rec_pos(int64_t t_ms, uint64_t identity_hash, int64_t offset)
{
    return (st_sessionizer_pos_t){t_ms, identity_hash, offset, 0, INT64_MIN};
}

/* Applies one user's released records and a due deadline to its state. Sets *changed. */
static int apply_work(st_sessionizer_t *sz, const work_t *w, st_sessionizer_state_t *st,
                      bool *changed)
{
    const st_session_rule_t *rule = &sz->config.rule;
    *changed = false;
    for (size_t i = w->first_rec; i != SIZE_MAX; i = sz->rec_next[i]) {
        const brec_t *r = &sz->recs[i];
        st_sessionizer_pos_t pos = rec_pos(r->t_ms, r->identity_hash, r->offset);
        sz->stats.released++;
        if (st->has_pos && st_sessionizer_pos_cmp(&pos, &st->pos) <= 0) {
            sz->stats.replay_skips++;
            continue;
        }
        st_session_listen_t l = {r->t_ms, r->duration_ms, r->identity_hash};
        st_session_summary_t closed;
        switch (st_session_step(rule, &st->open, &l, &closed)) {
        case ST_SESSION_STARTED:
            if (auth_opened(sz, w, st, r->offset) != 0)
                return -1;
            break;
        case ST_SESSION_SPLIT:
            if (emit_closed(sz, w, st, &closed) != 0 || auth_opened(sz, w, st, r->offset) != 0)
                return -1;
            break;
        case ST_SESSION_DUPLICATE:
            sz->stats.duplicates++;
            break;
        case ST_SESSION_CONTINUED:
            break;
        }
        pos.seen = st->has_pos ? st->pos.seen : -1;
        st->has_pos = true;
        st->pos = pos;
        sz->stats.applied++;
        *changed = true;
    }
    if (st->open.active &&
        (w->flush || (w->has_wm && st_session_deadline_ms(rule, &st->open) < w->wm_ms))) {
        st_session_summary_t closed;
        st_session_close(&st->open, &closed);
        if (emit_closed(sz, w, st, &closed) != 0)
            return -1;
        st->pos.closed = 1;
        sz->stats.idle_closed++;
        *changed = true;
    }
    return 0;
}

/* Index of the view holding start_ms (start <= t <= last start), else of the last view starting
 * at or before it, else 0. n > 0. */
static uint32_t view_for(const view_t *v, uint32_t n, int64_t t_ms)
{
    uint32_t best = 0;
    for (uint32_t i = 0; i < n; i++)
        if (v[i].start_ms <= t_ms)
            best = i;
    return best;
}

/* Early OPENED: the user's speculative view (state + buffered records) against the stored
 * announcements; emits what differs and updates the announcements. Sets *changed when the state
 * must be written. */
static int apply_view(st_sessionizer_t *sz, const work_t *w, const pend_t *pend,
                      st_sessionizer_state_t *st, bool *changed)
{
    *changed = false;
    if (!sz->config.announce || (st->has_pos && w->view_seen <= st->pos.seen))
        return 0; /* an older view than the stored one (a replay) decides nothing */
    view_t *v = sz->views;
    uint32_t nv = 0;
    st_session_open_t open = st->open;
    st_session_history_t hist = st->history;
    bool truncated = false;
    if (open.active) {
        v[0].start_ms = open.first_start_ms;
        v[0].last_start_ms = open.last_start_ms;
        v[0].offset = w->view_seen;
        st_session_features(&hist, open.first_start_ms, &v[0].features);
        nv = 1;
    }
    for (uint32_t i = 0; pend && i < pend->n; i++) {
        const prec_t *b = &pend->v[i];
        st_sessionizer_pos_t pos = rec_pos(b->t_ms, b->identity_hash, b->offset);
        if (st->has_pos && st_sessionizer_pos_cmp(&pos, &st->pos) <= 0)
            continue;
        st_session_listen_t l = {b->t_ms, b->duration_ms, b->identity_hash};
        st_session_summary_t closed;
        st_session_step_t step = st_session_step(&sz->config.rule, &open, &l, &closed);
        if (step == ST_SESSION_CONTINUED) {
            v[nv - 1].last_start_ms = b->t_ms;
            continue;
        }
        if (step == ST_SESSION_DUPLICATE)
            continue;
        if (step == ST_SESSION_SPLIT)
            st_session_history_add(&hist, &closed, sz->config.recent_n);
        if (nv == ST_SESSIONIZER_ANN_MAX) {
            truncated = true; /* announced once the earlier ones close */
            break;
        }
        v[nv].start_ms = v[nv].last_start_ms = b->t_ms;
        v[nv].offset = b->offset;
        st_session_features(&hist, b->t_ms, &v[nv].features);
        nv++;
    }
    for (uint32_t i = 0; i < nv; i++) {
        v[i].hash = features_hash(&v[i].features);
        v[i].ann = -1;
        v[i].emit = false;
        v[i].n_retract = 0;
    }
    /* Match the stored announcements with the view. */
    st_sessionizer_ann_t kept[ST_SESSIONIZER_ANN_MAX];
    uint32_t nk = 0;
    for (uint32_t k = 0; k < st->n_ann; k++) {
        const st_sessionizer_ann_t *a = &st->ann[k];
        uint32_t i = nv ? view_for(v, nv, a->start_ms) : 0;
        /* Beyond a truncated view nothing is known about it: neither confirmed nor retracted. */
        bool beyond = truncated && a->start_ms > v[nv - 1].start_ms;
        if (a->offset > w->view_seen || beyond ||
            (nv > 0 && v[i].start_ms == a->start_ms && v[i].ann < 0)) {
            if (nv > 0 && a->offset <= w->view_seen && !beyond) {
                v[i].ann = (int)nk;
                v[i].emit = a->features_hash != v[i].hash;
            }
            kept[nk++] = *a;
            continue;
        }
        *changed = true;
        sz->stats.retractions++;
        if (nv == 0) {
            char q[ST_SESSION_USER_ID_MAX + 8];
            st_log_warn("session_retraction_lost", "user=%s start_ms=%" PRId64,
                        st_log_quote(w->key.s, q, sizeof q), a->start_ms);
            continue;
        }
        if (v[i].n_retract < ST_SESSION_RETRACT_MAX)
            v[i].retract[v[i].n_retract++] = a->start_ms;
        v[i].emit = true;
    }
    /* Emit new and changed sessions in start order; the announcements follow the view. */
    st->n_ann = 0;
    for (uint32_t k = 0; k < nk; k++)
        ann_insert(st, &kept[k]);
    for (uint32_t i = 0; i < nv; i++) {
        uint32_t revision = 0;
        if (v[i].ann >= 0) {
            if (!v[i].emit)
                continue;
            st_sessionizer_ann_t *a = ann_find(st, v[i].start_ms);
            revision = rev_next(a, w->view_seen, a ? a->offset : v[i].offset);
            if (a) {
                a->revision = revision;
                a->features_hash = v[i].hash;
            }
        } else {
            revision = rev_next(NULL, w->view_seen, v[i].offset);
            ann_insert(st,
                       &(st_sessionizer_ann_t){v[i].start_ms, v[i].hash, revision, v[i].offset});
            sz->stats.announced++;
        }
        st_session_event_t *e = emit_opened(sz, w, &v[i].features, revision, v[i].ann >= 0);
        if (!e)
            return -1;
        e->n_retracted = v[i].n_retract;
        memcpy(e->retracted_start_ms, v[i].retract, v[i].n_retract * sizeof v[i].retract[0]);
        *changed = true;
    }
    if (*changed) {
        if (!st->has_pos) {
            st->has_pos = true;
            st->pos = rec_pos(ST_SESSIONIZER_POS_NONE_MS, 0, -1);
        }
        st->pos.seen = w->view_seen;
    }
    return 0;
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
    /* Release: move due records into the batch and collect the passed deadlines. */
    sz->n_due = 0;
    for (size_t pi = 0; pi < sz->n_parts; pi++) {
        part_t *p = &sz->parts[pi];
        int64_t wm = 0;
        bool has_wm = part_watermark(sz, p, &wm);
        while (p->heap_n > 0 && (flush_all || (has_wm && p->heap[0].t_ms < wm))) {
            if (grow((void **)&sz->recs, &sz->cap_recs, sz->n_recs + 1, sizeof *sz->recs) != 0)
                goto nomem;
            brec_t r = rheap_pop(p);
            p->oq[r.seq - p->oq_base_seq].state = OQ_INFLIGHT;
            if (sz->config.announce)
                pend_remove(p, &r);
            sz->recs[sz->n_recs++] = r;
        }
        size_t before = sz->n_due;
        if ((flush_all || has_wm) &&
            dl_collect(&p->deadlines, 0, flush_all, wm, &sz->due, &sz->n_due, &sz->cap_due) != 0)
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
    /* Reserve first: work_t addresses must stay stable while the map points at them. */
    if (grow((void **)&sz->works, &sz->cap_works, sz->n_recs + sz->n_due + n_dirty,
             sizeof *sz->works) != 0)
        goto nomem;
    for (size_t i = 0; i < sz->n_recs; i++) {
        brec_t *r = &sz->recs[i];
        work_t *w = work_get(sz, r->user, r->user_len, part_find(sz, r->partition), flush_all);
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
        const dl_t *d = sz->due[k];
        if (!work_get(sz, d->key.s, d->key.len, &sz->parts[sz->due_part[k]], flush_all))
            goto nomem;
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
        work_t *w = &sz->works[i];
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
        if (apply_work(sz, w, &st, &changed) != 0 ||
            apply_view(sz, w, (const pend_t *)smap_get(&p->pend, w->key.s, w->key.len, w->key.hash),
                       &st, &ann_changed) != 0)
            goto nomem;
        changed |= ann_changed;
        int rc = st.open.active ? dl_set(&p->deadlines, w->key.s, w->key.len,
                                         st_session_deadline_ms(&sz->config.rule, &st.open))
                                : (dl_remove(&p->deadlines, w->key.s, w->key.len), 0);
        if (rc != 0)
            goto nomem;
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
    for (size_t i = 0; i < sz->n_recs; i++) {
        const brec_t *r = &sz->recs[i];
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

int st_sessionizer_commit_point(const st_sessionizer_t *sz, int32_t partition, int64_t *offset,
                                int64_t *stream_time_ms, bool *has_stream_time)
{
    const part_t *p = part_find(sz, partition);
    if (!p || !p->has_next)
        return -1;
    for (size_t i = p->oq_head; i < p->oq_len; i++) {
        if (p->oq[i].state != OQ_DONE) {
            *offset = p->oq[i].offset;
            *stream_time_ms = p->oq[i].stream_before_ms;
            *has_stream_time = p->oq[i].has_before;
            return 0;
        }
    }
    *offset = p->next_offset;
    *stream_time_ms = p->stream_time_ms;
    *has_stream_time = p->has_time;
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

/* The in-memory store: one entry per user holding what the Redis hash and zset would. */
typedef struct {
    skey_t key;
    st_sessionizer_pos_t pos;
    st_buf_t blob;
    int32_t partition;
    bool has_deadline;
    int64_t deadline_ms;
} mem_entry_t;

typedef struct {
    st_sessionizer_store_t store;
    smap_t map;
    size_t n_deadlines; /* entries with a deadline: lets load_deadlines skip the scan when 0 */
    long fail_after;
} memstore_t;

static int mem_get(void *ctx, const st_sessionizer_user_t *users, size_t n, st_buf_t *out,
                   st_err_t *err)
{
    memstore_t *m = ctx;
    for (size_t i = 0; i < n; i++) {
        const mem_entry_t *e = (const mem_entry_t *)smap_get(&m->map, users[i].id, users[i].len,
                                                             key_hash(users[i].id, users[i].len));
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
        uint64_t h = key_hash(w->user.id, w->user.len);
        mem_entry_t *e = (mem_entry_t *)smap_get(&m->map, w->user.id, w->user.len, h);
        if (e && st_sessionizer_pos_cmp(&pos, &e->pos) <= 0)
            continue; /* the script's "stored position at or above": no change */
        if (!e) {
            e = calloc(1, sizeof *e);
            if (!e || !(e->key.s = dup_bytes(w->user.id, w->user.len))) {
                free(e);
                goto nomem;
            }
            e->key.len = w->user.len;
            e->key.hash = h;
            if (smap_put(&m->map, &e->key) != 0) {
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
    smap_free(&m->map);
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
        (const mem_entry_t *)smap_get(&m->map, user_id, len, key_hash(user_id, len));
    if (!e)
        return -1;
    return st_sessionizer_state_decode(e->blob.data, e->blob.len, out, NULL);
}
