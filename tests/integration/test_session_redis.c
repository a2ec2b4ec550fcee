/* Integration test of the sessionizer's Redis contract against the real local Redis
 * (STINT_REDIS_HOST/STINT_REDIS_PORT, default 127.0.0.1:16379, unique key prefix per run):
 * the Lua compare-and-set script, the service's state store (sz_store.c) and its deadline set,
 * equality with the in-memory store across restarts, and Redis memory per user state. */
#include <hiredis/hiredis.h>
#include <time.h>
#include <unistd.h>

#include "st_redis.h"
#include "st_rkey.h"
#include "st_session.h"
#include "st_sessionizer.h"
#include "st_test.h"
#include "st_time.h"
#include "sz_store.h"

#define S 1000LL

typedef struct {
    redisContext *c; /* for looking at the keys */
    char prefix[96];
    char sha[64];
    st_redis_t *redis;
    sz_store_t *store; /* the service's */
} rstore_t;

static st_sessionizer_store_t rstore_iface(rstore_t *r)
{
    return *sz_store_iface(r->store);
}

static uint64_t puts_rejected(const rstore_t *r)
{
    sz_store_stats_t st;
    sz_store_stats(r->store, &st);
    return st.writes_rejected;
}

static void delete_prefix(redisContext *c, const char *prefix)
{
    char cursor[32] = "0";
    char pattern[128];
    snprintf(pattern, sizeof pattern, "%s*", prefix);
    do {
        redisReply *rep = redisCommand(c, "SCAN %s MATCH %s COUNT 1000", cursor, pattern);
        if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != 2) {
            if (rep)
                freeReplyObject(rep);
            return;
        }
        snprintf(cursor, sizeof cursor, "%s", rep->element[0]->str);
        for (size_t i = 0; i < rep->element[1]->elements; i++) {
            redisReply *d = redisCommand(c, "DEL %b", rep->element[1]->element[i]->str,
                                         rep->element[1]->element[i]->len);
            if (d)
                freeReplyObject(d);
        }
        freeReplyObject(rep);
    } while (strcmp(cursor, "0") != 0);
}

static rstore_t R;

/* The script alone (no deadline set: that is the store's, test_deadline_set). */
static long long eval_put(const char *user, const char *pos)
{
    st_buf_t k = ST_BUF_INIT, o = ST_BUF_INIT;
    st_rkey_user(&k, R.prefix, user, strlen(user), ST_RKEY_SZ, NULL);
    st_rkey_user(&o, R.prefix, user, strlen(user), ST_RKEY_SESS, NULL);
    redisReply *rep =
        redisCommand(R.c, "EVALSHA %s 2 %s %s %s %s", R.sha, k.data, o.data, pos, "blob");
    long long v = -99;
    if (rep && rep->type == REDIS_REPLY_INTEGER)
        v = rep->integer;
    else if (rep && rep->type == REDIS_REPLY_ERROR)
        v = -1;
    if (rep)
        freeReplyObject(rep);
    st_buf_free(&k);
    st_buf_free(&o);
    return v;
}

/* A reply's string as a NUL-terminated copy ("" when not a string), for the checks below. */
static void reply_text(redisReply *rep, char *out, size_t size)
{
    size_t n = rep && rep->type == REDIS_REPLY_STRING ? rep->len : 0;
    if (n >= size)
        n = size - 1;
    memcpy(out, n ? rep->str : "", n);
    out[n] = '\0';
    if (rep)
        freeReplyObject(rep);
}

static long long reply_int(redisReply *rep)
{
    long long v = rep && rep->type == REDIS_REPLY_INTEGER ? rep->integer : -99;
    if (rep)
        freeReplyObject(rep);
    return v;
}

/* A user the previous layout wrote (hash p, s) is read as before, a write at or below its position
 * changes nothing, and the next write moves it to the state string, deleting the hash. */
static void test_legacy_layout(void)
{
    st_sessionizer_state_t st;
    memset(&st, 0, sizeof st);
    st.has_pos = true;
    st.pos = (st_sessionizer_pos_t){.listened_at_ms = 1000,
                                    .identity_hash = (5ULL << 32) | 7,
                                    .offset = 10,
                                    .closed = 0,
                                    .seen = -1};
    st.history.session_count = 40;
    st.history.n_recent = ST_SESSION_RECENT_MAX;
    for (uint32_t i = 0; i < st.history.n_recent; i++)
        st.history.recent_length_ms[i] = 600000 + 1000 * (int64_t)i;
    st_buf_t blob = ST_BUF_INIT, k = ST_BUF_INIT, o = ST_BUF_INIT;
    ST_REQUIRE(st_sessionizer_state_encode(&st, &blob) == 0);
    ST_CHECK(blob.len > 64); /* what made the old hash a hashtable */
    st_rkey_user(&k, R.prefix, "lg1", 3, ST_RKEY_SZ, NULL);
    st_rkey_user(&o, R.prefix, "lg1", 3, ST_RKEY_SESS, NULL);
    ST_EQ_INT(reply_int(redisCommand(R.c, "HSET %s p %s s %b", o.data, "1000 5 7 10 0 -1",
                                     blob.data, blob.len)),
              2);

    st_sessionizer_store_t rs = rstore_iface(&R);
    st_sessionizer_user_t u = {"lg1", 3};
    st_buf_t got = ST_BUF_INIT;
    ST_EQ_INT(rs.get_states(rs.ctx, &u, 1, &got, NULL), 0);
    ST_EQ_INT(got.len, blob.len);
    ST_CHECK(got.len == blob.len && memcmp(got.data, blob.data, blob.len) == 0);

    ST_EQ_INT(eval_put("lg1", "1000 5 7 10 0 -1"), 0); /* equal: refused by the old p */
    ST_EQ_INT(eval_put("lg1", "999 9 9 9 1 5"), 0);
    ST_EQ_INT(reply_int(redisCommand(R.c, "EXISTS %s", o.data)), 1);
    ST_EQ_INT(reply_int(redisCommand(R.c, "EXISTS %s", k.data)), 0);

    ST_EQ_INT(eval_put("lg1", "1000 5 7 11 0 -1"), 1);
    ST_EQ_INT(reply_int(redisCommand(R.c, "EXISTS %s", o.data)), 0);
    char text[256];
    reply_text(redisCommand(R.c, "GET %s", k.data), text, sizeof text);
    ST_EQ_STR(text, "1000 5 7 11 0 -1\nblob");
    reply_text(redisCommand(R.c, "OBJECT ENCODING %s", k.data), text, sizeof text);
    ST_CHECK(strcmp(text, "embstr") == 0 || strcmp(text, "raw") == 0);
    st_buf_reset(&got);
    ST_EQ_INT(rs.get_states(rs.ctx, &u, 1, &got, NULL), 0);
    ST_EQ_INT(got.len, 4);
    ST_CHECK(got.len == 4 && memcmp(got.data, "blob", 4) == 0);
    ST_EQ_INT(eval_put("lg1", "1000 5 7 11 0 -1"), 0); /* now refused by the string's */
    st_buf_free(&blob);
    st_buf_free(&k);
    st_buf_free(&o);
    st_buf_free(&got);
}

static void test_lua_contract(void)
{
    /* First write, equal, lower (by each field), higher (by each field). */
    ST_EQ_INT(eval_put("c1", "1000 5 7 10 0"), 1);
    ST_EQ_INT(eval_put("c1", "1000 5 7 10 0"), 0);
    ST_EQ_INT(eval_put("c1", "999 9 9 99 1"), 0);
    ST_EQ_INT(eval_put("c1", "1000 4 9 99 1"), 0);
    ST_EQ_INT(eval_put("c1", "1000 5 6 99 1"), 0);
    ST_EQ_INT(eval_put("c1", "1000 5 7 9 1"), 0);
    ST_EQ_INT(eval_put("c1", "1000 5 7 10 1"), 1); /* the closed flag is above */
    ST_EQ_INT(eval_put("c1", "1000 5 7 11 0"), 1);
    ST_EQ_INT(eval_put("c1", "1000 5 8 0 0"), 1);
    ST_EQ_INT(eval_put("c1", "1000 6 0 0 0"), 1);
    /* Large values stay exact: 2^32-1 halves, times near 2^50, negative times. */
    ST_EQ_INT(eval_put("c2", "-5 4294967295 4294967295 4503599627370495 0"), 1);
    ST_EQ_INT(eval_put("c2", "-4 0 0 0 0"), 1);
    ST_EQ_INT(eval_put("c2", "1125899906842624 0 0 0 0"), 1);
    ST_EQ_INT(eval_put("c2", "1125899906842623 4294967295 4294967295 1 1"), 0);
    ST_EQ_INT(eval_put("c2", "garbage"), -1);
}

static st_sessionizer_write_t write_of(const char *user, const char *pos, int64_t deadline_ms)
{
    st_sessionizer_write_t w;
    memset(&w, 0, sizeof w);
    w.user = (st_sessionizer_user_t){user, strlen(user)};
    w.partition = 3;
    snprintf(w.pos_text, sizeof w.pos_text, "%s", pos);
    w.blob = "blob";
    w.blob_len = 4;
    w.has_deadline = deadline_ms >= 0;
    w.deadline_ms = deadline_ms;
    return w;
}

/* The deadline set, as the store keeps it around the script (sz_store.c put_states). */
static void zset_is(const char *want)
{
    st_buf_t z = ST_BUF_INIT, got = ST_BUF_INIT;
    st_rkey_partition(&z, R.prefix, ST_RKEY_DEADLINES, 3);
    redisReply *rep = redisCommand(R.c, "ZRANGE %s 0 -1 WITHSCORES", z.data);
    for (size_t i = 0; rep && i < rep->elements; i++)
        st_buf_printf(&got, "%s%s", i ? (i % 2 ? "=" : " ") : "", rep->element[i]->str);
    st_buf_append(&got, "", 1);
    ST_EQ_STR(got.data, want);
    if (rep)
        freeReplyObject(rep);
    st_buf_free(&z);
    st_buf_free(&got);
}

static void test_deadline_set(void)
{
    st_sessionizer_store_t rs = rstore_iface(&R);
    st_err_t err = {0};
    uint64_t rejected0 = puts_rejected(&R);
    st_sessionizer_write_t w[2] = {write_of("d1", "1000 5 7 10 0", 6000),
                                   write_of("d2", "1000 5 7 11 0", 7)};
    ST_EQ_INT(rs.put_states(rs.ctx, w, 2, &err), 0);
    zset_is("d2=7 d1=6000");
    /* Applied and no session left open: the entry goes. */
    w[0] = write_of("d1", "2000 0 0 0 1", -1);
    ST_EQ_INT(rs.put_states(rs.ctx, w, 1, &err), 0);
    zset_is("d2=7");
    /* Refused (at or below the stored position, as a replay or a zombie is): no ZREM, so an
     * instance that lost the partition cannot take away a deadline the new owner relies on; its
     * ZADD did happen (round 1 runs before the script says no): an extra entry, which costs one
     * read when it fires. */
    w[0] = write_of("d2", "1000 5 7 11 0", -1);
    w[1] = write_of("d1", "1500 0 0 0 0", 8000);
    ST_EQ_INT(rs.put_states(rs.ctx, w, 2, &err), 0);
    ST_EQ_INT(puts_rejected(&R) - rejected0, 2);
    zset_is("d2=7 d1=8000");
    /* When such an entry fires on a state with no open session, the sessionizer drops it, but
     * only while it still has the deadline that fired: d2's stored deadline is 7, not 6. */
    st_sessionizer_stale_t d[2] = {{w[1].user, 3, 8000}, {w[0].user, 3, 6}};
    ST_EQ_INT(rs.drop_deadlines(rs.ctx, d, 2, &err), 0);
    zset_is("d2=7");
    /* A deadline at the scale of real ones (ms since 1970, past 2^31) compares exactly. */
    w[0] = write_of("d3", "1000 5 7 12 0", 1240245081000);
    ST_EQ_INT(rs.put_states(rs.ctx, w, 1, &err), 0);
    d[0] = (st_sessionizer_stale_t){w[0].user, 3, 1240245081001};
    ST_EQ_INT(rs.drop_deadlines(rs.ctx, d, 1, &err), 0);
    zset_is("d2=7 d3=1240245081000");
    d[0].deadline_ms = 1240245081000;
    ST_EQ_INT(rs.drop_deadlines(rs.ctx, d, 1, &err), 0);
    zset_is("d2=7");
}

static uint64_t rng_state = 12345;
static uint64_t rnd(void)
{
    uint64_t x = (rng_state += 0x9e3779b97f4a7c15ULL);
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

typedef struct {
    st_sessionizer_record_t rec;
    char user[16];
} gen_t;

/* n records on 2 partitions in time order with a jitter within the grace; a fifth of the users
 * listen in each hour, so sessions open and go idle. */
static gen_t *generate(size_t n_users, size_t n)
{
    gen_t *g = calloc(n, sizeof *g);
    int64_t offsets[2] = {0, 0};
    int64_t now = 1200000000000LL;
    for (size_t i = 0; i < n; i++) {
        now += (int64_t)(rnd() % 3000);
        size_t block = n_users / 5;
        size_t u = rnd() % block + block * (size_t)((now / 3600000) % 5);
        snprintf(g[i].user, sizeof g[i].user, "ru%05zu", u);
        int32_t p = (int32_t)(u % 2);
        uint64_t track = rnd() % 50;
        g[i].rec = (st_sessionizer_record_t){p,
                                             offsets[p]++,
                                             g[i].user,
                                             strlen(g[i].user),
                                             now - (int64_t)(rnd() % 50000),
                                             track % 7 ? (int64_t)(track * 7 + 60) * S : 0,
                                             track};
    }
    return g;
}

typedef struct {
    st_session_event_t *v;
    size_t n;
} evs_t;

/* Runs records through a sessionizer on store in batches of 200; restarts (a crash: buffer lost)
 * every restart_every batches after delivering but before finishing. */
static evs_t run(st_sessionizer_store_t *store, gen_t *g, size_t n, int restart_every)
{
    st_sessionizer_config_t cfg;
    st_sessionizer_config_default(&cfg);
    evs_t out = {calloc(4 * n + 16, sizeof(st_session_event_t)), 0};
    char errstr[128];
    st_sessionizer_t *sz = st_sessionizer_new(&cfg, store, errstr, sizeof errstr);
    int64_t committed[2] = {0, 0};
    size_t cursor = 0;
    int batch_no = 0;
    while (sz) {
        bool flush = cursor == n;
        for (size_t k = 0; k < 200 && cursor < n; k++, cursor++) {
            st_err_t err = {0};
            if (g[cursor].rec.offset < committed[g[cursor].rec.partition])
                continue;
            if (st_sessionizer_push(sz, &g[cursor].rec, &err) < 0)
                ST_FAIL_AT("push: %s", err.text);
        }
        st_err_t err = {0};
        if (st_sessionizer_prepare(sz, flush, &err) != 0) {
            ST_FAIL_AT("prepare: %s", err.text);
            break;
        }
        size_t ne;
        const st_session_event_t *ev = st_sessionizer_events(sz, &ne);
        if (ne > 0)
            memcpy(out.v + out.n, ev, ne * sizeof *ev);
        out.n += ne;
        if (restart_every && ++batch_no % restart_every == 0 && !flush) {
            st_sessionizer_destroy(sz);
            sz = st_sessionizer_new(&cfg, store, errstr, sizeof errstr);
            /* resume both partitions from the commit: rewind the cursor to the lowest */
            size_t back = cursor;
            for (size_t i = 0; i < cursor; i++)
                if (g[i].rec.offset >= committed[g[i].rec.partition]) {
                    back = i;
                    break;
                }
            cursor = back;
            continue;
        }
        if (st_sessionizer_finish(sz, &err) != 0) {
            ST_FAIL_AT("finish: %s", err.text);
            break;
        }
        for (int p = 0; p < 2; p++) {
            int64_t off, stt;
            bool has;
            if (st_sessionizer_commit_point(sz, p, &off, &stt, &has) == 0)
                committed[p] = off;
        }
        if (flush)
            break;
    }
    st_sessionizer_destroy(sz);
    return out;
}

static int cmp_event(const void *a, const void *b)
{
    const st_session_event_t *x = a, *y = b;
    int c = strcmp(x->session_id, y->session_id);
    return c ? c : (int)x->kind - (int)y->kind;
}

static size_t dedup(evs_t *e)
{
    qsort(e->v, e->n, sizeof *e->v, cmp_event);
    size_t w = 0;
    for (size_t i = 0; i < e->n; i++)
        if (w == 0 || cmp_event(&e->v[w - 1], &e->v[i]) != 0)
            e->v[w++] = e->v[i];
    size_t dups = e->n - w;
    e->n = w;
    return dups;
}

static void test_redis_equals_memory(void)
{
    size_t n = 20000;
    gen_t *g = generate(300, n);
    st_sessionizer_store_t *mem = st_sessionizer_memstore_new();
    evs_t a = run(mem, g, n, 0);
    st_sessionizer_memstore_destroy(mem);

    st_sessionizer_store_t rs = rstore_iface(&R);
    int64_t t0 = st_time_mono_us();
    evs_t b = run(&rs, g, n, 0);
    double secs = (double)(st_time_mono_us() - t0) / 1e6;
    printf("     redis store: %zu records, %zu events in %.2f s (%.0f records/s, one connection, "
           "batches of 200)\n",
           n, b.n, secs, n / secs);
    ST_EQ_INT(b.n, a.n);
    if (a.n == b.n && memcmp(a.v, b.v, a.n * sizeof *a.v) != 0)
        ST_FAIL_AT("events through Redis differ from the in-memory store");

    /* Memory per user state. */
    long total = 0, users = 0;
    for (int u = 0; u < 300; u += 10) {
        char user[16];
        snprintf(user, sizeof user, "ru%05d", u);
        st_buf_t k = ST_BUF_INIT;
        st_rkey_user(&k, R.prefix, user, strlen(user), ST_RKEY_SZ, NULL);
        redisReply *rep = redisCommand(R.c, "MEMORY USAGE %s", k.data);
        if (rep && rep->type == REDIS_REPLY_INTEGER) {
            total += rep->integer;
            users++;
            /* One string (not a hash: its ~400 B value would make it a hashtable) costing its
             * value plus the key's own overhead and allocator rounding. */
            long long used = rep->integer;
            long long len = reply_int(redisCommand(R.c, "STRLEN %s", k.data));
            char enc[32];
            reply_text(redisCommand(R.c, "OBJECT ENCODING %s", k.data), enc, sizeof enc);
            ST_EQ_STR(enc, "raw");
            if (used > len + 160)
                ST_FAIL_AT("state string of %lld B uses %lld B", len, used);
        }
        if (rep)
            freeReplyObject(rep);
        st_buf_free(&k);
    }
    ST_CHECK(users > 0);
    if (users)
        printf("     redis memory per user state: %.0f bytes (MEMORY USAGE, mean of %ld)\n",
               (double)total / users, users);

    /* Again with restarts that lose the buffer and an unfinished batch, on fresh keys. */
    delete_prefix(R.c, R.prefix);
    uint64_t rejected0 = puts_rejected(&R);
    evs_t c = run(&rs, g, n, 7);
    size_t dups = dedup(&c);
    dedup(&a);
    printf("     with restarts: %zu duplicate events, %llu writes rejected by the script\n", dups,
           (unsigned long long)(puts_rejected(&R) - rejected0));
    ST_CHECK(dups > 0);
    ST_EQ_INT(c.n, a.n);
    if (a.n == c.n && memcmp(a.v, c.v, a.n * sizeof *a.v) != 0)
        ST_FAIL_AT("events after restarts differ");
    free(a.v);
    free(b.v);
    free(c.v);
    free(g);
}

int main(void)
{
    const char *host = getenv("STINT_REDIS_HOST") ? getenv("STINT_REDIS_HOST") : "127.0.0.1";
    int port = getenv("STINT_REDIS_PORT") ? atoi(getenv("STINT_REDIS_PORT")) : 16379;
    R.c = redisConnect(host, port);
    if (!R.c || R.c->err) {
        fprintf(stderr, "cannot connect to Redis at %s:%d: %s\n", host, port,
                R.c ? R.c->errstr : "out of memory");
        return 1;
    }
    snprintf(R.prefix, sizeof R.prefix, "test:session:%ld:%lld", (long)getpid(),
             (long long)st_time_wall_ms());
    redisReply *rep = redisCommand(R.c, "SCRIPT LOAD %s", st_sessionizer_lua_put);
    if (!rep || rep->type != REDIS_REPLY_STRING) {
        fprintf(stderr, "SCRIPT LOAD failed: %s\n", rep && rep->str ? rep->str : R.c->errstr);
        return 1;
    }
    snprintf(R.sha, sizeof R.sha, "%s", rep->str);
    freeReplyObject(rep);
    st_redis_opts_t ro = {.host = host, .port = port, .timeout_ms = 5000};
    R.redis = st_redis_new(&ro);
    st_err_t err = {0};
    if (st_redis_ensure(R.redis, 5000, &err) != 0 || !(R.store = sz_store_new(R.redis, R.prefix))) {
        fprintf(stderr, "st_redis: %s\n", err.text);
        return 1;
    }
    ST_RUN(test_lua_contract);
    ST_RUN(test_deadline_set);
    ST_RUN(test_legacy_layout);
    delete_prefix(R.c, R.prefix);
    ST_RUN(test_redis_equals_memory);
    delete_prefix(R.c, R.prefix);
    sz_store_destroy(R.store);
    st_redis_destroy(R.redis);
    redisFree(R.c);
    return st_test_summary();
}
