/* Unit: the predictor's per-user open predictions (services/predictor/pred_open.c): bounded
 * list sorted by start with the oldest dropped, retracted ids remembered and bounded, the Redis
 * text round trip (and the previous single-prediction layout), malformed lines skipped. The
 * batch logic is tested on the in-memory store in test_predictor_core.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pred_open.h"
#include "st_test.h"

static pred_open_entry_t entry(const char *sid, int64_t start_ms, int32_t rev, const char *payload)
{
    pred_open_entry_t e;
    memset(&e, 0, sizeof e);
    snprintf(e.sid, sizeof e.sid, "%s", sid);
    e.start_ms = start_ms;
    e.revision = rev;
    e.made_s = 1700000000 + start_ms;
    snprintf(e.payload, sizeof e.payload, "%s", payload);
    return e;
}

static void test_put_drop_oldest(void)
{
    pred_open_t p;
    pred_open_reset(&p);
    char sid[64];
    /* Out of order starts: kept sorted. */
    for (int i = PRED_OPEN_MAX - 1; i >= 0; i--) {
        snprintf(sid, sizeof sid, "u:%d", 1000 + i);
        pred_open_entry_t e = entry(sid, 1000 + i, 0, "1 2 -1 M v1");
        ST_EQ_INT(pred_open_put(&p, &e, NULL), 0);
    }
    ST_EQ_INT(p.n, PRED_OPEN_MAX);
    for (int i = 1; i < p.n; i++)
        ST_CHECK(p.e[i - 1].start_ms < p.e[i].start_ms);
    /* A correction replaces in place, no drop. */
    pred_open_entry_t c = entry("u:1003", 1003, 1, "5 2 -1 M v1"), dropped;
    ST_EQ_INT(pred_open_put(&p, &c, &dropped), 0);
    ST_EQ_INT(p.n, PRED_OPEN_MAX);
    int i = pred_open_find(&p, "u:1003");
    ST_REQUIRE(i >= 0);
    ST_EQ_INT(p.e[i].revision, 1);
    ST_EQ_STR(p.e[i].payload, "5 2 -1 M v1");
    /* One more: the oldest start goes. */
    pred_open_entry_t n = entry("u:2000", 2000, 0, "1 2 -1 B none");
    ST_EQ_INT(pred_open_put(&p, &n, &dropped), 1);
    ST_EQ_STR(dropped.sid, "u:1000");
    ST_EQ_INT(p.n, PRED_OPEN_MAX);
    ST_EQ_INT(pred_open_find(&p, "u:1000"), -1);
    ST_CHECK(pred_open_find(&p, "u:2000") == PRED_OPEN_MAX - 1);
    pred_open_remove(&p, 0, &dropped);
    ST_EQ_STR(dropped.sid, "u:1001");
    ST_EQ_INT(p.n, PRED_OPEN_MAX - 1);
}

static void test_retract_bounded(void)
{
    pred_open_t p;
    pred_open_reset(&p);
    char sid[64];
    for (int i = 0; i < PRED_OPEN_TOMB_MAX + 3; i++) {
        snprintf(sid, sizeof sid, "u:%d", 500 + i);
        pred_open_retract(&p, sid, 500 + i);
        pred_open_retract(&p, sid, 500 + i); /* twice: once */
    }
    ST_EQ_INT(p.n_tomb, PRED_OPEN_TOMB_MAX);
    ST_CHECK(!pred_open_is_retracted(&p, "u:500"));
    ST_CHECK(!pred_open_is_retracted(&p, "u:502"));
    ST_CHECK(pred_open_is_retracted(&p, "u:503"));
    ST_CHECK(pred_open_is_retracted(&p, "u:510"));
    ST_EQ_INT((int)pred_open_sid_start_ms("user:x:1234"), 1234);
    ST_EQ_INT((int)pred_open_sid_start_ms("nocolon"), -1);
    ST_EQ_INT((int)pred_open_sid_start_ms("u:12a"), -1);
}

static void test_text_round_trip(void)
{
    pred_open_t p, q;
    pred_open_reset(&p);
    pred_open_entry_t a = entry("user one:1000", 1000, 0, "12.5 30 2 M b-abc");
    pred_open_entry_t b = entry("user one:5000", 5000, 3, "7 30 -1 B none");
    pred_open_put(&p, &b, NULL);
    pred_open_put(&p, &a, NULL);
    pred_open_retract(&p, "user one:800", 800);   /* at or before closed_last: left out */
    pred_open_retract(&p, "user one:3000", 3000); /* kept */
    p.closed_last_ms = 900;
    st_buf_t t = {0};
    ST_EQ_INT(pred_open_format(&p, &t), 0);
    ST_EQ_INT(pred_open_parse(&q, t.data, t.len), 0);
    ST_EQ_INT(q.n, 2);
    ST_EQ_INT((int)q.closed_last_ms, 900);
    ST_EQ_STR(q.e[0].sid, "user one:1000");
    ST_EQ_STR(q.e[0].payload, "12.5 30 2 M b-abc");
    ST_EQ_INT((int)q.e[0].made_s, 1700001000);
    ST_EQ_STR(q.e[1].sid, "user one:5000");
    ST_EQ_INT(q.e[1].revision, 3);
    ST_EQ_INT((int)q.e[1].start_ms, 5000);
    ST_EQ_INT(q.n_tomb, 1);
    ST_CHECK(pred_open_is_retracted(&q, "user one:3000"));
    ST_CHECK(!pred_open_is_retracted(&q, "user one:800"));
    /* Malformed lines are skipped, the rest is kept. */
    st_buf_reset(&t);
    st_buf_append_str(&t, "42\nL 1 2 x 3:abcpay\nL 1 2000 0 99:short\nR 9 3:abc\nZ what\n"
                          "L 7 3000 1 5:u:300p q\n");
    ST_EQ_INT(pred_open_parse(&q, t.data, t.len), 3);
    ST_EQ_INT((int)q.closed_last_ms, 42);
    ST_EQ_INT(q.n, 1);
    ST_EQ_STR(q.e[0].sid, "u:300");
    ST_EQ_STR(q.e[0].payload, "p q");
    ST_EQ_INT(q.n_tomb, 1);
    /* The previous layout: "<made_s> <sid_len>:<sid><payload>", revision 0. */
    pred_open_reset(&q);
    const char *old = "1700000000 9:alice:777 1 2 -1 B none";
    ST_EQ_INT(pred_open_parse_legacy(&q, old, strlen(old)), 0);
    ST_EQ_INT(q.n, 1);
    ST_EQ_STR(q.e[0].sid, "alice:777");
    ST_EQ_INT((int)q.e[0].start_ms, 777);
    ST_EQ_INT(q.e[0].revision, 0);
    ST_EQ_STR(q.e[0].payload, " 1 2 -1 B none");
    ST_EQ_INT(pred_open_parse_legacy(&q, "garbage", 7), -1);
    ST_EQ_INT(q.n, 1);
    st_buf_free(&t);
}

int main(void)
{
    ST_RUN(test_put_drop_oldest);
    ST_RUN(test_retract_bounded);
    ST_RUN(test_text_round_trip);
    return st_test_summary();
}
