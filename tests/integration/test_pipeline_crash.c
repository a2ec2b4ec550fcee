/* Integration: the pass-through pipeline (topic A -> topic B, one idempotent Redis counter
 * update per record) over 100,000 records on the real broker, SIGKILLed mid-run three times and
 * restarted: the counter ends at exactly 100,000, every good input is in B (duplicates only as
 * byte-identical records), bad ones are in the DLQ, and SIGTERM exits 0 with offsets committed. */
#include "st_itest.h"
#include "st_test.h"

#define N_RECORDS 100000
#define N_BAD     10

static itest_pt_t pt;

static void make_value(int i, char *buf, size_t size, int *len)
{
    /* ~100-byte values; every 10,000th record (10 in all) is a bad one. */
    bool bad = i % (N_RECORDS / N_BAD) == 5;
    *len = snprintf(buf, size, "%srec-%07d-%s", bad ? "BAD" : "", i,
                    "payload-payload-payload-payload-payload-payload-payload-payload-payload-pay");
}

static pid_t start(void)
{
    char *extra[] = {"-X", "session.timeout.ms=6000", "--batch.max", "2000", NULL};
    return itest_pt_spawn(&pt, extra);
}

typedef struct {
    unsigned char *seen; /* times each index was read */
    uint64_t *key_hash;  /* key+value hash of the first copy */
    long long duplicates, mismatched, unknown;
} readback_t;

static void on_out(void *arg, int32_t partition, const void *key, size_t klen, const void *val,
                   size_t vlen)
{
    readback_t *rb = arg;
    (void)partition;
    int i;
    if (vlen < 11 || sscanf((const char *)val, "rec-%7d-", &i) != 1 || i < 0 || i >= N_RECORDS) {
        rb->unknown++;
        return;
    }
    uint64_t h = st_hash64(key, klen, st_hash64(val, vlen, 0));
    if (rb->seen[i]++ == 0) {
        rb->key_hash[i] = h;
    } else {
        rb->duplicates++;
        if (rb->key_hash[i] != h)
            rb->mismatched++;
    }
}

static void on_dlq(void *arg, int32_t partition, const void *key, size_t klen, const void *val,
                   size_t vlen)
{
    (void)partition;
    (void)key;
    (void)klen;
    (void)val;
    (void)vlen;
    (*(long long *)arg)++;
}

static void test_crash_recovery(void)
{
    char errstr[512];
    st_kafka_opts_t ko = itest_kafka();
    const char *topics[] = {pt.in, pt.out, pt.dlq};
    ST_REQUIRE(st_kafka_create_topics(&ko, topics, 3, 3, errstr, sizeof errstr) == 0);

    st_producer_t *prod = st_producer_new(&ko, errstr, sizeof errstr);
    ST_REQUIRE(prod != NULL);
    for (int i = 0; i < N_RECORDS; i++) {
        char key[32], val[160];
        int klen = snprintf(key, sizeof key, "user-%04d", i % 1000), vlen;
        make_value(i, val, sizeof val, &vlen);
        ST_REQUIRE(st_producer_send(prod, pt.in, -1, key, (size_t)klen, val, (size_t)vlen, NULL) ==
                   0);
    }
    ST_REQUIRE(st_producer_wait(prod, 60000, NULL) == 0);
    st_producer_destroy(prod);

    redisContext *rc = itest_redis();
    static const long long kill_at[] = {15000, 45000, 75000};
    int kills = 0;
    for (int k = 0; k < 3; k++) {
        pid_t pid = start();
        int64_t deadline = st_time_mono_ms() + 120000;
        long long c = 0;
        while ((c = itest_redis_get_int(&rc, pt.counter)) < kill_at[k] &&
               st_time_mono_ms() < deadline)
            itest_sleep_ms(2);
        kill(pid, SIGKILL);
        itest_wait(pid, 10000);
        c = itest_redis_get_int(&rc, pt.counter);
        printf("kill %d at counter=%lld\n", k + 1, c);
        if (c < N_RECORDS)
            kills++;
    }
    ST_EQ_INT(kills, 3); /* every kill landed mid-run */

    pid_t pid = start();
    int64_t deadline = st_time_mono_ms() + 180000;
    while (itest_redis_get_int(&rc, pt.counter) < N_RECORDS && st_time_mono_ms() < deadline)
        itest_sleep_ms(50);
    itest_sleep_ms(1500); /* let any (wrong) extra increments show */
    ST_EQ_INT(itest_redis_get_int(&rc, pt.counter), N_RECORDS);

    kill(pid, SIGTERM);
    ST_EQ_INT(itest_wait(pid, 60000), 0);
    ST_EQ_INT(st_kafka_group_committed(&ko, pt.group, pt.in, errstr, sizeof errstr), N_RECORDS);

    readback_t rb = {calloc(N_RECORDS, 1), calloc(N_RECORDS, sizeof(uint64_t)), 0, 0, 0};
    long long n_out = itest_read_topic(pt.out, on_out, &rb);
    long long missing = 0;
    for (int i = 0; i < N_RECORDS; i++) {
        bool bad = i % (N_RECORDS / N_BAD) == 5;
        if (!bad && rb.seen[i] == 0)
            missing++;
    }
    printf("output records=%lld duplicates=%lld (byte-identical) missing=%lld\n", n_out,
           rb.duplicates, missing);
    ST_CHECK(n_out >= N_RECORDS - N_BAD);
    ST_EQ_INT(missing, 0);
    ST_EQ_INT(rb.mismatched, 0);
    ST_EQ_INT(rb.unknown, 0);
    long long n_dlq = 0;
    ST_CHECK(itest_read_topic(pt.dlq, on_dlq, &n_dlq) >= N_BAD);
    ST_CHECK(n_dlq >= N_BAD);
    free(rb.seen);
    free(rb.key_hash);
    itest_pt_redis_cleanup(&pt);
    redisFree(rc);
}

int main(void)
{
    itest_pt_init(&pt, "crash");
    ST_RUN(test_crash_recovery);
    return st_test_summary();
}
