/* test_clu_store_redis.c - the clusterer's per-user keys in real Redis (clu_store.h): a user
 * written by the previous layout (clu:len list, cluster and profile hashes, ls) is read as it was
 * by the clusterer and the predictor, and moved to this layout by the user's next write (packed
 * clu:lens, the assignment in clu:prof, the old keys gone); the packed lengths round-trip every
 * length the sessionizer emits (whole milliseconds, also 0 and multi-byte ones) and keep the
 * last median_window; a replayed write changes nothing; re-fit numbers go on across stores. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clu_store_redis.h"
#include "pred_store.h"
#include "st_itest.h"
#include "st_test.h"

#define WINDOW 3

static char prefix[96];
static const char *const sessions_topic = "it.sessions", *const profiles_topic = "it.profiles";

/* A command's reply, which must not be an error (caller frees). */
static char *hget(redisContext *c, const char *user, const char *field)
{
    static char out[128];
    redisReply *r = itest_cmd(c, "HGET %s:u:{%s}:clu:prof %s", prefix, user, field);
    snprintf(out, sizeof out, "%s", r->type == REDIS_REPLY_STRING ? r->str : "(nil)");
    freeReplyObject(r);
    return out;
}

typedef struct {
    st_applied_t sessions, profiles;
    clu_store_prof_t prof;
    clu_store_cluster_t cluster;
    double lens[WINDOW];
} read_t;

static void read_user(clu_store_t *s, const char *user, read_t *out)
{
    memset(out, 0, sizeof *out);
    st_applied_reset(&out->sessions);
    st_applied_reset(&out->profiles);
    ST_REQUIRE(st_applied_slot(&out->sessions, 0, true) == 0);
    ST_REQUIRE(st_applied_slot(&out->profiles, 0, true) == 0);
    out->prof.lens = out->lens;
    clu_store_user_t u = {user, &out->sessions, &out->profiles, &out->prof, &out->cluster};
    st_err_t err = {0};
    ST_EQ_INT(s->read(s->ctx, &u, 1, &err), 0);
}

/* One write of n CLOSED from sessions partition 0 at offset, with an optional assignment. */
static void write_closed(clu_store_t *s, const char *user, int64_t offset,
                         const clu_store_closed_t *closed, size_t n,
                         const clu_store_cluster_t *cluster)
{
    st_applied_t sa, pa;
    st_applied_reset(&sa);
    st_applied_reset(&pa);
    int slot = st_applied_slot(&sa, 0, true);
    sa.last[slot] = offset;
    sa.last_closed_ms = n ? closed[n - 1].start_ms : -1;
    clu_store_write_t w = {user, &sa, &pa, closed, n, NULL, cluster};
    st_err_t err = {0};
    ST_EQ_INT(s->write(s->ctx, &w, 1, &err), 0);
}

static int pred_cluster(pred_store_t *ps, const char *user, char *version, size_t size)
{
    st_applied_t a;
    st_applied_reset(&a);
    pred_open_t *open = calloc(1, sizeof *open);
    if (!open)
        return -2;
    pred_store_user_t u = {.user = user, .applied = &a, .open = open};
    st_err_t err = {0};
    ST_EQ_INT(ps->read(ps->ctx, &u, 1, true, &err), 0);
    snprintf(version, size, "%s", u.cluster_version);
    free(open);
    return u.cluster;
}

static st_redis_t *redis;

static void test_migration(void)
{
    redisContext *c = itest_redis();
    /* The previous layout, as its script left it. */
    freeReplyObject(itest_cmd(c,
                              "HSET %s:u:{old}:clu:prof a:%s:0 5 ls 1000 n 4 sum_s 72.5 max_s 60 "
                              "tracks 9 gender f age 30 country Norway registered_s 1100000000",
                              prefix, sessions_topic));
    freeReplyObject(itest_cmd(c, "RPUSH %s:u:{old}:clu:len 99 60 1.5 2.25", prefix));
    freeReplyObject(itest_cmd(c, "HSET %s:u:{old}:cluster cluster 2 cold 0 version v1", prefix));
    freeReplyObject(itest_cmd(c, "HSET %s:u:{old}:profile gender f age 30 country Norway", prefix));

    clu_store_t *s = clu_store_redis_new(redis, prefix, sessions_topic, profiles_topic, WINDOW);
    pred_store_t *ps = pred_store_redis_new(redis, prefix, sessions_topic);
    ST_REQUIRE(s && ps);
    read_t r;
    read_user(s, "old", &r);
    ST_EQ_INT(r.sessions.stored[0], 5);
    ST_EQ_INT(r.sessions.last_closed_ms, 1000);
    ST_EQ_INT(r.prof.n_lens, 3);
    ST_CHECK(r.lens[0] == 60 && r.lens[1] == 1.5 && r.lens[2] == 2.25);
    ST_CHECK(r.prof.n == 4 && r.prof.sum_s == 72.5 && r.prof.demo.gender == 'f');
    ST_EQ_INT(r.cluster.cluster, 2);
    ST_EQ_STR(r.cluster.version, "v1");
    char version[PRED_STORE_VERSION_MAX];
    ST_EQ_INT(pred_cluster(ps, "old", version, sizeof version), 2);
    ST_EQ_STR(version, "v1");

    /* The next write, without an assignment, moves everything. */
    clu_store_closed_t one = {2000, 12.345, 3};
    write_closed(s, "old", 6, &one, 1, NULL);
    ST_EQ_INT(itest_user_key_exists(c, prefix, "old", "clu:len"), 0);
    ST_EQ_INT(itest_user_key_exists(c, prefix, "old", "cluster"), 0);
    ST_EQ_INT(itest_user_key_exists(c, prefix, "old", "profile"), 0);
    ST_EQ_INT(itest_user_key_exists(c, prefix, "old", "clu:lens"), 1);
    ST_EQ_STR(hget(c, "old", "ls"), "(nil)");
    ST_EQ_STR(hget(c, "old", "lc"), "2000");
    ST_EQ_STR(hget(c, "old", "cluster"), "2");
    ST_EQ_STR(hget(c, "old", "version"), "v1");
    ST_EQ_STR(hget(c, "old", "n"), "5");
    read_user(s, "old", &r);
    ST_EQ_INT(r.prof.n_lens, 3);
    ST_CHECK(r.lens[0] == 1.5 && r.lens[1] == 2.25 && r.lens[2] == 12.345);
    ST_EQ_INT(r.cluster.cluster, 2);
    ST_EQ_INT(pred_cluster(ps, "old", version, sizeof version), 2);
    ST_EQ_STR(version, "v1");

    /* A new assignment lands in clu:prof. */
    clu_store_cluster_t cl = {.cluster = 1, .cold = true};
    snprintf(cl.version, sizeof cl.version, "v2");
    write_closed(s, "old", 7, NULL, 0, &cl);
    ST_EQ_INT(pred_cluster(ps, "old", version, sizeof version), 1);
    ST_EQ_STR(version, "v2");
    read_user(s, "old", &r);
    ST_CHECK(r.cluster.cluster == 1 && r.cluster.cold);
    ST_EQ_INT(itest_user_key_exists(c, prefix, "old", "cluster"), 0);

    pred_store_redis_destroy(ps);
    clu_store_redis_destroy(s);
    redisFree(c);
}

static void test_packed_lengths(void)
{
    redisContext *c = itest_redis();
    clu_store_t *s = clu_store_redis_new(redis, prefix, sessions_topic, profiles_topic, WINDOW);
    ST_REQUIRE(s != NULL);
    /* Lengths as the sessionizer computes them (length_ms / 1000.0): one byte, several, 0, and
     * more than 2^32 ms. */
    const int64_t ms[] = {100, 0, 1234567, 86400000LL * 60, 3, 999999999999LL, 127, 128};
    size_t n = sizeof ms / sizeof ms[0];
    clu_store_closed_t closed[8];
    for (size_t i = 0; i < n; i++)
        closed[i] = (clu_store_closed_t){(int64_t)(i + 1) * 1000, (double)ms[i] / 1000.0, 1};
    int64_t offset = 10;
    for (size_t i = 0; i < n; i++) {
        /* One per write, then the last two in one write. */
        size_t k = i + 2 == n ? 2 : 1;
        write_closed(s, "new", offset++, &closed[i], k, NULL);
        read_t r;
        read_user(s, "new", &r);
        size_t last = i + k, want = last < WINDOW ? last : WINDOW;
        ST_EQ_INT(r.prof.n_lens, (int)want);
        for (size_t j = 0; j < want; j++)
            ST_CHECK(r.lens[j] == (double)ms[last - want + j] / 1000.0);
        i += k - 1;
    }
    /* The same write again (a replay) is refused by the markers; a CLOSED at or before lc at a
     * new offset (a copy) is not counted. */
    write_closed(s, "new", offset - 1, &closed[n - 2], 2, NULL);
    write_closed(s, "new", offset, &closed[n - 1], 1, NULL);
    read_t r;
    read_user(s, "new", &r);
    ST_EQ_INT(r.prof.n_lens, WINDOW);
    ST_CHECK(r.lens[2] == 0.128 && r.lens[1] == 0.127 && r.prof.n == (double)n);
    ST_EQ_STR(hget(c, "new", "v"), "2");
    redisReply *t = itest_cmd(c, "TYPE %s:u:{new}:clu:lens", prefix);
    ST_EQ_STR(t->str, "string");
    freeReplyObject(t);
    clu_store_redis_destroy(s);
    redisFree(c);
}

/* Re-fit numbers come from one counter in Redis: a restarted store (or another instance's)
 * goes on from the last one; the re-fit itself is one string, replaced. */
static void test_refit_numbers(void)
{
    redisContext *c = itest_redis();
    int64_t seq[3] = {0};
    st_err_t err = {0};
    for (int i = 0; i < 3; i++) {
        clu_store_t *s = clu_store_redis_new(redis, prefix, sessions_topic, profiles_topic, WINDOW);
        ST_REQUIRE(s != NULL);
        ST_EQ_INT(s->next_refit_seq(s->ctx, &seq[i], &err), 0);
        char json[64];
        snprintf(json, sizeof json, "{\"seq\":%lld}", (long long)seq[i]);
        ST_EQ_INT(s->put_refit(s->ctx, json, &err), 0);
        clu_store_redis_destroy(s);
    }
    ST_EQ_INT(seq[0], 1);
    ST_EQ_INT(seq[1], 2);
    ST_EQ_INT(seq[2], 3);
    redisReply *r = itest_cmd(c, "GET %s:clustering:refit", prefix);
    ST_EQ_STR(r->str, "{\"seq\":3}");
    freeReplyObject(r);
    redisFree(c);
}

int main(void)
{
    snprintf(prefix, sizeof prefix, "it-clu-%d-%lld", (int)getpid(),
             (long long)st_time_wall_ms() % 100000000);
    redis = itest_st_redis();
    ST_RUN(test_migration);
    ST_RUN(test_packed_lengths);
    ST_RUN(test_refit_numbers);
    itest_redis_unlink_prefix(prefix);
    st_redis_destroy(redis);
    return st_test_summary();
}
