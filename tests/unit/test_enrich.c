/* Unit tests of the enricher's core (services/enricher/enrich.c) on the in-memory track cache
 * (enrich_store_mem.c), without a fetcher: the metadata each cache state gives, outputs in input
 * order with dead letters for undecodable records, the LRU answering a second batch without a
 * store round, a broken entry reported UNKNOWN without failing the batch, and a failed store
 * round (retriable) whose rerun gives the same outputs. */
#include <stdlib.h>
#include <string.h>

#include "enrich.h"
#include "enrich_store.h"
#include "st_listen.h"
#include "st_metrics.h"
#include "st_records.h"
#include "st_test.h"
#include "st_test_out.h"
#include "st_time.h"

#define NOW_MS 1700000000000LL

static st_avro_registry_t *reg;
static st_avro_codec_t *listen_codec, *enriched_codec;

/* An encoded Listen of (user, artist, track); its track key in key (size 512). */
static void make_listen(st_buf_t *out, const char *user, const char *artist, const char *track,
                        char *key)
{
    static st_listen_t l;
    char json[512];
    snprintf(json, sizeof json,
             "{\"user_id\":\"%s\",\"timestamp\":1241478537000,\"artist_name\":\"%s\","
             "\"track_name\":\"%s\"}",
             user, artist, track);
    ST_REQUIRE(st_listen_parse(json, strlen(json), NOW_MS, &l, NULL) == ST_LISTEN_OK);
    st_rec_listen_t r = st_rec_listen_from(&l);
    st_buf_reset(out);
    ST_REQUIRE(st_rec_listen_encode(listen_codec, &r, out, NULL) == 0);
    ST_REQUIRE(st_trackmeta_key(artist, strlen(artist), track, strlen(track), key, 512) > 0);
}

static st_trackmeta_t meta(st_trackmeta_source_t source, int64_t duration_ms, const char *tag,
                           int64_t expires_at_ms)
{
    st_trackmeta_t m = {.source = source, .duration_ms = duration_ms};
    if (tag) {
        snprintf(m.tags[0], sizeof m.tags[0], "%s", tag);
        m.ntags = 1;
    }
    m.expires_at_ms = expires_at_ms;
    return m;
}

typedef struct {
    st_buf_t bytes[6];
    char keys[6][512];
    st_msg_t msgs[6];
} batch_t;

/* Six records: catalog, lastfm, unknown, an undecodable one, negative (not expired), expired
 * negative. */
static void batch_init(batch_t *b)
{
    static const char *const users[] = {"u1", "u2", "u3", "u4", "u5", "u6"};
    static const char *const tracks[] = {"Cat", "Fm", "Nobody", "", "Gone", "Stale"};
    memset(b, 0, sizeof *b);
    for (int i = 0; i < 6; i++) {
        if (i == 3)
            st_buf_append(&b->bytes[i], "\x00\x00\x00\x00\x01garbage", 12);
        else
            make_listen(&b->bytes[i], users[i], "Artist", tracks[i], b->keys[i]);
        b->msgs[i] =
            (st_msg_t){"listens",      0, 100 + i, -1, users[i], strlen(users[i]), b->bytes[i].data,
                       b->bytes[i].len};
    }
}

static void batch_free(batch_t *b)
{
    for (int i = 0; i < 6; i++)
        st_buf_free(&b->bytes[i]);
}

static void fill_store(enrich_store_t *s, const batch_t *b)
{
    st_trackmeta_t cat = meta(ST_TRACKMETA_CATALOG, 215000, "house", 0),
                   fm = meta(ST_TRACKMETA_LASTFM, 180000, "jazz", 0),
                   gone = meta(ST_TRACKMETA_NOT_FOUND, -1, NULL, st_time_wall_ms() + 3600000),
                   stale = meta(ST_TRACKMETA_TRY_LATER, -1, NULL, st_time_wall_ms() - 1000);
    ST_REQUIRE(enrich_store_mem_put(s, b->keys[0], &cat) == 0);
    ST_REQUIRE(enrich_store_mem_put(s, b->keys[1], &fm) == 0);
    ST_REQUIRE(enrich_store_mem_put(s, b->keys[4], &gone) == 0);
    ST_REQUIRE(enrich_store_mem_put(s, b->keys[5], &stale) == 0);
}

static enrich_t *new_core(enrich_store_t *store)
{
    char errstr[256];
    enrich_config_t c = {.registry = reg,
                         .out_topic = "listens.enriched",
                         .store = store,
                         .fetcher = NULL,
                         .lru_entries = 100,
                         .wait_budget_ms = 0};
    enrich_t *e = enrich_new(&c, errstr, sizeof errstr);
    if (!e)
        printf("enrich_new: %s\n", errstr);
    return e;
}

static void test_sources_and_order(void)
{
    enrich_store_t *store = enrich_store_mem_new();
    batch_t b;
    batch_init(&b);
    fill_store(store, &b);
    enrich_t *e = new_core(store);
    st_out_t *out = st_out_new("listens.dlq");
    ST_REQUIRE(store && e && out);
    ST_REQUIRE(enrich_batch(e, b.msgs, 6, out, NULL) == 0);
    ST_EQ_INT(st_out_count(out), 6);
    /* The dead letter is queued when met; the five Listens follow in input order. */
    ST_EQ_STR(st_out_record(out, 0).topic, "listens.dlq");
    ST_CHECK(strstr(st_out_record(out, 0).value, "\"error_code\":\"invalid\"") != NULL);
    static const struct {
        const char *user;
        st_rec_source_t source;
        int64_t duration_ms; /* -1: none */
        const char *tag;
    } want[] = {{"u1", ST_REC_SOURCE_CATALOG, 215000, "house"},
                {"u2", ST_REC_SOURCE_LASTFM, 180000, "jazz"},
                {"u3", ST_REC_SOURCE_UNKNOWN, -1, NULL},
                {"u5", ST_REC_SOURCE_UNKNOWN, -1, NULL},
                {"u6", ST_REC_SOURCE_UNKNOWN, -1, NULL}};
    for (size_t i = 0; i < 5; i++) {
        st_out_rec_t r = st_out_record(out, 1 + i);
        ST_EQ_STR(r.topic, "listens.enriched");
        ST_CHECK(r.key_len == strlen(want[i].user) && memcmp(r.key, want[i].user, r.key_len) == 0);
        st_rec_enriched_t x;
        ST_REQUIRE(st_rec_enriched_decode(enriched_codec, r.value, r.value_len, &x, NULL) == 0);
        ST_EQ_INT(x.metadata_source, want[i].source);
        ST_EQ_INT(x.duration_ms.set ? x.duration_ms.v : -1, want[i].duration_ms);
        ST_EQ_INT(x.n_tags, want[i].tag ? 1 : 0);
        if (want[i].tag && x.n_tags == 1)
            ST_CHECK(x.tags[0].len == strlen(want[i].tag) &&
                     memcmp(x.tags[0].ptr, want[i].tag, x.tags[0].len) == 0);
    }
    enrich_destroy(e);
    st_out_destroy(out);
    enrich_store_mem_destroy(store);
    batch_free(&b);
}

/* A second batch of the same tracks: the LRU answers the found ones (only the unknown ones are
 * asked again), and the records are byte-identical. */
static void test_lru(void)
{
    enrich_store_t *store = enrich_store_mem_new();
    batch_t b;
    batch_init(&b);
    fill_store(store, &b);
    enrich_t *e = new_core(store);
    st_out_t *out = st_out_new("listens.dlq");
    ST_REQUIRE(store && e && out);
    double lru0 =
        st_metric_value(st_metrics_counter("stint_enricher_cache_hits_total", "level=\"lru\"", ""));
    ST_REQUIRE(enrich_batch(e, b.msgs, 6, out, NULL) == 0);
    char *first = st_test_out_text(out, "listens.dlq");
    ST_EQ_INT(enrich_store_mem_rounds(store), 1);
    st_out_reset(out);
    ST_REQUIRE(enrich_batch(e, b.msgs, 6, out, NULL) == 0);
    char *second = st_test_out_text(out, "listens.dlq");
    ST_EQ_STR(second, first);
    /* Found entries (catalog, lastfm, the live negative) come from the LRU now. */
    ST_EQ_INT(st_metric_value(
                  st_metrics_counter("stint_enricher_cache_hits_total", "level=\"lru\"", "")) -
                  lru0,
              3);
    ST_EQ_INT(enrich_store_mem_rounds(store), 2); /* the two absent tracks are asked again */
    free(first);
    free(second);
    enrich_destroy(e);
    st_out_destroy(out);
    enrich_store_mem_destroy(store);
    batch_free(&b);
}

/* A broken entry is UNKNOWN and counted; a failed round fails the batch retriably and its rerun
 * gives the outputs of a batch that never failed. */
static void test_errors(void)
{
    enrich_store_t *store = enrich_store_mem_new(), *clean = enrich_store_mem_new();
    batch_t b;
    batch_init(&b);
    fill_store(store, &b);
    fill_store(clean, &b);
    ST_REQUIRE(enrich_store_mem_break(store, b.keys[0], "WRONGTYPE test") == 0);
    enrich_t *e = new_core(store), *ref = new_core(clean);
    st_out_t *out = st_out_new("listens.dlq"), *ref_out = st_out_new("listens.dlq");
    ST_REQUIRE(e && ref && out && ref_out);
    double errors0 =
        st_metric_value(st_metrics_counter("stint_enricher_cache_read_errors_total", NULL, ""));

    enrich_store_mem_fail_after(store, 0);
    st_err_t err = {0};
    ST_EQ_INT(enrich_batch(e, b.msgs, 6, out, &err), -1);
    ST_CHECK(st_err_disp(&err) == ST_DISP_RETRY);
    enrich_store_mem_fail_after(store, -1);
    st_out_reset(out);
    ST_REQUIRE(enrich_batch(e, b.msgs, 6, out, NULL) == 0);
    ST_EQ_INT(
        st_metric_value(st_metrics_counter("stint_enricher_cache_read_errors_total", NULL, "")) -
            errors0,
        1);
    st_rec_enriched_t x;
    st_out_rec_t r = st_out_record(out, 1);
    ST_REQUIRE(st_rec_enriched_decode(enriched_codec, r.value, r.value_len, &x, NULL) == 0);
    ST_EQ_INT(x.metadata_source, ST_REC_SOURCE_UNKNOWN); /* the broken catalog entry */
    /* Apart from that record, the same outputs as a core that never failed. */
    ST_REQUIRE(enrich_batch(ref, b.msgs, 6, ref_out, NULL) == 0);
    ST_EQ_INT(st_out_count(out), st_out_count(ref_out));
    for (size_t i = 2; i < st_out_count(out) && i < st_out_count(ref_out); i++) {
        st_out_rec_t p = st_out_record(out, i), q = st_out_record(ref_out, i);
        ST_CHECK(p.value_len == q.value_len && memcmp(p.value, q.value, p.value_len) == 0);
    }
    enrich_destroy(e);
    enrich_destroy(ref);
    st_out_destroy(out);
    st_out_destroy(ref_out);
    enrich_store_mem_destroy(store);
    enrich_store_mem_destroy(clean);
    batch_free(&b);
}

int main(void)
{
    char errstr[512], dir[1024];
    const char *src = getenv("STINT_SOURCE_DIR");
    snprintf(dir, sizeof dir, "%s/schemas", src ? src : ".");
    reg = st_avro_registry_new(dir, NULL, errstr, sizeof errstr);
    if (!reg) {
        fprintf(stderr, "schemas: %s\n", errstr);
        return 1;
    }
    listen_codec = st_avro_codec_new(reg, "Listen", "listens", errstr, sizeof errstr);
    enriched_codec = st_avro_codec_new(reg, "EnrichedListen", NULL, errstr, sizeof errstr);
    if (!listen_codec || !enriched_codec) {
        fprintf(stderr, "codec: %s\n", errstr);
        return 1;
    }
    ST_RUN(test_sources_and_order);
    ST_RUN(test_lru);
    ST_RUN(test_errors);
    st_avro_codec_destroy(listen_codec);
    st_avro_codec_destroy(enriched_codec);
    st_avro_registry_destroy(reg);
    return st_test_summary();
}
