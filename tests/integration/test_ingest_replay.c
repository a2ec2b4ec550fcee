/* Integration: `stint gen` makes a small dataset, `stint replay` publishes it to a raw topic while
 * stint-ingest runs; every distinct valid listen arrives in the output topic exactly once (count
 * and order-independent checksums of event_ids equal an offline computation over the file with
 * st_listen_from_record), the dataset's exact duplicate rows and a duplicate re-sent later are
 * dropped, each invalid JSON message is in the DLQ with its reason and original bytes, and the
 * profiles are published. Real Kafka + Redis; unique topics, group and Redis prefix. */
#include <hiredis/hiredis.h>

#include "st_avro.h"
#include "st_itest.h"
#include "st_lastfm.h"
#include "st_listen.h"
#include "st_records.h"
#include "st_test.h"

static char t_raw[128], t_out[128], t_dlq[128], t_prof[128], group[128], prefix[128];
static const char *bin_dir;
static char data_dir[1100], logpath[1024], schemas[1024];
static st_avro_registry_t *reg;

typedef struct {
    uint64_t *ids;
    size_t n, cap;
} idset_t;

static void idset_add(idset_t *s, uint64_t id)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 4096;
        s->ids = realloc(s->ids, s->cap * sizeof *s->ids);
        if (!s->ids)
            abort();
    }
    s->ids[s->n++] = id;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Sorts and removes repeats; returns how many repeats were removed. */
static size_t idset_unique(idset_t *s)
{
    size_t before = s->n, k = 0;
    qsort(s->ids, s->n, sizeof *s->ids, cmp_u64);
    for (size_t i = 0; i < s->n; i++)
        if (k == 0 || s->ids[k - 1] != s->ids[i])
            s->ids[k++] = s->ids[i];
    s->n = k;
    return before - k;
}

typedef struct {
    uint64_t sum, xor;
} checksum_t;

static checksum_t idset_checksum(const idset_t *s)
{
    checksum_t c = {0, 0};
    for (size_t i = 0; i < s->n; i++) {
        uint64_t h = st_hash64(&s->ids[i], sizeof s->ids[i], 0);
        c.sum += h;
        c.xor ^= h;
    }
    return c;
}

static uint64_t parse_event_id(const char *hex)
{
    return strtoull(hex, NULL, 16);
}

static int run_tool(char *const argv[])
{
    pid_t pid = itest_spawn(argv, logpath);
    return itest_wait(pid, 60000);
}

/* The offline expectation: event ids of every line the TSV reader accepts and the ingest rules
 * accept (st_listen_from_record), the first line's JSON (re-sent by the test) and line counts. */
static void offline(idset_t *expected, st_buf_t *first_json, size_t *valid_lines)
{
    char errstr[512];
    st_lastfm_reader_t *r =
        st_lastfm_reader_open(data_dir, ST_LASTFM_LISTENS, errstr, sizeof errstr);
    ST_REQUIRE(r != NULL);
    st_lastfm_reader_set_log_limit(r, 0);
    static st_listen_t l;
    st_lastfm_listen_t rec;
    int rc;
    *valid_lines = 0;
    while ((rc = st_lastfm_reader_next_listen(r, &rec, NULL)) == 1) {
        if (st_listen_from_record(&rec, st_time_wall_ms(), &l, NULL) != ST_LISTEN_OK)
            continue;
        if (first_json->len == 0)
            st_listen_format_json(&rec, first_json);
        idset_add(expected, parse_event_id(l.event_id));
        (*valid_lines)++;
    }
    ST_EQ_INT(rc, 0);
    st_lastfm_reader_destroy(r);
}

typedef struct {
    uint64_t id, value_hash;
} copy_t;

typedef struct {
    st_avro_codec_t *codec;
    idset_t ids;
    copy_t *copies; /* every record read: event id and a hash of its value bytes */
    size_t ncopies, cap;
    long long undecodable;
    long long key_mismatch;
} out_read_t;

static int cmp_copy(const void *a, const void *b)
{
    const copy_t *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* Repeated event ids whose bytes differ from the first copy's. */
static long long differing_copies(out_read_t *o)
{
    long long differ = 0;
    qsort(o->copies, o->ncopies, sizeof *o->copies, cmp_copy);
    for (size_t i = 1; i < o->ncopies; i++)
        if (o->copies[i].id == o->copies[i - 1].id &&
            o->copies[i].value_hash != o->copies[i - 1].value_hash)
            differ++;
    return differ;
}

static void on_out(void *arg, int32_t partition, const void *key, size_t klen, const void *val,
                   size_t vlen)
{
    out_read_t *o = arg;
    st_rec_listen_t l;
    st_err_t err = {0};
    (void)partition;
    if (st_rec_listen_decode(o->codec, val, vlen, &l, &err) != 0) {
        o->undecodable++;
        return;
    }
    const char *event_id = l.event_id.ptr, *user_id = l.user_id.ptr;
    size_t user_len = strlen(user_id);
    if (user_len != klen || memcmp(user_id, key, klen) != 0)
        o->key_mismatch++;
    idset_add(&o->ids, parse_event_id(event_id));
    if (o->ncopies == o->cap) {
        o->cap = o->cap ? o->cap * 2 : 4096;
        o->copies = realloc(o->copies, o->cap * sizeof *o->copies);
        if (!o->copies)
            abort();
    }
    o->copies[o->ncopies].id = parse_event_id(event_id);
    o->copies[o->ncopies++].value_hash = st_hash64(val, vlen, 0);
}

#define N_BAD 5
typedef struct {
    const char *key;
    const char *reason;
    st_buf_t value;
    int found;       /* DLQ records with this key */
    int reason_ok;   /* ... and the expected error_code */
    int original_ok; /* ... and the original bytes */
} bad_case_t;

static bad_case_t bad[N_BAD];

static void make_bad_cases(void)
{
    static const char *const keys[N_BAD] = {"bad-missing", "bad-ts", "bad-json", "bad-utf8",
                                            "bad-long"};
    static const char *const reasons[N_BAD] = {"missing_field", "bad_timestamp", "not_json",
                                               "invalid_utf8", "too_long"};
    for (int i = 0; i < N_BAD; i++) {
        bad[i].key = keys[i];
        bad[i].reason = reasons[i];
        st_buf_t *b = &bad[i].value;
        switch (i) {
        case 0:
            st_buf_append_str(b,
                              "{\"user_id\":\"bad-missing\",\"timestamp\":\"2009-01-01T00:00:00Z\","
                              "\"artist_name\":\"A\"}");
            break;
        case 1:
            st_buf_append_str(b, "{\"user_id\":\"bad-ts\",\"timestamp\":\"2009-13-45T00:00:00Z\","
                                 "\"artist_name\":\"A\",\"track_name\":\"T\"}");
            break;
        case 2:
            st_buf_append_str(b, "{\"user_id\": \"bad-json\", oops");
            break;
        case 3:
            st_buf_append_str(b, "{\"user_id\":\"bad-utf8\",\"timestamp\":\"2009-01-01T00:00:00Z\","
                                 "\"artist_name\":\"\xc3\x28\",\"track_name\":\"T\"}");
            break;
        case 4:
            st_buf_append_str(b, "{\"user_id\":\"bad-long\",\"timestamp\":\"2009-01-01T00:00:00Z\","
                                 "\"artist_name\":\"");
            for (int k = 0; k < 1100; k++)
                st_buf_append(b, "x", 1);
            st_buf_append_str(b, "\",\"track_name\":\"T\"}");
            break;
        }
    }
}

typedef struct {
    st_avro_codec_t *codec;
    long long n, undecodable, unknown;
} dlq_read_t;

static void on_dlq(void *arg, int32_t partition, const void *key, size_t klen, const void *val,
                   size_t vlen)
{
    dlq_read_t *d = arg;
    st_rec_dead_letter_t dl;
    st_err_t err = {0};
    (void)partition;
    d->n++;
    if (st_rec_dead_letter_decode(d->codec, val, vlen, &dl, &err) != 0) {
        d->undecodable++;
        return;
    }
    const char *code = dl.error_code.ptr;
    const void *orig = dl.original_value.ptr;
    size_t olen = dl.original_value.len;
    for (int i = 0; i < N_BAD; i++) {
        if (klen == strlen(bad[i].key) && memcmp(key, bad[i].key, klen) == 0) {
            bad[i].found++;
            if (strcmp(code, bad[i].reason) == 0)
                bad[i].reason_ok++;
            else
                printf("DLQ %s: error_code=%s, expected %s\n", bad[i].key, code, bad[i].reason);
            if (olen == bad[i].value.len && memcmp(orig, bad[i].value.data, olen) == 0)
                bad[i].original_ok++;
            return;
        }
    }
    d->unknown++;
    printf("DLQ record with an unexpected key %.*s: %s\n", (int)klen, (const char *)key, code);
}

static void count_cb(void *arg, int32_t partition, const void *key, size_t klen, const void *val,
                     size_t vlen)
{
    (void)partition, (void)key, (void)klen, (void)val, (void)vlen;
    (*(long long *)arg)++;
}

/* Waits up to 45 s until group has committed want records of topic; returns the last count. */
static int64_t wait_committed(const char *topic, const char *grp, int64_t want)
{
    char errstr[512];
    st_kafka_opts_t ko = itest_kafka();
    int64_t deadline = st_time_mono_ms() + 45000, committed = -1;
    while (st_time_mono_ms() < deadline &&
           (committed = st_kafka_group_committed(&ko, grp, topic, errstr, sizeof errstr)) < want)
        itest_sleep_ms(200);
    return committed;
}

static void test_replay_through_ingest(void)
{
    char errstr[512];
    st_kafka_opts_t ko = itest_kafka();

    /* 1. A small dataset and the offline expectation. */
    char gen[1024];
    snprintf(gen, sizeof gen, "%s/stint", bin_dir);
    char *gen_argv[] = {gen,      "gen", "--users", "30",     "--days", "30",
                        "--seed", "11",  "--out",   data_dir, NULL};
    ST_REQUIRE(run_tool(gen_argv) == 0);
    idset_t expected = {0};
    st_buf_t first_json = ST_BUF_INIT;
    size_t valid_lines = 0;
    offline(&expected, &first_json, &valid_lines);
    size_t dup_rows = idset_unique(&expected);
    checksum_t want = idset_checksum(&expected);
    printf("offline: valid lines=%zu distinct event_ids=%zu exact duplicate rows=%zu\n",
           valid_lines, expected.n, dup_rows);
    ST_CHECK(dup_rows > 0); /* the generator plants exact duplicates: the test must see some */

    /* 2. Topics, then the service. */
    const char *topics[] = {t_raw, t_out, t_dlq, t_prof};
    ST_REQUIRE(st_kafka_create_topics(&ko, topics, 4, 3, errstr, sizeof errstr) == 0);
    char ingest[1024], redis_port[16];
    snprintf(ingest, sizeof ingest, "%s/stint-ingest", bin_dir);
    snprintf(redis_port, sizeof redis_port, "%d", itest_redis_port());
    char *ing_argv[] = {ingest,          "-b",          (char *)itest_brokers(),
                        "--redis.port",  redis_port,    "--in.topic",
                        t_raw,           "--out.topic", t_out,
                        "--dlq.topic",   t_dlq,         "--redis.prefix",
                        prefix,          "-G",          group,
                        "--dedup.ttl_s", "600",         "--batch.max",
                        "1000",          NULL};
    pid_t pid = itest_spawn(ing_argv, logpath);

    /* 3. Replay, then the invalid messages. */
    char *rep_argv[] = {gen,
                        "replay",
                        "--data",
                        data_dir,
                        "-b",
                        (char *)itest_brokers(),
                        "--topic",
                        t_raw,
                        "--profiles-topic",
                        t_prof,
                        "--progress",
                        "never",
                        "--bad-lines-logged",
                        "-1",
                        NULL};
    ST_EQ_INT(run_tool(rep_argv), 0);
    make_bad_cases();
    st_producer_t *prod = st_producer_new(&ko, errstr, sizeof errstr);
    ST_REQUIRE(prod != NULL);
    for (int i = 0; i < N_BAD; i++)
        ST_REQUIRE(st_producer_send(prod, t_raw, -1, bad[i].key, strlen(bad[i].key),
                                    bad[i].value.data, bad[i].value.len, NULL) == 0);
    ST_REQUIRE(st_producer_wait(prod, 30000, NULL) == 0);

    /* 4. Once everything is committed, a copy of the first listen (another key, so most likely
     * another partition and surely another batch): only the Redis mark can catch it. Then stop
     * the service cleanly. */
    int64_t end = st_kafka_topic_end_offsets(&ko, t_raw, errstr, sizeof errstr);
    ST_EQ_INT(end, (long long)valid_lines + N_BAD);
    int64_t committed = wait_committed(t_raw, group, end);
    ST_EQ_INT(committed, end);
    const char *dup_key = "dup-of-first-line";
    ST_REQUIRE(st_producer_send(prod, t_raw, -1, dup_key, strlen(dup_key), first_json.data,
                                first_json.len, NULL) == 0);
    ST_REQUIRE(st_producer_wait(prod, 30000, NULL) == 0);
    st_producer_destroy(prod);
    committed = wait_committed(t_raw, group, end + 1);
    ST_EQ_INT(committed, end + 1);
    kill(pid, SIGTERM);
    ST_EQ_INT(itest_wait(pid, 30000), 0);

    /* 5. The output: each distinct valid listen exactly once. */
    out_read_t o = {0};
    o.codec = st_avro_codec_new(reg, "Listen", NULL, errstr, sizeof errstr);
    ST_REQUIRE(o.codec != NULL);
    long long n_out = itest_read_topic(t_out, on_out, &o);
    size_t repeats = idset_unique(&o.ids);
    checksum_t got = idset_checksum(&o.ids);
    printf("output: records=%lld distinct=%zu repeats=%zu undecodable=%lld\n", n_out, o.ids.n,
           repeats, o.undecodable);
    ST_EQ_INT(n_out, (long long)expected.n); /* no crash in this run: not even identical copies */
    ST_EQ_U64((uint64_t)o.ids.n, (uint64_t)expected.n);
    ST_EQ_U64(got.sum, want.sum);
    ST_EQ_U64(got.xor, want.xor);
    ST_EQ_INT(o.undecodable, 0);
    ST_EQ_INT(o.key_mismatch, 0);

    /* 6. The dead letters: each invalid message once, with its reason and original bytes. */
    dlq_read_t d = {0};
    d.codec = st_avro_codec_new(reg, "DeadLetter", NULL, errstr, sizeof errstr);
    ST_REQUIRE(d.codec != NULL);
    ST_REQUIRE(itest_read_topic(t_dlq, on_dlq, &d) >= 0);
    ST_EQ_INT(d.n, N_BAD);
    ST_EQ_INT(d.undecodable, 0);
    ST_EQ_INT(d.unknown, 0);
    for (int i = 0; i < N_BAD; i++) {
        printf("dlq %-12s found=%d reason_ok=%d original_ok=%d\n", bad[i].key, bad[i].found,
               bad[i].reason_ok, bad[i].original_ok);
        ST_EQ_INT(bad[i].found, 1);
        ST_EQ_INT(bad[i].reason_ok, 1);
        ST_EQ_INT(bad[i].original_ok, 1);
    }

    /* 7. The profiles: every valid line of the profiles file. */
    st_lastfm_reader_t *pr =
        st_lastfm_reader_open(data_dir, ST_LASTFM_PROFILES, errstr, sizeof errstr);
    ST_REQUIRE(pr != NULL);
    st_lastfm_reader_set_log_limit(pr, 0);
    st_lastfm_profile_t p;
    while (st_lastfm_reader_next_profile(pr, &p, NULL) == 1) {
    }
    long long want_profiles = (long long)st_lastfm_reader_stats(pr)->good, n_prof = 0;
    st_lastfm_reader_destroy(pr);
    ST_CHECK(want_profiles > 0);
    ST_EQ_INT(itest_read_topic(t_prof, count_cb, &n_prof), want_profiles);

    /* 8. The marks are per user (no key per listen), bounded, and expire (dedup.ttl_s). */
    redisContext *rc = itest_redis();
    redisReply *old = redisCommand(rc, "KEYS %s:ingest:seen:*", prefix);
    ST_REQUIRE(old != NULL && old->type == REDIS_REPLY_ARRAY);
    ST_EQ_INT(old->elements, 0);
    freeReplyObject(old);
    redisReply *keys = redisCommand(rc, "KEYS %s:u:{*}:ingest:marks", prefix);
    ST_REQUIRE(keys != NULL && keys->type == REDIS_REPLY_ARRAY);
    ST_CHECK(keys->elements > 0 && keys->elements <= 30); /* at most one per user */
    long long marks = 0;
    for (size_t i = 0; i < keys->elements; i++) {
        const char *key = keys->element[i]->str;
        redisReply *ttl = redisCommand(rc, "TTL %s", key);
        redisReply *len = redisCommand(rc, "STRLEN %s", key);
        ST_REQUIRE(ttl != NULL && len != NULL);
        ST_CHECK(ttl->type == REDIS_REPLY_INTEGER && ttl->integer > 0 && ttl->integer <= 600);
        /* the high-water mark (6 bytes) and 1..dedup.max_per_user (64) marks of 22 bytes */
        ST_CHECK(len->type == REDIS_REPLY_INTEGER && (len->integer - 6) % 22 == 0 &&
                 len->integer >= 6 + 22 && len->integer <= 6 + 64 * 22);
        marks += (len->integer - 6) / 22;
        freeReplyObject(ttl);
        freeReplyObject(len);
    }
    redisReply *prev = redisCommand(rc, "KEYS %s:u:{*}:ingest:seen", prefix);
    ST_REQUIRE(prev != NULL && prev->type == REDIS_REPLY_ARRAY);
    ST_EQ_INT(prev->elements, 0);
    freeReplyObject(prev);
    printf("marks: %zu users, %lld marks\n", keys->elements, marks);
    freeReplyObject(keys);
    redisFree(rc);

    st_avro_codec_destroy(o.codec);
    st_avro_codec_destroy(d.codec);
    free(o.ids.ids);
    free(o.copies);
    free(expected.ids);
    st_buf_free(&first_json);
    for (int i = 0; i < N_BAD; i++)
        st_buf_free(&bad[i].value);
}

static long long end_offsets(const char *topic)
{
    char errstr[512];
    st_kafka_opts_t ko = itest_kafka();
    return st_kafka_topic_end_offsets(&ko, topic, errstr, sizeof errstr);
}

/* SIGKILL stint-ingest twice mid-run (between any two steps of a batch) and restart it: every
 * distinct valid listen is still in the output, and repeats are byte-identical copies only. */
static void test_crash_recovery(void)
{
    char errstr[512], suffix_dir[1024];
    st_kafka_opts_t ko = itest_kafka();
    char raw[160], out[160], dlq[160], grp[160], pfx[160];
    itest_unique(raw, sizeof raw, "it.ingest.crash.raw");
    itest_unique(out, sizeof out, "it.ingest.crash.listens");
    itest_unique(dlq, sizeof dlq, "it.ingest.crash.dlq");
    itest_unique(grp, sizeof grp, "it-ingest-crash");
    itest_unique(pfx, sizeof pfx, "it:ingest:crash");
    snprintf(suffix_dir, sizeof suffix_dir, "%s/it-ingest-crash-data-%d", bin_dir, (int)getpid());

    char stint[1100], ingest[1100], redis_port[16];
    snprintf(stint, sizeof stint, "%s/stint", bin_dir);
    snprintf(ingest, sizeof ingest, "%s/stint-ingest", bin_dir);
    snprintf(redis_port, sizeof redis_port, "%d", itest_redis_port());
    char *gen_argv[] = {stint,    "gen", "--users", "60",       "--days", "60",
                        "--seed", "5",   "--out",   suffix_dir, NULL};
    ST_REQUIRE(run_tool(gen_argv) == 0);
    char *saved_dir = strdup(data_dir);
    snprintf(data_dir, sizeof data_dir, "%s", suffix_dir);
    idset_t expected = {0};
    st_buf_t first_json = ST_BUF_INIT;
    size_t valid_lines = 0;
    offline(&expected, &first_json, &valid_lines);
    idset_unique(&expected);
    checksum_t want = idset_checksum(&expected);

    const char *topics[] = {raw, out, dlq};
    ST_REQUIRE(st_kafka_create_topics(&ko, topics, 3, 3, errstr, sizeof errstr) == 0);
    char *rep_argv[] = {
        stint,     "replay", "--data",           data_dir, "-b",         (char *)itest_brokers(),
        "--topic", raw,      "--profiles-topic", "",       "--progress", "never",
        "-q",      NULL};
    ST_EQ_INT(run_tool(rep_argv), 0);
    char *ing_argv[] = {ingest,
                        "-b",
                        (char *)itest_brokers(),
                        "--redis.port",
                        redis_port,
                        "--in.topic",
                        raw,
                        "--out.topic",
                        out,
                        "--dlq.topic",
                        dlq,
                        "--redis.prefix",
                        pfx,
                        "-G",
                        grp,
                        "--dedup.ttl_s",
                        "600",
                        "--batch.max",
                        "2000",
                        "-X",
                        "session.timeout.ms=6000",
                        NULL};
    static const long long kill_at[] = {10000, 30000};
    int kills = 0;
    for (int k = 0; k < 2; k++) {
        pid_t pid = itest_spawn(ing_argv, logpath);
        int64_t deadline = st_time_mono_ms() + 30000;
        while (end_offsets(out) < kill_at[k] && st_time_mono_ms() < deadline)
            itest_sleep_ms(5);
        kill(pid, SIGKILL);
        itest_wait(pid, 10000);
        long long n = end_offsets(out);
        printf("kill %d with %lld records in the output\n", k + 1, n);
        kills += n < (long long)expected.n;
    }
    ST_EQ_INT(kills, 2); /* both kills landed mid-run */
    pid_t pid = itest_spawn(ing_argv, logpath);
    int64_t end = end_offsets(raw), committed = -1, deadline = st_time_mono_ms() + 40000;
    while (st_time_mono_ms() < deadline &&
           (committed = st_kafka_group_committed(&ko, grp, raw, errstr, sizeof errstr)) < end)
        itest_sleep_ms(200);
    ST_EQ_INT(committed, end);
    kill(pid, SIGTERM);
    ST_EQ_INT(itest_wait(pid, 30000), 0);

    out_read_t o = {0};
    o.codec = st_avro_codec_new(reg, "Listen", NULL, errstr, sizeof errstr);
    ST_REQUIRE(o.codec != NULL);
    long long n_out = itest_read_topic(out, on_out, &o);
    size_t repeats = idset_unique(&o.ids);
    checksum_t got = idset_checksum(&o.ids);
    long long differ = differing_copies(&o);
    printf("after 2 kills: records=%lld distinct=%zu (expected %zu) repeats=%zu (byte-identical "
           "unless counted here: %lld)\n",
           n_out, o.ids.n, expected.n, repeats, differ);
    ST_EQ_U64((uint64_t)o.ids.n, (uint64_t)expected.n);
    ST_EQ_U64(got.sum, want.sum);
    ST_EQ_U64(got.xor, want.xor);
    ST_EQ_INT(differ, 0);
    ST_EQ_INT(o.undecodable, 0);

    st_avro_codec_destroy(o.codec);
    free(o.ids.ids);
    free(o.copies);
    free(expected.ids);
    st_buf_free(&first_json);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", data_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", data_dir);
    snprintf(data_dir, sizeof data_dir, "%s", saved_dir);
    free(saved_dir);
}

/* Replay options: an event-time window and a limit publish exactly the listens they select; a
 * delivery that fails makes the exit code 1. */
static void test_replay_window_and_failure(void)
{
    char errstr[512], stint[1100], w_topic[160], l_topic[160], f_topic[160];
    const char *from = "2009-04-10T00:00:00Z", *until = "2009-04-20T00:00:00Z";
    int64_t from_ms, until_ms;
    ST_REQUIRE(st_time_parse_iso8601(from, strlen(from), &from_ms) == 0);
    ST_REQUIRE(st_time_parse_iso8601(until, strlen(until), &until_ms) == 0);
    snprintf(stint, sizeof stint, "%s/stint", bin_dir);
    itest_unique(w_topic, sizeof w_topic, "it.replay.window");
    itest_unique(l_topic, sizeof l_topic, "it.replay.limit");
    itest_unique(f_topic, sizeof f_topic, "it.replay.fail");
    char *gen_argv[] = {stint,    "gen", "--users", "30",     "--days", "30",
                        "--seed", "11",  "--out",   data_dir, NULL};
    ST_REQUIRE(run_tool(gen_argv) == 0);

    st_lastfm_reader_t *r =
        st_lastfm_reader_open(data_dir, ST_LASTFM_LISTENS, errstr, sizeof errstr);
    ST_REQUIRE(r != NULL);
    st_lastfm_reader_set_log_limit(r, 0);
    st_lastfm_listen_t rec;
    long long in_window = 0;
    while (st_lastfm_reader_next_listen(r, &rec, NULL) == 1)
        in_window += rec.ts_ms >= from_ms && rec.ts_ms < until_ms;
    st_lastfm_reader_destroy(r);
    ST_CHECK(in_window > 100);

    char *win_argv[] = {
        stint,     "replay",      "--data",           data_dir, "-b",     (char *)itest_brokers(),
        "--topic", w_topic,       "--profiles-topic", "",       "--from", (char *)from,
        "--until", (char *)until, "--progress",       "never",  "-q",     NULL};
    ST_EQ_INT(run_tool(win_argv), 0);
    ST_EQ_INT(end_offsets(w_topic), in_window);
    char *lim_argv[] = {stint,        "replay",  "--data",
                        data_dir,     "-b",      (char *)itest_brokers(),
                        "--topic",    l_topic,   "--profiles-topic",
                        "",           "--limit", "1234",
                        "--progress", "never",   "-q",
                        NULL};
    ST_EQ_INT(run_tool(lim_argv), 0);
    ST_EQ_INT(end_offsets(l_topic), 1234);
    /* Every delivery times out locally: nothing is acknowledged. */
    char *fail_argv[] = {stint,
                         "replay",
                         "--data",
                         data_dir,
                         "-b",
                         (char *)itest_brokers(),
                         "--topic",
                         f_topic,
                         "--profiles-topic",
                         "",
                         "-X",
                         "linger.ms=1",
                         "-X",
                         "message.timeout.ms=2",
                         "--progress",
                         "never",
                         "-q",
                         NULL};
    ST_EQ_INT(run_tool(fail_argv), 1);
    /* --data the listens file itself: its listens are published, and no profiles (the file was
     * read as a profiles file too: every line a bad profile line). */
    char file_topic[128], file_prof[128], listens[1200], file_log[1100];
    itest_unique(file_topic, sizeof file_topic, "it.replay.file");
    itest_unique(file_prof, sizeof file_prof, "it.replay.file.profiles");
    snprintf(listens, sizeof listens, "%s/%s", data_dir, ST_LASTFM_LISTENS_FILE);
    snprintf(file_log, sizeof file_log, "%s/it-replay-file-%d.log", bin_dir, (int)getpid());
    char *file_argv[] = {stint,        "replay",   "--data",
                         listens,      "-b",       (char *)itest_brokers(),
                         "--topic",    file_topic, "--profiles-topic",
                         file_prof,    "--limit",  "100",
                         "--progress", "never",    NULL};
    ST_EQ_INT(itest_wait(itest_spawn(file_argv, file_log), 60000), 0);
    ST_EQ_INT(end_offsets(file_topic), 100);
    ST_EQ_INT(end_offsets(file_prof), 0);
    ST_CHECK(itest_log_has(file_log, "profiles_skipped"));
    ST_CHECK(itest_log_has(file_log, "bad_profile_lines=0"));
    unlink(file_log);
    char *usage_argv[] = {stint, "replay", "--data", data_dir, "--from", "yesterday", NULL};
    ST_EQ_INT(run_tool(usage_argv), 2);
    /* a window that selects nothing is a usage error, not an "ok" that sent nothing */
    char *empty_argv[] = {stint,         "replay",  "--data",     data_dir, "--from",
                          (char *)until, "--until", (char *)from, NULL};
    ST_EQ_INT(run_tool(empty_argv), 2);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", data_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", data_dir);
}

int main(void)
{
    char errstr[512];
    itest_unique(t_raw, sizeof t_raw, "it.ingest.raw");
    itest_unique(t_out, sizeof t_out, "it.ingest.listens");
    itest_unique(t_dlq, sizeof t_dlq, "it.ingest.dlq");
    itest_unique(t_prof, sizeof t_prof, "it.ingest.profiles");
    itest_unique(group, sizeof group, "it-ingest");
    itest_unique(prefix, sizeof prefix, "it:ingest");
    bin_dir = itest_bin_dir();
    snprintf(data_dir, sizeof data_dir, "%s/it-ingest-data-%d", bin_dir, (int)getpid());
    snprintf(logpath, sizeof logpath, "%s/it-ingest.log", bin_dir);
    snprintf(schemas, sizeof schemas, "%s/schemas", getenv("STINT_SOURCE_DIR"));
    reg = st_avro_registry_new(schemas, itest_registry_url(), errstr, sizeof errstr);
    if (!reg) {
        fprintf(stderr, "schemas: %s\n", errstr);
        return 1;
    }
    ST_RUN(test_replay_through_ingest);
    ST_RUN(test_crash_recovery);
    ST_RUN(test_replay_window_and_failure);
    st_avro_registry_destroy(reg);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", data_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", data_dir);
    return st_test_summary();
}
