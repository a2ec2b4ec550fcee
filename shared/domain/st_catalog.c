/* st_catalog.c - tracks.jsonl reader, the rule for duplicated keys and the track key -> duration
 * map. */
#include "st_catalog.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "st_buf.h"
#include "st_log.h"

struct st_catalog_reader {
    FILE *fp;
    char *path;
    char *line;
    size_t line_cap;
    char key[ST_CATALOG_LINE_MAX + 2]; /* the current entry's track key */
    st_catalog_stats_t stats;
};

st_catalog_reader_t *st_catalog_reader_open(const char *path, char *errstr, size_t errstr_size)
{
    st_catalog_reader_t *r = calloc(1, sizeof *r);
    if (!r || !(r->path = strdup(path))) {
        free(r);
        st_errstr(errstr, errstr_size, "catalog: out of memory");
        return NULL;
    }
    r->fp = fopen(path, "rb");
    if (!r->fp) {
        st_errstr(errstr, errstr_size, "catalog: cannot open %s: %s", path, strerror(errno));
        free(r->path);
        free(r);
        return NULL;
    }
    return r;
}

static void bad_line(st_catalog_reader_t *r, const char *why)
{
    if (r->stats.bad < ST_CATALOG_BAD_LISTED)
        r->stats.bad_line_no[r->stats.bad] = r->stats.lines;
    r->stats.bad++;
    if (r->stats.bad <= ST_CATALOG_BAD_LISTED) {
        char q[300], w[300];
        st_log_warn("catalog_bad_line", "file=%s line=%llu reason=%s",
                    st_log_quote(r->path, q, sizeof q), (unsigned long long)r->stats.lines,
                    st_log_quote(why, w, sizeof w));
    }
}

static bool blank(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
            return false;
    return true;
}

int st_catalog_reader_next(st_catalog_reader_t *r, st_catalog_entry_t *out, st_err_t *err)
{
    for (;;) {
        errno = 0;
        ssize_t n = getline(&r->line, &r->line_cap, r->fp);
        if (n < 0) {
            if (ferror(r->fp)) {
                st_err_set(err, ST_ERR_IO, ST_DISP_PERMANENT, "catalog: reading %s: %s", r->path,
                           strerror(errno ? errno : EIO));
                return -1;
            }
            return 0;
        }
        r->stats.lines++;
        size_t len = (size_t)n;
        if (blank(r->line, len)) {
            r->stats.blank++;
            continue;
        }
        if (len > ST_CATALOG_LINE_MAX) {
            bad_line(r, "line too long");
            continue;
        }
        char why[256];
        memset(out, 0, sizeof *out);
        int key_len = st_trackmeta_parse_catalog_line(r->line, len, r->key, sizeof r->key,
                                                      &out->meta, why, sizeof why);
        if (key_len < 0) {
            bad_line(r, why);
            continue;
        }
        out->key = r->key;
        out->key_len = (size_t)key_len;
        out->line_no = r->stats.lines;
        r->stats.good++;
        return 1;
    }
}

const st_catalog_stats_t *st_catalog_reader_stats(const st_catalog_reader_t *r)
{
    return &r->stats;
}

void st_catalog_reader_destroy(st_catalog_reader_t *r)
{
    if (!r)
        return;
    if (r->fp)
        fclose(r->fp);
    free(r->line);
    free(r->path);
    free(r);
}

/* Open addressing over slots that index into an arena of keys. */
typedef struct {
    uint64_t hash;
    size_t key_off; /* into keys */
    uint32_t key_len;
    uint32_t lines; /* entries offered for the key (saturates) */
    int64_t duration_ms;
    bool used;
} slot_t;

struct st_catalog {
    slot_t *slots;
    size_t cap; /* power of two or 0 */
    size_t n;
    uint64_t duplicates, duplicate_keys;
    st_buf_t keys;
};

st_catalog_t *st_catalog_new(void)
{
    return calloc(1, sizeof(st_catalog_t));
}

static slot_t *find_slot(const st_catalog_t *c, const char *key, size_t len, uint64_t h)
{
    size_t mask = c->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        slot_t *s = &c->slots[i];
        if (!s->used ||
            (s->hash == h && s->key_len == len && memcmp(c->keys.data + s->key_off, key, len) == 0))
            return s;
    }
}

bool st_catalog_later_wins(int64_t kept_ms, int64_t later_ms)
{
    return kept_ms <= 0 && later_ms > 0;
}

int st_catalog_offer(st_catalog_t *c, const char *key, size_t key_len, int64_t duration_ms)
{
    if (key_len > UINT32_MAX)
        return -1;
    if (duration_ms < 0)
        duration_ms = 0;
    if ((c->n + 1) * 4 > c->cap * 3) {
        size_t cap = c->cap ? c->cap * 2 : 1024;
        slot_t *slots = calloc(cap, sizeof *slots);
        if (!slots)
            return -1;
        st_catalog_t grown = *c;
        grown.slots = slots;
        grown.cap = cap;
        for (size_t i = 0; i < c->cap; i++)
            if (c->slots[i].used)
                *find_slot(&grown, c->keys.data + c->slots[i].key_off, c->slots[i].key_len,
                           c->slots[i].hash) = c->slots[i];
        free(c->slots);
        c->slots = slots;
        c->cap = cap;
    }
    uint64_t h = st_hash64(key, key_len, 0);
    slot_t *s = find_slot(c, key, key_len, h);
    if (s->used) {
        c->duplicates++;
        if (s->lines == 1)
            c->duplicate_keys++;
        if (s->lines < UINT32_MAX)
            s->lines++;
        if (!st_catalog_later_wins(s->duration_ms, duration_ms))
            return ST_CATALOG_KEPT;
        s->duration_ms = duration_ms;
        return ST_CATALOG_REPLACED;
    }
    size_t off = c->keys.len;
    if (st_buf_append(&c->keys, key, key_len) != 0)
        return -1;
    *s = (slot_t){h, off, (uint32_t)key_len, 1, duration_ms, true};
    c->n++;
    return ST_CATALOG_ADDED;
}

bool st_catalog_lookup_key(const st_catalog_t *c, const char *key, size_t key_len,
                           int64_t *duration_ms)
{
    if (!c || c->cap == 0)
        return false;
    const slot_t *s = find_slot(c, key, key_len, st_hash64(key, key_len, 0));
    if (!s->used)
        return false;
    *duration_ms = s->duration_ms;
    return true;
}

bool st_catalog_lookup(const st_catalog_t *c, const char *artist, size_t artist_len,
                       const char *track, size_t track_len, int64_t *duration_ms)
{
    char stack[1024];
    char *key = stack;
    size_t size = artist_len + track_len + 2;
    if (size > sizeof stack && !(key = malloc(size)))
        return false;
    int n = st_trackmeta_key(artist, artist_len, track, track_len, key, size);
    bool found = n >= 0 && st_catalog_lookup_key(c, key, (size_t)n, duration_ms);
    if (key != stack)
        free(key);
    return found;
}

st_catalog_t *st_catalog_load(const char *path, st_catalog_stats_t *stats, char *errstr,
                              size_t errstr_size)
{
    st_catalog_reader_t *r = st_catalog_reader_open(path, errstr, errstr_size);
    if (!r)
        return NULL;
    st_catalog_t *c = st_catalog_new();
    st_catalog_entry_t e;
    st_err_t err = {0};
    int rc = 0;
    while (c && (rc = st_catalog_reader_next(r, &e, &err)) == 1) {
        if (st_catalog_offer(c, e.key, e.key_len, e.meta.duration_ms) < 0)
            goto nomem;
    }
    if (!c)
        goto nomem;
    if (rc < 0) {
        st_errstr(errstr, errstr_size, "%s", err.text);
        goto fail;
    }
    if (stats)
        *stats = *st_catalog_reader_stats(r);
    st_catalog_reader_destroy(r);
    return c;
nomem:
    st_errstr(errstr, errstr_size, "catalog: out of memory loading %s", path);
fail:
    st_catalog_reader_destroy(r);
    st_catalog_destroy(c);
    return NULL;
}

size_t st_catalog_size(const st_catalog_t *c)
{
    return c->n;
}

uint64_t st_catalog_duplicates(const st_catalog_t *c)
{
    return c->duplicates;
}

uint64_t st_catalog_duplicate_keys(const st_catalog_t *c)
{
    return c->duplicate_keys;
}

void st_catalog_destroy(st_catalog_t *c)
{
    if (!c)
        return;
    free(c->slots);
    st_buf_free(&c->keys);
    free(c);
}
