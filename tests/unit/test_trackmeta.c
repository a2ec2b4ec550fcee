/* Unit tests of st_trackmeta (the track cache format): key normalisation identical to
 * Listen.track_key, Redis keys, lookup replies (hits, misses, collisions, expired negatives, bad
 * shapes), catalog lines. */
#include <jansson.h>

#include "st_listen.h"
#include "st_test.h"
#include "st_time.h"
#include "st_trackmeta.h"

static void test_key_matches_listen(void)
{
    static const struct {
        const char *artist, *track, *key;
    } cases[] = {
        {"Radiohead", "Karma Police", "radiohead\tkarma police"},
        {"  Sigur Rós ", "\tHoppípolla\r\n", "sigur rós\thoppípolla"},
        {"AC/DC", "Rock & Roll", "ac/dc\trock & roll"},
        {"", "", "\t"},
        {"ÄBC", "x", "Äbc\tx"}, /* only ASCII is lower-cased */
        /* Tabs inside a name become spaces: these two tracks keep two keys. */
        {"A\tB", "C", "a b\tc"},
        {"A", "B\tC", "a\tb c"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char key[256], json[512];
        int n = st_trackmeta_key(cases[i].artist, strlen(cases[i].artist), cases[i].track,
                                 strlen(cases[i].track), key, sizeof key);
        ST_EQ_STR(key, cases[i].key);
        ST_EQ_INT(n, (int)strlen(cases[i].key));
        /* The ingest side computes the same key. */
        st_listen_t *l = malloc(sizeof *l);
        json_t *o = json_pack("{s:s, s:I, s:s, s:s}", "user_id", "u", "timestamp",
                              (json_int_t)1230000000000LL, "artist_name", cases[i].artist,
                              "track_name", cases[i].track);
        char *s = json_dumps(o, JSON_COMPACT);
        snprintf(json, sizeof json, "%s", s);
        free(s);
        json_decref(o);
        ST_EQ_INT(st_listen_parse(json, strlen(json), st_time_wall_ms(), l, NULL), ST_LISTEN_OK);
        ST_EQ_STR(l->track_key, cases[i].key);
        free(l);
    }
    char small[8];
    ST_EQ_INT(st_trackmeta_key("abcd", 4, "efgh", 4, small, sizeof small), -1);
    ST_EQ_STR(small, "");
    ST_EQ_INT(st_trackmeta_key("abc", 3, "efg", 3, small, sizeof small), 7);
}

static void test_redis_key(void)
{
    char k[ST_TRACKMETA_REDIS_KEY_SIZE], k2[ST_TRACKMETA_REDIS_KEY_SIZE];
    int n = st_trackmeta_redis_key("stint", "a\tb", 3, k, sizeof k);
    ST_EQ_INT(n, (int)strlen("stint:track:") + 16);
    ST_CHECK(strncmp(k, "stint:track:", 12) == 0);
    ST_CHECK(strchr(k, '{') == NULL);
    st_trackmeta_redis_key("stint", "a\tc", 3, k2, sizeof k2);
    ST_CHECK(strcmp(k, k2) != 0);
    char tiny[10];
    ST_EQ_INT(st_trackmeta_redis_key("stint", "a\tb", 3, tiny, sizeof tiny), -1);
}

/* A fake HMGET reply of five bulk strings (NULL = nil). */
typedef struct {
    redisReply arr, el[5];
    redisReply *ptrs[5];
} fake_reply_t;

static void fake_reply(fake_reply_t *f, const char *const v[5])
{
    memset(f, 0, sizeof *f);
    f->arr.type = REDIS_REPLY_ARRAY;
    f->arr.elements = 5;
    f->arr.element = f->ptrs;
    for (int i = 0; i < 5; i++) {
        f->ptrs[i] = &f->el[i];
        f->el[i].type = v[i] ? REDIS_REPLY_STRING : REDIS_REPLY_NIL;
        f->el[i].str = (char *)v[i];
        f->el[i].len = v[i] ? strlen(v[i]) : 0;
    }
}

static void test_parse_lookup(void)
{
    fake_reply_t f;
    st_trackmeta_t m;
    const char *key = "radiohead\tkarma police";
    size_t klen = strlen(key);

    const char *hit[5] = {key, "LASTFM", "264000",
                          "alternative\x1frock\x1f"
                          "90s",
                          NULL};
    fake_reply(&f, hit);
    ST_EQ_INT(st_trackmeta_parse_lookup(&f.arr, key, klen, 1000, &m), 1);
    ST_EQ_INT(m.source, ST_TRACKMETA_LASTFM);
    ST_EQ_INT(m.duration_ms, 264000);
    ST_EQ_INT(m.ntags, 3);
    ST_EQ_STR(m.tags[0], "alternative");
    ST_EQ_STR(m.tags[2], "90s");
    ST_EQ_INT(m.expires_at_ms, 0);

    const char *catalog_unknown[5] = {key, "CATALOG", NULL, NULL, NULL};
    fake_reply(&f, catalog_unknown);
    ST_EQ_INT(st_trackmeta_parse_lookup(&f.arr, key, klen, 1000, &m), 1);
    ST_EQ_INT(m.source, ST_TRACKMETA_CATALOG);
    ST_EQ_INT(m.duration_ms, -1);
    ST_EQ_INT(m.ntags, 0);

    const char *odd[5] = {key, "SOMETHING", "0", "", NULL};
    fake_reply(&f, odd);
    ST_EQ_INT(st_trackmeta_parse_lookup(&f.arr, key, klen, 1000, &m), 1);
    ST_EQ_INT(m.source, ST_TRACKMETA_OTHER);
    ST_EQ_INT(m.duration_ms, -1);

    const char *neg[5] = {key, "NOT_FOUND", NULL, NULL, "5000"};
    fake_reply(&f, neg);
    ST_EQ_INT(st_trackmeta_parse_lookup(&f.arr, key, klen, 4999, &m), 1);
    ST_EQ_INT(m.source, ST_TRACKMETA_NOT_FOUND);
    ST_EQ_INT(m.expires_at_ms, 5000);
    ST_CHECK(st_trackmeta_is_negative(m.source));
    ST_EQ_INT(st_trackmeta_parse_lookup(&f.arr, key, klen, 5000, &m), 0); /* expired */

    const char *none[5] = {NULL, NULL, NULL, NULL, NULL};
    fake_reply(&f, none);
    ST_EQ_INT(st_trackmeta_parse_lookup(&f.arr, key, klen, 1000, &m), 0);

    const char *other_key[5] = {"radiohead\tcreep", "LASTFM", "1", NULL, NULL};
    fake_reply(&f, other_key);
    ST_EQ_INT(st_trackmeta_parse_lookup(&f.arr, key, klen, 1000, &m), 0); /* a collision */

    fake_reply(&f, hit);
    f.arr.elements = 4;
    ST_EQ_INT(st_trackmeta_parse_lookup(&f.arr, key, klen, 1000, &m), -1);
    f.arr.elements = 5;
    f.el[2].type = REDIS_REPLY_INTEGER;
    ST_EQ_INT(st_trackmeta_parse_lookup(&f.arr, key, klen, 1000, &m), -1);
    ST_EQ_INT(st_trackmeta_parse_lookup(NULL, key, klen, 1000, &m), -1);
}

static void test_catalog_lines(void)
{
    static const struct {
        const char *line;
        int ok;
        const char *key;
        int64_t duration_ms;
        int ntags;
    } cases[] = {
        {"{\"artist\":\"The Beba Baba\",\"track\":\"Zofu "
         "Lá\",\"duration_ms\":221304,\"tags\":[\"rock\",\"indie\"]}",
         1, "the beba baba\tzofu lá", 221304, 2},
        {"{\"artist\":\"A\",\"track\":\"B\",\"duration_ms\":0,\"tags\":[]}", 1, "a\tb", -1, 0},
        {"{\"artist\":\"A\",\"track\":\"B\"}", 1, "a\tb", -1, 0},
        {"{\"artist\":\"A\",\"track\":\"B\",\"tags\":[\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\"]}",
         1, "a\tb", -1, 5},
        {"not json", 0, NULL, 0, 0},
        {"[1,2]", 0, NULL, 0, 0},
        {"{\"artist\":\"A\"}", 0, NULL, 0, 0},
        {"{\"artist\":\"A\",\"track\":7}", 0, NULL, 0, 0},
        {"{\"artist\":\"A\",\"track\":\"B\",\"duration_ms\":-5}", 0, NULL, 0, 0},
        {"{\"artist\":\"A\",\"track\":\"B\",\"duration_ms\":\"300\"}", 0, NULL, 0, 0},
        {"{\"artist\":\"A\",\"track\":\"B\",\"tags\":\"rock\"}", 0, NULL, 0, 0},
        {"{\"artist\":\"A\",\"track\":\"B\",\"tags\":[1]}", 0, NULL, 0, 0},
        {"{\"artist\":\"A\",\"artist\":\"C\",\"track\":\"B\"}", 0, NULL, 0, 0},
        {"{\"artist\":\"A\\u0000\",\"track\":\"B\"}", 0, NULL, 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char key[256], reason[256] = "";
        st_trackmeta_t m;
        int n = st_trackmeta_parse_catalog_line(cases[i].line, strlen(cases[i].line), key,
                                                sizeof key, &m, reason, sizeof reason);
        if (!cases[i].ok) {
            ST_EQ_INT(n, -1);
            ST_CHECK(reason[0] != '\0');
            continue;
        }
        ST_EQ_INT(n, (int)strlen(cases[i].key));
        ST_EQ_STR(key, cases[i].key);
        ST_EQ_INT(m.source, ST_TRACKMETA_CATALOG);
        ST_EQ_INT(m.duration_ms, cases[i].duration_ms);
        ST_EQ_INT(m.ntags, cases[i].ntags);
    }
}

static void test_source_names(void)
{
    for (int s = ST_TRACKMETA_LASTFM; s <= ST_TRACKMETA_TRY_LATER; s++) {
        const char *name = st_trackmeta_source_name((st_trackmeta_source_t)s);
        ST_EQ_INT(st_trackmeta_source_parse(name, strlen(name)), s);
    }
    ST_EQ_INT(st_trackmeta_source_parse("lastfm", 6), ST_TRACKMETA_OTHER);
    ST_CHECK(!st_trackmeta_is_negative(ST_TRACKMETA_CATALOG));
    ST_CHECK(st_trackmeta_is_negative(ST_TRACKMETA_TRY_LATER));
}

int main(void)
{
    ST_RUN(test_key_matches_listen);
    ST_RUN(test_redis_key);
    ST_RUN(test_parse_lookup);
    ST_RUN(test_catalog_lines);
    ST_RUN(test_source_names);
    return st_test_summary();
}
