/* Integration (real Kafka + Redis): the side paths of stint-sessionizer. A record later than the
 * grace goes to the late topic with its original bytes; undecodable bytes go to the DLQ as an
 * Avro DeadLetter; OPENED events carry the profile fields the clusterer keeps in
 * <prefix>:u:{user}:clu:prof when it has them and nulls otherwise; in live mode (idle.flush_ms)
 * an idle session is closed by the wall clock without further input; and a restart in live mode
 * restores the partition's clock with its first record, or, for a quiet partition, once it is
 * caught up, closing its open session without a new listen. */
#include "st_records.h"
#include "st_trackmeta.h"
#include "sz_itest.h"

#define T0_MS 1230768000000LL /* 2009-01-01T00:00:00Z */

static st_avro_registry_t *reg;

static pid_t start_with(const szt_names_t *nm, const char *const *extra, int n_extra)
{
    char *argv[64];
    int n = 0;
    const char *base[] = {nm->bin,
                          "--in.topic",
                          nm->in,
                          "--out.topic",
                          nm->out,
                          "--late.topic",
                          nm->late,
                          "--dlq.topic",
                          nm->dlq,
                          "-G",
                          nm->group,
                          "--redis.prefix",
                          nm->prefix,
                          "-b",
                          itest_brokers(),
                          "--batch.max",
                          "100",
                          "--redis.port",
                          getenv("STINT_REDIS_PORT") ? getenv("STINT_REDIS_PORT") : "16379"};
    for (size_t i = 0; i < sizeof base / sizeof base[0]; i++)
        argv[n++] = (char *)base[i];
    /* These tests follow a few hand-made listens through the late, DLQ and idle paths with stream
     * time = the largest listen time (the quorum clock: unit test_sessionizer's test_clock_*). */
    argv[n++] = "--clock.quorum";
    argv[n++] = "1";
    for (int i = 0; i < n_extra; i++)
        argv[n++] = (char *)extra[i];
    argv[n] = NULL;
    return itest_spawn(argv, nm->logpath);
}

static int produce_listen(st_producer_t *prod, st_avro_codec_t *codec, const char *topic,
                          const char *user, int64_t t_ms, int64_t duration_ms, const char *track,
                          st_buf_t *enc)
{
    static st_listen_t l;
    memset(&l, 0, sizeof l);
    snprintf(l.user_id, sizeof l.user_id, "%s", user);
    l.timestamp_ms = t_ms;
    snprintf(l.artist_name, sizeof l.artist_name, "Artist");
    snprintf(l.track_name, sizeof l.track_name, "%s", track);
    st_trackmeta_key("Artist", 6, track, strlen(track), l.track_key, sizeof l.track_key);
    st_listen_event_id(l.user_id, t_ms, l.artist_name, l.track_name, l.event_id);
    if (szt_encode(codec, &l, duration_ms, enc) != 0)
        return -1;
    return st_producer_send(prod, topic, 0, user, strlen(user), enc->data, enc->len, NULL);
}

typedef struct {
    st_avro_codec_t *codec;
    int n;
    char kind[8][8], user[8][32], gender[8][8], country[8][32];
    int32_t age[8];
    int64_t registered_ms[8], start_ms[8];
    double length_s[8];
    int32_t track_count[8];
    bool gender_null[8], age_null[8], country_null[8];
} events_t;

static int find(const events_t *ev, const char *user, const char *kind)
{
    for (int i = 0; i < ev->n; i++)
        if (strcmp(ev->user[i], user) == 0 && strcmp(ev->kind[i], kind) == 0)
            return i;
    return -1;
}

static void on_session(void *arg, int32_t partition, const void *key, size_t klen, const void *val,
                       size_t vlen)
{
    events_t *ev = arg;
    (void)partition;
    (void)key;
    (void)klen;
    st_rec_session_event_t v;
    st_err_t err = {0};
    if (ev->n >= 8 || st_rec_session_event_decode(ev->codec, val, vlen, &v, &err) != 0)
        return;
    int i = ev->n++;
    snprintf(ev->kind[i], sizeof ev->kind[i], "%s",
             v.kind == ST_SESSION_EVENT_CLOSED ? "CLOSED" : "OPENED");
    snprintf(ev->user[i], sizeof ev->user[i], "%s", v.user_id.ptr);
    ev->start_ms[i] = v.start_ms;
    ev->gender[i][0] = ev->country[i][0] = '\0';
    ev->gender_null[i] = v.gender.ptr == NULL;
    if (v.gender.ptr)
        snprintf(ev->gender[i], sizeof ev->gender[i], "%s", v.gender.ptr);
    ev->country_null[i] = v.country.ptr == NULL;
    if (v.country.ptr)
        snprintf(ev->country[i], sizeof ev->country[i], "%s", v.country.ptr);
    ev->age_null[i] = !v.age.set;
    ev->age[i] = v.age.set ? v.age.v : -1;
    ev->registered_ms[i] = v.registered_ms.set ? v.registered_ms.v : -1;
    ev->length_s[i] = v.length_s.set ? v.length_s.v : -1;
    ev->track_count[i] = v.track_count;
}

typedef struct {
    long long n;
    st_buf_t first;
} raw_t;

static void on_raw(void *arg, int32_t partition, const void *key, size_t klen, const void *val,
                   size_t vlen)
{
    raw_t *r = arg;
    (void)partition;
    (void)key;
    (void)klen;
    if (r->n++ == 0)
        st_buf_append(&r->first, val, vlen);
}

static void test_late_dlq_profile(void)
{
    szt_names_t nm;
    szt_names(&nm, "paths");
    ST_REQUIRE(szt_create_topics(&nm, 1) == 0);
    redisContext *rc = itest_redis();
    char pkey[200];
    snprintf(pkey, sizeof pkey, "%s:u:{pu}:clu:prof", nm.prefix);
    redisReply *rep = redisCommand(rc, "HSET %s gender f age 25 country Norway registered_s %s",
                                   pkey, "1100000000");
    ST_REQUIRE(rep && rep->type == REDIS_REPLY_INTEGER);
    freeReplyObject(rep);
    /* What the clusterer stores for a profile that says nothing, next to its other fields. */
    snprintf(pkey, sizeof pkey, "%s:u:{qq}:clu:prof", nm.prefix);
    rep = redisCommand(rc, "HSET %s gender %s age -1 country %s registered_s 0 n 3", pkey, "", "");
    ST_REQUIRE(rep && rep->type == REDIS_REPLY_INTEGER);
    freeReplyObject(rep);
    redisFree(rc);

    char errstr[256];
    st_kafka_opts_t ko = itest_kafka();
    st_producer_t *prod = st_producer_new(&ko, errstr, sizeof errstr);
    st_avro_codec_t *codec = st_avro_codec_new(reg, "EnrichedListen", nm.in, errstr, sizeof errstr);
    ST_REQUIRE(prod && codec);
    st_buf_t enc = ST_BUF_INIT, late_value = ST_BUF_INIT;
    ST_REQUIRE(produce_listen(prod, codec, nm.in, "pu", T0_MS, 100000, "a", &enc) == 0);
    ST_REQUIRE(produce_listen(prod, codec, nm.in, "pu", T0_MS + 60000, 0, "b", &enc) == 0);
    ST_REQUIRE(produce_listen(prod, codec, nm.in, "qq", T0_MS + 600000, 0, "c", &enc) == 0);
    /* Stream time is now T0 + 600 s, the watermark T0 + 540 s: this one is late. */
    ST_REQUIRE(produce_listen(prod, codec, nm.in, "zz", T0_MS + 100000, 0, "d", &enc) == 0);
    st_buf_append(&late_value, enc.data, enc.len);
    ST_REQUIRE(st_producer_send(prod, nm.in, 0, "bad", 3, "not avro", 8, NULL) == 0);
    ST_REQUIRE(produce_listen(prod, codec, nm.in, SZT_SENTINEL_PREFIX "0",
                              T0_MS + SZT_SENTINEL_AFTER_MS, 0, "e", &enc) == 0);
    ST_REQUIRE(st_producer_wait(prod, 30000, NULL) == 0);
    st_producer_destroy(prod);
    st_avro_codec_destroy(codec);

    pid_t pid = start_with(&nm, NULL, 0);
    int done = szt_wait_committed(&nm, 6, 1, 60000); /* all but the sentinel */
    kill(pid, SIGTERM);
    ST_EQ_INT(itest_wait(pid, 60000), 0);
    ST_EQ_INT(done, 0);

    events_t ev = {0};
    ev.codec = st_avro_codec_new(reg, "SessionEvent", NULL, errstr, sizeof errstr);
    ST_REQUIRE(ev.codec != NULL);
    /* Both users' sessions open and close; the sentinel stays buffered (nothing follows it) but
     * its session is announced at once. The order across users depends on the batch
     * boundaries. */
    ST_EQ_INT(itest_read_topic(nm.out, on_session, &ev), 5);
    ST_CHECK(find(&ev, SZT_SENTINEL_PREFIX "0", "OPENED") >= 0);
    int po = find(&ev, "pu", "OPENED"), pc = find(&ev, "pu", "CLOSED");
    int qo = find(&ev, "qq", "OPENED"), qc = find(&ev, "qq", "CLOSED");
    ST_REQUIRE(po >= 0 && pc >= 0 && qo >= 0 && qc >= 0);
    ST_CHECK(po < pc && qo < qc);
    ST_EQ_STR(ev.gender[po], "f");
    ST_EQ_INT(ev.age[po], 25);
    ST_EQ_STR(ev.country[po], "Norway");
    ST_EQ_INT(ev.registered_ms[po], 1100000000000LL);
    ST_CHECK(ev.gender_null[qo] && ev.age_null[qo] && ev.country_null[qo]);
    ST_EQ_INT(ev.registered_ms[qo], -1);
    ST_EQ_INT(ev.start_ms[pc], T0_MS);
    ST_CHECK(ev.length_s[pc] == 60.0);
    ST_EQ_INT(ev.track_count[pc], 2);
    ST_EQ_INT(ev.track_count[qc], 1);
    st_avro_codec_destroy(ev.codec);

    raw_t late = {0, ST_BUF_INIT};
    ST_EQ_INT(itest_read_topic(nm.late, on_raw, &late), 1);
    ST_CHECK(late.first.len == late_value.len &&
             memcmp(late.first.data, late_value.data, late_value.len) == 0);
    raw_t dlq = {0, ST_BUF_INIT};
    ST_EQ_INT(itest_read_topic(nm.dlq, on_raw, &dlq), 1);
    st_avro_codec_t *dc = st_avro_codec_new(reg, "DeadLetter", NULL, errstr, sizeof errstr);
    st_rec_dead_letter_t d;
    st_err_t err = {0};
    ST_REQUIRE(dc && dlq.first.len > 0 &&
               st_rec_dead_letter_decode(dc, dlq.first.data, dlq.first.len, &d, &err) == 0);
    ST_EQ_INT(d.source_offset, 4);
    ST_EQ_STR(d.error_code.ptr, "invalid");
    ST_CHECK(d.original_value.len == 8 && memcmp(d.original_value.ptr, "not avro", 8) == 0);
    st_avro_codec_destroy(dc);
    st_buf_free(&late.first);
    st_buf_free(&dlq.first);
    st_buf_free(&late_value);
    st_buf_free(&enc);
    szt_redis_cleanup(nm.prefix);
}

/* A listen dated hours after its record's Kafka time (a client clock error) goes to the DLQ as
 * future_timestamp. Accepted, it would move the partition's stream time hours ahead: the open
 * session closed at once, the later listens (and the sentinel) all late. */
static void test_future_listen(void)
{
    szt_names_t nm;
    szt_names(&nm, "future");
    ST_REQUIRE(szt_create_topics(&nm, 1) == 0);
    char errstr[256];
    st_kafka_opts_t ko = itest_kafka();
    st_producer_t *prod = st_producer_new(&ko, errstr, sizeof errstr);
    st_avro_codec_t *codec = st_avro_codec_new(reg, "EnrichedListen", nm.in, errstr, sizeof errstr);
    ST_REQUIRE(prod && codec);
    st_buf_t enc = ST_BUF_INIT;
    int64_t t0 = st_time_wall_ms() - 3600 * 1000;
    ST_REQUIRE(produce_listen(prod, codec, nm.in, "fu", t0, 0, "a", &enc) == 0);
    ST_REQUIRE(produce_listen(prod, codec, nm.in, "fx", st_time_wall_ms() + 2 * 3600 * 1000, 0, "x",
                              &enc) == 0);
    ST_REQUIRE(produce_listen(prod, codec, nm.in, "fu", t0 + 60000, 0, "b", &enc) == 0);
    ST_REQUIRE(produce_listen(prod, codec, nm.in, "fv", t0 + 120000, 0, "c", &enc) == 0);
    ST_REQUIRE(st_producer_wait(prod, 30000, NULL) == 0);
    st_producer_destroy(prod);
    st_avro_codec_destroy(codec);

    pid_t pid = start_with(&nm, NULL, 0);
    int64_t deadline = st_time_mono_ms() + 30000;
    while (szt_committed(&nm) < 1 && st_time_mono_ms() < deadline)
        itest_sleep_ms(100);
    itest_sleep_ms(500);
    kill(pid, SIGTERM);
    ST_EQ_INT(itest_wait(pid, 60000), 0);

    raw_t dlq = {0, ST_BUF_INIT};
    ST_EQ_INT(itest_read_topic(nm.dlq, on_raw, &dlq), 1);
    st_avro_codec_t *dc = st_avro_codec_new(reg, "DeadLetter", NULL, errstr, sizeof errstr);
    st_rec_dead_letter_t d;
    st_err_t err = {0};
    ST_REQUIRE(dc && dlq.first.len > 0 &&
               st_rec_dead_letter_decode(dc, dlq.first.data, dlq.first.len, &d, &err) == 0);
    ST_EQ_STR(d.error_code.ptr, "future_timestamp");
    ST_EQ_INT(d.source_offset, 1);
    st_avro_codec_destroy(dc);
    /* The stream time stayed near fv's listen (live mode adds the seconds the partition was
     * idle): nothing was late, fu's session (idle 60 s, under the gap) is open and not closed,
     * fv's listen is still in the reorder buffer (grace) but its session is announced. */
    raw_t late = {0, ST_BUF_INIT};
    ST_EQ_INT(itest_read_topic(nm.late, on_raw, &late), 0);
    events_t ev = {0};
    ev.codec = st_avro_codec_new(reg, "SessionEvent", NULL, errstr, sizeof errstr);
    ST_REQUIRE(ev.codec != NULL);
    ST_EQ_INT(itest_read_topic(nm.out, on_session, &ev), 2);
    ST_CHECK(find(&ev, "fu", "OPENED") >= 0 && find(&ev, "fu", "CLOSED") < 0);
    ST_CHECK(find(&ev, "fv", "OPENED") >= 0);
    ST_CHECK(find(&ev, "fx", "OPENED") < 0);
    st_avro_codec_destroy(ev.codec);
    st_buf_free(&dlq.first);
    st_buf_free(&late.first);
    st_buf_free(&enc);
    szt_redis_cleanup(nm.prefix);
}

/* Assignments with partitions in the log (a rebalance can log count=0 first). */
static int assigned(const szt_names_t *nm)
{
    return szt_log_count(nm->logpath, "partitions_assigned") -
           szt_log_count(nm->logpath, "partitions_assigned count=0");
}

/* Starts the sessionizer and waits until it has its partition. */
static pid_t start_live(const szt_names_t *nm, const char *const *extra, int n_extra)
{
    int before = assigned(nm);
    pid_t pid = start_with(nm, extra, n_extra);
    int64_t wait_until = st_time_mono_ms() + 30000;
    while (assigned(nm) == before && st_time_mono_ms() < wait_until)
        itest_sleep_ms(100);
    ST_CHECK(assigned(nm) > before);
    return pid;
}

/* Reads the sessions topic into ev until it holds a CLOSED (true) or 40 s have passed. */
static bool wait_closed(const szt_names_t *nm, events_t *ev)
{
    int64_t deadline = st_time_mono_ms() + 40000;
    for (;;) {
        ev->n = 0;
        itest_read_topic(nm->out, on_session, ev);
        for (int i = 0; i < ev->n; i++)
            if (strcmp(ev->kind[i], "CLOSED") == 0)
                return true;
        if (st_time_mono_ms() >= deadline)
            return false;
        itest_sleep_ms(500);
    }
}

static void test_idle_flush(void)
{
    szt_names_t nm;
    szt_names(&nm, "live");
    ST_REQUIRE(szt_create_topics(&nm, 1) == 0);
    unlink(nm.logpath);
    /* gap 2 s, grace 1 s, no lag: the wall clock passes the deadline 3 s after the last
     * listen. */
    const char *extra[] = {"--idle.flush_ms",    "200",  "--session.gap_s", "2",
                           "--session.grace_ms", "1000", "--idle.lag_ms",   "0"};
    pid_t pid = start_live(&nm, extra, 8);

    char errstr[256];
    st_kafka_opts_t ko = itest_kafka();
    st_producer_t *prod = st_producer_new(&ko, errstr, sizeof errstr);
    st_avro_codec_t *codec = st_avro_codec_new(reg, "EnrichedListen", nm.in, errstr, sizeof errstr);
    ST_REQUIRE(prod && codec);
    st_buf_t enc = ST_BUF_INIT;
    /* Slightly ahead of the wall clock, so that neither is late however slow the delivery. */
    int64_t now = st_time_wall_ms();
    ST_REQUIRE(produce_listen(prod, codec, nm.in, "live", now + 2000, 0, "a", &enc) == 0);
    ST_REQUIRE(produce_listen(prod, codec, nm.in, "live", now + 2500, 0, "b", &enc) == 0);
    ST_REQUIRE(st_producer_wait(prod, 30000, NULL) == 0);
    st_producer_destroy(prod);
    st_avro_codec_destroy(codec);

    events_t ev = {0};
    ev.codec = st_avro_codec_new(reg, "SessionEvent", NULL, errstr, sizeof errstr);
    bool closed = wait_closed(&nm, &ev);
    kill(pid, SIGTERM);
    ST_EQ_INT(itest_wait(pid, 60000), 0);
    ST_CHECK(closed);
    ST_EQ_INT(ev.n, 2);
    if (ev.n == 2) {
        ST_EQ_STR(ev.kind[1], "CLOSED");
        ST_EQ_INT(ev.track_count[1], 2);
        ST_CHECK(ev.length_s[1] == 0.5);
    }
    st_avro_codec_destroy(ev.codec);
    st_buf_free(&enc);
    szt_redis_cleanup(nm.prefix);
}

/* An upstream stall: the partition looks idle and caught up for 3 s, then a listen delayed by
 * the stall arrives, 3 s behind the wall clock with a grace of 1 s. idle.lag_ms (10 s: several
 * seconds to spare on a loaded machine) keeps the wall clock from having moved the stream time
 * yet, so it is not late; the session still closes in wall time (gap + grace + lag after its last
 * listen). With idle.lag_ms=0 it is late (checked by hand: the late topic gets it and the session
 * has one listen). */
static void test_upstream_stall(void)
{
    szt_names_t nm;
    szt_names(&nm, "stall");
    ST_REQUIRE(szt_create_topics(&nm, 1) == 0);
    unlink(nm.logpath);
    const char *extra[] = {"--idle.flush_ms",    "200",  "--session.gap_s", "2",
                           "--session.grace_ms", "1000", "--idle.lag_ms",   "10000"};
    pid_t pid = start_live(&nm, extra, 8);

    char errstr[256];
    st_kafka_opts_t ko = itest_kafka();
    st_producer_t *prod = st_producer_new(&ko, errstr, sizeof errstr);
    st_avro_codec_t *codec = st_avro_codec_new(reg, "EnrichedListen", nm.in, errstr, sizeof errstr);
    ST_REQUIRE(prod && codec);
    st_buf_t enc = ST_BUF_INIT;
    int64_t t0 = st_time_wall_ms();
    ST_REQUIRE(produce_listen(prod, codec, nm.in, "stall", t0, 0, "a", &enc) == 0);
    ST_REQUIRE(st_producer_wait(prod, 30000, NULL) == 0);
    events_t ev = {0};
    ev.codec = st_avro_codec_new(reg, "SessionEvent", NULL, errstr, sizeof errstr);
    int64_t wait_until = st_time_mono_ms() + 30000;
    while (ev.n == 0 && st_time_mono_ms() < wait_until) { /* a's early OPENED: a is in */
        itest_read_topic(nm.out, on_session, &ev);
        if (ev.n == 0)
            itest_sleep_ms(50);
    }
    ST_REQUIRE(ev.n > 0);
    itest_sleep_ms(3000); /* the stall */
    ST_REQUIRE(produce_listen(prod, codec, nm.in, "stall", t0 + 500, 0, "b", &enc) == 0);
    ST_REQUIRE(st_producer_wait(prod, 30000, NULL) == 0);
    st_producer_destroy(prod);
    st_avro_codec_destroy(codec);

    bool closed = wait_closed(&nm, &ev);
    kill(pid, SIGTERM);
    ST_EQ_INT(itest_wait(pid, 60000), 0);
    raw_t late = {0, ST_BUF_INIT};
    ST_EQ_INT(itest_read_topic(nm.late, on_raw, &late), 0);
    ST_CHECK(closed);
    int c = find(&ev, "stall", "CLOSED");
    ST_REQUIRE(c >= 0);
    ST_EQ_INT(ev.track_count[c], 2);
    st_avro_codec_destroy(ev.codec);
    st_buf_free(&late.first);
    st_buf_free(&enc);
    szt_redis_cleanup(nm.prefix);
}

static int count_kind(const events_t *ev, const char *user, const char *kind)
{
    int n = 0;
    for (int i = 0; i < ev->n; i++)
        n += strcmp(ev->user[i], user) == 0 && strcmp(ev->kind[i], kind) == 0;
    return n;
}

/* A restart in live mode with nothing to replay: the partition's saved clock (three users, the
 * default quorum) comes back with its first new record, though the service ticked before that
 * record came. Then one user's listen 5 min ahead moves nothing, and another user's listen at the
 * wall clock is not late. (With the partition taken at the first tick with an empty clock, the
 * early listen alone set the stream time, and that listen went to sessions.late.) */
static void test_restart_restores_clock(void)
{
    szt_names_t nm;
    szt_names(&nm, "resume");
    ST_REQUIRE(szt_create_topics(&nm, 1) == 0);
    unlink(nm.logpath);
    /* First run: three users' sessions close by the wall clock (gap 2 s, grace 1 s, no lag). */
    const char *first[] = {"--idle.flush_ms",    "200",  "--session.gap_s", "2",
                           "--session.grace_ms", "1000", "--idle.lag_ms",   "0",
                           "--clock.quorum",     "3"};
    pid_t pid = start_live(&nm, first, 10);
    char errstr[256];
    st_kafka_opts_t ko = itest_kafka();
    st_producer_t *prod = st_producer_new(&ko, errstr, sizeof errstr);
    st_avro_codec_t *codec = st_avro_codec_new(reg, "EnrichedListen", nm.in, errstr, sizeof errstr);
    ST_REQUIRE(prod && codec);
    st_buf_t enc = ST_BUF_INIT;
    int64_t now = st_time_wall_ms();
    const char *users[] = {"ra", "rb", "rc"};
    for (int i = 0; i < 3; i++)
        ST_REQUIRE(
            produce_listen(prod, codec, nm.in, users[i], now + 1000 + 100 * i, 0, "t", &enc) == 0);
    ST_REQUIRE(st_producer_wait(prod, 30000, NULL) == 0);
    events_t ev = {0};
    ev.codec = st_avro_codec_new(reg, "SessionEvent", NULL, errstr, sizeof errstr);
    int64_t wait_until = st_time_mono_ms() + 40000;
    int closed = 0;
    while (closed < 3 && st_time_mono_ms() < wait_until) {
        itest_sleep_ms(300);
        ev.n = 0;
        itest_read_topic(nm.out, on_session, &ev);
        closed = 0;
        for (int i = 0; i < 3; i++)
            closed += count_kind(&ev, users[i], "CLOSED");
    }
    ST_EQ_INT(closed, 3);
    itest_sleep_ms(1000); /* a few more ticks: the commit point after the last record is saved */
    kill(pid, SIGTERM);
    ST_EQ_INT(itest_wait(pid, 60000), 0);
    /* Second run: the wall clock moves nothing (lag 10 min); it ticks before any record. */
    const char *second[] = {"--idle.flush_ms",    "200",  "--session.gap_s", "2",
                            "--session.grace_ms", "1000", "--idle.lag_ms",   "600000",
                            "--clock.quorum",     "3"};
    pid = start_live(&nm, second, 10);
    itest_sleep_ms(1000);
    now = st_time_wall_ms();
    ST_REQUIRE(produce_listen(prod, codec, nm.in, "rx", now + 300000, 0, "t", &enc) == 0);
    ST_REQUIRE(st_producer_wait(prod, 30000, NULL) == 0);
    ST_REQUIRE(produce_listen(prod, codec, nm.in, users[0], now, 0, "t", &enc) == 0);
    ST_REQUIRE(st_producer_wait(prod, 30000, NULL) == 0);
    raw_t late = {0, ST_BUF_INIT};
    wait_until = st_time_mono_ms() + 30000;
    int opened = 0;
    while (opened < 2 && late.n == 0 && st_time_mono_ms() < wait_until) {
        itest_sleep_ms(300);
        ev.n = 0;
        itest_read_topic(nm.out, on_session, &ev);
        opened = count_kind(&ev, users[0], "OPENED");
        late.n = 0;
        itest_read_topic(nm.late, on_raw, &late);
    }
    kill(pid, SIGTERM);
    ST_EQ_INT(itest_wait(pid, 60000), 0);
    ST_EQ_INT(late.n, 0);
    ST_EQ_INT(opened, 2);
    /* restored: a stream time (wall-clock ms, 1...), not "none:" */
    ST_CHECK(szt_log_count(nm.logpath, "partition_resumed partition=0 offset=3 stream_time_ms=1") >=
             1);
    st_producer_destroy(prod);
    st_avro_codec_destroy(codec);
    st_avro_codec_destroy(ev.codec);
    st_buf_free(&late.first);
    st_buf_free(&enc);
    szt_redis_cleanup(nm.prefix);
}

/* A restart in live mode of a quiet partition: its session, open when the service stopped, is
 * closed by the wall clock without any new listen (the partition is taken, with its saved
 * clock, once it is caught up; before, it waited for a first record that might never come). */
static void test_restart_closes_quiet_session(void)
{
    szt_names_t nm;
    szt_names(&nm, "quiet");
    ST_REQUIRE(szt_create_topics(&nm, 1) == 0);
    unlink(nm.logpath);
    /* gap 8 s, grace 1 s, no lag: the listen is released within about a second (nothing held,
     * so nothing is replayed), its session stays open for 8 s */
    const char *extra[] = {"--idle.flush_ms",    "200",  "--session.gap_s", "8",
                           "--session.grace_ms", "1000", "--idle.lag_ms",   "0"};
    pid_t pid = start_live(&nm, extra, 8);
    char errstr[256];
    st_kafka_opts_t ko = itest_kafka();
    st_producer_t *prod = st_producer_new(&ko, errstr, sizeof errstr);
    st_avro_codec_t *codec = st_avro_codec_new(reg, "EnrichedListen", nm.in, errstr, sizeof errstr);
    ST_REQUIRE(prod && codec);
    st_buf_t enc = ST_BUF_INIT;
    ST_REQUIRE(produce_listen(prod, codec, nm.in, "quiet", st_time_wall_ms(), 0, "a", &enc) == 0);
    ST_REQUIRE(st_producer_wait(prod, 30000, NULL) == 0);
    st_producer_destroy(prod);
    st_avro_codec_destroy(codec);
    st_buf_free(&enc);
    events_t ev = {0};
    ev.codec = st_avro_codec_new(reg, "SessionEvent", NULL, errstr, sizeof errstr);
    int64_t wait_until = st_time_mono_ms() + 30000;
    while (count_kind(&ev, "quiet", "OPENED") == 0 && st_time_mono_ms() < wait_until) {
        itest_sleep_ms(200);
        ev.n = 0;
        itest_read_topic(nm.out, on_session, &ev);
    }
    ST_REQUIRE(count_kind(&ev, "quiet", "OPENED") == 1);
    itest_sleep_ms(2500); /* released and committed; the session still open */
    kill(pid, SIGTERM);
    ST_EQ_INT(itest_wait(pid, 60000), 0);
    ev.n = 0;
    itest_read_topic(nm.out, on_session, &ev);
    ST_REQUIRE(count_kind(&ev, "quiet", "CLOSED") == 0);
    pid = start_live(&nm, extra, 8);
    bool closed = wait_closed(&nm, &ev);
    kill(pid, SIGTERM);
    ST_EQ_INT(itest_wait(pid, 60000), 0);
    ST_CHECK(closed);
    ST_EQ_INT(count_kind(&ev, "quiet", "CLOSED"), 1);
    st_avro_codec_destroy(ev.codec);
    szt_redis_cleanup(nm.prefix);
}

int main(void)
{
    reg = szt_registry();
    if (!reg)
        return 1;
    ST_RUN(test_late_dlq_profile);
    ST_RUN(test_future_listen);
    ST_RUN(test_idle_flush);
    ST_RUN(test_upstream_stall);
    ST_RUN(test_restart_restores_clock);
    ST_RUN(test_restart_closes_quiet_session);
    st_avro_registry_destroy(reg);
    return st_test_summary();
}
