/* Unit tests of st_session: the rule at the gap boundary (known/unknown durations, both reference
 * points), lengths, duplicates, deadlines, history features, and the state serialisation. */
#include "st_buf.h"
#include "st_rkey.h"
#include "st_session.h"
#include "st_sessionizer.h"
#include "st_test.h"

#define S 1000LL /* ms per second */

static st_session_rule_t rule_of(st_session_ref_t ref)
{
    st_session_rule_t r;
    st_session_rule_default(&r);
    r.ref = ref;
    return r;
}

/* Opens a session with one listen at 0 s of duration d_s (<= 0 unknown), then steps a listen at
 * at_s and returns what the rule said. */
static st_session_step_t two_listens(st_session_ref_t ref, int64_t d_s, int64_t at_s,
                                     st_session_summary_t *closed)
{
    st_session_rule_t rule = rule_of(ref);
    st_session_open_t open = {0};
    st_session_listen_t a = {0, d_s * S, 1}, b = {at_s * S, 100 * S, 2};
    if (st_session_step(&rule, &open, &a, NULL) != ST_SESSION_STARTED)
        return (st_session_step_t)-1;
    return st_session_step(&rule, &open, &b, closed);
}

static void test_gap_boundaries(void)
{
    static const struct {
        st_session_ref_t ref;
        int64_t d_s;  /* duration of the first track, <= 0 unknown */
        int64_t at_s; /* start of the second */
        st_session_step_t want;
    } cases[] = {
        /* known duration, end reference: gap measured from the end of the track */
        {ST_SESSION_REF_END, 200, 200 + 1799, ST_SESSION_CONTINUED},
        {ST_SESSION_REF_END, 200, 200 + 1800, ST_SESSION_CONTINUED},
        {ST_SESSION_REF_END, 200, 200 + 1801, ST_SESSION_SPLIT},
        /* gap <= d (a long track) always continues */
        {ST_SESSION_REF_END, 3000, 2500, ST_SESSION_CONTINUED},
        {ST_SESSION_REF_END, 3000, 3000 + 1800, ST_SESSION_CONTINUED},
        {ST_SESSION_REF_END, 3000, 3000 + 1801, ST_SESSION_SPLIT},
        /* unknown duration (0 or negative): start to start */
        {ST_SESSION_REF_END, 0, 1799, ST_SESSION_CONTINUED},
        {ST_SESSION_REF_END, 0, 1800, ST_SESSION_CONTINUED},
        {ST_SESSION_REF_END, 0, 1801, ST_SESSION_SPLIT},
        {ST_SESSION_REF_END, -5, 1801, ST_SESSION_SPLIT},
        /* start reference: the duration is ignored */
        {ST_SESSION_REF_START, 200, 1799, ST_SESSION_CONTINUED},
        {ST_SESSION_REF_START, 200, 1800, ST_SESSION_CONTINUED},
        {ST_SESSION_REF_START, 200, 1801, ST_SESSION_SPLIT},
        {ST_SESSION_REF_START, 200, 200 + 1799, ST_SESSION_SPLIT},
        {ST_SESSION_REF_START, 0, 1800, ST_SESSION_CONTINUED},
        {ST_SESSION_REF_START, 0, 1801, ST_SESSION_SPLIT},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        st_session_summary_t closed;
        st_session_step_t got = two_listens(cases[i].ref, cases[i].d_s, cases[i].at_s, &closed);
        if (got != cases[i].want)
            ST_FAIL_AT("case %zu (ref %s, d %llds, at %llds): step %d, want %d", i,
                       st_session_ref_name(cases[i].ref), (long long)cases[i].d_s,
                       (long long)cases[i].at_s, (int)got, (int)cases[i].want);
        if (got == ST_SESSION_SPLIT) {
            /* The closed one-track session is as long as its track (0 if unknown). */
            ST_EQ_INT(closed.track_count, 1);
            ST_EQ_INT(closed.length_ms, cases[i].d_s > 0 ? cases[i].d_s * S : 0);
        }
    }
}

static void test_configured_gap(void)
{
    st_session_rule_t rule = {600 * S, ST_SESSION_REF_END};
    st_session_open_t open = {0};
    st_session_listen_t a = {0, 100 * S, 1}, b = {700 * S, 0, 2}, c = {1301 * S, 0, 3};
    ST_EQ_INT(st_session_step(&rule, &open, &a, NULL), ST_SESSION_STARTED);
    ST_EQ_INT(st_session_deadline_ms(&rule, &open), 700 * S);
    ST_EQ_INT(st_session_step(&rule, &open, &b, NULL), ST_SESSION_CONTINUED);
    ST_EQ_INT(st_session_deadline_ms(&rule, &open), 1300 * S); /* unknown: start + gap */
    ST_EQ_INT(st_session_step(&rule, &open, &c, NULL), ST_SESSION_SPLIT);
}

static void test_worked_length(void)
{
    /* 10:00:00 (180 s), 10:03:20 (240 s), 10:08:20 (unknown), 10:11:40 (300 s):
     * length = last start - first start + last duration = 700 + 300 = 1000 s. */
    st_session_rule_t rule = rule_of(ST_SESSION_REF_END);
    int64_t t0 = 1241431200000LL; /* 2009-05-04T10:00:00Z */
    st_session_listen_t ls[] = {{t0, 180 * S, 11},
                                {t0 + 200 * S, 240 * S, 12},
                                {t0 + 500 * S, 0, 13},
                                {t0 + 700 * S, 300 * S, 14}};
    st_session_open_t open = {0};
    for (size_t i = 0; i < 4; i++)
        st_session_step(&rule, &open, &ls[i], NULL);
    st_session_summary_t s;
    ST_EQ_INT(st_session_close(&open, &s), 0);
    ST_EQ_INT(s.start_ms, t0);
    ST_EQ_INT(s.end_ms, t0 + 1000 * S);
    ST_EQ_INT(s.length_ms, 1000 * S);
    ST_NEAR(s.length_s, 1000.0, 1e-9);
    ST_EQ_INT(s.track_count, 4);
    ST_EQ_INT(s.unknown_duration_count, 1);
    ST_NEAR(s.unknown_duration_share, 0.25, 1e-12);
    ST_CHECK(!open.active);
    ST_EQ_INT(st_session_close(&open, &s), -1);

    /* Last track unknown: length = last start - first start. */
    st_session_listen_t u[] = {{t0, 180 * S, 1}, {t0 + 400 * S, -1, 2}};
    for (size_t i = 0; i < 2; i++)
        st_session_step(&rule, &open, &u[i], NULL);
    st_session_close(&open, &s);
    ST_EQ_INT(s.length_ms, 400 * S);
    ST_NEAR(s.unknown_duration_share, 0.5, 1e-12);
}

static void test_duplicates(void)
{
    st_session_rule_t rule = rule_of(ST_SESSION_REF_END);
    st_session_open_t open = {0};
    st_session_listen_t a = {1000, 200 * S, 7}, same = {1000, 200 * S, 7}, other = {1000, 0, 8};
    ST_EQ_INT(st_session_step(&rule, &open, &a, NULL), ST_SESSION_STARTED);
    ST_EQ_INT(st_session_step(&rule, &open, &same, NULL), ST_SESSION_DUPLICATE);
    ST_EQ_INT(open.track_count, 1);
    ST_EQ_INT(st_session_step(&rule, &open, &other, NULL), ST_SESSION_CONTINUED);
    ST_EQ_INT(open.track_count, 2);
    ST_CHECK(st_session_identity_hash("ab", 2, "c", 1) !=
             st_session_identity_hash("a", 1, "bc", 2));
    /* Pinned: stored positions (the sessionizer's state in Redis) carry it, so a build that
     * hashed differently would take every replayed listen for a new one. */
    ST_EQ_U64(st_session_identity_hash("x", 1, "y", 1), UINT64_C(6616247341118578443));
}

static void test_hour_weekday(void)
{
    static const struct {
        int64_t ms;
        int hour, weekday;
    } cases[] = {
        {0, 0, 3},                         /* 1970-01-01 Thursday */
        {1241478537000LL, 23, 0},          /* 2009-05-04T23:08:57Z Monday */
        {1241478537000LL + 3600000, 0, 1}, /* Tuesday 00:08 */
        {-3600000, 23, 2},                 /* 1969-12-31T23:00Z Wednesday */
        {1483228800000LL, 0, 6},           /* 2017-01-01 Sunday */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int h, wd;
        st_session_hour_weekday(cases[i].ms, &h, &wd);
        ST_EQ_INT(h, cases[i].hour);
        ST_EQ_INT(wd, cases[i].weekday);
    }
}

static st_session_summary_t summary_of(int64_t start_s, int64_t length_s)
{
    st_session_summary_t s = {0};
    s.start_ms = start_s * S;
    s.last_start_ms = s.start_ms;
    s.end_ms = (start_s + length_s) * S;
    s.length_ms = length_s * S;
    s.track_count = 1;
    return s;
}

static void test_features(void)
{
    st_session_history_t h = {0};
    st_session_features_t f;
    st_session_features(&h, 1241478537000LL, &f);
    ST_CHECK(!f.has_prev);
    ST_EQ_INT(f.session_index, 0);
    ST_EQ_INT(f.hour_utc, 23);
    ST_EQ_INT(f.n_recent, 0);

    int64_t lengths[] = {100, 400, 200, 1000};
    for (size_t i = 0; i < 4; i++) {
        st_session_summary_t s = summary_of(10000 * (int64_t)(i + 1), lengths[i]);
        st_session_history_add(&h, &s, 3);
    }
    st_session_features(&h, 50000 * S, &f);
    ST_CHECK(f.has_prev);
    ST_EQ_INT(f.session_index, 4);
    ST_NEAR(f.prev_session_length_s, 1000, 1e-9);
    ST_NEAR(f.mean_session_length_s, (100 + 400 + 200 + 1000) / 4.0, 1e-9);
    ST_EQ_INT(f.n_recent, 3); /* keeps the last 3: 400, 200, 1000 (newest last) */
    ST_NEAR(f.recent_lengths_s[0], 400, 1e-9);
    ST_NEAR(f.recent_lengths_s[2], 1000, 1e-9);
    ST_NEAR(f.median_session_length_s, 400, 1e-9);
    ST_NEAR(f.gap_since_prev_s, 50000 - (40000 + 1000), 1e-9);

    st_session_history_t e = {0};
    st_session_summary_t a = summary_of(0, 100), b = summary_of(1000, 300);
    st_session_history_add(&e, &a, 16);
    st_session_history_add(&e, &b, 16);
    st_session_features(&e, 5000 * S, &f);
    ST_NEAR(f.median_session_length_s, 200, 1e-9); /* even count: mean of the middle two */

    /* The median covers the last ST_SESSION_MEDIAN_WINDOW sessions even when more are kept: of 21
     * sessions of 1000, 2000, ... 21000 s, the last 16 are 6000..21000 s. */
    st_session_history_t w = {0};
    for (int i = 1; i <= 21; i++) {
        st_session_summary_t x = summary_of(100000 * (int64_t)i, 1000 * (int64_t)i);
        st_session_history_add(&w, &x, 64);
    }
    st_session_features(&w, 5000000 * S, &f);
    ST_EQ_INT(f.n_recent, 21);
    ST_NEAR(f.median_session_length_s, (13000 + 14000) / 2.0, 1e-9);

    char id[ST_SESSION_ID_MAX];
    ST_EQ_STR(st_session_id_format("user_000001", 11, 1241478537000LL, id, sizeof id),
              "user_000001:1241478537000");
}

/* A small deterministic PRNG (splitmix64). */
static uint64_t rng_state = 42;
static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static int64_t rnd_signed(void)
{
    int64_t v = (int64_t)(rnd() % (1ULL << 45));
    return rnd() % 2 ? -v : v;
}

static void test_state_round_trip(void)
{
    for (int iter = 0; iter < 500; iter++) {
        st_sessionizer_state_t st;
        memset(&st, 0, sizeof st);
        st.has_pos = rnd() % 4 != 0;
        if (st.has_pos) {
            st.pos = (st_sessionizer_pos_t){rnd_signed(), rnd(), (int64_t)(rnd() % (1ULL << 50)),
                                            (uint8_t)(rnd() % 2), rnd_signed()};
        }
        if (rnd() % 3 != 0) {
            st.open.active = true;
            st.open.first_start_ms = rnd_signed();
            st.open.last_start_ms = st.open.first_start_ms + (int64_t)(rnd() % 100000000);
            st.open.last_duration_ms = (int64_t)(rnd() % 1000000);
            st.open.last_identity_hash = rnd();
            st.open.track_count = 1 + (uint32_t)(rnd() % 5000);
            st.open.unknown_duration_count = (uint32_t)(rnd() % (st.open.track_count + 1));
        }
        st.history.session_count = (uint32_t)(rnd() % 100);
        st.history.sum_length_ms = rnd_signed();
        st.history.last_end_ms = rnd_signed();
        st.history.last_length_ms = rnd_signed();
        uint32_t n = st.history.session_count < 16 ? st.history.session_count : 16;
        st.history.n_recent = n;
        for (uint32_t i = 0; i < n; i++)
            st.history.recent_length_ms[i] = rnd_signed();
        /* Details for the newest n_detail sessions (older states have fewer). */
        st.history.n_detail = n ? (uint32_t)(rnd() % (n + 1)) : 0;
        for (uint32_t i = n - st.history.n_detail; i < n; i++) {
            st.history.recent_start_ms[i] = rnd_signed();
            st.history.recent_track_count[i] = 1 + (uint32_t)(rnd() % 500);
            st.history.recent_unknown_count[i] =
                (uint32_t)(rnd() % (st.history.recent_track_count[i] + 1));
        }
        st.n_ann = (uint32_t)(rnd() % (ST_SESSIONIZER_ANN_MAX + 1));
        for (uint32_t i = 0; i < st.n_ann; i++)
            st.ann[i] = (st_sessionizer_ann_t){rnd_signed(), rnd(), (uint32_t)(rnd() % 9),
                                               (int64_t)(rnd() % (1ULL << 50))};
        st_buf_t b = ST_BUF_INIT;
        ST_REQUIRE(st_sessionizer_state_encode(&st, &b) == 0);
        st_sessionizer_state_t back;
        st_err_t err = {0};
        ST_REQUIRE(st_sessionizer_state_decode(b.data, b.len, &back, &err) == 0);
        if (memcmp(&st, &back, sizeof st) != 0)
            ST_FAIL_AT("iteration %d: state differs after a round trip (%zu bytes)", iter, b.len);
        /* Every strict prefix and one extra byte are rejected. */
        for (size_t cut = 0; cut < b.len; cut++)
            if (st_sessionizer_state_decode(b.data, cut, &back, NULL) == 0)
                ST_FAIL_AT("iteration %d: a %zu-byte prefix of %zu decoded", iter, cut, b.len);
        st_buf_append(&b, "x", 1);
        ST_EQ_INT(st_sessionizer_state_decode(b.data, b.len, &back, &err), -1);
        st_buf_free(&b);
    }
    st_err_t err = {0};
    st_sessionizer_state_t back;
    ST_EQ_INT(st_sessionizer_state_decode("\x07\x00", 2, &back, &err), -1);
    ST_EQ_INT(err.code, ST_ERR_INVALID);
    /* A version 1 state (written before announcements): position 5 "1 0 2 0", no open session,
     * one session of 7 ms in the history; read with seen -1 and no details. */
    static const uint8_t v1[] = {1, 1, 10, 0, 0, 0, 0, 0, 0, 0, 0, 4, 1, 14, 40, 14, 1, 14};
    ST_EQ_INT(st_sessionizer_state_decode(v1, sizeof v1, &back, &err), 0);
    ST_CHECK(back.has_pos);
    ST_EQ_INT(back.pos.listened_at_ms, 5);
    ST_EQ_INT(back.pos.offset, 2);
    ST_EQ_INT(back.pos.seen, -1);
    ST_EQ_INT(back.history.session_count, 1);
    ST_EQ_INT(back.history.recent_length_ms[0], 7);
    ST_EQ_INT(back.history.n_detail, 0);
    ST_EQ_INT(back.n_ann, 0);
}

static size_t put_zigzag(uint8_t *p, int64_t v)
{
    uint64_t u = v < 0 ? ~((uint64_t)v << 1) : (uint64_t)v << 1;
    size_t n = 0;
    do {
        p[n] = (uint8_t)(u & 0x7f);
        u >>= 7;
        if (u)
            p[n] |= 0x80;
        n++;
    } while (u);
    return n;
}

/* A version 2 state with an open session (first start, last start - first start) and nothing
 * else. */
static size_t open_state(uint8_t *blob, int64_t first, int64_t delta)
{
    size_t n = 0;
    blob[n++] = 2;
    blob[n++] = 4; /* an open session, no position */
    n += put_zigzag(blob + n, first);
    n += put_zigzag(blob + n, delta);
    memset(blob + n, 0, 9); /* duration 0, identity hash */
    n += 9;
    blob[n++] = 1;          /* tracks */
    blob[n++] = 0;          /* unknown durations */
    memset(blob + n, 0, 7); /* empty history, no details, no announcements */
    return n + 7;
}

/* Found by tests/fuzz/fuzz_sessionizer_state: the open session's last start is stored as an offset
 * from its first start; a sum beyond int64 is a corrupt state, not a signed overflow. */
static void test_state_start_overflow(void)
{
    uint8_t blob[64];
    st_sessionizer_state_t back;
    st_err_t err = {0};
    const int64_t first = INT64_C(1) << 50;
    ST_EQ_INT(st_sessionizer_state_decode(blob, open_state(blob, first, INT64_MAX), &back, &err),
              -1);
    ST_EQ_INT(err.code, ST_ERR_INVALID);
    ST_EQ_INT(st_sessionizer_state_decode(blob, open_state(blob, first, -49), &back, NULL), 0);
    ST_EQ_INT(back.open.last_start_ms, first - 49);
}

/* Found by fuzz_sessionizer_state continuing from decoded states: the decoder took times and
 * lengths the sessionizer never writes (push bounds times to +-2^50 ms and durations to 2^40 ms),
 * and the arithmetic on them overflowed (a duration of -64 after a start near INT64_MIN, in
 * st_session_deadline_ms). Every such field is refused now; values within the bounds still load. */
static void test_state_out_of_range(void)
{
    st_sessionizer_state_t good = {0}, st, back;
    good.open = (st_session_open_t){true, 1241478537000LL, 1241478837000LL, 200000, 7, 2, 0};
    good.history.session_count = 3;
    good.history.sum_length_ms = 5400000;
    good.history.last_end_ms = 1241470000000LL;
    good.history.last_length_ms = 1800000;
    good.history.n_recent = 1;
    good.history.recent_length_ms[0] = 1800000;
    good.history.n_detail = 1;
    good.history.recent_start_ms[0] = 1241468200000LL;
    good.history.recent_track_count[0] = 9;
    good.n_ann = 1;
    good.ann[0].start_ms = 1241478537000LL;
    for (int variant = 0; variant <= 9; variant++) {
        st = good;
        const int64_t far = (INT64_C(1) << 50) + 1;
        switch (variant) {
        case 1:
            st.open.last_duration_ms = -64;
            break;
        case 2:
            st.open.last_duration_ms = (INT64_C(1) << 40) + 1;
            break;
        case 3:
            st.open.first_start_ms = -far;
            break;
        case 4:
            st.open.last_start_ms = far;
            break;
        case 5:
            st.history.last_end_ms = INT64_MAX - 5;
            break;
        case 6:
            st.history.sum_length_ms = INT64_MAX;
            break;
        case 7:
            st.history.recent_length_ms[0] = INT64_MIN;
            break;
        case 8:
            st.ann[0].start_ms = -far;
            break;
        case 9:
            st.ann[0].offset = INT64_MIN; /* revisions are computed from offsets */
            break;
        }
        st_buf_t b = ST_BUF_INIT;
        ST_REQUIRE(st_sessionizer_state_encode(&st, &b) == 0);
        st_err_t err = {0};
        int rc = st_sessionizer_state_decode(b.data, b.len, &back, &err);
        if (rc != (variant == 0 ? 0 : -1))
            ST_FAIL_AT("variant %d: decode returned %d", variant, rc);
        st_buf_free(&b);
    }
}

static void test_pos_text(void)
{
    st_sessionizer_pos_t a = {1241478537000LL, 0xfedcba9876543210ULL, 123456789, 1, 77}, b;
    char buf[ST_SESSIONIZER_POS_TEXT_MAX];
    st_sessionizer_pos_format(&a, buf, sizeof buf);
    ST_EQ_STR(buf, "1241478537000 4275878552 1985229328 123456789 1 77");
    ST_EQ_INT(st_sessionizer_pos_parse(buf, &b), 0);
    ST_EQ_INT(st_sessionizer_pos_cmp(&a, &b), 0);
    /* The five-field form of version 1 states: seen -1. */
    ST_EQ_INT(st_sessionizer_pos_parse("1 2 3 4 0", &b), 0);
    ST_EQ_INT(b.seen, -1);
    ST_EQ_INT(st_sessionizer_pos_parse("1 2 3 4 0 x", &b), -1);
    st_sessionizer_pos_t neg = {-5, 1, 0, 0, -1};
    st_sessionizer_pos_format(&neg, buf, sizeof buf);
    ST_EQ_INT(st_sessionizer_pos_parse(buf, &b), 0);
    ST_EQ_INT(b.listened_at_ms, -5);
    ST_EQ_INT(st_sessionizer_pos_parse("1 2 3 4", &b), -1);
    ST_EQ_INT(st_sessionizer_pos_parse("1 2 3 4 2", &b), -1);
    ST_EQ_INT(st_sessionizer_pos_parse("1 2 3 4 0 ", &b), -1);
    /* Lexicographic: time, identity, offset, closed, seen. */
    st_sessionizer_pos_t p0 = {10, 5, 3, 0, 9}, p1 = {10, 5, 3, 1, 0}, p1s = {10, 5, 3, 1, 4},
                         p2 = {10, 5, 4, 0, -1}, p3 = {10, 6, 0, 0, -1}, p4 = {11, 0, 0, 0, -1};
    const st_sessionizer_pos_t *seq[] = {&p0, &p1, &p1s, &p2, &p3, &p4};
    for (int i = 0; i + 1 < 6; i++) {
        ST_EQ_INT(st_sessionizer_pos_cmp(seq[i], seq[i + 1]), -1);
        ST_EQ_INT(st_sessionizer_pos_cmp(seq[i + 1], seq[i]), 1);
    }
}

static void test_keys(void)
{
    st_buf_t b = ST_BUF_INIT;
    ST_EQ_INT(st_rkey_user(&b, "t1", "user_1", 6, ST_RKEY_SESS, NULL), 0);
    ST_EQ_STR(b.data, "t1:u:{user_1}:sess");
    st_buf_reset(&b);
    ST_EQ_INT(st_rkey_partition(&b, "t1", ST_RKEY_DEADLINES, 7), 0);
    ST_EQ_STR(b.data, "t1:dl:{p7}");
    st_buf_reset(&b);
    ST_EQ_INT(st_rkey_partition(&b, "t1", ST_RKEY_COMMIT, 7), 0);
    ST_EQ_STR(b.data, "t1:st:{p7}");
    st_buf_reset(&b);
    ST_EQ_INT(st_rkey_user(&b, "t1", "u", 1, ST_RKEY_CLU_APPLIED_PRE, "sessions"), 0);
    ST_EQ_STR(b.data, "t1:u:{u}:clu:applied:sessions");
    st_buf_reset(&b);
    ST_EQ_INT(st_rkey_user(&b, "t1", "u", 1, ST_RKEY_INGEST_MARKS, NULL), 0);
    ST_EQ_STR(b.data, "t1:u:{u}:ingest:marks");
    st_buf_reset(&b);
    ST_EQ_INT(st_rkey_track(&b, "t1", 0xabcULL), 0);
    ST_EQ_STR(b.data, "t1:track:0000000000000abc");
    char fixed[32];
    ST_EQ_INT(st_rkey_track_to(fixed, sizeof fixed, "t1", 0xabcULL), 25);
    ST_EQ_STR(fixed, "t1:track:0000000000000abc");
    ST_EQ_INT(st_rkey_track_to(fixed, 25, "t1", 0xabcULL), -1); /* no room for the NUL */
    st_buf_reset(&b);
    ST_EQ_INT(st_rkey_refit(&b, "t1"), 0);
    ST_EQ_STR(b.data, "t1:clustering:refit");
    st_buf_free(&b);
    ST_CHECK(strstr(st_sessionizer_lua_put, "'SET'") != NULL);
    ST_EQ_INT(st_sessionizer_value_blob("1 2 3 4 0 -1\n\002\001", 14), 13);
    ST_EQ_INT(st_sessionizer_value_blob("no separator", 12), 0);
}

int main(void)
{
    ST_RUN(test_gap_boundaries);
    ST_RUN(test_configured_gap);
    ST_RUN(test_worked_length);
    ST_RUN(test_duplicates);
    ST_RUN(test_hour_weekday);
    ST_RUN(test_features);
    ST_RUN(test_state_round_trip);
    ST_RUN(test_state_start_overflow);
    ST_RUN(test_state_out_of_range);
    ST_RUN(test_pos_text);
    ST_RUN(test_keys);
    return st_test_summary();
}
