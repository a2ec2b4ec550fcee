/* st_sessionizer_state.c - the stored form of a user's sessionizer state: the
 * compare-and-set write script (keys from st_rkey.h), the position text and the versioned state
 * blob codec. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "st_sessionizer.h"
#include "st_sessionizer_impl.h"

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
    "local cur = redis.call('GET', KEYS[1])\n"
    "local legacy = not cur\n"
    "if cur then\n"
    "  local nl = string.find(cur, '\\n', 1, true)\n"
    "  if nl then cur = string.sub(cur, 1, nl - 1) end\n"
    "else\n"
    "  cur = redis.call('HGET', KEYS[2], 'p')\n"
    "end\n"
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
    "redis.call('SET', KEYS[1], ARGV[1] .. '\\n' .. ARGV[2])\n"
    "if legacy then redis.call('DEL', KEYS[2]) end\n"
    "return 1\n";

/* ZSCORE answers the score as Redis formats a double; both sides as numbers (a deadline in ms
 * is an integer well below 2^53, exact in a double). */
const char st_sessionizer_lua_drop[] = "local cur = redis.call('ZSCORE', KEYS[1], ARGV[1])\n"
                                       "if cur and tonumber(cur) == tonumber(ARGV[2]) then\n"
                                       "  return redis.call('ZREM', KEYS[1], ARGV[1])\n"
                                       "end\n"
                                       "return 0\n";

size_t st_sessionizer_value_blob(const char *value, size_t len)
{
    const char *nl = memchr(value, '\n', len);
    return nl ? (size_t)(nl - value) + 1 : 0;
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
 * +-ST_SZ_TIME_ABS_MAX and durations to ST_SZ_DURATION_MAX_MS): anything else is a corrupt state,
 * and the arithmetic on it (deadlines, lengths, gaps, sums) could overflow. */
#define LENGTH_ABS_MAX (INT64_C(1) << 52) /* > 2 * ST_SZ_TIME_ABS_MAX + ST_SZ_DURATION_MAX_MS */
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
        o->first_start_ms = get_zz_in(&r, -ST_SZ_TIME_ABS_MAX, ST_SZ_TIME_ABS_MAX);
        /* last start as an offset from the first: a sum out of range is corrupt, not UB */
        if (__builtin_add_overflow(o->first_start_ms, get_zz(&r), &o->last_start_ms) ||
            o->last_start_ms < -ST_SZ_TIME_ABS_MAX || o->last_start_ms > ST_SZ_TIME_ABS_MAX)
            r.bad = true;
        o->last_duration_ms = get_zz_in(&r, 0, ST_SZ_DURATION_MAX_MS);
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
    h->last_end_ms = get_zz_in(&r, -ST_SZ_TIME_ABS_MAX - ST_SZ_DURATION_MAX_MS,
                               ST_SZ_TIME_ABS_MAX + ST_SZ_DURATION_MAX_MS);
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
            h->recent_start_ms[i] = get_zz_in(&r, -ST_SZ_TIME_ABS_MAX, ST_SZ_TIME_ABS_MAX);
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
            st.ann[i].start_ms = get_zz_in(&r, -ST_SZ_TIME_ABS_MAX, ST_SZ_TIME_ABS_MAX);
            st.ann[i].features_hash = get_u64(&r);
            uint64_t rev = get_uv(&r);
            if (rev > UINT32_MAX)
                r.bad = true;
            st.ann[i].revision = (uint32_t)rev;
            st.ann[i].offset = get_zz_in(&r, -1, ST_SZ_OFFSET_MAX);
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
