/* Unit tests of the enricher's LRU (services/enricher/track_cache.c, linked from
 * stint-enricher-core): hits, replacement (also inside a hash chain), least-recently-used eviction,
 * expiry of negative entries, many keys. */
#include "st_test.h"
#include "track_cache.h"

static st_trackmeta_t meta(st_trackmeta_source_t source, int64_t duration_ms, int ntags,
                           int64_t expires_at_ms)
{
    st_trackmeta_t m;
    memset(&m, 0, sizeof m);
    m.source = source;
    m.duration_ms = duration_ms;
    m.ntags = ntags;
    for (int i = 0; i < ntags; i++)
        snprintf(m.tags[i], sizeof m.tags[i], "tag%d", i);
    m.expires_at_ms = expires_at_ms;
    return m;
}

static bool get(track_cache_t *c, const char *key, int64_t now_ms, track_cache_view_t *v)
{
    return track_cache_get(c, key, strlen(key), track_cache_hash(key, strlen(key)), now_ms, v);
}

static int put(track_cache_t *c, const char *key, st_trackmeta_t m)
{
    return track_cache_put(c, key, strlen(key), track_cache_hash(key, strlen(key)), &m);
}

static void test_hit_and_replace(void)
{
    track_cache_t *c = track_cache_new(4);
    track_cache_view_t v;
    ST_CHECK(!get(c, "a\tb", 0, &v));
    ST_EQ_INT(put(c, "a\tb", meta(ST_TRACKMETA_LASTFM, 1000, 3, 0)), 0);
    ST_CHECK(get(c, "a\tb", 0, &v));
    ST_EQ_INT(v.source, ST_TRACKMETA_LASTFM);
    ST_EQ_INT(v.duration_ms, 1000);
    ST_EQ_INT(v.ntags, 3);
    ST_EQ_STR(v.tags[2], "tag2");
    ST_CHECK(!get(c, "a\tc", 0, &v));
    ST_EQ_INT(put(c, "a\tb", meta(ST_TRACKMETA_CATALOG, 2000, 0, 0)), 0);
    ST_EQ_INT(track_cache_size(c), 1);
    ST_CHECK(get(c, "a\tb", 0, &v));
    ST_EQ_INT(v.source, ST_TRACKMETA_CATALOG);
    ST_EQ_INT(v.ntags, 0);
    ST_EQ_INT(put(c, "x", meta(ST_TRACKMETA_NONE, 1, 0, 0)), 0); /* ignored */
    ST_EQ_INT(track_cache_size(c), 1);
    track_cache_destroy(c);
    track_cache_destroy(NULL);
    ST_CHECK(track_cache_new(0) == NULL);
}

/* Keys in one hash chain (the same hash on purpose): replacing the first must keep the others
 * reachable, and evicting them later must not crash. */
static void test_replace_in_chain(void)
{
    track_cache_t *c = track_cache_new(4);
    track_cache_view_t v;
    const char *keys[] = {"k1", "k2", "k3"};
    for (int i = 0; i < 3; i++)
        ST_EQ_INT(
            track_cache_put(c, keys[i], 2, 7,
                            &(st_trackmeta_t){.source = ST_TRACKMETA_LASTFM, .duration_ms = i + 1}),
            0);
    ST_EQ_INT(track_cache_put(c, "k1", 2, 7,
                              &(st_trackmeta_t){.source = ST_TRACKMETA_CATALOG, .duration_ms = 10}),
              0);
    for (int i = 0; i < 3; i++) {
        ST_CHECK(track_cache_get(c, keys[i], 2, 7, 0, &v));
        ST_EQ_INT(v.duration_ms, i == 0 ? 10 : i + 1);
    }
    ST_EQ_INT(track_cache_size(c), 3);
    for (int i = 0; i < 6; i++) { /* evicts k2, k3 and k1 through the chain */
        char k[8];
        snprintf(k, sizeof k, "n%d", i);
        ST_EQ_INT(put(c, k, meta(ST_TRACKMETA_LASTFM, 1, 0, 0)), 0);
    }
    ST_EQ_INT(track_cache_size(c), 4);
    ST_CHECK(!track_cache_get(c, "k2", 2, 7, 0, &v));
    track_cache_destroy(c);
}

static void test_lru_eviction(void)
{
    track_cache_t *c = track_cache_new(3);
    track_cache_view_t v;
    put(c, "k1", meta(ST_TRACKMETA_LASTFM, 1, 0, 0));
    put(c, "k2", meta(ST_TRACKMETA_LASTFM, 2, 0, 0));
    put(c, "k3", meta(ST_TRACKMETA_LASTFM, 3, 0, 0));
    ST_CHECK(get(c, "k1", 0, &v)); /* k1 now most recent: k2 is the oldest */
    put(c, "k4", meta(ST_TRACKMETA_LASTFM, 4, 0, 0));
    ST_EQ_INT(track_cache_size(c), 3);
    ST_EQ_INT(track_cache_evictions(c), 1);
    ST_CHECK(!get(c, "k2", 0, &v));
    ST_CHECK(get(c, "k1", 0, &v));
    ST_EQ_INT(v.duration_ms, 1);
    ST_CHECK(get(c, "k3", 0, &v));
    ST_CHECK(get(c, "k4", 0, &v));
    track_cache_destroy(c);
}

static void test_negative_expiry(void)
{
    track_cache_t *c = track_cache_new(8);
    track_cache_view_t v;
    put(c, "gone", meta(ST_TRACKMETA_NOT_FOUND, -1, 0, 5000));
    ST_CHECK(get(c, "gone", 4999, &v));
    ST_EQ_INT(v.source, ST_TRACKMETA_NOT_FOUND);
    ST_CHECK(!get(c, "gone", 5000, &v));
    ST_EQ_INT(track_cache_size(c), 0);
    track_cache_destroy(c);
}

static void test_many_keys(void)
{
    track_cache_t *c = track_cache_new(1000);
    track_cache_view_t v;
    char key[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof key, "artist\ttrack %d", i);
        ST_EQ_INT(put(c, key, meta(ST_TRACKMETA_LASTFM, i + 1, i % 6, 0)), 0);
    }
    ST_EQ_INT(track_cache_size(c), 1000);
    ST_EQ_INT(track_cache_evictions(c), 4000);
    int found = 0, right = 0;
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof key, "artist\ttrack %d", i);
        if (get(c, key, 0, &v)) {
            found++;
            right += v.duration_ms == i + 1 && v.ntags == (i % 6 > 5 ? 5 : i % 6) && i >= 4000;
        }
    }
    ST_EQ_INT(found, 1000);
    ST_EQ_INT(right, 1000);
    track_cache_destroy(c);
}

int main(void)
{
    ST_RUN(test_hit_and_replace);
    ST_RUN(test_replace_in_chain);
    ST_RUN(test_lru_eviction);
    ST_RUN(test_negative_expiry);
    ST_RUN(test_many_keys);
    return st_test_summary();
}
