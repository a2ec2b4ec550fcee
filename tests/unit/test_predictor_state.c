/* Unit: the predictor's per-user open predictions (services/predictor/pred_open.c) and the choice
 * of the model's recent sessions (recent_input in pred_core.c), compiled in here: bounded list
 * sorted by start with the oldest dropped, retracted ids remembered and bounded, the Redis text
 * round trip (and the previous single-prediction layout), malformed lines skipped; the OPENED's
 * details preferred and completed from the history, the history only when it ends with the
 * event's sessions, else lengths only. */
#include "../../services/predictor/pred_core.c"
#include "../../services/predictor/pred_mae.c"
#include "../../services/predictor/pred_open.c"
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

/* recent_input on a user with history hist (starts in s) and an event with recent sessions. */
typedef struct {
    pc_t pc;
    pc_user_t u;
    pc_event_t e;
    double lengths[PC_RECENT_MAX], unknown[PC_RECENT_MAX];
    int64_t starts[PC_RECENT_MAX];
    int tracks[PC_RECENT_MAX];
    st_bundle_input_t in;
} rig_t;

static void rig_init(rig_t *r, int n_hist, int n_event, bool detail)
{
    memset(r, 0, sizeof *r);
    /* Sessions k = 0, 1, ...: start 1000 k s, length 10 k + 1 s, k + 1 tracks. The history
     * holds sessions [0, n_hist), the event the n_event sessions before it, ending at n_hist
     * or later. */
    r->u.hist = calloc(64, sizeof *r->u.hist);
    r->u.cap_hist = 64;
    for (int k = 0; k < n_hist; k++)
        r->u.hist[r->u.n_hist++] = (pc_hist_t){1000 * k, 10.0 * k + 1, k + 1, 0.01 * k};
    r->pc.recent = calloc(64, sizeof *r->pc.recent);
    r->e.n_recent = n_event;
    r->e.detail = detail;
}

static void rig_event_sessions(rig_t *r, int first)
{
    for (int j = 0; j < r->e.n_recent; j++) {
        int k = first + j;
        r->pc.recent[j] = (pc_recent_t){10.0 * k + 1, 1000000LL * k, k + 1, 0.01 * k};
    }
}

static void rig_free(rig_t *r)
{
    free(r->u.hist);
    free(r->pc.recent);
}

static int rig_run(rig_t *r, int want)
{
    memset(&r->in, 0, sizeof r->in);
    return recent_input(&r->pc, &r->u, &r->e, want, r->lengths, r->starts, r->tracks, r->unknown,
                        &r->in);
}

static void test_recent_sources(void)
{
    rig_t r;
    /* Early OPENED of session 10: history 0..8 (9 not CLOSED yet), event 4 sessions 6..9 with
     * details, model wants 6: 4..5 from the history, 6..9 from the event. */
    rig_init(&r, 9, 4, true);
    rig_event_sessions(&r, 6);
    ST_EQ_INT(rig_run(&r, 6), RECENT_EVENT);
    ST_EQ_INT(r.in.n_recent, 6);
    for (int j = 0; j < 6; j++) {
        ST_NEAR(r.lengths[j], 10.0 * (4 + j) + 1, 1e-12);
        ST_EQ_INT((int)r.starts[j], 1000 * (4 + j));
        ST_EQ_INT(r.tracks[j], 5 + j);
    }
    ST_CHECK(r.in.starts_s && r.in.track_counts && r.in.unknown_shares);
    /* History 0..1 only, event 6..9: not enough, and the history alone does not end with
     * session 9 either: lengths only, the newest want. */
    rig_free(&r);
    rig_init(&r, 2, 4, true);
    rig_event_sessions(&r, 6);
    ST_EQ_INT(rig_run(&r, 6), RECENT_LENGTHS);
    ST_EQ_INT(r.in.n_recent, 4);
    ST_CHECK(!r.in.starts_s);
    /* The history stops short of the event's oldest session (0..4, event 6..9): sessions may
     * be missing in between, so neither is completed from the other. */
    rig_free(&r);
    rig_init(&r, 5, 4, true);
    rig_event_sessions(&r, 6);
    ST_EQ_INT(rig_run(&r, 6), RECENT_LENGTHS);
    /* No details: the history when its last sessions are the event's (history 0..9, event
     * lengths of 6..9). */
    rig_free(&r);
    rig_init(&r, 10, 4, false);
    rig_event_sessions(&r, 6);
    ST_EQ_INT(rig_run(&r, 6), RECENT_HISTORY);
    ST_EQ_INT(r.in.n_recent, 6);
    ST_EQ_INT((int)r.starts[5], 9000);
    /* ... and not when the history lacks the previous session (history 0..8): lengths only. */
    rig_free(&r);
    rig_init(&r, 9, 4, false);
    rig_event_sessions(&r, 6);
    ST_EQ_INT(rig_run(&r, 6), RECENT_LENGTHS);
    ST_EQ_INT(r.in.n_recent, 4);
    ST_NEAR(r.lengths[3], 91, 1e-12);
    /* Details cover the need alone: the history is not used (even when empty). */
    rig_free(&r);
    rig_init(&r, 0, 4, true);
    rig_event_sessions(&r, 6);
    ST_EQ_INT(rig_run(&r, 3), RECENT_EVENT);
    ST_EQ_INT(r.in.n_recent, 3);
    ST_EQ_INT((int)r.starts[0], 7000);
    rig_free(&r);
}

int main(void)
{
    ST_RUN(test_put_drop_oldest);
    ST_RUN(test_retract_bounded);
    ST_RUN(test_text_round_trip);
    ST_RUN(test_recent_sources);
    return st_test_summary();
}
