/* Unit tests of st_records: every record type round-trips every field through its codec (static
 * schema ids), every field of every schema is written by the codec (a field added to an .avsc but
 * not to st_records.c fails here), the older versions under schemas/history/ decode with the
 * reader's defaults, and contract violations are refused with a message naming the field. */
#include "st_records.h"
#include "st_test.h"

static char schemas_dir[1024];
static st_avro_registry_t *reg;

static st_avro_codec_t *codec(const char *record)
{
    char err[512] = "";
    st_avro_codec_t *c = st_avro_codec_new(reg, record, "t", err, sizeof err);
    if (!c)
        fprintf(stderr, "codec %s: %s\n", record, err);
    return c;
}

static bool str_is(st_str_t s, const char *want)
{
    return s.ptr && s.len == strlen(want) && memcmp(s.ptr, want, s.len) == 0;
}

#define ST_EQ_VIEW(view, want)                                                                     \
    do {                                                                                           \
        if (!str_is((view), (want)))                                                               \
            ST_FAIL_AT("%s == \"%s\": got \"%.*s\"", #view, (want), (int)(view).len,               \
                       (view).ptr ? (view).ptr : "(null)");                                        \
    } while (0)

/* Every field of the encoded record holds something other than its default or zero: the codec
 * wrote every field of the schema. Names the first field that did not. */
static void check_all_fields_written(st_avro_codec_t *c, const st_buf_t *msg, const char *record)
{
    avro_value_t *v = NULL;
    st_err_t e = {0};
    ST_REQUIRE(st_avro_codec_decode(c, msg->data, msg->len, &v, &e) == 0);
    size_t n = 0;
    ST_REQUIRE(avro_value_get_size(v, &n) == 0 && n > 0);
    for (size_t i = 0; i < n; i++) {
        avro_value_t f;
        const char *name = NULL;
        ST_REQUIRE(avro_value_get_by_index(v, i, &f, &name) == 0);
        if (avro_value_get_type(&f) == AVRO_UNION) {
            ST_REQUIRE(avro_value_get_current_branch(&f, &f) == 0);
        }
        bool written = false;
        size_t size = 0;
        const char *s = NULL;
        const void *b = NULL;
        int32_t i32 = 0;
        int64_t i64 = 0;
        double d = 0;
        int en = 0, boolean = 0;
        switch (avro_value_get_type(&f)) {
        case AVRO_STRING:
            written = avro_value_get_string(&f, &s, &size) == 0 && size > 1;
            break;
        case AVRO_BYTES:
            written = avro_value_get_bytes(&f, &b, &size) == 0 && size > 0;
            break;
        case AVRO_INT32:
            written = avro_value_get_int(&f, &i32) == 0 && i32 != 0;
            break;
        case AVRO_INT64:
            written = avro_value_get_long(&f, &i64) == 0 && i64 != 0;
            break;
        case AVRO_DOUBLE:
            written = avro_value_get_double(&f, &d) == 0 && d != 0;
            break;
        case AVRO_BOOLEAN:
            written = avro_value_get_boolean(&f, &boolean) == 0 && boolean;
            break;
        case AVRO_ENUM:
            written = avro_value_get_enum(&f, &en) == 0 && en != 0;
            break;
        case AVRO_ARRAY:
            written = avro_value_get_size(&f, &size) == 0 && size > 0;
            break;
        default:
            written = false; /* null, or a type no record uses */
            break;
        }
        if (!written)
            ST_FAIL_AT("%s.%s: not written by its codec (default or zero after a full round trip)",
                       record, name);
    }
}

static void test_listen_and_enriched(void)
{
    st_avro_codec_t *lc = codec("Listen"), *ec = codec("EnrichedListen");
    ST_REQUIRE(lc && ec);
    st_buf_t buf = {0};
    st_err_t e = {0};
    st_rec_listen_t l = {
        .event_id = st_str("ev-1"),
        .user_id = st_str("user_000001"),
        .listened_at_ms = 1234567890123,
        .artist_name = st_str("Björk"),
        .track_name = st_str("Jóga"),
        .artist_mbid = st_str("a-mbid"),
        .track_mbid = st_str("t-mbid"),
        .track_key = st_str("björk\tjóga"),
    };
    ST_EQ_INT(st_rec_listen_encode(lc, &l, &buf, &e), 0);
    check_all_fields_written(lc, &buf, "Listen");
    st_rec_listen_t back;
    ST_EQ_INT(st_rec_listen_decode(lc, buf.data, buf.len, &back, &e), 0);
    ST_EQ_VIEW(back.event_id, "ev-1");
    ST_EQ_VIEW(back.user_id, "user_000001");
    ST_EQ_INT(back.listened_at_ms, 1234567890123);
    ST_EQ_VIEW(back.artist_name, "Björk");
    ST_EQ_VIEW(back.track_name, "Jóga");
    ST_EQ_VIEW(back.artist_mbid, "a-mbid");
    ST_EQ_VIEW(back.track_mbid, "t-mbid");
    ST_EQ_VIEW(back.track_key, "björk\tjóga");
    ST_EQ_INT(back.user_id.ptr[back.user_id.len], 0); /* NUL-terminated views */

    /* Nulls stay null. */
    l.artist_mbid = st_str(NULL);
    ST_EQ_INT(st_rec_listen_encode(lc, &l, &buf, &e), 0);
    ST_EQ_INT(st_rec_listen_decode(lc, buf.data, buf.len, &back, &e), 0);
    ST_CHECK(back.artist_mbid.ptr == NULL);
    ST_EQ_VIEW(back.track_mbid, "t-mbid");
    l.artist_mbid = st_str("a-mbid");

    st_rec_enriched_t en = {.listen = l,
                            .duration_ms = {true, 215000},
                            .n_tags = 2,
                            .tags = {st_str("icelandic"), st_str("electronic")},
                            .metadata_source = ST_REC_SOURCE_CATALOG};
    ST_EQ_INT(st_rec_enriched_encode(ec, &en, &buf, &e), 0);
    check_all_fields_written(ec, &buf, "EnrichedListen");
    st_rec_enriched_t eb;
    ST_EQ_INT(st_rec_enriched_decode(ec, buf.data, buf.len, &eb, &e), 0);
    ST_EQ_VIEW(eb.listen.user_id, "user_000001");
    ST_EQ_VIEW(eb.listen.track_key, "björk\tjóga");
    ST_EQ_VIEW(eb.listen.artist_mbid, "a-mbid");
    ST_EQ_INT(eb.listen.listened_at_ms, 1234567890123);
    ST_CHECK(eb.duration_ms.set);
    ST_EQ_INT(eb.duration_ms.v, 215000);
    ST_EQ_INT(eb.n_tags, 2);
    ST_EQ_VIEW(eb.tags[1], "electronic");
    ST_CHECK(!eb.tags_truncated);
    ST_EQ_INT(eb.metadata_source, ST_REC_SOURCE_CATALOG);

    /* A Listen message is not an EnrichedListen (another record name): refused with a reason. */
    ST_EQ_INT(st_rec_listen_encode(lc, &l, &buf, &e), 0);
    ST_EQ_INT(st_rec_enriched_decode(ec, buf.data, buf.len, &eb, &e), -1);
    ST_EQ_INT(e.code, ST_ERR_INVALID);
    printf("  Listen as EnrichedListen: %s\n", e.text);

    /* Too many tags: refused on encode. */
    en.n_tags = ST_REC_TAGS_MAX + 1;
    st_err_clear(&e);
    ST_EQ_INT(st_rec_enriched_encode(ec, &en, &buf, &e), -1);
    ST_EQ_INT(e.code, ST_ERR_INVALID);

    /* The wrong codec is named, not crashed on. */
    st_err_clear(&e);
    ST_EQ_INT(st_rec_enriched_encode(lc, &(st_rec_enriched_t){.listen = l}, &buf, &e), -1);
    ST_CHECK(strstr(e.text, "duration_ms") != NULL);

    /* A required string left unset is refused, named. */
    st_rec_listen_t unset = l;
    unset.track_key = st_str(NULL);
    st_err_clear(&e);
    ST_EQ_INT(st_rec_listen_encode(lc, &unset, &buf, &e), -1);
    ST_EQ_INT(e.code, ST_ERR_INVALID);
    ST_CHECK(strstr(e.text, "track_key") != NULL);

    /* An empty user id is refused both ways. */
    l.user_id = st_str("");
    st_err_clear(&e);
    ST_EQ_INT(st_rec_listen_encode(lc, &l, &buf, &e), -1);
    ST_CHECK(strstr(e.text, "user_id") != NULL);
    st_buf_free(&buf);
    st_avro_codec_destroy(lc);
    st_avro_codec_destroy(ec);
}

static st_rec_session_event_t full_event(void)
{
    st_rec_session_event_t s = {
        .session_id = st_str("user_000002:1000"),
        .user_id = st_str("user_000002"),
        .kind = ST_SESSION_EVENT_CLOSED,
        .start_ms = 1000,
        .session_index = 7,
        .start_hour_utc = 13,
        .start_weekday = 4,
        .prev_session_length_s = {true, 610.5},
        .mean_session_length_s = {true, 700.25},
        .median_session_length_s = {true, 650},
        .gap_since_prev_s = {true, 86400},
        .n_recent_lengths = 3,
        .recent_lengths_s = {100, 200.5, 300},
        .n_recent_starts = 3,
        .recent_starts_ms = {-5000, -3000, -1000},
        .n_recent_track_counts = 3,
        .recent_track_counts = {3, 5, 8},
        .n_recent_unknown_shares = 3,
        .recent_unknown_shares = {0, 0.25, 1},
        .gender = st_str("f"),
        .age = {true, 31},
        .country = st_str("Iceland"),
        .registered_ms = {true, -86400000},
        .revision = 2,
        .n_retracted = 2,
        .retracted_session_ids = {st_str("user_000002:900"), st_str("user_000002:950")},
        .end_ms = {true, 2000000},
        .last_start_ms = {true, 1900000},
        .length_s = {true, 1999},
        .track_count = 9,
        .unknown_duration_share = {true, 0.125},
    };
    return s;
}

static void test_session_event(void)
{
    st_avro_codec_t *c = codec("SessionEvent");
    ST_REQUIRE(c);
    st_buf_t buf = {0};
    st_err_t e = {0};
    st_rec_session_event_t s = full_event(), b;
    ST_EQ_INT(st_rec_session_event_encode(c, &s, &buf, &e), 0);
    if (e.code)
        fprintf(stderr, "%s\n", e.text);
    check_all_fields_written(c, &buf, "SessionEvent");
    ST_EQ_INT(st_rec_session_event_decode(c, buf.data, buf.len, &b, &e), 0);
    ST_EQ_VIEW(b.session_id, "user_000002:1000");
    ST_EQ_VIEW(b.user_id, "user_000002");
    ST_EQ_INT(b.kind, ST_SESSION_EVENT_CLOSED);
    ST_EQ_INT(b.start_ms, 1000);
    ST_EQ_INT(b.session_index, 7);
    ST_EQ_INT(b.start_hour_utc, 13);
    ST_EQ_INT(b.start_weekday, 4);
    ST_CHECK(b.prev_session_length_s.set && b.prev_session_length_s.v == 610.5);
    ST_CHECK(b.mean_session_length_s.set && b.mean_session_length_s.v == 700.25);
    ST_CHECK(b.median_session_length_s.set && b.median_session_length_s.v == 650);
    ST_CHECK(b.gap_since_prev_s.set && b.gap_since_prev_s.v == 86400);
    ST_EQ_INT(b.n_recent_lengths, 3);
    ST_EQ_INT(b.n_recent_starts, 3);
    ST_EQ_INT(b.n_recent_track_counts, 3);
    ST_EQ_INT(b.n_recent_unknown_shares, 3);
    for (int i = 0; i < 3; i++) {
        ST_CHECK(b.recent_lengths_s[i] == s.recent_lengths_s[i]);
        ST_EQ_INT(b.recent_starts_ms[i], s.recent_starts_ms[i]);
        ST_EQ_INT(b.recent_track_counts[i], s.recent_track_counts[i]);
        ST_CHECK(b.recent_unknown_shares[i] == s.recent_unknown_shares[i]);
    }
    ST_EQ_VIEW(b.gender, "f");
    ST_CHECK(b.age.set && b.age.v == 31);
    ST_EQ_VIEW(b.country, "Iceland");
    ST_CHECK(b.registered_ms.set && b.registered_ms.v == -86400000);
    ST_EQ_INT(b.revision, 2);
    ST_EQ_INT(b.n_retracted, 2);
    ST_EQ_VIEW(b.retracted_session_ids[0], "user_000002:900");
    ST_EQ_VIEW(b.retracted_session_ids[1], "user_000002:950");
    ST_CHECK(b.end_ms.set && b.end_ms.v == 2000000);
    ST_CHECK(b.last_start_ms.set && b.last_start_ms.v == 1900000);
    ST_CHECK(b.length_s.set && b.length_s.v == 1999);
    ST_EQ_INT(b.track_count, 9);
    ST_CHECK(b.unknown_duration_share.set && b.unknown_duration_share.v == 0.125);

    /* An OPENED with nothing optional: nulls and empty arrays come back as such. */
    st_rec_session_event_t o = {.session_id = st_str("u:5"),
                                .user_id = st_str("u"),
                                .kind = ST_SESSION_EVENT_OPENED,
                                .start_ms = 5};
    ST_EQ_INT(st_rec_session_event_encode(c, &o, &buf, &e), 0);
    ST_EQ_INT(st_rec_session_event_decode(c, buf.data, buf.len, &b, &e), 0);
    ST_EQ_INT(b.kind, ST_SESSION_EVENT_OPENED);
    ST_CHECK(!b.prev_session_length_s.set && !b.length_s.set && !b.age.set);
    ST_CHECK(b.gender.ptr == NULL && b.country.ptr == NULL);
    ST_EQ_INT(b.n_recent_lengths + b.n_recent_starts + b.n_retracted, 0);

    /* Contract: each violation is refused on encode with a reason. */
    st_rec_session_event_t bad = full_event();
    bad.user_id = st_str("");
    st_err_clear(&e);
    ST_EQ_INT(st_rec_session_event_encode(c, &bad, &buf, &e), -1);
    ST_CHECK(strstr(e.text, "user_id") != NULL);
    char long_id[ST_SESSION_USER_ID_MAX + 2];
    memset(long_id, 'x', sizeof long_id - 1);
    long_id[sizeof long_id - 1] = 0;
    bad = full_event();
    bad.user_id = st_str(long_id);
    st_err_clear(&e);
    ST_EQ_INT(st_rec_session_event_encode(c, &bad, &buf, &e), -1);
    bad = full_event();
    bad.session_index = -1;
    st_err_clear(&e);
    ST_EQ_INT(st_rec_session_event_encode(c, &bad, &buf, &e), -1);
    bad = full_event();
    bad.length_s.set = false;
    st_err_clear(&e);
    ST_EQ_INT(st_rec_session_event_encode(c, &bad, &buf, &e), -1);
    ST_CHECK(strstr(e.text, "length_s") != NULL);
    bad = full_event();
    bad.kind = (st_session_event_kind_t)5;
    st_err_clear(&e);
    ST_EQ_INT(st_rec_session_event_encode(c, &bad, &buf, &e), -1);
    ST_CHECK(strstr(e.text, "kind") != NULL);
    bad = full_event();
    bad.n_retracted = ST_SESSION_RETRACT_MAX + 1;
    st_err_clear(&e);
    ST_EQ_INT(st_rec_session_event_encode(c, &bad, &buf, &e), -1);

    /* The same violations written by another producer are refused on decode. */
    avro_value_t *rec = st_avro_codec_record(c);
    ST_EQ_INT(st_avro_set_string(rec, "session_id", "x:1"), 0);
    ST_EQ_INT(st_avro_set_string(rec, "user_id", "x"), 0);
    ST_EQ_INT(st_avro_set_enum(rec, "kind", "CLOSED"), 0);
    ST_EQ_INT(st_avro_codec_encode(c, rec, &buf, &e), 0);
    st_err_clear(&e);
    ST_EQ_INT(st_rec_session_event_decode(c, buf.data, buf.len, &b, &e), -1);
    ST_EQ_INT(e.code, ST_ERR_INVALID);
    ST_CHECK(strstr(e.text, "CLOSED without a valid length_s") != NULL);
    rec = st_avro_codec_record(c);
    ST_EQ_INT(st_avro_set_string(rec, "session_id", "x:1"), 0);
    ST_EQ_INT(st_avro_set_string(rec, "user_id", "x"), 0);
    const char *ids[ST_SESSION_RETRACT_MAX + 1];
    for (int i = 0; i <= ST_SESSION_RETRACT_MAX; i++)
        ids[i] = "x:0";
    ST_EQ_INT(
        st_avro_set_string_array(rec, "retracted_session_ids", ids, ST_SESSION_RETRACT_MAX + 1), 0);
    ST_EQ_INT(st_avro_codec_encode(c, rec, &buf, &e), 0);
    st_err_clear(&e);
    ST_EQ_INT(st_rec_session_event_decode(c, buf.data, buf.len, &b, &e), -1);
    ST_CHECK(strstr(e.text, "retracted_session_ids") != NULL);
    /* A CLOSED longer than 1e9 s (its sum would overflow the consumers' statistics), a negative
     * start (the consumers' "none yet" mark) and the last revision (no room for its retraction)
     * are written (the sessionizer must not stop on its own output) but refused on decode. */
    static const struct {
        double length_s;
        int64_t start_ms;
        int32_t revision;
        const char *why;
    } beyond[] = {
        {1.5e308, 1000, 0, "length_s"}, {60, -1, 0, "start_ms"}, {60, 1000, INT32_MAX, "revision"}};
    for (size_t i = 0; i < sizeof beyond / sizeof beyond[0]; i++) {
        bad = full_event();
        bad.kind = ST_SESSION_EVENT_CLOSED;
        bad.length_s = (st_opt_f64_t){true, beyond[i].length_s};
        bad.start_ms = beyond[i].start_ms;
        bad.revision = beyond[i].revision;
        st_err_clear(&e);
        ST_EQ_INT(st_rec_session_event_encode(c, &bad, &buf, &e), 0);
        st_err_clear(&e);
        ST_EQ_INT(st_rec_session_event_decode(c, buf.data, buf.len, &b, &e), -1);
        ST_CHECK(strstr(e.text, beyond[i].why) != NULL);
    }
    bad = full_event();
    bad.kind = ST_SESSION_EVENT_CLOSED;
    bad.length_s = (st_opt_f64_t){true, 1e9};
    ST_EQ_INT(st_rec_session_event_encode(c, &bad, &buf, &e), 0);
    ST_EQ_INT(st_rec_session_event_decode(c, buf.data, buf.len, &b, &e), 0);

    /* More recent sessions than the limit: the newest are kept. */
    rec = st_avro_codec_record(c);
    ST_EQ_INT(st_avro_set_string(rec, "session_id", "x:1"), 0);
    ST_EQ_INT(st_avro_set_string(rec, "user_id", "x"), 0);
    double many[ST_SESSION_RECENT_MAX + 5];
    for (int i = 0; i < ST_SESSION_RECENT_MAX + 5; i++)
        many[i] = i + 1;
    ST_EQ_INT(st_avro_set_double_array(rec, "recent_lengths_s", many, ST_SESSION_RECENT_MAX + 5),
              0);
    ST_EQ_INT(st_avro_codec_encode(c, rec, &buf, &e), 0);
    ST_EQ_INT(st_rec_session_event_decode(c, buf.data, buf.len, &b, &e), 0);
    ST_EQ_INT(b.n_recent_lengths, ST_SESSION_RECENT_MAX);
    ST_CHECK(b.recent_lengths_s[0] == 6 &&
             b.recent_lengths_s[ST_SESSION_RECENT_MAX - 1] == ST_SESSION_RECENT_MAX + 5);

    /* Garbage is refused with the codec's reason. */
    st_err_clear(&e);
    ST_EQ_INT(st_rec_session_event_decode(c, "\0\0\0\0\x09\x02", 6, &b, &e), -1);
    ST_EQ_INT(e.code, ST_ERR_INVALID);
    st_buf_free(&buf);
    st_avro_codec_destroy(c);
}

static void test_profile_cluster(void)
{
    st_avro_codec_t *pc = codec("UserProfile"), *cc = codec("ClusterAssignment");
    ST_REQUIRE(pc && cc);
    st_buf_t buf = {0};
    st_err_t e = {0};
    st_rec_profile_t p = {.user_id = st_str("user_000003"),
                          .gender = st_str("m"),
                          .age = {true, 45},
                          .country = st_str("Japan"),
                          .registered_ms = {true, 1100000000000}},
                     pb;
    /* A user id with a NUL byte (another user's id up to it) is refused on decode. */
    avro_value_t *rec = st_avro_codec_record(pc);
    ST_EQ_INT(st_avro_set_string_len(rec, "user_id", "alice\0evil", 10), 0);
    ST_EQ_INT(st_avro_codec_encode(pc, rec, &buf, &e), 0);
    st_err_clear(&e);
    ST_EQ_INT(st_rec_profile_decode(pc, buf.data, buf.len, &pb, &e), -1);
    ST_CHECK(strstr(e.text, "NUL") != NULL);
    st_err_clear(&e);
    ST_EQ_INT(st_rec_profile_encode(pc, &p, &buf, &e), 0);
    check_all_fields_written(pc, &buf, "UserProfile");
    ST_EQ_INT(st_rec_profile_decode(pc, buf.data, buf.len, &pb, &e), 0);
    ST_EQ_VIEW(pb.user_id, "user_000003");
    ST_EQ_VIEW(pb.gender, "m");
    ST_CHECK(pb.age.set && pb.age.v == 45);
    ST_EQ_VIEW(pb.country, "Japan");
    ST_CHECK(pb.registered_ms.set && pb.registered_ms.v == 1100000000000);

    st_rec_cluster_t k = {.user_id = st_str("user_000003"),
                          .cluster = 3,
                          .cold = true,
                          .clustering_version = st_str("km-20261203")},
                     kb;
    ST_EQ_INT(st_rec_cluster_encode(cc, &k, &buf, &e), 0);
    check_all_fields_written(cc, &buf, "ClusterAssignment");
    ST_EQ_INT(st_rec_cluster_decode(cc, buf.data, buf.len, &kb, &e), 0);
    ST_EQ_VIEW(kb.user_id, "user_000003");
    ST_EQ_INT(kb.cluster, 3);
    ST_CHECK(kb.cold);
    ST_EQ_VIEW(kb.clustering_version, "km-20261203");
    st_buf_free(&buf);
    st_avro_codec_destroy(pc);
    st_avro_codec_destroy(cc);
}

static void test_prediction_outcome_dead_letter(void)
{
    st_avro_codec_t *pc = codec("Prediction"), *oc = codec("PredictionOutcome"),
                    *dc = codec("DeadLetter");
    ST_REQUIRE(pc && oc && dc);
    st_buf_t buf = {0};
    st_err_t e = {0};
    st_rec_prediction_t p = {.session_id = st_str("u:1"),
                             .user_id = st_str("u"),
                             .session_start_ms = 1,
                             .predicted_length_s = 1234.5,
                             .baseline_length_s = 999.25,
                             .cluster = {true, 2},
                             .model_version = st_str("v7"),
                             .predictor = ST_REC_PREDICTOR_BASELINE,
                             .revision = 3,
                             .retracted = true,
                             .made_at_ms = 42},
                        pb;
    ST_EQ_INT(st_rec_prediction_encode(pc, &p, &buf, &e), 0);
    check_all_fields_written(pc, &buf, "Prediction");
    ST_EQ_INT(st_rec_prediction_decode(pc, buf.data, buf.len, &pb, &e), 0);
    ST_EQ_VIEW(pb.session_id, "u:1");
    ST_EQ_VIEW(pb.user_id, "u");
    ST_EQ_INT(pb.session_start_ms, 1);
    ST_CHECK(pb.predicted_length_s == 1234.5 && pb.baseline_length_s == 999.25);
    ST_CHECK(pb.cluster.set && pb.cluster.v == 2);
    ST_EQ_VIEW(pb.model_version, "v7");
    ST_EQ_INT(pb.predictor, ST_REC_PREDICTOR_BASELINE);
    ST_EQ_INT(pb.revision, 3);
    ST_CHECK(pb.retracted);
    ST_EQ_INT(pb.made_at_ms, 42);
    st_rec_prediction_t bad = p;
    bad.predictor = (st_rec_predictor_t)7;
    st_err_clear(&e);
    ST_EQ_INT(st_rec_prediction_encode(pc, &bad, &buf, &e), -1);
    ST_CHECK(strstr(e.text, "predictor") != NULL);
    st_err_clear(&e);

    st_rec_outcome_t o = {.session_id = st_str("u:1"),
                          .user_id = st_str("u"),
                          .session_start_ms = 1,
                          .predicted_length_s = 10,
                          .baseline_length_s = 20,
                          .actual_length_s = 15,
                          .abs_error_s = 5,
                          .baseline_abs_error_s = 5.5,
                          .cluster = {true, 1},
                          .model_version = st_str("v7"),
                          .predictor = ST_REC_PREDICTOR_BASELINE},
                     ob;
    ST_EQ_INT(st_rec_outcome_encode(oc, &o, &buf, &e), 0);
    check_all_fields_written(oc, &buf, "PredictionOutcome");
    ST_EQ_INT(st_rec_outcome_decode(oc, buf.data, buf.len, &ob, &e), 0);
    ST_EQ_VIEW(ob.session_id, "u:1");
    ST_CHECK(ob.predicted_length_s == 10 && ob.baseline_length_s == 20 &&
             ob.actual_length_s == 15 && ob.abs_error_s == 5 && ob.baseline_abs_error_s == 5.5);
    ST_CHECK(ob.cluster.set && ob.cluster.v == 1);
    ST_EQ_VIEW(ob.model_version, "v7");
    ST_EQ_INT(ob.predictor, ST_REC_PREDICTOR_BASELINE);

    static const char value[] = {'\0', 'a', '\xff'};
    st_rec_dead_letter_t d = {.source_topic = st_str("listens.raw"),
                              .source_partition = 3,
                              .source_offset = 77,
                              .error_code = st_str("bad_json"),
                              .error = st_str("not JSON"),
                              .original_key = {"k\0y", 3},
                              .original_value = {value, sizeof value},
                              .failed_at_ms = 99},
                         db;
    ST_EQ_INT(st_rec_dead_letter_encode(dc, &d, &buf, &e), 0);
    check_all_fields_written(dc, &buf, "DeadLetter");
    ST_EQ_INT(st_rec_dead_letter_decode(dc, buf.data, buf.len, &db, &e), 0);
    ST_EQ_VIEW(db.source_topic, "listens.raw");
    ST_EQ_INT(db.source_partition, 3);
    ST_EQ_INT(db.source_offset, 77);
    ST_EQ_VIEW(db.error_code, "bad_json");
    ST_EQ_VIEW(db.error, "not JSON");
    ST_CHECK(db.original_key.len == 3 && memcmp(db.original_key.ptr, "k\0y", 3) == 0);
    ST_CHECK(db.original_value.len == 3 && memcmp(db.original_value.ptr, value, 3) == 0);
    ST_EQ_INT(db.failed_at_ms, 99);
    d.original_key = st_str(NULL);
    ST_EQ_INT(st_rec_dead_letter_encode(dc, &d, &buf, &e), 0);
    ST_EQ_INT(st_rec_dead_letter_decode(dc, buf.data, buf.len, &db, &e), 0);
    ST_CHECK(db.original_key.ptr == NULL);
    st_buf_free(&buf);
    st_avro_codec_destroy(pc);
    st_avro_codec_destroy(oc);
    st_avro_codec_destroy(dc);
}

/* A message written with an older schema under schemas/history/ (static id from ids.conf),
 * by hand, as a producer of that version would. */
static int history_codec(const char *record, const char *file, int32_t id, st_avro_registry_t **r,
                         st_avro_codec_t **c)
{
    char dir[] = "/tmp/stint-test-records-XXXXXX", path[2600], src[1200], err[512];
    if (!mkdtemp(dir))
        return -1;
    snprintf(src, sizeof src, "%s/history/%s", schemas_dir, file);
    snprintf(path, sizeof path, "cp '%s' '%s/old.avsc' && echo '%d old.avsc' > '%s/ids.conf'", src,
             dir, (int)id, dir);
    if (system(path) != 0)
        return -1;
    *r = st_avro_registry_new(dir, NULL, err, sizeof err);
    *c = *r ? st_avro_codec_new(*r, record, "t", err, sizeof err) : NULL;
    snprintf(path, sizeof path, "rm -rf '%s'", dir);
    if (system(path) != 0 || !*c) {
        fprintf(stderr, "history codec %s: %s\n", file, err);
        return -1;
    }
    return 0;
}

static void test_history_versions(void)
{
    st_avro_registry_t *old_reg = NULL;
    st_avro_codec_t *w = NULL, *c = codec("SessionEvent");
    st_buf_t buf = {0};
    st_err_t e = {0};
    ST_REQUIRE(c && history_codec("SessionEvent", "session_event.v1.avsc", 3, &old_reg, &w) == 0);
    ST_EQ_INT(st_avro_codec_schema_id(w), 3);
    avro_value_t *rec = st_avro_codec_record(w);
    ST_EQ_INT(st_avro_set_string(rec, "session_id", "u:10"), 0);
    ST_EQ_INT(st_avro_set_string(rec, "user_id", "u"), 0);
    ST_EQ_INT(st_avro_set_enum(rec, "kind", "CLOSED"), 0);
    ST_EQ_INT(st_avro_set_long(rec, "start_ms", 10), 0);
    ST_EQ_INT(st_avro_set_int(rec, "session_index", 4), 0);
    ST_EQ_INT(st_avro_set_nullable_double(rec, "length_s", &(double){321}), 0);
    ST_EQ_INT(st_avro_set_int(rec, "track_count", 6), 0);
    ST_EQ_INT(st_avro_codec_encode(w, rec, &buf, &e), 0);
    st_rec_session_event_t s;
    ST_EQ_INT(st_rec_session_event_decode(c, buf.data, buf.len, &s, &e), 0);
    if (e.code)
        fprintf(stderr, "%s\n", e.text);
    ST_EQ_VIEW(s.session_id, "u:10");
    ST_EQ_INT(s.kind, ST_SESSION_EVENT_CLOSED);
    ST_EQ_INT(s.session_index, 4);
    ST_CHECK(s.length_s.set && s.length_s.v == 321);
    ST_EQ_INT(s.track_count, 6);
    /* Fields v1 lacks: the reader's defaults. */
    ST_EQ_INT(s.revision, 0);
    ST_EQ_INT(s.n_retracted + s.n_recent_starts + s.n_recent_track_counts, 0);
    ST_CHECK(!s.last_start_ms.set);
    st_avro_codec_destroy(w);
    st_avro_registry_destroy(old_reg);
    st_avro_codec_destroy(c);

    c = codec("Prediction");
    ST_REQUIRE(c && history_codec("Prediction", "prediction.v1.avsc", 6, &old_reg, &w) == 0);
    rec = st_avro_codec_record(w);
    ST_EQ_INT(st_avro_set_string(rec, "session_id", "u:10"), 0);
    ST_EQ_INT(st_avro_set_string(rec, "user_id", "u"), 0);
    ST_EQ_INT(st_avro_set_double(rec, "predicted_length_s", 50), 0);
    ST_EQ_INT(st_avro_set_string(rec, "model_version", "v1"), 0);
    ST_EQ_INT(st_avro_set_enum(rec, "predictor", "MODEL"), 0);
    ST_EQ_INT(st_avro_codec_encode(w, rec, &buf, &e), 0);
    st_rec_prediction_t p;
    ST_EQ_INT(st_rec_prediction_decode(c, buf.data, buf.len, &p, &e), 0);
    ST_EQ_VIEW(p.session_id, "u:10");
    ST_CHECK(p.predicted_length_s == 50);
    ST_EQ_INT(p.predictor, ST_REC_PREDICTOR_MODEL);
    ST_EQ_INT(p.revision, 0);
    ST_CHECK(!p.retracted);
    st_avro_codec_destroy(w);
    st_avro_registry_destroy(old_reg);
    st_avro_codec_destroy(c);
    st_buf_free(&buf);
}

int main(void)
{
    const char *src = getenv("STINT_SOURCE_DIR");
    snprintf(schemas_dir, sizeof schemas_dir, "%s/schemas", src ? src : STINT_SOURCE_DIR);
    char err[512] = "";
    reg = st_avro_registry_new(schemas_dir, NULL, err, sizeof err);
    if (!reg) {
        fprintf(stderr, "registry: %s\n", err);
        return 1;
    }
    ST_RUN(test_listen_and_enriched);
    ST_RUN(test_session_event);
    ST_RUN(test_profile_cluster);
    ST_RUN(test_prediction_outcome_dead_letter);
    ST_RUN(test_history_versions);
    st_avro_registry_destroy(reg);
    return st_test_summary();
}
