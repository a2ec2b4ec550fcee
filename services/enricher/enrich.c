/* enrich.c - the enricher's batch: LRU lookups, one Redis round for the misses, fetch requests,
 * EnrichedListen encoding in input order. */
#include "enrich.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "st_lifecycle.h"
#include "st_log.h"
#include "st_metrics.h"
#include "st_records.h"
#include "st_time.h"
#include "st_trackmeta.h"
#include "track_cache.h"

enum { REC_OUT, REC_MISS, REC_REJECTED };

/* One input record of the batch. */
typedef struct {
    int kind;
    size_t key_off, key_len;     /* user_id in the arena */
    size_t value_off, value_len; /* REC_OUT: the encoded EnrichedListen in the arena */
    size_t miss;                 /* REC_MISS: index into misses */
} rec_t;

/* One distinct track of the batch that the LRU did not hold. */
typedef struct {
    size_t key_off, key_len;       /* track_key in the arena */
    size_t artist_off, artist_len; /* lower-cased names for the fetcher */
    size_t track_off, track_len;
    uint64_t hash;
    size_t nrecords; /* records of the batch with this track */
    bool found;      /* meta holds a cache entry */
    st_trackmeta_t meta;
} miss_t;

struct enrich {
    enrich_config_t conf;
    char *out_topic;
    st_avro_codec_t *in_codec, *out_codec;
    track_cache_t *lru;
    rec_t *recs;
    size_t recs_cap;
    miss_t *misses;
    size_t nmisses, misses_cap;
    size_t *slots; /* open addressing over misses: index + 1, 0 = empty */
    /* One store round: the misses asked (indexes), their keys, and what the store answered. */
    size_t *ask, *lens, ask_cap;
    const char **keys, **why;
    st_trackmeta_t *metas;
    enrich_store_res_t *res;
    size_t slots_mask;
    st_buf_t arena; /* keys, names and encoded outputs of the batch */
    st_buf_t enc;
    st_metric_t *m_hit_lru, *m_hit_redis, *m_miss, *m_negative, *m_unfetchable;
    st_metric_t *m_source[ST_REC_SOURCE_COUNT];
    st_metric_t *m_enqueue[4];
    st_metric_t *m_lru_entries, *m_waits, *m_read_errors;
    uint64_t read_errors;
};

enrich_t *enrich_new(const enrich_config_t *conf, char *errstr, size_t errstr_size)
{
    enrich_t *e = calloc(1, sizeof *e);
    if (!e) {
        st_errstr(errstr, errstr_size, "out of memory");
        return NULL;
    }
    e->conf = *conf;
    e->out_topic = strdup(conf->out_topic);
    e->lru = track_cache_new(conf->lru_entries);
    if (!e->out_topic || !e->lru) {
        st_errstr(errstr, errstr_size, "out of memory");
        goto fail;
    }
    e->conf.out_topic = e->out_topic;
    e->in_codec = st_avro_codec_new(conf->registry, "Listen", NULL, errstr, errstr_size);
    if (!e->in_codec)
        goto fail;
    e->out_codec =
        st_avro_codec_new(conf->registry, "EnrichedListen", conf->out_topic, errstr, errstr_size);
    if (!e->out_codec)
        goto fail;

    e->m_hit_lru = st_metrics_counter("stint_enricher_cache_hits_total", "level=\"lru\"",
                                      "Records whose track the cache answered, by level.");
    e->m_hit_redis = st_metrics_counter("stint_enricher_cache_hits_total", "level=\"redis\"",
                                        "Records whose track the cache answered, by level.");
    e->m_miss = st_metrics_counter("stint_enricher_cache_misses_total", NULL,
                                   "Records whose track neither the LRU nor Redis knew.");
    e->m_negative =
        st_metrics_counter("stint_enricher_cache_negative_hits_total", NULL,
                           "Records answered by a negative entry (not found, try later).");
    e->m_unfetchable =
        st_metrics_counter("stint_enricher_unfetchable_total", NULL,
                           "Misses not fetched because the artist or track is empty.");
    for (int i = 0; i < 4; i++) {
        char labels[64];
        snprintf(labels, sizeof labels, "source=\"%s\"", st_rec_source_name((st_rec_source_t)i));
        e->m_source[i] = st_metrics_counter("stint_enricher_records_total", labels,
                                            "EnrichedListens produced, by metadata_source.");
        snprintf(labels, sizeof labels, "result=\"%s\"",
                 st_fetcher_enqueue_name((st_fetcher_enqueue_t)i));
        e->m_enqueue[i] = st_metrics_counter("stint_enricher_fetch_enqueue_total", labels,
                                             "Fetch requests for missed tracks, by outcome.");
    }
    e->m_lru_entries = st_metrics_gauge("stint_enricher_lru_entries", NULL, "Entries in the LRU.");
    e->m_read_errors = st_metrics_counter("stint_enricher_cache_read_errors_total", NULL,
                                          "Cache lookups answered with a permanent error "
                                          "(the track is reported UNKNOWN).");
    e->m_waits = st_metrics_counter("stint_enricher_wait_budget_waits_total", NULL,
                                    "Batches that waited (lastfm.wait_budget_ms) for fetches.");
    return e;
fail:
    enrich_destroy(e);
    return NULL;
}

void enrich_destroy(enrich_t *e)
{
    if (!e)
        return;
    st_avro_codec_destroy(e->in_codec);
    st_avro_codec_destroy(e->out_codec);
    track_cache_destroy(e->lru);
    free(e->recs);
    free(e->misses);
    free(e->slots);
    free(e->ask);
    free(e->lens);
    free(e->keys);
    free(e->why);
    free(e->metas);
    free(e->res);
    st_buf_free(&e->arena);
    st_buf_free(&e->enc);
    free(e->out_topic);
    free(e);
}

static int reserve(enrich_t *e, size_t n, st_err_t *err)
{
    if (n > e->recs_cap) {
        rec_t *r = realloc(e->recs, n * sizeof *r);
        if (!r)
            goto nomem;
        e->recs = r;
        e->recs_cap = n;
    }
    size_t nslots = 16;
    while (nslots < 2 * n)
        nslots *= 2;
    if (nslots - 1 != e->slots_mask || !e->slots) {
        free(e->slots);
        e->slots = malloc(nslots * sizeof *e->slots);
        if (!e->slots)
            goto nomem;
        e->slots_mask = nslots - 1;
    }
    memset(e->slots, 0, nslots * sizeof *e->slots);
    e->nmisses = 0;
    st_buf_reset(&e->arena);
    return 0;
nomem:
    st_err_nomem(err);
    return -1;
}

/* Appends bytes to the arena; returns their offset or (size_t)-1. */
static size_t arena_add(enrich_t *e, const void *data, size_t len)
{
    size_t off = e->arena.len;
    if (st_buf_append(&e->arena, data, len) != 0)
        return (size_t)-1;
    return off;
}

static size_t arena_add_lower(enrich_t *e, const char *s, size_t len)
{
    size_t off = e->arena.len;
    if (st_buf_reserve(&e->arena, len) != 0)
        return (size_t)-1;
    char *d = e->arena.data + off;
    for (size_t i = 0; i < len; i++)
        d[i] = (s[i] >= 'A' && s[i] <= 'Z') ? (char)(s[i] + ('a' - 'A')) : s[i];
    e->arena.len += len;
    e->arena.data[e->arena.len] = '\0';
    return off;
}

/* The miss entry of a track (created on first sight). Returns its index or (size_t)-1. */
static size_t miss_for(enrich_t *e, const st_rec_listen_t *listen, const char *key, size_t len,
                       uint64_t hash)
{
    size_t s = (size_t)hash & e->slots_mask;
    for (; e->slots[s]; s = (s + 1) & e->slots_mask) {
        miss_t *m = &e->misses[e->slots[s] - 1];
        if (m->hash == hash && m->key_len == len &&
            memcmp(e->arena.data + m->key_off, key, len) == 0)
            return e->slots[s] - 1;
    }
    if (e->nmisses == e->misses_cap) {
        size_t cap = e->misses_cap ? 2 * e->misses_cap : 64;
        miss_t *p = realloc(e->misses, cap * sizeof *p);
        if (!p)
            return (size_t)-1;
        e->misses = p;
        e->misses_cap = cap;
    }
    const char *artist = listen->artist_name.ptr, *track = listen->track_name.ptr;
    size_t alen = listen->artist_name.len, tlen = listen->track_name.len;
    miss_t *m = &e->misses[e->nmisses];
    m->hash = hash;
    m->key_len = len;
    m->artist_len = alen;
    m->track_len = tlen;
    m->nrecords = 0;
    m->found = false;
    memset(&m->meta, 0, sizeof m->meta);
    m->meta.duration_ms = -1;
    if ((m->key_off = arena_add(e, key, len)) == (size_t)-1 || arena_add(e, "", 1) == (size_t)-1 ||
        (m->artist_off = arena_add_lower(e, artist, alen)) == (size_t)-1 ||
        arena_add(e, "", 1) == (size_t)-1 ||
        (m->track_off = arena_add_lower(e, track, tlen)) == (size_t)-1 ||
        arena_add(e, "", 1) == (size_t)-1)
        return (size_t)-1;
    e->slots[s] = ++e->nmisses;
    return e->nmisses - 1;
}

/* Encodes the EnrichedListen of listen with the metadata (NULL = unknown) into e->enc. */
static int encode(enrich_t *e, const st_rec_listen_t *listen, st_trackmeta_source_t source,
                  int64_t duration_ms, int ntags, const char *const *tags, st_err_t *err)
{
    st_rec_enriched_t out = {.listen = *listen};
    switch (source) {
    case ST_TRACKMETA_LASTFM:
        out.metadata_source = ST_REC_SOURCE_LASTFM;
        break;
    case ST_TRACKMETA_CATALOG:
        out.metadata_source = ST_REC_SOURCE_CATALOG;
        break;
    case ST_TRACKMETA_OTHER:
        out.metadata_source = ST_REC_SOURCE_CACHE;
        break;
    default:
        out.metadata_source = ST_REC_SOURCE_UNKNOWN;
        break;
    }
    if (out.metadata_source != ST_REC_SOURCE_UNKNOWN) {
        out.duration_ms.set = duration_ms > 0;
        out.duration_ms.v = duration_ms;
        for (int t = 0; t < ntags && t < ST_REC_TAGS_MAX; t++)
            out.tags[out.n_tags++] = st_str(tags[t]);
    }
    if (st_rec_enriched_encode(e->out_codec, &out, &e->enc, err) != 0)
        return -1;
    st_metric_inc(e->m_source[out.metadata_source], 1);
    return 0;
}

/* Room for a store round over every miss. 0 or -1 (no memory). */
static int reserve_round(enrich_t *e)
{
    size_t n = e->nmisses;
    if (n <= e->ask_cap)
        return 0;
    size_t *ask = realloc(e->ask, n * sizeof *ask);
    if (!ask)
        return -1;
    e->ask = ask;
    size_t *lens = realloc(e->lens, n * sizeof *lens);
    if (!lens)
        return -1;
    e->lens = lens;
    const char **keys = realloc(e->keys, n * sizeof *keys);
    if (!keys)
        return -1;
    e->keys = keys;
    const char **why = realloc(e->why, n * sizeof *why);
    if (!why)
        return -1;
    e->why = why;
    st_trackmeta_t *metas = realloc(e->metas, n * sizeof *metas);
    if (!metas)
        return -1;
    e->metas = metas;
    enrich_store_res_t *res = realloc(e->res, n * sizeof *res);
    if (!res)
        return -1;
    e->res = res;
    e->ask_cap = n;
    return 0;
}

/* One store round for the misses not found yet; fills found/meta and the LRU. */
static int lookup_misses(enrich_t *e, bool count, st_err_t *err)
{
    size_t asked = 0;
    if (reserve_round(e) != 0) {
        st_err_nomem(err);
        return -1;
    }
    for (size_t i = 0; i < e->nmisses; i++) {
        const miss_t *m = &e->misses[i];
        if (m->found)
            continue;
        e->ask[asked] = i;
        e->keys[asked] = e->arena.data + m->key_off;
        e->lens[asked++] = m->key_len;
    }
    if (asked == 0)
        return 0;
    if (e->conf.store->lookup(e->conf.store->ctx, e->keys, e->lens, asked, st_time_wall_ms(),
                              e->metas, e->res, e->why, err) != 0)
        return -1;
    for (size_t j = 0; j < asked; j++) {
        miss_t *m = &e->misses[e->ask[j]];
        if (e->res[j] == ENRICH_STORE_BROKEN) {
            /* Permanent for this key (e.g. WRONGTYPE: a foreign key under our prefix). Retrying
             * would stall the stream, so the track stays unknown and is not fetched. */
            m->found = true;
            memset(&m->meta, 0, sizeof m->meta);
            m->meta.duration_ms = -1;
            st_metric_inc(e->m_read_errors, 1);
            if (++e->read_errors <= 10 || e->read_errors % 1000 == 0) {
                char q[300], qr[300];
                st_log_warn("cache_read_error", "track_key=%s reply=%s total=%llu",
                            st_log_quote(e->arena.data + m->key_off, q, sizeof q),
                            st_log_quote(e->why[j] ? e->why[j] : "", qr, sizeof qr),
                            (unsigned long long)e->read_errors);
            }
            continue;
        }
        if (e->res[j] == ENRICH_STORE_FOUND) {
            m->found = true;
            m->meta = e->metas[j];
            if (track_cache_put(e->lru, e->arena.data + m->key_off, m->key_len, m->hash,
                                &m->meta) != 0) {
                st_err_nomem(err);
                return -1;
            }
            st_metric_inc(e->m_hit_redis, m->nrecords);
            if (st_trackmeta_is_negative(m->meta.source))
                st_metric_inc(e->m_negative, m->nrecords);
        } else if (count) {
            st_metric_inc(e->m_miss, m->nrecords);
        }
    }
    return 0;
}

/* Asks the fetcher for every miss still unknown; returns how many are pending now. */
static size_t request_fetches(enrich_t *e)
{
    size_t pending = 0;
    for (size_t i = 0; i < e->nmisses; i++) {
        miss_t *m = &e->misses[i];
        if (m->found)
            continue;
        if (m->artist_len == 0 || m->track_len == 0) {
            st_metric_inc(e->m_unfetchable, 1);
            continue;
        }
        if (!e->conf.fetcher)
            continue;
        st_fetcher_enqueue_t r = st_fetcher_enqueue(e->conf.fetcher, e->arena.data + m->artist_off,
                                                    e->arena.data + m->track_off);
        st_metric_inc(e->m_enqueue[r], 1);
        if (r == ST_FETCHER_QUEUED || r == ST_FETCHER_DUPLICATE)
            pending++;
    }
    return pending;
}

int enrich_batch(enrich_t *e, const st_msg_t *msgs, size_t n, st_out_t *out, st_err_t *err)
{
    int64_t now_ms = st_time_wall_ms();
    st_rec_listen_t listen;
    st_err_t derr;
    track_cache_view_t view;

    if (n == 0)
        return 0;
    if (reserve(e, n, err) != 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        rec_t *rec = &e->recs[i];
        memset(&derr, 0, sizeof derr);
        if (st_rec_listen_decode(e->in_codec, msgs[i].value, msgs[i].value_len, &listen, &derr) !=
            0) {
            if (derr.retriable) {
                *err = derr;
                return -1;
            }
            rec->kind = REC_REJECTED;
            if (st_out_dead_letter(out, &msgs[i], "invalid", derr.text) != 0)
                goto nomem;
            continue;
        }
        const char *user = listen.user_id.ptr, *key = listen.track_key.ptr;
        size_t ulen = listen.user_id.len, klen = listen.track_key.len;
        rec->key_len = ulen;
        if ((rec->key_off = arena_add(e, user, ulen)) == (size_t)-1)
            goto nomem;
        uint64_t hash = track_cache_hash(key, klen);
        if (track_cache_get(e->lru, key, klen, hash, now_ms, &view)) {
            st_metric_inc(e->m_hit_lru, 1);
            if (st_trackmeta_is_negative(view.source))
                st_metric_inc(e->m_negative, 1);
            if (encode(e, &listen, view.source, view.duration_ms, view.ntags, view.tags, err) != 0)
                return -1;
            rec->kind = REC_OUT;
            rec->value_len = e->enc.len;
            if ((rec->value_off = arena_add(e, e->enc.data, e->enc.len)) == (size_t)-1)
                goto nomem;
        } else {
            rec->kind = REC_MISS;
            if ((rec->miss = miss_for(e, &listen, key, klen, hash)) == (size_t)-1)
                goto nomem;
            e->misses[rec->miss].nrecords++;
        }
    }

    if (e->nmisses > 0) {
        bool wait = e->conf.wait_budget_ms > 0 && e->conf.fetcher;
        if (lookup_misses(e, !wait, err) != 0)
            return -1;
        size_t pending = request_fetches(e);
        if (wait && pending > 0) {
            st_metric_inc(e->m_waits, 1);
            /* In 100 ms slices: a stop request ends the wait (the batch goes out with what is
             * known), well inside a supervisor's grace period. */
            for (int64_t left = e->conf.wait_budget_ms; left > 0 && !st_lifecycle_stopping();
                 left -= 100)
                if (st_fetcher_wait_idle(e->conf.fetcher, left < 100 ? left : 100))
                    break;
            if (lookup_misses(e, true, err) != 0)
                return -1;
        } else if (wait) {
            for (size_t i = 0; i < e->nmisses; i++)
                if (!e->misses[i].found)
                    st_metric_inc(e->m_miss, e->misses[i].nrecords);
        }
    }

    for (size_t i = 0; i < n; i++) {
        rec_t *rec = &e->recs[i];
        if (rec->kind == REC_REJECTED)
            continue;
        if (rec->kind == REC_MISS) {
            miss_t *m = &e->misses[rec->miss];
            const char *tags[ST_TRACKMETA_MAX_TAGS];
            memset(&derr, 0, sizeof derr);
            if (st_rec_listen_decode(e->in_codec, msgs[i].value, msgs[i].value_len, &listen,
                                     &derr) != 0) {
                *err = derr;
                return -1;
            }
            for (int t = 0; m->found && t < m->meta.ntags && t < ST_TRACKMETA_MAX_TAGS; t++)
                tags[t] = m->meta.tags[t];
            if (encode(e, &listen, m->found ? m->meta.source : ST_TRACKMETA_NONE,
                       m->meta.duration_ms, m->found ? m->meta.ntags : 0, tags, err) != 0)
                return -1;
            if (st_out_produce(out, e->out_topic, e->arena.data + rec->key_off, rec->key_len,
                               e->enc.data, e->enc.len) != 0)
                goto nomem;
        } else if (st_out_produce(out, e->out_topic, e->arena.data + rec->key_off, rec->key_len,
                                  e->arena.data + rec->value_off, rec->value_len) != 0) {
            goto nomem;
        }
    }
    st_metric_set(e->m_lru_entries, (double)track_cache_size(e->lru));
    return 0;
nomem:
    st_err_nomem(err);
    return -1;
}
